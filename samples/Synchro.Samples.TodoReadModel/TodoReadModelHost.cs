using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Subscriptions;

namespace Synchro.Samples.TodoReadModel;

/// <summary>The service: a Generic Host whose one consumer keeps <c>todo_read_model</c> equal to <c>public.todos</c>.</summary>
public static class TodoReadModelHost
{
    /// <summary>Builds the host from the environment and <paramref name="args"/>, then <paramref name="overrides"/>.</summary>
    public static IHost Build(string[] args, IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        var builder = Host.CreateApplicationBuilder(args);
        if (overrides is not null)
            builder.Configuration.AddInMemoryCollection(overrides);
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.AddFilter("MassTransit", LogLevel.Warning);

        builder.Services.AddOptions<ReadModelOptions>()
            .BindConfiguration(ReadModelOptions.SectionName)
            .Validate(o => !string.IsNullOrWhiteSpace(o.Postgres), "ReadModel:Postgres is required: the connection string of the read model's own database.")
            .Validate(o => Uri.TryCreate(o.RabbitMq, UriKind.Absolute, out _), "ReadModel:RabbitMq is required: the AMQP URI of the bridge's RabbitMQ (amqp://user:password@host:5672/).")
            .ValidateOnStart();
        builder.Services.AddSingleton(services => NpgsqlDataSource.Create(Options(services).Postgres));
        builder.Services.AddHostedService<ReadModelLifecycle>();

        builder.Services.AddMassTransit(bus =>
        {
            bus.AddConsumer<TodoChangesConsumer>();
            bus.UsingRabbitMq((context, rabbit) =>
            {
                var options = Options(context);
                rabbit.Host(new Uri(options.RabbitMq));
                rabbit.ReceiveEndpoint(options.Queue, endpoint =>
                {
                    // Replicated by RabbitMQ; with several instances one consumes and the others stand by, so sets stay in order.
                    endpoint.SetQuorumQueue();
                    endpoint.SingleActiveConsumer = true;
                    endpoint.PurgeOnStartup = options.Reset;
                    // A set that fails (the database away) is tried again before the next one is taken. After
                    // the last try it goes to the queue's _error queue; move it back once the cause is fixed.
                    endpoint.UseMessageRetry(retry => retry.Exponential(10, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1)));
                    endpoint.SubscribeToChanges(options.Source, "public.todos");
                    endpoint.ConfigureConsumer<TodoChangesConsumer>(context);
                });
            });
        });
        // The host has started only once the queue is bound and consuming (ReadModelLifecycle then says so).
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        return builder.Build();
    }

    private static ReadModelOptions Options(IServiceProvider services) => services.GetRequiredService<IOptions<ReadModelOptions>>().Value;
}
