// Every shipped backing store: when its configured size is full a batch is no_space and changes
// nothing (what was written stays readable), and frees make room again.
#include "backing_fixtures.hpp"

TEST_CASE_TEMPLATE("a full store refuses a batch whole, and takes it after frees", Maker, ZPAGE_TEST_BACKING_STORES) {
    const std::uint64_t seed = zpage_test::test_seed();
    zpage_test::BackingUnderTest<Maker> b({.max_bytes = 256 * 4096});
    const auto records = zpage_test::make_records(2000, seed);
    constexpr std::size_t batch = 50;

    std::vector<zpage::BackingLocation> at(records.size());
    std::size_t written = 0;
    zpage::Status last;
    while (written + batch <= records.size()) {
        last = b->write(zpage_test::spans_of(records, written, batch), std::span(at).subspan(written, batch));
        if (!last) break;
        written += batch;
    }
    REQUIRE(last.error() == zpage::errc::no_space);
    const zpage::BackingStats full = b->stats();
    CHECK(full.failed_writes == 1);
    CHECK(full.bd_count <= 256);
    CHECK(full.bd_count > 256 - 2 * batch * 4112 / 4096);
    for (std::size_t i = 0; i < written; ++i) zpage_test::check_reads_back(*b, at[i], records[i]);

    // Freeing the first two batches makes room for one more.
    for (std::size_t i = 0; i < 2 * batch; ++i) b->free(at[i], records[i].bytes.size());
    CHECK(b->stats().bd_count < full.bd_count);
    REQUIRE(b->write(zpage_test::spans_of(records, written, batch), std::span(at).subspan(written, batch)).ok());
    for (std::size_t i = written; i < written + batch; ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
    for (std::size_t i = 2 * batch; i < written; ++i) zpage_test::check_reads_back(*b, at[i], records[i]);
}
