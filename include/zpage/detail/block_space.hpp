// zpage internal: the space of a backing store in 4 KiB blocks: which blocks hold records, how
// many live records overlap each, and where the next batch goes. FileBackingStore and
// MemoryBackingStore share it, so that both place records, count bd_count and give space back
// the same way.
//
// Placement: a batch's records are packed back to back (a record may straddle blocks) into runs
// of contiguous free blocks (extents), found next-fit from where the previous batch ended, so a
// device sees sequential writes while it has room. A batch owns its blocks alone: the tail of
// each of its extents' last block is padding, never the start of the next batch, so every record
// of a block is known when the block is placed and its count never rises afterwards. A batch
// that meets used blocks continues in the next free run long enough for its next record; a
// record never spans two runs (its location is one byte range). A batch fails with no_space
// only when some record finds no such run: free blocks scattered in runs shorter than a record
// (2 blocks for a 4 KiB page with its record header) cannot hold it.
//
// Giving space back: a block left without records is free for the next batch at once, but
// punching it out of a file (or discarding it, or decommitting it) may cost far more than reusing
// it (file_backing_store.hpp has the figures). So by default freed blocks are only marked
// "unpunched" and given back later, in coalesced runs, by punch_freed(): the writer calls it for
// a few runs per batch (punch_calls_per_batch) once more than a retained amount waits, and trim()
// for all; a block a batch claims before then is simply overwritten. punch_at_free gives the other
// trade: free() punches the blocks it empties itself, in one call per run of adjacent ones.
//
// Concurrency, without a lock: one writer at a time (the store serialises place(), abandon() and
// punch_freed()) sets used bits; free() only lowers counts, sets unpunched bits and clears used
// bits.
//   - The writer claims a block only when its used bit is clear, and sets its count before handing
//     out any location in it: no other thread touches a block whose used bit is clear.
//   - free() decrements the count of each block the record overlaps; the thread that takes a count
//     to 0 owns that block: it punches it (punch_at_free) or sets its unpunched bit, and only then
//     clears its used bit (release). A writer that sees the used bit clear (acquire) therefore never
//     writes a block whose punch is still running, which would destroy the new data, and sees its
//     unpunched bit. Adjacent blocks that one free() empties form one run; blocks emptied by other
//     calls are merged only by punch_freed(), which runs in the writer and so cannot race a claim.
//   - The scan for free runs reads bits with plain acquire loads: a bit being cleared meanwhile
//     reads as used, which only makes the writer look further.
//
// Memory: 2 bits and a 2-byte count per block, 576 KiB per GiB of backing store (0.05%). Counts
// are 16 bits because the store is opaque: a block may hold up to 4096 one-byte records (records
// of record.hpp are at least 17 B, 242 per block at most).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>

#include "../errc.hpp"
#include "assert.hpp"

namespace zpage::detail {

class BlockSpace {
public:
    static constexpr std::size_t block_bytes = 4096;
    static constexpr std::uint64_t npos = std::numeric_limits<std::uint64_t>::max();
    // Runs a store's write() punches before its batch when more than its retained amount waits:
    // bounds what a batch pays (20 ms where a punch costs 2.4 ms, file_backing_store.hpp) while the
    // retained amount shrinks.
    static constexpr std::size_t punch_calls_per_batch = 8;

    // A run of contiguous blocks that one batch claimed.
    struct Extent {
        std::uint64_t first_block = 0;
        std::uint64_t blocks = 0;
    };

    // Throws std::bad_alloc.
    explicit BlockSpace(std::uint64_t blocks, bool punch_at_free)
        : blocks_(blocks),
          words_((blocks + 63) / 64),
          punch_at_free_(punch_at_free),
          used_(std::make_unique<std::atomic<std::uint64_t>[]>(words_)),
          unpunched_(std::make_unique<std::atomic<std::uint64_t>[]>(words_)),
          live_(std::make_unique<std::atomic<std::uint16_t>[]>(blocks)) {
        // The bits past the last block read as used forever, so no scan ever returns them.
        if (blocks % 64 != 0) used_[words_ - 1].store(~std::uint64_t{0} << (blocks % 64), std::memory_order_relaxed);
    }

    [[nodiscard]] std::uint64_t blocks() const noexcept { return blocks_; }
    [[nodiscard]] std::uint64_t blocks_in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
    // Free blocks whose space was not given back yet (always 0 with punch_at_free).
    [[nodiscard]] std::uint64_t unpunched_blocks() const noexcept {
        return unpunched_count_.load(std::memory_order_relaxed);
    }

    // What place() placed: the first `records` of its lengths, in `extents` runs of blocks.
    struct Placement {
        std::size_t records = 0;
        std::size_t extents = 0;
    };

    // Writer only. Places records of the given lengths, in order, while their runs of blocks total
    // at most max_blocks (which must hold a run of the longest record), fills locations[i] (byte
    // offsets) and extents[0 .. n), and returns how many records it placed in how many extents
    // (n <= records placed; extents must hold lengths.size()). The extents' blocks are claimed:
    // they count in bd_count and stay out of later batches until the records are freed or the
    // batch is abandoned. Returns no_space, with nothing claimed, when a record finds no room.
    template <class Lengths>
    [[nodiscard]] Result<Placement> place(const Lengths& lengths, std::span<std::uint64_t> locations,
                                          std::span<Extent> extents, std::uint64_t max_blocks = npos) noexcept {
        ZPAGE_ASSERT(locations.size() >= std::size(lengths) && extents.size() >= std::size(lengths));
        std::size_t n = 0;
        std::uint64_t filled = 0;  // bytes of records in the current extent, extents[n - 1]
        std::uint64_t claimed = 0;  // blocks of extents[0 .. n)
        std::uint64_t from = cursor_;
        std::size_t i = 0;
        for (const auto& length_of : lengths) {
            const std::uint64_t length = byte_length(length_of);
            bool fits = false;
            if (n != 0) {
                Extent& e = extents[n - 1];
                const std::uint64_t needed = blocks_for(filled + length);
                const std::uint64_t end = e.first_block + e.blocks;
                if (needed <= e.blocks) {
                    fits = true;
                } else if (claimed + (needed - e.blocks) > max_blocks) {
                    break;
                } else if (e.first_block + needed <= blocks_ && next_used(end, e.first_block + needed) == npos) {
                    claim(end, needed - e.blocks);
                    claimed += needed - e.blocks;
                    e.blocks = needed;
                    fits = true;
                }
            }
            if (!fits) {
                const std::uint64_t run = blocks_for(length);
                if (claimed + run > max_blocks) {
                    ZPAGE_ASSERT(i != 0);  // max_blocks holds a run of any one record
                    break;
                }
                const std::uint64_t first = find_run(run, from);
                if (first == npos) {
                    abandon_claims(extents.first(n));
                    return errc::no_space;
                }
                claim(first, run);
                claimed += run;
                extents[n++] = Extent{first, run};
                filled = 0;
            }
            const Extent& e = extents[n - 1];
            const std::uint64_t location = e.first_block * block_bytes + filled;
            locations[i++] = location;
            filled += length;
            from = e.first_block + e.blocks;
            for (std::uint64_t b = location / block_bytes; b <= (location + length - 1) / block_bytes; ++b) {
                const auto count = live_[b].load(std::memory_order_relaxed);
                ZPAGE_ASSERT(count < std::numeric_limits<std::uint16_t>::max());
                live_[b].store(static_cast<std::uint16_t>(count + 1), std::memory_order_relaxed);
            }
        }
        reuse(extents.first(n));
        if (n != 0) cursor_ = from >= blocks_ ? 0 : from;
        return Placement{i, n};
    }

    // Writer only. Gives back the blocks of a batch placed but not written (its I/O failed):
    // punch(first_block, blocks) for each extent, which may have been written in part, then the
    // blocks are free. The next batch starts where this one did.
    template <class Punch>
    void abandon(std::span<const Extent> extents, Punch&& punch) noexcept {
        for (const Extent& e : extents) {
            for (std::uint64_t b = e.first_block; b < e.first_block + e.blocks; ++b)
                live_[b].store(0, std::memory_order_relaxed);
            punch(e.first_block, e.blocks);
            release(e.first_block, e.blocks);
        }
        if (!extents.empty()) cursor_ = extents.front().first_block;
    }

    // Any thread. Drops the record at [location, location + length): every block it leaves without
    // records is free again, punched first (punch(first_block, blocks), once per run of adjacent
    // such blocks) with punch_at_free, else marked unpunched for punch_freed().
    template <class Punch>
    void free(std::uint64_t location, std::uint64_t length, Punch&& punch) noexcept {
        ZPAGE_ASSERT(length != 0 && location + length <= blocks_ * block_bytes);
        const std::uint64_t last = (location + length - 1) / block_bytes;
        std::uint64_t run = npos;  // first block of the current run of emptied blocks
        for (std::uint64_t b = location / block_bytes; b <= last; ++b) {
            const auto before = live_[b].fetch_sub(1, std::memory_order_acq_rel);
            ZPAGE_ASSERT(before != 0);  // a double free, or a record never written
            if (before == 1) {
                if (run == npos) run = b;
            } else if (run != npos) {
                retire(run, b - run, punch);
                run = npos;
            }
        }
        if (run != npos) retire(run, last + 1 - run, punch);
    }

    // Writer only. Punches up to max_calls runs of free, unpunched blocks, adjacent ones merged
    // into one call, sweeping the space from where the previous call stopped. Returns the calls made.
    template <class Punch>
    std::size_t punch_freed(std::size_t max_calls, Punch&& punch) noexcept {
        std::size_t calls = 0;
        const std::uint64_t start = punch_cursor_;
        const auto freed = [this](std::uint64_t w) {
            return unpunched_[w].load(std::memory_order_relaxed) & ~used_[w].load(std::memory_order_acquire);
        };
        const auto not_freed = [&](std::uint64_t w) { return ~freed(w); };
        for (int pass = 0; pass < 2 && calls < max_calls; ++pass) {
            std::uint64_t b = pass == 0 ? start : 0;
            const std::uint64_t hi = pass == 0 ? blocks_ : start;
            while (calls < max_calls && unpunched_blocks() != 0) {
                const std::uint64_t first = next_bit(b, hi, freed);
                if (first == npos) break;
                std::uint64_t end = next_bit(first, hi, not_freed);
                if (end == npos) end = hi;
                punch(first, end - first);
                for_each_word(first, end - first, [&](std::uint64_t w, std::uint64_t mask) {
                    unpunched_[w].fetch_and(~mask, std::memory_order_relaxed);
                });
                unpunched_count_.fetch_sub(end - first, std::memory_order_relaxed);
                ++calls;
                b = punch_cursor_ = end;
            }
        }
        if (punch_cursor_ >= blocks_) punch_cursor_ = 0;
        return calls;
    }

    // Test and debug: the number of live records overlapping block b.
    [[nodiscard]] std::uint16_t live_records(std::uint64_t b) const noexcept {
        return live_[b].load(std::memory_order_relaxed);
    }

    [[nodiscard]] static constexpr std::uint64_t blocks_for(std::uint64_t bytes) noexcept {
        return (bytes + block_bytes - 1) / block_bytes;
    }

private:
    template <class T>
    static std::uint64_t byte_length(const T& length_of) noexcept {
        if constexpr (requires { length_of.size(); })
            return length_of.size();
        else
            return static_cast<std::uint64_t>(length_of);
    }

    // The first block of a run of n free blocks, searched next-fit from block `from` and wrapping
    // around once; npos if there is none.
    [[nodiscard]] std::uint64_t find_run(std::uint64_t n, std::uint64_t from) const noexcept {
        if (n == 0 || n > blocks_) return npos;
        if (from >= blocks_) from = 0;
        const std::uint64_t found = search(from, blocks_, n);
        if (found != npos || from == 0) return found;
        return search(0, std::min(blocks_, from + n - 1), n);  // runs that start before `from`
    }

    // The first s in [lo, hi - n] with blocks s .. s + n - 1 free, or npos.
    [[nodiscard]] std::uint64_t search(std::uint64_t lo, std::uint64_t hi, std::uint64_t n) const noexcept {
        std::uint64_t s = lo;
        while (s + n <= hi) {
            const std::uint64_t f = next_free(s, hi);
            if (f == npos || f + n > hi) return npos;
            const std::uint64_t u = next_used(f, f + n);
            if (u == npos) return f;
            s = u + 1;
        }
        return npos;
    }

    // The first free block in [from, hi), or npos.
    [[nodiscard]] std::uint64_t next_free(std::uint64_t from, std::uint64_t hi) const noexcept {
        return next_bit(from, hi, [this](std::uint64_t w) { return ~used_[w].load(std::memory_order_acquire); });
    }
    // The first used block in [from, hi), or npos.
    [[nodiscard]] std::uint64_t next_used(std::uint64_t from, std::uint64_t hi) const noexcept {
        return next_bit(from, hi, [this](std::uint64_t w) { return used_[w].load(std::memory_order_acquire); });
    }
    // The first block in [from, hi) whose bit is set in word(w), its word of 64 blocks.
    template <class Word>
    [[nodiscard]] std::uint64_t next_bit(std::uint64_t from, std::uint64_t hi, const Word& word) const noexcept {
        for (std::uint64_t w = from / 64; w * 64 < hi; ++w) {
            std::uint64_t bits = word(w);
            if (w == from / 64) bits &= ~std::uint64_t{0} << (from % 64);
            if (bits != 0) {
                const std::uint64_t b = w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits));
                return b < hi ? b : npos;
            }
        }
        return npos;
    }

    // Masks of the bits of [first, first + n) word by word: f(word, mask).
    template <class F>
    static void for_each_word(std::uint64_t first, std::uint64_t n, F&& f) noexcept {
        while (n != 0) {
            const std::uint64_t bit = first % 64;
            const std::uint64_t take = std::min<std::uint64_t>(n, 64 - bit);
            const std::uint64_t mask = (take == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << take) - 1) << bit;
            f(first / 64, mask);
            first += take;
            n -= take;
        }
    }

    void claim(std::uint64_t first, std::uint64_t n) noexcept {
        for_each_word(first, n, [&](std::uint64_t w, std::uint64_t mask) {
            [[maybe_unused]] const std::uint64_t before = used_[w].fetch_or(mask, std::memory_order_relaxed);
            ZPAGE_ASSERT((before & mask) == 0);
        });
        in_use_.fetch_add(n, std::memory_order_relaxed);
    }

    // Writer only, once a batch is placed: its blocks that were still unpunched are simply
    // overwritten, never punched.
    void reuse(std::span<const Extent> extents) noexcept {
        std::uint64_t reused = 0;
        for (const Extent& e : extents)
            for_each_word(e.first_block, e.blocks, [&](std::uint64_t w, std::uint64_t mask) {
                if ((unpunched_[w].load(std::memory_order_relaxed) & mask) != 0)
                    reused += static_cast<std::uint64_t>(
                        std::popcount(unpunched_[w].fetch_and(~mask, std::memory_order_relaxed) & mask));
            });
        if (reused != 0) unpunched_count_.fetch_sub(reused, std::memory_order_relaxed);
    }

    // The blocks [first, first + n) lost their last record: free them, punched first or marked.
    template <class Punch>
    void retire(std::uint64_t first, std::uint64_t n, Punch& punch) noexcept {
        if (punch_at_free_) {
            punch(first, n);
        } else {
            for_each_word(first, n, [&](std::uint64_t w, std::uint64_t mask) {
                unpunched_[w].fetch_or(mask, std::memory_order_relaxed);
            });
            unpunched_count_.fetch_add(n, std::memory_order_relaxed);
        }
        release(first, n);
    }

    void release(std::uint64_t first, std::uint64_t n) noexcept {
        in_use_.fetch_sub(n, std::memory_order_relaxed);
        for_each_word(first, n, [&](std::uint64_t w, std::uint64_t mask) {
            [[maybe_unused]] const std::uint64_t before = used_[w].fetch_and(~mask, std::memory_order_release);
            ZPAGE_ASSERT((before & mask) == mask);
        });
    }

    // A failed place(): the claimed blocks were never written, so there is nothing to punch.
    void abandon_claims(std::span<const Extent> extents) noexcept {
        for (const Extent& e : extents) {
            for (std::uint64_t b = e.first_block; b < e.first_block + e.blocks; ++b)
                live_[b].store(0, std::memory_order_relaxed);
            release(e.first_block, e.blocks);
        }
    }

    const std::uint64_t blocks_;
    const std::uint64_t words_;
    const bool punch_at_free_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> used_;       // bit b: block b holds records, or a batch claimed it
    std::unique_ptr<std::atomic<std::uint64_t>[]> unpunched_;  // bit b: block b is free, its space not given back
    std::unique_ptr<std::atomic<std::uint16_t>[]> live_;       // live records overlapping each block
    std::atomic<std::uint64_t> in_use_{0};                     // used bits set: bd_count
    std::atomic<std::uint64_t> unpunched_count_{0};            // unpunched bits set
    std::uint64_t cursor_ = 0;                                 // writer only: where the next batch starts looking
    std::uint64_t punch_cursor_ = 0;                           // writer only: where punch_freed() goes on
};

}  // namespace zpage::detail
