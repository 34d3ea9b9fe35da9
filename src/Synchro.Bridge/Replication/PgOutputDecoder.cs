using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Maps pgoutput messages to our own events at once. Npgsql reuses message objects and streams
/// column values from the network buffer, so every value is copied here, each column read once and
/// in order.
/// </summary>
internal sealed class PgOutputDecoder(RelationCatalog catalog)
{
    private readonly Dictionary<uint, RelationSchema> _relations = [];
    private uint _transactionId;

    /// <summary>Decodes one message; returns null for messages that carry nothing downstream needs.</summary>
    public async ValueTask<DecodedEvent?> DecodeAsync(PgOutputReplicationMessage message, CancellationToken cancellationToken)
    {
        switch (message)
        {
            case BeginMessage begin:
                _transactionId = begin.TransactionXid;
                return new TransactionBegun(begin.TransactionXid, (ulong)begin.TransactionFinalLsn, ToOffset(begin.TransactionCommitTimestamp));

            case CommitMessage commit:
                return new TransactionCommitted((ulong)commit.CommitLsn, (ulong)commit.TransactionEndLsn);

            case RelationMessage relation:
                await RememberAsync(relation, cancellationToken);
                return null;

            case OriginMessage origin:
                return new OriginSet(origin.OriginName);

            case TruncateMessage truncate:
                return new TablesTruncated(truncate.Relations.Select(r => SchemaOf(r.RelationId)).ToArray());

            case LogicalDecodingMessage logical:
            {
                using var content = new MemoryStream();
                await logical.Data.CopyToAsync(content, cancellationToken);
                // Flags bit 0 is "transactional" in the protocol.
                return new MessageEmitted(logical.Prefix, content.ToArray(), (logical.Flags & 1) == 1, (ulong)logical.MessageLsn);
            }

            case InsertMessage insert:
            {
                var schema = SchemaOf(insert.Relation.RelationId);
                var newRow = await ReadRowAsync(schema, insert.NewRow, cancellationToken);
                return new RowChanged(schema, ChangeOperation.Insert, RecordIdOf(schema, newRow), newRow, null, null);
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
                if (oldRow is not null)
                    CompleteFromOldRow(schema, newRow, oldRow, keyOnly: update is IndexUpdateMessage);
                var recordId = RecordIdOf(schema, newRow);
                var oldRecordId = oldRow is null ? null : RecordIdOf(schema, oldRow);
                if (oldRecordId is not null && oldRecordId != recordId)
                    await catalog.CompleteFromCurrentRowAsync(schema, newRow, _transactionId, cancellationToken); // the new identity's insert must be complete
                return new RowChanged(schema, ChangeOperation.Update, recordId, newRow, oldRow,
                    oldRecordId == recordId ? null : oldRecordId) { OldRowIsKey = update is IndexUpdateMessage };
            }

            case KeyDeleteMessage keyDelete:
            {
                var schema = SchemaOf(keyDelete.Relation.RelationId);
                var key = await ReadRowAsync(schema, keyDelete.Key, cancellationToken);
                return new RowChanged(schema, ChangeOperation.Delete, RecordIdOf(schema, key), null, key, null) { OldRowIsKey = true };
            }

            case FullDeleteMessage fullDelete:
            {
                var schema = SchemaOf(fullDelete.Relation.RelationId);
                var oldRow = await ReadRowAsync(schema, fullDelete.OldRow, cancellationToken);
                return new RowChanged(schema, ChangeOperation.Delete, RecordIdOf(schema, oldRow), null, oldRow, null);
            }

            case TypeMessage:
                // Type names come from the catalog (RelationCatalog), which also covers built-in types.
                return null;

            default:
                throw new UndecodableMessageException(
                    $"Replication message {message.GetType().Name} at LSN {message.WalStart} is not supported by this version of the bridge. Nothing past it was acknowledged; upgrade the bridge or remove the feature that produced it.");
        }
    }

    /// <summary>
    /// A Relation message comes before the first change of a table and again after its shape changed
    /// (a column added, dropped, renamed or retyped); later changes are read with the new shape.
    /// </summary>
    private async ValueTask RememberAsync(RelationMessage relation, CancellationToken cancellationToken)
    {
        var table = new TableName(relation.Namespace, relation.RelationName);
        var types = await catalog.TypeNamesAsync(relation.Columns.Select(c => (c.DataTypeId, c.TypeModifier)).ToArray(), cancellationToken);

        // With REPLICA IDENTITY FULL every column is flagged as key; the primary key identifies the row.
        var fullIdentity = relation.ReplicaIdentity == RelationMessage.ReplicaIdentitySetting.AllColumns;
        var primaryKey = fullIdentity ? await catalog.PrimaryKeyAsync(relation.RelationId, cancellationToken) : null;

        var columns = new RelationColumn[relation.Columns.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            var column = relation.Columns[i];
            var isKey = primaryKey?.Contains(column.ColumnName) ?? column.Flags.HasFlag(RelationMessage.Column.ColumnFlags.PartOfKey);
            columns[i] = new RelationColumn(column.ColumnName, types[i], isKey);
        }

        var schema = new RelationSchema(relation.RelationId, table, columns);
        if (schema.KeyColumns.Length == 0)
            throw new TableWithoutKeyException(table.ToString());
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
            var typeName = column.TypeName;
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
    /// An unchanged TOAST value is the old value: when the old tuple carries it (a key stored out of
    /// line is always sent in the old key; REPLICA IDENTITY FULL sends every column), the new row
    /// takes it, so the row is complete and has its identity. An old key tuple's other columns are
    /// placeholders (NULL), never values.
    /// </summary>
    private static void CompleteFromOldRow(RelationSchema schema, ColumnValue[] newRow, ColumnValue[] oldRow, bool keyOnly)
    {
        for (var i = 0; i < newRow.Length && i < oldRow.Length; i++)
        {
            if (keyOnly && !schema.Columns[i].IsKey)
                continue;
            if (newRow[i].Kind == ColumnValueKind.UnchangedToast && oldRow[i].Kind != ColumnValueKind.UnchangedToast)
                newRow[i] = oldRow[i];
        }
    }

    /// <summary>The record id from the row's key columns (see <see cref="RecordIds"/>).</summary>
    internal static string RecordIdOf(RelationSchema schema, ColumnValue[] row)
    {
        var keyTexts = new List<string>(schema.KeyColumns.Length);
        for (var i = 0; i < schema.Columns.Length; i++)
        {
            if (!schema.Columns[i].IsKey)
                continue;
            var value = row[i];
            if (value.Kind != ColumnValueKind.Text)
                throw new UndecodableMessageException(
                    $"Key column {schema.Table}.{value.Name} arrived as {value.Kind}, so the row has no identity. Nothing past it was acknowledged.");
            keyTexts.Add(value.Text!);
        }

        return RecordIds.From(keyTexts);
    }

    private static DateTimeOffset ToOffset(DateTime timestamp) => new(DateTime.SpecifyKind(timestamp, DateTimeKind.Utc));
}
