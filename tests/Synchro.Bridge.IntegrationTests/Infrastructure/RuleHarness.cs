using System.Globalization;
using System.Runtime.CompilerServices;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// The bucket consumer on MassTransit's in-memory test harness, writing the sidecar tables of a real
/// PostgreSQL database: scripted batches in, exact sidecar rows out. The application tables exist
/// only so the rules can be read from the catalog (foreign keys); the script is the stream.
/// </summary>
internal sealed class RuleHarness : IAsyncDisposable
{
    public const string Source = "harness";
    private static readonly DateTimeOffset At = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
    private readonly ServiceProvider _services;
    private readonly ITestHarness _harness;
    private readonly Dictionary<long, int> _deliveries = [];
    private long _nextBatch;

    /// <summary>How long a step waits for the consumer.</summary>
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(30);

    private RuleHarness(TestEnvironment env, ServiceProvider services, BucketRuleSet rules)
    {
        Env = env;
        _services = services;
        Rules = rules;
        _harness = services.GetRequiredService<ITestHarness>();
    }

    public TestEnvironment Env { get; }

    public BucketRuleSet Rules { get; }

    public Guid RunId { get; } = Guid.NewGuid();

    public IServiceProvider Services => _services;

    public static async Task<RuleHarness> StartAsync(string schemaSql, TableOptions[] tables, [CallerMemberName] string test = "")
    {
        var env = await TestEnvironment.CreateAsync(test);
        await env.ExecuteAsync(schemaSql);
        var sidecar = new SidecarTables("public");
        await sidecar.MigrateAsync(env.DataSource, CancellationToken.None);
        BucketRuleSet rules;
        await using (var connection = await env.DataSource.OpenConnectionAsync())
            rules = await StartupService.LoadRulesAsync(connection, new SynchroOptions { Tables = [.. tables] }, CancellationToken.None);
        var loaded = new BucketRules();
        loaded.Load(rules);

        var services = new ServiceCollection()
            .AddSingleton(env.DataSource)
            .AddSingleton(sidecar)
            .AddSingleton<SidecarSessions>()
            .AddSingleton<PostgresSidecarStore>()
            .AddSingleton<ISidecarStore>(sp => sp.GetRequiredService<PostgresSidecarStore>())
            .AddSingleton<RuleFailures>()
            .AddSingleton(loaded)
            .AddSingleton(new SourceIdentity(Source))
            .AddSingleton<IApplyHolds, InMemoryApplyHolds>()
            .AddSingleton<ApplyStatus>()
            .AddSingleton(TimeProvider.System)
            .AddMetrics()
            .AddSingleton<Synchro.Bridge.Telemetry.BridgeMetrics>()
            .AddMassTransitTestHarness(bus => bus.AddConsumer<BucketAssignmentConsumer>())
            .BuildServiceProvider(validateScopes: true);
        var harness = new RuleHarness(env, services, rules);
        await harness._harness.Start();
        return harness;
    }

    /// <summary>Publishes the sets as one batch and waits for the consumer's confirmation.</summary>
    public async Task<ChangeBatch> ApplyAsync(params ChangeSet[] sets)
    {
        var batch = new ChangeBatch(Source, RunId, Interlocked.Increment(ref _nextBatch), 0, 1, sets);
        await RedeliverAsync(batch);
        return batch;
    }

    /// <summary>Publishes a part and waits until the consumer has taken it, whether or not it confirms it.</summary>
    public async Task PublishAsync(ChangeBatch batch)
    {
        await _harness.Bus.Publish(batch);
        await Eventually.Until(
            () => Task.FromResult(_harness.Consumed.Select<ChangeBatch>(m => m.Context.Message.BatchSequence == batch.BatchSequence && m.Context.Message.PartIndex == batch.PartIndex).Any()),
            $"the consumer to take batch {batch.BatchSequence}", WaitLimit);
    }

    /// <summary>Confirmations published for the batch so far.</summary>
    public int Confirmations(long batchSequence) => _harness.Published.Select<ChangeSetApplied>(m => m.Context.Message.BatchSequence == batchSequence).Count();

    public long NextBatchSequence() => Interlocked.Increment(ref _nextBatch);

    /// <summary>Publishes a batch again (a duplicate delivery) and waits for its next confirmation.</summary>
    public async Task RedeliverAsync(ChangeBatch batch)
    {
        var deliveries = _deliveries[batch.BatchSequence] = _deliveries.GetValueOrDefault(batch.BatchSequence) + 1;
        await _harness.Bus.Publish(batch);
        // Polled, not waited for with the harness's SelectAsync: that ends once the harness has been idle,
        // and its inactivity fires once and stays fired (after a part that is never confirmed, say).
        var status = _services.GetRequiredService<ApplyStatus>();
        var confirmed = await Eventually.Until(() => Task.FromResult(Confirmations(batch.BatchSequence)), n => n >= deliveries || status.Stall is not null,
            $"the consumer to confirm batch {batch.BatchSequence}", WaitLimit);
        if (status.Stall is { } stall)
            throw new InvalidOperationException($"Batch {batch.BatchSequence} is held: {stall.Hold.Error}");
        Assert.Equal(deliveries, confirmed);
    }

    public static ChangeSet Set(string table, params RowChange[] changes) => new(Source, Guid.Empty, 0, 0, 1, "public", table, ["id"], changes);

    public static RowChange Insert(ulong lsn, int index, long id, params (string Name, object? Value)[] columns) =>
        Row(ChangeOperation.Insert, lsn, index, id, columns);

    public static RowChange Update(ulong lsn, int index, long id, params (string Name, object? Value)[] columns) =>
        Row(ChangeOperation.Update, lsn, index, id, columns);

    public static RowChange Delete(ulong lsn, int index, long id) =>
        new(lsn, index, 1, At, ChangeOperation.Delete, Text(id)!, null, [ColumnValue.Of("id", "bigint", Text(id)!)]);

    private static RowChange Row(ChangeOperation operation, ulong lsn, int index, long id, (string Name, object? Value)[] columns) =>
        new(lsn, index, 1, At, operation, Text(id)!,
            [ColumnValue.Of("id", "bigint", Text(id)!), .. columns.Select(c => Text(c.Value) is { } text ? ColumnValue.Of(c.Name, "text", text) : ColumnValue.Null(c.Name, "text"))], null);

    private static string? Text(object? value) => value is null ? null : Convert.ToString(value, CultureInfo.InvariantCulture);

    /// <summary>Changelog rows after <paramref name="afterSeq"/> as bucket|table|record|operation, in seq order.</summary>
    public Task<List<string>> ChangelogSinceAsync(long afterSeq) =>
        Env.RowsAsync($"SELECT bucket_id, table_name, record_id, operation FROM sync_changelog WHERE seq > {afterSeq} ORDER BY seq");

    public Task<long> LastSeqAsync() => Env.ScalarAsync<long>("SELECT coalesce(max(seq), 0) FROM sync_changelog");

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        await Env.DisposeAsync();
    }
}
