using System.IO.Hashing;
using System.Text;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// A row as canonical JSON, and its checksum. The form is exact so any client can recompute it: one
/// object, keys (column names) sorted by their UTF-8 bytes, no whitespace; each value is the column's
/// text as PostgreSQL prints it (<see cref="ColumnValue.Text"/>) as a JSON string, or <c>null</c>;
/// strings are escaped as Go's <c>encoding/json</c> writes them (what synchro's Go code does with a
/// map of strings): <c>\"</c>, <c>\\</c>, <c>\n</c>, <c>\r</c>, <c>\t</c>, <c>\b</c>, <c>\f</c>, other
/// characters below U+0020 and <c>&lt;</c>, <c>&gt;</c>, <c>&amp;</c>, U+2028, U+2029 as <c>\u00xx</c> /
/// <c>\u2028</c> (lower-case hex), everything else as is, in UTF-8. A value PostgreSQL did not send and
/// the bridge could not complete (<see cref="ColumnValueKind.UnchangedToast"/>) is left out.
/// </summary>
public static class RowJson
{
    public static string Canonical(IReadOnlyList<ColumnValue> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var json = new StringBuilder("{");
        foreach (var column in row.Where(c => c.Kind != ColumnValueKind.UnchangedToast).OrderBy(c => c.Name, Utf8Order.Instance))
        {
            if (json.Length > 1)
                json.Append(',');
            AppendString(json, column.Name);
            json.Append(':');
            if (column.Kind == ColumnValueKind.Null)
                json.Append("null");
            else
                AppendString(json, column.Text ?? "");
        }

        return json.Append('}').ToString();
    }

    /// <summary>CRC-32 (IEEE 802.3, as zlib and Go's hash/crc32.ChecksumIEEE) of the canonical JSON's UTF-8 bytes, as a signed 32-bit value.</summary>
    public static int Checksum(IReadOnlyList<ColumnValue> row)
    {
        return unchecked((int)Crc32.HashToUInt32(Encoding.UTF8.GetBytes(Canonical(row))));
    }

    private static void AppendString(StringBuilder json, string text)
    {
        json.Append('"');
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '"':
                    json.Append("\\\"");
                    break;
                case '\\':
                    json.Append("\\\\");
                    break;
                case '\n':
                    json.Append("\\n");
                    break;
                case '\r':
                    json.Append("\\r");
                    break;
                case '\t':
                    json.Append("\\t");
                    break;
                case '\b':
                    json.Append("\\b");
                    break;
                case '\f':
                    json.Append("\\f");
                    break;
                case < ' ' or '<' or '>' or '&' or '\u2028' or '\u2029':
                    json.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    break;
                case >= '\ud800' and <= '\udbff' when i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]):
                    json.Append(c).Append(text[++i]);
                    break;
                case >= '\ud800' and <= '\udfff':
                    // A lone surrogate is not text: Go writes the replacement character.
                    json.Append("\\ufffd");
                    break;
                default:
                    json.Append(c);
                    break;
            }
        }

        json.Append('"');
    }

    /// <summary>Orders strings by their UTF-8 bytes (ordinal UTF-16 order differs only for characters beyond U+FFFF).</summary>
    private sealed class Utf8Order : IComparer<string>
    {
        public static readonly Utf8Order Instance = new();

        public int Compare(string? x, string? y) =>
            Encoding.UTF8.GetBytes(x ?? "").AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(y ?? ""));
    }
}
