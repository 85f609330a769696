// PagePool under threads (also run under TSan): threads take and give pages at once, each writing
// its own pattern into the pages it holds; no page is ever held by two threads, and the counts
// come out exact.
#include <zpage/allocator/page_pool.hpp>

#include <cstring>
#include <thread>

#include "fixtures.hpp"

TEST_CASE("threads taking and giving pages never share one") {
    zpage::PagePool pool({.retain_pages = 64});
    constexpr unsigned threads = 4;
    const std::size_t rounds = zpage_test::scaled(3000);
    std::atomic<std::size_t> corrupted{0};
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937_64 rng(zpage_test::test_seed() + t);
            std::vector<zpage::PageNumber> held;
            for (std::size_t r = 0; r < rounds; ++r) {
                if (held.size() < 600 && (held.empty() || rng() % 2 == 0)) {
                    std::vector<zpage::PageNumber> pages(1 + rng() % 40);
                    if (!pool.take(pages)) continue;
                    for (const auto p : pages) {
                        const std::uint64_t tag = (std::uint64_t{t} << 32) | p;
                        std::memcpy(pool.address(p), &tag, sizeof tag);
                        std::memcpy(pool.address(p) + 4088, &tag, sizeof tag);
                    }
                    held.insert(held.end(), pages.begin(), pages.end());
                } else {
                    const std::size_t n = std::min<std::size_t>(held.size(), 1 + rng() % 40);
                    for (std::size_t i = held.size() - n; i < held.size(); ++i) {
                        const std::uint64_t tag = (std::uint64_t{t} << 32) | held[i];
                        if (std::memcmp(pool.address(held[i]), &tag, sizeof tag) != 0 ||
                            std::memcmp(pool.address(held[i]) + 4088, &tag, sizeof tag) != 0)
                            ++corrupted;
                    }
                    pool.give(std::span(held).last(n));
                    held.resize(held.size() - n);
                }
            }
            pool.give(held);
        });
    }
    for (auto& w : workers) w.join();
    CHECK(corrupted == 0);
    const zpage::PagePoolStats s = pool.stats();
    CHECK(s.pages_in_use == 0);
    CHECK(s.resident_bytes <= zpage::PagePool::chunk_bytes + 64 * zpage::PagePool::page_bytes);
}
