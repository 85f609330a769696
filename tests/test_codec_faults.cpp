// A codec that fails: decoding reports an error for bytes it made itself, compressing gives up
// (the page does not fit), making a context throws (no memory for a new stream). Each reaches the
// caller as a clear status (corrupt_data, a raw page, out_of_memory); the page stays stored and
// reads back once the fault is gone; the books balance (validate()).
#include <zpage/zpage.hpp>

#include <atomic>
#include <new>
#include <thread>
#include <type_traits>

#include "fixtures.hpp"

namespace {

// Faults shared by every copy of the codec (a store keeps its own copy).
struct CodecFaults {
    std::atomic<int> decode_errors{0};   // the next n decompress() calls report corrupt_data
    std::atomic<int> compress_refusals{0};  // the next n compress() calls say "does not fit"
    std::atomic<bool> contexts_refused{false};  // make_*_context() throws std::bad_alloc
};

template <class Real>
struct Failing {
    Real real{};
    CodecFaults* faults = nullptr;
    using compress_context = typename Real::compress_context;
    using decompress_context = typename Real::decompress_context;

    [[nodiscard]] std::string name() const { return "failing-" + real.name(); }
    [[nodiscard]] compress_context make_compress_context() const {
        if (faults->contexts_refused.load()) throw std::bad_alloc();
        return real.make_compress_context();
    }
    [[nodiscard]] decompress_context make_decompress_context() const {
        if (faults->contexts_refused.load()) throw std::bad_alloc();
        return real.make_decompress_context();
    }
    std::size_t compress(compress_context& ctx, std::span<const std::byte> in, std::span<std::byte> out) const noexcept {
        if (take(faults->compress_refusals)) return 0;
        return real.compress(ctx, in, out);
    }
    zpage::Result<std::size_t> decompress(decompress_context& ctx, std::span<const std::byte> in,
                                          std::span<std::byte> out) const noexcept {
        if (take(faults->decode_errors)) return zpage::errc::corrupt_data;
        return real.decompress(ctx, in, out);
    }

private:
    static bool take(std::atomic<int>& n) noexcept {
        int left = n.load();
        while (left > 0 && !n.compare_exchange_weak(left, left - 1)) {
        }
        return left > 0;
    }
};

using FailingLz4 = Failing<zpage::Lz4>;
using Store = zpage::CompressedPageStore<zpage::TraitsFor<FailingLz4>>;

// Pages that reach the codec: not same-filled.
std::vector<zpage_test::Page> compressible_pages(std::size_t n) { return zpage_test::sample_pages(11, n, false); }

}  // namespace

TEST_CASE("a codec that reports an error decoding: corrupt_data, zeros, and the page is still there") {
    CodecFaults faults;
    Store store(8, FailingLz4{.faults = &faults});
    const auto pages = compressible_pages(8);
    for (std::size_t i = 0; i < pages.size(); ++i) REQUIRE(store.store(i, pages[i]));
    std::size_t compressed_index = 0;
    while (store.state(compressed_index).has(zpage::PageFlag::huge)) ++compressed_index;  // raw pages need no codec
    REQUIRE(compressed_index < pages.size());

    faults.decode_errors = 1;
    zpage_test::Page back;
    back.fill(std::byte{0x5A});
    CHECK(store.load(compressed_index, back) == zpage::errc::corrupt_data);
    CHECK(zpage_test::is_zero(back));
    CHECK(store.stats().failed_reads == 1);
    CHECK(store.validate() == "");
    REQUIRE(store.load(compressed_index, back));  // the fault is gone: the stored bytes were never touched
    CHECK(back == pages[compressed_index]);
}

TEST_CASE("a codec that gives up compressing: the page is stored raw and reads back") {
    CodecFaults faults;
    Store store(4, FailingLz4{.faults = &faults});
    const auto pages = compressible_pages(2);
    REQUIRE(store.store(0, pages[0]));
    const bool compressed_before = !store.state(0).has(zpage::PageFlag::huge);
    faults.compress_refusals = 1;
    REQUIRE(store.store(1, pages[1]));
    CHECK(store.state(1).has(zpage::PageFlag::huge));
    CHECK(store.stats().huge_pages == (compressed_before ? 1U : 2U));
    zpage_test::Page back{};
    REQUIRE(store.load(1, back));
    CHECK(back == pages[1]);
    CHECK(store.validate() == "");
}

TEST_CASE_TEMPLATE("no memory for a new thread's codec streams: out_of_memory, the old page kept, and it passes",
                   Real, zpage::Lz4, zpage::Zstd) {
    using Codec = Failing<Real>;
    // lz4 decodes with no context at all, so its loads need no stream and cannot be refused one.
    constexpr bool loads_need_a_stream = !std::is_same_v<typename Real::decompress_context, zpage::NoContext>;
    CodecFaults faults;
    zpage::CompressedPageStore<zpage::TraitsFor<Codec>> store(64, Codec{.faults = &faults});  // the first stream is made here
    const auto pages = compressible_pages(3);
    REQUIRE(store.store(0, pages[0]));
    faults.contexts_refused = true;

    // Each new thread starts at a stream slot of its own, never used yet: it must make contexts.
    std::size_t refused_stores = 0, refused_loads = 0;
    for (int t = 0; t < 3; ++t) {
        zpage::Status stored, loaded;
        zpage_test::Page back;
        back.fill(std::byte{0x5A});
        std::thread([&] {
            stored = store.store(0, pages[1]);
            loaded = store.load(0, back);
        }).join();
        if (!stored) {
            CHECK(stored == zpage::errc::out_of_memory);
            ++refused_stores;
        }
        if (!loaded) {
            CHECK(loaded == zpage::errc::out_of_memory);
            CHECK(zpage_test::is_zero(back));
            ++refused_loads;
        }
    }
    CHECK(refused_stores > 0);
    CHECK((refused_loads > 0) == loads_need_a_stream);
    CHECK(store.stats().failed_writes == refused_stores);
    CHECK(store.validate() == "");

    faults.contexts_refused = false;
    zpage_test::Page back{};
    REQUIRE(store.load(0, back));
    // Every refused store left the old page; one that found a made stream replaced it.
    CHECK(back == (refused_stores == 3 ? pages[0] : pages[1]));
    std::thread([&] { CHECK(store.store(1, pages[2])); }).join();  // new streams can be made again
    REQUIRE(store.load(1, back));
    CHECK(back == pages[2]);
}
