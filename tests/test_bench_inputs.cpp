// zpage-bench's page files: a corpus .zst reads as its raw decompression, however it was framed,
// at 4 and 16 KiB pages; every kind of bad file gets one clear BadInput line and leaks no fd.
#include "../benchmarks/zpage_bench/inputs.hpp"

#include <fstream>

#include "bench_fixtures.hpp"
#include "fixtures.hpp"

namespace {
using zpage_test::bad_input_message;
using zpage_test::open_fds;

using zpage_bench::BadInput;
using zpage_bench::read_page_file;

// A fresh temporary folder, removed with its files.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "zpage-inputs-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }

    std::string write(const std::string& name, std::span<const std::byte> bytes) const {
        std::string file = (path_ / name).string();
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(out.good());
        return file;
    }
    [[nodiscard]] std::string path(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

std::vector<std::byte> sample_bytes(std::size_t n, std::uint64_t seed) {
    std::vector<std::byte> bytes(n);
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>(i % 97 < 40 ? rng() % 4 : i % 13);
    return bytes;
}

// One frame that states its size, as the zstd tool writes a file.
std::vector<std::byte> zstd_one_shot(std::span<const std::byte> raw) {
    std::vector<std::byte> out(ZSTD_compressBound(raw.size()));
    const std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

// One frame of unknown size, as a compressor fed from a pipe writes it.
std::vector<std::byte> zstd_streamed(std::span<const std::byte> raw) {
    const std::unique_ptr<ZSTD_CCtx, std::size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
    std::vector<std::byte> out(ZSTD_compressBound(raw.size()) + 1024);
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    ZSTD_inBuffer input{raw.data(), raw.size() / 2, 0};
    REQUIRE_FALSE(ZSTD_isError(ZSTD_compressStream2(cctx.get(), &output, &input, ZSTD_e_continue)));
    input = {raw.data() + raw.size() / 2, raw.size() - raw.size() / 2, 0};
    REQUIRE(ZSTD_compressStream2(cctx.get(), &output, &input, ZSTD_e_end) == 0);
    out.resize(output.pos);
    REQUIRE(ZSTD_getFrameContentSize(out.data(), out.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
    return out;
}

}  // namespace

TEST_CASE("a corpus .zst reads as its raw decompression, named without its suffixes") {
    ZPAGE_REQUIRE_CORPORA();
    for (const zpage_test::Corpus& corpus : zpage_test::corpora()) {
        CAPTURE(corpus.name);
        const std::string path = (zpage_test::corpora_dir() / (corpus.name + ".pages.zst")).string();
        const zpage_bench::PageSet set = read_page_file(path, 4096, false);
        CHECK(set.name == corpus.name);
        CHECK(set.page_size == 4096);
        CHECK(set.pages() == corpus.pages());
        CHECK(set.bytes == corpus.bytes);
    }
    // 16 KiB pages: the same bytes, a quarter as many pages.
    const zpage_test::Corpus& corpus = zpage_test::corpora().front();
    const zpage_bench::PageSet big = read_page_file((zpage_test::corpora_dir() / (corpus.name + ".pages.zst")).string(),
                                                    16384, corpus.bytes.size() % 16384 != 0);
    CHECK(big.page_size == 16384);
    CHECK(big.pages() == corpus.bytes.size() / 16384);
    CHECK(std::equal(big.bytes.begin(), big.bytes.end(), corpus.bytes.begin()));
}

TEST_CASE("raw and .zst files of every framing read back exactly") {
    const TempDir dir;
    const std::vector<std::byte> raw = sample_bytes(std::size_t{37} * 4096, 1);
    const std::vector<std::byte> more = sample_bytes(std::size_t{5} * 4096, 2);
    std::vector<std::byte> both = raw;
    both.insert(both.end(), more.begin(), more.end());
    std::vector<std::byte> two_frames = zstd_one_shot(raw);
    for (const std::byte b : zstd_streamed(more)) two_frames.push_back(b);

    const zpage_bench::PageSet plain = read_page_file(dir.write("sample.pages", raw), 4096, false);
    CHECK(plain.name == "sample");
    CHECK(plain.bytes == raw);
    const zpage_bench::PageSet sized = read_page_file(dir.write("sized.pages.zst", zstd_one_shot(raw)), 4096, false);
    CHECK(sized.name == "sized");
    CHECK(sized.bytes == raw);
    CHECK(read_page_file(dir.write("streamed.bin.zst", zstd_streamed(raw)), 4096, false).bytes == raw);
    CHECK(read_page_file(dir.write("two-frames.zst", two_frames), 4096, false).bytes == both);
    CHECK(read_page_file(dir.write("streamed.bin.zst", zstd_streamed(raw)), 4096, false).name == "streamed.bin");
}

TEST_CASE("a file that is not a whole number of pages is refused, or its tail dropped on request") {
    const TempDir dir;
    const std::vector<std::byte> bytes = sample_bytes(100003, 3);
    const std::string path = dir.write("odd.bin", bytes);
    CHECK(bad_input_message([&] { read_page_file(path, 4096, false); }) ==
          path +
              ": 100003 bytes is not a whole number of 4096-byte pages (1699 bytes left over); pass --ignore-tail to "
              "drop them");
    const zpage_bench::PageSet set = read_page_file(path, 4096, true);
    CHECK(set.pages() == 24);
    CHECK(std::equal(set.bytes.begin(), set.bytes.end(), bytes.begin()));

    // 16 KiB pages: 5 pages of 4 KiB are one whole 16 KiB page and 4096 bytes over.
    const std::string five = dir.write("five.zst", zstd_one_shot(sample_bytes(std::size_t{5} * 4096, 4)));
    CHECK(bad_input_message([&] { read_page_file(five, 16384, false); }) ==
          five +
              ": 20480 bytes decompressed is not a whole number of 16384-byte pages (4096 bytes left over); pass "
              "--ignore-tail to drop them");
    CHECK(read_page_file(five, 16384, true).pages() == 1);
    CHECK(bad_input_message([&] { read_page_file(five, 32768, true); }) ==
          five + ": 20480 bytes decompressed is less than one 32768-byte page");
}

TEST_CASE("missing, directory, empty, corrupt and truncated files each give one clear line, and no fd leaks") {
    const TempDir dir;
    const std::size_t fds_before = open_fds();
    const std::vector<std::byte> compressed = zstd_one_shot(sample_bytes(std::size_t{64} * 4096, 5));
    std::vector<std::byte> garbage = sample_bytes(9999, 6);
    garbage[0] = std::byte{0x11};  // not a zstd magic number
    const std::string missing = dir.path("missing.pages");
    const std::string directory = dir.path("");
    const std::string empty = dir.write("empty.pages", {});
    const std::string empty_zst = dir.write("empty.zst", {});
    const std::string corrupt = dir.write("corrupt.pages.zst", garbage);
    const std::string truncated =
        dir.write("truncated.pages.zst", std::span(compressed).first(compressed.size() - 100));

    CHECK(bad_input_message([&] { read_page_file(missing, 4096, false); }) ==
          "cannot open " + missing + ": No such file or directory");
    CHECK(bad_input_message([&] { read_page_file(directory, 4096, false); }) ==
          directory + ": is a directory, not a file of pages");
    CHECK(bad_input_message([&] { read_page_file(empty, 4096, true); }) == empty + ": is empty");
    CHECK(bad_input_message([&] { read_page_file(empty_zst, 4096, true); }) == empty_zst + ": is empty");
    CHECK(bad_input_message([&] { read_page_file(corrupt, 4096, true); }) ==
          corrupt + ": not a valid zstd stream (Unknown frame descriptor)");
    CHECK(bad_input_message([&] { read_page_file(truncated, 4096, true); }) ==
          truncated + ": not a valid zstd stream (truncated: it ends inside a frame)");
    CHECK(bad_input_message([&] { read_page_file(empty, 1000, true); }) ==
          "page size 1000 is not a multiple of 4096 bytes");
    if (::geteuid() != 0) {  // root reads any file
        const std::string locked = dir.write("locked.pages", sample_bytes(4096, 7));
        std::filesystem::permissions(locked, std::filesystem::perms::none);
        CHECK(bad_input_message([&] { read_page_file(locked, 4096, false); }) ==
              "cannot open " + locked + ": Permission denied");
    }
    CHECK(open_fds() == fds_before);
}
