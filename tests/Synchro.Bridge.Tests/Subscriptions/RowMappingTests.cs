using System.Text.Json;
using Synchro.Contracts;
using Synchro.Subscriptions;

namespace Synchro.Bridge.Tests.Subscriptions;

public sealed class RowMappingTests
{
    public enum Mood
    {
        Sad,
        Happy,
    }

    public sealed record Order(long Id, string CustomerName, decimal Total, DateTimeOffset PlacedAt, Guid? Coupon, string? Note, Mood Mood)
    {
        public bool Paid { get; init; }

        public byte[]? Receipt { get; set; }
    }

    private static Row RowOf(string json) =>
        JsonSerializer.Deserialize<ChangeSet>(
            $$"""{"source":"s","schema":"public","table":"orders","columns":[{"name":"id","type":"bigint","key":true},{"name":"customer_name","type":"text","key":false},{"name":"total","type":"numeric(30,10)","key":false},{"name":"placed_at","type":"timestamp with time zone","key":false},{"name":"coupon","type":"uuid","key":false},{"name":"note","type":"text","key":false},{"name":"mood","type":"mood","key":false},{"name":"paid","type":"boolean","key":false},{"name":"receipt","type":"bytea","key":false},{"name":"ignored","type":"text","key":false}],"changes":[{"commitLsn":"0/10","changeIndex":0,"transactionId":1,"committedAt":"2026-11-30T00:00:00+00:00","operation":"update","recordId":"1","newRow":{{json}}}]}""")!
            .Changes.Single().NewRow!;

    [Fact]
    public void a_row_reads_as_a_record_by_column_names_with_exact_values()
    {
        var order = RowOf("""["42","Ann","12345678901234567890.1234567891","2026-11-23 11:14:15.5+00",null,"x","happy","t","\\x00ff","other"]""").As<Order>();

        Assert.Equal((42L, "Ann", 12345678901234567890.1234567891m, new DateTimeOffset(2026, 11, 23, 11, 14, 15, 500, TimeSpan.Zero), (Guid?)null, "x", Mood.Happy, true),
            (order.Id, order.CustomerName, order.Total, order.PlacedAt, order.Coupon, order.Note, order.Mood, order.Paid));
        Assert.Equal([0x00, 0xff], order.Receipt);
    }

    [Fact]
    public void an_unsent_value_is_refused_without_the_previous_record()
    {
        var row = RowOf("""["42","Ann","1",{"unsent":"unchanged-toast"},null,null,"sad","f",null,null]""");

        var error = Assert.Throws<InvalidOperationException>(() => row.As<Order>());
        Assert.Equal("Column placed_at was not sent (UnchangedToast): the value it had before this change still stands. Read the row with As(previous), passing the Order you hold.", error.Message);
    }

    [Fact]
    public void an_unsent_value_is_taken_from_the_previous_record()
    {
        var before = new Order(42, "Ann", 1m, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), null, "long note", Mood.Sad);
        var row = RowOf("""["42","Bob","2","2026-02-01 00:00:00+00",null,{"unsent":"unchanged-toast"},"sad","f",null,null]""");

        var after = row.As(before);

        Assert.Equal(("Bob", 2m, "long note"), (after.CustomerName, after.Total, after.Note));
    }

    [Fact]
    public void a_null_for_a_member_that_cannot_be_null_is_refused_with_what_to_change()
    {
        var row = RowOf("""["42","Ann",null,"2026-02-01 00:00:00+00",null,null,"sad","f",null,null]""");

        var error = Assert.Throws<InvalidOperationException>(() => row.As<Order>());
        Assert.Equal("Column total is NULL but Decimal cannot be null: make the member nullable.", error.Message);
    }
}
