/*
 * Batch handlers (fe_stage_batch_fn): delivery in order and in chunks,
 * end_of_batch, fe_batch_reject short-circuit and accounting, sharding,
 * configuration errors.  Host-driven buses keep every run deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "finevent/finevent.h"

#define N 5000

typedef struct rec {
  uint64_t calls, events, max_n, eob_calls, last_seq, order_errors;
  int have_last;
  uint64_t seen[N];      /* per sequence: how many times this stage saw it */
  uint32_t shard_of[N];  /* which shard saw it */
} rec_t;

static void record(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                   rec_t *r) {
  r->calls++;
  r->events += n;
  r->eob_calls += ctx->end_of_batch;
  if (n > r->max_n)
    r->max_n = n;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t s = evs[i]->seq;
    if (r->have_last && s <= r->last_seq)
      r->order_errors++;
    r->last_seq = s;
    r->have_last = 1;
    if (s < N) {
      r->seen[s]++;
      r->shard_of[s] = ctx->shard;
    }
  }
}

/* Rejects every event whose quantity is a multiple of 7 with reason 9. */
static void rejecter(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                     void *user) {
  record(ctx, evs, n, user);
  for (uint32_t i = 0; i < n; i++)
    if (evs[i]->order.quantity % 7 == 0)
      fe_batch_reject(ctx, evs[i], 9);
}

static void plain(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                  void *user) {
  record(ctx, evs, n, user);
}

static fe_verdict_t per_event(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  record(ctx, &ev, 1, user);
  return FE_CONTINUE;
}

static void publish(fe_bus_t *bus, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev;
    assert_int_equal(fe_bus_try_claim(bus, &ev), 0);
    ev->order.account = i % 64;
    ev->order.quantity = (int64_t)i + 1;
    assert_int_equal(fe_bus_publish(bus, ev), 0);
  }
}

static void poll_all(fe_bus_t *bus) {
  uint32_t w = fe_bus_workers(bus);
  for (int idle = 0; idle < 3;) {
    int got = 0;
    for (uint32_t i = 0; i < w; i++)
      got += fe_bus_poll(bus, i);
    idle = got ? 0 : idle + 1;
  }
}

static fe_bus_t *make(fe_stage_def_t *st, uint32_t n, uint32_t max_batch) {
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 8192;
  cfg.max_batch = max_batch;
  cfg.host_driven = 1;
  cfg.stages = st;
  cfg.n_stages = n;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), 0);
  assert_int_equal(fe_bus_start(bus, &d), 0);
  return bus;
}

/* Every event once, in order; chunks of at most FE_BATCH_CHUNK; exactly one
 * end_of_batch call per batch. */
static void test_delivery_and_chunks(void **state) {
  (void)state;
  static rec_t r;
  memset(&r, 0, sizeof r);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "batch";
  st.batch_handler = plain;
  st.user = &r;
  fe_bus_t *bus = make(&st, 1, 1000); /* batches above one chunk */
  publish(bus, N);
  poll_all(bus);
  assert_int_equal(r.events, N);
  assert_int_equal(r.order_errors, 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(r.seen[i], 1);
  assert_true(r.max_n <= FE_BATCH_CHUNK);
  assert_int_equal(r.max_n, FE_BATCH_CHUNK); /* 1000-event batches split */
  fe_stage_stats_t ss;
  assert_int_equal(fe_bus_stage_stats(bus, 0, &ss), 0);
  assert_int_equal(ss.handled, N);
  assert_int_equal(r.eob_calls, ss.batches); /* one flagged call per batch */
  assert_int_equal(ss.batches, (N + 999) / 1000);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, N);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

/* fe_batch_reject short-circuits: a per-event stage downstream never sees
 * the rejected events, and the counters add up. */
static void test_reject_short_circuits(void **state) {
  (void)state;
  static rec_t a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  fe_stage_def_t st[2];
  fe_stage_def_init(&st[0]);
  fe_stage_def_init(&st[1]);
  st[0].name = "screen", st[0].batch_handler = rejecter, st[0].user = &a;
  st[1].name = "after", st[1].handler = per_event, st[1].user = &b;
  st[1].n_deps = 1, st[1].deps[0] = 0;
  fe_bus_t *bus = make(st, 2, 256);
  publish(bus, N);
  poll_all(bus);
  uint64_t rejected = 0;
  for (int i = 0; i < N; i++) {
    int rej = (i + 1) % 7 == 0;
    rejected += (uint64_t)rej;
    assert_int_equal(a.seen[i], 1);
    assert_int_equal(b.seen[i], rej ? 0 : 1);
    uint32_t stage = 99, reason = 99;
    assert_int_equal(fe_event_rejected(fe_bus_event_at(bus, (uint64_t)i), &stage,
                                       &reason), rej);
    if (rej)
      assert_true(stage == 0 && reason == 9);
  }
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 9), rejected);
  fe_stage_stats_t s0, s1;
  fe_bus_stage_stats(bus, 0, &s0);
  fe_bus_stage_stats(bus, 1, &s1);
  assert_int_equal(s0.rejected, rejected);
  assert_int_equal(s1.skipped, rejected);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.rejected, rejected);
  assert_int_equal(s.completed + s.rejected, s.published);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

/* A rejecting batch stage that is also the sink counts its own rejects. */
static void test_batch_sink_outcomes(void **state) {
  (void)state;
  static rec_t a;
  memset(&a, 0, sizeof a);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "sink", st.batch_handler = rejecter, st.user = &a;
  fe_bus_t *bus = make(&st, 1, 64);
  publish(bus, 700);
  poll_all(bus);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.rejected, 100);
  assert_int_equal(s.completed, 600);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

/* Sharded batch stage: each event reaches exactly one shard, always the
 * same one for an account, in sequence order within the shard. */
static void test_sharded(void **state) {
  (void)state;
  static rec_t r;
  memset(&r, 0, sizeof r);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "sharded", st.batch_handler = plain, st.user = &r, st.shards = 3;
  fe_bus_t *bus = make(&st, 1, 256);
  publish(bus, N);
  /* Poll each worker on its own, so the records per shard do not mix. */
  for (uint32_t w = 0; w < 3; w++) {
    r.have_last = 0;
    while (fe_bus_poll(bus, w) > 0) {
    }
    assert_int_equal(r.order_errors, 0);
  }
  uint32_t shard_of_account[64];
  memset(shard_of_account, 0xff, sizeof shard_of_account);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r.seen[i], 1);
    uint32_t acc = (uint32_t)i % 64;
    if (shard_of_account[acc] == 0xffffffffu)
      shard_of_account[acc] = r.shard_of[i];
    assert_int_equal(r.shard_of[i], shard_of_account[acc]);
  }
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

static void test_config_errors(void **state) {
  (void)state;
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "both", st.handler = per_event, st.batch_handler = plain;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.stages = &st, cfg.n_stages = 1;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), FE_ENOHANDLER);
  assert_null(bus);
  assert_non_null(strstr(d.msg, "both"));
  st.handler = NULL, st.batch_handler = NULL;
  assert_int_equal(fe_bus_create(&cfg, &bus, &d), FE_ENOHANDLER);
  assert_null(bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delivery_and_chunks),
      cmocka_unit_test(test_reject_short_circuits),
      cmocka_unit_test(test_batch_sink_outcomes),
      cmocka_unit_test(test_sharded),
      cmocka_unit_test(test_config_errors),
  };
  return cmocka_run_group_tests_name("bus_batchfn", tests, NULL, NULL);
}
