// zpage internal: the clock of entries' access times: whole seconds of CLOCK_MONOTONIC_COARSE
// (since boot, never set back; 4 bytes hold 136 years). The coarse clock is read from the vDSO
// without a syscall or a TSC read, a few nanoseconds, so stores and loads can stamp entries.
#pragma once

#include <time.h>

#include <cstdint>

namespace zpage::detail {

[[nodiscard]] inline std::uint32_t now_seconds() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::uint32_t>(ts.tv_sec);
}

}  // namespace zpage::detail
