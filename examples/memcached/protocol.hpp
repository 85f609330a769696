// zpage-memcached: the memcached text protocol's lines, as protocol.txt defines them: splitting a
// command line into tokens, checking keys, and parsing the numbers commands take. No I/O here, so
// a fuzzer can drive it alone.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace zpage_memcached {

inline constexpr std::size_t max_key_bytes = 250;  // protocol.txt: "currently the length limit of a key is 250"
// A command line without its data block; longer ones are refused (a multi-key get may be longer:
// see max_get_line_bytes).
inline constexpr std::size_t max_line_bytes = 2048;
inline constexpr std::size_t max_get_line_bytes = std::size_t{1} << 20;
// Exptimes above this many seconds are absolute Unix times (protocol.txt: 30 days).
inline constexpr std::int64_t max_relative_exptime = 60 * 60 * 24 * 30;

namespace reply {
inline constexpr std::string_view stored = "STORED\r\n";
inline constexpr std::string_view not_stored = "NOT_STORED\r\n";
inline constexpr std::string_view exists = "EXISTS\r\n";
inline constexpr std::string_view not_found = "NOT_FOUND\r\n";
inline constexpr std::string_view deleted = "DELETED\r\n";
inline constexpr std::string_view touched = "TOUCHED\r\n";
inline constexpr std::string_view end = "END\r\n";
inline constexpr std::string_view ok = "OK\r\n";
inline constexpr std::string_view reset = "RESET\r\n";
inline constexpr std::string_view error = "ERROR\r\n";
inline constexpr std::string_view bad_format = "CLIENT_ERROR bad command line format\r\n";
inline constexpr std::string_view bad_chunk = "CLIENT_ERROR bad data chunk\r\n";
inline constexpr std::string_view line_too_long = "CLIENT_ERROR line too long\r\n";
inline constexpr std::string_view bad_exptime = "CLIENT_ERROR invalid exptime argument\r\n";
inline constexpr std::string_view bad_delta = "CLIENT_ERROR invalid numeric delta argument\r\n";
inline constexpr std::string_view non_numeric = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
inline constexpr std::string_view bad_delete =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
inline constexpr std::string_view too_large = "SERVER_ERROR object too large for cache\r\n";
inline constexpr std::string_view out_of_memory = "SERVER_ERROR out of memory storing object\r\n";
inline constexpr std::string_view too_many_connections = "ERROR Too many open connections\r\n";
}  // namespace reply

// The tokens of one command line (its "\r\n" or "\n" removed), split on spaces as memcached does:
// runs of spaces separate, tabs and other bytes belong to tokens. The views point into the line.
inline void split_tokens(std::string_view line, std::vector<std::string_view>& tokens) {
    tokens.clear();
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ') ++i;
        if (i > start) tokens.push_back(line.substr(start, i - start));
    }
}

// protocol.txt: a key is at most 250 bytes and holds no whitespace or control characters. With
// `as_memcached`, only what memcached itself refuses is (NUL, and the space and newline that end
// tokens): memaslap, for one, starts its keys with 8 binary bytes.
[[nodiscard]] inline bool valid_key(std::string_view key, bool as_memcached = false) noexcept {
    if (key.empty() || key.size() > max_key_bytes) return false;
    for (const char c : key) {
        const auto u = static_cast<unsigned char>(c);
        if (as_memcached ? (u == 0 || u == ' ' || u == '\n') : (u <= 0x20 || u == 0x7f)) return false;
    }
    return true;
}

// A whole token as an unsigned or signed decimal of type T; nothing for anything else (signs on
// unsigned numbers, trailing bytes, overflow).
template <class T>
[[nodiscard]] std::optional<T> parse_number(std::string_view token) noexcept {
    if (token.empty()) return std::nullopt;
    if constexpr (std::is_unsigned_v<T>) {
        if (token.front() == '-' || token.front() == '+') return std::nullopt;
    }
    T value{};
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
    return value;
}

// A stored value as incr/decr read it: decimal digits, optionally followed by spaces (decr pads a
// shorter result to the old length, as memcached does); at most 2^64 - 1.
[[nodiscard]] inline std::optional<std::uint64_t> parse_counter(std::string_view value) noexcept {
    std::size_t digits = 0;
    while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9') ++digits;
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < value.size(); ++i)
        if (value[i] != ' ' && value[i] != '\r' && value[i] != '\n') return std::nullopt;
    return parse_number<std::uint64_t>(value.substr(0, digits));
}

}  // namespace zpage_memcached
