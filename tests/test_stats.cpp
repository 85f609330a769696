// Stats: zram's mm_stat names in zram's order, one declared field list, values that add up.
#include <zpage/writeback/backing_store.hpp>
#include <zpage/zpage.hpp>

#include <string>

#include "fixtures.hpp"

TEST_CASE("the field list starts with mm_stat's columns in zram's order") {
    std::vector<std::string> names;
    zpage::Stats::for_each_field([&](std::string_view name, auto, zpage::StatUnit) { names.emplace_back(name); });
    const std::vector<std::string> mm_stat = {"orig_data_size", "compr_data_size", "mem_used_total",
                                              "mem_limit",      "mem_used_max",    "same_pages",
                                              "pages_compacted", "huge_pages",     "huge_pages_since"};
    REQUIRE(names.size() >= mm_stat.size());
    CHECK(std::vector<std::string>(names.begin(), names.begin() + 9) == mm_stat);
    CHECK(names.size() == sizeof(zpage::Stats) / sizeof(std::uint64_t));  // every field is listed
}

TEST_CASE("stats add up field by field") {
    zpage::Stats a;
    a.orig_data_size = 4096;
    a.num_reads = 3;
    zpage::Stats b;
    b.orig_data_size = 8192;
    b.failed_writes = 1;
    const zpage::Stats sum = a + b;
    CHECK(sum.orig_data_size == 12288);
    CHECK(sum.num_reads == 3);
    CHECK(sum.failed_writes == 1);
}

TEST_CASE("a fresh store reports only its page table") {
    zpage::Lz4Store store(1024);
    const zpage::Stats s = store.stats();
    CHECK(s.orig_data_size == 0);
    CHECK(s.compr_data_size == 0);
    CHECK(s.mem_used_total >= 1024 * 16);
    CHECK(s.mem_used_total < 1024 * 16 + 64 * 1024);
    CHECK(s.mem_limit == 0);
}

TEST_CASE("counters follow stores, loads and failures") {
    zpage::Lz4Store store(4);
    zpage_test::Page page{};
    page[100] = std::byte{1};
    REQUIRE(store.store(0, page));
    REQUIRE(store.store(0, page));
    REQUIRE(store.load(0, page));
    REQUIRE(store.load(3, page));  // never stored: zeros, still a read
    CHECK(store.store(9, page) == zpage::errc::out_of_range);
    const zpage::Stats s = store.stats();
    CHECK(s.num_writes == 2);
    CHECK(s.num_reads == 2);
    CHECK(s.orig_data_size == 4096);
    CHECK(s.failed_writes == 0);  // a bad index is the caller's error, not a failed write
}

TEST_CASE("a backing store's stats list bd_stat's columns in zram's order, every field, and add up") {
    std::vector<std::string> names;
    zpage::BackingStats::for_each_field(
        [&](std::string_view name, auto, zpage::StatUnit) { names.emplace_back(name); });
    CHECK(std::vector<std::string>(names.begin(), names.begin() + 3) ==
          std::vector<std::string>{"bd_count", "bd_reads", "bd_writes"});
    CHECK(names.size() == sizeof(zpage::BackingStats) / sizeof(std::uint64_t));
    zpage::BackingStats a, b;
    a.bd_count = 3;
    b.bd_count = 4;
    b.failed_writes = 1;
    const zpage::BackingStats sum = a + b;
    CHECK(sum.bd_count == 7);
    CHECK(sum.failed_writes == 1);
}
