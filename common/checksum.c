#include "checksum.h"

#include <pthread.h>
#include <stdlib.h>

#include <openssl/evp.h>

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = table[t - 1][i];
            table[t][i] = (prev >> 8) ^ table[0][prev & 0xff];
        }
    }
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    pthread_once(&table_once, build_table);
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
              table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
              table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    }
    return ~crc;
}

/* ---- SHA-256 (OpenSSL EVP; no other file calls OpenSSL) ---- */

struct oz_sha256
{
    EVP_MD_CTX *ctx;
};

void oz_sha256(const void *buf, size_t len, uint8_t out[OZ_SHA256_LEN])
{
    unsigned int n = OZ_SHA256_LEN;

    if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1) {
        /* Only an allocation failure inside OpenSSL gets here. */
        abort();
    }
}

struct oz_sha256 *oz_sha256_new(void)
{
    struct oz_sha256 *h = malloc(sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void oz_sha256_update(struct oz_sha256 *h, const void *buf, size_t len)
{
    if (len > 0 && EVP_DigestUpdate(h->ctx, buf, len) != 1) {
        abort();
    }
}

void oz_sha256_final(struct oz_sha256 *h, uint8_t out[OZ_SHA256_LEN])
{
    unsigned int n = OZ_SHA256_LEN;

    if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1) {
        abort();
    }
    oz_sha256_free(h);
}

void oz_sha256_free(struct oz_sha256 *h)
{
    if (h != NULL) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
}

void oz_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xf];
    }
    out[2 * n] = '\0';
}
