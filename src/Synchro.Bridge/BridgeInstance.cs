namespace Synchro.Bridge;

/// <summary>
/// Identifies one bridge process: its confirmation queue is its own, and its replication sessions
/// carry <see cref="ApplicationName"/>, so a stale session of ours is told apart from another instance.
/// </summary>
internal sealed class BridgeInstance
{
    public string Id { get; } = Guid.NewGuid().ToString("N")[..12];

    public string ApplicationName => "synchro-bridge/" + Id;
}
