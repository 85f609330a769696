// zpage: LZ4 codecs. Lz4 (the fast codec, with an acceleration factor) and Lz4hc (high
// compression, with a level); both decode with LZ4_decompress_safe, which is bounds-checked
// against malformed input.
#pragma once

#include <lz4.h>
#include <lz4hc.h>

#include <climits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "concept.hpp"

namespace zpage {

namespace detail {
inline bool fits_int(std::size_t n) noexcept { return n <= static_cast<std::size_t>(INT_MAX); }

inline Result<std::size_t> lz4_decompress(std::span<const std::byte> in, std::span<std::byte> out) noexcept {
    if (!fits_int(in.size()) || !fits_int(out.size())) return errc::invalid_argument;
    const int produced = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()),
                                             reinterpret_cast<char*>(out.data()), static_cast<int>(in.size()),
                                             static_cast<int>(out.size()));
    if (produced < 0) return errc::corrupt_data;
    return static_cast<std::size_t>(produced);
}
}  // namespace detail

struct Lz4 {
    // LZ4's acceleration, 1 .. max_acceleration: 1 is LZ4_compress_default; each step up trades
    // ratio for speed.
    int acceleration = 1;
    static constexpr int max_acceleration = 65537;  // LZ4_ACCELERATION_MAX: lz4 clamps anything above

    // Throws std::invalid_argument for an acceleration outside [1, max_acceleration] (lz4 itself
    // would silently use another).
    void validate() const {
        if (acceleration < 1 || acceleration > max_acceleration)
            throw std::invalid_argument("zpage::Lz4: acceleration " + std::to_string(acceleration) +
                                        " is outside [1, " + std::to_string(max_acceleration) + "]");
    }

    struct compress_context {
        // LZ4_compress_fast_extState re-initialises this 16 KiB state itself; keeping it here only
        // spares the stack and the allocation LZ4_compress_default would make per call.
        std::unique_ptr<LZ4_stream_t> state;
    };
    using decompress_context = NoContext;

    [[nodiscard]] std::string name() const {
        return acceleration <= 1 ? std::string("lz4") : "lz4-" + std::to_string(acceleration);
    }
    // Throws std::invalid_argument for a bad acceleration (validate()), std::bad_alloc.
    [[nodiscard]] compress_context make_compress_context() const {
        validate();
        return {std::make_unique<LZ4_stream_t>()};
    }
    [[nodiscard]] decompress_context make_decompress_context() const { return {}; }

    std::size_t compress(compress_context& ctx, std::span<const std::byte> in,
                         std::span<std::byte> out) const noexcept {
        if (in.empty() || !detail::fits_int(in.size())) return 0;
        const int capacity = static_cast<int>(std::min<std::size_t>(out.size(), INT_MAX));
        const int written = LZ4_compress_fast_extState(ctx.state.get(), reinterpret_cast<const char*>(in.data()),
                                                       reinterpret_cast<char*>(out.data()),
                                                       static_cast<int>(in.size()), capacity, acceleration);
        return written > 0 ? static_cast<std::size_t>(written) : 0;
    }

    Result<std::size_t> decompress(decompress_context& /*ctx*/, std::span<const std::byte> in,
                                   std::span<std::byte> out) const noexcept {
        return detail::lz4_decompress(in, out);
    }
};

struct Lz4hc {
    // LZ4HC level, 1 .. LZ4HC_CLEVEL_MAX (12); 9 is LZ4's default.
    int level = LZ4HC_CLEVEL_DEFAULT;

    // Throws std::invalid_argument for a level outside [1, 12] (lz4 itself would silently use
    // its default or its maximum).
    void validate() const {
        if (level < 1 || level > LZ4HC_CLEVEL_MAX)
            throw std::invalid_argument("zpage::Lz4hc: level " + std::to_string(level) + " is outside [1, " +
                                        std::to_string(LZ4HC_CLEVEL_MAX) + "]");
    }

    struct compress_context {
        std::unique_ptr<LZ4_streamHC_t> stream;
    };
    using decompress_context = NoContext;

    [[nodiscard]] std::string name() const { return "lz4hc-" + std::to_string(level); }
    // Throws std::invalid_argument for a bad level (validate()), std::bad_alloc.
    [[nodiscard]] compress_context make_compress_context() const {
        validate();
        auto stream = std::make_unique<LZ4_streamHC_t>();
        LZ4_initStreamHC(stream.get(), sizeof(LZ4_streamHC_t));
        return {std::move(stream)};
    }
    [[nodiscard]] decompress_context make_decompress_context() const { return {}; }

    std::size_t compress(compress_context& ctx, std::span<const std::byte> in,
                         std::span<std::byte> out) const noexcept {
        if (in.empty() || !detail::fits_int(in.size())) return 0;
        // A fast reset starts an independent block without clearing the 256 KiB of match tables,
        // which LZ4_compress_HC_extStateHC would do on every page.
        LZ4_resetStreamHC_fast(ctx.stream.get(), level);
        const int capacity = static_cast<int>(std::min<std::size_t>(out.size(), INT_MAX));
        const int written = LZ4_compress_HC_continue(ctx.stream.get(), reinterpret_cast<const char*>(in.data()),
                                                     reinterpret_cast<char*>(out.data()),
                                                     static_cast<int>(in.size()), capacity);
        return written > 0 ? static_cast<std::size_t>(written) : 0;
    }

    Result<std::size_t> decompress(decompress_context& /*ctx*/, std::span<const std::byte> in,
                                   std::span<std::byte> out) const noexcept {
        return detail::lz4_decompress(in, out);
    }
};

static_assert(Compressor<Lz4>);
static_assert(Compressor<Lz4hc>);

}  // namespace zpage
