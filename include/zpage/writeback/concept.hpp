// zpage: the WritebackPolicy, the fourth policy of a store: whether and where pages leave memory.
//
// A policy says at compile time what the store must do for it on every store and load (stamp
// the entry's access time), and, when it writes pages back, names its backing store. NoWriteback
// (the default) asks for nothing: it has no size and every branch on it is `if constexpr`, so a
// store without writeback compiles to what it was before the policy existed.
#pragma once

#include <concepts>
#include <type_traits>

namespace zpage {

template <class W>
concept WritebackPolicy = std::is_default_constructible_v<W> && requires {
    // The store stamps entries with detail::now_seconds() on every store and load (for
    // mark_idle(older_than) and age-based writeback).
    { W::tracks_access_time } -> std::convertible_to<bool>;
    // Pages may leave memory for a backing store (entries flagged written_back).
    { W::writes_back } -> std::convertible_to<bool>;
};

// Pages stay in memory; nothing is tracked.
struct NoWriteback {
    static constexpr bool tracks_access_time = false;
    static constexpr bool writes_back = false;
};

static_assert(WritebackPolicy<NoWriteback>);

}  // namespace zpage
