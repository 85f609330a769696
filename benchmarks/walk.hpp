// bench_region_walk's walk, shared by both sides of its comparison (a zpage region in this process,
// the kernel's compressed swap in a child, kernel_walk.hpp): one byte read per page touched, each
// touch timed, and the orders of pages touched. Both sides take their orders from walk_orders(),
// so that they walk the same pages in the same sequence.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace region_walk {

using Clock = std::chrono::steady_clock;
inline constexpr std::size_t page = 4096;
// A touch slower than this faulted: a resident page's read takes well under 1 us.
inline constexpr auto fault_threshold = std::chrono::nanoseconds(1000);
inline std::atomic<std::uint8_t> benchmark_sink{0};  // what the walks read, so that the reads stay

// Trivially copyable: the kernel side sends it from its child through a pipe.
struct WalkResult {
    double mib_s = 0;
    std::size_t touches = 0, slow = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0;
};

inline double percentile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    const auto at = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
    return v[at];
}

// Touches one byte of each page of `order`, timing each touch.
inline WalkResult walk(const std::byte* base, const std::vector<std::size_t>& order) {
    std::vector<double> slow;
    slow.reserve(order.size());
    std::uint8_t sum = 0;
    const auto begin = Clock::now();
    for (const std::size_t p : order) {
        const auto t0 = Clock::now();
        sum = static_cast<std::uint8_t>(sum + static_cast<std::uint8_t>(*static_cast<const volatile std::byte*>(base + p * page + 64)));
        const auto took = Clock::now() - t0;
        if (took >= fault_threshold) slow.push_back(std::chrono::duration<double, std::micro>(took).count());
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    benchmark_sink.store(sum, std::memory_order_relaxed);
    WalkResult r;
    r.touches = order.size();
    r.slow = slow.size();
    r.mib_s = static_cast<double>(order.size() * page) / (1 << 20) / seconds;
    r.p50_us = percentile(slow, 0.5);
    r.p99_us = percentile(slow, 0.99);
    r.p999_us = percentile(slow, 0.999);
    return r;
}

inline std::vector<std::size_t> random_order(std::size_t pages, std::size_t touches, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> order(touches);
    for (auto& p : order) p = rng() % pages;
    return order;
}

// Zipf-like (s = 0.99) over the pages, the ranks scattered over the region.
inline std::vector<std::size_t> zipf_order(std::size_t pages, std::size_t touches, std::uint64_t seed) {
    std::vector<double> cdf(pages);
    double total = 0;
    for (std::size_t k = 0; k < pages; ++k) cdf[k] = total += 1.0 / std::pow(static_cast<double>(k + 1), 0.99);
    std::vector<std::size_t> rank_to_page(pages);
    for (std::size_t k = 0; k < pages; ++k) rank_to_page[k] = k;
    std::mt19937_64 rng(seed);
    std::shuffle(rank_to_page.begin(), rank_to_page.end(), rng);
    std::uniform_real_distribution<double> u(0, total);
    std::vector<std::size_t> order(touches);
    for (auto& p : order)
        p = rank_to_page[static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin())];
    return order;
}

struct Order {
    const char* name;
    std::vector<std::size_t> pages;  // page indices, one per touch
};

// The walks of a run, in the order they run, as many touches as the region has pages; fixed seeds.
inline std::vector<Order> walk_orders(std::size_t pages) {
    std::vector<Order> orders;
    orders.push_back({"random", random_order(pages, pages, 2)});
    orders.push_back({"zipf", zipf_order(pages, pages, 3)});
    return orders;
}

}  // namespace region_walk
