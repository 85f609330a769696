// PagePool's reserve, run dry: a taker that finds nothing ready makes a chunk resident itself (as
// the kernel's direct reclaim does) and gets its pages, whether the pool is fresh or its refill
// thread cannot keep up (here: the OS refuses that thread memory).
#include <zpage/allocator/page_pool.hpp>

#include <set>

#include "fixtures.hpp"

using zpage::PageNumber;
using zpage::PagePool;

TEST_CASE("a taker that finds the reserve empty populates a chunk itself") {
    PagePool pool;
    std::vector<PageNumber> first(1);
    REQUIRE(pool.take(first));  // a fresh pool: nothing ready
    zpage::PagePoolStats s = pool.stats();
    CHECK(s.allocstall == 1);
    CHECK(s.chunks_populated_direct == 1);
    CHECK(s.pages_in_use == 1);

    // With the refill thread refused memory, the reserve drains, and takers go on populating.
    zpage_test::OsFaults refill_refused(zpage::detail::os::Call::populate, 0, zpage_test::OnThreads::others);
    std::vector<PageNumber> held = first;
    const std::size_t direct_before = s.chunks_populated_direct;
    for (int i = 0; i < 8; ++i) {
        std::vector<PageNumber> pages(PagePool::chunk_pages);
        REQUIRE(pool.take(pages));
        held.insert(held.end(), pages.begin(), pages.end());
        for (const PageNumber p : pages) *pool.address(p) = std::byte{1};
    }
    s = pool.stats();
    CHECK(s.pages_in_use == held.size());
    CHECK(std::set<PageNumber>(held.begin(), held.end()).size() == held.size());
    // 8 chunks' worth beyond the first take: whatever the refill thread made resident before it
    // was refused, the takers made the rest themselves.
    CHECK(s.chunks_populated_direct - direct_before + s.chunks_populated_background >= 8);
    CHECK(s.chunks_populated_direct > direct_before);
    CHECK(s.allocstall >= s.chunks_populated_direct);
    pool.give(held);
}
