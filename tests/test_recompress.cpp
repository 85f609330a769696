// Recompression with secondary codecs: every corpus through store, recompress (each codec pair,
// pages alone and in groups of 4 and 16) and load, byte for byte; what pays is kept, what does not
// is flagged; units go with their last page.
#include <zpage/zpage.hpp>

#include <array>
#include <random>
#include <vector>

#include "fixtures.hpp"

namespace {

template <class Primary, class... Secondary>
struct Tiered : zpage::TraitsFor<Primary> {
    using secondary_codecs = std::tuple<Secondary...>;
};

using Lz4ZstdStore = zpage::CompressedPageStore<Tiered<zpage::Lz4, zpage::Zstd>>;
using Lz4Lz4hcStore = zpage::CompressedPageStore<Tiered<zpage::Lz4, zpage::Lz4hc>>;
using RawZstdStore = zpage::CompressedPageStore<Tiered<zpage::Identity, zpage::Zstd>>;

// The corpora's pages, or generated ones when ../shared is absent.
std::vector<std::byte> sample_pages(std::size_t max_pages) {
    const auto& all = zpage_test::corpora();
    std::vector<std::byte> pages;
    for (const auto& corpus : all) {
        const std::size_t n = std::min(corpus.pages(), max_pages / all.size());
        pages.insert(pages.end(), corpus.bytes.begin(), corpus.bytes.begin() + static_cast<std::ptrdiff_t>(n * 4096));
    }
    return pages;
}

template <class Store>
void store_all(Store& store, const std::vector<std::byte>& pages) {
    for (std::size_t i = 0; i < pages.size() / 4096; ++i)
        REQUIRE(store.store(i, std::span<const std::byte, 4096>(pages.data() + i * 4096, 4096)));
}

template <class Store>
void check_all(Store& store, const std::vector<std::byte>& pages) {
    std::array<std::byte, 4096> back;
    for (std::size_t i = 0; i < pages.size() / 4096; ++i) {
        REQUIRE(store.load(i, back));
        REQUIRE_MESSAGE(std::memcmp(back.data(), pages.data() + i * 4096, 4096) == 0, "page " << i);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("recompressing corpus pages alone and in groups keeps every byte and saves memory", Store,
                   Lz4ZstdStore, Lz4Lz4hcStore, RawZstdStore) {
    if (zpage_test::corpora().empty()) {
        MESSAGE("skipped: no corpora in " << zpage_test::corpora_dir());
        return;
    }
    const std::vector<std::byte> pages = sample_pages(zpage_test::scaled(6144));
    const std::size_t n = pages.size() / 4096;
    for (const std::size_t group : {std::size_t{1}, std::size_t{4}, std::size_t{16}}) {
        CAPTURE(group);
        Store store(zpage::StoreConfig{.capacity_pages = n});
        store_all(store, pages);
        const zpage::Stats before = store.stats();
        CHECK(store.mark_idle() > 0);
        const zpage::RecompressResult r =
            store.recompress({.select = zpage::RecompressSelect::idle, .group_pages = group});
        CHECK(r.status);
        CHECK(r.pages > n / 2);
        CHECK(r.bytes_saved > 0);
        // The old objects leave holes in their spans; compaction gives them back.
        static_cast<void>(store.compact());
        const zpage::Stats after = store.stats();
        CHECK(after.mem_used_total < before.mem_used_total);
        CHECK(after.orig_data_size == before.orig_data_size);
        MESSAGE("group " << group << ": mem_used " << before.mem_used_total << " -> " << after.mem_used_total
                         << ", pages " << r.pages << ", units " << r.units << ", not paid " << r.not_paid);
        check_all(store, pages);
        // A second pass finds nothing left to take: recompressed pages and incompressible ones stay.
        store.mark_idle();
        CHECK(store.recompress({.select = zpage::RecompressSelect::idle, .group_pages = group}).pages == 0);
        // Compaction moves units' pieces through their units.
        for (std::size_t i = 0; i < n; i += 3) REQUIRE(store.erase(i));
        static_cast<void>(store.compact());
        for (std::size_t i = 0; i < n; ++i) {
            std::array<std::byte, 4096> back;
            REQUIRE(store.load(i, back));
            if (i % 3 == 0) {
                CHECK(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
            } else {
                REQUIRE(std::memcmp(back.data(), pages.data() + i * 4096, 4096) == 0);
            }
        }
        for (std::size_t i = 0; i < n; ++i) REQUIRE(store.erase(i));
        const zpage::Stats empty = store.stats();
        CHECK(empty.compr_data_size == 0);
        CHECK(empty.orig_data_size == 0);
        static_cast<void>(store.compact());
        CHECK(store.allocator().stats().objects == 0);
    }
}

TEST_CASE("recompression under a memory limit never passes it and loses nothing") {
    if (zpage_test::corpora().empty()) {
        MESSAGE("skipped: no corpora in " << zpage_test::corpora_dir());
        return;
    }
    const std::vector<std::byte> pages = sample_pages(zpage_test::scaled(8192));
    const std::size_t n = pages.size() / 4096;
    for (const std::size_t headroom : {std::size_t{0}, std::size_t{256} << 10}) {
        CAPTURE(headroom);
        Lz4ZstdStore store(zpage::StoreConfig{.capacity_pages = n});
        store_all(store, pages);
        const std::size_t limit = store.stats().mem_used_total + headroom;
        store.set_mem_limit(limit);
        store.mark_idle();
        const zpage::RecompressResult r = store.recompress({.select = zpage::RecompressSelect::idle, .group_pages = 16});
        MESSAGE("headroom " << headroom << ": " << r.pages << " pages, status " << r.status.message());
        CHECK((r.status || r.status == zpage::errc::memory_limit));
        CHECK(store.stats().mem_used_max <= limit);
        if (headroom != 0) CHECK(r.pages > n / 2);  // compaction as it goes makes room for the rest
        check_all(store, pages);
    }
}

TEST_CASE("pages no codec shrinks are flagged incompressible and not taken again") {
    constexpr std::size_t n = 64;
    Lz4ZstdStore store(zpage::StoreConfig{.capacity_pages = n});
    std::mt19937_64 rng(zpage_test::test_seed());
    std::vector<std::byte> pages(n * 4096);
    for (auto& b : pages) b = static_cast<std::byte>(rng());
    store_all(store, pages);
    CHECK(store.stats().huge_pages == n);
    const zpage::RecompressResult r = store.recompress({.select = zpage::RecompressSelect::huge, .group_pages = 16});
    CHECK(r.status);
    CHECK(r.pages == 0);
    CHECK(r.not_paid == n / 16);
    for (std::size_t i = 0; i < n; ++i) CHECK(store.state(i).has(zpage::PageFlag::incompressible));
    // Flagged: no pass takes them again, alone or grouped.
    CHECK(store.recompress({.select = zpage::RecompressSelect::any}).not_paid == 0);
    CHECK(store.recompress({.select = zpage::RecompressSelect::huge, .group_pages = 4}).not_paid == 0);
    CHECK(store.recompress_stats().attempts_not_paid == n / 16);
    check_all(store, pages);
}

TEST_CASE("bad requests are refused with invalid_argument and change nothing") {
    Lz4ZstdStore store(zpage::StoreConfig{.capacity_pages = 8});
    CHECK(store.recompress({.codec = 0}).status == zpage::errc::invalid_argument);
    CHECK(store.recompress({.codec = 2}).status == zpage::errc::invalid_argument);
    CHECK(store.recompress({.group_pages = 0}).status == zpage::errc::invalid_argument);
    CHECK(store.recompress({.group_pages = 17}).status == zpage::errc::invalid_argument);
}
