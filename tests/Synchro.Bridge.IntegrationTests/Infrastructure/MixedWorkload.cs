using System.Globalization;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// A deterministic, seeded workload on <c>items</c> with everything the edge diff has to get right:
/// inserts with an owner or NULL, title edits, owner moves, key changes, soft deletes, undeletes,
/// hard deletes and rolled-back savepoints, from several concurrent connections.
/// </summary>
/// <remarks>
/// Client <c>c</c> only touches ids <c>c * 1,000,000 + n</c> (n ≥ 1), so clients never wait on each
/// other's rows and the statements of each client, and so the final table, are the same in every
/// run with the same seed. Ids from <see cref="ClientIdSpan"/> * clients upward are free for
/// <see cref="BigTransactionAsync"/>.
/// </remarks>
internal static class MixedWorkload
{
    public const string CreateTableSql = "CREATE TABLE items (id bigint PRIMARY KEY, owner_id int, title text, deleted_at timestamptz)";

    /// <summary>The ids of one client: c * ClientIdSpan + 1 .. (c + 1) * ClientIdSpan - 1.</summary>
    public const long ClientIdSpan = 1_000_000;

    /// <summary>At most this many new ids per transaction (three statements, each taking at most one).</summary>
    private const int MaxNewIdsPerTransaction = 3;

    private static long _committed;

    /// <summary>Transactions committed by every workload in this process so far; compare with a value read before starting.</summary>
    public static long Committed => Interlocked.Read(ref _committed);

    public static Task RunAsync(string connectionString, int clients, int transactionsPerClient, int seed, CancellationToken ct) =>
        RunAsync(connectionString, clients, transactionsPerClient, seed, afterEachTransaction: null, ct);

    /// <summary>
    /// Runs <paramref name="clients"/> connections concurrently, each committing
    /// <paramref name="transactionsPerClient"/> small transactions (1–3 statements) chosen by
    /// <c>new Random(seed + c)</c>.
    /// </summary>
    /// <param name="afterEachTransaction">Called with the client's index after each of its commits (say, to cut a proxy after some progress); its task is awaited.</param>
    public static async Task RunAsync(
        string connectionString, int clients, int transactionsPerClient, int seed, Func<int, Task>? afterEachTransaction, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clients);
        ArgumentOutOfRangeException.ThrowIfNegative(transactionsPerClient);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(transactionsPerClient, (int)((ClientIdSpan - 1) / MaxNewIdsPerTransaction));

        await Task.WhenAll(Enumerable.Range(0, clients)
            .Select(c => new Client(c, seed).RunAsync(connectionString, transactionsPerClient, afterEachTransaction, ct)));
    }

    /// <summary>Like <see cref="RunAsync(string, int, int, int, CancellationToken)"/> with clients numbered from <paramref name="firstClient"/>, so a second run's ids never meet the first one's.</summary>
    public static async Task RunLaterClientsAsync(string connectionString, int firstClient, int clients, int transactionsPerClient, int seed, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstClient);
        await Task.WhenAll(Enumerable.Range(firstClient, clients)
            .Select(c => new Client(c, seed).RunAsync(connectionString, transactionsPerClient, afterEachTransaction: null, ct)));
    }

    /// <summary>
    /// Inserts <paramref name="rows"/> rows (ids from <paramref name="firstId"/>, owner_id = id % 20 + 1)
    /// in ONE transaction with INSERT ... SELECT generate_series. Runs as long as it needs unless cancelled.
    /// </summary>
    public static async Task BigTransactionAsync(string connectionString, int rows, long firstId, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using var command = new NpgsqlCommand(
            "INSERT INTO items (id, owner_id, title) SELECT g, g % 20 + 1, 'big ' || g FROM generate_series($1::bigint, $2::bigint) g",
            connection,
            transaction)
        {
            // A million rows (with audit triggers) take longer than the default 30 s; the token bounds it.
            CommandTimeout = 0,
        };
        command.Parameters.Add(new NpgsqlParameter { Value = firstId });
        command.Parameters.Add(new NpgsqlParameter { Value = firstId + rows - 1 });
        await command.ExecuteNonQueryAsync(ct);
        await transaction.CommitAsync(ct);
        Interlocked.Increment(ref _committed);
    }

    /// <summary>One connection's share: its own ids, its own Random, its own picture of which rows are live.</summary>
    private sealed class Client(int index, int seed)
    {
        private readonly Random _random = new(seed + index);
        private readonly List<long> _live = [];
        private readonly HashSet<long> _softDeleted = [];
        private long _next;

        public async Task RunAsync(string connectionString, int transactions, Func<int, Task>? afterEachTransaction, CancellationToken ct)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(ct);
            for (var t = 0; t < transactions; t++)
            {
                ct.ThrowIfCancellationRequested();
                await using (var transaction = await connection.BeginTransactionAsync(ct))
                {
                    var statements = _random.Next(1, 4);
                    for (var s = 0; s < statements; s++)
                        await StatementAsync(connection, transaction, ct);
                    await transaction.CommitAsync(ct);
                }

                Interlocked.Increment(ref _committed);
                if (afterEachTransaction is not null)
                    await afterEachTransaction(index);
            }
        }

        /// <summary>One statement (or one rolled-back savepoint); the local picture follows only what will commit.</summary>
        private async Task StatementAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken ct)
        {
            if (_live.Count == 0)
            {
                await InsertAsync(connection, transaction, ct);
                return;
            }

            var roll = _random.Next(100);
            var id = _live[_random.Next(_live.Count)];
            switch (roll)
            {
                case < 30:
                    await InsertAsync(connection, transaction, ct);
                    break;
                case < 45:
                    await ExecuteAsync(connection, transaction, "UPDATE items SET title = $2 WHERE id = $1", [id, Title()], ct);
                    break;
                case < 60:
                    await ExecuteAsync(connection, transaction, "UPDATE items SET owner_id = $2 WHERE id = $1", [id, Owner()], ct);
                    break;
                case < 68:
                {
                    var newId = NewId();
                    await ExecuteAsync(connection, transaction, "UPDATE items SET id = $2 WHERE id = $1", [id, newId], ct);
                    _live[_live.IndexOf(id)] = newId;
                    if (_softDeleted.Remove(id))
                        _softDeleted.Add(newId);
                    break;
                }

                case < 76:
                    await ExecuteAsync(connection, transaction, "UPDATE items SET deleted_at = now() WHERE id = $1", [id], ct);
                    _softDeleted.Add(id);
                    break;
                case < 84:
                {
                    // Undelete a soft-deleted row when there is one (an undelete of a live row is a plain update).
                    var target = _softDeleted.Count > 0 ? _softDeleted.ElementAt(_random.Next(_softDeleted.Count)) : id;
                    await ExecuteAsync(connection, transaction, "UPDATE items SET deleted_at = NULL WHERE id = $1", [target], ct);
                    _softDeleted.Remove(target);
                    break;
                }

                case < 94:
                    await ExecuteAsync(connection, transaction, "DELETE FROM items WHERE id = $1", [id], ct);
                    _live.Remove(id);
                    _softDeleted.Remove(id);
                    break;
                default:
                    await RolledBackSavepointAsync(connection, transaction, id, ct);
                    break;
            }
        }

        private async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken ct)
        {
            var id = NewId();
            await ExecuteAsync(connection, transaction, "INSERT INTO items (id, owner_id, title) VALUES ($1, $2, $3)", [id, Owner(), Title()], ct);
            _live.Add(id);
        }

        /// <summary>Changes that never happened: an owner move, an insert and a delete inside a savepoint that is rolled back.</summary>
        private async Task RolledBackSavepointAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, long id, CancellationToken ct)
        {
            await transaction.SaveAsync("undone", ct);
            await ExecuteAsync(connection, transaction, "UPDATE items SET owner_id = $2, title = 'rolled back' WHERE id = $1", [id, Owner()], ct);
            await ExecuteAsync(connection, transaction, "INSERT INTO items (id, owner_id, title) VALUES ($1, $2, 'rolled back')", [NewId(), Owner()], ct);
            await ExecuteAsync(connection, transaction, "DELETE FROM items WHERE id = $1", [id], ct);
            await transaction.RollbackAsync("undone", ct);
        }

        /// <summary>A fresh id of this client's range; ids are never reused, even when their insert was rolled back.</summary>
        private long NewId() => index * ClientIdSpan + ++_next;

        /// <summary>An owner 1..20, or NULL one time in 21.</summary>
        private object Owner() => _random.Next(21) is var owner and > 0 ? owner : DBNull.Value;

        private string Title() => "t" + _random.Next(1_000_000).ToString(CultureInfo.InvariantCulture);

        private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, object[] values, CancellationToken ct)
        {
            await using var command = new NpgsqlCommand(sql, connection, transaction);
            foreach (var value in values)
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            await command.ExecuteNonQueryAsync(ct);
        }
    }
}
