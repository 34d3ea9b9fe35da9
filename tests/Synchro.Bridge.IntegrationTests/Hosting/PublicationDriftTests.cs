using System.Net;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Hosting;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>
/// Bad input while the bridge runs: the publication changed under it. Each turns /health/ready 503
/// with the exact cause and what to do; changes of a table the rules do not know are never
/// acknowledged.
/// </summary>
public sealed class PublicationDriftTests
{
    public static TheoryData<string, string, string> Cases => new()
    {
        { "a configured table dropped", "DROP TABLE lists",
            "the publication changed under the bridge: table public.lists was dropped while the bridge ran, so its changes stopped; remove it from Synchro:Tables and restart, or create it again and restart (the bridge publishes it again and backfills its rows)." },
        { "a configured table taken out of the publication", "ALTER PUBLICATION \"{db}\" DROP TABLE lists",
            "the publication changed under the bridge: table public.lists was taken out of publication '{db}' by hand, so its changes since then are not in the stream; restart the bridge (it publishes the table again and backfills its rows), or add it back and run synchro-bridge backfill public.lists." },
        { "a table added to the publication by hand", "ALTER PUBLICATION \"{db}\" ADD TABLE notes",
            "the publication changed under the bridge: publication '{db}' publishes public.notes, which is not in Synchro:Tables (added by hand), so its changes hold the bucket consumer; run ALTER PUBLICATION \"{db}\" DROP TABLE \"public\".\"notes\", or add it to Synchro:Tables, and restart." },
        { "a publication narrowed to inserts and updates by hand", "ALTER PUBLICATION \"{db}\" SET (publish = 'insert, update')",
            "the publication changed under the bridge: publication '{db}' does not publish delete, truncate, so those changes never reach the bridge; run ALTER PUBLICATION \"{db}\" SET (publish = 'insert, update, delete, truncate')." },
        { "a row filter set by hand", "ALTER PUBLICATION \"{db}\" SET TABLE todos WHERE (user_id > 0), lists",
            "the publication changed under the bridge: publication '{db}' publishes public.todos with a row filter (WHERE), so rows or columns are left out of the stream; publish whole tables: ALTER PUBLICATION \"{db}\" SET TABLE \"public\".\"todos\", \"public\".\"lists\"." },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task a_publication_changed_under_the_running_bridge_turns_ready_red_with_the_cause_and_acknowledges_nothing_unknown(string kind, string change, string expected)
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint); CREATE TABLE lists (id bigint PRIMARY KEY, user_id bigint); CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint)");
        var host = await env.StartBridgeAsync(("todos", "user_id"), ("lists", "user_id"));
        var baseUri = OperatorEndpointTests.BaseUri(host);
        await Eventually.Until(() => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "the bridge to be ready");

        await env.ExecuteAsync(change.Replace("{db}", env.Name, StringComparison.Ordinal));
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        if (kind.Contains("added", StringComparison.Ordinal))
            await env.ExecuteAsync("INSERT INTO notes VALUES (1, 7)");
        var written = await env.CurrentWalLsnAsync();

        // The watch looks every few seconds; a held change set may say so first, then the cause replaces it.
        var red = await Eventually.Until(
            () => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath),
            p => p.Code == HttpStatusCode.ServiceUnavailable && p.Checks["replication"].Description?.StartsWith("the publication changed", StringComparison.Ordinal) == true,
            $"ready to turn red naming the publication: {kind}");
        Assert.Equal(expected.Replace("{db}", env.Name, StringComparison.Ordinal), red.Checks["replication"].Description);
        Assert.Equal(0, await env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog WHERE table_name <> 'todos'"));
        if (kind.Contains("added", StringComparison.Ordinal))
        {
            // The note's change is held in place: the slot is not acknowledged past it.
            Assert.True(await env.ConfirmedFlushLsnAsync() < written, "the slot was acknowledged past a change no rule knows");
        }
        else
        {
            // The configured table that remains goes on.
            await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog WHERE table_name = 'todos'"), n => n == 1, "the todo applied");
        }
    }
}
