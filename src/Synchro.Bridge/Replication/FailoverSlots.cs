using System.Reflection;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;

namespace Synchro.Bridge.Replication;

/// <summary>
/// PostgreSQL 17's failover slots: a slot created with <c>FAILOVER</c> is copied to standbys that run
/// <c>sync_replication_slots</c>, so after a promotion the bridge goes on from it on the new primary.
/// </summary>
internal static class FailoverSlots
{
    /// <summary>The first version whose slots can fail over.</summary>
    public const int FirstVersion = 17;

    // Npgsql 10 cannot ask for FAILOVER (npgsql/npgsql#5772), and only CREATE_REPLICATION_SLOT on the
    // replication connection exports the snapshot the initial snapshot reads. Its internal
    // CreateReplicationSlot(string) sends a command as written and parses the reply as its public
    // methods do; the version is pinned, and the tests on 17 and 18 fail if this ever changes.
    private static readonly MethodInfo? CreateWithCommand = typeof(ReplicationConnection).GetMethod(
        "CreateReplicationSlot", BindingFlags.Instance | BindingFlags.NonPublic, [typeof(string), typeof(CancellationToken)]);

    public static bool Supported(Version serverVersion) => serverVersion.Major >= FirstVersion;

    /// <summary>Creates a failover pgoutput slot that exports its snapshot, on the replication connection.</summary>
    public static async Task<PgOutputReplicationSlot> CreateWithSnapshotAsync(LogicalReplicationConnection connection, string slotName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (CreateWithCommand is null || CreateWithCommand.ReturnType != typeof(Task<ReplicationSlotOptions>))
            throw new SynchroException(
                "This Npgsql cannot create a failover slot (its internal CreateReplicationSlot changed). Set Synchro:Replication:Failover=false to create an ordinary slot, and report it.");
        // Slot names are checked at start-up: lower-case letters, digits and underscores only.
        var command = $"CREATE_REPLICATION_SLOT {slotName} LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)";
        try
        {
            return new PgOutputReplicationSlot(await (Task<ReplicationSlotOptions>)CreateWithCommand.Invoke(connection, [command, cancellationToken])!);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    /// <summary>Creates a failover slot from SQL (no snapshot is exported) and returns its consistent point.</summary>
    public static async Task<string> CreateAsync(NpgsqlConnection connection, string slotName, bool failover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var create = new NpgsqlCommand(
            failover && Supported(connection.PostgreSqlVersion)
                ? "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
                : "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            connection);
        create.Parameters.Add(new NpgsqlParameter { Value = slotName });
        return (string)(await create.ExecuteScalarAsync(cancellationToken))!;
    }
}
