using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// One test's own database, replication slot, publication and RabbitMQ virtual host, named after the
/// test and removed before and after it, so tests never see each other's data or messages.
/// </summary>
internal sealed class TestEnvironment : IAsyncDisposable
{
    private readonly List<IHost> _hosts = [];

    private readonly string _admin;

    private TestEnvironment(string name, string admin)
    {
        Name = name;
        _admin = admin;
        ConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = name, Pooling = true }.ConnectionString;
        DataSource = NpgsqlDataSource.Create(ConnectionString);
        AmqpUri = new UriBuilder(TestServers.Amqp) { Path = "/" + name }.Uri;
    }

    /// <summary>Database, slot and virtual host name.</summary>
    public string Name { get; }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public Uri AmqpUri { get; }

    /// <summary>The bridge's source name here (the default: database-slot).</summary>
    public string Source => Name + "-" + Name;

    public static Task<TestEnvironment> CreateAsync([CallerMemberName] string test = "") => CreateOnAsync(TestServers.Postgres, test);

    /// <summary>The environment on another PostgreSQL server (<paramref name="admin"/>: a superuser's connection string there).</summary>
    public static async Task<TestEnvironment> CreateOnAsync(string admin, [CallerMemberName] string test = "")
    {
        var environment = new TestEnvironment(NameFor(test), admin);
        await environment.RemoveServerObjectsAsync();
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {environment.Name}", connection);
            await create.ExecuteNonQueryAsync();
        }

        using var management = Management();
        (await management.PutAsync($"api/vhosts/{environment.Name}", null)).EnsureSuccessStatusCode();
        await environment.SetWritePermissionAsync(".*");
        return environment;
    }

    /// <summary>
    /// What the test user (guest) may publish to on this virtual host: the exchanges whose names match
    /// <paramref name="pattern"/> (a regular expression). It may still declare and read everything.
    /// RabbitMQ checks it on every new channel; a channel that has published keeps what it was allowed.
    /// </summary>
    public async Task SetWritePermissionAsync(string pattern)
    {
        using var management = Management();
        (await management.PutAsJsonAsync($"api/permissions/{Name}/guest", new { configure = ".*", write = pattern, read = ".*" })).EnsureSuccessStatusCode();
    }

    /// <summary>Configuration of a bridge on this environment; callers add or change keys.</summary>
    public Dictionary<string, string?> BridgeSettings(params (string Table, string? OwnerColumn)[] tables)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Synchro:Postgres:ConnectionString"] = ConnectionString,
            ["Synchro:RabbitMq:Uri"] = AmqpUri.ToString(),
            ["Synchro:Replication:SlotName"] = Name,
            ["Synchro:Replication:PublicationName"] = Name,
            ["Synchro:Replication:IdleAckInterval"] = "00:00:00.200",
            ["Synchro:Batching:MaxBatchDelay"] = "00:00:00.020",
            // The stream starts when the bridge has started, so a test's first write is an insert on
            // the bus; tests of existing rows ask for Initial (the default) with WithSnapshot.
            ["Synchro:Snapshot:Mode"] = "StreamOnly",
            // Tests run bridges side by side: each serves its health and metrics on a port of its own.
            ["Synchro:Http:Urls"] = "http://127.0.0.1:0",
        };
        for (var i = 0; i < tables.Length; i++)
        {
            settings[$"Synchro:Tables:{i}:Name"] = tables[i].Table;
            settings[$"Synchro:Tables:{i}:OwnerColumn"] = tables[i].OwnerColumn;
        }

        return settings;
    }

    /// <summary>Settings that read existing rows when the slot is created, and backfill tables added later (the default outside tests).</summary>
    public static Dictionary<string, string?> WithSnapshot(Dictionary<string, string?> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings["Synchro:Snapshot:Mode"] = "Initial";
        return settings;
    }

    /// <summary>Builds a bridge host for the caller to run (and dispose).</summary>
    public static IHost BuildBridge(Dictionary<string, string?> settings) =>
        BridgeHost.Build(overrides: settings, minimumLevel: LogLevel.Warning);

    /// <summary>Starts a bridge; the environment stops and disposes it.</summary>
    public Task<IHost> StartBridgeAsync(params (string Table, string? OwnerColumn)[] tables) => StartBridgeAsync(BridgeSettings(tables));

    /// <summary>Starts a bridge with these settings; the environment stops and disposes it.</summary>
    public async Task<IHost> StartBridgeAsync(Dictionary<string, string?> settings)
    {
        var host = BuildBridge(settings);
        _hosts.Add(host);
        await host.StartAsync();
        return host;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task<List<string>> RowsAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
            rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "NULL" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        return rows;
    }

    /// <summary>sync_changelog as bucket|table|record|operation, in seq order.</summary>
    public Task<List<string>> ChangelogAsync() =>
        RowsAsync("SELECT bucket_id, table_name, record_id, operation FROM sync_changelog ORDER BY seq");

    /// <summary>sync_bucket_edges as table|record|bucket, sorted.</summary>
    public Task<List<string>> EdgesAsync() =>
        RowsAsync("SELECT table_name, record_id, bucket_id FROM sync_bucket_edges ORDER BY table_name, record_id, bucket_id");

    /// <summary>The slot's confirmed_flush_lsn; 0 while the slot is still being created (it waits for running transactions, also other databases').</summary>
    public async Task<ulong> ConfirmedFlushLsnAsync() =>
        Lsn.Parse(await ScalarAsync<string>($"SELECT coalesce(confirmed_flush_lsn, '0/0')::text FROM pg_replication_slots WHERE slot_name = '{Name}'"));

    /// <summary>The WAL insert position now: past every transaction committed before the call.</summary>
    public async Task<ulong> CurrentWalLsnAsync() => Lsn.Parse(await ScalarAsync<string>("SELECT pg_current_wal_insert_lsn()::text"));

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            try
            {
                await host.StopAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception e) when (e is OperationCanceledException or SynchroException)
            {
                // A host the test expected to fail may not stop cleanly; its servers objects are removed below.
            }

            host.Dispose();
        }

        await DataSource.DisposeAsync();
        await RemoveServerObjectsAsync();
    }

    private async Task RemoveServerObjectsAsync()
    {
        await using (var admin = new NpgsqlConnection(_admin))
        {
            await admin.OpenAsync();
            // pg_terminate_backend only signals: the walsender may hold the slot a moment longer (a
            // killed bridge's session, a standby taking over), so the slot is dropped once it is free.
            await Eventually.Until(async () =>
            {
                await using var terminate = new NpgsqlCommand(
                    $"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{Name}' AND active_pid IS NOT NULL", admin);
                await terminate.ExecuteNonQueryAsync();
                await using var drop = new NpgsqlCommand(
                    $"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{Name}' AND NOT active", admin);
                await drop.ExecuteNonQueryAsync();
                await using var left = new NpgsqlCommand($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{Name}'", admin);
                return (long)(await left.ExecuteScalarAsync())! == 0;
            }, $"replication slot {Name} to be dropped", TimeSpan.FromSeconds(30));
            // One statement per command: DROP DATABASE refuses to run inside a multi-statement batch.
            await using var dropDatabase = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", admin);
            await dropDatabase.ExecuteNonQueryAsync();
        }

        using var management = Management();
        var deleted = await management.DeleteAsync($"api/vhosts/{Name}");
        if (deleted.StatusCode != System.Net.HttpStatusCode.NotFound)
            deleted.EnsureSuccessStatusCode();
    }

    public static HttpClient Management()
    {
        var client = new HttpClient { BaseAddress = TestServers.RabbitManagement, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("guest:guest"u8.ToArray()));
        return client;
    }

    /// <summary>A valid database/slot/vhost name from the test name: lower case, at most 63 characters, unique by a hash.</summary>
    private static string NameFor(string test)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(test)))[..8];
        var readable = new string(test.ToLowerInvariant().Where(c => char.IsAsciiLetterOrDigit(c) || c == '_').ToArray());
        return "it_" + readable[..Math.Min(readable.Length, 45)] + "_" + hash;
    }
}
