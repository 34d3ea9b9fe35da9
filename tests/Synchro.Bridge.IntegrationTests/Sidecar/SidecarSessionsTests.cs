using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.IntegrationTests.Sidecar;

/// <summary>A network partition leaves PostgreSQL's side of our broken connections open, with their locks.</summary>
public sealed class SidecarSessionsTests
{
    [Fact]
    public async Task a_session_a_partition_left_holding_a_lock_is_ended_by_the_next_connection_so_the_retried_work_gets_the_lock()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await using var partitioned = PartitionedSessions.Start(env);
        var (proxy, sessions) = (partitioned.Proxy, partitioned.Sessions);
        var key = "synchro:apply:" + env.Name;

        // A transaction takes the lock, then the partition cuts its client side off; the server keeps the session.
        int orphan;
        await using (var session = await sessions.OpenAsync(CancellationToken.None))
        {
            orphan = session.Connection.ProcessID;
            await WaitUntilOlderThanTheMarginAsync(env, orphan);
            await using var transaction = await session.Connection.BeginTransactionAsync();
            await using (var take = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", session.Connection) { Parameters = { new() { Value = key } } })
                await take.ExecuteNonQueryAsync();
            await partitioned.CutAsync(session);
        }

        proxy.Restore();
        Assert.Equal(orphan, await LockHolderAsync(env, key));

        // The retried work opens a new connection: the orphan is ended first, and the lock is free for it.
        await using (var retry = await sessions.OpenAsync(CancellationToken.None))
        {
            await using var transaction = await retry.Connection.BeginTransactionAsync();
            await using (var bound = new NpgsqlCommand("SET LOCAL lock_timeout = '20s'", retry.Connection))
                await bound.ExecuteNonQueryAsync();
            await using var take = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", retry.Connection) { Parameters = { new() { Value = key } } };
            await take.ExecuteNonQueryAsync();
            Assert.Equal(retry.Connection.ProcessID, await LockHolderAsync(env, key));
        }

        Assert.Equal(0L, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE pid = {orphan}"));
    }

    [Fact]
    public async Task a_session_of_another_client_is_never_ended_even_with_a_pid_once_ours()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await using var partitioned = PartitionedSessions.Start(env);
        var (proxy, sessions) = (partitioned.Proxy, partitioned.Sessions);

        // A session of ours breaks; PostgreSQL's side of it stays, but under another client's name.
        int orphan;
        await using (var session = await sessions.OpenAsync(CancellationToken.None))
        {
            orphan = session.Connection.ProcessID;
            await WaitUntilOlderThanTheMarginAsync(env, orphan);
            await using (var rename = new NpgsqlCommand("SET application_name = 'someone-else'", session.Connection))
                await rename.ExecuteNonQueryAsync();
            await partitioned.CutAsync(session);
        }

        proxy.Restore();
        await using (await sessions.OpenAsync(CancellationToken.None))
            Assert.Equal(1L, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE pid = {orphan} AND application_name = 'someone-else'"));
        await env.ExecuteAsync($"SELECT pg_terminate_backend({orphan})");
    }

    /// <summary>Sessions of "a bridge" whose connections go through a proxy that can cut them like a partition.</summary>
    private sealed class PartitionedSessions(TcpProxy proxy, NpgsqlDataSource dataSource) : IAsyncDisposable
    {
        public TcpProxy Proxy => proxy;

        public SidecarSessions Sessions { get; } = new(dataSource, NullLogger<SidecarSessions>.Instance);

        public static PartitionedSessions Start(TestEnvironment env)
        {
            var direct = new NpgsqlConnectionStringBuilder(env.ConnectionString);
            var proxy = TcpProxy.Start(direct.Host!, direct.Port);
            return new PartitionedSessions(proxy, NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(env.ConnectionString) { Port = proxy.Port, ApplicationName = "synchro-bridge/" + env.Name }.ConnectionString));
        }

        /// <summary>Cuts the client side off and lets the session find out: its next command fails.</summary>
        public async Task CutAsync(SidecarSession session)
        {
            proxy.Cut(leaveServerHanging: true);
            await using var next = new NpgsqlCommand("SELECT 1", session.Connection);
            await Assert.ThrowsAnyAsync<NpgsqlException>(() => next.ExecuteScalarAsync());
        }

        public async ValueTask DisposeAsync()
        {
            await dataSource.DisposeAsync();
            await proxy.DisposeAsync();
        }
    }

    [Fact]
    public async Task a_session_that_started_after_the_break_is_never_ended_as_if_it_had_the_broken_ones_pid()
    {
        // After a restart or a fail-over PostgreSQL may give a broken session's pid to a new session of ours.
        await using var env = await TestEnvironment.CreateAsync();
        await using var partitioned = PartitionedSessions.Start(env);
        var sessions = partitioned.Sessions;
        var brokeAt = System.Diagnostics.Stopwatch.GetTimestamp();
        await using var newer = await sessions.OpenAsync(CancellationToken.None);
        await using (var transaction = await newer.Connection.BeginTransactionAsync())
        {
            sessions.Broke(newer.Connection.ProcessID, brokeAt);
            await using (await sessions.OpenAsync(CancellationToken.None))
            {
            }

            await using var alive = new NpgsqlCommand("SELECT 1", newer.Connection);
            Assert.Equal(1, await alive.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task the_bridges_sessions_carry_its_name_and_ask_postgres_for_keepalives_without_overriding_the_users_options()
    {
        await using var env = await TestEnvironment.CreateAsync();
        var user = new NpgsqlConnectionStringBuilder(env.ConnectionString) { Options = "-c tcp_keepalives_count=5" }.ConnectionString;
        var instance = new BridgeInstance();
        await using var dataSource = NpgsqlDataSource.Create(Synchro.Bridge.Hosting.ServiceCollectionExtensions.SidecarConnectionString(user, instance));
        await using var command = dataSource.CreateCommand(
            "SELECT current_setting('application_name'), current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count')");
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal((instance.ApplicationName, "30", "10", "5"), (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)));
    }

    /// <summary>A session born in the last second before a break is not ended (its age cannot be told apart from a newer one's).</summary>
    private static Task WaitUntilOlderThanTheMarginAsync(TestEnvironment env, int pid) =>
        Eventually.Until(() => env.ScalarAsync<bool>($"SELECT backend_start < clock_timestamp() - interval '1.5 s' FROM pg_stat_activity WHERE pid = {pid}"), $"session {pid} to be older than the margin");

    private static async Task<int?> LockHolderAsync(TestEnvironment env, string key) =>
        await env.ScalarAsync<object>(
            $"""
            SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtext('{key}')::bigint
            """) is int pid ? pid : null;
}
