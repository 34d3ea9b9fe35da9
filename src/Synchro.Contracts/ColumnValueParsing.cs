using System.Globalization;
using System.Text;

namespace Synchro.Contracts;

/// <summary>
/// Typed readings of <see cref="ColumnValue.Text"/>, PostgreSQL's canonical text output, so a .NET
/// subscriber need not parse it by hand. Exact where the type is exact: numeric reads as decimal,
/// never through double. Each method throws <see cref="FormatException"/> for a value of another
/// kind and <see cref="InvalidOperationException"/> for a NULL or an unchanged TOAST value.
/// </summary>
public static class ColumnValueParsing
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary><c>bool</c>: PostgreSQL writes <c>t</c> or <c>f</c>.</summary>
    public static bool AsBoolean(this ColumnValue value) => Text(value) switch
    {
        "t" => true,
        "f" => false,
        var other => throw new FormatException($"'{other}' is not a PostgreSQL boolean (t or f)."),
    };

    /// <summary><c>int2</c>, <c>int4</c>, <c>int8</c>.</summary>
    public static long AsInt64(this ColumnValue value) => long.Parse(Text(value), NumberStyles.AllowLeadingSign, Invariant);

    /// <summary><c>numeric</c>, exactly (up to 28–29 significant digits; <c>NaN</c> has no decimal and throws).</summary>
    public static decimal AsDecimal(this ColumnValue value) => decimal.Parse(Text(value), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, Invariant);

    /// <summary><c>float4</c>, <c>float8</c>, including <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c>.</summary>
    public static double AsDouble(this ColumnValue value) => Text(value) switch
    {
        "NaN" => double.NaN,
        "Infinity" => double.PositiveInfinity,
        "-Infinity" => double.NegativeInfinity,
        var text => double.Parse(text, NumberStyles.Float, Invariant),
    };

    /// <summary><c>uuid</c>.</summary>
    public static Guid AsGuid(this ColumnValue value) => Guid.Parse(Text(value));

    /// <summary><c>date</c> (ISO output, <c>DateStyle</c> ISO as the replication connection uses).</summary>
    public static DateOnly AsDate(this ColumnValue value) => DateOnly.ParseExact(Text(value), "yyyy-MM-dd", Invariant);

    /// <summary><c>timestamp</c> (without time zone), as an unspecified-kind <see cref="DateTime"/>.</summary>
    public static DateTime AsDateTime(this ColumnValue value) => DateTime.Parse(Text(value), Invariant, DateTimeStyles.None);

    /// <summary><c>timestamptz</c>: PostgreSQL writes it with the session's offset; the instant is exact to the microsecond.</summary>
    public static DateTimeOffset AsDateTimeOffset(this ColumnValue value)
    {
        var text = Text(value);
        // PostgreSQL writes "+00" for whole-hour offsets; .NET wants minutes too.
        if (text.Length > 3 && (text[^3] == '+' || text[^3] == '-'))
            text += ":00";
        return DateTimeOffset.Parse(text, Invariant, DateTimeStyles.None);
    }

    /// <summary><c>bytea</c> in PostgreSQL's hex output (<c>\x0102</c>).</summary>
    public static byte[] AsBytes(this ColumnValue value)
    {
        var text = Text(value);
        return text.StartsWith("\\x", StringComparison.Ordinal)
            ? Convert.FromHexString(text.AsSpan(2))
            : throw new FormatException("bytea is read in hex output (bytea_output = 'hex', the default).");
    }

    /// <summary>
    /// An array literal (<c>{1,NULL,"a b"}</c>, nested <c>{{1,2},{3,4}}</c>) as nested lists: each
    /// element is a string, null for NULL, or a list for a sub-array. Elements are the element type's
    /// text output, unquoted and unescaped.
    /// </summary>
    public static IReadOnlyList<object?> AsArray(this ColumnValue value)
    {
        var text = Text(value);
        var position = text[0] == '[' ? text.IndexOf('=', StringComparison.Ordinal) + 1 : 0; // skip explicit bounds "[0:1]="
        var result = ParseArray(text, ref position);
        return position == text.Length ? result : throw new FormatException($"Trailing characters after the array literal '{text}'.");
    }

    private static List<object?> ParseArray(string text, ref int position)
    {
        Expect(text, ref position, '{');
        var items = new List<object?>();
        if (text[position] == '}')
        {
            position++;
            return items;
        }

        while (true)
        {
            items.Add(text[position] switch
            {
                '{' => ParseArray(text, ref position),
                '"' => ParseQuoted(text, ref position),
                _ => ParseBare(text, ref position),
            });
            var separator = text[position++];
            if (separator == '}')
                return items;
            if (separator != ',' && separator != ';')
                throw new FormatException($"Unexpected '{separator}' in array literal '{text}'.");
        }
    }

    private static string ParseQuoted(string text, ref int position)
    {
        position++;
        var element = new StringBuilder();
        while (text[position] != '"')
        {
            if (text[position] == '\\')
                position++;
            element.Append(text[position++]);
        }

        position++;
        return element.ToString();
    }

    private static string? ParseBare(string text, ref int position)
    {
        var start = position;
        while (text[position] is not (',' or '}' or ';'))
            position++;
        var element = text[start..position];
        return element == "NULL" ? null : element;
    }

    private static void Expect(string text, ref int position, char expected)
    {
        if (text[position] != expected)
            throw new FormatException($"Expected '{expected}' at {position} in array literal '{text}'.");
        position++;
    }

    private static string Text(ColumnValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Text
            ?? throw new InvalidOperationException(value.IsNull
                ? $"Column {value.Name} is NULL, not a value."
                : $"Column {value.Name} was not sent ({value.Unsent}), so it has no value here: keep the value you hold.");
    }
}
