using Synchro.Bridge.Buckets;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class RowJsonTests
{
    [Fact]
    public void the_canonical_form_sorts_keys_by_utf8_bytes_keeps_text_and_null_and_escapes_as_gos_encoding_json()
    {
        ColumnValue[] row =
        [
            ColumnValue.Of("title", "text", "say \"hi\"\\\n\t\u0001<ä>&\u2028😀"),
            ColumnValue.Of("id", "int8", "7"),
            ColumnValue.Null("Zeta", "text"),
            ColumnValue.Of("é", "text", "x"),
            new ColumnValue("body", "text", ColumnValueKind.UnchangedToast, null),
        ];

        Assert.Equal("{\"Zeta\":null,\"id\":\"7\",\"title\":\"say \\\"hi\\\"\\\\\\n\\t\\u0001\\u003cä\\u003e\\u0026\\u2028😀\",\"é\":\"x\"}", RowJson.Canonical(row));
    }

    [Fact]
    public void the_checksum_is_crc32_ieee_of_the_canonical_utf8_bytes_as_a_signed_32_bit_value()
    {
        // {"id":"1"} has CRC-32 0xF618C8F3 (zlib.crc32, Go's crc32.ChecksumIEEE): above 2^31, so negative.
        Assert.Equal(unchecked((int)0xF618C8F3u), RowJson.Checksum([ColumnValue.Of("id", "int8", "1")]));
    }

    [Fact]
    public void keys_beyond_u_ffff_sort_after_u_e000_to_u_ffff_as_their_utf8_bytes_do_and_a_lone_surrogate_becomes_the_replacement_escape()
    {
        // UTF-16 order would put 😀 (D83D DE00) before Ａ (FF21); UTF-8 puts EF BC A1 before F0 9F 98 80.
        ColumnValue[] row = [ColumnValue.Of("😀", "text", "bad \ud800 pair"), ColumnValue.Of("Ａ", "text", "x"), ColumnValue.Of("a", "text", "y")];

        Assert.Equal("{\"a\":\"y\",\"Ａ\":\"x\",\"😀\":\"bad \\ufffd pair\"}", RowJson.Canonical(row));
    }

    [Theory]
    [InlineData(10)]
    [InlineData(3_000_000)] // past the buffer kept per thread
    public void the_checksum_is_that_of_the_canonical_form_whatever_the_row_size(int length)
    {
        ColumnValue[] row = [ColumnValue.Of("body", "text", new string('é', length) + "<&>"), ColumnValue.Of("id", "int8", "42")];

        Assert.Equal(unchecked((int)System.IO.Hashing.Crc32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes(RowJson.Canonical(row)))), RowJson.Checksum(row));
        Assert.EndsWith("\\u003c\\u0026\\u003e\",\"id\":\"42\"}", RowJson.Canonical(row), StringComparison.Ordinal);
        // The buffer reused for the next row holds nothing of this one.
        Assert.Equal(unchecked((int)0xF618C8F3u), RowJson.Checksum([ColumnValue.Of("id", "int8", "1")]));
    }
}
