using Npgsql;

namespace Synchro.Bridge.Position;

/// <summary>
/// Whether the standbys that keep a copy of the slot (PostgreSQL 17's synchronized_standby_slots)
/// have flushed the primary's WAL as of now, so also the sidecar writes the acknowledgement stands
/// for. A standby copies the slot's position once its own WAL reaches the changes it names, which
/// can be before it has the sidecar transaction that applied them: promoted, it would resume after
/// changes its sidecar tables never got. So the slot is told only once those standbys have them.
/// </summary>
internal sealed class StandbyFlush(NpgsqlDataSource dataSource)
{
    public async Task<bool> CaughtUpAsync(CancellationToken cancellationToken)
    {
        // Nothing to wait for before 17 (the setting is unknown), on a standby, or with no slots listed.
        await using var command = dataSource.CreateCommand(
            """
            SELECT coalesce(bool_and(s.restart_lsn >= pg_current_wal_flush_lsn()), true)
            FROM pg_replication_slots s
            WHERE NOT pg_is_in_recovery() AND s.slot_type = 'physical'
              AND s.slot_name = ANY (string_to_array(replace(coalesce(current_setting('synchronized_standby_slots', true), ''), ' ', ''), ','))
            """);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
