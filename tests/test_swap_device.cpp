// The swap-like adapter: real pages swapped out and in byte for byte, slots handed out in clusters
// and reused, readahead into the swap cache (and never a stale page from it), misuse refused, the
// store's limit reported with nothing leaked, and threads swapping at once under a watchdog.
#include <zpage/adapters/swap_device.hpp>

#include <algorithm>
#include <random>
#include <thread>

#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;

namespace {

using Swap = zpage::SwapDevice<zpage::Lz4Store>;

zpage::Lz4Store make_store(std::size_t slots, std::size_t limit = 0) {
    return zpage::Lz4Store(zpage::StoreConfig{.capacity_pages = slots, .mem_limit_bytes = limit});
}

}  // namespace

TEST_CASE("pages swapped out come back byte for byte, in any order, and freeing them empties the store") {
    const std::size_t n = zpage_test::scaled(4096);
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n, zpage_test::test_seed());
    zpage::Lz4Store store = make_store(n);
    Swap swap(store);
    std::vector<zpage::SwapSlot> slots;
    for (const auto& page : pages) {
        const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(page);
        REQUIRE(slot);
        slots.push_back(*slot);
    }
    CHECK(swap.stats().pswpout == n);
    CHECK(swap.stats().slots_used == n);
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(zpage_test::test_seed()));
    zpage_test::Page back{};
    for (const std::size_t i : order) {
        INFO("page " << i);
        REQUIRE(swap.swap_in(slots[i], back));
        REQUIRE(back == pages[i]);
    }
    for (const zpage::SwapSlot slot : slots) REQUIRE(swap.free(slot));
    const zpage::SwapStats s = swap.stats();
    CHECK(s.slots_used == 0);
    CHECK(s.pswpin >= n);
    CHECK(store.stats().orig_data_size == 0);
    CHECK(store.stats().compr_data_size == 0);
}

TEST_CASE("slots come in clusters, are reused once freed, and a full device says so and keeps nothing") {
    constexpr std::size_t n = 64;
    zpage::Lz4Store store = make_store(n);
    Swap swap(store, {.page_cluster = 0, .swap_cache_pages = 1, .cluster_slots = 16});
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n + 1, zpage_test::test_seed());
    std::vector<zpage::SwapSlot> slots;
    for (std::size_t i = 0; i < n; ++i) {
        const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(pages[i]);
        REQUIRE(slot);
        slots.push_back(*slot);
    }
    // One thread fills a cluster from its start: its pages sit together.
    for (std::size_t i = 1; i < 16; ++i) CHECK(slots[i].index == slots[0].index + i);
    const zpage::Result<zpage::SwapSlot> full = swap.swap_out(pages[n]);
    REQUIRE_FALSE(full);
    CHECK(full.error() == zpage::errc::no_space);
    CHECK(swap.stats().failed_swap_outs == 1);
    CHECK(swap.stats().slots_used == n);

    // A freed slot is the one the next swap-out finds, and holds the new page.
    REQUIRE(swap.free(slots[37]));
    const zpage::Result<zpage::SwapSlot> again = swap.swap_out(pages[n]);
    REQUIRE(again);
    CHECK(again->index == slots[37].index);
    zpage_test::Page back{};
    REQUIRE(swap.swap_in(*again, back));
    CHECK(back == pages[n]);
    REQUIRE(swap.swap_in(slots[36], back));
    CHECK(back == pages[36]);
}

TEST_CASE("a slot not in use is refused: a second free, a swap-in after free, a slot out of range") {
    zpage::Lz4Store store = make_store(16);
    Swap swap(store);
    const zpage_test::Page page = zpage_test::test_pages(1, zpage_test::test_seed())[0];
    const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(page);
    REQUIRE(slot);
    REQUIRE(swap.free(*slot));
    zpage_test::Page back{};
    CHECK(swap.free(*slot) == zpage::errc::invalid_argument);
    CHECK(swap.swap_in(*slot, back) == zpage::errc::invalid_argument);
    CHECK(swap.swap_in(zpage::SwapSlot{16}, back) == zpage::errc::invalid_argument);
    CHECK(swap.free(zpage::SwapSlot{1u << 30}) == zpage::errc::invalid_argument);
    CHECK(swap.stats().slots_used == 0);
}

TEST_CASE("a bad configuration is refused, naming the field") {
    zpage::Lz4Store store = make_store(16);
    CHECK_THROWS_WITH_AS(Swap(store, {.page_cluster = 11}), doctest::Contains("page_cluster"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(Swap(store, {.page_cluster = 4, .swap_cache_pages = 8}), doctest::Contains("swap_cache_pages"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(Swap(store, {.cluster_slots = 100}), doctest::Contains("cluster_slots"), std::invalid_argument);
}

TEST_CASE("swap-ins in order are served by readahead; with page_cluster 0 nothing is read ahead") {
    constexpr std::size_t n = 256;
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n, zpage_test::test_seed());
    for (const unsigned cluster : {0u, 3u}) {
        CAPTURE(cluster);
        zpage::Lz4Store store = make_store(n);
        Swap swap(store, {.page_cluster = cluster});
        std::vector<zpage::SwapSlot> slots;
        for (const auto& page : pages) slots.push_back(*swap.swap_out(page));
        zpage_test::Page back{};
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(swap.swap_in(slots[i], back));
            REQUIRE(back == pages[i]);
        }
        const zpage::SwapStats s = swap.stats();
        MESSAGE("page_cluster " << cluster << ": pswpin " << s.pswpin << ", swap_ra " << s.swap_ra << ", swap_ra_hit "
                                << s.swap_ra_hit << ", misses " << s.swap_cache_misses);
        CHECK(s.swap_ra_hit + s.swap_cache_misses == n);
        if (cluster == 0) {
            CHECK(s.swap_ra == 0);
            CHECK(s.swap_ra_hit == 0);
        } else {
            CHECK(s.swap_ra_hit > n * 3 / 4);  // the window grows to 8 as its pages are used
            CHECK(s.swap_ra_hit <= s.swap_ra);
        }
    }
}

TEST_CASE("a page read ahead is never served once its slot was freed and swapped out again") {
    constexpr std::size_t n = 8;
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n + 1, zpage_test::test_seed());
    zpage::Lz4Store store = make_store(n);
    Swap swap(store, {.page_cluster = 1, .swap_cache_pages = 8, .cluster_slots = 8});
    std::vector<zpage::SwapSlot> slots;
    for (std::size_t i = 0; i < n; ++i) slots.push_back(*swap.swap_out(pages[i]));
    zpage_test::Page back{};
    REQUIRE(swap.swap_in(slots[4], back));  // a neighbour of none: no readahead yet
    REQUIRE(swap.swap_in(slots[3], back));  // next to the last: reads ahead its window, slot 2
    REQUIRE(swap.stats().swap_ra == 1);
    REQUIRE(swap.free(slots[2]));
    const zpage::Result<zpage::SwapSlot> reused = swap.swap_out(pages[n]);
    REQUIRE(reused);
    REQUIRE(reused->index == slots[2].index);
    REQUIRE(swap.swap_in(*reused, back));
    CHECK(back == pages[n]);
    CHECK(swap.stats().swap_ra_hit == 0);
}

TEST_CASE("a swap-out the store's limit refuses keeps nothing and leaks no slot") {
    constexpr std::size_t n = 4096;
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n, zpage_test::test_seed());
    zpage::Lz4Store store = make_store(n, 1 << 20);
    Swap swap(store);
    std::size_t out = 0, refused = 0;
    for (const auto& page : pages) {
        const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(page);
        if (slot) {
            ++out;
        } else {
            CHECK(slot.error() == zpage::errc::memory_limit);
            ++refused;
        }
    }
    REQUIRE(refused > 0);
    const zpage::SwapStats s = swap.stats();
    CHECK(s.slots_used == out);
    CHECK(s.failed_swap_outs == refused);
    CHECK(store.stats().mem_used_total <= std::size_t{1} << 20);
}

TEST_CASE("threads swap out, in and free at once, each page coming back whole and its own") {
    constexpr std::size_t n = 2048;
    zpage::Lz4Store store = make_store(n);
    Swap swap(store, {.page_cluster = 2, .swap_cache_pages = 64, .cluster_slots = 64});
    const std::uint64_t seed = zpage_test::test_seed();
    const std::vector<zpage_test::Page> bodies = zpage_test::test_pages(64, seed);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> wrong{0}, failed{0}, swapped{0};
    zpage_test::Watchdog watchdog(5000ms, "swap device");
    auto worker = [&](std::uint64_t id) {
        auto& me = watchdog.enroll("swapper " + std::to_string(id));
        std::mt19937_64 rng(seed + id);
        std::vector<std::pair<zpage::SwapSlot, zpage_test::Page>> mine;
        zpage_test::Page back{};
        for (std::uint64_t seq = 0; !stop.load(std::memory_order_relaxed); ++seq) {
            if (mine.size() < 200 && rng() % 3 != 0) {
                me.working("swap_out");
                const zpage_test::Page page = zpage_test::signed_page(bodies[rng() % bodies.size()], id, seq);
                const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(page);
                if (slot) {
                    mine.emplace_back(*slot, page);
                } else if (slot.error() != zpage::errc::no_space) {
                    ++failed;
                }
            } else if (!mine.empty()) {
                // Mostly the newest (neighbours in the thread's cluster), sometimes any.
                const std::size_t at = rng() % 4 == 0 ? rng() % mine.size() : mine.size() - 1;
                me.working("swap_in", mine[at].first.index);
                if (!swap.swap_in(mine[at].first, back)) ++failed;
                wrong += back != mine[at].second;
                me.working("free", mine[at].first.index);
                if (!swap.free(mine[at].first)) ++failed;
                mine[at] = mine.back();
                mine.pop_back();
                ++swapped;
            }
            me.done();
        }
        for (const auto& [slot, page] : mine) {
            if (!swap.swap_in(slot, back) || back != page) ++wrong;
            if (!swap.free(slot)) ++failed;
        }
        watchdog.leave(me);
    };
    std::vector<std::thread> threads;
    for (std::uint64_t i = 1; i <= 4; ++i) threads.emplace_back(worker, i);
    std::this_thread::sleep_for(1000ms);
    stop = true;
    for (auto& t : threads) t.join();
    MESSAGE(swapped.load() << " pages swapped out and back in by " << threads.size() << " threads; readahead hits "
                           << swap.stats().swap_ra_hit);
    CHECK(swapped.load() > 0);
    CHECK(wrong.load() == 0);
    CHECK(failed.load() == 0);
    CHECK(swap.stats().slots_used == 0);
    CHECK(store.stats().orig_data_size == 0);
}
