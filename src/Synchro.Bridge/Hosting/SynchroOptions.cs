namespace Synchro.Bridge.Hosting;

/// <summary>Root of the bridge's configuration, bound from the <c>Synchro</c> section.</summary>
public sealed class SynchroOptions
{
    public const string SectionName = "Synchro";

    /// <summary>
    /// The source's name on the bus: the first word of every routing key and part of the bucket
    /// queue's name. Empty: <c>database-slot</c>. Two sources must not share a name on one virtual
    /// host; a bucket consumer that meets another database's change sets under its name stops.
    /// </summary>
    public string? Source { get; set; }

    /// <summary>Which roles this process runs. Default: all of them.</summary>
    public BridgeRoles Roles { get; set; } = BridgeRoles.All;

    public PostgresOptions Postgres { get; set; } = new();

    public RabbitMqOptions RabbitMq { get; set; } = new();

    public ReplicationOptions Replication { get; set; } = new();

    public BatchingOptions Batching { get; set; } = new();

    public ApplyOptions Apply { get; set; } = new();

    public HealthOptions Health { get; set; } = new();

    public HttpOptions Http { get; set; } = new();

    public TelemetryOptions Telemetry { get; set; } = new();

    public BucketOptions Buckets { get; set; } = new();

    public SnapshotOptions Snapshot { get; set; } = new();

    /// <summary>The tables to capture, with their bucket rules.</summary>
    public List<TableOptions> Tables { get; set; } = [];
}

[Flags]
public enum BridgeRoles
{
    None = 0,

    /// <summary>Reads the slot, publishes change sets, acknowledges confirmed LSNs.</summary>
    Replication = 1,

    /// <summary>Consumes change sets and writes the sidecar tables.</summary>
    Buckets = 2,

    All = Replication | Buckets,
}

public sealed class PostgresOptions
{
    /// <summary>Npgsql connection string of the source database. The role needs REPLICATION.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// Where the slot lives and is read, when not on the database of <see cref="ConnectionString"/>:
    /// a hot standby of it (PostgreSQL 16+), which takes decoding off the primary. Sidecar writes,
    /// watermarks and the publication stay on the primary. Empty: the slot is on the primary.
    /// </summary>
    public string DecodingConnectionString { get; set; } = "";

    /// <summary>Schema of the sidecar tables (sync_changelog, sync_bucket_edges, ...).</summary>
    public string SidecarSchema { get; set; } = "public";
}

public sealed class RabbitMqOptions
{
    /// <summary>AMQP URI, for example <c>amqp://guest:guest@localhost:5672/</c>. Empty runs the bus in memory (single process).</summary>
    public string Uri { get; set; } = "";

    /// <summary>How long start-up waits for the broker before it gives up with an error.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// RabbitMQ's management API, which <c>synchro-bridge status</c> reads for queue depths and consumers,
    /// for example <c>http://user:password@rabbitmq:15672/</c>. Empty: the AMQP URI's host and user on port 15672.
    /// </summary>
    public string ManagementUri { get; set; } = "";

    /// <summary>
    /// The type of the bridge's bucket queues: quorum queues replicate their messages over a cluster's
    /// nodes (and survive the loss of a minority); classic queues live on one node. Fixed once a queue
    /// is declared: start-up says what to do when an existing queue has the other type.
    /// </summary>
    public BucketQueueType QueueType { get; set; } = BucketQueueType.Quorum;
}

public enum BucketQueueType
{
    Quorum,
    Classic,
}

public sealed class ReplicationOptions
{
    public string SlotName { get; set; } = "synchro_slot";

    public string PublicationName { get; set; } = "synchro_pub";

    /// <summary>When nothing is in flight, the server's keepalive position is acknowledged this often.</summary>
    public TimeSpan IdleAckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Change sets in flight with no confirmation for this long end the run: the slot is released and
    /// read again from its confirmed position (replays are absorbed). Not while the bucket consumer
    /// reports a change set it holds (see sync_apply_holds): then health turns red instead.
    /// </summary>
    public TimeSpan ConfirmationTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Change sets in flight with no confirmation for this long make the reader check that PostgreSQL
    /// still accepts connections; if it does not (a restart, a shutdown), the slot is released at once
    /// so PostgreSQL can stop, and reading resumes when it is back.
    /// </summary>
    public TimeSpan DownstreamProbeAfter { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Each attempt of the position store (a stored position, a run's epoch, one slice of the
    /// pending-changelog move) gives up after this long and is retried. Raise it for a slow or
    /// distant database.
    /// </summary>
    public TimeSpan PositionStoreAttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Start although the slot is missing or starts after the position in sync_wal_position, i.e.
    /// knowingly skip the changes in between. Set it for one start (<c>synchro-bridge run --accept-gap</c>).
    /// </summary>
    public bool AcceptGap { get; set; }

    /// <summary>
    /// On PostgreSQL 17 and newer, create the slot as a failover slot, which standbys running
    /// sync_replication_slots keep a copy of: after a promotion the bridge goes on from it. Ignored before 17.
    /// </summary>
    public bool Failover { get; set; } = true;
}

public sealed class BatchingOptions
{
    /// <summary>A batch is flushed when it holds this many changes (a large transaction is cut into chunks of this size).</summary>
    public int MaxBatchChanges { get; set; } = 5_000;

    /// <summary>Largest change set on the bus; a batch's changes of one table are split into sets of at most this many.</summary>
    public int MaxChangesPerSet { get; set; } = 1_000;

    /// <summary>A batch is flushed at once when the stream goes quiet after a commit; while changes keep arriving (or a transaction is open), it waits at most this long.</summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Batches published but not yet confirmed; reading the slot pauses while the window is full.</summary>
    public int MaxInFlightBatches { get; set; } = 8;

    /// <summary>Decoded events buffered between the slot reader and the batcher.</summary>
    public int DecodedEventBuffer { get; set; } = 5_000;

    /// <summary>A batch is also flushed when its changes hold this many bytes of column data.</summary>
    public long MaxBatchBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>A change set on the bus holds at most this many bytes of column data (and at least one change).</summary>
    public long MaxBytesPerSet { get; set; } = 1024 * 1024;

    /// <summary>
    /// Column data read from the slot but not yet confirmed downstream, buffered or in flight; reading
    /// pauses while it is reached. With the row limits this bounds memory whatever the row size.
    /// </summary>
    public long MaxInFlightBytes { get; set; } = 24 * 1024 * 1024;
}

/// <summary>How the bucket consumer spreads its work.</summary>
public sealed class ApplyOptions
{
    /// <summary>
    /// Apply partitions: one queue each, with one active consumer, applying the records that hash to it
    /// (tables linked by a parent rule go whole to partition 0). More than one lets consumers apply in
    /// parallel, in this process or on other hosts; changelog rows then wait in sync_changelog_pending
    /// until every partition has applied the batch, and enter sync_changelog in commit order.
    /// </summary>
    public int Partitions { get; set; } = 1;
}

/// <summary>One captured table and its bucket rule.</summary>
public sealed class TableOptions
{
    /// <summary>The table, as <c>schema.table</c> or <c>table</c> (schema <c>public</c>).</summary>
    public string Name { get; set; } = "";

    /// <summary>Column holding the owner; its value <c>v</c> puts the row in bucket <c>{BucketPrefix}:{v}</c>. Empty: every row is in <c>global</c>.</summary>
    public string? OwnerColumn { get; set; }

    /// <summary>Bucket prefix; default is the owner column without its <c>_id</c> suffix (<c>user_id</c> → <c>user</c>).</summary>
    public string? BucketPrefix { get; set; }

    /// <summary>When the owner column (or the parent reference) is NULL the row goes to <c>global</c> (true) or to no bucket (false).</summary>
    public bool GlobalWhenNull { get; set; } = true;

    /// <summary>
    /// <c>owner</c>, <c>parent</c>, <c>function</c> or <c>global</c>. Empty: <c>owner</c> with an
    /// <see cref="OwnerColumn"/>, <c>function</c> with a <see cref="Function"/>, <c>parent</c> with a
    /// <see cref="Parent"/> or exactly one foreign key to another configured table, else <c>global</c>.
    /// </summary>
    public string? Rule { get; set; }

    /// <summary>The table's rows take the buckets of their parent row in this table, through these columns.</summary>
    public ParentOptions? Parent { get; set; }

    /// <summary>
    /// A SQL function <c>schema.name</c> (or <c>name</c> in <c>public</c>) with the signature
    /// <c>(table_name text, operation text, new_row jsonb, old_row jsonb) returns setof text</c>: the row's buckets.
    /// </summary>
    public string? Function { get; set; }
}

/// <summary>The parent of a table's rows.</summary>
public sealed class ParentOptions
{
    /// <summary>Another configured table.</summary>
    public string Table { get; set; } = "";

    /// <summary>This table's columns that hold the parent's key, in the order of the parent's key columns. Empty: the foreign key's.</summary>
    public List<string> Columns { get; set; } = [];
}

/// <summary>What happens to rows that exist before the bridge streams them.</summary>
public enum SnapshotMode
{
    /// <summary>When the slot is created, every configured table's rows are read, consistently with the slot's start; tables added later are backfilled.</summary>
    Initial,

    /// <summary>Only changes from the slot's start on; existing rows are read only on request (synchro-bridge backfill).</summary>
    StreamOnly,
}

public sealed class SnapshotOptions
{
    /// <summary>Initial (read existing rows when the slot is created, and backfill tables added later) or StreamOnly.</summary>
    public SnapshotMode Mode { get; set; } = SnapshotMode.Initial;

    /// <summary>Rows read per chunk; progress is saved after each confirmed chunk.</summary>
    public int ChunkRows { get; set; } = 2_000;
}

public sealed class BucketOptions
{
    /// <summary>A rule that places one row in more buckets than this fails for that row (sync_rule_failures).</summary>
    public int MaxBucketsPerRow { get; set; } = 1_000;
}

public sealed class HealthOptions
{
    /// <summary>File the running bridge rewrites with its health every few seconds; <c>synchro-bridge health</c> reads it. Empty: none.</summary>
    public string File { get; set; } = "";

    /// <summary>Health is red when batches are in flight but the acknowledged LSN has not moved for this long (a poison message, a stopped consumer), or replication has been retrying without progress for this long.</summary>
    public TimeSpan AckStallThreshold { get; set; } = TimeSpan.FromMinutes(2);
}

public sealed class HttpOptions
{
    /// <summary>
    /// Where <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c> (Prometheus text) are served,
    /// for example <c>http://0.0.0.0:9464</c> in a container; several separated by <c>;</c>. Empty: no HTTP.
    /// </summary>
    public string Urls { get; set; } = "http://localhost:9464";
}

public sealed class TelemetryOptions
{
    /// <summary>
    /// An OpenTelemetry collector (OTLP over gRPC, for example <c>http://otel-collector:4317</c>) that
    /// receives the bridge's metrics and traces. Empty: metrics are only scraped from <c>/metrics</c>,
    /// and no traces are recorded.
    /// </summary>
    public string OtlpEndpoint { get; set; } = "";

    /// <summary>The <c>service.name</c> the bridge reports to OpenTelemetry.</summary>
    public string ServiceName { get; set; } = "synchro-bridge";
}
