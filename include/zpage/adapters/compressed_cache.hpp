// zpage: CompressedCache, a key-value cache whose values live compressed in a size-class
// allocator, under a capacity in bytes of memory actually used, with eviction as a policy.
//
// Values of 1 B .. max_item_bytes (1 MiB unless the traits say otherwise) take the store's write
// path (detail::Encoder: compressed into a stream's scratch, kept raw when the codec does not
// shrink them). What fits the allocator's largest object is one object; what does not is a
// LargeObject (pieces of the largest object plus a tail). So a value costs its compressed bytes
// rounded to its size class (under 16 B up to 4 KiB), and a large one 8 B per 4 KiB piece more.
//
// Capacity: every byte the cache holds is charged to one MemoryBudget (limit capacity_bytes,
// optionally inside a parent): span pages and allocator metadata (the allocator charges them),
// index nodes and bucket arrays (counted exactly through the index's allocator, reserved before
// an insert), the key's heap bytes (estimated), large objects' piece arrays and the ghost tables
// (sized at construction). A set evicts from its own shard until its charges fit; a set that still
// cannot fit (its shard empty, or a value whose footprint exceeds the capacity) returns
// memory_limit having dropped only the victims it evicted. Costs, measured in
// test_compressed_cache: see README ("Compressed cache"). Not counted: the codec streams (scratch
// of 1.125 x max_item_bytes per stream, two streams per hardware thread, made on first use), as a
// store does not count them either.
//
// The allocator is shared by the shards. Evictions free objects all over its spans, and a span
// goes back (and its pages off the budget) only when its last object does: left alone, a full
// cache keeps a fifth of its span memory in free slots. So objects move: each item holding
// storage owns an id (its shard and a slot in the shard's owner table: 4 B in the item, 8 B a
// slot), through which compaction (the allocator's, under its class lock) finds the item and
// rewrites its handle, under the shard's mutex taken with try_lock (the cache's own order is the
// shard's mutex, then the class lock: a busy shard's objects simply stay). A set runs compact()
// when evictions have gone through 1/32 of the capacity since the last run and the spans are more
// than 1/16 free slots.
//
// Thread safety: every member function may be called from any thread. Lock order: a codec
// stream slot (taken before any lock), then one shard's mutex (never two), then the allocator's
// size-class locks; a backing store's own locks are leaves taken under none of these but the
// stream slot. gets take the shard mutex to find the item, update the policy and copy its stored
// bytes out (the object must not be freed meanwhile), and decode after releasing it; sets hold it
// while they allocate and evict. Shards are chosen by the high bits of the key's hash.
//
// The second tier: with Traits::writeback = Writeback<B>, an evicted item's stored bytes (as in
// memory: compressed, or raw) become a record (writeback/record.hpp: XXH3-checksummed, with the
// low 32 bits of the key's hash as its index and its length) on the backing store B, and its index
// entry stays, 16 B larger in such a cache (TierEntry), as a node and a bucket without the value
// (README: "Compressed cache"). No backing-store I/O runs under a shard's mutex: an eviction
// copies the record into its thread's batch (TierWork) and the entry is `staging`; the set writes
// the batch after releasing the mutex, retakes it and publishes the entries still in the batch
// (an erase or set in between takes an entry out, and wins: its record is freed). A get of a
// stored entry reads the record with no lock held, checks it, decodes it and retakes the mutex:
// if the entry no longer names that record it starts over, else it counts the hit and promotes
// the bytes back into memory as a fresh insert. Records longer than the backing store takes (or
// than the batch) are not written: such items are dropped on eviction, as without a tier. With
// NoWriteback every tier branch is `if constexpr` and an item has no byte more.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <malloc.h>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <xxhash.h>

#include "../allocator/concept.hpp"
#include "../allocator/large_object.hpp"
#include "../detail/encoder.hpp"
#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "../stats.hpp"
#include "../traits.hpp"
#include "../writeback/policy.hpp"
#include "../writeback/record.hpp"

namespace zpage {

// The default largest value: memcached's default item limit.
inline constexpr std::size_t default_max_item_bytes = std::size_t{1} << 20;

// XXH3-64 of a key's bytes: the bytes a contiguous range (std::string, std::vector<std::byte>)
// holds, or the object representation of a key without padding (integers, arrays of them).
template <class Key>
struct Xxh3Hash {
    [[nodiscard]] std::uint64_t operator()(const Key& key) const noexcept {
        if constexpr (requires { std::span(key); }) {
            const auto bytes = std::as_bytes(std::span(key));
            return XXH3_64bits(bytes.data(), bytes.size());
        } else {
            static_assert(std::has_unique_object_representations_v<Key>,
                          "zpage::Xxh3Hash: the key is neither a contiguous range nor padding-free; pass a Hash");
            return XXH3_64bits(&key, sizeof key);
        }
    }
};

// What an eviction policy threads through every item: its links, its counter, its queue.
struct EvictionHook {
    EvictionHook* prev = nullptr;
    EvictionHook* next = nullptr;
    std::uint64_t hash = 0;      // the key's hash, for ghost entries
    std::uint32_t bytes = 0;     // memory the item holds (storage, index node, key), for queue shares
    std::uint8_t freq = 0;       // accesses, saturating at the policy's maximum
    std::uint8_t queue = 0;      // which of the policy's queues holds it
    std::uint8_t laps = 0;       // times a size-aware policy passed it over for a larger victim
};

namespace detail {
// A FIFO of hooks, linked through them.
class HookQueue {
public:
    void push_back(EvictionHook& h) noexcept {
        h.prev = tail_;
        h.next = nullptr;
        (tail_ != nullptr ? tail_->next : head_) = &h;
        tail_ = &h;
        bytes_ += h.bytes;
        ++count_;
    }
    void remove(EvictionHook& h) noexcept {
        (h.prev != nullptr ? h.prev->next : head_) = h.next;
        (h.next != nullptr ? h.next->prev : tail_) = h.prev;
        h.prev = h.next = nullptr;
        bytes_ -= h.bytes;
        --count_;
    }
    [[nodiscard]] EvictionHook* front() const noexcept { return head_; }
    EvictionHook* pop_front() noexcept {
        EvictionHook* h = head_;
        if (h != nullptr) remove(*h);
        return h;
    }
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::size_t count() const noexcept { return count_; }
    void clear() noexcept { *this = HookQueue(); }

private:
    EvictionHook* head_ = nullptr;
    EvictionHook* tail_ = nullptr;
    std::size_t bytes_ = 0;
    std::size_t count_ = 0;
};
}  // namespace detail

// An eviction policy orders one shard's items; the shard calls it under its mutex.
template <class P>
concept EvictionPolicy = std::constructible_from<P, std::size_t> &&  // the shard's capacity in bytes
    requires(P& p, const P& cp, EvictionHook& h) {
        // A new item (hash and bytes set) enters.
        { p.on_insert(h) } noexcept;
        // A get found the item.
        { p.on_hit(h) } noexcept;
        // The item leaves (erase, replacement, clear) other than by eviction.
        { p.on_remove(h) } noexcept;
        // Unlinks and returns the next victim; nullptr when the shard holds nothing.
        { p.evict() } noexcept -> std::same_as<EvictionHook*>;
        // Memory the policy holds of its own (charged once, at construction).
        { cp.metadata_bytes() } noexcept -> std::convertible_to<std::size_t>;
    };

// S3-FIFO (Yang et al., SOSP'23): new items enter a small FIFO holding about 10% of the bytes;
// one leaving it having been read at least twice moves to the main FIFO, any other is dropped and
// its hash remembered in a ghost; a new item whose hash is in the ghost enters main directly.
// Main is a CLOCK with 2-bit counters: an item leaving it with a count is reinserted, the count
// decremented. Scans of one-hit keys thus pass through the small FIFO without evicting main.
//
// The ghost is a direct-mapped table of 32-bit fingerprints, one slot per 256 B of the shard's
// capacity (1.6% of it): a colliding remember overwrites, so it remembers at most as many hashes
// as the exact ghost of the paper (one per item in main) and lookups cost no allocation.
//
// Window > 1 makes it size-aware (SizeAwareS3Fifo): the victim is the one of the next Window
// items that would leave a queue that holds the most memory per read, bytes x (1 + laps) /
// (1 + freq); the others go to that queue's tail with their `laps` counted up, and a read sets
// laps back to 0. One passed over max_laps times goes next whatever its size, so an item never
// read outlives its FIFO turn by at most max_laps laps (a lap: the window's pass over the queue,
// Window items an eviction). Fewer bytes per item held means more items held and, when
// popularity does not grow with size, more hits (README: "Size-aware S3-FIFO").
template <std::size_t Window>
class BasicS3Fifo {
    static_assert(Window >= 1 && Window <= 64, "zpage::BasicS3Fifo: the window is 1 (S3-FIFO) .. 64 items");

public:
    static constexpr std::uint8_t max_freq = 3;
    static constexpr std::uint8_t move_to_main_freq = 2;  // reads in the small FIFO that promote
    static constexpr std::uint8_t max_laps = 64;
    static constexpr std::size_t small_share_percent = 10;
    static constexpr std::size_t capacity_bytes_per_ghost_slot = 256;

    explicit BasicS3Fifo(std::size_t capacity_bytes)
        : ghost_(std::bit_ceil(std::max<std::size_t>(64, capacity_bytes / capacity_bytes_per_ghost_slot))) {}

    void on_insert(EvictionHook& h) noexcept {
        h.freq = 0;
        h.laps = 0;
        h.queue = take_ghost(h.hash) ? main_queue : small_queue;
        queue(h.queue).push_back(h);
    }
    void on_hit(EvictionHook& h) noexcept {
        h.freq = static_cast<std::uint8_t>(std::min<int>(h.freq + 1, max_freq));
        h.laps = 0;
    }
    void on_remove(EvictionHook& h) noexcept { queue(h.queue).remove(h); }

    EvictionHook* evict() noexcept {
        for (;;) {
            const std::size_t total = small_.bytes() + main_.bytes();
            if (!small_.empty() && (main_.empty() || small_.bytes() * 100 >= total * small_share_percent)) {
                if (EvictionHook* h = choose(small_)) {
                    remember(h->hash);
                    return h;
                }
            } else if (main_.empty()) {
                return nullptr;
            } else if (EvictionHook* h = choose(main_)) {
                return h;
            }
        }
    }

    [[nodiscard]] std::size_t metadata_bytes() const noexcept { return ghost_.size() * sizeof(std::uint32_t); }

private:
    static constexpr std::uint8_t small_queue = 0;
    static constexpr std::uint8_t main_queue = 1;

    detail::HookQueue& queue(std::uint8_t q) noexcept { return q == small_queue ? small_ : main_; }

    // Walks q from its head: an item with reads moves on (from small to main once read enough, to
    // main's tail with a read taken off), the others are candidates. Unlinks and returns the
    // victim among the first Window of them; nullptr when an item moved to main before any
    // candidate was found, or none was (the caller looks again; the counts only go down).
    EvictionHook* choose(detail::HookQueue& q) noexcept {
        const bool small = &q == &small_;
        std::array<EvictionHook*, Window> candidates{};
        std::size_t n = 0;
        EvictionHook* victim = nullptr;
        for (EvictionHook* h = q.front(); h != nullptr && n < Window;) {
            EvictionHook* next = h->next;
            if (small && h->freq >= move_to_main_freq) {
                small_.remove(*h);
                h->queue = main_queue;
                main_.push_back(*h);
                if (n == 0) return nullptr;  // the shares changed: which queue gives is decided again
            } else if (!small && h->freq > 0) {
                --h->freq;
                main_.remove(*h);
                main_.push_back(*h);
            } else if (h->laps >= max_laps) {
                victim = h;
                break;
            } else {
                candidates[n++] = h;
            }
            h = next;
        }
        if (victim == nullptr) {
            if (n == 0) return nullptr;
            victim = candidates[0];
            for (std::size_t i = 1; i < n; ++i)
                if (cost_per_read(*candidates[i]) > cost_per_read(*victim)) victim = candidates[i];
            for (std::size_t i = 0; i < n && Window > 1; ++i) {
                EvictionHook* spared = candidates[i];
                if (spared == victim) continue;
                ++spared->laps;
                q.remove(*spared);
                q.push_back(*spared);
            }
        }
        q.remove(*victim);
        return victim;
    }
    // bytes x (1 + laps) / (1 + freq), as a fraction compared by cross-multiplying: under 2^42.
    struct Cost {
        std::uint64_t weighted_bytes, reads;
        friend bool operator>(Cost a, Cost b) noexcept {
            return a.weighted_bytes * b.reads > b.weighted_bytes * a.reads;
        }
    };
    static Cost cost_per_read(const EvictionHook& h) noexcept {
        return {std::uint64_t{h.bytes} * (1u + h.laps), 1u + std::uint64_t{h.freq}};
    }

    // Slot from the low bits, fingerprint from the high ones (never 0: 0 is an empty slot).
    std::uint32_t& slot(std::uint64_t hash) noexcept { return ghost_[hash & (ghost_.size() - 1)]; }
    static std::uint32_t fingerprint(std::uint64_t hash) noexcept { return static_cast<std::uint32_t>(hash >> 32) | 1; }
    void remember(std::uint64_t hash) noexcept { slot(hash) = fingerprint(hash); }
    bool take_ghost(std::uint64_t hash) noexcept {
        std::uint32_t& s = slot(hash);
        if (s != fingerprint(hash)) return false;
        s = 0;
        return true;
    }

    detail::HookQueue small_;
    detail::HookQueue main_;
    std::vector<std::uint32_t> ghost_;
};

// The paper's S3-FIFO: each queue leaves in its order.
using S3Fifo = BasicS3Fifo<1>;
// S3-FIFO that keeps small items longer: zpage-memcached's default.
using SizeAwareS3Fifo = BasicS3Fifo<16>;

// CLOCK, the usual approximation of LRU: one FIFO, a reference bit set by a hit; an item leaving
// with its bit set is reinserted with the bit cleared.
class ClockLru {
public:
    explicit ClockLru(std::size_t /*capacity_bytes*/) noexcept {}
    void on_insert(EvictionHook& h) noexcept {
        h.freq = 0;
        clock_.push_back(h);
    }
    void on_hit(EvictionHook& h) noexcept { h.freq = 1; }
    void on_remove(EvictionHook& h) noexcept { clock_.remove(h); }
    EvictionHook* evict() noexcept {
        while (EvictionHook* h = clock_.pop_front()) {
            if (h->freq == 0) return h;
            h->freq = 0;
            clock_.push_back(*h);
        }
        return nullptr;
    }
    [[nodiscard]] std::size_t metadata_bytes() const noexcept { return 0; }

private:
    detail::HookQueue clock_;
};

static_assert(EvictionPolicy<S3Fifo>);
static_assert(EvictionPolicy<SizeAwareS3Fifo>);
static_assert(EvictionPolicy<ClockLru>);

struct CacheConfig {
    // Memory the cache may hold, every byte counted (see the top of compressed_cache.hpp). Required.
    std::size_t capacity_bytes = 0;
    // Independent parts, each with its own mutex, index and policy; each gets capacity / shards.
    std::size_t shards = 8;
    // Budget the cache's account sits inside (shared with other caches or stores); nullptr: none.
    MemoryBudget* parent_budget = nullptr;
    // With a second tier: the share of each shard's capacity its index entries for values in the
    // tier may take (estimated at a node each); beyond it the tier's oldest entry goes. Without a
    // bound, evictions would turn memory into index entries until no value were left in it.
    std::size_t tier_index_percent = 25;

    // Throws std::invalid_argument naming the field.
    void validate() const {
        if (capacity_bytes == 0) throw std::invalid_argument("zpage::CacheConfig: capacity_bytes must be > 0");
        if (shards == 0 || shards > 4096)
            throw std::invalid_argument("zpage::CacheConfig: shards must be 1 .. 4096");
        if (tier_index_percent > 90) throw std::invalid_argument("zpage::CacheConfig: tier_index_percent must be 0 .. 90");
    }
};

// A cache's figures; the field list is declared once (for_each_field), as for Stats.
struct CacheStats {
    std::uint64_t hits = 0;           // gets that found their key
    std::uint64_t misses = 0;         // gets that did not
    std::uint64_t sets = 0;           // successful sets
    std::uint64_t failed_sets = 0;    // sets refused (too large, memory limit, out of memory)
    std::uint64_t evictions = 0;      // items that left memory to make room (to the tier, or dropped)
    std::uint64_t items = 0;          // items held in memory
    std::uint64_t bytes_stored = 0;   // their values' sizes, summed
    std::uint64_t bytes_compressed = 0;  // what they hold in the allocator (raw when incompressible)
    std::uint64_t index_bytes = 0;    // index nodes, bucket arrays and key heap bytes
    std::uint64_t bytes_used = 0;     // everything charged to the cache's budget
    std::uint64_t capacity_bytes = 0;
    // The second tier (a writeback policy's backing store); all 0 without one.
    std::uint64_t tier_writes = 0;          // evicted items written to it
    std::uint64_t tier_reads = 0;           // hits served from it
    std::uint64_t tier_items = 0;           // items whose value is there now (counted apart from items)
    std::uint64_t tier_bytes = 0;           // their records' bytes
    std::uint64_t tier_write_failures = 0;  // evicted items it could not take (I/O error, full, batch full): dropped
    std::uint64_t tier_read_failures = 0;   // gets it failed (I/O error, checksum): the item dropped
    std::uint64_t tier_evictions = 0;       // items dropped from it to make room

    // bytes_stored / bytes_used; 0 when empty.
    [[nodiscard]] double ratio() const noexcept {
        return bytes_used == 0 ? 0.0 : static_cast<double>(bytes_stored) / static_cast<double>(bytes_used);
    }

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("hits"), &CacheStats::hits, StatUnit::count);
        f(std::string_view("misses"), &CacheStats::misses, StatUnit::count);
        f(std::string_view("sets"), &CacheStats::sets, StatUnit::count);
        f(std::string_view("failed_sets"), &CacheStats::failed_sets, StatUnit::count);
        f(std::string_view("evictions"), &CacheStats::evictions, StatUnit::count);
        f(std::string_view("items"), &CacheStats::items, StatUnit::count);
        f(std::string_view("bytes_stored"), &CacheStats::bytes_stored, StatUnit::bytes);
        f(std::string_view("bytes_compressed"), &CacheStats::bytes_compressed, StatUnit::bytes);
        f(std::string_view("index_bytes"), &CacheStats::index_bytes, StatUnit::bytes);
        f(std::string_view("bytes_used"), &CacheStats::bytes_used, StatUnit::bytes);
        f(std::string_view("capacity_bytes"), &CacheStats::capacity_bytes, StatUnit::bytes);
        f(std::string_view("tier_writes"), &CacheStats::tier_writes, StatUnit::count);
        f(std::string_view("tier_reads"), &CacheStats::tier_reads, StatUnit::count);
        f(std::string_view("tier_items"), &CacheStats::tier_items, StatUnit::count);
        f(std::string_view("tier_bytes"), &CacheStats::tier_bytes, StatUnit::bytes);
        f(std::string_view("tier_write_failures"), &CacheStats::tier_write_failures, StatUnit::count);
        f(std::string_view("tier_read_failures"), &CacheStats::tier_read_failures, StatUnit::count);
        f(std::string_view("tier_evictions"), &CacheStats::tier_evictions, StatUnit::count);
    }
    // Adds another cache's figures (caches of one server, say).
    CacheStats& operator+=(const CacheStats& other) noexcept {
        for_each_field([&](std::string_view, auto member, StatUnit) { this->*member += other.*member; });
        return *this;
    }
    friend CacheStats operator+(CacheStats a, const CacheStats& b) noexcept { return a += b; }
    friend bool operator==(const CacheStats&, const CacheStats&) = default;
};

namespace detail {
// The index's allocator: counts the bytes malloc gives its nodes and bucket arrays, so that the
// cache charges what the index really holds.
template <class T>
struct CountingAllocator {
    using value_type = T;
    std::size_t* counter;

    explicit CountingAllocator(std::size_t* c) noexcept : counter(c) {}
    template <class U>
    CountingAllocator(const CountingAllocator<U>& other) noexcept : counter(other.counter) {}  // NOLINT

    T* allocate(std::size_t n) {
        void* p = std::malloc(n * sizeof(T));
        if (p == nullptr) throw std::bad_alloc();
        *counter += ::malloc_usable_size(p);
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) noexcept {
        *counter -= ::malloc_usable_size(p);
        std::free(p);
    }
    template <class U>
    friend bool operator==(const CountingAllocator& a, const CountingAllocator<U>& b) noexcept {
        return a.counter == b.counter;
    }
};

// Heap bytes a copy of `key` holds beyond its object (a long std::string's buffer), as malloc
// rounds them (8 B header, 16 B steps, 32 B at least).
template <class Key>
std::size_t key_heap_bytes(const Key& key) noexcept {
    if constexpr (requires { key.size(); key.data(); key.capacity(); }) {
        const auto* data = reinterpret_cast<const std::byte*>(key.data());
        const auto* self = reinterpret_cast<const std::byte*>(&key);
        if (data >= self && data < self + sizeof key) return 0;  // small-buffer: inside the node
        const std::size_t bytes = (key.size() + 1) * sizeof(*key.data()) + 8;
        return std::max<std::size_t>(32, (bytes + 15) & ~std::size_t{15});
    } else {
        return 0;
    }
}

// Where an item's value is (CompressedCache with a second tier).
enum class TierState : std::uint8_t {
    memory,   // in the allocator; in the eviction policy's queues
    staging,  // evicted, its record in the evicting thread's batch buffer, being written
    stored,   // on the backing store; in the shard's tier FIFO
};

// What the cache knows of a backing store: its type when the writeback policy names one.
template <class W, bool = W::writes_back>
struct BackingOf {
    using type = void;
};
template <class W>
struct BackingOf<W, true> {
    using type = typename W::backing_store_type;
};

// A ring of hooks around a sentinel: unlinking needs no list, so an erase can take an item out
// of the batch of whichever thread is writing it.
inline void ring_init(EvictionHook& sentinel) noexcept { sentinel.prev = sentinel.next = &sentinel; }
inline void ring_push(EvictionHook& sentinel, EvictionHook& h) noexcept {
    h.prev = sentinel.prev;
    h.next = &sentinel;
    sentinel.prev->next = &h;
    sentinel.prev = &h;
}
inline void ring_unlink(EvictionHook& h) noexcept {
    h.prev->next = h.next;
    h.next->prev = h.prev;
    h.prev = h.next = nullptr;
}
}  // namespace detail

template <class Key, class Traits = DefaultTraits, class Hash = Xxh3Hash<Key>, class Eq = std::equal_to<Key>,
          class Eviction = S3Fifo>
class CompressedCache {
    static_assert(StoreTraits<Traits>, "zpage::CompressedCache: Traits must be a traits bundle (derive from DefaultTraits)");
    static_assert(EvictionPolicy<Eviction>,
                  "zpage::CompressedCache: Eviction needs on_insert, on_hit, on_remove, evict and metadata_bytes "
                  "(see EvictionPolicy)");
    static_assert(WritebackPolicy<typename Traits::writeback>,
                  "zpage::CompressedCache: Traits::writeback must be zpage::NoWriteback or zpage::Writeback<BackingStore>");

public:
    using codec_type = typename Traits::compressor;
    using allocator_type = typename Traits::allocator;
    using large_object = LargeObject<allocator_type>;
    using writeback_type = typename Traits::writeback;
    using backing_store_type = typename detail::BackingOf<writeback_type>::type;  // void without a tier
    // Evicted items go to the writeback policy's backing store (the second tier).
    static constexpr bool has_tier = writeback_type::writes_back;
    static constexpr std::size_t max_item_bytes = [] {
        if constexpr (requires { Traits::max_item_bytes; }) {
            return std::size_t{Traits::max_item_bytes};
        } else {
            return default_max_item_bytes;
        }
    }();
    static_assert(max_item_bytes < (std::size_t{1} << 32), "zpage::CompressedCache: max_item_bytes must be < 4 GiB");

    // With a tier, `writeback` names the backing store (it must outlive the cache and may be
    // shared) and its options: bring_back_on_load promotes an item read from the tier back into
    // memory; batch_bytes bounds one set's batch of evicted records. Throws std::invalid_argument
    // for a bad config or codec, a policy without a backing store or with the `page` format
    // (the tier holds items as the cache does: compressed, or raw when incompressible);
    // std::bad_alloc.
    explicit CompressedCache(const CacheConfig& config, codec_type codec = {}, writeback_type writeback = {})
        : config_(checked(config)),
          budget_(config.parent_budget, config.capacity_bytes),
          allocator_(AllocatorConfig{.budget = &budget_}),
          encoder_(std::move(codec), allocator_, allocator_type::max_object_bytes),
          shards_(make_shards(config_)),
          tier_(make_tier(config_, writeback)) {
        std::size_t initial = 0;
        for (const auto& shard : shards_) {
            fixed_bytes_ += shard->policy.metadata_bytes() + sizeof(Shard);
            shard->charged_index_bytes = shard->index_bytes;  // the first bucket array
            initial += shard->index_bytes;
        }
        if (!budget_.try_charge(fixed_bytes_ + initial))
            throw std::invalid_argument("zpage::CacheConfig: capacity_bytes is smaller than the cache's fixed structures");
    }

    ~CompressedCache() {
        clear();
        std::size_t held = fixed_bytes_;
        for (const auto& shard : shards_) held += shard->charged_index_bytes;  // bucket arrays
        budget_.uncharge(held);
    }
    CompressedCache(const CompressedCache&) = delete;
    CompressedCache& operator=(const CompressedCache&) = delete;

    // Stores a copy of `value` (1 .. max_item_bytes) under `key`, replacing any value it had (in
    // memory or in the tier). invalid_argument for an empty or oversized value; memory_limit when
    // it cannot fit even after evicting its shard's other items (or its footprint exceeds the
    // capacity: nothing is evicted then); out_of_memory when the OS refuses. On failure the key's
    // old value, if any, is kept unless it was evicted to make room. With a tier, the items it
    // evicts are written to the backing store before it returns (after its shard's lock is
    // released). Any thread.
    Status set(const Key& key, std::span<const std::byte> value) noexcept {
        const Status s = do_set(key, value);
        if constexpr (has_tier) finish_tier_work();
        if (!s) failed_sets_.fetch_add(1, std::memory_order_relaxed);
        maybe_compact();
        return s;
    }

    // Moves objects out of sparse spans into fuller ones and gives the emptied spans' pages back
    // (off the budget). Sets run it themselves as evictions fragment the spans (see the top of
    // compressed_cache.hpp); an object whose shard is busy stays. Any thread.
    CompactionResult compact() noexcept {
        Owners owners{*this};
        return allocator_.compact(owners);
    }

    // Replaces `out`'s contents with the value stored under `key` and returns its size.
    // not_found on a miss; corrupt_data when it does not decode (the item is dropped);
    // out_of_memory when no codec stream or no room in `out` can be had. From the tier: io_error
    // when the backing store cannot read it, corrupt_data when the record fails its checksum or
    // does not decode; the item is dropped either way (the next get misses), and `out` then holds
    // no part of any value's bytes that can be trusted. `out` keeps its capacity, so a reused
    // vector makes gets allocation-free in steady state. Any thread.
    Result<std::size_t> get(const Key& key, std::vector<std::byte>& out) noexcept {
        const std::uint64_t hash = hasher_(key);
        Shard& shard = shard_of(hash);
        Result<std::size_t> result = errc::out_of_memory;
        {
            auto stream = encoder_.unit_stream(1);  // decompression context and scratch
            if (!stream) return errc::out_of_memory;
            result = lookup(shard, key, hash, out, *stream);
        }
        if constexpr (has_tier) finish_tier_work();  // a promotion's evictions, a dropped record
        return result;
    }

    // Drops `key`'s item (and its record in the tier); false when there was none. Any thread.
    bool erase(const Key& key) noexcept {
        Shard& shard = shard_of(hasher_(key));
        bool found = false;
        {
            std::lock_guard guard(shard.mutex);
            const auto it = shard.index.find(key);
            if (it != shard.index.end()) {
                drop(shard, it);
                found = true;
            }
        }
        if constexpr (has_tier) finish_tier_work();
        return found;
    }

    // Whether `key` has an item (in memory or in the tier); not counted as an access. Any thread.
    [[nodiscard]] bool contains(const Key& key) const noexcept { return value_size(key) != 0; }

    // The size of `key`'s value (in memory or in the tier); 0 when it has none. Any thread.
    [[nodiscard]] std::size_t value_size(const Key& key) const noexcept {
        const Shard& shard = shard_of(hasher_(key));
        std::lock_guard guard(shard.mutex);
        const auto it = shard.index.find(key);
        return it == shard.index.end() ? 0 : it->second.value_bytes;
    }

    // Drops every item, and frees their records in the tier. Any thread.
    void clear() noexcept {
        for (const auto& s : shards_) {
            Shard& shard = *s;
            {
                std::lock_guard guard(shard.mutex);
                while (!shard.index.empty()) drop(shard, shard.index.begin());
            }
            if constexpr (has_tier) finish_tier_work();
        }
    }

    // A snapshot (shards read one after another). Any thread.
    [[nodiscard]] CacheStats stats() const noexcept {
        CacheStats s;
        for (const auto& p : shards_) {
            const Shard& shard = *p;
            std::lock_guard guard(shard.mutex);
            s.hits += shard.hits;
            s.misses += shard.misses;
            s.sets += shard.sets;
            s.evictions += shard.evictions;
            s.items += shard.index.size();
            s.bytes_stored += shard.bytes_stored;
            s.bytes_compressed += shard.bytes_compressed;
            s.index_bytes += shard.charged_index_bytes;
            if constexpr (has_tier) {
                const TierShard& t = shard.tier;
                s.items -= t.entries;
                s.tier_writes += t.writes;
                s.tier_reads += t.reads;
                s.tier_items += t.fifo.count();
                s.tier_bytes += t.fifo.bytes();
                s.tier_write_failures += t.write_failures;
                s.tier_read_failures += t.read_failures;
                s.tier_evictions += t.evictions;
            }
        }
        s.failed_sets = failed_sets_.load(std::memory_order_relaxed);
        s.bytes_used = budget_.used();
        s.capacity_bytes = config_.capacity_bytes;
        return s;
    }

    // The cache's account: its used() is what capacity_bytes bounds. Any thread.
    [[nodiscard]] const MemoryBudget& budget() const noexcept { return budget_; }
    [[nodiscard]] const CacheConfig& config() const noexcept { return config_; }
    [[nodiscard]] AllocatorStats allocator_stats() const noexcept { return allocator_.stats(); }

private:
    struct NoTier {};
    // An item's place in the tier. 16 B per item, only in a cache with a tier.
    struct TierEntry {
        // stored: the record's location; staging: the address of its record in the batch buffer.
        BackingLocation location = 0;
        // stored: a number the shard gives each record it publishes, so that a get that read one
        // outside the lock knows the entry still names it (a location may be freed and reused);
        // staging: the record's place in its batch.
        std::uint32_t ticket = 0;
        detail::TierState state = detail::TierState::memory;
    };

    struct Item : EvictionHook {
        // A value that fits one object; its store record (PageRecord: size, huge = raw) is made
        // from the sizes below when it is decoded, 8 B less per item than keeping one.
        ObjectHandle object = ObjectHandle::null;
        large_object large;         // one that does not
        std::uint32_t value_bytes = 0;
        std::uint32_t stored_bytes = 0;  // compressed (< value_bytes), or value_bytes when raw
        OwnerId owner = unmovable_owner;  // its storage's owner id (acquire_owner), while it holds storage
        // The hook's links thread the policy's queues (memory), the batch's ring (staging) or the
        // tier FIFO (stored), and its `bytes` is the record's length in the last two.
        [[no_unique_address]] std::conditional_t<has_tier, TierEntry, NoTier> tier;
    };
    static_assert(has_tier || sizeof(Item) == sizeof(EvictionHook) + 2 * sizeof(void*) + sizeof(large_object) + 8,
                  "a cache without a tier pays nothing for it");

    using Index = std::unordered_map<Key, Item, Hash, Eq, detail::CountingAllocator<std::pair<const Key, Item>>>;

    // A shard's part of the tier; under the shard's mutex.
    struct TierShard {
        detail::HookQueue fifo;     // stored entries, oldest first; bytes(): their records'
        std::size_t entries = 0;    // index entries whose value is not in memory (staging or stored)
        std::uint32_t next_ticket = 0;
        std::uint64_t writes = 0, reads = 0, write_failures = 0, read_failures = 0, evictions = 0;
    };

    struct Shard {
        explicit Shard(std::size_t capacity)
            : index(16, Hash{}, Eq{}, detail::CountingAllocator<std::pair<const Key, Item>>(&index_bytes)),
              policy(capacity) {}
        mutable std::mutex mutex;
        std::size_t index_bytes = 0;  // before index: its allocator points here
        Index index;
        Eviction policy;
        std::size_t number = 0;  // its place in shards_, part of its items' owner ids
        // From a node's key to its item (the same in every node: they are one pair type).
        std::ptrdiff_t key_to_item = 0;
        // The owner table: slot -> the item whose storage it names, or a free slot holding
        // (the next free slot << 1) | 1 (items are aligned, so the low bit tells them apart).
        std::vector<std::uintptr_t> owners;
        std::size_t free_owner_slot = no_free_owner_slot;  // head of the free slots' list
        // index_bytes + key heap bytes + the owner table's capacity, as charged to the budget
        std::size_t charged_index_bytes = 0;
        std::uint64_t hits = 0, misses = 0, sets = 0, evictions = 0;
        std::uint64_t bytes_stored = 0, bytes_compressed = 0;
        [[no_unique_address]] std::conditional_t<has_tier, TierShard, NoTier> tier;
    };

    // The cache's part of the tier, fixed at construction.
    struct Tier {
        backing_store_type* backing = nullptr;
        bool promote = true;              // WritebackOptions::bring_back_on_load
        std::size_t batch_bytes = 0;      // records one set may stage
        std::size_t batch_records = 0;    // the backing store's max_batch_records()
        std::size_t max_payload = 0;      // the longest stored value a record takes
        std::size_t max_entries = 0;      // per shard: index entries kept for the tier
    };

    // Evicted records waiting to be written, and records to free, gathered under a shard's mutex
    // by the thread that holds it and handled by that thread after releasing it (finish_tier_work),
    // before the call returns. One per thread (and per cache type): calls never nest, and the
    // buffer is reused, so steady-state evictions allocate nothing.
    struct TierWork {
        TierWork() noexcept { detail::ring_init(batch); }
        TierWork(const TierWork&) = delete;
        TierWork& operator=(const TierWork&) = delete;

        // Buffers for a batch of `bytes` and `records`; false when the heap refuses them.
        bool ready(std::size_t bytes, std::size_t records) noexcept {
            if (buffer_bytes >= bytes && staged.capacity() >= records) return true;
            ZPAGE_ASSERT(staged.empty());
            try {
                if (buffer_bytes < bytes) {
                    buffer.reset();
                    buffer_bytes = 0;
                    buffer = std::make_unique_for_overwrite<std::byte[]>(bytes);
                    buffer_bytes = bytes;
                }
                staged.reserve(records);
                locations.resize(std::max(locations.size(), records));
                published.reserve(records);
            } catch (...) {
                return false;
            }
            return true;
        }

        EvictionHook batch;  // ring of the staged items still waiting for their record
        Shard* shard = nullptr;  // the shard they belong to (one per call)
        std::unique_ptr<std::byte[]> buffer;
        std::size_t buffer_bytes = 0, used = 0;
        std::vector<std::span<const std::byte>> staged;  // every record staged, in batch order
        std::vector<BackingLocation> locations;
        std::vector<std::uint8_t> published;
        std::vector<std::pair<BackingLocation, std::size_t>> frees;  // records to free
    };

    // What a get copied out under the shard's mutex, to finish after releasing it.
    struct Found {
        detail::TierState where = detail::TierState::memory;
        bool raw = false;
        std::uint32_t value_bytes = 0, stored_bytes = 0;
        ObjectHandle object = ObjectHandle::null;  // memory: which object it was
        BackingLocation location = 0;              // staging, stored: as in TierEntry
        std::uint32_t ticket = 0;
    };

    static const CacheConfig& checked(const CacheConfig& config) {
        config.validate();
        return config;
    }

    // A Shard cannot move (its mutex; its index's allocator points into it): one allocation each.
    static std::vector<std::unique_ptr<Shard>> make_shards(const CacheConfig& config) {
        std::vector<std::unique_ptr<Shard>> shards;
        for (std::size_t n = 0; n < config.shards; ++n) {
            shards.push_back(std::make_unique<Shard>(config.capacity_bytes / config.shards));
            shards.back()->number = n;
        }
        return shards;
    }

    static auto make_tier(const CacheConfig& config, const writeback_type& writeback) {
        if constexpr (has_tier) {
            if (writeback.backing == nullptr)
                throw std::invalid_argument("zpage::CompressedCache: the writeback policy names no backing store");
            if (writeback.options.format != WritebackFormat::compressed)
                throw std::invalid_argument(
                    "zpage::CompressedCache: the tier takes items as stored (WritebackFormat::compressed)");
            Tier t;
            t.backing = writeback.backing;
            t.promote = writeback.options.bring_back_on_load;
            t.batch_bytes = writeback.options.batch_bytes;
            t.batch_records = t.backing->max_batch_records();
            // A record is read back into a decoding stream's scratch.
            const std::size_t longest = std::min({t.backing->max_record_bytes(), t.batch_bytes, encoder_type::scratch_bytes});
            t.max_payload = longest > record_header_bytes ? std::min(longest - record_header_bytes, max_item_bytes) : 0;
            t.max_entries = config.capacity_bytes / config.shards / 100 * config.tier_index_percent / node_bytes;
            return t;
        } else {
            return NoTier{};
        }
    }

    static TierWork& tier_work() noexcept {
        thread_local TierWork work;
        return work;
    }

    Shard& shard_of(std::uint64_t hash) const noexcept {
        return *shards_[static_cast<std::size_t>((hash >> 40) % config_.shards)];
    }

    static detail::TierState state_of(const Item& item) noexcept {
        if constexpr (has_tier) {
            return item.tier.state;
        } else {
            return detail::TierState::memory;
        }
    }

    // Memory a value stored as `stored` bytes takes in the allocator.
    static std::size_t storage_footprint(std::size_t stored) noexcept {
        return stored <= allocator_type::max_object_bytes ? large_object::object_footprint(stored)
                                                           : large_object::footprint(stored);
    }

    // An index node as malloc rounds it (key, item, link and cached hash, header).
    static constexpr std::size_t node_bytes = sizeof(std::pair<const Key, Item>) + 2 * sizeof(void*) + 32;
    // What an item in memory holds, as its policy weighs it: storage, index node, key's heap bytes.
    static std::uint32_t held_bytes(std::size_t stored, const Key& key) noexcept {
        return static_cast<std::uint32_t>(storage_footprint(stored) + node_bytes + detail::key_heap_bytes(key));
    }

    // Index bytes an insert may add: a node, and a bucket array when the index would grow.
    static std::size_t index_reservation(const Index& index) noexcept {
        const bool grows = static_cast<float>(index.size() + 1) >
                           index.max_load_factor() * static_cast<float>(index.bucket_count());
        return node_bytes + (grows ? (index.bucket_count() * 5 / 2 + 64) * sizeof(void*) : 0);
    }

    Status do_set(const Key& key, std::span<const std::byte> value) noexcept {
        if (value.empty() || value.size() > max_item_bytes) return errc::invalid_argument;
        const std::uint64_t hash = hasher_(key);
        Shard& shard = shard_of(hash);
        return encoder_.compress_then(value, [&](std::span<const std::byte> compressed) noexcept -> Status {
            const bool raw = compressed.empty() || compressed.size() >= value.size();
            const std::span<const std::byte> stored = raw ? value : compressed;
            if (storage_footprint(stored.size()) + detail::key_heap_bytes(key) > config_.capacity_bytes - fixed_bytes_)
                return errc::memory_limit;
            std::lock_guard guard(shard.mutex);
            const Status s = insert(shard, key, hash, stored, raw, value.size());
            if (s) ++shard.sets;
            return s;
        });
    }

    // Puts `stored` (the value of `value_bytes` as stored: compressed, or raw) under `key`,
    // replacing whatever the key holds, evicting from the shard until it fits; a set, or a
    // promotion from the tier (`promoting`: it evicts only items in memory, since dropping the
    // tier's entries to bring one back would lose values for a gain in speed). Under the shard's
    // mutex.
    Status insert(Shard& shard, const Key& key, std::uint64_t hash, std::span<const std::byte> stored, bool raw,
                  std::size_t value_bytes, bool promoting = false) noexcept {
        const std::size_t key_bytes = detail::key_heap_bytes(key);
        auto it = shard.index.find(key);
        // Room for a new index node first, so that the insert below cannot take the cache over.
        std::size_t reserved = 0;
        if (it == shard.index.end()) {
            reserved = index_reservation(shard.index) + key_bytes;
            while (!budget_.try_charge(reserved)) {
                if (!evict_one(shard, promoting)) return errc::memory_limit;
            }
        }
        reserve_owner_slot(shard, promoting);
        Item fresh;
        for (;;) {
            const Status s = allocate(shard, stored, raw, fresh);
            if (s) break;
            if (s.error() != errc::memory_limit || !evict_one(shard, promoting)) {
                budget_.uncharge(reserved);
                return s;
            }
        }
        it = shard.index.find(key);  // the eviction may have taken the key's old item
        if (it != shard.index.end()) {
            // Replacing: the reservation was for a node that the key now has (an old one).
            budget_.uncharge(reserved);
            reserved = 0;
            Item& old = it->second;
            forget(shard, old);
            move_storage(shard, fresh, old);
            old.hash = hash;
            old.bytes = held_bytes(stored.size(), it->first);
            old.value_bytes = static_cast<std::uint32_t>(value_bytes);
            account(shard, old, +1);
            shard.policy.on_insert(old);
        } else {
            if (reserved == 0) {  // the old item was evicted meanwhile: reserve afresh
                reserved = index_reservation(shard.index) + key_bytes;
                while (!budget_.try_charge(reserved)) {
                    if (!evict_one(shard, promoting)) {
                        free_storage(shard, fresh);
                        return errc::memory_limit;
                    }
                }
            }
            const std::size_t before = shard.index_bytes;
            try {
                it = shard.index.try_emplace(key).first;
            } catch (...) {
                free_storage(shard, fresh);
                budget_.uncharge(reserved);
                return errc::out_of_memory;
            }
            // The node's copy of the key is what is charged from here on, also when it is removed.
            const std::size_t grown = shard.index_bytes - before + detail::key_heap_bytes(it->first);
            // The reservation bounds the growth; should an estimate fall short, charge the rest.
            if (grown <= reserved) {
                budget_.uncharge(reserved - grown);
            } else {
                budget_.charge(grown - reserved);
            }
            shard.charged_index_bytes += grown;
            Item& item = it->second;
            move_storage(shard, fresh, item);
            item.hash = hash;
            item.bytes = held_bytes(stored.size(), it->first);
            item.value_bytes = static_cast<std::uint32_t>(value_bytes);
            shard.key_to_item = reinterpret_cast<const char*>(&item) - reinterpret_cast<const char*>(&it->first);
            account(shard, item, +1);
            shard.policy.on_insert(item);
        }
        return errc::ok;
    }

    // Makes `item`'s storage hold `stored`, owned by a slot of the shard's owner table. Fails as
    // the allocator does, allocating nothing. Under the shard's mutex.
    Status allocate(Shard& shard, std::span<const std::byte> stored, bool raw, Item& item) noexcept {
        item.stored_bytes = static_cast<std::uint32_t>(stored.size());
        item.owner = acquire_owner(shard, item);
        Status s = errc::ok;
        if (stored.size() <= allocator_type::max_object_bytes) {
            const Result<PageRecord> r = encoder_.adopt(stored, raw, item.owner);  // the store's record: huge = raw
            if (r) item.object = ObjectHandle{r->word};
            s = r.status();
        } else {
            s = large_object::allocate(allocator_, budget_, stored, item.owner, item.large);
        }
        if (!s) release_owner(shard, std::exchange(item.owner, unmovable_owner));
        return s;
    }

    void move_storage(Shard& shard, Item& from, Item& to) noexcept {
        to.object = std::exchange(from.object, ObjectHandle::null);
        to.large = std::move(from.large);
        to.stored_bytes = from.stored_bytes;
        to.owner = std::exchange(from.owner, unmovable_owner);
        if (to.owner != unmovable_owner) shard.owners[to.owner / shards_.size()] = reinterpret_cast<std::uintptr_t>(&to);
    }

    void free_storage(Shard& shard, Item& item) noexcept {
        if (item.object != ObjectHandle::null) {
            allocator_.deallocate(item.object);
            item.object = ObjectHandle::null;
        }
        item.large.free(allocator_, budget_);
        release_owner(shard, std::exchange(item.owner, unmovable_owner));
    }

    // ---- owner ids, for compaction ----

    // Owner id of the item in `slot` of shard `number`: slot * shards + number, below
    // max_owner_id; an item past that (over 2^31 / shards in one shard) holds unmovable_owner.
    static constexpr OwnerId unmovable_owner = max_owner_id;
    static constexpr std::size_t no_free_owner_slot = SIZE_MAX >> 1;

    // Grows the shard's owner table when it has no free slot, charging the growth to the budget
    // (evicting for it as for any charge). When that fails the next item simply cannot move.
    // Under the shard's mutex.
    void reserve_owner_slot(Shard& shard, bool promoting) noexcept {
        if (shard.free_owner_slot != no_free_owner_slot || shard.owners.size() < shard.owners.capacity()) return;
        const std::size_t capacity = std::max<std::size_t>(64, shard.owners.capacity() * 2);
        const std::size_t charge = (capacity - shard.owners.capacity()) * sizeof(std::uintptr_t);
        while (!budget_.try_charge(charge)) {
            if (!evict_one(shard, promoting)) return;
            if (shard.free_owner_slot != no_free_owner_slot) return;  // the victim's slot will do
        }
        try {
            shard.owners.reserve(capacity);
        } catch (...) {
            budget_.uncharge(charge);
            return;
        }
        shard.charged_index_bytes += charge;
    }

    OwnerId acquire_owner(Shard& shard, Item& item) noexcept {
        std::size_t slot = shard.free_owner_slot;
        if (slot != no_free_owner_slot) {
            shard.free_owner_slot = static_cast<std::size_t>(shard.owners[slot] >> 1);
        } else if (shard.owners.size() < shard.owners.capacity()) {
            slot = shard.owners.size();
            shard.owners.push_back(0);  // within capacity: no allocation
        } else {
            return unmovable_owner;
        }
        const std::size_t id = slot * shards_.size() + shard.number;
        if (id >= unmovable_owner) {  // over 2^31 / shards items in one shard: this one stays put
            release_slot(shard, slot);
            return unmovable_owner;
        }
        shard.owners[slot] = reinterpret_cast<std::uintptr_t>(&item);
        return static_cast<OwnerId>(id);
    }

    void release_owner(Shard& shard, OwnerId owner) noexcept {
        if (owner != unmovable_owner) release_slot(shard, owner / shards_.size());
    }
    static void release_slot(Shard& shard, std::size_t slot) noexcept {
        shard.owners[slot] = (std::uintptr_t{shard.free_owner_slot} << 1) | 1;
        shard.free_owner_slot = slot;
    }
    static Item* owner_item(const Shard& shard, std::size_t slot) noexcept {
        if (slot >= shard.owners.size() || (shard.owners[slot] & 1) != 0) return nullptr;
        return reinterpret_cast<Item*>(shard.owners[slot]);
    }

    // ObjectOwners for the allocator's compact(): called under a size-class lock, so it takes a
    // shard's mutex only if it is free (the cache takes shard, then class), and declines otherwise.
    struct Owners {
        CompressedCache& cache;
        template <class Copy>
        bool relocate(OwnerId owner, ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
            if (owner == unmovable_owner) return false;
            Shard& shard = *cache.shards_[owner % cache.shards_.size()];
            std::unique_lock guard(shard.mutex, std::try_to_lock);
            if (!guard.owns_lock()) return false;
            Item* item = owner_item(shard, owner / cache.shards_.size());
            if (item == nullptr) return false;
            if (item->object == from) {
                copy();
                item->object = to;
                return true;
            }
            return item->large.relocate(from, to, copy);
        }
    };

    // Compacts when evictions have gone through 1/32 of the capacity since the last look and the
    // spans hold more than 1/16 free slots. One thread at a time; the others go on.
    void maybe_compact() noexcept {
        if (evicted_bytes_.load(std::memory_order_relaxed) < config_.capacity_bytes / 32) return;
        if (compacting_.exchange(true, std::memory_order_acquire)) return;
        evicted_bytes_.store(0, std::memory_order_relaxed);
        const AllocatorStats a = allocator_.stats();
        if (a.span_bytes - std::min(a.span_bytes, a.object_bytes) > a.span_bytes / 16) compact();
        compacting_.store(false, std::memory_order_release);
    }

    // Copies what `item` holds in memory (stored_bytes) to `out`. Under the shard's mutex.
    void copy_stored(const Item& item, std::byte* out) const noexcept {
        if (item.object == ObjectHandle::null) {
            item.large.read(allocator_, out);
            return;
        }
        allocator_.read(item.object, [&](std::span<const std::byte> object) noexcept {
            std::memcpy(out, object.data(), item.stored_bytes);
            return 0;
        });
    }

    static void account(Shard& shard, const Item& item, int sign) noexcept {
        if (sign > 0) {
            shard.bytes_stored += item.value_bytes;
            shard.bytes_compressed += item.stored_bytes;
        } else {
            shard.bytes_stored -= item.value_bytes;
            shard.bytes_compressed -= item.stored_bytes;
        }
    }

    // Gives back what `item`'s value holds, wherever it is (memory, a batch, the tier: its record
    // is freed after the mutex), leaving the node. Under the shard's mutex.
    void forget(Shard& shard, Item& item) noexcept {
        if constexpr (has_tier) {
            switch (item.tier.state) {
            case detail::TierState::memory: break;
            case detail::TierState::staging:  // its batch will free the record it writes
                detail::ring_unlink(item);
                --shard.tier.entries;
                item.tier.state = detail::TierState::memory;
                return;
            case detail::TierState::stored:
                shard.tier.fifo.remove(item);
                free_record_later(item);
                --shard.tier.entries;
                item.tier.state = detail::TierState::memory;
                return;
            }
        }
        shard.policy.on_remove(item);
        account(shard, item, -1);
        free_storage(shard, item);
    }

    // Removes `it`'s item and gives back everything it held. Under the shard's mutex.
    void drop(Shard& shard, typename Index::iterator it) noexcept {
        forget(shard, it->second);
        erase_node(shard, it);
    }

    // Removes the node of an item that holds nothing any more. Under the shard's mutex.
    void erase_node(Shard& shard, typename Index::iterator it) noexcept {
        const std::size_t key_bytes = detail::key_heap_bytes(it->first);
        const std::size_t before = shard.index_bytes;
        shard.index.erase(it);
        const std::size_t freed = before - shard.index_bytes + key_bytes;
        shard.charged_index_bytes -= freed;
        budget_.uncharge(freed);
    }

    typename Index::iterator node_of(Shard& shard, const Item& item) noexcept {
        // An evicted item's way back to its node: the key beside it in the node's pair.
        const Key& key = *reinterpret_cast<const Key*>(reinterpret_cast<const char*>(&item) - shard.key_to_item);
        const auto it = shard.index.find(key);
        ZPAGE_ASSERT(it != shard.index.end() && &it->second == &item);
        return it;
    }

    // Evicts the policy's next victim: to the tier when it takes it, else dropped; with the
    // policy empty, drops the tier's oldest entry unless `memory_only`. False when nothing could
    // go. Under the shard's mutex.
    bool evict_one(Shard& shard, bool memory_only = false) noexcept {
        EvictionHook* victim = shard.policy.evict();
        if (victim == nullptr) {
            if constexpr (has_tier) {
                return !memory_only && drop_oldest_stored(shard);
            } else {
                return false;
            }
        }
        Item& item = static_cast<Item&>(*victim);  // the hook is the item's base
        ++shard.evictions;
        evicted_bytes_.fetch_add(storage_footprint(item.stored_bytes), std::memory_order_relaxed);
        account(shard, item, -1);
        bool staged = false;
        if constexpr (has_tier) staged = stage(shard, item);
        free_storage(shard, item);
        if (!staged) erase_node(shard, node_of(shard, item));
        return true;
    }

    // ---- the tier (has_tier only) ----

    // Copies evicted `item`'s stored bytes into this thread's batch as a sealed record (record.hpp,
    // index: the low 32 bits of the key's hash) and makes it a staging entry; its storage is the
    // caller's to free. False when the tier does not take it: too long for a record, the batch
    // full, or no room for another entry (the tier's oldest goes first when it can). Under the
    // shard's mutex.
    bool stage(Shard& shard, Item& item) noexcept
        requires(has_tier)
    {
        TierWork& work = tier_work();
        const std::size_t length = record_bytes(item.stored_bytes);
        if (item.stored_bytes > tier_.max_payload) return false;  // memory-only: dropped, as without a tier
        ZPAGE_ASSERT(work.shard == nullptr || work.shard == &shard);
        if (!work.ready(tier_.batch_bytes, tier_.batch_records) || work.staged.size() == tier_.batch_records ||
            work.used + length > tier_.batch_bytes ||
            (shard.tier.entries >= tier_.max_entries && !drop_oldest_stored(shard))) {
            ++shard.tier.write_failures;
            return false;
        }
        const std::span<std::byte> record(work.buffer.get() + work.used, length);
        copy_stored(item, record.data() + record_header_bytes);
        seal_record(static_cast<std::uint32_t>(item.hash), record);
        item.tier.location = reinterpret_cast<std::uintptr_t>(record.data());
        item.tier.ticket = static_cast<std::uint32_t>(work.staged.size());
        item.tier.state = detail::TierState::staging;
        detail::ring_push(work.batch, item);
        work.staged.push_back(record);  // within the capacity ready() reserved
        work.used += length;
        work.shard = &shard;
        ++shard.tier.entries;
        return true;
    }

    // Drops the tier's oldest entry of the shard; false when it has none. Under the shard's mutex.
    bool drop_oldest_stored(Shard& shard) noexcept
        requires(has_tier)
    {
        EvictionHook* oldest = shard.tier.fifo.pop_front();
        if (oldest == nullptr) return false;
        Item& item = static_cast<Item&>(*oldest);
        free_record_later(item);
        --shard.tier.entries;
        ++shard.tier.evictions;
        erase_node(shard, node_of(shard, item));
        return true;
    }

    // The record of a stored entry goes back to the backing store after the shard's mutex (a
    // free may punch a hole in a file); right away if even that list cannot grow.
    void free_record_later(const Item& item) noexcept
        requires(has_tier)
    {
        const std::size_t length = record_bytes(item.stored_bytes);
        try {
            tier_work().frees.emplace_back(item.tier.location, length);
        } catch (...) {
            tier_.backing->free(item.tier.location, length);
        }
    }

    // Writes this thread's batch, if any, and frees the records gathered for freeing. Under no
    // lock: the write is the only backing-store I/O of a set, and runs after its shard's mutex.
    void finish_tier_work() noexcept
        requires(has_tier)
    {
        TierWork& work = tier_work();
        if (!work.staged.empty()) write_batch(work);
        for (const auto& [location, length] : work.frees) tier_.backing->free(location, length);
        work.frees.clear();
    }

    // Writes the staged records in one write; then, under the shard's mutex, every entry still
    // in the batch (an erase or set takes an entry out of it, and wins) becomes a stored entry,
    // or is dropped when the write failed. A full backing store first loses the shard's oldest
    // records, as many bytes as the batch, twice at most.
    void write_batch(TierWork& work) noexcept
        requires(has_tier)
    {
        Shard& shard = *work.shard;
        const std::size_t count = work.staged.size();
        const std::span<BackingLocation> locations(work.locations.data(), count);
        Status written = tier_.backing->write(work.staged, locations);
        for (int attempt = 0; attempt < 2 && written == errc::no_space; ++attempt) {
            std::size_t freed = 0;
            {
                std::lock_guard guard(shard.mutex);
                while (freed < work.used) {
                    const std::size_t before = shard.tier.fifo.bytes();
                    if (!drop_oldest_stored(shard)) break;
                    freed += before - shard.tier.fifo.bytes();
                }
            }
            if (freed == 0) break;
            for (const auto& [location, length] : work.frees) tier_.backing->free(location, length);
            work.frees.clear();
            written = tier_.backing->write(work.staged, locations);
        }
        work.published.assign(count, 0);
        {
            std::lock_guard guard(shard.mutex);
            for (EvictionHook* h = work.batch.next; h != &work.batch;) {
                Item& item = static_cast<Item&>(*h);
                h = h->next;
                detail::ring_unlink(item);
                if (!written) {
                    --shard.tier.entries;
                    ++shard.tier.write_failures;
                    erase_node(shard, node_of(shard, item));
                    continue;
                }
                const std::uint32_t at = item.tier.ticket;
                work.published[at] = 1;
                item.tier.location = locations[at];
                item.tier.ticket = shard.tier.next_ticket++;
                item.tier.state = detail::TierState::stored;
                item.bytes = static_cast<std::uint32_t>(work.staged[at].size());
                shard.tier.fifo.push_back(item);
                ++shard.tier.writes;
            }
        }
        detail::ring_init(work.batch);
        if (written) {  // records whose entry a set or erase took meanwhile
            for (std::size_t i = 0; i < count; ++i)
                if (work.published[i] == 0) tier_.backing->free(locations[i], work.staged[i].size());
        }
        work.staged.clear();
        work.used = 0;
        work.shard = nullptr;
    }

    // ---- get ----

    // get() with a stream held: copies the stored bytes out under the shard's mutex (raw ones to
    // `out`, compressed ones to the stream's scratch) and decodes them after releasing it, so
    // that a 1 MiB value does not hold its shard while it decompresses. The price: compressed
    // values of one object are copied once more (at most 4 KiB, about a tenth of decoding them);
    // large ones were gathered into the scratch before anyway.
    template <class Stream>
    Result<std::size_t> lookup(Shard& shard, const Key& key, std::uint64_t hash, std::vector<std::byte>& out,
                               Stream& stream) noexcept {
        std::byte* const scratch = stream.scratch.get();
        for (;;) {
            Found found;
            {
                std::lock_guard guard(shard.mutex);
                const auto it = shard.index.find(key);
                if (it == shard.index.end()) {
                    ++shard.misses;
                    return errc::not_found;
                }
                Item& item = it->second;
                try {
                    out.resize(item.value_bytes);
                } catch (...) {
                    return errc::out_of_memory;
                }
                found = found_of(item);
                std::byte* const to = found.raw ? out.data() : scratch;
                switch (found.where) {
                case detail::TierState::memory:
                    copy_stored(item, to);
                    shard.policy.on_hit(item);
                    ++shard.hits;
                    break;
                case detail::TierState::staging:  // the evicting thread's buffer holds it until published
                    std::memcpy(to, reinterpret_cast<const std::byte*>(found.location) + record_header_bytes,
                                found.stored_bytes);
                    ++shard.hits;
                    break;
                case detail::TierState::stored: break;  // read below, after the mutex
                }
            }
            if constexpr (has_tier) {
                if (found.where == detail::TierState::stored) {
                    const std::optional<Result<std::size_t>> r = read_stored(shard, key, hash, found, out, stream);
                    if (!r) continue;  // a set or erase replaced the entry meanwhile: start over
                    return *r;
                }
            }
            const Status s = found.raw ? Status{} : encoder_.decompress(std::span<const std::byte>(scratch, found.stored_bytes),
                                                                        out, *stream.decompress);
            if (s) return std::size_t{found.value_bytes};
            std::lock_guard guard(shard.mutex);
            --shard.hits;
            const auto it = shard.index.find(key);
            // May drop a replacement that looks the same (same object, sizes): a later miss, never
            // wrong bytes.
            if (it != shard.index.end() && still_names(it->second, found)) drop(shard, it);
            return s.error();
        }
    }

    static Found found_of(const Item& item) noexcept {
        Found f;
        f.where = state_of(item);
        f.raw = item.stored_bytes == item.value_bytes;
        f.value_bytes = item.value_bytes;
        f.stored_bytes = item.stored_bytes;
        f.object = item.object;
        if constexpr (has_tier) {
            f.location = item.tier.location;
            f.ticket = item.tier.ticket;
        }
        return f;
    }

    // Whether `item` still holds what a get found in it.
    static bool still_names(const Item& item, const Found& f) noexcept {
        if (state_of(item) != f.where || item.value_bytes != f.value_bytes || item.stored_bytes != f.stored_bytes)
            return false;
        if constexpr (has_tier) {
            if (f.where != detail::TierState::memory)
                return item.tier.location == f.location && (f.where == detail::TierState::staging || item.tier.ticket == f.ticket);
        }
        return item.object == f.object;
    }

    // Reads the stored entry `found` of `key` (its record: into the stream's scratch, checked,
    // decoded into `out`) with no lock held, then, under the shard's mutex: nullopt when the entry
    // no longer names that record (a set or erase won); a failure drops the entry; a success is a
    // hit from the tier and, by the policy's bring_back_on_load, a fresh insert of the record's
    // bytes (it stays in the tier if evicting items in memory cannot make room).
    template <class Stream>
    std::optional<Result<std::size_t>> read_stored(Shard& shard, const Key& key, std::uint64_t hash, const Found& found,
                                                   std::vector<std::byte>& out, Stream& stream) noexcept
        requires(has_tier)
    {
        const std::span<std::byte> record(stream.scratch.get(), record_bytes(found.stored_bytes));
        Result<std::span<const std::byte>> payload = errc::io_error;
        Status s = tier_.backing->read(found.location, record);
        if (s) {
            payload = verify_record(record, static_cast<std::uint32_t>(hash), found.stored_bytes);
            s = payload.status();
        }
        if (s && found.raw) {
            std::memcpy(out.data(), payload->data(), found.stored_bytes);
        } else if (s) {
            s = encoder_.decompress(*payload, out, *stream.decompress);
        }
        std::lock_guard guard(shard.mutex);
        const auto it = shard.index.find(key);
        if (it == shard.index.end() || !still_names(it->second, found)) return std::nullopt;
        if (!s) {
            ++shard.tier.read_failures;
            drop(shard, it);
            return s.error();
        }
        ++shard.tier.reads;
        ++shard.hits;
        if (tier_.promote) static_cast<void>(insert(shard, key, hash, *payload, found.raw, found.value_bytes, true));
        return std::size_t{found.value_bytes};
    }

    using encoder_type = detail::Encoder<codec_type, allocator_type, max_item_bytes>;

    const CacheConfig config_;
    MemoryBudget budget_;
    allocator_type allocator_;
    encoder_type encoder_;
    std::vector<std::unique_ptr<Shard>> shards_;
    [[no_unique_address]] const std::conditional_t<has_tier, Tier, NoTier> tier_;
    std::size_t fixed_bytes_ = 0;
    [[no_unique_address]] Hash hasher_{};
    std::atomic<std::uint64_t> failed_sets_{0};
    std::atomic<std::size_t> evicted_bytes_{0};  // storage evicted since maybe_compact last looked
    std::atomic<bool> compacting_{false};
};

}  // namespace zpage
