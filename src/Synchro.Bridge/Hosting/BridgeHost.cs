using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// Builds the host the commands run, from appsettings.json, an optional file, environment and
/// overrides: a web host, whose server only listens when the bridge runs (<c>Synchro:Http:Urls</c>).
/// </summary>
public static class BridgeHost
{
    public static IHost Build(string? configFile = null, IEnumerable<KeyValuePair<string, string?>>? overrides = null, LogLevel minimumLevel = LogLevel.Information)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        if (configFile is not null)
            builder.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        if (overrides is not null)
            builder.Configuration.AddInMemoryCollection(overrides);

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(minimumLevel);
        // Start-up failures are printed by the command line as one actionable line, not as the host's stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        builder.Logging.AddFilter("MassTransit", LogLevel.Warning);
        // Polly reports every attempt at Information; retries that matter surface through our own logs and health.
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        // Kestrel and request logs would drown the bridge's own; a port already taken still fails the start.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        builder.Services.AddSynchroBridge(builder.Configuration);
        // Only the one key: binding the whole section here would throw on a mistyped value before the
        // validator can report it.
        OperatorEndpoints.ConfigureServer(builder, builder.Configuration[$"{SynchroOptions.SectionName}:Http:Urls"] ?? new HttpOptions().Urls);
        var app = builder.Build();
        app.MapOperatorEndpoints();
        return app;
    }
}
