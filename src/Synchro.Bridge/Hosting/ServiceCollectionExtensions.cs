using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Position;
using Synchro.Bridge.Publishing;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Hosting;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers the bridge: options (validated at start), start-up checks, the roles named in
    /// <c>Synchro:Roles</c>, and the MassTransit bus (RabbitMQ when <c>Synchro:RabbitMq:Uri</c> is set, else in memory).
    /// </summary>
    public static IServiceCollection AddSynchroBridge(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(SynchroOptions.SectionName);
        // Unknown keys and values of the wrong type are found on the raw section: binding would ignore
        // the first and throw on the second. The validator reports them with everything else at start.
        var shapeProblems = ConfigurationShape.Problems(section);
        // Roles and transport shape the registrations, so they are read now; everything else is validated at start.
        var settings = shapeProblems.Count == 0 ? section.Get<SynchroOptions>() ?? new SynchroOptions() : new SynchroOptions();

        services.AddOptions<SynchroOptions>().Configure(options =>
        {
            if (shapeProblems.Count == 0)
                section.Bind(options);
        }).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SynchroOptions>>(new SynchroOptionsValidator(shapeProblems));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<BridgeFailure>();
        services.AddSingleton(sp => NpgsqlDataSource.Create(SidecarConnectionString(Options(sp).Postgres.ConnectionString, sp.GetRequiredService<BridgeInstance>())));
        services.AddSingleton(sp =>
        {
            var postgres = Options(sp).Postgres;
            var standby = string.IsNullOrWhiteSpace(postgres.DecodingConnectionString)
                ? null
                : SidecarConnectionString(postgres.DecodingConnectionString, sp.GetRequiredService<BridgeInstance>());
            return new DecodingServer(sp.GetRequiredService<NpgsqlDataSource>(), WithValueTextSettings(postgres.ConnectionString), standby);
        });
        services.AddSingleton<SidecarSessions>();
        services.AddSingleton(sp => new SidecarTables(Options(sp).Postgres.SidecarSchema));
        services.AddSingleton<PendingChangelog>();
        services.AddSingleton<SourceGenerations>();
        services.AddSingleton<BucketRules>();
        services.AddSingleton<PostgresSidecarStore>();
        services.TryAddSingleton<ISidecarStore>(sp => sp.GetRequiredService<PostgresSidecarStore>());
        services.AddSingleton<RuleFailures>();
        services.AddSingleton<Replication.Snapshots.SnapshotJobs>();
        services.AddSingleton<PostgresPositionStore>();
        services.AddSingleton<PositionStoreCircuit>();
        services.TryAddSingleton<IPositionStore>(sp => new ResilientPositionStore(sp.GetRequiredService<PostgresPositionStore>(), sp.GetRequiredService<Polly.Registry.ResiliencePipelineProvider<string>>()));
        services.AddResiliencePipeline(ResilientPositionStore.PipelineName, (pipeline, context) =>
            ResilientPositionStore.Configure(pipeline, context.ServiceProvider.GetRequiredService<PositionStoreCircuit>(), Options(context.ServiceProvider).Replication.PositionStoreAttemptTimeout));
        services.TryAddSingleton<IApplyHolds, PostgresApplyHolds>();
        services.AddSingleton<ApplyStatus>();
        services.AddSingleton(sp =>
        {
            var replication = Options(sp).Replication;
            var database = new NpgsqlConnectionStringBuilder(Options(sp).Postgres.ConnectionString).Database ?? "";
            return new SourceIdentity(SourceIdentity.NameFrom(Options(sp).Source, database, replication.SlotName));
        });
        services.AddSingleton<ActiveRun>();
        services.AddSingleton<BridgeInstance>();
        services.AddSingleton<ChangeSetPublisher>();

        // Start-up checks are registered first: hosted services start in order, and the bus and
        // the slot reader must not start against a database or broker that failed them.
        services.AddHostedService<StartupService>();
        services.AddMassTransit(bus => ConfigureBus(bus, settings));
        services.AddOptions<MassTransitHostOptions>().Configure(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(30);
            o.StopTimeout = TimeSpan.FromSeconds(30);
            // A consumer retrying a held change set gives up its message this long after stop begins:
            // the message goes back to the queue (cancelled consumes are never moved to _error).
            o.ConsumerStopTimeout = TimeSpan.FromSeconds(5);
        });
        if (settings.Roles.HasFlag(BridgeRoles.Replication))
        {
            services.AddHostedService<ReplicationService>();
            services.AddReceiveEndpointObserver<ConfirmationEndpointObserver>();
            services.AddSingleton<PublishFaultObserver>();
            services.AddPublishObserver(sp => sp.GetRequiredService<PublishFaultObserver>());
            services.AddSendObserver(sp => sp.GetRequiredService<PublishFaultObserver>());
        }
        services.AddSingleton<BridgeHealth>();
        services.AddOperatorEndpoints(settings);
        if (!string.IsNullOrWhiteSpace(settings.Health.File))
            services.AddHostedService<HealthFileWriter>();
        return services;
    }

    private static void ConfigureBus(IBusRegistrationConfigurator bus, SynchroOptions settings)
    {
        var buckets = settings.Roles.HasFlag(BridgeRoles.Buckets);
        if (buckets)
            bus.AddConsumer<BucketAssignmentConsumer>().ExcludeFromConfigureEndpoints();
        if (settings.Roles.HasFlag(BridgeRoles.Replication))
            bus.AddConsumer<ChangeSetAppliedConsumer, ChangeSetAppliedConsumerDefinition>();

        void ConfigureEndpoints<T>(IBusRegistrationContext context, IBusFactoryConfigurator<T> cfg)
            where T : IReceiveEndpointConfigurator
        {
            if (buckets)
                BucketEndpoints.Configure(cfg, context, context.GetRequiredService<SourceIdentity>().Name, settings.Apply.Partitions, settings.RabbitMq.QueueType);
            cfg.ConfigureEndpoints(context);
        }

        if (string.IsNullOrWhiteSpace(settings.RabbitMq.Uri))
        {
            bus.UsingInMemory((context, cfg) =>
            {
                cfg.Publish<ChangeBatch>(p => p.ExchangeType = MassTransit.Transports.Fabric.ExchangeType.Direct);
                cfg.Send<ChangeBatch>(s => s.UseRoutingKeyFormatter(c => BucketEndpoints.RoutingKey(c.Message.Source, c.Message.Partition)));
                ConfigureEndpoints(context, cfg);
            });
            return;
        }

        bus.UsingRabbitMq((context, cfg) =>
        {
            cfg.Host(new Uri(settings.RabbitMq.Uri), host =>
            {
                host.RequestedConnectionTimeout(settings.RabbitMq.ConnectTimeout);
                // Said explicitly, not left to a default: a publish completes only once the broker has the message.
                host.PublisherConfirmation = true;
            });
            BusTopology.ConfigureChangeSetPublishing(cfg);
            ConfigureEndpoints(context, cfg);
        });
    }

    /// <summary>
    /// The sidecar sessions' connection string. Every session carries the instance's name, as its
    /// replication session does, so a session of ours that a broken connection left behind is told
    /// apart from another client's (<see cref="SidecarSessions"/>). And PostgreSQL probes the client's
    /// side with TCP keepalives after 30 s idle (3 probes, 10 s apart): across a real network partition
    /// it then ends such a session by itself within about a minute, with its locks, even when the process
    /// that opened it is gone. Set first, so the same settings in the user's Options win.
    /// </summary>
    internal static string SidecarConnectionString(string connectionString, BridgeInstance instance)
    {
        var builder = new NpgsqlConnectionStringBuilder(WithValueTextSettings(connectionString)) { ApplicationName = instance.ApplicationName };
        builder.Options = ("-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 " + builder.Options).Trim();
        return builder.ConnectionString;
    }

    /// <summary>
    /// The settings that shape value texts, the same on every session of the bridge: the walsender
    /// (the stream), the snapshot and backfill reads and the unchanged-TOAST lookups, whatever the
    /// server, the database or the role set (README: Column values). Set first, so the user's own
    /// Options still win, for all sessions alike.
    /// </summary>
    internal const string ValueTextSettings = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex";

    internal static string WithValueTextSettings(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Options = (ValueTextSettings + " " + builder.Options).Trim();
        return builder.ConnectionString;
    }

    private static SynchroOptions Options(IServiceProvider services) => services.GetRequiredService<IOptions<SynchroOptions>>().Value;
}
