// compact() alone, on an allocator fragmented as a store's is after it drops a random half of
// its pages, against memcpy of the surviving objects in the same run.
//
// The objects are what an lz4 store holds for each page set: every page compressed once with
// zpage::Lz4 before any timing, its real compressed bytes stored, or the raw page where the output
// exceeds the store's huge threshold (3632 B). They go through a HandleTable into a fresh
// SizeClassAllocator<4096>, a random half (fixed seed) is freed, and only compact() is timed:
// every iteration needs a fresh fragmented allocator, built and torn down with the timer paused
// (a few tens of ms of setup around a compaction of milliseconds, so the pause's own cost is
// noise).
//
// Counters: bytes/s = bytes moved per second of compaction, items/s = objects moved per second;
// per compaction: pages_freed, objects_moved, span MiB before and after, and after/before.
// Baseline: the survivors' bytes (class sizes) copied with memcpy from their places in a flat
// arena to a packed one, bytes/s and items/s over all survivors: the cost floor of moving them
// all, against which compaction's per-byte overhead (bookkeeping, owner locks, page release)
// reads as a ratio of rates.
#include <benchmark/benchmark.h>
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/handle_table.hpp>
#include <zpage/compressor/lz4.hpp>

#include <cstring>
#include <stdexcept>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "pages.hpp"

namespace {

using zpage_bench::PageSet;
using Allocator = zpage::SizeClassAllocator<4096>;
using Table = zpage::HandleTable<Allocator>;

constexpr std::size_t page_bytes = 4096;
constexpr std::size_t huge_threshold_bytes = page_bytes * 227 / 256;  // 3632 B: StoreConfig's default
constexpr std::uint64_t erase_seed = 1;

// The objects an lz4 store would allocate for a page set, back to back.
struct Objects {
    std::vector<std::byte> bytes;
    std::vector<std::size_t> ends;  // object i is bytes[ends[i-1], ends[i])

    [[nodiscard]] std::size_t count() const { return ends.size(); }
    [[nodiscard]] std::span<const std::byte> object(std::size_t i) const {
        const std::size_t begin = i == 0 ? 0 : ends[i - 1];
        return std::span(bytes).subspan(begin, ends[i] - begin);
    }
};

Objects lz4_objects(const PageSet& set) {
    const zpage::Lz4 codec;
    auto ctx = codec.make_compress_context();
    std::vector<std::byte> out(page_bytes + page_bytes / 8);
    Objects objects;
    for (std::size_t i = 0; i < set.pages(); ++i) {
        const std::size_t n = codec.compress(ctx, set.page(i), out);
        const std::span<const std::byte> object =
            n == 0 || n > huge_threshold_bytes ? std::span<const std::byte>(set.page(i)) : std::span(out).first(n);
        objects.bytes.insert(objects.bytes.end(), object.begin(), object.end());
        objects.ends.push_back(objects.bytes.size());
    }
    return objects;
}

// Which objects the random half keeps: the same for every iteration and for the baseline.
std::vector<bool> survivors(std::size_t count) {
    std::mt19937_64 rng(erase_seed);
    std::vector<bool> keep(count);
    for (std::size_t i = 0; i < count; ++i) keep[i] = (rng() & 1) == 0;
    return keep;
}

// All objects allocated through a table, then the random half freed.
struct Fragmented {
    zpage::MemoryBudget budget;
    Allocator allocator;
    Table table;

    Fragmented(const Objects& objects, const std::vector<bool>& keep)
        : allocator(zpage::AllocatorConfig{.budget = &budget}), table(allocator, budget, objects.count()) {
        std::vector<zpage::StableHandle> handles(objects.count());
        for (std::size_t i = 0; i < objects.count(); ++i) {
            const zpage::Result<zpage::StableHandle> h = table.allocate(objects.object(i));
            if (!h) throw std::runtime_error("allocate failed while filling");
            handles[i] = *h;
        }
        for (std::size_t i = 0; i < objects.count(); ++i)
            if (!keep[i]) table.deallocate(handles[i]);
    }
};

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

void compact(benchmark::State& state, const Objects& objects) {
    const std::vector<bool> keep = survivors(objects.count());
    std::unique_ptr<Fragmented> heap;
    zpage::CompactionResult result;
    zpage::AllocatorStats before, after;
    std::size_t moved_bytes = 0;
    std::size_t moved_objects = 0;
    for (auto _ : state) {
        state.PauseTiming();
        heap.reset();
        heap = std::make_unique<Fragmented>(objects, keep);
        before = heap->allocator.stats();
        state.ResumeTiming();

        result = heap->table.compact();

        state.PauseTiming();
        after = heap->allocator.stats();
        moved_bytes += result.bytes_moved;
        moved_objects += result.objects_moved;
        if (after.objects != before.objects) {
            state.SkipWithError("compaction lost or gained objects");
            break;
        }
        state.ResumeTiming();
    }
    heap.reset();  // the timer stopped with the loop
    state.SetBytesProcessed(static_cast<std::int64_t>(moved_bytes));
    state.SetItemsProcessed(static_cast<std::int64_t>(moved_objects));
    state.counters["pages_freed"] = static_cast<double>(result.pages_freed);
    state.counters["objects_moved"] = static_cast<double>(result.objects_moved);
    state.counters["span_MiB_before"] = mib(before.span_bytes);
    state.counters["span_MiB_after"] = mib(after.span_bytes);
    state.counters["after/before"] = static_cast<double>(after.span_bytes) / static_cast<double>(before.span_bytes);
}

// The survivors, each at its class size, from its place among all objects to a packed arena.
void memcpy_survivors(benchmark::State& state, const Objects& objects) {
    const std::vector<bool> keep = survivors(objects.count());
    std::vector<std::size_t> from, sizes;
    std::size_t flat_bytes = 0;
    for (std::size_t i = 0; i < objects.count(); ++i) {
        const std::size_t size = Allocator::size_classes::classes[Allocator::size_classes::class_of(objects.object(i).size())]
                                     .object_bytes;
        if (keep[i]) {
            from.push_back(flat_bytes);
            sizes.push_back(size);
        }
        flat_bytes += size;
    }
    std::vector<std::byte> flat(flat_bytes, std::byte{1});
    std::vector<std::byte> packed(flat_bytes, std::byte{1});
    std::size_t copied = 0;
    for (auto _ : state) {
        std::size_t to = 0;
        for (std::size_t k = 0; k < from.size(); ++k) {
            std::memcpy(packed.data() + to, flat.data() + from[k], sizes[k]);
            to += sizes[k];
        }
        copied = to;
        benchmark::DoNotOptimize(packed.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<std::size_t>(state.iterations()) * copied));
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<std::size_t>(state.iterations()) * from.size()));
}

void register_all() {
    for (const PageSet& set : zpage_bench::page_sets()) {
        // Shared by the set's benchmarks; built once, before any timing.
        auto objects = std::make_shared<const Objects>(lz4_objects(set));
        benchmark::RegisterBenchmark(("compact/memcpy/" + set.name).c_str(),
                                     [objects](benchmark::State& s) { memcpy_survivors(s, *objects); })
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("compact/zpage/" + set.name).c_str(),
                                     [objects](benchmark::State& s) { compact(s, *objects); })
            ->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all();  // loads and compresses the page sets, before any timing
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
