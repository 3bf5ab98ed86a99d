/* checksum: CRC32C (Castagnoli), the per-chunk checksum of the data path
 * (DESIGN.md §7). Software slicing-by-8; thread-safe. */
#ifndef OZONE_CHECKSUM_H
#define OZONE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over buf; start with crc = 0. crc32c("123456789") is
 * 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
