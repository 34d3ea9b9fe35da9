using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Synchro.Bridge.Telemetry;

/// <summary>
/// The bridge's own instruments, on the <see cref="MeterName"/> meter (System.Diagnostics.Metrics,
/// exported by OpenTelemetry as Prometheus text and over OTLP). The stages count what passes them;
/// the gauges read the slot reader's current run, which it hands over with <see cref="Observe"/>.
/// Every name is listed, with its Prometheus form, in the README.
/// </summary>
public sealed class BridgeMetrics : IDisposable
{
    public const string MeterName = "Synchro.Bridge";

    /// <summary>The activity source of the bridge's own spans: a batch read and published, and a part applied.</summary>
    public static readonly ActivitySource Activities = new(MeterName);

    private readonly Meter _meter;
    private readonly Counter<long> _read;
    private readonly Counter<long> _published;
    private readonly Counter<long> _applied;
    private readonly Counter<long> _changelogRows;
    private readonly Counter<long> _ruleFailures;
    private readonly Counter<long> _applyRetries;
    private readonly Histogram<double> _publishDuration;
    private readonly Histogram<double> _applyDuration;

    private volatile RunReadings? _run;

    public BridgeMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        _read = _meter.CreateCounter<long>("synchro.changes.read", "{change}", "Row changes read from the replication slot.");
        _published = _meter.CreateCounter<long>("synchro.changes.published", "{change}", "Row changes published to the bus and confirmed by the broker.");
        _applied = _meter.CreateCounter<long>("synchro.changes.applied", "{change}", "Row changes the bucket consumer applied to the sidecar tables (replays skipped are not counted).");
        _changelogRows = _meter.CreateCounter<long>("synchro.changelog.rows", "{row}", "Rows written to sync_changelog.");
        _ruleFailures = _meter.CreateCounter<long>("synchro.rule.failures", "{change}", "Changes a bucket rule could not place (kept in sync_rule_failures).");
        _applyRetries = _meter.CreateCounter<long>("synchro.apply.retries", "{attempt}", "Failed attempts to apply a change set, by kind (transient: the database is unreachable; held: a deterministic error).");
        _publishDuration = _meter.CreateHistogram<double>("synchro.publish.duration", "s", "From a batch's flush until the broker confirmed all its messages.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _applyDuration = _meter.CreateHistogram<double>("synchro.apply.duration", "s", "Applying one change set to the sidecar tables, commit included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

        // Failures and retries exist from the start at 0, so a dashboard's rate() has a series before the first one.
        _ruleFailures.Add(0);
        _applyRetries.Add(0, new KeyValuePair<string, object?>("kind", "transient"));
        _applyRetries.Add(0, new KeyValuePair<string, object?>("kind", "held"));

        _meter.CreateObservableGauge("synchro.replication.lag", () => Acknowledged(r => (long)(r.ServerWalEnd() > r.Acknowledged() ? r.ServerWalEnd() - r.Acknowledged() : 0)), "By",
            "WAL bytes between the server's end of WAL (as last reported on the replication stream) and the LSN acknowledged: what PostgreSQL retains for the bridge.");
        _meter.CreateObservableGauge("synchro.acknowledged.lsn", () => Acknowledged(r => (long)r.Acknowledged()), "{lsn}", "The LSN last acknowledged to PostgreSQL, as a number.");
        _meter.CreateObservableGauge("synchro.in_flight", () => Reading(r => (long)r.InFlight()), "{batch}", "Batches published and not yet confirmed by the bucket consumer.");
        _meter.CreateObservableGauge("synchro.acknowledgement.stalled", () => Reading(r => (long)r.Stalled().TotalSeconds), "s",
            "Seconds the acknowledged LSN has not moved while batches are in flight (0 when idle or moving).");
    }

    /// <summary>What the gauges read while a slot reader runs; null between runs (the gauges then report nothing).</summary>
    public void Observe(RunReadings? run) => _run = run;

    private IEnumerable<Measurement<long>> Reading(Func<RunReadings, long> read) =>
        _run is { } run ? [new Measurement<long>(read(run))] : [];

    /// <summary>Like <see cref="Reading"/>, once the run has acknowledged something (before, a lag would be the whole WAL).</summary>
    private IEnumerable<Measurement<long>> Acknowledged(Func<RunReadings, long> read) =>
        _run is { } run && run.Acknowledged() > 0 ? [new Measurement<long>(read(run))] : [];

    /// <summary>Seconds: fine below 100 ms, where live latency lives, coarse above (backlogs).</summary>
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    public Meter Meter => _meter;

    public void Read(int changes) => _read.Add(changes);

    public void Published(int changes, TimeSpan duration)
    {
        _published.Add(changes);
        _publishDuration.Record(duration.TotalSeconds);
    }

    public void Applied(int changes, int changelogRows, int ruleFailures, TimeSpan duration)
    {
        _applied.Add(changes);
        _changelogRows.Add(changelogRows);
        if (ruleFailures > 0)
            _ruleFailures.Add(ruleFailures);
        _applyDuration.Record(duration.TotalSeconds);
    }

    public void ApplyRetried(bool transient) => _applyRetries.Add(1, new KeyValuePair<string, object?>("kind", transient ? "transient" : "held"));

    public void Dispose() => _meter.Dispose();
}

/// <summary>Live readings of the slot reader's current run, taken when a metric is collected.</summary>
public sealed record RunReadings(Func<ulong> ServerWalEnd, Func<ulong> Acknowledged, Func<int> InFlight, Func<TimeSpan> Stalled);
