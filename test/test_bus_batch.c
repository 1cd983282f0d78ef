/*
 * test_bus_batch: batching.  A shard takes at most max_batch events per
 * batch; the handler's end_of_batch flag is set exactly on the last event
 * it gets in each batch (also when the batch's last sequences were
 * rejected upstream); stage stats count the batches in which the handler
 * ran at least once.
 */
#include "helpers.h"

/* Per-stage batch watcher. */
typedef struct bw {
  fe_t_errs_t *errs;
  uint32_t max_batch;
  int reject_mode; /* 0 none; 1: seq % 64 == 63 or 128 <= seq < 192 */
  /* worker-private */
  uint32_t run;    /* events since the last end_of_batch */
  uint64_t eobs;   /* end_of_batch flags seen */
  uint64_t handled;
  uint64_t next_seq;
  /* host-driven: what happened during the current poll */
  uint32_t poll_calls;
  uint32_t poll_eobs;
  int poll_last_eob;
  uint64_t poll_first_seq;
  uint64_t poll_last_seq;
} bw_t;

static int rejected_by_rule(uint64_t seq) {
  return seq % 64 == 63 || (seq >= 128 && seq < 192);
}

static fe_verdict_t bw_handler(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  bw_t *b = user;
  if (ctx->end_of_batch > 1)
    fe_t_errf(b->errs, "stage %u: end_of_batch = %u", ctx->stage,
              ctx->end_of_batch);
  if (ev->seq < b->next_seq)
    fe_t_errf(b->errs, "stage %u: seq %" PRIu64 " out of order", ctx->stage,
              ev->seq);
  b->next_seq = ev->seq + 1;
  b->handled++;
  b->run++;
  if (b->run > b->max_batch)
    fe_t_errf(b->errs, "stage %u: %u events without end_of_batch (max_batch"
              " %u)", ctx->stage, b->run, b->max_batch);
  if (b->poll_calls++ == 0)
    b->poll_first_seq = ev->seq;
  b->poll_last_seq = ev->seq;
  b->poll_last_eob = ctx->end_of_batch != 0;
  if (ctx->end_of_batch) {
    b->eobs++;
    b->poll_eobs++;
    b->run = 0;
  }
  if (b->reject_mode && rejected_by_rule(ev->seq))
    return fe_reject(ctx, 1);
  return FE_CONTINUE;
}

static void bw_poll_reset(bw_t *b) {
  b->poll_calls = 0;
  b->poll_eobs = 0;
  b->poll_last_eob = 0;
}

static void publish_plain(fe_bus_t *bus, uint64_t n) {
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 5);
  assert_fe_ok(fe_t_publish_filled(bus, n, 32, &rng));
}

/* ------------------------------------------------------------ threaded */

static void threaded(uint32_t max_batch, int with_rejects) {
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  bw_t b[2];
  memset(b, 0, sizeof b);
  for (int i = 0; i < 2; i++) {
    b[i].errs = &errs;
    b[i].max_batch = max_batch;
  }
  b[0].reject_mode = with_rejects;
  fe_t_def_t d;
  fe_t_def_init(&d, 256);
  d.cfg.max_batch = max_batch;
  fe_t_add_stage(&d, "A", bw_handler, &b[0], 0);
  uint32_t s = fe_t_add_stage(&d, "B", bw_handler, &b[1], 1);
  fe_t_add_dep(&d, s, 0);
  fe_bus_t *bus = fe_t_create(&d);
  /* half before start (a backlog: full batches), half while running */
  const uint64_t n = 20000;
  publish_plain(bus, 200);
  fe_t_start(bus);
  publish_plain(bus, n - 200);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&errs);
  uint64_t rejected = 0;
  for (uint64_t seq = 0; seq < n; seq++)
    rejected += (uint64_t)(with_rejects && rejected_by_rule(seq));
  assert_int_equal(b[0].handled, n);
  assert_int_equal(b[1].handled, n - rejected);
  for (int i = 0; i < 2; i++) {
    /* the last event a stage got closed a batch */
    if (b[i].run != 0)
      fail_msg("stage %d: its last %u events had no end_of_batch", i,
               b[i].run);
    fe_stage_stats_t ss = fe_t_stage_stats(bus, (uint32_t)i);
    /* one end_of_batch per batch in which the handler ran */
    assert_int_equal(ss.batches, b[i].eobs);
    assert_true(ss.batches * max_batch >= b[i].handled);
  }
  fe_bus_destroy(bus);
}

static void test_max_batch_respected_threaded(void **state) {
  (void)state;
  threaded(1, 0);
  threaded(7, 0);
  threaded(64, 0);
}

static void test_max_batch_respected_with_rejects(void **state) {
  (void)state;
  threaded(7, 1);
  threaded(64, 1);
}

/* --------------------------------------------------------- host-driven */

static void test_exact_batches_host_driven(void **state) {
  (void)state;
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  bw_t b;
  memset(&b, 0, sizeof b);
  b.errs = &errs;
  b.max_batch = 64;
  fe_t_def_t d;
  fe_t_def_init(&d, 1024);
  d.cfg.host_driven = 1;
  d.cfg.max_batch = 64;
  fe_t_add_stage(&d, "only", bw_handler, &b, 0);
  fe_bus_t *bus = fe_t_create(&d);
  publish_plain(bus, 1000); /* all before start */
  fe_t_start(bus);
  for (uint64_t k = 0; k < 16; k++) {
    uint32_t want = k < 15 ? 64 : 40;
    bw_poll_reset(&b);
    int rc = fe_bus_poll(bus, 0);
    if (rc != (int)want)
      fail_msg("poll %" PRIu64 " advanced %d, expected %u", k, rc, want);
    assert_int_equal(b.poll_calls, want);
    assert_int_equal(b.poll_first_seq, k * 64);
    assert_int_equal(b.poll_last_seq, k * 64 + want - 1);
    if (b.poll_eobs != 1 || !b.poll_last_eob)
      fail_msg("poll %" PRIu64 ": %u end_of_batch flags, last call %s", k,
               b.poll_eobs, b.poll_last_eob ? "flagged" : "not flagged");
  }
  bw_poll_reset(&b);
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(b.poll_calls, 0);
  fe_stage_stats_t ss = fe_t_stage_stats(bus, 0);
  assert_int_equal(ss.batches, 16);
  assert_int_equal(ss.handled, 1000);
  fe_t_assert_clean(&errs);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
}

static void test_max_batch_one(void **state) {
  (void)state;
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  bw_t b;
  memset(&b, 0, sizeof b);
  b.errs = &errs;
  b.max_batch = 1;
  fe_t_def_t d;
  fe_t_def_init(&d, 32);
  d.cfg.host_driven = 1;
  d.cfg.max_batch = 1;
  fe_t_add_stage(&d, "only", bw_handler, &b, 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_start(bus);
  publish_plain(bus, 20);
  for (int k = 0; k < 20; k++) {
    bw_poll_reset(&b);
    assert_int_equal(fe_bus_poll(bus, 0), 1);
    assert_int_equal(b.poll_calls, 1);
    assert_true(b.poll_last_eob);
  }
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(fe_t_stage_stats(bus, 0).batches, 20);
  fe_t_assert_clean(&errs);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
}

static void test_end_of_batch_on_last_delivered_event(void **state) {
  (void)state;
  /* A rejects the last sequence of every 64-batch and all of 128..191;
   * B, downstream on its own worker, must get end_of_batch on the last
   * event it actually receives in each batch, and a batch in which it
   * receives nothing is not counted. */
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  bw_t a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.errs = b.errs = &errs;
  a.max_batch = b.max_batch = 64;
  a.reject_mode = 1;
  fe_t_def_t d;
  fe_t_def_init(&d, 1024);
  d.cfg.host_driven = 1;
  d.cfg.max_batch = 64;
  fe_t_add_stage(&d, "A", bw_handler, &a, 0);
  uint32_t sb = fe_t_add_stage(&d, "B", bw_handler, &b, 1);
  fe_t_add_dep(&d, sb, 0);
  fe_bus_t *bus = fe_t_create(&d);
  publish_plain(bus, 1000);
  fe_t_start(bus);
  /* B has nothing to do before A ran */
  assert_int_equal(fe_bus_poll(bus, 1), 0);
  assert_int_equal(fe_t_poll_idle(bus, 0), 1000);
  assert_int_equal(a.eobs, 16);

  uint64_t rejected = 0, b_batches = 0;
  for (uint64_t k = 0; k < 16; k++) {
    uint64_t lo = k * 64, hi = k < 15 ? lo + 64 : 1000;
    uint32_t deliver = 0;
    uint64_t last = 0;
    for (uint64_t seq = lo; seq < hi; seq++)
      if (!rejected_by_rule(seq)) {
        deliver++;
        last = seq;
      } else {
        rejected++;
      }
    b_batches += deliver > 0;
    bw_poll_reset(&b);
    int rc = fe_bus_poll(bus, 1);
    if (rc != (int)(hi - lo))
      fail_msg("B poll %" PRIu64 " advanced %d, expected %" PRIu64, k, rc,
               hi - lo);
    if (b.poll_calls != deliver)
      fail_msg("B poll %" PRIu64 ": %u calls, expected %u", k, b.poll_calls,
               deliver);
    if (deliver && (b.poll_eobs != 1 || !b.poll_last_eob ||
                    b.poll_last_seq != last))
      fail_msg("B poll %" PRIu64 ": end_of_batch not (only) on seq %" PRIu64
               " (flags %u, last call seq %" PRIu64 " %s)", k, last,
               b.poll_eobs, b.poll_last_seq,
               b.poll_last_eob ? "flagged" : "not flagged");
  }
  assert_int_equal(fe_bus_poll(bus, 1), 0);
  fe_stage_stats_t sa = fe_t_stage_stats(bus, 0), ss = fe_t_stage_stats(bus, 1);
  assert_int_equal(sa.batches, 16);
  assert_int_equal(sa.rejected, rejected);
  assert_int_equal(ss.batches, b_batches);
  assert_int_equal(b_batches, 15);
  assert_int_equal(ss.handled, 1000 - rejected);
  assert_int_equal(ss.skipped, rejected);
  fe_bus_stats_t st = fe_t_stats(bus);
  assert_int_equal(st.rejected, rejected);
  assert_int_equal(st.completed, 1000 - rejected);
  fe_t_assert_clean(&errs);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
}

static void test_grouped_stages_batch_per_poll(void **state) {
  (void)state;
  /* Two stages on one worker: each poll runs at most one batch of each,
   * and each stage's calls in a poll end with exactly one end_of_batch. */
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  bw_t b[2];
  memset(b, 0, sizeof b);
  for (int i = 0; i < 2; i++) {
    b[i].errs = &errs;
    b[i].max_batch = 16;
  }
  fe_t_def_t d;
  fe_t_def_init(&d, 256);
  d.cfg.host_driven = 1;
  d.cfg.max_batch = 16;
  fe_t_add_stage(&d, "A", bw_handler, &b[0], 0);
  uint32_t s = fe_t_add_stage(&d, "B", bw_handler, &b[1], 0);
  fe_t_add_dep(&d, s, 0);
  fe_bus_t *bus = fe_t_create(&d);
  publish_plain(bus, 200);
  fe_t_start(bus);
  int polls = 0;
  while (b[1].handled < 200 && polls < 1000) {
    bw_poll_reset(&b[0]);
    bw_poll_reset(&b[1]);
    int rc = fe_bus_poll(bus, 0);
    polls++;
    assert_true(rc >= 0);
    for (int i = 0; i < 2; i++) {
      if (b[i].poll_calls > 16)
        fail_msg("stage %d ran %u events in one poll (max_batch 16)", i,
                 b[i].poll_calls);
      if (b[i].poll_calls && (b[i].poll_eobs != 1 || !b[i].poll_last_eob))
        fail_msg("stage %d: %u calls, %u end_of_batch, last %s", i,
                 b[i].poll_calls, b[i].poll_eobs,
                 b[i].poll_last_eob ? "flagged" : "not flagged");
    }
    /* "the number of sequences the worker's shards advanced": a sum over
     * the shards or the distinct sequences -- either way within these */
    uint32_t lo = b[0].poll_calls > b[1].poll_calls ? b[0].poll_calls
                                                    : b[1].poll_calls;
    assert_in_range((uint32_t)rc, lo, b[0].poll_calls + b[1].poll_calls);
  }
  assert_int_equal(b[0].handled, 200);
  assert_int_equal(b[1].handled, 200);
  assert_true(polls >= 200 / 16);
  fe_t_assert_clean(&errs);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest test_bus_batch[] = {
      FE_T_TEST(test_max_batch_respected_threaded),
      FE_T_TEST(test_max_batch_respected_with_rejects),
      FE_T_TEST(test_exact_batches_host_driven),
      FE_T_TEST(test_max_batch_one),
      FE_T_TEST(test_end_of_batch_on_last_delivered_event),
      FE_T_TEST(test_grouped_stages_batch_per_poll),
  };
  return cmocka_run_group_tests(test_bus_batch, NULL, NULL);
}
