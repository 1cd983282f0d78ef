/* Trading state and kill switch: every state x event type x side, REDUCING
 * against long/short/flat positions, the stricter of global and account,
 * table full, on_change/on_kill exactly once per real change, the kill
 * switch seen by concurrent checkers, kill from a signal handler,
 * counters, configuration errors, NULL arguments, and a quick cost loop
 * (printed, not asserted).  Never sleeps for timing. */
#include "helpers.h"

#include "finevent/trading.h"

static const fe_trading_state_t STATES[] = {
    FE_TRADING_ACTIVE, FE_TRADING_REDUCING, FE_TRADING_HALTED};
#define N_STATES 3

static fe_trading_t *make(const fe_trading_config_t *cfg) {
  fe_trading_t *t = NULL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_trading_create(cfg, &t, &diag);
  if (rc != 0)
    fail_msg("fe_trading_create: %s (%d): %s", fe_err_name(rc), rc, diag.msg);
  assert_non_null(t);
  return t;
}

static fe_trading_stats_t stats(const fe_trading_t *t) {
  fe_trading_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_trading_stats(t, &s));
  return s;
}

static fe_event_t order(uint32_t type, uint64_t account, uint8_t side,
                        int64_t qty, const char *sym) {
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.order.account = account;
  ev.order.side = side;
  ev.order.quantity = qty;
  ev.order.price = 100 * FE_PRICE_SCALE;
  ev.order.type = FE_ORD_LIMIT;
  ev.order.tif = FE_TIF_DAY;
  if (sym != NULL) {
    size_t len = strlen(sym);
    memcpy(ev.order.symbol, sym, len < FE_SYMBOL_MAX ? len : FE_SYMBOL_MAX);
  }
  return ev;
}

/* -------------------------------------------------- position callback */

/* One fixed position; records the last call.  Read-only pos, so several
 * checker threads may share it (calls is atomic, the rest main-only). */
typedef struct pos_src {
  int64_t pos;
  _Atomic uint64_t calls;
  uint64_t last_account;
  char last_sym[FE_SYMBOL_MAX + 1];
  int record; /* main-thread tests only */
} pos_src_t;

static int64_t pos_cb(uint64_t account, const char *symbol, void *user) {
  pos_src_t *p = user;
  atomic_fetch_add_explicit(&p->calls, 1, memory_order_relaxed);
  if (p->record) {
    p->last_account = account;
    memcpy(p->last_sym, symbol, FE_SYMBOL_MAX); /* may lack a NUL */
    p->last_sym[FE_SYMBOL_MAX] = '\0';
  }
  return p->pos;
}

/* ----------------------------------------------------- change recorder */

#define MAX_REC 64

typedef struct change_rec {
  uint64_t account;
  int is_global;
  fe_trading_state_t from, to;
  char why[64];
  int global_seen; /* fe_trading_get_global() inside the callback */
} change_rec_t;

typedef struct recorder {
  fe_trading_t *t;
  int n;
  change_rec_t rec[MAX_REC];
  int kills;
  fe_trading_state_t kill_from;
  char kill_why[64];
  int change_calls_at_kill; /* on_kill runs before on_change */
} recorder_t;

static void on_change_rec(uint64_t account, int is_global,
                          fe_trading_state_t from, fe_trading_state_t to,
                          const char *why, void *user) {
  recorder_t *r = user;
  if (r->n >= MAX_REC) return;
  change_rec_t *c = &r->rec[r->n++];
  c->account = account;
  c->is_global = is_global;
  c->from = from;
  c->to = to;
  snprintf(c->why, sizeof c->why, "%s", why);
  c->global_seen = fe_trading_get_global(r->t);
}

static void on_kill_rec(fe_trading_state_t from, const char *why, void *user) {
  recorder_t *r = user;
  r->kills++;
  r->kill_from = from;
  snprintf(r->kill_why, sizeof r->kill_why, "%s", why);
  r->change_calls_at_kill = r->n;
}

static void assert_rec(const change_rec_t *c, uint64_t account, int is_global,
                       fe_trading_state_t from, fe_trading_state_t to,
                       const char *why) {
  assert_int_equal(c->account, account);
  assert_int_equal(c->is_global, is_global);
  assert_int_equal(c->from, from);
  assert_int_equal(c->to, to);
  assert_string_equal(c->why, why);
}

/* ----------------------------------------------------------------- config */

static void test_config_defaults(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  memset(&cfg, 0x5a, sizeof cfg);
  fe_trading_config_init(&cfg);
  assert_int_equal(cfg.max_accounts, FE_TRADING_DEFAULT_MAX_ACCOUNTS);
  assert_int_equal(cfg.max_accounts, 65536);
  assert_null(cfg.position);
  assert_null(cfg.position_user);
  assert_null(cfg.on_change);
  assert_null(cfg.change_user);
  assert_null(cfg.on_kill);
  assert_null(cfg.kill_user);
  fe_trading_config_init(NULL); /* no crash */
  fe_trading_t *t = make(&cfg);
  assert_int_equal(fe_trading_get_global(t), FE_TRADING_ACTIVE);
  assert_int_equal(fe_trading_get_account(t, 0), FE_TRADING_ACTIVE);
  assert_int_equal(fe_trading_get_account(t, UINT64_MAX), FE_TRADING_ACTIVE);
  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.checked + s.rejected_halted + s.rejected_reducing +
                       s.kills + s.changes + s.table_full + s.accounts,
                   0);
  fe_trading_destroy(t);
}

static void test_invalid_configs(void **state) {
  (void)state;
  static int dummy;
  struct {
    const char *name;
    uint64_t max_accounts;
    int field; /* 0 none, 1 position_user, 2 change_user, 3 kill_user */
    int code;
    const char *needle;
  } cases[] = {
      {"max_accounts 0", 0, 0, FE_ERANGE, "max_accounts 0 is not in 1..67108864"},
      {"max_accounts too big", FE_TRADING_MAX_ACCOUNTS_MAX + 1, 0, FE_ERANGE,
       "max_accounts 67108865 is not in 1..67108864"},
      {"position_user alone", 16, 1, FE_EINVAL,
       "position_user is set but position is NULL"},
      {"change_user alone", 16, 2, FE_EINVAL,
       "change_user is set but on_change is NULL"},
      {"kill_user alone", 16, 3, FE_EINVAL,
       "kill_user is set but on_kill is NULL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fe_trading_config_t cfg;
    fe_trading_config_init(&cfg);
    cfg.max_accounts = cases[i].max_accounts;
    if (cases[i].field == 1) cfg.position_user = &dummy;
    if (cases[i].field == 2) cfg.change_user = &dummy;
    if (cases[i].field == 3) cfg.kill_user = &dummy;
    fe_trading_t *sentinel = (fe_trading_t *)&dummy, *t = sentinel;
    fe_diag_t diag;
    memset(&diag, 0, sizeof diag);
    int rc = fe_trading_create(&cfg, &t, &diag);
    if (rc != cases[i].code)
      fail_msg("%s: got %s, expected %s (%s)", cases[i].name, fe_err_name(rc),
               fe_err_name(cases[i].code), diag.msg);
    assert_int_equal(diag.code, cases[i].code);
    if (strstr(diag.msg, cases[i].needle) == NULL)
      fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].name, diag.msg,
               cases[i].needle);
    assert_ptr_equal(t, sentinel); /* out untouched on failure */
    assert_fe(fe_trading_create(&cfg, &t, NULL), cases[i].code);
  }
  /* Edge values that are valid. */
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 1;
  fe_trading_destroy(make(&cfg));
}

static void test_null_args(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 8;
  fe_trading_t *t = NULL;
  fe_diag_t diag;
  assert_fe(fe_trading_create(NULL, &t, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "cfg is NULL"));
  assert_fe(fe_trading_create(&cfg, NULL, &diag), FE_EINVAL);
  assert_non_null(strstr(diag.msg, "out is NULL"));
  fe_event_t ev = order(FE_EV_NEW_ORDER, 1, FE_SIDE_BUY, 1, "X");
  assert_fe(fe_trading_check(NULL, &ev), FE_EINVAL);
  assert_fe(fe_trading_set_global(NULL, FE_TRADING_HALTED, "x"), FE_EINVAL);
  assert_fe(fe_trading_set_account(NULL, 1, FE_TRADING_HALTED, "x"),
            FE_EINVAL);
  assert_fe(fe_trading_get_global(NULL), FE_EINVAL);
  assert_fe(fe_trading_get_account(NULL, 1), FE_EINVAL);
  assert_fe(fe_trading_kill(NULL, "x"), FE_EINVAL);
  fe_trading_stats_t s;
  assert_fe(fe_trading_stats(NULL, &s), FE_EINVAL);
  fe_trading_destroy(NULL);

  t = make(&cfg);
  assert_fe(fe_trading_check(t, NULL), FE_EINVAL);
  assert_fe(fe_trading_stats(t, NULL), FE_EINVAL);
  /* States outside the enum change nothing. */
  assert_fe(fe_trading_set_global(t, (fe_trading_state_t)3, "x"), FE_EINVAL);
  assert_fe(fe_trading_set_global(t, (fe_trading_state_t)-1, "x"), FE_EINVAL);
  assert_fe(fe_trading_set_account(t, 1, (fe_trading_state_t)7, "x"),
            FE_EINVAL);
  assert_int_equal(fe_trading_get_global(t), FE_TRADING_ACTIVE);
  assert_int_equal(fe_trading_get_account(t, 1), FE_TRADING_ACTIVE);
  s = stats(t);
  assert_int_equal(s.checked + s.changes + s.accounts + s.kills, 0);
  assert_string_equal(fe_trading_state_name(FE_TRADING_ACTIVE), "ACTIVE");
  assert_string_equal(fe_trading_state_name(FE_TRADING_REDUCING), "REDUCING");
  assert_string_equal(fe_trading_state_name(FE_TRADING_HALTED), "HALTED");
  assert_string_equal(fe_trading_state_name(9), "UNKNOWN");
  fe_trading_destroy(t);
}

/* ----------------------------------------------------------- the matrix */

/* What the header promises, written out independently of the code: only
 * a new order is gated; with the position long 50 and quantity 10, a buy
 * grows it and a sell or short sale reduces it. */
static int expected_long50(fe_trading_state_t st, uint32_t type,
                           uint8_t side) {
  if (type != FE_EV_NEW_ORDER) return 0;
  switch (st) {
  case FE_TRADING_ACTIVE: return 0;
  case FE_TRADING_HALTED: return FE_EHALTED;
  case FE_TRADING_REDUCING: return side == FE_SIDE_BUY ? FE_EREDUCEONLY : 0;
  }
  return 99;
}

static void test_state_type_side_matrix(void **state) {
  (void)state;
  static const uint32_t types[] = {
      FE_EV_NEW_ORDER,   FE_EV_CANCEL, FE_EV_EXEC_REPORT, FE_EV_SETTLE_CONFIRM,
      FE_EV_MARKET_DATA, FE_EV_USER,   FE_EV_USER + 7,    0,
      6,                 UINT32_MAX};
  static const uint8_t sides[] = {FE_SIDE_BUY, FE_SIDE_SELL,
                                  FE_SIDE_SELL_SHORT};
  pos_src_t src;
  memset(&src, 0, sizeof src);
  src.pos = 50;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 16;
  cfg.position = pos_cb;
  cfg.position_user = &src;
  fe_trading_t *t = make(&cfg);

  uint64_t n = 0, allowed = 0, halted = 0, reducing = 0;
  /* via: 0 the global state, 1 the account's own state. */
  for (int via = 0; via < 2; via++) {
    for (int si = 0; si < N_STATES; si++) {
      fe_trading_state_t st = STATES[si];
      uint64_t acct = 1000 + (uint64_t)si;
      if (via == 0) {
        assert_fe_ok(fe_trading_set_global(t, st, "matrix"));
      } else {
        assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, "matrix"));
        assert_fe_ok(fe_trading_set_account(t, acct, st, "matrix"));
      }
      for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t k = 0; k < sizeof sides / sizeof sides[0]; k++) {
          fe_event_t ev = order(types[ti], acct, sides[k], 10, "ACME");
          int want = expected_long50(st, types[ti], sides[k]);
          int got = fe_trading_check(t, &ev);
          if (got != want)
            fail_msg("%s via %s, type %u, side %u: got %s, expected %s",
                     fe_trading_state_name(st), via ? "account" : "global",
                     types[ti], sides[k], fe_err_name(got),
                     fe_err_name(want));
          n++;
          if (got == 0) allowed++;
          if (got == FE_EHALTED) halted++;
          if (got == FE_EREDUCEONLY) reducing++;
        }
    }
  }
  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.checked, n);
  assert_int_equal(s.rejected_halted, halted);
  assert_int_equal(s.rejected_reducing, reducing);
  assert_int_equal(s.checked, allowed + s.rejected_halted +
                                  s.rejected_reducing);
  assert_true(halted == 2 * 3 && reducing == 2 * 1); /* every branch hit */
  /* The callback runs only for new orders under REDUCING: 3 sides, twice. */
  assert_int_equal(atomic_load(&src.calls), 6);
  fe_trading_destroy(t);
}

/* -------------------------------------------------------------- REDUCING */

static void test_reducing_positions(void **state) {
  (void)state;
  static const struct {
    int64_t pos;
    uint8_t side;
    int64_t qty;
    int ok;
  } cases[] = {
      /* long 100 */
      {100, FE_SIDE_SELL, 1, 1},
      {100, FE_SIDE_SELL, 100, 1},
      {100, FE_SIDE_SELL, 101, 0}, /* would flip to short */
      {100, FE_SIDE_SELL_SHORT, 60, 1},
      {100, FE_SIDE_SELL_SHORT, 100, 1},
      {100, FE_SIDE_SELL_SHORT, 101, 0},
      {100, FE_SIDE_BUY, 1, 0}, /* grows */
      /* short 100 */
      {-100, FE_SIDE_BUY, 1, 1},
      {-100, FE_SIDE_BUY, 100, 1},
      {-100, FE_SIDE_BUY, 101, 0}, /* would flip to long */
      {-100, FE_SIDE_SELL, 1, 0},
      {-100, FE_SIDE_SELL_SHORT, 1, 0},
      /* flat: nothing reduces */
      {0, FE_SIDE_BUY, 1, 0},
      {0, FE_SIDE_SELL, 1, 0},
      {0, FE_SIDE_SELL_SHORT, 1, 0},
      /* extremes: no overflow in |pos| */
      {INT64_MIN, FE_SIDE_BUY, INT64_MAX, 1},
      {INT64_MIN + 1, FE_SIDE_BUY, INT64_MAX, 1},
      {INT64_MIN + 2, FE_SIDE_BUY, INT64_MAX, 0},
      {INT64_MAX, FE_SIDE_SELL, INT64_MAX, 1},
      {INT64_MAX - 1, FE_SIDE_SELL, INT64_MAX, 0},
      {1, FE_SIDE_SELL, INT64_MAX, 0},
      /* fail closed: quantity <= 0, unknown side */
      {100, FE_SIDE_SELL, 0, 0},
      {100, FE_SIDE_SELL, -5, 0},
      {-100, FE_SIDE_BUY, INT64_MIN, 0},
      {100, 0, 1, 0},
      {100, 4, 1, 0},
      {-100, 255, 1, 0},
  };
  pos_src_t src;
  memset(&src, 0, sizeof src);
  src.record = 1;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 16;
  cfg.position = pos_cb;
  cfg.position_user = &src;
  fe_trading_t *t = make(&cfg);
  /* Once through the global state, once through the account's. */
  for (int via = 0; via < 2; via++) {
    if (via == 0) {
      assert_fe_ok(fe_trading_set_global(t, FE_TRADING_REDUCING, NULL));
    } else {
      assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, NULL));
      assert_fe_ok(fe_trading_set_account(t, 77, FE_TRADING_REDUCING, NULL));
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      src.pos = cases[i].pos;
      fe_event_t ev = order(FE_EV_NEW_ORDER, 77, cases[i].side, cases[i].qty,
                            "0123456789ABCDEF"); /* 16 bytes: no NUL */
      int want = cases[i].ok ? 0 : FE_EREDUCEONLY;
      int got = fe_trading_check(t, &ev);
      if (got != want)
        fail_msg("case %zu via %d: pos %" PRId64 " side %u qty %" PRId64
                 ": got %s, expected %s",
                 i, via, cases[i].pos, cases[i].side, cases[i].qty,
                 fe_err_name(got), fe_err_name(want));
    }
    assert_int_equal(src.last_account, 77);
    assert_string_equal(src.last_sym, "0123456789ABCDEF");
  }
  /* A cancel passes under REDUCING without asking for the position. */
  uint64_t calls = atomic_load(&src.calls);
  fe_event_t cxl = order(FE_EV_CANCEL, 77, FE_SIDE_BUY, 1000, "X");
  assert_fe_ok(fe_trading_check(t, &cxl));
  assert_int_equal(atomic_load(&src.calls), calls);
  /* Another account (no entry, global ACTIVE) is not asked either. */
  fe_event_t other = order(FE_EV_NEW_ORDER, 78, FE_SIDE_BUY, 1000, "X");
  assert_fe_ok(fe_trading_check(t, &other));
  assert_int_equal(atomic_load(&src.calls), calls);
  fe_trading_destroy(t);
}

static void test_reducing_without_callback(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 4;
  fe_trading_t *t = make(&cfg);
  fe_event_t buy = order(FE_EV_NEW_ORDER, 1, FE_SIDE_BUY, 1, "X");
  fe_event_t sell = order(FE_EV_NEW_ORDER, 1, FE_SIDE_SELL, 1, "X");
  fe_event_t cxl = order(FE_EV_CANCEL, 1, FE_SIDE_SELL, 1, "X");
  assert_fe_ok(fe_trading_check(t, &buy)); /* ACTIVE needs no callback */
  assert_fe_ok(fe_trading_set_account(t, 1, FE_TRADING_REDUCING, "r"));
  assert_fe(fe_trading_check(t, &buy), FE_EREDUCEONLY);
  assert_fe(fe_trading_check(t, &sell), FE_EREDUCEONLY);
  assert_fe_ok(fe_trading_check(t, &cxl));
  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.checked, 4);
  assert_int_equal(s.rejected_reducing, 2);
  fe_trading_destroy(t);
}

/* ---------------------------------------------------- stricter one wins */

static void test_stricter_wins(void **state) {
  (void)state;
  pos_src_t src;
  memset(&src, 0, sizeof src);
  src.pos = 100; /* long: a buy grows it, a small sell reduces it */
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 16;
  cfg.position = pos_cb;
  cfg.position_user = &src;
  fe_trading_t *t = make(&cfg);
  static const int by_state[N_STATES] = {0, FE_EREDUCEONLY, FE_EHALTED};
  for (int g = 0; g < N_STATES; g++)
    for (int a = 0; a < N_STATES; a++) {
      assert_fe_ok(fe_trading_set_global(t, STATES[g], "g"));
      assert_fe_ok(fe_trading_set_account(t, 5, STATES[a], "a"));
      int strict = g > a ? g : a;
      fe_event_t buy = order(FE_EV_NEW_ORDER, 5, FE_SIDE_BUY, 1, "X");
      fe_event_t sell = order(FE_EV_NEW_ORDER, 5, FE_SIDE_SELL, 1, "X");
      fe_event_t cxl = order(FE_EV_CANCEL, 5, FE_SIDE_BUY, 1, "X");
      if (fe_trading_check(t, &buy) != by_state[strict])
        fail_msg("global %s, account %s: buy got %s",
                 fe_trading_state_name(g), fe_trading_state_name(a),
                 fe_err_name(fe_trading_check(t, &buy)));
      assert_fe(fe_trading_check(t, &sell),
                strict == FE_TRADING_HALTED ? FE_EHALTED : 0);
      assert_fe_ok(fe_trading_check(t, &cxl));
      /* Account 6 has no entry: the global state alone. */
      fe_event_t other = order(FE_EV_NEW_ORDER, 6, FE_SIDE_BUY, 1, "X");
      assert_fe(fe_trading_check(t, &other), by_state[g]);
      assert_int_equal(fe_trading_get_account(t, 5), STATES[a]);
      assert_int_equal(fe_trading_get_global(t), STATES[g]);
    }
  fe_trading_destroy(t);
}

static void test_cancels_pass_when_halted(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 4;
  fe_trading_t *t = make(&cfg);
  assert_fe_ok(fe_trading_kill(t, "test"));
  assert_fe_ok(fe_trading_set_account(t, 0, FE_TRADING_HALTED, "both"));
  for (uint64_t acct = 0; acct < 3; acct++) {
    for (uint8_t side = FE_SIDE_BUY; side <= FE_SIDE_SELL_SHORT; side++) {
      fe_event_t cxl = order(FE_EV_CANCEL, acct, side, 5, "X");
      assert_fe_ok(fe_trading_check(t, &cxl));
      fe_event_t nos = order(FE_EV_NEW_ORDER, acct, side, 5, "X");
      assert_fe(fe_trading_check(t, &nos), FE_EHALTED);
    }
  }
  fe_trading_destroy(t);
}

/* ---------------------------------------------------------- table full */

static void test_table_full(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 4;
  fe_trading_t *t = make(&cfg);
  /* Account 0 lives outside the array but counts like any other. */
  assert_fe_ok(fe_trading_set_account(t, 0, FE_TRADING_HALTED, "a"));
  assert_fe_ok(fe_trading_set_account(t, 1, FE_TRADING_REDUCING, "b"));
  assert_fe_ok(fe_trading_set_account(t, 2, FE_TRADING_HALTED, "c"));
  assert_fe_ok(fe_trading_set_account(t, UINT64_MAX, FE_TRADING_HALTED, "d"));
  assert_fe(fe_trading_set_account(t, 3, FE_TRADING_HALTED, "e"),
            FE_ETABLEFULL);
  assert_fe(fe_trading_set_account(t, 4, FE_TRADING_REDUCING, "f"),
            FE_ETABLEFULL);
  /* ACTIVE needs no entry: not refused. */
  assert_fe_ok(fe_trading_set_account(t, 3, FE_TRADING_ACTIVE, "g"));
  assert_int_equal(fe_trading_get_account(t, 3), FE_TRADING_ACTIVE);
  fe_event_t nos3 = order(FE_EV_NEW_ORDER, 3, FE_SIDE_BUY, 1, "X");
  assert_fe_ok(fe_trading_check(t, &nos3));
  /* Present accounts keep working, both ways. */
  fe_event_t nos2 = order(FE_EV_NEW_ORDER, 2, FE_SIDE_BUY, 1, "X");
  fe_event_t nos0 = order(FE_EV_NEW_ORDER, 0, FE_SIDE_BUY, 1, "X");
  fe_event_t nosm = order(FE_EV_NEW_ORDER, UINT64_MAX, FE_SIDE_BUY, 1, "X");
  assert_fe(fe_trading_check(t, &nos2), FE_EHALTED);
  assert_fe(fe_trading_check(t, &nos0), FE_EHALTED);
  assert_fe(fe_trading_check(t, &nosm), FE_EHALTED);
  assert_fe_ok(fe_trading_set_account(t, 2, FE_TRADING_ACTIVE, "h"));
  assert_fe_ok(fe_trading_check(t, &nos2));
  assert_fe_ok(fe_trading_set_account(t, 2, FE_TRADING_HALTED, "i"));
  assert_fe(fe_trading_check(t, &nos2), FE_EHALTED);
  /* The entry freed by nothing: still full (ACTIVE keeps the entry). */
  assert_fe(fe_trading_set_account(t, 3, FE_TRADING_HALTED, "j"),
            FE_ETABLEFULL);
  assert_int_equal(fe_trading_get_account(t, 1), FE_TRADING_REDUCING);
  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.accounts, 4);
  assert_int_equal(s.table_full, 3);
  fe_trading_destroy(t);

  /* Larger: 1000 scattered accounts fill it exactly, each keeps its state. */
  cfg.max_accounts = 1000;
  t = make(&cfg);
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 42);
  static uint64_t accts[1000];
  for (int i = 0; i < 1000; i++) {
    accts[i] = fe_t_rng_next(&rng) | 1; /* nonzero, distinct w.h.p. */
    assert_fe_ok(fe_trading_set_account(t, accts[i], STATES[1 + i % 2], "x"));
  }
  assert_int_equal(stats(t).accounts, 1000);
  assert_fe(fe_trading_set_account(t, 2, FE_TRADING_HALTED, "x"),
            FE_ETABLEFULL);
  assert_fe(fe_trading_set_account(t, 0, FE_TRADING_HALTED, "x"),
            FE_ETABLEFULL);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(fe_trading_get_account(t, accts[i]), STATES[1 + i % 2]);
  fe_trading_destroy(t);
}

/* ----------------------------------------------------- change callbacks */

static void test_on_change_once_per_change(void **state) {
  (void)state;
  recorder_t r;
  memset(&r, 0, sizeof r);
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 8;
  cfg.on_change = on_change_rec;
  cfg.change_user = &r;
  cfg.on_kill = on_kill_rec;
  cfg.kill_user = &r;
  fe_trading_t *t = make(&cfg);
  r.t = t;

  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, "noop"));
  assert_int_equal(r.n, 0); /* not a change */
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_REDUCING, "risk limit"));
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_REDUCING, "again"));
  assert_int_equal(r.n, 1);
  assert_rec(&r.rec[0], 0, 1, FE_TRADING_ACTIVE, FE_TRADING_REDUCING,
             "risk limit");
  assert_int_equal(r.rec[0].global_seen, FE_TRADING_REDUCING); /* visible */

  /* Accounts: ACTIVE on an absent account is no change and no entry. */
  assert_fe_ok(fe_trading_set_account(t, 9, FE_TRADING_ACTIVE, "noop"));
  assert_int_equal(r.n, 1);
  assert_int_equal(stats(t).accounts, 0);
  assert_fe_ok(fe_trading_set_account(t, 9, FE_TRADING_HALTED, "fraud"));
  assert_fe_ok(fe_trading_set_account(t, 9, FE_TRADING_HALTED, "fraud2"));
  assert_fe_ok(fe_trading_set_account(t, 9, FE_TRADING_REDUCING, NULL));
  assert_fe_ok(fe_trading_set_account(t, 0, FE_TRADING_HALTED, "zero"));
  assert_int_equal(r.n, 4);
  assert_rec(&r.rec[1], 9, 0, FE_TRADING_ACTIVE, FE_TRADING_HALTED, "fraud");
  assert_rec(&r.rec[2], 9, 0, FE_TRADING_HALTED, FE_TRADING_REDUCING, "");
  assert_rec(&r.rec[3], 0, 0, FE_TRADING_ACTIVE, FE_TRADING_HALTED, "zero");

  /* Kill: on_kill then on_change, once; from the state it replaced. */
  assert_fe_ok(fe_trading_kill(t, "fat finger"));
  assert_int_equal(r.kills, 1);
  assert_int_equal(r.kill_from, FE_TRADING_REDUCING);
  assert_string_equal(r.kill_why, "fat finger");
  assert_int_equal(r.change_calls_at_kill, 4); /* on_kill came first */
  assert_int_equal(r.n, 5);
  assert_rec(&r.rec[4], 0, 1, FE_TRADING_REDUCING, FE_TRADING_HALTED,
             "fat finger");
  assert_int_equal(r.rec[4].global_seen, FE_TRADING_HALTED);
  /* Idempotent while halted: counted, nothing fired. */
  assert_fe_ok(fe_trading_kill(t, "again"));
  assert_fe_ok(fe_trading_kill(t, NULL));
  assert_int_equal(r.kills, 1);
  assert_int_equal(r.n, 5);
  /* Only an explicit set un-halts. */
  assert_int_equal(fe_trading_get_global(t), FE_TRADING_HALTED);
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, "reviewed"));
  assert_int_equal(r.n, 6);
  assert_rec(&r.rec[5], 0, 1, FE_TRADING_HALTED, FE_TRADING_ACTIVE,
             "reviewed");
  /* A kill with no reason reports "kill switch". */
  assert_fe_ok(fe_trading_kill(t, NULL));
  assert_int_equal(r.kills, 2);
  assert_int_equal(r.kill_from, FE_TRADING_ACTIVE);
  assert_string_equal(r.kill_why, "kill switch");
  assert_rec(&r.rec[6], 0, 1, FE_TRADING_ACTIVE, FE_TRADING_HALTED,
             "kill switch");
  /* set_global(HALTED) is a halt, not a kill; a kill then finds it halted. */
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, "x"));
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_HALTED, "manual"));
  assert_int_equal(r.kills, 2);
  assert_fe_ok(fe_trading_kill(t, "late"));
  assert_int_equal(r.kills, 2);
  assert_int_equal(r.n, 9);

  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.changes, (uint64_t)r.n);
  assert_int_equal(s.kills, 5);
  assert_int_equal(s.accounts, 2);
  fe_trading_destroy(t);
}

/* ------------------------------------------------ kill from a signal */

static fe_trading_t *sig_trading;

static void kill_handler(int sig) {
  (void)sig;
  fe_trading_kill(sig_trading, NULL); /* no callbacks configured: signal-safe */
}

static void test_kill_from_signal_handler(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 4;
  sig_trading = make(&cfg);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = kill_handler;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
  fe_event_t nos = order(FE_EV_NEW_ORDER, 1, FE_SIDE_BUY, 1, "X");
  assert_fe(fe_trading_check(sig_trading, &nos), FE_EHALTED);
  fe_trading_stats_t s = stats(sig_trading);
  assert_int_equal(s.kills, 1);
  assert_int_equal(s.changes, 1);
  fe_trading_destroy(sig_trading);
  sig_trading = NULL;
}

/* ------------------------------------------------------- concurrency */

#define N_CHECKERS 2
#define KILL_ROUNDS 5
#define PRE_KILL_CHECKS 20000  /* per checker, before the kill */
#define POST_KILL_CHECKS 20000 /* per checker, after seeing the flag */

typedef struct kill_shared {
  fe_trading_t *t;
  fe_t_errs_t errs;
  atomic_int killed;  /* killer -> checkers: release after kill returned */
  atomic_int stop;    /* main -> checkers */
  _Atomic uint64_t progress[N_CHECKERS];
  _Atomic uint64_t post[N_CHECKERS]; /* checks begun after seeing killed */
} kill_shared_t;

typedef struct checker {
  kill_shared_t *sh;
  uint32_t id;
  pthread_t th;
  /* results, read after join */
  uint64_t allowed, halted, reducing, other, violations;
} checker_t;

static void *checker_main(void *arg) {
  checker_t *c = arg;
  kill_shared_t *sh = c->sh;
  uint64_t i = 0;
  while (!atomic_load_explicit(&sh->stop, memory_order_acquire)) {
    /* Account 7 is REDUCING (long 100): its sells pass before the kill,
     * its buys do not; the others are ACTIVE. */
    uint64_t acct = 5 + (i % 4);
    uint8_t side = (i / 4) % 2 ? FE_SIDE_BUY : FE_SIDE_SELL;
    fe_event_t ev = order(FE_EV_NEW_ORDER, acct, side, 1, "KIL");
    /* The flag is read before the call: a check that saw it set began
     * after fe_trading_kill() returned (kill ; store-release flag ;
     * load-acquire flag ; check). */
    int after = atomic_load_explicit(&sh->killed, memory_order_acquire);
    int rc = fe_trading_check(sh->t, &ev);
    if (rc == 0) c->allowed++;
    else if (rc == FE_EHALTED) c->halted++;
    else if (rc == FE_EREDUCEONLY) c->reducing++;
    else c->other++;
    if (after) {
      if (rc != FE_EHALTED) c->violations++;
      atomic_fetch_add_explicit(&sh->post[c->id], 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&sh->progress[c->id], 1, memory_order_relaxed);
    i++;
  }
  FE_T_CHECK_EQ(&sh->errs, c->other, 0);
  return NULL;
}

static int all_at_least(_Atomic uint64_t *v, uint64_t n) {
  for (int i = 0; i < N_CHECKERS; i++)
    if (atomic_load_explicit(&v[i], memory_order_relaxed) < n) return 0;
  return 1;
}

static void *killer_main(void *arg) {
  kill_shared_t *sh = arg;
  /* Kill mid-stream: once both checkers are well under way. */
  while (!all_at_least(sh->progress, PRE_KILL_CHECKS)) sched_yield();
  FE_T_CHECK_EQ(&sh->errs, fe_trading_kill(sh->t, "stress"), 0);
  atomic_store_explicit(&sh->killed, 1, memory_order_release);
  return NULL;
}

static int64_t long100(uint64_t account, const char *symbol, void *user) {
  (void)account;
  (void)symbol;
  (void)user;
  return 100;
}

static void test_mt_kill_seen_by_checkers(void **state) {
  (void)state;
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 64;
  cfg.position = long100;
  fe_trading_t *t = make(&cfg);
  assert_fe_ok(fe_trading_set_account(t, 7, FE_TRADING_REDUCING, "r"));
  uint64_t allowed = 0, halted = 0, reducing = 0, violations = 0;
  for (int round = 0; round < KILL_ROUNDS; round++) {
    kill_shared_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->t = t;
    checker_t c[N_CHECKERS];
    memset(c, 0, sizeof c);
    for (uint32_t i = 0; i < N_CHECKERS; i++) {
      c[i].sh = sh;
      c[i].id = i;
      assert_int_equal(pthread_create(&c[i].th, NULL, checker_main, &c[i]),
                       0);
    }
    pthread_t killer;
    assert_int_equal(pthread_create(&killer, NULL, killer_main, sh), 0);
    assert_int_equal(pthread_join(killer, NULL), 0);
    int ok;
    FE_T_WAIT_UNTIL(ok, all_at_least(sh->post, POST_KILL_CHECKS),
                    FE_T_LONG_MS);
    atomic_store_explicit(&sh->stop, 1, memory_order_release);
    for (int i = 0; i < N_CHECKERS; i++)
      assert_int_equal(pthread_join(c[i].th, NULL), 0);
    assert_true(ok);
    fe_t_assert_clean(&sh->errs);
    for (int i = 0; i < N_CHECKERS; i++) {
      allowed += c[i].allowed;
      halted += c[i].halted;
      reducing += c[i].reducing;
      violations += c[i].violations;
    }
    free(sh);
    assert_int_equal(fe_trading_get_global(t), FE_TRADING_HALTED);
    assert_fe_ok(fe_trading_set_global(t, FE_TRADING_ACTIVE, "next round"));
  }
  assert_int_equal(violations, 0);
  fe_trading_stats_t s = stats(t);
  assert_int_equal(s.kills, KILL_ROUNDS);
  assert_int_equal(s.checked, allowed + halted + reducing);
  assert_int_equal(s.rejected_halted, halted);
  assert_int_equal(s.rejected_reducing, reducing);
  assert_true(allowed > 0 && reducing > 0 &&
              halted >= (uint64_t)KILL_ROUNDS * N_CHECKERS * POST_KILL_CHECKS);
  print_message("    (%" PRIu64 " checks: %" PRIu64 " allowed, %" PRIu64
                " halted, %" PRIu64 " reduce-only; 0 violations)\n",
                s.checked, allowed, halted, reducing);
  fe_trading_destroy(t);
}

/* Setters race checkers and each other: every change reported once, the
 * counters add up, the last set wins. */
typedef struct setter_shared {
  fe_trading_t *t;
  fe_t_errs_t errs;
  atomic_int stop;
  _Atomic uint64_t changes_seen;
} setter_shared_t;

static void count_change(uint64_t account, int is_global,
                         fe_trading_state_t from, fe_trading_state_t to,
                         const char *why, void *user) {
  setter_shared_t *sh = user;
  (void)account;
  (void)is_global;
  (void)why;
  if (from == to) fe_t_errf(&sh->errs, "on_change with from == to");
  atomic_fetch_add_explicit(&sh->changes_seen, 1, memory_order_relaxed);
}

typedef struct racer {
  setter_shared_t *sh;
  uint32_t id;
  uint64_t checks, allowed, rejected;
} racer_t;

static void *racer_check_main(void *arg) {
  racer_t *r = arg;
  uint64_t i = 0;
  while (!atomic_load_explicit(&r->sh->stop, memory_order_acquire)) {
    fe_event_t ev = order(i % 3 ? FE_EV_NEW_ORDER : FE_EV_EXEC_REPORT,
                          i % 40, (uint8_t)(1 + i % 3), 1, "R");
    int rc = fe_trading_check(r->sh->t, &ev);
    r->checks++;
    if (rc == 0) r->allowed++;
    else if (rc == FE_EHALTED || rc == FE_EREDUCEONLY) r->rejected++;
    else fe_t_errf(&r->sh->errs, "check returned %s", fe_err_name(rc));
    i++;
  }
  return NULL;
}

static void *racer_set_main(void *arg) {
  racer_t *r = arg;
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 1234 + r->id);
  for (int i = 0; i < 20000; i++) {
    uint64_t acct = fe_t_rng_next(&rng) % 32;
    fe_trading_state_t st = STATES[fe_t_rng_next(&rng) % 3];
    int rc = acct == 31 ? fe_trading_set_global(r->sh->t, st, "g")
                        : fe_trading_set_account(r->sh->t, acct, st, "a");
    FE_T_CHECK_EQ(&r->sh->errs, rc, 0);
  }
  return NULL;
}

static void test_mt_setters_race_checkers(void **state) {
  (void)state;
  setter_shared_t sh;
  memset(&sh, 0, sizeof sh);
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg);
  cfg.max_accounts = 64;
  cfg.position = long100;
  cfg.on_change = count_change;
  cfg.change_user = &sh;
  sh.t = make(&cfg);
  racer_t r[4];
  memset(r, 0, sizeof r);
  pthread_t th[4];
  for (uint32_t i = 0; i < 4; i++) {
    r[i].sh = &sh;
    r[i].id = i;
    assert_int_equal(pthread_create(&th[i], NULL,
                                    i < 2 ? racer_check_main : racer_set_main,
                                    &r[i]),
                     0);
  }
  assert_int_equal(pthread_join(th[2], NULL), 0);
  assert_int_equal(pthread_join(th[3], NULL), 0);
  atomic_store_explicit(&sh.stop, 1, memory_order_release);
  assert_int_equal(pthread_join(th[0], NULL), 0);
  assert_int_equal(pthread_join(th[1], NULL), 0);
  fe_t_assert_clean(&sh.errs);
  fe_trading_stats_t s = stats(sh.t);
  assert_int_equal(s.changes, atomic_load(&sh.changes_seen));
  assert_true(s.changes > 1000);
  assert_true(s.accounts <= 31);
  assert_int_equal(s.checked, r[0].checks + r[1].checks);
  assert_int_equal(s.checked - s.rejected_halted - s.rejected_reducing,
                   r[0].allowed + r[1].allowed);
  assert_int_equal(s.rejected_halted + s.rejected_reducing,
                   r[0].rejected + r[1].rejected);
  /* Quiescent now: one more set per account is seen exactly. */
  for (uint64_t a = 0; a < 31; a++) {
    assert_fe_ok(fe_trading_set_account(sh.t, a, STATES[a % 3], NULL));
    assert_int_equal(fe_trading_get_account(sh.t, a), STATES[a % 3]);
  }
  fe_trading_destroy(sh.t);
}

/* ------------------------------------------------------ cost (printed) */

static double ns_per_check(fe_trading_t *t, const fe_event_t *evs, int n_evs,
                           uint64_t iters) {
  uint64_t t0 = fe_t_now_ns();
  int sink = 0;
  for (uint64_t i = 0; i < iters; i++)
    sink += fe_trading_check(t, &evs[i & (uint64_t)(n_evs - 1)]);
  uint64_t t1 = fe_t_now_ns();
  assert_true(sink <= 0);
  return (double)(t1 - t0) / (double)iters;
}

static void test_check_cost(void **state) {
  (void)state;
  uint64_t iters = fe_t_env_u64("FE_TRADING_ITERS", 2000000);
  fe_trading_config_t cfg;
  fe_trading_config_init(&cfg); /* default 65536 accounts */
  cfg.position = long100;
  fe_trading_t *t = make(&cfg);
  for (uint64_t a = 1; a <= 1000; a++) /* 1000 entries */
    assert_fe_ok(fe_trading_set_account(t, a * 104729, FE_TRADING_HALTED, "x"));
  enum { N = 64 };
  static fe_event_t absent[N], present[N], reducing[N];
  for (int i = 0; i < N; i++) {
    absent[i] = order(FE_EV_NEW_ORDER, 1000000 + (uint64_t)i, FE_SIDE_SELL, 1,
                      "ACME");
    present[i] = order(FE_EV_NEW_ORDER, (uint64_t)(i + 1) * 104729,
                       FE_SIDE_SELL, 1, "ACME");
  }
  for (uint64_t a = 1; a <= N; a++)
    assert_fe_ok(fe_trading_set_account(t, a * 104729, FE_TRADING_ACTIVE, "x"));
  double ns_absent = ns_per_check(t, absent, N, iters);
  double ns_present = ns_per_check(t, present, N, iters);
  assert_fe_ok(fe_trading_set_global(t, FE_TRADING_REDUCING, "x"));
  for (int i = 0; i < N; i++) reducing[i] = absent[i];
  double ns_reducing = ns_per_check(t, reducing, N, iters);
  assert_fe_ok(fe_trading_kill(t, "x"));
  double ns_halted = ns_per_check(t, absent, N, iters);
  print_message("    check cost, 1 thread: ACTIVE no entry %.1f ns, ACTIVE "
                "with entry %.1f ns, REDUCING (callback) %.1f ns, HALTED "
                "%.1f ns\n",
                ns_absent, ns_present, ns_reducing, ns_halted);
  fe_trading_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_config_defaults),
      FE_T_TEST(test_invalid_configs),
      FE_T_TEST(test_null_args),
      FE_T_TEST(test_state_type_side_matrix),
      FE_T_TEST(test_reducing_positions),
      FE_T_TEST(test_reducing_without_callback),
      FE_T_TEST(test_stricter_wins),
      FE_T_TEST(test_cancels_pass_when_halted),
      FE_T_TEST(test_table_full),
      FE_T_TEST(test_on_change_once_per_change),
      FE_T_TEST(test_kill_from_signal_handler),
      FE_T_TEST(test_mt_kill_seen_by_checkers),
      FE_T_TEST(test_mt_setters_race_checkers),
      FE_T_TEST(test_check_cost),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
