// Where every shipped backing store puts a batch: right after the previous one (sequential
// writes), wrapping around to space freed at the start, and over several free runs when no single
// run holds it; a record that needs more adjacent blocks than any free run has is no_space.
#include "backing_fixtures.hpp"

namespace {

std::vector<std::byte> bytes_of(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 13 + seed);
    return v;
}

template <class Store>
std::vector<zpage::BackingLocation> write_all(Store& store, const std::vector<std::vector<std::byte>>& records) {
    std::vector<std::span<const std::byte>> batch(records.begin(), records.end());
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(store.write(batch, at).ok());
    return at;
}

template <class Store>
zpage::Status write_one(Store& store, std::size_t bytes) {
    const std::vector<std::byte> record = bytes_of(bytes, 0);
    const std::vector<std::span<const std::byte>> batch{record};
    std::vector<zpage::BackingLocation> at(1);
    return store.write(batch, at);
}

}  // namespace

TEST_CASE_TEMPLATE("a batch's records are packed back to back and the next batch starts at the next block", Maker,
                   ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b;
    const auto first = write_all(*b, {bytes_of(1000, 1), bytes_of(3000, 2), bytes_of(500, 3)});
    CHECK(first == std::vector<zpage::BackingLocation>{0, 1000, 4000});
    const auto second = write_all(*b, {bytes_of(2000, 4), bytes_of(100, 5)});
    CHECK(second == std::vector<zpage::BackingLocation>{8192, 10192});  // 4500 B end in block 1: next is block 2
    CHECK(b->stats().bd_count == 3);
}

TEST_CASE_TEMPLATE("next-fit wraps around to space freed at the start", Maker, ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b({.max_bytes = 16 * 4096, .max_record_bytes = 2 * 4096});
    std::vector<std::vector<zpage::BackingLocation>> batches;
    for (int i = 0; i < 4; ++i)  // 4 batches of 4 blocks: full
        batches.push_back(write_all(*b, {bytes_of(4096, 1), bytes_of(4096, 2), bytes_of(4096, 3), bytes_of(4096, 4)}));
    CHECK(b->stats().bd_count == 16);
    CHECK(write_one(*b, 10) == zpage::errc::no_space);
    for (const auto at : batches[1]) b->free(at, 4096);
    const auto again = write_all(*b, {bytes_of(4096, 5), bytes_of(4096, 6)});
    CHECK(again == std::vector<zpage::BackingLocation>{4 * 4096, 5 * 4096});
    const auto more = write_all(*b, {bytes_of(8000, 7)});
    CHECK(more == std::vector<zpage::BackingLocation>{6 * 4096});
}

TEST_CASE_TEMPLATE("a batch no free run holds is split over several, each record in one", Maker,
                   ZPAGE_TEST_BACKING_STORES) {
    constexpr std::size_t blocks = 64;
    zpage_test::BackingUnderTest<Maker> b(
        {.max_bytes = blocks * 4096, .max_record_bytes = 2 * 4096, .max_batch_records = blocks});
    std::vector<std::vector<std::byte>> whole;
    for (unsigned i = 0; i < blocks; ++i) whole.push_back(bytes_of(4096, i));
    const auto at = write_all(*b, whole);
    for (std::size_t i = 0; i < blocks; i += 2) b->free(at[i], 4096);  // every other block free
    CHECK(b->stats().bd_count == blocks / 2);

    // A record of two blocks finds no two adjacent free ones.
    CHECK(write_one(*b, 5000) == zpage::errc::no_space);
    CHECK(b->stats().bd_count == blocks / 2);

    // 32 records of 3000 B: no two share a block (they would straddle into a used one).
    std::vector<std::vector<std::byte>> scattered;
    for (unsigned i = 0; i < blocks / 2; ++i) scattered.push_back(bytes_of(3000, 100 + i));
    const auto placed = write_all(*b, scattered);
    CHECK(b->stats().bd_count == blocks);
    for (std::size_t i = 0; i < placed.size(); ++i) {
        CHECK(placed[i] % 4096 == 0);
        CHECK(placed[i] / 4096 % 2 == 0);
        std::vector<std::byte> back(3000);
        REQUIRE(b->read(placed[i], back).ok());
        CHECK(back == scattered[i]);
    }
    for (std::size_t i = 1; i < blocks; i += 2) {  // the records written first are intact
        std::vector<std::byte> back(4096);
        REQUIRE(b->read(at[i], back).ok());
        CHECK(back == whole[i]);
    }
}
