using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>Bad input at start ends with one line that says what is wrong and what to do.</summary>
public sealed class StartupErrorTests
{
    private const int Misconfigured = 2;

    private static async Task<(int ExitCode, string Output)> RunAsync(TestEnvironment env, Dictionary<string, string?> settings)
    {
        using var host = TestEnvironment.BuildBridge(settings);
        using var errors = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var exitCode = await CommandLine.RunHostAsync(host, errors, timeout.Token);
        return (exitCode, errors.ToString().TrimEnd());
    }

    private static void AssertOneLine(string output, string expectedStart)
    {
        Assert.True(output.StartsWith(expectedStart, StringComparison.Ordinal), $"Expected a line starting with \"{expectedStart}\", got \"{output}\"");
        Assert.DoesNotContain('\n', output);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task unreachable_postgres_is_one_line_naming_the_server()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:Postgres:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=postgres;Database=app;Timeout=5";

        var (exitCode, output) = await RunAsync(env, settings);

        Assert.Equal(Misconfigured, exitCode);
        AssertOneLine(output, "synchro-bridge: Cannot connect to PostgreSQL at 127.0.0.1:1, database 'app'");
        Assert.EndsWith("Start PostgreSQL or fix Synchro:Postgres:ConnectionString.", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task wal_level_replica_is_refused_with_the_setting_to_change()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var settings = env.BridgeSettings(("todos", "user_id"));
        var builder = new NpgsqlConnectionStringBuilder(TestServers.PostgresWithReplicaWalLevel);
        settings["Synchro:Postgres:ConnectionString"] = builder.ConnectionString;
        await using (var replicaServer = NpgsqlDataSource.Create(builder.ConnectionString))
        {
            await using var command = replicaServer.CreateCommand("DROP TABLE IF EXISTS todos; CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
            await command.ExecuteNonQueryAsync();
        }

        var (exitCode, output) = await RunAsync(env, settings);

        Assert.Equal(Misconfigured, exitCode);
        AssertOneLine(output, "synchro-bridge: PostgreSQL runs with wal_level = 'replica'; logical replication needs 'logical'. Run ALTER SYSTEM SET wal_level = logical");
    }

    [Fact]
    public async Task unreachable_broker_is_one_line_naming_the_broker()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:RabbitMq:Uri"] = "amqp://guest:secret@127.0.0.1:1/";
        settings["Synchro:RabbitMq:ConnectTimeout"] = "00:00:05";

        var (exitCode, output) = await RunAsync(env, settings);

        Assert.Equal(Misconfigured, exitCode);
        AssertOneLine(output, "synchro-bridge: Cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/");
        Assert.DoesNotContain("secret", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_configured_table_that_does_not_exist_is_named()
    {
        await using var env = await TestEnvironment.CreateAsync();

        var (exitCode, output) = await RunAsync(env, env.BridgeSettings(("public.nope", "user_id")));

        Assert.Equal(Misconfigured, exitCode);
        Assert.Equal($"synchro-bridge: Table public.nope does not exist in database '{env.Name}'. Create it, or remove it from Synchro:Tables.", output);
    }

    [Fact]
    public async Task a_table_without_a_key_is_refused_with_the_fix()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE events (happened_at timestamptz, body text)");

        var (exitCode, output) = await RunAsync(env, env.BridgeSettings(("events", null)));

        Assert.Equal(Misconfigured, exitCode);
        AssertOneLine(output, "synchro-bridge: Table public.events has no primary key and no replica identity index");
        Assert.Contains("ALTER TABLE public.events ADD PRIMARY KEY", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task invalid_configuration_lists_every_problem_on_one_line()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var settings = env.BridgeSettings(("Bad Name", "user_id"));
        settings["Synchro:Replication:SlotName"] = "Bad-Slot";
        // Zero would spin the position reporter; a negative interval crashes its timer.
        settings["Synchro:Replication:IdleAckInterval"] = "00:00:00";
        settings["Synchro:Health:AckStallThreshold"] = "-00:00:01";

        var (exitCode, output) = await RunAsync(env, settings);

        Assert.Equal(Misconfigured, exitCode);
        AssertOneLine(output, "synchro-bridge: configuration error: ");
        Assert.Contains("'Bad-Slot' is not a valid slot name", output, StringComparison.Ordinal);
        Assert.Contains("Synchro:Tables:0:Name: 'Bad Name' is not a table name we accept", output, StringComparison.Ordinal);
        Assert.Contains("Synchro:Replication:IdleAckInterval must be positive, e.g. 00:00:01", output, StringComparison.Ordinal);
        Assert.Contains("Synchro:Health:AckStallThreshold must be positive, e.g. 00:02:00", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_role_without_replication_is_told_how_to_grant_it()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var role = env.Name + "_app";
        await env.ExecuteAsync($"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'app'; CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint); GRANT SELECT ON todos TO {role}");
        try
        {
            var settings = env.BridgeSettings(("todos", "user_id"));
            settings["Synchro:Postgres:ConnectionString"] = new NpgsqlConnectionStringBuilder(env.ConnectionString) { Username = role, Password = "app" }.ConnectionString;

            var (exitCode, output) = await RunAsync(env, settings);

            Assert.Equal(Misconfigured, exitCode);
            Assert.Equal($"synchro-bridge: Role '{role}' may not start replication. Run ALTER ROLE {role} WITH REPLICATION, or connect as a role that has it.", output);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await env.ExecuteAsync($"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}");
        }
    }

    [Fact]
    public async Task no_free_replication_slot_is_refused_with_what_to_free()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var free = await env.ScalarAsync<long>("SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)");
        var fillers = Enumerable.Range(0, (int)free).Select(i => $"{env.Name}_f{i}").ToArray();
        try
        {
            // Physical slots are cheap and count against max_replication_slots like logical ones.
            foreach (var slot in fillers)
                await env.ExecuteAsync($"SELECT pg_create_physical_replication_slot('{slot}')");

            var (exitCode, output) = await RunAsync(env, env.BridgeSettings(("todos", "user_id")));

            Assert.Equal(Misconfigured, exitCode);
            AssertOneLine(output, "synchro-bridge: PostgreSQL has no free replication slot (max_replication_slots is used up). Drop an unused slot");
        }
        finally
        {
            foreach (var slot in fillers)
                await env.ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'");
        }
    }
}
