// PagePool under threads (also run under TSan), with its refill thread and without: threads take
// and give pages at once, each writing its own pattern into the pages it holds, while another
// reads stats(); no page is ever held by two threads, every snapshot adds up, and the counts come
// out exact. More takers than cores, under a watchdog.
#include <zpage/allocator/page_pool.hpp>

#include <cstring>
#include <thread>

#include "fixtures.hpp"
#include "watchdog.hpp"

namespace {

constexpr unsigned takers = 4;
constexpr std::size_t most_held = 600 + 40;  // per taker
constexpr std::size_t retain_pages = 64;

void run(const zpage::PagePool::Config& config) {
    zpage::PagePool pool(config);
    zpage_test::Watchdog watchdog(std::chrono::seconds(60), "page pool takers and givers");
    const std::size_t rounds = zpage_test::scaled(3000);
    std::atomic<std::size_t> corrupted{0};
    std::atomic<std::size_t> inconsistent{0};
    std::atomic<unsigned> running{takers};
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < takers; ++t) {
        workers.emplace_back([&, t] {
            zpage_test::Watchdog::Worker& me = watchdog.enroll("taker");
            std::mt19937_64 rng(zpage_test::test_seed() + t);
            std::vector<zpage::PageNumber> held;
            for (std::size_t r = 0; r < rounds; ++r) {
                if (held.size() < 600 && (held.empty() || rng() % 2 == 0)) {
                    std::vector<zpage::PageNumber> pages(1 + rng() % 40);
                    me.working("take", pages.size());
                    if (!pool.take(pages)) continue;
                    for (const auto p : pages) {
                        const std::uint64_t tag = (std::uint64_t{t} << 32) | p;
                        std::memcpy(pool.address(p), &tag, sizeof tag);
                        std::memcpy(pool.address(p) + 4088, &tag, sizeof tag);
                    }
                    held.insert(held.end(), pages.begin(), pages.end());
                } else {
                    const std::size_t n = std::min<std::size_t>(held.size(), 1 + rng() % 40);
                    me.working("give", n);
                    for (std::size_t i = held.size() - n; i < held.size(); ++i) {
                        const std::uint64_t tag = (std::uint64_t{t} << 32) | held[i];
                        if (std::memcmp(pool.address(held[i]), &tag, sizeof tag) != 0 ||
                            std::memcmp(pool.address(held[i]) + 4088, &tag, sizeof tag) != 0)
                            ++corrupted;
                    }
                    pool.give(std::span(held).last(n));
                    held.resize(held.size() - n);
                }
                me.done();
            }
            me.working("give all", held.size());
            pool.give(held);
            me.done();
            watchdog.leave(me);
            --running;
        });
    }
    workers.emplace_back([&] {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("stats reader");
        // What the pool may hold beyond its pages in use: the rest of the current chunk, ready
        // chunks up to a chunk past the high watermark and one per taker populating at once,
        // retained freed pages, and (with the refill thread) freed pages waiting purge_delay:
        // at most every page the takers held.
        const std::size_t bound_pages = zpage::PagePool::chunk_pages + retain_pages +
                                        (config.background_refill ? config.reserve_high_pages + takers * most_held : 0) +
                                        (1 + takers) * zpage::PagePool::chunk_pages;
        while (running.load() != 0) {
            me.working("stats");
            const zpage::PagePoolStats s = pool.stats();
            if (s.resident_bytes != s.pages_in_use * zpage::PagePool::page_bytes + s.spare_bytes ||
                s.pages_in_use > takers * most_held || s.spare_bytes > bound_pages * zpage::PagePool::page_bytes ||
                s.chunks_started != s.chunks_populated_background + s.chunks_populated_direct)
                ++inconsistent;
            me.done();
            std::this_thread::yield();
        }
        watchdog.leave(me);
    });
    for (auto& w : workers) w.join();
    CHECK(corrupted == 0);
    CHECK(inconsistent == 0);
    CHECK(pool.stats().pages_in_use == 0);
    // Once the freed pages' purge_delay has passed, the pool holds what it keeps for good: the
    // rest of the current chunk, the reserve, retained pages, and chunks takers populated at the
    // same moment (filed as ready; without a refill thread nothing gives those back).
    const std::size_t reserve = config.background_refill ? config.reserve_high_pages + zpage::PagePool::chunk_pages : 0;
    const std::size_t kept_bytes = (1 + takers) * zpage::PagePool::chunk_bytes + (retain_pages + reserve) * zpage::PagePool::page_bytes;
    const bool settled = zpage_test::eventually([&] { return pool.stats().resident_bytes <= kept_bytes; });
    const zpage::PagePoolStats s = pool.stats();
    INFO("resident " << s.resident_bytes << " B, spare " << s.spare_bytes << " B, purged " << s.pages_purged
                     << " pages, chunks started " << s.chunks_started << ", released idle " << s.chunks_released_idle);
    CHECK(settled);
    if (!config.background_refill) CHECK(s.chunks_populated_background == 0);
}

}  // namespace

TEST_CASE("threads taking and giving pages never share one, with the refill thread") {
    run({.retain_pages = retain_pages});
}

TEST_CASE("threads taking and giving pages never share one, without it") {
    run({.retain_pages = retain_pages, .background_refill = false});
}
