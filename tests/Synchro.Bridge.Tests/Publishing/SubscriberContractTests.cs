using Synchro.Bridge.Changes;
using Synchro.Bridge.Publishing;
using static Synchro.Bridge.Tests.Changes;
using V2 = Synchro.Contracts;

namespace Synchro.Bridge.Tests.Publishing;

public sealed class SubscriberContractTests
{
    [Fact]
    public void a_key_change_reaches_subscribers_as_one_update_naming_the_old_identity()
    {
        var delete = Delete(100, 0, 1) with { OldRowIsKey = true, OldRow = [ColumnValue.Of("id", "int8", "1"), ColumnValue.Null("user_id", "int8"), ColumnValue.Null("title", "text"), ColumnValue.Null("deleted_at", "timestamptz")] };
        var insert = Insert(100, 1, 2, 7) with { PreviousRecordId = "1" };

        var change = SubscriberContract.From(Set("s", delete, insert)).Single().Changes.Single();

        Assert.Equal((V2.ChangeOperation.Update, "2", "1", 0), (change.Operation, change.RecordId, change.OldRecordId, change.ChangeIndex));
        Assert.Equal(["1", "NotInOldKey", "NotInOldKey", "NotInOldKey"], change.OldRow!.Select(v => v.Text ?? v.Unsent.ToString()));
        Assert.Equal(["2", "7", "t", null], change.NewRow!.Select(v => v.Text));
    }

    [Fact]
    public void a_delete_followed_by_an_unrelated_insert_stays_two_changes()
    {
        var changes = SubscriberContract.From(Set("s", Delete(100, 0, 1) with { OldRow = Row(1, null) }, Insert(100, 1, 2, 7))).Single().Changes;

        Assert.Equal([V2.ChangeOperation.Delete, V2.ChangeOperation.Insert], changes.Select(c => c.Operation));
    }

    [Fact]
    public void an_old_row_under_replica_identity_full_keeps_its_nulls()
    {
        var delete = Delete(100, 0, 1) with { OldRow = Row(1, null) };

        var oldRow = SubscriberContract.From(Set("s", delete)).Single().Changes.Single().OldRow!;

        Assert.True(oldRow["user_id"].IsNull);
    }

    [Fact]
    public void a_schema_change_inside_a_set_starts_a_new_set_with_the_new_columns()
    {
        var widened = Insert(200, 0, 3, 8) with { NewRow = [.. Row(3, 8), ColumnValue.Of("rank", "smallint", "2")] };

        var sets = SubscriberContract.From(Set("s", Insert(100, 0, 1, 7), Truncate(150, 0), widened, Update(300, 0, 3, 9) with { NewRow = [.. Row(3, 9), ColumnValue.Null("rank", "smallint")] })).ToList();

        Assert.Equal(
            ["id,user_id,title,deleted_at: Insert,Truncate", "id,user_id,title,deleted_at,rank: Insert,Update"],
            sets.Select(s => $"{string.Join(",", s.Columns.Select(c => c.Name))}: {string.Join(",", s.Changes.Select(c => c.Operation))}"));
        Assert.Equal([true, false, false, false, false], sets[1].Columns.Select(c => c.Key));
    }

    [Fact]
    public void a_set_of_only_a_truncate_has_no_columns_and_no_record_id()
    {
        var set = SubscriberContract.From(Set("s", Truncate(150, 0))).Single();

        Assert.Empty(set.Columns);
        Assert.Null(set.Changes.Single().RecordId);
    }

    [Fact]
    public void an_unchanged_toast_value_is_unsent_not_null()
    {
        var update = Update(100, 0, 1, 7) with { NewRow = [.. Row(1, 7).Take(2), new ColumnValue("title", "text", ColumnValueKind.UnchangedToast, null), ColumnValue.Null("deleted_at", "timestamptz")] };

        var newRow = SubscriberContract.From(Set("s", update)).Single().Changes.Single().NewRow!;

        Assert.Equal((V2.UnsentReason.UnchangedToast, false), (newRow[2].Unsent, newRow[2].IsNull));
        Assert.True(newRow[3].IsNull);
    }
}
