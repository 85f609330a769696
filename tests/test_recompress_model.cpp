// Model-based test of a store with secondary codecs: random mixes of store, load, erase, compact,
// mark_idle and recompress (each secondary codec, pages alone and in groups of 4 and 16) against
// a std::unordered_map reference. The seed is printed; ZPAGE_TEST_SEED replays a run.
#include <zpage/zpage.hpp>

#include <unordered_map>

#include "fixtures.hpp"

namespace {
struct TwoSecondaries : zpage::DefaultTraits {
    using secondary_codecs = std::tuple<zpage::Zstd, zpage::Lz4hc>;
};
}  // namespace

TEST_CASE("a store that recompresses behaves like a map of pages") {
    constexpr std::size_t capacity = 2048;
    const std::size_t operations = zpage_test::scaled(100000, 6);
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    zpage_test::PageSource source(seed);
    std::vector<zpage_test::Page> pool;
    for (int i = 0; i < 512; ++i) pool.push_back(source.next());

    zpage::CompressedPageStore<TwoSecondaries> store(zpage::StoreConfig{.capacity_pages = capacity}, zpage::Lz4{}, {},
                                                     {zpage::Zstd{3}, zpage::Lz4hc{9}});
    std::unordered_map<std::size_t, std::size_t> model;  // index -> pool entry
    zpage_test::Page back{};
    std::size_t recompressed = 0, grouped_loads = 0;
    for (std::size_t op = 0; op < operations; ++op) {
        const std::size_t index = rng() % capacity;
        const unsigned kind = static_cast<unsigned>(rng() % 1000);
        if (kind < 400) {
            const std::size_t which = rng() % pool.size();
            REQUIRE(store.store(index, pool[which]));
            model[index] = which;
        } else if (kind < 850) {
            grouped_loads += store.state(index).has(zpage::PageFlag::grouped);
            REQUIRE(store.load(index, back));
            const auto it = model.find(index);
            if (it == model.end()) {
                REQUIRE(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
            } else {
                REQUIRE(back == pool[it->second]);
            }
        } else if (kind < 950) {
            REQUIRE(store.erase(index));
            model.erase(index);
        } else if (kind < 990) {
            static_cast<void>(store.mark_idle());
        } else if (kind < 998) {
            const std::size_t group = std::array<std::size_t, 3>{1, 4, 16}[rng() % 3];
            const std::size_t first = rng() % capacity;
            const zpage::RecompressResult r =
                store.recompress({.select = rng() % 2 == 0 ? zpage::RecompressSelect::idle : zpage::RecompressSelect::any,
                                  .max_pages = 1 + rng() % 512,
                                  .codec = static_cast<unsigned>(1 + rng() % 2),
                                  .group_pages = group,
                                  .first = first,
                                  .last = first + rng() % capacity});
            REQUIRE(r.status);
            recompressed += r.pages;
        } else {
            static_cast<void>(store.compact());
        }
        if (op % 4096 == 0) {
            const zpage::Stats s = store.stats();
            REQUIRE(s.orig_data_size == model.size() * 4096);
            REQUIRE(s.mem_used_total <= s.mem_used_max);
        }
    }
    MESSAGE(recompressed << " pages recompressed, " << grouped_loads << " loads of grouped pages");
    CHECK(recompressed > 0);
    CHECK(grouped_loads > 0);
    static_cast<void>(store.compact());
    CHECK(store.validate() == "");
    for (const auto& [index, which] : model) {
        REQUIRE(store.load(index, back));
        REQUIRE(back == pool[which]);
    }
    // Erasing every page leaves no object and no unit behind.
    for (std::size_t i = 0; i < capacity; ++i) REQUIRE(store.erase(i));
    static_cast<void>(store.compact());
    CHECK(store.allocator().stats().objects == 0);
    CHECK(store.stats().compr_data_size == 0);
    CHECK(store.validate() == "");
}
