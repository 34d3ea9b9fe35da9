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

    [Fact]
    public void every_command_line_the_readme_shows_parses_with_the_options_it_shows()
    {
        // Lines of the README's shell blocks that run synchro-bridge, without their comment; optional
        // parts ([--table T]) are taken as written, placeholders filled in.
        var lines = ShellCommand().Matches(Readme).Select(m => m.Groups[1].Value.Trim()).ToList();
        Assert.Contains(lines, l => l.StartsWith("snapshot status", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("backfill TABLE", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("rebuild TABLE", StringComparison.Ordinal));
        foreach (var line in lines)
        {
            var words = line.Replace("[", "", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal)
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(w => w is "TABLE" or "T" ? "notes" : w)
                .ToArray();
            var parsed = CommandLine.Build().Parse(words);
            Assert.True(parsed.Errors.Count == 0, $"'synchro-bridge {line}' does not parse: {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
        }
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

    internal static string RepositoryRoot()
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

    [GeneratedRegex(@"^\s*synchro-bridge ([^#\n]+)", RegexOptions.Multiline)]
    private static partial Regex ShellCommand();
}

/// <summary>The README's table of commands, checked against what <c>--help</c> of every command prints.</summary>
public sealed partial class CommandHelpTests
{
    private static readonly string Readme = File.ReadAllText(Path.Combine(ReadmeTests.RepositoryRoot(), "README.md"));

    [Fact]
    public void every_command_has_help_whose_description_and_options_are_the_readmes()
    {
        var section = Readme[Readme.IndexOf("### Commands", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n#", 1, StringComparison.Ordinal)];
        var documented = CommandRow().Matches(section).ToDictionary(
            m => m.Groups[1].Value.Trim(),
            m => (Options: m.Groups[2].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(o => o.Trim('`')).Order(StringComparer.Ordinal).ToList(), Description: m.Groups[3].Value.Trim()));

        var commands = Runnable(CommandLine.Build(), []).ToList();
        Assert.Equal(commands.Select(c => c.Path).Order(StringComparer.Ordinal), documented.Keys.Order(StringComparer.Ordinal));
        foreach (var (path, command) in commands)
        {
            using var output = new StringWriter();
            var exit = CommandLine.Build().Parse([.. path.Split(' '), "--help"]).Invoke(new InvocationConfiguration { Output = output });
            var help = output.ToString();
            Assert.Equal(0, exit);
            // The help's own words: the description first, then the options it lists.
            var description = DescriptionBlock().Match(help) is { Success: true } block
                ? Whitespace().Replace(block.Groups[1].Value, " ").Trim()
                : throw new InvalidOperationException($"'{path} --help' printed no description:\n{help}");
            var options = HelpOption().Matches(help).Select(m => m.Groups[1].Value).Where(o => o is not ("--help" or "-?" or "-h")).Distinct().Order(StringComparer.Ordinal).ToList();
            Assert.True(documented[path].Description == description, $"README describes '{path}' as \"{documented[path].Description}\"; --help says \"{description}\"");
            Assert.True(documented[path].Options.SequenceEqual(options), $"README lists options [{string.Join(", ", documented[path].Options)}] for '{path}'; --help lists [{string.Join(", ", options)}]");
            Assert.Equal(command.Description, description);
        }
    }

    /// <summary>Every command that does something (has an action), by its path of names.</summary>
    private static IEnumerable<(string Path, Command Command)> Runnable(Command command, List<string> path)
    {
        foreach (var sub in command.Subcommands)
        {
            var subPath = new List<string>(path) { sub.Name };
            if (sub.Action is not null)
                yield return (string.Join(' ', subPath), sub);
            foreach (var nested in Runnable(sub, subPath))
                yield return nested;
        }
    }

    /// <summary>| `synchro-bridge failures replay` | `--config`, `--table` | description |</summary>
    [GeneratedRegex(@"^\| `synchro-bridge ([a-z ]+?)(?: [A-Z]+)?` \| ([^|]*) \| ([^|]+) \|$", RegexOptions.Multiline)]
    private static partial Regex CommandRow();

    [GeneratedRegex(@"^\s+(--?[a-z?][a-z-]*)", RegexOptions.Multiline)]
    private static partial Regex HelpOption();

    [GeneratedRegex(@"^Description:\s*\n(.*?)\n\s*\nUsage:", RegexOptions.Singleline)]
    private static partial Regex DescriptionBlock();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
