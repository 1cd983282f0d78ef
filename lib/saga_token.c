/* Saga tokens: a 4-round Feistel network over 64 bits keyed from the
 * coordinator's salt, so that a token names (slot, generation) without
 * being guessable or forgeable from another coordinator's; and the salt
 * itself.  Used by the requests (decode), the run loop (encode) and replay
 * (decode with a replayed salt's keys). */
#define _GNU_SOURCE /* getrandom */
#include "saga_impl.h"

#include <sys/random.h>

static uint32_t round_fn(uint32_t x, uint64_t k) {
  return (uint32_t)fe__mix64((uint64_t)x ^ k);
}

uint64_t fe__saga_tok_encode(const fe_saga_coord_t *c, uint64_t p) {
  uint32_t l = (uint32_t)(p >> 32), r = (uint32_t)p;
  for (int i = 0; i < 4; i++) {
    uint32_t t = l ^ round_fn(r, c->key[i]);
    l = r;
    r = t;
  }
  return (uint64_t)l << 32 | r;
}

uint64_t fe__saga_tok_decode_keys(const uint64_t key[4], uint64_t tok) {
  uint32_t l = (uint32_t)(tok >> 32), r = (uint32_t)tok;
  for (int i = 3; i >= 0; i--) {
    uint32_t t = r ^ round_fn(l, key[i]);
    r = l;
    l = t;
  }
  return (uint64_t)l << 32 | r;
}

uint64_t fe__saga_tok_decode(const fe_saga_coord_t *c, uint64_t tok) {
  return fe__saga_tok_decode_keys(c->key, tok);
}

void fe__saga_keys(uint64_t salt, uint64_t key[4]) {
  for (int i = 0; i < 4; i++)
    key[i] = fe__mix64(salt + (uint64_t)(i + 1) * UINT64_C(0x9E3779B97F4A7C15));
}

void fe__saga_set_salt(fe_saga_coord_t *c, uint64_t salt) {
  c->salt = salt;
  fe__saga_keys(salt, c->key);
}

uint64_t fe__saga_random_salt(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
    s = fe__mix64(fe_clock_realtime_ns() ^ (uint64_t)(uintptr_t)&s);
  return s ? s : 1;
}

