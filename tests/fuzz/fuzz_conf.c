/* libFuzzer target for conf's ozone-site.xml decoder (CONVENTIONS.md
 * "Tests": every decoder of outside input). Loads the input as a file, then
 * reads every key back through the typed getters and the unit parsers, so
 * that values the XML produced reach all of them. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "err.h"

/* conf caps its input at 4 MiB; a little more checks the cap itself. */
#define FUZZ_CONF_MAX_INPUT (4 * 1024 * 1024 + 16)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void ignore_warning(const char *key)
{
    (void)key;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    struct conf *c;
    char errmsg[OZ_ERRMSG_SIZE];
    static const char *const known[] = {"fuzz.", "other*", NULL};
    size_t i;

    if (n > FUZZ_CONF_MAX_INPUT) {
        return 0;
    }
    c = conf_new();
    if (c == NULL) {
        return 0;
    }
    if (conf_load_buffer(c, (const char *)d, n, "fuzz.xml", errmsg) == 0) {
        for (i = 0; i < conf_count(c); i++) {
            const char *key = conf_key_at(c, i);
            long long v;
            bool b;
            (void)conf_get(c, key);
            (void)conf_get_int(c, key, 0, &v, errmsg);
            (void)conf_get_bool(c, key, false, &b, errmsg);
            (void)conf_get_duration_ms(c, key, "0", &v, errmsg);
            (void)conf_get_size(c, key, "0", &v, errmsg);
        }
        conf_warn_unknown(c, known, ignore_warning);
    }
    conf_free(c);
    return 0;
}
