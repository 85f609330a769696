// zpage-emulator: the workload's specification, and the host's model of it.
//
// The guest program (workload.hpp) is a small accounts database: a heap with a size-class
// allocator, records with a string key, a note and a linked list of transactions, found through a
// chained hash table and a table sorted by key hash. Everything in it is derived from (seed,
// record id) by the generators below, which the guest implements in its own instructions and the
// host implements here in C++, independently. The host's model is cheap: it never holds a copy of
// guest memory, only the plan (how many records fit) and one 32-bit version counter per record,
// which it gets by replaying the guest's stream of operations. From them it computes what the
// guest's final audit must report (Expected): weighted sums over every record and transaction of
// each of their fields. A wrong byte in any live object (a page that came back stale, or another
// page's) changes one of those sums or fails one of the audit's own checks; bytes no object holds
// (free chunks, the slack past a string's NUL) are not checked.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace emu::model {

// ---- guest memory map ----------------------------------------------------------------------------
inline constexpr std::uint64_t null_guard_bytes = 4096;  // guest addresses below trap (null pointers)
inline constexpr std::uint64_t boot_address = 0x1000;    // the boot block: parameters, globals, results
inline constexpr std::uint64_t code_address = 0x2000;    // the program: code, then its data
inline constexpr std::uint64_t stack_bytes = 64 << 10;   // above the program; the heap follows it
inline constexpr std::uint64_t boot_magic = 0x7a70616765454d55;  // "UMEegapz"

// The boot block's fields: offsets from boot_address (the guest's gp).
namespace boot {
// parameters, written by the host before the guest starts
inline constexpr std::int64_t magic = 0, ram_bytes = 8, heap_base = 16, heap_end = 24, records = 32,
                              buckets = 40, passes = 48, ops_per_pass = 56, hot_records = 64, seed = 72;
// the guest's globals
inline constexpr std::int64_t heap_top = 128, bucket_array = 136, table = 144, rng = 152, clock = 160,
                              ops_done = 168;
// per size class (8 bytes each, indexed by chunk bytes / 16): its free list's head, and where its
// span's free space starts and ends
inline constexpr std::int64_t free_lists = 512, span_cursor = 1024, span_end = 1536;
// the audit's counters that do not fit its registers
inline constexpr std::int64_t audit_table_links = 176, audit_key_chunks = 184, audit_text_chunks = 192;
// results, written by the guest's audit (its sums over records and transactions, see Expected)
inline constexpr std::int64_t audit_records = 2048, audit_balance = 2056, audit_versions = 2064,
                              audit_history = 2072, audit_keys = 2080, audit_texts = 2088, audit_fixed = 2096,
                              audit_stamps = 2104, audit_done = 2112;
}  // namespace boot

// ---- the heap -------------------------------------------------------------------------------------
// Every object is a chunk: an 8-byte header (u32 chunk bytes, u16 tag, u16 flags) and its payload.
// Chunks are multiples of 16 bytes and start 16-aligned, so payloads are 8-aligned and the heap
// can be walked from heap_base to heap_top by chunk sizes alone, as a heap checker walks malloc's.
//
// Small chunks (up to small_chunk_max bytes) are segregated by size, as mimalloc's or jemalloc's
// are: each size has a span of span_bytes taken from the heap's top, and its chunks are cut from
// it one after another. The rest of a span is always one free chunk (tag_filler), so the heap
// stays walkable while spans fill. A freed small chunk goes to its size's free list; a large one
// returns to the heap only when it is the top chunk (dlmalloc's trimming of the top).
// Segregation is what makes a page hold objects of one kind, and so compress as real heaps do
// (2.13x with lz4 against 1.91x for the same objects interleaved, in a host simulation).
inline constexpr std::uint64_t chunk_header_bytes = 8;
inline constexpr std::uint64_t chunk_align = 16;
inline constexpr std::uint64_t small_chunk_max = 512;
inline constexpr std::uint64_t span_bytes = 64 << 10;
inline constexpr std::uint64_t size_classes = small_chunk_max / chunk_align + 1;  // by bytes / 16; 0 unused
static_assert(boot::free_lists + 8 * static_cast<std::int64_t>(size_classes) <= boot::span_cursor &&
                  boot::span_cursor + 8 * static_cast<std::int64_t>(size_classes) <= boot::span_end &&
                  boot::span_end + 8 * static_cast<std::int64_t>(size_classes) <= boot::audit_records,
              "the allocator's tables must fit the boot block below the results");
inline constexpr std::uint64_t chunk_free = 1;  // flags bit: the chunk is free

enum Tag : std::uint16_t {
    tag_record = 1, tag_key = 2, tag_text = 3, tag_history = 4, tag_table = 5, tag_buckets = 6, tag_sort = 7,
    tag_filler = 8,  // the free rest of a span
    tag_last = tag_filler
};

[[nodiscard]] constexpr std::uint64_t chunk_bytes(std::uint64_t payload) noexcept {
    return (payload + chunk_header_bytes + chunk_align - 1) & ~(chunk_align - 1);
}

// The guest allocator's growth of the heap's top, without the bytes: what plan() needs.
class HeapModel {
public:
    void allocate(std::uint64_t payload) noexcept {
        const std::uint64_t c = chunk_bytes(payload);
        if (c > small_chunk_max) {
            top_ += c;
            return;
        }
        Span& s = spans_[c / chunk_align];
        if (s.cursor + c > s.end) {
            s.cursor = top_;
            top_ += span_bytes;
            s.end = top_;
        }
        s.cursor += c;
    }
    [[nodiscard]] std::uint64_t top() const noexcept { return top_; }

private:
    struct Span {
        std::uint64_t cursor = 0, end = 0;
    };
    std::uint64_t top_ = 0;
    std::array<Span, size_classes> spans_{};
};

// A record (tag_record), laid out as a C struct would be.
namespace rec {
inline constexpr std::int64_t next = 0,      // u64: the next record of its hash bucket
    key = 8,                                 // u64: its key, NUL-terminated (tag_key)
    text = 16,                               // u64: its note, NUL-terminated (tag_text)
    history = 24,                            // u64: its newest transaction (tag_history)
    hash = 32,                               // u64: hash_bytes of the key
    balance = 40,                            // i64: the sum of its transactions' amounts
    id = 48, version = 52,                   // u32: updates made to it
    n_history = 56,                          // u32: transactions in its list (opening ones + version)
    text_rev = 60,                           // u32: the version its note was written at
    key_len = 64, text_len = 66,             // u16 each
    flags = 68,                              // u32: its account kind
    opened = 72,                             // u64: when, in seconds since 1970
    limit = 80,                              // i64: its overdraft limit
    currency = 88,                           // char[8]: "EUR", NUL-padded
    closed_at = 96,                          // u64: 0 while the account is open
    bytes = 104;
// The words the audit folds into its sum of fields that only the generator sets (key_len ..
// closed_at).
inline constexpr std::int64_t fixed = key_len, fixed_words = 5;
}  // namespace rec

// A transaction (tag_history), newest first in its record's list.
namespace txn {
inline constexpr std::int64_t next = 0, amount = 8, stamp = 16, id = 24, kind = 28, bytes = 32;
}
// The first of a record's opening transactions, the others, and those of the passes' updates.
enum TxnKind : std::uint32_t { txn_opening = 0, txn_transfer = 1, txn_update = 2 };
inline constexpr std::uint64_t epoch_opened = 1600000000;  // records open at epoch_opened + 97 s * id
inline constexpr std::uint64_t epoch_updates = 1700000000;  // the passes' clock starts here
inline constexpr std::uint64_t opening_interval = 3600;     // between a record's opening transactions

// An entry of the sorted table (tag_table): the key's hash and the record.
inline constexpr std::int64_t table_entry_bytes = 16;

// A text is rewritten (a new chunk, the old one freed) when an update takes its record's version
// to a multiple of this.
inline constexpr std::uint32_t text_rewrite_every = 8;
inline constexpr std::uint64_t text_min_bytes = 40, text_spread_bytes = 160;
// A note's chunk holds this much past its last letter: the generator stores phrases as two whole
// 8-byte words, and the NUL.
inline constexpr std::uint64_t text_slack_bytes = 16;
inline constexpr std::uint64_t key_digits = 8;

// ---- generators -----------------------------------------------------------------------------------
inline constexpr std::uint64_t golden = 0x9e3779b97f4a7c15;
inline constexpr std::uint64_t mix_multiplier_1 = 0xbf58476d1ce4e5b9, mix_multiplier_2 = 0x94d049bb133111eb;
inline constexpr std::uint64_t lcg_multiplier = 6364136223846793005, lcg_increment = 1442695040888963407;
inline constexpr std::uint64_t hash_basis = 0xcbf29ce484222325, hash_prime = 0x100000001b3;
inline constexpr std::uint64_t fold_basis = 0x6a09e667f3bcc908;

// Salts: one independent stream per purpose and record.
enum Salt : std::uint64_t { salt_key = 1, salt_text = 2, salt_history = 3, salt_weight = 4, salt_band = 5, salt_ops = 6, salt_phrase = 7 };

// splitmix64's finalizer.
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * mix_multiplier_1;
    z = (z ^ (z >> 27)) * mix_multiplier_2;
    return z ^ (z >> 31);
}

[[nodiscard]] constexpr std::uint64_t lcg(std::uint64_t r) noexcept { return r * lcg_multiplier + lcg_increment; }

[[nodiscard]] constexpr std::uint64_t stream(std::uint64_t seed, std::uint64_t id, Salt salt) noexcept {
    return mix64(seed ^ (id * golden) ^ (static_cast<std::uint64_t>(salt) << 56));
}

// The weight of a record in the audit's sums: odd, so that no field's change cancels out.
[[nodiscard]] constexpr std::uint64_t weight(std::uint64_t seed, std::uint64_t id) noexcept {
    return stream(seed, id, salt_weight) | 1;
}

// A pair of the audit's link sums: the term of a pointer and its owner.
[[nodiscard]] constexpr std::uint64_t link(std::uint64_t pointer, std::uint64_t owner) noexcept {
    return mix64(pointer + owner * golden);
}

// An index of 0..255 from 16 or 24 random bits, skewed to small indices as the frequencies of
// words (skew2) and of phrases (skew3, more so) are.
[[nodiscard]] constexpr std::uint64_t skew2(std::uint64_t bits16) noexcept { return ((bits16 & 255) * (bits16 >> 8)) >> 8; }
[[nodiscard]] constexpr std::uint64_t skew3(std::uint64_t bits24) noexcept {
    return ((bits24 & 255) * ((bits24 >> 8) & 255) * (bits24 >> 16)) >> 16;
}

// Hash of bytes by 8-byte little-endian words, the last one zero-padded; then mixed.
[[nodiscard]] inline std::uint64_t hash_bytes(std::string_view s) noexcept {
    std::uint64_t h = hash_basis ^ s.size();
    for (std::size_t at = 0; at < s.size(); at += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, s.data() + at, std::min<std::size_t>(8, s.size() - at));
        h = (h ^ w) * hash_prime;
        h ^= h >> 32;
    }
    return mix64(h);
}

// A fold of words into one: what the audit sums of a record's fixed fields.
[[nodiscard]] constexpr std::uint64_t fold(const std::uint64_t* words, std::size_t n) noexcept {
    std::uint64_t c = fold_basis;
    for (std::size_t i = 0; i < n; ++i) {
        c = (c ^ words[i]) * hash_prime;
        c ^= c >> 29;
    }
    return c;
}

// The syllables words are made of: at most 3 letters each.
inline constexpr std::array<std::string_view, 32> syllables = {
    "ka", "lo", "mi", "ren", "da", "to", "vi", "sen", "ra", "ne", "po", "lin", "ta", "ko", "mu", "der",
    "sa", "fi", "ro", "gan", "be", "tu", "no", "mar", "li", "ze", "ha", "ton", "we", "du", "ki", "por"};
inline constexpr std::size_t vocabulary_words = 256;
inline constexpr std::size_t word_max = 8;     // a word fits an 8-byte slot
inline constexpr std::size_t phrase_max = 15;  // a phrase fits a 16-byte slot
inline constexpr std::size_t phrases = 256;

// The currencies of accounts, as the 8-byte words of their NUL-padded codes.
inline constexpr std::array<std::uint64_t, 8> currencies = {0x525545, 0x445355, 0x504247, 0x464843,
                                                             0x59504a, 0x4b4553, 0x4b4f4e, 0x4e4c50};

// Word i: 1 to 3 syllables chosen by mix64((i + 1) * golden), as many as fit 8 letters.
[[nodiscard]] inline std::string word(std::size_t i) {
    const std::uint64_t h = mix64((i + 1) * golden);
    const std::uint64_t count = 1 + h % 3;
    std::string w;
    for (std::uint64_t s = 0; s < count; ++s) {
        const std::string_view syl = syllables[(h >> (8 + 5 * s)) & 31];
        if (w.size() + syl.size() > word_max) break;
        w += syl;
    }
    return w;
}

// Phrase i: 1 to 3 words (skew2 of mix64((i + 1) * golden ^ salt_phrase)), space-separated, as
// many as fit 15 letters.
[[nodiscard]] inline std::string phrase(std::size_t i) {
    const std::uint64_t h = mix64((i + 1) * golden ^ (static_cast<std::uint64_t>(salt_phrase) << 56));
    const std::uint64_t count = 1 + h % 3;
    std::string p;
    for (std::uint64_t w = 0; w < count; ++w) {
        const std::string next = word(skew2((h >> (8 + 16 * w)) & 0xffff));
        const std::size_t space = p.empty() ? 0 : 1;
        if (p.size() + space + next.size() > phrase_max) break;
        if (space != 0) p += ' ';
        p += next;
    }
    return p;
}

class Generator {
public:
    explicit Generator(std::uint64_t seed) : seed_(seed) {
        for (std::size_t i = 0; i < vocabulary_words; ++i) words_[i] = word(i);
        for (std::size_t i = 0; i < phrases; ++i) phrases_[i] = phrase(i);
    }

    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    // "word-word[-word]#00001234"
    [[nodiscard]] std::string key(std::uint64_t id) const {
        std::uint64_t r = stream(seed_, id, salt_key);
        const std::uint64_t count = 2 + (r & 1);
        std::string k;
        for (std::uint64_t w = 0; w < count; ++w) {
            r = lcg(r);
            if (w != 0) k += '-';
            k += words_[skew2(r >> 48)];
        }
        k += '#';
        char digits[key_digits];
        std::uint64_t n = id;
        for (std::size_t d = key_digits; d-- > 0; n /= 10) digits[d] = static_cast<char>('0' + n % 10);
        k.append(digits, key_digits);
        return k;
    }

    [[nodiscard]] std::uint64_t text_start(std::uint64_t id, std::uint64_t rev) const noexcept {
        return mix64(stream(seed_, id, salt_text) + rev);
    }
    [[nodiscard]] static std::uint64_t text_length(std::uint64_t start) noexcept {
        return text_min_bytes + start % text_spread_bytes;
    }

    // Phrases separated by a space or, now and then, ", "; cut at its length, which ends in '.'.
    [[nodiscard]] std::string text(std::uint64_t id, std::uint64_t rev) const {
        std::uint64_t r = text_start(id, rev);
        const std::uint64_t length = text_length(r);
        std::string t;
        while (t.size() < length) {
            r = lcg(r);
            t += phrases_[skew3(r >> 40)];
            t += ((r >> 36) & 15) == 0 ? ", " : " ";
        }
        t.resize(length);
        t.back() = '.';
        return t;
    }

    // A record's fixed fields and opening transactions: how many (1 to 3) and their amounts.
    struct Opening {
        std::uint32_t count = 0;
        std::int64_t amounts[3] = {};
        std::uint32_t flags = 0;
        std::uint64_t opened = 0, limit = 0, currency = 0;
        [[nodiscard]] std::int64_t balance() const noexcept { return amounts[0] + amounts[1] + amounts[2]; }
    };
    [[nodiscard]] Opening opening(std::uint64_t id) const noexcept {
        std::uint64_t r = stream(seed_, id, salt_history);
        Opening o;
        o.count = static_cast<std::uint32_t>(1 + r % 3);
        o.flags = static_cast<std::uint32_t>(0x100 | (r >> 62));
        o.limit = 50000 * (1 + (r >> 24) % 40);
        o.currency = currencies[(r >> 40) & 7];
        o.opened = epoch_opened + id * 97 + (r >> 44) % 97;
        o.amounts[0] = static_cast<std::int64_t>(10000 + (r >> 8) % 990000);
        for (std::uint32_t j = 1; j < o.count; ++j) {
            r = lcg(r);
            o.amounts[j] = static_cast<std::int64_t>((r >> 33) % 20001) - 10000;
        }
        return o;
    }

    // The allocations that build record id, in the guest's order: key, text, record, opening
    // transactions.
    void allocate(std::uint64_t id, HeapModel& heap) const {
        heap.allocate(key(id).size() + 1);
        heap.allocate(text_length(text_start(id, 0)) + text_slack_bytes);
        heap.allocate(rec::bytes);
        for (std::uint32_t j = opening(id).count; j > 0; --j) heap.allocate(txn::bytes);
    }

private:
    std::uint64_t seed_;
    std::array<std::string, vocabulary_words> words_;
    std::array<std::string, phrases> phrases_;
};

// ---- the plan and the operations ----------------------------------------------------------------
inline constexpr unsigned passes = 4;
inline constexpr std::uint64_t hot_fraction = 32;       // a pass's hot band: records / 32
inline constexpr std::uint64_t ops_per_record = 32;     // a pass makes records / 32 operations
inline constexpr std::uint64_t min_ops_per_pass = 1024;

// One operation of a pass, as drawn from the guest's random stream.
struct Operation {
    std::uint64_t id = 0;
    bool via_table = false;  // found by binary search in the sorted table, else through the hash table
    bool update = false;     // adds a transaction of delta, else only reads and checks the record
    std::int64_t delta = 0;
};

[[nodiscard]] constexpr std::uint64_t first_rng(std::uint64_t seed) noexcept {
    return mix64(seed ^ (static_cast<std::uint64_t>(salt_ops) << 56));
}

// The next operation; `rng` is the guest's generator state (boot::rng).
[[nodiscard]] constexpr Operation next_operation(std::uint64_t& rng, std::uint64_t band, std::uint64_t hot,
                                                 std::uint64_t records) noexcept {
    rng = lcg(rng);
    const std::uint64_t r = mix64(rng);
    const std::uint64_t pick = r >> 16;
    Operation op;
    op.id = (r & 31) != 0 ? band + pick % hot : pick % records;  // 31 in 32 hot
    op.via_table = ((r >> 5) & 1) != 0;
    op.update = ((r >> 6) & 1) != 0;
    op.delta = static_cast<std::int64_t>((r >> 8) & 0x3fff) - 8192;
    return op;
}

[[nodiscard]] constexpr std::uint64_t band_start(std::uint64_t seed, std::uint64_t pass, std::uint64_t records,
                                                 std::uint64_t hot) noexcept {
    return stream(seed, pass, salt_band) % (records - hot + 1);
}

[[nodiscard]] constexpr std::uint64_t next_pow2(std::uint64_t n) noexcept {
    std::uint64_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

struct Plan {
    std::uint64_t ram_bytes = 0, heap_base = 0;
    std::uint64_t records = 0, buckets = 0, ops_per_pass = 0, hot_records = 0, seed = 0;
    std::uint64_t peak_heap_bytes = 0;  // heap in use at its fullest, while the table is sorted
};

// As many records as fit `fill_permille` of guest RAM at the heap's fullest: the bucket array, the
// sorted table and the sort's scratch copy of it, and the records themselves. The passes' few new
// transactions and texts go where the sort's scratch was.
[[nodiscard]] inline Plan plan(const Generator& g, std::uint64_t ram_bytes, std::uint64_t heap_base,
                               unsigned fill_permille) {
    Plan p;
    p.ram_bytes = ram_bytes;
    p.heap_base = heap_base;
    p.seed = g.seed();
    const std::uint64_t limit = ram_bytes / 1000 * fill_permille;
    // The bucket array and the table come first, the sort's scratch last: the records' spans
    // start at some offset, which changes nothing in how many they take.
    HeapModel records;
    for (std::uint64_t n = 0;; ++n) {
        g.allocate(n, records);
        const std::uint64_t total =
            heap_base + chunk_bytes(8 * next_pow2(n + 1)) + 2 * chunk_bytes(16 * (n + 1)) + records.top();
        if (total > limit) break;
        p.records = n + 1;
        p.peak_heap_bytes = total - heap_base;
    }
    p.buckets = next_pow2(p.records);
    p.hot_records = std::max<std::uint64_t>(1, p.records / hot_fraction);
    p.ops_per_pass = std::max(min_ops_per_pass, p.records / ops_per_record);
    return p;
}

// What the guest's audit must report (boot::audit_*): sums over the records of their weight
// (model::weight) times their balance, version, transaction count, key hash, text hash and the
// fold of their fixed fields; and over the transactions of their record's weight times their
// stamp + kind * golden. With the operations counted.
struct Expected {
    std::uint64_t records = 0, balance = 0, versions = 0, history = 0, keys = 0, texts = 0, fixed = 0, stamps = 0,
                  ops = 0;
};

// Replays the passes' operations on one version counter per record, then sums the records'
// weighted fields from the generators.
[[nodiscard]] inline Expected expected(const Generator& g, const Plan& p) {
    std::vector<std::uint32_t> version(p.records, 0);
    Expected e;
    std::uint64_t rng = first_rng(p.seed), clock = 0;
    for (unsigned pass = 0; pass < passes; ++pass) {
        const std::uint64_t band = band_start(p.seed, pass, p.records, p.hot_records);
        for (std::uint64_t k = 0; k < p.ops_per_pass; ++k) {
            const Operation op = next_operation(rng, band, p.hot_records, p.records);
            if (op.update) {
                ++version[op.id];
                const std::uint64_t w = weight(p.seed, op.id);
                e.balance += w * static_cast<std::uint64_t>(op.delta);
                e.stamps += w * (epoch_updates + ++clock + txn_update * golden);
            }
            ++e.ops;
        }
    }
    for (std::uint64_t id = 0; id < p.records; ++id) {
        const std::uint64_t w = weight(p.seed, id);
        const Generator::Opening o = g.opening(id);
        const std::uint32_t v = version[id];
        e.balance += w * static_cast<std::uint64_t>(o.balance());
        e.versions += w * v;
        e.history += w * (o.count + v);
        const std::string key = g.key(id);
        const std::string text = g.text(id, v - v % text_rewrite_every);
        e.keys += w * hash_bytes(key);
        e.texts += w * hash_bytes(text);
        const std::uint64_t fixed[rec::fixed_words] = {key.size() | text.size() << 16 | std::uint64_t{o.flags} << 32,
                                                       o.opened, o.limit, o.currency, 0};
        e.fixed += w * fold(fixed, rec::fixed_words);
        for (std::uint32_t j = 0; j < o.count; ++j)
            e.stamps += w * (o.opened + j * opening_interval + (j == 0 ? txn_opening : txn_transfer) * golden);
    }
    e.records = p.records;
    return e;
}

}  // namespace emu::model
