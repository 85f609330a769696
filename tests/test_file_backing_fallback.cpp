// FileBackingStore where O_DIRECT is refused (EINVAL at open, as tmpfs did before Linux 6.6 and
// some FUSE file systems still do) falls back to buffered I/O, says so in direct_io(), and keeps
// every behaviour: records read back, frees punch.
#include "backing_fixtures.hpp"

using Call = zpage::detail::file_io::Call;

namespace {

void round_trip(zpage::FileBackingStore& store, const std::filesystem::path& file) {
    const auto records = zpage_test::make_records(300, zpage_test::test_seed());
    std::vector<zpage::BackingLocation> at(records.size());
    for (std::size_t i = 0; i < records.size(); i += 100)
        REQUIRE(store.write(zpage_test::spans_of(records, i, 100), std::span(at).subspan(i, 100)).ok());
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(store, at[i], records[i]);
    CHECK(zpage_test::allocated_bytes(file) >= store.stats().bd_count * 4096);
    for (std::size_t i = 0; i < records.size(); ++i) store.free(at[i], records[i].bytes.size());
    CHECK(store.stats().bd_count == 0);
    store.trim();
    if (store.punches()) CHECK(zpage_test::allocated_bytes(file) == 0);
}

}  // namespace

TEST_CASE("a file system that refuses O_DIRECT gets buffered I/O") {
    const zpage_test::TempPath file("zpage-fallback");
    std::unique_ptr<zpage::FileBackingStore> store;
    {
        const zpage_test::FileFaults refuse_direct(Call::open, {.error = EINVAL}, 0, 1);
        store = std::make_unique<zpage::FileBackingStore>(
            zpage::FileBackingConfig{.path = file.string(), .max_bytes = 4 << 20});
        CHECK(zpage_test::FileFaults::calls() == 2);  // with O_DIRECT, refused; then without
    }
    CHECK_FALSE(store->direct_io());
    round_trip(*store, file.path());
}

TEST_CASE("a store on tmpfs (/dev/shm) works, with O_DIRECT or without") {
    if (!std::filesystem::is_directory("/dev/shm")) {
        MESSAGE("skipped: no /dev/shm");
        return;
    }
    const zpage_test::TempPath file("zpage-fallback", "/dev/shm");
    zpage::FileBackingStore store({.path = file.string(), .max_bytes = 4 << 20});
    const std::string mode = store.direct_io() ? "takes O_DIRECT (Linux 6.6 and later)" : "refuses O_DIRECT";
    MESSAGE("tmpfs " << mode);
    round_trip(store, file.path());
}

TEST_CASE("buffered I/O asked for by the configuration") {
    const zpage_test::TempPath file("zpage-fallback");
    zpage::FileBackingStore store({.path = file.string(), .max_bytes = 4 << 20, .direct_io = false});
    CHECK_FALSE(store.direct_io());
    round_trip(store, file.path());
}
