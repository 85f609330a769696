// bench_region_walk: a walk over a compressed region larger than its resident budget, one byte
// read per page touched, in random and in Zipf-like order, with the pages of a real heap; and the
// floor under it, the bare userfaultfd round trip (a handler copying a page ready in memory).
// Reports the MiB walked per second and the latency of the touches that faulted (those over
// 1 us), p50/p99/p99.9.
//
// Beside them, the kernel's way of doing the same (kernel_walk.hpp): the same walks, in a child
// process whose memory cgroup limit is the budget, with zram (lz4) as its swap and page-cluster 0;
// as root with /dev/zram0 unused, else one line says why its rows are missing. Then zpage's
// targets for a region, each a ratio of two figures of the same run; with --runs N, the whole
// comparison N times and the medians of the ratios.
//
//   bench_region_walk [--region MiB] [--budget MiB] [--file PAGES[.zst]] [--runs N] [--no-kernel]
//                     (512, 64, python-heap, 1)
#include <zpage/adapters/compressed_region.hpp>
#include <zpage/zpage.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kernel_walk.hpp"
#include "walk.hpp"
#include "zpage_bench/inputs.hpp"

namespace {

using namespace region_walk;

void print(const char* engine, const char* order, const WalkResult& r) {
    std::printf("  %-22s %-7s %9.1f %9zu %9zu %9.1f %9.1f %9.1f\n", engine, order, r.mib_s, r.touches, r.slow, r.p50_us,
                r.p99_us, r.p999_us);
}

// The floor: every touch faults, and a handler resolves it with UFFDIO_COPY of a ready page.
WalkResult bare_round_trip(std::size_t pages) {
    std::string why;
    const int fd = zpage::detail::uffd::open_fd(why);
    if (fd < 0) throw std::runtime_error(why);
    std::uint64_t offered = 0;
    if (!zpage::detail::uffd::handshake(fd, 0, offered)) throw std::runtime_error("userfaultfd handshake failed");
    const std::size_t bytes = pages * page;
    auto* region = static_cast<std::byte*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (region == MAP_FAILED) throw std::runtime_error("mmap failed");
    ::madvise(region, bytes, MADV_NOHUGEPAGE);
    if (!zpage::detail::uffd::register_missing(fd, region, bytes)) throw std::runtime_error("register failed");
    alignas(page) static std::byte ready[page];
    std::memset(ready, 7, page);
    std::atomic<bool> stop{false};
    std::thread handler([&] {
        pollfd pfd{fd, POLLIN, 0};
        uffd_msg msg[16];
        while (!stop.load(std::memory_order_relaxed)) {
            if (::poll(&pfd, 1, 10) <= 0) continue;
            const ssize_t got = ::read(fd, msg, sizeof msg);
            for (ssize_t m = 0; m < got / static_cast<ssize_t>(sizeof(uffd_msg)); ++m) {
                const std::uintptr_t at = msg[m].arg.pagefault.address & ~std::uintptr_t{page - 1};
                static_cast<void>(zpage::detail::uffd::copy(fd, reinterpret_cast<void*>(at), ready, page));
            }
        }
    });
    std::vector<std::size_t> order(pages);
    for (std::size_t p = 0; p < pages; ++p) order[p] = p;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
    const WalkResult r = walk(region, order);
    stop = true;
    handler.join();
    ::munmap(region, bytes);
    ::close(fd);
    return r;
}

// The floor of FaultService::faulting_thread: every touch faults, and the touching thread's SIGBUS
// handler resolves it with UFFDIO_COPY of a ready page, through zpage's own signal handler.
class ReadyPageRange final : zpage::detail::SignalServedRange {
public:
    explicit ReadyPageRange(int fd) : fd_(fd) { std::memset(ready_, 7, page); }
    zpage::detail::SignalServedRange* range() noexcept { return this; }

private:
    bool serve_fault(std::uintptr_t address, zpage::detail::FaultAccess) noexcept override {
        static_cast<void>(zpage::detail::uffd::copy(fd_, reinterpret_cast<void*>(address & ~std::uintptr_t{page - 1}),
                                                    ready_, page));
        return true;
    }
    int fd_;
    alignas(page) std::byte ready_[page];
};

WalkResult bare_in_faulting_thread(std::size_t pages) {
    std::string why;
    const int fd = zpage::detail::uffd::open_fd(why);
    if (fd < 0) throw std::runtime_error(why);
    std::uint64_t offered = 0;
    if (!zpage::detail::uffd::handshake(fd, UFFD_FEATURE_SIGBUS, offered))
        throw std::runtime_error("userfaultfd handshake failed");
    const std::size_t bytes = pages * page;
    auto* region = static_cast<std::byte*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (region == MAP_FAILED) throw std::runtime_error("mmap failed");
    ::madvise(region, bytes, MADV_NOHUGEPAGE);
    auto range = std::make_unique<ReadyPageRange>(fd);
    const auto begin = reinterpret_cast<std::uintptr_t>(region);
    if (!zpage::detail::FaultSignal::enter(begin, begin + bytes, range->range(), why)) throw std::runtime_error(why);
    if (!zpage::detail::uffd::register_missing(fd, region, bytes)) throw std::runtime_error("register failed");
    std::vector<std::size_t> order(pages);
    for (std::size_t p = 0; p < pages; ++p) order[p] = p;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
    const WalkResult r = walk(region, order);
    zpage::detail::FaultSignal::leave(range->range());
    ::munmap(region, bytes);
    ::close(fd);
    return r;
}

std::string service_name(zpage::FaultService service) {
    return service == zpage::FaultService::faulting_thread ? "faulting thread" : "handler thread";
}

// zpage's targets for a region, each the ratio of two figures of one run.
struct Target {
    const char* what;
    double limit;
    bool at_least;  // met when the ratio is >= limit; else when it is <= limit
};
constexpr Target targets[] = {
    {"MiB/s random, zpage / kernel", 1.0, true},
    {"MiB/s zipf, zpage / kernel", 1.0, true},
    {"fault p99 random, zpage / kernel", 0.5, false},
    {"fault p50 random, zpage / bare userfaultfd", 1.3, false},
};
using Ratios = std::array<std::optional<double>, std::size(targets)>;

// zpage and kernel hold one row per order, in the orders' order.
Ratios ratios(const std::vector<Order>& orders, const std::vector<WalkResult>& zpage, const KernelWalk& kernel,
              const WalkResult& bare) {
    const auto ratio = [](double a, double b) { return b > 0 ? std::optional<double>(a / b) : std::nullopt; };
    Ratios r;
    for (std::size_t i = 0; i < orders.size(); ++i) {
        const bool random = std::string_view(orders[i].name) == "random";
        if (random) r[3] = ratio(zpage[i].p50_us, bare.p50_us);
        if (kernel.rows.size() != orders.size()) continue;
        r[random ? 0 : 1] = ratio(zpage[i].mib_s, kernel.rows[i].walk.mib_s);
        if (random) r[2] = ratio(zpage[i].p99_us, kernel.rows[i].walk.p99_us);
    }
    return r;
}

void print_targets(const char* title, const Ratios& r) {
    std::printf("%s\n", title);
    for (std::size_t t = 0; t < r.size(); ++t) {
        const Target& target = targets[t];
        std::printf("  %-44s ", target.what);
        if (!r[t]) {
            std::printf("%7s   target %s %.1fx   (no figure to compare)\n", "-", target.at_least ? ">=" : "<=",
                        target.limit);
            continue;
        }
        const bool met = target.at_least ? *r[t] >= target.limit : *r[t] <= target.limit;
        std::printf("%6.2fx   target %s %.1fx   %s\n", *r[t], target.at_least ? ">=" : "<=", target.limit,
                    met ? "met" : "not met");
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t region_mib = 512, budget_mib = 64, runs = 1;
    bool kernel = true, clean_copies = true;
    std::vector<zpage::FaultService> services = {zpage::FaultService::handler_thread,
                                                 zpage::FaultService::faulting_thread};
    std::string file = std::string(ZPAGE_CORPORA_DIR) + "/python-heap.pages.zst";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool valued = i + 1 < argc;
        if (arg == "--region" && valued) region_mib = std::stoul(argv[++i]);
        else if (arg == "--budget" && valued) budget_mib = std::stoul(argv[++i]);
        else if (arg == "--file" && valued) file = argv[++i];
        else if (arg == "--runs" && valued) runs = std::max<std::size_t>(1, std::stoul(argv[++i]));
        else if (arg == "--no-kernel") kernel = false;
        else if (arg == "--no-clean-copies") clean_copies = false;
        else if (arg == "--service" && valued && std::string_view(argv[i + 1]) == "handler") {
            services = {zpage::FaultService::handler_thread};
            ++i;
        } else if (arg == "--service" && valued && std::string_view(argv[i + 1]) == "faulting") {
            services = {zpage::FaultService::faulting_thread};
            ++i;
        }
        else {
            std::fprintf(stderr, "usage: bench_region_walk [--region MiB] [--budget MiB] [--file PAGES] [--runs N] "
                                 "[--no-kernel] [--no-clean-copies] [--service handler|faulting]\n");
            return 2;
        }
    }
    const zpage_bench::PageSet input = zpage_bench::read_page_file(file, page, true);
    const std::size_t pages = (region_mib << 20) / page;
    const std::vector<Order> orders = walk_orders(pages);  // both sides walk these
    std::vector<std::vector<Ratios>> all_ratios(services.size());
    for (std::size_t run = 1; run <= runs; ++run) {
        if (runs > 1) std::printf("run %zu of %zu\n", run, runs);
        std::printf("%s: %zu pages of %s over a region of %zu MiB, %zu MiB resident budget; touches over 1 us\n",
                    file.c_str(), input.pages(), "real memory", region_mib, budget_mib);
        std::printf("  %-22s %-7s %9s %9s %9s %9s %9s %9s\n", "engine", "order", "MiB/s", "touches", "faulted",
                    "p50 us", "p99 us", "p99.9 us");

        std::vector<std::vector<WalkResult>> zpage_rows(services.size());
        for (std::size_t service = 0; service < services.size(); ++service) {
            const std::string name = "zpage " + service_name(services[service]);
            const char* engine = name.c_str();
            // A pool of its own, not PagePool::shared(), whose refill thread never ends: the
            // kernel's walk forks, and forks from a process of one thread only.
            zpage::PagePool pool;
            zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages, .page_pool = &pool});
            zpage::CompressedRegion<zpage::Lz4Store> region(
                store, {.bytes = pages * page, .resident_budget_bytes = budget_mib << 20,
                        .fault_service = services[service], .keep_clean_copies = clean_copies});
            for (std::size_t p = 0; p < pages; ++p)
                std::memcpy(region.data() + p * page, input.bytes.data() + (p % input.pages()) * page, page);
            for (const Order& order : orders) {
                const zpage::RegionStats before = region.stats();
                zpage_rows[service].push_back(walk(region.data(), order.pages));
                print(engine, order.name, zpage_rows[service].back());
                const zpage::RegionStats after = region.stats();
                std::printf("  %-22s faults %llu, swap-outs %llu (%llu direct), store %.1f MiB\n", "",
                            static_cast<unsigned long long>(after.faults - before.faults),
                            static_cast<unsigned long long>(after.swap_outs - before.swap_outs),
                            static_cast<unsigned long long>(after.direct_evictions - before.direct_evictions),
                            static_cast<double>(store.stats().mem_used_total) / (1 << 20));
            }
        }  // the region's and the store's threads are joined here: the kernel's walk forks

        KernelWalk kernel_walk;
        kernel_walk.missing = "skipped (--no-kernel)";
        try {
            if (kernel) kernel_walk = run_kernel_walk(input.bytes, pages * page, budget_mib << 20, orders);
        } catch (const zpage_bench::Interrupted&) {
            std::fprintf(stderr, "bench_region_walk: interrupted; the kernel's set-up is undone\n");
            return 130;
        }
        if (!kernel_walk.missing.empty()) std::printf("  kernel rows missing: %s\n", kernel_walk.missing.c_str());
        for (std::size_t i = 0; i < kernel_walk.rows.size(); ++i) {
            const KernelRow& row = kernel_walk.rows[i];
            print("kernel zram lz4 swap", orders[i].name, row.walk);
            std::printf("  %-22s pswpin %llu, pswpout %llu, zram %.1f MiB of pages in %.1f MiB\n", "",
                        static_cast<unsigned long long>(row.swap_ins), static_cast<unsigned long long>(row.swap_outs),
                        static_cast<double>(row.zram_orig_bytes) / (1 << 20),
                        static_cast<double>(row.zram_used_bytes) / (1 << 20));
        }
        if (!kernel_walk.setup.empty()) std::printf("  kernel: %s\n", kernel_walk.setup.c_str());
        if (!kernel_walk.note.empty()) std::printf("  note: %s\n", kernel_walk.note.c_str());

        const WalkResult bare = bare_round_trip(std::min<std::size_t>(pages, 32768));
        print("bare userfaultfd", "random", bare);
        print("bare, faulting thread", "random", bare_in_faulting_thread(std::min<std::size_t>(pages, 32768)));
        for (std::size_t service = 0; service < services.size(); ++service) {
            all_ratios[service].push_back(ratios(orders, zpage_rows[service], kernel_walk, bare));
            print_targets(("targets, " + service_name(services[service]) + " (this run)").c_str(),
                          all_ratios[service].back());
        }
    }
    for (std::size_t service = 0; runs > 1 && service < services.size(); ++service) {
        Ratios medians;
        for (std::size_t t = 0; t < medians.size(); ++t) {
            std::vector<double> values;
            for (const Ratios& r : all_ratios[service])
                if (r[t]) values.push_back(*r[t]);
            if (!values.empty()) medians[t] = median(values);
        }
        const std::string title =
            "targets, " + service_name(services[service]) + " (medians of " + std::to_string(runs) + " runs)";
        print_targets(title.c_str(), medians);
    }
    return 0;
}
