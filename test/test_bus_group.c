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
 * Each runs twice: stage by stage, and with fe_stage_def_t.fuse set (the
 * fused pass, event by event, which must keep every one of them; without
 * fuse a later stage takes a batch only after the earlier stage's
 * end_of_batch call, with it the fused pass really runs).  Then:
 *   - batches shorter than the chain (only the wavefront's edges);
 *   - a timing hook turns the fused pass off (it reports per stage);
 *   - fused and plain make the same calls (sequence, end_of_batch,
 *     attempt) and end with the same counters under random rejects,
 *     failures and retries in random batches;
 *   - a fused chain on a library thread, fed by another thread.
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
static uint32_t FUSE; /* fe_stage_def_t.fuse of every stage in these tests */
static uint32_t CALLS; /* handler calls so far, all stages */
static uint32_t call_no[N_ST][MAXEV]; /* CALLS when stage s got seq */

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
  call_no[st][ev->seq] = ++CALLS;
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

/* A host-driven bus of n stages (names, handlers, fuse and workers set by
 * the caller) chained in order, each retrying after a fixed retry_ns, on an
 * injected clock; started if start. */
static fe_bus_t *new_chain(fe_stage_def_t *st, uint32_t n, uint32_t capacity,
                           uint32_t max_batch, uint64_t (*clock)(void *),
                           uint64_t retry_ns, int start) {
  for (uint32_t i = 0; i < n; i++) {
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = i - 1;
    st[i].retry.initial_ns = retry_ns, st[i].retry.max_interval_ns = retry_ns;
    st[i].retry.jitter_milli = 0;
  }
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = capacity, cfg.max_batch = max_batch, cfg.host_driven = 1;
  cfg.stages = st, cfg.n_stages = n;
  cfg.now_ns = clock;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  if (fe_bus_create(&cfg, &bus, &d) != 0)
    fail_msg("create: %s", d.msg);
  if (start)
    assert_int_equal(fe_bus_start(bus, NULL), 0);
  return bus;
}

static fe_bus_t *chain_bus_started(int start) {
  fe_stage_def_t st[N_ST];
  static const char *names[N_ST] = {"validate", "comply", "execute"};
  for (uint32_t i = 0; i < N_ST; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i], st[i].handler = record, st[i].fuse = FUSE;
  }
  return new_chain(st, N_ST, 64, 16, test_clock, 1000, start);
}

static fe_bus_t *chain_bus(void) { return chain_bus_started(1); }

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
  memset(call_no, 0, sizeof call_no);
  CALLS = 0;
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
  /* Without fuse a stage takes the batch only after the one before it made
   * its end_of_batch call (what a stage that buffers until end_of_batch
   * relies on); with it, stage 1 takes seq 0 before stage 0 takes seq 15:
   * the fused pass ran. */
  if (FUSE)
    assert_true(call_no[1][0] < call_no[0][15]);
  else
    for (uint32_t st = 1; st < N_ST; st++)
      assert_true(call_no[st][0] > call_no[st - 1][15]);
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
    st[i].fuse = FUSE;
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

/* The same tests with every stage fused. */
#define FUSED(t)                                                               \
  static void t##_fused(void **state) {                                        \
    FUSE = 1;                                                                  \
    t(state);                                                                  \
    FUSE = 0;                                                                  \
  }
FUSED(test_order_and_eob)
FUSED(test_eob_when_upstream_rejects_the_tail)
FUSED(test_retry_mid_batch_counts_once)
FUSED(test_diamond_on_one_worker)

/* Batches of 1 and 2 events through a chain of 3 fused stages: only the
 * wavefront's first and last steps run. */
static void test_fused_short_batches(void **state) {
  (void)state;
  FUSE = 1;
  reset();
  fe_bus_t *bus = chain_bus();
  uint32_t total = 0;
  for (uint32_t n = 1; n <= 2; n++)
    for (int round = 0; round < 3; round++) {
      publish(bus, n, qty_plain);
      assert_int_equal(fe_bus_poll(bus, 0), (int)n);
      total += n;
      for (uint32_t st = 0; st < N_ST; st++) {
        assert_int_equal(S.n[st], total);
        for (uint32_t k = 0; k < total; k++)
          assert_int_equal(S.order[st][k], k);
        /* exactly the batch's last call carries end_of_batch */
        for (uint32_t k = total - n; k < total; k++)
          assert_int_equal(S.eob_at[st][k], k == total - 1);
      }
    }
  fe_bus_stats_t bs;
  assert_int_equal(fe_bus_stats(bus, &bs), 0);
  assert_int_equal(bs.completed, total);
  fe_bus_destroy(bus);
  FUSE = 0;
}

/* A timing hook reports per stage and per batch, which the fused pass
 * cannot: with one installed a fused worker runs stage by stage, and each
 * stage's report counts the whole batch. */
static uint32_t timed_reports[N_ST], timed_handled[N_ST];
static void on_timing(const fe_stage_timing_t *t, void *u) {
  (void)u;
  timed_reports[t->stage]++;
  timed_handled[t->stage] += t->handled;
}

static void test_fused_with_timing_hook(void **state) {
  (void)state;
  FUSE = 1;
  reset();
  memset(timed_reports, 0, sizeof timed_reports);
  memset(timed_handled, 0, sizeof timed_handled);
  fe_bus_t *bus = chain_bus_started(0);
  assert_int_equal(fe_bus_on_stage_timing(bus, on_timing, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  publish(bus, 16, qty_plain);
  assert_int_equal(fe_bus_poll(bus, 0), 16);
  for (uint32_t st = 0; st < N_ST; st++) {
    assert_int_equal(timed_reports[st], 1);
    assert_int_equal(timed_handled[st], 16);
    expect_one_eob_on_last(st);
  }
  assert_true(call_no[1][0] > call_no[0][15]); /* stage by stage */
  fe_bus_destroy(bus);
  FUSE = 0;
}

/* Differential: a chain of 5 stages, the first on worker 0 and the other
 * four on worker 1 (so the fused pass meets verdicts it did not give),
 * every handler's verdict
 * a function of (stage, seq, attempt) -- mostly continue, some reject,
 * fail, and retry once -- fed random batches by one schedule, once plain
 * and once fused.  Each stage's calls (sequence, end_of_batch, attempt)
 * and every counter must be the same. */
#define DIFF_ST 5
#define DIFF_EV 3000
typedef struct call_rec {
  uint32_t seq, eob, attempt;
} call_rec_t;
static call_rec_t diff_log[2][DIFF_ST][DIFF_EV * 2];
static uint32_t diff_n[2][DIFF_ST];
static uint32_t diff_run;
static uint64_t diff_clock;

static uint64_t diff_now(void *u) {
  (void)u;
  return diff_clock;
}

static uint32_t mix(uint32_t x) {
  x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

static fe_verdict_t diff_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                 void *u) {
  (void)u;
  uint32_t st = ctx->stage, seq = (uint32_t)ev->seq;
  uint32_t *n = &diff_n[diff_run][st];
  if (*n < DIFF_EV * 2)
    diff_log[diff_run][st][(*n)++] = (call_rec_t){seq, ctx->end_of_batch,
                                                  ctx->attempt};
  uint32_t h = mix(seq * 8 + st) % 100;
  if (h < 4)
    return fe_reject(ctx, 1 + st);
  if (h < 6)
    return fe_fail(ctx, 20 + st);
  if (h < 9 && ctx->attempt == 1)
    return fe_retry(ctx, 40 + st);
  return FE_CONTINUE;
}

static void diff_run_once(uint32_t fuse, fe_bus_stats_t *bs,
                          fe_stage_stats_t ss[DIFF_ST]) {
  fe_stage_def_t st[DIFF_ST];
  static const char *names[DIFF_ST] = {"pre", "v", "c", "x", "s"};
  for (uint32_t i = 0; i < DIFF_ST; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i], st[i].handler = diff_handler, st[i].fuse = fuse;
    st[i].worker = i == 0 ? 0 : 1;
  }
  fe_bus_t *bus = new_chain(st, DIFF_ST, 128, 32, diff_now, 100, 1);
  diff_clock = 1;
  uint32_t rng = 12345, sent = 0;
  while (sent < DIFF_EV) {
    rng = mix(rng);
    uint32_t k = 1 + rng % 40;
    for (uint32_t i = 0; i < k && sent < DIFF_EV; i++) {
      fe_event_t *ev;
      if (fe_bus_try_claim(bus, &ev) != 0)
        break;
      ev->order.quantity = 1, ev->order.price = 1;
      fe_bus_publish(bus, ev);
      sent++;
    }
    /* one or two polls, and time moves so that some retries fall due */
    int polls = 1 + (int)(mix(rng) % 2);
    for (int i = 0; i < polls; i++)
      fe_bus_poll(bus, 0), fe_bus_poll(bus, 1);
    diff_clock += 60;
  }
  for (int i = 0; i < 10000 && fe_bus_drain(bus, 0) != 0; i++) {
    diff_clock += 1000;
    fe_bus_poll(bus, 0), fe_bus_poll(bus, 1);
  }
  assert_int_equal(fe_bus_drain(bus, 0), 0);
  assert_int_equal(fe_bus_stats(bus, bs), 0);
  for (uint32_t i = 0; i < DIFF_ST; i++)
    assert_int_equal(fe_bus_stage_stats(bus, i, &ss[i]), 0);
  fe_bus_destroy(bus);
}

static void test_fused_matches_plain(void **state) {
  (void)state;
  fe_bus_stats_t bs[2];
  fe_stage_stats_t ss[2][DIFF_ST];
  memset(diff_n, 0, sizeof diff_n);
  for (diff_run = 0; diff_run < 2; diff_run++)
    diff_run_once(diff_run, &bs[diff_run], ss[diff_run]);
  assert_int_equal(bs[0].published, DIFF_EV);
  assert_int_equal(bs[1].published, DIFF_EV);
  assert_int_equal(bs[0].completed, bs[1].completed);
  assert_int_equal(bs[0].rejected, bs[1].rejected);
  assert_true(bs[0].rejected > 100); /* the script does reject, fail */
  for (uint32_t st = 0; st < DIFF_ST; st++) {
    assert_int_equal(diff_n[0][st], diff_n[1][st]);
    for (uint32_t k = 0; k < diff_n[0][st]; k++) {
      const call_rec_t *a = &diff_log[0][st][k], *b = &diff_log[1][st][k];
      if (a->seq != b->seq || a->eob != b->eob || a->attempt != b->attempt)
        fail_msg("stage %u call %u: plain seq %u eob %u attempt %u, fused "
                 "seq %u eob %u attempt %u", st, k, a->seq, a->eob,
                 a->attempt, b->seq, b->eob, b->attempt);
    }
    assert_int_equal(ss[0][st].handled, ss[1][st].handled);
    assert_int_equal(ss[0][st].rejected, ss[1][st].rejected);
    assert_int_equal(ss[0][st].skipped, ss[1][st].skipped);
    assert_int_equal(ss[0][st].retried, ss[1][st].retried);
    assert_int_equal(ss[0][st].failed, ss[1][st].failed);
  }
  assert_true(ss[0][2].retried > 10);
  assert_true(ss[0][2].failed > 10);
  assert_true(ss[0][1].skipped > 100); /* verdicts from worker 0 */
}

/* The fused pass on a library thread, fed by the host's thread: every
 * stage sees its events in order, each exactly once, and the counts add up
 * (stage 0 rejects every 7th order).  Under TSan this checks the pass's
 * reads of the slots against the producer's writes. */
#define THR_EV 200000
static uint64_t thr_next[4];
static uint64_t thr_bad;
static fe_verdict_t thr_handler(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  uint32_t st = ctx->stage;
  if (ev->seq < thr_next[st] || (st == 0 && ev->seq != thr_next[st]))
    thr_bad++;
  thr_next[st] = ev->seq + 1;
  if (st > 0 && ev->order.quantity % 7 == 0)
    thr_bad++; /* stage 0 rejected it: must not get here */
  ev->order.notional += ev->order.quantity;
  if (st == 0 && ev->order.quantity % 7 == 0)
    return fe_reject(ctx, 3);
  return FE_CONTINUE;
}

static void test_fused_threads(void **state) {
  (void)state;
  memset(thr_next, 0, sizeof thr_next);
  thr_bad = 0;
  fe_stage_def_t st[4];
  static const char *names[4] = {"a", "b", "c", "d"};
  for (uint32_t i = 0; i < 4; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i], st[i].handler = thr_handler, st[i].fuse = 1;
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = i - 1;
  }
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024, cfg.wait = FE_WAIT_YIELD;
  cfg.stages = st, cfg.n_stages = 4;
  fe_bus_t *bus = NULL;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  uint64_t rejects = 0;
  for (uint64_t i = 0; i < THR_EV; i++) {
    fe_event_t *ev;
    assert_int_equal(fe_bus_claim(bus, &ev, FE_WAIT_FOREVER), 0);
    ev->order.quantity = (int64_t)(1 + i);
    ev->order.price = 1;
    ev->order.notional = 0;
    rejects += (1 + i) % 7 == 0;
    fe_bus_publish(bus, ev);
  }
  assert_int_equal(fe_bus_drain(bus, FE_WAIT_FOREVER), 0);
  assert_int_equal(thr_bad, 0);
  fe_bus_stats_t bs;
  assert_int_equal(fe_bus_stats(bus, &bs), 0);
  assert_int_equal(bs.published, THR_EV);
  assert_int_equal(bs.rejected, rejects);
  assert_int_equal(bs.completed, THR_EV - rejects);
  fe_stage_stats_t ss;
  assert_int_equal(fe_bus_stage_stats(bus, 0, &ss), 0);
  assert_int_equal(ss.handled, THR_EV);
  for (uint32_t i = 1; i < 4; i++) {
    assert_int_equal(fe_bus_stage_stats(bus, i, &ss), 0);
    assert_int_equal(ss.handled, THR_EV - rejects);
    assert_int_equal(ss.skipped, rejects);
  }
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_and_eob),
      cmocka_unit_test(test_eob_when_upstream_rejects_the_tail),
      cmocka_unit_test(test_retry_mid_batch_counts_once),
      cmocka_unit_test(test_diamond_on_one_worker),
      cmocka_unit_test(test_order_and_eob_fused),
      cmocka_unit_test(test_eob_when_upstream_rejects_the_tail_fused),
      cmocka_unit_test(test_retry_mid_batch_counts_once_fused),
      cmocka_unit_test(test_diamond_on_one_worker_fused),
      cmocka_unit_test(test_fused_short_batches),
      cmocka_unit_test(test_fused_with_timing_hook),
      cmocka_unit_test(test_fused_matches_plain),
      cmocka_unit_test(test_fused_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
