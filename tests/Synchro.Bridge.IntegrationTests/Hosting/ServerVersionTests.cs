using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>
/// PostgreSQL 13 (end-of-life; its pgoutput lacks the binary option) is refused by run and check
/// with one line, before anything is created. Runs only against a 13 server (scripts/test.sh's
/// PostgreSQL 13 leg, trait Versions=13).
/// </summary>
public sealed class ServerVersionTests
{
    [Fact]
    [Trait("Versions", "13")]
    public async Task postgresql_13_is_refused_with_the_version_needed_before_anything_is_created()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        Assert.Equal(13, await env.ScalarAsync<int>("SELECT current_setting('server_version_num')::int / 10000"));

        using var host = TestEnvironment.BuildBridge(env.BridgeSettings(("todos", "user_id")));
        using var errors = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var exitCode = await CommandLine.RunHostAsync(host, errors, timeout.Token);
        NpgsqlConnection.ClearAllPools();

        var pg = new NpgsqlConnectionStringBuilder(env.ConnectionString);
        var version = await env.ScalarAsync<string>("SELECT current_setting('server_version')");
        var majorMinor = string.Join('.', version.Split(' ')[0].Split('.').Take(2));
        Assert.Equal(
            $"synchro-bridge: PostgreSQL {majorMinor} at {pg.Host}:{pg.Port} is not supported: the bridge needs PostgreSQL 14 or newer (pgoutput's binary and messages options; 13 is end-of-life). Upgrade the server (pg_upgrade, or a dump and restore) and start the bridge again.",
            errors.ToString().TrimEnd());
        Assert.Equal(2, exitCode);
        Assert.Equal(0, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        Assert.Equal(0, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_publication WHERE pubname = '{env.Name}'"));
        Assert.Equal(0, await env.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sync\\_%'"));
    }
}
