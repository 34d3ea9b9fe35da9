using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// Checks the raw <c>Synchro</c> section against the shape of <see cref="SynchroOptions"/> before it
/// is bound: a key the bridge does not know (a typo that would silently be ignored) and a value that
/// is not of its setting's type (which the binder would throw on, without saying what to write).
/// </summary>
internal static class ConfigurationShape
{
    public static IReadOnlyList<string> Problems(IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var problems = new List<string>();
        Walk(section, typeof(SynchroOptions), problems);
        return problems;
    }

    private static void Walk(IConfigurationSection section, Type type, List<string> problems)
    {
        foreach (var child in section.GetChildren())
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is not { CanWrite: true })
            {
                problems.Add($"{child.Path} is not a setting{Suggestion(child.Key, type)}; the settings are listed in the README's Configuration table.");
                continue;
            }

            var propertyType = property.PropertyType;
            if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(List<>))
            {
                var element = propertyType.GetGenericArguments()[0];
                foreach (var item in child.GetChildren())
                {
                    if (!int.TryParse(item.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                        problems.Add($"{item.Path}: {child.Path} is a list, numbered from 0 ({child.Path}:0, {child.Path}:1, ...).");
                    else if (element == typeof(string))
                        CheckValue(item, element, problems);
                    else
                        Walk(item, element, problems);
                }
            }
            else if (propertyType.IsClass && propertyType != typeof(string))
            {
                if (child.Value is { Length: > 0 } value)
                    problems.Add($"{child.Path} = '{value}': {child.Path} is a section with settings of its own ({string.Join(", ", Settable(propertyType).Select(p => p.Name))}), not a value.");
                else
                    Walk(child, propertyType, problems);
            }
            else
            {
                CheckValue(child, propertyType, problems);
            }
        }
    }

    private static void CheckValue(IConfigurationSection setting, Type type, List<string> problems)
    {
        if (setting.GetChildren().Any())
        {
            problems.Add($"{setting.Path} is one value, not a section: write {setting.Path}=... instead of its sub-keys ({string.Join(", ", setting.GetChildren().Select(c => c.Key))}).");
            return;
        }

        if (string.IsNullOrEmpty(setting.Value))
            return;
        var target = Nullable.GetUnderlyingType(type) ?? type;
        try
        {
            _ = TypeDescriptor.GetConverter(target).ConvertFromInvariantString(setting.Value);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException || e.InnerException is FormatException or OverflowException)
        {
            problems.Add($"{setting.Path} = '{setting.Value}' is not {Expected(target)}.");
        }
    }

    private static string Expected(Type type) => type switch
    {
        _ when type == typeof(int) || type == typeof(long) => "a whole number",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(TimeSpan) => "a duration (hh:mm:ss, for example 00:00:30)",
        { IsEnum: true } => $"one of {string.Join(", ", Enum.GetNames(type))}{(type.IsDefined(typeof(FlagsAttribute)) ? " (or several, separated by commas)" : "")}",
        _ => $"a {type.Name}",
    };

    private static IEnumerable<PropertyInfo> Settable(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite);

    /// <summary>The setting a typo most likely meant: at most two letters apart.</summary>
    private static string Suggestion(string key, Type type)
    {
        var closest = Settable(type).Select(p => (p.Name, Distance: Distance(key.ToUpperInvariant(), p.Name.ToUpperInvariant()))).MinBy(c => c.Distance);
        return closest.Name is not null && closest.Distance <= 2 ? $" (did you mean {closest.Name}?)" : "";
    }

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            previous = current;
        }

        return previous[b.Length];
    }
}
