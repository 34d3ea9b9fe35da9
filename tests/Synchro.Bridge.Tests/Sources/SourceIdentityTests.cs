using Synchro.Bridge.Sources;

namespace Synchro.Bridge.Tests.Sources;

/// <summary>How the default source name is formed, as the README tells subscribers.</summary>
public sealed class SourceIdentityTests
{
    [Theory]
    [InlineData("app", "synchro_slot", "app-synchro_slot")]
    [InlineData("Shop.EU", "synchro_slot", "shop_eu-synchro_slot")]
    [InlineData("café db", "s1", "caf__db-s1")]
    public void the_default_name_is_database_dash_slot_lower_cased_with_other_characters_made_underscores(string database, string slot, string expected)
    {
        var name = SourceIdentity.NameFrom(null, database, slot);

        Assert.Equal(expected, name);
        Assert.True(SourceIdentity.IsValidName(name));
    }

    [Fact]
    public void the_longest_default_is_a_valid_name_and_a_configured_name_is_taken_as_it_is()
    {
        Assert.True(SourceIdentity.IsValidName(SourceIdentity.NameFrom(null, new string('d', 63), new string('s', 63))));
        Assert.Equal("orders", SourceIdentity.NameFrom("orders", "app", "synchro_slot"));
        Assert.False(SourceIdentity.IsValidName("Orders"));
        Assert.False(SourceIdentity.IsValidName("app.orders"));
    }
}
