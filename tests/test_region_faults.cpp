// The compressed region when the kernel refuses its userfaultfd calls, made to through the fault
// hook of detail/userfaultfd.hpp: a fault's copy, zero fill or poisoning, an eviction's move and
// its put-back, a write protection's lifting, each with the errnos the kernel returns for it.
// A failed call wakes no waiting thread, so every refusal must end in a clear outcome: the call
// retried, the page taken as there, or the faulting thread woken to fault again; SIGBUS only for
// a page whose bytes cannot be had. Never a thread left waiting (a watchdog ends the test on a
// hang), never wrong bytes (every page is checked after), never a page lost from the store, and
// the region's counters adding up.
#include <zpage/adapters/compressed_region.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fault_services.hpp"
#include "sigbus.hpp"
#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;

namespace {

namespace uffd = zpage::detail::uffd;
using uffd::Call;
using zpage_test::Page;

constexpr std::size_t page = 4096;

// A store whose loads of one index fail (corrupt data) and whose stores can all be refused (a
// full store), on command.
struct FaultyStore : zpage::Lz4Store {
    using zpage::Lz4Store::Lz4Store;
    std::atomic<std::size_t> corrupt{~std::size_t{0}};
    std::atomic<bool> refuse{false};

    zpage::Status load(std::size_t index, page_buffer out) noexcept {
        if (index == corrupt.load()) {
            std::memset(out.data(), 0, out.size());
            return zpage::errc::corrupt_data;
        }
        return zpage::Lz4Store::load(index, out);
    }
    zpage::Status store(std::size_t index, page_view in) noexcept {
        if (refuse.load()) return zpage::errc::memory_limit;
        return zpage::Lz4Store::store(index, in);
    }
};

using Region = zpage::CompressedRegion<FaultyStore>;

// ---- the fault hook ----

// Which calls of the chosen kinds a RegionFaults counts and may fail (null: all of them).
using CallFilter = bool (*)(Call call, std::uintptr_t dst, std::uintptr_t src) noexcept;
// Run just before a failure is returned: where a test makes the race the errno stands for happen
// for real, or holds the call while a program thread runs into it.
using BeforeFailure = void (*)(Call call, std::uintptr_t dst, std::uintptr_t src) noexcept;

struct FaultPlan {
    int error = 0;  // the errno returned; -errno: the call made, and that errno returned (a move only)
    int times = 1;  // how many calls fail, from the next one on
    CallFilter only = nullptr;
    BeforeFailure before = nullptr;
};

// Makes the region's userfaultfd calls of the kinds in `calls` fail as `plan` says, until
// destroyed. One at a time (the hook is process-wide).
class RegionFaults {
public:
    RegionFaults(const std::vector<Call>& calls, const FaultPlan& plan) {
        unsigned kinds = 0;
        for (const Call c : calls) kinds |= 1u << static_cast<unsigned>(c);
        kinds_.store(kinds);
        error_.store(plan.error);
        remaining_.store(plan.times);
        only_.store(plan.only);
        before_.store(plan.before);
        calls_.store(0);
        injected_.store(0);
        uffd::fault_injector.store(&inject);
    }
    ~RegionFaults() { uffd::fault_injector.store(nullptr); }
    RegionFaults(const RegionFaults&) = delete;
    RegionFaults& operator=(const RegionFaults&) = delete;

    // Calls of its kinds (and filter) made so far, and how many of them it failed.
    [[nodiscard]] static int calls() { return calls_.load(); }
    [[nodiscard]] static int injected() { return injected_.load(); }

private:
    static int inject(Call call, std::uintptr_t dst, std::uintptr_t src) noexcept {
        if ((kinds_.load() >> static_cast<unsigned>(call) & 1u) == 0) return 0;
        if (const CallFilter only = only_.load(); only != nullptr && !only(call, dst, src)) return 0;
        calls_.fetch_add(1);
        if (remaining_.fetch_sub(1) <= 0) return 0;
        if (const BeforeFailure before = before_.load(); before != nullptr) before(call, dst, src);
        injected_.fetch_add(1);
        return error_.load();
    }

    inline static std::atomic<unsigned> kinds_{0};
    inline static std::atomic<int> error_{0}, remaining_{0}, calls_{0}, injected_{0};
    inline static std::atomic<CallFilter> only_{nullptr};
    inline static std::atomic<BeforeFailure> before_{nullptr};
};

// The region under test, for the hook's filters, which cannot capture.
std::atomic<std::uintptr_t> region_begin{0}, region_end{0};
// One page a filter picks, by address.
std::atomic<std::uintptr_t> chosen_page{0};

bool in_region(std::uintptr_t address) noexcept {
    return address >= region_begin.load() && address < region_end.load();
}
bool into_region(Call, std::uintptr_t dst, std::uintptr_t) noexcept { return in_region(dst); }
bool out_of_region(Call, std::uintptr_t, std::uintptr_t src) noexcept { return in_region(src); }
bool on_chosen_page(Call, std::uintptr_t dst, std::uintptr_t) noexcept { return dst == chosen_page.load(); }
bool on_region(Call, std::uintptr_t dst, std::uintptr_t src) noexcept { return in_region(dst) || in_region(src); }

// ---- what the kernel says of a page and a thread, without touching either ----

// A page's entry in /proc/self/pagemap: present, and write-protected by userfaultfd (bit 57,
// Linux 5.13). Reading it neither faults the page in nor changes it.
struct PageBits {
    bool present = false;
    bool write_protected = false;
};

PageBits page_bits(std::uintptr_t address) noexcept {
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::uint64_t entry = 0;
    const ssize_t got = ::pread(fd, &entry, sizeof entry, static_cast<off_t>(address / page * sizeof entry));
    ::close(fd);
    if (got != static_cast<ssize_t>(sizeof entry)) return {};
    return {(entry >> 63 & 1) != 0, (entry >> 57 & 1) != 0};
}

// A resident page whose write protection (left by the CLOCK hand) is still on.
bool protected_region_page(Call, std::uintptr_t, std::uintptr_t src) noexcept {
    return in_region(src) && page_bits(src).write_protected;
}

// The start of /proc/self/task/<tid>/<file>, empty when it cannot be read.
std::string task_file(pid_t tid, const char* file) {
    const std::string path = "/proc/self/task/" + std::to_string(tid) + "/" + file;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char text[4096];
    const ssize_t got = ::read(fd, text, sizeof text);
    ::close(fd);
    return got > 0 ? std::string(text, static_cast<std::size_t>(got)) : std::string();
}

// A thread's scheduler state from /proc: 'R' running, 'S' or 'D' asleep in the kernel.
char thread_state(pid_t tid) {
    const std::string stat = task_file(tid, "stat");
    const std::size_t name_end = stat.rfind(')');  // the name may hold spaces and parentheses
    return name_end != std::string::npos && name_end + 2 < stat.size() ? stat[name_end + 2] : '?';
}

// Whether thread `tid` is inside a SIGBUS handler: the signal is blocked while its handler runs
// (zpage's installs none with SA_NODEFER). Where a fault is served in the faulting thread, that
// is where a thread waiting on a page spins.
bool in_sigbus_handler(pid_t tid) {
    const std::string status = task_file(tid, "status");
    const std::size_t at = status.find("SigBlk:");
    if (at == std::string::npos) return false;
    const unsigned long long blocked = std::strtoull(status.c_str() + at + 7, nullptr, 16);
    return (blocked >> (SIGBUS - 1) & 1) != 0;
}

// ---- the region, its pages and its counters ----

// Page i of a region: a real page (from the corpora, where present) with i in its first bytes.
Page content(const std::vector<Page>& sample, std::size_t i) {
    Page p = sample[i % sample.size()];
    std::memcpy(p.data(), &i, sizeof i);
    return p;
}

// A region of `pages` with no resident budget, so that only the test evicts (evict()), its pages
// written with content() (or never written), and what each should read as.
struct Fixture {
    Fixture(zpage::FaultService service, std::size_t pages_, const std::vector<Page>& sample, bool write = true,
            zpage::Eviction eviction = zpage::Eviction::in_place)
        : pages(pages_),
          store(zpage::StoreConfig{.capacity_pages = pages_}),
          region(store, {.bytes = pages_ * page, .fault_service = service, .eviction = eviction, .handler_threads = 2}),
          base(region.data()),
          expected(pages_) {
        region_begin.store(reinterpret_cast<std::uintptr_t>(base));
        region_end.store(reinterpret_cast<std::uintptr_t>(base + pages * page));
        for (std::size_t i = 0; i < pages && write; ++i) {
            expected[i] = content(sample, i);
            std::memcpy(base + i * page, expected[i].data(), page);
        }
        if (write) REQUIRE(all_resident());
    }

    // A handler counts a fault just after the call that woke its thread, the resident page last:
    // a bounded wait for the counts of faults already resolved, with every page resident.
    bool all_resident() const {
        return zpage_test::eventually([&] { return region.stats().resident_pages == pages; }, 2000ms);
    }

    std::uintptr_t address(std::size_t i) const { return reinterpret_cast<std::uintptr_t>(base + i * page); }

    // Evicts every page (the hand takes a page on its third turn).
    void evict_all() {
        while (region.evict(pages) > 0) {
        }
        REQUIRE(region.stats().swapped_pages == pages);
    }

    // Pages that do not read as expected; each read may fault. Counts as the worker's work.
    std::size_t wrong_pages(zpage_test::Watchdog::Worker& me) const {
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < pages; ++i) {
            me.working("read", i);
            wrong += std::memcmp(base + i * page, expected[i].data(), page) != 0;
            me.done();
        }
        return wrong;
    }

    // Once every page was read (none evicted since), what the counters must say after any
    // refusals: all pages resident and none stored; each resolved fault one zero fill, swap-in or
    // poisoning (of a stored page); the pages swapped out all swapped in or poisoned since; the
    // faults those that made a page resident, less the pages evicted and those found discarded,
    // and those that poisoned one (a poisoned page is not resident).
    // Returns the counters checked.
    zpage::RegionStats check_counters_add_up(std::size_t discarded = 0) const {
        CHECK(all_resident());
        const zpage::RegionStats s = region.stats();
        CHECK(s.swapped_pages == 0);
        CHECK(s.faults == s.zero_fills + s.swap_ins + s.poisoned_pages);
        CHECK(s.swap_outs == s.swapped_pages + s.swap_ins + s.poisoned_pages);
        // The store holds the clean copies besides; faults served in the faulting thread leave a
        // swapped-in page's other stored copy to the evictor.
        CHECK(zpage_test::eventually(
            [&] { return (s.swapped_pages + s.clean_copies) * page == store.stats().orig_data_size; }, 2000ms));
        CHECK(s.resident_pages + s.swap_outs + discarded + s.poisoned_pages == s.faults);
        return s;
    }

    const std::size_t pages;
    FaultyStore store;
    Region region;
    std::byte* const base;
    std::vector<Page> expected;
};

std::string name_of(int error) {
    const char* name = ::strerrorname_np(error < 0 ? -error : error);
    const std::string named = name != nullptr ? name : std::to_string(error);
    return error < 0 ? named + " after doing it" : named;
}

// ---- SIGBUS, from a poisoned page ----

using zpage_test::read_or_sigbus;

// ---- a writer caught on a page's write protection while its eviction is refused ----

constexpr std::size_t write_offset = 100;
constexpr std::byte written_byte{0x5A};

// Shared by the writer thread and the hook (which runs in the evicting thread).
struct WriteRace {
    std::atomic<std::uintptr_t> target{0};  // the page whose move is refused
    std::atomic<pid_t> writer_tid{0};
    std::atomic<bool> writing{false}, written{false}, give_up{false};
    std::atomic<bool> writer_held{false};  // asleep in its write fault when the move was refused
    std::atomic<bool> discard{false};      // the program discards the page meanwhile (ENOENT)

    void reset(bool discard_page) {
        target = 0;
        writing = written = give_up = writer_held = false;
        discard = discard_page;
    }
};
WriteRace race;

// Before the move out of a protected page is refused: the writer writes to it and, finding it
// being moved, waits in its fault (asleep in the kernel, or spinning in its SIGBUS handler); for
// ENOENT the program then discards the page, which is what that errno means. Every wait is
// bounded: a setup that did not work shows as writer_held false.
void hold_writer_on_the_move(Call, std::uintptr_t, std::uintptr_t src) noexcept {
    race.target.store(src);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!race.writing.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    // Nothing between `writing` and the write sleeps but the write's fault.
    while (!race.written.load() && std::chrono::steady_clock::now() < deadline) {
        const pid_t writer = race.writer_tid.load();
        const char state = thread_state(writer);
        if (state == 'S' || state == 'D' || in_sigbus_handler(writer)) break;
        std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(20ms);  // the protection fault read and set aside by a handler
    race.writer_held.store(race.writing.load() && !race.written.load());
    if (race.discard.load()) ::madvise(reinterpret_cast<void*>(src), page, MADV_DONTNEED);
}

// The same, for a page being evicted in place, held at its drop (which has no source).
void hold_writer_on_the_drop(Call call, std::uintptr_t dst, std::uintptr_t) noexcept {
    hold_writer_on_the_move(call, dst, dst);
}

// The program discards the whole region (a hook run as an in-place eviction protects its batch,
// after claiming it and before reading it).
void discard_region(Call, std::uintptr_t, std::uintptr_t) noexcept {
    ::madvise(reinterpret_cast<void*>(region_begin.load()), region_end.load() - region_begin.load(), MADV_DONTNEED);
}

// Evicts in small batches, faulting random pages back between them, so that the CLOCK hand
// passes pages it leaves (and protects) and takes them later; until `done` (asked after each
// eviction) or `rounds` pass.
template <class Done>
void churn(Fixture& f, zpage_test::Watchdog::Worker& me, std::mt19937_64& rng, Done&& done, int rounds = 2000) {
    for (int round = 0; round < rounds; ++round) {
        me.working("evict");
        static_cast<void>(f.region.evict(16));
        me.done();
        if (done()) return;
        for (int n = 0; n < 16; ++n) {
            const std::size_t i = rng() % f.pages;
            me.working("read", i);
            CHECK(std::memcmp(f.base + i * page, f.expected[i].data(), page) == 0);
            me.done();
        }
    }
}

// The writer of `race`: waits for the hook to name the page it holds, then writes to it, to be
// held in its fault until the hook lets the eviction go on.
std::thread start_racing_writer(const Fixture& f, zpage_test::Watchdog& watchdog) {
    return std::thread([&f, &watchdog] {
        auto& me = watchdog.enroll("writer");
        race.writer_tid = ::gettid();
        me.working("wait for a page being evicted");
        std::uintptr_t target = 0;
        while ((target = race.target.load()) == 0 && !race.give_up.load()) std::this_thread::sleep_for(1ms);
        if (target != 0) {
            me.working("write to the page being evicted", (target - f.address(0)) / page);
            race.writing = true;
            *reinterpret_cast<volatile std::byte*>(target + write_offset) = written_byte;
            race.written = true;
        }
        me.done();
        watchdog.leave(me);
    });
}

// Churns until the hook has held the writer once (its one injection), then joins the writer.
void churn_until_the_race(Fixture& f, zpage_test::Watchdog::Worker& me, std::mt19937_64& rng, std::thread& writer) {
    churn(f, me, rng, [] { return RegionFaults::injected() != 0; });
    race.give_up = true;
    me.working("join the writer");
    writer.join();
    me.done();
    REQUIRE(RegionFaults::injected() == 1);
}

}  // namespace

TEST_CASE_TEMPLATE("a swap-in the kernel refuses: the thread faults again and every page comes back whole", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    // EEXIST: the page was there (stored copy kept); EAGAIN: retried by the handler; ENOENT (the
    // mapping changed), ENOMEM, EFAULT: the thread is woken and faults again.
    for (const int error : {EEXIST, EAGAIN, ENOENT, ENOMEM, EFAULT}) {
        INFO("UFFDIO_COPY refused with " << name_of(error));
        Fixture f(Service::value, pages, sample);
        f.evict_all();
        zpage_test::Watchdog watchdog(10000ms, "refused swap-ins");
        auto& me = watchdog.enroll("program");
        std::size_t wrong = 0;
        {
            const RegionFaults refuse({Call::copy}, {.error = error, .times = 3});
            wrong = f.wrong_pages(me);
            CHECK(RegionFaults::injected() == 3);
            CHECK(RegionFaults::calls() == static_cast<int>(pages) + 3);  // each refusal tried once more
        }
        watchdog.leave(me);
        CHECK(wrong == 0);
        const zpage::RegionStats s = f.check_counters_add_up();
        CHECK(s.swap_ins == pages);
        CHECK(s.poisoned_pages == 0);
    }
}

TEST_CASE_TEMPLATE("a zero fill the kernel refuses, of a page never written or one discarded: woken, then zeros", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    const Page zeros{};
    // EEXIST: a page is there, taken as the zero page and the thread woken; EAGAIN: retried;
    // ENOENT, ENOMEM: the thread is woken and faults again.
    for (const int error : {EEXIST, EAGAIN, ENOENT, ENOMEM}) {
        INFO("UFFDIO_ZEROPAGE refused with " << name_of(error));
        Fixture f(Service::value, pages, sample, false);
        std::byte* const base = f.base;
        zpage_test::Watchdog watchdog(10000ms, "refused zero fills");
        auto& me = watchdog.enroll("program");
        std::size_t wrong = 0;
        {
            const RegionFaults refuse({Call::zero}, {.error = error, .times = 3});
            for (std::size_t i = 0; i < pages; ++i) {
                me.working("read a page never written", i);
                wrong += std::memcmp(base + i * page, zeros.data(), page) != 0;
                std::memcpy(base + i * page, content(sample, i).data(), page);
                me.done();
            }
            CHECK(RegionFaults::injected() == 3);
        }
        // A resident page the program discards reads as zeros: its fault finds it resident.
        for (std::size_t i = 0; i < pages; i += 4) ::madvise(base + i * page, page, MADV_DONTNEED);
        {
            const RegionFaults refuse({Call::zero}, {.error = error, .times = 3});
            for (std::size_t i = 0; i < pages; ++i) {
                me.working("read", i);
                const Page want = i % 4 == 0 ? zeros : content(sample, i);
                wrong += std::memcmp(base + i * page, want.data(), page) != 0;
                me.done();
            }
            CHECK(RegionFaults::injected() == 3);
        }
        watchdog.leave(me);
        CHECK(wrong == 0);
        // A discarded page's zero page is not a new fault's: it was counted resident all along.
        const zpage::RegionStats s = f.check_counters_add_up();
        CHECK(s.zero_fills == pages);
        CHECK(s.faults == pages);
    }
}

TEST_CASE_TEMPLATE("a page the store cannot return, its poisoning refused at first: SIGBUS for it, the rest whole", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128, corrupt = 7;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    const zpage_test::SigbusReader sigbus_reader;
    REQUIRE(sigbus_reader.installed());
    // EAGAIN: retried; ENOMEM, EEXIST: the thread faults again, and the store is asked again.
    for (const int error : {EAGAIN, ENOMEM, EEXIST}) {
        INFO("UFFDIO_POISON refused with " << name_of(error));
        Fixture f(Service::value, pages, sample);
        f.evict_all();
        f.store.corrupt = corrupt;
        zpage_test::Watchdog watchdog(10000ms, "refused poisoning");
        auto& me = watchdog.enroll("program");
        bool raised = false;
        {
            const RegionFaults refuse({Call::poison}, {.error = error, .times = 3});
            me.working("read the page the store cannot return", corrupt);
            std::byte value{};
            raised = !read_or_sigbus(f.base + corrupt * page + 5, value);
            me.done();
            CHECK(RegionFaults::injected() == 3);
        }
        CHECK(raised);
        // Its stored copy, corrupt, goes with it (dropped just after the poisoning woke this thread).
        CHECK(zpage_test::eventually([&] { return !f.store.contains(corrupt); }, 2000ms));
        f.store.corrupt = ~std::size_t{0};
        // Discarded, it is a page never written again.
        ::madvise(f.base + corrupt * page, page, MADV_DONTNEED);
        f.expected[corrupt] = Page{};
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        const zpage::RegionStats s = f.check_counters_add_up();
        CHECK(s.poisoned_pages == 1);
        CHECK(s.swap_ins == pages - 1);
        CHECK(s.zero_fills == pages + 1);  // the writes, and the discarded page read again
    }
}

TEST_CASE_TEMPLATE("an eviction's move refused while a writer waits on the page: the writer is woken, its write kept", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    std::mt19937_64 rng(zpage_test::test_seed());
    // EEXIST, EAGAIN, EBUSY (a page pinned, or shared with a child), ENOMEM: the page stays, as
    // written. ENOENT: the program discarded it meanwhile (the hook does): zeros, then the write.
    for (const int error : {EEXIST, EAGAIN, EBUSY, ENOMEM, ENOENT}) {
        INFO("UFFDIO_MOVE refused with " << name_of(error));
        Fixture f(Service::value, pages, sample, true, zpage::Eviction::by_move);
        race.reset(error == ENOENT);
        zpage_test::Watchdog watchdog(10000ms, "refused moves");
        std::thread writer = start_racing_writer(f, watchdog);
        auto& me = watchdog.enroll("program");
        {
            const RegionFaults refuse(
                {Call::move},
                {.error = error, .times = 1, .only = &protected_region_page, .before = &hold_writer_on_the_move});
            churn_until_the_race(f, me, rng, writer);
        }
        CHECK(race.writer_held.load());
        const std::size_t target = (race.target.load() - f.address(0)) / page;
        if (error == ENOENT) f.expected[target] = Page{};
        f.expected[target][write_offset] = written_byte;
        // A page that stayed was protected all along: the write could only land once a write
        // fault lifted the protection (two, if its first message was read after the refusal).
        if (error != ENOENT) CHECK(zpage_test::eventually([&] { return f.region.stats().write_faults >= 1; }, 2000ms));
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        f.check_counters_add_up(error == ENOENT ? 1 : 0);
    }
}

TEST_CASE_TEMPLATE("evictions the kernel makes and reports as EEXIST (Linux 6.18): every page stored, none lost", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128;
    constexpr int reported = 16;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    // The kernel's UFFDIO_MOVE, retrying a page whose entry changed under it, moves it and then
    // fails with EEXIST on its own move (see uffd::move). Taken for a refusal, the page would be
    // left in the staging page and dropped with it: it would read as zeros.
    Fixture f(Service::value, pages, sample, true, zpage::Eviction::by_move);
    zpage_test::Watchdog watchdog(10000ms, "moves reported as EEXIST");
    auto& me = watchdog.enroll("program");
    {
        const RegionFaults report({Call::move}, {.error = -EEXIST, .times = reported, .only = &out_of_region});
        me.working("evict every page");
        f.evict_all();
        me.done();
        CHECK(RegionFaults::injected() == reported);
    }
    CHECK(f.region.stats().swap_outs == pages);
    CHECK(f.region.stats().failed_swap_outs == 0);
    const std::size_t wrong = f.wrong_pages(me);
    watchdog.leave(me);
    CHECK(wrong == 0);
    CHECK(f.check_counters_add_up().swap_ins == pages);
}

TEST_CASE_TEMPLATE("a page the store refuses, its put-back refused at first: it comes back whole", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    struct Case {
        std::vector<Call> calls;
        int error;
        int times;
    };
    // The move back refused, then the copy in its place refused too: both tried again until one
    // takes it. EEXIST on the move alone: the copy puts it back. EEXIST from a move the kernel
    // made (see uffd::move): done, with nothing left to copy from.
    for (const Case& c : {Case{{Call::move, Call::copy}, ENOMEM, 4}, Case{{Call::move, Call::copy}, EAGAIN, 4},
                          Case{{Call::move, Call::copy}, EFAULT, 4}, Case{{Call::move}, EEXIST, 1},
                          Case{{Call::move}, -EEXIST, 1}}) {
        INFO("the put-back refused " << c.times << " times with " << name_of(c.error));
        Fixture f(Service::value, pages, sample, true, zpage::Eviction::by_move);
        zpage_test::Watchdog watchdog(10000ms, "refused put-backs");
        auto& me = watchdog.enroll("program");
        f.store.refuse = true;
        {
            // Only calls into the region: the move out goes to a staging page.
            const RegionFaults refuse(c.calls, {.error = c.error, .times = c.times, .only = &into_region});
            me.working("evict one page");
            CHECK(f.region.evict(1) == 0);
            me.done();
            CHECK(RegionFaults::injected() == c.times);
        }
        f.store.refuse = false;
        const zpage::RegionStats s = f.region.stats();  // evict() counts in the calling thread
        CHECK(s.failed_swap_outs == 1);
        CHECK(s.swap_outs == 0);
        CHECK(s.resident_pages == pages);
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        CHECK(f.check_counters_add_up().faults == pages);  // it was back before it was read: no fault
    }
}

TEST_CASE_TEMPLATE("lifting a write protection refused at first: the writer writes again, and its write is kept", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    std::mt19937_64 rng(zpage_test::test_seed());
    for (const int error : {EAGAIN, ENOMEM, ENOENT}) {
        INFO("lifting the protection refused with " << name_of(error));
        Fixture f(Service::value, pages, sample);
        zpage_test::Watchdog watchdog(10000ms, "refused unprotection");
        auto& me = watchdog.enroll("program");
        // A resident page the hand protected as it passed, and did not take.
        std::size_t target = pages;
        churn(f, me, rng, [&] {
            for (std::size_t i = 0; i < pages && target == pages; ++i) {
                const PageBits bits = page_bits(f.address(i));
                if (bits.present && bits.write_protected) target = i;
            }
            return target != pages;
        });
        REQUIRE(target < pages);
        chosen_page = f.address(target);
        const std::uint64_t write_faults = f.region.stats().write_faults;
        {
            const RegionFaults refuse({Call::unprotect}, {.error = error, .times = 3, .only = &on_chosen_page});
            me.working("write to a protected page", target);
            f.base[target * page + write_offset] = written_byte;
            me.done();
            CHECK(RegionFaults::injected() == 3);
        }
        f.expected[target][write_offset] = written_byte;
        CHECK(zpage_test::eventually([&] { return f.region.stats().write_faults == write_faults + 1; }, 2000ms));
        CHECK_FALSE(page_bits(f.address(target)).write_protected);
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        f.check_counters_add_up();
    }
}

TEST_CASE_TEMPLATE("an in-place eviction refused its write protection: the batch moves out instead, none lost", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128, batch = 32;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    // Unprotected, a victim could be written after it was read and before it was dropped: so the
    // batch leaves by UFFDIO_MOVE, one page at a time.
    for (const int error : {ENOMEM, EAGAIN}) {
        INFO("UFFDIO_WRITEPROTECT refused with " << name_of(error));
        Fixture f(Service::value, pages, sample);
        zpage_test::Watchdog watchdog(10000ms, "refused protection");
        auto& me = watchdog.enroll("program");
        {
            const RegionFaults refuse({Call::protect, Call::move}, {.error = error, .times = 1, .only = &on_region});
            me.working("evict a batch");
            CHECK(f.region.evict(batch) == batch);
            me.done();
            CHECK(RegionFaults::injected() == 1);
            CHECK(RegionFaults::calls() == static_cast<int>(1 + batch));  // the protection, then a move a page
        }
        CHECK(f.region.stats().swap_outs == batch);
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        CHECK(f.check_counters_add_up().swap_ins == batch);
    }
}

TEST_CASE_TEMPLATE("an in-place eviction's drop refused: the page stays, whole, and its stored copy goes", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128, batch = 32;
    constexpr int refused = 5;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    for (const int error : {ENOMEM, EINVAL}) {
        INFO("MADV_DONTNEED refused with " << name_of(error));
        Fixture f(Service::value, pages, sample);
        zpage_test::Watchdog watchdog(10000ms, "refused drops");
        auto& me = watchdog.enroll("program");
        {
            // evict() goes on to another batch for the pages that stayed.
            const RegionFaults refuse({Call::drop}, {.error = error, .times = refused, .only = &into_region});
            me.working("evict a batch");
            CHECK(f.region.evict(batch) == batch);
            me.done();
            CHECK(RegionFaults::injected() == refused);
        }
        const zpage::RegionStats s = f.region.stats();
        CHECK(s.failed_swap_outs == refused);
        CHECK(s.swap_outs == batch);
        CHECK(s.resident_pages == pages - batch);
        CHECK(f.store.stats().orig_data_size == batch * page);  // no copy left of a page that stayed
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        CHECK(f.check_counters_add_up().swap_ins == batch);
    }
}

TEST_CASE_TEMPLATE("victims the program discards before they are read in place: read as zeros, no thread left waiting", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 128, batch = 32;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    // The evicting thread's read of each victim faults: it must be given the zeros the page now
    // holds, never left to wait for its own eviction to end.
    Fixture f(Service::value, pages, sample);
    zpage_test::Watchdog watchdog(10000ms, "discarded victims");
    auto& me = watchdog.enroll("program");
    {
        const RegionFaults discard({Call::protect}, {.error = 0, .times = 1, .only = &into_region, .before = &discard_region});
        me.working("evict a batch, discarded under it");
        CHECK(f.region.evict(batch) == batch);
        me.done();
        CHECK(RegionFaults::injected() == 1);
    }
    for (Page& p : f.expected) p = Page{};
    CHECK(f.store.stats().compr_data_size == 0);  // zero pages cost no store memory
    const std::size_t wrong = f.wrong_pages(me);
    watchdog.leave(me);
    CHECK(wrong == 0);
    CHECK(f.check_counters_add_up().swap_ins == batch);
}

TEST_CASE_TEMPLATE("a write to a page being evicted in place waits for it, and is kept, dropped or not", Service, ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<Page> sample = zpage_test::test_pages(64, zpage_test::test_seed());
    std::mt19937_64 rng(zpage_test::test_seed());
    // 0: the drop made, the writer finds the page gone and brings it back; ENOMEM: the drop
    // refused, the page stays, and its write fault lifts the protection.
    for (const int error : {0, ENOMEM}) {
        INFO("the drop " << (error == 0 ? std::string("made") : "refused with " + name_of(error)));
        Fixture f(Service::value, pages, sample);
        race.reset(false);
        zpage_test::Watchdog watchdog(10000ms, "a write held by an in-place eviction");
        std::thread writer = start_racing_writer(f, watchdog);
        auto& me = watchdog.enroll("program");
        {
            const RegionFaults hold({Call::drop}, {.error = error, .times = 1, .only = &into_region, .before = &hold_writer_on_the_drop});
            churn_until_the_race(f, me, rng, writer);
        }
        CHECK(race.writer_held.load());
        const std::size_t target = (race.target.load() - f.address(0)) / page;
        f.expected[target][write_offset] = written_byte;
        const std::size_t wrong = f.wrong_pages(me);
        watchdog.leave(me);
        CHECK(wrong == 0);
        f.check_counters_add_up();
    }
}
