// The Google Benchmark suite's input: the real page corpora from ../shared/corpora (as the tests
// use them), or where they are absent the pages zpage-bench gathers itself from this machine's
// installed files. Loaded once per process, outside any timed region.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "zpage_bench/inputs.hpp"
#include "zpage_bench/types.hpp"

#ifndef ZPAGE_CORPORA_DIR
#define ZPAGE_CORPORA_DIR "../shared/corpora"
#endif

namespace zpage_bench {

inline std::vector<PageSet> load_page_sets() {
    std::filesystem::path dir = ZPAGE_CORPORA_DIR;
    if (const char* env = std::getenv("ZPAGE_CORPORA_DIR")) dir = env;
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().filename().string().ends_with(".pages.zst")) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<PageSet> sets;
    for (const auto& file : files) sets.push_back(read_page_file(file.string(), 4096, false));
    if (sets.empty()) {
        std::cerr << "zpage benchmarks: no corpora in " << dir << "; using pages gathered from this machine\n";
        sets = default_inputs(4096, std::cerr);
    }
    return sets;
}

inline const std::vector<PageSet>& page_sets() {
    static const std::vector<PageSet> sets = load_page_sets();
    return sets;
}

}  // namespace zpage_bench
