using System.Collections.Concurrent;
using System.Diagnostics;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// examples/python/rebuild_table.py as its own process: started until it says <c>ready</c>, then
/// told <c>stop</c>, and its printed table read back. Killed when disposed if still running.
/// </summary>
internal sealed class PythonRebuildProcess : IDisposable
{
    // Debian's interpreter: python3-pika is installed for it, not for one earlier on PATH (pyenv, a virtualenv).
    private const string Python = "/usr/bin/python3";
    private const string Install = "Run the tests with scripts/test.sh (it installs them), or: apt-get install python3 python3-pika.";

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentQueue<string> _errors = new();

    private PythonRebuildProcess(Process process) => _process = process;

    public static async Task<PythonRebuildProcess> StartAsync(Uri amqp, string table, string queue, string source)
    {
        if (!File.Exists(Python))
            throw new InvalidOperationException($"{Python} is missing, so the Python example cannot run. {Install}");
        var script = Path.Combine(RepositoryRoot(), "examples", "python", "rebuild_table.py");
        var start = new ProcessStartInfo(Python, [script, "--amqp", amqp.ToString(), "--table", table, "--queue", queue, "--source", source])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var python = new PythonRebuildProcess(Process.Start(start) ?? throw new InvalidOperationException($"{Python} did not start."));
        python._process.OutputDataReceived += (_, line) => { if (line.Data is not null) python._output.Enqueue(line.Data); };
        python._process.ErrorDataReceived += (_, line) => { if (line.Data is not null) python._errors.Enqueue(line.Data); };
        python._process.BeginOutputReadLine();
        python._process.BeginErrorReadLine();
        try
        {
            await Eventually.Until(() => Task.FromResult(python._output.Contains("ready") || python._process.HasExited), "rebuild_table.py to say ready", TimeSpan.FromSeconds(30));
            python.AssertRunning();
            return python;
        }
        catch
        {
            python.Dispose();
            throw;
        }
    }

    /// <summary>Says <c>stop</c>, waits for the script to print the table and exit 0, and returns the table's lines.</summary>
    public async Task<List<string>> StopAndReadTableAsync(TimeSpan timeout)
    {
        try
        {
            await _process.StandardInput.WriteLineAsync("stop");
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // A broken pipe: the script has already ended; its exit code and stderr say why.
        }

        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            // Also waits until both output streams are read to their end.
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"rebuild_table.py did not finish within {timeout.TotalSeconds} s of stop:\n{Errors}");
        }

        if (_process.ExitCode != 0)
            throw new InvalidOperationException($"rebuild_table.py exited with code {_process.ExitCode}:\n{Errors}");
        return _output.SkipWhile(line => line != "ready").Skip(1).ToList();
    }

    /// <summary>What the script wrote to stderr (its summary, or why it failed).</summary>
    public string Errors => string.Join(Environment.NewLine, _errors);

    private void AssertRunning()
    {
        if (!_process.HasExited)
            return;
        _process.WaitForExit();
        var missingPika = _process.ExitCode == 3 ? " " + Install : "";
        throw new InvalidOperationException($"rebuild_table.py exited with code {_process.ExitCode} before it was ready:\n{Errors}{missingPika}");
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Synchro.sln")))
                return directory.FullName;
        }

        throw new InvalidOperationException("Synchro.sln not found above " + AppContext.BaseDirectory);
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
