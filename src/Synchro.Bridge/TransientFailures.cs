using System.Net.Sockets;
using MassTransit;
using Npgsql;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RabbitMQ.Client.Exceptions;

namespace Synchro.Bridge;

/// <summary>
/// Which failures are worth retrying: lost or refused connections, a server shutting down or
/// restarting, a deadline that passed. Everything else (a bug, bad data, an error PostgreSQL reports
/// about our own request) is deterministic: retrying it unchanged gives the same result.
/// </summary>
public static class TransientFailures
{
    public static bool IsTransient(Exception error) => error switch
    {
        null => false,
        SynchroTransientException => true,
        PostgresException postgres => postgres.IsTransient || postgres.SqlState is
            PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
            or PostgresErrorCodes.ConnectionFailure or PostgresErrorCodes.ConnectionException or PostgresErrorCodes.TooManyConnections,
        // Several hosts: the failures of each come inside; none of them primary (a fail-over half way) comes bare.
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is { } inner && IsTransient(inner)
            || npgsql.InnerException is null && npgsql.Message.StartsWith("No suitable host", StringComparison.Ordinal),
        SocketException or IOException or TimeoutException => true,
        BrokerUnreachableException or AlreadyClosedException or OperationInterruptedException or ConnectFailureException => true,
        RabbitMqConnectionException or RequestTimeoutException => true,
        BrokenCircuitException or TimeoutRejectedException => true,
        AggregateException aggregate => aggregate.InnerExceptions.Count > 0 && aggregate.InnerExceptions.All(IsTransient),
        _ => false,
    };
}

/// <summary>A condition of our own making that clears by itself (a deadline, a server that went away): retried with back-off.</summary>
public class SynchroTransientException : Exception
{
    public SynchroTransientException() { }

    public SynchroTransientException(string message) : base(message) { }

    public SynchroTransientException(string message, Exception innerException) : base(message, innerException) { }
}
