using System.Text;

namespace Synchro.Bridge.Sources;

/// <summary>
/// Who a change set comes from. <see cref="Name"/> is what the bus sees: the first word of every
/// routing key (<c>source.schema.table</c>) and part of the bucket queue's name; by default
/// <c>database-slot</c>. <see cref="Origin"/> is what cannot collide: the PostgreSQL cluster's
/// system identifier, the database and the slot. Every change set carries its origin in a header,
/// and a consumer that meets another origin under its own name stops (two sources share a name).
/// </summary>
public sealed class SourceIdentity
{
    private string? _origin;

    public SourceIdentity(string name) => Name = name;

    public string Name { get; }

    /// <summary><c>system_identifier/database/slot</c>; known once start-up has asked the database.</summary>
    public string Origin => _origin ?? throw new InvalidOperationException("The source's origin is read from the database at start-up, before it is used.");

    public bool HasOrigin => _origin is not null;

    public void SetOrigin(string systemIdentifier, string database, string slot) => _origin = $"{systemIdentifier}/{database}/{slot}";

    private long _generation;
    private ulong _generationStart;
    private long _timeline;

    /// <summary>The source's generation (see <c>SourceGenerations</c>), set by the slot reader at the start of every run.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Where the generation's history leaves the previous one's (0: nothing shared).</summary>
    public ulong GenerationStart => Interlocked.Read(ref _generationStart);

    /// <summary>The timeline of the server the slot reader reads from (0 until a run has asked): a batch read on one the database has left belongs to a lost history.</summary>
    public uint Timeline => (uint)Interlocked.Read(ref _timeline);

    public void SetGeneration(long number, ulong start, uint timeline)
    {
        Interlocked.Exchange(ref _timeline, timeline);
        Interlocked.Exchange(ref _generationStart, start);
        Interlocked.Exchange(ref _generation, number);
    }

    /// <summary>The configured name, or <c>database-slot</c> made of the characters a routing-key word and a queue name accept.</summary>
    public static string NameFrom(string? configured, string database, string slot)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return configured;
        var name = new StringBuilder();
        foreach (var c in (database + "-" + slot).ToLowerInvariant())
            name.Append(IsNameCharacter(c) ? c : '_');
        return name.ToString();
    }

    /// <summary>
    /// Lower-case letters, digits, '_' and '-': no '.', which separates routing-key words. At most 127
    /// characters: the length of the longest default (a database and a slot name of 63 each, and the dash).
    /// </summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= MaxNameLength && name.All(IsNameCharacter);

    public const int MaxNameLength = 127;

    private static bool IsNameCharacter(char c) => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-';
}
