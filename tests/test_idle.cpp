// Idle tracking: mark_idle() flags pages held in memory, a store or load clears the flag, and with
// a policy that keeps access times, mark_idle(age) flags only pages untouched for that long.
#include <zpage/zpage.hpp>

#include <thread>

#include "bundles.hpp"
#include "fixtures.hpp"

namespace {

// A policy that keeps access times but never writes back.
struct AccessTimes {
    static constexpr bool tracks_access_time = true;
    static constexpr bool writes_back = false;
};
struct TrackingTraits : zpage::DefaultTraits {
    using writeback = AccessTimes;
};

template <std::size_t N>
std::array<std::byte, N> compressible_page(zpage_test::PageSource& source) {
    std::array<std::byte, N> p;
    do p = zpage_test::large_page<N>(source);
    while (zpage::detail::same_fill_word<N>(p));
    return p;
}

}  // namespace

TEST_CASE_TEMPLATE("mark_idle flags the pages in memory and an access clears the flag", Store, ZPAGE_TEST_STORES) {
    constexpr std::size_t page_size = Store::page_size;
    Store store(8);
    zpage_test::PageSource source(11);
    const auto page = compressible_page<page_size>(source);
    std::array<std::byte, page_size> zeros{}, back{};
    REQUIRE(store.store(0, page));
    REQUIRE(store.store(1, page));
    REQUIRE(store.store(2, zeros));  // same-filled: holds no memory, never idle
    CHECK(store.mark_idle() == 2);
    CHECK(store.state(0).has(zpage::PageFlag::idle));
    CHECK(store.state(1).has(zpage::PageFlag::idle));
    CHECK_FALSE(store.state(2).has(zpage::PageFlag::idle));
    CHECK_FALSE(store.state(3).has(zpage::PageFlag::idle));  // never stored
    CHECK(store.mark_idle() == 0);                           // already idle

    REQUIRE(store.load(0, back));
    CHECK(back == page);
    CHECK_FALSE(store.state(0).has(zpage::PageFlag::idle));
    REQUIRE(store.store(1, page));
    CHECK_FALSE(store.state(1).has(zpage::PageFlag::idle));
    CHECK(store.mark_idle() == 2);
    REQUIRE(store.erase(0));
    CHECK_FALSE(store.state(0).stored());
    CHECK_FALSE(store.state(0).has(zpage::PageFlag::idle));
}

TEST_CASE("mark_idle(age) flags only pages untouched for that long") {
    zpage::CompressedPageStore<TrackingTraits> store(4);
    zpage_test::PageSource source(12);
    const auto page = compressible_page<4096>(source);
    REQUIRE(store.store(0, page));
    REQUIRE(store.store(1, page));
    const std::uint32_t stored_at = store.state(0).access_time;
    CHECK(stored_at + 1 >= zpage::detail::now_seconds());
    CHECK(store.mark_idle(std::chrono::seconds(3600)) == 0);  // both touched just now

    // Let the clock move two seconds on, touch page 1, and ask for pages untouched for a second.
    while (zpage::detail::now_seconds() < stored_at + 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    zpage_test::Page back{};
    REQUIRE(store.load(1, back));
    CHECK(back == page);
    CHECK(store.state(1).access_time >= stored_at + 2);
    CHECK(store.mark_idle(std::chrono::seconds(1)) == 1);
    CHECK(store.state(0).has(zpage::PageFlag::idle));
    CHECK_FALSE(store.state(1).has(zpage::PageFlag::idle));
}

TEST_CASE("a store without access times leaves them at zero") {
    zpage::Lz4Store store(2);
    zpage_test::PageSource source(13);
    REQUIRE(store.store(0, compressible_page<4096>(source)));
    CHECK(store.state(0).access_time == 0);
}
