// zpage internal: counters kept in a plain stats struct (one with for_each_field, as Stats) whose
// every access goes through std::atomic_ref, so that the struct stays the public type and a reader
// never waits for the thread that counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "../stats.hpp"

namespace zpage::detail {

inline void add_counter(std::uint64_t& counter, std::uint64_t n) noexcept {
    std::atomic_ref<std::uint64_t>(counter).fetch_add(n, std::memory_order_relaxed);
}

// A snapshot of `counters`, each field read atomically (the fields may be from slightly
// different moments).
template <class Fields>
[[nodiscard]] Fields load_counters(const Fields& counters) noexcept {
    Fields s;
    Fields::for_each_field([&](std::string_view, auto member, StatUnit) {
        // NOLINTNEXTLINE: every access to the counters is atomic; atomic_ref needs a non-const object
        s.*member = std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(counters.*member)).load(std::memory_order_relaxed);
    });
    return s;
}

}  // namespace zpage::detail
