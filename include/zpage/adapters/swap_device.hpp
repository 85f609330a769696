// zpage: SwapDevice, the swap-like adapter: a CompressedPageStore used as one program's own swap
// device, with the kernel's slot allocation, readahead and swap cache.
//
//   zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = n, .mem_limit_bytes = budget});
//   zpage::SwapDevice<zpage::Lz4Store> swap(store);
//   zpage::Result<zpage::SwapSlot> slot = swap.swap_out(page);   // the page goes, compressed
//   ...
//   if (!swap.swap_in(*slot, page)) ...;                         // and comes back
//   swap.free(*slot);
//
// Slots are the store's page indices, handed out as the kernel's swap_map does since its cluster
// allocator: the slots are cut into clusters, and each thread (by stripe) fills a cluster of its
// own from its start, so that pages swapped out together sit together and a readahead window holds
// neighbours in time. A thread whose cluster is full takes an empty one, else one with room.
//
// A swap-in that misses the swap cache loads its slot and then reads ahead, into the swap cache,
// the other slots in use of the aligned window of up to 2^page_cluster slots around it (the
// kernel's swap_cluster_readahead and vm.page-cluster). The window adapts as the kernel's does:
// it grows with the readahead pages that were used since the last window, shrinks (at most by
// half per miss) when none were, and stays at one page for swap-ins that are neither a hit nor a
// neighbour of the last. The swap cache is a fixed array of pages, made at construction (a
// swap-in allocates nothing), indexed by slot: a swap-in it serves takes the page out of it.
//
// A slot's state word holds its state and a generation that changes with every state change: a
// page read ahead is kept with the word it was read under, and served only while the slot still
// has that word, so a page freed, reused and swapped out again meanwhile is never served stale.
//
// Thread safety: any thread, any time. A slot belongs to whoever swapped it out until freed; a
// swap-in or free of a slot not in use (never handed out, freed already, or being freed by another
// thread) fails with invalid_argument and changes nothing. Locks: a stripe's lock, then the
// clusters' lock (leaf); a swap-cache page's lock, under which the store is loaded (the store's
// own locks come after it, store.hpp); the store is never called under a stripe or cluster lock.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/atomic_counters.hpp"
#include "../detail/spin_mutex.hpp"
#include "../detail/thread_index.hpp"
#include "../errc.hpp"
#include "../stats.hpp"

namespace zpage {

// A slot of a SwapDevice: the store index its page is kept at.
struct SwapSlot {
    std::uint32_t index = 0;
    friend bool operator==(SwapSlot, SwapSlot) = default;
};

struct SwapConfig {
    // Readahead: a swap-in that misses the swap cache reads up to 2^page_cluster slots of the
    // aligned window around it (the kernel's vm.page-cluster, whose default is 3); 0: none, the
    // setting for random access.
    unsigned page_cluster = 3;
    // Pages the swap cache holds (made at construction): at least 2^page_cluster.
    std::size_t swap_cache_pages = 256;
    // Slots per cluster (the kernel's SWAPFILE_CLUSTER is 512); a power of two.
    std::size_t cluster_slots = 256;

    static constexpr unsigned max_page_cluster = 10;

    // Throws std::invalid_argument naming the field at fault.
    void validate() const {
        if (page_cluster > max_page_cluster)
            throw std::invalid_argument("zpage::SwapConfig: page_cluster must be at most " +
                                        std::to_string(max_page_cluster));
        if (swap_cache_pages < (std::size_t{1} << page_cluster))
            throw std::invalid_argument("zpage::SwapConfig: swap_cache_pages must be at least 2^page_cluster (" +
                                        std::to_string(std::size_t{1} << page_cluster) + ")");
        if (cluster_slots == 0 || !std::has_single_bit(cluster_slots))
            throw std::invalid_argument("zpage::SwapConfig: cluster_slots must be a power of two");
    }
};

// A swap device's figures, with /proc/vmstat's names where the kernel has one.
struct SwapStats {
    std::uint64_t pswpout = 0;            // pages swapped out (stored), since construction
    std::uint64_t pswpin = 0;             // pages read from the store: swap-ins and readahead
    std::uint64_t swap_ra = 0;            // of those, pages read ahead into the swap cache
    std::uint64_t swap_ra_hit = 0;        // swap-ins served by the swap cache (a page read ahead)
    std::uint64_t swap_cache_misses = 0;  // swap-ins the swap cache could not serve
    std::uint64_t failed_swap_outs = 0;   // swap-outs refused (no slot, the store's limit or memory)
    std::uint64_t slots_total = 0;        // the device's slots (SwapTotal, in pages)
    std::uint64_t slots_used = 0;         // slots in use now (SwapTotal - SwapFree, in pages)

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("pswpout"), &SwapStats::pswpout, StatUnit::pages);
        f(std::string_view("pswpin"), &SwapStats::pswpin, StatUnit::pages);
        f(std::string_view("swap_ra"), &SwapStats::swap_ra, StatUnit::pages);
        f(std::string_view("swap_ra_hit"), &SwapStats::swap_ra_hit, StatUnit::pages);
        f(std::string_view("swap_cache_misses"), &SwapStats::swap_cache_misses, StatUnit::count);
        f(std::string_view("failed_swap_outs"), &SwapStats::failed_swap_outs, StatUnit::count);
        f(std::string_view("slots_total"), &SwapStats::slots_total, StatUnit::pages);
        f(std::string_view("slots_used"), &SwapStats::slots_used, StatUnit::pages);
    }
    friend bool operator==(const SwapStats&, const SwapStats&) = default;
};

template <class Store>
class SwapDevice {
public:
    static constexpr std::size_t page_size = Store::page_size;
    using page_view = std::span<const std::byte, page_size>;
    using page_buffer = std::span<std::byte, page_size>;

    // Slots are the store's indices, all of them: the store must hold nothing else. Throws
    // std::invalid_argument for a bad configuration, std::bad_alloc.
    explicit SwapDevice(Store& store, const SwapConfig& config = {})
        : store_(store),
          config_(checked(config)),
          slot_count_(static_cast<std::uint32_t>(std::min<std::size_t>(store.capacity(), UINT32_MAX))),
          cluster_slots_(static_cast<std::uint32_t>(config.cluster_slots)),
          slots_(std::make_unique<std::atomic<std::uint32_t>[]>(slot_count_)),
          clusters_((slot_count_ + cluster_slots_ - 1) / cluster_slots_),
          cache_(config.swap_cache_pages),
          cache_bytes_(std::make_unique<std::byte[]>(config.swap_cache_pages * page_size)) {
        // Every cluster starts on the free list, flagged as listed so that list_if_empty() never
        // adds one twice (the list's capacity is one entry per cluster).
        for (std::uint32_t c = static_cast<std::uint32_t>(clusters_.size()); c-- > 0;) {
            clusters_[c].listed = true;
            free_clusters_.push_back(c);
        }
    }

    SwapDevice(const SwapDevice&) = delete;
    SwapDevice& operator=(const SwapDevice&) = delete;

    // Stores a copy of `page` in a new slot. Fails with no_space when every slot is in use, or
    // with the store's memory_limit or out_of_memory; nothing is kept then.
    Result<SwapSlot> swap_out(page_view page) noexcept {
        const Result<std::uint32_t> slot = reserve();
        if (!slot) return fail_out(slot.error());
        if (const Status stored = store_.store(*slot, page); !stored) {
            set_state(*slot, free_slot);
            release_slot(*slot);
            return fail_out(stored.error());
        }
        set_state(*slot, in_use);
        detail::add_counter(counters_.pswpout, 1);
        return SwapSlot{*slot};
    }

    // Copies the page of `slot` into `page`: from the swap cache when it was read ahead, else from
    // the store, reading ahead its window's neighbours. The slot stays in use until freed. Fails
    // with invalid_argument for a slot not in use, or with the store's corrupt_data (then `page`
    // is zeroed).
    Status swap_in(SwapSlot slot, page_buffer page) noexcept {
        if (!in_use_now(slot)) return errc::invalid_argument;
        const std::uint32_t word = slot_word(slot.index);
        if (take_cached(slot.index, word, page)) {
            detail::add_counter(counters_.swap_ra_hit, 1);
            ra_hits_.fetch_add(1, std::memory_order_relaxed);
            return errc::ok;
        }
        detail::add_counter(counters_.swap_cache_misses, 1);
        const Status loaded = store_.load(slot.index, page);
        if (!loaded) return loaded;
        detail::add_counter(counters_.pswpin, 1);
        read_ahead(slot.index);
        return errc::ok;
    }

    // Gives the slot back: its page leaves the store and the swap cache. Fails with
    // invalid_argument for a slot not in use (a second free of it included).
    Status free(SwapSlot slot) noexcept {
        if (slot.index >= slot_count_) return errc::invalid_argument;
        std::uint32_t word = slot_word(slot.index);
        // Claimed first, so that a racing second free fails here instead of erasing a page the
        // slot's next owner stored.
        if (state_of(word) != in_use ||
            !slots_[slot.index].compare_exchange_strong(word, next_word(word, freeing), std::memory_order_acq_rel))
            return errc::invalid_argument;
        static_cast<void>(store_.erase(slot.index));
        drop_cached(slot.index);
        set_state(slot.index, free_slot);
        release_slot(slot.index);
        return errc::ok;
    }

    // Whether `slot` is in use (swapped out and not freed).
    [[nodiscard]] bool in_use_now(SwapSlot slot) const noexcept {
        return slot.index < slot_count_ && state_of(slot_word(slot.index)) == in_use;
    }

    [[nodiscard]] SwapStats stats() const noexcept {
        SwapStats s = detail::load_counters(counters_);
        s.slots_total = slot_count_;
        s.slots_used = used_.load(std::memory_order_relaxed);
        return s;
    }

    [[nodiscard]] const SwapConfig& config() const noexcept { return config_; }
    [[nodiscard]] Store& store() const noexcept { return store_; }

private:
    // A slot's word: its state in the low two bits, a generation above them.
    enum : std::uint32_t { free_slot = 0, reserved = 1, in_use = 2, freeing = 3 };
    static std::uint32_t state_of(std::uint32_t word) noexcept { return word & 3u; }
    static std::uint32_t next_word(std::uint32_t word, std::uint32_t state) noexcept {
        return ((word & ~3u) + 4u) | state;
    }

    struct Cluster {
        std::uint32_t used = 0;  // slots reserved or in use; under the clusters' lock
        bool owned = false;      // a stripe fills it; under the clusters' lock
        bool listed = false;     // on the free list (empty and unowned); under the clusters' lock
    };

    struct alignas(64) Stripe {
        detail::SpinMutex lock{"swap slot stripe"};
        std::uint32_t cluster = none;  // the cluster this stripe fills, or none
        std::uint32_t next = 0;        // where its next slot is looked for
    };

    struct alignas(64) CachedPage {
        detail::SpinMutex lock{"swap cache page"};
        std::uint32_t slot = 0;
        std::uint32_t word = 0;  // the slot's word it was read under
        bool valid = false;
    };

    static constexpr std::uint32_t none = UINT32_MAX;
    static constexpr std::size_t stripe_count = 8;

    static const SwapConfig& checked(const SwapConfig& config) {
        config.validate();
        return config;
    }

    std::uint32_t slot_word(std::uint32_t slot) const noexcept { return slots_[slot].load(std::memory_order_acquire); }

    // Moves a slot this thread holds (reserved or being freed: no other thread changes it) to
    // `state`, with a new generation.
    void set_state(std::uint32_t slot, std::uint32_t state) noexcept {
        const std::uint32_t word = slots_[slot].load(std::memory_order_relaxed);
        slots_[slot].store(next_word(word, state), std::memory_order_release);
    }

    Result<SwapSlot> fail_out(errc code) noexcept {
        detail::add_counter(counters_.failed_swap_outs, 1);
        return code;
    }

    // ---- slots ----

    // A free slot, reserved for the caller: from its stripe's cluster, else a new cluster for it.
    Result<std::uint32_t> reserve() noexcept {
        Stripe& stripe = stripes_[detail::this_thread_index() % stripe_count];
        std::lock_guard guard(stripe.lock);
        for (;;) {
            if (stripe.cluster != none) {
                const std::uint32_t end = std::min(slot_count_, (stripe.cluster + 1) * cluster_slots_);
                for (std::uint32_t slot = stripe.next; slot < end; ++slot) {
                    std::uint32_t word = slots_[slot].load(std::memory_order_relaxed);
                    if (state_of(word) != free_slot ||
                        !slots_[slot].compare_exchange_strong(word, next_word(word, reserved), std::memory_order_acq_rel))
                        continue;
                    stripe.next = slot + 1;
                    taken(stripe.cluster);
                    return slot;
                }
                let_go(stripe.cluster);
                stripe.cluster = none;
            }
            const std::uint32_t cluster = take_cluster();
            if (cluster == none) return errc::no_space;
            stripe.cluster = cluster;
            stripe.next = cluster * cluster_slots_;
        }
    }

    // An empty cluster, else one with a free slot that no stripe fills; none when every slot is
    // taken. Stripe lock held.
    std::uint32_t take_cluster() noexcept {
        std::lock_guard guard(clusters_lock_);
        while (!free_clusters_.empty()) {
            const std::uint32_t c = free_clusters_.back();
            free_clusters_.pop_back();
            clusters_[c].listed = false;
            if (clusters_[c].owned) continue;
            clusters_[c].owned = true;
            return c;
        }
        for (std::size_t looked = 0; looked < clusters_.size(); ++looked) {
            const std::uint32_t c = scan_cursor_;
            scan_cursor_ = (scan_cursor_ + 1) % static_cast<std::uint32_t>(clusters_.size());
            if (clusters_[c].owned || clusters_[c].used >= slots_in(c)) continue;
            clusters_[c].owned = true;
            return c;
        }
        return none;
    }

    std::uint32_t slots_in(std::uint32_t cluster) const noexcept {
        return std::min(slot_count_, (cluster + 1) * cluster_slots_) - cluster * cluster_slots_;
    }

    void taken(std::uint32_t cluster) noexcept {
        std::lock_guard guard(clusters_lock_);
        ++clusters_[cluster].used;
        used_.fetch_add(1, std::memory_order_relaxed);
    }

    // A stripe stops filling `cluster`; one left empty goes back on the free list.
    void let_go(std::uint32_t cluster) noexcept {
        std::lock_guard guard(clusters_lock_);
        clusters_[cluster].owned = false;
        list_if_empty(cluster);
    }

    void release_slot(std::uint32_t slot) noexcept {
        const std::uint32_t cluster = slot / cluster_slots_;
        std::lock_guard guard(clusters_lock_);
        --clusters_[cluster].used;
        used_.fetch_sub(1, std::memory_order_relaxed);
        list_if_empty(cluster);
    }

    // Clusters' lock held. The free list has room for every cluster (reserved at construction).
    void list_if_empty(std::uint32_t cluster) noexcept {
        Cluster& c = clusters_[cluster];
        if (c.used != 0 || c.owned || c.listed) return;
        c.listed = true;
        free_clusters_.push_back(cluster);
    }

    // ---- the swap cache and readahead ----

    CachedPage& cached(std::uint32_t slot) noexcept { return cache_[slot % cache_.size()]; }
    std::byte* cached_bytes(std::uint32_t slot) noexcept {
        return cache_bytes_.get() + (slot % cache_.size()) * page_size;
    }

    // Serves `slot` from the swap cache if its page was read ahead under `word`, taking it out.
    bool take_cached(std::uint32_t slot, std::uint32_t word, page_buffer page) noexcept {
        CachedPage& entry = cached(slot);
        std::lock_guard guard(entry.lock);
        if (!entry.valid || entry.slot != slot || entry.word != word) return false;
        std::memcpy(page.data(), cached_bytes(slot), page_size);
        entry.valid = false;
        return true;
    }

    void drop_cached(std::uint32_t slot) noexcept {
        CachedPage& entry = cached(slot);
        std::lock_guard guard(entry.lock);
        if (entry.slot == slot) entry.valid = false;
    }

    // The kernel's swapin_nr_pages: the readahead pages used since the last window decide the
    // next one's size (a power of two up to 2^page_cluster), which shrinks by at most half at a
    // time; with none used, only a swap-in next to the last one reads ahead.
    std::uint32_t window_for(std::uint32_t slot) noexcept {
        const std::uint32_t max_pages = 1u << config_.page_cluster;
        if (max_pages <= 1) return 1;
        const std::uint32_t hits = ra_hits_.exchange(0, std::memory_order_relaxed);
        const std::uint32_t previous = ra_prev_slot_.exchange(slot, std::memory_order_relaxed);
        std::uint32_t pages = hits + 2;
        if (pages == 2) {
            if (slot != previous + 1 && slot + 1 != previous) pages = 1;
        } else {
            pages = std::max(4u, std::bit_ceil(pages));
        }
        pages = std::min(pages, max_pages);
        pages = std::max(pages, ra_window_.load(std::memory_order_relaxed) / 2);
        ra_window_.store(pages, std::memory_order_relaxed);
        return pages;
    }

    // Reads the other slots in use of `slot`'s window into the swap cache; a cached page busy
    // with another thread is passed over.
    void read_ahead(std::uint32_t slot) noexcept {
        const std::uint32_t window = std::bit_floor(window_for(slot));
        if (window <= 1) return;
        const std::uint32_t first = slot & ~(window - 1);
        const std::uint32_t end = std::min(slot_count_, first + window);
        for (std::uint32_t neighbour = first; neighbour < end; ++neighbour) {
            if (neighbour == slot) continue;
            const std::uint32_t word = slot_word(neighbour);
            if (state_of(word) != in_use) continue;
            CachedPage& entry = cached(neighbour);
            std::unique_lock guard(entry.lock, std::try_to_lock);
            if (!guard.owns_lock()) continue;
            if (entry.valid && entry.slot == neighbour && entry.word == word) continue;
            entry.valid = false;
            const page_buffer into(cached_bytes(neighbour), page_size);
            if (!store_.load(neighbour, into)) continue;
            detail::add_counter(counters_.pswpin, 1);
            // Kept only if the slot was not freed (and perhaps reused) while it was read.
            if (slot_word(neighbour) != word) continue;
            entry.slot = neighbour;
            entry.word = word;
            entry.valid = true;
            detail::add_counter(counters_.swap_ra, 1);
        }
    }

    Store& store_;
    const SwapConfig config_;
    const std::uint32_t slot_count_;
    const std::uint32_t cluster_slots_;
    std::unique_ptr<std::atomic<std::uint32_t>[]> slots_;  // each slot's word
    std::array<Stripe, stripe_count> stripes_{};
    detail::SpinMutex clusters_lock_{"swap clusters"};
    std::vector<Cluster> clusters_;
    std::vector<std::uint32_t> free_clusters_ = reserved_list(clusters_.size());
    std::uint32_t scan_cursor_ = 0;
    std::atomic<std::uint64_t> used_{0};
    std::vector<CachedPage> cache_;
    std::unique_ptr<std::byte[]> cache_bytes_;
    std::atomic<std::uint32_t> ra_hits_{0}, ra_prev_slot_{none}, ra_window_{0};
    SwapStats counters_{};  // every access through std::atomic_ref

    static std::vector<std::uint32_t> reserved_list(std::size_t n) {
        std::vector<std::uint32_t> list;
        list.reserve(n);
        return list;
    }
};

}  // namespace zpage
