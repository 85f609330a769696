// Reading memory that may raise SIGBUS (a compressed region's poisoned page, or one served after
// its handler stalled) without dying of it: SigbusReader installs the handler for as long as it
// lives, read_or_sigbus reads.
//
// A region whose faults are served in the faulting thread (FaultService::faulting_thread) raises
// SIGBUS for each of them and resolves it in zpage's handler; this handler lets zpage resolve
// those first (zpage::serve_region_fault), as any program's SIGBUS handler must.
#pragma once

#include <zpage/adapters/compressed_region.hpp>

#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstdlib>

namespace zpage_test {

// volatile: its stores must not move past the read that may raise the signal.
inline thread_local sigjmp_buf* volatile bus_jump = nullptr;
inline struct sigaction replaced_sigbus {};

// The SIGBUS handler: a region's fault resolved by zpage; else back to read_or_sigbus's jump
// point, or abort outside one.
inline void on_sigbus(int, siginfo_t* info, void* context) {
    if (info != nullptr && zpage::serve_region_fault(*info, context)) return;
    if (bus_jump != nullptr) ::siglongjmp(*bus_jump, 1);
    std::abort();
}

class SigbusReader {
public:
    SigbusReader() {
        struct sigaction action {};
        action.sa_sigaction = on_sigbus;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        installed_ = ::sigaction(SIGBUS, &action, &replaced_sigbus) == 0;
    }
    ~SigbusReader() {
        if (installed_) ::sigaction(SIGBUS, &replaced_sigbus, nullptr);
    }
    SigbusReader(const SigbusReader&) = delete;
    SigbusReader& operator=(const SigbusReader&) = delete;
    [[nodiscard]] bool installed() const noexcept { return installed_; }

private:
    bool installed_ = false;
};

// Reads the byte at p; false when the read raised SIGBUS.
inline bool read_or_sigbus(const std::byte* p, std::byte& value) {
    sigjmp_buf jump;
    if (::sigsetjmp(jump, 1) != 0) {
        bus_jump = nullptr;
        return false;
    }
    bus_jump = &jump;
    value = *static_cast<const volatile std::byte*>(p);
    bus_jump = nullptr;
    return true;
}

}  // namespace zpage_test
