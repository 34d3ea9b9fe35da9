using System.CommandLine;
using System.Reflection;
using System.Text.RegularExpressions;
using Synchro.Bridge.Hosting;

namespace Synchro.Bridge.Tests.Hosting;

/// <summary>What the README says about configuration and the command line, checked against the code.</summary>
public sealed partial class ReadmeTests
{
    private static readonly string Readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));

    [Fact]
    public void every_configuration_key_in_the_readme_is_an_option_and_every_option_is_in_the_readme()
    {
        var section = Readme[Readme.IndexOf("### Configuration", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n#", 1, StringComparison.Ordinal)];
        var documented = ConfigurationRow().Matches(section).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(documented);
        var actual = Keys(typeof(SynchroOptions), "").ToHashSet(StringComparer.Ordinal);

        Assert.Empty(documented.Except(actual).Order(StringComparer.Ordinal));
        Assert.Empty(actual.Except(documented).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void run_help_offers_accept_gap_as_the_readme_says()
    {
        using var output = new StringWriter();
        CommandLine.Build().Parse(["run", "--help"]).Invoke(new InvocationConfiguration { Output = output });

        Assert.Contains("--accept-gap", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("synchro-bridge run --accept-gap", Readme, StringComparison.Ordinal);
    }

    /// <summary>Configuration keys of an options class, as the README's table writes them (lists as <c>N</c>).</summary>
    private static IEnumerable<string> Keys(Type type, string prefix)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = prefix + property.Name;
            var propertyType = property.PropertyType;
            if (propertyType == typeof(List<string>))
            {
                yield return key + ":N";
            }
            else if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(List<>))
            {
                foreach (var nested in Keys(propertyType.GetGenericArguments()[0], key + ":N:"))
                    yield return nested;
            }
            else if (propertyType.IsClass && propertyType != typeof(string))
            {
                foreach (var nested in Keys(propertyType, key + ":"))
                    yield return nested;
            }
            else
            {
                yield return key;
            }
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Synchro.sln")))
                return directory.FullName;
        }

        throw new InvalidOperationException("Synchro.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\| `([A-Za-z:N]+)` \|", RegexOptions.Multiline)]
    private static partial Regex ConfigurationRow();
}
