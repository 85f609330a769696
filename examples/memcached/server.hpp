// zpage-memcached: the event loop. Each worker thread has its own epoll instance, serving any
// number of connections; every worker waits on the listening sockets too (EPOLLEXCLUSIVE wakes one)
// and keeps the connections it accepts. Sockets are non-blocking, so a slow or vanished client
// costs its own connection only:
// - a worker runs at most `commands_per_turn` commands of one connection before it serves others;
// - a connection whose replies pile up past `max_pending_output` is not read from until the
//   client has taken them (memcached's "conn_yields" and write backpressure);
// - a line that grows past its limit without a newline closes the connection (protocol.hpp);
// - a peer that errs is closed at once, its half-read command dropped; one that hangs up, or quits,
//   is closed once the replies to what it sent before are out;
// - a system call that fails on one connection (recv, send, epoll_ctl) closes that connection
//   alone; EINTR, EAGAIN and short transfers are no failures. accept failing for want of
//   descriptors or memory pauses accepting for a moment rather than spinning on the listener.
// Every socket and epoll call goes through socket_calls.hpp, where tests make them fail.
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
#include "socket_calls.hpp"

namespace zpage_memcached {

inline constexpr std::size_t commands_per_turn = 64;
inline constexpr std::size_t max_pending_output = std::size_t{4} << 20;
inline constexpr std::size_t read_chunk_bytes = 64 * 1024;
// A buffer this large is given back once it is empty, so idle connections cost little.
inline constexpr std::size_t idle_buffer_bytes = 64 * 1024;
// How long a worker stops accepting when accept4 fails for want of descriptors or memory.
inline constexpr std::chrono::milliseconds accept_pause{100};

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
        if (!watch_descriptor(wake_.get(), EPOLLIN, &wake_)) throw_errno("epoll_ctl");
        for (const auto& l : listeners_) {
            if (!watch_descriptor(l.get(), EPOLLIN | EPOLLEXCLUSIVE, &l)) throw_errno("epoll_ctl");
        }
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
            const int timeout = !ready_.empty() ? 0 : accept_paused_ ? static_cast<int>(accept_pause.count()) : -1;
            const int n =
                socket_calls::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
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
        // Nothing more to run (quit, a line too long, or the peer hung up): closed once `out` is
        // sent, by flush(); until then it waits for room to send, not for input.
        bool close_when_sent = false;
        bool closed = false;
        bool ready = false;  // in ready_: input left over that may hold whole commands
    };

    // Adds `fd` to the epoll set; false with errno set when the kernel refuses.
    bool watch_descriptor(int fd, std::uint32_t events, const void* tag) noexcept {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = const_cast<void*>(tag);
        return socket_calls::epoll_control(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
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
            const int fd = socket_calls::accept(listener);
            if (fd < 0) {
                const int error = errno;
                if (error == EAGAIN || error == EWOULDBLOCK) return;  // another worker took it, or none is left
                // Interrupted, or one connection dropped before it was taken: the next may be fine.
                if (error == EINTR || socket_calls::dropped_one_connection(error)) continue;
                // EMFILE, ENFILE, ENOBUFS, ENOMEM, or an error not foreseen: the connection stays
                // queued and the listener readable, so that trying again at once would spin.
                pause_accepting(error);
                return;
            }
            ConnectionCounters& counts = server_.connections;
            if (counts.curr_connections.load() >= server_.settings.max_connections) {
                counts.rejected_connections.fetch_add(1);
                [[maybe_unused]] const auto ignored =
                    socket_calls::send(fd, reply::too_many_connections.data(), reply::too_many_connections.size());
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
            if (socket_calls::epoll_control(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
                delete c;  // ENOMEM, ENOSPC (max_user_watches): closed before it was served or counted
                continue;
            }
            connections_.insert(c);
            counts.curr_connections.fetch_add(1);
            counts.total_connections.fetch_add(1);
            if (server_.verbosity.load(std::memory_order_relaxed) > 1) std::fprintf(stderr, "<%d new client connection\n", fd);
        }
    }

    // Out of descriptors or memory: stop taking connections for accept_pause rather than spin on
    // the listener (memcached too stops accepting for a while). Every listener leaves this
    // worker's epoll set, also one that a partial resume_accepting() armed again (ENOENT for the
    // others is harmless); the connections it serves are served as before.
    void pause_accepting(int error) {
        for (const auto& l : listeners_)
            static_cast<void>(socket_calls::epoll_control(epoll_.get(), EPOLL_CTL_DEL, l.get(), nullptr));
        accept_paused_ = true;
        accept_resume_ = std::chrono::steady_clock::now() + accept_pause;
        if (server_.verbosity.load(std::memory_order_relaxed) > 0)
            std::fprintf(stderr, "zpage-memcached: accept: %s; not accepting for %lld ms\n", std::strerror(error),
                         static_cast<long long>(accept_pause.count()));
    }
    // Arms the listeners again. One the kernel will not take back now (ENOMEM, ENOSPC) keeps the
    // worker paused for another accept_pause: throwing here, as at start-up, would end the whole
    // server over the shortage it is waiting out. EEXIST: armed by an earlier, partial resume.
    void resume_accepting() {
        bool all_armed = true;
        for (const auto& l : listeners_) {
            if (!watch_descriptor(l.get(), EPOLLIN | EPOLLEXCLUSIVE, &l) && errno != EEXIST) all_armed = false;
        }
        if (all_armed) {
            accept_paused_ = false;
        } else {
            accept_resume_ = std::chrono::steady_clock::now() + accept_pause;
        }
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
            // Into the worker's buffer, then appended: growing `in` by a chunk to read into it
            // would zero the chunk first, twice a request (the read that ends with EAGAIN too).
            const ssize_t got = socket_calls::receive(c.fd.get(), received_.get(), read_chunk_bytes);
            const int error = errno;  // kept before anything else can change it
            if (got > 0) {
                c.in.append(received_.get(), static_cast<std::size_t>(got));
                continue;
            }
            if (got == 0) {
                c.peer_gone = true;
                return true;
            }
            if (error == EAGAIN || error == EWOULDBLOCK) return true;
            if (error == EINTR) continue;
            close(c);  // ECONNRESET, ETIMEDOUT, ENOMEM...: a data block half read is dropped, not stored
            return false;
        }
    }

    // Runs the commands the connection has buffered (a turn's worth), sends replies, and decides
    // what to wait for next.
    void serve(Connection& c) {
        if (c.closed) return;
        if (pending_output(c) > max_pending_output) return watch(c);  // flush() requeues it
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
        // A get that process() stopped at max_pending_output used no input yet has more to run: it
        // resumes once the replies are out (flush() requeues the connection), hung up or not.
        const bool resumes_when_sent = c.in_used < c.in.size() && c.out.size() >= max_pending_output;
        // Closed only once its replies are out: a send that found no room (EAGAIN) resumes, as for
        // any connection, rather than cut the reply before a quit or a hang-up short.
        if (c.session.closing() || (c.peer_gone && !more && !resumes_when_sent)) c.close_when_sent = true;
        if (!flush(c)) return;
        if (c.close_when_sent) return;  // flush() closes it once the rest is sent
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

    // Sends what it can, from where the last send stopped; false when the connection was closed
    // (a send or epoll_ctl failed, or it was done and all is sent): the caller must then leave it,
    // and above all not queue it in ready_, since it is freed at the end of this round.
    bool flush(Connection& c) {
        while (pending_output(c) > 0) {
            const ssize_t sent = socket_calls::send(c.fd.get(), c.out.data() + c.out_sent, pending_output(c));
            if (sent > 0) {
                c.out_sent += static_cast<std::size_t>(sent);
                // As memcached's: the bytes the sockets took, not those meant for a client that failed.
                CommandCounters::bump(counters_.bytes_written, static_cast<std::uint64_t>(sent));
                continue;
            }
            if (sent < 0 && errno == EINTR) continue;
            if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // watch() waits for room
            // EPIPE, ECONNRESET...: the client is gone. Whatever it got of a reply ends with the
            // connection, never followed by more, so it cannot pass for a whole one.
            close(c);
            return false;
        }
        if (pending_output(c) == 0) {
            c.out.clear();
            c.out_sent = 0;
            if (c.out.capacity() > idle_buffer_bytes) c.out.shrink_to_fit();
            if (c.close_when_sent) {
                close(c);
                return false;
            }
            if (c.in_used < c.in.size() && !c.ready) {  // input held back while replies piled up
                c.ready = true;
                ready_.push_back(&c);
            }
        }
        watch(c);
        return !c.closed;  // watch() closes it when epoll_ctl fails
    }

    // Waits for input unless replies pile up; for room to send while any are pending.
    void watch(Connection& c) {
        if (c.closed) return;
        std::uint32_t events = 0;
        if (pending_output(c) <= max_pending_output && !c.peer_gone && !c.close_when_sent)
            events |= EPOLLIN | EPOLLRDHUP;
        if (pending_output(c) > 0) events |= EPOLLOUT;
        if (events == c.events) return;
        c.events = events;
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = &c;
        // ENOMEM...: epoll can no longer tell when this connection is ready, so it cannot be served.
        if (socket_calls::epoll_control(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) != 0) close(c);
    }

    void close(Connection& c) {
        if (c.closed) return;
        c.closed = true;
        // A failed DEL changes nothing: closing the descriptor (its only one) takes it out of the set.
        static_cast<void>(socket_calls::epoll_control(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr));
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
    std::unique_ptr<char[]> received_ = std::make_unique_for_overwrite<char[]>(read_chunk_bytes);
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
