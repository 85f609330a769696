// zpage: the record every written-back page becomes, checksummed above the backing store, so
// that a bit flipped anywhere below (the device, the file system, a bug in a backing store, a
// record read after it was freed) is caught as corrupt_data instead of returned as a page.
//
//   bytes 0..7    XXH3-64 of bytes 8 .. end: the page index, the payload length and the payload
//   bytes 8..11   page index (u32)
//   bytes 12..15  payload length (u32)
//   bytes 16..    payload: the page's compressed bytes, or the raw page
//
// The fields are in the machine's byte order: a record lives no longer than the process whose
// page table holds its location. The index and length under the checksum make a record read from
// the wrong location (another page's, or a freed one) fail verification even when its own bytes
// are intact. The header costs 16 B per page: 0.8% of a 2 KiB compressed page.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "../errc.hpp"

namespace zpage {

inline constexpr std::size_t record_header_bytes = 16;
// The longest payload a record holds (its length field is 32 bits).
inline constexpr std::size_t max_record_payload_bytes = std::uint32_t(-1);

// The length of the record of a payload of `payload_bytes`.
[[nodiscard]] constexpr std::size_t record_bytes(std::size_t payload_bytes) noexcept {
    return record_header_bytes + payload_bytes;
}

// Writes the header of the record in `record`, whose payload (1 .. max_record_payload_bytes
// bytes) already lies at record[record_header_bytes ..]: how a writeback batch seals records it
// gathered in place. Any thread (pure).
inline void seal_record(std::uint32_t index, std::span<std::byte> record) noexcept {
    const auto length = static_cast<std::uint32_t>(record.size() - record_header_bytes);
    std::memcpy(record.data() + 8, &index, sizeof index);
    std::memcpy(record.data() + 12, &length, sizeof length);
    const std::uint64_t sum = XXH3_64bits(record.data() + 8, record.size() - 8);
    std::memcpy(record.data(), &sum, sizeof sum);
}

// Writes the record of `payload` (1 .. max_record_payload_bytes bytes), page `index`, into
// out[0 .. record_bytes(payload.size())). Returns the record's length, or invalid_argument when
// out is too small or the payload empty or too long. Any thread (pure).
[[nodiscard]] inline Result<std::size_t> encode_record(std::uint32_t index, std::span<const std::byte> payload,
                                                       std::span<std::byte> out) noexcept {
    if (payload.empty() || payload.size() > max_record_payload_bytes || out.size() < record_bytes(payload.size()))
        return errc::invalid_argument;
    const std::span<std::byte> record = out.first(record_bytes(payload.size()));
    std::memcpy(record.data() + record_header_bytes, payload.data(), payload.size());
    seal_record(index, record);
    return record.size();
}

// Checks a record read back for page `index` whose payload was `payload_bytes` long; `record`
// must be exactly record_bytes(payload_bytes) long (else invalid_argument). Returns its payload
// (a span of `record`), or corrupt_data when the checksum, the index or the length does not
// match. Any thread (pure).
[[nodiscard]] inline Result<std::span<const std::byte>> verify_record(std::span<const std::byte> record,
                                                                      std::uint32_t index,
                                                                      std::size_t payload_bytes) noexcept {
    if (payload_bytes == 0 || payload_bytes > max_record_payload_bytes || record.size() != record_bytes(payload_bytes))
        return errc::invalid_argument;
    std::uint64_t sum;
    std::uint32_t stored_index, stored_length;
    std::memcpy(&sum, record.data(), sizeof sum);
    std::memcpy(&stored_index, record.data() + 8, sizeof stored_index);
    std::memcpy(&stored_length, record.data() + 12, sizeof stored_length);
    if (stored_index != index || stored_length != payload_bytes) return errc::corrupt_data;
    if (sum != XXH3_64bits(record.data() + 8, record.size() - 8)) return errc::corrupt_data;
    return record.subspan(record_header_bytes);
}

}  // namespace zpage
