using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Replication.Snapshots;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Sources;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// <c>synchro-bridge snapshot status</c>, <c>backfill TABLE</c> and <c>rebuild TABLE</c>: the jobs
/// that read existing rows (sync_snapshots). Requests are rows there; the running bridge's slot
/// reader picks them up, so these commands work whether the bridge runs or not.
/// </summary>
internal static class SnapshotCommand
{
    private const int Failed = 1;
    private const int Misconfigured = 2;
    private static readonly TimeSpan WaitPoll = TimeSpan.FromMilliseconds(500);

    public static IEnumerable<Command> Build(Option<FileInfo?> configOption)
    {
        var allOption = new Option<bool>("--all") { Description = "Also list finished jobs (by default: open jobs, and the last job of each table)." };
        var status = new Command("status", "Show snapshot, backfill and rebuild jobs: table, kind, state, rows done of the estimate, rows/s, time left.") { configOption, allOption };
        status.SetAction((parse, ct) => StatusAsync(parse.GetValue(configOption), parse.GetValue(allOption), ct));
        yield return new Command("snapshot", "The reading of existing rows (the initial snapshot, backfills, rebuilds).") { status };

        yield return Request("backfill", SnapshotKind.Backfill,
            "Read every row of TABLE into the stream while it goes on: published to subscribers as read operations and placed in buckets (writing only differences).",
            configOption);
        yield return Request("rebuild", SnapshotKind.Rebuild,
            "Recompute TABLE's bucket placement from its current rows after its rule changed, writing only the differences to the changelog (nothing is published).",
            configOption);
    }

    private static Command Request(string name, SnapshotKind kind, string description, Option<FileInfo?> configOption)
    {
        var tableArgument = new Argument<string>("TABLE") { Description = "A configured table: schema.table, or table in public." };
        var waitOption = new Option<bool>("--wait") { Description = "Wait until the running bridge has finished the job, showing its progress; exit 1 if it stops being worked on for 60 s." };
        var command = new Command(name, description + " The running bridge does the work; this records the request.") { tableArgument, configOption, waitOption };
        command.SetAction((parse, ct) => RequestAsync(parse.GetValue(configOption), parse.GetValue(tableArgument)!, kind, parse.GetValue(waitOption), ct));
        return command;
    }

    private static async Task<int> RequestAsync(FileInfo? config, string tableText, SnapshotKind kind, bool wait, CancellationToken cancellationToken) =>
        await WithJobsAsync(config, async (settings, jobs, source) =>
        {
            TableName table;
            try
            {
                table = TableName.Parse(tableText);
            }
            catch (FormatException e)
            {
                await Console.Error.WriteLineAsync($"synchro-bridge: TABLE: {e.Message}");
                return Misconfigured;
            }

            if (!settings.Tables.Any(t => TableName.Parse(t.Name) == table))
            {
                await Console.Error.WriteLineAsync(
                    $"synchro-bridge: {table} is not in Synchro:Tables. Add it there and restart the bridge: a table added to the configuration is backfilled when the bridge starts.");
                return Misconfigured;
            }

            var (job, created) = await jobs.RequestAsync(source, table, kind, cancellationToken);
            var what = SnapshotJobs.KindName(job.Kind);
            await Console.Out.WriteLineAsync(created
                ? $"synchro-bridge: {SnapshotJobs.KindName(kind)} of {table} requested (job {job.Id}); the running bridge reads it chunk by chunk (synchro-bridge snapshot status shows its progress)."
                : $"synchro-bridge: a {what} of {table} is already {job.Status} (job {job.Id}); not requested again.");
            return wait ? await WaitAsync(jobs, source, job.Id, cancellationToken) : 0;
        });

    private static async Task<int> WaitAsync(SnapshotJobs jobs, string source, long id, CancellationToken cancellationToken)
    {
        var lastChange = DateTimeOffset.UtcNow;
        long lastRows = -1;
        while (true)
        {
            var job = (await jobs.ListAsync(source, openOnly: false, cancellationToken)).Single(j => j.Id == id);
            if (job.Status != SnapshotJob.Pending && job.Status != SnapshotJob.Running)
            {
                await Console.Out.WriteLineAsync($"synchro-bridge: job {id} {job.Status}: {job.RowsDone} rows.");
                return job.Status == SnapshotJob.Done ? 0 : Failed;
            }

            if (job.RowsDone != lastRows)
            {
                lastRows = job.RowsDone;
                lastChange = DateTimeOffset.UtcNow;
                await Console.Out.WriteLineAsync("synchro-bridge: " + job.Describe());
            }
            else if (DateTimeOffset.UtcNow - lastChange > TimeSpan.FromSeconds(60))
            {
                await Console.Error.WriteLineAsync($"synchro-bridge: job {id} made no progress for 60 s: is the bridge running (synchro-bridge health)? The job stays requested.");
                return Failed;
            }

            await Task.Delay(WaitPoll, cancellationToken);
        }
    }

    private static async Task<int> StatusAsync(FileInfo? config, bool all, CancellationToken cancellationToken) =>
        await WithJobsAsync(config, async (_, jobs, source) =>
        {
            var every = await jobs.ListAsync(source, openOnly: false, cancellationToken);
            var shown = all ? every : every.Where(j => j.Status is SnapshotJob.Pending or SnapshotJob.Running || every.Last(o => o.Table == j.Table) == j).ToList();
            await Console.Out.WriteLineAsync($"{"job",-6}{"table",-32}{"kind",-10}{"status",-12}{"rows",-24}{"rows/s",-10}{"left",-10}{"method",-10}finished");
            foreach (var job in shown)
            {
                var rows = job.RowsEstimated is { } estimate ? $"{job.RowsDone}/{estimate}" : job.RowsDone.ToString(CultureInfo.InvariantCulture);
                var rate = job.RowsPerSecond is { } perSecond ? perSecond.ToString("0", CultureInfo.InvariantCulture) : "-";
                var left = job.Remaining is { } remaining ? $"{remaining.TotalSeconds:0} s" : "-";
                await Console.Out.WriteLineAsync(
                    $"{job.Id,-6}{job.Table,-32}{SnapshotJobs.KindName(job.Kind),-10}{job.Status,-12}{rows,-24}{rate,-10}{left,-10}{job.Method ?? "-",-10}{(job.FinishedAt is { } at ? at.ToString("u", CultureInfo.InvariantCulture) : "-")}");
            }

            var open = every.Count(j => j.Status is SnapshotJob.Pending or SnapshotJob.Running);
            await Console.Out.WriteLineAsync($"synchro-bridge: {open} snapshot job{(open == 1 ? "" : "s")} open.");
            return 0;
        });

    private static async Task<int> WithJobsAsync(FileInfo? config, Func<SynchroOptions, SnapshotJobs, string, Task<int>> action)
    {
        using var host = BridgeHost.Build(config?.FullName);
        try
        {
            var settings = host.Services.GetRequiredService<IOptions<SynchroOptions>>().Value;
            await host.Services.GetRequiredService<SidecarTables>().MigrateAsync(host.Services.GetRequiredService<NpgsqlDataSource>(), CancellationToken.None);
            return await action(settings, host.Services.GetRequiredService<SnapshotJobs>(), host.Services.GetRequiredService<SourceIdentity>().Name);
        }
        catch (Exception e) when (CommandLine.Describe(e) is { } line)
        {
            await Console.Error.WriteLineAsync(line);
            return e is OptionsValidationException or StartupCheckException ? Misconfigured : Failed;
        }
    }
}
