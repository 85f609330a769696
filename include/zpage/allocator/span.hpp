// zpage: spans and the arena they are carved from.
//
// A span is a run of contiguous 4 KiB pages holding objects of one size class back to back. The
// arena reserves address space in regions of 2^k bytes and divides each region into span slots of
// the largest span size; span id `i` lives at a fixed address (region base + slot offset), so an
// object's address follows from (span id, slot, class) without reading the span's descriptor.
// Slots are reserved address space only: a span populates its pages as objects arrive and gives
// them back when it empties, so a slot costs nothing while unused.
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

namespace zpage {

// Bookkeeping of one span, kept outside the span so that every byte of a span holds objects.
// Guarded by the lock of the span's size class.
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
    std::uint32_t populated_pages = 0;  // pages [0, populated_pages) are resident
    std::uint16_t size_class = 0;
    std::uint8_t group = 0;  // fullness group while linked; see SizeClassAllocator
    bool linked = false;     // on its class's fullness list (a non-full span being allocated from)
};

class SpanArena {
public:
    static constexpr std::size_t max_regions = 64;

    SpanArena(std::size_t region_bytes, std::size_t span_slot_bytes, MemoryBudget& budget)
        : region_bytes_(region_bytes),
          span_slot_bytes_(span_slot_bytes),
          spans_per_region_(region_bytes / span_slot_bytes),
          budget_(budget) {
        ZPAGE_ASSERT((spans_per_region_ & (spans_per_region_ - 1)) == 0);
        while ((std::size_t{1} << region_shift_) < spans_per_region_) ++region_shift_;
    }
    ~SpanArena() {
        budget_.uncharge(descriptor_bytes_.load(std::memory_order_relaxed));
        for (Region& r : regions_) {
            detail::os::release(r.spans, region_bytes_);
            detail::os::release(reinterpret_cast<std::byte*>(r.descriptors), descriptor_region_bytes());
        }
    }
    SpanArena(const SpanArena&) = delete;
    SpanArena& operator=(const SpanArena&) = delete;

    // A span id not in use, its descriptor reset; errc::out_of_memory when no address space is
    // left. Any thread.
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
        descriptor(id) = SpanDescriptor{};
        return id;
    }

    // Returns a span id whose pages have already been given back. Any thread.
    void release(std::uint32_t id) noexcept {
        std::lock_guard guard(lock_);
        try {
            free_ids_.push_back(id);
        } catch (...) {
            // Keeping the id unused costs address space only; nothing to undo.
        }
    }

    [[nodiscard]] SpanDescriptor& descriptor(std::uint32_t id) const noexcept {
        return regions_[id >> region_shift_].descriptors[id & (spans_per_region_ - 1)];
    }

    [[nodiscard]] std::byte* base(std::uint32_t id) const noexcept {
        return regions_[id >> region_shift_].spans + (id & (spans_per_region_ - 1)) * span_slot_bytes_;
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
    struct Region {
        std::byte* spans = nullptr;
        SpanDescriptor* descriptors = nullptr;
    };

    static constexpr std::size_t pages_for(std::size_t bytes) noexcept {
        return (bytes + detail::os::page_bytes - 1) / detail::os::page_bytes;
    }
    [[nodiscard]] std::size_t descriptor_region_bytes() const noexcept {
        return pages_for(spans_per_region_ * sizeof(SpanDescriptor)) * detail::os::page_bytes;
    }

    // Makes a new id addressable: reserves its region on first use and charges the descriptor
    // pages it brings into use. Caller holds lock_.
    Status grow_for(std::uint32_t id) noexcept {
        const std::size_t region = id >> region_shift_;
        if (region >= max_regions) return errc::out_of_memory;
        Region& r = regions_[region];
        if (r.spans == nullptr) {
            std::byte* spans = detail::os::reserve(region_bytes_);
            std::byte* descriptors = spans ? detail::os::reserve(descriptor_region_bytes()) : nullptr;
            if (descriptors == nullptr) {
                detail::os::release(spans, region_bytes_);
                return errc::out_of_memory;
            }
            r.spans = spans;
            r.descriptors = reinterpret_cast<SpanDescriptor*>(descriptors);
        }
        // Ids of a region are handed out in order, so the descriptors written so far fill a
        // prefix of its descriptor pages: charge a page when the new descriptor first reaches it.
        const std::size_t local = id & (spans_per_region_ - 1);
        const std::size_t grown = pages_for((local + 1) * sizeof(SpanDescriptor)) - pages_for(local * sizeof(SpanDescriptor));
        if (grown != 0) {
            budget_.charge(grown * detail::os::page_bytes);
            descriptor_bytes_.fetch_add(grown * detail::os::page_bytes, std::memory_order_relaxed);
        }
        return errc::ok;
    }

    const std::size_t region_bytes_;
    const std::size_t span_slot_bytes_;
    const std::size_t spans_per_region_;
    unsigned region_shift_ = 0;
    MemoryBudget& budget_;
    std::array<Region, max_regions> regions_{};  // filled in under lock_, published by handle words
    detail::SpinMutex lock_;
    std::vector<std::uint32_t> free_ids_;
    std::uint32_t next_id_ = 0;
    std::atomic<std::size_t> descriptor_bytes_{0};
};

}  // namespace zpage
