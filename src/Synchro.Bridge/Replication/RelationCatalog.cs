using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Changes;

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
            SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])
            WHERE i.indrelid = $1 AND i.indisprimary
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = relationId, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
            columns.Add(reader.GetString(0));
        return columns;
    }

    /// <summary>
    /// A key change's new row can carry unchanged TOAST values that the old key tuple does not hold
    /// (under REPLICA IDENTITY FULL the old row has them). They are read from the row as the change's
    /// transaction left it: only when the row's xmin is that transaction, so no later change is mixed
    /// in. Otherwise (the row changed or went since) they stay <see cref="ColumnValueKind.UnchangedToast"/>.
    /// </summary>
    public async Task CompleteFromCurrentRowAsync(RelationSchema schema, ColumnValue[] newRow, uint transactionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(newRow);
        var missing = Enumerable.Range(0, newRow.Length).Where(i => newRow[i].Kind == ColumnValueKind.UnchangedToast).ToArray();
        var keys = Enumerable.Range(0, schema.Columns.Length).Where(i => schema.Columns[i].IsKey).ToArray();
        if (missing.Length == 0 || keys.Any(i => newRow[i].Kind != ColumnValueKind.Text))
            return;

        string Quoted(int i) => TableName.QuoteIdentifier(schema.Columns[i].Name);
        // Untyped parameters read each key text as its column's type.
        var selected = string.Join(", ", missing.Select(i => TableName.OutputText(Quoted(i))));
        var where = string.Join(" AND ", keys.Select((i, n) => $"{Quoted(i)} = ${n + 1}"));
        await using var command = dataSource.CreateCommand($"SELECT xmin::text, {selected} FROM {schema.Table.Quoted} WHERE {where}");
        foreach (var i in keys)
            command.Parameters.Add(new NpgsqlParameter { Value = newRow[i].Text!, NpgsqlDbType = NpgsqlDbType.Unknown });
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken) || reader.GetString(0) != transactionId.ToString(System.Globalization.CultureInfo.InvariantCulture))
                return;
            for (var n = 0; n < missing.Length; n++)
            {
                var column = newRow[missing[n]];
                newRow[missing[n]] = reader.IsDBNull(n + 1) ? ColumnValue.Null(column.Name, column.Type) : ColumnValue.Of(column.Name, column.Type, reader.GetString(n + 1));
            }
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedColumn)
        {
            // Dropped or renamed since: the values stay marked, never a stall.
        }
    }
}
