// Stores sharing one MemoryBudget (shards of one cache): each store's figures are its own and add
// up to the budget's, the budget's limit holds for all of them, and a store's own limit caps that
// store alone.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {

zpage_test::Page compressible_page(zpage_test::PageSource& source) {
    zpage_test::Page p;
    do p = source.next();
    while (zpage::detail::same_fill_word<4096>(p));
    return p;
}

}  // namespace

TEST_CASE("a nested account charges its parent, and a refusal anywhere charges nothing") {
    zpage::MemoryBudget parent(1000);
    zpage::MemoryBudget child(&parent, 600);
    CHECK(child.try_charge(500));
    CHECK(parent.used() == 500);
    CHECK_FALSE(child.try_charge(200));  // over the child's limit
    zpage::MemoryBudget sibling(&parent);
    CHECK_FALSE(sibling.try_charge(600));  // over the parent's limit
    CHECK(sibling.used() == 0);
    CHECK(sibling.max_used() == 0);  // a refused charge leaves no peak behind
    CHECK(parent.used() == 500);
    sibling.charge(600);  // forced charges pass every limit
    CHECK(parent.used() == 1100);
    sibling.uncharge(600);
    child.uncharge(500);
    CHECK(parent.used() == 0);
    CHECK(parent.max_used() == 1100);
}

TEST_CASE("shards' stats add up to the shared budget's use, and its limit holds for all") {
    zpage::MemoryBudget budget;
    zpage::Lz4Store a(zpage::StoreConfig{.capacity_pages = 2000, .budget = &budget});
    zpage::Lz4Store b(zpage::StoreConfig{.capacity_pages = 2000, .budget = &budget});
    budget.set_limit(budget.used() + (1 << 20));
    zpage_test::PageSource source(2);
    std::size_t stored = 0;
    for (std::size_t i = 0; i < 2000; ++i) {
        const auto page = source.next();
        stored += static_cast<bool>(a.store(i, page)) + static_cast<bool>(b.store(i, page));
    }
    CHECK(stored < 4000);  // the shared limit was reached
    CHECK(budget.used() <= budget.limit());
    const zpage::Stats sa = a.stats(), sb = b.stats();
    CHECK(sa.mem_used_total + sb.mem_used_total == budget.used());
    CHECK((sa + sb).mem_used_total == budget.used());
    // Each its own, not the budget's twice (the two may well be equal: same pages, same order).
    CHECK(sa.mem_used_total > 0);
    CHECK(sb.mem_used_total > 0);
    CHECK(sa.mem_used_total < budget.used());
    CHECK(sb.mem_used_total < budget.used());
    CHECK(sa.mem_limit == 0);  // neither has a limit of its own
    CHECK((sa + sb).mem_limit == 0);
    CHECK(sa.mem_used_max >= sa.mem_used_total);
    CHECK(sa.mem_used_max + sb.mem_used_max >= budget.max_used());
}

TEST_CASE("a shard's own limit caps that shard only, inside the shared one") {
    zpage::MemoryBudget budget(64 << 20);
    zpage::Lz4Store capped(zpage::StoreConfig{.capacity_pages = 64, .mem_limit_bytes = 1, .budget = &budget});
    zpage::Lz4Store free(zpage::StoreConfig{.capacity_pages = 64, .budget = &budget});
    CHECK(budget.limit() == std::size_t{64} << 20);  // the shard's limit did not become the budget's
    zpage_test::PageSource source(3);
    const zpage_test::Page page = compressible_page(source);
    CHECK(capped.store(0, page) == zpage::errc::memory_limit);
    CHECK(free.store(0, page));
    CHECK(capped.stats().mem_limit == 1);
    CHECK(free.stats().mem_limit == 0);

    free.set_mem_limit(free.stats().mem_used_total);  // caps `free` at what it holds now
    CHECK(budget.limit() == std::size_t{64} << 20);
    capped.set_mem_limit(0);  // lifts its own cap; the shared limit still applies
    CHECK(capped.store(0, page));
    CHECK((capped.stats() + free.stats()).mem_limit == 0);  // one of them is unlimited
}

TEST_CASE("a shard without a limit of its own stays under the shared limit") {
    zpage::MemoryBudget budget;
    zpage::Lz4Store shard(zpage::StoreConfig{.capacity_pages = 4096, .mem_limit_bytes = 0, .budget = &budget});
    budget.set_limit(budget.used() + (256 << 10));
    zpage_test::PageSource source(4);
    std::size_t refused = 0;
    for (std::size_t i = 0; i < 4096; ++i) refused += shard.store(i, compressible_page(source)) == zpage::errc::memory_limit;
    CHECK(refused > 0);
    CHECK(budget.used() <= budget.limit());
    CHECK(shard.stats().mem_used_total == budget.used());
}

TEST_CASE("limits add up only when every store has one") {
    zpage::Stats a, b;
    a.mem_limit = 100;
    b.mem_limit = 50;
    CHECK((a + b).mem_limit == 150);
    b.mem_limit = 0;
    CHECK((a + b).mem_limit == 0);
    CHECK((b + a).mem_limit == 0);
}
