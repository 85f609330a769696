// Fuzz target: the compressed region's operation sequences, against a model of its memory.
//
// A region of 160 pages over a budget of 64 to 95 (from the input), its faults served by handler
// threads or in the faulting thread, evicting in place or by move (from the input), with its
// evictor thread, takes writes of real pages and of single bytes, reads, discards
// (MADV_DONTNEED: a resident page reads as zeros after it, an evicted one keeps its bytes) and
// explicit evictions, in the order the input gives. Every read must give the model's bytes; at
// the end every page is checked, the evictor brings the resident pages within the budget, and the
// store holds the evicted pages and the clean copies of pages read back, nothing else.
//
// Needs userfaultfd (root, or vm.unprivileged_userfaultfd=1): without it each input returns at
// once, after saying so once.
//
// Input: a choice byte (budget, fault service, eviction, handler threads), then operations of a
// few bytes each.
#include <sys/mman.h>

#include <zpage/zpage.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "../corpora.hpp"
#include "fuzz_support.hpp"

namespace {

// The smallest budget a region takes is 256 KiB (64 pages): the region is a little over twice it.
constexpr std::size_t min_budget_pages = 64;
constexpr std::size_t region_pages = 160;

const std::vector<zpage_test::Page>& pool() {
    static const auto pages = zpage_test::sample_pages(5, 24);
    return pages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    zpage_fuzz::ByteReader in(data, size);
    const unsigned choice = in.integral<std::uint8_t>();
    const auto& pages = pool();
    const std::size_t budget_pages = min_budget_pages + choice % 32;
    zpage::Lz4Store store(region_pages);
    std::optional<zpage::CompressedRegion<zpage::Lz4Store>> region;
    try {
        region.emplace(store, zpage::RegionConfig{.bytes = region_pages * 4096,
                                                  .resident_budget_bytes = budget_pages * 4096,
                                                  .fault_service = (choice & 0x20) != 0
                                                                       ? zpage::FaultService::faulting_thread
                                                                       : zpage::FaultService::handler_thread,
                                                  .eviction = (choice & 0x40) != 0 ? zpage::Eviction::by_move
                                                                                   : zpage::Eviction::in_place,
                                                  .handler_threads = 1 + (choice >> 7),
                                                  .handler_stall_ms = 0});
    } catch (const zpage::RegionError& e) {
        static const bool said = (std::fprintf(stderr, "fuzz_region: no region here: %s\n", e.what()), true);
        static_cast<void>(said);
        return 0;
    }
    std::byte* const memory = region->data();

    std::vector<zpage_test::Page> model(region_pages);  // zeros: never written
    for (int ops = 0; !in.empty() && ops < 300; ++ops) {
        const unsigned op = in.integral<std::uint8_t>() % 6;
        const std::size_t p = in.below(region_pages);
        std::byte* const page = memory + p * 4096;
        switch (op) {
        case 0: {  // a whole page written
            const zpage_test::Page& source = pages[in.below(pages.size())];
            std::memcpy(page, source.data(), 4096);
            model[p] = source;
            break;
        }
        case 1: {  // one byte written
            const std::size_t at = in.below(4096);
            const auto value = static_cast<std::byte>(in.integral<std::uint8_t>());
            page[at] = value;
            model[p][at] = value;
            break;
        }
        case 2:
        case 3:
            ZPAGE_FUZZ_CHECK(std::memcmp(page, model[p].data(), 4096) == 0);
            break;
        case 4:
            static_cast<void>(region->evict(1 + in.below(64)));
            break;
        default: {
            // Discarded: a resident page reads as zeros afterwards, an evicted one keeps its
            // bytes (the region's header says so); the model learns which by reading it.
            ZPAGE_FUZZ_CHECK(::madvise(page, 4096, MADV_DONTNEED) == 0);
            const bool zeros = std::all_of(page, page + 4096, [](std::byte b) { return b == std::byte{0}; });
            if (zeros) {
                model[p].fill(std::byte{0});
            } else {
                ZPAGE_FUZZ_CHECK(std::memcmp(page, model[p].data(), 4096) == 0);
            }
        }
        }
    }
    for (std::size_t p = 0; p < region_pages; ++p)
        ZPAGE_FUZZ_CHECK(std::memcmp(memory + p * 4096, model[p].data(), 4096) == 0);
    // A fault that finds nothing to evict at a full budget is served anyway, a page over it for a
    // moment (make_room); the evictor, woken by it, brings the region back within the budget. A
    // page the evictor is moving shows in both counts for a moment (RegionStats). And the store
    // holds the evicted pages and the clean copies, no more: the copies of pages written or
    // discarded since are erased (from a faulting thread, by the evictor's next round). Each check
    // is of one sample of both, the evictor perhaps still at work between samples.
    zpage::RegionStats s;
    std::uint64_t stored_bytes = 0;
    auto sample = [&] {
        s = region->stats();
        stored_bytes = store.stats().orig_data_size;
    };
    auto settled = [&] {
        return s.resident_pages <= budget_pages && s.resident_pages + s.swapped_pages <= region_pages &&
               (s.swapped_pages + s.clean_copies) * 4096 == stored_bytes;
    };
    sample();
    for (int waited_ms = 0; !settled() && waited_ms < 5000; waited_ms += 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        sample();
    }
    ZPAGE_FUZZ_CHECK(s.resident_pages <= budget_pages);
    ZPAGE_FUZZ_CHECK(s.resident_pages + s.swapped_pages <= region_pages);
    ZPAGE_FUZZ_CHECK((s.swapped_pages + s.clean_copies) * 4096 == stored_bytes);
    return 0;
}

extern "C" void zpage_fuzz_write_seeds(const char* dir) { zpage_fuzz::write_random_seeds(dir, 16, 900); }
