using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

public sealed class HealthTests
{
    [Fact]
    public async Task a_running_bridge_keeps_its_health_file_fresh_and_healthy()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var path = Path.Combine(Path.GetTempPath(), env.Name + ".health");
        File.Delete(path);
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:Health:File"] = path;
        using var host = TestEnvironment.BuildBridge(settings);
        await host.StartAsync();
        try
        {
            var (healthy, detail) = await Eventually.Until(
                () => HealthFile.CheckAsync(path, TimeSpan.FromSeconds(15), DateTimeOffset.UtcNow, CancellationToken.None),
                result => result.Healthy, "a healthy health file");
            Assert.Equal((true, "running"), (healthy, detail));

            var (staleHealthy, staleDetail) = await HealthFile.CheckAsync(path, TimeSpan.FromSeconds(15), DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None);
            Assert.False(staleHealthy);
            Assert.Contains("the bridge is hung or stopped", staleDetail, StringComparison.Ordinal);
        }
        finally
        {
            await host.StopAsync();
            File.Delete(path);
        }
    }

    [Fact]
    public async Task no_health_file_means_not_running()
    {
        var (healthy, detail) = await HealthFile.CheckAsync("/nonexistent/synchro.health", TimeSpan.FromSeconds(15), DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.False(healthy);
        Assert.Equal("health file /nonexistent/synchro.health does not exist: the bridge is not running (or not yet started).", detail);
    }
}
