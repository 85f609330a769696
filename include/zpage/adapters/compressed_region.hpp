// zpage: CompressedRegion, memory a program uses as it uses any other, of which at most a resident
// budget is in RAM as itself: the rest lives compressed in a CompressedPageStore, and comes back
// when touched. Compressed swap for one program, with its own budget and no swap device.
//
//   zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = (512 << 20) / 4096});
//   zpage::CompressedRegion<zpage::Lz4Store> ram(store, {.bytes = 512 << 20, .resident_budget_bytes = 64 << 20});
//   std::byte* guest = ram.data();   // 512 MiB; at most 64 MiB of it resident at a time
//
// How: the region is anonymous memory registered with userfaultfd (missing-page and write-protect
// modes). A page that is not there faults, and a handler thread resolves the fault: with zeros for
// a page never written (the shared zero page for a read), or by decompressing the page from the
// store (UFFDIO_COPY). Pages over the budget are evicted in batches of 32 (RegionConfig::eviction).
// In place, by default: the stretch of the region the CLOCK hand swept to pick them is
// write-protected (one TLB flush, which also samples writes, below), each victim is read where it
// is and compressed into the store, and the batch is dropped with one process_madvise (a second
// flush). Or by move: each victim is moved out of the region (UFFDIO_MOVE, Linux 6.8) into a
// staging page and compressed from there, a flush a page. Either way a write racing with an
// eviction faults and waits for it to end; it is never lost. A page brought back by a read keeps
// its stored copy until written (RegionConfig::keep_clean_copies): mapped write-protected, it is
// evicted by a drop alone, with no read and no compression. A page the store cannot return (corrupt
// data) is poisoned (UFFDIO_POISON): its access raises SIGBUS, as memory that failed does, never
// wrong bytes. A call the kernel refuses (short of memory, the address space changing) leaves the
// page as it was, stored copy and all, and wakes whoever waits on it to fault or write again (a
// failed call wakes no one): a refusal costs a retry, never a page.
//
// When: a background evictor keeps the resident pages under the budget's high mark (the kernel's
// kswapd, with free memory between the low and high marks), so that the faulting path rarely
// evicts; a handler that finds the budget full evicts a few pages itself first (direct reclaim),
// always by move, so that no handler ever reads the region's memory. Which: a CLOCK over the resident pages with two bits per page, the kernel's
// active and inactive lists in place: a page faulted in is inactive and referenced; the hand
// promotes a referenced inactive page to active, clears an active page's reference, demotes an
// unreferenced active page, and evicts an unreferenced inactive one.
//
// What it sees of the program's use: faults (a page touched after it was evicted, or never
// written), and writes, sampled: the write protection the hand leaves on the stretch it swept stays
// on the pages it did not take, so the first write to one afterwards faults once, marks the page
// referenced and lifts the protection (RegionStats::write_faults). Reads of a resident page are not
// seen: a page only read stays resident for three passes of the hand after its last fault, then is
// evicted, and faults back in if still in use. (UFFD_FEATURE_WP_ASYNC would sample writes without
// a fault, but it lets a write through while its page is being compressed, and the kernel has no
// "drop this page unless written" to close that race; soft-dirty bits are not in every kernel.)
// A page the program discards (MADV_DONTNEED) while it is resident reads as zeros afterwards; one
// already evicted keeps its bytes: write zeros to clear a page, which cost no store memory.
//
// Who serves a fault (RegionConfig::fault_service): a handler thread, woken by userfaultfd while
// the faulting thread waits in the kernel; or the faulting thread itself, in zpage's SIGBUS
// handler (UFFD_FEATURE_SIGBUS: no thread to wake, so a fault costs about 40% less; the price
// is written at FaultService). The rest is the same either way.
//
// Threads: an evictor, and for FaultService::handler_thread `handler_threads` handlers and a
// watch over them, started at construction and joined by the destructor, which makes the region
// inaccessible, then unregisters and unmaps it (threads still touching it then get SIGSEGV, as on
// any unmapped memory: the program must be done with it). Any number of program threads may touch
// the region at once. The store must outlive the region and hold nothing else at the region's
// page indices.
//
// A stopped handler (FaultService::handler_thread): a handler busy with one fault for
// `handler_stall_ms` (stuck in the store, held by a debugger) fails the region over. From then on
// a fault on a page that is not resident raises SIGBUS in the thread that touched it, as failed
// memory does, rather than waiting forever (the way userfaultfd handlers in VMMs are known to
// fail); resident pages stay readable and writable, nothing more is evicted, and
// stats().handler_stalls is 1. The destructor still waits for the stalled handler to return.
//
// Locks and waits: evict()'s mutex, then the CLOCK hand's mutex (held only to pick victims, with
// nothing under it); the evictor's mutex is held only to sleep and to be woken, by the evictor and
// by the handlers' watch, each on a condition of its own. The erase queue's spin lock
// (faulting-thread service) is a leaf, held only to push or pop indices. The store is called with
// none of them held. A faulting thread at a full budget waits (a yield loop) for room or for two
// rounds of the evictor, which never waits on a faulting thread: a page one holds goes back in the
// erase queue. A handler (or faulting thread) that finds a page being served by another waits for
// it (a yield loop); that other needs only the store and the kernel to finish, and if a handler
// stalls instead, the failover ends the wait. A fault on a page being evicted is left to the
// evicting thread, which wakes it when done (a faulting thread waits for it in a yield loop): the
// evicting thread itself may fault reading a victim in place, on one the program discarded, and a
// handler serves that at once with the zeros the page holds. Apart from those reads zpage's code
// touches the region's memory only through userfaultfd ioctls, and the reads hold no lock: no wait has a
// cycle. Faults served in the faulting thread run the store's code in a signal handler: the
// program must not touch region memory while it holds a lock the store takes (the allocator's,
// inside malloc).
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../detail/atomic_counters.hpp"
#include "../detail/fault_signal.hpp"
#include "../detail/os.hpp"
#include "../detail/spin_mutex.hpp"
#include "../detail/userfaultfd.hpp"
#include "../errc.hpp"
#include "../stats.hpp"

namespace zpage {

// Construction of a region failed for a reason of the system's (userfaultfd not allowed, a kernel
// without UFFDIO_MOVE, no memory for the mapping); what() says which and how to fix it.
class RegionError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Which thread resolves a fault on the region.
enum class FaultService : std::uint8_t {
    // Handler threads of the region's own, woken by userfaultfd: the faulting thread waits in the
    // kernel meanwhile, whatever it was doing (a system call reading or writing region memory
    // included). A fault is a round trip between two threads.
    handler_thread,
    // The thread that touched the page, in a SIGBUS handler (UFFD_FEATURE_SIGBUS): no wake-up of
    // another thread, so a fault costs about 40% less than the round trip. The price: the
    // process's SIGBUS handler is zpage's (it passes on every SIGBUS that is not a region's fault;
    // a handler the program installs later calls zpage::serve_region_fault first, see
    // detail/fault_signal.hpp); a system call that reads or writes a page of the region that is
    // not resident fails with EFAULT instead of waiting for it; and the program must not touch
    // region memory while it holds a lock the store takes (the store's load runs in the faulting
    // thread). A fault never compresses or allocates there: the store's load streams are made at
    // construction, and a fault that finds the budget full waits for the evictor. (A store that
    // writes back may allocate a read buffer on a thread's first load from its backing store.)
    faulting_thread,
};

// How a page leaves the region. Either way, a write racing with an eviction faults and waits for
// it, and is never lost.
enum class Eviction : std::uint8_t {
    // Read where it is, under write protection, and dropped with its batch (process_madvise): two
    // TLB flushes a batch of 32 pages, the protection's and the drop's, each an interrupt of every
    // other CPU running the program. The evicting thread reads region memory: a victim the program
    // discards meanwhile faults there, and is read as the zeros it now holds.
    in_place,
    // Moved out of the region (UFFDIO_MOVE) and compressed from where it went: no thread of zpage's
    // ever reads region memory, at a TLB flush a page. A handler's own eviction, at a full budget,
    // always moves (a handler reading region memory could wait for itself).
    by_move,
};

struct RegionConfig {
    std::size_t bytes = 0;  // the region's size, a multiple of 4 KiB
    // At most this much of the region is resident; 0: all of it (nothing is evicted).
    std::size_t resident_budget_bytes = 0;
    FaultService fault_service = FaultService::handler_thread;
    Eviction eviction = Eviction::in_place;
    // Handler threads (FaultService::handler_thread; unused with faulting_thread, where a fault
    // that finds the budget full waits for the evictor instead of evicting itself).
    unsigned handler_threads = 1;
    // After serving a fault, a handler keeps looking for the next one this long before it sleeps:
    // faults come in runs, and waking a sleeping thread costs more than the fault's own work
    // (about 12 us of a 38 us round trip on a 2-vCPU VM). 0: sleep at once, burn nothing.
    unsigned handler_spin_us = 50;
    // A handler busy with one fault this long is taken as stopped (stuck in the store, held by a
    // debugger): the region fails over, and from then on every fault on a page that is not
    // resident raises SIGBUS in the thread that touched it, instead of waiting forever; pages
    // resident then stay as they are. 0: wait for handlers however long they take.
    unsigned handler_stall_ms = 10000;
    // The evictor wakes when less than low_free_permille of the budget is free, and evicts until
    // high_free_permille is (the kernel's low and high watermarks).
    unsigned low_free_permille = 20;
    unsigned high_free_permille = 40;
    // A page brought back by a read keeps its stored copy while it is not written: it is mapped
    // write-protected, its first write faults once (RegionStats::write_faults) and frees the copy,
    // and evicting it unwritten only drops it, with no read and no compression (the kernel's swap
    // cache, for clean pages). The price: store memory for the copies of resident pages read since
    // they came back, at most the budget's worth compressed (RegionStats::clean_copies), and only
    // while the store uses under three quarters of its limit (StoreConfig::mem_limit_bytes, a
    // shared budget's too): copies never crowd out the pages evicted.
    bool keep_clean_copies = true;

    // Throws std::invalid_argument naming the field at fault.
    void validate() const {
        if (bytes == 0 || bytes % detail::os::page_bytes != 0)
            throw std::invalid_argument("zpage::RegionConfig: bytes must be a positive multiple of 4096");
        if (handler_threads == 0 || handler_threads > 64)
            throw std::invalid_argument("zpage::RegionConfig: handler_threads must be in [1, 64]");
        if (handler_spin_us > 10000)
            throw std::invalid_argument("zpage::RegionConfig: handler_spin_us must be at most 10000");
        if (low_free_permille > high_free_permille || high_free_permille >= 1000)
            throw std::invalid_argument(
                "zpage::RegionConfig: low_free_permille must not exceed high_free_permille, which must be under 1000");
        if (resident_budget_bytes != 0 && resident_budget_bytes < 64 * detail::os::page_bytes)
            throw std::invalid_argument("zpage::RegionConfig: resident_budget_bytes must be 0 or at least 256 KiB");
    }
};

struct RegionStats {
    std::uint64_t faults = 0;            // page faults resolved
    std::uint64_t zero_fills = 0;        // of those, pages never written: the zero page
    std::uint64_t swap_ins = 0;          // of those, pages brought back from the store (pswpin)
    std::uint64_t swap_outs = 0;         // pages evicted into the store (pswpout)
    std::uint64_t direct_evictions = 0;  // of those, evicted on a fault's path, the budget being full
    std::uint64_t write_faults = 0;      // writes to pages the CLOCK hand had protected (sampled use)
    std::uint64_t evictor_wakeups = 0;   // times the evictor woke to evict (kswapd_wakeups)
    std::uint64_t failed_swap_outs = 0;  // evictions the store refused (the page stayed resident)
    std::uint64_t poisoned_pages = 0;    // pages the store could not return: their access raises SIGBUS
    std::uint64_t handler_stalls = 0;    // 1 once a handler stalled and the region failed over (SIGBUS)
    // The two counts are read one after the other: while the evictor or a fault moves a page
    // between them, it may show in both, or in neither, for a moment.
    std::uint64_t resident_pages = 0;    // pages resident now, by the region's count
    std::uint64_t swapped_pages = 0;     // pages in the store now
    std::uint64_t clean_copies = 0;      // resident pages whose copy the store keeps (keep_clean_copies)

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("faults"), &RegionStats::faults, StatUnit::count);
        f(std::string_view("zero_fills"), &RegionStats::zero_fills, StatUnit::pages);
        f(std::string_view("swap_ins"), &RegionStats::swap_ins, StatUnit::pages);
        f(std::string_view("swap_outs"), &RegionStats::swap_outs, StatUnit::pages);
        f(std::string_view("direct_evictions"), &RegionStats::direct_evictions, StatUnit::pages);
        f(std::string_view("write_faults"), &RegionStats::write_faults, StatUnit::count);
        f(std::string_view("evictor_wakeups"), &RegionStats::evictor_wakeups, StatUnit::count);
        f(std::string_view("failed_swap_outs"), &RegionStats::failed_swap_outs, StatUnit::count);
        f(std::string_view("poisoned_pages"), &RegionStats::poisoned_pages, StatUnit::pages);
        f(std::string_view("handler_stalls"), &RegionStats::handler_stalls, StatUnit::count);
        f(std::string_view("resident_pages"), &RegionStats::resident_pages, StatUnit::pages);
        f(std::string_view("swapped_pages"), &RegionStats::swapped_pages, StatUnit::pages);
        f(std::string_view("clean_copies"), &RegionStats::clean_copies, StatUnit::pages);
    }
};

template <class Store>
class CompressedRegion final : private detail::SignalServedRange {
    static_assert(Store::page_size == detail::os::page_bytes,
                  "zpage::CompressedRegion: the store's pages must be the OS's 4 KiB pages");
    static constexpr std::size_t page_bytes = detail::os::page_bytes;

public:
    // Throws std::invalid_argument for a bad configuration or a store with fewer pages than the
    // region, RegionError when the system does not allow it (the message names the fix), and
    // std::bad_alloc or std::system_error for memory or threads.
    CompressedRegion(Store& store, const RegionConfig& config)
        : store_(store), config_(checked(config, store)), pages_(config.bytes / page_bytes),
          max_resident_(config.resident_budget_bytes == 0 ? pages_ : config.resident_budget_bytes / page_bytes),
          evict_below_(mark(config, max_resident_, config.high_free_permille)),
          wake_above_(mark(config, max_resident_, config.low_free_permille)),
          state_(std::make_unique<std::atomic<std::uint8_t>[]>(pages_)),
          bits_(std::make_unique<std::atomic<std::uint8_t>[]>(pages_)),
          clean_copy_(std::make_unique<std::atomic<bool>[]>(pages_)) {
        try {
            open_userfaultfd();
            region_ = map(config.bytes);
            staging_ = map(staging_pages() * page_bytes);
            copies_ = map(2 * page_bytes);  // not registered: a thread writing there never faults
            pidfd_ = detail::uffd::open_self_pidfd();  // -1 (older kernels): drops a page at a time
            if (served_in_faulting_thread()) {
                // Loads in a signal handler: no stream may be made on a thread's first.
                if constexpr (requires(Store& s) { s.prepare_load_streams(); }) store_.prepare_load_streams();
                erase_queue_ = std::make_unique<std::size_t[]>(erase_capacity);
                enter_fault_signal();
            }
            if (!detail::uffd::register_range(fd_, region_, config.bytes, true) ||
                !detail::uffd::register_range(fd_, staging_, staging_pages() * page_bytes, true))
                throw RegionError("zpage::CompressedRegion: userfaultfd would not register the region: " +
                                  std::string(std::strerror(errno)));
            stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
            if (stop_fd_ < 0) throw RegionError("zpage::CompressedRegion: eventfd: " + std::string(std::strerror(errno)));
            buffers_ = map(config.handler_threads * page_bytes);
            evictor_ = detail::os::start_thread("zpage-evict", [this] { evict_in_background(); });
            busy_since_ = std::make_unique<std::atomic<std::int64_t>[]>(config.handler_threads);
            if (!served_in_faulting_thread()) {
                for (unsigned h = 0; h < config.handler_threads; ++h)
                    handlers_.push_back(detail::os::start_thread("zpage-uffd", [this, h] { handle_faults(h); }));
                if (config.handler_stall_ms != 0)
                    watcher_ = detail::os::start_thread("zpage-uffd-watch", [this] { watch_handlers(); });
            }
        } catch (...) {
            shut_down();
            throw;
        }
    }

    ~CompressedRegion() { shut_down(); }

    CompressedRegion(const CompressedRegion&) = delete;
    CompressedRegion& operator=(const CompressedRegion&) = delete;

    [[nodiscard]] std::byte* data() const noexcept { return region_; }
    [[nodiscard]] std::size_t size() const noexcept { return config_.bytes; }
    [[nodiscard]] const RegionConfig& config() const noexcept { return config_; }

    [[nodiscard]] RegionStats stats() const noexcept {
        RegionStats s = detail::load_counters(counters_);
        s.resident_pages = resident_.load(std::memory_order_relaxed);
        s.swapped_pages = swapped_.load(std::memory_order_relaxed);
        s.clean_copies = clean_copies_.load(std::memory_order_relaxed);
        return s;
    }

    // Evicts up to `pages` of the coldest resident pages now, as the evictor would; returns how
    // many went (none once the region failed over). Any thread but a handler's.
    std::size_t evict(std::size_t pages) noexcept {
        std::lock_guard guard(explicit_mutex_);
        in_place_readers_[1].store(static_cast<std::uint32_t>(::gettid()), std::memory_order_relaxed);
        std::size_t gone = 0;
        while (gone < pages) {
            const std::size_t n = evict_batch(1, std::min(pages - gone, batch_pages));
            if (n == 0) break;
            gone += n;
        }
        in_place_readers_[1].store(0, std::memory_order_relaxed);
        return gone;
    }

private:
    // A page's state; only the thread that moved it out of a resting state (untouched, resident,
    // evicted, poisoned) changes it again.
    // evicting: claimed by a thread evicting it, being read (or moved out) and stored. poisoned: its stored copy could not be
    // read back, and it raises SIGBUS until the program discards it (a resting state, not resident).
    enum : std::uint8_t { untouched = 0, resident = 1, evicted = 2, serving = 3, evicting = 4, poisoned = 5 };
    // A resident page's CLOCK bits.
    enum : std::uint8_t { referenced = 1, active = 2 };
    static constexpr std::size_t batch_pages = 32;   // the evictor's batch (the kernel's SWAP_CLUSTER_MAX)
    static constexpr std::size_t direct_pages = 4;   // a fault's own eviction, at a full budget
    // The most a batch's window spans, so that protecting it walks a bounded stretch of page table.
    static constexpr std::size_t max_window_pages = 16384;
    // Clean copies are made while the store uses under this much of its limits (keep_clean_copies).
    static constexpr unsigned clean_copies_below_permille = 750;
    // What UFFDIO_COPY copies to fill a page with zeros.
    alignas(page_bytes) static constexpr std::byte zero_page[page_bytes]{};

    // Resident pages that leave `free_permille` of the budget free; without a budget, all.
    static std::size_t mark(const RegionConfig& config, std::size_t max_resident, unsigned free_permille) noexcept {
        if (config.resident_budget_bytes == 0) return max_resident;
        return max_resident - max_resident * free_permille / 1000;
    }

    static const RegionConfig& checked(const RegionConfig& config, const Store& store) {
        config.validate();
        if (store.capacity() < config.bytes / page_bytes)
            throw std::invalid_argument("zpage::CompressedRegion: the store has " + std::to_string(store.capacity()) +
                                        " pages, fewer than the region's " +
                                        std::to_string(config.bytes / page_bytes));
        return config;
    }

    // Staging pages: a batch for each handler (direct eviction), the evictor and evict().
    std::size_t staging_pages() const noexcept { return (config_.handler_threads + 2) * batch_pages; }
    std::byte* handler_slot(unsigned h) const noexcept { return staging_ + h * batch_pages * page_bytes; }
    std::byte* evictor_slot() const noexcept { return handler_slot(config_.handler_threads); }
    std::byte* explicit_slot() const noexcept { return handler_slot(config_.handler_threads + 1); }

    void open_userfaultfd() {
        std::string why;
        // The features this kernel offers: asked on a descriptor of their own, as the handshake
        // can be made only once.
        const int probe = detail::uffd::open_fd(why);
        if (probe < 0) throw RegionError("zpage::CompressedRegion: " + why);
        std::uint64_t offered = 0;
        static_cast<void>(detail::uffd::handshake(probe, 0, offered));
        ::close(probe);
        // The faulting thread's id tells a handler the evicting thread's faults (serve_discarded_victim).
        const std::uint64_t wanted = detail::uffd::feature_move | detail::uffd::feature_poison |
                                     std::uint64_t{UFFD_FEATURE_THREAD_ID} |
                                     (served_in_faulting_thread() ? std::uint64_t{UFFD_FEATURE_SIGBUS} : 0);
        if ((offered & wanted) != wanted)
            throw RegionError("zpage::CompressedRegion: this kernel's userfaultfd has no UFFDIO_MOVE, UFFDIO_POISON, "
                              "UFFD_FEATURE_THREAD_ID or UFFD_FEATURE_SIGBUS (Linux 6.8 or later)");
        fd_ = detail::uffd::open_fd(why);
        if (fd_ < 0) throw RegionError("zpage::CompressedRegion: " + why);
        if (!detail::uffd::handshake(fd_, wanted, offered))
            throw RegionError("zpage::CompressedRegion: the userfaultfd handshake failed: " +
                              std::string(std::strerror(errno)));
    }

    static std::byte* map(std::size_t bytes) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw RegionError("zpage::CompressedRegion: mmap of " + std::to_string(bytes) +
                                               " bytes: " + std::strerror(errno));
        // Pages move one at a time; a huge page would have to be split first.
        static_cast<void>(::madvise(p, bytes, MADV_NOHUGEPAGE));
        return static_cast<std::byte*>(p);
    }

    static void unmap(std::byte* p, std::size_t bytes) noexcept {
        if (p != nullptr) ::munmap(p, bytes);
    }

    bool served_in_faulting_thread() const noexcept {
        return config_.fault_service == FaultService::faulting_thread;
    }

    void enter_fault_signal() {
        std::string why;
        if (!detail::FaultSignal::enter(reinterpret_cast<std::uintptr_t>(region_),
                                        reinterpret_cast<std::uintptr_t>(region_) + config_.bytes, this, why))
            throw RegionError("zpage::CompressedRegion: " + why);
        signal_entered_ = true;
    }

    void shut_down() noexcept {
        {
            std::lock_guard guard(evictor_mutex_);
            stopping_.store(true, std::memory_order_relaxed);
        }
        evictor_wake_.notify_all();
        watcher_wake_.notify_all();
        // The evictor first: reading a victim the program discarded, it waits for a handler.
        if (evictor_.joinable()) evictor_.join();
        if (stop_fd_ >= 0) {
            const std::uint64_t one = 1;
            static_cast<void>(::write(stop_fd_, &one, sizeof one));
        }
        for (std::thread& t : handlers_)
            if (t.joinable()) t.join();
        if (watcher_.joinable()) watcher_.join();
        if (region_ != nullptr) {
            // Inaccessible before it is unregistered: a thread still touching it, or woken from a
            // fault by the unregistering, gets SIGSEGV, never a zero page in place of its data.
            static_cast<void>(::mprotect(region_, config_.bytes, PROT_NONE));
            if (signal_entered_) detail::FaultSignal::leave(this);
            if (fd_ >= 0) detail::uffd::unregister(fd_, region_, config_.bytes);
            unmap(region_, config_.bytes);
            erase_deferred();
            for (std::size_t p = 0; p < pages_; ++p)
                if (state_[p].load(std::memory_order_relaxed) == evicted ||
                    clean_copy_[p].load(std::memory_order_relaxed))
                    static_cast<void>(store_.erase(p));
        }
        unmap(staging_, staging_pages() * page_bytes);
        unmap(copies_, 2 * page_bytes);
        if (pidfd_ >= 0) ::close(pidfd_);
        pidfd_ = -1;
        copies_ = nullptr;
        unmap(buffers_, config_.handler_threads * page_bytes);
        if (stop_fd_ >= 0) ::close(stop_fd_);
        if (fd_ >= 0) ::close(fd_);
        region_ = staging_ = buffers_ = nullptr;
        stop_fd_ = fd_ = -1;
    }

    std::byte* page_at(std::size_t p) const noexcept { return region_ + p * page_bytes; }

    // Wakes the threads waiting in the kernel on page p to retry their access. With
    // FaultService::faulting_thread none ever waits there: a fault raises SIGBUS at once.
    void wake(std::size_t p) const noexcept {
        if (!served_in_faulting_thread()) detail::uffd::wake(fd_, page_at(p), page_bytes);
    }

    // ---- faults ----

    void handle_faults(unsigned h) noexcept {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        uffd_msg messages[16];
        const auto spin = std::chrono::microseconds(config_.handler_spin_us);
        auto last_served = std::chrono::steady_clock::now() - spin;
        for (;;) {
            const ssize_t got = ::read(fd_, messages, sizeof messages);
            if (got < 0) {
                if (errno != EAGAIN && errno != EINTR) return;
                if (stopping_.load(std::memory_order_relaxed)) return;
                if (std::chrono::steady_clock::now() - last_served < spin) {
                    std::this_thread::yield();  // the evictor may want this CPU
                    continue;
                }
                const int ready = ::poll(fds, 2, -1);
                if (ready < 0 && errno != EINTR) return;
                if (ready > 0 && (fds[1].revents & POLLIN) != 0) return;
                continue;
            }
            for (std::size_t m = 0; m < static_cast<std::size_t>(got) / sizeof(uffd_msg); ++m) {
                busy_since_[h].store(now_ns(), std::memory_order_relaxed);
                dispatch(h, messages[m]);
                busy_since_[h].store(0, std::memory_order_relaxed);
            }
            last_served = std::chrono::steady_clock::now();
        }
    }

    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    // FaultService::faulting_thread: the fault at `address` raised SIGBUS in the thread that
    // touched it, and this runs in its signal handler (detail/fault_signal.hpp); the access is
    // retried on return. The fault does not say whether it was a write to a protected page, a
    // missing page or a poisoned one: a page the region holds resident that faults is one of the
    // first two, and the zero fill tells them apart (EEXIST: the page is there, so it was the
    // write). False for a poisoned page still poisoned: the program's SIGBUS.
    bool serve_fault(std::uintptr_t address, detail::FaultAccess access) noexcept override {
        const std::size_t p = (address - reinterpret_cast<std::uintptr_t>(region_)) / page_bytes;
        const std::uint8_t s = state_[p].load(std::memory_order_acquire);
        if (s == resident && serve_resident_fault(p)) return true;
        if (s == evicting) {
            if (const int reader = in_place_reader(p, static_cast<std::uint32_t>(::gettid())); reader >= 0) {
                serve_discarded_victim(p, reader);
                return true;
            }
        }
        alignas(page_bytes) std::byte buffer[page_bytes];
        return serve(p, buffer, nullptr, access != detail::FaultAccess::read);
    }

    // A fault on page p, which the region holds resident: with the page there, a write the hand's
    // protection stopped (lifted, the page marked referenced); else the program discarded it (the
    // zero page). False when p was no longer resident once claimed: then it is served as missing.
    bool serve_resident_fault(std::size_t p) noexcept {
        for (;;) {
            std::uint8_t s = state_[p].load(std::memory_order_acquire);
            if (s == serving) {
                std::this_thread::yield();
                continue;
            }
            if (s != resident) return false;
            if (!state_[p].compare_exchange_strong(s, serving, std::memory_order_acq_rel)) continue;
            const int filled = detail::uffd::zero(fd_, page_at(p), page_bytes);
            if (filled == 0) forget_clean_copy(p, true);  // discarded: it holds zeros now
            if (filled == EEXIST) {
                forget_clean_copy(p, true);  // before the write goes through, as in serve_write
                if (detail::uffd::write_protect(fd_, page_at(p), page_bytes, false) == 0) {
                    bits_[p].store(static_cast<std::uint8_t>(bits_[p].load(std::memory_order_relaxed) | referenced),
                                   std::memory_order_relaxed);
                    detail::add_counter(counters_.write_faults, 1);
                }
            }
            // Else zero-filled, or refused: either way the access is retried, and faults again if
            // the page is still not there to be written.
            state_[p].store(resident, std::memory_order_release);
            return true;
        }
    }

    void dispatch(unsigned h, const uffd_msg& message) noexcept {
        if (message.event != UFFD_EVENT_PAGEFAULT) return;
        const std::uintptr_t address = message.arg.pagefault.address;
        const std::size_t p = (address - reinterpret_cast<std::uintptr_t>(region_)) / page_bytes;
        if (address < reinterpret_cast<std::uintptr_t>(region_) || p >= pages_) return;  // staging: never faults
        const bool write_protected = (message.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
        const int reader = write_protected ? -1 : in_place_reader(p, message.arg.pagefault.feat.ptid);
        if (reader >= 0) serve_discarded_victim(p, reader);
        else if (failed_.load(std::memory_order_acquire)) {
            // A page being evicted is left to its evicting thread, which wakes the fault when done:
            // a write let through now could land after the page was read, and be dropped with it.
            if (state_[p].load(std::memory_order_acquire) != evicting) serve_failed(p, write_protected);
        }
        else if (write_protected) serve_write(h, p);
        else serve(p, buffers_ + h * page_bytes, handler_slot(h),
                   (message.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0);
    }

    // After a handler stalled: nothing is read from the store (the stalled handler may hold what
    // it needs); a missing page raises SIGBUS, a protected one is let be written.
    void serve_failed(std::size_t p, bool write_protected) noexcept {
        const int error = write_protected ? detail::uffd::write_protect(fd_, page_at(p), page_bytes, false)
                                          : detail::uffd::poison(fd_, page_at(p), page_bytes);
        if (error != 0) wake(p);
    }

    // The handlers' watch: a handler busy with one fault for handler_stall_ms fails the region
    // over. This thread then serves faults as the failed region does, and wakes every waiting
    // thread now and then, for those whose fault the stalled handler had read: they fault again.
    // It never calls the store, so a handler stuck in it cannot stop this thread too.
    void watch_handlers() noexcept {
        const auto limit = std::chrono::milliseconds(config_.handler_stall_ms);
        const auto period = std::max(std::chrono::milliseconds(5), limit / 8);
        while (!failed_.load(std::memory_order_relaxed)) {
            {
                std::unique_lock guard(evictor_mutex_);
                watcher_wake_.wait_for(guard, period, [&] { return stopping_.load(std::memory_order_relaxed); });
                if (stopping_.load(std::memory_order_relaxed)) return;
            }
            const std::int64_t now = now_ns();
            for (unsigned h = 0; h < config_.handler_threads; ++h) {
                const std::int64_t since = busy_since_[h].load(std::memory_order_relaxed);
                if (since != 0 && now - since > std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count())
                    failed_.store(true, std::memory_order_release);
            }
        }
        detail::add_counter(counters_.handler_stalls, 1);
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        uffd_msg messages[16];
        for (;;) {
            detail::uffd::wake(fd_, region_, config_.bytes);
            const int ready = ::poll(fds, 2, static_cast<int>(period.count()));
            if (ready < 0 && errno != EINTR) return;
            if (ready > 0 && (fds[1].revents & POLLIN) != 0) return;
            const ssize_t got = ::read(fd_, messages, sizeof messages);
            for (ssize_t m = 0; m < got / static_cast<ssize_t>(sizeof(uffd_msg)); ++m)
                dispatch(config_.handler_threads, messages[m]);
        }
    }

    // A page that is not there: zero page, or back from the store, decompressed into `buffer`.
    // `staging`: the caller's batch of staging pages for evicting first, at a full budget; nullptr:
    // one of the handler slots, taken for the while (a faulting thread's). `write`: the access
    // was (or may have been) a write; a read's page keeps its stored copy (keep_clean_copies).
    // False when the page is poisoned still (the access raises SIGBUS).
    bool serve(std::size_t p, std::byte* buffer, std::byte* staging, bool write) noexcept {
        for (;;) {
            std::uint8_t s = state_[p].load(std::memory_order_acquire);
            // A page being evicted, in a handler: the fault is left waiting, and the evicting thread
            // wakes it when done (it may itself be waiting for a handler, see serve_discarded_victim).
            if (s == evicting && !served_in_faulting_thread()) return true;
            if (s == serving || s == evicting) {  // another thread has it: it finishes soon
                if (failed_.load(std::memory_order_relaxed)) return true;  // or stalled: the watch takes over
                std::this_thread::yield();
                continue;
            }
            if (!state_[p].compare_exchange_strong(s, serving, std::memory_order_acq_rel)) continue;
            if (s == resident) {
                // Another fault on it was resolved first (a wake-up, the page being there), or the
                // program discarded the page (madvise): the zero page. Claimed first, so that it
                // cannot be evicted in between and then read as zeros. A call that fails wakes no
                // one: on EEXIST the page is there; on any other error the thread faults again.
                if (detail::uffd::zero(fd_, page_at(p), page_bytes) != 0) wake(p);
                else forget_clean_copy(p, staging == nullptr);  // discarded: it holds zeros now
                state_[p].store(resident, std::memory_order_release);
                return true;
            }
            if (s == poisoned) {
                // A fault on it once the program discarded it, or one that raced with the
                // poisoning: the zero fill says which (EEXIST: still poisoned; the thread is woken
                // to meet the poison).
                const int filled = detail::uffd::zero(fd_, page_at(p), page_bytes);
                if (filled == EEXIST || filled == EAGAIN) {
                    state_[p].store(poisoned, std::memory_order_release);
                    wake(p);
                    return filled == EAGAIN;
                }
                if (filled != 0) {
                    state_[p].store(poisoned, std::memory_order_release);
                    wake(p);
                    return true;
                }
                finish_fault(p, counters_.zero_fills);
                return true;
            }
            make_room(staging);
            const bool from_store = s == evicted;
            const bool keep_copy = from_store && !write && keeps_clean_copies();
            bool lost = false;
            int error = 0;
            if (!from_store) {
                // A write gets a page of zeros of its own at once: the shared zero page would take
                // a second fault for the write to copy it, and a TLB flush with it.
                error = write ? detail::uffd::copy(fd_, page_at(p), zero_page, page_bytes)
                              : detail::uffd::zero(fd_, page_at(p), page_bytes);
            } else if (store_.load(p, std::span<std::byte, page_bytes>(buffer, page_bytes))) {
                error = detail::uffd::copy(fd_, page_at(p), buffer, page_bytes, keep_copy);
            } else {
                // Its bytes cannot be had: the page is lost, and reads as failed memory (SIGBUS)
                // until the program discards it.
                lost = true;
                error = detail::uffd::poison(fd_, page_at(p), page_bytes);
            }
            if (error == EAGAIN && !stopping_.load(std::memory_order_relaxed)) {
                // The address space is changing (mremap, a discard): the fault stays pending and
                // the kernel asks for the call again.
                state_[p].store(s, std::memory_order_release);
                std::this_thread::yield();
                continue;
            }
            if (error != 0 && (error != EEXIST || from_store)) {
                // Refused, and a failed call wakes no one: the page keeps its state and a stored
                // page its copy (a page is never lost for a message that came late, nor for a
                // kernel short of memory), and the thread is woken to retry its access. It then
                // finds the page there (EEXIST), or faults again for another try (ENOMEM), or
                // meets what its mapping became (ENOENT: SIGSEGV where the region was unmapped).
                state_[p].store(s, std::memory_order_release);
                wake(p);
                return true;
            }
            // Resolved; EEXIST on a zero fill too: a page is there, as good as the zero page for
            // one never written, but nothing woke the thread.
            if (error == EEXIST) wake(p);
            if (from_store) {
                if (keep_copy && !lost) {
                    clean_copy_[p].store(true, std::memory_order_relaxed);
                    clean_copies_.fetch_add(1, std::memory_order_relaxed);
                } else if (staging == nullptr) {
                    erase_later(p);
                } else {
                    static_cast<void>(store_.erase(p));
                }
                swapped_.fetch_sub(1, std::memory_order_relaxed);
            }
            if (lost) {
                // Not resident: it holds no memory, and the hand has nothing to move out of it.
                detail::add_counter(counters_.poisoned_pages, 1);
                detail::add_counter(counters_.faults, 1);
                state_[p].store(poisoned, std::memory_order_release);
                return true;
            }
            finish_fault(p, from_store ? counters_.swap_ins : counters_.zero_fills);
            return true;
        }
    }

    // Page p (serving) was made resident by a fault, which `how` counts.
    void finish_fault(std::size_t p, std::uint64_t& how) noexcept {
        detail::add_counter(how, 1);
        bits_[p].store(referenced, std::memory_order_relaxed);
        state_[p].store(resident, std::memory_order_release);
        detail::add_counter(counters_.faults, 1);
        if (resident_.fetch_add(1, std::memory_order_relaxed) + 1 > wake_above_) wake_evictor();
    }

    // A write to a page the CLOCK hand protected as it passed: the page is in use, so it is
    // marked referenced and the protection lifted (which wakes the writer).
    void serve_write(unsigned h, std::size_t p) noexcept {
        for (;;) {
            std::uint8_t s = state_[p].load(std::memory_order_acquire);
            if (s == evicting) return;  // its evicting thread wakes the writer when done
            if (s == serving) {  // another thread has it: it finishes soon
                if (failed_.load(std::memory_order_relaxed)) return;
                std::this_thread::yield();
                continue;
            }
            if (s != resident) {
                // Gone since the write faulted (evicted, discarded): the writer waits for it as
                // for a missing page, and the wake-up of whoever took it may have come before the
                // writer began to wait. So it is served as missing, which wakes the writer.
                static_cast<void>(serve(p, buffers_ + h * page_bytes, handler_slot(h), true));
                return;
            }
            if (!state_[p].compare_exchange_strong(s, serving, std::memory_order_acq_rel)) continue;
            // The write is let through once no copy of the page's old bytes is left to be taken for it.
            forget_clean_copy(p, false);
            if (detail::uffd::write_protect(fd_, page_at(p), page_bytes, false) != 0) {
                // Refused (the address space changing), and the writer not woken: it writes
                // again, faulting again while the page is still protected.
                state_[p].store(resident, std::memory_order_release);
                wake(p);
                return;
            }
            bits_[p].store(static_cast<std::uint8_t>(bits_[p].load(std::memory_order_relaxed) | referenced),
                           std::memory_order_relaxed);
            detail::add_counter(counters_.write_faults, 1);
            state_[p].store(resident, std::memory_order_release);
            return;
        }
    }

    // A fault that would take the region over its budget evicts first: a few pages, which is
    // what its latency pays for, and the evictor is woken for the rest. A faulting thread
    // (staging nullptr) runs in a signal handler, where compressing (which may allocate a stream
    // or a span) has no place: it wakes the evictor and waits for room, or for the evictor to
    // finish a round without making any (over budget by a page, for a moment).
    void make_room(std::byte* staging) noexcept {
        if (resident_.load(std::memory_order_relaxed) < max_resident_) return;
        if (staging == nullptr) {
            const std::uint64_t rounds = evictor_rounds_.load(std::memory_order_acquire);
            while (resident_.load(std::memory_order_relaxed) >= max_resident_ && !stopping_.load(std::memory_order_relaxed) &&
                   evictor_rounds_.load(std::memory_order_acquire) - rounds < 2) {
                wake_evictor();
                std::this_thread::yield();
            }
            return;
        }
        while (resident_.load(std::memory_order_relaxed) >= max_resident_) {
            wake_evictor();
            const std::size_t n = evict_by_moving(staging, direct_pages);
            if (n == 0) break;  // nothing can go now: over budget by a page, for a moment
            detail::add_counter(counters_.direct_evictions, n);
        }
    }

    // A swapped-in page's stored copy, left for the evictor to erase: a faulting thread runs in a
    // signal handler, and erasing frees store memory, which may allocate. Erased here when the
    // queue is full.
    void erase_later(std::size_t p) noexcept {
        bool queued = false, first = false;
        {
            std::lock_guard guard(erase_lock_);
            if (erase_count_ < erase_capacity) {
                erase_queue_[(erase_head_ + erase_count_) % erase_capacity] = p;
                first = erase_count_++ == 0;
                queued = true;
            }
        }
        if (!queued) static_cast<void>(store_.erase(p));
        else if (first) wake_evictor();
    }

    // Erases the stored copies erase_later() left, of pages resident still (or discarded, or
    // poisoned since); not of one evicted again meanwhile, whose copy is its new one. A page
    // another thread holds goes back in the queue: that thread may be waiting for the evictor.
    void erase_deferred() noexcept {
        std::size_t todo = 0;
        {
            std::lock_guard guard(erase_lock_);
            todo = erase_count_;
        }
        while (todo > 0) {
            std::size_t batch[64];
            std::size_t n = 0;
            {
                std::lock_guard guard(erase_lock_);
                for (; n < std::size(batch) && n < todo && erase_count_ > 0; ++n) {
                    batch[n] = erase_queue_[erase_head_];
                    erase_head_ = (erase_head_ + 1) % erase_capacity;
                    --erase_count_;
                }
            }
            if (n == 0) return;
            todo -= n;
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t p = batch[i];
                std::uint8_t s = state_[p].load(std::memory_order_acquire);
                if (s == evicted) continue;
                if (s == serving || s == evicting || !state_[p].compare_exchange_strong(s, serving, std::memory_order_acq_rel)) {
                    erase_later(p);
                    continue;
                }
                // Back since, by a read: the stored copy is its current one.
                if (!clean_copy_[p].load(std::memory_order_relaxed)) static_cast<void>(store_.erase(p));
                state_[p].store(s, std::memory_order_release);
            }
        }
    }

    // ---- eviction ----

    void wake_evictor() noexcept {
        if (wake_pending_.exchange(true, std::memory_order_relaxed)) return;
        { std::lock_guard guard(evictor_mutex_); }
        evictor_wake_.notify_one();
    }

    void evict_in_background() noexcept {
        in_place_readers_[0].store(static_cast<std::uint32_t>(::gettid()), std::memory_order_relaxed);
        std::unique_lock guard(evictor_mutex_);
        while (!stopping_.load(std::memory_order_relaxed)) {
            evictor_wake_.wait_for(guard, std::chrono::milliseconds(100), [&] {
                return stopping_.load(std::memory_order_relaxed) || wake_pending_.load(std::memory_order_relaxed);
            });
            if (stopping_.load(std::memory_order_relaxed)) break;
            guard.unlock();
            erase_deferred();
            guard.lock();
            if (failed_.load(std::memory_order_relaxed)) continue;  // the region stopped evicting
            const bool woken = wake_pending_.exchange(false, std::memory_order_relaxed);
            if (resident_.load(std::memory_order_relaxed) <= evict_below_) continue;
            if (woken) detail::add_counter(counters_.evictor_wakeups, 1);
            guard.unlock();
            while (!stopping_.load(std::memory_order_relaxed) && !failed_.load(std::memory_order_relaxed)) {
                const std::size_t resident_now = resident_.load(std::memory_order_relaxed);
                if (resident_now <= evict_below_) break;
                if (evict_batch(0, std::min(batch_pages, resident_now - evict_below_)) == 0) break;
            }
            evictor_rounds_.fetch_add(1, std::memory_order_release);
            guard.lock();
        }
    }

    // The stretch of the region the hand swept to pick a batch.
    struct Window {
        std::size_t first = 0, end = 0;
    };

    // A batch of evictions by `reader` (0: the evictor, 1: evict()), as the configuration says.
    std::size_t evict_batch(unsigned reader, std::size_t want) noexcept {
        // Failed over, a write may have been let through to a page with a clean copy (serve_failed).
        if (failed_.load(std::memory_order_acquire)) return 0;
        std::byte* const slot = reader == 0 ? evictor_slot() : explicit_slot();
        return config_.eviction == Eviction::in_place ? evict_in_place(reader, slot, want) : evict_by_moving(slot, want);
    }

    // Evicts up to `want` (at most a batch) of the coldest pages where they are. The stretch the
    // hand swept is write-protected first (one TLB flush), so that from then on a write to a victim
    // faults and waits for its eviction to end, and what is read is what is kept. Each victim is
    // read into `reader`'s copy page and stored from there (a read never holds a store lock), and
    // the stored ones are dropped together (a second flush). A victim with a clean copy is not read
    // or stored again, only probed: a probe that faults is a page the program discarded, and its
    // zeros are stored instead. Refused the protection, the batch leaves by moving instead, through
    // `slot`. A victim stays (and is woken) if the store or the drop refuses it.
    std::size_t evict_in_place(unsigned reader, std::byte* slot, std::size_t want) noexcept {
        std::size_t victims[batch_pages]{};
        Window window;
        const std::size_t claimed = claim(victims, want, window);
        if (window.end == window.first) return 0;
        if (detail::uffd::write_protect(fd_, page_at(window.first), (window.end - window.first) * page_bytes, true) != 0)
            return move_out(victims, claimed, slot);
        std::byte* const copy = copies_ + reader * page_bytes;
        bool stored[batch_pages];
        bool kept[batch_pages];  // stored already: its clean copy
        std::byte* leaving[batch_pages];
        std::size_t stored_count = 0;
        for (std::size_t v = 0; v < claimed; ++v) {
            // Faults only if the program discarded the page since, served with the zeros it now
            // holds (serve_discarded_victim); discarded mid-read, the copy is torn, so it is zeros.
            victim_discarded_[reader].store(false, std::memory_order_relaxed);
            kept[v] = clean_copy_[victims[v]].load(std::memory_order_relaxed);
            if (kept[v]) probe_victim(page_at(victims[v]));
            else read_victim(copy, page_at(victims[v]));
            if (victim_discarded_[reader].load(std::memory_order_acquire)) {
                std::memset(copy, 0, page_bytes);
                if (kept[v]) forget_clean_copy(victims[v], false);
                kept[v] = false;
            }
            stored[v] =
                kept[v] || store_.store(victims[v], std::span<const std::byte, page_bytes>(copy, page_bytes)).ok();
            if (stored[v]) leaving[stored_count++] = page_at(victims[v]);
        }
        bool dropped[batch_pages];
        static_cast<void>(detail::uffd::drop(pidfd_, batched_drops_, leaving, stored_count, dropped));
        std::size_t gone = 0;
        for (std::size_t v = 0, d = 0; v < claimed; ++v) {
            bool went = false;
            if (stored[v]) {
                went = dropped[d++];
                // It stays: no copy may outlive it but a clean one, which stays current.
                if (!went && !kept[v]) static_cast<void>(store_.erase(victims[v]));
            }
            gone += finish_eviction(victims[v], went);
        }
        return gone;
    }

    // Reads victim `from`, write-protected, into `to`. The program's writes to it came before its
    // protection, an order the kernel keeps and ThreadSanitizer cannot see: under it, the copy is
    // made out of its sight, a word at a time.
#if defined(__SANITIZE_THREAD__)
    __attribute__((no_sanitize_thread)) static void read_victim(std::byte* to, const std::byte* from) noexcept {
        const volatile std::uint64_t* source = reinterpret_cast<const volatile std::uint64_t*>(from);
        auto* target = reinterpret_cast<std::uint64_t*>(to);
        for (std::size_t w = 0; w < page_bytes / sizeof(std::uint64_t); ++w) target[w] = source[w];
    }
#else
    static void read_victim(std::byte* to, const std::byte* from) noexcept { std::memcpy(to, from, page_bytes); }
#endif

    // Touches victim `page`, write-protected, to learn whether it is there: it faults if the
    // program discarded it (served by serve_discarded_victim).
#if defined(__SANITIZE_THREAD__)
    __attribute__((no_sanitize_thread))
#endif
    static void probe_victim(const std::byte* page) noexcept {
        static_cast<void>(*reinterpret_cast<const volatile std::uint8_t*>(page));
    }

    bool keeps_clean_copies() const noexcept {
        if (!config_.keep_clean_copies) return false;
        if constexpr (requires(const Store& s) { s.mem_used_below_permille(clean_copies_below_permille); })
            return store_.mem_used_below_permille(clean_copies_below_permille);
        return true;
    }

    // Page p (claimed, or being evicted) no longer has a clean copy; returns whether it had one.
    bool unmark_clean_copy(std::size_t p) noexcept {
        if (!clean_copy_[p].load(std::memory_order_relaxed)) return false;
        clean_copy_[p].store(false, std::memory_order_relaxed);
        clean_copies_.fetch_sub(1, std::memory_order_relaxed);
        return true;
    }

    // Page p (claimed, or being evicted) changed or went: a clean copy of it is no longer its
    // bytes, and is erased (later, by the evictor, from a signal handler: `in_signal`).
    void forget_clean_copy(std::size_t p, bool in_signal) noexcept {
        if (!unmark_clean_copy(p)) return;
        if (in_signal) erase_later(p);
        else static_cast<void>(store_.erase(p));
    }

    // Which in-place reader thread `tid` is (0: the evictor, 1: evict()'s caller) if it is evicting
    // page p in place, else -1: a fault of its there is a victim the program discarded.
    int in_place_reader(std::size_t p, std::uint32_t tid) const noexcept {
        if (config_.eviction != Eviction::in_place || state_[p].load(std::memory_order_acquire) != evicting) return -1;
        for (int reader = 0; reader < 2; ++reader)
            if (tid == in_place_readers_[reader].load(std::memory_order_relaxed)) return reader;
        return -1;
    }

    // In-place reader `reader` faulted reading victim p: the program discarded p after it was
    // claimed. The page gets the zeros it now holds, write-protected, so that a write to it waits
    // for the eviction like any other. (In a handler, the reader waits for this, which is why no
    // handler ever waits for a page being evicted.)
    void serve_discarded_victim(std::size_t p, int reader) noexcept {
        victim_discarded_[reader].store(true, std::memory_order_release);
        // EEXIST: a page is there after all. Any other error: the reader reads again, and faults again.
        if (detail::uffd::copy(fd_, page_at(p), zero_page, page_bytes, true) != 0) wake(p);
    }

    // Evicts up to `want` (at most a batch) of the coldest pages through `slot`, staging pages of
    // the caller's own: each is moved out of the region atomically (UFFDIO_MOVE), so that a write
    // racing with its eviction faults and waits instead of being lost; compressed from there;
    // and the staging pages dropped together. Never reads the region's memory.
    std::size_t evict_by_moving(std::byte* slot, std::size_t want) noexcept {
        std::size_t victims[batch_pages]{};
        Window window;
        const std::size_t claimed = claim(victims, want, window);
        const std::size_t gone = move_out(victims, claimed, slot);
        // What the hand swept is protected as after any batch, or writes there would go unseen.
        if (window.end > window.first)
            static_cast<void>(detail::uffd::write_protect(fd_, page_at(window.first),
                                                          (window.end - window.first) * page_bytes, true));
        return gone;
    }

    // Picks up to `want` (at most a batch) victims and claims them (evicting); returns how many.
    std::size_t claim(std::size_t* victims, std::size_t want, Window& window) noexcept {
        const std::size_t picked = pick(victims, std::min(want, batch_pages), window);
        std::size_t claimed = 0;
        for (std::size_t v = 0; v < picked; ++v) {
            std::uint8_t s = resident;
            if (state_[victims[v]].compare_exchange_strong(s, evicting, std::memory_order_acq_rel))
                victims[claimed++] = victims[v];
        }
        return claimed;
    }

    // Moves the `count` claimed victims out through `slot`, one staging page each, and drops the
    // staging pages together.
    std::size_t move_out(const std::size_t* victims, std::size_t count, std::byte* slot) noexcept {
        std::size_t gone = 0;
        for (std::size_t v = 0; v < count; ++v) gone += evict_page(victims[v], slot + v * page_bytes);
        if (count > 0) static_cast<void>(::madvise(slot, count * page_bytes, MADV_DONTNEED));
        return gone;
    }

    // Victims: unreferenced inactive pages; on its way the hand ages the others (see the top of
    // this file). Up to three turns of the hand: a page just faulted in is taken on the third.
    // `window` is where the hand went; it never wraps past the region's end.
    std::size_t pick(std::size_t* victims, std::size_t want, Window& window) noexcept {
        std::lock_guard guard(hand_mutex_);
        std::size_t picked = 0;
        window.first = hand_;
        for (std::size_t looked = 0; looked < 3 * pages_ && picked < want; ++looked) {
            if (hand_ == pages_ || hand_ - window.first == max_window_pages) {
                if (picked != 0) break;
                hand_ = hand_ == pages_ ? 0 : hand_;
                window.first = hand_;
            }
            const std::size_t p = hand_++;
            const std::uint8_t s = state_[p].load(std::memory_order_acquire);
            if (s != resident) continue;
            const std::uint8_t bits = bits_[p].load(std::memory_order_relaxed);
            if ((bits & referenced) != 0) {
                bits_[p].store(active, std::memory_order_relaxed);  // promoted, or kept active
                continue;
            }
            if ((bits & active) != 0) {
                bits_[p].store(0, std::memory_order_relaxed);  // demoted
                continue;
            }
            victims[picked++] = p;
        }
        window.end = hand_;
        return picked;
    }

    // Moves page p (evicting) out of the region into `staging`, stores it, and wakes any writer
    // waiting on it; a page the store refuses goes back. Returns 1 when it went.
    std::size_t evict_page(std::size_t p, std::byte* staging) noexcept {
        const int moved = detail::uffd::move(fd_, staging, page_at(p));
        if (moved != 0) {
            if (moved == ENOENT) {  // the program discarded it: it reads as zeros, as never written
                forget_clean_copy(p, false);
                resident_.fetch_sub(1, std::memory_order_relaxed);
                state_[p].store(untouched, std::memory_order_release);
            } else {  // refused (EBUSY: pinned, or shared with a child; EAGAIN; ENOMEM): it stays
                state_[p].store(resident, std::memory_order_release);
            }
            // Whoever waits on the page is woken (a failed move wakes no one): it touches the
            // page again, and finds whatever is there.
            wake(p);
            return 0;
        }
        const bool stored = clean_copy_[p].load(std::memory_order_relaxed) ||
                            store_.store(p, std::span<const std::byte, page_bytes>(staging, page_bytes)).ok();
        if (!stored) put_back(p, staging);
        return finish_eviction(p, stored);
    }

    // Ends the eviction of page p (evicting), either way: into the store (evicted), or left resident
    // (a failed swap-out); whoever waits on it is woken. Returns 1 when it went.
    std::size_t finish_eviction(std::size_t p, bool went) noexcept {
        if (went) {
            static_cast<void>(unmark_clean_copy(p));  // a clean copy is the stored page now
            swapped_.fetch_add(1, std::memory_order_relaxed);
            resident_.fetch_sub(1, std::memory_order_relaxed);
            detail::add_counter(counters_.swap_outs, 1);
        } else {
            detail::add_counter(counters_.failed_swap_outs, 1);
        }
        state_[p].store(went ? evicted : resident, std::memory_order_release);
        wake(p);
        return went ? 1 : 0;
    }

    // Puts page p, which the store refused, back from `staging`. Its faults wait for this, so its
    // place in the region is empty, and the staging page is dropped with the batch: a put-back
    // given up would leave a page that reads as zeros. So it is tried again (UFFDIO_MOVE, then
    // UFFDIO_COPY, which needs a free page) until one is taken, or the region is being destroyed.
    // EEXIST from the copy is the kernel's word that a page is there.
    void put_back(std::size_t p, std::byte* staging) noexcept {
        while (!stopping_.load(std::memory_order_relaxed)) {
            if (detail::uffd::move(fd_, page_at(p), staging) == 0) return;
            const int copied = detail::uffd::copy(fd_, page_at(p), staging, page_bytes);
            if (copied == 0 || copied == EEXIST) return;
            std::this_thread::yield();
        }
    }

    Store& store_;
    const RegionConfig config_;
    const std::size_t pages_;
    const std::size_t max_resident_;
    const std::size_t evict_below_;  // the evictor's target: the high mark of free pages
    const std::size_t wake_above_;   // the evictor wakes above this: the low mark
    std::unique_ptr<std::atomic<std::uint8_t>[]> state_;
    std::unique_ptr<std::atomic<std::uint8_t>[]> bits_;
    // keep_clean_copies: the store's copy of resident page p is its bytes, and p is write-protected.
    // Changed only by the thread that claimed p (serving, evicting).
    std::unique_ptr<std::atomic<bool>[]> clean_copy_;
    std::atomic<std::size_t> resident_{0}, swapped_{0}, clean_copies_{0};
    int fd_ = -1;
    int stop_fd_ = -1;
    std::byte* region_ = nullptr;
    std::byte* staging_ = nullptr;
    std::byte* buffers_ = nullptr;  // a page per handler, for UFFDIO_COPY
    std::byte* copies_ = nullptr;   // Eviction::in_place: a page for the evictor, one for evict()
    int pidfd_ = -1;                // this process's, for dropping a batch at once
    std::atomic<bool> batched_drops_{true};
    // Eviction::in_place: the threads reading victims in place (the evictor's; evict()'s caller
    // while in it), whose faults there are a discarded victim's (in_place_reader).
    std::atomic<std::uint32_t> in_place_readers_[2]{};
    std::atomic<bool> victim_discarded_[2]{};  // the reader's victim faulted as it was read
    std::mutex hand_mutex_;
    std::size_t hand_ = 0;
    std::mutex explicit_mutex_;
    std::mutex evictor_mutex_;
    std::condition_variable evictor_wake_, watcher_wake_;
    std::atomic<bool> stopping_{false}, wake_pending_{false};
    RegionStats counters_{};  // every access through std::atomic_ref
    std::thread evictor_;
    std::thread watcher_;
    std::unique_ptr<std::atomic<std::int64_t>[]> busy_since_;  // per handler: when its fault began, 0 idle
    std::atomic<bool> failed_{false};
    std::vector<std::thread> handlers_;
    bool signal_entered_ = false;
    // FaultService::faulting_thread: pages swapped in whose stored copy the evictor is to erase
    // (erase_later), a ring of erase_capacity.
    static constexpr std::size_t erase_capacity = 4096;
    detail::SpinMutex erase_lock_{"region erase queue"};
    std::unique_ptr<std::size_t[]> erase_queue_;
    std::size_t erase_head_ = 0, erase_count_ = 0;  // under erase_lock_
    // Rounds the evictor finished (woken, evicted what it could): a faulting thread waiting for
    // room stops waiting after two.
    std::atomic<std::uint64_t> evictor_rounds_{0};
};

}  // namespace zpage
