namespace Synchro.Bridge.Changes;

/// <summary>Row operation codes; the numbers are synchro's changelog operation codes.</summary>
public enum ChangeOperation
{
    /// <summary>A row was inserted.</summary>
    Insert = 1,

    /// <summary>A row was updated.</summary>
    Update = 2,

    /// <summary>A row was deleted.</summary>
    Delete = 3,

    /// <summary>
    /// The table was truncated: every row is gone. Not a changelog code; the bucket consumer turns it
    /// into a delete of every record from every bucket it was in.
    /// </summary>
    Truncate = 4,

    /// <summary>
    /// A row as it stands, read by a snapshot or a backfill rather than decoded from a change. Not a
    /// changelog code: the bucket consumer places the record from it and writes only differences
    /// (an insert where the record enters a bucket, an update where its data changed, a delete where
    /// it leaves). A subscriber treats it as an upsert; it may see a row again when a backfill repeats.
    /// </summary>
    Read = 5,
}
