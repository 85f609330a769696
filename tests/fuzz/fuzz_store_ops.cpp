// Fuzz target: operation sequences on a store with every moving part (lz4 in, zstd units for cold
// pages, writeback to a backing store that fails on command, a memory limit, direct reclaim),
// against a model: a vector saying which page each index holds.
//
// Operations: store, load, erase, compact, set_mem_limit, mark_idle, writeback, recompress, and
// arming the backing store's faults (EIO, ENOSPC, short writes, flipped bits). Checked after each:
// a store that fails leaves the previous page; a load gives the model's page, or fails only while
// read faults are armed; writeback and recompression fail only with the statuses they may;
// orig_data_size counts exactly the model's pages, and validate() finds the books balanced. At the end, with faults cleared and no limit,
// every page reads back exact and erasing everything gives the memory back.
//
// Input: a choice byte (page size, direct reclaim), then operations of a few bytes each.
#include <zpage/zpage.hpp>

#include <array>
#include <cstring>
#include <vector>

#include "../corpora.hpp"
#include "fuzz_support.hpp"

namespace {

using Disk = zpage::FaultyBackingStore<zpage::MemoryBackingStore>;

template <std::size_t PageSize>
struct Traits : zpage::TraitsFor<zpage::Lz4, PageSize> {
    using writeback = zpage::Writeback<Disk>;
    using secondary_codecs = std::tuple<zpage::Zstd>;
};

constexpr std::size_t capacity = 48;

// Pages shaped like memory: real ones where the corpora are, same-filled ones, and whatever
// PageSource mixes in (incompressible ones among them, stored raw).
template <std::size_t PageSize>
const std::vector<std::array<std::byte, PageSize>>& pool() {
    static const auto pages = [] {
        std::vector<std::array<std::byte, PageSize>> out;
        zpage_test::PageSource source(2);
        for (int i = 0; i < 30; ++i) {
            std::array<std::byte, PageSize> p{};
            for (std::size_t off = 0; off < PageSize; off += 4096) {
                const zpage_test::Page part = source.next();
                std::memcpy(p.data() + off, part.data(), part.size());
            }
            out.push_back(p);
        }
        out.emplace_back();  // zeros
        std::array<std::byte, PageSize> same{};
        for (std::size_t off = 0; off < PageSize; off += 8) std::memcpy(same.data() + off, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
        out.push_back(same);
        return out;
    }();
    return pages;
}

template <std::size_t PageSize>
void run(zpage_fuzz::ByteReader& in, bool direct_reclaim) {
    using Store = zpage::CompressedPageStore<Traits<PageSize>>;
    const auto& pages = pool<PageSize>();
    Disk disk(zpage::MemoryBackingConfig{.max_bytes = 4 * capacity * PageSize,
                                          .max_record_bytes = zpage::record_bytes(PageSize)});
    zpage::ReclaimConfig reclaim = zpage::ReclaimConfig::manual();
    reclaim.direct = direct_reclaim;
    Store store(zpage::StoreConfig{.capacity_pages = capacity, .reclaim = reclaim}, zpage::Lz4{},
                {.backing = &disk, .options = {.batch_bytes = 4 * PageSize}});
    const zpage::Stats empty = store.stats();

    std::vector<int> model(capacity, -1);  // the pool page each index holds; -1: none (reads as zeros)
    bool read_faults = false, write_faults = false;
    std::array<std::byte, PageSize> back{};
    const auto stored_count = [&] {
        return static_cast<std::size_t>(std::count_if(model.begin(), model.end(), [](int m) { return m >= 0; }));
    };
    const auto matches_model = [&](std::size_t i) {
        if (model[i] < 0) return std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; });
        return back == pages[static_cast<std::size_t>(model[i])];
    };

    for (int ops = 0; !in.empty() && ops < 400; ++ops) {
        const unsigned op = in.integral<std::uint8_t>();
        const std::size_t index = in.below(capacity + 2);  // now and then out of range
        switch (op % 10) {
        case 0:
        case 1: {
            const std::size_t which = in.below(pages.size());
            const zpage::Status st = store.store(index, pages[which]);
            if (index >= capacity) {
                ZPAGE_FUZZ_CHECK(st == zpage::errc::out_of_range);
            } else if (st) {
                model[index] = static_cast<int>(which);
            } else {
                ZPAGE_FUZZ_CHECK(st == zpage::errc::memory_limit);
            }
            break;
        }
        case 2:
        case 3: {
            const zpage::Status st = store.load(index, back);
            if (index >= capacity) {
                ZPAGE_FUZZ_CHECK(st == zpage::errc::out_of_range);
            } else if (st) {
                ZPAGE_FUZZ_CHECK(matches_model(index));
            } else {
                ZPAGE_FUZZ_CHECK(read_faults && (st == zpage::errc::io_error || st == zpage::errc::corrupt_data));
            }
            break;
        }
        case 4:
            ZPAGE_FUZZ_CHECK(store.erase(index) == (index >= capacity ? zpage::errc::out_of_range : zpage::errc::ok));
            if (index < capacity) model[index] = -1;
            break;
        case 5:
            static_cast<void>(store.compact());
            break;
        case 6: {
            const std::size_t choice = in.below(4);
            // None, or a limit within a few pages either side of what the store uses now.
            const auto used = static_cast<std::int64_t>(store.stats().mem_used_total);
            const std::int64_t delta = (static_cast<std::int64_t>(index) - std::int64_t{capacity} / 2) *
                                       static_cast<std::int64_t>(PageSize) / 8;
            store.set_mem_limit(choice == 0 ? 0 : static_cast<std::size_t>(std::max<std::int64_t>(4096, used + delta)));
            break;
        }
        case 7:
            if (in.below(2) == 0) {
                static_cast<void>(store.mark_idle());
            } else {
                static_cast<void>(store.mark_idle(std::chrono::seconds(0)));
            }
            break;
        case 8: {
            const auto select = static_cast<zpage::WritebackSelect>(in.below(5));
            const zpage::WritebackResult r =
                store.writeback({.select = select, .first = index, .max_pages = 1 + in.below(capacity)});
            ZPAGE_FUZZ_CHECK(r.status || (write_faults && (r.status == zpage::errc::io_error ||
                                                           r.status == zpage::errc::no_space)));
            break;
        }
        default: {
            const unsigned what = in.integral<std::uint8_t>();
            if (what % 3 == 0) {  // recompress
                const zpage::RecompressResult r = store.recompress(
                    {.select = static_cast<zpage::RecompressSelect>(what / 3 % 4), .group_pages = 1 + what / 12 % 16,
                     .first = index});
                ZPAGE_FUZZ_CHECK(r.status || r.status == zpage::errc::memory_limit);
            } else {  // arm a fault, or clear them
                const std::uint32_t after = static_cast<std::uint32_t>(in.below(4));
                const std::uint32_t times = static_cast<std::uint32_t>(1 + in.below(3));
                switch (what % 6) {
                case 1: disk.fail_writes(zpage::errc::io_error, after, times), write_faults = true; break;
                case 2: disk.fail_writes(zpage::errc::no_space, after, times), write_faults = true; break;
                case 4: disk.short_writes(after, times), write_faults = true; break;
                case 5: disk.fail_reads(after, times), read_faults = true; break;
                default:
                    if (what % 2 == 0) {
                        disk.flip_bits(after, times, in.integral<std::uint16_t>());
                        read_faults = true;
                    } else {
                        disk.clear();
                        read_faults = write_faults = false;
                    }
                }
            }
        }
        }
        ZPAGE_FUZZ_CHECK(store.stats().orig_data_size == stored_count() * PageSize);
        zpage_fuzz::check_books(store);
    }

    // Nothing stored was lost: with no faults and no limit every page reads back exact.
    disk.clear();
    store.set_mem_limit(0);
    for (std::size_t i = 0; i < capacity; ++i) {
        ZPAGE_FUZZ_CHECK(store.load(i, back));
        ZPAGE_FUZZ_CHECK(matches_model(i));
    }
    for (std::size_t i = 0; i < capacity; ++i) ZPAGE_FUZZ_CHECK(store.erase(i));
    static_cast<void>(store.compact());
    const zpage::Stats s = store.stats();
    ZPAGE_FUZZ_CHECK(s.orig_data_size == 0 && s.compr_data_size == 0 && s.same_pages == 0 && s.huge_pages == 0);
    zpage_fuzz::check_books(store);
    ZPAGE_FUZZ_CHECK(store.writeback_stats().written_back_pages == 0);
    ZPAGE_FUZZ_CHECK(s.mem_used_total >= empty.mem_used_total &&
                     s.mem_used_total <= empty.mem_used_total + zpage_fuzz::kept_descriptor_bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    zpage_fuzz::ByteReader in(data, size);
    const unsigned choice = in.integral<std::uint8_t>();
    if ((choice & 1) != 0) {
        run<16384>(in, (choice & 2) != 0);
    } else {
        run<4096>(in, (choice & 2) != 0);
    }
    return 0;
}

extern "C" void zpage_fuzz_write_seeds(const char* dir) { zpage_fuzz::write_random_seeds(dir, 16, 1200); }
