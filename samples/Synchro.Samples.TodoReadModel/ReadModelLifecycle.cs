using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Synchro.Samples.TodoReadModel;

/// <summary>
/// Before anything consumes: the tables exist (and are emptied on a reset). Once all has started:
/// the ready file says the queue is bound, so a bridge started after it loses no change to this service.
/// </summary>
internal sealed class ReadModelLifecycle(NpgsqlDataSource database, IOptions<ReadModelOptions> options, ILogger<ReadModelLifecycle> logger) : IHostedLifecycleService
{
    private ReadModelOptions Options => options.Value;

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        RemoveReadyFile();
        await TodoTransaction.CreateTablesAsync(database, Options.Reset, cancellationToken);
    }

    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (Options.Reset)
            Log.Reset(logger, Options.Queue);
        Log.Consuming(logger, Options.Source, Options.Queue);
        if (Options.ReadyFile.Length > 0)
            await File.WriteAllTextAsync(Options.ReadyFile, Options.Queue, cancellationToken);
    }

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        RemoveReadyFile();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void RemoveReadyFile()
    {
        if (Options.ReadyFile.Length > 0)
            File.Delete(Options.ReadyFile);
    }
}
