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
// The allocator is shared by the shards and compaction is not run: an object never moves, so
// owners need no relocation and the handle in an item is stable. Cost: after evictions, spans
// pinned by one live object stay committed; a set may have to evict more than its own size.
//
// Thread safety: every member function may be called from any thread. Lock order: a codec
// stream slot (taken before any lock), then one shard's mutex (never two), then the allocator's
// size-class locks. gets take the shard mutex too (a hit updates the policy and the object must not
// be freed while it is decoded), so one shard's operations are serial; shards are chosen by the
// high bits of the key's hash.
#pragma once

#include <algorithm>
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
    std::uint32_t bytes = 0;     // memory the item holds, for queue shares
    std::uint8_t freq = 0;       // accesses, saturating at the policy's maximum
    std::uint8_t queue = 0;      // which of the policy's queues holds it
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
class S3Fifo {
public:
    static constexpr std::uint8_t max_freq = 3;
    static constexpr std::uint8_t move_to_main_freq = 2;  // reads in the small FIFO that promote
    static constexpr std::size_t small_share_percent = 10;
    static constexpr std::size_t capacity_bytes_per_ghost_slot = 256;

    explicit S3Fifo(std::size_t capacity_bytes)
        : ghost_(std::bit_ceil(std::max<std::size_t>(64, capacity_bytes / capacity_bytes_per_ghost_slot))) {}

    void on_insert(EvictionHook& h) noexcept {
        h.freq = 0;
        h.queue = take_ghost(h.hash) ? main_queue : small_queue;
        queue(h.queue).push_back(h);
    }
    void on_hit(EvictionHook& h) noexcept { h.freq = static_cast<std::uint8_t>(std::min<int>(h.freq + 1, max_freq)); }
    void on_remove(EvictionHook& h) noexcept { queue(h.queue).remove(h); }

    EvictionHook* evict() noexcept {
        for (;;) {
            const std::size_t total = small_.bytes() + main_.bytes();
            if (!small_.empty() && (main_.empty() || small_.bytes() * 100 >= total * small_share_percent)) {
                EvictionHook* h = small_.pop_front();
                if (h->freq >= move_to_main_freq) {
                    h->queue = main_queue;
                    main_.push_back(*h);
                    continue;
                }
                remember(h->hash);
                return h;
            }
            EvictionHook* h = main_.pop_front();
            if (h == nullptr) return nullptr;
            if (h->freq > 0) {
                --h->freq;
                main_.push_back(*h);
                continue;
            }
            return h;
        }
    }

    [[nodiscard]] std::size_t metadata_bytes() const noexcept { return ghost_.size() * sizeof(std::uint32_t); }

private:
    static constexpr std::uint8_t small_queue = 0;
    static constexpr std::uint8_t main_queue = 1;

    detail::HookQueue& queue(std::uint8_t q) noexcept { return q == small_queue ? small_ : main_; }
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
static_assert(EvictionPolicy<ClockLru>);

struct CacheConfig {
    // Memory the cache may hold, every byte counted (see the top of compressed_cache.hpp). Required.
    std::size_t capacity_bytes = 0;
    // Independent parts, each with its own mutex, index and policy; each gets capacity / shards.
    std::size_t shards = 8;
    // Budget the cache's account sits inside (shared with other caches or stores); nullptr: none.
    MemoryBudget* parent_budget = nullptr;

    // Throws std::invalid_argument naming the field.
    void validate() const {
        if (capacity_bytes == 0) throw std::invalid_argument("zpage::CacheConfig: capacity_bytes must be > 0");
        if (shards == 0 || shards > 4096)
            throw std::invalid_argument("zpage::CacheConfig: shards must be 1 .. 4096");
    }
};

// A cache's figures; the field list is declared once (for_each_field), as for Stats.
struct CacheStats {
    std::uint64_t hits = 0;           // gets that found their key
    std::uint64_t misses = 0;         // gets that did not
    std::uint64_t sets = 0;           // successful sets
    std::uint64_t failed_sets = 0;    // sets refused (too large, memory limit, out of memory)
    std::uint64_t evictions = 0;      // items dropped to make room
    std::uint64_t items = 0;          // items held
    std::uint64_t bytes_stored = 0;   // their values' sizes, summed
    std::uint64_t bytes_compressed = 0;  // what they hold in the allocator (raw when incompressible)
    std::uint64_t index_bytes = 0;    // index nodes, bucket arrays and key heap bytes
    std::uint64_t bytes_used = 0;     // everything charged to the cache's budget
    std::uint64_t capacity_bytes = 0;

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
}  // namespace detail

template <class Key, class Traits = DefaultTraits, class Hash = Xxh3Hash<Key>, class Eq = std::equal_to<Key>,
          class Eviction = S3Fifo>
class CompressedCache {
    static_assert(StoreTraits<Traits>, "zpage::CompressedCache: Traits must be a traits bundle (derive from DefaultTraits)");
    static_assert(EvictionPolicy<Eviction>,
                  "zpage::CompressedCache: Eviction needs on_insert, on_hit, on_remove, evict and metadata_bytes "
                  "(see EvictionPolicy)");
    static_assert(std::is_same_v<typename Traits::writeback, NoWriteback>,
                  "zpage::CompressedCache: a writeback tier for evicted items is not implemented yet");

public:
    using codec_type = typename Traits::compressor;
    using allocator_type = typename Traits::allocator;
    using large_object = LargeObject<allocator_type>;
    static constexpr std::size_t max_item_bytes = [] {
        if constexpr (requires { Traits::max_item_bytes; }) {
            return std::size_t{Traits::max_item_bytes};
        } else {
            return default_max_item_bytes;
        }
    }();
    static_assert(max_item_bytes < (std::size_t{1} << 32), "zpage::CompressedCache: max_item_bytes must be < 4 GiB");

    // Throws std::invalid_argument for a bad config or codec, std::bad_alloc.
    explicit CompressedCache(const CacheConfig& config, codec_type codec = {})
        : config_(checked(config)),
          budget_(config.parent_budget, config.capacity_bytes),
          allocator_(AllocatorConfig{.budget = &budget_}),
          encoder_(std::move(codec), allocator_, allocator_type::max_object_bytes),
          shards_(make_shards(config_)) {
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

    // Stores a copy of `value` (1 .. max_item_bytes) under `key`, replacing any value it had.
    // invalid_argument for an empty or oversized value; memory_limit when it cannot fit even
    // after evicting its shard's other items (or its footprint exceeds the capacity: nothing is
    // evicted then); out_of_memory when the OS refuses. On failure the key's old value, if any,
    // is kept unless it was evicted to make room. Any thread.
    Status set(const Key& key, std::span<const std::byte> value) noexcept {
        const Status s = do_set(key, value);
        if (!s) failed_sets_.fetch_add(1, std::memory_order_relaxed);
        return s;
    }

    // Replaces `out`'s contents with the value stored under `key` and returns its size.
    // not_found on a miss; corrupt_data when it does not decode (the item is dropped);
    // out_of_memory when no codec stream or no room in `out` can be had. `out` keeps its capacity,
    // so a reused vector makes gets allocation-free in steady state. Any thread.
    Result<std::size_t> get(const Key& key, std::vector<std::byte>& out) noexcept {
        const std::uint64_t hash = hasher_(key);
        Shard& shard = shard_of(hash);
        auto stream = encoder_.unit_stream(1);  // decompression context and scratch
        if (!stream) return errc::out_of_memory;
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
        const Status s = decode(item, out, *stream);
        if (!s) {
            drop(shard, it);
            return s.error();
        }
        ++shard.hits;
        shard.policy.on_hit(item);
        return std::size_t{item.value_bytes};
    }

    // Drops `key`'s item; false when there was none. Any thread.
    bool erase(const Key& key) noexcept {
        Shard& shard = shard_of(hasher_(key));
        std::lock_guard guard(shard.mutex);
        const auto it = shard.index.find(key);
        if (it == shard.index.end()) return false;
        drop(shard, it);
        return true;
    }

    // Whether `key` has an item; not counted as an access. Any thread.
    [[nodiscard]] bool contains(const Key& key) const noexcept { return value_size(key) != 0; }

    // The size of `key`'s value; 0 when it has none. Any thread.
    [[nodiscard]] std::size_t value_size(const Key& key) const noexcept {
        const Shard& shard = shard_of(hasher_(key));
        std::lock_guard guard(shard.mutex);
        const auto it = shard.index.find(key);
        return it == shard.index.end() ? 0 : it->second.value_bytes;
    }

    // Drops every item. Any thread.
    void clear() noexcept {
        for (const auto& s : shards_) {
            Shard& shard = *s;
            std::lock_guard guard(shard.mutex);
            while (!shard.index.empty()) drop(shard, shard.index.begin());
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
    struct Item : EvictionHook {
        // A value that fits one object; its store record (PageRecord: size, huge = raw) is made
        // from the sizes below when it is decoded, 8 B less per item than keeping one.
        ObjectHandle object = ObjectHandle::null;
        large_object large;         // one that does not
        std::uint32_t value_bytes = 0;
        std::uint32_t stored_bytes = 0;  // compressed (< value_bytes), or value_bytes when raw
        const Key* key = nullptr;        // the node's key: an evicted item's way back to its node
    };

    using Index = std::unordered_map<Key, Item, Hash, Eq, detail::CountingAllocator<std::pair<const Key, Item>>>;

    struct Shard {
        explicit Shard(std::size_t capacity)
            : index(16, Hash{}, Eq{}, detail::CountingAllocator<std::pair<const Key, Item>>(&index_bytes)),
              policy(capacity) {}
        mutable std::mutex mutex;
        std::size_t index_bytes = 0;  // before index: its allocator points here
        Index index;
        Eviction policy;
        std::size_t charged_index_bytes = 0;  // index_bytes + key heap bytes, as charged to the budget
        std::uint64_t hits = 0, misses = 0, sets = 0, evictions = 0;
        std::uint64_t bytes_stored = 0, bytes_compressed = 0;
    };

    static const CacheConfig& checked(const CacheConfig& config) {
        config.validate();
        return config;
    }

    // A Shard cannot move (its mutex; its index's allocator points into it): one allocation each.
    static std::vector<std::unique_ptr<Shard>> make_shards(const CacheConfig& config) {
        std::vector<std::unique_ptr<Shard>> shards;
        for (std::size_t n = 0; n < config.shards; ++n)
            shards.push_back(std::make_unique<Shard>(config.capacity_bytes / config.shards));
        return shards;
    }

    Shard& shard_of(std::uint64_t hash) const noexcept {
        return *shards_[static_cast<std::size_t>((hash >> 40) % config_.shards)];
    }

    // Memory a value stored as `stored` bytes takes in the allocator.
    static std::size_t storage_footprint(std::size_t stored) noexcept {
        return stored <= allocator_type::max_object_bytes ? large_object::object_footprint(stored)
                                                           : large_object::footprint(stored);
    }

    // Index bytes an insert may add: a node, and a bucket array when the index would grow.
    static std::size_t index_reservation(const Index& index) noexcept {
        constexpr std::size_t node = sizeof(std::pair<const Key, Item>) + 2 * sizeof(void*) + 32;
        const bool grows = static_cast<float>(index.size() + 1) >
                           index.max_load_factor() * static_cast<float>(index.bucket_count());
        return node + (grows ? (index.bucket_count() * 5 / 2 + 64) * sizeof(void*) : 0);
    }

    Status do_set(const Key& key, std::span<const std::byte> value) noexcept {
        if (value.empty() || value.size() > max_item_bytes) return errc::invalid_argument;
        const std::uint64_t hash = hasher_(key);
        Shard& shard = shard_of(hash);
        return encoder_.compress_then(value, [&](std::span<const std::byte> compressed) noexcept -> Status {
            const bool raw = compressed.empty() || compressed.size() >= value.size();
            const std::span<const std::byte> stored = raw ? value : compressed;
            const std::size_t key_bytes = detail::key_heap_bytes(key);
            if (storage_footprint(stored.size()) + key_bytes > config_.capacity_bytes - fixed_bytes_)
                return errc::memory_limit;
            std::lock_guard guard(shard.mutex);
            auto it = shard.index.find(key);
            // Room for a new index node first, so that the insert below cannot take the cache over.
            std::size_t reserved = 0;
            if (it == shard.index.end()) {
                reserved = index_reservation(shard.index) + key_bytes;
                while (!budget_.try_charge(reserved)) {
                    if (!evict_one(shard)) return errc::memory_limit;
                }
            }
            Item fresh;
            for (;;) {
                const Status s = allocate(stored, raw, fresh);
                if (s) break;
                if (s.error() != errc::memory_limit || !evict_one(shard)) {
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
                shard.policy.on_remove(old);
                account(shard, old, -1);
                free_storage(old);
                move_storage(fresh, old);
                old.hash = hash;
                old.bytes = static_cast<std::uint32_t>(storage_footprint(stored.size()));
                old.value_bytes = static_cast<std::uint32_t>(value.size());
                account(shard, old, +1);
                shard.policy.on_insert(old);
            } else {
                if (reserved == 0) {  // the old item was evicted meanwhile: reserve afresh
                    reserved = index_reservation(shard.index) + key_bytes;
                    while (!budget_.try_charge(reserved)) {
                        if (!evict_one(shard)) {
                            free_storage(fresh);
                            return errc::memory_limit;
                        }
                    }
                }
                const std::size_t before = shard.index_bytes;
                try {
                    it = shard.index.try_emplace(key).first;
                } catch (...) {
                    free_storage(fresh);
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
                move_storage(fresh, item);
                item.hash = hash;
                item.bytes = static_cast<std::uint32_t>(storage_footprint(stored.size()));
                item.value_bytes = static_cast<std::uint32_t>(value.size());
                item.key = &it->first;
                account(shard, item, +1);
                shard.policy.on_insert(item);
            }
            ++shard.sets;
            return errc::ok;
        });
    }

    // Makes `item`'s storage hold `stored`. Fails as the allocator does, allocating nothing.
    Status allocate(std::span<const std::byte> stored, bool raw, Item& item) noexcept {
        item.stored_bytes = static_cast<std::uint32_t>(stored.size());
        if (stored.size() <= allocator_type::max_object_bytes) {
            // The store's record for a page: huge = raw. Owner 0: objects never move (no compaction).
            const Result<PageRecord> r = encoder_.adopt(stored, raw, 0);
            if (!r) return r.error();
            item.object = ObjectHandle{r->word};
            return errc::ok;
        }
        return large_object::allocate(allocator_, budget_, stored, 0, item.large);
    }

    static void move_storage(Item& from, Item& to) noexcept {
        to.object = std::exchange(from.object, ObjectHandle::null);
        to.large = std::move(from.large);
        to.stored_bytes = from.stored_bytes;
    }

    void free_storage(Item& item) noexcept {
        if (item.object != ObjectHandle::null) {
            allocator_.deallocate(item.object);
            item.object = ObjectHandle::null;
        }
        item.large.free(allocator_, budget_);
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

    // Removes `it`'s item and gives back everything it held. Under the shard's mutex.
    void drop(Shard& shard, typename Index::iterator it) noexcept {
        Item& item = it->second;
        shard.policy.on_remove(item);
        remove(shard, it);
    }

    void remove(Shard& shard, typename Index::iterator it) noexcept {
        Item& item = it->second;
        account(shard, item, -1);
        free_storage(item);
        const std::size_t key_bytes = detail::key_heap_bytes(it->first);
        const std::size_t before = shard.index_bytes;
        shard.index.erase(it);
        const std::size_t freed = before - shard.index_bytes + key_bytes;
        shard.charged_index_bytes -= freed;
        budget_.uncharge(freed);
    }

    // Evicts the policy's next victim; false when the shard is empty. Under the shard's mutex.
    bool evict_one(Shard& shard) noexcept {
        EvictionHook* victim = shard.policy.evict();
        if (victim == nullptr) return false;
        Item& item = static_cast<Item&>(*victim);  // the hook is the item's base
        const auto it = shard.index.find(*item.key);
        ZPAGE_ASSERT(it != shard.index.end() && &it->second == &item);
        remove(shard, it);
        ++shard.evictions;
        return true;
    }

    // Writes `item`'s value into `out` (its size). Under the shard's mutex.
    template <class Stream>
    Status decode(const Item& item, std::span<std::byte> out, Stream& stream) const noexcept {
        auto& ctx = *stream.decompress;
        const bool raw = item.stored_bytes == item.value_bytes;
        if (item.object != ObjectHandle::null)
            return encoder_.decode(PageRecord::object(static_cast<std::uint64_t>(item.object), item.stored_bytes, raw),
                                   out, ctx);
        if (raw) {
            item.large.read(allocator_, out.data());
            return errc::ok;
        }
        // The scratch holds any compressed form of a max_item_bytes value (encoder's scratch_bytes).
        item.large.read(allocator_, stream.scratch.get());
        return encoder_.decompress(std::span<const std::byte>(stream.scratch.get(), item.stored_bytes), out, ctx);
    }

    const CacheConfig config_;
    MemoryBudget budget_;
    allocator_type allocator_;
    detail::Encoder<codec_type, allocator_type, max_item_bytes> encoder_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::size_t fixed_bytes_ = 0;
    [[no_unique_address]] Hash hasher_{};
    std::atomic<std::uint64_t> failed_sets_{0};
};

}  // namespace zpage
