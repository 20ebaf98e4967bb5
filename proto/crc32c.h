/* proto/crc32c — CRC-32C (Castagnoli), as used by PROXY v2 and the spool records. */
#ifndef PROTO_CRC32C_H
#define PROTO_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* crc32c(0, p, n) is the CRC of p[0..n); pass a previous result to continue. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
#endif
