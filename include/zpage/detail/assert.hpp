// zpage internal: assertion levels, chosen by ZPAGE_DEBUG (0 = none, 1 = cheap invariants,
// 2 = expensive consistency checks). Tests build with ZPAGE_DEBUG=2; release users pay nothing.
#pragma once

#include <cstdio>
#include <cstdlib>

#ifndef ZPAGE_DEBUG
#define ZPAGE_DEBUG 0
#endif

namespace zpage::detail {
[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line) noexcept {
    std::fprintf(stderr, "zpage: internal invariant violated: %s (%s:%d)\n", expr, file, line);
    std::abort();
}
}  // namespace zpage::detail

#if ZPAGE_DEBUG >= 1
#define ZPAGE_ASSERT(expr) \
    ((expr) ? static_cast<void>(0) : ::zpage::detail::assertion_failed(#expr, __FILE__, __LINE__))
#else
#define ZPAGE_ASSERT(expr) static_cast<void>(0)
#endif

#if ZPAGE_DEBUG >= 2
#define ZPAGE_EXPENSIVE_ASSERT(expr) ZPAGE_ASSERT(expr)
#else
#define ZPAGE_EXPENSIVE_ASSERT(expr) static_cast<void>(0)
#endif
