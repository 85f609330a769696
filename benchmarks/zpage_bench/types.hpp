// zpage-bench: the types every part of the tool shares.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace zpage_bench {

// Input the user got wrong, or a resource the tool cannot use: main prints "zpage-bench: " and
// the message (one line) and exits with status 2.
struct BadInput : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Ctrl-C or SIGTERM: the run stops at the next safe point (between requests to the kernel's zram,
// between jobs), undoes what it set up, and zpage-bench exits with 130.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};
inline std::atomic<bool> interrupted{false};

// A named run of whole pages held in memory.
struct PageSet {
    std::string name;        // what the reports call it: a file's base name, "pid 1234", "default-heap"
    std::size_t page_size = 4096;
    std::vector<std::byte> bytes;  // pages() * page_size bytes

    [[nodiscard]] std::size_t pages() const { return bytes.size() / page_size; }

    // Reads one byte of every 4 KiB. The first read from user space of memory the kernel filled
    // (read(2) into a fresh buffer) costs a trap per page on some hypervisors, ~3 us here; done
    // once before any timing, it is paid by no engine (the kernel side copies the pages into its
    // staging buffer before its clock starts, so it would otherwise be zpage's alone).
    void touch() const {
        std::uint8_t seen = 0;
        for (std::size_t off = 0; off < bytes.size(); off += 4096) seen ^= static_cast<std::uint8_t>(bytes[off]);
        touched_sink = seen;  // a volatile store: the reads cannot be dropped
    }
    inline static volatile std::uint8_t touched_sink = 0;
    [[nodiscard]] std::span<const std::byte> page(std::size_t i) const {
        return {bytes.data() + i * page_size, page_size};
    }
    // Page i as a store takes it; N must be page_size.
    template <std::size_t N>
    [[nodiscard]] std::span<const std::byte, N> page_view(std::size_t i) const {
        return std::span<const std::byte, N>(bytes.data() + i * N, N);
    }
};

// One row of the report: one input through one codec on one engine.
struct RunResult {
    std::string input;
    std::string engine;  // "zpage", "kernel-zram" or (--baseline) "codec-alone"
    std::string algo;    // canonical: "lz4", "zstd-3", "lzo-rle", "lz4+zstd-3:16" (the user's "tiered")
    unsigned threads = 1;
    std::size_t pages = 0;
    std::uint64_t orig_bytes = 0;
    std::uint64_t compr_bytes = 0;
    std::uint64_t mem_used_bytes = 0;
    std::uint64_t same_pages = 0;
    std::uint64_t huge_pages = 0;
    double store_mib_s = 0;  // aggregate over threads, against wall-clock time
    double load_mib_s = 0;
    double store_p50_us = 0;  // per page (kernel-zram: one O_DIRECT request of one page, its syscall included)
    double store_p99_us = 0;
    double load_p50_us = 0;
    double load_p99_us = 0;
    bool verified = false;  // every page read back equal to what was stored
    std::string failure;    // when not: the first operation that failed, and why
    std::uint64_t mem_used_max_bytes = 0;  // peak of mem_used during the run (kernel-zram: mm_stat's mem_used_max)
    // zpage with --backing: what the reclaimer wrote to the backing file (bd_stat, 4 KiB units),
    // and its write speed (record bytes over the time spent writing batches).
    bool backed = false;
    std::uint64_t bd_writes = 0;
    std::uint64_t bd_reads = 0;
    double writeback_mib_s = 0;
    std::uint64_t written_back_pages = 0;  // on the backing file once the stores (and recompression) are done
    double direct_write_mib_s = 0;  // 1 MiB O_DIRECT writes to the backing file's file system, same run
    // zpage with an A+B codec: every page stored with A was marked idle and recompressed with B in
    // one recompress() call after the stores (zpage::RecompressResult's figures); the row's
    // memory, ratio and loads are those after it. The speed is the pages the call decoded and
    // compressed again (whether the result paid or not), at their original size, over its time.
    bool recompressed = false;
    std::size_t recompressed_pages = 0;
    std::size_t recompress_units = 0;
    std::int64_t recompress_bytes_saved = 0;
    std::size_t recompress_not_paid = 0;
    double recompress_mib_s = 0;
    // An A+B[:N] row with --baseline: B alone compressing the same input in units of N pages on
    // one thread (run_codec.hpp's measure_codec_units), MiB/s of the input; 0 when not measured.
    // Recompression's time also holds decoding every page from A: the two compare as the whole
    // background work against B's compression alone.
    double codec_unit_mib_s = 0;
    std::string codec_unit_algo;       // not in the JSON: B's name, for the table
    std::size_t codec_unit_bytes = 0;  // not in the JSON: a unit's size (N pages)
    // zpage only, not in the JSON: what the process's page pool held beyond the pages it had
    // handed out, right after the stores (memory resident but in no store's mem_used).
    std::uint64_t pool_spare_bytes = 0;
    // zpage only, not in the JSON: where the memory the stores filled came from, during the timed
    // stores: 2 MiB chunks the pool's refill thread made resident ahead of them, and chunks the
    // storing threads had to make resident themselves, having found the pool's reserve empty.
    std::uint64_t pool_chunks_background = 0;
    std::uint64_t pool_chunks_direct = 0;
    double pool_background_ms = 0;
    double pool_direct_ms = 0;  // time the storing threads spent on it, within the timed stores

    [[nodiscard]] double ratio() const {
        return mem_used_bytes == 0 ? 0.0 : static_cast<double>(orig_bytes) / static_cast<double>(mem_used_bytes);
    }
};

// The nearest-rank percentile (fraction in [0, 1]) of per-page latencies; every engine's p50 and
// p99 are computed with it, so that their columns compare.
inline double percentile(std::vector<double> values, double fraction) {
    if (values.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())));
    const std::size_t k = std::clamp<std::size_t>(rank, 1, values.size()) - 1;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
}

// A result's identity, before any figure is in.
inline RunResult result_for(const PageSet& input, std::string engine, std::string algo, unsigned threads) {
    RunResult r;
    r.input = input.name;
    r.engine = std::move(engine);
    r.algo = std::move(algo);
    r.threads = threads;
    r.pages = input.pages();
    return r;
}

// p50 and p99 of the per-page latencies of a store pass and of a load pass.
inline void set_latencies(RunResult& r, const std::vector<double>& store_us, const std::vector<double>& load_us) {
    r.store_p50_us = percentile(store_us, 0.50);
    r.store_p99_us = percentile(store_us, 0.99);
    r.load_p50_us = percentile(load_us, 0.50);
    r.load_p99_us = percentile(load_us, 0.99);
}

// Called with the number of pages just processed; drives the progress bar. May be empty.
using Progress = std::function<void(std::size_t)>;

}  // namespace zpage_bench
