using Npgsql;

namespace Synchro.Bridge.Replication;

/// <summary>
/// The server whose slot the bridge reads: the primary itself, or a hot standby of it
/// (<c>Synchro:Postgres:DecodingConnectionString</c>, PostgreSQL 16+), which takes decoding off the
/// primary. Only the slot lives there: its creation, its holder, the stream and the exported
/// snapshot the initial snapshot reads. The sidecar tables, watermarks and the publication are
/// written on the primary, and reach the standby, like every other write, through its WAL.
/// </summary>
internal sealed class DecodingServer : IAsyncDisposable
{
    private static readonly TimeSpan StandbySnapshotInterval = TimeSpan.FromMilliseconds(500);

    private readonly NpgsqlDataSource? _standby;

    public DecodingServer(NpgsqlDataSource primary, string primaryConnectionString, string? standbyConnectionString)
    {
        Primary = primary;
        if (string.IsNullOrWhiteSpace(standbyConnectionString))
        {
            ConnectionString = primaryConnectionString;
        }
        else
        {
            ConnectionString = standbyConnectionString;
            _standby = NpgsqlDataSource.Create(standbyConnectionString);
        }
    }

    /// <summary>The primary: sidecar tables, publication, watermarks.</summary>
    public NpgsqlDataSource Primary { get; }

    /// <summary>Where the slot is: the standby when one is configured, else the primary.</summary>
    public NpgsqlDataSource DataSource => _standby ?? Primary;

    /// <summary>The connection string of <see cref="DataSource"/> (the replication connection is made from it).</summary>
    public string ConnectionString { get; }

    /// <summary>True when the slot is on a standby's connection string (it stays so after that standby is promoted).</summary>
    public bool OnStandby => _standby is not null;

    /// <summary>
    /// Runs a slot creation. On a standby it waits for the primary to log its running transactions
    /// (xl_running_xacts, every 15 s on an idle primary): the primary is asked to log them now
    /// (<c>pg_log_standby_snapshot()</c>) every half second until the creation returns.
    /// </summary>
    public async Task<T> CreatingSlotAsync<T>(Func<CancellationToken, Task<T>> create, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(create);
        if (!OnStandby)
            return await create(cancellationToken);
        using var created = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var nudging = NudgeAsync(created.Token);
        try
        {
            return await create(cancellationToken);
        }
        finally
        {
            await created.CancelAsync();
            await nudging;
        }
    }

    private async Task NudgeAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await using (var command = Primary.CreateCommand("SELECT pg_log_standby_snapshot() WHERE NOT pg_is_in_recovery()"))
                    await command.ExecuteNonQueryAsync(cancellationToken);
                await Task.Delay(StandbySnapshotInterval, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // the slot exists (or its creation failed, with its own error)
        }
        catch (NpgsqlException)
        {
            // A primary that is away (a fail-over) only makes the creation wait for the next record.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_standby is not null)
            await _standby.DisposeAsync();
    }
}
