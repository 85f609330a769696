// zpage: the size-class table of SizeClassAllocator, computed at compile time from named constants.
//
// Objects of 32 B to 4 KiB fit classes 16 B apart (255 classes, as in zsmalloc): at most 15 B of
// rounding per object, 0.4% of the ~2 KiB a typical compressed 4 KiB page takes. Above 4 KiB
// (stores of larger pages) the classes are geometric: each doubling [2^k, 2^(k+1)] has 128
// classes 2^k / 128 apart (32 B from 4 KiB, 64 B from 8 KiB, ... 512 B from 64 KiB), so rounding
// costs at most 1/128 (0.78%) of an object, and a table up to 128 KiB has 895 classes where 16 B
// steps would need 8191, more than a handle can name (4096) and than a compiler's constexpr
// budget computes. Measured on 16 KiB pages of the corpora against 16 B classes up to 16 KiB:
// rounding, merged classes included, 0.69-0.70% of the compressed bytes instead of 0.56-0.58%,
// paid back by descriptors half as long and fewer classes in use: mem_used / compr_data_size
// moved by +0.05% to -0.17% after filling, +0.03% to -0.4% after erasing half and compacting,
// over the three corpora with lz4 and zstd-3.
//
// Each class carves its objects back to back out of spans of 4 KiB pages; objects straddle page
// boundaries inside a span (as in zsmalloc), and reading one that does costs a copy of it into a
// per-thread buffer. Classes whose objects a larger class holds for at most 1% more memory are
// merged into it (162 of the 255 classes of 4 KiB pages serve), as zsmalloc merges classes of
// equal zspage geometry.
//
// Pages per span are chosen per class, to minimise the bytes at the end of a full span that no
// object fits in, within a range that keeps at least 8 objects in a span. Classes up to 4 KiB
// search 16-32 pages, which leaves 0.1% of a span unused on average over the classes that real
// pages fill (zsmalloc's 8-page zspages: 1.5%). A class over 4 KiB searches from P pages,
// P = ceil(8 * object_bytes / 4 KiB), up to twice the P of the table's largest class (64 pages
// for 16 KiB, 512 for 128 KiB): spans of only [P, 2P] pages leave up to 5% unused just above
// 4 KiB (4128 B objects in 9-18 pages) and measured 0.1-0.5% more memory on 16 KiB pages, while
// every descriptor lists as many pages as the longest span anyway. Large spans are affordable
// because a span takes its pages one by one as its objects arrive, so a class's partly filled
// span costs the pages it uses, not the whole span. Costs: every descriptor's page list takes
// 4 B per page of max_pages_per_span, 128 B for 4 KiB pages but 2 KiB for 128 KiB pages (0.1%
// of the spans of objects over 4 KiB, which tie towards their longest, and 1.6-3% of a 16-32-page
// span of smaller objects, rare in such stores); and a span frees its pages only once all its
// objects go, so long spans rely on compact() after many erasures.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "../detail/os.hpp"

namespace zpage {

struct SizeClass {
    std::uint32_t object_bytes;      // every object of the class occupies exactly this much
    std::uint32_t pages_per_span;    // 4 KiB pages in each span of the class
    std::uint32_t objects_per_span;  // floor(pages_per_span * 4096 / object_bytes)

    [[nodiscard]] constexpr std::size_t span_bytes() const noexcept {
        return std::size_t{pages_per_span} * detail::os::page_bytes;
    }
    [[nodiscard]] constexpr std::size_t tail_waste_bytes() const noexcept {
        return span_bytes() - std::size_t{objects_per_span} * object_bytes;
    }
};

// The pages per span a class may choose from.
struct SpanPagesRange {
    std::size_t min_pages;
    std::size_t max_pages;
};

template <std::size_t MaxObjectBytes>
struct SizeClassTable {
    static constexpr std::size_t min_object_bytes = 32;
    // Classes up to linear_max_object_bytes are class_step_bytes apart, then classes_per_doubling
    // to each power of two.
    static constexpr std::size_t class_step_bytes = 16;
    static constexpr std::size_t linear_max_object_bytes = 4096;
    static constexpr std::size_t classes_per_doubling = 128;
    static constexpr std::size_t linear_class_count = (linear_max_object_bytes - min_object_bytes) / class_step_bytes + 1;
    static constexpr std::size_t max_object_bytes = MaxObjectBytes;

    static constexpr std::size_t min_objects_per_span = 8;
    // Spans of classes up to linear_max_object_bytes (at least 16 of their objects).
    static constexpr SpanPagesRange linear_span_pages{16, 32};

    static_assert(std::has_single_bit(linear_max_object_bytes) && std::has_single_bit(classes_per_doubling) &&
                      (linear_max_object_bytes / classes_per_doubling) % class_step_bytes == 0,
                  "zpage::SizeClassTable: the geometric classes must continue the 16 B grid");

private:
    static constexpr std::size_t pages_for_min_objects(std::size_t object_bytes) noexcept {
        return (min_objects_per_span * object_bytes + detail::os::page_bytes - 1) / detail::os::page_bytes;
    }
    static constexpr unsigned log2(std::size_t power_of_two) noexcept {
        return static_cast<unsigned>(std::bit_width(power_of_two)) - 1;
    }
    static constexpr unsigned linear_max_shift = log2(linear_max_object_bytes);
    static constexpr unsigned doubling_shift = log2(classes_per_doubling);
    static constexpr int page_shift = std::countr_zero(detail::os::page_bytes);

public:
    // The smallest class that holds `bytes` (1 <= bytes <= max_object_bytes). O(1): above 4 KiB
    // the doubling is the bit width of bytes - 1.
    [[nodiscard]] static constexpr std::size_t fitting_class(std::size_t bytes) noexcept {
        if (bytes <= linear_max_object_bytes)
            return bytes <= min_object_bytes ? 0 : (bytes - min_object_bytes + class_step_bytes - 1) / class_step_bytes;
        const unsigned k = log2(bytes - 1);  // 2^k < bytes <= 2^(k+1)
        const unsigned step_shift = k - doubling_shift;
        const std::size_t above = (bytes - (std::size_t{1} << k) + (std::size_t{1} << step_shift) - 1) >> step_shift;
        return linear_class_count - 1 + (k - linear_max_shift) * classes_per_doubling + above;
    }

    // Bytes of the objects of class `index`.
    [[nodiscard]] static constexpr std::size_t object_bytes_of(std::size_t index) noexcept {
        if (index < linear_class_count) return min_object_bytes + index * class_step_bytes;
        const std::size_t geometric = index - linear_class_count;  // 0: the first class above 4 KiB
        const std::size_t base = linear_max_object_bytes << (geometric / classes_per_doubling);
        return base + base / classes_per_doubling * (geometric % classes_per_doubling + 1);
    }

    static constexpr std::size_t class_count = fitting_class(max_object_bytes) + 1;

    static_assert(MaxObjectBytes >= min_object_bytes && object_bytes_of(class_count - 1) == MaxObjectBytes,
                  "zpage::SizeClassTable: the largest object must be a class size: at least 32 B, a multiple of "
                  "16 B up to 4 KiB and of 1/128 of its power of two above (any multiple of 4096 up to 1 MiB is)");

    // Pages per span a class of `object_bytes` may choose from. Classes over a page search from
    // the fewest pages that hold min_objects_per_span objects up to the longest span of the
    // table, twice that of its largest class: every descriptor lists that many pages anyway.
    [[nodiscard]] static constexpr SpanPagesRange span_pages_for(std::size_t object_bytes) noexcept {
        if (object_bytes <= linear_max_object_bytes) return linear_span_pages;
        return {pages_for_min_objects(object_bytes), 2 * pages_for_min_objects(max_object_bytes)};
    }

    // The class that serves `bytes`: its fitting class, or a larger one merged with it.
    [[nodiscard]] static constexpr std::size_t class_of(std::size_t bytes) noexcept {
        return serving_class[fitting_class(bytes)];
    }

    // The class of `object_bytes` with the span in its range that leaves the smallest fraction
    // of the span unused (ties: the longer span).
    [[nodiscard]] static constexpr SizeClass make_class(std::size_t object_bytes) noexcept {
        const SpanPagesRange range = span_pages_for(object_bytes);
        SizeClass best{static_cast<std::uint32_t>(object_bytes), 0, 0};
        std::size_t best_waste = ~std::size_t{0};
        auto consider = [&](std::size_t pages) {
            const std::size_t span = pages * detail::os::page_bytes;
            const std::size_t waste = span % object_bytes;
            // Compare waste as a fraction of the span (cross-multiplied); ties keep the larger span.
            if (best.pages_per_span == 0 || waste * best.span_bytes() < best_waste * span) {
                best.pages_per_span = static_cast<std::uint32_t>(pages);
                best.objects_per_span = static_cast<std::uint32_t>(span / object_bytes);
                best_waste = waste;
            }
        };
        if (object_bytes <= linear_max_object_bytes) {
            for (std::size_t pages = range.max_pages; pages >= range.min_pages; --pages) consider(pages);
            return best;
        }
        // Objects over a page: fewer object counts than page counts to try. For m objects only
        // the shortest span that holds them can be best, and what it leaves, (-m * object_bytes)
        // mod 4096, repeats every 4096 / gcd(object_bytes, 4096) counts (at most 128: objects
        // over a page are multiples of 32 B), so the best span holds one of the last `period`
        // counts that fit. The shortest span of the range holds `fewest`.
        const std::size_t period = detail::os::page_bytes >> std::min(std::countr_zero(object_bytes), page_shift);
        const std::size_t most = range.max_pages * detail::os::page_bytes / object_bytes;
        const std::size_t fewest = range.min_pages * detail::os::page_bytes / object_bytes;
        for (std::size_t m = most; m >= fewest && m + period > most; --m)
            consider(std::max(range.min_pages, (m * object_bytes + detail::os::page_bytes - 1) / detail::os::page_bytes));
        return best;
    }

    static constexpr std::array<SizeClass, class_count> classes = [] {
        std::array<SizeClass, class_count> table{};
        for (std::size_t i = 0; i < class_count; ++i) table[i] = make_class(object_bytes_of(i));
        return table;
    }();

    // The length of every span descriptor's page list: the longest span of any class.
    static constexpr std::size_t max_pages_per_span = [] {
        std::size_t most = 0;
        for (const SizeClass& c : classes) most = std::max<std::size_t>(most, c.pages_per_span);
        return most;
    }();

    // Merged classes. A class is served by the largest class above it whose full spans hold an
    // object for at most merge_tolerance_percent more memory than its own would (span bytes per
    // object; zsmalloc merges classes of equal zspage geometry for the same reason). Fewer
    // classes in use means fewer partly used pages (one per class in use), fewer size-class
    // states and, as objects of one merged class replace each other, fewer holes: on real pages
    // the net is less memory after filling and after overwriting (README, size classes).
    static constexpr std::size_t merge_tolerance_percent = 1;

    static constexpr std::array<std::uint16_t, class_count> serving_class = [] {
        std::array<std::uint16_t, class_count> serving{};
        for (std::size_t top = class_count; top-- > 0;) {
            const SizeClass& big = classes[top];
            std::size_t low = top;
            // big costs span_bytes / objects_per_span per object; merge while that is within
            // the tolerance of the lower class's own cost (cross-multiplied, in integers).
            while (low > 0 && big.span_bytes() * classes[low - 1].objects_per_span * 100 <=
                                  classes[low - 1].span_bytes() * big.objects_per_span * (100 + merge_tolerance_percent))
                --low;
            for (std::size_t k = low; k <= top; ++k) serving[k] = static_cast<std::uint16_t>(top);
            top = low;
        }
        return serving;
    }();

    static constexpr std::size_t serving_class_count = [] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < class_count; ++i) n += serving_class[i] == i;
        return n;
    }();

    // The serving classes in increasing order, and each one's position in that list (the index
    // of its state in an allocator); classes that do not serve have no position.
    static constexpr std::array<std::uint16_t, serving_class_count> serving_classes = [] {
        std::array<std::uint16_t, serving_class_count> list{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < class_count; ++i)
            if (serving_class[i] == i) list[n++] = static_cast<std::uint16_t>(i);
        return list;
    }();
    static constexpr std::array<std::uint16_t, class_count> serving_position = [] {
        std::array<std::uint16_t, class_count> position{};
        for (std::size_t n = 0; n < serving_class_count; ++n) position[serving_classes[n]] = static_cast<std::uint16_t>(n);
        return position;
    }();

    static constexpr std::size_t max_objects_per_span = [] {
        std::size_t most = 0;
        for (const SizeClass& c : classes) most = c.objects_per_span > most ? c.objects_per_span : most;
        return most;
    }();
};

}  // namespace zpage
