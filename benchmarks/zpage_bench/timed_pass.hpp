// zpage-bench: one timed pass over every page, split among threads, as each engine runs it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "types.hpp"

namespace zpage_bench::detail {

using Clock = std::chrono::steady_clock;

inline double mib_per_s(std::size_t bytes, Clock::duration elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    return seconds <= 0 ? 0 : static_cast<double>(bytes) / (1024.0 * 1024.0) / seconds;
}

// Runs body(thread, first, last) on `threads` threads over [0, pages), all starting together;
// returns the wall-clock time from the start to the last one done.
template <class Body>
Clock::duration run_split(std::size_t pages, unsigned threads, Body&& body) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const std::size_t first = pages * t / threads;
            const std::size_t last = pages * (t + 1) / threads;
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            body(t, first, last);
        });
    }
    while (ready.load() != threads) std::this_thread::yield();
    const auto start = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& w : workers) w.join();
    return Clock::now() - start;
}

// The first operation that failed, of any thread, said in one phrase for the user: which, on
// which page, and why ("store of page 12: memory limit reached").
class FirstFailure {
public:
    // Passes `status` on as a bool, noting it if it is the first failure.
    template <class Status>
    bool check(const char* op, std::size_t page, const Status& status) {
        if (!status) note(op, page, status.message());
        return static_cast<bool>(status);
    }
    void note(const char* op, std::size_t page, std::string_view why) {
        std::lock_guard guard(mutex_);
        if (what_.empty()) what_ = std::string(op) + " of page " + std::to_string(page) + ": " + std::string(why);
    }
    [[nodiscard]] std::string what() const {
        std::lock_guard guard(mutex_);
        return what_;
    }

private:
    mutable std::mutex mutex_;
    std::string what_;
};

struct Pass {
    Clock::duration wall{};
    std::vector<double> latencies_us;  // per page, in page order
    bool failed = false;               // some op returned false
};

// Calls op(thread, page index) -> bool for every page, split among `threads`, timing each call
// on its own and the whole pass on the wall clock; reports progress in steps of 256 pages.
//
// Each call's latency goes to its page's slot of one vector sized before the clock starts: the
// threads' contiguous ranges of slots share at most the cache line where two ranges meet, written
// once by each thread. (One growing vector per thread, side by side, had every push_back of two
// threads write the same line of vector headers.)
template <class Op>
Pass timed_pass(std::size_t pages, unsigned threads, const Progress& progress, Op&& op) {
    constexpr std::size_t progress_step = 256;
    std::atomic<bool> failed{false};
    Pass p;
    p.latencies_us.resize(pages);
    double* const latencies_us = p.latencies_us.data();
    p.wall = run_split(pages, threads, [&](unsigned t, std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
            const auto begin = Clock::now();
            const bool ok = op(t, i);
            latencies_us[i] = std::chrono::duration<double, std::micro>(Clock::now() - begin).count();
            if (!ok) failed.store(true);
            if (progress && (i - first + 1) % progress_step == 0) progress(progress_step);
        }
        if (progress) progress((last - first) % progress_step);
    });
    p.failed = failed.load();
    return p;
}

// Throughput over `bytes` and per-page latency percentiles of a store pass and a load pass.
inline void set_pass_figures(RunResult& r, std::size_t bytes, const Pass& stored, const Pass& loaded) {
    r.store_mib_s = mib_per_s(bytes, stored.wall);
    r.load_mib_s = mib_per_s(bytes, loaded.wall);
    set_latencies(r, stored.latencies_us, loaded.latencies_us);
}

}  // namespace zpage_bench::detail
