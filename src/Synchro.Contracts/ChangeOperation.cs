using System.Text.Json.Serialization;

namespace Synchro.Contracts;

/// <summary>What a <see cref="Change"/> did. On the wire: the lower-case name (<c>"insert"</c>, ...).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ChangeOperation>))]
public enum ChangeOperation
{
    /// <summary>A row was inserted: <see cref="Change.NewRow"/> is the whole row.</summary>
    [JsonStringEnumMemberName("insert")]
    Insert = 1,

    /// <summary>
    /// A row was updated: <see cref="Change.NewRow"/> is the row after it, where a value can be
    /// unsent (an unchanged TOAST value: the value before the update still stands). When the update
    /// changed the row's key, <see cref="Change.OldRecordId"/> names the identity it had before.
    /// </summary>
    [JsonStringEnumMemberName("update")]
    Update = 2,

    /// <summary>A row was deleted: <see cref="Change.OldRow"/> holds its key (or the whole row under <c>REPLICA IDENTITY FULL</c>).</summary>
    [JsonStringEnumMemberName("delete")]
    Delete = 3,

    /// <summary>The table was truncated: every row is gone. No record id, no rows.</summary>
    [JsonStringEnumMemberName("truncate")]
    Truncate = 4,

    /// <summary>
    /// A row as it stands, read by a snapshot or a backfill rather than decoded from a change:
    /// <see cref="Change.NewRow"/> is the whole row. Upsert it; a repeated backfill may send a row again.
    /// </summary>
    [JsonStringEnumMemberName("read")]
    Read = 5,
}
