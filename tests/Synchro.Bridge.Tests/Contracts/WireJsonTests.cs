using System.Text.Json;
using Synchro.Contracts;

namespace Synchro.Bridge.Tests.Contracts;

/// <summary>The v2 body as JSON: names, value forms and LSN text are fixed by the types, whatever serializer options a bus uses.</summary>
public sealed class WireJsonTests
{
    private static readonly DateTimeOffset At = new(2026, 11, 30, 13, 45, 10, 636, TimeSpan.Zero);

    // MassTransit's options name properties in camelCase and write enums as numbers; the contract's attributes decide instead.
    private static readonly JsonSerializerOptions OtherNaming = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseUpper };

    private static ChangeSet Sample() => new("app-slot", "public", "docs",
        [new Column("id", "bigint", true), new Column("title", "text", false), new Column("body", "text", false)],
        [
            new Change(new Lsn(0x8_94A64BE0), 0, 751, At, ChangeOperation.Insert, "1", new Row([ColumnValue.Of("1"), ColumnValue.Null, ColumnValue.Of("b")]), null),
            new Change(new Lsn(0x8_94A64DD0), 1, 752, At, ChangeOperation.Update, "2",
                new Row([ColumnValue.Of("2"), ColumnValue.Of("t"), ColumnValue.NotSent(UnsentReason.UnchangedToast)]),
                new Row([ColumnValue.Of("1"), ColumnValue.NotSent(UnsentReason.NotInOldKey), ColumnValue.NotSent(UnsentReason.NotInOldKey)])) { OldRecordId = "1" },
            new Change(new Lsn(0x8_94A66578), 0, 753, At, ChangeOperation.Truncate, null, null, null) { Origin = "upstream" },
        ]);

    [Fact]
    public void a_change_set_is_written_with_the_documented_names_and_value_forms()
    {
        Assert.Equal(
            """{"source":"app-slot","schema":"public","table":"docs","columns":[{"name":"id","type":"bigint","key":true},{"name":"title","type":"text","key":false},{"name":"body","type":"text","key":false}],"changes":["""
            + """{"commitLsn":"8/94A64BE0","changeIndex":0,"transactionId":751,"committedAt":"2026-11-30T13:45:10.636+00:00","operation":"insert","recordId":"1","newRow":["1",null,"b"]},"""
            + """{"commitLsn":"8/94A64DD0","changeIndex":1,"transactionId":752,"committedAt":"2026-11-30T13:45:10.636+00:00","operation":"update","recordId":"2","newRow":["2","t",{"unsent":"unchanged-toast"}],"oldRow":["1",{"unsent":"not-in-old-key"},{"unsent":"not-in-old-key"}],"oldRecordId":"1"},"""
            + """{"commitLsn":"8/94A66578","changeIndex":0,"transactionId":753,"committedAt":"2026-11-30T13:45:10.636+00:00","operation":"truncate","origin":"upstream"}]}""",
            JsonSerializer.Serialize(Sample(), OtherNaming));
    }

    [Fact]
    public void a_change_set_read_back_gives_every_value_its_column()
    {
        var read = JsonSerializer.Deserialize<ChangeSet>(JsonSerializer.Serialize(Sample()))!;

        var update = read.Changes[1];
        Assert.Equal((ChangeOperation.Update, "2", "1"), (update.Operation, update.RecordId, update.OldRecordId));
        Assert.Equal(new ChangePosition(new Lsn(0x8_94A64DD0), 1), update.Position);
        Assert.Equal(("title", "text", "t"), (update.NewRow!["title"].Name, update.NewRow["title"].Type, update.NewRow["title"].Text));
        Assert.Equal((UnsentReason.UnchangedToast, false, false), (update.NewRow["body"].Unsent, update.NewRow["body"].IsNull, update.NewRow["body"].IsSent));
        Assert.Equal((UnsentReason.NotInOldKey, false), (update.OldRow!["title"].Unsent, update.OldRow["title"].IsNull));
        Assert.True(read.Changes[0].NewRow!["title"].IsNull);
        Assert.False(update.NewRow.IsComplete);
        Assert.Equal(["id"], read.KeyColumns.Select(c => c.Name));
    }

    [Fact]
    public void properties_a_later_v2_adds_are_ignored_by_todays_readers()
    {
        const string json = """{"source":"s","schema":"public","table":"t","added":{"x":1},"columns":[{"name":"id","type":"bigint","key":true,"comment":"new"}],"changes":[{"commitLsn":"0/10","changeIndex":0,"transactionId":1,"committedAt":"2026-11-30T00:00:00+00:00","operation":"delete","recordId":"1","oldRow":[{"unsent":"not-in-old-key","since":"v2.1"}],"added":true}]}""";

        var read = JsonSerializer.Deserialize<ChangeSet>(json)!;

        Assert.Equal(UnsentReason.NotInOldKey, read.Changes.Single().OldRow!["id"].Unsent);
    }

    [Fact]
    public void a_row_with_more_values_than_columns_is_refused()
    {
        const string json = """{"source":"s","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","key":true}],"changes":[{"commitLsn":"0/10","changeIndex":0,"transactionId":1,"committedAt":"2026-11-30T00:00:00+00:00","operation":"insert","recordId":"1","newRow":["1","2"]}]}""";

        var error = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ChangeSet>(json));
        Assert.Equal("A row has 2 values but its change set 1 columns.", error.Message);
    }

    [Theory]
    [InlineData(0UL, "0/0")]
    [InlineData(0x16_B374D848UL, "16/B374D848")]
    [InlineData(ulong.MaxValue, "FFFFFFFF/FFFFFFFF")]
    public void an_lsn_is_postgresqls_text_both_ways(ulong value, string text)
    {
        Assert.Equal(text, new Lsn(value).ToString());
        Assert.Equal(value, Lsn.Parse(text).Value);
        Assert.Equal($"\"{text}\"", JsonSerializer.Serialize(new Lsn(value)));
    }

    [Theory]
    [InlineData("16B374D848")]
    [InlineData("/1")]
    [InlineData("1/G")]
    [InlineData("100000000/0")]
    public void text_that_is_not_an_lsn_is_refused_with_the_expected_form(string text)
    {
        var error = Assert.Throws<FormatException>(() => Lsn.Parse(text));
        Assert.Equal($"'{text}' is not an LSN (expected PostgreSQL's form X/Y in hex, for example 16/B374D848).", error.Message);
    }

    [Fact]
    public void positions_order_by_commit_lsn_then_change_index()
    {
        var positions = new[] { new ChangePosition(new Lsn(0x1_00000000), 0), new ChangePosition(new Lsn(0x9), 2), new ChangePosition(new Lsn(0x9), 10) };

        Assert.Equal([positions[1], positions[2], positions[0]], positions.Order());
    }
}
