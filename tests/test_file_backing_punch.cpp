// FileBackingStore with retain_freed_bytes = 0 gives space back in free(): a block is punched out
// of the file when the last record overlapping it is freed (st_blocks drops), not before; the
// blocks one free() empties are punched in one call; where the file system cannot punch, freed
// blocks are still reused. (The default, retaining and punching later: test_backing_store_retention.)
#include "backing_fixtures.hpp"

using Call = zpage::detail::file_io::Call;

TEST_CASE_TEMPLATE("a block shared by two records is punched only when both are freed", Maker, zpage_test::FileAio,
                   zpage_test::FilePwrite) {
    zpage_test::BackingUnderTest<Maker> b({.max_record_bytes = 8192, .retain_freed_bytes = 0});
    REQUIRE(b->punches());
    const std::filesystem::path& file = b.file.path();
    const std::uint64_t before = zpage_test::allocated_bytes(file);

    // A: [0, 6000) on blocks 0 and 1; B: [6000, 9000) on blocks 1 and 2.
    const std::vector<std::byte> a(6000, std::byte{0xa}), bb(3000, std::byte{0xb});
    std::array<zpage::BackingLocation, 2> at{};
    REQUIRE(b->write(std::vector<std::span<const std::byte>>{a, bb}, at).ok());
    REQUIRE(at == std::array<zpage::BackingLocation, 2>{0, 6000});
    const std::uint64_t written = zpage_test::allocated_bytes(file);
    CHECK(written - before == 3 * 4096);
    CHECK(b->stats().bd_count == 3);

    b->free(at[0], a.size());  // block 0 is empty; block 1 still holds B's head
    CHECK(zpage_test::allocated_bytes(file) == written - 4096);
    CHECK(b->stats().bd_count == 2);
    std::vector<std::byte> back(bb.size());
    REQUIRE(b->read(at[1], back).ok());
    CHECK(back == bb);

    b->free(at[1], bb.size());
    CHECK(zpage_test::allocated_bytes(file) == before);
    CHECK(b->stats().bd_count == 0);
}

TEST_CASE("the blocks one free() empties are punched in one call") {
    zpage_test::BackingUnderTest<zpage_test::FileAio> b({.max_record_bytes = 5 * 4096, .retain_freed_bytes = 0});
    const std::vector<std::byte> small(100, std::byte{1}), large(4 * 4096, std::byte{2}), tail(100, std::byte{3});
    std::array<zpage::BackingLocation, 3> at{};
    // small: block 0; large: [100, 16484) over blocks 0..4; tail: block 4.
    REQUIRE(b->write(std::vector<std::span<const std::byte>>{small, large, tail}, at).ok());
    const zpage_test::FileFaults count_punches(Call::punch, {}, 1 << 30);
    b->free(at[1], large.size());  // empties blocks 1..3 only: one run
    CHECK(zpage_test::FileFaults::calls() == 1);
    CHECK(b->stats().bd_count == 2);
    b->free(at[0], small.size());
    b->free(at[2], tail.size());
    CHECK(zpage_test::FileFaults::calls() == 3);
    CHECK(b->stats().bd_count == 0);
}

TEST_CASE("where punching is refused (EOPNOTSUPP), freed blocks are reused all the same") {
    zpage_test::BackingUnderTest<zpage_test::FileAio> b({.max_bytes = 4 * 4096, .retain_freed_bytes = 0});
    const std::vector<std::byte> page(4096, std::byte{7});
    const std::vector<std::span<const std::byte>> four(4, std::span<const std::byte>(page));
    std::array<zpage::BackingLocation, 4> at{};
    REQUIRE(b->write(four, at).ok());
    {
        const zpage_test::FileFaults unsupported(Call::punch, {.error = EOPNOTSUPP});
        for (const auto location : at) b->free(location, page.size());
        CHECK(zpage_test::FileFaults::calls() == 1);  // refused once: no more calls spent
    }
    CHECK_FALSE(b->punches());
    CHECK(b->stats().bd_count == 0);
    REQUIRE(b->write(four, at).ok());
    CHECK(at == std::array<zpage::BackingLocation, 4>{0, 4096, 8192, 12288});
}
