using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Position;
using Synchro.Contracts;

namespace Synchro.Bridge.Hosting;

/// <summary>Exchange and queue layout on RabbitMQ; the in-memory bus uses MassTransit's defaults.</summary>
internal static class BusTopology
{
    /// <summary>Change sets go to one topic exchange, routed by <c>schema.table</c>, so any service can bind to the tables it wants.</summary>
    public static void ConfigureChangeSetPublishing(IRabbitMqBusFactoryConfigurator bus)
    {
        bus.Publish<ChangeSet>(p => p.ExchangeType = ExchangeType.Topic);
        bus.Send<ChangeSet>(s => s.UseRoutingKeyFormatter(context => WireNames.RoutingKey(context.Message.Schema, context.Message.Table)));
        bus.Publish<LogicalMessage>(p => p.ExchangeType = ExchangeType.Topic);
        bus.Send<LogicalMessage>(s => s.UseRoutingKeyFormatter(context => context.Message.Prefix));
    }
}

/// <summary>Identifies one bridge host; its confirmation queue is its own.</summary>
internal sealed class BridgeInstance
{
    public string Id { get; } = Guid.NewGuid().ToString("N")[..12];
}

/// <summary>
/// One queue per source, consumed one message at a time by a single active consumer: changes of a
/// record are applied in commit order, and another instance takes over when this one dies.
/// </summary>
internal sealed class BucketAssignmentConsumerDefinition : ConsumerDefinition<BucketAssignmentConsumer>
{
    public BucketAssignmentConsumerDefinition(IOptions<SynchroOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        EndpointName = $"synchro.{options.Value.Replication.SlotName}.bucket-assignment";
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<BucketAssignmentConsumer> consumerConfigurator, IRegistrationContext context)
    {
        // A failing change set is retried in place (order is kept), then moved to the _error queue;
        // it is never confirmed, so the acknowledged LSN stays before it.
        endpointConfigurator.UseMessageRetry(r => r.Exponential(5, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(500)));
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit)
        {
            rabbit.ConfigureConsumeTopology = false;
            rabbit.SingleActiveConsumer = true;
            // Enough to keep the consumer busy; more would only hold change sets in memory.
            rabbit.PrefetchCount = 8;
            rabbit.Bind(WireNames.ChangeSetExchange, binding =>
            {
                binding.ExchangeType = ExchangeType.Topic;
                binding.RoutingKey = "#";
            });
        }
    }
}

/// <summary>Confirmations go to a queue of this process alone: a hot standby must not take them.</summary>
internal sealed class ChangeSetAppliedConsumerDefinition : ConsumerDefinition<ChangeSetAppliedConsumer>
{
    public ChangeSetAppliedConsumerDefinition(IOptions<SynchroOptions> options, BridgeInstance instance)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(instance);
        EndpointName = $"synchro.{options.Value.Replication.SlotName}.applied.{instance.Id}";
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<ChangeSetAppliedConsumer> consumerConfigurator, IRegistrationContext context)
    {
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit)
        {
            // Lost with the process on purpose: a new run replays from the slot and is confirmed anew.
            rabbit.AutoDelete = true;
            rabbit.Durable = false;
        }
    }
}
