namespace Synchro.Bridge.Replication;

/// <summary>Our copy of a pgoutput Relation message: the shape of a table as the stream describes it.</summary>
internal sealed record RelationSchema(uint RelationId, TableName Table, RelationColumn[] Columns)
{
    /// <summary>The columns that identify a row, in column order.</summary>
    public string[] KeyColumns { get; } = Columns.Where(c => c.IsKey).Select(c => c.Name).ToArray();
}

internal sealed record RelationColumn(string Name, string TypeName, bool IsKey);
