// zpage internal: a small dense number per thread, used to spread threads over striped state
// (statistics stripes, compressor context slots) without hashing thread ids on every call.
#pragma once

#include <atomic>
#include <cstddef>

namespace zpage::detail {

inline std::size_t this_thread_index() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
    return index;
}

}  // namespace zpage::detail
