using System.Net.Sockets;
using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Position;
using Synchro.Bridge.Replication.Snapshots;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Start-up checks of the source database, each failing with what to do, then the objects the slot
/// reader needs: the publication (kept equal to the configured tables) and the durable slot.
/// </summary>
internal sealed class SourceSetup(NpgsqlDataSource dataSource, SynchroOptions options, IPositionStore positions, SnapshotJobs? snapshotJobs = null, DecodingServer? decoding = null)
{
    private const string OutputPlugin = "pgoutput";

    public async Task<NpgsqlConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await dataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException)
        {
            var builder = new NpgsqlConnectionStringBuilder(options.Postgres.ConnectionString);
            throw new StartupCheckException(
                $"Cannot connect to PostgreSQL at {builder.Host}:{builder.Port}, database '{builder.Database}' ({e.Message}). Start PostgreSQL or fix Synchro:Postgres:ConnectionString.", e);
        }
    }

    /// <summary>The oldest PostgreSQL the bridge runs on: pgoutput's <c>binary</c> and <c>messages</c> options came with 14.</summary>
    public const int OldestServerVersion = 14;

    /// <summary>Refuses a server older than <see cref="OldestServerVersion"/> before anything is created on it.</summary>
    public static void CheckServerVersion(NpgsqlConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var version = connection.PostgreSqlVersion;
        if (version.Major < OldestServerVersion)
            throw new StartupCheckException(
                $"PostgreSQL {version.ToString(2)} at {connection.Host}:{connection.Port} is not supported: the bridge needs PostgreSQL {OldestServerVersion} or newer (pgoutput's binary and messages options; {version.Major} is end-of-life). Upgrade the server (pg_upgrade, or a dump and restore) and start the bridge again.");
    }

    /// <summary>Checks that hold for every role: the database is reachable and every table is usable.</summary>
    public async Task CheckTablesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        foreach (var table in options.Tables.Select(t => TableName.Parse(t.Name)))
        {
            await using var command = new NpgsqlCommand(
                """
                SELECT c.relkind,
                       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_primary_key,
                       c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS has_identity_index,
                       c.relreplident::text,
                       has_table_privilege(c.oid, 'SELECT'),
                       CASE WHEN c.relispartition THEN (SELECT r.relnamespace::regnamespace::text || '.' || r.relname FROM pg_partition_ancestors(c.oid) a JOIN pg_class r ON r.oid = a.relid WHERE NOT r.relispartition) END
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2
                """, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = table.Schema });
            command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
                throw new StartupCheckException($"Table {table} does not exist in database '{connection.Database}'. Create it, or remove it from Synchro:Tables.");
            var kind = reader.GetChar(0);
            if (kind is not ('r' or 'p'))
                throw new StartupCheckException($"{table} is not a table (relkind '{kind}'); only tables can be published. Remove it from Synchro:Tables.");
            // Changes are published under the root (publish_via_partition_root), so a partition has no stream of its own.
            if (!reader.IsDBNull(5))
                throw new StartupCheckException(
                    $"Table {table} is a partition of {reader.GetString(5)}: partitioned tables are published through their root, whose rule places every partition's rows. Put {reader.GetString(5)} in Synchro:Tables instead of {table}.");
            var identity = reader.GetString(3);
            if (identity == "n")
                throw new StartupCheckException(
                    $"Table {table} has REPLICA IDENTITY NOTHING, so its deletes and key changes reach the stream without a key. Run ALTER TABLE {table} REPLICA IDENTITY DEFAULT.");
            // FULL sends whole old rows, but the record id still comes from the primary key.
            if (!reader.GetBoolean(1) && !(identity == "i" && reader.GetBoolean(2)))
                throw new TableWithoutKeyException(table.ToString());
            // Snapshots, backfills and unchanged TOAST values read the table itself.
            if (!reader.GetBoolean(4))
                throw new StartupCheckException($"Role '{connection.UserName}' may not read {table}. Run GRANT SELECT ON {table} TO {connection.UserName}.");
        }
    }

    /// <summary>
    /// Opens a connection to the decoding standby (<c>Synchro:Postgres:DecodingConnectionString</c>)
    /// and checks it can hold the slot: a hot standby of this very primary, PostgreSQL 16 or newer,
    /// wal_level = logical, hot_standby_feedback on (without it the primary may remove catalog rows
    /// the slot still needs, and PostgreSQL invalidates the slot). A standby since promoted is a
    /// primary like any other.
    /// </summary>
    public static async Task<NpgsqlConnection> ConnectDecodingStandbyAsync(NpgsqlConnection primary, DecodingServer standby, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(standby);
        NpgsqlConnection connection;
        try
        {
            connection = await standby.DataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException)
        {
            var builder = new NpgsqlConnectionStringBuilder(standby.ConnectionString);
            throw new StartupCheckException(
                $"Cannot connect to the decoding standby at {builder.Host}:{builder.Port}, database '{builder.Database}' ({e.Message}). Start it or fix Synchro:Postgres:DecodingConnectionString (empty reads the slot on the primary).", e);
        }

        try
        {
            CheckServerVersion(connection);
            var primaryId = await ScalarAsync<string>(primary, "SELECT system_identifier::text FROM pg_control_system()", cancellationToken);
            var standbyId = await ScalarAsync<string>(connection, "SELECT system_identifier::text FROM pg_control_system()", cancellationToken);
            var where = $"{connection.Host}:{connection.Port}";
            if (primaryId != standbyId || connection.Database != primary.Database)
                throw new StartupCheckException(
                    $"Synchro:Postgres:DecodingConnectionString names {where}, database '{connection.Database}', which is not a standby of the primary's database '{primary.Database}' ({(primaryId != standbyId ? "another cluster: its system identifier differs" : "another database")}). Point it at a hot standby of the primary, same database, or leave it empty to read the slot on the primary.");
            if (await ScalarAsync<bool>(connection, "SELECT pg_is_in_recovery()", cancellationToken))
            {
                if (connection.PostgreSqlVersion.Major < 16)
                    throw new StartupCheckException(
                        $"The decoding standby {where} runs PostgreSQL {connection.PostgreSqlVersion.ToString(2)}; a slot on a standby needs PostgreSQL 16 or newer. Upgrade it, or leave Synchro:Postgres:DecodingConnectionString empty to read the slot on the primary.");
                if (await ScalarAsync<string>(connection, "SHOW hot_standby_feedback", cancellationToken) != "on")
                    throw new StartupCheckException(
                        $"The decoding standby {where} runs with hot_standby_feedback = off, so the primary may remove catalog rows its slot needs and PostgreSQL would invalidate the slot. On the standby run ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf(); (and give it a physical slot on the primary: primary_slot_name).");
            }

            await CheckReplicationPrerequisitesAsync(connection, cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The source's origin: this cluster's system identifier, the database and the slot.</summary>
    public async Task IdentifyAsync(NpgsqlConnection connection, SourceIdentity source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var systemIdentifier = await ScalarAsync<string>(connection, "SELECT system_identifier::text FROM pg_control_system()", cancellationToken);
        source.SetOrigin(systemIdentifier, connection.Database, options.Replication.SlotName);
    }

    /// <summary>What the slot reader needs of the server and the role, checked before anything is created.</summary>
    public static async Task CheckReplicationPrerequisitesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var walLevel = await ScalarAsync<string>(connection, "SHOW wal_level", cancellationToken);
        if (walLevel != "logical")
            throw new StartupCheckException(
                $"PostgreSQL runs with wal_level = '{walLevel}'; logical replication needs 'logical'. Run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL.");

        var canReplicate = await ScalarAsync<bool>(connection, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", cancellationToken);
        if (!canReplicate)
            throw new StartupCheckException(
                $"Role '{connection.UserName}' may not start replication. Run ALTER ROLE {connection.UserName} WITH REPLICATION, or connect as a role that has it.");
    }

    /// <summary>
    /// Creates or aligns the publication, then creates the slot when missing (with the initial
    /// snapshot, the slot reader creates it, to read in the snapshot it exports). Tables added to the
    /// configuration of a running source get a backfill of their existing rows (unless StreamOnly).
    /// </summary>
    /// <param name="rules">Orders the backfills of added tables parents first.</param>
    /// <param name="slotConnection">Where the slot is: <paramref name="connection"/>, or the decoding standby.</param>
    public async Task PrepareReplicationAsync(NpgsqlConnection connection, NpgsqlConnection slotConnection, string source, BucketRuleSet? rules, CancellationToken cancellationToken)
    {
        // Requested before the table joins the publication: a crash in between leaves the table out of
        // the publication, so the next start finds it added again (and joins the open request).
        var slotStart = await ExistingSlotAsync(slotConnection, cancellationToken);
        var backfill = options.Snapshot.Mode == SnapshotMode.Initial && snapshotJobs is not null && slotStart is not null;
        try
        {
            await AlignPublicationAsync(connection, async added =>
            {
                foreach (var table in backfill ? SnapshotRunner.ParentsFirst(added, rules) : [])
                    await snapshotJobs!.RequestAsync(source, table, SnapshotKind.Backfill, cancellationToken);
            }, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new StartupCheckException(
                $"Role '{connection.UserName}' may not create or change publication '{options.Replication.PublicationName}' ({e.MessageText}). Publishing a table needs its owner (or a superuser): create the publication once as the owner, FOR TABLE exactly the tables in Synchro:Tables WITH (publish_via_partition_root = true), or connect as the owner.", e);
        }

        await EnsureSlotAsync(slotConnection, slotStart, cancellationToken);
    }

    /// <param name="addingToExisting">Called with the tables about to be added to an existing publication, before they are.</param>
    private async Task AlignPublicationAsync(NpgsqlConnection connection, Func<IReadOnlyList<TableName>, Task> addingToExisting, CancellationToken cancellationToken)
    {
        var publication = options.Replication.PublicationName;
        var name = TableName.QuoteIdentifier(publication);
        var configured = options.Tables.Select(t => TableName.Parse(t.Name)).ToList();
        var wanted = configured.ToHashSet();
        var tableList = string.Join(", ", wanted.Select(t => t.Quoted));

        await using var lookup = new NpgsqlCommand("SELECT puballtables, pubviaroot FROM pg_publication WHERE pubname = $1", connection);
        lookup.Parameters.Add(new NpgsqlParameter { Value = publication });
        bool? allTables = null, viaRoot = null;
        await using (var reader = await lookup.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken))
                (allTables, viaRoot) = (reader.GetBoolean(0), reader.GetBoolean(1));
        }

        if (allTables is null)
        {
            // Through the root: a partitioned table's changes carry its own name and its rule, whichever partition holds the row.
            await ExecuteAsync(connection, $"CREATE PUBLICATION {name} FOR TABLE {tableList} WITH (publish_via_partition_root = true)", cancellationToken);
            return;
        }

        if (allTables is true)
            throw new StartupCheckException(
                $"Publication '{publication}' publishes ALL TABLES; the bridge manages its own publication of exactly Synchro:Tables. Drop it or choose another Synchro:Replication:PublicationName.");

        // Without it, pg_publication_tables lists partitions instead of their root: set it before comparing.
        if (viaRoot is false && await AnyPartitionedAsync(connection, configured, cancellationToken))
            await ExecuteAsync(connection, $"ALTER PUBLICATION {name} SET (publish_via_partition_root = true)", cancellationToken);

        var published = new HashSet<TableName>();
        await using (var current = new NpgsqlCommand("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", connection))
        {
            current.Parameters.Add(new NpgsqlParameter { Value = publication });
            await using var reader = await current.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                published.Add(new TableName(reader.GetString(0), reader.GetString(1)));
        }

        if (!published.SetEquals(wanted))
        {
            await addingToExisting(configured.Where(t => !published.Contains(t)).ToList());
            await ExecuteAsync(connection, $"ALTER PUBLICATION {name} SET TABLE {tableList}", cancellationToken);
        }

        // A publication its owner created may narrow what it sends: refused, never streamed with gaps.
        var problems = await PublicationShape.ProblemsAsync(connection, publication, configured, cancellationToken);
        if (problems.Count > 0)
            throw new StartupCheckException("Not started: " + string.Join("; ", problems) + ".");
    }

    private static async Task<bool> AnyPartitionedAsync(NpgsqlConnection connection, IReadOnlyList<TableName> tables, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS t(schema, name)
                           JOIN pg_namespace n ON n.nspname = t.schema JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
                           WHERE c.relkind = 'p')
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Schema).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Name).ToArray() });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// The slot's confirmed position when it exists (null when not); a slot of that name that is not
    /// a pgoutput slot of this database is refused before anything is created.
    /// </summary>
    private async Task<ulong?> ExistingSlotAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var slot = options.Replication.SlotName;
        await using var lookup = new NpgsqlCommand("SELECT plugin, database, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", connection);
        lookup.Parameters.Add(new NpgsqlParameter { Value = slot });
        await using var reader = await lookup.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
            return null;
        var plugin = reader.IsDBNull(0) ? "(physical)" : reader.GetString(0);
        var database = reader.IsDBNull(1) ? "" : reader.GetString(1);
        if (plugin != OutputPlugin || database != connection.Database)
            throw new StartupCheckException(
                $"Replication slot '{slot}' exists but is a {plugin} slot of database '{database}'; the bridge needs a pgoutput slot of '{connection.Database}'. Choose another Synchro:Replication:SlotName or drop that slot.");
        return reader.IsDBNull(2) ? 0 : Lsn.Parse(reader.GetString(2));
    }

    /// <summary>
    /// Makes sure the slot exists and still holds every change after the position the sidecar tables
    /// were brought to (sync_wal_position). A slot that is missing, or was recreated past that
    /// position, lost changes: start is refused unless the operator accepts the gap.
    /// </summary>
    private async Task EnsureSlotAsync(NpgsqlConnection connection, ulong? slotStart, CancellationToken cancellationToken)
    {
        var slot = options.Replication.SlotName;

        // Read after the slot: the position store is written before the slot is told, so a running
        // instance can only make the stored position larger than the slot's, never smaller.
        var stored = await positions.LoadAsync(slot, cancellationToken);
        if (slotStart is { } start)
        {
            if (stored is { } applied && start > applied)
                await GapAsync($"replication slot '{slot}' starts at {Lsn.Format(start)}, after {Lsn.Format(applied)}, the position sync_wal_position says the sidecar tables were brought to (was the slot dropped and created again?): the changes in between are not in the slot", start, cancellationToken);
            return;
        }

        if (stored is { } position)
        {
            await GapAsync($"replication slot '{slot}' is missing, but sync_wal_position says the sidecar tables were brought to {Lsn.Format(position)}: the changes since then were lost with the slot", null, cancellationToken);
            // Accepted. Forgotten before the new slot exists: a process that dies before it stores the
            // new slot's position must not find the old one at its next start and report the gap again.
            await positions.ForgetAsync(slot, cancellationToken);
        }

        var freeSlots = await ScalarAsync<long>(connection,
            "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)", cancellationToken);
        if (freeSlots <= 0)
            throw new StartupCheckException(
                "PostgreSQL has no free replication slot (max_replication_slots is used up). Drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots and restart PostgreSQL.");
        if (options.Snapshot.Mode == SnapshotMode.Initial)
            return; // the slot reader creates it, exporting the snapshot its initial snapshot reads

        // A standby cannot create a failover slot: only a primary's slots are synchronized.
        var failover = options.Replication.Failover && decoding?.OnStandby != true;
        var created = Lsn.Parse(decoding is null
            ? await FailoverSlots.CreateAsync(connection, slot, failover, cancellationToken)
            : await decoding.CreatingSlotAsync(ct => FailoverSlots.CreateAsync(connection, slot, failover, ct), cancellationToken));
        if (stored is not null)
            await positions.SaveAsync(slot, created, cancellationToken); // the accepted gap: start afresh from the new slot
    }

    private async Task GapAsync(string what, ulong? slotStart, CancellationToken cancellationToken)
    {
        if (!options.Replication.AcceptGap)
            throw new StartupCheckException(
                $"Not started: {what}. Resynchronise the sidecar tables from the application tables, or run synchro-bridge run --accept-gap (Synchro:Replication:AcceptGap=true) to go on without those changes, knowingly.");
        if (slotStart is { } start)
            await positions.SaveAsync(options.Replication.SlotName, start, cancellationToken); // past the stored one, so it moves
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
