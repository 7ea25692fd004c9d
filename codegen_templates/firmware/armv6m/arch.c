/* arch.c: the ARMv6-M core support of the test firmware (Cortex-M0; runs unchanged on the
 * Cortex-M3 of mps2-an385): the vector table, semihosting through `bkpt 0xAB`, and SysTick as
 * the tick counter (clocked by the core clock; under QEMU -icount its period is a fixed number
 * of instructions, see pqc.backends.firmware.BOARDS). A fault prints its name and exits with
 * status 3 instead of hanging until the host's time limit.
 */
#include "firmware.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE_TICKINT_CORECLK 0x7u
#define SYST_MAX 0x00FFFFFFu

extern uint32_t _stack_top[];

static volatile uint32_t systick_wraps;

uintptr_t fw_semihost(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

uintptr_t fw_stack_pointer(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

void fw_timer_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0;
    systick_wraps = 0;
    SYST_CSR = SYST_CSR_ENABLE_TICKINT_CORECLK;
    while (SYST_CVR == 0) {
        /* the first tick loads the reload value; reading before it would look like a wrap */
    }
}

uint64_t fw_ticks(void)
{
    uint32_t wraps, count;
    do {
        wraps = systick_wraps;
        count = SYST_CVR;
    } while (wraps != systick_wraps);
    return ((uint64_t)wraps << 24) + (SYST_MAX - count);
}

static void systick_handler(void)
{
    ++systick_wraps;
}

static void fault(const char *what)
{
    fw_puts("error: ");
    fw_puts(what);
    fw_puts("\n");
    fw_exit(3);
}

static void nmi_handler(void) { fault("NMI"); }
static void hardfault_handler(void) { fault("HardFault (bad address, unaligned access or undefined instruction)"); }
static void other_handler(void) { fault("unexpected exception"); }

/* The reset handler; named like every core's entry point (ENTRY in common/sections.ld). */
void _start(void) __attribute__((noreturn));

void _start(void)
{
    fw_start();
}

typedef void (*vector_t)(void);

/* Cortex-M vector table: initial stack pointer, then the exception handlers (ARMv6-M: 16
 * entries; external interrupts stay disabled). */
__attribute__((section(".vectors"), used)) static const vector_t vectors[16] = {
    (vector_t)(uintptr_t)_stack_top, _start, nmi_handler, hardfault_handler,
    other_handler, other_handler, other_handler, other_handler, other_handler, other_handler,
    other_handler, other_handler, other_handler, other_handler, other_handler, systick_handler,
};
