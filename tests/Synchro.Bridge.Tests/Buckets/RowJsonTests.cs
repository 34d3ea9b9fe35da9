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
}
