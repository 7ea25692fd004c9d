/* crt.c: the C runtime of the test firmware, shared by every core: start-up (.data, .bss,
 * stack painting), console output and exit through semihosting. There is no libc: the model
 * references no external symbol, and the firmware is built with
 * -fno-tree-loop-distribute-patterns so that GCC does not turn its loops into memcpy/memset calls.
 */
#include "firmware.h"

/* Defined by common/sections.ld. */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _stack_top[];

#define STACK_PAINT 0xC0FFEE55u

enum { SYS_WRITE0 = 0x04, SYS_EXIT_EXTENDED = 0x20 };
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

void fw_start(void)
{
    const uintptr_t paint_end = fw_stack_pointer(); /* no ABI here uses memory below sp */
    const uint32_t *src = _sidata;
    uint32_t *p;
    for (p = _sdata; p < _edata; ++p) {
        *p = *src++;
    }
    for (p = _sbss; p < _ebss; ++p) {
        *p = 0;
    }
    for (p = _ebss; (uintptr_t)p < paint_end; ++p) {
        *p = STACK_PAINT;
    }
    fw_exit(main());
}

uint32_t fw_stack_high_water(void)
{
    const uint32_t *p = _ebss;
    while (p < _stack_top && *p == STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)_stack_top - (uintptr_t)p);
}

void fw_puts(const char *s)
{
    fw_semihost(SYS_WRITE0, s);
}

void fw_put_hex(uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    char buf[17];
    int i;
    buf[digits] = '\0';
    for (i = digits - 1; i >= 0; --i) {
        buf[i] = hex[v & 0xfu];
        v >>= 4;
    }
    fw_puts(buf);
}

void fw_exit(int status)
{
    const uintptr_t block[2] = { ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)(uint32_t)status };
    for (;;) {
        fw_semihost(SYS_EXIT_EXTENDED, block);
    }
}
