// FaultyBackingStore fails on command, over any backing store: EIO and ENOSPC on the Nth write, a
// short write that keeps nothing, EIO on the Nth read, and a flipped bit that the record checksum
// then catches as corrupt_data. Injected failures count in stats().
#include <zpage/writeback/faulty_backing_store.hpp>

#include <thread>

#include "backing_fixtures.hpp"

namespace {
using Faulty = zpage::FaultyBackingStore<zpage::MemoryBackingStore>;
static_assert(zpage::BackingStore<Faulty>);
static_assert(zpage::BackingStore<zpage::FaultyBackingStore<zpage::FileBackingStore>>);

Faulty make_faulty() { return Faulty(zpage::MemoryBackingConfig{.max_bytes = 4 << 20}); }
}  // namespace

TEST_CASE("the Nth write fails with EIO or ENOSPC, before reaching the inner store") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(40, 11);
    std::vector<zpage::BackingLocation> at(records.size());
    disk.fail_writes(zpage::errc::io_error, 2);  // the third write
    CHECK(disk.write(zpage_test::spans_of(records, 0, 10), std::span(at).subspan(0, 10)).ok());
    CHECK(disk.write(zpage_test::spans_of(records, 10, 10), std::span(at).subspan(10, 10)).ok());
    const std::uint64_t blocks = disk.stats().bd_count;
    CHECK(disk.write(zpage_test::spans_of(records, 20, 10), std::span(at).subspan(20, 10)).error() ==
          zpage::errc::io_error);
    CHECK(disk.stats().bd_count == blocks);
    CHECK(disk.write(zpage_test::spans_of(records, 20, 10), std::span(at).subspan(20, 10)).ok());

    disk.fail_writes(zpage::errc::no_space, 0, 2);  // the next two
    CHECK(disk.write(zpage_test::spans_of(records, 30, 10), std::span(at).subspan(30, 10)).error() ==
          zpage::errc::no_space);
    CHECK(disk.write(zpage_test::spans_of(records, 30, 10), std::span(at).subspan(30, 10)).error() ==
          zpage::errc::no_space);
    CHECK(disk.write(zpage_test::spans_of(records, 30, 10), std::span(at).subspan(30, 10)).ok());
    CHECK(disk.stats().failed_writes == 3);
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(disk, at[i], records[i]);
}

TEST_CASE("a short write is io_error and keeps nothing") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(10, 12);
    std::vector<zpage::BackingLocation> at(records.size());
    disk.short_writes();
    CHECK(disk.write(zpage_test::spans_of(records), at).error() == zpage::errc::io_error);
    const zpage::BackingStats s = disk.stats();
    CHECK(s.bd_count == 0);
    CHECK(s.bd_writes > 0);  // half the batch did reach the inner store, and was freed again
    CHECK(s.failed_writes == 1);
    REQUIRE(disk.write(zpage_test::spans_of(records), at).ok());
    for (std::size_t i = 0; i < records.size(); ++i) zpage_test::check_reads_back(disk, at[i], records[i]);
    std::uint64_t bytes = 0;
    for (const auto& r : records) bytes += r.bytes.size();
    CHECK(disk.stats().bd_count == (bytes + 4095) / 4096);  // this batch's blocks, no more
}

TEST_CASE("the Nth read fails with EIO") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(3, 13);
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(disk.write(zpage_test::spans_of(records), at).ok());
    disk.fail_reads(1);
    std::vector<std::byte> back(records[0].bytes.size());
    CHECK(disk.read(at[0], back).ok());
    CHECK(disk.read(at[0], back).error() == zpage::errc::io_error);
    CHECK(disk.read(at[0], back).ok());
    CHECK(disk.stats().failed_reads == 1);
}

TEST_CASE("a bit flipped below the checksum is caught as corrupt_data") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(3, 14);
    std::vector<zpage::BackingLocation> at(records.size());
    REQUIRE(disk.write(zpage_test::spans_of(records), at).ok());
    for (const std::uint64_t bit : {std::uint64_t{0}, std::uint64_t{70}, std::uint64_t{100}, std::uint64_t{5000}}) {
        CAPTURE(bit);
        disk.flip_bits(0, 1, bit);
        std::vector<std::byte> back(records[1].bytes.size());
        REQUIRE(disk.read(at[1], back).ok());  // the device did not notice
        CHECK(back != records[1].bytes);
        CHECK(zpage::verify_record(back, records[1].index, records[1].payload_bytes()).error() ==
              zpage::errc::corrupt_data);
    }
    zpage_test::check_reads_back(disk, at[1], records[1]);  // the schedule is spent
}

TEST_CASE("clear() cancels what is scheduled") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(2, 15);
    std::vector<zpage::BackingLocation> at(records.size());
    disk.fail_writes(zpage::errc::io_error, 0, 100);
    disk.fail_reads(0, 100);
    disk.clear();
    REQUIRE(disk.write(zpage_test::spans_of(records), at).ok());
    zpage_test::check_reads_back(disk, at[0], records[0]);
    CHECK(disk.stats().failed_writes + disk.stats().failed_reads == 0);
}

TEST_CASE("threads racing for a schedule of N faults take exactly N") {
    Faulty disk = make_faulty();
    const auto records = zpage_test::make_records(1, 16);
    std::vector<zpage::BackingLocation> at(1);
    REQUIRE(disk.write(zpage_test::spans_of(records), at).ok());
    disk.fail_reads(10, 25);
    std::atomic<int> failures{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t)
        readers.emplace_back([&] {
            std::vector<std::byte> back(records[0].bytes.size());
            for (int i = 0; i < 50; ++i) failures += !disk.read(at[0], back);
        });
    for (auto& t : readers) t.join();
    CHECK(failures == 25);
    CHECK(disk.stats().failed_reads == 25);
}
