// zpage internal: what a store with a writeback policy does with its backing store: writes pages
// out in batches, reads them back on load, frees their records when they are replaced.
//
// Writing a batch (one at a time per store, under the engine's batch mutex):
//   1. collect: entry by entry, under each entry's lock, a page that qualifies has its stored
//      bytes copied into the batch buffer (decoded first in the `page` format, and whenever a
//      secondary codec holds it, alone or in a unit: the compressed format then compresses it
//      again with the primary codec, after the lock) and is flagged under_writeback; the object
//      or unit stays where it is, so loads go on reading it.
//   2. write: the records are sealed (record.hpp) and written with no entry lock held.
//   3. publish: under each entry's lock again, a page still flagged under_writeback becomes a
//      written-back entry (word = the record's location) and its object is freed after the lock;
//      a page that a store or erase replaced meanwhile (the flag is gone: a new entry never
//      carries it) keeps its new contents, and the record just written is freed. On a failed
//      write the flags are cleared and every page stays in memory.
// Compaction may move a flagged page's object meanwhile (it keeps the entry's flags): publish
// frees whatever object the entry holds then.
//
// Reading back (load of a written-back page): the record is read with no entry lock held, then
// checked (record.hpp: checksum, index, length). A record that fails the check, or cannot be read,
// is only an error if the entry still names it: a store may have replaced the page and its record
// been freed and reused meanwhile, and the load then starts over. With bring_back_on_load the page
// is allocated again, with no lock held, and published only if the entry still names the record.
//
// Lock order (see store.hpp): codec stream slot, then the batch mutex, then size-class locks,
// then entry locks, then the backing store's own locks (leaves). The batch decodes pages with
// contexts of its own (the secondary codecs' in the recompressor), never a pooled stream, so a
// store that reclaims directly while holding its stream cannot exhaust the pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "../detail/spin_mutex.hpp"
#include "../errc.hpp"
#include "../page_table.hpp"
#include "../stats.hpp"
#include "backing_store.hpp"
#include "policy.hpp"
#include "record.hpp"

namespace zpage {

// Which pages writeback() takes (zram's writeback types). Same-filled pages (no memory) and pages
// already written back are never taken.
enum class WritebackSelect : std::uint8_t {
    huge,            // stored raw: they did not compress
    idle,            // flagged idle (mark_idle) and not touched since
    huge_idle,       // both
    incompressible,  // flagged incompressible (a recompression could not shrink them)
    any,             // every page in memory (zram's page_index= / page_indexes=)
};

struct WritebackRequest {
    WritebackSelect select = WritebackSelect::idle;
    std::size_t first = 0;  // the index range [first, last) looked at
    std::size_t last = std::numeric_limits<std::size_t>::max();
    std::size_t max_pages = std::numeric_limits<std::size_t>::max();
};

struct WritebackResult {
    std::size_t pages = 0;         // pages that left memory for the backing store
    std::size_t bytes = 0;         // bytes of their records
    std::size_t memory_bytes = 0;  // their compressed bytes that left memory (a grouped page: its
                                   // share of its unit, whose memory goes with its last member)
    bool limit_reached = false;    // the writeback limit stopped it
    Status status;                 // what stopped it early (io_error, no_space), else ok
};

// A store's writeback figures, beside bd_stat (the backing store's BackingStats). Declared once in
// for_each_field, as Stats is.
struct WritebackStats {
    std::uint64_t written_back_pages = 0;       // pages of this store on the backing store now
    std::uint64_t pages_written_back = 0;       // pages written back since construction
    std::uint64_t pages_read_back = 0;          // loads served from the backing store
    std::uint64_t pages_brought_back = 0;       // of those, pages stored in memory again
    std::uint64_t failed_writebacks = 0;        // batches the backing store refused (their pages stayed)
    std::uint64_t bytes_written_back = 0;       // bytes of the records written, since construction
    std::uint64_t writeback_us = 0;             // time spent writing batches back (gathering, writing,
                                                // publishing), since construction: bytes / time = MiB/s
    std::uint64_t writeback_limit_enable = 0;   // 1 when the limit applies (zram: writeback_limit_enable)
    std::uint64_t writeback_limit = 0;          // 4 KiB units it still allows (zram: writeback_limit)

    template <class F>
    static constexpr void for_each_field(F&& f) {
        f(std::string_view("written_back_pages"), &WritebackStats::written_back_pages, StatUnit::pages);
        f(std::string_view("pages_written_back"), &WritebackStats::pages_written_back, StatUnit::pages);
        f(std::string_view("pages_read_back"), &WritebackStats::pages_read_back, StatUnit::pages);
        f(std::string_view("pages_brought_back"), &WritebackStats::pages_brought_back, StatUnit::pages);
        f(std::string_view("failed_writebacks"), &WritebackStats::failed_writebacks, StatUnit::count);
        f(std::string_view("bytes_written_back"), &WritebackStats::bytes_written_back, StatUnit::bytes);
        f(std::string_view("writeback_us"), &WritebackStats::writeback_us, StatUnit::count);
        f(std::string_view("writeback_limit_enable"), &WritebackStats::writeback_limit_enable, StatUnit::count);
        f(std::string_view("writeback_limit"), &WritebackStats::writeback_limit, StatUnit::pages);
    }
    friend bool operator==(const WritebackStats&, const WritebackStats&) = default;
};

namespace detail {

// Stands in for a member a store without writeback or recompression does not have (its engine,
// its reclaimer, its recompressor): no size with [[no_unique_address]], no code.
struct Absent {
    Absent() noexcept = default;
    template <class Store, class... Rest>
    explicit Absent(Store&, Rest&&...) noexcept {}
};

template <class Store>
class WritebackEngine {
    using policy_type = typename Store::writeback_type;
    using backing_type = typename policy_type::backing_store_type;
    using codec_type = typename Store::compressor_type;
    using dctx_type = typename codec_type::decompress_context;
    using cctx_type = typename codec_type::compress_context;
    static constexpr std::size_t page_size = Store::page_size;
    static constexpr std::size_t max_record = record_bytes(page_size);

public:
    // Throws std::invalid_argument without a backing store, or one whose records are too short
    // for this store's pages or batches too small; std::bad_alloc for the batch buffers.
    explicit WritebackEngine(Store& store) : store_(store) {}

    void start(const policy_type& policy) {
        if (policy.backing == nullptr)
            throw std::invalid_argument("zpage::Writeback: the policy names no backing store");
        backing_ = policy.backing;
        options_ = policy.options;
        if (backing_->max_record_bytes() < max_record)
            throw std::invalid_argument("zpage::Writeback: the backing store's max_record_bytes (" +
                                        std::to_string(backing_->max_record_bytes()) + ") is under a record of a page (" +
                                        std::to_string(max_record) + ")");
        if (options_.batch_bytes < max_record)
            throw std::invalid_argument("zpage::WritebackOptions: batch_bytes (" + std::to_string(options_.batch_bytes) +
                                        ") is under a record of a page (" + std::to_string(max_record) + ")");
        max_records_ = backing_->max_batch_records();
        if (max_records_ == 0) throw std::invalid_argument("zpage::Writeback: the backing store takes no records");
        buffer_ = std::make_unique<std::byte[]>(options_.batch_bytes);
        batch_.reserve(max_records_);
        records_.reserve(max_records_);
        locations_.resize(max_records_);
        if (options_.format == WritebackFormat::page) decode_context_.emplace(store_.compressor().make_decompress_context());
        if (Store::recompresses && options_.format == WritebackFormat::compressed) {
            recode_context_.emplace(store_.compressor().make_compress_context());
            recode_scratch_ = std::make_unique<std::byte[]>(recode_scratch_bytes);
        }
    }

    [[nodiscard]] const WritebackOptions& options() const noexcept { return options_; }
    [[nodiscard]] backing_type& backing() const noexcept { return *backing_; }

    // ---- writing back ----

    WritebackResult writeback(const WritebackRequest& request) noexcept {
        const std::size_t last = std::min(request.last, store_.capacity());
        WritebackResult result;
        auto batch_lock = lock_waiting_for(batch_mutex_, "writeback batch mutex");
        const Timed timed(*this, result);
        std::size_t index = std::min(request.first, last);
        while (index < last && result.pages < request.max_pages && result.status) {
            const std::size_t room = std::min(max_records_, request.max_pages - result.pages);
            index = collect(index, last, room, [&](const PageRecord& r) noexcept { return selected(r, request.select); });
            if (batch_.empty()) {  // the range is done, or the limit allows nothing more
                result.limit_reached = std::exchange(limit_hit_, false);
                break;
            }
            if (!flush(result)) break;
        }
        return result;
    }

    // Writes back the coldest pages, by CLOCK over the idle flags, until the compressed bytes
    // that leave memory reach `bytes` (within a page: a batch also ends before the record that
    // would pass batch_bytes): the hand sweeps the table; an idle page goes, any other page in
    // memory is flagged idle (its second chance: an access before the hand comes round again
    // clears the flag). At most two sweeps.
    WritebackResult write_back_coldest(std::size_t bytes) noexcept {
        WritebackResult result;
        auto batch_lock = lock_waiting_for(batch_mutex_, "writeback batch mutex");
        const Timed timed(*this, result);
        const std::size_t capacity = store_.capacity();
        std::size_t budget = 2 * capacity;  // entries the hand may pass
        while (result.memory_bytes < bytes && budget != 0 && result.status) {
            const std::size_t from = hand_;
            const std::size_t span = std::min(budget, capacity);
            const std::size_t to = collect(from, from + span, max_records_, [](const PageRecord& r) noexcept {
                return r.has(PageFlag::idle);
            }, /*age=*/true, bytes - result.memory_bytes);
            budget -= to - from;
            hand_ = to % capacity;
            if (batch_.empty()) {  // a stretch with nothing idle (now aged), or the limit
                if (std::exchange(limit_hit_, false)) {
                    result.limit_reached = true;
                    break;
                }
                continue;
            }
            if (!flush(result)) break;
        }
        return result;
    }

    // ---- the writeback limit (zram: writeback_limit, writeback_limit_enable), in 4 KiB units ----

    void set_limit(std::uint64_t blocks) noexcept { limit_.store(blocks, std::memory_order_relaxed); }
    void enable_limit(bool on) noexcept { limit_enabled_.store(on, std::memory_order_relaxed); }

    // ---- reading back ----

    enum class ReadBack : std::uint8_t { done, changed };

    // Reads the written-back page `r` of `index` into `page`, called with no entry lock held
    // (the caller read `r` under it). Returns changed when the entry no longer names the record
    // (the caller starts over), else done with `status`.
    ReadBack read_back(std::size_t index, const PageRecord& r, std::span<std::byte, page_size> page,
                       dctx_type& ctx, Status& status) noexcept {
        std::byte* const buffer = read_buffer();
        if (buffer == nullptr) {
            status = errc::out_of_memory;
            return ReadBack::done;
        }
        const std::size_t length = record_bytes(r.size());
        const std::span<std::byte> record(buffer, length);
        Status read = backing_->read(r.word, record);
        Result<std::span<const std::byte>> payload = errc::corrupt_data;
        if (read) {
            payload = verify_record(record, static_cast<std::uint32_t>(index), r.size());
            read = payload.status();
        }
        if (!read) {
            status = read;
            return still_names(index, r) ? ReadBack::done : ReadBack::changed;
        }
        status = r.size() == page_size ? copy_page(*payload, page) : store_.encoder_.decompress(*payload, page, ctx);
        if (!status) return still_names(index, r) ? ReadBack::done : ReadBack::changed;
        count(read_back_, 1);
        if (options_.bring_back_on_load) bring_back(index, r, *payload, page);
        return ReadBack::done;
    }

    // Frees the record of a written-back entry that was just replaced or erased. Any thread,
    // under no entry lock.
    void release(const PageRecord& r) noexcept {
        backing_->free(r.word, record_bytes(r.size()));
        written_back_.fetch_sub(1, std::memory_order_relaxed);
    }

    [[nodiscard]] WritebackStats stats() const noexcept {
        WritebackStats s;
        s.written_back_pages = written_back_.load(std::memory_order_relaxed);
        s.pages_written_back = written_.load(std::memory_order_relaxed);
        s.pages_read_back = read_back_.load(std::memory_order_relaxed);
        s.pages_brought_back = brought_back_.load(std::memory_order_relaxed);
        s.failed_writebacks = failed_.load(std::memory_order_relaxed);
        s.bytes_written_back = bytes_written_.load(std::memory_order_relaxed);
        s.writeback_us = writeback_ns_.load(std::memory_order_relaxed) / 1000;
        s.writeback_limit_enable = limit_enabled_.load(std::memory_order_relaxed) ? 1 : 0;
        s.writeback_limit = limit_.load(std::memory_order_relaxed);
        return s;
    }

private:
    // Adds a call's time and bytes to the stats when it wrote anything.
    class Timed {
    public:
        Timed(WritebackEngine& engine, const WritebackResult& result) noexcept
            : engine_(engine), result_(result), start_(std::chrono::steady_clock::now()) {}
        ~Timed() {
            if (result_.bytes == 0) return;
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_);
            engine_.writeback_ns_.fetch_add(static_cast<std::uint64_t>(ns.count()), std::memory_order_relaxed);
            engine_.bytes_written_.fetch_add(result_.bytes, std::memory_order_relaxed);
        }
        Timed(const Timed&) = delete;
        Timed& operator=(const Timed&) = delete;

    private:
        WritebackEngine& engine_;
        const WritebackResult& result_;
        std::chrono::steady_clock::time_point start_;
    };

    struct Candidate {
        std::uint32_t index;
        PageRecord record;   // as collected
        std::size_t offset;  // of its record in buffer_
        std::size_t payload; // payload bytes
    };

    static bool selected(const PageRecord& r, WritebackSelect select) noexcept {
        switch (select) {
        case WritebackSelect::huge: return r.has(PageFlag::huge);
        case WritebackSelect::idle: return r.has(PageFlag::idle);
        case WritebackSelect::huge_idle: return r.has(PageFlag::huge) && r.has(PageFlag::idle);
        case WritebackSelect::incompressible: return r.has(PageFlag::incompressible);
        case WritebackSelect::any: return true;
        }
        return false;
    }

    // Candidates from [from, to) into the batch, sealed (record.hpp), at most `room` of them and
    // no more than the writeback limit allows, until their compressed bytes in memory reach
    // `memory_room`; with `age`, pages in memory that are not taken are flagged idle. Indices past
    // the table's end wrap around to its start. Returns where it stopped. Batch mutex held.
    template <class Select>
    std::size_t collect(std::size_t from, std::size_t to, std::size_t room, Select&& take, bool age = false,
                        std::size_t memory_room = std::numeric_limits<std::size_t>::max()) noexcept {
        batch_.clear();
        std::size_t offset = 0, memory = 0;
        const bool limited = limit_enabled_.load(std::memory_order_relaxed);
        const std::uint64_t allowed_bytes = limit_.load(std::memory_order_relaxed) * backing_block_bytes;
        const std::size_t capacity = store_.capacity();
        std::size_t position = from;
        for (; position < to && batch_.size() < room && memory < memory_room; ++position) {
            const std::size_t index = position < capacity ? position : position - capacity;
            std::size_t payload;
            bool recode = false;
            {
                LockedPage entry = store_.table_.lock(index);
                const PageRecord r = entry.get();
                if (!Store::in_memory(r) || r.has(PageFlag::under_writeback) || r.has(PageFlag::under_recompression))
                    continue;
                if (!take(r)) {
                    if (age) entry.set_flag(PageFlag::idle);
                    continue;
                }
                // A page held by a secondary codec is decoded (a grouped page's bytes are its
                // unit's), and in the compressed format compressed again with the primary codec
                // after the lock (recode): records hold pages or the primary codec's bytes.
                recode = r.codec() != 0 && options_.format == WritebackFormat::compressed;
                payload = options_.format == WritebackFormat::page || r.codec() != 0 ? page_size : r.size();
                if (offset + record_bytes(payload) > options_.batch_bytes) break;  // the next batch takes it
                if (limited && offset + record_bytes(payload) > allowed_bytes) {
                    limit_hit_ = true;
                    break;
                }
                std::byte* const at = buffer_.get() + offset + record_header_bytes;
                if (!copy_payload(index, r, std::span<std::byte>(at, payload))) continue;  // unreadable: it stays
                entry.set_flag(PageFlag::under_writeback);
                batch_.push_back({static_cast<std::uint32_t>(index), r, offset, payload});
                memory += r.size();
            }
            if (recode) batch_.back().payload = payload = recoded(buffer_.get() + offset + record_header_bytes);
            // Sealed after the entry's lock, while the payload is still in cache.
            const std::span<std::byte> record(buffer_.get() + offset, record_bytes(payload));
            seal_record(static_cast<std::uint32_t>(index), record);
            offset += record_bytes(payload);
        }
        return position;
    }

    // The page's bytes as they go to the backing store. Entry lock held.
    bool copy_payload(std::size_t index, const PageRecord& r, std::span<std::byte> out) noexcept {
        if constexpr (Store::recompresses) {
            if (r.codec() != 0) {
                const std::span<std::byte, page_size> page(out.data(), page_size);
                return store_.recompressor_.decode_for_writeback(index, r, page);
            }
        }
        if (options_.format == WritebackFormat::page && !r.has(PageFlag::huge))
            return static_cast<bool>(store_.encoder_.decode(r, out, *decode_context_));
        store_.allocator_.read(ObjectHandle{r.word}, [&](std::span<const std::byte> object) noexcept {
            std::memcpy(out.data(), object.data(), out.size());
            return 0;
        });
        return true;
    }

    // Compresses the page at `at` with the primary codec in place; returns the payload's size
    // then (the page's, when it does not compress under the huge threshold). Batch mutex held.
    std::size_t recoded(std::byte* at) noexcept {
        const std::size_t compressed =
            store_.compressor().compress(*recode_context_, std::span<const std::byte>(at, page_size),
                                         std::span<std::byte>(recode_scratch_.get(), recode_scratch_bytes));
        if (compressed == 0 || compressed > store_.huge_threshold()) return page_size;
        std::memcpy(at, recode_scratch_.get(), compressed);
        return compressed;
    }

    // Writes the collected batch (not empty) and publishes it; adds to `result`. False when
    // nothing more should be tried (an error, or the limit). Batch mutex held.
    bool flush(WritebackResult& result) noexcept {
        records_.clear();
        std::size_t bytes = 0;
        for (const Candidate& c : batch_) {
            const std::span<const std::byte> record(buffer_.get() + c.offset, record_bytes(c.payload));
            records_.push_back(record);
            bytes += record.size();
        }
        const std::span<BackingLocation> locations(locations_.data(), batch_.size());
        const Status written = backing_->write(records_, locations);
        if (!written) {
            for (const Candidate& c : batch_) unflag(c.index);
            count(failed_, 1);
            result.status = written;
            return false;
        }
        charge_limit(bytes);
        for (std::size_t i = 0; i < batch_.size(); ++i) publish(batch_[i], locations[i], result);
        result.bytes += bytes;
        if (std::exchange(limit_hit_, false)) {
            result.limit_reached = true;
            return false;
        }
        return true;
    }

    void charge_limit(std::size_t bytes) noexcept {
        if (!limit_enabled_.load(std::memory_order_relaxed)) return;
        const std::uint64_t blocks = (bytes + backing_block_bytes - 1) / backing_block_bytes;
        std::uint64_t left = limit_.load(std::memory_order_relaxed);
        while (!limit_.compare_exchange_weak(left, left > blocks ? left - blocks : 0, std::memory_order_relaxed)) {
        }
    }

    void publish(const Candidate& c, BackingLocation location, WritebackResult& result) noexcept {
        PageRecord previous;
        bool kept;
        {
            LockedPage entry = store_.table_.lock(c.index);
            previous = entry.get();
            kept = previous.has(PageFlag::under_writeback);
            if (kept) {
                // The record holds the page, or the primary codec's bytes: codec id 0.
                const std::uint32_t size = static_cast<std::uint32_t>(c.payload);
                const std::uint32_t idle = previous.meta & PageEntry::flag_bit(PageFlag::idle);
                entry.set(PageRecord{location, size | idle | PageEntry::flag_bit(PageFlag::written_back)});
            }
        }
        if (!kept) {  // a store or erase came first: its page stands, this record goes
            backing_->free(location, record_bytes(c.payload));
            return;
        }
        store_.free_object(previous);
        typename Store::Deltas d;
        d.count(previous, -1);
        d.count(PageRecord{location, static_cast<std::uint32_t>(c.payload) | PageEntry::flag_bit(PageFlag::written_back)}, +1);
        store_.apply(d);
        written_back_.fetch_add(1, std::memory_order_relaxed);
        count(written_, 1);
        ++result.pages;
        result.memory_bytes += previous.size();
    }

    void unflag(std::uint32_t index) noexcept {
        LockedPage entry = store_.table_.lock(index);
        entry.clear_flag(PageFlag::under_writeback);
    }

    bool still_names(std::size_t index, const PageRecord& r) const noexcept {
        const PageRecord now = store_.table_.lock(index).get();
        return now.has(PageFlag::written_back) && now.word == r.word && now.size() == r.size();
    }

    static Status copy_page(std::span<const std::byte> payload, std::span<std::byte, page_size> page) noexcept {
        if (payload.size() != page_size) return errc::corrupt_data;
        std::memcpy(page.data(), payload.data(), page_size);
        return errc::ok;
    }

    // Puts a page just read back into memory again; keeps it on the backing store if memory
    // cannot be had or the entry changed meanwhile. No entry lock held on entry.
    void bring_back(std::size_t index, const PageRecord& r, std::span<const std::byte> payload,
                    std::span<const std::byte, page_size> page) noexcept {
        const auto owner = static_cast<OwnerId>(index);
        // Compressed bytes come back as they are; a whole page (the page format, a huge page, a
        // page a secondary codec held) is compressed again.
        const Result<PageRecord> next = r.size() < page_size ? store_.encoder_.adopt(payload, false, owner)
                                                             : store_.encoder_.encode(page, owner, true);
        if (!next) return;
        bool published = false;
        {
            LockedPage entry = store_.table_.lock(index);
            const PageRecord now = entry.get();
            if (now.has(PageFlag::written_back) && now.word == r.word && now.size() == r.size()) {
                entry.set(*next);
                Store::stamp(entry);
                published = true;
            }
        }
        if (!published) {
            store_.free_object(*next);
            return;
        }
        release(r);
        typename Store::Deltas d;
        d.count(r, -1);
        d.count(*next, +1);
        store_.apply(d);
        count(brought_back_, 1);
    }

    // A record read back lands here: one buffer per thread, from the heap on first use, as the
    // allocator's gather buffer. nullptr when the heap refuses it.
    static std::byte* read_buffer() noexcept {
        thread_local std::unique_ptr<std::byte[]> buffer;
        if (!buffer) buffer.reset(new (std::nothrow) std::byte[max_record]);
        return buffer.get();
    }

    static void count(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
        counter.fetch_add(n, std::memory_order_relaxed);
    }

    Store& store_;
    backing_type* backing_ = nullptr;
    WritebackOptions options_{};
    std::size_t max_records_ = 0;  // per batch: the backing store's max_batch_records()

    std::mutex batch_mutex_;  // one batch at a time; guards everything below up to hand_
    std::unique_ptr<std::byte[]> buffer_;  // options_.batch_bytes of records
    std::vector<Candidate> batch_;
    std::vector<std::span<const std::byte>> records_;
    std::vector<BackingLocation> locations_;
    std::optional<dctx_type> decode_context_;  // `page` format: the batch's own decoder
    // The compressed format with secondary codecs: the batch's own encoder for pages they held.
    std::optional<cctx_type> recode_context_;
    std::unique_ptr<std::byte[]> recode_scratch_;
    static constexpr std::size_t recode_scratch_bytes = page_size + page_size / 8;  // lz4's worst case fits
    std::size_t hand_ = 0;                     // the CLOCK hand of write_back_coldest
    bool limit_hit_ = false;

    std::atomic<bool> limit_enabled_{false};
    std::atomic<std::uint64_t> limit_{0};
    std::atomic<std::uint64_t> written_back_{0}, written_{0}, read_back_{0}, brought_back_{0}, failed_{0};
    std::atomic<std::uint64_t> bytes_written_{0}, writeback_ns_{0};
};

}  // namespace detail

}  // namespace zpage
