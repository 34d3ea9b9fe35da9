using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Synchro.Bridge.Hosting;

/// <summary>The <c>synchro-bridge</c> command line: run, check, health, status, failures, snapshot, backfill, rebuild, demo.</summary>
public static class CommandLine
{
    private const int Failed = 1;
    private const int Misconfigured = 2;

    public static RootCommand Build()
    {
        var configOption = new Option<FileInfo?>("--config") { Description = "A JSON file with a Synchro section (added after appsettings.json, before environment variables)." };

        var acceptGapOption = new Option<bool>("--accept-gap")
        {
            Description = "Start although the slot is missing or starts after sync_wal_position, skipping the changes in between (they are lost). For this start only.",
        };
        var run = new Command("run", "Run the bridge until stopped (Ctrl+C).") { configOption, acceptGapOption };
        run.SetAction((parse, ct) => RunAsync(parse.GetValue(configOption), parse.GetValue(acceptGapOption), ct));

        var check = new Command("check", "Run the start-up checks (configuration, PostgreSQL, RabbitMQ, publication, slot) and exit.") { configOption };
        check.SetAction((parse, ct) => CheckAsync(parse.GetValue(configOption), ct));

        var health = new Command("health", "Exit 0 when the running bridge is ready (asks its /health/ready at Synchro:Http:Urls, or reads Synchro:Health:File when set); for container health checks.") { configOption };
        health.SetAction((parse, ct) => HealthAsync(parse.GetValue(configOption), ct));

        var root = new RootCommand("Synchro Bridge: PostgreSQL logical replication → typed change sets on MassTransit/RabbitMQ → sync buckets.")
        {
            run,
            check,
            health,
            StatusCommand.Build(configOption),
            FailuresCommand.Build(configOption),
            DemoCommand.Build(),
        };
        foreach (var command in SnapshotCommand.Build(configOption))
            root.Subcommands.Add(command);
        root.SetAction((parse, ct) => RunAsync(null, false, ct));
        return root;
    }

    private static async Task<int> RunAsync(FileInfo? config, bool acceptGap, CancellationToken cancellationToken)
    {
        using var host = BridgeHost.Build(config?.FullName, acceptGap ? [new("Synchro:Replication:AcceptGap", "true")] : null);
        return await RunHostAsync(host, Console.Error, cancellationToken);
    }

    /// <summary>Runs a host to its end and turns what stopped it into one line and an exit code.</summary>
    public static async Task<int> RunHostAsync(IHost host, TextWriter errors, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(errors);
        var failure = host.Services.GetRequiredService<BridgeFailure>();
        try
        {
            await host.RunAsync(cancellationToken);
        }
        catch (Exception e) when (failure.Error is null && Describe(e) is { } line)
        {
            await errors.WriteLineAsync(line);
            return e is OptionsValidationException or StartupCheckException ? Misconfigured : Failed;
        }
        catch (Exception) when (failure.Error is not null)
        {
            // The bus may fault while stopping because of the failure: report the cause, not the echo.
        }

        if (failure.Error is { } error)
        {
            await errors.WriteLineAsync(Describe(error));
            return Failed;
        }

        return 0;
    }

    private static async Task<int> CheckAsync(FileInfo? config, CancellationToken cancellationToken)
    {
        using var host = BridgeHost.Build(config?.FullName);
        try
        {
            _ = host.Services.GetRequiredService<IOptions<SynchroOptions>>().Value;
            await host.Services.GetServices<IHostedService>().OfType<StartupService>().Single().StartAsync(cancellationToken);
        }
        catch (Exception e) when (Describe(e) is { } line)
        {
            await Console.Error.WriteLineAsync(line);
            return Misconfigured;
        }

        await Console.Out.WriteLineAsync("synchro-bridge: all start-up checks passed.");
        return 0;
    }

    private static async Task<int> HealthAsync(FileInfo? config, CancellationToken cancellationToken)
    {
        using var host = BridgeHost.Build(config?.FullName);
        SynchroOptions settings;
        try
        {
            settings = host.Services.GetRequiredService<IOptions<SynchroOptions>>().Value;
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync(Describe(e));
            return Misconfigured;
        }

        // Three missed writes mean the bridge is hung, not merely busy.
        var (healthy, detail) = string.IsNullOrWhiteSpace(settings.Health.File) && !string.IsNullOrWhiteSpace(settings.Http.Urls)
            ? await OperatorEndpoints.CheckReadyAsync(settings.Http.Urls, cancellationToken)
            : await HealthFile.CheckAsync(settings.Health.File, HealthFileWriter.Interval * 3, TimeProvider.System.GetUtcNow(), cancellationToken);
        await (healthy ? Console.Out : Console.Error).WriteLineAsync("synchro-bridge: " + (healthy ? "healthy" : "unhealthy") + ": " + detail);
        return healthy ? 0 : Failed;
    }

    /// <summary>One line for the operator: what is wrong and what to do.</summary>
    public static string? Describe(Exception e) => e switch
    {
        OptionsValidationException invalid => "synchro-bridge: configuration error: " + string.Join(" ", invalid.Failures),
        SynchroException synchro => "synchro-bridge: " + synchro.Message,
        AggregateException { InnerExceptions.Count: 1 } aggregate => Describe(aggregate.InnerException!),
        OperationCanceledException => null,
        _ => $"synchro-bridge: stopped by an unexpected {e.GetType().Name}: {e.Message}",
    };
}
