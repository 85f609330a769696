// zpage-bench: one input through one codec in a zpage::CompressedPageStore.
//
// Every page is stored into a fresh store (the pages split among the threads, storing at once),
// then every page is loaded (the same split) and, in a separate untimed pass, compared with what
// was stored. Throughput is the aggregate over wall-clock time; each store and load is also timed
// on its own for the latency percentiles. With `steady`, an untimed pass stores every page first,
// so that the timed stores replace pages already stored: a store in use, its memory populated.
#pragma once

#include <zpage/zpage.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "codec_spec.hpp"
#include "types.hpp"

namespace zpage_bench {

namespace detail {

using Clock = std::chrono::steady_clock;

inline double mib_per_s(std::size_t bytes, Clock::duration elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    return seconds <= 0 ? 0 : static_cast<double>(bytes) / (1024.0 * 1024.0) / seconds;
}

// Runs body(thread, first, last) on `threads` threads over [0, pages), all starting together;
// returns the wall-clock time from the start to the last one done.
template <class Body>
Clock::duration run_split(std::size_t pages, unsigned threads, Body&& body) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const std::size_t first = pages * t / threads;
            const std::size_t last = pages * (t + 1) / threads;
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            body(t, first, last);
        });
    }
    while (ready.load() != threads) std::this_thread::yield();
    const auto start = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& w : workers) w.join();
    return Clock::now() - start;
}

template <class Store>
RunResult run_store(const PageSet& input, typename Store::compressor_type codec, const std::string& algo,
                    unsigned threads, const Progress& progress, bool steady) {
    constexpr std::size_t page_size = Store::page_size;
    using PageView = std::span<const std::byte, page_size>;
    const std::size_t pages = input.pages();
    Store store(pages, std::move(codec));

    RunResult r;
    r.input = input.name;
    r.engine = "zpage";
    r.algo = algo;
    r.threads = threads;
    r.pages = pages;

    std::atomic<bool> failed{false};
    constexpr std::size_t progress_step = 256;
    std::atomic<std::size_t> reported{0};
    // One pass over every page, split among the threads: op(i, buffer) for each, timed on its own.
    struct Pass {
        Clock::duration wall{};
        std::vector<double> latencies_us;
    };
    auto pass = [&](auto&& op) {
        std::vector<std::vector<double>> per_thread(threads);
        Pass p;
        p.wall = run_split(pages, threads, [&](unsigned t, std::size_t first, std::size_t last) {
            std::vector<std::byte> buffer(page_size);
            per_thread[t].reserve(last - first);
            for (std::size_t i = first; i < last; ++i) {
                const auto begin = Clock::now();
                const zpage::Status st = op(i, std::span<std::byte, page_size>(buffer.data(), page_size));
                per_thread[t].push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
                if (!st) failed.store(true);
                if (progress && (i - first + 1) % progress_step == 0) {
                    reported.fetch_add(progress_step);
                    progress(progress_step);
                }
            }
        });
        for (auto& v : per_thread) p.latencies_us.insert(p.latencies_us.end(), v.begin(), v.end());
        return p;
    };
    const auto store_page = [&](std::size_t i, std::span<std::byte, page_size>) {
        return store.store(i, PageView(input.page(i).data(), page_size));
    };
    if (steady) pass(store_page);
    const Pass stored = pass(store_page);
    const zpage::Stats stats = store.stats();
    r.pool_spare_bytes = store.allocator().pool().stats().spare_bytes;
    const Pass loaded = pass([&](std::size_t i, std::span<std::byte, page_size> out) { return store.load(i, out); });
    if (progress) progress((steady ? 3 : 2) * pages - reported.load());  // what the steps left over

    bool verified = !failed.load();
    std::vector<std::byte> out(page_size);
    for (std::size_t i = 0; i < pages && verified; ++i) {
        verified = store.load(i, std::span<std::byte, page_size>(out.data(), page_size)) &&
                   std::memcmp(out.data(), input.page(i).data(), page_size) == 0;
    }

    r.orig_bytes = stats.orig_data_size;
    r.compr_bytes = stats.compr_data_size;
    r.mem_used_bytes = stats.mem_used_total;
    r.same_pages = stats.same_pages;
    r.huge_pages = stats.huge_pages;
    r.store_mib_s = mib_per_s(pages * page_size, stored.wall);
    r.load_mib_s = mib_per_s(pages * page_size, loaded.wall);
    r.store_p50_us = percentile(stored.latencies_us, 0.50);
    r.store_p99_us = percentile(stored.latencies_us, 0.99);
    r.load_p50_us = percentile(loaded.latencies_us, 0.50);
    r.load_p99_us = percentile(loaded.latencies_us, 0.99);
    r.verified = verified;
    return r;
}

template <std::size_t PageSize>
RunResult run_zpage_sized(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                          bool steady) {
    using zpage::CompressedPageStore;
    using zpage::TraitsFor;
    switch (spec.family) {
    case CodecFamily::lz4:
        return run_store<CompressedPageStore<TraitsFor<zpage::Lz4, PageSize>>>(input, zpage::Lz4{spec.param}, spec.name,
                                                                               threads, progress, steady);
    case CodecFamily::lz4hc:
        return run_store<CompressedPageStore<TraitsFor<zpage::Lz4hc, PageSize>>>(input, zpage::Lz4hc{spec.param},
                                                                                 spec.name, threads, progress, steady);
    case CodecFamily::zstd:
        return run_store<CompressedPageStore<TraitsFor<zpage::Zstd, PageSize>>>(input, zpage::Zstd{spec.param},
                                                                                spec.name, threads, progress, steady);
    case CodecFamily::identity:
        return run_store<CompressedPageStore<TraitsFor<zpage::Identity, PageSize>>>(input, zpage::Identity{}, spec.name,
                                                                                    threads, progress, steady);
    case CodecFamily::kernel_only: break;
    }
    throw BadInput(spec.name + " runs on the kernel side only");
}

}  // namespace detail

// Page sizes zpage-bench offers (each is a compile-time store configuration).
inline constexpr std::size_t supported_page_sizes[] = {4096, 16384};

inline RunResult run_zpage(const PageSet& input, const CodecSpec& spec, unsigned threads, const Progress& progress,
                           bool steady) {
    if (input.page_size == 16384) return detail::run_zpage_sized<16384>(input, spec, threads, progress, steady);
    return detail::run_zpage_sized<4096>(input, spec, threads, progress, steady);
}

}  // namespace zpage_bench
