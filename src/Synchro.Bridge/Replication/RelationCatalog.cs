using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>
/// What the stream does not say about a relation, asked of the catalog once per Relation message:
/// PostgreSQL's own spelling of each column type (<c>format_type</c>, so user-defined enums, domains
/// and composites are named too), and the primary key when the table streams REPLICA IDENTITY FULL.
/// </summary>
internal sealed class RelationCatalog(NpgsqlDataSource dataSource)
{
    private readonly Dictionary<(uint Oid, int Modifier), string> _typeNames = [];

    public async ValueTask<string[]> TypeNamesAsync(IReadOnlyList<(uint Oid, int Modifier)> types, CancellationToken cancellationToken)
    {
        var missing = types.Where(t => !_typeNames.ContainsKey(t)).Distinct().ToArray();
        if (missing.Length > 0)
        {
            await using var command = dataSource.CreateCommand("SELECT format_type(t.oid, t.modifier) FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS t(oid, modifier, ord) ORDER BY ord");
            command.Parameters.Add(new NpgsqlParameter { Value = missing.Select(t => t.Oid).ToArray(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid });
            command.Parameters.Add(new NpgsqlParameter { Value = missing.Select(t => t.Modifier).ToArray() });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            for (var i = 0; await reader.ReadAsync(cancellationToken); i++)
                _typeNames[missing[i]] = reader.GetString(0);
        }

        return types.Select(t => _typeNames[t]).ToArray();
    }

    /// <summary>Names of the primary key columns of the relation, empty when it has none.</summary>
    public async Task<HashSet<string>> PrimaryKeyAsync(uint relationId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = $1 AND i.indisprimary
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = relationId, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
            columns.Add(reader.GetString(0));
        return columns;
    }
}
