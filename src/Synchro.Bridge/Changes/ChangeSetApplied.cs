using MassTransit;

namespace Synchro.Bridge.Changes;

/// <summary>
/// Published by the bucket-assignment consumer once a <see cref="ChangeBatch"/> (one part of a batch) is durably applied to
/// the sidecar tables. The slot reader acknowledges WAL only up to the contiguous prefix of these.
/// </summary>
/// <param name="Source">The batch's <see cref="ChangeBatch.Source"/>.</param>
/// <param name="RunId">The batch's <see cref="ChangeBatch.RunId"/>.</param>
/// <param name="BatchSequence">The batch's <see cref="ChangeBatch.BatchSequence"/>.</param>
/// <param name="PartIndex">The part's <see cref="ChangeBatch.PartIndex"/>.</param>
[MessageUrn(BridgeWireNames.ChangeSetAppliedUrn)]
[EntityName(BridgeWireNames.ChangeSetAppliedExchange)]
public sealed record ChangeSetApplied(string Source, Guid RunId, long BatchSequence, int PartIndex);
