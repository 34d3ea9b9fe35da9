using Microsoft.Extensions.Options;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Position;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Hosting;

public sealed class BridgeHealthTests
{
    private static readonly TimeSpan Threshold = TimeSpan.FromMinutes(2);
    private readonly ManualTime _time = new();
    private readonly BridgeFailure _failure = new();
    private readonly ActiveRun _run = new();

    private readonly ApplyStatus _apply = new();
    private readonly PositionStoreCircuit _circuit = new();

    private BridgeHealth Health() => new(_failure, _run, _apply, _circuit, Options.Create(new SynchroOptions { Health = { AckStallThreshold = Threshold } }), _time);

    [Fact]
    public async Task in_flight_work_without_acknowledgement_turns_red_after_the_threshold()
    {
        var health = Health();
        using var tracker = new AckTracker(Guid.NewGuid(), 4, _time);
        _run.Tracker = tracker;
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None);
        Assert.True(health.Evaluate().Healthy);

        _time.Advance(Threshold - TimeSpan.FromSeconds(1));
        Assert.True(health.Evaluate().Healthy);

        _time.Advance(TimeSpan.FromSeconds(2));
        var report = health.Evaluate();
        Assert.False(report.Healthy);
        Assert.StartsWith("acknowledgements stalled for 121 s", report.Detail, StringComparison.Ordinal);

        tracker.Confirm(new ChangeSetApplied("slot", tracker.RunId, 0, 0));
        Assert.True(health.Evaluate().Healthy);
    }

    [Fact]
    public void replication_retrying_without_progress_turns_red_and_progress_clears_it()
    {
        var health = Health();
        _run.Interrupted("connection refused", _time.GetUtcNow());
        Assert.True(health.Evaluate().Healthy);

        _time.Advance(Threshold + TimeSpan.FromSeconds(1));
        _run.Interrupted("connection reset", _time.GetUtcNow());
        var report = health.Evaluate();
        Assert.False(report.Healthy);
        Assert.EndsWith("last: connection reset", report.Detail, StringComparison.Ordinal);

        _run.Progressed();
        Assert.True(health.Evaluate().Healthy);
    }

    [Fact]
    public void a_fatal_error_is_reported_as_the_operator_would_read_it()
    {
        _failure.Record(new SlotInUseException("slot", new InvalidOperationException()));

        var report = Health().Evaluate();

        Assert.False(report.Healthy);
        Assert.StartsWith("synchro-bridge: Replication slot 'slot' is in use by another process", report.Detail, StringComparison.Ordinal);
    }

    private sealed class ManualTime : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }

    [Fact]
    public void an_open_position_store_circuit_turns_health_red_and_closing_it_clears_it()
    {
        var health = Health();
        _circuit.Opened("connection refused");

        var report = health.Evaluate();

        Assert.False(report.Healthy);
        Assert.Equal("the position store's circuit is open (connection refused): acknowledgements wait until PostgreSQL answers again.", report.Detail);
        _circuit.Closed();
        Assert.True(health.Evaluate().Healthy);
    }

    [Fact]
    public void a_standby_waiting_for_the_slot_is_healthy_and_says_so()
    {
        _run.WaitingAsStandby("pid 42 (synchro-bridge/abc)", _time.GetUtcNow());

        var report = Health().Evaluate();

        Assert.True(report.Healthy);
        Assert.StartsWith("standby: the slot is held by pid 42 (synchro-bridge/abc) since ", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void an_instance_that_lost_the_slot_during_a_database_outage_is_a_healthy_standby_though_its_circuit_opened_before()
    {
        // The outage opened the circuit while this instance held the slot; another took the slot when
        // PostgreSQL came back. A standby acknowledges nothing, so nothing would ever close the circuit.
        _circuit.Opened("connection refused");
        _run.WaitingAsStandby("pid 42 (synchro-bridge/abc)", _time.GetUtcNow());

        var report = Health().Evaluate();

        Assert.True(report.Healthy, report.Detail);
        Assert.StartsWith("standby: the slot is held by pid 42", report.Detail, StringComparison.Ordinal);
    }
}
