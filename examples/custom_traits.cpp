// custom_traits: a traits bundle of one's own. Here: 16 KiB pages (an arm64 or Apple-silicon
// guest's page size), zstd at level 1, and a configuration that stores a page raw unless zstd
// saves at least a quarter of it, under a memory limit.
#include <zpage/zpage.hpp>

#include <cstdio>
#include <random>

struct GuestRamTraits : zpage::DefaultTraits {
    static constexpr std::size_t page_size = 16384;
    using compressor = zpage::Zstd;
    using allocator = zpage::SizeClassAllocator<page_size>;
};

int main() {
    const zpage::StoreConfig config{
        .capacity_pages = 1024,                  // 16 MiB of guest RAM
        .mem_limit_bytes = 8 << 20,              // held in at most 8 MiB
        .huge_threshold_bytes = 16384 * 3 / 4,   // raw unless it shrinks by a quarter
    };
    zpage::CompressedPageStore<GuestRamTraits> ram(config, zpage::Zstd{.level = 1});

    std::mt19937_64 rng(7);
    std::array<std::byte, 16384> page{};
    std::size_t refused = 0;
    for (std::size_t i = 0; i < config.capacity_pages; ++i) {
        // Guest-like pages: tables of small integers, some zero pages, a few random ones.
        for (std::size_t b = 0; b < page.size(); b += 8) {
            const std::uint64_t v = i % 7 == 0 ? 0 : i % 13 == 0 ? rng() : rng() % 1000;
            std::memcpy(&page[b], &v, sizeof v);
        }
        const zpage::Status st = ram.store(i, page);
        if (!st) {
            if (st.error() != zpage::errc::memory_limit) return 1;
            ++refused;
        }
    }
    const zpage::Stats st = ram.stats();
    std::printf("%s on %zu B pages: %llu pages in %llu B (limit %llu B), %llu same-filled, %llu raw, %zu refused\n",
                ram.compressor().name().c_str(), ram.page_size, static_cast<unsigned long long>(st.orig_data_size / 16384),
                static_cast<unsigned long long>(st.mem_used_total), static_cast<unsigned long long>(st.mem_limit),
                static_cast<unsigned long long>(st.same_pages), static_cast<unsigned long long>(st.huge_pages), refused);
    return st.mem_used_total <= st.mem_limit ? 0 : 1;
}
