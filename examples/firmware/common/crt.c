/* crt.c: the C runtime of the test firmware, shared by every core: start-up (.data, .bss,
 * stack painting), console output and exit through semihosting, and the four memory functions
 * a freestanding C compiler may call on its own (GCC documents memcpy, memmove, memset, memcmp).
 * Built with -fno-tree-loop-distribute-patterns so those functions do not call themselves.
 */
#include "firmware.h"

#include <stddef.h>

/* Defined by common/sections.ld. */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _stack_top[];

#define STACK_PAINT 0xC0FFEE55u
/* Bytes below fw_start's own locals left unpainted: its frame and spills live there. */
#define PAINT_MARGIN_BYTES 256u

enum { SYS_WRITE0 = 0x04, SYS_EXIT_EXTENDED = 0x20 };
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

void fw_start(void)
{
    volatile uint32_t here = 0;
    const uintptr_t paint_end = (uintptr_t)&here - PAINT_MARGIN_BYTES;
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
    if (digits > 16) {
        digits = 16;
    }
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

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) {
            *d++ = *s++;
        }
    } else {
        while (n--) {
            d[n] = s[n];
        }
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--) {
        *d++ = (unsigned char)c;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; --n, ++x, ++y) {
        if (*x != *y) {
            return *x < *y ? -1 : 1;
        }
    }
    return 0;
}
