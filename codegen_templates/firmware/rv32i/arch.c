/* arch.c: the RV32I core support of the test firmware written in C: the instruction counter
 * (minstret: QEMU counts it from -icount, so it is exact there) and the trap report. The core
 * has no M extension, so a multiply or divide instruction in the model traps here as an
 * illegal instruction instead of being executed. Needs Zicsr for the CSR reads (start.S and
 * this file only; the model itself is built for plain rv32i).
 */
#include "firmware.h"

#define MCAUSE_ILLEGAL_INSTRUCTION 2u

void fw_trap(uint32_t mcause, uint32_t mepc) __attribute__((noreturn));

void fw_timer_start(void)
{
}

uint64_t fw_ticks(void)
{
    uint32_t hi, lo, again;
    do {
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi));
        __asm__ volatile("csrr %0, minstret" : "=r"(lo));
        __asm__ volatile("csrr %0, minstreth" : "=r"(again));
    } while (hi != again);
    return ((uint64_t)hi << 32) | lo;
}

void fw_trap(uint32_t mcause, uint32_t mepc)
{
    fw_puts(mcause == MCAUSE_ILLEGAL_INSTRUCTION
            ? "error: illegal instruction (not RV32I: a multiply or divide?)"
            : "error: trap");
    fw_puts(" mcause ");
    fw_put_hex(mcause, 8);
    fw_puts(" mepc ");
    fw_put_hex(mepc, 8);
    fw_puts("\n");
    fw_exit(3);
}
