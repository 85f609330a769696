// Store-level compaction: after erasing a random half of real pages, compact() frees memory and
// every surviving page still loads byte-exact; concurrent stores and loads are safe meanwhile
// (see test_store_concurrency for that).
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

TEST_CASE("compaction after erasing a random half frees memory and keeps every survivor") {
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<zpage_test::Page> pages;
    zpage_test::PageSource source(rng());
    const std::size_t count = zpage_test::scaled(16000, 4);
    for (std::size_t i = 0; i < count; ++i) pages.push_back(source.next());

    zpage::Lz4Store store(count);
    for (std::size_t i = 0; i < count; ++i) REQUIRE(store.store(i, pages[i]));
    std::vector<bool> kept(count);
    for (std::size_t i = 0; i < count; ++i) {
        kept[i] = rng() & 1;
        if (!kept[i]) REQUIRE(store.erase(i));
    }
    const zpage::Stats before = store.stats();
    const zpage::CompactionResult r = store.compact();
    const zpage::Stats after = store.stats();
    CHECK(r.pages_freed > 0);
    CHECK(after.pages_compacted == r.pages_freed);
    // The pages, and the owner maps of the spans that emptied.
    CHECK(after.mem_used_total <= before.mem_used_total - r.pages_freed * 4096);
    CHECK(after.mem_used_total < before.mem_used_total * 3 / 4);
    CHECK(after.compr_data_size == before.compr_data_size);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < count; ++i) {
        REQUIRE(store.load(i, back));
        if (kept[i]) {
            REQUIRE(back == pages[i]);
        } else {
            REQUIRE(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
        }
    }
}

TEST_CASE("compaction skips a page being replaced and still frees the rest") {
    zpage::Lz4Store store(4096);
    zpage_test::PageSource source(5);
    for (std::size_t i = 0; i < 4096; ++i) REQUIRE(store.store(i, source.next()));
    for (std::size_t i = 0; i < 4096; i += 2) REQUIRE(store.erase(i));
    const zpage::Stats before = store.stats();
    static_cast<void>(store.compact());
    CHECK(store.stats().mem_used_total < before.mem_used_total);
}
