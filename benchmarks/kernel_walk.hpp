// bench_region_walk's kernel side: the same walk (walk.hpp, same orders) the kernel's way of
// giving one process compressed swap: a child process in a memory cgroup whose limit is the
// resident budget, with /dev/zram0 (lz4) as swap and vm.page-cluster 0, so that
// every page beyond the budget lives compressed in zram and a touch of one is a swap-in.
//
// Needs root, an unused /dev/zram0 with lz4, and a memory cgroup (v1, or v2 with the memory
// controller enabled for this process's cgroup's children). Without one of them, or if a step of
// the set-up is refused, run_kernel_walk() says why in one line and changes nothing that stays.
//
// What a run changes, undone on every way out (errors; SIGINT, SIGTERM and SIGHUP, caught for the
// run's duration, end it at the next check, kill the child and undo the rest): /dev/zram0 (set up,
// swapped on, swapped off and reset), vm.page-cluster (0, then its old value), and a cgroup
// zpage-walk-PID made under this process's own memory cgroup, so that the child stays inside
// whatever limits this process is under (removed once the child is reaped). Not undone if this
// process is killed by SIGKILL or crashes: then swapoff /dev/zram0, echo 1 >
// /sys/block/zram0/reset, restore vm.page-cluster (3 by default) and rmdir the zpage-walk-PID
// cgroup by hand. The swap area's label is "zpage-walk", so that blkid names a leftover. The
// child dies with this process (PR_SET_PDEATHSIG), so no walk outlives it.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "walk.hpp"
#include "zpage_bench/kernel_zram.hpp"
#include "zpage_bench/posix_io.hpp"
#include "zpage_bench/types.hpp"

namespace region_walk {

struct KernelRow {
    WalkResult walk;
    std::uint64_t swap_ins = 0, swap_outs = 0;  // pswpin, pswpout over the walk (/proc/vmstat: machine-wide)
    std::uint64_t zram_orig_bytes = 0;          // zram's orig_data_size after the walk: the pages it holds
    std::uint64_t zram_used_bytes = 0;          // zram's mem_used_total after the walk: the memory they take
};

struct KernelWalk {
    std::string missing;          // why there are no kernel rows, one line; empty when the walk ran
    std::vector<KernelRow> rows;  // one per order, in the orders' order
    std::string setup;            // what the walk ran under, one line
    std::string note;             // what may bias the rows (another swap active), or empty
};

namespace kernel_detail {

using zpage_bench::posix::errno_text;
using zpage_bench::posix::read_small_file;
using zpage_bench::posix::write_small_file;

// A reason the kernel's rows cannot be had; the caller goes on without them.
struct Missing : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr int swap_priority = 32767;  // the highest: zram0 is used before any other swap
inline constexpr std::size_t max_orders = 4;
inline constexpr int caught_signals[] = {SIGINT, SIGTERM, SIGHUP};

inline std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    return parts;
}

inline bool has_word(const std::string& list, char separator, const std::string& word) {
    const std::vector<std::string> words = split(list, separator);
    return std::find(words.begin(), words.end(), word) != words.end();
}

// The value of `key` in a file of "key value" lines (/proc/vmstat, memory.events), or nullopt.
inline std::optional<std::uint64_t> keyed_value(const std::string& path, const std::string& key) {
    std::string text;
    if (!read_small_file(path, text)) return std::nullopt;
    std::istringstream lines(text);
    for (std::string name; lines >> name;) {
        std::uint64_t value = 0;
        if (!(lines >> value)) return std::nullopt;
        if (name == key) return value;
    }
    return std::nullopt;
}

inline std::optional<std::string> first_line(const std::string& path) {
    std::string text;
    if (!read_small_file(path, text)) return std::nullopt;
    text.resize(std::min(text.size(), text.find('\n')));
    return text;
}

inline std::string mib_text(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return text;
}

// Where this process's memory cgroup is: its directory, and the hierarchy's version.
struct CgroupPlace {
    int version = 0;
    std::string dir;
};

inline CgroupPlace find_memory_cgroup() {
    std::string mountinfo, own;
    if (!read_small_file("/proc/self/mountinfo", mountinfo) || !read_small_file("/proc/self/cgroup", own))
        throw Missing("cannot read /proc/self/mountinfo or /proc/self/cgroup: " + errno_text(errno));
    // mountinfo: id parent dev root mountpoint options... - fstype source superoptions
    std::string v1_mount, v1_root, v2_mount, v2_root;
    for (const std::string& line : split(mountinfo, '\n')) {
        const std::vector<std::string> f = split(line, ' ');
        const auto dash = std::find(f.begin(), f.end(), "-");
        if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
        const std::string& fstype = dash[1];
        if (fstype == "cgroup" && v1_mount.empty() && has_word(dash[3], ',', "memory")) {
            v1_mount = f[4];
            v1_root = f[3];
        } else if (fstype == "cgroup2" && v2_mount.empty()) {
            v2_mount = f[4];
            v2_root = f[3];
        }
    }
    // /proc/self/cgroup: hierarchy-id:controllers:path, "0::path" for cgroup v2.
    std::string v1_path, v2_path;
    for (const std::string& line : split(own, '\n')) {
        const std::size_t first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
        if (has_word(controllers, ',', "memory")) v1_path = path;
        if (line.compare(0, first, "0") == 0 && controllers.empty()) v2_path = path;
    }
    // The path is from the hierarchy's root; the mount shows it from `root` down.
    const auto directory = [](const std::string& mount, const std::string& root, std::string path) {
        if (root != "/") {
            if (path.compare(0, root.size(), root) != 0)
                throw Missing("this process's memory cgroup " + path + " is outside the mounted part " + root);
            path.erase(0, root.size());
        }
        return path == "/" || path.empty() ? mount : mount + path;
    };
    if (!v1_mount.empty() && !v1_path.empty()) return {1, directory(v1_mount, v1_root, v1_path)};
    if (v2_mount.empty() || v2_path.empty())
        throw Missing("no memory cgroup: neither a cgroup v1 memory hierarchy nor cgroup v2 is mounted");
    CgroupPlace place{2, directory(v2_mount, v2_root, v2_path)};
    // Enabling the controller here would change the caller's own cgroup (and cgroup v2 refuses it
    // in a cgroup with processes in it): only a cgroup that delegates it already will do.
    if (!has_word(first_line(place.dir + "/cgroup.subtree_control").value_or(""), ' ', "memory"))
        throw Missing("the cgroup v2 memory controller is not enabled for the children of " + place.dir);
    return place;
}

// The swap areas in use other than zram0: "device (priority P)".
inline std::vector<std::string> other_swaps() {
    std::string text;
    std::vector<std::string> swaps;
    if (!read_small_file("/proc/swaps", text)) return swaps;
    for (const std::string& line : split(text, '\n')) {
        std::istringstream fields(line);
        std::string device, type, size, used, priority;
        if (!(fields >> device >> type >> size >> used >> priority) || device == "Filename" ||
            device == zpage_bench::detail::zram_device)
            continue;
        swaps.push_back(device + " (priority " + priority + ")");
    }
    return swaps;
}

// The fork below copies only the calling thread: another thread holding a lock (malloc's, a
// store's) would leave it held in the child forever.
inline std::size_t thread_count() {
    std::string status;
    if (!read_small_file("/proc/self/status", status)) return 0;
    const std::size_t at = status.find("\nThreads:");
    return at == std::string::npos ? 0 : std::strtoul(status.c_str() + at + 9, nullptr, 10);
}

// The swap header mkswap writes (union swap_header in linux/swap.h, version 1): 1024 bytes left
// for boot blocks, then version, last_page and nr_badpages as native 32-bit words, a 16-byte UUID
// and a 16-byte label; "SWAPSPACE2" closes the first page. last_page is the area's last usable page.
inline void write_swap_header(const std::string& device, std::uint64_t device_bytes) {
    const auto page_bytes = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t last_page = device_bytes / page_bytes - 1;
    if (last_page == 0 || last_page > std::numeric_limits<std::uint32_t>::max())
        throw Missing("a swap area of " + mib_text(device_bytes) + " cannot be described");
    std::vector<char> header(page_bytes, 0);
    const std::uint32_t words[3] = {1, static_cast<std::uint32_t>(last_page), 0};
    std::memcpy(header.data() + 1024, words, sizeof words);
    std::memcpy(header.data() + 1024 + sizeof words + 16, "zpage-walk", 10);
    std::memcpy(header.data() + page_bytes - 10, "SWAPSPACE2", 10);
    const zpage_bench::posix::UniqueFd fd = zpage_bench::posix::open_fd(device, O_WRONLY);
    if (!fd || ::pwrite(fd.get(), header.data(), page_bytes, 0) != static_cast<ssize_t>(page_bytes) ||
        ::fsync(fd.get()) != 0)
        throw Missing("cannot write a swap header to " + device + ": " + errno_text(errno));
}  // closed here: the device must be closed before it can be reset

// For the run's duration, SIGINT, SIGTERM and SIGHUP only set zpage_bench::interrupted, without
// SA_RESTART, so that the waits below return and check it; the old dispositions come back last.
class SignalGuard {
public:
    SignalGuard() {
        struct sigaction on_signal {};
        on_signal.sa_handler = [](int) { zpage_bench::interrupted.store(true); };
        sigemptyset(&on_signal.sa_mask);
        for (std::size_t i = 0; i < std::size(caught_signals); ++i)
            ::sigaction(caught_signals[i], &on_signal, &old_[i]);
    }
    SignalGuard(const SignalGuard&) = delete;
    SignalGuard& operator=(const SignalGuard&) = delete;
    ~SignalGuard() {
        for (std::size_t i = 0; i < std::size(caught_signals); ++i) ::sigaction(caught_signals[i], &old_[i], nullptr);
    }

private:
    std::array<struct sigaction, std::size(caught_signals)> old_{};
};

inline void check_interrupted() {
    if (zpage_bench::interrupted.load()) throw zpage_bench::Interrupted();
}

// vm.page-cluster at 0 (one page per swap-in, no readahead: a region reads none ahead), its old value
// restored on destruction.
class PageCluster {
public:
    PageCluster() {
        const std::optional<std::string> old = first_line(path);
        if (!old) throw Missing("cannot read " + std::string(path) + ": " + errno_text(errno));
        old_ = *old;
        if (!write_small_file(path, "0")) throw Missing("cannot set " + std::string(path) + ": " + errno_text(errno));
    }
    PageCluster(const PageCluster&) = delete;
    PageCluster& operator=(const PageCluster&) = delete;
    ~PageCluster() {
        if (!write_small_file(path, old_))
            std::fprintf(stderr, "bench_region_walk: could not restore %s to %s: %s\n", path, old_.c_str(),
                         errno_text(errno).c_str());
    }
    [[nodiscard]] const std::string& old() const { return old_; }

private:
    static constexpr const char* path = "/proc/sys/vm/page-cluster";
    std::string old_;
};

// A swap area in use from construction to destruction.
class SwapOn {
public:
    explicit SwapOn(std::string device) : device_(std::move(device)) {
        const int flags = SWAP_FLAG_PREFER | ((swap_priority << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);
        if (::swapon(device_.c_str(), flags) != 0) throw Missing("swapon " + device_ + ": " + errno_text(errno));
    }
    SwapOn(const SwapOn&) = delete;
    SwapOn& operator=(const SwapOn&) = delete;
    ~SwapOn() {
        // swapoff gives up (EINTR) when a signal is pending while it brings pages back; the signal
        // is handled on the way out of the call, so trying again gets further.
        for (int attempt = 0; attempt < 100; ++attempt) {
            if (::swapoff(device_.c_str()) == 0) return;
            if (errno != EINTR) break;
        }
        std::fprintf(stderr, "bench_region_walk: could not swapoff %s (%s): run swapoff %s, then echo 1 > %sreset\n",
                     device_.c_str(), errno_text(errno).c_str(), device_.c_str(),
                     zpage_bench::detail::zram_sysfs.c_str());
    }

private:
    std::string device_;
};

// A cgroup directory, removed on destruction (which must come after its last process is reaped).
class CgroupDir {
public:
    explicit CgroupDir(std::string path) : path_(std::move(path)) {
        if (::mkdir(path_.c_str(), 0755) != 0) throw Missing("cannot create the cgroup " + path_ + ": " + errno_text(errno));
    }
    CgroupDir(const CgroupDir&) = delete;
    CgroupDir& operator=(const CgroupDir&) = delete;
    ~CgroupDir() {
        // EBUSY while the kernel still counts a task that has exited: it passes within moments.
        for (int attempt = 0; attempt < 100; ++attempt) {
            if (::rmdir(path_.c_str()) == 0) return;
            if (errno != EBUSY) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::fprintf(stderr, "bench_region_walk: could not remove the cgroup %s: %s\n", path_.c_str(),
                     errno_text(errno).c_str());
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
    void set(const std::string& name, const std::string& value) const {
        if (!write_small_file(file(name), value))
            throw Missing("cannot set " + file(name) + " to " + value + ": " + errno_text(errno));
    }

private:
    std::string path_;
};

// The forked child, killed and reaped on destruction unless reaped already.
class Child {
public:
    explicit Child(pid_t pid) : pid_(pid) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        reap();
    }
    [[nodiscard]] pid_t pid() const { return pid_; }
    void kill() const { ::kill(pid_, SIGKILL); }
    // Waits for the child to end; its wait status.
    int reap() {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_;
};

// What the child sends back through its pipe, all of it in one piece.
struct ChildReport {
    char error[240] = {};  // empty if the walks ran
    std::size_t rows = 0;
    std::array<KernelRow, max_orders> row{};
};
static_assert(std::is_trivially_copyable_v<ChildReport>);

inline std::uint64_t vmstat(const char* key) { return keyed_value("/proc/vmstat", key).value_or(0); }

// The child: joins the cgroup, maps and fills the region (its pages charged to the cgroup, so
// that all but the budget goes to zram), walks it and reports. It never returns and never unwinds
// into the caller's frames: their guards are the parent's to run. The corpus and the orders are
// the parent's memory, shared copy-on-write and only read here, so they are not charged to the
// cgroup. What is charged besides the region (the walk's vector of slow touches, 8 bytes a touch,
// up to 1 MiB at 512 MiB, and a few stack and heap pages) comes out of the kernel's budget, where
// zpage's budget counts the region's pages only: a slight handicap for the kernel, kept so that
// both sides run the one walk function.
[[noreturn]] inline void child_main(int out, pid_t parent, const std::string& cgroup_procs,
                                    const std::vector<std::byte>& corpus, std::size_t region_bytes,
                                    const std::vector<Order>& orders) noexcept {
    // The parent's handler only sets a flag nothing here reads: a signal must end the child.
    for (const int sig : caught_signals) ::signal(sig, SIG_DFL);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent || zpage_bench::interrupted.load())
        ::_exit(1);
    ChildReport report;
    try {
        if (!write_small_file(cgroup_procs, std::to_string(::getpid())))
            throw std::runtime_error("cannot join the cgroup (" + cgroup_procs + "): " + errno_text(errno));
        void* mapped = ::mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) throw std::runtime_error("cannot map the region: " + errno_text(errno));
        auto* region = static_cast<std::byte*>(mapped);
        // 4 KiB pages, as zpage's region has: a huge page would be swapped as 512 of them.
        ::madvise(region, region_bytes, MADV_NOHUGEPAGE);
        const std::size_t corpus_pages = corpus.size() / page;
        for (std::size_t p = 0; p < region_bytes / page; ++p)
            std::memcpy(region + p * page, corpus.data() + (p % corpus_pages) * page, page);
        for (const Order& order : orders) {
            KernelRow& row = report.row[report.rows++];
            const std::uint64_t ins = vmstat("pswpin"), outs = vmstat("pswpout");
            row.walk = walk(region, order.pages);
            row.swap_ins = vmstat("pswpin") - ins;
            row.swap_outs = vmstat("pswpout") - outs;
            const zpage_bench::detail::MmStat stat = zpage_bench::detail::read_mm_stat();
            row.zram_orig_bytes = stat.orig_data_size;
            row.zram_used_bytes = stat.mem_used_total;
        }
    } catch (const std::exception& e) {
        std::snprintf(report.error, sizeof report.error, "%s", e.what());
        if (report.error[0] == '\0') report.error[0] = '?';
    } catch (...) {
        std::snprintf(report.error, sizeof report.error, "an unknown exception");
    }
    const bool sent = zpage_bench::posix::write_all(out, &report, sizeof report);
    ::_exit(sent && report.error[0] == '\0' ? 0 : 1);
}

// When a walk's cgroup is left under dir by a process that is gone: what such a process left
// (it was killed by SIGKILL, or crashed) and how to undo it by hand; else nothing.
inline std::string leftover_hint(const std::string& dir) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string(), prefix = "zpage-walk-";
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        const auto pid = static_cast<pid_t>(std::strtol(name.c_str() + prefix.size(), nullptr, 10));
        if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
        return "; a bench_region_walk (pid " + std::to_string(pid) +
               ") ended without undoing its set-up: if nothing else uses zram0, swapoff " +
               zpage_bench::detail::zram_device + "; echo 1 > " + zpage_bench::detail::zram_sysfs +
               "reset; echo 3 > /proc/sys/vm/page-cluster (the default); rmdir " + entry.path().string();
    }
    return "";
}

inline std::string wait_status_text(int status) {
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
    return "exited with status " + std::to_string(WEXITSTATUS(status));
}

inline void walk_under_kernel_swap(KernelWalk& result, const std::vector<std::byte>& corpus, std::size_t region_bytes,
                                   std::size_t budget_bytes, const std::vector<Order>& orders) {
    namespace zb = zpage_bench;
    if (orders.size() > max_orders || corpus.size() < page) throw Missing("nothing to walk (no pages, or too many orders)");
    const zb::KernelProbe probe = zb::probe_kernel_zram();
    if (probe.state == zb::KernelProbe::State::unavailable) throw Missing(probe.why);
    const CgroupPlace place = find_memory_cgroup();
    if (probe.state == zb::KernelProbe::State::occupied) throw Missing(probe.why + leftover_hint(place.dir));
    if (std::find(probe.algorithms.begin(), probe.algorithms.end(), "lz4") == probe.algorithms.end())
        throw Missing("the kernel's zram has no lz4");
    if (const std::size_t threads = thread_count(); threads != 1)
        throw Missing("the process runs " + std::to_string(threads) + " threads; the kernel's walk forks, and needs one");
    // Taken before zram0 becomes swap. zram0 comes first and holds the whole region, but another
    // area takes what other processes swap, which pswpin/pswpout count as well.
    if (const std::vector<std::string> others = other_swaps(); !others.empty()) {
        result.note = "another swap is active:";
        for (const std::string& other : others) result.note += " " + other;
        result.note += "; zram0 comes first (priority " + std::to_string(swap_priority) +
                       "), but pswpin/pswpout count what other processes swap there";
    }
    // Room for the whole region and more: the swap area never fills, whatever the budget.
    const std::size_t mib = std::size_t{1} << 20;
    const std::size_t disksize = (region_bytes + std::max(region_bytes / 16, 4 * mib) + mib - 1) / mib * mib;

    // Declared in the order the machine is changed, so that it is undone in reverse: the child is
    // reaped, then its cgroup removed, swap turned off, zram0 reset, page-cluster restored and the
    // signal dispositions put back.
    const SignalGuard signals;
    const PageCluster page_cluster;
    check_interrupted();
    zb::detail::ZramReset reset_on_exit;  // the device is reset once swapoff has released it
    // Taken right before the reset, so that a device set up since the probe is left alone.
    if (const std::optional<std::string> user = zb::detail::zram_user())
        throw Missing(zb::detail::occupied_message(*user));
    if (!write_small_file(zb::detail::zram_sysfs + "reset", "1"))
        throw Missing(errno == EBUSY ? zb::detail::occupied_message("open in another process")
                                     : zb::detail::zram_device + " could not be reset: " + errno_text(errno));
    reset_on_exit.arm();
    const auto configure = [](const std::string& attribute, const std::string& value) {
        if (!write_small_file(zb::detail::zram_sysfs + attribute, value))
            throw Missing("the kernel refused zram0 " + attribute + " " + value + ": " + errno_text(errno));
    };
    configure("comp_algorithm", "lz4");
    configure("disksize", std::to_string(disksize));
    write_swap_header(zb::detail::zram_device, disksize);
    check_interrupted();
    const SwapOn swap(zb::detail::zram_device);
    const CgroupDir cgroup(place.dir + "/zpage-walk-" + std::to_string(::getpid()));
    if (place.version == 1) {
        cgroup.set("memory.limit_in_bytes", std::to_string(budget_bytes));
    } else {
        cgroup.set("memory.max", std::to_string(budget_bytes));
        cgroup.set("memory.swap.max", "max");
    }
    check_interrupted();

    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) throw Missing("pipe: " + errno_text(errno));
    const zb::posix::UniqueFd from_child(ends[0]);
    zb::posix::UniqueFd to_parent(ends[1]);
    std::fflush(nullptr);  // else the child's copy of unwritten output could be written twice
    const pid_t parent = ::getpid();
    Child child(::fork());
    if (child.pid() == 0)
        child_main(to_parent.get(), parent, cgroup.file(place.version == 1 ? "tasks" : "cgroup.procs"), corpus,
                   region_bytes, orders);
    if (child.pid() < 0) throw Missing("fork: " + errno_text(errno));
    to_parent.reset();  // so that the pipe ends when the child does

    // Polled, so that a signal that comes just before a wait still ends it within 100 ms.
    ChildReport report;
    std::size_t got = 0;
    while (got < sizeof report) {
        check_interrupted();  // the guards kill the child and undo the rest
        pollfd ready{from_child.get(), POLLIN, 0};
        const int polled = ::poll(&ready, 1, 100);
        if (polled < 0 && errno != EINTR) throw Missing("poll: " + errno_text(errno));
        if (polled <= 0) continue;
        const ssize_t n = ::read(from_child.get(), reinterpret_cast<char*>(&report) + got, sizeof report - got);
        if (n == 0) break;
        if (n < 0 && errno != EINTR) throw Missing("reading the kernel walk's report: " + errno_text(errno));
        if (n > 0) got += static_cast<std::size_t>(n);
    }
    const int status = child.reap();
    check_interrupted();
    if (got < sizeof report) {
        const std::uint64_t oom_kills =
            keyed_value(cgroup.file(place.version == 1 ? "memory.oom_control" : "memory.events"), "oom_kill")
                .value_or(0);
        throw Missing("the kernel's walk ended without a report (" + wait_status_text(status) +
                      (oom_kills > 0 ? ", by the cgroup's OOM killer" : "") + ")");
    }
    if (report.error[0] != '\0') {
        report.error[sizeof report.error - 1] = '\0';
        throw Missing(std::string("the kernel's walk failed: ") + report.error);
    }
    result.rows.assign(report.row.begin(), report.row.begin() + static_cast<std::ptrdiff_t>(report.rows));
    const std::string peak = first_line(cgroup.file(place.version == 1 ? "memory.max_usage_in_bytes" : "memory.peak"))
                                 .value_or("");
    const std::string swappiness =
        first_line(place.version == 1 ? cgroup.file("memory.swappiness") : "/proc/sys/vm/swappiness").value_or("?");
    result.setup = "zram0 lz4 swap of " + mib_text(disksize) + ", vm.page-cluster 0 (was " + page_cluster.old() +
                   "), memory cgroup v" + std::to_string(place.version) + " limit " + mib_text(budget_bytes) +
                   (peak.empty() ? "" : " (peak " + mib_text(std::strtoull(peak.c_str(), nullptr, 10)) + ")") +
                   ", swappiness " + swappiness;
}

}  // namespace kernel_detail

// The walk of each of `orders` over a region of region_bytes filled from corpus (whole pages, as
// zpage's side fills its region), in a child under the kernel's compressed swap with a limit of
// budget_bytes. Call it with this process single-threaded (it forks). Returns the rows, or why
// there are none; throws zpage_bench::Interrupted, once everything is undone, on SIGINT, SIGTERM
// or SIGHUP.
inline KernelWalk run_kernel_walk(const std::vector<std::byte>& corpus, std::size_t region_bytes,
                                  std::size_t budget_bytes, const std::vector<Order>& orders) {
    KernelWalk result;
    try {
        kernel_detail::walk_under_kernel_swap(result, corpus, region_bytes, budget_bytes, orders);
    } catch (const kernel_detail::Missing& e) {
        result.rows.clear();
        result.missing = e.what();
    } catch (const std::bad_alloc&) {
        result.rows.clear();
        result.missing = "out of memory setting the kernel's walk up";
    }
    return result;
}

}  // namespace region_walk
