/*
 * The execution gateway stage: the host's venue call behind one named
 * circuit breaker per venue.  A sick venue opens its breaker; its orders
 * then fail fast with the distinct open reason (rejected, or dead-lettered
 * into the DLQ, per the stage's policy) without calling the venue, while
 * the other venues keep flowing; the breaker recovers through HALF_OPEN on
 * an injected clock.  Venue rejects count as healthy answers.  Host-driven
 * buses keep the single-threaded cases deterministic; a sharded case runs
 * two worker threads (TSan).
 */
#include "helpers.h"

#include "finevent/gateway.h"

static uint64_t fake_now;
static uint64_t fake_clock(void *user) {
  (void)user;
  return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

/* The test venue: per venue, what send answers, and the calls it got. */
typedef struct venue_sim {
  fe_verdict_t answer[2];
  uint64_t calls[2];
  uint64_t calls_seq[512]; /* calls per sequence */
} venue_sim_t;

static fe_verdict_t sim_send(fe_stage_ctx_t *ctx, fe_event_t *ev,
                             uint32_t venue, void *user) {
  venue_sim_t *s = user;
  __atomic_fetch_add(&s->calls[venue], 1, __ATOMIC_RELAXED);
  if (ev->seq < 512)
    __atomic_fetch_add(&s->calls_seq[ev->seq], 1, __ATOMIC_RELAXED);
  fe_verdict_t a = __atomic_load_n(&s->answer[venue], __ATOMIC_RELAXED);
  switch (a) {
  case FE_REJECT:
    return fe_reject(ctx, 17);
  case FE_RETRY:
    return fe_retry(ctx, 18);
  case FE_FAIL:
    ctx->text = "venue session down";
    return fe_fail(ctx, 19);
  default:
    return FE_CONTINUE;
  }
}

/* Venue = account parity. */
static uint32_t venue_of(const fe_event_t *ev, void *user) {
  (void)user;
  return (uint32_t)(ev->order.account & 1);
}

typedef struct transitions {
  int n;
  char name[16][FE_BREAKER_NAME_MAX];
  fe_breaker_state_t from[16], to[16];
} transitions_t;

static void on_state(const char *name, fe_breaker_state_t from,
                     fe_breaker_state_t to, void *user) {
  transitions_t *t = user;
  if (t->n < 16) {
    snprintf(t->name[t->n], FE_BREAKER_NAME_MAX, "%s", name);
    t->from[t->n] = from;
    t->to[t->n] = to;
  }
  t->n++;
}

/* A breaker that opens after 4 calls with >= 50 % failures, waits 1 s
 * open, and closes after 2 good trial calls. */
static fe_breaker_t *make_breaker(const char *name, transitions_t *t) {
  fe_breaker_config_t bc;
  fe_breaker_config_init(&bc);
  bc.name = name;
  bc.window_size = 4;
  bc.minimum_calls = 4;
  bc.failure_rate_threshold = 50;
  bc.wait_open_ns = FE_T_SEC;
  bc.permitted_calls_half_open = 2;
  bc.now_ns = fake_clock;
  bc.on_state = t != NULL ? on_state : NULL;
  bc.user = t;
  fe_breaker_t *b = NULL;
  fe_diag_t d;
  assert_fe(fe_breaker_create(&bc, &b, &d), 0);
  return b;
}

typedef struct fixture {
  venue_sim_t sim;
  transitions_t tr;
  fe_breaker_t *br[2];
  fe_gateway_t *gw;
  fe_bus_t *bus;
  fe_dlq_t *dlq;
} fixture_t;

static void setup(fixture_t *f, fe_gateway_open_t on_open, int with_dlq,
                  uint32_t max_attempts) {
  memset(f, 0, sizeof *f);
  fake_now = 1000 * FE_T_SEC;
  f->br[0] = make_breaker("XNAS", &f->tr);
  f->br[1] = make_breaker("XNYS", &f->tr);
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = sim_send;
  gc.user = &f->sim;
  gc.venue = venue_of;
  gc.n_venues = 2;
  gc.breakers[0] = f->br[0];
  gc.breakers[1] = f->br[1];
  gc.on_open = on_open;
  fe_diag_t d;
  assert_fe(fe_gateway_create(&gc, &f->gw, &d), 0);
  if (with_dlq) {
    fe_dlq_config_t qc;
    fe_dlq_config_init(&qc);
    qc.capacity = 1024;
    assert_fe(fe_dlq_create(&qc, &f->dlq, &d), 0);
  }
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "execution";
  st.handler = fe_gateway_stage;
  st.user = f->gw;
  st.retry.max_attempts = max_attempts;
  st.retry.jitter_milli = 0;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.host_driven = 1;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.dlq = f->dlq;
  cfg.now_ns = fake_clock;
  assert_fe(fe_bus_create(&cfg, &f->bus, &d), 0);
  assert_fe(fe_bus_start(f->bus, &d), 0);
}

static void teardown(fixture_t *f) {
  fe_bus_stop(f->bus);
  while (fe_bus_poll(f->bus, 0) != FE_ESTOPPED) {
  }
  fe_bus_destroy(f->bus);
  fe_gateway_destroy(f->gw);
  fe_breaker_destroy(f->br[0]);
  fe_breaker_destroy(f->br[1]);
  fe_dlq_destroy(f->dlq);
}

static void publish(fixture_t *f, uint64_t account) {
  fe_event_t *ev;
  assert_fe(fe_bus_try_claim(f->bus, &ev), 0);
  ev->type = FE_EV_NEW_ORDER;
  ev->order.account = account;
  ev->order.quantity = 1;
  assert_fe(fe_bus_publish(f->bus, ev), 0);
}

static void run(fixture_t *f) {
  while (fe_bus_poll(f->bus, 0) > 0) {
  }
}

static void send_n(fixture_t *f, uint64_t account, int n) {
  for (int i = 0; i < n; i++)
    publish(f, account);
  run(f);
}

static fe_gateway_stats_t gstats(fixture_t *f, uint32_t venue) {
  fe_gateway_stats_t s;
  assert_fe(fe_gateway_stats(f->gw, venue, &s), 0);
  return s;
}

static void assert_accounted(fixture_t *f) {
  fe_bus_stats_t s;
  fe_bus_stats(f->bus, &s);
  assert_int_equal(s.completed + s.rejected + s.dead_lettered, s.published);
}

static void test_healthy_venues_pass(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 1);
  send_n(&f, 0, 10);
  send_n(&f, 1, 6);
  assert_int_equal(f.sim.calls[0], 10);
  assert_int_equal(f.sim.calls[1], 6);
  fe_gateway_stats_t s0 = gstats(&f, 0);
  assert_int_equal(s0.sent, 10);
  assert_int_equal(s0.accepted, 10);
  assert_int_equal(s0.not_permitted + s0.errors + s0.rejected, 0);
  fe_bus_stats_t bs;
  fe_bus_stats(f.bus, &bs);
  assert_int_equal(bs.completed, 16);
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_CLOSED);
  assert_int_equal(f.tr.n, 0);
  teardown(&f);
}

/* Venue 0 fails: its breaker opens, its orders are rejected with the open
 * reason without a call; venue 1 keeps flowing. */
static void test_open_breaker_rejects_fast(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 1);
  f.sim.answer[0] = FE_FAIL;
  send_n(&f, 0, 4); /* 4 failures: the window judges and opens */
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_OPEN);
  assert_int_equal(f.tr.n, 1);
  assert_string_equal(f.tr.name[0], "XNAS");
  assert_int_equal(f.tr.from[0], FE_BREAKER_CLOSED);
  assert_int_equal(f.tr.to[0], FE_BREAKER_OPEN);

  send_n(&f, 0, 5);
  send_n(&f, 1, 5);
  assert_int_equal(f.sim.calls[0], 4); /* none of the 5 reached the venue */
  assert_int_equal(f.sim.calls[1], 5);
  fe_gateway_stats_t s0 = gstats(&f, 0), s1 = gstats(&f, 1);
  assert_int_equal(s0.sent, 4);
  assert_int_equal(s0.errors, 4);
  assert_int_equal(s0.not_permitted, 5);
  assert_int_equal(s1.accepted, 5);
  assert_int_equal(s1.not_permitted, 0);
  assert_int_equal(fe_bus_stage_rejects(f.bus, 0, FE_REASON_CIRCUIT_OPEN), 5);
  fe_bus_stats_t bs;
  fe_bus_stats(f.bus, &bs);
  assert_int_equal(bs.dead_lettered, 4); /* the 4 venue failures */
  assert_int_equal(bs.rejected, 5);
  assert_int_equal(bs.completed, 5);
  fe_breaker_metrics_t m;
  fe_breaker_metrics(f.br[0], &m);
  assert_int_equal(m.not_permitted_calls, 5);
  assert_accounted(&f);
  teardown(&f);
}

/* After wait_open the breaker lets trial calls through; good ones close
 * it again and orders flow. */
static void test_half_open_recovers(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 1);
  f.sim.answer[0] = FE_FAIL;
  send_n(&f, 0, 4);
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_OPEN);
  f.sim.answer[0] = FE_CONTINUE;
  fake_now += FE_T_SEC / 2;
  send_n(&f, 0, 1); /* still open */
  assert_int_equal(f.sim.calls[0], 4);
  fake_now += FE_T_SEC;
  send_n(&f, 0, 2); /* the 2 trial calls */
  assert_int_equal(f.sim.calls[0], 6);
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_CLOSED);
  send_n(&f, 0, 3);
  assert_int_equal(f.sim.calls[0], 9);
  assert_int_equal(f.tr.n, 3); /* CLOSED->OPEN->HALF_OPEN->CLOSED */
  assert_int_equal(f.tr.to[1], FE_BREAKER_HALF_OPEN);
  assert_int_equal(f.tr.to[2], FE_BREAKER_CLOSED);
  assert_accounted(&f);
  teardown(&f);
}

typedef struct dlq_seen {
  int n;
  uint32_t reason[64];
  char text[64][FE_DLQ_TEXT_MAX];
} dlq_seen_t;

static int visit(const fe_dlq_entry_t *e, void *user) {
  dlq_seen_t *s = user;
  if (s->n < 64) {
    s->reason[s->n] = e->reason;
    snprintf(s->text[s->n], FE_DLQ_TEXT_MAX, "%s", e->text);
  }
  s->n++;
  return 0;
}

/* With the dead-letter policy an open breaker sends the order to the DLQ,
 * with the open reason and the breaker's name. */
static void test_open_breaker_dead_letters(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_DEAD_LETTER, 1, 1);
  f.sim.answer[1] = FE_FAIL;
  send_n(&f, 1, 4);
  assert_int_equal(fe_breaker_state(f.br[1]), FE_BREAKER_OPEN);
  send_n(&f, 1, 3);
  assert_int_equal(f.sim.calls[1], 4);
  static dlq_seen_t seen;
  memset(&seen, 0, sizeof seen);
  assert_int_equal(fe_dlq_foreach(f.dlq, NULL, visit, &seen), 0);
  assert_int_equal(seen.n, 7);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(seen.reason[i], 19);
    assert_string_equal(seen.text[i], "venue session down");
  }
  for (int i = 4; i < 7; i++) {
    assert_int_equal(seen.reason[i], FE_REASON_CIRCUIT_OPEN);
    assert_string_equal(seen.text[i], "XNYS");
  }
  assert_int_equal(fe_dlq_count_reason(f.dlq, FE_REASON_CIRCUIT_OPEN), 3);
  fe_bus_stats_t bs;
  fe_bus_stats(f.bus, &bs);
  assert_int_equal(bs.dead_lettered, 7);
  assert_accounted(&f);
  teardown(&f);
}

/* A venue that answers with rejects is healthy: its breaker stays closed. */
static void test_venue_rejects_are_successes(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 1);
  f.sim.answer[0] = FE_REJECT;
  send_n(&f, 0, 20);
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_CLOSED);
  assert_int_equal(f.sim.calls[0], 20);
  fe_gateway_stats_t s0 = gstats(&f, 0);
  assert_int_equal(s0.rejected, 20);
  assert_int_equal(s0.errors, 0);
  assert_int_equal(fe_bus_stage_rejects(f.bus, 0, 17), 20);
  teardown(&f);
}

/* FE_RETRY is an error for the breaker and a retry for the bus; a retry
 * that finds the breaker open fails fast instead of calling the venue. */
static void test_retry_meets_open_breaker(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 10);
  f.sim.answer[0] = FE_RETRY;
  publish(&f, 0);
  /* Attempt k runs once the fake clock passes the backoff: advance it by
   * more than the largest delay each round. */
  for (int i = 0; i < 20; i++) {
    run(&f);
    fake_now += FE_T_SEC / 10;
  }
  run(&f);
  assert_int_equal(f.sim.calls_seq[0], 4); /* the 4th error opened it */
  fe_gateway_stats_t s0 = gstats(&f, 0);
  assert_int_equal(s0.errors, 4);
  assert_int_equal(s0.not_permitted, 1);
  fe_stage_stats_t ss;
  fe_bus_stage_stats(f.bus, 0, &ss);
  assert_int_equal(ss.retried, 4);
  assert_int_equal(ss.rejected, 1);
  assert_int_equal(fe_bus_stage_rejects(f.bus, 0, FE_REASON_CIRCUIT_OPEN), 1);
  assert_accounted(&f);
  teardown(&f);
}

/* Forced-open and disabled breakers, set by an operator, act at once. */
static void test_manual_states(void **state) {
  (void)state;
  fixture_t f;
  setup(&f, FE_GATEWAY_OPEN_REJECT, 0, 1);
  assert_int_equal(fe_breaker_force_open(f.br[0]), 0);
  send_n(&f, 0, 3);
  assert_int_equal(f.sim.calls[0], 0);
  assert_int_equal(gstats(&f, 0).not_permitted, 3);
  assert_int_equal(fe_breaker_disable(f.br[0]), 0);
  f.sim.answer[0] = FE_FAIL;
  send_n(&f, 0, 10); /* disabled: every call passes, nothing opens */
  assert_int_equal(f.sim.calls[0], 10);
  assert_int_equal(fe_breaker_state(f.br[0]), FE_BREAKER_DISABLED);
  teardown(&f);
}

static uint32_t bad_venue(const fe_event_t *ev, void *user) {
  (void)ev, (void)user;
  return 7;
}

/* An unguarded venue (NULL breaker) is called every time; a venue index
 * out of range dead-letters with the no-venue reason. */
static void test_unguarded_and_unknown_venue(void **state) {
  (void)state;
  venue_sim_t sim;
  memset(&sim, 0, sizeof sim);
  sim.answer[0] = FE_FAIL;
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = sim_send;
  gc.user = &sim;
  fe_gateway_t *gw = NULL;
  assert_fe(fe_gateway_create(&gc, &gw, NULL), 0);
  fe_stage_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  for (int i = 0; i < 50; i++)
    assert_int_equal(fe_gateway_stage(&ctx, &ev, gw), FE_FAIL);
  assert_int_equal(sim.calls[0], 50);
  fe_gateway_destroy(gw);

  gc.venue = bad_venue;
  assert_fe(fe_gateway_create(&gc, &gw, NULL), 0);
  ctx.text = NULL;
  assert_int_equal(fe_gateway_stage(&ctx, &ev, gw), FE_FAIL);
  assert_int_equal(ctx.reason, FE_REASON_NO_VENUE);
  assert_non_null(ctx.text);
  assert_int_equal(sim.calls[0], 50);
  fe_gateway_stats_t s;
  assert_int_equal(fe_gateway_stats(gw, 1, &s), FE_ERANGE);
  assert_int_equal(fe_gateway_stats(gw, 0, NULL), FE_EINVAL);
  assert_int_equal(fe_gateway_stats(NULL, 0, &s), FE_EINVAL);
  fe_gateway_destroy(gw);
  fe_gateway_destroy(NULL);
}

static void test_config_errors(void **state) {
  (void)state;
  fe_gateway_config_t gc;
  fe_gateway_t *gw = (fe_gateway_t *)0x1;
  fe_diag_t d;
  fe_gateway_config_init(&gc);
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_EINVAL); /* no send */
  assert_non_null(strstr(d.msg, "send"));
  gc.send = sim_send;
  assert_int_equal(fe_gateway_create(NULL, &gw, &d), FE_EINVAL);
  assert_int_equal(fe_gateway_create(&gc, NULL, &d), FE_EINVAL);
  gc.n_venues = 0;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "n_venues"));
  gc.n_venues = FE_GATEWAY_MAX_VENUES + 1;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_ERANGE);
  gc.n_venues = 1;
  gc.on_open = (fe_gateway_open_t)9;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "on_open"));
  gc.on_open = FE_GATEWAY_OPEN_DEAD_LETTER;
  gc.open_reason = 0;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "open_reason"));
  gc.open_reason = FE_REASON_MAX + 1;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_ERANGE);
  gc.open_reason = 5;
  gc.no_venue_reason = 0;
  assert_int_equal(fe_gateway_create(&gc, &gw, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "no_venue_reason"));
  assert_ptr_equal(gw, (fe_gateway_t *)0x1); /* untouched on failure */
}

/* Two worker threads run a 2-shard execution stage against two venues
 * while a third thread flaps venue 0 and its breaker: every event ends
 * exactly once and the gateway's counts agree with the venue's. */
typedef struct flapper {
  fixture_t *f;
  int stop;
} flapper_t;

static void *flap(void *arg) {
  flapper_t *fl = arg;
  uint64_t i = 0;
  while (!__atomic_load_n(&fl->stop, __ATOMIC_ACQUIRE)) {
    __atomic_store_n(&fl->f->sim.answer[0], (i & 1) ? FE_FAIL : FE_CONTINUE,
                     __ATOMIC_RELAXED);
    __atomic_fetch_add(&fake_now, FE_T_SEC / 4, __ATOMIC_RELAXED);
    if (i % 16 == 0)
      fe_breaker_reset(fl->f->br[0]);
    i++;
    fe_t_sleep_ns(50 * FE_T_US);
  }
  return NULL;
}

static void test_sharded_under_flapping(void **state) {
  (void)state;
  static fixture_t f;
  memset(&f, 0, sizeof f);
  fake_now = 1000 * FE_T_SEC;
  /* no state callback: it would record from two workers at once */
  f.br[0] = make_breaker("XNAS", NULL);
  f.br[1] = make_breaker("XNYS", NULL);
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = sim_send;
  gc.user = &f.sim;
  gc.venue = venue_of;
  gc.n_venues = 2;
  gc.breakers[0] = f.br[0];
  gc.breakers[1] = f.br[1];
  assert_fe(fe_gateway_create(&gc, &f.gw, NULL), 0);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "execution";
  st.handler = fe_gateway_stage;
  st.user = f.gw;
  st.shards = 2;
  st.retry.max_attempts = 1;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.wait = FE_WAIT_YIELD;
  fe_diag_t d;
  assert_fe(fe_bus_create(&cfg, &f.bus, &d), 0);
  assert_fe(fe_bus_start(f.bus, &d), 0);
  flapper_t fl = {.f = &f, .stop = 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, flap, &fl), 0);
  const uint64_t n = 20000;
  for (uint64_t i = 0; i < n; i++) {
    fe_event_t *ev;
    assert_fe(fe_bus_claim(f.bus, &ev, FE_T_LONG_NS), 0);
    ev->type = FE_EV_NEW_ORDER;
    ev->order.account = i % 64;
    ev->order.quantity = 1;
    fe_bus_publish(f.bus, ev);
  }
  assert_fe(fe_bus_drain(f.bus, FE_T_LONG_NS), 0);
  __atomic_store_n(&fl.stop, 1, __ATOMIC_RELEASE);
  pthread_join(th, NULL);
  fe_bus_stats_t bs;
  fe_bus_stats(f.bus, &bs);
  assert_int_equal(bs.published, n);
  assert_int_equal(bs.completed + bs.rejected + bs.dead_lettered, n);
  fe_gateway_stats_t s0 = gstats(&f, 0), s1 = gstats(&f, 1);
  assert_int_equal(s0.sent, f.sim.calls[0]);
  assert_int_equal(s1.sent, f.sim.calls[1]);
  assert_int_equal(s0.sent + s0.not_permitted, n / 2);
  assert_int_equal(s0.accepted + s0.errors, s0.sent);
  assert_int_equal(s1.accepted, n / 2);
  assert_int_equal(bs.rejected, s0.not_permitted);
  assert_int_equal(bs.dead_lettered, s0.errors);
  fe_bus_stop(f.bus);
  fe_bus_destroy(f.bus);
  fe_gateway_destroy(f.gw);
  fe_breaker_destroy(f.br[0]);
  fe_breaker_destroy(f.br[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_healthy_venues_pass),
      FE_T_TEST(test_open_breaker_rejects_fast),
      FE_T_TEST(test_half_open_recovers),
      FE_T_TEST(test_open_breaker_dead_letters),
      FE_T_TEST(test_venue_rejects_are_successes),
      FE_T_TEST(test_retry_meets_open_breaker),
      FE_T_TEST(test_manual_states),
      FE_T_TEST(test_unguarded_and_unknown_venue),
      FE_T_TEST(test_config_errors),
      FE_T_TEST(test_sharded_under_flapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
