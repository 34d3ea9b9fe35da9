using System.Text.Json;

namespace Synchro.Bridge.Replication;

/// <summary>
/// The canonical record id: the key's text for a one-column key; for a composite key, a JSON array of
/// the key columns' texts in column order.
/// </summary>
public static class RecordIds
{
    public static string From(IReadOnlyList<string> keyTexts)
    {
        ArgumentNullException.ThrowIfNull(keyTexts);
        return keyTexts.Count == 1 ? keyTexts[0] : JsonSerializer.Serialize(keyTexts);
    }
}
