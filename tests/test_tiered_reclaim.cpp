// The reclaimer with secondary codecs: under a limit it recompresses idle pages before anything
// is written back, so a store without writeback holds a limit its pages in lz4 would pass; with
// recompress_age it recompresses pages left idle whatever the pressure; and configurations a
// store cannot carry out are refused at construction.
#include <zpage/zpage.hpp>

#include <array>
#include <chrono>
#include <thread>
#include <vector>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

struct Tiered : zpage::DefaultTraits {
    using secondary_codecs = std::tuple<zpage::Zstd>;
};
using TieredStore = zpage::CompressedPageStore<Tiered>;

// The heap corpus's pages (the one real heap among the corpora), or none when ../shared is absent.
const zpage_test::Corpus* heap() {
    for (const auto& c : zpage_test::corpora())
        if (c.name.find("python-heap") != std::string::npos) return &c;
    return nullptr;
}

}  // namespace

TEST_CASE("a store without writeback holds a limit its pages would pass in lz4, by recompressing them") {
    const zpage_test::Corpus* corpus = heap();
    if (corpus == nullptr) {
        MESSAGE("skipped: no python-heap corpus in " << zpage_test::corpora_dir());
        return;
    }
    const std::size_t n = std::min(corpus->pages(), zpage_test::scaled(16384, 4));
    std::size_t lz4_bytes = 0;
    {
        TieredStore plain(zpage::StoreConfig{.capacity_pages = n});
        for (std::size_t i = 0; i < n; ++i) REQUIRE(plain.store(i, corpus->page(i)));
        lz4_bytes = plain.stats().mem_used_total;
    }
    // Two thirds of what lz4 takes; zstd-3 in 64 KiB units takes about half.
    const std::size_t limit = lz4_bytes / 3 * 2;
    TieredStore store(zpage::StoreConfig{.capacity_pages = n, .mem_limit_bytes = limit,
                                         .reclaim = zpage::ReclaimConfig::tiered()},
                      zpage::Lz4{}, {}, {zpage::Zstd{3}});
    for (std::size_t i = 0; i < n; ++i) {
        const zpage::Status stored = store.store(i, corpus->page(i));
        if (!stored) {
            const zpage::ReclaimStats r = store.reclaim_stats();
            const zpage::RecompressStats c = store.recompress_stats();
            MESSAGE("page " << i << ": " << std::string(stored.message()) << "; used " << store.stats().mem_used_total
                            << " of " << limit << "; recompressed " << c.pages_recompressed << " (" << r.pgrecompress_kswapd
                            << " thread, " << r.pgrecompress_direct << " direct), stalls " << r.reclaim_stalls
                            << ", allocstall " << r.allocstall << ", wakeups " << r.kswapd_wakeups
                            << ", not paid " << c.attempts_not_paid);
        }
        REQUIRE(stored);
    }
    const zpage::Stats s = store.stats();
    const zpage::ReclaimStats r = store.reclaim_stats();
    MESSAGE("lz4 " << lz4_bytes << " B, limit " << limit << " B, peak " << s.mem_used_max << " B; recompressed "
                   << r.pgrecompress_kswapd << " by the thread, " << r.pgrecompress_direct << " directly");
    CHECK(s.mem_used_max <= limit);
    CHECK(r.pgrecompress_kswapd + r.pgrecompress_direct > 0);
    std::array<std::byte, 4096> back;
    for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(store.load(i, back));
        REQUIRE(std::memcmp(back.data(), corpus->page(i).data(), 4096) == 0);
    }
}

TEST_CASE("pages left idle for recompress_age are recompressed by the background thread") {
    constexpr std::size_t n = 256;
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::tiered();
    reclaim.recompress_age = 1s;
    TieredStore store(zpage::StoreConfig{.capacity_pages = n, .reclaim = reclaim}, zpage::Lz4{}, {}, {zpage::Zstd{3}});
    zpage_test::PageSource source(zpage_test::test_seed());
    std::vector<std::array<std::byte, 4096>> pages;
    for (std::size_t i = 0; i < n; ++i) {
        pages.push_back(source.next());
        REQUIRE(store.store(i, pages.back()));
    }
    // A flagging pass, then a taking one an age later: within a few ages at most.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (store.reclaim_stats().pgrecompress_idle == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(50ms);
    REQUIRE(store.reclaim_stats().pgrecompress_idle > 0);
    std::size_t secondary = 0;
    for (std::size_t i = 0; i < n; ++i) secondary += store.state(i).record.codec() == 1;
    CHECK(secondary > 0);
    std::array<std::byte, 4096> back;
    for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(store.load(i, back));
        REQUIRE(back == pages[i]);
    }
    // A page stored again goes back to the primary codec.
    REQUIRE(store.store(0, pages[0]));
    CHECK(store.state(0).record.codec() == 0);
}

TEST_CASE("reclaim settings a store cannot carry out are refused at construction") {
    zpage::ReclaimConfig aged = zpage::ReclaimConfig::manual();
    aged.background = true;
    aged.recompress_age = 60s;
    CHECK_THROWS_AS(zpage::CompressedPageStore<>(zpage::StoreConfig{.capacity_pages = 8, .reclaim = aged}),
                    std::invalid_argument);
    CHECK_THROWS_AS(zpage::CompressedPageStore<>(
                        zpage::StoreConfig{.capacity_pages = 8, .reclaim = zpage::ReclaimConfig::tiered()}),
                    std::invalid_argument);
    zpage::ReclaimConfig second = zpage::ReclaimConfig::tiered();
    second.recompress_codec = 2;
    CHECK_THROWS_AS(TieredStore(zpage::StoreConfig{.capacity_pages = 8, .reclaim = second}), std::invalid_argument);
    zpage::ReclaimConfig wide = zpage::ReclaimConfig::tiered();
    wide.recompress_group_pages = 17;
    CHECK_THROWS_AS(TieredStore(zpage::StoreConfig{.capacity_pages = 8, .reclaim = wide}), std::invalid_argument);
    CHECK_THROWS_AS(TieredStore(zpage::StoreConfig{.capacity_pages = 8, .reclaim = zpage::ReclaimConfig::balanced()}),
                    std::invalid_argument);  // writes back by age: needs a writeback policy
    CHECK_NOTHROW(TieredStore(zpage::StoreConfig{.capacity_pages = 8, .reclaim = zpage::ReclaimConfig::tiered()}));
}

TEST_CASE("the tiered bundle and preset build a store that takes pages with defaults alone") {
    zpage::CompressedPageStore<zpage::TieredTraits<>> store(
        zpage::StoreConfig{.capacity_pages = 16, .mem_limit_bytes = 1 << 20, .reclaim = zpage::ReclaimConfig::tiered()});
    zpage_test::PageSource source(zpage_test::test_seed());
    const auto page = source.next();
    REQUIRE(store.store(3, page));
    std::array<std::byte, 4096> back;
    REQUIRE(store.load(3, back));
    CHECK(back == page);
}
