using System.Collections.Concurrent;
using System.Diagnostics;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>The bridge as its own process (<c>synchro-bridge run</c>), so its memory can be measured alone.</summary>
internal sealed class BridgeProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private BridgeProcess(Process process) => _process = process;

    /// <param name="heapLimitBytes">A hard cap on the GC heap: a bridge that held more live data would fail with OutOfMemoryException.</param>
    /// <param name="arguments">The command line after <c>synchro-bridge</c>; default <c>run</c>.</param>
    public static BridgeProcess Start(Dictionary<string, string?> settings, long? heapLimitBytes = null, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "synchro-bridge.dll"), .. arguments.Length == 0 ? ["run"] : arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in settings)
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        if (heapLimitBytes is { } limit)
            start.Environment["DOTNET_GCHeapHardLimit"] = "0x" + limit.ToString("X", System.Globalization.CultureInfo.InvariantCulture);

        var bridge = new BridgeProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start."));
        bridge._process.OutputDataReceived += (_, line) => bridge.Keep(line.Data);
        bridge._process.ErrorDataReceived += (_, line) => bridge.Keep(line.Data);
        bridge._process.BeginOutputReadLine();
        bridge._process.BeginErrorReadLine();
        return bridge;
    }

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    /// <summary>Waits for the process to end by itself and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    /// <summary>Fails the calling test with the bridge's last output when the bridge has exited.</summary>
    public void AssertRunning()
    {
        if (_process.HasExited)
            throw new InvalidOperationException($"The bridge exited with code {_process.ExitCode}:\n{RecentOutput}");
    }

    /// <summary>SIGTERM: what an orchestrator sends to stop a container; the bridge shuts down gracefully.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGKILL: no shutdown, no last acknowledgement, exactly like a crash.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    /// <summary>The last lines the bridge printed, for failure messages.</summary>
    public string RecentOutput => string.Join(Environment.NewLine, _output);

    /// <summary>Peak resident set size so far (VmHWM), in bytes.</summary>
    public long PeakResidentBytes()
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").Single(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    private void Keep(string? line)
    {
        if (line is null)
            return;
        _output.Enqueue(line);
        while (_output.Count > 50)
            _output.TryDequeue(out _);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }
}
