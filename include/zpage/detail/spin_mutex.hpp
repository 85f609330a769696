// zpage internal: the back-off every wait in zpage spins with, and a test-and-test-and-set lock
// for critical sections of a few dozen instructions (size-class bookkeeping). A waiter spins
// briefly, then yields, so a preempted holder on a 2-core machine does not make the waiter burn
// its whole time slice. While a thread waits, waiting_for() names what it waits for.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ZPAGE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define ZPAGE_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define ZPAGE_CPU_RELAX() static_cast<void>(0)
#endif

namespace zpage::detail {

// What the calling thread is waiting for inside zpage right now ("size-class lock", ...), or
// nullptr. Written only on a wait's slow path (its first pause), so uncontended calls never touch
// it; a watchdog or debugger reads it from another thread through its address.
inline std::atomic<const char*>& waiting_for() noexcept {
    thread_local std::atomic<const char*> site{nullptr};
    return site;
}

// Spins spin_limit times, then yields on every further call: the back-off shared by every wait
// here. `site` (a string literal) names what is waited for, for waiting_for().
class Backoff {
public:
    explicit Backoff(const char* site) noexcept : site_(site) {}
    ~Backoff() {
        if (spins_ != 0) waiting_for().store(nullptr, std::memory_order_relaxed);
    }
    Backoff(const Backoff&) = delete;
    Backoff& operator=(const Backoff&) = delete;

    void pause() noexcept {
        if (spins_ == 0) waiting_for().store(site_, std::memory_order_relaxed);
        if (spins_ < spin_limit) {
            ++spins_;
            ZPAGE_CPU_RELAX();
        } else {
            std::this_thread::yield();
        }
    }

private:
    static constexpr unsigned spin_limit = 64;
    const char* site_;
    unsigned spins_ = 0;
};

// Meets Lockable: use std::lock_guard. `site` names the lock for waiting_for().
class SpinMutex {
public:
    explicit SpinMutex(const char* site) noexcept : site_(site) {}

    void lock() noexcept {
        Backoff backoff(site_);
        while (locked_.exchange(true, std::memory_order_acquire)) {
            while (locked_.load(std::memory_order_relaxed)) backoff.pause();
        }
    }
    bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> locked_{false};
    const char* site_;
};

// Locks a std::mutex (for locks held across I/O or a whole batch, where spinning would be
// wasted), naming `site` (a string literal) in waiting_for() while the caller waits for it.
[[nodiscard]] inline std::unique_lock<std::mutex> lock_waiting_for(std::mutex& mutex, const char* site) noexcept {
    std::unique_lock lock(mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
        waiting_for().store(site, std::memory_order_relaxed);
        lock.lock();
        waiting_for().store(nullptr, std::memory_order_relaxed);
    }
    return lock;
}

}  // namespace zpage::detail
