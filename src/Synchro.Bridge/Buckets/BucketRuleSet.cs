using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Buckets;

/// <summary>The bucket rule of every configured table, built once from configuration.</summary>
public sealed class BucketRuleSet
{
    private readonly Dictionary<TableName, IBucketRule> _rules;

    public BucketRuleSet(IEnumerable<TableOptions> tables)
    {
        ArgumentNullException.ThrowIfNull(tables);
        _rules = tables.ToDictionary(t => TableName.Parse(t.Name), RuleFor);
    }

    public IBucketRule For(TableName table) =>
        _rules.TryGetValue(table, out var rule)
            ? rule
            : throw new SynchroException($"A change set for {table} arrived, but {table} is not in Synchro:Tables of this bucket consumer. Configure the same tables on every bridge process.");

    public static IBucketRule RuleFor(TableOptions table)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (string.IsNullOrEmpty(table.OwnerColumn))
            return new GlobalRule();
        return new OwnerColumnRule(table.OwnerColumn, table.BucketPrefix ?? DefaultPrefix(table.OwnerColumn), table.GlobalWhenNull);
    }

    /// <summary><c>user_id</c> → <c>user</c>; any other column name is its own prefix.</summary>
    public static string DefaultPrefix(string ownerColumn)
    {
        ArgumentNullException.ThrowIfNull(ownerColumn);
        return ownerColumn.EndsWith("_id", StringComparison.Ordinal) && ownerColumn.Length > 3 ? ownerColumn[..^3] : ownerColumn;
    }
}
