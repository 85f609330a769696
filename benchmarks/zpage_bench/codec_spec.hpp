// zpage-bench: codec names as users write them (--algo), and what each means on either engine.
//
//   lz4, lz4-N      zpage::Lz4 with acceleration N (1 when omitted)
//   lz4hc-N         zpage::Lz4hc at level N (9 when omitted)
//   zstd-N          zpage::Zstd at level N, negative levels written zstd--N (3 when omitted)
//   identity        pages kept raw
//   lzo, lzo-rle, 842, deflate    the kernel's own codecs: run on the kernel side only
//   A+B, A+B:N      stored with A (lz4, lz4-N), then every page recompressed with B (lz4hc-N,
//                   zstd-N), each page alone or in units of N neighbouring pages (1..16)
//   tiered          the recommended pair, lz4+zstd-3:16
#pragma once

#include <zstd.h>

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "types.hpp"

namespace zpage_bench {

enum class CodecFamily { lz4, lz4hc, zstd, identity, kernel_only };

// The B of an A+B spec: the codec every page is recompressed with once all are stored.
struct Recompression {
    std::string name;  // B's canonical name: "zstd-3"
    CodecFamily family = CodecFamily::zstd;
    int param = 0;
    std::size_t group_pages = 1;  // pages compressed as one unit (zpage::RecompressRequest::group_pages)
};

struct CodecSpec {
    // canonical: "lz4", "lz4-8", "lz4hc-9", "zstd-3", "zstd--5", "identity", "lzo-rle", and A+B
    // with ":N" only when N > 1, "lz4+zstd-3", "lz4+zstd-3:16"
    std::string name;
    CodecFamily family = CodecFamily::lz4;  // A's, for an A+B spec
    int param = 0;  // acceleration (lz4) or level (lz4hc, zstd)
    std::optional<Recompression> recompression;  // A+B only

    [[nodiscard]] bool runs_on_zpage() const { return family != CodecFamily::kernel_only; }

    // The kernel's name for this codec, and the level to pass through algorithm_params; no name
    // when the kernel has no such codec (identity) or zpage-bench does not drive it (A+B: zram's
    // recompress takes pages one by one, and only with CONFIG_ZRAM_MULTI_COMP).
    [[nodiscard]] std::optional<std::string> kernel_name() const {
        if (recompression) return std::nullopt;
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
        if (recompression) return std::nullopt;
        switch (family) {
        case CodecFamily::lz4:
            return param == 1 ? std::nullopt : std::optional<int>(param);  // zram: lz4 level = acceleration
        case CodecFamily::lz4hc:
        case CodecFamily::zstd: return param;
        default: return std::nullopt;
        }
    }
};

inline constexpr std::string_view default_algos = "lz4,lz4hc-9,zstd-1,zstd-3,tiered";
inline constexpr std::string_view kernel_default_algo = "lzo-rle";
inline constexpr std::string_view tiered_algo = "lz4+zstd-3:16";  // what --algo tiered stands for

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
                   "; known: lz4, lz4-N, lz4hc-N, zstd-N (zstd--N for negative levels), identity, A+B[:N], "
                   "tiered, and on the kernel side lzo, lzo-rle, 842, deflate");
}

// A single codec's name, or nullopt when it names none; throws BadInput for a parameter out of
// range.
inline std::optional<CodecSpec> find_codec(std::string_view name) {
    auto with_param = [&](std::string_view prefix, CodecFamily family, int fallback, int lo,
                          int hi) -> std::optional<CodecSpec> {
        if (name == prefix)
            return CodecSpec{std::string(prefix) + (family == CodecFamily::lz4 ? "" : "-" + std::to_string(fallback)),
                             family, fallback, std::nullopt};
        if (name.substr(0, prefix.size() + 1) != std::string(prefix) + "-") return std::nullopt;
        const auto value = parse_int(name.substr(prefix.size() + 1));
        if (!value) return std::nullopt;
        if (*value < lo || *value > hi)
            unknown_codec(name, std::string(prefix) + " takes " + std::to_string(lo) + " to " + std::to_string(hi));
        std::string canonical = std::string(prefix);
        if (!(family == CodecFamily::lz4 && *value == 1)) canonical += "-" + std::to_string(*value);
        return CodecSpec{canonical, family, *value, std::nullopt};
    };
    if (auto s = with_param("lz4hc", CodecFamily::lz4hc, 9, 1, 12)) return s;
    if (auto s = with_param("lz4", CodecFamily::lz4, 1, 1, 65537)) return s;
    if (auto s = with_param("zstd", CodecFamily::zstd, 3, ZSTD_minCLevel(), ZSTD_maxCLevel())) return s;
    if (name == "identity") return CodecSpec{"identity", CodecFamily::identity, 0, std::nullopt};
    for (std::string_view kernel : {"lzo", "lzo-rle", "842", "deflate"})
        if (name == kernel) return CodecSpec{std::string(name), CodecFamily::kernel_only, 0, std::nullopt};
    return std::nullopt;
}

inline constexpr std::size_t max_group_pages = 16;  // zpage's units hold up to 16 pages

// The pairs zpage-bench runs: each is a store type of its own (run_zpage.hpp instantiates one per
// A, B and page size), so the set stays small.
[[noreturn]] inline void unknown_pair(std::string_view name, std::string_view why) {
    throw BadInput("unknown codec pair '" + std::string(name) + "' (" + std::string(why) +
                   "); A+B[:N] takes A = lz4 or lz4-N, B = zstd-N or lz4hc-N, N = 1 to " +
                   std::to_string(max_group_pages) + ", e.g. lz4+zstd-3:16");
}

// "A+B" or "A+B:N" (name holds a '+').
inline CodecSpec parse_pair(std::string_view name) {
    const std::size_t plus = name.find('+');
    const std::string_view a_name = name.substr(0, plus);
    std::string_view b_name = name.substr(plus + 1);
    std::size_t group_pages = 1;
    if (const std::size_t colon = b_name.find(':'); colon != std::string_view::npos) {
        const std::string_view n_text = b_name.substr(colon + 1);
        const auto n = parse_int(n_text);
        if (!n || *n < 1 || static_cast<std::size_t>(*n) > max_group_pages)
            unknown_pair(name, "'" + std::string(n_text) + "' as N");
        group_pages = static_cast<std::size_t>(*n);
        b_name = b_name.substr(0, colon);
    }
    std::optional<CodecSpec> spec = find_codec(a_name);
    if (!spec || spec->family != CodecFamily::lz4) unknown_pair(name, "'" + std::string(a_name) + "' as A");
    const std::optional<CodecSpec> b = find_codec(b_name);
    if (!b || (b->family != CodecFamily::zstd && b->family != CodecFamily::lz4hc))
        unknown_pair(name, "'" + std::string(b_name) + "' as B");
    spec->recompression = Recompression{b->name, b->family, b->param, group_pages};
    spec->name += "+" + b->name + (group_pages == 1 ? "" : ":" + std::to_string(group_pages));
    return *spec;
}

inline CodecSpec parse_codec(std::string_view name) {
    if (name == "tiered") return parse_pair(tiered_algo);
    if (name.find('+') != std::string_view::npos) return parse_pair(name);
    if (auto spec = find_codec(name)) return *spec;
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
