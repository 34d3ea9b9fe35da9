using Npgsql;
using NpgsqlTypes;

namespace Synchro.Bridge.Sidecar;

/// <summary>A change set the bucket consumer cannot apply and holds, with everything behind it.</summary>
/// <param name="Table">The change set's table.</param>
/// <param name="Batch">Its batch sequence in its run.</param>
/// <param name="Part">Its index in the batch.</param>
/// <param name="CommitLsn">Commit LSN of its first change: the acknowledgement stays before it.</param>
/// <param name="Error">Why it fails.</param>
/// <param name="Attempts">How often it was tried.</param>
/// <param name="Since">When it first failed.</param>
public sealed record ApplyHold(string Table, long Batch, int Part, ulong CommitLsn, string Error, int Attempts, DateTimeOffset Since)
{
    public string Describe() =>
        $"the bucket consumer holds a change set of {Table} (batch {Batch}, part {Part}, commit LSN {Replication.Lsn.Format(CommitLsn)}) since {Since:u} after {Attempts} attempts: {Error}. " +
        "Later changes wait behind it and PostgreSQL keeps the WAL. Fix the cause (data, schema or rule); it is retried every 30 s, or at once when the bridge restarts.";
}

/// <summary>
/// Where the bucket consumer says which change set it holds, so the slot reader (in this process or
/// another) waits for the operator instead of re-reading the slot, and health can name the cause.
/// </summary>
public interface IApplyHolds
{
    Task RecordAsync(string source, ApplyHold hold, CancellationToken cancellationToken);

    Task ClearAsync(string source, CancellationToken cancellationToken);

    Task<ApplyHold?> ReadAsync(string source, CancellationToken cancellationToken);
}

/// <summary>The holds in <c>sync_apply_holds</c>, one row per source.</summary>
public sealed class PostgresApplyHolds(NpgsqlDataSource dataSource, SidecarSessions sessions, SidecarTables tables) : IApplyHolds
{
    public async Task RecordAsync(string source, ApplyHold hold, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(hold);
        await sessions.RunAsync(async connection =>
        {
            await using var command = new NpgsqlCommand(
                $"""
                INSERT INTO {tables.ApplyHolds} AS h (source, table_name, batch, part, commit_lsn, error, attempts, since, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
                ON CONFLICT (source) DO UPDATE SET table_name = excluded.table_name, batch = excluded.batch, part = excluded.part,
                  commit_lsn = excluded.commit_lsn, error = excluded.error, attempts = excluded.attempts, since = excluded.since, updated_at = now()
                """,
                connection);
            command.Parameters.Add(new NpgsqlParameter { Value = source });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Table });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Batch });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Part });
            command.Parameters.Add(new NpgsqlParameter { Value = new NpgsqlLogSequenceNumber(hold.CommitLsn), NpgsqlDbType = NpgsqlDbType.PgLsn });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Error });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Attempts });
            command.Parameters.Add(new NpgsqlParameter { Value = hold.Since });
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
    }

    public async Task ClearAsync(string source, CancellationToken cancellationToken)
    {
        await sessions.RunAsync(async connection =>
        {
            await using var command = new NpgsqlCommand($"DELETE FROM {tables.ApplyHolds} WHERE source = $1", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = source });
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
    }

    public async Task<ApplyHold?> ReadAsync(string source, CancellationToken cancellationToken)
    {
        // A holder rewrites its row at every retry (at least every 30 s): an older row is left over
        // from a hold that was resolved by a restart, and must not keep the reader waiting.
        await using var command = dataSource.CreateCommand(
            $"SELECT table_name, batch, part, commit_lsn, error, attempts, since FROM {tables.ApplyHolds} WHERE source = $1 AND updated_at > now() - interval '2 minutes'");
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
            return null;
        return new ApplyHold(reader.GetString(0), reader.GetInt64(1), reader.GetInt32(2), (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(3),
            reader.GetString(4), reader.GetInt32(5), reader.GetFieldValue<DateTimeOffset>(6));
    }
}

/// <summary>For tests and the in-memory setup: holds forgotten with the process.</summary>
public sealed class InMemoryApplyHolds : IApplyHolds
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ApplyHold> _holds = new(StringComparer.Ordinal);

    public Task RecordAsync(string source, ApplyHold hold, CancellationToken cancellationToken)
    {
        _holds[source] = hold;
        return Task.CompletedTask;
    }

    public Task ClearAsync(string source, CancellationToken cancellationToken)
    {
        _holds.TryRemove(source, out _);
        return Task.CompletedTask;
    }

    public Task<ApplyHold?> ReadAsync(string source, CancellationToken cancellationToken) =>
        Task.FromResult(_holds.TryGetValue(source, out var hold) ? hold : null);
}
