using Microsoft.Extensions.Logging;
using Npgsql;

namespace Synchro.Bridge.Replication.Snapshots;

/// <summary>
/// Watches the partitions of the configured partitioned tables. Published through the root,
/// PostgreSQL sends nothing when a partition is attached with rows in it, detached, or truncated on
/// its own (each changes the set of leaves, or a leaf's relfilenode), so those rows would come or
/// go unseen. Each such change requests a backfill of the root, which places the rows that came and
/// deletes the records that went (<see cref="TableReader.ReadGoneAsync"/>). The shape last seen is
/// kept in sync_partition_shapes, so a change made while the bridge was down is found at its start.
/// A new partition that is empty when seen needs nothing: what enters it later is streamed.
/// </summary>
internal sealed class PartitionWatch(NpgsqlDataSource dataSource, SnapshotJobs jobs, string source, IReadOnlyList<TableName> tables, bool backfill, ILogger logger)
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    public async Task RunAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                await CheckAsync(cancellationToken);
            }
            catch (Exception e) when (TransientFailures.IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                // The next round looks again.
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"""
            SELECT t.schema, t.name, s.leaves,
                   (SELECT string_agg(l.relid::oid::text || ':' || c.relfilenode, ',' ORDER BY l.relid::oid)
                    FROM pg_partition_tree(r.oid) l JOIN pg_class c ON c.oid = l.relid WHERE l.isleaf) AS now
            FROM unnest($2::text[], $3::text[]) AS t(schema, name)
            JOIN pg_namespace n ON n.nspname = t.schema JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = t.name AND r.relkind = 'p'
            LEFT JOIN {jobs.PartitionShapes} s ON s.source = $1 AND s.table_name = CASE WHEN t.schema = 'public' THEN t.name ELSE t.schema || '.' || t.name END
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Schema).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Name).ToArray() });
        var seen = new List<(TableName Table, string? Before, string Now)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = new TableName(reader.GetString(0), reader.GetString(1));
                seen.Add((table, reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? "" : reader.GetString(3)));
            }
        }

        foreach (var (table, before, now) in seen)
        {
            if (before == now)
                continue;
            if (before is not null && await WhatChangedAsync(connection, Leaves(before), Leaves(now), cancellationToken) is { } change)
            {
                if (backfill)
                {
                    await jobs.RequestAsync(source, table, SnapshotKind.Backfill, cancellationToken);
                    PartitionLog.Backfilling(logger, table.ToString(), change);
                }
                else
                {
                    PartitionLog.NotBackfilled(logger, table.ToString(), change);
                }
            }

            await SaveAsync(connection, table, now, cancellationToken);
        }
    }

    private static Dictionary<string, string> Leaves(string shape) =>
        shape.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(':')).ToDictionary(p => p[0], p => p[1]);

    /// <summary>Why the rows of the table may differ from what the stream said, or null when nothing was missed.</summary>
    private static async Task<string?> WhatChangedAsync(NpgsqlConnection connection, Dictionary<string, string> before, Dictionary<string, string> now, CancellationToken cancellationToken)
    {
        if (before.Keys.Except(now.Keys).Any())
            return "a partition was detached or dropped";
        if (before.Any(l => now[l.Key] != l.Value))
            return "a partition was truncated (or rewritten)";
        foreach (var added in now.Keys.Except(before.Keys))
        {
            // Empty now: anything it held at its attach was deleted since, through the stream.
            await using var probe = new NpgsqlCommand("SELECT format('SELECT EXISTS (SELECT 1 FROM %s)', $1::oid::regclass)", connection);
            probe.Parameters.Add(new NpgsqlParameter { Value = uint.Parse(added, System.Globalization.CultureInfo.InvariantCulture), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await using var exists = new NpgsqlCommand((string)(await probe.ExecuteScalarAsync(cancellationToken))!, connection);
            if ((bool)(await exists.ExecuteScalarAsync(cancellationToken))!)
                return "a partition with rows was attached";
        }

        return null;
    }

    private async Task SaveAsync(NpgsqlConnection connection, TableName table, string leaves, CancellationToken cancellationToken)
    {
        await using var save = new NpgsqlCommand(
            $"""
            INSERT INTO {jobs.PartitionShapes} (source, table_name, leaves) VALUES ($1, $2, $3)
            ON CONFLICT (source, table_name) DO UPDATE SET leaves = excluded.leaves, updated_at = now()
            """, connection);
        save.Parameters.Add(new NpgsqlParameter { Value = source });
        save.Parameters.Add(new NpgsqlParameter { Value = table.SidecarName });
        save.Parameters.Add(new NpgsqlParameter { Value = leaves });
        await save.ExecuteNonQueryAsync(cancellationToken);
    }
}

internal static partial class PartitionLog
{
    [LoggerMessage(EventId = 6010, Level = LogLevel.Warning, Message = "{Change} in {Table}, which PostgreSQL publishes nothing for: backfilling {Table}")]
    public static partial void Backfilling(ILogger logger, string table, string change);

    [LoggerMessage(EventId = 6011, Level = LogLevel.Warning, Message = "{Change} in {Table}, which PostgreSQL publishes nothing for; with Snapshot:Mode=StreamOnly nothing is read: run synchro-bridge backfill {Table}")]
    public static partial void NotBackfilled(ILogger logger, string table, string change);
}
