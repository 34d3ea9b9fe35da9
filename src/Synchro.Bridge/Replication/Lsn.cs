namespace Synchro.Bridge.Replication;

/// <summary>LSNs as the bridge handles them internally (plain 64-bit integers), read and written as PostgreSQL's text through <see cref="Contracts.Lsn"/>.</summary>
public static class Lsn
{
    public static string Format(ulong lsn) => new Contracts.Lsn(lsn).ToString();

    public static ulong Parse(string text) => Contracts.Lsn.Parse(text).Value;
}
