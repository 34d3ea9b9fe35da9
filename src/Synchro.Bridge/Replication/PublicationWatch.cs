using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>
/// Watches, while the bridge runs, that the publication still publishes exactly the configured
/// tables. pgoutput decodes with the publication as it was when each change was written, so a table
/// dropped or taken out of the publication by hand silently stops sending changes, and one added by
/// hand sends changes no rule knows; a publication narrowed by hand (operations, row filters,
/// column lists, partitions under their own names) leaves changes out. None of it shows in the stream itself: this says so, for health
/// and <c>synchro-bridge status</c>, with what to do.
/// </summary>
internal sealed class PublicationWatch(NpgsqlDataSource dataSource, string publication, IReadOnlyList<TableName> configured)
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>Checks every <see cref="Interval"/> until cancelled, reporting the drift (null when there is none).</summary>
    public async Task RunAsync(Action<string?> report, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                report(await DriftAsync(cancellationToken));
            }
            catch (Exception e) when (TransientFailures.IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                // The replication connection says what is wrong with the database; the next round checks again.
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    public async Task<string?> DriftAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var problems = new List<string>();
        await using var command = new NpgsqlCommand(
            """
            SELECT c.schema, c.name, to_regclass(quote_ident(c.schema) || '.' || quote_ident(c.name)) IS NOT NULL, 'missing'
            FROM unnest($2::text[], $3::text[]) AS c(schema, name)
            WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 AND p.schemaname = c.schema AND p.tablename = c.name)
            UNION ALL
            SELECT p.schemaname, p.tablename, true, 'extra'
            FROM pg_publication_tables p
            WHERE p.pubname = $1 AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS c(schema, name) WHERE c.schema = p.schemaname AND c.name = p.tablename)
            ORDER BY 4, 1, 2
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = publication });
        command.Parameters.Add(new NpgsqlParameter { Value = configured.Select(t => t.Schema).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = configured.Select(t => t.Name).ToArray() });
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = new TableName(reader.GetString(0), reader.GetString(1));
                problems.Add((reader.GetString(3), reader.GetBoolean(2)) switch
                {
                    ("missing", false) =>
                        $"table {table} was dropped while the bridge ran, so its changes stopped; remove it from Synchro:Tables and restart, or create it again and restart (the bridge publishes it again and backfills its rows)",
                    ("missing", true) =>
                        $"table {table} was taken out of publication '{publication}' by hand, so its changes since then are not in the stream; restart the bridge (it publishes the table again and backfills its rows), or add it back and run synchro-bridge backfill {table}",
                    _ =>
                        $"publication '{publication}' publishes {table}, which is not in Synchro:Tables (added by hand), so its changes hold the bucket consumer; run ALTER PUBLICATION {TableName.QuoteIdentifier(publication)} DROP TABLE {table.Quoted}, or add it to Synchro:Tables, and restart",
                });
            }
        }

        problems.AddRange(await PublicationShape.ProblemsAsync(connection, publication, configured, cancellationToken));
        return problems.Count == 0 ? null : "the publication changed under the bridge: " + string.Join("; ", problems) + ".";
    }
}
