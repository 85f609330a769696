// zpage-bench: a progress bar on stderr, drawn only when stderr is a terminal (quiet in pipes,
// logs and CI). Safe to advance from several threads; redraws at most ten times a second.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace zpage_bench {

class ProgressBar {
public:
    explicit ProgressBar(std::size_t total_units) : total_(total_units), enabled_(::isatty(STDERR_FILENO) == 1) {}
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // What is being done now, shown after the bar.
    void set_label(std::string label) {
        std::lock_guard guard(lock_);
        label_ = std::move(label);
    }

    void advance(std::size_t units) {
        const std::size_t done = done_.fetch_add(units) + units;
        if (!enabled_) return;
        std::unique_lock guard(lock_, std::try_to_lock);
        if (!guard) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
        last_draw_ = now;
        draw(done);
    }

    // Clears the bar so that what follows on stderr starts on a clean line.
    void finish() {
        if (!enabled_ || finished_) return;
        finished_ = true;
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
    }

private:
    void draw(std::size_t done) {
        constexpr int width = 30;
        const double fraction =
            total_ == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
        const int filled = static_cast<int>(fraction * width);
        std::fprintf(stderr, "\r\033[K[%.*s%*s] %3d%% %s", filled, "##############################", width - filled, "",
                     static_cast<int>(fraction * 100), label_.c_str());
        std::fflush(stderr);
    }

    const std::size_t total_;
    const bool enabled_;
    std::atomic<std::size_t> done_{0};
    std::mutex lock_;
    std::string label_;
    std::chrono::steady_clock::time_point last_draw_{};
    bool finished_ = false;
};

}  // namespace zpage_bench
