using System.Text.Json;
using System.Text.Json.Nodes;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>Readings of raw subscriber messages that the contract tests compare: kind, shape, AMQP properties.</summary>
internal static class WireMessages
{
    public static bool IsChangeSet(this RawDelivery delivery) => delivery.Exchange == WireNames.ChangeSetExchange;

    public static JsonElement Body(this RawDelivery delivery) => JsonSerializer.Deserialize<JsonElement>(delivery.Body);

    /// <summary>The delivery's AMQP properties as <c>contracts/headers.v2.schema.json</c> writes them.</summary>
    public static JsonElement Properties(this RawDelivery delivery) => JsonSerializer.SerializeToElement(new Dictionary<string, object?>
    {
        ["content_type"] = delivery.ContentType,
        ["message_id"] = delivery.MessageId,
        ["headers"] = delivery.Headers,
    });

    /// <summary>The number of row changes in these deliveries' change sets.</summary>
    public static int ChangeCount(IEnumerable<RawDelivery> deliveries) =>
        deliveries.Where(IsChangeSet).Sum(d => d.Body().GetProperty("changes").GetArrayLength());

    /// <summary>A change set cut into sets of one change each (a logical message as it is), so batching does not change what is compared.</summary>
    public static IEnumerable<JsonElement> OneChangeEach(JsonElement message)
    {
        if (!message.TryGetProperty("changes", out var changes))
        {
            yield return message;
            yield break;
        }

        foreach (var change in changes.EnumerateArray())
        {
            var single = JsonNode.Parse(message.GetRawText())!.AsObject();
            single["changes"] = new JsonArray(JsonNode.Parse(change.GetRawText()));
            yield return JsonSerializer.SerializeToElement(single);
        }
    }

    /// <summary>What a message of one change (or a logical message) shows: its operation, or which logical message.</summary>
    public static string KindOf(JsonElement message) =>
        message.TryGetProperty("changes", out var changes)
            ? string.Join(" + ", changes.EnumerateArray().Select(c => c.GetProperty("operation").GetString() + (c.TryGetProperty("oldRecordId", out _) ? " changing the key" : "")).Distinct())
            : message.GetProperty("transactional").GetBoolean() ? "transactional logical message" : "logical message";

    /// <summary>
    /// Property names at every level and the JSON kinds of the values, not the values: objects by
    /// their sorted properties, arrays by the distinct shapes of their items.
    /// </summary>
    public static string Shape(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(", ", value.EnumerateObject().Select(p => p.Name + ": " + Shape(p.Value)).Order(StringComparer.Ordinal)) + "}",
        JsonValueKind.Array => "[" + string.Join(" | ", value.EnumerateArray().Select(Shape).Distinct().Order(StringComparer.Ordinal)) + "]",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };
}
