using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>The session holding a replication slot, as pg_replication_slots and pg_stat_activity show it.</summary>
/// <param name="Pid">The walsender's process id.</param>
/// <param name="ApplicationName">The holder's application_name (ours carry the instance id).</param>
/// <param name="ClientAddress">Where the holder connects from.</param>
internal sealed record SlotHolder(int Pid, string? ApplicationName, string? ClientAddress)
{
    public override string ToString() => $"pid {Pid} ({ApplicationName ?? "unknown application"}{(ClientAddress is null ? "" : " from " + ClientAddress)})";
}

/// <summary>
/// Tells our own stale session on the slot (left behind by a network blip: the walsender keeps the
/// slot until wal_sender_timeout) from a live other holder (another instance: we are its standby).
/// Our replication connections carry <see cref="ApplicationName"/>, unique to this process.
/// </summary>
internal sealed class SlotOwnership(NpgsqlDataSource dataSource, string slot, string applicationName)
{
    public string ApplicationName { get; } = applicationName;

    /// <summary>The slot's holder, or null when the slot is free (or missing).</summary>
    public async Task<SlotHolder?> HolderAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT s.active_pid, a.application_name, a.client_addr::text
            FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
            WHERE s.slot_name = $1 AND s.active_pid IS NOT NULL
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = slot });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
            return null;
        return new SlotHolder(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
    }

    public bool IsOurs(SlotHolder holder) => holder?.ApplicationName == ApplicationName;

    /// <summary>Ends our own stale walsender so the slot is free at once (a role may end its own sessions).</summary>
    public async Task TerminateAsync(SlotHolder holder, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(holder);
        await using var command = dataSource.CreateCommand("SELECT pg_terminate_backend($1)");
        command.Parameters.Add(new NpgsqlParameter { Value = holder.Pid });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
