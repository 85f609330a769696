// zpage-emulator: the guest machine's instruction set, shared by the assembler and the CPU.
//
// A 64-bit load/store machine, little-endian, 32 registers (r0 reads as zero), byte-addressed
// memory with unaligned accesses allowed. Every instruction is 8 bytes:
//
//   byte 0: opcode   byte 1: rd   byte 2: rs1   byte 3: rs2   bytes 4-7: imm (signed 32 bits)
//
// Fixed-size instructions with whole-byte fields keep decoding to a few shifts, which matters more
// to an interpreter than code density. Loads zero-extend. ANDI, ORI and XORI take imm
// zero-extended (so that LUI + ORI builds any 64-bit constant); every other imm is sign-extended.
// Branch, JMP and CALL targets are pc-relative byte offsets from the instruction itself. CALL and
// CALLR push the return address on the stack (r31) and RET pops it, so every call and return is
// one memory access, like the rest.
#pragma once

#include <cstdint>

namespace emu {

enum class Op : std::uint8_t {
    // rd = rs1 op rs2 (shift amounts are taken mod 64; DIVU and REMU by zero trap)
    add, sub, mul, divu, remu, and_, or_, xor_, shl, shr, sar, sltu, slt,
    // rd = rs1 op imm
    addi, muli, andi, ori, xori, shli, shri, sari, sltui,
    lui,  // rd = zero-extended imm << 32
    // rd = memory[rs1 + imm], zero-extended
    ld8, ld16, ld32, ld64,
    // memory[rs1 + imm] = rs2
    st8, st16, st32, st64,
    // if (rs1 op rs2) pc += imm
    beq, bne, blt, bge, bltu, bgeu,
    jmp,    // pc += imm
    call,   // push pc + 8; pc += imm
    callr,  // push pc + 8; pc = rs1
    ret,    // pc = pop
    push,   // sp -= 8; memory[sp] = rs1
    pop,    // rd = memory[sp]; sp += 8
    hcall,  // host call number imm: arguments in a0..a2, result in a0
    count   // not an opcode
};

inline constexpr unsigned register_count = 32;
inline constexpr unsigned instruction_bytes = 8;

// Register names of the calling convention: arguments and the result in a0..a5, t* free for any
// function to clobber, s* preserved across calls (a function that uses one saves it), gp and tp
// set once by the program's entry and left alone (global values: the workload keeps the boot
// block's address and its seed there), sp the stack pointer.
enum Reg : std::uint8_t {
    zero = 0,
    a0, a1, a2, a3, a4, a5,
    t0, t1, t2, t3, t4, t5, t6, t7, t8, t9,
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11,
    gp, tp, sp,
};
static_assert(sp == register_count - 1, "sp must be the last register");

// Host calls (hcall imm). The guest hands strings over as (address, length) in its own memory.
enum class HostCall : std::uint8_t {
    halt = 0,      // a0: 0 when the program finished
    phase = 1,     // a0, a1: the phase's name
    progress = 2,  // a0 of a1 done in this phase
    fail = 3,      // a0, a1: what failed; a2: a value that says where (a record's id, an index)
    count
};

[[nodiscard]] constexpr std::uint64_t encode(Op op, unsigned rd, unsigned rs1, unsigned rs2, std::int32_t imm) noexcept {
    return static_cast<std::uint64_t>(op) | static_cast<std::uint64_t>(rd) << 8 |
           static_cast<std::uint64_t>(rs1) << 16 | static_cast<std::uint64_t>(rs2) << 24 |
           static_cast<std::uint64_t>(static_cast<std::uint32_t>(imm)) << 32;
}

}  // namespace emu
