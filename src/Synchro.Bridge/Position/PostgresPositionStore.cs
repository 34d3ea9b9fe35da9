using Npgsql;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Position;

/// <summary>
/// Keeps the confirmed LSN in <c>sync_wal_position</c>, next to the data it describes, as synchro
/// stores it: a 64-bit integer (LSNs stay below 2^63).
/// </summary>
public sealed class PostgresPositionStore(NpgsqlDataSource dataSource, SidecarSessions sessions, SidecarTables tables) : IPositionStore
{
    public async Task<ulong?> LoadAsync(string slotName, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT confirmed_lsn FROM {tables.WalPosition} WHERE slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        var result = await command.ExecuteScalarAsync(cancellationToken);
        return result is long lsn ? (ulong)lsn : null;
    }

    public async Task ForgetAsync(string slotName, CancellationToken cancellationToken)
    {
        await sessions.RunAsync(async connection =>
        {
            await using var command = new NpgsqlCommand($"DELETE FROM {tables.WalPosition} WHERE slot_name = $1", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = slotName });
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
    }

    public async Task SaveAsync(string slotName, ulong lsn, CancellationToken cancellationToken)
    {
        await using var session = await sessions.OpenAsync(cancellationToken);
        var connection = session.Connection;
        // One batch is one implicit transaction, so SET LOCAL covers the upsert: this commit waits for
        // its WAL flush, which also makes every earlier (asynchronously committed) sidecar write durable.
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SET LOCAL synchronous_commit = on"),
                new NpgsqlBatchCommand(
                    $"""
                    INSERT INTO {tables.WalPosition} AS p (slot_name, confirmed_lsn, updated_at) VALUES ($1, $2, now())
                    ON CONFLICT (slot_name) DO UPDATE
                      SET confirmed_lsn = GREATEST(p.confirmed_lsn, excluded.confirmed_lsn), updated_at = now()
                    """)
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = slotName },
                        new NpgsqlParameter { Value = checked((long)lsn) },
                    },
                },
            },
        };
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<long> BeginRunAsync(string source, CancellationToken cancellationToken)
    {
        return await sessions.RunAsync(async connection =>
        {
            await using var command = new NpgsqlCommand(
                $"""
                INSERT INTO {tables.Runs} AS r (source, epoch, started_at) VALUES ($1, 1, now())
                ON CONFLICT (source) DO UPDATE SET epoch = r.epoch + 1, started_at = now()
                RETURNING epoch
                """,
                connection);
            command.Parameters.Add(new NpgsqlParameter { Value = source });
            return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }, cancellationToken);
    }
}
