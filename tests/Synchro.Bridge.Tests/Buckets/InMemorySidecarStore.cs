using ChangePosition = Synchro.Contracts.ChangePosition;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Buckets;

/// <summary>
/// The sidecar tables as dictionaries, planned by the same <see cref="BatchPlanner"/> as the PostgreSQL
/// store. Set-based steps (cascades, truncates) are SQL only: the integration tests cover them.
/// </summary>
internal sealed class InMemorySidecarStore : ISidecarStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<RecordKey, RecordState> _records = [];
    private ChangePosition? _appliedThrough;

    public List<ChangelogEntry> Changelog { get; } = [];

    /// <summary>While set, every apply fails with it: a poison the test can fix.</summary>
    public Exception? Poison { get; set; }

    /// <summary>The epoch of the source's latest run; batches of older runs are superseded.</summary>
    public long LatestEpoch { get; set; }

    public IReadOnlyList<string> BucketsOf(string table, string recordId)
    {
        lock (_gate)
            return _records.TryGetValue(new RecordKey(table, recordId), out var record) ? record.Edges.Select(e => e.BucketId).ToList() : [];
    }

    public Task<ApplyOutcome> ApplyAsync(ChangeBatch batch, BucketRuleSet rules, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (Poison is { } poison)
                throw poison;
            if (batch.RunEpoch < LatestEpoch)
                return Task.FromResult(new ApplyOutcome { Superseded = true });
            var changes = batch.Sets.SelectMany(s => s.Changes.Select(c => new StagedChange(new TableName(s.Schema, s.Table), c)))
                .OrderBy(c => c.Position).ToList();
            // The planner works on a copy: a batch applies all or nothing.
            var state = _records.ToDictionary(r => r.Key, r => new RecordState
            {
                Exists = r.Value.Exists, Position = r.Value.Position, Removed = r.Value.Removed, Checksum = r.Value.Checksum,
                Parent = r.Value.Parent, HasChildren = r.Value.HasChildren, Edges = r.Value.Edges,
            });
            var index = 0;
            var plan = new BatchPlanner(rules, state, new Dictionary<ChangePosition, RuleOutput>()).PlanSegment(changes, ref index, AppliedPositions.Through(_appliedThrough));
            if (plan.Step is not null)
                throw new NotSupportedException("Set-based steps run in PostgreSQL only.");

            Changelog.AddRange(plan.Changelog);
            foreach (var (key, record) in plan.Touched)
            {
                if (record.Exists)
                    _records[key] = record;
                else
                    _records.Remove(key);
            }

            if (changes.Count > 0 && !(changes[^1].Position <= _appliedThrough))
                _appliedThrough = changes[^1].Position;
            var outcome = new ApplyOutcome { Changes = changes.Count, ChangelogRows = plan.Changelog.Count, Skipped = plan.Skipped };
            outcome.Failures.AddRange(plan.Failures);
            return Task.FromResult(outcome);
        }
    }
}
