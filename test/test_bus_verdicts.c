/*
 * Verdicts beyond continue/reject, and event-type selection: FE_FAIL and
 * exhausted FE_RETRY dead-letter an event (hook, counters, skip downstream);
 * FE_RETRY pauses only the owning shard, for the policy's delay measured on
 * an injected clock, and keeps per-key order; stages handle only the event
 * types they select.  Host-driven buses keep the runs deterministic.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "finevent/finevent.h"

#define N 400

static uint64_t fake_now;
static uint64_t fake_clock(void *user) {
  (void)user;
  return fake_now;
}

typedef struct rec {
  uint64_t seen[N];    /* handler calls per sequence */
  uint32_t attempt[N]; /* last ctx->attempt per sequence */
  uint64_t order_errors, last_qty[64];
  int script;          /* what the handler does */
  int fail_on;         /* script 4: fail quantity 4 while set */
  uint64_t retry_seq;  /* script 2/3: the sequence that fails transiently */
  uint32_t retry_times;/* script 2: how many FE_RETRY before success */
} rec_t;

typedef struct dl_log {
  uint64_t n, seq[N];
  fe_dead_letter_t info[N];
} dl_log_t;

static void on_dead(const fe_event_t *ev, const fe_dead_letter_t *info,
                    void *user) {
  dl_log_t *l = user;
  if (l->n < N) {
    l->seq[l->n] = ev->seq;
    l->info[l->n] = *info;
  }
  l->n++;
}

static fe_verdict_t handler(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  rec_t *r = user;
  uint64_t s = ev->seq;
  if (s < N) {
    r->seen[s]++;
    r->attempt[s] = ctx->attempt;
  }
  /* per-account order: quantity grows per account */
  uint64_t a = ev->order.account % 64;
  if (ctx->attempt == 1) {
    if ((uint64_t)ev->order.quantity <= r->last_qty[a])
      r->order_errors++;
    r->last_qty[a] = (uint64_t)ev->order.quantity;
  }
  switch (r->script) {
  case 1: /* permanent failure of every 5th quantity */
    return ev->order.quantity % 5 == 0 ? fe_fail(ctx, 7) : FE_CONTINUE;
  case 2: /* transient failure of one event, retry_times times */
    return s == r->retry_seq && ctx->attempt <= r->retry_times
               ? fe_retry(ctx, 11) : FE_CONTINUE;
  case 3: /* always transient for one event */
    return s == r->retry_seq ? fe_retry(ctx, 12) : FE_CONTINUE;
  case 4: /* quantity 4 fails while fail_on, with a text */
    if (r->fail_on && ev->order.quantity == 4) {
      ctx->text = "venue down";
      return fe_fail(ctx, 9);
    }
    return FE_CONTINUE;
  default:
    return FE_CONTINUE;
  }
}

typedef struct bus_spec {
  fe_stage_def_t st[3];
  uint32_t n;
  dl_log_t *log;
} bus_spec_t;

static fe_bus_t *make(bus_spec_t *b) {
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.host_driven = 1;
  cfg.stages = b->st;
  cfg.n_stages = b->n;
  cfg.on_dead_letter = on_dead;
  cfg.dead_letter_user = b->log;
  cfg.now_ns = fake_clock;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), 0);
  assert_int_equal(fe_bus_start(bus, &d), 0);
  return bus;
}

static void stage(bus_spec_t *b, const char *name, rec_t *r, int dep) {
  fe_stage_def_t *s = &b->st[b->n];
  fe_stage_def_init(s);
  s->name = name;
  s->handler = handler;
  s->user = r;
  if (dep >= 0)
    s->n_deps = 1, s->deps[0] = (uint32_t)dep;
  b->n++;
}

/* Event i: account i % 8, quantity i + 1 (so it grows per account), type
 * from types[] cycling. */
static void publish(fe_bus_t *bus, uint32_t n, const uint32_t *types,
                    uint32_t n_types) {
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev;
    assert_int_equal(fe_bus_try_claim(bus, &ev), 0);
    ev->type = types ? types[i % n_types] : FE_EV_NEW_ORDER;
    ev->order.account = i % 8;
    ev->order.quantity = (int64_t)i + 1;
    assert_int_equal(fe_bus_publish(bus, ev), 0);
  }
}

static int poll_worker(fe_bus_t *bus, uint32_t w) {
  int total = 0, n;
  while ((n = fe_bus_poll(bus, w)) > 0)
    total += n;
  return total;
}

static void poll_all(fe_bus_t *bus) {
  for (int again = 1; again;) {
    again = 0;
    for (uint32_t w = 0; w < fe_bus_workers(bus); w++)
      again |= poll_worker(bus, w) > 0;
  }
}

static void assert_accounted(fe_bus_t *bus) {
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed + s.rejected + s.dead_lettered, s.published);
}

static void test_type_selection(void **state) {
  (void)state;
  static rec_t a, b;
  static dl_log_t log;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
  bus_spec_t spec = {.n = 0, .log = &log};
  stage(&spec, "orders", &a, -1);
  spec.st[0].n_types = 1, spec.st[0].types[0] = FE_EV_NEW_ORDER;
  stage(&spec, "others", &b, 0);
  spec.st[1].n_types = 2;
  spec.st[1].types[0] = FE_EV_CANCEL, spec.st[1].types[1] = FE_EV_USER + 7;
  fe_bus_t *bus = make(&spec);
  const uint32_t types[] = {FE_EV_NEW_ORDER, FE_EV_CANCEL, FE_EV_MARKET_DATA,
                            FE_EV_USER + 7};
  publish(bus, N, types, 4);
  poll_all(bus);
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(a.seen[i], i % 4 == 0);
    assert_int_equal(b.seen[i], i % 4 == 1 || i % 4 == 3);
  }
  fe_stage_stats_t sa, sb;
  fe_bus_stage_stats(bus, 0, &sa);
  fe_bus_stage_stats(bus, 1, &sb);
  assert_int_equal(sa.handled, N / 4);
  assert_int_equal(sa.filtered, 3 * N / 4);
  assert_int_equal(sb.handled, N / 2);
  assert_int_equal(sb.filtered, N / 2);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, N); /* unselected events still complete */
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

static void test_fail_dead_letters(void **state) {
  (void)state;
  static rec_t a, b;
  static dl_log_t log;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
  a.script = 1;
  bus_spec_t spec = {.n = 0, .log = &log};
  stage(&spec, "execution", &a, -1);
  stage(&spec, "settlement", &b, 0);
  fe_bus_t *bus = make(&spec);
  publish(bus, N, NULL, 0);
  poll_all(bus);
  uint64_t dead = 0;
  for (uint32_t i = 0; i < N; i++) {
    int fails = (i + 1) % 5 == 0;
    dead += (uint64_t)fails;
    assert_int_equal(a.seen[i], 1);
    assert_int_equal(b.seen[i], !fails);
    uint32_t st = 99, reason = 99;
    fe_event_t *ev = fe_bus_event_at(bus, i);
    assert_int_equal(fe_event_dead_lettered(ev, &st, &reason), fails);
    assert_int_equal(fe_event_rejected(ev, NULL, NULL), 0);
    if (fails)
      assert_true(st == 0 && reason == 7);
  }
  assert_int_equal(log.n, dead);
  for (uint64_t k = 0; k < log.n; k++) {
    assert_int_equal((log.seq[k] + 1) % 5, 0);
    assert_int_equal(log.info[k].stage, 0);
    assert_int_equal(log.info[k].reason, 7);
    assert_int_equal(log.info[k].attempts, 1);
    assert_int_equal(log.info[k].exhausted, 0);
  }
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.dead_lettered, dead);
  assert_int_equal(s.rejected, 0);
  fe_stage_stats_t sa, sb;
  fe_bus_stage_stats(bus, 0, &sa);
  fe_bus_stage_stats(bus, 1, &sb);
  assert_int_equal(sa.failed, dead);
  assert_int_equal(sb.skipped, dead);
  assert_accounted(bus);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

/* A transient failure pauses only the shard that owns the event: the other
 * shard keeps flowing, the paused one resumes after exactly the policy's
 * delays (fake clock), and per-account order holds throughout. */
static void test_retry_pauses_only_its_shard(void **state) {
  (void)state;
  static rec_t a, b;
  static dl_log_t log;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
  a.script = 2, a.retry_seq = 100, a.retry_times = 2;
  bus_spec_t spec = {.n = 0, .log = &log};
  stage(&spec, "execution", &a, -1);
  spec.st[0].shards = 2;
  spec.st[0].retry.initial_ns = 1000;
  spec.st[0].retry.coefficient_milli = 3000;
  spec.st[0].retry.jitter_milli = 0;
  stage(&spec, "settlement", &b, 0);
  spec.st[1].worker = 2;
  fake_now = 1000000;
  fe_bus_t *bus = make(&spec);
  publish(bus, N, NULL, 0);

  /* Poll both shards through: event 100 fails transiently. */
  poll_worker(bus, 0);
  poll_worker(bus, 1);
  fe_stage_stats_t st;
  fe_bus_stage_stats(bus, 0, &st);
  assert_int_equal(st.retried, 1);
  /* Every event not owned by the paused shard was handled; of the paused
   * shard's, none after 100. */
  uint64_t handled_after = 0, unhandled = 0;
  for (uint32_t i = 101; i < N; i++) {
    handled_after += a.seen[i];
    unhandled += a.seen[i] == 0;
  }
  assert_true(unhandled > 0);             /* the paused shard's later events */
  assert_true(handled_after > 0);         /* the other shard kept flowing */
  assert_int_equal(a.seen[100], 1);
  /* Not due yet: 999 ns later nothing moves. */
  fake_now += 999;
  poll_worker(bus, 0);
  poll_worker(bus, 1);
  assert_int_equal(a.seen[100], 1);
  /* Due at +1000: attempt 2, which retries again (delay 3000). */
  fake_now += 1;
  poll_worker(bus, 0);
  poll_worker(bus, 1);
  assert_int_equal(a.seen[100], 2);
  assert_int_equal(a.attempt[100], 2);
  fake_now += 2999;
  poll_worker(bus, 0);
  poll_worker(bus, 1);
  assert_int_equal(a.seen[100], 2);
  fake_now += 1;
  poll_all(bus);
  assert_int_equal(a.seen[100], 3);
  assert_int_equal(a.attempt[100], 3);
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(b.seen[i], 1);
    if (i != 100)
      assert_int_equal(a.seen[i], 1);
  }
  assert_int_equal(a.order_errors, 0);
  assert_int_equal(b.order_errors, 0);
  assert_int_equal(log.n, 0);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, N);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

static void test_retry_exhausted_and_non_retryable(void **state) {
  (void)state;
  for (int non_retryable = 0; non_retryable < 2; non_retryable++) {
    static rec_t a, b;
    static dl_log_t log;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
    a.script = 3, a.retry_seq = 10;
    bus_spec_t spec = {.n = 0, .log = &log};
    stage(&spec, "execution", &a, -1);
    spec.st[0].retry.initial_ns = 10;
    spec.st[0].retry.max_attempts = 3;
    if (non_retryable)
      fe_retry_policy_non_retryable(&spec.st[0].retry, 12);
    stage(&spec, "settlement", &b, 0);
    fake_now = 5000;
    fe_bus_t *bus = make(&spec);
    publish(bus, 50, NULL, 0);
    for (int step = 0; step < 10; step++) {
      poll_all(bus);
      fake_now += 1000;
    }
    uint32_t calls = non_retryable ? 1 : 3;
    assert_int_equal(a.seen[10], calls);
    assert_int_equal(b.seen[10], 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.seq[0], 10);
    assert_int_equal(log.info[0].attempts, calls);
    assert_int_equal(log.info[0].exhausted, 1);
    assert_int_equal(log.info[0].reason, 12);
    fe_stage_stats_t st;
    fe_bus_stage_stats(bus, 0, &st);
    assert_int_equal(st.retried, calls - 1);
    assert_int_equal(st.failed, 1);
    fe_bus_stats_t s;
    fe_bus_stats(bus, &s);
    assert_int_equal(s.dead_lettered, 1);
    assert_int_equal(s.completed, 49);
    assert_accounted(bus);
    fe_bus_stop(bus);
    fe_bus_destroy(bus);
  }
}

static void batch_failer(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                         uint32_t n, void *user) {
  (void)user;
  for (uint32_t i = 0; i < n; i++)
    if (evs[i]->order.quantity % 3 == 0)
      fe_batch_fail(ctx, evs[i], 4);
}

static void test_batch_fail(void **state) {
  (void)state;
  static rec_t b;
  static dl_log_t log;
  memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
  bus_spec_t spec = {.n = 0, .log = &log};
  fe_stage_def_init(&spec.st[0]);
  spec.st[0].name = "batch";
  spec.st[0].batch_handler = batch_failer;
  spec.n = 1;
  stage(&spec, "after", &b, 0);
  fe_bus_t *bus = make(&spec);
  publish(bus, 300, NULL, 0);
  poll_all(bus);
  assert_int_equal(log.n, 100);
  for (uint32_t i = 0; i < 300; i++)
    assert_int_equal(b.seen[i], (i + 1) % 3 != 0);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.dead_lettered, 100);
  assert_accounted(bus);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

/* PARK mode with the real clock: a worker sleeping while a retry is paused
 * wakes when it is due, not at the 100 ms safety timeout, and no wake-up
 * counts as lost. */
static void test_retry_wakes_parked_worker(void **state) {
  (void)state;
  static rec_t a;
  memset(&a, 0, sizeof a);
  a.script = 2, a.retry_seq = 5, a.retry_times = 5;
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "execution", st.handler = handler, st.user = &a;
  st.retry.initial_ns = 2000000; /* 2 ms, 4, 8, 16, 32: 62 ms in all */
  st.retry.jitter_milli = 0;
  st.retry.max_attempts = 10;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.max_batch = 16;
  cfg.wait = FE_WAIT_PARK;
  cfg.spin_tries = 10, cfg.yield_tries = 2;
  cfg.stages = &st, cfg.n_stages = 1;
  fe_bus_t *bus;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  publish(bus, 10, NULL, 0);
  assert_int_equal(fe_bus_drain(bus, 20ull * 1000000000u), 0);
  assert_int_equal(a.seen[5], 6);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, 10);
  assert_int_equal(s.lost_wakeups, 0);
  fe_bus_destroy(bus);
}

/* Dead letters land in the bus's DLQ with their metadata; fe_bus_redrive
 * re-publishes them carrying the redrive count, so the queue's limit holds
 * across repeated failures. */
static void test_dlq_and_redrive(void **state) {
  (void)state;
  static rec_t a, b;
  static dl_log_t log;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&log, 0, sizeof log);
  a.script = 4, a.fail_on = 1;
  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  qc.capacity = 16;
  qc.user_size = 64;
  qc.redrive_limit = 2;
  fe_dlq_t *q;
  assert_int_equal(fe_dlq_create(&qc, &q, NULL), 0);
  bus_spec_t spec = {.n = 0, .log = &log};
  stage(&spec, "execution", &a, -1);
  stage(&spec, "settlement", &b, 0);
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64, cfg.max_batch = 16, cfg.host_driven = 1;
  cfg.stages = spec.st, cfg.n_stages = spec.n;
  cfg.on_dead_letter = on_dead, cfg.dead_letter_user = &log;
  cfg.dlq = q;
  fe_bus_t *bus;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  for (uint32_t i = 0; i < 6; i++) {
    fe_event_t *ev;
    assert_int_equal(fe_bus_try_claim(bus, &ev), 0);
    ev->order.account = 1;
    ev->order.quantity = (int64_t)i + 1;
    ev->trace_id = 500 + i;
    snprintf(ev->order.client_order_id, FE_CLORDID_MAX, "C%u", i);
    memset(fe_event_user(ev), 0xA0 + (int)i, 64);
    fe_bus_publish(bus, ev);
  }
  poll_all(bus);
  /* 1. quantity 4 (sequence 3) is in the queue with its metadata */
  assert_int_equal(fe_dlq_count(q), 1);
  static fe_dlq_entry_t e;
  uint8_t ua[64];
  uint64_t id = 0;
  for (id = 1; id < 1000 && fe_dlq_get(q, id, &e, ua, sizeof ua) != 0; id++) {
  }
  assert_true(id < 1000);
  assert_int_equal(e.stage, 0);
  assert_int_equal(e.kind, FE_DLQ_FAIL);
  assert_int_equal(e.reason, 9);
  assert_string_equal(e.text, "venue down");
  assert_int_equal(e.key_len, 2);
  assert_memory_equal(e.key, "C3", 2);
  assert_int_equal(e.redrive_count, 0);
  assert_int_equal(e.event.order.quantity, 4);
  assert_int_equal(e.event.trace_id, 503);
  assert_int_equal(ua[0], 0xA3);
  assert_int_equal(ua[63], 0xA3);
  assert_int_equal(log.n, 1);
  assert_string_equal(log.info[0].text, "venue down");
  /* 2. redrive while the venue is still down: fails again, count 1 */
  assert_int_equal(fe_dlq_redrive(q, e.id, fe_bus_redrive, bus), 0);
  poll_all(bus);
  assert_int_equal(log.n, 2);
  assert_int_equal(log.info[1].redrives, 1);
  assert_int_equal(fe_dlq_count(q), 1);
  /* 3. venue back: the redrive goes through every stage, queue empties */
  a.fail_on = 0;
  assert_int_equal(fe_dlq_redrive_all(q, NULL, fe_bus_redrive, bus, NULL), 0);
  poll_all(bus);
  assert_int_equal(fe_dlq_count(q), 0);
  fe_event_t *last = fe_bus_event_at(bus, 7);
  assert_int_equal(last->order.quantity, 4);
  assert_int_equal(b.seen[7], 1);
  assert_int_equal(((uint8_t *)fe_event_user(last))[10], 0xA3);
  /* 4. the limit holds across failures: two redrives, then refused */
  a.fail_on = 1;
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = 2, o.quantity = 4;
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, 9, 0, NULL), 0);
  poll_all(bus);
  for (int k = 0; k < 2; k++) {
    assert_int_equal(fe_dlq_redrive_all(q, NULL, fe_bus_redrive, bus, NULL), 0);
    poll_all(bus);
  }
  uint64_t done = 0;
  assert_int_equal(fe_dlq_redrive_all(q, NULL, fe_bus_redrive, bus, &done),
                   FE_EREDRIVE);
  assert_int_equal(done, 0);
  assert_int_equal(fe_dlq_count(q), 1);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.published, 11); /* 6 + 2 redrives + 1 + 2 redrives */
  assert_int_equal(s.dead_lettered, 5);
  assert_accounted(bus);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_dlq_destroy(q);
}

static void test_invalid_config(void **state) {
  (void)state;
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "x", st.handler = handler;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.stages = &st, cfg.n_stages = 1;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  st.n_types = FE_STAGE_MAX_TYPES + 1;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "n_types"));
  st.n_types = 1, st.types[0] = 0;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "types[0]"));
  st.types[0] = FE_EV_CANCEL;
  st.retry.coefficient_milli = 10;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "\"x\""));
  assert_non_null(strstr(d.msg, "coefficient_milli"));
  assert_null(bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_type_selection),
      cmocka_unit_test(test_fail_dead_letters),
      cmocka_unit_test(test_retry_pauses_only_its_shard),
      cmocka_unit_test(test_retry_exhausted_and_non_retryable),
      cmocka_unit_test(test_batch_fail),
      cmocka_unit_test(test_retry_wakes_parked_worker),
      cmocka_unit_test(test_dlq_and_redrive),
      cmocka_unit_test(test_invalid_config),
  };
  return cmocka_run_group_tests_name("bus_verdicts", tests, NULL, NULL);
}
