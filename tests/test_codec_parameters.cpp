// A codec parameter the codec cannot use is a std::invalid_argument at the store's construction,
// never a store that constructs and then fails every write (as out_of_memory, say).
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {

template <class Store>
void stores_and_loads(typename Store::compressor_type codec) {
    Store store(4, codec);
    zpage_test::PageSource source(7);
    for (std::size_t i = 0; i < 4; ++i) {
        const zpage_test::Page page = source.next();
        zpage_test::Page back{};
        REQUIRE(store.store(i, page));
        REQUIRE(store.load(i, back));
        CHECK(back == page);
    }
    CHECK(store.stats().failed_writes == 0);
}

// A custom codec without validate() whose parameter is checked when a context is made.
struct PickyCodec : zpage::Lz4 {
    bool usable = true;
    compress_context make_compress_context() const {
        if (!usable) throw std::invalid_argument("PickyCodec: not usable");
        return Lz4::make_compress_context();
    }
};

}  // namespace

TEST_CASE("zstd levels outside zstd's range are refused at construction") {
    for (const int level : {100, 23, ZSTD_maxCLevel() + 1, ZSTD_minCLevel() - 1, -200000}) {
        INFO("level " << level);
        CHECK_THROWS_AS(zpage::ZstdStore(4, zpage::Zstd{.level = level}), std::invalid_argument);
        CHECK_THROWS_AS(zpage::Zstd{.level = level}.validate(), std::invalid_argument);
    }
    for (const int level : {ZSTD_minCLevel(), -5, 1, 3, 19, ZSTD_maxCLevel()}) {
        INFO("level " << level);
        stores_and_loads<zpage::ZstdStore>(zpage::Zstd{.level = level});
    }
}

TEST_CASE("lz4 accelerations outside [1, 65537] are refused at construction") {
    for (const int acceleration : {0, -1, zpage::Lz4::max_acceleration + 1}) {
        INFO("acceleration " << acceleration);
        CHECK_THROWS_AS(zpage::Lz4Store(4, zpage::Lz4{.acceleration = acceleration}), std::invalid_argument);
    }
    for (const int acceleration : {1, 8, zpage::Lz4::max_acceleration}) {
        INFO("acceleration " << acceleration);
        stores_and_loads<zpage::Lz4Store>(zpage::Lz4{.acceleration = acceleration});
    }
}

TEST_CASE("lz4hc levels outside [1, 12] are refused at construction") {
    for (const int level : {0, -3, 13, 100}) {
        INFO("level " << level);
        CHECK_THROWS_AS(zpage::Lz4hcStore(4, zpage::Lz4hc{.level = level}), std::invalid_argument);
    }
    for (const int level : {1, 9, 12}) {
        INFO("level " << level);
        stores_and_loads<zpage::Lz4hcStore>(zpage::Lz4hc{.level = level});
    }
}

TEST_CASE("a custom codec that refuses its parameters when making a context fails the construction") {
    using Store = zpage::CompressedPageStore<zpage::TraitsFor<PickyCodec>>;
    PickyCodec bad;
    bad.usable = false;
    CHECK_THROWS_AS(Store(4, bad), std::invalid_argument);
    stores_and_loads<Store>(PickyCodec{});
}
