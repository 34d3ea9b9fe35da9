using Synchro.Bridge.Hosting;

namespace Synchro.Bridge.Tests.Hosting;

public sealed class BucketQueueTypesTests
{
    [Theory]
    [InlineData(BucketQueueType.Quorum, "received the value 'quorum' of type 'longstr' but current is none", "as a classic queue", "QueueType is Quorum", "QueueType=Classic")]
    [InlineData(BucketQueueType.Classic, "received none but current is the value 'quorum' of type 'longstr'", "as a quorum queue", "QueueType is Classic", "QueueType=Quorum")]
    [InlineData(BucketQueueType.Quorum, "rece...", "as a classic queue", "QueueType is Quorum", "QueueType=Classic")] // RabbitMQ cuts its text at 255 characters
    public void rabbitmqs_refusal_of_a_queue_type_becomes_what_to_do(BucketQueueType declared, string words, string current, string configured, string advice)
    {
        var refusal = new InvalidOperationException("outer", new InvalidOperationException(
            $"The AMQP operation was interrupted: AMQP close-reason, initiated by Peer, code=406, text='PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'synchro.app-slot.bucket-assignment' in vhost '/': {words}', classId=50, methodId=10"));

        var explained = BucketQueueTypes.Explain(refusal, "synchro.app-slot.bucket-assignment", declared)!.Message;

        Assert.StartsWith($"RabbitMQ has the bucket queue 'synchro.app-slot.bucket-assignment' {current}", explained, StringComparison.Ordinal);
        Assert.Contains(configured, explained, StringComparison.Ordinal);
        Assert.Contains(advice, explained, StringComparison.Ordinal);
        Assert.Contains("rabbitmqctl delete_queue synchro.app-slot.bucket-assignment", explained, StringComparison.Ordinal);
        Assert.Null(BucketQueueTypes.Explain(new InvalidOperationException("something else"), "q", declared));
    }
}
