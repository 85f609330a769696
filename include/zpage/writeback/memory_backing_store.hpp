// zpage: MemoryBackingStore, a backing store in RAM: a second, slower tier for pages that should
// leave the first (a store with a stronger codec behind a fast one, say), and the reference the
// tests hold the file store to. Same semantics as FileBackingStore, space included: records are
// packed back to back into 4 KiB blocks of one reserved arena (detail/block_space.hpp), so
// bd_count, bd_reads and bd_writes count the same blocks, no_space comes at the same fill, and a
// block left without records goes back to the OS (MADV_DONTNEED) as a file's is punched: beyond
// retain_freed_bytes (2 MiB, as the page pool retains), coalesced, a few runs per batch, or all
// of them in trim(). A retained block a later batch reuses costs no page fault (10 us each on a
// virtual machine whose host took the memory back).
//
// Memory: the arena is address space reserved at construction (MAP_NORESERVE); only blocks
// records were written to take memory, bd_count x 4 KiB, outside any store's mem_used_total.
// Bookkeeping as the file store: 576 KiB per GiB of arena.
//
// Reads copy with relaxed 8-byte atomic loads and writes store the same way, so that a read
// racing the free of its record and the reuse of its block by a later batch is no data race: it
// returns stale or new bytes, which record.hpp's checksum catches, as a file read would.
// Locks: a std::mutex serialises writers ("MemoryBackingStore writer", a leaf: nothing is taken
// under it); reads and free() take none.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "../detail/os.hpp"
#include "../detail/packed_store.hpp"
#include "backing_store.hpp"
#include "record.hpp"

namespace zpage {

struct MemoryBackingConfig {
    // The most the store may hold, rounded down to 4 KiB. Reserved as address space at once.
    std::uint64_t max_bytes = 0;
    // The longest record write() takes: a 4 KiB page stored raw, with its record header.
    std::size_t max_record_bytes = record_bytes(4096);
    // The most records one write() takes.
    std::size_t max_batch_records = 4096;
    // Freed memory kept for later batches rather than given back at once; 0: free() gives back
    // what it empties itself.
    std::uint64_t retain_freed_bytes = std::uint64_t{2} << 20;

    // Throws std::invalid_argument naming the field at fault.
    void validate() const {
        if (max_record_bytes == 0 || max_record_bytes > max_bytes / 4096 * 4096)
            throw std::invalid_argument(
                "zpage::MemoryBackingConfig: max_record_bytes must be at least 1, and max_bytes must hold one record "
                "of max_record_bytes");
        if (max_batch_records == 0 || max_batch_records > 65536)
            throw std::invalid_argument("zpage::MemoryBackingConfig: max_batch_records must be in [1, 65536]");
    }
};

namespace detail {
// Copies `from` to `to` with relaxed atomic stores of the aligned 8-byte words it covers (merging
// the bytes of partly covered words, which only the writer changes).
inline void store_relaxed(std::byte* to, std::span<const std::byte> from) noexcept {
    const std::byte* src = from.data();
    for (std::size_t left = from.size(); left != 0;) {
        const std::size_t offset = reinterpret_cast<std::uintptr_t>(to) % 8;
        const std::size_t take = std::min(left, 8 - offset);
        std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(to - offset));
        std::uint64_t value = take == 8 ? 0 : word.load(std::memory_order_relaxed);
        std::memcpy(reinterpret_cast<std::byte*>(&value) + offset, src, take);
        word.store(value, std::memory_order_relaxed);
        to += take, src += take, left -= take;
    }
}

// Copies `from` (to.size() bytes) to `to` with relaxed atomic loads of the aligned words it covers.
inline void load_relaxed(std::span<std::byte> to, const std::byte* from) noexcept {
    std::byte* dst = to.data();
    for (std::size_t left = to.size(); left != 0;) {
        const std::size_t offset = reinterpret_cast<std::uintptr_t>(from) % 8;
        const std::size_t take = std::min(left, 8 - offset);
        // NOLINTNEXTLINE: the arena is writable memory; atomic_ref needs a non-const object
        std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(from - offset)));
        const std::uint64_t value = word.load(std::memory_order_relaxed);
        std::memcpy(dst, reinterpret_cast<const std::byte*>(&value) + offset, take);
        from += take, dst += take, left -= take;
    }
}
}  // namespace detail

class MemoryBackingStore {
public:
    // Throws std::invalid_argument for a bad configuration, std::bad_alloc when the address space
    // or the bookkeeping cannot be had.
    explicit MemoryBackingStore(const MemoryBackingConfig& config)
        : books_(validated(config).max_bytes, config.max_record_bytes, config.max_batch_records,
                 config.retain_freed_bytes, "MemoryBackingStore writer"),
          arena_(detail::os::reserve(books_.capacity_bytes())) {
        if (arena_ == nullptr) throw std::bad_alloc();
    }
    ~MemoryBackingStore() { detail::os::release(arena_, books_.capacity_bytes()); }
    MemoryBackingStore(const MemoryBackingStore&) = delete;
    MemoryBackingStore& operator=(const MemoryBackingStore&) = delete;

    [[nodiscard]] std::size_t max_record_bytes() const noexcept { return books_.max_record_bytes(); }
    [[nodiscard]] std::size_t max_batch_records() const noexcept { return books_.max_batch_records(); }
    // The bytes the store may hold: max_bytes rounded down to 4 KiB.
    [[nodiscard]] std::uint64_t capacity_bytes() const noexcept { return books_.capacity_bytes(); }
    // Freed memory not given back yet (see retain_freed_bytes). Any thread.
    [[nodiscard]] std::uint64_t retained_bytes() const noexcept { return books_.retained_bytes(); }

    // Gives every freed block not given back yet to the OS. Any thread; waits for a write in progress.
    void trim() noexcept { books_.trim(decommit_fn()); }

    // See BackingStore (backing_store.hpp). no_space, invalid_argument; memory does not fail
    // (what the OS refuses later is a fault, as for any memory). Any thread; writers wait for each
    // other on a std::mutex.
    Status write(std::span<const std::span<const std::byte>> records, std::span<BackingLocation> locations) noexcept {
        const auto put = [&](std::span<const std::span<const std::byte>> part, std::span<const BackingLocation> at,
                             std::span<const detail::PackedStore::Extent>) {
            for (std::size_t i = 0; i < part.size(); ++i) detail::store_relaxed(arena_ + at[i], part[i]);
            return Status{};
        };
        return books_.write(records, locations, put, decommit_fn());
    }

    // See BackingStore. invalid_argument only. Any thread, concurrently with everything.
    Status read(BackingLocation location, std::span<std::byte> out) noexcept {
        if (const Status s = books_.check_read(location, out.size()); !s) return s;
        detail::load_relaxed(out, arena_ + location);
        books_.count_read(location, out.size());
        return {};
    }

    // See BackingStore. With retain_freed_bytes = 0, gives the blocks the record leaves empty back
    // to the OS (one madvise per run of them); else only marks them. Any thread.
    void free(BackingLocation location, std::size_t length) noexcept { books_.free(location, length, decommit_fn()); }

    [[nodiscard]] BackingStats stats() const noexcept { return books_.stats(); }

private:
    // What PackedStore calls to give a run of blocks back.
    struct Decommitter {
        std::byte* arena;
        void operator()(std::uint64_t first_block, std::uint64_t blocks) const noexcept {
            static_cast<void>(detail::os::decommit(arena + first_block * detail::PackedStore::block_bytes,
                                                   blocks * detail::PackedStore::block_bytes));
        }
    };
    Decommitter decommit_fn() const noexcept { return {arena_}; }

    static const MemoryBackingConfig& validated(const MemoryBackingConfig& config) {
        config.validate();
        return config;
    }

    detail::PackedStore books_;
    std::byte* const arena_;
};

static_assert(BackingStore<MemoryBackingStore>);

}  // namespace zpage
