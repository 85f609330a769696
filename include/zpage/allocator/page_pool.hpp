// zpage: PagePool, where every span page of SizeClassAllocator comes from: 4 KiB pages handed out
// one at a time from 2 MiB chunks that are made resident in one go, as transparent huge pages
// where the kernel offers them.
//
// Why a pool: a store that grows needs a new page for every two or so pages it compresses, and
// faulting user pages in one by one costs several microseconds each on virtual machines (a trap
// per page, more under shadow paging), as much as compressing the page. The kernel's zsmalloc
// takes its pages from the direct map at no such cost. Populating a whole 2 MiB chunk takes one
// fault for all of it; handing pages out one by one keeps each size class's partial span at the
// pages it really uses. Spans are therefore chains of pages that need not be adjacent (like
// zsmalloc's zspages): the allocator maps an object's offset in its span to a page through the
// span's page list.
//
// The reserve. Making a chunk resident can take as long as compressing a few hundred pages, when a
// virtual machine's host has taken the memory back (README, Performance, has the figures). So the
// pool keeps pages ready (resident and not handed out) between two watermarks, as the kernel's
// kswapd keeps free pages between its own: a take that leaves fewer than `reserve_low_pages` ready
// wakes the pool's refill thread, which makes chunks resident, with no lock held, until at least
// `reserve_high_pages` are ready. A taker that finds nothing ready (a fresh pool's first take, or
// a refill outrun) makes a chunk resident itself, as the kernel's direct reclaim does (`allocstall`
// in stats()); a taker never waits for the refill thread.
//
// What the pool holds beyond the pages it has handed out (`spare_bytes` in stats(), in no store's
// mem_used_total): the rest of the chunk it is handing out from (under 2 MiB), the ready chunks
// (until `reserve_high_pages` are ready; a chunk more while a taker populates its own), and up to
// `retain_pages` freed pages kept resident for reuse (ready pages too). Pages freed beyond that go
// back to the OS after `purge_delay`, from the refill thread, unless taken again first (at once,
// in give(), with no thread), and a chunk whose pages are all free goes back whole. After
// `reserve_idle_release` without a take, the ready chunks go back as well, leaving what the pool
// would hold without a refill thread. Holes in partly used chunks are reused before a new chunk is
// started once more than a chunk's worth of them exist, which bounds the address space a
// churning workload spreads over.
//
// One pool serves any number of allocators (PagePool::shared() by default), so the spare memory is
// bounded per process, not per store. Thread-safe: one mutex, a leaf (nothing else is taken under
// it), held for a few instructions per page but not while the OS populates a chunk. The refill
// thread is started by the first take that leaves the reserve low, and stopped and joined by the
// destructor. PagePool::shared() is never destroyed: its thread sleeps or populates until the
// process exits, touching nothing but the pool, which stays allocated (and reachable, for leak
// checkers) to the end.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <new>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "../detail/assert.hpp"
#include "../detail/os.hpp"
#include "../detail/spin_mutex.hpp"
#include "../errc.hpp"

namespace zpage {

// A 4 KiB page of a PagePool, named by its number: 4 bytes in a span's page list, not 8.
using PageNumber = std::uint32_t;

struct PagePoolStats {
    std::size_t pages_in_use = 0;    // handed out and not given back
    std::size_t resident_bytes = 0;  // memory the pool holds resident, in use or spare
    std::size_t spare_bytes = 0;     // resident_bytes - pages_in_use * 4 KiB: the pages ready to hand out
    std::size_t metadata_bytes = 0;  // the pool's own bookkeeping
    std::size_t chunks_started = 0;  // 2 MiB chunks made resident since construction (background + direct)
    // How the reserve was kept, after the kernel's reclaim counters (/proc/vmstat), since construction:
    std::size_t refill_wakeups = 0;               // takes that woke the refill thread (kswapd's wakeups)
    std::size_t chunks_populated_background = 0;  // chunks the refill thread made resident (as pgsteal_kswapd)
    std::size_t chunks_populated_direct = 0;      // chunks a taking thread made resident itself (as pgsteal_direct)
    std::size_t allocstall = 0;                   // times a taker found nothing ready and populated a chunk itself
    std::size_t refill_failures = 0;              // refill runs cut short by the OS refusing memory (kswapd_failures)
    std::size_t chunks_released_idle = 0;         // ready chunks given back after reserve_idle_release without a take
    std::size_t pages_purged = 0;                 // freed pages the refill thread gave back after purge_delay
    std::uint64_t background_populate_ns = 0;     // time the refill thread spent making chunks resident
    std::uint64_t direct_populate_ns = 0;         // time taking threads spent making chunks resident (the store path)
};

class PagePool {
public:
    static constexpr std::size_t page_bytes = detail::os::page_bytes;
    static constexpr std::size_t chunk_bytes = detail::os::huge_page_bytes;
    static constexpr std::size_t chunk_pages = chunk_bytes / page_bytes;
    static constexpr std::size_t region_bytes = std::size_t{1} << 30;  // address space reserved at a time
    static constexpr std::size_t region_pages = region_bytes / page_bytes;
    static constexpr std::size_t max_regions = 4096;                    // 4 TiB of pages

    struct Config {
        // Freed pages kept resident for reuse, beyond which they go back to the OS. The default is
        // one chunk's worth: enough to absorb a burst of erases and stores without syscalls.
        std::size_t retain_pages = chunk_pages;
        // The refill thread (see the top of this file). false: none; a taker makes each chunk it
        // needs resident itself and nothing is kept ready beyond the current chunk and
        // retain_pages, as before the pool had a reserve.
        bool background_refill = true;
        // Its watermarks, in ready pages (the rest of the current chunk, ready chunks, retained
        // freed pages): the low one leaves the thread time to populate a chunk before the taker
        // runs out, the high one how far ahead it gets. README, Performance, has the measurements
        // behind the defaults.
        std::size_t reserve_low_pages = 2 * chunk_pages;   // a take leaving fewer wakes the refill thread
        std::size_t reserve_high_pages = 4 * chunk_pages;  // which populates chunks until this many are ready
        // Ready chunks go back to the OS after this long without a take; 0: never.
        std::chrono::milliseconds reserve_idle_release{10'000};
        // How long freed pages beyond retain_pages stay resident before the refill thread gives
        // them back (the oldest freed first), unless taken again meanwhile; mimalloc's purge
        // delay. A store that writes pages back and stores new ones, freeing and taking pages by
        // the thousand, then reuses them with no syscall and no page fault, rather than splitting
        // transparent huge pages a page at a time and faulting them in again. 0, or without the
        // refill thread: they go back in give() itself.
        std::chrono::milliseconds purge_delay{100};

        // Throws std::invalid_argument naming the field at fault.
        void validate() const {
            if (reserve_low_pages > reserve_high_pages)
                throw std::invalid_argument(
                    "zpage::PagePool::Config: reserve_low_pages must not exceed reserve_high_pages");
            if (reserve_idle_release.count() < 0)
                throw std::invalid_argument("zpage::PagePool::Config: reserve_idle_release must not be negative");
            if (purge_delay.count() < 0)
                throw std::invalid_argument("zpage::PagePool::Config: purge_delay must not be negative");
        }
    };

    PagePool() : PagePool(Config{}) {}
    // Throws std::invalid_argument for a bad configuration (Config::validate).
    explicit PagePool(Config config) : config_(validated(config)) {}
    // Stops the refill thread (waiting out a chunk it is populating) and gives everything back to
    // the OS. No other call may be running.
    ~PagePool() {
        {
            const std::unique_lock guard = locked();
            stopping_ = true;
        }
        refill_wake_.notify_one();
        if (refill_thread_.joinable()) refill_thread_.join();
        for (std::byte* region : regions_) detail::os::release(region, region_bytes);
    }
    PagePool(const PagePool&) = delete;
    PagePool& operator=(const PagePool&) = delete;

    // The pool allocators use when their config names none. Never destroyed: stores with static
    // storage duration may outlive any other static object.
    [[nodiscard]] static PagePool& shared() {
        static PagePool* const pool = new PagePool();
        return *pool;
    }

    // Hands out out.size() resident, writable pages (their contents are undefined), or none with
    // errc::out_of_memory when the OS refuses memory or address space. Any thread.
    [[nodiscard]] Status take(std::span<PageNumber> out) noexcept {
        std::unique_lock guard = locked();
        Status taken = errc::ok;
        for (std::size_t i = 0; i < out.size(); ++i) {
            const Result<PageNumber> page = take_one(guard);
            if (!page) {
                give_locked(out.first(i));
                taken = page.error();
                break;
            }
            out[i] = *page;
        }
        ++takes_;
        wake_refill_if_low();
        return taken;
    }

    // Takes pages back (each handed out by take() and not given back since). Keeps up to
    // retain_pages of them resident; returns the others, and every chunk left without pages in
    // use, to the OS. Any thread.
    void give(std::span<const PageNumber> pages) noexcept {
        const std::unique_lock guard = locked();
        give_locked(pages);
    }

    // Where page `page` is. Any thread; `page` must have been handed out.
    [[nodiscard]] std::byte* address(PageNumber page) const noexcept {
        return regions_[page / region_pages] + std::size_t{page % region_pages} * page_bytes;
    }

    // A consistent snapshot. Any thread.
    [[nodiscard]] PagePoolStats stats() const noexcept {
        const std::unique_lock guard = locked();
        PagePoolStats s = counted_;
        s.pages_in_use = pages_in_use_;
        s.resident_bytes = resident_pages_ * page_bytes;
        s.spare_bytes = ready_pages() * page_bytes;
        s.metadata_bytes = page_state_.capacity() + chunks_.capacity() * sizeof(Chunk) +
                           (warm_.capacity() + cold_.capacity() + empty_chunks_.capacity() + ready_chunks_.capacity()) *
                               sizeof(std::uint32_t);
        return s;
    }

private:
    // Where each page of a started chunk is. Stacks of free pages may hold stale entries (a page
    // taken again, or its chunk given back whole); an entry counts only while its page's state
    // still says it is there.
    enum class PageState : std::uint8_t { unused, in_use, warm, cold };

    struct Chunk {
        std::uint16_t in_use = 0;  // pages handed out
        std::uint16_t warm = 0;    // free and resident
        std::uint16_t cold = 0;    // free and given back to the OS
        bool started = false;      // resident (or partly given back) since last made resident
        bool ready = false;        // resident, untouched, in ready_chunks_
    };
    static_assert(sizeof(Chunk) == 8, "zpage::PagePool: a chunk's bookkeeping is 8 bytes");

    enum class Populator : std::uint8_t { direct, background };

    static constexpr std::uint32_t no_chunk = 0xFFFF'FFFF;
    static constexpr const char* lock_site = "page pool mutex";

    static Config validated(const Config& config) {
        config.validate();
        return config;
    }

    [[nodiscard]] std::unique_lock<std::mutex> locked() const noexcept {
        return detail::lock_waiting_for(lock_, lock_site);
    }

    // Pages resident and not handed out: the rest of the current chunk, the ready chunks, warm pages.
    [[nodiscard]] std::size_t ready_pages() const noexcept { return resident_pages_ - pages_in_use_; }

    [[nodiscard]] bool current_has_pages() const noexcept { return current_ != no_chunk && bump_ < chunk_pages; }

    // Caller holds `guard`, which populate_chunk() lets go of while the OS populates a chunk.
    Result<PageNumber> take_one(std::unique_lock<std::mutex>& guard) noexcept {
        for (;;) {
            while (!warm_.empty()) {
                const PageNumber page = warm_.back();
                warm_.pop_back();
                if (state(page) != PageState::warm) continue;
                --chunks_[page / chunk_pages].warm;
                --warm_pages_;
                return hand_out(page);
            }
            if (current_has_pages()) return hand_out(current_page(bump_++));
            if (cold_pages_ > chunk_pages) {
                if (const Result<PageNumber> page = take_cold(); page) return page;
            }
            if (!ready_chunks_.empty()) {
                make_current(pop_ready());
                continue;
            }
            // Nothing ready: this thread populates a chunk itself (direct), the refill thread the
            // next one meanwhile.
            ++counted_.allocstall;
            wake_refill_if_low();
            const Status populated = populate_chunk(guard, Populator::direct);
            if (populated || current_has_pages() || !ready_chunks_.empty() || !warm_.empty()) continue;
            if (cold_pages_ != 0) return take_cold();  // no new chunk: a hole in a partly used one will do
            return populated.error();
        }
    }

    Result<PageNumber> take_cold() noexcept {
        while (!cold_.empty()) {
            const PageNumber page = cold_.back();
            if (state(page) != PageState::cold) {
                cold_.pop_back();
                continue;
            }
            if (!detail::os::populate(address(page), page_bytes)) return errc::out_of_memory;
            cold_.pop_back();
            --chunks_[page / chunk_pages].cold;
            --cold_pages_;
            ++resident_pages_;
            return hand_out(page);
        }
        return errc::out_of_memory;
    }

    PageNumber hand_out(PageNumber page) noexcept {
        state(page) = PageState::in_use;
        ++chunks_[page / chunk_pages].in_use;
        ++pages_in_use_;
        return page;
    }

    [[nodiscard]] PageNumber current_page(std::size_t index) const noexcept {
        return static_cast<PageNumber>(current_ * chunk_pages + index);
    }

    // Makes a chunk resident (one given back whole, else a new one) and files it: as the chunk to
    // hand out from if the current one has run out, else as ready. The lock is let go of while the
    // OS populates it (a 2 MiB fault, a tenth of a millisecond to several), so that other threads
    // go on taking and giving pages meanwhile.
    Status populate_chunk(std::unique_lock<std::mutex>& guard, Populator by) noexcept {
        std::uint32_t chunk;
        if (!empty_chunks_.empty()) {
            chunk = empty_chunks_.back();
            empty_chunks_.pop_back();
        } else {
            if (std::size_t{next_chunk_} * chunk_pages / region_pages >= max_regions) return errc::out_of_memory;
            if (const Status grown = grow_for(next_chunk_); !grown) return grown;
            chunk = next_chunk_++;
        }
        std::byte* base = address(static_cast<PageNumber>(std::size_t{chunk} * chunk_pages));
        guard.unlock();
        const auto begin = std::chrono::steady_clock::now();
        const bool populated = detail::os::populate(base, chunk_bytes);
        if (!populated) detail::os::decommit(base, chunk_bytes);  // whatever part of it the kernel did provide
        const auto spent = std::chrono::steady_clock::now() - begin;
        guard = detail::lock_waiting_for(lock_, lock_site);
        (by == Populator::direct ? counted_.direct_populate_ns : counted_.background_populate_ns) +=
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count());
        if (!populated) {
            try {
                empty_chunks_.push_back(chunk);
            } catch (const std::bad_alloc&) {
                // Its address space goes unused; nothing else is lost.
            }
            return errc::out_of_memory;
        }
        chunks_[chunk] = Chunk{.started = true};
        resident_pages_ += chunk_pages;
        ++counted_.chunks_started;
        if (by == Populator::direct) {
            ++counted_.chunks_populated_direct;
            refill_failed_ = false;  // the OS gives memory again: the refill thread may be woken
        } else {
            ++counted_.chunks_populated_background;
        }
        if (current_has_pages()) {
            file_ready(chunk);
        } else {
            make_current(chunk);
        }
        return errc::ok;
    }

    void make_current(std::uint32_t chunk) noexcept {
        const std::uint32_t previous = current_;
        current_ = chunk;
        bump_ = 0;
        if (previous != no_chunk) settle(previous);
    }

    void file_ready(std::uint32_t chunk) noexcept {
        chunks_[chunk].ready = true;
        if (try_push(ready_chunks_, chunk)) {
            // A taker's chunk: a refill thread asleep with no deadline starts its idle-release one.
            if (ready_chunks_.size() == 1 && refill_thread_.joinable()) refill_wake_.notify_one();
            return;
        }
        // No memory to list it: back to the OS it goes (or, refused there too, it stays resident
        // and counted as spare, out of reach).
        chunks_[chunk].ready = false;
        settle(chunk);
    }

    std::uint32_t pop_ready() noexcept {
        const std::uint32_t chunk = ready_chunks_.back();
        ready_chunks_.pop_back();
        chunks_[chunk].ready = false;
        return chunk;
    }

    // Under the lock: wakes the refill thread (starting it the first time) when fewer than
    // reserve_low_pages are ready, unless it is awake already or waits, after the OS refused it
    // memory, for a taker to have populated a chunk again (as kswapd stays asleep after failing
    // until direct reclaim succeeds).
    void wake_refill_if_low() noexcept {
        if (!config_.background_refill || refill_wanted_ || refill_failed_ || refill_unavailable_ || stopping_ ||
            ready_pages() >= config_.reserve_low_pages)
            return;
        if (!start_refill_thread()) return;
        refill_wanted_ = true;
        ++counted_.refill_wakeups;
        refill_wake_.notify_one();
    }

    // Under the lock: the refill thread, started the first time it is wanted. False when no
    // thread can be had: takers populate and givers purge themselves, as with background_refill off.
    bool start_refill_thread() noexcept {
        if (refill_thread_.joinable()) return true;
        if (refill_unavailable_) return false;
        try {
            refill_thread_ = detail::os::start_thread("zpage-refill", [this] { refill(); });
            return true;
        } catch (const std::exception&) {
            refill_unavailable_ = true;
            return false;
        }
    }

    // The refill thread: asleep until a take leaves the reserve low, then populating chunks, with
    // the lock let go of, until reserve_high_pages are ready; or until freed pages beyond
    // retain_pages have waited purge_delay, then purging them.
    void refill() noexcept {
        auto guard = detail::lock_waiting_for(lock_, lock_site);
        for (;;) {
            sleep_until_wanted(guard);
            if (stopping_) return;
            if (purge_due()) purge_excess(guard);
            if (!refill_wanted_) continue;
            while (!stopping_ && ready_pages() < config_.reserve_high_pages) {
                if (!populate_chunk(guard, Populator::background)) {
                    ++counted_.refill_failures;
                    refill_failed_ = true;
                    break;
                }
            }
            refill_wanted_ = false;
        }
    }

    // The refill thread's sleep, until woken, a purge is due, or the pool is destroyed. Once
    // reserve_idle_release has passed without a take, the ready chunks go back to the OS.
    void sleep_until_wanted(std::unique_lock<std::mutex>& guard) noexcept {
        const auto woken = [this] { return refill_wanted_ || stopping_ || purge_due(); };
        detail::waiting_for().store("page pool refill wakeup", std::memory_order_relaxed);
        while (!woken()) {
            const bool idle_release = !ready_chunks_.empty() && config_.reserve_idle_release.count() != 0;
            if (!idle_release && !purge_pending_) {
                refill_wake_.wait(guard);
                continue;
            }
            const std::uint64_t takes_seen = takes_;
            const auto release_at = std::chrono::steady_clock::now() + config_.reserve_idle_release;
            const auto deadline = !idle_release ? purge_at_ : purge_pending_ ? std::min(purge_at_, release_at) : release_at;
            if (!refill_wake_.wait_until(guard, deadline, woken) && idle_release && takes_ == takes_seen &&
                std::chrono::steady_clock::now() >= release_at)
                release_ready_chunks();
        }
        detail::waiting_for().store(nullptr, std::memory_order_relaxed);
    }

    void release_ready_chunks() noexcept {
        while (!ready_chunks_.empty()) {
            const std::uint32_t chunk = ready_chunks_.back();
            chunks_[chunk].ready = false;
            settle(chunk);
            if (chunks_[chunk].started) {  // the OS would not take it: it stays ready
                chunks_[chunk].ready = true;
                return;
            }
            ready_chunks_.pop_back();
            ++counted_.chunks_released_idle;
        }
    }

    // Reserves the address space region of `chunk` if it has none yet and grows the page
    // states to cover it.
    Status grow_for(std::uint32_t chunk) noexcept {
        const std::size_t region = std::size_t{chunk} * chunk_pages / region_pages;
        if (regions_[region] == nullptr) {
            std::byte* base = detail::os::reserve_huge_aligned(region_bytes);
            if (base == nullptr) return errc::out_of_memory;
            detail::os::advise_huge_pages(base, region_bytes);
            regions_[region] = base;
        }
        try {
            chunks_.resize(std::size_t{chunk} + 1);
            page_state_.resize((std::size_t{chunk} + 1) * chunk_pages, PageState::unused);
        } catch (const std::bad_alloc&) {
            return errc::out_of_memory;
        }
        return errc::ok;
    }

    PageState& state(PageNumber page) noexcept { return page_state_[page]; }

    void give_locked(std::span<const PageNumber> pages) noexcept {
        for (const PageNumber page : pages) {
            ZPAGE_ASSERT(state(page) == PageState::in_use);
            --chunks_[page / chunk_pages].in_use;
            --pages_in_use_;
        }
        // Pages of a chunk left with none in use go back with their chunk, in one call; the others
        // stay warm while there is room (or until the refill thread purges them), and go back to
        // the OS in runs of adjacent pages after.
        const bool deferred = purge_deferred();
        boost::container::small_vector<PageNumber, 64> to_os;
        for (const PageNumber page : pages) {
            const auto chunk = static_cast<std::uint32_t>(page / chunk_pages);
            const bool chunk_empties = chunks_[chunk].in_use == 0 && chunk != current_ && !chunks_[chunk].ready;
            if (chunk_empties || deferred || warm_pages_ < config_.retain_pages || !try_push(to_os, page)) {
                make_warm(page);
            }
        }
        return_to_os(to_os);
        for (const PageNumber page : pages) settle(static_cast<std::uint32_t>(page / chunk_pages));
        compact_stacks();
        if (deferred && warm_pages_ > config_.retain_pages && !purge_pending_ && start_refill_thread()) {
            purge_pending_ = true;
            purge_at_ = std::chrono::steady_clock::now() + config_.purge_delay;
            refill_wake_.notify_one();
        }
    }

    // Whether give() leaves freed pages beyond retain_pages to the refill thread.
    [[nodiscard]] bool purge_deferred() const noexcept {
        return config_.background_refill && config_.purge_delay.count() != 0 && !refill_unavailable_ && !stopping_;
    }

    [[nodiscard]] bool purge_due() const noexcept {
        return purge_pending_ && std::chrono::steady_clock::now() >= purge_at_;
    }

    // The refill thread's purge: the warm pages beyond retain_pages go back to the OS, the
    // oldest freed first (the bottom of the stack; takes reuse the top), a batch of runs per
    // lock hold so that takers and givers go on between batches.
    void purge_excess(std::unique_lock<std::mutex>& guard) noexcept {
        purge_pending_ = false;
        constexpr std::size_t batch_pages = 64;
        while (!stopping_ && warm_pages_ > config_.retain_pages) {
            const std::size_t excess = warm_pages_ - config_.retain_pages;
            boost::container::small_vector<PageNumber, batch_pages> batch;
            std::size_t scanned = 0;
            for (; scanned < warm_.size() && batch.size() < std::min(excess, batch_pages); ++scanned) {
                const PageNumber page = warm_[scanned];
                if (state(page) != PageState::warm) continue;  // stale, or listed twice
                state(page) = PageState::unused;  // out of the warm pages while this batch holds it
                --chunks_[page / chunk_pages].warm;
                --warm_pages_;
                batch.push_back(page);
            }
            warm_.erase(warm_.begin(), warm_.begin() + static_cast<std::ptrdiff_t>(scanned));  // all stale now
            if (batch.empty()) break;
            return_to_os(batch);
            for (const PageNumber page : batch) settle(static_cast<std::uint32_t>(page / chunk_pages));
            counted_.pages_purged += batch.size();
            guard.unlock();
            guard = detail::lock_waiting_for(lock_, lock_site);
        }
    }

    // A page with no room on its stack keeps its state and counts; only reuse before its chunk
    // empties is lost.
    void make_warm(PageNumber page) noexcept {
        state(page) = PageState::warm;
        ++chunks_[page / chunk_pages].warm;
        ++warm_pages_;
        try_push(warm_, page);
    }

    void make_cold(PageNumber page) noexcept {
        state(page) = PageState::cold;
        ++chunks_[page / chunk_pages].cold;
        ++cold_pages_;
        --resident_pages_;
        try_push(cold_, page);
    }

    // Gives free pages back to the OS, a madvise call per run of adjacent pages; pages the OS
    // refuses stay warm (resident and counted, beyond retain_pages) and are reused first.
    template <class PageList>
    void return_to_os(PageList& list) noexcept {
        std::sort(list.begin(), list.end());
        for (std::size_t begin = 0, end; begin < list.size(); begin = end) {
            end = begin + 1;
            while (end < list.size() && list[end] == list[end - 1] + 1 &&
                   list[end] / region_pages == list[begin] / region_pages)
                ++end;
            const bool returned = detail::os::decommit(address(list[begin]), (end - begin) * page_bytes);
            for (std::size_t i = begin; i < end; ++i) returned ? make_cold(list[i]) : make_warm(list[i]);
        }
    }

    // A started chunk with no page in use (and not being handed out from) goes back to the OS
    // whole; its stack entries turn stale.
    void settle(std::uint32_t index) noexcept {
        Chunk& chunk = chunks_[index];
        if (!chunk.started || chunk.in_use != 0 || chunk.ready || index == current_) return;
        std::byte* base = address(static_cast<PageNumber>(std::size_t{index} * chunk_pages));
        if (!detail::os::decommit(base, chunk_bytes)) return;  // it stays as it is; its pages are reusable
        try {
            empty_chunks_.push_back(index);
        } catch (const std::bad_alloc&) {
            // Not remembered: the chunk's address space goes unused; its memory is back with the OS.
        }
        resident_pages_ -= chunk_pages - chunk.cold;
        warm_pages_ -= chunk.warm;
        cold_pages_ -= chunk.cold;
        std::fill_n(page_state_.begin() + static_cast<std::ptrdiff_t>(std::size_t{index} * chunk_pages), chunk_pages,
                    PageState::unused);
        chunk = Chunk{};
    }

    // False when there was no memory to append the page.
    template <class Pages>
    static bool try_push(Pages& pages, PageNumber page) noexcept {
        try {
            pages.push_back(page);
            return true;
        } catch (const std::bad_alloc&) {
            return false;
        }
    }

    // Drops stale entries once they outnumber the live ones, so the stacks stay proportional to
    // the free pages they track.
    void compact_stacks() noexcept {
        auto drop_stale = [&](std::vector<PageNumber>& stack, PageState live, std::size_t count) {
            if (stack.size() <= 2 * count + chunk_pages) return;
            std::erase_if(stack, [&](PageNumber page) { return state(page) != live; });
        };
        drop_stale(warm_, PageState::warm, warm_pages_);
        drop_stale(cold_, PageState::cold, cold_pages_);
    }

    const Config config_;
    mutable std::mutex lock_;                        // a leaf: nothing else is taken under it
    std::condition_variable refill_wake_;            // the refill thread sleeps on it, with lock_
    std::thread refill_thread_;                      // started by the first take that leaves the reserve low
    std::array<std::byte*, max_regions> regions_{};  // written under lock_ before any page in them is handed out
    std::vector<Chunk> chunks_;
    std::vector<PageState> page_state_;
    std::vector<PageNumber> warm_;
    std::vector<PageNumber> cold_;
    std::vector<std::uint32_t> empty_chunks_;
    std::vector<std::uint32_t> ready_chunks_;  // populated, untouched, waiting to become current
    std::uint32_t next_chunk_ = 0;
    std::uint32_t current_ = no_chunk;
    std::size_t bump_ = 0;
    std::size_t pages_in_use_ = 0;
    std::size_t resident_pages_ = 0;
    std::size_t warm_pages_ = 0;
    std::size_t cold_pages_ = 0;
    std::uint64_t takes_ = 0;
    bool refill_wanted_ = false;       // woken, and not yet back asleep
    bool purge_pending_ = false;       // warm pages beyond retain_pages, to purge at purge_at_
    std::chrono::steady_clock::time_point purge_at_{};
    bool refill_failed_ = false;       // the OS refused the refill thread; not woken until a taker populates
    bool refill_unavailable_ = false;  // the thread could not be started
    bool stopping_ = false;            // the destructor runs
    PagePoolStats counted_;            // the event counters (chunks_started on); stats() adds the sizes
};

}  // namespace zpage
