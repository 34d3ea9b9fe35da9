using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests;

/// <summary>Builders for row changes and change sets in tests.</summary>
internal static class Changes
{
    public static readonly DateTimeOffset CommittedAt = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    public static ColumnValue[] Row(long id, long? userId, string title = "t", string? deletedAt = null) =>
    [
        ColumnValue.Of("id", "int8", id.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        userId is { } owner ? ColumnValue.Of("user_id", "int8", owner.ToString(System.Globalization.CultureInfo.InvariantCulture)) : ColumnValue.Null("user_id", "int8"),
        ColumnValue.Of("title", "text", title),
        deletedAt is null ? ColumnValue.Null("deleted_at", "timestamptz") : ColumnValue.Of("deleted_at", "timestamptz", deletedAt),
    ];

    public static RowChange Insert(ulong lsn, int index, long id, long? userId, string title = "t") =>
        new(lsn, index, 700, CommittedAt, ChangeOperation.Insert, Id(id), Row(id, userId, title), null);

    public static RowChange Update(ulong lsn, int index, long id, long? userId, string title = "t", string? deletedAt = null) =>
        new(lsn, index, 700, CommittedAt, ChangeOperation.Update, Id(id), Row(id, userId, title, deletedAt), null);

    public static RowChange Read(ulong lsn, int index, long id, long? userId, string title = "t") =>
        new(lsn, index, 0, CommittedAt, ChangeOperation.Read, Id(id), Row(id, userId, title), null);

    public static RowChange Delete(ulong lsn, int index, long id) =>
        new(lsn, index, 700, CommittedAt, ChangeOperation.Delete, Id(id), null, [ColumnValue.Of("id", "int8", Id(id))]);

    public static ChangeSet Set(string source, params RowChange[] changes) =>
        new(source, Guid.Empty, 0, 0, 1, "public", "todos", ["id"], changes);

    public static RowChange Truncate(ulong lsn, int index) =>
        new(lsn, index, 700, CommittedAt, ChangeOperation.Truncate, "", null, null);

    private static string Id(long id) => id.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
