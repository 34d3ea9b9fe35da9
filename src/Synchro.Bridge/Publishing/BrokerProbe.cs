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
            // The broker refuses a virtual host (or a user's access to it) by closing the connection
            // it just opened: only the first channel tells.
            await using (await connection.CreateChannelAsync(cancellationToken: deadline.Token))
            {
            }

            await connection.CloseAsync(deadline.Token);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var reason = e switch
            {
                OperationCanceledException => $"no answer within {timeout.TotalSeconds:0} s",
                RabbitMQ.Client.Exceptions.OperationInterruptedException { ShutdownReason: { } closed } => $"the broker closed the connection: {closed.ReplyText}",
                _ => Innermost(e).Message,
            };
            throw new StartupCheckException(
                $"Cannot reach RabbitMQ at {Redacted(uri)} ({reason}). Start RabbitMQ, or fix Synchro:RabbitMq:Uri (host, port, user, password, virtual host).", e);
        }
    }

    /// <summary>
    /// Earlier versions bound the bucket queue's exchange to the change-set exchange (per table, or
    /// <c>#</c>); the bucket consumer now takes batch parts only, so those bindings would fill the
    /// queue with messages nobody consumes. Removing a binding that is not there changes nothing.
    /// </summary>
    public static async Task RemoveBindingsAsync(Uri uri, TimeSpan timeout, string destinationExchange, string sourceExchange, IEnumerable<string> routingKeys, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = uri, RequestedConnectionTimeout = timeout, AutomaticRecoveryEnabled = false, ClientProvidedName = "synchro-bridge start-up" };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        foreach (var key in routingKeys)
        {
            // A missing exchange closes the channel (404): then there is nothing to remove.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                await channel.ExchangeUnbindAsync(destinationExchange, sourceExchange, key, cancellationToken: cancellationToken);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
            {
                return;
            }
        }

        await connection.CloseAsync(cancellationToken);
    }

    private static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);

    private static string Redacted(Uri uri) => new UriBuilder(uri) { Password = string.IsNullOrEmpty(uri.UserInfo) ? "" : "***" }.Uri.ToString();
}
