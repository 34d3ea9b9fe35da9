using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Replication.Snapshots;

/// <summary>
/// Reads a table's rows in key order, a chunk at a time (keyset paging: each chunk starts after the
/// last key of the one before, so memory does not grow with the table and an interrupted read resumes
/// from a key). Rows come out as the stream would carry them: the columns pgoutput publishes, each as
/// its type's text output, and the record id from the replica identity's columns.
/// </summary>
internal sealed class TableReader
{
    private readonly string _chunkSql;
    private readonly int[] _keyIndexes;

    private TableReader(RelationSchema schema)
    {
        Schema = schema;
        _keyIndexes = Enumerable.Range(0, schema.Columns.Length).Where(i => schema.Columns[i].IsKey).ToArray();
        var keys = _keyIndexes.Select(i => TableName.QuoteIdentifier(schema.Columns[i].Name)).ToArray();
        var selected = string.Join(", ", schema.Columns.Select(c => TableName.OutputText(TableName.QuoteIdentifier(c.Name))));
        var after = string.Join(", ", keys.Select((_, n) => $"${n + 1}"));
        var key = string.Join(", ", keys);
        _chunkSql = $"SELECT {selected} FROM {schema.Table.Quoted} WHERE ({key}) > ({after}) ORDER BY {key} LIMIT ${keys.Length + 1}";
        FirstChunkSql = $"SELECT {selected} FROM {schema.Table.Quoted} ORDER BY {key} LIMIT $1";
        var upTo = string.Join(", ", keys.Select((_, n) => $"${keys.Length + n + 1}"));
        _boundedChunkSql = $"SELECT {selected} FROM {schema.Table.Quoted} WHERE ({key}) > ({after}) AND ({key}) <= ({upTo}) ORDER BY {key} LIMIT ${2 * keys.Length + 1}";
        var firstUpTo = string.Join(", ", keys.Select((_, n) => $"${n + 1}"));
        _boundedFirstChunkSql = $"SELECT {selected} FROM {schema.Table.Quoted} WHERE ({key}) <= ({firstUpTo}) ORDER BY {key} LIMIT ${keys.Length + 1}";
        _lastKeySql = $"SELECT {string.Join(", ", keys.Select(TableName.OutputText))} FROM {schema.Table.Quoted} ORDER BY {string.Join(", ", keys.Select(k => k + " DESC"))} LIMIT 1";
        // A record id back to key values: the text of a one-column key, a JSON array of texts for several.
        var single = _keyIndexes.Length == 1;
        var keyValues = _keyIndexes.Select((column, n) =>
            $"({(single ? "e.record_id" : $"e.record_id::jsonb ->> {n}")})::{schema.Columns[column].TypeName}");
        _goneWhere = $"NOT EXISTS (SELECT 1 FROM {schema.Table.Quoted} t WHERE ({string.Join(", ", keys.Select(k => "t." + k))}) = ({string.Join(", ", keyValues)}))";
    }

    private readonly string _goneWhere;
    private readonly string _boundedChunkSql;
    private readonly string _boundedFirstChunkSql;
    private readonly string _lastKeySql;

    public RelationSchema Schema { get; }

    /// <summary>A reader of a table whose columns are known (tests; <see cref="OpenAsync"/> reads them from the catalog).</summary>
    internal static TableReader For(RelationSchema schema) => new(schema);

    private string FirstChunkSql { get; }

    /// <summary>The table's published columns and key (the index's key columns, not its INCLUDE ones), from the catalog.</summary>
    public static async Task<TableReader> OpenAsync(NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var command = new NpgsqlCommand(
            """
            SELECT c.oid, a.attname, format_type(a.atttypid, a.atttypmod),
                   EXISTS (SELECT 1 FROM pg_index i
                           WHERE i.indrelid = c.oid AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])
                             AND CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            WHERE n.nspname = $1 AND c.relname = $2
            ORDER BY a.attnum
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.Schema });
        command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
        uint oid = 0;
        var columns = new List<RelationColumn>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                oid = reader.GetFieldValue<uint>(0);
                columns.Add(new RelationColumn(reader.GetString(1), reader.GetString(2), reader.GetBoolean(3)));
            }
        }

        if (columns.Count == 0)
            throw new SynchroException($"Table {table} does not exist (any more). Create it, or remove it from Synchro:Tables.");
        if (!columns.Any(c => c.IsKey))
            throw new TableWithoutKeyException(table.ToString());
        return new TableReader(new RelationSchema(oid, table, [.. columns]));
    }

    /// <summary>
    /// The table's rows as PostgreSQL's statistics estimate them; counted when the table was never
    /// analyzed (a table loaded just before the bridge started), which reads it once more.
    /// </summary>
    public async Task<long> EstimateRowsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT reltuples::bigint FROM pg_class WHERE oid = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = Schema.RelationId, NpgsqlDbType = NpgsqlDbType.Oid });
        if (await command.ExecuteScalarAsync(cancellationToken) is long estimate && estimate >= 0)
            return estimate;
        await using var count = new NpgsqlCommand($"SELECT count(*) FROM {Schema.Table.Quoted}", connection);
        return (long)(await count.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The key column texts of the table's last row in key order; empty when the table is empty.</summary>
    public async Task<IReadOnlyList<string>> ReadLastKeyAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_lastKeySql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Enumerable.Range(0, reader.FieldCount).Select(reader.GetString).ToArray() : [];
    }

    /// <summary>
    /// Up to <paramref name="limit"/> rows after <paramref name="afterKey"/> (from the start when null)
    /// and up to <paramref name="endKey"/> (to the end when null; nothing when empty), in key order.
    /// </summary>
    public async Task<List<ColumnValue[]>> ReadChunkAsync(NpgsqlConnection connection, IReadOnlyList<string>? afterKey, int limit, CancellationToken cancellationToken, IReadOnlyList<string>? endKey = null)
    {
        if (endKey is { Count: 0 })
            return [];
        var sql = (afterKey, endKey) switch
        {
            (null, null) => FirstChunkSql,
            (_, null) => _chunkSql,
            (null, _) => _boundedFirstChunkSql,
            _ => _boundedChunkSql,
        };
        await using var command = new NpgsqlCommand(sql, connection);
        // Untyped parameters: PostgreSQL reads each key text as its column's type.
        foreach (var text in (afterKey ?? []).Concat(endKey ?? []))
            command.Parameters.Add(new NpgsqlParameter { Value = text, NpgsqlDbType = NpgsqlDbType.Unknown });
        command.Parameters.Add(new NpgsqlParameter { Value = limit });
        var rows = new List<ColumnValue[]>(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = Schema.Columns;
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new ColumnValue[columns.Length];
            for (var i = 0; i < columns.Length; i++)
                row[i] = reader.IsDBNull(i) ? ColumnValue.Null(columns[i].Name, columns[i].TypeName) : ColumnValue.Of(columns[i].Name, columns[i].TypeName, reader.GetString(i));
            rows.Add(row);
        }

        return rows;
    }

    /// <summary>
    /// Records the sidecar tables hold (<paramref name="edgesTable"/>) that the table has no row for,
    /// as the transaction's snapshot sees it: deleted while their deletes were not in the stream (a
    /// slot lost in a fail-over, a partition detached or truncated). At most <paramref name="limit"/>,
    /// after <paramref name="afterRecordId"/> in record id order.
    /// </summary>
    public async Task<List<string>> ReadGoneAsync(NpgsqlConnection connection, string edgesTable, string? afterRecordId, int limit, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"""
            SELECT e.record_id FROM (SELECT DISTINCT record_id FROM {edgesTable} WHERE table_name = $1 AND record_id > $2) e
            WHERE {_goneWhere} ORDER BY e.record_id LIMIT $3
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = Schema.Table.SidecarName });
        command.Parameters.Add(new NpgsqlParameter { Value = afterRecordId ?? "" });
        command.Parameters.Add(new NpgsqlParameter { Value = limit });
        var gone = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            gone.Add(reader.GetString(0));
        return gone;
    }

    /// <summary>A record found gone, as the stream carries a delete: the key columns from its record id, the others null.</summary>
    public RowChanged ToDelete(string recordId)
    {
        var keyTexts = _keyIndexes.Length == 1 ? [recordId] : System.Text.Json.JsonSerializer.Deserialize<string[]>(recordId)!;
        var columns = Schema.Columns;
        var key = new ColumnValue[columns.Length];
        for (var i = 0; i < columns.Length; i++)
            key[i] = ColumnValue.Null(columns[i].Name, columns[i].TypeName);
        for (var n = 0; n < _keyIndexes.Length; n++)
            key[_keyIndexes[n]] = ColumnValue.Of(columns[_keyIndexes[n]].Name, columns[_keyIndexes[n]].TypeName, keyTexts[n]);
        return new RowChanged(Schema, ChangeOperation.Delete, recordId, null, key, null) { OldRowIsKey = true };
    }

    /// <summary>The key column texts of a row, to resume after it.</summary>
    public string[] KeyOf(ColumnValue[] row) => _keyIndexes.Select(i => row[i].Text!).ToArray();

    /// <summary>The row as the stream carries a read of it.</summary>
    public RowChanged ToRead(ColumnValue[] row) =>
        new(Schema, ChangeOperation.Read, PgOutputDecoder.RecordIdOf(Schema, row), row, null, null);
}
