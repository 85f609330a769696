// MemoryBackingStore's own edges (its behaviours shared with the file store run in the
// test_backing_store_* files): bad configurations throw, and an OS that refuses the arena's
// address space is std::bad_alloc at construction, never a failure later.
#include "backing_fixtures.hpp"

TEST_CASE("bad configurations of a memory store are refused at construction") {
    const auto make = [](zpage::MemoryBackingConfig c) { zpage::MemoryBackingStore store(c); };
    CHECK_THROWS_AS(make({}), std::invalid_argument);  // max_bytes 0
    CHECK_THROWS_AS(make({.max_bytes = 4095}), std::invalid_argument);
    CHECK_THROWS_AS(make({.max_bytes = 8192, .max_record_bytes = 8193}), std::invalid_argument);
    CHECK_THROWS_AS(make({.max_bytes = 1 << 20, .max_record_bytes = 0}), std::invalid_argument);
    CHECK_THROWS_AS(make({.max_bytes = 1 << 20, .max_batch_records = 0}), std::invalid_argument);
    CHECK_NOTHROW(make({.max_bytes = 8192, .max_record_bytes = 8192}));
}

TEST_CASE("an arena the OS refuses is bad_alloc at construction") {
    const zpage_test::OsFaults refuse(zpage::detail::os::Call::reserve, 0);
    CHECK_THROWS_AS(zpage::MemoryBackingStore({.max_bytes = 1 << 20}), std::bad_alloc);
}
