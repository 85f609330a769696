// Store and load with 1..N threads on one store: each thread takes its own share of the indices,
// so the threads contend only inside the store (size-class locks, counters), as a multi-threaded
// user would. bytes/s is the aggregate over all threads, against wall-clock time.
#include <benchmark/benchmark.h>
#include <zpage/zpage.hpp>

#include <memory>

#include "pages.hpp"

namespace {

const zpage_bench::PageSet& pages() {
    // The largest page set: most pages to spread over threads.
    const auto& sets = zpage_bench::page_sets();
    return *std::max_element(sets.begin(), sets.end(),
                             [](const auto& a, const auto& b) { return a.pages() < b.pages(); });
}

std::unique_ptr<zpage::Lz4Store> shared_store;

void fill(const benchmark::State&) {
    shared_store = std::make_unique<zpage::Lz4Store>(pages().pages());
    for (std::size_t i = 0; i < pages().pages(); ++i) static_cast<void>(shared_store->store(i, pages().page_view<4096>(i)));
}
void drop(const benchmark::State&) { shared_store.reset(); }

std::pair<std::size_t, std::size_t> share(const benchmark::State& state) {
    const std::size_t n = pages().pages();
    const auto t = static_cast<std::size_t>(state.thread_index());
    const auto threads = static_cast<std::size_t>(state.threads());
    return {n * t / threads, n * (t + 1) / threads};
}

void BM_StoreThreads(benchmark::State& state) {
    const auto [first, last] = share(state);
    for (auto _ : state) {
        for (std::size_t i = first; i < last; ++i) benchmark::DoNotOptimize(shared_store->store(i, pages().page_view<4096>(i)).ok());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (last - first) * 4096));
}

void BM_LoadThreads(benchmark::State& state) {
    const auto [first, last] = share(state);
    std::array<std::byte, 4096> out{};
    for (auto _ : state) {
        for (std::size_t i = first; i < last; ++i) benchmark::DoNotOptimize(shared_store->load(i, out).ok());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (last - first) * 4096));
}

}  // namespace

BENCHMARK(BM_StoreThreads)->Setup(fill)->Teardown(drop)->ThreadRange(1, 4)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_LoadThreads)->Setup(fill)->Teardown(drop)->ThreadRange(1, 4)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

BENCHMARK_MAIN();
