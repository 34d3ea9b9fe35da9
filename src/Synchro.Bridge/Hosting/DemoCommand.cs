using System.CommandLine;

namespace Synchro.Bridge.Hosting;

internal static class DemoCommand
{
    public static Command Build() => new("demo", "Create a demo database, run the bridge, drive a workload and show the changes flowing.");
}
