using System.Text.Json.Serialization;
using MassTransit;

namespace Synchro.Contracts;

/// <summary>
/// A logical decoding message written with <c>pg_logical_emit_message(transactional, prefix, content)</c>,
/// published as raw JSON to <see cref="WireNames.LogicalMessageExchange"/> with the prefix as routing
/// key. Transactional messages are published only once their transaction committed (an aborted
/// one's never are); non-transactional ones as soon as they are read.
/// </summary>
/// <param name="Source">The source's name.</param>
/// <param name="Prefix">The prefix given by the writer.</param>
/// <param name="Content">The content bytes, as written (base64 on the wire).</param>
/// <param name="Transactional">Whether the message belongs to a transaction.</param>
/// <param name="MessageLsn">LSN of the message.</param>
/// <param name="CommitLsn">Commit LSN of its transaction when transactional; otherwise null.</param>
[MessageUrn(WireNames.LogicalMessageUrn)]
[EntityName(WireNames.LogicalMessageExchange)]
public sealed record LogicalMessage(
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("prefix")] string Prefix,
    [property: JsonPropertyName("content")] byte[] Content,
    [property: JsonPropertyName("transactional")] bool Transactional,
    [property: JsonPropertyName("messageLsn")] Lsn MessageLsn,
    [property: JsonPropertyName("commitLsn"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Lsn? CommitLsn);
