/* Latency histogram: precision, percentiles against exact ones, merge,
 * reset, clamping, configuration errors, caller memory, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/hist.h"
#include "internal.h"

#define HOUR_NS UINT64_C(3600000000000)

__extension__ typedef unsigned __int128 u128;

/* ------------------------------------------------------------- helpers */

/* Deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s) { return fe__splitmix64(s); }

/* Uniform in [lo, hi]. */
static uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi) {
  return lo + rng_next(s) % (hi - lo + 1);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static uint64_t pow10u(uint32_t d) {
  uint64_t p = 1;
  while (d--) p *= 10;
  return p;
}

/* The header's promise: v <= r and r - v < max(L, v * 10^-d). */
static int within(uint64_t v, uint64_t r, uint64_t lowest, uint32_t digits) {
  if (r < v) return 0;
  uint64_t e = r - v;
  return e < lowest || (u128)e * pow10u(digits) < v;
}

/* Relative closeness for means computed in double. */
static int near(double got, double want) {
  double e = got - want;
  if (e < 0) e = -e;
  return e <= (want < 0 ? -want : want) * 1e-12;
}

/* Exact percentile with the rank rule the header states. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p) {
  double x = p / 100.0 * (double)n;
  uint64_t rank = n;
  if (x < (double)n) {
    rank = (uint64_t)x;
    if ((double)rank < x) rank++;
  }
  if (rank == 0) rank = 1;
  return sorted[rank - 1];
}

static fe_hist_t *make(uint64_t lowest, uint64_t highest, uint32_t digits) {
  fe_hist_config_t cfg;
  fe_hist_config_init(&cfg);
  cfg.lowest = lowest;
  cfg.highest = highest;
  cfg.digits = digits;
  fe_hist_t *h = NULL;
  fe_diag_t d;
  int rc = fe_hist_create(&cfg, &h, &d);
  if (rc != 0) print_error("create: %s\n", d.msg);
  assert_int_equal(rc, 0);
  assert_non_null(h);
  return h;
}

/* Bucket-by-bucket equality, plus every total. */
static void assert_same(const fe_hist_t *a, const fe_hist_t *b) {
  assert_int_equal(fe_hist_count(a), fe_hist_count(b));
  assert_int_equal(fe_hist_overflow(a), fe_hist_overflow(b));
  assert_int_equal(fe_hist_min(a), fe_hist_min(b));
  assert_int_equal(fe_hist_max(a), fe_hist_max(b));
  assert_true(fe_hist_mean(a) == fe_hist_mean(b));
  fe_hist_iter_t ia, ib;
  fe_hist_iter_init(&ia, a);
  fe_hist_iter_init(&ib, b);
  for (;;) {
    int ra = fe_hist_iter_next(&ia), rb = fe_hist_iter_next(&ib);
    assert_int_equal(ra, rb);
    if (!ra) break;
    assert_int_equal(ia.lowest, ib.lowest);
    assert_int_equal(ia.highest, ib.highest);
    assert_int_equal(ia.count, ib.count);
  }
}

/* ------------------------------------------------------ distributions */

enum dist {
  D_UNIFORM, D_EXPONENTIAL, D_LOGNORMAL, D_CONSTANT, D_BIMODAL, D_SPAN,
  D_PARETO, D_COUNT
};
static const char *const dist_name[D_COUNT] = {
    "uniform", "exponential", "lognormal", "constant", "bimodal", "span",
    "pareto"};

/* Without libm: shapes, not exact laws, are what the test needs. */
static uint64_t draw(enum dist d, uint64_t *s) {
  uint64_t r;
  switch (d) {
  case D_UNIFORM:
    return rng_range(s, 1, 1000000);
  case D_EXPONENTIAL: {
    /* Geometric integer part (trailing zeros of a random word) plus a
     * uniform fraction: a piecewise-flat exponential, mean ~1.5 * 20 us. */
    r = rng_next(s);
    uint64_t k = r ? (uint64_t)__builtin_ctzll(r) : 63;
    return (k * 1024 + (rng_next(s) & 1023)) * 20000 / 1024 + 1;
  }
  case D_LOGNORMAL: {
    /* log2 of the value is a sum of 4 uniforms (close to normal), the
     * mantissa uniform in [1, 2): median around 2^20 ns. */
    r = rng_next(s);
    uint32_t e = 8 + (uint32_t)(r & 7) + (uint32_t)((r >> 3) & 7) +
                 (uint32_t)((r >> 6) & 7) + (uint32_t)((r >> 9) & 7);
    return (UINT64_C(1) << e) + (rng_next(s) & ((UINT64_C(1) << e) - 1));
  }
  case D_CONSTANT:
    return 4242;
  case D_BIMODAL:
    /* 90 % fast path around 80 us, 10 % slow path around 5 ms. */
    r = rng_next(s);
    if (r % 10 != 0) return rng_range(s, 70000, 90000);
    return rng_range(s, 4500000, 5500000);
  case D_SPAN: {
    /* Log-uniform over 1 ns .. 1 h. */
    uint32_t e = (uint32_t)rng_range(s, 0, 41);
    uint64_t v = (UINT64_C(1) << e) + (rng_next(s) & ((UINT64_C(1) << e) - 1));
    return v > HOUR_NS ? HOUR_NS : v;
  }
  case D_PARETO: {
    /* Heavy tail: 2^geometric times a uniform mantissa. */
    r = rng_next(s);
    uint32_t k = r ? (uint32_t)__builtin_ctzll(r) : 30;
    if (k > 30) k = 30; /* stays below 1 h */
    return (UINT64_C(1) << k) * rng_range(s, 1000, 1999);
  }
  default:
    return 0;
  }
}

/* Records n samples of d into a histogram with (lowest, digits) and checks
 * every query against the sorted samples. */
static void check_dist(enum dist d, size_t n, uint64_t lowest,
                       uint64_t highest, uint32_t digits, int n_random) {
  fe_hist_t *h = make(lowest, highest, digits);
  uint64_t *v = malloc(n * sizeof *v);
  assert_non_null(v);
  uint64_t seed = 0x5eed0000u + (uint64_t)d;
  u128 sum = 0;
  for (size_t i = 0; i < n; i++) {
    v[i] = draw(d, &seed);
    sum += v[i];
    assert_int_equal(fe_hist_record(h, v[i]), 0);
  }
  qsort(v, n, sizeof *v, cmp_u64);

  assert_int_equal(fe_hist_count(h), n);
  assert_int_equal(fe_hist_overflow(h), 0);
  assert_int_equal(fe_hist_min(h), v[0]);
  assert_int_equal(fe_hist_max(h), v[n - 1]);
  assert_true(near(fe_hist_mean(h), (double)sum / (double)n));

  static const double ps[] = {0,    0.1,  1,    5,     10,    25,  50,
                              75,   90,   95,   99,    99.5,  99.9, 99.99,
                              99.999, 100};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    uint64_t exact = exact_percentile(v, n, ps[i]);
    uint64_t got = fe_hist_percentile(h, ps[i]);
    if (!within(exact, got, lowest, digits) || got > v[n - 1])
      fail_msg("%s L=%llu d=%u p=%g: exact %llu, got %llu", dist_name[d],
               (unsigned long long)lowest, digits, ps[i],
               (unsigned long long)exact, (unsigned long long)got);
  }
  uint64_t pseed = 77;
  for (int i = 0; i < n_random; i++) {
    double p = (double)(rng_next(&pseed) % 1000001) / 10000.0;
    uint64_t exact = exact_percentile(v, n, p);
    uint64_t got = fe_hist_percentile(h, p);
    if (!within(exact, got, lowest, digits))
      fail_msg("%s p=%g: exact %llu, got %llu", dist_name[d], p,
               (unsigned long long)exact, (unsigned long long)got);
  }
  assert_int_equal(fe_hist_percentile(h, 100), v[n - 1]);

  /* Iteration: each bucket holds exactly the samples in its range. */
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  size_t at = 0;
  uint64_t prev_high = 0;
  int first = 1;
  while (fe_hist_iter_next(&it)) {
    assert_true(it.lowest <= it.highest);
    assert_true(first || it.lowest > prev_high);
    size_t in = 0;
    while (at < n && v[at] <= it.highest) {
      assert_true(v[at] >= it.lowest);
      at++;
      in++;
    }
    assert_int_equal(in, it.count);
    assert_int_equal(it.cumulative, at);
    prev_high = it.highest;
    first = 0;
  }
  assert_int_equal(at, n);
  assert_int_equal(fe_hist_iter_next(&it), 0); /* stays at the end */

  free(v);
  fe_hist_destroy(h);
}

/* ----------------------------------------------------------------- tests */

static void test_config_defaults(void **state) {
  (void)state;
  fe_hist_config_t cfg;
  memset(&cfg, 0xff, sizeof cfg);
  fe_hist_config_init(&cfg);
  assert_int_equal(cfg.lowest, 1);
  assert_int_equal(cfg.highest, HOUR_NS);
  assert_true(cfg.highest >= UINT64_C(3600000000000));
  assert_int_equal(cfg.digits, 3);
  assert_int_equal(fe_hist_config_check(&cfg, NULL), 0);
  size_t sz = fe_hist_memsize(&cfg);
  assert_true(sz > 0 && sz % FE_HIST_ALIGN_BEST == 0);
  assert_true(sz < 300 * 1024);

  fe_hist_t *h = NULL;
  assert_int_equal(fe_hist_create(&cfg, &h, NULL), 0);
  fe_hist_config_t back;
  assert_int_equal(fe_hist_get_config(h, &back), 0);
  assert_int_equal(back.lowest, cfg.lowest);
  assert_int_equal(back.highest, cfg.highest);
  assert_int_equal(back.digits, cfg.digits);
  assert_int_equal(fe_hist_get_config(NULL, &back), FE_EINVAL);
  assert_int_equal(fe_hist_get_config(h, NULL), FE_EINVAL);
  /* One hour is trackable at full precision. */
  assert_int_equal(fe_hist_record(h, HOUR_NS), 0);
  assert_int_equal(fe_hist_overflow(h), 0);
  assert_int_equal(fe_hist_max(h), HOUR_NS);
  assert_true(within(HOUR_NS, fe_hist_highest_equiv(h, HOUR_NS), 1, 3));
  fe_hist_destroy(h);
  fe_hist_destroy(NULL);
}

static void expect_cfg_error(uint64_t lowest, uint64_t highest,
                             uint32_t digits, int code, const char *word) {
  fe_hist_config_t cfg;
  fe_hist_config_init(&cfg);
  cfg.lowest = lowest;
  cfg.highest = highest;
  cfg.digits = digits;
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_hist_config_check(&cfg, &d), code);
  assert_int_equal(d.code, code);
  assert_non_null(strstr(d.msg, word));
  assert_int_equal(fe_hist_memsize(&cfg), 0);

  fe_hist_t *sentinel = (fe_hist_t *)&cfg, *h = sentinel;
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_create(&cfg, &h, &d), code);
  assert_ptr_equal(h, sentinel); /* untouched on failure */
  assert_int_equal(d.code, code);
  assert_non_null(strstr(d.msg, word));

  static _Alignas(64) unsigned char mem[4096];
  memset(mem, 0xab, sizeof mem);
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_init(mem, sizeof mem, &cfg, &d), code);
  assert_int_equal(d.code, code);
  assert_int_equal(mem[0], 0xab); /* untouched on failure */
}

static void test_invalid_configs(void **state) {
  (void)state;
  expect_cfg_error(0, HOUR_NS, 3, FE_ERANGE, "lowest");
  expect_cfg_error(1000, 1999, 3, FE_ERANGE, "highest");
  expect_cfg_error(1000, 1000, 3, FE_ERANGE, "highest");
  expect_cfg_error(5, 1, 3, FE_ERANGE, "highest");
  expect_cfg_error(1, HOUR_NS, 0, FE_ERANGE, "digits");
  expect_cfg_error(1, HOUR_NS, 6, FE_ERANGE, "digits");
  expect_cfg_error(1, UINT64_MAX, 3, FE_ERANGE, "highest");
  expect_cfg_error(1, (uint64_t)INT64_MAX + 1, 3, FE_ERANGE, "highest");

  /* The edges are accepted. */
  fe_hist_t *h;
  h = make(1000, 2000, 1);
  fe_hist_destroy(h);
  h = make(1, FE_HIST_HIGHEST_MAX, 3);
  assert_int_equal(fe_hist_record(h, FE_HIST_HIGHEST_MAX), 0);
  assert_int_equal(fe_hist_overflow(h), 0);
  assert_true(fe_hist_highest_equiv(h, FE_HIST_HIGHEST_MAX) >=
              FE_HIST_HIGHEST_MAX);
  assert_int_equal(fe_hist_percentile(h, 50), FE_HIST_HIGHEST_MAX);
  fe_hist_destroy(h);

  /* NULL arguments. */
  fe_hist_config_t cfg;
  fe_hist_config_init(&cfg);
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_hist_config_check(NULL, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_non_null(strstr(d.msg, "cfg"));
  assert_int_equal(fe_hist_memsize(NULL), 0);
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_create(NULL, &h, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "cfg"));
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_create(&cfg, NULL, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_non_null(strstr(d.msg, "out"));
  assert_int_equal(fe_hist_create(&cfg, NULL, NULL), FE_EINVAL);
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_init(NULL, 1 << 20, &cfg, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "mem"));
  assert_int_equal(fe_hist_record(NULL, 1), FE_EINVAL);
  assert_int_equal(fe_hist_record_n(NULL, 1, 1), FE_EINVAL);
  assert_int_equal(fe_hist_record_atomic(NULL, 1), FE_EINVAL);
  assert_int_equal(fe_hist_record_n_atomic(NULL, 1, 1), FE_EINVAL);
  assert_int_equal(fe_hist_reset(NULL), FE_EINVAL);
  assert_int_equal(fe_hist_count(NULL), 0);
  assert_int_equal(fe_hist_overflow(NULL), 0);
  assert_int_equal(fe_hist_min(NULL), 0);
  assert_int_equal(fe_hist_max(NULL), 0);
  assert_true(fe_hist_mean(NULL) == 0.0);
  assert_int_equal(fe_hist_percentile(NULL, 50), 0);
  assert_int_equal(fe_hist_count_at(NULL, 5), 0);
  assert_int_equal(fe_hist_lowest_equiv(NULL, 5), 0);
  assert_int_equal(fe_hist_highest_equiv(NULL, 5), 0);
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, NULL);
  assert_int_equal(fe_hist_iter_next(&it), 0);
  assert_int_equal(fe_hist_iter_next(NULL), 0);
}

/* Every bucket boundary, for every digits setting and a few units: the
 * buckets tile the values without gaps and keep the stated precision. */
static void test_precision_sweep(void **state) {
  (void)state;
  static const uint64_t lows[] = {1, 7, 1000, 1024};
  for (uint32_t digits = 1; digits <= 5; digits++) {
    for (size_t li = 0; li < sizeof lows / sizeof lows[0]; li++) {
      uint64_t lowest = lows[li];
      /* Full range where the bucket count allows it (fast under TSan). */
      uint64_t highest = digits <= 3   ? FE_HIST_HIGHEST_MAX
                         : digits == 4 ? UINT64_C(1) << 40
                                       : UINT64_C(1) << 28;
      fe_hist_t *h = make(lowest, highest, digits);
      /* Walk bucket by bucket from 0 through the first ~20 octaves past
       * the linear range, then jump through the rest. */
      uint64_t v = 0;
      uint64_t steps = 0;
      while (v <= highest && steps < 80000) {
        uint64_t lo = fe_hist_lowest_equiv(h, v);
        uint64_t hi = fe_hist_highest_equiv(h, v);
        assert_int_equal(lo, v); /* v is always a bucket start here */
        assert_true(hi >= lo);
        assert_true(within(lo, hi, lowest, digits));
        assert_int_equal(fe_hist_lowest_equiv(h, hi), lo);
        assert_int_equal(fe_hist_highest_equiv(h, hi), hi);
        if (hi >= highest) break;
        assert_int_equal(fe_hist_lowest_equiv(h, hi + 1), hi + 1);
        v = hi + 1;
        steps++;
      }
      /* Random values over the whole range. */
      uint64_t seed = digits * 1000 + li;
      for (int i = 0; i < 5000; i++) {
        uint32_t e = (uint32_t)rng_range(&seed, 0, 62);
        uint64_t x = rng_next(&seed) & ((UINT64_C(2) << e) - 1);
        if (x > highest) x = highest;
        uint64_t lo = fe_hist_lowest_equiv(h, x);
        uint64_t hi = fe_hist_highest_equiv(h, x);
        assert_true(lo <= x && x <= hi);
        assert_true(within(x, hi, lowest, digits));
        assert_true(within(lo, hi, lowest, digits));
      }
      fe_hist_destroy(h);
    }
  }
}

static void test_percentiles_default(void **state) {
  (void)state;
  for (int d = 0; d < D_COUNT; d++) check_dist((enum dist)d, 50000, 1, HOUR_NS, 3, 200);
}

static void test_percentiles_other_configs(void **state) {
  (void)state;
  static const struct { uint64_t lowest; uint32_t digits; } c[] = {
      {1, 1}, {1, 2}, {1000, 2}, {1000, 3}, {100, 4}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
    for (int d = 0; d < D_COUNT; d++)
      check_dist((enum dist)d, 20000, c[i].lowest, HOUR_NS, c[i].digits,
                 c[i].digits >= 4 ? 8 : 40);
  /* 5 digits over 1 h is 3.4 M buckets (a walk costs milliseconds, seconds
   * under TSan): one distribution, a narrower range, fixed percentiles. */
  check_dist(D_BIMODAL, 20000, 1, UINT64_C(10000000), 5, 0);
}

static void test_small_counts(void **state) {
  (void)state;
  fe_hist_t *h = make(1, HOUR_NS, 3);
  assert_int_equal(fe_hist_percentile(h, 50), 0); /* empty */
  assert_int_equal(fe_hist_min(h), 0);
  assert_int_equal(fe_hist_max(h), 0);
  assert_true(fe_hist_mean(h) == 0.0);
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  assert_int_equal(fe_hist_iter_next(&it), 0);

  assert_int_equal(fe_hist_record(h, 123456789), 0);
  for (double p = 0; p <= 100; p += 12.5)
    assert_int_equal(fe_hist_percentile(h, p), 123456789); /* clamped */
  assert_int_equal(fe_hist_percentile(h, -5), 123456789);
  assert_int_equal(fe_hist_percentile(h, 250), 123456789);
  assert_int_equal(fe_hist_percentile(h, __builtin_nan("")), 123456789);

  /* Two values: ranks 1 and 2 split at p = 50. */
  assert_int_equal(fe_hist_record(h, 10), 0);
  assert_int_equal(fe_hist_percentile(h, 50), 10);
  assert_int_equal(fe_hist_percentile(h, 50.0001), 123456789);
  assert_int_equal(fe_hist_count_at(h, 10), 1);
  assert_int_equal(fe_hist_count_at(h, 11), 0);
  assert_int_equal(fe_hist_count_at(h, fe_hist_lowest_equiv(h, 123456789)), 1);
  assert_true(fe_hist_mean(h) == (123456789.0 + 10.0) / 2);

  /* Zero is recordable and exact. */
  assert_int_equal(fe_hist_record(h, 0), 0);
  assert_int_equal(fe_hist_min(h), 0);
  assert_int_equal(fe_hist_percentile(h, 1), 0);
  fe_hist_destroy(h);
}

static void test_record_n(void **state) {
  (void)state;
  fe_hist_t *a = make(1, HOUR_NS, 3), *b = make(1, HOUR_NS, 3);
  uint64_t seed = 9;
  for (int i = 0; i < 2000; i++) {
    uint64_t v = draw(D_LOGNORMAL, &seed), n = rng_range(&seed, 0, 5);
    assert_int_equal(fe_hist_record_n(a, v, n), 0);
    for (uint64_t k = 0; k < n; k++) assert_int_equal(fe_hist_record(b, v), 0);
  }
  assert_same(a, b);
  fe_hist_destroy(b);

  /* The sum passes 2^64 (3.6e12 * 1e7 = 3.6e19) and the mean stays exact. */
  assert_int_equal(fe_hist_reset(a), 0);
  assert_int_equal(fe_hist_record_n(a, HOUR_NS, 10000000), 0);
  assert_int_equal(fe_hist_record_n(a, HOUR_NS, 0), 0);
  assert_int_equal(fe_hist_count(a), 10000000);
  assert_true(fe_hist_mean(a) == (double)HOUR_NS);
  assert_int_equal(fe_hist_record_n_atomic(a, 1, 10000000), 0);
  assert_true(near(fe_hist_mean(a), ((double)HOUR_NS + 1.0) / 2));
  /* One huge record_n, too: v * n needs 128 bits. */
  assert_int_equal(fe_hist_reset(a), 0);
  assert_int_equal(fe_hist_record_n(a, HOUR_NS, UINT64_C(1) << 40), 0);
  assert_true(near(fe_hist_mean(a), (double)HOUR_NS));
  assert_int_equal(fe_hist_record_n_atomic(a, HOUR_NS - 1, UINT64_C(1) << 40),
                   0);
  assert_true(near(fe_hist_mean(a), (double)HOUR_NS - 0.5));
  fe_hist_destroy(a);
}

static void test_merge(void **state) {
  (void)state;
  fe_hist_t *a = make(1, HOUR_NS, 3), *b = make(1, HOUR_NS, 3);
  fe_hist_t *all = make(1, HOUR_NS, 3);
  uint64_t seed = 1234;
  for (int i = 0; i < 50000; i++) {
    uint64_t v = draw(D_BIMODAL, &seed);
    fe_hist_record(a, v);
    fe_hist_record(all, v);
    v = draw(D_SPAN, &seed);
    fe_hist_record(b, v);
    fe_hist_record(all, v);
  }
  fe_hist_record(b, HOUR_NS * 2); /* overflow adds up too */
  fe_hist_record(all, HOUR_NS * 2);
  assert_int_equal(fe_hist_merge(a, b), 0);
  assert_same(a, all);
  for (double p = 0; p <= 100; p += 0.5)
    assert_int_equal(fe_hist_percentile(a, p), fe_hist_percentile(all, p));

  /* Into an empty one, and a wider (but compatible) one. */
  fe_hist_t *wide = make(1, HOUR_NS * 24, 3);
  assert_int_equal(fe_hist_merge(wide, all), 0);
  assert_int_equal(fe_hist_count(wide), fe_hist_count(all));
  assert_int_equal(fe_hist_min(wide), fe_hist_min(all));
  assert_int_equal(fe_hist_max(wide), fe_hist_max(all));
  assert_true(fe_hist_mean(wide) == fe_hist_mean(all));
  assert_int_equal(fe_hist_percentile(wide, 99), fe_hist_percentile(all, 99));

  /* src == dst doubles every count. */
  uint64_t n = fe_hist_count(b);
  double mean = fe_hist_mean(b);
  assert_int_equal(fe_hist_merge(b, b), 0);
  assert_int_equal(fe_hist_count(b), 2 * n);
  assert_true(near(fe_hist_mean(b), mean));
  assert_int_equal(fe_hist_overflow(b), 2);

  /* Incompatible: dst unchanged. */
  fe_hist_t *d2 = make(1, HOUR_NS, 2), *l1k = make(1000, HOUR_NS, 3);
  fe_hist_t *l600 = make(600, HOUR_NS, 3);
  assert_int_equal(fe_hist_merge(a, d2), FE_EINCOMPAT);
  assert_int_equal(fe_hist_merge(d2, a), FE_EINCOMPAT);
  assert_int_equal(fe_hist_merge(a, l1k), FE_EINCOMPAT);
  assert_int_equal(fe_hist_merge(a, wide), FE_EINCOMPAT); /* narrower dst */
  assert_same(a, all);
  /* Same unit (512) although lowest differs: compatible. */
  fe_hist_record(l600, 777777);
  assert_int_equal(fe_hist_merge(l1k, l600), 0);
  assert_int_equal(fe_hist_count(l1k), 1);
  assert_int_equal(fe_hist_merge(NULL, a), FE_EINVAL);
  assert_int_equal(fe_hist_merge(a, NULL), FE_EINVAL);

  fe_hist_destroy(a);
  fe_hist_destroy(b);
  fe_hist_destroy(all);
  fe_hist_destroy(wide);
  fe_hist_destroy(d2);
  fe_hist_destroy(l1k);
  fe_hist_destroy(l600);
}

static void test_reset(void **state) {
  (void)state;
  fe_hist_t *h = make(1, HOUR_NS, 3), *ref = make(1, HOUR_NS, 3);
  uint64_t seed = 5;
  for (int i = 0; i < 10000; i++) fe_hist_record(h, draw(D_PARETO, &seed));
  fe_hist_record(h, UINT64_MAX);
  assert_int_equal(fe_hist_reset(h), 0);
  assert_int_equal(fe_hist_count(h), 0);
  assert_int_equal(fe_hist_overflow(h), 0);
  assert_int_equal(fe_hist_min(h), 0);
  assert_int_equal(fe_hist_max(h), 0);
  assert_true(fe_hist_mean(h) == 0.0);
  assert_int_equal(fe_hist_percentile(h, 99), 0);
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  assert_int_equal(fe_hist_iter_next(&it), 0);
  /* Works as new afterwards. */
  for (int i = 0; i < 1000; i++) {
    uint64_t v = draw(D_UNIFORM, &seed);
    fe_hist_record(h, v);
    fe_hist_record(ref, v);
  }
  assert_same(h, ref);
  fe_hist_destroy(h);
  fe_hist_destroy(ref);
}

static void test_clamp_overflow(void **state) {
  (void)state;
  fe_hist_t *h = make(1, 1000000, 3);
  fe_hist_record(h, 500);
  fe_hist_record(h, 1000000); /* exactly highest: not an overflow */
  assert_int_equal(fe_hist_overflow(h), 0);
  fe_hist_record(h, 1000001);
  fe_hist_record(h, UINT64_MAX);
  fe_hist_record_n(h, 5000000, 3);
  fe_hist_record_atomic(h, 2000000);
  fe_hist_record_n_atomic(h, 2000000, 2);
  assert_int_equal(fe_hist_count(h), 10);
  assert_int_equal(fe_hist_overflow(h), 8);
  assert_int_equal(fe_hist_max(h), 1000000);
  assert_int_equal(fe_hist_min(h), 500);
  assert_int_equal(fe_hist_percentile(h, 100), 1000000);
  assert_int_equal(fe_hist_percentile(h, 50), 1000000);
  assert_int_equal(fe_hist_percentile(h, 10), 500);
  assert_int_equal(fe_hist_count_at(h, 1000000), 9);
  assert_int_equal(fe_hist_count_at(h, UINT64_MAX), 9);
  assert_int_equal(fe_hist_highest_equiv(h, UINT64_MAX),
                   fe_hist_highest_equiv(h, 1000000));
  assert_true(fe_hist_mean(h) == (500.0 + 9 * 1000000.0) / 10);
  fe_hist_destroy(h);
}

static void test_caller_memory(void **state) {
  (void)state;
  fe_hist_config_t cfg;
  fe_hist_config_init(&cfg);
  size_t sz = fe_hist_memsize(&cfg);
  void *mem = aligned_alloc(FE_HIST_ALIGN_BEST, sz + 64);
  assert_non_null(mem);
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_hist_init(mem, sz - 1, &cfg, &d), FE_ERANGE);
  assert_int_equal(d.code, FE_ERANGE);
  assert_non_null(strstr(d.msg, "size"));
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_hist_init((char *)mem + 4, sz, &cfg, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "aligned"));
  assert_int_equal(fe_hist_init(mem, sz + 64, &cfg, NULL), 0);

  fe_hist_t *h = mem, *ref = make(1, HOUR_NS, 3);
  uint64_t seed = 3;
  for (int i = 0; i < 20000; i++) {
    uint64_t v = draw(D_EXPONENTIAL, &seed);
    fe_hist_record(h, v);
    fe_hist_record(ref, v);
  }
  assert_same(h, ref);
  fe_hist_destroy(h); /* no-op: the caller owns mem (ASan would object) */
  assert_int_equal(fe_hist_count(h), 20000);

  /* Re-init empties it; 8-byte alignment is enough. */
  assert_int_equal(fe_hist_init((char *)mem + 8, sz, &cfg, NULL), 0);
  h = (fe_hist_t *)((char *)mem + 8);
  assert_int_equal(fe_hist_count(h), 0);
  fe_hist_record(h, 42);
  assert_int_equal(fe_hist_percentile(h, 50), 42);
  free(mem);

  /* A small one in static storage. */
  static _Alignas(64) unsigned char buf[16384];
  cfg.highest = 100000;
  cfg.digits = 2;
  assert_true(fe_hist_memsize(&cfg) <= sizeof buf);
  assert_int_equal(fe_hist_init(buf, sizeof buf, &cfg, NULL), 0);
  h = (fe_hist_t *)buf;
  fe_hist_record(h, 99999);
  assert_int_equal(fe_hist_max(h), 99999);
  fe_hist_destroy(ref);
}

/* ---------------------------------------------------------------- threads */

#define THREAD_N 100000

struct writer_arg {
  fe_hist_t *h;
  uint64_t seed;
  int atomic;
};

static uint64_t thread_value(uint64_t *s) { return draw(D_LOGNORMAL, s); }

static void *writer(void *p) {
  struct writer_arg *a = p;
  uint64_t s = a->seed;
  for (int i = 0; i < THREAD_N; i++) {
    uint64_t v = thread_value(&s);
    if (!a->atomic) fe_hist_record(a->h, v);
    else if (i % 4 == 3) fe_hist_record_n_atomic(a->h, v, 2);
    else fe_hist_record_atomic(a->h, v);
  }
  return NULL;
}

struct reader_arg {
  fe_hist_t *h;
  int stop; /* written by main (release), read here (acquire) */
  uint64_t reads;
};

/* Queries while writers run: must be race-free (TSan) and sane. */
static void *reader(void *p) {
  struct reader_arg *a = p;
  while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
    uint64_t p50 = fe_hist_percentile(a->h, 50);
    uint64_t mx = fe_hist_max(a->h);
    if (p50 > mx && mx != 0) return (void *)1;
    (void)fe_hist_count(a->h);
    (void)fe_hist_mean(a->h);
    fe_hist_iter_t it;
    fe_hist_iter_init(&it, a->h);
    while (fe_hist_iter_next(&it)) {
    }
    a->reads++;
  }
  return NULL;
}

static void run_threads(int atomic, int n_writers) {
  fe_hist_t *h = make(1, HOUR_NS, 3), *ref = make(1, HOUR_NS, 3);
  pthread_t tw[2], tr;
  struct writer_arg wa[2];
  struct reader_arg ra = {h, 0, 0};
  assert_int_equal(pthread_create(&tr, NULL, reader, &ra), 0);
  for (int i = 0; i < n_writers; i++) {
    wa[i] = (struct writer_arg){h, 1000 + (uint64_t)i, atomic};
    assert_int_equal(pthread_create(&tw[i], NULL, writer, &wa[i]), 0);
  }
  for (int i = 0; i < n_writers; i++)
    assert_int_equal(pthread_join(tw[i], NULL), 0);
  __atomic_store_n(&ra.stop, 1, __ATOMIC_RELEASE); /* pairs with reader */
  void *bad = NULL;
  assert_int_equal(pthread_join(tr, &bad), 0);
  assert_null(bad);

  /* Reference: the same samples, recorded by one thread. */
  for (int w = 0; w < n_writers; w++) {
    struct writer_arg a = {ref, 1000 + (uint64_t)w, atomic};
    writer(&a);
  }
  assert_same(h, ref);
  uint64_t expect = (uint64_t)n_writers * THREAD_N;
  if (atomic) expect += (uint64_t)n_writers * (THREAD_N / 4);
  assert_int_equal(fe_hist_count(h), expect);
  fe_hist_destroy(h);
  fe_hist_destroy(ref);
}

static void test_record_atomic_two_threads(void **state) {
  (void)state;
  run_threads(1, 2);
}

static void test_single_writer_with_reader(void **state) {
  (void)state;
  run_threads(0, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_invalid_configs),
      cmocka_unit_test(test_precision_sweep),
      cmocka_unit_test(test_percentiles_default),
      cmocka_unit_test(test_percentiles_other_configs),
      cmocka_unit_test(test_small_counts),
      cmocka_unit_test(test_record_n),
      cmocka_unit_test(test_merge),
      cmocka_unit_test(test_reset),
      cmocka_unit_test(test_clamp_overflow),
      cmocka_unit_test(test_caller_memory),
      cmocka_unit_test(test_record_atomic_two_threads),
      cmocka_unit_test(test_single_writer_with_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
