using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Position;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Hosting;

/// <summary>Exchange and queue layout on RabbitMQ; the in-memory bus uses MassTransit's defaults.</summary>
internal static class BusTopology
{
    /// <summary>
    /// Subscriber contracts go to topic exchanges as raw JSON (no MassTransit envelope, any language
    /// reads them): change sets routed by <c>source.schema.table</c>, logical messages by prefix.
    /// The bridge's own batches keep MassTransit's envelope on a direct exchange, routed by source.
    /// </summary>
    public static void ConfigureChangeSetPublishing(IRabbitMqBusFactoryConfigurator bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        // MassTransit indents JSON by default: a third of a change set's bytes would be white space.
        // The options are process-wide and frozen once used, so only the first bus of a process sets them.
        bus.ConfigureJsonSerializerOptions(options =>
        {
            if (!options.IsReadOnly)
                options.WriteIndented = false;
            return options;
        });
        bus.AddRawJsonSerializer(RawSerializerOptions.AnyMessageType);
        bus.Publish<Contracts.ChangeSet>(p => p.ExchangeType = ExchangeType.Topic);
        bus.Send<Contracts.ChangeSet>(s =>
        {
            s.UseSerializer(RawJsonContentType);
            s.UseRoutingKeyFormatter(context => Contracts.WireNames.RoutingKey(context.Message.Source, context.Message.Schema, context.Message.Table));
        });
        bus.Publish<Contracts.LogicalMessage>(p => p.ExchangeType = ExchangeType.Topic);
        bus.Send<Contracts.LogicalMessage>(s =>
        {
            s.UseSerializer(RawJsonContentType);
            s.UseRoutingKeyFormatter(context => context.Message.Prefix);
        });
        bus.Publish<ChangeBatch>(p => p.ExchangeType = ExchangeType.Direct);
        bus.Send<ChangeBatch>(s => s.UseRoutingKeyFormatter(context => context.Message.Source));
    }

    private const string RawJsonContentType = "application/json";
}

/// <summary>
/// One queue per source, bound to that source's change batches, consumed one message at a time by a
/// single active consumer: batches are applied in commit order, and another instance takes over when
/// this one dies. No retry policy and no error queue: the consumer retries a failing batch in place,
/// so nothing behind it can overtake it.
/// </summary>
internal sealed class BucketAssignmentConsumerDefinition : ConsumerDefinition<BucketAssignmentConsumer>
{
    private readonly SourceIdentity _source;

    public BucketAssignmentConsumerDefinition(SourceIdentity source)
    {
        ArgumentNullException.ThrowIfNull(source);
        _source = source;
        EndpointName = QueueName(source.Name);
        ConcurrentMessageLimit = 1;
    }

    public static string QueueName(string source) => $"synchro.{source}.bucket-assignment";

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<BucketAssignmentConsumer> consumerConfigurator, IRegistrationContext context)
    {
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit)
        {
            rabbit.ConfigureConsumeTopology = false;
            rabbit.SingleActiveConsumer = true;
            // Nothing may pile up in _skipped or _error queues for a person to purge. A part that cannot
            // even be deserialised is dropped unconfirmed: the slot reader re-reads it after ConfirmationTimeout.
            rabbit.DiscardSkippedMessages();
            rabbit.DiscardFaultedMessages();
            // Enough to keep the consumer busy; more would only hold parts in memory.
            rabbit.PrefetchCount = 4;
            rabbit.Bind(BridgeWireNames.ChangeBatchExchange, binding =>
            {
                binding.ExchangeType = ExchangeType.Direct;
                binding.RoutingKey = _source.Name;
            });
        }
    }
}

/// <summary>Confirmations go to a queue of this process alone: a hot standby must not take them.</summary>
internal sealed class ChangeSetAppliedConsumerDefinition : ConsumerDefinition<ChangeSetAppliedConsumer>
{
    public ChangeSetAppliedConsumerDefinition(SourceIdentity source, BridgeInstance instance)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(instance);
        EndpointName = $"synchro.{source.Name}.applied.{instance.Id}";
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
