using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>Decides which buckets a row belongs to.</summary>
public interface IBucketRule
{
    /// <summary>The buckets of the row as it is after the change. Throws <see cref="BucketRuleException"/> when the rule cannot decide.</summary>
    IReadOnlyList<string> BucketsFor(IReadOnlyList<ColumnValue> row);
}

/// <summary>A bucket rule could not place a row; the change is quarantined in sync_rule_failures.</summary>
public sealed class BucketRuleException : SynchroException
{
    public BucketRuleException() { }

    public BucketRuleException(string message) : base(message) { }

    public BucketRuleException(string message, Exception innerException) : base(message, innerException) { }
}
