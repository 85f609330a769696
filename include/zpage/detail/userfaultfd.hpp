// zpage internal: the userfaultfd calls a compressed region makes, with the constants of kernels
// newer than the build machine's headers (UFFDIO_MOVE: Linux 6.8), in one place, so that tests can
// make any call that resolves, moves or protects a page fail with a chosen errno (fault_injector),
// as file_io.hpp does for the backing stores' I/O.
#pragma once

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "os.hpp"

namespace zpage::detail::uffd {

// The calls a test can make fail: those that change a page of a registered range.
enum class Call : std::uint8_t {
    copy,       // UFFDIO_COPY: a page's bytes into an absent page
    zero,       // UFFDIO_ZEROPAGE
    move,       // UFFDIO_MOVE
    poison,     // UFFDIO_POISON
    protect,    // UFFDIO_WRITEPROTECT, setting the protection
    unprotect,  // UFFDIO_WRITEPROTECT, lifting it (and waking the writers)
    drop,       // MADV_DONTNEED of one page of a batch (drop()); its source is 0
    count
};

// Test hook: when set, consulted before each of those calls with the call, its destination and
// its source (0 where it has none; the range's start for the range calls). A positive result is
// an errno the call returns instead of asking the kernel, so the pages stay as they were and no
// waiting thread is woken, as when the kernel refuses. A negative one, -errno, is for a kernel
// that does the call and reports that errno all the same (UFFDIO_MOVE only, see move()).
// Unset, a call costs one atomic load more.
using FaultInjector = int (*)(Call call, std::uintptr_t dst, std::uintptr_t src) noexcept;
inline std::atomic<FaultInjector> fault_injector{nullptr};

// What the hook says of a call: 0 (make it), an errno to return instead, or -errno (see above).
[[nodiscard]] inline int injected_result(Call call, const void* dst, const void* src = nullptr) noexcept {
    const FaultInjector hook = fault_injector.load(std::memory_order_acquire);
    return hook != nullptr ? hook(call, reinterpret_cast<std::uintptr_t>(dst), reinterpret_cast<std::uintptr_t>(src))
                           : 0;
}

// The errno a call returns without asking the kernel, or 0.
[[nodiscard]] inline int injected(Call call, const void* dst, const void* src = nullptr) noexcept {
    const int result = injected_result(call, dst, src);
    return result > 0 ? result : 0;
}

#ifndef UFFD_FEATURE_MOVE
inline constexpr std::uint64_t feature_move = std::uint64_t{1} << 16;
struct uffdio_move {
    std::uint64_t dst;
    std::uint64_t src;
    std::uint64_t len;
    std::uint64_t mode;
    std::int64_t move;
};
inline constexpr unsigned long ioctl_move = _IOWR(UFFDIO, 0x05, struct uffdio_move);
#else
inline constexpr std::uint64_t feature_move = UFFD_FEATURE_MOVE;
using uffdio_move = ::uffdio_move;
inline constexpr unsigned long ioctl_move = UFFDIO_MOVE;
#endif

// UFFDIO_POISON (Linux 6.6): an access to the page raises SIGBUS, as memory that failed does.
inline constexpr std::uint64_t feature_poison = std::uint64_t{1} << 14;
struct uffdio_poison {
    uffdio_range range;
    std::uint64_t mode;
    std::int64_t updated;
};
inline constexpr unsigned long ioctl_poison = _IOWR(UFFDIO, 0x08, struct uffdio_poison);

// A userfaultfd, non-blocking and close-on-exec: from the system call, else from
// /dev/userfaultfd (Linux 6.1), which a system may open to a group instead of allowing the call.
// On failure, -1 and `why` says what refused it and how to allow it.
inline int open_fd(std::string& why) noexcept {
    const int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd >= 0) return fd;
    const int call_errno = errno;
    int dev_errno = 0;
    const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        const int made = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        dev_errno = errno;
        ::close(dev);
        if (made >= 0) return made;
    } else {
        dev_errno = errno;
    }
    try {
        why = "userfaultfd is not allowed for this process (userfaultfd(2): " + std::string(std::strerror(call_errno)) +
              "; /dev/userfaultfd: " + std::strerror(dev_errno) +
              "): allow it with sysctl vm.unprivileged_userfaultfd=1, or give the process read and write access to "
              "/dev/userfaultfd (or CAP_SYS_PTRACE); in a container, its seccomp profile must allow userfaultfd";
    } catch (...) {
    }
    return -1;
}

// The API handshake, asking for `features`; false when the kernel lacks any of them.
inline bool handshake(int fd, std::uint64_t features, std::uint64_t& offered) noexcept {
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = features;
    if (::ioctl(fd, UFFDIO_API, &api) != 0) return false;
    offered = api.features;
    return (api.features & features) == features;
}

// Registers [start, start + bytes) for missing-page faults and, with `write_protect`, for
// write-protect faults as well (Linux 5.7 for anonymous memory).
inline bool register_range(int fd, void* start, std::size_t bytes, bool write_protect = false) noexcept {
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<std::uintptr_t>(start);
    reg.range.len = bytes;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING | (write_protect ? UFFDIO_REGISTER_MODE_WP : 0);
    if (::ioctl(fd, UFFDIO_REGISTER, &reg) != 0) return false;
    if (write_protect && (reg.ioctls & (std::uint64_t{1} << _UFFDIO_WRITEPROTECT)) == 0) {
        errno = EOPNOTSUPP;
        return false;
    }
    return true;
}

inline bool register_missing(int fd, void* start, std::size_t bytes) noexcept {
    return register_range(fd, start, bytes, false);
}

inline void unregister(int fd, void* start, std::size_t bytes) noexcept {
    uffdio_range range{};
    range.start = reinterpret_cast<std::uintptr_t>(start);
    range.len = bytes;
    static_cast<void>(::ioctl(fd, UFFDIO_UNREGISTER, &range));
}

// The result of an ioctl that resolves a fault: 0, or the errno (EEXIST: the page was there).
// With `write_protected`, the page is installed write-protected: a write to it faults.
inline int copy(int fd, void* dst, const void* src, std::size_t bytes, bool write_protected = false) noexcept {
    if (const int error = injected(Call::copy, dst, src); error != 0) return error;
    uffdio_copy c{};
    c.dst = reinterpret_cast<std::uintptr_t>(dst);
    c.src = reinterpret_cast<std::uintptr_t>(src);
    c.len = bytes;
    c.mode = write_protected ? UFFDIO_COPY_MODE_WP : 0;
    return ::ioctl(fd, UFFDIO_COPY, &c) == 0 ? 0 : errno;
}

// An ioctl on a range whose request struct starts with it (UFFDIO_ZEROPAGE, UFFDIO_POISON).
template <class Request>
int range_ioctl(int fd, unsigned long request, void* dst, std::size_t bytes) noexcept {
    Request r{};
    r.range.start = reinterpret_cast<std::uintptr_t>(dst);
    r.range.len = bytes;
    return ::ioctl(fd, request, &r) == 0 ? 0 : errno;
}

inline int zero(int fd, void* dst, std::size_t bytes) noexcept {
    if (const int error = injected(Call::zero, dst); error != 0) return error;
    return range_ioctl<uffdio_zeropage>(fd, UFFDIO_ZEROPAGE, dst, bytes);
}

// Moves the page at `src` to `dst`: afterwards `src` is absent. Returns 0 or the errno.
// `dst` must be absent before the call and stay the caller's alone (nothing else maps it), and so
// must `src` while the call runs. Why: Linux 6.18's UFFDIO_MOVE, when it has to try a page again
// (its entry changed under it: a write protection set elsewhere, the accessed bit), can move the
// page and then, trying it once more, fail with EEXIST, finding its own move's page at `dst`.
// Under the precondition, an EEXIST with a page at `dst` and none at `src` is such a move and is
// returned as done; a caller that took it for a refusal would drop the page with `dst`.
inline int move(int fd, void* dst, void* src) noexcept {
    const int injection = injected_result(Call::move, dst, src);
    if (injection > 0) return injection;
    uffdio_move m{};
    m.dst = reinterpret_cast<std::uintptr_t>(dst);
    m.src = reinterpret_cast<std::uintptr_t>(src);
    m.len = os::page_bytes;
    int error = ::ioctl(fd, ioctl_move, &m) == 0 ? 0 : errno;
    if (error == 0 && injection < 0) error = -injection;
    if (error == EEXIST && os::page_mapped(dst) && !os::page_mapped(src)) return 0;
    return error;
}

inline int poison(int fd, void* dst, std::size_t bytes) noexcept {
    if (const int error = injected(Call::poison, dst); error != 0) return error;
    return range_ioctl<uffdio_poison>(fd, ioctl_poison, dst, bytes);
}

// Write-protects the present pages of a range (one TLB flush for all of them), or lifts the
// protection and wakes the writers waiting on it. Returns 0 or the errno.
inline int write_protect(int fd, void* start, std::size_t bytes, bool protect) noexcept {
    if (const int error = injected(protect ? Call::protect : Call::unprotect, start); error != 0) return error;
    uffdio_writeprotect wp{};
    wp.range.start = reinterpret_cast<std::uintptr_t>(start);
    wp.range.len = bytes;
    wp.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
    return ::ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : errno;
}

// A pidfd of this process, for drop(); -1 where the kernel has none (before Linux 5.3).
inline int open_self_pidfd() noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0U));
}

// Drops `count` pages of this process (MADV_DONTNEED), at `pages` in ascending order, and says
// which went in `dropped`. With a pidfd of this process, one process_madvise for all of them: a
// single TLB flush where the kernel batches it (Linux 6.15), where one madvise a page is a flush
// each, each an interrupt of every other CPU running the process. A kernel whose process_madvise
// does not take MADV_DONTNEED (before Linux 6.13: EINVAL) clears `batched` and gets one madvise
// a page from then on. Returns how many went.
inline std::size_t drop(int pidfd, std::atomic<bool>& batched, std::byte* const* pages, std::size_t count,
                        bool* dropped) noexcept {
    constexpr std::size_t most = 64;  // pages a call takes, and so at most as many runs of them
    if (count > most)
        return drop(pidfd, batched, pages, most, dropped) +
               drop(pidfd, batched, pages + most, count - most, dropped + most);
    iovec runs[most];
    std::size_t run_count = 0;
    for (std::size_t i = 0; i < count; ++i) {
        dropped[i] = false;
        if (injected(Call::drop, pages[i]) != 0) continue;
        if (run_count > 0 && static_cast<std::byte*>(runs[run_count - 1].iov_base) + runs[run_count - 1].iov_len == pages[i])
            runs[run_count - 1].iov_len += os::page_bytes;
        else
            runs[run_count++] = {pages[i], os::page_bytes};
        dropped[i] = true;  // asked for; cleared below for a page the kernel did not get to
    }
    std::size_t done_bytes = 0;
    if (pidfd >= 0 && run_count > 0 && batched.load(std::memory_order_relaxed)) {
        const long result = ::syscall(SYS_process_madvise, pidfd, runs, run_count, MADV_DONTNEED, 0U);
        if (result > 0) done_bytes = static_cast<std::size_t>(result);
        else if (errno == EINVAL || errno == ENOSYS || errno == EPERM) batched.store(false, std::memory_order_relaxed);
    }
    // The kernel advises the runs in order: what it returned covers a prefix of the pages asked for.
    std::size_t gone = 0;
    for (std::size_t i = 0; i < count; ++i) {
        if (!dropped[i]) continue;
        if (done_bytes >= os::page_bytes) {
            done_bytes -= os::page_bytes;
        } else {
            dropped[i] = ::madvise(pages[i], os::page_bytes, MADV_DONTNEED) == 0;
        }
        gone += dropped[i];
    }
    return gone;
}

inline void wake(int fd, void* start, std::size_t bytes) noexcept {
    uffdio_range range{};
    range.start = reinterpret_cast<std::uintptr_t>(start);
    range.len = bytes;
    static_cast<void>(::ioctl(fd, UFFDIO_WAKE, &range));
}

}  // namespace zpage::detail::uffd
