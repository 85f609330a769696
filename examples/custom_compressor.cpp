// custom_compressor: a Compressor policy in a few lines. ChecksummedLz4 wraps zpage::Lz4 and
// appends a 4-byte XXH3 checksum to every compressed page, so a page damaged in memory (a stray
// write, a flipped bit) is reported as corrupt_data on load instead of decoding to wrong bytes.
#include <zpage/zpage.hpp>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <random>

struct ChecksummedLz4 {
    zpage::Lz4 lz4;
    using compress_context = zpage::Lz4::compress_context;
    using decompress_context = zpage::Lz4::decompress_context;
    static constexpr std::size_t sum_bytes = 4;

    std::string name() const { return lz4.name() + "+xxh3"; }
    compress_context make_compress_context() const { return lz4.make_compress_context(); }
    decompress_context make_decompress_context() const { return lz4.make_decompress_context(); }

    std::size_t compress(compress_context& ctx, std::span<const std::byte> in, std::span<std::byte> out) const noexcept {
        if (out.size() <= sum_bytes) return 0;
        const std::size_t n = lz4.compress(ctx, in, out.first(out.size() - sum_bytes));
        if (n == 0) return 0;
        const auto sum = static_cast<std::uint32_t>(XXH3_64bits(out.data(), n));
        std::memcpy(out.data() + n, &sum, sum_bytes);
        return n + sum_bytes;
    }

    zpage::Result<std::size_t> decompress(decompress_context& ctx, std::span<const std::byte> in,
                                          std::span<std::byte> out) const noexcept {
        if (in.size() <= sum_bytes) return zpage::errc::corrupt_data;
        const std::size_t n = in.size() - sum_bytes;
        std::uint32_t sum;
        std::memcpy(&sum, in.data() + n, sum_bytes);
        if (sum != static_cast<std::uint32_t>(XXH3_64bits(in.data(), n))) return zpage::errc::corrupt_data;
        return lz4.decompress(ctx, in.first(n), out);
    }
};
static_assert(zpage::Compressor<ChecksummedLz4>);  // says what is missing if a member is

int main() {
    zpage::CompressedPageStore<zpage::TraitsFor<ChecksummedLz4>> store(256);
    std::mt19937 rng(42);
    std::array<std::byte, 4096> page{}, back{};
    for (std::size_t i = 0; i < 256; ++i) {
        for (std::size_t b = 0; b < page.size(); ++b) page[b] = static_cast<std::byte>(b % (i + 2) == 0 ? rng() : 0);
        if (!store.store(i, page)) return 1;
        if (!store.load(i, back) || back != page) return 1;
    }
    const zpage::Stats st = store.stats();
    std::printf("%s: %llu pages, %llu B compressed (4 B of checksum each), %llu B in memory\n",
                store.compressor().name().c_str(), static_cast<unsigned long long>(st.orig_data_size / 4096),
                static_cast<unsigned long long>(st.compr_data_size), static_cast<unsigned long long>(st.mem_used_total));
    return 0;
}
