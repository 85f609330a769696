// Model-based test: random mixes of store, load, erase, contains and compact against a
// std::unordered_map reference, on every shipped bundle. The seed is printed; ZPAGE_TEST_SEED
// replays a run.
#include <zpage/zpage.hpp>

#include <unordered_map>

#include "fixtures.hpp"

TEST_CASE_TEMPLATE("the store behaves like a map of pages", Store, zpage::Lz4Store, zpage::ZstdStore,
                   zpage::Lz4hcStore, zpage::IdentityStore) {
    constexpr std::size_t capacity = 3000;
    const std::size_t operations = zpage_test::scaled(120000, 6);
    const std::uint64_t seed = zpage_test::test_seed();
    std::mt19937_64 rng(seed);
    zpage_test::PageSource source(seed);
    // A pool of pages to draw from, so that the same content is stored many times over.
    std::vector<zpage_test::Page> pool;
    for (int i = 0; i < 512; ++i) pool.push_back(source.next());

    Store store(capacity);
    std::unordered_map<std::size_t, std::size_t> model;  // index -> pool entry
    zpage_test::Page back{};
    std::size_t compactions = 0;
    for (std::size_t op = 0; op < operations; ++op) {
        const std::size_t index = rng() % (capacity + 10);  // some indices out of range
        const unsigned kind = static_cast<unsigned>(rng() % 100);
        if (kind < 45) {
            const std::size_t which = rng() % pool.size();
            const zpage::Status st = store.store(index, pool[which]);
            if (index >= capacity) {
                REQUIRE(st == zpage::errc::out_of_range);
            } else {
                REQUIRE(st);
                model[index] = which;
            }
        } else if (kind < 85) {
            const zpage::Status st = store.load(index, back);
            if (index >= capacity) {
                REQUIRE(st == zpage::errc::out_of_range);
                continue;
            }
            REQUIRE(st);
            const auto it = model.find(index);
            if (it == model.end()) {
                REQUIRE(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
            } else {
                REQUIRE(back == pool[it->second]);
            }
        } else if (kind < 95) {
            const zpage::Status st = store.erase(index);
            REQUIRE(st == (index >= capacity ? zpage::errc::out_of_range : zpage::errc::ok));
            model.erase(index);
        } else if (kind < 99) {
            REQUIRE(store.contains(index) == (model.count(index) == 1));
        } else {
            static_cast<void>(store.compact());
            ++compactions;
        }
        if (op % 4096 == 0) {
            REQUIRE(store.validate() == "");
            const zpage::Stats s = store.stats();
            REQUIRE(s.orig_data_size == model.size() * 4096);
            REQUIRE(s.mem_used_total <= s.mem_used_max);
        }
    }
    // Everything the model holds is in the store, byte for byte, also after a final compaction.
    static_cast<void>(store.compact());
    for (const auto& [index, which] : model) {
        REQUIRE(store.load(index, back));
        REQUIRE(back == pool[which]);
    }
    std::size_t same = 0;
    for (const auto& [index, which] : model) same += zpage::detail::same_fill_word<4096>(pool[which]).has_value();
    CHECK(store.stats().same_pages == same);
    CHECK(compactions > 0);
}
