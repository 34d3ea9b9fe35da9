using Synchro.Bridge.Position;

namespace Synchro.Bridge.Tests.Position;

/// <summary>What every position store must do; run against each implementation.</summary>
public abstract class PositionStoreContract
{
    protected abstract Task<IPositionStore> CreateStoreAsync();

    [Fact]
    public async Task a_slot_without_a_stored_position_has_none()
    {
        var store = await CreateStoreAsync();
        Assert.Null(await store.LoadAsync("never_saved", CancellationToken.None));
    }

    [Fact]
    public async Task the_saved_position_is_loaded_per_slot()
    {
        var store = await CreateStoreAsync();
        await store.SaveAsync("slot_a", 0x16_B374D848, CancellationToken.None);
        await store.SaveAsync("slot_b", 42, CancellationToken.None);

        Assert.Equal(0x16_B374D848UL, await store.LoadAsync("slot_a", CancellationToken.None));
        Assert.Equal(42UL, await store.LoadAsync("slot_b", CancellationToken.None));
    }

    [Fact]
    public async Task a_forgotten_position_is_gone_and_other_slots_keep_theirs()
    {
        var store = await CreateStoreAsync();
        await store.SaveAsync("slot_a", 500, CancellationToken.None);
        await store.SaveAsync("slot_b", 600, CancellationToken.None);

        await store.ForgetAsync("slot_a", CancellationToken.None);

        Assert.Null(await store.LoadAsync("slot_a", CancellationToken.None));
        Assert.Equal(600UL, await store.LoadAsync("slot_b", CancellationToken.None));
        await store.SaveAsync("slot_a", 100, CancellationToken.None);
        Assert.Equal(100UL, await store.LoadAsync("slot_a", CancellationToken.None));
    }

    [Fact]
    public async Task a_lower_position_never_moves_the_stored_one_back()
    {
        var store = await CreateStoreAsync();
        await store.SaveAsync("slot_a", 500, CancellationToken.None);
        await store.SaveAsync("slot_a", 300, CancellationToken.None);
        Assert.Equal(500UL, await store.LoadAsync("slot_a", CancellationToken.None));

        await store.SaveAsync("slot_a", 700, CancellationToken.None);
        Assert.Equal(700UL, await store.LoadAsync("slot_a", CancellationToken.None));
    }
}
