// Fuzz target: the swap adapter's operation sequences (swap_out, swap_in, free, of slots in use,
// freed, reused or never handed out), with readahead and a store that runs out of its limit,
// against a model: the page each slot in use holds.
//
// Checked after each operation: a swap-out never hands out a slot in use and fails only with the
// store's limit or a full device; a swap-in of a slot in use gives its page (never a page read
// ahead before the slot was freed and reused), of any other slot invalid_argument; a free of a
// slot not in use changes nothing; slots_used is the model's size.
//
// Input: a choice byte (readahead window, limit), then operations of a few bytes each.
#include <zpage/zpage.hpp>

#include <array>
#include <cstring>
#include <map>
#include <vector>

#include "../corpora.hpp"
#include "fuzz_support.hpp"

namespace {

constexpr std::size_t slots = 64;

const std::vector<zpage_test::Page>& pool() {
    static const auto pages = zpage_test::sample_pages(3, 24);
    return pages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    zpage_fuzz::ByteReader in(data, size);
    const unsigned choice = in.integral<std::uint8_t>();
    const auto& pages = pool();
    // A limit that holds only some of the slots' pages, or none.
    const std::size_t limit = (choice & 0x80) != 0 ? std::size_t{160} << 10 : 0;
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = slots, .mem_limit_bytes = limit});
    const unsigned page_cluster = choice % 5;
    zpage::SwapDevice<zpage::Lz4Store> swap(
        store, {.page_cluster = page_cluster, .swap_cache_pages = std::size_t{1} << page_cluster, .cluster_slots = 16});

    std::map<std::uint32_t, std::size_t> model;  // slot in use -> pool page
    zpage_test::Page back{};
    for (int ops = 0; !in.empty() && ops < 500; ++ops) {
        const unsigned op = in.integral<std::uint8_t>() % 4;
        if (op <= 1) {
            const std::size_t which = in.below(pages.size());
            const zpage::Result<zpage::SwapSlot> slot = swap.swap_out(pages[which]);
            if (slot) {
                ZPAGE_FUZZ_CHECK(slot->index < slots && model.count(slot->index) == 0);
                model[slot->index] = which;
            } else {
                ZPAGE_FUZZ_CHECK(slot.error() == zpage::errc::memory_limit || slot.error() == zpage::errc::no_space ||
                                 slot.error() == zpage::errc::out_of_range);
                ZPAGE_FUZZ_CHECK(slot.error() != zpage::errc::memory_limit || limit != 0);
            }
        } else {
            // Mostly a slot in use; now and then any slot, in range or not.
            std::uint32_t index = static_cast<std::uint32_t>(in.below(slots + 4));
            if (!model.empty() && in.below(4) != 0) {
                auto it = model.begin();
                std::advance(it, static_cast<std::ptrdiff_t>(in.below(model.size())));
                index = it->first;
            }
            const auto found = model.find(index);
            if (op == 2) {
                const zpage::Status st = swap.swap_in(zpage::SwapSlot{index}, back);
                if (found == model.end()) {
                    ZPAGE_FUZZ_CHECK(st == zpage::errc::invalid_argument);
                } else {
                    ZPAGE_FUZZ_CHECK(st && back == pages[found->second]);
                }
            } else {
                const zpage::Status st = swap.free(zpage::SwapSlot{index});
                ZPAGE_FUZZ_CHECK(static_cast<bool>(st) == (found != model.end()));
                if (found != model.end()) model.erase(found);
            }
        }
        const zpage::SwapStats s = swap.stats();
        ZPAGE_FUZZ_CHECK(s.slots_used == model.size() && s.slots_total == slots);
    }
    for (const auto& [index, which] : model) {
        ZPAGE_FUZZ_CHECK(swap.swap_in(zpage::SwapSlot{index}, back) && back == pages[which]);
        ZPAGE_FUZZ_CHECK(swap.free(zpage::SwapSlot{index}));
    }
    ZPAGE_FUZZ_CHECK(store.stats().orig_data_size == 0);
    return 0;
}

extern "C" void zpage_fuzz_write_seeds(const char* dir) { zpage_fuzz::write_random_seeds(dir, 16, 1500); }
