// zpage-bench --kernel: the probe never fails and says why the kernel's zram cannot be used; where
// it can (root, an unused /dev/zram0), real pages go through it and back verified, with plausible
// mm_stat figures, and the device is left reset whatever happens; a device in use is left alone.
#include "../benchmarks/zpage_bench/kernel_zram.hpp"

#include "bench_fixtures.hpp"
#include "fixtures.hpp"

namespace {
using zpage_test::bad_input_message;

using zpage_bench::BadInput;
using zpage_bench::KernelProbe;

std::string zram_attribute(const std::string& name) {
    std::string text;
    if (!zpage_bench::posix::read_small_file("/sys/block/zram0/" + name, text)) return "(unreadable)";
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

bool device_is_reset() { return zram_attribute("disksize") == "0" && zram_attribute("initstate") == "0"; }

zpage_bench::PageSet real_pages(std::size_t count) {
    zpage_bench::PageSet set;
    set.name = "kernel-test";
    zpage_test::PageSource source(zpage_test::test_seed());
    for (std::size_t i = 0; i < count; ++i) {
        const zpage_test::Page page = source.next();
        set.bytes.insert(set.bytes.end(), page.begin(), page.end());
    }
    return set;
}

bool offers(const KernelProbe& probe, const std::string& algorithm) {
    return std::find(probe.algorithms.begin(), probe.algorithms.end(), algorithm) != probe.algorithms.end();
}

// Returns from the test, with the probe's reason, unless the kernel's zram can be used.
#define REQUIRE_KERNEL_ZRAM(probe)                                                      \
    do {                                                                                \
        if ((probe).state != KernelProbe::State::available) {                           \
            MESSAGE("skipped: the kernel's zram cannot be used here: " << (probe).why); \
            return;                                                                     \
        }                                                                               \
    } while (0)

}  // namespace

TEST_CASE("the probe gives a state with its reason, and never changes the device") {
    const std::string disksize_before = zram_attribute("disksize");
    const KernelProbe probe = zpage_bench::probe_kernel_zram();
    CHECK(zram_attribute("disksize") == disksize_before);
    switch (probe.state) {
    case KernelProbe::State::available:
        CHECK(probe.why.empty());
        CHECK_FALSE(probe.algorithms.empty());
        for (const std::string& name : probe.algorithms) CHECK(name.find_first_of("[] ") == std::string::npos);
        CHECK(device_is_reset());
        break;
    case KernelProbe::State::unavailable:
        CHECK_FALSE(probe.why.empty());
        CHECK(probe.why.find('\n') == std::string::npos);
        MESSAGE("kernel zram unavailable: " << probe.why);
        break;
    case KernelProbe::State::occupied:
        CHECK(probe.why.find("/dev/zram0 is in use (") == 0);
        MESSAGE("kernel zram occupied: " << probe.why);
        break;
    }
}

TEST_CASE("real pages go through the kernel's zram and back verified, and the device is left reset") {
    const KernelProbe probe = zpage_bench::probe_kernel_zram();
    REQUIRE_KERNEL_ZRAM(probe);
    const zpage_bench::PageSet pages = real_pages(384);
    for (const std::string algorithm : {"lz4", "lzo-rle"}) {
        if (!offers(probe, algorithm)) continue;
        for (const unsigned threads : {1u, 2u}) {
            CAPTURE(algorithm);
            CAPTURE(threads);
            std::size_t progressed = 0;
            const zpage_bench::RunResult r = zpage_bench::run_kernel_zram(
                pages, algorithm, std::nullopt, "label-" + algorithm, threads, [&](std::size_t n) { progressed += n; });
            CHECK(device_is_reset());
            CHECK(r.verified);
            CHECK(r.engine == "kernel-zram");
            CHECK(r.algo == "label-" + algorithm);
            CHECK(r.input == "kernel-test");
            CHECK(r.threads == threads);
            CHECK(r.pages == pages.pages());
            CHECK(r.orig_bytes == pages.pages() * 4096);
            CHECK(r.compr_bytes > 0);
            CHECK(r.compr_bytes < r.orig_bytes);
            // zram's table (16 B per page of its 1 MiB-rounded disksize) on top of zsmalloc's pages.
            CHECK(r.mem_used_bytes >= r.compr_bytes + (std::size_t{1} << 20) / 4096 * 16);
            CHECK(r.same_pages + r.huge_pages <= r.pages);
            CHECK(r.store_mib_s > 0);
            CHECK(r.load_mib_s > 0);
            CHECK(r.store_p50_us > 0);
            CHECK(r.store_p99_us >= r.store_p50_us);
            CHECK(r.load_p99_us >= r.load_p50_us);
            CHECK(progressed == 2 * pages.pages());
        }
    }
}

TEST_CASE("16 KiB pages go through the kernel's 4 KiB zram pages") {
    const KernelProbe probe = zpage_bench::probe_kernel_zram();
    REQUIRE_KERNEL_ZRAM(probe);
    zpage_bench::PageSet pages = real_pages(384);
    pages.page_size = 16384;
    const zpage_bench::RunResult r = zpage_bench::run_kernel_zram(pages, probe.algorithms.front(), std::nullopt,
                                                                  probe.algorithms.front(), 1, nullptr);
    CHECK(device_is_reset());
    CHECK(r.verified);
    CHECK(r.pages == 96);
    CHECK(r.orig_bytes == 384 * 4096);
    CHECK(r.same_pages + r.huge_pages <= r.pages);
}

TEST_CASE("a level reaches the kernel through algorithm_params: lz4 takes it as its acceleration") {
    const KernelProbe probe = zpage_bench::probe_kernel_zram();
    REQUIRE_KERNEL_ZRAM(probe);
    if (!probe.has_algorithm_params || !offers(probe, "lz4")) {
        MESSAGE("skipped: no algorithm_params (Linux 6.12+) or no lz4");
        return;
    }
    const zpage_bench::PageSet pages = real_pages(384);
    const auto run = [&](std::optional<int> level) {
        return zpage_bench::run_kernel_zram(pages, "lz4", level, "lz4", 1, nullptr);
    };
    const zpage_bench::RunResult plain = run(std::nullopt);
    const zpage_bench::RunResult fast = run(100);
    const zpage_bench::RunResult plain_again = run(std::nullopt);  // a reset forgets the level
    CHECK(device_is_reset());
    CHECK(fast.verified);
    CHECK(fast.compr_bytes > plain.compr_bytes);
    CHECK(plain_again.compr_bytes == plain.compr_bytes);
}

TEST_CASE("an algorithm the kernel lacks is refused, and a device in use is never reset") {
    const KernelProbe probe = zpage_bench::probe_kernel_zram();
    REQUIRE_KERNEL_ZRAM(probe);
    const zpage_bench::PageSet pages = real_pages(16);
    const std::string message =
        bad_input_message([&] { zpage_bench::run_kernel_zram(pages, "zstd-none", std::nullopt, "x", 1, nullptr); });
    CHECK(message.find("the kernel's zram has no algorithm \"zstd-none\" (it offers: ") == 0);
    CHECK(device_is_reset());

    // Another user's device: set up by hand here, then reset by this test, not by the tool.
    struct ResetWhenDone {
        ~ResetWhenDone() { zpage_bench::posix::write_small_file("/sys/block/zram0/reset", "1"); }
    } reset_when_done;
    REQUIRE(zpage_bench::posix::write_small_file("/sys/block/zram0/disksize", "16777216"));
    const KernelProbe busy = zpage_bench::probe_kernel_zram();
    CHECK(busy.state == KernelProbe::State::occupied);
    CHECK(busy.why.find("/dev/zram0 is in use (set up, disksize 16 MiB); zpage-bench never resets a device in use") ==
          0);
    CHECK(bad_input_message([&] {
              zpage_bench::run_kernel_zram(pages, probe.algorithms.front(), std::nullopt, "x", 1, nullptr);
          }) == busy.why);
    CHECK(zram_attribute("disksize") == "16777216");
}
