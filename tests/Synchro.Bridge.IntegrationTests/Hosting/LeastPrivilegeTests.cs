using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>The bridge end to end as the role the README's SQL creates: never a superuser.</summary>
public sealed class LeastPrivilegeTests
{
    [Fact]
    public async Task the_role_from_the_readme_snapshots_streams_and_writes_the_sidecar_schema_without_superuser()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var role = env.Name + "_bridge";
        await env.ExecuteAsync(
            $"""
            DROP ROLE IF EXISTS {role};
            CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, title text);
            INSERT INTO todos SELECT g, g % 3, 'existing ' || g FROM generate_series(1, 20) g;
            """);
        // The README's SQL, as the owner of the tables runs it (the test's superuser here).
        await env.ExecuteAsync(
            $"""
            CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'bridge';
            GRANT CONNECT ON DATABASE "{env.Name}" TO {role};
            GRANT USAGE ON SCHEMA public TO {role};
            GRANT SELECT ON public.todos TO {role};
            CREATE SCHEMA synchro AUTHORIZATION {role};
            CREATE PUBLICATION "{env.Name}" FOR TABLE public.todos;
            """);
        Microsoft.Extensions.Hosting.IHost? host = null;
        try
        {
            Assert.False(await env.ScalarAsync<bool>($"SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'"));
            var settings = TestEnvironment.WithSnapshot(env.BridgeSettings(("todos", "user_id")));
            settings["Synchro:Postgres:ConnectionString"] = new NpgsqlConnectionStringBuilder(env.ConnectionString) { Username = role, Password = "bridge" }.ConnectionString;
            settings["Synchro:Postgres:SidecarSchema"] = "synchro";
            host = await env.StartBridgeAsync(settings);

            await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM synchro.sync_changelog"), n => n == 20, "the 20 existing rows placed");
            await env.ExecuteAsync("INSERT INTO todos VALUES (21, 1, 'new'); UPDATE todos SET user_id = 2 WHERE id = 1; DELETE FROM todos WHERE id = 2");
            var changelog = await Eventually.Until(
                () => env.RowsAsync("SELECT bucket_id, record_id, operation FROM synchro.sync_changelog WHERE seq > (SELECT min(seq) + 19 FROM synchro.sync_changelog) ORDER BY seq"),
                rows => rows.Count == 4, "the streamed changes in the changelog");

            // Record 21 enters user:1; record 1 enters user:2 and leaves user:1; record 2 leaves user:2.
            Assert.Equal(["user:1|21|1", "user:2|1|1", "user:1|1|3", "user:2|2|3"], changelog);
            Assert.Equal(20, await env.ScalarAsync<long>("SELECT count(*) FROM synchro.sync_bucket_edges"));
            // Nothing went to public: the role may not create there, and did not need to.
            Assert.False(await env.ScalarAsync<bool>("SELECT to_regclass('public.sync_changelog') IS NOT NULL"));
        }
        finally
        {
            if (host is not null)
                await host.StopAsync();
            NpgsqlConnection.ClearAllPools();
            await env.ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND NOT active");
            await env.ExecuteAsync($"DROP SCHEMA synchro CASCADE; DROP OWNED BY {role}; DROP ROLE {role}");
        }
    }
}
