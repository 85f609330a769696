// zpage internal: the write path of a store, as one piece that every writer shares: the store's
// store(), writeback's return of a page to memory, recompression and the cache adapter.
//
// encode() turns an input into what its entry will hold, like zram_write_page: a whole page that
// is one repeated 8-byte word becomes that word (no allocation, no codec call); anything else is
// compressed into a stream's scratch buffer and allocated compressed, or raw when the result
// exceeds the huge threshold. The scratch buffer has room for any codec's worst case, because
// codecs given less room switch to a bounds-checked mode that is slower on exactly the
// incompressible inputs that then go raw (lz4: 0.96 against 1.14 us per such page). decode() is
// the way back. Publishing the result under an entry lock is the caller's part.
//
// Streams (codec contexts and scratch) come from a pool of slots; see the lock order at the top of
// store.hpp: a slot is taken before any size-class or entry lock, never under one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "../allocator/concept.hpp"
#include "../compressor/concept.hpp"
#include "../errc.hpp"
#include "../page_table.hpp"
#include "same_filled.hpp"
#include "stream_pool.hpp"

namespace zpage::detail {

template <Compressor Codec, PageAllocator Allocator, std::size_t MaxInputBytes>
class Encoder {
public:
    using dctx_type = typename Codec::decompress_context;
    using stream_type = typename StreamPool<Codec>::Stream;
    // Room for the worst case of the shipped codecs (lz4: input + input/255 + 16, zstd: less); a
    // codec that needs more reports 0 and the input is kept raw, which is still correct.
    static constexpr std::size_t scratch_bytes = MaxInputBytes + MaxInputBytes / 8;

    // A decompression context for one decode: a leased stream slot, or nothing at all for codecs
    // whose context is empty (lz4), which then cost no slot.
    class DecodeStream {
    public:
        DecodeStream() noexcept = default;
        explicit DecodeStream(typename StreamPool<Codec>::Lease lease) noexcept : lease_(std::move(lease)) {}
        // False when no context could be had (out of memory).
        explicit operator bool() const noexcept { return std::is_empty_v<dctx_type> || static_cast<bool>(lease_); }
        dctx_type& context() noexcept {
            if constexpr (std::is_empty_v<dctx_type>) {
                return none_;
            } else {
                return *lease_->decompress;
            }
        }

    private:
        typename StreamPool<Codec>::Lease lease_;
        [[no_unique_address]] dctx_type none_{};
    };

    // Throws what the codec throws for parameters it cannot use (std::invalid_argument), or
    // std::bad_alloc: the first stream is made here so that later calls fail only for memory.
    Encoder(Codec codec, Allocator& allocator, std::size_t huge_threshold)
        : codec_(checked(std::move(codec))), allocator_(allocator), huge_threshold_(huge_threshold),
          streams_(codec_, scratch_bytes) {
        streams_.prepare_first();
    }

    // The record an input gets: a fill word for a whole page of one repeated word
    // (`whole_page`), else a new object owned by `owner`, compressed or raw (flag huge). Fails
    // with memory_limit or out_of_memory, allocating nothing. Any thread, under no lock.
    Result<PageRecord> encode(std::span<const std::byte> input, OwnerId owner, bool whole_page) noexcept {
        if (whole_page) {
            if (const std::optional<std::uint64_t> fill = same_fill_word<MaxInputBytes>(
                    std::span<const std::byte, MaxInputBytes>(input.data(), MaxInputBytes)))
                return PageRecord::same_filled(*fill);
        }
        return compress_then(input, [&](std::span<const std::byte> compressed) noexcept -> Result<PageRecord> {
            const bool huge = compressed.empty() || compressed.size() > huge_threshold_;
            return adopt(huge ? input : compressed, huge, owner);
        });
    }

    // The record for bytes already encoded (a compressed page brought back from a backing
    // store, a recompressed one): a new object owned by `owner` holding them, its record naming
    // `codec` (the store's id of this encoder's codec). Fails as encode() does.
    Result<PageRecord> adopt(std::span<const std::byte> bytes, bool huge, OwnerId owner, unsigned codec = 0) noexcept {
        const Result<ObjectHandle> object = allocator_.allocate(bytes, owner);
        if (!object) return object.error();
        return PageRecord::object(static_cast<std::uint64_t>(*object), bytes.size(), huge, codec);
    }

    // Compresses `input` (up to MaxInputBytes) into a stream's scratch buffer and returns what
    // use(compressed) returns (a Status or a Result, out_of_memory when no stream can be had);
    // `compressed` is empty when the codec could not shrink it into the scratch. encode() is one
    // use; recompression, which decides what to make of the result, another. Any thread, under
    // no lock.
    template <class Use>
    auto compress_then(std::span<const std::byte> input, Use&& use) noexcept
        -> decltype(use(std::span<const std::byte>())) {
        auto stream = streams_.for_compression();
        if (!stream) return errc::out_of_memory;
        const std::span<std::byte> scratch(stream->scratch.get(), scratch_bytes);
        const std::size_t compressed = codec_.compress(*stream->compress, input, scratch);
        return use(std::span<const std::byte>(scratch.first(compressed)));
    }

    // A stream for decoding units of grouped pages (StreamPool::for_unit_decompression): its
    // scratch takes a unit's compressed bytes, its unit buffer `unit_bytes` decoded. Taken before
    // the caller locks the entry it will decode.
    typename StreamPool<Codec>::Lease unit_stream(std::size_t unit_bytes) noexcept {
        return streams_.for_unit_decompression(unit_bytes);
    }

    // Makes every stream's decoding context now (StreamPool::prepare_all_for_decompression).
    void prepare_decode_streams(std::size_t unit_bytes = 0) { streams_.prepare_all_for_decompression(unit_bytes); }

    // A context for decode(), taken before the caller locks the entry it will decode.
    DecodeStream decode_stream() noexcept {
        if constexpr (std::is_empty_v<dctx_type>) {
            return DecodeStream();
        } else {
            return DecodeStream(streams_.for_decompression());
        }
    }

    // Writes the input that `r` (an object record: not same-filled, in memory) was made from
    // into `out` (its size). corrupt_data when the stored bytes do not decode to exactly that.
    // Under the lock of the record's owner (compaction must not move the object meanwhile).
    Status decode(const PageRecord& r, std::span<std::byte> out, dctx_type& ctx) const noexcept {
        if (r.has(PageFlag::huge)) {
            allocator_.read(ObjectHandle{r.word}, [&](std::span<const std::byte> raw) noexcept {
                std::memcpy(out.data(), raw.data(), out.size());
                return 0;
            });
            return errc::ok;
        }
        return decode_bytes(r, out, ctx);
    }

    // Decodes compressed bytes (a record's object, or its copy from elsewhere) into `out`.
    Status decompress(std::span<const std::byte> compressed, std::span<std::byte> out, dctx_type& ctx) const noexcept {
        const Result<std::size_t> produced = codec_.decompress(ctx, compressed, out);
        if (!produced) return produced.error();
        return *produced == out.size() ? errc::ok : errc::corrupt_data;
    }

    [[nodiscard]] const Codec& codec() const noexcept { return codec_; }
    [[nodiscard]] std::size_t huge_threshold() const noexcept { return huge_threshold_; }

private:
    static Codec checked(Codec codec) {
        validate_codec(codec);
        return codec;
    }

    Status decode_bytes(const PageRecord& r, std::span<std::byte> out, dctx_type& ctx) const noexcept {
        return allocator_.read(ObjectHandle{r.word}, [&](std::span<const std::byte> object) noexcept {
            return decompress(object.first(r.size()), out, ctx);
        });
    }

    const Codec codec_;
    Allocator& allocator_;
    const std::size_t huge_threshold_;
    mutable StreamPool<Codec> streams_;
};

}  // namespace zpage::detail
