// Pages that do not compress below the huge threshold are stored raw, whole, as zram's huge pages.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {
zpage_test::Page random_page(std::uint64_t seed) {
    zpage_test::Page p{};
    std::mt19937_64 rng(seed);
    for (auto& b : p) b = static_cast<std::byte>(rng());
    return p;
}
// Compresses to roughly `fraction` of a page with lz4: random bytes up to it, zeros after.
zpage_test::Page partly_random(double fraction, std::uint64_t seed) {
    zpage_test::Page p{};
    std::mt19937_64 rng(seed);
    const auto n = static_cast<std::size_t>(fraction * 4096);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(rng());
    return p;
}
}  // namespace

TEST_CASE("incompressible pages are stored raw and counted as huge") {
    zpage::Lz4Store store(8);
    CHECK(store.huge_threshold() == 3632);
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(store.store(i, random_page(i)));
    zpage::Stats s = store.stats();
    CHECK(s.huge_pages == 4);
    CHECK(s.huge_pages_since == 4);
    CHECK(s.compr_data_size == 4 * 4096);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < 4; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(back == random_page(i));
    }
    REQUIRE(store.erase(0));
    REQUIRE(store.store(1, partly_random(0.2, 9)));  // replaced by a compressible page
    s = store.stats();
    CHECK(s.huge_pages == 2);
    CHECK(s.huge_pages_since == 4);  // "since" never goes down
}

TEST_CASE("the huge threshold is where compressed pages stop") {
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 4, .huge_threshold_bytes = 2048});
    REQUIRE(store.store(0, partly_random(0.25, 1)));  // ~1 KiB compressed: kept compressed
    REQUIRE(store.store(1, partly_random(0.75, 2)));  // ~3 KiB compressed: over 2 KiB, kept raw
    const zpage::Stats s = store.stats();
    CHECK(s.huge_pages == 1);
    CHECK(s.compr_data_size > 4096);
    CHECK(s.compr_data_size < 4096 + 2048);
    zpage_test::Page back{};
    REQUIRE(store.load(1, back));
    CHECK(back == partly_random(0.75, 2));
}

TEST_CASE("the identity codec stores every page raw") {
    zpage::IdentityStore store(3);
    REQUIRE(store.store(0, partly_random(0.1, 1)));
    REQUIRE(store.store(1, random_page(2)));
    CHECK(store.stats().huge_pages == 2);
    CHECK(store.stats().compr_data_size == 2 * 4096);
}

TEST_CASE("a huge threshold outside (64, page) is refused") {
    CHECK_THROWS_AS(zpage::Lz4Store(zpage::StoreConfig{.capacity_pages = 1, .huge_threshold_bytes = 4096}),
                    std::invalid_argument);
    CHECK_THROWS_AS(zpage::Lz4Store(zpage::StoreConfig{.capacity_pages = 1, .huge_threshold_bytes = 10}),
                    std::invalid_argument);
}
