namespace Synchro.Bridge.Sources;

/// <summary>What the server says of itself on the replication connection (IDENTIFY_SYSTEM).</summary>
/// <param name="WalEnd">The server's current WAL position: no stored position may lie beyond it.</param>
public sealed record ServerTimeline(string SystemIdentifier, uint Timeline, ulong WalEnd);

/// <summary>
/// A stretch of the source's history in which its LSNs only grow. A new one starts when the server
/// is another cluster (a restore into a new cluster: LSNs start again low), or another timeline (a
/// promoted standby, a point-in-time recovery: history forks after <see cref="Start"/>), or when a
/// stored position lies beyond the server's WAL.
/// </summary>
/// <param name="Number">0 for the source's first history; one more at every new generation.</param>
/// <param name="Start">A position the generation's history shares with the previous one's, at or before where they part: changes up to it are shared. 0 when nothing is shared.</param>
public readonly record struct SourceGeneration(long Number, ulong Start);
