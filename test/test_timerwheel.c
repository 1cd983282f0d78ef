/* Timer wheel (lib/timerwheel.h, private): firing order, cancel, far
 * timers cascading through every level and beyond the wheel, no early
 * firing, firing within one tick after due, re-arm (also from the
 * callback), cancel from the callback, next_ns as a lower bound, and a
 * randomised comparison against a plain list of deadlines.  Pure
 * computation on a fake time line: nothing sleeps. */
#include "helpers.h"

#include "timerwheel.h"

#define TICK 1000u /* ns: one tick */
#define ORIGIN UINT64_C(5000000)

typedef struct tmr {
  fe__tw_node_t node; /* first: a node pointer is a tmr pointer */
  uint64_t due;       /* ns */
  uint64_t fired_at;  /* the advance's time; 0 never */
  int fired;          /* how many times */
  int id;
} tmr_t;

typedef struct log_ {
  fe__tw_t *tw;
  uint64_t now;           /* time given to the current advance */
  int order[4096];
  int n;
  uint64_t last_tick;     /* expiry tick of the previous fire */
  int out_of_order;
  /* callback actions */
  tmr_t *rearm;           /* re-armed by period when it fires */
  uint64_t period;
  tmr_t *pair[2];         /* either one, when it fires, cancels the other */
} log_t;

static uint64_t tick_of(uint64_t due) {
  return due <= ORIGIN ? 0 : (due - ORIGIN + TICK - 1) / TICK;
}

static void on_fire(fe__tw_node_t *n, void *user) {
  log_t *l = user;
  tmr_t *t = (tmr_t *)n;
  t->fired++;
  t->fired_at = l->now;
  if (l->n < 4096)
    l->order[l->n] = t->id;
  l->n++;
  if (n->expires < l->last_tick)
    l->out_of_order++;
  l->last_tick = n->expires;
  if (t == l->pair[0] || t == l->pair[1])
    fe__tw_cancel(l->tw, &l->pair[t == l->pair[0]]->node);
  if (t == l->rearm) {
    t->due += l->period;
    fe__tw_arm(l->tw, n, t->due);
  }
}

static uint64_t advance(fe__tw_t *tw, log_t *l, uint64_t now) {
  l->now = now;
  l->last_tick = 0;
  return fe__tw_advance(tw, now, on_fire, l);
}

static void setup(fe__tw_t *tw, log_t *l) {
  fe__tw_init(tw, TICK, ORIGIN);
  memset(l, 0, sizeof *l);
  l->tw = tw;
}

static void arm(fe__tw_t *tw, tmr_t *t, int id, uint64_t due) {
  memset(t, 0, sizeof *t);
  fe__tw_node_init(&t->node);
  t->id = id;
  t->due = due;
  fe__tw_arm(tw, &t->node, due);
}

/* ----------------------------------------------------------------- tests */

static void test_fires_in_order(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  tmr_t t[5];
  /* Armed out of order; dues in ticks 7, 3, 3 (same tick), 200, 1. */
  arm(&tw, &t[0], 0, ORIGIN + 7 * TICK);
  arm(&tw, &t[1], 1, ORIGIN + 3 * TICK - 10);
  arm(&tw, &t[2], 2, ORIGIN + 3 * TICK);
  arm(&tw, &t[3], 3, ORIGIN + 200 * TICK);
  arm(&tw, &t[4], 4, ORIGIN + 1);
  assert_int_equal(tw.count, 5);
  assert_true(fe__tw_valid(&tw));
  assert_int_equal(advance(&tw, &l, ORIGIN + 1000 * TICK), 5);
  assert_int_equal(l.out_of_order, 0);
  assert_int_equal(l.order[0], 4);
  assert_true((l.order[1] == 1 && l.order[2] == 2) ||
              (l.order[1] == 2 && l.order[2] == 1));
  assert_int_equal(l.order[3], 0);
  assert_int_equal(l.order[4], 3);
  assert_int_equal(tw.count, 0);
  assert_true(fe__tw_valid(&tw));
  /* Nothing fires twice. */
  assert_int_equal(advance(&tw, &l, ORIGIN + 5000 * TICK), 0);
}

static void test_no_early_firing_and_within_one_tick(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  /* On a tick boundary and between two. */
  uint64_t dues[4] = {ORIGIN + 10 * TICK, ORIGIN + 10 * TICK + 1,
                      ORIGIN + 700 * TICK + 999, ORIGIN + 70000 * TICK + 5};
  tmr_t t[4];
  for (int i = 0; i < 4; i++)
    arm(&tw, &t[i], i, dues[i]);
  /* Walk the clock 1/4 tick at a time: each fires at the first advance
   * whose time reaches its due, never before, and less than one tick
   * after it. */
  for (uint64_t now = ORIGIN; now <= dues[3] + 2 * TICK; now += TICK / 4) {
    advance(&tw, &l, now);
    for (int i = 0; i < 4; i++) {
      if (now < dues[i] && t[i].fired)
        fail_msg("timer %d (due %" PRIu64 ") fired early at %" PRIu64, i,
                 dues[i], now);
      if (now >= dues[i] + TICK && !t[i].fired)
        fail_msg("timer %d (due %" PRIu64 ") not fired at %" PRIu64, i,
                 dues[i], now);
    }
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(t[i].fired, 1);
    assert_true(t[i].fired_at >= dues[i]);
    assert_true(t[i].fired_at < dues[i] + TICK);
  }
}

static void test_exact_boundaries(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  tmr_t t;
  uint64_t due = ORIGIN + 12345 * TICK + 17;
  arm(&tw, &t, 0, due);
  /* The last instant before its tick's start, then the start itself. */
  uint64_t fire_time = ORIGIN + tick_of(due) * TICK;
  assert_int_equal(advance(&tw, &l, fire_time - 1), 0);
  assert_int_equal(advance(&tw, &l, fire_time), 1);
  assert_true(fire_time >= due && fire_time < due + TICK);
}

static void test_cancel(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  tmr_t t[6];
  uint64_t d[6] = {5, 300, 70000, 1u << 20, 1u << 26, UINT64_C(1) << 33};
  for (int i = 0; i < 6; i++)
    arm(&tw, &t[i], i, ORIGIN + d[i] * TICK);
  /* Cancel every other one, at each level; cancelling twice is harmless. */
  for (int i = 0; i < 6; i += 2) {
    fe__tw_cancel(&tw, &t[i].node);
    fe__tw_cancel(&tw, &t[i].node);
    assert_false(fe__tw_armed(&t[i].node));
  }
  assert_int_equal(tw.count, 3);
  assert_true(fe__tw_valid(&tw));
  /* Their slots' bits were cleared: nothing is due before timer 1. */
  assert_int_equal(fe__tw_next_ns(&tw) <= ORIGIN + 300 * TICK, 1);
  assert_int_equal(advance(&tw, &l, ORIGIN + (UINT64_C(1) << 34) * TICK), 3);
  for (int i = 0; i < 6; i++)
    assert_int_equal(t[i].fired, i % 2);
  /* Cancel after it fired: idle, no-op. */
  fe__tw_cancel(&tw, &t[1].node);
  assert_int_equal(tw.count, 0);
  assert_true(fe__tw_valid(&tw));
}

static void test_far_timers_cascade(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  /* One timer per level boundary, and beyond the wheel's 2^32 ticks. */
  uint64_t d[] = {255, 256, 257, 65535, 65536, 65537, (1u << 24) - 1,
                  1u << 24, (1u << 24) + 1, UINT64_C(0xFFFFFFFF),
                  UINT64_C(1) << 32, (UINT64_C(1) << 32) + 3,
                  (UINT64_C(1) << 36) + 12345};
  enum { N = sizeof d / sizeof d[0] };
  tmr_t t[N];
  for (int i = 0; i < N; i++)
    arm(&tw, &t[i], i, ORIGIN + d[i] * TICK);
  assert_true(fe__tw_valid(&tw));
  /* Jump to one tick before each due, then onto it: each fires exactly at
   * its tick, after cascading down however many levels. */
  for (int i = 0; i < N; i++) {
    uint64_t before = advance(&tw, &l, ORIGIN + (d[i] - 1) * TICK);
    assert_int_equal(before, 0);
    assert_int_equal(t[i].fired, 0);
    assert_true(fe__tw_valid(&tw));
    assert_int_equal(advance(&tw, &l, ORIGIN + d[i] * TICK), 1);
    assert_int_equal(t[i].fired, 1);
  }
  assert_int_equal(tw.count, 0);
}

static void test_far_timers_small_steps(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  /* Advancing one tick at a time through several level-1 and a level-2
   * boundary gives the same answer as jumping. */
  tmr_t t[3];
  uint64_t d[3] = {300, 66000, 131071};
  for (int i = 0; i < 3; i++)
    arm(&tw, &t[i], i, ORIGIN + d[i] * TICK);
  for (uint64_t k = 1; k <= 131072; k++) {
    advance(&tw, &l, ORIGIN + k * TICK);
    for (int i = 0; i < 3; i++)
      if (t[i].fired != (k >= d[i]))
        fail_msg("tick %" PRIu64 ": timer %d (tick %" PRIu64 ") fired=%d", k,
                 i, d[i], t[i].fired);
  }
  assert_true(fe__tw_valid(&tw));
}

static void test_rearm(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  tmr_t t;
  arm(&tw, &t, 0, ORIGIN + 100 * TICK);
  /* Re-arm an armed timer: earlier, then later; it fires once, at the
   * last due. */
  fe__tw_arm(&tw, &t.node, ORIGIN + 50 * TICK);
  fe__tw_arm(&tw, &t.node, ORIGIN + 70000 * TICK);
  assert_int_equal(tw.count, 1);
  assert_true(fe__tw_valid(&tw));
  assert_int_equal(advance(&tw, &l, ORIGIN + 69999 * TICK), 0);
  assert_int_equal(advance(&tw, &l, ORIGIN + 70000 * TICK), 1);
  /* Periodic: re-armed from its own callback, one period later. */
  t.due = ORIGIN + 70010 * TICK;
  fe__tw_arm(&tw, &t.node, t.due);
  l.rearm = &t;
  l.period = 10 * TICK;
  t.fired = 0;
  /* 70010, 70020, ..., 71000: 100 firings in one advance, in order. */
  assert_int_equal(advance(&tw, &l, ORIGIN + 71000 * TICK), 100);
  assert_int_equal(t.fired, 100);
  assert_true(fe__tw_armed(&t.node));
  assert_int_equal(t.due, ORIGIN + 71010 * TICK);
  l.rearm = NULL;
  assert_int_equal(advance(&tw, &l, ORIGIN + 71010 * TICK), 1);
  assert_false(fe__tw_armed(&t.node));
  assert_true(fe__tw_valid(&tw));
}

static void test_cancel_from_callback(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  /* Two timers in the same tick: the first to fire cancels the other,
   * which then does not fire. */
  tmr_t a, b;
  arm(&tw, &a, 0, ORIGIN + 5 * TICK);
  arm(&tw, &b, 1, ORIGIN + 5 * TICK);
  l.pair[0] = &a;
  l.pair[1] = &b;
  assert_int_equal(advance(&tw, &l, ORIGIN + 5 * TICK), 1);
  assert_int_equal(a.fired + b.fired, 1);
  assert_int_equal(tw.count, 0);
  assert_true(fe__tw_valid(&tw));
}

static void test_past_and_backwards(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  advance(&tw, &l, ORIGIN + 1000 * TICK);
  tmr_t t[2];
  /* Due in the past (and before the origin): fire at the next advance,
   * even one to the same time. */
  arm(&tw, &t[0], 0, ORIGIN + 10 * TICK);
  arm(&tw, &t[1], 1, 1);
  assert_int_equal(fe__tw_next_ns(&tw), ORIGIN + 1000 * TICK);
  assert_int_equal(advance(&tw, &l, ORIGIN + 1000 * TICK), 2);
  /* Time going backwards is taken as standing still. */
  tmr_t u;
  arm(&tw, &u, 2, ORIGIN + 1001 * TICK);
  assert_int_equal(advance(&tw, &l, ORIGIN), 0);
  assert_int_equal(advance(&tw, &l, ORIGIN + 1001 * TICK), 1);
}

static void test_next_ns(void **state) {
  (void)state;
  static fe__tw_t tw;
  log_t l;
  setup(&tw, &l);
  assert_int_equal(fe__tw_next_ns(&tw), UINT64_MAX);
  tmr_t a, b;
  /* Level 0: exact. */
  arm(&tw, &a, 0, ORIGIN + 40 * TICK);
  assert_int_equal(fe__tw_next_ns(&tw), ORIGIN + 40 * TICK);
  fe__tw_cancel(&tw, &a.node);
  /* Higher level: a lower bound (the start of its block), and stepping
   * from next_ns to next_ns reaches it without ever passing it. */
  arm(&tw, &b, 1, ORIGIN + 5000000 * TICK + 77);
  int steps = 0;
  while (!b.fired) {
    uint64_t n = fe__tw_next_ns(&tw);
    assert_true(n <= b.due + TICK);
    advance(&tw, &l, n);
    assert_true(++steps < 10);
  }
  assert_true(b.fired_at >= b.due && b.fired_at < b.due + TICK);
  assert_int_equal(fe__tw_next_ns(&tw), UINT64_MAX);
}

/* Random arms, re-arms, cancels and advances of every magnitude, checked
 * against the definition: after an advance to `now`, exactly the timers
 * whose expiry tick is <= now's tick have fired, once. */
static void test_random_model(void **state) {
  (void)state;
  enum { N = 2000 };
  static fe__tw_t tw;
  static tmr_t t[N];
  static int armed[N];
  log_t l;
  setup(&tw, &l);
  fe_t_rng_t r;
  fe_t_rng_seed(&r, 42);
  for (int i = 0; i < N; i++) {
    memset(&t[i], 0, sizeof t[i]);
    fe__tw_node_init(&t[i].node);
    t[i].id = i;
  }
  uint64_t now = ORIGIN;
  static const uint64_t scale[] = {1, 100, 10000, 1000000, 100000000,
                                   UINT64_C(10000000000)};
  for (int round = 0; round < 3000; round++) {
    for (int k = 0; k < 8; k++) {
      int i = (int)(fe_t_rng_next(&r) % N);
      uint32_t op = (uint32_t)(fe_t_rng_next(&r) % 10);
      if (op < 7) {
        uint64_t s = scale[fe_t_rng_next(&r) % 6];
        uint64_t due = now + fe_t_rng_next(&r) % (s * TICK);
        if (op == 0 && now > ORIGIN + TICK)
          due = now - TICK; /* the past */
        t[i].due = due;
        t[i].fired = 0;
        fe__tw_arm(&tw, &t[i].node, due);
        armed[i] = 1;
      } else {
        fe__tw_cancel(&tw, &t[i].node);
        armed[i] = 0;
      }
    }
    now += fe_t_rng_next(&r) % (scale[fe_t_rng_next(&r) % 5] * TICK);
    advance(&tw, &l, now);
    if (l.out_of_order)
      fail_msg("round %d: fired out of expiry order", round);
    uint64_t now_tick = (now - ORIGIN) / TICK;
    for (int i = 0; i < N; i++) {
      if (!armed[i])
        continue;
      int due = tick_of(t[i].due) <= now_tick;
      if (t[i].fired != due)
        fail_msg("round %d: timer %d due %" PRIu64 " (tick %" PRIu64
                 ") at tick %" PRIu64 ": fired %d times", round, i, t[i].due,
                 tick_of(t[i].due), now_tick, t[i].fired);
      if (due)
        armed[i] = 0;
    }
    if (round % 100 == 0 && !fe__tw_valid(&tw))
      fail_msg("round %d: invariants broken", round);
  }
  assert_true(fe__tw_valid(&tw));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_fires_in_order),
      FE_T_TEST(test_no_early_firing_and_within_one_tick),
      FE_T_TEST(test_exact_boundaries),
      FE_T_TEST(test_cancel),
      FE_T_TEST(test_far_timers_cascade),
      FE_T_TEST(test_far_timers_small_steps),
      FE_T_TEST(test_rearm),
      FE_T_TEST(test_cancel_from_callback),
      FE_T_TEST(test_past_and_backwards),
      FE_T_TEST(test_next_ns),
      FE_T_TEST(test_random_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
