using MassTransit;

namespace Synchro.Contracts;

/// <summary>
/// Published by the bucket-assignment consumer once a <see cref="ChangeSet"/> is durably applied to
/// the sidecar tables. The slot reader acknowledges WAL only up to the contiguous prefix of these.
/// </summary>
/// <param name="Source">The change set's <see cref="ChangeSet.Source"/>.</param>
/// <param name="RunId">The change set's <see cref="ChangeSet.RunId"/>.</param>
/// <param name="BatchSequence">The change set's <see cref="ChangeSet.BatchSequence"/>.</param>
/// <param name="PartIndex">The change set's <see cref="ChangeSet.PartIndex"/>.</param>
[MessageUrn(WireNames.ChangeSetAppliedUrn)]
[EntityName(WireNames.ChangeSetAppliedExchange)]
public sealed record ChangeSetApplied(string Source, Guid RunId, long BatchSequence, int PartIndex);
