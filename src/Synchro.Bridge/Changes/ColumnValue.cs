namespace Synchro.Bridge.Changes;

/// <summary>How a column appears in a row image.</summary>
public enum ColumnValueKind
{
    /// <summary>SQL NULL (distinct from the empty string).</summary>
    Null = 0,

    /// <summary>A value, in PostgreSQL's canonical text representation.</summary>
    Text = 1,

    /// <summary>
    /// A TOASTed value the update did not change; PostgreSQL did not send it. It is never data:
    /// the previous value still stands.
    /// </summary>
    UnchangedToast = 2,
}

/// <summary>One column of a row image.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">PostgreSQL type name (for example <c>int8</c>, <c>text</c>, <c>timestamptz</c>).</param>
/// <param name="Kind">Null, a value, or an unchanged TOAST value.</param>
/// <param name="Text">The value in PostgreSQL's text output format when <paramref name="Kind"/> is <see cref="ColumnValueKind.Text"/>; otherwise null.</param>
public sealed record ColumnValue(string Name, string Type, ColumnValueKind Kind, string? Text)
{
    /// <summary>A SQL NULL.</summary>
    public static ColumnValue Null(string name, string type) => new(name, type, ColumnValueKind.Null, null);

    /// <summary>A value in text form.</summary>
    public static ColumnValue Of(string name, string type, string text) => new(name, type, ColumnValueKind.Text, text);
}

public static class RowShapes
{
    /// <summary>The row has exactly these columns (names and types, in order).</summary>
    public static bool HasColumns(this IReadOnlyList<ColumnValue> row, int count, Func<int, string> name, Func<int, string> type)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(type);
        if (row.Count != count)
            return false;
        for (var i = 0; i < count; i++)
        {
            if (!string.Equals(row[i].Name, name(i), StringComparison.Ordinal) || !string.Equals(row[i].Type, type(i), StringComparison.Ordinal))
                return false;
        }

        return true;
    }
}
