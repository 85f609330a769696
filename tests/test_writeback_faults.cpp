// A backing store that fails (EIO, no space, a short write, a flipped bit, a failed read): each
// returns a clear status, a failed writeback keeps its pages in memory, nothing stored is lost,
// no wrong bytes are ever returned, and the books stay consistent.
#include "writeback_fixtures.hpp"

using zpage::errc;
using zpage::PageFlag;
using zpage::WritebackSelect;
using zpage_test::FaultyBacked;

namespace {

constexpr std::size_t page_count = 300;
constexpr std::size_t batch_bytes_option = 64 << 10;  // several batches of these pages

struct Fixture {
    zpage_test::FaultyBacking disk{zpage_test::memory_backing()};
    std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count, 31);
    FaultyBacked store{zpage::StoreConfig{.capacity_pages = page_count}, zpage::Lz4{},
                       {.backing = &disk, .options = {.batch_bytes = batch_bytes_option}}};

    Fixture() { zpage_test::store_all(store, pages); }
};

void check_failed_writeback_kept_everything(Fixture& f, const zpage::Stats& before, errc expected) {
    const zpage::WritebackResult r = f.store.writeback({.select = WritebackSelect::any});
    CHECK(r.status == expected);
    CHECK(r.pages == 0);
    CHECK(f.store.stats() == before);  // every page still in memory, counted as before
    CHECK(zpage_test::count_flagged(f.store, PageFlag::written_back) == 0);
    CHECK(zpage_test::count_flagged(f.store, PageFlag::under_writeback) == 0);
    CHECK(f.disk.stats().bd_count == 0);  // nothing of the batch kept
    CHECK(f.store.writeback_stats().failed_writebacks == 1);
    CHECK(f.store.validate() == "");
    zpage_test::check_all(f.store, f.pages);
}

}  // namespace

TEST_CASE("an I/O error writing keeps the batch in memory") {
    Fixture f;
    f.disk.fail_writes(errc::io_error);
    check_failed_writeback_kept_everything(f, f.store.stats(), errc::io_error);
}

TEST_CASE("a full backing store keeps the batch in memory") {
    Fixture f;
    f.disk.fail_writes(errc::no_space);
    check_failed_writeback_kept_everything(f, f.store.stats(), errc::no_space);
}

TEST_CASE("a short write keeps the batch in memory") {
    Fixture f;
    f.disk.short_writes();
    check_failed_writeback_kept_everything(f, f.store.stats(), errc::io_error);
}

TEST_CASE("a failure in a later batch keeps the batches before it written back") {
    Fixture f;
    // The pages of the first two batches: in index order, a batch ends before the record that
    // would pass batch_bytes.
    std::size_t two_batches = 0, batch_bytes = 0, batches = 0;
    for (std::size_t i = 0; i < page_count && batches < 2; ++i) {
        const zpage::PageState s = f.store.state(i);
        if (s.has(PageFlag::same)) continue;
        const std::size_t record = zpage::record_bytes(s.size());
        if (batch_bytes + record > batch_bytes_option) {
            batch_bytes = 0;
            if (++batches == 2) break;
        }
        batch_bytes += record;
        ++two_batches;
    }
    REQUIRE(batches == 2);
    f.disk.fail_writes(errc::io_error, 2);  // the third batch fails
    const zpage::WritebackResult r = f.store.writeback({.select = WritebackSelect::any});
    CHECK(r.status == errc::io_error);
    CHECK(r.pages == two_batches);
    CHECK(zpage_test::count_flagged(f.store, PageFlag::written_back) == r.pages);
    CHECK(zpage_test::count_flagged(f.store, PageFlag::under_writeback) == 0);
    CHECK(f.store.validate() == "");
    zpage_test::check_all(f.store, f.pages);
}

TEST_CASE("a bit flipped on the way back is corrupt_data, never wrong bytes, and the page is not lost") {
    Fixture f;
    REQUIRE(f.store.writeback({.select = WritebackSelect::any}).pages > 0);
    std::size_t index = 0;
    while (!f.store.state(index).has(PageFlag::written_back)) ++index;
    const zpage::Stats before = f.store.stats();
    for (const std::uint64_t bit : {0u, 70u, 100u, 20000u}) {  // header checksum, index, payload
        INFO("bit " << bit);
        f.disk.flip_bits(0, 1, bit);
        zpage_test::Page back{};
        back.fill(std::byte{0x5A});
        CHECK(f.store.load(index, back) == errc::corrupt_data);
        CHECK(zpage_test::is_zero(back));
        CHECK(f.store.state(index).has(PageFlag::written_back));  // still there
    }
    CHECK(f.store.stats().failed_reads == before.failed_reads + 4);
    CHECK(f.store.validate() == "");
    zpage_test::Page back{};
    REQUIRE(f.store.load(index, back));  // the record itself was never damaged
    CHECK(back == f.pages[index]);
}

TEST_CASE("a failed read is io_error, and the next one reads the page") {
    Fixture f;
    REQUIRE(f.store.writeback({.select = WritebackSelect::any}).pages > 0);
    std::size_t index = 0;
    while (!f.store.state(index).has(PageFlag::written_back)) ++index;
    f.disk.fail_reads();
    zpage_test::Page back{};
    CHECK(f.store.load(index, back) == errc::io_error);
    CHECK(zpage_test::is_zero(back));
    REQUIRE(f.store.load(index, back));
    CHECK(back == f.pages[index]);
    zpage_test::check_all(f.store, f.pages);
}
