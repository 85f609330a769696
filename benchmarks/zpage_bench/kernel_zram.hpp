// zpage-bench's kernel side: the same pages through the kernel's zram (/dev/zram0), written and
// read back with O_DIRECT 1 MiB requests, the kernel's best case, for a side-by-side comparison.
// Needs root and an unused device; a device in use is never touched.
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

// Resets /dev/zram0 on destruction once armed: every path out of a run, errors included, leaves
// the device as it was found (unused, disksize 0).
class ZramReset {
public:
    ZramReset() = default;
    ZramReset(const ZramReset&) = delete;
    ZramReset& operator=(const ZramReset&) = delete;
    ~ZramReset() {
        if (!armed_) return;
        // The kernel refuses (EBUSY) while the device is open; our descriptor is closed before
        // this runs, but give a racing udev probe a moment.
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (posix::write_small_file(zram_sysfs + "reset", "1") || errno != EBUSY) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
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
    double seconds = 0;                     // wall clock, first request started to last one done
    std::vector<double> page_latencies_us;  // one per request, in offset order: its time over its pages
};

// Moves buffer[0, total_bytes) to or from the device at the same offsets in 1 MiB requests,
// split into `threads` contiguous shares run concurrently. progress is called from the calling
// thread only, between polls, never inside a timed request.
inline PhaseTiming transfer(bool write, int fd, std::byte* buffer, std::size_t total_bytes, std::size_t page_size,
                            unsigned threads, const Progress& progress) {
    using clock = std::chrono::steady_clock;
    const std::size_t requests = (total_bytes + zram_request_bytes - 1) / zram_request_bytes;
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
    timing.page_latencies_us.resize(requests);
    double* const latencies_us = timing.page_latencies_us.data();
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
            const std::size_t offset = r * zram_request_bytes;
            const std::size_t length = std::min(zram_request_bytes, total_bytes - offset);
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
            // With 1 MiB requests the kernel's per-page latency is only visible amortised: the
            // request's time divided by the pages it carried.
            const double pages = static_cast<double>(length) / static_cast<double>(page_size);
            latencies_us[r] = std::chrono::duration<double, std::micro>(end - begin).count() / pages;
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
    std::uint64_t orig_data_size = 0, compr_data_size = 0, mem_used_total = 0, same_pages = 0, huge_pages = 0;
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
    return {columns[0], columns[1], columns[2], columns[5], columns[7]};
}

}  // namespace detail

// Stores the pages in the kernel's zram with kernel_algorithm (and level, through
// algorithm_params), reads them back and checks them, and reports as a RunResult labelled
// label_algo. The device is reset before and after, on every path. progress hears of the pages
// written, then of the pages read. With `steady`, the pages are written once before the timed
// write, so that it replaces pages already stored, as a device in use does.
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

    detail::ZramReset reset_on_exit;  // declared before the descriptor: the device is closed, then reset
    // Taken right before configuring, so that a device set up since the probe is left alone.
    if (const std::optional<std::string> user = detail::zram_user()) throw BadInput(detail::occupied_message(*user));
    if (!posix::write_small_file(detail::zram_sysfs + "reset", "1")) {
        if (errno == EBUSY) throw BadInput(detail::occupied_message("open in another process"));
        throw BadInput(detail::zram_device + " could not be reset: " + posix::errno_text(errno));
    }
    reset_on_exit.arm();
    configure("comp_algorithm", kernel_algorithm, "the kernel's zram refused algorithm \"" + kernel_algorithm + "\"");
    // Parameters attach to the algorithm until the next reset, and must be set before disksize.
    // lz4 takes the level as its acceleration (higher: faster and larger output); lzo and lzo-rle
    // accept a level and ignore it (Linux 6.18).
    if (level)
        configure("algorithm_params", "algo=" + kernel_algorithm + " level=" + std::to_string(*level),
                  "the kernel refused level " + std::to_string(*level) + " for " + kernel_algorithm);
    configure("disksize", std::to_string(disksize),
              "the kernel refused a zram disksize of " + std::to_string(disksize));
    const posix::UniqueFd device = posix::open_fd(detail::zram_device, O_RDWR | O_DIRECT);
    if (!device) throw BadInput("cannot open " + detail::zram_device + ": " + posix::errno_text(errno));

    // The pages are staged in an aligned buffer before the clock starts, so that the timed phases
    // are the kernel's work alone; the same buffer takes the pages read back.
    const detail::AlignedBuffer buffer(total_bytes);
    std::memcpy(buffer.data(), pages.bytes.data(), total_bytes);
    if (steady) detail::transfer(true, device.get(), buffer.data(), total_bytes, pages.page_size, threads, progress);
    const detail::PhaseTiming stored =
        detail::transfer(true, device.get(), buffer.data(), total_bytes, pages.page_size, threads, progress);
    const detail::MmStat stat = detail::read_mm_stat();
    std::memset(buffer.data(), 0xA5, total_bytes);  // so that a page not read back cannot pass for one
    const detail::PhaseTiming loaded =
        detail::transfer(false, device.get(), buffer.data(), total_bytes, pages.page_size, threads, progress);

    RunResult result = result_for(pages, "kernel-zram", label_algo, std::max(threads, 1u));
    result.orig_bytes = stat.orig_data_size;
    result.compr_bytes = stat.compr_data_size;
    // mm_stat's mem_used_total counts zsmalloc's pages only; zram's table (one 16-byte slot per
    // page of disksize, allocated when disksize is set) is memory the device holds too, and a zpage
    // store counts its own table in mem_used_total: add it, so that both columns mean the same.
    const auto kernel_page_bytes = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    result.mem_used_bytes = stat.mem_used_total + disksize / kernel_page_bytes * detail::zram_slot_bytes;
    // The kernel counts same and huge pages in its own pages; reported in units of page_size, as
    // every other figure of the row.
    result.same_pages = stat.same_pages * kernel_page_bytes / pages.page_size;
    result.huge_pages = stat.huge_pages * kernel_page_bytes / pages.page_size;
    const double mib = static_cast<double>(total_bytes) / (1 << 20);
    result.store_mib_s = stored.seconds > 0 ? mib / stored.seconds : 0;
    result.load_mib_s = loaded.seconds > 0 ? mib / loaded.seconds : 0;
    set_latencies(result, stored.page_latencies_us, loaded.page_latencies_us);
    result.verified = std::memcmp(buffer.data(), pages.bytes.data(), total_bytes) == 0;
    return result;
}

}  // namespace zpage_bench
