using Npgsql;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Buckets.Rules;

/// <summary>A foreign key between two tables, its columns in the order of the referenced key.</summary>
public sealed record ForeignKey(string Name, TableName Child, TableName Parent, IReadOnlyList<string> ChildColumns, IReadOnlyList<string> ParentColumns);

/// <summary>What the database says about the configured tables, for building and checking the bucket rules.</summary>
public sealed class RuleCatalog
{
    /// <summary>Columns of each table (existing ones only).</summary>
    public Dictionary<TableName, HashSet<string>> Columns { get; } = [];

    /// <summary>The columns of each table's record id, in record-id order (primary key, or the replica identity index).</summary>
    public Dictionary<TableName, IReadOnlyList<string>> KeyColumns { get; } = [];

    /// <summary>Foreign keys from a configured table to another configured table.</summary>
    public List<ForeignKey> ForeignKeys { get; } = [];

    /// <summary>Functions (schema.name) that exist with the rule signature.</summary>
    public HashSet<string> RuleFunctions { get; } = new(StringComparer.Ordinal);

    public const string RuleFunctionArguments = "text, text, jsonb, jsonb";

    public static async Task<RuleCatalog> ReadAsync(NpgsqlConnection connection, IReadOnlyCollection<TableName> tables, IEnumerable<(string Schema, string Name)> functions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(tables);
        var catalog = new RuleCatalog();
        var names = tables.Select(t => t.Quoted).ToArray();
        var byOid = new Dictionary<uint, TableName>();

        await using (var command = new NpgsqlCommand(
            """
            SELECT t.name, c.oid, n.nspname, c.relname,
                   ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                   ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                         WHERE i.indrelid = c.oid AND (CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END)
                         ORDER BY a.attnum)
            FROM unnest($1::text[]) AS t(name) JOIN pg_class c ON c.oid = to_regclass(t.name) JOIN pg_namespace n ON n.oid = c.relnamespace
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = names });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = new TableName(reader.GetString(2), reader.GetString(3));
                byOid[reader.GetFieldValue<uint>(1)] = table;
                catalog.Columns[table] = new HashSet<string>(reader.GetFieldValue<string[]>(4), StringComparer.Ordinal);
                catalog.KeyColumns[table] = reader.GetFieldValue<string[]>(5);
            }
        }

        await using (var command = new NpgsqlCommand(
            """
            SELECT f.conname, f.conrelid, f.confrelid,
                   ARRAY(SELECT a.attname::text FROM unnest(f.conkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                   ARRAY(SELECT a.attname::text FROM unnest(f.confkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
            FROM pg_constraint f
            WHERE f.contype = 'f' AND f.conrelid = ANY($1::oid[]) AND f.confrelid = ANY($1::oid[]) AND f.conrelid <> f.confrelid
            ORDER BY f.conname
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = byOid.Keys.ToArray(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                catalog.ForeignKeys.Add(new ForeignKey(reader.GetString(0), byOid[reader.GetFieldValue<uint>(1)], byOid[reader.GetFieldValue<uint>(2)],
                    reader.GetFieldValue<string[]>(3), reader.GetFieldValue<string[]>(4)));
            }
        }

        foreach (var (schema, name) in functions.Distinct())
        {
            // The rule signature exactly: four arguments, returning setof text.
            await using var command = new NpgsqlCommand(
                """
                SELECT EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I(text, text, jsonb, jsonb)', $1::text, $2::text))
                               AND p.proretset AND p.prorettype = 'text'::regtype)
                """, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = schema });
            command.Parameters.Add(new NpgsqlParameter { Value = name });
            if ((bool)(await command.ExecuteScalarAsync(cancellationToken))!)
                catalog.RuleFunctions.Add(schema + "." + name);
        }

        return catalog;
    }
}
