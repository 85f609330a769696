// The compressed region's eviction against what programs do meanwhile: writes racing with the
// in-place compression of their pages (never lost), pages written over and over kept resident by
// the sampled writes, and pages the program discards while they are evicted (no hang, nothing
// but their bytes or zeros). Under TSan too (label concurrency).
#include <zpage/adapters/compressed_region.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "fault_services.hpp"
#include "watchdog.hpp"
#include "writeback_fixtures.hpp"

using namespace std::chrono_literals;

namespace {

using Region = zpage::CompressedRegion<zpage::Lz4Store>;
constexpr std::size_t page = 4096;

// Page i: a real page with i in its first bytes; its write counter lives at counter_offset.
constexpr std::size_t counter_offset = 64;

zpage_test::Page content(const std::vector<zpage_test::Page>& sample, std::size_t i) {
    zpage_test::Page p = sample[i % sample.size()];
    std::memcpy(p.data(), &i, sizeof i);
    std::memset(p.data() + counter_offset, 0, sizeof(std::uint64_t));
    return p;
}

// What a page that read wrong held instead: zeros, page j's bytes (j from its first bytes), or
// bytes that differ from page i's in n places. A failure's message says which.
std::string describe_wrong(std::size_t i, const zpage_test::Page& got, const zpage_test::Page& want) {
    std::size_t differing = 0;
    for (std::size_t b = 0; b < got.size(); ++b) differing += got[b] != want[b];
    const bool zeros = std::all_of(got.begin(), got.end(), [](std::byte b) { return b == std::byte{0}; });
    std::size_t claims = 0;
    std::memcpy(&claims, got.data(), sizeof claims);
    return "page " + std::to_string(i) + ": " +
           (zeros ? std::string("zeros") : "first bytes say page " + std::to_string(claims) + ", " +
                                                std::to_string(differing) + " bytes differ");
}

}  // namespace

TEST_CASE_TEMPLATE("writes racing with eviction are never lost", Service, ZPAGE_TEST_REGION_MODES) {
    ZPAGE_REQUIRE_REGION();
    const std::size_t pages = 4096;  // 16 MiB over a 1 MiB budget
    const std::size_t writes = zpage_test::scaled(16000, 4);
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(512, zpage_test::test_seed());
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * page, .resident_budget_bytes = 256 * page, .fault_service = Service::value, .eviction = Service::eviction});
    std::byte* const base = region.data();
    for (std::size_t i = 0; i < pages; ++i) std::memcpy(base + i * page, content(sample, i).data(), page);

    zpage_test::Watchdog watchdog(10000ms, "writes racing with eviction");
    std::vector<std::uint64_t> model(pages, 0);  // each writer owns the pages of its parity
    std::atomic<int> writing{2};
    auto writer = [&](std::size_t parity) {
        auto& me = watchdog.enroll("writer " + std::to_string(parity));
        std::mt19937_64 rng(zpage_test::test_seed() + parity);
        for (std::size_t n = 0; n < writes; ++n) {
            const std::size_t i = (rng() % (pages / 2)) * 2 + parity;
            me.working("increment", i);
            auto* counter = reinterpret_cast<std::uint64_t*>(base + i * page + counter_offset);
            *counter = *counter + 1;
            ++model[i];
            me.done();
        }
        watchdog.leave(me);
        --writing;
    };
    std::thread a(writer, 0), b(writer, 1);
    {
        // A program thread evicting too, beside the background evictor: two in-place batches at once.
        auto& me = watchdog.enroll("evict()");
        while (writing.load() > 0) {
            me.working("evict");
            static_cast<void>(region.evict(32));
            me.done();
        }
        watchdog.leave(me);
    }
    a.join();
    b.join();
    std::size_t wrong = 0;
    std::vector<std::string> wrong_pages;  // the first few
    for (std::size_t i = 0; i < pages; ++i) {
        zpage_test::Page want = content(sample, i);
        std::memcpy(want.data() + counter_offset, &model[i], sizeof model[i]);
        zpage_test::Page got;
        std::memcpy(got.data(), base + i * page, page);
        if (got == want) continue;
        ++wrong;
        std::uint64_t counter = 0;
        std::memcpy(&counter, got.data() + counter_offset, sizeof counter);
        if (wrong_pages.size() < 8)
            wrong_pages.push_back(describe_wrong(i, got, want) + ", counter " + std::to_string(counter) + " of " +
                                  std::to_string(model[i]));
    }
    const zpage::RegionStats s = region.stats();
    MESSAGE("swap-outs " << s.swap_outs << ", swap-ins " << s.swap_ins << ", write faults " << s.write_faults);
    for (const std::string& w : wrong_pages) MESSAGE("wrong: " << w);
    CHECK(wrong == 0);
    CHECK(s.swap_outs > pages);
    CHECK(s.write_faults > 0);
}

TEST_CASE_TEMPLATE("pages written over and over stay resident while a stream of others passes through", Service, ZPAGE_TEST_REGION_MODES) {
    ZPAGE_REQUIRE_REGION();
    // 64 hot pages written in turn, one write per cold page read; the cold pages are read once
    // each, so the hand turns about fifteen times. A hot page is never faulted on (it stays
    // mapped): only the sampled writes tell the hand it is in use. Were they not seen, each hot
    // page would be evicted every three turns and come back as a swap-in. The first turns are
    // left out: with every page just faulted in, the hand finds no victim until its third turn,
    // which comes before any write could be seen.
    constexpr std::size_t pages = 8192, hot = 64, warm_up = 2048;
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * page, .resident_budget_bytes = 512 * page, .fault_service = Service::value, .eviction = Service::eviction});
    std::byte* const base = region.data();
    zpage_test::Watchdog watchdog(10000ms, "hot pages");
    auto& me = watchdog.enroll("program");
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i < hot; ++i) base[i * page] = std::byte{1};
    zpage::RegionStats warm{};
    for (std::size_t c = hot; c < pages; ++c) {
        me.working("read cold", c);
        if (c == warm_up) warm = region.stats();
        sum = static_cast<std::uint8_t>(sum + static_cast<std::uint8_t>(base[c * page + 100]));
        base[(c % hot) * page + 8] = static_cast<std::byte>(c);
        me.done();
    }
    watchdog.leave(me);
    const zpage::RegionStats s = region.stats();
    MESSAGE("after the first " << warm_up << " pages: swap-outs " << s.swap_outs - warm.swap_outs << ", swap-ins "
                               << s.swap_ins - warm.swap_ins << ", write faults " << s.write_faults - warm.write_faults
                               << ", direct evictions " << s.direct_evictions - warm.direct_evictions);
    CHECK(sum == 0);
    CHECK(s.swap_outs - warm.swap_outs > pages - warm_up - 1024);
    CHECK(s.write_faults - warm.write_faults >= hot);
    CHECK(s.swap_ins - warm.swap_ins <= hot / 4);
}

TEST_CASE_TEMPLATE("pages the program discards while they are evicted: no hang, their bytes or zeros", Service, ZPAGE_TEST_REGION_MODES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 1024;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(256, zpage_test::test_seed());
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * page, .resident_budget_bytes = 256 * page, .fault_service = Service::value, .eviction = Service::eviction});
    std::byte* const base = region.data();
    for (std::size_t i = 0; i < pages; ++i) std::memcpy(base + i * page, content(sample, i).data(), page);
    zpage_test::Watchdog watchdog(10000ms, "discards");
    std::atomic<bool> done{false};
    std::thread discarder([&] {
        auto& me = watchdog.enroll("discarder");
        std::mt19937_64 rng(zpage_test::test_seed());
        while (!done.load()) {
            const std::size_t i = rng() % pages;
            me.working("madvise", i);
            ::madvise(base + i * page, page, MADV_DONTNEED);
            me.done();
        }
        watchdog.leave(me);
    });
    {
        auto& me = watchdog.enroll("program");
        std::mt19937_64 rng(zpage_test::test_seed() + 1);
        std::uint8_t sum = 0;
        for (std::size_t n = 0; n < zpage_test::scaled(20000, 10); ++n) {
            const std::size_t i = rng() % pages;
            me.working("touch or evict", i);
            if (n % 64 == 0) static_cast<void>(region.evict(64));
            sum = static_cast<std::uint8_t>(sum + static_cast<std::uint8_t>(base[i * page + 200]));
            me.done();
        }
        watchdog.leave(me);
        MESSAGE("sum " << int{sum});
    }
    done = true;
    discarder.join();
    std::size_t wrong = 0;
    const zpage_test::Page zeros{};
    for (std::size_t i = 0; i < pages; ++i) {
        const bool as_written = std::memcmp(base + i * page, content(sample, i).data(), page) == 0;
        const bool discarded = std::memcmp(base + i * page, zeros.data(), page) == 0;
        wrong += !as_written && !discarded;
        base[i * page + 300] = std::byte{7};  // a write after it all is kept
    }
    static_cast<void>(region.evict(pages));
    for (std::size_t i = 0; i < pages; ++i) wrong += base[i * page + 300] != std::byte{7};
    CHECK(wrong == 0);
}

TEST_CASE_TEMPLATE("threads faulting on the same pages at once, while pages are evicted, read their bytes", Service, ZPAGE_TEST_REGION_MODES) {
    ZPAGE_REQUIRE_REGION();
    // Four readers walk the same pages in the same order, so that most faults come two or more
    // at once and the handlers see messages for pages another message already brought back,
    // some of them evicted again since; a program thread evicts all the while.
    constexpr std::size_t pages = 2048, readers = 4;
    const std::size_t reads = zpage_test::scaled(10000, 2);
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(256, zpage_test::test_seed());
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    Region region(store, {.bytes = pages * page, .resident_budget_bytes = 128 * page, .fault_service = Service::value, .eviction = Service::eviction, .handler_threads = 2});
    std::byte* const base = region.data();
    for (std::size_t i = 0; i < pages; ++i) std::memcpy(base + i * page, content(sample, i).data(), page);
    zpage_test::Watchdog watchdog(10000ms, "same pages");
    std::atomic<std::size_t> wrong{0};
    std::mutex wrong_mutex;
    std::vector<std::string> wrong_reads;  // the first few
    std::atomic<std::size_t> reading{readers};
    auto reader = [&](std::size_t r) {
        auto& me = watchdog.enroll("reader " + std::to_string(r));
        std::mt19937_64 rng(zpage_test::test_seed());  // the same order for all
        for (std::size_t n = 0; n < reads; ++n) {
            const std::size_t i = rng() % pages;
            me.working("read", i);
            const zpage_test::Page want = content(sample, i);
            if (std::memcmp(base + i * page, want.data(), page) != 0) {
                zpage_test::Page got;
                std::memcpy(got.data(), base + i * page, page);
                const std::lock_guard guard(wrong_mutex);
                if (wrong_reads.size() < 8) wrong_reads.push_back("reader " + std::to_string(r) + ", " + describe_wrong(i, got, want));
                ++wrong;
            }
            me.done();
        }
        watchdog.leave(me);
        --reading;
    };
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < readers; ++r) threads.emplace_back(reader, r);
    {
        auto& me = watchdog.enroll("evict()");
        while (reading.load() > 0) {
            me.working("evict");
            static_cast<void>(region.evict(16));
            me.done();
        }
        watchdog.leave(me);
    }
    for (std::thread& t : threads) t.join();
    for (std::size_t i = 0; i < pages; ++i) {
        const zpage_test::Page want = content(sample, i);
        zpage_test::Page got;
        std::memcpy(got.data(), base + i * page, page);
        if (got == want) continue;
        ++wrong;
        if (wrong_reads.size() < 16) wrong_reads.push_back("after the readers, " + describe_wrong(i, got, want));
    }
    const zpage::RegionStats s = region.stats();
    MESSAGE("faults " << s.faults << ", swap-ins " << s.swap_ins << ", swap-outs " << s.swap_outs);
    for (const std::string& read : wrong_reads) MESSAGE("read wrong: " << read);
    CHECK(wrong.load() == 0);
    CHECK(s.swap_ins > pages);
}

namespace {

// Reads one byte of each page, as a program reading them does (a read fault for each evicted one).
std::uint8_t read_each(const std::byte* base, std::size_t pages) {
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i < pages; ++i)
        sum = static_cast<std::uint8_t>(
            sum + static_cast<std::uint8_t>(*static_cast<const volatile std::byte*>(base + i * page + 100)));
    return sum;
}

// The pages that do not read as `model` says, by number.
std::string wrong_pages(const std::byte* base, const std::vector<zpage_test::Page>& model) {
    std::string wrong;
    for (std::size_t i = 0; i < model.size(); ++i) {
        if (std::memcmp(base + i * page, model[i].data(), page) == 0) continue;
        zpage_test::Page got;
        std::memcpy(got.data(), base + i * page, page);
        wrong += describe_wrong(i, got, model[i]) + "; ";
    }
    return wrong;
}

}  // namespace

TEST_CASE_TEMPLATE("a page read back keeps its stored copy until written: evicted unwritten, not compressed again",
                   Service, ZPAGE_TEST_REGION_MODES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(pages, zpage_test::test_seed());
    zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
    // No budget: only evict() evicts, so every count below is exact.
    Region region(store, {.bytes = pages * page, .fault_service = Service::value, .eviction = Service::eviction});
    std::byte* const base = region.data();
    std::vector<zpage_test::Page> model(pages);
    for (std::size_t i = 0; i < pages; ++i) {
        model[i] = content(sample, i);
        std::memcpy(base + i * page, model[i].data(), page);
    }
    zpage_test::Watchdog watchdog(20000ms, "clean copies");
    auto& me = watchdog.enroll("program");
    // A handler counts a fault after the wake-up that lets this thread go on.
    const auto settled = [&](auto&& done) { return zpage_test::eventually(done, 5000ms); };

    me.working("evict all", 0);
    REQUIRE(region.evict(pages) == pages);
    const std::uint64_t compressed = store.stats().num_writes;
    me.working("read each", 0);
    MESSAGE("sum " << int{read_each(base, pages)});
    CHECK(settled([&] { return region.stats().swap_ins == pages; }));
    CHECK(region.stats().clean_copies == pages);
    CHECK(store.stats().orig_data_size == pages * page);  // each copy kept

    me.working("write the even pages", 0);
    for (std::size_t i = 0; i < pages; i += 2) {
        base[i * page + 200] = ~base[i * page + 200];  // faults once (write-protected), and ends the copy
        model[i][200] = ~model[i][200];
    }
    CHECK(region.stats().clean_copies == pages / 2);
    CHECK(settled([&] { return region.stats().write_faults >= pages / 2; }));
    // A faulting thread leaves the erasing to the evictor, which its next round does.
    CHECK(settled([&] { return store.stats().orig_data_size == pages / 2 * page; }));

    me.working("evict all again", 0);
    REQUIRE(region.evict(pages) == pages);
    CHECK(store.stats().num_writes - compressed == pages / 2);  // only the written pages compressed again
    CHECK(region.stats().clean_copies == 0);
    CHECK(region.stats().swapped_pages == pages);
    CHECK(store.stats().orig_data_size == pages * page);
    me.working("verify", 0);
    CHECK(wrong_pages(base, model).empty());  // and each page read back keeps its copy again
    CHECK(settled([&] { return region.stats().clean_copies == pages; }));

    // A clean page the program discards reads as zeros, whether touched next (page 1) or evicted
    // first (page 3): its copy is not its bytes any more.
    me.working("discard", 1);
    ::madvise(base + 1 * page, page, MADV_DONTNEED);
    ::madvise(base + 3 * page, page, MADV_DONTNEED);
    model[1] = model[3] = zpage_test::Page{};
    CHECK(std::memcmp(base + 1 * page, model[1].data(), page) == 0);
    REQUIRE(region.evict(pages) >= pages - 1);  // page 1 may be taken (its zeros) or not: just faulted
    me.working("verify after the discards", 0);
    CHECK(wrong_pages(base, model).empty());
    CHECK(settled([&] {
        const zpage::RegionStats s = region.stats();
        return (s.swapped_pages + s.clean_copies) * page == store.stats().orig_data_size;
    }));
    watchdog.leave(me);
}

TEST_CASE_TEMPLATE("no clean copies when the region is told not to keep them, or its store is near its limit", Service,
                   ZPAGE_TEST_FAULT_SERVICES) {
    ZPAGE_REQUIRE_REGION();
    constexpr std::size_t pages = 256;
    const std::vector<zpage_test::Page> sample = zpage_test::test_pages(pages, zpage_test::test_seed());
    zpage_test::Watchdog watchdog(20000ms, "no clean copies");
    auto& me = watchdog.enroll("program");
    for (const bool near_limit : {false, true}) {
        CAPTURE(near_limit);
        zpage::Lz4Store store(zpage::StoreConfig{.capacity_pages = pages});
        Region region(store, {.bytes = pages * page, .fault_service = Service::value, .keep_clean_copies = near_limit});
        std::byte* const base = region.data();
        for (std::size_t i = 0; i < pages; ++i) std::memcpy(base + i * page, content(sample, i).data(), page);
        me.working("evict all", near_limit);
        REQUIRE(region.evict(pages) == pages);
        // 85% of the limit used: reading back a few pages (erasing theirs) stays over three quarters.
        if (near_limit) store.set_mem_limit(store.stats().mem_used_total * 100 / 85);
        const std::size_t read = near_limit ? 8 : pages;
        me.working("read back", read);
        MESSAGE("sum " << int{read_each(base, read)});
        CHECK(zpage_test::eventually([&] { return region.stats().swap_ins == read; }, 5000ms));
        CHECK(region.stats().clean_copies == 0);
        CHECK(zpage_test::eventually([&] { return store.stats().orig_data_size == (pages - read) * page; }, 5000ms));
        for (std::size_t i = 0; i < pages; ++i)
            REQUIRE(std::memcmp(base + i * page, content(sample, i).data(), page) == 0);
    }
    watchdog.leave(me);
}
