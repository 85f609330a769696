// Fuzz target: a store's load path fed arbitrary stored bytes, through every codec, both page
// sizes, pages held alone and units of grouped pages (corrupt compressed data, wrong sizes).
//
// A planting codec stands in for the real one on the way in: asked to compress, it writes the
// fuzzer's bytes instead, so the store holds exactly those bytes, at their length, as it would
// hold a compressed page; it decodes with the real codec. A load must then give either the page
// the real codec makes of those bytes (exactly a page, or a unit of them) or corrupt_data with
// the page zeroed, never anything else; the store's figures stay consistent and erasing leaves it
// holding nothing.
//
// Input: a choice byte (codec, page size, whether to group, group size), then the stored bytes.
#include <zpage/zpage.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "../corpora.hpp"
#include "fuzz_support.hpp"

namespace {

// What the planting codec writes in place of a compression; thread-local so that nothing else
// in the process plants.
thread_local std::span<const std::byte> planted;

template <zpage::Compressor Real>
struct PlantingCodec {
    Real real{};
    using compress_context = typename Real::compress_context;
    using decompress_context = typename Real::decompress_context;

    [[nodiscard]] std::string name() const { return real.name(); }
    [[nodiscard]] compress_context make_compress_context() const { return real.make_compress_context(); }
    [[nodiscard]] decompress_context make_decompress_context() const { return real.make_decompress_context(); }
    std::size_t compress(compress_context&, std::span<const std::byte>, std::span<std::byte> out) const noexcept {
        if (planted.empty() || planted.size() > out.size()) return 0;  // "did not fit": the page stays raw
        std::memcpy(out.data(), planted.data(), planted.size());
        return planted.size();
    }
    zpage::Result<std::size_t> decompress(decompress_context& ctx, std::span<const std::byte> in,
                                          std::span<std::byte> out) const noexcept {
        return real.decompress(ctx, in, out);
    }
};

// Pages to store: real ones where the corpora are, generated ones otherwise; none same-filled
// (those never reach a codec).
template <std::size_t PageSize>
const std::vector<std::array<std::byte, PageSize>>& sample_pages() {
    static const auto pages = [] {
        std::vector<std::array<std::byte, PageSize>> out;
        zpage_test::PageSource source(1);
        while (out.size() < 16) {
            std::array<std::byte, PageSize> p{};
            for (std::size_t off = 0; off < PageSize; off += 4096) {
                const zpage_test::Page part = source.next();
                std::memcpy(p.data() + off, part.data(), part.size());
            }
            if (!zpage::detail::same_fill_word<PageSize>(p)) out.push_back(p);
        }
        return out;
    }();
    return pages;
}

// What the real codec makes of `bytes` when asked for exactly `out.size()` bytes; false when
// that is not exactly what it gives.
template <class Real>
bool decodes_exactly(std::span<const std::byte> bytes, std::span<std::byte> out) {
    const Real real{};
    auto ctx = real.make_decompress_context();
    const std::unique_ptr<std::byte[]> exact(new std::byte[std::max<std::size_t>(bytes.size(), 1)]);
    std::memcpy(exact.get(), bytes.data(), bytes.size());
    const zpage::Result<std::size_t> got = real.decompress(ctx, std::span<const std::byte>(exact.get(), bytes.size()), out);
    return got && *got == out.size();
}

template <class Store>
void check_empty_after_erase(Store& store, std::size_t pages, const zpage::Stats& empty) {
    zpage_fuzz::check_books(store);
    for (std::size_t i = 0; i < pages; ++i) ZPAGE_FUZZ_CHECK(store.erase(i));
    static_cast<void>(store.compact());
    zpage_fuzz::check_books(store);
    const zpage::Stats s = store.stats();
    ZPAGE_FUZZ_CHECK(s.orig_data_size == 0 && s.compr_data_size == 0 && s.huge_pages == 0);
    ZPAGE_FUZZ_CHECK(s.mem_used_total >= empty.mem_used_total &&
                     s.mem_used_total <= empty.mem_used_total + zpage_fuzz::kept_descriptor_bytes);
}

// One page, stored as the planted bytes by the primary codec.
template <class Real, std::size_t PageSize>
void single_page(std::span<const std::byte> bytes) {
    using Store = zpage::CompressedPageStore<zpage::TraitsFor<PlantingCodec<Real>, PageSize>>;
    const auto& page = sample_pages<PageSize>()[0];
    Store store(2);
    const zpage::Stats empty = store.stats();
    planted = bytes;
    ZPAGE_FUZZ_CHECK(store.store(0, page));
    planted = {};
    const zpage::PageState state = store.state(0);

    std::array<std::byte, PageSize> back{};
    const zpage::Status loaded = store.load(0, back);
    if (state.has(zpage::PageFlag::huge)) {
        ZPAGE_FUZZ_CHECK(loaded && back == page);  // kept raw: the planted bytes never stored
    } else {
        ZPAGE_FUZZ_CHECK(state.size() == bytes.size());
        std::array<std::byte, PageSize> expected{};
        if (decodes_exactly<Real>(bytes, expected)) {
            ZPAGE_FUZZ_CHECK(loaded && back == expected);
        } else {
            ZPAGE_FUZZ_CHECK(loaded == zpage::errc::corrupt_data);
            ZPAGE_FUZZ_CHECK(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
        }
    }
    const zpage::Stats s = store.stats();
    ZPAGE_FUZZ_CHECK(s.orig_data_size == PageSize);
    ZPAGE_FUZZ_CHECK(s.failed_reads == (loaded ? 0U : 1U));
    check_empty_after_erase(store, 2, empty);
}

template <std::size_t PageSize, class Real>
struct GroupedTraits : zpage::TraitsFor<zpage::Lz4, PageSize> {
    using secondary_codecs = std::tuple<PlantingCodec<Real>>;
};

// `group` real pages stored with lz4, then recompressed by the planting secondary codec: as one
// unit (group > 1) or alone, when the planted bytes take less memory than the pages do.
template <class Real, std::size_t PageSize>
void grouped(std::span<const std::byte> bytes, std::size_t group) {
    using Store = zpage::CompressedPageStore<GroupedTraits<PageSize, Real>>;
    const auto& pages = sample_pages<PageSize>();
    Store store(zpage::StoreConfig{.capacity_pages = group});
    const zpage::Stats empty = store.stats();
    for (std::size_t i = 0; i < group; ++i) ZPAGE_FUZZ_CHECK(store.store(i, pages[i]));

    planted = bytes;
    const zpage::RecompressResult made =
        store.recompress({.select = zpage::RecompressSelect::any, .group_pages = group});
    planted = {};
    ZPAGE_FUZZ_CHECK(made.status);

    // What each member should read as: its own page when its recompression did not pay, else its
    // slice of the planted bytes decoded as a whole unit.
    std::vector<std::byte> unit(group * PageSize);
    const bool unit_decodes = made.pages > 0 && decodes_exactly<Real>(bytes, std::span<std::byte>(unit.data(), made.pages * PageSize));
    std::array<std::byte, PageSize> back{};
    std::size_t rank = 0;
    for (std::size_t i = 0; i < group; ++i) {
        const zpage::PageState state = store.state(i);
        const zpage::Status loaded = store.load(i, back);
        if (state.record.codec() == 0) {
            ZPAGE_FUZZ_CHECK(loaded && back == pages[i]);
            continue;
        }
        if (unit_decodes) {
            ZPAGE_FUZZ_CHECK(loaded);
            ZPAGE_FUZZ_CHECK(std::memcmp(back.data(), unit.data() + rank * PageSize, PageSize) == 0);
        } else {
            ZPAGE_FUZZ_CHECK(loaded == zpage::errc::corrupt_data);
        }
        ++rank;
    }
    ZPAGE_FUZZ_CHECK(rank == made.pages);
    ZPAGE_FUZZ_CHECK(store.stats().orig_data_size == group * PageSize);
    check_empty_after_erase(store, group, empty);
}

template <class Real, std::size_t PageSize>
void run(std::span<const std::byte> bytes, unsigned choice) {
    const std::size_t group = 1 + (choice >> 4);  // 1 .. 16
    if ((choice & 8) != 0) {
        grouped<Real, PageSize>(bytes, group);
    } else {
        single_page<Real, PageSize>(bytes);
    }
}

template <class Real>
void run_codec(std::span<const std::byte> bytes, unsigned choice) {
    if ((choice & 4) != 0) {
        run<Real, 16384>(bytes, choice);
    } else {
        run<Real, 4096>(bytes, choice);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    zpage_fuzz::ByteReader in(data, size);
    const unsigned choice = in.integral<std::uint8_t>();
    const std::span<const std::byte> bytes = in.all();
    switch (choice & 3) {
    case 0: run_codec<zpage::Lz4>(bytes, choice); break;
    case 1: run_codec<zpage::Zstd>(bytes, choice); break;
    case 2: run_codec<zpage::Lz4hc>(bytes, choice); break;
    default: run_codec<zpage::Identity>(bytes, choice); break;
    }
    return 0;
}

namespace {

// Seeds: real pages (and units of them) compressed by each codec, as the store would hold them.
template <class Real, std::size_t PageSize>
void write_codec_seeds(const std::string& dir, unsigned codec_bits, std::size_t& number) {
    const Real real{};
    auto ctx = real.make_compress_context();
    const auto& pages = sample_pages<PageSize>();
    const auto seed_of = [&](unsigned choice, std::span<const std::byte> input) {
        std::vector<std::byte> seed(1 + input.size() + input.size() / 2 + 1024);
        seed[0] = static_cast<std::byte>(choice);
        const std::size_t n = real.compress(ctx, input, std::span<std::byte>(seed).subspan(1));
        if (n == 0) return;
        seed.resize(1 + n);
        zpage_fuzz::write_seed(dir, number++, seed);
    };
    const unsigned size_bit = PageSize == 16384 ? 4 : 0;
    for (std::size_t p = 0; p < 4; ++p) seed_of(codec_bits | size_bit, pages[p]);
    for (const std::size_t group : {std::size_t{1}, std::size_t{4}, std::size_t{16}}) {
        std::vector<std::byte> unit(group * PageSize);
        for (std::size_t i = 0; i < group; ++i) std::memcpy(unit.data() + i * PageSize, pages[i].data(), PageSize);
        seed_of(codec_bits | size_bit | 8 | static_cast<unsigned>(group - 1) << 4, unit);
    }
}

template <class Real>
void write_seeds_for(const std::string& dir, unsigned codec_bits, std::size_t& number) {
    write_codec_seeds<Real, 4096>(dir, codec_bits, number);
    write_codec_seeds<Real, 16384>(dir, codec_bits, number);
}

}  // namespace

extern "C" void zpage_fuzz_write_seeds(const char* dir) {
    std::size_t number = 0;
    write_seeds_for<zpage::Lz4>(dir, 0, number);
    write_seeds_for<zpage::Zstd>(dir, 1, number);
    write_seeds_for<zpage::Lz4hc>(dir, 2, number);
    write_seeds_for<zpage::Identity>(dir, 3, number);
}
