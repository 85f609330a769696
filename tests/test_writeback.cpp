// Writeback to a backing store: every zram writeback type takes the pages it names, written-back
// pages read back byte-exact in both formats, the books follow (compr_data_size and huge_pages
// drop, bd_count counts their blocks), the writeback limit stops it, and a page replaced, erased
// or brought back frees its record.
#include "writeback_fixtures.hpp"

using zpage::PageFlag;
using zpage::WritebackSelect;
using zpage_test::MemoryBacked;

namespace {

constexpr std::size_t page_count = 512;

struct Fixture {
    zpage::MemoryBackingStore disk{zpage_test::memory_backing()};
    std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count, 21);

    MemoryBacked make(zpage::WritebackOptions options = {}) {
        return MemoryBacked(zpage::StoreConfig{.capacity_pages = page_count}, zpage::Lz4{},
                            {.backing = &disk, .options = options});
    }
};

std::size_t in_memory(const MemoryBacked& store) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < store.capacity(); ++i) {
        const zpage::PageState s = store.state(i);
        n += s.stored() && !s.has(PageFlag::same) && !s.has(PageFlag::written_back);
    }
    return n;
}

}  // namespace

TEST_CASE("writeback(idle) takes the idle pages only, and they read back byte-exact") {
    Fixture f;
    MemoryBacked store = f.make();
    zpage_test::store_all(store, f.pages);
    const std::size_t candidates = in_memory(store);
    REQUIRE(candidates > page_count / 2);
    CHECK(store.writeback({.select = WritebackSelect::idle}).pages == 0);  // nothing is idle yet

    CHECK(store.mark_idle() == candidates);
    zpage_test::Page back{};
    REQUIRE(store.load(3, back));  // touched: no longer idle
    const bool three_was_candidate = !store.state(3).has(PageFlag::same);
    const zpage::WritebackResult r = store.writeback({.select = WritebackSelect::idle});
    CHECK(r.status);
    CHECK(r.pages == candidates - (three_was_candidate ? 1 : 0));
    CHECK(zpage_test::count_flagged(store, PageFlag::written_back) == r.pages);
    CHECK_FALSE(store.state(3).has(PageFlag::written_back));
    CHECK(in_memory(store) == (three_was_candidate ? 1u : 0u));
    zpage_test::check_all(store, f.pages);
}

TEST_CASE("huge, huge_idle, incompressible and index ranges take what zram's types take") {
    Fixture f;
    MemoryBacked store = f.make({.bring_back_on_load = false});
    zpage_test::store_all(store, f.pages);
    const std::size_t huge = zpage_test::count_flagged(store, PageFlag::huge);
    REQUIRE(huge > 0);

    CHECK(store.writeback({.select = WritebackSelect::incompressible}).pages == 0);  // none flagged yet

    // huge_idle: huge pages that are also idle. Mark all idle, then touch every other huge page.
    store.mark_idle();
    zpage_test::Page back{};
    std::size_t touched = 0;
    for (std::size_t i = 0; i < page_count; ++i) {
        if (store.state(i).has(PageFlag::huge) && (touched++ % 2 == 0)) REQUIRE(store.load(i, back));
    }
    std::size_t huge_idle = 0;
    for (std::size_t i = 0; i < page_count; ++i) huge_idle += store.state(i).has(PageFlag::huge) && store.state(i).has(PageFlag::idle);
    REQUIRE(huge_idle > 0);
    REQUIRE(huge_idle < huge);
    const zpage::Stats before = store.stats();
    CHECK(store.writeback({.select = WritebackSelect::huge_idle}).pages == huge_idle);
    CHECK(store.stats().huge_pages == before.huge_pages - huge_idle);  // huge_pages drops, as zram's does
    CHECK(store.writeback({.select = WritebackSelect::huge}).pages == huge - huge_idle);
    CHECK(store.stats().huge_pages == 0);
    CHECK(store.stats().huge_pages_since == before.huge_pages_since);

    // An index range takes every page in memory there (zram: page_indexes=A-B).
    std::size_t in_range = 0;
    for (std::size_t i = 100; i < 200; ++i) {
        const zpage::PageState s = store.state(i);
        in_range += s.stored() && !s.has(PageFlag::same) && !s.has(PageFlag::written_back);
    }
    CHECK(store.writeback({.select = WritebackSelect::any, .first = 100, .last = 200}).pages == in_range);
    for (std::size_t i = 100; i < 200; ++i) CHECK_FALSE((store.state(i).stored() && !store.state(i).has(PageFlag::same) &&
                                                         !store.state(i).has(PageFlag::written_back)));
    // max_pages caps one call.
    CHECK(store.writeback({.select = WritebackSelect::any, .max_pages = 7}).pages == 7);
    zpage_test::check_all(store, f.pages);
}

TEST_CASE_TEMPLATE("both formats read back and keep the books", Format, std::integral_constant<int, 0>,
                   std::integral_constant<int, 1>) {
    const auto format = Format::value == 0 ? zpage::WritebackFormat::compressed : zpage::WritebackFormat::page;
    Fixture f;
    MemoryBacked store = f.make({.format = format, .bring_back_on_load = false});
    zpage_test::store_all(store, f.pages);
    const zpage::Stats before = store.stats();
    const std::size_t candidates = in_memory(store);
    const zpage::WritebackResult r = store.writeback({.select = WritebackSelect::any});
    REQUIRE(r.status);
    CHECK(r.pages == candidates);

    const zpage::Stats after = store.stats();
    CHECK(after.orig_data_size == before.orig_data_size);  // written-back pages are still stored
    CHECK(after.compr_data_size == 0);                     // but none of them in memory
    CHECK(after.same_pages == before.same_pages);
    CHECK(after.mem_used_total < before.mem_used_total);
    const zpage::BackingStats bd = store.bd_stat();
    const std::size_t per_page = format == zpage::WritebackFormat::page ? 4096 : 0;
    const std::size_t payload = per_page != 0 ? candidates * per_page : before.compr_data_size;
    CHECK(r.bytes == payload + candidates * zpage::record_header_bytes);
    CHECK(bd.bd_count >= (r.bytes + 4095) / 4096);
    CHECK(bd.bd_count <= (r.bytes + 4095) / 4096 + (candidates + 255) / 256);  // a block of padding per batch at most
    CHECK(store.writeback_stats().written_back_pages == candidates);
    CHECK(store.writeback_stats().pages_written_back == candidates);

    zpage_test::check_all(store, f.pages);
    CHECK(store.writeback_stats().pages_read_back == candidates);
    CHECK(store.writeback_stats().pages_brought_back == 0);  // bring_back_on_load = false
    CHECK(zpage_test::count_flagged(store, PageFlag::written_back) == candidates);
}

TEST_CASE("a load brings a written-back page back into memory and frees its record") {
    Fixture f;
    MemoryBacked store = f.make();
    zpage_test::store_all(store, f.pages);
    const zpage::Stats before = store.stats();
    REQUIRE(store.writeback({.select = WritebackSelect::any}).status);
    REQUIRE(store.bd_stat().bd_count > 0);
    zpage_test::check_all(store, f.pages);
    CHECK(store.bd_stat().bd_count == 0);
    CHECK(zpage_test::count_flagged(store, PageFlag::written_back) == 0);
    CHECK(store.stats().compr_data_size == before.compr_data_size);
    CHECK(store.stats().huge_pages == before.huge_pages);
    CHECK(store.writeback_stats().written_back_pages == 0);
    CHECK(store.writeback_stats().pages_brought_back == store.writeback_stats().pages_read_back);
    zpage_test::check_all(store, f.pages);  // and again, from memory
}

TEST_CASE("a store or erase over a written-back page frees its record") {
    Fixture f;
    MemoryBacked store = f.make();
    zpage_test::store_all(store, f.pages);
    REQUIRE(store.writeback({.select = WritebackSelect::any}).status);
    for (std::size_t i = 0; i < page_count; ++i) {
        if (i % 2 == 0) {
            REQUIRE(store.erase(i));
        } else {
            REQUIRE(store.store(i, f.pages[page_count - 1 - i]));
        }
    }
    CHECK(store.bd_stat().bd_count == 0);
    CHECK(store.writeback_stats().written_back_pages == 0);
    zpage_test::Page back{};
    for (std::size_t i = 1; i < page_count; i += 2) {
        REQUIRE(store.load(i, back));
        CHECK(back == f.pages[page_count - 1 - i]);
    }
}

TEST_CASE("the writeback limit stops writeback and counts 4 KiB units written") {
    Fixture f;
    MemoryBacked store = f.make();
    zpage_test::store_all(store, f.pages);
    store.set_writeback_limit(10);
    store.enable_writeback_limit(true);
    const zpage::WritebackResult r = store.writeback({.select = WritebackSelect::any});
    CHECK(r.limit_reached);
    CHECK(r.pages > 0);
    CHECK(r.bytes <= 10 * 4096);
    CHECK(store.writeback_stats().writeback_limit_enable == 1);
    CHECK(store.writeback_stats().writeback_limit == 10 - (r.bytes + 4095) / 4096);
    const std::size_t left = store.writeback_stats().writeback_limit;
    const zpage::WritebackResult more = store.writeback({.select = WritebackSelect::any});
    CHECK(more.bytes <= left * 4096);
    store.enable_writeback_limit(false);  // the limit no longer applies
    CHECK(store.writeback({.select = WritebackSelect::any}).pages > 0);
    zpage_test::check_all(store, f.pages);
}

TEST_CASE("destroying a store frees its records on a backing store that outlives it") {
    Fixture f;
    {
        MemoryBacked store = f.make();
        zpage_test::store_all(store, f.pages);
        REQUIRE(store.writeback({.select = WritebackSelect::any}).pages > 0);
        REQUIRE(f.disk.stats().bd_count > 0);
    }
    CHECK(f.disk.stats().bd_count == 0);
}

TEST_CASE("a written-back page round-trips through a file backing store") {
    zpage_test::TempPath file("zpage-writeback");
    zpage::FileBackingStore disk(zpage::FileBackingConfig{.path = file.path(), .max_bytes = std::uint64_t{64} << 20});
    const std::vector<zpage_test::Page> pages = zpage_test::test_pages(page_count, 22);
    zpage_test::FileBacked store(zpage::StoreConfig{.capacity_pages = page_count}, zpage::Lz4{}, {.backing = &disk});
    zpage_test::store_all(store, pages);
    REQUIRE(store.writeback({.select = WritebackSelect::any}).status);
    CHECK(disk.stats().bd_count > 0);
    zpage_test::check_all(store, pages);
    CHECK(disk.stats().bd_count == 0);
}

TEST_CASE("a writeback policy without a backing store, or with records too short, is refused") {
    CHECK_THROWS_AS(MemoryBacked(zpage::StoreConfig{.capacity_pages = 4}), std::invalid_argument);
    zpage::MemoryBackingStore small(zpage::MemoryBackingConfig{.max_bytes = 1 << 20, .max_record_bytes = 1024});
    CHECK_THROWS_AS(MemoryBacked(zpage::StoreConfig{.capacity_pages = 4}, zpage::Lz4{}, {.backing = &small}),
                    std::invalid_argument);
    CHECK_THROWS_AS(zpage::Lz4Store(zpage::StoreConfig{.capacity_pages = 4, .reclaim = zpage::ReclaimConfig::balanced()}),
                    std::invalid_argument);
}
