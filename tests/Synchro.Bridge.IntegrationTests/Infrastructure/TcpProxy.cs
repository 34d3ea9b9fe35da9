using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback TCP proxy in front of a server (PostgreSQL, RabbitMQ), so a test can cut the network
/// between the bridge and that server and put it back. Point the bridge at <see cref="Port"/>;
/// <see cref="Cut"/> resets every open connection and refuses new ones until <see cref="Restore"/>.
/// </summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    // Guards _cut against connection registration, so a connection accepted during Cut() is reset too.
    private readonly Lock _gate = new();
    private bool _cut;
    private Task _acceptLoop = Task.CompletedTask;
    private int _accepted;
    private int _disposed;

    private TcpProxy(TcpListener listener, IPEndPoint target)
    {
        _listener = listener;
        _target = target;
    }

    /// <summary>The loopback port the proxy listens on.</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>True between <see cref="Cut"/> and <see cref="Restore"/>.</summary>
    public bool IsCut
    {
        get
        {
            lock (_gate)
                return _cut;
        }
    }

    /// <summary>Connections currently forwarded.</summary>
    public int OpenConnections => _connections.Count;

    /// <summary>Connections accepted so far, including the ones reset because the proxy was cut.</summary>
    public int AcceptedConnections => Volatile.Read(ref _accepted);

    /// <summary>Listens on 127.0.0.1 on a free port and forwards every connection to the target, which must be a loopback address.</summary>
    public static TcpProxy Start(string targetHost, int targetPort)
    {
        ArgumentException.ThrowIfNullOrEmpty(targetHost);
        ArgumentOutOfRangeException.ThrowIfLessThan(targetPort, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(targetPort, IPEndPoint.MaxPort);

        var addresses = IPAddress.TryParse(targetHost, out var literal) ? [literal] : Dns.GetHostAddresses(targetHost);
        if (addresses.Length == 0 || !addresses.All(IPAddress.IsLoopback))
            throw new ArgumentException($"The proxy forwards to loopback only; '{targetHost}' resolves to {string.Join(", ", addresses.Select(a => a.ToString()))}.", nameof(targetHost));
        // The test servers bind to 127.0.0.1, so IPv4 first when the name has both.
        var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses[0];

        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var proxy = new TcpProxy(listener, new IPEndPoint(address, targetPort));
        proxy._acceptLoop = proxy.AcceptLoopAsync(proxy._stopping.Token);
        return proxy;
    }

    /// <summary>Resets every open connection and makes new connections fail at once, until <see cref="Restore"/>.</summary>
    /// <param name="leaveServerHanging">
    /// Reset only the client side and leave the server's sockets open but unread, as a network
    /// partition looks to the server: it notices only at its own timeout (PostgreSQL's walsender
    /// keeps its replication slot until wal_sender_timeout).
    /// </param>
    public void Cut(bool leaveServerHanging = false)
    {
        lock (_gate)
            _cut = true;
        foreach (var connection in _connections.Keys)
            connection.Reset(leaveServerHanging);
    }

    /// <summary>Forwards new connections again.</summary>
    public void Restore()
    {
        lock (_gate)
            _cut = false;
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            Interlocked.Increment(ref _accepted);
            if (IsCut)
            {
                Reset(client);
                continue;
            }

            Track(ForwardAsync(client, cancellationToken));
        }
    }

    private void Track(Task task)
    {
        _running.TryAdd(task, 0);
        _ = task.ContinueWith(t => _running.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task ForwardAsync(Socket client, CancellationToken cancellationToken)
    {
        var upstream = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await upstream.ConnectAsync(_target, cancellationToken);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The server is down: the client sees its connection reset, as it would see a refusal.
            Reset(client);
            Reset(upstream);
            return;
        }

        var connection = new Connection(client, upstream);
        bool cut;
        lock (_gate)
        {
            cut = _cut;
            if (!cut)
                _connections.TryAdd(connection, 0);
        }

        if (cut)
        {
            connection.Reset();
            return;
        }

        try
        {
            await connection.RunAsync(cancellationToken);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // Reset before its streams were open.
        }
        finally
        {
            _connections.TryRemove(connection, out _);
            connection.Reset();
        }
    }

    /// <summary>An abortive close: linger 0 makes the kernel send RST, not FIN.</summary>
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException)
        {
            // Already closed.
        }

        socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopping.CancelAsync();
        _listener.Stop();
        foreach (var connection in _connections.Keys)
            connection.Reset();
        await _acceptLoop;
        await Task.WhenAll(_running.Keys);
        _listener.Dispose();
        _stopping.Dispose();
    }

    /// <summary>One accepted connection and its connection to the target, pumped both ways.</summary>
    private sealed class Connection(Socket client, Socket upstream)
    {
        private int _reset;
        private volatile bool _leaveServerHanging;

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            await using var clientStream = new NetworkStream(client, ownsSocket: false);
            await using var upstreamStream = new NetworkStream(upstream, ownsSocket: false);
            await Task.WhenAll(
                PumpAsync(clientStream, upstream, upstreamStream, cancellationToken),
                PumpAsync(upstreamStream, client, clientStream, cancellationToken));
        }

        /// <summary>
        /// Copies until the source ends, then half-closes the destination, so an orderly close passes
        /// through; a failure in either direction resets both, so the other direction ends too.
        /// </summary>
        private async Task PumpAsync(NetworkStream from, Socket toSocket, NetworkStream to, CancellationToken cancellationToken)
        {
            try
            {
                await from.CopyToAsync(to, cancellationToken);
                toSocket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // Reset by a peer, by Cut() or by disposal.
                Reset();
            }
        }

        public void Reset(bool leaveServerHanging = false)
        {
            if (leaveServerHanging)
                _leaveServerHanging = true;
            if (Interlocked.Exchange(ref _reset, 1) != 0)
                return;
            TcpProxy.Reset(client);
            if (!_leaveServerHanging)
                TcpProxy.Reset(upstream);
        }

        /// <summary>Closes a server side left hanging by <see cref="Cut"/> (at disposal).</summary>
        public void ResetServer() => TcpProxy.Reset(upstream);
    }
}
