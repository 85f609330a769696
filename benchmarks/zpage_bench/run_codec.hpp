// zpage-bench: each codec alone on the same pages (--baseline), the limit a store can approach.
//
// Every page is compressed into its own slot of a preallocated arena (kept raw, copied, when it
// compresses above zram's huge threshold, as a store would), then decompressed (or copied) back
// and verified. No allocator, no page table, no same-page detection: mem_used is the sum of the
// stored sizes. Memory for the arena is touched before timing, so that neither pass pays for
// the OS mapping it.
//
// For an A+B[:N] pair, B alone on the units its recompression makes (measure_codec_units): the
// same arena, one slot per unit of N consecutive pages, compression only.
#pragma once

#include <zpage/zpage.hpp>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "codec_spec.hpp"
#include "timed_pass.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

// Inputs of up to `input_bytes` each compressed into a slot of their own, with one compression
// context per thread. The arena is zero-filled on construction: touched before any timing.
template <class Codec>
class CompressArena {
public:
    CompressArena(const Codec& codec, std::size_t inputs, std::size_t input_bytes, unsigned threads)
        : codec_(codec), slot_bytes_(input_bytes + input_bytes / 8),  // room for the shipped codecs' worst case
          bytes_(inputs * slot_bytes_) {
        for (unsigned t = 0; t < threads; ++t) contexts_.push_back(codec.make_compress_context());
    }

    [[nodiscard]] std::span<std::byte> slot(std::size_t i) {
        return {bytes_.data() + i * slot_bytes_, slot_bytes_};
    }
    // `in` compressed into slot i with thread t's context: the bytes written, 0 when they did not fit.
    std::size_t compress(unsigned t, std::size_t i, std::span<const std::byte> in) {
        return codec_.compress(contexts_[t], in, slot(i));
    }

private:
    Codec codec_;
    std::size_t slot_bytes_;
    std::vector<std::byte> bytes_;
    std::vector<typename Codec::compress_context> contexts_;
};

// Calls f with the zpage codec `family` and `param` make; BadInput for a kernel-only one.
template <class F>
auto visit_codec(CodecFamily family, int param, const std::string& name, F&& f) {
    switch (family) {
    case CodecFamily::lz4: return f(zpage::Lz4{param});
    case CodecFamily::lz4hc: return f(zpage::Lz4hc{param});
    case CodecFamily::zstd: return f(zpage::Zstd{param});
    case CodecFamily::identity: return f(zpage::Identity{});
    case CodecFamily::kernel_only: break;
    }
    throw BadInput(name + " runs on the kernel side only");
}

template <class Codec, std::size_t PageSize>
RunResult run_codec_alone_sized(const PageSet& input, const Codec& codec, const std::string& algo, unsigned threads,
                                const Progress& progress) {
    constexpr std::size_t huge_threshold = PageSize * 227 / 256;
    const std::size_t pages = input.pages();
    CompressArena<Codec> arena(codec, pages, PageSize, threads);
    std::vector<std::uint32_t> stored(pages);  // bytes kept per page; PageSize when raw
    std::vector<typename Codec::decompress_context> decompressing;
    for (unsigned t = 0; t < threads; ++t) decompressing.push_back(codec.make_decompress_context());
    std::vector<std::vector<std::byte>> buffers(threads, std::vector<std::byte>(PageSize));
    auto decode = [&](unsigned t, std::size_t i) {
        const std::span<std::byte, PageSize> page(buffers[t].data(), PageSize);
        if (stored[i] == PageSize) {
            std::memcpy(page.data(), arena.slot(i).data(), PageSize);
            return true;
        }
        const zpage::Result<std::size_t> produced =
            codec.decompress(decompressing[t], arena.slot(i).first(stored[i]), page);
        return produced && *produced == PageSize;
    };

    const Pass compressed = timed_pass(pages, threads, progress, [&](unsigned t, std::size_t i) {
        const std::span<const std::byte, PageSize> page(input.page(i).data(), PageSize);
        std::size_t n = arena.compress(t, i, page);
        if (n == 0 || n > huge_threshold) {
            std::memcpy(arena.slot(i).data(), page.data(), PageSize);
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

}  // namespace detail

inline RunResult run_codec_alone(const PageSet& input, const CodecSpec& spec, unsigned threads,
                                 const Progress& progress) {
    return detail::visit_codec(spec.family, spec.param, spec.name, [&]<class Codec>(const Codec& codec) {
        if (input.page_size == 16384)
            return detail::run_codec_alone_sized<Codec, 16384>(input, codec, spec.name, threads, progress);
        return detail::run_codec_alone_sized<Codec, 4096>(input, codec, spec.name, threads, progress);
    });
}

// B of an A+B[:N] pair alone on the units its recompression forms, for r (the pair's zpage row):
// the input cut into units of N consecutive pages (the last one what is left), every page
// included, each unit compressed into its own slot, on one thread as recompress() runs. Sets
// codec_unit_mib_s (the input's size over the pass), or r.failure when a unit did not compress.
inline void measure_codec_units(const PageSet& input, const Recompression& b, const Progress& progress,
                                RunResult& r) {
    const std::span<const std::byte> all(input.bytes);
    const std::size_t unit_bytes = b.group_pages * input.page_size;
    const std::size_t units = (all.size() + unit_bytes - 1) / unit_bytes;
    const detail::Pass compressed = detail::visit_codec(b.family, b.param, b.name, [&](const auto& codec) {
        detail::CompressArena arena(codec, units, unit_bytes, 1);
        return detail::timed_pass(units, 1, {}, [&](unsigned t, std::size_t u) {
            const std::size_t offset = u * unit_bytes;
            return arena.compress(t, u, all.subspan(offset, std::min(unit_bytes, all.size() - offset))) != 0;
        });
    });
    if (progress) progress(input.pages());  // planned in pages, as the other passes are
    r.codec_unit_algo = b.name;
    r.codec_unit_bytes = unit_bytes;
    if (compressed.failed) {
        if (r.failure.empty())
            r.failure = b.name + " alone did not compress a unit of " + std::to_string(b.group_pages) + " pages";
        return;
    }
    r.codec_unit_mib_s = detail::mib_per_s(all.size(), compressed.wall);
}

}  // namespace zpage_bench
