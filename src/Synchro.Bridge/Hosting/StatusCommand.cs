using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Sources;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// <c>synchro-bridge status [--json]</c>: one screen on the slot, the bucket consumer, the queues and
/// the running bridge. Each part is read from where it lives (PostgreSQL, RabbitMQ's management API,
/// the bridge's health and metrics endpoints), so the command answers while the bridge runs and
/// while it is down; a part that cannot be read says why, and the others are still shown.
/// </summary>
internal static class StatusCommand
{
    private const int NotHealthy = 1;
    private const int Misconfigured = 2;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static Command Build(Option<FileInfo?> configOption)
    {
        var jsonOption = new Option<bool>("--json") { Description = "Print the status as one JSON document (for scripts)." };
        var status = new Command("status", "Show the slot (lag, retained WAL, wal_status, fail-over readiness), held change sets, rule failures, snapshots, queues and the running bridge's health; exit 1 unless the slot streams and the bridge is ready.")
        {
            configOption,
            jsonOption,
        };
        status.SetAction((parse, ct) => RunAsync(parse.GetValue(configOption), parse.GetValue(jsonOption), ct));
        return status;
    }

    private static async Task<int> RunAsync(FileInfo? config, bool json, CancellationToken cancellationToken)
    {
        using var host = BridgeHost.Build(config?.FullName);
        SynchroOptions settings;
        try
        {
            settings = host.Services.GetRequiredService<IOptions<SynchroOptions>>().Value;
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync(CommandLine.Describe(e));
            return Misconfigured;
        }

        var report = await CollectAsync(host.Services, settings, cancellationToken);
        await Console.Out.WriteLineAsync(json ? JsonSerializer.Serialize(report, Json) : Format(report));
        return report.Slot is { Active: true } && report.Bridge.Ready == "Healthy" ? 0 : NotHealthy;
    }

    /// <summary>One line of snake_case JSON (pipe it to jq to read it).</summary>
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // Nulls are kept: a script reads "held": null as "nothing held", not as a missing field.
    };

    internal static async Task<StatusReport> CollectAsync(IServiceProvider services, SynchroOptions settings, CancellationToken cancellationToken)
    {
        var source = services.GetRequiredService<SourceIdentity>().Name;
        var database = Task.Run(() => ReadDatabaseAsync(services.GetRequiredService<NpgsqlDataSource>(), services.GetRequiredService<DecodingServer>(), services.GetRequiredService<SidecarTables>(), settings, source, cancellationToken), cancellationToken);
        var queues = Task.Run(() => ReadQueuesAsync(settings, source, cancellationToken), cancellationToken);
        var bridge = Task.Run(() => ReadBridgeAsync(settings, cancellationToken), cancellationToken);
        var (slot, apply, snapshots, failover, databaseError) = await database;
        var (queueList, queueError) = await queues;
        return new StatusReport(source, slot, apply, snapshots, failover, databaseError, queueList, queueError, await bridge);
    }

    private static async Task<(SlotStatus?, ApplyState?, IReadOnlyList<SnapshotStatus>, FailoverStatus?, string?)> ReadDatabaseAsync(
        NpgsqlDataSource dataSource, DecodingServer decoding, SidecarTables tables, SynchroOptions settings, string source, CancellationToken cancellationToken)
    {
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(Timeout);
            await using var connection = await dataSource.OpenConnectionAsync(deadline.Token);
            SlotStatus? slot;
            FailoverStatus failover;
            if (decoding.OnStandby)
            {
                await using var standby = await decoding.DataSource.OpenConnectionAsync(deadline.Token);
                slot = await ReadSlotAsync(standby, settings.Replication.SlotName, deadline.Token);
                failover = await FailoverReadiness.ReadDecodingStandbyAsync(standby, settings.Replication.SlotName, deadline.Token);
            }
            else
            {
                slot = await ReadSlotAsync(connection, settings.Replication.SlotName, deadline.Token);
                failover = await FailoverReadiness.ReadAsync(connection, settings.Postgres.ConnectionString, settings.Replication.SlotName, deadline.Token);
            }

            // The sidecar tables may not exist yet (a bridge that never started): then nothing is held or failing.
            var sidecar = await ScalarAsync<bool>(connection, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL",
                deadline.Token, tables.ApplyHolds, tables.RuleFailures, tables.Snapshots);
            if (!sidecar)
                return (slot, new ApplyState(null, 0), [], failover, null);
            return (slot, await ReadApplyAsync(connection, tables, source, deadline.Token), await ReadSnapshotsAsync(connection, tables, source, deadline.Token), failover, null);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            return (null, null, [], null, $"cannot read PostgreSQL: {e.Message}");
        }
    }

    private static async Task<SlotStatus?> ReadSlotAsync(NpgsqlConnection connection, string slotName, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT s.active, s.active_pid, s.confirmed_flush_lsn::text, w.lsn::text,
                   (w.lsn - s.confirmed_flush_lsn)::bigint, (w.lsn - s.restart_lsn)::bigint,
                   s.wal_status, s.safe_wal_size, extract(epoch FROM r.flush_lag)::float8
            FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
            -- On a decoding standby: the WAL it has replayed, all its slot can have read.
            CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w
            WHERE s.slot_name = $1
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
            return new SlotStatus(slotName, Exists: false, Active: false, null, null, null, null, null, null, null, null);
        T? Get<T>(int i) where T : struct => reader.IsDBNull(i) ? null : reader.GetFieldValue<T>(i);
        string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
        return new SlotStatus(slotName, Exists: true, reader.GetBoolean(0), Get<int>(1), Text(2), Text(3), Get<long>(4), Get<long>(5), Text(6), Get<long>(7), Get<double>(8));
    }

    private static async Task<ApplyState> ReadApplyAsync(NpgsqlConnection connection, SidecarTables tables, string source, CancellationToken cancellationToken)
    {
        HeldChangeSet? held = null;
        await using (var command = new NpgsqlCommand($"SELECT table_name, batch, part, commit_lsn::text, error, attempts, since FROM {tables.ApplyHolds} WHERE source = $1", connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = source });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
                held = new HeldChangeSet(reader.GetString(0), reader.GetInt64(1), reader.GetInt32(2), reader.GetString(3), reader.GetString(4), reader.GetInt32(5), reader.GetFieldValue<DateTimeOffset>(6));
        }

        long open;
        await using (var command = new NpgsqlCommand($"SELECT count(*) FROM {tables.RuleFailures} f WHERE resolved_at IS NULL AND {SegmentWriter.OfThisSource("$1")}", connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = source });
            open = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        return new ApplyState(held, open);
    }

    private static async Task<IReadOnlyList<SnapshotStatus>> ReadSnapshotsAsync(NpgsqlConnection connection, SidecarTables tables, string source, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT table_name, kind, status, rows_done, rows_estimated FROM {tables.Snapshots} WHERE source = $1 AND status IN ('pending', 'running') ORDER BY id", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<SnapshotStatus>();
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new SnapshotStatus(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4)));
        return list;
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var value in values)
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The bucket queues of the source, one per apply partition, from RabbitMQ's management API.</summary>
    private static async Task<(IReadOnlyList<QueueStatus>, string?)> ReadQueuesAsync(SynchroOptions settings, string source, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.RabbitMq.Uri))
            return ([], "no broker: the bus runs in memory inside the bridge.");
        var (management, credentials, vhost) = Management(settings.RabbitMq);
        using var http = new HttpClient { BaseAddress = management, Timeout = Timeout };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
        var list = new List<QueueStatus>();
        try
        {
            for (var partition = 0; partition < settings.Apply.Partitions; partition++)
            {
                var name = BucketEndpoints.QueueName(source, partition);
                using var response = await http.GetAsync($"api/queues/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(name)}", cancellationToken);
                if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    list.Add(new QueueStatus(name, partition, Exists: false, null, null, null));
                    continue;
                }

                response.EnsureSuccessStatusCode();
                using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
                long? Number(string property) => body.RootElement.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : null;
                list.Add(new QueueStatus(name, partition, Exists: true, Number("messages_ready"), Number("messages_unacknowledged"), Number("consumers")));
            }

            return (list, null);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return (list, $"cannot read RabbitMQ's management API at {management}: {e.Message} (set Synchro:RabbitMq:ManagementUri).");
        }
    }

    /// <summary>The management API's address, credentials and virtual host: configured, or derived from the AMQP URI (same host and user, port 15672).</summary>
    internal static (Uri BaseAddress, string Credentials, string VirtualHost) Management(RabbitMqOptions options)
    {
        var amqp = new Uri(options.Uri);
        var vhost = amqp.AbsolutePath.Length > 1 ? Uri.UnescapeDataString(amqp.AbsolutePath[1..]) : "/";
        var management = string.IsNullOrWhiteSpace(options.ManagementUri)
            ? new Uri($"{(amqp.Scheme == "amqps" ? "https" : "http")}://{amqp.Host}:15672/")
            : new Uri(options.ManagementUri.TrimEnd('/') + "/");
        var userInfo = !string.IsNullOrEmpty(management.UserInfo) ? management.UserInfo : amqp.UserInfo;
        var credentials = string.IsNullOrEmpty(userInfo) ? "guest:guest" : Uri.UnescapeDataString(userInfo);
        return (new UriBuilder(management) { UserName = "", Password = "" }.Uri, credentials, vhost);
    }

    /// <summary>The running bridge's readiness and in-flight batches, from its own HTTP endpoints.</summary>
    private static async Task<BridgeStatus> ReadBridgeAsync(SynchroOptions settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Http.Urls))
            return new BridgeStatus(null, "unknown", [], null, "Synchro:Http:Urls is empty: the bridge serves no health endpoint to ask.");
        var baseAddress = OperatorEndpoints.LocalAddress(settings.Http.Urls);
        using var http = new HttpClient { BaseAddress = baseAddress, Timeout = Timeout };
        try
        {
            var (_, status, checks) = await OperatorEndpoints.AskReadyAsync(http, cancellationToken);
            var metrics = await http.GetStringAsync(OperatorEndpoints.MetricsPath.TrimStart('/'), cancellationToken);
            var inFlight = metrics.Split('\n').Where(l => l.StartsWith("synchro_in_flight ", StringComparison.Ordinal) || l.StartsWith("synchro_in_flight{", StringComparison.Ordinal))
                .Select(l => long.Parse(l[(l.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture)).Cast<long?>().FirstOrDefault();
            return new BridgeStatus(baseAddress.ToString(), status, checks, inFlight, null);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            return new BridgeStatus(baseAddress.ToString(), "not running", [], null, $"no answer at {baseAddress}: {e.Message}");
        }
    }

    private static string Format(StatusReport report)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"source        {report.Source}");
        if (report.DatabaseError is { } databaseError)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"slot          {databaseError}");
        }
        else if (report.Slot is { Exists: false } missing)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"slot          {missing.Name}: does not exist (the bridge creates it when it starts)");
        }
        else if (report.Slot is { } slot)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"slot          {slot.Name}: {(slot.Active ? $"active (pid {slot.ActivePid})" : "inactive: no bridge streams it")}, wal_status {slot.WalStatus}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  confirmed   {slot.ConfirmedLsn} of {slot.CurrentWalLsn}: lag {Bytes(slot.LagBytes)}{(slot.LagSeconds is { } seconds ? $", {seconds:0.###} s behind" : "")}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  retained    {Bytes(slot.RetainedWalBytes)} of WAL{(slot.SafeWalSizeBytes is { } safe ? $", {Bytes(safe)} more before max_slot_wal_keep_size invalidates the slot" : "")}");
        }

        if (report.Failover is { } failover)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"fail-over     {failover.Verdict}");
            foreach (var standby in failover.Standbys)
            {
                text.AppendLine(standby.Error is { } unreachable
                    ? $"  standby     {standby.Host}: {unreachable}"
                    : $"  standby     {standby.Host}: {(standby.InRecovery == true ? "in recovery" : "not in recovery")}, slot {(standby.SlotSynced == true ? "synchronized" : "not synchronized")}, sync_replication_slots {standby.SyncReplicationSlots ?? "(none)"}, hot_standby_feedback {standby.HotStandbyFeedback}");
            }
        }

        if (report.Apply is { } apply)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"apply         {(apply.Held is { } held ? $"HOLDING batch {held.Batch} part {held.Part} ({held.Table}, commit LSN {held.CommitLsn}) since {held.Since:u} after {held.Attempts} attempts: {held.Error}" : "nothing held")}");
            text.AppendLine(CultureInfo.InvariantCulture, $"rule failures {apply.OpenRuleFailures} open{(apply.OpenRuleFailures > 0 ? " (synchro-bridge failures list)" : "")}");
        }

        foreach (var snapshot in report.Snapshots)
            text.AppendLine(CultureInfo.InvariantCulture, $"snapshot      {snapshot.Table} ({snapshot.Kind}): {snapshot.Status}, {snapshot.RowsDone} of ~{snapshot.RowsEstimated?.ToString(CultureInfo.InvariantCulture) ?? "?"} rows");
        if (report.QueueError is { } queueError)
            text.AppendLine(CultureInfo.InvariantCulture, $"queues        {queueError}");
        foreach (var queue in report.Queues)
        {
            text.AppendLine(queue.Exists
                ? $"queue         {queue.Name}: {Count(queue.Ready)} ready, {Count(queue.Unacknowledged)} being applied, {Count(queue.Consumers)} consumer(s)"
                : $"queue         {queue.Name}: does not exist (no bridge with the Buckets role has started)");
        }

        var bridge = report.Bridge;
        text.AppendLine(CultureInfo.InvariantCulture, $"bridge        {bridge.Ready}{(bridge.Url is { } url ? $" at {url}" : "")}{(bridge.InFlight is { } inFlight ? $", {inFlight} batch(es) in flight" : "")}{(bridge.Error is { } error ? $": {error}" : "")}");
        foreach (var check in bridge.Checks)
            text.AppendLine(CultureInfo.InvariantCulture, $"  {check.Name,-11} {check.Status}{(check.Description is { } description ? ": " + description : "")}");
        return text.ToString().TrimEnd();
    }

    /// <summary>A count, or "?" while RabbitMQ has not reported it yet (its statistics come every few seconds).</summary>
    private static string Count(long? count) => count?.ToString(CultureInfo.InvariantCulture) ?? "?";

    private static string Bytes(long? bytes) => bytes switch
    {
        null => "?",
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.#} kB",
        < 1024L * 1024 * 1024 => $"{bytes / (1024.0 * 1024):0.#} MB",
        _ => $"{bytes / (1024.0 * 1024 * 1024):0.##} GB",
    };
}

/// <summary>What <c>synchro-bridge status --json</c> prints (snake_case).</summary>
internal sealed record StatusReport(
    string Source, SlotStatus? Slot, ApplyState? Apply, IReadOnlyList<SnapshotStatus> Snapshots, FailoverStatus? Failover, string? DatabaseError,
    IReadOnlyList<QueueStatus> Queues, string? QueueError, BridgeStatus Bridge);

/// <param name="LagBytes">Current WAL LSN minus the slot's confirmed flush LSN.</param>
/// <param name="RetainedWalBytes">WAL PostgreSQL keeps for the slot (from its restart LSN).</param>
/// <param name="SafeWalSizeBytes">How much more WAL may be written before max_slot_wal_keep_size invalidates the slot (null: no limit).</param>
/// <param name="LagSeconds">The walsender's flush lag, as PostgreSQL measures it from the bridge's acknowledgements.</param>
internal sealed record SlotStatus(
    string Name, bool Exists, bool Active, int? ActivePid, string? ConfirmedLsn, string? CurrentWalLsn,
    long? LagBytes, long? RetainedWalBytes, string? WalStatus, long? SafeWalSizeBytes, double? LagSeconds);

internal sealed record ApplyState(HeldChangeSet? Held, long OpenRuleFailures);

internal sealed record HeldChangeSet(string Table, long Batch, int Part, string CommitLsn, string Error, int Attempts, DateTimeOffset Since);

internal sealed record SnapshotStatus(string Table, string Kind, string Status, long RowsDone, long? RowsEstimated);

/// <param name="Ready">Messages waiting; <paramref name="Unacknowledged"/>: delivered and being applied.</param>
internal sealed record QueueStatus(string Name, int Partition, bool Exists, long? Ready, long? Unacknowledged, long? Consumers);

/// <param name="Ready">The running bridge's /health/ready status (Healthy, Degraded, Unhealthy), or "not running".</param>
internal sealed record BridgeStatus(string? Url, string Ready, IReadOnlyList<CheckStatus> Checks, long? InFlight, string? Error);

internal sealed record CheckStatus(string Name, string Status, string? Description);
