using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Position;
using Synchro.Bridge.Tests.Position;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.IntegrationTests.Position;

public sealed class PostgresPositionStoreTests : PositionStoreContract, IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await TestEnvironment.CreateAsync(nameof(PostgresPositionStoreTests));

    public async Task DisposeAsync() => await _env.DisposeAsync();

    protected override async Task<IPositionStore> CreateStoreAsync()
    {
        var tables = new SidecarTables("public");
        await tables.MigrateAsync(_env.DataSource, CancellationToken.None);
        await _env.ExecuteAsync("TRUNCATE sync_wal_position");
        return new PostgresPositionStore(_env.DataSource, new SidecarSessions(_env.DataSource, NullLogger<SidecarSessions>.Instance), tables);
    }
}
