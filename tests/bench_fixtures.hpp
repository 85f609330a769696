// Fixtures for the tests of zpage-bench's parts: catching its one-line errors, counting open files.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "../benchmarks/zpage_bench/types.hpp"

namespace zpage_test {

// The message of the BadInput that f() throws, or "(no BadInput)".
template <class F>
std::string bad_input_message(F&& f) {
    try {
        f();
    } catch (const zpage_bench::BadInput& e) {
        return e.what();
    }
    return "(no BadInput)";
}

// File descriptors this process holds: a test takes it before and after to catch a leak.
inline std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

}  // namespace zpage_test
