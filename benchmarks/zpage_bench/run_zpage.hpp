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
#include <vector>

#include "codec_spec.hpp"
#include "timed_pass.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

template <class Store>
RunResult run_store(const PageSet& input, typename Store::compressor_type codec, const std::string& algo,
                    unsigned threads, const Progress& progress, bool steady) {
    constexpr std::size_t page_size = Store::page_size;
    using PageView = std::span<const std::byte, page_size>;
    const std::size_t pages = input.pages();
    Store store(pages, std::move(codec));
    RunResult r = result_for(input, "zpage", algo, threads);

    const auto store_page = [&](unsigned, std::size_t i) {
        return static_cast<bool>(store.store(i, PageView(input.page(i).data(), page_size)));
    };
    if (steady) timed_pass(pages, threads, progress, store_page);
    const Pass stored = timed_pass(pages, threads, progress, store_page);
    const zpage::Stats stats = store.stats();
    r.pool_spare_bytes = store.allocator().pool().stats().spare_bytes;
    std::vector<std::vector<std::byte>> buffers(threads, std::vector<std::byte>(page_size));
    const Pass loaded = timed_pass(pages, threads, progress, [&](unsigned t, std::size_t i) {
        return static_cast<bool>(store.load(i, std::span<std::byte, page_size>(buffers[t].data(), page_size)));
    });

    bool verified = !stored.failed && !loaded.failed;
    std::vector<std::byte>& out = buffers[0];
    for (std::size_t i = 0; i < pages && verified; ++i) {
        verified = store.load(i, std::span<std::byte, page_size>(out.data(), page_size)) &&
                   std::memcmp(out.data(), input.page(i).data(), page_size) == 0;
    }

    r.orig_bytes = stats.orig_data_size;
    r.compr_bytes = stats.compr_data_size;
    r.mem_used_bytes = stats.mem_used_total;
    r.same_pages = stats.same_pages;
    r.huge_pages = stats.huge_pages;
    set_pass_figures(r, pages * page_size, stored, loaded);
    r.verified = verified;
    return r;
}

template <std::size_t PageSize>
RunResult run_zpage_sized(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                          bool steady) {
    using zpage::CompressedPageStore;
    using zpage::TraitsFor;
    switch (spec.family) {
    case CodecFamily::lz4:
        return run_store<CompressedPageStore<TraitsFor<zpage::Lz4, PageSize>>>(input, zpage::Lz4{spec.param}, spec.name,
                                                                               threads, progress, steady);
    case CodecFamily::lz4hc:
        return run_store<CompressedPageStore<TraitsFor<zpage::Lz4hc, PageSize>>>(input, zpage::Lz4hc{spec.param},
                                                                                 spec.name, threads, progress, steady);
    case CodecFamily::zstd:
        return run_store<CompressedPageStore<TraitsFor<zpage::Zstd, PageSize>>>(input, zpage::Zstd{spec.param},
                                                                                spec.name, threads, progress, steady);
    case CodecFamily::identity:
        return run_store<CompressedPageStore<TraitsFor<zpage::Identity, PageSize>>>(input, zpage::Identity{}, spec.name,
                                                                                    threads, progress, steady);
    case CodecFamily::kernel_only: break;
    }
    throw BadInput(spec.name + " runs on the kernel side only");
}

}  // namespace detail

// Page sizes zpage-bench offers (each is a compile-time store configuration).
inline constexpr std::size_t supported_page_sizes[] = {4096, 16384};

inline RunResult run_zpage(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady) {
    if (input.page_size == 16384) return detail::run_zpage_sized<16384>(input, spec, threads, progress, steady);
    return detail::run_zpage_sized<4096>(input, spec, threads, progress, steady);
}

}  // namespace zpage_bench
