// Fixtures for stores that write back: the shipped backing stores behind a store, and a set of
// pages to fill one with (real pages of the corpora where present, with same-filled and
// incompressible ones among them).
#pragma once

#include <zpage/writeback/faulty_backing_store.hpp>
#include <zpage/writeback/file_backing_store.hpp>
#include <zpage/writeback/memory_backing_store.hpp>
#include <zpage/zpage.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "fixtures.hpp"

namespace zpage_test {

using MemoryBacked = zpage::CompressedPageStore<zpage::WritebackTraits<zpage::MemoryBackingStore>>;
using FaultyBacking = zpage::FaultyBackingStore<zpage::MemoryBackingStore>;
using FaultyBacked = zpage::CompressedPageStore<zpage::WritebackTraits<FaultyBacking>>;
using FileBacked = zpage::CompressedPageStore<zpage::WritebackTraits<zpage::FileBackingStore>>;

inline zpage::MemoryBackingConfig memory_backing(std::uint64_t bytes = std::uint64_t{64} << 20) {
    return zpage::MemoryBackingConfig{.max_bytes = bytes};
}

// `n` pages from PageSource(seed): mostly real pages, with same-filled, random (huge) and
// compressible generated ones among them.
inline std::vector<Page> test_pages(std::size_t n, std::uint64_t seed) {
    PageSource source(seed);
    std::vector<Page> pages;
    pages.reserve(n);
    for (std::size_t i = 0; i < n; ++i) pages.push_back(source.next());
    return pages;
}

// Stores pages[i] at index i, all of them.
template <class Store>
void store_all(Store& store, const std::vector<Page>& pages) {
    for (std::size_t i = 0; i < pages.size(); ++i) REQUIRE(store.store(i, pages[i]));
}

// Every index reads back as pages[i], byte for byte.
template <class Store>
void check_all(Store& store, const std::vector<Page>& pages) {
    Page back{};
    for (std::size_t i = 0; i < pages.size(); ++i) {
        INFO("page " << i);
        REQUIRE(store.load(i, back));
        REQUIRE(back == pages[i]);
    }
}

// Pages of the store flagged `flag` now.
template <class Store>
std::size_t count_flagged(const Store& store, zpage::PageFlag flag) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < store.capacity(); ++i) n += store.state(i).has(flag);
    return n;
}

// A race's compactor: compacts every millisecond until `stop`, as a worker of `watchdog`.
template <class Store, class Watchdog>
void compact_until(Store& store, Watchdog& watchdog, const std::atomic<bool>& stop) {
    auto& me = watchdog.enroll("compactor");
    while (!stop.load(std::memory_order_relaxed)) {
        me.working("compact");
        static_cast<void>(store.compact());
        me.done();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    watchdog.leave(me);
}

}  // namespace zpage_test
