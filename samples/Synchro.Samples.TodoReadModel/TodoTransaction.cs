using Npgsql;
using NpgsqlTypes;
using Synchro.Contracts;
using Synchro.Subscriptions;

namespace Synchro.Samples.TodoReadModel;

/// <summary>
/// One change set's writes to the read model and its checkpoint, in one database transaction: a set
/// is applied entirely or not at all, so a redelivered set finds the checkpoint where it left it.
/// </summary>
internal sealed class TodoTransaction : IAsyncDisposable
{
    private const string Columns = "id, user_id, title, done, deleted_at, updated_at";

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;

    private TodoTransaction(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        _connection = connection;
        _transaction = transaction;
    }

    /// <summary>Creates the read model's tables when missing; <paramref name="reset"/> empties them.</summary>
    public static async Task CreateTablesAsync(NpgsqlDataSource database, bool reset, CancellationToken cancellationToken)
    {
        await using var command = database.CreateCommand(
            """
            CREATE TABLE IF NOT EXISTS todo_read_model (
                id bigint PRIMARY KEY, user_id bigint, title text NOT NULL, done boolean NOT NULL,
                deleted_at timestamptz, updated_at timestamptz NOT NULL);
            -- Per source table (source.schema.table): the position of the last change applied.
            CREATE TABLE IF NOT EXISTS read_model_checkpoints (key text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, change_index integer NOT NULL);
            -- Positions compare only within one generation of the source (a restore or a promotion starts a new one).
            ALTER TABLE read_model_checkpoints ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;
            """ + (reset ? "TRUNCATE todo_read_model, read_model_checkpoints;" : ""));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static async Task<TodoTransaction> BeginAsync(NpgsqlDataSource database, CancellationToken cancellationToken)
    {
        var connection = await database.OpenConnectionAsync(cancellationToken);
        try
        {
            return new TodoTransaction(connection, await connection.BeginTransactionAsync(cancellationToken));
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The generation and position of the last change applied from <paramref name="key"/>; null before the first.</summary>
    public async Task<Checkpoint?> CheckpointAsync(string key, CancellationToken cancellationToken)
    {
        await using var command = Command("SELECT generation, commit_lsn, change_index FROM read_model_checkpoints WHERE key = $1", [key]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new Checkpoint(reader.GetInt64(0), new ChangePosition(new Lsn((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1)), reader.GetInt32(2)))
            : null;
    }

    public Task SaveCheckpointAsync(string key, Checkpoint checkpoint, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            INSERT INTO read_model_checkpoints (key, generation, commit_lsn, change_index) VALUES ($1, $2, $3, $4)
            ON CONFLICT (key) DO UPDATE SET generation = excluded.generation, commit_lsn = excluded.commit_lsn, change_index = excluded.change_index
            """,
            [key, checkpoint.Generation, new NpgsqlParameter { Value = new NpgsqlLogSequenceNumber(checkpoint.Position.CommitLsn.Value), NpgsqlDbType = NpgsqlDbType.PgLsn }, checkpoint.Position.ChangeIndex], cancellationToken);

    public async Task<Todo?> FindAsync(long id, CancellationToken cancellationToken)
    {
        await using var command = Command($"SELECT {Columns} FROM todo_read_model WHERE id = $1", [id]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
            return null;
        return new Todo(
            reader.GetInt64(0),
            reader.IsDBNull(1) ? null : reader.GetInt64(1),
            reader.GetString(2),
            reader.GetBoolean(3),
            reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
            reader.GetFieldValue<DateTimeOffset>(5));
    }

    // Npgsql writes timestamptz from UTC values only; the change's text carries the server's offset.
    public Task UpsertAsync(Todo todo, CancellationToken cancellationToken) =>
        ExecuteAsync(
            $"""
            INSERT INTO todo_read_model ({Columns}) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, title = excluded.title, done = excluded.done,
                deleted_at = excluded.deleted_at, updated_at = excluded.updated_at
            """,
            [todo.Id, todo.UserId, todo.Title, todo.Done, todo.DeletedAt?.ToUniversalTime(), todo.UpdatedAt.ToUniversalTime()], cancellationToken);

    public Task DeleteAsync(long id, CancellationToken cancellationToken) =>
        ExecuteAsync("DELETE FROM todo_read_model WHERE id = $1", [id], cancellationToken);

    public Task DeleteAllAsync(CancellationToken cancellationToken) =>
        ExecuteAsync("DELETE FROM todo_read_model", [], cancellationToken);

    public Task CommitAsync(CancellationToken cancellationToken) => _transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _transaction.DisposeAsync(); // rolls back unless committed
        await _connection.DisposeAsync();
    }

    private async Task ExecuteAsync(string sql, object?[] values, CancellationToken cancellationToken)
    {
        await using var command = Command(sql, values);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private NpgsqlCommand Command(string sql, object?[] values)
    {
        var command = new NpgsqlCommand(sql, _connection, _transaction);
        foreach (var value in values)
            command.Parameters.Add(value as NpgsqlParameter ?? new NpgsqlParameter { Value = value ?? DBNull.Value });
        return command;
    }
}
