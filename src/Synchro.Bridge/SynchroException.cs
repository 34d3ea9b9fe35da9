namespace Synchro.Bridge;

/// <summary>
/// A condition the operator must act on. The message says what is wrong and what to do; the host
/// prints it as one line instead of a stack trace.
/// </summary>
public class SynchroException : Exception
{
    public SynchroException() { }

    public SynchroException(string message) : base(message) { }

    public SynchroException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Start-up found the configuration, the database or the broker unusable.</summary>
public class StartupCheckException : SynchroException
{
    public StartupCheckException() { }

    public StartupCheckException(string message) : base(message) { }

    public StartupCheckException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>A captured table has no primary key or replica identity index, so its rows have no identity.</summary>
public sealed class TableWithoutKeyException : StartupCheckException
{
    public TableWithoutKeyException(string table)
        : base($"Table {table} has no primary key and no replica identity index, so its rows cannot be identified. Add a primary key (ALTER TABLE {table} ADD PRIMARY KEY (...)) or set REPLICA IDENTITY USING INDEX on a unique index, or remove it from Synchro:Tables.")
        => Table = table;

    public TableWithoutKeyException() { Table = ""; }

    public TableWithoutKeyException(string message, Exception innerException) : base(message, innerException) { Table = ""; }

    public string Table { get; }
}

/// <summary>Another process holds the replication slot.</summary>
public sealed class SlotInUseException : SynchroException
{
    public SlotInUseException(string slot, Exception innerException)
        : base($"Replication slot '{slot}' is in use by another process (another bridge instance?). Only one reader may hold a slot: stop the other one, or give this instance its own Synchro:Replication:SlotName.", innerException) { }

    public SlotInUseException() { }

    public SlotInUseException(string message) : base(message) { }
}

/// <summary>A replication message could not be decoded; nothing past it is acknowledged.</summary>
public sealed class UndecodableMessageException : SynchroException
{
    public UndecodableMessageException() { }

    public UndecodableMessageException(string message) : base(message) { }

    public UndecodableMessageException(string message, Exception innerException) : base(message, innerException) { }
}
