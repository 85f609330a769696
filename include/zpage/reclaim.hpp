// zpage: when a store with a writeback policy writes pages back, or a store with secondary codecs
// recompresses them, by kswapd's model applied to the store's memory limit (mem_limit).
//
// Watermarks count the room left under the limit, as the kernel's count free pages: when a store
// leaves less than `low` free, the background reclaimer (a thread of the store, zpage's kswapd)
// wakes, recompresses idle pages (with secondary codecs), writes back the coldest pages (CLOCK
// over the idle flags: idle pages first, every other page gets one more sweep to be touched) and
// compacts, until at least `high` is free; then
// it naps 0.1 s and sleeps if usage stays balanced, counting the times the low or high mark is hit
// again within the nap (the kernel's kswapd_{low,high}_wmark_hit_quickly). A store that would
// pass the limit itself reclaims directly first (the kernel's direct reclaim), on its own thread.
// With no room to write to (no space, the daily writeback budget spent), reclaim stops and stores
// fail with memory_limit: nothing stored is lost. Compaction also runs in the background
// (kcompactd's role) when the allocator holds more than `compact_hole_permille` of its span bytes
// in holes, and, with an idle age set, pages untouched that long are written back every
// scan_period whatever the pressure (how distributions run zram's writeback today).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "stats.hpp"

namespace zpage {

struct ReclaimConfig {
    // A background thread keeps the store between the watermarks below (and runs the idle and
    // compaction work below). Off: nothing happens unless called (mark_idle, writeback, compact).
    bool background = false;
    // A store that would pass the limit writes back and compacts on its own thread first.
    bool direct = false;
    // Watermarks, in permille of mem_limit left free: the background reclaimer wakes below
    // low_free and stops at high_free. No limit, no pressure.
    unsigned low_free_permille = 20;
    unsigned high_free_permille = 40;
    // Pages untouched for idle_age are written back every scan_period (0 s: never by age).
    std::chrono::seconds idle_age{0};
    std::chrono::seconds scan_period{3600};
    // The writeback limit, refilled every 24 h, in 4 KiB units written (0: no limit). Pressure
    // and age both spend it: flash wears by what is written.
    std::uint64_t daily_writeback_blocks = 0;
    // Background compaction when holes in the allocator's spans pass this permille of them.
    unsigned compact_hole_permille = 125;
    // Stores with secondary codecs (recompress.hpp). Under pressure the reclaimer recompresses
    // idle pages first, with codec `recompress_codec` in units of `recompress_group_pages`, and
    // writes back only what is still over the high mark (a store without writeback holds its
    // limit by recompression alone). With recompress_age set, the background thread also
    // recompresses pages left idle that long whatever the pressure: every recompress_age it takes
    // the pages not stored or loaded since its previous pass flagged them idle (with access times,
    // those untouched for recompress_age), so a page waits between one and two ages. 0 s: not by age.
    std::chrono::seconds recompress_age{0};
    unsigned recompress_codec = 1;
    std::size_t recompress_group_pages = 16;
    // The kernel's min watermark, for stores that recompress under pressure: stores stop this
    // permille short of the limit, which recompression (allocating a page's new object before
    // freeing its old one) may use, so that it can run when stores have filled all the rest.
    unsigned min_free_permille = 10;

    // Explicit calls only, like zram: no thread, nothing on the store path.
    static constexpr ReclaimConfig manual() noexcept { return {}; }

    // Holds the limit by itself: reclaims in the background between 2% and 4% free and directly
    // at the limit; writes back pages idle for 20 hours every hour; at most 1 GiB a day
    // (ChromeOS's swap_management: idle 20-25 h, hourly, 1 GiB/day for flash wear); compacts when
    // 1/8 of the spans are holes.
    static constexpr ReclaimConfig balanced() noexcept {
        ReclaimConfig c;
        c.background = true;
        c.direct = true;
        c.idle_age = std::chrono::hours(20);
        c.scan_period = std::chrono::hours(1);
        c.daily_writeback_blocks = (std::uint64_t{1} << 30) / 4096;
        return c;
    }

    // zpage's recommended configuration for stores with a fast primary codec and a strong
    // secondary one (lz4 and zstd: TieredTraits): pages idle for 5 minutes are recompressed by the
    // background thread with secondary codec 1 in units of 16 pages (64 KiB of 4 KiB pages); under
    // a limit, idle pages are recompressed first, then written back when the store can; a page
    // stored again goes back to the primary codec. Reclaims between 2% and 4% free, as balanced().
    static constexpr ReclaimConfig tiered() noexcept {
        ReclaimConfig c;
        c.background = true;
        c.direct = true;
        c.recompress_age = std::chrono::minutes(5);
        c.recompress_codec = 1;
        c.recompress_group_pages = 16;
        return c;
    }

    [[nodiscard]] bool manual_only() const noexcept {
        return !background && !direct && idle_age.count() == 0 && daily_writeback_blocks == 0 &&
               recompress_age.count() == 0;
    }

    // Throws std::invalid_argument naming the field at fault.
    void validate() const {
        if (low_free_permille == 0 || low_free_permille >= high_free_permille || high_free_permille >= 1000)
            throw std::invalid_argument(
                "zpage::ReclaimConfig: watermarks must satisfy 0 < low_free_permille < high_free_permille < 1000");
        if (idle_age.count() < 0 || scan_period.count() <= 0)
            throw std::invalid_argument("zpage::ReclaimConfig: idle_age must be >= 0 s and scan_period > 0 s");
        if (compact_hole_permille == 0 || compact_hole_permille > 1000)
            throw std::invalid_argument("zpage::ReclaimConfig: compact_hole_permille must be in [1, 1000]");
        if ((idle_age.count() != 0 || daily_writeback_blocks != 0 || recompress_age.count() != 0) && !background)
            throw std::invalid_argument("zpage::ReclaimConfig: idle_age, daily_writeback_blocks and recompress_age need "
                                        "the background reclaimer (background = true)");
        if (recompress_age.count() < 0)
            throw std::invalid_argument("zpage::ReclaimConfig: recompress_age must be >= 0 s");
        if (min_free_permille >= low_free_permille)
            throw std::invalid_argument("zpage::ReclaimConfig: min_free_permille must be below low_free_permille");
        if (recompress_group_pages == 0 || recompress_group_pages > 16)
            throw std::invalid_argument("zpage::ReclaimConfig: recompress_group_pages must be in [1, 16]");
    }
};

// What the reclaimer did, in the kernel's vocabulary (/proc/vmstat). Declared once.
struct ReclaimStats {
    std::uint64_t kswapd_wakeups = 0;          // times the background reclaimer woke to reclaim
    std::uint64_t pgsteal_kswapd = 0;          // pages it wrote back
    std::uint64_t pgsteal_direct = 0;          // pages stores wrote back on their own threads
    std::uint64_t allocstall = 0;              // stores that reclaimed directly
    std::uint64_t low_wmark_hit_quickly = 0;   // low mark crossed again within the 0.1 s nap
    std::uint64_t high_wmark_hit_quickly = 0;  // above the high mark again right after the nap
    std::uint64_t pgsteal_idle = 0;            // pages written back for their age
    std::uint64_t compact_daemon_wake = 0;     // background compactions
    std::uint64_t reclaim_stalls = 0;          // reclaims that found nothing more to write back
    std::uint64_t pgrecompress_kswapd = 0;     // pages the background reclaimer recompressed under pressure
    std::uint64_t pgrecompress_direct = 0;     // pages stores recompressed on their own threads
    std::uint64_t pgrecompress_idle = 0;       // pages recompressed for their age

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("kswapd_wakeups"), &ReclaimStats::kswapd_wakeups, StatUnit::count);
        f(std::string_view("pgsteal_kswapd"), &ReclaimStats::pgsteal_kswapd, StatUnit::pages);
        f(std::string_view("pgsteal_direct"), &ReclaimStats::pgsteal_direct, StatUnit::pages);
        f(std::string_view("allocstall"), &ReclaimStats::allocstall, StatUnit::count);
        f(std::string_view("low_wmark_hit_quickly"), &ReclaimStats::low_wmark_hit_quickly, StatUnit::count);
        f(std::string_view("high_wmark_hit_quickly"), &ReclaimStats::high_wmark_hit_quickly, StatUnit::count);
        f(std::string_view("pgsteal_idle"), &ReclaimStats::pgsteal_idle, StatUnit::pages);
        f(std::string_view("compact_daemon_wake"), &ReclaimStats::compact_daemon_wake, StatUnit::count);
        f(std::string_view("reclaim_stalls"), &ReclaimStats::reclaim_stalls, StatUnit::count);
        f(std::string_view("pgrecompress_kswapd"), &ReclaimStats::pgrecompress_kswapd, StatUnit::pages);
        f(std::string_view("pgrecompress_direct"), &ReclaimStats::pgrecompress_direct, StatUnit::pages);
        f(std::string_view("pgrecompress_idle"), &ReclaimStats::pgrecompress_idle, StatUnit::pages);
    }
    friend bool operator==(const ReclaimStats&, const ReclaimStats&) = default;
};

}  // namespace zpage
