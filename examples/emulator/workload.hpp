// zpage-emulator: the guest program, an accounts database written for the guest machine with the
// assembler. Its data layout, generators and plan are specified in model.hpp; this file is the
// guest's implementation of them, which the host's model checks.
//
// First the vocabulary and the phrases the generators draw from (model::word, model::phrase), then
// phases, each announced to the host (HostCall::phase) and reporting its progress:
//   build   the bucket array and the table, then per record its key, text (a note), record and
//           opening transactions (model::Generator), linked into its hash chain and the table
//   sort    the table, by key hash: a bottom-up merge sort through a scratch copy, freed after
//   passes  operations drawn from a random stream (model::next_operation), most on a hot band of
//           records that moves each pass: find the record by its key (hash chain or binary
//           search), check that it is the key's, and half of the time update it: a new
//           transaction, and every 8th update a new text, the old one freed
//   audit   a walk of the whole heap, chunk by chunk: every header checked, every record's key
//           and text hashed and its invariants checked, every transaction; the sums of
//           model::Expected left in the boot block for the host; then the hash chains and the
//           sorted table checked against the records seen
// Any check that fails stops the guest with HostCall::fail and a message.
//
// Calling convention (isa.hpp): gp is the boot block, tp the seed. Leaf functions use a* and t*
// only and call nothing; the phases save every s*. The stack (model::stack_bytes) holds a phase's
// frame and a leaf's return address.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <span>
#include <string_view>
#include <vector>

#include "assembler.hpp"
#include "isa.hpp"
#include "model.hpp"

namespace emu {

class Workload {
public:
    // Emits the program into a; its entry is the first instruction.
    explicit Workload(Assembler& a) : a_(a) {
        declare();
        emit_main();
        emit_hash_bytes();
        emit_key_equal();
        emit_fold_fixed();
        emit_malloc();
        emit_free();
        emit_gen_key();
        emit_gen_text();
        emit_build_vocabulary();
        emit_build_phrases();
        emit_build();
        emit_sort();
        emit_passes();
        emit_audit();
    }

private:
    using Salt = model::Salt;

    void declare() {
        for (Label* l : {&hash_bytes_, &key_equal_, &fold_fixed_, &malloc_, &free_, &gen_key_,
                         &gen_text_, &build_vocabulary_, &build_phrases_, &build_, &sort_, &passes_, &audit_})
            *l = a_.label();
        std::vector<std::byte> syllables(4 * model::syllables.size());
        for (std::size_t i = 0; i < model::syllables.size(); ++i) {
            std::memcpy(&syllables[4 * i], model::syllables[i].data(), model::syllables[i].size());
            syllables[4 * i + 3] = static_cast<std::byte>(model::syllables[i].size());
        }
        syllables_ = a_.data(syllables, 4);
        vocabulary_ = a_.zeros(model::vocabulary_words * model::word_max);
        vocabulary_lengths_ = a_.zeros(model::vocabulary_words, 1);
        // 8 bytes past the last slot: words are stored whole into phrases
        phrases_ = a_.zeros(model::phrases * phrase_slot_bytes + 8);
        phrase_lengths_ = a_.zeros(model::phrases, 1);
        currencies_ = a_.data(std::as_bytes(std::span(model::currencies)));
        scratch_ = a_.zeros(scratch_bytes);
    }

    // ---- building blocks (inline sequences) ----

    // x = mix64(x)
    void mix(Reg x, Reg tmp) {
        a_.shri(tmp, x, 30); a_.xor_(x, x, tmp); a_.li(tmp, model::mix_multiplier_1); a_.mul(x, x, tmp);
        a_.shri(tmp, x, 27); a_.xor_(x, x, tmp); a_.li(tmp, model::mix_multiplier_2); a_.mul(x, x, tmp);
        a_.shri(tmp, x, 31); a_.xor_(x, x, tmp);
    }

    // dst = model::stream(seed, id, salt); dst may be id.
    void stream(Reg dst, Reg id, Salt salt, Reg tmp) {
        a_.li(tmp, model::golden); a_.mul(dst, id, tmp); a_.xor_(dst, dst, tp);
        a_.li(tmp, static_cast<std::uint64_t>(salt) << 56); a_.xor_(dst, dst, tmp);
        mix(dst, tmp);
    }

    // dst = model::weight(seed, id)
    void weight(Reg dst, Reg id, Reg tmp) {
        stream(dst, id, model::salt_weight, tmp);
        a_.ori(dst, dst, 1);
    }

    // dst = model::link(pointer, owner); dst must not be pointer.
    void link(Reg dst, Reg pointer, Reg owner, Reg tmp) {
        a_.li(tmp, model::golden); a_.mul(dst, owner, tmp); a_.add(dst, dst, pointer);
        mix(dst, tmp);
    }

    // r = model::lcg(r)
    void lcg(Reg r, Reg tmp) {
        a_.li(tmp, model::lcg_multiplier); a_.mul(r, r, tmp); a_.li(tmp, model::lcg_increment); a_.add(r, r, tmp);
    }

    // dst = model::skew2(bits16); dst may be bits16, not tmp.
    void skew2(Reg dst, Reg bits16, Reg tmp) {
        a_.andi(tmp, bits16, 255); a_.shri(dst, bits16, 8); a_.mul(dst, dst, tmp); a_.shri(dst, dst, 8);
    }

    // dst = model::skew3(bits24); dst may be bits24, not tmp1 or tmp2.
    void skew3(Reg dst, Reg bits24, Reg tmp1, Reg tmp2) {
        a_.andi(tmp1, bits24, 255); a_.shri(tmp2, bits24, 8); a_.andi(tmp2, tmp2, 255); a_.mul(tmp1, tmp1, tmp2);
        a_.shri(dst, bits24, 16); a_.mul(dst, dst, tmp1); a_.shri(dst, dst, 16);
    }

    // x &= the low `remaining` bytes' mask when remaining < 8 (the last word of a string);
    // clobbers remaining.
    void mask_tail(std::initializer_list<Reg> xs, Reg remaining, Reg tmp) {
        const Label whole = a_.label();
        a_.sltui(tmp, remaining, 8); a_.beq(tmp, zero, whole);
        a_.shli(remaining, remaining, 3); a_.li(tmp, 1); a_.shl(tmp, tmp, remaining); a_.addi(tmp, tmp, -1);
        for (const Reg x : xs) a_.and_(x, x, tmp);
        a_.bind(whole);
    }

    void announce(std::string_view name) {
        const StringRef s = a_.string(name);
        a_.la(a0, s.at); a_.li(a1, s.length); a_.hcall(HostCall::phase);
    }

    void progress(Reg done, Reg total) {
        a_.mv(a0, done); a_.mv(a1, total); a_.hcall(HostCall::progress);
    }

    // Stops the guest with `message` and `detail` (a record's id, an address) unless x == y: the
    // host ends the run on HostCall::fail, so nothing after it runs.
    void check_eq(Reg x, Reg y, std::string_view message, Reg detail) {
        const Label ok = a_.label();
        a_.beq(x, y, ok);
        fail(message, detail);
        a_.bind(ok);
    }
    void fail(std::string_view message, Reg detail) {
        const StringRef s = a_.string(message);
        a_.mv(a2, detail); a_.la(a0, s.at); a_.li(a1, s.length); a_.hcall(HostCall::fail);
    }
    void fail_if_zero(Reg p) {
        const Label ok = a_.label();
        a_.bne(p, zero, ok);
        fail("out of heap memory", p);
        a_.bind(ok);
    }

    // A phase's prologue and epilogue: it saves every s* register (a phase runs once: the few
    // pushes cost nothing, and a register added later cannot be forgotten).
    static constexpr Reg saved_[] = {s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11};
    void enter() {
        for (const Reg r : saved_) a_.push(r);
    }
    void leave() {
        for (auto r = std::rbegin(saved_); r != std::rend(saved_); ++r) a_.pop(*r);
        a_.ret();
    }

    // ---- the program ----

    void emit_main() {
        a_.li(gp, model::boot_address);
        a_.ld64(t0, gp, model::boot::magic); a_.li(t1, model::boot_magic);
        check_eq(t0, t1, "bad boot block", t0);
        a_.ld64(sp, gp, model::boot::heap_base);  // the stack lies just below the heap
        a_.ld64(tp, gp, model::boot::seed);
        a_.ld64(t0, gp, model::boot::heap_base); a_.st64(t0, gp, model::boot::heap_top);
        for (const std::int64_t table : {model::boot::free_lists, model::boot::span_cursor, model::boot::span_end})
            for (std::uint64_t c = 0; c < model::size_classes; ++c) a_.st64(zero, gp, table + static_cast<std::int64_t>(8 * c));
        a_.li(t0, static_cast<std::uint64_t>(model::salt_ops) << 56); a_.xor_(t0, t0, tp); mix(t0, t1);
        a_.st64(t0, gp, model::boot::rng);
        for (const std::int64_t f : {model::boot::clock, model::boot::ops_done, model::boot::audit_table_links,
                                     model::boot::audit_key_chunks, model::boot::audit_text_chunks, model::boot::audit_fixed,
                                     model::boot::audit_stamps, model::boot::audit_done})
            a_.st64(zero, gp, f);
        a_.call(build_vocabulary_);
        a_.call(build_phrases_);
        a_.call(build_);
        a_.call(sort_);
        a_.call(passes_);
        a_.call(audit_);
        a_.li(a0, 0); a_.hcall(HostCall::halt);
    }

    // a0 = model::hash_bytes(a0: bytes, a1: length); the last word is read whole
    void emit_hash_bytes() {
        a_.bind(hash_bytes_);
        const Label body = a_.label(), test = a_.label(), done = a_.label();
        a_.li(t0, model::hash_basis); a_.xor_(t0, t0, a1); a_.li(t1, model::hash_prime);
        a_.mv(t2, a0); a_.add(t3, a0, a1); a_.addi(t6, t3, -8);  // t6: the last whole word's start
        a_.jmp(test);
        a_.bind(body);
        a_.ld64(t4, t2, 0); a_.xor_(t0, t0, t4); a_.mul(t0, t0, t1); a_.shri(t4, t0, 32); a_.xor_(t0, t0, t4);
        a_.addi(t2, t2, 8);
        a_.bind(test);
        a_.bgeu(t6, t2, body);
        a_.bgeu(t2, t3, done);
        a_.ld64(t4, t2, 0); a_.sub(t5, t3, t2);
        mask_tail({t4}, t5, t6);
        a_.xor_(t0, t0, t4); a_.mul(t0, t0, t1); a_.shri(t4, t0, 32); a_.xor_(t0, t0, t4);
        a_.bind(done);
        mix(t0, t4);
        a_.mv(a0, t0); a_.ret();
    }

    // a0 = whether the a2 bytes at a0 and a1 are equal (both readable in whole 8-byte words)
    void emit_key_equal() {
        a_.bind(key_equal_);
        const Label body = a_.label(), test = a_.label(), equal = a_.label(), differ = a_.label();
        a_.add(t3, a0, a2); a_.addi(t6, t3, -8);
        a_.jmp(test);
        a_.bind(body);
        a_.ld64(t4, a0, 0); a_.ld64(t5, a1, 0); a_.bne(t4, t5, differ); a_.addi(a0, a0, 8); a_.addi(a1, a1, 8);
        a_.bind(test);
        a_.bgeu(t6, a0, body);
        a_.bgeu(a0, t3, equal);
        a_.ld64(t4, a0, 0); a_.ld64(t5, a1, 0); a_.sub(t7, t3, a0);
        mask_tail({t4, t5}, t7, t8);
        a_.bne(t4, t5, differ);
        a_.bind(equal);
        a_.li(a0, 1); a_.ret();
        a_.bind(differ);
        a_.li(a0, 0); a_.ret();
    }

    // a0 = model::fold of the fixed fields of the record at a0
    void emit_fold_fixed() {
        a_.bind(fold_fixed_);
        a_.li(t0, model::fold_basis); a_.li(t1, model::hash_prime);
        for (std::int64_t w = 0; w < model::rec::fixed_words; ++w) {
            a_.ld64(t2, a0, model::rec::fixed + 8 * w); a_.xor_(t0, t0, t2); a_.mul(t0, t0, t1);
            a_.shri(t2, t0, 29); a_.xor_(t0, t0, t2);
        }
        a_.mv(a0, t0); a_.ret();
    }

    // a0 = a chunk's payload of at least a0 bytes, tagged a1; 0 when the heap is full.
    void emit_malloc() {
        using namespace model;
        a_.bind(malloc_);
        const Label span = a_.label(), carve = a_.label(), large = a_.label(), header = a_.label(), full = a_.label();
        a_.addi(t0, a0, chunk_header_bytes + chunk_align - 1); a_.shri(t0, t0, 4); a_.shli(t0, t0, 4);  // t0: chunk bytes
        a_.li(t1, small_chunk_max); a_.bltu(t1, t0, large);
        a_.shri(t2, t0, 1); a_.add(t2, t2, gp);  // t2: gp + 8 * size class, for the class's tables
        a_.ld64(t3, t2, boot::free_lists); a_.beq(t3, zero, span);
        a_.ld64(t4, t3, 8); a_.st64(t4, t2, boot::free_lists); a_.jmp(header);
        // from the class's span, or a new one: t3 the chunk, t4 past it, t5 the span's end
        a_.bind(span);
        a_.ld64(t3, t2, boot::span_cursor); a_.ld64(t5, t2, boot::span_end); a_.add(t4, t3, t0);
        a_.bgeu(t5, t4, carve);
        a_.ld64(t3, gp, boot::heap_top); a_.li(t5, span_bytes); a_.add(t5, t3, t5);
        a_.ld64(t6, gp, boot::heap_end); a_.bltu(t6, t5, full);
        a_.st64(t5, gp, boot::heap_top); a_.st64(t5, t2, boot::span_end); a_.add(t4, t3, t0);
        a_.bind(carve);
        a_.st64(t4, t2, boot::span_cursor); a_.beq(t4, t5, header);
        a_.sub(t6, t5, t4); a_.li(t7, std::uint64_t{tag_filler} << 32 | chunk_free << 48); a_.or_(t6, t6, t7);
        a_.st64(t6, t4, 0);  // the span's rest: one free chunk
        a_.jmp(header);
        a_.bind(large);
        a_.ld64(t3, gp, boot::heap_top); a_.add(t4, t3, t0); a_.ld64(t5, gp, boot::heap_end);
        a_.bltu(t5, t4, full);
        a_.st64(t4, gp, boot::heap_top);
        a_.bind(header);
        a_.st32(t0, t3, 0); a_.st16(a1, t3, 4); a_.st16(zero, t3, 6); a_.addi(a0, t3, 8); a_.ret();
        a_.bind(full);
        a_.li(a0, 0); a_.ret();
    }

    // frees the chunk whose payload is a0
    void emit_free() {
        a_.bind(free_);
        const Label large = a_.label(), done = a_.label();
        a_.addi(t0, a0, -8); a_.ld32(t1, t0, 0); a_.li(t2, model::chunk_free); a_.st16(t2, t0, 6);
        a_.li(t3, model::small_chunk_max); a_.bltu(t3, t1, large);
        a_.shri(t2, t1, 1); a_.add(t2, t2, gp); a_.ld64(t3, t2, model::boot::free_lists);
        a_.st64(t3, t0, 8); a_.st64(t0, t2, model::boot::free_lists); a_.ret();
        a_.bind(large);
        a_.add(t4, t0, t1); a_.ld64(t5, gp, model::boot::heap_top); a_.bne(t4, t5, done);
        a_.st64(t0, gp, model::boot::heap_top);
        a_.bind(done);
        a_.ret();
    }

    // a0 = the length of model::Generator::key(a0: id), written NUL-terminated at a1 (which
    // must have 8 bytes of room past the NUL: words are stored whole)
    void emit_gen_key() {
        a_.bind(gen_key_);
        const Label loop = a_.label(), first = a_.label();
        stream(t0, a0, model::salt_key, t4);
        a_.andi(t1, t0, 1); a_.addi(t1, t1, 2);
        a_.mv(t2, a1); a_.li(t3, 0); a_.la(t8, vocabulary_); a_.la(t9, vocabulary_lengths_);
        a_.li(t6, model::lcg_multiplier); a_.li(t7, model::lcg_increment);
        a_.bind(loop);
        a_.mul(t0, t0, t6); a_.add(t0, t0, t7);
        a_.beq(t3, zero, first);
        a_.li(t4, '-'); a_.st8(t4, t2, 0); a_.addi(t2, t2, 1);
        a_.bind(first);
        a_.shri(t4, t0, 48);
        skew2(t4, t4, t5);
        a_.shli(t5, t4, 3); a_.add(t5, t5, t8); a_.ld64(t5, t5, 0); a_.st64(t5, t2, 0);
        a_.add(t5, t9, t4); a_.ld8(t5, t5, 0); a_.add(t2, t2, t5);
        a_.addi(t3, t3, 1); a_.bltu(t3, t1, loop);
        a_.li(t4, '#'); a_.st8(t4, t2, 0);
        a_.mv(t3, a0); a_.li(t5, 10);
        for (auto d = static_cast<std::int64_t>(model::key_digits); d >= 1; --d) {
            a_.remu(t4, t3, t5); a_.addi(t4, t4, '0'); a_.st8(t4, t2, d); a_.divu(t3, t3, t5);
        }
        const auto end = static_cast<std::int64_t>(model::key_digits) + 1;
        a_.st8(zero, t2, end); a_.addi(t2, t2, end); a_.sub(a0, t2, a1); a_.ret();
    }

    // writes model::Generator::text of start a1 and length a2 at a0, NUL-terminated (its chunk
    // holds text_slack_bytes more: phrases are stored as two whole words)
    void emit_gen_text() {
        a_.bind(gen_text_);
        const Label loop = a_.label(), space = a_.label(), done = a_.label();
        a_.mv(t0, a1); a_.mv(t2, a0); a_.add(t3, a0, a2);
        a_.la(t8, phrases_); a_.la(t9, phrase_lengths_);
        a_.li(t6, model::lcg_multiplier); a_.li(t7, model::lcg_increment);
        a_.bind(loop);
        a_.bgeu(t2, t3, done);
        a_.mul(t0, t0, t6); a_.add(t0, t0, t7);
        a_.shri(t4, t0, 40);
        skew3(t4, t4, t5, a3);
        a_.shli(t5, t4, 4); a_.add(t5, t5, t8);
        a_.ld64(a3, t5, 0); a_.st64(a3, t2, 0); a_.ld64(a3, t5, 8); a_.st64(a3, t2, 8);
        a_.add(t5, t9, t4); a_.ld8(t5, t5, 0); a_.add(t2, t2, t5);
        a_.shri(t5, t0, 36); a_.andi(t5, t5, 15); a_.bne(t5, zero, space);
        a_.li(t5, ',' | ' ' << 8); a_.st16(t5, t2, 0); a_.addi(t2, t2, 2); a_.jmp(loop);
        a_.bind(space);
        a_.li(t5, ' '); a_.st8(t5, t2, 0); a_.addi(t2, t2, 1); a_.jmp(loop);
        a_.bind(done);
        a_.li(t5, '.'); a_.st8(t5, t3, -1); a_.st8(zero, t3, 0); a_.ret();
    }

    // the vocabulary: model::word(i) for every i, in 8-byte slots, and their lengths
    void emit_build_vocabulary() {
        a_.bind(build_vocabulary_);
        const Label word = a_.label(), syllable = a_.label(), two = a_.label(), end = a_.label();
        a_.la(t8, vocabulary_); a_.la(t9, vocabulary_lengths_); a_.la(t7, syllables_); a_.li(t0, 0);
        a_.bind(word);
        a_.addi(t1, t0, 1); a_.li(t2, model::golden); a_.mul(t1, t1, t2);
        mix(t1, t2);
        a_.li(t2, 3); a_.remu(t2, t1, t2); a_.addi(t2, t2, 1);  // syllables
        a_.li(t3, 0); a_.li(t4, 0); a_.shli(t5, t0, 3); a_.add(t5, t5, t8);
        a_.bind(syllable);
        a_.bgeu(t3, t2, end);
        a_.muli(t6, t3, 5); a_.addi(t6, t6, 8); a_.shr(t6, t1, t6); a_.andi(t6, t6, 31); a_.shli(t6, t6, 2);
        a_.add(t6, t6, t7); a_.ld32(t6, t6, 0);  // letters, and the length in the top byte
        a_.shri(a0, t6, 24); a_.add(a1, t4, a0); a_.li(a2, model::word_max); a_.bltu(a2, a1, end);
        a_.add(a2, t5, t4); a_.st16(t6, a2, 0); a_.li(a3, 3); a_.bne(a0, a3, two);
        a_.shri(a3, t6, 16); a_.st8(a3, a2, 2);
        a_.bind(two);
        a_.mv(t4, a1); a_.addi(t3, t3, 1); a_.jmp(syllable);
        a_.bind(end);
        a_.add(a2, t9, t0); a_.st8(t4, a2, 0);
        a_.addi(t0, t0, 1); a_.li(t2, model::vocabulary_words); a_.bltu(t0, t2, word);
        a_.ret();
    }

    // the phrases: model::phrase(i) for every i, in 16-byte slots, and their lengths
    void emit_build_phrases() {
        a_.bind(build_phrases_);
        const Label phrase = a_.label(), word = a_.label(), no_space = a_.label(), end = a_.label();
        a_.la(t8, vocabulary_); a_.la(t9, vocabulary_lengths_); a_.la(t7, phrases_); a_.li(t0, 0);
        a_.bind(phrase);
        a_.addi(t1, t0, 1); a_.li(t2, model::golden); a_.mul(t1, t1, t2);
        a_.li(t2, static_cast<std::uint64_t>(model::salt_phrase) << 56); a_.xor_(t1, t1, t2);
        mix(t1, t2);
        a_.li(t2, 3); a_.remu(t2, t1, t2); a_.addi(t2, t2, 1);  // words
        a_.li(t3, 0); a_.li(t4, 0); a_.shli(t5, t0, 4); a_.add(t5, t5, t7);
        a_.bind(word);
        a_.bgeu(t3, t2, end);
        a_.shli(t6, t3, 4); a_.addi(t6, t6, 8); a_.shr(t6, t1, t6); a_.andi(t6, t6, 0xffff);
        skew2(t6, t6, a0);
        a_.add(a0, t9, t6); a_.ld8(a0, a0, 0);  // the word's length
        a_.sltu(a1, zero, t4);                  // a space before it, unless first
        a_.add(a2, t4, a1); a_.add(a2, a2, a0); a_.li(a3, model::phrase_max); a_.bltu(a3, a2, end);
        a_.add(a3, t5, t4); a_.beq(a1, zero, no_space);
        a_.li(a4, ' '); a_.st8(a4, a3, 0); a_.addi(a3, a3, 1);
        a_.bind(no_space);
        a_.shli(a4, t6, 3); a_.add(a4, a4, t8); a_.ld64(a4, a4, 0); a_.st64(a4, a3, 0);
        a_.mv(t4, a2); a_.addi(t3, t3, 1); a_.jmp(word);
        a_.bind(end);
        a_.la(a2, phrase_lengths_); a_.add(a2, a2, t0); a_.st8(t4, a2, 0);
        a_.addi(t0, t0, 1); a_.li(t2, model::phrases); a_.bltu(t0, t2, phrase);
        a_.ret();
    }

    void emit_build() {
        using namespace model;
        a_.bind(build_);
        enter();
        announce("build");
        const Label clear = a_.label(), cleared = a_.label(), loop = a_.label(), done = a_.label();
        const Label quiet = a_.label(), copy = a_.label(), opening = a_.label(), amount_known = a_.label();
        // s1: records, s2: the table, s3: the bucket array, s4: its index mask
        a_.ld64(s1, gp, boot::records); a_.ld64(s4, gp, boot::buckets);
        a_.shli(a0, s4, 3); a_.li(a1, tag_buckets); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s3, a0); a_.st64(s3, gp, boot::bucket_array);
        a_.mv(t0, s3); a_.shli(t1, s4, 3); a_.add(t1, t1, s3);  // calloc: the chunk may be reused memory
        a_.bind(clear);
        a_.bgeu(t0, t1, cleared);
        a_.st64(zero, t0, 0); a_.addi(t0, t0, 8); a_.jmp(clear);
        a_.bind(cleared);
        a_.addi(s4, s4, -1);
        a_.shli(a0, s1, 4); a_.li(a1, tag_table); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s2, a0); a_.st64(s2, gp, boot::table);
        a_.li(s0, 0);  // s0: the record's id
        a_.bind(loop);
        a_.bgeu(s0, s1, done);
        a_.andi(t0, s0, progress_every - 1); a_.bne(t0, zero, quiet);
        progress(s0, s1);
        a_.bind(quiet);
        // the key: s5, its length s8
        a_.mv(a0, s0); a_.la(a1, scratch_); a_.call(gen_key_); a_.mv(s8, a0);
        a_.addi(a0, s8, 1); a_.li(a1, tag_key); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s5, a0); a_.la(t0, scratch_); a_.li(t1, 0); a_.addi(t2, s8, 1);
        a_.bind(copy);
        a_.add(t3, t0, t1); a_.ld64(t3, t3, 0); a_.add(t4, s5, t1); a_.st64(t3, t4, 0);
        a_.addi(t1, t1, 8); a_.bltu(t1, t2, copy);
        // the text: s6, its length s9
        stream(s10, s0, salt_text, t0);
        mix(s10, t0);  // text_start(id, 0)
        a_.li(t0, text_spread_bytes); a_.remu(s9, s10, t0); a_.addi(s9, s9, text_min_bytes);
        a_.addi(a0, s9, text_slack_bytes); a_.li(a1, tag_text); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s6, a0); a_.mv(a1, s10); a_.mv(a2, s9); a_.call(gen_text_);
        // the record: s7
        a_.li(a0, rec::bytes); a_.li(a1, tag_record); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s7, a0);
        a_.mv(a0, s5); a_.mv(a1, s8); a_.call(hash_bytes_); a_.st64(a0, s7, rec::hash);
        a_.st64(s5, s7, rec::key); a_.st64(s6, s7, rec::text); a_.st16(s8, s7, rec::key_len);
        a_.st16(s9, s7, rec::text_len); a_.st32(s0, s7, rec::id); a_.st32(zero, s7, rec::version);
        a_.st32(zero, s7, rec::text_rev);
        // its opening transactions (Generator::opening): s10 the stream, s11 how many, s8 the
        // next one's index, s9 its amount, s5 the newest, s6 the running balance
        stream(s10, s0, salt_history, t0);
        a_.li(t1, 3); a_.remu(s11, s10, t1); a_.addi(s11, s11, 1); a_.st32(s11, s7, rec::n_history);
        a_.shri(t0, s10, 62); a_.ori(t0, t0, 0x100); a_.st32(t0, s7, rec::flags);
        a_.shri(t0, s10, 24); a_.li(t1, 40); a_.remu(t0, t0, t1); a_.addi(t0, t0, 1); a_.li(t1, 50000);
        a_.mul(t0, t0, t1); a_.st64(t0, s7, rec::limit);
        a_.shri(t0, s10, 40); a_.andi(t0, t0, 7); a_.shli(t0, t0, 3); a_.la(t1, currencies_); a_.add(t1, t1, t0);
        a_.ld64(t0, t1, 0); a_.st64(t0, s7, rec::currency);
        a_.shri(t0, s10, 44); a_.li(t1, 97); a_.remu(t0, t0, t1); a_.muli(t2, s0, 97); a_.add(t0, t0, t2);
        a_.li(t1, epoch_opened); a_.add(t0, t0, t1); a_.st64(t0, s7, rec::opened);
        a_.st64(zero, s7, rec::closed_at);
        a_.shri(t0, s10, 8); a_.li(t1, 990000); a_.remu(t0, t0, t1); a_.addi(s9, t0, 10000);
        a_.li(s5, 0); a_.li(s6, 0); a_.li(s8, 0);
        a_.bind(opening);
        a_.beq(s8, zero, amount_known);
        lcg(s10, t1);
        a_.shri(t0, s10, 33); a_.li(t1, 20001); a_.remu(t0, t0, t1); a_.addi(s9, t0, -10000);
        a_.bind(amount_known);
        a_.li(a0, txn::bytes); a_.li(a1, tag_history); a_.call(malloc_);
        fail_if_zero(a0);
        a_.add(s6, s6, s9);
        a_.st64(s5, a0, txn::next); a_.st64(s9, a0, txn::amount);
        a_.ld64(t0, s7, rec::opened); a_.muli(t1, s8, opening_interval); a_.add(t0, t0, t1); a_.st64(t0, a0, txn::stamp);
        a_.st32(s0, a0, txn::id); a_.sltu(t0, zero, s8); a_.st32(t0, a0, txn::kind);  // opening, then transfers
        a_.mv(s5, a0); a_.addi(s8, s8, 1); a_.bltu(s8, s11, opening);
        a_.st64(s5, s7, rec::history); a_.st64(s6, s7, rec::balance);
        // into its hash chain, at the head, and into the table
        a_.ld64(t0, s7, rec::hash); a_.and_(t1, t0, s4); a_.shli(t1, t1, 3); a_.add(t1, t1, s3);
        a_.ld64(t2, t1, 0); a_.st64(t2, s7, rec::next); a_.st64(s7, t1, 0);
        a_.shli(t3, s0, 4); a_.add(t3, t3, s2); a_.st64(t0, t3, 0); a_.st64(s7, t3, 8);
        a_.addi(s0, s0, 1); a_.jmp(loop);
        a_.bind(done);
        progress(s1, s1);
        leave();
    }

    void emit_sort() {
        using namespace model;
        a_.bind(sort_);
        enter();
        announce("sort");
        const Label count = a_.label(), counted = a_.label(), level = a_.label(), run = a_.label();
        const Label merge = a_.label(), take_right = a_.label(), rest_left = a_.label(), rest_right = a_.label();
        const Label merged = a_.label(), level_done = a_.label(), sorted = a_.label(), copy = a_.label(), in_place = a_.label();
        // s0: entries, s1: the table, s2: the scratch copy, s3: source, s4: destination,
        // s5: run width, s6: the run pair's start, s7: its middle, s8: its end, s10: levels,
        // s11: levels done
        a_.ld64(s0, gp, boot::records); a_.ld64(s1, gp, boot::table);
        a_.shli(a0, s0, 4); a_.li(a1, tag_sort); a_.call(malloc_);
        fail_if_zero(a0);
        a_.mv(s2, a0); a_.mv(s3, s1); a_.mv(s4, s2); a_.li(s5, 1); a_.li(s11, 0);
        a_.li(t0, 1); a_.li(s10, 0);
        a_.bind(count);
        a_.bgeu(t0, s0, counted);
        a_.shli(t0, t0, 1); a_.addi(s10, s10, 1); a_.jmp(count);
        a_.bind(counted);
        a_.bind(level);
        a_.bgeu(s5, s0, sorted);
        a_.li(s6, 0);
        a_.bind(run);
        a_.bgeu(s6, s0, level_done);
        a_.add(s7, s6, s5); a_.minu(s7, s7, s0);
        a_.shli(t0, s5, 1); a_.add(s8, s6, t0); a_.minu(s8, s8, s0);
        // t1: left cursor, t4: its end, t2: right cursor, t5: its end, t3: output
        a_.shli(t1, s6, 4); a_.add(t1, t1, s3); a_.shli(t2, s7, 4); a_.add(t2, t2, s3); a_.mv(t4, t2);
        a_.shli(t5, s8, 4); a_.add(t5, t5, s3); a_.shli(t3, s6, 4); a_.add(t3, t3, s4);
        a_.bind(merge);
        a_.bgeu(t1, t4, rest_right);
        a_.bgeu(t2, t5, rest_left);
        a_.ld64(t6, t1, 0); a_.ld64(t7, t2, 0); a_.bltu(t7, t6, take_right);  // equal keys: left first
        a_.st64(t6, t3, 0); a_.ld64(t8, t1, 8); a_.st64(t8, t3, 8); a_.addi(t1, t1, 16); a_.addi(t3, t3, 16); a_.jmp(merge);
        a_.bind(take_right);
        a_.st64(t7, t3, 0); a_.ld64(t8, t2, 8); a_.st64(t8, t3, 8); a_.addi(t2, t2, 16); a_.addi(t3, t3, 16); a_.jmp(merge);
        a_.bind(rest_left);
        a_.bgeu(t1, t4, merged);
        a_.ld64(t6, t1, 0); a_.st64(t6, t3, 0); a_.ld64(t6, t1, 8); a_.st64(t6, t3, 8);
        a_.addi(t1, t1, 16); a_.addi(t3, t3, 16); a_.jmp(rest_left);
        a_.bind(rest_right);
        a_.bgeu(t2, t5, merged);
        a_.ld64(t6, t2, 0); a_.st64(t6, t3, 0); a_.ld64(t6, t2, 8); a_.st64(t6, t3, 8);
        a_.addi(t2, t2, 16); a_.addi(t3, t3, 16); a_.jmp(rest_right);
        a_.bind(merged);
        a_.shli(t0, s5, 1); a_.add(s6, s6, t0); a_.jmp(run);
        a_.bind(level_done);
        a_.mv(t0, s3); a_.mv(s3, s4); a_.mv(s4, t0);
        a_.shli(s5, s5, 1); a_.addi(s11, s11, 1);
        progress(s11, s10);
        a_.jmp(level);
        a_.bind(sorted);
        a_.beq(s3, s1, in_place);
        a_.mv(t1, s3); a_.mv(t3, s1); a_.shli(t5, s0, 4); a_.add(t5, t5, s3);
        a_.bind(copy);
        a_.bgeu(t1, t5, in_place);
        a_.ld64(t6, t1, 0); a_.st64(t6, t3, 0); a_.ld64(t6, t1, 8); a_.st64(t6, t3, 8);
        a_.addi(t1, t1, 16); a_.addi(t3, t3, 16); a_.jmp(copy);
        a_.bind(in_place);
        a_.mv(a0, s2); a_.call(free_);  // the heap's top chunk: the heap shrinks back
        leave();
    }

    void emit_passes() {
        using namespace model;
        a_.bind(passes_);
        enter();
        announce("passes");
        const Label pass = a_.label(), pass_done = a_.label(), op = a_.label(), cold = a_.label(), have_id = a_.label();
        const Label via_table = a_.label(), chain = a_.label(), chain_next = a_.label(), search = a_.label();
        const Label go_left = a_.label(), searched = a_.label(), scan = a_.label(), scan_next = a_.label();
        const Label not_found = a_.label(), found = a_.label(), op_done = a_.label(), same_text = a_.label();
        const Label quiet = a_.label(), done = a_.label();
        // s0: records, s1: hot records, s4: the bucket array, s5: its mask, s6: the pass, s7: its
        // band's first id, s8: the operation in the pass, s9: its random bits, s10: its id,
        // s11: the key's length, s2: its hash, s3: the record found
        a_.ld64(s0, gp, boot::records); a_.ld64(s1, gp, boot::hot_records);
        a_.ld64(s4, gp, boot::bucket_array); a_.ld64(s5, gp, boot::buckets); a_.addi(s5, s5, -1);
        a_.li(s6, 0);
        a_.bind(pass);
        a_.ld64(t0, gp, boot::passes); a_.bgeu(s6, t0, done);
        stream(s7, s6, salt_band, t0);
        a_.sub(t0, s0, s1); a_.addi(t0, t0, 1); a_.remu(s7, s7, t0);
        a_.li(s8, 0);
        a_.bind(op);
        a_.ld64(t0, gp, boot::ops_per_pass); a_.bgeu(s8, t0, pass_done);
        a_.ld64(t0, gp, boot::rng);
        lcg(t0, t1);
        a_.st64(t0, gp, boot::rng);
        mix(t0, t1);
        a_.mv(s9, t0);
        // next_operation(): the id
        a_.shri(t0, s9, 16); a_.andi(t1, s9, 31); a_.beq(t1, zero, cold);
        a_.remu(t0, t0, s1); a_.add(s10, t0, s7); a_.jmp(have_id);
        a_.bind(cold);
        a_.remu(s10, t0, s0);
        a_.bind(have_id);
        a_.mv(a0, s10); a_.la(a1, scratch_); a_.call(gen_key_); a_.mv(s11, a0);
        a_.la(a0, scratch_); a_.mv(a1, s11); a_.call(hash_bytes_); a_.mv(s2, a0);
        a_.shri(t0, s9, 5); a_.andi(t0, t0, 1); a_.bne(t0, zero, via_table);
        // through the hash chain
        a_.and_(t0, s2, s5); a_.shli(t0, t0, 3); a_.add(t0, t0, s4); a_.ld64(s3, t0, 0);
        a_.bind(chain);
        a_.beq(s3, zero, not_found);
        a_.ld64(t0, s3, rec::hash); a_.bne(t0, s2, chain_next);
        a_.ld16(t0, s3, rec::key_len); a_.bne(t0, s11, chain_next);
        a_.ld64(a0, s3, rec::key); a_.la(a1, scratch_); a_.mv(a2, s11); a_.call(key_equal_); a_.bne(a0, zero, found);
        a_.bind(chain_next);
        a_.ld64(s3, s3, rec::next); a_.jmp(chain);
        // through the sorted table: the first entry of hash >= the key's, then those of its hash
        a_.bind(via_table);
        a_.ld64(t5, gp, boot::table); a_.li(t0, 0); a_.mv(t1, s0);
        a_.bind(search);
        a_.bgeu(t0, t1, searched);
        a_.add(t2, t0, t1); a_.shri(t2, t2, 1); a_.shli(t3, t2, 4); a_.add(t3, t3, t5); a_.ld64(t3, t3, 0);
        a_.bgeu(t3, s2, go_left);
        a_.addi(t0, t2, 1); a_.jmp(search);
        a_.bind(go_left);
        a_.mv(t1, t2); a_.jmp(search);
        a_.bind(searched);
        a_.shli(t0, t0, 4); a_.add(s3, t0, t5);  // s3: the entry, until found
        a_.bind(scan);
        a_.ld64(t5, gp, boot::table); a_.shli(t1, s0, 4); a_.add(t1, t1, t5); a_.bgeu(s3, t1, not_found);
        a_.ld64(t0, s3, 0); a_.bne(t0, s2, not_found);
        a_.ld64(t2, s3, 8); a_.ld16(t0, t2, rec::key_len); a_.bne(t0, s11, scan_next);
        a_.ld64(a0, t2, rec::key); a_.la(a1, scratch_); a_.mv(a2, s11); a_.call(key_equal_); a_.beq(a0, zero, scan_next);
        a_.ld64(s3, s3, 8); a_.jmp(found);
        a_.bind(scan_next);
        a_.addi(s3, s3, 16); a_.jmp(scan);
        a_.bind(not_found);
        fail("lookup did not find a record's key", s10);
        a_.bind(found);
        a_.ld32(t0, s3, rec::id);
        check_eq(t0, s10, "lookup found another record than the key's", s10);
        a_.shri(t0, s9, 6); a_.andi(t0, t0, 1); a_.beq(t0, zero, op_done);
        // the update: s11 the amount, s2 the new balance, s9 the new version
        a_.shri(t0, s9, 8); a_.andi(t0, t0, 0x3fff); a_.addi(s11, t0, -8192);
        a_.ld64(t0, s3, rec::balance); a_.add(s2, t0, s11); a_.st64(s2, s3, rec::balance);
        a_.ld32(t0, s3, rec::version); a_.addi(s9, t0, 1); a_.st32(s9, s3, rec::version);
        a_.li(a0, txn::bytes); a_.li(a1, tag_history); a_.call(malloc_);
        fail_if_zero(a0);
        a_.ld64(t0, s3, rec::history); a_.st64(t0, a0, txn::next); a_.st64(s11, a0, txn::amount);
        a_.ld64(t0, gp, boot::clock); a_.addi(t0, t0, 1); a_.st64(t0, gp, boot::clock);
        a_.li(t1, epoch_updates); a_.add(t0, t0, t1); a_.st64(t0, a0, txn::stamp);
        a_.st32(s10, a0, txn::id); a_.li(t0, txn_update); a_.st32(t0, a0, txn::kind);
        a_.st64(a0, s3, rec::history);
        a_.ld32(t0, s3, rec::n_history); a_.addi(t0, t0, 1); a_.st32(t0, s3, rec::n_history);
        a_.andi(t0, s9, text_rewrite_every - 1); a_.bne(t0, zero, same_text);
        // a new text: s2 its start, s11 its length; the record points at it before the old
        // one is freed (free clobbers the temporaries)
        stream(s2, s10, salt_text, t0);
        a_.add(s2, s2, s9);
        mix(s2, t0);
        a_.li(t0, text_spread_bytes); a_.remu(s11, s2, t0); a_.addi(s11, s11, text_min_bytes);
        a_.addi(a0, s11, text_slack_bytes); a_.li(a1, tag_text); a_.call(malloc_);
        fail_if_zero(a0);
        a_.ld64(t1, s3, rec::text); a_.st64(a0, s3, rec::text); a_.mv(a0, t1); a_.call(free_);
        a_.ld64(a0, s3, rec::text); a_.mv(a1, s2); a_.mv(a2, s11); a_.call(gen_text_);
        a_.st16(s11, s3, rec::text_len); a_.st32(s9, s3, rec::text_rev);
        a_.bind(same_text);
        a_.bind(op_done);
        a_.ld64(t0, gp, boot::ops_done); a_.addi(t0, t0, 1); a_.st64(t0, gp, boot::ops_done);
        a_.andi(t1, t0, progress_ops_every - 1); a_.bne(t1, zero, quiet);
        a_.ld64(t1, gp, boot::passes); a_.ld64(t2, gp, boot::ops_per_pass); a_.mul(a1, t1, t2); a_.mv(a0, t0);
        a_.hcall(HostCall::progress);
        a_.bind(quiet);
        a_.addi(s8, s8, 1); a_.jmp(op);
        a_.bind(pass_done);
        a_.addi(s6, s6, 1); a_.jmp(pass);
        a_.bind(done);
        a_.ld64(t1, gp, boot::passes); a_.ld64(t2, gp, boot::ops_per_pass); a_.mul(a1, t1, t2); a_.mv(a0, a1);
        a_.hcall(HostCall::progress);
        leave();
    }

    void emit_audit() {
        using namespace model;
        a_.bind(audit_);
        enter();
        announce("audit");
        const Label walk = a_.label(), walked = a_.label(), bad = a_.label(), next = a_.label(), quiet = a_.label();
        const Label record = a_.label(), transaction = a_.label(), not_key = a_.label(), last = a_.label();
        const Label buckets = a_.label(), bucket_next = a_.label(), buckets_done = a_.label();
        const Label table = a_.label(), table_done = a_.label();
        // Locals: sp+0 the record's weight, sp+8 chunks walked.
        // s0: the chunk, s1: the heap's top, s2: records, s3..s7: the sums of the records'
        // weighted balances, versions, transaction counts, key hashes and text hashes, s8 and s9:
        // those of the transactions' weighted amounts and weights (they must equal s3 and s5),
        // s10: the transaction lists' links, s11: the hash chains' links (both must end at 0)
        a_.addi(sp, sp, -16); a_.st64(zero, sp, 8);
        a_.ld64(s0, gp, boot::heap_base); a_.ld64(s1, gp, boot::heap_top);
        for (const Reg r : {s2, s3, s4, s5, s6, s7, s8, s9, s10, s11}) a_.li(r, 0);
        a_.bind(walk);
        a_.bgeu(s0, s1, walked);
        a_.ld64(t0, sp, 8); a_.addi(t0, t0, 1); a_.st64(t0, sp, 8); a_.andi(t0, t0, progress_every - 1); a_.bne(t0, zero, quiet);
        a_.ld64(t0, gp, boot::heap_base); a_.sub(a0, s0, t0); a_.sub(a1, s1, t0); a_.hcall(HostCall::progress);
        a_.bind(quiet);
        // the header: a size of whole 16-byte units inside the heap, a known tag
        a_.ld64(t0, s0, 0); a_.li(t1, 0xffffffff); a_.and_(t1, t0, t1);  // t1: size
        a_.andi(t2, t1, chunk_align - 1); a_.bne(t2, zero, bad);
        a_.beq(t1, zero, bad);
        a_.sub(t2, s1, s0); a_.bltu(t2, t1, bad);
        a_.shri(t2, t0, 32); a_.andi(t2, t2, 0xffff); a_.beq(t2, zero, bad); a_.sltui(t3, t2, tag_last + 1); a_.beq(t3, zero, bad);
        a_.shri(t3, t0, 48); a_.sltui(t4, t3, chunk_free + 1); a_.beq(t4, zero, bad);  // no flag but chunk_free
        a_.bne(t3, zero, next);
        a_.li(t3, tag_record); a_.beq(t2, t3, record);
        a_.li(t3, tag_history); a_.beq(t2, t3, transaction);
        a_.li(t3, tag_key); a_.bne(t2, t3, not_key);
        a_.ld64(t4, gp, boot::audit_key_chunks); a_.addi(t4, t4, 1); a_.st64(t4, gp, boot::audit_key_chunks); a_.jmp(next);
        a_.bind(not_key);
        a_.li(t3, tag_text); a_.bne(t2, t3, next);
        a_.ld64(t4, gp, boot::audit_text_chunks); a_.addi(t4, t4, 1); a_.st64(t4, gp, boot::audit_text_chunks); a_.jmp(next);

        a_.bind(record);
        {
            const auto r = [](std::int64_t field) { return static_cast<std::int64_t>(chunk_header_bytes) + field; };
            a_.ld32(t0, s0, r(rec::id));
            weight(t1, t0, t2);
            a_.st64(t1, sp, 0);
            a_.addi(a0, s0, r(0)); a_.call(fold_fixed_); a_.ld64(t1, sp, 0); a_.mul(a0, a0, t1);
            a_.ld64(t0, gp, boot::audit_fixed); a_.add(t0, t0, a0); a_.st64(t0, gp, boot::audit_fixed);
            a_.ld32(t9, s0, r(rec::id));
            a_.ld64(a0, s0, r(rec::key)); a_.ld16(a1, s0, r(rec::key_len)); a_.call(hash_bytes_);
            a_.ld64(t0, s0, r(rec::hash)); a_.ld32(t9, s0, r(rec::id));
            check_eq(a0, t0, "key does not hash to its record's hash", t9);
            a_.ld64(t1, sp, 0); a_.mul(t0, a0, t1); a_.add(s6, s6, t0);
            a_.ld64(t0, s0, r(rec::key)); a_.ld16(t1, s0, r(rec::key_len)); a_.add(t0, t0, t1); a_.ld8(t0, t0, 0);
            check_eq(t0, zero, "key is not NUL-terminated", t9);
            a_.ld64(a0, s0, r(rec::text)); a_.ld16(a1, s0, r(rec::text_len)); a_.call(hash_bytes_);
            a_.ld64(t1, sp, 0); a_.mul(t0, a0, t1); a_.add(s7, s7, t0);
            a_.ld64(t0, s0, r(rec::text)); a_.ld16(t1, s0, r(rec::text_len)); a_.add(t0, t0, t1); a_.ld8(t0, t0, 0);
            a_.ld32(t9, s0, r(rec::id));
            check_eq(t0, zero, "text is not NUL-terminated", t9);
            a_.ld32(t0, s0, r(rec::version)); a_.andi(t1, t0, ~std::uint64_t{text_rewrite_every - 1} & 0xffffffff);
            a_.ld32(t2, s0, r(rec::text_rev));
            check_eq(t1, t2, "text revision does not match the record's version", t9);
            // every update added one transaction to the 1 to 3 opening ones
            a_.ld32(t2, s0, r(rec::n_history)); a_.sub(t2, t2, t0); a_.addi(t2, t2, -1); a_.sltui(t2, t2, 3);
            a_.li(t3, 1);
            check_eq(t2, t3, "transaction count does not match the record's version", t9);
            a_.ld64(t9, sp, 0);
            a_.ld64(t1, s0, r(rec::balance)); a_.mul(t1, t1, t9); a_.add(s3, s3, t1);
            a_.mul(t1, t0, t9); a_.add(s4, s4, t1);
            a_.ld32(t1, s0, r(rec::n_history)); a_.mul(t1, t1, t9); a_.add(s5, s5, t1);
            a_.addi(s2, s2, 1);
            // links: its transaction list's head; itself in its bucket, less its next; itself in
            // the table
            a_.ld64(t1, s0, r(rec::history)); a_.ld32(t2, s0, r(rec::id));
            link(t3, t1, t2, t4);
            a_.sub(s10, s10, t3);
            a_.ld64(t5, gp, boot::buckets); a_.addi(t5, t5, -1); a_.ld64(t6, s0, r(rec::hash)); a_.and_(t5, t6, t5);
            a_.addi(t1, s0, r(0));
            link(t3, t1, t5, t4);
            a_.add(s11, s11, t3);
            link(t3, t1, t6, t4);
            a_.ld64(t7, gp, boot::audit_table_links); a_.add(t7, t7, t3); a_.st64(t7, gp, boot::audit_table_links);
            a_.ld64(t1, s0, r(rec::next)); a_.beq(t1, zero, next);
            link(t3, t1, t5, t4);
            a_.sub(s11, s11, t3); a_.jmp(next);

            a_.bind(transaction);
            a_.ld32(t2, s0, r(txn::id));
            weight(t0, t2, t1);
            a_.ld32(t1, s0, r(txn::kind)); a_.li(t3, golden); a_.mul(t1, t1, t3); a_.ld64(t3, s0, r(txn::stamp));
            a_.add(t1, t1, t3); a_.mul(t1, t1, t0);
            a_.ld64(t3, gp, boot::audit_stamps); a_.add(t3, t3, t1); a_.st64(t3, gp, boot::audit_stamps);
            a_.ld64(t1, s0, r(txn::amount)); a_.mul(t1, t1, t0); a_.add(s8, s8, t1); a_.add(s9, s9, t0);
            a_.addi(t1, s0, r(0));
            link(t3, t1, t2, t4);
            a_.add(s10, s10, t3);
            a_.ld64(t1, s0, r(txn::next)); a_.beq(t1, zero, next);
            link(t3, t1, t2, t4);
            a_.sub(s10, s10, t3); a_.jmp(next);
        }
        a_.bind(bad);
        fail("heap chunk header is corrupt", s0);
        a_.bind(next);
        a_.ld32(t0, s0, 0); a_.add(s0, s0, t0); a_.jmp(walk);
        a_.bind(walked);
        a_.ld64(t0, gp, boot::records);
        check_eq(s2, t0, "the heap does not hold the records built", s2);
        check_eq(s8, s3, "transaction amounts do not add up to the balances", s2);
        check_eq(s9, s5, "transaction lists do not hold the records' counts", s2);
        check_eq(s10, zero, "transaction lists are broken", s2);
        a_.ld64(t1, gp, boot::audit_key_chunks);
        check_eq(t1, t0, "key chunks are not one per record", t1);
        a_.ld64(t1, gp, boot::audit_text_chunks);
        check_eq(t1, t0, "text chunks are not one per record", t1);
        // every bucket's head
        a_.ld64(t5, gp, boot::bucket_array); a_.ld64(t6, gp, boot::buckets); a_.li(t7, 0);
        a_.bind(buckets);
        a_.bgeu(t7, t6, buckets_done);
        a_.shli(t0, t7, 3); a_.add(t0, t0, t5); a_.ld64(t1, t0, 0); a_.beq(t1, zero, bucket_next);
        link(t3, t1, t7, t4);
        a_.sub(s11, s11, t3);
        a_.bind(bucket_next);
        a_.addi(t7, t7, 1); a_.jmp(buckets);
        a_.bind(buckets_done);
        check_eq(s11, zero, "hash chains do not hold every record once", s2);
        // the table: in order, and every record once
        a_.ld64(t5, gp, boot::table); a_.ld64(t6, gp, boot::records); a_.li(t7, 0); a_.li(t8, 0);
        a_.ld64(t9, gp, boot::audit_table_links);
        a_.bind(table);
        a_.bgeu(t7, t6, table_done);
        a_.shli(t0, t7, 4); a_.add(t0, t0, t5); a_.ld64(t1, t0, 0);
        a_.bgeu(t1, t8, last);
        fail("sorted table is out of order", t7);
        a_.bind(last);
        a_.mv(t8, t1); a_.ld64(t2, t0, 8);
        link(t3, t2, t1, t4);
        a_.sub(t9, t9, t3); a_.addi(t7, t7, 1); a_.jmp(table);
        a_.bind(table_done);
        check_eq(t9, zero, "sorted table does not hold every record once", s2);
        a_.st64(s2, gp, boot::audit_records); a_.st64(s3, gp, boot::audit_balance); a_.st64(s4, gp, boot::audit_versions);
        a_.st64(s5, gp, boot::audit_history); a_.st64(s6, gp, boot::audit_keys); a_.st64(s7, gp, boot::audit_texts);
        a_.li(t0, boot_magic); a_.st64(t0, gp, boot::audit_done);
        a_.ld64(t0, gp, boot::heap_base); a_.sub(a0, s1, t0); a_.mv(a1, a0); a_.hcall(HostCall::progress);
        a_.addi(sp, sp, 16);
        leave();
    }

    static constexpr std::uint64_t progress_every = 1 << 14;      // records built, chunks audited
    static constexpr std::uint64_t progress_ops_every = 1 << 10;  // operations
    static constexpr std::size_t scratch_bytes = 64;              // a key (at most 35 bytes) and the words past it

    static constexpr std::size_t phrase_slot_bytes = model::phrase_max + 1;
    static_assert(phrase_slot_bytes == 16, "gen_text copies a phrase as two words and indexes slots by shifting");

    Assembler& a_;
    Label hash_bytes_, key_equal_, fold_fixed_, malloc_, free_, gen_key_, gen_text_,
        build_vocabulary_, build_phrases_, build_, sort_, passes_, audit_;
    Label syllables_, vocabulary_, vocabulary_lengths_, phrases_, phrase_lengths_, currencies_, scratch_;
};

}  // namespace emu
