using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Tests.Replication;

public sealed class LsnTests
{
    [Theory]
    [InlineData(0UL, "0/0")]
    [InlineData(0x16_B374D848UL, "16/B374D848")]
    [InlineData(0x1_0000_0000UL, "1/0")]
    public void lsns_print_and_parse_as_postgresql_writes_them(ulong value, string text)
    {
        Assert.Equal(text, Lsn.Format(value));
        Assert.Equal(value, Lsn.Parse(text));
    }
}
