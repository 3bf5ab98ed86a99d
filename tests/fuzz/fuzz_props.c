/* libFuzzer target for props_parse, the decoder of VERSION files read from
 * disk (DESIGN.md §6.2). Besides not crashing, a successful parse must
 * respect every cap of props.h and give entries that props_set accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "props.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct props parsed;
static struct props copy;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[OZ_ERRMSG_SIZE];
    int rc;

    /* Inputs past the file cap only test the size check. */
    if (size > PROPS_MAX_FILE + 1) {
        size = PROPS_MAX_FILE + 1;
    }
    rc = props_parse(&parsed, (const char *)data, size, errmsg);
    if (rc != 0) {
        if (rc != OZ_ECORRUPT || parsed.n != 0 ||
            strncmp(errmsg, size > PROPS_MAX_FILE ? "file is " : "line ",
                    size > PROPS_MAX_FILE ? 8 : 5) != 0) {
            abort();
        }
        return 0;
    }
    if (parsed.n > PROPS_MAX_ENTRIES) {
        abort();
    }
    props_init(&copy);
    for (size_t i = 0; i < parsed.n; i++) {
        const char *k = parsed.e[i].key;
        const char *v = parsed.e[i].value;
        if (k[0] == '\0' || strlen(k) >= PROPS_MAX_KEY ||
            strlen(v) >= PROPS_MAX_VALUE) {
            abort();
        }
        if (props_get(&parsed, k) != v) { /* keys are unique */
            abort();
        }
        if (props_set(&copy, k, v) != 0) {
            abort();
        }
    }
    if (copy.n != parsed.n) {
        abort();
    }
    return 0;
}
