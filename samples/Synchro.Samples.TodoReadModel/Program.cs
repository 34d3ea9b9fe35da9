using Microsoft.Extensions.Hosting;
using Synchro.Samples.TodoReadModel;

// --reset empties the read model and its queue first: scripts/demo.sh re-creates the source database each run.
var reset = args.Contains("--reset");
using var host = TodoReadModelHost.Build([.. args.Where(a => a != "--reset")], reset ? [new("ReadModel:Reset", "true")] : null);
await host.RunAsync();
