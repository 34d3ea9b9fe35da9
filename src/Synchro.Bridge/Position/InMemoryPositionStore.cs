using System.Collections.Concurrent;

namespace Synchro.Bridge.Position;

/// <summary>Position store for tests and throw-away runs: forgets everything when the process ends.</summary>
public sealed class InMemoryPositionStore : IPositionStore
{
    private readonly ConcurrentDictionary<string, ulong> _positions = new(StringComparer.Ordinal);

    public Task<ulong?> LoadAsync(string slotName, CancellationToken cancellationToken) =>
        Task.FromResult(_positions.TryGetValue(slotName, out var lsn) ? lsn : (ulong?)null);

    private readonly ConcurrentDictionary<string, long> _epochs = new(StringComparer.Ordinal);

    public Task<long> BeginRunAsync(string source, CancellationToken cancellationToken) =>
        Task.FromResult(_epochs.AddOrUpdate(source, 1, (_, epoch) => epoch + 1));

    public Task ForgetAsync(string slotName, CancellationToken cancellationToken)
    {
        _positions.TryRemove(slotName, out _);
        return Task.CompletedTask;
    }

    public Task SaveAsync(string slotName, ulong lsn, CancellationToken cancellationToken)
    {
        _positions.AddOrUpdate(slotName, lsn, (_, stored) => Math.Max(stored, lsn));
        return Task.CompletedTask;
    }
}
