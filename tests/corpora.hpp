// The real page corpora (../shared/corpora) and a page generator for when they are absent; no
// test framework, so that fuzz targets use them too.
#pragma once

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef ZPAGE_CORPORA_DIR
#define ZPAGE_CORPORA_DIR "../shared/corpora"
#endif

namespace zpage_test {

// One corpus: a flat file of 4 KiB pages dumped from real memory.
struct Corpus {
    std::string name;
    std::vector<std::byte> bytes;

    [[nodiscard]] std::size_t pages(std::size_t page_size = 4096) const { return bytes.size() / page_size; }
    template <std::size_t PageSize = 4096>
    [[nodiscard]] std::span<const std::byte, PageSize> page(std::size_t i) const {
        return std::span<const std::byte, PageSize>(bytes.data() + i * PageSize, PageSize);
    }
};

inline std::filesystem::path corpora_dir() {
    if (const char* env = std::getenv("ZPAGE_CORPORA_DIR"); env != nullptr && *env != '\0') return env;
    return ZPAGE_CORPORA_DIR;
}

inline std::vector<std::byte> read_zst(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> compressed((std::istreambuf_iterator<char>(in)), {});
    std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> stream(ZSTD_createDStream(), ZSTD_freeDStream);
    std::vector<std::byte> out;
    std::vector<std::byte> chunk(ZSTD_DStreamOutSize());
    ZSTD_inBuffer input{compressed.data(), compressed.size(), 0};
    while (input.pos < input.size) {
        ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
        const std::size_t rc = ZSTD_decompressStream(stream.get(), &output, &input);
        if (ZSTD_isError(rc))
            throw std::runtime_error("corrupt corpus " + path.string() + ": " + ZSTD_getErrorName(rc));
        out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(output.pos));
    }
    return out;
}

// Every *.pages.zst in the corpora folder, loaded once per process; empty when the folder is
// absent (a clone without ../shared), in which case tests that need them skip.
inline const std::vector<Corpus>& corpora() {
    static const std::vector<Corpus> all = [] {
        std::vector<Corpus> found;
        const std::filesystem::path dir = corpora_dir();
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) return found;
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
            const std::string file = entry.path().filename().string();
            const std::string suffix = ".pages.zst";
            if (file.size() <= suffix.size() || file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
                continue;
            found.push_back({file.substr(0, file.size() - suffix.size()), read_zst(entry.path())});
        }
        std::sort(found.begin(), found.end(), [](const Corpus& a, const Corpus& b) { return a.name < b.name; });
        return found;
    }();
    return all;
}

using Page = std::array<std::byte, 4096>;

// Pages for tests that must run without the corpora: a mix shaped like real memory (same-filled,
// text-like and sparse compressible pages, random incompressible ones).
class PageSource {
public:
    explicit PageSource(std::uint64_t seed) : rng_(seed) {}

    Page next() {
        Page p{};
        const auto& all = corpora();
        if (!all.empty() && rng_() % 8 != 0) {  // mostly real pages
            const Corpus& c = all[rng_() % all.size()];
            std::memcpy(p.data(), c.page(rng_() % c.pages()).data(), p.size());
            return p;
        }
        switch (rng_() % 4) {
        case 0: {  // same-filled
            const std::uint64_t word = rng_() % 3 == 0 ? 0 : rng_();
            for (std::size_t off = 0; off < p.size(); off += 8) std::memcpy(p.data() + off, &word, 8);
            break;
        }
        case 1:  // random: incompressible
            for (auto& b : p) b = static_cast<std::byte>(rng_());
            break;
        default: {  // words from a small vocabulary: compressible to varying degrees
            const std::size_t vocabulary = 2 + rng_() % 200;
            for (std::size_t off = 0; off < p.size(); off += 8) {
                const std::uint64_t word = (rng_() % vocabulary) * 0x9E3779B97F4A7C15ULL;
                std::memcpy(p.data() + off, &word, 8);
            }
        }
        }
        return p;
    }

private:
    std::mt19937_64 rng_;
};

// `count` pages of a PageSource seeded with `seed`, same-filled ones left out when `same_filled`
// is false (they never reach a codec, an allocator or a backing store).
inline std::vector<Page> sample_pages(std::uint64_t seed, std::size_t count, bool same_filled = true) {
    std::vector<Page> pages;
    PageSource source(seed);
    while (pages.size() < count) {
        const Page p = source.next();
        bool same = true;  // one 8-byte word repeated
        for (std::size_t off = 8; same && off < p.size(); off += 8) same = std::memcmp(p.data(), p.data() + off, 8) == 0;
        if (same_filled || !same) pages.push_back(p);
    }
    return pages;
}

}  // namespace zpage_test
