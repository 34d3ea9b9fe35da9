using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Buckets.Rules;

/// <summary>The bucket rule of every configured table, with the parent graph between them.</summary>
public sealed class BucketRuleSet
{
    private readonly Dictionary<TableName, TableRule> _rules;
    private readonly Dictionary<TableName, TableName[]> _children;

    /// <param name="maxBucketsPerRow">A row placed in more buckets than this is a rule failure.</param>
    public BucketRuleSet(IEnumerable<TableRule> rules, int maxBucketsPerRow)
    {
        ArgumentNullException.ThrowIfNull(rules);
        _rules = rules.ToDictionary(r => r.Table);
        _children = _rules.Values.OfType<ParentRule>().GroupBy(r => r.Parent).ToDictionary(g => g.Key, g => g.Select(r => r.Table).ToArray());
        MaxBucketsPerRow = maxBucketsPerRow;
    }

    public int MaxBucketsPerRow { get; }

    public IEnumerable<TableRule> All => _rules.Values;

    public TableRule For(TableName table) =>
        _rules.TryGetValue(table, out var rule)
            ? rule
            : throw new SynchroException($"A change of {table} arrived, but {table} is not in Synchro:Tables of this bucket consumer. Configure the same tables on every bridge process.");

    /// <summary>True when rows of other tables take their buckets from rows of this one.</summary>
    public bool HasChildTables(TableName table) => _children.ContainsKey(table);

    /// <summary>Every table below this one in the parent graph (children, grandchildren, ...).</summary>
    public IReadOnlySet<TableName> DescendantTables(TableName table)
    {
        var found = new HashSet<TableName>();
        var next = new Queue<TableName>([table]);
        while (next.TryDequeue(out var current))
        {
            foreach (var child in _children.GetValueOrDefault(current, []))
            {
                if (found.Add(child))
                    next.Enqueue(child);
            }
        }

        return found;
    }
}

/// <summary>The rule set of this process, loaded at start-up (it needs the database's foreign keys).</summary>
public sealed class BucketRules
{
    private BucketRuleSet? _set;

    public BucketRuleSet Set => _set ?? throw new InvalidOperationException("The bucket rules are loaded at start-up, before the bus starts.");

    /// <summary>The rules, or null before they are loaded.</summary>
    public BucketRuleSet? Loaded => _set;

    public void Load(BucketRuleSet set) => _set = set;
}
