// zpage internal: zram's same-filled page test. A page that is one 8-byte word repeated is kept
// as that word in its page-table entry, with no allocation and no codec call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace zpage::detail {

template <std::size_t PageSize>
[[nodiscard]] inline std::optional<std::uint64_t> same_fill_word(std::span<const std::byte, PageSize> page) noexcept {
    static_assert(PageSize % sizeof(std::uint64_t) == 0);
    std::uint64_t first;
    std::uint64_t last;
    std::memcpy(&first, page.data(), sizeof first);
    std::memcpy(&last, page.data() + PageSize - sizeof last, sizeof last);
    if (first != last) return std::nullopt;  // most pages fail here, at the cost of two loads
    for (std::size_t off = sizeof first; off < PageSize - sizeof last; off += sizeof first) {
        std::uint64_t word;
        std::memcpy(&word, page.data() + off, sizeof word);
        if (word != first) return std::nullopt;
    }
    return first;
}

inline void fill_words(std::span<std::byte> page, std::uint64_t fill) noexcept {
    for (std::size_t off = 0; off + sizeof fill <= page.size(); off += sizeof fill) std::memcpy(page.data() + off, &fill, sizeof fill);
}

}  // namespace zpage::detail
