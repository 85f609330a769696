// zpage: the page table, one 16-byte entry per page index, laid out like zram's slot:
//
//   word (8 B)         the allocator handle (location) of the compressed page, or for a SAME
//                      page the repeated 8-byte fill word itself (no allocation at all), or for
//                      a GROUPED page the id of the unit it was compressed in with its neighbours
//   meta (4 B)         bits 0..17   compressed size in bytes (a HUGE page: the page size; a
//                                   GROUPED page: its share of its unit's compressed size)
//                      bits 18..25  flags: SAME, HUGE, IDLE, WB, INCOMPRESSIBLE, UNDER_WB,
//                                   GROUPED, UNDER_RECOMPRESSION
//                      bits 26..28  codec id (which of a store's codecs wrote the page)
//                      bit 31       the entry lock
//   access_time (4 B)  seconds (detail::now_seconds()) of the last store or load, kept when the
//                      store's writeback policy tracks access times (zram's ac_time)
//
// Every access to an entry holds its lock bit, like zram's slot lock: operations on different
// indices never contend, and a reader sees a page whole or not at all.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>

#include "detail/os.hpp"
#include "detail/spin_mutex.hpp"

namespace zpage {

enum class PageFlag : std::uint8_t {
    same,            // one repeated 8-byte word, kept in the entry
    huge,            // compressed size above the huge threshold: stored raw
    idle,            // not accessed since the last mark_idle
    written_back,    // held by the backing store, not in memory
    incompressible,  // a recompression could not shrink it
    under_writeback, // being written to the backing store; a store or erase meanwhile clears it and wins
    grouped,         // compressed with neighbouring pages in one unit (word: the unit's id)
    under_recompression, // being recompressed; a store or erase meanwhile clears it and wins
    count
};

struct PageEntry {
    static constexpr unsigned size_bits = 18;
    static constexpr std::uint32_t size_mask = (std::uint32_t{1} << size_bits) - 1;
    static constexpr unsigned flags_shift = size_bits;
    static constexpr unsigned codec_shift = 26;
    static constexpr std::uint32_t codec_mask = 0x7;
    static constexpr std::uint32_t lock_bit = std::uint32_t{1} << 31;
    static constexpr std::size_t max_page_bytes = size_mask;

    static constexpr std::uint32_t flag_bit(PageFlag f) noexcept {
        return std::uint32_t{1} << (flags_shift + static_cast<unsigned>(f));
    }
    static_assert(flags_shift + static_cast<unsigned>(PageFlag::count) <= codec_shift,
                  "zpage::PageEntry: the flags overflow into the codec id");
    static_assert(codec_shift + 3 <= 31, "zpage::PageEntry: the codec id overflows into the lock bit");

    std::uint64_t word = 0;
    std::atomic<std::uint32_t> meta{0};
    std::uint32_t access_time = 0;
};
static_assert(sizeof(PageEntry) == 16, "zpage::PageEntry must stay 16 bytes, like zram's slot");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// What one entry says, copied out under its lock.
struct PageRecord {
    std::uint64_t word = 0;  // handle, or fill word when SAME
    std::uint32_t meta = 0;  // without the lock bit

    [[nodiscard]] std::size_t size() const noexcept { return meta & PageEntry::size_mask; }
    [[nodiscard]] bool has(PageFlag f) const noexcept { return (meta & PageEntry::flag_bit(f)) != 0; }
    [[nodiscard]] unsigned codec() const noexcept { return (meta >> PageEntry::codec_shift) & PageEntry::codec_mask; }
    // An entry holds a page once stored: SAME pages have no size, written-back ones no handle,
    // GROUPED ones a unit's id.
    [[nodiscard]] bool stored() const noexcept {
        return (meta & (PageEntry::size_mask | PageEntry::flag_bit(PageFlag::same) |
                        PageEntry::flag_bit(PageFlag::written_back) | PageEntry::flag_bit(PageFlag::grouped))) != 0;
    }

    [[nodiscard]] PageRecord with(PageFlag f) const noexcept { return {word, meta | PageEntry::flag_bit(f)}; }
    [[nodiscard]] PageRecord without(PageFlag f) const noexcept { return {word, meta & ~PageEntry::flag_bit(f)}; }

    [[nodiscard]] static PageRecord same_filled(std::uint64_t fill) noexcept {
        return {fill, PageEntry::flag_bit(PageFlag::same)};
    }
    [[nodiscard]] static PageRecord object(std::uint64_t handle, std::size_t size, bool huge, unsigned codec = 0) noexcept {
        return {handle, static_cast<std::uint32_t>(size) | (huge ? PageEntry::flag_bit(PageFlag::huge) : 0) |
                            (static_cast<std::uint32_t>(codec) << PageEntry::codec_shift)};
    }
    [[nodiscard]] PageRecord with_codec(unsigned codec) const noexcept {
        return {word, (meta & ~(PageEntry::codec_mask << PageEntry::codec_shift)) |
                          (static_cast<std::uint32_t>(codec) << PageEntry::codec_shift)};
    }
};

// An entry as a caller may look at it (CompressedPageStore::state, zram's block_state).
struct PageState {
    PageRecord record;             // flags, size (compressed, or the page size when huge), codec
    std::uint32_t access_time = 0; // detail::now_seconds() of the last store or load, when tracked

    [[nodiscard]] bool stored() const noexcept { return record.stored(); }
    [[nodiscard]] bool has(PageFlag f) const noexcept { return record.has(f); }
    [[nodiscard]] std::size_t size() const noexcept { return record.size(); }
};

// One entry, locked for as long as this object lives.
class LockedPage {
public:
    explicit LockedPage(PageEntry& entry) noexcept : entry_(&entry) {
        detail::Backoff backoff("page-table entry lock");
        std::uint32_t meta = entry.meta.load(std::memory_order_relaxed);
        for (;;) {
            if ((meta & PageEntry::lock_bit) == 0 &&
                entry.meta.compare_exchange_weak(meta, meta | PageEntry::lock_bit, std::memory_order_acquire,
                                                 std::memory_order_relaxed))
                break;
            backoff.pause();
            meta = entry.meta.load(std::memory_order_relaxed);
        }
        meta_ = meta;
    }
    // Only the holder writes meta while the lock bit is set, so unlocking is a plain store.
    ~LockedPage() { entry_->meta.store(meta_, std::memory_order_release); }
    LockedPage(const LockedPage&) = delete;
    LockedPage& operator=(const LockedPage&) = delete;

    [[nodiscard]] PageRecord get() const noexcept { return {entry_->word, meta_}; }
    // Replaces the entry; the change is published when the lock is released.
    void set(const PageRecord& r) noexcept {
        entry_->word = r.word;
        meta_ = r.meta & ~PageEntry::lock_bit;
    }
    void clear() noexcept { set(PageRecord{}); }
    void set_flag(PageFlag f) noexcept { meta_ |= PageEntry::flag_bit(f); }
    void clear_flag(PageFlag f) noexcept { meta_ &= ~PageEntry::flag_bit(f); }

    [[nodiscard]] std::uint32_t access_time() const noexcept { return entry_->access_time; }
    void set_access_time(std::uint32_t seconds) noexcept { entry_->access_time = seconds; }

private:
    PageEntry* entry_;
    std::uint32_t meta_;  // the entry's meta, without the lock bit, as it will be on release
};

// The default page table: `capacity` entries in one mapping, populated at construction so that
// the memory it reports is the memory it holds.
class PageTable {
public:
    // Throws std::invalid_argument for a zero capacity, std::bad_alloc when the mapping fails.
    explicit PageTable(std::size_t capacity)
        : capacity_(capacity), bytes_(round_up_page(checked(capacity) * sizeof(PageEntry))) {
        auto* mem = detail::os::reserve(bytes_);
        if (mem == nullptr) throw std::bad_alloc();
        static_cast<void>(detail::os::populate(mem, bytes_));  // a failure only means pages fault in later
        entries_ = new (mem) PageEntry[capacity_];
    }
    ~PageTable() { detail::os::release(reinterpret_cast<std::byte*>(entries_), bytes_); }
    PageTable(const PageTable&) = delete;
    PageTable& operator=(const PageTable&) = delete;

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t memory_bytes() const noexcept { return bytes_; }

    // Precondition: index < capacity(). Any thread; blocks while another holds the entry.
    [[nodiscard]] LockedPage lock(std::size_t index) const noexcept { return LockedPage(entries_[index]); }

private:
    static std::size_t checked(std::size_t capacity) {
        if (capacity == 0) throw std::invalid_argument("zpage::PageTable: capacity must be at least one page");
        if (capacity > (std::size_t{1} << 32))
            throw std::invalid_argument("zpage::PageTable: capacity above 2^32 pages");
        return capacity;
    }
    static constexpr std::size_t round_up_page(std::size_t bytes) noexcept {
        return (bytes + detail::os::page_bytes - 1) / detail::os::page_bytes * detail::os::page_bytes;
    }

    std::size_t capacity_;
    std::size_t bytes_;
    PageEntry* entries_ = nullptr;
};

template <class T>
concept PageTableLayout = std::constructible_from<T, std::size_t> && requires(const T& t, std::size_t index) {
    // Number of entries, fixed at construction.
    { t.capacity() } noexcept -> std::same_as<std::size_t>;
    // Bytes the table holds, counted into mem_used_total.
    { t.memory_bytes() } noexcept -> std::same_as<std::size_t>;
    // The entry at `index`, locked until the returned object goes.
    { t.lock(index) } noexcept -> std::same_as<LockedPage>;
};
static_assert(PageTableLayout<PageTable>);

}  // namespace zpage
