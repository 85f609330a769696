// zpage-bench's embedded default: two named sets of whole pages gathered on this machine (a
// child's heap and installed binaries), said on the log, about the same from run to run, and no
// child process or descriptor left behind.
#include "../benchmarks/zpage_bench/inputs.hpp"

#include <chrono>
#include <sstream>

#include "bench_fixtures.hpp"
#include "fixtures.hpp"

namespace {
using zpage_test::open_fds;

// True when this process has no child at all, running or zombie.
bool no_children() {
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST_CASE("the default input is a child's heap and installed binaries, in whole pages, said on the log") {
    REQUIRE(no_children());
    const std::size_t fds_before = open_fds();
    for (const std::size_t page_size : {std::size_t{4096}, std::size_t{16384}}) {
        CAPTURE(page_size);
        std::ostringstream log;
        const auto start = std::chrono::steady_clock::now();
        const std::vector<zpage_bench::PageSet> sets = zpage_bench::default_inputs(page_size, log);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        MESSAGE(log.str() << "in " << seconds << " s");
        CHECK(no_children());
        CHECK(open_fds() == fds_before);

        REQUIRE(sets.size() == 2);
        CHECK(sets[0].name == "default-heap");
        CHECK(sets[1].name == "default-files");
        for (const zpage_bench::PageSet& set : sets) {
            CHECK(set.page_size == page_size);
            CHECK(set.bytes.size() % page_size == 0);
            CHECK(set.pages() > 0);
        }
        // A heap of tens of MiB, and up to 64 MiB of binaries.
        CHECK(sets[0].bytes.size() >= (std::size_t{16} << 20));
        CHECK(sets[1].bytes.size() <= (std::size_t{64} << 20));

        const std::vector<std::string> lines = lines_of(log.str());
        REQUIRE(lines.size() == 2);
        CHECK(lines[0].find("default-heap: " + std::to_string(sets[0].pages()) +
                            " pages from a child process that indexed ") == 0);
        CHECK(lines[1].find("default-files: " + std::to_string(sets[1].pages()) + " pages of ") == 0);
    }
}

TEST_CASE("the default input is about the same from run to run") {
    std::ostringstream log;
    const std::vector<zpage_bench::PageSet> first = zpage_bench::default_inputs(4096, log);
    const std::vector<zpage_bench::PageSet> second = zpage_bench::default_inputs(4096, log);
    CHECK(no_children());
    REQUIRE(first.size() == 2);
    REQUIRE(second.size() == 2);
    // The binaries are read in sorted order: the same bytes. The heap is built from the same files
    // in the same order, but its addresses (ASLR) and the caller's own memory vary a little.
    CHECK(first[1].bytes == second[1].bytes);
    const auto heap_first = static_cast<double>(first[0].pages());
    const auto heap_second = static_cast<double>(second[0].pages());
    CHECK(heap_second == doctest::Approx(heap_first).epsilon(0.10));
}
