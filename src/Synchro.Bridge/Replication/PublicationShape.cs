using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>
/// What a publication must publish besides its tables: every operation, whole rows (no row filter,
/// no column list) and partitioned tables through their root. A publication its owner created by
/// hand (the least-privilege path) may narrow any of these; pgoutput then leaves deletes, rows or
/// columns out of the stream without a word, and the sidecar tables drift from the source.
/// </summary>
internal static class PublicationShape
{
    private static readonly string[] Operations = ["insert", "update", "delete", "truncate"];
    private static readonly string AllOperations = string.Join(", ", Operations);

    /// <summary>What is wrong with the publication's shape, each with the statement that fixes it; empty when nothing.</summary>
    /// <param name="tables">The configured tables, for the statement that publishes them whole.</param>
    public static async Task<IReadOnlyList<string>> ProblemsAsync(NpgsqlConnection connection, string publication, IReadOnlyList<TableName> tables, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var name = TableName.QuoteIdentifier(publication);
        var tableList = string.Join(", ", tables.Select(t => t.Quoted));
        var problems = new List<string>();
        await using (var options = new NpgsqlCommand(
            """
            SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot,
                   EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid WHERE r.prpubid = p.oid AND c.relkind = 'p')
            FROM pg_publication p WHERE pubname = $1
            """, connection))
        {
            options.Parameters.Add(new NpgsqlParameter { Value = publication });
            await using var reader = await options.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
                return [$"publication '{publication}' does not exist; restart the bridge (it creates it), or create it as the tables' owner: CREATE PUBLICATION {name} FOR TABLE {tableList} WITH (publish_via_partition_root = true)"];
            var missing = Operations.Where((_, i) => !reader.GetBoolean(i)).ToList();
            if (missing.Count > 0)
                problems.Add($"publication '{publication}' does not publish {string.Join(", ", missing)}, so those changes never reach the bridge; run ALTER PUBLICATION {name} SET (publish = '{AllOperations}')");
            if (!reader.GetBoolean(4) && reader.GetBoolean(5))
                problems.Add($"publication '{publication}' publishes partitioned tables under their partitions' names; run ALTER PUBLICATION {name} SET (publish_via_partition_root = true)");
        }

        // Row filters and column lists came with PostgreSQL 15.
        if (connection.PostgreSqlVersion.Major >= 15)
        {
            await using var narrowed = new NpgsqlCommand(
                """
                SELECT c.relnamespace::regnamespace::text, c.relname, r.prqual IS NOT NULL, r.prattrs IS NOT NULL
                FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid JOIN pg_class c ON c.oid = r.prrelid
                WHERE p.pubname = $1 AND (r.prqual IS NOT NULL OR r.prattrs IS NOT NULL)
                ORDER BY 1, 2
                """, connection);
            narrowed.Parameters.Add(new NpgsqlParameter { Value = publication });
            await using var reader = await narrowed.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = new TableName(reader.GetString(0), reader.GetString(1));
                var what = (reader.GetBoolean(2), reader.GetBoolean(3)) switch
                {
                    (true, true) => "a row filter (WHERE) and a column list",
                    (true, false) => "a row filter (WHERE)",
                    _ => "a column list",
                };
                problems.Add($"publication '{publication}' publishes {table} with {what}, so rows or columns are left out of the stream; publish whole tables: ALTER PUBLICATION {name} SET TABLE {tableList}");
            }
        }

        return problems;
    }
}
