using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Tests.Replication;

/// <summary>The record id spelling the README documents for subscribers that compute it themselves.</summary>
public sealed class RecordIdsTests
{
    [Fact]
    public void a_one_column_key_is_its_text_as_it_is()
    {
        Assert.Equal("42", RecordIds.From(["42"]));
        Assert.Equal("ann \"x\" é", RecordIds.From(["ann \"x\" é"]));
    }

    [Fact]
    public void a_composite_key_is_a_json_array_of_its_texts_without_spaces_escaping_as_system_text_json_does()
    {
        Assert.Equal("""["1","ann"]""", RecordIds.From(["1", "ann"]));
        // Quotes, backslashes and control characters as JSON must; non-ASCII and <>&'+ as \uXXXX too.
        Assert.Equal("""["a\u0022b\\c\n","\u00E9\u65E5","\u003C\u003E\u0026\u0027\u002B"]""", RecordIds.From(["a\"b\\c\n", "é日", "<>&'+"]));
    }
}
