using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>Applies a change set to the sidecar tables, all or nothing.</summary>
public interface ISidecarStore
{
    /// <summary>Plans and writes the change set in one transaction; replays change nothing.</summary>
    Task<SidecarPlan> ApplyAsync(ChangeSet changeSet, IBucketRule rule, CancellationToken cancellationToken);
}
