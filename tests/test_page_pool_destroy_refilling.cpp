// A PagePool destroyed while its refill thread is populating a chunk (held at the OS call by a
// gate): the destructor waits for that chunk, stops and joins the thread, and gives everything
// back; nothing crashes, leaks or races (this test runs under ASan and TSan too).
#include <zpage/allocator/page_pool.hpp>

#include <memory>
#include <thread>

#include "fixtures.hpp"
#include "watchdog.hpp"

using zpage::PageNumber;
using zpage::PagePool;

TEST_CASE("destroying a pool whose refill thread is populating a chunk") {
    zpage_test::Watchdog watchdog(std::chrono::seconds(20), "pool destroyed mid-refill");
    zpage_test::Watchdog::Worker& self = watchdog.enroll("test");
    auto pool = std::make_unique<PagePool>();
    zpage_test::OsGate gate(zpage::detail::os::Call::populate);  // holds the refill thread's populate
    std::vector<PageNumber> pages(3);
    self.working("take");
    REQUIRE(pool->take(pages));  // populates on this thread, wakes the refill thread
    self.done();
    REQUIRE(gate.wait_for_arrival(std::chrono::seconds(20)));
    for (const PageNumber p : pages) *pool->address(p) = std::byte{7};
    pool->give(pages);

    // The gate opens only once the destructor has had time to ask the thread to stop and to
    // start joining it: the thread then finishes its chunk with the pool being destroyed.
    std::thread opener([&] {
        zpage_test::Watchdog::Worker& me = watchdog.enroll("gate opener");
        me.working("waiting, then opening the gate");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        gate.open();
        me.done();
        watchdog.leave(me);
    });
    self.working("destroy the pool");
    pool.reset();
    self.done();
    opener.join();
    watchdog.leave(self);
}
