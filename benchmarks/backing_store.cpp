// FileBackingStore's write throughput against what `dd bs=1M oflag=direct` does, in one run, on
// the same bytes, to a file on the local disk (the current folder, or ZPAGE_BENCH_DIR):
//
// - dd_direct_1M: the records, packed, written with one 1 MiB O_DIRECT pwrite at a time;
// - write/in_flight:N/io_KiB:K/batch:B: the same records through FileBackingStore::write in
//   batches of B records (256: the store's default, about 0.55 MiB of these records; 1024), packed
//   into the batch buffer and written in requests of K KiB, N in flight (native AIO).
//
// The records are real pages (the corpora) compressed with lz4, or raw where lz4 leaves them above
// zram's huge threshold, each with its 16-byte record header: what writeback writes. Every
// iteration writes them all to a file whose blocks are holes (the baseline's file is punched
// whole, the store's blocks freed and trimmed, outside the timed region), so both pay the file
// system's allocation. Counters: MiB/s of record bytes, and x_dd, that over the baseline's MiB/s
// measured first in the same run (the project's target: at least 0.5).
//
// free/retain:R: the cost of free() per record, with retain_freed_bytes R (0: punch in free()).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>
#include <zpage/compressor/lz4.hpp>
#include <zpage/store.hpp>
#include <zpage/writeback/file_backing_store.hpp>
#include <zpage/writeback/record.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pages.hpp"

namespace {

constexpr std::size_t record_budget_bytes = std::size_t{64} << 20;  // records written per iteration
constexpr std::size_t dd_block_bytes = std::size_t{1} << 20;

struct Records {
    std::vector<std::vector<std::byte>> bytes;
    std::vector<std::span<const std::byte>> spans;
    std::size_t total = 0;
};

// Pages of every corpus in turn (a mix, as a store's cold pages are), compressed, up to the budget.
const Records& records() {
    static const Records all = [] {
        Records r;
        const auto& sets = zpage_bench::page_sets();
        const zpage::Lz4 lz4;
        auto ctx = lz4.make_compress_context();
        std::vector<std::byte> compressed(8192);
        const std::size_t huge = zpage::StoreConfig{}.huge_threshold(4096);
        std::size_t most = 0;
        for (const auto& s : sets) most = std::max(most, s.pages());
        for (std::size_t i = 0; i < most && r.total < record_budget_bytes; ++i) {
            for (const auto& s : sets) {
                if (i >= s.pages() || s.page_size != 4096) continue;
                const std::span<const std::byte> page(s.bytes.data() + i * 4096, 4096);
                const std::size_t n = lz4.compress(ctx, page, compressed);
                const auto payload = n == 0 || n > huge ? page : std::span<const std::byte>(compressed.data(), n);
                std::vector<std::byte> record(zpage::record_bytes(payload.size()));
                static_cast<void>(zpage::encode_record(static_cast<std::uint32_t>(r.bytes.size()), payload, record));
                r.total += record.size();
                r.bytes.push_back(std::move(record));
            }
        }
        for (const auto& b : r.bytes) r.spans.emplace_back(b);
        return r;
    }();
    return all;
}

std::filesystem::path bench_file(const char* stem) {
    const char* dir = std::getenv("ZPAGE_BENCH_DIR");
    return std::filesystem::path(dir != nullptr && *dir != '\0' ? dir : ".") /
           (std::string(stem) + "-" + std::to_string(::getpid()) + ".tmp");
}

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

double baseline_mib_s = 0;  // dd_direct_1M's, measured first

void set_counters(benchmark::State& state, double seconds, bool baseline) {
    const double total = mib(records().total) * static_cast<double>(state.iterations());
    const double rate = total / seconds;
    state.counters["MiB/s"] = rate;
    if (baseline) baseline_mib_s = rate;
    if (baseline_mib_s > 0) state.counters["x_dd"] = rate / baseline_mib_s;
    state.SetBytesProcessed(static_cast<std::int64_t>(records().total * state.iterations()));
}

void BM_DdDirect1M(benchmark::State& state) {
    const Records& r = records();
    const std::size_t blocks = (r.total + dd_block_bytes - 1) / dd_block_bytes;
    std::unique_ptr<std::byte[], FreeDeleter> packed(
        static_cast<std::byte*>(std::aligned_alloc(4096, blocks * dd_block_bytes)));
    std::size_t at = 0;
    for (const auto& b : r.bytes) {
        std::memcpy(packed.get() + at, b.data(), b.size());
        at += b.size();
    }
    const auto path = bench_file("bench-dd");
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0) {
        state.SkipWithError("cannot open the file with O_DIRECT");
        return;
    }
    double seconds = 0;
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < blocks; ++i) {
            const auto off = static_cast<off_t>(i * dd_block_bytes);
            if (::pwrite(fd, packed.get() + i * dd_block_bytes, dd_block_bytes, off) != off_t(dd_block_bytes)) {
                state.SkipWithError("pwrite failed");
                break;
            }
        }
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        state.SetIterationTime(took.count());
        seconds += took.count();
        ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(blocks * dd_block_bytes));
    }
    ::close(fd);
    std::filesystem::remove(path);
    set_counters(state, seconds, true);
}

// A store on a fresh file with room for the records and a quarter more (next-fit wraps around).
std::unique_ptr<zpage::FileBackingStore> make_store(const std::filesystem::path& path, unsigned in_flight,
                                                    std::size_t io_bytes, std::size_t batch, std::uint64_t retain) {
    return std::make_unique<zpage::FileBackingStore>(
        zpage::FileBackingConfig{.path = path.string(),
                                 .max_bytes = records().total + records().total / 4 + (std::size_t{4} << 20),
                                 .io_bytes = io_bytes,
                                 .max_in_flight = in_flight,
                                 .max_batch_records = batch,
                                 .retain_freed_bytes = retain});
}

// Writes the first `count` records in batches; false (and the benchmark skipped) on an error.
bool write_all(benchmark::State& state, zpage::FileBackingStore& store, std::vector<zpage::BackingLocation>& at,
               std::size_t count) {
    const Records& r = records();
    const std::size_t batch = store.max_batch_records();
    for (std::size_t i = 0; i < count; i += batch) {
        const std::size_t n = std::min(batch, count - i);
        const zpage::Status s = store.write(std::span(r.spans).subspan(i, n), std::span(at).subspan(i, n));
        if (!s) {
            state.SkipWithError(std::string(s.message()).c_str());
            return false;
        }
    }
    return true;
}

void free_all(zpage::FileBackingStore& store, const std::vector<zpage::BackingLocation>& at, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) store.free(at[i], records().bytes[i].size());
}

void BM_Write(benchmark::State& state) {
    const auto in_flight = static_cast<unsigned>(state.range(0));
    const auto io_bytes = static_cast<std::size_t>(state.range(1)) << 10;
    const auto batch = static_cast<std::size_t>(state.range(2));
    const auto path = bench_file("bench-backing");
    auto store = make_store(path, in_flight, io_bytes, batch, std::uint64_t{32} << 20);
    if (!store->direct_io() || !store->native_aio()) state.SetLabel("no O_DIRECT or no native AIO here");
    std::vector<zpage::BackingLocation> at(records().spans.size());
    double seconds = 0;
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        if (!write_all(state, *store, at, at.size())) break;
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        state.SetIterationTime(took.count());
        seconds += took.count();
        free_all(*store, at, at.size());
        store->trim();  // holes again, as the baseline's file
    }
    store.reset();
    std::filesystem::remove(path);
    set_counters(state, seconds, false);
}

void BM_Free(benchmark::State& state) {
    const auto retain = static_cast<std::uint64_t>(state.range(0)) << 20;
    constexpr std::size_t freed = 2000;  // punching in free() costs ms per call on some disks
    const auto path = bench_file("bench-backing-free");
    auto store = make_store(path, 8, std::size_t{128} << 10, 256, retain);
    std::vector<zpage::BackingLocation> at(freed);
    for (auto _ : state) {
        state.PauseTiming();
        if (!write_all(state, *store, at, freed)) break;
        state.ResumeTiming();
        free_all(*store, at, freed);
        state.PauseTiming();
        store->trim();
        state.ResumeTiming();
    }
    store.reset();
    std::filesystem::remove(path);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * freed));
}

}  // namespace

BENCHMARK(BM_DdDirect1M)->Name("dd_direct_1M")->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(BM_Write)
    ->Name("write")
    ->ArgNames({"in_flight", "io_KiB", "batch"})
    ->ArgsProduct({{1, 4, 8}, {64, 128, 1024}, {256, 1024}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2);
BENCHMARK(BM_Free)
    ->Name("free")
    ->ArgName("retain_MiB")
    ->Arg(0)
    ->Arg(32)
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(3)
    ->UseRealTime();

BENCHMARK_MAIN();
