using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>
/// Bad configuration and bad input, one row each: the bridge stops with exit code 2 and the exact
/// line a person reads, and has written nothing (no slot, no publication of its own, no sidecar
/// rows) and acknowledged nothing.
/// </summary>
public sealed class BadInputTests
{
    private const int Misconfigured = 2;

    /// <param name="Arrange">SQL run as the superuser in the test's database first ({db}, {role} are replaced).</param>
    /// <param name="Settings">Keys changed from a working configuration of table todos; null removes the key.</param>
    /// <param name="Expected">The line, after "synchro-bridge: " ({db}, {role}, {pg} replaced).</param>
    public sealed record BadInput(string Arrange, (string Key, string? Value)[] Settings, string Expected);

    private const string Todos = "CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, list_id bigint);";

    /// <summary>A role that may log in and replicate, but owns nothing.</summary>
    private const string Role = "CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'pw'; GRANT CONNECT ON DATABASE \"{db}\" TO {role}; GRANT USAGE ON SCHEMA public TO {role};";

    private static readonly (string, string?)[] AsRole = [("Synchro:Postgres:ConnectionString", "{role-connection}")];

    public static TheoryData<string, BadInput> Cases => new()
    {
        { "an unknown key", new(Todos, [("Synchro:Tabels:0:Name", "todos")],
            "configuration error: Synchro:Tabels is not a setting (did you mean Tables?); the settings are listed in the README's Configuration table.") },
        { "an unknown nested key", new(Todos, [("Synchro:Replication:SlotNmae", "x")],
            "configuration error: Synchro:Replication:SlotNmae is not a setting (did you mean SlotName?); the settings are listed in the README's Configuration table.") },
        { "a number that is not one", new(Todos, [("Synchro:Apply:Partitions", "four")],
            "configuration error: Synchro:Apply:Partitions = 'four' is not a whole number.") },
        { "a duration that is not one", new(Todos, [("Synchro:Batching:MaxBatchDelay", "100ms")],
            "configuration error: Synchro:Batching:MaxBatchDelay = '100ms' is not a duration (hh:mm:ss, for example 00:00:30).") },
        { "a boolean that is not one", new(Todos, [("Synchro:Replication:AcceptGap", "yes please")],
            "configuration error: Synchro:Replication:AcceptGap = 'yes please' is not true or false.") },
        { "an unknown role", new(Todos, [("Synchro:Roles", "Reader")],
            "configuration error: Synchro:Roles = 'Reader' is not one of None, Replication, Buckets, All (or several, separated by commas).") },
        { "a section given a value", new(Todos, [("Synchro:Apply", "4")],
            "configuration error: Synchro:Apply = '4': Synchro:Apply is a section with settings of its own (Partitions), not a value.") },
        { "zero apply partitions", new(Todos, [("Synchro:Apply:Partitions", "0")],
            "configuration error: Synchro:Apply:Partitions (0) must be between 1 and 64: one queue and one active consumer per partition.") },
        { "a batch larger than what may be in flight", new(Todos, [("Synchro:Batching:MaxBatchBytes", "20000000")],
            "configuration error: Synchro:Batching:MaxBatchBytes (20000000) must be at least 1 and at most half of MaxInFlightBytes (25165824), so one batch can be in flight while the next one fills.") },
        { "an HTTP address without a scheme", new(Todos, [("Synchro:Http:Urls", "localhost:9464")],
            "configuration error: Synchro:Http:Urls has 'localhost:9464', which is not an address to listen on: write http://0.0.0.0:9464 (several separated by ';'), or leave it empty to serve no HTTP.") },
        { "an OTLP endpoint that is not a URI", new(Todos, [("Synchro:Telemetry:OtlpEndpoint", "collector:4317")],
            "configuration error: Synchro:Telemetry:OtlpEndpoint 'collector:4317' is not an HTTP URI: write the collector's OTLP/gRPC address, e.g. http://otel-collector:4317, or leave it empty.") },
        { "a broker URI that is not AMQP, with its password hidden", new(Todos, [("Synchro:RabbitMq:Uri", "http://bridge:s3cret@rabbit:15672/")],
            "configuration error: Synchro:RabbitMq:Uri 'http://bridge:***@rabbit:15672/' is not an AMQP URI: write amqp://user:password@host:5672/vhost, or leave it empty for the in-memory bus.") },
        { "no connection string and no tables", new("", [("Synchro:Postgres:ConnectionString", null), ("Synchro:Tables:0:Name", null), ("Synchro:Tables:0:OwnerColumn", null)],
            "configuration error: Synchro:Postgres:ConnectionString is missing: set it to the source database, e.g. Host=localhost;Username=synchro;Password=...;Database=app. Synchro:Tables is empty: list the tables to capture, e.g. Synchro__Tables__0__Name=public.todos and Synchro__Tables__0__OwnerColumn=user_id.") },
        { "a database that does not exist", new(Todos, [("Synchro:Postgres:ConnectionString", "{pg};Database=no_such_db")],
            "Cannot connect to PostgreSQL at 127.0.0.1:{port}, database 'no_such_db' (3D000: database \"no_such_db\" does not exist). Start PostgreSQL or fix Synchro:Postgres:ConnectionString.") },
        { "a role that does not exist", new(Todos, [("Synchro:Postgres:ConnectionString", "{no-role-connection}")],
            "Cannot connect to PostgreSQL at 127.0.0.1:{port}, database '{db}' (28000: role \"no_such_role\" does not exist). Start PostgreSQL or fix Synchro:Postgres:ConnectionString.") },
        { "a RabbitMQ virtual host that does not exist", new(Todos, [("Synchro:RabbitMq:Uri", "{amqp-root}no_such_vhost")],
            "Cannot reach RabbitMQ at {amqp-root-redacted}no_such_vhost (the broker closed the connection: NOT_ALLOWED - vhost no_such_vhost not found). Start RabbitMQ, or fix Synchro:RabbitMq:Uri (host, port, user, password, virtual host).") },
        { "a table that does not exist", new("", [],
            "Table public.todos does not exist in database '{db}'. Create it, or remove it from Synchro:Tables.") },
        { "a view instead of a table", new("CREATE TABLE t0 (id bigint PRIMARY KEY, user_id bigint); CREATE VIEW todos AS SELECT * FROM t0;", [],
            "public.todos is not a table (relkind 'v'); only tables can be published. Remove it from Synchro:Tables.") },
        { "a table with REPLICA IDENTITY NOTHING", new(Todos + "ALTER TABLE todos REPLICA IDENTITY NOTHING;", [],
            "Table public.todos has REPLICA IDENTITY NOTHING, so its deletes and key changes reach the stream without a key. Run ALTER TABLE public.todos REPLICA IDENTITY DEFAULT.") },
        { "a table without a key", new("CREATE TABLE todos (id bigint, user_id bigint);", [],
            "Table public.todos has no primary key and no replica identity index, so its rows cannot be identified. Add a primary key (ALTER TABLE public.todos ADD PRIMARY KEY (...)) or set REPLICA IDENTITY USING INDEX on a unique index, or remove it from Synchro:Tables.") },
        { "an owner column that does not exist", new(Todos, [("Synchro:Tables:0:OwnerColumn", "owner_id")],
            "The bucket rules cannot be used: Synchro:Tables:0 (public.todos): owner column 'owner_id' does not exist in public.todos; set OwnerColumn to one of its columns (id, list_id, user_id).") },
        { "a rule function that does not exist", new(Todos, [("Synchro:Tables:0:OwnerColumn", null), ("Synchro:Tables:0:Function", "public.todo_buckets")],
            "The bucket rules cannot be used: Synchro:Tables:0 (public.todos): function public.todo_buckets(text, text, jsonb, jsonb) returning setof text does not exist. Create it (CREATE FUNCTION public.todo_buckets(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text ...) or fix Function.") },
        { "a role without REPLICATION", new(Todos + Role + "ALTER ROLE {role} NOREPLICATION; GRANT SELECT ON todos TO {role};", AsRole,
            "Role '{role}' may not start replication. Run ALTER ROLE {role} WITH REPLICATION, or connect as a role that has it.") },
        { "a role that may not read the table", new(Todos + Role, AsRole,
            "Role '{role}' may not read public.todos. Run GRANT SELECT ON public.todos TO {role}.") },
        { "a role that may not create the sidecar tables", new(Todos + Role + "GRANT SELECT ON todos TO {role};", AsRole,
            "Role '{role}' may not create the sidecar tables in schema \"public\" (permission denied for schema public). Run GRANT CREATE ON SCHEMA \"public\" TO {role}, or set Synchro:Postgres:SidecarSchema to a schema it owns.") },
        { "a publication FOR ALL TABLES under the bridge's name", new(Todos + "CREATE PUBLICATION \"{db}\" FOR ALL TABLES;", [],
            "Publication '{db}' publishes ALL TABLES; the bridge manages its own publication of exactly Synchro:Tables. Drop it or choose another Synchro:Replication:PublicationName.") },
        { "a publication that leaves out deletes and truncates", new(Todos + "CREATE PUBLICATION \"{db}\" FOR TABLE todos WITH (publish = 'insert, update');", [],
            "Not started: publication '{db}' does not publish delete, truncate, so those changes never reach the bridge; run ALTER PUBLICATION \"{db}\" SET (publish = 'insert, update, delete, truncate').") },
        { "a publication with a row filter", new(Todos + "CREATE PUBLICATION \"{db}\" FOR TABLE todos WHERE (user_id > 0);", [],
            "Not started: publication '{db}' publishes public.todos with a row filter (WHERE), so rows or columns are left out of the stream; publish whole tables: ALTER PUBLICATION \"{db}\" SET TABLE \"public\".\"todos\".") },
        { "a publication with a column list", new(Todos + "CREATE PUBLICATION \"{db}\" FOR TABLE todos (id, user_id);", [],
            "Not started: publication '{db}' publishes public.todos with a column list, so rows or columns are left out of the stream; publish whole tables: ALTER PUBLICATION \"{db}\" SET TABLE \"public\".\"todos\".") },
        { "a partition instead of its partitioned table", new("CREATE TABLE orders (id bigint, region text, user_id bigint, PRIMARY KEY (id, region)) PARTITION BY LIST (region); CREATE TABLE todos PARTITION OF orders FOR VALUES IN ('eu');", [],
            "Table public.todos is a partition of public.orders: partitioned tables are published through their root, whose rule places every partition's rows. Put public.orders in Synchro:Tables instead of public.todos.") },
        { "a decoding server that is not a standby of the primary", new(Todos, [("Synchro:Postgres:DecodingConnectionString", "{other-cluster}")],
            "Synchro:Postgres:DecodingConnectionString names 127.0.0.1:{other-port}, database 'postgres', which is not a standby of the primary's database '{db}' (another cluster: its system identifier differs). Point it at a hot standby of the primary, same database, or leave it empty to read the slot on the primary.") },
        { "a slot of another plugin under the bridge's name", new(Todos + "SELECT pg_create_logical_replication_slot('{db}', 'test_decoding');", [],
            "Replication slot '{db}' exists but is a test_decoding slot of database '{db}'; the bridge needs a pgoutput slot of '{db}'. Choose another Synchro:Replication:SlotName or drop that slot.") },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task bad_input_stops_the_bridge_with_one_exact_line_and_writes_nothing(string kind, BadInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        await using var env = await TestEnvironment.CreateAsync();
        var role = env.Name + "_r";
        string Fill(string text) => Replace(text, env, role);
        await env.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        try
        {
            // One statement at a time: creating a slot must not share a transaction with writes.
            foreach (var statement in Fill(input.Arrange).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                await env.ExecuteAsync(statement);
            var slotBefore = await env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}')");
            var publicationBefore = await env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{env.Name}')");
            var settings = env.BridgeSettings(("todos", "user_id"));
            foreach (var (key, value) in input.Settings)
            {
                if (value is null)
                    settings.Remove(key);
                else
                    settings[key] = Fill(value);
            }

            using var host = TestEnvironment.BuildBridge(settings);
            using var errors = new StringWriter();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            var exitCode = await CommandLine.RunHostAsync(host, errors, timeout.Token);
            NpgsqlConnection.ClearAllPools();

            var expected = "synchro-bridge: " + Fill(input.Expected);
            var actual = errors.ToString().TrimEnd();
            Assert.True((Misconfigured, expected) == (exitCode, actual), $"{kind}: expected exit {Misconfigured} and\n{expected}\ngot exit {exitCode} and\n{actual}");
            // Nothing written or acknowledged: no slot or publication the bridge made, no row in a sidecar table.
            Assert.Equal(slotBefore, await env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}')"));
            Assert.Equal(publicationBefore, await env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{env.Name}')"));
            Assert.Equal(0, await SidecarRowsAsync(env));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await env.ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND NOT active");
            if (await env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}')"))
                await env.ExecuteAsync($"DROP OWNED BY {role}; DROP ROLE {role}");
        }

        Assert.False(string.IsNullOrWhiteSpace(kind));
    }

    /// <summary>Rows in all sidecar tables of the test's database (those that exist).</summary>
    private static async Task<long> SidecarRowsAsync(TestEnvironment env)
    {
        var tables = await env.RowsAsync("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE tablename LIKE 'sync\\_%'");
        long rows = 0;
        foreach (var table in tables)
            rows += await env.ScalarAsync<long>($"SELECT count(*) FROM {table}");
        return rows;
    }

    [Fact]
    public void there_are_at_least_25_kinds_of_bad_input()
    {
        Assert.True(Cases.Count >= 25, $"{Cases.Count} kinds");
    }

    private static string Replace(string text, TestEnvironment env, string role)
    {
        var pg = new NpgsqlConnectionStringBuilder(env.ConnectionString);
        var amqp = new Uri(TestServers.Amqp);
        var amqpRoot = $"amqp://{amqp.UserInfo}@{amqp.Host}:{amqp.Port}/";
        var withoutDatabase = new NpgsqlConnectionStringBuilder(env.ConnectionString) { Database = null };
        var other = new NpgsqlConnectionStringBuilder(TestServers.PostgresWithReplicaWalLevel);
        return text
            .Replace("{other-cluster}", other.ConnectionString, StringComparison.Ordinal)
            .Replace("{other-port}", other.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{role-connection}", new NpgsqlConnectionStringBuilder(env.ConnectionString) { Username = role, Password = "pw" }.ConnectionString, StringComparison.Ordinal)
            .Replace("{no-role-connection}", new NpgsqlConnectionStringBuilder(env.ConnectionString) { Username = "no_such_role" }.ConnectionString, StringComparison.Ordinal)
            .Replace("{pg}", withoutDatabase.ConnectionString, StringComparison.Ordinal)
            .Replace("{port}", pg.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{amqp-root-redacted}", $"amqp://{amqp.UserInfo.Split(':')[0]}:***@{amqp.Host}:{amqp.Port}/", StringComparison.Ordinal)
            .Replace("{amqp-root}", amqpRoot, StringComparison.Ordinal)
            .Replace("{db}", env.Name, StringComparison.Ordinal)
            .Replace("{role}", role, StringComparison.Ordinal);
    }
}
