// zpage: everything, with named stores for the shipped codecs. Include the component headers
// instead to depend only on the codec libraries you use (store.hpp needs only lz4).
#pragma once

#include "adapters/compressed_cache.hpp"
#include "adapters/compressed_region.hpp"
#include "adapters/swap_device.hpp"
#include "allocator/allocator.hpp"
#include "allocator/concept.hpp"
#include "allocator/handle_table.hpp"
#include "allocator/large_object.hpp"
#include "allocator/size_classes.hpp"
#include "compressor/concept.hpp"
#include "compressor/identity.hpp"
#include "compressor/lz4.hpp"
#include "compressor/zstd.hpp"
#include "errc.hpp"
#include "memory_budget.hpp"
#include "page_table.hpp"
#include "stats.hpp"
#include "store.hpp"
#include "reclaim.hpp"
#include "recompress.hpp"
#include "traits.hpp"
#include "writeback/policy.hpp"
#include "writeback/backing_store.hpp"
#include "writeback/faulty_backing_store.hpp"
#include "writeback/file_backing_store.hpp"
#include "writeback/memory_backing_store.hpp"
#include "writeback/record.hpp"

namespace zpage {

using Lz4Traits = DefaultTraits;
using Lz4hcTraits = TraitsFor<Lz4hc>;
using ZstdTraits = TraitsFor<Zstd>;
using IdentityTraits = TraitsFor<Identity>;

using Lz4Store = CompressedPageStore<Lz4Traits>;
using Lz4hcStore = CompressedPageStore<Lz4hcTraits>;
using ZstdStore = CompressedPageStore<ZstdTraits>;
using IdentityStore = CompressedPageStore<IdentityTraits>;

}  // namespace zpage
