using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Whether the slot would survive a promotion of a standby: on PostgreSQL 17+ a failover slot that
/// a standby running <c>sync_replication_slots</c> keeps synchronized, with
/// <c>synchronized_standby_slots</c> on the primary so the bridge never receives a change the standby
/// lacks. The standbys looked at are the other hosts of the connection string
/// (<c>Host=primary,standby;Target Session Attributes=primary</c>).
/// </summary>
internal static class FailoverReadiness
{
    private static readonly TimeSpan StandbyTimeout = TimeSpan.FromSeconds(3);

    public static async Task<FailoverStatus> ReadAsync(NpgsqlConnection primary, string connectionString, string slotName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        var major = primary.PostgreSqlVersion.Major;
        if (!FailoverSlots.Supported(primary.PostgreSqlVersion))
            return new FailoverStatus(major, null, null, [],
                $"not protected: PostgreSQL {major} does not copy logical slots to standbys, so after a promotion the slot is missing (README, Fail-over of PostgreSQL)");

        bool? slotFailover;
        await using (var slot = new NpgsqlCommand("SELECT failover FROM pg_replication_slots WHERE slot_name = $1", primary))
        {
            slot.Parameters.Add(new NpgsqlParameter { Value = slotName });
            slotFailover = await slot.ExecuteScalarAsync(cancellationToken) as bool?;
        }

        string standbySlots;
        await using (var setting = new NpgsqlCommand("SELECT current_setting('synchronized_standby_slots')", primary))
            standbySlots = (string)(await setting.ExecuteScalarAsync(cancellationToken))!;

        var standbys = new List<StandbyStatus>();
        foreach (var host in OtherHosts(connectionString, primary))
            standbys.Add(await ReadStandbyAsync(connectionString, host, slotName, cancellationToken));

        var ready = standbys.FirstOrDefault(s => s is { SlotSynced: true, SyncReplicationSlots: "on", HotStandbyFeedback: "on" });
        var verdict = (slotFailover, standbySlots, standbys.Count, ready) switch
        {
            (null, _, _, _) => "not yet: the slot does not exist (the bridge creates it when it starts)",
            (false, _, _, _) => $"not protected: slot '{slotName}' is not a failover slot (created before 17, or with Synchro:Replication:Failover=false); with the bridge stopped, run ALTER_REPLICATION_SLOT {slotName} (FAILOVER true) on a replication connection (psql \"dbname=<db> replication=database\"), or drop the slot and start with --accept-gap",
            (true, "", _, _) => "at risk: synchronized_standby_slots is empty on the primary, so the bridge may receive changes no standby has yet; set it to the standby's physical slot",
            (true, _, 0, _) => "cannot tell: the connection string names no standby; list it after the primary (Host=primary,standby;Target Session Attributes=primary)",
            (true, _, _, null) => "not protected: no standby of the connection string holds a synchronized copy of the slot with sync_replication_slots and hot_standby_feedback on",
            (true, _, _, { } standby) => $"ready: the slot is synchronized on {standby.Host}",
        };
        return new FailoverStatus(major, slotFailover, standbySlots, standbys, verdict);
    }

    /// <summary>
    /// With the slot on a standby (standby decoding), a promotion of that standby keeps the slot, so
    /// what matters is that it stays valid: hot_standby_feedback and a physical slot on the primary
    /// keep the catalog rows it needs; a slot the standby invalidated is lost.
    /// </summary>
    public static async Task<FailoverStatus> ReadDecodingStandbyAsync(NpgsqlConnection standby, string slotName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(standby);
        var host = $"{standby.Host}:{standby.Port}";
        await using var command = new NpgsqlCommand(
            """
            SELECT pg_is_in_recovery(), current_setting('hot_standby_feedback'), current_setting('primary_slot_name'),
                   (SELECT conflicting FROM pg_replication_slots WHERE slot_name = $1)
            """, standby);
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var (inRecovery, feedback, physicalSlot, conflicting) = (reader.GetBoolean(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? (bool?)null : reader.GetBoolean(3));
        var verdict = (inRecovery, conflicting, feedback, physicalSlot) switch
        {
            (_, true, _, _) => $"lost: the slot on the decoding standby {host} was invalidated (the primary removed catalog rows it needed, or wal_level dropped); drop it and start with --accept-gap and the initial snapshot",
            (false, _, _, _) => $"the decoding server {host} is a primary now (promoted): the slot goes on there",
            (_, null, _, _) => $"not yet: the slot does not exist on the decoding standby {host} (the bridge creates it when it starts)",
            (_, _, not "on", _) => $"at risk: hot_standby_feedback is off on the decoding standby {host}, so the primary may remove catalog rows the slot needs; turn it on there",
            (_, _, _, "") => $"at risk: the decoding standby {host} has no physical slot on the primary (primary_slot_name), so catalog rows the slot needs may be removed while it is disconnected",
            _ => $"ready: the slot is on the standby {host}, which keeps it when promoted (a standby promoted elsewhere needs it to follow the new primary: recovery_target_timeline = latest)",
        };
        return new FailoverStatus(standby.PostgreSqlVersion.Major, null, null,
            [new StandbyStatus(host, inRecovery, null, null, feedback, null)], verdict);
    }

    private static IEnumerable<string> OtherHosts(string connectionString, NpgsqlConnection primary)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var current = $"{primary.Host}:{primary.Port}";
        foreach (var entry in (builder.Host ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var host = entry.Contains(':', StringComparison.Ordinal) ? entry : $"{entry}:{builder.Port}";
            if (!string.Equals(host, current, StringComparison.OrdinalIgnoreCase))
                yield return host;
        }
    }

    private static async Task<StandbyStatus> ReadStandbyAsync(string connectionString, string host, string slotName, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString)
        {
            Host = host,
            TargetSessionAttributes = "any",
            Timeout = (int)StandbyTimeout.TotalSeconds,
            Pooling = false,
        };
        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand(
                """
                SELECT pg_is_in_recovery(), current_setting('sync_replication_slots', true), current_setting('hot_standby_feedback'),
                       (SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = $1)
                """, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = slotName });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return new StandbyStatus(host, reader.GetBoolean(0), reader.IsDBNull(3) ? false : reader.GetBoolean(3),
                reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), null);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            return new StandbyStatus(host, null, null, null, null, e.Message);
        }
    }
}

/// <param name="SlotFailover">pg_replication_slots.failover of the slot on the primary (null: no slot, or before 17).</param>
/// <param name="SynchronizedStandbySlots">The primary's synchronized_standby_slots (null before 17).</param>
/// <param name="Verdict">ready, at risk, not protected or cannot tell, with what to do.</param>
internal sealed record FailoverStatus(int ServerVersion, bool? SlotFailover, string? SynchronizedStandbySlots, IReadOnlyList<StandbyStatus> Standbys, string Verdict);

/// <param name="SlotSynced">pg_replication_slots.synced of the slot there (false when the standby has no copy).</param>
internal sealed record StandbyStatus(string Host, bool? InRecovery, bool? SlotSynced, string? SyncReplicationSlots, string? HotStandbyFeedback, string? Error);
