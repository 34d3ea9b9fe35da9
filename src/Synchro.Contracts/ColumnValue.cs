namespace Synchro.Contracts;

/// <summary>Why PostgreSQL did not send a column's value. On the wire: <c>{"unsent": "unchanged-toast"}</c>.</summary>
public enum UnsentReason
{
    /// <summary>
    /// <c>"unchanged-toast"</c>: a TOASTed value (roughly, over 2 kB) that an update did not change.
    /// The value the row had before the change still stands.
    /// </summary>
    UnchangedToast = 1,

    /// <summary>
    /// <c>"not-in-old-key"</c>: a column of an old image that holds only the key (a delete, or the
    /// old identity of a key change, without <c>REPLICA IDENTITY FULL</c>). Not NULL: unknown.
    /// </summary>
    NotInOldKey = 2,
}

/// <summary>
/// One column's value in a row: a value in PostgreSQL's text output, SQL NULL, or a value PostgreSQL
/// did not send (<see cref="Unsent"/>), which is never NULL and never data. On the wire a value is
/// a JSON string, <c>null</c>, or <c>{"unsent": reason}</c>, in the order of the set's columns.
/// </summary>
public sealed class ColumnValue
{
    private static readonly Column Unbound = new("", "", false);

    /// <summary>A value in PostgreSQL's text output.</summary>
    public static ColumnValue Of(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null);

    /// <summary>SQL NULL.</summary>
    public static ColumnValue Null => new(null, null);

    /// <summary>A value PostgreSQL did not send.</summary>
    public static ColumnValue NotSent(UnsentReason reason) => new(null, reason);

    private ColumnValue(string? text, UnsentReason? unsent)
    {
        Text = text;
        Unsent = unsent;
        Column = Unbound;
    }

    /// <summary>The column this value belongs to (set when the row is read from its change set).</summary>
    public Column Column { get; private set; }

    /// <summary>The column's name.</summary>
    public string Name => Column.Name;

    /// <summary>The column's PostgreSQL type.</summary>
    public string Type => Column.Type;

    /// <summary>The value exactly as the type's output function writes it; null for NULL and for an unsent value.</summary>
    public string? Text { get; }

    /// <summary>Why the value was not sent; null when it was (a value or NULL).</summary>
    public UnsentReason? Unsent { get; }

    /// <summary>SQL NULL (a sent value).</summary>
    public bool IsNull => Text is null && Unsent is null;

    /// <summary>PostgreSQL sent this value (text or NULL).</summary>
    public bool IsSent => Unsent is null;

    internal ColumnValue BoundTo(Column column) =>
        ReferenceEquals(Column, Unbound) ? Bind(this, column) : Bind(new ColumnValue(Text, Unsent), column);

    private static ColumnValue Bind(ColumnValue value, Column column)
    {
        value.Column = column;
        return value;
    }

    /// <inheritdoc/>
    public override string ToString() => Unsent is { } reason ? $"{Name}: unsent ({reason})" : $"{Name}: {Text ?? "NULL"}";
}
