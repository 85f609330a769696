// zpage-bench's kernel side: the same pages through the kernel's zram (/dev/zram0), written and
// read back with O_DIRECT requests for a side-by-side comparison: throughput from 1 MiB requests,
// the kernel's best case; per-page latency from one-page requests, as zpage stores and loads a
// page per call. Needs root and an unused device; a device in use is never touched.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "posix_io.hpp"
#include "types.hpp"

namespace zpage_bench {

struct KernelProbe {
    // available: root, and /dev/zram0 exists and is unused. unavailable: the run goes on without the
    // kernel (why says what is missing). occupied: /dev/zram0 is in use; the caller stops.
    enum class State { available, unavailable, occupied } state = State::unavailable;
    std::string why;                      // one line, when not available
    std::vector<std::string> algorithms;  // comp_algorithm's names, the current one unbracketed
    bool has_algorithm_params = false;    // Linux 6.12+: per-algorithm level (and dictionary)
};

namespace detail {

inline const std::string zram_sysfs = "/sys/block/zram0/";
inline const std::string zram_device = "/dev/zram0";
inline constexpr std::size_t zram_request_bytes = std::size_t{1} << 20;
// zram's table entry per page of disksize (struct zram_table_entry: handle, then flags, size and
// access time), which mm_stat leaves out of mem_used_total.
inline constexpr std::size_t zram_slot_bytes = 16;

// A sysfs attribute's first line, or nullopt (errno set) if it cannot be read.
inline std::optional<std::string> read_zram_attribute(const std::string& name) {
    std::string text;
    if (!posix::read_small_file(zram_sysfs + name, text)) return std::nullopt;
    text.resize(std::min(text.size(), text.find('\n')));
    return text;
}

inline std::string binary_size_text(std::uint64_t bytes) {
    const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    std::size_t unit = 0;
    double value = static_cast<double>(bytes);
    while (value >= 1024 && unit + 1 < std::size(units)) {
        value /= 1024;
        ++unit;
    }
    std::ostringstream out;
    out.precision(value < 10 && unit > 0 ? 2 : 4);
    out << value << ' ' << units[unit];
    return out.str();
}

// "lzo-rle lzo [lz4] zstd" -> {"lzo-rle", "lzo", "lz4", "zstd"}.
inline std::vector<std::string> parse_algorithms(const std::string& comp_algorithm) {
    std::vector<std::string> names;
    std::istringstream words(comp_algorithm);
    for (std::string word; words >> word;) {
        if (word.size() > 2 && word.front() == '[' && word.back() == ']') word = word.substr(1, word.size() - 2);
        names.push_back(word);
    }
    return names;
}

// The lines of a /proc table (swaps, mounts) whose first field is the device; their second field.
inline std::vector<std::string> proc_table_uses(const std::string& table, const std::string& device) {
    std::string text;
    std::vector<std::string> uses;
    if (!posix::read_small_file(table, text)) return uses;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string first, second;
        if (fields >> first >> second && first == device) uses.push_back(second);
    }
    return uses;
}

// What uses /dev/zram0, in a few words ("swap, 8 GiB"), or nothing if it is unused.
inline std::optional<std::string> zram_user() {
    const std::string disksize_text = read_zram_attribute("disksize").value_or("0");
    const std::string size = binary_size_text(std::strtoull(disksize_text.c_str(), nullptr, 10));
    if (!proc_table_uses("/proc/swaps", zram_device).empty()) return "swap, " + size;
    if (const auto mounts = proc_table_uses("/proc/mounts", zram_device); !mounts.empty())
        return "mounted on " + mounts.front() + ", " + size;
    std::error_code ec;
    if (const std::filesystem::directory_iterator holder(zram_sysfs + "holders", ec);
        !ec && holder != std::filesystem::directory_iterator())
        return "held by " + holder->path().filename().string() + ", " + size;
    if (read_zram_attribute("initstate").value_or("1") != "0" || disksize_text != "0")
        return "set up, disksize " + size;
    return std::nullopt;
}

inline std::string occupied_message(const std::string& user) {
    std::string message = zram_device + " is in use (" + user + "); zpage-bench never resets a device in use";
    if (user.rfind("set up", 0) == 0)
        message += " (if an interrupted run left it so and nothing uses it, echo 1 > " + zram_sysfs + "reset frees it)";
    return message;
}

}  // namespace detail

// Whether the kernel's zram can be used, never changing anything.
inline KernelProbe probe_kernel_zram() {
    KernelProbe probe;
    struct stat st {};
    if (::geteuid() != 0) {
        probe.why = "not running as root (configuring the kernel's zram needs root)";
        return probe;
    }
    if (::stat(detail::zram_sysfs.c_str(), &st) != 0) {
        probe.why = ::stat("/sys/module/zram", &st) == 0
                        ? "the zram module has no device zram0"
                        : "the kernel has no zram device (the zram module is not loaded: modprobe zram adds one)";
        return probe;
    }
    if (::stat(detail::zram_device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) {
        probe.why = "there is no block device " + detail::zram_device + " (the kernel has zram0, /dev lacks its node)";
        return probe;
    }
    const std::optional<std::string> algorithms = detail::read_zram_attribute("comp_algorithm");
    if (!algorithms) {
        probe.why = "cannot read " + detail::zram_sysfs + "comp_algorithm: " + posix::errno_text(errno);
        return probe;
    }
    probe.algorithms = detail::parse_algorithms(*algorithms);
    probe.has_algorithm_params = ::access((detail::zram_sysfs + "algorithm_params").c_str(), F_OK) == 0;
    if (const std::optional<std::string> user = detail::zram_user()) {
        probe.state = KernelProbe::State::occupied;
        probe.why = detail::occupied_message(*user);
        return probe;
    }
    probe.state = KernelProbe::State::available;
    return probe;
}

namespace detail {

// Resets /dev/zram0 once zpage-bench's own descriptor is closed. The kernel refuses (EBUSY) while
// the device is open: give a racing udev probe a second. Returns false (errno set) if it refuses.
inline bool reset_closed_zram() {
    for (int attempt = 1;; ++attempt) {
        if (posix::write_small_file(zram_sysfs + "reset", "1")) return true;
        if (errno != EBUSY || attempt == 50) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// Resets /dev/zram0 on destruction once armed: every path out of a run, errors included, leaves
// the device as it was found (unused, disksize 0).
class ZramReset {
public:
    ZramReset() = default;
    ZramReset(const ZramReset&) = delete;
    ZramReset& operator=(const ZramReset&) = delete;
    ~ZramReset() {
        if (armed_) reset_closed_zram();
    }
    void arm() noexcept { armed_ = true; }

private:
    bool armed_ = false;
};

// An anonymous mapping: page-aligned, as O_DIRECT needs.
class AlignedBuffer {
public:
    explicit AlignedBuffer(std::size_t bytes) : bytes_(bytes) {
        void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw BadInput("cannot allocate " + binary_size_text(bytes_) +
                           " for the kernel's I/O buffer: " + posix::errno_text(errno));
        data_ = static_cast<std::byte*>(p);
    }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { ::munmap(data_, bytes_); }
    [[nodiscard]] std::byte* data() const noexcept { return data_; }

private:
    std::size_t bytes_;
    std::byte* data_ = nullptr;
};

struct PhaseTiming {
    double seconds = 0;                        // wall clock, first request started to last one done
    std::vector<double> request_latencies_us;  // one per request, in offset order, its syscall included
};

// Moves buffer[0, total_bytes) to or from the device at the same offsets in requests of
// request_bytes (the last one may be shorter), split into `threads` contiguous shares run
// concurrently, timing each request on its own. progress hears of pages of page_size; it is
// called from the calling thread only, between polls, never inside a timed request.
inline PhaseTiming transfer(bool write, int fd, std::byte* buffer, std::size_t total_bytes, std::size_t request_bytes,
                            std::size_t page_size, unsigned threads, const Progress& progress) {
    using clock = std::chrono::steady_clock;
    const std::size_t requests = (total_bytes + request_bytes - 1) / request_bytes;
    threads = static_cast<unsigned>(std::clamp<std::size_t>(threads, 1, requests));

    // What a thread writes on every request is on cache lines no other thread writes: its byte
    // count in its own Share, its latencies in its own range of one vector sized before the clock
    // starts (two ranges meet in at most one line, written once by each side).
    struct alignas(64) Share {
        std::atomic<std::size_t> bytes_done{0};
        clock::time_point start, end;
        int error = 0;  // errno of a failed request (EIO for a short one)
        std::uint64_t error_offset = 0;
    };
    std::vector<Share> shares(threads);
    PhaseTiming timing;
    timing.request_latencies_us.resize(requests);
    double* const latencies_us = timing.request_latencies_us.data();
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::condition_variable finished_cv;
    unsigned finished = 0;

    const auto run_share = [&](unsigned t) {
        Share& share = shares[t];
        const std::size_t first = requests * t / threads, last = requests * (t + 1) / threads;
        share.start = clock::now();
        for (std::size_t r = first; r < last && !stop.load(std::memory_order_relaxed) &&
                                    !interrupted.load(std::memory_order_relaxed);
             ++r) {
            const std::size_t offset = r * request_bytes;
            const std::size_t length = std::min(request_bytes, total_bytes - offset);
            clock::time_point begin, end;
            ssize_t n;
            do {
                begin = clock::now();
                n = write ? ::pwrite(fd, buffer + offset, length, static_cast<off_t>(offset))
                          : ::pread(fd, buffer + offset, length, static_cast<off_t>(offset));
                end = clock::now();
            } while (n < 0 && errno == EINTR);
            if (n != static_cast<ssize_t>(length)) {
                share.error = n < 0 ? errno : EIO;
                share.error_offset = offset;
                stop = true;
                break;
            }
            latencies_us[r] = std::chrono::duration<double, std::micro>(end - begin).count();
            share.bytes_done.store(share.bytes_done.load(std::memory_order_relaxed) + length,
                                   std::memory_order_relaxed);
        }
        share.end = clock::now();
        const std::lock_guard lock(mutex);
        ++finished;
        finished_cv.notify_one();
    };

    try {
        std::vector<std::jthread> pool;
        // Declared after the pool, so destroyed first: if starting a thread or progress throws,
        // the workers stop before the pool joins them.
        struct StopOnExit {
            std::atomic<bool>& stop;
            ~StopOnExit() { stop = true; }
        } stop_on_exit{stop};
        for (unsigned t = 0; t < threads; ++t) pool.emplace_back(run_share, t);
        std::size_t pages_reported = 0;
        std::unique_lock lock(mutex);
        const auto report = [&] {
            std::size_t bytes_done = 0;
            for (const Share& share : shares) bytes_done += share.bytes_done.load(std::memory_order_relaxed);
            const std::size_t pages_done = bytes_done / page_size;
            if (progress && pages_done > pages_reported) {
                lock.unlock();
                progress(pages_done - pages_reported);
                lock.lock();
            }
            pages_reported = pages_done;
        };
        while (finished < threads) {
            finished_cv.wait_for(lock, std::chrono::milliseconds(100));
            report();
        }
        report();  // the workers may all have finished before the first wait
    } catch (const std::system_error& e) {
        throw BadInput(std::string("cannot start the kernel's I/O threads: ") + e.what());
    }

    if (interrupted.load()) throw Interrupted();  // the caller's guards reset the device
    clock::time_point start = shares.front().start, end = shares.front().end;
    for (const Share& share : shares) {
        if (share.error != 0)
            throw BadInput(std::string("cannot ") + (write ? "write to " : "read from ") + zram_device + " at offset " +
                           std::to_string(share.error_offset) + ": " + posix::errno_text(share.error));
        start = std::min(start, share.start);
        end = std::max(end, share.end);
    }
    timing.seconds = std::chrono::duration<double>(end - start).count();
    return timing;
}

// mm_stat's columns, in order: orig_data_size compr_data_size mem_used_total mem_limit
// mem_used_max same_pages pages_compacted huge_pages [huge_pages_since]; sizes in bytes, counts
// in the kernel's pages.
struct MmStat {
    std::uint64_t orig_data_size = 0, compr_data_size = 0, mem_used_total = 0, mem_used_max = 0, same_pages = 0,
                  huge_pages = 0;
};

inline MmStat read_mm_stat() {
    const std::optional<std::string> text = read_zram_attribute("mm_stat");
    if (!text) throw BadInput("cannot read " + zram_sysfs + "mm_stat: " + posix::errno_text(errno));
    std::istringstream in(*text);
    std::vector<std::uint64_t> columns;
    for (std::uint64_t value; in >> value;) columns.push_back(value);
    if (columns.size() < 8)
        throw BadInput(zram_sysfs + "mm_stat has " + std::to_string(columns.size()) +
                       " columns, not the 8 or more this tool reads: \"" + *text + "\"");
    return {columns[0], columns[1], columns[2], columns[4], columns[5], columns[7]};
}

}  // namespace detail

// Page passes a kernel run makes, each reported to progress: on one device, a store pass (two with
// steady) and a load pass in 1 MiB requests; on a device set up afresh, the same in one-page
// requests (with steady, its first store pass still in 1 MiB requests).
inline constexpr std::size_t kernel_zram_passes(bool steady) { return steady ? 6 : 4; }

// Stores the pages in the kernel's zram with kernel_algorithm (and level, through
// algorithm_params), reads them back and checks them, and reports as a RunResult labelled
// label_algo. The device is reset before, between its two set-ups and after, on every path.
//
// Throughput and mm_stat come from 1 MiB requests, the kernel's best case. The per-page latencies
// come from a pass of their own, one O_DIRECT request of one page per store or load, each timed
// with its syscall: a 1 MiB request's time over its pages hides the per-page tail that zpage's
// per-call figures show. That pass runs on the device reset and set up again, so that its stores,
// like zpage's, are a fresh store's; its pages are verified too. With `steady`, the pages are
// written once before each timed store pass, so that it replaces pages already stored, as a device
// in use does. progress hears of the pages of every pass (kernel_zram_passes).
inline RunResult run_kernel_zram(const PageSet& pages, const std::string& kernel_algorithm, std::optional<int> level,
                                 const std::string& label_algo, unsigned threads, const Progress& progress,
                                 bool steady = false) {
    if (pages.pages() == 0) throw BadInput("kernel zram: no pages to store");
    // zram's logical block is 4 KiB whatever the kernel's page size; O_DIRECT requests must be
    // whole blocks.
    if (pages.page_size % 4096 != 0)
        throw BadInput("kernel zram: page size " + std::to_string(pages.page_size) + " is not a multiple of 4096");
    const KernelProbe probe = probe_kernel_zram();
    if (probe.state == KernelProbe::State::occupied) throw BadInput(probe.why);
    if (probe.state != KernelProbe::State::available) throw BadInput("kernel zram: " + probe.why);
    std::string offered;
    for (const std::string& name : probe.algorithms) offered += (offered.empty() ? "" : " ") + name;
    if (std::find(probe.algorithms.begin(), probe.algorithms.end(), kernel_algorithm) == probe.algorithms.end())
        throw BadInput("the kernel's zram has no algorithm \"" + kernel_algorithm + "\" (it offers: " + offered + ")");
    if (level && !probe.has_algorithm_params)
        throw BadInput("this kernel's zram takes no compression level (it has no algorithm_params, new in Linux 6.12)");

    const std::size_t total_bytes = pages.bytes.size();
    const std::size_t disksize =
        (total_bytes + detail::zram_request_bytes - 1) / detail::zram_request_bytes * detail::zram_request_bytes;
    const auto configure = [](const std::string& attribute, const std::string& value, const std::string& failure) {
        if (!posix::write_small_file(detail::zram_sysfs + attribute, value))
            throw BadInput(failure + " (" + attribute + ": " + posix::errno_text(errno) + ")");
    };
    // Sets a reset device up for the run and opens it.
    const auto set_up = [&] {
        configure("comp_algorithm", kernel_algorithm,
                  "the kernel's zram refused algorithm \"" + kernel_algorithm + "\"");
        // Parameters attach to the algorithm until the next reset, and must be set before
        // disksize. lz4 takes the level as its acceleration (higher: faster and larger output);
        // lzo and lzo-rle accept a level and ignore it (Linux 6.18).
        if (level)
            configure("algorithm_params", "algo=" + kernel_algorithm + " level=" + std::to_string(*level),
                      "the kernel refused level " + std::to_string(*level) + " for " + kernel_algorithm);
        configure("disksize", std::to_string(disksize),
                  "the kernel refused a zram disksize of " + std::to_string(disksize));
        posix::UniqueFd device = posix::open_fd(detail::zram_device, O_RDWR | O_DIRECT);
        if (!device) throw BadInput("cannot open " + detail::zram_device + ": " + posix::errno_text(errno));
        return device;
    };

    detail::ZramReset reset_on_exit;  // declared before any descriptor: the device is closed, then reset
    // Taken right before configuring, so that a device set up since the probe is left alone.
    if (const std::optional<std::string> user = detail::zram_user()) throw BadInput(detail::occupied_message(*user));
    if (!posix::write_small_file(detail::zram_sysfs + "reset", "1")) {
        if (errno == EBUSY) throw BadInput(detail::occupied_message("open in another process"));
        throw BadInput(detail::zram_device + " could not be reset: " + posix::errno_text(errno));
    }
    reset_on_exit.arm();

    // The pages are staged in an aligned buffer before the clock starts, so that the timed passes
    // are the kernel's work alone; the same buffer takes the pages read back.
    const detail::AlignedBuffer buffer(total_bytes);
    struct Passes {
        detail::PhaseTiming stored, loaded;
        detail::MmStat stat;  // right after the stores
        bool verified = false;
    };
    // On a device set up afresh: a store pass (after an untimed one with steady), then a load pass
    // into the buffer filled with a pattern, so that a page not read back cannot pass for one.
    const auto store_and_load = [&](std::size_t request_bytes) {
        const posix::UniqueFd device = set_up();
        const auto pass = [&](bool write, std::size_t bytes) {
            return detail::transfer(write, device.get(), buffer.data(), total_bytes, bytes, pages.page_size, threads,
                                    progress);
        };
        Passes p;
        std::memcpy(buffer.data(), pages.bytes.data(), total_bytes);
        if (steady) pass(true, detail::zram_request_bytes);
        p.stored = pass(true, request_bytes);
        p.stat = detail::read_mm_stat();
        std::memset(buffer.data(), 0xA5, total_bytes);
        p.loaded = pass(false, request_bytes);
        p.verified = std::memcmp(buffer.data(), pages.bytes.data(), total_bytes) == 0;
        return p;
    };  // the device is closed on return: the kernel resets no open device

    const Passes bulk = store_and_load(detail::zram_request_bytes);
    if (!detail::reset_closed_zram())
        throw BadInput(detail::zram_device +
                       " could not be reset for the one-page latency pass: " + posix::errno_text(errno));
    const Passes per_page = store_and_load(pages.page_size);

    RunResult result = result_for(pages, "kernel-zram", label_algo, std::max(threads, 1u));
    const detail::MmStat& stat = bulk.stat;
    result.orig_bytes = stat.orig_data_size;
    result.compr_bytes = stat.compr_data_size;
    // mm_stat's mem_used_total counts zsmalloc's pages only; zram's table (one 16-byte slot per
    // page of disksize, allocated when disksize is set) is memory the device holds too, and a zpage
    // store counts its own table in mem_used_total: add it, so that both columns mean the same.
    const auto kernel_page_bytes = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t table_bytes = disksize / kernel_page_bytes * detail::zram_slot_bytes;
    result.mem_used_bytes = stat.mem_used_total + table_bytes;
    result.mem_used_max_bytes = stat.mem_used_max + table_bytes;
    // The kernel counts same and huge pages in its own pages; reported in units of page_size, as
    // every other figure of the row.
    result.same_pages = stat.same_pages * kernel_page_bytes / pages.page_size;
    result.huge_pages = stat.huge_pages * kernel_page_bytes / pages.page_size;
    const double mib = static_cast<double>(total_bytes) / (1 << 20);
    result.store_mib_s = bulk.stored.seconds > 0 ? mib / bulk.stored.seconds : 0;
    result.load_mib_s = bulk.loaded.seconds > 0 ? mib / bulk.loaded.seconds : 0;
    set_latencies(result, per_page.stored.request_latencies_us, per_page.loaded.request_latencies_us);
    result.verified = bulk.verified && per_page.verified;
    return result;
}

}  // namespace zpage_bench
