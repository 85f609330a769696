// zpage-bench --pid at the library level: a snapshot of a running child process holds every page
// of heap it wrote, byte-exact, at 4 and 16 KiB pages; both ways of finding resident pages agree;
// a missing, exited or forbidden process gives one clear line. Every child is killed and reaped.
#include "../benchmarks/zpage_bench/inputs.hpp"

#include <sys/prctl.h>

#include "bench_fixtures.hpp"
#include "fixtures.hpp"

namespace {
using zpage_test::bad_input_message;
using zpage_test::open_fds;

using zpage_bench::BadInput;
using zpage_bench::snapshot_process;

constexpr std::size_t tagged_pages = 2048;  // 8 MiB

// Page i of the child's heap: a 16-byte tag (a marker that no other memory holds, then i), then
// bytes that depend on i. Computed, never stored before the fork, so that the snapshot can only
// find the child's own copies.
std::uint64_t marker() { return 0x5A50414745ULL * 0x9E3779B97F4A7C15ULL ^ 0x7E57; }

void fill_tagged_page(std::byte* page, std::uint64_t index) {
    const std::uint64_t tag[2] = {marker(), index};
    std::memcpy(page, tag, sizeof tag);
    std::uint64_t x = index * 0xD1B54A32D192ED03ULL + 1;
    for (std::size_t off = sizeof tag; off < 4096; off += 8) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ULL;
        const std::uint64_t word = (off / 8) % 5 == 0 ? x : x & 0xFF;  // compressible, as heaps are
        std::memcpy(page + off, &word, 8);
    }
}

// A forked child killed and reaped when the test ends, pass or fail.
class Child {
public:
    explicit Child(pid_t pid) : pid_(pid) {}
    Child(Child&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
    [[nodiscard]] pid_t pid() const { return pid_; }

private:
    pid_t pid_;
};

// Forks a child that writes tagged_pages tagged pages into its heap, says so, and sleeps until killed.
Child start_tagged_child() {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // the child only allocates, writes and waits
        ::close(ready[0]);
        ::prctl(PR_SET_NAME, "zpage-snap-kid");
        auto* heap = static_cast<std::byte*>(std::malloc((tagged_pages + 1) * 4096));
        if (heap == nullptr) ::_exit(1);
        const auto aligned = (reinterpret_cast<std::uintptr_t>(heap) + 4095) / 4096 * 4096;
        auto* pages = heap + (aligned - reinterpret_cast<std::uintptr_t>(heap));
        for (std::size_t i = 0; i < tagged_pages; ++i) fill_tagged_page(pages + i * 4096, i);
        const char byte = 1;
        if (::write(ready[1], &byte, 1) != 1) ::_exit(1);
        for (;;) ::pause();
    }
    Child child(pid);
    ::close(ready[1]);
    char byte = 0;
    const ssize_t n = ::read(ready[0], &byte, 1);
    ::close(ready[0]);
    REQUIRE(n == 1);
    return child;
}

// Which tagged pages the set holds byte-exact, searching each 4 KiB of it for the tag.
std::vector<bool> find_tagged_pages(const zpage_bench::PageSet& set) {
    std::vector<bool> found(tagged_pages, false);
    std::vector<std::byte> expected(4096);
    for (std::size_t off = 0; off + 4096 <= set.bytes.size(); off += 4096) {
        std::uint64_t tag[2];
        std::memcpy(tag, set.bytes.data() + off, sizeof tag);
        if (tag[0] != marker() || tag[1] >= tagged_pages) continue;
        fill_tagged_page(expected.data(), tag[1]);
        if (std::memcmp(expected.data(), set.bytes.data() + off, 4096) == 0) found[tag[1]] = true;
    }
    return found;
}

}  // namespace

TEST_CASE("a snapshot of a running child holds every page it wrote, byte-exact") {
    const Child child = start_tagged_child();
    for (const std::size_t page_size : {std::size_t{4096}, std::size_t{16384}}) {
        CAPTURE(page_size);
        const zpage_bench::PageSet set = snapshot_process(child.pid(), page_size);
        CHECK(set.name == "pid " + std::to_string(child.pid()) + " (zpage-snap-kid)");
        CHECK(set.page_size == page_size);
        CHECK(set.bytes.size() % page_size == 0);
        CHECK(set.pages() >= tagged_pages * 4096 / page_size);
        const std::vector<bool> found = find_tagged_pages(set);
        CHECK(std::count(found.begin(), found.end(), true) == static_cast<std::ptrdiff_t>(tagged_pages));
    }
}

TEST_CASE("PAGEMAP_SCAN and 8-byte pagemap entries find the same resident pages") {
    namespace d = zpage_bench::detail;
    const Child child = start_tagged_child();
    const std::string proc = "/proc/" + std::to_string(child.pid());
    std::string maps;
    REQUIRE(zpage_bench::posix::read_small_file(proc + "/maps", maps));
    const zpage_bench::posix::UniqueFd pagemap = zpage_bench::posix::open_fd(proc + "/pagemap", O_RDONLY);
    REQUIRE(pagemap);
    std::size_t resident_pages = 0;
    for (const d::AddressRange& range : d::swappable_ranges(maps)) {
        // A sanitizer's shadow (14 TiB) would take seconds of 8-byte entries: compare the rest.
        if (range.end - range.begin > (std::uint64_t{64} << 30)) continue;
        std::vector<d::AddressRange> by_ioctl, by_read;
        if (!d::scan_pages_by_ioctl(pagemap.get(), range, by_ioctl)) {
            MESSAGE("skipped: this kernel has no PAGEMAP_SCAN (Linux 6.7+)");
            return;
        }
        d::scan_pages_by_read(pagemap.get(), range, 4096, by_read);
        REQUIRE(by_ioctl.size() == by_read.size());
        for (std::size_t i = 0; i < by_read.size(); ++i) {
            CHECK(by_ioctl[i].begin == by_read[i].begin);
            CHECK(by_ioctl[i].end == by_read[i].end);
            resident_pages += (by_read[i].end - by_read[i].begin) / 4096;
        }
    }
    CHECK(resident_pages >= tagged_pages);
}

TEST_CASE("a process that does not exist, has exited or may not be read gives one clear line") {
    const std::size_t fds_before = open_fds();
    // The highest PID below pid_max that no process has.
    std::string pid_max_text;
    REQUIRE(zpage_bench::posix::read_small_file("/proc/sys/kernel/pid_max", pid_max_text));
    pid_t unused = static_cast<pid_t>(std::stol(pid_max_text)) - 1;
    while (::kill(unused, 0) == 0 || errno != ESRCH) --unused;
    CHECK(bad_input_message([&] { snapshot_process(unused, 4096); }) ==
          "no process with PID " + std::to_string(unused));
    CHECK(bad_input_message([&] { snapshot_process(0, 4096); }) == "no process with PID 0");

    {  // a zombie: exited, not yet reaped
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) ::_exit(0);
        const Child zombie(pid);
        siginfo_t info{};
        REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
        const std::string message = bad_input_message([&] { snapshot_process(pid, 4096); });
        CHECK(message.find("pid " + std::to_string(pid) + " (") == 0);
        CHECK(message.find(") has exited") != std::string::npos);
    }

    // Another user's process: as root, a child that drops to nobody reads its root parent.
    if (::geteuid() == 0) {
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(3);
            try {
                snapshot_process(parent, 4096);
            } catch (const BadInput& e) {
                const std::string message = e.what();
                ::_exit(message.find("Permission denied") != std::string::npos &&
                                message.find("needs root, or the same user and ptrace permission") != std::string::npos
                            ? 0
                            : 2);
            } catch (...) {
            }
            ::_exit(1);
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);  // 1: no error at all, 2: another message, 3: could not drop root
    } else {
        const std::string message = bad_input_message([&] { snapshot_process(1, 4096); });
        CHECK(message.find("Permission denied") != std::string::npos);
    }
    CHECK(open_fds() == fds_before);
}
