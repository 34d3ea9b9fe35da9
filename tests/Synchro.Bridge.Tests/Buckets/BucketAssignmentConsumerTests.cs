using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Position;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Changes;
using static Synchro.Bridge.Tests.Changes;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Tests.Buckets;

/// <summary>The consumer on MassTransit's in-memory test harness, with the sidecar tables in memory.</summary>
public sealed class BucketAssignmentConsumerTests : IAsyncLifetime
{
    private const string Source = "unit_slot";
    private readonly InMemorySidecarStore _store = new();
    private readonly InMemoryApplyHolds _holds = new();
    private readonly ApplyStatus _status = new();
    private readonly SourceIdentity _source = OwnSource();

    private static SourceIdentity OwnSource()
    {
        var source = new SourceIdentity(Source);
        source.SetOrigin("7300000000000000001", "app", Source);
        return source;
    }
    private ServiceProvider _services = null!;
    private ITestHarness _harness = null!;

    public async Task InitializeAsync()
    {
        var options = new SynchroOptions
        {
            Replication = { SlotName = Source },
            Tables = { new TableOptions { Name = "todos", OwnerColumn = "user_id" } },
        };
        _services = new ServiceCollection()
            .AddSingleton(Options.Create(options))
            .AddSingleton<ISidecarStore>(_store)
            .AddSingleton(Rules())
            .AddSingleton(_source)
            .AddSingleton<IApplyHolds>(_holds)
            .AddSingleton(_status)
            .AddSingleton(TimeProvider.System)
            .AddMetrics()
            .AddSingleton<Synchro.Bridge.Telemetry.BridgeMetrics>()
            .AddMassTransitTestHarness(bus => bus.AddConsumer<BucketAssignmentConsumer>())
            .Configure<MassTransitHostOptions>(o => o.ConsumerStopTimeout = TimeSpan.FromMilliseconds(200))
            .BuildServiceProvider(validateScopes: true);
        _harness = _services.GetRequiredService<ITestHarness>();
        await _harness.Start();
    }

    public async Task DisposeAsync() => await _services.DisposeAsync();

    private static BucketRules Rules()
    {
        var rules = new BucketRules();
        rules.Load(new BucketRuleSet([new OwnerRule(new TableName("public", "todos"), "user_id", "user", GlobalWhenNull: true)], maxBucketsPerRow: 10));
        return rules;
    }

    [Fact]
    public async Task a_batch_part_is_written_to_the_buckets_in_commit_order_across_its_sets_and_then_confirmed()
    {
        var runId = Guid.NewGuid();
        var batch = new ChangeBatch(Source, runId, 4, 1, 2, [Set(Source, Insert(100, 0, 1, 7), Update(200, 0, 1, 8)), Set(Source, Insert(100, 1, 2, null))]);

        await _harness.Bus.Publish(batch);

        Assert.True(await _harness.Published.Any<ChangeSetApplied>(m => m.Context.Message == new ChangeSetApplied(Source, runId, 4, 1)));
        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("global", "2", ChangeOperation.Insert), ("user:8", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete)],
            _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
        Assert.Equal(["user:8"], _store.BucketsOf("todos", "1"));
        Assert.Equal(["global"], _store.BucketsOf("todos", "2"));
    }

    [Fact]
    public async Task the_same_batch_delivered_twice_is_confirmed_twice_and_written_once()
    {
        var batch = Batch(Insert(100, 0, 1, 7));

        await _harness.Bus.Publish(batch);
        await _harness.Bus.Publish(batch);

        // SelectAsync waits (up to the harness timeout) for the elements to arrive.
        Assert.Equal(2, await AsyncElementListExtensions.Count(AsyncElementListExtensions.Take(_harness.Published.SelectAsync<ChangeSetApplied>(), 2)));
        Assert.Equal(2, _harness.Consumed.Select<ChangeBatch>().Count());
        Assert.Equal([("user:7", "1", ChangeOperation.Insert)], _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
    }

    [Fact]
    public async Task a_batch_that_fails_deterministically_is_held_in_place_and_applied_once_the_cause_is_fixed()
    {
        _store.Poison = new InvalidOperationException("the sidecar write fails");
        await _harness.Bus.Publish(Batch(Insert(100, 0, 1, 7)) with { BatchSequence = 3 });

        // Retried in place (200 ms, 400 ms, ...): the hold is recorded with the reason, and nothing passes it.
        var hold = await WaitForAsync(async () => await _holds.ReadAsync(Source, CancellationToken.None) is { Attempts: >= 2 } h ? h : null);
        Assert.Equal(("public.todos", 3L, 0, 100UL), (hold.Table, hold.Batch, hold.Part, hold.CommitLsn));
        Assert.Equal("InvalidOperationException: the sidecar write fails", hold.Error);
        Assert.False(_status.Stall!.Transient);
        Assert.Empty(_store.Changelog);

        _store.Poison = null;

        Assert.True(await _harness.Published.Any<ChangeSetApplied>());
        Assert.Equal([("user:7", "1", ChangeOperation.Insert)], _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
        Assert.Null(await _holds.ReadAsync(Source, CancellationToken.None));
        Assert.Null(_status.Stall);
        // Once the harness is quiet: one confirmation, and no fault (nothing went to an error queue).
        Assert.Single(_harness.Published.Select<ChangeSetApplied>());
        Assert.Empty(_harness.Published.Select<Fault<ChangeBatch>>());
    }

    [Fact]
    public async Task a_database_outage_is_retried_as_transient_and_never_recorded_as_a_hold()
    {
        _store.Poison = new Npgsql.NpgsqlException("connection lost", new IOException("reset"));

        await _harness.Bus.Publish(Batch(Insert(100, 0, 1, 7)));

        await WaitForAsync(() => Task.FromResult(_status.Stall is { Transient: true, Hold.Attempts: >= 2 } stall ? stall : null));
        Assert.Null(await _holds.ReadAsync(Source, CancellationToken.None));
        _store.Poison = null;
        Assert.True(await _harness.Published.Any<ChangeSetApplied>());
        Assert.Null(_status.Stall);
    }

    [Fact]
    public async Task a_batch_of_a_superseded_run_is_skipped_without_confirmation()
    {
        _store.LatestEpoch = 5;
        await _harness.Bus.Publish(Batch(Insert(100, 0, 1, 7)) with { RunEpoch = 4 });
        await _harness.Bus.Publish(Batch(Insert(200, 0, 2, 7)) with { RunEpoch = 5 });

        Assert.True(await _harness.Published.Any<ChangeSetApplied>());
        Assert.Equal(2, _harness.Consumed.Select<ChangeBatch>().Count());
        Assert.Single(_harness.Published.Select<ChangeSetApplied>());
        Assert.Equal([("user:7", "2", ChangeOperation.Insert)], _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
    }

    [Fact]
    public async Task batches_of_another_database_under_our_source_name_are_not_applied_and_turn_health_red()
    {
        await _harness.Bus.Publish(Batch(Insert(100, 0, 1, 7)), context => context.Headers.Set(Synchro.Contracts.WireNames.OriginHeader, "7300000000000000002/app/" + Source));
        await _harness.Bus.Publish(Batch(Insert(200, 0, 2, 8)), context => context.Headers.Set(Synchro.Contracts.WireNames.OriginHeader, _source.Origin));

        Assert.True(await _harness.Published.Any<ChangeSetApplied>());
        Assert.Equal(2, _harness.Consumed.Select<ChangeBatch>().Count());
        Assert.Single(_harness.Published.Select<ChangeSetApplied>());
        Assert.Equal([("user:8", "2", ChangeOperation.Insert)], _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
        Assert.Equal("7300000000000000002/app/" + Source, _status.LastForeign?.Origin);
    }

    private static ChangeBatch Batch(params RowChange[] changes) => new(Source, Guid.Empty, 0, 0, 1, [Set(Source, changes)]);

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            if (await probe() is { } value)
                return value;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("The condition did not hold within 10 s.");
            await Task.Delay(20);
        }
    }
}
