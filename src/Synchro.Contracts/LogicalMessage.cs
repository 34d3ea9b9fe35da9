using MassTransit;

namespace Synchro.Contracts;

/// <summary>
/// A logical decoding message written with <c>pg_logical_emit_message(transactional, prefix, content)</c>.
/// Published to <see cref="WireNames.LogicalMessageExchange"/> with the prefix as routing key.
/// Transactional messages are published only once their transaction committed (an aborted one's never
/// are); non-transactional ones as soon as they are read.
/// </summary>
/// <param name="Source">The replication slot the message was read from.</param>
/// <param name="Prefix">The prefix given by the writer.</param>
/// <param name="Content">The content bytes, as written.</param>
/// <param name="Transactional">Whether the message belongs to a transaction.</param>
/// <param name="MessageLsn">LSN of the message.</param>
/// <param name="CommitLsn">Commit LSN of its transaction when transactional; otherwise null.</param>
[MessageUrn(WireNames.LogicalMessageUrn)]
[EntityName(WireNames.LogicalMessageExchange)]
public sealed record LogicalMessage(string Source, string Prefix, byte[] Content, bool Transactional, ulong MessageLsn, ulong? CommitLsn);
