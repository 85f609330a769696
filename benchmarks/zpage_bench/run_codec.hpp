// zpage-bench: each codec alone on the same pages (--baseline), the limit a store can approach.
//
// Every page is compressed into its own slot of a preallocated arena (kept raw, copied, when it
// compresses above zram's huge threshold, as a store would), then decompressed (or copied) back
// and verified. No allocator, no page table, no same-page detection: mem_used is the sum of the
// stored sizes. Memory for the arena is touched before timing, so that neither pass pays for
// the OS mapping it.
#pragma once

#include <zpage/zpage.hpp>

#include <atomic>
#include <cstring>
#include <vector>

#include "codec_spec.hpp"
#include "run_zpage.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

template <class Codec, std::size_t PageSize>
RunResult run_codec_alone_sized(const PageSet& input, const Codec& codec, const std::string& algo, unsigned threads,
                                const Progress& progress) {
    constexpr std::size_t slot_bytes = PageSize + PageSize / 8;  // room for the shipped codecs' worst case
    constexpr std::size_t huge_threshold = PageSize * 227 / 256;
    const std::size_t pages = input.pages();
    std::vector<std::byte> arena(pages * slot_bytes);  // zero-filled: touched before timing
    std::vector<std::uint32_t> stored(pages);           // bytes kept per page; PageSize when raw
    std::vector<std::vector<double>> store_us(threads), load_us(threads);
    std::atomic<bool> failed{false};

    auto timed_pass = [&](std::vector<std::vector<double>>& latencies, auto&& op) {
        return run_split(pages, threads, [&](unsigned t, std::size_t first, std::size_t last) {
            latencies[t].reserve(last - first);
            op(t, first, last, latencies[t]);
            if (progress) progress(last - first);
        });
    };

    const Clock::duration store_wall = timed_pass(store_us, [&](unsigned, std::size_t first, std::size_t last,
                                                                std::vector<double>& us) {
        auto ctx = codec.make_compress_context();
        for (std::size_t i = first; i < last; ++i) {
            const auto begin = Clock::now();
            const std::span<const std::byte, PageSize> page(input.page(i).data(), PageSize);
            const std::span<std::byte> slot(arena.data() + i * slot_bytes, slot_bytes);
            std::size_t n = codec.compress(ctx, page, slot);
            if (n == 0 || n > huge_threshold) {
                std::memcpy(slot.data(), page.data(), PageSize);
                n = PageSize;
            }
            stored[i] = static_cast<std::uint32_t>(n);
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
        }
    });
    const Clock::duration load_wall = timed_pass(load_us, [&](unsigned, std::size_t first, std::size_t last,
                                                              std::vector<double>& us) {
        auto ctx = codec.make_decompress_context();
        std::vector<std::byte> out(PageSize);
        for (std::size_t i = first; i < last; ++i) {
            const auto begin = Clock::now();
            const std::span<const std::byte> slot(arena.data() + i * slot_bytes, stored[i]);
            const std::span<std::byte, PageSize> page(out.data(), PageSize);
            if (stored[i] == PageSize) {
                std::memcpy(page.data(), slot.data(), PageSize);
            } else {
                const zpage::Result<std::size_t> produced = codec.decompress(ctx, slot, page);
                if (!produced || *produced != PageSize) failed.store(true);
            }
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
        }
    });

    RunResult r;
    r.input = input.name;
    r.engine = "codec-alone";
    r.algo = algo;
    r.threads = threads;
    r.pages = pages;
    r.orig_bytes = std::uint64_t{pages} * PageSize;
    bool verified = !failed.load();
    auto dctx = codec.make_decompress_context();
    std::vector<std::byte> out(PageSize);
    for (std::size_t i = 0; i < pages; ++i) {
        r.compr_bytes += stored[i];
        r.huge_pages += stored[i] == PageSize;
        const std::span<const std::byte> slot(arena.data() + i * slot_bytes, stored[i]);
        if (stored[i] == PageSize) {
            verified = verified && std::memcmp(slot.data(), input.page(i).data(), PageSize) == 0;
        } else {
            const zpage::Result<std::size_t> produced =
                codec.decompress(dctx, slot, std::span<std::byte, PageSize>(out.data(), PageSize));
            verified = verified && produced && *produced == PageSize &&
                       std::memcmp(out.data(), input.page(i).data(), PageSize) == 0;
        }
    }
    r.mem_used_bytes = r.compr_bytes;
    r.store_mib_s = mib_per_s(pages * PageSize, store_wall);
    r.load_mib_s = mib_per_s(pages * PageSize, load_wall);
    std::vector<double> all_store, all_load;
    for (auto& v : store_us) all_store.insert(all_store.end(), v.begin(), v.end());
    for (auto& v : load_us) all_load.insert(all_load.end(), v.begin(), v.end());
    r.store_p50_us = percentile(all_store, 0.50);
    r.store_p99_us = percentile(all_store, 0.99);
    r.load_p50_us = percentile(all_load, 0.50);
    r.load_p99_us = percentile(all_load, 0.99);
    r.verified = verified;
    return r;
}

template <std::size_t PageSize>
RunResult run_codec_alone_sized(const PageSet& input, const CodecSpec& spec, unsigned threads,
                                const Progress& progress) {
    switch (spec.family) {
    case CodecFamily::lz4:
        return run_codec_alone_sized<zpage::Lz4, PageSize>(input, zpage::Lz4{spec.param}, spec.name, threads, progress);
    case CodecFamily::lz4hc:
        return run_codec_alone_sized<zpage::Lz4hc, PageSize>(input, zpage::Lz4hc{spec.param}, spec.name, threads,
                                                             progress);
    case CodecFamily::zstd:
        return run_codec_alone_sized<zpage::Zstd, PageSize>(input, zpage::Zstd{spec.param}, spec.name, threads,
                                                            progress);
    case CodecFamily::identity:
        return run_codec_alone_sized<zpage::Identity, PageSize>(input, zpage::Identity{}, spec.name, threads,
                                                                progress);
    case CodecFamily::kernel_only: break;
    }
    throw BadInput(spec.name + " runs on the kernel side only");
}

}  // namespace detail

inline RunResult run_codec_alone(const PageSet& input, const CodecSpec& spec, unsigned threads,
                                 const Progress& progress) {
    if (input.page_size == 16384) return detail::run_codec_alone_sized<16384>(input, spec, threads, progress);
    return detail::run_codec_alone_sized<4096>(input, spec, threads, progress);
}

}  // namespace zpage_bench
