using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Synchro.Contracts;

/// <summary>
/// A PostgreSQL log sequence number. On the wire it is PostgreSQL's own text, <c>X/Y</c> in upper-case
/// hex (<c>16/B374D848</c>): a JSON number would lose precision above 2^53 in JavaScript. Compare
/// LSNs by <see cref="Value"/> (or as <c>(X &lt;&lt; 32) | Y</c>), never as strings.
/// </summary>
/// <param name="Value">The LSN as a 64-bit integer.</param>
[JsonConverter(typeof(LsnJsonConverter))]
public readonly record struct Lsn(ulong Value) : IComparable<Lsn>
{
    /// <summary>The text PostgreSQL writes for this LSN.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Value >> 32:X}/{Value & 0xFFFFFFFF:X}");

    /// <summary>Reads PostgreSQL's <c>X/Y</c> text.</summary>
    /// <exception cref="FormatException">The text is not an LSN.</exception>
    public static Lsn Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0
            || !uint.TryParse(text.AsSpan(0, slash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var high)
            || !uint.TryParse(text.AsSpan(slash + 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var low))
            throw new FormatException($"'{text}' is not an LSN (expected PostgreSQL's form X/Y in hex, for example 16/B374D848).");
        return new Lsn(((ulong)high << 32) | low);
    }

    /// <inheritdoc/>
    public int CompareTo(Lsn other) => Value.CompareTo(other.Value);

    /// <summary>Whether <paramref name="left"/> comes before <paramref name="right"/> in the log.</summary>
    public static bool operator <(Lsn left, Lsn right) => left.Value < right.Value;

    /// <summary>Whether <paramref name="left"/> comes after <paramref name="right"/> in the log.</summary>
    public static bool operator >(Lsn left, Lsn right) => left.Value > right.Value;

    /// <summary>Whether <paramref name="left"/> is at or before <paramref name="right"/>.</summary>
    public static bool operator <=(Lsn left, Lsn right) => left.Value <= right.Value;

    /// <summary>Whether <paramref name="left"/> is at or after <paramref name="right"/>.</summary>
    public static bool operator >=(Lsn left, Lsn right) => left.Value >= right.Value;
}

/// <summary>Writes and reads an <see cref="Lsn"/> as PostgreSQL's <c>X/Y</c> text.</summary>
public sealed class LsnJsonConverter : JsonConverter<Lsn>
{
    /// <inheritdoc/>
    public override Lsn Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String
            ? Lsn.Parse(reader.GetString()!)
            : throw new JsonException("An LSN is a string in PostgreSQL's form X/Y.");

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, Lsn value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(value.ToString());
    }
}
