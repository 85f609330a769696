// zpage-bench's inputs: pages from a file (raw, or .zst decompressed on the fly), a snapshot of a
// live process's swappable memory, and the default pages the tool gathers itself on any Debian 12
// machine (a child process's heap, installed binaries).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "posix_io.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

inline constexpr std::size_t mib = std::size_t{1} << 20;

inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline void check_page_size(std::size_t page_size) {
    if (page_size == 0 || page_size % 4096 != 0)
        throw BadInput("page size " + std::to_string(page_size) + " is not a multiple of 4096 bytes");
}

// MemAvailable from /proc/meminfo in bytes, or 0 when unknown. Inputs are held in memory whole, so
// one larger than this would only end in the OOM killer: it is refused up front instead.
inline std::uint64_t available_memory_bytes() {
    std::string meminfo;
    if (!posix::read_small_file("/proc/meminfo", meminfo)) return 0;
    const std::string_view key = "MemAvailable:";
    const std::size_t at = meminfo.find(key);
    if (at == std::string::npos) return 0;
    const std::size_t pos = meminfo.find_first_not_of(' ', at + key.size());
    std::uint64_t kib = 0;
    if (pos == std::string::npos ||
        std::from_chars(meminfo.data() + pos, meminfo.data() + meminfo.size(), kib).ec != std::errc{})
        return 0;
    return kib * 1024;
}

inline std::string mib_text(std::uint64_t bytes) { return std::to_string((bytes + mib / 2) / mib) + " MiB"; }

// Collects an input's bytes, refusing to hold more than the memory available when reading began.
// When the size is known up front (expect), bytes go straight into the result. Otherwise they go
// into fixed-size chunks moved into one vector at the end: a vector grown by doubling would hold
// twice the input or more at its peak, chunks hold it once plus one chunk.
class ByteCollector {
public:
    explicit ByteCollector(std::string what) : what_(std::move(what)), limit_(available_memory_bytes()) {}

    void expect(std::uint64_t bytes) {
        check_total(bytes);
        direct_.reserve(static_cast<std::size_t>(bytes));
        expected_ = true;
    }

    // Takes bytes decoded elsewhere as the start of the result; later appends follow them.
    void adopt(std::vector<std::byte> bytes) {
        total_ = bytes.size();
        direct_ = std::move(bytes);
        expected_ = true;
    }

    void append(const std::byte* data, std::size_t n) {
        check_total(total_ + n);
        total_ += n;
        if (expected_) {
            direct_.insert(direct_.end(), data, data + n);
            return;
        }
        while (n != 0) {
            if (chunks_.empty() || chunks_.back().size() == chunk_bytes) chunks_.emplace_back().reserve(chunk_bytes);
            std::vector<std::byte>& chunk = chunks_.back();
            const std::size_t take = std::min(n, chunk_bytes - chunk.size());
            chunk.insert(chunk.end(), data, data + take);
            data += take;
            n -= take;
        }
    }

    std::vector<std::byte> finish() {
        if (expected_) return std::move(direct_);
        std::vector<std::byte> all;
        all.reserve(static_cast<std::size_t>(total_));
        for (std::vector<std::byte>& chunk : chunks_) {
            all.insert(all.end(), chunk.begin(), chunk.end());
            std::vector<std::byte>().swap(chunk);  // give the chunk back before copying the next
        }
        return all;
    }

    void check_total(std::uint64_t total) const {
        if (limit_ != 0 && total > limit_)
            throw BadInput(what_ + ": more than the " + mib_text(limit_) + " of memory available to hold it");
    }

private:
    static constexpr std::size_t chunk_bytes = 8 * mib;

    std::string what_;
    std::uint64_t limit_;
    std::uint64_t total_ = 0;
    bool expected_ = false;
    std::vector<std::byte> direct_;
    std::vector<std::vector<std::byte>> chunks_;
};

inline void read_raw_pages(int fd, const std::string& path, ByteCollector& sink) {
    std::vector<std::byte> buffer(mib);
    for (;;) {
        const ssize_t n = posix::read_full(fd, buffer.data(), buffer.size());
        if (n < 0) throw BadInput("cannot read " + path + ": " + posix::errno_text(errno));
        sink.append(buffer.data(), static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < buffer.size()) return;
    }
}

// Streams the file through ZSTD_decompressStream: the compressed bytes are read once, through a
// fixed buffer. A first frame whose header gives its size (zstd's usual output) is decompressed in
// place, with a stable output buffer, so zstd keeps no window buffer of its own: that buffer is as
// large as the frame's window, 96 MiB for the corpora, made with a long window. Any further frames
// stream through a fixed output buffer into the collector.
inline std::vector<std::byte> read_zstd_pages(int fd, const std::string& path) {
    // ZSTD_d_stableOutBuffer, which zstd.h names only under ZSTD_STATIC_LINKING_ONLY (a macro not to
    // impose on every file that includes this one); stable since zstd 1.4.
    constexpr ZSTD_dParameter stable_out_buffer = ZSTD_d_experimentalParam2;
    const auto invalid = [&](std::size_t code) {
        return BadInput(path + ": not a valid zstd stream (" + ZSTD_getErrorName(code) + ")");
    };
    const std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!dctx) throw BadInput(path + ": cannot allocate a zstd decompression context");
    // Accept any window a 64-bit zstd makes (--long=31), as `zstd -d --memory=2GB` would: memory
    // is bounded by the checks on the decompressed size, and a sized first frame needs no window.
    ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 31);  // ZSTD_WINDOWLOG_MAX_64
    std::vector<std::byte> in(ZSTD_DStreamInSize());
    std::vector<std::byte> out(ZSTD_DStreamOutSize());
    ByteCollector sink(path);
    std::vector<std::byte> first_frame;
    std::size_t first_frame_pos = 0;
    bool in_place = false;
    bool started = false;
    std::size_t last_result = 0;  // 0 once a frame is complete
    for (;;) {
        const ssize_t n = posix::read_full(fd, in.data(), in.size());
        if (n < 0) throw BadInput("cannot read " + path + ": " + posix::errno_text(errno));
        if (n == 0) break;
        if (!started) {
            started = true;
            const unsigned long long size = ZSTD_getFrameContentSize(in.data(), static_cast<std::size_t>(n));
            if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR && size != 0 &&
                !ZSTD_isError(ZSTD_DCtx_setParameter(dctx.get(), stable_out_buffer, 1))) {
                sink.check_total(size);
                first_frame.resize(static_cast<std::size_t>(size));
                in_place = true;
            }
        }
        ZSTD_inBuffer input{in.data(), static_cast<std::size_t>(n), 0};
        // zstd does not consume a frame's last byte before it has flushed all its output, so
        // draining the input also drains the decoder.
        while (input.pos < input.size) {
            if (in_place) {
                ZSTD_outBuffer output{first_frame.data(), first_frame.size(), first_frame_pos};
                last_result = ZSTD_decompressStream(dctx.get(), &output, &input);
                if (ZSTD_isError(last_result)) throw invalid(last_result);
                first_frame_pos = output.pos;
                if (last_result == 0) {  // the first frame is complete: any more stream into the collector
                    in_place = false;
                    ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
                    ZSTD_DCtx_setParameter(dctx.get(), stable_out_buffer, 0);
                    first_frame.resize(first_frame_pos);
                    sink.adopt(std::exchange(first_frame, {}));
                }
                continue;
            }
            ZSTD_outBuffer output{out.data(), out.size(), 0};
            last_result = ZSTD_decompressStream(dctx.get(), &output, &input);
            if (ZSTD_isError(last_result)) throw invalid(last_result);
            sink.append(out.data(), output.pos);
        }
    }
    if (in_place || last_result != 0)
        throw BadInput(path + ": not a valid zstd stream (truncated: it ends inside a frame)");
    return sink.finish();
}

// "python-heap.pages.zst" -> "python-heap".
inline std::string page_file_name(const std::string& path) {
    std::string name = std::filesystem::path(path).filename().string();
    for (const std::string_view suffix : {".zst", ".pages"})
        if (name.size() > suffix.size() && ends_with(name, suffix)) name.resize(name.size() - suffix.size());
    return name;
}

}  // namespace detail

// A flat file of pages; a path ending in .zst is decompressed on the fly. A size that is not a
// whole number of pages is refused unless ignore_tail, which drops the tail.
inline PageSet read_page_file(const std::string& path, std::size_t page_size, bool ignore_tail) {
    detail::check_page_size(page_size);
    const posix::UniqueFd fd = posix::open_fd(path, O_RDONLY);
    if (!fd) throw BadInput("cannot open " + path + ": " + posix::errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw BadInput("cannot read " + path + ": " + posix::errno_text(errno));
    if (S_ISDIR(st.st_mode)) throw BadInput(path + ": is a directory, not a file of pages");

    PageSet set;
    set.name = detail::page_file_name(path);
    set.page_size = page_size;
    const bool compressed = detail::ends_with(path, ".zst");
    if (compressed) {
        set.bytes = detail::read_zstd_pages(fd.get(), path);
    } else {
        detail::ByteCollector sink(path);
        if (S_ISREG(st.st_mode)) sink.expect(static_cast<std::uint64_t>(st.st_size));
        detail::read_raw_pages(fd.get(), path, sink);
        set.bytes = sink.finish();
    }

    const std::size_t size = set.bytes.size();
    const std::string decompressed = compressed ? " decompressed" : "";
    if (size == 0) throw BadInput(path + (compressed && st.st_size > 0 ? ": decompresses to nothing" : ": is empty"));
    if (const std::size_t tail = size % page_size; tail != 0) {
        if (!ignore_tail)
            throw BadInput(path + ": " + std::to_string(size) + " bytes" + decompressed + " is not a whole number of " +
                           std::to_string(page_size) + "-byte pages (" + std::to_string(tail) +
                           " bytes left over); pass --ignore-tail to drop them");
        if (size < page_size)
            throw BadInput(path + ": " + std::to_string(size) + " bytes" + decompressed + " is less than one " +
                           std::to_string(page_size) + "-byte page");
        set.bytes.resize(size - tail);
    }
    return set;
}

// ---- a live process's memory -----------------------------------------------------------------------

namespace detail {

struct AddressRange {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

// Thrown inside snapshot_memory when the target's memory goes away; never escapes it.
struct TargetExited {};

// The mappings a swap device could be handed pages of: private and writable (anonymous memory,
// and private file mappings once written), readable; JIT code (rwxp) included. Sorted, with
// adjacent ones merged. Shared mappings go to their file or to shmem, not to swap.
inline std::vector<AddressRange> swappable_ranges(std::string_view maps) {
    std::vector<AddressRange> ranges;
    while (!maps.empty()) {
        const std::size_t eol = maps.find('\n');
        const std::string_view line = maps.substr(0, eol);
        maps.remove_prefix(eol == std::string_view::npos ? maps.size() : eol + 1);

        // "begin-end perms offset dev inode   [path]"
        AddressRange range;
        const char* p = line.data();
        const char* const end = line.data() + line.size();
        auto r = std::from_chars(p, end, range.begin, 16);
        if (r.ec != std::errc{} || r.ptr == end || *r.ptr != '-') continue;
        r = std::from_chars(r.ptr + 1, end, range.end, 16);
        if (r.ec != std::errc{} || end - r.ptr < 5 || range.end <= range.begin) continue;
        const std::string_view perms(r.ptr + 1, 4);
        if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') continue;
        std::string_view rest(r.ptr + 5, static_cast<std::size_t>(end - (r.ptr + 5)));
        for (int field = 0; field < 3; ++field) {  // skip offset, dev, inode
            rest.remove_prefix(std::min(rest.size(), rest.find_first_not_of(' ')));
            rest.remove_prefix(std::min(rest.size(), rest.find(' ')));
        }
        rest.remove_prefix(std::min(rest.size(), rest.find_first_not_of(' ')));
        if (rest == "[vvar]" || rest == "[vvar_vclock]" || rest == "[vsyscall]" || rest == "[vdso]") continue;

        if (!ranges.empty() && ranges.back().end == range.begin)
            ranges.back().end = range.end;
        else
            ranges.push_back(range);
    }
    return ranges;
}

inline void append_range(std::vector<AddressRange>& out, std::uint64_t begin, std::uint64_t end) {
    if (!out.empty() && out.back().end == begin)
        out.back().end = end;
    else
        out.push_back({begin, end});
}

// The PAGEMAP_SCAN ioctl (Linux 6.7) on /proc/PID/pagemap reports page ranges by category; Debian
// 12's kernel headers (6.1) lack it, so its ABI is spelled out here.
struct PagemapRegion {
    std::uint64_t start, end, categories;
};
struct PagemapScanArg {
    std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
inline constexpr unsigned long pagemap_scan_request = _IOWR('f', 16, PagemapScanArg);
inline constexpr std::uint64_t page_is_file = 1u << 2;
inline constexpr std::uint64_t page_is_present = 1u << 3;

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
inline constexpr std::uint64_t pm_present = std::uint64_t{1} << 63;
inline constexpr std::uint64_t pm_swapped = std::uint64_t{1} << 62;
inline constexpr std::uint64_t pm_file = std::uint64_t{1} << 61;
inline constexpr std::uint64_t pm_exclusive = std::uint64_t{1} << 56;  // mapped by this process alone

// Resident anonymous pages are what swap would take: present, and not a file's page-cache page
// still mapped in a private mapping that was never written (pm_file). Swapped pages are not
// resident. The shared zero page counts as resident, as the kernel maps it.
inline bool is_resident_anonymous(std::uint64_t entry) {
    return (entry & (pm_present | pm_swapped | pm_file)) == pm_present;
}

// Finds the resident anonymous pages of range with PAGEMAP_SCAN, which skips unpopulated address
// space in the kernel: a sanitizer's 14 TiB shadow mapping takes microseconds instead of seconds
// of 8-byte pagemap entries. Returns false if this kernel has no PAGEMAP_SCAN.
inline bool scan_pages_by_ioctl(int pagemap_fd, AddressRange range, std::vector<AddressRange>& out) {
    std::array<PagemapRegion, 256> regions{};
    PagemapScanArg arg{};
    arg.size = sizeof arg;
    arg.start = range.begin;
    arg.end = range.end;
    arg.vec = reinterpret_cast<std::uintptr_t>(regions.data());
    arg.vec_len = regions.size();
    arg.category_mask = page_is_present | page_is_file;  // present, and (inverted) not file-backed
    arg.category_inverted = page_is_file;
    arg.return_mask = page_is_present;
    while (arg.start < arg.end) {
        const int n = ::ioctl(pagemap_fd, pagemap_scan_request, &arg);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP) return false;
            if (errno == ESRCH) throw TargetExited{};
            throw BadInput("cannot scan the page map: " + posix::errno_text(errno));
        }
        for (int i = 0; i < n; ++i)
            append_range(out, regions[static_cast<std::size_t>(i)].start, regions[static_cast<std::size_t>(i)].end);
        if (arg.walk_end <= arg.start) break;  // no progress: the mapping went away under us
        arg.start = arg.walk_end;
    }
    return true;
}

// The portable way: 8 bytes of /proc/PID/pagemap per kernel page, read in fixed-size batches.
inline void scan_pages_by_read(int pagemap_fd, AddressRange range, std::size_t kernel_page,
                               std::vector<AddressRange>& out) {
    std::vector<std::uint64_t> entries(std::size_t{1} << 16);
    for (std::uint64_t first = range.begin / kernel_page; first < range.end / kernel_page;) {
        const std::size_t count =
            static_cast<std::size_t>(std::min<std::uint64_t>(entries.size(), range.end / kernel_page - first));
        const ssize_t n = posix::pread_full(pagemap_fd, entries.data(), count * 8, static_cast<off_t>(first * 8));
        if (n < 0) throw BadInput("cannot read the page map: " + posix::errno_text(errno));
        if (n == 0) throw TargetExited{};  // pagemap reads nothing once the process's memory is gone
        const std::size_t got = static_cast<std::size_t>(n) / 8;
        for (std::size_t i = 0; i < got; ++i)
            if (is_resident_anonymous(entries[i])) {
                const std::uint64_t address = (first + i) * kernel_page;
                append_range(out, address, address + kernel_page);
            }
        first += got;
    }
}

// Page-size-aligned blocks of the target's address space, in address order: output block i of a
// run is at first + i * page_size.
struct BlockRun {
    std::uint64_t first = 0;
    std::size_t blocks = 0;
};

// Adds the page_size blocks that hold the resident range; runs stay sorted and disjoint because
// ranges arrive in address order.
inline void add_blocks(std::vector<BlockRun>& runs, AddressRange resident, std::size_t page_size) {
    const std::uint64_t lo = resident.begin - resident.begin % page_size;
    const std::uint64_t hi = (resident.end + page_size - 1) / page_size * page_size;
    if (!runs.empty()) {
        BlockRun& last = runs.back();
        const std::uint64_t last_end = last.first + last.blocks * page_size;
        if (lo <= last_end) {
            if (hi > last_end) last.blocks += static_cast<std::size_t>((hi - last_end) / page_size);
            return;
        }
    }
    runs.push_back({lo, static_cast<std::size_t>((hi - lo) / page_size)});
}

// Copies [begin, end) of the target's memory to dest through /proc/PID/mem, in batches. A page the
// kernel cannot read (EIO: a guard page, an I/O mapping) is left as it was in dest and skipped;
// on_read(address, bytes) is told of every span that was read.
template <class OnRead>
void read_target_memory(int mem_fd, std::uint64_t begin, std::uint64_t end, std::byte* dest, std::size_t kernel_page,
                        OnRead&& on_read) {
    constexpr std::uint64_t batch = 1 << 20;
    for (std::uint64_t address = begin; address < end;) {
        const std::size_t want = static_cast<std::size_t>(std::min(batch, end - address));
        const ssize_t n = ::pread(mem_fd, dest + (address - begin), want, static_cast<off_t>(address));
        if (n > 0) {
            on_read(address, static_cast<std::uint64_t>(n));
            address += static_cast<std::uint64_t>(n);
        } else if (n == 0) {
            throw TargetExited{};  // /proc/PID/mem reads nothing once the process's memory is gone
        } else if (errno == EIO) {
            address += kernel_page;
        } else if (errno != EINTR) {
            throw BadInput("cannot read process memory: " + posix::errno_text(errno));
        }
    }
}

// The process's command name; false (errno set) if it cannot be read.
inline bool read_process_comm(pid_t pid, std::string& comm) {
    if (!posix::read_small_file("/proc/" + std::to_string(pid) + "/comm", comm)) return false;
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    return true;
}

// Whether the task is a kernel thread (PF_KTHREAD in /proc/PID/stat's flags, its 9th field).
inline bool is_kernel_thread(pid_t pid) {
    std::string stat;
    if (!posix::read_small_file("/proc/" + std::to_string(pid) + "/stat", stat)) return false;
    const std::size_t paren = stat.rfind(')');  // comm may itself hold ')' and spaces
    if (paren == std::string::npos) return false;
    std::istringstream fields(stat.substr(paren + 1));
    std::string skipped;
    for (int field = 3; field < 9; ++field) fields >> skipped;  // state ppid pgrp session tty_nr tpgid
    unsigned long flags = 0;
    return fields >> flags && (flags & 0x00200000UL) != 0;
}

// Whether the process still has writable memory: a process that exits loses it before it becomes
// a zombie, and every live user process has some (its stack).
inline bool process_has_memory(pid_t pid) {
    std::string maps;
    return posix::read_small_file("/proc/" + std::to_string(pid) + "/maps", maps) && !swappable_ranges(maps).empty();
}

// Which of a process's resident pages a snapshot takes.
enum class PageFilter {
    resident,          // all: what swap would see
    mapped_only_here,  // those no other process maps: what a forked child wrote since the fork, not
                       // the parent's memory it still shares copy-on-write
};

// The pages of the resident ranges that only this process maps (pagemap's exclusive bit).
inline std::vector<AddressRange> keep_pages_mapped_only_here(int pagemap_fd, const std::vector<AddressRange>& resident,
                                                             std::size_t kernel_page) {
    std::vector<AddressRange> kept;
    std::vector<std::uint64_t> entries(std::size_t{1} << 16);
    for (const AddressRange& range : resident) {
        for (std::uint64_t first = range.begin / kernel_page; first < range.end / kernel_page;) {
            const std::size_t count =
                static_cast<std::size_t>(std::min<std::uint64_t>(entries.size(), range.end / kernel_page - first));
            const ssize_t n = posix::pread_full(pagemap_fd, entries.data(), count * 8, static_cast<off_t>(first * 8));
            if (n < 0) throw BadInput("cannot read the page map: " + posix::errno_text(errno));
            if (n == 0) throw TargetExited{};
            const std::size_t got = static_cast<std::size_t>(n) / 8;
            for (std::size_t i = 0; i < got; ++i)
                if ((entries[i] & pm_exclusive) != 0 && is_resident_anonymous(entries[i]))
                    append_range(kept, (first + i) * kernel_page, (first + i + 1) * kernel_page);
            first += got;
        }
    }
    return kept;
}

inline PageSet snapshot_memory(pid_t pid, std::size_t page_size, PageFilter filter) {
    check_page_size(page_size);
    const std::string no_such = "no process with PID " + std::to_string(pid);
    if (pid <= 0) throw BadInput(no_such);
    const std::size_t kernel_page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (page_size % kernel_page != 0)
        throw BadInput("page size " + std::to_string(page_size) + " is smaller than this kernel's " +
                       std::to_string(kernel_page) + "-byte pages");

    const std::string proc = "/proc/" + std::to_string(pid);
    std::string comm;
    if (!read_process_comm(pid, comm)) {
        if (errno == ENOENT || errno == ESRCH) throw BadInput(no_such);
        comm = "?";
    }
    const std::string who = "pid " + std::to_string(pid) + " (" + comm + ")";
    const auto cannot_read = [&](const std::string& file) {
        const int err = errno;
        if (err == ENOENT || err == ESRCH) return BadInput(who + " exited during the snapshot");
        if (err == EACCES || err == EPERM)
            return BadInput("cannot read the memory of " + who + ": " + posix::errno_text(err) +
                            (::geteuid() == 0 ? "; even root is refused a process that holds capabilities this one "
                                                "lacks, or that a security module protects"
                                              : "; reading another user's process needs root, or the same user and "
                                                "ptrace permission (kernel.yama.ptrace_scope)"));
        return BadInput("cannot read " + proc + "/" + file + ": " + posix::errno_text(err));
    };

    std::string maps;
    if (!posix::read_small_file(proc + "/maps", maps)) {
        if (errno == ENOENT) throw BadInput(no_such);
        throw cannot_read("maps");
    }
    // Empty for a kernel thread, and for a process that has exited or is exiting.
    const std::vector<AddressRange> ranges = swappable_ranges(maps);
    if (ranges.empty()) {
        if (is_kernel_thread(pid)) throw BadInput(who + " is a kernel thread: it has no user memory");
        throw BadInput(who + " has exited");
    }
    const posix::UniqueFd pagemap = posix::open_fd(proc + "/pagemap", O_RDONLY);
    if (!pagemap) throw cannot_read("pagemap");
    const posix::UniqueFd mem = posix::open_fd(proc + "/mem", O_RDONLY);
    if (!mem) throw cannot_read("mem");

    PageSet set;
    set.name = who;
    set.page_size = page_size;
    try {
        std::vector<BlockRun> runs;
        bool have_scan_ioctl = true;
        for (const AddressRange& range : ranges) {
            std::vector<AddressRange> resident;
            if (have_scan_ioctl) have_scan_ioctl = scan_pages_by_ioctl(pagemap.get(), range, resident);
            if (!have_scan_ioctl) scan_pages_by_read(pagemap.get(), range, kernel_page, resident);
            if (filter == PageFilter::mapped_only_here)
                resident = keep_pages_mapped_only_here(pagemap.get(), resident, kernel_page);
            for (const AddressRange& r : resident) add_blocks(runs, r, page_size);
        }
        std::size_t total_blocks = 0;
        for (const BlockRun& run : runs) total_blocks += run.blocks;
        if (total_blocks == 0) {
            if (!process_has_memory(pid)) throw TargetExited{};
            throw BadInput(who + " has no resident private pages");
        }
        const std::uint64_t available = available_memory_bytes();
        if (available != 0 && total_blocks * page_size > available)
            throw BadInput(who + " has " + mib_text(total_blocks * page_size) + " resident, more than the " +
                           mib_text(available) + " of memory available");

        // Zero-filled, so that the parts of a block outside writable memory, and unreadable pages,
        // read as zero; a block of which nothing could be read is dropped afterwards.
        set.bytes.resize(total_blocks * page_size);
        std::vector<bool> block_read(total_blocks, false);
        std::size_t run_first_block = 0;
        std::size_t next_range = 0;
        for (const BlockRun& run : runs) {
            const std::uint64_t run_end = run.first + run.blocks * page_size;
            const auto on_read = [&](std::uint64_t address, std::uint64_t bytes) {
                for (std::uint64_t a = address; a < address + bytes; a += kernel_page)
                    block_read[run_first_block + static_cast<std::size_t>((a - run.first) / page_size)] = true;
            };
            // Read the run's parts that lie inside swappable ranges; both lists are sorted.
            while (next_range < ranges.size() && ranges[next_range].end <= run.first) ++next_range;
            for (std::size_t i = next_range; i < ranges.size() && ranges[i].begin < run_end; ++i) {
                const std::uint64_t begin = std::max(run.first, ranges[i].begin);
                const std::uint64_t end = std::min(run_end, ranges[i].end);
                std::byte* dest = set.bytes.data() + run_first_block * page_size + (begin - run.first);
                read_target_memory(mem.get(), begin, end, dest, kernel_page, on_read);
            }
            run_first_block += run.blocks;
        }

        std::size_t kept = 0;
        for (std::size_t b = 0; b < total_blocks; ++b) {
            if (!block_read[b]) continue;
            if (kept != b)
                std::copy_n(set.bytes.data() + b * page_size, page_size, set.bytes.data() + kept * page_size);
            ++kept;
        }
        set.bytes.resize(kept * page_size);
        if (kept == 0) throw BadInput(who + " has no readable resident private pages");
    } catch (const TargetExited&) {
        throw BadInput(who + " exited during the snapshot");
    }
    return set;
}

}  // namespace detail

// What a swap device would see of a live process: its resident pages of private writable memory,
// read while it runs (no ptrace attach, no stop). With a page_size above the kernel's, each
// page_size-aligned block holding at least one resident page is taken whole (its parts outside
// the process's writable memory read as zero), as a kernel with that page size would hold it.
inline PageSet snapshot_process(pid_t pid, std::size_t page_size) {
    return detail::snapshot_memory(pid, page_size, detail::PageFilter::resident);
}

// ---- the default input -----------------------------------------------------------------------------

namespace detail {

// Where the default heap's text comes from, in order; whatever exists on the machine is used.
inline constexpr std::array<const char*, 6> heap_text_roots{
    "/usr/include", "/usr/share/doc", "/usr/share/common-licenses", "/usr/share/perl", "/usr/share/perl5", "/etc"};

// What the heap child reports through its pipe once its heap is built.
struct HeapChildReport {
    std::uint32_t files = 0;
    std::uint32_t roots_used = 0;  // bit i: heap_text_roots[i]
    std::uint64_t text_bytes = 0;
};

// Visits the regular files under dir depth-first in sorted order (deterministic on one machine),
// not following symbolic links, skipping what cannot be listed. Stops when visit returns false.
template <class Visit>
bool walk_sorted(const std::filesystem::path& dir, Visit&& visit, int depth = 0) {
    if (depth > 16) return true;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, std::filesystem::directory_options::skip_permission_denied, ec);
    if (ec) return true;
    std::vector<std::filesystem::path> entries;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        if (ec) break;
        entries.push_back(it->path());
    }
    std::sort(entries.begin(), entries.end());
    for (const std::filesystem::path& entry : entries) {
        const std::filesystem::file_status status = std::filesystem::symlink_status(entry, ec);
        if (ec) continue;
        if (std::filesystem::is_directory(status)) {
            if (!walk_sorted(entry, visit, depth + 1)) return false;
        } else if (std::filesystem::is_regular_file(status)) {
            if (!visit(entry)) return false;
        }
    }
    return true;
}

// The heap of a program that indexed text files: their contents in std::strings, a map from path
// to file, each file's lines as string_views, and an inverted index from every identifier-like
// word to its (file, offset) postings, as an editor, a language server or a search tool holds.
// The containers' growth leaves freed chunks behind, as in any real heap.
class TextIndex {
public:
    // heap_budget: the approximate heap to build; deadline bounds the time on slow machines.
    TextIndex(std::size_t heap_budget, std::chrono::steady_clock::time_point deadline)
        : heap_budget_(heap_budget), deadline_(deadline) {}

    [[nodiscard]] bool full() const {
        return heap_estimate_ >= heap_budget_ || std::chrono::steady_clock::now() >= deadline_;
    }
    [[nodiscard]] std::size_t heap_estimate() const { return heap_estimate_; }
    [[nodiscard]] std::size_t files() const { return texts_.size(); }
    [[nodiscard]] std::size_t text_bytes() const { return text_bytes_; }

    // Indexes a text file of up to 1 MiB; binary files (a NUL in the first 4 KiB) are skipped.
    void add(const std::filesystem::path& path) {
        const posix::UniqueFd fd = posix::open_fd(path.string(), O_RDONLY);
        struct stat st {};
        if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 20)) return;
        std::string text(static_cast<std::size_t>(st.st_size), '\0');
        const ssize_t n = posix::read_full(fd.get(), text.data(), text.size());
        if (n <= 0) return;
        text.resize(static_cast<std::size_t>(n));
        if (text.find('\0') < 4096) return;

        const auto file = static_cast<std::uint32_t>(texts_.size());
        file_by_path_.emplace(path.string(), file);
        texts_.push_back(std::move(text));
        const std::string_view body = texts_.back();
        text_bytes_ += body.size();
        heap_estimate_ += body.size() + path.native().size() + 96;

        std::vector<std::string_view>& lines = lines_.emplace_back();
        for (std::size_t at = 0; at < body.size();) {
            const std::size_t eol = std::min(body.find('\n', at), body.size());
            lines.emplace_back(body.substr(at, eol - at));
            at = eol + 1;
        }
        heap_estimate_ += lines.capacity() * sizeof(std::string_view);

        const auto is_word_start = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
        const auto is_word_char = [&](char c) { return is_word_start(c) || (c >= '0' && c <= '9'); };
        for (std::size_t at = 0; at < body.size();) {
            if (!is_word_start(body[at])) {
                ++at;
                continue;
            }
            std::size_t end = at + 1;
            while (end < body.size() && is_word_char(body[end])) ++end;
            if (end - at >= 2) {
                auto [slot, inserted] = words_.try_emplace(std::string(body.substr(at, end - at)));
                if (inserted) heap_estimate_ += 64 + (end - at > 15 ? end - at + 1 : 0);
                slot->second.push_back({file, static_cast<std::uint32_t>(at)});
                heap_estimate_ += sizeof(Posting);
            }
            at = end;
        }
    }

private:
    struct Posting {
        std::uint32_t file;
        std::uint32_t offset;
    };

    std::size_t heap_budget_;
    std::chrono::steady_clock::time_point deadline_;
    std::size_t heap_estimate_ = 0;
    std::size_t text_bytes_ = 0;
    std::vector<std::string> texts_;
    std::map<std::string, std::uint32_t> file_by_path_;
    std::vector<std::vector<std::string_view>> lines_;
    std::unordered_map<std::string, std::vector<Posting>> words_;
};

// The child's whole life: build the heap, report, then wait until the parent kills it, or exits
// (its end of the release pipe closes, so a parent that dies leaves no orphan behind). Never
// returns into the caller's code.
[[noreturn]] inline void run_heap_child(int ready_fd, int release_fd) noexcept {
    // The caller's handlers (a progress bar restoring the terminal, say) are not the child's.
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(signal_number, SIG_DFL);
    int status = 1;
    try {
        constexpr std::size_t heap_budget = 48 * mib;
        constexpr std::size_t per_root_budget = heap_budget * 2 / 3;  // so that two roots or more contribute
        // The budget stops it in under a second on a machine of the project's kind (2.5 s under
        // ASan); the deadline only bounds a far slower machine, at the cost of a smaller heap.
        TextIndex index(heap_budget, std::chrono::steady_clock::now() + std::chrono::seconds(8));
        HeapChildReport report;
        for (std::size_t root = 0; root < heap_text_roots.size() && !index.full(); ++root) {
            const std::size_t root_start = index.heap_estimate();
            const std::size_t files_before = index.files();
            walk_sorted(heap_text_roots[root], [&](const std::filesystem::path& file) {
                index.add(file);
                return !index.full() && index.heap_estimate() - root_start < per_root_budget;
            });
            if (index.files() > files_before) report.roots_used |= 1u << root;
        }
        report.files = static_cast<std::uint32_t>(index.files());
        report.text_bytes = index.text_bytes();
        if (posix::write_all(ready_fd, &report, sizeof report)) {
            char byte;
            while (::read(release_fd, &byte, 1) < 0 && errno == EINTR) {
            }
            status = 0;
        }
    } catch (...) {
    }
    ::_exit(status);
}

// A forked child that is killed and reaped on destruction, on every path.
class ChildProcess {
public:
    explicit ChildProcess(pid_t pid) noexcept : pid_(pid) {}
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() { kill_and_reap(); }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    void kill_and_reap() noexcept {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }

private:
    pid_t pid_;
};

struct Pipe {
    posix::UniqueFd read_end, write_end;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw BadInput("cannot create a pipe: " + posix::errno_text(errno));
        read_end = posix::UniqueFd(fds[0]);
        write_end = posix::UniqueFd(fds[1]);
    }
};

inline std::string join_roots(std::uint32_t mask) {
    std::string out;
    for (std::size_t i = 0; i < heap_text_roots.size(); ++i)
        if ((mask >> i & 1u) != 0) out += (out.empty() ? "" : ", ") + std::string(heap_text_roots[i]);
    return out;
}

inline PageSet default_heap(std::size_t page_size, std::ostream& log) {
    Pipe ready, release;
    const pid_t pid = ::fork();
    if (pid < 0) throw BadInput("default-heap: cannot fork: " + posix::errno_text(errno));
    if (pid == 0) {
        ready.read_end.reset();
        release.write_end.reset();
        run_heap_child(ready.write_end.get(), release.read_end.get());
    }
    ChildProcess child(pid);
    ready.write_end.reset();  // so that a child that dies reads as end of file
    release.read_end.reset();

    HeapChildReport report;
    pollfd wait_ready{ready.read_end.get(), POLLIN, 0};
    int polled;
    do {
        polled = ::poll(&wait_ready, 1, 60'000);
    } while (polled < 0 && errno == EINTR);
    if (polled <= 0 ||
        posix::read_full(ready.read_end.get(), &report, sizeof report) != static_cast<ssize_t>(sizeof report))
        throw BadInput("default-heap: the child process that builds the heap " +
                       std::string(polled == 0 ? "did not finish within 60 s" : "failed"));

    // Only the pages the child wrote: a fork shares all of the caller's memory with the child, and
    // the caller may hold anything by now (other inputs, an earlier default), which is no part of
    // this heap.
    PageSet set = snapshot_memory(pid, page_size, PageFilter::mapped_only_here);
    set.name = "default-heap";
    child.kill_and_reap();
    log << "default-heap: " << set.pages() << " pages from a child process that indexed " << report.files << " files ("
        << mib_text(report.text_bytes) << ") under " << join_roots(report.roots_used) << '\n';
    return set;
}

// The multiarch library folder of this build's target, then generic fallbacks.
inline std::vector<std::filesystem::path> library_dirs() {
#if defined(__x86_64__)
    return {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"};
#elif defined(__aarch64__)
    return {"/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"};
#else
    return {"/usr/lib64", "/usr/lib"};
#endif
}

inline bool is_elf(int fd) {
    char magic[4];
    return posix::pread_full(fd, magic, sizeof magic, 0) == 4 && std::string_view(magic, 4) == "\177ELF";
}

// Appends up to max_bytes of the file's whole pages to bytes. Returns the bytes taken.
inline std::size_t take_file_pages(const std::filesystem::path& path, std::size_t page_size, std::size_t max_bytes,
                                   std::vector<std::byte>& bytes) {
    const posix::UniqueFd fd = posix::open_fd(path.string(), O_RDONLY);
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !is_elf(fd.get())) return 0;
    const std::size_t want = std::min(static_cast<std::size_t>(st.st_size), max_bytes) / page_size * page_size;
    if (want == 0) return 0;
    const std::size_t at = bytes.size();
    bytes.resize(at + want);
    const ssize_t n = posix::pread_full(fd.get(), bytes.data() + at, want, 0);
    const std::size_t got = n <= 0 ? 0 : static_cast<std::size_t>(n) / page_size * page_size;
    bytes.resize(at + got);
    return got;
}

inline PageSet default_files(std::size_t page_size, std::ostream& log) {
    constexpr std::size_t total_budget = 64 * mib;
    constexpr std::size_t per_file_budget = 4 * mib;  // so that the set spans many programs
    PageSet set;
    set.name = "default-files";
    set.page_size = page_size;
    set.bytes.reserve(total_budget);

    struct Source {
        std::vector<std::filesystem::path> candidates;
        bool libraries_only;
    };
    const std::array<Source, 2> sources{Source{library_dirs(), true}, Source{{"/usr/bin", "/bin", "/usr/sbin"}, false}};
    std::size_t files = 0;
    std::string used;
    for (std::size_t s = 0; s < sources.size(); ++s) {
        const std::size_t budget = (total_budget - set.bytes.size()) / (sources.size() - s);
        std::size_t taken = 0;
        for (const std::filesystem::path& dir : sources[s].candidates) {
            std::error_code ec;
            if (!std::filesystem::is_directory(dir, ec)) continue;
            std::vector<std::filesystem::path> paths;
            for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
                const std::string name = it->path().filename().string();
                if (sources[s].libraries_only && name.find(".so") == std::string::npos) continue;
                std::error_code entry_ec;  // symbolic links skipped: they would repeat their targets
                if (std::filesystem::is_regular_file(it->symlink_status(entry_ec)) && !entry_ec)
                    paths.push_back(it->path());
            }
            std::sort(paths.begin(), paths.end());
            for (const std::filesystem::path& path : paths) {
                if (taken + page_size > budget) break;
                const std::size_t got =
                    take_file_pages(path, page_size, std::min(per_file_budget, budget - taken), set.bytes);
                taken += got;
                files += got != 0 ? 1 : 0;
            }
            if (taken != 0) {
                used += (used.empty() ? "" : ", ") + dir.string();
                break;
            }
        }
    }
    if (set.bytes.empty())
        throw BadInput("default-files: found no readable shared libraries or executables to take pages from");
    log << "default-files: " << set.pages() << " pages of " << files << " files under " << used << '\n';
    return set;
}

}  // namespace detail

// The embedded default input, gathered on the machine with nothing downloaded: "default-heap", a
// snapshot of a child process that indexed the machine's text files into ordinary C++ containers
// (the kind of heap a swap device sees), and "default-files", whole pages of installed shared
// libraries and executables (machine code and read-only data, as the page cache holds them).
// Says on log what it used. The same machine gives about the same pages from run to run: the same
// files in the same order (the heap's addresses vary with ASLR).
inline std::vector<PageSet> default_inputs(std::size_t page_size, std::ostream& log) {
    detail::check_page_size(page_size);
    std::vector<PageSet> sets;
    sets.push_back(detail::default_heap(page_size, log));
    sets.push_back(detail::default_files(page_size, log));
    return sets;
}

}  // namespace zpage_bench
