// zpage-bench: each codec alone on the same pages (--baseline), the limit a store can approach.
//
// Every page is compressed into its own slot of a preallocated arena (kept raw, copied, when it
// compresses above zram's huge threshold, as a store would), then decompressed (or copied) back
// and verified. No allocator, no page table, no same-page detection: mem_used is the sum of the
// stored sizes. Memory for the arena is touched before timing, so that neither pass pays for
// the OS mapping it.
#pragma once

#include <zpage/zpage.hpp>

#include <cstring>
#include <vector>

#include "codec_spec.hpp"
#include "timed_pass.hpp"
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
    std::vector<typename Codec::compress_context> compressing;
    std::vector<typename Codec::decompress_context> decompressing;
    for (unsigned t = 0; t < threads; ++t) {
        compressing.push_back(codec.make_compress_context());
        decompressing.push_back(codec.make_decompress_context());
    }
    std::vector<std::vector<std::byte>> buffers(threads, std::vector<std::byte>(PageSize));
    auto slot = [&](std::size_t i) { return std::span<std::byte>(arena.data() + i * slot_bytes, slot_bytes); };
    auto decode = [&](unsigned t, std::size_t i) {
        const std::span<std::byte, PageSize> page(buffers[t].data(), PageSize);
        if (stored[i] == PageSize) {
            std::memcpy(page.data(), slot(i).data(), PageSize);
            return true;
        }
        const zpage::Result<std::size_t> produced = codec.decompress(decompressing[t], slot(i).first(stored[i]), page);
        return produced && *produced == PageSize;
    };

    const Pass compressed = timed_pass(pages, threads, progress, [&](unsigned t, std::size_t i) {
        const std::span<const std::byte, PageSize> page(input.page(i).data(), PageSize);
        std::size_t n = codec.compress(compressing[t], page, slot(i));
        if (n == 0 || n > huge_threshold) {
            std::memcpy(slot(i).data(), page.data(), PageSize);
            n = PageSize;
        }
        stored[i] = static_cast<std::uint32_t>(n);
        return true;
    });
    const Pass decompressed = timed_pass(pages, threads, progress, decode);

    RunResult r = result_for(input, "codec-alone", algo, threads);
    r.orig_bytes = std::uint64_t{pages} * PageSize;
    bool verified = !decompressed.failed;
    for (std::size_t i = 0; i < pages; ++i) {
        r.compr_bytes += stored[i];
        r.huge_pages += stored[i] == PageSize;
        verified = verified && decode(0, i) && std::memcmp(buffers[0].data(), input.page(i).data(), PageSize) == 0;
    }
    r.mem_used_bytes = r.compr_bytes;
    set_pass_figures(r, pages * PageSize, compressed, decompressed);
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
