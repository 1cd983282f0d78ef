/*
 * test_bus_shard: a stage sharded over several workers.  Every event is
 * handled by exactly one shard; one key always goes to the same shard;
 * per-key order is preserved; a custom key function is honoured; the
 * stages around the sharded one see the right order.
 *
 * Graph: V (worker 0) -> C (shards on workers 1..k) -> S (worker k+1), or
 * in host-driven mode V and S on worker 0.  The producer gives every event
 * a key (account, or a group in `price` for the custom key) and a per-key
 * counter (quantity for accounts, user word 1 for groups).
 */
#include "helpers.h"

#define MAX_SHARDS 4
#define N_KEYS 64
#define N_EVENTS 30000
#define W_STAMP 2 /* user word the owning shard stamps */
#define MAX_BATCH 32

typedef enum key_mode { KEY_ACCOUNT, KEY_GROUP, KEY_CONST } key_mode_t;

typedef struct shard_state {
  int64_t last[N_KEYS]; /* last counter per key, this shard */
  uint64_t next_seq;
  uint64_t handled;
  uint32_t run;         /* events since this shard's last end_of_batch */
  uint64_t eobs;
  pthread_t th;
  int have_th;
} shard_state_t;

typedef struct world {
  fe_t_errs_t errs;
  uint64_t n;
  uint32_t shards;
  uint32_t c_worker0;
  key_mode_t mode;
  uint32_t slow_shard; /* this shard yields on every event */
  _Atomic uint64_t key_calls;
  _Atomic uint64_t key_bad_user;
  /* V */
  uint64_t v_next;
  _Atomic unsigned char *v_seen;
  /* C */
  shard_state_t sh[MAX_SHARDS];
  _Atomic unsigned char *c_count; /* per seq: shards that handled it */
  _Atomic int owner[N_KEYS];      /* 1 + shard that owns the key, 0: none */
  /* S */
  uint64_t s_next;
  uint64_t s_count;
} world_t;

static uint64_t key_of(const world_t *w, const fe_event_t *ev) {
  return w->mode == KEY_ACCOUNT ? ev->order.account
                                : (uint64_t)ev->order.price;
}

static int64_t counter_of(const world_t *w, fe_event_t *ev) {
  return w->mode == KEY_ACCOUNT ? ev->order.quantity
                                : ((int64_t *)fe_event_user(ev))[1];
}

static fe_verdict_t v_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                              void *user) {
  world_t *w = user;
  (void)ctx;
  if (ev->seq != w->v_next)
    fe_t_errf(&w->errs, "V: seq %" PRIu64 ", expected %" PRIu64, ev->seq,
              w->v_next);
  w->v_next = ev->seq + 1;
  if (ev->seq < w->n)
    atomic_store_explicit(&w->v_seen[ev->seq], 1, memory_order_release);
  return FE_CONTINUE;
}

static fe_verdict_t c_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                              void *user) {
  world_t *w = user;
  uint64_t seq = ev->seq;
  if (ctx->shard >= w->shards || ctx->stage != 1 ||
      ctx->worker != w->c_worker0 + ctx->shard) {
    fe_t_errf(&w->errs, "C: bad ctx: stage %u shard %u worker %u", ctx->stage,
              ctx->shard, ctx->worker);
    return FE_CONTINUE;
  }
  shard_state_t *s = &w->sh[ctx->shard];
  if (!s->have_th) {
    s->th = pthread_self();
    s->have_th = 1;
  } else if (!pthread_equal(s->th, pthread_self())) {
    fe_t_errf(&w->errs, "C shard %u moved threads", ctx->shard);
  }
  if (seq >= w->n) {
    fe_t_errf(&w->errs, "C: seq %" PRIu64 " out of range", seq);
    return FE_CONTINUE;
  }
  if (seq < s->next_seq)
    fe_t_errf(&w->errs, "C shard %u: seq %" PRIu64 " after %" PRIu64,
              ctx->shard, seq, s->next_seq);
  s->next_seq = seq + 1;
  if (!atomic_load_explicit(&w->v_seen[seq], memory_order_acquire))
    fe_t_errf(&w->errs, "C: seq %" PRIu64 " before V handled it", seq);

  uint64_t key = key_of(w, ev);
  if (key >= N_KEYS) {
    fe_t_errf(&w->errs, "C: key %" PRIu64 " out of range", key);
    return FE_CONTINUE;
  }
  int mine = (int)ctx->shard + 1, expected = 0;
  if (!atomic_compare_exchange_strong(&w->owner[key], &expected, mine) &&
      expected != mine)
    fe_t_errf(&w->errs, "key %" PRIu64 " went to shard %u and to shard %d",
              key, ctx->shard, expected - 1);
  int64_t counter = counter_of(w, ev);
  if (counter != s->last[key] + 1)
    fe_t_errf(&w->errs, "shard %u key %" PRIu64 ": counter %" PRId64
              " after %" PRId64, ctx->shard, key, counter, s->last[key]);
  s->last[key] = counter;
  if (ctx->shard == w->slow_shard)
    sched_yield();
  /* end_of_batch marks the last event this shard gets in a batch, not
   * the batch's last sequence (which may belong to another shard) */
  if (++s->run > MAX_BATCH)
    fe_t_errf(&w->errs, "C shard %u: %u events without end_of_batch",
              ctx->shard, s->run);
  if (ctx->end_of_batch) {
    s->run = 0;
    s->eobs++;
  }
  ((uint64_t *)fe_event_user(ev))[W_STAMP] = seq * 3 + 1;
  if (atomic_fetch_add_explicit(&w->c_count[seq], 1, memory_order_release))
    fe_t_errf(&w->errs, "C: seq %" PRIu64 " handled by two shards", seq);
  s->handled++;
  return FE_CONTINUE;
}

static fe_verdict_t s_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                              void *user) {
  world_t *w = user;
  (void)ctx;
  uint64_t seq = ev->seq;
  if (seq != w->s_next)
    fe_t_errf(&w->errs, "S: seq %" PRIu64 ", expected %" PRIu64, seq,
              w->s_next);
  w->s_next = seq + 1;
  if (((uint64_t *)fe_event_user(ev))[W_STAMP] != seq * 3 + 1)
    fe_t_errf(&w->errs, "S: seq %" PRIu64 " without its shard's stamp", seq);
  if (seq < w->n &&
      atomic_load_explicit(&w->c_count[seq], memory_order_acquire) != 1)
    fe_t_errf(&w->errs, "S: seq %" PRIu64 " before its shard handled it",
              seq);
  w->s_count++;
  return FE_CONTINUE;
}

/* The world the custom key function expects as its key_user. */
static world_t *g_key_world;

static uint64_t custom_key(const fe_event_t *ev, void *user) {
  world_t *w = g_key_world;
  atomic_fetch_add_explicit(&w->key_calls, 1, memory_order_relaxed);
  if (user != (void *)w)
    atomic_fetch_add_explicit(&w->key_bad_user, 1, memory_order_relaxed);
  return w->mode == KEY_CONST ? 42 : (uint64_t)ev->order.price;
}

static world_t *world_new(uint64_t n, uint32_t shards, key_mode_t mode) {
  world_t *w = calloc(1, sizeof *w);
  assert_non_null(w);
  w->n = n;
  w->shards = shards;
  w->mode = mode;
  w->slow_shard = UINT32_MAX;
  w->v_seen = calloc(n, 1);
  w->c_count = calloc(n, 1);
  assert_true(w->v_seen && w->c_count);
  return w;
}

static void world_free(world_t *w) {
  free((void *)w->v_seen);
  free((void *)w->c_count);
  free(w);
}

/* Builds V -> C(shards) -> S. */
static fe_bus_t *world_bus(world_t *w, int host) {
  fe_t_def_t d;
  fe_t_def_init(&d, 256);
  d.cfg.max_batch = MAX_BATCH;
  d.cfg.host_driven = host;
  w->c_worker0 = 1;
  fe_t_add_stage(&d, "V", v_handler, w, 0);
  uint32_t c = fe_t_add_stage(&d, "C", c_handler, w, 1);
  d.st[c].shards = w->shards;
  fe_t_add_dep(&d, c, 0);
  if (w->mode != KEY_ACCOUNT) {
    g_key_world = w;
    d.st[c].key = custom_key;
    d.st[c].key_user = w;
  }
  uint32_t s = fe_t_add_stage(&d, "S", s_handler, w, host ? 0 : 1 + w->shards);
  fe_t_add_dep(&d, s, c);
  fe_bus_t *bus = fe_t_create(&d);
  assert_int_equal(fe_bus_workers(bus), host ? 1 + w->shards : 2 + w->shards);
  return bus;
}

/* Publishes n events with random keys and per-key counters; returns the
 * published count per key in counts. */
static void world_publish(world_t *w, fe_bus_t *bus, uint64_t counts[N_KEYS]) {
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 7 + w->shards);
  memset(counts, 0, N_KEYS * sizeof counts[0]);
  uint64_t done = 0;
  while (done < w->n) {
    uint32_t k = fe_t_rng_range(&rng, 1, 16);
    if (k > w->n - done)
      k = (uint32_t)(w->n - done);
    uint64_t first = 0;
    assert_fe_ok(fe_bus_claim_n(bus, k, &first, FE_T_LONG_NS));
    for (uint32_t i = 0; i < k; i++) {
      fe_event_t *ev = fe_bus_event_at(bus, first + i);
      uint32_t key = fe_t_rng_range(&rng, 0, N_KEYS - 1);
      int64_t *u = fe_event_user(ev);
      if (w->mode == KEY_ACCOUNT) {
        ev->order.account = key;
        ev->order.quantity = (int64_t)++counts[key];
        ev->order.price = 0;
      } else {
        /* the key is the group; accounts are spread independently */
        ev->order.account = fe_t_rng_range(&rng, 0, 1000);
        ev->order.price = key;
        u[1] = (int64_t)++counts[key];
      }
      u[W_STAMP] = 0;
    }
    assert_fe_ok(fe_bus_publish_n(bus, first, k));
    done += k;
  }
}

/* After the bus stopped: exactly-once, ownership and final counters. */
static void world_check(world_t *w, fe_bus_t *bus, const uint64_t counts[]) {
  fe_t_assert_clean(&w->errs);
  for (uint64_t seq = 0; seq < w->n; seq++)
    if (atomic_load(&w->c_count[seq]) != 1)
      fail_msg("seq %" PRIu64 " handled by %u shards", seq,
               atomic_load(&w->c_count[seq]));
  assert_int_equal(w->v_next, w->n);
  assert_int_equal(w->s_next, w->n);
  assert_int_equal(w->s_count, w->n);
  uint64_t per_shard[MAX_SHARDS] = {0};
  uint32_t keys_per_shard[MAX_SHARDS] = {0};
  for (uint32_t k = 0; k < N_KEYS; k++) {
    if (counts[k] == 0)
      continue;
    int o = atomic_load(&w->owner[k]);
    assert_true(o >= 1 && o <= (int)w->shards);
    keys_per_shard[o - 1]++;
    for (uint32_t s = 0; s < w->shards; s++) {
      int64_t want = s == (uint32_t)(o - 1) ? (int64_t)counts[k] : 0;
      if (w->sh[s].last[k] != want)
        fail_msg("key %u: shard %u saw up to counter %" PRId64 ", expected %"
                 PRId64, k, s, w->sh[s].last[k], want);
    }
  }
  for (uint32_t s = 0; s < w->shards; s++)
    per_shard[s] = w->sh[s].handled;
  uint64_t sum = 0;
  for (uint32_t s = 0; s < w->shards; s++)
    sum += per_shard[s];
  assert_int_equal(sum, w->n);
  if (w->mode != KEY_CONST) {
    /* with 64 distinct keys a hash that spreads keys gives every shard
     * some (the chance that one gets none is below 1e-11) */
    for (uint32_t s = 0; s < w->shards; s++)
      if (keys_per_shard[s] == 0)
        fail_msg("shard %u of %u owns no key: keys are not spread", s,
                 w->shards);
    for (uint32_t a = 0; a < w->shards; a++)
      for (uint32_t b = a + 1; b < w->shards; b++)
        assert_false(pthread_equal(w->sh[a].th, w->sh[b].th));
  }
  fe_stage_stats_t cs = fe_t_stage_stats(bus, 1);
  uint64_t eobs = 0;
  for (uint32_t s = 0; s < w->shards; s++) {
    if (w->sh[s].run != 0)
      fail_msg("shard %u: its last %u events had no end_of_batch", s,
               w->sh[s].run);
    eobs += w->sh[s].eobs;
  }
  assert_int_equal(cs.batches, eobs);
  assert_int_equal(cs.handled, w->n);
  assert_int_equal(cs.skipped, 0);
  /* "sequence reached, minimum over shards": whether that is the count
   * (n) or the last sequence (n - 1) is not specified */
  assert_true(cs.processed == w->n || cs.processed == w->n - 1);
  fe_bus_stats_t bs = fe_t_stats(bus);
  assert_int_equal(bs.published, w->n);
  assert_int_equal(bs.completed, w->n);
}

static void sharded_threaded(uint32_t shards, key_mode_t mode,
                             uint32_t slow_shard) {
  world_t *w = world_new(N_EVENTS, shards, mode);
  w->slow_shard = slow_shard;
  fe_bus_t *bus = world_bus(w, 0);
  fe_t_start(bus);
  uint64_t counts[N_KEYS];
  world_publish(w, bus, counts);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  world_check(w, bus, counts);
  if (mode != KEY_ACCOUNT) {
    assert_true(atomic_load(&w->key_calls) >= w->n);
    assert_int_equal(atomic_load(&w->key_bad_user), 0);
  }
  if (mode == KEY_CONST) {
    uint32_t busy = 0;
    for (uint32_t s = 0; s < shards; s++)
      busy += w->sh[s].handled != 0;
    assert_int_equal(busy, 1);
  }
  fe_bus_destroy(bus);
  world_free(w);
}

static void test_two_shards_by_account(void **state) {
  (void)state;
  sharded_threaded(2, KEY_ACCOUNT, UINT32_MAX);
}

static void test_three_shards_by_account_one_slow(void **state) {
  (void)state;
  /* shard 0 lags: S must still wait for it (minimum over shards) */
  sharded_threaded(3, KEY_ACCOUNT, 0);
}

static void test_custom_key_groups(void **state) {
  (void)state;
  sharded_threaded(2, KEY_GROUP, 1);
}

static void test_custom_constant_key_one_shard(void **state) {
  (void)state;
  sharded_threaded(3, KEY_CONST, UINT32_MAX);
}

static void test_default_key_is_account_not_other_fields(void **state) {
  (void)state;
  /* Same account, wildly different other fields: still one shard. */
  world_t *w = world_new(4000, 2, KEY_ACCOUNT);
  fe_bus_t *bus = world_bus(w, 0);
  fe_t_start(bus);
  uint64_t counts[N_KEYS] = {0};
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 99);
  for (uint64_t i = 0; i < w->n; i++) {
    fe_event_t *ev = NULL;
    assert_fe_ok(fe_t_claim(bus, &ev));
    uint32_t key = (uint32_t)(i % 4);
    ev->order.account = key;
    ev->order.quantity = (int64_t)++counts[key];
    ev->order.price = (int64_t)fe_t_rng_next(&rng);
    ev->trace_id = fe_t_rng_next(&rng);
    ev->type = (uint32_t)fe_t_rng_range(&rng, 1, 5);
    memset(ev->order.symbol, 'A' + (int)(i % 26), sizeof ev->order.symbol);
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&w->errs);
  for (uint32_t k = 0; k < 4; k++) {
    int o = atomic_load(&w->owner[k]);
    assert_true(o >= 1);
    assert_int_equal(w->sh[o - 1].last[k], counts[k]);
  }
  fe_bus_destroy(bus);
  world_free(w);
}

static void test_shards_host_driven(void **state) {
  (void)state;
  world_t *w = world_new(N_EVENTS, 2, KEY_ACCOUNT);
  fe_bus_t *bus = world_bus(w, 1);
  fe_t_start(bus);
  fe_t_poller_t p[3];
  for (uint32_t i = 0; i < 3; i++)
    fe_t_poller_start(&p[i], bus, i, &w->errs);
  uint64_t counts[N_KEYS];
  world_publish(w, bus, counts);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  for (uint32_t i = 0; i < 3; i++)
    fe_t_poller_join(&p[i]);
  world_check(w, bus, counts);
  /* every worker did its share; V and S both run on worker 0 */
  assert_true(p[0].advanced >= 2 * w->n);
  assert_true(p[1].advanced >= w->n / 4);
  assert_true(p[2].advanced >= w->n / 4);
  fe_bus_destroy(bus);
  world_free(w);
}

int main(void) {
  const struct CMUnitTest test_bus_shard[] = {
      FE_T_TEST(test_two_shards_by_account),
      FE_T_TEST(test_three_shards_by_account_one_slow),
      FE_T_TEST(test_custom_key_groups),
      FE_T_TEST(test_custom_constant_key_one_shard),
      FE_T_TEST(test_default_key_is_account_not_other_fields),
      FE_T_TEST(test_shards_host_driven),
  };
  return cmocka_run_group_tests(test_bus_shard, NULL, NULL);
}
