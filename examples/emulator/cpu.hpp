// zpage-emulator: the interpreter of the guest machine (isa.hpp).
//
// Guest address a is host address ram + a: the guest's memory is the compressed region itself, so
// every instruction fetch, load and store the guest makes is a plain access to the region, and a
// page that lives compressed faults and comes back as it would for any program. An instruction
// makes at most one data access, of at most 8 bytes, after its fetch. Every access is
// bounds-checked: addresses below `low_guard` (the null page) or past the end of guest RAM stop
// the machine with a trap that says which access it was.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "isa.hpp"

namespace emu {

// Why run() returned.
struct Stop {
    enum class Why : std::uint8_t { halted, trapped, limit };
    Why why = Why::halted;
    std::string what;  // a trap's description: which access or instruction, at which pc
};

// What a host call handler tells the machine.
enum class Resume : std::uint8_t { run, stop };

// One guest CPU; used by one thread at a time.
class Cpu {
public:
    // ram must stay valid while the Cpu runs; guest addresses [low_guard, ram_bytes) are valid.
    // ram_bytes must exceed low_guard by at least a page.
    Cpu(std::byte* ram, std::uint64_t ram_bytes, std::uint64_t low_guard) noexcept
        : bus_{ram, low_guard, ram_bytes - low_guard} {}

    [[nodiscard]] std::uint64_t& reg(Reg r) noexcept { return x_[r]; }
    [[nodiscard]] std::uint64_t reg(Reg r) const noexcept { return x_[r]; }
    [[nodiscard]] std::uint64_t pc() const noexcept { return pc_; }
    void set_pc(std::uint64_t pc) noexcept { pc_ = pc; }
    [[nodiscard]] std::uint64_t retired() const noexcept { return retired_; }

    // The guest's bytes [address, address + length), for host calls; nullopt when any of them
    // is outside guest RAM or length is over max_length.
    [[nodiscard]] std::optional<std::string> string_at(std::uint64_t address, std::uint64_t length,
                                                       std::uint64_t max_length = 256) const {
        if (length > max_length || !bus_.valid(address, length)) return std::nullopt;
        return std::string(reinterpret_cast<const char*>(bus_.ram + address), static_cast<std::size_t>(length));
    }

    // Runs until the guest halts (a host call returns Resume::stop), traps, or has retired
    // max_instructions more instructions. host(Cpu&, HostCall) serves the guest's host calls.
    template <class HostCalls>
    Stop run(HostCalls&& host, std::uint64_t max_instructions) {
        // The registers, pc and count live in locals while the guest runs: every store to guest
        // memory is through a std::byte*, which may alias any member, so members would be
        // reloaded after each store (a third of the interpreter's speed).
        const Bus bus = bus_;
        std::uint64_t x[register_count];
        std::memcpy(x, x_, sizeof x);
        std::uint64_t pc = pc_;
        std::uint64_t retired = retired_;
        const std::uint64_t end = retired + max_instructions;
        const auto save = [&] {
            std::memcpy(x_, x, sizeof x);
            pc_ = pc;
            retired_ = retired;
        };
        const auto trap = [&](const char* format, std::uint64_t value) {
            save();
            return this->trap(format, value);
        };
        const auto access_trap = [&](const char* what, unsigned bytes, std::uint64_t address) {
            save();
            return this->access_trap(what, bytes, address);
        };
        while (retired < end) {
            if ((pc & (instruction_bytes - 1)) != 0 || !bus.valid(pc, instruction_bytes))
                return trap("instruction fetch at 0x%llx outside guest RAM or misaligned", pc);
            std::uint64_t w;
            std::memcpy(&w, bus.ram + pc, sizeof w);
            // Register fields hold 0..31: anything else is not an instruction.
            if ((w & 0xe0e0e000u) != 0) return trap("bad register field in instruction 0x%016llx", w);
            const auto op = static_cast<Op>(w & 0xff);
            const unsigned rd = static_cast<unsigned>(w >> 8) & 31;
            const std::uint64_t r1 = x[(w >> 16) & 31];
            const std::uint64_t r2 = x[(w >> 24) & 31];
            const std::uint64_t uimm = w >> 32;
            const auto simm = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(uimm)));
            std::uint64_t next = pc + instruction_bytes;
            switch (op) {
                case Op::add: x[rd] = r1 + r2; break;
                case Op::sub: x[rd] = r1 - r2; break;
                case Op::mul: x[rd] = r1 * r2; break;
                case Op::divu:
                    if (r2 == 0) return trap("division by zero at pc 0x%llx", pc);
                    x[rd] = r1 / r2;
                    break;
                case Op::remu:
                    if (r2 == 0) return trap("division by zero at pc 0x%llx", pc);
                    x[rd] = r1 % r2;
                    break;
                case Op::and_: x[rd] = r1 & r2; break;
                case Op::or_: x[rd] = r1 | r2; break;
                case Op::xor_: x[rd] = r1 ^ r2; break;
                case Op::shl: x[rd] = r1 << (r2 & 63); break;
                case Op::shr: x[rd] = r1 >> (r2 & 63); break;
                case Op::sar: x[rd] = static_cast<std::uint64_t>(static_cast<std::int64_t>(r1) >> (r2 & 63)); break;
                case Op::sltu: x[rd] = r1 < r2 ? 1 : 0; break;
                case Op::slt: x[rd] = static_cast<std::int64_t>(r1) < static_cast<std::int64_t>(r2) ? 1 : 0; break;
                case Op::addi: x[rd] = r1 + simm; break;
                case Op::muli: x[rd] = r1 * simm; break;
                case Op::andi: x[rd] = r1 & uimm; break;
                case Op::ori: x[rd] = r1 | uimm; break;
                case Op::xori: x[rd] = r1 ^ uimm; break;
                case Op::shli: x[rd] = r1 << (uimm & 63); break;
                case Op::shri: x[rd] = r1 >> (uimm & 63); break;
                case Op::sari: x[rd] = static_cast<std::uint64_t>(static_cast<std::int64_t>(r1) >> (uimm & 63)); break;
                case Op::sltui: x[rd] = r1 < simm ? 1 : 0; break;
                case Op::lui: x[rd] = uimm << 32; break;
                case Op::ld8: if (!bus.load<std::uint8_t>(x[rd], r1 + simm)) return access_trap("load", 1, r1 + simm); break;
                case Op::ld16: if (!bus.load<std::uint16_t>(x[rd], r1 + simm)) return access_trap("load", 2, r1 + simm); break;
                case Op::ld32: if (!bus.load<std::uint32_t>(x[rd], r1 + simm)) return access_trap("load", 4, r1 + simm); break;
                case Op::ld64: if (!bus.load<std::uint64_t>(x[rd], r1 + simm)) return access_trap("load", 8, r1 + simm); break;
                case Op::st8: if (!bus.store<std::uint8_t>(r1 + simm, r2)) return access_trap("store", 1, r1 + simm); break;
                case Op::st16: if (!bus.store<std::uint16_t>(r1 + simm, r2)) return access_trap("store", 2, r1 + simm); break;
                case Op::st32: if (!bus.store<std::uint32_t>(r1 + simm, r2)) return access_trap("store", 4, r1 + simm); break;
                case Op::st64: if (!bus.store<std::uint64_t>(r1 + simm, r2)) return access_trap("store", 8, r1 + simm); break;
                case Op::beq: if (r1 == r2) next = pc + simm; break;
                case Op::bne: if (r1 != r2) next = pc + simm; break;
                case Op::blt: if (static_cast<std::int64_t>(r1) < static_cast<std::int64_t>(r2)) next = pc + simm; break;
                case Op::bge: if (static_cast<std::int64_t>(r1) >= static_cast<std::int64_t>(r2)) next = pc + simm; break;
                case Op::bltu: if (r1 < r2) next = pc + simm; break;
                case Op::bgeu: if (r1 >= r2) next = pc + simm; break;
                case Op::jmp: next = pc + simm; break;
                case Op::call:
                case Op::callr: {
                    const std::uint64_t at = x[sp] - 8;
                    if (!bus.store<std::uint64_t>(at, next)) return access_trap("call's push", 8, at);
                    x[sp] = at;
                    next = op == Op::call ? pc + simm : r1;
                    break;
                }
                case Op::ret:
                    if (!bus.load<std::uint64_t>(next, x[sp])) return access_trap("return's pop", 8, x[sp]);
                    x[sp] += 8;
                    break;
                case Op::push: {
                    const std::uint64_t at = x[sp] - 8;
                    if (!bus.store<std::uint64_t>(at, r1)) return access_trap("push", 8, at);
                    x[sp] = at;
                    break;
                }
                case Op::pop: {
                    std::uint64_t v = 0;
                    if (!bus.load<std::uint64_t>(v, x[sp])) return access_trap("pop", 8, x[sp]);
                    x[sp] += 8;
                    x[rd] = v;
                    break;
                }
                case Op::hcall: {
                    if (uimm >= static_cast<std::uint64_t>(HostCall::count)) return trap("unknown host call at pc 0x%llx", pc);
                    pc = next;  // a host call that stops the machine leaves it after the call
                    ++retired;
                    save();
                    const Resume resume = host(*this, static_cast<HostCall>(uimm));
                    std::memcpy(x, x_, sizeof x);
                    x[zero] = 0;
                    if (resume == Resume::stop) return Stop{Stop::Why::halted, {}};
                    continue;
                }
                default: return trap("unknown opcode in instruction 0x%016llx", w);
            }
            x[zero] = 0;
            pc = next;
            ++retired;
        }
        save();
        return Stop{Stop::Why::limit, {}};
    }

private:
    // Guest memory: valid addresses are [low, low + span).
    struct Bus {
        std::byte* ram;
        std::uint64_t low;
        std::uint64_t span;

        [[nodiscard]] bool valid(std::uint64_t address, std::uint64_t length) const noexcept {
            return address - low < span && span - (address - low) >= length;  // no overflow either way
        }

        // to = the T at address, zero-extended
        template <class T>
        [[nodiscard]] bool load(std::uint64_t& to, std::uint64_t address) const noexcept {
            if (!valid(address, sizeof(T))) return false;
            T value;
            std::memcpy(&value, ram + address, sizeof(T));
            to = value;
            return true;
        }

        template <class T>
        [[nodiscard]] bool store(std::uint64_t address, std::uint64_t value) const noexcept {
            if (!valid(address, sizeof(T))) return false;
            const auto narrow = static_cast<T>(value);
            std::memcpy(ram + address, &narrow, sizeof(T));
            return true;
        }
    };

    Stop trap(const char* format, std::uint64_t value) const {
        char text[160];
        std::snprintf(text, sizeof text, format, static_cast<unsigned long long>(value));
        return Stop{Stop::Why::trapped, text};
    }

    Stop access_trap(const char* what, unsigned bytes, std::uint64_t address) const {
        char text[160];
        std::snprintf(text, sizeof text, "%s of %u bytes at 0x%llx, outside guest RAM, at pc 0x%llx", what, bytes,
                      static_cast<unsigned long long>(address), static_cast<unsigned long long>(pc_));
        return Stop{Stop::Why::trapped, text};
    }

    Bus bus_;
    std::uint64_t x_[register_count]{};
    std::uint64_t pc_ = 0;
    std::uint64_t retired_ = 0;
};

}  // namespace emu
