// zpage-memcached's protocol side in-process, for its tests and its fuzz target: a server's items
// and context without sockets, and a conversation fed to one session as reads would deliver it.
#pragma once

#include "server.hpp"  // commands_per_turn; and it must stand alone

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace zpage_memcached_test {

struct InProcessServer {
    explicit InProcessServer(std::size_t max_value = std::size_t{1} << 20, std::size_t capacity = std::size_t{16} << 20)
        : backend(zpage_memcached::make_backend(zpage_bench::parse_algos("lz4").front(),
                                                zpage_memcached::EvictionChoice::s3fifo_size,
                                                zpage::CacheConfig{.capacity_bytes = capacity, .shards = 2})),
          items(*backend, max_value),
          context{.settings = {}, .items = items, .connections = {}, .workers = {}, .verbosity = {}} {
        context.workers.push_back(std::make_unique<zpage_memcached::CommandCounters>());
    }
    std::unique_ptr<zpage_memcached::CacheBackend> backend;
    zpage_memcached::ItemStore items;
    zpage_memcached::ServerContext context;
    zpage_memcached::Scratch scratch;
};

// Feeds `input` to one new session in reads of the sizes next_read() gives (it may give more than
// is left), and returns all it replied. After each read, as the event loop does: turn after turn
// while commands are used, each turn adding at most `max_output_per_turn` reply bytes (a client
// slow to read). Stops once the session closes.
template <class NextRead>
std::string converse_in_reads(InProcessServer& server, std::string_view input, NextRead&& next_read,
                     std::size_t max_output_per_turn = SIZE_MAX) {
    zpage_memcached::Session session(server.context, *server.context.workers[0], server.scratch);
    std::string buffered, out;
    std::size_t at = 0;
    while (at < input.size() && !session.closing()) {
        const std::size_t n = std::min(next_read(), input.size() - at);
        buffered.append(input.substr(at, n));
        at += n;
        for (;;) {
            const std::size_t bound = max_output_per_turn == SIZE_MAX ? SIZE_MAX : out.size() + max_output_per_turn;
            const std::size_t used = session.process(buffered, out, zpage_memcached::commands_per_turn, bound);
            buffered.erase(0, used);
            if (used == 0 || session.closing()) break;
        }
    }
    return out;
}

}  // namespace zpage_memcached_test
