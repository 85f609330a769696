// zpage-bench --backing FILE --mem-limit MiB: zpage's stores run under a memory limit with the
// reclaimer writing pages back to FILE, and, for scale, the same file system's speed for what
// `dd bs=1M oflag=direct` does, measured in the same run.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>

#include <zpage/reclaim.hpp>

#include "posix_io.hpp"
#include "types.hpp"

namespace zpage_bench {

struct BackingSpec {
    std::string path;                  // a regular file zpage-bench may create, use and remove
    std::size_t mem_limit_bytes = 0;   // each zpage store's mem_limit
};

// The reclaimer of a --backing run: balanced()'s watermarks and direct reclaim, without its age
// scan and daily budget, which a run of seconds never reaches.
inline zpage::ReclaimConfig bench_reclaim() {
    zpage::ReclaimConfig c = zpage::ReclaimConfig::balanced();
    c.idle_age = std::chrono::seconds(0);
    c.daily_writeback_blocks = 0;
    return c;
}

// Refuses a path zpage-bench must not write over: anything but an absent or empty regular file
// in an existing folder.
inline void check_backing_path(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode))
            throw BadInput("--backing " + path + " is not a regular file (zpage-bench writes only to files it may remove)");
        if (st.st_size != 0)
            throw BadInput("--backing " + path + " exists and is not empty; zpage-bench would write over it: name a new file");
    } else if (errno != ENOENT) {
        throw BadInput("--backing " + path + ": " + posix::errno_text(errno));
    }
    const std::filesystem::path parent = std::filesystem::absolute(path).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(parent, ec))
        throw BadInput("--backing " + path + ": the folder " + parent.string() + " does not exist");
}

// Removes the backing file when the run ends, however it ends.
class RemoveOnExit {
public:
    explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
    ~RemoveOnExit() { ::unlink(path_.c_str()); }
    RemoveOnExit(const RemoveOnExit&) = delete;
    RemoveOnExit& operator=(const RemoveOnExit&) = delete;

private:
    std::string path_;
};

// MiB/s of `bytes` written to a new file at `path` in 1 MiB O_DIRECT requests, one at a time,
// as `dd if=/dev/urandom of=PATH bs=1M count=N oflag=direct` does (the data is random, made before
// the clock starts); the file is removed after.
inline double direct_write_mib_s(const std::string& path, std::size_t bytes) {
    constexpr std::size_t block = std::size_t{1} << 20;
    const RemoveOnExit remove(path);
    const posix::UniqueFd fd = posix::open_fd(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT);
    if (!fd) throw BadInput("cannot open " + path + " for O_DIRECT writes: " + posix::errno_text(errno));
    void* buffer = ::mmap(nullptr, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buffer == MAP_FAILED) throw BadInput("cannot allocate 1 MiB: " + posix::errno_text(errno));
    std::mt19937_64 rng(1);
    auto* words = static_cast<std::uint64_t*>(buffer);
    for (std::size_t i = 0; i < block / sizeof(std::uint64_t); ++i) words[i] = rng();
    const auto start = std::chrono::steady_clock::now();
    bool ok = true;
    for (std::size_t done = 0; done < bytes && ok; done += block)
        ok = ::pwrite(fd.get(), buffer, block, static_cast<off_t>(done)) == static_cast<ssize_t>(block);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int err = errno;
    ::munmap(buffer, block);
    if (!ok) throw BadInput("cannot write to " + path + " with O_DIRECT: " + posix::errno_text(err));
    return seconds <= 0 ? 0 : static_cast<double>(bytes) / (1024.0 * 1024.0) / seconds;
}

}  // namespace zpage_bench
