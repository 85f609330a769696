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

TEST_CASE("fitting_class picks the smallest class that fits") {
    CHECK(Table4K::fitting_class(1) == 0);
    CHECK(Table4K::fitting_class(32) == 0);
    CHECK(Table4K::fitting_class(33) == 1);
    CHECK(Table4K::fitting_class(48) == 1);
    CHECK(Table4K::fitting_class(49) == 2);
    CHECK(Table4K::fitting_class(4096) == 254);
    for (std::size_t n = 1; n <= 4096; ++n) {
        const auto& c = Table4K::classes[Table4K::fitting_class(n)];
        REQUIRE(c.object_bytes >= n);
        REQUIRE(c.object_bytes - n < 32);  // at most one 16 B step of rounding (32 B below the minimum)
    }
}

// Span bytes per object in a full span of class c.
template <class Table>
double cost_per_object(std::size_t c) {
    return static_cast<double>(Table::classes[c].span_bytes()) / Table::classes[c].objects_per_span;
}

template <class Table>
void check_merging() {
    std::size_t previous = 0;
    for (std::size_t n = 1; n <= Table::max_object_bytes; ++n) {
        const std::size_t own = Table::fitting_class(n);
        const std::size_t served = Table::class_of(n);
        REQUIRE(served >= own);
        REQUIRE(served >= previous);  // larger objects never go to a smaller class
        REQUIRE(Table::serving_class[served] == served);
        REQUIRE(Table::classes[served].object_bytes >= n);
        REQUIRE(cost_per_object<Table>(served) <= cost_per_object<Table>(own) * 1.01 + 1e-9);
        previous = served;
    }
    for (std::size_t i = 0; i < Table::serving_class_count; ++i) {
        REQUIRE(Table::serving_position[Table::serving_classes[i]] == i);
        if (i > 0) REQUIRE(Table::serving_classes[i - 1] < Table::serving_classes[i]);
    }
    CHECK(Table::serving_classes[Table::serving_class_count - 1] == Table::class_count - 1);
}

TEST_CASE("classes are merged only where an object costs at most 1% more memory") {
    check_merging<Table4K>();
    check_merging<Table16K>();
    // Pinned: 162 of the 255 classes serve (zsmalloc at chain 8: 123 distinct classes).
    CHECK(Table4K::serving_class_count == 162);
    CHECK(Table4K::class_of(3000) == 187);  // 3024 B: within 1% of 3008 B's own class
    CHECK(Table4K::class_of(100) == Table4K::fitting_class(100));  // small objects: 16 B is over 1%
}

TEST_CASE("the 16 KiB table scales the same rules") {
    static_assert(Table16K::class_count == 1023);
    CHECK(Table16K::max_pages_per_span == 128);
    for (const zpage::SizeClass& c : Table16K::classes) {
        CHECK(c.objects_per_span >= 8);
        CHECK(c.tail_waste_bytes() < c.object_bytes);
    }
}
