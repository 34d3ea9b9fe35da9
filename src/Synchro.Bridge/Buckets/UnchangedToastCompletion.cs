using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// PostgreSQL leaves a large (TOASTed) value out of an update that did not change it. The published
/// change marks it <see cref="ColumnValueKind.UnchangedToast"/>; before bucket rules and checksums see
/// the row, it is completed by re-reading those columns from the source table, by key, in the apply
/// transaction. No REPLICA IDENTITY FULL is needed. A row deleted since stays incomplete: a later
/// change in the stream removes it anyway. A table or column dropped or renamed since leaves the
/// values as they arrived (<see cref="ColumnValueKind.UnchangedToast"/>): later DDL must never turn
/// into an apply that fails on every retry.
/// </summary>
internal static class UnchangedToastCompletion
{
    public static async Task<IReadOnlyList<RowChange>> CompleteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, ChangeSet changeSet, CancellationToken cancellationToken)
    {
        var incomplete = changeSet.Changes.Where(HasUnchangedToast).ToList();
        if (incomplete.Count == 0 || changeSet.KeyColumns.Count == 0)
            return changeSet.Changes;

        var columns = incomplete.SelectMany(c => c.NewRow!).Where(v => v.Kind == ColumnValueKind.UnchangedToast)
            .Select(v => v.Name).Distinct(StringComparer.Ordinal).ToArray();
        var keys = incomplete.GroupBy(c => c.RecordId, StringComparer.Ordinal)
            .Select(g => changeSet.KeyColumns.Select(k => g.First().NewRow!.First(v => v.Name == k).Text!).ToArray())
            .ToArray();
        Dictionary<string, Dictionary<string, ColumnValue>> current;
        await transaction.SaveAsync("toast_completion", cancellationToken);
        try
        {
            current = await ReadAsync(connection, new TableName(changeSet.Schema, changeSet.Table), changeSet.KeyColumns, columns, keys, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedColumn or PostgresErrorCodes.DatatypeMismatch or PostgresErrorCodes.InvalidTextRepresentation)
        {
            await transaction.RollbackAsync("toast_completion", cancellationToken);
            return changeSet.Changes;
        }

        await transaction.ReleaseAsync("toast_completion", cancellationToken);

        return changeSet.Changes.Select(change =>
            HasUnchangedToast(change) && current.TryGetValue(change.RecordId, out var values)
                ? change with { NewRow = change.NewRow!.Select(v => v.Kind == ColumnValueKind.UnchangedToast ? values[v.Name] with { Type = v.Type } : v).ToArray() }
                : change).ToList();
    }

    private static bool HasUnchangedToast(RowChange change) => change.NewRow?.Any(v => v.Kind == ColumnValueKind.UnchangedToast) == true;

    private static async Task<Dictionary<string, Dictionary<string, ColumnValue>>> ReadAsync(
        NpgsqlConnection connection, TableName table, IReadOnlyList<string> keyColumns, string[] columns, string[][] keys, CancellationToken cancellationToken)
    {
        var keyList = string.Join(", ", keyColumns.Select(TableName.QuoteIdentifier));
        var selected = string.Join(", ", keyColumns.Concat(columns).Select(TableName.QuoteIdentifier)
            .Select(TableName.OutputText));
        var parameter = 0;
        // Untyped parameters let PostgreSQL read each key text as its column's type, so the key index is used.
        var tuples = string.Join(", ", keys.Select(key => "(" + string.Join(", ", key.Select(_ => "$" + ++parameter)) + ")"));

        await using var command = new NpgsqlCommand($"SELECT {selected} FROM {table.Quoted} WHERE ({keyList}) IN ({tuples})", connection);
        foreach (var text in keys.SelectMany(k => k))
            command.Parameters.Add(new NpgsqlParameter { Value = text, NpgsqlDbType = NpgsqlDbType.Unknown });

        var rows = new Dictionary<string, Dictionary<string, ColumnValue>>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var recordId = RecordIds.From(Enumerable.Range(0, keyColumns.Count).Select(reader.GetString).ToArray());
            var values = new Dictionary<string, ColumnValue>(StringComparer.Ordinal);
            for (var i = 0; i < columns.Length; i++)
            {
                var ordinal = keyColumns.Count + i;
                values[columns[i]] = reader.IsDBNull(ordinal) ? ColumnValue.Null(columns[i], "") : ColumnValue.Of(columns[i], "", reader.GetString(ordinal));
            }

            rows[recordId] = values;
        }

        return rows;
    }
}
