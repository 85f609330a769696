// zpage: error codes and the small status/result types every fallible hot-path call returns.
//
// Hot paths never throw: they return a Status (or Result<T>) carrying an errc. Exceptions are kept
// for construction and configuration, where a program cannot sensibly continue anyway.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace zpage {

enum class errc : std::uint8_t {
    ok = 0,
    out_of_range,      // page index >= capacity
    memory_limit,      // storing would take mem_used_total over mem_limit; nothing was changed
    out_of_memory,     // the OS refused memory, or a reservation is exhausted; nothing was changed
    corrupt_data,      // compressed bytes did not decode to exactly one page
    invalid_argument,  // a buffer of the wrong size, an object larger than the allocator serves
    io_error,          // a backing store's read or write failed (EIO, a short transfer); nothing was kept
    no_space,          // a backing store is full (its configured size, or ENOSPC below it); nothing was kept
    not_found,         // a cache has no item under the key (a miss)
    count              // sentinel: number of codes
};

[[nodiscard]] constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
    case errc::ok: return "ok";
    case errc::out_of_range: return "page index out of range";
    case errc::memory_limit: return "memory limit reached";
    case errc::out_of_memory: return "out of memory";
    case errc::corrupt_data: return "corrupt compressed data";
    case errc::invalid_argument: return "invalid argument";
    case errc::io_error: return "backing store I/O error";
    case errc::no_space: return "no space on the backing store";
    case errc::not_found: return "no such key";
    case errc::count: break;
    }
    return "unknown error";
}

// Outcome of an operation that produces no value. Converts to true on success, so
// `if (!store.store(i, page)) ...` reads naturally.
class [[nodiscard]] Status {
public:
    constexpr Status() noexcept = default;
    constexpr Status(errc code) noexcept : code_(code) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] constexpr bool ok() const noexcept { return code_ == errc::ok; }
    constexpr explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] constexpr errc error() const noexcept { return code_; }
    [[nodiscard]] constexpr std::string_view message() const noexcept { return to_string(code_); }

    friend constexpr bool operator==(Status a, Status b) noexcept { return a.code_ == b.code_; }
    friend constexpr bool operator==(Status a, errc b) noexcept { return a.code_ == b; }

private:
    errc code_ = errc::ok;
};

// A value or an error code. T must be cheap to copy (handles, sizes): results travel by value.
template <class T>
class [[nodiscard]] Result {
    static_assert(std::is_trivially_copyable_v<T>, "zpage::Result holds small trivially copyable values");

public:
    constexpr Result(T value) noexcept : value_(value) {}  // NOLINT(google-explicit-constructor)
    // Precondition: code != errc::ok (a successful result carries a value).
    constexpr Result(errc code) noexcept : code_(code) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] constexpr bool ok() const noexcept { return code_ == errc::ok; }
    constexpr explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] constexpr errc error() const noexcept { return code_; }
    [[nodiscard]] constexpr Status status() const noexcept { return code_; }
    // Precondition: ok().
    [[nodiscard]] constexpr const T& value() const noexcept { return value_; }
    [[nodiscard]] constexpr const T& operator*() const noexcept { return value_; }
    [[nodiscard]] constexpr const T* operator->() const noexcept { return &value_; }

private:
    T value_{};
    errc code_ = errc::ok;
};

}  // namespace zpage
