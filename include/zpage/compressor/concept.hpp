// zpage: the Compressor policy.
//
// Like the kernel's zcomp, a codec separates what is shared (level, acceleration, later a
// dictionary) from per-stream scratch state: the codec object holds parameters and is cheap to
// copy; contexts hold the scratch memory, are made once per stream by make_*_context() (which may
// allocate and may throw) and are then reused for every call without allocating.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include "../errc.hpp"

namespace zpage {

template <class C>
concept Compressor =
    std::copy_constructible<C> && std::movable<typename C::compress_context> &&
    std::movable<typename C::decompress_context> &&
    requires(const C& codec, typename C::compress_context& cctx, typename C::decompress_context& dctx,
             std::span<const std::byte> in, std::span<std::byte> out) {
        // A short name with the parameter, as zpage-bench and stats print it: "lz4", "zstd-3".
        { codec.name() } -> std::convertible_to<std::string>;
        // Scratch state for one stream; called once per stream, never on the hot path.
        { codec.make_compress_context() } -> std::same_as<typename C::compress_context>;
        { codec.make_decompress_context() } -> std::same_as<typename C::decompress_context>;
        // Compresses `in` into `out`; returns the bytes written, or 0 when the result would not
        // fit in out.size() (the caller then keeps the page raw). Never writes outside `out`.
        { codec.compress(cctx, in, out) } noexcept -> std::same_as<std::size_t>;
        // Decodes `in` into `out`; returns the bytes produced, or errc::corrupt_data. Never reads
        // outside `in` nor writes outside `out`, whatever `in` holds.
        { codec.decompress(dctx, in, out) } noexcept -> std::same_as<Result<std::size_t>>;
    };

// The empty scratch state of codecs that need none.
struct NoContext {};

// A codec may also offer `void validate() const`, throwing std::invalid_argument for parameters
// it cannot use (a level out of range); stores call it at construction, so that a bad parameter
// is an error there rather than a failure of every later call. Codecs without it are checked by
// making their first contexts at construction, which may throw the same way.
template <Compressor C>
void validate_codec(const C& codec) {
    if constexpr (requires { codec.validate(); }) codec.validate();
}

}  // namespace zpage
