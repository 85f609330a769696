// Liveness: more threads than cores and than codec stream slots store, erase, load, compact and
// read stats on a small store at once, for every shipped bundle; a watchdog fails the run, saying
// where each thread waits, when no operation finishes for 5 s. This is the test that found a lock
// cycle (a load waiting for a stream slot under an entry lock; every slot held by a store waiting
// for a size-class lock; compaction holding that lock, waiting for the loader's entry). Run under
// TSan in CI too. Every page read must be whole, and the books must balance at the end.
#include <zpage/zpage.hpp>

#include <thread>
#include <vector>

#include "bundles.hpp"
#include "fixtures.hpp"
#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;

TEST_CASE_TEMPLATE("stores, loads, erases, compaction and stats never deadlock", Store, ZPAGE_TEST_STORES) {
    constexpr std::size_t page_size = Store::page_size;
    using Page = std::array<std::byte, page_size>;
    constexpr std::size_t capacity = 256;  // small: threads meet on indices and size classes all the time
    const std::size_t slots = zpage::detail::StreamPool<typename Store::compressor_type>::default_slot_count();
    const std::size_t storers = std::max<std::size_t>(slots, std::thread::hardware_concurrency()) + 2;
    constexpr std::size_t loaders = 2;
    const auto run_for = 1500ms;

    const std::uint64_t seed = zpage_test::test_seed();
    zpage_test::PageSource source(seed);
    std::vector<Page> bodies;
    for (int i = 0; i < 32; ++i) bodies.push_back(zpage_test::large_page<page_size>(source));

    Store store(capacity);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> torn{0}, failed{0};
    std::atomic<std::uint64_t> stores{0}, erases{0}, loads{0}, compactions{0}, stat_reads{0};
    zpage_test::Watchdog watchdog(5000ms, "stress of " + std::string(doctest::toString<Store>().c_str()));

    auto storer = [&](std::uint64_t id) {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("storer " + std::to_string(id));
        std::mt19937_64 rng(seed + id);
        for (std::uint64_t seq = 0; !stop.load(std::memory_order_relaxed); ++seq) {
            const std::size_t index = rng() % capacity;
            if (rng() % 8 == 0) {
                me.working("erase", index);
                failed += !store.erase(index);
                ++erases;
            } else {
                const Page page = zpage_test::signed_page(bodies[rng() % bodies.size()], id, seq);
                me.working("store", index);
                failed += !store.store(index, page);
                ++stores;
            }
            me.done();
        }
        watchdog.leave(me);
    };
    auto loader = [&](std::uint64_t id) {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("loader " + std::to_string(id));
        std::mt19937_64 rng(seed ^ (id << 32));
        Page back{};
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t index = rng() % capacity;
            me.working("load", index);
            failed += !store.load(index, back);
            torn += !zpage_test::is_whole(back);
            ++loads;
            me.done();
        }
        watchdog.leave(me);
    };
    auto compactor = [&] {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("compactor");
        while (!stop.load(std::memory_order_relaxed)) {
            me.working("compact");
            static_cast<void>(store.compact());
            ++compactions;
            me.done();
        }
        watchdog.leave(me);
    };
    auto reporter = [&] {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("stats");
        while (!stop.load(std::memory_order_relaxed)) {
            me.working("stats");
            const zpage::Stats s = store.stats();
            failed += s.orig_data_size > capacity * page_size;
            ++stat_reads;
            me.done();
            std::this_thread::sleep_for(1ms);
        }
        watchdog.leave(me);
    };

    std::vector<std::thread> threads;
    for (std::uint64_t i = 0; i < storers; ++i) threads.emplace_back(storer, i + 1);
    for (std::uint64_t i = 0; i < loaders; ++i) threads.emplace_back(loader, i + 1);
    threads.emplace_back(compactor);
    threads.emplace_back(reporter);
    std::this_thread::sleep_for(run_for);
    stop = true;
    for (auto& t : threads) t.join();

    MESSAGE(threads.size() << " threads (" << storers << " storing, " << slots << " stream slots, "
                           << std::thread::hardware_concurrency() << " cores): " << stores.load() << " stores, "
                           << erases.load() << " erases, " << loads.load() << " loads, " << compactions.load()
                           << " compactions, " << stat_reads.load() << " stats");
    CHECK(torn.load() == 0);
    CHECK(failed.load() == 0);
    CHECK(stores.load() > 0);
    CHECK(loads.load() > 0);
    CHECK(compactions.load() > 0);

    // Quiet now: every page whole, and the counters agree with what is stored.
    Page back{};
    std::size_t stored = 0;
    for (std::size_t i = 0; i < capacity; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(zpage_test::is_whole(back));
        stored += store.contains(i);
    }
    CHECK(store.stats().orig_data_size == stored * page_size);
    CHECK(store.validate() == "");
}

}  // namespace
