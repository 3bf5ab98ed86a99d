/* checksum: CRC32C (Castagnoli), the per-chunk checksum of the data path
 * (DESIGN.md §7), software slicing-by-8; and SHA-256 (HDDS features
 * CHUNK_CHECKSUM_SHA256 and CONTAINER_CHECKSUM, DESIGN.md §6.1), the one
 * adapter around OpenSSL's libcrypto. Thread-safe. */
#ifndef OZONE_CHECKSUM_H
#define OZONE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over buf; start with crc = 0. crc32c("123456789") is
 * 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#define OZ_SHA256_LEN 32
#define OZ_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

/* One-shot SHA-256 of buf into out. sha256("abc") starts ba7816bf. */
void oz_sha256(const void *buf, size_t len, uint8_t out[OZ_SHA256_LEN]);

/* Incremental SHA-256: new (NULL on out of memory), update any number of
 * times, final writes the digest and frees the state. oz_sha256_free
 * frees a state that will not be finalized; NULL is fine. */
struct oz_sha256;
struct oz_sha256 *oz_sha256_new(void);
void oz_sha256_update(struct oz_sha256 *h, const void *buf, size_t len);
void oz_sha256_final(struct oz_sha256 *h, uint8_t out[OZ_SHA256_LEN]);
void oz_sha256_free(struct oz_sha256 *h);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void oz_hex(const uint8_t *b, size_t n, char *out);

#endif
