using MassTransit;
using RabbitMQ.Client;
using Synchro.Contracts;

namespace Synchro.Subscriptions;

/// <summary>Binds a RabbitMQ receive endpoint to the change sets of chosen tables.</summary>
public static class ChangeSubscriptions
{
    /// <summary>
    /// Binds this endpoint's queue to the change sets of <paramref name="tables"/> from every source,
    /// and reads them as raw JSON (<see cref="ChangeSet"/>). See <see cref="SubscribeToChanges(IRabbitMqReceiveEndpointConfigurator, string, string[])"/>.
    /// </summary>
    public static void SubscribeToChanges(this IRabbitMqReceiveEndpointConfigurator endpoint, params string[] tables) =>
        SubscribeToChanges(endpoint, "*", tables);

    /// <summary>
    /// Binds this endpoint's queue to the change sets of <paramref name="tables"/> from
    /// <paramref name="source"/>, reads them as raw JSON (<see cref="ChangeSet"/>), and handles one
    /// message at a time, so each table's changes are applied in commit order.
    /// </summary>
    /// <param name="endpoint">The receive endpoint (its queue is yours: durable, and a quorum queue in production).</param>
    /// <param name="source">The source's name (<c>Synchro:Source</c>), or <c>*</c> for every source.</param>
    /// <param name="tables"><c>schema.table</c>; <c>*</c> stands for one whole name (<c>public.*</c>, <c>*.orders</c>); <c>#</c> for every table.</param>
    /// <exception cref="ArgumentException">A table is not of the form <c>schema.table</c>.</exception>
    public static void SubscribeToChanges(this IRabbitMqReceiveEndpointConfigurator endpoint, string source, params string[] tables)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrEmpty(source);
        ArgumentNullException.ThrowIfNull(tables);
        if (tables.Length == 0)
            throw new ArgumentException("Name at least one table (schema.table, public.*, or # for all).", nameof(tables));
        if (source.Contains('.', StringComparison.Ordinal) || source.Contains('#', StringComparison.Ordinal))
            throw new ArgumentException($"'{source}' is not a source name: a source's name has no dots (use * for every source).", nameof(source));

        var keys = tables.Select(table => RoutingKeyOf(source, table)).ToList();
        ReadRawJson(endpoint);
        foreach (var key in keys)
            Bind(endpoint, WireNames.ChangeSetExchange, key);
    }

    /// <summary>Binds this endpoint's queue to the logical decoding messages with these prefixes (<c>#</c> for all), read as <see cref="LogicalMessage"/>.</summary>
    public static void SubscribeToLogicalMessages(this IRabbitMqReceiveEndpointConfigurator endpoint, params string[] prefixes)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(prefixes);
        ReadRawJson(endpoint);
        foreach (var prefix in prefixes)
            Bind(endpoint, WireNames.LogicalMessageExchange, prefix);
    }

    /// <summary>The routing key that selects <paramref name="table"/> (<c>schema.table</c>, wildcards allowed) of <paramref name="source"/>.</summary>
    public static string RoutingKeyOf(string source, string table)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(table);
        if (table == "#")
            return source == "*" ? "#" : source + ".#";
        var parts = table.Split('.');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p.Contains('#', StringComparison.Ordinal) || (p.Contains('*', StringComparison.Ordinal) && p != "*")))
            throw new ArgumentException($"'{table}' is not a table to subscribe to: write schema.table (public.orders), with * for a whole name (public.*), or # for every table.", nameof(table));
        return WireNames.RoutingKey(source, parts[0], parts[1]);
    }

    private static void ReadRawJson(IRabbitMqReceiveEndpointConfigurator endpoint)
    {
        // Bindings are ours; MassTransit would otherwise bind an exchange per message type.
        endpoint.ConfigureConsumeTopology = false;
        endpoint.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType, isDefault: true);
        // One change set at a time: a table's changes arrive in commit order and must be applied so.
        endpoint.ConcurrentMessageLimit = 1;
    }

    private static void Bind(IRabbitMqReceiveEndpointConfigurator endpoint, string exchange, string routingKey) =>
        endpoint.Bind(exchange, binding =>
        {
            binding.ExchangeType = ExchangeType.Topic;
            binding.Durable = true;
            binding.RoutingKey = routingKey;
        });
}
