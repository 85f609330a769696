// zpage: spans and the arena that names them.
//
// A span holds objects of one size class back to back at offsets slot * object_bytes of a byte
// range of pages_per_span * 4 KiB. Its pages come one at a time from a PagePool, as the bump
// pointer reaches them, and need not be adjacent: the span's descriptor lists them, and an object
// that crosses a page boundary lies in two (or, for objects over 4 KiB, more) pages. The arena
// hands out span ids and keeps each span's descriptor at a fixed address, so that a reader can go
// from (span id, slot, class) to the object's pages without a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#include "../detail/assert.hpp"
#include "../detail/os.hpp"
#include "../detail/spin_mutex.hpp"
#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "page_pool.hpp"

namespace zpage {

// Bookkeeping of one span, kept outside the span so that every byte of a span holds objects.
// Guarded by the lock of the span's size class.
template <std::size_t MaxPagesPerSpan>
struct SpanDescriptor {
    static constexpr std::uint32_t nil = 0xFFFF'FFFF;
    // owners[slot]: the OwnerId of the object in that slot, or free_owner | next free slot.
    static constexpr std::uint32_t free_owner = 0x8000'0000;
    static constexpr std::uint32_t slot_mask = 0x7FFF'FFFF;

    // From malloc, grown as the bump pointer advances: a span that only ever holds a few objects
    // (the last span of a sparse class) keeps a map of a few entries, not of objects_per_span.
    std::uint32_t* owners = nullptr;
    std::uint32_t owners_capacity = 0;
    std::uint32_t prev = nil;         // neighbours in the class's fullness list
    std::uint32_t next = nil;
    std::uint32_t live = 0;             // objects in the span
    std::uint32_t bump = 0;             // slots >= bump have never been handed out since the span began
    std::uint32_t free_head = nil;      // free slots below bump, linked through owners[]
    std::uint32_t populated_pages = 0;  // pages[0, populated_pages) are the span's, from its pool
    std::uint16_t size_class = 0;
    std::uint8_t group = 0;  // fullness group while linked; see SizeClassAllocator
    bool linked = false;     // on its class's fullness list (a non-full span being allocated from)
    // Written under the class lock before any object in the page is published; an entry changes
    // only while no live object lies in its page.
    std::array<PageNumber, MaxPagesPerSpan> pages;
};

template <std::size_t MaxPagesPerSpan>
class SpanArena {
public:
    using descriptor_type = SpanDescriptor<MaxPagesPerSpan>;
    static constexpr std::size_t spans_per_region = std::size_t{1} << 16;
    static constexpr std::size_t max_regions = 1024;  // 64 M spans

    explicit SpanArena(MemoryBudget& budget) : budget_(budget) {}
    ~SpanArena() {
        budget_.uncharge(descriptor_bytes_.load(std::memory_order_relaxed));
        for (descriptor_type* r : regions_)
            detail::os::release(reinterpret_cast<std::byte*>(r), descriptor_region_bytes);
    }
    SpanArena(const SpanArena&) = delete;
    SpanArena& operator=(const SpanArena&) = delete;

    // A span id not in use, its descriptor reset; errc::memory_limit when the budget refuses a
    // new descriptor page, errc::out_of_memory when no address space is left. Any thread.
    [[nodiscard]] Result<std::uint32_t> acquire() noexcept {
        std::lock_guard guard(lock_);
        std::uint32_t id;
        if (!free_ids_.empty()) {
            id = free_ids_.back();
            free_ids_.pop_back();
        } else {
            if (const Status grown = grow_for(next_id_); !grown) return grown.error();
            id = next_id_++;
        }
        descriptor(id) = descriptor_type{};
        return id;
    }

    // Returns a span id whose pages have already been given back. Any thread.
    void release(std::uint32_t id) noexcept {
        std::lock_guard guard(lock_);
        try {
            free_ids_.push_back(id);
        } catch (...) {
            // Keeping the id unused costs a descriptor's address space only; nothing to undo.
        }
    }

    [[nodiscard]] descriptor_type& descriptor(std::uint32_t id) const noexcept {
        return regions_[id / spans_per_region][id % spans_per_region];
    }

    // Calls f on the descriptor of every id ever handed out, in use or not. Not concurrently
    // with acquire().
    template <class F>
    void for_each_span(F&& f) const {
        for (std::uint32_t id = 0; id < next_id_; ++id) f(descriptor(id));
    }

    [[nodiscard]] std::size_t descriptor_bytes() const noexcept {
        return descriptor_bytes_.load(std::memory_order_relaxed);
    }

private:
    static constexpr std::size_t pages_for(std::size_t bytes) noexcept {
        return (bytes + detail::os::page_bytes - 1) / detail::os::page_bytes;
    }
    static constexpr std::size_t descriptor_region_bytes =
        pages_for(spans_per_region * sizeof(descriptor_type)) * detail::os::page_bytes;

    // Makes a new id addressable: reserves its region's descriptors on first use and charges the
    // descriptor page it brings into use, within the budget's limit. Caller holds lock_.
    Status grow_for(std::uint32_t id) noexcept {
        const std::size_t region = id / spans_per_region;
        if (region >= max_regions) return errc::out_of_memory;
        if (regions_[region] == nullptr) {
            std::byte* descriptors = detail::os::reserve(descriptor_region_bytes);
            if (descriptors == nullptr) return errc::out_of_memory;
            regions_[region] = reinterpret_cast<descriptor_type*>(descriptors);
        }
        // Ids of a region are handed out in order, so the descriptors written so far fill a
        // prefix of its descriptor pages: charge a page when the new descriptor first reaches it.
        const std::size_t local = id % spans_per_region;
        const std::size_t grown = pages_for((local + 1) * sizeof(descriptor_type)) - pages_for(local * sizeof(descriptor_type));
        if (grown != 0) {
            if (!budget_.try_charge(grown * detail::os::page_bytes)) return errc::memory_limit;
            descriptor_bytes_.fetch_add(grown * detail::os::page_bytes, std::memory_order_relaxed);
        }
        return errc::ok;
    }

    MemoryBudget& budget_;
    std::array<descriptor_type*, max_regions> regions_{};  // filled in under lock_, published by handle words
    detail::SpinMutex lock_{"span arena lock"};
    std::vector<std::uint32_t> free_ids_;
    std::uint32_t next_id_ = 0;
    std::atomic<std::size_t> descriptor_bytes_{0};
};

}  // namespace zpage
