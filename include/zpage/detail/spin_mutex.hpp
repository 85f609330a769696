// zpage internal: a test-and-test-and-set lock for critical sections of a few dozen instructions
// (size-class bookkeeping). Spins briefly, then yields, so a preempted holder on a 2-core machine
// does not make the waiter burn its whole time slice. Meets Lockable: use std::lock_guard.
#pragma once

#include <atomic>
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

// Spins `spins` times, then yields on every further call: the back-off shared by every lock here.
class Backoff {
public:
    void pause() noexcept {
        if (spins_ < spin_limit) {
            ++spins_;
            ZPAGE_CPU_RELAX();
        } else {
            std::this_thread::yield();
        }
    }

private:
    static constexpr unsigned spin_limit = 64;
    unsigned spins_ = 0;
};

class SpinMutex {
public:
    void lock() noexcept {
        Backoff backoff;
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
};

}  // namespace zpage::detail
