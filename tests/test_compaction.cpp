// compact() through a HandleTable: after freeing a random half, it frees pages, packs what stays,
// keeps every surviving object byte-exact under its unchanged handle, and can run again safely.
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/handle_table.hpp>

#include "fixtures.hpp"

namespace {
using Allocator = zpage::SizeClassAllocator<4096>;
using Table = zpage::HandleTable<Allocator>;

struct Kept {
    zpage::StableHandle handle;
    std::vector<std::byte> bytes;
};

bool holds(const Table& t, const Kept& k) {
    return t.read(k.handle, [&](std::span<const std::byte> s) {
        return std::memcmp(s.data(), k.bytes.data(), k.bytes.size()) == 0;
    });
}
}  // namespace

TEST_CASE("compaction after freeing a random half frees memory and keeps every survivor") {
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    Table table(a, budget, 1 << 20);
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<Kept> all;
    for (int i = 0; i < static_cast<int>(zpage_test::scaled(40000, 4)); ++i) {
        std::vector<std::byte> bytes(200 + rng() % 3400);
        for (auto& b : bytes) b = static_cast<std::byte>(rng());
        const auto h = table.allocate(bytes);
        REQUIRE(h);
        all.push_back({*h, std::move(bytes)});
    }
    std::vector<Kept> kept;
    for (Kept& k : all) {
        if (rng() & 1) {
            table.deallocate(k.handle);
        } else {
            kept.push_back(std::move(k));
        }
    }
    const zpage::AllocatorStats before = a.stats();
    const zpage::CompactionResult r = table.compact();
    const zpage::AllocatorStats after = a.stats();
    CHECK(r.objects_moved > 0);
    CHECK(r.pages_freed > 0);
    CHECK(after.span_bytes == before.span_bytes - r.pages_freed * 4096);
    CHECK(after.pages_compacted == r.pages_freed);
    // Packed: at most one partly used span per class remains, and its unused pages are gone.
    CHECK(after.span_bytes < after.object_bytes + after.object_bytes / 20 + 255 * 3 * 4096);
    CHECK(budget.used() == after.total_bytes() + table.memory_bytes());
    for (const Kept& k : kept) REQUIRE(holds(table, k));

    // A second pass finds (almost) nothing to do and breaks nothing.
    const zpage::CompactionResult again = table.compact();
    CHECK(again.pages_freed <= 255);
    for (const Kept& k : kept) REQUIRE(holds(table, k));
    // New objects go into the compacted spans.
    for (int i = 0; i < 100; ++i) REQUIRE(table.allocate(std::vector<std::byte>(1000, std::byte{1})));
}

TEST_CASE("compaction packs a lone partial span down to the pages its objects need") {
    Allocator a;
    zpage::MemoryBudget budget;
    Table table(a, budget, 1024);
    std::vector<Kept> all;
    for (int i = 0; i < 64; ++i) {  // one full span of the 2048 B class
        std::vector<std::byte> bytes(2048, static_cast<std::byte>(i));
        all.push_back({*table.allocate(bytes), std::move(bytes)});
    }
    for (int i = 0; i < 60; ++i) table.deallocate(all[static_cast<std::size_t>(i)].handle);
    CHECK(a.stats().span_bytes == 32 * 4096);
    const auto r = table.compact();
    CHECK(r.objects_moved == 4);
    CHECK(a.stats().span_bytes == 2 * 4096);  // 4 objects of 2 KiB
    for (int i = 60; i < 64; ++i) CHECK(holds(table, all[static_cast<std::size_t>(i)]));
}

TEST_CASE("compaction of an empty allocator does nothing") {
    Allocator a;
    zpage::MemoryBudget budget;
    Table table(a, budget, 16);
    const auto r = table.compact();
    CHECK(r.objects_moved == 0);
    CHECK(r.pages_freed == 0);
}

TEST_CASE("the handle table grows past many pages and stays whole") {
    // Crosses several growth batches (the table is 8 B per handle), which must stay page-aligned.
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    Table table(a, budget, 1 << 20);
    std::vector<zpage::StableHandle> handles;
    for (int i = 0; i < 100000; ++i) {
        const std::byte b{static_cast<unsigned char>(i)};
        const auto h = table.allocate(std::span<const std::byte>(&b, 1));
        REQUIRE(h);
        handles.push_back(*h);
    }
    CHECK(table.memory_bytes() % 4096 == 0);
    CHECK(table.memory_bytes() >= 100000 * 8);
    for (int i = 0; i < 100000; i += 997)
        CHECK(table.read(handles[static_cast<std::size_t>(i)], [&](std::span<const std::byte> s) {
            return s[0] == std::byte{static_cast<unsigned char>(i)};
        }));
}
