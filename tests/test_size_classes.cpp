// Golden test: the size-class table must not drift silently. A change here changes every store's
// memory footprint; update the pinned rows only together with the benchmark figures.
#include <zpage/allocator/size_classes.hpp>

#include "fixtures.hpp"

using Table4K = zpage::SizeClassTable<4096>;
using Table16K = zpage::SizeClassTable<16384>;

TEST_CASE("the 4 KiB table has zsmalloc's 255 classes, 16 B apart from 32 B") {
    static_assert(Table4K::class_count == 255);
    for (std::size_t i = 0; i < Table4K::class_count; ++i) CHECK(Table4K::classes[i].object_bytes == 32 + 16 * i);
    CHECK(Table4K::max_pages_per_span == 32);
    CHECK(Table4K::max_objects_per_span == 4096);
}

TEST_CASE("pinned rows of the 4 KiB table") {
    struct Row {
        std::size_t index;
        std::uint32_t object_bytes, pages_per_span, objects_per_span;
    };
    const Row rows[] = {{0, 32, 32, 4096},    {1, 48, 30, 2560},    {63, 1040, 32, 126}, {100, 1632, 32, 80},
                        {126, 2048, 32, 64},  {200, 3232, 30, 38},  {225, 3632, 32, 36}, {226, 3648, 25, 28},
                        {254, 4096, 32, 32}};
    for (const Row& r : rows) {
        const zpage::SizeClass& c = Table4K::classes[r.index];
        INFO("class " << r.index);
        CHECK(c.object_bytes == r.object_bytes);
        CHECK(c.pages_per_span == r.pages_per_span);
        CHECK(c.objects_per_span == r.objects_per_span);
    }
}

TEST_CASE("every span wastes little and holds what it claims") {
    for (const zpage::SizeClass& c : Table4K::classes) {
        INFO("class of " << c.object_bytes << " B");
        CHECK(c.pages_per_span >= Table4K::min_pages_per_span);
        CHECK(c.pages_per_span <= Table4K::max_pages_per_span);
        CHECK(std::size_t{c.objects_per_span} * c.object_bytes <= c.span_bytes());
        CHECK(c.tail_waste_bytes() < c.object_bytes);
        // Classes up to the huge threshold (what stores use) leave under 1% of a span unused.
        if (c.object_bytes <= 3632) CHECK(c.tail_waste_bytes() * 100 < c.span_bytes());
    }
}

TEST_CASE("class_of picks the smallest class that fits") {
    CHECK(Table4K::class_of(1) == 0);
    CHECK(Table4K::class_of(32) == 0);
    CHECK(Table4K::class_of(33) == 1);
    CHECK(Table4K::class_of(48) == 1);
    CHECK(Table4K::class_of(49) == 2);
    CHECK(Table4K::class_of(4096) == 254);
    for (std::size_t n = 1; n <= 4096; ++n) {
        const auto& c = Table4K::classes[Table4K::class_of(n)];
        REQUIRE(c.object_bytes >= n);
        REQUIRE(c.object_bytes - n < 32);  // at most one 16 B step of rounding (32 B below the minimum)
    }
}

TEST_CASE("the 16 KiB table scales the same rules") {
    static_assert(Table16K::class_count == 1023);
    CHECK(Table16K::max_pages_per_span == 128);
    for (const zpage::SizeClass& c : Table16K::classes) {
        CHECK(c.objects_per_span >= 8);
        CHECK(c.tail_waste_bytes() < c.object_bytes);
    }
}
