// Every page of the real corpora round-trips byte-exact through every codec, and no codec writes
// past the output limit it is given (the store passes the huge threshold as that limit).
#include <zpage/compressor/identity.hpp>
#include <zpage/compressor/lz4.hpp>
#include <zpage/compressor/zstd.hpp>

#include "fixtures.hpp"

namespace {

template <class Codec>
void round_trip_every_page(const Codec& codec) {
    ZPAGE_REQUIRE_CORPORA();
    auto cctx = codec.make_compress_context();
    auto dctx = codec.make_decompress_context();
    constexpr std::size_t limit = 3632;  // the store's huge threshold
    constexpr std::size_t guard = 64;
    std::vector<std::byte> out(2 * 4096);
    std::vector<std::byte> limited(limit + guard);
    zpage_test::Page back{};
    for (const auto& corpus : zpage_test::corpora()) {
        std::size_t mismatches = 0;
        std::size_t overruns = 0;
        for (std::size_t i = 0; i < corpus.pages(); ++i) {
            const auto page = corpus.page(i);
            const std::size_t n = codec.compress(cctx, page, out);
            REQUIRE(n > 0);
            const auto got = codec.decompress(dctx, std::span<const std::byte>(out.data(), n), back);
            if (!got || *got != 4096 || std::memcmp(back.data(), page.data(), 4096) != 0) ++mismatches;

            std::fill(limited.begin(), limited.end(), std::byte{0xA5});
            const std::size_t m = codec.compress(cctx, page, std::span<std::byte>(limited.data(), limit));
            if (std::any_of(limited.begin() + limit, limited.end(), [](std::byte b) { return b != std::byte{0xA5}; }))
                ++overruns;
            if (m != 0) {  // it fitted: it must decode too
                const auto again = codec.decompress(dctx, std::span<const std::byte>(limited.data(), m), back);
                if (!again || std::memcmp(back.data(), page.data(), 4096) != 0) ++mismatches;
            }
        }
        INFO(codec.name() << " on " << corpus.name);
        CHECK(mismatches == 0);
        CHECK(overruns == 0);
    }
}

}  // namespace

TEST_CASE("lz4 round-trips every corpus page") { round_trip_every_page(zpage::Lz4{}); }
TEST_CASE("lz4 with acceleration round-trips every corpus page") { round_trip_every_page(zpage::Lz4{.acceleration = 8}); }
TEST_CASE("lz4hc round-trips every corpus page") { round_trip_every_page(zpage::Lz4hc{.level = 9}); }
TEST_CASE("zstd round-trips every corpus page") { round_trip_every_page(zpage::Zstd{.level = 3}); }
TEST_CASE("zstd at a negative level round-trips every corpus page") { round_trip_every_page(zpage::Zstd{.level = -5}); }
TEST_CASE("identity round-trips every corpus page") { round_trip_every_page(zpage::Identity{}); }

TEST_CASE("codec names carry their parameters") {
    CHECK(zpage::Lz4{}.name() == "lz4");
    CHECK(zpage::Lz4{.acceleration = 4}.name() == "lz4-4");
    CHECK(zpage::Lz4hc{.level = 12}.name() == "lz4hc-12");
    CHECK(zpage::Zstd{.level = -3}.name() == "zstd--3");
    CHECK(zpage::Identity{}.name() == "identity");
}

TEST_CASE("zstd refuses a level it does not have at context creation") {
    CHECK_THROWS_AS((void)zpage::Zstd{.level = 1000}.make_compress_context(), std::invalid_argument);
}

TEST_CASE("compress reports a page that does not fit instead of truncating it") {
    zpage_test::Page random{};
    std::mt19937_64 rng(1);
    for (auto& b : random) b = static_cast<std::byte>(rng());
    std::vector<std::byte> small(1024);
    zpage::Lz4 lz4;
    auto c1 = lz4.make_compress_context();
    CHECK(lz4.compress(c1, random, small) == 0);
    zpage::Zstd zstd;
    auto c2 = zstd.make_compress_context();
    CHECK(zstd.compress(c2, random, small) == 0);
    zpage::Identity id;
    auto c3 = id.make_compress_context();
    CHECK(id.compress(c3, random, small) == 0);
}
