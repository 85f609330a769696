// The process's shared pool is never destroyed, so its refill thread outlives main(): a process
// that leaves while the thread is populating a chunk exits cleanly, with status 0 and (under ASan)
// no leak report. ctest checks both; this test only sets the scene.
#include <zpage/allocator/page_pool.hpp>

#include "fixtures.hpp"

TEST_CASE("a process leaves while the shared pool's refill thread is populating") {
    zpage::PagePool& pool = zpage::PagePool::shared();
    zpage_test::OsGate gate(zpage::detail::os::Call::populate);  // catches the refill thread in populate
    std::vector<zpage::PageNumber> pages(1);
    REQUIRE(pool.take(pages));
    REQUIRE(gate.wait_for_arrival(std::chrono::seconds(20)));
    CHECK(pool.stats().chunks_populated_background == 0);  // it is inside its first populate
    // Leaving the scope opens the gate: the thread goes on into madvise as the process exits.
}
