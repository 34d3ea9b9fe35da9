namespace Synchro.Contracts;

/// <summary>
/// Stable names on the wire. Subscribers in any language bind to these; they never change with a
/// refactor of namespaces or type names, and a breaking change of a message gets new ones.
/// </summary>
public static class WireNames
{
    /// <summary>Topic exchange (durable) carrying <see cref="ChangeSet"/>; routing key is <c>source.schema.table</c>.</summary>
    public const string ChangeSetExchange = "synchro.change-set.v2";

    /// <summary>Topic exchange (durable) carrying <see cref="LogicalMessage"/>; routing key is the message's prefix.</summary>
    public const string LogicalMessageExchange = "synchro.logical-message.v2";

    /// <summary>
    /// MassTransit's message type of <see cref="ChangeSet"/> (<c>urn:message:synchro:change-set:v2</c>)
    /// for .NET code. The raw JSON on the wire carries no type header: the exchange names the version.
    /// </summary>
    public const string ChangeSetUrn = "synchro:change-set:v2";

    /// <summary>MassTransit's message type of <see cref="LogicalMessage"/> (<c>urn:message:synchro:logical-message:v2</c>).</summary>
    public const string LogicalMessageUrn = "synchro:logical-message:v2";

    /// <summary>
    /// Header on every message: <c>system_identifier/database/slot</c> of the source, which (unlike
    /// the source's name) cannot collide between two databases.
    /// </summary>
    public const string OriginHeader = "Synchro-Origin";

    /// <summary>
    /// Header on every message: the source's generation, a number that grows when the source's LSNs
    /// start a new history (a restore into a new cluster, a promoted standby). Positions are
    /// comparable only within one generation.
    /// </summary>
    public const string GenerationHeader = "Synchro-Generation";

    /// <summary>
    /// Header on every message: a position the generation's history shares with the previous one's,
    /// at or before where they part, as an LSN (<c>0/0</c>: nothing shared). A checkpoint of an
    /// earlier generation past it is void.
    /// </summary>
    public const string GenerationStartHeader = "Synchro-Generation-Start";

    /// <summary>
    /// The routing key of a table's change sets: <c>source.schema.table</c>, the source's name (no
    /// dots) and the table as PostgreSQL names it. Bind <c>*.public.orders</c> for one table of every
    /// source, <c>app-synchro_slot.#</c> for every table of one source.
    /// </summary>
    public static string RoutingKey(string source, string schema, string table) => source + "." + schema + "." + table;
}
