// zpage::Status and zpage::Result<T>: the error values every hot-path call returns (errc.hpp).
#include <zpage/errc.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>
#include <type_traits>

using zpage::errc;
using zpage::Result;
using zpage::Status;

// `if (status)` must work, `bool b = status;` and `int n = status;` must not.
static_assert(std::is_constructible_v<bool, Status> && !std::is_convertible_v<Status, bool>);
static_assert(std::is_constructible_v<bool, Result<int>> && !std::is_convertible_v<Result<int>, bool>);
static_assert(std::is_convertible_v<errc, Status>, "functions returning Status may `return errc::...;`");
static_assert(std::is_convertible_v<errc, Result<std::size_t>>);
static_assert(std::is_convertible_v<std::size_t, Result<std::size_t>>);
static_assert(Status{}.ok() && !Status{errc::corrupt_data}.ok(), "Status is usable in constant expressions");
static_assert(*Result<int>{7} == 7 && Result<int>{errc::out_of_range}.error() == errc::out_of_range);

TEST_CASE("a default Status is ok") {
    constexpr Status s;
    CHECK(s.ok());
    CHECK(static_cast<bool>(s));
    CHECK(s.error() == errc::ok);
    CHECK(s.message() == "ok");
    CHECK(s == errc::ok);
    CHECK(s == Status{errc::ok});
}

TEST_CASE("a Status made from an error code is false and says why") {
    const Status s = errc::memory_limit;
    CHECK_FALSE(s.ok());
    CHECK_FALSE(static_cast<bool>(s));
    CHECK(s.error() == errc::memory_limit);
    CHECK(s.message() == "memory limit reached");
    CHECK(s == errc::memory_limit);
    CHECK_FALSE(s == errc::ok);
    CHECK_FALSE(s == Status{errc::out_of_memory});
}

TEST_CASE("every error code has its own message, and only ok converts to true") {
    std::set<std::string_view> messages;
    for (auto i = 0; i < static_cast<int>(errc::count); ++i) {
        const auto code = static_cast<errc>(i);
        const Status s = code;
        CAPTURE(i);
        CHECK(static_cast<bool>(s) == (code == errc::ok));
        CHECK(s.message() == zpage::to_string(code));
        CHECK_FALSE(s.message().empty());
        CHECK(s.message() != "unknown error");
        messages.insert(s.message());
    }
    CHECK(messages.size() == static_cast<std::size_t>(errc::count));
    CHECK(zpage::to_string(errc::count) == "unknown error");
}

TEST_CASE("a Result holding a value is true and returns it") {
    const Result<std::uint64_t> r = std::uint64_t{0xfeedULL};
    REQUIRE(r.ok());
    CHECK(static_cast<bool>(r));
    CHECK(r.error() == errc::ok);
    CHECK(r.status().ok());
    CHECK(r.value() == 0xfeedULL);
    CHECK(*r == 0xfeedULL);
}

TEST_CASE("a Result holding an error is false and carries the code to its Status") {
    const Result<std::size_t> r = errc::out_of_range;
    CHECK_FALSE(r.ok());
    CHECK_FALSE(static_cast<bool>(r));
    CHECK(r.error() == errc::out_of_range);
    CHECK(r.status() == errc::out_of_range);
    CHECK(r.status().message() == "page index out of range");
}

TEST_CASE("a Result holds small trivially copyable structs by value") {
    struct Handle {
        std::uint32_t span;
        std::uint16_t slot;
    };
    const Result<Handle> r = Handle{3, 9};
    REQUIRE(r);
    CHECK(r.value().span == 3);
    CHECK((*r).slot == 9);

    const Result<Handle> failed = errc::out_of_memory;
    CHECK(failed.status().message() == "out of memory");
}
