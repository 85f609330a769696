// zpage internal: per-thread codec streams without thread-local storage tied to a store.
//
// A store keeps a small array of streams (codec contexts plus a scratch buffer), about two per
// hardware thread. A thread starts at the slot its thread index points to and takes the first
// free one, so threads settle on slots of their own and a call costs one uncontended exchange.
// Contexts are made on a slot's first use and kept for the store's lifetime: no allocation per
// call in steady state.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <utility>

#include "../compressor/concept.hpp"
#include "spin_mutex.hpp"
#include "thread_index.hpp"

namespace zpage::detail {

template <Compressor C>
class StreamPool {
public:
    struct Stream {
        std::optional<typename C::compress_context> compress;
        std::optional<typename C::decompress_context> decompress;
        std::unique_ptr<std::byte[]> scratch;
        // Decoding units of grouped pages: the last unit this stream decompressed, and which one
        // it was (0: none), so that reading its neighbours in order decompresses it once.
        std::unique_ptr<std::byte[]> unit;
        std::uint64_t unit_key = 0;
    };

private:
    struct alignas(64) Slot {
        std::atomic<bool> busy{false};
        Stream stream;
    };

public:
    // A stream held exclusively until the lease goes; empty when a context could not be made.
    class Lease {
    public:
        Lease() noexcept = default;
        Lease(Lease&& other) noexcept : slot_(std::exchange(other.slot_, nullptr)) {}
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (slot_ != nullptr) slot_->busy.store(false, std::memory_order_release);
        }
        explicit operator bool() const noexcept { return slot_ != nullptr; }
        Stream* operator->() const noexcept { return &slot_->stream; }
        Stream& operator*() const noexcept { return slot_->stream; }

    private:
        friend class StreamPool;
        explicit Lease(Slot* slot) noexcept : slot_(slot) {}
        Slot* slot_ = nullptr;
    };

    // Two slots per hardware thread, at least 4, a power of two.
    [[nodiscard]] static std::size_t default_slot_count() noexcept {
        return std::bit_ceil(std::clamp<std::size_t>(std::size_t{2} * std::thread::hardware_concurrency(), 4, 256));
    }

    StreamPool(const C& codec, std::size_t scratch_bytes)
        : codec_(codec),
          scratch_bytes_(scratch_bytes),
          count_(default_slot_count()),
          slots_(std::make_unique<Slot[]>(count_)) {}

    // Makes the first slot's contexts and scratch now, throwing what the codec throws (a
    // parameter it cannot use, std::bad_alloc): a store calls it at construction, so that later
    // calls can fail only for want of memory.
    void prepare_first() {
        Stream& s = slots_[0].stream;
        s.compress.emplace(codec_.make_compress_context());
        s.decompress.emplace(codec_.make_decompress_context());
        s.scratch = std::make_unique_for_overwrite<std::byte[]>(scratch_bytes_);
    }

    // Makes every slot's decompression context now (with `unit_bytes`, also the scratch and a unit
    // buffer of that size, as for_unit_decompression does), throwing what the codec throws: for
    // a caller whose loads must not allocate even on a slot's first use (a fault served in a
    // signal handler). Any thread; waits for each slot in use to be free.
    void prepare_all_for_decompression(std::size_t unit_bytes = 0) {
        for (std::size_t i = 0; i < count_; ++i) {
            Slot& slot = slots_[i];
            while (slot.busy.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
            const Lease lease(&slot);
            Stream& s = slot.stream;
            if (!s.decompress) s.decompress.emplace(codec_.make_decompress_context());
            if (unit_bytes == 0) continue;
            if (!s.scratch) s.scratch = std::make_unique_for_overwrite<std::byte[]>(scratch_bytes_);
            if (!s.unit) s.unit = std::make_unique<std::byte[]>(unit_bytes);
        }
    }

    // A stream with a compression context and the scratch buffer. Any thread.
    Lease for_compression() noexcept {
        return acquire([&](Stream& s) {
            if (!s.compress) s.compress.emplace(codec_.make_compress_context());
            if (!s.scratch) s.scratch = std::make_unique_for_overwrite<std::byte[]>(scratch_bytes_);
        });
    }

    // A stream with a decompression context. Any thread.
    Lease for_decompression() noexcept {
        return acquire([&](Stream& s) {
            if (!s.decompress) s.decompress.emplace(codec_.make_decompress_context());
        });
    }

    // A stream with a decompression context, the scratch buffer and a unit buffer of
    // `unit_bytes`. Any thread.
    Lease for_unit_decompression(std::size_t unit_bytes) noexcept {
        return acquire([&](Stream& s) {
            if (!s.decompress) s.decompress.emplace(codec_.make_decompress_context());
            if (!s.scratch) s.scratch = std::make_unique_for_overwrite<std::byte[]>(scratch_bytes_);
            if (!s.unit) s.unit = std::make_unique<std::byte[]>(unit_bytes);
        });
    }

private:
    template <class Prepare>
    Lease acquire(Prepare&& prepare) noexcept {
        const std::size_t start = this_thread_index() & (count_ - 1);
        Backoff backoff("codec stream slot");
        for (;;) {
            for (std::size_t i = 0; i < count_; ++i) {
                Slot& slot = slots_[(start + i) & (count_ - 1)];
                if (slot.busy.load(std::memory_order_relaxed) || slot.busy.exchange(true, std::memory_order_acquire))
                    continue;
                Lease lease(&slot);
                try {
                    prepare(slot.stream);
                } catch (...) {
                    // The codec made contexts at construction (prepare_first), so a failure now
                    // is for want of memory: the caller reports out_of_memory.
                    return Lease();
                }
                return lease;
            }
            backoff.pause();  // more threads than slots at this instant
        }
    }

    const C codec_;
    const std::size_t scratch_bytes_;
    const std::size_t count_;  // a power of two
    std::unique_ptr<Slot[]> slots_;
};

}  // namespace zpage::detail
