// Stores, erases and loads race writeback, idle marking and compaction on a small store, with more
// threads than cores and than codec stream slots, under a watchdog: a page is always read whole (a
// store or erase that lands during a writeback wins; a load of a page whose record was replaced
// starts over), and when all is quiet the books agree with the entries and the backing store. The
// third case adds the reclaimer under a tight limit: its thread and direct reclaim by every
// storer. Run under TSan in CI.
#include <thread>

#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;
using zpage::PageFlag;

// 0: compressed format, 1: page format, 2: compressed with the reclaimer under a tight limit.
TEST_CASE_TEMPLATE("writeback, loads, stores, erases and compaction race without tearing a page", Case,
                   std::integral_constant<int, 0>, std::integral_constant<int, 1>, std::integral_constant<int, 2>) {
    constexpr std::size_t capacity = 256;
    const auto format = Case::value == 1 ? zpage::WritebackFormat::page : zpage::WritebackFormat::compressed;
    const bool reclaiming = Case::value == 2;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    zpage::StoreConfig config{.capacity_pages = capacity};
    if (reclaiming) {
        config.mem_limit_bytes = 256 << 10;  // a fifth of what the pages take: reclaim all the time
        config.reclaim = zpage::ReclaimConfig::balanced();
    }
    zpage_test::MemoryBacked store(config, zpage::Lz4{},
                                   {.backing = &disk, .options = {.format = format, .batch_bytes = 16 << 10}});
    const std::size_t storers =
        zpage::detail::StreamPool<zpage::Lz4>::default_slot_count() + (reclaiming ? 2 : 0);
    const std::uint64_t seed = zpage_test::test_seed();
    const std::vector<zpage_test::Page> bodies = zpage_test::test_pages(32, seed);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> torn{0}, failed{0};
    std::atomic<std::uint64_t> written_back{0};
    zpage_test::Watchdog watchdog(5000ms, "writeback races");

    auto storer = [&](std::uint64_t id) {
        auto& me = watchdog.enroll("storer " + std::to_string(id));
        std::mt19937_64 rng(seed + id);
        for (std::uint64_t seq = 0; !stop.load(std::memory_order_relaxed); ++seq) {
            const std::size_t index = rng() % capacity;
            if (rng() % 6 == 0) {
                me.working("erase", index);
                failed += !store.erase(index);
            } else {
                me.working("store", index);
                const zpage::Status stored = store.store(index, zpage_test::signed_page(bodies[rng() % bodies.size()], id, seq));
                // Under a limit a store may still be refused when every page is taken by a racing
                // writeback: the index keeps its page, which the checks below read whole.
                failed += !stored && !(reclaiming && stored == zpage::errc::memory_limit);
            }
            me.done();
        }
        watchdog.leave(me);
    };
    auto loader = [&](std::uint64_t id) {
        auto& me = watchdog.enroll("loader " + std::to_string(id));
        std::mt19937_64 rng(seed ^ (id << 40));
        zpage_test::Page back{};
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t index = rng() % capacity;
            me.working("load", index);
            failed += !store.load(index, back);
            torn += !zpage_test::is_whole(back);
            me.done();
        }
        watchdog.leave(me);
    };
    auto writer = [&] {
        auto& me = watchdog.enroll("writeback");
        std::mt19937_64 rng(seed ^ 0xABCDEF);
        while (!stop.load(std::memory_order_relaxed)) {
            me.working("mark_idle");
            store.mark_idle();
            me.working("writeback");
            const auto select = rng() % 2 == 0 ? zpage::WritebackSelect::idle : zpage::WritebackSelect::any;
            const zpage::WritebackResult r = store.writeback({.select = select, .max_pages = 64});
            failed += !r.status;
            written_back += r.pages;
            me.done();
        }
        watchdog.leave(me);
    };

    std::vector<std::thread> threads;
    for (std::uint64_t i = 1; i <= storers; ++i) threads.emplace_back(storer, i);
    for (std::uint64_t i = 1; i <= 2; ++i) threads.emplace_back(loader, i);
    threads.emplace_back(writer);
    threads.emplace_back([&] { zpage_test::compact_until(store, watchdog, stop); });
    std::this_thread::sleep_for(1500ms);
    stop = true;
    for (auto& t : threads) t.join();

    const zpage::ReclaimStats r = store.reclaim_stats();
    MESSAGE(threads.size() << " threads: " << written_back.load() << " pages written back by writeback(), "
                           << r.pgsteal_kswapd << " by the reclaimer, " << r.pgsteal_direct << " directly, "
                           << store.writeback_stats().pages_read_back << " read back during the race");
    if (reclaiming) {
        CHECK(r.pgsteal_kswapd + r.pgsteal_direct > 0);
        CHECK(store.stats().mem_used_max <= config.mem_limit_bytes);
    }
    CHECK(torn.load() == 0);
    CHECK(failed.load() == 0);
    CHECK(written_back.load() > 0);

    // Quiet: the entries, the counters and the backing store agree.
    std::size_t stored = 0, on_disk = 0;
    for (std::size_t i = 0; i < capacity; ++i) {
        const zpage::PageState s = store.state(i);
        CHECK_FALSE(s.has(PageFlag::under_writeback));
        stored += s.stored();
        on_disk += s.has(PageFlag::written_back);
    }
    CHECK(store.stats().orig_data_size == stored * 4096);
    CHECK(store.writeback_stats().written_back_pages == on_disk);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < capacity; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(zpage_test::is_whole(back));
        REQUIRE(store.erase(i));
    }
    CHECK(disk.stats().bd_count == 0);
    CHECK(store.stats().compr_data_size == 0);
}
