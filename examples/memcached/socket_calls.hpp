// zpage-memcached: every socket and epoll call the event loop (server.hpp) makes, in one place, so
// that tests can make any of them fail with a chosen errno, or move fewer bytes than asked, on the
// descriptor they choose (fault_injector): the approach of zpage's detail/file_io.hpp. With no
// injector installed a call costs one atomic load and a branch more than the bare system call.
//
// Each wrapper makes one call and retries nothing: EINTR, EAGAIN and short counts go back to the
// event loop, whose handling of them is what tests/test_memcached_server_faults.cpp checks.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace zpage_memcached::socket_calls {

enum class Call : std::uint8_t {
    accept,        // accept4(2) on a listening socket
    receive,       // recv(2) from a connection
    send,          // send(2) to a connection (a reply, or the "too many connections" refusal)
    epoll_add,     // epoll_ctl(EPOLL_CTL_ADD): a new connection, or a listener armed again after a pause
    epoll_modify,  // epoll_ctl(EPOLL_CTL_MOD): what a connection waits for changed
    epoll_delete,  // epoll_ctl(EPOLL_CTL_DEL): a connection closed, or a listener paused
    epoll_wait,    // epoll_wait(2)
    count
};

// What an injected fault does to a call: fail it with `error` (an errno), or, for receive and send,
// move at most `byte_limit` bytes (0: no limit), as a socket with less room or data does.
struct Fault {
    int error = 0;
    std::size_t byte_limit = 0;
    [[nodiscard]] constexpr bool any() const noexcept { return error != 0 || byte_limit != 0; }
};

// Test hook: when set, consulted before each call with the descriptor it acts on (the listener for
// accept, the connection for receive, send and epoll_ctl, the epoll instance for epoll_wait).
using FaultInjector = Fault (*)(Call, int fd) noexcept;
inline std::atomic<FaultInjector> fault_injector{nullptr};

[[nodiscard]] inline Fault injected(Call call, int fd) noexcept {
    const FaultInjector hook = fault_injector.load(std::memory_order_acquire);
    return hook != nullptr ? hook(call, fd) : Fault{};
}

// accept4(2) errors that report one connection the kernel took off the queue and dropped, not a
// state of the listener, so the next accept may well succeed: ECONNABORTED (reset before it was
// accepted), EPERM (refused by a firewall rule), and the network errors accept(2) says Linux passes
// on from the new socket and tells callers to treat as EAGAIN.
[[nodiscard]] constexpr bool dropped_one_connection(int error) noexcept {
    switch (error) {
    case ECONNABORTED:
    case EPERM:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return true;
    default: return false;
    }
}

// A new connection, non-blocking and close-on-exec, or -1 with errno set. An injected error that
// dropped_one_connection() is made as the kernel makes it: the pending connection is taken off the
// queue and reset (its client sees ECONNRESET), so that the fault is one connection's and the
// listener is not left readable by a connection nobody will take. With none pending, the real
// EAGAIN comes back instead.
[[nodiscard]] inline int accept(int listener) noexcept {
    const Fault f = injected(Call::accept, listener);
    if (f.error != 0 && !dropped_one_connection(f.error)) {
        errno = f.error;
        return -1;
    }
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 || f.error == 0) return fd;
    const linger reset_on_close{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof reset_on_close);
    ::close(fd);
    errno = f.error;
    return -1;
}

[[nodiscard]] constexpr std::size_t allowed_bytes(std::size_t length, const Fault& f) noexcept {
    return f.byte_limit != 0 ? std::min(length, f.byte_limit) : length;
}

// One recv(2): the bytes read, 0 at the end of the stream, or -1 with errno set.
[[nodiscard]] inline ssize_t receive(int fd, char* buffer, std::size_t length) noexcept {
    const Fault f = injected(Call::receive, fd);
    if (f.error != 0) {
        errno = f.error;
        return -1;
    }
    return ::recv(fd, buffer, allowed_bytes(length, f), 0);
}

// One send(2) without SIGPIPE (a vanished client is EPIPE): the bytes taken, or -1 with errno set.
[[nodiscard]] inline ssize_t send(int fd, const char* buffer, std::size_t length) noexcept {
    const Fault f = injected(Call::send, fd);
    if (f.error != 0) {
        errno = f.error;
        return -1;
    }
    return ::send(fd, buffer, allowed_bytes(length, f), MSG_NOSIGNAL);
}

// One epoll_ctl(2) of `op` (EPOLL_CTL_ADD, _MOD or _DEL) on `fd`: 0, or -1 with errno set.
[[nodiscard]] inline int epoll_control(int epoll, int op, int fd, epoll_event* event) noexcept {
    const Call call = op == EPOLL_CTL_ADD   ? Call::epoll_add
                      : op == EPOLL_CTL_MOD ? Call::epoll_modify
                                            : Call::epoll_delete;
    if (const Fault f = injected(call, fd); f.error != 0) {
        errno = f.error;
        return -1;
    }
    return ::epoll_ctl(epoll, op, fd, event);
}

// One epoll_wait(2): how many events it stored, or -1 with errno set.
[[nodiscard]] inline int epoll_wait(int epoll, epoll_event* events, int max_events, int timeout_ms) noexcept {
    if (const Fault f = injected(Call::epoll_wait, epoll); f.error != 0) {
        errno = f.error;
        return -1;
    }
    return ::epoll_wait(epoll, events, max_events, timeout_ms);
}

}  // namespace zpage_memcached::socket_calls
