// A memory limit refuses stores that would exceed it (nothing stored, the index keeps its old page)
// and is lifted by erasing, compacting or raising it.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

TEST_CASE("stores past the limit fail and leave the old page in place") {
    constexpr std::size_t capacity = 4000;
    zpage::Lz4Store store(capacity);
    zpage_test::PageSource source(zpage_test::test_seed());
    std::vector<zpage_test::Page> pages;
    for (std::size_t i = 0; i < capacity; ++i) pages.push_back(source.next());

    const std::size_t limit = store.stats().mem_used_total + (2 << 20);
    store.set_mem_limit(limit);
    CHECK(store.stats().mem_limit == limit);
    std::size_t stored = 0;
    std::size_t refused = 0;
    std::vector<bool> held(capacity, false);
    for (std::size_t i = 0; i < capacity; ++i) {
        const zpage::Status st = store.store(i, pages[i]);
        if (st) {
            held[i] = true;
            ++stored;
        } else {
            REQUIRE(st == zpage::errc::memory_limit);
            ++refused;
        }
        REQUIRE(store.stats().mem_used_total <= limit);
    }
    CHECK(stored > 0);
    CHECK(refused > 0);
    const zpage::Stats s = store.stats();
    CHECK(s.failed_writes == refused);
    CHECK(s.mem_used_max <= limit);

    // Overwriting a held page with one that needs new memory: refused, the old page stays.
    zpage_test::Page back{};
    std::size_t kept_old = 0;
    for (std::size_t i = 0; i < capacity && kept_old < 50; ++i) {
        if (!held[i]) continue;
        const zpage::Status st = store.store(i, pages[(i + 1) % capacity]);
        REQUIRE(store.load(i, back));
        if (!st) {
            CHECK(back == pages[i]);
            ++kept_old;
        } else {
            CHECK(back == pages[(i + 1) % capacity]);
            pages[i] = pages[(i + 1) % capacity];
        }
    }
    for (std::size_t i = 0; i < capacity; ++i) {
        if (!held[i]) continue;
        REQUIRE(store.load(i, back));
        CHECK(back == pages[i]);
    }

    // Lifting the limit lets stores through again.
    store.set_mem_limit(0);
    for (std::size_t i = 0; i < capacity; ++i) REQUIRE(store.store(i, pages[i]));
}

TEST_CASE("a limit configured at construction applies from the first store") {
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 64, .mem_limit_bytes = 1});
    zpage_test::PageSource source(1);
    zpage_test::Page p;
    do p = source.next();
    while (zpage::detail::same_fill_word<4096>(p));
    CHECK(store.store(0, p) == zpage::errc::memory_limit);
    CHECK_FALSE(store.contains(0));
    // Same-filled pages need no memory and are still accepted.
    zpage_test::Page zeros{};
    CHECK(store.store(1, zeros));
}
