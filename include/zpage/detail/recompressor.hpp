// zpage internal: a store's secondary codecs and what they hold: pages recompressed alone (an
// object in the allocator, the entry naming the codec) and units of grouped pages (unit_table.hpp).
//
// recompress() walks windows of `group_pages` neighbouring indices, like the writeback engine:
//   1. collect: under each entry's lock, a candidate page is decoded into the window's input and
//      flagged under_recompression; the page stays where it is, so loads go on reading it.
//   2. compress the members as one input with the chosen codec (no entry lock held) and keep the
//      result only when it takes less memory than the members' objects do (for one page: a
//      smaller size class, zram's rule); allocate it (an object, or a unit's pieces).
//   3. publish: under each entry's lock again, a page still flagged under_recompression now points
//      at the new object or unit; a store or erase that landed meanwhile cleared the flag and
//      wins (the page leaves the unit). The old objects are freed after the locks, and the store
//      is compacted every few MiB freed and at the end.
// A load of a grouped page decompresses its unit into its codec stream's unit buffer, which keeps
// it: its neighbours read next are copied out of it (keyed by the unit's id and generation).
//
// Lock order (store.hpp has the whole of it): the recompression mutex is held across a call and
// is taken holding nothing else; under it, codec stream slots (never under an entry lock),
// size-class locks, entry locks, and unit locks (leaves).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "../allocator/large_object.hpp"
#include "../errc.hpp"
#include "../page_table.hpp"
#include "../recompress.hpp"
#include "atomic_counters.hpp"
#include "encoder.hpp"
#include "spin_mutex.hpp"
#include "unit_table.hpp"

namespace zpage::detail {

template <class Store>
class Recompressor {
    using allocator_type = typename Store::allocator_type;
    using codecs_type = typename Store::secondary_codecs_type;
    using primary_dctx_type = typename Store::compressor_type::decompress_context;
    using units_type = UnitTable<allocator_type>;
    static constexpr std::size_t page_size = Store::page_size;
    static constexpr std::size_t max_group_pages = units_type::max_members;
    static constexpr std::size_t unit_bytes = page_size * max_group_pages;

    template <class Codec>
    using encoder_for = Encoder<Codec, allocator_type, unit_bytes>;
    template <class Tuple>
    struct encoders_of;
    template <class... Codecs>
    struct encoders_of<std::tuple<Codecs...>> {
        using type = std::tuple<std::unique_ptr<encoder_for<Codecs>>...>;
        using streams = std::tuple<typename StreamPool<Codecs>::Stream...>;
    };

public:
    static constexpr std::size_t codec_count = std::tuple_size_v<codecs_type>;
    static_assert(codec_count >= 1 && codec_count <= 6,
                  "zpage: a store takes one to six secondary codecs (codec ids 1..6 of an entry's 3 bits)");

    // Throws std::invalid_argument for a codec parameter a codec cannot use or a capacity too
    // large for units' owner ids, std::bad_alloc.
    Recompressor(Store& store, codecs_type codecs)
        : store_(store),
          encoders_(make_encoders(codecs, std::make_index_sequence<codec_count>{})),
          units_(store.allocator_, store.budget_, checked_owner_base(store.capacity()), store.capacity() / 2 + 1),
          input_(std::make_unique<std::byte[]>(unit_bytes)),
          primary_dctx_(store.compressor().make_decompress_context()) {}

    // Makes every stream a load of a grouped page can take now (Encoder::prepare_decode_streams).
    void prepare_load_streams() {
        std::apply([](auto&... encoder) { (encoder->prepare_decode_streams(unit_bytes), ...); }, encoders_);
    }

    // Loads page `index`, held by secondary codec `codec`, into `page`. nullopt: the entry no
    // longer names that codec (stored over meanwhile); the caller starts over.
    std::optional<Status> load(std::size_t index, unsigned codec, typename Store::page_buffer page) noexcept {
        if (codec == 0 || codec > codec_count) return Status(errc::corrupt_data);
        std::optional<Status> result;
        with_encoder(codec, [&](auto& encoder) noexcept { result = load_with(encoder, codec, index, page); });
        return result;
    }

    // Writes the page of `index`, held by a secondary codec (`r`, as its entry holds it now), into
    // `page`, for a writeback batch: with the batch's own streams, so that the members of a unit
    // taken one after another decode it once. False when it does not decode (the page stays where
    // it is; its load reports the error) or a stream cannot be had. Under the entry's lock and the
    // writeback batch mutex, which guards the batch's streams.
    bool decode_for_writeback(std::size_t index, const PageRecord& r, std::span<std::byte, page_size> page) noexcept {
        bool decoded = false;
        with_batch_stream(r.codec(), [&](auto& encoder, auto& stream) noexcept {
            decoded = prepare(encoder, stream) && decode_with(encoder, stream, index, r, page);
        });
        return decoded;
    }

    // A member of unit `id` stopped referring to it. Under no entry lock.
    void release_unit(std::uint64_t id) noexcept { units_.release(static_cast<std::uint32_t>(id)); }

    // ObjectOwners::relocate for owners that are units. Under a size-class lock.
    template <class Copy>
    bool relocate(OwnerId owner, ObjectHandle from, ObjectHandle to, Copy&& copy) noexcept {
        return units_.relocate(owner, from, to, copy);
    }

    RecompressResult recompress(const RecompressRequest& request) noexcept {
        RecompressResult result;
        if (request.codec == 0 || request.codec > codec_count || request.group_pages == 0 ||
            request.group_pages > max_group_pages) {
            result.status = errc::invalid_argument;
            return result;
        }
        const auto started = std::chrono::steady_clock::now();
        std::unique_lock guard = lock_waiting_for(mutex_, "recompression mutex");
        const MemoryBudget::ReclaimScope reclaiming;  // it frees memory: it may use the reserve
        with_encoder(request.codec, [&](auto& encoder) noexcept { run(encoder, request, result); });
        add(&RecompressStats::pages_recompressed, result.pages);
        add(&RecompressStats::units_made, result.units);
        add(&RecompressStats::bytes_saved, static_cast<std::uint64_t>(std::max<std::int64_t>(result.bytes_saved, 0)));
        add(&RecompressStats::attempts_not_paid, result.not_paid);
        add(&RecompressStats::recompress_us,
            static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
                    .count()));
        return result;
    }

    // Not behind the recompression mutex: a long recompression does not hold a reader up.
    [[nodiscard]] RecompressStats stats() const noexcept { return load_counters(stats_); }

    [[nodiscard]] OwnerId owner_base() const noexcept { return units_.owner_base(); }

private:
    void add(std::uint64_t RecompressStats::*member, std::uint64_t n) noexcept { add_counter(stats_.*member, n); }

    struct Member {
        std::size_t index;
        PageRecord record;
    };
    // What compressing a window made: nothing when the result did not pay or found no memory.
    struct Made {
        bool paid = false;
        PageRecord single;                  // one page: its new object
        std::uint32_t unit = 0;             // several: their unit
        std::size_t compressed_bytes = 0;
        std::size_t footprint = 0;          // memory the new object or unit takes
    };

    static OwnerId checked_owner_base(std::size_t capacity) {
        if (capacity + capacity / 2 + 1 > std::size_t{max_owner_id})
            throw std::invalid_argument("zpage::StoreConfig: capacity_pages must be below 2^31 / 1.5 for a store with "
                                        "secondary codecs (units of grouped pages need owner ids beside the pages)");
        return static_cast<OwnerId>(capacity);
    }

    template <std::size_t... I>
    typename encoders_of<codecs_type>::type make_encoders(const codecs_type& codecs, std::index_sequence<I...>) {
        return {std::make_unique<encoder_for<std::tuple_element_t<I, codecs_type>>>(
            std::get<I>(codecs), store_.allocator_, store_.huge_threshold())...};
    }

    // Calls f with the encoder of codec id `codec` (1 .. codec_count).
    template <class F>
    void with_encoder(unsigned codec, F&& f) noexcept {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((codec == I + 1 ? f(*std::get<I>(encoders_)) : void()), ...);
        }(std::make_index_sequence<codec_count>{});
    }

    // Calls f with the encoder of codec id `codec` and the writeback batch's stream for it.
    template <class F>
    void with_batch_stream(unsigned codec, F&& f) noexcept {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((codec == I + 1 ? f(*std::get<I>(encoders_), std::get<I>(batch_streams_)) : void()), ...);
        }(std::make_index_sequence<codec_count>{});
    }

    template <class Encoder>
    std::optional<Status> load_with(Encoder& encoder, unsigned codec, std::size_t index,
                                    typename Store::page_buffer page) noexcept {
        // The stream before the entry lock: see the lock order at the top of store.hpp.
        auto stream = encoder.unit_stream(unit_bytes);
        if (!stream) return Status(errc::out_of_memory);
        LockedPage entry = store_.table_.lock(index);
        const PageRecord r = entry.get();
        if (r.codec() != codec) return std::nullopt;
        store_.touch(entry);
        return decode_with(encoder, *stream, index, r, page);
    }

    // Writes the page `r` (held by this codec: an object of its own or a member of a unit) of
    // `index` into `page` with `stream`, whose unit buffer keeps the last unit decoded. Under the
    // entry's lock.
    template <class Encoder, class Stream>
    Status decode_with(Encoder& encoder, Stream& stream, std::size_t index, const PageRecord& r,
                       std::span<std::byte, page_size> page) noexcept {
        auto& ctx = *stream.decompress;
        if (!r.has(PageFlag::grouped)) return encoder.decode(r, page, ctx);
        const auto shape = units_.shape(static_cast<std::uint32_t>(r.word));
        std::byte* const unit = stream.unit.get();
        if (stream.unit_key != shape.key) {
            stream.unit_key = 0;
            const std::size_t compressed = units_.gather(static_cast<std::uint32_t>(r.word), stream.scratch.get());
            const Status decoded = encoder.decompress(std::span<const std::byte>(stream.scratch.get(), compressed),
                                                      std::span<std::byte>(unit, shape.pages() * page_size), ctx);
            if (!decoded) return decoded;
            stream.unit_key = shape.key;
        }
        std::memcpy(page.data(), unit + shape.rank(index) * page_size, page_size);
        return Status();
    }

    // Streams of the writeback batch, one per secondary codec, made on first use: the batch
    // decodes with streams of its own, never pooled ones (writeback/engine.hpp says why).
    template <class Encoder>
    static bool prepare(Encoder& encoder, typename Encoder::stream_type& stream) noexcept {
        if (stream.decompress && stream.unit && stream.scratch) return true;
        try {
            if (!stream.decompress) stream.decompress.emplace(encoder.codec().make_decompress_context());
            if (!stream.scratch) stream.scratch = std::make_unique<std::byte[]>(Encoder::scratch_bytes);
            if (!stream.unit) stream.unit = std::make_unique<std::byte[]>(unit_bytes);
        } catch (...) {
            return false;
        }
        return true;
    }

    static bool selected(const PageRecord& r, RecompressSelect select) noexcept {
        switch (select) {
        case RecompressSelect::huge: return r.has(PageFlag::huge);
        case RecompressSelect::idle: return r.has(PageFlag::idle);
        case RecompressSelect::huge_idle: return r.has(PageFlag::huge) && r.has(PageFlag::idle);
        case RecompressSelect::any: return true;
        }
        return false;
    }

    static bool candidate(const PageRecord& r, const RecompressRequest& request) noexcept {
        return Store::holds_object(r) && r.codec() == 0 && !r.has(PageFlag::incompressible) &&
               !r.has(PageFlag::under_writeback) && !r.has(PageFlag::under_recompression) &&
               selected(r, request.select) && r.size() >= request.threshold_bytes;
    }

    static std::size_t footprint_of_object(std::size_t bytes) noexcept {
        return LargeObject<allocator_type>::object_footprint(bytes);
    }

    // Recompression mutex held.
    template <class Encoder>
    void run(Encoder& encoder, const RecompressRequest& request, RecompressResult& result) noexcept {
        const std::size_t group = request.group_pages;
        const std::size_t last = std::min(request.last, store_.capacity());
        const bool last_codec = request.codec == codec_count;
        std::size_t window = request.first / group * group;
        for (; window < last && result.pages < request.max_pages; window += group) {
            std::array<Member, max_group_pages> members;
            std::size_t count = 0;
            typename units_type::members_mask mask = 0;
            for (std::size_t p = 0; p < group && result.pages + count < request.max_pages; ++p) {
                const std::size_t index = window + p;
                if (index < request.first || index >= last) continue;
                LockedPage entry = store_.table_.lock(index);
                const PageRecord r = entry.get();
                if (!candidate(r, request)) continue;
                const std::span<std::byte> out(input_.get() + count * page_size, page_size);
                if (!store_.encoder_.decode(r, out, *primary_dctx_)) continue;  // corrupt: its load says so
                entry.set_flag(PageFlag::under_recompression);
                members[count++] = {index, r};
                mask = static_cast<typename units_type::members_mask>(mask | (1u << p));
            }
            if (count == 0) continue;
            result.tried += count;
            std::size_t old_footprint = 0;
            for (std::size_t m = 0; m < count; ++m) old_footprint += footprint_of_object(members[m].record.size());

            // Compressed as one input; kept as an object (one page) or a unit (several).
            Made made;
            const std::span<const std::byte> input(input_.get(), count * page_size);
            const Status status = encoder.compress_then(input, [&](std::span<const std::byte> compressed) noexcept -> Status {
                // Alone, a page must fit an object (a raw page compressed by a few bytes more than
                // its page would not).
                if (compressed.empty() || (count == 1 && compressed.size() > allocator_type::max_object_bytes))
                    return errc::ok;
                made.compressed_bytes = compressed.size();
                made.footprint = count == 1 ? footprint_of_object(compressed.size())
                                            : LargeObject<allocator_type>::footprint(compressed.size());
                if (made.footprint >= old_footprint) return errc::ok;
                // Under the limit, the holes earlier windows left may be what makes room.
                for (bool retried = false;; retried = true) {
                    Status allocated;
                    if (count == 1) {
                        const Result<PageRecord> object = encoder.adopt(
                            compressed, false, static_cast<OwnerId>(members[0].index), request.codec);
                        if (object) made.single = *object;
                        allocated = object.status();
                    } else {
                        const Result<std::uint32_t> id = units_.create(
                            compressed, static_cast<std::uint32_t>(window), mask, static_cast<std::uint8_t>(request.codec));
                        if (id) made.unit = *id;
                        allocated = id.status();
                    }
                    if (allocated) break;
                    if (retried || allocated != errc::memory_limit || freed_since_compaction_ == 0) return allocated;
                    compact();
                }
                made.paid = true;
                return errc::ok;
            });
            // A result that did not pay flags its pages (with the last codec); one that could not
            // be allocated leaves them as they were, for a later try.
            if (!made.paid && status) ++result.not_paid;
            publish(members, count, made, last_codec && status, request.codec, result);
            if (!status) {
                result.status = status;
                break;
            }
            if (freed_since_compaction_ >= compaction_bytes) compact();
        }
        result.next = std::min(window, last);
        if (freed_since_compaction_ != 0) compact();
    }

    // The old objects leave holes in their spans as the new ones take memory: compacting as it
    // goes keeps a recompression's peak near where it started, and under a limit makes the room
    // the next windows need.
    void compact() noexcept {
        static_cast<void>(store_.compact());
        freed_since_compaction_ = 0;
    }

    // Step 3 for one window: members still flagged take the new record (or, when it did not pay
    // or could not be made, are unflagged); the old objects go after the locks.
    void publish(const std::array<Member, max_group_pages>& members, std::size_t count, const Made& made,
                 bool flag_failures, unsigned codec, RecompressResult& result) noexcept {
        std::array<PageRecord, max_group_pages> replaced;
        std::size_t published = 0, published_footprint = 0;
        typename Store::Deltas deltas;
        for (std::size_t m = 0; m < count; ++m) {
            LockedPage entry = store_.table_.lock(members[m].index);
            const PageRecord now = entry.get();
            if (!now.has(PageFlag::under_recompression)) continue;  // a store or erase won
            if (!made.paid) {
                entry.clear_flag(PageFlag::under_recompression);
                if (flag_failures) entry.set_flag(PageFlag::incompressible);
                continue;
            }
            const std::uint32_t idle = now.meta & PageEntry::flag_bit(PageFlag::idle);
            PageRecord next;
            if (count == 1) {
                next = PageRecord{made.single.word, made.single.meta | idle};
            } else {
                const std::size_t share = made.compressed_bytes / count + (m == 0 ? made.compressed_bytes % count : 0);
                next = PageRecord{made.unit, static_cast<std::uint32_t>(std::max<std::size_t>(share, 1)) | idle |
                                            PageEntry::flag_bit(PageFlag::grouped)}
                           .with_codec(codec);
            }
            entry.set(next);
            // The entry's object now, not as collected: compaction may have moved it since.
            replaced[published++] = now.without(PageFlag::under_recompression);
            published_footprint += footprint_of_object(now.size());
            deltas.count(now, -1);
            deltas.count(next, +1);
        }
        for (std::size_t m = 0; m < published; ++m) store_.allocator_.deallocate(ObjectHandle{replaced[m].word});
        freed_since_compaction_ += published_footprint;
        if (!made.paid) return;
        if (count == 1) {
            if (published == 0) store_.allocator_.deallocate(ObjectHandle{made.single.word});
        } else {
            if (published < count) units_.release(made.unit, static_cast<unsigned>(count - published));
            if (published != 0) ++result.units;
        }
        store_.apply(deltas);
        result.pages += published;
        if (published != 0)
            result.bytes_saved += static_cast<std::int64_t>(published_footprint) - static_cast<std::int64_t>(made.footprint);
    }

    Store& store_;
    typename encoders_of<codecs_type>::type encoders_;
    units_type units_;
    std::mutex mutex_;                     // one recompress() at a time; guards input_ and primary_dctx_
    std::unique_ptr<std::byte[]> input_;   // a window's pages, decoded
    std::optional<primary_dctx_type> primary_dctx_;
    typename encoders_of<codecs_type>::streams batch_streams_;  // guarded by the writeback batch mutex
    RecompressStats stats_;  // every access through std::atomic_ref
    std::size_t freed_since_compaction_ = 0;
    static constexpr std::size_t compaction_bytes = std::size_t{4} << 20;  // a few spans of each busy class
};

}  // namespace zpage::detail
