using System.Threading.Channels;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using NpgsqlTypes;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Holds the replication connection: streams the slot through the decoder into a bounded channel
/// (a full channel stops the reading, so memory stays bounded), and sends flush positions back.
/// </summary>
/// <param name="failover">Create the slot as a failover slot where the server supports it (17+).</param>
internal sealed class SlotReader(string connectionString, string slotName, string publicationName, RelationCatalog catalog, bool failover) : IAsyncDisposable
{
    private readonly PgOutputDecoder _decoder = new(catalog);
    private LogicalReplicationConnection? _connection;
    private long _messagesSeen;
    private int _inTransaction;
    private ulong _lastCommitEnd;

    /// <summary>Changes with every message the reader takes from the stream.</summary>
    public long MessagesSeen => Interlocked.Read(ref _messagesSeen);

    /// <summary>End LSN of the last commit read from the stream.</summary>
    public ulong LastCommitEnd => Interlocked.Read(ref _lastCommitEnd);

    public bool InTransaction => Volatile.Read(ref _inTransaction) == 1;

    private ulong _serverWalEnd;

    /// <summary>The server's end of WAL as the stream last reported it (data messages carry it; keepalives move <see cref="LastReceivedLsn"/>).</summary>
    public ulong ServerWalEnd => Math.Max(Interlocked.Read(ref _serverWalEnd), LastReceivedLsn);

    /// <summary>What the server last told us (a data message or a keepalive).</summary>
    public ulong LastReceivedLsn => _connection is { } connection ? (ulong)connection.LastReceivedLsn : 0;

    /// <param name="budget">Bytes the events may hold until confirmed; reading pauses while it is spent.</param>
    public async Task RunAsync(ChannelWriter<DecodedEvent> output, ByteBudget budget, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(budget);
        var connection = await OpenAsync(cancellationToken);

        // Protocol 1 without streaming: PostgreSQL sends a transaction only once it committed (spilling
        // large ones to its own disk), so nothing of an aborted transaction ever reaches us; the batcher
        // cuts large ones into chunks. messages: logical decoding messages (pg_logical_emit_message).
        var options = new PgOutputReplicationOptions(publicationName, PgOutputProtocolVersion.V1, binary: false, messages: true);
        try
        {
            await foreach (var message in connection.StartReplication(new PgOutputReplicationSlot(slotName), options, cancellationToken))
            {
                Interlocked.Increment(ref _messagesSeen);
                Interlocked.Exchange(ref _serverWalEnd, (ulong)message.WalEnd);
                var decoded = await _decoder.DecodeAsync(message, cancellationToken);
                if (decoded is TransactionBegun)
                    Volatile.Write(ref _inTransaction, 1);
                if (decoded is not null)
                {
                    if (decoded.Bytes > 0)
                        await budget.AcquireAsync(decoded.Bytes, cancellationToken);
                    await output.WriteAsync(decoded, cancellationToken);
                }
                if (decoded is TransactionCommitted committed)
                {
                    Interlocked.Exchange(ref _lastCommitEnd, committed.EndLsn);
                    Volatile.Write(ref _inTransaction, 0);
                }
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse)
        {
            throw new SlotInUseException(slotName, e);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectNotInPrerequisiteState)
        {
            // For example an invalidated slot: PostgreSQL removed WAL it still needed (max_slot_wal_keep_size).
            throw new SynchroException(
                $"Replication slot '{slotName}' can no longer stream ({e.MessageText}). The changes it lost are gone: resynchronise the sidecar tables, or drop the slot and start with --accept-gap to go on knowingly.", e);
        }
    }

    /// <summary>
    /// Creates the slot on the replication connection and exports its snapshot: a transaction that
    /// imports it sees the database exactly as of the slot's consistent point, the first change the
    /// slot streams. The snapshot lives until the connection runs its next command (starting the stream).
    /// </summary>
    public async Task<(ulong ConsistentPoint, string SnapshotName)> CreateSlotWithSnapshotAsync(CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken);
        try
        {
            var slot = failover && FailoverSlots.Supported(connection.PostgreSqlVersion)
                ? await FailoverSlots.CreateWithSnapshotAsync(connection, slotName, cancellationToken)
                : await connection.CreatePgOutputReplicationSlot(slotName, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.Export, cancellationToken: cancellationToken);
            return ((ulong)slot.ConsistentPoint, slot.SnapshotName ?? throw new InvalidOperationException("PostgreSQL exported no snapshot for the new slot."));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateObject)
        {
            // Another instance created it between our look and our try: the next run finds it.
            throw new SlotInUseException(slotName, e);
        }
    }

    /// <summary>The server's cluster, timeline and WAL position (IDENTIFY_SYSTEM), before the stream starts.</summary>
    public async Task<Sources.ServerTimeline> IdentifyAsync(CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken);
        var system = await connection.IdentifySystem(cancellationToken);
        return new Sources.ServerTimeline(system.SystemId, system.Timeline, (ulong)system.XLogPos);
    }

    private async Task<LogicalReplicationConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_connection is null)
        {
            _connection = new LogicalReplicationConnection(connectionString);
            await _connection.Open(cancellationToken);
        }

        return _connection;
    }

    /// <summary>Tells PostgreSQL everything up to <paramref name="lsn"/> is durably applied, so it may release that WAL.</summary>
    public async Task ReportFlushedAsync(ulong lsn, CancellationToken cancellationToken)
    {
        if (_connection is not { } connection)
            return;
        connection.SetReplicationStatus(new NpgsqlLogSequenceNumber(lsn));
        await connection.SendStatusUpdate(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
            await _connection.DisposeAsync();
    }
}
