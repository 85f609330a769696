// zpage: Stats, a store's figures with zram's names and meanings (mm_stat, then io_stat-like
// counters). The field list is declared once, in for_each_field, so that table printers, JSON
// writers and tests walk the same list.
//
// Every figure is the store's own, also for stores that share a MemoryBudget: mem_used_total,
// mem_used_max and mem_limit come from the store's own account inside the shared budget. So the
// Stats of shards add up (operator+): used memory and counters to the truth, limits to the sum
// of the shards' own limits (none if any shard has none), peaks to an upper bound of the peak of
// the sum (the shards' peaks need not coincide). The shared budget's total, peak and limit are
// that MemoryBudget's used(), max_used() and limit().
#pragma once

#include <cstdint>
#include <string_view>

namespace zpage {

enum class StatUnit : std::uint8_t { bytes, pages, count };

struct Stats {
    // mm_stat, in zram's order
    std::uint64_t orig_data_size = 0;    // bytes of pages stored (stored pages x page size)
    std::uint64_t compr_data_size = 0;   // compressed bytes of those pages (a huge page counts whole)
    std::uint64_t mem_used_total = 0;    // everything the store holds: span pages, span metadata, page table
    std::uint64_t mem_limit = 0;         // the store's own limit; 0: none (a shared budget's applies too)
    std::uint64_t mem_used_max = 0;      // peak of mem_used_total
    std::uint64_t same_pages = 0;        // pages that are one repeated 8-byte word: no memory
    std::uint64_t pages_compacted = 0;   // pages given back by compact(), since construction
    std::uint64_t huge_pages = 0;        // pages stored raw because they did not compress enough
    std::uint64_t huge_pages_since = 0;  // pages ever stored raw, since construction
    // operation counters
    std::uint64_t num_reads = 0;         // successful loads
    std::uint64_t num_writes = 0;        // successful stores
    std::uint64_t failed_reads = 0;      // loads that failed (corrupt data)
    std::uint64_t failed_writes = 0;     // stores that failed (memory limit, out of memory)

    // Calls f(name, member pointer, unit) for every field, in the order above.
    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("orig_data_size"), &Stats::orig_data_size, StatUnit::bytes);
        f(std::string_view("compr_data_size"), &Stats::compr_data_size, StatUnit::bytes);
        f(std::string_view("mem_used_total"), &Stats::mem_used_total, StatUnit::bytes);
        f(std::string_view("mem_limit"), &Stats::mem_limit, StatUnit::bytes);
        f(std::string_view("mem_used_max"), &Stats::mem_used_max, StatUnit::bytes);
        f(std::string_view("same_pages"), &Stats::same_pages, StatUnit::pages);
        f(std::string_view("pages_compacted"), &Stats::pages_compacted, StatUnit::pages);
        f(std::string_view("huge_pages"), &Stats::huge_pages, StatUnit::pages);
        f(std::string_view("huge_pages_since"), &Stats::huge_pages_since, StatUnit::pages);
        f(std::string_view("num_reads"), &Stats::num_reads, StatUnit::count);
        f(std::string_view("num_writes"), &Stats::num_writes, StatUnit::count);
        f(std::string_view("failed_reads"), &Stats::failed_reads, StatUnit::count);
        f(std::string_view("failed_writes"), &Stats::failed_writes, StatUnit::count);
    }

    // Adds another store's figures (shards of one cache, say). A limit of 0 (none) stays none:
    // stores of which one is unlimited are unlimited together.
    Stats& operator+=(const Stats& other) noexcept {
        const bool unlimited = mem_limit == 0 || other.mem_limit == 0;
        for_each_field([&](std::string_view, auto member, StatUnit) { this->*member += other.*member; });
        if (unlimited) mem_limit = 0;
        return *this;
    }
    friend Stats operator+(Stats a, const Stats& b) noexcept { return a += b; }
    friend bool operator==(const Stats&, const Stats&) = default;
};

}  // namespace zpage
