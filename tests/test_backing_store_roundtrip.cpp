// Every shipped backing store: batches of records of mixed sizes (real pages compressed with lz4,
// and raw ones) read back byte-exact, cost their own length rather than a block each, and leave
// nothing behind once freed.
#include "backing_fixtures.hpp"

namespace {

// Writes `records` in batches of random sizes; returns their locations.
template <class Store>
std::vector<zpage::BackingLocation> write_in_batches(Store& store, const std::vector<zpage_test::TestRecord>& records,
                                                     std::mt19937_64& rng, std::uint64_t& packed_blocks) {
    std::vector<zpage::BackingLocation> at(records.size());
    packed_blocks = 0;
    for (std::size_t i = 0; i < records.size();) {
        // At most 512 records (2 MiB): a batch fits FileBackingStore's default buffer, one part.
        const std::size_t most = std::min<std::size_t>(store.max_batch_records(), 512);
        const std::size_t n = std::min<std::size_t>(1 + rng() % most, records.size() - i);
        const auto batch = zpage_test::spans_of(records, i, n);
        REQUIRE(store.write(batch, std::span(at).subspan(i, n)).ok());
        std::uint64_t bytes = 0;
        for (const auto& r : batch) bytes += r.size();
        packed_blocks += (bytes + 4095) / 4096;  // a fresh store: each batch is one run of blocks
        i += n;
    }
    return at;
}

}  // namespace

TEST_CASE_TEMPLATE("batches of compressed and raw pages read back byte-exact", Maker, ZPAGE_TEST_BACKING_STORES) {
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    zpage_test::BackingUnderTest<Maker> b;
    const auto records = zpage_test::make_records(zpage_test::scaled(2000, 4), seed);
    std::uint64_t packed_blocks = 0;
    const auto at = write_in_batches(*b, records, rng, packed_blocks);

    std::uint64_t record_bytes = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
        zpage_test::check_reads_back(*b, at[i], records[i]);
        record_bytes += records[i].bytes.size();
    }
    const zpage::BackingStats s = b->stats();
    CHECK(s.bd_count == packed_blocks);
    CHECK(s.bd_writes == packed_blocks);
    CHECK(s.bd_reads >= records.size());
    CHECK(s.failed_reads == 0);
    CHECK(s.failed_writes == 0);
    // Packed: a record costs its length (bd_count == packed_blocks above: padding only at batch ends).
    CHECK(s.bd_count * 4096 >= record_bytes);
    MESSAGE(records.size() << " records of " << record_bytes << " B in " << s.bd_count << " blocks ("
                           << static_cast<double>(record_bytes) / static_cast<double>(s.bd_count * 4096) << " full)");

    for (std::size_t i = 0; i < records.size(); ++i) b->free(at[i], records[i].bytes.size());
    CHECK(b->stats().bd_count == 0);
}

TEST_CASE_TEMPLATE("many small requests, more than may be in flight, complete in order", Maker,
                   ZPAGE_TEST_BACKING_STORES) {
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    zpage_test::BackingUnderTest<Maker> b({.io_bytes = 4096, .max_in_flight = 3});
    const auto records = zpage_test::make_records(zpage_test::scaled(600, 4), seed);
    std::uint64_t packed_blocks = 0;
    const auto at = write_in_batches(*b, records, rng, packed_blocks);
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
    CHECK(b->stats().bd_writes == packed_blocks);
}

TEST_CASE_TEMPLATE("records as long as max_record_bytes, straddling several blocks", Maker, ZPAGE_TEST_BACKING_STORES) {
    constexpr std::size_t longest = 3 * 4096 + 100;
    zpage_test::BackingUnderTest<Maker> b({.max_record_bytes = longest, .max_batch_records = 8});
    CHECK(b->max_record_bytes() == longest);
    CHECK(b->max_batch_records() == 8);
    std::vector<zpage_test::TestRecord> records;
    for (std::uint32_t i = 0; i < 8; ++i) {
        std::vector<std::byte> payload(longest - zpage::record_header_bytes - i * 999);
        for (std::size_t k = 0; k < payload.size(); ++k) payload[k] = static_cast<std::byte>(k * 31 + i);
        zpage_test::TestRecord r{i, std::vector<std::byte>(zpage::record_bytes(payload.size()))};
        REQUIRE(zpage::encode_record(i, payload, r.bytes).ok());
        records.push_back(std::move(r));
    }
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(b->write(zpage_test::spans_of(records), at).ok());
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
}

TEST_CASE_TEMPLATE("batches and reads out of bounds are invalid arguments", Maker, ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b({.max_bytes = 1 << 20, .max_batch_records = 4});
    const std::vector<std::byte> ok(100, std::byte{1}), empty, too_long(b->max_record_bytes() + 1);
    std::array<zpage::BackingLocation, 5> at{};
    const std::vector<std::span<const std::byte>> five(5, std::span<const std::byte>(ok));
    CHECK(b->write(five, at).error() == zpage::errc::invalid_argument);
    const std::vector<std::span<const std::byte>> with_empty{ok, empty};
    CHECK(b->write(with_empty, std::span(at).first(2)).error() == zpage::errc::invalid_argument);
    const std::vector<std::span<const std::byte>> with_long{too_long};
    CHECK(b->write(with_long, std::span(at).first(1)).error() == zpage::errc::invalid_argument);
    const std::vector<std::span<const std::byte>> one{ok};
    CHECK(b->write(one, std::span(at).first(2)).error() == zpage::errc::invalid_argument);
    CHECK(b->write({}, {}).ok());

    std::vector<std::byte> out(100);
    CHECK(b->read((1 << 20) - 50, out).error() == zpage::errc::invalid_argument);
    CHECK(b->read(~std::uint64_t{0} - 10, out).error() == zpage::errc::invalid_argument);
    CHECK(b->read(0, std::span<std::byte>()).error() == zpage::errc::invalid_argument);
    CHECK(b->stats() == zpage::BackingStats{});
}
