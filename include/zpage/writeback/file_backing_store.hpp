// zpage: FileBackingStore, a backing store on a regular file (any file system, no root needed)
// or a block device, as zram's backing_dev.
//
//   zpage::FileBackingStore disk({.path = "/var/tmp/app.zpage", .max_bytes = std::uint64_t{8} << 30});
//   std::array<zpage::BackingLocation, 2> at;
//   if (!disk.write(records, at)) ...;       // all or nothing
//   if (!disk.read(at[0], record0)) ...;      // then verify_record() (record.hpp)
//   disk.free(at[0], record0.size());
//
// Layout: space in 4 KiB blocks (detail/block_space.hpp): a batch's records are packed back to
// back into an aligned buffer and written to runs of contiguous free blocks found next-fit from
// where the last batch ended, so writes are sequential; the tail of a batch's last block is the
// only padding. A page compressed to 1.5 KiB costs 1.5 KiB + 16 B on disk, not a block. When the
// last record overlapping a block is freed, the block is free for the next batch at once, and its
// space goes back to the file system (fallocate(PUNCH_HOLE | KEEP_SIZE)) or device (BLKDISCARD):
// later, in coalesced runs, by default. A punch of one block cost 0.1 to 2.4 ms a call in runs an
// hour apart on the project's test machine (ext4 mounted with online discard; 5 us on tmpfs), so
// a free() that punched cost 55 us to 1.8 ms a record there against 0.03 us (bench_backing_store
// free/retain_MiB), and a freed block the next batches overwrite needs no punch at all. So up to retain_freed_bytes of
// freed space stays allocated; beyond it each batch first punches up to 8 runs of freed blocks, and trim() punches them
// all. retain_freed_bytes = 0 punches in free() itself, one call per run of blocks the record leaves empty. A file
// system or device that refuses (EOPNOTSUPP) is not asked again (punches() turns false); freed blocks are reused all
// the same.
//
// Writes: the batch buffer goes out in requests of io_bytes, up to max_in_flight at once, through
// Linux native AIO, which with O_DIRECT keeps that many requests at the device while the store
// waits; where io_setup is refused (ENOSYS, EAGAIN at fs.aio-max-nr, or anything else), one pwrite
// at a time. Any failed or short request fails the batch: its blocks are punched and freed again,
// nothing is leaked. ENOSPC (and EDQUOT) below the store is no_space, anything else io_error.
// Reads: one pread of the blocks covering the record into a 4 KiB-aligned buffer of the calling
// thread's, reused by every read on that thread (no allocation in steady state), then copied out.
//
// Direct I/O (the default): O_DIRECT, so written-back pages do not sit in the page cache, which
// would spend the memory writeback exists to save. Where the file system refuses O_DIRECT at open
// (EINVAL), the store uses buffered I/O and direct_io() says so: after each batch it starts
// writeback of the batch and drops the previous batch's cached pages (POSIX_FADV_DONTNEED drops
// only clean pages, and the previous batch has had a batch's time to be written), and each read
// drops the pages it read.
//
// Memory: 576 KiB per GiB of backing store for the block bookkeeping (2 bits and a 2-byte count
// per 4 KiB block, 0.05%), plus the batch buffer (buffer_bytes, 4 MiB, rounded up to 2 MiB,
// resident from construction, in huge pages where the kernel gives them: detail::IoBuffer) and
// 16 B per record of max_batch_records for the batch's runs of blocks, plus one read buffer per
// thread that reads (12 KiB for records of 4 KiB pages).
//
// Locks: a std::mutex serialises writers (held across a batch's I/O; "FileBackingStore writer").
// Readers and free() take no lock: the block bookkeeping is atomic (see block_space.hpp), and a
// punch runs before its blocks can be claimed again (in free() before it frees them, or in the
// writer, which is the one that claims). Nothing else is taken under the mutex, so it
// is a leaf in store.hpp's lock order, below every lock of the store.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "../detail/file_io.hpp"
#include "../detail/os.hpp"
#include "../detail/packed_store.hpp"
#include "backing_store.hpp"
#include "record.hpp"

namespace zpage {

struct FileBackingConfig {
    // A regular file (created if absent; an existing one is truncated: records live as long as the
    // store, and the destructor truncates it again) or a block device (opened exclusively, so a
    // mounted one is refused).
    std::string path;
    // The most the store may use, rounded down to 4 KiB. 0: a block device's size; a regular
    // file needs it.
    std::uint64_t max_bytes = 0;
    // Bytes per write request, a multiple of 4 KiB. 1 MiB, dd's block: on the project's test
    // machine (a virtio disk) a request costs about 0.1 ms beyond its bytes, however many are in
    // flight, so 1 MiB requests wrote at 1.19-1.21 of `dd bs=1M oflag=direct` and 128 KiB ones at
    // 0.58-0.70 (bench_backing_store, medians; the README has the run).
    std::size_t io_bytes = std::size_t{1} << 20;
    // The batch buffer, a multiple of 4 KiB that holds a record of max_record_bytes: a write()
    // whose records take more blocks goes out in parts of this size, one after the other.
    std::size_t buffer_bytes = std::size_t{4} << 20;
    // Write requests in flight at once (native AIO). Like zram's writeback_batch_size, it trades
    // the device's queue depth against one batch's latency.
    unsigned max_in_flight = 8;
    // O_DIRECT, with a fallback to buffered I/O where the file system refuses it (direct_io()).
    bool direct_io = true;
    // The longest record write() takes: a 4 KiB page stored raw, with its record header.
    std::size_t max_record_bytes = record_bytes(4096);
    // The most records one write() takes.
    std::size_t max_batch_records = 4096;
    // Freed space kept allocated for later batches rather than punched at once (see above); 0:
    // free() punches what it empties itself.
    std::uint64_t retain_freed_bytes = std::uint64_t{32} << 20;

    // Throws std::invalid_argument naming the field at fault.
    void validate() const {
        const auto fail = [&](const std::string& what) {
            throw std::invalid_argument("zpage::FileBackingConfig (" + path + "): " + what);
        };
        if (path.empty()) fail("path is empty");
        if (io_bytes == 0 || io_bytes % detail::file_io::block_bytes != 0 || io_bytes > max_io_bytes)
            fail("io_bytes must be a multiple of 4096 in [4096, 64 MiB]");
        if (max_in_flight == 0 || max_in_flight > max_requests_in_flight)
            fail("max_in_flight must be in [1, " + std::to_string(max_requests_in_flight) + "]");
        if (max_record_bytes == 0 || max_record_bytes > max_io_bytes) fail("max_record_bytes must be in [1, 64 MiB]");
        if (buffer_bytes % detail::file_io::block_bytes != 0 || buffer_bytes > max_io_bytes ||
            buffer_bytes < detail::BlockSpace::blocks_for(max_record_bytes) * detail::file_io::block_bytes)
            fail("buffer_bytes must be a multiple of 4096 in [a record of max_record_bytes, 64 MiB]");
        if (max_batch_records == 0 || max_batch_records > max_records_per_batch)
            fail("max_batch_records must be in [1, " + std::to_string(max_records_per_batch) + "]");
        if (max_bytes != 0 && max_bytes / 4096 < (max_record_bytes + 4095) / 4096)
            fail("max_bytes does not hold one record of max_record_bytes");
    }

    static constexpr std::size_t max_io_bytes = std::size_t{64} << 20;
    static constexpr unsigned max_requests_in_flight = 1024;
    static constexpr std::size_t max_records_per_batch = 65536;
};

namespace detail {
// A 4 KiB-aligned buffer of at least `bytes` for the calling thread, shared by every read of
// every FileBackingStore on that thread: O_DIRECT reads need aligned memory, and a read must not
// allocate in steady state. Grows when a larger read comes; nullptr when memory cannot be had.
[[nodiscard]] inline std::byte* thread_read_buffer(std::size_t bytes) noexcept {
    struct Buffer {
        std::byte* data = nullptr;
        std::size_t bytes = 0;
        ~Buffer() { std::free(data); }
    };
    thread_local Buffer buffer;
    if (buffer.bytes < bytes) {
        const std::size_t size = BlockSpace::blocks_for(bytes) * BlockSpace::block_bytes;
        auto* grown = static_cast<std::byte*>(std::aligned_alloc(BlockSpace::block_bytes, size));
        if (grown == nullptr) return nullptr;
        std::free(buffer.data);
        buffer.data = grown;
        buffer.bytes = size;
    }
    return buffer.data;
}

// The batch buffer: aligned to 2 MiB and backed by transparent huge pages where the kernel gives
// them (MADV_HUGEPAGE; "madvise" or "always" in /sys/kernel/mm/transparent_hugepage/enabled), so
// that an O_DIRECT request from it is one run of physical memory. From 4 KiB pages a 1 MiB request
// is 256 scatter-gather segments, more than a virtio disk takes in one (max_segments 254 on the
// project's test machine): 1 MiB O_DIRECT writes with 2 in flight ran at 0.95-1.18 GB/s from
// 4 KiB pages and 4.47-4.53 GB/s from a huge page there. Populated at construction.
class IoBuffer {
public:
    // Throws std::bad_alloc.
    explicit IoBuffer(std::size_t bytes)
        : bytes_((bytes + os::huge_page_bytes - 1) / os::huge_page_bytes * os::huge_page_bytes),
          data_(os::reserve_huge_aligned(bytes_)) {
        if (data_ == nullptr) throw std::bad_alloc();
        static_cast<void>(os::advise_huge_pages(data_, bytes_));
        if (!os::populate(data_, bytes_)) {
            os::release(data_, bytes_);
            throw std::bad_alloc();
        }
    }
    ~IoBuffer() { os::release(data_, bytes_); }
    IoBuffer(const IoBuffer&) = delete;
    IoBuffer& operator=(const IoBuffer&) = delete;

    [[nodiscard]] std::byte* get() const noexcept { return data_; }

private:
    const std::size_t bytes_;
    std::byte* const data_;
};
}  // namespace detail

class FileBackingStore {
public:
    // Opens (or creates) config.path. Throws std::invalid_argument for a bad configuration or a
    // path that is neither a regular file nor a block device, std::system_error (with the path and
    // errno's text) when the OS refuses to open or size it, std::bad_alloc.
    explicit FileBackingStore(FileBackingConfig config)
        : config_(validated(std::move(config))),
          backing_(open_backing(config_)),
          books_(backing_.capacity_bytes, config_.max_record_bytes, config_.max_batch_records,
                 config_.retain_freed_bytes, "FileBackingStore writer", config_.buffer_bytes),
          buffer_bytes_(config_.buffer_bytes),
          buffer_(buffer_bytes_),
          ios_(std::make_unique<Io[]>(buffer_bytes_ / block_bytes)),
          requests_(std::make_unique<iocb[]>(buffer_bytes_ / block_bytes)),
          request_pointers_(std::make_unique<iocb*[]>(buffer_bytes_ / block_bytes)),
          events_(std::make_unique<io_event[]>(config_.max_in_flight)) {
        native_aio_.store(aio_.setup(config_.max_in_flight), std::memory_order_relaxed);
    }

    // Truncates a regular file to nothing: its records die with the store. Callers must have
    // finished every write, read and free.
    ~FileBackingStore() {
        if (!backing_.block_device) static_cast<void>(detail::file_io::set_file_bytes(backing_.fd.get(), 0));
    }

    FileBackingStore(const FileBackingStore&) = delete;
    FileBackingStore& operator=(const FileBackingStore&) = delete;

    [[nodiscard]] std::size_t max_record_bytes() const noexcept { return books_.max_record_bytes(); }
    [[nodiscard]] std::size_t max_batch_records() const noexcept { return books_.max_batch_records(); }
    [[nodiscard]] const FileBackingConfig& config() const noexcept { return config_; }
    // The bytes the store may use: max_bytes (or the device's size) rounded down to 4 KiB.
    [[nodiscard]] std::uint64_t capacity_bytes() const noexcept { return books_.capacity_bytes(); }
    [[nodiscard]] bool block_device() const noexcept { return backing_.block_device; }
    // False when direct I/O was not asked for or the file system refused O_DIRECT: buffered I/O,
    // with the page cache dropped after writes and reads.
    [[nodiscard]] bool direct_io() const noexcept { return backing_.direct; }
    // False when io_setup was refused (or a wait for completions failed, after which the context
    // is dropped): writes go out one pwrite at a time.
    [[nodiscard]] bool native_aio() const noexcept { return native_aio_.load(std::memory_order_relaxed); }
    // False once the file system or device refused to punch or discard (EOPNOTSUPP): freed
    // blocks are reused, but their space is not given back.
    [[nodiscard]] bool punches() const noexcept { return punches_.load(std::memory_order_relaxed); }
    // Freed space not punched yet (see retain_freed_bytes). Any thread.
    [[nodiscard]] std::uint64_t retained_bytes() const noexcept { return books_.retained_bytes(); }

    // Punches every freed block not punched yet, adjacent ones in one call: the file system or
    // device gets all the space no record uses back. Any thread; waits for a write in progress.
    void trim() noexcept { books_.trim(punch_fn()); }

    // See BackingStore (backing_store.hpp). io_error, no_space, invalid_argument. Any thread;
    // writers wait for each other on a std::mutex held across the batch's I/O.
    Status write(std::span<const std::span<const std::byte>> records, std::span<BackingLocation> locations) noexcept {
        const auto put = [&](std::span<const std::span<const std::byte>> part, std::span<const BackingLocation> at,
                             std::span<const Extent> extents) {
            const std::size_t ios = pack(part, at, extents);
            const Status written = native_aio() ? write_native(ios) : write_sequential(ios);
            if (written && !backing_.direct) drop_written(extents);
            return written;
        };
        return books_.write(records, locations, put, punch_fn());
    }

    // See BackingStore. io_error (a failed or short read), invalid_argument, out_of_memory (the
    // thread's first read buffer could not be had). Any thread, concurrently with everything.
    Status read(BackingLocation location, std::span<std::byte> out) noexcept {
        if (const Status s = books_.check_read(location, out.size()); !s) return s;
        const std::uint64_t first = location / block_bytes * block_bytes;
        const std::uint64_t bytes = detail::BlockSpace::blocks_for(location + out.size() - first) * block_bytes;
        std::byte* buffer = detail::thread_read_buffer(bytes);
        if (buffer == nullptr) return books_.failed_read(errc::out_of_memory);
        ssize_t got;
        do {
            got = detail::file_io::pread(backing_.fd.get(), buffer, bytes, first);
        } while (got < 0 && errno == EINTR);
        if (got < 0 || static_cast<std::uint64_t>(got) != bytes) return books_.failed_read(errc::io_error);
        std::memcpy(out.data(), buffer + (location - first), out.size());
        if (!backing_.direct) detail::file_io::drop_cached(backing_.fd.get(), first, bytes);
        books_.count_read(location, out.size());
        return {};
    }

    // See BackingStore. With retain_freed_bytes = 0, punches or discards the blocks the record
    // leaves empty (one syscall per run of them) in the calling thread; else only marks them.
    // Any thread.
    void free(BackingLocation location, std::size_t length) noexcept { books_.free(location, length, punch_fn()); }

    // Any thread: a snapshot (bd_count is exact; the counters are summed stripe by stripe).
    [[nodiscard]] BackingStats stats() const noexcept { return books_.stats(); }

private:
    using Extent = detail::PackedStore::Extent;
    static constexpr std::size_t block_bytes = detail::file_io::block_bytes;

    // One write request: bytes from the batch buffer to the backing file.
    struct Io {
        std::size_t buffer_offset = 0;
        std::uint64_t file_offset = 0;
        std::size_t bytes = 0;
    };

    struct Backing {
        detail::file_io::Descriptor fd;
        bool block_device = false;
        bool direct = false;
        std::uint64_t capacity_bytes = 0;
    };

    static FileBackingConfig validated(FileBackingConfig config) {
        config.validate();
        return config;
    }

    [[noreturn]] static void fail_os(const std::string& path, const char* what, int error) {
        throw std::system_error(error, std::generic_category(),
                                "zpage::FileBackingStore: " + std::string(what) + " " + path);
    }

    static Backing open_backing(const FileBackingConfig& config) {
        namespace io = detail::file_io;
        const char* path = config.path.c_str();
        struct stat st {};
        const bool exists = io::stat_path(path, st);
        if (!exists && errno != ENOENT) fail_os(config.path, "cannot stat", errno);
        const bool block_device = exists && S_ISBLK(st.st_mode);
        if (exists && !block_device && !S_ISREG(st.st_mode))
            throw std::invalid_argument("zpage::FileBackingStore: " + config.path +
                                        " is neither a regular file nor a block device");
        if (!block_device && config.max_bytes == 0)
            throw std::invalid_argument("zpage::FileBackingConfig (" + config.path +
                                        "): max_bytes is needed for a regular file");
        // O_EXCL on a block device is an exclusive open: refused (EBUSY) while it is mounted.
        const int flags = O_RDWR | (block_device ? O_EXCL : O_CREAT);
        bool direct = config.direct_io;
        int opened = io::open(path, flags | (direct ? O_DIRECT : 0));
        if (opened < 0 && direct && errno == EINVAL) {  // a file system without O_DIRECT
            direct = false;
            opened = io::open(path, flags);
        }
        if (opened < 0) fail_os(config.path, "cannot open", errno);
        io::Descriptor fd(opened);
        if (!io::stat_fd(fd.get(), st)) fail_os(config.path, "cannot stat", errno);
        if (S_ISBLK(st.st_mode) != block_device || (!block_device && !S_ISREG(st.st_mode)))
            throw std::invalid_argument("zpage::FileBackingStore: " + config.path + " changed type while opened");
        std::uint64_t bytes = config.max_bytes;
        if (block_device) {
            std::uint64_t device_bytes = 0;
            if (!io::block_device_bytes(fd.get(), device_bytes)) fail_os(config.path, "cannot size", errno);
            if (bytes > device_bytes)
                throw std::invalid_argument("zpage::FileBackingConfig (" + config.path + "): max_bytes " +
                                            std::to_string(bytes) + " exceeds the device's " +
                                            std::to_string(device_bytes));
            if (bytes == 0) bytes = device_bytes;
        }
        const std::uint64_t capacity = bytes / block_bytes * block_bytes;
        if (capacity < detail::BlockSpace::blocks_for(config.max_record_bytes) * block_bytes)
            throw std::invalid_argument("zpage::FileBackingConfig (" + config.path +
                                        "): max_bytes does not hold one record of max_record_bytes");
        // A file is sized once, as a hole: a read never meets its end, and only records take space.
        if (!block_device && (!io::set_file_bytes(fd.get(), 0) || !io::set_file_bytes(fd.get(), capacity)))
            fail_os(config.path, "cannot size", errno);
        return Backing{std::move(fd), block_device, direct, capacity};
    }

    // Copies a part's records into the batch buffer, each extent from a 4 KiB boundary of it,
    // zeroes the padding, and cuts the extents into requests of at most io_bytes. Returns their
    // number.
    std::size_t pack(std::span<const std::span<const std::byte>> records, std::span<const BackingLocation> locations,
                     std::span<const Extent> extents) noexcept {
        std::size_t e = 0, buffer_offset = 0;
        std::uint64_t filled_to = extents[0].first_block * block_bytes;  // file offset of the extent's used end
        const auto finish_extent = [&] {
            const std::uint64_t start = extents[e].first_block * block_bytes;
            const std::uint64_t end = start + extents[e].blocks * block_bytes;
            std::memset(buffer_.get() + buffer_offset + (filled_to - start), 0, end - filled_to);
            buffer_offset += extents[e].blocks * block_bytes;
        };
        for (std::size_t i = 0; i < records.size(); ++i) {
            // Records fill the extents in order; an extent may lie before the previous one (next-fit
            // wrapped around), so a record starts the next extent when it is not inside this one.
            std::uint64_t start = extents[e].first_block * block_bytes;
            if (locations[i] < start || locations[i] >= start + extents[e].blocks * block_bytes) {
                finish_extent();
                filled_to = start = extents[++e].first_block * block_bytes;
            }
            std::memcpy(buffer_.get() + buffer_offset + (locations[i] - start), records[i].data(), records[i].size());
            filled_to = locations[i] + records[i].size();
        }
        finish_extent();
        ZPAGE_ASSERT(buffer_offset <= buffer_bytes_);  // the worst case: each record in runs of its own
        std::size_t n = 0;
        buffer_offset = 0;
        for (const Extent& x : extents) {
            const std::uint64_t bytes = x.blocks * block_bytes;
            for (std::uint64_t done = 0; done < bytes; done += config_.io_bytes)
                ios_[n++] = Io{buffer_offset + done, x.first_block * block_bytes + done,
                               static_cast<std::size_t>(std::min<std::uint64_t>(config_.io_bytes, bytes - done))};
            buffer_offset += bytes;
        }
        return n;
    }

    static Status failed_status(int error) noexcept {
        return error == ENOSPC || error == EDQUOT ? errc::no_space : errc::io_error;
    }

    // The batch's requests through native AIO, up to max_in_flight at once. After the first
    // failure nothing more is submitted, but what is in flight is waited for: the buffer and the
    // blocks are not given back while the device may still be writing them.
    Status write_native(std::size_t n) noexcept {
        std::size_t next = 0, in_flight = 0;
        Status result;
        for (;;) {
            while (result && next < n && in_flight < config_.max_in_flight) {
                const std::size_t count = std::min<std::size_t>(n - next, config_.max_in_flight - in_flight);
                for (std::size_t j = next; j < next + count; ++j) {
                    detail::file_io::AioContext::prepare_write(requests_[j], backing_.fd.get(),
                                                               buffer_.get() + ios_[j].buffer_offset, ios_[j].bytes,
                                                               ios_[j].file_offset, j);
                    request_pointers_[j] = &requests_[j];
                }
                const long taken = aio_.submit(std::span<iocb*>(request_pointers_.get() + next, count));
                if (taken > 0) {
                    next += static_cast<std::size_t>(taken);
                    in_flight += static_cast<std::size_t>(taken);
                } else if (in_flight != 0 && (taken == 0 || errno == EAGAIN)) {
                    break;  // the kernel's queue is full: reap, then submit again
                } else {
                    result = taken < 0 ? failed_status(errno) : errc::io_error;
                }
            }
            if (in_flight == 0) return result;
            const long got = aio_.wait(std::span<io_event>(events_.get(), config_.max_in_flight));
            if (got < 0) {
                // The context is unusable: io_destroy waits for the requests in flight, and later
                // batches go out with pwrite.
                aio_.reset();
                native_aio_.store(false, std::memory_order_relaxed);
                return errc::io_error;
            }
            for (long k = 0; k < got; ++k) {
                const io_event& done = events_[static_cast<std::size_t>(k)];
                --in_flight;
                if (!result) continue;
                if (done.res < 0)
                    result = failed_status(static_cast<int>(-done.res));
                else if (static_cast<std::uint64_t>(done.res) != ios_[done.data].bytes)
                    result = errc::io_error;
            }
        }
    }

    // The batch's requests one pwrite at a time. A short write fails the batch: with O_DIRECT the
    // rest could not be written from an unaligned offset, and a short count precedes an error.
    Status write_sequential(std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i) {
            ssize_t written;
            do {
                written = detail::file_io::pwrite(backing_.fd.get(), buffer_.get() + ios_[i].buffer_offset,
                                                  ios_[i].bytes, ios_[i].file_offset);
            } while (written < 0 && errno == EINTR);
            if (written < 0) return failed_status(errno);
            if (static_cast<std::size_t>(written) != ios_[i].bytes) return errc::io_error;
        }
        return {};
    }

    // Buffered I/O: starts writeback of this batch and drops the cached pages of the previous one
    // (its writeback has had a batch's time to finish) and whatever of this one is already clean.
    void drop_written(std::span<const Extent> extents) noexcept {
        namespace io = detail::file_io;
        const int fd = backing_.fd.get();
        std::uint64_t lo = ~std::uint64_t{0}, hi = 0;
        for (const Extent& e : extents) {
            io::start_writeback(fd, e.first_block * block_bytes, e.blocks * block_bytes);
            lo = std::min(lo, e.first_block * block_bytes);
            hi = std::max(hi, (e.first_block + e.blocks) * block_bytes);
        }
        if (previous_hi_ != 0) io::drop_cached(fd, previous_lo_, previous_hi_ - previous_lo_);
        io::drop_cached(fd, lo, hi - lo);
        previous_lo_ = lo;
        previous_hi_ = hi;
    }

    // What PackedStore calls to give a run of blocks back.
    struct Puncher {
        FileBackingStore* store;
        void operator()(std::uint64_t first_block, std::uint64_t blocks) const noexcept {
            store->punch(first_block, blocks);
        }
    };
    Puncher punch_fn() noexcept { return {this}; }

    void punch(std::uint64_t first_block, std::uint64_t blocks) noexcept {
        if (!punches_.load(std::memory_order_relaxed)) return;
        const int error = detail::file_io::punch(backing_.fd.get(), backing_.block_device, first_block * block_bytes,
                                                 blocks * block_bytes);
        if (error == EOPNOTSUPP || error == ENOTTY) punches_.store(false, std::memory_order_relaxed);
    }

    const FileBackingConfig config_;
    const Backing backing_;
    detail::PackedStore books_;
    std::atomic<bool> native_aio_{false};
    std::atomic<bool> punches_{true};

    // The writer's, under books_' writer lock: the batch buffer, its requests, their completions.
    const std::size_t buffer_bytes_;
    detail::IoBuffer buffer_;
    std::unique_ptr<Io[]> ios_;
    std::unique_ptr<iocb[]> requests_;
    std::unique_ptr<iocb*[]> request_pointers_;
    std::unique_ptr<io_event[]> events_;
    detail::file_io::AioContext aio_;
    std::uint64_t previous_lo_ = 0, previous_hi_ = 0;  // the previous batch's byte range (buffered I/O)
};

static_assert(BackingStore<FileBackingStore>);

}  // namespace zpage
