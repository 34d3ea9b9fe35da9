namespace Synchro.Samples.TodoReadModel;

/// <summary>A row of <c>public.todos</c>, read from a change with <c>row.As&lt;Todo&gt;()</c>: members match columns by name.</summary>
public sealed record Todo(long Id, long? UserId, string Title, bool Done, DateTimeOffset? DeletedAt, DateTimeOffset UpdatedAt);
