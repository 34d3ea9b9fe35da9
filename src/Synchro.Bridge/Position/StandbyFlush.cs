using Npgsql;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Position;

/// <summary>
/// Whether the standbys that keep or read the slot have the sidecar writes an acknowledgement stands
/// for. Two kinds: those in PostgreSQL 17's synchronized_standby_slots, which copy the slot's position
/// once their WAL reaches the changes it names, possibly before the sidecar transaction that applied
/// them; and a standby the slot is read on (<see cref="DecodingServer"/>), whose slot moves as soon as
/// it is told. Either, promoted, would resume after changes its sidecar tables never got. So the slot
/// is told a position only once they have replayed or flushed the primary's WAL as of its store.
/// </summary>
internal sealed class StandbyFlush(DecodingServer decoding)
{
    private const string Unbounded = "FFFFFFFF/FFFFFFFF";

    /// <summary>
    /// Where the primary's WAL is flushed now, which includes every sidecar write stored so far; null
    /// when no standby must have it (before 17, none listed, the slot on the primary).
    /// </summary>
    public async Task<ulong?> TargetAsync(CancellationToken cancellationToken)
    {
        await using var command = decoding.Primary.CreateCommand(
            $"""
            SELECT CASE WHEN NOT pg_is_in_recovery() AND ($1 OR EXISTS (SELECT 1 FROM pg_replication_slots s WHERE {Listed}))
                        THEN pg_current_wal_flush_lsn()::text END
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = decoding.OnStandby });
        return await command.ExecuteScalarAsync(cancellationToken) is string lsn ? Lsn.Parse(lsn) : null;
    }

    /// <summary>How far every standby that must have the sidecar writes has them (ulong.MaxValue when none must).</summary>
    public async Task<ulong> ReachedAsync(CancellationToken cancellationToken)
    {
        ulong reached;
        await using (var command = decoding.Primary.CreateCommand(
            $"SELECT coalesce(min(coalesce(s.restart_lsn, '{Unbounded}')), '{Unbounded}')::text FROM pg_replication_slots s WHERE NOT pg_is_in_recovery() AND {Listed}"))
            reached = Lsn.Parse((string)(await command.ExecuteScalarAsync(cancellationToken))!);
        if (!decoding.OnStandby)
            return reached;

        // Promoted, it has everything it will ever have.
        await using var replayed = decoding.DataSource.CreateCommand($"SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE '{Unbounded}' END::text");
        return Math.Min(reached, Lsn.Parse((string)(await replayed.ExecuteScalarAsync(cancellationToken))!));
    }

    // Before 17 the setting is unknown: none listed.
    private const string Listed =
        "s.slot_type = 'physical' AND s.slot_name = ANY (string_to_array(replace(coalesce(current_setting('synchronized_standby_slots', true), ''), ' ', ''), ','))";
}
