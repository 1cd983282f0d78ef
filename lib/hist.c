/* Log-linear latency histogram: see include/finevent/hist.h.
 *
 * Bucketing.  Values are first scaled down to units of 2^unit_shift (the
 * largest power of two <= lowest), giving w.  With S = 2^sub_bits sub-buckets
 * (the smallest power of two >= 2 * 10^digits) and H = S / 2:
 *   - w < S lands in bucket w (width 1 unit);
 *   - otherwise let k >= 1 be such that w >> k is in [H, S): w lands in
 *     bucket k * H + (w >> k), width 2^k units.
 * Both cases are  index = k * H + (w >> k)  with  k = msb(w | (S - 1)) -
 * (sub_bits - 1),  which needs no branch.  A bucket of exponent k >= 1
 * starts at (w >> k) << k >= H * 2^k, so its width over its lowest value is
 * at most 1 / H = 2 / S <= 10^-digits: the precision promised in the
 * header.  Indices are dense and increase with the value, so a walk in
 * index order is a walk in value order.
 *
 * Memory ordering.  Every access to a counter (buckets, total, sum, min,
 * max, overflow) is a relaxed atomic.  Relaxed is enough because the
 * counters are statistics, not flags: no reader infers from one of them
 * that any other memory is ready, so none needs acquire/release.  They are
 * atomic at all only so that readers on other threads do not race with the
 * writer: on x86-64 a relaxed load or store is a plain mov, so the
 * single-writer path (load, add, store) costs what plain increments cost.
 * Whoever needs an exact view gets its happens-before edge from its own
 * synchronisation with the writers (thread join, the bus's sequences).
 * The configuration fields are written by init only, before the handle is
 * handed to anyone, and never again: plain reads.
 */
#include "finevent/hist.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* fe_hist_t.flags */
#define FE__HIST_OWNED 1u /* allocated by fe_hist_create(): destroy frees */

struct fe_hist {
  /* Line 0: set by init, read-only afterwards. */
  union {
    struct {
      uint64_t lowest;      /* configuration as given */
      uint64_t highest;
      uint32_t digits;
      uint32_t unit_shift;  /* log2 of the unit */
      uint32_t half_bits;   /* sub_bits - 1: log2 of H */
      uint64_t sub_mask;    /* S - 1 */
      uint32_t n_counts;    /* buckets */
      uint32_t flags;       /* FE__HIST_* */
    } c;
    char line0[FE_CACHELINE];
  } u0;
  /* Line 1: totals, written by the writer(s) on every record (relaxed; see
   * the top of the file), read by any reader.  Kept off line 0 so that
   * readers of the configuration do not pull the writer's line away. */
  union {
    struct {
      uint64_t total;    /* samples */
      uint64_t sum_lo;   /* sum of the values, 128 bits: 3.6e12 ns * 5e6 */
      uint64_t sum_hi;   /*   samples already exceeds 2^64 */
      uint64_t min;      /* UINT64_MAX while empty */
      uint64_t max;      /* 0 while empty */
      uint64_t overflow; /* clamped samples */
    } s;
    char line1[FE_CACHELINE];
  } u1;
  uint64_t counts[]; /* n_counts buckets; written as the totals */
};

_Static_assert(sizeof(struct fe_hist) == 2 * FE_CACHELINE,
               "the buckets must start on a cache line of their own");

#define CFG(h) ((h)->u0.c)
#define TOT(h) ((h)->u1.s)

/* ------------------------------------------------------------- arithmetic */

/* a * b as two 64-bit words (record_n and the 128-bit sum need it). */
static inline void mul_64x64(uint64_t a, uint64_t b, uint64_t *lo,
                             uint64_t *hi) {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  u128 p = (u128)a * b;
  *lo = (uint64_t)p;
  *hi = (uint64_t)(p >> 64);
#else
  uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  *lo = (mid << 32) | (uint32_t)p00;
  *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
}

static inline uint32_t msb64(uint64_t x) { /* x != 0 */
  return 63u - (uint32_t)__builtin_clzll(x);
}

static inline uint32_t index_calc(uint64_t v, uint32_t unit_shift,
                                  uint32_t half_bits, uint64_t sub_mask) {
  uint64_t w = v >> unit_shift;
  uint32_t k = msb64(w | sub_mask) - half_bits;
  return (k << half_bits) + (uint32_t)(w >> k);
}

static inline uint32_t index_of(const fe_hist_t *h, uint64_t v) {
  return index_calc(v, CFG(h).unit_shift, CFG(h).half_bits, CFG(h).sub_mask);
}

static inline uint64_t index_lowest(const fe_hist_t *h, uint32_t i) {
  uint32_t k = i >> CFG(h).half_bits;
  k = k ? k - 1 : 0;
  uint64_t m = i - ((uint64_t)k << CFG(h).half_bits);
  return (m << k) << CFG(h).unit_shift;
}

static inline uint64_t index_highest(const fe_hist_t *h, uint32_t i) {
  uint32_t k = i >> CFG(h).half_bits;
  k = k ? k - 1 : 0;
  return index_lowest(h, i) + ((UINT64_C(1) << k) << CFG(h).unit_shift) - 1;
}

/* Geometry of a configuration that passed check_config(). */
typedef struct geom {
  uint32_t unit_shift, half_bits, n_counts;
  uint64_t sub_mask;
} geom_t;

static geom_t geometry(const fe_hist_config_t *cfg) {
  uint64_t two_pow10 = 2;
  for (uint32_t d = 0; d < cfg->digits; d++) two_pow10 *= 10;
  uint32_t sub_bits = 1;
  while ((UINT64_C(1) << sub_bits) < two_pow10) sub_bits++;

  geom_t g;
  g.unit_shift = msb64(cfg->lowest);
  g.half_bits = sub_bits - 1;
  g.sub_mask = (UINT64_C(1) << sub_bits) - 1;
  g.n_counts =
      index_calc(cfg->highest, g.unit_shift, g.half_bits, g.sub_mask) + 1;
  return g;
}

static size_t bytes_for(uint32_t n_counts) {
  size_t n = sizeof(struct fe_hist) + (size_t)n_counts * sizeof(uint64_t);
  return (n + FE_HIST_ALIGN_BEST - 1) & ~(size_t)(FE_HIST_ALIGN_BEST - 1);
}

/* ---------------------------------------------------- configuration, life */

void fe_hist_config_init(fe_hist_config_t *cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->lowest = 1;
  cfg->highest = FE_HIST_DEFAULT_HIGHEST;
  cfg->digits = 3;
}

int fe_hist_config_check(const fe_hist_config_t *cfg, fe_diag_t *diag) {
  if (cfg == NULL) return fe__diag(diag, FE_EINVAL, "hist: cfg is NULL");
  if (cfg->lowest == 0)
    return fe__diag(diag, FE_ERANGE, "hist: lowest is 0; must be >= 1");
  if (cfg->highest > FE_HIST_HIGHEST_MAX)
    return fe__diag(diag, FE_ERANGE,
                    "hist: highest %llu is above the maximum %llu",
                    (unsigned long long)cfg->highest,
                    (unsigned long long)FE_HIST_HIGHEST_MAX);
  if (cfg->highest / 2 < cfg->lowest)
    return fe__diag(diag, FE_ERANGE,
                    "hist: highest %llu is below 2 * lowest (lowest %llu)",
                    (unsigned long long)cfg->highest,
                    (unsigned long long)cfg->lowest);
  if (cfg->digits < FE_HIST_DIGITS_MIN || cfg->digits > FE_HIST_DIGITS_MAX)
    return fe__diag(diag, FE_ERANGE, "hist: digits %u is not in %d..%d",
                    (unsigned)cfg->digits, FE_HIST_DIGITS_MIN,
                    FE_HIST_DIGITS_MAX);
  return 0;
}

size_t fe_hist_memsize(const fe_hist_config_t *cfg) {
  if (fe_hist_config_check(cfg, NULL) != 0) return 0;
  return bytes_for(geometry(cfg).n_counts);
}

static void build(fe_hist_t *h, size_t bytes, const fe_hist_config_t *cfg,
                  uint32_t flags) {
  geom_t g = geometry(cfg);
  /* Writes every byte: pre-faults the pages so that no record faults. */
  memset(h, 0, bytes);
  CFG(h).lowest = cfg->lowest;
  CFG(h).highest = cfg->highest;
  CFG(h).digits = cfg->digits;
  CFG(h).unit_shift = g.unit_shift;
  CFG(h).half_bits = g.half_bits;
  CFG(h).sub_mask = g.sub_mask;
  CFG(h).n_counts = g.n_counts;
  CFG(h).flags = flags;
  TOT(h).min = UINT64_MAX;
}

int fe_hist_init(void *mem, size_t size, const fe_hist_config_t *cfg,
                 fe_diag_t *diag) {
  if (mem == NULL) return fe__diag(diag, FE_EINVAL, "hist: mem is NULL");
  if ((uintptr_t)mem % FE_HIST_ALIGN != 0)
    return fe__diag(diag, FE_EINVAL,
                    "hist: mem %p is not aligned to %d bytes", mem,
                    FE_HIST_ALIGN);
  int rc = fe_hist_config_check(cfg, diag);
  if (rc != 0) return rc;
  size_t need = fe_hist_memsize(cfg);
  if (size < need)
    return fe__diag(diag, FE_ERANGE,
                    "hist: size %zu is below fe_hist_memsize() = %zu", size,
                    need);
  build(mem, need, cfg, 0);
  return 0;
}

int fe_hist_create(const fe_hist_config_t *cfg, fe_hist_t **out,
                   fe_diag_t *diag) {
  if (out == NULL) return fe__diag(diag, FE_EINVAL, "hist: out is NULL");
  int rc = fe_hist_config_check(cfg, diag);
  if (rc != 0) return rc;
  size_t need = fe_hist_memsize(cfg);
  fe_hist_t *h = aligned_alloc(FE_HIST_ALIGN_BEST, need);
  if (h == NULL)
    return fe__diag(diag, FE_ENOMEM, "hist: cannot allocate %zu bytes", need);
  build(h, need, cfg, FE__HIST_OWNED);
  *out = h;
  return 0;
}

void fe_hist_destroy(fe_hist_t *h) {
  if (h != NULL && (CFG(h).flags & FE__HIST_OWNED)) free(h);
}

int fe_hist_get_config(const fe_hist_t *h, fe_hist_config_t *cfg) {
  if (h == NULL || cfg == NULL) return FE_EINVAL;
  fe_hist_config_init(cfg);
  cfg->lowest = CFG(h).lowest;
  cfg->highest = CFG(h).highest;
  cfg->digits = CFG(h).digits;
  return 0;
}

/* -------------------------------------------------------------- recording */

/* Single writer: load + add + store.  No other thread stores to these
 * fields (the header's rule), so no increment can be lost. */
static inline void bump(uint64_t *p, uint64_t n) { ST(p, LD(p) + n); }

static inline void record_plain(fe_hist_t *h, uint64_t v, uint64_t n) {
  if (FE_UNLIKELY(v > CFG(h).highest)) {
    v = CFG(h).highest;
    bump(&TOT(h).overflow, n);
  }
  bump(&h->counts[index_of(h, v)], n);
  bump(&TOT(h).total, n);
  uint64_t add_lo, add_hi;
  mul_64x64(v, n, &add_lo, &add_hi);
  uint64_t lo = LD(&TOT(h).sum_lo) + add_lo;
  ST(&TOT(h).sum_lo, lo);
  add_hi += lo < add_lo; /* carry out of the low word */
  if (add_hi != 0) bump(&TOT(h).sum_hi, add_hi);
  if (v < LD(&TOT(h).min)) ST(&TOT(h).min, v);
  if (v > LD(&TOT(h).max)) ST(&TOT(h).max, v);
}

int fe_hist_record(fe_hist_t *h, uint64_t value) {
  if (FE_UNLIKELY(h == NULL)) return FE_EINVAL;
  record_plain(h, value, 1);
  return 0;
}

int fe_hist_record_n(fe_hist_t *h, uint64_t value, uint64_t count) {
  if (FE_UNLIKELY(h == NULL)) return FE_EINVAL;
  if (count != 0) record_plain(h, value, count);
  return 0;
}

/* Several writers: each add is one relaxed fetch-add, so none is lost.
 * The 128-bit sum stays exact without a double-width CAS: every add that
 * wraps sum_lo sees the wrap in its own fetch-add result and carries it
 * into sum_hi, so sum_hi * 2^64 + sum_lo is the exact total once the adds
 * have all landed (a reader in between may pair a carried sum_hi with an
 * older sum_lo or vice versa: no snapshot, as the header says). */
static inline void record_atomic(fe_hist_t *h, uint64_t v, uint64_t n) {
  if (FE_UNLIKELY(v > CFG(h).highest)) {
    v = CFG(h).highest;
    __atomic_fetch_add(&TOT(h).overflow, n, __ATOMIC_RELAXED);
  }
  __atomic_fetch_add(&h->counts[index_of(h, v)], n, __ATOMIC_RELAXED);
  __atomic_fetch_add(&TOT(h).total, n, __ATOMIC_RELAXED);
  uint64_t add_lo, add_hi;
  mul_64x64(v, n, &add_lo, &add_hi);
  uint64_t old = __atomic_fetch_add(&TOT(h).sum_lo, add_lo, __ATOMIC_RELAXED);
  add_hi += old + add_lo < old;
  if (add_hi != 0)
    __atomic_fetch_add(&TOT(h).sum_hi, add_hi, __ATOMIC_RELAXED);
  /* A failed CAS reloads cur; the loop ends once v no longer improves on
   * it, so it retries only when another writer moved the bound. */
  uint64_t cur = LD(&TOT(h).min);
  while (v < cur && !__atomic_compare_exchange_n(&TOT(h).min, &cur, v, 1,
                                                 __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED)) {
  }
  cur = LD(&TOT(h).max);
  while (v > cur && !__atomic_compare_exchange_n(&TOT(h).max, &cur, v, 1,
                                                 __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED)) {
  }
}

int fe_hist_record_atomic(fe_hist_t *h, uint64_t value) {
  if (FE_UNLIKELY(h == NULL)) return FE_EINVAL;
  record_atomic(h, value, 1);
  return 0;
}

int fe_hist_record_n_atomic(fe_hist_t *h, uint64_t value, uint64_t count) {
  if (FE_UNLIKELY(h == NULL)) return FE_EINVAL;
  if (count != 0) record_atomic(h, value, count);
  return 0;
}

int fe_hist_reset(fe_hist_t *h) {
  if (h == NULL) return FE_EINVAL;
  /* Atomic stores rather than memset: readers may be running. */
  for (uint32_t i = 0; i < CFG(h).n_counts; i++) ST(&h->counts[i], 0);
  ST(&TOT(h).total, 0);
  ST(&TOT(h).sum_lo, 0);
  ST(&TOT(h).sum_hi, 0);
  ST(&TOT(h).min, UINT64_MAX);
  ST(&TOT(h).max, 0);
  ST(&TOT(h).overflow, 0);
  return 0;
}

int fe_hist_merge(fe_hist_t *dst, const fe_hist_t *src) {
  if (dst == NULL || src == NULL) return FE_EINVAL;
  if (CFG(dst).half_bits != CFG(src).half_bits ||
      CFG(dst).unit_shift != CFG(src).unit_shift ||
      CFG(dst).highest < CFG(src).highest)
    return FE_EINCOMPAT;
  /* Same unit and sub-buckets: bucket i means the same values in both, and
   * src has no more buckets than dst (its highest is not above dst's). */
  for (uint32_t i = 0; i < CFG(src).n_counts; i++) {
    uint64_t c = LD(&src->counts[i]);
    if (c != 0) bump(&dst->counts[i], c);
  }
  bump(&TOT(dst).total, LD(&TOT(src).total));
  bump(&TOT(dst).overflow, LD(&TOT(src).overflow));
  uint64_t add_lo = LD(&TOT(src).sum_lo);
  uint64_t add_hi = LD(&TOT(src).sum_hi);
  uint64_t lo = LD(&TOT(dst).sum_lo) + add_lo;
  ST(&TOT(dst).sum_lo, lo);
  add_hi += lo < add_lo;
  if (add_hi != 0) bump(&TOT(dst).sum_hi, add_hi);
  uint64_t m = LD(&TOT(src).min);
  if (m < LD(&TOT(dst).min)) ST(&TOT(dst).min, m);
  m = LD(&TOT(src).max);
  if (m > LD(&TOT(dst).max)) ST(&TOT(dst).max, m);
  return 0;
}

/* ---------------------------------------------------------------- queries */

uint64_t fe_hist_count(const fe_hist_t *h) {
  return h ? LD(&TOT(h).total) : 0;
}

uint64_t fe_hist_overflow(const fe_hist_t *h) {
  return h ? LD(&TOT(h).overflow) : 0;
}

uint64_t fe_hist_min(const fe_hist_t *h) {
  if (h == NULL) return 0;
  uint64_t m = LD(&TOT(h).min);
  return m == UINT64_MAX ? 0 : m; /* no recordable value is UINT64_MAX */
}

uint64_t fe_hist_max(const fe_hist_t *h) {
  return h ? LD(&TOT(h).max) : 0;
}

double fe_hist_mean(const fe_hist_t *h) {
  if (h == NULL) return 0.0;
  uint64_t n = LD(&TOT(h).total);
  if (n == 0) return 0.0;
  double sum = (double)LD(&TOT(h).sum_hi) * 18446744073709551616.0 +
               (double)LD(&TOT(h).sum_lo);
  return sum / (double)n;
}

uint64_t fe_hist_percentile(const fe_hist_t *h, double p) {
  if (h == NULL) return 0;
  uint64_t total = LD(&TOT(h).total);
  if (total == 0) return 0;
  if (!(p > 0.0)) p = 0.0; /* NaN too */
  if (p > 100.0) p = 100.0;
  /* rank = ceil(p / 100 * total), without libm. */
  double x = p / 100.0 * (double)total;
  uint64_t rank = total;
  if (x < (double)total) {
    rank = (uint64_t)x;
    if ((double)rank < x) rank++;
  }
  if (rank == 0) rank = 1;
  /* With writers running, the buckets may not add up to total yet: then
   * the last non-empty bucket is the answer (clamped to max as always). */
  uint64_t cum = 0;
  uint32_t at = 0;
  for (uint32_t i = 0; i < CFG(h).n_counts; i++) {
    uint64_t c = LD(&h->counts[i]);
    if (c == 0) continue;
    at = i;
    cum += c;
    if (cum >= rank) break;
  }
  uint64_t v = index_highest(h, at);
  uint64_t max = fe_hist_max(h);
  return v < max ? v : max;
}

static inline uint64_t clamp(const fe_hist_t *h, uint64_t v) {
  return v > CFG(h).highest ? CFG(h).highest : v;
}

uint64_t fe_hist_count_at(const fe_hist_t *h, uint64_t value) {
  return h ? LD(&h->counts[index_of(h, clamp(h, value))]) : 0;
}

uint64_t fe_hist_lowest_equiv(const fe_hist_t *h, uint64_t value) {
  return h ? index_lowest(h, index_of(h, clamp(h, value))) : 0;
}

uint64_t fe_hist_highest_equiv(const fe_hist_t *h, uint64_t value) {
  return h ? index_highest(h, index_of(h, clamp(h, value))) : 0;
}

/* -------------------------------------------------------------- iteration */

void fe_hist_iter_init(fe_hist_iter_t *it, const fe_hist_t *h) {
  if (it == NULL) return;
  memset(it, 0, sizeof *it);
  it->hist = h;
}

int fe_hist_iter_next(fe_hist_iter_t *it) {
  if (it == NULL || it->hist == NULL) return 0;
  const fe_hist_t *h = it->hist;
  for (uint32_t i = it->next; i < CFG(h).n_counts; i++) {
    uint64_t c = LD(&h->counts[i]);
    if (c == 0) continue;
    it->next = i + 1;
    it->lowest = index_lowest(h, i);
    it->highest = index_highest(h, i);
    it->count = c;
    it->cumulative += c;
    return 1;
  }
  it->next = CFG(h).n_counts;
  return 0;
}
