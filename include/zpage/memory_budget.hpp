// zpage: MemoryBudget, the account every byte a store holds is charged to.
//
// The allocator charges span pages and its metadata as it commits them, the store charges its
// page table; a store's mem_used_total, mem_used_max and mem_limit are its own account's figures.
// Accounts nest: a store's account may sit inside a budget shared with other stores (shards of
// one cache, say), and every charge then counts in both and must fit both limits, like a cgroup
// inside its parent. So each shard's figures are its own, they add up to the shared budget's
// use, and one shard's own limit never changes another's.
//
// An account may keep a reserve under its limit for reclaim, as the kernel keeps the pages below
// its min watermark for tasks that free memory (PF_MEMALLOC): ordinary charges stop short of it,
// charges made inside a ReclaimScope may use it. Recompression makes a page's new object before
// it frees the old one, so a store that holds its limit by recompressing needs that room when
// its stores have filled everything else.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <utility>

namespace zpage {

class MemoryBudget {
public:
    MemoryBudget() = default;
    explicit MemoryBudget(std::size_t limit_bytes) noexcept : limit_(limit_bytes) {}
    // An account inside `parent` (nullptr: none), which must outlive it: what is charged here is
    // charged there too.
    explicit MemoryBudget(MemoryBudget* parent, std::size_t limit_bytes = 0) noexcept
        : parent_(parent), limit_(limit_bytes) {}
    MemoryBudget(const MemoryBudget&) = delete;
    MemoryBudget& operator=(const MemoryBudget&) = delete;

    // Charges `bytes` here and in every enclosing budget unless that would take any of them over
    // its limit; returns false, charging nothing, when it would. Any thread.
    [[nodiscard]] bool try_charge(std::size_t bytes) noexcept {
        std::size_t used = used_.load(std::memory_order_relaxed);
        for (;;) {
            const std::size_t limit = usable_limit();
            if (limit != 0 && (bytes > limit || used > limit - bytes)) return false;
            if (used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed)) break;
        }
        if (parent_ != nullptr && !parent_->try_charge(bytes)) {
            used_.fetch_sub(bytes, std::memory_order_relaxed);
            return false;
        }
        note_peak(used + bytes);  // only once every level took the charge
        return true;
    }

    // Charges `bytes` here and in every enclosing budget whatever the limits (structures sized at
    // construction). Any thread.
    void charge(std::size_t bytes) noexcept {
        if (parent_ != nullptr) parent_->charge(bytes);
        note_peak(used_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    }

    void uncharge(std::size_t bytes) noexcept {
        used_.fetch_sub(bytes, std::memory_order_relaxed);
        if (parent_ != nullptr) parent_->uncharge(bytes);
    }

    // Bytes charged to this account (through it, for a parent: all its children's and its own).
    [[nodiscard]] std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t max_used() const noexcept { return max_used_.load(std::memory_order_relaxed); }
    // This account's own limit; an enclosing budget's limit applies as well.
    [[nodiscard]] std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
    [[nodiscard]] MemoryBudget* parent() const noexcept { return parent_; }

    // True when this account and every enclosing one use less than `permille` of their limits
    // (an account without a limit always does): room to spare for what could be given back.
    [[nodiscard]] bool below_permille(unsigned permille) const noexcept {
        const std::size_t cap = limit();
        if (cap != 0 && used() >= cap / 1000 * permille) return false;
        return parent_ == nullptr || parent_->below_permille(permille);
    }

    // 0 means no limit (zram's mem_limit convention). Lowering the limit below what is in use
    // frees nothing; it refuses further charges until usage drops. Any thread.
    void set_limit(std::size_t bytes) noexcept { limit_.store(bytes, std::memory_order_relaxed); }

    // Keeps `permille` of the limit for charges made inside a ReclaimScope (0: no reserve). Any thread.
    void set_reclaim_reserve_permille(unsigned permille) noexcept {
        reserve_permille_.store(permille, std::memory_order_relaxed);
    }

    // While one lives, the calling thread's charges may use every account's reclaim reserve.
    class ReclaimScope {
    public:
        ReclaimScope() noexcept : outer_(std::exchange(reclaiming(), true)) {}
        ~ReclaimScope() { reclaiming() = outer_; }
        ReclaimScope(const ReclaimScope&) = delete;
        ReclaimScope& operator=(const ReclaimScope&) = delete;

    private:
        bool outer_;
    };

    // Restarts the peak from the current usage (zram: writing to mem_used_max).
    void reset_max_used() noexcept { max_used_.store(used(), std::memory_order_relaxed); }

private:
    static bool& reclaiming() noexcept {
        thread_local bool inside = false;
        return inside;
    }

    // The limit a charge of the calling thread may reach: all of it while reclaiming.
    std::size_t usable_limit() const noexcept {
        const std::size_t limit = limit_.load(std::memory_order_relaxed);
        const unsigned permille = reserve_permille_.load(std::memory_order_relaxed);
        if (limit == 0 || permille == 0 || reclaiming()) return limit;
        return std::max<std::size_t>(limit - (limit / 1000 * permille + limit % 1000 * permille / 1000), 1);
    }

    void note_peak(std::size_t now) noexcept {
        std::size_t peak = max_used_.load(std::memory_order_relaxed);
        while (now > peak && !max_used_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
        }
    }

    MemoryBudget* const parent_ = nullptr;
    std::atomic<std::size_t> used_{0};
    std::atomic<std::size_t> max_used_{0};
    std::atomic<std::size_t> limit_{0};
    std::atomic<unsigned> reserve_permille_{0};
};

}  // namespace zpage
