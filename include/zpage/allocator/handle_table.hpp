// zpage: HandleTable, stable handles for using a PageAllocator on its own.
//
// A PageAllocator's objects live in words their owners keep (a store's page table). Code without
// such words of its own can take this table: each handle is a small integer naming one 8-byte
// word, which holds the object's location and a lock bit. Reads and compaction's moves both take
// the word's lock, so a handle stays valid while compaction moves its object underneath.
//
// The table is one reservation of address space populated as handles are first used, charged to
// the given budget; entries never move, so lookups need no lock beyond the word's own.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <span>

#include "../detail/assert.hpp"
#include "../detail/os.hpp"
#include "../detail/spin_mutex.hpp"
#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "concept.hpp"

namespace zpage {

enum class StableHandle : std::uint32_t { null = 0 };

template <PageAllocator Allocator>
class HandleTable {
public:
    // Throws std::bad_alloc when the address space cannot be reserved.
    HandleTable(Allocator& allocator, MemoryBudget& budget, std::size_t max_handles)
        : allocator_(allocator),
          budget_(budget),
          capacity_(std::min<std::size_t>(max_handles, std::size_t{1} << 31) + 1),
          reserved_bytes_(round_up_page(capacity_ * sizeof(Word))) {
        words_ = reinterpret_cast<Word*>(detail::os::reserve(reserved_bytes_));
        if (words_ == nullptr) throw std::bad_alloc();
    }
    ~HandleTable() {
        for (std::size_t i = 1; i <= high_water_; ++i) {
            const std::uint64_t word = words_[i].load(std::memory_order_relaxed);
            if ((word & free_bit) == 0) allocator_.deallocate(ObjectHandle{word});
        }
        budget_.uncharge(committed_bytes_);
        detail::os::release(reinterpret_cast<std::byte*>(words_), reserved_bytes_);
    }
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

    // Stores a copy of `bytes`; the allocator's errors, or errc::out_of_memory / memory_limit when
    // the table is full or cannot grow. Any thread.
    [[nodiscard]] Result<StableHandle> allocate(std::span<const std::byte> bytes) noexcept {
        const Result<std::uint32_t> index = take_index();
        if (!index) return index.error();
        const Result<ObjectHandle> object = allocator_.allocate(bytes, *index);
        if (!object) {
            put_index(*index);
            return object.error();
        }
        // Until this store the word is marked free, so compaction leaves the object alone.
        words_[*index].store(static_cast<std::uint64_t>(*object), std::memory_order_release);
        return StableHandle{*index};
    }

    // Frees a live handle. Any thread, not concurrently with a read of the same handle.
    void deallocate(StableHandle handle) noexcept {
        const auto index = static_cast<std::uint32_t>(handle);
        const std::uint64_t object = lock(index);
        words_[index].store(free_bit, std::memory_order_release);  // unlocks; compaction now skips it
        allocator_.deallocate(ObjectHandle{object});
        put_index(index);
    }

    // Calls f(bytes) with the object's bytes (its size-class size) and returns f's result. Any
    // thread; holds the handle's lock meanwhile, so f must not use this handle.
    template <class F>
    decltype(auto) read(StableHandle handle, F&& f) const {
        const auto index = static_cast<std::uint32_t>(handle);
        const std::uint64_t object = lock(index);
        Unlock unlock{words_[index], object};
        return allocator_.read(ObjectHandle{object}, std::forward<F>(f));
    }

    // Compacts the allocator, moving objects through this table. Any thread.
    CompactionResult compact() noexcept { return allocator_.compact(*this); }

    // ObjectOwners: called by the allocator's compaction.
    template <class Copy>
    bool relocate(OwnerId owner, ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
        if (owner == 0 || owner > high_water_seen()) return false;
        const std::uint64_t current = try_lock_live(owner);
        if (current == free_bit) return false;  // being allocated or freed
        if (current != static_cast<std::uint64_t>(from)) {
            words_[owner].store(current, std::memory_order_release);
            return false;
        }
        copy();
        words_[owner].store(static_cast<std::uint64_t>(to), std::memory_order_release);
        return true;
    }

    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        std::lock_guard guard(index_lock_);
        return committed_bytes_;
    }

private:
    using Word = std::atomic<std::uint64_t>;
    static constexpr std::uint64_t lock_bit = std::uint64_t{1} << 63;
    static constexpr std::uint64_t free_bit = std::uint64_t{1} << 62;  // low 32 bits: next free index

    struct Unlock {
        Word& word;
        std::uint64_t value;
        ~Unlock() { word.store(value, std::memory_order_release); }
    };

    static constexpr std::size_t round_up_page(std::size_t bytes) noexcept {
        return (bytes + detail::os::page_bytes - 1) / detail::os::page_bytes * detail::os::page_bytes;
    }

    // Spins until the live word at `index` is locked; returns its value without the lock bit.
    std::uint64_t lock(std::uint32_t index) const noexcept {
        detail::Backoff backoff("handle-table word lock");
        for (;;) {
            std::uint64_t word = words_[index].load(std::memory_order_relaxed);
            if ((word & lock_bit) == 0 &&
                words_[index].compare_exchange_weak(word, word | lock_bit, std::memory_order_acquire))
                return word;
            backoff.pause();
        }
    }

    // Locks the word if it holds an object; returns free_bit (unlocked) when it does not.
    std::uint64_t try_lock_live(std::uint32_t index) noexcept {
        detail::Backoff backoff("handle-table word lock");
        for (;;) {
            std::uint64_t word = words_[index].load(std::memory_order_acquire);
            if (word & free_bit) return free_bit;
            if ((word & lock_bit) == 0 &&
                words_[index].compare_exchange_weak(word, word | lock_bit, std::memory_order_acquire))
                return word;
            backoff.pause();
        }
    }

    std::size_t high_water_seen() const noexcept { return high_water_published_.load(std::memory_order_acquire); }

    Result<std::uint32_t> take_index() noexcept {
        std::lock_guard guard(index_lock_);
        if (free_head_ != 0) {
            const std::uint32_t index = free_head_;
            free_head_ = static_cast<std::uint32_t>(words_[index].load(std::memory_order_relaxed) & 0xFFFF'FFFF);
            words_[index].store(free_bit, std::memory_order_relaxed);
            return index;
        }
        if (high_water_ + 1 >= capacity_) return errc::out_of_memory;
        const std::size_t needed = round_up_page((high_water_ + 2) * sizeof(Word));
        if (needed > committed_bytes_) {
            // Batches grow with the table (1/8 of it, 1 to 16 pages).
            const std::size_t batch =
                std::clamp<std::size_t>(committed_bytes_ / 8, detail::os::page_bytes, 16 * detail::os::page_bytes);
            // Whole pages: madvise refuses a range that does not start on a page boundary.
            const std::size_t target = std::min(reserved_bytes_, round_up_page(std::max(needed, committed_bytes_ + batch)));
            const std::size_t grow = target - committed_bytes_;
            if (!budget_.try_charge(grow)) return errc::memory_limit;
            if (!detail::os::populate(reinterpret_cast<std::byte*>(words_) + committed_bytes_, grow)) {
                budget_.uncharge(grow);
                return errc::out_of_memory;
            }
            committed_bytes_ = target;
        }
        const auto index = static_cast<std::uint32_t>(++high_water_);
        words_[index].store(free_bit, std::memory_order_relaxed);
        high_water_published_.store(high_water_, std::memory_order_release);
        return index;
    }

    void put_index(std::uint32_t index) noexcept {
        std::lock_guard guard(index_lock_);
        words_[index].store(free_bit | free_head_, std::memory_order_release);
        free_head_ = index;
    }

    Allocator& allocator_;
    MemoryBudget& budget_;
    const std::size_t capacity_;  // entries, counting the unused entry 0
    const std::size_t reserved_bytes_;
    Word* words_ = nullptr;
    mutable detail::SpinMutex index_lock_{"handle-table index lock"};
    std::uint32_t free_head_ = 0;  // free entries are linked through their words
    std::size_t high_water_ = 0;   // highest index ever handed out
    std::atomic<std::size_t> high_water_published_{0};
    std::size_t committed_bytes_ = 0;
};

}  // namespace zpage
