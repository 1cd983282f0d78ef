/*
 * test_bus_group: the group pass (worker.c), which runs the stages that
 * share a worker over one batch, stage after stage.  Host-driven buses
 * make every batch exact: the test publishes, polls once, and checks what
 * each stage saw.
 *   - every stage sees every event in order, after its upstream stages;
 *   - end_of_batch is set on exactly one call per stage per batch, the
 *     last event that stage gets, even when an upstream stage rejects the
 *     batch's last events;
 *   - a retry pauses its stage and the ones after it, the others go on,
 *     and the counters (skipped, rejected, handled, completed) are exact:
 *     no event is counted twice when the retried stage steps over the
 *     same rejected events again;
 *   - a diamond (two stages side by side, a third after both) on one
 *     worker keeps its order too.
 */
#include "helpers.h"

#define N_ST 3
#define MAXEV 64

typedef struct seen {
  uint32_t stage;
  uint64_t order[N_ST][MAXEV]; /* sequences each stage got, in call order */
  uint32_t n[N_ST];
  uint32_t eob_at[N_ST][MAXEV]; /* end_of_batch per call */
  int64_t reject_qty;           /* stage 0 rejects orders with this qty */
  uint64_t retry_seq;           /* stage 1 retries this seq once */
  int retried;
  uint64_t clock;               /* injected retry clock */
  uint64_t up_done[N_ST][MAXEV]; /* stage s finished seq: order check */
} seen_t;

static seen_t S;

static fe_verdict_t record(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  uint32_t st = ctx->stage;
  if (ev->seq >= MAXEV || S.n[st] >= MAXEV)
    return FE_CONTINUE;
  /* every upstream stage (in this chain: the ones before) finished it */
  for (uint32_t k = 0; k < st; k++)
    if (!S.up_done[k][ev->seq] && !fe_event_rejected(ev, NULL, NULL))
      fail_msg("stage %u got seq %llu before stage %u finished it", st,
               (unsigned long long)ev->seq, k);
  if (st == 1 && ev->seq == S.retry_seq && !S.retried) {
    S.retried = 1;
    return fe_retry(ctx, 7);
  }
  S.order[st][S.n[st]] = ev->seq;
  S.eob_at[st][S.n[st]++] = ctx->end_of_batch;
  S.up_done[st][ev->seq] = 1;
  if (st == 0 && ev->order.quantity == S.reject_qty)
    return fe_reject(ctx, 9);
  return FE_CONTINUE;
}

static uint64_t test_clock(void *u) {
  (void)u;
  return S.clock;
}

static fe_bus_t *chain_bus(void) {
  fe_stage_def_t st[N_ST];
  static const char *names[N_ST] = {"validate", "comply", "execute"};
  for (uint32_t i = 0; i < N_ST; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i], st[i].handler = record;
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = i - 1;
    st[i].retry.initial_ns = 1000, st[i].retry.max_interval_ns = 1000;
    st[i].retry.jitter_milli = 0;
  }
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64, cfg.max_batch = 16, cfg.host_driven = 1;
  cfg.stages = st, cfg.n_stages = N_ST;
  cfg.now_ns = test_clock;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  if (fe_bus_create(&cfg, &bus, &d) != 0)
    fail_msg("create: %s", d.msg);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  return bus;
}

/* Publishes n orders; order i has quantity qty(i). */
static void publish(fe_bus_t *bus, uint32_t n, int64_t (*qty)(uint32_t)) {
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev;
    assert_int_equal(fe_bus_try_claim(bus, &ev), 0);
    ev->order.quantity = qty(i);
    ev->order.price = 1;
    fe_bus_publish(bus, ev);
  }
}

static int64_t qty_plain(uint32_t i) { return 1 + i; }
static int64_t qty_tail_rejected(uint32_t i) { return i >= 13 ? 0 : 1; }

static void reset(void) {
  memset(&S, 0, sizeof S);
  S.reject_qty = -1;
  S.retry_seq = UINT64_MAX;
  S.clock = 1;
}

/* Each stage: one end_of_batch, on its last call. */
static void expect_one_eob_on_last(uint32_t st) {
  uint32_t eobs = 0;
  for (uint32_t k = 0; k < S.n[st]; k++)
    eobs += S.eob_at[st][k];
  if (S.n[st] == 0)
    return;
  if (eobs != 1 || !S.eob_at[st][S.n[st] - 1])
    fail_msg("stage %u: %u calls, %u end_of_batch, last call's flag %u", st,
             S.n[st], eobs, S.eob_at[st][S.n[st] - 1]);
}

static void test_order_and_eob(void **state) {
  (void)state;
  reset();
  fe_bus_t *bus = chain_bus();
  publish(bus, 16, qty_plain);
  assert_int_equal(fe_bus_poll(bus, 0), 16);
  for (uint32_t st = 0; st < N_ST; st++) {
    assert_int_equal(S.n[st], 16);
    for (uint32_t k = 0; k < 16; k++)
      assert_int_equal(S.order[st][k], k);
    expect_one_eob_on_last(st);
  }
  fe_bus_destroy(bus);
}

/* Stage 0 rejects the batch's last three orders: stages 1 and 2 see 13
 * events, and the 13th (seq 12) must carry end_of_batch. */
static void test_eob_when_upstream_rejects_the_tail(void **state) {
  (void)state;
  reset();
  S.reject_qty = 0;
  fe_bus_t *bus = chain_bus();
  publish(bus, 16, qty_tail_rejected);
  assert_int_equal(fe_bus_poll(bus, 0), 16);
  assert_int_equal(S.n[0], 16);
  assert_int_equal(S.n[1], 13);
  assert_int_equal(S.n[2], 13);
  for (uint32_t st = 0; st < N_ST; st++)
    expect_one_eob_on_last(st);
  assert_int_equal(S.order[2][12], 12);
  fe_stage_stats_t ss;
  assert_int_equal(fe_bus_stage_stats(bus, 1, &ss), 0);
  assert_int_equal(ss.skipped, 3);
  assert_int_equal(fe_bus_stage_stats(bus, 2, &ss), 0);
  assert_int_equal(ss.skipped, 3);
  fe_bus_stats_t bs;
  assert_int_equal(fe_bus_stats(bus, &bs), 0);
  assert_int_equal(bs.completed, 13);
  assert_int_equal(bs.rejected, 3);
  fe_bus_destroy(bus);
}

/* Stage 1 retries seq 10 once; stage 0 rejects seqs 11..15 (qty 0).
 * The pass stops stages 1 and 2 at 10 while stage 0 finishes the batch;
 * after the delay the retry goes through and the counts are exact:
 * stage 1 and 2 skip 11..15 once each, not twice. */
static int64_t qty_reject_after_10(uint32_t i) { return i >= 11 ? 0 : 1; }

static void test_retry_mid_batch_counts_once(void **state) {
  (void)state;
  reset();
  S.reject_qty = 0;
  S.retry_seq = 10;
  fe_bus_t *bus = chain_bus();
  publish(bus, 16, qty_reject_after_10);
  assert_true(fe_bus_poll(bus, 0) > 0);
  assert_int_equal(S.n[0], 16);
  assert_int_equal(S.n[1], 10); /* 0..9 handed over; 10 paused */
  assert_true(S.n[2] <= 10);
  S.clock += 1000000; /* the retry is due */
  for (int i = 0; i < 8 && fe_bus_poll(bus, 0) > 0; i++)
    ;
  assert_int_equal(fe_bus_drain(bus, 0), 0);
  assert_int_equal(S.n[1], 11);
  assert_int_equal(S.n[2], 11);
  for (uint32_t k = 0; k < 11; k++) {
    assert_int_equal(S.order[1][k], k);
    assert_int_equal(S.order[2][k], k);
  }
  fe_stage_stats_t ss;
  assert_int_equal(fe_bus_stage_stats(bus, 1, &ss), 0);
  assert_int_equal(ss.skipped, 5);
  assert_int_equal(ss.retried, 1);
  assert_int_equal(ss.handled, 12); /* 11 events, one of them twice */
  assert_int_equal(fe_bus_stage_stats(bus, 2, &ss), 0);
  assert_int_equal(ss.skipped, 5);
  assert_int_equal(ss.handled, 11);
  fe_bus_stats_t bs;
  assert_int_equal(fe_bus_stats(bus, &bs), 0);
  assert_int_equal(bs.completed, 11);
  assert_int_equal(bs.rejected, 5);
  fe_bus_destroy(bus);
}

/* A diamond on one worker: a -> {b, c} -> d.  d sees each event after
 * both b and c. */
static uint8_t dia_done[4][MAXEV];
static uint32_t dia_n[4];
static fe_verdict_t dia(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  uint32_t st = ctx->stage;
  if (st == 1 || st == 2)
    assert_true(dia_done[0][ev->seq]);
  if (st == 3)
    assert_true(dia_done[1][ev->seq] && dia_done[2][ev->seq]);
  dia_done[st][ev->seq] = 1;
  dia_n[st]++;
  return FE_CONTINUE;
}

static void test_diamond_on_one_worker(void **state) {
  (void)state;
  memset(dia_done, 0, sizeof dia_done);
  memset(dia_n, 0, sizeof dia_n);
  fe_stage_def_t st[4];
  static const char *names[4] = {"a", "b", "c", "d"};
  for (uint32_t i = 0; i < 4; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i], st[i].handler = dia;
  }
  st[1].n_deps = 1, st[1].deps[0] = 0;
  st[2].n_deps = 1, st[2].deps[0] = 0;
  st[3].n_deps = 2, st[3].deps[0] = 1, st[3].deps[1] = 2;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64, cfg.max_batch = 16, cfg.host_driven = 1;
  cfg.stages = st, cfg.n_stages = 4;
  fe_bus_t *bus = NULL;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  reset();
  publish(bus, 40, qty_plain);
  while (fe_bus_poll(bus, 0) > 0)
    ;
  for (uint32_t i = 0; i < 4; i++)
    assert_int_equal(dia_n[i], 40);
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_and_eob),
      cmocka_unit_test(test_eob_when_upstream_rejects_the_tail),
      cmocka_unit_test(test_retry_mid_batch_counts_once),
      cmocka_unit_test(test_diamond_on_one_worker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
