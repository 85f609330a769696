// zpage: FaultyBackingStore<Inner>, any BackingStore that fails on command: the tool for testing
// what sits above a backing store (the store's writeback) against I/O errors, a full device, short
// writes and bits flipped below the checksum, without a broken disk.
//
//   zpage::FaultyBackingStore<zpage::MemoryBackingStore> disk(zpage::MemoryBackingConfig{.max_bytes = 64 << 20});
//   disk.fail_writes(zpage::errc::io_error, 3);   // the 4th write from now fails with EIO's code
//   disk.flip_bits(0, 1, 77);                      // the next read returns bit 77 flipped
//
// A schedule per direction (writes, reads): skip `after` calls, then fault the next `times`; a new
// schedule replaces the direction's previous one. Setters and calls may race from any thread:
// each schedule is one atomic word, and every call takes its turn from it exactly once.
// Injected failures count in failed_writes / failed_reads of stats(), on top of the inner store's.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>

#include "backing_store.hpp"

namespace zpage {

template <class Inner>
class FaultyBackingStore {
    static_assert(BackingStore<Inner>,
                  "zpage::FaultyBackingStore: Inner must model zpage::BackingStore: max_record_bytes(), "
                  "max_batch_records(), noexcept write(), read(), free() and stats()");

public:
    // Builds the inner store from args; throws what its constructor throws.
    template <class... Args>
    explicit FaultyBackingStore(Args&&... args) : inner_(std::forward<Args>(args)...) {}

    [[nodiscard]] Inner& inner() noexcept { return inner_; }
    [[nodiscard]] const Inner& inner() const noexcept { return inner_; }

    // Writes `after` .. `after + times - 1` from now fail with `code` (io_error or no_space)
    // before reaching the inner store. Any thread.
    void fail_writes(errc code, std::uint32_t after = 0, std::uint32_t times = 1) noexcept {
        writes_.set(code == errc::no_space ? Kind::no_space : Kind::io_error, after, times);
    }
    // Those writes are short: the first half of the batch's records reach the inner store and are
    // freed again, and the write returns io_error with nothing kept. Any thread.
    void short_writes(std::uint32_t after = 0, std::uint32_t times = 1) noexcept {
        writes_.set(Kind::short_write, after, times);
    }
    // Reads `after` .. `after + times - 1` from now fail with io_error. Any thread.
    void fail_reads(std::uint32_t after = 0, std::uint32_t times = 1) noexcept {
        reads_.set(Kind::io_error, after, times);
    }
    // Those reads succeed with bit `bit` (modulo the read's bits) of what they return flipped,
    // as a device that corrupted it silently would. Any thread.
    void flip_bits(std::uint32_t after = 0, std::uint32_t times = 1, std::uint64_t bit = 0) noexcept {
        flipped_bit_.store(bit, std::memory_order_relaxed);
        reads_.set(Kind::flipped_bit, after, times);
    }
    // No more faults. Any thread.
    void clear() noexcept {
        writes_.set(Kind::none, 0, 0);
        reads_.set(Kind::none, 0, 0);
    }

    [[nodiscard]] std::size_t max_record_bytes() const noexcept { return inner_.max_record_bytes(); }
    [[nodiscard]] std::size_t max_batch_records() const noexcept { return inner_.max_batch_records(); }

    // The inner store's write, unless a fault is due. Any thread.
    Status write(std::span<const std::span<const std::byte>> records, std::span<BackingLocation> locations) noexcept {
        if (records.empty() || records.size() != locations.size()) return inner_.write(records, locations);
        switch (writes_.take()) {
        case Kind::io_error: return injected_write(errc::io_error);
        case Kind::no_space: return injected_write(errc::no_space);
        case Kind::short_write: {
            const std::size_t half = records.size() / 2;
            if (half != 0 && inner_.write(records.first(half), locations.first(half)))
                for (std::size_t i = 0; i < half; ++i) inner_.free(locations[i], records[i].size());
            return injected_write(errc::io_error);
        }
        default: return inner_.write(records, locations);
        }
    }

    // The inner store's read, unless a fault is due. Any thread.
    Status read(BackingLocation location, std::span<std::byte> out) noexcept {
        const Kind fault = out.empty() ? Kind::none : reads_.take();
        if (fault == Kind::io_error) {
            injected_failed_reads_.fetch_add(1, std::memory_order_relaxed);
            return errc::io_error;
        }
        const Status s = inner_.read(location, out);
        if (s && fault == Kind::flipped_bit) {
            const std::uint64_t bit = flipped_bit_.load(std::memory_order_relaxed) % (out.size() * 8);
            out[bit / 8] ^= std::byte{static_cast<unsigned char>(1U << (bit % 8))};
        }
        return s;
    }

    void free(BackingLocation location, std::size_t length) noexcept { inner_.free(location, length); }

    [[nodiscard]] BackingStats stats() const noexcept {
        BackingStats s = inner_.stats();
        s.failed_writes += injected_failed_writes_.load(std::memory_order_relaxed);
        s.failed_reads += injected_failed_reads_.load(std::memory_order_relaxed);
        return s;
    }

private:
    enum class Kind : std::uint8_t { none, io_error, no_space, short_write, flipped_bit, count };

    // {kind: 8 bits, calls to let through: 24 bits, calls to fault: 32 bits} in one atomic word,
    // so that a schedule is set and consumed whole.
    class Schedule {
    public:
        void set(Kind kind, std::uint32_t after, std::uint32_t times) noexcept {
            const std::uint64_t skip = std::min<std::uint32_t>(after, max_after);
            word_.store(std::uint64_t{static_cast<std::uint8_t>(kind)} << 56 | skip << 32 | times,
                        std::memory_order_relaxed);
        }
        // This call's fault, or none.
        Kind take() noexcept {
            std::uint64_t word = word_.load(std::memory_order_relaxed);
            for (;;) {
                const std::uint64_t times = word & 0xffffffffU, skip = word >> 32 & max_after;
                if (times == 0) return Kind::none;
                const std::uint64_t next = skip != 0 ? word - (std::uint64_t{1} << 32) : word - 1;
                if (word_.compare_exchange_weak(word, next, std::memory_order_relaxed))
                    return skip != 0 ? Kind::none : static_cast<Kind>(word >> 56);
            }
        }

    private:
        static constexpr std::uint32_t max_after = (1U << 24) - 1;
        std::atomic<std::uint64_t> word_{0};
    };

    Status injected_write(errc code) noexcept {
        injected_failed_writes_.fetch_add(1, std::memory_order_relaxed);
        return code;
    }

    Inner inner_;
    Schedule writes_, reads_;
    std::atomic<std::uint64_t> flipped_bit_{0};
    std::atomic<std::uint64_t> injected_failed_writes_{0}, injected_failed_reads_{0};
};

}  // namespace zpage
