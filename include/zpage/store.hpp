// zpage: CompressedPageStore, zram as a component: a fixed number of page slots, each holding a
// page compressed by the traits' codec, packed by the traits' allocator, tracked by the traits'
// page table, with zram's statistics.
//
//   zpage::CompressedPageStore<> pages(capacity_pages);
//   if (!pages.store(index, page)) ...;   // Status: true on success
//   if (!pages.load(index, page)) ...;
//
// Write path (detail/encoder.hpp, shared with every other writer): a same-filled page goes into
// its entry as its fill word; any other page is compressed and stored compressed, or raw when the
// result exceeds the huge threshold; the new object is published under the entry lock and the
// old one freed after it. Read path: under the entry lock, decompress straight from the
// allocator's memory into the caller's buffer. The entry holds the object's location itself;
// compaction moves an object only under its entry's lock (Owners below), so a reader needs no
// other protection.
//
// Thread safety: every member function may be called from any thread at any time. Operations on
// different indices run in parallel; on one index they serialize on its entry lock, and racing
// stores leave one of the pages whole.
//
// Lock order, for the store and everything under it. A thread holding one of these may wait only
// for those further down the list, never for one above it:
//   1. the reclaimer's direct-reclaim mutex (detail/reclaimer.hpp): a store that hit its limit
//      takes it holding nothing else; then the recompression mutex (detail/recompressor.hpp),
//      held across a recompress() call.
//   2. a codec stream slot (detail::StreamPool), or the writeback batch mutex
//      (writeback/engine.hpp), never both: store() holds a slot while it compresses and
//      allocates, load() takes its own before the entry lock, never while holding it; a batch
//      decodes with a context of its own.
//   3. a size-class lock (SizeClassAllocator): allocate, deallocate, and compact(), which takes
//      entry locks under it to move objects (ObjectOwners::relocate).
//   4. a page-table entry lock: held to read or publish an entry, and while reading its object;
//      nothing is waited for under it (objects and records are freed after it is released, and
//      backing-store I/O never runs under it).
//   5. leaves, under which nothing else is taken: the span arena's lock, the page pool's mutex
//      (under a size-class lock; a named wait; the refill thread or a taker populates new memory
//      without it), a backing store's own locks, a unit's lock (detail/unit_table.hpp: under an
//      entry lock or a size-class lock) and the unit ids' lock.
// Every wait spins with detail::Backoff, which names what it waits for in detail::waiting_for();
// tests/test_store_liveness.cpp runs more threads than cores and than stream slots under a
// watchdog that prints those names when nothing progresses.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "allocator/concept.hpp"
#include "compressor/concept.hpp"
#include "detail/clock.hpp"
#include "detail/encoder.hpp"
#include "detail/same_filled.hpp"
#include "detail/striped_counters.hpp"
#include "errc.hpp"
#include "memory_budget.hpp"
#include "page_table.hpp"
#include "stats.hpp"
#include "traits.hpp"
#include "detail/reclaimer.hpp"
#include "detail/recompressor.hpp"
#include "reclaim.hpp"
#include "recompress.hpp"
#include "writeback/concept.hpp"
#include "writeback/engine.hpp"

namespace zpage {

// The largest page a store takes: the largest size the tests round-trip (test_page_sizes.cpp),
// and the largest power of two a page-table entry's 18-bit size field holds.
inline constexpr std::size_t max_page_size = std::size_t{128} << 10;
static_assert(max_page_size <= PageEntry::max_page_bytes, "zpage: a huge page's size must fit a page-table entry");

struct StoreConfig {
    std::size_t capacity_pages = 0;  // page indices 0 .. capacity_pages - 1
    // This store's own limit on mem_used_total; 0: none. Under a shared budget it caps this store
    // within the budget's limit, and never changes the budget's or another store's limit.
    std::size_t mem_limit_bytes = 0;
    // Pages whose compressed size exceeds this are stored raw (zram's huge pages). 0: 227/256 of
    // the page, zram's huge_class_size on 4 KiB pages (3632 B).
    std::size_t huge_threshold_bytes = 0;
    // A budget shared with other stores (shards under one limit), which the store's own account
    // sits inside: every byte counts in both, and must fit both limits. nullptr: none. The budget
    // must outlive the store.
    MemoryBudget* budget = nullptr;
    // When pages are written back, for stores with a writeback policy (reclaim.hpp): manual()
    // (explicit calls only, the default) or balanced(), or anything between. Stores without one
    // take manual() only.
    ReclaimConfig reclaim{};
    // Where the allocator's pages come from; nullptr: PagePool::shared(), the process's pool,
    // whose spare pages (under 2 MiB plus those it retains) are not in any store's mem_used_total.
    PagePool* page_pool = nullptr;

    [[nodiscard]] std::size_t huge_threshold(std::size_t page_size) const noexcept {
        return huge_threshold_bytes != 0 ? huge_threshold_bytes : page_size * 227 / 256;
    }

    // Throws std::invalid_argument naming the field at fault.
    void validate(std::size_t page_size) const {
        if (capacity_pages == 0 || capacity_pages > max_owner_id)
            throw std::invalid_argument("zpage::StoreConfig: capacity_pages must be in [1, 2^31)");
        if (huge_threshold_bytes != 0 && (huge_threshold_bytes < 64 || huge_threshold_bytes >= page_size))
            throw std::invalid_argument("zpage::StoreConfig: huge_threshold_bytes must be in [64, " +
                                        std::to_string(page_size) + ")");
        reclaim.validate();
    }
};

template <class Traits = DefaultTraits>
class CompressedPageStore {
    static_assert(StoreTraits<Traits>,
                  "zpage::CompressedPageStore: Traits must name page_size, compressor, allocator and page_table "
                  "(derive from zpage::DefaultTraits)");
    static_assert(Compressor<typename Traits::compressor>,
                  "zpage::CompressedPageStore: Traits::compressor must model zpage::Compressor: name(), "
                  "make_compress_context(), make_decompress_context(), noexcept compress() and decompress()");
    static_assert(PageAllocator<typename Traits::allocator>,
                  "zpage::CompressedPageStore: Traits::allocator must model zpage::PageAllocator: allocate(bytes), "
                  "deallocate(handle), read(handle, f), compact(), stats()");
    static_assert(PageTableLayout<typename Traits::page_table>,
                  "zpage::CompressedPageStore: Traits::page_table must model zpage::PageTableLayout");
    static_assert(Traits::page_size % detail::os::page_bytes == 0 && Traits::page_size <= max_page_size,
                  "zpage::CompressedPageStore: page_size must be a multiple of 4096 and at most 128 KiB "
                  "(zpage::max_page_size)");
    static_assert(WritebackPolicy<typename Traits::writeback>,
                  "zpage::CompressedPageStore: Traits::writeback must model zpage::WritebackPolicy "
                  "(zpage::NoWriteback, or a policy with a backing store)");
    static_assert(Traits::allocator::max_object_bytes >= Traits::page_size,
                  "zpage::CompressedPageStore: the allocator must hold objects of a whole page (huge pages)");

public:
    using traits_type = Traits;
    using compressor_type = typename Traits::compressor;
    using allocator_type = typename Traits::allocator;
    using page_table_type = typename Traits::page_table;
    using writeback_type = typename Traits::writeback;
    using secondary_codecs_type = typename Traits::secondary_codecs;
    static constexpr std::size_t page_size = Traits::page_size;
    using page_view = std::span<const std::byte, page_size>;
    using page_buffer = std::span<std::byte, page_size>;

    static constexpr bool writes_back = writeback_type::writes_back;
    static constexpr bool recompresses = std::tuple_size_v<secondary_codecs_type> != 0;
    // A store that can reclaim memory by itself: by writing pages back, by recompressing them, or both.
    static constexpr bool reclaims = writes_back || recompresses;

private:
    using encoder_type = detail::Encoder<compressor_type, allocator_type, page_size>;
    using engine_type = std::conditional_t<writes_back, detail::WritebackEngine<CompressedPageStore>,
                                           detail::Absent>;
    using recompressor_type =
        std::conditional_t<recompresses, detail::Recompressor<CompressedPageStore>, detail::Absent>;
    template <class>
    friend class detail::WritebackEngine;
    template <class>
    friend class detail::Recompressor;
    template <class>
    friend class detail::Reclaimer;
    // Direct reclaims a store tries before memory_limit, each one that freed memory or found room;
    // storing threads reclaiming at once take the room each other's reclaim made (the kernel's
    // MAX_RECLAIM_RETRIES; a reclaim that frees nothing and finds no room ends the tries at once).
    static constexpr int direct_attempts = 16;

public:

    // Throws std::invalid_argument for a bad configuration or a codec parameter the codec cannot
    // use (a level out of range), std::bad_alloc when memory for the page table or the first codec
    // contexts cannot be had.
    explicit CompressedPageStore(std::size_t capacity_pages, compressor_type codec = {})
        : CompressedPageStore(StoreConfig{.capacity_pages = capacity_pages}, std::move(codec)) {}

    // A store with a writeback policy is given its policy (backing store and options) here, and
    // one with secondary codecs their parameters (levels).
    explicit CompressedPageStore(const StoreConfig& config, compressor_type codec = {},
                                 writeback_type writeback = {}, secondary_codecs_type secondary_codecs = {})
        : budget_(checked(config).budget, config.mem_limit_bytes),
          table_(config.capacity_pages),
          allocator_(allocator_config(config, budget_)),
          encoder_(std::move(codec), allocator_, config.huge_threshold(page_size)),
          recompressor_(*this, std::move(secondary_codecs)),
          engine_(*this) {
        if constexpr (writes_back) engine_.start(writeback);
        if constexpr (reclaims) {
            check_reclaim(config.reclaim);
            if (!config.reclaim.manual_only()) {
                reclaimer_ = std::make_unique<detail::Reclaimer<CompressedPageStore>>(*this, config.reclaim);
                if (recompresses && config.reclaim.direct)
                    budget_.set_reclaim_reserve_permille(config.reclaim.min_free_permille);
            }
        } else if (!config.reclaim.manual_only()) {
            throw std::invalid_argument(
                "zpage::StoreConfig: reclaim other than manual() needs a writeback policy or secondary codecs");
        }
        budget_.charge(table_.memory_bytes());
    }

    // The allocator gives back all object memory at once; no per-page work. Records of
    // written-back pages are freed on the backing store, which may outlive the store.
    ~CompressedPageStore() {
        if constexpr (reclaims) {
            if (reclaimer_) reclaimer_->stop();
        }
        if constexpr (writes_back) {
            walk(0, table_.capacity(), [&](std::size_t, LockedPage& entry) noexcept {
                const PageRecord r = entry.get();
                if (r.has(PageFlag::written_back)) engine_.release(r);
            });
        }
        budget_.uncharge(table_.memory_bytes());
    }

    CompressedPageStore(const CompressedPageStore&) = delete;
    CompressedPageStore& operator=(const CompressedPageStore&) = delete;

    // Stores a copy of `page` at `index`, replacing what was there. Fails with out_of_range,
    // memory_limit or out_of_memory; on failure the index keeps its previous page.
    // A store with a reclaimer that would pass the limit reclaims directly and tries again.
    Status store(std::size_t index, page_view page) noexcept {
        if (index >= table_.capacity()) return errc::out_of_range;
        Result<PageRecord> next = encoder_.encode(page, static_cast<OwnerId>(index), true);
        if constexpr (reclaims) {
            for (int attempt = 0; !next && next.error() == errc::memory_limit && attempt < direct_attempts &&
                                  reclaimer_ && reclaimer_->reclaim_direct();
                 ++attempt)
                next = encoder_.encode(page, static_cast<OwnerId>(index), true);
        }
        if (!next) return fail_write(next.error());
        publish(index, *next);
        if constexpr (reclaims) {
            if (reclaimer_) reclaimer_->after_store(budget_.used(), budget_.limit());
        }
        return errc::ok;
    }

    // Makes every codec stream a load from memory can take now, so that no such load allocates,
    // not even a thread's first (a compressed region serving faults in the faulting thread's
    // signal handler asks for this). A load from a backing store may still allocate its read
    // buffer on a thread's first. Throws std::bad_alloc, or what a codec throws. Any thread.
    void prepare_load_streams() {
        encoder_.prepare_decode_streams();
        if constexpr (recompresses) recompressor_.prepare_load_streams();
    }

    // Copies the page at `index` into `page`; an index never stored (or erased) reads as zeros,
    // as a zram block does. Fails with out_of_range, or corrupt_data when the stored bytes do not
    // decode to a page (then `page` is zeroed).
    Status load(std::size_t index, page_buffer page) noexcept {
        if (index >= table_.capacity()) return errc::out_of_range;
        [[maybe_unused]] unsigned secondary_codec = 0;
        for (;;) {
            // The stream before the entry lock: see the lock order at the top of this file.
            typename encoder_type::DecodeStream stream = encoder_.decode_stream();
            if (!stream) return fail_read(errc::out_of_memory, page);
            PageRecord r;
            Status status = errc::ok;
            {
                LockedPage entry = table_.lock(index);
                r = entry.get();
                if constexpr (recompresses) {
                    secondary_codec = r.codec();
                    if (secondary_codec != 0) break;  // its codec's own stream comes first
                }
                touch(entry);
                if (!r.stored()) {
                    std::memset(page.data(), 0, page_size);
                } else if (r.has(PageFlag::same)) {
                    detail::fill_words(page, r.word);
                } else if (!is_written_back(r)) {
                    status = encoder_.decode(r, page, stream.context());
                }
            }
            if constexpr (writes_back) {
                // Read with no entry lock held; a record replaced meanwhile means starting over.
                if (is_written_back(r) &&
                    engine_.read_back(index, r, page, stream.context(), status) == engine_type::ReadBack::changed)
                    continue;
            }
            if (!status) return fail_read(status.error(), page);
            counters_.add(Counter::num_reads, 1);
            return status;
        }
        if constexpr (recompresses) {
            const std::optional<Status> loaded = recompressor_.load(index, secondary_codec, page);
            if (!loaded) return load(index, page);  // stored over meanwhile: start over
            if (!*loaded) return fail_read(loaded->error(), page);
            counters_.add(Counter::num_reads, 1);
        }
        return errc::ok;
    }

    // Drops the page at `index` (zram's discard); the index then reads as zeros. Fails only with
    // out_of_range.
    Status erase(std::size_t index) noexcept {
        if (index >= table_.capacity()) return errc::out_of_range;
        publish(index, PageRecord{});
        return errc::ok;
    }

    // Whether `index` holds a stored page (false for out-of-range indices).
    [[nodiscard]] bool contains(std::size_t index) const noexcept {
        return index < table_.capacity() && table_.lock(index).get().stored();
    }

    // What the entry of `index` says now (zram's block_state): its flags, stored size and access
    // time. Out-of-range indices read as never stored. Any thread.
    [[nodiscard]] PageState state(std::size_t index) const noexcept {
        if (index >= table_.capacity()) return {};
        const LockedPage entry = table_.lock(index);
        return PageState{entry.get(), entry.access_time()};
    }

    // Marks every page held in memory idle (zram: echo all > idle); a store or load of a page
    // clears its mark. Same-filled pages (no memory) and written-back ones are left as they are.
    // Returns the pages marked. Any thread; stores and loads go on meanwhile (each entry is
    // locked on its own, for a few nanoseconds).
    std::size_t mark_idle() noexcept {
        return mark_idle_if([](const LockedPage&) noexcept { return true; });
    }

    // Marks idle the pages in memory not stored or loaded for at least `age` (zram: echo N > idle).
    // Needs a writeback policy that tracks access times. Returns the pages marked. Any thread.
    std::size_t mark_idle(std::chrono::seconds age) noexcept
        requires(writeback_type::tracks_access_time)
    {
        const auto now = static_cast<std::int64_t>(detail::now_seconds());
        return mark_idle_if([&](const LockedPage& entry) noexcept {
            return now - static_cast<std::int64_t>(entry.access_time()) >= age.count();
        });
    }

    // Moves compressed pages out of sparse spans and returns freed pages to the OS (zram's
    // compact). Returns what it freed and moved; stores and loads may run meanwhile.
    CompactionResult compact() noexcept {
        Owners owners{*this};
        return allocator_.compact(owners);
    }

    // ---- writeback (stores whose policy writes back) ----

    // Writes the pages `request` selects to the backing store, in batches (zram: echo idle >
    // writeback, and its other types). Pages a store or load races with stay as the store left
    // them. Stops at the writeback limit or at an error of the backing store (the pages of the
    // failed batch stay in memory; result.status says why). Any thread; one batch at a time.
    WritebackResult writeback(const WritebackRequest& request = {}) noexcept
        requires(writes_back)
    {
        return engine_.writeback(request);
    }

    // The writeback limit, in 4 KiB units written (zram's writeback_limit), and whether it
    // applies (writeback_limit_enable). A balanced() reclaimer refills it daily. Any thread.
    void set_writeback_limit(std::uint64_t blocks) noexcept
        requires(writes_back)
    {
        engine_.set_limit(blocks);
    }
    void enable_writeback_limit(bool on) noexcept
        requires(writes_back)
    {
        engine_.enable_limit(on);
    }

    // This store's writeback figures; bd_stat() gives its backing store's (shared by every store
    // that writes to it); reclaim_stats() its reclaimer's (zeros without one). Any thread.
    [[nodiscard]] WritebackStats writeback_stats() const noexcept
        requires(writes_back)
    {
        return engine_.stats();
    }
    [[nodiscard]] BackingStats bd_stat() const noexcept
        requires(writes_back)
    {
        return engine_.backing().stats();
    }
    [[nodiscard]] ReclaimStats reclaim_stats() const noexcept
        requires(reclaims)
    {
        return reclaimer_ ? reclaimer_->stats() : ReclaimStats{};
    }

    // ---- recompression (stores with secondary codecs) ----

    // Recompresses the pages `request` selects with one of the secondary codecs, alone or in
    // units of neighbouring pages (zram: echo "type=idle algo=zstd" > recompress; recompress.hpp
    // says what each field does). Pages a store or erase races with stay as the store left them.
    // Compacts as it goes (every few MiB freed, and at the end), so that the holes the old
    // objects leave go back. Stops at max_pages, or when memory for a new object cannot be had
    // even after compacting (result.status: an old object is freed only after its replacement is
    // made, so each window needs room under the limit; nothing is lost). Any thread; one call at
    // a time.
    RecompressResult recompress(const RecompressRequest& request) noexcept
        requires(recompresses)
    {
        return recompressor_.recompress(request);
    }

    [[nodiscard]] RecompressStats recompress_stats() const noexcept
        requires(recompresses)
    {
        return recompressor_.stats();
    }

    // A snapshot of the counters; see Stats for each field.
    [[nodiscard]] Stats stats() const noexcept {
        Stats s;
        s.orig_data_size = counters_.sum(Counter::pages_stored) * page_size;
        s.compr_data_size = counters_.sum(Counter::compr_bytes);
        s.mem_used_total = budget_.used();
        s.mem_limit = budget_.limit();
        s.mem_used_max = budget_.max_used();
        s.same_pages = counters_.sum(Counter::same_pages);
        s.pages_compacted = allocator_.stats().pages_compacted;
        s.huge_pages = counters_.sum(Counter::huge_pages);
        s.huge_pages_since = counters_.sum(Counter::huge_pages_since);
        s.num_reads = counters_.sum(Counter::num_reads);
        s.num_writes = counters_.sum(Counter::num_writes);
        s.failed_reads = counters_.sum(Counter::failed_reads);
        s.failed_writes = counters_.sum(Counter::failed_writes);
        return s;
    }

    // Checks the store's books: recounts what the page table holds (pages, same-filled, huge,
    // compressed bytes, pages on the backing store, objects in the allocator) and compares it with
    // what stats(), writeback_stats() and the allocator say, and that no entry is left marked as
    // being written back or recompressed. Returns "" when all agree, else one line per figure
    // that does not, with both values. Exact when no other thread changes the store meanwhile
    // (each entry is locked on its own, as in mark_idle's walk); for tests, fuzzing and after a
    // fault, not for the store path. May throw std::bad_alloc (the report).
    [[nodiscard]] std::string validate() const {
        std::uint64_t pages = 0, same = 0, huge = 0, compr = 0, written_back = 0, objects = 0, in_flight = 0;
        walk(0, table_.capacity(), [&](std::size_t, LockedPage& entry) noexcept {
            const PageRecord r = entry.get();
            in_flight += r.has(PageFlag::under_writeback) || r.has(PageFlag::under_recompression);
            if (!r.stored()) return;
            ++pages;
            if (r.has(PageFlag::same)) {
                ++same;
            } else if (r.has(PageFlag::written_back)) {
                ++written_back;
            } else {
                compr += r.size();
                huge += r.has(PageFlag::huge);
                objects += !r.has(PageFlag::grouped);
            }
        });
        const Stats s = stats();
        const AllocatorStats a = allocator_.stats();
        std::string problems;
        const auto expect = [&](const char* what, std::uint64_t counted, std::uint64_t reported) {
            if (counted != reported)
                problems += std::string(what) + ": the page table holds " + std::to_string(counted) + ", the books say " +
                            std::to_string(reported) + "\n";
        };
        expect("orig_data_size", pages * page_size, s.orig_data_size);
        expect("same_pages", same, s.same_pages);
        expect("huge_pages", huge, s.huge_pages);
        expect("compr_data_size", compr, s.compr_data_size);
        expect("entries being written back or recompressed", in_flight, 0);
        if constexpr (writes_back) expect("written_back_pages", written_back, engine_.stats().written_back_pages);
        if constexpr (recompresses) {
            // Units of grouped pages are allocator objects of their own, counted by no entry.
            if (a.objects < objects) expect("allocator objects (at least)", objects, a.objects);
        } else {
            expect("allocator objects", objects, a.objects);
            // Everything a store without units charges: its table and its allocator.
            expect("mem_used_total", table_.memory_bytes() + a.total_bytes(), s.mem_used_total);
        }
        return problems;
    }

    // Caps this store's mem_used_total; 0 removes the cap. A shared budget's own limit still
    // applies, and other stores under it keep theirs. Pages already stored stay; stores that would
    // need more memory fail with memory_limit until usage drops.
    void set_mem_limit(std::size_t bytes) noexcept { budget_.set_limit(bytes); }
    // True when mem_used_total is under `permille` of this store's limit and of every enclosing
    // budget's (or there is none); cheaper than stats(), for callers deciding whether to keep
    // memory they could do without.
    [[nodiscard]] bool mem_used_below_permille(unsigned permille) const noexcept {
        return budget_.below_permille(permille);
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return table_.capacity(); }
    [[nodiscard]] std::size_t huge_threshold() const noexcept { return encoder_.huge_threshold(); }
    [[nodiscard]] const compressor_type& compressor() const noexcept { return encoder_.codec(); }
    [[nodiscard]] const allocator_type& allocator() const noexcept { return allocator_; }

private:
    // The page table as the allocator's ObjectOwners: an object moves only under its entry's
    // lock, and only while the entry still holds it (a store may be replacing it right now).
    struct Owners {
        CompressedPageStore& store;

        template <class Copy>
        bool relocate(OwnerId index, ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
            if constexpr (recompresses) {
                if (index >= store.recompressor_.owner_base()) return store.recompressor_.relocate(index, from, to, copy);
            }
            LockedPage entry = store.table_.lock(index);
            const PageRecord r = entry.get();
            if (!holds_object(r) || r.word != static_cast<std::uint64_t>(from)) return false;
            copy();
            entry.set(PageRecord{static_cast<std::uint64_t>(to), r.meta});
            return true;
        }
    };

    // Held in memory: an object of its own, or a share of a unit (not a fill word, which takes no
    // memory, or a record on the backing store).
    static bool in_memory(const PageRecord& r) noexcept {
        return r.stored() && !r.has(PageFlag::same) && !r.has(PageFlag::written_back);
    }
    // An object of its own in the allocator (not a unit shared with its neighbours).
    static bool holds_object(const PageRecord& r) noexcept { return in_memory(r) && !r.has(PageFlag::grouped); }

    enum class Counter : std::uint8_t {
        pages_stored, compr_bytes, same_pages, huge_pages, huge_pages_since,
        num_reads, num_writes, failed_reads, failed_writes, count
    };

    // What the reclaimer is asked to do must be what this store can: writeback by age or under a
    // daily budget needs a writeback policy, recompression a secondary codec of that id.
    static void check_reclaim(const ReclaimConfig& reclaim) {
        if (!writes_back && (reclaim.idle_age.count() != 0 || reclaim.daily_writeback_blocks != 0))
            throw std::invalid_argument(
                "zpage::StoreConfig: idle_age and daily_writeback_blocks write back, which needs a writeback policy");
        if (!recompresses && reclaim.recompress_age.count() != 0)
            throw std::invalid_argument("zpage::StoreConfig: recompress_age needs secondary codecs");
        if (recompresses &&
            (reclaim.recompress_codec == 0 || reclaim.recompress_codec > std::tuple_size_v<secondary_codecs_type>))
            throw std::invalid_argument("zpage::StoreConfig: recompress_codec must name one of the traits' secondary "
                                        "codecs (1.." + std::to_string(std::tuple_size_v<secondary_codecs_type>) + ")");
    }

    static const StoreConfig& checked(const StoreConfig& config) {
        config.validate(page_size);
        return config;
    }

    static AllocatorConfig allocator_config(const StoreConfig& config, MemoryBudget& budget) {
        AllocatorConfig a;
        a.budget = &budget;
        a.pool = config.page_pool;
        return a;
    }

    Status fail_write(errc code) noexcept {
        counters_.add(Counter::failed_writes, 1);
        return code;
    }

    // Net changes of one operation, applied in one go: an overwrite of a page by one like it
    // touches two counters, not ten.
    struct Deltas {
        std::int64_t pages = 0, compr = 0, same = 0, huge = 0, writes = 0, huge_since = 0;

        void count(const PageRecord& r, std::int64_t sign) noexcept {
            if (!r.stored()) return;
            pages += sign;
            if (r.has(PageFlag::same)) {
                same += sign;
            } else if (!r.has(PageFlag::written_back)) {  // on the backing store: no memory
                compr += sign * static_cast<std::int64_t>(r.size());
                huge += r.has(PageFlag::huge) ? sign : 0;
            }
        }
    };

    void apply(const Deltas& d) noexcept {
        auto add = [&](Counter c, std::int64_t delta) {
            if (delta != 0) counters_.add(c, delta);
        };
        add(Counter::pages_stored, d.pages);
        add(Counter::compr_bytes, d.compr);
        add(Counter::same_pages, d.same);
        add(Counter::huge_pages, d.huge);
        add(Counter::num_writes, d.writes);
        add(Counter::huge_pages_since, d.huge_since);
    }

    // Makes `next` the entry of `index` (an empty record erases it) and frees what it held. A
    // store or erase always wins over a writeback in flight: `next` carries no under_writeback
    // flag, which tells the writeback its page is gone.
    void publish(std::size_t index, const PageRecord& next) noexcept {
        PageRecord previous;
        {
            LockedPage entry = table_.lock(index);
            previous = entry.get();
            entry.set(next);
            if (next.stored()) stamp(entry);
        }
        free_object(previous);
        Deltas d;
        d.count(next, +1);
        d.count(previous, -1);
        if (next.stored()) {
            d.writes = 1;
            d.huge_since = next.has(PageFlag::huge);
        }
        apply(d);
    }

    // Calls visit(index, entry) for each index in [first, last), each under its own lock: a walk
    // that never stops stores or loads for more than one entry.
    template <class Visit>
    void walk(std::size_t first, std::size_t last, Visit&& visit) const noexcept {
        for (std::size_t index = first; index < last; ++index) {
            LockedPage entry = table_.lock(index);
            visit(index, entry);
        }
    }

    template <class Older>
    std::size_t mark_idle_if(Older&& older) noexcept {
        std::size_t marked = 0;
        walk(0, table_.capacity(), [&](std::size_t, LockedPage& entry) noexcept {
            const PageRecord r = entry.get();
            if (!in_memory(r) || r.has(PageFlag::idle) || !older(entry)) return;
            entry.set_flag(PageFlag::idle);
            ++marked;
        });
        return marked;
    }

    // An access: the page is no longer idle, and its access time is now when the policy keeps it.
    void touch(LockedPage& entry) const noexcept {
        entry.clear_flag(PageFlag::idle);
        stamp(entry);
    }
    static void stamp(LockedPage& entry) noexcept {
        if constexpr (writeback_type::tracks_access_time) entry.set_access_time(detail::now_seconds());
    }

    // Frees what a record held: its object, or its record on the backing store. Under no entry
    // lock (see the lock order).
    void free_object(const PageRecord& r) noexcept {
        if (holds_object(r)) {
            allocator_.deallocate(ObjectHandle{r.word});
        } else if (r.has(PageFlag::grouped)) {
            if constexpr (recompresses) recompressor_.release_unit(r.word);
        } else if (is_written_back(r)) {
            if constexpr (writes_back) engine_.release(r);
        }
    }

    // Whether `r` is on the backing store; always false, at compile time, without writeback.
    static bool is_written_back(const PageRecord& r) noexcept {
        if constexpr (writes_back) {
            return r.has(PageFlag::written_back);
        } else {
            return false;
        }
    }

    // A failed load leaves zeros in the caller's page, never stale or partial bytes.
    Status fail_read(errc code, page_buffer page) noexcept {
        std::memset(page.data(), 0, page_size);
        counters_.add(Counter::failed_reads, 1);
        return code;
    }

    MemoryBudget budget_;  // the store's own account, inside config.budget when one is shared
    page_table_type table_;
    allocator_type allocator_;
    encoder_type encoder_;
    [[no_unique_address]] recompressor_type recompressor_;  // after the allocator: its units go first
    [[no_unique_address]] engine_type engine_;  // after the table and allocator: destroyed first
    // Last: its thread uses everything above, and stops before any of it goes. Null without one.
    [[no_unique_address]] std::conditional_t<reclaims, std::unique_ptr<detail::Reclaimer<CompressedPageStore>>,
                                             detail::Absent> reclaimer_;
    detail::StripedCounters<Counter> counters_;
};

}  // namespace zpage
