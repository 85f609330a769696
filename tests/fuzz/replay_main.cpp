// A fuzz target without libFuzzer: runs its LLVMFuzzerTestOneInput once over each file named, or
// over every file in each directory named, as ctest does with its seeds and regression inputs
// (tests/fuzz/regressions/<target>/) in every leg; `--write-seeds DIR` writes its seeds into DIR
// (tests/fuzz/run_fuzzers.sh starts libFuzzer from them), and `--own-seeds` replays them too.
//
//   fuzz_store_ops_replay --own-seeds ../tests/fuzz/regressions/fuzz_store_ops crash-1234
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
int replay_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    return 0;
}
// A file, or every file of a directory (names starting with '.' aside) in name order.
int replay(const std::filesystem::path& arg, std::size_t& replayed) {
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec)) {
        ++replayed;
        return replay_file(arg);
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(arg, ec))
        if (entry.is_regular_file() && !entry.path().filename().string().starts_with(".")) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    int failures = 0;
    for (const auto& f : files) {
        failures += replay_file(f);
        ++replayed;
    }
    return failures;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
        std::error_code ec;
        std::filesystem::create_directories(argv[2], ec);
        zpage_fuzz_write_seeds(argv[2]);
        std::printf("seeds written to %s\n", argv[2]);
        return 0;
    }
    std::size_t replayed = 0;
    int failures = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) != "--own-seeds") {
            failures += replay(argv[i], replayed);
            continue;
        }
        char dir[] = "/tmp/zpage-fuzz-seeds-XXXXXX";
        if (::mkdtemp(dir) == nullptr) {
            std::perror("mkdtemp");
            return 1;
        }
        zpage_fuzz_write_seeds(dir);
        failures += replay(dir, replayed);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::printf("replayed %zu inputs\n", replayed);
    return failures == 0 ? 0 : 1;
}
