// zpage: SizeClassAllocator, a zsmalloc-like allocator for compressed pages in user space.
//
// Objects go to the size class just above their size (size_classes.hpp) and are packed back to
// back in that class's spans. Each class keeps its non-full spans in fullness groups and
// allocates from the fullest, so sparse spans drain and empty spans go back to the page pool at
// once. compact() moves objects out of the emptiest spans into the fullest, then packs each
// class's last partial span down to its lowest slots, and gives back every page left without
// objects.
//
// Memory per object: the 4-byte owner entry of its slot (which owner compaction must ask to move
// it) and nothing else. zsmalloc spends 16 B: an in-object header and a handle slot, because the
// kernel's handle must survive migration without the allocator knowing its owner; here the owner
// keeps the location itself (concept.hpp). A span takes its pages one at a time from a PagePool
// (page_pool.hpp) as its bump pointer reaches them, so the partial span at the end of each class
// costs the pages it uses, not a whole span; the pool makes each page cost a few instructions
// rather than a fault.
//
// Concurrency: allocate, deallocate and compact take the lock of one size class; read() takes
// none (its caller holds the owner's lock, which compaction takes before moving an object).
// Lock order (the whole of it, with the store's, is at the top of store.hpp): no owner lock is
// held while taking a class lock; a class lock is held while taking an owner's lock (compaction)
// and the arena's or the pool's.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <stdexcept>

#include "../detail/assert.hpp"
#include "../detail/os.hpp"
#include "../detail/signal_context.hpp"
#include "../detail/spin_mutex.hpp"
#include "concept.hpp"
#include "size_classes.hpp"
#include "span.hpp"

namespace zpage {

// What an ObjectHandle of SizeClassAllocator encodes: span id, slot in the span and size class,
// so that an object's address follows from its handle alone.
struct ObjectLocation {
    std::uint32_t span;
    std::uint32_t slot;
    std::uint32_t size_class;

    static constexpr unsigned slot_shift = 32;
    static constexpr unsigned class_shift = 48;
    static constexpr std::uint64_t slot_mask = 0xFFFF;
    static constexpr std::uint64_t class_mask = 0xFFF;
    static constexpr std::uint64_t valid_bit = std::uint64_t{1} << 60;  // keeps every handle non-zero

    [[nodiscard]] constexpr ObjectHandle handle() const noexcept {
        return ObjectHandle{std::uint64_t{span} | (std::uint64_t{slot} << slot_shift) |
                            (std::uint64_t{size_class} << class_shift) | valid_bit};
    }
    [[nodiscard]] static constexpr ObjectLocation of(ObjectHandle h) noexcept {
        const auto word = static_cast<std::uint64_t>(h);
        return {static_cast<std::uint32_t>(word), static_cast<std::uint32_t>((word >> slot_shift) & slot_mask),
                static_cast<std::uint32_t>((word >> class_shift) & class_mask)};
    }
};

template <std::size_t MaxObjectBytes = 4096>
class SizeClassAllocator {
public:
    using size_classes = SizeClassTable<MaxObjectBytes>;
    static constexpr std::size_t max_object_bytes = MaxObjectBytes;
    // Non-full spans are kept in this many groups by occupancy; allocation takes the fullest.
    static constexpr std::size_t fullness_groups = 8;
    static constexpr std::uint32_t initial_owner_slots = 16;

    static_assert(size_classes::max_objects_per_span <= ObjectLocation::slot_mask + 1,
                  "zpage::SizeClassAllocator: a span holds more objects than a handle can address");
    static_assert(size_classes::class_count <= ObjectLocation::class_mask + 1,
                  "zpage::SizeClassAllocator: more size classes than a handle can name");

    // Throws std::invalid_argument for a bad config, std::runtime_error on a kernel whose base
    // page is not 4 KiB.
    explicit SizeClassAllocator(const AllocatorConfig& config = {})
        : own_budget_(checked(config).budget == nullptr ? std::make_unique<MemoryBudget>() : nullptr),
          budget_(config.budget != nullptr ? *config.budget : *own_budget_),
          pool_(config.pool != nullptr ? *config.pool : PagePool::shared()),
          arena_(budget_),
          classes_(std::make_unique<ClassState[]>(size_classes::serving_class_count)) {
        budget_.charge(class_state_bytes);
    }

    ~SizeClassAllocator() {
        std::size_t held = class_state_bytes;
        for (std::size_t n = 0; n < size_classes::serving_class_count; ++n) {
            held += classes_[n].populated_pages.load(std::memory_order_relaxed) * detail::os::page_bytes +
                    classes_[n].owner_bytes.load(std::memory_order_relaxed);
        }
        give_back_all_pages();
        arena_.for_each_span([](descriptor_type& d) { std::free(d.owners); });
        budget_.uncharge(held);
    }

    SizeClassAllocator(const SizeClassAllocator&) = delete;
    SizeClassAllocator& operator=(const SizeClassAllocator&) = delete;

    // Copies `bytes` (1 .. max_object_bytes) into a new object owned by `owner` (<= max_owner_id).
    // errc::invalid_argument for a size out of range, errc::memory_limit when the budget refuses
    // the memory, errc::out_of_memory when the OS does; nothing is allocated then. Any thread.
    [[nodiscard]] Result<ObjectHandle> allocate(std::span<const std::byte> bytes, OwnerId owner) noexcept {
        if (bytes.empty() || bytes.size() > max_object_bytes) return errc::invalid_argument;
        ZPAGE_ASSERT(owner <= max_owner_id);
        const auto cls = static_cast<std::uint32_t>(size_classes::class_of(bytes.size()));
        ClassState& state = state_of(cls);
        std::lock_guard guard(state.lock);
        const Result<std::uint32_t> span = span_with_room(cls);
        if (!span) return span.error();
        descriptor_type& d = arena_.descriptor(*span);
        const Result<std::uint32_t> slot = take_slot(cls, d);
        if (!slot) {
            if (d.live == 0) release_span(cls, *span, d);
            return slot.error();
        }
        const ObjectLocation where{*span, *slot, cls};
        copy_in(where, bytes.data(), bytes.size());
        d.owners[*slot] = owner;
        ++d.live;
        regroup(cls, *span, d);
        add(state.objects, 1);
        return where.handle();
    }

    // Frees a live object. Any thread, but not under the object's owner lock (compaction may be
    // waiting for it while holding this class's lock).
    void deallocate(ObjectHandle handle) noexcept {
        const ObjectLocation where = ObjectLocation::of(handle);
        ClassState& state = state_of(where.size_class);
        std::lock_guard guard(state.lock);
        descriptor_type& d = arena_.descriptor(where.span);
        ZPAGE_ASSERT(d.owners != nullptr && where.slot < d.bump && !(d.owners[where.slot] & free_owner));
        push_free_slot(d, where.slot);
        --d.live;
        add(state.objects, -1);
        if (d.live == 0) {
            release_span(where.size_class, where.span, d);
        } else {
            regroup(where.size_class, where.span, d);
        }
    }

    // Calls f(bytes) with the object's bytes (its size-class size) and returns f's result. An
    // object that crosses a page boundary is first gathered into a per-thread buffer, so f must
    // not call read() itself. Any thread, under the owner's lock (so that compaction cannot move
    // the object meanwhile).
    template <class F>
    decltype(auto) read(ObjectHandle handle, F&& f) const {
        const ObjectLocation where = ObjectLocation::of(handle);
        const std::size_t bytes = size_classes::classes[where.size_class].object_bytes;
        const std::size_t offset = std::size_t{where.slot} * bytes;
        const std::size_t in_page = offset % detail::os::page_bytes;
        if (in_page + bytes <= detail::os::page_bytes) {
            const std::byte* page = pool_.address(arena_.descriptor(where.span).pages[offset / detail::os::page_bytes]);
            return std::forward<F>(f)(std::span<const std::byte>(page + in_page, bytes));
        }
        const GatherBuffer gathered;
        copy_out(where, gathered.data(), bytes);
        return std::forward<F>(f)(std::span<const std::byte>(gathered.data(), bytes));
    }

    // Bytes the object occupies (its size class).
    [[nodiscard]] static constexpr std::size_t usable_size(ObjectHandle handle) noexcept {
        return size_classes::classes[ObjectLocation::of(handle).size_class].object_bytes;
    }

    // Moves objects, through `owners`, out of each class's emptiest spans into its fullest, packs
    // the remaining partial span of each class and gives every freed page back to the OS.
    // Blocks allocation in one class at a time. Any thread, holding no owner lock.
    template <ObjectOwners Owners>
    CompactionResult compact(Owners& owners) noexcept {
        CompactionResult total;
        for (const std::uint32_t cls : size_classes::serving_classes) {
            const CompactionResult r = compact_class(cls, owners);
            total.pages_freed += r.pages_freed;
            total.objects_moved += r.objects_moved;
            total.bytes_moved += r.objects_moved * size_classes::classes[cls].object_bytes;
        }
        pages_compacted_.fetch_add(total.pages_freed, std::memory_order_relaxed);
        return total;
    }

    [[nodiscard]] AllocatorStats stats() const noexcept {
        AllocatorStats s;
        s.metadata_bytes = class_state_bytes + arena_.descriptor_bytes();
        for (const std::size_t cls : size_classes::serving_classes) {
            const ClassState& state = state_of(cls);
            const std::size_t objects = state.objects.load(std::memory_order_relaxed);
            s.objects += objects;
            s.object_bytes += objects * size_classes::classes[cls].object_bytes;
            s.spans += state.spans.load(std::memory_order_relaxed);
            s.span_bytes += state.populated_pages.load(std::memory_order_relaxed) * detail::os::page_bytes;
            s.metadata_bytes += state.owner_bytes.load(std::memory_order_relaxed);
        }
        s.pages_compacted = pages_compacted_.load(std::memory_order_relaxed);
        return s;
    }

    [[nodiscard]] MemoryBudget& budget() const noexcept { return budget_; }
    [[nodiscard]] PagePool& pool() const noexcept { return pool_; }

private:
    using arena_type = SpanArena<size_classes::max_pages_per_span>;
    using descriptor_type = typename arena_type::descriptor_type;
    static constexpr std::uint32_t nil = descriptor_type::nil;
    static constexpr std::uint32_t no_slot = descriptor_type::slot_mask;
    static constexpr std::uint32_t free_owner = descriptor_type::free_owner;

    struct alignas(64) ClassState {
        detail::SpinMutex lock{"size-class lock"};
        std::array<std::uint32_t, fullness_groups> heads = no_heads();  // fullness lists of non-full spans
        // 32-bit counters keep the state in one cache line: 4 G objects, spans, pages (16 TiB)
        // and owner-map bytes per class.
        std::atomic<std::uint32_t> objects{0};
        std::atomic<std::uint32_t> spans{0};
        std::atomic<std::uint32_t> populated_pages{0};
        std::atomic<std::uint32_t> owner_bytes{0};

        static constexpr std::array<std::uint32_t, fullness_groups> no_heads() noexcept {
            std::array<std::uint32_t, fullness_groups> h{};
            h.fill(nil);
            return h;
        }
    };
    static_assert(sizeof(ClassState) == 64, "zpage::SizeClassAllocator: a class's state should fill one cache line");
    static constexpr std::size_t class_state_bytes = sizeof(ClassState) * size_classes::serving_class_count;

    [[nodiscard]] ClassState& state_of(std::size_t cls) const noexcept {
        return classes_[size_classes::serving_position[cls]];
    }

    static const AllocatorConfig& checked(const AllocatorConfig& config) {
        if (!detail::os::page_size_supported())
            throw std::runtime_error("zpage::SizeClassAllocator: needs a kernel with 4 KiB base pages");
        return config;
    }

    // Class counters are written under their class lock only: a plain load/store pair, no locked
    // instruction; atomics only so that stats() may read them at any time.
    template <class T>
    static void add(std::atomic<T>& counter, std::ptrdiff_t delta) noexcept {
        counter.store(static_cast<T>(counter.load(std::memory_order_relaxed) + static_cast<T>(delta)),
                      std::memory_order_relaxed);
    }

    static constexpr std::size_t pages_for(std::size_t bytes) noexcept {
        return (bytes + detail::os::page_bytes - 1) / detail::os::page_bytes;
    }

    // glibc's footprint of a malloc'd block: its usable size plus the chunk header.
    static std::size_t heap_footprint(void* block) noexcept { return malloc_usable_size(block) + sizeof(std::size_t); }

    // ---- object bytes: pieces in the span's pages ----

    // Calls piece(address, offset in the object, length) for each page-sized piece of the first
    // `bytes` bytes of the object at `where`.
    template <class Piece>
    void for_each_piece(const ObjectLocation& where, std::size_t bytes, Piece&& piece) const noexcept {
        const descriptor_type& d = arena_.descriptor(where.span);
        std::size_t offset = std::size_t{where.slot} * size_classes::classes[where.size_class].object_bytes;
        for (std::size_t done = 0; done < bytes;) {
            const std::size_t in_page = offset % detail::os::page_bytes;
            const std::size_t length = std::min(bytes - done, detail::os::page_bytes - in_page);
            piece(pool_.address(d.pages[offset / detail::os::page_bytes]) + in_page, done, length);
            offset += length;
            done += length;
        }
    }

    void copy_in(const ObjectLocation& where, const std::byte* from, std::size_t bytes) const noexcept {
        for_each_piece(where, bytes, [&](std::byte* at, std::size_t done, std::size_t length) {
            std::memcpy(at, from + done, length);
        });
    }

    void copy_out(const ObjectLocation& where, std::byte* to, std::size_t bytes) const noexcept {
        for_each_piece(where, bytes, [&](const std::byte* at, std::size_t done, std::size_t length) {
            std::memcpy(to + done, at, length);
        });
    }

    // Where read() gathers an object that crosses pages and compaction stages one it moves: one
    // buffer of max_object_bytes per thread, from the heap at the thread's first use, freed when
    // it exits. Not a thread_local array: every thread of the program would carry that in static
    // TLS, cleared as it starts, for each page size instantiated (252 KiB a thread for the six
    // sizes 4-128 KiB), and threads created with small stacks would be refused. When the heap
    // refuses, or in a compressed region's fault served in a signal handler (where nothing may be
    // allocated), a static buffer per page size is shared under a lock; it is the last lock taken
    // (after an entry, class or codec stream), and nothing is taken while it is held.
    class GatherBuffer {
    public:
        GatherBuffer() noexcept {
            // `made` mirrors `own` without a destructor: reading it registers nothing, where the
            // first use of `own` would register its destructor (which allocates).
            thread_local std::byte* made = nullptr;
            if (made == nullptr && !detail::in_fault_signal) {
                thread_local std::unique_ptr<std::byte[]> own;
                if (own == nullptr) own.reset(new (std::nothrow) std::byte[max_object_bytes]);
                made = own.get();
            }
            if (made != nullptr) {
                data_ = made;
                return;
            }
            lock_ = std::unique_lock(fallback_lock());
            data_ = fallback_bytes().data();
        }
        [[nodiscard]] std::byte* data() const noexcept { return data_; }

    private:
        static std::mutex& fallback_lock() noexcept {
            static std::mutex lock;
            return lock;
        }
        static std::array<std::byte, max_object_bytes>& fallback_bytes() noexcept {
            static std::array<std::byte, max_object_bytes> bytes;
            return bytes;
        }

        std::byte* data_ = nullptr;
        std::unique_lock<std::mutex> lock_;
    };

    // ---- fullness lists (class lock held) ----

    void link(ClassState& state, std::uint32_t id, descriptor_type& d, std::uint8_t group) noexcept {
        d.group = group;
        d.linked = true;
        d.prev = nil;
        d.next = state.heads[group];
        if (d.next != nil) arena_.descriptor(d.next).prev = id;
        state.heads[group] = id;
    }

    void unlink(ClassState& state, descriptor_type& d) noexcept {
        if (!d.linked) return;
        if (d.prev != nil) {
            arena_.descriptor(d.prev).next = d.next;
        } else {
            state.heads[d.group] = d.next;
        }
        if (d.next != nil) arena_.descriptor(d.next).prev = d.prev;
        d.linked = false;
    }

    // Puts a span in the list its occupancy calls for; full spans leave the lists.
    void regroup(std::uint32_t cls, std::uint32_t id, descriptor_type& d) noexcept {
        ClassState& state = state_of(cls);
        const std::uint32_t capacity = size_classes::classes[cls].objects_per_span;
        if (d.live == capacity) {
            unlink(state, d);
            return;
        }
        const auto group = static_cast<std::uint8_t>(std::size_t{d.live} * fullness_groups / capacity);
        if (d.linked && d.group == group) return;
        unlink(state, d);
        link(state, id, d, group);
    }

    // ---- spans and slots (class lock held) ----

    Result<std::uint32_t> span_with_room(std::uint32_t cls) noexcept {
        ClassState& state = state_of(cls);
        for (std::size_t g = fullness_groups; g-- > 0;) {
            if (state.heads[g] != nil) return state.heads[g];
        }
        const Result<std::uint32_t> id = arena_.acquire();
        if (!id) return id.error();
        const std::uint32_t owners_capacity = std::min(size_classes::classes[cls].objects_per_span, initial_owner_slots);
        auto* owners = static_cast<std::uint32_t*>(std::malloc(owners_capacity * sizeof(std::uint32_t)));
        if (owners == nullptr) {
            arena_.release(*id);
            return errc::out_of_memory;
        }
        const std::size_t footprint = heap_footprint(owners);
        if (!budget_.try_charge(footprint)) {
            std::free(owners);
            arena_.release(*id);
            return errc::memory_limit;
        }
        descriptor_type& d = arena_.descriptor(*id);
        d.owners = owners;
        d.owners_capacity = owners_capacity;
        d.size_class = static_cast<std::uint16_t>(cls);
        d.free_head = no_slot;
        link(state, *id, d, 0);
        add(state.spans, 1);
        add(state.owner_bytes, static_cast<std::ptrdiff_t>(footprint));
        return *id;
    }

    // A free slot of a non-full span: a hole below the bump pointer if there is one, else the
    // next never-used slot, populating pages for it as needed.
    Result<std::uint32_t> take_slot(std::uint32_t cls, descriptor_type& d) noexcept {
        if (d.free_head != no_slot) {
            const std::uint32_t slot = d.free_head;
            d.free_head = d.owners[slot] & descriptor_type::slot_mask;
            return slot;
        }
        const SizeClass& sc = size_classes::classes[cls];
        ZPAGE_ASSERT(d.bump < sc.objects_per_span);
        const std::uint32_t slot = d.bump;
        const std::size_t needed = pages_for((std::size_t{slot} + 1) * sc.object_bytes);
        if (needed > d.populated_pages) {
            if (const Status grown = populate(cls, d, needed); !grown) return grown.error();
        }
        if (slot == d.owners_capacity) {
            if (const Status grown = grow_owners(cls, d); !grown) return grown.error();
        }
        ++d.bump;
        return slot;
    }

    // Doubles a span's owner map (up to objects_per_span entries), charging the difference.
    Status grow_owners(std::uint32_t cls, descriptor_type& d) noexcept {
        ClassState& state = state_of(cls);
        const std::uint32_t old_capacity = d.owners_capacity;
        const std::uint32_t capacity =
            std::min(size_classes::classes[cls].objects_per_span, std::max(initial_owner_slots, 2 * old_capacity));
        const std::size_t old_footprint = heap_footprint(d.owners);
        auto* grown = static_cast<std::uint32_t*>(std::realloc(d.owners, capacity * sizeof(std::uint32_t)));
        if (grown == nullptr) return errc::out_of_memory;
        d.owners = grown;
        const std::size_t new_footprint = heap_footprint(grown);
        if (new_footprint <= old_footprint || budget_.try_charge(new_footprint - old_footprint)) {
            if (new_footprint < old_footprint) budget_.uncharge(old_footprint - new_footprint);
            add(state.owner_bytes, static_cast<std::ptrdiff_t>(new_footprint) - static_cast<std::ptrdiff_t>(old_footprint));
            d.owners_capacity = capacity;
            return errc::ok;
        }
        // Over the limit: give the room back (glibc shrinks in place) and refuse the slot, keeping
        // the books exact whatever the heap did.
        if (auto* back = static_cast<std::uint32_t*>(std::realloc(grown, old_capacity * sizeof(std::uint32_t))))
            d.owners = back;
        const std::size_t after = heap_footprint(d.owners);
        if (after > old_footprint) {
            budget_.charge(after - old_footprint);
        } else {
            budget_.uncharge(old_footprint - after);
        }
        add(state.owner_bytes, static_cast<std::ptrdiff_t>(after) - static_cast<std::ptrdiff_t>(old_footprint));
        return errc::memory_limit;
    }

    static void push_free_slot(descriptor_type& d, std::uint32_t slot) noexcept {
        d.owners[slot] = free_owner | d.free_head;
        d.free_head = slot;
    }

    // Takes the span's pages up to `needed` from the pool.
    Status populate(std::uint32_t cls, descriptor_type& d, std::size_t needed) noexcept {
        const std::size_t grow = needed - d.populated_pages;
        if (!budget_.try_charge(grow * detail::os::page_bytes)) return errc::memory_limit;
        if (const Status taken = pool_.take(std::span(d.pages).subspan(d.populated_pages, grow)); !taken) {
            budget_.uncharge(grow * detail::os::page_bytes);
            return taken;
        }
        d.populated_pages = static_cast<std::uint32_t>(needed);
        add(state_of(cls).populated_pages, static_cast<std::ptrdiff_t>(grow));
        return errc::ok;
    }

    // Gives the span's pages from `keep_pages` up back to the pool.
    void depopulate(std::uint32_t cls, descriptor_type& d, std::size_t keep_pages) noexcept {
        if (keep_pages >= d.populated_pages) return;
        const std::size_t drop = d.populated_pages - keep_pages;
        pool_.give(std::span(d.pages).subspan(keep_pages, drop));
        d.populated_pages = static_cast<std::uint32_t>(keep_pages);
        budget_.uncharge(drop * detail::os::page_bytes);
        add(state_of(cls).populated_pages, -static_cast<std::ptrdiff_t>(drop));
    }

    // An empty span gives its pages back and its id to the arena.
    void release_span(std::uint32_t cls, std::uint32_t id, descriptor_type& d) noexcept {
        ZPAGE_ASSERT(d.live == 0);
        ClassState& state = state_of(cls);
        depopulate(cls, d, 0);
        unlink(state, d);
        const std::size_t footprint = heap_footprint(d.owners);
        std::free(d.owners);
        d.owners = nullptr;
        d.owners_capacity = 0;
        budget_.uncharge(footprint);
        add(state.owner_bytes, -static_cast<std::ptrdiff_t>(footprint));
        add(state.spans, -1);
        arena_.release(id);
    }

    // At destruction: every page back to the pool in one call (in one call per span when there is
    // no memory for the list), so that chunks left empty go back to the OS whole.
    void give_back_all_pages() noexcept {
        try {
            std::vector<PageNumber> pages;
            arena_.for_each_span([&](descriptor_type& d) {
                pages.insert(pages.end(), d.pages.begin(), d.pages.begin() + d.populated_pages);
            });
            pool_.give(pages);
        } catch (const std::bad_alloc&) {
            arena_.for_each_span([&](descriptor_type& d) { pool_.give(std::span(d.pages).first(d.populated_pages)); });
        }
    }

    // ---- compaction (class lock held) ----

    // Asks the owner of (from, from_slot) to let the object move to (to, to_slot), a slot already
    // taken; on success the bookkeeping follows the object. The old slot is left to the caller.
    template <class Owners>
    bool relocate(Owners& owners, std::uint32_t cls, std::uint32_t from, descriptor_type& fd, std::uint32_t from_slot,
                  std::uint32_t to, descriptor_type& td, std::uint32_t to_slot) noexcept {
        const OwnerId owner = fd.owners[from_slot];
        const ObjectLocation old_place{from, from_slot, cls};
        const ObjectLocation new_place{to, to_slot, cls};
        const bool moved = owners.relocate(owner, old_place.handle(), new_place.handle(), [&] {
            const std::size_t bytes = size_classes::classes[cls].object_bytes;
            const GatherBuffer staged;
            copy_out(old_place, staged.data(), bytes);
            copy_in(new_place, staged.data(), bytes);
        });
        if (!moved) return false;
        td.owners[to_slot] = owner;
        ++td.live;
        --fd.live;
        return true;
    }

    template <class Owners>
    CompactionResult compact_class(std::uint32_t cls, Owners& owners) noexcept {
        ClassState& state = state_of(cls);
        const SizeClass& sc = size_classes::classes[cls];
        CompactionResult result;
        std::lock_guard guard(state.lock);
        const std::size_t populated_before = state.populated_pages.load(std::memory_order_relaxed);
        try {
            boost::container::small_vector<std::uint32_t, 64> partial;
            for (std::uint32_t head : state.heads)
                for (std::uint32_t id = head; id != nil; id = arena_.descriptor(id).next) partial.push_back(id);
            std::sort(partial.begin(), partial.end(), [&](std::uint32_t a, std::uint32_t b) {
                return arena_.descriptor(a).live < arena_.descriptor(b).live;
            });

            // Drain the emptiest spans into the fullest: as many sources as the live objects leave
            // spare, so that every drained span empties and no object moves for nothing.
            std::size_t live = 0;
            for (std::uint32_t id : partial) live += arena_.descriptor(id).live;
            const std::size_t sources = partial.size() - (live + sc.objects_per_span - 1) / sc.objects_per_span;
            std::size_t dest = partial.size();  // destinations, from the fullest down
            bool stalled = false;               // a destination page could not be populated
            for (std::size_t i = 0; i < sources && !stalled; ++i) {
                const std::uint32_t from = partial[i];
                descriptor_type& fd = arena_.descriptor(from);
                for (std::uint32_t slot = 0; slot < fd.bump && fd.live > 0; ++slot) {
                    if (fd.owners[slot] & free_owner) continue;
                    while (dest > sources && arena_.descriptor(partial[dest - 1]).live == sc.objects_per_span) --dest;
                    if (dest == sources) break;
                    const std::uint32_t to = partial[dest - 1];
                    descriptor_type& td = arena_.descriptor(to);
                    const Result<std::uint32_t> to_slot = take_slot(cls, td);
                    if (!to_slot) {
                        stalled = true;
                        break;
                    }
                    if (!relocate(owners, cls, from, fd, slot, to, td, *to_slot)) {
                        push_free_slot(td, *to_slot);  // the owner is replacing this page: it stays
                        break;
                    }
                    push_free_slot(fd, slot);
                    ++result.objects_moved;
                }
                if (fd.live == 0) {
                    release_span(cls, from, fd);
                } else {
                    regroup(cls, from, fd);
                }
            }

            // Pack what remains partial into its lowest slots, so the pages above can go.
            for (std::size_t i = sources; i < partial.size(); ++i) {
                const std::uint32_t id = partial[i];
                descriptor_type& d = arena_.descriptor(id);
                if (d.live != sc.objects_per_span) result.objects_moved += pack(owners, cls, id, d);
                regroup(cls, id, d);
            }
        } catch (const std::bad_alloc&) {
            // No room for the work list: this class stays as it is.
        }
        // Net of the pages destinations had to populate to take the moved objects.
        const std::size_t populated_after = state.populated_pages.load(std::memory_order_relaxed);
        result.pages_freed = populated_before > populated_after ? populated_before - populated_after : 0;
        return result;
    }

    // Moves the objects at or above slot `live` into the holes below it, then gives back the pages
    // above the last object. Stops at the first object its owner will not let go. Returns the
    // objects moved.
    template <class Owners>
    std::size_t pack(Owners& owners, std::uint32_t cls, std::uint32_t id, descriptor_type& d) noexcept {
        const SizeClass& sc = size_classes::classes[cls];
        if (pages_for(std::size_t{d.live} * sc.object_bytes) >= d.populated_pages) return 0;
        std::size_t moved = 0;
        std::uint32_t hole = 0;
        std::uint32_t top = d.bump;  // slots >= top are free once the loop is done with them
        while (top > d.live) {
            const std::uint32_t slot = top - 1;
            if (!(d.owners[slot] & free_owner)) {
                while (!(d.owners[hole] & free_owner)) ++hole;
                if (!relocate(owners, cls, id, d, slot, id, d, hole)) break;
                ++moved;
            }
            --top;
        }
        // Rebuild the free list from what is below the new top.
        d.bump = top;
        d.free_head = no_slot;
        for (std::uint32_t slot = top; slot-- > 0;)
            if (d.owners[slot] & free_owner) push_free_slot(d, slot);
        depopulate(cls, d, pages_for(std::size_t{top} * sc.object_bytes));
        return moved;
    }

    std::unique_ptr<MemoryBudget> own_budget_;
    MemoryBudget& budget_;
    PagePool& pool_;
    arena_type arena_;
    std::unique_ptr<ClassState[]> classes_;
    std::atomic<std::size_t> pages_compacted_{0};
};

static_assert(PageAllocator<SizeClassAllocator<>>);

}  // namespace zpage
