// The reclaimer holds a store's limit by itself: a background thread between the watermarks and
// direct reclaim at the limit write back the coldest pages while twice the limit is stored, every
// page reads back, and what it cannot write (no space, the daily budget spent) makes stores fail
// with memory_limit without losing anything stored. Idle pages go by age. Every wait in these
// tests is under a watchdog: a hang in the reclaimer fails them.
#include <atomic>
#include <thread>
#include <vector>

#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;
using zpage::PageFlag;
using zpage_test::MemoryBacked;

namespace {

const std::size_t page_count = zpage_test::scaled(8192, 4);

// The memory a store of these pages uses with no limit, to set limits against.
std::size_t unlimited_use(const std::vector<zpage_test::Page>& pages) {
    zpage::Lz4Store store(pages.size());
    zpage_test::store_all(store, pages);
    return store.stats().mem_used_total;
}

// Stores every page, each store under the watchdog; returns the stores refused.
template <class Store>
std::size_t store_watched(Store& store, const std::vector<zpage_test::Page>& pages, zpage_test::Watchdog& watchdog,
                          zpage::errc* first_error = nullptr) {
    auto& me = watchdog.enroll("storing thread");
    std::size_t refused = 0;
    for (std::size_t i = 0; i < pages.size(); ++i) {
        me.working("store", i);
        const zpage::Status s = store.store(i, pages[i]);
        if (!s) {
            if (first_error != nullptr && refused == 0) *first_error = s.error();
            ++refused;
        }
        me.done();
    }
    watchdog.leave(me);
    return refused;
}

}  // namespace

TEST_CASE("the reclaimer holds the limit while twice the limit is stored, and every page reads back") {
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count, 41);
    const std::size_t limit = unlimited_use(pages) / 2;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing(std::uint64_t{256} << 20));
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::balanced();
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .mem_limit_bytes = limit, .reclaim = reclaim},
                       zpage::Lz4{}, {.backing = &disk});
    zpage_test::Watchdog watchdog(5000ms, "reclaimer under a limit");
    CHECK(store_watched(store, pages, watchdog) == 0);

    const zpage::Stats s = store.stats();
    CHECK(s.mem_used_max <= limit);
    const zpage::ReclaimStats r = store.reclaim_stats();
    MESSAGE("limit " << limit << " B: " << r.kswapd_wakeups << " wake-ups, " << r.pgsteal_kswapd << " pages in the background, "
                     << r.pgsteal_direct << " directly (" << r.allocstall << " stalls), "
                     << store.writeback_stats().written_back_pages << " on the backing store");
    CHECK(r.kswapd_wakeups > 0);
    CHECK(r.pgsteal_kswapd + r.pgsteal_direct > 0);
    CHECK(store.writeback_stats().written_back_pages > 0);
    auto& me = watchdog.enroll("checking thread");
    me.working("check_all");
    zpage_test::check_all(store, pages);  // loads bring pages back; the reclaimer makes room again
    me.done();
    watchdog.leave(me);
    CHECK(store.stats().mem_used_max <= limit);
}

TEST_CASE("direct reclaim alone holds the limit") {
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count / 2, 42);
    const std::size_t limit = unlimited_use(pages) / 2;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    zpage::ReclaimConfig reclaim;
    reclaim.direct = true;
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .mem_limit_bytes = limit, .reclaim = reclaim},
                       zpage::Lz4{}, {.backing = &disk});
    zpage_test::Watchdog watchdog(5000ms, "direct reclaim");
    CHECK(store_watched(store, pages, watchdog) == 0);
    const zpage::ReclaimStats r = store.reclaim_stats();
    CHECK(r.kswapd_wakeups == 0);
    CHECK(r.allocstall > 0);
    CHECK(r.pgsteal_direct > 0);
    CHECK(store.stats().mem_used_max <= limit);
    zpage_test::check_all(store, pages);
}

TEST_CASE("storing threads that reclaim directly at once are never refused while there is room to write back") {
    // A direct reclaim that waits for another thread's and then finds the high mark free has
    // nothing left to free itself; its store must still try again, not fail with memory_limit.
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count, 44);
    const std::size_t limit = unlimited_use(pages) / 4;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing(std::uint64_t{256} << 20));
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .mem_limit_bytes = limit,
                                          .reclaim = zpage::ReclaimConfig::balanced()},
                       zpage::Lz4{}, {.backing = &disk});
    zpage_test::Watchdog watchdog(5000ms, "storers reclaiming at once");
    constexpr std::size_t storers = 4;
    std::atomic<std::size_t> refused{0};
    std::atomic<zpage::errc> first_error{zpage::errc::ok};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < storers; ++t) {
        threads.emplace_back([&, t] {
            auto& me = watchdog.enroll("storer " + std::to_string(t));
            for (std::size_t i = t; i < pages.size(); i += storers) {
                me.working("store", i);
                const zpage::Status s = store.store(i, pages[i]);
                if (!s && refused++ == 0) first_error = s.error();
                me.done();
            }
            watchdog.leave(me);
        });
    }
    for (auto& thread : threads) thread.join();
    INFO("first refusal: " << zpage::to_string(first_error.load()));
    CHECK(refused.load() == 0);
    CHECK(store.reclaim_stats().allocstall > 0);
    CHECK(store.stats().mem_used_max <= limit);
    zpage_test::check_all(store, pages);
}

TEST_CASE("with no room left to write back, stores fail with memory_limit and nothing stored is lost") {
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count / 2, 43);
    const std::size_t limit = unlimited_use(pages) / 2;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing(256 << 10));  // room for ~100 pages
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .mem_limit_bytes = limit,
                                          .reclaim = zpage::ReclaimConfig::balanced()},
                       zpage::Lz4{}, {.backing = &disk});
    zpage_test::Watchdog watchdog(5000ms, "no room to write back");
    zpage::errc first = zpage::errc::ok;
    const std::size_t refused = store_watched(store, pages, watchdog, &first);
    CHECK(refused > 0);
    CHECK(first == zpage::errc::memory_limit);
    CHECK(store.stats().mem_used_max <= limit);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < pages.size(); ++i) {
        REQUIRE(store.load(i, back));
        if (store.contains(i)) REQUIRE(back == pages[i]);  // what was stored is intact
    }
}

TEST_CASE("the daily writeback budget caps what the reclaimer writes") {
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count / 2, 44);
    const std::size_t limit = unlimited_use(pages) / 2;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::balanced();
    reclaim.daily_writeback_blocks = 64;
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .mem_limit_bytes = limit, .reclaim = reclaim},
                       zpage::Lz4{}, {.backing = &disk});
    zpage_test::Watchdog watchdog(5000ms, "daily writeback budget");
    CHECK(store_watched(store, pages, watchdog) > 0);
    CHECK(disk.stats().bd_writes <= 64);
    CHECK(store.writeback_stats().writeback_limit_enable == 1);
    CHECK(store.writeback_stats().writeback_limit == 64 - disk.stats().bd_writes);
}

TEST_CASE("pages untouched for idle_age are written back by age") {
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(256, 45);
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::balanced();
    reclaim.idle_age = 1s;
    reclaim.scan_period = 1s;
    MemoryBacked store(zpage::StoreConfig{.capacity_pages = pages.size(), .reclaim = reclaim}, zpage::Lz4{},
                       {.backing = &disk});
    zpage_test::store_all(store, pages);
    zpage_test::Watchdog watchdog(10000ms, "idle writeback");
    auto& me = watchdog.enroll("waiting thread");
    me.working("waiting for the idle scan");
    while (store.reclaim_stats().pgsteal_idle == 0) std::this_thread::sleep_for(50ms);
    me.done();
    watchdog.leave(me);
    CHECK(store.writeback_stats().written_back_pages > 0);
    zpage_test::check_all(store, pages);
}
