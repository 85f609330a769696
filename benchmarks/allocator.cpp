// SizeClassAllocator<4096> alone, per object size, against malloc/free and memcpy of the same
// bytes with the same access pattern, in one run.
//
// replace: steady state. A pool of live objects (16 MiB of them, at least 4096) is filled before
// timing; each iteration frees a random one and allocates a new one of the same size in its
// stead, so spans neither grow nor empty (a warm-up pass before timing brings the class to that
// state). allocate copies the object's bytes, so the baselines copy them too: malloc + memcpy /
// free, and memcpy alone to the victim's place in a flat arena (the floor: the copy and the
// cache miss at a random place, no allocator). Victims come from one precomputed random sequence
// shared by all three, so the random-number generator is not timed.
//
// read: allocator.read of a random live object, copying its bytes out as a load would, against
// the same through a table of pointers to malloc'd blocks (the same two dependent loads: handle,
// then object) and memcpy from a flat arena (one load: the floor). read takes no lock and decodes
// the handle arithmetically, so the malloc table is the figure to read it against.
//
// Counters: items/s (one replace or read each), bytes/s over the object bytes, and for zpage
// mem/object = the allocator's total_bytes() / the objects' own bytes in steady state (class
// rounding, span tails, the partial span, metadata).
#include <benchmark/benchmark.h>
#include <zpage/allocator/allocator.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Allocator = zpage::SizeClassAllocator<4096>;

constexpr std::size_t pool_bytes = std::size_t{16} << 20;
constexpr std::size_t min_pool_objects = 4096;
constexpr std::size_t victim_count = std::size_t{1} << 16;  // a power of two: indexed by mask

std::size_t pool_objects(std::size_t object_bytes) {
    return std::max(pool_bytes / object_bytes, min_pool_objects);
}

// Random indices into a pool of `pool` objects; the same sequence for every benchmark of a size.
std::vector<std::uint32_t> victims(std::size_t pool) {
    std::mt19937_64 rng(1);
    std::vector<std::uint32_t> order(victim_count);
    for (auto& i : order) i = static_cast<std::uint32_t>(rng() % pool);
    return order;
}

std::vector<std::byte> object(std::size_t object_bytes) {
    std::vector<std::byte> bytes(object_bytes);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 131 + 7);
    return bytes;
}

void report(benchmark::State& state, std::size_t object_bytes) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<std::size_t>(state.iterations()) * object_bytes));
}

// A filled pool; any owner id works, since nothing here compacts.
struct ZpagePool {
    Allocator allocator;
    std::vector<zpage::ObjectHandle> live;

    ZpagePool(std::size_t count, std::span<const std::byte> bytes) : live(count) {
        for (std::size_t i = 0; i < count; ++i) {
            const zpage::Result<zpage::ObjectHandle> h = allocator.allocate(bytes, static_cast<zpage::OwnerId>(i));
            if (!h) throw std::runtime_error("allocate failed while filling the pool");
            live[i] = *h;
        }
    }
};

void BM_ReplaceZpage(benchmark::State& state, std::size_t size) {
    const std::vector<std::byte> bytes = object(size);
    ZpagePool pool(pool_objects(size), bytes);
    const std::vector<std::uint32_t> order = victims(pool.live.size());
    auto replace = [&](std::uint32_t i) {
        pool.allocator.deallocate(pool.live[i]);
        const zpage::Result<zpage::ObjectHandle> h = pool.allocator.allocate(bytes, i);
        if (h) pool.live[i] = *h;
        return h.ok();
    };
    for (const std::uint32_t i : order) {
        if (!replace(i)) {
            state.SkipWithError("allocate failed in warm-up");
            return;
        }
    }
    std::size_t k = 0;
    for (auto _ : state) {
        if (!replace(order[k++ & (victim_count - 1)])) {
            state.SkipWithError("allocate failed");
            break;
        }
    }
    report(state, size);
    const zpage::AllocatorStats s = pool.allocator.stats();
    state.counters["mem/object"] =
        static_cast<double>(s.total_bytes()) / static_cast<double>(pool.live.size() * size);
}

void BM_ReplaceMalloc(benchmark::State& state, std::size_t size) {
    const std::vector<std::byte> bytes = object(size);
    std::vector<void*> live(pool_objects(size));
    auto fresh = [&] {
        void* p = std::malloc(size);
        if (p != nullptr) std::memcpy(p, bytes.data(), size);
        return p;
    };
    for (auto& p : live) p = fresh();
    const std::vector<std::uint32_t> order = victims(live.size());
    for (const std::uint32_t i : order) {
        std::free(live[i]);
        live[i] = fresh();
    }
    std::size_t k = 0;
    for (auto _ : state) {
        const std::uint32_t i = order[k++ & (victim_count - 1)];
        std::free(live[i]);
        live[i] = fresh();
        benchmark::DoNotOptimize(live[i]);
    }
    report(state, size);
    for (void* p : live) std::free(p);
}

void BM_ReplaceMemcpy(benchmark::State& state, std::size_t size) {
    const std::vector<std::byte> bytes = object(size);
    const std::size_t count = pool_objects(size);
    std::vector<std::byte> arena(count * size, std::byte{1});
    const std::vector<std::uint32_t> order = victims(count);
    std::size_t k = 0;
    for (auto _ : state) {
        std::byte* to = arena.data() + std::size_t{order[k++ & (victim_count - 1)]} * size;
        std::memcpy(to, bytes.data(), size);
        benchmark::DoNotOptimize(to);
    }
    report(state, size);
}

void BM_ReadZpage(benchmark::State& state, std::size_t size) {
    const std::vector<std::byte> bytes = object(size);
    const ZpagePool pool(pool_objects(size), bytes);
    const std::vector<std::uint32_t> order = victims(pool.live.size());
    std::vector<std::byte> out(size);
    std::size_t k = 0;
    for (auto _ : state) {
        pool.allocator.read(pool.live[order[k++ & (victim_count - 1)]], [&](std::span<const std::byte> object_bytes) {
            std::memcpy(out.data(), object_bytes.data(), size);
        });
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    report(state, size);
}

// The like-for-like baseline of read: the same dependent load (handle, then object) through a
// table of malloc'd blocks.
void BM_ReadMalloc(benchmark::State& state, std::size_t size) {
    const std::vector<std::byte> bytes = object(size);
    std::vector<void*> live(pool_objects(size));
    for (auto& p : live) {
        p = std::malloc(size);
        if (p == nullptr) throw std::bad_alloc();
        std::memcpy(p, bytes.data(), size);
    }
    const std::vector<std::uint32_t> order = victims(live.size());
    std::vector<std::byte> out(size);
    std::size_t k = 0;
    for (auto _ : state) {
        std::memcpy(out.data(), live[order[k++ & (victim_count - 1)]], size);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    report(state, size);
    for (void* p : live) std::free(p);
}

void BM_ReadMemcpy(benchmark::State& state, std::size_t size) {
    const std::size_t count = pool_objects(size);
    std::vector<std::byte> arena(count * size, std::byte{1});
    const std::vector<std::uint32_t> order = victims(count);
    std::vector<std::byte> out(size);
    std::size_t k = 0;
    for (auto _ : state) {
        std::memcpy(out.data(), arena.data() + std::size_t{order[k++ & (victim_count - 1)]} * size, size);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    report(state, size);
}

// Object sizes across the classes: the smallest, typical compressed pages, the huge threshold
// (3632 B) and a raw page.
constexpr std::array<std::size_t, 8> object_sizes{32, 64, 256, 1024, 2048, 3000, 3632, 4096};

std::string name(const char* what, std::size_t size) {
    std::string n(what);
    n += '/';
    n += std::to_string(size);
    return n;
}

// Size by size, each baseline above what it is read against.
void register_all() {
    for (const std::size_t size : object_sizes) {
        benchmark::RegisterBenchmark(name("replace/memcpy", size).c_str(), BM_ReplaceMemcpy, size);
        benchmark::RegisterBenchmark(name("replace/malloc", size).c_str(), BM_ReplaceMalloc, size);
        benchmark::RegisterBenchmark(name("replace/zpage", size).c_str(), BM_ReplaceZpage, size);
    }
    for (const std::size_t size : object_sizes) {
        benchmark::RegisterBenchmark(name("read/memcpy", size).c_str(), BM_ReadMemcpy, size);
        benchmark::RegisterBenchmark(name("read/malloc", size).c_str(), BM_ReadMalloc, size);
        benchmark::RegisterBenchmark(name("read/zpage", size).c_str(), BM_ReadZpage, size);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
