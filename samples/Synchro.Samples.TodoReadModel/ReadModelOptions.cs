namespace Synchro.Samples.TodoReadModel;

/// <summary>The <c>ReadModel</c> configuration section (environment: <c>ReadModel__Postgres</c>, ...).</summary>
public sealed class ReadModelOptions
{
    public const string SectionName = "ReadModel";

    /// <summary>Npgsql connection string of the read model's own database (not the bridge's source database).</summary>
    public string Postgres { get; set; } = "";

    /// <summary>AMQP URI of the RabbitMQ the bridge publishes to.</summary>
    public string RabbitMq { get; set; } = "";

    /// <summary>The bridge's source name (<c>Synchro:Source</c>, by default <c>database-slot</c>), or <c>*</c> for every source.</summary>
    public string Source { get; set; } = "*";

    /// <summary>This service's durable queue: change sets wait there while the service is down.</summary>
    public string Queue { get; set; } = "synchro-demo.todo-read-model";

    /// <summary>Start from an empty read model, checkpoints and queue.</summary>
    public bool Reset { get; set; }

    /// <summary>A file written once the queue is bound and consuming, removed on stop (for start order in scripts and containers); empty for none.</summary>
    public string ReadyFile { get; set; } = "";
}
