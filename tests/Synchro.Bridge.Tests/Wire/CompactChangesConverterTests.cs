using System.Text.Json;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Wire;

public sealed class CompactChangesConverterTests
{
    private static readonly DateTimeOffset CommittedAt = new(2026, 11, 30, 17, 5, 1, 123, TimeSpan.FromHours(2));

    private static ChangeBatch Batch()
    {
        ColumnValue[] Row(string id, string? title, bool toast = false) =>
        [
            ColumnValue.Of("id", "int8", id),
            title is null ? ColumnValue.Null("title", "text") : ColumnValue.Of("title", "text", title),
            toast ? new ColumnValue("body", "text", ColumnValueKind.UnchangedToast, null) : ColumnValue.Of("body", "text", "\"quoted\" ü \u0001"),
        ];

        RowChange[] changes =
        [
            new(0xA_0000_1000, 0, 42, CommittedAt, ChangeOperation.Insert, "1", Row("1", "first"), null),
            new(0xA_0000_1000, 1, 42, CommittedAt, ChangeOperation.Update, "1", Row("1", null, toast: true), null, Origin: "pg_1"),
            new(0xA_0000_1000, 2, 42, CommittedAt, ChangeOperation.Delete, "1", null, [ColumnValue.Of("id", "int8", "1")]) { OldRowIsKey = true },
            new(0xA_0000_1000, 3, 42, CommittedAt, ChangeOperation.Insert, "2", Row("2", ""), null) { PreviousRecordId = "1" },
            new(0xA_0000_2000, 0, 43, CommittedAt, ChangeOperation.Truncate, "", null, null),
        ];
        var set = new ChangeSet("app-slot", Guid.NewGuid(), 7, 1, 2, "public", "todos", ["id"], changes) { RunEpoch = 3 };
        return new ChangeBatch("app-slot", set.RunId, 7, 1, 2, [set]) { Partition = 3, Layout = "4", Barrier = true, PreviousCommitLsn = 99, PreviousChangeIndex = 4 };
    }

    [Fact]
    public void a_batch_read_back_holds_every_change_value_kind_and_flag_it_was_written_with()
    {
        var batch = Batch();
        var json = JsonSerializer.Serialize(batch);
        var read = JsonSerializer.Deserialize<ChangeBatch>(json)!;

        Assert.Equivalent(batch, read, strict: true);
        Assert.Equal(CommittedAt, read.Sets[0].Changes[0].CommittedAt);
        Assert.Equal(ColumnValueKind.UnchangedToast, read.Sets[0].Changes[1].NewRow![2].Kind);
        Assert.Equal(ColumnValueKind.Null, read.Sets[0].Changes[1].NewRow![1].Kind);
        Assert.Equal("", read.Sets[0].Changes[3].NewRow![1].Text);
    }

    [Fact]
    public void each_row_shape_is_written_once_and_rows_carry_only_their_values()
    {
        var json = JsonSerializer.Serialize(Batch());
        using var document = JsonDocument.Parse(json);
        var changes = document.RootElement.GetProperty("Sets")[0].GetProperty("Changes");

        Assert.Equal("""[["id","int8","title","text","body","text"],["id","int8"]]""", changes.GetProperty("shapes").GetRawText());
        Assert.Equal("""[0,"1",null,false]""", changes.GetProperty("rows")[1][6].GetRawText());
        Assert.Equal(1, json.Split("\"title\"").Length - 1);
    }

    [Fact]
    public void changes_of_another_form_are_refused_with_a_message_that_names_the_cause()
    {
        const string Old = """{"Source":"s","RunId":"00000000-0000-0000-0000-000000000000","BatchSequence":0,"PartIndex":0,"PartCount":1,"Schema":"public","Table":"t","KeyColumns":["id"],"Changes":[{"CommitLsn":1}]}""";

        var error = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ChangeSet>(Old));

        Assert.Contains("written by another version of the bridge?", error.Message, StringComparison.Ordinal);
    }
}
