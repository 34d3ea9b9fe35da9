using System.Globalization;
using MassTransit;
using Microsoft.Extensions.Logging;
using Npgsql;
using Synchro.Contracts;
using Synchro.Subscriptions;

namespace Synchro.Samples.TodoReadModel;

/// <summary>
/// Applies <c>public.todos</c> change sets to <c>todo_read_model</c>. Soft-deleted rows stay, with
/// their <c>deleted_at</c>: the read model mirrors the table, it does not interpret it.
/// </summary>
internal sealed class TodoChangesConsumer(NpgsqlDataSource database, ILogger<TodoChangesConsumer> logger) : IConsumer<ChangeSet>
{
    public async Task Consume(ConsumeContext<ChangeSet> context)
    {
        var set = context.Message;
        var cancellationToken = context.CancellationToken;
        await using var transaction = await TodoTransaction.BeginAsync(database, cancellationToken);
        var key = set.CheckpointKey();
        // The bridge delivers at least once: after its restart, sets (or their first changes) come again;
        // after a restore or a promotion the source's generation tells which positions still count.
        var generation = ChangeGeneration.Of(context);
        var changes = set.ChangesAfter(generation, await transaction.CheckpointAsync(key, cancellationToken)).ToList();
        if (changes.Count == 0)
            return; // all applied already; storing this older position would move the checkpoint back

        foreach (var change in changes)
            await ApplyAsync(transaction, change, cancellationToken);
        await transaction.SaveCheckpointAsync(key, set.LastCheckpoint(generation), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        Log.Applied(logger, changes.Count, set.Changes.Count, key, set.LastPosition());
    }

    private static async Task ApplyAsync(TodoTransaction transaction, Change change, CancellationToken cancellationToken)
    {
        switch (change.Operation)
        {
            case ChangeOperation.Insert or ChangeOperation.Read:
                await transaction.UpsertAsync(change.NewRow!.As<Todo>(), cancellationToken);
                break;
            case ChangeOperation.Update:
                // A key change (OldRecordId) moves the record. Values PostgreSQL did not send (unchanged
                // TOAST) are the ones held under its old identity, so that record is read only when needed.
                var previous = change.NewRow!.IsComplete ? null : await transaction.FindAsync(IdOf(change.OldRecordId ?? change.RecordId!), cancellationToken);
                if (change.OldRecordId is not null)
                    await transaction.DeleteAsync(IdOf(change.OldRecordId), cancellationToken);
                await transaction.UpsertAsync(change.NewRow.As(previous), cancellationToken);
                break;
            case ChangeOperation.Delete:
                await transaction.DeleteAsync(IdOf(change.RecordId!), cancellationToken);
                break;
            case ChangeOperation.Truncate:
                await transaction.DeleteAllAsync(cancellationToken);
                break;
        }
    }

    // todos has a one-column key, so a record id is that key's text.
    private static long IdOf(string recordId) => long.Parse(recordId, CultureInfo.InvariantCulture);
}
