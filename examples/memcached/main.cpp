// zpage-memcached: a memcached-compatible server (text protocol) whose values live compressed in a
// zpage::CompressedCache, so that the same -m holds more items. See README ("zpage-memcached").
//
//   zpage-memcached [-p PORT] [-l HOST[,HOST...]] [-m MiB] [-c CONNS] [-t THREADS] [-I SIZE] [-v|-vv]
//                   [--codec lz4|lz4-N|lz4hc-N|zstd-N|identity] [--eviction s3fifo-size|s3fifo|lru]
//
// Exit status: 0 after SIGINT/SIGTERM, 2 for a bad flag, 1 when it cannot start (port taken).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cache_backend.hpp"
#include "item_store.hpp"
#include "server.hpp"

namespace {

using namespace zpage_memcached;

struct BadFlag : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr std::string_view usage_text =
    "usage: zpage-memcached [options]\n"
    "  -p, --port=PORT          TCP port (default 11211; 0 picks a free one, printed with -v)\n"
    "  -l, --listen=HOST[,...]  interfaces to listen on (default 127.0.0.1)\n"
    "  -m, --memory-limit=MiB   memory for items, every byte counted: compressed values, per-item\n"
    "                           metadata and the index (default 64)\n"
    "  -c, --conn-limit=N       most simultaneous connections (default 1024)\n"
    "  -t, --threads=N          worker threads (default 4)\n"
    "  -I, --max-item-size=SIZE largest value, with k or m suffix (default 1m, at most 16m)\n"
    "  -v, -vv                  print start-up, errors; -vv also connections\n"
    "      --codec=NAME         lz4 (default), lz4-N, lz4hc-N, zstd-N, identity (or none)\n"
    "      --eviction=NAME      s3fifo-size (default: S3-FIFO keeping small items longer, as\n"
    "                           memcached's slab classes do), s3fifo (size-neutral) or lru (CLOCK)\n"
    "      --memcached-keys     accept keys as memcached does, control characters too (protocol.txt\n"
    "                           forbids them; memaslap sends them)\n"
    "  -U, -u, -d are accepted for memcached's command lines and ignored (no UDP, no user switch,\n"
    "  no daemon mode).\n";

std::size_t parse_size(std::string_view text, std::string_view flag) {
    std::size_t unit = 1;
    if (!text.empty() && (text.back() == 'k' || text.back() == 'K')) unit = 1024;
    if (!text.empty() && (text.back() == 'm' || text.back() == 'M')) unit = std::size_t{1} << 20;
    if (unit != 1) text.remove_suffix(1);
    const auto n = parse_number<std::size_t>(text);
    if (!n || *n == 0) throw BadFlag(std::string(flag) + " takes a positive number, not '" + std::string(text) + "'");
    return *n * unit;
}

ServerSettings parse_flags(int argc, char** argv, int& verbosity) {
    ServerSettings s;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view flag = args[i];
        std::string_view value;
        bool has_value = false;
        if (flag.starts_with("--") && flag.find('=') != std::string_view::npos) {
            value = flag.substr(flag.find('=') + 1);
            flag = flag.substr(0, flag.find('='));
            has_value = true;
        } else if (flag.size() > 2 && flag[0] == '-' && flag[1] != '-' && flag.find_first_not_of('v', 1) != 1) {
            value = flag.substr(2);  // -p11211
            flag = flag.substr(0, 2);
            has_value = true;
        }
        const auto next = [&]() -> std::string_view {
            if (has_value) return value;
            if (i + 1 >= args.size()) throw BadFlag(std::string(flag) + " needs a value");
            return args[++i];
        };
        if (flag == "-h" || flag == "--help") {
            std::fputs(usage_text.data(), stdout);
            std::exit(0);
        } else if (flag == "-V" || flag == "--version") {
            std::printf("zpage-memcached %.*s\n", static_cast<int>(server_version.size()), server_version.data());
            std::exit(0);
        } else if (flag == "-p" || flag == "--port") {
            const auto v = next();
            const auto port = parse_number<std::uint16_t>(v);
            if (!port) throw BadFlag("-p takes a port 0 .. 65535, not '" + std::string(v) + "'");
            s.port = *port;
        } else if (flag == "-l" || flag == "--listen") {
            s.listen_hosts.clear();
            std::string_view list = next();
            while (!list.empty()) {
                const std::size_t comma = list.find(',');
                if (comma != 0) s.listen_hosts.emplace_back(list.substr(0, comma));
                if (comma == std::string_view::npos) break;
                list.remove_prefix(comma + 1);
            }
            if (s.listen_hosts.empty()) throw BadFlag("-l needs at least one host");
        } else if (flag == "-m" || flag == "--memory-limit") {
            s.memory_mib = parse_size(next(), "-m");
        } else if (flag == "-c" || flag == "--conn-limit") {
            s.max_connections = parse_size(next(), "-c");
        } else if (flag == "-t" || flag == "--threads") {
            const auto v = next();
            const auto n = parse_number<unsigned>(v);
            if (!n || *n == 0 || *n > 256) throw BadFlag("-t takes 1 .. 256 threads, not '" + std::string(v) + "'");
            s.threads = *n;
        } else if (flag == "-I" || flag == "--max-item-size") {
            s.max_item_bytes = parse_size(next(), "-I");
            if (s.max_item_bytes > max_item_size_limit)
                throw BadFlag("-I is at most " + std::to_string(max_item_size_limit >> 20) + "m here");
        } else if (flag == "--codec") {
            s.codec = std::string(next());
            if (s.codec == "none") s.codec = "identity";
        } else if (flag == "--memcached-keys") {
            s.memcached_keys = true;
        } else if (flag == "--eviction") {
            s.eviction = std::string(next());
            if (!parse_eviction(s.eviction))
                throw BadFlag("--eviction takes s3fifo-size, s3fifo or lru, not '" + s.eviction + "'");
        } else if (flag.starts_with("-v") && flag.find_first_not_of('v', 1) == std::string_view::npos) {
            verbosity += static_cast<int>(flag.size() - 1);
        } else if (flag == "-U" || flag == "-u") {
            next();
        } else if (flag == "-d") {
        } else {
            throw BadFlag("unknown flag '" + std::string(flag) + "' (see --help)");
        }
    }
    return s;
}

// memcached raises its descriptor limit to fit -c; so does this, as far as the hard limit allows.
void raise_descriptor_limit(std::size_t connections, int verbosity) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t wanted = static_cast<rlim_t>(connections) + 64;
    if (limit.rlim_cur >= wanted) return;
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < wanted && verbosity > 0)
        std::fprintf(stderr, "zpage-memcached: only %llu file descriptors for -c %zu\n",
                     static_cast<unsigned long long>(limit.rlim_cur), connections);
}

// Shards of the cache: each evicts within its own share, which must hold several of the largest
// items, so small memory limits get fewer.
std::size_t shards_for(std::size_t capacity, std::size_t max_item) {
    std::size_t shards = 8;
    while (shards > 1 && capacity / shards < 8 * max_item) shards /= 2;
    return shards;
}

int serve(const ServerSettings& settings, int verbosity) {
    // Signals go to the main thread only, which waits for them; workers never see one.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    const zpage_bench::CodecSpec codec = zpage_bench::parse_algos(settings.codec).front();
    const std::size_t capacity = settings.memory_mib << 20;
    const zpage::CacheConfig config{.capacity_bytes = capacity,
                                    .shards = shards_for(capacity, settings.max_item_bytes)};
    const auto cache = make_backend(codec, *parse_eviction(settings.eviction), config);
    ItemStore items(*cache, settings.max_item_bytes);
    ServerContext context{.settings = settings, .items = items, .connections = {}, .workers = {}, .verbosity = {}};
    context.verbosity.store(verbosity);
    for (unsigned i = 0; i < settings.threads; ++i) context.workers.push_back(std::make_unique<CommandCounters>());

    raise_descriptor_limit(settings.max_connections, verbosity);
    const std::vector<FileDescriptor> listeners = listen_on(settings.listen_hosts, settings.port);
    context.settings.port = bound_port(listeners.front());
    std::vector<std::unique_ptr<Worker>> workers;
    for (unsigned i = 0; i < settings.threads; ++i)
        workers.push_back(std::make_unique<Worker>(context, *context.workers[i], listeners));
    if (verbosity > 0) {
        std::fprintf(stderr, "zpage-memcached: listening on port %u (%s, %s, %zu MiB, %u threads, -I %zu)\n",
                     context.settings.port, cache->codec_name().c_str(), settings.eviction.c_str(),
                     settings.memory_mib, settings.threads, settings.max_item_bytes);
    }

    std::exception_ptr failure;
    std::mutex failure_mutex;
    std::vector<std::thread> threads;
    for (auto& w : workers) {
        threads.emplace_back([&, worker = w.get()] {
            try {
                worker->run();
            } catch (...) {
                std::lock_guard guard(failure_mutex);
                failure = std::current_exception();
                ::kill(::getpid(), SIGTERM);  // wakes the main thread, which stops the others
            }
        });
    }
    int signal = 0;
    sigwait(&stop_signals, &signal);
    for (auto& w : workers) w->stop();
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
    if (verbosity > 0) std::fprintf(stderr, "zpage-memcached: stopped by signal %d\n", signal);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int verbosity = 0;
    ServerSettings settings;
    try {
        settings = parse_flags(argc, argv, verbosity);
        zpage_bench::parse_algos(settings.codec);  // a bad codec name is a bad flag
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zpage-memcached: %s\n", e.what());
        return 2;
    }
    try {
        return serve(settings, verbosity);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zpage-memcached: %s\n", e.what());
        return 1;
    }
}
