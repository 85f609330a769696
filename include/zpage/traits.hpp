// zpage: traits bundles, the one template argument of CompressedPageStore. A bundle names the page
// size, the four policies and the secondary codecs; derive from DefaultTraits and override what
// differs.
#pragma once

#include <concepts>
#include <cstddef>
#include <tuple>

#include "allocator/allocator.hpp"
#include "compressor/lz4.hpp"
#include "compressor/zstd.hpp"
#include "page_table.hpp"
#include "writeback/concept.hpp"

namespace zpage {

struct DefaultTraits {
    static constexpr std::size_t page_size = 4096;
    using compressor = Lz4;
    using allocator = SizeClassAllocator<page_size>;
    using page_table = PageTable;
    using writeback = NoWriteback;
    // Codecs recompress() may hold pages with besides `compressor` (zram's recompression
    // algorithms), ids 1.. in this order: std::tuple<Zstd> for lz4 on the way in and zstd for
    // cold pages. Empty: no recompression, and none of its cost.
    using secondary_codecs = std::tuple<>;
};

// The default bundle with another codec and, optionally, another page size.
template <Compressor Codec, std::size_t PageSize = 4096>
struct TraitsFor : DefaultTraits {
    static constexpr std::size_t page_size = PageSize;
    using compressor = Codec;
    using allocator = SizeClassAllocator<PageSize>;
};

// zpage's recommended bundle: lz4 on the store path, zstd (level 3 unless given) for cold pages,
// recompressed in units of neighbouring pages; run it with ReclaimConfig::tiered().
template <std::size_t PageSize = 4096>
struct TieredTraits : TraitsFor<Lz4, PageSize> {
    using secondary_codecs = std::tuple<Zstd>;
};

template <class T>
concept StoreTraits = requires {
    { T::page_size } -> std::convertible_to<std::size_t>;
    typename T::compressor;
    typename T::allocator;
    typename T::page_table;
    typename T::writeback;
    typename T::secondary_codecs;
};

}  // namespace zpage
