// The compressed region's two ways of serving a fault, and its two ways of evicting a page, as
// types for doctest's TEST_CASE_TEMPLATE, so that a region test runs under each; and the skip of a
// region test where the kernel or a sandbox refuses userfaultfd.
#pragma once

#include <zpage/adapters/compressed_region.hpp>
#include <zpage/zpage.hpp>

#include <string>

#include <doctest/doctest.h>

namespace zpage_test {

// Why this process cannot make a region (userfaultfd refused, or without UFFDIO_MOVE); empty when
// it can.
inline std::string region_unavailable() {
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = 64});
    try {
        zpage::CompressedRegion<zpage::Lz4Store> probe(store, {.bytes = 64 * 4096});
    } catch (const zpage::RegionError& e) {
        return e.what();
    }
    return {};
}

struct HandlerThread {
    static constexpr zpage::FaultService value = zpage::FaultService::handler_thread;
    static constexpr zpage::Eviction eviction = zpage::Eviction::in_place;
};
struct FaultingThread {
    static constexpr zpage::FaultService value = zpage::FaultService::faulting_thread;
    static constexpr zpage::Eviction eviction = zpage::Eviction::in_place;
};
struct HandlerThreadEvictingByMove : HandlerThread {
    static constexpr zpage::Eviction eviction = zpage::Eviction::by_move;
};

}  // namespace zpage_test

TYPE_TO_STRING(zpage_test::HandlerThread);
TYPE_TO_STRING(zpage_test::FaultingThread);
TYPE_TO_STRING(zpage_test::HandlerThreadEvictingByMove);

// Use at the top of a region test: returns from it, with the reason, where regions cannot be made.
#define ZPAGE_REQUIRE_REGION()                                                          \
    do {                                                                                \
        if (const std::string why = ::zpage_test::region_unavailable(); !why.empty()) { \
            MESSAGE("skipped: " << why);                                                \
            return;                                                                     \
        }                                                                               \
    } while (0)

#define ZPAGE_TEST_FAULT_SERVICES zpage_test::HandlerThread, zpage_test::FaultingThread
// Each service evicting in place (the default), and evicting by move under handler threads: a
// fault's service and the way its page leaves meet only where a fault waits for an eviction to
// end, the same wait either way; fuzz_region covers faulting threads with evictions by move.
#define ZPAGE_TEST_REGION_MODES ZPAGE_TEST_FAULT_SERVICES, zpage_test::HandlerThreadEvictingByMove
