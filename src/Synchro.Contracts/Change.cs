using System.Text.Json.Serialization;

namespace Synchro.Contracts;

/// <summary>One row change, as committed in PostgreSQL.</summary>
/// <param name="CommitLsn">Commit LSN of the transaction that made the change.</param>
/// <param name="ChangeIndex">
/// Position of the change inside its transaction (0-based, over all tables; increasing, not always
/// contiguous within one table). With <paramref name="CommitLsn"/> it identifies the change: see <see cref="Position"/>.
/// </param>
/// <param name="TransactionId">PostgreSQL transaction id (<c>xid</c>); 0 for the rows of an initial snapshot.</param>
/// <param name="CommittedAt">Commit time.</param>
/// <param name="Operation">What the change did.</param>
/// <param name="RecordId">
/// The record's identity from its key: the key's text for a one-column key, a JSON array of the key
/// columns' texts for a composite key (<c>["1","ann"]</c>); null for a truncate.
/// </param>
/// <param name="NewRow">The row after the change (insert, update, read); null for a delete and a truncate.</param>
/// <param name="OldRow">The old image when PostgreSQL sent one: the old key of a delete or of a key change (other columns unsent), or the whole old row under <c>REPLICA IDENTITY FULL</c>; otherwise null.</param>
public sealed record Change(
    [property: JsonPropertyName("commitLsn")] Lsn CommitLsn,
    [property: JsonPropertyName("changeIndex")] int ChangeIndex,
    [property: JsonPropertyName("transactionId")] long TransactionId,
    [property: JsonPropertyName("committedAt")] DateTimeOffset CommittedAt,
    [property: JsonPropertyName("operation")] ChangeOperation Operation,
    [property: JsonPropertyName("recordId"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RecordId,
    [property: JsonPropertyName("newRow"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Row? NewRow,
    [property: JsonPropertyName("oldRow"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Row? OldRow)
{
    /// <summary>
    /// For an update that changed the row's key: the record id it had before. The record moves from
    /// this identity to <see cref="RecordId"/>; its unsent values are those it had under the old one.
    /// Null otherwise.
    /// </summary>
    [JsonPropertyName("oldRecordId")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? OldRecordId { get; init; }

    /// <summary>Replication origin of the transaction when it was replayed from elsewhere (PostgreSQL's Origin message); otherwise null.</summary>
    [JsonPropertyName("origin")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Origin { get; init; }

    /// <summary>The change's place in the stream: unique, and ordered as the changes were committed.</summary>
    [JsonIgnore]
    public ChangePosition Position => new(CommitLsn, ChangeIndex);
}

/// <summary>
/// Where a change sits in the stream: its transaction's commit LSN and its index inside the
/// transaction. Unique per change and ordered by commit; a subscriber that stores the position of
/// the last change it applied skips every change at or before it, so replays change nothing.
/// </summary>
/// <param name="CommitLsn">The transaction's commit LSN.</param>
/// <param name="ChangeIndex">The change's index inside its transaction.</param>
public readonly record struct ChangePosition(Lsn CommitLsn, int ChangeIndex) : IComparable<ChangePosition>
{
    /// <summary>Before every change.</summary>
    public static ChangePosition Start => default;

    /// <inheritdoc/>
    public int CompareTo(ChangePosition other)
    {
        var byLsn = CommitLsn.CompareTo(other.CommitLsn);
        return byLsn != 0 ? byLsn : ChangeIndex.CompareTo(other.ChangeIndex);
    }

    /// <summary>Whether <paramref name="left"/> comes before <paramref name="right"/>.</summary>
    public static bool operator <(ChangePosition left, ChangePosition right) => left.CompareTo(right) < 0;

    /// <summary>Whether <paramref name="left"/> comes after <paramref name="right"/>.</summary>
    public static bool operator >(ChangePosition left, ChangePosition right) => left.CompareTo(right) > 0;

    /// <summary>Whether <paramref name="left"/> is at or before <paramref name="right"/>.</summary>
    public static bool operator <=(ChangePosition left, ChangePosition right) => left.CompareTo(right) <= 0;

    /// <summary>Whether <paramref name="left"/> is at or after <paramref name="right"/>.</summary>
    public static bool operator >=(ChangePosition left, ChangePosition right) => left.CompareTo(right) >= 0;

    /// <inheritdoc/>
    public override string ToString() => $"{CommitLsn}#{ChangeIndex}";
}
