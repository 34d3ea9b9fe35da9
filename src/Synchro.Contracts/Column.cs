using System.Text.Json.Serialization;

namespace Synchro.Contracts;

/// <summary>One column of a change set's table, as the changes in the set have it.</summary>
/// <param name="Name">The column's name as PostgreSQL spells it.</param>
/// <param name="Type">PostgreSQL's <c>format_type</c> spelling, typmod included (<c>bigint</c>, <c>numeric(10,2)</c>, <c>text[]</c>).</param>
/// <param name="Key">Whether the column is part of the record id (the primary key, or the replica identity index).</param>
public sealed record Column(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("key")] bool Key);
