/* Admission throttles: see include/finevent/throttle.h.
 *
 * GCRA (the arithmetic and why it is a token bucket: gcra.h).  Each
 * bucket is one 64-bit word, its "theoretical arrival time" (tat), in ns
 * on the throttle's clock; a fresh or reset bucket has tat = 0: full.
 *
 * Memory order.  A tat word carries no other data: threads only ever
 * read-modify-write it as a whole, and the modification order of that one
 * word is all that admission needs.  So every tat access is relaxed.  The
 * same holds for a slot's key word: it says "this slot belongs to key K";
 * the tat beside it is 0 from create/reset, which happened before any
 * admission (the caller hands the throttle to its threads through its own
 * synchronisation), and is only touched atomically afterwards.  Counters
 * are statistics: relaxed.
 *
 * Two buckets, nothing consumed on reject.  An admission checks the key
 * bucket and peeks at the global one, commits the key bucket (CAS), then
 * commits the global one (CAS loop, re-checking on each retry).  If the
 * global bucket ran dry between the peek and its commit, the key tokens
 * are given back (a compensating atomic subtract).  No order avoids that
 * case without a lock or a double-word CAS: either bucket can be changed
 * by another thread between the two commits.  Key first, because the
 * rollback's side effect (the tokens are briefly out, so a concurrent
 * admission may be throttled for lack of them) then hits only the one
 * account, never every account; and an account is usually published from
 * one thread, so the key CAS rarely retries, while the contended global
 * CAS retries cheaply by re-testing.
 *
 * The exact rollback would be to subtract T * n from the key's tat, but
 * that can credit too much: if the bucket would have been full (debt 0)
 * at some moment while our tokens were out, the refill of that moment was
 * "spent" paying our debt instead of being capped away, and handing the
 * tokens back would double it.  That excess is at most the time the tokens
 * were out, so we give back T * n - (now2 - now) ns (clamped at 0), with
 * now2 a second clock reading: never more than the exact value, and less
 * by a few ns of debt (a fraction of a token) at worst.
 *
 * Per-key buckets live in the shared account table (lib/keytab.h): grow-
 * only, lock-free, fixed capacity; its top comment says why a "full" answer
 * is never spurious and by how much concurrent inserts may overshoot
 * max_keys.
 */
#include "finevent/throttle.h"

#include <stdlib.h>
#include <string.h>

#include "gcra.h"
#include "internal.h"
#include "keytab.h"
#include "sync.h"

typedef struct counters {
  uint64_t admitted, throttled_global, throttled_key, table_full, rollbacks;
} counters_t;

struct fe_throttle {
  /* Read-only after create: read by every call. */
  uint64_t g_t, g_limit; /* global T and L (ns); g_t 0: no global limit */
  uint64_t k_t, k_limit; /* per-key T and L; k_t 0: no per-key limit */
  uint64_t n_max;        /* largest admissible n: the smallest burst */
  fe__keytab_t keys;     /* account -> its bucket's tat; per-key limit only */
  uint64_t (*now_ns)(void *);
  void *clock_user;

  /* Written (CAS) by every admission under a global limit. */
  _Alignas(FE_PAD) uint64_t g_tat;

  /* Written by every admission (relaxed fetch-add), read by stats. */
  _Alignas(FE_PAD) counters_t c;
};

/* ---------------------------------------------------------------- helpers */

#define cas_relaxed(p, expected, desired)                                    \
  __atomic_compare_exchange_n((p), (expected), (desired), 1,                 \
                              __ATOMIC_RELAXED, __ATOMIC_RELAXED)
#define count(t, field) __atomic_fetch_add(&(t)->c.field, 1, __ATOMIC_RELAXED)

static inline uint64_t now_of(const fe_throttle_t *t) {
  return t->now_ns != NULL ? t->now_ns(t->clock_user) : fe_clock_now_ns();
}

/* Gives back cost ns of tokens taken at now from *tat, less the time they
 * were out (see the top: never more than exact). */
static void give_back(fe_throttle_t *t, uint64_t *tat, uint64_t cost,
                      uint64_t now) {
  uint64_t now2 = now_of(t);
  uint64_t out = now2 > now ? now2 - now : 0;
  if (cost > out) __atomic_fetch_sub(tat, cost - out, __ATOMIC_RELAXED);
  count(t, rollbacks);
}

/* ------------------------------------------------------------- admission */

int fe_throttle_admit(fe_throttle_t *t, uint64_t key, uint32_t n) {
  if (FE_UNLIKELY(t == NULL || n == 0)) return FE_EINVAL;
  if (FE_UNLIKELY(n > t->n_max)) return FE_ERANGE;
  uint64_t now = now_of(t);
  uint64_t *ktat = NULL;
  uint64_t kcost = t->k_t * n, gcost = t->g_t * n;

  if (t->k_t != 0) {
    ktat = fe__keytab_get(&t->keys, key);
    if (FE_UNLIKELY(ktat == NULL)) {
      count(t, table_full);
      return FE_ETABLEFULL;
    }
    uint64_t cur = fe__load_relaxed(ktat), next;
    do {
      next = fe__gcra_take(cur, now, kcost, t->k_limit);
      if (next == 0) {
        count(t, throttled_key);
        return FE_ETHROTTLED;
      }
      /* Peek before committing, so that the common global reject needs
       * no rollback. */
      if (t->g_t != 0 &&
          fe__gcra_take(fe__load_relaxed(&t->g_tat), now, gcost, t->g_limit) == 0) {
        count(t, throttled_global);
        return FE_ETHROTTLED;
      }
    } while (!cas_relaxed(ktat, &cur, next));
  }

  if (t->g_t != 0) {
    uint64_t cur = fe__load_relaxed(&t->g_tat), next;
    do {
      next = fe__gcra_take(cur, now, gcost, t->g_limit);
      if (next == 0) {
        if (ktat != NULL) give_back(t, ktat, kcost, now);
        count(t, throttled_global);
        return FE_ETHROTTLED;
      }
    } while (!cas_relaxed(&t->g_tat, &cur, next));
  }
  count(t, admitted);
  return 0;
}

/* ---------------------------------------------------- configuration, life */

void fe_throttle_config_init(fe_throttle_config_t *cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->max_keys = FE_THROTTLE_DEFAULT_MAX_KEYS;
}

static int check_pair(const char *what, uint64_t rate, uint64_t burst,
                      fe_diag_t *diag) {
  if (rate == 0 && burst != 0)
    return fe__diag(diag, FE_EINVAL,
                    "throttle: %s_burst is %llu but %s_rate is 0; set both, "
                    "or both 0 for no %s limit",
                    what, (unsigned long long)burst, what, what);
  if (rate != 0 && burst == 0)
    return fe__diag(diag, FE_EINVAL,
                    "throttle: %s_rate is %llu but %s_burst is 0; set both, "
                    "or both 0 for no %s limit",
                    what, (unsigned long long)rate, what, what);
  if (rate > FE_THROTTLE_RATE_MAX)
    return fe__diag(diag, FE_ERANGE,
                    "throttle: %s_rate %llu is above the maximum %llu per "
                    "second",
                    what, (unsigned long long)rate,
                    (unsigned long long)FE_THROTTLE_RATE_MAX);
  if (burst > FE_THROTTLE_BURST_MAX)
    return fe__diag(diag, FE_ERANGE,
                    "throttle: %s_burst %llu is above the maximum %llu", what,
                    (unsigned long long)burst,
                    (unsigned long long)FE_THROTTLE_BURST_MAX);
  return 0;
}

static int check_config(const fe_throttle_config_t *cfg, fe_diag_t *diag) {
  if (cfg == NULL) return fe__diag(diag, FE_EINVAL, "throttle: cfg is NULL");
  int rc = check_pair("global", cfg->global_rate, cfg->global_burst, diag);
  if (rc != 0) return rc;
  rc = check_pair("key", cfg->key_rate, cfg->key_burst, diag);
  if (rc != 0) return rc;
  if (cfg->global_rate == 0 && cfg->key_rate == 0)
    return fe__diag(diag, FE_EINVAL,
                    "throttle: no limit set; set global_rate/global_burst, "
                    "key_rate/key_burst, or both");
  if (cfg->key_rate != 0 &&
      (cfg->max_keys == 0 || cfg->max_keys > FE_THROTTLE_MAX_KEYS_MAX))
    return fe__diag(diag, FE_ERANGE,
                    "throttle: max_keys %llu is not in 1..%llu",
                    (unsigned long long)cfg->max_keys,
                    (unsigned long long)FE_THROTTLE_MAX_KEYS_MAX);
  if (cfg->now_ns == NULL && cfg->clock_user != NULL)
    return fe__diag(diag, FE_EINVAL,
                    "throttle: clock_user is set but now_ns is NULL");
  return 0;
}

int fe_throttle_create(const fe_throttle_config_t *cfg, fe_throttle_t **out,
                       fe_diag_t *diag) {
  if (out == NULL) return fe__diag(diag, FE_EINVAL, "throttle: out is NULL");
  int rc = check_config(cfg, diag);
  if (rc != 0) return rc;

  fe_throttle_t *t = fe__zalloc_aligned(sizeof *t);
  if (t == NULL)
    return fe__diag(diag, FE_ENOMEM, "throttle: cannot allocate %zu bytes",
                    sizeof *t);
  t->g_t = fe__gcra_interval(cfg->global_rate);
  t->g_limit = t->g_t * cfg->global_burst;
  t->k_t = fe__gcra_interval(cfg->key_rate);
  t->k_limit = t->k_t * cfg->key_burst;
  t->n_max = UINT64_MAX;
  if (cfg->global_rate != 0) t->n_max = cfg->global_burst;
  if (cfg->key_rate != 0 && cfg->key_burst < t->n_max) t->n_max = cfg->key_burst;
  t->now_ns = cfg->now_ns;
  t->clock_user = cfg->clock_user;

  if (cfg->key_rate != 0 && fe__keytab_init(&t->keys, cfg->max_keys) != 0) {
    free(t);
    return fe__diag(diag, FE_ENOMEM, "throttle: cannot allocate the table "
                    "for %llu keys", (unsigned long long)cfg->max_keys);
  }
  *out = t;
  return 0;
}

void fe_throttle_destroy(fe_throttle_t *t) {
  if (t == NULL) return;
  fe__keytab_free(&t->keys);
  free(t);
}

int fe_throttle_reset(fe_throttle_t *t) {
  if (t == NULL) return FE_EINVAL;
  /* Atomic stores rather than memset: fe_throttle_stats() may be running. */
  if (t->keys.slots != NULL)
    fe__keytab_clear(&t->keys);
  fe__store_relaxed(&t->g_tat, 0);
  fe__store_relaxed(&t->c.admitted, 0);
  fe__store_relaxed(&t->c.throttled_global, 0);
  fe__store_relaxed(&t->c.throttled_key, 0);
  fe__store_relaxed(&t->c.table_full, 0);
  fe__store_relaxed(&t->c.rollbacks, 0);
  return 0;
}

int fe_throttle_stats(const fe_throttle_t *t, fe_throttle_stats_t *out) {
  if (t == NULL || out == NULL) return FE_EINVAL;
  out->admitted = fe__load_relaxed(&t->c.admitted);
  out->throttled_global = fe__load_relaxed(&t->c.throttled_global);
  out->throttled_key = fe__load_relaxed(&t->c.throttled_key);
  out->table_full = fe__load_relaxed(&t->c.table_full);
  out->rollbacks = fe__load_relaxed(&t->c.rollbacks);
  out->keys = t->keys.slots != NULL ? fe__keytab_count(&t->keys) : 0;
  return 0;
}
