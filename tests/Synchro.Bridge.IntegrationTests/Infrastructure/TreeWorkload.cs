using System.Globalization;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// A seeded workload on a small tree and a second owner-ruled table, from concurrent connections:
/// lists (owned by a user, soft-deletable) ← cards (parent: their list), and notes (owned by a user).
/// Transactions mix tables in varying order, move lists between owners, move cards between lists,
/// soft-delete and restore lists, delete cards and whole lists (their cards go with them).
/// </summary>
/// <remarks>Client <c>c</c> only touches ids <c>c * 1,000,000 + n</c>; a statement that meets a row another statement of the same client removed rolls its transaction back.</remarks>
internal static class TreeWorkload
{
    public const string CreateTablesSql =
        """
        CREATE TABLE lists (id bigint PRIMARY KEY, user_id int, title text, deleted_at timestamptz);
        CREATE TABLE cards (id bigint PRIMARY KEY, list_id bigint NOT NULL REFERENCES lists ON DELETE CASCADE, body text);
        CREATE TABLE notes (id bigint PRIMARY KEY, user_id int, body text);
        """;

    /// <summary>Bridge settings for the three tables: lists and notes by user_id, cards by their list.</summary>
    public static void Configure(Dictionary<string, string?> settings, int firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings[$"Synchro:Tables:{firstIndex}:Name"] = "lists";
        settings[$"Synchro:Tables:{firstIndex}:OwnerColumn"] = "user_id";
        settings[$"Synchro:Tables:{firstIndex + 1}:Name"] = "cards";
        settings[$"Synchro:Tables:{firstIndex + 2}:Name"] = "notes";
        settings[$"Synchro:Tables:{firstIndex + 2}:OwnerColumn"] = "user_id";
    }

    /// <param name="pause">Between a client's transactions: an application's pace instead of full speed.</param>
    public static async Task RunAsync(string connectionString, int clients, int transactionsPerClient, int seed, CancellationToken ct, TimeSpan pause = default) =>
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => RunClientAsync(connectionString, c, transactionsPerClient, new Random(seed + c), pause, ct)));

    private static async Task RunClientAsync(string connectionString, int client, int transactions, Random random, TimeSpan pause, CancellationToken ct)
    {
        var baseId = client * 1_000_000L;
        var next = 1L;
        var lists = new List<long>();
        var cards = new List<long>();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        for (var t = 0; t < transactions; t++)
        {
            var statements = new List<string>();
            for (var s = random.Next(1, 4); s > 0; s--)
                statements.Add(Statement(random, baseId, ref next, lists, cards));
            try
            {
                await using var transaction = await connection.BeginTransactionAsync(ct);
                foreach (var sql in statements)
                {
                    await using var command = new NpgsqlCommand(sql, connection, transaction);
                    await command.ExecuteNonQueryAsync(ct);
                }

                await transaction.CommitAsync(ct);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
            {
                // A card for a list this client deleted: the transaction never happened.
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }

            if (pause > TimeSpan.Zero)
                await Task.Delay(pause, CancellationToken.None);
        }
    }

    private static string Statement(Random random, long baseId, ref long next, List<long> lists, List<long> cards)
    {
        string Pick(List<long> ids) => ids[random.Next(ids.Count)].ToString(CultureInfo.InvariantCulture);
        var user = random.Next(1, 6);
        var roll = lists.Count < 3 ? 0 : random.Next(100);
        switch (roll)
        {
            case < 15:
                var list = baseId + next++;
                lists.Add(list);
                return $"INSERT INTO lists VALUES ({list}, {user}, 'list', NULL)";
            case < 45:
                var card = baseId + next++;
                cards.Add(card);
                return $"INSERT INTO cards VALUES ({card}, {Pick(lists)}, 'card')";
            case < 55:
                return $"UPDATE lists SET user_id = {user} WHERE id = {Pick(lists)}";
            case < 65 when cards.Count > 0:
                return $"UPDATE cards SET list_id = {Pick(lists)} WHERE id = {Pick(cards)}";
            case < 70:
                return $"UPDATE lists SET deleted_at = now() WHERE id = {Pick(lists)}";
            case < 75:
                return $"UPDATE lists SET deleted_at = NULL, title = 'restored' WHERE id = {Pick(lists)}";
            case < 80 when cards.Count > 0:
                return $"DELETE FROM cards WHERE id = {Pick(cards)}";
            case < 83:
                var gone = Pick(lists);
                lists.Remove(long.Parse(gone, CultureInfo.InvariantCulture));
                return $"DELETE FROM lists WHERE id = {gone}";
            case < 90:
                return $"UPDATE cards SET body = 'edited' WHERE id IN ({(cards.Count > 0 ? Pick(cards) : "0")})";
            default:
                return $"INSERT INTO notes VALUES ({baseId + next++}, {user}, 'note')";
        }
    }
}
