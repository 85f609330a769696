// PagePool's reserve: a take that leaves fewer than reserve_low_pages ready wakes the refill
// thread, which makes chunks resident until at least reserve_high_pages are ready; takes that
// leave enough ready do not wake it; what the pool holds stays reported and bounded.
#include <zpage/allocator/page_pool.hpp>

#include <set>

#include "fixtures.hpp"

namespace {

using zpage::PageNumber;
using zpage::PagePool;

constexpr std::size_t low = 2 * PagePool::chunk_pages;
constexpr std::size_t high = 4 * PagePool::chunk_pages;

std::size_t ready_pages(const zpage::PagePoolStats& s) { return s.spare_bytes / PagePool::page_bytes; }

// What the pool may hold beyond its pages in use once the refill thread is done: under a chunk
// more than high (it populates whole chunks), plus retained freed pages.
void check_reserve(const zpage::PagePoolStats& s, std::size_t retain_pages) {
    CHECK(s.resident_bytes == s.pages_in_use * PagePool::page_bytes + s.spare_bytes);
    CHECK(ready_pages(s) < high + PagePool::chunk_pages + retain_pages);
    CHECK(s.chunks_started == s.chunks_populated_background + s.chunks_populated_direct);
}

}  // namespace

TEST_CASE("takes that drain the reserve below its low watermark have it refilled to its high one") {
    PagePool pool({.reserve_low_pages = low, .reserve_high_pages = high});
    std::vector<PageNumber> held(1);
    REQUIRE(pool.take(held));  // a fresh pool has nothing ready: this take populates, and wakes the thread
    REQUIRE(zpage_test::eventually([&] { return ready_pages(pool.stats()) >= high; }));
    zpage::PagePoolStats s = pool.stats();
    CHECK(s.refill_wakeups == 1);
    CHECK(s.chunks_populated_background >= 1);
    check_reserve(s, 0);

    // Taking while enough stays ready wakes nobody.
    std::vector<PageNumber> some(ready_pages(s) - low);
    REQUIRE(pool.take(some));
    held.insert(held.end(), some.begin(), some.end());
    CHECK(pool.stats().refill_wakeups == 1);

    // One page more leaves the reserve below low: refilled again, without the taker populating.
    std::vector<PageNumber> one(1);
    REQUIRE(pool.take(one));
    held.push_back(one[0]);
    REQUIRE(zpage_test::eventually([&] { return ready_pages(pool.stats()) >= high; }));
    s = pool.stats();
    CHECK(s.refill_wakeups == 2);
    CHECK(s.allocstall == 1);  // only the fresh pool's first take found nothing ready
    CHECK(s.pages_in_use == held.size());
    check_reserve(s, 0);
    CHECK(std::set<PageNumber>(held.begin(), held.end()).size() == held.size());

    // Pages given back beyond retain_pages still go back to the OS; the reserve is not added to.
    pool.give(held);
    s = pool.stats();
    CHECK(s.pages_in_use == 0);
    check_reserve(s, PagePool::Config{}.retain_pages);
}

TEST_CASE("watermarks the wrong way round are refused") {
    CHECK_THROWS_AS(PagePool({.reserve_low_pages = 3, .reserve_high_pages = 2}), std::invalid_argument);
    CHECK_THROWS_AS(PagePool({.reserve_idle_release = std::chrono::milliseconds(-1)}), std::invalid_argument);
}
