// Fixtures for the backing stores: records made as writeback makes them (real pages compressed
// with lz4, or kept raw when they do not compress, each with its record header), and the shipped
// backing stores declared once as a type list, each built on a temporary file where it needs one
// (TEST_CASE_TEMPLATE("...", Backing, ZPAGE_TEST_BACKING_STORES)).
#pragma once

#include <zpage/compressor/lz4.hpp>
#include <zpage/store.hpp>
#include <zpage/writeback/file_backing_store.hpp>
#include <zpage/writeback/memory_backing_store.hpp>
#include <zpage/writeback/record.hpp>

#include <sys/stat.h>

#include <memory>
#include <optional>
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

// What a test asks of a backing store; zero fields keep the store's defaults.
struct BackingOptions {
    std::uint64_t max_bytes = std::uint64_t{16} << 20;
    std::size_t max_record_bytes = 0;
    std::size_t max_batch_records = 0;
    std::size_t io_bytes = 0;
    unsigned max_in_flight = 0;
    std::size_t buffer_bytes = 0;  // file stores only
    std::optional<std::uint64_t> retain_freed_bytes = std::nullopt;  // 0: punch in free()
};

// Where a store under test lives: the temporary file (if it needs one), removed after the store.
template <class Store>
struct BackingHome {
    TempPath file{"zpage-backing"};
    std::unique_ptr<Store> store;
};

// The shipped stores, each a maker of one configuration.
struct FileAio {  // FileBackingStore with O_DIRECT and native AIO, on the temporary folder's file system
    using store_type = zpage::FileBackingStore;
    static void make(BackingHome<store_type>& t, const BackingOptions& o) {
        zpage::FileBackingConfig c{.path = t.file.string(), .max_bytes = o.max_bytes};
        if (o.max_record_bytes != 0) c.max_record_bytes = o.max_record_bytes;
        if (o.max_batch_records != 0) c.max_batch_records = o.max_batch_records;
        if (o.io_bytes != 0) c.io_bytes = o.io_bytes;
        if (o.max_in_flight != 0) c.max_in_flight = o.max_in_flight;
        if (o.buffer_bytes != 0) c.buffer_bytes = o.buffer_bytes;
        if (o.retain_freed_bytes) c.retain_freed_bytes = *o.retain_freed_bytes;
        t.store = std::make_unique<store_type>(c);
    }
};
struct FilePwrite {  // FileBackingStore where io_setup is refused: one pwrite at a time
    using store_type = zpage::FileBackingStore;
    static void make(BackingHome<store_type>& t, const BackingOptions& o) {
        const FileFaults refuse_aio(zpage::detail::file_io::Call::setup_aio, {.error = ENOSYS});
        FileAio::make(t, o);
        REQUIRE_FALSE(t.store->native_aio());
    }
};
struct InMemory {  // MemoryBackingStore
    using store_type = zpage::MemoryBackingStore;
    static void make(BackingHome<store_type>& t, const BackingOptions& o) {
        zpage::MemoryBackingConfig c{.max_bytes = o.max_bytes};
        if (o.max_record_bytes != 0) c.max_record_bytes = o.max_record_bytes;
        if (o.max_batch_records != 0) c.max_batch_records = o.max_batch_records;
        if (o.retain_freed_bytes) c.retain_freed_bytes = *o.retain_freed_bytes;
        t.store = std::make_unique<store_type>(c);
    }
};

// A backing store of the kind Maker makes, on its own temporary file.
template <class Maker>
struct BackingUnderTest : BackingHome<typename Maker::store_type> {
    explicit BackingUnderTest(const BackingOptions& options = {}) { Maker::make(*this, options); }
    typename Maker::store_type& operator*() { return *this->store; }
    typename Maker::store_type* operator->() { return this->store.get(); }
};

// The bytes a file takes on its file system (st_blocks x 512).
inline std::uint64_t allocated_bytes(const std::filesystem::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace zpage_test

#define ZPAGE_TEST_BACKING_STORES zpage_test::FileAio, zpage_test::FilePwrite, zpage_test::InMemory
TYPE_TO_STRING(zpage_test::FileAio);
TYPE_TO_STRING(zpage_test::FilePwrite);
TYPE_TO_STRING(zpage_test::InMemory);
