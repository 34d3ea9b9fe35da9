using Synchro.Bridge.Buckets;
using Synchro.Contracts;

namespace Synchro.Bridge.Tests.Buckets;

/// <summary>The sidecar tables as dictionaries, planned by the same <see cref="EdgeDiffPlanner"/> as the PostgreSQL store.</summary>
internal sealed class InMemorySidecarStore : ISidecarStore
{
    private readonly Lock _gate = new();

    public List<ChangelogEntry> Changelog { get; } = [];

    public Dictionary<string, IReadOnlyList<BucketEdge>> Edges { get; } = [];

    public Dictionary<string, ChangePosition> Positions { get; } = [];

    /// <summary>While set, every apply fails with it: a poison the test can fix.</summary>
    public Exception? Poison { get; set; }

    /// <summary>The epoch of the source's latest run; change sets of older runs are superseded.</summary>
    public long LatestEpoch { get; set; }

    public Task<SidecarPlan> ApplyAsync(ChangeSet changeSet, IBucketRule rule, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (Poison is { } poison)
                throw poison;
            if (changeSet.RunEpoch < LatestEpoch)
                return Task.FromResult(new SidecarPlan { Superseded = true });
            var state = new SidecarState();
            foreach (var recordId in changeSet.Changes.Select(c => c.RecordId).Distinct())
            {
                if (Positions.TryGetValue(recordId, out var position))
                    state.Positions[recordId] = position;
                if (Edges.TryGetValue(recordId, out var edges))
                    state.Edges[recordId] = [.. edges];
            }

            var plan = EdgeDiffPlanner.Plan(changeSet.Changes, rule, state);
            Changelog.AddRange(plan.Changelog);
            foreach (var (recordId, edges) in plan.Edges)
                Edges[recordId] = edges;
            foreach (var (recordId, position) in plan.Positions)
                Positions[recordId] = position;
            return Task.FromResult(plan);
        }
    }
}
