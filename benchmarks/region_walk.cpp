// bench_region_walk: a walk over a compressed region larger than its resident budget, one byte
// read per page touched, in random and in Zipf-like order, with the pages of a real heap; and the
// floor under it, the bare userfaultfd round trip (a handler copying a page ready in memory).
// Reports the MiB walked per second and the latency of the touches that faulted (those over
// 1 us), p50/p99/p99.9.
//
//   bench_region_walk [--region MiB] [--budget MiB] [--file PAGES[.zst]]   (512, 64, python-heap)
//
// The kernel's way of doing the same (the walk in a memory cgroup with zram as its swap) is the
// comparison to come; ../shared/reference/ANCHORS.md has its figures on this machine.
#include <zpage/adapters/compressed_region.hpp>
#include <zpage/zpage.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
    std::size_t region_mib = 512, budget_mib = 64;
    std::string file = std::string(ZPAGE_CORPORA_DIR) + "/python-heap.pages.zst";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--region") region_mib = std::stoul(argv[i + 1]);
        else if (arg == "--budget") budget_mib = std::stoul(argv[i + 1]);
        else if (arg == "--file") file = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: bench_region_walk [--region MiB] [--budget MiB] [--file PAGES]\n");
            return 2;
        }
    }
    const zpage_bench::PageSet input = zpage_bench::read_page_file(file, page, true);
    const std::size_t pages = (region_mib << 20) / page;
    std::printf("%s: %zu pages of %s over a region of %zu MiB, %zu MiB resident budget; touches over 1 us\n",
                file.c_str(), input.pages(), "real memory", region_mib, budget_mib);
    std::printf("  %-22s %-7s %9s %9s %9s %9s %9s %9s\n", "engine", "order", "MiB/s", "touches", "faulted", "p50 us",
                "p99 us", "p99.9 us");

    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    zpage::CompressedRegion<zpage::Lz4Store> region(
        store, {.bytes = pages * page, .resident_budget_bytes = budget_mib << 20});
    for (std::size_t p = 0; p < pages; ++p)
        std::memcpy(region.data() + p * page, input.bytes.data() + (p % input.pages()) * page, page);
    for (const Order& order : walk_orders(pages)) {
        const zpage::RegionStats before = region.stats();
        const WalkResult r = walk(region.data(), order.pages);
        print("zpage lz4 region", order.name, r);
        const zpage::RegionStats after = region.stats();
        std::printf("  %-22s faults %llu, swap-outs %llu (%llu direct), store %.1f MiB\n", "",
                    static_cast<unsigned long long>(after.faults - before.faults),
                    static_cast<unsigned long long>(after.swap_outs - before.swap_outs),
                    static_cast<unsigned long long>(after.direct_evictions - before.direct_evictions),
                    static_cast<double>(store.stats().mem_used_total) / (1 << 20));
    }
    print("bare userfaultfd", "random", bare_round_trip(std::min<std::size_t>(pages, 32768)));
    return 0;
}
