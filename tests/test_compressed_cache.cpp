// CompressedCache: values of 1 B .. 1 MiB come back exactly, the cache agrees with a
// std::unordered_map model under random sets, gets and erases while it evicts, its budget never
// exceeds the capacity, S3-FIFO (size-aware too) and CLOCK keep what is reused through a scan,
// the size-aware S3-FIFO holds more small items and lets none stay for ever, bad input is refused,
// and four threads at once leave it consistent.
#include <zpage/adapters/compressed_cache.hpp>  // first: it must stand alone
#include <zpage/zpage.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "fixtures.hpp"
#include "watchdog.hpp"

namespace {

using zpage::CacheConfig;
using zpage::errc;
using IntCache = zpage::CompressedCache<std::uint64_t>;
using LruCache = zpage::CompressedCache<std::uint64_t, zpage::DefaultTraits, zpage::Xxh3Hash<std::uint64_t>,
                                        std::equal_to<std::uint64_t>, zpage::ClockLru>;
using SizeAwareCache = zpage::CompressedCache<std::uint64_t, zpage::DefaultTraits, zpage::Xxh3Hash<std::uint64_t>,
                                              std::equal_to<std::uint64_t>, zpage::SizeAwareS3Fifo>;

// `size` bytes of real memory from the corpora (spanning pages), starting at a place `seed` picks;
// when the corpora are absent, runs of 1-8 repeated letters that compress about as little as real
// values do (so that the caches below still fill and evict).
std::vector<std::byte> real_value(std::uint64_t seed, std::size_t size) {
    std::vector<std::byte> v(size);
    const auto& all = zpage_test::corpora();
    if (all.empty()) {
        std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
        for (std::size_t i = 0; i < size;) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const std::size_t run = std::min<std::size_t>(size - i, 1 + (x >> 8) % 8);
            std::memset(v.data() + i, 'a' + static_cast<int>(x % 26), run);
            i += run;
        }
        return v;
    }
    const auto& c = all[seed % all.size()];
    const std::size_t span = c.bytes.size();
    std::size_t at = (seed * 0x9E3779B97F4A7C15ULL >> 20) % span;
    for (std::size_t done = 0; done < size;) {
        const std::size_t n = std::min(size - done, span - at);
        std::memcpy(v.data() + done, c.bytes.data() + at, n);
        done += n;
        at = 0;
    }
    return v;
}

template <class Cache>
void check_within_capacity(const Cache& cache) {
    REQUIRE(cache.budget().used() <= cache.config().capacity_bytes);
}

}  // namespace

TEST_CASE("real values of 1 B to 1 MiB come back exactly, small and large, compressed and raw") {
    ZPAGE_REQUIRE_CORPORA();
    IntCache cache(CacheConfig{.capacity_bytes = 64 << 20, .shards = 4});
    const std::size_t sizes[] = {1, 2, 7, 31, 100, 1000, 3000, 4095, 4096, 4097, 8191, 20000, 65536, 300000, 1 << 20};
    std::vector<std::byte> out;
    std::uint64_t key = 0;
    for (const std::size_t size : sizes) {
        for (std::uint64_t variant = 0; variant < 4; ++variant, ++key) {
            std::vector<std::byte> v = real_value(key * 7919 + variant, size);
            if (variant == 3) {  // incompressible: stored raw
                std::mt19937_64 noise(key);
                for (auto& b : v) b = static_cast<std::byte>(noise() >> 7);
            }
            CAPTURE(size);
            CAPTURE(variant);
            REQUIRE(cache.set(key, v));
            CHECK(cache.value_size(key) == size);
            const auto got = cache.get(key, out);
            REQUIRE(got);
            CHECK(*got == size);
            CHECK(out == v);
            check_within_capacity(cache);
        }
    }
    const auto s = cache.stats();
    CHECK(s.items == key);
    CHECK(s.hits == key);
    CHECK(s.bytes_compressed < s.bytes_stored);
    MESSAGE("stored " << s.bytes_stored << " B as " << s.bytes_compressed << " B, in " << s.bytes_used
                       << " B with the fixed structures: ratio " << s.ratio());
}

// Every shipped codec, and 16 KiB allocator objects (large objects in 16 KiB pieces).
#define ZPAGE_TEST_CACHE_TRAITS                                                                           \
    zpage::Lz4Traits, zpage::Lz4hcTraits, zpage::ZstdTraits, zpage::IdentityTraits,                       \
        zpage::TraitsFor<zpage::Lz4, 16384>, zpage::TraitsFor<zpage::Zstd, 16384>
TEST_CASE_TEMPLATE("every traits bundle: values of 1 B to 1 MiB come back exactly, and clear gives back all",
                   Traits, ZPAGE_TEST_CACHE_TRAITS) {
    zpage::CompressedCache<std::uint64_t, Traits> cache(CacheConfig{.capacity_bytes = 16 << 20, .shards = 2});
    const std::size_t empty = cache.budget().used();
    std::vector<std::byte> out;
    std::uint64_t key = 0;
    for (const std::size_t size : {std::size_t{1}, std::size_t{50}, std::size_t{4096}, std::size_t{16385},
                                   std::size_t{100000}, std::size_t{1} << 20}) {
        for (int pass = 0; pass < 3; ++pass, ++key) {
            const std::vector<std::byte> v = pass == 2 ? zpage_test::object_for(key, size) : real_value(key, size);
            CAPTURE(size);
            REQUIRE(cache.set(key, v));
            REQUIRE(cache.get(key, out));
            CHECK(out == v);
            check_within_capacity(cache);
        }
    }
    CHECK(cache.stats().items == key);
    cache.clear();
    CHECK(cache.allocator_stats().objects == 0);
    CHECK(cache.budget().used() <= empty + cache.stats().index_bytes + cache.allocator_stats().metadata_bytes);
}

TEST_CASE_TEMPLATE("agrees with a std::unordered_map under random sets, gets and erases while evicting", Cache,
                   IntCache, LruCache, SizeAwareCache) {
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    Cache cache(CacheConfig{.capacity_bytes = 2 << 20, .shards = 2});
    std::unordered_map<std::uint64_t, std::vector<std::byte>> model;  // last value set per key
    std::vector<std::byte> out;
    std::size_t hits = 0;
    const std::size_t ops = zpage_test::scaled(20000);
    for (std::size_t op = 0; op < ops; ++op) {
        const std::uint64_t key = rng() % 2000;
        CAPTURE(op);
        CAPTURE(key);
        switch (rng() % 8) {
        case 0:
        case 1:
        case 2: {
            const std::size_t size = rng() % 16 == 0 ? 1 + rng() % 200000 : 1 + rng() % 6000;
            const std::vector<std::byte> v = real_value(rng(), size);
            const zpage::Status s = cache.set(key, v);
            if (s) {
                model[key] = v;
            } else {
                REQUIRE(s == errc::memory_limit);  // evicted keys may be this one's old value
                if (!cache.contains(key)) model.erase(key);
            }
            break;
        }
        case 3: {
            const bool had = cache.erase(key);
            CHECK((!had || model.count(key) == 1));
            model.erase(key);
            break;
        }
        default: {
            const auto got = cache.get(key, out);
            if (got) {
                REQUIRE(model.count(key) == 1);  // an evicted or erased key only ever misses
                REQUIRE(out == model[key]);
                ++hits;
            } else {
                REQUIRE(got.error() == errc::not_found);
                model.erase(key);  // evicted: must stay missing until set again
            }
        }
        }
        check_within_capacity(cache);
    }
    const auto s = cache.stats();
    CHECK(s.evictions > 0);
    CHECK(hits > 0);
    CHECK(s.items <= model.size());
    MESSAGE(ops << " ops, " << s.evictions << " evictions, " << hits << " hits, peak "
                << cache.budget().max_used() << " B of " << s.capacity_bytes);
    cache.clear();
    CHECK(cache.stats().items == 0);
    CHECK(cache.allocator_stats().objects == 0);
}

TEST_CASE("an evicted key misses from then on, and every key in the cache returns its last value") {
    IntCache cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1});
    std::vector<std::byte> out;
    for (std::uint64_t k = 0; k < 3000; ++k) {
        REQUIRE(cache.set(k, zpage_test::object_for(k, 700)));
        check_within_capacity(cache);
    }
    CHECK(cache.stats().evictions > 0);
    std::size_t present = 0;
    for (std::uint64_t k = 0; k < 3000; ++k) {
        const auto got = cache.get(k, out);
        if (!got) continue;
        ++present;
        CHECK(out == zpage_test::object_for(k, 700));
    }
    CHECK(present == cache.stats().items);
}

// `reuse_every`: the hot key is read again every so many scan keys (0: never); `read_scan`: each
// scan key is read once after its set.
template <class Cache>
void keeps_a_reused_key_through_a_scan(std::uint64_t reuse_every, bool read_scan) {
    Cache cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1});
    std::vector<std::byte> out;
    const std::uint64_t hot = 1'000'000;
    REQUIRE(cache.set(hot, zpage_test::object_for(hot, 1000)));
    REQUIRE(cache.get(hot, out));
    REQUIRE(cache.get(hot, out));
    // A scan of keys far more than the cache holds.
    for (std::uint64_t k = 0; k < 20000; ++k) {
        REQUIRE(cache.set(k, zpage_test::object_for(k, 1000)));
        if (read_scan) (void)cache.get(k, out);
        if (reuse_every != 0 && k % reuse_every == 0) REQUIRE(cache.get(hot, out));
    }
    CHECK(cache.stats().evictions > 15000);
    CHECK(cache.contains(hot));
    CHECK_FALSE(cache.contains(0));
}

TEST_CASE_TEMPLATE("S3-FIFO keeps a key read twice through a scan of one-hit keys that evicts the others", Cache,
                   IntCache, SizeAwareCache) {
    keeps_a_reused_key_through_a_scan<Cache>(0, true);
}

// CLOCK gives a key read once the same second chance as the hot one (a scan whose keys are each
// read once sweeps every reference bit in one eviction): it keeps what is read again before the
// hand comes back, through a scan of keys only set.
TEST_CASE("CLOCK keeps a key read within each turn of the hand through a scan of keys set once") {
    keeps_a_reused_key_through_a_scan<LruCache>(500, false);
}

TEST_CASE_TEMPLATE("S3-FIFO: a scan of keys never read passes through the small FIFO and leaves main alone", Cache,
                   IntCache, SizeAwareCache) {
    Cache cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 1});
    std::vector<std::byte> out;
    for (std::uint64_t k = 0; k < 100; ++k) {
        REQUIRE(cache.set(k, zpage_test::object_for(k, 1000)));
        REQUIRE(cache.get(k, out));
        REQUIRE(cache.get(k, out));
    }
    for (std::uint64_t k = 1000; k < 30000; ++k) REQUIRE(cache.set(k, zpage_test::object_for(k, 1000)));
    for (std::uint64_t k = 0; k < 100; ++k) CHECK(cache.contains(k));
}

// Real values of 256 B .. 8 KiB, as a memcached's, set in one order into both caches, ten times
// what they hold: the size-aware one keeps smaller ones longer, so it holds more of them (about
// 1.6x in zpage-memcached's fill, README "zpage-memcached"), every one its last value.
TEST_CASE("size-aware S3-FIFO holds more items of mixed sizes than S3-FIFO in the same memory") {
    const CacheConfig config{.capacity_bytes = 4 << 20, .shards = 1};
    IntCache neutral(config);
    SizeAwareCache size_aware(config);
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<std::size_t> sizes(12000);
    for (auto& size : sizes) size = 256 + rng() % (8192 - 256 + 1);
    for (std::uint64_t k = 0; k < sizes.size(); ++k) {
        const std::vector<std::byte> v = real_value(k, sizes[k]);
        REQUIRE(neutral.set(k, v));
        REQUIRE(size_aware.set(k, v));
    }
    const auto held = [&](auto& cache) {
        std::vector<std::byte> out;
        std::size_t items = 0, bytes = 0;
        for (std::uint64_t k = 0; k < sizes.size(); ++k) {
            if (!cache.get(k, out)) continue;
            REQUIRE(out == real_value(k, sizes[k]));
            ++items;
            bytes += out.size();
        }
        REQUIRE(items == cache.stats().items);
        check_within_capacity(cache);
        return std::pair(items, bytes);
    };
    const auto [neutral_items, neutral_bytes] = held(neutral);
    const auto [aware_items, aware_bytes] = held(size_aware);
    MESSAGE("items held: S3-FIFO " << neutral_items << " (" << neutral_bytes / neutral_items << " B each), size-aware "
                                   << aware_items << " (" << aware_bytes / aware_items << " B each)");
    CHECK(neutral.stats().evictions > 8000);
    CHECK(aware_items * 100 >= neutral_items * 125);
    CHECK(aware_bytes / aware_items * 100 <= neutral_bytes / neutral_items * 85);
}

// Tiny items set before a stream of 4 KiB ones, never read: a FIFO drops them first; the
// size-aware policy keeps half of them or more through a turnover of the cache's items, and
// drops every one within ten more (an item passed over max_laps times goes).
TEST_CASE("size-aware S3-FIFO keeps small items longer, and none never read for ever") {
    SizeAwareCache cache(CacheConfig{.capacity_bytes = 2 << 20, .shards = 1});
    const std::uint64_t tiny = 200;
    for (std::uint64_t k = 0; k < tiny; ++k) REQUIRE(cache.set(k, zpage_test::object_for(k, 8)));
    const auto tiny_held = [&] {
        std::uint64_t n = 0;
        for (std::uint64_t k = 0; k < tiny; ++k) n += cache.contains(k) ? 1 : 0;
        return n;
    };
    std::uint64_t next = 1000;
    const auto set_until_evicted = [&](std::uint64_t evictions) {
        while (cache.stats().evictions < evictions) REQUIRE(cache.set(next, zpage_test::object_for(next++, 4096)));
    };
    set_until_evicted(1);
    const std::uint64_t turnover = cache.stats().items;
    set_until_evicted(turnover);
    CHECK(tiny_held() >= tiny / 2);  // a FIFO: 0
    set_until_evicted(11 * turnover);
    CHECK(tiny_held() == 0);
    CHECK(cache.contains(next - 1));
}

TEST_CASE("bad input: empty and oversized values, values larger than the capacity, a bad config") {
    IntCache cache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 2});
    CHECK(cache.set(1, {}) == errc::invalid_argument);
    const std::vector<std::byte> huge(IntCache::max_item_bytes + 1, std::byte{1});
    CHECK(cache.set(1, huge) == errc::invalid_argument);
    REQUIRE(cache.set(2, zpage_test::object_for(2, 100)));
    // Incompressible and as large as the capacity: refused before anything is evicted.
    const std::vector<std::byte> big = zpage_test::object_for(3, 1 << 20);
    CHECK(cache.set(3, big) == errc::memory_limit);
    CHECK(cache.contains(2));
    CHECK(cache.stats().evictions == 0);
    CHECK(cache.stats().failed_sets == 3);
    std::vector<std::byte> out;
    CHECK(cache.get(3, out).error() == errc::not_found);
    CHECK_FALSE(cache.erase(3));
    CHECK(cache.value_size(3) == 0);
    CHECK_THROWS_AS(IntCache(CacheConfig{.capacity_bytes = 0}), std::invalid_argument);
    CHECK_THROWS_WITH_AS(IntCache(CacheConfig{.capacity_bytes = 1 << 20, .shards = 0}),
                         doctest::Contains("shards"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(IntCache(CacheConfig{.capacity_bytes = 100}), doctest::Contains("capacity_bytes"),
                         std::invalid_argument);
}

TEST_CASE("string keys: heap bytes of long keys are charged and given back") {
    zpage::CompressedCache<std::string> cache(CacheConfig{.capacity_bytes = 4 << 20, .shards = 4});
    const std::size_t empty = cache.budget().used();
    std::vector<std::byte> out;
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "user:" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 80), 'k');
        REQUIRE(cache.set(key, zpage_test::object_for(static_cast<std::uint64_t>(i), 64)));
    }
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "user:" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 80), 'k');
        REQUIRE(cache.get(key, out));
        CHECK(out == zpage_test::object_for(static_cast<std::uint64_t>(i), 64));
    }
    cache.clear();
    const auto s = cache.stats();
    CHECK(s.items == 0);
    CHECK(s.bytes_stored == 0);
    // What stays: bucket arrays and the allocator's metadata (per-span owner maps it keeps).
    const auto a = cache.allocator_stats();
    CHECK(a.objects == 0);
    CHECK(a.span_bytes == 0);
    CHECK(cache.budget().used() <= empty + s.index_bytes + a.metadata_bytes);
}

TEST_CASE("per-item overhead: memory used beyond the values' size-class bytes, per item") {
    // 100-byte values (of 64-bit keys) and their compressed forms, in one shard.
    IntCache cache(CacheConfig{.capacity_bytes = 256 << 20, .shards = 1});
    const std::size_t before = cache.budget().used();
    const std::size_t items = 200000;
    for (std::uint64_t k = 0; k < items; ++k) REQUIRE(cache.set(k, zpage_test::object_for(k, 100)));
    const auto s = cache.stats();
    const auto a = cache.allocator_stats();
    REQUIRE(s.items == items);
    REQUIRE(s.evictions == 0);
    const double total = static_cast<double>(cache.budget().used() - before) / static_cast<double>(items);
    const double index = static_cast<double>(s.index_bytes) / static_cast<double>(items);
    const double spans = static_cast<double>(a.span_bytes + a.metadata_bytes - a.object_bytes) / static_cast<double>(items);
    MESSAGE("per item (uint64 key, 100 B value): " << total << " B in all; " << index
                                                   << " B index (node + buckets); " << spans
                                                   << " B of span slack and allocator metadata; "
                                                   << static_cast<double>(a.object_bytes) / static_cast<double>(items)
                                                   << " B the value's size class");
    CHECK(index < 128);
}

TEST_CASE("four threads set, get and erase over shared keys; the cache stays consistent") {
    IntCache cache(CacheConfig{.capacity_bytes = 4 << 20, .shards = 4});
    zpage_test::Watchdog watchdog(std::chrono::seconds(30), "compressed cache, 4 threads");
    const std::size_t ops = zpage_test::scaled(20000);
    std::vector<std::thread> threads;
    std::atomic<std::size_t> bad{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            auto& me = watchdog.enroll("worker " + std::to_string(t));
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) * 977 + 1);
            std::vector<std::byte> out;
            for (std::size_t i = 0; i < ops; ++i) {
                const std::uint64_t key = rng() % 3000;
                // A key's value is a function of the key and its size, so any thread can check it.
                const std::size_t size = 8 + (rng() % 8 == 0 ? rng() % 100000 : rng() % 3000);
                switch (rng() % 4) {
                case 0:
                    me.working("set", key);
                    if (const zpage::Status s = cache.set(key, zpage_test::object_for(key, size));
                        !s && s != errc::memory_limit)
                        bad.fetch_add(1);
                    break;
                case 1:
                    me.working("erase", key);
                    (void)cache.erase(key);
                    break;
                default:
                    me.working("get", key);
                    if (const auto got = cache.get(key, out)) {
                        if (out != zpage_test::object_for(key, *got)) bad.fetch_add(1);
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
    for (auto& t : threads) t.join();
    CHECK(bad.load() == 0);
    const auto s = cache.stats();
    MESSAGE(s.sets << " sets, " << s.hits << " hits, " << s.misses << " misses, " << s.evictions << " evictions");
    cache.clear();
    CHECK(cache.allocator_stats().objects == 0);
}
