// zpage: Writeback<B>, the writeback policy with a backing store: pages can leave memory for B
// (a file, a block device, a slower tier in RAM), like zram's writeback to its backing device.
//
//   zpage::FileBackingStore disk({.path = "/var/tmp/pages.zpage", .max_bytes = 8ull << 30});
//   using Traits = zpage::WritebackTraits<zpage::FileBackingStore>;
//   zpage::CompressedPageStore<Traits> store(config, zpage::Lz4{}, {.backing = &disk});
//
// What goes to the backing store is a record per page (record.hpp: checksummed, with the page's
// index and length), packed back to back with the other records of its batch: with the default
// format a page costs its compressed size on disk, not a block. When it happens is the store's
// ReclaimConfig (reclaim.hpp): explicit calls only, or a background reclaimer under a budget.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../traits.hpp"
#include "backing_store.hpp"

namespace zpage {

enum class WritebackFormat : std::uint8_t {
    // The page's bytes as the store holds them: compressed, or raw for a huge page (zram's
    // compressed_writeback, Linux 7.0, and beyond it packed). Half the I/O and the disk of `page`
    // on typical heaps; a read decompresses.
    compressed,
    // The page itself, decompressed (zram's default): a read needs no codec.
    page,
};

struct WritebackOptions {
    WritebackFormat format = WritebackFormat::compressed;
    // A load of a written-back page stores it in memory again and frees its record (it is being
    // used); otherwise it stays on the backing store, as zram leaves it.
    bool bring_back_on_load = true;
    // Bytes of records per write to the backing store, at least a record of a page: a batch ends
    // before the record that would pass it, or at the backing store's max_batch_records(). Each
    // batch is one write, as the backing store's I/Os (FileBackingStore: requests of 1 MiB, dd's
    // block, several in flight). The engine holds a buffer of this size.
    std::size_t batch_bytes = std::size_t{2} << 20;
};

template <BackingStore B>
struct Writeback {
    using backing_store_type = B;
    static constexpr bool tracks_access_time = true;
    static constexpr bool writes_back = true;

    // Must outlive the store; nullptr is refused at the store's construction. Several stores may
    // share one backing store.
    B* backing = nullptr;
    WritebackOptions options{};
};

// The default bundle (or another codec and page size) writing back to a B.
template <BackingStore B, Compressor Codec = Lz4, std::size_t PageSize = 4096>
struct WritebackTraits : TraitsFor<Codec, PageSize> {
    using writeback = Writeback<B>;
};

}  // namespace zpage
