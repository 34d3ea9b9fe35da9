using Synchro.Bridge.Hosting;

return await CommandLine.Build().Parse(args).InvokeAsync();
