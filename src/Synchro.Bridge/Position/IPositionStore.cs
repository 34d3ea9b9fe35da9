namespace Synchro.Bridge.Position;

/// <summary>Durable record of the LSN up to which everything downstream is applied, per slot.</summary>
public interface IPositionStore
{
    /// <summary>The stored LSN of the slot, or null when none was stored yet.</summary>
    Task<ulong?> LoadAsync(string slotName, CancellationToken cancellationToken);

    /// <summary>Stores the LSN; a lower LSN than the stored one never moves it back.</summary>
    Task SaveAsync(string slotName, ulong lsn, CancellationToken cancellationToken);

    /// <summary>Removes the slot's stored LSN: an accepted gap, before the slot is created anew.</summary>
    Task ForgetAsync(string slotName, CancellationToken cancellationToken);

    /// <summary>
    /// Starts a new run of the source's slot reader and returns its epoch, higher than every earlier
    /// run's. Change sets of older runs are superseded: the new run re-reads what they carried.
    /// </summary>
    Task<long> BeginRunAsync(string source, CancellationToken cancellationToken);
}
