// zpage-bench: one input through one codec in a zpage::CompressedPageStore.
//
// Every page is stored into a fresh store (the pages split among the threads, storing at once),
// then every page is loaded (the same split) and, in a separate untimed pass, compared with what
// was stored. Throughput is the aggregate over wall-clock time; each store and load is also timed
// on its own for the latency percentiles. With `steady`, an untimed pass stores every page first,
// so that the timed stores replace pages already stored: a store in use, its memory populated.
// An A+B spec's store holds B as its secondary codec: after the timed stores with A, every page is
// recompressed with B (timed on its own) and the store compacted, and what follows (memory, loads,
// verification) measures the store as recompression left it.
#pragma once

#include <zpage/zpage.hpp>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "backing.hpp"
#include "codec_spec.hpp"
#include "timed_pass.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

// The backing file a --backing store writes to: room for every page raw, with headers, twice.
inline zpage::FileBackingConfig backing_config(const BackingSpec& backing, const PageSet& input) {
    return zpage::FileBackingConfig{.path = backing.path,
                                    .max_bytes = 2 * (input.bytes.size() + input.pages() * zpage::record_header_bytes) +
                                                 (std::uint64_t{64} << 20),
                                    .max_record_bytes = zpage::record_bytes(input.page_size)};
}

// A store that writes back runs under the limit with bench_reclaim(); one that also recompresses
// recompresses idle pages (B, in the spec's groups) before it writes back, as ReclaimConfig::tiered().
template <class Store>
std::unique_ptr<Store> make_store(const PageSet& input, typename Store::compressor_type codec,
                                  typename Store::secondary_codecs_type secondaries, const CodecSpec& spec,
                                  const BackingSpec* backing, std::optional<zpage::FileBackingStore>& disk) {
    zpage::StoreConfig config{.capacity_pages = input.pages()};
    typename Store::writeback_type writeback{};
    if constexpr (Store::writes_back) {
        disk.emplace(backing_config(*backing, input));
        config.mem_limit_bytes = backing->mem_limit_bytes;
        config.reclaim = bench_reclaim();
        if constexpr (Store::recompresses) {
            config.reclaim.recompress_codec = 1;
            config.reclaim.recompress_group_pages = spec.recompression->group_pages;
        }
        writeback.backing = &*disk;
    }
    return std::make_unique<Store>(config, std::move(codec), std::move(writeback), std::move(secondaries));
}

// Marks every page idle and recompresses them all with the store's first secondary codec, the
// call timed on its own; then compacts, so that the memory measured after it no longer counts the
// holes the old objects left.
template <class Store>
void recompress_all(Store& store, const Recompression& with, RunResult& r) {
    static_cast<void>(store.mark_idle());
    const auto begin = Clock::now();
    const zpage::RecompressResult done = store.recompress(
        zpage::RecompressRequest{.select = zpage::RecompressSelect::idle, .codec = 1, .group_pages = with.group_pages});
    const Clock::duration took = Clock::now() - begin;
    static_cast<void>(store.compact());
    r.recompressed = true;
    r.recompressed_pages = done.pages;
    r.recompress_units = done.units;
    r.recompress_bytes_saved = done.bytes_saved;
    r.recompress_not_paid = done.not_paid;
    r.recompress_mib_s = mib_per_s(done.tried * Store::page_size, took);  // paid or not: all of its work
    if (!done.status)
        r.failure = "recompress with " + with.name + " stopped early: " + std::string(done.status.message());
}

// With `spec.recompression` (a store with that secondary codec), the stores are followed by
// recompress_all before the memory is measured and the pages loaded.
template <class Store>
RunResult run_store(const PageSet& input, typename Store::compressor_type codec,
                    typename Store::secondary_codecs_type secondaries, const CodecSpec& spec, unsigned threads,
                    const Progress& progress, bool steady, const BackingSpec* backing) {
    constexpr std::size_t page_size = Store::page_size;
    using PageView = std::span<const std::byte, page_size>;
    const std::size_t pages = input.pages();
    std::optional<zpage::FileBackingStore> disk;  // outlives the store, which writes to it
    const std::unique_ptr<Store> owned =
        make_store<Store>(input, std::move(codec), std::move(secondaries), spec, backing, disk);
    Store& store = *owned;
    RunResult r = result_for(input, "zpage", spec.name, threads);

    FirstFailure failure;
    const auto store_page = [&](unsigned, std::size_t i) {
        return failure.check("store", i, store.store(i, PageView(input.page(i).data(), page_size)));
    };
    if (steady) timed_pass(pages, threads, progress, store_page);
    const zpage::PagePoolStats pool_before = store.allocator().pool().stats();
    const Pass stored = timed_pass(pages, threads, progress, store_page);
    const zpage::PagePoolStats pool_after = store.allocator().pool().stats();
    if constexpr (Store::recompresses) {
        recompress_all(store, *spec.recompression, r);
        // With --backing the reclaimer recompressed pages too, under the limit.
        r.recompressed_pages = store.recompress_stats().pages_recompressed;
        if (progress) progress(pages);
    }
    if constexpr (Store::writes_back) r.written_back_pages = store.writeback_stats().written_back_pages;
    const zpage::Stats stats = store.stats();
    r.pool_spare_bytes = pool_after.spare_bytes;
    r.pool_chunks_background = pool_after.chunks_populated_background - pool_before.chunks_populated_background;
    r.pool_chunks_direct = pool_after.chunks_populated_direct - pool_before.chunks_populated_direct;
    r.pool_background_ms =
        static_cast<double>(pool_after.background_populate_ns - pool_before.background_populate_ns) / 1e6;
    r.pool_direct_ms = static_cast<double>(pool_after.direct_populate_ns - pool_before.direct_populate_ns) / 1e6;
    std::vector<std::vector<std::byte>> buffers(threads, std::vector<std::byte>(page_size));
    const Pass loaded = timed_pass(pages, threads, progress, [&](unsigned t, std::size_t i) {
        return failure.check("load", i, store.load(i, std::span<std::byte, page_size>(buffers[t].data(), page_size)));
    });

    bool verified = !stored.failed && !loaded.failed;
    std::vector<std::byte>& out = buffers[0];
    for (std::size_t i = 0; i < pages && verified; ++i) {
        verified = failure.check("load", i, store.load(i, std::span<std::byte, page_size>(out.data(), page_size)));
        if (verified && std::memcmp(out.data(), input.page(i).data(), page_size) != 0) {
            failure.note("load", i, "read back other bytes");
            verified = false;
        }
    }
    if (std::string first = failure.what(); !first.empty()) r.failure = std::move(first);

    if constexpr (Store::writes_back) {
        const zpage::WritebackStats wb = store.writeback_stats();
        const zpage::BackingStats bd = store.bd_stat();
        r.backed = true;
        r.bd_writes = bd.bd_writes;
        r.bd_reads = bd.bd_reads;
        r.writeback_mib_s = wb.writeback_us == 0 ? 0
                                                 : static_cast<double>(wb.bytes_written_back) / (1024.0 * 1024.0) /
                                                       (static_cast<double>(wb.writeback_us) / 1e6);
    }
    r.mem_used_max_bytes = store.stats().mem_used_max;
    r.orig_bytes = stats.orig_data_size;
    r.compr_bytes = stats.compr_data_size;
    r.mem_used_bytes = stats.mem_used_total;
    r.same_pages = stats.same_pages;
    r.huge_pages = stats.huge_pages;
    set_pass_figures(r, pages * page_size, stored, loaded);
    r.verified = verified;
    return r;
}

// The family each zpage codec type runs, and the codec a spec's parameter makes.
template <class Codec>
constexpr CodecFamily family_of() {
    if constexpr (std::is_same_v<Codec, zpage::Lz4>) {
        return CodecFamily::lz4;
    } else if constexpr (std::is_same_v<Codec, zpage::Lz4hc>) {
        return CodecFamily::lz4hc;
    } else if constexpr (std::is_same_v<Codec, zpage::Zstd>) {
        return CodecFamily::zstd;
    } else {
        static_assert(std::is_same_v<Codec, zpage::Identity>);
        return CodecFamily::identity;
    }
}
template <class Codec>
Codec make_codec(int param) {
    if constexpr (std::is_same_v<Codec, zpage::Identity>) {
        return {};
    } else {
        return Codec{param};
    }
}

// Calls f(codec) with the codec of `family` at `param`, if it is one of Codecs (the families a
// run may take there: each is an instantiation of f, and of a store type); BadInput otherwise.
template <class... Codecs, class F>
RunResult with_codec(CodecFamily family, int param, const std::string& name, F&& f) {
    std::optional<RunResult> result;
    const auto try_codec = [&]<class Codec>(std::type_identity<Codec>) {
        if (family != family_of<Codec>()) return false;
        result = f(make_codec<Codec>(param));
        return true;
    };
    static_cast<void>((try_codec(std::type_identity<Codecs>{}) || ...));
    if (!result) throw BadInput("no zpage store runs " + name);
    return std::move(*result);
}

template <template <class, std::size_t> class Bundle, std::size_t PageSize>
RunResult run_zpage_bundle(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady, const BackingSpec* backing) {
    return with_codec<zpage::Lz4, zpage::Lz4hc, zpage::Zstd, zpage::Identity>(
        spec.family, spec.param, spec.name, [&]<class Codec>(Codec codec) {
            using Store = zpage::CompressedPageStore<Bundle<Codec, PageSize>>;
            return run_store<Store>(input, codec, {}, spec, threads, progress, steady, backing);
        });
}

template <class Codec, std::size_t PageSize>
using PlainBundle = zpage::TraitsFor<Codec, PageSize>;
template <class Codec, std::size_t PageSize>
using BackedBundle = zpage::WritebackTraits<zpage::FileBackingStore, Codec, PageSize>;
template <class Primary, class Secondary, std::size_t PageSize>
struct TieredBundle : zpage::TraitsFor<Primary, PageSize> {
    using secondary_codecs = std::tuple<Secondary>;
};
template <class Primary, class Secondary, std::size_t PageSize>
struct TieredBackedBundle : BackedBundle<Primary, PageSize> {
    using secondary_codecs = std::tuple<Secondary>;
};

// An A+B spec: the pairs codec_spec.hpp's parse_pair accepts, A = lz4, B = lz4hc or zstd.
template <template <class, class, std::size_t> class Bundle, std::size_t PageSize>
RunResult run_zpage_tiered(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady, const BackingSpec* backing) {
    const Recompression& b = *spec.recompression;
    return with_codec<zpage::Lz4>(spec.family, spec.param, spec.name, [&]<class Primary>(Primary primary) {
        return with_codec<zpage::Lz4hc, zpage::Zstd>(
            b.family, b.param, spec.name, [&]<class Secondary>(Secondary secondary) {
                using Store = zpage::CompressedPageStore<Bundle<Primary, Secondary, PageSize>>;
                return run_store<Store>(input, primary, std::tuple<Secondary>{secondary}, spec, threads, progress,
                                        steady, backing);
            });
    });
}

template <std::size_t PageSize>
RunResult run_zpage_sized(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                          bool steady, const BackingSpec* backing) {
    if (spec.recompression && backing != nullptr)
        return run_zpage_tiered<TieredBackedBundle, PageSize>(input, spec, threads, progress, steady, backing);
    if (spec.recompression)
        return run_zpage_tiered<TieredBundle, PageSize>(input, spec, threads, progress, steady, nullptr);
    if (backing != nullptr) return run_zpage_bundle<BackedBundle, PageSize>(input, spec, threads, progress, steady, backing);
    return run_zpage_bundle<PlainBundle, PageSize>(input, spec, threads, progress, steady, nullptr);
}

}  // namespace detail

// Page sizes zpage-bench offers (each is a compile-time store configuration).
inline constexpr std::size_t supported_page_sizes[] = {4096, 16384};

// With `backing`, the store runs under its memory limit with the reclaimer writing to its file.
inline RunResult run_zpage(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady, const BackingSpec* backing = nullptr) {
    if (input.page_size == 16384) return detail::run_zpage_sized<16384>(input, spec, threads, progress, steady, backing);
    return detail::run_zpage_sized<4096>(input, spec, threads, progress, steady, backing);
}

}  // namespace zpage_bench
