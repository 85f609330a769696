// Store and load throughput against the codec alone, in one run, on the same pages.
//
// Baselines: LZ4_compress_default / LZ4_decompress_safe on each page, to and from its place in a
// preallocated arena (no allocation timed, as the reference figures are taken), the compressor
// into one hot buffer as its best case, and memcpy of each page. Store/lz4 is
// steady state: every page stored over its previous copy, so the store reuses its memory; the
// cold fill into a fresh store is reported apart. Counters: bytes/s over original page bytes, and
// ratio = orig_data_size / mem_used_total.
#include <benchmark/benchmark.h>
#include <lz4.h>
#include <zpage/zpage.hpp>

#include <cstring>

#include "pages.hpp"

namespace {

using zpage_bench::page_sets;

void set_bytes(benchmark::State& state, std::size_t pages) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * pages * 4096));
}

void BM_Memcpy(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    std::vector<std::byte> out(4096);
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i) {
            std::memcpy(out.data(), set.page(i).data(), 4096);
            benchmark::DoNotOptimize(out.data());
        }
    }
    set_bytes(state, set.pages());
    state.SetLabel(set.name);
}

// Each page compressed on its own into its place in a preallocated, populated arena, as the
// reference figures do (reference/ANCHORS.md): the codec's output has to land in memory too.
void BM_Lz4CompressDefault(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    const std::size_t bound = static_cast<std::size_t>(LZ4_compressBound(4096));
    std::vector<char> arena(set.pages() * bound, 1);
    std::size_t compressed = 0;
    for (auto _ : state) {
        compressed = 0;
        for (std::size_t i = 0; i < set.pages(); ++i) {
            const int n = LZ4_compress_default(reinterpret_cast<const char*>(set.page(i).data()), &arena[i * bound],
                                               4096, static_cast<int>(bound));
            compressed += static_cast<std::size_t>(n);
        }
        benchmark::DoNotOptimize(arena.data());
    }
    set_bytes(state, set.pages());
    state.counters["ratio"] = static_cast<double>(set.bytes.size()) / static_cast<double>(compressed);
    state.SetLabel(set.name);
}

// The codec's best case: every page into the same small buffer, always in L1.
void BM_Lz4CompressDefaultHot(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    std::vector<char> out(static_cast<std::size_t>(LZ4_compressBound(4096)));
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i) {
            benchmark::DoNotOptimize(LZ4_compress_default(reinterpret_cast<const char*>(set.page(i).data()),
                                                          out.data(), 4096, static_cast<int>(out.size())));
        }
    }
    set_bytes(state, set.pages());
    state.SetLabel(set.name);
}

// Each page decoded from its place in a packed arena into one page buffer, as a load does.
void BM_Lz4DecompressSafe(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    const std::size_t bound = static_cast<std::size_t>(LZ4_compressBound(4096));
    std::vector<char> arena(set.pages() * bound);
    std::vector<int> sizes(set.pages());
    for (std::size_t i = 0; i < set.pages(); ++i) {
        sizes[i] = LZ4_compress_default(reinterpret_cast<const char*>(set.page(i).data()), &arena[i * bound], 4096,
                                        static_cast<int>(bound));
    }
    std::vector<char> out(4096);
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i)
            benchmark::DoNotOptimize(LZ4_decompress_safe(&arena[i * bound], out.data(), sizes[i], 4096));
    }
    set_bytes(state, set.pages());
    state.SetLabel(set.name);
}

template <class Store>
void report(benchmark::State& state, const Store& store, const zpage_bench::PageSet& set) {
    const zpage::Stats s = store.stats();
    state.counters["ratio"] = static_cast<double>(s.orig_data_size) / static_cast<double>(s.mem_used_total);
    state.SetLabel(set.name + " " + store.compressor().name());
}

template <class Store>
void BM_Store(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    Store store(set.pages());
    for (std::size_t i = 0; i < set.pages(); ++i) static_cast<void>(store.store(i, set.page_view<4096>(i)));
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i) benchmark::DoNotOptimize(store.store(i, set.page_view<4096>(i)).ok());
    }
    set_bytes(state, set.pages());
    report(state, store, set);
}

template <class Store>
void BM_StoreColdFill(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    for (auto _ : state) {
        state.PauseTiming();
        {
            Store store(set.pages());
            state.ResumeTiming();
            for (std::size_t i = 0; i < set.pages(); ++i) benchmark::DoNotOptimize(store.store(i, set.page_view<4096>(i)).ok());
            state.PauseTiming();
            report(state, store, set);
        }
        state.ResumeTiming();
    }
    set_bytes(state, set.pages());
}

template <class Store>
void BM_Load(benchmark::State& state) {
    const auto& set = page_sets()[static_cast<std::size_t>(state.range(0))];
    Store store(set.pages());
    for (std::size_t i = 0; i < set.pages(); ++i) static_cast<void>(store.store(i, set.page_view<4096>(i)));
    std::array<std::byte, 4096> out{};
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i) benchmark::DoNotOptimize(store.load(i, out).ok());
    }
    set_bytes(state, set.pages());
    report(state, store, set);
}

void each_page_set(benchmark::internal::Benchmark* b) {
    for (std::size_t i = 0; i < page_sets().size(); ++i) b->Arg(static_cast<std::int64_t>(i));
    b->Unit(benchmark::kMillisecond)->MinTime(1.0);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(each_page_set);
BENCHMARK(BM_Lz4CompressDefault)->Apply(each_page_set);
BENCHMARK(BM_Lz4CompressDefaultHot)->Apply(each_page_set);
BENCHMARK(BM_Lz4DecompressSafe)->Apply(each_page_set);
BENCHMARK(BM_Store<zpage::Lz4Store>)->Name("BM_Store/lz4")->Apply(each_page_set);
BENCHMARK(BM_Load<zpage::Lz4Store>)->Name("BM_Load/lz4")->Apply(each_page_set);
BENCHMARK(BM_StoreColdFill<zpage::Lz4Store>)->Name("BM_StoreColdFill/lz4")->Apply(each_page_set);
BENCHMARK(BM_Store<zpage::ZstdStore>)->Name("BM_Store/zstd-3")->Apply(each_page_set);
BENCHMARK(BM_Load<zpage::ZstdStore>)->Name("BM_Load/zstd-3")->Apply(each_page_set);

BENCHMARK_MAIN();
