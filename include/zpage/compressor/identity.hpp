// zpage: the identity codec. Every page is kept raw (the store's huge path); useful as a baseline
// and for data known to be incompressible.
#pragma once

#include <cstring>
#include <string>

#include "concept.hpp"

namespace zpage {

struct Identity {
    using compress_context = NoContext;
    using decompress_context = NoContext;

    [[nodiscard]] std::string name() const { return "identity"; }
    [[nodiscard]] compress_context make_compress_context() const { return {}; }
    [[nodiscard]] decompress_context make_decompress_context() const { return {}; }

    std::size_t compress(compress_context& /*ctx*/, std::span<const std::byte> in,
                         std::span<std::byte> out) const noexcept {
        if (in.empty() || out.size() < in.size()) return 0;
        std::memcpy(out.data(), in.data(), in.size());
        return in.size();
    }

    Result<std::size_t> decompress(decompress_context& /*ctx*/, std::span<const std::byte> in,
                                   std::span<std::byte> out) const noexcept {
        if (in.size() > out.size()) return errc::corrupt_data;
        if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
        return in.size();
    }
};

static_assert(Compressor<Identity>);

}  // namespace zpage
