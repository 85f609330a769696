// zpage-memcached: the event loop. Each worker thread has its own epoll instance, serving any
// number of connections; every worker waits on the listening sockets too (EPOLLEXCLUSIVE wakes one)
// and keeps the connections it accepts. Sockets are non-blocking, so a slow or vanished client
// costs its own connection only:
// - a worker runs at most `commands_per_turn` commands of one connection before it serves others;
// - a connection whose replies pile up past `max_pending_output` is not read from until the
//   client has taken them (memcached's "conn_yields" and write backpressure);
// - a line that grows past its limit without a newline closes the connection (protocol.hpp);
// - a peer that hangs up or errs is closed at once, its half-read command dropped.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "posix_io.hpp"  // zpage-bench's
#include "session.hpp"

namespace zpage_memcached {

inline constexpr std::size_t commands_per_turn = 64;
inline constexpr std::size_t max_pending_output = std::size_t{4} << 20;
inline constexpr std::size_t read_chunk_bytes = 64 * 1024;
// A buffer this large is given back once it is empty, so idle connections cost little.
inline constexpr std::size_t idle_buffer_bytes = 64 * 1024;

using FileDescriptor = zpage_bench::posix::UniqueFd;  // zpage-bench's owned descriptor

[[noreturn]] inline void throw_errno(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Listening sockets on each host of `hosts` (names or addresses) at `port`; port 0 picks one,
// which bound_port() reports.
inline std::vector<FileDescriptor> listen_on(const std::vector<std::string>& hosts, std::uint16_t port) {
    std::vector<FileDescriptor> sockets;
    for (const std::string& host : hosts) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* found = nullptr;
        const std::string service = std::to_string(port);
        if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
            throw std::runtime_error("cannot resolve -l " + host + ": " + ::gai_strerror(rc));
        std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
        for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
            FileDescriptor fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
            if (fd.get() < 0) throw_errno("socket");
            const int one = 1;
            ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0)
                throw_errno("cannot listen on " + host + ":" + service);
            if (::listen(fd.get(), 1024) != 0) throw_errno("listen");
            sockets.push_back(std::move(fd));
        }
    }
    return sockets;
}

inline std::uint16_t bound_port(const FileDescriptor& socket) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) throw_errno("getsockname");
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
    return ntohs(in->sin_port);  // sin_port and sin6_port sit at the same offset
}

class Worker {
public:
    Worker(ServerContext& server, CommandCounters& counters, const std::vector<FileDescriptor>& listeners)
        : server_(server), counters_(counters), listeners_(listeners) {
        epoll_ = FileDescriptor(::epoll_create1(EPOLL_CLOEXEC));
        wake_ = FileDescriptor(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (epoll_.get() < 0 || wake_.get() < 0) throw_errno("epoll");
        add(wake_.get(), EPOLLIN, &wake_);
        for (const auto& l : listeners_) add(l.get(), EPOLLIN | EPOLLEXCLUSIVE, &l);
    }
    ~Worker() {
        for (Connection* c : connections_) delete c;
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Serves until stop() is called from another thread.
    void run() {
        std::vector<epoll_event> events(256);
        while (!stopping_.load(std::memory_order_relaxed)) {
            const int timeout = !ready_.empty() ? 0 : accept_paused_ ? 100 : -1;
            const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
            if (n < 0 && errno != EINTR) throw_errno("epoll_wait");
            for (int i = 0; i < n; ++i) dispatch(events[static_cast<std::size_t>(i)]);
            serve_ready();
            if (accept_paused_ && std::chrono::steady_clock::now() >= accept_resume_) resume_accepting();
            for (Connection* c : closed_) delete c;
            closed_.clear();
        }
    }

    void stop() noexcept {
        stopping_.store(true, std::memory_order_relaxed);
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto ignored = ::write(wake_.get(), &one, sizeof one);
    }

private:
    struct Connection {
        Connection(int descriptor, ServerContext& server, CommandCounters& counters, Scratch& scratch)
            : fd(descriptor), session(server, counters, scratch) {}
        FileDescriptor fd;
        Session session;
        std::string in;
        std::size_t in_used = 0;
        std::string out;
        std::size_t out_sent = 0;
        std::uint32_t events = 0;  // what epoll waits for now
        bool peer_gone = false;    // read() saw the end of the stream
        bool closed = false;
        bool ready = false;        // in ready_: input left over that may hold whole commands
    };

    void add(int fd, std::uint32_t events, const void* tag) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = const_cast<void*>(tag);
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl");
    }

    void dispatch(const epoll_event& ev) {
        void* tag = ev.data.ptr;
        if (tag == &wake_) return;
        for (const auto& l : listeners_) {
            if (tag == &l) {
                accept_all(l.get());
                return;
            }
        }
        auto* c = static_cast<Connection*>(tag);
        if (c->closed) return;
        if ((ev.events & EPOLLERR) != 0) return close(*c);
        if ((ev.events & EPOLLOUT) != 0 && !flush(*c)) return;
        if ((ev.events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0) {
            if (!read_from(*c)) return;
        }
        serve(*c);
    }

    void accept_all(int listener) {
        for (;;) {
            const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting();
                return;  // EAGAIN: another worker took it, or none is left
            }
            ConnectionCounters& counts = server_.connections;
            if (counts.curr_connections.load() >= server_.settings.max_connections) {
                counts.rejected_connections.fetch_add(1);
                [[maybe_unused]] const auto ignored = ::send(fd, reply::too_many_connections.data(),
                                                             reply::too_many_connections.size(), MSG_NOSIGNAL);
                ::close(fd);
                continue;
            }
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto* c = new Connection(fd, server_, counters_, scratch_);
            c->events = EPOLLIN | EPOLLRDHUP;
            epoll_event ev{};
            ev.events = c->events;
            ev.data.ptr = c;
            if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
                delete c;
                continue;
            }
            connections_.insert(c);
            counts.curr_connections.fetch_add(1);
            counts.total_connections.fetch_add(1);
            if (server_.verbosity.load(std::memory_order_relaxed) > 1) std::fprintf(stderr, "<%d new client connection\n", fd);
        }
    }

    // Out of descriptors: stop taking connections for a moment rather than spin on the listener.
    void pause_accepting() {
        if (accept_paused_) return;
        for (const auto& l : listeners_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.get(), nullptr);
        accept_paused_ = true;
        accept_resume_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
        if (server_.verbosity.load(std::memory_order_relaxed) > 0)
            std::fprintf(stderr, "zpage-memcached: out of file descriptors; not accepting for 100 ms\n");
    }
    void resume_accepting() {
        for (const auto& l : listeners_) add(l.get(), EPOLLIN | EPOLLEXCLUSIVE, &l);
        accept_paused_ = false;
    }

    // Reads what the socket has; false when the connection was closed.
    bool read_from(Connection& c) {
        for (;;) {
            // Enough for any line the session accepts and any data block it waits for: past
            // that, it has either used the input or refused it (a line too long closes).
            const std::size_t buffered = c.in.size() - c.in_used;
            if (buffered > std::max(c.session.pending_block_bytes(), max_get_line_bytes)) return true;
            if (c.in_used > 0 && c.in_used == c.in.size()) {
                c.in.clear();
                c.in_used = 0;
            }
            const std::size_t old = c.in.size();
            c.in.resize(old + read_chunk_bytes);
            const ssize_t got = ::recv(c.fd.get(), c.in.data() + old, read_chunk_bytes, 0);
            c.in.resize(old + (got > 0 ? static_cast<std::size_t>(got) : 0));
            if (got > 0) continue;
            if (got == 0) {
                c.peer_gone = true;
                return true;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            if (errno == EINTR) continue;
            close(c);
            return false;
        }
    }

    // Runs the commands the connection has buffered (a turn's worth), sends replies, and decides
    // what to wait for next.
    void serve(Connection& c) {
        if (c.closed) return;
        if (pending_output(c) > max_pending_output) return watch(c);  // flush() requeues it
        const std::size_t before = c.out.size();
        const std::string_view input = std::string_view(c.in).substr(c.in_used);
        const std::size_t used = c.session.process(input, c.out, commands_per_turn, max_pending_output);
        c.in_used += used;
        const bool more = used > 0 && c.in_used < c.in.size() && !c.session.closing();
        if (c.in_used == c.in.size()) {
            c.in.clear();
            c.in_used = 0;
            if (c.in.capacity() > idle_buffer_bytes) c.in.shrink_to_fit();
        } else if (c.in_used > idle_buffer_bytes && c.in_used * 2 > c.in.size()) {
            c.in.erase(0, c.in_used);
            c.in_used = 0;
        }
        CommandCounters::bump(counters_.bytes_written, c.out.size() - before);
        if (!flush(c)) return;
        if (c.session.closing() || (c.peer_gone && !more)) {
            close(c);
            return;
        }
        if (more && !c.ready) {
            c.ready = true;
            ready_.push_back(&c);
        }
        watch(c);
    }

    void serve_ready() {
        std::vector<Connection*> batch;
        batch.swap(ready_);
        for (Connection* c : batch) {
            c->ready = false;
            if (c->closed || pending_output(*c) > max_pending_output) continue;  // flush() requeues it
            serve(*c);
        }
    }

    static std::size_t pending_output(const Connection& c) noexcept { return c.out.size() - c.out_sent; }

    // Sends what it can; false when the connection was closed.
    bool flush(Connection& c) {
        while (pending_output(c) > 0) {
            const ssize_t sent = ::send(c.fd.get(), c.out.data() + c.out_sent, pending_output(c), MSG_NOSIGNAL);
            if (sent > 0) {
                c.out_sent += static_cast<std::size_t>(sent);
                continue;
            }
            if (sent < 0 && errno == EINTR) continue;
            if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            close(c);  // EPIPE, ECONNRESET: the client is gone
            return false;
        }
        if (pending_output(c) == 0) {
            c.out.clear();
            c.out_sent = 0;
            if (c.out.capacity() > idle_buffer_bytes) c.out.shrink_to_fit();
            if (c.in_used < c.in.size() && !c.ready) {  // input held back while replies piled up
                c.ready = true;
                ready_.push_back(&c);
            }
        }
        watch(c);
        return true;
    }

    // Waits for input unless replies pile up; for room to send while any are pending.
    void watch(Connection& c) {
        if (c.closed) return;
        std::uint32_t events = 0;
        if (pending_output(c) <= max_pending_output && !c.peer_gone) events |= EPOLLIN | EPOLLRDHUP;
        if (pending_output(c) > 0) events |= EPOLLOUT;
        if (events == c.events) return;
        c.events = events;
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = &c;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) != 0) close(c);
    }

    void close(Connection& c) {
        if (c.closed) return;
        c.closed = true;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
        if (server_.verbosity.load(std::memory_order_relaxed) > 1)
            std::fprintf(stderr, "<%d connection closed\n", c.fd.get());
        c.fd.reset();
        if (c.ready) std::erase(ready_, &c);
        connections_.erase(&c);
        closed_.push_back(&c);  // freed after this round of events, which may still name it
        server_.connections.curr_connections.fetch_sub(1);
    }

    ServerContext& server_;
    CommandCounters& counters_;
    const std::vector<FileDescriptor>& listeners_;
    Scratch scratch_;
    FileDescriptor epoll_;
    FileDescriptor wake_;
    std::unordered_set<Connection*> connections_;
    std::vector<Connection*> ready_;
    std::vector<Connection*> closed_;
    std::atomic<bool> stopping_{false};
    bool accept_paused_ = false;
    std::chrono::steady_clock::time_point accept_resume_;
};

}  // namespace zpage_memcached
