using Synchro.Bridge.Buckets;
using Synchro.Contracts;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class RowJsonTests
{
    [Fact]
    public void the_canonical_form_sorts_keys_by_utf8_bytes_keeps_text_and_null_and_escapes_only_quotes_backslashes_and_controls()
    {
        ColumnValue[] row =
        [
            ColumnValue.Of("title", "text", "say \"hi\"\\\n<ä>"),
            ColumnValue.Of("id", "int8", "7"),
            ColumnValue.Null("Zeta", "text"),
            ColumnValue.Of("é", "text", "x"),
            new ColumnValue("body", "text", ColumnValueKind.UnchangedToast, null),
        ];

        Assert.Equal("{\"Zeta\":null,\"id\":\"7\",\"title\":\"say \\\"hi\\\"\\\\\\u000a<ä>\",\"é\":\"x\"}", RowJson.Canonical(row));
    }

    [Fact]
    public void the_checksum_is_crc32_ieee_of_the_canonical_utf8_bytes_as_a_signed_32_bit_value()
    {
        // {"id":"1"} has CRC-32 0xF618C8F3 (zlib.crc32, Go's crc32.ChecksumIEEE): above 2^31, so negative.
        Assert.Equal(unchecked((int)0xF618C8F3u), RowJson.Checksum([ColumnValue.Of("id", "int8", "1")]));
    }
}
