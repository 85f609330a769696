// zpage internal: event counters spread over cache-line stripes, one stripe per thread index, so
// that threads storing and loading at once do not bounce one line between cores. Reading sums
// the stripes: a snapshot, not an atomic cut across counters.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "thread_index.hpp"

namespace zpage::detail {

template <class Counter>  // an enum class ending in `count`
class StripedCounters {
public:
    void add(Counter c, std::int64_t delta) noexcept {
        stripes_[this_thread_index() % stripe_count].values[static_cast<std::size_t>(c)].fetch_add(
            delta, std::memory_order_relaxed);
    }

    [[nodiscard]] std::uint64_t sum(Counter c) const noexcept {
        std::int64_t total = 0;
        for (const Stripe& s : stripes_) total += s.values[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
        return total < 0 ? 0 : static_cast<std::uint64_t>(total);
    }

private:
    static constexpr std::size_t stripe_count = 16;
    struct alignas(64) Stripe {
        std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(Counter::count)> values{};
    };
    std::array<Stripe, stripe_count> stripes_{};
};

}  // namespace zpage::detail
