using Synchro.Bridge.Changes;
using V2 = Synchro.Contracts;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Turns the bridge's own change sets into the subscriber contract (<see cref="V2.ChangeSet"/>):
/// columns named once per set (a schema change starts a new set), values that PostgreSQL did not
/// send marked as such instead of reading like NULL, and a key change as the one update it was in
/// PostgreSQL, naming the identity it had before.
/// </summary>
internal static class SubscriberContract
{
    public static IEnumerable<V2.ChangeSet> From(ChangeSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var keys = set.KeyColumns.ToHashSet(StringComparer.Ordinal);
        V2.Column[]? columns = null;
        var changes = new List<V2.Change>();
        var all = set.Changes;
        for (var i = 0; i < all.Count; i++)
        {
            var change = all[i];
            // The bridge splits a key change into a delete and an insert (the bucket consumer needs both); subscribers get it whole.
            var keyChangeInsert = i + 1 < all.Count && change.Operation == ChangeOperation.Delete && all[i + 1].PreviousRecordId == change.RecordId
                && all[i + 1].Operation == ChangeOperation.Insert && all[i + 1].CommitLsn == change.CommitLsn ? all[i + 1] : null;
            // Columns are built once per shape, not per change: only a schema change starts a new set.
            if ((keyChangeInsert?.NewRow ?? change.NewRow ?? change.OldRow) is { } row && (columns is null || !HasShape(row, columns)))
            {
                if (columns is not null && changes.Count > 0)
                {
                    yield return new V2.ChangeSet(set.Source, set.Schema, set.Table, columns, changes);
                    changes = [];
                }

                columns = ShapeOf(row, keys);
            }

            if (keyChangeInsert is not null)
            {
                // The change keeps the index of its first half, as PostgreSQL numbered it in the transaction.
                changes.Add(new V2.Change(new V2.Lsn(keyChangeInsert.CommitLsn), change.ChangeIndex, keyChangeInsert.TransactionId, keyChangeInsert.CommittedAt,
                    V2.ChangeOperation.Update, keyChangeInsert.RecordId, RowOf(keyChangeInsert.NewRow, false, keys), RowOf(change.OldRow, change.OldRowIsKey, keys))
                {
                    OldRecordId = change.RecordId,
                    Origin = keyChangeInsert.Origin,
                });
                i++;
                continue;
            }

            changes.Add(new V2.Change(new V2.Lsn(change.CommitLsn), change.ChangeIndex, change.TransactionId, change.CommittedAt,
                (V2.ChangeOperation)(int)change.Operation, change.Operation == ChangeOperation.Truncate ? null : change.RecordId,
                RowOf(change.NewRow, false, keys), RowOf(change.OldRow, change.OldRowIsKey, keys))
            {
                Origin = change.Origin,
            });
        }

        if (changes.Count > 0)
            yield return new V2.ChangeSet(set.Source, set.Schema, set.Table, columns ?? [], changes);
    }

    private static V2.Column[] ShapeOf(IReadOnlyList<ColumnValue> row, HashSet<string> keys) =>
        [.. row.Select(c => new V2.Column(c.Name, c.Type, keys.Contains(c.Name)))];

    private static bool HasShape(IReadOnlyList<ColumnValue> row, V2.Column[] columns) =>
        row.HasColumns(columns.Length, i => columns[i].Name, i => columns[i].Type);

    private static V2.Row? RowOf(IReadOnlyList<ColumnValue>? row, bool keyOnly, HashSet<string> keys) =>
        row is null ? null : new V2.Row(row.Select(c => c.Kind switch
        {
            ColumnValueKind.Text => V2.ColumnValue.Of(c.Text!),
            ColumnValueKind.UnchangedToast => V2.ColumnValue.NotSent(V2.UnsentReason.UnchangedToast),
            _ when keyOnly && !keys.Contains(c.Name) => V2.ColumnValue.NotSent(V2.UnsentReason.NotInOldKey),
            _ => V2.ColumnValue.Null,
        }));
}
