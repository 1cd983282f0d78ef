/* Private helpers shared by the library's modules.  Not installed. */
#ifndef FE_INTERNAL_H
#define FE_INTERNAL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/finevent.h"

#define FE_CACHELINE 64
/* Two lines: adjacent-line prefetch pulls pairs of lines on x86. */
#define FE_PAD 128

#define FE_LIKELY(x) __builtin_expect(!!(x), 1)
#define FE_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Stores code and a formatted message into diag (which may be NULL) and
 * returns code, so validation reads `return fe__diag(d, FE_EX, "...")`. */
int fe__diag(fe_diag_t *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* lib/dlq.c.  Attaches a journaled bus to q: on_purge(ev, user) runs
 * under q's lock for every entry purged for good (ev: the queue's copy of
 * the event), flush(user) once after the lock is dropped by a call that
 * purged.  on_purge NULL detaches.  Returns 0, or FE_ESTATE when another
 * bus is attached.  Any thread. */
int fe__dlq_attach(fe_dlq_t *q,
                   void (*on_purge)(const fe_event_t *ev, void *user),
                   void (*flush)(void *user), void *user);

/* fe_trading_check() on a type and an order not yet in a slot (the bus's
 * admission).  t and o non-NULL. */
int fe__trading_check_order(fe_trading_t *t, uint32_t type,
                            const fe_order_t *o);

/* lib/idem.c.  Starts loading, for writing, the control word and the
 * entry of the claim `token` (its completion is near: the bus's outcome
 * stage, a few events ahead).  A hint: any token, t NULL, never faults. */
void fe__idem_prefetch_token(const fe_idem_t *t, fe_idem_token_t token);

/* The splitmix64 finalizer: a bijection of 64-bit words that mixes every
 * input bit into every output bit (tokens, salts, jitter, table slots). */
static inline uint64_t fe__mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* splitmix64: the next value of the generator whose state is *s (any
 * start, 0 included; period 2^64).  Cheap, deterministic per seed and
 * well mixed: jitter, ids, test data; not for secrets. */
static inline uint64_t fe__splitmix64(uint64_t *s) {
  return fe__mix64(*s += UINT64_C(0x9E3779B97F4A7C15));
}

/* Allocates size bytes aligned to FE_PAD, rounding size up to a multiple
 * of it (aligned_alloc requires that), zeroed and so pre-faulted.  NULL
 * when out of memory.  Free with free(). */
static inline void *fe__zalloc_aligned(size_t size) {
  size = (size + FE_PAD - 1) / FE_PAD * FE_PAD;
  void *p = aligned_alloc(FE_PAD, size);
  if (p != NULL)
    memset(p, 0, size);
  return p;
}

#endif /* FE_INTERNAL_H */
