// zpage-emulator: a small machine whose RAM is a zpage::CompressedRegion with a resident budget
// below its working set, running a real program: an accounts database (workload.hpp) that fills
// most of guest RAM with a heap of records, strings, transaction lists, a hash table and a sorted
// table, looks records up and updates them, then audits all of it against the host's model
// (model.hpp). It prints its progress, the region's figures, and last a line saying whether
// guest memory verified; the exit code is 0 only when it did.
//
//   zpage-emulator [--ram MiB] [--budget MiB] [--codec lz4|zstd] [--faults handler|faulting] [--seed N]
//                  (512, 64, lz4, handler, 1)
//
// Exit codes: 0 verified, 1 not verified, 2 bad flags, 3 no region (userfaultfd not allowed: the
// message says how to allow it), 4 any other error.
#include <zpage/adapters/compressed_region.hpp>
#include <zpage/zpage.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "assembler.hpp"
#include "cpu.hpp"
#include "model.hpp"
#include "workload.hpp"

namespace {

constexpr std::uint64_t mib = 1 << 20;
constexpr std::uint64_t page_bytes = 4096;
// The bound zpage-emulator holds itself to: peak RSS <= the resident budget + the store's memory + this much, which
// holds the program, its libraries, the host's model (4 bytes per record) and the pages the
// store's page pool keeps spare.
constexpr std::uint64_t rss_slack_mib = 40;
// The heap at its fullest (while the table is sorted) takes this much of guest RAM.
constexpr unsigned fill_permille = 870;
// A guest that runs this many instructions per record past its plan is stuck.
constexpr std::uint64_t max_instructions_per_record = 100000;
constexpr std::uint64_t min_records = 256;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool under_sanitizer = true;  // its shadow memory makes RSS say nothing about the region
#else
constexpr bool under_sanitizer = false;
#endif

enum ExitCode : int { verified = 0, not_verified = 1, usage_error = 2, no_region = 3, other_error = 4 };

struct Options {
    std::uint64_t ram_mib = 512;
    std::uint64_t budget_mib = 64;
    std::string codec = "lz4";
    zpage::FaultService fault_service = zpage::FaultService::handler_thread;
    zpage::Eviction eviction = zpage::Eviction::in_place;
    bool clean_copies = true;
    std::uint64_t seed = 1;
};

constexpr const char* usage_text =
    "usage: zpage-emulator [--ram MiB] [--budget MiB] [--codec lz4|zstd] [--faults handler|faulting]\n"
    "                      [--eviction in-place|move] [--clean-copies on|off] [--seed N]\n"
    "  --ram MiB      guest RAM, a compressed region (8 to 16384; default 512)\n"
    "  --budget MiB   how much of it may be resident (1 to --ram; default 64)\n"
    "  --codec NAME   the store's codec: lz4 or zstd (default lz4)\n"
    "  --faults WHO   who serves guest RAM's faults: a handler thread, or the faulting thread itself\n"
    "                 (zpage::FaultService; default handler)\n"
    "  --eviction HOW how guest pages leave RAM: read in place and dropped in batches, or moved out\n"
    "                 one at a time (zpage::Eviction; default in-place)\n"
    "  --clean-copies ON  whether a page read back keeps its stored copy until written, so that\n"
    "                 evicting it unwritten costs no compression (RegionConfig::keep_clean_copies;\n"
    "                 default on)\n"
    "  --seed N       the workload's seed (default 1)\n"
    "Runs a guest program that fills most of guest RAM with a database and audits it; the last line\n"
    "says whether guest memory verified. Exit codes: 0 verified, 1 not verified, 2 bad flags,\n"
    "3 no region (userfaultfd not allowed), 4 other errors.\n";

[[noreturn]] void usage_failure(const std::string& why) {
    std::fprintf(stderr, "zpage-emulator: %s\n%s", why.c_str(), usage_text);
    std::exit(usage_error);
}

std::uint64_t number(std::string_view flag, std::string_view text, std::uint64_t low, std::uint64_t high) {
    std::uint64_t v = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (error != std::errc{} || end != text.data() + text.size() || v < low || v > high)
        usage_failure(std::string(flag) + " takes a whole number from " + std::to_string(low) + " to " +
                      std::to_string(high) + ", not '" + std::string(text) + "'");
    return v;
}

Options parse(int argc, char** argv) {
    Options o;
    bool budget_given = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage_text, stdout);
            std::exit(verified);
        }
        std::string_view value;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        } else if (arg == "--ram" || arg == "--budget" || arg == "--codec" || arg == "--faults" || arg == "--eviction" ||
                   arg == "--clean-copies" || arg == "--seed") {
            if (i + 1 >= argc) usage_failure(std::string(arg) + " needs a value");
            value = argv[++i];
        } else {
            usage_failure("unknown argument '" + std::string(arg) + "'");
        }
        if (arg == "--ram") {
            o.ram_mib = number(arg, value, 8, 16384);
        } else if (arg == "--budget") {
            o.budget_mib = number(arg, value, 1, 16384);
            budget_given = true;
        } else if (arg == "--codec") {
            if (value != "lz4" && value != "zstd") usage_failure("--codec is lz4 or zstd, not '" + std::string(value) + "'");
            o.codec = value;
        } else if (arg == "--faults") {
            if (value != "handler" && value != "faulting")
                usage_failure("--faults is handler or faulting, not '" + std::string(value) + "'");
            o.fault_service = value == "faulting" ? zpage::FaultService::faulting_thread : zpage::FaultService::handler_thread;
        } else if (arg == "--eviction") {
            if (value != "in-place" && value != "move")
                usage_failure("--eviction is in-place or move, not '" + std::string(value) + "'");
            o.eviction = value == "move" ? zpage::Eviction::by_move : zpage::Eviction::in_place;
        } else if (arg == "--clean-copies") {
            if (value != "on" && value != "off")
                usage_failure("--clean-copies is on or off, not '" + std::string(value) + "'");
            o.clean_copies = value == "on";
        } else if (arg == "--seed") {
            o.seed = number(arg, value, 0, UINT64_MAX);
        } else {
            usage_failure("unknown argument '" + std::string(arg) + "'");
        }
    }
    if (o.budget_mib > o.ram_mib) {
        if (budget_given) usage_failure("--budget must not exceed --ram");
        o.budget_mib = o.ram_mib;
    }
    return o;
}

// The process's peak resident set (VmHWM), in bytes.
std::uint64_t peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

double in_mib(std::uint64_t bytes) { return static_cast<double>(bytes) / static_cast<double>(mib); }

// A page the store could not return is poisoned (compressed_region.hpp): touching it raises
// SIGBUS. The emulator then cannot go on, but it still ends with the verdict line. With faults
// served in the faulting thread, each of them is a SIGBUS too, which zpage resolves first.
extern "C" void on_sigbus(int, siginfo_t* info, void* context) {
    if (info != nullptr && zpage::serve_region_fault(*info, context)) return;
    static constexpr char line[] = "guest memory verified: no: SIGBUS, a page the store could not return\n";
    static_cast<void>(::write(STDOUT_FILENO, line, sizeof line - 1));
    ::_exit(not_verified);
}

// Serves the guest's host calls: prints its phases and progress with the region's figures, and
// keeps how it stopped.
template <class Store>
class Monitor {
public:
    Monitor(const zpage::CompressedRegion<Store>& region, const Store& store)
        : region_(region), store_(store), start_(std::chrono::steady_clock::now()) {}

    emu::Resume operator()(emu::Cpu& cpu, emu::HostCall call) {
        switch (call) {
            case emu::HostCall::halt:
                halted_ = true;
                status_ = cpu.reg(emu::a0);
                return emu::Resume::stop;
            case emu::HostCall::phase:
                phase_ = cpu.string_at(cpu.reg(emu::a0), cpu.reg(emu::a1)).value_or("?");
                quarter_ = 0;
                line("started");
                return emu::Resume::run;
            case emu::HostCall::progress: {
                const std::uint64_t done = cpu.reg(emu::a0), total = cpu.reg(emu::a1);
                const std::uint64_t quarter = total == 0 ? 4 : std::min<std::uint64_t>(4, done * 4 / total);
                if (quarter > quarter_) {
                    quarter_ = quarter;
                    line(std::to_string(quarter * 25) + "%");
                }
                return emu::Resume::run;
            }
            case emu::HostCall::fail: {
                const auto message = cpu.string_at(cpu.reg(emu::a0), cpu.reg(emu::a1));
                char detail[40];
                std::snprintf(detail, sizeof detail, " (0x%" PRIx64 ")", cpu.reg(emu::a2));
                failure_ = "the guest's check failed in " + phase_ + ": " + message.value_or("?") + detail;
                return emu::Resume::stop;
            }
            case emu::HostCall::count: break;
        }
        return emu::Resume::stop;
    }

    [[nodiscard]] double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    [[nodiscard]] bool halted() const noexcept { return halted_; }
    [[nodiscard]] std::uint64_t status() const noexcept { return status_; }
    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }

private:
    void line(const std::string& what) const {
        const zpage::RegionStats r = region_.stats();
        std::printf("[%6.1fs] %-6s %-7s faults %8" PRIu64 "  swap-ins %8" PRIu64 "  swap-outs %8" PRIu64
                    "  resident %5.1f MiB  store %6.1f MiB\n",
                    seconds(), phase_.c_str(), what.c_str(), r.faults, r.swap_ins, r.swap_outs,
                    in_mib(r.resident_pages * page_bytes), in_mib(store_.stats().mem_used_total));
        std::fflush(stdout);
    }

    const zpage::CompressedRegion<Store>& region_;
    const Store& store_;
    std::chrono::steady_clock::time_point start_;
    std::string phase_ = "boot";
    std::uint64_t quarter_ = 0;
    bool halted_ = false;
    std::uint64_t status_ = 0;
    std::string failure_;
};

std::uint64_t read_u64(const std::byte* ram, std::int64_t boot_field) {
    std::uint64_t v = 0;
    std::memcpy(&v, ram + emu::model::boot_address + static_cast<std::uint64_t>(boot_field), sizeof v);
    return v;
}

void write_u64(std::byte* ram, std::int64_t boot_field, std::uint64_t v) {
    std::memcpy(ram + emu::model::boot_address + static_cast<std::uint64_t>(boot_field), &v, sizeof v);
}

// The guest's audit against the host's model: an empty string when they agree, else the first
// figure that differs.
std::string compare(const std::byte* ram, const emu::model::Expected& e) {
    namespace boot = emu::model::boot;
    if (read_u64(ram, boot::audit_done) != emu::model::boot_magic) return "the guest's audit did not complete";
    const struct {
        const char* what;
        std::int64_t field;
        std::uint64_t expected;
    } figures[] = {
        {"records", boot::audit_records, e.records},         {"operations", boot::ops_done, e.ops},
        {"balances", boot::audit_balance, e.balance},        {"versions", boot::audit_versions, e.versions},
        {"transaction counts", boot::audit_history, e.history}, {"key hashes", boot::audit_keys, e.keys},
        {"text hashes", boot::audit_texts, e.texts},         {"fixed fields", boot::audit_fixed, e.fixed},
        {"transaction stamps", boot::audit_stamps, e.stamps},
    };
    for (const auto& f : figures) {
        const std::uint64_t got = read_u64(ram, f.field);
        if (got != f.expected) {
            char text[160];
            std::snprintf(text, sizeof text, "the guest's audit sum of %s is 0x%016" PRIx64 ", the model's 0x%016" PRIx64,
                          f.what, got, f.expected);
            return text;
        }
    }
    return {};
}

template <class Store>
int run(const Options& o) {
    namespace model = emu::model;
    const std::uint64_t ram_bytes = o.ram_mib * mib, budget_bytes = o.budget_mib * mib;

    emu::Assembler assembler;
    const emu::Workload workload(assembler);
    const emu::Image image = assembler.link(model::code_address);
    const std::uint64_t program_end = model::code_address + image.bytes.size();
    const std::uint64_t heap_base = (program_end + page_bytes - 1) / page_bytes * page_bytes + model::stack_bytes;

    const model::Generator generator(o.seed);
    const model::Plan plan = model::plan(generator, ram_bytes, heap_base, fill_permille);
    if (plan.records < min_records) {
        std::fprintf(stderr, "zpage-emulator: --ram %" PRIu64 " holds only %" PRIu64 " records; give it more\n",
                     o.ram_mib, plan.records);
        return usage_error;
    }
    const auto model_start = std::chrono::steady_clock::now();
    const model::Expected expected = model::expected(generator, plan);
    const double model_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - model_start).count();

    Store store(zpage::StoreConfig{.capacity_pages = ram_bytes / page_bytes});
    std::optional<zpage::CompressedRegion<Store>> region;
    try {
        region.emplace(store, zpage::RegionConfig{.bytes = ram_bytes,
                                                  .resident_budget_bytes = budget_bytes,
                                                  .fault_service = o.fault_service,
                                                  .eviction = o.eviction,
                                                  .keep_clean_copies = o.clean_copies});
    } catch (const zpage::RegionError& e) {
        std::fprintf(stderr, "zpage-emulator: %s\n", e.what());
        return no_region;
    }
    std::byte* const ram = region->data();

    std::printf("zpage-emulator: %" PRIu64 " MiB guest RAM, %" PRIu64
                " MiB resident budget, %s store, faults served by %s, pages evicted %s%s\n",
                o.ram_mib, o.budget_mib, store.compressor().name().c_str(),
                o.fault_service == zpage::FaultService::faulting_thread ? "the faulting thread" : "a handler thread",
                o.eviction == zpage::Eviction::in_place ? "in place" : "by move",
                o.clean_copies ? "" : ", no clean copies");
    std::printf("guest program: %zu instructions at 0x%" PRIx64 ", heap at 0x%" PRIx64 "; %" PRIu64
                " records, %.0f MiB of heap at its fullest (%.1f%% of RAM); %u passes of %" PRIu64
                " operations\n",
                image.code_bytes / emu::instruction_bytes, image.base, heap_base, plan.records,
                in_mib(plan.peak_heap_bytes), 100.0 * static_cast<double>(heap_base + plan.peak_heap_bytes) /
                                                  static_cast<double>(ram_bytes),
                model::passes, plan.ops_per_pass);
    std::printf("host model: expected audit sums in %.2f s\n", model_seconds);
    std::fflush(stdout);

    // The boot block, then the program: the host's writes fault pages in like the guest's.
    namespace boot = model::boot;
    write_u64(ram, boot::magic, model::boot_magic);
    write_u64(ram, boot::ram_bytes, ram_bytes);
    write_u64(ram, boot::heap_base, heap_base);
    write_u64(ram, boot::heap_end, ram_bytes);
    write_u64(ram, boot::records, plan.records);
    write_u64(ram, boot::buckets, plan.buckets);
    write_u64(ram, boot::passes, model::passes);
    write_u64(ram, boot::ops_per_pass, plan.ops_per_pass);
    write_u64(ram, boot::hot_records, plan.hot_records);
    write_u64(ram, boot::seed, plan.seed);
    std::memcpy(ram + image.base, image.bytes.data(), image.bytes.size());

    emu::Cpu cpu(ram, ram_bytes, model::null_guard_bytes);
    cpu.set_pc(image.base);
    Monitor<Store> monitor(*region, store);
    const emu::Stop stop = cpu.run(monitor, max_instructions_per_record * (plan.records + 1000));
    const double seconds = monitor.seconds();

    std::string why;
    if (stop.why == emu::Stop::Why::trapped) {
        why = "the guest trapped: " + stop.what;
    } else if (stop.why == emu::Stop::Why::limit) {
        why = "the guest ran " + std::to_string(cpu.retired()) + " instructions without finishing";
    } else if (!monitor.failure().empty()) {
        why = monitor.failure();
    } else if (monitor.status() != 0) {
        why = "the guest halted with status " + std::to_string(monitor.status());
    } else {
        why = compare(ram, expected);
    }

    const zpage::RegionStats r = region->stats();
    const zpage::Stats s = store.stats();
    if (why.empty() && r.poisoned_pages != 0) why = std::to_string(r.poisoned_pages) + " pages were poisoned";
    const std::uint64_t touched = (r.resident_pages + r.swapped_pages) * page_bytes;
    const std::uint64_t resident = r.resident_pages * page_bytes;
    const auto saved = static_cast<std::int64_t>(touched - resident - s.mem_used_total);
    std::printf("guest: %" PRIu64 " instructions in %.1f s (%.0f MIPS)\n", cpu.retired(), seconds,
                static_cast<double>(cpu.retired()) / seconds / 1e6);
    std::printf("region: faults %" PRIu64 " (zero fills %" PRIu64 ", swap-ins %" PRIu64 "), swap-outs %" PRIu64
                " (direct %" PRIu64 "), write faults %" PRIu64 ", failed swap-outs %" PRIu64 ", poisoned pages %" PRIu64
                ", clean copies %" PRIu64 "\n",
                r.faults, r.zero_fills, r.swap_ins, r.swap_outs, r.direct_evictions, r.write_faults, r.failed_swap_outs,
                r.poisoned_pages, r.clean_copies);
    std::printf("memory: guest RAM touched %.1f MiB, resident %.1f MiB, store %.1f MiB (peak %.1f MiB; it holds %.1f MiB "
                "of pages, %.2fx), saved %.1f MiB\n",
                in_mib(touched), in_mib(resident), in_mib(s.mem_used_total), in_mib(s.mem_used_max),
                in_mib(s.orig_data_size),
                s.mem_used_total == 0 ? 0.0 : static_cast<double>(s.orig_data_size) / static_cast<double>(s.mem_used_total),
                static_cast<double>(saved) / static_cast<double>(mib));
    // Peaks against peaks: the store's peak, not its size at the end.
    const std::uint64_t rss = peak_rss_bytes();
    const std::uint64_t bound = budget_bytes + s.mem_used_max + rss_slack_mib * mib;
    std::printf("peak RSS %.1f MiB <= budget %" PRIu64 " MiB + store peak %.1f MiB + %" PRIu64 " MiB = %.1f MiB: %s\n",
                in_mib(rss), o.budget_mib, in_mib(s.mem_used_max), rss_slack_mib, in_mib(bound),
                under_sanitizer ? "not checked under a sanitizer" : rss <= bound ? "yes" : "no");
    std::printf("guest memory verified: %s%s\n", why.empty() ? "yes" : "no: ", why.c_str());
    return why.empty() ? verified : not_verified;
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse(argc, argv);
    struct sigaction action{};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    ::sigaction(SIGBUS, &action, nullptr);
    try {
        return options.codec == "zstd" ? run<zpage::ZstdStore>(options) : run<zpage::Lz4Store>(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zpage-emulator: %s\n", e.what());
        return other_error;
    }
}
