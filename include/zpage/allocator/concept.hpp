// zpage: the PageAllocator policy: stores variable-size objects (compressed pages) of up to a page
// for owners (page-table entries, cache keys) that keep each object's handle in a word of their own.
//
// There is no handle table: a handle is the object's location, and the owner's word is the one
// place it lives. compact() moves an object only through its owner (ObjectOwners::relocate), which
// under the owner's own lock checks that the word still names the object, lets the allocator copy
// it and rewrites the word. So a handle held in its owner's word stays valid across compaction,
// a read costs no indirection, and everyone who reads an object under its owner's lock is safe
// from concurrent moves.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "page_pool.hpp"

namespace zpage {

// The location of one stored object; never 0.
enum class ObjectHandle : std::uint64_t { null = 0 };

// Identifies an object's owner to ObjectOwners::relocate: a page index, a handle-table index.
// Below max_owner_id: the allocator keeps a flag beside it.
using OwnerId = std::uint32_t;
inline constexpr OwnerId max_owner_id = 0x7FFF'FFFF;

struct AllocatorConfig {
    // Account that committed memory is charged to, and whose limit allocation respects. nullptr:
    // the allocator keeps an unlimited account of its own.
    MemoryBudget* budget = nullptr;
    // Where the allocator's pages come from (page_pool.hpp); nullptr: PagePool::shared(), the
    // process's pool.
    PagePool* pool = nullptr;
};

// A plain snapshot; figures from different moments of a busy allocator may be slightly apart.
struct AllocatorStats {
    std::size_t objects = 0;          // live objects
    std::size_t object_bytes = 0;     // their size-class sizes, summed
    std::size_t spans = 0;            // spans holding at least one object
    std::size_t span_bytes = 0;       // pages the spans hold (taken from the page pool)
    std::size_t metadata_bytes = 0;   // span descriptors, per-slot owner maps, size-class states
    std::size_t pages_compacted = 0;  // pages given back by compact() since construction

    [[nodiscard]] std::size_t total_bytes() const noexcept { return span_bytes + metadata_bytes; }
};

struct CompactionResult {
    std::size_t pages_freed = 0;    // net of pages taken to receive moved objects
    std::size_t objects_moved = 0;
    std::size_t bytes_moved = 0;    // size-class bytes copied
};

// The owners compact() moves objects through. relocate(owner, from, to, copy) must, under the
// owner's lock: return false if the owner's word no longer holds `from` (it is being replaced or
// freed); else call copy() (which copies the object's bytes to `to`), make the word hold `to`,
// and return true. It is called with the allocator's size-class lock held, so it must not call
// into the allocator, and owners must never take the class lock (allocate, deallocate) while
// holding their own lock.
template <class O>
concept ObjectOwners = requires(O& owners, OwnerId owner, ObjectHandle from, ObjectHandle to) {
    { owners.relocate(owner, from, to, [] {}) } -> std::same_as<bool>;
};

namespace detail {
// Stands for any ObjectOwners where a concept needs one.
struct OwnersArchetype {
    template <class Copy>
    bool relocate(OwnerId, ObjectHandle, ObjectHandle, Copy&&) { return false; }
};
}  // namespace detail

template <class A>
concept PageAllocator =
    std::constructible_from<A, const AllocatorConfig&> &&
    requires(A& a, const A& ca, std::span<const std::byte> bytes, OwnerId owner, ObjectHandle h) {
        // Largest object allocate() accepts.
        { A::max_object_bytes } -> std::convertible_to<std::size_t>;
        // Copies `bytes` into a new object owned by `owner`; errc::memory_limit, out_of_memory or
        // invalid_argument on failure, with nothing allocated. Any thread.
        { a.allocate(bytes, owner) } noexcept -> std::same_as<Result<ObjectHandle>>;
        // Frees a live object. Any thread, not under the owner's lock.
        { a.deallocate(h) } noexcept;
        // Calls f with the object's bytes (its size-class size: at least what was allocated) and
        // returns what f returns. Any thread, under the owner's lock.
        { ca.read(h, [](std::span<const std::byte>) noexcept { return 0; }) } -> std::same_as<int>;
        // Moves objects out of sparse spans through their owners and gives freed pages back.
        // Any thread; objects whose owner declines stay where they are.
        { a.compact(std::declval<detail::OwnersArchetype&>()) } noexcept -> std::same_as<CompactionResult>;
        { ca.stats() } noexcept -> std::same_as<AllocatorStats>;
    };

}  // namespace zpage
