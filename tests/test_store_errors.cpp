// Bad input and failing resources: out-of-range indices, bad configurations, an OS that refuses
// memory, a corrupt stored page. Each gets a clear error and loses nothing that was stored.
#include <zpage/zpage.hpp>

#include <utility>

#include "fixtures.hpp"

namespace {
zpage_test::Page compressible(std::uint64_t seed) {
    zpage_test::Page p{};
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < p.size(); i += 16) p[i] = static_cast<std::byte>(rng());
    return p;
}

// An allocator policy that remembers each owner's latest object, so a test can damage a stored
// page in place, as a stray write or a bit flip in RAM would.
class RecordingAllocator : public zpage::SizeClassAllocator<4096> {
public:
    using SizeClassAllocator::SizeClassAllocator;
    zpage::Result<zpage::ObjectHandle> allocate(std::span<const std::byte> bytes, zpage::OwnerId owner) noexcept {
        const auto h = SizeClassAllocator::allocate(bytes, owner);
        if (h) latest_[owner % latest_.size()] = *h;
        return h;
    }
    // The next deallocate() forgets its object, as a store that lost track of one would.
    void leak_next_free() const noexcept { leak_next_ = true; }
    void deallocate(zpage::ObjectHandle handle) noexcept {
        if (std::exchange(leak_next_, false)) return;
        SizeClassAllocator::deallocate(handle);
    }
    void damage(zpage::OwnerId owner) const {
        read(latest_[owner % latest_.size()], [](std::span<const std::byte> bytes) {
            auto* writable = const_cast<std::byte*>(bytes.data());  // the store's memory is writable
            for (std::size_t i = 0; i < bytes.size(); i += 3) writable[i] = ~writable[i];
            return 0;
        });
    }

private:
    std::array<zpage::ObjectHandle, 16> latest_{};
    mutable bool leak_next_ = false;  // set through the store's const allocator(), as damage() writes
};

struct RecordingTraits : zpage::DefaultTraits {
    using allocator = RecordingAllocator;
};
}  // namespace

TEST_CASE("indices at or past the capacity are refused") {
    zpage::Lz4Store store(10);
    zpage_test::Page page = compressible(1);
    CHECK(store.store(10, page) == zpage::errc::out_of_range);
    CHECK(store.load(10, page) == zpage::errc::out_of_range);
    CHECK(store.erase(~std::size_t{0}) == zpage::errc::out_of_range);
    CHECK_FALSE(store.contains(10));
    CHECK(store.store(10, page).message() == "page index out of range");
    CHECK(store.stats().num_writes == 0);
}

TEST_CASE("bad configurations are refused at construction") {
    CHECK_THROWS_AS(zpage::Lz4Store(0), std::invalid_argument);
    CHECK_THROWS_AS(zpage::Lz4Store(std::size_t{1} << 33), std::invalid_argument);
}

TEST_CASE("an OS that refuses memory fails the store and keeps the old page") {
    zpage::PagePool pool({.background_refill = false});  // its own, no reserve: the next chunk it needs is refused
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 2048, .page_pool = &pool});
    const zpage_test::Page old_page = compressible(1);
    REQUIRE(store.store(0, old_page));
    std::mt19937_64 rng(zpage_test::test_seed());
    auto incompressible = [&] {
        zpage_test::Page p;
        for (auto& b : p) b = static_cast<std::byte>(rng());
        return p;
    };
    {
        zpage_test::OsFaults faults(zpage::detail::os::Call::populate, 0);
        std::size_t refused = 0;
        for (std::size_t i = 1; i < 2048 && refused == 0; ++i) {  // each takes a page of its own
            const zpage::Status st = store.store(i, incompressible());
            if (!st) {
                CHECK(st == zpage::errc::out_of_memory);
                CHECK_FALSE(store.contains(i));
                ++refused;
            }
        }
        CHECK(refused > 0);
        // A failed overwrite leaves the old page.
        CHECK(store.store(0, incompressible()) == zpage::errc::out_of_memory);
        zpage_test::Page back{};
        REQUIRE(store.load(0, back));
        CHECK(back == old_page);
    }
    CHECK(store.stats().failed_writes > 0);
    CHECK(store.validate() == "");  // the refused stores left no trace in the books
    CHECK(store.store(2047, incompressible()));  // the fault is gone: stores work again
}

TEST_CASE("a corrupt stored page is reported, zeroed, and the others survive") {
    zpage::CompressedPageStore<RecordingTraits> store(4);
    const zpage_test::Page a = compressible(1), b = compressible(2);
    REQUIRE(store.store(0, a));
    REQUIRE(store.store(1, b));
    store.allocator().damage(0);
    zpage_test::Page back = compressible(9);
    const zpage::Status st = store.load(0, back);
    CHECK(st == zpage::errc::corrupt_data);
    CHECK(std::all_of(back.begin(), back.end(), [](std::byte x) { return x == std::byte{0}; }));
    CHECK(store.stats().failed_reads == 1);
    CHECK(store.validate() == "");
    REQUIRE(store.load(1, back));
    CHECK(back == b);
    // Overwriting the damaged page repairs it.
    REQUIRE(store.store(0, a));
    REQUIRE(store.load(0, back));
    CHECK(back == a);
}

TEST_CASE("validate() names the figures that disagree with what the page table holds") {
    zpage::CompressedPageStore<RecordingTraits> store(4);
    REQUIRE(store.store(0, compressible(1)));
    REQUIRE(store.store(1, compressible(2)));
    CHECK(store.validate() == "");
    store.allocator().leak_next_free();
    REQUIRE(store.erase(1));  // its object stays in the allocator: a leak
    const std::string problems = store.validate();
    CHECK(problems.find("allocator objects: the page table holds 1, the books say 2") != std::string::npos);
    CHECK(problems.find("mem_used_total") == std::string::npos);  // the leaked object's span is still charged
    CHECK(problems.find("compr_data_size") == std::string::npos);
}
