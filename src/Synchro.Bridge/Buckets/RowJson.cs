using System.Buffers;
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
    /// <summary>Rows up to this size reuse one buffer per thread; a larger row's buffer is let go afterwards.</summary>
    private const int KeptBufferBytes = 1024 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    private delegate T BytesReader<out T>(ReadOnlySpan<byte> bytes);

    public static string Canonical(IReadOnlyList<ColumnValue> row) => WithCanonicalBytes(row, bytes => Encoding.UTF8.GetString(bytes));

    /// <summary>CRC-32 (IEEE 802.3, as zlib and Go's hash/crc32.ChecksumIEEE) of the canonical JSON's UTF-8 bytes, as a signed 32-bit value.</summary>
    /// <remarks>Computed once per change on the apply path: the bytes are written into a reused buffer, no string is built.</remarks>
    public static int Checksum(IReadOnlyList<ColumnValue> row) => WithCanonicalBytes(row, bytes => unchecked((int)Crc32.HashToUInt32(bytes)));

    private static T WithCanonicalBytes<T>(IReadOnlyList<ColumnValue> row, BytesReader<T> read)
    {
        ArgumentNullException.ThrowIfNull(row);
        var buffer = t_buffer ?? new ArrayBufferWriter<byte>(1024);
        t_buffer = null; // a reentrant call (none today) gets its own buffer
        buffer.ResetWrittenCount();
        Write(buffer, row);
        var result = read(buffer.WrittenSpan);
        if (buffer.Capacity <= KeptBufferBytes)
            t_buffer = buffer;
        return result;
    }

    private static void Write(ArrayBufferWriter<byte> json, IReadOnlyList<ColumnValue> row)
    {
        // The columns that are data, in UTF-8 order of their names (insertion sort: rows are short).
        Span<int> order = row.Count <= 256 ? stackalloc int[row.Count] : new int[row.Count];
        var count = 0;
        for (var i = 0; i < row.Count; i++)
        {
            if (row[i].Kind == ColumnValueKind.UnchangedToast)
                continue;
            var at = count++;
            while (at > 0 && CompareUtf8(row[order[at - 1]].Name, row[i].Name) > 0)
            {
                order[at] = order[at - 1];
                at--;
            }

            order[at] = i;
        }

        Ascii(json, "{");
        for (var k = 0; k < count; k++)
        {
            var column = row[order[k]];
            if (k > 0)
                Ascii(json, ",");
            WriteString(json, column.Name);
            Ascii(json, ":");
            if (column.Kind == ColumnValueKind.Null)
                Ascii(json, "null");
            else
                WriteString(json, column.Text ?? "");
        }

        Ascii(json, "}");
    }

    private static void WriteString(ArrayBufferWriter<byte> json, string text)
    {
        Ascii(json, "\"");
        var plainFrom = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++; // a valid pair is plain text
                continue;
            }

            var escape = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                // A lone surrogate is not text: Go writes the replacement character.
                _ when char.IsSurrogate(c) => "\\ufffd",
                _ => null,
            };
            var hex = escape is null && c is < ' ' or '<' or '>' or '&' or '\u2028' or '\u2029';
            if (escape is null && !hex)
                continue;

            Utf8(json, text.AsSpan(plainFrom, i - plainFrom));
            if (escape is not null)
            {
                Ascii(json, escape);
            }
            else
            {
                Ascii(json, "\\u");
                ((int)c).TryFormat(json.GetSpan(4), out var written, "x4", System.Globalization.CultureInfo.InvariantCulture);
                json.Advance(written);
            }

            plainFrom = i + 1;
        }

        Utf8(json, text.AsSpan(plainFrom));
        Ascii(json, "\"");
    }

    private static void Ascii(ArrayBufferWriter<byte> json, string ascii)
    {
        var span = json.GetSpan(ascii.Length);
        for (var i = 0; i < ascii.Length; i++)
            span[i] = (byte)ascii[i];
        json.Advance(ascii.Length);
    }

    private static void Utf8(ArrayBufferWriter<byte> json, ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
            return;
        json.Advance(Encoding.UTF8.GetBytes(text, json.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length))));
    }

    /// <summary>
    /// Orders strings as their UTF-8 bytes order, without encoding them: UTF-16 code units order the
    /// same except that surrogates (U+D800-U+DFFF, characters beyond U+FFFF) sort after U+E000-U+FFFF.
    /// </summary>
    private static int CompareUtf8(string x, string y)
    {
        var common = Math.Min(x.Length, y.Length);
        for (var i = 0; i < common; i++)
        {
            if (x[i] != y[i])
                return CodePointOrder(x[i]) - CodePointOrder(y[i]);
        }

        return x.Length - y.Length;

        static int CodePointOrder(char c) => c < '\ud800' ? c : c >= '\ue000' ? c - 0x800 : c + 0x2000;
    }
}
