// Every shipped backing store under concurrent use: one writer writes batches while two readers
// read and verify records and one freer frees them (each record handed from thread to thread, as
// the store's entries hand them), and a stale reader reads records just freed, whose blocks the
// writer may be reusing (the reads may return anything, but must not crash or race). Under a
// watchdog, so a hang fails instead of stalling; run under TSan (label concurrency). At the end
// every record verified, and once all are freed nothing is left allocated.
#include <deque>
#include <mutex>
#include <thread>

#include "backing_fixtures.hpp"
#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct Live {
    std::size_t record;  // index into the test's records
    zpage::BackingLocation location;
};

// The records written and not yet freed, passed between threads: a reader or the freer owns a
// record while it holds it, so no record is read while it is freed.
class Pool {
public:
    void put(Live l) {
        std::lock_guard g(lock_);
        live_.push_back(l);
    }
    std::optional<Live> take() {
        std::lock_guard g(lock_);
        if (live_.empty()) return std::nullopt;
        const Live l = live_.front();
        live_.pop_front();
        return l;
    }
    std::size_t size() {
        std::lock_guard g(lock_);
        return live_.size();
    }

private:
    std::mutex lock_;
    std::deque<Live> live_;
};

}  // namespace

TEST_CASE_TEMPLATE("a writer, two readers, a freer and a stale reader at once", Maker, ZPAGE_TEST_BACKING_STORES) {
    const std::uint64_t seed = zpage_test::test_seed();
    // Small: the writer runs out of space and waits for the freer, and blocks are reused all the time.
    zpage_test::BackingUnderTest<Maker> b({.max_bytes = 512 * 4096, .max_batch_records = 64});
    const auto records = zpage_test::make_records(1024, seed);
    const auto run_for = zpage_test::under_sanitizer ? 3000ms : 1500ms;

    Pool pool;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> written{0}, verified{0}, freed{0}, stale_reads{0}, no_space{0}, errors{0};
    std::mutex recently_freed_lock;
    std::deque<Live> recently_freed;
    zpage_test::Watchdog watchdog(10000ms,
                                  "backing store stress of " + std::string(doctest::toString<Maker>().c_str()));

    auto writer = [&] {
        auto& me = watchdog.enroll("writer");
        std::mt19937_64 rng(seed);
        std::vector<zpage::BackingLocation> at(64);
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t first = rng() % records.size();
            const std::size_t n = std::min<std::size_t>(1 + rng() % 64, records.size() - first);
            me.working("write", first);
            const zpage::Status s = b->write(zpage_test::spans_of(records, first, n), std::span(at).first(n));
            if (s) {
                for (std::size_t i = 0; i < n; ++i) pool.put({first + i, at[i]});
                written += n;
            } else if (s == zpage::errc::no_space) {
                ++no_space;
                std::this_thread::yield();
            } else {
                ++errors;
            }
            me.done();
        }
        watchdog.leave(me);
    };
    auto reader = [&](int id) {
        auto& me = watchdog.enroll("reader " + std::to_string(id));
        std::vector<std::byte> back;
        while (!stop.load(std::memory_order_relaxed)) {
            const auto l = pool.take();
            if (!l) {
                std::this_thread::yield();
                continue;
            }
            const zpage_test::TestRecord& r = records[l->record];
            back.resize(r.bytes.size());
            me.working("read", l->record);
            const bool ok = b->read(l->location, back).ok() &&
                            zpage::verify_record(back, r.index, r.payload_bytes()).ok() && back == r.bytes;
            errors += !ok;
            verified += ok;
            me.done();
            pool.put(*l);
        }
        watchdog.leave(me);
    };
    auto freer = [&] {
        auto& me = watchdog.enroll("freer");
        std::mt19937_64 rng(seed ^ 0xf);
        while (!stop.load(std::memory_order_relaxed)) {
            // Keep the store about half full: free faster when it is fuller.
            if (pool.size() < 200 && rng() % 4 != 0) {
                std::this_thread::yield();
                continue;
            }
            const auto l = pool.take();
            if (!l) continue;
            me.working("free", l->record);
            b->free(l->location, records[l->record].bytes.size());
            ++freed;
            me.done();
            std::lock_guard g(recently_freed_lock);
            recently_freed.push_back(*l);
            if (recently_freed.size() > 32) recently_freed.pop_front();
        }
        watchdog.leave(me);
    };
    auto stale_reader = [&] {
        auto& me = watchdog.enroll("stale reader");
        std::vector<std::byte> back;
        while (!stop.load(std::memory_order_relaxed)) {
            std::optional<Live> l;
            {
                std::lock_guard g(recently_freed_lock);
                if (!recently_freed.empty()) l = recently_freed.back();
            }
            if (!l) {
                std::this_thread::yield();
                continue;
            }
            back.resize(records[l->record].bytes.size());
            me.working("read a freed record", l->record);
            errors += !b->read(l->location, back).ok();  // any bytes, but the read itself works
            ++stale_reads;
            me.done();
            std::this_thread::sleep_for(100us);  // a stream of reads would starve ext4's writer (i_rwsem)
        }
        watchdog.leave(me);
    };

    std::array<std::thread, 5> threads{std::thread(writer), std::thread(reader, 1), std::thread(reader, 2),
                                       std::thread(freer), std::thread(stale_reader)};
    std::this_thread::sleep_for(run_for);
    stop = true;
    for (auto& t : threads) t.join();

    MESSAGE(written.load() << " records written, " << verified.load() << " verified, " << freed.load() << " freed, "
                           << stale_reads.load() << " stale reads, " << no_space.load()
                           << " batches refused for space");
    CHECK(errors == 0);
    CHECK(written > 0);
    CHECK(verified > 0);
    CHECK(freed > 0);
    while (const auto l = pool.take()) {
        zpage_test::check_reads_back(*b, l->location, records[l->record]);
        b->free(l->location, records[l->record].bytes.size());
    }
    const zpage::BackingStats s = b->stats();
    CHECK(s.bd_count == 0);
    CHECK(s.failed_reads == 0);
    CHECK(s.failed_writes == no_space.load());
}
