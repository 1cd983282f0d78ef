/*
 * test_compliance_conf: the compliance file loader
 * (include/finevent/compliance_conf.h, libfinevent-compliance-conf).
 *
 *   examples/compliance.ini loads and means what the C API says it means
 *     (test_example_file);
 *   the fingerprint does not depend on order or formatting
 *     (test_format_independent);
 *   every kind of bad file is refused with its file, line and reason, and
 *     nothing is handed back or changed (test_errors);
 *   [tables] and the pin fill the host's configuration (test_cfg_keys);
 *   NULL and unreadable files (test_null_and_io).
 */
#include "helpers.h"

#include "finevent/compliance_conf.h"

#ifndef FE_EXAMPLES_DIR
#define FE_EXAMPLES_DIR "examples"
#endif

#define PX(x) ((int64_t)((x) * FE_PRICE_SCALE))

static fe_fingerprint_t fp_of(const fe_compliance_rules_t *r) {
  fe_fingerprint_t f;
  assert_int_equal(fe_compliance_rules_fingerprint(r, &f), 0);
  return f;
}

static int parse(const char *text, fe_compliance_rules_t **r,
                 fe_compliance_config_t *cfg, fe_compliance_conf_error_t *e) {
  return fe_compliance_conf_parse(text, strlen(text), "t.ini", r, cfg, e);
}

/* The example file, written again through the C API. */
static fe_compliance_rules_t *example_by_api(void) {
  fe_compliance_rules_t *r;
  assert_int_equal(fe_compliance_rules_create(&r), 0);
  fe_compliance_rules_profile(r, FE_PROFILE_PRODUCTION);
  fe_compliance_rules_smp(r, FE_SMP_CANCEL_NEWEST);
  fe_compliance_rules_mode(r, FE_RULE_MAX_QTY, FE_MODE_CORRECTIVE);
  fe_compliance_rules_mode(r, FE_RULE_COLLAR, FE_MODE_CORRECTIVE);
  fe_compliance_rules_mode(r, FE_RULE_DUPLICATE, FE_MODE_DETECTIVE);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 10000);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_NOTIONAL, PX(1000000));
  fe_compliance_rules_limit(r, FE_LIMIT_CREDIT, PX(250000));
  fe_compliance_rules_limit(r, FE_LIMIT_FIRM_CREDIT, PX(50000000));
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_OPEN, 32);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_POSITION, 100000);
  fe_compliance_rules_limit(r, FE_LIMIT_DUP_WINDOW_NS, 500 * FE_T_MS);
  fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 50);
  fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_BURST, 20);
  fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 1000);
  fe_compliance_rules_collar(r, NULL, PX(1), FE_COLLAR_BPS, 500);
  fe_compliance_rules_collar(r, NULL, PX(100), FE_COLLAR_BPS, 200);
  fe_compliance_rules_collar(r, NULL, PX(1000), FE_COLLAR_ABSOLUTE, PX(20));
  const uint64_t acc[] = {1001, 1002, 1003, 1004, 2001, 2002};
  for (size_t i = 0; i < 6; i++)
    fe_compliance_rules_authorize(r, acc[i]);
  fe_compliance_rules_restrict(r, "GME");
  fe_compliance_rules_restrict(r, "AMC");
  fe_compliance_rules_account_limit(r, 1001, FE_LIMIT_CREDIT, PX(1000000));
  fe_compliance_rules_account_limit(r, 1001, FE_LIMIT_MAX_QTY, 50000);
  fe_compliance_rules_account_limit(r, 2002, FE_LIMIT_MAX_OPEN, 4);
  fe_compliance_rules_symbol_limit(r, "TSLA", FE_LIMIT_MAX_QTY, 2000);
  fe_compliance_rules_collar(r, "TSLA", 0, FE_COLLAR_BPS, 100);
  fe_compliance_rules_restrict(r, "PENNY");
  return r;
}

static void test_example_file(void **state) {
  (void)state;
  fe_compliance_rules_t *r = NULL;
  fe_compliance_conf_error_t e;
  int rc = fe_compliance_conf_load(FE_EXAMPLES_DIR "/compliance.ini", &r, NULL,
                                   &e);
  if (rc != 0)
    fail_msg("%s:%d: %s", e.file, e.line, e.reason);
  fe_compliance_rules_t *api = example_by_api();
  fe_fingerprint_t a = fp_of(r), b = fp_of(api);
  assert_memory_equal(&a, &b, sizeof a);
  /* and it runs: a TSLA order above 2000 is clamped (corrective) */
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  cfg.max_orders = cfg.max_cells = 1024;
  fe_compliance_t *c;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), 0);
  fe_compliance_set_reference(c, "TSLA", PX(200));
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = FE_EV_NEW_ORDER;
  ev.order.account = 1001;
  ev.order.side = FE_SIDE_BUY;
  ev.order.type = FE_ORD_LIMIT;
  ev.order.quantity = 3000;
  ev.order.price = PX(201);
  memcpy(ev.order.symbol, "TSLA", 4);
  memcpy(ev.order.client_order_id, "x1", 2);
  fe_compliance_result_t res;
  assert_int_equal(fe_compliance_check(c, 0, &ev, &res), FE_CONTINUE);
  assert_int_equal(ev.order.quantity, 2000);
  ev.order.account = 9999; /* not authorized */
  memcpy(ev.order.client_order_id, "x2", 2);
  assert_int_equal(fe_compliance_check(c, 0, &ev, &res), FE_REJECT);
  assert_int_equal(res.reason, FE_CR_UNAUTHORIZED);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(r);
  fe_compliance_rules_destroy(api);
}

static void test_format_independent(void **state) {
  (void)state;
  const char *a =
      "[compliance]\nprofile = development\n"
      "[modes]\ncredit = preventive\n"
      "[defaults]\nmax_qty = 100\ncollar = 0:5%, 10:1.5\n"
      "[account 7]\ncredit = 1000.5\n"
      "[restricted]\nsymbols = A B\n";
  /* the same rules: other order, comments, spacing, [modes] before the
   * profile, a value set twice, a list split and repeated */
  const char *b =
      "; a comment\n# another\n"
      "[restricted]\nsymbols = B\nsymbols=A,B\n"
      "[modes]\n  credit   =   preventive   ; inline\n"
      "[account 7]\ncredit = 1\ncredit = 1000.50000000\n"
      "[defaults]\ncollar = 10:1.5\ncollar=0:5.00%\nmax_qty=100\n"
      "[compliance]\nprofile=development\n";
  fe_compliance_rules_t *ra, *rb;
  fe_compliance_conf_error_t e;
  assert_int_equal(parse(a, &ra, NULL, &e), 0);
  if (parse(b, &rb, NULL, &e) != 0)
    fail_msg("%d: %s", e.line, e.reason);
  fe_fingerprint_t fa = fp_of(ra), fb = fp_of(rb);
  assert_memory_equal(&fa, &fb, sizeof fa);
  /* and one effective difference changes it */
  fe_compliance_rules_t *rc;
  assert_int_equal(parse("[defaults]\nmax_qty = 101\n", &rc, NULL, &e), 0);
  fe_compliance_rules_limit(ra, FE_LIMIT_MAX_QTY, 101);
  fe_fingerprint_t fc = fp_of(ra);
  assert_memory_not_equal(&fa, &fc, sizeof fa);
  fe_compliance_rules_destroy(ra);
  fe_compliance_rules_destroy(rb);
  fe_compliance_rules_destroy(rc);
}

static void test_errors(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int line;
    const char *why;
  } bad[] = {
      {"[defaults]\nmax_qty = ten\n", 2, "whole number"},
      {"[defaults]\nmax_qty = -1\n", 2, "whole number"},
      {"[defaults]\nmax_qty = 99999999999999999999\n", 2, "whole number"},
      {"[defaults]\nmax_notional = 1.123456789\n", 2, "decimal"},
      {"[defaults]\nmax_notional = 1.\n", 2, "decimal"},
      {"[defaults]\nmax_open = 33\n", 2, "out of range"},
      {"[defaults]\nthrottle_rate = 0\n", 2, "out of range"},
      {"[defaults]\ndup_window = 5min\n", 2, "duration"},
      {"[defaults]\nnope = 1\n", 2, "unknown key 'nope'"},
      {"[defaults]\ncollar = 0-5%\n", 2, "FROM:WIDTH"},
      {"[defaults]\ncollar = 0:101%\n", 2, "out of range"},
      {"[defaults]\ncollar = 0:0\n", 2, "out of range"},
      {"[defaults]\ncollar = x:1%\n", 2, "tier price"},
      {"[defaults]\ncollar = 0:1.234%\n", 2, "width"},
      {"[defaults]\ncollar = 0:1%,1:1%,2:1%,3:1%,4:1%,5:1%,6:1%,7:1%,8:1%\n", 2,
       "at most"},
      {"\n\n[modes]\nmax_qty = strict\n", 4, "mode 'strict'"},
      {"[modes]\nfoo = off\n", 2, "unknown rule 'foo'"},
      {"[compliance]\nprofile = lax\n", 2, "production or development"},
      {"[compliance]\nsmp = maybe\n", 2, "cancel_newest"},
      {"[compliance]\ncolour = red\n", 2, "unknown key"},
      {"[compliance]\npin = preventive\n", 2, "cfg is NULL"},
      {"[tables]\nmax_orders = 5\n", 2, "cfg is NULL"},
      {"[authorized]\naccounts = 1 2 x3\n", 2, "'x3'"},
      {"[authorized]\nusers = 1\n", 2, "unknown key"},
      {"[restricted]\nsymbols = A SEVENTEEN_CHARS_X\n", 2, "longer than"},
      {"[account abc]\ncredit = 1\n", 2, "not an account"},
      {"[account 1]\nfirm_credit = 1\n", 2, "per account"},
      {"[account 1]\nauthorized = perhaps\n", 2, "yes or no"},
      {"[symbol A]\ncredit = 1\n", 2, "per symbol"},
      {"[symbol A]\nrestricted = 2\n", 2, "yes or no"},
      {"[symbol SEVENTEEN_CHARS_X]\nmax_qty = 1\n", 2, "not a symbol"},
      {"[wat]\nx = 1\n", 2, "unknown section"},
      {"max_qty = 1\n", 1, "outside a section"},
      {"[defaults]\nmax_qty =\n", 2, "empty value"},
      {"[defaults]\nmax_qty 5\n", 2, "syntax error"},
      {"[defaults\nmax_qty = 5\n", 1, "syntax error"},
      /* a syntax error before a bad value: the first one is reported */
      {"[defaults]\njunk\nmax_qty = x\n", 2, "syntax error"},
      /* a bad value before a syntax error */
      {"[defaults]\nmax_qty = x\njunk\n", 2, "whole number"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fe_compliance_rules_t *sentinel = (fe_compliance_rules_t *)&bad[i];
    fe_compliance_rules_t *r = sentinel;
    fe_compliance_conf_error_t e;
    memset(&e, 0, sizeof e);
    int rc = parse(bad[i].text, &r, NULL, &e);
    if (rc >= 0 || e.line != bad[i].line || strstr(e.reason, bad[i].why) == NULL)
      fail_msg("case %zu: rc %d line %d (want %d) reason '%s' (want '%s')", i,
               rc, e.line, bad[i].line, e.reason, bad[i].why);
    assert_int_equal(e.code, rc);
    assert_string_equal(e.file, "t.ini");
    assert_ptr_equal(r, sentinel); /* nothing handed back */
  }
  /* a bad line among good ones: the config is untouched too */
  fe_compliance_config_t cfg, before;
  fe_compliance_config_init(&cfg);
  before = cfg;
  fe_compliance_rules_t *r = NULL;
  fe_compliance_conf_error_t e;
  assert_int_equal(parse("[tables]\nmax_orders = 64\n[compliance]\npin = "
                         "preventive\napproved = 00\n", &r, &cfg, &e),
                   FE_EINVAL);
  assert_int_equal(e.line, 5);
  assert_null(r);
  assert_memory_equal(&cfg, &before, sizeof cfg);
  /* a NUL byte and an over-long line are refused with their line */
  char nul[] = "[defaults]\nmax_qty = 1\0\n";
  assert_int_equal(fe_compliance_conf_parse(nul, sizeof nul - 1, NULL, &r,
                                            NULL, &e), FE_EINVAL);
  assert_int_equal(e.line, 2);
  assert_string_equal(e.file, "<string>");
  char longl[400];
  memset(longl, 'x', sizeof longl);
  memcpy(longl, "[defaults]\n", 11);
  longl[sizeof longl - 1] = '\0';
  assert_int_equal(parse(longl, &r, NULL, &e), FE_EINVAL);
  assert_int_equal(e.line, 2);
  assert_non_null(strstr(e.reason, "longer"));
}

static void test_cfg_keys(void **state) {
  (void)state;
  fe_compliance_rules_t *r = NULL;
  assert_int_equal(fe_compliance_rules_create(&r), 0);
  fe_fingerprint_t f = fp_of(r);
  char hex[FE_FINGERPRINT_HEX];
  fe_fingerprint_format(f, hex);
  fe_compliance_rules_destroy(r);
  char text[512];
  snprintf(text, sizeof text,
           "[tables]\nmax_accounts = 10\nmax_symbols = 11\nmax_cells = 12\n"
           "max_orders = 13\n[compliance]\npin = preventive\napproved = %s\n",
           hex);
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  fe_compliance_conf_error_t e;
  assert_int_equal(parse(text, &r, &cfg, &e), 0);
  assert_int_equal(cfg.max_accounts, 10);
  assert_int_equal(cfg.max_symbols, 11);
  assert_int_equal(cfg.max_cells, 12);
  assert_int_equal(cfg.max_orders, 13);
  assert_int_equal(cfg.pin_mode, FE_MODE_PREVENTIVE);
  assert_memory_equal(&cfg.approved, &f, sizeof f);
  /* the pinned, empty rule set starts; another one would be refused */
  fe_compliance_t *c;
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), 0);
  fe_compliance_destroy(c);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 1);
  assert_int_equal(fe_compliance_create(&cfg, r, &c, NULL), FE_EMISMATCH);
  fe_compliance_rules_destroy(r);
  assert_int_equal(parse("[tables]\nmax_orders = 0\n", &r, &cfg, &e),
                   FE_ERANGE);
  assert_int_equal(parse("[tables]\nsize = 1\n", &r, &cfg, &e), FE_EINVAL);
}

static void test_null_and_io(void **state) {
  (void)state;
  fe_compliance_rules_t *r = NULL;
  fe_compliance_conf_error_t e;
  assert_int_equal(fe_compliance_conf_parse(NULL, 0, "x", &r, NULL, &e),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_conf_parse("", 0, "x", NULL, NULL, &e),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_conf_parse("", 0, "x", NULL, NULL, NULL),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_conf_parse("x", 1, "x", &r, NULL, NULL),
                   FE_EINVAL);
  assert_int_equal(fe_compliance_conf_parse("", (size_t)1 << 30, "x", &r,
                                            NULL, &e), FE_ERANGE);
  assert_int_equal(fe_compliance_conf_load(NULL, &r, NULL, &e), FE_EINVAL);
  assert_int_equal(fe_compliance_conf_load("x", NULL, NULL, &e), FE_EINVAL);
  assert_int_equal(fe_compliance_conf_load("/nonexistent/c.ini", &r, NULL, &e),
                   FE_EIO);
  assert_int_equal(e.line, 0);
  assert_string_equal(e.file, "/nonexistent/c.ini");
  assert_non_null(strstr(e.reason, "cannot open"));
  assert_int_equal(fe_compliance_conf_load("/", &r, NULL, &e), FE_EIO);
  assert_null(r);
  /* an empty file is an empty, valid rule set */
  assert_int_equal(fe_compliance_conf_parse("", 0, NULL, &r, NULL, &e), 0);
  assert_non_null(r);
  fe_compliance_rules_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_example_file),
      FE_T_TEST(test_format_independent),
      FE_T_TEST(test_errors),
      FE_T_TEST(test_cfg_keys),
      FE_T_TEST(test_null_and_io),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
