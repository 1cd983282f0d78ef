/*
 * test_bus_lifecycle: create/start/drain/stop/destroy and their state
 * errors; drain timeouts; events published before start; destroy of a
 * running bus; no accepted event lost when stop races with producers;
 * counters at drain; CPU affinity.
 */
#include "helpers.h"

static fe_bus_t *pipeline(fe_t_track_t *t, uint32_t stages, uint32_t cap,
                          int host, fe_producer_t prod) {
  static const char *names[] = {"v", "c", "e", "s"};
  fe_t_def_t d;
  fe_t_def_init(&d, cap);
  d.cfg.host_driven = host;
  d.cfg.producer = prod;
  d.cfg.max_batch = 32 < cap ? 32 : cap;
  for (uint32_t i = 0; i < stages; i++) {
    uint32_t id = fe_t_track_stage(t, &d, names[i], host ? 0 : i);
    if (i > 0)
      fe_t_track_dep(t, &d, id, i - 1);
  }
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  return bus;
}

static void publish_n(fe_bus_t *bus, uint64_t n) {
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 17);
  assert_fe_ok(fe_t_publish_filled(bus, n, 16, &rng));
}

static void test_full_lifecycle(void **state) {
  (void)state;
  const uint64_t n = 10000;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_bus_t *bus = pipeline(t, 3, 256, 0, FE_PRODUCER_SINGLE);
  fe_diag_t diag, pristine;
  memset(&diag, 0x3c, sizeof diag);
  memset(&pristine, 0x3c, sizeof pristine);
  assert_fe_ok(fe_bus_start(bus, &diag));
  assert_memory_equal(&diag, &pristine, sizeof diag); /* untouched */
  publish_n(bus, n);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  /* drain returned: everything claimed before it has completed */
  for (uint32_t i = 0; i < 3; i++)
    assert_int_equal(fe_t_handled(t, i), n);
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, n);
  assert_int_equal(s.completed, n);
  assert_int_equal(s.rejected, 0);
  assert_fe_ok(fe_bus_drain(bus, 0)); /* idle: nothing to wait for */
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&t->errs);
  for (uint32_t i = 0; i < 3; i++)
    fe_t_assert_seen_all(t, i, 0);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_state_errors(void **state) {
  (void)state;
  assert_fe(fe_bus_start(NULL, NULL), FE_EINVAL);
  assert_fe(fe_bus_stop(NULL), FE_EINVAL);
  const int hosts[] = {0, 1};
  for (int h = 0; h < 2; h++) {
    fe_t_track_t *t = fe_t_track_new(4);
    fe_bus_t *bus = pipeline(t, 2, 8, hosts[h], FE_PRODUCER_SINGLE);
    assert_fe(fe_bus_drain(bus, 10 * FE_T_MS), FE_ESTATE); /* not started */
    fe_t_start(bus);
    fe_diag_t diag;
    memset(&diag, 0, sizeof diag);
    assert_fe(fe_bus_start(bus, &diag), FE_ESTATE);
    assert_fe(fe_bus_start(bus, NULL), FE_ESTATE);
    assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
    if (hosts[h])
      fe_t_host_finish(bus);
    else
      assert_fe_ok(fe_bus_stop(bus));
    assert_fe(fe_bus_stop(bus), FE_ESTATE);
    assert_fe(fe_bus_start(bus, NULL), FE_ESTATE);
    fe_bus_destroy(bus);
    fe_t_track_free(t);
  }
}

static void test_stop_never_started(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(4);
  fe_bus_t *bus = pipeline(t, 2, 8, 0, FE_PRODUCER_SINGLE);
  int threads = fe_t_thread_count();
  assert_fe_ok(fe_bus_stop(bus));
  assert_fe(fe_bus_stop(bus), FE_ESTATE);
  fe_event_t *ev = NULL;
  assert_fe(fe_bus_try_claim(bus, &ev), FE_ESTOPPED);
  assert_fe(fe_bus_start(bus, NULL), FE_ESTATE);
  assert_int_equal(fe_t_thread_count(), threads);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_destroy_created_bus_with_events(void **state) {
  (void)state;
  /* created, events published, never started: stop refuses (it would
   * strand them), start then stop processes them; destroy of such a bus
   * without start frees it all */
  fe_t_track_t *t = fe_t_track_new(10);
  fe_bus_t *bus = pipeline(t, 2, 16, 0, FE_PRODUCER_SINGLE);
  publish_n(bus, 10);
  assert_fe(fe_bus_stop(bus), FE_ESTATE);
  fe_t_start(bus);
  assert_fe_ok(fe_bus_stop(bus));
  assert_int_equal(fe_t_handled(t, 1), 10);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
  t = fe_t_track_new(10);
  bus = pipeline(t, 2, 16, 0, FE_PRODUCER_SINGLE);
  publish_n(bus, 10);
  fe_bus_destroy(bus);
  assert_int_equal(fe_t_handled(t, 0), 0);
  fe_t_track_free(t);
}

/* ---------------------------------------------------------------- drain */

typedef struct gate {
  fe_t_tstage_t *inner;
  atomic_int open;
} gate_t;

static fe_verdict_t gated_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                  void *user) {
  gate_t *g = user;
  while (!atomic_load_explicit(&g->open, memory_order_acquire))
    fe_t_sleep_ns(100 * FE_T_US);
  return fe_t_track_handler(ctx, ev, g->inner);
}

static void test_drain_timeout(void **state) {
  (void)state;
  /* host-driven, nobody polls */
  fe_t_track_t *t = fe_t_track_new(4);
  fe_bus_t *bus = pipeline(t, 1, 8, 1, FE_PRODUCER_SINGLE);
  fe_t_start(bus);
  assert_fe_ok(fe_bus_drain(bus, 10 * FE_T_MS)); /* nothing published */
  publish_n(bus, 1);
  uint64_t t0 = fe_t_now_ns();
  assert_fe(fe_bus_drain(bus, 50 * FE_T_MS), FE_ETIMEDOUT);
  uint64_t waited = fe_t_now_ns() - t0;
  if (waited < 45 * FE_T_MS || waited > 10 * FE_T_SEC)
    fail_msg("a 50 ms drain timeout took %.1f ms", (double)waited / 1e6);
  assert_fe(fe_bus_drain(bus, 0), FE_ETIMEDOUT);
  assert_int_equal(fe_bus_poll(bus, 0), 1);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  fe_t_host_finish(bus);
  fe_t_assert_clean(&t->errs);
  fe_bus_destroy(bus);
  fe_t_track_free(t);

  /* threaded, the stage is held up */
  t = fe_t_track_new(4);
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  fe_t_track_stage(t, &d, "held", 0);
  gate_t g;
  memset(&g, 0, sizeof g);
  g.inner = &t->st[0];
  d.st[0].handler = gated_handler;
  d.st[0].user = &g;
  bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  publish_n(bus, 2);
  assert_fe(fe_bus_drain(bus, 50 * FE_T_MS), FE_ETIMEDOUT);
  atomic_store_explicit(&g.open, 1, memory_order_release);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_int_equal(fe_t_handled(t, 0), 2);
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&t->errs);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_events_published_before_start(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(100);
  fe_bus_t *bus = pipeline(t, 3, 128, 0, FE_PRODUCER_SINGLE);
  int threads = fe_t_thread_count();
  publish_n(bus, 100);
  fe_t_sleep_ms(50);
  assert_int_equal(fe_t_handled(t, 0), 0);
  assert_int_equal(fe_t_thread_count(), threads); /* created: no threads */
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, 100);
  assert_int_equal(s.completed, 0);
  fe_t_start(bus);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&t->errs);
  for (uint32_t i = 0; i < 3; i++)
    fe_t_assert_seen_all(t, i, 0);
  assert_int_equal(fe_t_stats(bus).completed, 100);
  fe_bus_destroy(bus);
  assert_int_equal(fe_t_thread_count_settles(threads), threads);
  fe_t_track_free(t);
}

static void test_destroy_running_bus_loses_nothing(void **state) {
  (void)state;
  const uint64_t n = 5000;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_bus_t *bus = pipeline(t, 3, 256, 0, FE_PRODUCER_SINGLE);
  t->st[2].yield_every = 1; /* a slow sink: a backlog at destroy time */
  int threads = fe_t_thread_count();
  fe_t_start(bus);
  publish_n(bus, n);
  fe_bus_destroy(bus); /* no drain, no stop */
  /* the counters live outside the bus */
  fe_t_assert_clean(&t->errs);
  for (uint32_t i = 0; i < 3; i++) {
    if (fe_t_handled(t, i) != n)
      fail_msg("stage %u handled %" PRIu64 " of %" PRIu64 " events", i,
               fe_t_handled(t, i), n);
    fe_t_assert_seen_all(t, i, 0);
  }
  assert_int_equal(fe_t_thread_count_settles(threads), threads);
  fe_t_track_free(t);
}

/* ------------------------------------------------ stop racing producers */

#define RACE_PRODUCERS 2

typedef struct race_stage {
  fe_t_errs_t *errs;
  int64_t last[RACE_PRODUCERS];
  uint64_t count;
  uint64_t next_seq;
} race_stage_t;

typedef struct race_producer {
  fe_bus_t *bus;
  fe_t_errs_t *errs;
  uint32_t id;
  uint64_t ok;       /* events whose claim returned 0 (and were published) */
  int final_rc;
  atomic_int published; /* 1 once ok > 0: the main thread waits for it */
} race_producer_t;

static fe_verdict_t race_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                 void *user) {
  race_stage_t *s = user;
  uint64_t p = ev->order.account;
  if (ev->seq != s->next_seq)
    fe_t_errf(s->errs, "stage %u: seq %" PRIu64 " after %" PRIu64, ctx->stage,
              ev->seq, s->next_seq);
  s->next_seq = ev->seq + 1;
  if (p >= RACE_PRODUCERS) {
    fe_t_errf(s->errs, "stage %u: producer %" PRIu64, ctx->stage, p);
    return FE_CONTINUE;
  }
  if (ev->order.quantity != s->last[p] + 1)
    fe_t_errf(s->errs, "stage %u: producer %" PRIu64 " counter %" PRId64
              " after %" PRId64, ctx->stage, p, ev->order.quantity,
              s->last[p]);
  s->last[p] = ev->order.quantity;
  s->count++;
  return FE_CONTINUE;
}

static void *race_producer_main(void *arg) {
  race_producer_t *p = arg;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 100 + p->id);
  for (;;) {
    uint32_t mode = fe_t_rng_range(&rng, 0, 3);
    int rc;
    if (mode == 0) {
      uint32_t k = fe_t_rng_range(&rng, 1, 8);
      uint64_t first = 0;
      rc = (fe_t_rng_next(&rng) & 1)
               ? fe_bus_try_claim_n(p->bus, k, &first)
               : fe_bus_claim_n(p->bus, k, &first, 5 * FE_T_MS);
      if (rc == 0) {
        for (uint32_t i = 0; i < k; i++) {
          fe_event_t *ev = fe_bus_event_at(p->bus, first + i);
          ev->order.account = p->id;
          ev->order.quantity = (int64_t)(p->ok + 1 + i);
        }
        int prc = fe_bus_publish_n(p->bus, first, k);
        if (prc != 0)
          fe_t_errf(p->errs, "publish_n: %s", fe_err_name(prc));
        p->ok += k;
        atomic_store(&p->published, 1);
      }
    } else {
      fe_event_t *ev = NULL;
      rc = mode == 1 ? fe_bus_try_claim(p->bus, &ev)
                     : fe_bus_claim(p->bus, &ev, 5 * FE_T_MS);
      if (rc == 0) {
        ev->order.account = p->id;
        ev->order.quantity = (int64_t)(p->ok + 1);
        int prc = fe_bus_publish(p->bus, ev);
        if (prc != 0)
          fe_t_errf(p->errs, "publish: %s", fe_err_name(prc));
        p->ok++;
        atomic_store(&p->published, 1);
      }
    }
    if (rc == FE_ESTOPPED) {
      p->final_rc = rc;
      return NULL;
    }
    if (rc == FE_EFULL || rc == FE_ETIMEDOUT)
      sched_yield();
    else if (rc != 0) {
      fe_t_errf(p->errs, "producer %u: claim returned %s", p->id,
                fe_err_name(rc));
      p->final_rc = rc;
      return NULL;
    }
  }
}

static int all_published(race_producer_t *p, uint32_t producers) {
  for (uint32_t i = 0; i < producers; i++)
    if (!atomic_load(&p[i].published))
      return 0;
  return 1;
}

static void stop_race(fe_producer_t mode, uint32_t producers, uint32_t round) {
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  race_stage_t st[3];
  memset(st, 0, sizeof st);
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  d.cfg.producer = mode;
  d.cfg.max_batch = 16;
  static const char *names[] = {"a", "b", "c"};
  for (uint32_t i = 0; i < 3; i++) {
    st[i].errs = &errs;
    fe_t_add_stage(&d, names[i], race_handler, &st[i], i);
    if (i > 0)
      fe_t_add_dep(&d, i, i - 1);
  }
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  race_producer_t p[RACE_PRODUCERS];
  pthread_t th[RACE_PRODUCERS];
  memset(p, 0, sizeof p);
  for (uint32_t i = 0; i < producers; i++) {
    p[i].bus = bus;
    p[i].errs = &errs;
    p[i].id = i;
    assert_int_equal(pthread_create(&th[i], NULL, race_producer_main, &p[i]),
                     0);
  }
  /* Stop only once every producer has published (a loaded machine may not
   * schedule one for a long time); the sleep after that only varies how
   * much is in flight when stop comes. */
  int all = 0;
  FE_T_WAIT_UNTIL(all, all_published(p, producers), 10000);
  if (!all) {
    fe_bus_stop(bus);
    for (uint32_t i = 0; i < producers; i++)
      pthread_join(th[i], NULL);
    fail_msg("round %u: a producer published nothing in 10 s", round);
  }
  fe_t_sleep_ms(5 * (round % 4));
  assert_fe_ok(fe_bus_stop(bus));
  for (uint32_t i = 0; i < producers; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  fe_t_assert_clean(&errs);
  uint64_t total = 0;
  for (uint32_t i = 0; i < producers; i++) {
    assert_fe(p[i].final_rc, FE_ESTOPPED);
    total += p[i].ok;
  }
  assert_true(total > 0);
  for (uint32_t s = 0; s < 3; s++) {
    if (st[s].count != total)
      fail_msg("round %u: stage %u handled %" PRIu64 " of the %" PRIu64
               " events whose claim succeeded", round, s, st[s].count, total);
    for (uint32_t i = 0; i < producers; i++)
      assert_int_equal(st[s].last[i], p[i].ok);
  }
  fe_bus_stats_t bs = fe_t_stats(bus);
  assert_int_equal(bs.published, total);
  assert_int_equal(bs.completed, total);
  fe_event_t *ev = NULL;
  uint64_t first = 0;
  assert_fe(fe_bus_try_claim(bus, &ev), FE_ESTOPPED);
  assert_fe(fe_bus_claim_n(bus, 2, &first, FE_T_MS), FE_ESTOPPED);
  fe_bus_destroy(bus);
}

static void test_stop_loses_nothing_multi_producer(void **state) {
  (void)state;
  for (uint32_t round = 0; round < 8; round++)
    stop_race(FE_PRODUCER_MULTI, RACE_PRODUCERS, round);
}

static void test_stop_loses_nothing_single_producer(void **state) {
  (void)state;
  for (uint32_t round = 0; round < 8; round++)
    stop_race(FE_PRODUCER_SINGLE, 1, round);
}

/* A claim that succeeded before stop, published while stop runs: an
 * accepted event, so stop must not return (and the workers must not exit)
 * before it went through every stage. */
typedef struct stopper {
  fe_bus_t *bus;
  int rc;
  atomic_int returned;
} stopper_t;

static void *stopper_main(void *arg) {
  stopper_t *s = arg;
  s->rc = fe_bus_stop(s->bus);
  atomic_store(&s->returned, 1);
  return NULL;
}

static void test_stop_waits_for_a_claimed_event(void **state) {
  (void)state;
  const fe_producer_t modes[] = {FE_PRODUCER_SINGLE, FE_PRODUCER_MULTI};
  for (int m = 0; m < 2; m++) {
    fe_t_track_t *t = fe_t_track_new(8);
    fe_bus_t *bus = pipeline(t, 3, 8, 0, modes[m]);
    fe_t_start(bus);
    publish_n(bus, 2);
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    assert_int_equal(ev->seq, 2);
    stopper_t s;
    memset(&s, 0, sizeof s);
    s.bus = bus;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper_main, &s), 0);
    fe_t_sleep_ms(100);
    int early = atomic_load(&s.returned);
    fe_t_fill(ev);
    assert_fe_ok(fe_bus_publish(bus, ev));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_fe_ok(s.rc);
    fe_t_assert_clean(&t->errs);
    for (uint32_t i = 0; i < 3; i++)
      if (fe_t_handled(t, i) != 3)
        fail_msg("producer mode %d: stage %u handled %" PRIu64 " of 3 events"
                 " (stop %s before the claimed event was published)",
                 modes[m], i, fe_t_handled(t, i),
                 early ? "returned" : "had not returned");
    assert_int_equal(fe_t_stats(bus).completed, 3);
    fe_bus_destroy(bus);
    fe_t_track_free(t);
  }
}

static void test_counters_at_drain(void **state) {
  (void)state;
  const uint64_t n = 10000;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_t_def_t d;
  fe_t_def_init(&d, 128);
  d.cfg.max_batch = 16;
  uint32_t a = fe_t_track_stage(t, &d, "a", 0);
  uint32_t b = fe_t_track_stage(t, &d, "b", 1);
  fe_t_track_dep(t, &d, b, a);
  t->st[a].rejects = 1;
  t->st[a].reject_reason = 9;
  t->st[b].sees_all = 0;
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  for (int round = 0; round < 3; round++) {
    publish_n(bus, n / 4);
    assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
    fe_bus_stats_t s = fe_t_stats(bus);
    assert_int_equal(s.published, (uint64_t)(round + 1) * (n / 4));
    assert_int_equal(s.published, s.completed + s.rejected);
    assert_true(s.rejected > 0);
    assert_int_equal(s.rejected, atomic_load(&t->st[a].rejected));
  }
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&t->errs);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

/* ---------------------------------------------------------- CPU affinity */

typedef struct pin_check {
  int want;
  _Atomic uint64_t calls;
  _Atomic uint64_t wrong;
  atomic_int last_cpu;
} pin_check_t;

static fe_verdict_t pin_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                void *user) {
  pin_check_t *p = user;
  (void)ctx;
  (void)ev;
  int cpu = sched_getcpu();
  atomic_store(&p->last_cpu, cpu);
  atomic_fetch_add(&p->calls, 1);
  if (cpu != p->want)
    atomic_fetch_add(&p->wrong, 1);
  return FE_CONTINUE;
}

static void test_cpu_affinity_pins_workers(void **state) {
  (void)state;
  cpu_set_t set;
  CPU_ZERO(&set);
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  int cpus[2] = {-1, -1}, found = 0;
  for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
    if (CPU_ISSET(c, &set))
      cpus[found++] = c;
  assert_true(found >= 1);
  if (found == 1)
    cpus[1] = cpus[0];
  pin_check_t pc[2];
  memset(pc, 0, sizeof pc);
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  for (int i = 0; i < 2; i++) {
    pc[i].want = cpus[i];
    d.cfg.cpu[i] = cpus[i];
  }
  fe_t_add_stage(&d, "w0", pin_handler, &pc[0], 0);
  uint32_t s = fe_t_add_stage(&d, "w1", pin_handler, &pc[1], 1);
  fe_t_add_dep(&d, s, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  for (int round = 0; round < 20; round++) {
    publish_n(bus, 50);
    fe_t_sleep_ms(2); /* let the scheduler have chances to migrate them */
  }
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  for (int i = 0; i < 2; i++) {
    assert_int_equal(atomic_load(&pc[i].calls), 1000);
    if (atomic_load(&pc[i].wrong) != 0)
      fail_msg("worker %d pinned to CPU %d ran %" PRIu64 " events elsewhere "
               "(last on CPU %d)", i, pc[i].want, atomic_load(&pc[i].wrong),
               atomic_load(&pc[i].last_cpu));
  }
  fe_bus_destroy(bus);
}

/* cfg.cpu[worker] = cpu: either create refuses it (FE_ERANGE) or start
 * fails with FE_EAFFINITY, leaves no thread behind and the bus created. */
static void absurd_cpu(uint32_t bad_worker, int cpu) {
  fe_t_track_t *t = fe_t_track_new(4);
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  fe_t_track_stage(t, &d, "w0", 0);
  fe_t_track_stage(t, &d, "w1", 1);
  fe_t_track_dep(t, &d, 1, 0);
  d.cfg.cpu[bad_worker] = cpu;
  int threads = fe_t_thread_count();
  fe_bus_t *bus = NULL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_bus_create(&d.cfg, &bus, &diag);
  if (rc != 0) {
    if (rc != FE_ERANGE)
      fail_msg("cpu %d: create returned %s (%s)", cpu, fe_err_name(rc),
               diag.msg);
    print_message("  cpu[%u] = %d refused by create: %s\n", bad_worker, cpu,
                  diag.msg);
    assert_int_equal(diag.code, FE_ERANGE);
    assert_non_null(strstr(diag.msg, "cpu"));
    assert_null(bus);
    fe_t_track_free(t);
    return;
  }
  fe_t_track_bind(t, bus);
  rc = fe_bus_start(bus, &diag);
  print_message("  cpu[%u] = %d refused by start: %s\n", bad_worker, cpu,
                diag.msg);
  if (rc != FE_EAFFINITY)
    fail_msg("cpu %d: start returned %s, expected EAFFINITY", cpu,
             fe_err_name(rc));
  assert_int_equal(diag.code, FE_EAFFINITY);
  assert_true(diag.msg[0] != '\0');
  /* the threads that were started are stopped again */
  assert_int_equal(fe_t_thread_count_settles(threads), threads);
  /* and the bus is still in the created state */
  assert_fe(fe_bus_start(bus, NULL), FE_EAFFINITY);
  assert_int_equal(fe_t_thread_count_settles(threads), threads);
  fe_event_t *ev = NULL;
  assert_fe_ok(fe_bus_try_claim(bus, &ev));
  fe_t_fill(ev);
  assert_fe_ok(fe_bus_publish(bus, ev));
  assert_fe(fe_bus_drain(bus, FE_T_MS), FE_ESTATE);
  fe_bus_destroy(bus);
  assert_int_equal(fe_t_handled(t, 0), 0);
  fe_t_track_free(t);
}

static void test_cpu_affinity_absurd_cpu_fails(void **state) {
  (void)state;
  absurd_cpu(0, 1000);
  absurd_cpu(1, 1000); /* worker 0 may start before worker 1 fails */
  absurd_cpu(0, 100000);
  absurd_cpu(1, INT_MAX);
}

int main(void) {
  const struct CMUnitTest test_bus_lifecycle[] = {
      FE_T_TEST(test_full_lifecycle),
      FE_T_TEST(test_state_errors),
      FE_T_TEST(test_stop_never_started),
      FE_T_TEST(test_destroy_created_bus_with_events),
      FE_T_TEST(test_drain_timeout),
      FE_T_TEST(test_events_published_before_start),
      FE_T_TEST(test_destroy_running_bus_loses_nothing),
      FE_T_TEST(test_stop_loses_nothing_multi_producer),
      FE_T_TEST(test_stop_loses_nothing_single_producer),
      FE_T_TEST(test_stop_waits_for_a_claimed_event),
      FE_T_TEST(test_counters_at_drain),
      FE_T_TEST(test_cpu_affinity_pins_workers),
      FE_T_TEST(test_cpu_affinity_absurd_cpu_fails),
  };
  return cmocka_run_group_tests(test_bus_lifecycle, NULL, NULL);
}
