using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// A queue's type is fixed when it is declared: a bucket queue an earlier version declared as a
/// classic queue refuses the quorum declaration (and the other way round). MassTransit retries the
/// declaration until the bus start times out, so start-up asks first and says what to do.
/// </summary>
internal static class BucketQueueTypes
{
    /// <summary>
    /// Declares each existing bucket queue again as MassTransit will (durable, single active consumer,
    /// the configured type): a no-op for a queue of that type, RabbitMQ's refusal for the other.
    /// A queue that is not there yet is left for MassTransit to create.
    /// </summary>
    public static async Task CheckAsync(Uri uri, TimeSpan timeout, IEnumerable<string> queues, BucketQueueType type, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = uri, RequestedConnectionTimeout = timeout, AutomaticRecoveryEnabled = false, ClientProvidedName = "synchro-bridge start-up" };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        var arguments = new Dictionary<string, object?> { ["x-single-active-consumer"] = true };
        if (type == BucketQueueType.Quorum)
            arguments["x-queue-type"] = "quorum";
        foreach (var queue in queues)
        {
            // A refusal closes the channel: one each.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
            }
            catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
            {
                continue;
            }

            await using var declaring = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                await declaring.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments, cancellationToken: cancellationToken);
            }
            catch (OperationInterruptedException e) when (Explain(e, queue, type) is { } explained)
            {
                throw explained;
            }
            catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 406)
            {
                // Another difference (an argument set by hand): MassTransit's own declaration reports it.
            }
        }

        await connection.CloseAsync(cancellationToken);
    }

    /// <param name="declared">The type the refused declaration of <paramref name="queue"/> asked for: the queue has the other one.</param>
    /// <returns>The start-up error to report, or null when <paramref name="error"/> is not such a refusal.</returns>
    public static StartupCheckException? Explain(Exception error, string queue, BucketQueueType declared)
    {
        ArgumentNullException.ThrowIfNull(error);
        for (var e = error; e is not null; e = e.InnerException)
        {
            // Only the start of RabbitMQ's words: it cuts its reply text at 255 characters, and queue names are long.
            if (!e.Message.Contains("inequivalent arg 'x-queue-type'", StringComparison.Ordinal))
                continue;
            var current = declared == BucketQueueType.Quorum ? BucketQueueType.Classic : BucketQueueType.Quorum;
            return new StartupCheckException(
                $"RabbitMQ has the bucket queue '{queue}' as a {current.ToString().ToLowerInvariant()} queue (declared by an earlier version, or by hand), and Synchro:RabbitMq:QueueType is {declared}: a queue's type cannot change. " +
                $"Either set Synchro:RabbitMq:QueueType={current}, or stop every bridge of this source, delete the queue (rabbitmqctl delete_queue {queue}) and start again: nothing is lost, as the slot is acknowledged only for batches that were applied, and the rest is read again.",
                error);
        }

        return null;
    }
}
