using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Replication;

/// <summary>Regression tests: unchanged TOAST values never turn later DDL into a stall, and a key stored out of line never stops the bridge.</summary>
public sealed class UnchangedToastTests
{
    [Fact]
    public async Task a_column_dropped_before_a_lagging_apply_never_stalls_the_bucket_consumer()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint, title text, body text)");
        await env.ExecuteAsync("INSERT INTO docs SELECT 1, 7, 'draft', string_agg(md5(random()::text), '') FROM generate_series(1, 3200)");
        var reader = env.BridgeSettings(("docs", "user_id"));
        reader["Synchro:Roles"] = "Replication";
        var consumer = env.BridgeSettings(("docs", "user_id"));
        consumer["Synchro:Roles"] = "Buckets";
        using var consumerHost = TestEnvironment.BuildBridge(consumer);
        await consumerHost.StartAsync(); // declares the bucket queue, then stops: the apply lags
        await consumerHost.StopAsync();
        using var readerHost = TestEnvironment.BuildBridge(reader);
        await readerHost.StartAsync();

        await env.ExecuteAsync("UPDATE docs SET title = 'final' WHERE id = 1");
        await env.ExecuteAsync("ALTER TABLE docs DROP COLUMN body");
        using var lagging = TestEnvironment.BuildBridge(consumer);
        await lagging.StartAsync();
        try
        {
            await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the update applied");
            Assert.Equal(["user:7|docs|1|1"], await env.ChangelogAsync());
            Assert.Equal(0L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_apply_holds"));
        }
        finally
        {
            await lagging.StopAsync();
            await readerHost.StopAsync();
        }
    }

    [Fact]
    public async Task a_primary_key_stored_out_of_line_identifies_its_row_on_update()
    {
        await using var env = await TestEnvironment.CreateAsync();
        // EXTERNAL: no compression, so a 2.6 kB key (past the 2 kB TOAST threshold, inside btree's 2.7 kB limit)
        // is stored out of line, and an update's new tuple carries it as unchanged-TOAST.
        await env.ExecuteAsync("CREATE TABLE notes (id text PRIMARY KEY, user_id bigint, title text); ALTER TABLE notes ALTER COLUMN id SET STORAGE EXTERNAL");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.notes", "public.notes");
        await env.StartBridgeAsync(("notes", "user_id"));
        var key = await env.ScalarAsync<string>("SELECT string_agg(md5(g::text), '') FROM generate_series(1, 81) g");

        await env.ExecuteAsync($"INSERT INTO notes VALUES ('{key}', 7, 'draft')");
        await env.ExecuteAsync($"UPDATE notes SET title = 'final' WHERE id = '{key}'");

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 2, "the insert and the update");
        Assert.All(changes, c => Assert.Equal(key, c.RecordId));
        Assert.Equal(key, changes[1].NewRow!["id"].Text);
        Assert.Equal(
            [$"user:7|notes|{key}|1", $"user:7|notes|{key}|2"],
            await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 2, "both applied"));
    }

    [Trait("Versions", "all")]
    [Fact]
    public async Task a_key_change_arrives_as_one_update_naming_the_old_identity_with_a_complete_new_row()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint, body text)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.rekey", "public.docs");
        await env.StartBridgeAsync(("docs", "user_id"));
        await env.ExecuteAsync("INSERT INTO docs SELECT 1, 7, string_agg(md5(g::text), '') FROM generate_series(1, 3200) g");
        var body = await env.ScalarAsync<string>("SELECT body FROM docs");

        // The new tuple leaves the out-of-line body unchanged, and the old key does not carry it.
        await env.ExecuteAsync("UPDATE docs SET id = 2 WHERE id = 1");

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 2, "the insert and the key change");
        Assert.Equal([ChangeOperation.Insert, ChangeOperation.Update], changes.Select(c => c.Operation));
        var keyChange = changes[1];
        Assert.Equal(("2", "1"), (keyChange.RecordId, keyChange.OldRecordId));
        Assert.Equal(body, keyChange.NewRow!["body"].Text);
        // The old image is the old key: its other columns are marked unsent, never NULL.
        Assert.Equal(["id=1", "user_id=NotInOldKey", "body=NotInOldKey"], keyChange.OldRow!.Select(v => $"{v.Name}={v.Text ?? v.Unsent.ToString()}"));
        // The bucket consumer still sees the move as a delete of the old record and an insert of the new one.
        Assert.Equal(["user:7|docs|1|1", "user:7|docs|1|3", "user:7|docs|2|1"], await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "the move applied"));
    }
}
