using System.Text.Json;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>The shipped schemas say something: each documented rule, broken once, is rejected.</summary>
public sealed class ShippedSchemaTests
{
    private const string Columns = """[{"name":"id","type":"bigint","key":true},{"name":"body","type":"text","key":false}]""";
    private const string Change = "\"commitLsn\":\"8/94A64BE0\",\"changeIndex\":0,\"transactionId\":1358827,\"committedAt\":\"2026-11-30T13:45:10.63634+00:00\",";

    [Theory]
    [InlineData("an LSN in lower-case hex", """{"commitLsn":"8/94a64be0","changeIndex":0,"transactionId":1,"committedAt":"2026-11-30T13:45:10+00:00","operation":"insert","recordId":"1","newRow":["1","a"]}""")]
    [InlineData("an unknown operation", $$"""{{{Change}}"operation":"upsert","recordId":"1","newRow":["1","a"]}""")]
    [InlineData("a commit time that is no date-time", """{"commitLsn":"8/94A64BE0","changeIndex":0,"transactionId":1,"committedAt":"yesterday","operation":"insert","recordId":"1","newRow":["1","a"]}""")]
    [InlineData("an insert without its row", $$"""{{{Change}}"operation":"insert","recordId":"1"}""")]
    [InlineData("an insert with an old record id", $$"""{{{Change}}"operation":"insert","recordId":"2","newRow":["2","a"],"oldRow":["1",{"unsent":"not-in-old-key"}],"oldRecordId":"1"}""")]
    [InlineData("a key change without its old image", $$"""{{{Change}}"operation":"update","recordId":"2","newRow":["2","a"],"oldRecordId":"1"}""")]
    [InlineData("a delete with a new row", $$"""{{{Change}}"operation":"delete","recordId":"1","newRow":["1","a"],"oldRow":["1",{"unsent":"not-in-old-key"}]}""")]
    [InlineData("a delete without its old key", $$"""{{{Change}}"operation":"delete","recordId":"1"}""")]
    [InlineData("a truncate with a record id", $$"""{{{Change}}"operation":"truncate","recordId":"1"}""")]
    [InlineData("an unsent value for another reason", $$"""{{{Change}}"operation":"update","recordId":"1","newRow":["1",{"unsent":"too-large"}]}""")]
    [InlineData("a number as a value", $$"""{{{Change}}"operation":"insert","recordId":"1","newRow":[1,"a"]}""")]
    public void a_change_set_breaking_a_documented_rule_is_rejected(string rule, string change)
    {
        var set = JsonSerializer.Deserialize<JsonElement>($$"""{"source":"app-slot","schema":"public","table":"docs","columns":{{Columns}},"changes":[{{change}}]}""");

        Assert.True(ShippedSchema.ChangeSet.Errors(set) is not null, $"{rule} passed");
    }

    [Fact]
    public void a_property_a_later_v2_adds_passes_the_shipped_schema_and_only_our_closed_check_fails()
    {
        var set = JsonSerializer.Deserialize<JsonElement>($$"""
            {"source":"app-slot","schema":"public","table":"docs","columns":{{Columns}},"partition":3,
             "changes":[{{{Change}}"operation":"insert","recordId":"1","newRow":["1","a"]}]}
            """);

        Assert.StartsWith("change-set.v2.schema.json (with every object closed) rejects", ShippedSchema.ChangeSet.Errors(set), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a transactional message without its commit", """{"source":"app-slot","prefix":"audit","content":"eA==","transactional":true,"messageLsn":"8/94A66730"}""")]
    [InlineData("a message outside a transaction with a commit", """{"source":"app-slot","prefix":"audit","content":"eA==","transactional":false,"messageLsn":"8/94A66730","commitLsn":"8/94A66730"}""")]
    [InlineData("content that is not base64", """{"source":"app-slot","prefix":"audit","content":"not base64!","transactional":false,"messageLsn":"8/94A66730"}""")]
    [InlineData("a source name with a dot", """{"source":"app.slot","prefix":"audit","content":"eA==","transactional":false,"messageLsn":"8/94A66730"}""")]
    public void a_logical_message_breaking_a_documented_rule_is_rejected(string rule, string message) =>
        Assert.True(ShippedSchema.LogicalMessage.Errors(JsonSerializer.Deserialize<JsonElement>(message)) is not null, $"{rule} passed");

    [Theory]
    [InlineData("another content type", """{"content_type":"application/vnd.masstransit+json","message_id":"e7290000-646f-3ac3-a31d-08df4eea737d","headers":{"Synchro-Origin":"7713827304407411205/app/slot"}}""")]
    [InlineData("no origin", """{"content_type":"application/json","message_id":"e7290000-646f-3ac3-a31d-08df4eea737d","headers":{}}""")]
    [InlineData("an origin without the system identifier", """{"content_type":"application/json","message_id":"e7290000-646f-3ac3-a31d-08df4eea737d","headers":{"Synchro-Origin":"app/slot"}}""")]
    public void amqp_properties_breaking_a_documented_rule_are_rejected(string rule, string properties) =>
        Assert.True(ShippedSchema.Headers.Errors(JsonSerializer.Deserialize<JsonElement>(properties)) is not null, $"{rule} passed");

    [Fact]
    public void the_documented_example_of_every_operation_is_accepted()
    {
        var set = JsonSerializer.Deserialize<JsonElement>($$"""
            {"source":"app-slot","schema":"public","table":"docs","columns":{{Columns}},"changes":[
              {{{Change}}"operation":"read","recordId":"1","newRow":["1",null]},
              {{{Change}}"operation":"insert","recordId":"2","newRow":["2","text"]},
              {{{Change}}"operation":"update","recordId":"2","newRow":["2",{"unsent":"unchanged-toast"}]},
              {{{Change}}"operation":"update","recordId":"3","newRow":["3",{"unsent":"unchanged-toast"}],"oldRow":["2",{"unsent":"not-in-old-key"}],"oldRecordId":"2","origin":"upstream"},
              {{{Change}}"operation":"delete","recordId":"3","oldRow":["3",{"unsent":"not-in-old-key"}]},
              {{{Change}}"operation":"truncate"}]}
            """);

        Assert.Null(ShippedSchema.ChangeSet.Errors(set));
    }
}
