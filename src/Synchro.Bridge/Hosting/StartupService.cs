using Synchro.Bridge.Changes;
using Synchro.Bridge.Buckets.Rules;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Position;
using Synchro.Bridge.Publishing;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Replication.Snapshots;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// Runs before the bus and the slot reader start: checks the database and the broker, migrates the
/// sidecar tables, prepares publication and slot. Any failure stops start-up with its message.
/// </summary>
internal sealed class StartupService(IOptions<SynchroOptions> options, NpgsqlDataSource dataSource, DecodingServer decoding, SidecarTables sidecar, IPositionStore positions, SnapshotJobs snapshotJobs, SourceIdentity source, BucketRules rules) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var setup = new SourceSetup(dataSource, settings, positions, snapshotJobs, decoding);
        await using (var connection = await setup.ConnectAsync(cancellationToken))
        {
            SourceSetup.CheckServerVersion(connection);
            await setup.CheckTablesAsync(connection, cancellationToken);
            await setup.IdentifyAsync(connection, source, cancellationToken);
            var replicates = settings.Roles.HasFlag(BridgeRoles.Replication);
            if (replicates)
                await SourceSetup.CheckReplicationPrerequisitesAsync(connection, cancellationToken);
            await using var slotConnection = replicates && decoding.OnStandby
                ? await SourceSetup.ConnectDecodingStandbyAsync(connection, decoding, cancellationToken)
                : null;
            // Before anything is created: a bridge that cannot reach its broker writes nothing.
            if (!string.IsNullOrWhiteSpace(settings.RabbitMq.Uri))
                await BrokerProbe.CheckAsync(new Uri(settings.RabbitMq.Uri), settings.RabbitMq.ConnectTimeout, cancellationToken);
            if (!string.IsNullOrWhiteSpace(settings.RabbitMq.Uri) && settings.Roles.HasFlag(BridgeRoles.Buckets))
            {
                await BucketQueueTypes.CheckAsync(new Uri(settings.RabbitMq.Uri), settings.RabbitMq.ConnectTimeout,
                    Enumerable.Range(0, settings.Apply.Partitions).Select(p => BucketEndpoints.QueueName(source.Name, p)), settings.RabbitMq.QueueType, cancellationToken);
            }
            await MigrateAsync(connection.UserName, cancellationToken);
            // The slot reader needs them too: a snapshot reads parents' tables before their children's.
            rules.Load(await LoadRulesAsync(connection, settings, cancellationToken));
            if (settings.Roles.HasFlag(BridgeRoles.Replication))
                await setup.PrepareReplicationAsync(connection, slotConnection ?? connection, source.Name, rules.Loaded, cancellationToken);
        }

        if (!string.IsNullOrWhiteSpace(settings.RabbitMq.Uri) && settings.Roles.HasFlag(BridgeRoles.Buckets))
        {
            var legacyKeys = settings.Tables.Select(t => TableName.Parse(t.Name)).Select(t => Contracts.WireNames.RoutingKey(source.Name, t.Schema, t.Name)).Append("#");
            await BrokerProbe.RemoveBindingsAsync(new Uri(settings.RabbitMq.Uri), settings.RabbitMq.ConnectTimeout, BucketEndpoints.QueueName(source.Name), BridgeWireNames.LegacyChangeSetExchange, legacyKeys, cancellationToken);
        }
    }

    private async Task MigrateAsync(string? role, CancellationToken cancellationToken)
    {
        try
        {
            await sidecar.MigrateAsync(dataSource, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new StartupCheckException(
                $"Role '{role}' may not create the sidecar tables in schema {sidecar.Schema} ({e.MessageText}). Run GRANT CREATE ON SCHEMA {sidecar.Schema} TO {role}, or set Synchro:Postgres:SidecarSchema to a schema it owns.", e);
        }
    }

    /// <summary>The bucket rules, checked against the database: columns, foreign keys, functions, cycles.</summary>
    public static async Task<BucketRuleSet> LoadRulesAsync(NpgsqlConnection connection, SynchroOptions settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var tables = settings.Tables.Select(t => TableName.Parse(t.Name)).ToList();
        var catalog = await RuleCatalog.ReadAsync(connection, tables, RuleSetBuilder.Functions(settings.Tables), cancellationToken);
        return RuleSetBuilder.Build(settings.Tables, settings.Buckets, catalog);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
