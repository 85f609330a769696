// Writeback of pages a secondary codec holds: recompressed pages, alone and in units, go to the
// backing store decoded (and in the compressed format compressed again with the primary codec),
// read back byte for byte, come back into memory with the primary codec, and a unit's memory goes once its last member has left; under a limit
// that recompression alone cannot hold, the reclaimer recompresses first and writes back the rest.
#include <array>
#include <chrono>
#include <thread>

#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;
using zpage::PageFlag;

namespace {

struct TieredBacked : zpage::WritebackTraits<zpage::MemoryBackingStore> {
    using secondary_codecs = std::tuple<zpage::Zstd>;
};
using Store = zpage::CompressedPageStore<TieredBacked>;

// The corpora's pages (real heaps and files), or generated ones when ../shared is absent.
std::vector<zpage_test::Page> sample(std::size_t n) { return zpage_test::test_pages(n, zpage_test::test_seed()); }

// Stores `pages`, marks them idle and recompresses them with zstd-3 in groups of `group`.
zpage::RecompressResult fill_and_recompress(Store& store, const std::vector<zpage_test::Page>& pages, std::size_t group) {
    zpage_test::store_all(store, pages);
    static_cast<void>(store.mark_idle());
    const zpage::RecompressResult r = store.recompress({.select = zpage::RecompressSelect::idle, .codec = 1, .group_pages = group});
    REQUIRE(r.status);
    return r;
}

std::size_t grouped_pages(const Store& store) { return zpage_test::count_flagged(store, PageFlag::grouped); }

}  // namespace

TEST_CASE("recompressed pages, alone and in units, are written back, read back and brought back whole") {
    const std::size_t n = zpage_test::scaled(1024);
    const std::vector<zpage_test::Page> pages = sample(n);
    for (const auto format : {zpage::WritebackFormat::compressed, zpage::WritebackFormat::page}) {
        for (const bool bring_back : {false, true}) {
            for (const std::size_t group : {std::size_t{1}, std::size_t{4}, std::size_t{16}}) {
                CAPTURE(static_cast<int>(format));
                CAPTURE(bring_back);
                CAPTURE(group);
                zpage::MemoryBackingStore disk(zpage_test::memory_backing());
                Store store(zpage::StoreConfig{.capacity_pages = n}, zpage::Lz4{},
                            {.backing = &disk, .options = {.format = format, .bring_back_on_load = bring_back}},
                            {zpage::Zstd{3}});
                const zpage::RecompressResult recompressed = fill_and_recompress(store, pages, group);
                REQUIRE(recompressed.pages > n / 4);
                if (group > 1) REQUIRE(grouped_pages(store) > 0);

                const zpage::WritebackResult written = store.writeback({.select = zpage::WritebackSelect::any});
                REQUIRE(written.status);
                const std::size_t in_memory = n - zpage_test::count_flagged(store, PageFlag::same);
                CHECK(written.pages == in_memory);
                CHECK(written.memory_bytes > 0);
                // The compressed format compresses decoded pages again: records under a page's
                // (all of them a page's would mean none was; how far under depends on the sample).
                if (format == zpage::WritebackFormat::compressed)
                    CHECK(written.bytes < written.pages * zpage::record_bytes(4096));
                else
                    CHECK(written.bytes == written.pages * zpage::record_bytes(4096));
                // Nothing is held in memory any more: no object, no unit.
                CHECK(grouped_pages(store) == 0);
                CHECK(store.stats().compr_data_size == 0);
                static_cast<void>(store.compact());
                CHECK(store.allocator().stats().objects == 0);

                zpage_test::check_all(store, pages);
                const zpage::WritebackStats wb = store.writeback_stats();
                CHECK(wb.pages_read_back == in_memory);
                if (bring_back) {
                    // Back in memory with the primary codec: not written back, codec 0.
                    CHECK(wb.pages_brought_back == in_memory);
                    CHECK(zpage_test::count_flagged(store, PageFlag::written_back) == 0);
                    for (std::size_t i = 0; i < n; ++i) CHECK(store.state(i).record.codec() == 0);
                    zpage_test::check_all(store, pages);
                } else {
                    CHECK(zpage_test::count_flagged(store, PageFlag::written_back) == in_memory);
                }
            }
        }
    }
}

TEST_CASE("a unit keeps its memory until its last member is written back, and its other members read whole") {
    constexpr std::size_t n = 64;
    const std::vector<zpage_test::Page> pages = sample(n);
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    // Loads leave written-back pages where they are, so that objects counted are the units' own.
    Store store(zpage::StoreConfig{.capacity_pages = n}, zpage::Lz4{},
                {.backing = &disk, .options = {.bring_back_on_load = false}}, {zpage::Zstd{3}});
    const zpage::RecompressResult recompressed = fill_and_recompress(store, pages, 16);
    REQUIRE(recompressed.units > 0);
    // The first window's unit: write back all its members but the last.
    std::size_t last_member = n;
    for (std::size_t i = 16; i-- > 0;)
        if (store.state(i).has(PageFlag::grouped)) {
            last_member = i;
            break;
        }
    REQUIRE(last_member < 16);
    const std::size_t objects_before = store.allocator().stats().objects;
    const zpage::WritebackResult first =
        store.writeback({.select = zpage::WritebackSelect::any, .first = 0, .last = last_member});
    REQUIRE(first.status);
    CHECK(first.pages > 0);
    CHECK(store.allocator().stats().objects == objects_before);  // the unit's pieces stay
    CHECK(store.state(last_member).has(PageFlag::grouped));
    zpage_test::check_all(store, pages);

    // Its last member leaves: the unit's pieces go.
    const zpage::WritebackResult second =
        store.writeback({.select = zpage::WritebackSelect::any, .first = last_member, .last = last_member + 1});
    REQUIRE(second.pages == 1);
    CHECK(store.allocator().stats().objects < objects_before);
    zpage_test::check_all(store, pages);
}

TEST_CASE("under a limit recompression cannot hold, the reclaimer recompresses first and writes back the rest") {
    const std::size_t n = zpage_test::scaled(8192, 4);
    const std::vector<zpage_test::Page> pages = sample(n);
    std::size_t lz4_bytes = 0;
    {
        zpage::MemoryBackingStore disk(zpage_test::memory_backing());
        Store plain(zpage::StoreConfig{.capacity_pages = n}, zpage::Lz4{}, {.backing = &disk}, {zpage::Zstd{3}});
        zpage_test::store_all(plain, pages);
        lz4_bytes = plain.stats().mem_used_total;
    }
    // A quarter of what lz4 takes: below what zstd-3 in 64 KiB units holds the pages in.
    const std::size_t limit = lz4_bytes / 4;
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::tiered();
    reclaim.recompress_age = {};
    zpage::MemoryBackingStore disk(zpage_test::memory_backing(std::uint64_t{256} << 20));
    Store store(zpage::StoreConfig{.capacity_pages = n, .mem_limit_bytes = limit, .reclaim = reclaim}, zpage::Lz4{},
                {.backing = &disk}, {zpage::Zstd{3}});
    for (std::size_t i = 0; i < n; ++i) {
        const zpage::Status stored = store.store(i, pages[i]);
        if (!stored) MESSAGE("page " << i << ": " << std::string(stored.message()) << "; used " << store.stats().mem_used_total << " of " << limit);
        REQUIRE(stored);
    }
    const zpage::Stats s = store.stats();
    const zpage::ReclaimStats r = store.reclaim_stats();
    const zpage::WritebackStats wb = store.writeback_stats();
    MESSAGE("lz4 " << lz4_bytes << " B, limit " << limit << " B, peak " << s.mem_used_max << " B; recompressed "
                   << r.pgrecompress_kswapd + r.pgrecompress_direct << ", written back " << wb.pages_written_back);
    CHECK(s.mem_used_max <= limit);
    CHECK(r.pgrecompress_kswapd + r.pgrecompress_direct > 0);
    CHECK(wb.pages_written_back > 0);
    zpage_test::check_all(store, pages);
}
