/* main.c: the test firmware's application. Runs the model on the input table the host
 * generated (fw_model.h, fw_inputs.c: the sample tables, the output buffers) and prints, for
 * pqc.backends.firmware to parse:
 *
 *   pqc-firmware <samples> <output size>
 *   ticks <hex>            counter ticks of one <prefix>_run call        } once per sample
 *   y <hex> <hex> ...      its outputs, each as a 32-bit two's complement }
 *                          (several outputs: all of them, in graph order)
 *   adler32 <hex>          Adler-32 of all output bytes as stored in memory (per sample, each
 *                          output buffer in graph order)
 *   stack <hex>            stack high-water mark in bytes (painted words overwritten)
 *
 * All numbers are hexadecimal, so printing needs shifts only. Exit status 0, or 1 if the
 * model returned an error.
 */
#include "firmware.h"
#include "fw_model.h"

#define ADLER_MOD 65521u

int main(void)
{
    FW_DECLARE_INPUTS
    uint32_t a = 1, b = 0;
    uint32_t s, i, k;
    fw_puts("pqc-firmware ");
    fw_put_hex(FW_SAMPLES, 8);
    fw_puts(" ");
    fw_put_hex(FW_OUTPUT_SIZE, 8);
    fw_puts("\n");
    fw_timer_start();
    for (s = 0; s < FW_SAMPLES; ++s, FW_NEXT_SAMPLE()) {
        const uint64_t t0 = fw_ticks();
        const int status = FW_RUN();
        const uint64_t t1 = fw_ticks();
        if (status != 0) {
            fw_puts("error: the model returned a non-zero status\n");
            return 1;
        }
        fw_puts("ticks ");
        fw_put_hex(t1 - t0, 16);
        fw_puts("\ny");
        fw_put_outputs();
        fw_puts("\n");
        for (k = 0; k < FW_NUM_OUTPUTS; ++k) {
            for (i = 0; i < fw_outputs[k].bytes; ++i) {
                a += fw_outputs[k].data[i];
                a = a >= ADLER_MOD ? a - ADLER_MOD : a;
                b += a;
                b = b >= ADLER_MOD ? b - ADLER_MOD : b;
            }
        }
    }
    fw_puts("adler32 ");
    fw_put_hex((b << 16) | a, 8);
    fw_puts("\nstack ");
    fw_put_hex(fw_stack_high_water(), 8);
    fw_puts("\n");
    return 0;
}
