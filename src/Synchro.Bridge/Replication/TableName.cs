using System.Text.RegularExpressions;

namespace Synchro.Bridge.Replication;

/// <summary>A schema-qualified table name, validated so it can be quoted into SQL safely.</summary>
public readonly partial record struct TableName(string Schema, string Name)
{
    /// <summary>Parses <c>schema.table</c> or <c>table</c> (schema <c>public</c>).</summary>
    public static TableName Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('.');
        var name = parts.Length switch
        {
            1 => new TableName("public", parts[0]),
            2 => new TableName(parts[0], parts[1]),
            _ => throw new FormatException($"'{text}' is not a table name: write it as schema.table or table."),
        };
        if (!IsPlainIdentifier(name.Schema) || !IsPlainIdentifier(name.Name))
            throw new FormatException($"'{text}' is not a table name we accept: use lower-case letters, digits and '_' (starting with a letter or '_'), at most 63 characters per part; a table whose name needs quotes (capitals, dots, spaces) cannot be configured: rename it.");
        return name;
    }

    /// <summary>Lower-case identifier as PostgreSQL folds unquoted names.</summary>
    public static bool IsPlainIdentifier(string identifier) => PlainIdentifier().IsMatch(identifier);

    /// <summary>The name as it appears in SQL, each part double-quoted.</summary>
    public string Quoted => QuoteIdentifier(Schema) + "." + QuoteIdentifier(Name);

    /// <summary>
    /// The name the sidecar tables use: bare in the <c>public</c> schema, qualified elsewhere
    /// (as PostgreSQL prints a <c>regclass</c> with the default search path).
    /// </summary>
    public string SidecarName => Schema == "public" ? Name : Schema + "." + Name;

    public static string QuoteIdentifier(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// A quoted column as its type's output function writes it, as pgoutput sends it (a <c>::text</c>
    /// cast differs for bool and inet), NULL kept as NULL.
    /// </summary>
    public static string OutputText(string quotedColumn) => $"CASE WHEN {quotedColumn} IS NULL THEN NULL ELSE format('%s', {quotedColumn}) END";

    public override string ToString() => Schema + "." + Name;

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex PlainIdentifier();
}
