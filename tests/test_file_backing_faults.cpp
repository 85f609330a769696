// FileBackingStore under failing I/O (detail/file_io.hpp's fault injection): each fault returns
// its status (EIO: io_error, ENOSPC: no_space, a short write or read: io_error), the batch is
// all or nothing (bd_count back to before, the blocks it had written punched again, the next
// batch placed where it would have gone), and the store works on afterwards. Bad configurations
// and paths throw at construction.
#include "backing_fixtures.hpp"

using Call = zpage::detail::file_io::Call;
using Fault = zpage::detail::file_io::Fault;

namespace {

struct Case {
    const char* name;
    Call call;
    Fault fault;
    int fail_from;  // the first request that fails (0: the first)
    zpage::errc expected;
};

// Writes one batch of ~20 blocks in 4 KiB requests (so a failure comes while others are in
// flight) under `c`, then checks that nothing of it stayed and that the store works on.
// With a buffer of 8 KiB the batch goes out in parts of two blocks: the failure comes in a later
// part, after earlier parts were written.
template <class Maker>
void check_failed_batch(const Case& c, std::size_t buffer_bytes = 0) {
    CAPTURE(c.name);
    CAPTURE(buffer_bytes);
    zpage_test::BackingUnderTest<Maker> b({.io_bytes = 4096, .max_in_flight = 4, .buffer_bytes = buffer_bytes});
    const auto records = zpage_test::make_records(80, 7);
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(b->write(zpage_test::spans_of(records, 0, 20), std::span(at).first(20)).ok());
    const zpage::BackingStats before = b->stats();
    const std::uint64_t allocated = zpage_test::allocated_bytes(b.file.path());
    {
        const zpage_test::FileFaults faults(c.call, c.fault, c.fail_from, 1);
        CHECK(b->write(zpage_test::spans_of(records, 20, 40), std::span(at).subspan(20, 40)).error() == c.expected);
        CHECK(zpage_test::FileFaults::injected() == 1);
    }
    const zpage::BackingStats after = b->stats();
    CHECK(after.bd_count == before.bd_count);
    CHECK(after.bd_writes == before.bd_writes);
    CHECK(after.failed_writes == before.failed_writes + 1);
    CHECK(zpage_test::allocated_bytes(b.file.path()) == allocated);  // what it wrote is punched again

    // The store works on: the same batch goes where the failed one would have, and reads back.
    const zpage::BackingLocation next = (at[19] + records[19].bytes.size() + 4095) / 4096 * 4096;
    REQUIRE(b->write(zpage_test::spans_of(records, 20, 40), std::span(at).subspan(20, 40)).ok());
    CHECK(at[20] == next);
    for (std::size_t i = 0; i < 60; ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
}

}  // namespace

TEST_CASE_TEMPLATE("a failed or short write fails the whole batch and leaves nothing", Maker, zpage_test::FileAio,
                   zpage_test::FilePwrite) {
    const bool aio = std::is_same_v<Maker, zpage_test::FileAio>;
    const Case cases[] = {
        {"EIO on the first request", Call::write, {.error = EIO}, 0, zpage::errc::io_error},
        {"EIO on the sixth request, others in flight", Call::write, {.error = EIO}, 5, zpage::errc::io_error},
        {"ENOSPC below the store", Call::write, {.error = ENOSPC}, 3, zpage::errc::no_space},
        {"EDQUOT below the store", Call::write, {.error = EDQUOT}, 2, zpage::errc::no_space},
        {"a short write", Call::write, {.short_transfer = true}, 4, zpage::errc::io_error},
    };
    for (const Case& c : cases) {
        check_failed_batch<Maker>(c);
        check_failed_batch<Maker>(c, 2 * 4096);
    }
    if (aio) {
        check_failed_batch<Maker>(
            {"EIO from io_submit itself", Call::submit, {.error = EIO}, 0, zpage::errc::io_error});
        check_failed_batch<Maker>(
            {"io_submit refused after a first submission", Call::submit, {.error = EBADF}, 1, zpage::errc::io_error});
    }
}

TEST_CASE_TEMPLATE("a batch longer than the buffer goes out in parts, packed as one, and reads back", Maker,
                   zpage_test::FileAio, zpage_test::FilePwrite) {
    zpage_test::BackingUnderTest<Maker> b({.buffer_bytes = 3 * 4096});
    const auto records = zpage_test::make_records(200, 11);
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(b->write(zpage_test::spans_of(records, 0, 200), at).ok());
    std::uint64_t bytes = 0;
    for (const auto& r : records) bytes += r.bytes.size();
    CHECK(bytes > 10 * 3 * 4096);  // many parts
    // Records are packed back to back within a part; each part pads its last block.
    const std::uint64_t blocks = b->stats().bd_writes;
    CHECK(blocks * 4096 >= bytes);
    CHECK(blocks < bytes / 4096 + records.size());
    CHECK(b->stats().bd_count == blocks);
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
    CHECK_THROWS_AS(zpage_test::BackingUnderTest<Maker>({.buffer_bytes = 4096}), std::invalid_argument);
}

TEST_CASE("a failed or short read is io_error and counted; the next read succeeds") {
    zpage_test::BackingUnderTest<zpage_test::FileAio> b;
    const auto records = zpage_test::make_records(10, 3);
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(b->write(zpage_test::spans_of(records), at).ok());
    std::vector<std::byte> back(records[4].bytes.size());
    {
        const zpage_test::FileFaults eio(Call::read, {.error = EIO}, 0, 1);
        CHECK(b->read(at[4], back).error() == zpage::errc::io_error);
    }
    {
        const zpage_test::FileFaults short_read(Call::read, {.short_transfer = true}, 0, 1);
        CHECK(b->read(at[4], back).error() == zpage::errc::io_error);
    }
    CHECK(b->stats().failed_reads == 2);
    zpage_test::check_reads_back(*b, at[4], records[4]);
}

TEST_CASE("EINTR is retried, not reported") {
    zpage_test::BackingUnderTest<zpage_test::FilePwrite> b;
    const auto records = zpage_test::make_records(10, 3);
    std::vector<zpage::BackingLocation> at(records.size());
    {
        const zpage_test::FileFaults interrupted(Call::write, {.error = EINTR}, 0, 2);
        REQUIRE(b->write(zpage_test::spans_of(records), at).ok());
    }
    const zpage_test::FileFaults interrupted(Call::read, {.error = EINTR}, 0, 2);
    zpage_test::check_reads_back(*b, at[2], records[2]);
}

TEST_CASE("bad configurations and paths throw at construction, saying which and why") {
    const zpage_test::TempPath file("zpage-faults");
    const auto make = [&](zpage::FileBackingConfig c) { zpage::FileBackingStore store(std::move(c)); };
    CHECK_THROWS_AS(make({.path = file.string()}), std::invalid_argument);  // max_bytes is needed for a file
    CHECK_THROWS_AS(make({.path = ""}), std::invalid_argument);
    CHECK_THROWS_AS(make({.path = file.string(), .max_bytes = 1 << 20, .io_bytes = 1000}), std::invalid_argument);
    CHECK_THROWS_AS(make({.path = file.string(), .max_bytes = 1 << 20, .max_in_flight = 0}), std::invalid_argument);
    CHECK_THROWS_AS(make({.path = file.string(), .max_bytes = 4096, .max_record_bytes = 5000}), std::invalid_argument);
    CHECK_THROWS_AS(make({.path = file.string(), .max_bytes = 1 << 20, .max_batch_records = 0}), std::invalid_argument);
    CHECK_THROWS_AS(make({.path = file.path().parent_path().string(), .max_bytes = 1 << 20}), std::invalid_argument);
    try {
        make({.path = (file.path() / "no-such-dir" / "file").string(), .max_bytes = 1 << 20});
        FAIL("opened a path under a missing folder");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("no-such-dir") != std::string::npos);
        CHECK(e.code().value() == ENOENT);
    }
    try {
        const zpage_test::FileFaults denied(Call::open, {.error = EACCES});
        make({.path = file.string(), .max_bytes = 1 << 20});
        FAIL("opened despite EACCES");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EACCES);
        CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
    }
}
