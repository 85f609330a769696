// zpage-bench: codec names as users write them (--algo), and what each means on either engine.
//
//   lz4, lz4-N      zpage::Lz4 with acceleration N (1 when omitted)
//   lz4hc-N         zpage::Lz4hc at level N (9 when omitted)
//   zstd-N          zpage::Zstd at level N, negative levels written zstd--N (3 when omitted)
//   identity        pages kept raw
//   lzo, lzo-rle, 842, deflate    the kernel's own codecs: run on the kernel side only
#pragma once

#include <zstd.h>

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "types.hpp"

namespace zpage_bench {

enum class CodecFamily { lz4, lz4hc, zstd, identity, kernel_only };

struct CodecSpec {
    std::string name;  // canonical: "lz4", "lz4-8", "lz4hc-9", "zstd-3", "zstd--5", "identity", "lzo-rle"
    CodecFamily family = CodecFamily::lz4;
    int param = 0;  // acceleration (lz4) or level (lz4hc, zstd)

    [[nodiscard]] bool runs_on_zpage() const { return family != CodecFamily::kernel_only; }

    // The kernel's name for this codec, and the level to pass through algorithm_params; no name
    // when the kernel has no such codec (identity).
    [[nodiscard]] std::optional<std::string> kernel_name() const {
        switch (family) {
        case CodecFamily::lz4: return std::string("lz4");
        case CodecFamily::lz4hc: return std::string("lz4hc");
        case CodecFamily::zstd: return std::string("zstd");
        case CodecFamily::identity: return std::nullopt;
        case CodecFamily::kernel_only: return name;
        }
        return std::nullopt;
    }
    [[nodiscard]] std::optional<int> kernel_level() const {
        switch (family) {
        case CodecFamily::lz4:
            return param == 1 ? std::nullopt : std::optional<int>(param);  // zram: lz4 level = acceleration
        case CodecFamily::lz4hc:
        case CodecFamily::zstd: return param;
        default: return std::nullopt;
        }
    }
};

inline constexpr std::string_view default_algos = "lz4,lz4hc-9,zstd-1,zstd-3";
inline constexpr std::string_view kernel_default_algo = "lzo-rle";

namespace detail {

inline std::optional<int> parse_int(std::string_view text) {
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

[[noreturn]] inline void unknown_codec(std::string_view name, std::string_view why = {}) {
    std::string message = "unknown codec '" + std::string(name) + "'";
    if (!why.empty()) message += " (" + std::string(why) + ")";
    throw BadInput(message +
                   "; known: lz4, lz4-N, lz4hc-N, zstd-N (zstd--N for negative levels), identity, "
                   "and on the kernel side lzo, lzo-rle, 842, deflate");
}

inline CodecSpec parse_codec(std::string_view name) {
    auto with_param = [&](std::string_view prefix, CodecFamily family, int fallback, int lo,
                          int hi) -> std::optional<CodecSpec> {
        if (name == prefix)
            return CodecSpec{std::string(prefix) + (family == CodecFamily::lz4 ? "" : "-" + std::to_string(fallback)),
                             family, fallback};
        if (name.substr(0, prefix.size() + 1) != std::string(prefix) + "-") return std::nullopt;
        const auto value = parse_int(name.substr(prefix.size() + 1));
        if (!value) return std::nullopt;
        if (*value < lo || *value > hi)
            unknown_codec(name, std::string(prefix) + " takes " + std::to_string(lo) + " to " + std::to_string(hi));
        std::string canonical = std::string(prefix);
        if (!(family == CodecFamily::lz4 && *value == 1)) canonical += "-" + std::to_string(*value);
        return CodecSpec{canonical, family, *value};
    };
    if (auto s = with_param("lz4hc", CodecFamily::lz4hc, 9, 1, 12)) return *s;
    if (auto s = with_param("lz4", CodecFamily::lz4, 1, 1, 65537)) return *s;
    if (auto s = with_param("zstd", CodecFamily::zstd, 3, ZSTD_minCLevel(), ZSTD_maxCLevel())) return *s;
    if (name == "identity") return {"identity", CodecFamily::identity, 0};
    for (std::string_view kernel : {"lzo", "lzo-rle", "842", "deflate"})
        if (name == kernel) return {std::string(name), CodecFamily::kernel_only, 0};
    unknown_codec(name);
}

}  // namespace detail

// Parses a comma list; throws BadInput naming the first unknown codec. Duplicates are dropped.
inline std::vector<CodecSpec> parse_algos(std::string_view list) {
    std::vector<CodecSpec> specs;
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        if (!item.empty()) {
            CodecSpec spec = detail::parse_codec(item);
            bool seen = false;
            for (const auto& s : specs) seen = seen || s.name == spec.name;
            if (!seen) specs.push_back(std::move(spec));
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    if (specs.empty()) throw BadInput("--algo needs at least one codec name");
    return specs;
}

}  // namespace zpage_bench
