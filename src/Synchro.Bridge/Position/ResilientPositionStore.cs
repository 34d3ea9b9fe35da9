using Polly;
using Polly.CircuitBreaker;
using Polly.Registry;
using Polly.Retry;
using Polly.Timeout;

namespace Synchro.Bridge.Position;

/// <summary>
/// Runs the inner store through the named pipeline <see cref="PipelineName"/> (built once, in DI):
/// a timeout per attempt, retries with jitter for transient failures only (a dropped connection, a
/// fail-over, a timeout), and a circuit breaker that stops hammering a database that is down.
/// </summary>
public sealed class ResilientPositionStore(IPositionStore inner, ResiliencePipelineProvider<string> pipelines) : IPositionStore
{
    public const string PipelineName = "synchro-position-store";

    private readonly ResiliencePipeline _pipeline = pipelines.GetPipeline(PipelineName);

    public Task<ulong?> LoadAsync(string slotName, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask<ulong?>(state.inner.LoadAsync(state.slotName, ct)), (inner, slotName), cancellationToken).AsTask();

    public Task<long> BeginRunAsync(string source, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask<long>(state.inner.BeginRunAsync(state.source, ct)), (inner, source), cancellationToken).AsTask();

    public Task ForgetAsync(string slotName, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask(state.inner.ForgetAsync(state.slotName, ct)), (inner, slotName), cancellationToken).AsTask();

    public Task SaveAsync(string slotName, ulong lsn, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask(state.inner.SaveAsync(state.slotName, state.lsn, ct)), (inner, slotName, lsn), cancellationToken).AsTask();

    /// <summary>The pipeline: retry (outermost) → circuit breaker → timeout per attempt.</summary>
    /// <param name="attemptTimeout">How long one attempt (a statement or a slice of one) may take.</param>
    public static void Configure(ResiliencePipelineBuilder pipeline, PositionStoreCircuit circuit, TimeSpan attemptTimeout)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(circuit);
        var transient = new PredicateBuilder().Handle<Exception>(TransientFailures.IsTransient);
        pipeline
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = transient,
                MaxRetryAttempts = 5,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(5),
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not BrokenCircuitException && TransientFailures.IsTransient(e)),
                FailureRatio = 0.5,
                MinimumThroughput = 4,
                SamplingDuration = TimeSpan.FromSeconds(30),
                BreakDuration = TimeSpan.FromSeconds(5),
                OnOpened = args =>
                {
                    circuit.Opened(args.Outcome.Exception?.Message ?? "failures");
                    return default;
                },
                OnClosed = _ =>
                {
                    circuit.Closed();
                    return default;
                },
            })
            .AddTimeout(new TimeoutStrategyOptions { Timeout = attemptTimeout });
    }
}

/// <summary>The position store's circuit breaker as health sees it.</summary>
public sealed class PositionStoreCircuit
{
    private volatile string? _openReason;

    /// <summary>Why the circuit is open, or null while it is closed.</summary>
    public string? OpenReason => _openReason;

    public void Opened(string reason) => _openReason = reason;

    public void Closed() => _openReason = null;
}
