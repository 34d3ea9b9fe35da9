using Microsoft.Extensions.Logging;
using Synchro.Contracts;

namespace Synchro.Samples.TodoReadModel;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Consuming {Source}.public.todos change sets from queue {Queue} into todo_read_model")]
    public static partial void Consuming(ILogger logger, string source, string queue);

    [LoggerMessage(2, LogLevel.Information, "Reset: todo_read_model and read_model_checkpoints emptied, queue {Queue} purged")]
    public static partial void Reset(ILogger logger, string queue);

    [LoggerMessage(3, LogLevel.Debug, "Applied {Applied} of {Total} changes of {Table} up to {Position}")]
    public static partial void Applied(ILogger logger, int applied, int total, string table, ChangePosition position);
}
