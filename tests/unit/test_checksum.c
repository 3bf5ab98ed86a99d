/* CRC32C: known vectors (RFC 3720 appendix B.4 and the "123456789" check
 * value), incremental computation equals one-shot at every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "checksum.h"

static void test_vectors(void **state)
{
    static const struct
    {
        size_t len;
        int fill; /* -1: "123456789", -2: ascending, -3: descending */
        uint32_t crc;
    } cases[] = {
        {0, 0, 0x00000000u},     {9, -1, 0xE3069283u},  {32, 0x00, 0x8A9136AAu},
        {32, 0xFF, 0x62A8AB43u}, {32, -2, 0x46DD794Eu}, {32, -3, 0x113FDB5Cu},
    };
    unsigned char buf[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].fill == -1) {
            memcpy(buf, "123456789", 9);
        } else {
            for (size_t k = 0; k < cases[i].len; k++) {
                buf[k] = cases[i].fill == -2   ? (unsigned char)k
                         : cases[i].fill == -3 ? (unsigned char)(31 - k)
                                               : (unsigned char)cases[i].fill;
            }
        }
        uint32_t got = crc32c(0, buf, cases[i].len);
        if (got != cases[i].crc) {
            fail_msg("case %zu: crc32c = 0x%08X, want 0x%08X", i, got,
                     cases[i].crc);
        }
    }
}

static void test_incremental(void **state)
{
    unsigned char buf[1000];
    uint32_t whole;

    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)(i * 7 + 3);
    }
    whole = crc32c(0, buf, sizeof(buf));
    for (size_t split = 0; split <= sizeof(buf); split += 13) {
        uint32_t c = crc32c(0, buf, split);
        c = crc32c(c, buf + split, sizeof(buf) - split);
        if (c != whole) {
            fail_msg("split at %zu: 0x%08X != 0x%08X", split, c, whole);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
