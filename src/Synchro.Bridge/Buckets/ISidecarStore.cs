using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>Applies change batches to the sidecar tables, each all or nothing.</summary>
public interface ISidecarStore
{
    /// <summary>Plans and writes the batch in commit order in one transaction; replays change nothing.</summary>
    Task<ApplyOutcome> ApplyAsync(ChangeBatch batch, BucketRuleSet rules, CancellationToken cancellationToken);
}
