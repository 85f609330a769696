// zpage-bench: one input through one codec in a zpage::CompressedPageStore.
//
// Every page is stored into a fresh store (the pages split among the threads, storing at once),
// then every page is loaded (the same split) and, in a separate untimed pass, compared with what
// was stored. Throughput is the aggregate over wall-clock time; each store and load is also timed
// on its own for the latency percentiles. With `steady`, an untimed pass stores every page first,
// so that the timed stores replace pages already stored: a store in use, its memory populated.
#pragma once

#include <zpage/zpage.hpp>

#include <cstring>
#include <memory>
#include <optional>
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

template <class Store>
RunResult run_store(const PageSet& input, typename Store::compressor_type codec, const std::string& algo,
                    unsigned threads, const Progress& progress, bool steady, const BackingSpec* backing) {
    constexpr std::size_t page_size = Store::page_size;
    using PageView = std::span<const std::byte, page_size>;
    const std::size_t pages = input.pages();
    std::optional<zpage::FileBackingStore> disk;
    const std::unique_ptr<Store> owned = [&] {
        if constexpr (Store::writes_back) {
            disk.emplace(backing_config(*backing, input));
            return std::make_unique<Store>(
                zpage::StoreConfig{.capacity_pages = pages, .mem_limit_bytes = backing->mem_limit_bytes,
                                   .reclaim = bench_reclaim()},
                std::move(codec), typename Store::writeback_type{.backing = &*disk});
        } else {
            return std::make_unique<Store>(pages, std::move(codec));
        }
    }();
    Store& store = *owned;
    RunResult r = result_for(input, "zpage", algo, threads);

    FirstFailure failure;
    const auto store_page = [&](unsigned, std::size_t i) {
        return failure.check("store", i, store.store(i, PageView(input.page(i).data(), page_size)));
    };
    if (steady) timed_pass(pages, threads, progress, store_page);
    const zpage::PagePoolStats pool_before = store.allocator().pool().stats();
    const Pass stored = timed_pass(pages, threads, progress, store_page);
    const zpage::Stats stats = store.stats();
    const zpage::PagePoolStats pool_after = store.allocator().pool().stats();
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
    r.failure = failure.what();

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

template <template <class, std::size_t> class Bundle, std::size_t PageSize>
RunResult run_zpage_bundle(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady, const BackingSpec* backing) {
    using zpage::CompressedPageStore;
    switch (spec.family) {
    case CodecFamily::lz4:
        return run_store<CompressedPageStore<Bundle<zpage::Lz4, PageSize>>>(input, zpage::Lz4{spec.param}, spec.name,
                                                                            threads, progress, steady, backing);
    case CodecFamily::lz4hc:
        return run_store<CompressedPageStore<Bundle<zpage::Lz4hc, PageSize>>>(input, zpage::Lz4hc{spec.param}, spec.name,
                                                                              threads, progress, steady, backing);
    case CodecFamily::zstd:
        return run_store<CompressedPageStore<Bundle<zpage::Zstd, PageSize>>>(input, zpage::Zstd{spec.param}, spec.name,
                                                                             threads, progress, steady, backing);
    case CodecFamily::identity:
        return run_store<CompressedPageStore<Bundle<zpage::Identity, PageSize>>>(input, zpage::Identity{}, spec.name,
                                                                                 threads, progress, steady, backing);
    case CodecFamily::kernel_only: break;
    }
    throw BadInput(spec.name + " runs on the kernel side only");
}

template <class Codec, std::size_t PageSize>
using PlainBundle = zpage::TraitsFor<Codec, PageSize>;
template <class Codec, std::size_t PageSize>
using BackedBundle = zpage::WritebackTraits<zpage::FileBackingStore, Codec, PageSize>;

template <std::size_t PageSize>
RunResult run_zpage_sized(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                          bool steady, const BackingSpec* backing) {
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
