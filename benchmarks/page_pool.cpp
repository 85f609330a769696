// Where new span pages come from, per 4 KiB page handed out and first written (as a store writes
// an object into a page it has just taken), in one run:
//
// - pool: a fresh PagePool, pages taken one at a time (chunks of 2 MiB made resident in one call,
//   a transparent huge page each where the kernel offers them);
// - populate_16: MADV_POPULATE_WRITE 16 pages at a time, what spans did before the pool;
// - fault: plain first-touch faults, one page at a time.
//
// Each iteration maps (or takes) 64 MiB of fresh memory, writes a byte of every page and gives it
// all back, the giving back outside the timed region. Counter: pages/s (items).
#include <benchmark/benchmark.h>
#include <zpage/allocator/page_pool.hpp>

#include <sys/mman.h>

#include <vector>

namespace {

constexpr std::size_t region_bytes = std::size_t{64} << 20;
constexpr std::size_t region_pages = region_bytes / 4096;

void BM_Pool(benchmark::State& state) {
    std::vector<zpage::PageNumber> pages(region_pages);
    for (auto _ : state) {
        zpage::PagePool pool;  // fresh: nothing resident yet
        for (auto& page : pages) {
            if (!pool.take(std::span(&page, 1))) {
                state.SkipWithError("the pool refused memory");
                return;
            }
            *pool.address(page) = std::byte{1};
        }
        state.PauseTiming();
        pool.give(pages);
        state.ResumeTiming();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * region_pages));
}

std::byte* map_fresh() {
    void* p = ::mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

void BM_Populate(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        state.PauseTiming();
        std::byte* region = map_fresh();
        state.ResumeTiming();
        if (region == nullptr) {
            state.SkipWithError("mmap failed");
            return;
        }
        for (std::size_t page = 0; page < region_pages; ++page) {
            if (batch != 0 && page % batch == 0) ::madvise(region + page * 4096, batch * 4096, MADV_POPULATE_WRITE);
            region[page * 4096] = std::byte{1};
        }
        state.PauseTiming();
        ::munmap(region, region_bytes);
        state.ResumeTiming();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * region_pages));
}

}  // namespace

BENCHMARK(BM_Pool)->Name("BM_NewPage/pool")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Populate)->Name("BM_NewPage/populate_16")->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Populate)->Name("BM_NewPage/fault")->Arg(0)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
