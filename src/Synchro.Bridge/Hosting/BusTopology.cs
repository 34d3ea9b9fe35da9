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
        bus.Send<ChangeBatch>(s => s.UseRoutingKeyFormatter(context => BucketEndpoints.RoutingKey(context.Message.Source, context.Message.Partition)));
    }

    private const string RawJsonContentType = "application/json";
}

/// <summary>
/// One queue per apply partition of a source, bound to that partition's change batches, consumed one
/// message at a time by a single active consumer: a partition's batches are applied in commit order,
/// and another instance takes over when this one dies. No retry policy and no error queue: the
/// consumer retries a failing batch in place, so nothing behind it can overtake it.
/// </summary>
internal static class BucketEndpoints
{
    /// <summary>Partition 0 keeps the name of the single queue of earlier versions.</summary>
    public static string QueueName(string source, int partition = 0) =>
        partition == 0 ? $"synchro.{source}.bucket-assignment" : $"synchro.{source}.bucket-assignment.{partition}";

    /// <summary>The routing key of a partition's batches on <see cref="BridgeWireNames.ChangeBatchExchange"/>.</summary>
    public static string RoutingKey(string source, int partition) => partition == 0 ? source : $"{source}.{partition}";

    /// <summary>The partition a bucket queue serves, read back from its address.</summary>
    public static int PartitionOf(Uri? inputAddress)
    {
        var name = inputAddress?.AbsolutePath.Split('/')[^1] ?? "";
        var dot = name.LastIndexOf('.');
        return dot >= 0 && int.TryParse(name[(dot + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var partition) ? partition : 0;
    }

    public static void Configure(IBusFactoryConfigurator bus, IBusRegistrationContext context, string source, int partitions, BucketQueueType queueType = BucketQueueType.Quorum)
    {
        ArgumentNullException.ThrowIfNull(bus);
        for (var partition = 0; partition < partitions; partition++)
        {
            var routingKey = RoutingKey(source, partition);
            bus.ReceiveEndpoint(QueueName(source, partition), endpoint =>
            {
                endpoint.ConcurrentMessageLimit = 1;
                switch (endpoint)
                {
                    case IRabbitMqReceiveEndpointConfigurator rabbit:
                        // A quorum queue keeps its messages on a majority of the cluster's nodes; its type is fixed at declaration
                        // (BucketQueueTypes says what to do when an existing queue has the other one).
                        if (queueType == BucketQueueType.Quorum)
                            rabbit.SetQuorumQueue();
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
                            binding.RoutingKey = routingKey;
                        });
                        break;
                    case IInMemoryReceiveEndpointConfigurator memory:
                        memory.ConfigureConsumeTopology = false;
                        memory.Bind<ChangeBatch>(MassTransit.Transports.Fabric.ExchangeType.Direct, routingKey);
                        break;
                }

                endpoint.ConfigureConsumer<BucketAssignmentConsumer>(context);
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
