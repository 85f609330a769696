// zpage-bench: the outputs. A readable table (default), one JSON object per line (--json), and
// an SVG chart of ratio against store and load throughput (--plot).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "types.hpp"

namespace zpage_bench {

// A codec the kernel does not have, reported in the table where its kernel row would be.
struct Unavailable {
    std::string input;
    std::string algo;
    std::string why;
};

namespace detail {

inline std::string json_escape(const std::string& s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out;
}

inline std::string xml_escape(const std::string& s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

inline double as_mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// The table's algo column: 9 wide, wider for longer names (A+B ones).
inline int algo_width(const std::vector<RunResult>& results, const std::vector<Unavailable>& unavailable) {
    std::size_t width = 9;
    for (const auto& r : results) width = std::max(width, r.algo.size());
    for (const auto& u : unavailable) width = std::max(width, u.algo.size());
    return static_cast<int>(width);
}

// The line under the table for an A+B run: what its recompression did, and (--baseline) its
// speed against B's alone on the same units.
inline void print_recompression(std::FILE* out, const RunResult& r) {
    std::fprintf(out, "  zpage %s recompression: %zu pages, %zu units, %.1f MiB saved, %.0f MiB/s, %zu not paid",
                 r.algo.c_str(), r.recompressed_pages, r.recompress_units,
                 static_cast<double>(r.recompress_bytes_saved) / (1024.0 * 1024.0), r.recompress_mib_s,
                 r.recompress_not_paid);
    if (r.codec_unit_mib_s > 0)
        std::fprintf(out, "; %s alone on the same %zu KiB units %.0f MiB/s: x%.2f", r.codec_unit_algo.c_str(),
                     r.codec_unit_bytes / 1024, r.codec_unit_mib_s, r.recompress_mib_s / r.codec_unit_mib_s);
    std::fputc('\n', out);
}

}  // namespace detail

// One JSON object per line, with exactly the documented fields, in this order.
inline void print_json(std::FILE* out, const RunResult& r) {
    std::fprintf(out,
                 "{\"input\":\"%s\",\"engine\":\"%s\",\"algo\":\"%s\",\"threads\":%u,\"pages\":%zu,"
                 "\"orig_bytes\":%llu,\"compr_bytes\":%llu,\"mem_used_bytes\":%llu,\"same_pages\":%llu,"
                 "\"huge_pages\":%llu,\"store_mib_s\":%.1f,\"load_mib_s\":%.1f,\"store_p50_us\":%.2f,"
                 "\"store_p99_us\":%.2f,\"load_p50_us\":%.2f,\"load_p99_us\":%.2f,"
                 "\"mem_used_max_bytes\":%llu,\"bd_writes\":%llu,\"bd_reads\":%llu,\"writeback_mib_s\":%.1f,"
                 "\"written_back_pages\":%llu,\"recompress_mib_s\":%.1f,\"recompressed_pages\":%zu,"
                 "\"codec_unit_mib_s\":%.1f,\"verified\":%s}\n",
                 detail::json_escape(r.input).c_str(), detail::json_escape(r.engine).c_str(),
                 detail::json_escape(r.algo).c_str(), r.threads, r.pages, static_cast<unsigned long long>(r.orig_bytes),
                 static_cast<unsigned long long>(r.compr_bytes), static_cast<unsigned long long>(r.mem_used_bytes),
                 static_cast<unsigned long long>(r.same_pages), static_cast<unsigned long long>(r.huge_pages),
                 r.store_mib_s, r.load_mib_s, r.store_p50_us, r.store_p99_us, r.load_p50_us, r.load_p99_us,
                 static_cast<unsigned long long>(r.mem_used_max_bytes), static_cast<unsigned long long>(r.bd_writes),
                 static_cast<unsigned long long>(r.bd_reads), r.writeback_mib_s,
                 static_cast<unsigned long long>(r.written_back_pages), r.recompress_mib_s,
                 r.recompressed_pages, r.codec_unit_mib_s, r.verified ? "true" : "false");
    std::fflush(out);
}

// The readable table: one block per input, zpage and kernel rows of one codec together, then
// zpage against the kernel for every codec both ran.
inline void print_table(std::FILE* out, const std::vector<RunResult>& results,
                        const std::vector<Unavailable>& unavailable) {
    std::vector<std::string> inputs;
    for (const auto& r : results)
        if (std::find(inputs.begin(), inputs.end(), r.input) == inputs.end()) inputs.push_back(r.input);
    for (const auto& u : unavailable)
        if (std::find(inputs.begin(), inputs.end(), u.input) == inputs.end()) inputs.push_back(u.input);

    // With --backing: the peak memory, and what the reclaimer wrote back and read back.
    const bool backed = std::any_of(results.begin(), results.end(), [](const RunResult& r) { return r.backed; });
    const int algo_w = detail::algo_width(results, unavailable);
    for (const std::string& input : inputs) {
        std::size_t pages = 0;
        for (const auto& r : results)
            if (r.input == input) pages = r.pages;
        std::fprintf(out, "\n%s: %zu pages\n", input.c_str(), pages);
        std::fprintf(out, "  %-12s %-*s %3s %7s %9s %9s %6s %6s %9s %9s %15s %15s %8s", "engine", algo_w, "algo", "thr",
                     "ratio", "orig MiB", "mem MiB", "same", "huge", "store/s", "load/s", "store p50/p99",
                     "load p50/p99", "verified");
        if (backed) std::fprintf(out, " %9s %9s %8s %8s", "max MiB", "wb/s", "bd_w", "bd_r");
        std::fputc('\n', out);
        std::vector<std::string> algos;
        for (const auto& r : results)
            if (r.input == input && std::find(algos.begin(), algos.end(), r.algo) == algos.end())
                algos.push_back(r.algo);
        for (const auto& u : unavailable)
            if (u.input == input && std::find(algos.begin(), algos.end(), u.algo) == algos.end())
                algos.push_back(u.algo);
        for (const std::string& algo : algos) {
            for (const auto& r : results) {
                if (r.input != input || r.algo != algo) continue;
                std::fprintf(out,
                             "  %-12s %-*s %3u %7.3f %9.1f %9.1f %6llu %6llu %7.0f M %7.0f M %6.1f/%-6.1fus "
                             "%6.1f/%-6.1fus %8s",
                             r.engine.c_str(), algo_w, r.algo.c_str(), r.threads, r.ratio(),
                             detail::as_mib(r.orig_bytes), detail::as_mib(r.mem_used_bytes),
                             static_cast<unsigned long long>(r.same_pages),
                             static_cast<unsigned long long>(r.huge_pages), r.store_mib_s, r.load_mib_s, r.store_p50_us,
                             r.store_p99_us, r.load_p50_us, r.load_p99_us, r.verified ? "yes" : "NO");
                if (backed && r.backed) {
                    std::fprintf(out, " %9.1f %7.0f M %8llu %8llu", detail::as_mib(r.mem_used_max_bytes), r.writeback_mib_s,
                                 static_cast<unsigned long long>(r.bd_writes), static_cast<unsigned long long>(r.bd_reads));
                } else if (backed) {
                    std::fprintf(out, " %9.1f %9s %8s %8s", detail::as_mib(r.mem_used_max_bytes), "-", "-", "-");
                }
                std::fputc('\n', out);
            }
            for (const auto& u : unavailable)
                if (u.input == input && u.algo == algo)
                    std::fprintf(out, "  %-12s %-*s  unavailable: %s\n", "kernel-zram", algo_w, algo.c_str(),
                                 u.why.c_str());
        }
        // zpage against the kernel, codec by codec, and against the kernel's default codec.
        const RunResult* kernel_default = nullptr;
        for (const auto& r : results)
            if (r.input == input && r.engine == "kernel-zram" && r.algo == "lzo-rle") kernel_default = &r;
        // Both engines against the codec alone (--baseline): what each spends beyond the codec.
        for (const auto& c : results) {
            if (c.input != input || c.engine != "codec-alone") continue;
            for (const auto& e : results) {
                if (e.input != input || e.algo != c.algo || e.engine == "codec-alone") continue;
                std::fprintf(out, "  %s %s against the codec alone: ratio x%.3f, store x%.2f, load x%.2f\n",
                             e.engine.c_str(), e.algo.c_str(), e.ratio() / c.ratio(), e.store_mib_s / c.store_mib_s,
                             e.load_mib_s / c.load_mib_s);
            }
        }
        for (const auto& z : results) {
            if (z.input != input || z.engine != "zpage") continue;
            for (const auto& k : results) {
                if (k.input != input || k.engine != "kernel-zram") continue;
                if (k.algo != z.algo && &k != kernel_default) continue;
                std::fprintf(out, "  zpage %s against kernel %s: ratio x%.3f, store x%.2f, load x%.2f\n",
                             z.algo.c_str(), k.algo.c_str(), z.ratio() / k.ratio(), z.store_mib_s / k.store_mib_s,
                             z.load_mib_s / k.load_mib_s);
            }
        }
        for (const auto& r : results)
            if (r.input == input && r.recompressed) detail::print_recompression(out, r);
    }
    std::fprintf(out,
                 "\nratio = orig / mem_used; mem_used counts all a store holds, its table of 16 B per page "
                 "included (kernel-zram: mm_stat's mem_used_total plus zram's table, which mm_stat leaves "
                 "out). /s = MiB/s over all threads; latencies per page (kernel-zram: throughput from 1 MiB "
                 "requests, latencies from a pass of one-page O_DIRECT requests on a fresh device, each timed "
                 "with its syscall).\n");
    for (const auto& r : results) {
        if (!r.backed) continue;
        std::fprintf(out,
                     "--backing: zpage's stores held at most --mem-limit each, the reclaimer writing pages back to the "
                     "file (max MiB: peak mem_used; wb/s: bytes written back over the time spent writing batches; "
                     "bd_w, bd_r: 4 KiB units written and read back). 1 MiB O_DIRECT writes to the same file system "
                     "(dd bs=1M oflag=direct) ran at %.0f MiB/s in this run.\n",
                     r.direct_write_mib_s);
        break;
    }
    std::uint64_t spare = 0;
    for (const auto& r : results) spare = std::max(spare, r.pool_spare_bytes);
    if (spare != 0)
        std::fprintf(out,
                     "zpage's page pool held at most %.1f MiB beyond the pages its stores used (the rest of the "
                     "chunk it hands out from, chunks made ready ahead, and freed pages kept for reuse), in no "
                     "store's mem_used.\n",
                     detail::as_mib(spare));
    RunResult pool;  // the pool's work during all zpage stores of the run
    for (const auto& r : results) {
        pool.pool_chunks_background += r.pool_chunks_background;
        pool.pool_chunks_direct += r.pool_chunks_direct;
        pool.pool_background_ms += r.pool_background_ms;
        pool.pool_direct_ms += r.pool_direct_ms;
    }
    if (pool.pool_chunks_background + pool.pool_chunks_direct != 0)
        std::fprintf(out,
                     "During zpage's stores its page pool made %llu chunks of 2 MiB resident ahead of them "
                     "(%.1f ms, on its refill thread) and the storing threads %llu (%.1f ms, the pool's "
                     "reserve having run empty).\n",
                     static_cast<unsigned long long>(pool.pool_chunks_background), pool.pool_background_ms,
                     static_cast<unsigned long long>(pool.pool_chunks_direct), pool.pool_direct_ms);
    if (std::any_of(results.begin(), results.end(), [](const RunResult& r) { return r.recompressed; }))
        std::fprintf(out, "A+B: stored with A (store/s and its latencies are A's), then every page marked idle and "
                          "recompressed with B in one call, each page alone or in units of N neighbours (:N), and "
                          "the store compacted; ratio, mem and loads are after it. recompression: pages B holds, "
                          "units of grouped pages made, memory the new objects saved on the old, B's speed over the "
                          "original size of the pages it tried (kept or not), and attempts (a page or a unit) left as they were, B's result "
                          "being no smaller.\n");
    if (std::any_of(results.begin(), results.end(), [](const RunResult& r) { return r.codec_unit_mib_s > 0; }))
        std::fprintf(out, "A+B with --baseline: B alone compressing the same pages in the same units (N consecutive "
                          "pages, same-filled ones included), on one thread as recompression runs, into a "
                          "preallocated arena, compression only; x: recompression's speed over it, recompression's "
                          "time also holding the decoding of every page from A.\n");
    if (std::any_of(results.begin(), results.end(), [](const RunResult& r) { return r.engine == "codec-alone"; }))
        std::fprintf(out, "codec-alone: each page compressed into a preallocated arena and decompressed back, no "
                          "store; its mem_used is the compressed bytes alone.\n");
}

// Ratio against store throughput (left) and load throughput (right), throughput on a log scale;
// one colour per input, filled circles for zpage, hollow squares for the kernel.
inline bool write_svg(const std::string& path, const std::vector<RunResult>& all_results) {
    std::vector<RunResult> results;  // the two engines; codec-alone rows belong to the table
    std::copy_if(all_results.begin(), all_results.end(), std::back_inserter(results),
                 [](const RunResult& r) { return r.engine != "codec-alone"; });
    constexpr double width = 1050, height = 490, panel_w = 440, panel_h = 340, top = 60, left0 = 70, gap = 60;
    const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    std::vector<std::string> inputs;
    for (const auto& r : results)
        if (std::find(inputs.begin(), inputs.end(), r.input) == inputs.end()) inputs.push_back(r.input);

    double rmin = 1e9, rmax = 0, tmin = 1e9, tmax = 0;
    for (const auto& r : results) {
        rmin = std::min(rmin, r.ratio());
        rmax = std::max(rmax, r.ratio());
        for (double t : {r.store_mib_s, r.load_mib_s}) {
            if (t <= 0) continue;
            tmin = std::min(tmin, t);
            tmax = std::max(tmax, t);
        }
    }
    if (results.empty() || tmax <= 0) return false;
    rmin = std::floor(rmin * 10 - 1) / 10;
    rmax = std::ceil(rmax * 10 + 1) / 10;
    const double lmin = std::floor(std::log10(tmin)), lmax = std::ceil(std::log10(tmax));

    std::ofstream svg(path);
    if (!svg) return false;
    auto text = [&](double x, double y, const std::string& s, const char* extra = "") {
        svg << "<text x=\"" << x << "\" y=\"" << y << "\" " << extra << ">" << detail::xml_escape(s) << "</text>\n";
    };
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
        << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    text(width / 2, 24, "zpage-bench: compression ratio against throughput", "text-anchor=\"middle\" font-size=\"16\"");
    for (int panel = 0; panel < 2; ++panel) {
        const double x0 = left0 + panel * (panel_w + gap);
        auto px = [&](double mibs) { return x0 + (std::log10(mibs) - lmin) / (lmax - lmin) * panel_w; };
        auto py = [&](double ratio) { return top + panel_h - (ratio - rmin) / (rmax - rmin) * panel_h; };
        svg << "<rect x=\"" << x0 << "\" y=\"" << top << "\" width=\"" << panel_w << "\" height=\"" << panel_h
            << "\" fill=\"none\" stroke=\"#444\"/>\n";
        text(x0 + panel_w / 2, top - 8, panel == 0 ? "store" : "load", "text-anchor=\"middle\" font-weight=\"bold\"");
        for (double e = lmin; e <= lmax; e += 1) {
            for (int m : {1, 2, 5}) {
                const double v = m * std::pow(10.0, e);
                if (std::log10(v) > lmax + 1e-9) break;
                const double x = px(v);
                svg << "<line x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x << "\" y2=\"" << top + panel_h
                    << "\" stroke=\"#e5e5e5\"/>\n";
                text(x, top + panel_h + 16, std::to_string(static_cast<long long>(v)), "text-anchor=\"middle\"");
            }
        }
        text(x0 + panel_w / 2, top + panel_h + 34, "MiB/s (log scale)", "text-anchor=\"middle\"");
        const double step = rmax - rmin > 4 ? 1.0 : rmax - rmin > 2 ? 0.5 : rmax - rmin > 1 ? 0.2 : 0.1;
        for (double v = std::ceil(rmin / step - 1e-9) * step; v <= rmax + 1e-9; v += step) {
            const double y = py(v);
            svg << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << x0 + panel_w << "\" y2=\"" << y
                << "\" stroke=\"#e5e5e5\"/>\n";
            char label[16];
            std::snprintf(label, sizeof label, "%.1f", v);
            text(x0 - 6, y + 4, label, "text-anchor=\"end\"");
        }
        if (panel == 0)
            text(18, top + panel_h / 2, "ratio (orig / mem used)",
                 "transform=\"rotate(-90 18 230)\" text-anchor=\"middle\"");
        for (const auto& r : results) {
            const double t = panel == 0 ? r.store_mib_s : r.load_mib_s;
            if (t <= 0) continue;
            const auto colour =
                palette[static_cast<std::size_t>(std::find(inputs.begin(), inputs.end(), r.input) - inputs.begin()) %
                        8];
            const double x = px(t), y = py(r.ratio());
            if (r.engine == "zpage") {
                svg << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"5\" fill=\"" << colour << "\"/>\n";
            } else {
                svg << "<rect x=\"" << x - 5 << "\" y=\"" << y - 5
                    << "\" width=\"10\" height=\"10\" fill=\"white\" stroke=\"" << colour
                    << "\" stroke-width=\"2\"/>\n";
            }
            text(x + 7, y - 6, r.algo, "font-size=\"10\" fill=\"#333\"");
        }
    }
    double ly = height - 12;
    double lx = left0;
    svg << "<circle cx=\"" << lx << "\" cy=\"" << ly - 4 << "\" r=\"5\" fill=\"#666\"/>\n";
    text(lx + 10, ly, "zpage");
    svg << "<rect x=\"" << lx + 60 << "\" y=\"" << ly - 9
        << "\" width=\"10\" height=\"10\" fill=\"white\" stroke=\"#666\" stroke-width=\"2\"/>\n";
    text(lx + 75, ly, "kernel zram");
    lx += 180;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        svg << "<rect x=\"" << lx << "\" y=\"" << ly - 9 << "\" width=\"10\" height=\"10\" fill=\"" << palette[i % 8]
            << "\"/>\n";
        text(lx + 14, ly, inputs[i]);
        lx += 24 + 7.0 * static_cast<double>(inputs[i].size());
    }
    svg << "</svg>\n";
    return static_cast<bool>(svg);
}

}  // namespace zpage_bench
