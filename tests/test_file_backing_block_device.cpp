// FileBackingStore on a block device (zram's backing_dev): sized by BLKGETSIZE64, opened
// exclusively, freed blocks discarded (BLKDISCARD; where the device refuses, punches() says so).
// The device's content is destroyed, so the test runs only on a device named in
// ZPAGE_TEST_BLOCK_DEVICE (a loop device: `losetup --find --show <file>`), and skips otherwise.
#include "backing_fixtures.hpp"

TEST_CASE("a block device: its size by default, records read back, frees discard") {
    const char* device = std::getenv("ZPAGE_TEST_BLOCK_DEVICE");
    if (device == nullptr || *device == '\0') {
        MESSAGE("skipped: set ZPAGE_TEST_BLOCK_DEVICE to a block device whose content may be destroyed");
        return;
    }
    const std::string name = device;
    std::uint64_t capacity = 0;
    {
        zpage::FileBackingStore store({.path = name, .retain_freed_bytes = 0});
        REQUIRE(store.block_device());
        CHECK(store.capacity_bytes() > 0);
        CHECK(store.capacity_bytes() % 4096 == 0);
        MESSAGE(name << ": " << store.capacity_bytes() << " B, direct I/O " << store.direct_io() << ", native AIO "
                     << store.native_aio());
        CHECK_THROWS_AS(zpage::FileBackingStore({.path = name}), std::system_error);  // exclusive: EBUSY

        const auto records = zpage_test::make_records(1000, zpage_test::test_seed());
        std::vector<zpage::BackingLocation> at(records.size());
        for (std::size_t i = 0; i < records.size(); i += 250)
            REQUIRE(store.write(zpage_test::spans_of(records, i, 250), std::span(at).subspan(i, 250)).ok());
        for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(store, at[i], records[i]);
        for (std::size_t i = 0; i < records.size(); ++i) store.free(at[i], records[i].bytes.size());
        CHECK(store.stats().bd_count == 0);
        MESSAGE("discard " << std::string(store.punches() ? "supported" : "refused (EOPNOTSUPP)"));
        capacity = store.capacity_bytes();
    }
    CHECK_THROWS_AS(zpage::FileBackingStore({.path = name, .max_bytes = capacity + 4096}), std::invalid_argument);
}
