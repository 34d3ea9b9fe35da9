using System.Collections.Concurrent;
using MassTransit;
using RabbitMQ.Client;
using Synchro.Bridge.Hosting;
using Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// Another service on the bus, as a user would write one: its own queue bound to the change-set
/// exchange for the routing keys it wants, and the confirmations as they pass.
/// </summary>
internal sealed class ChangeSetSubscriber : IAsyncDisposable
{
    private readonly IBusControl _bus;

    private ChangeSetSubscriber(IBusControl bus) => _bus = bus;

    public ConcurrentQueue<ChangeSet> Received { get; } = new();

    public ConcurrentQueue<ChangeSetApplied> Confirmations { get; } = new();

    /// <summary>The batches the bucket consumer receives, when the subscriber was started with their source.</summary>
    public ConcurrentQueue<ChangeBatch> Batches { get; } = new();

    public ConcurrentQueue<LogicalMessage> Messages { get; } = new();

    /// <summary>Every change received, in order of arrival.</summary>
    public List<RowChange> Changes => Received.SelectMany(s => s.Changes).ToList();

    public IPublishEndpoint Publisher => _bus;

    public static Task<ChangeSetSubscriber> StartAsync(Uri amqp, string queue, params string[] routingKeys) =>
        StartAsync(amqp, queue, routingKeys, []);

    public static async Task<ChangeSetSubscriber> StartAsync(Uri amqp, string queue, string[] routingKeys, string[] messagePrefixes, string? batchesOfSource = null)
    {
        ChangeSetSubscriber? subscriber = null;
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(amqp);
            BusTopology.ConfigureChangeSetPublishing(cfg);
            cfg.ReceiveEndpoint(queue, endpoint =>
            {
                BindTopic(endpoint, WireNames.ChangeSetExchange, routingKeys);

                endpoint.Handler<ChangeSet>(context =>
                {
                    subscriber!.Received.Enqueue(context.Message);
                    return Task.CompletedTask;
                });
            });
            if (messagePrefixes.Length > 0)
            {
                cfg.ReceiveEndpoint(queue + ".messages", endpoint =>
                {
                    BindTopic(endpoint, WireNames.LogicalMessageExchange, messagePrefixes);

                    endpoint.Handler<LogicalMessage>(context =>
                    {
                        subscriber!.Messages.Enqueue(context.Message);
                        return Task.CompletedTask;
                    });
                });
            }

            if (batchesOfSource is not null)
            {
                cfg.ReceiveEndpoint(queue + ".batches", endpoint =>
                {
                    endpoint.ConfigureConsumeTopology = false;
                    endpoint.Bind(WireNames.ChangeBatchExchange, binding =>
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

    private static void BindTopic(IRabbitMqReceiveEndpointConfigurator endpoint, string exchange, string[] routingKeys)
    {
        endpoint.ConfigureConsumeTopology = false;
        foreach (var key in routingKeys)
        {
            endpoint.Bind(exchange, binding =>
            {
                binding.ExchangeType = ExchangeType.Topic;
                binding.RoutingKey = key;
            });
        }
    }

    public async ValueTask DisposeAsync() => await _bus.StopAsync(TimeSpan.FromSeconds(30));
}
