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
// What the pool holds beyond the pages it has handed out (`spare_bytes` in stats()): the rest of
// the chunk it is handing out from (under 2 MiB), and up to `retain_pages` freed pages kept
// resident for reuse. Pages freed beyond that go back to the OS at once, and a chunk whose pages
// are all free goes back whole. Holes in partly used chunks are reused before a new chunk is
// started once more than a chunk's worth of them exist, which bounds the address space a
// churning workload spreads over.
//
// One pool serves any number of allocators (PagePool::shared() by default), so the spare memory is
// bounded per process, not per store. Thread-safe: one lock, held for a few instructions per page
// but not while the OS populates a chunk.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "../detail/assert.hpp"
#include "../detail/os.hpp"
#include "../errc.hpp"

namespace zpage {

// A 4 KiB page of a PagePool, named by its number: 4 bytes in a span's page list, not 8.
using PageNumber = std::uint32_t;

struct PagePoolStats {
    std::size_t pages_in_use = 0;    // handed out and not given back
    std::size_t resident_bytes = 0;  // memory the pool holds resident, in use or spare
    std::size_t spare_bytes = 0;     // resident_bytes - pages_in_use * 4 KiB
    std::size_t metadata_bytes = 0;  // the pool's own bookkeeping
    std::size_t chunks_started = 0;  // 2 MiB chunks made resident since construction
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
    };

    PagePool() : PagePool(Config{}) {}
    explicit PagePool(Config config) : config_(config) {}
    ~PagePool() {
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
    // errc::out_of_memory when the OS refuses memory or address space.
    [[nodiscard]] Status take(std::span<PageNumber> out) noexcept {
        std::unique_lock guard(lock_);
        for (std::size_t i = 0; i < out.size(); ++i) {
            const Result<PageNumber> page = take_one(guard);
            if (!page) {
                give_locked(out.first(i));
                return page.error();
            }
            out[i] = *page;
        }
        return errc::ok;
    }

    // Takes pages back (each handed out by take() and not given back since). Keeps up to
    // retain_pages of them resident; returns the others, and every chunk left without pages in
    // use, to the OS.
    void give(std::span<const PageNumber> pages) noexcept {
        std::lock_guard guard(lock_);
        give_locked(pages);
    }

    // Where page `page` is. Any thread; `page` must have been handed out.
    [[nodiscard]] std::byte* address(PageNumber page) const noexcept {
        return regions_[page / region_pages] + std::size_t{page % region_pages} * page_bytes;
    }

    [[nodiscard]] PagePoolStats stats() const noexcept {
        std::lock_guard guard(lock_);
        PagePoolStats s;
        s.pages_in_use = pages_in_use_;
        s.resident_bytes = resident_pages_ * page_bytes;
        s.spare_bytes = (resident_pages_ - pages_in_use_) * page_bytes;
        s.metadata_bytes = page_state_.capacity() + chunks_.capacity() * sizeof(Chunk) +
                           (warm_.capacity() + cold_.capacity() + empty_chunks_.capacity()) * sizeof(std::uint32_t);
        s.chunks_started = chunks_started_;
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
    };

    static constexpr std::uint32_t no_chunk = 0xFFFF'FFFF;

    // Caller holds `guard`, which start_chunk() lets go of while the OS populates a chunk.
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
            if (current_ != no_chunk && bump_ < chunk_pages) return hand_out(current_page(bump_++));
            if (cold_pages_ > chunk_pages) {
                if (const Result<PageNumber> page = take_cold(); page) return page;
            }
            if (const Status started = start_chunk(guard); !started) {
                // No new chunk: a hole in a partly used one will do.
                if (cold_pages_ != 0) return take_cold();
                return started.error();
            }
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

    // Makes a chunk resident (one given back whole, else a new one) to hand out from next. The
    // lock is let go of while the OS populates it (a 2 MiB fault, a tenth of a millisecond or
    // more), so that other threads go on taking pages meanwhile; if one of them started a chunk
    // in the meantime, this one waits as the next (`ready_`). Called when the current chunk has
    // handed out all its pages; the caller then looks again for a page.
    Status start_chunk(std::unique_lock<std::mutex>& guard) noexcept {
        if (ready_ != no_chunk) {
            make_current(std::exchange(ready_, no_chunk));
            return errc::ok;
        }
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
        const bool populated = detail::os::populate(base, chunk_bytes);
        if (!populated) detail::os::decommit(base, chunk_bytes);  // whatever part of it the kernel did provide
        guard.lock();
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
        ++chunks_started_;
        if (current_ != no_chunk && bump_ < chunk_pages && ready_ == no_chunk) {
            ready_ = chunk;  // another thread's chunk came first
        } else if (current_ != no_chunk && bump_ < chunk_pages) {
            settle(chunk);  // a third at once (rare): back it goes
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
        // stay warm while there is room, and go back to the OS in runs of adjacent pages after.
        boost::container::small_vector<PageNumber, 64> to_os;
        for (const PageNumber page : pages) {
            const auto chunk = static_cast<std::uint32_t>(page / chunk_pages);
            const bool chunk_empties = chunks_[chunk].in_use == 0 && chunk != current_ && chunk != ready_;
            if (chunk_empties || warm_pages_ < config_.retain_pages || !try_push(to_os, page)) {
                make_warm(page);
            }
        }
        return_to_os(to_os);
        for (const PageNumber page : pages) settle(static_cast<std::uint32_t>(page / chunk_pages));
        compact_stacks();
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
    void return_to_os(boost::container::small_vector<PageNumber, 64>& list) noexcept {
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
        if (!chunk.started || chunk.in_use != 0 || index == current_ || index == ready_) return;
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
    mutable std::mutex lock_;
    std::array<std::byte*, max_regions> regions_{};  // written under lock_ before any page in them is handed out
    std::vector<Chunk> chunks_;
    std::vector<PageState> page_state_;
    std::vector<PageNumber> warm_;
    std::vector<PageNumber> cold_;
    std::vector<std::uint32_t> empty_chunks_;
    std::uint32_t next_chunk_ = 0;
    std::uint32_t current_ = no_chunk;
    std::uint32_t ready_ = no_chunk;  // populated, waiting to become current
    std::size_t bump_ = 0;
    std::size_t pages_in_use_ = 0;
    std::size_t resident_pages_ = 0;
    std::size_t warm_pages_ = 0;
    std::size_t cold_pages_ = 0;
    std::size_t chunks_started_ = 0;
};

}  // namespace zpage
