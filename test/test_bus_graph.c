/*
 * test_bus_graph: stage graphs: a linear pipeline, multicast, a diamond,
 * producer gating on the last stages, several stages on one worker, and
 * per-event short-circuit (fe_reject) with its counters.
 *
 * Stages are fe_t_track_handler() (helpers.h): each checks the order and
 * payload of what it gets and that every listed upstream stage has already
 * handled it, and records what it saw.
 */
#include "helpers.h"

#define N_EVENTS 20000

/* Publishes n filled events from the main thread, stops the bus (joining
 * the workers) and checks the handlers' records are clean. */
static void run(fe_bus_t *bus, fe_t_track_t *t, uint64_t n,
                uint32_t max_chunk) {
  (void)t;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 42);
  assert_fe_ok(fe_t_publish_filled(bus, n, max_chunk, &rng));
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
}

static void finish(fe_bus_t *bus, fe_t_track_t *t) {
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&t->errs);
}

/* ------------------------------------------------------------- pipeline */

static void pipeline(int same_worker, fe_wait_t wait) {
  fe_t_track_t *t = fe_t_track_new(N_EVENTS);
  fe_t_def_t d;
  fe_t_def_init(&d, 256);
  d.cfg.max_batch = 32;
  d.cfg.wait = wait;
  uint32_t v = fe_t_track_stage(t, &d, "validation", 0);
  uint32_t c = fe_t_track_stage(t, &d, "compliance", same_worker ? 0 : 1);
  uint32_t e = fe_t_track_stage(t, &d, "execution", same_worker ? 0 : 2);
  uint32_t s = fe_t_track_stage(t, &d, "settlement", same_worker ? 0 : 3);
  fe_t_track_dep(t, &d, c, v);
  fe_t_track_dep(t, &d, e, c);
  fe_t_track_dep(t, &d, s, e);
  /* the sink checks every stage before it, not only its direct parent */
  t->st[s].up[t->st[s].n_up++] = v;
  t->st[s].up[t->st[s].n_up++] = c;
  t->st[e].up[t->st[e].n_up++] = v;
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  assert_int_equal(fe_bus_workers(bus), same_worker ? 1 : 4);
  fe_t_start(bus);
  run(bus, t, N_EVENTS, 16);
  fe_bus_stats_t st = fe_t_stats(bus);
  finish(bus, t);
  for (uint32_t i = 0; i < 4; i++) {
    assert_int_equal(fe_t_handled(t, i), N_EVENTS);
    fe_t_assert_seen_all(t, i, 0);
    fe_stage_stats_t ss = fe_t_stage_stats(bus, i);
    assert_int_equal(ss.handled, N_EVENTS);
    assert_int_equal(ss.rejected, 0);
    assert_int_equal(ss.skipped, 0);
    assert_true(ss.batches >= 1 && ss.batches <= N_EVENTS);
  }
  assert_int_equal(st.published, N_EVENTS);
  assert_int_equal(st.completed, N_EVENTS);
  assert_int_equal(st.rejected, 0);
  /* one thread per worker: same worker -> same thread */
  for (uint32_t i = 1; i < 4; i++) {
    int same = pthread_equal(t->st[0].thread, t->st[i].thread);
    if (same_worker ? !same : same)
      fail_msg("stage %u ran on %s thread as stage 0", i,
               same ? "the same" : "another");
  }
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_linear_pipeline(void **state) {
  (void)state;
  pipeline(0, FE_WAIT_PARK);
}

static void test_linear_pipeline_one_worker(void **state) {
  (void)state;
  pipeline(1, FE_WAIT_PARK);
}

/* ------------------------------------------------------------ multicast */

static void test_multicast(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(N_EVENTS);
  fe_t_def_t d;
  fe_t_def_init(&d, 128);
  d.cfg.max_batch = 16;
  uint32_t a = fe_t_track_stage(t, &d, "journal", 0);
  uint32_t b = fe_t_track_stage(t, &d, "validation", 1);
  t->st[b].yield_every = 7; /* let the two drift apart */
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  run(bus, t, N_EVENTS, 8);
  finish(bus, t);
  fe_t_assert_seen_all(t, a, 0);
  fe_t_assert_seen_all(t, b, 0);
  assert_int_equal(fe_t_stats(bus).completed, N_EVENTS);
  assert_false(pthread_equal(t->st[a].thread, t->st[b].thread));
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

/* -------------------------------------------------------------- diamond */

static void diamond(int one_worker) {
  fe_t_track_t *t = fe_t_track_new(N_EVENTS);
  fe_t_def_t d;
  fe_t_def_init(&d, 128);
  d.cfg.max_batch = 16;
  uint32_t A = fe_t_track_stage(t, &d, "A", 0);
  uint32_t B = fe_t_track_stage(t, &d, "B", one_worker ? 0 : 1);
  uint32_t C = fe_t_track_stage(t, &d, "C", one_worker ? 0 : 2);
  uint32_t D = fe_t_track_stage(t, &d, "D", one_worker ? 0 : 3);
  fe_t_track_dep(t, &d, B, A);
  fe_t_track_dep(t, &d, C, A);
  fe_t_track_dep(t, &d, D, B);
  fe_t_track_dep(t, &d, D, C);
  t->st[D].up[t->st[D].n_up++] = A;
  t->st[C].yield_every = 3; /* C lags B: D must wait for the slower one */
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  run(bus, t, N_EVENTS, 8);
  finish(bus, t);
  for (uint32_t i = 0; i < 4; i++)
    fe_t_assert_seen_all(t, i, 0);
  assert_int_equal(fe_t_stats(bus).completed, N_EVENTS);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_diamond(void **state) {
  (void)state;
  diamond(0);
}

static void test_diamond_one_worker(void **state) {
  (void)state;
  diamond(1);
}

/* ---------------------------------------------- producer gating (no lap) */

/* Slow last stage, tiny ring: the tracked handler re-checks the payload
 * after yielding, so a producer that reused its slot early is caught. */
static void test_producer_never_overwrites_unfinished_slot(void **state) {
  (void)state;
  for (int shape = 0; shape < 3; shape++) {
    fe_t_track_t *t = fe_t_track_new(N_EVENTS);
    fe_t_def_t d;
    fe_t_def_init(&d, shape == 2 ? 4 : 8);
    d.cfg.max_batch = 4;
    uint32_t slow;
    if (shape == 0) { /* pipeline: fast -> slow */
      uint32_t a = fe_t_track_stage(t, &d, "fast", 0);
      slow = fe_t_track_stage(t, &d, "slow", 1);
      fe_t_track_dep(t, &d, slow, a);
    } else { /* two last stages, one slow: gated on both */
      fe_t_track_stage(t, &d, "fast", 0);
      slow = fe_t_track_stage(t, &d, "slow", 1);
    }
    t->st[slow].yield_every = 1;
    fe_bus_t *bus = fe_t_create(&d);
    fe_t_track_bind(t, bus);
    fe_t_start(bus);
    run(bus, t, N_EVENTS, shape == 2 ? 4 : 1);
    finish(bus, t);
    fe_t_assert_seen_all(t, 0, 0);
    fe_t_assert_seen_all(t, 1, 0);
    fe_bus_destroy(bus);
    fe_t_track_free(t);
  }
}

/* A sink that dawdles with a real sleep now and then, so the producer
 * certainly runs into a full ring while the sink holds a slot. */
typedef struct sleepy {
  fe_t_errs_t errs;
  uint64_t next;
} sleepy_t;

static fe_verdict_t sleepy_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                   void *user) {
  sleepy_t *s = user;
  (void)ctx;
  uint64_t seq = ev->seq;
  uint64_t *u = fe_event_user(ev);
  if (seq != s->next || !fe_t_payload_ok(ev) || u[0] != ~seq)
    fe_t_errf(&s->errs, "sink: seq %" PRIu64 " (expected %" PRIu64 ") or its"
              " payload is wrong on entry", seq, s->next);
  if (seq % 64 == 0)
    fe_t_sleep_ns(200 * FE_T_US);
  else
    sched_yield();
  if (!fe_t_payload_ok(ev) || u[0] != ~seq || ev->seq != seq)
    fe_t_errf(&s->errs, "sink: slot of seq %" PRIu64 " overwritten while it "
              "was being handled", seq);
  s->next = seq + 1;
  return FE_CONTINUE;
}

static void test_slow_sink_with_real_sleeps(void **state) {
  (void)state;
  sleepy_t *s = calloc(1, sizeof *s);
  assert_non_null(s);
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  d.cfg.max_batch = 8;
  fe_t_add_stage(&d, "sink", sleepy_handler, s, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  const uint64_t n = 5000;
  for (uint64_t i = 0; i < n; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_t_claim(bus, &ev));
    fe_t_fill(ev);
    *(uint64_t *)fe_event_user(ev) = ~ev->seq;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&s->errs);
  assert_int_equal(s->next, n);
  fe_bus_destroy(bus);
  free(s);
}

/* -------------------------------------------------------- wide and long */

static void test_fan_in_of_max_deps(void **state) {
  (void)state;
  /* FE_BUS_MAX_DEPS parallel stages (two per worker) into one sink */
  static const char *names[] = {"p0", "p1", "p2", "p3", "p4",
                                "p5", "p6", "p7", "sink"};
  assert_int_equal(FE_BUS_MAX_DEPS, 8);
  fe_t_track_t *t = fe_t_track_new(N_EVENTS);
  fe_t_def_t d;
  fe_t_def_init(&d, 128);
  d.cfg.max_batch = 16;
  for (uint32_t i = 0; i < FE_BUS_MAX_DEPS; i++)
    fe_t_track_stage(t, &d, names[i], i / 2);
  uint32_t sink = fe_t_track_stage(t, &d, names[8], 0);
  for (uint32_t i = 0; i < FE_BUS_MAX_DEPS; i++)
    fe_t_track_dep(t, &d, sink, i);
  t->st[5].yield_every = 5;
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  assert_int_equal(fe_bus_workers(bus), 4);
  fe_t_start(bus);
  run(bus, t, N_EVENTS, 16);
  finish(bus, t);
  for (uint32_t i = 0; i <= FE_BUS_MAX_DEPS; i++)
    fe_t_assert_seen_all(t, i, 0);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

/* A chain of FE_BUS_MAX_STAGES stages on two workers; each stage expects
 * order.notional to equal its index and increments it. */
typedef struct chain {
  fe_t_errs_t errs;
  uint64_t handled[FE_BUS_MAX_STAGES];
} chain_t;

static fe_verdict_t chain_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                  void *user) {
  chain_t *c = user;
  if (ev->order.notional != (int64_t)ctx->stage)
    fe_t_errf(&c->errs, "stage %u got seq %" PRIu64 " with notional %" PRId64,
              ctx->stage, ev->seq, ev->order.notional);
  ev->order.notional = (int64_t)ctx->stage + 1;
  c->handled[ctx->stage]++;
  return FE_CONTINUE;
}

static void test_chain_of_max_stages(void **state) {
  (void)state;
  static char names[FE_BUS_MAX_STAGES][8];
  chain_t *c = calloc(1, sizeof *c);
  assert_non_null(c);
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  d.cfg.max_batch = 16;
  for (uint32_t i = 0; i < FE_BUS_MAX_STAGES; i++) {
    snprintf(names[i], sizeof names[i], "c%u", i);
    fe_t_add_stage(&d, names[i], chain_handler, c, i % 2);
    if (i > 0)
      fe_t_add_dep(&d, i, i - 1);
  }
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  const uint64_t n = 3000;
  for (uint64_t i = 0; i < n; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_t_claim(bus, &ev));
    ev->order.notional = 0;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&c->errs);
  for (uint32_t i = 0; i < FE_BUS_MAX_STAGES; i++)
    assert_int_equal(c->handled[i], n);
  assert_int_equal(fe_t_stats(bus).completed, n);
  fe_bus_destroy(bus);
  free(c);
}

/* ------------------------------------------------------- short-circuit */

/* v -> c(rejects, reason 7) -> e -> s, on `workers` workers. */
static void reject_pipeline(fe_t_track_t *t, fe_t_def_t *d, int one_worker,
                            uint32_t capacity) {
  fe_t_def_init(d, capacity);
  d->cfg.max_batch = 16;
  uint32_t v = fe_t_track_stage(t, d, "v", 0);
  uint32_t c = fe_t_track_stage(t, d, "c", one_worker ? 0 : 1);
  uint32_t e = fe_t_track_stage(t, d, "e", one_worker ? 0 : 1);
  uint32_t s = fe_t_track_stage(t, d, "s", one_worker ? 0 : 2);
  fe_t_track_dep(t, d, c, v);
  fe_t_track_dep(t, d, e, c);
  fe_t_track_dep(t, d, s, e);
  t->st[c].rejects = 1;
  t->st[c].reject_reason = 7;
  t->st[e].sees_all = 0;
  t->st[s].sees_all = 0;
}

/* Downstream checks that the tracker cannot do generically: the property
 * of every event e and s get, and fe_event_rejected() == 0 on them. */
typedef struct downstream_check {
  fe_t_tstage_t *inner;
  _Atomic uint64_t bad;
} downstream_check_t;

static fe_verdict_t downstream_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                       void *user) {
  downstream_check_t *dc = user;
  uint32_t st = 99, rs = 99;
  if (fe_t_reject_prop(ev) || fe_event_rejected(ev, &st, &rs) != 0) {
    atomic_fetch_add(&dc->bad, 1);
    fe_t_errf(&dc->inner->tr->errs, "stage %u got seq %" PRIu64 " that "
              "stage c rejected (rejected() says stage %u reason %u)",
              ctx->stage, ev->seq, st, rs);
  }
  return fe_t_track_handler(ctx, ev, dc->inner);
}

static void short_circuit(int one_worker) {
  const uint64_t n = N_EVENTS;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_t_def_t d;
  reject_pipeline(t, &d, one_worker, 64);
  downstream_check_t dc[2];
  memset(dc, 0, sizeof dc);
  for (int i = 0; i < 2; i++) {
    dc[i].inner = &t->st[2 + i];
    d.st[2 + i].handler = downstream_handler;
    d.st[2 + i].user = &dc[i];
  }
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  run(bus, t, n, 16);
  fe_bus_stats_t st = fe_t_stats(bus);
  finish(bus, t);

  uint64_t rejected = 0;
  for (uint64_t seq = 0; seq < n; seq++)
    rejected += (uint64_t)fe_t_reject_prop_seq(seq);
  assert_true(rejected > n / 20 && rejected < n / 5); /* the property bites */

  fe_t_assert_seen_all(t, 0, 0);
  fe_t_assert_seen_all(t, 1, 0);
  fe_t_assert_seen_all(t, 2, 1);
  fe_t_assert_seen_all(t, 3, 1);
  assert_int_equal(st.published, n);
  assert_int_equal(st.rejected, rejected);
  assert_int_equal(st.completed, n - rejected);
  assert_int_equal(st.completed + st.rejected, st.published);

  assert_int_equal(fe_bus_stage_rejects(bus, 1, 7), rejected);
  assert_int_equal(fe_bus_stage_rejects(bus, 1, 0), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 1, 8), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 7), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 3, 7), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 1, FE_REASON_MAX + 1), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 4, 7), 0);

  fe_stage_stats_t v = fe_t_stage_stats(bus, 0), c = fe_t_stage_stats(bus, 1),
                   e = fe_t_stage_stats(bus, 2), s = fe_t_stage_stats(bus, 3);
  assert_int_equal(v.handled, n);
  assert_int_equal(v.rejected, 0);
  assert_int_equal(v.skipped, 0);
  assert_int_equal(c.handled, n);
  assert_int_equal(c.rejected, rejected);
  assert_int_equal(c.skipped, 0);
  assert_int_equal(e.handled, n - rejected);
  assert_int_equal(e.skipped, rejected);
  assert_int_equal(e.rejected, 0);
  assert_int_equal(s.handled, n - rejected);
  assert_int_equal(s.skipped, rejected);
  assert_int_equal(atomic_load(&dc[0].bad) + atomic_load(&dc[1].bad), 0);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_reject_short_circuits_downstream(void **state) {
  (void)state;
  short_circuit(0);
}

static void test_reject_short_circuit_one_worker(void **state) {
  (void)state;
  short_circuit(1);
}

static void test_reject_verdict_readable_after_drain(void **state) {
  (void)state;
  /* "call it ... after drain": keep the claimed pointers (n < capacity, so
   * no slot is reused) and read each verdict once drained. */
  const uint64_t n = 200;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_t_def_t d;
  reject_pipeline(t, &d, 0, 256);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_event_t *evs[200];
  for (uint64_t i = 0; i < n; i++) {
    assert_fe_ok(fe_t_claim(bus, &evs[i]));
    fe_t_fill(evs[i]);
    assert_fe_ok(fe_bus_publish(bus, evs[i]));
  }
  fe_t_start(bus);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  uint64_t rejected = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t st = 99, rs = 99;
    int r = fe_event_rejected(evs[i], &st, &rs);
    if (fe_t_reject_prop_seq(i)) {
      rejected++;
      if (r != 1 || st != 1 || rs != 7)
        fail_msg("seq %" PRIu64 ": rejected() = %d stage %u reason %u, "
                 "expected 1, stage 1, reason 7", i, r, st, rs);
      assert_int_equal(fe_event_rejected(evs[i], NULL, NULL), 1);
    } else if (r != 0) {
      fail_msg("seq %" PRIu64 " was not rejected but rejected() = %d", i, r);
    }
  }
  assert_true(rejected > 0);
  finish(bus, t);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

/* A stage rejecting with a reason taken from the event (user area). */
typedef struct reasoner {
  _Atomic uint64_t calls;
} reasoner_t;

static fe_verdict_t reason_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                   void *user) {
  reasoner_t *r = user;
  atomic_fetch_add(&r->calls, 1);
  uint64_t reason = *(uint64_t *)fe_event_user(ev);
  if (reason == UINT64_MAX)
    return FE_CONTINUE;
  return fe_reject(ctx, (uint32_t)reason);
}

static void test_reject_reasons_out_of_range_count_as_zero(void **state) {
  (void)state;
  reasoner_t r;
  memset(&r, 0, sizeof r);
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  d.cfg.host_driven = 1;
  fe_t_add_stage(&d, "r", reason_handler, &r, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  const uint64_t reasons[] = {0,   1,          1,          255, 256,
                              1000, UINT32_MAX, UINT64_MAX, 42,  0};
  const size_t n = sizeof reasons / sizeof reasons[0];
  for (size_t i = 0; i < n; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    *(uint64_t *)fe_event_user(ev) = reasons[i];
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_int_equal(fe_t_poll_idle(bus, 0), n);
  assert_int_equal(atomic_load(&r.calls), n);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 0), 5); /* 0,256,1000,max,0 */
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 1), 2);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 255), 1);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 42), 1);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 2), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, 256), 0);
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.rejected, n - 1);
  assert_int_equal(s.completed, 1);
  assert_int_equal(fe_t_stage_stats(bus, 0).rejected, n - 1);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
}

static void test_reject_does_not_affect_siblings(void **state) {
  (void)state;
  /* A rejects; B is A's sibling; C after A; D after B; E after A and B. */
  const uint64_t n = N_EVENTS;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_t_def_t d;
  fe_t_def_init(&d, 128);
  d.cfg.max_batch = 16;
  uint32_t A = fe_t_track_stage(t, &d, "A", 0);
  uint32_t B = fe_t_track_stage(t, &d, "B", 1);
  uint32_t C = fe_t_track_stage(t, &d, "C", 0);
  uint32_t D = fe_t_track_stage(t, &d, "D", 1);
  uint32_t E = fe_t_track_stage(t, &d, "E", 2);
  fe_t_track_dep(t, &d, C, A);
  fe_t_track_dep(t, &d, D, B);
  fe_t_track_dep(t, &d, E, A);
  fe_t_track_dep(t, &d, E, B);
  t->st[A].rejects = 1;
  t->st[A].reject_reason = 3;
  t->st[C].sees_all = 0;
  t->st[E].sees_all = 0;
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  run(bus, t, n, 8);
  fe_bus_stats_t st = fe_t_stats(bus);
  finish(bus, t);
  uint64_t rejected = 0;
  for (uint64_t seq = 0; seq < n; seq++)
    rejected += (uint64_t)fe_t_reject_prop_seq(seq);
  fe_t_assert_seen_all(t, A, 0);
  fe_t_assert_seen_all(t, B, 0);
  fe_t_assert_seen_all(t, C, 1);
  fe_t_assert_seen_all(t, D, 0);
  fe_t_assert_seen_all(t, E, 1);
  assert_int_equal(fe_t_stage_stats(bus, B).handled, n);
  assert_int_equal(fe_t_stage_stats(bus, B).skipped, 0);
  assert_int_equal(fe_t_stage_stats(bus, D).handled, n);
  assert_int_equal(fe_t_stage_stats(bus, D).skipped, 0);
  assert_int_equal(fe_t_stage_stats(bus, C).skipped, rejected);
  assert_int_equal(fe_t_stage_stats(bus, E).skipped, rejected);
  assert_int_equal(fe_bus_stage_rejects(bus, A, 3), rejected);
  assert_int_equal(st.rejected, rejected);
  assert_int_equal(st.completed, n - rejected);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_both_siblings_reject_counts_once(void **state) {
  (void)state;
  /* "Every event ends exactly once": two parallel stages rejecting the
   * same event make one rejected event, not two. */
  const uint64_t n = 5000;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  d.cfg.max_batch = 8;
  uint32_t A = fe_t_track_stage(t, &d, "A", 0);
  uint32_t B = fe_t_track_stage(t, &d, "B", 1);
  uint32_t C = fe_t_track_stage(t, &d, "C", 0);
  fe_t_track_dep(t, &d, C, A);
  fe_t_track_dep(t, &d, C, B);
  t->st[A].rejects = 1;
  t->st[A].reject_reason = 1;
  t->st[B].rejects = 1;
  t->st[B].reject_reason = 2;
  t->st[C].sees_all = 0;
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  run(bus, t, n, 8);
  fe_bus_stats_t st = fe_t_stats(bus);
  finish(bus, t);
  uint64_t rejected = 0;
  for (uint64_t seq = 0; seq < n; seq++)
    rejected += (uint64_t)fe_t_reject_prop_seq(seq);
  fe_t_assert_seen_all(t, C, 1);
  assert_int_equal(st.rejected, rejected);
  assert_int_equal(st.completed, n - rejected);
  assert_int_equal(fe_t_stage_stats(bus, A).rejected, rejected);
  assert_int_equal(fe_t_stage_stats(bus, B).rejected, rejected);
  assert_int_equal(fe_t_stage_stats(bus, C).skipped, rejected);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

int main(void) {
  const struct CMUnitTest test_bus_graph[] = {
      FE_T_TEST(test_linear_pipeline),
      FE_T_TEST(test_linear_pipeline_one_worker),
      FE_T_TEST(test_multicast),
      FE_T_TEST(test_diamond),
      FE_T_TEST(test_diamond_one_worker),
      FE_T_TEST(test_producer_never_overwrites_unfinished_slot),
      FE_T_TEST(test_slow_sink_with_real_sleeps),
      FE_T_TEST(test_fan_in_of_max_deps),
      FE_T_TEST(test_chain_of_max_stages),
      FE_T_TEST(test_reject_short_circuits_downstream),
      FE_T_TEST(test_reject_short_circuit_one_worker),
      FE_T_TEST(test_reject_verdict_readable_after_drain),
      FE_T_TEST(test_reject_reasons_out_of_range_count_as_zero),
      FE_T_TEST(test_reject_does_not_affect_siblings),
      FE_T_TEST(test_both_siblings_reject_counts_once),
  };
  return cmocka_run_group_tests(test_bus_graph, NULL, NULL);
}
