// Fixtures for the backing stores: records made as writeback makes them (real pages compressed
// with lz4, or kept raw when they do not compress, each with its record header).
#pragma once

#include <zpage/compressor/lz4.hpp>
#include <zpage/store.hpp>
#include <zpage/writeback/backing_store.hpp>
#include <zpage/writeback/record.hpp>

#include <vector>

#include "fixtures.hpp"

namespace zpage_test {

// One written-back page: its index and its record's bytes.
struct TestRecord {
    std::uint32_t index = 0;
    std::vector<std::byte> bytes;
    [[nodiscard]] std::size_t payload_bytes() const { return bytes.size() - zpage::record_header_bytes; }
};

// n records of pages from PageSource(seed): compressed with lz4, or raw (4 KiB) when lz4 leaves
// them above the store's huge threshold (3632 B, zram's), as the store keeps huge pages.
inline std::vector<TestRecord> make_records(std::size_t n, std::uint64_t seed, std::uint32_t first_index = 0) {
    PageSource source(seed);
    const zpage::Lz4 lz4;
    auto ctx = lz4.make_compress_context();
    std::vector<std::byte> compressed(8192);
    std::vector<TestRecord> records;
    for (std::size_t i = 0; i < n; ++i) {
        const Page page = source.next();
        std::size_t bytes = lz4.compress(ctx, page, compressed);
        std::span<const std::byte> payload(compressed.data(), bytes);
        if (bytes == 0 || bytes > zpage::StoreConfig{}.huge_threshold(page.size())) payload = page;
        TestRecord r{first_index + static_cast<std::uint32_t>(i),
                     std::vector<std::byte>(zpage::record_bytes(payload.size()))};
        REQUIRE(zpage::encode_record(r.index, payload, r.bytes).ok());
        records.push_back(std::move(r));
    }
    return records;
}

inline std::vector<std::span<const std::byte>> spans_of(const std::vector<TestRecord>& records, std::size_t first = 0,
                                                        std::size_t count = ~std::size_t{0}) {
    std::vector<std::span<const std::byte>> out;
    for (std::size_t i = first; i < records.size() && out.size() < count; ++i) out.emplace_back(records[i].bytes);
    return out;
}

// Reads record r back from `location` and checks it is byte-exact and verifies.
template <class Backing>
void check_reads_back(Backing& store, zpage::BackingLocation location, const TestRecord& r) {
    std::vector<std::byte> back(r.bytes.size());
    REQUIRE(store.read(location, back).ok());
    CHECK(back == r.bytes);
    CHECK(zpage::verify_record(back, r.index, r.payload_bytes()).ok());
}

}  // namespace zpage_test

