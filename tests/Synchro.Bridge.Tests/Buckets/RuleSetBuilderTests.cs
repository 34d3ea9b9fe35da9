using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class RuleSetBuilderTests
{
    private static readonly TableName Users = new("public", "users");
    private static readonly TableName Lists = new("public", "lists");
    private static readonly TableName Tasks = new("public", "tasks");
    private static readonly TableName Comments = new("public", "comments");

    /// <summary>users ← lists ← tasks ← comments, each with an id key; tasks also reference users as assignee.</summary>
    private static RuleCatalog Catalog()
    {
        var catalog = new RuleCatalog();
        catalog.Columns[Users] = ["id", "name"];
        catalog.Columns[Lists] = ["id", "user_id", "title"];
        catalog.Columns[Tasks] = ["id", "list_id", "assignee_id"];
        catalog.Columns[Comments] = ["id", "task_id", "body"];
        foreach (var table in catalog.Columns.Keys)
            catalog.KeyColumns[table] = ["id"];
        catalog.ForeignKeys.Add(new ForeignKey("lists_user_id_fkey", Lists, Users, ["user_id"], ["id"]));
        catalog.ForeignKeys.Add(new ForeignKey("tasks_list_id_fkey", Tasks, Lists, ["list_id"], ["id"]));
        catalog.ForeignKeys.Add(new ForeignKey("tasks_assignee_id_fkey", Tasks, Users, ["assignee_id"], ["id"]));
        catalog.ForeignKeys.Add(new ForeignKey("comments_task_id_fkey", Comments, Tasks, ["task_id"], ["id"]));
        return catalog;
    }

    private static BucketRuleSet Build(params TableOptions[] tables) => RuleSetBuilder.Build(tables, new BucketOptions(), Catalog());

    private static string Problem(params TableOptions[] tables) => Assert.Throws<StartupCheckException>(() => Build(tables)).Message;

    [Theory]
    [InlineData("user_id", "user")]
    [InlineData("team_id", "team")]
    [InlineData("owner", "owner")]
    [InlineData("_id", "_id")]
    public void the_default_prefix_is_the_owner_column_without_its_id_suffix(string column, string prefix) =>
        Assert.Equal(prefix, OwnerRule.DefaultPrefix(column));

    [Fact]
    public void a_table_without_owner_takes_the_single_foreign_key_to_another_configured_table_as_its_parent_down_the_chain()
    {
        var rules = Build(
            new TableOptions { Name = "lists", OwnerColumn = "user_id" },
            new TableOptions { Name = "tasks", Parent = new ParentOptions { Table = "lists" } },
            new TableOptions { Name = "comments" });

        Assert.Equal(new OwnerRule(Lists, "user_id", "user", true), rules.For(Lists));
        Assert.Equal(["list_id"], Assert.IsType<ParentRule>(rules.For(Tasks)).Columns);
        Assert.Equal((Tasks, "task_id"), (Assert.IsType<ParentRule>(rules.For(Comments)).Parent, ((ParentRule)rules.For(Comments)).Columns.Single()));
        Assert.Equal(new HashSet<TableName> { Tasks, Comments }, rules.DescendantTables(Lists));
        Assert.True(rules.HasChildTables(Tasks));
        Assert.False(rules.HasChildTables(Comments));
    }

    [Fact]
    public void a_table_without_foreign_keys_to_configured_tables_is_global_and_rule_global_overrides_inference()
    {
        var rules = Build(new TableOptions { Name = "users" }, new TableOptions { Name = "lists", Rule = "global" });

        Assert.IsType<GlobalRule>(rules.For(Users));
        Assert.IsType<GlobalRule>(rules.For(Lists));
    }

    [Fact]
    public void several_candidate_parents_must_be_named()
    {
        var message = Problem(new TableOptions { Name = "users" }, new TableOptions { Name = "lists" }, new TableOptions { Name = "tasks" });

        Assert.Contains("Synchro:Tables:2 (public.tasks): public.tasks has foreign keys to several configured tables (public.lists, public.users); name the parent with Parent:Table", message, StringComparison.Ordinal);
    }

    [Fact]
    public void every_problem_is_reported_at_once_with_what_to_change()
    {
        var message = Problem(
            new TableOptions { Name = "users", OwnerColumn = "owner_id" },
            new TableOptions { Name = "lists", Parent = new ParentOptions { Table = "archive" } },
            new TableOptions { Name = "tasks", Parent = new ParentOptions { Table = "lists", Columns = ["list_id", "assignee_id"] } },
            new TableOptions { Name = "comments", Function = "app.comment_buckets" });

        Assert.Contains("Synchro:Tables:0 (public.users): owner column 'owner_id' does not exist in public.users; set OwnerColumn to one of its columns (id, name).", message, StringComparison.Ordinal);
        Assert.Contains("Synchro:Tables:1 (public.lists): parent table public.archive is not in Synchro:Tables", message, StringComparison.Ordinal);
        Assert.Contains("Synchro:Tables:2 (public.tasks): Parent:Columns lists 2 columns, but the key of public.lists has 1 (id)", message, StringComparison.Ordinal);
        Assert.Contains("Synchro:Tables:3 (public.comments): function app.comment_buckets(text, text, jsonb, jsonb) returning setof text does not exist.", message, StringComparison.Ordinal);
    }

    [Fact]
    public void a_cycle_of_parents_is_refused_once_naming_the_chain()
    {
        var message = Problem(
            new TableOptions { Name = "lists", Parent = new ParentOptions { Table = "tasks", Columns = ["user_id"] } },
            new TableOptions { Name = "tasks", Parent = new ParentOptions { Table = "lists" } });

        Assert.Equal(
            "The bucket rules cannot be used: The parent chain public.lists → public.tasks → public.lists is a cycle: no row in it could ever be placed. Give one of these tables an owner column, a function or Rule global.",
            message);
    }

    [Fact]
    public void a_table_cannot_be_its_own_parent()
    {
        var message = Problem(new TableOptions { Name = "tasks", Parent = new ParentOptions { Table = "tasks", Columns = ["list_id"] } });

        Assert.Contains("a table cannot be its own parent", message, StringComparison.Ordinal);
    }

    [Fact]
    public void a_foreign_key_to_columns_other_than_the_parents_key_is_refused()
    {
        var catalog = Catalog();
        catalog.ForeignKeys.Add(new ForeignKey("comments_list_fkey", Comments, Lists, ["body"], ["title"]));

        var message = Assert.Throws<StartupCheckException>(() => RuleSetBuilder.Build(
            [new TableOptions { Name = "lists" }, new TableOptions { Name = "comments", Parent = new ParentOptions { Table = "lists" } }], new BucketOptions(), catalog)).Message;

        Assert.Contains("foreign key comments_list_fkey references public.lists (title), not its key (id)", message, StringComparison.Ordinal);
    }

    [Fact]
    public void a_change_of_an_unconfigured_table_is_an_error_that_says_what_to_do()
    {
        var rules = Build(new TableOptions { Name = "users" });

        var error = Assert.Throws<SynchroException>(() => rules.For(Tasks));
        Assert.Contains("not in Synchro:Tables", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void the_parent_reference_is_read_in_the_order_of_the_parents_key_and_null_means_no_parent()
    {
        var rule = new ParentRule(Comments, Tasks, ["task_org", "task_id"], GlobalWhenNull: true);

        Assert.Equal("[\"3\",\"9\"]", rule.ParentRecordId([ColumnValue.Of("task_id", "int8", "9"), ColumnValue.Of("task_org", "int8", "3")]));
        Assert.Null(rule.ParentRecordId([ColumnValue.Of("task_id", "int8", "9"), ColumnValue.Null("task_org", "int8")]));
    }
}
