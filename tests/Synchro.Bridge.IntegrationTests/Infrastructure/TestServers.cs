namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// Where the real servers are. scripts/servers.sh starts them and prints these variables; a missing
/// one fails the test with what to run, it never skips it.
/// </summary>
internal static class TestServers
{
    public static string Postgres => Require("SYNCHRO_TEST_PG");

    public static string PostgresWithReplicaWalLevel => Require("SYNCHRO_TEST_PG_WAL_REPLICA");

    public static string Amqp => Require("SYNCHRO_TEST_AMQP");

    /// <summary>The major version of <see cref="Postgres"/>, which servers.sh also installs for other clusters (a primary and standby pair).</summary>
    public static int PostgresVersion => int.Parse(Require("SYNCHRO_TEST_PG_VERSION"), System.Globalization.CultureInfo.InvariantCulture);

    public static Uri RabbitManagement => new(Require("SYNCHRO_RABBIT_MGMT_URL"));

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{variable} is not set, so this test cannot reach its server. Run the tests with scripts/test.sh (it starts PostgreSQL and RabbitMQ), or run eval \"$(scripts/servers.sh up)\" first.");
}
