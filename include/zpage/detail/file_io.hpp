// zpage internal: every file and block-device call zpage makes (the backing stores that written-
// back pages go to), in one place, so that tests can make any of them fail with a chosen errno or
// a short transfer (fault_injector), and so that a port touches one file. os.hpp holds the memory
// calls; this is its counterpart for I/O, kept apart so that a program that never writes back
// never includes <linux/aio_abi.h>.
//
// Native AIO goes through raw syscalls (io_setup, io_submit, io_getevents, io_destroy): libaio
// would be a new dependency for four one-line wrappers.
#pragma once

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <span>
#include <utility>

namespace zpage::detail::file_io {

// Every I/O zpage's backing stores make is in these units and aligned to them: what O_DIRECT
// needs on any device whose logical block is at most 4 KiB (all common ones), and the unit of
// zram's bd_stat.
inline constexpr std::size_t block_bytes = 4096;

enum class Call : std::uint8_t {
    open,       // open(2) of the backing file or device
    setup_aio,  // io_setup(2): refused, the store falls back to pwrite
    submit,     // one io_submit(2) syscall: fails as a whole
    write,      // one write request: its pwrite(2), or its completion under native AIO
    read,       // one pread(2)
    punch,      // fallocate(PUNCH_HOLE) on a file, BLKDISCARD on a device
    count
};

// What an injected fault does to a call: fail it with `error` (an errno), or, for write and read,
// transfer only half the bytes asked (rounded down to 4 KiB) and report that count.
struct Fault {
    int error = 0;
    bool short_transfer = false;
    [[nodiscard]] constexpr bool any() const noexcept { return error != 0 || short_transfer; }
};

// Test hook: when set, consulted before each call; a Fault with any() makes that call fail.
using FaultInjector = Fault (*)(Call) noexcept;
inline std::atomic<FaultInjector> fault_injector{nullptr};

[[nodiscard]] inline Fault injected(Call call) noexcept {
    const FaultInjector hook = fault_injector.load(std::memory_order_acquire);
    return hook != nullptr ? hook(call) : Fault{};
}

[[nodiscard]] constexpr std::size_t short_length(std::size_t bytes) noexcept {
    return bytes / 2 / block_bytes * block_bytes;
}

// Returns a descriptor, or -1 with errno set. Every descriptor is close-on-exec.
[[nodiscard]] inline int open(const char* path, int flags, mode_t mode = 0600) noexcept {
    if (const Fault f = injected(Call::open); f.any()) {
        errno = f.error != 0 ? f.error : EIO;
        return -1;
    }
    int fd;
    do {
        fd = ::open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

inline void close(int fd) noexcept {
    if (fd >= 0) ::close(fd);
}

// Owns a descriptor: closed on destruction, so that a constructor that throws leaks none.
class Descriptor {
public:
    Descriptor() = default;
    explicit Descriptor(int fd) noexcept : fd_(fd) {}
    Descriptor(Descriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Descriptor& operator=(Descriptor&&) = delete;
    ~Descriptor() { close(fd_); }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

// False with errno set (ENOENT: no such path).
[[nodiscard]] inline bool stat_path(const char* path, struct stat& st) noexcept { return ::stat(path, &st) == 0; }
[[nodiscard]] inline bool stat_fd(int fd, struct stat& st) noexcept { return ::fstat(fd, &st) == 0; }

// A block device's size in bytes (BLKGETSIZE64). False with errno set.
[[nodiscard]] inline bool block_device_bytes(int fd, std::uint64_t& bytes) noexcept {
    return ::ioctl(fd, BLKGETSIZE64, &bytes) == 0;
}

// Sets a regular file's size; the new part is a hole. False with errno set.
[[nodiscard]] inline bool set_file_bytes(int fd, std::uint64_t bytes) noexcept {
    int rc;
    do {
        rc = ::ftruncate(fd, static_cast<off_t>(bytes));
    } while (rc != 0 && errno == EINTR);
    return rc == 0;
}

// The bytes an I/O of `len` may move under fault injection: len, fewer for an injected short
// transfer, or -1 with errno set for an injected failure.
[[nodiscard]] inline ssize_t injected_length(Call call, std::size_t len) noexcept {
    const Fault f = injected(call);
    if (f.error != 0) {
        errno = f.error;
        return -1;
    }
    return static_cast<ssize_t>(f.short_transfer ? short_length(len) : len);
}

// One pwrite: the bytes written, or -1 with errno set. Retries nothing; the caller decides.
[[nodiscard]] inline ssize_t pwrite(int fd, const std::byte* buf, std::size_t len, std::uint64_t offset) noexcept {
    const ssize_t n = injected_length(Call::write, len);
    return n <= 0 ? n : ::pwrite(fd, buf, static_cast<std::size_t>(n), static_cast<off_t>(offset));
}

// One pread: the bytes read, or -1 with errno set.
[[nodiscard]] inline ssize_t pread(int fd, std::byte* buf, std::size_t len, std::uint64_t offset) noexcept {
    const ssize_t n = injected_length(Call::read, len);
    return n <= 0 ? n : ::pread(fd, buf, static_cast<std::size_t>(n), static_cast<off_t>(offset));
}

// Gives [offset, offset + len) back to the file system (a hole; the file keeps its size) or the
// device (discarded). Returns 0, or an errno: EOPNOTSUPP where the file system or device cannot.
[[nodiscard]] inline int punch(int fd, bool block_device, std::uint64_t offset, std::uint64_t len) noexcept {
    if (const Fault f = injected(Call::punch); f.any()) return f.error != 0 ? f.error : EIO;
    int rc;
    do {
        if (block_device) {
            std::uint64_t range[2] = {offset, len};
            rc = ::ioctl(fd, BLKDISCARD, &range);
        } else {
            rc = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                             static_cast<off_t>(len));
        }
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? 0 : errno;
}

// Buffered I/O only: starts writeback of [offset, offset + len) without waiting for it.
inline void start_writeback(int fd, std::uint64_t offset, std::uint64_t len) noexcept {
    static_cast<void>(
        ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE));
}

// Buffered I/O only: drops the clean cached pages of [offset, offset + len); pages still dirty or
// under writeback stay (advisory, so nothing to report).
inline void drop_cached(int fd, std::uint64_t offset, std::uint64_t len) noexcept {
    static_cast<void>(::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_DONTNEED));
}

// A Linux native AIO context of a fixed number of requests in flight. Writes submitted here run
// in the background; wait() reaps their completions.
class AioContext {
public:
    AioContext() = default;
    ~AioContext() { reset(); }
    AioContext(const AioContext&) = delete;
    AioContext& operator=(const AioContext&) = delete;

    // Returns false with errno set when the kernel refuses: ENOSYS (built without AIO), EAGAIN
    // (fs.aio-max-nr reached), ENOMEM. Throws std::bad_alloc.
    [[nodiscard]] bool setup(unsigned max_requests) {
        reset();
        injected_ = std::make_unique<io_event[]>(max_requests);
        if (const Fault f = injected(Call::setup_aio); f.any()) {
            errno = f.error != 0 ? f.error : ENOSYS;
            return false;
        }
        aio_context_t ctx = 0;
        if (::syscall(SYS_io_setup, max_requests, &ctx) != 0) return false;
        ctx_ = ctx;
        return true;
    }

    [[nodiscard]] bool active() const noexcept { return ctx_ != 0; }

    // Destroys the context; io_destroy waits for the requests still in flight.
    void reset() noexcept {
        if (ctx_ != 0) ::syscall(SYS_io_destroy, ctx_);
        ctx_ = 0;
        pending_injected_ = 0;
    }

    // Submits requests in order (at most the context's capacity in flight, counting those already
    // submitted). Returns how many were taken (the kernel may take fewer than asked), or -1 with
    // errno set when none was. A request whose write is injected to fail is taken without reaching
    // the kernel and completes at the next wait() with the injected error; one injected to be short
    // reaches the kernel with half its length, so its completion reports fewer bytes than asked.
    [[nodiscard]] long submit(std::span<iocb*> requests) noexcept {
        if (const Fault f = injected(Call::submit); f.error != 0) {
            errno = f.error;
            return -1;
        }
        if (fault_injector.load(std::memory_order_acquire) == nullptr) return sys_submit(requests);
        std::size_t taken = 0;
        while (taken < requests.size()) {
            std::size_t clean = taken;
            Fault f{};
            for (; clean < requests.size(); ++clean) {
                f = injected(Call::write);
                if (f.any()) break;
            }
            if (clean > taken) {
                const long n = sys_submit(requests.subspan(taken, clean - taken));
                if (n < 0) return taken != 0 ? static_cast<long>(taken) : -1;
                taken += static_cast<std::size_t>(n);
                if (taken < clean) return static_cast<long>(taken);
            }
            if (clean == requests.size()) break;
            iocb* request = requests[clean];
            const std::size_t shorter = short_length(static_cast<std::size_t>(request->aio_nbytes));
            if (f.error == 0 && shorter != 0) {
                request->aio_nbytes = shorter;
                const long n = sys_submit(requests.subspan(clean, 1));
                if (n < 0) return taken != 0 ? static_cast<long>(taken) : -1;
                if (n == 0) return static_cast<long>(taken);
            } else {
                injected_[pending_injected_++] =
                    io_event{request->aio_data, reinterpret_cast<std::uint64_t>(request), -std::int64_t{f.error}, 0};
            }
            ++taken;
        }
        return static_cast<long>(taken);
    }

    // Waits for at least one completion and stores up to events.size() of them. Returns how many,
    // or -1 with errno set (never EINTR: retried).
    [[nodiscard]] long wait(std::span<io_event> events) noexcept {
        if (pending_injected_ != 0) {
            const std::size_t n = std::min(events.size(), pending_injected_);
            for (std::size_t i = 0; i < n; ++i) events[i] = injected_[--pending_injected_];
            return static_cast<long>(n);
        }
        long n;
        do {
            n = ::syscall(SYS_io_getevents, ctx_, 1L, static_cast<long>(events.size()), events.data(), nullptr);
        } while (n < 0 && errno == EINTR);
        return n;
    }

    // Fills a write request of `len` bytes from `buf` to `offset`; `tag` comes back in its completion.
    static void prepare_write(iocb& request, int fd, const std::byte* buf, std::size_t len, std::uint64_t offset,
                              std::uint64_t tag) noexcept {
        request = iocb{};
        request.aio_data = tag;
        request.aio_lio_opcode = IOCB_CMD_PWRITE;
        request.aio_fildes = static_cast<std::uint32_t>(fd);
        request.aio_buf = reinterpret_cast<std::uint64_t>(buf);
        request.aio_nbytes = len;
        request.aio_offset = static_cast<std::int64_t>(offset);
    }

private:
    long sys_submit(std::span<iocb*> requests) noexcept {
        long n;
        do {
            n = ::syscall(SYS_io_submit, ctx_, static_cast<long>(requests.size()), requests.data());
        } while (n < 0 && errno == EINTR);
        return n;
    }

    aio_context_t ctx_ = 0;
    // Completions of injected failures, not yet reaped: at most one per request in flight.
    std::unique_ptr<io_event[]> injected_;
    std::size_t pending_injected_ = 0;
};

}  // namespace zpage::detail::file_io
