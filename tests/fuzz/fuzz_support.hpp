// What every fuzz target shares: a failed check that libFuzzer sees as a crash, and a reader that
// turns the fuzzer's bytes into choices. Each target defines LLVMFuzzerTestOneInput; built with
// ZPAGE_FUZZ=ON (clang) it is a libFuzzer binary, otherwise replay_main.cpp runs it over saved inputs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

// A property that does not hold: prints where and aborts, which the fuzzer records as a finding.
#define ZPAGE_FUZZ_CHECK(cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

namespace zpage_fuzz {

// Reads choices off the front of the input; once it runs dry every read returns zeros, so every
// input is a valid program.
class ByteReader {
public:
    ByteReader(const std::uint8_t* data, std::size_t size) noexcept
        : rest_(reinterpret_cast<const std::byte*>(data), size) {}

    [[nodiscard]] bool empty() const noexcept { return rest_.empty(); }
    [[nodiscard]] std::size_t remaining() const noexcept { return rest_.size(); }

    template <class T>
    T integral() noexcept {
        T value{};
        const std::size_t n = std::min(sizeof value, rest_.size());
        std::memcpy(&value, rest_.data(), n);
        rest_ = rest_.subspan(n);
        return value;
    }
    // A value in [0, bound); 0 when bound is 0.
    std::size_t below(std::size_t bound) noexcept {
        return bound == 0 ? 0 : static_cast<std::size_t>(integral<std::uint32_t>() % bound);
    }
    // The next n bytes, or fewer at the end.
    std::span<const std::byte> bytes(std::size_t n) noexcept {
        const std::span<const std::byte> out = rest_.first(std::min(n, rest_.size()));
        rest_ = rest_.subspan(out.size());
        return out;
    }
    std::span<const std::byte> all() noexcept { return bytes(rest_.size()); }

private:
    std::span<const std::byte> rest_;
};

// A store's validate() walk: any figure it finds off is a finding.
template <class Store>
void check_books(const Store& store) {
    const std::string problems = store.validate();
    if (!problems.empty()) {
        std::fprintf(stderr, "the store's books do not balance:\n%s", problems.c_str());
        std::abort();
    }
}

// What an emptied, compacted store may hold beyond a new one: span descriptors' pages, charged
// when a span id is first used and kept (allocator/span.hpp), and the unit table's blocks; these
// targets' small stores use at most a few. A lost object shows in compr_data_size instead.
inline constexpr std::size_t kept_descriptor_bytes = 16 * 4096;

// Writes one seed input, named by its number, into `dir`.
inline void write_seed(const std::string& dir, std::size_t number, std::span<const std::byte> bytes) {
    std::ofstream out(dir + "/seed-" + std::to_string(number), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ZPAGE_FUZZ_CHECK(out.good());
}

// Seeds of random bytes, for targets whose input is a program of operations.
inline void write_random_seeds(const std::string& dir, std::size_t count, std::size_t max_bytes) {
    std::mt19937_64 rng(count * 7919 + max_bytes);
    for (std::size_t n = 0; n < count; ++n) {
        std::vector<std::byte> bytes(1 + rng() % max_bytes);
        for (auto& b : bytes) b = static_cast<std::byte>(rng());
        write_seed(dir, n, bytes);
    }
}

}  // namespace zpage_fuzz

// Each target defines this too: writes its seed inputs (made from the page corpora where they
// are, or from recorded sessions) into `dir`, which exists.
extern "C" void zpage_fuzz_write_seeds(const char* dir);

#ifdef ZPAGE_FUZZER
// libFuzzer calls this before anything else. With ZPAGE_FUZZ_WRITE_SEEDS=DIR in the environment
// the binary writes its seeds into DIR and exits (run_fuzzers.sh), so that the fuzz build needs no
// replay binaries.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("ZPAGE_FUZZ_WRITE_SEEDS"); dir != nullptr && *dir != '\0') {
        zpage_fuzz_write_seeds(dir);
        std::exit(0);
    }
    return 0;
}
#endif
