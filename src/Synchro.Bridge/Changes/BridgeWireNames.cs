namespace Synchro.Bridge.Changes;

/// <summary>
/// Names of the messages between the bridge's own roles (slot reader and bucket consumer). Not a
/// subscriber contract: both roles of a deployment run the same version.
/// </summary>
public static class BridgeWireNames
{
    /// <summary>Direct exchange carrying <see cref="ChangeBatch"/> to the bucket consumer; routing key is the source's name.</summary>
    public const string ChangeBatchExchange = "synchro.change-batch";

    /// <summary>Exchange carrying <see cref="ChangeSetApplied"/> confirmations back to the slot reader.</summary>
    public const string ChangeSetAppliedExchange = "synchro.change-set-applied";

    /// <summary>Message type of <see cref="ChangeBatch"/>.</summary>
    public const string ChangeBatchUrn = "synchro:change-batch:v1";

    /// <summary>Message type of <see cref="ChangeSetApplied"/>.</summary>
    public const string ChangeSetAppliedUrn = "synchro:change-set-applied:v1";

    /// <summary>
    /// The topic exchange where versions before contract v2 published change sets (MassTransit
    /// envelope). The bucket queue's old bindings to it are removed at start.
    /// </summary>
    public const string LegacyChangeSetExchange = "synchro.change-set";
}
