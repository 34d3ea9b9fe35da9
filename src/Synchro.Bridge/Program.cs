using System.CommandLine;
using Synchro.Bridge.Hosting;

// SIGTERM cancels the command; the host then stops within its own timeouts (a held change set is
// given back after MassTransit's ConsumerStopTimeout), so System.CommandLine must not cut that short.
return await CommandLine.Build().Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(45) });
