// Decoding corrupt input returns errc::corrupt_data (or a short count) and never reads or writes out
// of bounds: truncations at every length, bit flips and garbage, under ASan in CI. Each compressed
// page sits in a buffer of exactly its size, and the output has guard bytes after it.
#include <zpage/compressor/identity.hpp>
#include <zpage/compressor/lz4.hpp>
#include <zpage/compressor/zstd.hpp>

#include "fixtures.hpp"

namespace {

template <class Codec>
std::vector<zpage_test::Page> sample_pages() {
    std::vector<zpage_test::Page> pages;
    zpage_test::PageSource source(7);
    while (pages.size() < 24) pages.push_back(source.next());
    return pages;
}

// Decodes `in` (copied to a heap block of exactly its size) into a page with guard bytes; checks
// the guards. Returns whether the codec claimed a whole page.
template <class Codec>
bool decodes_to_page(const Codec& codec, typename Codec::decompress_context& dctx, std::span<const std::byte> in) {
    const auto exact = std::make_unique<std::byte[]>(std::max<std::size_t>(in.size(), 1));
    std::memcpy(exact.get(), in.data(), in.size());
    std::vector<std::byte> out(4096 + 64, std::byte{0x5A});
    const auto got = codec.decompress(dctx, std::span<const std::byte>(exact.get(), in.size()),
                                      std::span<std::byte>(out.data(), 4096));
    REQUIRE(std::all_of(out.begin() + 4096, out.end(), [](std::byte b) { return b == std::byte{0x5A}; }));
    return got && *got == 4096;
}

template <class Codec>
void survives_corruption(const Codec& codec) {
    auto cctx = codec.make_compress_context();
    auto dctx = codec.make_decompress_context();
    std::mt19937_64 rng(zpage_test::test_seed());
    std::size_t truncated_accepted = 0;
    for (const auto& page : sample_pages<Codec>()) {
        std::vector<std::byte> packed(8192);
        const std::size_t n = codec.compress(cctx, page, packed);
        REQUIRE(n > 0);
        packed.resize(n);
        REQUIRE(decodes_to_page(codec, dctx, packed));

        // Every truncation: at most a shorter page, never a crash.
        for (std::size_t len = 0; len < n; ++len)
            truncated_accepted += decodes_to_page(codec, dctx, std::span<const std::byte>(packed.data(), len));

        // Bit flips and overwritten bytes.
        for (int trial = 0; trial < 200; ++trial) {
            std::vector<std::byte> bad = packed;
            for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips)
                bad[rng() % bad.size()] ^= static_cast<std::byte>(1u << (rng() % 8));
            static_cast<void>(decodes_to_page(codec, dctx, bad));
        }
    }
    // Pure garbage of many lengths.
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<std::byte> garbage(1 + rng() % 5000);
        for (auto& b : garbage) b = static_cast<std::byte>(rng());
        static_cast<void>(decodes_to_page(codec, dctx, garbage));
    }
    // A truncated stream may not pass for a whole page (identity excepted: it has no framing).
    if constexpr (!std::is_same_v<Codec, zpage::Identity>) CHECK(truncated_accepted == 0);
}

}  // namespace

TEST_CASE("lz4 rejects corrupt input safely") { survives_corruption(zpage::Lz4{}); }
TEST_CASE("lz4hc rejects corrupt input safely") { survives_corruption(zpage::Lz4hc{}); }
TEST_CASE("zstd rejects corrupt input safely") { survives_corruption(zpage::Zstd{}); }
TEST_CASE("identity rejects input longer than a page") {
    zpage::Identity id;
    auto dctx = id.make_decompress_context();
    std::vector<std::byte> big(5000);
    CHECK_FALSE(decodes_to_page(id, dctx, big));
}
