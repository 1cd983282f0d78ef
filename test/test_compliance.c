/*
 * test_compliance: the pre-trade rule kit (include/finevent/compliance.h).
 *
 *   every numeric rule in every mode at limit-1, limit, limit+1
 *     (test_boundaries: max_qty, max_notional, credit, firm credit,
 *     max_position, collar, max_open, duplicate window, throttle);
 *   the throttle's buckets across rule changes (test_throttle_changes);
 *   the list and state rules in every mode (test_lists_and_state);
 *   self-match under each policy and mode (test_self_match);
 *   market orders and the collar (test_market_orders);
 *   account overrides and symbol tightening (test_overrides);
 *   reservations released by cancel and fills, positions (test_lifecycle);
 *   concurrent reservations never pass the limits (test_mt_credit);
 *   live changes under load never show a half-applied set
 *     (test_mt_live_changes), counted and reported (test_changes_reported);
 *   fingerprints: order-independent, stable (golden), changed by every
 *     effective change (test_fingerprint), pinning (test_pin);
 *   the stages on a bus (test_bus_stages), the order stage sharded over
 *   two workers (test_bus_sharded); the firm's total reserved through a
 *   batch's lease: exact at the limit in one batch (test_bus_batch_credit),
 *   never past it with two shards at once (test_bus_sharded_firm);
 *   NULL and garbage on every public call (test_null_and_garbage).
 */
#include "helpers.h"

/* ----------------------------------------------------------- the rig */

static uint64_t fake_now = 1000000000;
static uint64_t fake_clock(void *u) {
  (void)u;
  return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

typedef struct evlog {
  int n;
  int kinds[8];
  fe_compliance_event_t last;
  fe_compliance_event_t last_of[8];
} evlog_t;

static void on_event(const fe_compliance_event_t *e, void *user) {
  evlog_t *l = user;
  l->n++;
  l->kinds[e->kind]++;
  l->last = *e;
  l->last_of[e->kind] = *e;
}

static fe_compliance_rules_t *rules(void) {
  fe_compliance_rules_t *r;
  assert_int_equal(fe_compliance_rules_create(&r), 0);
  return r;
}

static fe_compliance_t *mk_with(fe_compliance_rules_t *r, evlog_t *log,
                                fe_trading_t *trading) {
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  cfg.max_accounts = 1024;
  cfg.max_symbols = 64;
  cfg.max_cells = 1024;
  cfg.max_orders = 1024;
  cfg.now_ns = fake_clock;
  cfg.trading = trading;
  if (log != NULL) {
    memset(log, 0, sizeof *log);
    cfg.on_event = on_event;
    cfg.event_user = log;
  }
  fe_compliance_t *c = NULL;
  fe_diag_t d;
  int rc = fe_compliance_create(&cfg, r, &c, &d);
  if (rc != 0)
    fail_msg("create: %s", d.msg);
  return c;
}

static fe_compliance_t *mk(fe_compliance_rules_t *r, evlog_t *log) {
  return mk_with(r, log, NULL);
}

#define PX(x) ((int64_t)((x) * FE_PRICE_SCALE))

static fe_event_t order(uint64_t account, const char *sym, int side,
                        int64_t qty, int64_t price, const char *id) {
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = FE_EV_NEW_ORDER;
  ev.order.account = account;
  ev.order.side = (uint8_t)side;
  ev.order.type = price > 0 ? FE_ORD_LIMIT : FE_ORD_MARKET;
  ev.order.tif = FE_TIF_DAY;
  ev.order.quantity = qty;
  ev.order.price = price;
  memcpy(ev.order.symbol, sym, strnlen(sym, FE_SYMBOL_MAX));
  memcpy(ev.order.client_order_id, id, strnlen(id, FE_CLORDID_MAX));
  return ev;
}

static int seq_id;
static const char *next_id(void) {
  static char buf[32];
  snprintf(buf, sizeof buf, "ID%d", ++seq_id);
  return buf;
}

static int check(fe_compliance_t *c, fe_event_t *ev,
                 fe_compliance_result_t *res) {
  return fe_compliance_check(c, 0, ev, res);
}

/* ------------------------------------------------------- boundaries */

/* One numeric rule: setup sets its limit; probe makes the checked value
 * limit + delta (delta -1, 0, +1) and returns the last order's verdict,
 * leaving the order in *ev; amend_ok says what CORRECTIVE must leave. */
typedef struct rule_case {
  const char *name;
  int rule;
  uint32_t reason;
  int amendable;
  void (*setup)(fe_compliance_rules_t *r);
  int (*probe)(fe_compliance_t *c, int delta, fe_event_t *ev,
               fe_compliance_result_t *res);
  void (*amend_ok)(const fe_event_t *ev);
} rule_case_t;

/* max_qty 100 */
static void su_qty(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 100), 0);
}
static int pr_qty(fe_compliance_t *c, int d, fe_event_t *ev,
                  fe_compliance_result_t *res) {
  *ev = order(1, "AAA", FE_SIDE_BUY, 100 + d, PX(1), next_id());
  return check(c, ev, res);
}
static void am_qty(const fe_event_t *ev) {
  assert_int_equal(ev->order.quantity, 100);
}

/* max_notional 1000.00, at 1.00 */
static void su_notional(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_NOTIONAL, PX(1000)),
                   0);
}
static int pr_notional(fe_compliance_t *c, int d, fe_event_t *ev,
                       fe_compliance_result_t *res) {
  *ev = order(1, "AAA", FE_SIDE_BUY, 1000 + d, PX(1), next_id());
  return check(c, ev, res);
}
static void am_1000(const fe_event_t *ev) {
  assert_int_equal(ev->order.quantity, 1000);
}

/* credit 1000.00 for the account: 400 reserved first, then 600 + d */
static void su_credit(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_CREDIT, PX(1000)), 0);
}
static int pr_credit(fe_compliance_t *c, int d, fe_event_t *ev,
                     fe_compliance_result_t *res) {
  fe_event_t first = order(1, "AAA", FE_SIDE_BUY, 400, PX(1), next_id());
  assert_int_equal(check(c, &first, NULL), FE_CONTINUE);
  *ev = order(1, "BBB", FE_SIDE_BUY, 600 + d, PX(1), next_id());
  return check(c, ev, res);
}
static void am_credit(const fe_event_t *ev) {
  assert_int_equal(ev->order.quantity, 600);
}

/* firm credit 1000.00: account 1 takes 400, account 2 asks 600 + d */
static void su_firm(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_FIRM_CREDIT, PX(1000)),
                   0);
}
static int pr_firm(fe_compliance_t *c, int d, fe_event_t *ev,
                   fe_compliance_result_t *res) {
  fe_event_t first = order(1, "AAA", FE_SIDE_BUY, 400, PX(1), next_id());
  assert_int_equal(check(c, &first, NULL), FE_CONTINUE);
  *ev = order(2, "AAA", FE_SIDE_BUY, 600 + d, PX(1), next_id());
  return check(c, ev, res);
}

/* max_position 100: a fill of 30 and an open buy of 20, then 50 + d */
static void su_pos(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_POSITION, 100), 0);
}
static int pr_pos(fe_compliance_t *c, int d, fe_event_t *ev,
                  fe_compliance_result_t *res) {
  fe_event_t a = order(1, "AAA", FE_SIDE_BUY, 30, PX(1), "filled");
  assert_int_equal(check(c, &a, NULL), FE_CONTINUE);
  assert_int_equal(fe_compliance_fill(c, 1, "AAA", "filled", 30), 0);
  fe_event_t b = order(1, "AAA", FE_SIDE_BUY, 20, PX(1), "open");
  assert_int_equal(check(c, &b, NULL), FE_CONTINUE);
  *ev = order(1, "AAA", FE_SIDE_BUY, 50 + d, PX(1), next_id());
  return check(c, ev, res);
}
static void am_pos(const fe_event_t *ev) {
  assert_int_equal(ev->order.quantity, 50);
}

/* collar: reference 100.00, 5 % -> band 95..105; a buy at 105 + d units */
static void su_collar(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 500),
                   0);
}
static int pr_collar(fe_compliance_t *c, int d, fe_event_t *ev,
                     fe_compliance_result_t *res) {
  assert_int_equal(fe_compliance_set_reference(c, "AAA", PX(100)), 0);
  *ev = order(1, "AAA", FE_SIDE_BUY, 10, PX(105) + d, next_id());
  return check(c, ev, res);
}
static void am_collar(const fe_event_t *ev) {
  assert_int_equal(ev->order.price, PX(105));
}

/* max_open 3: the (3 + d)-th open order */
static void su_open(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_OPEN, 3), 0);
}
static int pr_open(fe_compliance_t *c, int d, fe_event_t *ev,
                   fe_compliance_result_t *res) {
  for (int i = 0; i < 2 + d; i++) {
    fe_event_t e = order(1, "AAA", FE_SIDE_BUY, 1, PX(1) + i, next_id());
    assert_int_equal(check(c, &e, NULL), FE_CONTINUE);
  }
  *ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(2), next_id());
  return check(c, ev, res);
}

/* duplicate window 1000 ns: the same order again after 1000 - d ns */
static void su_dup(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_DUP_WINDOW_NS, 1000),
                   0);
}
static int pr_dup(fe_compliance_t *c, int d, fe_event_t *ev,
                  fe_compliance_result_t *res) {
  fe_event_t e = order(1, "AAA", FE_SIDE_BUY, 10, PX(1), next_id());
  assert_int_equal(check(c, &e, NULL), FE_CONTINUE);
  fake_now += (uint64_t)(1000 - d);
  *ev = order(1, "AAA", FE_SIDE_BUY, 10, PX(1), next_id());
  return check(c, ev, res);
}

/* throttle: rate 1/s, burst 3: the (3 + d)-th order at one instant */
static void su_thr(fe_compliance_rules_t *r) {
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 1), 0);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_BURST, 3), 0);
}
static int pr_thr(fe_compliance_t *c, int d, fe_event_t *ev,
                  fe_compliance_result_t *res) {
  for (int i = 0; i < 2 + d; i++) {
    fe_event_t e = order(1, "AAA", FE_SIDE_BUY, 1, PX(1) + i, next_id());
    assert_int_equal(check(c, &e, NULL), FE_CONTINUE);
  }
  *ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(2), next_id());
  return check(c, ev, res);
}

static const rule_case_t cases[] = {
    {"max_qty", FE_RULE_MAX_QTY, FE_CR_MAX_QTY, 1, su_qty, pr_qty, am_qty},
    {"max_notional", FE_RULE_MAX_NOTIONAL, FE_CR_MAX_NOTIONAL, 1, su_notional,
     pr_notional, am_1000},
    {"credit", FE_RULE_CREDIT, FE_CR_CREDIT, 1, su_credit, pr_credit,
     am_credit},
    {"firm_credit", FE_RULE_CREDIT, FE_CR_FIRM_CREDIT, 1, su_firm, pr_firm,
     am_credit},
    {"max_position", FE_RULE_MAX_POSITION, FE_CR_MAX_POSITION, 1, su_pos,
     pr_pos, am_pos},
    {"collar", FE_RULE_COLLAR, FE_CR_COLLAR, 1, su_collar, pr_collar,
     am_collar},
    {"max_open", FE_RULE_MAX_OPEN, FE_CR_MAX_OPEN, 0, su_open, pr_open, NULL},
    {"duplicate", FE_RULE_DUPLICATE, FE_CR_DUPLICATE, 0, su_dup, pr_dup, NULL},
    {"throttle", FE_RULE_THROTTLE, FE_CR_THROTTLED, 0, su_thr, pr_thr, NULL},
};

static void test_boundaries(void **state) {
  (void)state;
  const int modes[] = {FE_MODE_OFF, FE_MODE_PREVENTIVE, FE_MODE_DETECTIVE,
                       FE_MODE_CORRECTIVE};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const rule_case_t *rc = &cases[k];
    for (int mi = 0; mi < 4; mi++) {
      for (int d = -1; d <= 1; d++) {
        fe_compliance_rules_t *r = rules();
        rc->setup(r);
        assert_int_equal(fe_compliance_rules_mode(r, rc->rule, modes[mi]), 0);
        evlog_t log;
        fe_compliance_t *c = mk(r, &log);
        fe_event_t ev;
        fe_compliance_result_t res;
        int v = rc->probe(c, d, &ev, &res);
        fe_compliance_stats_t st;
        assert_int_equal(fe_compliance_stats(c, &st), 0);
        const char *what = rc->name;
        if (d <= 0 || modes[mi] == FE_MODE_OFF) {
          if (v != FE_CONTINUE || res.flags || res.amended)
            fail_msg("%s mode %d delta %d: verdict %d reason %u", what,
                     modes[mi], d, v, res.reason);
          assert_int_equal(log.kinds[FE_COMPLIANCE_FLAG], 0);
        } else if (modes[mi] == FE_MODE_PREVENTIVE ||
                   (modes[mi] == FE_MODE_CORRECTIVE && !rc->amendable)) {
          if (v != FE_REJECT || res.reason != rc->reason ||
              res.rule != rc->rule)
            fail_msg("%s mode %d: verdict %d reason %u", what, modes[mi], v,
                     res.reason);
          assert_int_equal(st.rejected[rc->rule], 1);
        } else if (modes[mi] == FE_MODE_DETECTIVE) {
          if (v != FE_CONTINUE || !(res.flags & (1u << rc->rule)))
            fail_msg("%s detective: verdict %d flags %x", what, v, res.flags);
          assert_int_equal(log.kinds[FE_COMPLIANCE_FLAG], 1);
          assert_int_equal(log.last_of[FE_COMPLIANCE_FLAG].rule, rc->rule);
          assert_int_equal(log.last_of[FE_COMPLIANCE_FLAG].reason, rc->reason);
          assert_int_equal(log.last_of[FE_COMPLIANCE_FLAG].mode,
                           FE_MODE_DETECTIVE);
          assert_int_equal(st.flagged[rc->rule], 1);
        } else {
          if (v != FE_CONTINUE || !(res.amended & (1u << rc->rule)))
            fail_msg("%s corrective: verdict %d amended %x reason %u", what,
                     v, res.amended, res.reason);
          rc->amend_ok(&ev);
          assert_int_equal(log.kinds[FE_COMPLIANCE_AMEND], 1);
          const fe_compliance_event_t *a = &log.last_of[FE_COMPLIANCE_AMEND];
          assert_int_equal(a->rule, rc->rule);
          assert_int_equal(a->qty_after, ev.order.quantity);
          assert_int_equal(a->price_after, ev.order.price);
          assert_true(a->qty_before != a->qty_after ||
                      a->price_before != a->price_after);
          assert_int_equal(st.amended[rc->rule], 1);
        }
        /* Preventive and corrective credit never pass the limit. */
        if (rc->rule == FE_RULE_CREDIT && modes[mi] != FE_MODE_DETECTIVE &&
            modes[mi] != FE_MODE_OFF)
          assert_true(fe_compliance_reserved(c, NULL) <= PX(1000));
        fe_compliance_destroy(c);
        fe_compliance_rules_destroy(r);
      }
    }
  }
}

/* ------------------------------------------- lists, state, self-match */

static void expect_mode(int mode, int v, const fe_compliance_result_t *res,
                        int rule, uint32_t reason, const evlog_t *log) {
  switch (mode) {
  case FE_MODE_OFF:
    assert_int_equal(v, FE_CONTINUE);
    assert_int_equal(res->flags, 0);
    break;
  case FE_MODE_DETECTIVE:
    assert_int_equal(v, FE_CONTINUE);
    assert_true(res->flags & (1u << rule));
    assert_int_equal(log->last_of[FE_COMPLIANCE_FLAG].reason, reason);
    break;
  default: /* preventive; corrective cannot amend these */
    assert_int_equal(v, FE_REJECT);
    assert_int_equal(res->reason, reason);
    assert_int_equal(res->rule, rule);
    break;
  }
}

static void test_lists_and_state(void **state) {
  (void)state;
  for (int mode = FE_MODE_OFF; mode <= FE_MODE_CORRECTIVE; mode++) {
    evlog_t log;
    fe_compliance_result_t res;
    /* authorized: account 1 only */
    fe_compliance_rules_t *r = rules();
    assert_int_equal(fe_compliance_rules_authorize(r, 1), 0);
    assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_AUTHORIZED, mode), 0);
    fe_compliance_t *c = mk(r, &log);
    fe_event_t ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
    ev = order(2, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    expect_mode(mode, check(c, &ev, &res), &res, FE_RULE_AUTHORIZED,
                FE_CR_UNAUTHORIZED, &log);
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);

    /* restricted: BAD */
    r = rules();
    assert_int_equal(fe_compliance_rules_restrict(r, "BAD"), 0);
    assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_RESTRICTED, mode), 0);
    c = mk(r, &log);
    ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
    ev = order(1, "BAD", FE_SIDE_BUY, 1, PX(1), next_id());
    expect_mode(mode, check(c, &ev, &res), &res, FE_RULE_RESTRICTED,
                FE_CR_RESTRICTED, &log);
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);

    /* trading state: account 7 halted, account 8 reduce-only */
    fe_trading_config_t tc;
    fe_trading_config_init(&tc);
    fe_trading_t *t;
    assert_int_equal(fe_trading_create(&tc, &t, NULL), 0);
    assert_int_equal(fe_trading_set_account(t, 7, FE_TRADING_HALTED, "x"), 0);
    assert_int_equal(fe_trading_set_account(t, 8, FE_TRADING_REDUCING, "y"), 0);
    r = rules();
    assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_TRADING_STATE, mode),
                     0);
    c = mk_with(r, &log, t);
    ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
    ev = order(7, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    expect_mode(mode, check(c, &ev, &res), &res, FE_RULE_TRADING_STATE,
                FE_CR_HALTED, &log);
    ev = order(8, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
    expect_mode(mode, check(c, &ev, &res), &res, FE_RULE_TRADING_STATE,
                FE_CR_REDUCE_ONLY, &log);
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);
    fe_trading_destroy(t);
  }
}

static void test_self_match(void **state) {
  (void)state;
  const int policies[] = {FE_SMP_CANCEL_NEWEST, FE_SMP_CANCEL_OLDEST,
                          FE_SMP_CANCEL_BOTH};
  for (int pi = 0; pi < 3; pi++) {
    for (int mode = FE_MODE_OFF; mode <= FE_MODE_CORRECTIVE; mode++) {
      for (int d = -1; d <= 1; d++) {
        fe_compliance_rules_t *r = rules();
        assert_int_equal(fe_compliance_rules_smp(r, policies[pi]), 0);
        assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_SELF_MATCH, mode),
                         0);
        evlog_t log;
        fe_compliance_t *c = mk(r, &log);
        fe_compliance_result_t res;
        /* two resting sells at 100 (older) and 101 */
        fe_event_t s1 = order(1, "AAA", FE_SIDE_SELL, 5, PX(100), "sell-old");
        fe_event_t s2 = order(1, "AAA", FE_SIDE_SELL, 5, PX(101), "sell-new");
        assert_int_equal(check(c, &s1, NULL), FE_CONTINUE);
        assert_int_equal(check(c, &s2, NULL), FE_CONTINUE);
        /* another account's buy never self-matches */
        fe_event_t other = order(2, "AAA", FE_SIDE_BUY, 1, PX(200), "o");
        assert_int_equal(check(c, &other, NULL), FE_CONTINUE);
        /* a buy at 100 - 1 unit, 100, 100 + 1 unit */
        fe_event_t b = order(1, "AAA", FE_SIDE_BUY, 1, PX(100) - 1 + (d + 1),
                             next_id());
        int v = check(c, &b, &res);
        int crosses = d >= 0;
        if (!crosses || mode == FE_MODE_OFF) {
          assert_int_equal(v, FE_CONTINUE);
          assert_int_equal(log.kinds[FE_COMPLIANCE_SMP_CANCEL], 0);
          assert_int_equal(res.flags, 0);
        } else if (mode == FE_MODE_DETECTIVE) {
          assert_int_equal(v, FE_CONTINUE);
          assert_true(res.flags & (1u << FE_RULE_SELF_MATCH));
          assert_int_equal(log.kinds[FE_COMPLIANCE_SMP_CANCEL], 0);
        } else {
          int reject = policies[pi] != FE_SMP_CANCEL_OLDEST;
          assert_int_equal(v, reject ? FE_REJECT : FE_CONTINUE);
          if (reject)
            assert_int_equal(res.reason, FE_CR_SELF_MATCH);
          int report = policies[pi] != FE_SMP_CANCEL_NEWEST;
          assert_int_equal(log.kinds[FE_COMPLIANCE_SMP_CANCEL], report);
          if (report)
            assert_string_equal(
                log.last_of[FE_COMPLIANCE_SMP_CANCEL].resting_client_order_id,
                "sell-old");
        }
        fe_compliance_destroy(c);
        fe_compliance_rules_destroy(r);
      }
    }
  }
}

static void test_market_orders(void **state) {
  (void)state;
  for (int mode = FE_MODE_OFF; mode <= FE_MODE_CORRECTIVE; mode++) {
    fe_compliance_rules_t *r = rules();
    assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 500),
                     0);
    /* an absolute tier for prices from 1000 on */
    assert_int_equal(fe_compliance_rules_collar(r, NULL, PX(1000),
                                                FE_COLLAR_ABSOLUTE, PX(2)),
                     0);
    assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_COLLAR, mode), 0);
    evlog_t log;
    fe_compliance_t *c = mk(r, &log);
    fe_compliance_result_t res;
    fe_event_t m = order(1, "AAA", FE_SIDE_BUY, 10, 0, next_id());
    int v = check(c, &m, &res);
    if (mode == FE_MODE_OFF || mode == FE_MODE_DETECTIVE)
      assert_int_equal(v, FE_CONTINUE);
    else
      assert_int_equal(res.reason, FE_CR_NO_REFERENCE);
    assert_int_equal(fe_compliance_set_reference(c, "AAA", PX(100)), 0);
    /* (another account: account 1's market buy may rest, and would
     * self-match) */
    m = order(2, "AAA", FE_SIDE_SELL, 10, 0, next_id());
    v = check(c, &m, &res);
    assert_int_equal(v, FE_CONTINUE);
    if (mode == FE_MODE_CORRECTIVE) {
      assert_int_equal(m.order.type, FE_ORD_LIMIT);
      assert_int_equal(m.order.price, PX(95)); /* a sell's edge */
      assert_int_equal(log.last_of[FE_COMPLIANCE_AMEND].type_before,
                       FE_ORD_MARKET);
    } else {
      assert_int_equal(m.order.type, FE_ORD_MARKET);
    }
    /* The absolute tier: reference 2000, band +/- 2.00. */
    assert_int_equal(fe_compliance_set_reference(c, "BBB", PX(2000)), 0);
    fe_event_t l = order(1, "BBB", FE_SIDE_BUY, 1, PX(2002), next_id());
    assert_int_equal(check(c, &l, &res), FE_CONTINUE);
    l = order(1, "BBB", FE_SIDE_BUY, 1, PX(2002) + 1, next_id());
    v = check(c, &l, &res);
    if (mode == FE_MODE_PREVENTIVE)
      assert_int_equal(res.reason, FE_CR_COLLAR);
    else
      assert_int_equal(v, FE_CONTINUE);
    l = order(1, "BBB", FE_SIDE_SELL, 1, PX(1998) - 1, next_id());
    v = check(c, &l, &res);
    if (mode == FE_MODE_CORRECTIVE)
      assert_int_equal(l.order.price, PX(1998));
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);
  }
}

static void test_overrides(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 100), 0);
  assert_int_equal(fe_compliance_rules_account_limit(r, 5, FE_LIMIT_MAX_QTY,
                                                     1000), 0);
  assert_int_equal(fe_compliance_rules_symbol_limit(r, "TIGHT",
                                                    FE_LIMIT_MAX_QTY, 50), 0);
  fe_compliance_t *c = mk(r, NULL);
  fe_compliance_result_t res;
  struct { uint64_t acct; const char *sym; int64_t ok, bad; } t[] = {
      {1, "AAA", 100, 101}, {5, "AAA", 1000, 1001},
      {1, "TIGHT", 50, 51}, {5, "TIGHT", 50, 51}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    fe_event_t ev = order(t[i].acct, t[i].sym, FE_SIDE_BUY, t[i].ok, PX(1),
                          next_id());
    assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
    ev = order(t[i].acct, t[i].sym, FE_SIDE_BUY, t[i].bad, PX(1), next_id());
    assert_int_equal(check(c, &ev, &res), FE_REJECT);
    assert_int_equal(res.reason, FE_CR_MAX_QTY);
  }
  /* symbol collar tiers replace the default tiers */
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 100),
                   0);
  assert_int_equal(fe_compliance_rules_collar(r, "WIDE", 0, FE_COLLAR_BPS,
                                              2000), 0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  assert_int_equal(fe_compliance_set_reference(c, "WIDE", PX(100)), 0);
  assert_int_equal(fe_compliance_set_reference(c, "AAA", PX(100)), 0);
  fe_event_t ev = order(1, "WIDE", FE_SIDE_BUY, 1, PX(115), next_id());
  assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
  ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(115), next_id());
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_COLLAR);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

static void test_lifecycle(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_CREDIT, PX(1000)), 0);
  fe_compliance_t *c = mk(r, NULL);
  uint64_t a = 1;
  fe_event_t ev = order(a, "AAA", FE_SIDE_BUY, 600, PX(1), "o1");
  assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  assert_int_equal(fe_compliance_reserved(c, &a), PX(600));
  assert_int_equal(fe_compliance_reserved(c, NULL), PX(600));
  /* a second order with the same client order id while open: refused */
  fe_event_t same = order(a, "AAA", FE_SIDE_BUY, 1, PX(1), "o1");
  fe_compliance_result_t res;
  assert_int_equal(check(c, &same, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_BAD_ORDER);
  ev = order(a, "AAA", FE_SIDE_BUY, 500, PX(1), "o2");
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_CREDIT);
  /* partial fill releases its share and moves the position */
  assert_int_equal(fe_compliance_fill(c, a, "AAA", "o1", 200), 0);
  assert_int_equal(fe_compliance_reserved(c, &a), PX(400));
  assert_int_equal(fe_compliance_position(c, a, "AAA"), 200);
  ev = order(a, "AAA", FE_SIDE_BUY, 500, PX(1), "o2");
  assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  assert_int_equal(fe_compliance_reserved(c, &a), PX(900));
  /* cancel releases the rest; unknown orders are counted */
  assert_int_equal(fe_compliance_release(c, a, "AAA", "o1"), 0);
  assert_int_equal(fe_compliance_reserved(c, &a), PX(500));
  assert_int_equal(fe_compliance_release(c, a, "AAA", "o1"), FE_ENOTFOUND);
  assert_int_equal(fe_compliance_release(c, a, "BBB", "o2"), FE_ENOTFOUND);
  assert_int_equal(fe_compliance_fill(c, a, "AAA", "nope", 1), FE_ENOTFOUND);
  /* an over-fill is the remainder: closes the order */
  assert_int_equal(fe_compliance_fill(c, a, "AAA", "o2", 700), 0);
  assert_int_equal(fe_compliance_reserved(c, &a), 0);
  assert_int_equal(fe_compliance_reserved(c, NULL), 0);
  assert_int_equal(fe_compliance_position(c, a, "AAA"), 700);
  /* a sell fill moves it down */
  ev = order(a, "AAA", FE_SIDE_SELL, 300, PX(1), "o3");
  assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  assert_int_equal(fe_compliance_fill(c, a, "AAA", "o3", 300), 0);
  assert_int_equal(fe_compliance_position(c, a, "AAA"), 400);
  fe_compliance_stats_t st;
  assert_int_equal(fe_compliance_stats(c, &st), 0);
  assert_int_equal(st.fills, 3);
  assert_int_equal(st.released, 3);
  assert_int_equal(st.unknown_orders, 3);
  assert_int_equal(st.checked, 5);
  assert_int_equal(st.accepted, 3);
  /* the order table reuses finished entries: many more orders than
   * max_orders pass when each is closed */
  for (int i = 0; i < 5000; i++) {
    char id[16];
    snprintf(id, sizeof id, "L%d", i);
    ev = order(a, "AAA", FE_SIDE_BUY, 1, PX(1), id);
    assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
    assert_int_equal(fe_compliance_release(c, a, "AAA", id), 0);
  }
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

static void test_table_full(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  cfg.max_orders = 4;
  cfg.max_symbols = 2;
  fe_compliance_t *c;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), 0);
  fe_compliance_result_t res;
  for (int i = 0; i < 4; i++) {
    fe_event_t ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1) + i, next_id());
    assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  }
  fe_event_t ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_TABLE_FULL);
  assert_int_equal(fe_compliance_reserved(c, NULL), PX(1) * 4 + 6);
  assert_int_equal(fe_compliance_set_reference(c, "BBB", PX(1)), 0);
  assert_int_equal(fe_compliance_set_reference(c, "CCC", PX(1)), FE_ETABLEFULL);
  fe_compliance_destroy(c);
  /* max_open never set (no limit) but PREVENTIVE: the tracked maximum is
   * no max_open breach, the next order fails closed; a closed order's
   * slot is reused, and the lowest free slot is taken again */
  fe_compliance_config_init(&cfg);
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), 0);
  char ids[FE_COMPLIANCE_MAX_OPEN][16];
  for (int i = 0; i < FE_COMPLIANCE_MAX_OPEN; i++) {
    snprintf(ids[i], sizeof ids[i], "M%d", i);
    ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1) + i, ids[i]);
    assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  }
  ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_TABLE_FULL);
  assert_int_equal(fe_compliance_release(c, 1, "AAA", ids[3]), 0);
  assert_int_equal(fe_compliance_release(c, 1, "AAA", ids[3]), FE_ENOTFOUND);
  ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), "again");
  assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_TABLE_FULL);
  for (int i = 0; i < FE_COMPLIANCE_MAX_OPEN; i++) /* every one still found */
    assert_int_equal(fe_compliance_release(c, 1, "AAA", i == 3 ? "again"
                                                              : ids[i]), 0);
  assert_int_equal(fe_compliance_reserved(c, NULL), 0);
  fe_compliance_destroy(c);
  /* max_open off: still at most FE_COMPLIANCE_MAX_OPEN open orders per
   * account and symbol are tracked; the next one fails closed */
  assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_MAX_OPEN, FE_MODE_OFF),
                   0);
  fe_compliance_config_init(&cfg);
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), 0);
  for (int i = 0; i < FE_COMPLIANCE_MAX_OPEN; i++) {
    ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1) + i, next_id());
    assert_int_equal(check(c, &ev, NULL), FE_CONTINUE);
  }
  ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
  assert_int_equal(check(c, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_TABLE_FULL);
  ev = order(1, "BBB", FE_SIDE_BUY, 1, PX(1), next_id());
  assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

/* ------------------------------------------------------ concurrency */

#define MT_THREADS 4
#define MT_ORDERS 3000

/* The threads never share an account (compliance.h "Threads": one
 * thread at a time per account, as the stage sharded by account runs
 * them); they share the firm's total, and in the many-accounts mode the
 * firm limit is what binds. */
typedef struct mt_arg {
  fe_compliance_t *c;
  uint32_t reader;
  int many; /* 0: one account per thread; 1: 50 per thread */
  uint64_t accepted;
  int64_t max_seen;
  fe_t_errs_t *errs;
} mt_arg_t;

static void *mt_credit_main(void *p) {
  mt_arg_t *a = p;
  for (int i = 0; i < MT_ORDERS; i++) {
    char id[32];
    snprintf(id, sizeof id, "t%u-%d", a->reader, i);
    uint64_t acct = 100 + a->reader +
                    (a->many ? MT_THREADS * (uint64_t)(1 + i % 50) : 0);
    char sym[8]; /* many symbols: at most 32 open orders each */
    snprintf(sym, sizeof sym, "S%d", i % 200);
    fe_event_t ev = order(acct, sym, FE_SIDE_BUY, 1 + i % 7, PX(1), id);
    if (fe_compliance_check(a->c, a->reader, &ev, NULL) == FE_CONTINUE)
      a->accepted += (uint64_t)ev.order.quantity;
    int64_t firm = fe_compliance_reserved(a->c, NULL);
    if (firm > a->max_seen)
      a->max_seen = firm;
  }
  return NULL;
}

/* A module whose only limits are an account's credit and the firm's
 * (both in whole prices), with room for max_orders open orders. */
static fe_compliance_t *mk_credit(fe_compliance_rules_t **r, int64_t credit,
                                  int64_t firm, uint64_t max_orders) {
  *r = rules();
  assert_int_equal(fe_compliance_rules_limit(*r, FE_LIMIT_CREDIT, PX(credit)),
                   0);
  assert_int_equal(fe_compliance_rules_limit(*r, FE_LIMIT_FIRM_CREDIT,
                                             PX(firm)), 0);
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  cfg.max_orders = max_orders;
  fe_compliance_t *c;
  assert_int_equal(fe_compliance_create(&cfg, *r, &c, NULL), 0);
  return c;
}

static void test_mt_credit(void **state) {
  (void)state;
  for (int many = 0; many < 2; many++) {
    fe_compliance_rules_t *r;
    fe_compliance_t *c = mk_credit(&r, 2500, 7001, MT_THREADS * MT_ORDERS);
    pthread_t th[MT_THREADS];
    mt_arg_t args[MT_THREADS];
    for (uint32_t i = 0; i < MT_THREADS; i++) {
      args[i] = (mt_arg_t){.c = c, .reader = i, .many = many};
      assert_int_equal(pthread_create(&th[i], NULL, mt_credit_main, &args[i]),
                       0);
    }
    uint64_t total = 0;
    for (int i = 0; i < MT_THREADS; i++) {
      pthread_join(th[i], NULL);
      total += args[i].accepted;
      assert_true(args[i].max_seen <= PX(7001));
    }
    int64_t firm = fe_compliance_reserved(c, NULL);
    assert_int_equal(firm, (int64_t)total * PX(1));
    assert_true(firm <= PX(7001));
    int64_t sum = 0;
    for (uint64_t i = 0; i < MT_THREADS * 51; i++) {
      uint64_t acct = 100 + i;
      int64_t held = fe_compliance_reserved(c, &acct);
      assert_true(held <= PX(2500));
      sum += held;
    }
    assert_int_equal(sum, firm); /* every reservation is some account's */
    /* 1..7 units per order: the firm is filled to within 6 units */
    assert_true(firm > PX(7001 - 7));
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);
  }
}

typedef struct live_arg {
  fe_compliance_t *c;
  uint32_t reader;
  int stop;
  uint64_t under_a, under_b, torn;
} live_arg_t;

/* Set A: max_qty 10, max_position 10; set B: both 20.  An order of 15
 * is refused by MAX_QTY under A, accepted under B; a mixture (B's max_qty,
 * A's max_position) would refuse it by MAX_POSITION. */
static void *live_main(void *p) {
  live_arg_t *a = p;
  uint64_t n = 0;
  while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
    char id[32];
    snprintf(id, sizeof id, "r%u-%" PRIu64, a->reader, n++);
    uint64_t acct = 1000 + a->reader;
    fe_event_t ev = order(acct, "AAA", FE_SIDE_BUY, 15, PX(1), id);
    fe_compliance_result_t res;
    int v = fe_compliance_check(a->c, a->reader, &ev, &res);
    if (v == FE_CONTINUE) {
      __atomic_fetch_add(&a->under_b, 1, __ATOMIC_RELAXED);
      fe_compliance_release(a->c, acct, "AAA", id);
    } else if (res.reason == FE_CR_MAX_QTY) {
      __atomic_fetch_add(&a->under_a, 1, __ATOMIC_RELAXED);
    } else {
      __atomic_fetch_add(&a->torn, 1, __ATOMIC_RELAXED);
    }
  }
  return NULL;
}

static fe_compliance_rules_t *set_ab(int64_t v) {
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, v), 0);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_POSITION, v), 0);
  return r;
}

static void test_mt_live_changes(void **state) {
  (void)state;
  fe_compliance_rules_t *ra = set_ab(10), *rb = set_ab(20);
  evlog_t log;
  fe_compliance_t *c = mk(ra, &log);
  live_arg_t args[2];
  pthread_t th[2];
  for (uint32_t i = 0; i < 2; i++) {
    args[i] = (live_arg_t){.c = c, .reader = i};
    assert_int_equal(pthread_create(&th[i], NULL, live_main, &args[i]), 0);
  }
  const int changes = 200;
  for (int i = 0; i < changes; i++) {
    assert_int_equal(fe_compliance_apply(c, i % 2 ? ra : rb, NULL), 0);
    /* let the readers run under this set for a while */
    uint64_t seen = __atomic_load_n(&args[0].under_a, __ATOMIC_RELAXED) +
                    __atomic_load_n(&args[0].under_b, __ATOMIC_RELAXED);
    for (int spin = 0; spin < 1000 &&
                       __atomic_load_n(&args[0].under_a, __ATOMIC_RELAXED) +
                               __atomic_load_n(&args[0].under_b,
                                               __ATOMIC_RELAXED) ==
                           seen;
         spin++)
      sched_yield();
  }
  for (int i = 0; i < 2; i++)
    __atomic_store_n(&args[i].stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].torn, 0);
  }
  assert_true(args[0].under_a + args[1].under_a > 0);
  assert_true(args[0].under_b + args[1].under_b > 0);
  fe_compliance_stats_t st;
  fe_compliance_stats(c, &st);
  assert_int_equal(st.changes, changes);
  assert_int_equal(log.kinds[FE_COMPLIANCE_CHANGE], changes);
  print_message("    (%" PRIu64 " checks under A, %" PRIu64 " under B)\n",
                args[0].under_a + args[1].under_a,
                args[0].under_b + args[1].under_b);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(ra);
  fe_compliance_rules_destroy(rb);
}

static void test_changes_reported(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  evlog_t log;
  fe_compliance_t *c = mk(r, &log);
  assert_int_equal(log.kinds[FE_COMPLIANCE_START], 1);
  fe_fingerprint_t f0, f1;
  assert_int_equal(fe_compliance_fingerprint(c, &f0), 0);
  assert_memory_equal(&log.last_of[FE_COMPLIANCE_START].fingerprint, &f0,
                      sizeof f0);
  /* copy, edit, apply */
  fe_compliance_rules_t *d;
  assert_int_equal(fe_compliance_rules_copy(c, &d), 0);
  assert_int_equal(fe_compliance_rules_limit(d, FE_LIMIT_MAX_QTY, 5), 0);
  assert_int_equal(fe_compliance_apply(c, d, NULL), 0);
  assert_int_equal(fe_compliance_fingerprint(c, &f1), 0);
  assert_memory_not_equal(&f0, &f1, sizeof f0);
  const fe_compliance_event_t *e = &log.last_of[FE_COMPLIANCE_CHANGE];
  assert_memory_equal(&e->prev_fingerprint, &f0, sizeof f0);
  assert_memory_equal(&e->fingerprint, &f1, sizeof f1);
  assert_int_equal(e->change, 1);
  fe_event_t ev = order(1, "AAA", FE_SIDE_BUY, 6, PX(1), next_id());
  assert_int_equal(check(c, &ev, NULL), FE_REJECT);
  /* a copy of the running set has its fingerprint */
  fe_compliance_rules_t *d2;
  fe_fingerprint_t f2;
  assert_int_equal(fe_compliance_rules_copy(c, &d2), 0);
  assert_int_equal(fe_compliance_rules_fingerprint(d2, &f2), 0);
  assert_memory_equal(&f1, &f2, sizeof f1);
  /* a refused apply changes nothing */
  fe_compliance_rules_destroy(d2);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(d);
  fe_compliance_rules_destroy(r);
}

/* ------------------------------------------------------ fingerprints */

static fe_fingerprint_t fp_of(fe_compliance_rules_t *r) {
  fe_fingerprint_t f;
  assert_int_equal(fe_compliance_rules_fingerprint(r, &f), 0);
  return f;
}

static void build_base(fe_compliance_rules_t *r, int reverse) {
  for (int k = 0; k < 2; k++) {
    int i = reverse ? 1 - k : k;
    if (i == 0) {
      assert_int_equal(fe_compliance_rules_account_limit(r, 7, FE_LIMIT_CREDIT,
                                                         PX(500)), 0);
      assert_int_equal(fe_compliance_rules_restrict(r, "GME"), 0);
      assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS,
                                                  300), 0);
    } else {
      assert_int_equal(fe_compliance_rules_authorize(r, 9), 0);
      assert_int_equal(fe_compliance_rules_symbol_limit(r, "AAPL",
                                                        FE_LIMIT_MAX_QTY, 50),
                       0);
      assert_int_equal(fe_compliance_rules_collar(r, NULL, PX(10),
                                                  FE_COLLAR_ABSOLUTE, PX(1)),
                       0);
    }
  }
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 1000), 0);
}

static void test_fingerprint(void **state) {
  (void)state;
  fe_compliance_rules_t *a = rules(), *b = rules();
  build_base(a, 0);
  build_base(b, 1);
  fe_fingerprint_t fa = fp_of(a), fb = fp_of(b);
  assert_memory_equal(&fa, &fb, sizeof fa);
  /* a setting overwritten with its own value, a duplicate list entry:
   * the same effective set */
  assert_int_equal(fe_compliance_rules_account_limit(b, 7, FE_LIMIT_CREDIT,
                                                     PX(1)), 0);
  assert_int_equal(fe_compliance_rules_account_limit(b, 7, FE_LIMIT_CREDIT,
                                                     PX(500)), 0);
  assert_int_equal(fe_compliance_rules_restrict(b, "GME"), 0);
  fb = fp_of(b);
  assert_memory_equal(&fa, &fb, sizeof fa);
  /* Stable across runs and builds: the canonical encoding is versioned,
   * so this value changes only with CANON_TAG. */
  char hex[FE_FINGERPRINT_HEX];
  assert_int_equal(fe_fingerprint_format(fa, hex), 0);
  print_message("    (base fingerprint %s)\n", hex);
  assert_string_equal(hex, "aec4a14ddc0de1651d51f321711b852f");
  fe_fingerprint_t back;
  assert_int_equal(fe_fingerprint_parse(hex, &back), 0);
  assert_memory_equal(&back, &fa, sizeof fa);

  /* every effective change changes it */
  fe_fingerprint_t seen[32];
  int n = 0;
  seen[n++] = fa;
  for (int change = 0; change < 12; change++) {
    fe_compliance_rules_t *x = rules();
    build_base(x, 0);
    switch (change) {
    case 0: fe_compliance_rules_mode(x, FE_RULE_COLLAR, FE_MODE_DETECTIVE); break;
    case 1: fe_compliance_rules_limit(x, FE_LIMIT_MAX_QTY, 1001); break;
    case 2: fe_compliance_rules_account_limit(x, 7, FE_LIMIT_CREDIT, PX(501)); break;
    case 3: fe_compliance_rules_account_limit(x, 8, FE_LIMIT_CREDIT, PX(500)); break;
    case 4: fe_compliance_rules_restrict(x, "AMC"); break;
    case 5: fe_compliance_rules_authorize(x, 10); break;
    case 6: fe_compliance_rules_symbol_limit(x, "AAPL", FE_LIMIT_MAX_QTY, 51); break;
    case 7: fe_compliance_rules_collar(x, NULL, 0, FE_COLLAR_BPS, 301); break;
    case 8: fe_compliance_rules_collar(x, "AAPL", 0, FE_COLLAR_BPS, 300); break;
    case 9: fe_compliance_rules_smp(x, FE_SMP_CANCEL_BOTH); break;
    case 10: fe_compliance_rules_profile(x, FE_PROFILE_DEVELOPMENT); break;
    case 11: fe_compliance_rules_limit(x, FE_LIMIT_DUP_WINDOW_NS, 5); break;
    }
    fe_fingerprint_t f = fp_of(x);
    for (int i = 0; i < n; i++)
      if (memcmp(&f, &seen[i], sizeof f) == 0)
        fail_msg("change %d gives the fingerprint of %d", change, i - 1);
    seen[n++] = f;
    fe_compliance_rules_destroy(x);
  }
  fe_compliance_rules_destroy(a);
  fe_compliance_rules_destroy(b);
}

static void test_pin(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules(), *other = rules();
  assert_int_equal(fe_compliance_rules_limit(other, FE_LIMIT_MAX_QTY, 3), 0);
  fe_fingerprint_t good = fp_of(r);
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  cfg.max_orders = cfg.max_cells = 64;
  evlog_t log;
  memset(&log, 0, sizeof log);
  cfg.on_event = on_event;
  cfg.event_user = &log;
  cfg.approved = good;
  cfg.pin_mode = FE_MODE_PREVENTIVE;
  fe_compliance_t *c = NULL;
  fe_diag_t d;
  /* refused at start */
  assert_int_equal(fe_compliance_create(&cfg, other, &c, &d), FE_EMISMATCH);
  assert_non_null(strstr(d.msg, "approved"));
  assert_null(c);
  assert_int_equal(log.n, 0);
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), 0);
  assert_int_equal(log.kinds[FE_COMPLIANCE_DRIFT], 0);
  /* a change to another set is refused while pinned preventive */
  assert_int_equal(fe_compliance_apply(c, other, &d), FE_EMISMATCH);
  fe_compliance_stats_t st;
  fe_compliance_stats(c, &st);
  assert_int_equal(st.refused_changes, 1);
  assert_int_equal(st.changes, 0);
  /* detective: applied, and the drift reported */
  assert_int_equal(fe_compliance_pin(c, good, FE_MODE_DETECTIVE), 0);
  assert_int_equal(fe_compliance_apply(c, other, &d), 0);
  assert_int_equal(log.kinds[FE_COMPLIANCE_DRIFT], 1);
  assert_memory_equal(&log.last_of[FE_COMPLIANCE_DRIFT].prev_fingerprint,
                      &good, sizeof good);
  /* re-pinning to the running set: no drift */
  fe_fingerprint_t now;
  fe_compliance_fingerprint(c, &now);
  assert_int_equal(fe_compliance_pin(c, now, FE_MODE_PREVENTIVE), 0);
  assert_int_equal(log.kinds[FE_COMPLIANCE_DRIFT], 1);
  /* pinning another: the running set drifts (reported, kept) */
  assert_int_equal(fe_compliance_pin(c, good, FE_MODE_DETECTIVE), 0);
  assert_int_equal(log.kinds[FE_COMPLIANCE_DRIFT], 2);
  fe_compliance_stats(c, &st);
  assert_int_equal(st.drifts, 2);
  fe_compliance_destroy(c);
  /* detective pin at start: created, drift reported */
  cfg.pin_mode = FE_MODE_DETECTIVE;
  memset(&log, 0, sizeof log);
  assert_int_equal(fe_compliance_create(&cfg, other, &c, &d), 0);
  assert_int_equal(log.kinds[FE_COMPLIANCE_START], 1);
  assert_int_equal(log.kinds[FE_COMPLIANCE_DRIFT], 1);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
  fe_compliance_rules_destroy(other);
}

/* ------------------------------------------------------ on the bus */

/* A started bus running c's market-data stage (worker 0) and, after it,
 * its order stage: on worker 0 too (shards 1, host-driven) or sharded
 * over workers 1..shards (library threads). */
static fe_bus_t *bus_of(fe_compliance_t *c, uint32_t shards) {
  fe_stage_def_t defs[2];
  assert_int_equal(fe_compliance_md_stage(c, &defs[0], NULL), 0);
  assert_int_equal(fe_compliance_stage(c, &defs[1], NULL), 0);
  defs[1].n_deps = 1;
  defs[1].deps[0] = 0;
  fe_bus_config_t bc;
  fe_bus_config_init(&bc);
  bc.capacity = 1024;
  if (shards > 1) {
    defs[1].shards = shards;
    defs[1].worker = 1;
  } else {
    bc.host_driven = 1;
  }
  bc.stages = defs;
  bc.n_stages = 2;
  fe_bus_t *bus;
  assert_int_equal(fe_bus_create(&bc, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  return bus;
}

static void test_bus_stages(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 500),
                   0);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 100), 0);
  fe_compliance_t *c = mk(r, NULL);
  fe_bus_t *bus = bus_of(c, 1);
  fe_order_t md = order(0, "AAA", 0, 0, PX(100), "").order;
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_MARKET_DATA, &md, 0, 0,
                                        NULL), 0);
  fe_order_t ok = order(1, "AAA", FE_SIDE_BUY, 10, PX(101), "b1").order;
  fe_order_t big = order(1, "AAA", FE_SIDE_BUY, 101, PX(101), "b2").order;
  fe_order_t far = order(1, "AAA", FE_SIDE_BUY, 10, PX(110), "b3").order;
  fe_order_t fill = order(1, "AAA", FE_SIDE_BUY, 4, PX(101), "b1").order;
  fe_order_t cxl = order(1, "AAA", FE_SIDE_BUY, 0, 0, "b1").order;
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &ok, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &big, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &far, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_EXEC_REPORT, &fill, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_CANCEL, &cxl, 0, 0, NULL), 0);
  for (int i = 0; i < 100; i++)
    fe_bus_poll(bus, 0);
  assert_int_equal(fe_compliance_reference(c, "AAA"), PX(100));
  assert_int_equal(fe_bus_stage_rejects(bus, 1, FE_CR_MAX_QTY), 1);
  assert_int_equal(fe_bus_stage_rejects(bus, 1, FE_CR_COLLAR), 1);
  assert_int_equal(fe_compliance_position(c, 1, "AAA"), 4);
  assert_int_equal(fe_compliance_reserved(c, NULL), 0);
  fe_compliance_stats_t st;
  fe_compliance_stats(c, &st);
  assert_int_equal(st.md_updates, 1);
  assert_int_equal(st.fills, 1);
  assert_int_equal(st.released, 1);
  fe_bus_stop(bus);
  while (fe_bus_poll(bus, 0) != FE_ESTOPPED)
    ;
  fe_bus_destroy(bus);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

/* ------------------------------------------------------ garbage */

/* The order stage sharded over two worker threads (keyed by account, the
 * default): each account's state has one writer, the shards share the
 * firm's total.  Every order is filled whole right after it is accepted,
 * so at the end nothing is reserved and each position is what its fills
 * added; under TSan this also checks that the shards share nothing but
 * the words they reach by atomics. */
#define SH_ACCOUNTS 64
#define SH_ORDERS 4000

static void test_bus_sharded(void **state) {
  (void)state;
  fe_compliance_rules_t *r;
  fe_compliance_t *c = mk_credit(&r, 1000, 100000, 1024);
  fe_bus_t *bus = bus_of(c, 2);
  int64_t want[SH_ACCOUNTS + 1] = {0};
  for (int i = 0; i < SH_ORDERS; i++) {
    uint64_t a = 1 + (uint64_t)(i * 7) % SH_ACCOUNTS;
    const char *sym = i % 3 ? "AAA" : "BBB";
    int64_t q = 1 + i % 9;
    char id[16];
    snprintf(id, sizeof id, "s%d", i);
    fe_order_t o = order(a, sym, i % 2 ? FE_SIDE_BUY : FE_SIDE_SELL, q,
                         PX(10) + i % 5, id).order;
    fe_order_t f = o;
    /* a full ring waits for the workers (10 s would mean they hung) */
    assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, 0,
                                          UINT64_C(10000000000), NULL), 0);
    assert_int_equal(fe_bus_publish_order(bus, FE_EV_EXEC_REPORT, &f, 0,
                                          UINT64_C(10000000000), NULL), 0);
    if (strcmp(sym, "AAA") == 0)
      want[a] += i % 2 ? q : -q;
  }
  assert_int_equal(fe_bus_drain(bus, UINT64_C(30000000000)), 0);
  fe_compliance_stats_t st;
  fe_compliance_stats(c, &st);
  assert_int_equal(st.checked, SH_ORDERS);
  assert_int_equal(st.accepted, SH_ORDERS);
  assert_int_equal(st.fills, SH_ORDERS);
  assert_int_equal(st.released, SH_ORDERS);
  assert_int_equal(st.unknown_orders, 0);
  assert_int_equal(fe_compliance_reserved(c, NULL), 0);
  for (uint64_t a = 1; a <= SH_ACCOUNTS; a++) {
    assert_int_equal(fe_compliance_reserved(c, &a), 0);
    assert_int_equal(fe_compliance_position(c, a, "AAA"), want[a]);
  }
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

/* The throttle's buckets (one per account) outlive a rule change that
 * keeps rate and burst, and start full under a new rate or burst, or
 * after a set without a rate.  Rate 1/s, burst 2, the clock still. */
static int thr_try(fe_compliance_t *c, uint64_t a) {
  fe_event_t ev = order(a, "AAA", FE_SIDE_BUY, 1, PX(1), next_id());
  fe_compliance_result_t res;
  int v = check(c, &ev, &res);
  if (v == FE_REJECT)
    assert_int_equal(res.reason, FE_CR_THROTTLED);
  return v;
}

static void test_throttle_changes(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 1), 0);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_BURST, 2), 0);
  fe_compliance_t *c = mk(r, NULL);
  assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(thr_try(c, 1), FE_REJECT);
  assert_int_equal(thr_try(c, 2), FE_CONTINUE); /* per account */
  /* another limit changes: the buckets carry over */
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 1000), 0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  assert_int_equal(thr_try(c, 1), FE_REJECT);
  /* one second later one token is back */
  fake_now += UINT64_C(1000000000);
  assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(thr_try(c, 1), FE_REJECT);
  /* a new burst: full buckets of 3 */
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_BURST, 3), 0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(thr_try(c, 1), FE_REJECT);
  /* the rule off keeps the buckets (the rate is still set); no rate for
   * a while, then the same rate and burst again: full */
  assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_THROTTLE, FE_MODE_OFF),
                   0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE,
                                             FE_COMPLIANCE_UNLIMITED), 0);
  assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_THROTTLE,
                                            FE_MODE_PREVENTIVE), 0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 1), 0);
  assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(thr_try(c, 1), FE_CONTINUE);
  assert_int_equal(thr_try(c, 1), FE_REJECT);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

/* A batch of the stage reserves on the firm through its lease
 * (compliance.c, firm_reserve): one worker's batch must stay exact at the
 * firm limit, in every mode that checks it, and across a release inside
 * the batch.  Firm limit 1000.00, orders at 1.00 from distinct accounts,
 * all published before the worker polls (one batch). */
static void pub(fe_bus_t *bus, uint32_t type, uint64_t a, int64_t q,
                const char *id) {
  fe_order_t o = order(a, "AAA", FE_SIDE_BUY, q, PX(1), id).order;
  assert_int_equal(fe_bus_publish_order(bus, type, &o, 0, 0, NULL), 0);
}

static void test_bus_batch_credit(void **state) {
  (void)state;
  const int modes[] = {FE_MODE_PREVENTIVE, FE_MODE_CORRECTIVE,
                       FE_MODE_DETECTIVE};
  for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
    int mode = modes[mi];
    fe_compliance_rules_t *r;
    fe_compliance_t *c = mk_credit(&r, 100000, 1000, 1024);
    assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_CREDIT,
                                              (fe_compliance_mode_t)mode), 0);
    assert_int_equal(fe_compliance_apply(c, r, NULL), 0);
    fe_bus_t *bus = bus_of(c, 1);
    char id[16];
    for (uint64_t a = 1; a <= 9; a++) { /* 900 of 1000 */
      snprintf(id, sizeof id, "a%" PRIu64, a);
      pub(bus, FE_EV_NEW_ORDER, a, 100, id);
    }
    pub(bus, FE_EV_NEW_ORDER, 10, 101, "a10"); /* 1001: one over */
    pub(bus, FE_EV_NEW_ORDER, 11, 100, "a11"); /* exactly 1000 */
    pub(bus, FE_EV_NEW_ORDER, 12, 1, "a12");   /* one over */
    pub(bus, FE_EV_EXEC_REPORT, 1, 100, "a1"); /* 100 back */
    pub(bus, FE_EV_NEW_ORDER, 13, 101, "a13"); /* one over again */
    pub(bus, FE_EV_NEW_ORDER, 14, 100, "a14"); /* exactly 1000 again */
    for (int i = 0; i < 100; i++)
      fe_bus_poll(bus, 0);
    uint64_t a10 = 10, a11 = 11, a13 = 13, a14 = 14;
    fe_compliance_stats_t st;
    fe_compliance_stats(c, &st);
    assert_int_equal(st.checked, 14);
    if (mode == FE_MODE_PREVENTIVE) {
      assert_int_equal(fe_bus_stage_rejects(bus, 1, FE_CR_FIRM_CREDIT), 3);
      assert_int_equal(fe_compliance_reserved(c, &a10), 0);
      assert_int_equal(fe_compliance_reserved(c, &a11), PX(100));
      assert_int_equal(fe_compliance_reserved(c, &a14), PX(100));
      assert_int_equal(fe_compliance_reserved(c, NULL), PX(1000));
    } else if (mode == FE_MODE_CORRECTIVE) {
      /* a10 clamped to the 100 left; a11 and a12 find nothing left; a13
       * clamped to the 100 a1's fill gave back; a14 finds nothing */
      assert_int_equal(fe_bus_stage_rejects(bus, 1, FE_CR_FIRM_CREDIT), 3);
      assert_int_equal(fe_compliance_reserved(c, &a10), PX(100));
      assert_int_equal(fe_compliance_reserved(c, &a11), 0);
      assert_int_equal(fe_compliance_reserved(c, &a13), PX(100));
      assert_int_equal(fe_compliance_reserved(c, &a14), 0);
      assert_int_equal(st.amended[FE_RULE_CREDIT], 2);
      assert_int_equal(fe_compliance_reserved(c, NULL), PX(1000));
    } else {
      /* every order passes, each one over the limit is flagged */
      assert_int_equal(st.accepted, 14);
      assert_int_equal(st.flagged[FE_RULE_CREDIT], 5);
      assert_int_equal(fe_compliance_reserved(c, NULL),
                       PX(900 + 101 + 100 + 1 - 100 + 101 + 100));
    }
    fe_bus_stop(bus);
    while (fe_bus_poll(bus, 0) != FE_ESTOPPED)
      ;
    fe_bus_destroy(bus);
    fe_compliance_destroy(c);
    fe_compliance_rules_destroy(r);
  }
}

/* The firm limit binding while two shards reserve at once: sampled from
 * another thread, the firm's total never passes it, and at the end it is
 * exactly what the accounts hold; filling every accepted order gives it
 * all back.  (Orders ask four times the limit.) */
#define SF_ACCOUNTS 64
#define SF_ORDERS 4000
#define SF_FIRM 5000

static void test_bus_sharded_firm(void **state) {
  (void)state;
  fe_compliance_rules_t *r;
  fe_compliance_t *c = mk_credit(&r, 1000000, SF_FIRM, 2 * SF_ORDERS);
  fe_bus_t *bus = bus_of(c, 2);
  int64_t max_seen = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < SF_ORDERS; i++) {
      uint64_t a = 1 + (uint64_t)(i * 7) % SF_ACCOUNTS;
      char id[16];
      snprintf(id, sizeof id, "f%d", i);
      /* pass 0: the orders; pass 1: a whole fill of each */
      fe_order_t o = order(a, i % 2 ? "AAA" : "BBB", FE_SIDE_BUY,
                           1 + i % 9, PX(1), id).order;
      assert_int_equal(fe_bus_publish_order(bus, pass ? FE_EV_EXEC_REPORT
                                                      : FE_EV_NEW_ORDER,
                                            &o, 0, UINT64_C(10000000000),
                                            NULL), 0);
      int64_t firm = fe_compliance_reserved(c, NULL);
      if (firm > max_seen)
        max_seen = firm;
    }
    assert_int_equal(fe_bus_drain(bus, UINT64_C(30000000000)), 0);
    int64_t sum = 0;
    for (uint64_t a = 1; a <= SF_ACCOUNTS; a++)
      sum += fe_compliance_reserved(c, &a);
    assert_int_equal(fe_compliance_reserved(c, NULL), sum);
    if (pass == 0) {
      assert_true(sum > 0);
      assert_true(sum <= PX(SF_FIRM));
    } else {
      assert_int_equal(sum, 0);
    }
  }
  assert_true(max_seen <= PX(SF_FIRM));
  fe_compliance_stats_t st;
  fe_compliance_stats(c, &st);
  assert_int_equal(st.checked, SF_ORDERS);
  assert_int_equal(st.accepted + st.rejected[FE_RULE_CREDIT], SF_ORDERS);
  assert_true(st.rejected[FE_RULE_CREDIT] > 0);
  assert_int_equal(st.fills, st.accepted);
  assert_int_equal(st.unknown_orders, st.rejected[FE_RULE_CREDIT]);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

static void test_null_and_garbage(void **state) {
  (void)state;
  fe_compliance_rules_t *r = rules();
  assert_int_equal(fe_compliance_rules_create(NULL), FE_EINVAL);
  fe_compliance_rules_destroy(NULL);
  assert_int_equal(fe_compliance_rules_profile(NULL, FE_PROFILE_PRODUCTION),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_rules_profile(r, 0), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_profile(r, 99), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_mode(NULL, 0, 0), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_mode(r, FE_RULE_COUNT, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_mode(r, -1, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_mode(r, 0, 4), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_limit(NULL, 0, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_COUNT, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, -1),
                   FE_ERANGE);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_MAX_OPEN, 33),
                   FE_ERANGE);
  assert_int_equal(fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 0),
                   FE_ERANGE);
  assert_int_equal(fe_compliance_rules_account_limit(NULL, 1, 0, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_account_limit(r, 1,
                                                     FE_LIMIT_FIRM_CREDIT, 1),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_rules_account_limit(r, 1, FE_LIMIT_MAX_QTY,
                                                     -5), FE_ERANGE);
  assert_int_equal(fe_compliance_rules_symbol_limit(NULL, "A", 0, 1),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_rules_symbol_limit(r, NULL, 0, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_symbol_limit(r, "", 0, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_symbol_limit(r, "SEVENTEEN_CHARS_X", 0,
                                                    1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_symbol_limit(r, "A", FE_LIMIT_CREDIT,
                                                    1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_authorize(NULL, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_restrict(NULL, "A"), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_restrict(r, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_collar(NULL, NULL, 0, 1, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, 0, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_collar(r, NULL, -1, 1, 1), FE_ERANGE);
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 0),
                   FE_ERANGE);
  assert_int_equal(fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS,
                                              10001), FE_ERANGE);
  for (int i = 0; i < FE_COMPLIANCE_MAX_TIERS; i++)
    assert_int_equal(fe_compliance_rules_collar(r, "T", i, FE_COLLAR_BPS, 1),
                     0);
  assert_int_equal(fe_compliance_rules_collar(r, "T", 99, FE_COLLAR_BPS, 1),
                   FE_ERANGE);
  assert_int_equal(fe_compliance_rules_collar(r, "T", 3, FE_COLLAR_BPS, 2), 0);
  assert_int_equal(fe_compliance_rules_smp(NULL, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_smp(r, 0), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_smp(r, 4), FE_EINVAL);
  fe_fingerprint_t f;
  assert_int_equal(fe_compliance_rules_fingerprint(NULL, &f), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_fingerprint(r, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_rules_copy(NULL, &r), FE_EINVAL);

  fe_compliance_config_init(NULL);
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  fe_compliance_t *c = NULL;
  fe_diag_t d;
  assert_int_equal(fe_compliance_create(NULL, r, &c, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_create(&cfg, NULL, &c, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_create(&cfg, r, NULL, &d), FE_EINVAL);
  cfg.max_orders = 0;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "max_orders"));
  fe_compliance_config_init(&cfg);
  cfg.max_cells = (UINT64_C(1) << 26) + 1;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), FE_ERANGE);
  fe_compliance_config_init(&cfg);
  cfg.event_user = &d;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), FE_EINVAL);
  fe_compliance_config_init(&cfg);
  cfg.clock_user = &d;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), FE_EINVAL);
  fe_compliance_config_init(&cfg);
  cfg.pin_mode = FE_MODE_CORRECTIVE;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, &d), FE_EINVAL);
  assert_null(c);
  fe_compliance_destroy(NULL);

  c = mk(r, NULL);
  fe_event_t ev = order(1, "AAA", FE_SIDE_BUY, 1, PX(1), "g");
  assert_int_equal(fe_compliance_check(NULL, 0, &ev, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_check(c, 0, NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_check(c, FE_COMPLIANCE_READERS, &ev, NULL),
                   FE_EINVAL);
  /* garbage orders: rejected as BAD_ORDER, never a crash */
  fe_compliance_result_t res;
  struct { int64_t q, p; int side, type; } bad[] = {
      {0, PX(1), 1, 2}, {-5, PX(1), 1, 2}, {1, PX(1), 0, 2}, {1, PX(1), 9, 2},
      {1, PX(1), 1, 0}, {1, PX(1), 1, 77}, {1, 0, 1, 2}, {1, -PX(1), 1, 2},
      {INT64_MAX, INT64_MAX, 1, 2}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ev = order(1, "AAA", bad[i].side, bad[i].q, bad[i].p, next_id());
    ev.order.type = (uint8_t)bad[i].type;
    assert_int_equal(check(c, &ev, &res), FE_REJECT);
    assert_int_equal(res.reason, FE_CR_BAD_ORDER);
  }
  /* a symbol without a NUL (16 bytes) and random bytes are still keys */
  ev = order(1, "", FE_SIDE_BUY, 1, PX(1), next_id());
  memset(ev.order.symbol, 0xff, FE_SYMBOL_MAX);
  memset(ev.order.client_order_id, 0xfe, FE_CLORDID_MAX);
  assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
  /* non-order events pass untouched */
  ev.type = FE_EV_MARKET_DATA;
  assert_int_equal(check(c, &ev, &res), FE_CONTINUE);
  assert_int_equal(fe_compliance_fill(NULL, 1, "AAA", "x", 1), FE_EINVAL);
  assert_int_equal(fe_compliance_fill(c, 1, "AAA", NULL, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_fill(c, 1, "AAA", "x", 0), FE_EINVAL);
  char longid[64];
  memset(longid, 'x', sizeof longid - 1);
  longid[63] = '\0';
  assert_int_equal(fe_compliance_fill(c, 1, "AAA", longid, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_release(NULL, 1, "AAA", "x"), FE_EINVAL);
  assert_int_equal(fe_compliance_release(c, 1, "AAA", NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_release(c, 1, NULL, "x"), FE_EINVAL);
  assert_int_equal(fe_compliance_fill(c, 1, "", "x", 1), FE_EINVAL);
  assert_int_equal(fe_compliance_set_reference(NULL, "A", 1), FE_EINVAL);
  assert_int_equal(fe_compliance_set_reference(c, NULL, 1), FE_EINVAL);
  assert_int_equal(fe_compliance_set_reference(c, "A", 0), FE_EINVAL);
  assert_int_equal(fe_compliance_reference(NULL, "A"), FE_EINVAL);
  assert_int_equal(fe_compliance_reference(c, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_reference(c, "NEVER"), 0);
  assert_int_equal(fe_compliance_reserved(NULL, NULL), FE_EINVAL);
  /* a position may be negative: bad arguments read as "no position" */
  assert_int_equal(fe_compliance_position(NULL, 1, "A"), 0);
  assert_int_equal(fe_compliance_position(c, 1, NULL), 0);
  assert_int_equal(fe_compliance_position(c, 1, "NEVER"), 0);
  assert_int_equal(fe_compliance_stats(NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_stats(c, NULL), FE_EINVAL);
  assert_int_equal(fe_compliance_apply(NULL, r, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_apply(c, NULL, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_pin(NULL, f, FE_MODE_OFF), FE_EINVAL);
  assert_int_equal(fe_compliance_pin(c, f, FE_MODE_CORRECTIVE), FE_EINVAL);
  assert_int_equal(fe_compliance_pin(c, f, 77), FE_EINVAL);
  assert_int_equal(fe_compliance_fingerprint(NULL, &f), FE_EINVAL);
  assert_int_equal(fe_compliance_fingerprint(c, NULL), FE_EINVAL);
  char hex[FE_FINGERPRINT_HEX];
  assert_int_equal(fe_fingerprint_format(f, NULL), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse(NULL, &f), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse("00", NULL), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse("", &f), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse("0123456789abcdef0123456789abcdeg",
                                        &f), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse("0123456789abcdef0123456789abcdef0",
                                        &f), FE_EINVAL);
  assert_int_equal(fe_fingerprint_parse("0123456789ABCDEF0123456789abcdef",
                                        &f), 0);
  assert_int_equal(fe_fingerprint_format(f, hex), 0);
  assert_string_equal(hex, "0123456789abcdef0123456789abcdef");
  fe_stage_def_t def;
  assert_int_equal(fe_compliance_stage(NULL, &def, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_stage(c, NULL, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_md_stage(NULL, &def, &d), FE_EINVAL);
  assert_int_equal(fe_compliance_md_stage(c, NULL, NULL), FE_EINVAL);
  /* names and the FIX mapping */
  assert_string_equal(fe_compliance_rule_name(FE_RULE_MAX_QTY), "max_qty");
  assert_null(fe_compliance_rule_name(FE_RULE_COUNT));
  assert_null(fe_compliance_rule_name(-1));
  assert_string_equal(fe_compliance_mode_name(FE_MODE_DETECTIVE), "detective");
  assert_null(fe_compliance_mode_name(9));
  assert_string_equal(fe_compliance_limit_name(FE_LIMIT_CREDIT), "credit");
  assert_null(fe_compliance_limit_name(FE_LIMIT_COUNT));
  assert_string_equal(fe_reason_name(FE_CR_SELF_MATCH), "CR_SELF_MATCH");
  assert_int_equal(fe_compliance_fix_reason(FE_CR_COLLAR), 16);
  assert_int_equal(fe_compliance_fix_reason(FE_CR_DUPLICATE), 6);
  assert_int_equal(fe_compliance_fix_reason(FE_CR_UNAUTHORIZED), 15);
  assert_int_equal(fe_compliance_fix_reason(FE_CR_MAX_QTY), 3);
  assert_int_equal(fe_compliance_fix_reason(FE_CR_SELF_MATCH), 99);
  assert_int_equal(fe_compliance_fix_reason(FE_REASON_CIRCUIT_OPEN), -1);
  assert_int_equal(fe_compliance_fix_reason(0), -1);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
}

/* Every reason is distinct and named. */
static void test_reasons_distinct(void **state) {
  (void)state;
  uint32_t v[] = {
#define X(name, fix) FE_CR_##name,
      FE_COMPLIANCE_REASON_MAP(X)
#undef X
  };
  size_t n = sizeof v / sizeof v[0];
  for (size_t i = 0; i < n; i++) {
    assert_non_null(fe_reason_name(v[i]));
    assert_true(fe_compliance_fix_reason(v[i]) >= 0);
    for (size_t j = i + 1; j < n; j++)
      assert_int_not_equal(v[i], v[j]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_boundaries),
      FE_T_TEST(test_lists_and_state),
      FE_T_TEST(test_self_match),
      FE_T_TEST(test_market_orders),
      FE_T_TEST(test_overrides),
      FE_T_TEST(test_lifecycle),
      FE_T_TEST(test_table_full),
      FE_T_TEST(test_mt_credit),
      FE_T_TEST(test_mt_live_changes),
      FE_T_TEST(test_changes_reported),
      FE_T_TEST(test_fingerprint),
      FE_T_TEST(test_pin),
      FE_T_TEST(test_bus_stages),
      FE_T_TEST(test_bus_sharded),
      FE_T_TEST(test_throttle_changes),
      FE_T_TEST(test_bus_batch_credit),
      FE_T_TEST(test_bus_sharded_firm),
      FE_T_TEST(test_null_and_garbage),
      FE_T_TEST(test_reasons_distinct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
