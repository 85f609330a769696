// zpage: the Zstandard codec, any level zstd accepts (negative levels are its fast modes).
//
// Pages are written as magicless zstd frames: the 4-byte magic number says nothing the store
// does not already know, and on 1.2 KiB average zstd-3 output it is 0.3% of the memory.
#pragma once

#include <zstd.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "concept.hpp"

namespace zpage {

namespace detail {
struct ZstdCCtxFree {
    void operator()(ZSTD_CCtx* ctx) const noexcept { ZSTD_freeCCtx(ctx); }
};
struct ZstdDCtxFree {
    void operator()(ZSTD_DCtx* ctx) const noexcept { ZSTD_freeDCtx(ctx); }
};
// ZSTD_c_format / ZSTD_d_format and ZSTD_f_zstd1_magicless live in zstd's static-linking section;
// their values are part of the stable ABI (the enumerators below are in the stable enums).
inline constexpr auto zstd_c_format = ZSTD_c_experimentalParam2;
inline constexpr auto zstd_d_format = ZSTD_d_experimentalParam1;
inline constexpr int zstd_format_magicless = 1;

inline void zstd_check(std::size_t code, const char* what) {
    if (ZSTD_isError(code)) throw std::runtime_error(std::string("zpage: zstd ") + what + ": " + ZSTD_getErrorName(code));
}
}  // namespace detail

struct Zstd {
    // ZSTD_minCLevel() .. ZSTD_maxCLevel(); 3 is zstd's default.
    int level = 3;

    // Throws std::invalid_argument for a level zstd does not offer.
    void validate() const {
        if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
            throw std::invalid_argument("zpage::Zstd: level " + std::to_string(level) + " is outside [" +
                                        std::to_string(ZSTD_minCLevel()) + ", " + std::to_string(ZSTD_maxCLevel()) +
                                        "]");
    }

    struct compress_context {
        std::unique_ptr<ZSTD_CCtx, detail::ZstdCCtxFree> cctx;
    };
    struct decompress_context {
        std::unique_ptr<ZSTD_DCtx, detail::ZstdDCtxFree> dctx;
    };

    [[nodiscard]] std::string name() const { return "zstd-" + std::to_string(level); }

    // Throws std::invalid_argument for a bad level (validate()), std::bad_alloc when zstd cannot
    // allocate a context, std::runtime_error when zstd refuses a parameter.
    [[nodiscard]] compress_context make_compress_context() const {
        validate();
        compress_context ctx{std::unique_ptr<ZSTD_CCtx, detail::ZstdCCtxFree>(ZSTD_createCCtx())};
        if (!ctx.cctx) throw std::bad_alloc();
        detail::zstd_check(ZSTD_CCtx_setParameter(ctx.cctx.get(), ZSTD_c_compressionLevel, level), "level");
        detail::zstd_check(ZSTD_CCtx_setParameter(ctx.cctx.get(), detail::zstd_c_format,
                                                  detail::zstd_format_magicless),
                           "format");
        return ctx;
    }
    [[nodiscard]] decompress_context make_decompress_context() const {
        decompress_context ctx{std::unique_ptr<ZSTD_DCtx, detail::ZstdDCtxFree>(ZSTD_createDCtx())};
        if (!ctx.dctx) throw std::bad_alloc();
        detail::zstd_check(ZSTD_DCtx_setParameter(ctx.dctx.get(), detail::zstd_d_format,
                                                  detail::zstd_format_magicless),
                           "format");
        return ctx;
    }

    std::size_t compress(compress_context& ctx, std::span<const std::byte> in,
                         std::span<std::byte> out) const noexcept {
        if (in.empty()) return 0;
        const std::size_t written = ZSTD_compress2(ctx.cctx.get(), out.data(), out.size(), in.data(), in.size());
        return ZSTD_isError(written) ? 0 : written;
    }

    Result<std::size_t> decompress(decompress_context& ctx, std::span<const std::byte> in,
                                   std::span<std::byte> out) const noexcept {
        const std::size_t produced = ZSTD_decompressDCtx(ctx.dctx.get(), out.data(), out.size(), in.data(), in.size());
        if (ZSTD_isError(produced)) return errc::corrupt_data;
        return produced;
    }
};

static_assert(Compressor<Zstd>);

}  // namespace zpage
