using System.Collections.Concurrent;
using System.Data;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Synchro.Bridge.Sidecar;

/// <summary>
/// Opens the connections whose transactions take the bridge's locks, and ends the sessions of ours
/// that lost their client. A network partition leaves PostgreSQL's side of a broken connection open:
/// a backend cut off in the middle of a pipelined batch waits for the rest of it inside its
/// transaction, with its locks, and no server timeout ends it (idle_in_transaction_session_timeout
/// counts only between statements; TCP keepalives only once the peer is gone for good). The work,
/// retried on a new connection, would wait on those locks for ever. So a connection that broke leaves
/// its backend's pid here, and the next connection opened ends that backend first, if it still
/// carries this process's application_name and is older than the break (a pid PostgreSQL has given
/// to another session since is left alone).
/// </summary>
public sealed class SidecarSessions(NpgsqlDataSource dataSource, ILogger<SidecarSessions> logger)
{
    /// <summary>Backend pids of connections that broke, with when they broke (a monotonic timestamp of this process).</summary>
    private readonly ConcurrentDictionary<int, long> _orphans = new();

    /// <summary>With multiplexing a connection has no backend of its own to end.</summary>
    private readonly bool _multiplexing = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Multiplexing;

    public async Task<SidecarSession> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            if (!_orphans.IsEmpty)
                await EndOrphansAsync(connection, cancellationToken);
            return new SidecarSession(this, connection, _multiplexing ? 0 : connection.ProcessID);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs one piece of work on a session: a single write cut off before its Sync holds its row locks too.</summary>
    public async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        await using var session = await OpenAsync(cancellationToken);
        return await work(session.Connection);
    }

    /// <param name="backendPid">The broken connection's backend.</param>
    /// <param name="at">When it broke (<see cref="Stopwatch.GetTimestamp"/>); now when not given.</param>
    internal void Broke(int backendPid, long? at = null)
    {
        SidecarLog.ConnectionBroke(logger, backendPid);
        _orphans.TryAdd(backendPid, at ?? Stopwatch.GetTimestamp());
    }

    private async Task EndOrphansAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var orphans = _orphans.ToArray();
        // Only a client session of this process (the replication session carries the same name but is
        // a walsender) that is older than the break: after a restart or a fail-over, PostgreSQL may have
        // given the same pid to a new session of ours, which started after the break. Ages, not clock
        // times, so the two machines' clocks need not agree; the age is taken here and compared there a
        // little later, hence the margin (a session born in the last second before a break is left to
        // PostgreSQL's own timeouts).
        await using (var command = new NpgsqlCommand(
            """
            SELECT a.pid, pg_terminate_backend(a.pid)
            FROM unnest($1::integer[], $2::double precision[]) AS o(pid, broken_seconds_ago)
            JOIN pg_stat_activity a ON a.pid = o.pid
            WHERE a.application_name = current_setting('application_name') AND a.backend_type = 'client backend'
              AND a.pid <> pg_backend_pid() AND a.backend_start < clock_timestamp() - make_interval(secs => o.broken_seconds_ago + 1)
            """,
            connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = orphans.Select(o => o.Key).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = orphans.Select(o => Stopwatch.GetElapsedTime(o.Value).TotalSeconds).ToArray() });
            try
            {
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                    SidecarLog.OrphanEnded(logger, reader.GetInt32(0), reader.GetBoolean(1));
            }
            catch (PostgresException e)
            {
                // Not a reason to fail the work this connection was opened for; it retries if a lock still holds it.
                SidecarLog.OrphansNotEnded(logger, e.MessageText);
            }
        }

        foreach (var (pid, _) in orphans)
            _orphans.TryRemove(pid, out _);
    }
}

/// <summary>A connection opened by <see cref="SidecarSessions"/>: disposing it notes whether it broke on the way.</summary>
public sealed class SidecarSession : IAsyncDisposable
{
    private readonly SidecarSessions _sessions;
    private readonly int _backendPid;

    internal SidecarSession(SidecarSessions sessions, NpgsqlConnection connection, int backendPid)
    {
        _sessions = sessions;
        Connection = connection;
        _backendPid = backendPid;
    }

    public NpgsqlConnection Connection { get; }

    public async ValueTask DisposeAsync()
    {
        // Nothing closes these connections but this: one that is not open any more broke (Npgsql
        // discards a broken connector, so this pid is never handed out again by the pool).
        if (_backendPid != 0 && (Connection.FullState.HasFlag(ConnectionState.Broken) || Connection.State == ConnectionState.Closed))
            _sessions.Broke(_backendPid);
        await Connection.DisposeAsync();
    }
}

internal static partial class SidecarLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "Ending session {Pid} of this bridge, left by a connection that broke (it could still hold locks); signalled: {Ended}")]
    public static partial void OrphanEnded(ILogger logger, int pid, bool ended);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Debug, Message = "A sidecar connection broke; its session {Pid} is ended by the next connection if PostgreSQL still has it")]
    public static partial void ConnectionBroke(ILogger logger, int pid);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Warning, Message = "Could not end the sessions left by broken connections: {Error}")]
    public static partial void OrphansNotEnded(ILogger logger, string error);
}
