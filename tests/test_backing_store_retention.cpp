// Every shipped backing store, by default, keeps freed blocks for later batches rather than
// giving their space back in free(): up to retain_freed_bytes waits, a later batch overwrites
// what it reuses without a punch, beyond it each batch first gives back a few coalesced runs, and
// trim() gives back all of it, adjacent blocks in one call. For a file, st_blocks shows it.
#include "backing_fixtures.hpp"

using Call = zpage::detail::file_io::Call;

namespace {

template <class Maker>
constexpr bool on_file = std::is_same_v<typename Maker::store_type, zpage::FileBackingStore>;

// The bytes the store's file takes, or 0 for a store without one.
template <class Maker>
std::uint64_t file_bytes(zpage_test::BackingUnderTest<Maker>& b) {
    if constexpr (on_file<Maker>) return zpage_test::allocated_bytes(b.file.path());
    return 0;
}

// n records of one block each, in one batch.
template <class Store>
std::vector<zpage::BackingLocation> write_blocks(Store& store, std::size_t n) {
    const std::vector<std::byte> block(4096, std::byte{9});
    const std::vector<std::span<const std::byte>> batch(n, std::span<const std::byte>(block));
    std::vector<zpage::BackingLocation> at(n);
    REQUIRE(store.write(batch, at).ok());
    return at;
}

}  // namespace

TEST_CASE_TEMPLATE("freed blocks are retained, then trimmed in coalesced runs", Maker, ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b({.max_batch_records = 64});
    const auto at = write_blocks(*b, 64);
    const std::uint64_t written = file_bytes(b);
    for (std::size_t i = 0; i < 64; ++i)
        if (i % 16 < 12) b->free(at[i], 4096);  // four runs of 12 blocks
    CHECK(b->stats().bd_count == 16);
    CHECK(b->retained_bytes() == 48 * 4096);
    CHECK(file_bytes(b) == written);  // nothing punched yet

    const zpage_test::FileFaults count_punches(Call::punch, {}, 1 << 30);
    b->trim();
    CHECK(b->retained_bytes() == 0);
    if constexpr (on_file<Maker>) {
        CHECK(zpage_test::FileFaults::calls() == 4);
        CHECK(file_bytes(b) == written - 48 * 4096);
    }
    b->trim();  // nothing left to give back
    if constexpr (on_file<Maker>) CHECK(zpage_test::FileFaults::calls() == 4);
}

TEST_CASE_TEMPLATE("a retained block a batch reuses is overwritten, never punched", Maker, ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b({.max_bytes = 8 * 4096});
    const auto first = write_blocks(*b, 8);  // full
    for (const auto location : first) b->free(location, 4096);
    CHECK(b->retained_bytes() == 8 * 4096);
    const zpage_test::FileFaults count_punches(Call::punch, {}, 1 << 30);
    const auto again = write_blocks(*b, 4);  // next-fit wraps to block 0
    CHECK(again.front() == 0);
    CHECK(b->retained_bytes() == 4 * 4096);
    CHECK(zpage_test::FileFaults::calls() == 0);
}

TEST_CASE_TEMPLATE("beyond retain_freed_bytes, each batch first gives back a few runs", Maker,
                   ZPAGE_TEST_BACKING_STORES) {
    zpage_test::BackingUnderTest<Maker> b({.max_batch_records = 64, .retain_freed_bytes = 8 * 4096});
    const auto at = write_blocks(*b, 64);
    const std::uint64_t written = file_bytes(b);
    for (std::size_t i = 0; i < 64; i += 2) b->free(at[i], 4096);  // 32 runs of one block
    CHECK(b->retained_bytes() == 32 * 4096);
    const zpage_test::FileFaults count_punches(Call::punch, {}, 1 << 30);
    write_blocks(*b, 1);  // lands after the 64: reuses none
    const std::size_t runs = zpage::detail::BlockSpace::punch_calls_per_batch;
    CHECK(b->retained_bytes() == (32 - runs) * 4096);
    if constexpr (on_file<Maker>) {
        CHECK(zpage_test::FileFaults::calls() == static_cast<int>(runs));
        // The batch's block came, 8 went; ext4 may take a block for its extent tree meanwhile (a file
        // of more than 4 extents), so the drop is 7 or 8 blocks.
        const std::uint64_t dropped = written + 4096 - file_bytes(b);
        CHECK(dropped <= runs * 4096);
        CHECK(dropped >= (runs - 1) * 4096);
    }
    for (int i = 0; i < 3; ++i) write_blocks(*b, 1);  // 32 - 4 x 8 = 0: none left over the limit
    CHECK(b->retained_bytes() <= 8 * 4096);
}
