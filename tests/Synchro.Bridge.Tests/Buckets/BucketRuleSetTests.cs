using Synchro.Bridge.Buckets;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using Synchro.Contracts;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class BucketRuleSetTests
{
    [Theory]
    [InlineData("user_id", "user")]
    [InlineData("team_id", "team")]
    [InlineData("owner", "owner")]
    [InlineData("_id", "_id")]
    public void the_default_prefix_is_the_owner_column_without_its_id_suffix(string column, string prefix) =>
        Assert.Equal(prefix, BucketRuleSet.DefaultPrefix(column));

    [Fact]
    public void each_table_gets_its_configured_rule()
    {
        var rules = new BucketRuleSet([
            new TableOptions { Name = "todos", OwnerColumn = "user_id" },
            new TableOptions { Name = "crm.accounts", OwnerColumn = "team_id", BucketPrefix = "t", GlobalWhenNull = false },
            new TableOptions { Name = "announcements" },
        ]);
        ColumnValue[] row = [ColumnValue.Of("user_id", "int8", "4"), ColumnValue.Of("team_id", "int8", "9")];

        Assert.Equal(["user:4"], rules.For(new TableName("public", "todos")).BucketsFor(row));
        Assert.Equal(["t:9"], rules.For(new TableName("crm", "accounts")).BucketsFor(row));
        Assert.Empty(rules.For(new TableName("crm", "accounts")).BucketsFor([ColumnValue.Null("team_id", "int8")]));
        Assert.Equal(["global"], rules.For(new TableName("public", "announcements")).BucketsFor(row));
    }

    [Fact]
    public void a_change_set_of_an_unconfigured_table_is_an_error_that_says_what_to_do()
    {
        var rules = new BucketRuleSet([new TableOptions { Name = "todos" }]);

        var error = Assert.Throws<SynchroException>(() => rules.For(new TableName("public", "orders")));
        Assert.Contains("not in Synchro:Tables", error.Message, StringComparison.Ordinal);
    }
}
