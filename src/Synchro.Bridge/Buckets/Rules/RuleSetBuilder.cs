using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Buckets.Rules;

/// <summary>
/// Turns the configured tables into rules, checked against the database: owner columns and parent
/// reference columns exist, a parent is another configured table reached through its key, the parent
/// graph has no cycle, a rule function exists with the rule signature. Every problem is reported at
/// once, each with what to change.
/// </summary>
public static class RuleSetBuilder
{
    public static BucketRuleSet Build(IReadOnlyList<TableOptions> tables, BucketOptions options, RuleCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(tables);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(catalog);
        var configured = tables.Select(t => TableName.Parse(t.Name)).ToHashSet();
        var problems = new List<string>();
        var rules = new List<TableRule>();
        for (var i = 0; i < tables.Count; i++)
        {
            var rule = RuleFor(i, tables[i], configured, catalog, problems);
            if (rule is not null)
                rules.Add(rule);
        }

        problems.AddRange(Cycles(rules.OfType<ParentRule>().ToDictionary(r => r.Table, r => r.Parent)));
        if (problems.Count > 0)
            throw new StartupCheckException("The bucket rules cannot be used: " + string.Join(" ", problems));
        return new BucketRuleSet(rules, options.MaxBucketsPerRow);
    }

    /// <summary>The functions the configuration names, as (schema, name).</summary>
    public static IEnumerable<(string Schema, string Name)> Functions(IEnumerable<TableOptions> tables) =>
        tables.Where(t => !string.IsNullOrEmpty(t.Function)).Select(t => ParseFunction(t.Function!));

    public static (string Schema, string Name) ParseFunction(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var name = TableName.Parse(text);
        return (name.Schema, name.Name);
    }

    private static TableRule? RuleFor(int index, TableOptions options, HashSet<TableName> configured, RuleCatalog catalog, List<string> problems)
    {
        var table = TableName.Parse(options.Name);
        var at = $"Synchro:Tables:{index} ({table})";
        if (!catalog.Columns.TryGetValue(table, out var columns))
            return null; // the start-up table check reports a missing table
        var kind = options.Rule?.ToLowerInvariant() switch
        {
            null or "" => Infer(options, table, configured, catalog),
            var explicitKind => explicitKind,
        };

        switch (kind)
        {
            case "global":
                return new GlobalRule(table);

            case "owner":
                if (!columns.Contains(options.OwnerColumn ?? ""))
                {
                    problems.Add($"{at}: owner column '{options.OwnerColumn}' does not exist in {table}; set OwnerColumn to one of its columns ({string.Join(", ", columns.Order(StringComparer.Ordinal))}).");
                    return null;
                }

                return new OwnerRule(table, options.OwnerColumn!, options.BucketPrefix ?? OwnerRule.DefaultPrefix(options.OwnerColumn!), options.GlobalWhenNull);

            case "function":
                var (schema, name) = ParseFunction(options.Function!);
                if (!catalog.RuleFunctions.Contains(schema + "." + name))
                {
                    problems.Add($"{at}: function {schema}.{name}({RuleCatalog.RuleFunctionArguments}) returning setof text does not exist. Create it (CREATE FUNCTION {schema}.{name}(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text ...) or fix Function.");
                    return null;
                }

                return new FunctionRule(table, schema, name);

            case "parent":
                return ParentRuleFor(at, options, table, configured, catalog, problems);

            default:
                problems.Add($"{at}: Rule '{options.Rule}' is not a rule: use owner, parent, function or global.");
                return null;
        }
    }

    /// <summary>The rule a table gets without <c>Rule</c>: synchro's default, owner first, then the single foreign key to another configured table.</summary>
    private static string Infer(TableOptions options, TableName table, HashSet<TableName> configured, RuleCatalog catalog)
    {
        if (!string.IsNullOrEmpty(options.OwnerColumn))
            return "owner";
        if (!string.IsNullOrEmpty(options.Function))
            return "function";
        if (options.Parent is { Table.Length: > 0 })
            return "parent";
        return catalog.ForeignKeys.Any(f => f.Child == table && configured.Contains(f.Parent)) ? "parent" : "global";
    }

    private static ParentRule? ParentRuleFor(string at, TableOptions options, TableName table, HashSet<TableName> configured, RuleCatalog catalog, List<string> problems)
    {
        TableName parent;
        if (options.Parent is { Table.Length: > 0 } named)
        {
            parent = TableName.Parse(named.Table);
            if (!configured.Contains(parent))
            {
                problems.Add($"{at}: parent table {parent} is not in Synchro:Tables; add it (with its own rule) or name another parent.");
                return null;
            }
        }
        else
        {
            var candidates = catalog.ForeignKeys.Where(f => f.Child == table && configured.Contains(f.Parent)).Select(f => f.Parent).Distinct().ToList();
            if (candidates.Count != 1)
            {
                problems.Add(candidates.Count == 0
                    ? $"{at}: no foreign key leads from {table} to another configured table, so it has no parent; set Parent:Table and Parent:Columns, or choose another Rule."
                    : $"{at}: {table} has foreign keys to several configured tables ({string.Join(", ", candidates)}); name the parent with Parent:Table (and Parent:Columns if needed), or set OwnerColumn or Rule.");
                return null;
            }

            parent = candidates[0];
        }

        if (parent == table)
        {
            problems.Add($"{at}: a table cannot be its own parent (rows placed by rows of the same table form chains the bridge does not follow); use an owner column or a function.");
            return null;
        }

        var parentKey = catalog.KeyColumns.GetValueOrDefault(parent, []);
        if (parentKey.Count == 0)
            return null; // the start-up table check reports a parent without a key

        var columns = catalog.Columns[table];
        if (options.Parent is { Columns.Count: > 0 } explicitColumns)
        {
            var missing = explicitColumns.Columns.Where(c => !columns.Contains(c)).ToList();
            if (missing.Count > 0 || explicitColumns.Columns.Count != parentKey.Count)
            {
                problems.Add(missing.Count > 0
                    ? $"{at}: Parent:Columns names {string.Join(", ", missing)}, which {table} does not have."
                    : $"{at}: Parent:Columns lists {explicitColumns.Columns.Count} columns, but the key of {parent} has {parentKey.Count} ({string.Join(", ", parentKey)}); list one column per key column, in that order.");
                return null;
            }

            return new ParentRule(table, parent, explicitColumns.Columns, options.GlobalWhenNull);
        }

        var keys = catalog.ForeignKeys.Where(f => f.Child == table && f.Parent == parent).ToList();
        if (keys.Count != 1)
        {
            problems.Add(keys.Count == 0
                ? $"{at}: no foreign key leads from {table} to {parent}; name the columns that hold the parent's key ({string.Join(", ", parentKey)}) with Parent:Columns."
                : $"{at}: {table} has {keys.Count} foreign keys to {parent} ({string.Join(", ", keys.Select(k => k.Name))}); name the one to follow with Parent:Columns.");
            return null;
        }

        var key = keys[0];
        if (!key.ParentColumns.Order(StringComparer.Ordinal).SequenceEqual(parentKey.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            problems.Add($"{at}: foreign key {key.Name} references {parent} ({string.Join(", ", key.ParentColumns)}), not its key ({string.Join(", ", parentKey)}); the bridge finds parents by key. Name the key columns with Parent:Columns.");
            return null;
        }

        // The child's columns in the order of the parent's key (the order of its record id).
        return new ParentRule(table, parent, parentKey.Select(k => key.ChildColumns[key.ParentColumns.ToList().IndexOf(k)]).ToList(), options.GlobalWhenNull);
    }

    private static IEnumerable<string> Cycles(Dictionary<TableName, TableName> parents)
    {
        var reported = new HashSet<TableName>();
        foreach (var start in parents.Keys)
        {
            var path = new List<TableName> { start };
            var current = start;
            while (parents.TryGetValue(current, out var parent))
            {
                var seenAt = path.IndexOf(parent);
                if (seenAt >= 0)
                {
                    var cycle = path.Skip(seenAt).ToList();
                    if (!reported.Overlaps(cycle))
                    {
                        reported.UnionWith(cycle);
                        yield return $"The parent chain {string.Join(" → ", cycle.Append(parent))} is a cycle: no row in it could ever be placed. Give one of these tables an owner column, a function or Rule global.";
                    }

                    break;
                }

                path.Add(parent);
                current = parent;
            }
        }
    }
}
