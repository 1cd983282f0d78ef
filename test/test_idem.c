/* Idempotency table: keys and fingerprints, claim / complete / replay,
 * in-progress answers, mismatches, a full table that never overwrites,
 * leases and takeovers, extend, abandon, failure caching both ways,
 * retention and the reaper, restore, counters, configuration errors; and
 * concurrently: one winner per key among racing claims, the reaper
 * recycling slots under lookups and claims (every outcome read is checked
 * against its key), lease expiry racing completion and extension.  Every
 * clock is a fake one; nothing sleeps for timing. */
#include "helpers.h"

#include "finevent/idem.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ------------------------------------------------------------ fake clock */

/* Written by the main thread between phases, or advanced atomically by
 * the ticking variant; read by every table call. */
typedef struct fake_clock {
  uint64_t now;
  int tick; /* each reading advances the clock by 1 */
} fake_clock_t;

static uint64_t fake_now(void *user) {
  fake_clock_t *c = user;
  if (__atomic_load_n(&c->tick, __ATOMIC_RELAXED))
    return __atomic_fetch_add(&c->now, 1, __ATOMIC_RELAXED);
  return __atomic_load_n(&c->now, __ATOMIC_RELAXED);
}

static void fake_set(fake_clock_t *c, uint64_t ns) {
  __atomic_store_n(&c->now, ns, __ATOMIC_RELAXED);
}

static void cfg_fake(fe_idem_config_t *cfg, fake_clock_t *clk) {
  fe_idem_config_init(cfg);
  cfg->now_ns = fake_now;
  cfg->clock_user = clk;
  cfg->capacity = 1024;
  cfg->lease_ns = 100;
  cfg->retention_ns = 1000;
}

static fe_idem_t *make(const fe_idem_config_t *cfg) {
  fe_idem_t *t = NULL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_idem_create(cfg, &t, &diag);
  if (rc != 0)
    fail_msg("fe_idem_create: %s (%d): %s", fe_err_name(rc), rc, diag.msg);
  assert_non_null(t);
  return t;
}

static fe_idem_stats_t stats(const fe_idem_t *t) {
  fe_idem_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_idem_stats(t, &s));
  return s;
}

/* ------------------------------------------------------- keys, outcomes */

/* Key number n of account n % 7: "order-<n>". */
static fe_idem_key_t key_of(uint64_t n) {
  char id[32];
  int len = snprintf(id, sizeof id, "order-%" PRIu64, n);
  fe_idem_key_t k;
  if (fe_idem_key(n % 7, id, (size_t)len, &k) != 0)
    memset(&k, 0, sizeof k);
  return k;
}

/* An outcome every field of which depends on the key and on v, so that a
 * copy mixing two outcomes (of two keys, or two versions) fails
 * outcome_ok(). */
static fe_idem_outcome_t outcome_for(fe_idem_key_t k, uint32_t v) {
  fe_idem_outcome_t o;
  memset(&o, 0, sizeof o);
  o.status = FE_IDEM_COMPLETED;
  o.reason = v;
  o.ref = k.lo ^ v;
  o.filled_quantity = (int64_t)(k.hi & 0xffffff) + v;
  o.avg_price = (int64_t)((k.lo >> 8) & 0xffffffff) * 3 + v;
  snprintf(o.venue_order_id, sizeof o.venue_order_id, "V%016" PRIx64 "-%u",
           k.hi, v);
  for (int j = 0; j < 32; j++)
    o.user[j] = (uint8_t)((k.hi >> ((j % 8) * 8)) ^ (uint64_t)j ^ v);
  return o;
}

static int outcome_ok(fe_idem_key_t k, const fe_idem_outcome_t *o) {
  fe_idem_outcome_t want = outcome_for(k, o->reason);
  return memcmp(&want, o, sizeof want) == 0;
}

static void assert_outcome_eq(const fe_idem_outcome_t *a,
                              const fe_idem_outcome_t *b) {
  assert_memory_equal(a, b, sizeof *a);
}

/* A key with a chosen home bucket (lo's low bits) and tag (hi's top bits);
 * `salt` makes it distinct from others with the same home and tag. */
static fe_idem_key_t raw_key(uint64_t bucket, uint64_t tag, uint64_t salt) {
  fe_idem_key_t k;
  k.lo = bucket | (salt << 32);
  k.hi = (tag << 44) | salt;
  return k;
}

static fe_order_t an_order(void) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = 42;
  o.quantity = 100;
  o.price = 123 * FE_PRICE_SCALE;
  o.side = FE_SIDE_BUY;
  o.type = FE_ORD_LIMIT;
  o.tif = FE_TIF_GTD;
  o.expire_ns = 1700000000000000000ull;
  strcpy(o.client_order_id, "C-0001");
  strcpy(o.symbol, "ACME");
  o.client_ts_ns = 1;
  o.recv_ts_ns = 2;
  return o;
}

/* -------------------------------------------------------------- config */

static void test_config_defaults(void **state) {
  (void)state;
  fe_idem_config_t cfg;
  memset(&cfg, 0x5a, sizeof cfg);
  fe_idem_config_init(&cfg);
  assert_int_equal(cfg.capacity, FE_IDEM_DEFAULT_CAPACITY);
  assert_int_equal(cfg.max_probe, 8);
  assert_int_equal(cfg.cache_failures, 1);
  assert_int_equal(cfg.lease_ns, 30 * FE_T_SEC);
  assert_int_equal(cfg.retention_ns, 24 * 3600 * FE_T_SEC);
  assert_null(cfg.now_ns);
  assert_null(cfg.clock_user);
  fe_idem_config_init(NULL); /* no crash */
  fe_idem_t *t = make(&cfg);  /* the defaults are valid */
  assert_int_equal(stats(t).capacity, FE_IDEM_DEFAULT_CAPACITY);
  fe_idem_destroy(t);
  fe_idem_destroy(NULL);
}

typedef struct bad_case {
  const char *name;
  uint64_t capacity;
  uint32_t probe;
  uint64_t lease, retention;
  int cache_failures;
  int clock_user_only;
  int code;
  const char *needle;
} bad_case_t;

static void test_invalid_configs(void **state) {
  (void)state;
  static int dummy;
  const uint64_t D = FE_IDEM_DURATION_MAX, C = FE_IDEM_CAPACITY_MAX;
  const bad_case_t cases[] = {
      {"capacity 0", 0, 8, 1, 1, 1, 0, FE_ERANGE,
       "capacity 0 is not a power of two in 8..268435456"},
      {"capacity 4", 4, 8, 1, 1, 1, 0, FE_ERANGE, "capacity 4 is not"},
      {"capacity 1000", 1000, 8, 1, 1, 1, 0, FE_ERANGE, "capacity 1000 is"},
      {"capacity too big", C * 2, 8, 1, 1, 1, 0, FE_ERANGE,
       "capacity 536870912 is"},
      {"probe 0", 64, 0, 1, 1, 1, 0, FE_ERANGE, "max_probe 0 is not in 1..64"},
      {"probe 65", 64, 65, 1, 1, 1, 0, FE_ERANGE, "max_probe 65 is not"},
      {"lease 0", 64, 8, 0, 1, 1, 0, FE_ERANGE, "lease_ns 0 is not in 1.."},
      {"lease too big", 64, 8, D + 1, 1, 1, 0, FE_ERANGE,
       "lease_ns 4611686018427387905 is not"},
      {"retention 0", 64, 8, 1, 0, 1, 0, FE_ERANGE,
       "retention_ns 0 is not in 1.."},
      {"retention too big", 64, 8, 1, D + 1, 1, 0, FE_ERANGE,
       "retention_ns 4611686018427387905"},
      {"cache_failures 2", 64, 8, 1, 1, 2, 0, FE_EINVAL,
       "cache_failures is 2; must be 0 or 1"},
      {"clock_user w/o now_ns", 64, 8, 1, 1, 1, 1, FE_EINVAL,
       "clock_user is set but now_ns is NULL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case_t *c = &cases[i];
    fe_idem_config_t cfg;
    fe_idem_config_init(&cfg);
    cfg.capacity = c->capacity;
    cfg.max_probe = c->probe;
    cfg.lease_ns = c->lease;
    cfg.retention_ns = c->retention;
    cfg.cache_failures = c->cache_failures;
    if (c->clock_user_only)
      cfg.clock_user = &dummy;
    fe_idem_t *sentinel = (fe_idem_t *)&dummy, *t = sentinel;
    fe_diag_t diag;
    memset(&diag, 0, sizeof diag);
    int rc = fe_idem_create(&cfg, &t, &diag);
    if (rc != c->code)
      fail_msg("%s: got %s, expected %s (%s)", c->name, fe_err_name(rc),
               fe_err_name(c->code), diag.msg);
    assert_int_equal(diag.code, c->code);
    if (strstr(diag.msg, c->needle) == NULL)
      fail_msg("%s: message '%s' lacks '%s'", c->name, diag.msg, c->needle);
    assert_ptr_equal(t, sentinel); /* untouched */
  }
  fe_idem_config_t cfg;
  fe_idem_config_init(&cfg);
  fe_diag_t diag;
  assert_fe(fe_idem_create(NULL, NULL, NULL), FE_EINVAL);
  fe_idem_t *t;
  assert_fe(fe_idem_create(NULL, &t, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "cfg is NULL"));
  assert_fe(fe_idem_create(&cfg, NULL, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "out is NULL"));
  /* Bounds that are valid: smallest table, probe above the bucket count
   * (clamped), longest durations. */
  cfg.capacity = 8;
  cfg.max_probe = FE_IDEM_PROBE_MAX;
  cfg.lease_ns = D;
  cfg.retention_ns = D;
  cfg.cache_failures = 0;
  t = make(&cfg);
  fe_idem_destroy(t);
}

static void test_null_args(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1);
  fe_idem_claim_t c;
  fe_idem_entry_t e;
  fe_idem_outcome_t o = outcome_for(k, 1);
  assert_fe(fe_idem_claim(NULL, &k, 1, &c), FE_EINVAL);
  assert_fe(fe_idem_claim(t, NULL, 1, &c), FE_EINVAL);
  assert_fe(fe_idem_claim(t, &k, 1, NULL), FE_EINVAL);
  assert_fe(fe_idem_claim_lease(t, &k, 1, FE_IDEM_DURATION_MAX + 1, &c),
            FE_ERANGE);
  assert_fe(fe_idem_complete(NULL, 1, &o), FE_EINVAL);
  assert_fe(fe_idem_complete(t, 1, NULL), FE_EINVAL);
  assert_fe(fe_idem_abandon(NULL, 1), FE_EINVAL);
  assert_fe(fe_idem_extend(NULL, 1, 0), FE_EINVAL);
  assert_fe(fe_idem_lookup(NULL, &k, &e), FE_EINVAL);
  assert_fe(fe_idem_lookup(t, NULL, &e), FE_EINVAL);
  assert_fe(fe_idem_lookup(t, &k, NULL), FE_EINVAL);
  assert_fe(fe_idem_reap(NULL, 1, NULL), FE_EINVAL);
  assert_fe(fe_idem_reap(t, 0, NULL), FE_EINVAL);
  assert_fe(fe_idem_restore(NULL, &k, 1, &o, 0), FE_EINVAL);
  assert_fe(fe_idem_restore(t, NULL, 1, &o, 0), FE_EINVAL);
  assert_fe(fe_idem_restore(t, &k, 1, NULL, 0), FE_EINVAL);
  assert_fe(fe_idem_stats(NULL, NULL), FE_EINVAL);
  fe_idem_stats_t s;
  assert_fe(fe_idem_stats(NULL, &s), FE_EINVAL);
  assert_fe(fe_idem_stats(t, NULL), FE_EINVAL);
  fe_idem_prefetch(NULL, &k); /* no crash */
  fe_idem_prefetch(t, NULL);
  fe_idem_prefetch(t, &k);
  /* None of those was counted. */
  s = stats(t);
  assert_int_equal(s.claims, 0);
  assert_int_equal(s.live, 0);
  fe_idem_destroy(t);
}

/* The claim hints read and prefetch only: with them, the table answers
 * and counts exactly as without (keys done, in progress, abandoned, never
 * seen, in a table full enough that chains cross buckets). */
static void test_prefetch_hints_change_nothing(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 64;
  fe_idem_t *t = make(&cfg);
  enum { KEYS = 60 };
  for (uint64_t i = 0; i < 48; i++) {
    fe_idem_key_t k = key_of(i);
    fe_idem_claim_t c;
    assert_fe(fe_idem_claim(t, &k, i, &c), 0);
    fe_idem_outcome_t o = outcome_for(k, i);
    if (i % 3 == 0)
      assert_fe(fe_idem_complete(t, c.token, &o), 0);
    else if (i % 3 == 1)
      assert_fe(fe_idem_abandon(t, c.token), 0); /* a tombstone */
  }
  fe_idem_entry_t before[KEYS], after[KEYS];
  int rb[KEYS], ra[KEYS];
  memset(before, 0, sizeof before);
  memset(after, 0, sizeof after);
  for (uint64_t i = 0; i < KEYS; i++) {
    fe_idem_key_t k = key_of(i);
    rb[i] = fe_idem_lookup(t, &k, &before[i]);
  }
  fe_idem_stats_t s0 = stats(t);
  fe_idem_key_t k0 = key_of(0);
  fe_idem_prefetch_claim(NULL, &k0); /* no crash */
  fe_idem_prefetch_claim(t, NULL);
  for (uint64_t i = 0; i < KEYS; i++) {
    fe_idem_key_t k = key_of(i);
    fe_idem_prefetch(t, &k);
    fe_idem_prefetch_claim(t, &k);
  }
  for (uint64_t i = 0; i < KEYS; i++) {
    fe_idem_key_t k = key_of(i);
    ra[i] = fe_idem_lookup(t, &k, &after[i]);
    assert_int_equal(ra[i], rb[i]);
    assert_memory_equal(&after[i], &before[i], sizeof after[i]);
  }
  fe_idem_stats_t s1 = stats(t);
  assert_memory_equal(&s1, &s0, sizeof s1);
  /* And a claim after the hints behaves as ever: a new key wins, a done
   * one replays. */
  fe_idem_key_t fresh = key_of(1000), done = key_of(3);
  fe_idem_prefetch(t, &fresh);
  fe_idem_prefetch_claim(t, &fresh);
  fe_idem_claim_t c;
  assert_fe(fe_idem_claim(t, &fresh, 1, &c), 0);
  fe_idem_prefetch_claim(t, &done);
  assert_fe(fe_idem_claim(t, &done, 3, &c), FE_EDUPLICATE);
  fe_idem_destroy(t);
}

/* ------------------------------------------------- keys and fingerprints */

static void test_key(void **state) {
  (void)state;
  fe_idem_key_t k, k2;
  /* The documented layout: account little-endian, then the id bytes. */
  uint8_t buf[8 + 5] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                        'h', 'e', 'l', 'l', 'o'};
  XXH128_hash_t h = XXH3_128bits(buf, sizeof buf);
  assert_fe_ok(fe_idem_key(UINT64_C(0x0102030405060708), "hello", 5, &k));
  assert_int_equal(k.lo, h.low64);
  assert_int_equal(k.hi, h.high64);
  /* Every byte counts: account, id, length. */
  assert_fe_ok(fe_idem_key(UINT64_C(0x0102030405060709), "hello", 5, &k2));
  assert_true(k2.lo != k.lo || k2.hi != k.hi);
  assert_fe_ok(fe_idem_key(UINT64_C(0x0102030405060708), "hellp", 5, &k2));
  assert_true(k2.lo != k.lo || k2.hi != k.hi);
  assert_fe_ok(fe_idem_key(UINT64_C(0x0102030405060708), "hello!", 5, &k2));
  assert_true(k2.lo == k.lo && k2.hi == k.hi);
  /* Binary ids, lengths 1 and FE_IDEM_KEY_MAX. */
  uint8_t id[FE_IDEM_KEY_MAX + 1];
  memset(id, 0, sizeof id);
  assert_fe_ok(fe_idem_key(1, id, 1, &k2));
  assert_fe_ok(fe_idem_key(1, id, FE_IDEM_KEY_MAX, &k2));
  fe_idem_key_t sentinel = {7, 7};
  k2 = sentinel;
  assert_fe(fe_idem_key(1, id, 0, &k2), FE_ERANGE);
  assert_fe(fe_idem_key(1, id, FE_IDEM_KEY_MAX + 1, &k2), FE_ERANGE);
  assert_int_equal(k2.lo, 7); /* untouched on failure */
  assert_fe(fe_idem_key(1, NULL, 3, &k2), FE_EINVAL);
  assert_fe(fe_idem_key(1, id, 3, NULL), FE_EINVAL);
}

static void test_key_order(void **state) {
  (void)state;
  fe_order_t o = an_order();
  fe_idem_key_t k, want;
  assert_fe_ok(fe_idem_key_order(&o, &k));
  assert_fe_ok(fe_idem_key(42, "C-0001", 6, &want));
  assert_int_equal(k.lo, want.lo);
  assert_int_equal(k.hi, want.hi);
  /* Bytes after the first NUL do not count. */
  o.client_order_id[10] = 'x';
  assert_fe_ok(fe_idem_key_order(&o, &k));
  assert_int_equal(k.lo, want.lo);
  /* A full-width id without a NUL: all FE_CLORDID_MAX bytes. */
  memset(o.client_order_id, 'Z', FE_CLORDID_MAX);
  assert_fe_ok(fe_idem_key_order(&o, &k));
  assert_fe_ok(fe_idem_key(42, o.client_order_id, FE_CLORDID_MAX, &want));
  assert_int_equal(k.lo, want.lo);
  assert_int_equal(k.hi, want.hi);
  /* The account is part of the key. */
  o.account = 43;
  assert_fe_ok(fe_idem_key_order(&o, &k));
  assert_true(k.lo != want.lo || k.hi != want.hi);
  o.client_order_id[0] = '\0';
  assert_fe(fe_idem_key_order(&o, &k), FE_ERANGE);
  assert_fe(fe_idem_key_order(NULL, &k), FE_EINVAL);
  assert_fe(fe_idem_key_order(&o, NULL), FE_EINVAL);
}

static void test_fingerprint(void **state) {
  (void)state;
  const fe_order_t base = an_order();
  const uint64_t fp = fe_idem_fingerprint(&base);
  assert_int_equal(fe_idem_fingerprint(NULL), 0);
  fe_order_t o = base;
  assert_int_equal(fe_idem_fingerprint(&o), fp);
  /* Not economic: timestamps, notional, reserved, the id, symbol bytes
   * after its NUL. */
  o.client_ts_ns = 999;
  o.recv_ts_ns = 998;
  o.notional = 5;
  o.reserved[0] = 1;
  strcpy(o.client_order_id, "other");
  o.symbol[10] = 'q';
  assert_int_equal(fe_idem_fingerprint(&o), fp);
  /* Economic: each field changes it. */
  for (int f = 0; f < 8; f++) {
    o = base;
    switch (f) {
    case 0: o.account++; break;
    case 1: o.side = FE_SIDE_SELL; break;
    case 2: o.type = FE_ORD_MARKET; break;
    case 3: o.tif = FE_TIF_DAY; break;
    case 4: o.quantity++; break;
    case 5: o.price++; break;
    case 6: o.expire_ns++; break;
    case 7: o.symbol[0] = 'B'; break;
    }
    if (fe_idem_fingerprint(&o) == fp)
      fail_msg("field %d does not change the fingerprint", f);
  }
}

/* ------------------------------------------------------- claim, replay */

static void test_claim_complete_replay(void **state) {
  (void)state;
  fake_clock_t clk = {1000, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(5);
  fe_idem_claim_t c, d;
  memset(&c, 0x77, sizeof c);
  assert_fe_ok(fe_idem_claim(t, &k, 11, &c));
  assert_true(c.token != 0);
  assert_int_equal(c.expires_ns, 1100);
  assert_int_equal(c.flags, 0);
  /* A duplicate while in progress. */
  fake_set(&clk, 1050);
  memset(&d, 0x77, sizeof d);
  assert_fe(fe_idem_claim(t, &k, 11, &d), FE_EINPROGRESS);
  assert_int_equal(d.token, 0);
  assert_int_equal(d.expires_ns, 1100);
  assert_int_equal(d.flags, 0);
  fe_idem_outcome_t o = outcome_for(k, 3);
  o.status = FE_IDEM_REJECTED;
  assert_fe_ok(fe_idem_complete(t, c.token, &o));
  /* Duplicates now replay the outcome as-is. */
  fake_set(&clk, 1060);
  for (int i = 0; i < 3; i++) {
    memset(&d, 0x77, sizeof d);
    assert_fe(fe_idem_claim(t, &k, 11, &d), FE_EDUPLICATE);
    assert_int_equal(d.flags, FE_IDEM_F_REPLAY);
    assert_int_equal(d.token, 0);
    assert_int_equal(d.expires_ns, 1050 + 1000);
    assert_outcome_eq(&d.outcome, &o);
  }
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_DONE);
  assert_int_equal(e.fingerprint, 11);
  assert_int_equal(e.expires_ns, 2050);
  assert_outcome_eq(&e.outcome, &o);
  /* The token is spent. */
  assert_fe(fe_idem_complete(t, c.token, &o), FE_ELATE);
  assert_fe(fe_idem_abandon(t, c.token), FE_ELATE);
  assert_fe(fe_idem_extend(t, c.token, 0), FE_ELATE);
  assert_fe_ok(fe_idem_lookup(t, &k, &e)); /* still there */
  /* Other keys are unaffected. */
  fe_idem_key_t k2 = key_of(6);
  assert_fe(fe_idem_lookup(t, &k2, &e), FE_ENOTFOUND);
  assert_fe_ok(fe_idem_claim(t, &k2, 11, &d));
  assert_true(d.token != c.token);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.claims, 6);
  assert_int_equal(s.claimed, 2);
  assert_int_equal(s.replays, 3);
  assert_int_equal(s.in_progress_answers, 1);
  assert_int_equal(s.completed, 1);
  assert_int_equal(s.live, 2);
  assert_int_equal(s.in_progress, 1);
  fe_idem_destroy(t);
}

static void test_lookup_in_progress(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(9);
  fe_idem_entry_t e;
  assert_fe(fe_idem_lookup(t, &k, &e), FE_ENOTFOUND);
  fe_idem_claim_t c;
  assert_fe_ok(fe_idem_claim_lease(t, &k, 77, 500, &c));
  assert_int_equal(c.expires_ns, 500);
  memset(&e, 0x5a, sizeof e);
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
  assert_int_equal(e.reserved, 0);
  assert_int_equal(e.fingerprint, 77);
  assert_int_equal(e.expires_ns, 500);
  fe_idem_outcome_t zero;
  memset(&zero, 0, sizeof zero);
  assert_outcome_eq(&e.outcome, &zero);
  /* Past the lease, nobody retook it: still reported in progress. */
  fake_set(&clk, 600);
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
  /* And its holder may still complete. */
  fe_idem_outcome_t o = outcome_for(k, 1);
  assert_fe_ok(fe_idem_complete(t, c.token, &o));
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_DONE);
  assert_int_equal(e.expires_ns, 1600);
  fe_idem_destroy(t);
}

static void test_mismatch(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_order_t o1 = an_order(), o2 = an_order();
  o2.quantity = 200; /* same key, another order */
  fe_idem_key_t k;
  assert_fe_ok(fe_idem_key_order(&o1, &k));
  uint64_t f1 = fe_idem_fingerprint(&o1), f2 = fe_idem_fingerprint(&o2);
  fe_idem_claim_t c, d;
  assert_fe_ok(fe_idem_claim(t, &k, f1, &c));
  assert_fe(fe_idem_claim(t, &k, f2, &d), FE_EMISMATCH);
  assert_int_equal(d.token, 0);
  /* Even once the lease expired: a mismatch never takes over. */
  fake_set(&clk, 500);
  assert_fe(fe_idem_claim(t, &k, f2, &d), FE_EMISMATCH);
  fe_idem_outcome_t out = outcome_for(k, 1);
  assert_fe_ok(fe_idem_complete(t, c.token, &out));
  memset(&d, 0x33, sizeof d);
  assert_fe(fe_idem_claim(t, &k, f2, &d), FE_EMISMATCH);
  fe_idem_outcome_t zero;
  memset(&zero, 0, sizeof zero);
  assert_outcome_eq(&d.outcome, &zero); /* nothing leaks */
  assert_fe(fe_idem_claim(t, &k, f1, &d), FE_EDUPLICATE);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.mismatches, 3);
  assert_int_equal(s.replays, 1);
  assert_int_equal(s.claimed, 1);
  fe_idem_destroy(t);
}

/* ----------------------------------------------------------- full table */

static void test_table_full(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 8; /* one bucket: every key shares it */
  fe_idem_t *t = make(&cfg);
  fe_idem_claim_t c[9], d;
  fe_idem_key_t k[9];
  for (int i = 0; i < 9; i++)
    k[i] = key_of((uint64_t)i);
  for (int i = 0; i < 8; i++)
    assert_fe_ok(fe_idem_claim(t, &k[i], (uint64_t)i, &c[i]));
  assert_fe_ok(fe_idem_complete(t, c[0].token, &(fe_idem_outcome_t){
                                                   .status = 1, .ref = 10}));
  /* Full: the new key is refused, every live entry stays as it was (even
   * with every lease expired). */
  fake_set(&clk, 200);
  assert_fe(fe_idem_claim(t, &k[8], 8, &d), FE_ETABLEFULL);
  assert_fe(fe_idem_claim(t, &k[8], 8, &d), FE_ETABLEFULL);
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k[0], &e));
  assert_int_equal(e.state, FE_IDEM_DONE);
  assert_int_equal(e.outcome.ref, 10);
  for (int i = 1; i < 8; i++) {
    assert_fe_ok(fe_idem_lookup(t, &k[i], &e));
    assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
    assert_int_equal(e.fingerprint, (uint64_t)i);
  }
  assert_fe(fe_idem_lookup(t, &k[8], &e), FE_ENOTFOUND);
  /* Abandoning one frees a slot (a tombstone) the new key then takes. */
  assert_fe_ok(fe_idem_abandon(t, c[3].token));
  assert_fe_ok(fe_idem_claim(t, &k[8], 8, &d));
  assert_fe(fe_idem_claim(t, &k[3], 3, &d), FE_ETABLEFULL);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.full, 3);
  assert_int_equal(s.live, 8);
  assert_int_equal(s.abandoned, 1);
  fe_idem_destroy(t);
}

/* Keys with equal home bucket and equal tag but different hashes are
 * different keys; a chain spills into the next bucket and is found there,
 * past tombstones. */
static void test_chains_and_tags(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 32; /* 4 buckets */
  cfg.max_probe = 2;
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k[17];
  fe_idem_claim_t c[17], d;
  for (int i = 0; i < 17; i++)
    k[i] = raw_key(1, 0xabcde, (uint64_t)i + 1); /* bucket 1, same tag */
  /* Same lo, different hi; and same hi, different lo: distinct. */
  fe_idem_key_t a = k[0], b = k[0];
  b.hi ^= 1;
  for (int i = 0; i < 16; i++)
    assert_fe_ok(fe_idem_claim(t, &k[i], 1, &c[i]));
  assert_fe(fe_idem_claim(t, &b, 1, &d), FE_ETABLEFULL); /* not k[0] */
  assert_fe(fe_idem_claim(t, &k[16], 1, &d), FE_ETABLEFULL);
  /* k[15] lives in bucket 2.  Free slots in bucket 1; k[15] must still be
   * found, not inserted again. */
  assert_fe_ok(fe_idem_abandon(t, c[2].token));
  assert_fe_ok(fe_idem_abandon(t, c[5].token));
  assert_fe(fe_idem_claim(t, &k[15], 1, &d), FE_EINPROGRESS);
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k[15], &e));
  assert_fe(fe_idem_lookup(t, &b, &e), FE_ENOTFOUND);
  assert_fe(fe_idem_lookup(t, &k[2], &e), FE_ENOTFOUND);
  assert_fe_ok(fe_idem_claim(t, &k[16], 1, &d)); /* takes a tombstone */
  assert_fe_ok(fe_idem_claim(t, &b, 1, &d));
  assert_fe(fe_idem_claim(t, &a, 1, &d), FE_EINPROGRESS);
  /* Other buckets are still empty. */
  fe_idem_key_t other = raw_key(3, 0xabcde, 99);
  assert_fe_ok(fe_idem_claim(t, &other, 1, &d));
  /* Tombstones are reused forever: a table never fills with them. */
  fe_idem_key_t x = raw_key(3, 0x1, 1000);
  for (int i = 0; i < 1000; i++) {
    x.hi = ((uint64_t)(i & 0xfffff) << 44) | (uint64_t)i;
    assert_fe_ok(fe_idem_claim(t, &x, 1, &d));
    assert_fe_ok(fe_idem_abandon(t, d.token));
  }
  assert_int_equal(stats(t).live, 17); /* 16 - 2 + k[16], b, other */
  fe_idem_destroy(t);
}

/* -------------------------------------------------------- leases */

static void test_lease_takeover(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1);
  fe_idem_claim_t a, b, d;
  assert_fe_ok(fe_idem_claim(t, &k, 5, &a));
  fake_set(&clk, 99);
  assert_fe(fe_idem_claim(t, &k, 5, &d), FE_EINPROGRESS);
  assert_int_equal(d.expires_ns, 100);
  fake_set(&clk, 100); /* expired exactly now */
  assert_fe_ok(fe_idem_claim_lease(t, &k, 5, 30, &b));
  assert_int_equal(b.flags, FE_IDEM_F_TAKEOVER);
  assert_int_equal(b.expires_ns, 130);
  assert_true(b.token != a.token && b.token != 0);
  assert_fe(fe_idem_claim(t, &k, 5, &d), FE_EINPROGRESS);
  assert_int_equal(d.expires_ns, 130);
  /* The old token is stale for everything. */
  fe_idem_outcome_t oa = outcome_for(k, 1), ob = outcome_for(k, 2);
  assert_fe(fe_idem_complete(t, a.token, &oa), FE_ELEASE);
  assert_fe(fe_idem_extend(t, a.token, 0), FE_ELEASE);
  assert_fe(fe_idem_abandon(t, a.token), FE_ELEASE);
  assert_fe_ok(fe_idem_complete(t, b.token, &ob));
  assert_fe(fe_idem_claim(t, &k, 5, &d), FE_EDUPLICATE);
  assert_outcome_eq(&d.outcome, &ob);
  assert_fe(fe_idem_complete(t, a.token, &oa), FE_ELEASE);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.takeovers, 1);
  assert_int_equal(s.claimed, 2);
  assert_int_equal(s.stale, 4);
  assert_int_equal(s.completed, 1);
  assert_int_equal(s.live, 1);
  assert_int_equal(s.in_progress, 0);
  /* A takeover's own lease can expire and be retaken in turn. */
  fe_idem_key_t k2 = key_of(2);
  fe_idem_claim_t t1, t2, t3;
  assert_fe_ok(fe_idem_claim(t, &k2, 1, &t1));
  fake_set(&clk, 300);
  assert_fe_ok(fe_idem_claim(t, &k2, 1, &t2));
  fake_set(&clk, 500);
  assert_fe_ok(fe_idem_claim(t, &k2, 1, &t3));
  assert_int_equal(t3.flags, FE_IDEM_F_TAKEOVER);
  assert_fe(fe_idem_abandon(t, t2.token), FE_ELEASE);
  assert_fe_ok(fe_idem_abandon(t, t3.token));
  assert_fe_ok(fe_idem_claim(t, &k2, 1, &t1)); /* fresh claim */
  assert_int_equal(t1.flags, 0);
  fe_idem_destroy(t);
}

static void test_extend(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1);
  fe_idem_claim_t a, d;
  assert_fe_ok(fe_idem_claim(t, &k, 5, &a));
  fake_set(&clk, 90);
  assert_fe_ok(fe_idem_extend(t, a.token, 50));
  fake_set(&clk, 120); /* past the first lease, within the second */
  assert_fe(fe_idem_claim(t, &k, 5, &d), FE_EINPROGRESS);
  assert_int_equal(d.expires_ns, 140);
  /* Extending after expiry, before anyone retook it, still works. */
  fake_set(&clk, 150);
  assert_fe_ok(fe_idem_extend(t, a.token, 0)); /* the table's lease */
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.expires_ns, 250);
  assert_fe(fe_idem_extend(t, a.token, FE_IDEM_DURATION_MAX + 1), FE_ERANGE);
  fake_set(&clk, 250);
  assert_fe_ok(fe_idem_claim(t, &k, 5, &d));
  assert_int_equal(d.flags, FE_IDEM_F_TAKEOVER);
  assert_fe(fe_idem_extend(t, a.token, 10), FE_ELEASE);
  assert_fe_ok(fe_idem_extend(t, d.token, 10));
  fe_idem_destroy(t);
}

static void test_bad_tokens(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_outcome_t o = outcome_for(key_of(1), 1);
  assert_fe(fe_idem_complete(t, 0, &o), FE_ETOKEN);
  assert_fe(fe_idem_complete(t, (UINT64_C(1) << 32) | 1024, &o), FE_ETOKEN);
  assert_fe(fe_idem_abandon(t, 5), FE_ETOKEN); /* generation 0 */
  assert_fe(fe_idem_extend(t, (UINT64_C(1) << 32) | 5000, 0), FE_ETOKEN);
  /* Well-formed but naming no claim. */
  assert_fe(fe_idem_complete(t, (UINT64_C(1) << 32) | 3, &o), FE_ELEASE);
  /* Invalid statuses. */
  fe_idem_key_t k = key_of(2);
  fe_idem_claim_t c;
  assert_fe_ok(fe_idem_claim(t, &k, 1, &c));
  const int32_t bad[] = {0, -1, 4, 15, INT32_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o.status = bad[i];
    assert_fe(fe_idem_complete(t, c.token, &o), FE_EINVAL);
    assert_fe(fe_idem_restore(t, &k, 1, &o, 0), FE_EINVAL);
  }
  o.status = FE_IDEM_STATUS_USER + 7; /* host statuses are fine */
  assert_fe_ok(fe_idem_complete(t, c.token, &o));
  fe_idem_claim_t d;
  assert_fe(fe_idem_claim(t, &k, 1, &d), FE_EDUPLICATE);
  assert_int_equal(d.outcome.status, FE_IDEM_STATUS_USER + 7);
  fe_idem_destroy(t);
}

/* ---------------------------------------------- abandon, failure caching */

static void test_abandon(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(3);
  fe_idem_claim_t a, b;
  assert_fe_ok(fe_idem_claim(t, &k, 5, &a));
  assert_fe_ok(fe_idem_abandon(t, a.token));
  fe_idem_entry_t e;
  assert_fe(fe_idem_lookup(t, &k, &e), FE_ENOTFOUND);
  assert_fe(fe_idem_abandon(t, a.token), FE_ELEASE);
  /* The retry runs the flow: a new claim, another fingerprint allowed. */
  assert_fe_ok(fe_idem_claim(t, &k, 6, &b));
  assert_int_equal(b.flags, 0);
  assert_true(b.token != a.token);
  fe_idem_outcome_t o = outcome_for(k, 1);
  assert_fe(fe_idem_complete(t, a.token, &o), FE_ELEASE);
  assert_fe_ok(fe_idem_complete(t, b.token, &o));
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.abandoned, 1);
  assert_int_equal(s.stale, 2);
  assert_int_equal(s.live, 1);
  assert_int_equal(s.in_progress, 0);
  fe_idem_destroy(t);
}

static void run_cache_failures(int cache) {
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.cache_failures = cache;
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t kd = key_of(1), kr = key_of(2);
  fe_idem_claim_t a, b, d;
  assert_fe_ok(fe_idem_claim(t, &kd, 5, &a));
  assert_fe_ok(fe_idem_claim(t, &kr, 5, &b));
  fe_idem_outcome_t od = outcome_for(kd, 1), orj = outcome_for(kr, 1);
  od.status = FE_IDEM_DEAD_LETTERED;
  orj.status = FE_IDEM_REJECTED;
  assert_fe_ok(fe_idem_complete(t, a.token, &od));
  assert_fe_ok(fe_idem_complete(t, b.token, &orj));
  /* Rejections are stored either way. */
  assert_fe(fe_idem_claim(t, &kr, 5, &d), FE_EDUPLICATE);
  assert_outcome_eq(&d.outcome, &orj);
  fe_idem_entry_t e;
  if (cache) {
    assert_fe(fe_idem_claim(t, &kd, 5, &d), FE_EDUPLICATE);
    assert_outcome_eq(&d.outcome, &od);
    assert_fe_ok(fe_idem_lookup(t, &kd, &e));
    assert_fe(fe_idem_complete(t, a.token, &od), FE_ELATE);
  } else {
    assert_fe(fe_idem_lookup(t, &kd, &e), FE_ENOTFOUND);
    assert_fe(fe_idem_complete(t, a.token, &od), FE_ELEASE);
    assert_fe_ok(fe_idem_claim(t, &kd, 5, &d)); /* the retry runs again */
    assert_int_equal(d.flags, 0);
  }
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.completed, 2);
  assert_int_equal(s.live, 2);
  assert_int_equal(s.in_progress, cache ? 0 : 1);
  assert_int_equal(s.stale, cache ? 0 : 1);
  /* Restore follows the same policy. */
  fe_idem_key_t k3 = key_of(3);
  assert_fe_ok(fe_idem_restore(t, &k3, 5, &od, 0));
  assert_fe(fe_idem_lookup(t, &k3, &e), cache ? 0 : FE_ENOTFOUND);
  fe_idem_destroy(t);
}

static void test_cache_failures_on(void **state) {
  (void)state;
  run_cache_failures(1);
}

static void test_cache_failures_off(void **state) {
  (void)state;
  run_cache_failures(0);
}

/* ---------------------------------------------------- retention, reaper */

static void test_retention_and_reap(void **state) {
  (void)state;
  fake_clock_t clk = {10, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 64;
  fe_idem_t *t = make(&cfg);
  fe_idem_claim_t c[20], d;
  fe_idem_key_t k[20];
  for (int i = 0; i < 20; i++) {
    k[i] = key_of((uint64_t)i);
    assert_fe_ok(fe_idem_claim(t, &k[i], 1, &c[i]));
  }
  for (int i = 0; i < 10; i++) {
    fe_idem_outcome_t o = outcome_for(k[i], 1);
    assert_fe_ok(fe_idem_complete(t, c[i].token, &o)); /* expire at 1010 */
  }
  fake_set(&clk, 1009);
  fe_idem_entry_t e;
  uint64_t n;
  assert_fe_ok(fe_idem_reap(t, 64, &n));
  assert_int_equal(n, 0); /* nothing expired yet */
  assert_fe_ok(fe_idem_lookup(t, &k[0], &e));
  fake_set(&clk, 1010);
  /* Expired but unreaped: absent for lookups and claims. */
  assert_fe(fe_idem_lookup(t, &k[0], &e), FE_ENOTFOUND);
  assert_fe(fe_idem_lookup(t, &k[1], &e), FE_ENOTFOUND);
  assert_fe_ok(fe_idem_claim(t, &k[0], 2, &d)); /* runs again, new fp ok */
  assert_int_equal(d.flags, 0);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.reaped, 1); /* the claim reused its own expired slot */
  assert_int_equal(s.live, 20);
  /* The in-progress claims (lease expired at 110) are not reaped until
   * their lease is retention_ns past: 1110. */
  uint64_t total = 0;
  for (int r = 0; r < 10; r++) { /* in steps: the cursor cycles */
    assert_fe_ok(fe_idem_reap(t, 7, &n));
    total += n;
  }
  assert_int_equal(total, 9);
  assert_fe_ok(fe_idem_reap(t, 1000, &n)); /* clamped to capacity */
  assert_int_equal(n, 0);
  s = stats(t);
  assert_int_equal(s.reaped, 10);
  assert_int_equal(s.live, 11);
  assert_int_equal(s.in_progress, 11);
  fake_set(&clk, 1110);
  assert_fe_ok(fe_idem_reap(t, 64, &n));
  assert_int_equal(n, 10); /* k[10..19]; k[0]'s lease ended only now */
  assert_fe(fe_idem_complete(t, c[15].token, &(fe_idem_outcome_t){.status = 1}),
            FE_ELEASE);
  assert_fe(fe_idem_lookup(t, &k[15], &e), FE_ENOTFOUND);
  s = stats(t);
  assert_int_equal(s.live, 1);
  assert_int_equal(s.in_progress, 1);
  assert_int_equal(s.reaped, 20);
  /* k[0]'s claim (lease to 1110, reaped at 2110). */
  fake_set(&clk, 2109);
  assert_fe_ok(fe_idem_reap(t, 64, &n));
  assert_int_equal(n, 0);
  fake_set(&clk, 2110);
  assert_fe_ok(fe_idem_reap(t, 64, NULL));
  s = stats(t);
  assert_int_equal(s.live, 0);
  assert_int_equal(s.in_progress, 0);
  /* Freed slots take new keys: the whole table again. */
  for (int i = 0; i < 40; i++) {
    fe_idem_key_t x = key_of(100 + (uint64_t)i);
    assert_fe_ok(fe_idem_claim(t, &x, 1, &d));
  }
  fe_idem_destroy(t);
}

/* ---------------------------------------------------------------- restore */

static void test_restore(void **state) {
  (void)state;
  fake_clock_t clk = {5000, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1), k2 = key_of(2);
  fe_idem_outcome_t o = outcome_for(k, 4);
  assert_fe_ok(fe_idem_restore(t, &k, 9, &o, 4500)); /* expires 5500 */
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_DONE);
  assert_int_equal(e.fingerprint, 9);
  assert_int_equal(e.expires_ns, 5500);
  assert_outcome_eq(&e.outcome, &o);
  fe_idem_claim_t d;
  assert_fe(fe_idem_claim(t, &k, 9, &d), FE_EDUPLICATE);
  assert_outcome_eq(&d.outcome, &o);
  assert_fe(fe_idem_claim(t, &k, 8, &d), FE_EMISMATCH);
  /* A journal replayed twice, or replayed wrong. */
  assert_fe(fe_idem_restore(t, &k, 9, &o, 4600), FE_EDUPLICATE);
  assert_fe(fe_idem_restore(t, &k, 8, &o, 4600), FE_EMISMATCH);
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.expires_ns, 5500); /* the first kept */
  /* Already expired: skipped. */
  assert_fe(fe_idem_restore(t, &k2, 9, &o, 4000), FE_ERANGE);
  assert_fe(fe_idem_lookup(t, &k2, &e), FE_ENOTFOUND);
  /* Present and claimed. */
  fe_idem_claim_t c;
  assert_fe_ok(fe_idem_claim(t, &k2, 9, &c));
  assert_fe(fe_idem_restore(t, &k2, 9, &o, 4600), FE_EINPROGRESS);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.restored, 1);
  assert_int_equal(s.claims, 3); /* restores are not claims */
  assert_int_equal(s.claimed, 1);
  assert_int_equal(s.completed, 0);
  assert_int_equal(s.live, 2);
  assert_int_equal(s.in_progress, 1);
  /* It expires as any entry. */
  fake_set(&clk, 5500);
  assert_fe(fe_idem_lookup(t, &k, &e), FE_ENOTFOUND);
  fe_idem_destroy(t);
}

/* A dead letter's outcome as the bus stores it. */
static fe_idem_outcome_t dead_letter_for(fe_idem_key_t k) {
  fe_idem_outcome_t o = outcome_for(k, 77);
  o.status = FE_IDEM_DEAD_LETTERED;
  return o;
}

/* A redrive takes a dead-lettered key back: in progress while it runs,
 * then its outcome; any other state is answered as a claim would be. */
static void test_reopen(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1);
  fe_idem_claim_t c, r, d;
  assert_fe_ok(fe_idem_claim(t, &k, 9, &c));
  fe_idem_outcome_t dl = dead_letter_for(k);
  assert_fe_ok(fe_idem_complete(t, c.token, &dl));
  assert_fe(fe_idem_reopen(t, &k, 8, &r), FE_EMISMATCH);
  assert_fe_ok(fe_idem_reopen(t, &k, 9, &r));
  assert_int_equal(r.flags, FE_IDEM_F_REOPENED);
  assert_outcome_eq(&r.outcome, &dl);
  assert_int_equal(r.expires_ns, 100); /* the table's lease */
  assert_true(r.token != c.token);
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
  assert_fe(fe_idem_claim(t, &k, 9, &d), FE_EINPROGRESS);
  assert_fe(fe_idem_reopen(t, &k, 9, &d), FE_EINPROGRESS);
  assert_fe(fe_idem_complete(t, c.token, &dl), FE_ELEASE); /* old claim */
  fe_idem_outcome_t ok = outcome_for(k, 5);
  assert_fe_ok(fe_idem_complete(t, r.token, &ok));
  assert_fe(fe_idem_claim(t, &k, 9, &d), FE_EDUPLICATE);
  assert_outcome_eq(&d.outcome, &ok);
  /* Done otherwise: never taken back. */
  assert_fe(fe_idem_reopen(t, &k, 9, &d), FE_EDUPLICATE);
  assert_outcome_eq(&d.outcome, &ok);
  assert_int_equal(d.flags, FE_IDEM_F_REPLAY);
  /* Absent: an ordinary claim. */
  fe_idem_key_t k2 = key_of(2);
  assert_fe_ok(fe_idem_reopen(t, &k2, 3, &d));
  assert_int_equal(d.flags, 0);
  assert_fe_ok(fe_idem_abandon(t, d.token));
  /* A dead letter whose entry expired: an ordinary claim too. */
  fe_idem_key_t k3 = key_of(3);
  assert_fe_ok(fe_idem_claim(t, &k3, 4, &c));
  dl = dead_letter_for(k3);
  assert_fe_ok(fe_idem_complete(t, c.token, &dl));
  fake_set(&clk, 2000);
  assert_fe_ok(fe_idem_reopen(t, &k3, 4, &d));
  assert_int_equal(d.flags, 0);
  assert_fe(fe_idem_reopen(NULL, &k3, 4, &d), FE_EINVAL);
  assert_fe(fe_idem_reopen(t, NULL, 4, &d), FE_EINVAL);
  assert_fe(fe_idem_reopen(t, &k3, 4, NULL), FE_EINVAL);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.reopened, 1);
  assert_int_equal(s.in_progress, 1); /* k3's */
  assert_int_equal(s.live, 2);        /* k, k3 (k2 abandoned) */
  fe_idem_destroy(t);
}

/* Replaying a journal: a later outcome replaces a dead letter's (its
 * redrive's), never another outcome. */
static void test_restore_after_dead_letter(void **state) {
  (void)state;
  fake_clock_t clk = {5000, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t k = key_of(1);
  fe_idem_outcome_t dl = dead_letter_for(k), ok = outcome_for(k, 3);
  assert_fe_ok(fe_idem_restore(t, &k, 9, &dl, 4500));
  assert_fe_ok(fe_idem_restore(t, &k, 9, &ok, 4700));
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_int_equal(e.state, FE_IDEM_DONE);
  assert_outcome_eq(&e.outcome, &ok);
  assert_int_equal(e.expires_ns, 5700);
  assert_fe(fe_idem_restore(t, &k, 9, &dl, 4800), FE_EDUPLICATE);
  assert_fe_ok(fe_idem_lookup(t, &k, &e));
  assert_outcome_eq(&e.outcome, &ok);
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.restored, 2);
  assert_int_equal(s.in_progress, 0);
  assert_int_equal(s.live, 1);
  fe_idem_destroy(t);
}

/* Many threads redrive the same dead letters at once: exactly one takes
 * each back; the others see it in progress (or done, once completed). */
typedef struct ro_shared {
  fe_idem_t *t;
  uint32_t winners[64];
  fe_t_errs_t errs;
} ro_shared_t;

typedef struct ro_worker {
  pthread_t th;
  ro_shared_t *sh;
} ro_worker_t;

static void *reopen_main(void *arg) {
  ro_worker_t *w = arg;
  ro_shared_t *sh = w->sh;
  for (uint64_t n = 0; n < 64; n++) {
    fe_idem_key_t k = key_of(n);
    fe_idem_claim_t c;
    int rc = fe_idem_reopen(sh->t, &k, n, &c);
    if (rc == 0) {
      __atomic_fetch_add(&sh->winners[n], 1, __ATOMIC_RELAXED);
      FE_T_CHECK_EQ(&sh->errs, c.flags, FE_IDEM_F_REOPENED);
      fe_idem_outcome_t o = outcome_for(k, (uint32_t)n);
      FE_T_CHECK_EQ(&sh->errs, fe_idem_complete(sh->t, c.token, &o), 0);
    } else if (rc == FE_EDUPLICATE) {
      FE_T_CHECK(&sh->errs, outcome_ok(k, &c.outcome));
    } else if (rc != FE_EINPROGRESS) {
      fe_t_errf(&sh->errs, "key %" PRIu64 ": reopen returned %s", n,
                fe_err_name(rc));
    }
  }
  return NULL;
}

static void test_mt_reopen_one_winner(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  static ro_shared_t sh;
  memset(&sh, 0, sizeof sh);
  sh.t = make(&cfg);
  for (uint64_t n = 0; n < 64; n++) {
    fe_idem_key_t k = key_of(n);
    fe_idem_claim_t c;
    assert_fe_ok(fe_idem_claim(sh.t, &k, n, &c));
    fe_idem_outcome_t dl = dead_letter_for(k);
    assert_fe_ok(fe_idem_complete(sh.t, c.token, &dl));
  }
  ro_worker_t w[4];
  for (int i = 0; i < 4; i++) {
    w[i].sh = &sh;
    assert_int_equal(pthread_create(&w[i].th, NULL, reopen_main, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(w[i].th, NULL), 0);
  fe_t_assert_clean(&sh.errs);
  for (uint64_t n = 0; n < 64; n++) {
    if (sh.winners[n] != 1)
      fail_msg("key %" PRIu64 ": %u winners", n, sh.winners[n]);
    fe_idem_key_t k = key_of(n);
    fe_idem_entry_t e;
    assert_fe_ok(fe_idem_lookup(sh.t, &k, &e));
    assert_int_equal(e.state, FE_IDEM_DONE);
    assert_true(outcome_ok(k, &e.outcome));
  }
  fe_idem_stats_t s = stats(sh.t);
  assert_int_equal(s.reopened, 64);
  assert_int_equal(s.in_progress, 0);
  fe_idem_destroy(sh.t);
}

/* Restores fill a table as a journal replay would. */
static void test_restore_many(void **state) {
  (void)state;
  fake_clock_t clk = {1000000, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 4096;
  cfg.retention_ns = 1000000;
  fe_idem_t *t = make(&cfg);
  for (uint64_t i = 0; i < 2048; i++) {
    fe_idem_key_t k = key_of(i);
    fe_idem_outcome_t o = outcome_for(k, (uint32_t)i);
    assert_fe_ok(fe_idem_restore(t, &k, i, &o, 1000 + i));
  }
  for (uint64_t i = 0; i < 2048; i++) {
    fe_idem_key_t k = key_of(i);
    fe_idem_entry_t e;
    assert_fe_ok(fe_idem_lookup(t, &k, &e));
    assert_true(outcome_ok(k, &e.outcome));
    assert_int_equal(e.outcome.reason, i);
    assert_int_equal(e.expires_ns, 1001000 + i);
  }
  assert_int_equal(stats(t).live, 2048);
  fe_idem_destroy(t);
}

/* fe_idem_lookup_n() answers each key as fe_idem_lookup() does: batches
 * shorter and longer than its pipeline, found, absent, in progress,
 * expired, and one clock reading per batch. */
static uint64_t counted_now(void *user) {
  fake_clock_t *c = user;
  __atomic_fetch_add(&c->tick, 1, __ATOMIC_RELAXED); /* counts readings */
  return __atomic_load_n(&c->now, __ATOMIC_RELAXED);
}

static void test_lookup_n(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0};
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.now_ns = counted_now;
  cfg.capacity = 4096;
  fe_idem_t *t = make(&cfg);
  enum { N = 300 };
  static fe_idem_key_t keys[N];
  static fe_idem_entry_t out[N], one;
  static int rc[N];
  for (uint64_t i = 0; i < N; i++) {
    keys[i] = key_of(i);
    if (i % 3 == 2)
      continue; /* absent */
    fe_idem_claim_t c;
    assert_fe_ok(fe_idem_claim(t, &keys[i], i, &c));
    if (i % 3 == 0) {
      fe_idem_outcome_t o = outcome_for(keys[i], (uint32_t)i);
      assert_fe_ok(fe_idem_complete(t, c.token, &o)); /* expires 1000 */
    }
  }
  const size_t lens[] = {0, 1, 7, 8, 9, 16, 17, 40, N};
  for (int phase = 0; phase < 2; phase++) {
    if (phase == 1)
      fake_set(&clk, 1000); /* every DONE entry has expired */
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      size_t n = lens[l];
      memset(rc, 0x55, sizeof rc);
      __atomic_store_n(&clk.tick, 0, __ATOMIC_RELAXED);
      int found = fe_idem_lookup_n(t, keys, n, out, rc);
      assert_true(__atomic_load_n(&clk.tick, __ATOMIC_RELAXED) <= 1);
      int want_found = 0;
      for (size_t i = 0; i < n; i++) {
        int want = fe_idem_lookup(t, &keys[i], &one);
        assert_fe(rc[i], want);
        if (want != 0)
          continue;
        want_found++;
        assert_int_equal(out[i].state, one.state);
        assert_int_equal(out[i].fingerprint, i);
        assert_int_equal(out[i].expires_ns, one.expires_ns);
        assert_outcome_eq(&out[i].outcome, &one.outcome);
        if (one.state == FE_IDEM_DONE)
          assert_int_equal(out[i].outcome.reason, i);
      }
      assert_int_equal(found, want_found);
      if (n == N)
        assert_int_equal(found, phase == 0 ? 200 : 100);
    }
  }
  assert_fe(fe_idem_lookup_n(NULL, keys, 1, out, rc), FE_EINVAL);
  assert_fe(fe_idem_lookup_n(t, NULL, 1, out, rc), FE_EINVAL);
  assert_fe(fe_idem_lookup_n(t, keys, 1, NULL, rc), FE_EINVAL);
  assert_fe(fe_idem_lookup_n(t, keys, 1, out, NULL), FE_EINVAL);
  assert_int_equal(fe_idem_lookup_n(t, NULL, 0, NULL, NULL), 0);
  assert_fe(fe_idem_lookup_n(t, keys, (size_t)INT32_MAX + 1, out, rc),
            FE_ERANGE);
  fe_idem_destroy(t);
}

/* A clock that, once armed, recycles a slot from inside the lookup that
 * reads it: fe_idem_lookup() calls the clock after reading a DONE control
 * word and before copying the entry, so this is the reaper and a new claim
 * getting in at exactly the wrong moment, made deterministic.  (A clock
 * must not call into the table in real use; here it runs the calls at a
 * later time of its own and hands the lookup the earlier one.) */
typedef struct hook_clock {
  uint64_t now, late;
  int armed, inside;
  fe_idem_t *t;
  fe_idem_key_t b; /* claimed into the freed slot */
  int complete;    /* and completed */
  int rc_reap, rc_claim, rc_complete;
} hook_clock_t;

static uint64_t hook_now(void *user) {
  hook_clock_t *h = user;
  if (h->inside)
    return h->late;
  if (h->armed) {
    h->armed = 0;
    h->inside = 1;
    fe_idem_claim_t c;
    h->rc_reap = fe_idem_reap(h->t, 8, NULL);
    h->rc_claim = fe_idem_claim(h->t, &h->b, 2, &c);
    fe_idem_outcome_t o = outcome_for(h->b, 7);
    h->rc_complete = h->complete ? fe_idem_complete(h->t, c.token, &o) : 0;
    h->inside = 0;
  }
  return h->now;
}

/* Case 0: another key b takes the slot and completes; case 1: a itself is
 * claimed again into its slot (a new incarnation, in progress, whose
 * outcome words are still the old ones). */
static void run_recycled_under_copy(int reclaim_same) {
  static hook_clock_t hk;
  memset(&hk, 0, sizeof hk);
  fe_idem_config_t cfg;
  fe_idem_config_init(&cfg);
  cfg.now_ns = hook_now;
  cfg.clock_user = &hk;
  cfg.capacity = 8; /* one bucket: the claim takes the freed slot */
  cfg.lease_ns = 100;
  cfg.retention_ns = 1000;
  fe_idem_t *t = make(&cfg);
  fe_idem_key_t a = key_of(1);
  hk.t = t;
  hk.b = reclaim_same ? a : key_of(2);
  hk.complete = !reclaim_same;
  hk.late = 5000; /* a's entry has expired by then */
  fe_idem_claim_t c;
  assert_fe_ok(fe_idem_claim(t, &a, 2, &c));
  fe_idem_outcome_t oa = outcome_for(a, 3);
  assert_fe_ok(fe_idem_complete(t, c.token, &oa));
  fe_idem_entry_t e;
  assert_fe_ok(fe_idem_lookup(t, &a, &e)); /* not armed: found */
  assert_outcome_eq(&e.outcome, &oa);
  hk.armed = 1;
  memset(&e, 0, sizeof e);
  int rc = fe_idem_lookup(t, &a, &e);
  assert_int_equal(hk.armed, 0); /* the hook ran */
  assert_fe_ok(hk.rc_reap);
  assert_fe_ok(hk.rc_claim);
  assert_fe_ok(hk.rc_complete);
  /* The lookup must see that the slot changed under it and answer from
   * what it holds now, never from a mixture of two incarnations. */
  if (!reclaim_same) {
    if (rc == 0)
      fail_msg("lookup of a returned %s's outcome (ref %" PRIx64 ")",
               outcome_ok(hk.b, &e.outcome) ? "b" : "a mixture",
               e.outcome.ref);
    assert_fe(rc, FE_ENOTFOUND);
  } else {
    assert_fe_ok(rc);
    assert_int_equal(e.state, FE_IDEM_IN_PROGRESS); /* not the old DONE */
    assert_int_equal(e.expires_ns, 5100);           /* the new lease */
  }
  fe_idem_stats_t s = stats(t);
  assert_int_equal(s.reaped, 1);
  assert_int_equal(s.live, 1);
  fe_idem_destroy(t);
}

static void test_lookup_recycled_under_copy(void **state) {
  (void)state;
  run_recycled_under_copy(0);
  run_recycled_under_copy(1);
}

/* -------------------------------------------------------- concurrency */

#define MT_THREADS 4

typedef struct mt_shared {
  fe_idem_t *t;
  fe_t_errs_t errs;
  uint64_t n_keys;
  uint32_t *winners;  /* per key: claims that returned 0 */
  uint32_t *done;     /* per key: 1 once the winner completed */
  int stop;
  fake_clock_t *clk;
} mt_shared_t;

typedef struct mt_worker {
  mt_shared_t *sh;
  uint32_t id;
  uint64_t seed;
  uint64_t ops, found, won, dup, busy;
  pthread_t th;
} mt_worker_t;

/* Each thread claims every key, in windows of 16 keys taken in the same
 * order by every thread (so threads collide on keys) but shuffled inside
 * the window.  A winner completes at once with the key's outcome, or (one
 * key in 4) after finishing the window, so that others see it in
 * progress.  Every answer is checked. */
static void *one_winner_main(void *arg) {
  mt_worker_t *w = arg;
  mt_shared_t *sh = w->sh;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, w->seed);
  for (uint64_t base = 0; base < sh->n_keys; base += 16) {
    uint64_t order[16];
    fe_idem_token_t later[16];
    uint64_t later_key[16];
    uint32_t n_later = 0;
    for (uint32_t i = 0; i < 16; i++)
      order[i] = base + i;
    for (uint32_t i = 15; i > 0; i--) {
      uint32_t j = fe_t_rng_range(&rng, 0, i);
      uint64_t x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
    for (uint32_t i = 0; i < 16; i++) {
      uint64_t n = order[i];
      fe_idem_key_t k = key_of(n);
      fe_idem_claim_t c;
      int rc = fe_idem_claim(sh->t, &k, n, &c);
      if (rc == 0) {
        __atomic_fetch_add(&sh->winners[n], 1, __ATOMIC_RELAXED);
        w->won++;
        if (n % 4 == 0) {
          later[n_later] = c.token;
          later_key[n_later++] = n;
        } else {
          fe_idem_outcome_t o = outcome_for(k, (uint32_t)n);
          FE_T_CHECK_EQ(&sh->errs, fe_idem_complete(sh->t, c.token, &o), 0);
          __atomic_store_n(&sh->done[n], 1, __ATOMIC_RELEASE);
        }
      } else if (rc == FE_EDUPLICATE) {
        w->dup++;
        FE_T_CHECK(&sh->errs, outcome_ok(k, &c.outcome));
        FE_T_CHECK_EQ(&sh->errs, c.outcome.reason, n);
        FE_T_CHECK_EQ(&sh->errs, c.flags, FE_IDEM_F_REPLAY);
      } else if (rc == FE_EINPROGRESS) {
        w->busy++;
        FE_T_CHECK_EQ(&sh->errs, c.token, 0);
      } else {
        fe_t_errf(&sh->errs, "key %" PRIu64 ": claim returned %s", n,
                  fe_err_name(rc));
      }
    }
    for (uint32_t i = 0; i < n_later; i++) {
      fe_idem_key_t k = key_of(later_key[i]);
      fe_idem_outcome_t o = outcome_for(k, (uint32_t)later_key[i]);
      FE_T_CHECK_EQ(&sh->errs, fe_idem_complete(sh->t, later[i], &o), 0);
    }
  }
  return NULL;
}

static void run_threads(mt_worker_t *w, uint32_t n, void *(*fn)(void *)) {
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(pthread_create(&w[i].th, NULL, fn, &w[i]), 0);
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(pthread_join(w[i].th, NULL), 0);
}

static void test_mt_one_winner(void **state) {
  (void)state;
  fake_clock_t clk = {0, 0}; /* frozen: no lease expires */
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = 4096; /* load 1/2 at the end */
  const uint64_t n_keys = 2048;
  static mt_shared_t sh;
  memset(&sh, 0, sizeof sh);
  sh.n_keys = n_keys;
  sh.winners = calloc(n_keys, sizeof *sh.winners);
  sh.done = calloc(n_keys, sizeof *sh.done);
  assert_non_null(sh.winners);
  assert_non_null(sh.done);
  for (int round = 0; round < 2; round++) {
    sh.t = make(&cfg);
    memset(sh.winners, 0, n_keys * sizeof *sh.winners);
    mt_worker_t w[MT_THREADS];
    memset(w, 0, sizeof w);
    for (uint32_t i = 0; i < MT_THREADS; i++) {
      w[i].sh = &sh;
      w[i].id = i;
      w[i].seed = 1000 * (uint64_t)round + i;
    }
    run_threads(w, MT_THREADS, one_winner_main);
    fe_t_assert_clean(&sh.errs);
    uint64_t won = 0, dup = 0, busy = 0;
    for (uint32_t i = 0; i < MT_THREADS; i++)
      won += w[i].won, dup += w[i].dup, busy += w[i].busy;
    for (uint64_t n = 0; n < n_keys; n++) {
      if (sh.winners[n] != 1)
        fail_msg("key %" PRIu64 ": %u winners", n, sh.winners[n]);
      fe_idem_key_t k = key_of(n);
      fe_idem_entry_t e;
      assert_fe_ok(fe_idem_lookup(sh.t, &k, &e));
      assert_int_equal(e.state, FE_IDEM_DONE);
      assert_true(outcome_ok(k, &e.outcome));
    }
    fe_idem_stats_t s = stats(sh.t);
    assert_int_equal(won, n_keys);
    assert_int_equal(s.claims, n_keys * MT_THREADS);
    assert_int_equal(s.claimed, n_keys);
    assert_int_equal(s.replays, dup);
    assert_int_equal(s.in_progress_answers, busy);
    assert_int_equal(s.live, n_keys);
    assert_int_equal(s.in_progress, 0);
    assert_int_equal(s.takeovers + s.mismatches + s.full, 0);
    print_message("    (round %d: %" PRIu64 " replays, %" PRIu64
                  " in-progress answers)\n", round, dup, busy);
    fe_idem_destroy(sh.t);
  }
  free(sh.winners);
  free(sh.done);
}

/* Writers claim and complete random keys of a small key space under a
 * ticking clock with a short retention, so entries keep expiring; a
 * reaper recycles their slots; readers look keys up.  Every outcome read
 * anywhere must be one written for that key (outcome_ok), and every
 * claim winner is the only holder of its key at that moment. */
#define RL_KEYS_MAX 384

typedef struct rl_shared {
  fe_idem_t *t;
  fe_t_errs_t errs;
  uint32_t keys;                 /* key space: 0..keys-1 */
  uint32_t abandon_in;           /* a winner abandons 1 time in this many */
  uint32_t holders[RL_KEYS_MAX]; /* claims of the key not yet ended */
  int stop;
} rl_shared_t;

typedef struct rl_worker {
  rl_shared_t *sh;
  uint32_t kind; /* 0 writer, 1 reader, 2 reaper */
  uint64_t seed, iters;
  uint64_t found, won, dup, reaped, full;
  pthread_t th;
} rl_worker_t;

static void *rl_main(void *arg) {
  rl_worker_t *w = arg;
  rl_shared_t *sh = w->sh;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, w->seed);
  for (uint64_t it = 0;; it++) {
    if (w->kind == 2) {
      if (__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE))
        break;
      uint64_t n = 0;
      FE_T_CHECK_EQ(&sh->errs, fe_idem_reap(sh->t, 37, &n), 0);
      w->reaped += n;
      if (n == 0)
        sched_yield();
      continue;
    }
    if (it == w->iters)
      break;
    uint64_t n = fe_t_rng_range(&rng, 0, sh->keys - 1);
    fe_idem_key_t k = key_of(n);
    if (w->kind == 1) {
      fe_idem_entry_t e;
      int rc = fe_idem_lookup(sh->t, &k, &e);
      if (rc == 0) {
        w->found++;
        FE_T_CHECK_EQ(&sh->errs, e.fingerprint, n);
        if (e.state == FE_IDEM_DONE)
          FE_T_CHECK(&sh->errs, outcome_ok(k, &e.outcome));
        else
          FE_T_CHECK_EQ(&sh->errs, e.state, FE_IDEM_IN_PROGRESS);
      } else {
        FE_T_CHECK_EQ(&sh->errs, rc, FE_ENOTFOUND);
      }
      continue;
    }
    fe_idem_claim_t c;
    int rc = fe_idem_claim_lease(sh->t, &k, n, 1000000000, &c);
    if (rc == 0) {
      w->won++;
      uint32_t h = __atomic_add_fetch(&sh->holders[n], 1, __ATOMIC_ACQ_REL);
      FE_T_CHECK_EQ(&sh->errs, h, 1);
      __atomic_sub_fetch(&sh->holders[n], 1, __ATOMIC_ACQ_REL);
      fe_idem_outcome_t o = outcome_for(k, (uint32_t)fe_t_rng_next(&rng));
      if (fe_t_rng_range(&rng, 1, sh->abandon_in) == 1)
        FE_T_CHECK_EQ(&sh->errs, fe_idem_abandon(sh->t, c.token), 0);
      else
        FE_T_CHECK_EQ(&sh->errs, fe_idem_complete(sh->t, c.token, &o), 0);
    } else if (rc == FE_EDUPLICATE) {
      w->dup++;
      FE_T_CHECK(&sh->errs, outcome_ok(k, &c.outcome));
    } else if (rc == FE_ETABLEFULL) {
      w->full++; /* possible only when the key space exceeds the table */
    } else if (rc != FE_EINPROGRESS) {
      fe_t_errf(&sh->errs, "claim returned %s", fe_err_name(rc));
    }
  }
  return NULL;
}

static void run_reaper_under_load(uint64_t capacity, uint32_t keys,
                                  uint32_t abandon_in, uint64_t retention) {
  fake_clock_t clk = {1, 1}; /* ticking: each reading advances time */
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &clk);
  cfg.capacity = capacity;
  cfg.retention_ns = retention;
  static rl_shared_t sh;
  memset(&sh, 0, sizeof sh);
  sh.keys = keys;
  sh.abandon_in = abandon_in;
  sh.t = make(&cfg);
  rl_worker_t w[4];
  memset(w, 0, sizeof w);
  const uint32_t kinds[4] = {0, 0, 1, 2};
  for (uint32_t i = 0; i < 4; i++) {
    w[i].sh = &sh;
    w[i].kind = kinds[i];
    w[i].seed = 77 + i;
    w[i].iters = 40000;
  }
  for (uint32_t i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&w[i].th, NULL, rl_main, &w[i]), 0);
  for (uint32_t i = 0; i < 3; i++)
    assert_int_equal(pthread_join(w[i].th, NULL), 0);
  __atomic_store_n(&sh.stop, 1, __ATOMIC_RELEASE);
  assert_int_equal(pthread_join(w[3].th, NULL), 0);
  fe_t_assert_clean(&sh.errs);
  fe_idem_stats_t s = stats(sh.t);
  print_message("    (won %" PRIu64 ", replays %" PRIu64 ", lookups found %"
                PRIu64 ", reaped %" PRIu64 " by the reaper, %" PRIu64
                " in all)\n", w[0].won + w[1].won, w[0].dup + w[1].dup,
                w[2].found, w[3].reaped, s.reaped);
  assert_true(w[3].reaped > 0); /* the reaper did recycle slots */
  assert_true(w[2].found > 0);
  assert_true(w[0].dup + w[1].dup > 0);
  assert_int_equal(s.claimed, w[0].won + w[1].won);
  assert_int_equal(s.full, w[0].full + w[1].full);
  if (keys * 2 <= capacity)
    assert_int_equal(s.full, 0);
  assert_int_equal(s.in_progress, 0);
  /* Gauges agree with the table once everything expired and is reaped. */
  fake_set(&clk, __atomic_load_n(&clk.now, __ATOMIC_RELAXED) + 10000);
  assert_fe_ok(fe_idem_reap(sh.t, cfg.capacity, NULL));
  s = stats(sh.t);
  assert_int_equal(s.live, 0);
  for (uint64_t n = 0; n < keys; n++) {
    fe_idem_key_t k = key_of(n);
    fe_idem_entry_t e;
    assert_fe(fe_idem_lookup(sh.t, &k, &e), FE_ENOTFOUND);
  }
  fe_idem_destroy(sh.t);
}

/* A table of 1024 slots for 384 keys: chains, tombstones, expiry. */
static void test_mt_reaper_under_load(void **state) {
  (void)state;
  run_reaper_under_load(1024, 384, 10, 3000);
}

/* One bucket, 6 keys, half the claims abandoned, short retention: every
 * slot is recycled all the time under the readers' copies. */
static void test_mt_hot_slots(void **state) {
  (void)state;
  run_reaper_under_load(8, 6, 2, 40);
}

/* Lease expiry racing the holder: the main thread claims a key, moves the
 * clock past the lease, then releases two threads at once: the holder
 * completes (or extends), the other claims.  Exactly one of them may
 * succeed in taking effect, and the table must agree with whoever did. */
#define LR_ROUNDS 3000

typedef struct lr_shared {
  fe_idem_t *t;
  fake_clock_t clk;
  fe_t_errs_t errs;
  uint32_t round;           /* released by the main thread (release) */
  uint32_t arrived;         /* both threads done with the round */
  fe_idem_token_t token;    /* the holder's, set before the round starts */
  int holder_rc, claim_rc;
  fe_idem_claim_t claim;
} lr_shared_t;

typedef struct lr_worker {
  lr_shared_t *sh;
  int holder;
  pthread_t th;
} lr_worker_t;

static void *lr_main(void *arg) {
  lr_worker_t *w = arg;
  lr_shared_t *sh = w->sh;
  for (uint32_t r = 1; r <= LR_ROUNDS; r++) {
    uint64_t spins = 0;
    while (__atomic_load_n(&sh->round, __ATOMIC_ACQUIRE) < r) {
      if (++spins % 64 == 0)
        sched_yield();
    }
    fe_idem_key_t k = key_of(r);
    if (w->holder) {
      if (r % 2) {
        fe_idem_outcome_t o = outcome_for(k, 1);
        sh->holder_rc = fe_idem_complete(sh->t, sh->token, &o);
      } else {
        sh->holder_rc = fe_idem_extend(sh->t, sh->token, 1000);
      }
    } else {
      sh->claim_rc = fe_idem_claim(sh->t, &k, 7, &sh->claim);
    }
    __atomic_fetch_add(&sh->arrived, 1, __ATOMIC_ACQ_REL);
  }
  return NULL;
}

static void test_mt_lease_race(void **state) {
  (void)state;
  static lr_shared_t sh;
  memset(&sh, 0, sizeof sh);
  fe_idem_config_t cfg;
  cfg_fake(&cfg, &sh.clk);
  cfg.capacity = 8192;
  sh.t = make(&cfg);
  lr_worker_t w[2] = {{&sh, 1, 0}, {&sh, 0, 0}};
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&w[i].th, NULL, lr_main, &w[i]), 0);
  uint64_t took = 0, held = 0;
  for (uint32_t r = 1; r <= LR_ROUNDS; r++) {
    fe_idem_key_t k = key_of(r);
    fe_idem_claim_t c;
    uint64_t t0 = (uint64_t)r * 10000;
    fake_set(&sh.clk, t0);
    assert_fe_ok(fe_idem_claim(sh.t, &k, 7, &c));
    sh.token = c.token;
    fake_set(&sh.clk, t0 + 100); /* the lease has just expired */
    __atomic_store_n(&sh.round, r, __ATOMIC_RELEASE);
    int ok;
    FE_T_WAIT_UNTIL(ok, __atomic_load_n(&sh.arrived, __ATOMIC_ACQUIRE) ==
                            2 * r, FE_T_LONG_MS);
    if (!ok)
      fail_msg("round %u did not finish", r);
    fe_t_assert_clean(&sh.errs);
    int h = sh.holder_rc, cl = sh.claim_rc, complete = r % 2;
    fe_idem_entry_t e;
    if (cl == 0) { /* the claim retook it: the holder lost */
      took++;
      assert_int_equal(sh.claim.flags, FE_IDEM_F_TAKEOVER);
      assert_fe(h, FE_ELEASE);
      assert_fe_ok(fe_idem_lookup(sh.t, &k, &e));
      assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
      assert_int_equal(e.expires_ns, t0 + 200);
      fe_idem_outcome_t o = outcome_for(k, 2);
      assert_fe_ok(fe_idem_complete(sh.t, sh.claim.token, &o));
      assert_fe_ok(fe_idem_lookup(sh.t, &k, &e));
      assert_int_equal(e.outcome.reason, 2);
    } else { /* the holder's call took effect first */
      held++;
      assert_fe_ok(h);
      assert_fe_ok(fe_idem_lookup(sh.t, &k, &e));
      if (complete) {
        assert_true(cl == FE_EDUPLICATE || cl == FE_EINPROGRESS);
        if (cl == FE_EDUPLICATE)
          assert_int_equal(sh.claim.outcome.reason, 1);
        assert_int_equal(e.state, FE_IDEM_DONE);
        assert_int_equal(e.outcome.reason, 1);
      } else {
        assert_fe(cl, FE_EINPROGRESS);
        assert_int_equal(e.state, FE_IDEM_IN_PROGRESS);
        assert_int_equal(e.expires_ns, t0 + 1100);
        assert_fe_ok(fe_idem_abandon(sh.t, sh.token));
      }
    }
  }
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(w[i].th, NULL), 0);
  print_message("    (%" PRIu64 " takeovers, %" PRIu64
                " holder first)\n", took, held);
  fe_idem_stats_t s = stats(sh.t);
  assert_int_equal(s.takeovers, took);
  assert_int_equal(s.stale, took);
  assert_int_equal(s.in_progress, 0);
  fe_idem_destroy(sh.t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_config_defaults),
      FE_T_TEST(test_invalid_configs),
      FE_T_TEST(test_null_args),
      FE_T_TEST(test_prefetch_hints_change_nothing),
      FE_T_TEST(test_key),
      FE_T_TEST(test_key_order),
      FE_T_TEST(test_fingerprint),
      FE_T_TEST(test_claim_complete_replay),
      FE_T_TEST(test_lookup_in_progress),
      FE_T_TEST(test_mismatch),
      FE_T_TEST(test_table_full),
      FE_T_TEST(test_chains_and_tags),
      FE_T_TEST(test_lease_takeover),
      FE_T_TEST(test_extend),
      FE_T_TEST(test_bad_tokens),
      FE_T_TEST(test_abandon),
      FE_T_TEST(test_cache_failures_on),
      FE_T_TEST(test_cache_failures_off),
      FE_T_TEST(test_retention_and_reap),
      FE_T_TEST(test_restore),
      FE_T_TEST(test_restore_many),
      FE_T_TEST(test_reopen),
      FE_T_TEST(test_restore_after_dead_letter),
      FE_T_TEST(test_mt_reopen_one_winner),
      FE_T_TEST(test_lookup_n),
      FE_T_TEST(test_lookup_recycled_under_copy),
      FE_T_TEST(test_mt_one_winner),
      FE_T_TEST(test_mt_reaper_under_load),
      FE_T_TEST(test_mt_hot_slots),
      FE_T_TEST(test_mt_lease_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
