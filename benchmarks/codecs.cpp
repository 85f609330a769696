// Every shipped codec alone, through the zpage Compressor interface, on each page set: compress
// and decompress timed apart, against memcpy of the same pages in the same run.
//
// As the store calls a codec and as the reference figures are taken (reference/ANCHORS.md): one
// context made before timing and reused, each page on its own; compress writes each page to its
// own place in a preallocated, populated arena (its output has to land in memory, as a store's
// does), decompress reads each page from its place in that arena into one page buffer (as a load
// does). Each place is the store's scratch size, page + 1/8, more than any shipped codec's worst
// case, so no codec falls back to a bounds-checked slow path. Decompress decodes every page, also
// those a store would keep raw: it measures the codec, not the store's huge path.
//
// Counters: bytes/s over original page bytes; ratio = page bytes / compressed bytes with every
// page whose output exceeds the store's huge threshold (3632 B of 4 KiB, zram's huge_class_size)
// counted as 4096 B, as the store keeps those raw (the anchors count from 3072 B, so their ratios
// read slightly higher on pages near the edge); huge = the pages so counted.
#include <benchmark/benchmark.h>
#include <zpage/compressor/identity.hpp>
#include <zpage/compressor/lz4.hpp>
#include <zpage/compressor/zstd.hpp>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "pages.hpp"

namespace {

using zpage_bench::PageSet;

constexpr std::size_t page_bytes = 4096;
constexpr std::size_t place_bytes = page_bytes + page_bytes / 8;  // the store's scratch size
constexpr std::size_t huge_threshold_bytes = page_bytes * 227 / 256;  // 3632 B: StoreConfig's default

// A page set compressed by one codec: each page's output at i * place_bytes, and its size.
struct Compressed {
    std::vector<std::byte> arena;
    std::vector<std::size_t> sizes;  // 0 where the codec gave up (the store would keep the page raw)
};

void set_bytes(benchmark::State& state, const PageSet& set) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * set.bytes.size()));
}

// What the store would hold for these pages, counting the pages it keeps raw as whole pages.
void set_ratio(benchmark::State& state, const PageSet& set, const std::vector<std::size_t>& sizes) {
    std::size_t held = 0;
    std::size_t huge = 0;
    for (const std::size_t n : sizes) {
        const bool raw = n == 0 || n > huge_threshold_bytes;
        held += raw ? page_bytes : n;
        huge += raw ? 1 : 0;
    }
    state.counters["ratio"] = static_cast<double>(set.bytes.size()) / static_cast<double>(held);
    state.counters["huge"] = static_cast<double>(huge);
}

template <zpage::Compressor Codec>
Compressed compress_all(const Codec& codec, typename Codec::compress_context& ctx, const PageSet& set) {
    Compressed out{std::vector<std::byte>(set.pages() * place_bytes, std::byte{1}), std::vector<std::size_t>(set.pages())};
    for (std::size_t i = 0; i < set.pages(); ++i)
        out.sizes[i] = codec.compress(ctx, set.page(i), std::span(out.arena).subspan(i * place_bytes, place_bytes));
    return out;
}

template <zpage::Compressor Codec>
void compress(benchmark::State& state, const Codec& codec, const PageSet& set) {
    auto ctx = codec.make_compress_context();
    Compressed out = compress_all(codec, ctx, set);  // populates the arena and warms the context
    const std::span<std::byte> arena(out.arena);
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i)
            out.sizes[i] = codec.compress(ctx, set.page(i), arena.subspan(i * place_bytes, place_bytes));
        benchmark::DoNotOptimize(out.sizes.data());
        benchmark::ClobberMemory();
    }
    set_bytes(state, set);
    set_ratio(state, set, out.sizes);
}

template <zpage::Compressor Codec>
void decompress(benchmark::State& state, const Codec& codec, const PageSet& set) {
    auto cctx = codec.make_compress_context();
    const Compressed in = compress_all(codec, cctx, set);
    const std::span<const std::byte> arena(in.arena);
    auto ctx = codec.make_decompress_context();
    std::vector<std::byte> out(page_bytes);
    // Every page must decode to itself, or the figures below would time a failure path.
    for (std::size_t i = 0; i < set.pages(); ++i) {
        if (in.sizes[i] == 0) {
            state.SkipWithError((codec.name() + ": a page did not fit its place").c_str());
            return;
        }
        const zpage::Result<std::size_t> n = codec.decompress(ctx, arena.subspan(i * place_bytes, in.sizes[i]), out);
        if (!n || *n != page_bytes || std::memcmp(out.data(), set.page(i).data(), page_bytes) != 0) {
            state.SkipWithError((codec.name() + ": a page did not decode to itself").c_str());
            return;
        }
    }
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i)
            benchmark::DoNotOptimize(codec.decompress(ctx, arena.subspan(i * place_bytes, in.sizes[i]), out));
        benchmark::ClobberMemory();
    }
    set_bytes(state, set);
    set_ratio(state, set, in.sizes);
}

// Baselines: the same pages to their places, and from them, by memcpy.
void memcpy_to_arena(benchmark::State& state, const PageSet& set) {
    std::vector<std::byte> arena(set.pages() * place_bytes, std::byte{1});
    auto copy_all = [&] {
        for (std::size_t i = 0; i < set.pages(); ++i)
            std::memcpy(arena.data() + i * place_bytes, set.page(i).data(), page_bytes);
        benchmark::DoNotOptimize(arena.data());
        benchmark::ClobberMemory();
    };
    copy_all();  // untimed, as compress() warms up with compress_all()
    for (auto _ : state) copy_all();
    set_bytes(state, set);
}

void memcpy_from_arena(benchmark::State& state, const PageSet& set) {
    std::vector<std::byte> arena(set.pages() * place_bytes);
    for (std::size_t i = 0; i < set.pages(); ++i)
        std::memcpy(arena.data() + i * place_bytes, set.page(i).data(), page_bytes);
    std::vector<std::byte> out(page_bytes);
    for (auto _ : state) {
        for (std::size_t i = 0; i < set.pages(); ++i) {
            std::memcpy(out.data(), arena.data() + i * place_bytes, page_bytes);
            benchmark::DoNotOptimize(out.data());
        }
        benchmark::ClobberMemory();
    }
    set_bytes(state, set);
}

void tune(benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMillisecond); }

// Per page set: compress by memcpy then by each codec, then decompress likewise, so that each
// baseline is printed above the figures it is read against.
void register_all() {
    const auto codecs = std::make_tuple(zpage::Lz4{.acceleration = 1}, zpage::Lz4{.acceleration = 8},
                                        zpage::Lz4hc{.level = 9}, zpage::Zstd{.level = -5}, zpage::Zstd{.level = 1},
                                        zpage::Zstd{.level = 3}, zpage::Identity{});
    for (const PageSet& set : zpage_bench::page_sets()) {
        tune(benchmark::RegisterBenchmark(("compress/memcpy/" + set.name).c_str(),
                                          [&set](benchmark::State& s) { memcpy_to_arena(s, set); }));
        std::apply(
            [&set](const auto&... codec) {
                (tune(benchmark::RegisterBenchmark(("compress/" + codec.name() + "/" + set.name).c_str(),
                                                   [codec, &set](benchmark::State& s) { compress(s, codec, set); })),
                 ...);
            },
            codecs);
        tune(benchmark::RegisterBenchmark(("decompress/memcpy/" + set.name).c_str(),
                                          [&set](benchmark::State& s) { memcpy_from_arena(s, set); }));
        std::apply(
            [&set](const auto&... codec) {
                (tune(benchmark::RegisterBenchmark(("decompress/" + codec.name() + "/" + set.name).c_str(),
                                                   [codec, &set](benchmark::State& s) { decompress(s, codec, set); })),
                 ...);
            },
            codecs);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all();  // loads the page sets, before any timing
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
