/*
 * test_bus_publish: the producer side of the bus: single and batch claims,
 * backpressure (FE_EFULL, timeouts, waiting for space), argument checks,
 * multi-producer ordering, claims after stop, and slot geometry.
 */
#include "helpers.h"

/* ------------------------------------------------------------ recorder */

/* One stage that records, in call order, what it was handed. */
typedef struct rec {
  fe_t_errs_t errs;
  fe_bus_t *bus;
  uint64_t max;
  _Atomic uint64_t count;
  uint64_t *seqs;
  fe_event_t **ptrs;
  int64_t *qty;
  uint32_t *types;
  /* optional gate: the handler waits while it is 0 */
  int gated;
  atomic_int gate;
} rec_t;

static rec_t *rec_new(uint64_t max) {
  rec_t *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->max = max;
  r->seqs = calloc(max, sizeof *r->seqs);
  r->ptrs = calloc(max, sizeof *r->ptrs);
  r->qty = calloc(max, sizeof *r->qty);
  r->types = calloc(max, sizeof *r->types);
  assert_true(r->seqs && r->ptrs && r->qty && r->types);
  return r;
}

static void rec_free(rec_t *r) {
  free(r->seqs);
  free(r->ptrs);
  free(r->qty);
  free(r->types);
  free(r);
}

static uint64_t rec_count(rec_t *r) {
  return atomic_load_explicit(&r->count, memory_order_acquire);
}

static fe_verdict_t rec_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                void *user) {
  rec_t *r = user;
  if (ctx->bus != r->bus || ctx->stage != 0 || ctx->shard != 0 ||
      ctx->worker != 0)
    fe_t_errf(&r->errs, "bad ctx (stage %u shard %u worker %u)", ctx->stage,
              ctx->shard, ctx->worker);
  if (fe_bus_event_at(ctx->bus, ev->seq) != ev)
    fe_t_errf(&r->errs, "fe_bus_event_at(%" PRIu64 ") in the handler is not "
              "the handled event", ev->seq);
  while (r->gated && !atomic_load_explicit(&r->gate, memory_order_acquire))
    sched_yield();
  uint64_t i = atomic_load_explicit(&r->count, memory_order_relaxed);
  if (i < r->max) {
    r->seqs[i] = ev->seq;
    r->ptrs[i] = ev;
    r->qty[i] = ev->order.quantity;
    r->types[i] = ev->type;
  } else {
    fe_t_errf(&r->errs, "more events than the test published");
  }
  atomic_store_explicit(&r->count, i + 1, memory_order_release);
  return FE_CONTINUE;
}

/* One-stage bus around a recorder. */
static fe_bus_t *rec_bus(rec_t *r, uint32_t capacity, uint32_t max_batch,
                         int host, fe_producer_t prod, fe_wait_t wait) {
  fe_t_def_t d;
  fe_t_def_init(&d, capacity);
  d.cfg.max_batch = max_batch;
  d.cfg.host_driven = host;
  d.cfg.producer = prod;
  d.cfg.wait = wait;
  fe_t_add_stage(&d, "rec", rec_handler, r, 0);
  fe_bus_t *bus = fe_t_create(&d);
  r->bus = bus;
  return bus;
}

/* Claims and publishes one event with quantity qty; returns its seq. */
static uint64_t put(fe_bus_t *bus, int64_t qty) {
  fe_event_t *ev = NULL;
  assert_fe_ok(fe_bus_try_claim(bus, &ev));
  assert_non_null(ev);
  uint64_t seq = ev->seq;
  ev->order.quantity = qty;
  assert_fe_ok(fe_bus_publish(bus, ev));
  return seq;
}

/* --------------------------------------------------------- single claim */

static void test_claim_publish_single(void **state) {
  (void)state;
  rec_t *r = rec_new(16);
  fe_bus_t *bus = rec_bus(r, 16, 16, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);

  /* claims are allowed before start */
  fe_event_t *ev0 = NULL, *ev1 = NULL;
  assert_fe_ok(fe_bus_try_claim(bus, &ev0));
  assert_non_null(ev0);
  assert_int_equal(ev0->seq, 0);
  assert_int_equal(ev0->type, FE_EV_NEW_ORDER);
  assert_ptr_equal(fe_bus_event_at(bus, 0), ev0);
  assert_int_equal((uintptr_t)ev0 % 64, 0);
  ev0->order.quantity = 111;
  assert_fe_ok(fe_bus_publish(bus, ev0));

  assert_fe_ok(fe_bus_claim(bus, &ev1, FE_T_LONG_NS));
  assert_non_null(ev1);
  assert_int_equal(ev1->seq, 1);
  assert_int_equal(ev1->type, FE_EV_NEW_ORDER);
  assert_ptr_equal(fe_bus_event_at(bus, 1), ev1);
  assert_ptr_not_equal(ev0, ev1);
  ev1->order.quantity = 222;
  ev1->type = FE_EV_CANCEL;
  assert_fe_ok(fe_bus_publish(bus, ev1));

  assert_int_equal(fe_t_stats(bus).published, 2);
  assert_int_equal(rec_count(r), 0);

  fe_t_start(bus);
  assert_int_equal(fe_bus_poll(bus, 0), 2);
  assert_int_equal(rec_count(r), 2);
  assert_int_equal(r->seqs[0], 0);
  assert_int_equal(r->seqs[1], 1);
  assert_ptr_equal(r->ptrs[0], ev0);
  assert_ptr_equal(r->ptrs[1], ev1);
  assert_int_equal(r->qty[0], 111);
  assert_int_equal(r->qty[1], 222);
  assert_int_equal(r->types[0], FE_EV_NEW_ORDER);
  assert_int_equal(r->types[1], FE_EV_CANCEL);
  assert_int_equal(fe_bus_poll(bus, 0), 0);

  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, 2);
  assert_int_equal(s.completed, 2);
  assert_int_equal(s.rejected, 0);
  assert_int_equal(s.full, 0);

  fe_t_host_finish(bus);
  fe_t_assert_clean(&r->errs);
  fe_bus_destroy(bus);
  rec_free(r);
}

/* ---------------------------------------------------------- batch claim */

static void test_claim_n_publish_n(void **state) {
  (void)state;
  rec_t *r = rec_new(16);
  fe_bus_t *bus = rec_bus(r, 16, 16, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  fe_t_start(bus);

  uint64_t first = 99;
  assert_fe_ok(fe_bus_try_claim_n(bus, 5, &first));
  assert_int_equal(first, 0);
  fe_event_t *seen[5];
  for (uint32_t i = 0; i < 5; i++) {
    fe_event_t *ev = fe_bus_event_at(bus, first + i);
    assert_non_null(ev);
    assert_int_equal(ev->seq, first + i);
    assert_int_equal(ev->type, FE_EV_NEW_ORDER);
    for (uint32_t j = 0; j < i; j++)
      assert_ptr_not_equal(seen[j], ev);
    seen[i] = ev;
    ev->order.quantity = (int64_t)(1000 + i);
  }
  /* nothing is visible before publish_n */
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(rec_count(r), 0);
  assert_fe_ok(fe_bus_publish_n(bus, first, 5));

  assert_fe_ok(fe_bus_try_claim_n(bus, 3, &first));
  assert_int_equal(first, 5);
  for (uint32_t i = 0; i < 3; i++)
    fe_bus_event_at(bus, first + i)->order.quantity = (int64_t)(1005 + i);
  assert_fe_ok(fe_bus_publish_n(bus, first, 3));

  assert_fe_ok(fe_bus_claim_n(bus, 4, &first, FE_T_LONG_NS));
  assert_int_equal(first, 8);
  for (uint32_t i = 0; i < 4; i++)
    fe_bus_event_at(bus, first + i)->order.quantity = (int64_t)(1008 + i);
  assert_fe_ok(fe_bus_publish_n(bus, first, 4));

  assert_int_equal(fe_t_poll_idle(bus, 0), 12);
  assert_int_equal(rec_count(r), 12);
  for (uint64_t i = 0; i < 12; i++) {
    assert_int_equal(r->seqs[i], i);
    assert_int_equal(r->qty[i], (int64_t)(1000 + i));
  }
  for (uint32_t i = 0; i < 5; i++)
    assert_ptr_equal(r->ptrs[i], seen[i]);
  assert_int_equal(fe_t_stats(bus).published, 12);
  assert_int_equal(fe_t_stats(bus).completed, 12);

  fe_t_host_finish(bus);
  fe_t_assert_clean(&r->errs);
  fe_bus_destroy(bus);
  rec_free(r);
}

/* --------------------------------------------------------- backpressure */

static void test_full_backpressure(void **state) {
  (void)state;
  rec_t *r = rec_new(64);
  fe_bus_t *bus = rec_bus(r, 8, 4, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  fe_t_start(bus);

  for (int i = 0; i < 8; i++)
    assert_int_equal(put(bus, i), (uint64_t)i);
  fe_event_t *ev = NULL;
  assert_fe(fe_bus_try_claim(bus, &ev), FE_EFULL);
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.full, 1);
  assert_int_equal(s.published, 8);
  assert_fe(fe_bus_try_claim(bus, &ev), FE_EFULL);
  assert_int_equal(fe_t_stats(bus).full, 2);
  uint64_t first = 0;
  assert_fe(fe_bus_try_claim_n(bus, 1, &first), FE_EFULL);

  /* one batch of 4 frees exactly 4 slots */
  assert_int_equal(fe_bus_poll(bus, 0), 4);
  for (int i = 8; i < 12; i++)
    assert_int_equal(put(bus, i), (uint64_t)i); /* no sequence was lost */
  assert_fe(fe_bus_try_claim(bus, &ev), FE_EFULL);

  assert_int_equal(fe_t_poll_idle(bus, 0), 8);
  assert_int_equal(rec_count(r), 12);
  for (uint64_t i = 0; i < 12; i++) {
    assert_int_equal(r->seqs[i], i);
    assert_int_equal(r->qty[i], (int64_t)i);
  }
  /* a whole ring again */
  assert_fe_ok(fe_bus_try_claim_n(bus, 8, &first));
  assert_int_equal(first, 12);
  assert_fe_ok(fe_bus_publish_n(bus, first, 8));
  assert_int_equal(fe_t_poll_idle(bus, 0), 8);
  assert_int_equal(fe_t_stats(bus).published, 20);
  assert_int_equal(fe_t_stats(bus).completed, 20);

  fe_t_host_finish(bus);
  fe_t_assert_clean(&r->errs);
  fe_bus_destroy(bus);
  rec_free(r);
}

static void test_claim_n_all_or_nothing(void **state) {
  (void)state;
  const fe_producer_t modes[] = {FE_PRODUCER_SINGLE, FE_PRODUCER_MULTI};
  for (int m = 0; m < 2; m++) {
    rec_t *r = rec_new(16);
    fe_bus_t *bus = rec_bus(r, 8, 8, 1, modes[m], FE_WAIT_PARK);
    fe_t_start(bus);
    for (int i = 0; i < 5; i++)
      put(bus, i);
    uint64_t first = 77;
    assert_fe(fe_bus_try_claim_n(bus, 4, &first), FE_EFULL);
    assert_fe(fe_bus_claim_n(bus, 4, &first, 20 * FE_T_MS), FE_ETIMEDOUT);
    assert_fe_ok(fe_bus_try_claim_n(bus, 3, &first));
    assert_int_equal(first, 5);
    for (uint32_t i = 0; i < 3; i++)
      fe_bus_event_at(bus, first + i)->order.quantity = 5 + i;
    assert_fe_ok(fe_bus_publish_n(bus, first, 3));
    fe_event_t *ev = NULL;
    assert_fe(fe_bus_try_claim(bus, &ev), FE_EFULL);
    assert_int_equal(fe_t_poll_idle(bus, 0), 8);
    assert_int_equal(rec_count(r), 8);
    for (uint64_t i = 0; i < 8; i++) {
      assert_int_equal(r->seqs[i], i);
      assert_int_equal(r->qty[i], (int64_t)i);
    }
    assert_int_equal(fe_t_stats(bus).published, 8);
    fe_t_host_finish(bus);
    fe_t_assert_clean(&r->errs);
    fe_bus_destroy(bus);
    rec_free(r);
  }
}

static void test_invalid_arguments(void **state) {
  (void)state;
  rec_t *r = rec_new(16);
  fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  uint64_t first = 0;
  assert_fe(fe_bus_try_claim_n(bus, 0, &first), FE_EINVAL);
  assert_fe(fe_bus_try_claim_n(bus, 9, &first), FE_EINVAL);
  assert_fe(fe_bus_try_claim_n(bus, UINT32_MAX, &first), FE_EINVAL);
  assert_fe(fe_bus_claim_n(bus, 0, &first, FE_T_LONG_NS), FE_EINVAL);
  assert_fe(fe_bus_claim_n(bus, 9, &first, FE_T_LONG_NS), FE_EINVAL);
  assert_fe(fe_bus_publish(bus, NULL), FE_EINVAL);
  assert_fe(fe_bus_publish_n(bus, 0, 0), FE_EINVAL);
  /* none of that consumed a sequence */
  assert_int_equal(fe_t_stats(bus).published, 0);
  assert_fe_ok(fe_bus_try_claim_n(bus, 8, &first));
  assert_int_equal(first, 0);
  assert_fe_ok(fe_bus_publish_n(bus, first, 8));
  assert_fe(fe_bus_try_claim_n(bus, 1, &first), FE_EFULL);
  assert_int_equal(fe_t_stats(bus).published, 8);
  fe_bus_destroy(bus); /* never started */
  fe_t_assert_clean(&r->errs);
  rec_free(r);
}

/* ------------------------------------------------- blocking claim waits */

static void test_claim_times_out_on_full_ring(void **state) {
  (void)state;
  const fe_wait_t waits[] = {FE_WAIT_SPIN, FE_WAIT_YIELD, FE_WAIT_PARK};
  for (int w = 0; w < 3; w++) {
    rec_t *r = rec_new(16);
    fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_SINGLE, waits[w]);
    fe_t_start(bus);
    for (int i = 0; i < 8; i++)
      put(bus, i);
    fe_event_t *ev = NULL;
    uint64_t t0 = fe_t_now_ns();
    assert_fe(fe_bus_claim(bus, &ev, 50 * FE_T_MS), FE_ETIMEDOUT);
    uint64_t waited = fe_t_now_ns() - t0;
    if (waited < 45 * FE_T_MS || waited > 10 * FE_T_SEC)
      fail_msg("wait %d: a 50 ms claim timeout took %" PRIu64 " us", waits[w],
               waited / FE_T_US);
    uint64_t first = 0;
    t0 = fe_t_now_ns();
    assert_fe(fe_bus_claim_n(bus, 1, &first, 30 * FE_T_MS), FE_ETIMEDOUT);
    assert_true(fe_t_now_ns() - t0 >= 25 * FE_T_MS);
    /* zero timeout: "still full" is ETIMEDOUT, not EFULL */
    assert_fe(fe_bus_claim(bus, &ev, 0), FE_ETIMEDOUT);
    /* nothing changed */
    assert_int_equal(fe_t_stats(bus).published, 8);
    assert_int_equal(fe_t_poll_idle(bus, 0), 8);
    assert_fe_ok(fe_bus_claim(bus, &ev, 50 * FE_T_MS));
    assert_int_equal(ev->seq, 8);
    assert_fe_ok(fe_bus_publish(bus, ev));
    assert_int_equal(fe_t_poll_idle(bus, 0), 1);
    assert_int_equal(rec_count(r), 9);
    fe_t_host_finish(bus);
    fe_t_assert_clean(&r->errs);
    fe_bus_destroy(bus);
    rec_free(r);
  }
}

/* A host thread that frees the ring after a delay. */
typedef struct freer {
  fe_bus_t *bus;
  rec_t *rec; /* if set: open its gate instead of polling */
  atomic_int freed;
  int rc;
} freer_t;

static void *freer_main(void *arg) {
  freer_t *f = arg;
  fe_t_sleep_ms(100);
  atomic_store_explicit(&f->freed, 1, memory_order_seq_cst);
  if (f->rec) {
    atomic_store_explicit(&f->rec->gate, 1, memory_order_release);
    f->rc = 0;
  } else {
    f->rc = fe_bus_poll(f->bus, 0);
  }
  return NULL;
}

static void test_claim_waits_for_space_host(void **state) {
  (void)state;
  const fe_wait_t waits[] = {FE_WAIT_YIELD, FE_WAIT_PARK};
  for (int w = 0; w < 2; w++) {
    for (int batch = 0; batch < 2; batch++) {
      rec_t *r = rec_new(16);
      fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_SINGLE, waits[w]);
      fe_t_start(bus);
      for (int i = 0; i < 8; i++)
        put(bus, i);
      freer_t f;
      memset(&f, 0, sizeof f);
      f.bus = bus;
      pthread_t th;
      assert_int_equal(pthread_create(&th, NULL, freer_main, &f), 0);
      uint64_t seq = 0;
      int rc;
      if (batch) {
        rc = fe_bus_claim_n(bus, 3, &seq, FE_T_LONG_NS);
      } else {
        fe_event_t *ev = NULL;
        rc = fe_bus_claim(bus, &ev, FE_T_LONG_NS);
        seq = rc == 0 ? ev->seq : 0;
      }
      /* the claim cannot have succeeded before the ring was freed */
      int freed = atomic_load(&f.freed);
      assert_int_equal(pthread_join(th, NULL), 0);
      assert_fe_ok(rc);
      if (!freed)
        fail_msg("wait %d: claim succeeded on a full ring", waits[w]);
      assert_int_equal(f.rc, 8);
      assert_int_equal(seq, 8);
      assert_fe_ok(fe_bus_publish_n(bus, seq, batch ? 3 : 1));
      assert_int_equal(fe_t_poll_idle(bus, 0), batch ? 3 : 1);
      fe_bus_stats_t s = fe_t_stats(bus);
      assert_int_equal(s.lost_wakeups, 0);
      assert_int_equal(s.completed, batch ? 11 : 9);
      fe_t_host_finish(bus);
      fe_t_assert_clean(&r->errs);
      fe_bus_destroy(bus);
      rec_free(r);
    }
  }
}

static void test_claim_waits_for_space_threaded(void **state) {
  (void)state;
  const fe_wait_t waits[] = {FE_WAIT_YIELD, FE_WAIT_PARK};
  for (int w = 0; w < 2; w++) {
    rec_t *r = rec_new(64);
    r->gated = 1; /* the handler holds the first event until the gate opens */
    fe_bus_t *bus = rec_bus(r, 8, 8, 0, FE_PRODUCER_SINGLE, waits[w]);
    fe_t_start(bus);
    for (int i = 0; i < 8; i++)
      put(bus, i);
    fe_event_t *ev = NULL;
    assert_fe(fe_bus_try_claim(bus, &ev), FE_EFULL);
    assert_fe(fe_bus_claim(bus, &ev, 30 * FE_T_MS), FE_ETIMEDOUT);

    freer_t f;
    memset(&f, 0, sizeof f);
    f.bus = bus;
    f.rec = r;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, freer_main, &f), 0);
    int rc = fe_bus_claim(bus, &ev, FE_T_LONG_NS);
    int freed = atomic_load(&f.freed);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_fe_ok(rc);
    if (!freed)
      fail_msg("wait %d: claim succeeded on a full ring", waits[w]);
    assert_int_equal(ev->seq, 8);
    ev->order.quantity = 8;
    assert_fe_ok(fe_bus_publish(bus, ev));
    assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
    assert_fe_ok(fe_bus_stop(bus));
    assert_int_equal(rec_count(r), 9);
    for (uint64_t i = 0; i < 9; i++)
      assert_int_equal(r->qty[i], (int64_t)i);
    assert_int_equal(fe_t_stats(bus).lost_wakeups, 0);
    fe_t_assert_clean(&r->errs);
    fe_bus_destroy(bus);
    rec_free(r);
  }
}

/* ------------------------------------------------------ multi-producer */

#define MP_PRODUCERS 4
#define MP_PER_PRODUCER 25000

typedef struct mp_stage {
  fe_t_errs_t *errs;
  uint64_t next_seq;
  int64_t last[MP_PRODUCERS];
  uint64_t *owner; /* owner[seq] = p * MP_PER_PRODUCER + counter */
  uint64_t count;
} mp_stage_t;

typedef struct mp_producer {
  fe_bus_t *bus;
  fe_t_errs_t *errs;
  uint32_t id;
  uint64_t *seqs; /* seqs[i]: sequence of the event with counter i + 1 */
} mp_producer_t;

static fe_verdict_t mp_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  mp_stage_t *s = user;
  (void)ctx;
  uint64_t seq = ev->seq;
  if (seq != s->next_seq)
    fe_t_errf(s->errs, "stage %u: seq %" PRIu64 " after %" PRIu64, ctx->stage,
              seq, s->next_seq);
  s->next_seq = seq + 1;
  uint64_t p = ev->order.account;
  if (p >= MP_PRODUCERS) {
    fe_t_errf(s->errs, "seq %" PRIu64 ": bad producer %" PRIu64, seq, p);
    return FE_CONTINUE;
  }
  if (ev->order.quantity != s->last[p] + 1)
    fe_t_errf(s->errs, "stage %u: producer %" PRIu64 ": counter %" PRId64
              " after %" PRId64, ctx->stage, p, ev->order.quantity, s->last[p]);
  s->last[p] = ev->order.quantity;
  if (seq < (uint64_t)MP_PRODUCERS * MP_PER_PRODUCER)
    s->owner[seq] = p * MP_PER_PRODUCER + (uint64_t)ev->order.quantity;
  s->count++;
  return FE_CONTINUE;
}

static void mp_fill(mp_producer_t *p, fe_event_t *ev, uint64_t counter) {
  ev->order.account = p->id;
  ev->order.quantity = (int64_t)counter;
  p->seqs[counter - 1] = ev->seq;
  if (counter > 1 && p->seqs[counter - 2] >= ev->seq)
    fe_t_errf(p->errs, "producer %u: seq %" PRIu64 " after %" PRIu64, p->id,
              ev->seq, p->seqs[counter - 2]);
}

static void *mp_producer_main(void *arg) {
  mp_producer_t *p = arg;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 1000 + p->id);
  uint64_t counter = 1;
  int rc = 0;
  while (counter <= MP_PER_PRODUCER) {
    uint32_t mode = fe_t_rng_range(&rng, 0, 2);
    if (mode == 2) {
      uint32_t k = fe_t_rng_range(&rng, 1, 8);
      if (k > MP_PER_PRODUCER - counter + 1)
        k = (uint32_t)(MP_PER_PRODUCER - counter + 1);
      uint64_t first = 0;
      rc = fe_bus_claim_n(p->bus, k, &first, FE_T_LONG_NS);
      if (rc != 0)
        goto fail;
      for (uint32_t i = 0; i < k; i++)
        mp_fill(p, fe_bus_event_at(p->bus, first + i), counter + i);
      rc = fe_bus_publish_n(p->bus, first, k);
      if (rc != 0)
        goto fail;
      counter += k;
      continue;
    }
    fe_event_t *ev = NULL;
    if (mode == 1) {
      rc = fe_bus_claim(p->bus, &ev, FE_T_LONG_NS);
    } else {
      uint64_t spins = 0;
      while ((rc = fe_bus_try_claim(p->bus, &ev)) == FE_EFULL &&
             ++spins < 100000000)
        sched_yield();
    }
    if (rc != 0)
      goto fail;
    mp_fill(p, ev, counter);
    rc = fe_bus_publish(p->bus, ev);
    if (rc != 0)
      goto fail;
    counter++;
  }
  return NULL;
fail:
  fe_t_errf(p->errs, "producer %u: claim/publish failed at counter %" PRIu64
            ": %s", p->id, counter, fe_err_name(rc));
  return NULL;
}

static void test_multi_producer_total_order(void **state) {
  (void)state;
  const uint64_t total = (uint64_t)MP_PRODUCERS * MP_PER_PRODUCER;
  fe_t_errs_t *errs = calloc(1, sizeof *errs);
  mp_stage_t *st = calloc(2, sizeof *st);
  mp_producer_t *pr = calloc(MP_PRODUCERS, sizeof *pr);
  assert_true(errs && st && pr);
  for (int i = 0; i < 2; i++) {
    st[i].errs = errs;
    st[i].owner = calloc(total, sizeof(uint64_t));
    assert_non_null(st[i].owner);
  }
  fe_t_def_t d;
  fe_t_def_init(&d, 256);
  d.cfg.producer = FE_PRODUCER_MULTI;
  d.cfg.max_batch = 32;
  fe_t_add_stage(&d, "first", mp_handler, &st[0], 0);
  uint32_t b = fe_t_add_stage(&d, "second", mp_handler, &st[1], 1);
  fe_t_add_dep(&d, b, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);

  pthread_t th[MP_PRODUCERS];
  for (uint32_t i = 0; i < MP_PRODUCERS; i++) {
    pr[i].bus = bus;
    pr[i].errs = errs;
    pr[i].id = i;
    pr[i].seqs = calloc(MP_PER_PRODUCER, sizeof(uint64_t));
    assert_non_null(pr[i].seqs);
    assert_int_equal(pthread_create(&th[i], NULL, mp_producer_main, &pr[i]), 0);
  }
  for (uint32_t i = 0; i < MP_PRODUCERS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(errs);

  assert_int_equal(s.published, total);
  assert_int_equal(s.completed, total);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(st[i].count, total);
    assert_int_equal(st[i].next_seq, total);
    for (uint32_t p = 0; p < MP_PRODUCERS; p++)
      assert_int_equal(st[i].last[p], MP_PER_PRODUCER);
    /* the sequence each producer got for counter c holds exactly (p, c) */
    for (uint32_t p = 0; p < MP_PRODUCERS; p++)
      for (uint64_t c = 1; c <= MP_PER_PRODUCER; c++) {
        uint64_t seq = pr[p].seqs[c - 1];
        assert_true(seq < total);
        if (st[i].owner[seq] != p * MP_PER_PRODUCER + c)
          fail_msg("stage %d: seq %" PRIu64 " claimed by producer %u for "
                   "counter %" PRIu64 " was handled as %" PRIu64, i, seq, p, c,
                   st[i].owner[seq]);
      }
  }
  fe_bus_destroy(bus);
  for (uint32_t i = 0; i < MP_PRODUCERS; i++)
    free(pr[i].seqs);
  for (int i = 0; i < 2; i++)
    free(st[i].owner);
  free(pr);
  free(st);
  free(errs);
}

static void test_multi_publish_out_of_order(void **state) {
  (void)state;
  /* Multi-producer: "events become visible in sequence order, so an event
   * waits for earlier claims to be published". */
  rec_t *r = rec_new(16);
  fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_MULTI, FE_WAIT_PARK);
  fe_t_start(bus);
  fe_event_t *a = NULL, *b = NULL, *c = NULL;
  assert_fe_ok(fe_bus_try_claim(bus, &a));
  assert_fe_ok(fe_bus_try_claim(bus, &b));
  assert_int_equal(a->seq, 0);
  assert_int_equal(b->seq, 1);
  a->order.quantity = 10;
  b->order.quantity = 11;
  assert_fe_ok(fe_bus_publish(bus, b));
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(rec_count(r), 0);
  assert_fe_ok(fe_bus_publish(bus, a));
  assert_int_equal(fe_t_poll_idle(bus, 0), 2);
  assert_int_equal(rec_count(r), 2);

  uint64_t first = 0;
  assert_fe_ok(fe_bus_try_claim_n(bus, 2, &first));
  assert_int_equal(first, 2);
  assert_fe_ok(fe_bus_try_claim(bus, &c));
  assert_int_equal(c->seq, 4);
  fe_bus_event_at(bus, 2)->order.quantity = 12;
  fe_bus_event_at(bus, 3)->order.quantity = 13;
  c->order.quantity = 14;
  assert_fe_ok(fe_bus_publish(bus, c));
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_fe_ok(fe_bus_publish_n(bus, first, 2));
  assert_int_equal(fe_t_poll_idle(bus, 0), 3);
  assert_int_equal(rec_count(r), 5);
  for (uint64_t i = 0; i < 5; i++) {
    assert_int_equal(r->seqs[i], i);
    assert_int_equal(r->qty[i], (int64_t)(10 + i));
  }
  fe_t_host_finish(bus);
  fe_t_assert_clean(&r->errs);
  fe_bus_destroy(bus);
  rec_free(r);
}

/* ------------------------------------------------------------ stopping */

static void expect_claims_stopped(fe_bus_t *bus) {
  fe_event_t *ev = NULL;
  uint64_t first = 0;
  assert_fe(fe_bus_try_claim(bus, &ev), FE_ESTOPPED);
  assert_fe(fe_bus_claim(bus, &ev, 10 * FE_T_MS), FE_ESTOPPED);
  assert_fe(fe_bus_claim(bus, &ev, FE_T_LONG_NS), FE_ESTOPPED);
  assert_fe(fe_bus_try_claim_n(bus, 1, &first), FE_ESTOPPED);
  assert_fe(fe_bus_claim_n(bus, 2, &first, 10 * FE_T_MS), FE_ESTOPPED);
}

static void test_claims_after_stop(void **state) {
  (void)state;
  const fe_producer_t modes[] = {FE_PRODUCER_SINGLE, FE_PRODUCER_MULTI};
  for (int m = 0; m < 2; m++) {
    rec_t *r = rec_new(64);
    fe_bus_t *bus = rec_bus(r, 64, 8, 0, modes[m], FE_WAIT_PARK);
    fe_t_start(bus);
    for (int i = 0; i < 10; i++)
      put(bus, i);
    assert_fe_ok(fe_bus_stop(bus));
    /* stop finished everything published before it */
    assert_int_equal(rec_count(r), 10);
    expect_claims_stopped(bus);
    fe_bus_stats_t s = fe_t_stats(bus);
    assert_int_equal(s.published, 10);
    assert_int_equal(s.completed, 10);
    fe_t_assert_clean(&r->errs);
    fe_bus_destroy(bus);
    rec_free(r);
  }
  /* never started */
  rec_t *r = rec_new(4);
  fe_bus_t *bus = rec_bus(r, 8, 8, 0, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  assert_fe_ok(fe_bus_stop(bus));
  expect_claims_stopped(bus);
  fe_bus_destroy(bus);
  rec_free(r);
}

typedef struct blocked_claimer {
  fe_bus_t *bus;
  int rc;
  uint64_t waited_ns;
  atomic_int started; /* about to claim */
} blocked_claimer_t;

static void *blocked_claimer_main(void *arg) {
  blocked_claimer_t *b = arg;
  fe_event_t *ev = NULL;
  atomic_store(&b->started, 1);
  uint64_t t0 = fe_t_now_ns();
  b->rc = fe_bus_claim(b->bus, &ev, FE_T_LONG_NS);
  b->waited_ns = fe_t_now_ns() - t0;
  return NULL;
}

static void test_stop_releases_a_blocked_claim(void **state) {
  (void)state;
  /* A claim waiting on a full ring when fe_bus_stop() is called can no
   * longer succeed (nobody polls): it must fail with FE_ESTOPPED rather
   * than wait out its timeout (see the report). */
  const fe_wait_t waits[] = {FE_WAIT_YIELD, FE_WAIT_PARK};
  for (int w = 0; w < 2; w++) {
    rec_t *r = rec_new(16);
    fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_SINGLE, waits[w]);
    fe_t_start(bus);
    for (int i = 0; i < 8; i++)
      put(bus, i);
    blocked_claimer_t b;
    memset(&b, 0, sizeof b);
    b.bus = bus;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_claimer_main, &b), 0);
    int ok;
    FE_T_WAIT_UNTIL(ok, atomic_load(&b.started), FE_T_LONG_MS);
    assert_true(ok);
    fe_t_sleep_ms(100); /* paces: the claim is most likely blocked by now */
    assert_fe_ok(fe_bus_stop(bus));
    assert_int_equal(pthread_join(th, NULL), 0);
    if (b.rc != FE_ESTOPPED)
      fail_msg("wait %d: blocked claim returned %s after %" PRIu64 " ms",
               waits[w], fe_err_name(b.rc), b.waited_ns / FE_T_MS);
    /* the events published before stop still complete */
    uint64_t n = 0;
    int rc;
    while ((rc = fe_bus_poll(bus, 0)) > 0)
      n += (uint64_t)rc;
    assert_fe(rc, FE_ESTOPPED);
    assert_int_equal(n, 8);
    assert_int_equal(rec_count(r), 8);
    fe_t_assert_clean(&r->errs);
    fe_bus_destroy(bus);
    rec_free(r);
  }
}

/* -------------------------------------------------------- slot geometry */

static void test_slots_aligned_disjoint_and_reused(void **state) {
  (void)state;
  rec_t *r = rec_new(24);
  fe_bus_t *bus = rec_bus(r, 8, 8, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  uint32_t usz = fe_bus_user_size(bus);
  assert_true(usz > 0);
  fe_event_t *slot[8];
  for (uint64_t i = 0; i < 8; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    assert_int_equal(ev->seq, i);
    assert_ptr_equal(fe_bus_event_at(bus, i), ev);
    if ((uintptr_t)ev % 64 != 0)
      fail_msg("slot %" PRIu64 " at %p is not cache-line aligned", i,
               (void *)ev);
    assert_ptr_equal(fe_event_user(ev), (void *)(ev + 1));
    /* "zeroed only at create": a fresh ring has zero user areas */
    unsigned char *u = fe_event_user(ev);
    for (uint32_t k = 0; k < usz; k++)
      if (u[k] != 0)
        fail_msg("slot %" PRIu64 ": user byte %u is %u on a fresh bus", i, k,
                 u[k]);
    memset(u, (int)(0x10 + i), usz);
    ev->order.quantity = (int64_t)i;
    ev->type = FE_EV_USER + (uint32_t)i;
    slot[i] = ev;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  /* whole slots are disjoint: every pattern survived its neighbours */
  for (uint64_t i = 0; i < 8; i++) {
    unsigned char *u = fe_event_user(slot[i]);
    for (uint32_t k = 0; k < usz; k++)
      if (u[k] != 0x10 + i)
        fail_msg("slot %" PRIu64 ": user byte %u overwritten", i, k);
    assert_int_equal(slot[i]->order.quantity, (int64_t)i);
    assert_int_equal(slot[i]->seq, i);
  }
  fe_t_start(bus);
  assert_int_equal(fe_t_poll_idle(bus, 0), 8);
  assert_int_equal(rec_count(r), 8);
  /* the ring wraps onto the same slots; the header is reset by the claim,
   * the payload and user area keep what the previous event left */
  for (uint64_t i = 8; i < 16; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    assert_int_equal(ev->seq, i);
    assert_ptr_equal(ev, slot[i - 8]);
    assert_ptr_equal(fe_bus_event_at(bus, i), ev);
    assert_int_equal(ev->type, FE_EV_NEW_ORDER);
    assert_int_equal(ev->order.quantity, (int64_t)(i - 8));
    unsigned char *u = fe_event_user(ev);
    assert_int_equal(u[0], 0x10 + (i - 8));
    assert_int_equal(u[usz - 1], 0x10 + (i - 8));
    ev->order.quantity = (int64_t)i;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_int_equal(fe_t_poll_idle(bus, 0), 8);
  assert_int_equal(rec_count(r), 16);
  /* a batch claim resets the type of every reused slot as well */
  for (uint64_t i = 0; i < 8; i++)
    slot[i]->type = FE_EV_USER + 1;
  uint64_t first = 0;
  assert_fe_ok(fe_bus_try_claim_n(bus, 8, &first));
  assert_int_equal(first, 16);
  for (uint64_t i = 0; i < 8; i++) {
    fe_event_t *ev = fe_bus_event_at(bus, first + i);
    assert_ptr_equal(ev, slot[i]);
    assert_int_equal(ev->seq, first + i);
    assert_int_equal(ev->type, FE_EV_NEW_ORDER);
  }
  assert_fe_ok(fe_bus_publish_n(bus, first, 8));
  assert_int_equal(fe_t_poll_idle(bus, 0), 8);
  for (uint64_t i = 0; i < 16; i++) {
    assert_int_equal(r->seqs[i], i);
    assert_int_equal(r->qty[i], (int64_t)i);
    assert_ptr_equal(r->ptrs[i], slot[i % 8]);
  }
  fe_t_host_finish(bus);
  fe_t_assert_clean(&r->errs);
  fe_bus_destroy(bus);
  rec_free(r);
}

static void test_user_area_16_byte_aligned(void **state) {
  (void)state;
  /* event.h: "[the user area] is 16-byte aligned". */
  rec_t *r = rec_new(4);
  fe_bus_t *bus = rec_bus(r, 4, 4, 1, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
  for (int i = 0; i < 4; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    void *u = fe_event_user(ev);
    if ((uintptr_t)u % 16 != 0)
      fail_msg("user area of seq %" PRIu64 " at %p is not 16-byte aligned "
               "(sizeof(fe_event_t) = %zu)", ev->seq, u, sizeof(fe_event_t));
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  fe_bus_destroy(bus);
  rec_free(r);
}


/* ---------------------------------------------- submitted user areas */

static fe_verdict_t noop_stage(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  return FE_CONTINUE;
}

/* Whether the user area of the event at seq holds `len` bytes of `byte`
 * and zeros after them. */
static int user_area_is(fe_bus_t *bus, uint64_t seq, uint8_t byte,
                        uint32_t len) {
  const uint8_t *u = fe_event_user(fe_bus_event_at(bus, seq));
  for (uint32_t i = 0; i < fe_bus_user_size(bus); i++)
    if (u[i] != (i < len ? byte : 0))
      return 0;
  return 1;
}

/* fe_bus_submit and fe_bus_redrive follow one rule: a user area longer
 * than fe_bus_user_size() is refused with nothing claimed, and the slot
 * gets the bytes given and zeros after them, never the previous event's. */
static void test_submit_and_redrive_fill_user_area_alike(void **state) {
  (void)state;
  fe_t_def_t d;
  fe_t_def_init(&d, 4);
  d.cfg.host_driven = 1;
  d.cfg.slot_size = sizeof(fe_event_t) + 64;
  fe_t_add_stage(&d, "noop", noop_stage, NULL, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  uint32_t room = fe_bus_user_size(bus);
  assert_true(room >= 64);
  /* every slot dirty */
  for (int i = 0; i < 4; i++) {
    fe_event_t *ev;
    assert_fe_ok(fe_bus_try_claim(bus, &ev));
    memset(fe_event_user(ev), 0xab, room);
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  while (fe_bus_poll(bus, 0) > 0) {
  }
  uint8_t data[256];
  memset(data, 0x11, sizeof data);
  fe_event_t src;
  memset(&src, 0, sizeof src);
  src.type = FE_EV_NEW_ORDER;
  /* too long: refused, nothing claimed */
  assert_fe(fe_bus_redrive(&src, data, room + 1, 1, bus), FE_EINVAL);
  assert_int_equal(fe_t_stats(bus).published, 4);
  /* shorter: the bytes, then zeros */
  assert_fe_ok(fe_bus_redrive(&src, data, 8, 1, bus));
  assert_true(user_area_is(bus, 4, 0x11, 8));
  fe_order_t o = {.account = 1, .quantity = 1, .price = 1};
  fe_submit_t in = {.type = FE_EV_NEW_ORDER, .order = &o, .user_area = data,
                    .user_len = room + 1};
  fe_submit_result_t res;
  assert_fe(fe_bus_submit(bus, &in, &res), FE_EINVAL);
  in.user_len = 3;
  assert_fe_ok(fe_bus_submit(bus, &in, &res));
  assert_true(user_area_is(bus, res.seq, 0x11, 3));
  in.user_area = NULL, in.user_len = 0; /* none given: all zeros */
  assert_fe_ok(fe_bus_submit(bus, &in, &res));
  assert_true(user_area_is(bus, res.seq, 0, 0));
  while (fe_bus_poll(bus, 0) > 0) {
  }
  assert_fe_ok(fe_bus_stop(bus));
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest test_bus_publish[] = {
      FE_T_TEST(test_claim_publish_single),
      FE_T_TEST(test_submit_and_redrive_fill_user_area_alike),
      FE_T_TEST(test_claim_n_publish_n),
      FE_T_TEST(test_full_backpressure),
      FE_T_TEST(test_claim_n_all_or_nothing),
      FE_T_TEST(test_invalid_arguments),
      FE_T_TEST(test_claim_times_out_on_full_ring),
      FE_T_TEST(test_claim_waits_for_space_host),
      FE_T_TEST(test_claim_waits_for_space_threaded),
      FE_T_TEST(test_multi_producer_total_order),
      FE_T_TEST(test_multi_publish_out_of_order),
      FE_T_TEST(test_claims_after_stop),
      FE_T_TEST(test_stop_releases_a_blocked_claim),
      FE_T_TEST(test_slots_aligned_disjoint_and_reused),
      FE_T_TEST(test_user_area_16_byte_aligned),
  };
  return cmocka_run_group_tests(test_bus_publish, NULL, NULL);
}
