// zpage-emulator: an assembler for the guest machine (isa.hpp), used from C++: one member function
// per instruction, labels for code and data, and link(), which lays code then data out at a load
// address and resolves every label. A label used but never bound, or an offset that does not fit
// an instruction's 32 bits, throws std::logic_error at link(): a bug in the program being built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "isa.hpp"

namespace emu {

struct Label {
    std::uint32_t id = 0;
};

// A string in the program's data: where, and how long (no terminating NUL is counted).
struct StringRef {
    Label at;
    std::uint32_t length = 0;
};

// A linked program: its bytes, to be copied to `base` in guest memory, and where its labels went.
struct Image {
    std::uint64_t base = 0;
    std::vector<std::byte> bytes;
    std::size_t code_bytes = 0;
    std::vector<std::uint64_t> addresses;  // by label id

    [[nodiscard]] std::uint64_t address(Label l) const { return addresses.at(l.id); }
};

class Assembler {
public:
    [[nodiscard]] Label label() {
        places_.push_back(Place{});
        return Label{static_cast<std::uint32_t>(places_.size() - 1)};
    }

    // Binds l to the next instruction.
    void bind(Label l) { set(l, Section::code, code_.size() * instruction_bytes); }

    [[nodiscard]] Label here() {
        const Label l = label();
        bind(l);
        return l;
    }

    // ---- data ----

    [[nodiscard]] Label data(std::span<const std::byte> bytes, std::size_t align = 8) {
        align_data(align);
        const Label l = label();
        set(l, Section::data, data_.size());
        data_.insert(data_.end(), bytes.begin(), bytes.end());
        return l;
    }

    [[nodiscard]] StringRef string(std::string_view text) {
        const Label l = data(std::as_bytes(std::span(text.data(), text.size())), 1);
        data_.push_back(std::byte{0});
        return StringRef{l, static_cast<std::uint32_t>(text.size())};
    }

    // n zero bytes.
    [[nodiscard]] Label zeros(std::size_t n, std::size_t align = 8) {
        align_data(align);
        const Label l = label();
        set(l, Section::data, data_.size());
        data_.resize(data_.size() + n);
        return l;
    }

    // ---- instructions ----

#define EMU_RRR(name, op) \
    void name(Reg rd, Reg rs1, Reg rs2) { emit(Op::op, rd, rs1, rs2, 0); }
    EMU_RRR(add, add) EMU_RRR(sub, sub) EMU_RRR(mul, mul) EMU_RRR(divu, divu) EMU_RRR(remu, remu)
    EMU_RRR(and_, and_) EMU_RRR(or_, or_) EMU_RRR(xor_, xor_) EMU_RRR(shl, shl) EMU_RRR(shr, shr)
    EMU_RRR(sar, sar) EMU_RRR(sltu, sltu) EMU_RRR(slt, slt)
#undef EMU_RRR

#define EMU_RRI(name, op) \
    void name(Reg rd, Reg rs1, std::int64_t imm) { emit(Op::op, rd, rs1, zero, imm32(imm)); }
    EMU_RRI(addi, addi) EMU_RRI(muli, muli) EMU_RRI(shli, shli) EMU_RRI(shri, shri) EMU_RRI(sari, sari)
    EMU_RRI(sltui, sltui)
#undef EMU_RRI

    // Logical immediates are zero-extended: imm in [0, 2^32).
#define EMU_RRU(name, op) \
    void name(Reg rd, Reg rs1, std::uint64_t imm) { emit(Op::op, rd, rs1, zero, uimm32(imm)); }
    EMU_RRU(andi, andi) EMU_RRU(ori, ori) EMU_RRU(xori, xori)
#undef EMU_RRU

    // rd = memory[base + offset]; memory[base + offset] = value
#define EMU_LOAD(name, op) \
    void name(Reg rd, Reg base, std::int64_t offset) { emit(Op::op, rd, base, zero, imm32(offset)); }
    EMU_LOAD(ld8, ld8) EMU_LOAD(ld16, ld16) EMU_LOAD(ld32, ld32) EMU_LOAD(ld64, ld64)
#undef EMU_LOAD
#define EMU_STORE(name, op) \
    void name(Reg value, Reg base, std::int64_t offset) { emit(Op::op, zero, base, value, imm32(offset)); }
    EMU_STORE(st8, st8) EMU_STORE(st16, st16) EMU_STORE(st32, st32) EMU_STORE(st64, st64)
#undef EMU_STORE

#define EMU_BRANCH(name, op) \
    void name(Reg rs1, Reg rs2, Label target) { emit_to(Op::op, zero, rs1, rs2, target, Fixup::relative); }
    EMU_BRANCH(beq, beq) EMU_BRANCH(bne, bne) EMU_BRANCH(blt, blt) EMU_BRANCH(bge, bge)
    EMU_BRANCH(bltu, bltu) EMU_BRANCH(bgeu, bgeu)
#undef EMU_BRANCH

    void jmp(Label target) { emit_to(Op::jmp, zero, zero, zero, target, Fixup::relative); }
    void call(Label target) { emit_to(Op::call, zero, zero, zero, target, Fixup::relative); }
    void callr(Reg target) { emit(Op::callr, zero, target, zero, 0); }
    void ret() { emit(Op::ret, zero, zero, zero, 0); }
    void push(Reg r) { emit(Op::push, zero, r, zero, 0); }
    void pop(Reg r) { emit(Op::pop, r, zero, zero, 0); }
    void hcall(HostCall c) { emit(Op::hcall, zero, zero, zero, static_cast<std::int32_t>(c)); }

    // ---- pseudo-instructions ----

    void mv(Reg rd, Reg rs) { addi(rd, rs, 0); }

    // rd = value: one instruction when it fits 32 signed bits, else lui + ori.
    void li(Reg rd, std::uint64_t value) {
        const auto as_signed = static_cast<std::int64_t>(value);
        if (as_signed >= std::numeric_limits<std::int32_t>::min() && as_signed <= std::numeric_limits<std::int32_t>::max()) {
            addi(rd, zero, as_signed);
            return;
        }
        emit(Op::lui, rd, zero, zero, uimm32(value >> 32));
        if ((value & 0xffffffffu) != 0) ori(rd, rd, value & 0xffffffffu);
    }

    // rd = the address of l (code or data).
    void la(Reg rd, Label l) { emit_to(Op::addi, rd, zero, zero, l, Fixup::absolute); }

    // rd = rs1 < rs2 ? rs1 : rs2, unsigned; rd must differ from rs2.
    void minu(Reg rd, Reg rs1, Reg rs2) {
        const Label done = label();
        if (rd != rs1) mv(rd, rs1);
        bltu(rd, rs2, done);
        mv(rd, rs2);
        bind(done);
    }

    [[nodiscard]] std::size_t instructions() const noexcept { return code_.size(); }

    // Lays code out at base and data after it (8-byte aligned), and resolves the labels.
    [[nodiscard]] Image link(std::uint64_t base) const {
        Image image;
        image.base = base;
        image.code_bytes = code_.size() * instruction_bytes;
        const std::size_t data_at = image.code_bytes;
        image.addresses.resize(places_.size());
        for (std::size_t i = 0; i < places_.size(); ++i) {
            const Place& p = places_[i];
            if (p.section == Section::none) throw std::logic_error("emu::Assembler: label " + std::to_string(i) + " never bound");
            image.addresses[i] = base + (p.section == Section::code ? 0 : data_at) + p.offset;
        }
        std::vector<std::uint64_t> code = code_;
        for (const Fixup& f : fixups_) {
            const std::uint64_t target = image.addresses[f.target.id];
            const std::uint64_t at = base + f.instruction * instruction_bytes;
            const std::int64_t value = f.kind == Fixup::relative ? static_cast<std::int64_t>(target - at)
                                                                 : static_cast<std::int64_t>(target);
            code[f.instruction] |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(imm32(value))) << 32;
        }
        image.bytes.resize(image.code_bytes + data_.size());
        std::memcpy(image.bytes.data(), code.data(), image.code_bytes);
        std::memcpy(image.bytes.data() + data_at, data_.data(), data_.size());
        return image;
    }

private:
    enum class Section : std::uint8_t { none, code, data };
    struct Place {
        Section section = Section::none;
        std::uint64_t offset = 0;
    };
    struct Fixup {
        enum Kind : std::uint8_t { relative, absolute };
        std::size_t instruction;
        Label target;
        Kind kind;
    };

    void set(Label l, Section s, std::uint64_t offset) {
        Place& p = places_.at(l.id);
        if (p.section != Section::none) throw std::logic_error("emu::Assembler: label bound twice");
        p = Place{s, offset};
    }

    void align_data(std::size_t align) {
        while (data_.size() % align != 0) data_.push_back(std::byte{0});
    }

    static std::int32_t imm32(std::int64_t v) {
        if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
            throw std::logic_error("emu::Assembler: immediate " + std::to_string(v) + " does not fit 32 signed bits");
        return static_cast<std::int32_t>(v);
    }

    static std::int32_t uimm32(std::uint64_t v) {
        if (v > std::numeric_limits<std::uint32_t>::max())
            throw std::logic_error("emu::Assembler: immediate " + std::to_string(v) + " does not fit 32 unsigned bits");
        return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    }

    void emit(Op op, Reg rd, Reg rs1, Reg rs2, std::int32_t imm) { code_.push_back(encode(op, rd, rs1, rs2, imm)); }

    void emit_to(Op op, Reg rd, Reg rs1, Reg rs2, Label target, Fixup::Kind kind) {
        fixups_.push_back(Fixup{code_.size(), target, kind});
        emit(op, rd, rs1, rs2, 0);
    }

    std::vector<std::uint64_t> code_;
    std::vector<std::byte> data_;
    std::vector<Place> places_;
    std::vector<Fixup> fixups_;
};

}  // namespace emu
