using System.Diagnostics;
using System.Runtime.CompilerServices;
using Npgsql;
using Synchro.Bridge.Hosting;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// One fault test's world: its own database with <c>items</c> audited by <see cref="AuditOracle"/>,
/// the bridge as real processes, the servers' own start and stop commands, and the final check that
/// the sidecar tables are exactly what a fault-free run writes.
/// </summary>
internal sealed class FaultScenario : IAsyncDisposable
{
    private readonly List<BridgeProcess> _bridges = [];

    private FaultScenario(TestEnvironment env) => Env = env;

    public TestEnvironment Env { get; }

    public static Task<FaultScenario> CreateAsync([CallerMemberName] string test = "") => CreateOnAsync(TestServers.Postgres, test);

    /// <summary>The scenario on another PostgreSQL server (a superuser's connection string there).</summary>
    public static async Task<FaultScenario> CreateOnAsync(string admin, [CallerMemberName] string test = "")
    {
        var env = await TestEnvironment.CreateOnAsync(admin, test);
        await env.ExecuteAsync(MixedWorkload.CreateTableSql);
        await AuditOracle.InstallAsync(env, "items");
        return new FaultScenario(env);
    }

    /// <summary>A bridge on <c>items</c> bucketed by <c>owner_id</c>, writing its health to a file of its own.</summary>
    public Dictionary<string, string?> Settings(string? healthFile = null)
    {
        var settings = Env.BridgeSettings(("items", "owner_id"));
        settings["Synchro:Batching:MaxBatchChanges"] = "1000";
        settings["Synchro:Health:File"] = healthFile ?? Path.Combine(Path.GetTempPath(), $"{Env.Name}.{Guid.NewGuid():N}.health");
        return settings;
    }

    public BridgeProcess Start(Dictionary<string, string?>? settings = null, long? heapLimitBytes = null, params string[] arguments)
    {
        var bridge = BridgeProcess.Start(settings ?? Settings(), heapLimitBytes, arguments);
        _bridges.Add(bridge);
        return bridge;
    }

    public string ConnectionString => Env.ConnectionString;

    /// <summary>Whether a session holds the slot, and which process (walsender pid).</summary>
    public async Task<int?> SlotHolderPidAsync() =>
        await Env.ScalarAsync<object>($"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{Env.Name}'") is int pid ? pid : null;

    /// <summary>
    /// Waits until a replication session holds the slot and returns its pid. After a kill, pass the
    /// killed bridge's session: it can hold the slot for a moment after its process is gone.
    /// </summary>
    public async Task<int> WaitForSlotHeldAsync(BridgeProcess bridge, int? notBy = null) =>
        (await Eventually.Until(async () =>
        {
            bridge.AssertRunning();
            return await SlotHolderPidAsync();
        }, pid => pid is not null && pid != notBy, notBy is null ? "a bridge to hold the slot" : $"a session other than {notBy} to hold the slot"))!.Value;

    /// <summary>
    /// Waits until the slot has acknowledged everything written so far, which the bridge does only
    /// once every change up to there is applied to the sidecar tables.
    /// </summary>
    /// <summary>Waits until the reference bridge holds its slot <c>{name}_clean</c> (which it creates at start).</summary>
    public Task WaitForCleanReferenceAsync() =>
        Eventually.Until(() => Env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{Env.Name}_clean' AND active)"), "the reference bridge to hold its slot");

    /// <summary>
    /// Waits until the reference bridge (slot <c>{name}_clean</c>, schema <c>clean</c>) has confirmed
    /// everything written, then asserts the public sidecar tables equal its tables: the same changelog
    /// rows in the same seq order (seq values themselves may skip where a killed transaction took
    /// some), the same edges and record positions.
    /// </summary>
    public async Task AssertSameSidecarTablesAsCleanReferenceAsync(TimeSpan timeout)
    {
        var written = await Env.CurrentWalLsnAsync();
        await Eventually.Until(async () => Synchro.Bridge.Replication.Lsn.Parse(await Env.ScalarAsync<string>($"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{Env.Name}_clean'")),
            lsn => lsn >= written, "the reference bridge to catch up", timeout);
        const string Changelog = "SELECT row_number() OVER (ORDER BY seq), bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM {0}.sync_changelog ORDER BY seq";
        const string Edges = "SELECT table_name, record_id, bucket_id, checksum, lsn FROM {0}.sync_bucket_edges ORDER BY 1, 2, 3";
        const string Records = "SELECT table_name, record_id, commit_lsn, change_idx, removed, checksum, parent_table, parent_record_id FROM {0}.sync_record_positions ORDER BY 1, 2";
        foreach (var query in new[] { Changelog, Edges, Records })
        {
            var expected = await Env.RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, query, "clean"));
            Assert.NotEmpty(expected);
            Assert.Equal(expected, await Env.RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, query, "public")));
        }
    }

    public async Task WaitForCatchUpAsync(BridgeProcess bridge, TimeSpan timeout)
    {
        var written = await Env.CurrentWalLsnAsync();
        try
        {
            await Eventually.Until(async () =>
            {
                bridge.AssertRunning();
                return await Env.ConfirmedFlushLsnAsync();
            }, lsn => lsn >= written, $"the bridge to acknowledge everything written (up to {written})", timeout);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nThe bridge's last output:\n{bridge.RecentOutput}", e);
        }
    }

    /// <summary>The sidecar tables equal the oracle's fault-free result: per bucket and record the same operations in order, the same counts and edges, no duplicate keys.</summary>
    public async Task AssertExactAsync()
    {
        var expected = await AuditOracle.ComputeAsync(Env, "items", row => AuditOracle.OwnerRule(row, "owner_id", "owner"));
        Assert.True(expected.AuditRows > 0, "the workload wrote nothing");
        await AuditOracle.AssertSidecarMatchesAsync(Env, "items", expected);
    }

    /// <summary>Runs scripts/servers.sh with the arguments and fails the test with its output when it fails.</summary>
    public static async Task ServersAsync(params string[] arguments) => await ServersOutputAsync(arguments);

    /// <summary>Runs scripts/servers.sh with the arguments and returns what it printed on stdout (export lines).</summary>
    public static async Task<string> ServersOutputAsync(params string[] arguments)
    {
        var script = Environment.GetEnvironmentVariable("SYNCHRO_SERVERS_SCRIPT") is { Length: > 0 } path
            ? path
            : throw new InvalidOperationException("SYNCHRO_SERVERS_SCRIPT is not set: run the tests with scripts/test.sh (or eval \"$(scripts/servers.sh env)\").");
        var start = new ProcessStartInfo("bash", [script, .. arguments]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var output = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"servers.sh {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{await output}{await stdout}");
        return await stdout;
    }

    /// <summary>The health the bridge wrote last.</summary>
    public static async Task<(bool Healthy, string Detail)> HealthAsync(Dictionary<string, string?> settings) =>
        await HealthFile.CheckAsync(settings["Synchro:Health:File"]!, TimeSpan.FromSeconds(30), DateTimeOffset.UtcNow, CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        foreach (var bridge in _bridges)
            bridge.Dispose();
        NpgsqlConnection.ClearAllPools();
        Env.DataSource.Clear();
        await Env.DisposeAsync();
    }
}
