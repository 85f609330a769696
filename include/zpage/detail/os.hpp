// zpage internal: every mmap/madvise call zpage makes, in one place, so that tests can make any
// of them fail (set_os_fault_injector) and so that a port touches one file; and the one thread
// zpage starts of its own (start_thread).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL and we touch pages instead
#endif

namespace zpage::detail::os {

// zpage's spans, tables and size classes are laid out in 4 KiB pages; a kernel with larger base
// pages is refused at construction (see check_page_size).
inline constexpr std::size_t page_bytes = 4096;

enum class Call : std::uint8_t { reserve, populate, decommit, count };

// Transparent huge pages: 2 MiB on x86-64 and arm64 with 4 KiB base pages.
inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

// Test hook: when set, consulted before each OS call; returning true makes that call fail as if
// the kernel had refused it.
using FaultInjector = bool (*)(Call) noexcept;
inline std::atomic<FaultInjector> fault_injector{nullptr};

inline bool injected_failure(Call call) noexcept {
    const FaultInjector hook = fault_injector.load(std::memory_order_acquire);
    return hook != nullptr && hook(call);
}

[[nodiscard]] inline bool page_size_supported() noexcept {
    return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) == page_bytes;
}

// Reserves `bytes` of zero-filled address space. Pages cost nothing until populated or written;
// MAP_NORESERVE keeps large reservations out of the overcommit count. Returns nullptr on failure.
[[nodiscard]] inline std::byte* reserve(std::size_t bytes) noexcept {
    if (injected_failure(Call::reserve)) return nullptr;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

// Reserves `bytes` (a multiple of huge_page_bytes) aligned to huge_page_bytes, so that each
// aligned 2 MiB of it can be backed by one transparent huge page. Returns nullptr on failure.
[[nodiscard]] inline std::byte* reserve_huge_aligned(std::size_t bytes) noexcept {
    std::byte* raw = reserve(bytes + huge_page_bytes);
    if (raw == nullptr) return nullptr;
    const auto address = reinterpret_cast<std::uintptr_t>(raw);
    const std::size_t lead = (huge_page_bytes - address % huge_page_bytes) % huge_page_bytes;
    if (lead != 0) ::munmap(raw, lead);
    ::munmap(raw + lead + bytes, huge_page_bytes - lead);
    return raw + lead;
}

// Asks for transparent huge pages on [p, p + bytes): populating an aligned 2 MiB then takes one
// fault instead of 512. Advisory; false when the kernel has them off or lacks them.
inline bool advise_huge_pages(std::byte* p, std::size_t bytes) noexcept {
#ifdef MADV_HUGEPAGE
    return ::madvise(p, bytes, MADV_HUGEPAGE) == 0;
#else
    static_cast<void>(p), static_cast<void>(bytes);
    return false;
#endif
}

inline void release(std::byte* p, std::size_t bytes) noexcept {
    if (p != nullptr) ::munmap(p, bytes);
}

// Makes [p, p + bytes) resident and writable in one call. Faulting pages in one by one costs a
// trap each; on virtual machines that is many microseconds per page, so the page pool populates
// 2 MiB at a time. Returns false when the kernel could not provide the memory.
[[nodiscard]] inline bool populate(std::byte* p, std::size_t bytes) noexcept {
    if (injected_failure(Call::populate)) return false;
    if (::madvise(p, bytes, MADV_POPULATE_WRITE) == 0) return true;
    if (errno != EINVAL) return false;
    for (std::size_t off = 0; off < bytes; off += page_bytes)  // pre-5.14 kernels: fault pages in
        reinterpret_cast<volatile unsigned char*>(p)[off] = 0;
    return true;
}

// Returns the pages to the OS; they read as zero afterwards. Returns false when refused.
inline bool decommit(std::byte* p, std::size_t bytes) noexcept {
    if (bytes == 0) return true;
    if (injected_failure(Call::decommit)) return false;
    return ::madvise(p, bytes, MADV_DONTNEED) == 0;
}

// Whether the page at `page` (page-aligned) is mapped to memory now (mincore(2), which reads the
// page table under its lock): false for a page never touched or discarded. Never faults it in.
[[nodiscard]] inline bool page_mapped(const void* page) noexcept {
    unsigned char resident = 0;
    return ::mincore(const_cast<void*>(page), page_bytes, &resident) == 0 && (resident & 1) != 0;
}

// Starts `body` on a thread of zpage's own, named `name` (15 characters at most) in top and
// debuggers, with every asynchronous signal blocked, so that the program's signal handlers run on
// the program's threads (faults such as SIGSEGV stay deliverable, for sanitizers and debuggers).
// Throws what std::thread's constructor throws.
template <class Body>
[[nodiscard]] std::thread start_thread(const char* name, Body&& body) {
    sigset_t blocked;
    sigset_t previous;
    ::sigfillset(&blocked);
    for (const int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT}) ::sigdelset(&blocked, fault);
    ::pthread_sigmask(SIG_SETMASK, &blocked, &previous);  // the new thread inherits the mask
    struct Restore {
        const sigset_t* mask;
        ~Restore() { ::pthread_sigmask(SIG_SETMASK, mask, nullptr); }
    } restore{&previous};
    std::thread thread(std::forward<Body>(body));
    ::pthread_setname_np(thread.native_handle(), name);
    return thread;
}

}  // namespace zpage::detail::os
