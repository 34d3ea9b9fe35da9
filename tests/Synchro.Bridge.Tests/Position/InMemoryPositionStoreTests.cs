using Synchro.Bridge.Position;

namespace Synchro.Bridge.Tests.Position;

public sealed class InMemoryPositionStoreTests : PositionStoreContract
{
    protected override Task<IPositionStore> CreateStoreAsync() => Task.FromResult<IPositionStore>(new InMemoryPositionStore());
}
