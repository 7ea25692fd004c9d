/* main.c: the test firmware's application. Runs the model on the input table the host
 * generated (fw_model.h, fw_inputs.c) and prints, for pqc.backends.firmware to parse:
 *
 *   pqc-firmware <samples> <output size>
 *   ticks <hex>            counter ticks of one <prefix>_run call        } once per sample
 *   y <hex> <hex> ...      its outputs, each as a 32-bit two's complement }
 *   adler32 <hex>          Adler-32 of all output bytes as stored in memory
 *   stack <hex>            stack high-water mark in bytes (painted words overwritten)
 *
 * All numbers are hexadecimal, so printing needs shifts only. Exit status 0, or 1 if the
 * model returned an error.
 */
#include "firmware.h"
#include "fw_model.h"

#define ADLER_MOD 65521u

static fw_output_t output[FW_OUTPUT_SIZE];

int main(void)
{
    const fw_input_t *input = fw_inputs;
    uint32_t a = 1, b = 0;
    uint32_t s, i;
    fw_puts("pqc-firmware ");
    fw_put_hex(FW_SAMPLES, 8);
    fw_puts(" ");
    fw_put_hex(FW_OUTPUT_SIZE, 8);
    fw_puts("\n");
    fw_timer_start();
    for (s = 0; s < FW_SAMPLES; ++s, input += FW_INPUT_SIZE) {
        const uint64_t t0 = fw_ticks();
        const int status = FW_RUN(input, output);
        const uint64_t t1 = fw_ticks();
        const uint8_t *bytes = (const uint8_t *)output;
        if (status != 0) {
            fw_puts("error: the model returned a non-zero status\n");
            return 1;
        }
        fw_puts("ticks ");
        fw_put_hex(t1 - t0, 16);
        fw_puts("\ny");
        for (i = 0; i < FW_OUTPUT_SIZE; ++i) {
            fw_puts(" ");
            fw_put_hex((uint32_t)(int32_t)output[i], 8);
        }
        fw_puts("\n");
        for (i = 0; i < sizeof output; ++i) {
            a += bytes[i];
            a = a >= ADLER_MOD ? a - ADLER_MOD : a;
            b += a;
            b = b >= ADLER_MOD ? b - ADLER_MOD : b;
        }
    }
    fw_puts("adler32 ");
    fw_put_hex((b << 16) | a, 8);
    fw_puts("\nstack ");
    fw_put_hex(fw_stack_high_water(), 8);
    fw_puts("\n");
    return 0;
}
