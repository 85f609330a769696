// Every page of the real corpora round-trips byte-exact through a store with every shipped traits
// bundle (and 16 KiB pages), and the statistics agree with an independent count.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {

// What the statistics must say, computed apart from the store: same-filled pages, and the codec's
// own output sizes given ample room (a page over the huge threshold counts as a whole page).
template <class Store>
zpage::Stats expected_stats(const zpage_test::Corpus& corpus, const Store& store) {
    constexpr std::size_t page_size = Store::page_size;
    auto codec = store.compressor();
    auto ctx = codec.make_compress_context();
    std::vector<std::byte> out(2 * page_size);
    zpage::Stats s;
    for (std::size_t i = 0; i < corpus.pages(page_size); ++i) {
        const auto page = corpus.template page<page_size>(i);
        s.orig_data_size += page_size;
        if (zpage::detail::same_fill_word<page_size>(page)) {
            ++s.same_pages;
            continue;
        }
        const std::size_t n = codec.compress(ctx, page, out);
        const bool huge = n == 0 || n > store.huge_threshold();
        s.compr_data_size += huge ? page_size : n;
        s.huge_pages += huge;
    }
    return s;
}

template <class Store>
void round_trip_corpora() {
    ZPAGE_REQUIRE_CORPORA();
    constexpr std::size_t page_size = Store::page_size;
    for (const auto& corpus : zpage_test::corpora()) {
        const std::size_t pages = corpus.pages(page_size);
        Store store(pages);
        INFO(store.compressor().name() << ", " << page_size << " B pages, " << corpus.name);
        for (std::size_t i = 0; i < pages; ++i) REQUIRE(store.store(i, corpus.template page<page_size>(i)));
        std::vector<std::byte> back(page_size);
        std::size_t mismatches = 0;
        for (std::size_t i = 0; i < pages; ++i) {
            REQUIRE(store.load(i, std::span<std::byte, page_size>(back.data(), page_size)));
            mismatches += std::memcmp(back.data(), corpus.template page<page_size>(i).data(), page_size) != 0;
        }
        CHECK(mismatches == 0);

        const zpage::Stats got = store.stats();
        const zpage::Stats want = expected_stats(corpus, store);
        CHECK(got.orig_data_size == want.orig_data_size);
        CHECK(got.compr_data_size == want.compr_data_size);
        CHECK(got.same_pages == want.same_pages);
        CHECK(got.huge_pages == want.huge_pages);
        CHECK(got.huge_pages_since == want.huge_pages);
        CHECK(got.num_writes == pages);
        CHECK(got.num_reads == pages);
        CHECK(got.failed_reads == 0);
        CHECK(got.failed_writes == 0);
        CHECK(got.mem_used_total >= got.compr_data_size);
        CHECK(got.mem_used_max >= got.mem_used_total);
    }
}

}  // namespace

TEST_CASE("lz4 store round-trips the corpora") { round_trip_corpora<zpage::Lz4Store>(); }
TEST_CASE("lz4hc store round-trips the corpora") { round_trip_corpora<zpage::Lz4hcStore>(); }
TEST_CASE("zstd store round-trips the corpora") { round_trip_corpora<zpage::ZstdStore>(); }
TEST_CASE("identity store round-trips the corpora") { round_trip_corpora<zpage::IdentityStore>(); }
TEST_CASE("16 KiB lz4 store round-trips the corpora") {
    round_trip_corpora<zpage::CompressedPageStore<zpage::TraitsFor<zpage::Lz4, 16384>>>();
}
TEST_CASE("16 KiB zstd store round-trips the corpora") {
    round_trip_corpora<zpage::CompressedPageStore<zpage::TraitsFor<zpage::Zstd, 16384>>>();
}
