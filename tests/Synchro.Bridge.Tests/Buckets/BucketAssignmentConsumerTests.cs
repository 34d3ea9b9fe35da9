using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Hosting;
using Synchro.Contracts;
using static Synchro.Bridge.Tests.Changes;

namespace Synchro.Bridge.Tests.Buckets;

/// <summary>The consumer on MassTransit's in-memory test harness, with the sidecar tables in memory.</summary>
public sealed class BucketAssignmentConsumerTests : IAsyncLifetime
{
    private const string Source = "unit_slot";
    private readonly InMemorySidecarStore _store = new();
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
            .AddSingleton(new BucketRuleSet(options.Tables))
            .AddMassTransitTestHarness(bus => bus.AddConsumer<BucketAssignmentConsumer>())
            .BuildServiceProvider(validateScopes: true);
        _harness = _services.GetRequiredService<ITestHarness>();
        await _harness.Start();
    }

    public async Task DisposeAsync() => await _services.DisposeAsync();

    [Fact]
    public async Task a_change_set_is_written_to_the_buckets_and_then_confirmed()
    {
        var set = Set(Source, Insert(100, 0, 1, 7), Insert(100, 1, 2, null), Update(200, 0, 1, 8)) with { RunId = Guid.NewGuid(), BatchSequence = 4, PartIndex = 1, PartCount = 2 };

        await _harness.Bus.Publish(set);

        Assert.True(await _harness.Published.Any<ChangeSetApplied>(m => m.Context.Message == new ChangeSetApplied(Source, set.RunId, 4, 1)));
        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("global", "2", ChangeOperation.Insert), ("user:8", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete)],
            _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
        Assert.Equal(["user:8"], _store.Edges["1"].Select(e => e.BucketId));
        Assert.Equal(["global"], _store.Edges["2"].Select(e => e.BucketId));
    }

    [Fact]
    public async Task the_same_change_set_delivered_twice_is_confirmed_twice_and_written_once()
    {
        var set = Set(Source, Insert(100, 0, 1, 7));

        await _harness.Bus.Publish(set);
        await _harness.Bus.Publish(set);

        // SelectAsync waits (up to the harness timeout) for the elements to arrive.
        Assert.Equal(2, await AsyncElementListExtensions.Count(AsyncElementListExtensions.Take(_harness.Published.SelectAsync<ChangeSetApplied>(), 2)));
        Assert.Equal(2, _harness.Consumed.Select<ChangeSet>().Count());
        Assert.Equal([("user:7", "1", ChangeOperation.Insert)], _store.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)));
    }

    [Fact]
    public async Task a_change_set_of_an_unconfigured_table_faults_and_is_not_confirmed()
    {
        var set = Set(Source, Insert(100, 0, 1, 7)) with { Table = "orders" };

        await _harness.Bus.Publish(set);

        Assert.True(await _harness.Published.Any<Fault<ChangeSet>>());
        Assert.False(await _harness.Published.Any<ChangeSetApplied>());
        Assert.Empty(_store.Changelog);
    }
}
