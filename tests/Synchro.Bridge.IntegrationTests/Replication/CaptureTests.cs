using System.Text;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Changes;
using V2 = Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Replication;

/// <summary>What PostgreSQL's logical replication can say, captured and applied correctly.</summary>
public sealed class CaptureTests
{
    private static string Shape(V2.Change change) => string.Join(",", change.NewRow!.Select(v => $"{v.Name}:{v.Type}={v.Text ?? v.Unsent?.ToString() ?? "NULL"}"));

    [Fact]
    public async Task a_schema_change_in_the_middle_of_the_stream_is_followed_by_rows_of_the_new_shape()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id integer, title text)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.shapes", "public.todos");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'before')");
        await env.ExecuteAsync("ALTER TABLE todos ADD COLUMN priority smallint DEFAULT 3");
        await env.ExecuteAsync("INSERT INTO todos VALUES (2, 7, 'added', 1)");
        await env.ExecuteAsync("ALTER TABLE todos DROP COLUMN title");
        await env.ExecuteAsync("INSERT INTO todos VALUES (3, 8, 2)");
        await env.ExecuteAsync("ALTER TABLE todos RENAME COLUMN priority TO rank");
        await env.ExecuteAsync("ALTER TABLE todos ALTER COLUMN user_id TYPE bigint");
        await env.ExecuteAsync("UPDATE todos SET user_id = 9 WHERE id = 1");

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 4, "four changes");
        Assert.Equal(
        [
            "id:bigint=1,user_id:integer=7,title:text=before",
            "id:bigint=2,user_id:integer=7,title:text=added,priority:smallint=1",
            "id:bigint=3,user_id:integer=8,priority:smallint=2",
            "id:bigint=1,user_id:bigint=9,rank:smallint=3",
        ], changes.Select(Shape));
        await Eventually.Until(env.EdgesAsync, e => e.Count == 3 && e.Contains("todos|1|user:9"), "edges of the new shape");
        Assert.Equal(["todos|1|user:9", "todos|2|user:7", "todos|3|user:8"], await env.EdgesAsync());
    }

    [Trait("Versions", "all")]
    [Fact]
    public async Task a_large_value_left_unchanged_by_an_update_is_never_emitted_and_the_checksum_sees_the_full_row()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint, title text, body text)");
        // Random hex does not compress well, so 100 kB stays far above the TOAST threshold.
        await env.ExecuteAsync("INSERT INTO docs SELECT 1, 7, 'draft', string_agg(md5(random()::text), '') FROM generate_series(1, 3200)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.docs", "public.docs");
        await env.StartBridgeAsync(("docs", "user_id"));

        await env.ExecuteAsync("UPDATE docs SET title = 'final' WHERE id = 1");

        var update = (await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 1, "the update")).Single();
        var body = update.NewRow!["body"];
        Assert.Equal((V2.UnsentReason.UnchangedToast, null), (body.Unsent, body.Text));
        Assert.Equal("final", update.NewRow!["title"].Text);

        var fullRow = (await env.RowsAsync("SELECT id::text, user_id::text, title, body FROM docs")).Single().Split('|');
        Assert.Equal(102_400, fullRow[3].Length);
        var expectedChecksum = RowJson.Checksum(
        [
            ColumnValue.Of("id", "bigint", fullRow[0]), ColumnValue.Of("user_id", "bigint", fullRow[1]),
            ColumnValue.Of("title", "text", fullRow[2]), ColumnValue.Of("body", "text", fullRow[3]),
        ]);
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n == 1, "the update applied");
        Assert.Equal(expectedChecksum, await env.ScalarAsync<int>("SELECT checksum FROM sync_bucket_edges WHERE record_id = '1'"));
        Assert.Equal(["user:7|docs|1|1"], await env.ChangelogAsync());
    }

    [Trait("Versions", "all")]
    [Fact]
    public async Task truncate_is_published_and_removes_every_record_from_every_bucket()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.truncate", "public.todos");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7), (2, 7), (3, NULL)");
        await Eventually.Until(env.EdgesAsync, e => e.Count == 3, "three edges");
        await env.ExecuteAsync("TRUNCATE todos");
        await env.ExecuteAsync("INSERT INTO todos VALUES (4, 8)");

        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 7, "seven changelog rows");
        Assert.Equal(
            ["user:7|todos|1|1", "user:7|todos|2|1", "global|todos|3|1", "user:7|todos|1|3", "user:7|todos|2|3", "global|todos|3|3", "user:8|todos|4|1"],
            await env.ChangelogAsync());
        Assert.Equal(["todos|4|user:8"], await env.EdgesAsync());
        await Eventually.Until(() => Task.FromResult(subscriber.Changes.Count), n => n == 5, "five published changes");
        Assert.Equal([V2.ChangeOperation.Insert, V2.ChangeOperation.Insert, V2.ChangeOperation.Insert, V2.ChangeOperation.Truncate, V2.ChangeOperation.Insert], subscriber.Changes.Select(c => c.Operation));
    }

    [Trait("Versions", "all")]
    [Fact]
    public async Task logical_decoding_messages_are_published_and_an_aborted_transactions_are_not()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.messages", [], ["audit.#"]);
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("BEGIN; SELECT pg_logical_emit_message(true, 'audit.aborted', 'never'); INSERT INTO todos VALUES (9, 9); ROLLBACK");
        await env.ExecuteAsync("SELECT pg_logical_emit_message(false, 'audit.now', 'at once')");
        await env.ExecuteAsync("BEGIN; INSERT INTO todos VALUES (1, 7); SELECT pg_logical_emit_message(true, 'audit.tx', convert_to('in a transaction ✓', 'UTF8')); COMMIT");
        await env.ExecuteAsync("SELECT pg_logical_emit_message(true, 'other', 'not bound')");

        var messages = await Eventually.Until(() => Task.FromResult(subscriber.Messages.ToList()), m => m.Count == 2, "two messages");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the committed insert applied");
        Assert.Equal(
            [("audit.now", "at once", false, false), ("audit.tx", "in a transaction ✓", true, true)],
            messages.OrderBy(m => m.MessageLsn).Select(m => (m.Prefix, Encoding.UTF8.GetString(m.Content), m.Transactional, m.CommitLsn is not null)));
        Assert.Equal(["user:7|todos|1|1"], await env.ChangelogAsync());
    }

    [Fact]
    public async Task a_composite_key_is_one_canonical_record_id()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE memberships (org_id bigint, member text, user_id bigint, role text, PRIMARY KEY (org_id, member))");
        await env.StartBridgeAsync(("memberships", "user_id"));

        await env.ExecuteAsync("INSERT INTO memberships VALUES (1, 'ann \"a\"', 7, 'owner'), (2, 'bob', 8, 'viewer')");
        await env.ExecuteAsync("UPDATE memberships SET role = 'admin' WHERE org_id = 1");
        await env.ExecuteAsync("UPDATE memberships SET member = 'robert' WHERE org_id = 2");
        await env.ExecuteAsync("DELETE FROM memberships WHERE org_id = 1");

        string[] expected =
        [
            """user:7|memberships|["1","ann \u0022a\u0022"]|1""", """user:8|memberships|["2","bob"]|1""",
            """user:7|memberships|["1","ann \u0022a\u0022"]|2""",
            """user:8|memberships|["2","bob"]|3""", """user:8|memberships|["2","robert"]|1""",
            """user:7|memberships|["1","ann \u0022a\u0022"]|3""",
        ];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "six changelog rows"));
        Assert.Equal(["""memberships|["2","robert"]|user:8"""], await env.EdgesAsync());
    }

    [Fact]
    public async Task a_soft_delete_leaves_the_buckets_and_an_undelete_re_enters_them()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, deleted_at timestamptz)");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, NULL)");
        await env.ExecuteAsync("UPDATE todos SET deleted_at = now() WHERE id = 1");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 2, "the soft delete applied");
        Assert.Empty(await env.EdgesAsync());
        await env.ExecuteAsync("UPDATE todos SET deleted_at = NULL WHERE id = 1");

        Assert.Equal(["user:7|todos|1|1", "user:7|todos|1|3", "user:7|todos|1|1"], await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "the undelete applied"));
        Assert.Equal(["todos|1|user:7"], await env.EdgesAsync());
    }

    [Fact]
    public async Task an_aborted_large_transaction_leaves_no_trace()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("BEGIN; INSERT INTO todos SELECT g, g % 10 FROM generate_series(1, 200000) g; ROLLBACK");
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        var written = await env.CurrentWalLsnAsync();

        await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn >= written, "the slot past the marker");
        Assert.Equal(["user:7|todos|1|1"], await env.ChangelogAsync());
        Assert.Equal(1L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_record_positions"));
    }

    [Fact]
    public async Task replica_identity_full_still_identifies_rows_by_primary_key()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, title text); ALTER TABLE todos REPLICA IDENTITY FULL");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.full", "public.todos");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'a')");
        await env.ExecuteAsync("UPDATE todos SET title = 'b' WHERE id = 1");
        await env.ExecuteAsync("DELETE FROM todos WHERE id = 1");

        Assert.Equal(["user:7|todos|1|1", "user:7|todos|1|2", "user:7|todos|1|3"], await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "three rows"));
        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 3, "three changes");
        Assert.All(changes, c => Assert.Equal("1", c.RecordId));
        Assert.Equal("id=1,user_id=7,title=b", string.Join(",", changes[2].OldRow!.Select(v => $"{v.Name}={v.Text}")));
    }

    [Fact]
    public async Task the_publication_follows_the_configured_tables()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint); CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint)");
        var published = $"SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = '{env.Name}'";

        var first = await env.StartBridgeAsync(("todos", "user_id"));
        Assert.Equal("todos", await env.ScalarAsync<string>(published));
        await first.StopAsync();

        var second = await env.StartBridgeAsync(("todos", "user_id"), ("orders", "user_id"));
        Assert.Equal("orders,todos", await env.ScalarAsync<string>(published));
        await second.StopAsync();

        await env.StartBridgeAsync(("orders", "user_id"));
        Assert.Equal("orders", await env.ScalarAsync<string>(published));
    }

    [Fact]
    public async Task the_origin_of_a_replayed_transaction_is_carried_on_its_changes()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.origin", "public.todos");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        // The origin is stamped on the commit record, so each statement commits on its own, in one session.
        await using (var session = await env.DataSource.OpenConnectionAsync())
        {
            foreach (var sql in new[]
            {
                $"SELECT pg_replication_origin_create('{env.Name}_upstream')",
                $"SELECT pg_replication_origin_session_setup('{env.Name}_upstream')",
                "INSERT INTO todos VALUES (2, 7)",
                "SELECT pg_replication_origin_session_reset()",
                $"SELECT pg_replication_origin_drop('{env.Name}_upstream')",
            })
            {
                await using var command = new Npgsql.NpgsqlCommand(sql, session);
                await command.ExecuteNonQueryAsync();
            }
        }

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 2, "two changes");
        Assert.Equal([("1", null), ("2", $"{env.Name}_upstream")], changes.Select(c => (c.RecordId, c.Origin)));
    }

    [Fact]
    public async Task a_table_that_loses_its_key_mid_stream_stops_the_bridge_with_nothing_acknowledged_past_it()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        using var host = TestEnvironment.BuildBridge(env.BridgeSettings(("todos", "user_id")));
        using var errors = new StringWriter();
        var running = Synchro.Bridge.Hosting.CommandLine.RunHostAsync(host, errors, CancellationToken.None);
        await Eventually.Until(() => env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active)"), "the bridge to hold the slot");

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the first insert applied");
        var beforeKeyless = await env.CurrentWalLsnAsync();
        await env.ExecuteAsync("ALTER TABLE todos DROP CONSTRAINT todos_pkey");
        await env.ExecuteAsync("INSERT INTO todos VALUES (2, 7)");

        var exitCode = await running.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(1, exitCode);
        Assert.Equal(
            "synchro-bridge: Table public.todos has no primary key and no replica identity index, so its rows cannot be identified. Add a primary key (ALTER TABLE public.todos ADD PRIMARY KEY (...)) or set REPLICA IDENTITY USING INDEX on a unique index, or remove it from Synchro:Tables.",
            errors.ToString().TrimEnd());
        Assert.True(await env.ConfirmedFlushLsnAsync() <= beforeKeyless, "the slot must not pass the change it could not decode");
        Assert.Equal(["user:7|todos|1|1"], await env.ChangelogAsync());
    }
}
