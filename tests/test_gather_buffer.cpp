// Objects that cross pages are gathered into a per-thread buffer from the heap, so that threads
// with small stacks can read them; when the heap refuses the buffer, threads share one under a
// lock and still read every object whole, and compaction still moves objects. Run under TSan in
// CI.
#include <zpage/allocator/allocator.hpp>
#include <zpage/allocator/handle_table.hpp>

#include <pthread.h>

#include <thread>

#include "fixtures.hpp"

namespace {
std::atomic<bool> refuse_nothrow_arrays{false};
}  // namespace

// The allocator takes its gather buffers with new (std::nothrow) std::byte[]; nothing else in the
// test does. Forwarding to the throwing form keeps sanitizers' new/delete pairing intact.
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
    if (refuse_nothrow_arrays.load()) return nullptr;
    try {
        return ::operator new[](bytes);
    } catch (...) {
        return nullptr;
    }
}

namespace {
using Allocator = zpage::SizeClassAllocator<4096>;
using Table = zpage::HandleTable<Allocator>;
using zpage_test::object_for;
}  // namespace

TEST_CASE("threads refused a gather buffer share one and read every object whole") {
    zpage::MemoryBudget budget;
    Allocator a({.budget = &budget});
    Table table(a, budget, 1 << 14);
    constexpr std::size_t objects = 3000;
    std::vector<zpage::StableHandle> handles;
    for (std::size_t k = 0; k < objects; ++k) {
        const auto h = table.allocate(object_for(k, 1000 + k % 3000));  // most cross a page
        REQUIRE(h);
        handles.push_back(*h);
    }
    refuse_nothrow_arrays.store(true);  // new threads get no buffer of their own
    std::atomic<std::size_t> bad{0}, read{0};
    auto reader = [&](std::size_t first) {
        for (std::size_t round = 0; round < zpage_test::scaled(4, 2); ++round)
            for (std::size_t k = first; k < objects; k += 2) {
                const auto want = object_for(k, 1000 + k % 3000);
                const bool ok = table.read(handles[k], [&](std::span<const std::byte> got) {
                    return got.size() >= want.size() && std::memcmp(got.data(), want.data(), want.size()) == 0;
                });
                bad += !ok;
                ++read;
            }
    };
    // Free every other object, then compact from a thread that also has no buffer of its own.
    for (std::size_t k = 1; k < objects; k += 2) table.deallocate(handles[k]);
    std::thread compactor([&] { CHECK(table.compact().objects_moved > 0); });
    std::thread r1(reader, 0), r2(reader, 0);
    compactor.join();
    r1.join();
    r2.join();
    refuse_nothrow_arrays.store(false);
    CHECK(read.load() > 0);
    CHECK(bad.load() == 0);
}

TEST_CASE("a thread with a 64 KiB stack reads an object of 128 KiB pages") {
    // A thread_local array of the largest object would sit in the static TLS every thread carries,
    // and glibc refuses to create a thread whose stack cannot hold it (EINVAL).
    zpage::SizeClassAllocator<131072> a;
    const auto want = object_for(7, 100000);
    const auto handle = a.allocate(want, 0);
    REQUIRE(handle);
    struct Job {
        const zpage::SizeClassAllocator<131072>* allocator;
        zpage::ObjectHandle handle;
        const std::vector<std::byte>* want;
        bool whole = false;
    } job{&a, *handle, &want};
    pthread_attr_t attr;
    REQUIRE(pthread_attr_init(&attr) == 0);
    REQUIRE(pthread_attr_setstacksize(&attr, 64 * 1024) == 0);
    pthread_t thread;
    const int created = pthread_create(
        &thread, &attr,
        [](void* arg) -> void* {
            auto& j = *static_cast<Job*>(arg);
            j.whole = j.allocator->read(j.handle, [&](std::span<const std::byte> got) {
                return std::memcmp(got.data(), j.want->data(), j.want->size()) == 0;
            });
            return nullptr;
        },
        &job);
    pthread_attr_destroy(&attr);
    REQUIRE(created == 0);
    pthread_join(thread, nullptr);
    CHECK(job.whole);
    a.deallocate(*handle);
}
