// The record format of written-back pages (writeback/record.hpp): a record reads back as its
// payload, and any damage (a flipped bit in header or payload, another page's index, a wrong
// length) is corrupt_data, never a payload.
#include <zpage/writeback/record.hpp>

#include "backing_fixtures.hpp"

namespace {

std::vector<std::byte> encoded(std::uint32_t index, std::span<const std::byte> payload) {
    std::vector<std::byte> record(zpage::record_bytes(payload.size()));
    const auto n = zpage::encode_record(index, payload, record);
    REQUIRE(n.ok());
    CHECK(*n == record.size());
    return record;
}

}  // namespace

TEST_CASE("a record of a compressed page verifies and gives back its payload") {
    const auto records = zpage_test::make_records(64, zpage_test::test_seed());
    for (const auto& r : records) {
        const auto payload = zpage::verify_record(r.bytes, r.index, r.payload_bytes());
        REQUIRE(payload.ok());
        CHECK(payload.value().data() == r.bytes.data() + zpage::record_header_bytes);
        CHECK(payload.value().size() == r.payload_bytes());
    }
    static_assert(zpage::record_bytes(4096) == 4112, "a raw 4 KiB page with its 16-byte header");
}

TEST_CASE("every flipped bit, in the header or the payload, is corrupt_data") {
    std::vector<std::byte> payload(100);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i * 7);
    const std::vector<std::byte> record = encoded(42, payload);
    for (std::size_t bit = 0; bit < record.size() * 8; ++bit) {
        std::vector<std::byte> damaged = record;
        damaged[bit / 8] ^= std::byte{static_cast<unsigned char>(1U << (bit % 8))};
        CAPTURE(bit);
        CHECK(zpage::verify_record(damaged, 42, payload.size()).error() == zpage::errc::corrupt_data);
    }
}

TEST_CASE("a record read for another page is corrupt_data") {
    const std::vector<std::byte> payload(300, std::byte{5});
    const std::vector<std::byte> record = encoded(7, payload);
    CHECK(zpage::verify_record(record, 7, payload.size()).ok());
    CHECK(zpage::verify_record(record, 8, payload.size()).error() == zpage::errc::corrupt_data);
    CHECK(zpage::verify_record(record, 7 | 1U << 31, payload.size()).error() == zpage::errc::corrupt_data);
}

TEST_CASE("a record read with the wrong length is corrupt_data") {
    std::vector<std::byte> payload(300);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i);
    std::vector<std::byte> record = encoded(7, payload);
    // One byte short: the header says 300, the caller expected 299.
    const std::span<const std::byte> shorter(record.data(), record.size() - 1);
    CHECK(zpage::verify_record(shorter, 7, payload.size() - 1).error() == zpage::errc::corrupt_data);
    // One byte long, as a read past the record into its neighbour.
    record.push_back(std::byte{0});
    CHECK(zpage::verify_record(record, 7, payload.size() + 1).error() == zpage::errc::corrupt_data);
}

TEST_CASE("a zeroed record (a hole, a discarded block) is corrupt_data") {
    const std::vector<std::byte> zeros(zpage::record_bytes(1000));
    CHECK(zpage::verify_record(zeros, 0, 1000).error() == zpage::errc::corrupt_data);
}

TEST_CASE("buffers of the wrong size are invalid arguments, not corrupt data") {
    const std::vector<std::byte> payload(50, std::byte{1});
    std::vector<std::byte> small(zpage::record_bytes(payload.size()) - 1);
    CHECK(zpage::encode_record(1, payload, small).error() == zpage::errc::invalid_argument);
    CHECK(zpage::encode_record(1, {}, small).error() == zpage::errc::invalid_argument);
    const std::vector<std::byte> record = encoded(1, payload);
    CHECK(zpage::verify_record(record, 1, payload.size() + 3).error() == zpage::errc::invalid_argument);
    CHECK(zpage::verify_record(record, 1, 0).error() == zpage::errc::invalid_argument);
}
