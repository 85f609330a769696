// zpage-bench: the POSIX pieces inputs.hpp and kernel_zram.hpp share: an owned file descriptor,
// reads and writes that retry on EINTR and short counts, small whole-file reads, errno text.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

namespace zpage_bench::posix {

// An owned file descriptor, closed on destruction so that no error path leaks one.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

// Every descriptor zpage-bench opens is close-on-exec. On failure the result is empty and errno says why.
inline UniqueFd open_fd(const std::string& path, int flags) {
    return UniqueFd(::open(path.c_str(), flags | O_CLOEXEC));
}

inline std::string errno_text(int err) { return std::strerror(err); }

// Runs `io(buffer, length, done)` (one read returning a byte count, 0 at end of file, or -1 with
// errno) until `len` bytes came or the file ended, retrying EINTR. Returns the bytes read (fewer
// than len only at end of file), or -1 with errno set if nothing could be read.
template <class Io>
ssize_t read_fully(void* buf, std::size_t len, Io&& io) {
    std::size_t done = 0;
    while (done < len) {
        const ssize_t n = io(static_cast<char*>(buf) + done, len - done, done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            if (done == 0) return -1;
            break;
        }
    }
    return static_cast<ssize_t>(done);
}

// Reads up to len bytes at offset, as read_fully does.
inline ssize_t pread_full(int fd, void* buf, std::size_t len, off_t offset) {
    return read_fully(buf, len, [&](char* to, std::size_t n, std::size_t done) {
        return ::pread(fd, to, n, offset + static_cast<off_t>(done));
    });
}

// Reads up to len bytes from the current position, as read_fully does.
inline ssize_t read_full(int fd, void* buf, std::size_t len) {
    return read_fully(buf, len, [&](char* to, std::size_t n, std::size_t) { return ::read(fd, to, n); });
}

// Writes all len bytes, retrying on EINTR and short counts. Returns false with errno set on failure.
inline bool write_all(int fd, const void* buf, std::size_t len) {
    std::size_t done = 0;
    while (done < len) {
        const ssize_t n = ::write(fd, static_cast<const char*>(buf) + done, len - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

// The whole content of a small file such as /proc/PID/maps or a sysfs attribute. Returns false
// with errno set if the file cannot be opened or read.
inline bool read_small_file(const std::string& path, std::string& content) {
    content.clear();
    const UniqueFd fd = open_fd(path, O_RDONLY);
    if (!fd) return false;
    char buf[8192];
    for (;;) {
        const ssize_t n = read_full(fd.get(), buf, sizeof buf);
        if (n < 0) return false;
        content.append(buf, static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < sizeof buf) return true;
    }
}

// Writes text to a sysfs attribute in one write(2), as the kernel expects. Returns false with
// errno set on failure (a refused value is EINVAL, a busy device EBUSY).
inline bool write_small_file(const std::string& path, const std::string& text) {
    const UniqueFd fd = open_fd(path, O_WRONLY);
    if (!fd) return false;
    ssize_t n;
    do {
        n = ::write(fd.get(), text.data(), text.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) return false;
    if (static_cast<std::size_t>(n) != text.size()) {
        errno = EIO;
        return false;
    }
    return true;
}

}  // namespace zpage_bench::posix
