using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>
/// One of the JSON Schemas in <c>contracts/</c>. Subscribers validate with it as shipped, where
/// objects stay open for properties a later v2 adds; we also validate with every object closed
/// (<c>unevaluatedProperties: false</c>), so a property the bridge sends but the schema does not
/// describe fails here before any subscriber meets it.
/// </summary>
internal sealed class ShippedSchema
{
    public static readonly ShippedSchema ChangeSet = Load("change-set.v2.schema.json");
    public static readonly ShippedSchema LogicalMessage = Load("logical-message.v2.schema.json");
    public static readonly ShippedSchema Headers = Load("headers.v2.schema.json");

    private static readonly EvaluationOptions Evaluation = new() { OutputFormat = OutputFormat.List, RequireFormatValidation = true };

    private readonly JsonSchema _shipped;
    private readonly JsonSchema _closed;

    private ShippedSchema(string file, JsonSchema shipped, JsonSchema closed)
    {
        File = file;
        _shipped = shipped;
        _closed = closed;
    }

    public string File { get; }

    /// <summary>Null when the instance is valid against the schema both as shipped and closed; otherwise the validator's output.</summary>
    public string? Errors(JsonElement instance)
    {
        foreach (var (schema, how) in new[] { (_shipped, "as shipped"), (_closed, "with every object closed") })
        {
            var result = schema.Evaluate(instance, Evaluation);
            if (!result.IsValid)
            {
                var errors = (result.Details ?? []).Prepend(result)
                    .Where(r => r.Errors is { Count: > 0 } && !r.EvaluationPath.ToString().Contains("/if/", StringComparison.Ordinal)) // a failed "if" is no error
                    .Select(r => $"  {r.InstanceLocation}: {string.Join("; ", r.Errors!.Select(e => $"{e.Key} {e.Value}"))} (schema path {r.EvaluationPath})");
                return $"{File} ({how}) rejects {instance.GetRawText()}:\n{string.Join("\n", errors)}";
            }
        }

        return null;
    }

    private static ShippedSchema Load(string file)
    {
        var text = System.IO.File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "contracts", file));
        var closed = JsonNode.Parse(text)!.AsObject();
        closed["$id"] = closed["$id"]!.GetValue<string>() + ":closed";
        Close(closed);
        return new ShippedSchema(file, JsonSchema.FromText(text), JsonSchema.FromText(closed.ToJsonString()));
    }

    private static void Close(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject schema:
                foreach (var (_, child) in schema.ToList())
                    Close(child);
                if (schema["type"] is JsonValue type && type.ToString() == "object")
                    schema["unevaluatedProperties"] = false;
                break;
            case JsonArray items:
                foreach (var item in items)
                    Close(item);
                break;
        }
    }
}
