using System.Collections.Concurrent;
using System.Data;
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
/// carries this process's application_name (a pid PostgreSQL gave to another client is left alone).
/// </summary>
public sealed class SidecarSessions(NpgsqlDataSource dataSource, ILogger<SidecarSessions> logger)
{
    private readonly ConcurrentDictionary<int, byte> _orphans = new();

    public async Task<SidecarSession> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            if (!_orphans.IsEmpty)
                await EndOrphansAsync(connection, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return new SidecarSession(this, connection);
    }

    internal void Broke(int backendPid) => _orphans.TryAdd(backendPid, 0);

    private async Task EndOrphansAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var pids = _orphans.Keys.ToArray();
        await using (var command = new NpgsqlCommand(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1) AND application_name = current_setting('application_name') AND pid <> pg_backend_pid()",
            connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = pids });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                SidecarLog.OrphanEnded(logger, reader.GetInt32(0), reader.GetBoolean(1));
        }

        foreach (var pid in pids)
            _orphans.TryRemove(pid, out _);
    }
}

/// <summary>A connection opened by <see cref="SidecarSessions"/>: disposing it notes whether it broke on the way.</summary>
public sealed class SidecarSession : IAsyncDisposable
{
    private readonly SidecarSessions _sessions;
    private readonly int _backendPid;

    internal SidecarSession(SidecarSessions sessions, NpgsqlConnection connection)
    {
        _sessions = sessions;
        Connection = connection;
        _backendPid = connection.ProcessID;
    }

    public NpgsqlConnection Connection { get; }

    public async ValueTask DisposeAsync()
    {
        // Nothing closes these connections but this: one that is not open any more broke.
        if (Connection.FullState.HasFlag(ConnectionState.Broken) || Connection.State == ConnectionState.Closed)
            _sessions.Broke(_backendPid);
        await Connection.DisposeAsync();
    }
}

internal static partial class SidecarLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "Ended session {Pid} of this bridge, left by a connection that broke (it could still hold locks): {Ended}")]
    public static partial void OrphanEnded(ILogger logger, int pid, bool ended);
}
