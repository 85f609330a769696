// Four threads store, load and erase overlapping indices while a fifth compacts. Every page carries
// a checksum of itself, so a load that returned a mix of two writers' pages would show. Run under
// TSan in CI.
#include <zpage/zpage.hpp>

#include <thread>

#include "fixtures.hpp"

namespace {

template <class Store>
void hammer() {
    constexpr std::size_t capacity = 512;  // small: threads collide on indices all the time
    Store store(capacity);
    const std::uint64_t seed = zpage_test::test_seed();
    std::vector<zpage_test::Page> bodies;
    zpage_test::PageSource source(seed);
    for (int i = 0; i < 64; ++i) bodies.push_back(source.next());

    const std::size_t rounds = zpage_test::scaled(40000, 8);
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> errors{0};
    std::atomic<bool> stop{false};
    auto worker = [&](std::uint64_t writer) {
        std::mt19937_64 rng(seed + writer);
        zpage_test::Page back{};
        for (std::size_t seq = 0; seq < rounds; ++seq) {
            const std::size_t index = rng() % capacity;
            const unsigned op = static_cast<unsigned>(rng() % 10);
            if (op < 5) {
                errors += !store.store(index, zpage_test::signed_page(bodies[rng() % bodies.size()], writer, seq));
            } else if (op < 9) {
                errors += !store.load(index, back);
                torn += !zpage_test::is_whole(back);
            } else {
                errors += !store.erase(index);
            }
        }
    };
    std::thread compactor([&] {
        while (!stop.load()) {
            static_cast<void>(store.compact());
            static_cast<void>(store.stats());
        }
    });
    std::vector<std::thread> threads;
    for (std::uint64_t w = 1; w <= 4; ++w) threads.emplace_back(worker, w);
    for (auto& t : threads) t.join();
    stop = true;
    compactor.join();

    CHECK(torn.load() == 0);
    CHECK(errors.load() == 0);
    zpage_test::Page back{};
    std::size_t stored = 0;
    for (std::size_t i = 0; i < capacity; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(zpage_test::is_whole(back));
        stored += store.contains(i);
    }
    CHECK(store.stats().orig_data_size == stored * 4096);
}

}  // namespace

TEST_CASE("concurrent stores, loads, erases and compaction never tear a page (lz4)") { hammer<zpage::Lz4Store>(); }
TEST_CASE("concurrent stores, loads, erases and compaction never tear a page (zstd)") { hammer<zpage::ZstdStore>(); }
