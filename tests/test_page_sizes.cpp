// Every page size a store takes, 4 KiB to 128 KiB, with every shipped codec: pages of real memory
// (consecutive 4 KiB pages of the corpora joined into one), same-filled, compressible and random
// pages load back byte-exact, and again after erasing half of them and compacting.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {

template <class Codec, std::size_t PageSize>
using StoreOf = zpage::CompressedPageStore<zpage::TraitsFor<Codec, PageSize>>;

// The pages one store gets, back to back; built without templates so that only the store's own
// code is compiled once per page size and codec.
struct PageSet {
    std::size_t page_size = 0;
    std::vector<std::byte> bytes;
    std::size_t same = 0;    // same-filled pages
    std::size_t random = 0;  // incompressible pages (stored raw)

    [[nodiscard]] std::size_t count() const { return bytes.size() / page_size; }
    [[nodiscard]] const std::byte* page(std::size_t i) const { return bytes.data() + i * page_size; }
    void add(const std::byte* from) { bytes.insert(bytes.end(), from, from + page_size); }
};

bool same_filled(const std::byte* page, std::size_t bytes) {
    for (std::size_t off = 8; off < bytes; off += 8)
        if (std::memcmp(page, page + off, 8) != 0) return false;
    return true;
}

PageSet make_pages(std::size_t page_size, std::uint64_t seed) {
    PageSet set;
    set.page_size = page_size;
    std::mt19937_64 rng(seed);
    // Real memory: about 1 MiB of each corpus (at least 4 pages), spread over the whole corpus.
    const std::size_t per_corpus = std::max<std::size_t>(4, zpage_test::scaled(1 << 20, 4) / page_size);
    for (const zpage_test::Corpus& c : zpage_test::corpora()) {
        const std::size_t joined = page_size / 4096;  // 4 KiB corpus pages per page
        const std::size_t last_start = c.pages() - joined;
        for (std::size_t i = 0; i < per_corpus; ++i) {
            set.add(c.bytes.data() + (i * last_start / (per_corpus - 1)) * 4096);
            set.same += same_filled(set.page(set.count() - 1), page_size);
        }
    }
    std::vector<std::byte> page(page_size);
    auto fill_words = [&](auto word_at) {
        for (std::size_t off = 0; off < page_size; off += 8) {
            const std::uint64_t word = word_at(off);
            std::memcpy(page.data() + off, &word, 8);
        }
        set.add(page.data());
    };
    // Words from small vocabularies: compressible to sizes spread over the classes.
    for (std::size_t vocabulary = 2; vocabulary < 4096; vocabulary *= 3)
        fill_words([&](std::size_t) { return (rng() % vocabulary) * 0x9E3779B97F4A7C15ULL; });
    for (const std::uint64_t word : {std::uint64_t{0}, std::uint64_t{0x0123456789ABCDEF}}) {
        fill_words([&](std::size_t) { return word; });
        ++set.same;
    }
    // Enough incompressible pages to fill more than a span of the largest class (at least 8).
    for (int i = 0; i < 24; ++i) {
        fill_words([&](std::size_t) { return rng(); });
        ++set.random;
    }
    return set;
}

template <class Store>
void check_loads(Store& store, const PageSet& set, bool half_erased) {
    constexpr std::size_t page_size = Store::page_size;
    std::vector<std::byte> back(page_size);
    const std::vector<std::byte> zeros(page_size);
    std::size_t mismatches = 0, first = 0;
    for (std::size_t i = 0; i < set.count(); ++i) {
        REQUIRE(store.load(i, std::span<std::byte, page_size>(back.data(), page_size)));
        const std::byte* want = half_erased && i % 2 == 1 ? zeros.data() : set.page(i);
        if (std::memcmp(back.data(), want, page_size) != 0 && mismatches++ == 0) first = i;
    }
    INFO("first mismatch at page " << first);
    CHECK(mismatches == 0);
}

template <class Store>
void round_trip(std::uint64_t seed) {
    constexpr std::size_t page_size = Store::page_size;
    const PageSet set = make_pages(page_size, seed);
    Store store(set.count());
    INFO(store.compressor().name() << ", " << page_size << " B pages, " << set.count() << " pages");
    for (std::size_t i = 0; i < set.count(); ++i)
        REQUIRE(store.store(i, std::span<const std::byte, page_size>(set.page(i), page_size)));
    const zpage::Stats filled = store.stats();
    CHECK(filled.same_pages == set.same);
    CHECK(filled.huge_pages >= set.random);
    check_loads(store, set, false);

    for (std::size_t i = 1; i < set.count(); i += 2) REQUIRE(store.erase(i));
    const zpage::CompactionResult compacted = store.compact();
    CHECK(compacted.objects_moved > 0);  // the random pages' class had every other slot emptied
    check_loads(store, set, true);
    CHECK(store.stats().mem_used_total < filled.mem_used_total);
    CHECK(store.stats().failed_reads == 0);
}

template <class Codec>
void every_page_size() {
    if (zpage_test::corpora().empty())
        MESSAGE("no page corpora in " << zpage_test::corpora_dir() << ": only generated pages are stored");
    const std::uint64_t seed = zpage_test::test_seed();
    round_trip<StoreOf<Codec, 4096>>(seed);
    round_trip<StoreOf<Codec, 8192>>(seed);
    round_trip<StoreOf<Codec, 16384>>(seed);
    round_trip<StoreOf<Codec, 32768>>(seed);
    round_trip<StoreOf<Codec, 65536>>(seed);
    round_trip<StoreOf<Codec, 131072>>(seed);
}

}  // namespace

TEST_CASE("lz4 stores of every page size round-trip") { every_page_size<zpage::Lz4>(); }
TEST_CASE("lz4hc stores of every page size round-trip") { every_page_size<zpage::Lz4hc>(); }
TEST_CASE("zstd stores of every page size round-trip") { every_page_size<zpage::Zstd>(); }
TEST_CASE("identity stores of every page size round-trip") { every_page_size<zpage::Identity>(); }
