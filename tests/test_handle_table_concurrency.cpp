// Stable handles under concurrency: readers check objects while other threads free, allocate and
// compact. Every read must see its own object whole. Run under TSan in CI.
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/handle_table.hpp>

#include <thread>

#include "fixtures.hpp"

namespace {
using Allocator = zpage::SizeClassAllocator<4096>;
using Table = zpage::HandleTable<Allocator>;
using zpage_test::object_for;
}  // namespace

TEST_CASE("reads stay whole while objects are freed, allocated and compacted") {
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    Table table(a, budget, 1 << 16);
    constexpr std::size_t slots = 2048;
    std::vector<std::atomic<std::uint32_t>> handles(slots);  // 0: empty
    std::vector<std::atomic<std::size_t>> sizes(slots);
    std::vector<std::atomic<bool>> busy(slots);  // a slot is used by one thread at a time
    const std::size_t rounds = zpage_test::scaled(60000, 10);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> bad{0};

    auto worker = [&](std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        for (std::size_t i = 0; i < rounds; ++i) {
            const std::size_t s = rng() % slots;
            bool expected = false;
            if (!busy[s].compare_exchange_strong(expected, true)) continue;
            const std::uint32_t h = handles[s].load();
            if (h != 0 && rng() % 3 != 0) {
                const auto want = object_for(s, sizes[s].load());
                const bool ok = table.read(zpage::StableHandle{h}, [&](std::span<const std::byte> got) {
                    return std::memcmp(got.data(), want.data(), want.size()) == 0;
                });
                if (!ok) ++bad;
            } else {
                if (h != 0) table.deallocate(zpage::StableHandle{h});
                const std::size_t size = 64 + rng() % 3500;
                const auto fresh = table.allocate(object_for(s, size));
                handles[s].store(fresh ? static_cast<std::uint32_t>(*fresh) : 0);
                sizes[s].store(size);
            }
            busy[s].store(false);
        }
    };
    std::thread compactor([&] {
        while (!stop.load()) static_cast<void>(table.compact());
    });
    std::vector<std::thread> workers;
    for (std::uint64_t t = 0; t < 3; ++t) workers.emplace_back(worker, zpage_test::test_seed() + t);
    for (auto& w : workers) w.join();
    stop = true;
    compactor.join();
    CHECK(bad.load() == 0);
    for (std::size_t s = 0; s < slots; ++s) {
        if (const std::uint32_t h = handles[s].load(); h != 0) {
            const auto want = object_for(s, sizes[s].load());
            CHECK(table.read(zpage::StableHandle{h}, [&](std::span<const std::byte> got) {
                return std::memcmp(got.data(), want.data(), want.size()) == 0;
            }));
        }
    }
}
