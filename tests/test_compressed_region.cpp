// The compressed region: real pages written across a region larger than its resident budget by
// several threads and read back byte for byte, the process's resident set held near the budget,
// each under both fault services; faults served in the faulting thread beside a program's own
// SIGBUS handler and system calls; and a clear refusal where userfaultfd is not allowed.
#include <zpage/adapters/compressed_region.hpp>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "sigbus.hpp"
#include "fault_services.hpp"
#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;

namespace {

using Region = zpage::CompressedRegion<zpage::Lz4Store>;

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * 4096;
}

// The resident memory of the mappings within [start, start + bytes), from /proc/self/smaps: pages
// of their own, not the shared zero page (which smaps does not count), and not the rest of the
// process (other threads' stacks and heaps, ASan's shadow).
std::size_t mapped_rss(const std::byte* start, std::size_t bytes) {
    std::ifstream smaps("/proc/self/smaps");
    const auto first = reinterpret_cast<std::uintptr_t>(start), end = first + bytes;
    std::size_t rss = 0;
    bool inside = false;
    for (std::string line; std::getline(smaps, line);) {
        std::uintptr_t from = 0, to = 0;
        char dash = 0;
        std::istringstream fields(line);
        if (fields >> std::hex >> from >> dash >> to && dash == '-') {
            inside = from >= first && to <= end;
            continue;
        }
        std::size_t kib = 0;
        if (inside && std::sscanf(line.c_str(), "Rss: %zu kB", &kib) == 1) rss += kib * 1024;
    }
    return rss;
}

// A store whose loads can be held: a handler stuck in the store, or stopped in a debugger.
struct HoldableStore : zpage::Lz4Store {
    using zpage::Lz4Store::Lz4Store;
    std::atomic<bool> hold{false};
    std::atomic<int> held{0};
    zpage::Status load(std::size_t index, page_buffer page) noexcept {
        if (hold.load()) {
            ++held;
            while (hold.load()) std::this_thread::sleep_for(1ms);
        }
        return zpage::Lz4Store::load(index, page);
    }
};

using zpage_test::read_or_sigbus;

}  // namespace

TEST_CASE("where userfaultfd is not allowed, construction fails with a message naming the fix") {
    // A child process where the system call is refused (as a container's seccomp profile does)
    // and, as root, without the rights to /dev/userfaultfd. First in this file, so that the
    // child is forked before any test has started a thread (the page pool's) whose locks it
    // would inherit.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
            ::_exit(3);
        if (::geteuid() == 0 && ::setuid(65534) != 0) ::_exit(4);
        zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 64});
        try {
            Region region(store, {.bytes = 64 * 4096});
        } catch (const zpage::RegionError& e) {
            const std::string what = e.what();
            const bool names_fix = what.find("vm.unprivileged_userfaultfd=1") != std::string::npos &&
                                   what.find("/dev/userfaultfd") != std::string::npos;
            ::_exit(names_fix ? 0 : 2);
        }
        ::_exit(1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "1: constructed anyway; 2: the message named no fix; 3, 4: setup failed");
}

TEST_CASE_TEMPLATE("pages written across a region four times its budget, by two threads, read back whole", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    const std::size_t region_bytes = zpage_test::scaled(std::size_t{256} << 20, 4);
    const std::size_t budget = region_bytes / 8;
    const std::size_t pages = region_bytes / 4096;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(4096, zpage_test::test_seed());
    // Page i holds sample[i % sample.size()] with its index in its first bytes.
    auto expected = [&](std::size_t i) {
        zpage_test::Page p = sample[i % sample.size()];
        std::memcpy(p.data(), &i, sizeof i);
        return p;
    };
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    const std::size_t rss_before = resident_bytes();
    Region region(store, {.bytes = region_bytes, .resident_budget_bytes = budget, .fault_service = Service::value, .handler_threads = 2});
    zpage_test::Watchdog watchdog(10000ms, "compressed region");
    std::size_t peak_rss = 0;
    std::atomic<std::size_t> wrong{0};
    auto writer = [&](std::size_t first) {
        auto& me = watchdog.enroll("writer " + std::to_string(first));
        for (std::size_t i = first; i < pages; i += 2) {
            me.working("write", i);
            const zpage_test::Page p = expected(i);
            std::memcpy(region.data() + i * 4096, p.data(), 4096);
            me.done();
        }
        watchdog.leave(me);
    };
    auto reader = [&](std::size_t first, std::uint64_t seed) {
        auto& me = watchdog.enroll("reader " + std::to_string(first));
        std::mt19937_64 rng(seed);
        for (std::size_t n = 0; n < pages / 2; ++n) {
            const std::size_t i = rng() % pages;
            me.working("read", i);
            wrong += std::memcmp(region.data() + i * 4096, expected(i).data(), 4096) != 0;
            me.done();
        }
        watchdog.leave(me);
    };
    {
        std::thread a(writer, 0), b(writer, 1);
        a.join();
        b.join();
    }
    peak_rss = std::max(peak_rss, resident_bytes());
    {
        std::thread a(reader, 0, 1), b(reader, 1, 2);
        a.join();
        b.join();
    }
    peak_rss = std::max(peak_rss, resident_bytes());
    for (std::size_t i = 0; i < pages; ++i) {
        INFO("page " << i);
        REQUIRE(std::memcmp(region.data() + i * 4096, expected(i).data(), 4096) == 0);
    }
    peak_rss = std::max(peak_rss, resident_bytes());
    const zpage::RegionStats s = region.stats();
    const std::size_t store_bytes = store.stats().mem_used_max;
    // Slack: the store's spare pool pages, the staging and handler pages, thread stacks, allocator
    // caches.
    const std::size_t slack = std::size_t{24} << 20;
    MESSAGE("faults " << s.faults << ", swap-outs " << s.swap_outs << " (" << s.direct_evictions << " direct), swap-ins "
                      << s.swap_ins << ", resident " << s.resident_pages << " pages, store " << (store_bytes >> 20)
                      << " MiB at most, RSS grew " << ((peak_rss - std::min(peak_rss, rss_before)) >> 20) << " MiB");
    CHECK(wrong.load() == 0);
    CHECK(s.swap_outs > pages / 2);
    CHECK(s.swap_ins > 0);
    CHECK(s.resident_pages <= budget / 4096);
    // A page the evictor is moving shows in both counts for a moment (RegionStats).
    CHECK(zpage_test::eventually([&] {
        const zpage::RegionStats now = region.stats();
        return now.resident_pages + now.swapped_pages <= pages;
    }));
    // Under a sanitizer, shadow memory and the freed-memory quarantine grow the resident set too.
    if (!zpage_test::under_sanitizer) CHECK(peak_rss <= rss_before + budget + store_bytes + slack);
}

TEST_CASE_TEMPLATE("pages never written read as zeros and cost nothing; a region without a budget evicts nothing", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 1024;
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * 4096, .fault_service = Service::value});
    for (std::size_t i = 0; i < pages; i += 7) CHECK(region.data()[i * 4096 + 5] == std::byte{0});
    CHECK(mapped_rss(region.data(), pages * 4096) == 0);  // reads map the shared zero page
    region.data()[3 * 4096] = std::byte{42};
    std::this_thread::sleep_for(200ms);  // the evictor's timer passes
    const zpage::RegionStats s = region.stats();
    CHECK(s.swap_outs == 0);
    CHECK(s.zero_fills == s.faults);
    CHECK(region.data()[3 * 4096] == std::byte{42});
    // An explicit eviction takes cold pages; they come back as they were.
    CHECK(region.evict(pages) > 0);
    CHECK(region.data()[3 * 4096] == std::byte{42});
    // The handler counts a swap-in after the copy that woke this thread: wait for its count.
    for (int tries = 0; tries < 1000 && region.stats().swap_ins == 0; ++tries) std::this_thread::sleep_for(1ms);
    CHECK(region.stats().swap_ins >= 1);
    CHECK(store.stats().mem_used_total < store.stats().orig_data_size);
}

// A first write to a page never written gets a page of zeros of its own. Given the shared zero
// page, the write would copy it (a second fault, with a TLB flush). The kernel counts a thread's
// completed faults (ru_minflt): one served in the faulting thread not at all (it ends in SIGBUS,
// and the retried access finds the page), so there the copy's fault shows. With handler threads
// the retried access is the fault counted, the copy part of it: there the count is one a page.
TEST_CASE_TEMPLATE("a first write to a page never written takes one fault, not a second to copy the zero page", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 512;
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * 4096, .fault_service = Service::value});
    const auto thread_faults = [] {
        rusage usage{};
        getrusage(RUSAGE_THREAD, &usage);
        return static_cast<std::size_t>(usage.ru_minflt);
    };
    const std::size_t before = thread_faults();
    for (std::size_t p = 0; p < pages; ++p) region.data()[p * 4096 + p % 4096] = std::byte{0x5a};
    const std::size_t counted = thread_faults() - before;
    // Slack for the test's own first touches: its stack and code, and under ASan the region's
    // shadow (a page for every 8 written). A second fault a page would be `pages` more.
    const std::size_t slack = pages / 4;
    if (Service::value == zpage::FaultService::faulting_thread)
        CHECK(counted <= slack);
    else
        CHECK(counted <= pages + slack);
    // A handler counts a fault after the copy that woke this thread: wait for its count.
    for (int tries = 0; tries < 1000 && region.stats().zero_fills < pages; ++tries) std::this_thread::sleep_for(1ms);
    CHECK(region.stats().zero_fills == pages);
    for (std::size_t p = 0; p < pages; ++p) {
        CHECK(region.data()[p * 4096 + p % 4096] == std::byte{0x5a});
        CHECK(region.data()[p * 4096 + (p + 1) % 4096] == std::byte{0});
    }
    CHECK(mapped_rss(region.data(), pages * 4096) == pages * 4096);
}

TEST_CASE("faults served in the faulting thread: two regions side by side, the program's own SIGBUS handler, a system call on an evicted page") {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 1024;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    zpage::Lz4Store store_a(zpage::StoreConfig{.capacity_pages = pages}), store_b(zpage::StoreConfig{.capacity_pages = pages});
    const zpage::RegionConfig config{.bytes = pages * 4096, .resident_budget_bytes = 128 * 4096,
                                     .fault_service = zpage::FaultService::faulting_thread};
    Region a(store_a, config), b(store_b, config);
    auto expected = [&](std::size_t region, std::size_t i) -> const zpage_test::Page& {
        return sample[(i * 3 + region * 7) % sample.size()];
    };
    for (std::size_t i = 0; i < pages; ++i) {
        std::memcpy(a.data() + i * 4096, expected(0, i).data(), 4096);
        std::memcpy(b.data() + i * 4096, expected(1, i).data(), 4096);
    }
    auto wrong_pages = [&] {
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < pages; ++i) {
            wrong += std::memcmp(a.data() + i * 4096, expected(0, i).data(), 4096) != 0;
            wrong += std::memcmp(b.data() + i * 4096, expected(1, i).data(), 4096) != 0;
        }
        return wrong;
    };
    CHECK(wrong_pages() == 0);
    CHECK(a.stats().swap_outs > 0);
    CHECK(b.stats().swap_ins > 0);

    // A handler the program installs afterwards, which lets zpage resolve the regions' faults
    // first (zpage::serve_region_fault): the regions work behind it, and a SIGBUS of its own (a
    // file mapping read past the file's end) is still its own.
    {
        const zpage_test::SigbusReader sigbus_reader;
        REQUIRE(sigbus_reader.installed());
        while (a.evict(pages) > 0 || b.evict(pages) > 0) {
        }
        CHECK(wrong_pages() == 0);
        FILE* empty = std::tmpfile();
        REQUIRE(empty != nullptr);
        void* past_end = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, ::fileno(empty), 0);
        REQUIRE(past_end != MAP_FAILED);
        std::byte value{};
        CHECK_FALSE(read_or_sigbus(static_cast<const std::byte*>(past_end), value));
        ::munmap(past_end, 4096);
        std::fclose(empty);
    }

    // The kernel does not raise SIGBUS for a page a system call reads: it fails with EFAULT, and
    // the page stays where it was; touched by the program first, it goes through.
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    while (a.evict(pages) > 0) {
    }
    REQUIRE(a.stats().resident_pages == 0);
    errno = 0;
    CHECK(::write(pipe_fds[1], a.data() + 5 * 4096, 4096) == -1);
    CHECK(errno == EFAULT);
    volatile std::byte touched = a.data()[5 * 4096];
    static_cast<void>(touched);
    CHECK(::write(pipe_fds[1], a.data() + 5 * 4096, 4096) == 4096);
    zpage_test::Page through{};
    CHECK(::read(pipe_fds[0], through.data(), 4096) == 4096);
    CHECK(std::memcmp(through.data(), expected(0, 5).data(), 4096) == 0);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    CHECK(wrong_pages() == 0);
}

TEST_CASE("a handler stopped while threads fault on the region: they get SIGBUS, not a wait forever") {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    HoldableStore store(zpage::StoreConfig{.capacity_pages = pages});
    zpage::CompressedRegion<HoldableStore> region(
        store, {.bytes = pages * 4096, .resident_budget_bytes = 64 * 4096, .handler_stall_ms = 300});
    std::byte* const base = region.data();
    for (std::size_t i = 0; i < pages; ++i) std::memset(base + i * 4096, static_cast<int>(i % 251) + 1, 4096);
    static_cast<void>(region.evict(pages));
    REQUIRE(region.stats().swapped_pages > pages / 2);
    base[0] = std::byte{9};  // resident from here on: its bytes stay readable after the failover
    REQUIRE(region.stats().handler_stalls == 0);

    const zpage_test::SigbusReader sigbus_reader;
    REQUIRE(sigbus_reader.installed());
    store.hold = true;
    zpage_test::Watchdog watchdog(10000ms, "stopped handler");
    // The first toucher's fault stops the handler in the store; the others' wait behind it.
    constexpr std::size_t touchers = 3;
    std::atomic<std::size_t> sigbus{0}, read{0};
    auto toucher = [&](std::size_t t) {
        auto& me = watchdog.enroll("toucher " + std::to_string(t));
        me.working("read an evicted page", 100 + t);
        std::byte value{};
        if (read_or_sigbus(base + (100 + t) * 4096, value)) ++read;
        else ++sigbus;
        me.done();
        watchdog.leave(me);
    };
    std::thread first(toucher, 0);
    while (store.held.load() == 0) std::this_thread::sleep_for(1ms);
    std::vector<std::thread> others;
    for (std::size_t t = 1; t < touchers; ++t) others.emplace_back(toucher, t);
    first.join();
    for (std::thread& t : others) t.join();
    CHECK(sigbus.load() == touchers);
    CHECK(read.load() == 0);
    CHECK(region.stats().handler_stalls == 1);
    CHECK(base[0] == std::byte{9});
    store.hold = false;  // the handler comes back, and the region can be destroyed
}

TEST_CASE("a bad configuration is refused, naming the field") {
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 64});
    CHECK_THROWS_WITH_AS(Region(store, {.bytes = 4097}), doctest::Contains("bytes"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(Region(store, {.bytes = 65 * 4096}), doctest::Contains("fewer than the region"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(Region(store, {.bytes = 64 * 4096, .handler_threads = 0}), doctest::Contains("handler_threads"),
                         std::invalid_argument);
}
