using System.Collections;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Synchro.Contracts;

/// <summary>
/// A row image: one value per column of its change set, in the set's column order. On the wire a
/// JSON array (<c>["1", null, {"unsent": "unchanged-toast"}]</c>); read from a change set, each value
/// knows its column, so <c>row["title"]</c> works.
/// </summary>
[JsonConverter(typeof(RowJsonConverter))]
public sealed class Row : IReadOnlyList<ColumnValue>
{
    private ColumnValue[] _values;
    private Dictionary<string, int>? _byName;

    /// <summary>A row of these values, one per column in the set's order.</summary>
    public Row(IEnumerable<ColumnValue> values) => _values = [.. values ?? throw new ArgumentNullException(nameof(values))];

    /// <inheritdoc/>
    public int Count => _values.Length;

    /// <inheritdoc/>
    public ColumnValue this[int index] => _values[index];

    /// <summary>The value of the named column.</summary>
    /// <exception cref="KeyNotFoundException">The change set has no such column.</exception>
    public ColumnValue this[string column] => TryGet(column, out var value)
        ? value
        : throw new KeyNotFoundException($"The row has no column '{column}'; it has {string.Join(", ", _values.Select(v => v.Name))}.");

    /// <summary>The value of the named column, if the change set has it.</summary>
    public bool TryGet(string column, out ColumnValue value)
    {
        _byName ??= _values.Select((v, i) => (v.Name, i)).ToDictionary(p => p.Name, p => p.i, StringComparer.Ordinal);
        if (_byName.TryGetValue(column, out var index))
        {
            value = _values[index];
            return true;
        }

        value = null!;
        return false;
    }

    /// <summary>Whether every value was sent (none is <see cref="ColumnValue.Unsent"/>).</summary>
    public bool IsComplete => _values.All(v => v.IsSent);

    /// <inheritdoc/>
    public IEnumerator<ColumnValue> GetEnumerator() => ((IEnumerable<ColumnValue>)_values).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    internal void Bind(IReadOnlyList<Column> columns)
    {
        if (columns.Count != _values.Length)
            throw new JsonException($"A row has {_values.Length} values but its change set {columns.Count} columns.");
        for (var i = 0; i < _values.Length; i++)
            _values[i] = _values[i].BoundTo(columns[i]);
        _byName = null;
    }
}

/// <summary>Writes and reads a <see cref="Row"/> as a JSON array of strings, nulls and <c>{"unsent": reason}</c> objects.</summary>
public sealed class RowJsonConverter : JsonConverter<Row>
{
    private const string UnsentProperty = "unsent";
    private const string UnchangedToast = "unchanged-toast";
    private const string NotInOldKey = "not-in-old-key";

    /// <inheritdoc/>
    public override Row Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw new JsonException("A row is a JSON array of values.");
        var values = new List<ColumnValue>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            values.Add(reader.TokenType switch
            {
                JsonTokenType.String => ColumnValue.Of(reader.GetString()!),
                JsonTokenType.Null => ColumnValue.Null,
                JsonTokenType.StartObject => ColumnValue.NotSent(ReadUnsent(ref reader)),
                var token => throw new JsonException($"A row value is a string, null or {{\"unsent\": ...}}, not {token}."),
            });
        }

        return new Row(values);
    }

    private static UnsentReason ReadUnsent(ref Utf8JsonReader reader)
    {
        UnsentReason? reason = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var property = reader.GetString();
            reader.Read();
            if (property != UnsentProperty)
            {
                reader.Skip(); // room for later additions
                continue;
            }

            reason = reader.GetString() switch
            {
                UnchangedToast => UnsentReason.UnchangedToast,
                NotInOldKey => UnsentReason.NotInOldKey,
                var other => throw new JsonException($"Unknown unsent reason '{other}'."),
            };
        }

        return reason ?? throw new JsonException("A row value object must have \"unsent\".");
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, Row value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartArray();
        foreach (var column in value)
        {
            switch (column.Unsent)
            {
                case null when column.Text is null:
                    writer.WriteNullValue();
                    break;
                case null:
                    writer.WriteStringValue(column.Text);
                    break;
                case var reason:
                    writer.WriteStartObject();
                    writer.WriteString(UnsentProperty, reason == UnsentReason.UnchangedToast ? UnchangedToast : NotInOldKey);
                    writer.WriteEndObject();
                    break;
            }
        }

        writer.WriteEndArray();
    }
}
