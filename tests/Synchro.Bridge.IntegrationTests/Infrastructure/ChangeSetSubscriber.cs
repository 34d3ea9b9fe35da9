using System.Collections.Concurrent;
using MassTransit;
using RabbitMQ.Client;
using Synchro.Bridge.Changes;
using Synchro.Bridge.Hosting;
using Synchro.Subscriptions;
using Change = Synchro.Contracts.Change;
using ChangeSet = Synchro.Contracts.ChangeSet;
using LogicalMessage = Synchro.Contracts.LogicalMessage;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// Another service on the bus, as a user would write one with the subscriber kit: its own queue
/// bound to the tables it wants, and (for tests of the bridge itself) the batches and confirmations
/// between the bridge's roles as they pass. Every subscriber message is also kept as it arrived.
/// </summary>
internal sealed class ChangeSetSubscriber : IAsyncDisposable
{
    private readonly IBusControl _bus;

    private ChangeSetSubscriber(IBusControl bus) => _bus = bus;

    public ConcurrentQueue<ChangeSet> Received { get; } = new();

    /// <summary>Every change set with the generation its headers name, in order of arrival.</summary>
    public ConcurrentQueue<(ChangeGeneration Generation, ChangeSet Set)> Arrivals { get; } = new();

    /// <summary>Every subscriber message as it came off the queue: exchange, routing key, AMQP properties, raw body.</summary>
    public ConcurrentQueue<RawDelivery> Raw { get; } = new();

    public ConcurrentQueue<ChangeSetApplied> Confirmations { get; } = new();

    /// <summary>The batches the bucket consumer receives, when the subscriber was started with their source.</summary>
    public ConcurrentQueue<ChangeBatch> Batches { get; } = new();

    public ConcurrentQueue<LogicalMessage> Messages { get; } = new();

    /// <summary>Every change received, in order of arrival.</summary>
    public List<Change> Changes => Received.SelectMany(s => s.Changes).ToList();

    public IPublishEndpoint Publisher => _bus;

    public static Task<ChangeSetSubscriber> StartAsync(Uri amqp, string queue, params string[] tables) =>
        StartAsync(amqp, queue, tables, []);

    public static async Task<ChangeSetSubscriber> StartAsync(Uri amqp, string queue, string[] tables, string[] messagePrefixes, string? batchesOfSource = null)
    {
        ChangeSetSubscriber? subscriber = null;
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(amqp);
            BusTopology.ConfigureChangeSetPublishing(cfg);
            if (tables.Length > 0)
            {
                cfg.ReceiveEndpoint(queue, endpoint =>
                {
                    endpoint.SubscribeToChanges(tables);
                    endpoint.Handler<ChangeSet>(context =>
                    {
                        subscriber!.Keep(context);
                        subscriber.Received.Enqueue(context.Message);
                        subscriber.Arrivals.Enqueue((ChangeGeneration.Of(context), context.Message));
                        return Task.CompletedTask;
                    });
                });
            }

            if (messagePrefixes.Length > 0)
            {
                cfg.ReceiveEndpoint(queue + ".messages", endpoint =>
                {
                    endpoint.SubscribeToLogicalMessages(messagePrefixes);
                    endpoint.Handler<LogicalMessage>(context =>
                    {
                        subscriber!.Keep(context);
                        subscriber.Messages.Enqueue(context.Message);
                        return Task.CompletedTask;
                    });
                });
            }

            if (batchesOfSource is not null)
            {
                cfg.ReceiveEndpoint(queue + ".batches", endpoint =>
                {
                    endpoint.ConfigureConsumeTopology = false;
                    endpoint.Bind(BridgeWireNames.ChangeBatchExchange, binding =>
                    {
                        binding.ExchangeType = ExchangeType.Direct;
                        binding.RoutingKey = batchesOfSource;
                    });
                    endpoint.Handler<ChangeBatch>(context =>
                    {
                        subscriber!.Batches.Enqueue(context.Message);
                        return Task.CompletedTask;
                    });
                });
            }

            cfg.ReceiveEndpoint(queue + ".confirmations", endpoint => endpoint.Handler<ChangeSetApplied>(context =>
            {
                subscriber!.Confirmations.Enqueue(context.Message);
                return Task.CompletedTask;
            }));
        });
        subscriber = new ChangeSetSubscriber(bus);
        await bus.StartAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        return subscriber;
    }

    private void Keep(ConsumeContext context)
    {
        // The AMQP properties as RabbitMQ delivered them, not as MassTransit maps them; RabbitMQ.Client
        // hands string header values over as their UTF-8 bytes.
        var delivery = context.ReceiveContext.GetPayload<RabbitMqBasicConsumeContext>();
        Raw.Enqueue(new RawDelivery(
            delivery.Exchange,
            context.RoutingKey() ?? "",
            delivery.Properties.ContentType ?? "",
            delivery.Properties.MessageId,
            (delivery.Properties.Headers ?? new Dictionary<string, object?>()).ToDictionary(h => h.Key, h => h.Value is byte[] utf8 ? System.Text.Encoding.UTF8.GetString(utf8) : h.Value),
            context.ReceiveContext.GetBody(),
            delivery.Properties.Persistent));
    }

    public async ValueTask DisposeAsync() => await _bus.StopAsync(TimeSpan.FromSeconds(30));
}

/// <summary>A message as RabbitMQ delivered it: exchange, routing key, AMQP properties and body bytes.</summary>
/// <param name="Persistent">delivery_mode 2: the broker writes the message to disk on a durable queue.</param>
internal sealed record RawDelivery(string Exchange, string RoutingKey, string ContentType, string? MessageId, IReadOnlyDictionary<string, object?> Headers, byte[] Body, bool Persistent);
