// SizeClassAllocator on its own: round trips, exact accounting (also against the kernel's count of
// resident pages), fullness-ordered allocation, empty spans returned, limits and OS failures.
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/handle_table.hpp>

#include <fstream>
#include <map>

#include "fixtures.hpp"

namespace {

using Allocator = zpage::SizeClassAllocator<4096>;

struct Object {
    zpage::ObjectHandle handle;
    std::vector<std::byte> bytes;
};

std::vector<std::byte> random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::vector<std::byte> v(n);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    return v;
}

bool holds(const Allocator& a, const Object& o) {
    return a.read(o.handle, [&](std::span<const std::byte> s) {
        return s.size() >= o.bytes.size() && std::memcmp(s.data(), o.bytes.data(), o.bytes.size()) == 0;
    });
}

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * 4096;
}

// Owners that never let an object move.
struct Immovable {
    template <class Copy>
    bool relocate(zpage::OwnerId, zpage::ObjectHandle, zpage::ObjectHandle, Copy&&) noexcept {
        return false;
    }
};

}  // namespace

TEST_CASE("objects of every size round-trip") {
    Allocator a;
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<Object> objects;
    for (std::size_t n = 1; n <= 4096; n += 1 + n / 64) {
        auto bytes = random_bytes(rng, n);
        const auto h = a.allocate(bytes, 0);
        REQUIRE(h);
        CHECK(Allocator::usable_size(*h) >= n);
        objects.push_back({*h, std::move(bytes)});
    }
    for (const Object& o : objects) CHECK(holds(a, o));
    for (const Object& o : objects) a.deallocate(o.handle);
    CHECK(a.stats().objects == 0);
}

TEST_CASE("sizes outside 1 .. max_object_bytes are refused") {
    Allocator a;
    std::vector<std::byte> big(4097);
    CHECK(a.allocate(std::span<const std::byte>(big.data(), 0), 0).error() == zpage::errc::invalid_argument);
    CHECK(a.allocate(big, 0).error() == zpage::errc::invalid_argument);
    CHECK(a.stats().objects == 0);
}

TEST_CASE("accounting is exact and empty spans go back to the OS") {
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    const std::size_t fixed = budget.used();  // size-class states
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<Object> objects;
    std::size_t class_bytes = 0;
    for (int i = 0; i < 5000; ++i) {
        auto bytes = random_bytes(rng, 32 + rng() % 4000);
        const auto h = a.allocate(bytes, static_cast<zpage::OwnerId>(i));
        REQUIRE(h);
        class_bytes += Allocator::usable_size(*h);
        objects.push_back({*h, std::move(bytes)});
    }
    zpage::AllocatorStats s = a.stats();
    CHECK(s.objects == 5000);
    CHECK(s.object_bytes == class_bytes);
    CHECK(s.span_bytes >= class_bytes);
    CHECK(budget.used() == s.total_bytes());
    CHECK(budget.max_used() >= budget.used());

    for (const Object& o : objects) a.deallocate(o.handle);
    s = a.stats();
    CHECK(s.objects == 0);
    CHECK(s.spans == 0);
    CHECK(s.span_bytes == 0);
    CHECK(budget.used() == s.total_bytes());
    CHECK(budget.used() < fixed + 64 * 1024);  // only span descriptors stay (their pages are reused)
}

TEST_CASE("populated span pages match what the kernel counts as resident") {
    if (zpage_test::under_sanitizer) {
        MESSAGE("skipped under sanitizers: their allocators and shadow memory move resident size");
        return;
    }
    zpage::PagePool pool({.background_refill = false});  // no reserve being populated while resident size is read
    std::vector<std::byte> bytes(2000, std::byte{7});
    std::vector<zpage::ObjectHandle> handles;
    handles.reserve(40000);
    const std::size_t before = resident_bytes();
    Allocator a({.pool = &pool});
    for (int i = 0; i < 40000; ++i) handles.push_back(*a.allocate(bytes, 0));  // ~80 MB
    const std::size_t grown = resident_bytes() - before;
    // What the pool holds beyond the allocator's pages is resident too, and reported apart.
    const std::size_t spare = pool.stats().spare_bytes;
    CHECK(spare < zpage::PagePool::chunk_bytes);
    const std::size_t counted = a.stats().total_bytes() + spare;
    INFO("resident growth " << grown << " B, counted " << counted << " B (" << spare << " B spare in the pool)");
    CHECK(grown + (2 << 20) >= counted);  // slack: the test's own vector and the heap
    CHECK(grown <= counted + (2 << 20));
    for (auto h : handles) a.deallocate(h);
    // Emptied chunks went back to the OS whole; the one being handed out from stays.
    CHECK(pool.stats().pages_in_use == 0);
    CHECK(pool.stats().resident_bytes <= zpage::PagePool::chunk_bytes);
    const std::size_t after = resident_bytes();
    CHECK(after <= before + pool.stats().resident_bytes + (2 << 20));
}

TEST_CASE("allocation fills the fullest span first") {
    Allocator a;
    std::vector<std::byte> bytes(2048, std::byte{1});  // class of 2048 B: 64 objects per span
    constexpr std::size_t per_span = 64;
    std::map<std::uint32_t, std::vector<zpage::ObjectHandle>> by_span;
    for (std::size_t i = 0; i < 3 * per_span; ++i) {
        const auto h = *a.allocate(bytes, 0);
        by_span[zpage::ObjectLocation::of(h).span].push_back(h);
    }
    REQUIRE(by_span.size() == 3);
    auto it = by_span.begin();
    auto& sparse = (it++)->second;
    auto& fuller = (it++)->second;
    for (std::size_t i = 0; i < 60; ++i) a.deallocate(sparse[i]);  // 4 left
    for (std::size_t i = 0; i < 10; ++i) a.deallocate(fuller[i]);  // 54 left
    const std::uint32_t fuller_span = zpage::ObjectLocation::of(fuller.back()).span;
    for (int i = 0; i < 10; ++i) CHECK(zpage::ObjectLocation::of(*a.allocate(bytes, 0)).span == fuller_span);
}

TEST_CASE("a memory limit refuses what does not fit and keeps what is stored") {
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    std::mt19937_64 rng(zpage_test::test_seed());
    budget.set_limit(budget.used() + (1 << 20));
    std::vector<Object> objects;
    zpage::errc last = zpage::errc::ok;
    for (int i = 0; i < 2000 && last == zpage::errc::ok; ++i) {
        auto bytes = random_bytes(rng, 500 + rng() % 3000);
        const auto h = a.allocate(bytes, 0);
        last = h.error();
        if (h) objects.push_back({*h, std::move(bytes)});
    }
    CHECK(last == zpage::errc::memory_limit);
    CHECK(budget.used() <= budget.limit());
    CHECK(a.stats().objects == objects.size());
    for (const Object& o : objects) CHECK(holds(a, o));
    budget.set_limit(0);
    CHECK(a.allocate(std::vector<std::byte>(100), 0));
}

TEST_CASE("an OS that refuses memory leaves the allocator as it was") {
    zpage::PagePool pool({.background_refill = false});  // its own, no reserve: the next chunk it needs is refused
    Allocator a({.pool = &pool});
    std::vector<std::byte> bytes(3000, std::byte{3});
    const auto first = *a.allocate(bytes, 0);
    {
        zpage_test::OsFaults faults(zpage::detail::os::Call::populate, 0);
        std::size_t allocated = 0;
        zpage::errc last = zpage::errc::ok;
        while (last == zpage::errc::ok && allocated < 2000) {  // 2000 x 3 KB: past the pool's chunk
            const auto h = a.allocate(bytes, 0);
            last = h.error();
            allocated += h ? 1 : 0;
        }
        CHECK(last == zpage::errc::out_of_memory);
        CHECK(a.stats().objects == allocated + 1);
    }
    CHECK(a.read(first, [&](std::span<const std::byte> s) { return std::memcmp(s.data(), bytes.data(), 3000) == 0; }));
    CHECK(a.allocate(bytes, 0));
}

TEST_CASE("an OS that refuses address space is an error, not a crash") {
    zpage_test::OsFaults faults(zpage::detail::os::Call::reserve, 0);
    Allocator a;
    CHECK(a.allocate(std::vector<std::byte>(100), 0).error() == zpage::errc::out_of_memory);
}

TEST_CASE("compaction leaves objects alone when their owners decline") {
    Allocator a;
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<Object> objects;
    for (int i = 0; i < 3000; ++i) {
        auto bytes = random_bytes(rng, 100 + rng() % 3000);
        objects.push_back({*a.allocate(bytes, 0), std::move(bytes)});
    }
    for (std::size_t i = 0; i < objects.size(); i += 2) a.deallocate(objects[i].handle);
    Immovable owners;
    const zpage::CompactionResult r = a.compact(owners);
    CHECK(r.objects_moved == 0);
    for (std::size_t i = 1; i < objects.size(); i += 2) CHECK(holds(a, objects[i]));
}
