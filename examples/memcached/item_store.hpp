// zpage-memcached: memcached's item semantics (flags, expiry, CAS, add/replace/append/prepend/cas,
// incr/decr, touch, flush_all) over a compressed cache that knows none of them.
//
// Each value is stored behind a 20-byte header (flags, exptime, the time it was stored, CAS
// unique), compressed with it. Expired and flushed items are found dead when read, as memcached
// finds them, and dropped then (or evicted before).
//
// Commands that read an item and then write it (add, replace, cas, append, prepend, incr, decr,
// touch, gat) hold one of `lock_stripes` mutexes, chosen by the key's hash, across both steps, and
// so do set and delete: two such commands on one key are serial, and a cas compares against the
// value it replaces. Plain gets take no stripe lock (the cache's get is atomic on its own). Lock
// order: a stripe, then the cache's own locks.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "cache_backend.hpp"
#include "protocol.hpp"

namespace zpage_memcached {

// memcached's clock: whole seconds since the server started, plus 2, so that 1 is always in the
// past (an item stored with it has expired) and 0 means "never".
class ServerClock {
public:
    ServerClock() : started_(std::chrono::steady_clock::now()), started_unix_(std::time(nullptr) - 2) {}

    [[nodiscard]] std::uint32_t now() const noexcept {
        const auto elapsed = std::chrono::steady_clock::now() - started_;
        return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count()) + 2;
    }
    // protocol.txt's exptime: 0 never, negative already expired, up to 30 days relative, above
    // that an absolute Unix time.
    [[nodiscard]] std::uint32_t expiry(std::int64_t exptime) const noexcept {
        if (exptime == 0) return 0;
        if (exptime < 0) return 1;
        if (exptime > max_relative_exptime) {
            if (exptime <= started_unix_) return 1;
            return static_cast<std::uint32_t>(std::min<std::int64_t>(exptime - started_unix_, UINT32_MAX));
        }
        return now() + static_cast<std::uint32_t>(exptime);
    }
    [[nodiscard]] std::int64_t started_unix() const noexcept { return started_unix_ + 2; }

private:
    std::chrono::steady_clock::time_point started_;
    std::int64_t started_unix_;
};

struct ItemHeader {
    std::uint32_t flags = 0;
    std::uint32_t exptime = 0;  // ServerClock time; 0: never
    std::uint32_t time = 0;     // when it was stored, for flush_all with a delay
    std::uint64_t cas = 0;

    void write(std::byte* out) const noexcept {
        std::memcpy(out, &flags, 4);
        std::memcpy(out + 4, &exptime, 4);
        std::memcpy(out + 8, &time, 4);
        std::memcpy(out + 12, &cas, 8);
    }
    static ItemHeader read(const std::byte* in) noexcept {
        ItemHeader h;
        std::memcpy(&h.flags, in, 4);
        std::memcpy(&h.exptime, in + 4, 4);
        std::memcpy(&h.time, in + 8, 4);
        std::memcpy(&h.cas, in + 12, 8);
        return h;
    }
};
static_assert(item_header_bytes == 20);

// An item read from the cache: its header and its data, which live in the caller's buffer.
struct ItemView {
    ItemHeader header;
    std::string_view data;
};

enum class StoreMode { set, add, replace, append, prepend, cas };
enum class StoreOutcome { stored, not_stored, exists, not_found, too_large, out_of_memory };
enum class ArithOutcome { ok, not_found, non_numeric, out_of_memory };
enum class DeleteOutcome { deleted, not_found, exists };

// Buffers a worker thread reuses, so that steady-state commands allocate nothing of their own.
struct Scratch {
    std::vector<std::byte> read;   // an item as the cache returns it
    std::vector<std::byte> write;  // an item as it is handed to the cache
    std::string key;
};

class ItemStore {
public:
    static constexpr std::size_t lock_stripes = 1024;

    ItemStore(CacheBackend& cache, std::size_t max_value_bytes) : cache_(cache), max_value_bytes_(max_value_bytes) {}

    [[nodiscard]] const ServerClock& clock() const noexcept { return clock_; }
    [[nodiscard]] std::size_t max_value_bytes() const noexcept { return max_value_bytes_; }
    [[nodiscard]] CacheBackend& cache() noexcept { return cache_; }

    // A live item (not expired, not flushed); nothing on a miss. `value` is filled from `scratch`.
    std::optional<ItemView> get(std::string_view key, Scratch& scratch) {
        scratch.key.assign(key);
        return read_live(scratch, false);
    }

    // get, and the item's expiry set anew (gat): keeps its CAS, as touch does. The view returned
    // is the item as it was (mg's t reports the time left before the touch, as memcached's does).
    std::optional<ItemView> get_and_touch(std::string_view key, std::int64_t exptime, Scratch& scratch) {
        scratch.key.assign(key);
        std::lock_guard guard(stripe(scratch.key));
        const auto item = read_live(scratch, true);
        if (!item) return std::nullopt;
        ItemHeader touched = item->header;
        touched.exptime = clock_.expiry(exptime);
        touched.write(scratch.read.data());
        if (!cache_.set(scratch.key, scratch.read)) {
            cache_.erase(scratch.key);  // never leave the old expiry behind a failed touch
            return std::nullopt;
        }
        return item;
    }

    bool touch(std::string_view key, std::int64_t exptime, Scratch& scratch) {
        return get_and_touch(key, exptime, scratch).has_value();
    }

    // set/add/replace/append/prepend/cas. A set that fails for want of room (too large, out of
    // memory) also drops the key's old value, as memcached's does: a client whose set failed must
    // not read the value it meant to replace. The other modes keep it, as memcached's do.
    StoreOutcome store(StoreMode mode, std::string_view key, std::uint32_t flags, std::int64_t exptime,
                       std::string_view data, std::uint64_t cas_unique, Scratch& scratch,
                       std::uint64_t* stored_cas = nullptr) {
        scratch.key.assign(key);
        std::lock_guard guard(stripe(scratch.key));
        if (data.size() > max_value_bytes_) {
            if (mode == StoreMode::set) cache_.erase(scratch.key);
            return StoreOutcome::too_large;
        }
        ItemHeader header{.flags = flags, .exptime = clock_.expiry(exptime), .time = clock_.now(), .cas = 0};
        std::string_view before, after;  // bytes that append/prepend keep around `data`
        if (mode != StoreMode::set) {
            const auto old = read_live(scratch, true);
            switch (mode) {
            case StoreMode::add:
                if (old) return StoreOutcome::not_stored;
                break;
            case StoreMode::replace:
                if (!old) return StoreOutcome::not_stored;
                break;
            case StoreMode::cas:
                if (!old) return StoreOutcome::not_found;
                if (old->header.cas != cas_unique) return StoreOutcome::exists;
                break;
            case StoreMode::append:
            case StoreMode::prepend:
                if (!old) return StoreOutcome::not_stored;
                header.flags = old->header.flags;  // protocol.txt: append/prepend ignore flags and exptime
                header.exptime = old->header.exptime;
                (mode == StoreMode::append ? before : after) = old->data;
                if (old->data.size() + data.size() > max_value_bytes_) return StoreOutcome::too_large;
                break;
            case StoreMode::set: break;
            }
        }
        header.cas = next_cas();
        const std::size_t size = item_header_bytes + before.size() + data.size() + after.size();
        scratch.write.resize(size);
        std::byte* out = scratch.write.data();
        header.write(out);
        out += item_header_bytes;
        for (const std::string_view part : {before, data, after}) {
            if (!part.empty()) std::memcpy(out, part.data(), part.size());
            out += part.size();
        }
        const zpage::Status s = cache_.set(scratch.key, scratch.write);
        if (s) {
            if (stored_cas != nullptr) *stored_cas = header.cas;
            return StoreOutcome::stored;
        }
        if (mode == StoreMode::set) cache_.erase(scratch.key);
        return s.error() == zpage::errc::invalid_argument ? StoreOutcome::too_large : StoreOutcome::out_of_memory;
    }

    // Deletes the key's item; with `expected_cas`, only if its CAS is that (exists otherwise).
    DeleteOutcome remove(std::string_view key, Scratch& scratch, std::optional<std::uint64_t> expected_cas = {}) {
        scratch.key.assign(key);
        std::lock_guard guard(stripe(scratch.key));
        const auto item = read_live(scratch, true);
        if (!item) return DeleteOutcome::not_found;
        if (expected_cas && item->header.cas != *expected_cas) return DeleteOutcome::exists;
        return cache_.erase(scratch.key) ? DeleteOutcome::deleted : DeleteOutcome::not_found;
    }

    // incr (saturating never: it wraps at 2^64, as memcached's does) or decr (stops at 0). A
    // result shorter than the old value is padded with spaces to its length, as memcached pads it.
    ArithOutcome arith(std::string_view key, bool incr, std::uint64_t delta, std::uint64_t& result, Scratch& scratch) {
        scratch.key.assign(key);
        std::lock_guard guard(stripe(scratch.key));
        const auto old = read_live(scratch, true);
        if (!old) return ArithOutcome::not_found;
        const auto value = parse_counter(old->data);
        if (!value) return ArithOutcome::non_numeric;
        result = incr ? *value + delta : (*value > delta ? *value - delta : 0);
        char digits[24];
        const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, result);
        const std::size_t length = static_cast<std::size_t>(end - digits);
        const std::size_t padded = length < old->data.size() ? old->data.size() : length;
        ItemHeader header = old->header;
        header.cas = next_cas();
        scratch.write.resize(item_header_bytes + padded);
        header.write(scratch.write.data());
        std::memcpy(scratch.write.data() + item_header_bytes, digits, length);
        std::memset(scratch.write.data() + item_header_bytes + length, ' ', padded - length);
        if (!cache_.set(scratch.key, scratch.write)) {
            cache_.erase(scratch.key);
            return ArithOutcome::out_of_memory;
        }
        return ArithOutcome::ok;
    }

    // flush_all: with no delay every item goes now; with one, every item stored up to then is dead
    // from then on (memcached's oldest_live).
    void flush(std::int64_t delay) {
        if (delay <= 0) {
            cache_.clear();
            return;
        }
        oldest_live_.store(clock_.expiry(delay) - 1, std::memory_order_relaxed);
    }

    [[nodiscard]] std::uint64_t expired_reads() const noexcept { return expired_reads_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t flushed_reads() const noexcept { return flushed_reads_.load(std::memory_order_relaxed); }

private:
    std::mutex& stripe(const std::string& key) noexcept {
        return stripes_[XXH3_64bits(key.data(), key.size()) % lock_stripes];
    }

    std::uint64_t next_cas() noexcept { return cas_.fetch_add(1, std::memory_order_relaxed) + 1; }

    // The live item under scratch.key, read into scratch.read. A dead one (expired, flushed,
    // shorter than a header) is dropped: at once when the caller holds the key's stripe, else
    // only if no store replaced it since it was read.
    std::optional<ItemView> read_live(Scratch& scratch, bool stripe_held) {
        const auto size = cache_.get(scratch.key, scratch.read);
        if (!size) return std::nullopt;
        if (*size < item_header_bytes) {
            if (stripe_held) cache_.erase(scratch.key);
            return std::nullopt;
        }
        const ItemHeader header = ItemHeader::read(scratch.read.data());
        const std::uint32_t now = clock_.now();
        const std::uint32_t oldest = oldest_live_.load(std::memory_order_relaxed);
        const bool expired = header.exptime != 0 && header.exptime <= now;
        const bool flushed = oldest != 0 && oldest <= now && header.time <= oldest;
        if (expired || flushed) {
            (expired ? expired_reads_ : flushed_reads_).fetch_add(1, std::memory_order_relaxed);
            if (stripe_held) {
                cache_.erase(scratch.key);
            } else {
                drop_if_unchanged(scratch, header.cas);
            }
            return std::nullopt;
        }
        const auto* data = reinterpret_cast<const char*>(scratch.read.data() + item_header_bytes);
        return ItemView{header, std::string_view(data, *size - item_header_bytes)};
    }

    // Erases a dead item unless a store replaced it after it was read (its CAS changed).
    void drop_if_unchanged(Scratch& scratch, std::uint64_t cas) {
        std::unique_lock guard(stripe(scratch.key), std::try_to_lock);
        if (!guard.owns_lock()) return;  // a writer holds the key: it decides
        std::vector<std::byte> check;
        check.swap(scratch.write);
        const auto size = cache_.get(scratch.key, check);
        if (size && *size >= item_header_bytes && ItemHeader::read(check.data()).cas == cas) cache_.erase(scratch.key);
        check.swap(scratch.write);
    }

    CacheBackend& cache_;
    const std::size_t max_value_bytes_;
    ServerClock clock_;
    std::array<std::mutex, lock_stripes> stripes_;
    std::atomic<std::uint64_t> cas_{0};
    std::atomic<std::uint32_t> oldest_live_{0};
    std::atomic<std::uint64_t> expired_reads_{0};
    std::atomic<std::uint64_t> flushed_reads_{0};
};

}  // namespace zpage_memcached
