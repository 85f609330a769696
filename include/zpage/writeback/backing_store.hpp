// zpage: BackingStore, where written-back pages go: a store of opaque records that gives back
// their locations, like the block device behind zram's writeback. The store's writeback policy
// packs cold pages into records (record.hpp: checksummed, so that damage anywhere below is caught)
// and writes them in batches; a written-back page's entry keeps the record's location.
//
// Shipped: FileBackingStore (a file on any file system, or a block device; file_backing_store.hpp),
// MemoryBackingStore (a second, slower tier in RAM, and the tests' reference), FaultyBackingStore
// (wraps either and fails on command).
//
// Space is counted in 4 KiB blocks, zram's bd_stat unit. A batch's records are packed back to back
// (a record may straddle blocks), so a record costs its own length, not a block.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../errc.hpp"
#include "../stats.hpp"

namespace zpage {

// Where a record lives on a backing store (its byte offset there): what a written-back page's
// entry word holds.
using BackingLocation = std::uint64_t;

// The unit of bd_stat and of a backing store's space.
inline constexpr std::size_t backing_block_bytes = 4096;

// A backing store's figures: zram's bd_stat (bd_count, bd_reads, bd_writes, in 4 KiB units), then
// failures. Declared once in for_each_field, as Stats is.
struct BackingStats {
    std::uint64_t bd_count = 0;       // 4 KiB blocks holding records now
    std::uint64_t bd_reads = 0;       // 4 KiB units read since construction (the blocks a read covers)
    std::uint64_t bd_writes = 0;      // 4 KiB units written since construction (a batch's blocks)
    std::uint64_t failed_reads = 0;   // reads that returned an error
    std::uint64_t failed_writes = 0;  // batches that returned an error (nothing of them kept)

    // Calls f(name, member pointer, unit) for every field, in the order above.
    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("bd_count"), &BackingStats::bd_count, StatUnit::pages);
        f(std::string_view("bd_reads"), &BackingStats::bd_reads, StatUnit::pages);
        f(std::string_view("bd_writes"), &BackingStats::bd_writes, StatUnit::pages);
        f(std::string_view("failed_reads"), &BackingStats::failed_reads, StatUnit::count);
        f(std::string_view("failed_writes"), &BackingStats::failed_writes, StatUnit::count);
    }

    BackingStats& operator+=(const BackingStats& other) noexcept {
        for_each_field([&](std::string_view, auto member, StatUnit) { this->*member += other.*member; });
        return *this;
    }
    friend BackingStats operator+(BackingStats a, const BackingStats& b) noexcept { return a += b; }
    friend bool operator==(const BackingStats&, const BackingStats&) = default;
};

// clang-format off: clang-format 14 breaks requirement lines apart
template <class B>
concept BackingStore = requires(B& b, const B& cb, std::span<const std::span<const std::byte>> records,
                                std::span<BackingLocation> locations, BackingLocation location,
                                std::span<std::byte> out, std::size_t length) {
    // The longest record write() takes, and the most records one write() takes (its batch buffer
    // is sized for them at construction).
    { cb.max_record_bytes() } noexcept -> std::same_as<std::size_t>;
    { cb.max_batch_records() } noexcept -> std::same_as<std::size_t>;
    // Writes every record of `records` (each 1 .. max_record_bytes() bytes, at most
    // max_batch_records() of them, locations.size() == records.size()), packed back to back, and
    // fills locations[i]. All or nothing: on failure no location is valid and nothing stays
    // allocated. errc::io_error (EIO, a short write), errc::no_space (the configured size is full,
    // or ENOSPC below it), errc::invalid_argument (sizes out of those bounds). Any thread
    // (writes are serialised inside).
    { b.write(records, locations) } noexcept -> std::same_as<Status>;
    // Reads the record at `location`, whose length is out.size(), into out. errc::io_error,
    // errc::invalid_argument (a range outside the store). Any thread, concurrently with write and
    // free. A record freed meanwhile may read as anything: the caller checks (record.hpp).
    { b.read(location, out) } noexcept -> std::same_as<Status>;
    // Frees a record (its location, and its length as written). Blocks no record uses any more are
    // free for later batches at once, and their space goes back to the file system (punched),
    // device (discarded) or OS, at once or coalesced later, as the store's configuration says.
    // Any thread. Freeing a record twice, or one never written, breaks the store's books
    // (asserted under ZPAGE_DEBUG).
    { b.free(location, length) } noexcept;
    { cb.stats() } noexcept -> std::same_as<BackingStats>;
};
// clang-format on

}  // namespace zpage
