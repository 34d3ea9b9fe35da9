using Synchro.Bridge.Hosting;

namespace Synchro.Bridge.Tests.Hosting;

public sealed class SynchroOptionsValidatorTests
{
    private static SynchroOptions Valid() => new()
    {
        Postgres = { ConnectionString = "Host=localhost;Database=app" },
        Tables = { new TableOptions { Name = "todos", OwnerColumn = "user_id" } },
    };

    private static List<string> Failures(SynchroOptions options) =>
        new SynchroOptionsValidator().Validate(null, options).Failures?.ToList() ?? [];

    [Fact]
    public void a_complete_configuration_is_valid() => Assert.Empty(Failures(Valid()));

    [Fact]
    public void a_missing_connection_string_and_no_tables_say_what_to_set()
    {
        var options = Valid();
        options.Postgres.ConnectionString = "";
        options.Tables.Clear();

        var failures = Failures(options);

        Assert.Equal(2, failures.Count);
        Assert.Contains(failures, f => f.StartsWith("Synchro:Postgres:ConnectionString is missing", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Synchro:Tables is empty", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("a.b.c")]
    [InlineData("public.Todos")]
    [InlineData("todos; drop table x")]
    [InlineData("")]
    public void a_table_name_that_is_not_a_plain_identifier_is_refused(string name)
    {
        var options = Valid();
        options.Tables[0].Name = name;

        var failure = Assert.Single(Failures(options));
        Assert.StartsWith("Synchro:Tables:0:Name:", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:00:00", "00:02:00", "Synchro:Replication:IdleAckInterval must be positive, e.g. 00:00:01.")]
    [InlineData("-00:00:01", "00:02:00", "Synchro:Replication:IdleAckInterval must be positive, e.g. 00:00:01.")]
    [InlineData("00:00:01", "00:00:00", "Synchro:Health:AckStallThreshold must be positive, e.g. 00:02:00.")]
    [InlineData("00:00:01", "-00:01:00", "Synchro:Health:AckStallThreshold must be positive, e.g. 00:02:00.")]
    public void intervals_of_the_position_reporter_and_health_must_be_positive(string idleAckInterval, string ackStallThreshold, string expected)
    {
        var options = Valid();
        options.Replication.IdleAckInterval = TimeSpan.Parse(idleAckInterval, System.Globalization.CultureInfo.InvariantCulture);
        options.Health.AckStallThreshold = TimeSpan.Parse(ackStallThreshold, System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(expected, Assert.Single(Failures(options)));
    }

    [Fact]
    public void duplicate_tables_bad_slot_names_and_non_amqp_uris_are_refused()
    {
        var options = Valid();
        options.Tables.Add(new TableOptions { Name = "public.todos" });
        options.Replication.SlotName = "My-Slot";
        options.RabbitMq.Uri = "http://localhost:15672";

        var failures = Failures(options);

        Assert.Equal(3, failures.Count);
        Assert.Contains(failures, f => f.Contains("lists public.todos twice", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("'My-Slot' is not a valid slot name", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("is not an AMQP URI", StringComparison.Ordinal));
    }
}
