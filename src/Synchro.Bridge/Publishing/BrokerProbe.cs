using RabbitMQ.Client;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Opens and closes one AMQP connection at start-up, so an unreachable or misconfigured broker is
/// reported at once instead of as endless reconnect attempts in the log.
/// </summary>
internal static class BrokerProbe
{
    public static async Task CheckAsync(Uri uri, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            Uri = uri,
            RequestedConnectionTimeout = timeout,
            AutomaticRecoveryEnabled = false,
            ClientProvidedName = "synchro-bridge start-up check",
        };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var connection = await factory.CreateConnectionAsync(deadline.Token);
            await connection.CloseAsync(deadline.Token);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var reason = e is OperationCanceledException ? $"no answer within {timeout.TotalSeconds:0} s" : Innermost(e).Message;
            throw new StartupCheckException(
                $"Cannot reach RabbitMQ at {Redacted(uri)} ({reason}). Start RabbitMQ, or fix Synchro:RabbitMq:Uri (host, port, user, password, virtual host).", e);
        }
    }

    private static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);

    private static string Redacted(Uri uri) => new UriBuilder(uri) { Password = string.IsNullOrEmpty(uri.UserInfo) ? "" : "***" }.Uri.ToString();
}
