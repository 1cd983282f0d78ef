/* Dead-letter queue: round trip of every field, ids, iteration and
 * filters, counts, both full policies, alerts, redrive (success, failure,
 * limit, bulk, purged meanwhile), purge, validation, NULL arguments, and
 * four threads at once.  The queue's clock is a fake; the only real waits
 * are the BLOCK timeouts (tens of milliseconds). */
#include "helpers.h"

#include "finevent/dlq.h"

/* ------------------------------------------------------------ fixtures */

typedef struct fake_clock {
  uint64_t ns;
  uint64_t step;
} fake_clock_t;

static uint64_t fake_now(void *user) {
  fake_clock_t *c = user;
  return __atomic_fetch_add(&c->ns, c->step, __ATOMIC_RELAXED);
}

/* Alerts seen: counts per kind, the last snapshot (atomics: the threaded
 * tests raise them from several threads). */
typedef struct alerts {
  int full, high;
  uint32_t last_count;
} alerts_t;

static void record_alert(fe_dlq_alert_t kind, const fe_dlq_stats_t *s,
                         void *user) {
  alerts_t *a = user;
  __atomic_fetch_add(kind == FE_DLQ_ALERT_FULL ? &a->full : &a->high, 1,
                     __ATOMIC_RELAXED);
  __atomic_store_n(&a->last_count, s->count, __ATOMIC_RELAXED);
}

typedef struct fx {
  fake_clock_t clock;
  alerts_t alerts;
  fe_dlq_config_t cfg;
  fe_dlq_t *q;
} fx_t;

static void fx_config(fx_t *f, uint32_t capacity, uint32_t user_size) {
  memset(f, 0, sizeof *f);
  f->clock.ns = UINT64_C(1700000000) * FE_T_SEC;
  f->clock.step = 1000;
  fe_dlq_config_init(&f->cfg);
  f->cfg.capacity = capacity;
  f->cfg.user_size = user_size;
  f->cfg.high_water_pct = 0;
  f->cfg.now_ns = fake_now;
  f->cfg.clock_user = &f->clock;
  f->cfg.on_alert = record_alert;
  f->cfg.user = &f->alerts;
}

static void fx_create(fx_t *f) {
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_dlq_create(&f->cfg, &f->q, &d);
  if (rc != 0)
    fail_msg("create: %s", d.msg);
}

static fe_event_t make_event(uint64_t n) {
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.seq = 100 + n;
  ev.type = FE_EV_NEW_ORDER;
  ev.order.account = 7000 + n;
  ev.order.quantity = (int64_t)(10 * n + 1);
  ev.order.price = 12345 * FE_PRICE_SCALE / 100;
  ev.order.side = FE_SIDE_BUY;
  ev.order.type = FE_ORD_LIMIT;
  ev.order.tif = FE_TIF_DAY;
  snprintf(ev.order.client_order_id, sizeof ev.order.client_order_id,
           "ORD-%llu", (unsigned long long)n);
  memcpy(ev.order.symbol, "AAPL", 4);
  ev.trace_id = 0xABC000 + n;
  return ev;
}

/* A put of event n at stage/reason/kind, no user area, no key. */
static int put3(fe_dlq_t *q, uint64_t n, uint32_t stage, uint32_t reason,
                uint32_t kind, uint64_t *id) {
  fe_event_t ev = make_event(n);
  fe_dlq_put_t in;
  memset(&in, 0, sizeof in);
  in.event = &ev;
  in.stage = stage;
  in.reason = reason;
  in.kind = kind;
  in.text = "boom";
  in.attempts = 1;
  return fe_dlq_put(q, &in, 0, id);
}

static fe_dlq_stats_t stats(fe_dlq_t *q) {
  fe_dlq_stats_t s;
  assert_fe(fe_dlq_stats(q, &s), 0);
  return s;
}

/* foreach collector: ids visited, stopping after `stop_after` if > 0. */
typedef struct collect {
  int n, stop_after;
  uint64_t ids[64];
} collect_t;

static int collect_fn(const fe_dlq_entry_t *e, void *user) {
  collect_t *c = user;
  if (c->n < 64)
    c->ids[c->n] = e->id;
  c->n++;
  return c->stop_after > 0 && c->n >= c->stop_after ? 42 : 0;
}

static collect_t walk(fe_dlq_t *q, const fe_dlq_filter_t *f) {
  collect_t c;
  memset(&c, 0, sizeof c);
  assert_fe(fe_dlq_foreach(q, f, collect_fn, &c), 0);
  return c;
}

/* Republish recorder: checks nothing itself; returns `rc`, or for
 * fail_every > 0, a failure on every fail_every-th call. */
typedef struct repub {
  int calls;
  int rc;
  int fail_every;
  fe_event_t ev;
  uint8_t user[64];
  uint32_t user_len, count;
  /* Optional actions from inside the callback. */
  fe_dlq_t *q;
  uint64_t purge_id;
  int purge_rc, nested_rc;
  int nested_redrive;
} repub_t;

static int record_repub(const fe_event_t *ev, const void *ua, uint32_t len,
                        uint32_t count, void *user) {
  repub_t *r = user;
  int call = __atomic_add_fetch(&r->calls, 1, __ATOMIC_RELAXED);
  if (r->fail_every > 0)
    return call % r->fail_every == 0 ? 5 : 0;
  r->ev = *ev;
  r->user_len = len;
  r->count = count;
  if (len != 0)
    memcpy(r->user, ua, len < sizeof r->user ? len : sizeof r->user);
  if (r->nested_redrive)
    r->nested_rc = fe_dlq_redrive(r->q, r->purge_id, record_repub, r);
  else if (r->purge_id != 0)
    r->purge_rc = fe_dlq_purge(r->q, r->purge_id);
  return r->rc;
}

/* --------------------------------------------------------------- tests */

static void test_defaults(void **state) {
  (void)state;
  fe_dlq_config_t c;
  memset(&c, 0xff, sizeof c);
  fe_dlq_config_init(&c);
  assert_int_equal(c.capacity, 1024);
  assert_int_equal(c.user_size, 0);
  assert_int_equal(c.redrive_limit, 3);
  assert_int_equal(c.policy, FE_DLQ_REJECT);
  assert_int_equal(c.high_water_pct, 80);
  assert_null(c.now_ns);
  assert_null(c.on_alert);
  fe_dlq_t *q = NULL;
  assert_fe(fe_dlq_create(&c, &q, NULL), 0);
  fe_dlq_stats_t s = stats(q);
  assert_int_equal(s.capacity, 1024);
  assert_int_equal(s.count, 0);
  /* The default clock is CLOCK_REALTIME. */
  uint64_t before = fe_clock_realtime_ns(), id;
  assert_fe(put3(q, 1, 0, 0, FE_DLQ_FAIL, &id), 0);
  fe_dlq_entry_t e;
  assert_fe(fe_dlq_get(q, id, &e, NULL, 0), 0);
  assert_true(e.dead_ns >= before && e.dead_ns <= fe_clock_realtime_ns());
  fe_dlq_destroy(q);
  fe_dlq_destroy(NULL);
  assert_string_equal(fe_dlq_kind_name(FE_DLQ_FAIL), "FAIL");
  assert_string_equal(fe_dlq_kind_name(FE_DLQ_RETRIES_EXHAUSTED),
                      "RETRIES_EXHAUSTED");
  assert_string_equal(fe_dlq_kind_name(FE_DLQ_KIND_USER + 3), "USER");
  assert_string_equal(fe_dlq_kind_name(7), "UNKNOWN");
}

static void test_round_trip(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 8, 32);
  fx_create(&f);

  fe_event_t ev = make_event(9);
  uint8_t ua[48], key[FE_DLQ_KEY_MAX];
  for (int i = 0; i < 48; i++)
    ua[i] = (uint8_t)(0xA0 + i);
  for (int i = 0; i < FE_DLQ_KEY_MAX; i++)
    key[i] = (uint8_t)(255 - i);
  char text[100];
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = '\0';

  fe_dlq_put_t in;
  memset(&in, 0, sizeof in);
  in.event = &ev;
  in.user_area = ua;
  in.user_len = 20; /* fits in user_size 32 */
  in.stage = 3;
  in.kind = FE_DLQ_RETRIES_EXHAUSTED;
  in.reason = FE_REASON_MAX;
  in.text = text;
  in.attempts = 5;
  in.redrive_count = 1;
  in.first_seen_ns = 1234567;
  in.key = key;
  in.key_len = FE_DLQ_KEY_MAX;
  uint64_t id = 0;
  uint64_t dead = f.clock.ns;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), 0);
  assert_true(id != 0);
  ev.order.quantity = -1; /* the queue holds a copy */

  fe_dlq_entry_t e;
  uint8_t buf[64];
  memset(buf, 0, sizeof buf);
  assert_fe(fe_dlq_get(f.q, id, &e, buf, sizeof buf), 0);
  fe_event_t want = make_event(9);
  assert_memory_equal(&e.event, &want, sizeof want);
  assert_int_equal(e.id, id);
  assert_int_equal(e.stage, 3);
  assert_int_equal(e.kind, FE_DLQ_RETRIES_EXHAUSTED);
  assert_int_equal(e.reason, FE_REASON_MAX);
  assert_int_equal(e.attempts, 5);
  assert_int_equal(e.redrive_count, 1);
  assert_int_equal(e.first_seen_ns, 1234567);
  assert_int_equal(e.dead_ns, dead);
  assert_int_equal(e.trace_id, want.trace_id);
  assert_int_equal(e.user_len, 20);
  assert_ptr_equal(e.user_area, buf);
  assert_memory_equal(buf, ua, 20);
  assert_int_equal(buf[20], 0);
  assert_int_equal(e.key_len, FE_DLQ_KEY_MAX);
  assert_memory_equal(e.key, key, FE_DLQ_KEY_MAX);
  assert_int_equal(strlen(e.text), FE_DLQ_TEXT_MAX - 1);
  assert_memory_equal(e.text, text, FE_DLQ_TEXT_MAX - 1);
  assert_int_equal(e.flags, FE_DLQ_F_TEXT_TRUNCATED);

  /* get with a smaller buffer copies what fits; without one, none. */
  memset(buf, 0, sizeof buf);
  assert_fe(fe_dlq_get(f.q, id, &e, buf, 4), 0);
  assert_memory_equal(buf, ua, 4);
  assert_int_equal(buf[4], 0);
  assert_int_equal(e.user_len, 20);
  assert_fe(fe_dlq_get(f.q, id, &e, NULL, 0), 0);
  assert_null(e.user_area);

  /* User area longer than user_size: the first 32 bytes, flagged.  Text
   * cut inside a UTF-8 character backs off to its start; empty key. */
  char utf[80];
  memset(utf, 'y', 62);
  memcpy(utf + 62, "\xC3\xA9zz", 5); /* e-acute at bytes 62..63 */
  in.user_len = 48;
  in.text = utf;
  in.key = NULL;
  in.key_len = 0;
  uint64_t id2;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id2), 0);
  assert_fe(fe_dlq_get(f.q, id2, &e, buf, sizeof buf), 0);
  assert_int_equal(e.user_len, 32);
  assert_memory_equal(buf, ua, 32);
  assert_int_equal(e.flags,
                   FE_DLQ_F_TEXT_TRUNCATED | FE_DLQ_F_USER_TRUNCATED);
  assert_int_equal(strlen(e.text), 62);
  assert_int_equal(e.key_len, 0);

  /* Exactly 63 bytes: kept whole, not flagged; NULL text: empty. */
  utf[63] = '\0';
  memset(utf, 'z', 63);
  in.text = utf;
  in.user_len = 0;
  in.user_area = NULL;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id2), 0);
  assert_fe(fe_dlq_get(f.q, id2, &e, NULL, 0), 0);
  assert_string_equal(e.text, utf);
  assert_int_equal(e.flags, 0);
  assert_int_equal(e.user_len, 0);
  in.text = NULL;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id2), 0);
  assert_fe(fe_dlq_get(f.q, id2, &e, NULL, 0), 0);
  assert_string_equal(e.text, "");
  fe_dlq_destroy(f.q);
}

static void test_ids_monotonic(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 0);
  fx_create(&f);
  uint64_t prev = 0, id;
  uint64_t seen[40];
  for (int i = 0; i < 40; i++) {
    assert_fe(put3(f.q, (uint64_t)i, 0, 1, FE_DLQ_FAIL, &id), 0);
    assert_true(id > prev);
    prev = id;
    seen[i] = id;
    /* Reuse slots in a scrambled order: purge one of the three oldest. */
    if (fe_dlq_count(f.q) == 4) {
      collect_t c = walk(f.q, NULL);
      assert_fe(fe_dlq_purge(f.q, c.ids[i % 3]), 0);
      assert_fe(fe_dlq_purge(f.q, c.ids[i % 3]), FE_ENOTFOUND);
    }
  }
  /* A purged id never comes back, even though its slot was reused. */
  int live = 0;
  fe_dlq_entry_t e;
  for (int i = 0; i < 40; i++)
    live += fe_dlq_get(f.q, seen[i], &e, NULL, 0) == 0;
  assert_int_equal(live, fe_dlq_count(f.q));
  assert_fe(fe_dlq_get(f.q, 0, &e, NULL, 0), FE_ENOTFOUND);
  assert_fe(fe_dlq_get(f.q, UINT64_MAX, &e, NULL, 0), FE_ENOTFOUND);
  fe_dlq_destroy(f.q);
}

static void test_foreach_filters(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 16, 8);
  fx_create(&f);
  /* i: stage i%3, reason 10 + i%2, kind FAIL for even, EXHAUSTED odd,
   * one host kind at the end. */
  uint64_t ids[9];
  for (int i = 0; i < 8; i++)
    assert_fe(put3(f.q, (uint64_t)i, (uint32_t)(i % 3), 10u + (uint32_t)(i % 2),
                   i % 2 ? FE_DLQ_RETRIES_EXHAUSTED : FE_DLQ_FAIL, &ids[i]),
              0);
  assert_fe(put3(f.q, 8, 2, 10, FE_DLQ_KIND_USER + 1, &ids[8]), 0);
  /* Purge one in the middle: iteration skips the hole. */
  assert_fe(fe_dlq_purge(f.q, ids[4]), 0);

  collect_t c = walk(f.q, NULL);
  uint64_t all[] = {ids[0], ids[1], ids[2], ids[3], ids[5], ids[6], ids[7],
                    ids[8]};
  assert_int_equal(c.n, 8);
  assert_memory_equal(c.ids, all, sizeof all);

  fe_dlq_filter_t fl = {FE_DLQ_MATCH_STAGE, 0, 0, 0};
  c = walk(f.q, &fl); /* stage 0: 0, 3, 6 */
  assert_int_equal(c.n, 3);
  assert_int_equal(c.ids[0], ids[0]);
  assert_int_equal(c.ids[1], ids[3]);
  assert_int_equal(c.ids[2], ids[6]);

  fl = (fe_dlq_filter_t){FE_DLQ_MATCH_REASON, 0, 11, 0};
  c = walk(f.q, &fl); /* odd: 1, 3, 5, 7 */
  assert_int_equal(c.n, 4);
  assert_int_equal(c.ids[0], ids[1]);
  assert_int_equal(c.ids[3], ids[7]);

  fl = (fe_dlq_filter_t){FE_DLQ_MATCH_KIND, 0, 0, FE_DLQ_FAIL};
  c = walk(f.q, &fl); /* even, 4 purged: 0, 2, 6 */
  assert_int_equal(c.n, 3);
  assert_int_equal(c.ids[1], ids[2]);

  fl = (fe_dlq_filter_t){FE_DLQ_MATCH_KIND, 0, 0, FE_DLQ_KIND_USER + 1};
  c = walk(f.q, &fl);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.ids[0], ids[8]);

  fl = (fe_dlq_filter_t){FE_DLQ_MATCH_STAGE | FE_DLQ_MATCH_REASON, 2, 10, 0};
  c = walk(f.q, &fl); /* stage 2 and even-reason: 2, 8 */
  assert_int_equal(c.n, 2);
  assert_int_equal(c.ids[0], ids[2]);
  assert_int_equal(c.ids[1], ids[8]);

  fl = (fe_dlq_filter_t){0, 99, 99, 99}; /* no bits: everything */
  assert_int_equal(walk(f.q, &fl).n, 8);

  /* Early stop: fn's value comes back, nothing after it is visited. */
  memset(&c, 0, sizeof c);
  c.stop_after = 3;
  assert_int_equal(fe_dlq_foreach(f.q, NULL, collect_fn, &c), 42);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.ids[2], ids[2]);
  fe_dlq_destroy(f.q);
}

static int check_user_area(const fe_dlq_entry_t *e, void *user) {
  (void)user;
  return e->user_area != NULL && e->user_len == 3 &&
                 memcmp(e->user_area, "abc", 3) == 0
             ? 0
             : 1;
}

static void test_foreach_user_area(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 8);
  fx_create(&f);
  fe_event_t ev = make_event(1);
  fe_dlq_put_t in = {.event = &ev, .user_area = "abc", .user_len = 3,
                     .kind = FE_DLQ_FAIL};
  assert_fe(fe_dlq_put(f.q, &in, 0, NULL), 0);
  assert_fe(fe_dlq_put(f.q, &in, 0, NULL), 0);
  assert_int_equal(fe_dlq_foreach(f.q, NULL, check_user_area, NULL), 0);
  fe_dlq_destroy(f.q);
}

static void test_count_reason(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 16, 0);
  fx_create(&f);
  uint64_t id[6];
  uint32_t reasons[6] = {0, 7, 7, 7, FE_REASON_MAX, 9};
  for (int i = 0; i < 6; i++)
    assert_fe(put3(f.q, (uint64_t)i, 1, reasons[i], FE_DLQ_FAIL, &id[i]), 0);
  assert_int_equal(fe_dlq_count(f.q), 6);
  assert_int_equal(fe_dlq_count_reason(f.q, 7), 3);
  assert_int_equal(fe_dlq_count_reason(f.q, 0), 1);
  assert_int_equal(fe_dlq_count_reason(f.q, FE_REASON_MAX), 1);
  assert_int_equal(fe_dlq_count_reason(f.q, 8), 0);
  assert_fe(fe_dlq_count_reason(f.q, FE_REASON_MAX + 1), FE_ERANGE);
  assert_fe(fe_dlq_purge(f.q, id[2]), 0);
  repub_t r = {0};
  assert_fe(fe_dlq_redrive(f.q, id[3], record_repub, &r), 0);
  assert_int_equal(fe_dlq_count_reason(f.q, 7), 1);
  assert_int_equal(fe_dlq_count(f.q), 4);
  fe_dlq_destroy(f.q);
}

static void test_reject_when_full(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 3, 0);
  fx_create(&f);
  for (int i = 0; i < 3; i++)
    assert_fe(put3(f.q, (uint64_t)i, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_int_equal(f.alerts.full, 0);
  uint64_t id = 77;
  assert_fe(put3(f.q, 3, 0, 1, FE_DLQ_FAIL, &id), FE_EFULL);
  assert_int_equal(id, 77); /* untouched */
  assert_int_equal(f.alerts.full, 1);
  assert_int_equal(f.alerts.last_count, 3);
  assert_fe(put3(f.q, 4, 0, 1, FE_DLQ_FAIL, NULL), FE_EFULL);
  assert_int_equal(f.alerts.full, 2);
  assert_int_equal(f.alerts.high, 0);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.refused, 2);
  assert_int_equal(s.full_alerts, 2);
  assert_int_equal(s.put, 3);
  assert_int_equal(s.count, 3);
  assert_int_equal(s.blocked, 0);
  /* Room again after a purge. */
  fe_dlq_purge_all(f.q, NULL, NULL);
  assert_fe(put3(f.q, 5, 0, 1, FE_DLQ_FAIL, NULL), 0);
  fe_dlq_destroy(f.q);
}

static void test_high_water(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 10, 0);
  f.cfg.high_water_pct = 75; /* ceil(7.5) = 8 entries */
  fx_create(&f);
  uint64_t id[10];
  for (int i = 0; i < 7; i++)
    assert_fe(put3(f.q, (uint64_t)i, 0, 1, FE_DLQ_FAIL, &id[i]), 0);
  assert_int_equal(f.alerts.high, 0);
  assert_fe(put3(f.q, 7, 0, 1, FE_DLQ_FAIL, &id[7]), 0);
  assert_int_equal(f.alerts.high, 1);
  assert_int_equal(f.alerts.last_count, 8);
  assert_fe(put3(f.q, 8, 0, 1, FE_DLQ_FAIL, &id[8]), 0);
  assert_int_equal(f.alerts.high, 1); /* once per crossing */
  /* 9 -> 8 entries: still at the mark, not re-armed. */
  assert_fe(fe_dlq_purge(f.q, id[0]), 0);
  assert_fe(put3(f.q, 9, 0, 1, FE_DLQ_FAIL, &id[9]), 0);
  assert_int_equal(f.alerts.high, 1);
  /* Below the mark re-arms; reaching it again alerts again. */
  assert_fe(fe_dlq_purge(f.q, id[1]), 0);
  assert_fe(fe_dlq_purge(f.q, id[2]), 0);
  assert_fe(put3(f.q, 10, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_int_equal(f.alerts.high, 2);
  assert_int_equal(stats(f.q).high_water_alerts, 2);
  assert_int_equal(f.alerts.full, 0);
  fe_dlq_destroy(f.q);

  /* 1 % of 10 rounds up to one entry: the first put alerts. */
  fx_config(&f, 10, 0);
  f.cfg.high_water_pct = 1;
  fx_create(&f);
  assert_fe(put3(f.q, 0, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_int_equal(f.alerts.high, 1);
  fe_dlq_destroy(f.q);
}

static void test_block_times_out(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 2, 0);
  f.cfg.policy = FE_DLQ_BLOCK;
  fx_create(&f);
  assert_fe(put3(f.q, 0, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_fe(put3(f.q, 1, 0, 1, FE_DLQ_FAIL, NULL), 0);
  /* timeout 0: no wait, but counted and alerted. */
  assert_fe(put3(f.q, 2, 0, 1, FE_DLQ_FAIL, NULL), FE_ETIMEDOUT);
  assert_int_equal(f.alerts.full, 1);

  fe_event_t ev = make_event(3);
  fe_dlq_put_t in = {.event = &ev, .kind = FE_DLQ_FAIL};
  uint64_t t0 = fe_t_now_ns();
  assert_fe(fe_dlq_put(f.q, &in, 30 * FE_T_MS, NULL), FE_ETIMEDOUT);
  uint64_t took = fe_t_now_ns() - t0;
  assert_true(took >= 30 * FE_T_MS);
  assert_true(took < FE_T_LONG_NS);
  assert_int_equal(f.alerts.full, 2); /* once for the whole wait */
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.blocked, 2);
  assert_int_equal(s.refused, 2);
  assert_int_equal(s.full_alerts, 2);
  assert_int_equal(s.count, 2);
  fe_dlq_destroy(f.q);
}

typedef struct blocked_put {
  fe_dlq_t *q;
  int rc;
  uint64_t id;
} blocked_put_t;

static void *blocked_put_main(void *arg) {
  blocked_put_t *b = arg;
  fe_event_t ev = make_event(50);
  fe_dlq_put_t in = {.event = &ev, .kind = FE_DLQ_FAIL, .reason = 3};
  b->rc = fe_dlq_put(b->q, &in, FE_T_LONG_NS, &b->id);
  return NULL;
}

/* A BLOCK put waits, then succeeds when another thread frees a slot by
 * purge (how = 0) or by redrive (how = 1). */
static void block_then_freed(int how) {
  fx_t f;
  fx_config(&f, 2, 0);
  f.cfg.policy = FE_DLQ_BLOCK;
  fx_create(&f);
  uint64_t first;
  assert_fe(put3(f.q, 0, 0, 1, FE_DLQ_FAIL, &first), 0);
  assert_fe(put3(f.q, 1, 0, 1, FE_DLQ_FAIL, NULL), 0);
  blocked_put_t b = {f.q, 1, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, blocked_put_main, &b), 0);
  int ok;
  FE_T_WAIT_UNTIL(ok, stats(f.q).blocked == 1, FE_T_LONG_MS);
  assert_true(ok);
  fe_t_sleep_ms(5); /* most likely parked on the condition by now */
  if (how == 0) {
    assert_fe(fe_dlq_purge(f.q, first), 0);
  } else {
    repub_t r = {0};
    assert_fe(fe_dlq_redrive(f.q, first, record_repub, &r), 0);
  }
  pthread_join(t, NULL);
  assert_fe(b.rc, 0);
  assert_true(b.id > first);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.count, 2);
  assert_int_equal(s.blocked, 1);
  assert_int_equal(s.refused, 0);
  assert_int_equal(s.put, 3);
  assert_int_equal(f.alerts.full, 1);
  assert_int_equal(s.put, s.count + s.redriven + s.purged);
  fe_dlq_destroy(f.q);
}

static void test_block_freed_by_purge(void **state) {
  (void)state;
  block_then_freed(0);
}

static void test_block_freed_by_redrive(void **state) {
  (void)state;
  block_then_freed(1);
}

/* An alert callback that makes room: the put that raised it goes on. */
static void purge_oldest_alert(fe_dlq_alert_t kind, const fe_dlq_stats_t *s,
                               void *user) {
  (void)s;
  fx_t *f = user;
  if (kind == FE_DLQ_ALERT_FULL) {
    collect_t c = {0, 1, {0}};
    fe_dlq_foreach(f->q, NULL, collect_fn, &c);
    fe_dlq_purge(f->q, c.ids[0]);
  }
}

static void test_block_alert_makes_room(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 1, 0);
  f.cfg.policy = FE_DLQ_BLOCK;
  f.cfg.on_alert = purge_oldest_alert;
  f.cfg.user = &f;
  fx_create(&f);
  assert_fe(put3(f.q, 0, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_fe(put3(f.q, 1, 0, 1, FE_DLQ_FAIL, NULL), 0); /* timeout 0 */
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.put, 2);
  assert_int_equal(s.purged, 1);
  assert_int_equal(s.blocked, 1);
  assert_int_equal(s.refused, 0);
  fe_dlq_destroy(f.q);
}

static void test_redrive_success(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 16);
  fx_create(&f);
  fe_event_t ev = make_event(5);
  fe_dlq_put_t in = {.event = &ev, .user_area = "payload", .user_len = 7,
                     .kind = FE_DLQ_FAIL, .reason = 4, .redrive_count = 1};
  uint64_t id, other;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), 0);
  assert_fe(put3(f.q, 6, 0, 1, FE_DLQ_FAIL, &other), 0);
  repub_t r = {0};
  assert_fe(fe_dlq_redrive(f.q, id, record_repub, &r), 0);
  assert_int_equal(r.calls, 1);
  assert_memory_equal(&r.ev, &ev, sizeof ev);
  assert_int_equal(r.user_len, 7);
  assert_memory_equal(r.user, "payload", 7);
  assert_int_equal(r.count, 2); /* 1 + this redrive */
  fe_dlq_entry_t e;
  assert_fe(fe_dlq_get(f.q, id, &e, NULL, 0), FE_ENOTFOUND);
  assert_fe(fe_dlq_redrive(f.q, id, record_repub, &r), FE_ENOTFOUND);
  assert_int_equal(r.calls, 1);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.redriven, 1);
  assert_int_equal(s.count, 1);
  assert_int_equal(fe_dlq_count_reason(f.q, 4), 0);
  collect_t c = walk(f.q, NULL);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.ids[0], other);
  fe_dlq_destroy(f.q);
}

static void test_redrive_failure_keeps(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 0);
  fx_create(&f);
  uint64_t id;
  assert_fe(put3(f.q, 1, 2, 3, FE_DLQ_FAIL, &id), 0);
  repub_t r = {0};
  r.rc = 17;
  assert_int_equal(fe_dlq_redrive(f.q, id, record_repub, &r), 17);
  assert_int_equal(r.count, 1);
  fe_dlq_entry_t e;
  assert_fe(fe_dlq_get(f.q, id, &e, NULL, 0), 0);
  assert_int_equal(e.redrive_count, 0); /* unchanged */
  /* Again: the same count is offered. */
  assert_int_equal(fe_dlq_redrive(f.q, id, record_repub, &r), 17);
  assert_int_equal(r.count, 1);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.redriven, 0);
  assert_int_equal(s.redrive_failed, 2);
  assert_int_equal(s.count, 1);
  fe_dlq_destroy(f.q);
}

static void test_redrive_limit(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 0);
  f.cfg.redrive_limit = 3;
  fx_create(&f);
  fe_event_t ev = make_event(1);
  fe_dlq_put_t in = {.event = &ev, .kind = FE_DLQ_FAIL, .redrive_count = 3};
  uint64_t at, below;
  assert_fe(fe_dlq_put(f.q, &in, 0, &at), 0);
  in.redrive_count = 2;
  assert_fe(fe_dlq_put(f.q, &in, 0, &below), 0);
  repub_t r = {0};
  assert_fe(fe_dlq_redrive(f.q, at, record_repub, &r), FE_EREDRIVE);
  assert_int_equal(r.calls, 0);
  assert_int_equal(fe_dlq_count(f.q), 2);
  assert_fe(fe_dlq_redrive(f.q, below, record_repub, &r), 0);
  assert_int_equal(r.count, 3); /* the last one allowed */
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.redrive_refused, 1);
  assert_int_equal(s.redriven, 1);
  fe_dlq_destroy(f.q);
}

static void test_redrive_all(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 16, 0);
  f.cfg.redrive_limit = 2;
  fx_create(&f);
  /* Stages 1,2,1,2,...; entry 4 (stage 1) is at the limit. */
  uint64_t id[8];
  for (int i = 0; i < 8; i++) {
    fe_event_t ev = make_event((uint64_t)i);
    fe_dlq_put_t in = {.event = &ev, .kind = FE_DLQ_FAIL,
                       .stage = 1u + (uint32_t)(i % 2),
                       .redrive_count = i == 4 ? 2u : 0u};
    assert_fe(fe_dlq_put(f.q, &in, 0, &id[i]), 0);
  }
  fe_dlq_filter_t fl = {FE_DLQ_MATCH_STAGE, 1, 0, 0};
  repub_t r = {0};
  uint64_t done = 99;
  assert_fe(fe_dlq_redrive_all(f.q, &fl, record_repub, &r, &done),
            FE_EREDRIVE);
  assert_int_equal(done, 3); /* 0, 2, 6 */
  assert_int_equal(r.calls, 3);
  assert_int_equal(r.ev.order.account, 7000 + 6); /* oldest first: 6 last */
  collect_t c = walk(f.q, NULL);
  uint64_t left[] = {id[1], id[3], id[4], id[5], id[7]};
  assert_int_equal(c.n, 5);
  assert_memory_equal(c.ids, left, sizeof left);
  assert_int_equal(stats(f.q).redrive_refused, 1);

  /* A failing republish stops the walk there. */
  memset(&r, 0, sizeof r);
  r.fail_every = 2; /* call 1 ok, call 2 fails */
  assert_int_equal(fe_dlq_redrive_all(f.q, NULL, record_repub, &r, &done), 5);
  assert_int_equal(done, 1);
  assert_int_equal(r.calls, 2);
  c = walk(f.q, NULL);
  uint64_t left2[] = {id[3], id[4], id[5], id[7]};
  assert_int_equal(c.n, 4);
  assert_memory_equal(c.ids, left2, sizeof left2);

  /* Everything eligible, no filter: id[4] is still at its limit. */
  memset(&r, 0, sizeof r);
  assert_fe(fe_dlq_redrive_all(f.q, NULL, record_repub, &r, &done),
            FE_EREDRIVE);
  assert_int_equal(done, 3);
  assert_int_equal(fe_dlq_count(f.q), 1);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.put, s.count + s.redriven + s.purged);
  assert_int_equal(s.redriven, 7);
  assert_int_equal(s.redrive_failed, 1);
  fe_dlq_destroy(f.q);
}

/* The entry is purged while its republish runs (from inside the callback,
 * which may call into the queue): gone afterwards, counted once. */
static void test_redrive_purged_meanwhile(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 0);
  fx_create(&f);
  uint64_t a, b;
  assert_fe(put3(f.q, 1, 0, 9, FE_DLQ_FAIL, &a), 0);
  assert_fe(put3(f.q, 2, 0, 9, FE_DLQ_FAIL, &b), 0);

  repub_t r = {0};
  r.q = f.q;
  r.purge_id = a;
  assert_fe(fe_dlq_redrive(f.q, a, record_repub, &r), 0);
  assert_fe(r.purge_rc, 0);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.redriven, 1); /* it did go back */
  assert_int_equal(s.purged, 0);
  assert_int_equal(s.count, 1);
  assert_int_equal(fe_dlq_count_reason(f.q, 9), 1);

  memset(&r, 0, sizeof r);
  r.q = f.q;
  r.purge_id = b;
  r.rc = 3;
  assert_int_equal(fe_dlq_redrive(f.q, b, record_repub, &r), 3);
  s = stats(f.q);
  assert_int_equal(s.purged, 1); /* the purge took effect */
  assert_int_equal(s.count, 0);
  assert_int_equal(fe_dlq_count_reason(f.q, 9), 0);
  fe_dlq_entry_t e;
  assert_fe(fe_dlq_get(f.q, b, &e, NULL, 0), FE_ENOTFOUND);
  assert_int_equal(s.put, s.count + s.redriven + s.purged);
  /* Both slots came back. */
  for (int i = 0; i < 4; i++)
    assert_fe(put3(f.q, 10 + (uint64_t)i, 0, 1, FE_DLQ_FAIL, NULL), 0);

  /* A second redrive of an entry being redriven is refused. */
  collect_t c = walk(f.q, NULL);
  memset(&r, 0, sizeof r);
  r.q = f.q;
  r.purge_id = c.ids[0];
  r.nested_redrive = 1;
  assert_fe(fe_dlq_redrive(f.q, c.ids[0], record_repub, &r), 0);
  assert_fe(r.nested_rc, FE_ESTATE);
  assert_int_equal(r.calls, 1);
  fe_dlq_destroy(f.q);
}

static void test_purge(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 8, 0);
  fx_create(&f);
  uint64_t id[6];
  for (int i = 0; i < 6; i++)
    assert_fe(put3(f.q, (uint64_t)i, (uint32_t)(i % 2), 1, FE_DLQ_FAIL, &id[i]),
              0);
  assert_fe(fe_dlq_purge(f.q, id[0]), 0);
  assert_fe(fe_dlq_purge(f.q, id[0]), FE_ENOTFOUND);
  assert_fe(fe_dlq_purge(f.q, 0), FE_ENOTFOUND);
  fe_dlq_filter_t fl = {FE_DLQ_MATCH_STAGE, 1, 0, 0};
  uint64_t removed = 99;
  assert_fe(fe_dlq_purge_all(f.q, &fl, &removed), 0);
  assert_int_equal(removed, 3);
  collect_t c = walk(f.q, NULL);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.ids[0], id[2]);
  assert_int_equal(c.ids[1], id[4]);
  assert_fe(fe_dlq_purge_all(f.q, NULL, &removed), 0);
  assert_int_equal(removed, 2);
  assert_fe(fe_dlq_purge_all(f.q, NULL, &removed), 0);
  assert_int_equal(removed, 0);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.purged, 6);
  assert_int_equal(s.count, 0);
  /* The whole capacity is free again. */
  for (int i = 0; i < 8; i++)
    assert_fe(put3(f.q, (uint64_t)i, 0, 1, FE_DLQ_FAIL, NULL), 0);
  assert_fe(put3(f.q, 9, 0, 1, FE_DLQ_FAIL, NULL), FE_EFULL);
  fe_dlq_destroy(f.q);
}

typedef struct bad_case {
  const char *what;
  int code;
  const char *msg;
} bad_case_t;

static void mutate(fe_dlq_config_t *c, int i) {
  switch (i) {
  case 0: c->capacity = 0; break;
  case 1: c->capacity = FE_DLQ_CAPACITY_MAX + 1; break;
  case 2: c->user_size = FE_DLQ_USER_SIZE_MAX + 1; break;
  case 3: c->redrive_limit = 0; break;
  case 4: c->redrive_limit = FE_DLQ_REDRIVE_LIMIT_MAX + 1; break;
  case 5: c->policy = (fe_dlq_policy_t)7; break;
  case 6: c->high_water_pct = 101; break;
  }
}

static void test_invalid_configs(void **state) {
  (void)state;
  static const bad_case_t cases[] = {
      {"capacity 0", FE_ERANGE, "dlq: capacity 0 is outside 1..1048576"},
      {"capacity big", FE_ERANGE, "dlq: capacity 1048577 is outside"},
      {"user_size", FE_ERANGE, "dlq: user_size 65537 is above 65536"},
      {"redrive 0", FE_ERANGE, "dlq: redrive_limit 0 is outside 1..1000000"},
      {"redrive big", FE_ERANGE, "dlq: redrive_limit 1000001 is outside"},
      {"policy", FE_EINVAL, "dlq: policy 7 is neither"},
      {"high water", FE_ERANGE, "dlq: high_water_pct 101 is above 100"},
  };
  const int n = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < n; i++) {
    fe_dlq_config_t c;
    fe_dlq_config_init(&c);
    mutate(&c, i);
    fe_diag_t d;
    memset(&d, 0, sizeof d);
    fe_dlq_t *q = (fe_dlq_t *)&c; /* must stay untouched */
    int rc = fe_dlq_create(&c, &q, &d);
    if (rc != cases[i].code || d.code != cases[i].code ||
        strstr(d.msg, cases[i].msg) == NULL || q != (fe_dlq_t *)&c)
      fail_msg("%s: rc %s, diag %s \"%s\"", cases[i].what, fe_err_name(rc),
               fe_err_name(d.code), d.msg);
    assert_fe(fe_dlq_config_check(&c, NULL), cases[i].code);
    assert_fe(fe_dlq_create(&c, &q, NULL), cases[i].code);
  }
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  fe_dlq_t *q = NULL;
  assert_fe(fe_dlq_create(NULL, &q, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "config is NULL"));
  fe_dlq_config_t c;
  fe_dlq_config_init(&c);
  assert_fe(fe_dlq_create(&c, NULL, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "out is NULL"));
  assert_fe(fe_dlq_config_check(NULL, NULL), FE_EINVAL);
  /* Boundaries that are valid. */
  c.capacity = 1;
  c.user_size = FE_DLQ_USER_SIZE_MAX;
  c.redrive_limit = FE_DLQ_REDRIVE_LIMIT_MAX;
  c.policy = FE_DLQ_BLOCK;
  c.high_water_pct = 100;
  assert_fe(fe_dlq_create(&c, &q, NULL), 0);
  fe_dlq_destroy(q);
}

static void test_bad_puts(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 8);
  fx_create(&f);
  fe_event_t ev = make_event(1);
  uint8_t key[FE_DLQ_KEY_MAX + 1] = {0};
  fe_dlq_put_t ok = {.event = &ev, .kind = FE_DLQ_FAIL};
  fe_dlq_put_t in;
  uint64_t id = 5;
  assert_fe(fe_dlq_put(NULL, &ok, 0, &id), FE_EINVAL);
  assert_fe(fe_dlq_put(f.q, NULL, 0, &id), FE_EINVAL);
  in = ok; in.event = NULL;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_EINVAL);
  in = ok; in.user_len = 4;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_EINVAL);
  in = ok; in.key_len = 4;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_EINVAL);
  in = ok; in.kind = 0;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_EINVAL);
  in = ok; in.kind = FE_DLQ_KIND_USER - 1;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_EINVAL);
  in = ok; in.reason = FE_REASON_MAX + 1;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_ERANGE);
  in = ok; in.key = key; in.key_len = FE_DLQ_KEY_MAX + 1;
  assert_fe(fe_dlq_put(f.q, &in, 0, &id), FE_ERANGE);
  assert_int_equal(id, 5);
  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.put, 0);
  assert_int_equal(s.count, 0);
  assert_int_equal(s.refused, 0);
  fe_dlq_destroy(f.q);
}

static void test_null_args(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 4, 0);
  fx_create(&f);
  uint64_t id;
  assert_fe(put3(f.q, 1, 0, 1, FE_DLQ_FAIL, &id), 0);
  fe_dlq_entry_t e;
  fe_dlq_stats_t s;
  uint64_t n = 7;
  char buf[4];
  assert_fe(fe_dlq_count(NULL), FE_EINVAL);
  assert_fe(fe_dlq_count_reason(NULL, 1), FE_EINVAL);
  assert_fe(fe_dlq_foreach(NULL, NULL, collect_fn, NULL), FE_EINVAL);
  assert_fe(fe_dlq_foreach(f.q, NULL, NULL, NULL), FE_EINVAL);
  assert_fe(fe_dlq_get(NULL, id, &e, NULL, 0), FE_EINVAL);
  assert_fe(fe_dlq_get(f.q, id, NULL, NULL, 0), FE_EINVAL);
  assert_fe(fe_dlq_get(f.q, id, &e, NULL, 4), FE_EINVAL);
  assert_fe(fe_dlq_get(f.q, id, &e, buf, 0), 0); /* buffer of size 0 */
  assert_fe(fe_dlq_redrive(NULL, id, record_repub, NULL), FE_EINVAL);
  assert_fe(fe_dlq_redrive(f.q, id, NULL, NULL), FE_EINVAL);
  assert_fe(fe_dlq_redrive_all(NULL, NULL, record_repub, NULL, &n), FE_EINVAL);
  assert_int_equal(n, 0);
  n = 7;
  assert_fe(fe_dlq_redrive_all(f.q, NULL, NULL, NULL, &n), FE_EINVAL);
  assert_int_equal(n, 0);
  assert_fe(fe_dlq_purge(NULL, id), FE_EINVAL);
  n = 7;
  assert_fe(fe_dlq_purge_all(NULL, NULL, &n), FE_EINVAL);
  assert_int_equal(n, 0);
  assert_fe(fe_dlq_stats(NULL, &s), FE_EINVAL);
  assert_fe(fe_dlq_stats(f.q, NULL), FE_EINVAL);
  assert_int_equal(fe_dlq_count(f.q), 1); /* nothing changed */
  fe_dlq_destroy(f.q);
}

/* --------------------------------------------------------- threads */

#define PUTTERS 3
#define PER_PUTTER 1500

typedef struct shared {
  fe_dlq_t *q;
  fe_t_errs_t errs;
  int putters_left;
  uint64_t republished; /* successful republish calls */
} shared_t;

typedef struct putter {
  shared_t *sh;
  uint32_t n;
} putter_t;

static void *putter_main(void *arg) {
  putter_t *p = arg;
  for (uint32_t i = 0; i < PER_PUTTER; i++) {
    fe_event_t ev = make_event(p->n * PER_PUTTER + i);
    uint8_t k[8];
    memcpy(k, &ev.trace_id, sizeof k);
    fe_dlq_put_t in = {.event = &ev, .user_area = &i, .user_len = sizeof i,
                       .stage = p->n, .kind = FE_DLQ_FAIL,
                       .reason = i % 4, .text = "thread",
                       .key = k, .key_len = sizeof k};
    uint64_t id;
    int rc = fe_dlq_put(p->sh->q, &in, FE_T_LONG_NS, &id);
    FE_T_CHECK_EQ(&p->sh->errs, rc, 0);
  }
  __atomic_fetch_sub(&p->sh->putters_left, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Republishes, failing one call in five. */
static int counting_repub(const fe_event_t *ev, const void *ua, uint32_t len,
                          uint32_t count, void *user) {
  shared_t *sh = user;
  static uint32_t calls; /* only the consumer thread calls it */
  FE_T_CHECK(&sh->errs, len == sizeof(uint32_t) && ua != NULL);
  FE_T_CHECK(&sh->errs, count >= 1);
  FE_T_CHECK(&sh->errs, ev->order.account >= 7000);
  if (++calls % 5 == 0)
    return 9;
  __atomic_fetch_add(&sh->republished, 1, __ATOMIC_RELAXED);
  return 0;
}

static int first_id(const fe_dlq_entry_t *e, void *user) {
  *(uint64_t *)user = e->id;
  return 1;
}

static void *consumer_main(void *arg) {
  shared_t *sh = arg;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 42);
  for (;;) {
    int done = __atomic_load_n(&sh->putters_left, __ATOMIC_ACQUIRE) == 0;
    uint64_t id = 0, n;
    switch (fe_t_rng_range(&rng, 0, 3)) {
    case 0: /* redrive the oldest */
      if (fe_dlq_foreach(sh->q, NULL, first_id, &id) == 1) {
        int rc = fe_dlq_redrive(sh->q, id, counting_repub, sh);
        FE_T_CHECK(&sh->errs, rc == 0 || rc == 9 || rc == FE_EREDRIVE);
      }
      break;
    case 1: { /* purge the oldest of one stage */
      fe_dlq_filter_t fl = {FE_DLQ_MATCH_STAGE, fe_t_rng_range(&rng, 0, 2), 0,
                            0};
      if (fe_dlq_foreach(sh->q, &fl, first_id, &id) == 1)
        FE_T_CHECK_EQ(&sh->errs, fe_dlq_purge(sh->q, id), 0);
      break;
    }
    case 2: { /* redrive one reason in bulk */
      fe_dlq_filter_t fl = {FE_DLQ_MATCH_REASON, 0, fe_t_rng_range(&rng, 0, 3),
                            0};
      int rc = fe_dlq_redrive_all(sh->q, &fl, counting_repub, sh, &n);
      FE_T_CHECK(&sh->errs, rc == 0 || rc == 9 || rc == FE_EREDRIVE);
      break;
    }
    default: { /* purge a reason in bulk, now and then */
      if (fe_t_rng_range(&rng, 0, 7) == 0) {
        fe_dlq_filter_t fl = {FE_DLQ_MATCH_REASON, 0, 3, 0};
        FE_T_CHECK_EQ(&sh->errs, fe_dlq_purge_all(sh->q, &fl, &n), 0);
      }
      fe_dlq_stats_t s;
      fe_dlq_stats(sh->q, &s);
      FE_T_CHECK(&sh->errs, s.count <= s.capacity);
      break;
    }
    }
    if (done && fe_dlq_count(sh->q) == 0)
      break;
  }
  return NULL;
}

static void test_threads_counts_add_up(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f, 32, 8);
  f.cfg.policy = FE_DLQ_BLOCK;
  f.cfg.high_water_pct = 50;
  f.cfg.redrive_limit = 100;
  fx_create(&f);
  shared_t sh;
  memset(&sh, 0, sizeof sh);
  sh.q = f.q;
  sh.putters_left = PUTTERS;
  pthread_t pt[PUTTERS], ct;
  putter_t p[PUTTERS];
  for (uint32_t i = 0; i < PUTTERS; i++) {
    p[i] = (putter_t){&sh, i};
    assert_int_equal(pthread_create(&pt[i], NULL, putter_main, &p[i]), 0);
  }
  assert_int_equal(pthread_create(&ct, NULL, consumer_main, &sh), 0);
  for (int i = 0; i < PUTTERS; i++)
    pthread_join(pt[i], NULL);
  pthread_join(ct, NULL);
  fe_t_assert_clean(&sh.errs);

  fe_dlq_stats_t s = stats(f.q);
  assert_int_equal(s.put, PUTTERS * PER_PUTTER);
  assert_int_equal(s.count, 0);
  assert_int_equal(s.put, s.count + s.redriven + s.purged);
  assert_int_equal(s.redriven, sh.republished);
  assert_int_equal(s.refused, 0);
  assert_int_equal(s.full_alerts, s.blocked);
  assert_int_equal((uint64_t)f.alerts.full, s.full_alerts);
  assert_int_equal((uint64_t)f.alerts.high, s.high_water_alerts);
  assert_true(s.redriven > 0);
  assert_true(s.purged > 0);
  assert_true(s.redrive_failed > 0);
  fe_dlq_destroy(f.q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_defaults),
      FE_T_TEST(test_round_trip),
      FE_T_TEST(test_ids_monotonic),
      FE_T_TEST(test_foreach_filters),
      FE_T_TEST(test_foreach_user_area),
      FE_T_TEST(test_count_reason),
      FE_T_TEST(test_reject_when_full),
      FE_T_TEST(test_high_water),
      FE_T_TEST(test_block_times_out),
      FE_T_TEST(test_block_freed_by_purge),
      FE_T_TEST(test_block_freed_by_redrive),
      FE_T_TEST(test_block_alert_makes_room),
      FE_T_TEST(test_redrive_success),
      FE_T_TEST(test_redrive_failure_keeps),
      FE_T_TEST(test_redrive_limit),
      FE_T_TEST(test_redrive_all),
      FE_T_TEST(test_redrive_purged_meanwhile),
      FE_T_TEST(test_purge),
      FE_T_TEST(test_invalid_configs),
      FE_T_TEST(test_bad_puts),
      FE_T_TEST(test_null_args),
      FE_T_TEST(test_threads_counts_add_up),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
