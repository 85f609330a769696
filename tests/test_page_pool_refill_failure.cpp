// PagePool's reserve when the OS refuses memory: a refill thread refused leaves the pool working
// (takers populate themselves, and the thread is not woken again until one has); a take fails
// with out_of_memory only when the taker is refused too, and everything works once the OS gives
// memory again.
#include <zpage/allocator/page_pool.hpp>

#include "fixtures.hpp"

using zpage::PageNumber;
using zpage::PagePool;

TEST_CASE("a refill refused by the OS leaves the pool working; takes fail only when the taker is refused too") {
    PagePool pool;
    std::vector<PageNumber> held;
    auto take = [&](std::size_t n) {
        std::vector<PageNumber> pages(n);
        const zpage::Status taken = pool.take(pages);
        if (taken) held.insert(held.end(), pages.begin(), pages.end());
        return taken;
    };
    // Every run of the refill thread is refused and ends; the runs are done once they are all
    // counted as failures.
    auto refill_runs_done = [&] {
        const zpage::PagePoolStats s = pool.stats();
        return s.refill_failures != 0 && s.refill_failures == s.refill_wakeups;
    };
    {
        zpage_test::OsFaults refill_refused(zpage::detail::os::Call::populate, 0, zpage_test::OnThreads::others);
        REQUIRE(take(1));  // the taker populates (direct) and wakes the refill thread, which is refused
        REQUIRE(zpage_test::eventually(refill_runs_done));
        zpage::PagePoolStats s = pool.stats();
        CHECK(s.chunks_populated_background == 0);
        CHECK(s.chunks_populated_direct == 1);
        // Refused, the thread is not woken by takes that leave the reserve low...
        const std::size_t wakeups = s.refill_wakeups;
        REQUIRE(take(PagePool::chunk_pages / 2));
        CHECK(pool.stats().refill_wakeups == wakeups);
        // ...until a taker has populated a chunk itself (the OS may have memory again).
        REQUIRE(take(PagePool::chunk_pages));
        s = pool.stats();
        CHECK(s.chunks_populated_direct == 2);
        CHECK(s.refill_wakeups > wakeups);
        REQUIRE(zpage_test::eventually(refill_runs_done));
        CHECK(pool.stats().pages_in_use == held.size());
    }
    {
        zpage_test::OsFaults everyone_refused(zpage::detail::os::Call::populate, 0);
        const std::size_t ready = pool.stats().spare_bytes / PagePool::page_bytes;
        REQUIRE(take(ready));  // what is resident is still handed out
        const std::size_t in_use = pool.stats().pages_in_use;
        CHECK(take(1) == zpage::errc::out_of_memory);
        CHECK(take(PagePool::chunk_pages) == zpage::errc::out_of_memory);
        CHECK(pool.stats().pages_in_use == in_use);  // a failed take hands out nothing
    }
    // The OS gives memory again: the taker populates, and the refill thread runs again.
    REQUIRE(take(1));
    REQUIRE(zpage_test::eventually([&] {
        return pool.stats().chunks_populated_background >= 1 &&
               pool.stats().spare_bytes >= PagePool::Config{}.reserve_high_pages * PagePool::page_bytes;
    }));
    CHECK(pool.stats().pages_in_use == held.size());
    pool.give(held);
}
