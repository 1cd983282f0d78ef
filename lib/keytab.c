/* The shared account table: see keytab.h. */
#include "keytab.h"

#include "sync.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

int fe__keytab_init(fe__keytab_t *kt, uint64_t max) {
  uint64_t n = 2;
  while (n < 2 * max)
    n <<= 1;
  memset(kt, 0, sizeof *kt);
  kt->slots = fe__zalloc_aligned((size_t)n * sizeof *kt->slots);
  if (kt->slots == NULL)
    return FE_ENOMEM;
  kt->mask = n - 1;
  kt->max = max;
  return 0;
}

void fe__keytab_free(fe__keytab_t *kt) {
  free(kt->slots);
  kt->slots = NULL;
}

static inline uint64_t home(const fe__keytab_t *kt, uint64_t key) {
  return XXH3_64bits(&key, sizeof key) & kt->mask;
}

uint64_t *fe__keytab_find(const fe__keytab_t *kt, uint64_t key) {
  fe__keytab_t *m = (fe__keytab_t *)kt; /* callers own the value words */
  if (FE_UNLIKELY(key == 0))
    return fe__load_relaxed(&m->zero.key) != 0 ? &m->zero.val : NULL;
  uint64_t i = home(kt, key);
  for (uint64_t seen = 0; seen <= kt->mask; seen++) {
    fe__keytab_slot_t *s = &m->slots[i];
    uint64_t k = fe__load_relaxed(&s->key);
    if (FE_LIKELY(k == key))
      return &s->val;
    if (k == 0)
      return NULL; /* empty: absent (see keytab.h) */
    i = (i + 1) & kt->mask;
  }
  return NULL;
}

/* Claims the empty slot s by writing mark (the key; 1 for key 0's slot):
 * the value word, or NULL when the table is full.  *again: s was filled
 * meanwhile by another key, probe on. */
static uint64_t *claim(fe__keytab_t *kt, fe__keytab_slot_t *s, uint64_t mark,
                       int *again) {
  *again = 0;
  if (fe__load_relaxed(&kt->count) >= kt->max) {
    uint64_t k = fe__load_relaxed(&s->key);
    if (k == 0)
      return NULL; /* absent and full (see keytab.h) */
    if (k == mark)
      return &s->val;
    *again = 1;
    return NULL;
  }
  uint64_t k = 0;
  if (__atomic_compare_exchange_n(&s->key, &k, mark, 0, __ATOMIC_RELAXED,
                                  __ATOMIC_RELAXED)) {
    __atomic_fetch_add(&kt->count, 1, __ATOMIC_RELAXED);
    return &s->val;
  }
  if (k == mark)
    return &s->val; /* another thread inserted it first */
  *again = 1;
  return NULL;
}

uint64_t *fe__keytab_get(fe__keytab_t *kt, uint64_t key) {
  int again;
  if (FE_UNLIKELY(key == 0)) {
    if (FE_LIKELY(fe__load_relaxed(&kt->zero.key) != 0))
      return &kt->zero.val;
    return claim(kt, &kt->zero, 1, &again); /* never again: one slot */
  }
  uint64_t i = home(kt, key);
  for (uint64_t seen = 0; seen <= kt->mask; seen++) {
    fe__keytab_slot_t *s = &kt->slots[i];
    uint64_t k = fe__load_relaxed(&s->key);
    if (FE_LIKELY(k == key))
      return &s->val;
    if (k == 0) {
      uint64_t *v = claim(kt, s, key, &again);
      if (!again)
        return v;
    }
    i = (i + 1) & kt->mask; /* another key's slot: probe on */
  }
  return NULL; /* no empty slot at all (only past max: see keytab.h) */
}

void fe__keytab_clear(fe__keytab_t *kt) {
  /* Atomic stores rather than memset: stats readers may be running. */
  for (uint64_t i = 0; i <= kt->mask; i++) {
    fe__store_relaxed(&kt->slots[i].key, 0);
    fe__store_relaxed(&kt->slots[i].val, 0);
  }
  fe__store_relaxed(&kt->zero.key, 0);
  fe__store_relaxed(&kt->zero.val, 0);
  fe__store_relaxed(&kt->count, 0);
}
