// zpage internal: the reclaimer of a store with a writeback policy or secondary codecs (reclaim.hpp
// says what it does and why; this is how).
//
// Threads and waits: one background thread per store, started at construction when
// ReclaimConfig::background is set and joined by stop() (the store's destructor calls it first).
// It sleeps on a condition variable until a store crosses the low mark (wake()), a timer for the
// idle scan, the daily refill or the compaction check is due, or stop(). Stores that reclaim
// directly serialise on the direct mutex. Lock order (see store.hpp): the reclaimer's mutexes are
// taken with no zpage lock held and before the recompression and writeback mutexes; the thread
// holds its own mutex only to wait and to be woken.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "../reclaim.hpp"
#include "../recompress.hpp"
#include "../writeback/backing_store.hpp"
#include "../writeback/engine.hpp"
#include "atomic_counters.hpp"
#include "os.hpp"

namespace zpage::detail {

template <class Store>
class Reclaimer {
    using clock = std::chrono::steady_clock;

public:
    // Throws std::system_error when the thread cannot be started.
    Reclaimer(Store& store, const ReclaimConfig& config) : store_(store), config_(config) {
        if constexpr (Store::writes_back) {
            if (config_.daily_writeback_blocks != 0) refill_limit();
        }
        if (config_.background) thread_ = os::start_thread("zpage-reclaim", [this] { run(); });
    }
    ~Reclaimer() { stop(); }
    Reclaimer(const Reclaimer&) = delete;
    Reclaimer& operator=(const Reclaimer&) = delete;

    // Stops and joins the background thread; the reclaimer then does nothing more in the
    // background. Any thread but the reclaimer's own.
    void stop() noexcept {
        {
            std::lock_guard guard(mutex_);
            stopping_.store(true, std::memory_order_relaxed);
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    // After a store: wakes the background reclaimer when less than the low mark is left free.
    // Two relaxed loads and a compare while nothing is due. Any thread, under no lock.
    void after_store(std::size_t used, std::size_t limit) noexcept {
        if (!config_.background || limit == 0 || wake_pending_.load(std::memory_order_relaxed)) return;
        if (limit - std::min(used, limit) >= free_bytes(limit, config_.low_free_permille)) return;
        if (wake_pending_.exchange(true, std::memory_order_relaxed)) return;
        { std::lock_guard guard(mutex_); }  // the sleeper checks wake_pending_ under this mutex: no lost wake-up
        wake_.notify_one();
    }

    // A store whose allocation hit the limit reclaims on its own thread: writes back the coldest
    // pages and compacts, aiming at the high mark. True when the store is worth retrying: this
    // freed anything, or found the high mark free (the background thread, or another direct
    // reclaim this one waited for, freed it since the store failed). Any thread, under no zpage
    // lock.
    bool reclaim_direct() noexcept {
        if (!config_.direct) return false;
        auto guard = lock_waiting_for(direct_mutex_, "direct reclaim mutex");
        count(stats_.allocstall);
        return reclaim_toward_high(/*direct=*/true);
    }

    [[nodiscard]] ReclaimStats stats() const noexcept { return load_counters(stats_); }

private:
    static std::size_t free_bytes(std::size_t limit, unsigned permille) noexcept {
        return limit / 1000 * permille + limit % 1000 * permille / 1000;
    }

    static void count(std::uint64_t& counter, std::uint64_t n = 1) noexcept { add_counter(counter, n); }

    // Writes back and compacts until the high mark is free, nothing more can go, or stop(); a
    // direct reclaim does one round (a batch or what the deficit needs, then compaction), as the
    // kernel's direct reclaim takes a cluster and lets the allocation try again. Returns true when
    // it wrote back or compacted anything, or found the high mark free: what it saw, not the net
    // change of mem_used_total, or a second look at it, which other threads' stores raise
    // meanwhile (a second look could report no room where the first found it).
    bool reclaim_toward_high(bool direct) noexcept {
        const std::size_t limit = store_.stats().mem_limit;
        if (limit == 0) return false;
        const std::size_t target = limit - free_bytes(limit, config_.high_free_permille);
        const int rounds = direct ? 1 : max_rounds;
        bool progress = false;
        for (int round = 0; round < rounds && !stopping(); ++round) {
            const Stats s = store_.stats();
            if (s.mem_used_total <= target) {
                progress = true;
                break;
            }
            // Idle pages recompressed first (it compacts): cheaper than a write and a read back.
            if constexpr (Store::recompresses) {
                if (recompress_round(direct)) {
                    progress = true;
                    continue;
                }
            }
            std::size_t written_pages = 0;
            if constexpr (Store::writes_back) {
                // A quarter more than the deficit, for the holes compaction cannot close at once
                // (in records' bytes, which are what leaves memory and a 16-byte header each).
                const std::size_t deficit = s.mem_used_total - target;
                const WritebackResult written =
                    store_.engine_.write_back_coldest(std::max(deficit + deficit / 4, round_bytes(limit)));
                count(direct ? stats_.pgsteal_direct : stats_.pgsteal_kswapd, written.pages);
                written_pages = written.pages;
            }
            const CompactionResult compacted = store_.compact();
            if (written_pages == 0 && compacted.pages_freed == 0) {
                count(stats_.reclaim_stalls);
                break;
            }
            progress = true;
        }
        return progress;
    }

    // Recompresses up to a round of idle pages from where the last round stopped, wrapping
    // around; a sweep that finds no idle page flags every page idle and goes once more (CLOCK: a
    // page touched since is passed over next time). At the limit a unit's new
    // pieces may find no room (they are made before the old objects go): the round goes on a page
    // at a time, whose objects fit the room left in their classes' spans, and the holes they leave
    // make room for units again. True when it saved memory.
    bool recompress_round(bool direct) noexcept {
        std::size_t saved_pages = 0;
        std::int64_t saved_bytes = 0;
        bool marked = false;
        std::size_t group = config_.recompress_group_pages;
        for (std::size_t looked = 0, capacity = store_.capacity(); saved_pages < recompress_round_pages;) {
            const std::size_t from = recompress_hand_.load(std::memory_order_relaxed);
            const RecompressResult r = store_.recompress({.select = RecompressSelect::idle,
                                                          .max_pages = recompress_round_pages - saved_pages,
                                                          .codec = config_.recompress_codec,
                                                          .group_pages = group,
                                                          .first = from});
            saved_pages += r.pages;
            saved_bytes += r.bytes_saved;
            looked += r.next > from ? r.next - from : 0;
            recompress_hand_.store(r.next < capacity ? r.next : 0, std::memory_order_relaxed);
            if (r.status == errc::memory_limit && group > 1) {
                group = 1;
                continue;
            }
            group = config_.recompress_group_pages;
            if (!r.status || r.next <= from) break;  // no room even for one page: writeback, if any, makes it
            if (looked < capacity) continue;
            // A whole sweep: the next one takes what was not touched since. With writeback too,
            // so that pages are recompressed before any is written back, not after the
            // writeback's own CLOCK has aged them.
            if (marked) break;
            static_cast<void>(store_.mark_idle());
            marked = true;
            looked = 0;
        }
        count(direct ? stats_.pgrecompress_direct : stats_.pgrecompress_kswapd, saved_pages);
        return saved_bytes > 0;
    }

    // The least a round writes back, in records' bytes: a full batch, so that the backing store
    // sees large writes (a disk charges per request: the README's writeback table), but no more
    // than an eighth of the limit, so that a small budget is not emptied far below its high mark.
    std::size_t round_bytes(std::size_t limit) const noexcept
        requires(Store::writes_back)
    {
        return std::min(store_.engine_.options().batch_bytes, limit / 8);
    }

    bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }

    bool below_high() const noexcept {
        const Stats s = store_.stats();
        return s.mem_limit == 0 || s.mem_limit - std::min<std::uint64_t>(s.mem_used_total, s.mem_limit) >=
                                       free_bytes(s.mem_limit, config_.high_free_permille);
    }

    void refill_limit() noexcept {
        if constexpr (Store::writes_back) {
            store_.engine_.set_limit(config_.daily_writeback_blocks);
            store_.engine_.enable_limit(true);
        }
        next_refill_ = clock::now() + std::chrono::hours(24);
    }

    // Recompresses the pages left idle for recompress_age (see ReclaimConfig).
    void recompress_aged() noexcept {
        if constexpr (Store::recompresses) {
            if constexpr (Store::writeback_type::tracks_access_time) static_cast<void>(store_.mark_idle(config_.recompress_age));
            const RecompressResult r = store_.recompress({.select = RecompressSelect::idle,
                                                          .codec = config_.recompress_codec,
                                                          .group_pages = config_.recompress_group_pages});
            count(stats_.pgrecompress_idle, r.pages);
            // Without access times, what this pass flags is what the next one takes if untouched.
            if constexpr (!Store::writeback_type::tracks_access_time) static_cast<void>(store_.mark_idle());
        }
    }

    void run() noexcept {
        const auto compaction_check = std::chrono::seconds(1);
        auto next_age_scan = clock::now() + config_.scan_period;
        auto next_recompress_scan = clock::now() + config_.recompress_age;
        // The first pass only flags: a page is taken once it stayed idle a whole age.
        if (config_.recompress_age.count() != 0) static_cast<void>(store_.mark_idle());
        auto next_compaction = clock::now() + compaction_check;
        std::unique_lock guard(mutex_);
        while (!stopping()) {
            auto due = next_compaction;
            if (config_.idle_age.count() != 0) due = std::min(due, next_age_scan);
            if (config_.recompress_age.count() != 0) due = std::min(due, next_recompress_scan);
            if (config_.daily_writeback_blocks != 0) due = std::min(due, next_refill_);
            wake_.wait_until(guard, due, [&] { return stopping() || wake_pending_.load(std::memory_order_relaxed); });
            if (stopping()) break;
            guard.unlock();

            while (wake_pending_.load(std::memory_order_relaxed) && !stopping()) balance(guard);

            const auto now = clock::now();
            if (config_.daily_writeback_blocks != 0 && now >= next_refill_) refill_limit();
            if (config_.recompress_age.count() != 0 && now >= next_recompress_scan) {
                recompress_aged();
                next_recompress_scan = now + config_.recompress_age;
            }
            if constexpr (Store::writes_back) {
                if (config_.idle_age.count() != 0 && now >= next_age_scan) {
                    store_.mark_idle(config_.idle_age);
                    const WritebackResult written = store_.writeback({.select = WritebackSelect::idle});
                    count(stats_.pgsteal_idle, written.pages);
                    next_age_scan = now + config_.scan_period;
                }
            }
            if (now >= next_compaction) {
                const AllocatorStats a = store_.allocator().stats();
                const std::size_t holes = a.span_bytes > a.object_bytes ? a.span_bytes - a.object_bytes : 0;
                if (holes > free_bytes(a.span_bytes, config_.compact_hole_permille)) {
                    count(stats_.compact_daemon_wake);
                    static_cast<void>(store_.compact());
                }
                next_compaction = now + compaction_check;
            }
            guard.lock();
        }
    }

    // One wake-up: reclaim to the high mark, then nap 0.1 s; a wake-up within the nap, or usage
    // above the high mark after it, counts as the kernel's *_wmark_hit_quickly and goes on.
    void balance(std::unique_lock<std::mutex>& guard) noexcept {
        count(stats_.kswapd_wakeups);
        reclaim_toward_high(/*direct=*/false);
        wake_pending_.store(false, std::memory_order_relaxed);
        guard.lock();
        const bool woken = wake_.wait_for(guard, nap, [&] {
            return stopping() || wake_pending_.load(std::memory_order_relaxed);
        });
        guard.unlock();
        if (stopping()) return;
        if (woken) {
            count(stats_.low_wmark_hit_quickly);
        } else if (!below_high()) {
            count(stats_.high_wmark_hit_quickly);
            wake_pending_.store(true, std::memory_order_relaxed);
        }
    }

    static constexpr int max_rounds = 64;
    // Pages a round of recompression under pressure takes at most: 4 MiB of 4 KiB pages, some
    // 15 ms of zstd-3, so that a direct reclaim returns to its store soon.
    static constexpr std::size_t recompress_round_pages = 1024;
    static constexpr auto nap = std::chrono::milliseconds(100);

    Store& store_;
    const ReclaimConfig config_;
    ReclaimStats stats_{};  // every access through std::atomic_ref
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<bool> stopping_{false};  // set under mutex_, so that a sleeper cannot miss it
    std::atomic<bool> wake_pending_{false};
    std::mutex direct_mutex_;
    clock::time_point next_refill_{};
    // Where the next recompression round starts; rounds of the thread and of direct reclaims
    // take turns through the recompression mutex, so a lost update only repeats a stretch.
    std::atomic<std::size_t> recompress_hand_{0};
    std::thread thread_;  // last: starts once everything above is built
};

}  // namespace zpage::detail
