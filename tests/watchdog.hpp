// A watchdog for tests with background threads: a hang fails the test, it never stalls CI.
//
// Each worker thread takes a Watchdog::Worker slot, calls working(op, index) before each
// operation and done() after it. A monitor thread looks at the slots' operation counts every
// 100 ms; when no slot has moved for `stall_limit`, or one worker has been inside one operation
// that long while the others go on (a lost wake-up), it prints what every worker was doing (its
// role, its operation and index, and the zpage lock or pool it is waiting for, from
// zpage::detail::waiting_for()) and ends the process with exit status 3: a deadlocked thread
// cannot be joined, so no assertion could report it otherwise.
#pragma once

#include <zpage/detail/spin_mutex.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zpage_test {

class Watchdog {
public:
    // One worker's public state; written by that worker only, read by the monitor.
    class alignas(64) Worker {
    public:
        // Called before each operation; `op` must be a string literal.
        void working(const char* op, std::size_t index = 0) noexcept {
            index_.store(index, std::memory_order_relaxed);
            op_.store(op, std::memory_order_relaxed);
        }
        void done() noexcept {
            op_.store("between operations", std::memory_order_relaxed);
            ops_.fetch_add(1, std::memory_order_relaxed);
        }
        [[nodiscard]] std::uint64_t operations() const noexcept { return ops_.load(std::memory_order_relaxed); }

    private:
        friend class Watchdog;
        std::string role_;
        std::atomic<const char*> op_{"starting"};
        std::atomic<std::size_t> index_{0};
        std::atomic<std::uint64_t> ops_{0};
        std::atomic<const std::atomic<const char*>*> waiting_{nullptr};
    };

    explicit Watchdog(std::chrono::milliseconds stall_limit, std::string what)
        : stall_limit_(stall_limit), what_(std::move(what)), monitor_([this] { monitor(); }) {}

    ~Watchdog() {
        {
            std::lock_guard guard(lock_);
            stopping_ = true;
        }
        wake_.notify_all();
        monitor_.join();
    }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // A slot for the calling thread, which must call this itself (its zpage wait site is
    // thread-local). The slot lives as long as the watchdog.
    Worker& enroll(std::string role) {
        std::lock_guard guard(lock_);
        Worker& w = workers_.emplace_back();
        w.role_ = std::move(role);
        w.waiting_.store(&zpage::detail::waiting_for(), std::memory_order_release);
        return w;
    }

    // The calling thread leaves: its slot stops counting as stalled.
    void leave(Worker& w) noexcept {
        w.waiting_.store(nullptr, std::memory_order_release);
        w.op_.store(nullptr, std::memory_order_relaxed);
    }

private:
    void monitor() {
        std::unique_lock guard(lock_);
        std::uint64_t last_total = ~std::uint64_t{0};
        auto last_change = std::chrono::steady_clock::now();
        // Per worker: its operation count when last seen, and since when it has been in this one.
        std::vector<std::uint64_t> worker_ops;
        std::vector<std::chrono::steady_clock::time_point> worker_since;
        while (!stopping_) {
            wake_.wait_for(guard, std::chrono::milliseconds(100));
            const auto now = std::chrono::steady_clock::now();
            std::uint64_t total = 0;
            bool anyone_working = false, one_stuck = false;
            std::size_t i = 0;
            for (const Worker& w : workers_) {
                const std::uint64_t ops = w.operations();
                const char* op = w.op_.load(std::memory_order_relaxed);
                total += ops;
                anyone_working |= op != nullptr;
                const bool inside = op != nullptr && std::strcmp(op, "between operations") != 0 &&
                                    std::strcmp(op, "starting") != 0;
                if (i == worker_ops.size()) {
                    worker_ops.push_back(ops);
                    worker_since.push_back(now);
                }
                if (ops != worker_ops[i] || !inside) {
                    worker_ops[i] = ops;
                    worker_since[i] = now;
                } else if (now - worker_since[i] >= stall_limit_) {
                    one_stuck = true;
                }
                ++i;
            }
            if (total != last_total || !anyone_working) {
                last_total = total;
                last_change = now;
            }
            if (one_stuck || now - last_change >= stall_limit_) {
                report();
                std::fflush(stderr);
                std::_Exit(3);
            }
        }
    }

    void report() const {
        std::fprintf(stderr, "\nwatchdog: %s: a thread made no progress for %lld ms; where each thread is:\n",
                     what_.c_str(), static_cast<long long>(stall_limit_.count()));
        for (const Worker& w : workers_) {
            const char* op = w.op_.load(std::memory_order_relaxed);
            if (op == nullptr) op = "nothing: finished";
            const std::atomic<const char*>* site = w.waiting_.load(std::memory_order_acquire);
            const char* waiting = site != nullptr ? site->load(std::memory_order_relaxed) : nullptr;
            std::fprintf(stderr, "  %-12s %llu ops done, in %s (index %zu), %s%s\n", w.role_.c_str(),
                         static_cast<unsigned long long>(w.operations()), op, w.index_.load(std::memory_order_relaxed),
                         waiting != nullptr ? "waiting for " : "not waiting in zpage",
                         waiting != nullptr ? waiting : "");
        }
    }

    const std::chrono::milliseconds stall_limit_;
    const std::string what_;
    mutable std::mutex lock_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::deque<Worker> workers_;  // a deque: slots never move once handed out
    std::thread monitor_;         // last: starts once everything above is built
};

}  // namespace zpage_test
