using System.Globalization;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// Existing rows in <see cref="TreeWorkload"/>'s tables, and writers that change them while a
/// snapshot reads them: owners changed, lists soft-deleted and restored, cards edited, moved between
/// lists, deleted and inserted. One row per statement, so concurrent writers never deadlock.
/// </summary>
internal static class ExistingRowsWorkload
{
    public const int CardsPerList = 9;

    /// <summary>Lists 1..<paramref name="lists"/> (every tenth without owner), each with <see cref="CardsPerList"/> cards.</summary>
    public static string LoadSql(int lists) =>
        $"""
        INSERT INTO lists SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 50 + 1 END, 'list ' || g, NULL FROM generate_series(1, {lists}) g;
        INSERT INTO cards SELECT g, (g - 1) / {CardsPerList} + 1, 'card ' || g FROM generate_series(1, {lists * CardsPerList}) g;
        """;

    /// <summary>Runs <paramref name="clients"/> writers until <paramref name="stop"/> is cancelled; returns the transactions committed.</summary>
    public static Task<long> RunAsync(string connectionString, int lists, int clients, int seed, CancellationToken stop)
    {
        var cards = lists * CardsPerList;
        return PacedWriters.RunAsync(connectionString, clients, seed, (client, random) =>
        {
            var next = 10_000_000L + client * 1_000_000L;
            return () =>
            {
                string Id(int max) => random.Next(1, max + 1).ToString(CultureInfo.InvariantCulture);
                var owner = random.Next(10) == 0 ? "NULL" : random.Next(1, 51).ToString(CultureInfo.InvariantCulture);
                return random.Next(100) switch
                {
                    < 25 => $"UPDATE lists SET user_id = {owner} WHERE id = {Id(lists)}",
                    < 33 => $"UPDATE lists SET deleted_at = now() WHERE id = {Id(lists)}",
                    < 43 => $"UPDATE lists SET deleted_at = NULL, title = 'restored' WHERE id = {Id(lists)}",
                    < 63 => $"UPDATE cards SET body = 'edited' WHERE id = {Id(cards)}",
                    < 75 => $"UPDATE cards SET list_id = {Id(lists)} WHERE id = {Id(cards)}",
                    < 85 => $"DELETE FROM cards WHERE id = {Id(cards)}",
                    _ => $"INSERT INTO cards VALUES ({next++}, {Id(lists)}, 'new')",
                };
            };
        }, stop);
    }
}

/// <summary>
/// Writers at an application's pace (about 100 single-statement transactions/s each), not a
/// benchmark's: a bridge must keep up with them while it reads existing rows.
/// </summary>
internal static class PacedWriters
{
    /// <param name="statements">Per client (its number and its seeded random), the source of its next statement.</param>
    /// <returns>The transactions committed.</returns>
    public static async Task<long> RunAsync(string connectionString, int clients, int seed, Func<int, Random, Func<string>> statements, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(statements);
        var counts = await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            var next = statements(client, new Random(seed + client));
            long committed = 0;
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            while (!stop.IsCancellationRequested)
            {
                await using var command = new NpgsqlCommand(next(), connection);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
                committed++;
                await Task.Delay(10, CancellationToken.None);
            }

            return committed;
        }));
        return counts.Sum();
    }
}
