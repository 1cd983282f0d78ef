/*
 * A fixed-capacity, grow-only, lock-free table from 64-bit keys (account
 * numbers) to one 64-bit value word each, shared by the throttles (a
 * bucket's tat) and the trading states (an account's state).  Private.
 *
 * Open addressing over a power-of-two array of at least 2 * max slots (load
 * at most 1/2, so probes stay short), XXH3 of the key, linear probing; an
 * empty slot ends the probe for an absent key, and a probe never visits a
 * slot twice.  Key word 0 means "empty", so key 0 lives in a slot of its
 * own outside the array: one predictable branch, every key usable.
 *
 * Keys are never deleted, and a new key always takes the first empty slot
 * on its probe path, so a key found at a slot stays there, and a probe that
 * meets an empty slot proves the key absent at that moment.  Keys are
 * claimed with a relaxed CAS: the value words are the caller's, who orders
 * them as it needs; a key word only ever goes from 0 to its key.
 *
 * max.  `count` counts slots won (incremented after the claiming CAS, so
 * it counts distinct keys exactly).  A new key is refused when its probe
 * meets an empty slot while count >= max and the slot is still empty when
 * looked at again after reading count: at that moment the key was absent
 * and the table full (count only grows), so "full" is never spurious.
 * Reserving a place before claiming the slot would not do: two threads
 * inserting the same key would both reserve, and the loser's reservation
 * would refuse a third thread's key.
 * The price: threads that pass the check at once with distinct new keys can
 * each complete, so the table may end up to (those threads - 1) keys over
 * max; never over the slots, which the probe bounds.  Single-threaded the
 * limit is exact.  Memory is fixed at init either way.
 */
#ifndef FE_KEYTAB_H
#define FE_KEYTAB_H

#include "internal.h"

typedef struct fe__keytab_slot {
  uint64_t key; /* 0 empty; set once by CAS */
  uint64_t val;
} fe__keytab_slot_t;

typedef struct fe__keytab {
  /* Read-only after init: read by every lookup. */
  fe__keytab_slot_t *slots;
  uint64_t mask; /* slots - 1 */
  uint64_t max;  /* keys it accepts */
  /* Written by inserts only (rare): the key count, key 0's slot. */
  _Alignas(FE_PAD) uint64_t count;
  fe__keytab_slot_t zero; /* key word: 0 absent, 1 present */
} fe__keytab_t;

/* Allocates (zeroed, pre-faulted) room for max keys.  Returns 0 or
 * FE_ENOMEM (nothing allocated). */
int fe__keytab_init(fe__keytab_t *kt, uint64_t max);
void fe__keytab_free(fe__keytab_t *kt);

/* The value word of key, or NULL when key has no entry.  Lock-free. */
uint64_t *fe__keytab_find(const fe__keytab_t *kt, uint64_t key);

/* The value word of key, making its entry (value 0) if new; NULL when key
 * is new and the table is full.  Lock-free. */
uint64_t *fe__keytab_get(fe__keytab_t *kt, uint64_t key);

/* Keys held (see the top for the bound). */
static inline uint64_t fe__keytab_count(const fe__keytab_t *kt) {
  return __atomic_load_n(&kt->count, __ATOMIC_RELAXED);
}

/* Forgets every key and value.  No lookup may run concurrently. */
void fe__keytab_clear(fe__keytab_t *kt);

#endif /* FE_KEYTAB_H */
