// zpage: MemoryBudget, the one account every byte a store holds is charged to.
//
// The allocator charges span pages and its metadata as it commits them, the store charges its
// page table; mem_used_total, mem_used_max and mem_limit are this account's figures. A budget may
// be shared by several stores (shards of one cache, say) to give them one limit.
#pragma once

#include <atomic>
#include <cstddef>

namespace zpage {

class MemoryBudget {
public:
    MemoryBudget() = default;
    explicit MemoryBudget(std::size_t limit_bytes) noexcept : limit_(limit_bytes) {}
    MemoryBudget(const MemoryBudget&) = delete;
    MemoryBudget& operator=(const MemoryBudget&) = delete;

    // Charges `bytes` unless that would take the total over the limit; returns false, charging
    // nothing, when it would. Any thread.
    [[nodiscard]] bool try_charge(std::size_t bytes) noexcept {
        std::size_t used = used_.load(std::memory_order_relaxed);
        for (;;) {
            const std::size_t limit = limit_.load(std::memory_order_relaxed);
            if (limit != 0 && (bytes > limit || used > limit - bytes)) return false;
            if (used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed)) break;
        }
        note_peak(used + bytes);
        return true;
    }

    // Charges `bytes` whatever the limit (structures sized at construction). Any thread.
    void charge(std::size_t bytes) noexcept {
        note_peak(used_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    }

    void uncharge(std::size_t bytes) noexcept { used_.fetch_sub(bytes, std::memory_order_relaxed); }

    [[nodiscard]] std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t max_used() const noexcept { return max_used_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

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

    std::atomic<std::size_t> used_{0};
    std::atomic<std::size_t> max_used_{0};
    std::atomic<std::size_t> limit_{0};
};

}  // namespace zpage
