// zpage internal: the process's SIGBUS handler for compressed regions whose faults are served by
// the thread that touched the page (FaultService::faulting_thread). Their userfaultfd is made with
// UFFD_FEATURE_SIGBUS, so a fault raises SIGBUS (si_code BUS_ADRERR) in the faulting thread
// instead of queueing a message for a handler thread; this handler finds the region holding the
// address and lets it resolve the fault, and the access is retried when the handler returns.
//
// Any other SIGBUS (a page the region poisoned, a file mapping past its end, an address in no
// region) goes to the handler that was there before zpage's, or, where that was the default, ends
// the process as it would have ended without zpage. A region's construction puts zpage's handler
// in front again if the program replaced it meanwhile (keeping the program's behind it). A
// program that installs its own SIGBUS handler while such a region exists calls
// zpage::serve_region_fault first in it, and takes the signal itself only when that returns false.
//
// Registry: a fixed array of slots, each a region's address range and its object, filled at a
// region's construction and emptied before it is unmapped. The handler only reads it: no lock.
#pragma once

#include <signal.h>
#include <ucontext.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "signal_context.hpp"

namespace zpage::detail {

// Whether a faulting access was a write, as far as the signal's context tells (x86-64: the page
// fault's error code). Unknown where it does not tell (no context, another architecture).
enum class FaultAccess : std::uint8_t { read, write, unknown };

inline FaultAccess fault_access(const void* context) noexcept {
#if defined(__x86_64__)
    if (context == nullptr) return FaultAccess::unknown;
    constexpr long long x86_pf_write = 2;  // the error code's W/R bit
    const auto& registers = static_cast<const ucontext_t*>(context)->uc_mcontext.gregs;
    return (registers[REG_ERR] & x86_pf_write) != 0 ? FaultAccess::write : FaultAccess::read;
#else
    static_cast<void>(context);
    return FaultAccess::unknown;
#endif
}

// A region that resolves its faults in the faulting thread.
class SignalServedRange {
public:
    // Resolves the fault at `address`, in the range, by an access of kind `access`; called in a
    // signal handler of the faulting thread, which retries its access on return. noexcept, and no
    // allocation on its path. False when the access is not the region's to resolve (a page it
    // poisoned): the signal is passed on.
    virtual bool serve_fault(std::uintptr_t address, FaultAccess access) noexcept = 0;

protected:
    ~SignalServedRange() = default;
};

class FaultSignal {
public:
    static constexpr std::size_t max_ranges = 64;

    // Installs the handler (once per process) and enters the range; false when all slots are
    // taken or sigaction fails, with `why` saying which.
    static bool enter(std::uintptr_t begin, std::uintptr_t end, SignalServedRange* range, std::string& why) {
        State& s = state();
        std::lock_guard guard(s.mutex);
        struct sigaction current {};
        if (::sigaction(SIGBUS, nullptr, &current) != 0) {
            why = "sigaction(SIGBUS): " + std::string(std::strerror(errno));
            return false;
        }
        if ((current.sa_flags & SA_SIGINFO) == 0 || current.sa_sigaction != &on_sigbus) {
            // Not zpage's (first region, or the program replaced it since): zpage's in front, and
            // what was there behind it. The handler reads `previous` without a lock, so the
            // other copy is written and then made the one it reads.
            const unsigned next = 1 - s.previous_index.load(std::memory_order_relaxed);
            s.previous[next] = current;
            s.previous_index.store(next, std::memory_order_release);
            struct sigaction action {};
            action.sa_sigaction = &on_sigbus;
            action.sa_flags = SA_SIGINFO | SA_RESTART;
            sigemptyset(&action.sa_mask);
            if (::sigaction(SIGBUS, &action, nullptr) != 0) {
                why = "sigaction(SIGBUS): " + std::string(std::strerror(errno));
                return false;
            }
        }
        for (Slot& slot : s.slots) {
            if (slot.range.load(std::memory_order_relaxed) != nullptr) continue;
            slot.begin.store(begin, std::memory_order_relaxed);
            slot.end.store(end, std::memory_order_relaxed);
            slot.range.store(range, std::memory_order_release);
            return true;
        }
        why = "more than " + std::to_string(max_ranges) + " regions serve their faults in the faulting thread";
        return false;
    }

    static void leave(const SignalServedRange* range) noexcept {
        State& s = state();
        std::lock_guard guard(s.mutex);
        for (Slot& slot : s.slots)
            if (slot.range.load(std::memory_order_relaxed) == range) slot.range.store(nullptr, std::memory_order_release);
    }

    // True when the signal was a region's fault, now resolved: the access is to be retried.
    // `context`: the handler's third argument (its ucontext_t), which tells a read from a write.
    static bool serve(const siginfo_t& info, const void* context) noexcept {
        if (info.si_code != BUS_ADRERR) return false;
        const auto address = reinterpret_cast<std::uintptr_t>(info.si_addr);
        for (Slot& slot : state().slots) {
            SignalServedRange* range = slot.range.load(std::memory_order_acquire);
            if (range != nullptr && address >= slot.begin.load(std::memory_order_relaxed) &&
                address < slot.end.load(std::memory_order_relaxed)) {
                const bool outer = in_fault_signal;
                in_fault_signal = true;
                const bool served = range->serve_fault(address, fault_access(context));
                in_fault_signal = outer;
                return served;
            }
        }
        return false;
    }

private:
    struct Slot {
        std::atomic<std::uintptr_t> begin{0}, end{0};
        std::atomic<SignalServedRange*> range{nullptr};
    };
    struct State {
        std::mutex mutex;  // entering and leaving; never taken by the handler
        struct sigaction previous[2] {};
        std::atomic<unsigned> previous_index{0};
        std::array<Slot, max_ranges> slots;
    };
    static State& state() noexcept {
        static State s;
        return s;
    }

    static void on_sigbus(int signal, siginfo_t* info, void* context) {
        const int saved_errno = errno;
        const bool served = info != nullptr && serve(*info, context);
        errno = saved_errno;
        if (!served) pass_on(signal, info, context);
    }

    // Not a region's fault: to the handler before zpage's; else the default action, taken when
    // the faulting access is retried (a SIGBUS sent by another process is redelivered the same way).
    static void pass_on(int signal, siginfo_t* info, void* context) {
        const State& s = state();
        const struct sigaction& previous = s.previous[s.previous_index.load(std::memory_order_acquire)];
        if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
            previous.sa_sigaction(signal, info, context);
            return;
        }
        if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
            previous.sa_handler(signal);
            return;
        }
        struct sigaction fallback {};
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        static_cast<void>(::sigaction(SIGBUS, &fallback, nullptr));
        if (info == nullptr || info->si_code <= 0) static_cast<void>(::raise(SIGBUS));
    }
};

}  // namespace zpage::detail

namespace zpage {

// For a program's own SIGBUS handler, installed while a compressed region serves its faults in the
// faulting thread: call this first; true means the signal was that region's fault, resolved, and
// the handler returns at once so that the access is retried. `context` is the handler's third
// argument (SA_SIGINFO), which tells the region whether the access was a write; without it a read
// is served as a write would be (its page keeps no clean copy: RegionConfig::keep_clean_copies).
// Async-signal-safe.
inline bool serve_region_fault(const siginfo_t& info, const void* context = nullptr) noexcept {
    return detail::FaultSignal::serve(info, context);
}

}  // namespace zpage
