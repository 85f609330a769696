// zpage-bench as its users run it: the JSON lines' exact shape, one clear line and exit status 2
// for each kind of bad input, a --pid snapshot of a live child process round-tripped, and (as root,
// /dev/zram0 unused) the kernel's rows.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fixtures.hpp"

#ifndef ZPAGE_BENCH_PATH
#error "ZPAGE_BENCH_PATH must name the zpage-bench binary"
#endif

namespace {

struct Outcome {
    int status = -1;
    std::string out;
    std::string err;
};

// Runs zpage-bench with `args` (shell-quoted by the caller), capturing stdout and stderr.
Outcome run_bench(const std::string& args) {
    char err_path[] = "/tmp/zpage-bench-err-XXXXXX";
    const int err_fd = ::mkstemp(err_path);
    REQUIRE(err_fd >= 0);
    ::close(err_fd);
    const std::string command = std::string(ZPAGE_BENCH_PATH) + " " + args + " 2>" + err_path;
    Outcome o;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) o.out.append(buf, n);
    const int raw = ::pclose(pipe);
    o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    std::ifstream err(err_path);
    o.err.assign(std::istreambuf_iterator<char>(err), {});
    ::unlink(err_path);
    return o;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
        out.push_back(text.substr(start, nl - start));
    if (start < text.size()) out.push_back(text.substr(start));
    return out;
}

// The keys of a flat JSON object, in order, with each value's kind: 's' string, 'n' number,
// 'b' boolean. Empty when the line is not such an object.
std::vector<std::pair<std::string, char>> json_fields(const std::string& line) {
    std::vector<std::pair<std::string, char>> fields;
    if (line.size() < 2 || line.front() != '{' || line.back() != '}') return {};
    std::size_t i = 1;
    while (i < line.size() - 1) {
        if (line[i] != '"') return {};
        const std::size_t key_end = line.find('"', i + 1);
        if (key_end == std::string::npos || line[key_end + 1] != ':') return {};
        std::string key = line.substr(i + 1, key_end - i - 1);
        i = key_end + 2;
        char kind;
        if (line[i] == '"') {
            std::size_t j = i + 1;
            while (j < line.size() && line[j] != '"') j += line[j] == '\\' ? 2 : 1;
            kind = 's';
            i = j + 1;
        } else if (line.compare(i, 4, "true") == 0 || line.compare(i, 5, "false") == 0) {
            kind = 'b';
            i += line[i] == 't' ? 4 : 5;
        } else {
            const std::size_t j = line.find_first_not_of("-0123456789.eE+", i);
            if (j == i) return {};
            kind = 'n';
            i = j;
        }
        fields.emplace_back(std::move(key), kind);
        if (line[i] == ',') ++i;
    }
    return fields;
}

std::string json_value(const std::string& line, const std::string& key) {
    const std::string tag = "\"" + key + "\":";
    const std::size_t at = line.find(tag);
    if (at == std::string::npos) return {};
    const std::size_t start = at + tag.size();
    const std::size_t end = line.find_first_of(",}", line[start] == '"' ? line.find('"', start + 1) : start);
    std::string v = line.substr(start, end - start);
    if (!v.empty() && v.front() == '"') v = v.substr(1, v.size() - 2);
    return v;
}

// A temporary file of `pages` real (or realistic) pages, plus `extra` stray bytes.
struct TempPages {
    std::string path;
    TempPages(std::size_t pages, std::size_t extra, const char* suffix = ".pages") {
        char name[] = "/tmp/zpage-bench-input-XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        ::unlink(name);
        path = std::string(name) + suffix;
        std::ofstream f(path, std::ios::binary);
        zpage_test::PageSource source(99);
        for (std::size_t i = 0; i < pages; ++i) {
            const auto page = source.next();
            f.write(reinterpret_cast<const char*>(page.data()), static_cast<std::streamsize>(page.size()));
        }
        for (std::size_t i = 0; i < extra; ++i) f.put('x');
    }
    ~TempPages() { ::unlink(path.c_str()); }
};

void expect_bad_input(const std::string& args, const std::string& says) {
    const Outcome o = run_bench(args);
    INFO("zpage-bench " << args << "\nstderr: " << o.err);
    CHECK(o.status == 2);
    const auto err_lines = lines(o.err);
    REQUIRE(err_lines.size() == 1);
    CHECK(err_lines[0].rfind("zpage-bench: ", 0) == 0);
    CHECK(err_lines[0].find(says) != std::string::npos);
}

std::string zram0_disksize() {
    std::ifstream size_file("/sys/block/zram0/disksize");
    std::string size;
    size_file >> size;
    return size;
}

// Why a test that sets up /dev/zram0 cannot run here, or empty: it needs root and an unused device.
std::string zram0_unusable() {
    if (::geteuid() != 0 || ::access("/sys/block/zram0/disksize", W_OK) != 0) return "needs root and /sys/block/zram0";
    if (zram0_disksize() != "0") return "zram0 is in use by this machine; leaving it alone";
    return {};
}

const std::vector<std::string> documented_fields = {
    "input",        "engine",         "algo",        "threads",     "pages",       "orig_bytes",
    "compr_bytes",  "mem_used_bytes", "same_pages",  "huge_pages",  "store_mib_s", "load_mib_s",
    "store_p50_us", "store_p99_us",   "load_p50_us", "load_p99_us", "mem_used_max_bytes",
    "bd_writes",    "bd_reads",       "writeback_mib_s", "written_back_pages", "recompress_mib_s", "recompressed_pages",
    "codec_unit_mib_s", "verified"};

// A JSON line has exactly the documented fields, in order: three strings, numbers, a boolean.
void check_documented_fields(const std::string& line) {
    INFO(line);
    const auto fields = json_fields(line);
    REQUIRE(fields.size() == documented_fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i) {
        CHECK(fields[i].first == documented_fields[i]);
        const char want = i < 3 ? 's' : (i == fields.size() - 1 ? 'b' : 'n');
        CHECK(fields[i].second == want);
    }
}

// Runs zpage-bench with `args` (which must include --json), requires exit status 0 and `results`
// lines on stdout, and returns them.
std::vector<std::string> run_json(const std::string& args, std::size_t results) {
    const Outcome o = run_bench(args);
    INFO("zpage-bench " << args << "\nstderr: " << o.err);
    REQUIRE(o.status == 0);
    std::vector<std::string> out = lines(o.out);
    REQUIRE(out.size() == results);
    return out;
}

}  // namespace

TEST_CASE("--json prints one object per result with exactly the documented fields") {
    TempPages input(300, 0);
    const auto out = run_json("--json --algo lz4,zstd-1,identity --threads 2 " + input.path, 3);
    for (const std::string& line : out) {
        check_documented_fields(line);
        CHECK(json_value(line, "engine") == "zpage");
        CHECK(json_value(line, "threads") == "2");
        CHECK(json_value(line, "pages") == "300");
        CHECK(json_value(line, "orig_bytes") == std::to_string(300 * 4096));
        CHECK(json_value(line, "verified") == "true");
    }
    CHECK(json_value(out[0], "algo") == "lz4");
    CHECK(json_value(out[1], "algo") == "zstd-1");
    CHECK(json_value(out[2], "algo") == "identity");
}

TEST_CASE("--algo A+B:N stores with A, recompresses every page with B in units of N, and verifies") {
    TempPages input(512, 0);
    const auto out = run_json("--json --algo lz4,lz4+zstd-3:16 " + input.path, 2);
    for (const std::string& line : out) {
        check_documented_fields(line);
        CHECK(json_value(line, "verified") == "true");
    }
    CHECK(json_value(out[0], "recompressed_pages") == "0");
    CHECK(json_value(out[1], "algo") == "lz4+zstd-3:16");
    for (const std::string& line : out) CHECK(std::stod(json_value(line, "codec_unit_mib_s")) == 0);  // no --baseline
    CHECK(std::stoull(json_value(out[1], "recompressed_pages")) > 0);
    CHECK(std::stod(json_value(out[1], "recompress_mib_s")) > 0);
    const auto ratio = [](const std::string& line) {
        return std::stod(json_value(line, "orig_bytes")) / std::stod(json_value(line, "mem_used_bytes"));
    };
    CHECK(ratio(out[1]) > ratio(out[0]));

    // tiered names the recommended pair, and the table adds the recompression's line.
    const Outcome table = run_bench("--algo tiered " + input.path);
    INFO("stderr: " << table.err);
    REQUIRE(table.status == 0);
    CHECK(table.out.find("lz4+zstd-3:16") != std::string::npos);
    CHECK(table.out.find("zpage lz4+zstd-3:16 recompression: ") != std::string::npos);
}

TEST_CASE("--algo A+B refuses groups beyond 16 pages and codecs it does not pair") {
    TempPages input(4, 0);
    expect_bad_input("--algo lz4+zstd-3:17 " + input.path, "'lz4+zstd-3:17'");
    expect_bad_input("--algo lz4+bogus " + input.path, "'lz4+bogus'");
}

TEST_CASE("tiered under --mem-limit recompresses before it writes back, and sends fewer pages away than lz4") {
    // 16 MiB of a real heap, neighbours as they were: lz4 holds it in 9 MiB, zstd-3 in units of
    // 16 pages in 5, under a limit of 6.
    const zpage_test::Corpus* heap = nullptr;
    for (const auto& c : zpage_test::corpora())
        if (c.name.find("python-heap") != std::string::npos) heap = &c;
    if (heap == nullptr) {
        MESSAGE("skipped: no python-heap corpus in " << zpage_test::corpora_dir());
        return;
    }
    TempPages input(0, 0);
    {
        std::ofstream f(input.path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(heap->bytes.data()),
                static_cast<std::streamsize>(std::min<std::size_t>(heap->bytes.size(), std::size_t{16} << 20)));
    }
    const std::string backing = input.path + ".backing";
    const auto out = run_json("--json --algo lz4,tiered --backing " + backing + " --mem-limit 6 " + input.path, 2);
    for (const std::string& line : out) {
        INFO(line);
        CHECK(json_value(line, "verified") == "true");
        CHECK(std::stoull(json_value(line, "mem_used_max_bytes")) <= std::size_t{6} << 20);
    }
    CHECK(std::stoull(json_value(out[0], "written_back_pages")) > 0);
    REQUIRE(json_value(out[1], "algo") == "lz4+zstd-3:16");
    CHECK(std::stoull(json_value(out[1], "recompressed_pages")) > 0);
    const auto written_back = [](const std::string& line) { return std::stoull(json_value(line, "written_back_pages")); };
    CHECK(written_back(out[1]) < written_back(out[0]));
    CHECK(::access(backing.c_str(), F_OK) != 0);
}

TEST_CASE("--backing and --mem-limit hold the limit, write pages back to the file, verify, and remove it") {
    TempPages input(2048, 0);  // 8 MiB of pages, about 4 MiB stored with lz4: a 2 MiB limit sends half away
    const std::string backing = input.path + ".backing";
    const auto out = run_json("--json --algo lz4 --backing " + backing + " --mem-limit 2 " + input.path, 1);
    check_documented_fields(out[0]);
    CHECK(json_value(out[0], "verified") == "true");
    CHECK(std::stoull(json_value(out[0], "mem_used_max_bytes")) <= std::size_t{2} << 20);
    CHECK(std::stoull(json_value(out[0], "bd_writes")) > 0);
    CHECK(std::stoull(json_value(out[0], "bd_reads")) > 0);  // the load pass reads pages back
    CHECK(std::stod(json_value(out[0], "writeback_mib_s")) > 0);
    CHECK(::access(backing.c_str(), F_OK) != 0);  // removed after the run
    CHECK(::access((backing + ".dd").c_str(), F_OK) != 0);

    const Outcome table = run_bench("--algo lz4 --backing " + backing + " --mem-limit 2 " + input.path);
    INFO("stderr: " << table.err);
    REQUIRE(table.status == 0);
    CHECK(table.out.find("wb/s") != std::string::npos);
    CHECK(table.out.find("dd bs=1M oflag=direct") != std::string::npos);
}

TEST_CASE("--backing and --mem-limit refuse each other's absence and a file they would write over") {
    TempPages input(16, 0);
    expect_bad_input("--backing /tmp/zpage-bench-x " + input.path, "go together");
    expect_bad_input("--mem-limit 4 " + input.path, "go together");
    expect_bad_input("--backing " + input.path + " --mem-limit 4 " + input.path, "not empty");
    expect_bad_input("--backing /tmp --mem-limit 4 " + input.path, "not a regular file");
    expect_bad_input("--backing /nonexistent-folder/x --mem-limit 4 " + input.path, "does not exist");
    expect_bad_input("--backing /tmp/zpage-bench-x --mem-limit 0 " + input.path, "--mem-limit takes a number");
}

TEST_CASE("--steady times stores over pages already stored, and still verifies") {
    TempPages input(200, 0);
    const Outcome o = run_bench("--steady --json --algo lz4 " + input.path);
    REQUIRE(o.status == 0);
    REQUIRE(lines(o.out).size() == 1);
    CHECK(json_value(o.out, "verified") == "true");
    CHECK(json_value(o.out, "orig_bytes") == std::to_string(200 * 4096));
}

TEST_CASE("--baseline adds each codec alone on the same pages, verified, beside zpage") {
    TempPages input(300, 0);
    const auto out = run_json("--baseline --json --algo lz4,zstd-3 " + input.path, 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
        check_documented_fields(out[i]);
        CHECK(json_value(out[i], "engine") == (i % 2 == 0 ? "codec-alone" : "zpage"));
        CHECK(json_value(out[i], "verified") == "true");
        // Same codec, same pages, same huge threshold: the same pages kept raw, and no more
        // compressed bytes in the store (which keeps same-filled pages in no bytes at all).
        if (i % 2 == 1) {
            CHECK(json_value(out[i], "huge_pages") == json_value(out[i - 1], "huge_pages"));
            CHECK(std::stoull(json_value(out[i], "compr_bytes")) <= std::stoull(json_value(out[i - 1], "compr_bytes")));
        }
    }
    const Outcome table = run_bench("--baseline --algo lz4 " + input.path);
    REQUIRE(table.status == 0);
    CHECK(table.out.find("zpage lz4 against the codec alone") != std::string::npos);
}

TEST_CASE("--baseline with A+B:N times B alone on the same units of N pages, beside the recompression") {
    TempPages input(302, 0);  // not a multiple of 4: the last unit is shorter
    const auto out = run_json("--baseline --json --algo lz4+zstd-3:4 " + input.path, 1);  // no codec-alone row
    check_documented_fields(out[0]);
    CHECK(json_value(out[0], "engine") == "zpage");
    CHECK(json_value(out[0], "verified") == "true");
    CHECK(std::stod(json_value(out[0], "recompress_mib_s")) > 0);
    CHECK(std::stod(json_value(out[0], "codec_unit_mib_s")) > 0);

    const Outcome table = run_bench("--baseline --algo lz4+zstd-3:4 " + input.path);
    INFO("stderr: " << table.err);
    REQUIRE(table.status == 0);
    CHECK(table.out.find("zstd-3 alone on the same 16 KiB units ") != std::string::npos);
}

TEST_CASE("the table names every codec and the verification") {
    TempPages input(64, 0);
    const Outcome o = run_bench("--algo lz4hc-4,zstd--3 " + input.path);
    REQUIRE(o.status == 0);
    CHECK(o.out.find("lz4hc-4") != std::string::npos);
    CHECK(o.out.find("zstd--3") != std::string::npos);
    CHECK(o.out.find("yes") != std::string::npos);
    CHECK(o.err.empty());  // no progress bar when stderr is not a terminal
}

TEST_CASE("a file that is not a whole number of pages is refused, or its tail dropped on request") {
    TempPages input(10, 1234);
    expect_bad_input("--algo lz4 " + input.path, "1234 bytes left over");
    expect_bad_input("--algo lz4 " + input.path, "--ignore-tail");
    const Outcome o = run_bench("--json --algo lz4 --ignore-tail " + input.path);
    CHECK(o.status == 0);
    CHECK(json_value(o.out, "pages") == "10");
}

TEST_CASE("missing and unreadable inputs are refused with one line") {
    expect_bad_input("--algo lz4 /nonexistent/zpage-bench-input.pages", "/nonexistent/zpage-bench-input.pages");
    expect_bad_input("--algo lz4 /tmp", "/tmp: is a directory");
    TempPages corrupt(4, 0, ".pages.zst");  // not zstd data
    expect_bad_input("--algo lz4 " + corrupt.path, corrupt.path);
}

TEST_CASE("a PID that does not exist or has no memory of its own is refused") {
    pid_t unused = 4'000'000;
    while (::kill(unused, 0) == 0 || errno != ESRCH) ++unused;
    expect_bad_input("--pid " + std::to_string(unused), "no process with PID " + std::to_string(unused));
    expect_bad_input("--pid 2", "kernel thread");  // kthreadd: no user memory to read
    expect_bad_input("--pid nope", "--pid");
}

TEST_CASE("unknown codecs and bad options are refused with one line") {
    TempPages input(4, 0);
    expect_bad_input("--algo lz5 " + input.path, "unknown codec 'lz5'");
    expect_bad_input("--algo zstd-99 " + input.path, "zstd-99");
    expect_bad_input("--threads 0 " + input.path, "--threads");
    expect_bad_input("--page-size 8192 " + input.path, "--page-size");
    expect_bad_input("--frobnicate " + input.path, "--frobnicate");
}

TEST_CASE("a --pid snapshot of a live child process round-trips") {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // A few MiB of heap with a recognisable pattern, then wait to be read.
        std::vector<std::uint64_t> heap(1 << 19);
        for (std::size_t i = 0; i < heap.size(); ++i) heap[i] = i * 0x9E3779B97F4A7C15ULL >> (i % 17);
        const char go = 1;
        static_cast<void>(::write(ready[1], &go, 1));
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char go = 0;
    REQUIRE(::read(ready[0], &go, 1) == 1);
    ::close(ready[0]);
    const Outcome o = run_bench("--json --algo lz4,zstd-3 --pid " + std::to_string(child));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    INFO("stderr: " << o.err);
    REQUIRE(o.status == 0);
    const auto out = lines(o.out);
    REQUIRE(out.size() == 2);
    for (const std::string& line : out) {
        CHECK(json_value(line, "verified") == "true");
        CHECK(std::stoul(json_value(line, "pages")) >= (4u << 20) / 4096);  // the heap at least
        CHECK(json_value(line, "input").find(std::to_string(child)) != std::string::npos);
    }
}

TEST_CASE("an occupied zram device stops a --kernel run; --kernel=auto carries on") {
    if (const std::string why = zram0_unusable(); !why.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    {
        std::ofstream occupy("/sys/block/zram0/disksize");
        occupy << (1 << 20);
    }
    TempPages input(8, 0);
    const Outcome strict = run_bench("--kernel --algo lz4 " + input.path);
    const Outcome relaxed = run_bench("--kernel=auto --json --algo lz4 " + input.path);
    {
        std::ofstream reset("/sys/block/zram0/reset");
        reset << 1;
    }
    CHECK(strict.status == 2);
    CHECK(strict.err.find("zram0") != std::string::npos);
    CHECK(relaxed.status == 0);
    CHECK(lines(relaxed.out).size() == 1);
}

TEST_CASE("--kernel --json: the kernel's row has every documented field, its latencies of one-page requests") {
    if (const std::string why = zram0_unusable(); !why.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    TempPages input(300, 0);
    const auto out = run_json("--kernel --json --algo lz4 --threads 2 " + input.path, 2);
    const std::string& kernel = out[1];
    REQUIRE(json_value(kernel, "engine") == "kernel-zram");
    check_documented_fields(kernel);
    CHECK(json_value(kernel, "verified") == "true");
    CHECK(json_value(kernel, "threads") == "2");
    for (const char* key :
         {"store_mib_s", "load_mib_s", "store_p50_us", "store_p99_us", "load_p50_us", "load_p99_us"}) {
        CAPTURE(key);
        CHECK(std::stod(json_value(kernel, key)) > 0);
    }
    CHECK(std::stod(json_value(kernel, "store_p99_us")) >= std::stod(json_value(kernel, "store_p50_us")));
    CHECK(std::stod(json_value(kernel, "load_p99_us")) >= std::stod(json_value(kernel, "load_p50_us")));

    // The table says how the kernel's latencies were taken.
    const Outcome table = run_bench("--kernel --algo lz4 " + input.path);
    REQUIRE(table.status == 0);
    CHECK(table.out.find("latencies from a pass of one-page O_DIRECT requests") != std::string::npos);
    CHECK(zram0_disksize() == "0");
}
