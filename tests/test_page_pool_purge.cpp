// PagePool's purge delay: freed pages beyond retain_pages stay resident for purge_delay, so that a
// take soon after reuses them with no syscall, then the refill thread gives the oldest freed back
// to the OS, leaving retain_pages of them; pages still in use are untouched. With purge_delay 0
// (or no refill thread) give() returns them itself, at once.
#include <zpage/allocator/page_pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "fixtures.hpp"

using zpage::PageNumber;
using zpage::PagePool;

namespace {

constexpr std::size_t retain = 16;

// A refill thread that purges but keeps no reserve, so that resident memory moves with the
// purge alone.
PagePool::Config purging_after(std::chrono::milliseconds delay) {
    return {.retain_pages = retain, .reserve_low_pages = 0, .reserve_high_pages = 0, .purge_delay = delay};
}

void stamp(PagePool& pool, std::span<const PageNumber> pages, std::uint64_t tag) {
    for (const PageNumber p : pages) {
        const std::uint64_t word = tag ^ p;
        std::memcpy(pool.address(p), &word, 8);
        std::memcpy(pool.address(p) + PagePool::page_bytes - 8, &word, 8);
    }
}

bool stamped(PagePool& pool, std::span<const PageNumber> pages, std::uint64_t tag) {
    for (const PageNumber p : pages) {
        const std::uint64_t word = tag ^ p;
        if (std::memcmp(pool.address(p), &word, 8) != 0 ||
            std::memcmp(pool.address(p) + PagePool::page_bytes - 8, &word, 8) != 0)
            return false;
    }
    return true;
}

// `chunks` chunks' worth of pages taken, split into every other page (`freed`, to give back: no
// chunk empties and goes back whole) and the rest (`kept`).
struct Taken {
    std::vector<PageNumber> freed, kept;
    Taken(PagePool& pool, std::size_t chunks) {
        std::vector<PageNumber> pages(chunks * PagePool::chunk_pages);
        REQUIRE(pool.take(pages));
        for (std::size_t i = 0; i < pages.size(); ++i) (i % 2 == 0 ? freed : kept).push_back(pages[i]);
    }
};

}  // namespace

TEST_CASE("freed pages beyond retain_pages stay resident for purge_delay, then go back to the OS") {
    PagePool pool(purging_after(std::chrono::milliseconds(300)));
    Taken taken(pool, 3);
    std::vector<PageNumber>& freed = taken.freed;
    std::vector<PageNumber>& kept = taken.kept;
    stamp(pool, kept, 7);
    const auto given_at = std::chrono::steady_clock::now();
    pool.give(freed);
    const zpage::PagePoolStats held = pool.stats();
    if (std::chrono::steady_clock::now() - given_at < std::chrono::milliseconds(250)) {
        CHECK(held.pages_purged == 0);  // not yet: every freed page is still resident
        CHECK(held.spare_bytes >= freed.size() * PagePool::page_bytes);
    }
    REQUIRE(zpage_test::eventually([&] { return pool.stats().pages_purged != 0; }));
    CHECK(std::chrono::steady_clock::now() - given_at >= std::chrono::milliseconds(300));
    REQUIRE(zpage_test::eventually([&] { return pool.stats().pages_purged == freed.size() - retain; }));
    const zpage::PagePoolStats s = pool.stats();
    CHECK(s.pages_in_use == kept.size());
    CHECK(s.resident_bytes == s.pages_in_use * PagePool::page_bytes + s.spare_bytes);
    CHECK(s.resident_bytes + (freed.size() - retain) * PagePool::page_bytes <= held.resident_bytes);
    CHECK(stamped(pool, kept, 7));  // the pages in use were not touched

    // Purged pages are made resident again when taken.
    std::vector<PageNumber> again(freed.size());
    REQUIRE(pool.take(again));
    stamp(pool, again, 9);
    CHECK(stamped(pool, again, 9));
    CHECK(stamped(pool, kept, 7));
    pool.give(again);
    pool.give(kept);
}

TEST_CASE("pages taken again within purge_delay are reused, not purged") {
    PagePool pool(purging_after(std::chrono::milliseconds(300)));
    Taken taken(pool, 2);
    std::vector<PageNumber>& freed = taken.freed;
    std::vector<PageNumber>& kept = taken.kept;
    const auto given_at = std::chrono::steady_clock::now();
    pool.give(freed);
    std::vector<PageNumber> again(freed.size());
    REQUIRE(pool.take(again));  // the freed pages, resident still
    if (std::chrono::steady_clock::now() - given_at < std::chrono::milliseconds(250))
        CHECK(std::is_permutation(again.begin(), again.end(), freed.begin(), freed.end()));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(pool.stats().pages_purged == 0);  // nothing was left beyond retain_pages to purge
    pool.give(again);
    pool.give(kept);
}

TEST_CASE("purge_delay 0 gives freed pages beyond retain_pages back in give() itself") {
    PagePool pool(purging_after(std::chrono::milliseconds(0)));
    Taken taken(pool, 2);
    std::vector<PageNumber>& freed = taken.freed;
    std::vector<PageNumber>& kept = taken.kept;
    const zpage::PagePoolStats before = pool.stats();
    pool.give(freed);
    const zpage::PagePoolStats s = pool.stats();
    CHECK(s.resident_bytes + (freed.size() - retain) * PagePool::page_bytes == before.resident_bytes);
    CHECK(s.pages_purged == 0);  // give() returned them, not the refill thread
    pool.give(kept);
}

TEST_CASE("a negative purge_delay is refused") {
    CHECK_THROWS_AS(PagePool({.purge_delay = std::chrono::milliseconds(-1)}), std::invalid_argument);
}
