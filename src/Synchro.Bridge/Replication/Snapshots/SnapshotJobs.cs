using Npgsql;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Replication.Snapshots;

/// <summary>Why a table's existing rows are read.</summary>
public enum SnapshotKind
{
    /// <summary>Every configured table, when the slot is created: consistent with the slot's start.</summary>
    Initial,

    /// <summary>One table while the stream goes on (newly configured, or re-sent on request): published and placed.</summary>
    Backfill,

    /// <summary>One table's bucket placement recomputed after its rule changed: placed, not published.</summary>
    Rebuild,
}

/// <summary>One snapshot, backfill or rebuild of a table, as <c>sync_snapshots</c> keeps it.</summary>
/// <param name="Table">The table as the sidecar tables name it (bare in <c>public</c>).</param>
/// <param name="LastKey">Key column texts of the last row whose placement was confirmed; null before the first chunk.</param>
/// <param name="Method"><c>exported</c> (read in the slot's exported snapshot) or <c>watermark</c> (chunks between watermarks in the stream).</param>
public sealed record SnapshotJob(
    long Id,
    string Source,
    string Table,
    SnapshotKind Kind,
    string Status,
    string? Method,
    IReadOnlyList<string>? LastKey,
    long RowsDone,
    long? RowsEstimated,
    DateTimeOffset RequestedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt)
{
    /// <summary>
    /// The last key a job by watermarks reads, taken when it started (empty: the table was empty);
    /// null for a job an earlier version started. Rows past it were inserted after the job started,
    /// so the stream brings them: without the bound a backfill would chase inserts at the key's end.
    /// </summary>
    public IReadOnlyList<string>? EndKey { get; init; }

    public const string Pending = "pending";
    public const string Running = "running";
    public const string Done = "done";

    /// <summary>Rows per second since the job started, once it has done some.</summary>
    public double? RowsPerSecond => StartedAt is { } started && RowsDone > 0 && UpdatedAt > started
        ? RowsDone / (UpdatedAt - started).TotalSeconds
        : null;

    /// <summary>One line of progress: rows done of the estimate, the rate and the time left.</summary>
    public string Describe()
    {
        var rows = RowsEstimated is { } estimate ? $"{RowsDone} of about {estimate} rows" : $"{RowsDone} rows";
        var rate = RowsPerSecond is { } perSecond ? $", {perSecond:0} rows/s" : "";
        var left = Remaining is { } remaining ? $", about {remaining.TotalSeconds:0} s left" : "";
        return $"{SnapshotJobs.KindName(Kind)} of {Table} (job {Id}) {Status}: {rows}{rate}{left}";
    }

    /// <summary>Time left at the current rate, from the table's estimated size.</summary>
    public TimeSpan? Remaining => Status == Running && RowsPerSecond is { } rate && RowsEstimated is { } total
        ? TimeSpan.FromSeconds(Math.Max(0, total - RowsDone) / rate)
        : null;
}

/// <summary>
/// The <c>sync_snapshots</c> table: what is requested, how far each job got (the last key whose rows
/// the bucket consumer confirmed), and what is done. A job's progress is written only after its rows
/// were confirmed, so an interrupted job resumes after the last confirmed chunk and loses nothing.
/// </summary>
public sealed class SnapshotJobs(NpgsqlDataSource dataSource, SidecarTables tables)
{
    private const string Columns = "id, source, table_name, kind, status, method, last_key, rows_done, rows_estimated, requested_at, started_at, updated_at, finished_at, end_key";

    /// <summary>sync_bucket_edges: which records the sidecar tables hold, for the records a snapshot finds gone.</summary>
    internal string BucketEdges => tables.BucketEdges;

    /// <summary>sync_partition_shapes: the partitions of each partitioned table as last seen.</summary>
    internal string PartitionShapes => tables.PartitionShapes;

    /// <summary>Requests a job for the table; an open job of the table is returned instead of a second one.</summary>
    public async Task<(SnapshotJob Job, bool Created)> RequestAsync(string source, TableName table, SnapshotKind kind, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            INSERT INTO {tables.Snapshots} (source, table_name, kind, status) VALUES ($1, $2, $3, 'pending')
            ON CONFLICT (source, table_name) WHERE status IN ('pending', 'running') DO NOTHING
            RETURNING {Columns}
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        command.Parameters.Add(new NpgsqlParameter { Value = table.SidecarName });
        command.Parameters.Add(new NpgsqlParameter { Value = KindName(kind) });
        var created = await ReadAsync(command, cancellationToken);
        if (created.Count > 0)
            return (created[0], true);
        var open = (await ListAsync(source, openOnly: true, cancellationToken)).Single(j => j.Table == table.SidecarName);
        return (open, false);
    }

    /// <summary>Open jobs (pending or running) first by id, or every job when <paramref name="openOnly"/> is false.</summary>
    public async Task<IReadOnlyList<SnapshotJob>> ListAsync(string source, bool openOnly, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM {tables.Snapshots} WHERE source = $1 {(openOnly ? "AND status IN ('pending', 'running')" : "")} ORDER BY id");
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        return await ReadAsync(command, cancellationToken);
    }

    /// <summary>
    /// Marks the job running with its method and its size estimate. An exported snapshot is recorded;
    /// a job resumed by watermarks keeps the one it started in (where its rows' history begins).
    /// </summary>
    /// <param name="endKey">For a job by watermarks, the table's last key now; a resumed job keeps the one it started with.</param>
    /// <returns>The end key the job reads to (null for an exported snapshot).</returns>
    public async Task<IReadOnlyList<string>?> StartAsync(long id, string method, string? snapshot, long? rowsEstimated, CancellationToken cancellationToken, IReadOnlyList<string>? endKey = null)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            UPDATE {tables.Snapshots}
            SET status = 'running', method = $2, snapshot = coalesce($3, snapshot), rows_estimated = $4, started_at = coalesce(started_at, now()), updated_at = now(),
                end_key = coalesce(end_key, $5)
            WHERE id = $1
            RETURNING end_key
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = method });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)snapshot ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)rowsEstimated ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)endKey?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text });
        return await command.ExecuteScalarAsync(cancellationToken) as string[];
    }

    /// <summary>Records confirmed chunks: the last key reached, the rows they held, and whether the table is done.</summary>
    /// <returns>The job as it stands now; null when it was no longer open (superseded).</returns>
    public async Task<SnapshotJob?> ProgressAsync(long id, IReadOnlyList<string>? lastKey, long rows, bool done, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            UPDATE {tables.Snapshots}
            SET last_key = coalesce($2, last_key), rows_done = rows_done + $3, updated_at = now(),
                status = CASE WHEN $4 THEN 'done' ELSE status END, finished_at = CASE WHEN $4 THEN now() END
            WHERE id = $1 AND status IN ('pending', 'running')
            RETURNING {Columns}
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)lastKey?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = rows });
        command.Parameters.Add(new NpgsqlParameter { Value = done });
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault();
    }

    /// <summary>Ends the source's open jobs: a new initial snapshot reads every table again.</summary>
    public async Task SupersedeOpenAsync(string source, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"UPDATE {tables.Snapshots} SET status = 'superseded', updated_at = now(), finished_at = now() WHERE source = $1 AND status IN ('pending', 'running')");
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<List<SnapshotJob>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var jobs = new List<SnapshotJob>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            jobs.Add(new SnapshotJob(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetString(2),
                ParseKind(reader.GetString(3)),
                reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetFieldValue<string[]>(6),
                reader.GetInt64(7),
                reader.IsDBNull(8) ? null : reader.GetInt64(8),
                reader.GetFieldValue<DateTimeOffset>(9),
                reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10),
                reader.GetFieldValue<DateTimeOffset>(11),
                reader.IsDBNull(12) ? null : reader.GetFieldValue<DateTimeOffset>(12))
            {
                EndKey = reader.IsDBNull(13) ? null : reader.GetFieldValue<string[]>(13),
            });
        }

        return jobs;
    }

    public static string KindName(SnapshotKind kind) => kind.ToString().ToLowerInvariant();

    private static SnapshotKind ParseKind(string kind) => Enum.Parse<SnapshotKind>(kind, ignoreCase: true);
}
