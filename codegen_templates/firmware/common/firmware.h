/* firmware.h: what the bare-metal test firmware needs from a core (armv6m/, rv32i/) and what
 * the common code (crt.c, main.c) gives it. Freestanding C99: no libc, no multiply or divide,
 * so the firmware around the model stays as multiplier-free as the model itself.
 */
#ifndef PQC_FIRMWARE_H
#define PQC_FIRMWARE_H

#include <stdint.h>

/* ---- per core (armv6m/arch.c, rv32i/arch.c + start.S) ---- */
/* One semihosting call (ARM/RISC-V semihosting: operation number, parameter block). */
uintptr_t fw_semihost(uintptr_t op, const void *arg);
/* The caller's stack pointer (or lower): stack painting stops there. */
uintptr_t fw_stack_pointer(void);
/* Start the free-running counter fw_ticks reads. */
void fw_timer_start(void);
/* Elapsed ticks of the counter; pqc.backends.firmware knows each board's ticks per instruction. */
uint64_t fw_ticks(void);

/* ---- common (crt.c) ---- */
/* C entry after the core's reset code: copy .data, clear .bss, paint the stack, run main, exit. */
void fw_start(void) __attribute__((noreturn));
/* Print a NUL-terminated string on the host's stdout. */
void fw_puts(const char *s);
/* Print v as `digits` (1..16) hexadecimal digits: shifts only, no division. */
void fw_put_hex(uint64_t v, int digits);
/* Bytes of stack ever used since fw_start: the painted words that were overwritten. */
uint32_t fw_stack_high_water(void);
/* End the emulation with an exit status (semihosting SYS_EXIT_EXTENDED). */
void fw_exit(int status) __attribute__((noreturn));

int main(void);

#endif /* PQC_FIRMWARE_H */
