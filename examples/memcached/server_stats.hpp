// zpage-memcached: the server's counters, with memcached's names ("stats"), declared once.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace zpage_memcached {

// One worker thread's counters. Only that thread adds to them (a relaxed load and store, no
// locked instruction); "stats" sums every worker's, "stats reset" zeroes them from any thread.
struct CommandCounters {
    std::atomic<std::uint64_t> cmd_get{0}, cmd_set{0}, cmd_flush{0}, cmd_touch{0};
    std::atomic<std::uint64_t> get_hits{0}, get_misses{0};
    std::atomic<std::uint64_t> delete_hits{0}, delete_misses{0};
    std::atomic<std::uint64_t> incr_hits{0}, incr_misses{0}, decr_hits{0}, decr_misses{0};
    std::atomic<std::uint64_t> cas_hits{0}, cas_misses{0}, cas_badval{0};
    std::atomic<std::uint64_t> touch_hits{0}, touch_misses{0};
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0};

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("cmd_get"), &CommandCounters::cmd_get);
        f(std::string_view("cmd_set"), &CommandCounters::cmd_set);
        f(std::string_view("cmd_flush"), &CommandCounters::cmd_flush);
        f(std::string_view("cmd_touch"), &CommandCounters::cmd_touch);
        f(std::string_view("get_hits"), &CommandCounters::get_hits);
        f(std::string_view("get_misses"), &CommandCounters::get_misses);
        f(std::string_view("delete_misses"), &CommandCounters::delete_misses);
        f(std::string_view("delete_hits"), &CommandCounters::delete_hits);
        f(std::string_view("incr_misses"), &CommandCounters::incr_misses);
        f(std::string_view("incr_hits"), &CommandCounters::incr_hits);
        f(std::string_view("decr_misses"), &CommandCounters::decr_misses);
        f(std::string_view("decr_hits"), &CommandCounters::decr_hits);
        f(std::string_view("cas_misses"), &CommandCounters::cas_misses);
        f(std::string_view("cas_hits"), &CommandCounters::cas_hits);
        f(std::string_view("cas_badval"), &CommandCounters::cas_badval);
        f(std::string_view("touch_hits"), &CommandCounters::touch_hits);
        f(std::string_view("touch_misses"), &CommandCounters::touch_misses);
        f(std::string_view("bytes_read"), &CommandCounters::bytes_read);
        f(std::string_view("bytes_written"), &CommandCounters::bytes_written);
    }

    static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }
    void reset() noexcept {
        for_each_field([&](std::string_view, auto member) { (this->*member).store(0, std::memory_order_relaxed); });
    }
};

// Connection counts, shared by all workers.
struct ConnectionCounters {
    std::atomic<std::uint64_t> curr_connections{0};
    std::atomic<std::uint64_t> total_connections{0};
    std::atomic<std::uint64_t> rejected_connections{0};
};

}  // namespace zpage_memcached
