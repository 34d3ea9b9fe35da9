using System.Globalization;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Replication;

/// <summary>Every common PostgreSQL type, from an INSERT to the published contract, exactly.</summary>
public sealed class TypeMappingTests
{
    // Column, type, inserted literal.
    private static readonly (string Column, string Type, string Literal)[] Zoo =
    [
        ("c_bool", "boolean", "true"),
        ("c_int2", "smallint", "-32768"),
        ("c_int4", "integer", "2147483647"),
        ("c_int8", "bigint", "-9223372036854775808"),
        ("c_numeric", "numeric(38,9)", "12345678901234567890.123456789"),
        ("c_numeric_nan", "numeric", "'NaN'"),
        ("c_float4", "real", "3.14159"),
        ("c_float8", "double precision", "2.718281828459045"),
        ("c_float_nan", "double precision", "'NaN'"),
        ("c_float_inf", "double precision", "'Infinity'"),
        ("c_float_ninf", "double precision", "'-Infinity'"),
        ("c_text", "text", "'line one\nline \"two\" \\ tab\t end'"),
        ("c_empty", "text", "''"),
        ("c_null", "text", "NULL"),
        ("c_unicode", "text", "'héllo wörld — 日本語 🌍 '"),
        ("c_varchar", "character varying(12)", "'varying'"),
        ("c_char", "character(5)", "'ab'"),
        ("c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
        ("c_date", "date", "'2026-11-23'"),
        ("c_time", "time without time zone", "'13:14:15.123456'"),
        ("c_timetz", "time with time zone", "'13:14:15+05:30'"),
        ("c_timestamp", "timestamp without time zone", "'2026-11-23 13:14:15.654321'"),
        ("c_timestamptz", "timestamp with time zone", "'2026-11-23 13:14:15.5+02'"),
        ("c_interval", "interval", "'1 year 2 months 3 days 04:05:06.789'"),
        ("c_bytea", "bytea", "'\\x00ff10'::bytea"),
        ("c_json", "json", "'{\"b\": [1, 2], \"a\": null}'"),
        ("c_jsonb", "jsonb", "'{\"b\": [1, 2], \"a\": \"ü\"}'"),
        ("c_int_array", "integer[]", "'{{1,NULL},{3,4}}'"),
        ("c_text_array", "text[]", "ARRAY['a b', NULL, 'quote\"d', '']"),
        ("c_enum", "mood", "'happy'"),
        ("c_domain", "positive_int", "42"),
        ("c_composite", "point3", "ROW(1, 'x y')"),
        ("c_int4range", "int4range", "'[1,10)'"),
        ("c_tstzrange", "tstzrange", "'[2026-01-01 00:00+00,2026-02-01 00:00+00)'"),
        ("c_inet", "inet", "'192.168.1.7/24'"),
        ("c_cidr", "cidr", "'10.0.0.0/8'"),
        ("c_macaddr", "macaddr", "'08:00:2b:01:02:03'"),
        ("c_money", "money", "12.34"),
        ("c_bit", "bit(4)", "B'1010'"),
        ("c_varbit", "bit varying(8)", "B'101'"),
    ];

    [Fact]
    public async Task every_listed_type_round_trips_from_insert_to_the_published_contract()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            $"""
            CREATE TYPE mood AS ENUM ('sad', 'happy');
            CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
            CREATE TYPE point3 AS (x integer, label text);
            CREATE TABLE zoo (id bigint PRIMARY KEY, {string.Join(", ", Zoo.Select(z => $"{z.Column} {z.Type}"))});
            """);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.zoo", "public.zoo");
        await env.StartBridgeAsync(("zoo", null));

        await env.ExecuteAsync($"INSERT INTO zoo VALUES (1, {string.Join(", ", Zoo.Select(z => z.Literal))})");

        var change = (await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 1, "the zoo row")).Single();
        var row = change.NewRow!.ToDictionary(v => v.Name);
        // format('%s') applies each type's output function, which is what pgoutput sends.
        var expectedTexts = (await env.RowsAsync($"SELECT {string.Join(", ", Zoo.Select(z => $"format('%s', {z.Column})"))} FROM zoo")).Single().Split('|');
        for (var i = 0; i < Zoo.Length; i++)
        {
            var (column, type, _) = Zoo[i];
            var value = row[column];
            Assert.Equal(type, value.Type);
            if (column == "c_null")
                Assert.True(value.IsNull);
            else
                Assert.Equal((column, true, expectedTexts[i]), (column, value.IsSent, value.Text));
        }

        Assert.True(row["c_bool"].AsBoolean());
        Assert.Equal(short.MinValue, row["c_int2"].AsInt64());
        Assert.Equal(long.MinValue, row["c_int8"].AsInt64());
        Assert.Equal(12345678901234567890.123456789m, row["c_numeric"].AsDecimal());
        Assert.Equal("NaN", row["c_numeric_nan"].Text);
        Assert.Equal(2.718281828459045, row["c_float8"].AsDouble());
        Assert.Equal(3.14159f, (float)row["c_float4"].AsDouble());
        Assert.True(double.IsNaN(row["c_float_nan"].AsDouble()));
        Assert.Equal(double.PositiveInfinity, row["c_float_inf"].AsDouble());
        Assert.Equal(double.NegativeInfinity, row["c_float_ninf"].AsDouble());
        Assert.Equal("line one\nline \"two\" \\ tab\t end", row["c_text"].Text);
        Assert.Equal((false, ""), (row["c_empty"].IsNull, row["c_empty"].Text));
        Assert.Equal("héllo wörld — 日本語 🌍 ", row["c_unicode"].Text);
        Assert.Equal("ab   ", row["c_char"].Text);
        Assert.Equal(Guid.Parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), row["c_uuid"].AsGuid());
        Assert.Equal(new DateOnly(2026, 11, 23), row["c_date"].AsDate());
        Assert.Equal(new DateTime(2026, 11, 23, 13, 14, 15, 654, 321), row["c_timestamp"].AsDateTime());
        Assert.Equal(new DateTimeOffset(2026, 11, 23, 11, 14, 15, 500, TimeSpan.Zero), row["c_timestamptz"].AsDateTimeOffset());
        Assert.Equal([0x00, 0xff, 0x10], row["c_bytea"].AsBytes());
        Assert.Equal("""{"b": [1, 2], "a": null}""", row["c_json"].Text);
        Assert.Equal("""{"a": "ü", "b": [1, 2]}""", row["c_jsonb"].Text);
        Assert.Equal([new List<object?> { "1", null }, new List<object?> { "3", "4" }], row["c_int_array"].AsArray());
        Assert.Equal(["a b", null, "quote\"d", ""], row["c_text_array"].AsArray());
        Assert.Equal("happy", row["c_enum"].Text);
        Assert.Equal(42, row["c_domain"].AsInt64());
        Assert.Equal("(1,\"x y\")", row["c_composite"].Text);
        Assert.Equal("[1,10)", row["c_int4range"].Text);
        Assert.Equal("192.168.1.7/24", row["c_inet"].Text);
        Assert.Equal("1010", row["c_bit"].Text);
        Assert.Equal("101", row["c_varbit"].Text);
        Assert.Equal(string.Format(CultureInfo.InvariantCulture, "${0}", "12.34"), row["c_money"].Text);
    }

    [Fact]
    public async Task value_texts_are_the_same_from_the_stream_and_a_snapshot_whatever_the_database_sets_for_its_sessions()
    {
        await using var env = await TestEnvironment.CreateAsync();
        // Settings an operator may have given the database (or the role): they would shape every value text.
        await env.ExecuteAsync(
            $"""
            ALTER DATABASE "{env.Name}" SET TimeZone = 'Asia/Kolkata';
            ALTER DATABASE "{env.Name}" SET DateStyle = 'SQL, DMY';
            ALTER DATABASE "{env.Name}" SET IntervalStyle = 'sql_standard';
            ALTER DATABASE "{env.Name}" SET bytea_output = 'escape';
            ALTER DATABASE "{env.Name}" SET extra_float_digits = 0;
            CREATE TABLE shaped (id bigint PRIMARY KEY, at timestamptz, day date, span interval, bytes bytea, ratio double precision);
            INSERT INTO shaped VALUES (1, '2026-11-23 13:14:15.5+02', '2026-11-23', '1 year 2 months 3 days 04:05:06.789', '\x00ff10', 0.1::float8 + 0.2::float8);
            """);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.shaped", "public.shaped");
        await env.StartBridgeAsync(TestEnvironment.WithSnapshot(env.BridgeSettings(("shaped", null))));
        await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 1, "the snapshot's read");
        await env.ExecuteAsync("INSERT INTO shaped SELECT 2, at, day, span, bytes, ratio FROM shaped WHERE id = 1");

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 2, "the streamed insert");
        string[] Texts(Change change) => change.NewRow!.Skip(1).Select(v => v.Text!).ToArray();
        string[] expected = ["2026-11-23 11:14:15.5+00", "2026-11-23", "1 year 2 mons 3 days 04:05:06.789", "\\x00ff10", "0.30000000000000004"];
        Assert.Equal([ChangeOperation.Read, ChangeOperation.Insert], changes.Select(c => c.Operation));
        Assert.Equal(expected, Texts(changes[0]));
        Assert.Equal(expected, Texts(changes[1]));
    }
}
