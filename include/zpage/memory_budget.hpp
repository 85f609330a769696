// zpage: MemoryBudget, the account every byte a store holds is charged to.
//
// The allocator charges span pages and its metadata as it commits them, the store charges its
// page table; a store's mem_used_total, mem_used_max and mem_limit are its own account's figures.
// Accounts nest: a store's account may sit inside a budget shared with other stores (shards of
// one cache, say), and every charge then counts in both and must fit both limits, like a cgroup
// inside its parent. So each shard's figures are its own, they add up to the shared budget's
// use, and one shard's own limit never changes another's.
#pragma once

#include <atomic>
#include <cstddef>

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
            const std::size_t limit = limit_.load(std::memory_order_relaxed);
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

    // 0 means no limit (zram's mem_limit convention). Lowering the limit below what is in use
    // frees nothing; it refuses further charges until usage drops. Any thread.
    void set_limit(std::size_t bytes) noexcept { limit_.store(bytes, std::memory_order_relaxed); }

    // Restarts the peak from the current usage (zram: writing to mem_used_max).
    void reset_max_used() noexcept { max_used_.store(used(), std::memory_order_relaxed); }

private:
    void note_peak(std::size_t now) noexcept {
        std::size_t peak = max_used_.load(std::memory_order_relaxed);
        while (now > peak && !max_used_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
        }
    }

    MemoryBudget* const parent_ = nullptr;
    std::atomic<std::size_t> used_{0};
    std::atomic<std::size_t> max_used_{0};
    std::atomic<std::size_t> limit_{0};
};

}  // namespace zpage
