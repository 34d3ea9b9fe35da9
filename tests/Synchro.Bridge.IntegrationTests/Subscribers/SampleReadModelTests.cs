using Microsoft.Extensions.Hosting;
using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;
using Synchro.Samples.TodoReadModel;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>The sample service (samples/Synchro.Samples.TodoReadModel): another service on the bus, with its own database.</summary>
public sealed class SampleReadModelTests
{
    /// <summary>Every row of the table as its text, all columns, by id.</summary>
    private static string RowsOf(string table) => $"SELECT t::text FROM (SELECT id, user_id, title, done, deleted_at, updated_at FROM {table}) t ORDER BY t.id";

    [Fact]
    public async Task the_sample_read_model_matches_the_todos_table_after_a_workload_with_replays()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            """
            CREATE TABLE todos (
                id bigserial PRIMARY KEY, user_id bigint, title text NOT NULL, done boolean NOT NULL DEFAULT false,
                deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now());
            -- Long titles are stored out of line, uncompressed: updates that leave them send them as unchanged TOAST.
            ALTER TABLE todos ALTER COLUMN title SET STORAGE EXTERNAL;
            """);
        await using var readModel = await SampleService.StartAsync(env);
        // A second queue on the same tables counts deliveries, to show the replays happened.
        await using var deliveries = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.todos", "public.todos");

        // The first bridge stops before any change set is confirmed (its bucket role does not run; the
        // bucket queue is declared so its batches are routable): the next bridge replays all it published.
        var bucketsOnly = env.BridgeSettings(("todos", "user_id"));
        bucketsOnly["Synchro:Roles"] = "Buckets";
        using (var declare = TestEnvironment.BuildBridge(bucketsOnly))
        {
            await declare.StartAsync();
            await declare.StopAsync();
        }

        var replicationOnly = env.BridgeSettings(("todos", "user_id"));
        replicationOnly["Synchro:Roles"] = "Replication";
        var first = await env.StartBridgeAsync(replicationOnly);
        await env.ExecuteAsync("INSERT INTO todos (user_id, title) SELECT nullif(g % 3, 0), 'todo ' || g FROM generate_series(1, 30) g");
        await env.ExecuteAsync("INSERT INTO todos (id, user_id, title) VALUES (50, 1, repeat('long ', 600))");
        await env.ExecuteAsync("UPDATE todos SET title = title || '!', done = true, updated_at = now() WHERE id % 4 = 0");
        await env.ExecuteAsync("UPDATE todos SET done = true WHERE id = 50"); // the long title is not sent
        await env.ExecuteAsync("UPDATE todos SET id = 100 WHERE id = 5");
        await env.ExecuteAsync("UPDATE todos SET deleted_at = now() WHERE id IN (6, 7)");
        await env.ExecuteAsync("DELETE FROM todos WHERE id IN (8, 9)");
        await Eventually.Until(() => MatchesAsync(env, readModel), "the read model to apply the first part", TimeSpan.FromSeconds(30));
        var firstPart = (await Eventually.Until(() => Task.FromResult(deliveries.Changes), c => c.Count == 44, "the first part's 44 changes")).Select(c => c.Position).ToList();
        await first.StopAsync();

        // Written while no bridge runs; the second bridge sends them after its replays.
        await env.ExecuteAsync("UPDATE todos SET id = 150, user_id = 2 WHERE id = 50");
        await env.ExecuteAsync("UPDATE todos SET deleted_at = NULL WHERE id = 6");
        await env.ExecuteAsync("DELETE FROM todos WHERE id = 11");
        await env.ExecuteAsync("TRUNCATE todos");
        await env.ExecuteAsync("INSERT INTO todos (id, user_id, title) VALUES (1, 7, 'after the truncate'), (200, NULL, repeat('long ', 600))");
        await env.ExecuteAsync("UPDATE todos SET id = 201, deleted_at = now() WHERE id = 200");
        await env.ExecuteAsync("UPDATE todos SET done = true, updated_at = now() WHERE id = 1");
        await env.StartBridgeAsync(("todos", "user_id"));

        var all = await Eventually.Until(() => Task.FromResult(deliveries.Changes), c => c.Count == 2 * 44 + 8, "the replayed first part and the second part's 8 changes");
        Assert.Equal(firstPart, all.GroupBy(c => c.Position).Where(g => g.Count() == 2).Select(g => g.Key));
        await Eventually.Until(() => MatchesAsync(env, readModel), "the read model to apply the second part", TimeSpan.FromSeconds(30));
        Assert.Equal(await env.RowsAsync(RowsOf("todos")), await readModel.RowsAsync(RowsOf("todo_read_model")));
        Assert.Equal([$"{env.Source}.public.todos|{all[^1].Position}"], await readModel.RowsAsync("SELECT key || '|' || commit_lsn || '#' || change_index FROM read_model_checkpoints"));
    }

    private static async Task<bool> MatchesAsync(TestEnvironment env, SampleService readModel) =>
        (await env.RowsAsync(RowsOf("todos"))).SequenceEqual(await readModel.RowsAsync(RowsOf("todo_read_model")));

    /// <summary>The sample service, in this process, on its own database next to the test's.</summary>
    private sealed class SampleService : IAsyncDisposable
    {
        private readonly string _database;
        private readonly NpgsqlDataSource _dataSource;
        private readonly IHost _host;

        private SampleService(string database, IHost host)
        {
            _database = database;
            _dataSource = NpgsqlDataSource.Create(ConnectionString(database));
            _host = host;
        }

        public static async Task<SampleService> StartAsync(TestEnvironment env)
        {
            var database = env.Name + "_rm";
            await AdminAsync($"DROP DATABASE IF EXISTS {database} WITH (FORCE)");
            await AdminAsync($"CREATE DATABASE {database}");
            var service = new SampleService(database, TodoReadModelHost.Build([], new Dictionary<string, string?>
            {
                ["ReadModel:Postgres"] = ConnectionString(database),
                ["ReadModel:RabbitMq"] = env.AmqpUri.ToString(),
                ["ReadModel:Source"] = env.Source,
                ["ReadModel:Queue"] = "test.todo-read-model",
            }));
            await service._host.StartAsync();
            return service;
        }

        public async Task<List<string>> RowsAsync(string sql)
        {
            await using var command = _dataSource.CreateCommand(sql);
            await using var reader = await command.ExecuteReaderAsync();
            var rows = new List<string>();
            while (await reader.ReadAsync())
                rows.Add(reader.GetString(0));
            return rows;
        }

        public async ValueTask DisposeAsync()
        {
            await _host.StopAsync();
            _host.Dispose();
            await _dataSource.DisposeAsync();
            await AdminAsync($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)");
        }

        private static string ConnectionString(string database) => new NpgsqlConnectionStringBuilder(TestServers.Postgres) { Database = database }.ConnectionString;

        private static async Task AdminAsync(string sql)
        {
            await using var admin = NpgsqlDataSource.Create(TestServers.Postgres);
            await using var command = admin.CreateCommand(sql);
            await command.ExecuteNonQueryAsync();
        }
    }
}
