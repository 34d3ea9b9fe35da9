using Polly;
using Polly.Registry;

namespace Synchro.Bridge.Position;

/// <summary>
/// Retries transient failures of the inner store (a dropped connection, a failover) so a blip does
/// not stop acknowledgements; anything else fails at once.
/// </summary>
public sealed class ResilientPositionStore(IPositionStore inner, ResiliencePipelineProvider<string> pipelines) : IPositionStore
{
    public const string PipelineName = "synchro-position-store";

    private readonly ResiliencePipeline _pipeline = pipelines.GetPipeline(PipelineName);

    public Task<ulong?> LoadAsync(string slotName, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask<ulong?>(state.inner.LoadAsync(state.slotName, ct)), (inner, slotName), cancellationToken).AsTask();

    public Task SaveAsync(string slotName, ulong lsn, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask(state.inner.SaveAsync(state.slotName, state.lsn, ct)), (inner, slotName, lsn), cancellationToken).AsTask();
}
