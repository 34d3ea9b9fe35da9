using System.Globalization;

namespace Synchro.Bridge.Replication;

/// <summary>An LSN, printed as PostgreSQL writes it (<c>16/B374D848</c>).</summary>
public readonly record struct Lsn(ulong Value)
{
    public override string ToString() => Format(Value);

    public static string Format(ulong lsn) => string.Create(CultureInfo.InvariantCulture, $"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}");

    public static ulong Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
            throw new FormatException($"'{text}' is not an LSN (expected the form 16/B374D848).");
        return (ulong.Parse(text.AsSpan(0, slash), NumberStyles.HexNumber, CultureInfo.InvariantCulture) << 32)
            | ulong.Parse(text.AsSpan(slash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }
}
