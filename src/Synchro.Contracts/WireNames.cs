namespace Synchro.Contracts;

/// <summary>
/// Stable names on the wire. Subscribers in any language bind to these; they never change with a
/// refactor of namespaces or type names.
/// </summary>
public static class WireNames
{
    /// <summary>Topic exchange carrying <see cref="ChangeSet"/>; routing key is <c>source.schema.table</c>.</summary>
    public const string ChangeSetExchange = "synchro.change-set";

    /// <summary>Exchange carrying <see cref="ChangeBatch"/> to the bucket consumer; routing key is the source's name.</summary>
    public const string ChangeBatchExchange = "synchro.change-batch";

    /// <summary>Exchange carrying <see cref="ChangeSetApplied"/> confirmations back to the slot reader.</summary>
    public const string ChangeSetAppliedExchange = "synchro.change-set-applied";

    /// <summary>Topic exchange carrying <see cref="LogicalMessage"/>; routing key is the message's prefix.</summary>
    public const string LogicalMessageExchange = "synchro.logical-message";

    /// <summary>Message type of <see cref="LogicalMessage"/>; on the wire it reads <c>urn:message:synchro:logical-message:v1</c>.</summary>
    public const string LogicalMessageUrn = "synchro:logical-message:v1";

    /// <summary>Message type of <see cref="ChangeSet"/>; on the wire it reads <c>urn:message:synchro:change-set:v1</c>.</summary>
    public const string ChangeSetUrn = "synchro:change-set:v1";

    /// <summary>Message type of <see cref="ChangeBatch"/>; on the wire it reads <c>urn:message:synchro:change-batch:v1</c>.</summary>
    public const string ChangeBatchUrn = "synchro:change-batch:v1";

    /// <summary>Message type of <see cref="ChangeSetApplied"/>; on the wire it reads <c>urn:message:synchro:change-set-applied:v1</c>.</summary>
    public const string ChangeSetAppliedUrn = "synchro:change-set-applied:v1";

    /// <summary>
    /// The routing key of a table's change sets: <c>source.schema.table</c>, the source's name (no
    /// dots) and the table as PostgreSQL names it. Bind <c>*.public.orders</c> for one table of every
    /// source, <c>app-synchro_slot.#</c> for every table of one source.
    /// </summary>
    public static string RoutingKey(string source, string schema, string table) => source + "." + schema + "." + table;
}
