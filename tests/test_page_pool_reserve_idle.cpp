// PagePool's reserve is not kept forever: after reserve_idle_release without a take, the refill
// thread gives the ready chunks back to the OS, leaving what a pool without a refill thread holds
// (the rest of the current chunk and retained freed pages); the next low take refills it.
#include <zpage/allocator/page_pool.hpp>

#include <chrono>

#include "fixtures.hpp"

using zpage::PageNumber;
using zpage::PagePool;

TEST_CASE("an idle pool gives its ready chunks back to the OS") {
    constexpr std::size_t high = 4 * PagePool::chunk_pages;
    PagePool pool({.reserve_low_pages = 2 * PagePool::chunk_pages,
                   .reserve_high_pages = high,
                   .reserve_idle_release = std::chrono::milliseconds(50)});
    std::vector<PageNumber> held(PagePool::chunk_pages / 2);
    REQUIRE(pool.take(held));
    REQUIRE(zpage_test::eventually([&] { return pool.stats().chunks_released_idle != 0; }));
    zpage::PagePoolStats s = pool.stats();
    CHECK(s.chunks_populated_background >= s.chunks_released_idle);
    CHECK(s.pages_in_use == held.size());
    CHECK(s.spare_bytes < PagePool::chunk_bytes);  // the rest of the chunk taken from, no more
    CHECK(s.resident_bytes == s.pages_in_use * PagePool::page_bytes + s.spare_bytes);

    // Taken from again, the pool refills as before (from the chunks it gave back).
    std::vector<PageNumber> more(PagePool::chunk_pages);
    REQUIRE(pool.take(more));
    REQUIRE(zpage_test::eventually([&] { return pool.stats().spare_bytes >= high * PagePool::page_bytes; }));
    pool.give(more);
    pool.give(held);
}
