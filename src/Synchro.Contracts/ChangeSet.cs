using System.Text.Json.Serialization;
using MassTransit;

namespace Synchro.Contracts;

/// <summary>
/// The changes of one table from one or more committed transactions, in commit order, as published
/// for subscribers: raw JSON (no MassTransit envelope) on the topic exchange
/// <see cref="WireNames.ChangeSetExchange"/> with routing key <c>source.schema.table</c>. The
/// columns are named once per set; every row lists its values in their order. A schema change
/// inside a batch starts a new set, so every row of a set has exactly these columns.
/// </summary>
/// <param name="Source">The source's name (by default <c>database-slot</c>): the first word of the routing key.</param>
/// <param name="Schema">Schema of the table.</param>
/// <param name="Table">Name of the table.</param>
/// <param name="Columns">The table's columns, in the order of every row's values.</param>
/// <param name="Changes">The row changes, in commit order.</param>
[MessageUrn(WireNames.ChangeSetUrn)]
[EntityName(WireNames.ChangeSetExchange)]
public sealed record ChangeSet(
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("schema")] string Schema,
    [property: JsonPropertyName("table")] string Table,
    [property: JsonPropertyName("columns")] IReadOnlyList<Column> Columns,
    IReadOnlyList<Change> Changes)
{
    /// <summary>The row changes, in commit order; every row's values know their columns, so they can be read by name.</summary>
    [JsonPropertyName("changes")]
    public IReadOnlyList<Change> Changes { get; init; } = BindRows(Columns, Changes);

    /// <summary>The record ids' columns, in order.</summary>
    [JsonIgnore]
    public IEnumerable<Column> KeyColumns => Columns.Where(c => c.Key);

    private static IReadOnlyList<Change> BindRows(IReadOnlyList<Column> columns, IReadOnlyList<Change> changes)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(changes);
        foreach (var change in changes)
        {
            change.NewRow?.Bind(columns);
            change.OldRow?.Bind(columns);
        }

        return changes;
    }
}
