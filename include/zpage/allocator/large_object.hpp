// zpage: objects of any size over a PageAllocator, for what exceeds its largest object (a group
// of pages compressed as one unit, a cache value of up to 1 MiB).
//
// A large object is cut into pieces of the allocator's largest object (max_object_bytes: a 4 KiB
// page's class, which packs its spans without a byte left over) and a tail in the size class that
// fits it; the pieces' handles are kept in an array of their own. So a large object costs its
// bytes, the tail's class rounding (under 16 B up to 4 KiB) and 8 B per piece of handle array plus
// malloc's header for it (16 B): a 64 KiB unit compressed to 20 KiB is 5 pieces, 56 B of
// overhead (0.3%). No object is contiguous: reading one gathers its pieces into the caller's
// buffer, a copy that costs about a tenth of a codec's decoding of the same bytes.
//
// The pieces belong to one owner, which compaction asks to move them (ObjectOwners): the owner
// finds the handle in its array (replace()) under its own lock. The array's memory is charged to
// the budget given, so that mem_used_total counts every byte.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <span>
#include <utility>

#include "../detail/assert.hpp"
#include "../errc.hpp"
#include "../memory_budget.hpp"
#include "concept.hpp"

namespace zpage {

template <PageAllocator Allocator>
class LargeObject {
public:
    static constexpr std::size_t piece_bytes = Allocator::max_object_bytes;

    LargeObject() noexcept = default;
    LargeObject(const LargeObject&) = delete;
    LargeObject& operator=(const LargeObject&) = delete;
    LargeObject(LargeObject&& other) noexcept
        : pieces_(std::exchange(other.pieces_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
    LargeObject& operator=(LargeObject&& other) noexcept {
        std::swap(pieces_, other.pieces_);
        std::swap(bytes_, other.bytes_);
        return *this;
    }
    // An object must be freed (free()) before it goes: it cannot reach its allocator itself.
    ~LargeObject() { ZPAGE_ASSERT(pieces_ == nullptr); }

    [[nodiscard]] std::size_t size() const noexcept { return bytes_; }
    [[nodiscard]] std::size_t piece_count() const noexcept { return pieces_for(bytes_); }
    [[nodiscard]] explicit operator bool() const noexcept { return pieces_ != nullptr; }

    // Makes `out` (empty) a new object owned by `owner` holding a copy of `bytes` (at least one);
    // the handle array is charged to `budget`. Fails as the allocator does (memory_limit,
    // out_of_memory), with nothing allocated. Any thread, under no owner lock.
    [[nodiscard]] static Status allocate(Allocator& allocator, MemoryBudget& budget, std::span<const std::byte> bytes,
                                         OwnerId owner, LargeObject& out) noexcept {
        ZPAGE_ASSERT(!out);
        if (bytes.empty()) return errc::invalid_argument;
        const std::size_t count = pieces_for(bytes.size());
        auto* pieces = static_cast<ObjectHandle*>(std::malloc(count * sizeof(ObjectHandle)));
        if (pieces == nullptr) return errc::out_of_memory;
        if (!budget.try_charge(array_bytes(pieces))) {
            std::free(pieces);
            return errc::memory_limit;
        }
        LargeObject object;
        object.pieces_ = pieces;
        object.bytes_ = bytes.size();
        for (std::size_t n = 0; n < count; ++n) {
            const std::size_t at = n * piece_bytes;
            const Result<ObjectHandle> piece =
                allocator.allocate(bytes.subspan(at, std::min(piece_bytes, bytes.size() - at)), owner);
            if (!piece) {
                object.bytes_ = at;  // the pieces made so far
                object.free(allocator, budget);
                return piece.error();
            }
            pieces[n] = *piece;
        }
        out = std::move(object);
        return errc::ok;
    }

    // Gives the pieces and the array back. Any thread, under no owner lock.
    void free(Allocator& allocator, MemoryBudget& budget) noexcept {
        if (pieces_ == nullptr) return;
        for (std::size_t n = 0; n < piece_count(); ++n) allocator.deallocate(pieces_[n]);
        budget.uncharge(array_bytes(pieces_));
        std::free(pieces_);
        pieces_ = nullptr;
        bytes_ = 0;
    }

    // Copies the object's bytes into out[0, size()). Under the owner's lock.
    void read(const Allocator& allocator, std::byte* out) const noexcept {
        for (std::size_t n = 0; n < piece_count(); ++n) {
            const std::size_t at = n * piece_bytes;
            const std::size_t length = std::min(piece_bytes, bytes_ - at);
            allocator.read(pieces_[n], [&](std::span<const std::byte> piece) noexcept {
                std::memcpy(out + at, piece.data(), length);
                return 0;
            });
        }
    }

    // ObjectOwners::relocate for the owner of the pieces, under its lock: when `from` is one of
    // them, calls copy() and makes it `to`. False when it is not (freed meanwhile).
    template <class Copy>
    bool relocate(ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
        for (std::size_t n = 0; n < piece_count(); ++n) {
            if (pieces_[n] == from) {
                copy();
                pieces_[n] = to;
                return true;
            }
        }
        return false;
    }

    // Memory an object of `bytes` takes: its pieces in their size classes (when the allocator
    // says what those are) and its handle array.
    [[nodiscard]] static std::size_t footprint(std::size_t bytes) noexcept {
        const std::size_t count = pieces_for(bytes);
        const std::size_t tail = bytes - (count - 1) * piece_bytes;
        return (count - 1) * object_footprint(piece_bytes) + object_footprint(tail) + count * sizeof(ObjectHandle);
    }

    // What one allocator object of `bytes` occupies: its size class when the allocator has them.
    [[nodiscard]] static std::size_t object_footprint(std::size_t bytes) noexcept {
        if constexpr (requires { Allocator::size_classes::class_of(bytes); }) {
            return Allocator::size_classes::classes[Allocator::size_classes::class_of(bytes)].object_bytes;
        } else {
            return bytes;
        }
    }

private:
    static constexpr std::size_t pieces_for(std::size_t bytes) noexcept {
        return (bytes + piece_bytes - 1) / piece_bytes;
    }
    static std::size_t array_bytes(ObjectHandle* pieces) noexcept { return ::malloc_usable_size(pieces); }

    ObjectHandle* pieces_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace zpage
