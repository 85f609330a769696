// Golden test of the page-table entry layout (16 B like zram's slot, flag bits above the size), and
// the entry lock.
#include <zpage/page_table.hpp>

#include <thread>

#include "fixtures.hpp"

using zpage::PageEntry;
using zpage::PageFlag;
using zpage::PageRecord;

TEST_CASE("entry layout is pinned") {
    static_assert(sizeof(PageEntry) == 16);
    CHECK(PageEntry::size_mask == 0x3FFFFu);
    CHECK(PageEntry::flag_bit(PageFlag::same) == 1u << 18);
    CHECK(PageEntry::flag_bit(PageFlag::huge) == 1u << 19);
    CHECK(PageEntry::flag_bit(PageFlag::idle) == 1u << 20);
    CHECK(PageEntry::flag_bit(PageFlag::written_back) == 1u << 21);
    CHECK(PageEntry::flag_bit(PageFlag::incompressible) == 1u << 22);
    CHECK(PageEntry::flag_bit(PageFlag::under_writeback) == 1u << 23);
    CHECK(PageEntry::flag_bit(PageFlag::grouped) == 1u << 24);
    CHECK(PageEntry::flag_bit(PageFlag::under_recompression) == 1u << 25);
    CHECK(PageEntry::codec_shift == 26);
    CHECK(PageEntry::lock_bit == 1u << 31);
    static_assert(static_cast<int>(PageFlag::count) == 8);
}

TEST_CASE("records say what they hold") {
    const PageRecord empty{};
    CHECK_FALSE(empty.stored());
    const PageRecord zero_page = PageRecord::same_filled(0);
    CHECK(zero_page.stored());
    CHECK(zero_page.has(PageFlag::same));
    CHECK(zero_page.size() == 0);
    const PageRecord object = PageRecord::object(0x1234, 1999, false);
    CHECK(object.stored());
    CHECK(object.size() == 1999);
    CHECK_FALSE(object.has(PageFlag::huge));
    const PageRecord huge = PageRecord::object(0x99, 4096, true);
    CHECK(huge.has(PageFlag::huge));
    CHECK(huge.size() == 4096);
    CHECK(huge.codec() == 0);
    const PageRecord recompressed = PageRecord::object(0x77, 900, false, 5);
    CHECK(recompressed.codec() == 5);
    CHECK(recompressed.size() == 900);
    CHECK(recompressed.with_codec(2).codec() == 2);
    const PageRecord member{3, zpage::PageEntry::flag_bit(PageFlag::grouped)};  // a unit member, no share
    CHECK(member.stored());
}

TEST_CASE("a table entry keeps what was set, and its lock is released") {
    zpage::PageTable table(1000);
    CHECK(table.capacity() == 1000);
    CHECK(table.memory_bytes() == 16 * 1024);  // 16 000 B rounded up to whole pages
    {
        zpage::LockedPage e = table.lock(999);
        CHECK_FALSE(e.get().stored());
        e.set(PageRecord::object(42, 100, false));
        e.set_access_time(7);
    }
    zpage::LockedPage e = table.lock(999);
    CHECK(e.get().word == 42);
    CHECK(e.get().size() == 100);
    CHECK(e.access_time() == 7);
    CHECK((e.get().meta & PageEntry::lock_bit) == 0);  // get() hides the lock bit
}

TEST_CASE("the entry lock excludes a second holder") {
    zpage::PageTable table(4);
    std::atomic<int> inside{0};
    std::atomic<int> worst{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < static_cast<int>(zpage_test::scaled(20000)); ++i) {
                zpage::LockedPage e = table.lock(1);
                const int now = ++inside;
                worst = std::max(worst.load(), now);
                e.set(PageRecord::object(e.get().word + 1, 1, false));
                --inside;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(worst == 1);
    CHECK(table.lock(1).get().word == 4 * zpage_test::scaled(20000));
}

TEST_CASE("a table needs at least one entry") { CHECK_THROWS_AS(zpage::PageTable(0), std::invalid_argument); }
