// Stores, erases and loads race recompression into units (groups of 16, 4 and single pages),
// writeback, idle marking and compaction on a small store, with more threads than cores and than
// codec stream slots, under a watchdog: a page is always read whole (a store or erase that lands
// during a recompression wins and leaves the unit; a load of a grouped page decodes its unit under
// the page's lock), and when all is quiet the books agree with the entries and every unit is gone
// once its pages are. Run under TSan in CI.
#include <thread>

#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;
using zpage::PageFlag;

namespace {
struct TieredBacked : zpage::WritebackTraits<zpage::MemoryBackingStore> {
    using secondary_codecs = std::tuple<zpage::Zstd, zpage::Lz4hc>;
};
using Store = zpage::CompressedPageStore<TieredBacked>;
}  // namespace

TEST_CASE("recompression, writeback, loads, stores, erases and compaction race without tearing a page") {
    constexpr std::size_t capacity = 256;
    zpage::MemoryBackingStore disk(zpage_test::memory_backing());
    Store store(zpage::StoreConfig{.capacity_pages = capacity}, zpage::Lz4{},
                {.backing = &disk, .options = {.batch_bytes = 16 << 10}}, {zpage::Zstd{3}, zpage::Lz4hc{9}});
    const std::size_t storers = zpage::detail::StreamPool<zpage::Zstd>::default_slot_count();
    const std::uint64_t seed = zpage_test::test_seed();
    const std::vector<zpage_test::Page> bodies = zpage_test::test_pages(32, seed);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> torn{0}, failed{0};
    // The first failure, named: which operation and why.
    std::atomic<const char*> first_failure{nullptr};
    auto check = [&](const char* op, zpage::Status s) {
        if (s) return;
        ++failed;
        const char* none = nullptr;
        first_failure.compare_exchange_strong(none, op);
        if (none == nullptr) MESSAGE(std::string(op) << ": " << std::string(s.message()));
    };
    std::atomic<std::uint64_t> recompressed{0}, units{0};
    zpage_test::Watchdog watchdog(5000ms, "recompression races");
    for (std::size_t i = 0; i < capacity; ++i) REQUIRE(store.store(i, zpage_test::signed_page(bodies[i % bodies.size()], 0, i)));

    auto storer = [&](std::uint64_t id) {
        auto& me = watchdog.enroll("storer " + std::to_string(id));
        std::mt19937_64 rng(seed + id);
        for (std::uint64_t seq = 0; !stop.load(std::memory_order_relaxed); ++seq) {
            const std::size_t index = rng() % capacity;
            if (rng() % 6 == 0) {
                me.working("erase", index);
                check("erase", store.erase(index));
            } else {
                me.working("store", index);
                check("store", store.store(index, zpage_test::signed_page(bodies[rng() % bodies.size()], id, seq)));
            }
            me.done();
            if (rng() % 8 == 0) std::this_thread::sleep_for(50us);  // let recompression find idle pages
        }
        watchdog.leave(me);
    };
    auto loader = [&](std::uint64_t id) {
        auto& me = watchdog.enroll("loader " + std::to_string(id));
        std::mt19937_64 rng(seed ^ (id << 40));
        zpage_test::Page back{};
        while (!stop.load(std::memory_order_relaxed)) {
            // Runs of neighbours, as the unit cache serves them, and random pages.
            const std::size_t first = rng() % capacity;
            for (std::size_t index = first; index < std::min(capacity, first + 1 + rng() % 16); ++index) {
                me.working("load", index);
                check("load", store.load(index, back));
                torn += !zpage_test::is_whole(back);
                me.done();
            }
        }
        watchdog.leave(me);
    };
    auto recompressor = [&] {
        auto& me = watchdog.enroll("recompress");
        std::mt19937_64 rng(seed ^ 0x5EED);
        while (!stop.load(std::memory_order_relaxed)) {
            me.working("mark_idle");
            store.mark_idle();
            const std::size_t group = std::array<std::size_t, 3>{1, 4, 16}[rng() % 3];
            me.working("recompress", group);
            const zpage::RecompressResult r = store.recompress(
                {.select = rng() % 2 == 0 ? zpage::RecompressSelect::idle : zpage::RecompressSelect::any,
                 .codec = static_cast<unsigned>(1 + rng() % 2),
                 .group_pages = group});
            check("recompress", r.status);
            recompressed += r.pages;
            units += r.units;
            me.done();
        }
        watchdog.leave(me);
    };
    auto writer = [&] {
        auto& me = watchdog.enroll("writeback");
        while (!stop.load(std::memory_order_relaxed)) {
            me.working("writeback");
            const zpage::WritebackResult r = store.writeback({.select = zpage::WritebackSelect::any, .max_pages = 16});
            check("writeback", r.status);
            me.done();
            std::this_thread::sleep_for(2ms);
        }
        watchdog.leave(me);
    };

    std::vector<std::thread> threads;
    for (std::uint64_t i = 1; i <= storers; ++i) threads.emplace_back(storer, i);
    for (std::uint64_t i = 1; i <= 2; ++i) threads.emplace_back(loader, i);
    threads.emplace_back(recompressor);
    threads.emplace_back(writer);
    threads.emplace_back([&] { zpage_test::compact_until(store, watchdog, stop); });
    std::this_thread::sleep_for(1500ms);
    stop = true;
    for (auto& t : threads) t.join();

    MESSAGE(threads.size() << " threads: " << recompressed.load() << " pages recompressed into " << units.load()
                           << " units and alone");
    CHECK(torn.load() == 0);
    CHECK(failed.load() == 0);
    CHECK(recompressed.load() > 0);
    CHECK(units.load() > 0);

    // Quiet: the entries and the counters agree, every page reads whole, and once every page is
    // erased no unit or object is left.
    std::size_t stored = 0;
    for (std::size_t i = 0; i < capacity; ++i) {
        const zpage::PageState s = store.state(i);
        CHECK_FALSE(s.has(PageFlag::under_writeback));
        CHECK_FALSE(s.has(PageFlag::under_recompression));
        stored += s.stored();
    }
    CHECK(store.stats().orig_data_size == stored * 4096);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < capacity; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(zpage_test::is_whole(back));
        REQUIRE(store.erase(i));
    }
    CHECK(store.stats().compr_data_size == 0);
    CHECK(disk.stats().bd_count == 0);
    static_cast<void>(store.compact());
    CHECK(store.allocator().stats().objects == 0);
}
