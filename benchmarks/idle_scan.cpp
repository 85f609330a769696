// What a walk of the page table costs: mark_idle() over a store of a million pages (the corpora's
// pages, stored again and again), entry by entry under each entry's lock, as the reclaimer's and
// writeback's scans go. Reported per entry and per million entries; stores and loads go on
// meanwhile, blocked at most one entry at a time.
#include <benchmark/benchmark.h>
#include <zpage/zpage.hpp>

#include <memory>

#include "pages.hpp"

namespace {

constexpr std::size_t million = 1'000'000;

struct TrackingTraits : zpage::DefaultTraits {
    struct writeback {
        static constexpr bool tracks_access_time = true;
        static constexpr bool writes_back = false;
    };
};
using Store = zpage::CompressedPageStore<TrackingTraits>;

Store& filled_store() {
    static const std::unique_ptr<Store> store = [] {
        auto s = std::make_unique<Store>(million);
        const auto& sets = zpage_bench::page_sets();
        std::size_t index = 0;
        while (index < million) {
            for (const auto& set : sets) {
                for (std::size_t i = 0; i < set.pages() && index < million; ++i, ++index)
                    static_cast<void>(s->store(index, set.page_view<4096>(i)));
            }
        }
        return s;
    }();
    return *store;
}

// Every page already idle: the walk's floor (lock, look, unlock).
void BM_MarkIdleWalk(benchmark::State& state) {
    Store& store = filled_store();
    store.mark_idle();
    for (auto _ : state) benchmark::DoNotOptimize(store.mark_idle());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * million));
}

// By age (nothing old enough): the same walk reading each entry's access time too.
void BM_MarkIdleByAgeWalk(benchmark::State& state) {
    Store& store = filled_store();
    for (auto _ : state) benchmark::DoNotOptimize(store.mark_idle(std::chrono::hours(24)));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * million));
}

}  // namespace

BENCHMARK(BM_MarkIdleWalk)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MarkIdleByAgeWalk)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
