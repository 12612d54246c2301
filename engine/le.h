/*
 * le.h: little-endian integers in byte buffers, the one coding every
 * on-disk header of the engine uses (record and segment headers in
 * record.c, the snapshot header in snap.c, the manifest header in dir.c).
 * Byte by byte, so it is right on any host and any alignment; compilers
 * turn each into one load or store on little-endian machines. Static
 * inline: record checks run these on every read.
 *
 * Private to the engine.
 */
#ifndef CS_LE_H
#define CS_LE_H

#include <stdint.h>

static inline void le_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t le_get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static inline uint64_t le_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

#endif
