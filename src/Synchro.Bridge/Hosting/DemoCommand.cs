using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// <c>synchro-bridge demo</c>: a throw-away database with a small schema, the bridge running on it,
/// a workload of inserts, owner moves, soft deletes and deletes, progress each second, then the
/// changelog per bucket and a check that the edges match the source rows.
/// </summary>
internal static class DemoCommand
{
    private const string Database = "synchro_demo";

    public static Command Build()
    {
        var postgres = new Option<string>("--postgres")
        {
            Description = "Connection string of a PostgreSQL server with wal_level=logical, as a role that may create databases (default: $SYNCHRO_TEST_PG).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SYNCHRO_TEST_PG") ?? "",
        };
        var rabbitMq = new Option<string>("--rabbitmq")
        {
            Description = "AMQP URI of RabbitMQ (default: $SYNCHRO_TEST_AMQP; empty runs the bus in memory).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SYNCHRO_TEST_AMQP") ?? "",
        };
        var seconds = new Option<int>("--seconds") { Description = "How long the workload runs.", DefaultValueFactory = _ => 10 };

        var demo = new Command("demo", "Create a demo database, run the bridge, drive a workload and show the changes flowing.") { postgres, rabbitMq, seconds };
        demo.SetAction((parse, ct) => RunAsync(parse.GetValue(postgres)!, parse.GetValue(rabbitMq)!, parse.GetValue(seconds), ct));
        return demo;
    }

    private static async Task<int> RunAsync(string adminConnectionString, string amqp, int seconds, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(adminConnectionString))
        {
            await Console.Error.WriteLineAsync("synchro-bridge demo: no PostgreSQL given. Pass --postgres, or run scripts/demo.sh, which starts the servers.");
            return 2;
        }

        var connectionString = new NpgsqlConnectionStringBuilder(adminConnectionString) { Database = Database }.ConnectionString;
        await CreateDatabaseAsync(adminConnectionString, connectionString, cancellationToken);
        Say($"created database {Database} with tables todos (bucketed by user_id) and announcements (global)");

        using var host = BridgeHost.Build(overrides: new Dictionary<string, string?>
        {
            ["Synchro:Postgres:ConnectionString"] = connectionString,
            ["Synchro:RabbitMq:Uri"] = amqp,
            ["Synchro:Replication:SlotName"] = Database,
            ["Synchro:Replication:PublicationName"] = Database,
            ["Synchro:Tables:0:Name"] = "public.todos",
            ["Synchro:Tables:0:OwnerColumn"] = "user_id",
            ["Synchro:Tables:1:Name"] = "public.announcements",
            // The demo prints its own progress; without HTTP it cannot collide with a bridge serving the default port.
            ["Synchro:Http:Urls"] = "",
        }, minimumLevel: LogLevel.Warning);
        var running = CommandLine.RunHostAsync(host, Console.Error, cancellationToken);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        if (!await WaitForSlotAsync(dataSource, running, cancellationToken))
            return await running; // the bridge stopped at start-up and has said why
        Say(string.IsNullOrEmpty(amqp) ? "bridge running on the in-memory bus" : $"bridge running, publishing to {new Uri(amqp).Host}:{new Uri(amqp).Port}");

        var stopwatch = Stopwatch.StartNew();
        var workload = new DemoWorkload(dataSource);
        using (var progress = new PeriodicTimer(TimeSpan.FromSeconds(1)))
        {
            var load = workload.RunAsync(TimeSpan.FromSeconds(seconds), cancellationToken);
            while (!load.IsCompleted && await progress.WaitForNextTickAsync(cancellationToken))
                await ReportAsync(dataSource, workload, stopwatch.Elapsed, cancellationToken);
            await load;
        }

        var written = await ScalarAsync<string>(dataSource, "SELECT pg_current_wal_insert_lsn()::text", cancellationToken);
        Say($"workload done: {workload.Transactions:N0} transactions, {workload.Changes:N0} row changes; waiting for the slot to confirm {written}");
        while (Lsn.Parse(await ScalarAsync<string>(dataSource, $"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{Database}'", cancellationToken)) < Lsn.Parse(written))
        {
            if (running.IsCompleted)
                return await running;
            await ReportAsync(dataSource, workload, stopwatch.Elapsed, cancellationToken);
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }

        var elapsed = stopwatch.Elapsed;
        await ReportAsync(dataSource, workload, elapsed, cancellationToken);
        await PrintSummaryAsync(dataSource, workload, elapsed, cancellationToken);
        var consistent = await CheckEdgesAsync(dataSource, cancellationToken);

        await host.StopAsync(cancellationToken);
        await running;
        return consistent ? 0 : 1;
    }

    private static async Task CreateDatabaseAsync(string admin, string connectionString, CancellationToken cancellationToken)
    {
        await using (var server = NpgsqlDataSource.Create(admin))
        {
            foreach (var sql in new[]
            {
                $"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{Database}' AND active_pid IS NOT NULL",
                $"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{Database}'",
                $"DROP DATABASE IF EXISTS {Database} WITH (FORCE)",
                $"CREATE DATABASE {Database}",
            })
            {
                await using var command = server.CreateCommand(sql);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await using var demo = NpgsqlDataSource.Create(connectionString);
        await using var schema = demo.CreateCommand(
            """
            CREATE TABLE todos (
                id bigserial PRIMARY KEY, user_id bigint, title text NOT NULL, done boolean NOT NULL DEFAULT false,
                deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE announcements (id bigserial PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
            """);
        await schema.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>True once the bridge streams the slot; false when it stopped first.</summary>
    private static async Task<bool> WaitForSlotAsync(NpgsqlDataSource dataSource, Task<int> running, CancellationToken cancellationToken)
    {
        while (!await ScalarAsync<bool>(dataSource, $"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{Database}' AND active)", cancellationToken))
        {
            if (running.IsCompleted)
                return false;
            await Task.Delay(100, cancellationToken);
        }

        return true;
    }

    private static async Task ReportAsync(NpgsqlDataSource dataSource, DemoWorkload workload, TimeSpan elapsed, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            SELECT (SELECT count(*) FROM sync_changelog),
                   (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{Database}'),
                   (SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '{Database}')
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        Say($"{elapsed.TotalSeconds,5:0.0}s  source: {workload.Transactions,7:N0} txns {workload.Changes,7:N0} changes  |  sync_changelog: {reader.GetInt64(0),7:N0} rows  |  slot confirmed {reader.GetString(1)} ({reader.GetInt64(2) / 1024.0:N0} kB behind)");
    }

    private static async Task PrintSummaryAsync(NpgsqlDataSource dataSource, DemoWorkload workload, TimeSpan elapsed, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT bucket_id, count(*) FILTER (WHERE operation = 1), count(*) FILTER (WHERE operation = 2), count(*) FILTER (WHERE operation = 3), count(*)
            FROM sync_changelog GROUP BY bucket_id ORDER BY bucket_id
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        Console.WriteLine();
        Console.WriteLine("sync_changelog rows per bucket");
        Console.WriteLine($"  {"bucket",-10} {"insert",8} {"update",8} {"delete",8} {"total",8}");
        long total = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            total += reader.GetInt64(4);
            Console.WriteLine($"  {reader.GetString(0),-10} {reader.GetInt64(1),8:N0} {reader.GetInt64(2),8:N0} {reader.GetInt64(3),8:N0} {reader.GetInt64(4),8:N0}");
        }

        Console.WriteLine($"  {"all",-10} {"",8} {"",8} {"",8} {total,8:N0}");
        Console.WriteLine();
        Say($"{workload.Changes:N0} row changes in {workload.Transactions:N0} transactions applied and confirmed in {elapsed.TotalSeconds:0.0} s ({workload.Changes / elapsed.TotalSeconds:N0} changes/s end to end)");
    }

    /// <summary>Every live todo is in exactly its owner's bucket (or global), every announcement in global, and nothing else is.</summary>
    private static async Task<bool> CheckEdgesAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var mismatches = await ScalarAsync<long>(dataSource,
            """
            WITH expected AS (
                SELECT 'todos' AS table_name, id::text AS record_id, coalesce('user:' || user_id, 'global') AS bucket_id FROM todos WHERE deleted_at IS NULL
                UNION ALL SELECT 'announcements', id::text, 'global' FROM announcements),
            actual AS (SELECT table_name, record_id, bucket_id FROM sync_bucket_edges)
            SELECT count(*) FROM ((SELECT * FROM expected EXCEPT SELECT * FROM actual) UNION ALL (SELECT * FROM actual EXCEPT SELECT * FROM expected)) d
            """, cancellationToken);
        var records = await ScalarAsync<long>(dataSource, "SELECT count(*) FROM sync_bucket_edges", cancellationToken);
        Say(mismatches == 0
            ? $"check: sync_bucket_edges matches the source tables exactly ({records:N0} records in buckets)"
            : $"check FAILED: {mismatches:N0} differences between sync_bucket_edges and the source tables");
        return mismatches == 0;
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlDataSource dataSource, string sql, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static void Say(string line) => Console.WriteLine("demo: " + line);
}

/// <summary>A mix of what applications do: inserts, edits, owner moves, soft deletes and restores, deletes.</summary>
internal sealed class DemoWorkload(NpgsqlDataSource dataSource)
{
    private const int Users = 5;
    private readonly Random _random = new(42);
    private long _transactions;
    private long _changes;

    public long Transactions => Interlocked.Read(ref _transactions);

    public long Changes => Interlocked.Read(ref _changes);

    public async Task RunAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < duration)
        {
            await using var command = new NpgsqlCommand(Next(), connection);
            Interlocked.Add(ref _changes, await command.ExecuteNonQueryAsync(cancellationToken));
            Interlocked.Increment(ref _transactions);
        }
    }

    private string Next()
    {
        var user = _random.Next(0, Users + 1);
        var owner = user == 0 ? "NULL" : user.ToString(CultureInfo.InvariantCulture);
        return _random.Next(100) switch
        {
            < 30 => $"INSERT INTO todos (user_id, title) VALUES ({owner}, 'todo ' || txid_current())",
            < 35 => $"INSERT INTO todos (user_id, title) SELECT {owner}, 'batch ' || g FROM generate_series(1, 20) g",
            < 60 => "UPDATE todos SET title = title || '!', updated_at = now() WHERE id = (SELECT id FROM todos ORDER BY random() LIMIT 1)",
            < 72 => $"UPDATE todos SET user_id = {owner} WHERE id = (SELECT id FROM todos ORDER BY random() LIMIT 1)",
            < 80 => "UPDATE todos SET deleted_at = now() WHERE id = (SELECT id FROM todos WHERE deleted_at IS NULL ORDER BY random() LIMIT 1)",
            < 84 => "UPDATE todos SET deleted_at = NULL WHERE id = (SELECT id FROM todos WHERE deleted_at IS NOT NULL ORDER BY random() LIMIT 1)",
            < 92 => "DELETE FROM todos WHERE id = (SELECT id FROM todos ORDER BY random() LIMIT 1)",
            _ => "INSERT INTO announcements (body) VALUES ('news ' || now())",
        };
    }
}
