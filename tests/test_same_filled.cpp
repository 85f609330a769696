// Same-filled pages (one repeated 8-byte word) live in their page-table entry: no allocation, no
// compressed bytes, read back exactly. Pages that only almost repeat are stored normally.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {
zpage_test::Page filled(std::uint64_t word) {
    zpage_test::Page p{};
    for (std::size_t off = 0; off < p.size(); off += 8) std::memcpy(p.data() + off, &word, 8);
    return p;
}
}  // namespace

TEST_CASE("same-filled pages take no memory and read back exactly") {
    zpage::Lz4Store store(16);
    const std::size_t baseline = store.stats().mem_used_total;
    const std::uint64_t words[] = {0, ~std::uint64_t{0}, 0x0101010101010101ULL, 0xDEADBEEFCAFEF00DULL};
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(store.store(i, filled(words[i])));
    const zpage::Stats s = store.stats();
    CHECK(s.same_pages == 4);
    CHECK(s.compr_data_size == 0);
    CHECK(s.orig_data_size == 4 * 4096);
    CHECK(s.mem_used_total == baseline);
    CHECK(store.allocator().stats().objects == 0);
    zpage_test::Page back{};
    for (std::size_t i = 0; i < 4; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(back == filled(words[i]));
    }
}

TEST_CASE("a page that differs in its last byte is not same-filled") {
    zpage::Lz4Store store(4);
    zpage_test::Page almost = filled(0);
    almost.back() = std::byte{1};
    zpage_test::Page first_differs = filled(0x4242424242424242ULL);
    first_differs.front() = std::byte{0};
    zpage_test::Page middle_differs = filled(7);
    middle_differs[2049] = std::byte{9};
    REQUIRE(store.store(0, almost));
    REQUIRE(store.store(1, first_differs));
    REQUIRE(store.store(2, middle_differs));
    CHECK(store.stats().same_pages == 0);
    CHECK(store.allocator().stats().objects == 3);
    zpage_test::Page back{};
    REQUIRE(store.load(0, back));
    CHECK(back == almost);
    REQUIRE(store.load(1, back));
    CHECK(back == first_differs);
    REQUIRE(store.load(2, back));
    CHECK(back == middle_differs);
}

TEST_CASE("a word with a 4-byte period is still one repeated 8-byte word") {
    zpage::Lz4Store store(1);
    REQUIRE(store.store(0, filled(0xABCD1234ABCD1234ULL)));
    CHECK(store.stats().same_pages == 1);
}

TEST_CASE("replacing and erasing same-filled pages keeps the counts right") {
    zpage::Lz4Store store(2);
    REQUIRE(store.store(0, filled(5)));
    REQUIRE(store.store(0, filled(6)));
    CHECK(store.stats().same_pages == 1);
    zpage_test::PageSource source(3);
    zpage_test::Page real{};
    do real = source.next();
    while (zpage::detail::same_fill_word<4096>(real));
    REQUIRE(store.store(0, real));
    CHECK(store.stats().same_pages == 0);
    REQUIRE(store.store(1, filled(0)));
    REQUIRE(store.erase(1));
    CHECK(store.stats().same_pages == 0);
    CHECK(store.stats().orig_data_size == 4096);
    zpage_test::Page back{};
    REQUIRE(store.load(1, back));
    CHECK(back == filled(0));  // an erased page reads as zeros
}

TEST_CASE("the 16 KiB store detects same-filled pages too") {
    zpage::CompressedPageStore<zpage::TraitsFor<zpage::Lz4, 16384>> store(2);
    std::array<std::byte, 16384> page{};
    std::fill(page.begin(), page.end(), std::byte{0x77});
    REQUIRE(store.store(1, page));
    CHECK(store.stats().same_pages == 1);
    std::array<std::byte, 16384> back{};
    REQUIRE(store.load(1, back));
    CHECK(back == page);
}
