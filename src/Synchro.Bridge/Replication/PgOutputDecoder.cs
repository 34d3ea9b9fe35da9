using System.Text.Json;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using Synchro.Contracts;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Maps pgoutput messages to our own events at once. Npgsql reuses message objects and streams
/// column values from the network buffer, so every value is copied here, each column read once and
/// in order.
/// </summary>
internal sealed class PgOutputDecoder
{
    private readonly Dictionary<uint, RelationSchema> _relations = [];

    /// <summary>Decodes one message; returns null for messages that carry nothing downstream needs.</summary>
    public async ValueTask<DecodedEvent?> DecodeAsync(PgOutputReplicationMessage message, CancellationToken cancellationToken)
    {
        switch (message)
        {
            case BeginMessage begin:
                return new TransactionBegun(begin.TransactionXid, (ulong)begin.TransactionFinalLsn, ToOffset(begin.TransactionCommitTimestamp));

            case CommitMessage commit:
                return new TransactionCommitted((ulong)commit.CommitLsn, (ulong)commit.TransactionEndLsn);

            case RelationMessage relation:
                Remember(relation);
                return null;

            case InsertMessage insert:
            {
                var schema = SchemaOf(insert.Relation.RelationId);
                var newRow = await ReadRowAsync(schema, insert.NewRow, cancellationToken);
                return new RowChanged(schema.Table, ChangeOperation.Insert, RecordIdOf(schema, newRow), newRow, null, null);
            }

            case UpdateMessage update:
            {
                var schema = SchemaOf(update.Relation.RelationId);
                // The old tuple precedes the new one on the wire: read it first.
                ColumnValue[]? oldRow = update switch
                {
                    IndexUpdateMessage index => await ReadRowAsync(schema, index.Key, cancellationToken),
                    FullUpdateMessage full => await ReadRowAsync(schema, full.OldRow, cancellationToken),
                    _ => null,
                };
                var newRow = await ReadRowAsync(schema, update.NewRow, cancellationToken);
                var recordId = RecordIdOf(schema, newRow);
                var oldRecordId = oldRow is null ? null : RecordIdOf(schema, oldRow);
                return new RowChanged(schema.Table, ChangeOperation.Update, recordId, newRow, oldRow,
                    oldRecordId == recordId ? null : oldRecordId);
            }

            case KeyDeleteMessage keyDelete:
            {
                var schema = SchemaOf(keyDelete.Relation.RelationId);
                var key = await ReadRowAsync(schema, keyDelete.Key, cancellationToken);
                return new RowChanged(schema.Table, ChangeOperation.Delete, RecordIdOf(schema, key), null, key, null);
            }

            case FullDeleteMessage fullDelete:
            {
                var schema = SchemaOf(fullDelete.Relation.RelationId);
                var oldRow = await ReadRowAsync(schema, fullDelete.OldRow, cancellationToken);
                return new RowChanged(schema.Table, ChangeOperation.Delete, RecordIdOf(schema, oldRow), null, oldRow, null);
            }

            case TypeMessage or OriginMessage:
                return null;

            default:
                throw new UndecodableMessageException(
                    $"Replication message {message.GetType().Name} at LSN {message.WalStart} is not supported by this version of the bridge. Nothing past it was acknowledged; upgrade the bridge or remove the feature that produced it.");
        }
    }

    private void Remember(RelationMessage relation)
    {
        var columns = new RelationColumn[relation.Columns.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            var column = relation.Columns[i];
            columns[i] = new RelationColumn(column.ColumnName, column.DataTypeId,
                column.Flags.HasFlag(RelationMessage.Column.ColumnFlags.PartOfKey));
        }

        var schema = new RelationSchema(relation.RelationId, new TableName(relation.Namespace, relation.RelationName), columns);
        if (!schema.HasKey)
            throw new TableWithoutKeyException(schema.Table.ToString());
        _relations[relation.RelationId] = schema;
    }

    private RelationSchema SchemaOf(uint relationId) =>
        _relations.TryGetValue(relationId, out var schema)
            ? schema
            : throw new UndecodableMessageException($"A row change refers to relation {relationId}, which the stream never described. Nothing past it was acknowledged; this is a protocol error, restart the bridge.");

    private static async ValueTask<ColumnValue[]> ReadRowAsync(RelationSchema schema, ReplicationTuple tuple, CancellationToken cancellationToken)
    {
        var values = new ColumnValue[schema.Columns.Length];
        var i = 0;
        await foreach (var value in tuple.WithCancellation(cancellationToken))
        {
            var column = schema.Columns[i];
            var typeName = value.GetDataTypeName();
            values[i] = value.Kind switch
            {
                TupleDataKind.Null => ColumnValue.Null(column.Name, typeName),
                TupleDataKind.UnchangedToastedValue => new ColumnValue(column.Name, typeName, ColumnValueKind.UnchangedToast, null),
                TupleDataKind.TextValue => ColumnValue.Of(column.Name, typeName, await value.Get<string>(cancellationToken)),
                _ => throw new UndecodableMessageException(
                    $"Column {schema.Table}.{column.Name} arrived as {value.Kind}; the bridge reads the text format only. Nothing past it was acknowledged."),
            };
            i++;
        }

        return values;
    }

    /// <summary>
    /// The canonical record id: the key's text for a one-column key; for a composite key, a JSON array
    /// of the key columns' texts in column order.
    /// </summary>
    internal static string RecordIdOf(RelationSchema schema, ColumnValue[] row)
    {
        string? single = null;
        List<string>? composite = null;
        for (var i = 0; i < schema.Columns.Length; i++)
        {
            if (!schema.Columns[i].IsKey)
                continue;
            var value = row[i];
            if (value.Kind != ColumnValueKind.Text)
                throw new UndecodableMessageException(
                    $"Key column {schema.Table}.{value.Name} arrived as {value.Kind}, so the row has no identity. Nothing past it was acknowledged.");
            if (single is null && composite is null)
                single = value.Text!;
            else
            {
                composite ??= [single!];
                composite.Add(value.Text!);
            }
        }

        return composite is null ? single! : JsonSerializer.Serialize(composite);
    }

    private static DateTimeOffset ToOffset(DateTime timestamp) => new(DateTime.SpecifyKind(timestamp, DateTimeKind.Utc));
}
