// A fault handler must not allocate: once a thread's streams are made, a store's load (lz4, zstd,
// a recompressed unit) and a swap-in (a miss with readahead, or a swap-cache hit) make no heap
// allocation; a compressed region serving faults in the faulting thread makes none there, not
// even on the thread's first fault. Counted by replacing the global operator new, per thread.
#include <zpage/adapters/compressed_region.hpp>
#include <zpage/adapters/swap_device.hpp>

#include <cstdlib>
#include <new>
#include <optional>
#include <thread>

#include "writeback_fixtures.hpp"

namespace {
thread_local std::size_t allocations = 0;

void* counted(std::size_t bytes) noexcept {
    ++allocations;
    return std::malloc(bytes == 0 ? 1 : bytes);
}
void* counted_aligned(std::size_t bytes, std::align_val_t align) noexcept {
    ++allocations;
    const auto a = static_cast<std::size_t>(align);
    return std::aligned_alloc(a, (bytes + a - 1) / a * a);
}
}  // namespace

// Every form below pairs with malloc and free; GCC cannot see that through the replacements.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t bytes) {
    if (void* p = counted(bytes)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t bytes) {
    if (void* p = counted(bytes)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept { return counted(bytes); }
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept { return counted(bytes); }
void* operator new(std::size_t bytes, std::align_val_t align) {
    if (void* p = counted_aligned(bytes, align)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t bytes, std::align_val_t align) {
    if (void* p = counted_aligned(bytes, align)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

struct Tiered : zpage::DefaultTraits {
    using secondary_codecs = std::tuple<zpage::Zstd>;
};

// Allocations a fresh thread makes loading every page `rounds` times after a first pass that
// makes its streams.
template <class Load>
std::size_t steady_allocations(std::size_t pages, Load&& load) {
    std::size_t counted_loads = 0, made = 0;
    std::thread([&] {
        zpage_test::Page back{};
        for (std::size_t i = 0; i < pages; ++i) CHECK(load(i, back));  // no REQUIRE off the main thread
        allocations = 0;
        for (std::size_t round = 0; round < 3; ++round)
            for (std::size_t i = 0; i < pages; ++i) counted_loads += static_cast<bool>(load(i, back));
        made = allocations;
    }).join();
    CHECK(counted_loads == 3 * pages);
    return made;
}

template <class Store>
void fill(Store& store, const std::vector<zpage_test::Page>& pages) {
    for (std::size_t i = 0; i < pages.size(); ++i) REQUIRE(store.store(i, pages[i]));
}

}  // namespace

TEST_CASE("the count sees an allocation") {
    allocations = 0;
    const auto p = std::make_unique<std::byte[]>(100);
    CHECK(allocations == 1);
}

TEST_CASE("a store's load makes no allocation once the thread's streams are made") {
    constexpr std::size_t n = 512;
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n, zpage_test::test_seed());
    SUBCASE("lz4") {
        zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = n});
        fill(store, pages);
        CHECK(steady_allocations(n, [&](std::size_t i, zpage_test::Page& p) { return store.load(i, p); }) == 0);
    }
    SUBCASE("zstd") {
        zpage::ZstdStore store(zpage::StoreConfig{.capacity_pages = n});
        fill(store, pages);
        CHECK(steady_allocations(n, [&](std::size_t i, zpage_test::Page& p) { return store.load(i, p); }) == 0);
    }
    SUBCASE("recompressed into units of 16") {
        zpage::CompressedPageStore<Tiered> store(zpage::StoreConfig{.capacity_pages = n}, zpage::Lz4{}, {}, {zpage::Zstd{3}});
        fill(store, pages);
        static_cast<void>(store.mark_idle());
        REQUIRE(store.recompress({.select = zpage::RecompressSelect::idle, .codec = 1, .group_pages = 16}).units > 0);
        CHECK(steady_allocations(n, [&](std::size_t i, zpage_test::Page& p) { return store.load(i, p); }) == 0);
    }
}

TEST_CASE("a swap-in makes no allocation: misses with readahead and swap-cache hits") {
    constexpr std::size_t n = 512;
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(n, zpage_test::test_seed());
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = n});
    zpage::SwapDevice<zpage::Lz4Store> swap(store, {.page_cluster = 3});
    std::vector<zpage::SwapSlot> slots;
    for (const auto& page : pages) slots.push_back(*swap.swap_out(page));
    CHECK(steady_allocations(n, [&](std::size_t i, zpage_test::Page& p) { return swap.swap_in(slots[i], p); }) == 0);
    CHECK(swap.stats().swap_ra_hit > 0);
}

TEST_CASE("a region serving faults in the faulting thread allocates nothing there, from the thread's first fault") {
    constexpr std::size_t pages = 1024;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(256, zpage_test::test_seed());
    zpage::ZstdStore store(zpage::StoreConfig{.capacity_pages = pages});  // zstd: its loads take a stream
    std::optional<zpage::CompressedRegion<zpage::ZstdStore>> region;
    try {
        region.emplace(store, zpage::RegionConfig{.bytes = pages * 4096, .resident_budget_bytes = 128 * 4096,
                                                  .fault_service = zpage::FaultService::faulting_thread});
    } catch (const zpage::RegionError& e) {
        MESSAGE("skipped: " << e.what());
        return;
    }
    std::byte* const base = region->data();
    for (std::size_t i = 0; i < pages; ++i) std::memcpy(base + i * 4096, sample[i % sample.size()].data(), 4096);
    while (region->evict(pages) > 0) {
    }
    REQUIRE(region->stats().resident_pages == 0);
    const zpage::RegionStats before = region->stats();
    std::size_t made = 0, wrong = 0;
    std::thread([&] {
        allocations = 0;
        // Every page faults back in, over a budget an eighth of them: faults that wait for room.
        for (std::size_t i = 0; i < pages; ++i)
            wrong += std::memcmp(base + i * 4096, sample[i % sample.size()].data(), 4096) != 0;
        made = allocations;
    }).join();
    CHECK(wrong == 0);
    CHECK(made == 0);
    CHECK(region->stats().swap_ins - before.swap_ins >= pages / 2);
    CHECK(region->stats().direct_evictions == 0);
}
