using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>A row belongs to its owner's bucket: <c>user_id = 42</c> → <c>user:42</c>.</summary>
public sealed class OwnerColumnRule(string ownerColumn, string bucketPrefix, bool globalWhenNull) : IBucketRule
{
    public const string GlobalBucket = "global";

    private static readonly IReadOnlyList<string> Global = [GlobalBucket];

    public IReadOnlyList<string> BucketsFor(IReadOnlyList<ColumnValue> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        foreach (var column in row)
        {
            if (column.Name != ownerColumn)
                continue;
            return column.Kind switch
            {
                ColumnValueKind.Text => [bucketPrefix + ":" + column.Text],
                ColumnValueKind.Null => globalWhenNull ? Global : [],
                _ => throw new BucketRuleException($"Owner column '{ownerColumn}' arrived as {column.Kind}; the row cannot be placed."),
            };
        }

        throw new BucketRuleException($"The row has no owner column '{ownerColumn}'. Fix OwnerColumn in the table's configuration (or restore the column).");
    }
}

/// <summary>Every row is in <c>global</c>.</summary>
public sealed class GlobalRule : IBucketRule
{
    private static readonly IReadOnlyList<string> Global = [OwnerColumnRule.GlobalBucket];

    public IReadOnlyList<string> BucketsFor(IReadOnlyList<ColumnValue> row) => Global;
}
