// zpage-bench: compares codecs and configurations on real memory pages in a zpage store, side by
// side with the kernel's zram. Run with --help for the options.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backing.hpp"
#include "codec_spec.hpp"
#include "inputs.hpp"
#include "kernel_zram.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "run_codec.hpp"
#include "run_zpage.hpp"
#include "types.hpp"

namespace zpage_bench {
namespace {

constexpr const char* usage_text = R"(usage: zpage-bench [options] [FILE...]

Stores real memory pages with each codec in a zpage store, reads them back and verifies them,
and reports memory, throughput and latency, side by side with the kernel's zram (--kernel).

inputs (without any: pages the tool gathers itself, from a child process's heap and from this
machine's installed libraries)
  FILE               a flat file of pages; FILE.zst is decompressed on the fly
  --pid PID          the resident, writable, private memory of a live process (repeatable)
  --ignore-tail      drop the bytes after a file's last whole page instead of refusing the file

options
  --algo LIST        comma-separated codecs: lz4, lz4-N (acceleration), lz4hc-N, zstd-N (levels;
                     zstd--N for negative ones), identity; on the kernel side only: lzo, lzo-rle
                     (default: lz4,lz4hc-9,zstd-1,zstd-3,tiered, plus lzo-rle with --kernel)
                     A+B[:N], zpage only: store with A (lz4, lz4-N), then mark every page idle
                     and recompress it with B (zstd-N, lz4hc-N), each page alone or in units of
                     N neighbouring pages (1 to 16, default 1); ratio, memory and loads are
                     after the recompression, store/s is A's; a line under the table gives the
                     recompression's figures. tiered: the recommended pair, lz4+zstd-3:16.
                     With --backing the reclaimer recompresses idle pages with B before it
                     writes any back; --baseline adds no codec-alone row for a pair but times
                     B alone on its units (see --baseline)
  --threads N        split the pages among N threads storing, then loading, at once (default 1)
  --page-size N      4096 (default) or 16384
  --steady           time stores that replace pages already stored (an untimed pass stores them
                     first), on both engines: a store in use rather than a fresh one, whose
                     memory the OS has yet to map page by page
  --kernel           also run every codec the kernel has through /dev/zram0 (root, device unused)
  --kernel=auto      the same, but an occupied device is a note instead of an error
  --baseline         also time each codec alone on the same pages: compressed into a preallocated
                     arena and decompressed back, no store (engine "codec-alone"), the limit a
                     store can approach; for an A+B[:N] pair, B alone compressing the input in
                     the units recompression forms (N consecutive pages each, the last one what
                     is left), on one thread as recompression runs, compression only: its speed
                     and recompression's against it (which includes decoding every page from A)
                     follow the recompression's line
  --backing FILE     with --mem-limit: zpage's stores hold at most MiB each, their reclaimer
  --mem-limit MiB    writing pages back to FILE (a new or empty file, removed after); adds the
                     peak memory, bd_writes, bd_reads and writeback MiB/s (JSON: also
                     written_back_pages, those on FILE once the stores are done), and the speed
                     of 1 MiB O_DIRECT writes to the same file system (dd bs=1M oflag=direct)
  --json             one JSON object per result on stdout instead of the table (recompress_mib_s
                     and recompressed_pages: 0 but for A+B; codec_unit_mib_s, B alone on the
                     same units: 0 but for A+B with --baseline)
  --plot FILE.svg    write a chart of ratio against store and load throughput
  -h, --help         this text

exit status: 0 when every page read back intact, 1 when one did not, 2 for bad input
)";

enum class KernelMode { off, required, automatic };

struct Options {
    std::vector<std::string> files;
    std::vector<pid_t> pids;
    bool ignore_tail = false;
    std::optional<std::string> algos;
    unsigned threads = 1;
    std::size_t page_size = 4096;
    KernelMode kernel = KernelMode::off;
    bool json = false;
    bool steady = false;
    bool baseline = false;
    std::optional<std::string> plot;
    std::optional<std::string> backing;
    std::optional<std::size_t> mem_limit_mib;
};

template <class T>
T parse_number(std::string_view option, std::string_view text, T lo, T hi) {
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi)
        throw BadInput(std::string(option) + " takes a number from " + std::to_string(lo) + " to " +
                       std::to_string(hi) + ", not '" + std::string(text) + "'");
    return value;
}

std::optional<Options> parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw BadInput(std::string(arg) + " needs a value (see --help)");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            std::fputs(usage_text, stdout);
            return std::nullopt;
        } else if (arg == "--pid") {
            o.pids.push_back(parse_number<pid_t>(arg, value(), 1, std::numeric_limits<pid_t>::max()));
        } else if (arg == "--algo") {
            o.algos = std::string(value());
        } else if (arg == "--threads") {
            o.threads = parse_number<unsigned>(arg, value(), 1, 256);
        } else if (arg == "--page-size") {
            o.page_size = parse_number<std::size_t>(arg, value(), 1, std::size_t{1} << 20);
            if (std::find(std::begin(supported_page_sizes), std::end(supported_page_sizes), o.page_size) ==
                std::end(supported_page_sizes))
                throw BadInput("--page-size takes 4096 or 16384, not " + std::to_string(o.page_size));
        } else if (arg == "--kernel") {
            o.kernel = KernelMode::required;
        } else if (arg == "--kernel=auto") {
            o.kernel = KernelMode::automatic;
        } else if (arg == "--json") {
            o.json = true;
        } else if (arg == "--steady") {
            o.steady = true;
        } else if (arg == "--baseline") {
            o.baseline = true;
        } else if (arg == "--plot") {
            o.plot = std::string(value());
        } else if (arg == "--backing") {
            o.backing = std::string(value());
        } else if (arg == "--mem-limit") {
            o.mem_limit_mib = parse_number<std::size_t>(arg, value(), 1, std::size_t{1} << 30);
        } else if (arg == "--ignore-tail") {
            o.ignore_tail = true;
        } else if (arg.size() > 1 && arg[0] == '-') {
            throw BadInput("unknown option '" + std::string(arg) + "' (see --help)");
        } else {
            o.files.emplace_back(arg);
        }
    }
    if (o.backing.has_value() != o.mem_limit_mib.has_value())
        throw BadInput("--backing and --mem-limit go together: a limit needs somewhere to write pages back to, and a "
                       "backing file a limit to make pages go there");
    if (o.backing) check_backing_path(*o.backing);
    return o;
}

// Why the kernel runs no row of `spec` (one the kernel's zram cannot run, or none it has).
std::string kernel_unavailable(const CodecSpec& spec, const KernelProbe& kernel) {
    if (spec.recompression)
        return "no kernel counterpart (zram's recompress is not driven here); set against the kernel's default "
               "when --algo names " +
               std::string(kernel_default_algo);
    if (!spec.kernel_name()) return "the kernel has no " + spec.name + " codec";
    std::string offered;
    for (const auto& a : kernel.algorithms) offered += (offered.empty() ? "" : ", ") + a;
    return "this kernel's zram offers " + offered;
}

int run(int argc, char** argv) {
    const std::optional<Options> parsed = parse_options(argc, argv);
    if (!parsed) return 0;
    const Options& o = *parsed;

    std::string algo_list = o.algos.value_or(std::string(default_algos));
    if (!o.algos && o.kernel != KernelMode::off) algo_list += "," + std::string(kernel_default_algo);
    const std::vector<CodecSpec> specs = parse_algos(algo_list);

    KernelProbe kernel;
    if (o.kernel != KernelMode::off) {
        kernel = probe_kernel_zram();
        if (kernel.state == KernelProbe::State::occupied && o.kernel == KernelMode::required) throw BadInput(kernel.why);
        if (kernel.state != KernelProbe::State::available)
            std::fprintf(stderr, "zpage-bench: no kernel comparison: %s\n", kernel.why.c_str());
    }
    const bool with_kernel = o.kernel != KernelMode::off && kernel.state == KernelProbe::State::available;

    std::vector<PageSet> inputs;
    for (const std::string& file : o.files) inputs.push_back(read_page_file(file, o.page_size, o.ignore_tail));
    for (const pid_t pid : o.pids) inputs.push_back(snapshot_process(pid, o.page_size));
    if (inputs.empty()) inputs = default_inputs(o.page_size, std::cerr);
    for (const PageSet& input : inputs) input.touch();

    // Plan the runs first, so that the progress bar knows the whole amount of work.
    enum class Engine { zpage, kernel_zram, codec_alone };
    struct Job {
        const PageSet* input;
        const CodecSpec* spec;
        Engine engine;
    };
    std::vector<Job> jobs;
    std::vector<Unavailable> unavailable;
    std::size_t units = 0;
    const std::size_t zpage_passes = o.steady ? 3 : 2;  // stores (twice with --steady), then loads; A+B: one more
    for (const PageSet& input : inputs) {
        for (const CodecSpec& spec : specs) {
            if (spec.runs_on_zpage() && o.baseline && !spec.recompression) {
                jobs.push_back({&input, &spec, Engine::codec_alone});
                units += 2 * input.pages();
            }
            if (spec.runs_on_zpage()) {
                jobs.push_back({&input, &spec, Engine::zpage});
                units += (zpage_passes + (spec.recompression ? 1 : 0)) * input.pages();
                if (spec.recompression && o.baseline) units += input.pages();  // B alone on its units
            }
            if (!with_kernel) continue;
            const std::optional<std::string> name = spec.kernel_name();
            if (name && std::find(kernel.algorithms.begin(), kernel.algorithms.end(), *name) != kernel.algorithms.end() &&
                (!spec.kernel_level() || kernel.has_algorithm_params)) {
                jobs.push_back({&input, &spec, Engine::kernel_zram});
                units += kernel_zram_passes(o.steady) * input.pages();
            } else {
                unavailable.push_back({input.name, spec.name, kernel_unavailable(spec, kernel)});
            }
        }
    }
    if (!with_kernel)
        for (const CodecSpec& spec : specs)
            if (!spec.runs_on_zpage())
                std::fprintf(stderr, "zpage-bench: %s runs on the kernel side only; skipped\n", spec.name.c_str());

    std::optional<BackingSpec> backing;
    std::optional<RemoveOnExit> remove_backing;
    double direct_write = 0;
    if (o.backing) {
        backing = BackingSpec{*o.backing, *o.mem_limit_mib << 20};
        remove_backing.emplace(*o.backing);
        direct_write = direct_write_mib_s(*o.backing + ".dd", std::size_t{256} << 20);
    }

    ProgressBar bar(units);
    const Progress progress = [&](std::size_t n) { bar.advance(n); };
    std::vector<RunResult> results;
    for (const Job& job : jobs) {
        if (interrupted.load()) throw Interrupted();
        RunResult r;
        switch (job.engine) {
        case Engine::zpage:
            bar.set_label(job.input->name + " zpage " + job.spec->name);
            r = run_zpage(*job.input, *job.spec, o.threads, progress, o.steady, backing ? &*backing : nullptr);
            r.direct_write_mib_s = direct_write;
            if (job.spec->recompression && o.baseline) {
                bar.set_label(job.input->name + " codec-alone " + job.spec->recompression->name + " in units");
                measure_codec_units(*job.input, *job.spec->recompression, progress, r);
            }
            break;
        case Engine::kernel_zram:
            bar.set_label(job.input->name + " kernel-zram " + job.spec->name);
            r = run_kernel_zram(*job.input, *job.spec->kernel_name(), job.spec->kernel_level(), job.spec->name,
                                o.threads, progress, o.steady);
            break;
        case Engine::codec_alone:
            bar.set_label(job.input->name + " codec-alone " + job.spec->name);
            r = run_codec_alone(*job.input, *job.spec, o.threads, progress);
            break;
        }
        if (o.json) {
            bar.finish();
            print_json(stdout, r);
        }
        results.push_back(std::move(r));
    }
    bar.finish();

    if (!o.json) {
        print_table(stdout, results, unavailable);
    } else {
        for (const auto& u : unavailable)
            std::fprintf(stderr, "zpage-bench: kernel-zram %s on %s: unavailable: %s\n", u.algo.c_str(), u.input.c_str(),
                         u.why.c_str());
    }
    if (o.plot && !write_svg(*o.plot, results)) throw BadInput("cannot write " + *o.plot + ": " + std::strerror(errno));

    const bool all_verified =
        std::all_of(results.begin(), results.end(), [](const RunResult& r) { return r.verified; });
    if (!all_verified) std::fprintf(stderr, "zpage-bench: some pages did not read back intact (verified: NO)\n");
    for (const RunResult& r : results) {
        if (!r.failure.empty())
            std::fprintf(stderr, "zpage-bench: %s %s on %s: %s\n", r.engine.c_str(), r.algo.c_str(), r.input.c_str(),
                         r.failure.c_str());
    }
    return all_verified ? 0 : 1;
}

}  // namespace
}  // namespace zpage_bench

int main(int argc, char** argv) {
    // The first Ctrl-C lets a kernel run reset /dev/zram0 before exiting; a second one kills.
    struct sigaction on_signal {};
    on_signal.sa_handler = [](int) { zpage_bench::interrupted.store(true); };
    on_signal.sa_flags = SA_RESETHAND;
    sigemptyset(&on_signal.sa_mask);
    ::sigaction(SIGINT, &on_signal, nullptr);
    ::sigaction(SIGTERM, &on_signal, nullptr);
    try {
        return zpage_bench::run(argc, argv);
    } catch (const zpage_bench::Interrupted&) {
        std::fprintf(stderr, "\nzpage-bench: interrupted\n");
        return 130;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "zpage-bench: out of memory\n");
        return 2;
    } catch (const std::exception& e) {  // BadInput and whatever else stops a run: one line
        std::fprintf(stderr, "zpage-bench: %s\n", e.what());
        return 2;
    }
}
