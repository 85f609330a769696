// Fuzz target: reading written-back pages from a FileBackingStore whose file was damaged under it.
//
// Real pages are stored, written back to a file (compressed records or whole pages), and then the
// fuzzer's edits are written straight into the file over those records: bytes of the checksum,
// the header, the payload. A load must give the page exactly or corrupt_data, never other bytes,
// and corrupt_data only for a record that was really changed; the store's figures stay
// consistent and every record is freed when the store goes.
//
// Input: a choice byte (record format), then edits of 4 bytes each: which page, where in its
// record, and the byte to XOR there.
#include <fcntl.h>
#include <unistd.h>

#include <zpage/zpage.hpp>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../corpora.hpp"
#include "fuzz_support.hpp"

namespace {

using Traits = zpage::WritebackTraits<zpage::FileBackingStore>;
using Store = zpage::CompressedPageStore<Traits>;
constexpr std::size_t pages_stored = 24;

const std::vector<zpage_test::Page>& pool() {
    static const auto pages = zpage_test::sample_pages(4, pages_stored, false);  // same-filled ones are never written back
    return pages;
}

// One file for the whole run; each input's store writes its records there and frees them.
struct BackingFile {
    BackingFile()
        : path("/tmp/zpage-fuzz-backing-" + std::to_string(::getpid())),
          disk(zpage::FileBackingConfig{.path = path, .max_bytes = 8 << 20, .io_bytes = 64 << 10,
                                        .buffer_bytes = 256 << 10, .retain_freed_bytes = 0}),
          fd(::open(path.c_str(), O_RDWR)) {
        ZPAGE_FUZZ_CHECK(fd >= 0);
    }
    ~BackingFile() {
        ::close(fd);
        ::unlink(path.c_str());
    }
    std::string path;
    zpage::FileBackingStore disk;
    int fd;
};

std::vector<std::byte> read_file(int fd, std::uint64_t at, std::size_t n) {
    std::vector<std::byte> out(n);
    ZPAGE_FUZZ_CHECK(::pread(fd, out.data(), n, static_cast<off_t>(at)) == static_cast<ssize_t>(n));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static BackingFile file;
    zpage_fuzz::ByteReader in(data, size);
    const unsigned choice = in.integral<std::uint8_t>();
    const auto& pages = pool();
    {
        Store store(zpage::StoreConfig{.capacity_pages = pages_stored}, zpage::Lz4{},
                    {.backing = &file.disk,
                     .options = {.format = (choice & 1) != 0 ? zpage::WritebackFormat::page : zpage::WritebackFormat::compressed,
                                 .bring_back_on_load = (choice & 2) != 0}});
        for (std::size_t i = 0; i < pages_stored; ++i) ZPAGE_FUZZ_CHECK(store.store(i, pages[i]));
        const zpage::WritebackResult wrote = store.writeback({.select = zpage::WritebackSelect::any});
        ZPAGE_FUZZ_CHECK(wrote.status && wrote.pages == pages_stored);

        // Each page's record as written, then the edits.
        std::vector<zpage::PageRecord> records(pages_stored);
        std::vector<std::vector<std::byte>> before(pages_stored);
        for (std::size_t i = 0; i < pages_stored; ++i) {
            records[i] = store.state(i).record;
            ZPAGE_FUZZ_CHECK(records[i].has(zpage::PageFlag::written_back));
            before[i] = read_file(file.fd, records[i].word, zpage::record_bytes(records[i].size()));
        }
        while (in.remaining() >= 4) {
            const std::size_t i = in.integral<std::uint8_t>() % pages_stored;
            const std::size_t length = zpage::record_bytes(records[i].size());
            const std::size_t at = in.integral<std::uint16_t>() % length;
            const auto flip = in.integral<std::uint8_t>();
            std::vector<std::byte> b = read_file(file.fd, records[i].word + at, 1);
            b[0] ^= static_cast<std::byte>(flip);
            ZPAGE_FUZZ_CHECK(::pwrite(file.fd, b.data(), 1, static_cast<off_t>(records[i].word + at)) == 1);
        }

        zpage_test::Page back{};
        std::size_t failed = 0;
        for (std::size_t i = 0; i < pages_stored; ++i) {
            const bool damaged = read_file(file.fd, records[i].word, before[i].size()) != before[i];
            const zpage::Status loaded = store.load(i, back);
            if (loaded) {
                ZPAGE_FUZZ_CHECK(back == pages[i]);
            } else {
                ZPAGE_FUZZ_CHECK(loaded == zpage::errc::corrupt_data && damaged);
                ++failed;
            }
        }
        const zpage::Stats s = store.stats();
        ZPAGE_FUZZ_CHECK(s.orig_data_size == pages_stored * 4096 && s.failed_reads == failed);
        zpage_fuzz::check_books(store);
    }
    ZPAGE_FUZZ_CHECK(file.disk.stats().bd_count == 0);  // the store's records went with it
    return 0;
}

// Seeds: each record format, with and without bringing pages back, undamaged and with a few edits.
extern "C" void zpage_fuzz_write_seeds(const char* dir) {
    std::size_t number = 0;
    for (unsigned choice = 0; choice < 4; ++choice) {
        const std::byte clean[] = {static_cast<std::byte>(choice)};
        zpage_fuzz::write_seed(dir, number++, clean);
        // Page 3's checksum, page 4's payload, page 9's length field.
        const std::byte edits[] = {static_cast<std::byte>(choice), std::byte{3},  std::byte{0}, std::byte{0},
                                   std::byte{0x01},                std::byte{4},  std::byte{20}, std::byte{0},
                                   std::byte{0x10},                std::byte{9},  std::byte{12}, std::byte{0},
                                   std::byte{0x80}};
        zpage_fuzz::write_seed(dir, number++, edits);
    }
}
