// Benchmark input: the real page corpora from ../shared/corpora (as the tests use them), or, where
// they are absent, this machine's own shared libraries. Loaded once per process, outside any timed
// region.
#pragma once

#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#ifndef ZPAGE_CORPORA_DIR
#define ZPAGE_CORPORA_DIR "../shared/corpora"
#endif

namespace zpage_bench {

struct PageSet {
    std::string name;
    std::vector<std::byte> bytes;  // whole 4 KiB pages

    [[nodiscard]] std::size_t pages() const { return bytes.size() / 4096; }
    [[nodiscard]] std::span<const std::byte, 4096> page(std::size_t i) const {
        return std::span<const std::byte, 4096>(bytes.data() + i * 4096, 4096);
    }
};

inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::byte> out;
    if (path.extension() == ".zst") {
        std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> stream(ZSTD_createDStream(), ZSTD_freeDStream);
        std::vector<std::byte> chunk(ZSTD_DStreamOutSize());
        ZSTD_inBuffer input{raw.data(), raw.size(), 0};
        while (input.pos < input.size) {
            ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
            if (ZSTD_isError(ZSTD_decompressStream(stream.get(), &output, &input))) return {};
            out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(output.pos));
        }
    } else {
        const auto* first = reinterpret_cast<const std::byte*>(raw.data());
        out.assign(first, first + raw.size());
    }
    out.resize(out.size() / 4096 * 4096);
    return out;
}

inline std::vector<PageSet> load_page_sets() {
    std::vector<PageSet> sets;
    std::filesystem::path dir = ZPAGE_CORPORA_DIR;
    if (const char* env = std::getenv("ZPAGE_CORPORA_DIR")) dir = env;
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) {
        for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
            const std::string file = e.path().filename().string();
            if (file.size() > 10 && file.ends_with(".pages.zst"))
                sets.push_back({file.substr(0, file.size() - 10), read_file(e.path())});
        }
        std::sort(sets.begin(), sets.end(), [](const PageSet& a, const PageSet& b) { return a.name < b.name; });
    }
    if (sets.empty()) {
        std::fprintf(stderr, "zpage benchmarks: no corpora in %s; using this machine's shared libraries\n",
                     dir.c_str());
        std::ifstream maps("/proc/self/maps");
        std::set<std::string> libs;
        for (std::string line; std::getline(maps, line);)
            if (auto slash = line.find('/'); slash != std::string::npos && line.find(".so") != std::string::npos)
                libs.insert(line.substr(slash));
        PageSet local{"local-libraries", {}};
        for (const auto& lib : libs) {
            auto bytes = read_file(lib);
            local.bytes.insert(local.bytes.end(), bytes.begin(), bytes.end());
        }
        sets.push_back(std::move(local));
    }
    return sets;
}

inline const std::vector<PageSet>& page_sets() {
    static const std::vector<PageSet> sets = load_page_sets();
    return sets;
}

}  // namespace zpage_bench
