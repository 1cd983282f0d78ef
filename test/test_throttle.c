/* Admission throttle: burst and rate on a fake clock, global and per-key
 * limits together, n > 1, nothing consumed on reject, account 0, table
 * full, configuration errors, counters, and concurrent admissions (frozen
 * clock, so the totals are exact).  Never sleeps for timing. */
#include "helpers.h"

#include "finevent/throttle.h"

#define MS FE_T_MS
#define SEC FE_T_SEC

/* ------------------------------------------------------------ fake clock */

/* Set by the main thread only while no admission runs; read by admitting
 * threads (relaxed: thread create/join order the changes). */
typedef struct fake_clock {
  uint64_t now;
} fake_clock_t;

static uint64_t fake_now(void *user) {
  fake_clock_t *c = user;
  return __atomic_load_n(&c->now, __ATOMIC_RELAXED);
}

static void fake_set(fake_clock_t *c, uint64_t ns) {
  __atomic_store_n(&c->now, ns, __ATOMIC_RELAXED);
}

static void fake_add(fake_clock_t *c, uint64_t ns) {
  fake_set(c, fake_now(c) + ns);
}

static void cfg_fake(fe_throttle_config_t *cfg, fake_clock_t *clk) {
  fe_throttle_config_init(cfg);
  cfg->now_ns = fake_now;
  cfg->clock_user = clk;
}

static fe_throttle_t *make(const fe_throttle_config_t *cfg) {
  fe_throttle_t *t = NULL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_throttle_create(cfg, &t, &diag);
  if (rc != 0)
    fail_msg("fe_throttle_create: %s (%d): %s", fe_err_name(rc), rc, diag.msg);
  assert_non_null(t);
  return t;
}

static fe_throttle_stats_t stats(const fe_throttle_t *t) {
  fe_throttle_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_throttle_stats(t, &s));
  return s;
}

/* Admits key one at a time until throttled; returns how many passed. */
static uint64_t drain(fe_throttle_t *t, uint64_t key) {
  uint64_t k = 0;
  for (;;) {
    int rc = fe_throttle_admit(t, key, 1);
    if (rc == FE_ETHROTTLED) return k;
    assert_fe_ok(rc);
    if (++k > 10000000) fail_msg("bucket never ran dry");
  }
}

/* ----------------------------------------------------------------- config */

static void test_config_defaults(void **state) {
  (void)state;
  fe_throttle_config_t cfg;
  memset(&cfg, 0x5a, sizeof cfg);
  fe_throttle_config_init(&cfg);
  assert_int_equal(cfg.global_rate, 0);
  assert_int_equal(cfg.global_burst, 0);
  assert_int_equal(cfg.key_rate, 0);
  assert_int_equal(cfg.key_burst, 0);
  assert_int_equal(cfg.max_keys, FE_THROTTLE_DEFAULT_MAX_KEYS);
  assert_null(cfg.now_ns);
  assert_null(cfg.clock_user);
  fe_throttle_config_init(NULL); /* no crash */
}

typedef struct bad_case {
  const char *name;
  uint64_t g_rate, g_burst, k_rate, k_burst, max_keys;
  int clock_user_only;
  int code;
  const char *needle; /* must appear in diag.msg */
} bad_case_t;

static void test_invalid_configs(void **state) {
  (void)state;
  static int dummy;
  const uint64_t R = FE_THROTTLE_RATE_MAX, B = FE_THROTTLE_BURST_MAX;
  const uint64_t K = FE_THROTTLE_MAX_KEYS_MAX;
  const bad_case_t cases[] = {
      {"no limit", 0, 0, 0, 0, 16, 0, FE_EINVAL, "no limit set"},
      {"g burst w/o rate", 0, 5, 0, 0, 16, 0, FE_EINVAL,
       "global_burst is 5 but global_rate is 0"},
      {"g rate w/o burst", 7, 0, 0, 0, 16, 0, FE_EINVAL,
       "global_rate is 7 but global_burst is 0"},
      {"k burst w/o rate", 10, 10, 0, 3, 16, 0, FE_EINVAL,
       "key_burst is 3 but key_rate is 0"},
      {"k rate w/o burst", 0, 0, 9, 0, 16, 0, FE_EINVAL,
       "key_rate is 9 but key_burst is 0"},
      {"g rate too big", R + 1, 1, 0, 0, 16, 0, FE_ERANGE,
       "global_rate 1000000001 is above the maximum 1000000000"},
      {"g burst too big", 1, B + 1, 0, 0, 16, 0, FE_ERANGE,
       "global_burst 1000000001 is above the maximum"},
      {"k rate too big", 0, 0, R + 1, 1, 16, 0, FE_ERANGE,
       "key_rate 1000000001 is above"},
      {"k burst too big", 0, 0, 1, B + 1, 16, 0, FE_ERANGE,
       "key_burst 1000000001 is above"},
      {"max_keys 0", 0, 0, 100, 10, 0, 0, FE_ERANGE,
       "max_keys 0 is not in 1..67108864"},
      {"max_keys too big", 0, 0, 100, 10, K + 1, 0, FE_ERANGE,
       "max_keys 67108865 is not in"},
      {"clock_user w/o now_ns", 0, 0, 100, 10, 16, 1, FE_EINVAL,
       "clock_user is set but now_ns is NULL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case_t *c = &cases[i];
    fe_throttle_config_t cfg;
    fe_throttle_config_init(&cfg);
    cfg.global_rate = c->g_rate;
    cfg.global_burst = c->g_burst;
    cfg.key_rate = c->k_rate;
    cfg.key_burst = c->k_burst;
    cfg.max_keys = c->max_keys;
    if (c->clock_user_only) cfg.clock_user = &dummy;
    fe_throttle_t *sentinel = (fe_throttle_t *)&dummy, *t = sentinel;
    fe_diag_t diag;
    memset(&diag, 0, sizeof diag);
    int rc = fe_throttle_create(&cfg, &t, &diag);
    if (rc != c->code)
      fail_msg("%s: got %s, expected %s (%s)", c->name, fe_err_name(rc),
               fe_err_name(c->code), diag.msg);
    assert_int_equal(diag.code, c->code);
    if (strstr(diag.msg, c->needle) == NULL)
      fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, diag.msg,
               c->needle);
    assert_ptr_equal(t, sentinel); /* out untouched on failure */
    /* diag may be NULL */
    assert_fe(fe_throttle_create(&cfg, &t, NULL), c->code);
  }

  /* Edge values that are valid: max rate and burst; max_keys ignored
   * without a per-key limit. */
  fe_throttle_config_t cfg;
  fe_throttle_config_init(&cfg);
  cfg.global_rate = R;
  cfg.global_burst = B;
  cfg.max_keys = 0;
  fe_throttle_destroy(make(&cfg));
}

static void test_null_args(void **state) {
  (void)state;
  fe_throttle_config_t cfg;
  fe_throttle_config_init(&cfg);
  cfg.key_rate = 100;
  cfg.key_burst = 10;
  fe_throttle_t *t = NULL;
  fe_diag_t diag;
  assert_fe(fe_throttle_create(NULL, &t, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "cfg is NULL"));
  assert_fe(fe_throttle_create(&cfg, NULL, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "out is NULL"));
  assert_fe(fe_throttle_admit(NULL, 1, 1), FE_EINVAL);
  assert_fe(fe_throttle_reset(NULL), FE_EINVAL);
  fe_throttle_stats_t s;
  assert_fe(fe_throttle_stats(NULL, &s), FE_EINVAL);
  fe_throttle_destroy(NULL);

  t = make(&cfg); /* real clock: only argument errors below */
  assert_fe(fe_throttle_stats(t, NULL), FE_EINVAL);
  assert_fe(fe_throttle_admit(t, 1, 0), FE_EINVAL);
  assert_fe(fe_throttle_admit(t, 1, 11), FE_ERANGE);
  assert_fe(fe_throttle_admit(t, 1, UINT32_MAX), FE_ERANGE);
  s = stats(t);
  assert_int_equal(s.admitted + s.throttled_key + s.throttled_global +
                       s.table_full + s.keys,
                   0); /* argument errors are not counted */
  assert_fe_ok(fe_throttle_admit(t, 1, 10)); /* the default clock works */
  fe_throttle_destroy(t);
}

/* ------------------------------------------------------- single thread */

static void burst_then_rate(fe_throttle_t *t, fake_clock_t *clk,
                            uint64_t key) {
  /* 10 at t = 0, the 11th throttled. */
  assert_int_equal(drain(t, key), 10);
  /* Then exactly one more every 10 ms: not 1 ns early. */
  for (int i = 0; i < 50; i++) {
    fake_add(clk, 10 * MS - 1);
    assert_fe(fe_throttle_admit(t, key, 1), FE_ETHROTTLED);
    fake_add(clk, 1);
    assert_fe_ok(fe_throttle_admit(t, key, 1));
    assert_fe(fe_throttle_admit(t, key, 1), FE_ETHROTTLED);
  }
  /* 55 ms: 5.5 tokens, so 5. */
  fake_add(clk, 55 * MS);
  assert_int_equal(drain(t, key), 5);
  /* A long idle refills only up to the burst. */
  fake_add(clk, 3600 * SEC);
  assert_int_equal(drain(t, key), 10);
  fake_add(clk, SEC); /* one second: 100 more, capped at 10 */
  assert_int_equal(drain(t, key), 10);
}

static void test_burst_then_rate_key(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 10;
  fe_throttle_t *t = make(&cfg);
  burst_then_rate(t, &clk, 77);
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, 10 + 50 + 5 + 10 + 10);
  assert_int_equal(s.throttled_key, 1 + 100 + 3);
  assert_int_equal(s.throttled_global, 0);
  assert_int_equal(s.keys, 1);
  fe_throttle_destroy(t);
}

static void test_burst_then_rate_global(void **state) {
  (void)state;
  fake_clock_t clk = {5 * SEC}; /* a clock that does not start at 0 */
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.global_rate = 100;
  cfg.global_burst = 10;
  fe_throttle_t *t = make(&cfg);
  burst_then_rate(t, &clk, 12345); /* key ignored: no per-key limit */
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.throttled_global, 1 + 100 + 3);
  assert_int_equal(s.keys, 0);
  fe_throttle_destroy(t);
}

static void test_rate_not_dividing_1e9(void **state) {
  (void)state;
  /* rate 3: T = 333333334 ns, so 3 tokens take 1000000002 ns, never less. */
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 3;
  cfg.key_burst = 1;
  fe_throttle_t *t = make(&cfg);
  assert_fe_ok(fe_throttle_admit(t, 9, 1));
  fake_set(&clk, 333333333);
  assert_fe(fe_throttle_admit(t, 9, 1), FE_ETHROTTLED);
  fake_set(&clk, 333333334);
  assert_fe_ok(fe_throttle_admit(t, 9, 1));
  fake_set(&clk, 1000000001);
  assert_fe_ok(fe_throttle_admit(t, 9, 1));
  assert_fe(fe_throttle_admit(t, 9, 1), FE_ETHROTTLED);
  fe_throttle_destroy(t);
}

static void test_global_and_key_interact(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.global_rate = 1000; /* 1 ms a token */
  cfg.global_burst = 20;
  cfg.key_rate = 100; /* 10 ms a token */
  cfg.key_burst = 5;
  fe_throttle_t *t = make(&cfg);

  /* One key exhausted does not affect another. */
  assert_int_equal(drain(t, 1), 5);
  assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  assert_int_equal(drain(t, 2), 5);
  assert_int_equal(drain(t, 3), 5);
  assert_int_equal(drain(t, 4), 5);
  /* The global bucket (20) is now empty: every key is throttled, even a
   * fresh one, and an exhausted key counts as a key reject. */
  fe_throttle_stats_t s0 = stats(t);
  assert_fe(fe_throttle_admit(t, 5, 1), FE_ETHROTTLED);
  assert_fe(fe_throttle_admit(t, 6, 1), FE_ETHROTTLED);
  assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  fe_throttle_stats_t s1 = stats(t);
  assert_int_equal(s1.throttled_global - s0.throttled_global, 2);
  assert_int_equal(s1.throttled_key - s0.throttled_key, 1);
  assert_int_equal(s1.rollbacks, 0);

  /* 3 ms later the global bucket holds 3; the keys 1..4 still hold 0.3. */
  fake_add(&clk, 3 * MS);
  assert_int_equal(drain(t, 5), 3);
  assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  fe_throttle_destroy(t);
}

static void test_n_greater_than_one(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 10;
  fe_throttle_t *t = make(&cfg);
  assert_fe_ok(fe_throttle_admit(t, 3, 4));
  assert_fe_ok(fe_throttle_admit(t, 3, 4));
  assert_fe(fe_throttle_admit(t, 3, 4), FE_ETHROTTLED); /* only 2 left */
  assert_fe(fe_throttle_admit(t, 3, 3), FE_ETHROTTLED);
  assert_fe_ok(fe_throttle_admit(t, 3, 2)); /* the rejects took nothing */
  assert_fe(fe_throttle_admit(t, 3, 1), FE_ETHROTTLED);
  fake_add(&clk, 30 * MS); /* 3 tokens */
  assert_fe(fe_throttle_admit(t, 3, 4), FE_ETHROTTLED);
  assert_fe_ok(fe_throttle_admit(t, 3, 3));
  assert_fe(fe_throttle_admit(t, 3, 11), FE_ERANGE); /* never admissible */
  fake_add(&clk, SEC);
  assert_fe_ok(fe_throttle_admit(t, 3, 10)); /* a whole burst at once */
  assert_fe(fe_throttle_admit(t, 3, 1), FE_ETHROTTLED);
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, 5);
  assert_int_equal(s.throttled_key, 5);
  fe_throttle_destroy(t);
}

static void test_reject_consumes_nothing(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.global_rate = 1000; /* 1 ms a token */
  cfg.global_burst = 4;
  cfg.key_rate = 1; /* 1 s a token */
  cfg.key_burst = 5;
  fe_throttle_t *t = make(&cfg);

  /* Global reject takes nothing from the key: key 1 keeps its last token. */
  assert_fe_ok(fe_throttle_admit(t, 1, 4)); /* global 0, key 1 holds 1 */
  for (int i = 0; i < 3; i++)
    assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  assert_int_equal(stats(t).throttled_global, 3);
  fake_add(&clk, 4 * MS); /* global 4 again; key 1 gains 0.004 */
  assert_fe_ok(fe_throttle_admit(t, 1, 1));
  assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  assert_int_equal(stats(t).throttled_key, 1);

  /* Key reject takes nothing from the global bucket: it still holds 3. */
  for (int i = 0; i < 5; i++)
    assert_fe(fe_throttle_admit(t, 1, 1), FE_ETHROTTLED);
  assert_fe(fe_throttle_admit(t, 2, 4), FE_ETHROTTLED); /* global short */
  assert_fe_ok(fe_throttle_admit(t, 2, 3));
  assert_fe(fe_throttle_admit(t, 3, 1), FE_ETHROTTLED);
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, 3);
  assert_int_equal(s.throttled_key, 6);
  assert_int_equal(s.throttled_global, 5);
  assert_int_equal(s.rollbacks, 0);
  fe_throttle_destroy(t);
}

static void test_account_zero(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 3;
  cfg.max_keys = 3;
  fe_throttle_t *t = make(&cfg);
  assert_int_equal(drain(t, 0), 3);
  assert_int_equal(drain(t, UINT64_MAX), 3); /* not confused with 0 */
  assert_int_equal(drain(t, 1), 3);
  assert_int_equal(stats(t).keys, 3);
  assert_fe(fe_throttle_admit(t, 2, 1), FE_ETABLEFULL);
  fake_add(&clk, 10 * MS);
  assert_int_equal(drain(t, 0), 1);

  /* Account 0 needs a place in the table like any other. */
  assert_fe_ok(fe_throttle_reset(t));
  assert_int_equal(drain(t, 5), 3);
  assert_int_equal(drain(t, 6), 3);
  assert_int_equal(drain(t, 7), 3);
  assert_fe(fe_throttle_admit(t, 0, 1), FE_ETABLEFULL);
  assert_int_equal(stats(t).table_full, 1);
  fe_throttle_destroy(t);
}

static void test_table_full(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 2;
  cfg.max_keys = 100;
  fe_throttle_t *t = make(&cfg);
  for (uint64_t k = 1; k <= 100; k++)
    assert_fe_ok(fe_throttle_admit(t, k * 1000003, 1));
  assert_int_equal(stats(t).keys, 100);
  for (uint64_t k = 101; k <= 110; k++)
    assert_fe(fe_throttle_admit(t, k * 1000003, 1), FE_ETABLEFULL);
  assert_fe(fe_throttle_admit(t, 0, 1), FE_ETABLEFULL);
  /* Present keys keep working, with their own state (one token left). */
  for (uint64_t k = 1; k <= 100; k++) {
    assert_fe_ok(fe_throttle_admit(t, k * 1000003, 1));
    assert_fe(fe_throttle_admit(t, k * 1000003, 1), FE_ETHROTTLED);
  }
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.table_full, 11);
  assert_int_equal(s.keys, 100);
  assert_int_equal(s.admitted, 200);
  assert_int_equal(s.throttled_key, 100);

  /* Reset forgets every key and counter and refills. */
  assert_fe_ok(fe_throttle_reset(t));
  s = stats(t);
  assert_int_equal(s.admitted + s.throttled_key + s.throttled_global +
                       s.table_full + s.rollbacks + s.keys,
                   0);
  for (uint64_t k = 101; k <= 200; k++)
    assert_int_equal(drain(t, k * 1000003), 2);
  assert_fe(fe_throttle_admit(t, 1000003, 1), FE_ETABLEFULL);
  fe_throttle_destroy(t);
}

/* The smallest table: one key fits, a second is FE_ETABLEFULL (this once
 * allocated fewer bytes than its alignment, which ASan rejects). */
static void test_table_of_one(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 1;
  cfg.max_keys = 1;
  fe_throttle_t *t = make(&cfg);
  assert_fe_ok(fe_throttle_admit(t, 42, 1));
  assert_fe(fe_throttle_admit(t, 42, 1), FE_ETHROTTLED);
  assert_fe(fe_throttle_admit(t, 43, 1), FE_ETABLEFULL);
  fe_throttle_destroy(t);
}

/* Random admissions against an independent model of two token buckets
 * (exact rational arithmetic in ns units); the counters must add up. */
static void test_model_and_counters(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.global_rate = 250; /* 4 ms a token */
  cfg.global_burst = 12;
  cfg.key_rate = 50; /* 20 ms a token */
  cfg.key_burst = 4;
  cfg.max_keys = 6;
  fe_throttle_t *t = make(&cfg);

  /* Model: tokens scaled by T (ns of debt headroom). */
  const uint64_t gT = 4 * MS, kT = 20 * MS;
  uint64_t g_room = 12 * gT, k_room[9];
  int present[9] = {0};
  uint64_t n_present = 0, last = 0;
  for (int k = 0; k < 9; k++) k_room[k] = 4 * kT;
  uint64_t want_adm = 0, want_g = 0, want_k = 0, want_full = 0;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 42);
  for (int i = 0; i < 20000; i++) {
    fake_add(&clk, fe_t_rng_range(&rng, 0, 3) * (uint64_t)MS +
                       fe_t_rng_range(&rng, 0, 999));
    uint64_t now = fake_now(&clk), dt = now - last;
    last = now;
    g_room = g_room + dt > 12 * gT ? 12 * gT : g_room + dt;
    for (int k = 0; k < 9; k++)
      k_room[k] = k_room[k] + dt > 4 * kT ? 4 * kT : k_room[k] + dt;
    uint32_t key = fe_t_rng_range(&rng, 0, 8);
    uint32_t n = fe_t_rng_range(&rng, 1, 4);
    int want;
    if (!present[key] && n_present == 6) {
      want = FE_ETABLEFULL;
      want_full++;
    } else {
      if (!present[key]) {
        present[key] = 1;
        n_present++;
      }
      if (k_room[key] < n * kT) {
        want = FE_ETHROTTLED;
        want_k++;
      } else if (g_room < n * gT) {
        want = FE_ETHROTTLED;
        want_g++;
      } else {
        want = 0;
        want_adm++;
        k_room[key] -= n * kT;
        g_room -= n * gT;
      }
    }
    int rc = fe_throttle_admit(t, key, n);
    if (rc != want)
      fail_msg("step %d (t=%" PRIu64 " key %u n %u): got %s, expected %s", i,
               now, key, n, fe_err_name(rc), fe_err_name(want));
  }
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, want_adm);
  assert_int_equal(s.throttled_global, want_g);
  assert_int_equal(s.throttled_key, want_k);
  assert_int_equal(s.table_full, want_full);
  assert_int_equal(s.keys, 6);
  assert_int_equal(s.admitted + s.throttled_global + s.throttled_key +
                       s.table_full,
                   20000);
  assert_true(want_adm > 1000 && want_g > 100 && want_k > 100 &&
              want_full > 100); /* every path exercised */
  fe_throttle_destroy(t);
}

/* ---------------------------------------------------------- concurrency */

#define N_THREADS 4

typedef struct worker {
  fe_throttle_t *t;
  fe_t_errs_t *errs;
  pthread_barrier_t *go;
  uint32_t id;
  uint64_t first_key, n_keys; /* keys to admit (mode many keys) */
  uint64_t tries;             /* admissions to attempt (mode hammer) */
  uint64_t key;               /* key to hammer */
  /* results, read after join */
  uint64_t admitted, throttled, other;
} worker_t;

static void *hammer_main(void *arg) {
  worker_t *w = arg;
  pthread_barrier_wait(w->go);
  for (uint64_t i = 0; i < w->tries; i++) {
    int rc = fe_throttle_admit(w->t, w->key, 1);
    if (rc == 0)
      w->admitted++;
    else if (rc == FE_ETHROTTLED)
      w->throttled++;
    else
      w->other++;
  }
  FE_T_CHECK_EQ(w->errs, w->other, 0);
  return NULL;
}

static void run_workers(worker_t *w, void *(*fn)(void *)) {
  pthread_t th[N_THREADS];
  pthread_barrier_t go;
  assert_int_equal(pthread_barrier_init(&go, NULL, N_THREADS), 0);
  for (int i = 0; i < N_THREADS; i++) {
    w[i].go = &go;
    assert_int_equal(pthread_create(&th[i], NULL, fn, &w[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  pthread_barrier_destroy(&go);
}

static void test_mt_one_key_exact_burst(void **state) {
  (void)state;
  fake_clock_t clk = {1 * SEC}; /* frozen */
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 100;
  cfg.key_burst = 5000;
  fe_throttle_t *t = make(&cfg);
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  worker_t w[N_THREADS];
  memset(w, 0, sizeof w);
  for (uint32_t i = 0; i < N_THREADS; i++) {
    w[i].t = t;
    w[i].errs = &errs;
    w[i].id = i;
    w[i].key = 42;
    w[i].tries = 5000;
  }
  run_workers(w, hammer_main);
  fe_t_assert_clean(&errs);
  uint64_t adm = 0, thr = 0;
  for (int i = 0; i < N_THREADS; i++) {
    adm += w[i].admitted;
    thr += w[i].throttled;
  }
  assert_int_equal(adm, 5000); /* exactly the burst, never more */
  assert_int_equal(thr, N_THREADS * 5000 - 5000);
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, 5000);
  assert_int_equal(s.throttled_key, thr);
  assert_int_equal(s.keys, 1);
  fe_throttle_destroy(t);
}

/* Every thread admits every key once, each starting at a different offset
 * so that first insertions race; key 0 included. */
static void *many_keys_main(void *arg) {
  worker_t *w = arg;
  pthread_barrier_wait(w->go);
  for (uint64_t i = 0; i < w->n_keys; i++) {
    uint64_t k = w->first_key + (i + w->id * w->n_keys / N_THREADS) % w->n_keys;
    int rc = fe_throttle_admit(w->t, k * UINT64_C(0x9E3779B97F4A7C15), 1);
    if (rc == 0)
      w->admitted++;
    else
      w->other++;
  }
  FE_T_CHECK_EQ(w->errs, w->other, 0);
  return NULL;
}

static void test_mt_many_keys_inserted_once(void **state) {
  (void)state;
  enum { KEYS = 3000 };
  fake_clock_t clk = {0}; /* frozen */
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 1;
  cfg.key_burst = N_THREADS; /* each thread's admission fits, no more */
  cfg.max_keys = KEYS;
  fe_throttle_t *t = make(&cfg);
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  for (int round = 0; round < 3; round++) {
    worker_t w[N_THREADS];
    memset(w, 0, sizeof w);
    for (uint32_t i = 0; i < N_THREADS; i++) {
      w[i].t = t;
      w[i].errs = &errs;
      w[i].id = i;
      w[i].first_key = 0; /* key 0 maps to account 0 */
      w[i].n_keys = KEYS;
    }
    run_workers(w, many_keys_main);
    fe_t_assert_clean(&errs);
    fe_throttle_stats_t s = stats(t);
    assert_int_equal(s.keys, KEYS); /* each key inserted once */
    assert_int_equal(s.admitted, (uint64_t)KEYS * N_THREADS);
    assert_int_equal(s.table_full, 0);
    /* One bucket per key: every bucket now empty (a duplicate slot would
     * hold fresh tokens), and the table takes no new key. */
    for (uint64_t k = 0; k < KEYS; k++)
      assert_fe(fe_throttle_admit(t, k * UINT64_C(0x9E3779B97F4A7C15), 1),
                FE_ETHROTTLED);
    assert_fe(fe_throttle_admit(t, 7, 1), FE_ETABLEFULL);
    assert_fe_ok(fe_throttle_reset(t));
  }
  fe_throttle_destroy(t);
}

/* Threads on different keys share a global bucket smaller than the sum of
 * their key bursts: the total is exactly the global burst, and each key's
 * bucket lost exactly what it admitted (rollbacks give back exactly: the
 * clock is frozen). */
static void test_mt_global_and_keys(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.global_rate = 1000000; /* 1 us a token */
  cfg.global_burst = 3000;
  cfg.key_rate = 1; /* 1 s a token */
  cfg.key_burst = 1000;
  fe_throttle_t *t = make(&cfg);
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  uint64_t rollbacks = 0;
  for (int round = 0; round < 5; round++) {
    worker_t w[N_THREADS];
    memset(w, 0, sizeof w);
    for (uint32_t i = 0; i < N_THREADS; i++) {
      w[i].t = t;
      w[i].errs = &errs;
      w[i].id = i;
      w[i].key = 100 + i;
      w[i].tries = 2000;
    }
    run_workers(w, hammer_main);
    fe_t_assert_clean(&errs);
    uint64_t adm = 0;
    for (int i = 0; i < N_THREADS; i++) {
      assert_true(w[i].admitted <= 1000);
      adm += w[i].admitted;
    }
    assert_int_equal(adm, 3000);
    fe_throttle_stats_t s = stats(t);
    assert_int_equal(s.admitted, 3000);
    assert_int_equal(s.admitted + s.throttled_global + s.throttled_key,
                     N_THREADS * 2000);
    rollbacks += s.rollbacks;
    /* Refill the global bucket (3 ms) while the keys gain 0.003 token:
     * each key must hold exactly 1000 - what it admitted. */
    fake_add(&clk, 3 * MS);
    for (int i = 0; i < N_THREADS; i++)
      assert_int_equal(drain(t, 100 + i), 1000 - w[i].admitted);
    assert_fe_ok(fe_throttle_reset(t));
    fake_set(&clk, 0);
  }
  print_message("    (%" PRIu64 " rollbacks over 5 rounds)\n", rollbacks);
  fe_throttle_destroy(t);
}

/* Threads insert disjoint sets of new keys into a table of 64 until it
 * refuses: no refusal before 64 keys are in, the count stays within 64 +
 * threads - 1 (the documented overshoot), and every key that got in is
 * present (a second admission finds it: FE_ETHROTTLED, burst 1), every
 * refused key absent (FE_ETABLEFULL again). */
static void *fill_main(void *arg) {
  worker_t *w = arg;
  pthread_barrier_wait(w->go);
  for (uint64_t i = 0; i < w->n_keys; i++) {
    int rc = fe_throttle_admit(w->t, w->first_key + i, 1);
    if (rc == 0)
      w->admitted++;
    else if (rc == FE_ETABLEFULL)
      w->throttled++;
    else
      w->other++;
  }
  FE_T_CHECK_EQ(w->errs, w->other, 0);
  return NULL;
}

static void test_mt_table_fills(void **state) {
  (void)state;
  fake_clock_t clk = {0};
  fe_throttle_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.key_rate = 1;
  cfg.key_burst = 1;
  cfg.max_keys = 64;
  fe_throttle_t *t = make(&cfg);
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  for (int round = 0; round < 50; round++) {
    worker_t w[N_THREADS];
    memset(w, 0, sizeof w);
    for (uint32_t i = 0; i < N_THREADS; i++) {
      w[i].t = t;
      w[i].errs = &errs;
      w[i].id = i;
      w[i].first_key = (uint64_t)i * 1000; /* thread 0 includes account 0 */
      w[i].n_keys = 40;
    }
    run_workers(w, fill_main);
    fe_t_assert_clean(&errs);
    fe_throttle_stats_t s = stats(t);
    uint64_t in = 0;
    for (int i = 0; i < N_THREADS; i++) in += w[i].admitted;
    assert_int_equal(s.keys, in);
    assert_true(in >= 64 && in <= 64 + N_THREADS - 1);
    assert_int_equal(s.table_full, N_THREADS * 40 - in);
    uint64_t present = 0;
    for (uint32_t i = 0; i < N_THREADS; i++)
      for (uint64_t k = 0; k < 40; k++) {
        int rc = fe_throttle_admit(t, (uint64_t)i * 1000 + k, 1);
        if (rc == FE_ETHROTTLED)
          present++;
        else if (rc != FE_ETABLEFULL)
          fail_msg("key %" PRIu64 ": %s", (uint64_t)i * 1000 + k,
                   fe_err_name(rc));
      }
    assert_int_equal(present, in);
    assert_fe_ok(fe_throttle_reset(t));
  }
  fe_throttle_destroy(t);
}

/* A clock that moves 50 ns at every reading keeps the global bucket at the
 * edge of empty, so admissions race for its last token and rollbacks
 * (with a partial give-back: time moved) happen.  Exact GCRA bounds hold:
 * over [0, end] a bucket admits at most burst + end / T, whatever the
 * interleaving; a rollback that gave back too much would break the key
 * bound. */
static uint64_t ticking_now(void *user) {
  return __atomic_fetch_add((uint64_t *)user, 50, __ATOMIC_RELAXED);
}

static void test_mt_rollback_bounds(void **state) {
  (void)state;
  uint64_t clk = 0;
  fe_throttle_config_t cfg;
  fe_throttle_config_init(&cfg);
  cfg.now_ns = ticking_now;
  cfg.clock_user = &clk;
  cfg.global_rate = 1000000; /* 1000 ns a token */
  cfg.global_burst = 10;
  cfg.key_rate = 200000; /* 5000 ns a token: the global bucket binds */
  cfg.key_burst = 20;
  fe_throttle_t *t = make(&cfg);
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  worker_t w[N_THREADS];
  memset(w, 0, sizeof w);
  for (uint32_t i = 0; i < N_THREADS; i++) {
    w[i].t = t;
    w[i].errs = &errs;
    w[i].id = i;
    w[i].key = 500 + i;
    w[i].tries = 20000;
  }
  run_workers(w, hammer_main);
  fe_t_assert_clean(&errs);
  uint64_t end = __atomic_load_n(&clk, __ATOMIC_RELAXED), adm = 0;
  for (int i = 0; i < N_THREADS; i++) {
    if (w[i].admitted > 20 + end / 5000)
      fail_msg("key %d admitted %" PRIu64 " > %" PRIu64, i, w[i].admitted,
               20 + end / 5000);
    adm += w[i].admitted;
  }
  if (adm > 10 + end / 1000)
    fail_msg("admitted %" PRIu64 " > %" PRIu64, adm, 10 + end / 1000);
  fe_throttle_stats_t s = stats(t);
  assert_int_equal(s.admitted, adm);
  assert_int_equal(s.admitted + s.throttled_global + s.throttled_key,
                   N_THREADS * 20000);
  assert_true(s.rollbacks <= s.throttled_global);
  print_message("    (admitted %" PRIu64 " of bound %" PRIu64 ", %" PRIu64
                " rollbacks)\n", adm, 10 + end / 1000, s.rollbacks);
  fe_throttle_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_config_defaults),
      FE_T_TEST(test_invalid_configs),
      FE_T_TEST(test_null_args),
      FE_T_TEST(test_burst_then_rate_key),
      FE_T_TEST(test_burst_then_rate_global),
      FE_T_TEST(test_rate_not_dividing_1e9),
      FE_T_TEST(test_global_and_key_interact),
      FE_T_TEST(test_n_greater_than_one),
      FE_T_TEST(test_reject_consumes_nothing),
      FE_T_TEST(test_account_zero),
      FE_T_TEST(test_table_full),
      FE_T_TEST(test_table_of_one),
      FE_T_TEST(test_model_and_counters),
      FE_T_TEST(test_mt_one_key_exact_burst),
      FE_T_TEST(test_mt_many_keys_inserted_once),
      FE_T_TEST(test_mt_global_and_keys),
      FE_T_TEST(test_mt_rollback_bounds),
      FE_T_TEST(test_mt_table_fills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
