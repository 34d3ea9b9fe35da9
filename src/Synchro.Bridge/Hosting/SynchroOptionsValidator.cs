using Microsoft.Extensions.Options;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Hosting;

/// <summary>Validates the configuration at start-up with messages a person can act on.</summary>
/// <param name="shapeProblems">Unknown keys and mistyped values of the raw section (<see cref="ConfigurationShape"/>): the options were not bound.</param>
internal sealed class SynchroOptionsValidator(IReadOnlyList<string>? shapeProblems = null) : IValidateOptions<SynchroOptions>
{
    public ValidateOptionsResult Validate(string? name, SynchroOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Nothing was bound: the rest of the checks would only repeat what is missing because of it.
        if (shapeProblems is { Count: > 0 })
            return ValidateOptionsResult.Fail(shapeProblems);
        var errors = new List<string>();

        if (options.Roles == BridgeRoles.None)
            errors.Add("Synchro:Roles is empty: give Replication, Buckets or both (the default).");
        if (string.IsNullOrWhiteSpace(options.Postgres.ConnectionString))
            errors.Add("Synchro:Postgres:ConnectionString is missing: set it to the source database, e.g. Host=localhost;Username=synchro;Password=...;Database=app.");
        if (!string.IsNullOrWhiteSpace(options.RabbitMq.Uri) && !(Uri.TryCreate(options.RabbitMq.Uri, UriKind.Absolute, out var uri) && uri.Scheme is "amqp" or "amqps"))
            errors.Add($"Synchro:RabbitMq:Uri '{Redacted(options.RabbitMq.Uri)}' is not an AMQP URI: write amqp://user:password@host:5672/vhost, or leave it empty for the in-memory bus.");
        if (!string.IsNullOrWhiteSpace(options.RabbitMq.ManagementUri) && !(Uri.TryCreate(options.RabbitMq.ManagementUri, UriKind.Absolute, out var management) && management.Scheme is "http" or "https"))
            errors.Add($"Synchro:RabbitMq:ManagementUri '{Redacted(options.RabbitMq.ManagementUri)}' is not an HTTP URI: write http://user:password@host:15672/, or leave it empty to derive it from the AMQP URI.");
        foreach (var url in options.Http.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var http) || http.Scheme is not ("http" or "https"))
                errors.Add($"Synchro:Http:Urls has '{url}', which is not an address to listen on: write http://0.0.0.0:9464 (several separated by ';'), or leave it empty to serve no HTTP.");
        }

        if (!string.IsNullOrWhiteSpace(options.Telemetry.OtlpEndpoint) && !(Uri.TryCreate(options.Telemetry.OtlpEndpoint, UriKind.Absolute, out var otlp) && otlp.Scheme is "http" or "https"))
            errors.Add($"Synchro:Telemetry:OtlpEndpoint '{options.Telemetry.OtlpEndpoint}' is not an HTTP URI: write the collector's OTLP/gRPC address, e.g. http://otel-collector:4317, or leave it empty.");
        if (!TableName.IsPlainIdentifier(options.Replication.SlotName))
            errors.Add($"Synchro:Replication:SlotName '{options.Replication.SlotName}' is not a valid slot name: use lower-case letters, digits and '_'.");
        if (!TableName.IsPlainIdentifier(options.Replication.PublicationName))
            errors.Add($"Synchro:Replication:PublicationName '{options.Replication.PublicationName}' is not a plain identifier: use lower-case letters, digits and '_'.");
        if (!TableName.IsPlainIdentifier(options.Postgres.SidecarSchema))
            errors.Add($"Synchro:Postgres:SidecarSchema '{options.Postgres.SidecarSchema}' is not a plain identifier: use lower-case letters, digits and '_'.");

        if (options.Source is { } source && !Sources.SourceIdentity.IsValidName(source))
            errors.Add($"Synchro:Source '{source}' is not a source name: use lower-case letters, digits, '_' and '-' (no '.'), at most {Sources.SourceIdentity.MaxNameLength} characters.");
        if (options.Replication.ConfirmationTimeout <= TimeSpan.Zero)
            errors.Add("Synchro:Replication:ConfirmationTimeout must be positive, e.g. 00:01:00.");
        if (options.Replication.PositionStoreAttemptTimeout <= TimeSpan.Zero)
            errors.Add("Synchro:Replication:PositionStoreAttemptTimeout must be positive, e.g. 00:00:10.");
        // Zero would make the position reporter spin, a negative interval crash its timer.
        if (options.Replication.IdleAckInterval <= TimeSpan.Zero)
            errors.Add("Synchro:Replication:IdleAckInterval must be positive, e.g. 00:00:01.");
        if (options.Health.AckStallThreshold <= TimeSpan.Zero)
            errors.Add("Synchro:Health:AckStallThreshold must be positive, e.g. 00:02:00.");
        if (options.Replication.DownstreamProbeAfter <= TimeSpan.Zero)
            errors.Add("Synchro:Replication:DownstreamProbeAfter must be positive, e.g. 00:00:03.");

        if (options.Buckets.MaxBucketsPerRow < 1)
            errors.Add("Synchro:Buckets:MaxBucketsPerRow must be at least 1.");
        if (options.Snapshot.ChunkRows is < 1 or > 1_000_000)
            errors.Add($"Synchro:Snapshot:ChunkRows is {options.Snapshot.ChunkRows}; give 1 to 1000000 rows per chunk (default 2000).");
        if (!Enum.IsDefined(options.RabbitMq.QueueType))
            errors.Add("Synchro:RabbitMq:QueueType must be Quorum or Classic.");
        if (!Enum.IsDefined(options.Snapshot.Mode))
            errors.Add("Synchro:Snapshot:Mode must be Initial or StreamOnly.");

        ValidateBatching(options, errors);
        ValidateTables(options.Tables, errors);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>What can be checked without the database; the rest (columns, foreign keys, functions, cycles) is checked at start.</summary>
    private static void ValidateRule(int i, TableOptions table, List<string> errors)
    {
        var at = $"Synchro:Tables:{i}";
        var placements = new[] { ("OwnerColumn", !string.IsNullOrEmpty(table.OwnerColumn)), ("Function", !string.IsNullOrEmpty(table.Function)), ("Parent", table.Parent is { Table.Length: > 0 }) }
            .Where(p => p.Item2).Select(p => p.Item1).ToList();
        if (placements.Count > 1)
            errors.Add($"{at} sets {string.Join(" and ", placements)}: a table has one bucket rule; keep one of them.");
        var rule = table.Rule?.ToLowerInvariant();
        if (rule is not (null or "" or "owner" or "parent" or "function" or "global"))
            errors.Add($"{at}:Rule '{table.Rule}' is not a rule: use owner, parent, function or global (or leave it empty to infer it).");
        if (rule == "owner" && string.IsNullOrEmpty(table.OwnerColumn))
            errors.Add($"{at}:Rule is owner but OwnerColumn is empty: name the column that holds the owner.");
        if (rule == "function" && string.IsNullOrEmpty(table.Function))
            errors.Add($"{at}:Rule is function but Function is empty: name the function, e.g. public.todo_buckets.");
        if (table.Function is { Length: > 0 } function)
        {
            try
            {
                TableName.Parse(function);
            }
            catch (FormatException)
            {
                errors.Add($"{at}:Function '{function}' is not a function name we accept: write schema.name or name, in lower-case letters, digits and '_'.");
            }
        }

        if (table.Parent is { } parent)
        {
            if (parent.Table.Length > 0)
            {
                try
                {
                    TableName.Parse(parent.Table);
                }
                catch (FormatException e)
                {
                    errors.Add($"{at}:Parent:Table: {e.Message}");
                }
            }
            else if (parent.Columns.Count > 0)
            {
                errors.Add($"{at}:Parent:Columns is set but Parent:Table is empty: name the parent table.");
            }

            foreach (var column in parent.Columns.Where(c => !TableName.IsPlainIdentifier(c)))
                errors.Add($"{at}:Parent:Columns '{column}' is not a plain column name: use lower-case letters, digits and '_'.");
        }
    }

    private static void ValidateBatching(SynchroOptions options, List<string> errors)
    {
        var batching = options.Batching;
        if (batching.MaxBatchChanges < 1)
            errors.Add("Synchro:Batching:MaxBatchChanges must be at least 1.");
        if (batching.MaxChangesPerSet < 1)
            errors.Add("Synchro:Batching:MaxChangesPerSet must be at least 1.");
        if (options.Apply.Partitions is < 1 or > ApplyLimits.MaxPartitions)
            errors.Add($"Synchro:Apply:Partitions ({options.Apply.Partitions}) must be between 1 and {ApplyLimits.MaxPartitions}: one queue and one active consumer per partition.");
        if (batching.MaxInFlightBatches < 1)
            errors.Add("Synchro:Batching:MaxInFlightBatches must be at least 1.");
        if (batching.DecodedEventBuffer < 1)
            errors.Add("Synchro:Batching:DecodedEventBuffer must be at least 1.");
        if (batching.MaxBytesPerSet < 1)
            errors.Add("Synchro:Batching:MaxBytesPerSet must be at least 1.");
        if (batching.MaxBatchBytes < 1 || batching.MaxBatchBytes * 2 > batching.MaxInFlightBytes)
            errors.Add($"Synchro:Batching:MaxBatchBytes ({batching.MaxBatchBytes}) must be at least 1 and at most half of MaxInFlightBytes ({batching.MaxInFlightBytes}), so one batch can be in flight while the next one fills.");
        if (batching.MaxBatchDelay <= TimeSpan.Zero)
            errors.Add("Synchro:Batching:MaxBatchDelay must be positive, e.g. 00:00:00.100.");
    }

    private static void ValidateTables(List<TableOptions> tables, List<string> errors)
    {
        if (tables.Count == 0)
            errors.Add("Synchro:Tables is empty: list the tables to capture, e.g. Synchro__Tables__0__Name=public.todos and Synchro__Tables__0__OwnerColumn=user_id.");

        var seen = new HashSet<TableName>();
        for (var i = 0; i < tables.Count; i++)
        {
            var table = tables[i];
            TableName parsed;
            try
            {
                parsed = TableName.Parse(table.Name);
            }
            catch (FormatException e)
            {
                errors.Add($"Synchro:Tables:{i}:Name: {e.Message}");
                continue;
            }

            if (!seen.Add(parsed))
                errors.Add($"Synchro:Tables lists {parsed} twice: keep one entry per table.");
            if (parsed.Name.StartsWith("sync_", StringComparison.Ordinal))
                errors.Add($"Synchro:Tables:{i}: {parsed} looks like a sidecar table; the bridge writes those itself and must not capture them.");
            if (table.OwnerColumn is { Length: > 0 } owner && !TableName.IsPlainIdentifier(owner))
                errors.Add($"Synchro:Tables:{i}:OwnerColumn '{owner}' is not a plain column name: use lower-case letters, digits and '_'.");
            if (table.BucketPrefix is { } prefix && (prefix.Length == 0 || prefix.Contains(':', StringComparison.Ordinal)))
                errors.Add($"Synchro:Tables:{i}:BucketPrefix '{prefix}' must be non-empty and without ':'.");
            ValidateRule(i, table, errors);
        }
    }

    /// <summary>An address as it may be echoed in an error: a password in it is replaced by ***, even when the rest does not parse.</summary>
    private static string Redacted(string address) =>
        System.Text.RegularExpressions.Regex.Replace(address, "://([^:/@]*):[^@/]*@", "://$1:***@");
}

internal static class ApplyLimits
{
    public const int MaxPartitions = 64;
}
