// The compressed region's two ways of serving a fault, as types for doctest's TEST_CASE_TEMPLATE,
// so that a region test runs under each.
#pragma once

#include <zpage/adapters/compressed_region.hpp>

#include <doctest/doctest.h>

namespace zpage_test {

struct HandlerThread {
    static constexpr zpage::FaultService value = zpage::FaultService::handler_thread;
};
struct FaultingThread {
    static constexpr zpage::FaultService value = zpage::FaultService::faulting_thread;
};

}  // namespace zpage_test

TYPE_TO_STRING(zpage_test::HandlerThread);
TYPE_TO_STRING(zpage_test::FaultingThread);

#define ZPAGE_TEST_FAULT_SERVICES zpage_test::HandlerThread, zpage_test::FaultingThread
