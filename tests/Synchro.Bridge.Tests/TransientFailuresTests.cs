using System.Net.Sockets;
using Npgsql;
using Polly.CircuitBreaker;

namespace Synchro.Bridge.Tests;

/// <summary>Only failures that clear by themselves are retried; a bug is not retried as if it were transient.</summary>
public sealed class TransientFailuresTests
{
    public static TheoryData<Exception, bool> Failures() => new()
    {
        { new NpgsqlException("broken", new IOException("reset")), true },
        { new NpgsqlException("socket", new SocketException()), true },
        { new PostgresException("shutting down", "FATAL", "FATAL", PostgresErrorCodes.CannotConnectNow), true },
        { new PostgresException("terminating", "FATAL", "FATAL", PostgresErrorCodes.AdminShutdown), true },
        { new TimeoutException(), true },
        { new BrokenCircuitException(), true },
        { new SynchroTransientException("deadline"), true },
        { new PostgresException("no such column", "ERROR", "ERROR", PostgresErrorCodes.UndefinedColumn), false },
        { new PostgresException("poisoned", "ERROR", "ERROR", PostgresErrorCodes.RaiseException), false },
        { new FormatException("bad data"), false },
        { new InvalidOperationException("bug"), false },
        { new SynchroException("operator must act"), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void transient_means_a_lost_connection_a_restarting_server_or_a_deadline(Exception failure, bool transient) =>
        Assert.Equal(transient, TransientFailures.IsTransient(failure));
}
