namespace Synchro.Bridge.Replication;

/// <summary>Our copy of a pgoutput Relation message: the shape of a table as the stream describes it.</summary>
internal sealed record RelationSchema(uint RelationId, TableName Table, RelationColumn[] Columns)
{
    public bool HasKey => Columns.Any(c => c.IsKey);
}

internal sealed record RelationColumn(string Name, uint TypeOid, bool IsKey);
