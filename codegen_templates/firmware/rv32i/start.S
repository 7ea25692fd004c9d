/* start.S: the RV32I core support that must be assembly: the entry point (stack pointer,
 * trap vector, then fw_start in C), the trap entry, reading sp, and the semihosting call,
 * whose three instructions must be uncompressed and must not straddle a page (.balign 16).
 */
    .option norvc
    .section .text.start, "ax"
    .globl _start
_start:
    la      sp, _stack_top
    la      t0, trap_entry
    csrw    mtvec, t0
    j       fw_start

    .text
    .balign 4
trap_entry:
    csrr    a0, mcause
    csrr    a1, mepc
    j       fw_trap

    .globl fw_stack_pointer
fw_stack_pointer:
    mv      a0, sp
    ret

    .balign 16
    .globl fw_semihost
fw_semihost:
    slli    x0, x0, 0x1f
    ebreak
    srai    x0, x0, 7
    ret
