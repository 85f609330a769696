// LargeObject: objects of any size over the size-class allocator, from one byte to well past a
// cache's 1 MiB item, read back byte for byte, moved by compaction through their owner, and
// charged to the budget so that freeing them all returns it to where it was.
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/large_object.hpp>

#include <map>
#include <vector>

#include "fixtures.hpp"

namespace {

using Allocator = zpage::SizeClassAllocator<4096>;
using Large = zpage::LargeObject<Allocator>;

// Owners of large objects, as a cache's index would be: relocation finds the piece in its object.
struct Objects {
    std::map<zpage::OwnerId, Large> by_owner;

    template <class Copy>
    bool relocate(zpage::OwnerId owner, zpage::ObjectHandle from, zpage::ObjectHandle to, Copy&& copy) {
        const auto it = by_owner.find(owner);
        return it != by_owner.end() && it->second.relocate(from, to, copy);
    }
};

std::vector<std::byte> bytes_for(std::uint64_t key, std::size_t size) {
    std::vector<std::byte> out(size);
    std::mt19937_64 rng(key);
    for (std::size_t i = 0; i < size; i += 8) {
        const std::uint64_t word = rng() & 0x0F0F0F0F0F0F0F0Full;  // compressible-looking, not same-filled
        std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, size - i));
    }
    return out;
}

}  // namespace

TEST_CASE("large objects of any size read back whole, survive compaction and give all their memory back") {
    zpage::MemoryBudget budget;
    Allocator allocator(zpage::AllocatorConfig{.budget = &budget});
    const std::size_t baseline = budget.used();
    const std::size_t allocator_baseline = allocator.stats().total_bytes();
    const std::vector<std::size_t> sizes = {1, 31, 4095, 4096, 4097, 8192, 20000, 65536, 1 << 20, (1 << 20) + 123};
    Objects objects;
    zpage::OwnerId next = 0;
    for (int round = 0; round < 4; ++round) {
        for (const std::size_t size : sizes) {
            const std::vector<std::byte> bytes = bytes_for(next, size);
            Large object;
            REQUIRE(Large::allocate(allocator, budget, bytes, next, object));
            CHECK(object.size() == size);
            CHECK(object.piece_count() == (size + 4095) / 4096);
            CHECK(Large::footprint(size) >= size);
            // The tail rounds up to its class (32 B at least, merged classes up to 1% more).
            CHECK(Large::footprint(size) <= size + 32 + size / 64 + object.piece_count() * 8);
            objects.by_owner.emplace(next++, std::move(object));
        }
    }
    // Free every other one, so that spans are left sparse, then compact through the owners.
    for (zpage::OwnerId owner = 0; owner < next; owner += 2) {
        objects.by_owner[owner].free(allocator, budget);
        objects.by_owner.erase(owner);
    }
    const zpage::CompactionResult moved = allocator.compact(objects);
    CHECK(moved.objects_moved > 0);
    std::vector<std::byte> back;
    for (auto& [owner, object] : objects.by_owner) {
        back.assign(object.size(), std::byte{0});
        object.read(allocator, back.data());
        REQUIRE(back == bytes_for(owner, object.size()));
    }
    for (auto& [owner, object] : objects.by_owner) object.free(allocator, budget);
    static_cast<void>(allocator.compact(objects));
    CHECK(allocator.stats().objects == 0);
    CHECK(allocator.stats().span_bytes == 0);
    // What is left charged is what the allocator still holds (descriptor pages it keeps): the
    // handle arrays went back with their objects.
    CHECK(budget.used() - baseline == allocator.stats().total_bytes() - allocator_baseline);
}

TEST_CASE("a large object that does not fit the budget takes nothing") {
    zpage::MemoryBudget budget(256 << 10);
    Allocator allocator(zpage::AllocatorConfig{.budget = &budget});
    const std::size_t before = budget.used();
    const std::size_t allocator_before = allocator.stats().total_bytes();
    Large object;
    CHECK(Large::allocate(allocator, budget, bytes_for(1, 1 << 20), 1, object) == zpage::errc::memory_limit);
    CHECK_FALSE(object);
    CHECK(allocator.stats().objects == 0);
    zpage::detail::OwnersArchetype none;
    static_cast<void>(allocator.compact(none));
    CHECK(budget.used() - before == allocator.stats().total_bytes() - allocator_before);
    CHECK(Large::allocate(allocator, budget, {}, 1, object) == zpage::errc::invalid_argument);
}
