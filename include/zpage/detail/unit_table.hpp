// zpage internal: the units of a store's grouped pages.
//
// Recompression may compress up to 16 neighbouring pages of a window [first, first + 16) as one
// unit (zstd over 64 KiB instead of 4 KiB holds real heaps in 16-63% less memory). Each member's
// entry holds the unit's id (flag GROUPED); the unit holds the compressed bytes (a LargeObject),
// the window positions it holds (bit p: page first + p; the decompressed bytes hold the members'
// pages in that order), how many members still refer to it, and a generation that changes
// whenever its id is reused, so that a copy of a decompressed unit kept by a thread, keyed by id
// and generation, is never stale. A unit's bytes never change while it lives: a member stored over
// or erased stops referring to it, and the unit's memory goes with its last member. Until then a
// unit whose members mostly left keeps all of its memory (compaction moves its pieces as objects
// but does not repack it): a page stored over takes its own new memory beside its old share.
//
// Locks: a unit's lock is a leaf, taken under a page's entry lock (a load gathering the unit's
// pieces) or a size-class lock (compaction moving a piece), never the other way round; a unit's
// pieces are freed after its lock is released. The free-id list's mutex is a leaf too.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <vector>

#include "../allocator/concept.hpp"
#include "../allocator/large_object.hpp"
#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "spin_mutex.hpp"

namespace zpage::detail {

template <PageAllocator Allocator>
class UnitTable {
public:
    static constexpr std::size_t max_members = 16;
    using members_mask = std::uint16_t;

    // What a unit says about itself, for a load of one of its pages.
    struct Shape {
        std::uint32_t first = 0;    // its window's first page index
        members_mask members = 0;   // which of the window's pages it holds
        std::uint8_t codec = 0;     // the store codec id that compressed it
        std::uint64_t key = 0;      // id and generation, never 0: equal keys name the same bytes

        // Where page `index` (a member) starts in the decompressed unit.
        [[nodiscard]] std::size_t rank(std::size_t index) const noexcept {
            const auto below = static_cast<unsigned>(members & ((1u << (index - first)) - 1));
            return static_cast<std::size_t>(std::popcount(below));
        }
        [[nodiscard]] std::size_t pages() const noexcept { return static_cast<std::size_t>(std::popcount(members)); }
    };

    // Units get the allocator's owner ids from `owner_base` up (a store's capacity: below it the
    // owners are page indices); at most `max_units` of them.
    UnitTable(Allocator& allocator, MemoryBudget& budget, OwnerId owner_base, std::size_t max_units)
        : allocator_(allocator), budget_(budget), owner_base_(owner_base),
          blocks_((max_units + units_per_block - 1) / units_per_block) {}

    ~UnitTable() {
        for (std::size_t b = 0; b < blocks_.size(); ++b) {
            Unit* block = blocks_[b].load(std::memory_order_relaxed);
            if (block == nullptr) continue;
            for (std::size_t u = 0; u < units_per_block; ++u) block[u].bytes.free(allocator_, budget_);
            delete[] block;
            budget_.uncharge(block_bytes);
        }
    }
    UnitTable(const UnitTable&) = delete;
    UnitTable& operator=(const UnitTable&) = delete;

    // A new unit of `compressed` bytes holding the pages `members` of the window at `first`, each
    // of which refers to it until released. Fails with memory_limit or out_of_memory, with
    // nothing allocated. Any thread, under no lock.
    [[nodiscard]] Result<std::uint32_t> create(std::span<const std::byte> compressed, std::uint32_t first,
                                               members_mask members, std::uint8_t codec) noexcept {
        const Result<std::uint32_t> id = take_id();
        if (!id) return id.error();
        LargeObject<Allocator> bytes;
        if (const Status made = LargeObject<Allocator>::allocate(allocator_, budget_, compressed,
                                                                 owner_base_ + *id, bytes);
            !made) {
            give_id(*id);
            return made.error();
        }
        Unit& unit = at(*id);
        std::lock_guard guard(unit.lock);
        unit.bytes = std::move(bytes);
        unit.first = first;
        unit.members = members;
        unit.live = static_cast<std::uint8_t>(std::popcount(members));
        unit.codec = codec;
        return *id;
    }

    // `count` members stop referring to unit `id`; the last one frees it. Any thread, under no
    // entry lock (it may free pieces, which takes size-class locks).
    void release(std::uint32_t id, unsigned count = 1) noexcept {
        Unit& unit = at(id);
        LargeObject<Allocator> freed;
        {
            std::lock_guard guard(unit.lock);
            ZPAGE_ASSERT(unit.live >= count);
            unit.live = static_cast<std::uint8_t>(unit.live - count);
            if (unit.live != 0) return;
            freed = std::move(unit.bytes);
            ++unit.generation;
        }
        freed.free(allocator_, budget_);
        give_id(id);
    }

    // The unit's shape. Under the lock of a member's entry (which keeps the unit alive).
    [[nodiscard]] Shape shape(std::uint32_t id) const noexcept {
        const Unit& unit = at(id);
        return {unit.first, unit.members, unit.codec, ((std::uint64_t{id} + 1) << 32) | unit.generation};
    }

    // Copies the unit's compressed bytes into `out` (room for its size) and returns their size.
    // Under the lock of a member's entry.
    std::size_t gather(std::uint32_t id, std::byte* out) noexcept {
        Unit& unit = at(id);
        std::lock_guard guard(unit.lock);
        unit.bytes.read(allocator_, out);
        return unit.bytes.size();
    }

    // ObjectOwners::relocate for owners at or above owner_base. Under a size-class lock.
    template <class Copy>
    bool relocate(OwnerId owner, ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
        Unit& unit = at(owner - owner_base_);
        std::lock_guard guard(unit.lock);
        return unit.bytes.relocate(from, to, copy);
    }

    [[nodiscard]] OwnerId owner_base() const noexcept { return owner_base_; }
    // Bytes of unit descriptors made so far, counted in mem_used_total (the pieces and their
    // arrays are charged as they are made).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        return made_blocks_.load(std::memory_order_relaxed) * block_bytes;
    }

private:
    struct Unit {
        SpinMutex lock{"grouped unit lock"};
        std::uint32_t generation = 0;
        std::uint32_t first = 0;
        members_mask members = 0;
        std::uint8_t live = 0;
        std::uint8_t codec = 0;
        LargeObject<Allocator> bytes;
    };
    static constexpr std::size_t units_per_block = 256;
    static constexpr std::size_t block_bytes = units_per_block * sizeof(Unit);

    Unit& at(std::uint32_t id) const noexcept {
        return blocks_[id / units_per_block].load(std::memory_order_acquire)[id % units_per_block];
    }

    Result<std::uint32_t> take_id() noexcept {
        std::lock_guard guard(ids_lock_);
        if (!free_ids_.empty()) {
            const std::uint32_t id = free_ids_.back();
            free_ids_.pop_back();
            return id;
        }
        const std::size_t block = next_id_ / units_per_block;
        if (block >= blocks_.size()) return errc::out_of_memory;
        if (next_id_ % units_per_block == 0) {
            if (!budget_.try_charge(block_bytes)) return errc::memory_limit;
            Unit* made = new (std::nothrow) Unit[units_per_block];
            if (made == nullptr) {
                budget_.uncharge(block_bytes);
                return errc::out_of_memory;
            }
            blocks_[block].store(made, std::memory_order_release);
            made_blocks_.fetch_add(1, std::memory_order_relaxed);
        }
        return next_id_++;
    }

    void give_id(std::uint32_t id) noexcept {
        std::lock_guard guard(ids_lock_);
        try {
            free_ids_.push_back(id);
        } catch (...) {
            // The id stays unused: a descriptor's bytes, nothing else.
        }
    }

    Allocator& allocator_;
    MemoryBudget& budget_;
    const OwnerId owner_base_;
    std::vector<std::atomic<Unit*>> blocks_;  // sized at construction, so that at() needs no lock
    std::atomic<std::size_t> made_blocks_{0};
    SpinMutex ids_lock_{"grouped unit ids"};
    std::vector<std::uint32_t> free_ids_;
    std::uint32_t next_id_ = 0;
};

}  // namespace zpage::detail
