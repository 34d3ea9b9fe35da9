using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets.Rules;

/// <summary>How the rows of one table are placed in buckets.</summary>
public abstract record TableRule(TableName Table)
{
    public const string GlobalBucket = "global";
}

/// <summary>Every row is in <c>global</c>.</summary>
public sealed record GlobalRule(TableName Table) : TableRule(Table);

/// <summary>A row belongs to its owner's bucket: <c>user_id = 42</c> → <c>user:42</c>.</summary>
public sealed record OwnerRule(TableName Table, string Column, string Prefix, bool GlobalWhenNull) : TableRule(Table)
{
    public IReadOnlyList<string> BucketsFor(IReadOnlyList<ColumnValue> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        foreach (var column in row)
        {
            if (column.Name != Column)
                continue;
            return column.Kind switch
            {
                ColumnValueKind.Text => [Prefix + ":" + column.Text],
                ColumnValueKind.Null => GlobalWhenNull ? [GlobalBucket] : [],
                _ => throw new BucketRuleException($"Owner column '{Column}' arrived as {column.Kind}; the row cannot be placed."),
            };
        }

        throw new BucketRuleException($"The row has no owner column '{Column}'. Fix OwnerColumn of {Table} in the configuration (or restore the column).");
    }

    /// <summary><c>user_id</c> → <c>user</c>; any other column name is its own prefix.</summary>
    public static string DefaultPrefix(string ownerColumn)
    {
        ArgumentNullException.ThrowIfNull(ownerColumn);
        return ownerColumn.EndsWith("_id", StringComparison.Ordinal) && ownerColumn.Length > 3 ? ownerColumn[..^3] : ownerColumn;
    }
}

/// <summary>
/// A row's buckets are its parent row's buckets: the row of <paramref name="Parent"/> whose key is the
/// value of <paramref name="Columns"/> (in the order of the parent's key columns). A row whose
/// reference is NULL has no parent: it goes to <c>global</c> when <paramref name="GlobalWhenNull"/>,
/// else to no bucket.
/// </summary>
public sealed record ParentRule(TableName Table, TableName Parent, IReadOnlyList<string> Columns, bool GlobalWhenNull) : TableRule(Table)
{
    /// <summary>The parent's record id, or null when the row references no parent.</summary>
    public string? ParentRecordId(IReadOnlyList<ColumnValue> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var texts = new string[Columns.Count];
        for (var i = 0; i < Columns.Count; i++)
        {
            var column = row.FirstOrDefault(c => c.Name == Columns[i])
                ?? throw new BucketRuleException($"The row has no column '{Columns[i]}', which references its parent in {Parent}. Fix Parent:Columns of {Table} in the configuration (or restore the column).");
            if (column.Kind == ColumnValueKind.Null)
                return null;
            if (column.Kind != ColumnValueKind.Text)
                throw new BucketRuleException($"Parent reference column '{Columns[i]}' arrived as {column.Kind}; the row cannot be placed.");
            texts[i] = column.Text!;
        }

        return RecordIds.From(texts);
    }
}

/// <summary>
/// A SQL function places the row: <c>(table_name text, operation text, new_row jsonb, old_row jsonb)
/// returns setof text</c>, called in the apply transaction.
/// </summary>
public sealed record FunctionRule(TableName Table, string FunctionSchema, string FunctionName) : TableRule(Table)
{
    public string QuotedFunction => TableName.QuoteIdentifier(FunctionSchema) + "." + TableName.QuoteIdentifier(FunctionName);

    public string DisplayFunction => FunctionSchema + "." + FunctionName;
}

/// <summary>A bucket rule could not place a row; the change is kept in sync_rule_failures.</summary>
public sealed class BucketRuleException : SynchroException
{
    public BucketRuleException() { }

    public BucketRuleException(string message) : base(message) { }

    public BucketRuleException(string message, Exception innerException) : base(message, innerException) { }
}
