// zpage: the size-class table of SizeClassAllocator, computed at compile time from named constants.
//
// Objects of 32 B up to MaxObjectBytes fit classes 16 B apart: at most 15 B of rounding per
// object, 0.4% of the ~2 KiB a typical compressed 4 KiB page takes. Each class carves its objects
// back to back out of spans of 4 KiB pages; objects straddle page boundaries inside a span (as in
// zsmalloc), and reading one that does costs a copy of it into a per-thread buffer. Classes
// whose objects a larger class holds for at most 1% more memory are merged into it (162 of the
// 255 classes of 4 KiB pages serve), as zsmalloc merges classes of equal zspage geometry.
//
// Pages per span are chosen per class, between half and all of max_pages_per_span, to minimise
// the bytes at the end of a full span that no object fits in: 32-page spans leave 0.1% of a span
// unused on average over the classes that real pages fill (zsmalloc's 8-page zspages: 1.5%).
// Large spans are affordable because a span takes its pages one by one as its objects arrive,
// so a class's partly filled span costs the pages it uses, not the whole span.
#pragma once

#include <array>
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

template <std::size_t MaxObjectBytes>
struct SizeClassTable {
    static constexpr std::size_t min_object_bytes = 32;
    static constexpr std::size_t class_step_bytes = 16;
    static constexpr std::size_t max_object_bytes = MaxObjectBytes;
    static constexpr std::size_t max_pages_per_span =
        32 * (MaxObjectBytes > detail::os::page_bytes ? MaxObjectBytes / detail::os::page_bytes : 1);
    static constexpr std::size_t min_pages_per_span = max_pages_per_span / 2;
    static constexpr std::size_t max_span_bytes = max_pages_per_span * detail::os::page_bytes;
    static constexpr std::size_t class_count = (max_object_bytes - min_object_bytes) / class_step_bytes + 1;

    static_assert(MaxObjectBytes % class_step_bytes == 0 && MaxObjectBytes >= min_object_bytes,
                  "zpage::SizeClassTable: the largest object must be a multiple of 16 B and at least 32 B");
    static_assert(MaxObjectBytes <= max_span_bytes / 8,
                  "zpage::SizeClassTable: every span must hold at least 8 of the largest objects");

    // The smallest class that holds `bytes` (1 <= bytes <= max_object_bytes).
    [[nodiscard]] static constexpr std::size_t fitting_class(std::size_t bytes) noexcept {
        return bytes <= min_object_bytes ? 0 : (bytes - min_object_bytes + class_step_bytes - 1) / class_step_bytes;
    }

    // The class that serves `bytes`: its fitting class, or a larger one merged with it.
    [[nodiscard]] static constexpr std::size_t class_of(std::size_t bytes) noexcept {
        return serving_class[fitting_class(bytes)];
    }

    [[nodiscard]] static constexpr SizeClass make_class(std::size_t object_bytes) noexcept {
        SizeClass best{static_cast<std::uint32_t>(object_bytes), 0, 0};
        std::size_t best_waste = ~std::size_t{0};
        for (std::size_t pages = max_pages_per_span; pages >= min_pages_per_span; --pages) {
            const std::size_t span = pages * detail::os::page_bytes;
            const std::size_t waste = span % object_bytes;
            // Compare waste as a fraction of the span (cross-multiplied); ties keep the larger span.
            if (best.pages_per_span == 0 || waste * best.span_bytes() < best_waste * span) {
                best.pages_per_span = static_cast<std::uint32_t>(pages);
                best.objects_per_span = static_cast<std::uint32_t>(span / object_bytes);
                best_waste = waste;
            }
        }
        return best;
    }

    static constexpr std::array<SizeClass, class_count> classes = [] {
        std::array<SizeClass, class_count> table{};
        for (std::size_t i = 0; i < class_count; ++i) table[i] = make_class(min_object_bytes + i * class_step_bytes);
        return table;
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
