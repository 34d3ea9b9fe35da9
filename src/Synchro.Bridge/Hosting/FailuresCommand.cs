using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Sources;

namespace Synchro.Bridge.Hosting;

/// <summary><c>synchro-bridge failures list|replay</c>: the changes a bucket rule could not place.</summary>
internal static class FailuresCommand
{
    private const int StillFailing = 1;
    private const int Misconfigured = 2;

    public static Command Build(Option<FileInfo?> configOption)
    {
        var tableOption = new Option<string?>("--table") { Description = "Only this table (schema.table, or table in public)." };
        var allOption = new Option<bool>("--all") { Description = "Also list resolved failures, with how they were resolved." };

        var list = new Command("list", "List the open rule failures (oldest change first): table, record, operation, position, error.") { configOption, tableOption, allOption };
        list.SetAction((parse, ct) => ListAsync(parse.GetValue(configOption), parse.GetValue(tableOption), parse.GetValue(allOption), ct));

        var replay = new Command("replay", "Place the changes of open rule failures again with the current rules and data (after fixing them), in stream order; exit 1 while some still fail.") { configOption, tableOption };
        replay.SetAction((parse, ct) => ReplayAsync(parse.GetValue(configOption), parse.GetValue(tableOption), ct));

        return new Command("failures", "Changes a bucket rule could not place (sync_rule_failures).") { list, replay };
    }

    private static async Task<int> ListAsync(FileInfo? config, string? table, bool all, CancellationToken cancellationToken) =>
        await WithBridgeAsync(config, table, async (services, filter) =>
        {
            var failures = await services.GetRequiredService<RuleFailures>().ListAsync(services.GetRequiredService<SourceIdentity>().Name, filter, all, cancellationToken);
            foreach (var failure in failures)
            {
                var state = failure.ResolvedAt is null ? "open" : $"resolved {failure.ResolvedAt:u} ({failure.Resolution})";
                await Console.Out.WriteLineAsync($"{failure.Id}\t{failure.CreatedAt:u}\t{failure.Table}\t{failure.RecordId}\t{failure.Operation.ToString().ToLowerInvariant()}\t{failure.At}\t{state}\t{failure.Error}");
            }

            await Console.Out.WriteLineAsync($"synchro-bridge: {failures.Count} {(all ? "" : "open ")}rule failure{(failures.Count == 1 ? "" : "s")}.");
            return 0;
        });

    private static async Task<int> ReplayAsync(FileInfo? config, string? table, CancellationToken cancellationToken) =>
        await WithBridgeAsync(config, table, async (services, filter) =>
        {
            var settings = services.GetRequiredService<IOptions<SynchroOptions>>().Value;
            await using var connection = await services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync(cancellationToken);
            var rules = await StartupService.LoadRulesAsync(connection, settings, cancellationToken);
            var outcome = await services.GetRequiredService<RuleFailures>().ReplayAsync(services.GetRequiredService<SourceIdentity>().Name, rules, filter, cancellationToken);
            var stillFailing = outcome.Changes - outcome.FailuresReplayed - outcome.FailuresObsolete;
            await Console.Out.WriteLineAsync(
                $"synchro-bridge: replayed {outcome.Changes} rule failures: {outcome.FailuresReplayed} placed ({outcome.ChangelogRows} changelog rows), " +
                $"{outcome.FailuresObsolete} obsolete (their record changed after them), {stillFailing} still failing{(stillFailing > 0 ? " (synchro-bridge failures list shows why)" : "")}.");
            return stillFailing > 0 ? StillFailing : 0;
        });

    private static async Task<int> WithBridgeAsync(FileInfo? config, string? table, Func<IServiceProvider, TableName?, Task<int>> action)
    {
        using var host = BridgeHost.Build(config?.FullName);
        try
        {
            _ = host.Services.GetRequiredService<IOptions<SynchroOptions>>().Value;
            var filter = table is null ? (TableName?)null : TableName.Parse(table);
            await host.Services.GetRequiredService<SidecarTables>().MigrateAsync(host.Services.GetRequiredService<NpgsqlDataSource>(), CancellationToken.None);
            return await action(host.Services, filter);
        }
        catch (FormatException e)
        {
            await Console.Error.WriteLineAsync($"synchro-bridge: --table: {e.Message}");
            return Misconfigured;
        }
        catch (Exception e) when (CommandLine.Describe(e) is { } line)
        {
            await Console.Error.WriteLineAsync(line);
            return e is OptionsValidationException or StartupCheckException ? Misconfigured : StillFailing;
        }
    }
}
