using System.Text.RegularExpressions;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// A primary and its streaming hot standby on loopback, made fresh by <c>scripts/servers.sh pair</c>
/// (on 17+ the standby synchronizes failover slots and the primary lists its physical slot in
/// synchronized_standby_slots). Connection strings name both hosts, so whoever holds them follows
/// the primary as a fail-over moves it.
/// </summary>
internal sealed partial class PostgresPair : IAsyncDisposable
{
    private readonly int _version;

    private PostgresPair(int version, string primary, string standby)
    {
        _version = version;
        Primary = primary;
        Standby = standby;
    }

    /// <summary>The primary's superuser connection string (database postgres).</summary>
    public string Primary { get; }

    /// <summary>The standby's superuser connection string (database postgres).</summary>
    public string Standby { get; }

    /// <summary>The standby alone, database <paramref name="database"/>.</summary>
    public string StandbyOf(string database) => new NpgsqlConnectionStringBuilder(Standby) { Database = database }.ConnectionString;

    /// <summary>Both hosts, the primary wanted; Npgsql looks again at which one is primary every second.</summary>
    public string Either(string database = "postgres")
    {
        var primary = new NpgsqlConnectionStringBuilder(Primary);
        var standby = new NpgsqlConnectionStringBuilder(Standby);
        return new NpgsqlConnectionStringBuilder(Primary)
        {
            Host = $"{primary.Host}:{primary.Port},{standby.Host}:{standby.Port}",
            Database = database,
            TargetSessionAttributes = "primary",
            HostRecheckSeconds = 1,
        }.ConnectionString;
    }

    public static async Task<PostgresPair> StartAsync(int version)
    {
        var exports = await FaultScenario.ServersOutputAsync("pair", "--pg", version.ToString(System.Globalization.CultureInfo.InvariantCulture), "up");
        var values = Export().Matches(exports).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Trim('"', '\''));
        string Value(string name) => values.TryGetValue(name, out var value) ? value : throw new InvalidOperationException($"servers.sh pair up printed no {name}:\n{exports}");
        return new PostgresPair(version, Value("SYNCHRO_TEST_PAIR_PRIMARY"), Value("SYNCHRO_TEST_PAIR_STANDBY"));
    }

    /// <summary>SIGKILL of the primary's postmaster and its backends: no shutdown, no last WAL sent.</summary>
    public Task KillPrimaryAsync() => FaultScenario.ServersAsync("pair", "--pg", Version, "kill-primary");

    /// <summary>pg_ctl promote of the standby, waiting until it accepts writes.</summary>
    public Task PromoteAsync() => FaultScenario.ServersAsync("pair", "--pg", Version, "promote");

    private string Version => _version.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await FaultScenario.ServersAsync("pair", "--pg", Version, "down");
    }

    [GeneratedRegex(@"^export\s+([A-Z0-9_]+)=(.*)$", RegexOptions.Multiline)]
    private static partial Regex Export();
}
