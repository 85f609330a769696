// zpage internal: whether this thread is inside zpage's SIGBUS handler, resolving a compressed
// region's fault (detail/fault_signal.hpp). Code that would allocate on a thread's first use takes
// a preallocated way there instead (the allocator's gather buffer: its shared fallback).
#pragma once

namespace zpage::detail {

inline thread_local bool in_fault_signal = false;

}  // namespace zpage::detail
