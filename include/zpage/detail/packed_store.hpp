// zpage internal: what FileBackingStore and MemoryBackingStore share around their I/O: the checks
// of every call, the writer's lock, the placement of a batch in 4 KiB blocks (block_space.hpp),
// giving freed space back, and the counters of bd_stat. A store supplies the two things that
// differ: how placed records reach the device (write's `put`) and how a run of blocks is given
// back (`punch`: fallocate, BLKDISCARD, MADV_DONTNEED).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <span>

#include "../writeback/backing_store.hpp"
#include "block_space.hpp"
#include "spin_mutex.hpp"
#include "striped_counters.hpp"

namespace zpage::detail {

class PackedStore {
public:
    using Extent = BlockSpace::Extent;
    static constexpr std::size_t block_bytes = BlockSpace::block_bytes;

    // `writer_site` (a string literal) names the writer's lock in waiting_for(). retain_freed_bytes
    // 0: free() punches what it empties itself (block_space.hpp). put_bytes: the most one put()
    // takes, in blocks of the batch's runs (a store's I/O buffer; at least a run of the longest
    // record); a longer batch goes out in several. Throws std::bad_alloc.
    PackedStore(std::uint64_t capacity_bytes, std::size_t max_record_bytes, std::size_t max_batch_records,
                std::uint64_t retain_freed_bytes, const char* writer_site,
                std::uint64_t put_bytes = std::numeric_limits<std::uint64_t>::max())
        : capacity_bytes_(capacity_bytes / block_bytes * block_bytes),
          max_record_bytes_(max_record_bytes),
          max_batch_records_(max_batch_records),
          retain_freed_bytes_(retain_freed_bytes),
          put_blocks_(put_bytes / block_bytes),
          writer_site_(writer_site),
          space_(capacity_bytes / block_bytes, retain_freed_bytes == 0),
          extents_(std::make_unique<Extent[]>(max_batch_records)) {
        ZPAGE_ASSERT(put_blocks_ >= BlockSpace::blocks_for(max_record_bytes));
    }

    [[nodiscard]] std::uint64_t capacity_bytes() const noexcept { return capacity_bytes_; }
    [[nodiscard]] std::size_t max_record_bytes() const noexcept { return max_record_bytes_; }
    [[nodiscard]] std::size_t max_batch_records() const noexcept { return max_batch_records_; }
    [[nodiscard]] std::uint64_t retained_bytes() const noexcept { return space_.unpunched_blocks() * block_bytes; }

    // BackingStore::write around put(records, locations, extents) -> Status, which writes placed
    // records (their locations filled, in those runs of blocks, at most put_bytes of them) to the
    // device, under the writer's lock; a batch longer than that is placed and put in several parts,
    // each part's runs apart from the others'. Before placing, retained space beyond
    // retain_freed_bytes is given back, a few runs of it (punch); when placing or a put fails, the
    // batch's blocks, every part's, are punched (a put may have written some) and free again: all
    // or nothing. invalid_argument, no_space, or what put returns.
    template <class Put, class Punch>
    Status write(std::span<const std::span<const std::byte>> records, std::span<BackingLocation> locations, Put&& put,
                 Punch&& punch) noexcept {
        if (records.size() != locations.size() || records.size() > max_batch_records_) return errc::invalid_argument;
        for (const auto& r : records)
            if (r.empty() || r.size() > max_record_bytes_) return errc::invalid_argument;
        if (records.empty()) return {};
        const auto lock = lock_writer();
        if (retained_bytes() > retain_freed_bytes_) space_.punch_freed(BlockSpace::punch_calls_per_batch, punch);
        const std::span<Extent> extents(extents_.get(), max_batch_records_);
        std::size_t done = 0, used = 0;  // records and extents of the parts put so far
        while (done < records.size()) {
            const Result<BlockSpace::Placement> placed =
                space_.place(records.subspan(done), locations.subspan(done), extents.subspan(used), put_blocks_);
            Status s = placed.status();
            if (s) {
                s = put(records.subspan(done, placed->records), locations.subspan(done, placed->records),
                        std::span<const Extent>(extents.subspan(used, placed->extents)));
                if (!s) used += placed->extents;
            }
            if (!s) {
                space_.abandon(std::span<const Extent>(extents.first(used)), punch);
                return failed(Counter::failed_writes, s.error());
            }
            done += placed->records;
            used += placed->extents;
        }
        std::uint64_t blocks = 0;
        for (const Extent& e : extents.first(used)) blocks += e.blocks;
        counters_.add(Counter::writes, static_cast<std::int64_t>(blocks));
        return {};
    }

    // invalid_argument unless [location, location + bytes) lies inside the store and
    // 1 <= bytes <= max_record_bytes.
    [[nodiscard]] Status check_read(BackingLocation location, std::size_t bytes) const noexcept {
        if (bytes == 0 || bytes > max_record_bytes_ || location > capacity_bytes_ || bytes > capacity_bytes_ - location)
            return errc::invalid_argument;
        return {};
    }
    // Counts a read of [location, location + bytes) that succeeded: the blocks it covers.
    void count_read(BackingLocation location, std::size_t bytes) noexcept {
        counters_.add(Counter::reads,
                      static_cast<std::int64_t>((location + bytes - 1) / block_bytes - location / block_bytes + 1));
    }
    Status failed_read(errc code) noexcept { return failed(Counter::failed_reads, code); }

    // BackingStore::free: the blocks the record leaves empty are punched here (retain_freed_bytes
    // 0) or marked for later. A range outside the store is ignored (asserted under ZPAGE_DEBUG).
    template <class Punch>
    void free(BackingLocation location, std::size_t length, Punch&& punch) noexcept {
        const bool inside = length != 0 && location <= capacity_bytes_ && length <= capacity_bytes_ - location;
        ZPAGE_ASSERT(inside);
        if (inside) space_.free(location, length, punch);
    }

    // Gives back every freed block not given back yet, adjacent ones in one call.
    template <class Punch>
    void trim(Punch&& punch) noexcept {
        const auto lock = lock_writer();
        space_.punch_freed(~std::size_t{0}, punch);
    }

    [[nodiscard]] BackingStats stats() const noexcept {
        BackingStats s;
        s.bd_count = space_.blocks_in_use();
        s.bd_reads = counters_.sum(Counter::reads);
        s.bd_writes = counters_.sum(Counter::writes);
        s.failed_reads = counters_.sum(Counter::failed_reads);
        s.failed_writes = counters_.sum(Counter::failed_writes);
        return s;
    }

private:
    // Striped: reads come from every thread at once.
    enum class Counter : std::uint8_t { reads, writes, failed_reads, failed_writes, count };

    Status failed(Counter counter, errc code) noexcept {
        counters_.add(counter, 1);
        return code;
    }

    // The writer's std::mutex, held across a batch's I/O, named while waited for.
    std::unique_lock<std::mutex> lock_writer() noexcept { return lock_waiting_for(writer_, writer_site_); }

    const std::uint64_t capacity_bytes_;
    const std::size_t max_record_bytes_;
    const std::size_t max_batch_records_;
    const std::uint64_t retain_freed_bytes_;
    const std::uint64_t put_blocks_;
    const char* const writer_site_;
    BlockSpace space_;
    StripedCounters<Counter> counters_;
    std::mutex writer_;
    std::unique_ptr<Extent[]> extents_;  // the writer's, under writer_: a batch's runs of blocks
};

}  // namespace zpage::detail
