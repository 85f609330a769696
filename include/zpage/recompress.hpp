// zpage: recompression, zram's recompress applied to a store with secondary codecs
// (Traits::secondary_codecs): pages stored fast with the primary codec are compressed again with
// a stronger one, alone or (going beyond zram) in units of up to 16 neighbouring pages, and keep
// the result only when it takes less memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "errc.hpp"
#include "stats.hpp"

namespace zpage {

// Which pages recompress() takes (zram's recompress types). Only pages in memory held by the
// primary codec and not flagged INCOMPRESSIBLE are taken.
enum class RecompressSelect : std::uint8_t {
    huge,       // stored raw: the primary codec did not shrink them enough
    idle,       // flagged idle (mark_idle) and not touched since
    huge_idle,  // both
    any,        // every page the primary codec holds
};

struct RecompressRequest {
    RecompressSelect select = RecompressSelect::idle;
    // Only pages stored in at least this many bytes (zram's threshold=); 0: any size.
    std::size_t threshold_bytes = 0;
    // At most this many pages recompressed (zram's max_pages=).
    std::size_t max_pages = std::numeric_limits<std::size_t>::max();
    // The codec: 1 for the first of the traits' secondary codecs, 2 for the second... (zram's
    // priority=). A page left larger by it than it is is flagged INCOMPRESSIBLE when this is the
    // last codec, and not taken again.
    unsigned codec = 1;
    // Pages compressed as one unit: 1 (each page alone, as zram), or up to 16 neighbours of a
    // window [i, i + group_pages) with i a multiple of group_pages (4: 16 KiB units of 4 KiB
    // pages, 16: 64 KiB). A load of one of them decompresses the unit.
    std::size_t group_pages = 1;
    // The index range [first, last) looked at.
    std::size_t first = 0;
    std::size_t last = std::numeric_limits<std::size_t>::max();
};

struct RecompressResult {
    std::size_t pages = 0;        // pages now held by the codec
    std::size_t tried = 0;        // pages decoded and compressed again, whether it paid or not
    std::size_t units = 0;        // units of grouped pages made
    std::int64_t bytes_saved = 0; // memory their old objects took less what the new ones take
    std::size_t not_paid = 0;     // attempts (a page, or a unit) whose result would not have been smaller
    std::size_t next = 0;         // the index after the last window looked at: where to go on from
    Status status;                // what stopped it early (memory_limit, out_of_memory, invalid_argument)
};

// A store's recompression figures, declared once in for_each_field, as Stats is.
struct RecompressStats {
    std::uint64_t pages_recompressed = 0;  // pages recompressed since construction
    std::uint64_t units_made = 0;          // units of grouped pages made since construction
    std::uint64_t bytes_saved = 0;         // memory saved by recompression since construction
    std::uint64_t attempts_not_paid = 0;   // pages or units whose result was not smaller
    std::uint64_t recompress_us = 0;       // time spent recompressing, since construction

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("pages_recompressed"), &RecompressStats::pages_recompressed, StatUnit::pages);
        f(std::string_view("units_made"), &RecompressStats::units_made, StatUnit::count);
        f(std::string_view("bytes_saved"), &RecompressStats::bytes_saved, StatUnit::bytes);
        f(std::string_view("attempts_not_paid"), &RecompressStats::attempts_not_paid, StatUnit::count);
        f(std::string_view("recompress_us"), &RecompressStats::recompress_us, StatUnit::count);
    }
    friend bool operator==(const RecompressStats&, const RecompressStats&) = default;
};

}  // namespace zpage
