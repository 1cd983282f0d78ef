/*
 * stress_bus (make stress): two producers (FE_PRODUCER_MULTI) and a four-stage order
 * cascade, validation -> compliance (2 shards on 2 workers) -> execution ->
 * settlement, FE_WAIT_YIELD, 7 threads on this 2-core machine.
 *
 * 10,000,000 events by default (env FE_STRESS_EVENTS overrides it for
 * quick local runs).  64 accounts; producer p owns the accounts with
 * account % 2 == p and writes a per-account counter in order.quantity.
 * Every stage (every shard of compliance) keeps per-account counters that
 * only it writes and checks each event's counter is exactly previous + 1:
 * every event is seen exactly once by every stage, in publish order per
 * account.  At the end every stage saw, per account, exactly the published
 * count.  Producers mix single claims and claim_n batches of 1..32.
 */
#include "helpers.h"

#define ACCOUNTS 64
#define PRODUCERS 2
#define DEFAULT_EVENTS UINT64_C(10000000)

enum { ST_VALIDATION, ST_COMPLIANCE, ST_EXECUTION, ST_SETTLEMENT, N_STAGES };

/* User-area words: stamps of the stages, so each stage also checks its
 * upstream wrote this event's slot (and TSan sees the hand-over). */
#define U_VALIDATED 0
#define U_COMPLIED 1
#define U_EXECUTED 2

/* What one stage shard owns; written only by its worker.  Aligned so two
 * shards never share a cache line. */
typedef struct shard_state {
  _Alignas(64) int64_t last[ACCOUNTS];
  uint64_t next_seq;
  uint64_t handled;
  uint64_t errors;
} shard_state_t;

typedef struct stress {
  fe_t_errs_t errs;
  shard_state_t validation;
  shard_state_t compliance[2];
  shard_state_t execution;
  shard_state_t settlement;
} stress_t;

typedef struct producer {
  fe_bus_t *bus;
  fe_t_errs_t *errs;
  uint32_t id;
  uint64_t quota;
  uint64_t counts[ACCOUNTS]; /* published per account (own accounts only) */
  uint64_t singles, batches;
} producer_t;

static inline uint64_t stamp(uint64_t seq, uint32_t what) {
  return (seq << 2) ^ what ^ UINT64_C(0xa5a5a5a5a5a5a5a5);
}

/* The common check: account in range, counter = previous + 1, sequences
 * increasing.  Returns the account or ACCOUNTS on error. */
static inline uint64_t check(stress_t *s, shard_state_t *st, const char *who,
                             fe_event_t *ev) {
  uint64_t acc = ev->order.account;
  if (ev->seq < st->next_seq) {
    st->errors++;
    fe_t_errf(&s->errs, "%s: seq %" PRIu64 " after %" PRIu64, who, ev->seq,
              st->next_seq);
  }
  st->next_seq = ev->seq + 1;
  if (acc >= ACCOUNTS) {
    st->errors++;
    fe_t_errf(&s->errs, "%s: account %" PRIu64 " out of range", who, acc);
    return ACCOUNTS;
  }
  if (ev->order.quantity != st->last[acc] + 1) {
    st->errors++;
    fe_t_errf(&s->errs, "%s: account %" PRIu64 ": counter %" PRId64
              " after %" PRId64 " (seq %" PRIu64 ")", who, acc,
              ev->order.quantity, st->last[acc], ev->seq);
  }
  st->last[acc] = ev->order.quantity;
  st->handled++;
  return acc;
}

static fe_verdict_t validation(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  stress_t *s = user;
  (void)ctx;
  check(s, &s->validation, "validation", ev);
  ((uint64_t *)fe_event_user(ev))[U_VALIDATED] = stamp(ev->seq, U_VALIDATED);
  return FE_CONTINUE;
}

static fe_verdict_t compliance(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  stress_t *s = user;
  if (ctx->shard > 1) {
    fe_t_errf(&s->errs, "compliance: shard %u", ctx->shard);
    return FE_CONTINUE;
  }
  shard_state_t *st = &s->compliance[ctx->shard];
  uint64_t *u = fe_event_user(ev);
  if (u[U_VALIDATED] != stamp(ev->seq, U_VALIDATED)) {
    st->errors++;
    fe_t_errf(&s->errs, "compliance: seq %" PRIu64 " not validated", ev->seq);
  }
  check(s, st, ctx->shard ? "compliance[1]" : "compliance[0]", ev);
  u[U_COMPLIED] = stamp(ev->seq, U_COMPLIED);
  return FE_CONTINUE;
}

static fe_verdict_t execution(fe_stage_ctx_t *ctx, fe_event_t *ev,
                              void *user) {
  stress_t *s = user;
  (void)ctx;
  uint64_t *u = fe_event_user(ev);
  if (u[U_COMPLIED] != stamp(ev->seq, U_COMPLIED)) {
    s->execution.errors++;
    fe_t_errf(&s->errs, "execution: seq %" PRIu64 " not through compliance",
              ev->seq);
  }
  check(s, &s->execution, "execution", ev);
  ev->order.notional = ev->order.quantity * 3;
  u[U_EXECUTED] = stamp(ev->seq, U_EXECUTED);
  return FE_CONTINUE;
}

static fe_verdict_t settlement(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  stress_t *s = user;
  (void)ctx;
  uint64_t *u = fe_event_user(ev);
  if (u[U_EXECUTED] != stamp(ev->seq, U_EXECUTED) ||
      ev->order.notional != ev->order.quantity * 3) {
    s->settlement.errors++;
    fe_t_errf(&s->errs, "settlement: seq %" PRIu64 " not executed", ev->seq);
  }
  check(s, &s->settlement, "settlement", ev);
  return FE_CONTINUE;
}

static inline void fill(producer_t *p, fe_t_rng_t *rng, fe_event_t *ev) {
  /* one of this producer's 32 accounts */
  uint64_t acc = 2 * (fe_t_rng_next(rng) % (ACCOUNTS / 2)) + p->id;
  ev->order.account = acc;
  ev->order.quantity = (int64_t)++p->counts[acc];
  ev->order.price = 100 * FE_PRICE_SCALE;
  ev->order.notional = 0;
  ev->trace_id = ev->seq;
}

static void *producer_main(void *arg) {
  producer_t *p = arg;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 0xfeed + p->id);
  uint64_t done = 0;
  while (done < p->quota) {
    uint64_t r = fe_t_rng_next(&rng);
    uint32_t k = 1 + (uint32_t)(r % 32);
    if (k > p->quota - done)
      k = (uint32_t)(p->quota - done);
    int rc;
    if ((r >> 32) % 4 == 0) { /* a single claim */
      fe_event_t *ev = NULL;
      rc = (r >> 40) & 1 ? fe_bus_claim(p->bus, &ev, FE_T_LONG_NS * 3)
                         : fe_bus_try_claim(p->bus, &ev);
      if (rc == FE_EFULL) {
        sched_yield();
        continue;
      }
      if (rc != 0)
        goto fail;
      fill(p, &rng, ev);
      rc = fe_bus_publish(p->bus, ev);
      if (rc != 0)
        goto fail;
      done++;
      p->singles++;
    } else {
      uint64_t first = 0;
      rc = fe_bus_claim_n(p->bus, k, &first, FE_T_LONG_NS * 3);
      if (rc != 0)
        goto fail;
      for (uint32_t i = 0; i < k; i++)
        fill(p, &rng, fe_bus_event_at(p->bus, first + i));
      rc = fe_bus_publish_n(p->bus, first, k);
      if (rc != 0)
        goto fail;
      done += k;
      p->batches++;
    }
    continue;
  fail:
    fe_t_errf(p->errs, "producer %u: %s after %" PRIu64 " events", p->id,
              fe_err_name(rc), done);
    return NULL;
  }
  return NULL;
}

static void test_stress_cascade(void **state) {
  (void)state;
  const uint64_t n = fe_t_env_u64("FE_STRESS_EVENTS", DEFAULT_EVENTS);
  stress_t *s = aligned_alloc(64, sizeof(stress_t));
  producer_t *prod = calloc(PRODUCERS, sizeof *prod);
  assert_true(s && prod);
  memset(s, 0, sizeof *s);

  fe_t_def_t d;
  fe_t_def_init(&d, 4096);
  d.cfg.producer = FE_PRODUCER_MULTI;
  d.cfg.wait = FE_WAIT_YIELD;
  d.cfg.max_batch = 256;
  fe_t_add_stage(&d, "validation", validation, s, 0);
  uint32_t c = fe_t_add_stage(&d, "compliance", compliance, s, 1);
  d.st[c].shards = 2;
  fe_t_add_dep(&d, c, ST_VALIDATION);
  uint32_t e = fe_t_add_stage(&d, "execution", execution, s, 3);
  fe_t_add_dep(&d, e, ST_COMPLIANCE);
  uint32_t t = fe_t_add_stage(&d, "settlement", settlement, s, 4);
  fe_t_add_dep(&d, t, ST_EXECUTION);
  fe_bus_t *bus = fe_t_create(&d);
  assert_int_equal(fe_bus_workers(bus), 5);
  assert_true(fe_bus_user_size(bus) >= 3 * sizeof(uint64_t));
  fe_t_start(bus);

  uint64_t t0 = fe_t_now_ns(), cpu0 = fe_t_cpu_ns();
  pthread_t th[PRODUCERS];
  for (uint32_t i = 0; i < PRODUCERS; i++) {
    prod[i].bus = bus;
    prod[i].errs = &s->errs;
    prod[i].id = i;
    prod[i].quota = n / PRODUCERS + (i == 0 ? n % PRODUCERS : 0);
    assert_int_equal(pthread_create(&th[i], NULL, producer_main, &prod[i]), 0);
  }
  for (uint32_t i = 0; i < PRODUCERS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  uint64_t t_pub = fe_t_now_ns();
  int drc = fe_bus_drain(bus, 10 * FE_T_LONG_NS);
  uint64_t t1 = fe_t_now_ns(), cpu1 = fe_t_cpu_ns();
  fe_bus_stats_t bs = fe_t_stats(bus);
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_assert_clean(&s->errs);
  assert_fe_ok(drc);

  double secs = (double)(t1 - t0) / 1e9;
  print_message("  %" PRIu64 " events: %.2f s (publish %.2f s), %.2f M "
                "events/s, CPU %.2f s; singles %" PRIu64 "+%" PRIu64
                ", batches %" PRIu64 "+%" PRIu64 "\n",
                n, secs, (double)(t_pub - t0) / 1e9, (double)n / secs / 1e6,
                (double)(cpu1 - cpu0) / 1e9, prod[0].singles, prod[1].singles,
                prod[0].batches, prod[1].batches);

  assert_int_equal(bs.published, n);
  assert_int_equal(bs.completed, n);
  assert_int_equal(bs.rejected, 0);
  assert_int_equal(s->validation.handled, n);
  assert_int_equal(s->compliance[0].handled + s->compliance[1].handled, n);
  assert_int_equal(s->execution.handled, n);
  assert_int_equal(s->settlement.handled, n);
  assert_true(s->compliance[0].handled > 0 && s->compliance[1].handled > 0);
  for (uint32_t acc = 0; acc < ACCOUNTS; acc++) {
    int64_t want = (int64_t)prod[acc % 2].counts[acc];
    assert_true(want > 0);
    if (s->validation.last[acc] != want || s->execution.last[acc] != want ||
        s->settlement.last[acc] != want)
      fail_msg("account %u: published %" PRId64 ", validation %" PRId64
               ", execution %" PRId64 ", settlement %" PRId64, acc, want,
               s->validation.last[acc], s->execution.last[acc],
               s->settlement.last[acc]);
    /* exactly one compliance shard owns the account */
    int64_t c0 = s->compliance[0].last[acc], c1 = s->compliance[1].last[acc];
    if (!((c0 == want && c1 == 0) || (c0 == 0 && c1 == want)))
      fail_msg("account %u: published %" PRId64 ", compliance shards saw %"
               PRId64 " and %" PRId64, acc, want, c0, c1);
  }
  fe_stage_stats_t cs = fe_t_stage_stats(bus, ST_COMPLIANCE);
  assert_int_equal(cs.handled, n);
  fe_bus_destroy(bus);
  free(prod);
  free(s);
}

int main(void) {
  const struct CMUnitTest stress_bus[] = {
      /* no watchdog: make stress bounds the run (STRESS_TIMEOUT) */
      cmocka_unit_test(test_stress_cascade),
  };
  return cmocka_run_group_tests(stress_bus, NULL, NULL);
}
