using ChangePosition = Synchro.Contracts.ChangePosition;
using Npgsql;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Calls the rule functions of a batch's changes inside the apply transaction: one statement per
/// function for all its rows, values passed as parameters. When a call fails, the rows are called
/// one by one, each in its own savepoint, so only the rows whose call fails become rule failures.
/// An error of the environment (the function dropped, EXECUTE revoked, an object it needs gone) is
/// no row's failure: it would file every row. It holds the change set, with what to do, and the
/// consumer retries it until the environment is fixed.
/// </summary>
internal static class RuleFunctions
{
    public static async Task<Dictionary<ChangePosition, RuleOutput>> EvaluateAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, IEnumerable<StagedChange> changes, BucketRuleSet rules, CancellationToken cancellationToken)
    {
        var outputs = new Dictionary<ChangePosition, RuleOutput>();
        var calls = changes
            .Where(c => !BatchPlanner.IsRemoval(c.Change) && rules.For(c.Table) is FunctionRule)
            .GroupBy(c => (FunctionRule)rules.For(c.Table));
        foreach (var call in calls)
        {
            var rows = call.ToList();
            await transaction.SaveAsync("rule_function", cancellationToken);
            try
            {
                foreach (var (position, buckets) in await CallAsync(connection, call.Key, rows, cancellationToken))
                    outputs[position] = new RuleOutput(buckets, null);
                await transaction.ReleaseAsync("rule_function", cancellationToken);
            }
            catch (PostgresException e) when (IsEnvironment(e))
            {
                throw Held(call.Key, e);
            }
            catch (PostgresException e) when (!cancellationToken.IsCancellationRequested && !IsRetryable(e))
            {
                await transaction.RollbackAsync("rule_function", cancellationToken);
                foreach (var row in rows)
                    outputs[row.Position] = await CallOneAsync(connection, transaction, call.Key, row, cancellationToken);
            }
        }

        return outputs;
    }

    private static async Task<RuleOutput> CallOneAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, FunctionRule rule, StagedChange row, CancellationToken cancellationToken)
    {
        await transaction.SaveAsync("rule_function_row", cancellationToken);
        try
        {
            var output = await CallAsync(connection, rule, [row], cancellationToken);
            await transaction.ReleaseAsync("rule_function_row", cancellationToken);
            return new RuleOutput(output.GetValueOrDefault(row.Position, []), null);
        }
        catch (PostgresException e) when (IsEnvironment(e))
        {
            throw Held(rule, e);
        }
        catch (PostgresException e) when (!cancellationToken.IsCancellationRequested && !IsRetryable(e))
        {
            await transaction.RollbackAsync("rule_function_row", cancellationToken);
            return new RuleOutput([], $"{e.SqlState}: {e.MessageText}");
        }
    }

    /// <summary>
    /// Errors of the moment, not of the row (a deadlock, a serialization failure, a lock or statement
    /// timeout, a shutdown): the whole part is retried instead of recording a rule failure a
    /// fault-free run would not have.
    /// </summary>
    private static bool IsRetryable(PostgresException e) =>
        e.IsTransient || e.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
            or PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.QueryCanceled || TransientFailures.IsTransient(e);

    /// <summary>Privileges and missing objects: the same for every row, fixed by an operator, not by the data.</summary>
    private static bool IsEnvironment(PostgresException e) =>
        e.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.UndefinedFunction or PostgresErrorCodes.UndefinedTable
            or PostgresErrorCodes.UndefinedObject or PostgresErrorCodes.InvalidSchemaName;

    private static SynchroException Held(FunctionRule rule, PostgresException e) => new(
        $"the bucket rule function {rule.FunctionSchema}.{rule.FunctionName} of {rule.Table} cannot be called ({e.SqlState}: {e.MessageText}); " +
        $"restore it or GRANT EXECUTE ON FUNCTION {rule.QuotedFunction} to the bridge's role (and what it reads). Its change sets are held, not filed as rule failures, and applied once the call works.", e);

    private static async Task<Dictionary<ChangePosition, List<string>>> CallAsync(NpgsqlConnection connection, FunctionRule rule, List<StagedChange> rows, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"""
            SELECT r.ord, b.bucket
            FROM unnest($2::integer[], $3::text[], $4::text[]::jsonb[], $5::text[]::jsonb[]) AS r(ord, operation, new_row, old_row)
            LEFT JOIN LATERAL {rule.QuotedFunction}($1::text, r.operation, r.new_row, r.old_row) AS b(bucket) ON true
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = rule.Table.SidecarName });
        command.Parameters.Add(new NpgsqlParameter { Value = Enumerable.Range(0, rows.Count).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Change.Operation is ChangeOperation.Insert or ChangeOperation.Read ? "insert" : "update").ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => RowJson.Canonical(r.Change.NewRow!)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Change.OldRow is { } old ? RowJson.Canonical(old) : null).ToArray() });

        var buckets = rows.ToDictionary(r => r.Position, _ => new List<string>());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (!reader.IsDBNull(1))
                buckets[rows[reader.GetInt32(0)].Position].Add(reader.GetString(1));
        }

        return buckets;
    }
}
