// Shared test fixtures: the real page corpora and page generators (corpora.hpp), OS fault
// injection, and scale-down under sanitizers.
#pragma once

#include <doctest/doctest.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <zpage/detail/file_io.hpp>
#include <zpage/detail/os.hpp>

#include "corpora.hpp"

namespace zpage_test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool under_sanitizer = true;
#else
inline constexpr bool under_sanitizer = false;
#endif

// Divides an iteration count when a sanitizer slows everything down ~10x.
constexpr std::size_t scaled(std::size_t n, std::size_t sanitizer_divisor = 8) {
    return under_sanitizer ? std::max<std::size_t>(1, n / sanitizer_divisor) : n;
}

// Use at the top of a test that needs the corpora: returns from it, with a message, when absent.
#define ZPAGE_REQUIRE_CORPORA()                                                                              \
    do {                                                                                                     \
        if (::zpage_test::corpora().empty()) {                                                               \
            MESSAGE("skipped: no page corpora in " << ::zpage_test::corpora_dir()                            \
                                                   << " (set ZPAGE_CORPORA_DIR or place ../shared beside)"); \
            return;                                                                                          \
        }                                                                                                    \
    } while (0)

// An object's bytes follow from its key and size (the key's low bytes lead), so a reader can
// check an object alone.
inline std::vector<std::byte> object_for(std::uint64_t key, std::size_t size) {
    std::vector<std::byte> v(size);
    std::uint64_t x = key * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& b : v) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b = static_cast<std::byte>(x);
    }
    std::memcpy(v.data(), &key, std::min(size, sizeof key));
    return v;
}

// The seed for a randomized test: ZPAGE_TEST_SEED if set, else a fresh one; printed either way.
inline std::uint64_t test_seed() {
    std::uint64_t seed;
    if (const char* env = std::getenv("ZPAGE_TEST_SEED"); env != nullptr && *env != '\0') {
        seed = std::strtoull(env, nullptr, 0);
    } else {
        seed = std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32);
    }
    MESSAGE("seed " << seed << " (rerun with ZPAGE_TEST_SEED=" << seed << ")");
    return seed;
}

// Pages that prove themselves whole, for concurrency tests: bytes 8.. come from `body`, salted by
// the writer and its sequence number; bytes 0..7 hold the XXH3 of bytes 8.. A load that returned
// a mix of two writers' pages fails is_whole().
template <std::size_t N>
std::array<std::byte, N> signed_page(const std::array<std::byte, N>& body, std::uint64_t writer, std::uint64_t seq) {
    std::array<std::byte, N> p = body;
    const std::uint64_t salt = writer << 48 | seq;
    std::memcpy(p.data() + 8, &salt, sizeof salt);
    const std::uint64_t sum = XXH3_64bits(p.data() + 8, p.size() - 8);
    std::memcpy(p.data(), &sum, sizeof sum);
    return p;
}

template <std::size_t N>
bool is_zero(const std::array<std::byte, N>& p) {
    return std::all_of(p.begin(), p.end(), [](std::byte b) { return b == std::byte{0}; });
}

// A signed page, or zeros (an index never stored, or erased).
template <std::size_t N>
bool is_whole(const std::array<std::byte, N>& p) {
    std::uint64_t sum;
    std::memcpy(&sum, p.data(), sizeof sum);
    return sum == XXH3_64bits(p.data() + 8, p.size() - 8) || is_zero(p);
}

// A page of N bytes made of the next N / 4096 pages of `source`.
template <std::size_t N>
std::array<std::byte, N> large_page(PageSource& source) {
    std::array<std::byte, N> p{};
    for (std::size_t off = 0; off < N; off += 4096) {
        const Page part = source.next();
        std::memcpy(p.data() + off, part.data(), part.size());
    }
    return p;
}

// Makes one kind of file I/O call (detail/file_io.hpp) fail with `fault` from the Nth call on
// (N = 0: the next call), `times` times, until destroyed. An empty Fault{} only counts the calls.
class FileFaults {
public:
    FileFaults(zpage::detail::file_io::Call call, zpage::detail::file_io::Fault fault, int fail_from = 0,
               int times = 1 << 30) {
        target().store(static_cast<int>(call));
        error().store(fault.error);
        short_transfer().store(fault.short_transfer);
        countdown().store(fail_from);
        remaining().store(times);
        call_count().store(0);
        injected_count().store(0);
        zpage::detail::file_io::fault_injector.store(&inject);
    }
    ~FileFaults() { zpage::detail::file_io::fault_injector.store(nullptr); }
    FileFaults(const FileFaults&) = delete;
    FileFaults& operator=(const FileFaults&) = delete;

    // How many calls of its kind were made, and how many of them it failed, so far.
    [[nodiscard]] static int calls() { return call_count().load(); }
    [[nodiscard]] static int injected() { return injected_count().load(); }

private:
    template <class T, int Tag>
    static std::atomic<T>& cell() {
        static std::atomic<T> value{};
        return value;
    }
    static std::atomic<int>& target() { return cell<int, 0>(); }
    static std::atomic<int>& error() { return cell<int, 1>(); }
    static std::atomic<bool>& short_transfer() { return cell<bool, 2>(); }
    static std::atomic<int>& countdown() { return cell<int, 3>(); }
    static std::atomic<int>& remaining() { return cell<int, 4>(); }
    static std::atomic<int>& injected_count() { return cell<int, 5>(); }
    static std::atomic<int>& call_count() { return cell<int, 6>(); }

    static zpage::detail::file_io::Fault inject(zpage::detail::file_io::Call call) noexcept {
        if (static_cast<int>(call) != target().load()) return {};
        call_count().fetch_add(1);
        if (countdown().fetch_sub(1) > 0) return {};
        if (remaining().fetch_sub(1) <= 0) return {};
        injected_count().fetch_add(1);
        return {error().load(), short_transfer().load()};
    }
};

// A path for a test's file, unique to the process, in ZPAGE_TEST_TMPDIR or the system's temporary
// folder (/tmp); whatever is there is removed when it goes out of scope.
class TempPath {
public:
    explicit TempPath(const std::string& stem = "zpage-test", std::filesystem::path dir = {}) {
        if (dir.empty()) {
            const char* env = std::getenv("ZPAGE_TEST_TMPDIR");
            dir = env != nullptr && *env != '\0' ? std::filesystem::path(env) : std::filesystem::temp_directory_path();
        }
        static std::atomic<unsigned> counter{0};
        path_ = dir / (stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove(path_);
    }
    ~TempPath() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    TempPath(const TempPath&) = delete;
    TempPath& operator=(const TempPath&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::string string() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

// Polls `done` until it holds or `timeout` passes (a bounded wait for a background thread's
// work); returns its last value.
template <class Predicate>
bool eventually(Predicate&& done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return done();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// Which threads an OS hook below acts on: all, or all but the one that installed it (so that it
// acts on a library's own threads, such as the page pool's refill thread, alone).
enum class OnThreads : std::uint8_t { all, others };

// The calls the one OS hook installed at a time (OsFaults or OsGate) acts on: one kind, on the
// threads it was told.
class OsCallFilter {
protected:
    static void install(zpage::detail::os::Call call, OnThreads on, zpage::detail::os::FaultInjector hook) {
        kind_.store(static_cast<int>(call));
        spared_.store(on == OnThreads::others ? std::this_thread::get_id() : std::thread::id{});
        zpage::detail::os::fault_injector.store(hook);
    }
    static void uninstall() { zpage::detail::os::fault_injector.store(nullptr); }
    static bool acts_on(zpage::detail::os::Call call) noexcept {
        return static_cast<int>(call) == kind_.load() && std::this_thread::get_id() != spared_.load();
    }

private:
    inline static std::atomic<int> kind_{0};
    inline static std::atomic<std::thread::id> spared_{};
};

// Makes one kind of OS call fail from the Nth call on (N = 0: the next call) until reset, on the
// threads `on` names (the Nth call counted among theirs).
class OsFaults : OsCallFilter {
public:
    OsFaults(zpage::detail::os::Call call, int fail_from, OnThreads on = OnThreads::all) {
        countdown_.store(fail_from);
        install(call, on, &inject);
    }
    ~OsFaults() { uninstall(); }
    OsFaults(const OsFaults&) = delete;
    OsFaults& operator=(const OsFaults&) = delete;

private:
    static bool inject(zpage::detail::os::Call call) noexcept { return acts_on(call) && countdown_.fetch_sub(1) <= 0; }
    inline static std::atomic<int> countdown_{0};
};

// Holds every call of one kind made by threads other than the one that built the gate, before
// the call is made, until open() (or destruction): a test's way to catch a library's own thread
// in the middle of that call.
class OsGate : OsCallFilter {
public:
    explicit OsGate(zpage::detail::os::Call call) {
        held_.store(0);
        opened_.store(false);
        install(call, OnThreads::others, &hold);
    }
    ~OsGate() {
        open();
        while (held_.load() != 0) std::this_thread::yield();  // let every held thread leave the hook
        uninstall();
    }
    OsGate(const OsGate&) = delete;
    OsGate& operator=(const OsGate&) = delete;

    // Whether a call arrived at the gate within `timeout`.
    [[nodiscard]] bool wait_for_arrival(std::chrono::milliseconds timeout) const {
        return eventually([] { return held_.load() != 0; }, timeout);
    }
    void open() noexcept { opened_.store(true); }

private:
    static bool hold(zpage::detail::os::Call call) noexcept {
        if (!acts_on(call)) return false;
        held_.fetch_add(1);
        while (!opened_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        held_.fetch_sub(1);
        return false;  // the call then goes ahead
    }
    inline static std::atomic<int> held_{0};
    inline static std::atomic<bool> opened_{false};
};

}  // namespace zpage_test
