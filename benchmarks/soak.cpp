// zpage-soak: the reliability soak. For a given time it runs, all at once and each verified:
//
//   store   a tiered store (lz4 in, zstd-3 units for cold pages; TieredTraits) that writes back to
//           a FileBackingStore under a memory limit, kept there by ReclaimConfig::tiered()'s
//           background and direct reclaim; N threads store, load and erase real pages. Each thread
//           owns a range of indices and keeps a model of what every index of it must hold, so every
//           load is checked byte for byte; a small range shared by all threads holds pages that
//           carry their own proof (index and checksum), which catches torn or misplaced pages
//           where stores to one index race.
//   region  a CompressedRegion larger than its resident budget, over a store of the same kind
//           (its own limit, the same backing file); threads write pages into the region and read
//           them back, each owning a slice of it.
//   swap    a SwapDevice over an Lz4Store: threads swap pages out, in (verified) and free them.
//
// Every --report-seconds it prints one line: operations per part, failures, RSS, the store's
// memory, pages written back and recompressed. At the end every page of every part is verified
// once more, and a summary gives the RSS after warm-up and how far it moved from it afterwards.
// Exit status: 0 when nothing failed (and, with --max-rss-drift-percent, the drift stayed within
// it); 1 on a failure, 2 for a bad flag, 3 when the watchdog saw no operation finish for
// --stall-seconds (it prints where each thread was), 4 on SIGBUS (a region page lost), 130 when
// stopped by SIGINT/SIGTERM before the time was up. benchmarks/soak.sh runs it beside
// zpage-memcached under a client load.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <zpage/zpage.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#ifndef ZPAGE_CORPORA_DIR
#define ZPAGE_CORPORA_DIR "../shared/corpora"
#endif

namespace {

constexpr std::size_t page_bytes = 4096;
constexpr std::size_t mib = std::size_t{1} << 20;
using PageSpan = std::span<std::byte, page_bytes>;
using ConstPageSpan = std::span<const std::byte, page_bytes>;
using Clock = std::chrono::steady_clock;

// The store and the region's store: lz4 on the store path, zstd-3 for cold pages in 16-page units
// (ReclaimConfig::tiered()), written back to a file when recompression alone cannot hold the limit.
struct SoakTraits : zpage::TieredTraits<> {
    using writeback = zpage::Writeback<zpage::FileBackingStore>;
};
using SoakStore = zpage::CompressedPageStore<SoakTraits>;

// ---- options --------------------------------------------------------------------------------------

struct Options {
    double minutes = 1.0;
    unsigned threads = 4;
    std::string backing;  // empty: /var/tmp/zpage-soak.<pid>.backing
    std::size_t mem_limit_mib = 64;
    std::size_t working_set_mib = 256;  // pages the store threads keep stored, together
    std::size_t region_mib = 128;       // 0: no region part
    std::size_t region_budget_mib = 16;
    std::size_t region_store_limit_mib = 32;  // the region's store's limit; 0: none
    unsigned region_threads = 2;
    std::size_t swap_mib = 32;  // the swap device's slots; 0: no swap part
    unsigned swap_threads = 1;
    double report_seconds = 10;
    double stall_seconds = 30;
    double warmup_percent = 20;
    std::optional<double> max_rss_drift_percent;
    std::size_t corpus_pages = 4096;  // per corpus file, taken evenly across it
    std::string corpora = ZPAGE_CORPORA_DIR;
    std::uint64_t seed = 1;
};

constexpr std::string_view usage_text =
    "usage: zpage-soak [options]\n"
    "  --minutes M                 how long (fractional allowed; default 1)\n"
    "  --threads N                 store threads (default 4)\n"
    "  --backing FILE              backing file for writeback, new or empty; removed at the end\n"
    "                              (default /var/tmp/zpage-soak.<pid>.backing)\n"
    "  --mem-limit MiB             the store's memory limit (default 64)\n"
    "  --working-set-mib MiB       pages the store threads keep stored (default 256)\n"
    "  --region-mib MiB            the compressed region's size; 0: no region (default 128)\n"
    "  --region-budget-mib MiB     its resident budget (default 16)\n"
    "  --region-store-limit-mib MiB  the region's store's memory limit; 0: none (default 32)\n"
    "  --region-threads N          threads using the region (default 2)\n"
    "  --swap-mib MiB              the swap device's slots; 0: no swap device (default 32)\n"
    "  --swap-threads N            threads using the swap device (default 1)\n"
    "  --report-seconds S          a progress line every S seconds (default 10)\n"
    "  --stall-seconds S           the watchdog's limit: no operation finished for S s (default 30)\n"
    "  --warmup-percent P          warm-up: the first P% of the run, and until every page was\n"
    "                              stored once (default 20)\n"
    "  --max-rss-drift-percent P   fail when RSS moves more than P% from its value after warm-up\n"
    "  --corpus-pages N            pages taken from each corpus file (default 4096)\n"
    "  --corpora DIR               *.pages.zst (default the build's ZPAGE_CORPORA_DIR, or the\n"
    "                              environment's); generated pages when there are none\n"
    "  --seed N                    (default 1)\n";

struct BadFlag : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class T>
T parse_number(std::string_view flag, std::string_view text) {
    T value{};
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || value < T{})
        throw BadFlag(std::string(flag) + " takes a number, not '" + std::string(text) + "'");
    return value;
}

Options parse_options(int argc, char** argv) {
    Options o;
    if (const char* env = std::getenv("ZPAGE_CORPORA_DIR"); env != nullptr && *env != '\0') o.corpora = env;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        std::string_view value;
        bool has_value = false;
        if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
            value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
            has_value = true;
        }
        if (flag == "-h" || flag == "--help") {
            std::fputs(usage_text.data(), stdout);
            std::exit(0);
        }
        const auto next = [&]() -> std::string_view {
            if (has_value) return value;
            if (i + 1 >= argc) throw BadFlag(std::string(flag) + " needs a value");
            return argv[++i];
        };
        if (flag == "--minutes") o.minutes = parse_number<double>(flag, next());
        else if (flag == "--threads") o.threads = parse_number<unsigned>(flag, next());
        else if (flag == "--backing") o.backing = next();
        else if (flag == "--mem-limit") o.mem_limit_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--working-set-mib") o.working_set_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--region-mib") o.region_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--region-budget-mib") o.region_budget_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--region-store-limit-mib") o.region_store_limit_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--region-threads") o.region_threads = parse_number<unsigned>(flag, next());
        else if (flag == "--swap-mib") o.swap_mib = parse_number<std::size_t>(flag, next());
        else if (flag == "--swap-threads") o.swap_threads = parse_number<unsigned>(flag, next());
        else if (flag == "--report-seconds") o.report_seconds = parse_number<double>(flag, next());
        else if (flag == "--stall-seconds") o.stall_seconds = parse_number<double>(flag, next());
        else if (flag == "--warmup-percent") o.warmup_percent = parse_number<double>(flag, next());
        else if (flag == "--max-rss-drift-percent") o.max_rss_drift_percent = parse_number<double>(flag, next());
        else if (flag == "--corpus-pages") o.corpus_pages = parse_number<std::size_t>(flag, next());
        else if (flag == "--corpora") o.corpora = next();
        else if (flag == "--seed") o.seed = parse_number<std::uint64_t>(flag, next());
        else throw BadFlag("unknown flag '" + std::string(flag) + "' (see --help)");
    }
    if (o.minutes <= 0) throw BadFlag("--minutes must be positive");
    if (o.threads == 0 || o.threads > 256) throw BadFlag("--threads must be in [1, 256]");
    if (o.mem_limit_mib == 0) throw BadFlag("--mem-limit must be positive: the soak is about a store under a limit");
    if (o.working_set_mib < o.threads) throw BadFlag("--working-set-mib must be at least a MiB per thread");
    if (o.region_mib != 0 && (o.region_threads == 0 || o.region_budget_mib == 0 || o.region_budget_mib >= o.region_mib))
        throw BadFlag("the region needs --region-threads >= 1 and 0 < --region-budget-mib < --region-mib");
    if (o.region_mib != 0 && o.region_mib < o.region_threads) throw BadFlag("--region-mib must be a MiB per thread");
    if (o.swap_mib != 0 && o.swap_threads == 0) throw BadFlag("--swap-threads must be at least 1 (or --swap-mib 0)");
    if (o.report_seconds < 1) throw BadFlag("--report-seconds must be at least 1");
    if (o.stall_seconds < 5) throw BadFlag("--stall-seconds must be at least 5");
    if (o.warmup_percent >= 100) throw BadFlag("--warmup-percent must be below 100");
    if (o.corpus_pages == 0) throw BadFlag("--corpus-pages must be positive");
    return o;
}

// ---- the pages ------------------------------------------------------------------------------------

// The pages every part stores: real memory from the corpora, up to corpus_pages per file taken
// evenly across it (a sample, so that the soak's own RSS stays small beside what it measures),
// or generated pages shaped like memory where there are none.
class PageLibrary {
public:
    PageLibrary(const Options& o) {
        std::vector<std::filesystem::path> files;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(o.corpora, ec))
            if (entry.path().filename().string().ends_with(".pages.zst")) files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            const std::size_t before = pages();
            read_sample(file, o.corpus_pages);
            description_ += (description_.empty() ? "" : ", ") + file.filename().string() + " (" +
                            std::to_string(pages() - before) + ")";
        }
        if (pages() == 0) {
            generate(o.corpus_pages, o.seed);
            description_ = std::to_string(pages()) + " generated pages (no *.pages.zst in " + o.corpora + ")";
        }
    }

    [[nodiscard]] std::size_t pages() const noexcept { return bytes_.size() / page_bytes; }
    [[nodiscard]] ConstPageSpan page(std::size_t i) const noexcept {
        return ConstPageSpan(bytes_.data() + i * page_bytes, page_bytes);
    }
    [[nodiscard]] const std::string& description() const noexcept { return description_; }

private:
    // Streams the file through zstd, keeping every stride-th page: the whole file never sits in
    // memory, which would leave the heap larger than the soak needs for the rest of the run.
    void read_sample(const std::filesystem::path& path, std::size_t max_pages) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error("cannot read " + path.string());
        std::vector<char> input(ZSTD_DStreamInSize());
        std::vector<std::byte> output(ZSTD_DStreamOutSize());
        std::unique_ptr<ZSTD_DStream, std::size_t (*)(ZSTD_DStream*)> stream(ZSTD_createDStream(), ZSTD_freeDStream);
        std::size_t stride = 0;  // known after the frame header
        std::size_t page_number = 0, in_page = 0, kept = 0;
        std::array<std::byte, page_bytes> current{};
        while (in) {
            in.read(input.data(), static_cast<std::streamsize>(input.size()));
            const auto got = static_cast<std::size_t>(in.gcount());
            if (stride == 0 && got > 0) {
                const unsigned long long size = ZSTD_getFrameContentSize(input.data(), got);
                const std::size_t total = size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR
                                              ? max_pages
                                              : static_cast<std::size_t>(size / page_bytes);
                stride = std::max<std::size_t>(1, total / max_pages);
            }
            ZSTD_inBuffer from{input.data(), got, 0};
            while (from.pos < from.size) {
                ZSTD_outBuffer to{output.data(), output.size(), 0};
                const std::size_t rc = ZSTD_decompressStream(stream.get(), &to, &from);
                if (ZSTD_isError(rc)) throw std::runtime_error("corrupt " + path.string() + ": " + ZSTD_getErrorName(rc));
                for (std::size_t off = 0; off < to.pos;) {
                    const std::size_t n = std::min(to.pos - off, page_bytes - in_page);
                    std::memcpy(current.data() + in_page, output.data() + off, n);
                    off += n;
                    in_page += n;
                    if (in_page < page_bytes) continue;
                    in_page = 0;
                    if (page_number++ % stride == 0 && kept < max_pages) {
                        bytes_.insert(bytes_.end(), current.begin(), current.end());
                        ++kept;
                    }
                }
            }
        }
    }

    // Same-filled, random (incompressible) and word-vocabulary pages, as tests/corpora.hpp makes.
    void generate(std::size_t count, std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        bytes_.resize(count * page_bytes);
        for (std::size_t p = 0; p < count; ++p) {
            std::byte* page = bytes_.data() + p * page_bytes;
            switch (rng() % 4) {
            case 0: {
                const std::uint64_t word = rng() % 3 == 0 ? 0 : rng();
                for (std::size_t off = 0; off < page_bytes; off += 8) std::memcpy(page + off, &word, 8);
                break;
            }
            case 1:
                for (std::size_t off = 0; off < page_bytes; ++off) page[off] = static_cast<std::byte>(rng());
                break;
            default: {
                const std::uint64_t vocabulary = 2 + rng() % 200;
                for (std::size_t off = 0; off < page_bytes; off += 8) {
                    const std::uint64_t word = (rng() % vocabulary) * 0x9E3779B97F4A7C15ULL;
                    std::memcpy(page + off, &word, 8);
                }
            }
            }
        }
    }

    std::vector<std::byte> bytes_;
    std::string description_;
};

// What a page owned by one thread must hold: library page `source`, stored for the `version`-th
// time. Version 0: never stored, or erased (zeros). Odd versions carry a stamp over their first 16
// bytes (where the page lives and the version), so a page landing at the wrong index, or an older
// copy of it, is caught even where the library holds the same bytes at several pages; even
// versions are the library page as it is, so that same-filled and incompressible pages still
// reach the store unchanged.
struct Expected {
    std::uint32_t source = 0;
    std::uint32_t version = 0;
};
constexpr std::uint32_t zero_source = UINT32_MAX;  // an all-zero page (not stamped: it must stay one)

void make_page(const PageLibrary& library, Expected e, std::uint64_t where, PageSpan out) noexcept {
    if (e.version == 0 || e.source == zero_source) {
        std::memset(out.data(), 0, page_bytes);
        return;
    }
    std::memcpy(out.data(), library.page(e.source).data(), page_bytes);
    if (e.version % 2 == 1) {
        const std::uint64_t stamp[2] = {where, e.version};
        std::memcpy(out.data(), stamp, sizeof stamp);
    }
}

// A page of the shared range proves itself: bytes [0, 8) hold its index, [8, 16) the XXH3 of
// bytes [16, 4096) seeded with the index. Any whole page stored there passes; a torn page (parts
// of two racing stores), another index's page or damaged bytes fail. All zeros: never stored, or
// erased.
void sign_page(ConstPageSpan source, std::uint64_t index, PageSpan out) noexcept {
    std::memcpy(out.data(), source.data(), page_bytes);
    const std::uint64_t sum = XXH3_64bits_withSeed(out.data() + 16, page_bytes - 16, index);
    std::memcpy(out.data(), &index, 8);
    std::memcpy(out.data() + 8, &sum, 8);
}

bool signed_page_ok(ConstPageSpan page, std::uint64_t index) noexcept {
    std::uint64_t held_index = 0, held_sum = 0;
    std::memcpy(&held_index, page.data(), 8);
    std::memcpy(&held_sum, page.data() + 8, 8);
    if (held_index == index && held_sum == XXH3_64bits_withSeed(page.data() + 16, page_bytes - 16, index)) return true;
    return std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
}

// ---- progress, failures, the watchdog ---------------------------------------------------------------

std::atomic<bool> stop_requested{false};  // the time is up, or a signal came
volatile sig_atomic_t stop_signal = 0;
char backing_path_for_signals[512] = {};  // removed by the watchdog and the SIGBUS handler

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// One thread's public state: written by that thread only, read by the watchdog.
struct alignas(64) Worker {
    std::string role;
    std::atomic<const char*> op{"starting"};  // a string literal; nullptr: idle (not watched)
    std::atomic<std::uint64_t> index{0};
    std::atomic<std::uint64_t> ops{0};
    // What the thread waits for inside zpage now (zpage::detail::waiting_for(): the library's
    // diagnostic hook, which its test watchdog reads too), or nullptr.
    std::atomic<const std::atomic<const char*>*> waiting{nullptr};

    void working(const char* what, std::uint64_t at) noexcept {
        index.store(at, std::memory_order_relaxed);
        op.store(what, std::memory_order_relaxed);
    }
    void done() noexcept { ops.fetch_add(1, std::memory_order_relaxed); }
};

// A part's counters. Failures are wrong bytes and errors the part must never see; a store refused
// for the memory limit is counted apart (the library's documented answer when reclaim cannot make
// room in time: nothing is lost, the index keeps its page).
struct PartCounters {
    std::atomic<std::uint64_t> ops{0}, failures{0}, refused{0};
    std::atomic<std::uint64_t> verify_ops{0};  // the final verification's pages
    std::atomic<int> prefilling{0};            // threads still storing their pages for the first time
};

class Registry {
public:
    // A slot for the calling thread, which must call this itself (its zpage wait site is
    // thread-local). Slots never move: a deque.
    Worker& enroll(std::string role) {
        std::lock_guard guard(mutex_);
        Worker& w = workers_.emplace_back();
        w.role = std::move(role);
        w.waiting.store(&zpage::detail::waiting_for(), std::memory_order_release);
        return w;
    }
    void leave(Worker& w) noexcept {
        w.waiting.store(nullptr, std::memory_order_release);
        w.op.store(nullptr, std::memory_order_relaxed);
    }
    // Operations finished, and whether any thread is working (not idle, not gone).
    std::pair<std::uint64_t, bool> progress() {
        std::lock_guard guard(mutex_);
        std::uint64_t total = 0;
        bool working = false;
        for (const Worker& w : workers_) {
            total += w.ops.load(std::memory_order_relaxed);
            working |= w.op.load(std::memory_order_relaxed) != nullptr;
        }
        return {total, working};
    }
    void print_where(std::FILE* out) {
        std::lock_guard guard(mutex_);
        for (const Worker& w : workers_) {
            const char* op = w.op.load(std::memory_order_relaxed);
            const std::atomic<const char*>* site = w.waiting.load(std::memory_order_acquire);
            const char* waiting = site != nullptr ? site->load(std::memory_order_relaxed) : nullptr;
            std::fprintf(out, "  %-10s %12" PRIu64 " ops, %s (index %" PRIu64 "), %s%s\n", w.role.c_str(),
                         w.ops.load(std::memory_order_relaxed), op != nullptr ? op : "idle or finished",
                         w.index.load(std::memory_order_relaxed),
                         waiting != nullptr ? "waiting in zpage for " : "not waiting in zpage",
                         waiting != nullptr ? waiting : "");
        }
    }

private:
    std::mutex mutex_;
    std::deque<Worker> workers_;
};

// Prints the first failures in full (a flood would hide the first, which matters most); all are
// counted.
class FailureLog {
public:
    void report(PartCounters& part, const char* format, ...) __attribute__((format(printf, 3, 4))) {
        part.failures.fetch_add(1, std::memory_order_relaxed);
        if (printed_.fetch_add(1, std::memory_order_relaxed) >= max_printed) return;
        char line[512];
        va_list args;
        va_start(args, format);
        std::vsnprintf(line, sizeof line, format, args);
        va_end(args);
        std::lock_guard guard(mutex_);
        std::fprintf(stdout, "FAILURE: %s\n", line);
        std::fflush(stdout);
    }

private:
    static constexpr std::uint64_t max_printed = 20;
    std::atomic<std::uint64_t> printed_{0};
    std::mutex mutex_;
};

std::string first_difference(ConstPageSpan got, ConstPageSpan want) {
    std::size_t off = 0;
    while (off < page_bytes && got[off] == want[off]) ++off;
    const bool zeros = std::all_of(got.begin(), got.end(), [](std::byte b) { return b == std::byte{0}; });
    return "first difference at byte " + std::to_string(off) + (zeros ? ", the page read is all zeros" : "");
}

// Index picks for a thread's own range: three quarters of them fall in a hot window of an eighth
// of the range that moves on a page every 16 picks, so pages go cold, get recompressed or written
// back, and are used again later; the rest anywhere.
class SkewedPicker {
public:
    explicit SkewedPicker(std::size_t range) : range_(range), hot_(std::max<std::size_t>(1, range / 8)) {}
    std::size_t next(std::mt19937_64& rng) noexcept {
        if (++picks_ % 16 == 0) base_ = (base_ + 1) % range_;
        if (rng() % 4 != 0) return (base_ + rng() % hot_) % range_;
        return rng() % range_;
    }

private:
    std::size_t range_, hot_, base_ = 0;
    std::uint64_t picks_ = 0;
};

// ---- the store part -------------------------------------------------------------------------------

struct StorePart {
    SoakStore& store;
    const PageLibrary& library;
    std::size_t pages_per_thread;
    std::size_t shared_first;  // the shared range: [shared_first, shared_first + shared_pages)
    std::size_t shared_pages;
    PartCounters counters;
};

void verify_store_page(StorePart& part, FailureLog& log, std::size_t index, Expected e, PageSpan got, PageSpan want,
                       const char* when) {
    const zpage::Status loaded = part.store.load(index, got);
    if (!loaded) {
        log.report(part.counters, "store: %s load of index %zu failed: %s", when, index, loaded.message().data());
        return;
    }
    make_page(part.library, e, index, want);
    if (std::memcmp(got.data(), want.data(), page_bytes) != 0)
        log.report(part.counters, "store: %s load of index %zu (library page %u, version %u) is wrong: %s", when, index,
                   e.source, e.version, first_difference(got, want).c_str());
}

void check_shared_page(StorePart& part, FailureLog& log, std::size_t index, PageSpan got, const char* when) {
    const zpage::Status loaded = part.store.load(index, got);
    if (!loaded)
        log.report(part.counters, "store: %s load of shared index %zu failed: %s", when, index, loaded.message().data());
    else if (!signed_page_ok(got, index))
        log.report(part.counters, "store: %s load of shared index %zu is neither a whole signed page nor zeros", when,
                   index);
}

void run_store_thread(StorePart& part, Registry& registry, FailureLog& log, unsigned t, std::uint64_t seed) {
    Worker& me = registry.enroll("store-" + std::to_string(t));
    std::mt19937_64 rng(seed);
    const std::size_t first = t * part.pages_per_thread;
    std::vector<Expected> model(part.pages_per_thread);
    std::array<std::byte, page_bytes> page{}, want{};
    const auto store_own = [&](std::size_t i) {
        const std::size_t index = first + i;
        const Expected next{static_cast<std::uint32_t>(rng() % part.library.pages()), model[i].version + 1};
        make_page(part.library, next, index, page);
        me.working("store", index);
        const zpage::Status stored = part.store.store(index, page);
        if (stored) model[i] = next;  // on failure the index keeps its previous page
        else if (stored.error() == zpage::errc::memory_limit) part.counters.refused.fetch_add(1, std::memory_order_relaxed);
        else log.report(part.counters, "store: store of index %zu failed: %s", index, stored.message().data());
    };

    // Every page of the range stored once: the store reaches its steady size before warm-up ends.
    for (std::size_t i = 0; i < part.pages_per_thread && !stop_requested.load(std::memory_order_relaxed); ++i) {
        store_own(i);
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    part.counters.prefilling.fetch_sub(1, std::memory_order_relaxed);

    SkewedPicker picker(part.pages_per_thread);
    while (!stop_requested.load(std::memory_order_relaxed)) {
        const unsigned dice = static_cast<unsigned>(rng() % 100);
        if (dice < 10) {
            // The shared range: stores to one index race between threads; each page proves itself.
            const std::size_t index = part.shared_first + rng() % part.shared_pages;
            if (dice < 5) {
                sign_page(part.library.page(rng() % part.library.pages()), index, page);
                me.working("store of a shared page", index);
                const zpage::Status stored = part.store.store(index, page);
                if (!stored && stored.error() == zpage::errc::memory_limit)
                    part.counters.refused.fetch_add(1, std::memory_order_relaxed);
                else if (!stored)
                    log.report(part.counters, "store: store of shared index %zu failed: %s", index, stored.message().data());
            } else if (dice < 9) {
                me.working("load of a shared page", index);
                check_shared_page(part, log, index, page, "a");
            } else {
                me.working("erase of a shared page", index);
                static_cast<void>(part.store.erase(index));
            }
        } else {
            const std::size_t i = picker.next(rng);
            if (dice < 50) {
                store_own(i);
            } else if (dice < 95) {
                me.working("load", first + i);
                verify_store_page(part, log, first + i, model[i], page, want, "a");
            } else {
                me.working("erase", first + i);
                if (const zpage::Status erased = part.store.erase(first + i); erased) model[i] = Expected{0, 0};
                else log.report(part.counters, "store: erase of index %zu failed: %s", first + i, erased.message().data());
            }
        }
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }

    // The final verification: every page of the range, once.
    for (std::size_t i = 0; i < part.pages_per_thread; ++i) {
        me.working("final verification load", first + i);
        verify_store_page(part, log, first + i, model[i], page, want, "the final");
        part.counters.verify_ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    registry.leave(me);
}

// ---- the region part ------------------------------------------------------------------------------

struct RegionPart {
    zpage::CompressedRegion<SoakStore>& region;
    const PageLibrary& library;
    std::size_t pages_per_thread;
    PartCounters counters;
};

void verify_region_page(RegionPart& part, FailureLog& log, std::size_t p, Expected e, PageSpan want, const char* when) {
    make_page(part.library, e, p, want);
    const ConstPageSpan got(part.region.data() + p * page_bytes, page_bytes);
    if (std::memcmp(got.data(), want.data(), page_bytes) != 0)
        log.report(part.counters, "region: %s read of page %zu (library page %u, version %u) is wrong: %s", when, p,
                   e.source, e.version, first_difference(got, want).c_str());
}

void run_region_thread(RegionPart& part, Registry& registry, FailureLog& log, unsigned t, std::uint64_t seed) {
    Worker& me = registry.enroll("region-" + std::to_string(t));
    std::mt19937_64 rng(seed);
    const std::size_t first = t * part.pages_per_thread;
    std::vector<Expected> model(part.pages_per_thread);
    std::array<std::byte, page_bytes> page{};
    const auto write_own = [&](std::size_t i) {
        const std::size_t p = first + i;
        // 1 write in 32 is a zero page: zeros are how a program clears region memory (no store memory).
        const std::uint32_t source = rng() % 32 == 0 ? zero_source : static_cast<std::uint32_t>(rng() % part.library.pages());
        const Expected next{source, model[i].version + 1};
        make_page(part.library, next, p, page);
        me.working("region write", p);
        std::memcpy(part.region.data() + p * page_bytes, page.data(), page_bytes);
        model[i] = next;
    };

    for (std::size_t i = 0; i < part.pages_per_thread && !stop_requested.load(std::memory_order_relaxed); ++i) {
        write_own(i);
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    part.counters.prefilling.fetch_sub(1, std::memory_order_relaxed);

    SkewedPicker picker(part.pages_per_thread);
    while (!stop_requested.load(std::memory_order_relaxed)) {
        const std::size_t i = picker.next(rng);
        if (rng() % 100 < 40) {
            write_own(i);
        } else {
            me.working("region read", first + i);
            verify_region_page(part, log, first + i, model[i], page, "a");
        }
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }

    for (std::size_t i = 0; i < part.pages_per_thread; ++i) {
        me.working("final verification read", first + i);
        verify_region_page(part, log, first + i, model[i], page, "the final");
        part.counters.verify_ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    registry.leave(me);
}

// ---- the swap part --------------------------------------------------------------------------------

struct SwapPart {
    zpage::SwapDevice<zpage::Lz4Store>& swap;
    const PageLibrary& library;
    std::size_t slots_per_thread;  // held at most, so that the threads never run out of slots
    PartCounters counters;
};

void run_swap_thread(SwapPart& part, Registry& registry, FailureLog& log, unsigned t, std::uint64_t seed) {
    Worker& me = registry.enroll("swap-" + std::to_string(t));
    std::mt19937_64 rng(seed);
    struct Held {
        zpage::SwapSlot slot;
        Expected expected;
        std::uint64_t serial;  // the stamp's "where": unique per swap-out, as slots are reused
    };
    std::vector<Held> held;
    held.reserve(part.slots_per_thread);
    std::uint64_t serial = std::uint64_t{t} << 48;
    std::array<std::byte, page_bytes> page{}, want{};

    const auto swap_in = [&](const Held& h, const char* when) {
        me.working("swap in", h.slot.index);
        const zpage::Status in = part.swap.swap_in(h.slot, page);
        if (!in) {
            log.report(part.counters, "swap: %s swap-in of slot %u failed: %s", when, h.slot.index, in.message().data());
            return;
        }
        make_page(part.library, h.expected, h.serial, want);
        if (std::memcmp(page.data(), want.data(), page_bytes) != 0)
            log.report(part.counters, "swap: %s swap-in of slot %u is wrong: %s", when, h.slot.index,
                       first_difference(page, want).c_str());
    };
    const auto swap_out = [&] {
        // Always stamped (an odd version): the serial tells this swap-out from the slot's earlier ones.
        const Held next{{}, {static_cast<std::uint32_t>(rng() % part.library.pages()), 1}, ++serial};
        make_page(part.library, next.expected, next.serial, page);
        me.working("swap out", 0);
        const zpage::Result<zpage::SwapSlot> slot = part.swap.swap_out(page);
        if (!slot) {
            log.report(part.counters, "swap: swap-out failed: %s", zpage::to_string(slot.error()).data());
            return;
        }
        held.push_back({*slot, next.expected, next.serial});
    };

    for (std::size_t i = 0; i < part.slots_per_thread / 2 && !stop_requested.load(std::memory_order_relaxed); ++i) {
        swap_out();
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    part.counters.prefilling.fetch_sub(1, std::memory_order_relaxed);

    while (!stop_requested.load(std::memory_order_relaxed)) {
        const unsigned dice = static_cast<unsigned>(rng() % 100);
        if (held.empty() || (dice < 40 && held.size() < part.slots_per_thread)) {
            swap_out();
        } else {
            // Neighbours in time sit in neighbouring slots: half the swap-ins take one of the last
            // few swapped out, so that readahead has something to find.
            const std::size_t recent = std::min<std::size_t>(held.size(), 64);
            const std::size_t k = rng() % 2 == 0 ? held.size() - 1 - rng() % recent : rng() % held.size();
            swap_in(held[k], "a");
            if (dice >= 70) {  // and freed, as a swapped-in page is once it is dirtied
                me.working("free", held[k].slot.index);
                if (const zpage::Status freed = part.swap.free(held[k].slot); !freed)
                    log.report(part.counters, "swap: free of slot %u failed: %s", held[k].slot.index,
                               freed.message().data());
                held[k] = held.back();
                held.pop_back();
            }
        }
        part.counters.ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }

    for (const Held& h : held) {
        swap_in(h, "the final");
        static_cast<void>(part.swap.free(h.slot));
        part.counters.verify_ops.fetch_add(1, std::memory_order_relaxed);
        me.done();
    }
    registry.leave(me);
}

// ---- memory over time -----------------------------------------------------------------------------

std::uint64_t resident_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    unsigned long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%llu %llu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

double in_mib(std::uint64_t bytes) { return static_cast<double>(bytes) / static_cast<double>(mib); }

struct RssSample {
    double seconds;
    std::uint64_t bytes;
};

// RSS after warm-up and the largest move from it afterwards, in percent (signed: the larger of
// the rise and the fall). Warm-up ends at the first sample at or after `warm_end`.
struct RssDrift {
    bool known = false;
    double at_seconds = 0;
    std::uint64_t after_warmup = 0, lowest = 0, highest = 0, last = 0;
    double max_drift_percent = 0;
};

RssDrift rss_drift(const std::vector<RssSample>& samples, double warm_end) {
    RssDrift d;
    for (const RssSample& s : samples) {
        if (!d.known) {
            if (s.seconds < warm_end) continue;
            d.known = true;
            d.at_seconds = s.seconds;
            d.after_warmup = d.lowest = d.highest = s.bytes;
        }
        d.lowest = std::min(d.lowest, s.bytes);
        d.highest = std::max(d.highest, s.bytes);
        d.last = s.bytes;
    }
    if (d.known && d.after_warmup != 0) {
        const double base = static_cast<double>(d.after_warmup);
        const double up = (static_cast<double>(d.highest) - base) / base * 100;
        const double down = (static_cast<double>(d.lowest) - base) / base * 100;
        d.max_drift_percent = up >= -down ? up : down;
    }
    return d;
}

// ---- signals --------------------------------------------------------------------------------------

void on_stop_signal(int signal) {
    stop_signal = signal;
    stop_requested.store(true, std::memory_order_relaxed);
}

// A region page the store could not return is poisoned, and a region whose handler stalled
// fails over: either way a touch raises SIGBUS. Async-signal-safe: write(2), unlink(2), _exit(2).
void on_sigbus(int, siginfo_t* info, void*) {
    char line[160] = "zpage-soak: FAILURE: SIGBUS at 0x";
    std::size_t n = std::strlen(line);
    auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
    char hex[2 * sizeof address];
    for (std::size_t i = sizeof hex; i-- > 0; address >>= 4) hex[i] = "0123456789abcdef"[address & 15];
    std::memcpy(line + n, hex, sizeof hex);
    n += sizeof hex;
    const char tail[] = ": a region page was lost (poisoned), or the region failed over after a handler stall\n";
    std::memcpy(line + n, tail, std::min(sizeof tail - 1, sizeof line - n));
    n = std::min(n + sizeof tail - 1, sizeof line);
    static_cast<void>(::write(STDOUT_FILENO, line, n));
    if (backing_path_for_signals[0] != '\0') ::unlink(backing_path_for_signals);
    ::_exit(4);
}

void install_signal_handlers() {
    struct sigaction stop{};
    stop.sa_handler = on_stop_signal;
    sigemptyset(&stop.sa_mask);
    ::sigaction(SIGINT, &stop, nullptr);
    ::sigaction(SIGTERM, &stop, nullptr);
    struct sigaction bus{};
    bus.sa_sigaction = on_sigbus;
    bus.sa_flags = SA_SIGINFO;
    sigemptyset(&bus.sa_mask);
    ::sigaction(SIGBUS, &bus, nullptr);
}

// ---- the run --------------------------------------------------------------------------------------

std::uint64_t ops_of(const PartCounters* part) {
    return part != nullptr ? part->ops.load(std::memory_order_relaxed) : 0;
}
std::uint64_t failures_of(const PartCounters* part) {
    return part != nullptr ? part->failures.load(std::memory_order_relaxed) : 0;
}

// No operation finished for stall_seconds while some thread is working is a hang: the watchdog
// prints where every thread is and ends the process (status 3), as a deadlocked thread could
// never be joined. Started by the constructor, stopped by the destructor.
class Watchdog {
public:
    Watchdog(Registry& registry, const SoakStore& store, double stall_seconds, Clock::time_point start)
        : registry_(registry), store_(store), stall_seconds_(stall_seconds), start_(start), thread_([this] { watch(); }) {}
    ~Watchdog() {
        {
            std::lock_guard guard(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

private:
    void watch() {
        std::uint64_t last_total = ~std::uint64_t{0};
        auto last_change = Clock::now();
        std::unique_lock guard(mutex_);
        while (!wake_.wait_for(guard, std::chrono::milliseconds(500), [&] { return stopping_; })) {
            const auto [total, working] = registry_.progress();
            if (total != last_total || !working) {
                last_total = total;
                last_change = Clock::now();
                continue;
            }
            if (seconds_since(last_change) < stall_seconds_) continue;
            std::printf("\nWATCHDOG: no operation finished for %.0f s (at %.1f s of the run); where each thread is:\n",
                        stall_seconds_, seconds_since(start_));
            registry_.print_where(stdout);
            const zpage::ReclaimStats r = store_.reclaim_stats();
            std::printf("  store: mem_used %.1f MiB, kswapd_wakeups %" PRIu64 ", allocstall %" PRIu64
                        ", reclaim_stalls %" PRIu64 "\n",
                        in_mib(store_.stats().mem_used_total), r.kswapd_wakeups, r.allocstall, r.reclaim_stalls);
            std::fflush(stdout);
            ::unlink(backing_path_for_signals);
            std::_Exit(3);
        }
    }

    Registry& registry_;
    const SoakStore& store_;
    const double stall_seconds_;
    const Clock::time_point start_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once everything above is built
};

// What the time-keeping loop saw.
struct Timeline {
    std::vector<RssSample> samples;  // one a second
    double prefill_done = -1;        // when every part had stored each of its pages once; -1: never
    double ran = 0;
    bool interrupted = false;
};

// The three parts, their threads and the watchdog. Members are destroyed in reverse order: the
// threads are joined first (finish(), or the destructor), then the swap device and the region go
// before their stores, and the stores before the backing file they write to.
class Soak {
public:
    // Throws zpage::RegionError where userfaultfd is not allowed, std::invalid_argument for a
    // configuration the library refuses, std::system_error for the backing file.
    Soak(const Options& o, const std::string& backing_path)
        : o_(o), backing_path_(backing_path), library_(o),
          pages_per_thread_(o.working_set_mib * mib / page_bytes / o.threads),
          region_pages_(o.region_mib * mib / page_bytes),
          swap_slots_(o.swap_mib * mib / page_bytes),
          // Room for every page of both stores written back at once, raw, with its record header:
          // the soak must never see no_space. The file is sparse; it holds what was written.
          disk_({.path = backing_path,
                 .max_bytes = std::uint64_t{2} * (pages_per_thread_ * o.threads + shared_pages + region_pages_) * page_bytes +
                              std::uint64_t{64} * mib}),
          store_(zpage::StoreConfig{.capacity_pages = pages_per_thread_ * o.threads + shared_pages,
                                    .mem_limit_bytes = o.mem_limit_mib * mib,
                                    .reclaim = zpage::ReclaimConfig::tiered()},
                 zpage::Lz4{}, {.backing = &disk_}, std::tuple<zpage::Zstd>{zpage::Zstd{.level = 3}}),
          store_part_{store_, library_, pages_per_thread_, pages_per_thread_ * o.threads, shared_pages, {}} {
        if (region_pages_ != 0) {
            region_store_.emplace(zpage::StoreConfig{.capacity_pages = region_pages_,
                                                     .mem_limit_bytes = o.region_store_limit_mib * mib,
                                                     .reclaim = zpage::ReclaimConfig::tiered()},
                                  zpage::Lz4{}, SoakTraits::writeback{.backing = &disk_},
                                  std::tuple<zpage::Zstd>{zpage::Zstd{.level = 3}});
            region_ = std::make_unique<zpage::CompressedRegion<SoakStore>>(
                *region_store_, zpage::RegionConfig{.bytes = region_pages_ * page_bytes,
                                                    .resident_budget_bytes = o.region_budget_mib * mib});
            region_part_.emplace(*region_, library_, region_pages_ / o.region_threads);
        }
        if (swap_slots_ != 0) {
            swap_store_.emplace(zpage::StoreConfig{.capacity_pages = swap_slots_});
            swap_ = std::make_unique<zpage::SwapDevice<zpage::Lz4Store>>(*swap_store_);
            // At most three quarters of the slots held, so that no swap-out finds them all taken.
            swap_part_.emplace(*swap_, library_, swap_slots_ * 3 / 4 / o.swap_threads);
        }
        parts_ = {&store_part_.counters, region_part_ ? &region_part_->counters : nullptr,
                  swap_part_ ? &swap_part_->counters : nullptr};
    }

    ~Soak() {
        stop_requested.store(true, std::memory_order_relaxed);
        join();
    }
    Soak(const Soak&) = delete;
    Soak& operator=(const Soak&) = delete;

    void print_setup() const {
        std::printf("zpage-soak: %.1f min; pages: %s\n", o_.minutes, library_.description().c_str());
        std::printf("  store:  %u thread(s), %zu MiB of pages (+ %zu shared pages) under a %zu MiB limit, tiered "
                    "(lz4, zstd-3 units), writeback to %s\n",
                    o_.threads, o_.working_set_mib, shared_pages, o_.mem_limit_mib, backing_path_.c_str());
        if (region_) {
            const std::string limit = o_.region_store_limit_mib != 0
                                          ? "limited to " + std::to_string(o_.region_store_limit_mib) + " MiB"
                                          : "unlimited";
            std::printf("  region: %u thread(s), %zu MiB over a %zu MiB resident budget; its store %s, the same backing "
                        "file\n",
                        o_.region_threads, o_.region_mib, o_.region_budget_mib, limit.c_str());
        }
        if (swap_) std::printf("  swap:   %u thread(s), %zu slots over an lz4 store\n", o_.swap_threads, swap_slots_);
        std::printf("  RSS before the parts start: %.1f MiB\n", in_mib(resident_bytes()));
        std::fflush(stdout);
    }

    // Starts the watchdog and every part's threads, runs for `duration` seconds (or until a
    // signal), sampling RSS every second and printing a line every report_seconds.
    Timeline run_for(double duration) {
        const auto start = Clock::now();
        main_worker_ = &registry_.enroll("main");
        watchdog_.emplace(registry_, store_, o_.stall_seconds, start);
        launch(run_store_thread, store_part_, o_.threads, 1);
        if (region_part_) launch(run_region_thread, *region_part_, o_.region_threads, 2);
        if (swap_part_) launch(run_swap_thread, *swap_part_, o_.swap_threads, 3);

        main_worker_->op.store(nullptr, std::memory_order_relaxed);  // sleeping between samples is not a hang
        Timeline timeline;
        double next_sample = 0, next_report = o_.report_seconds;
        for (;;) {
            const double now = seconds_since(start);
            if (now >= duration || stop_requested.load(std::memory_order_relaxed)) break;
            if (timeline.prefill_done < 0 && prefilled()) timeline.prefill_done = now;
            if (now >= next_sample) {
                timeline.samples.push_back({now, resident_bytes()});
                next_sample += 1;
            }
            if (now >= next_report) {
                next_report += o_.report_seconds;
                print_progress(now, timeline.samples.back().bytes, timeline.prefill_done < 0);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        timeline.ran = seconds_since(start);
        timeline.interrupted = stop_requested.load(std::memory_order_relaxed);
        stop_requested.store(true, std::memory_order_relaxed);
        return timeline;
    }

    // Joins the threads (each verifies its own pages once more first), verifies the shared range
    // and checks the store's books.
    void finish() {
        main_worker_->working("joining the threads (final verification)", 0);
        join();
        std::array<std::byte, page_bytes> page{};
        for (std::size_t i = 0; i < shared_pages; ++i) {
            main_worker_->working("final verification of the shared range", store_part_.shared_first + i);
            check_shared_page(store_part_, log_, store_part_.shared_first + i, page, "the final");
            store_part_.counters.verify_ops.fetch_add(1, std::memory_order_relaxed);
            main_worker_->done();
        }
        // The store's books against its page table. validate() is exact only while nothing changes
        // the store, and the reclaimer may still be finishing a round (or start one for age) after
        // the workers stopped: a disagreement counts only when three looks a second apart all see one.
        main_worker_->working("checking the store's books", 0);
        books_ = store_.validate();
        for (int look = 1; look < 3 && !books_.empty(); ++look) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            books_ = store_.validate();
        }
        if (!books_.empty())
            log_.report(store_part_.counters, "store: its books disagree with its page table:\n%s", books_.c_str());
        if (region_) {
            const zpage::RegionStats r = region_->stats();
            if (r.poisoned_pages != 0 || r.handler_stalls != 0)
                log_.report(region_part_->counters, "region: %" PRIu64 " pages poisoned, %" PRIu64 " handler stalls",
                            r.poisoned_pages, r.handler_stalls);
        }
        main_worker_->done();
        registry_.leave(*main_worker_);
    }

    void print_parts() const {
        const zpage::Stats s = store_.stats();
        const zpage::WritebackStats wb = store_.writeback_stats();
        const zpage::RecompressStats rc = store_.recompress_stats();
        const zpage::ReclaimStats rs = store_.reclaim_stats();
        const zpage::BackingStats bd = store_.bd_stat();
        std::printf("  store:  %" PRIu64 " ops, %" PRIu64 " pages verified at the end, failures %" PRIu64
                    ", stores refused for the limit %" PRIu64 "\n",
                    ops_of(parts_[0]), store_part_.counters.verify_ops.load(), failures_of(parts_[0]),
                    store_part_.counters.refused.load());
        std::printf("          mem_used %.1f MiB (peak %.1f, limit %zu); written back %" PRIu64
                    " pages (%.1f MiB, on disk now %" PRIu64 "), read back %" PRIu64 "; recompressed %" PRIu64
                    " pages in %" PRIu64 " units; failed writebacks %" PRIu64 "\n",
                    in_mib(s.mem_used_total), in_mib(s.mem_used_max), o_.mem_limit_mib, wb.pages_written_back,
                    in_mib(wb.bytes_written_back), wb.written_back_pages, wb.pages_read_back, rc.pages_recompressed,
                    rc.units_made, wb.failed_writebacks);
        std::printf("          reclaim: kswapd_wakeups %" PRIu64 ", pgsteal_kswapd %" PRIu64 ", pgsteal_direct %" PRIu64
                    ", allocstall %" PRIu64 ", pgrecompress_kswapd %" PRIu64 ", pgrecompress_direct %" PRIu64
                    ", reclaim_stalls %" PRIu64 "; backing file: %" PRIu64 " blocks held, failed reads %" PRIu64
                    ", failed writes %" PRIu64 "\n",
                    rs.kswapd_wakeups, rs.pgsteal_kswapd, rs.pgsteal_direct, rs.allocstall, rs.pgrecompress_kswapd,
                    rs.pgrecompress_direct, rs.reclaim_stalls, bd.bd_count, bd.failed_reads, bd.failed_writes);
        std::printf("          books: %s\n", books_.empty() ? "agree with the page table" : "DISAGREE (above)");
        if (region_) {
            const zpage::RegionStats r = region_->stats();
            std::printf("  region: %" PRIu64 " ops, %" PRIu64 " pages verified at the end, failures %" PRIu64
                        "; faults %" PRIu64 " (zero fills %" PRIu64 ", swap-ins %" PRIu64 "), swap-outs %" PRIu64
                        " (direct %" PRIu64 "), failed swap-outs %" PRIu64 ", poisoned %" PRIu64 ", handler stalls %" PRIu64
                        "; its store written back %" PRIu64 ", recompressed %" PRIu64 "\n",
                        ops_of(parts_[1]), region_part_->counters.verify_ops.load(), failures_of(parts_[1]), r.faults,
                        r.zero_fills, r.swap_ins, r.swap_outs, r.direct_evictions, r.failed_swap_outs, r.poisoned_pages,
                        r.handler_stalls, region_store_->writeback_stats().pages_written_back,
                        region_store_->recompress_stats().pages_recompressed);
        }
        if (swap_) {
            const zpage::SwapStats sw = swap_->stats();
            std::printf("  swap:   %" PRIu64 " ops, %" PRIu64 " pages verified at the end, failures %" PRIu64
                        "; pswpout %" PRIu64 ", pswpin %" PRIu64 ", readahead hits %" PRIu64 ", slots in use %" PRIu64 "\n",
                        ops_of(parts_[2]), swap_part_->counters.verify_ops.load(), failures_of(parts_[2]), sw.pswpout,
                        sw.pswpin, sw.swap_ra_hit, sw.slots_used);
        }
        // Not failures, but a soak that never reached the paths it is for proves less than it seems.
        if (wb.pages_written_back == 0 || rc.pages_recompressed == 0)
            std::printf("  NOTE: the store %s: its pages fit its limit too easily; raise --working-set-mib or lower "
                        "--mem-limit\n",
                        wb.pages_written_back == 0 ? "wrote nothing back" : "recompressed nothing");
    }

    [[nodiscard]] std::uint64_t ops() const {
        std::uint64_t n = 0;
        for (const PartCounters* p : parts_) n += ops_of(p);
        return n;
    }
    [[nodiscard]] std::uint64_t failures() const {
        std::uint64_t n = 0;
        for (const PartCounters* p : parts_) n += failures_of(p);
        return n;
    }

private:
    static constexpr std::size_t shared_pages = 1024;

    template <class Body, class Part>
    void launch(Body& body, Part& part, unsigned count, std::uint64_t salt) {
        part.counters.prefilling.store(static_cast<int>(count), std::memory_order_relaxed);
        for (unsigned t = 0; t < count; ++t) {
            const std::uint64_t seed = o_.seed * 1000003 + salt * 1009 + t;
            threads_.emplace_back([this, &body, &part, t, seed] { body(part, registry_, log_, t, seed); });
        }
    }

    void join() {
        for (std::thread& t : threads_)
            if (t.joinable()) t.join();
    }

    [[nodiscard]] bool prefilled() const {
        return std::all_of(parts_.begin(), parts_.end(), [](const PartCounters* p) {
            return p == nullptr || p->prefilling.load(std::memory_order_relaxed) == 0;
        });
    }

    void print_progress(double now, std::uint64_t rss, bool filling) const {
        const zpage::WritebackStats w = store_.writeback_stats();
        std::printf("[%7.1fs] ops store %" PRIu64 " region %" PRIu64 " swap %" PRIu64 " | failures %" PRIu64
                    " | RSS %.1f MiB | store mem %.1f MiB, written back %" PRIu64 " (on disk %" PRIu64
                    "), recompressed %" PRIu64 ", refused %" PRIu64,
                    now, ops_of(parts_[0]), ops_of(parts_[1]), ops_of(parts_[2]), failures(), in_mib(rss),
                    in_mib(store_.stats().mem_used_total), w.pages_written_back, w.written_back_pages,
                    store_.recompress_stats().pages_recompressed,
                    store_part_.counters.refused.load(std::memory_order_relaxed));
        if (region_)
            std::printf(" | region resident %.1f MiB, its store %.1f MiB",
                        in_mib(region_->stats().resident_pages * page_bytes), in_mib(region_store_->stats().mem_used_total));
        std::printf("%s\n", filling ? " (filling)" : "");
        std::fflush(stdout);
    }

    const Options& o_;
    const std::string backing_path_;
    const PageLibrary library_;
    const std::size_t pages_per_thread_, region_pages_, swap_slots_;
    zpage::FileBackingStore disk_;
    SoakStore store_;
    std::optional<SoakStore> region_store_;
    std::unique_ptr<zpage::CompressedRegion<SoakStore>> region_;
    std::optional<zpage::Lz4Store> swap_store_;
    std::unique_ptr<zpage::SwapDevice<zpage::Lz4Store>> swap_;
    Registry registry_;
    FailureLog log_;
    StorePart store_part_;
    std::optional<RegionPart> region_part_;
    std::optional<SwapPart> swap_part_;
    std::array<PartCounters*, 3> parts_{};  // store, region, swap; nullptr for a part not run
    std::string books_;  // what validate() found wrong at the end; "" when the books agree
    Worker* main_worker_ = nullptr;
    std::optional<Watchdog> watchdog_;  // stopped after the threads are joined, before the parts go
    std::vector<std::thread> threads_;
};

// Prints the RSS figures; false when --max-rss-drift-percent is given and was not met.
bool print_rss(const Options& o, const Timeline& timeline, const RssDrift& drift) {
    std::uint64_t peak = 0;
    for (const RssSample& sample : timeline.samples) peak = std::max(peak, sample.bytes);
    if (!drift.known) {
        std::printf("  RSS:    the run ended before warm-up did (every page stored once, %.0f%% of the run); "
                    "peak %.1f MiB\n",
                    o.warmup_percent, in_mib(peak));
        return !o.max_rss_drift_percent;
    }
    std::printf("  RSS:    after warm-up (%.0f s) %.1f MiB; since then %.1f .. %.1f MiB, at the end %.1f MiB: "
                "max drift %+.2f%%; peak of the run %.1f MiB\n",
                drift.at_seconds, in_mib(drift.after_warmup), in_mib(drift.lowest), in_mib(drift.highest),
                in_mib(drift.last), drift.max_drift_percent, in_mib(peak));
    if (o.max_rss_drift_percent && std::abs(drift.max_drift_percent) > *o.max_rss_drift_percent) {
        std::printf("  RSS drift %.2f%% is beyond --max-rss-drift-percent %.2f\n", drift.max_drift_percent,
                    *o.max_rss_drift_percent);
        return false;
    }
    return true;
}

int run(const Options& o) {
    install_signal_handlers();
    // The backing file: new or empty, since FileBackingStore truncates what it opens.
    const std::string backing_path =
        !o.backing.empty() ? o.backing : "/var/tmp/zpage-soak." + std::to_string(::getpid()) + ".backing";
    if (struct stat st{}; ::stat(backing_path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size != 0)) {
        std::fprintf(stderr, "zpage-soak: %s exists and is not an empty regular file; name a new one with --backing\n",
                     backing_path.c_str());
        return 2;
    }
    std::snprintf(backing_path_for_signals, sizeof backing_path_for_signals, "%s", backing_path.c_str());
    struct RemoveBacking {  // after the stores (declared before them), on every way out
        std::string path;
        ~RemoveBacking() { ::unlink(path.c_str()); }
    } remove_backing{backing_path};

    std::optional<Soak> soak;
    try {
        soak.emplace(o, backing_path);
    } catch (const zpage::RegionError& e) {
        std::fprintf(stderr, "zpage-soak: %s\n(--region-mib 0 runs the soak without the region)\n", e.what());
        return 2;
    }
    soak->print_setup();
    const double duration = o.minutes * 60;
    const Timeline timeline = soak->run_for(duration);
    if (timeline.interrupted)
        std::printf("zpage-soak: stopped by signal %d after %.1f s\n", static_cast<int>(stop_signal), timeline.ran);
    std::printf("zpage-soak: %.1f s done; verifying every page once more\n", timeline.ran);
    std::fflush(stdout);
    soak->finish();

    // Warm-up ends at warmup_percent of the run, or once every part has stored each of its pages
    // once, whichever is later.
    const double warm_end = std::max(duration * o.warmup_percent / 100,
                                     timeline.prefill_done < 0 ? timeline.ran + 1 : timeline.prefill_done);
    const RssDrift drift = rss_drift(timeline.samples, warm_end);
    std::printf("\nzpage-soak summary after %.1f s\n", timeline.ran);
    soak->print_parts();
    const bool drift_ok = print_rss(o, timeline, drift);
    const std::uint64_t failures = soak->failures();
    std::printf("  failures: %" PRIu64 "\n", failures);
    char drift_text[32] = "-", warm_text[32] = "-";
    if (drift.known) {
        std::snprintf(drift_text, sizeof drift_text, "%+.2f", drift.max_drift_percent);
        std::snprintf(warm_text, sizeof warm_text, "%.1f", in_mib(drift.after_warmup));
    }
    // One line for scripts (benchmarks/soak.sh reads it).
    std::printf("RESULT part=zpage-soak ops=%" PRIu64 " failures=%" PRIu64 " rss_after_warmup_mib=%s rss_max_drift_pct=%s "
                "seconds=%.1f\n",
                soak->ops(), failures, warm_text, drift_text, timeline.ran);
    std::fflush(stdout);
    soak.reset();
    if (failures != 0) return 1;
    if (timeline.interrupted) return 130;
    return drift_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    try {
        options = parse_options(argc, argv);
    } catch (const BadFlag& e) {
        std::fprintf(stderr, "zpage-soak: %s\n", e.what());
        return 2;
    }
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zpage-soak: %s\n", e.what());
        if (backing_path_for_signals[0] != '\0') ::unlink(backing_path_for_signals);
        return 2;
    }
}
