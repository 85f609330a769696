// CompressedCache's second tier: evicted values go to the writeback policy's backing store and
// come back byte-exact (from memory and from a file), the cache agrees with a std::unordered_map
// over more keys than memory holds, a failing write drops the item and counts it, a failing or
// corrupted read returns io_error / corrupt_data and never wrong bytes, a full backing store loses
// its oldest records, and threads setting, getting and erasing shared keys while it evicts (with
// faults injected) leave it consistent, every record freed at the end.
#include <zpage/adapters/compressed_cache.hpp>  // first: it must stand alone
#include <zpage/writeback/faulty_backing_store.hpp>
#include <zpage/zpage.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "backing_fixtures.hpp"
#include "fixtures.hpp"
#include "watchdog.hpp"

namespace {

using zpage::CacheConfig;
using zpage::errc;

template <class Backing>
struct TierTraits : zpage::DefaultTraits {
    using writeback = zpage::Writeback<Backing>;
};
template <class Backing>
using TierCache = zpage::CompressedCache<std::uint64_t, TierTraits<Backing>>;
using Faulty = zpage::FaultyBackingStore<zpage::MemoryBackingStore>;

// Records up to a whole 1 MiB value, so that every value can go to the tier.
constexpr std::size_t any_value_record = zpage::record_bytes(zpage::default_max_item_bytes);

zpage::MemoryBackingConfig memory_backing(std::uint64_t max_bytes = std::uint64_t{64} << 20) {
    return {.max_bytes = max_bytes, .max_record_bytes = any_value_record};
}

// `size` bytes of pages from PageSource(key) (real memory when the corpora are there), the key in
// the first bytes: a function of the key and the size alone, so that any thread can check a value.
std::vector<std::byte> value_for(std::uint64_t key, std::size_t size) {
    std::vector<std::byte> v(size);
    zpage_test::PageSource pages(key);
    for (std::size_t at = 0; at < size; at += 4096) {
        const zpage_test::Page p = pages.next();
        std::memcpy(v.data() + at, p.data(), std::min<std::size_t>(p.size(), size - at));
    }
    std::memcpy(v.data(), &key, std::min(size, sizeof key));
    return v;
}

// Sizes from 1 B to 300 KB, most of them a few KB.
std::size_t size_for(std::uint64_t key) {
    constexpr std::size_t sizes[] = {1, 10, 100, 700, 1500, 3000, 4096, 5000, 9000, 20000, 100000, 300000};
    return key % 13 == 12 ? sizes[key / 13 % std::size(sizes)] : 1 + key * 7919 % 6000;
}

template <class Cache>
void check_within_capacity(const Cache& cache) {
    REQUIRE(cache.budget().used() <= cache.config().capacity_bytes);
}

// Items that left the cache for good other than by erase: refused by the tier, or dropped from it.
std::uint64_t dropped(const zpage::CacheStats& s) { return s.tier_write_failures + s.tier_evictions; }

}  // namespace

TEST_CASE_TEMPLATE("values evicted from a small cache come back byte-exact from the tier", Maker, zpage_test::InMemory,
                   zpage_test::FileAio) {
    ZPAGE_REQUIRE_CORPORA();
    zpage_test::BackingUnderTest<Maker> disk({.max_bytes = std::uint64_t{96} << 20, .max_record_bytes = any_value_record});
    using Cache = TierCache<typename Maker::store_type>;
    Cache cache(CacheConfig{.capacity_bytes = 2 << 20, .shards = 2, .tier_index_percent = 50}, {}, {.backing = &*disk});
    const std::uint64_t keys = 1500;
    std::uint64_t bytes = 0, refused = 0;
    for (std::uint64_t k = 0; k < keys; ++k) {
        const zpage::Status set = cache.set(k, value_for(k, size_for(k)));
        // A 300 KB value, its shard's items all gone, while spans the other shard's objects pin
        // hold the memory (compaction moves none of a busy shard's): refused, rarely.
        if (!set) {
            CAPTURE(k);
            REQUIRE(set == errc::memory_limit);
            ++refused;
        }
        bytes += size_for(k);
        check_within_capacity(cache);
    }
    const zpage::CacheStats filled = cache.stats();
    MESSAGE(keys << " values, " << bytes << " B in all: " << filled.items << " in memory, " << filled.tier_items
                 << " in the tier (" << filled.tier_bytes << " B of records), index "
                 << static_cast<double>(filled.index_bytes) / static_cast<double>(filled.items + filled.tier_items)
                 << " B per entry; dropped: " << filled.tier_write_failures << " refused, " << filled.tier_evictions
                 << " from the tier");
    CHECK(filled.tier_writes > 0);
    CHECK(filled.tier_items > keys / 2);
    // A shard whose own items are all gone while spans the other shard's objects pin hold the
    // memory drops the tier's oldest entries (counted); how often depends on the page pool's timing.
    CHECK(refused <= keys / 100);
    CHECK(filled.items + filled.tier_items + dropped(filled) + refused >= keys);
    CHECK(dropped(filled) < keys / 10);
    CHECK(disk->stats().bd_count > 0);

    std::vector<std::byte> out;
    std::uint64_t missing = 0;
    for (std::uint64_t k = 0; k < keys; ++k) {
        CAPTURE(k);
        const auto got = cache.get(k, out);
        if (!got) {
            REQUIRE(got.error() == errc::not_found);
            REQUIRE(++missing <= dropped(cache.stats()) + refused);
            continue;
        }
        CHECK(*got == size_for(k));
        REQUIRE(out == value_for(k, size_for(k)));
        check_within_capacity(cache);
    }
    const zpage::CacheStats read = cache.stats();
    CHECK(read.hits == keys - missing);
    CHECK(read.tier_reads >= filled.tier_items - missing);  // promoted ones evict others, read later in turn
    CHECK(read.tier_read_failures == 0);

    cache.clear();
    const zpage::CacheStats cleared = cache.stats();
    CHECK(cleared.items == 0);
    CHECK(cleared.tier_items == 0);
    CHECK(cleared.tier_bytes == 0);
    CHECK(cache.allocator_stats().objects == 0);
    CHECK(disk->stats().bd_count == 0);  // every record freed
}

TEST_CASE("without promotion, a value read from the tier stays there and reads again") {
    zpage::MemoryBackingStore disk(memory_backing());
    TierCache<zpage::MemoryBackingStore> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1}, {},
                                               {.backing = &disk, .options = {.bring_back_on_load = false}});
    for (std::uint64_t k = 0; k < 1000; ++k) REQUIRE(cache.set(k, value_for(k, 3000)));
    REQUIRE(cache.stats().tier_items > 0);
    std::vector<std::byte> out;
    std::uint64_t in_tier = 0;
    for (std::uint64_t k = 0; k < 1000; ++k) {
        const std::uint64_t before = cache.stats().tier_reads;
        REQUIRE(cache.get(k, out));
        REQUIRE(out == value_for(k, 3000));
        if (cache.stats().tier_reads == before) continue;
        ++in_tier;
        REQUIRE(cache.get(k, out));  // from the tier again
        CHECK(cache.stats().tier_reads == before + 2);
    }
    CHECK(in_tier == cache.stats().tier_items);
}

TEST_CASE("agrees with a std::unordered_map under random sets, gets and erases over more keys than memory holds") {
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    zpage::MemoryBackingStore disk(memory_backing());
    // Index entries for 17,000 keys may stay (60% of 4 MiB at 144 B a node).
    TierCache<zpage::MemoryBackingStore> cache(CacheConfig{.capacity_bytes = 4 << 20, .shards = 2, .tier_index_percent = 60},
                                               {}, {.backing = &disk});
    const std::uint64_t key_space = 8000;  // about 24 MB of values, 8 MB compressed
    std::unordered_map<std::uint64_t, std::vector<std::byte>> model;
    std::vector<std::byte> out;
    std::size_t hits = 0;
    // Keys of the model found missing: each one an item the tier refused or dropped (a shard whose
    // own items are all gone, its memory held by spans another shard's objects pin, drops the
    // tier's oldest entries to make room).
    std::uint64_t lost = 0;
    const auto lose = [&](std::uint64_t key) {
        if (model.erase(key) == 0) return;
        ++lost;
        REQUIRE(lost <= dropped(cache.stats()));
    };
    const std::size_t ops = zpage_test::scaled(40000, 2);  // enough sets to overflow memory under sanitizers too
    for (std::size_t op = 0; op < ops; ++op) {
        const std::uint64_t key = rng() % key_space;
        CAPTURE(op);
        CAPTURE(key);
        switch (rng() % 8) {
        case 0:
        case 1:
        case 2: {
            std::vector<std::byte> v = value_for(rng(), 1 + rng() % 6000);
            if (rng() % 8 == 0) {  // incompressible: kept raw, in memory and in the tier
                std::mt19937_64 noise(key);
                for (auto& b : v) b = static_cast<std::byte>(noise() >> 7);
            }
            const zpage::Status s = cache.set(key, v);
            if (s) {
                model[key] = std::move(v);
            } else {
                REQUIRE(s == errc::memory_limit);
                if (!cache.contains(key)) model.erase(key);
            }
            break;
        }
        case 3: {
            const bool had = cache.erase(key);
            REQUIRE((!had || model.count(key) == 1));
            if (!had) lose(key);
            model.erase(key);
            break;
        }
        default: {
            const auto got = cache.get(key, out);
            if (got) {
                REQUIRE(model.count(key) == 1);
                REQUIRE(out == model[key]);
                ++hits;
            } else {
                REQUIRE(got.error() == errc::not_found);
                lose(key);
            }
        }
        }
        check_within_capacity(cache);
    }
    const zpage::CacheStats s = cache.stats();
    MESSAGE(ops << " ops over " << key_space << " keys: " << s.evictions << " evictions, " << s.tier_writes
                << " tier writes, " << s.tier_reads << " tier reads, " << hits << " hits; " << s.items << " in memory, "
                << s.tier_items << " in the tier; dropped: " << s.tier_write_failures << " refused, "
                << s.tier_evictions << " from the tier");
    CHECK(s.tier_writes > 0);
    CHECK(s.tier_reads > 0);
    REQUIRE(s.items + s.tier_items <= model.size());
    CHECK(lost + (model.size() - s.items - s.tier_items) <= dropped(s));
    CHECK(dropped(s) * 4 < s.tier_writes);  // the tier keeps most of what it is given
    cache.clear();
    CHECK(cache.allocator_stats().objects == 0);
    CHECK(disk.stats().bd_count == 0);
}

TEST_CASE("a write the backing store fails drops the evicted items and counts them") {
    Faulty disk(memory_backing());
    TierCache<Faulty> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1}, {}, {.backing = &disk});
    std::vector<std::byte> out;
    for (const errc code : {errc::io_error, errc::no_space}) {
        CAPTURE(code);
        cache.clear();
        disk.fail_writes(code, 0, 1U << 30);
        const zpage::CacheStats before = cache.stats();
        for (std::uint64_t k = 0; k < 1000; ++k) REQUIRE(cache.set(k, value_for(k, 3000)));
        const zpage::CacheStats s = cache.stats();
        CHECK(s.evictions > before.evictions);
        CHECK(s.tier_write_failures - before.tier_write_failures == s.evictions - before.evictions);
        CHECK(s.tier_writes == 0);
        CHECK(s.tier_items == 0);
        std::uint64_t present = 0;
        for (std::uint64_t k = 0; k < 1000; ++k) {
            const auto got = cache.get(k, out);
            if (!got) {
                REQUIRE(got.error() == errc::not_found);
                CHECK_FALSE(cache.contains(k));
                continue;
            }
            ++present;
            REQUIRE(out == value_for(k, 3000));
        }
        CHECK(present == cache.stats().items);
    }
    // Writes work again: evictions reach the tier.
    disk.clear();
    for (std::uint64_t k = 1000; k < 2000; ++k) REQUIRE(cache.set(k, value_for(k, 3000)));
    CHECK(cache.stats().tier_writes > 0);
    cache.clear();
    CHECK(disk.stats().bd_count == 0);
}

TEST_CASE("a full backing store loses its oldest records, and every value read is exact") {
    // 512 KiB of records: a fraction of what is evicted.
    zpage::MemoryBackingStore disk({.max_bytes = 512 << 10, .max_record_bytes = zpage::record_bytes(8192)});
    TierCache<zpage::MemoryBackingStore> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 2}, {}, {.backing = &disk});
    std::vector<std::byte> out;
    for (std::uint64_t k = 0; k < 3000; ++k) {
        const zpage::Status set = cache.set(k, value_for(k, 2000 + k % 3000));
        // Shards evict only their own items, and spans pinned by another shard's objects stay.
        REQUIRE((set || set == errc::memory_limit));
        check_within_capacity(cache);
    }
    const zpage::CacheStats s = cache.stats();
    CHECK(s.tier_evictions > 0);
    CHECK(s.tier_bytes <= 512 << 10);
    // Every item the cache says it holds, in memory or in the tier, is there: contains() neither
    // reads nor promotes. The reads below promote, and so evict, as they go.
    std::uint64_t indexed = 0;
    for (std::uint64_t k = 0; k < 3000; ++k) indexed += cache.contains(k) ? 1 : 0;
    CHECK(indexed == s.items + s.tier_items);
    std::uint64_t present = 0;
    for (std::uint64_t k = 0; k < 3000; ++k) {
        const auto got = cache.get(k, out);
        if (!got) {
            REQUIRE(got.error() == errc::not_found);
            continue;
        }
        ++present;
        REQUIRE(out == value_for(k, 2000 + k % 3000));
    }
    MESSAGE(present << " of 3000 keys present; " << s.tier_evictions << " dropped from the tier, "
                    << s.tier_write_failures << " refused");
    CHECK(present >= s.items);
    cache.clear();
    CHECK(disk.stats().bd_count == 0);
}

TEST_CASE("a failed or corrupted read returns io_error or corrupt_data, never wrong bytes, then a clean miss") {
    struct Fault {
        const char* what;
        errc code;
        void (*arm)(Faulty&);
    };
    const Fault faults[] = {
        {"read error", errc::io_error, [](Faulty& d) { d.fail_reads(0, 1U << 30); }},
        {"bit flipped in the header", errc::corrupt_data, [](Faulty& d) { d.flip_bits(0, 1U << 30, 77); }},
        {"bit flipped in the payload", errc::corrupt_data, [](Faulty& d) { d.flip_bits(0, 1U << 30, 8 * 700 + 3); }},
    };
    for (const Fault& fault : faults) {
        CAPTURE(fault.what);
        Faulty disk(memory_backing());
        TierCache<Faulty> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 2}, {}, {.backing = &disk});
        for (std::uint64_t k = 0; k < 1000; ++k) REQUIRE(cache.set(k, value_for(k, 1000 + k % 4000)));
        const std::uint64_t in_tier = cache.stats().tier_items;
        REQUIRE(in_tier > 0);
        // A shard may have dropped some (see the model test): they miss, faults or not.
        std::vector<bool> held(1000);
        for (std::uint64_t k = 0; k < 1000; ++k) held[k] = cache.contains(k);
        fault.arm(disk);
        std::vector<std::byte> out;
        std::vector<std::uint64_t> failed;
        for (std::uint64_t k = 0; k < 1000; ++k) {
            const auto got = cache.get(k, out);
            if (!held[k]) {
                REQUIRE(got.error() == errc::not_found);
            } else if (got) {
                REQUIRE(out == value_for(k, 1000 + k % 4000));  // from memory
            } else {
                REQUIRE(got.error() == fault.code);
                failed.push_back(k);
            }
        }
        const zpage::CacheStats s = cache.stats();
        CHECK(failed.size() == in_tier);
        CHECK(s.tier_read_failures == failed.size());
        CHECK(s.tier_reads == 0);
        CHECK(s.tier_items == 0);
        disk.clear();
        for (const std::uint64_t k : failed) {
            CHECK_FALSE(cache.contains(k));
            const auto got = cache.get(k, out);
            REQUIRE_FALSE(got);
            CHECK(got.error() == errc::not_found);
        }
        cache.clear();
        CHECK(disk.stats().bd_count == 0);
    }
}

TEST_CASE("values whose record is longer than the backing store takes are dropped on eviction, as without a tier") {
    zpage::MemoryBackingStore disk({.max_bytes = 16 << 20});  // records of a 4 KiB page at most
    TierCache<zpage::MemoryBackingStore> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1}, {}, {.backing = &disk});
    for (std::uint64_t k = 0; k < 200; ++k) REQUIRE(cache.set(k, zpage_test::object_for(k, 20000)));  // raw
    const zpage::CacheStats s = cache.stats();
    CHECK(s.evictions > 0);
    CHECK(s.tier_writes == 0);
    CHECK(s.tier_write_failures == 0);
    CHECK(s.items == 200 - s.evictions);
}

TEST_CASE("bad tier configurations are refused at construction") {
    CHECK_THROWS_WITH_AS(TierCache<zpage::MemoryBackingStore>(CacheConfig{.capacity_bytes = 1 << 20}),
                         doctest::Contains("backing store"), std::invalid_argument);
    zpage::MemoryBackingStore disk(memory_backing());
    CHECK_THROWS_WITH_AS(TierCache<zpage::MemoryBackingStore>(
                             CacheConfig{.capacity_bytes = 1 << 20}, {},
                             {.backing = &disk, .options = {.format = zpage::WritebackFormat::page}}),
                         doctest::Contains("compressed"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(TierCache<zpage::MemoryBackingStore>(
                             CacheConfig{.capacity_bytes = 1 << 20, .tier_index_percent = 95}, {}, {.backing = &disk}),
                         doctest::Contains("tier_index_percent"), std::invalid_argument);
}

TEST_CASE("per-item overhead with a tier: 16 B more per item in memory; an entry in the tier is its index node") {
    zpage::MemoryBackingStore disk(memory_backing());
    TierCache<zpage::MemoryBackingStore> cache(CacheConfig{.capacity_bytes = 256 << 20, .shards = 1}, {}, {.backing = &disk});
    const std::size_t before = cache.budget().used();
    const std::size_t items = 200000;
    for (std::uint64_t k = 0; k < items; ++k) REQUIRE(cache.set(k, zpage_test::object_for(k, 100)));
    const auto s = cache.stats();
    const auto a = cache.allocator_stats();
    REQUIRE(s.items == items);
    REQUIRE(s.evictions == 0);
    const double total = static_cast<double>(cache.budget().used() - before) / static_cast<double>(items);
    const double index = static_cast<double>(s.index_bytes) / static_cast<double>(items);
    MESSAGE("per item (uint64 key, 100 B value, with a tier): " << total << " B in all; " << index
                                                                << " B index (node + buckets), what an entry in the tier keeps; "
                                                                << static_cast<double>(a.object_bytes) / static_cast<double>(items)
                                                                << " B the value's size class");
    CHECK(index < 128 + 16);
}

TEST_CASE("four threads set, get and erase shared keys while evicting into a faulty tier; nothing wrong is returned") {
    Faulty disk(memory_backing());
    TierCache<Faulty> cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 2, .tier_index_percent = 50}, {},
                            {.backing = &disk});
    zpage_test::Watchdog watchdog(std::chrono::seconds(60), "compressed cache tier, 4 threads and faults");
    const std::size_t ops = zpage_test::scaled(12000);
    std::atomic<std::size_t> bad{0}, faulted{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            auto& me = watchdog.enroll("worker " + std::to_string(t));
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) * 977 + 1);
            std::vector<std::byte> out;
            for (std::size_t i = 0; i < ops; ++i) {
                const std::uint64_t key = rng() % 1500;
                const std::size_t size = rng() % 16 == 0 ? 1 + rng() % 100000 : 1 + rng() % 5000;
                switch (rng() % 4) {
                case 0:
                    me.working("set", key);
                    if (const zpage::Status s = cache.set(key, value_for(key, size)); !s && s != errc::memory_limit)
                        bad.fetch_add(1);
                    break;
                case 1:
                    me.working("erase", key);
                    (void)cache.erase(key);
                    break;
                default:
                    me.working("get", key);
                    if (const auto got = cache.get(key, out)) {
                        if (out != value_for(key, *got)) bad.fetch_add(1);
                    } else if (got.error() == errc::io_error || got.error() == errc::corrupt_data) {
                        faulted.fetch_add(1);
                    } else if (got.error() != errc::not_found) {
                        bad.fetch_add(1);
                    }
                }
                if (cache.budget().used() > cache.config().capacity_bytes) bad.fetch_add(1);
                me.done();
            }
            watchdog.leave(me);
        });
    }
    // Faults now and then: failed writes, failed reads, flipped bits.
    std::thread injector([&] {
        std::mt19937_64 rng(7);
        while (!stop.load()) {
            switch (rng() % 3) {
            case 0: disk.fail_writes(errc::io_error, static_cast<std::uint32_t>(rng() % 20), 1); break;
            case 1: disk.fail_reads(static_cast<std::uint32_t>(rng() % 20), 1); break;
            default: disk.flip_bits(static_cast<std::uint32_t>(rng() % 20), 1, rng()); break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    for (auto& t : threads) t.join();
    stop.store(true);
    injector.join();
    CHECK(bad.load() == 0);
    const zpage::CacheStats s = cache.stats();
    MESSAGE(s.sets << " sets, " << s.hits << " hits (" << s.tier_reads << " from the tier), " << s.misses << " misses, "
                   << s.evictions << " evictions, " << s.tier_writes << " tier writes; faults seen: "
                   << s.tier_write_failures << " writes, " << faulted.load() << " gets");
    CHECK(s.tier_writes > 0);
    CHECK(s.tier_reads > 0);
    CHECK(s.tier_read_failures == faulted.load());
    cache.clear();
    CHECK(cache.allocator_stats().objects == 0);
    CHECK(disk.stats().bd_count == 0);
}
