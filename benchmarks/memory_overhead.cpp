// Memory overhead of a store on each page set, per codec: mem_used_total / compr_data_size after
// filling, and again after erasing a random half and compacting. The kernel's zsmalloc measures
// 1.05-1.07 after filling on the shared corpora (reference/ANCHORS.md).
//
// Not a timing: each benchmark runs once and reports counters.
#include <benchmark/benchmark.h>
#include <zpage/zpage.hpp>

#include <random>

#include "pages.hpp"

namespace {

template <class Store>
void BM_Overhead(benchmark::State& state) {
    const auto& set = zpage_bench::page_sets()[static_cast<std::size_t>(state.range(0))];
    for (auto _ : state) {
        Store store(set.pages());
        for (std::size_t i = 0; i < set.pages(); ++i) static_cast<void>(store.store(i, set.page_view<4096>(i)));
        const zpage::Stats filled = store.stats();
        std::mt19937_64 rng(1);
        for (std::size_t i = 0; i < set.pages(); ++i)
            if (rng() & 1) static_cast<void>(store.erase(i));
        const zpage::CompactionResult compacted = store.compact();
        const zpage::Stats half = store.stats();
        auto ratio = [](std::uint64_t a, std::uint64_t b) { return static_cast<double>(a) / static_cast<double>(b); };
        state.counters["filled_mem/compr"] = ratio(filled.mem_used_total, filled.compr_data_size);
        state.counters["filled_ratio"] = ratio(filled.orig_data_size, filled.mem_used_total);
        state.counters["half_compacted_mem/compr"] = ratio(half.mem_used_total, half.compr_data_size);
        state.counters["pages_compacted"] = static_cast<double>(compacted.pages_freed);
        state.counters["same"] = static_cast<double>(filled.same_pages);
        state.counters["huge"] = static_cast<double>(filled.huge_pages);
        state.SetLabel(set.name + " " + store.compressor().name());
    }
}

void each_page_set(benchmark::internal::Benchmark* b) {
    for (std::size_t i = 0; i < zpage_bench::page_sets().size(); ++i) b->Arg(static_cast<std::int64_t>(i));
    b->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_Overhead<zpage::Lz4Store>)->Name("BM_Overhead/lz4")->Apply(each_page_set);
BENCHMARK(BM_Overhead<zpage::ZstdStore>)->Name("BM_Overhead/zstd-3")->Apply(each_page_set);

BENCHMARK_MAIN();
