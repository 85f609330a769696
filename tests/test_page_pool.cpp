// PagePool on its own: pages handed out are distinct and writable; what it keeps beyond them is
// bounded and reported; freed pages go back to the OS past the retention limit, whole chunks at
// once; holes are reused; an OS that refuses memory or will not take pages back loses nothing.
// Pools here have no refill thread, so that which chunk is made resident when is each test's to
// say; the reserve has tests of its own (test_page_pool_reserve*.cpp).
#include <zpage/allocator/page_pool.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "fixtures.hpp"

namespace {

using zpage::PageNumber;
using zpage::PagePool;

constexpr PagePool::Config no_refill{.background_refill = false};

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * 4096;
}

std::vector<PageNumber> take(PagePool& pool, std::size_t n) {
    std::vector<PageNumber> pages(n);
    REQUIRE(pool.take(pages));
    return pages;
}

void stamp(PagePool& pool, std::span<const PageNumber> pages, std::uint64_t tag) {
    for (const PageNumber p : pages) {
        const std::uint64_t word = tag ^ p;
        for (std::size_t off = 0; off < PagePool::page_bytes; off += 512) std::memcpy(pool.address(p) + off, &word, 8);
    }
}

bool stamped(const PagePool& pool, std::span<const PageNumber> pages, std::uint64_t tag) {
    for (const PageNumber p : pages) {
        const std::uint64_t word = tag ^ p;
        for (std::size_t off = 0; off < PagePool::page_bytes; off += 512)
            if (std::memcmp(pool.address(p) + off, &word, 8) != 0) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("pages handed out are distinct and writable, and the spare is bounded") {
    PagePool pool(no_refill);
    std::vector<PageNumber> all;
    for (std::size_t n : {1, 700, 511, 1500}) {
        const auto pages = take(pool, n);
        all.insert(all.end(), pages.begin(), pages.end());
    }
    CHECK(std::set<PageNumber>(all.begin(), all.end()).size() == all.size());
    stamp(pool, all, 0xABCD);
    CHECK(stamped(pool, all, 0xABCD));
    const zpage::PagePoolStats s = pool.stats();
    CHECK(s.pages_in_use == all.size());
    CHECK(s.resident_bytes == s.pages_in_use * PagePool::page_bytes + s.spare_bytes);
    CHECK(s.spare_bytes < PagePool::chunk_bytes);  // only the rest of the chunk being handed out
    pool.give(all);
    CHECK(pool.stats().pages_in_use == 0);
}

TEST_CASE("chunks whose pages all come back go back to the OS whole") {
    PagePool pool({.retain_pages = 0, .background_refill = false});
    const auto pages = take(pool, 4 * PagePool::chunk_pages + 10);
    stamp(pool, pages, 1);
    const std::size_t before_give = resident_bytes();
    pool.give(pages);
    const zpage::PagePoolStats s = pool.stats();
    CHECK(s.pages_in_use == 0);
    CHECK(s.resident_bytes <= PagePool::chunk_bytes);  // the chunk being handed out from stays
    if (!zpage_test::under_sanitizer) {
        INFO("resident before " << before_give << " B, after " << resident_bytes() << " B");
        CHECK(resident_bytes() + 3 * PagePool::chunk_bytes <= before_give);
    }
    // Chunks given back are made resident again when needed.
    const auto again = take(pool, 2 * PagePool::chunk_pages);
    stamp(pool, again, 2);
    CHECK(stamped(pool, again, 2));
    pool.give(again);
}

TEST_CASE("freed pages beyond retain_pages go back to the OS, and holes are reused") {
    PagePool pool({.retain_pages = 16, .background_refill = false});
    auto pages = take(pool, 3 * PagePool::chunk_pages);
    // Free every other page of the first two chunks: partly used chunks keep their other pages.
    std::vector<PageNumber> freed;
    std::vector<PageNumber> kept;
    for (std::size_t i = 0; i < pages.size(); ++i) (i % 2 == 0 && i < 2 * PagePool::chunk_pages ? freed : kept).push_back(pages[i]);
    stamp(pool, kept, 3);
    const zpage::PagePoolStats full = pool.stats();
    pool.give(freed);
    zpage::PagePoolStats s = pool.stats();
    CHECK(s.pages_in_use == kept.size());
    CHECK(s.spare_bytes <= 16 * PagePool::page_bytes + PagePool::chunk_bytes);
    CHECK(s.resident_bytes + (freed.size() - 16) * PagePool::page_bytes == full.resident_bytes);
    // 512 holes, no more than a chunk's worth: a new chunk is started before they are reused...
    const auto warm = take(pool, 16);  // ...after the retained pages
    CHECK(pool.stats().chunks_started == full.chunks_started);
    const auto next = take(pool, 1);
    CHECK(pool.stats().chunks_started == full.chunks_started + 1);
    const auto rest_of_chunk = take(pool, PagePool::chunk_pages - 1);
    // ...but once there are more than a chunk's worth, they are filled before a new chunk starts.
    std::vector<PageNumber> more(kept.begin(), kept.begin() + 200);
    kept.erase(kept.begin(), kept.begin() + 200);
    pool.give(more);
    const zpage::PagePoolStats before_refill = pool.stats();
    // 16 retained + 680 holes: the first 16 + 168 pages come from them.
    const auto refill = take(pool, 16 + 168);
    CHECK(pool.stats().chunks_started == before_refill.chunks_started);
    CHECK(pool.stats().resident_bytes == before_refill.resident_bytes + 168 * PagePool::page_bytes);
    stamp(pool, refill, 4);
    CHECK(stamped(pool, kept, 3));  // reusing holes touched nobody else's page
    CHECK(stamped(pool, refill, 4));
}

TEST_CASE("an OS that refuses memory: take() hands out all the pages asked for or none") {
    PagePool pool(no_refill);
    const auto held = take(pool, 10);
    {
        zpage_test::OsFaults faults(zpage::detail::os::Call::populate, 0);
        std::vector<PageNumber> pages(PagePool::chunk_pages + 1);  // needs a new chunk
        CHECK(pool.take(pages) == zpage::errc::out_of_memory);
        CHECK(pool.stats().pages_in_use == 10);
    }
    const auto after = take(pool, PagePool::chunk_pages + 1);
    CHECK(pool.stats().pages_in_use == 10 + after.size());
}

TEST_CASE("an OS that refuses address space: take() fails cleanly") {
    zpage_test::OsFaults faults(zpage::detail::os::Call::reserve, 0);
    PagePool pool(no_refill);
    std::vector<PageNumber> pages(1);
    CHECK(pool.take(pages) == zpage::errc::out_of_memory);
    CHECK(pool.stats().resident_bytes == 0);
}

TEST_CASE("pages the OS will not take back stay resident, counted as spare, and are reused first") {
    PagePool pool({.retain_pages = 0, .background_refill = false});
    const auto first = take(pool, PagePool::chunk_pages);  // a whole chunk
    const auto second = take(pool, 100);
    const std::size_t started = pool.stats().chunks_started;
    {
        zpage_test::OsFaults faults(zpage::detail::os::Call::decommit, 0);
        pool.give(std::span(first).first(300));
        const zpage::PagePoolStats s = pool.stats();
        CHECK(s.spare_bytes >= 300 * PagePool::page_bytes);
        CHECK(s.resident_bytes == (s.pages_in_use * PagePool::page_bytes) + s.spare_bytes);
    }
    const auto reused = take(pool, 300);
    CHECK(pool.stats().chunks_started == started);
    CHECK(std::set<PageNumber>(reused.begin(), reused.end()) == std::set<PageNumber>(first.begin(), first.begin() + 300));
    // Once the OS cooperates, chunks left empty go back whole.
    pool.give(reused);
    pool.give(std::span(first).subspan(300));
    pool.give(second);
    CHECK(pool.stats().resident_bytes <= PagePool::chunk_bytes);
}
