using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Publishing;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// Runs before the bus and the slot reader start: checks the database and the broker, migrates the
/// sidecar tables, prepares publication and slot. Any failure stops start-up with its message.
/// </summary>
internal sealed class StartupService(IOptions<SynchroOptions> options, NpgsqlDataSource dataSource, SidecarTables sidecar) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var setup = new SourceSetup(dataSource, settings);
        await using (var connection = await setup.ConnectAsync(cancellationToken))
        {
            await setup.CheckTablesAsync(connection, cancellationToken);
            await sidecar.MigrateAsync(dataSource, cancellationToken);
            if (settings.Roles.HasFlag(BridgeRoles.Replication))
                await setup.PrepareReplicationAsync(connection, cancellationToken);
        }

        if (!string.IsNullOrWhiteSpace(settings.RabbitMq.Uri))
            await BrokerProbe.CheckAsync(new Uri(settings.RabbitMq.Uri), settings.RabbitMq.ConnectTimeout, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
