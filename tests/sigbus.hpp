// Reading memory that may raise SIGBUS (a compressed region's poisoned page, or one served after
// its handler stalled) without dying of it: install on_sigbus for SIGBUS, then read_or_sigbus.
#pragma once

#include <csetjmp>
#include <cstddef>
#include <cstdlib>

namespace zpage_test {

// volatile: its stores must not move past the read that may raise the signal.
inline thread_local sigjmp_buf* volatile bus_jump = nullptr;

// The SIGBUS handler: back to read_or_sigbus's jump point, or abort outside one.
inline void on_sigbus(int) {
    if (bus_jump != nullptr) ::siglongjmp(*bus_jump, 1);
    std::abort();
}

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
