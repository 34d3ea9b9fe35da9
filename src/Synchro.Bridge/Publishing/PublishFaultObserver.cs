using MassTransit;
using Synchro.Bridge.Position;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Remembers why the broker refused a publish (MassTransit retries it, so the publish itself only
/// waits): health names a refusal of the message itself (larger than max_message_size) and what to
/// change, instead of guessing at a full queue.
/// </summary>
internal sealed class PublishFaultObserver(ActiveRun activeRun, TimeProvider time) : IPublishObserver, ISendObserver
{
    public Task PrePublish<T>(PublishContext<T> context) where T : class => Task.CompletedTask;

    public Task PostPublish<T>(PublishContext<T> context) where T : class => Task.CompletedTask;

    public Task PublishFault<T>(PublishContext<T> context, Exception exception) where T : class => Faulted(exception);

    public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

    public Task PostSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Faulted(exception);

    private Task Faulted(Exception exception)
    {
        activeRun.PublishFaulted(new PublishFault(Describe(exception), time.GetUtcNow()));
        return Task.CompletedTask;
    }

    private static string Describe(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e.Message.Contains("PRECONDITION_FAILED", StringComparison.Ordinal) || e.Message.Contains("max size", StringComparison.Ordinal))
                return e.Message;
        }

        return exception.GetBaseException().Message;
    }
}

/// <param name="Error">What the broker or the client said.</param>
internal sealed record PublishFault(string Error, DateTimeOffset At);
