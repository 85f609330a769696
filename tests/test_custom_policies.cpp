// Custom policies plug in through the concepts: a codec written in a few lines, a traits bundle
// with its own page size and threshold.
#include <zpage/zpage.hpp>

#include "fixtures.hpp"

namespace {
// A codec that wraps another and stores every page with a one-byte tag in front.
struct TaggedLz4 {
    zpage::Lz4 inner;
    using compress_context = zpage::Lz4::compress_context;
    using decompress_context = zpage::Lz4::decompress_context;
    std::string name() const { return "tagged-" + inner.name(); }
    compress_context make_compress_context() const { return inner.make_compress_context(); }
    decompress_context make_decompress_context() const { return inner.make_decompress_context(); }
    std::size_t compress(compress_context& ctx, std::span<const std::byte> in, std::span<std::byte> out) const noexcept {
        if (out.size() < 2) return 0;
        const std::size_t n = inner.compress(ctx, in, out.subspan(1));
        if (n == 0) return 0;
        out[0] = std::byte{0x7A};
        return n + 1;
    }
    zpage::Result<std::size_t> decompress(decompress_context& ctx, std::span<const std::byte> in,
                                          std::span<std::byte> out) const noexcept {
        if (in.empty() || in[0] != std::byte{0x7A}) return zpage::errc::corrupt_data;
        return inner.decompress(ctx, in.subspan(1), out);
    }
};
static_assert(zpage::Compressor<TaggedLz4>);

struct BigPageTraits : zpage::DefaultTraits {
    static constexpr std::size_t page_size = 16384;
    using compressor = zpage::Zstd;
    using allocator = zpage::SizeClassAllocator<page_size>;
};
}  // namespace

TEST_CASE("a custom codec works in a store") {
    zpage::CompressedPageStore<zpage::TraitsFor<TaggedLz4>> store(100);
    zpage_test::PageSource source(11);
    std::vector<zpage_test::Page> pages;
    for (std::size_t i = 0; i < 100; ++i) {
        pages.push_back(source.next());
        REQUIRE(store.store(i, pages.back()));
    }
    zpage_test::Page back{};
    for (std::size_t i = 0; i < 100; ++i) {
        REQUIRE(store.load(i, back));
        CHECK(back == pages[i]);
    }
    CHECK(store.compressor().name() == "tagged-lz4");
}

TEST_CASE("a custom traits bundle with 16 KiB pages works") {
    zpage::CompressedPageStore<BigPageTraits> store(8);
    std::array<std::byte, 16384> page{}, back{};
    for (std::size_t i = 0; i < page.size(); i += 5) page[i] = static_cast<std::byte>(i / 5);
    REQUIRE(store.store(7, page));
    REQUIRE(store.load(7, back));
    CHECK(back == page);
    CHECK(store.stats().orig_data_size == 16384);
}
