/* Reconciliation (recon.h): every break kind, tolerances at their
 * boundaries, the callback, bad arguments; the statement file's parser
 * (each refusal with its line and reason), writer and round trip; the
 * settlement calendar. */
#include "helpers.h"

#include <sys/stat.h>

#include "finevent/recon.h"

#define S FE_PRICE_SCALE

static fe_recon_item_t item(uint64_t account, const char *ref, int64_t qty,
                            int64_t amount) {
  fe_recon_item_t it;
  memset(&it, 0, sizeof it);
  it.account = account;
  snprintf(it.ref, sizeof it.ref, "%s", ref);
  it.quantity = qty;
  it.amount = amount;
  return it;
}

/* Runs one ledger item against one statement item: the kinds found, as a
 * bit mask (1 << kind). */
static unsigned one_pair(const fe_recon_config_t *cfg, fe_recon_item_t l,
                         fe_recon_item_t s) {
  fe_recon_report_t rep;
  assert_int_equal(fe_recon_run(cfg, &l, 1, &s, 1, &rep, NULL), 0);
  unsigned mask = 0;
  for (uint64_t i = 0; i < rep.n_breaks; i++)
    mask |= 1u << rep.breaks[i].kind;
  assert_int_equal(rep.matched, mask == 0);
  fe_recon_report_free(&rep);
  return mask;
}

static void every_kind(void **state) {
  (void)state;
  fe_recon_item_t ledger[] = {
      item(1, "AAPL", 100, 15000 * S), /* matches */
      item(1, "MSFT", 10, 4000 * S),   /* missing from the statement */
      item(2, "AAPL", 50, 7500 * S),   /* quantity differs */
      item(3, "IBM", 5, 1000 * S),     /* amount differs */
      item(4, "TSLA", 7, 700 * S),     /* both differ: two breaks */
  };
  fe_recon_item_t stmt[] = {
      item(4, "TSLA", 8, 800 * S),   item(3, "IBM", 5, 1001 * S),
      item(2, "AAPL", 49, 7500 * S), item(1, "AAPL", 100, 15000 * S),
      item(9, "GOOG", 1, 100 * S), /* extra */
  };
  stmt[4].line = 77;
  fe_recon_config_t cfg;
  fe_recon_config_init(&cfg);
  fe_recon_report_t rep;
  fe_diag_t d;
  assert_int_equal(fe_recon_run(&cfg, ledger, 5, stmt, 5, &rep, &d), 0);
  assert_int_equal(rep.ledger_items, 5);
  assert_int_equal(rep.statement_items, 5);
  assert_int_equal(rep.matched, 1);
  assert_int_equal(rep.n_breaks, 6);
  assert_int_equal(rep.by_kind[FE_RECON_MISSING], 1);
  assert_int_equal(rep.by_kind[FE_RECON_EXTRA], 1);
  assert_int_equal(rep.by_kind[FE_RECON_QUANTITY], 2);
  assert_int_equal(rep.by_kind[FE_RECON_AMOUNT], 2);
  /* key order: (1,MSFT) (2,AAPL) (3,IBM) (4,TSLA)x2 (9,GOOG) */
  const fe_recon_break_t *b = rep.breaks;
  assert_int_equal(b[0].kind, FE_RECON_MISSING);
  assert_int_equal(b[0].account, 1);
  assert_string_equal(b[0].ref, "MSFT");
  assert_int_equal(b[0].ledger_quantity, 10);
  assert_int_equal(b[0].statement_quantity, 0);
  assert_int_equal(b[0].line, 0);
  assert_int_equal(b[1].kind, FE_RECON_QUANTITY);
  assert_int_equal(b[1].ledger_quantity, 50);
  assert_int_equal(b[1].statement_quantity, 49);
  assert_int_equal(b[2].kind, FE_RECON_AMOUNT);
  assert_int_equal(b[2].ledger_amount, 1000 * S);
  assert_int_equal(b[2].statement_amount, 1001 * S);
  assert_int_equal(b[3].kind, FE_RECON_QUANTITY);
  assert_int_equal(b[4].kind, FE_RECON_AMOUNT);
  assert_int_equal(b[3].account, 4);
  assert_int_equal(b[5].kind, FE_RECON_EXTRA);
  assert_int_equal(b[5].account, 9);
  assert_int_equal(b[5].line, 77);
  assert_int_equal(b[5].ledger_amount, 0);
  assert_int_equal(b[5].statement_amount, 100 * S);
  assert_string_equal(fe_recon_kind_name(b[5].kind), "EXTRA");
  fe_recon_report_free(&rep);
  assert_null(rep.breaks);
  fe_recon_report_free(NULL);
  /* Same ref, other account, and same account, other ref, are other keys. */
  fe_recon_item_t l2[] = {item(1, "A", 1, 1), item(2, "A", 1, 1)};
  fe_recon_item_t s2[] = {item(1, "A", 1, 1), item(1, "AB", 1, 1)};
  assert_int_equal(fe_recon_run(&cfg, l2, 2, s2, 2, &rep, NULL), 0);
  assert_int_equal(rep.by_kind[FE_RECON_MISSING], 1);
  assert_int_equal(rep.by_kind[FE_RECON_EXTRA], 1);
  assert_int_equal(rep.matched, 1);
  fe_recon_report_free(&rep);
  /* Empty sides. */
  assert_int_equal(fe_recon_run(&cfg, NULL, 0, NULL, 0, &rep, NULL), 0);
  assert_int_equal(rep.n_breaks, 0);
  assert_int_equal(fe_recon_run(&cfg, l2, 2, NULL, 0, &rep, NULL), 0);
  assert_int_equal(rep.by_kind[FE_RECON_MISSING], 2);
  fe_recon_report_free(&rep);
  assert_string_equal(fe_recon_kind_name(0), "UNKNOWN");
  assert_string_equal(fe_recon_kind_name(5), "UNKNOWN");
}

static void tolerances(void **state) {
  (void)state;
  fe_recon_config_t cfg;
  fe_recon_config_init(&cfg);
  unsigned Q = 1u << FE_RECON_QUANTITY, A = 1u << FE_RECON_AMOUNT;
  /* exact by default: one unit or one 10^-8 is a break */
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, S), item(1, "X", 11, S)), Q);
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, S), item(1, "X", 10, S + 1)), A);
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, S), item(1, "X", 10, S)), 0);
  /* quantity tolerance 2: |diff| 2 matches, 3 breaks, both signs */
  cfg.quantity_tolerance = 2;
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, 0), item(1, "X", 12, 0)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, 0), item(1, "X", 8, 0)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, 0), item(1, "X", 13, 0)), Q);
  assert_int_equal(one_pair(&cfg, item(1, "X", 10, 0), item(1, "X", 7, 0)), Q);
  /* absolute amount tolerance 0.01 */
  cfg.amount_tolerance = S / 100;
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, 100 * S), item(1, "X", 1, 100 * S + S / 100)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, 100 * S), item(1, "X", 1, 100 * S - S / 100)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, 100 * S), item(1, "X", 1, 100 * S + S / 100 + 1)), A);
  /* 10 bp of 1,000,000.00 is 1,000.00: larger than 0.01, so it rules */
  cfg.amount_tolerance_bp = 10;
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, 1000000 * S), item(1, "X", 1, 1001000 * S)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, 1000000 * S), item(1, "X", 1, 1001000 * S + 1)), A);
  /* of a negative ledger amount: |amount| */
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, -1000000 * S), item(1, "X", 1, -999000 * S)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, -1000000 * S), item(1, "X", 1, -999000 * S + 1)), A);
  /* of a small amount the absolute 0.01 rules */
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, S), item(1, "X", 1, S + S / 100)), 0);
  assert_int_equal(one_pair(&cfg, item(1, "X", 1, S), item(1, "X", 1, S + S / 100 + 1)), A);
  /* extremes do not overflow */
  fe_recon_config_init(&cfg);
  cfg.amount_tolerance_bp = 10000;
  assert_int_equal(one_pair(&cfg, item(1, "X", INT64_MAX, INT64_MAX), item(1, "X", INT64_MIN, INT64_MIN)), Q | A);
  cfg.quantity_tolerance = INT64_MAX;
  cfg.amount_tolerance = INT64_MAX;
  assert_int_equal(one_pair(&cfg, item(1, "X", INT64_MAX, 0), item(1, "X", -1, 0)), Q);
  assert_int_equal(one_pair(&cfg, item(1, "X", INT64_MAX, 0), item(1, "X", 0, 0)), 0);
}

typedef struct seen {
  int n, stop_at;
  uint32_t kinds[16];
} seen_t;

static int on_break(const fe_recon_break_t *b, void *user) {
  seen_t *s = user;
  s->kinds[s->n++] = b->kind;
  return s->n == s->stop_at ? 42 : 0;
}

static void callback(void **state) {
  (void)state;
  fe_recon_item_t l[] = {item(1, "A", 1, 1), item(2, "B", 1, 1), item(3, "C", 1, 1)};
  fe_recon_item_t s[] = {item(1, "A", 2, 1), item(3, "C", 1, 2), item(4, "D", 1, 1)};
  seen_t seen = {0, 0, {0}};
  fe_recon_config_t cfg;
  fe_recon_config_init(&cfg);
  cfg.on_break = on_break, cfg.user = &seen;
  fe_recon_report_t rep;
  assert_int_equal(fe_recon_run(&cfg, l, 3, s, 3, &rep, NULL), 0);
  assert_int_equal(seen.n, 4);
  assert_int_equal(seen.kinds[0], FE_RECON_QUANTITY);
  assert_int_equal(seen.kinds[1], FE_RECON_MISSING);
  assert_int_equal(seen.kinds[2], FE_RECON_AMOUNT);
  assert_int_equal(seen.kinds[3], FE_RECON_EXTRA);
  fe_recon_report_free(&rep);
  /* a non-zero answer stops the run and is returned */
  memset(&seen, 0, sizeof seen);
  seen.stop_at = 2;
  assert_int_equal(fe_recon_run(&cfg, l, 3, s, 3, &rep, NULL), 42);
  assert_int_equal(seen.n, 2);
  assert_int_equal(rep.n_breaks, 2);
  fe_recon_report_free(&rep);
}

static void bad_arguments(void **state) {
  (void)state;
  fe_recon_config_t cfg;
  fe_recon_config_init(&cfg);
  fe_recon_config_init(NULL);
  fe_recon_report_t rep;
  fe_diag_t d;
  fe_recon_item_t l[] = {item(1, "A", 1, 1), item(1, "A", 2, 2)};
  assert_int_equal(fe_recon_run(NULL, l, 1, l, 1, &rep, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_int_equal(fe_recon_run(&cfg, l, 1, l, 1, NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_recon_run(&cfg, NULL, 1, l, 1, &rep, NULL), FE_EINVAL);
  assert_int_equal(fe_recon_run(&cfg, l, 1, NULL, 1, &rep, NULL), FE_EINVAL);
  /* a key twice on one side */
  assert_int_equal(fe_recon_run(&cfg, l, 2, l, 1, &rep, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "ledger has account 1 ref A twice"));
  assert_int_equal(fe_recon_run(&cfg, l, 1, l, 2, &rep, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "statement"));
  assert_null(rep.breaks);
  /* empty or unterminated refs */
  fe_recon_item_t e = item(1, "", 1, 1);
  assert_int_equal(fe_recon_run(&cfg, &e, 1, NULL, 0, &rep, &d), FE_EINVAL);
  memset(e.ref, 'x', sizeof e.ref);
  assert_int_equal(fe_recon_run(&cfg, NULL, 0, &e, 1, &rep, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "NUL-terminated"));
  /* ranges */
  cfg.quantity_tolerance = -1;
  assert_int_equal(fe_recon_run(&cfg, l, 1, l, 1, &rep, &d), FE_ERANGE);
  assert_int_equal(d.code, FE_ERANGE);
  fe_recon_config_init(&cfg);
  cfg.amount_tolerance = -1;
  assert_int_equal(fe_recon_run(&cfg, l, 1, l, 1, &rep, &d), FE_ERANGE);
  fe_recon_config_init(&cfg);
  cfg.amount_tolerance_bp = 10001;
  assert_int_equal(fe_recon_run(&cfg, l, 1, l, 1, &rep, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "10001"));
  fe_recon_config_init(&cfg);
  assert_int_equal(fe_recon_run(&cfg, l, (size_t)FE_RECON_MAX_ITEMS + 1, l, 1, &rep, &d), FE_ERANGE);
}

/* --------------------------------------------------------------- parser */

#define HEAD "statement,v1,CUST-A,2026-12-04\naccount,ref,quantity,amount\n"

static fe_recon_statement_t *parse_ok(const char *text) {
  fe_recon_statement_t *st = NULL;
  fe_recon_error_t err;
  int rc = fe_recon_parse(text, strlen(text), "t.csv", &st, &err);
  if (rc != 0)
    fail_msg("refused: %s", err.msg);
  return st;
}

static void parse_good(void **state) {
  (void)state;
  fe_recon_statement_t *st = parse_ok(
      "# a comment\n\n" HEAD "1001,AAPL,100,-15025.5\n"
      "# inside\n18446744073709551615,T-000123/x.y:z_,-20,3001.00000001\n"
      "7,Z,0,0.1\n8,Y,-9223372036854775807,-92233720368.54775807\nend,4\n# tail\n\n");
  assert_string_equal(st->custodian, "CUST-A");
  assert_int_equal(st->as_of, 20261204);
  assert_int_equal(st->n_items, 4);
  assert_int_equal(st->items[0].account, 1001);
  assert_string_equal(st->items[0].ref, "AAPL");
  assert_int_equal(st->items[0].quantity, 100);
  assert_int_equal(st->items[0].amount, -(15025 * S + S / 2));
  assert_int_equal(st->items[0].line, 5);
  assert_int_equal(st->items[1].account, UINT64_MAX);
  assert_string_equal(st->items[1].ref, "T-000123/x.y:z_");
  assert_int_equal(st->items[1].amount, 3001 * S + 1);
  assert_int_equal(st->items[1].line, 7);
  assert_int_equal(st->items[2].amount, S / 10);
  assert_int_equal(st->items[3].quantity, -INT64_MAX);
  assert_int_equal(st->items[3].amount, -INT64_MAX);
  fe_recon_statement_free(st);
  /* CRLF, no final newline, no items */
  st = parse_ok("statement,v1,c,2024-02-29\r\naccount,ref,quantity,amount\r\nend,0");
  assert_int_equal(st->n_items, 0);
  assert_int_equal(st->as_of, 20240229);
  fe_recon_statement_free(st);
  fe_recon_statement_free(NULL);
}

/* Each bad file: the line the error must name and a piece of its reason. */
static const struct {
  const char *text;
  uint32_t line;
  const char *why;
} bad_files[] = {
    {"", 1, "empty file"},
    {"# only a comment\n", 2, "empty file"},
    {"statement,v1,C,2026-12-04\n", 2, "no column header"},
    {HEAD "1,A,1,1\n", 4, "truncated"},
    {"stmt,v1,C,2026-12-04\n", 1, "expected \"statement"},
    {"statement,v2,C,2026-12-04\n", 1, "unknown format version \"v2\""},
    {"statement,v1,C D,2026-12-04\n", 1, "custodian"},
    {"statement,v1,,2026-12-04\n", 1, "custodian"},
    {"statement,v1,C,2026-02-29\n", 1, "as-of date"},
    {"statement,v1,C,1969-12-31\n", 1, "as-of date"},
    {"statement,v1,C,2026-1-04\n", 1, "as-of date"},
    {"statement,v1,C,2026-12-04,x\n", 1, "expected \"statement"},
    {"statement,v1,C,2026-12-04\naccount,ref,qty,amount\n", 2, "header"},
    {HEAD "1,A,1\n", 3, "got 3"},
    {HEAD "1,A,1,1,1\n", 3, "got more"},
    {HEAD "0,A,1,1\nend,1\n", 3, "account"},
    {HEAD "18446744073709551616,A,1,1\nend,1\n", 3, "account"},
    {HEAD "+1,A,1,1\nend,1\n", 3, "account"},
    {HEAD " 1,A,1,1\nend,1\n", 3, "account"},
    {HEAD "1,,1,1\nend,1\n", 3, "ref"},
    {HEAD "1,A B,1,1\nend,1\n", 3, "ref"},
    {HEAD "1,\"A\",1,1\nend,1\n", 3, "ref"},
    {HEAD "1,ABCDEFGHIJKLMNOPQRSTUVWXYZ012345,1,1\nend,1\n", 3, "ref"},
    {HEAD "1,A,1.5,1\nend,1\n", 3, "quantity"},
    {HEAD "1,A,,1\nend,1\n", 3, "quantity"},
    {HEAD "1,A,-,1\nend,1\n", 3, "quantity"},
    {HEAD "1,A,9223372036854775808,1\nend,1\n", 3, "quantity"},
    {HEAD "1,A,1,1.123456789\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,1.\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,.5\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,1e5\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,92233720368.54775808\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,92233720369\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,--1\nend,1\n", 3, "amount"},
    {HEAD "1,A,1,1\nend,2\n", 4, "says 2 items, the file has 1"},
    {HEAD "end,x\n", 3, "item count"},
    {HEAD "end,0\n1,A,1,1\n", 4, "after the end"},
    {HEAD "end,0\nend,0\n", 4, "after the end"},
    {HEAD "1,A,1,1\n2,B,1,1\n1,A,3,3\nend,3\n", 5, "already on line 3"},
    {HEAD "1,A,1,1\r\r\nend,1\n", 3, "carriage return"},
};

static void parse_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
    fe_recon_statement_t *st = (void *)0x1;
    fe_recon_error_t err;
    const char *t = bad_files[i].text;
    int rc = fe_recon_parse(t, strlen(t), "bad.csv", &st, &err);
    if (rc != FE_ECORRUPT || err.code != FE_ECORRUPT ||
        err.line != bad_files[i].line || strstr(err.msg, bad_files[i].why) == NULL)
      fail_msg("bad file %zu: rc %d line %u msg \"%s\", want line %u \"%s\"",
               i, rc, err.line, err.msg, bad_files[i].line, bad_files[i].why);
    char want[32];
    snprintf(want, sizeof want, "bad.csv:%u: ", bad_files[i].line);
    assert_memory_equal(err.msg, want, strlen(want));
    assert_ptr_equal(st, (void *)0x1); /* untouched */
  }
  /* a NUL inside, a line too long */
  fe_recon_statement_t *st;
  fe_recon_error_t err;
  char nul[] = HEAD "1,A\0,1,1\nend,1\n";
  assert_int_equal(fe_recon_parse(nul, sizeof nul - 1, NULL, &st, &err), FE_ECORRUPT);
  assert_int_equal(err.line, 3);
  assert_memory_equal(err.msg, "statement:3: NUL", 16);
  static char longl[2 * FE_RECON_LINE_MAX];
  memset(longl, '#', sizeof longl);
  assert_int_equal(fe_recon_parse(longl, sizeof longl, "l", &st, &err), FE_ECORRUPT);
  assert_int_equal(err.line, 1);
  assert_non_null(strstr(err.msg, "longer than"));
  /* a comment of exactly the limit is fine */
  char *ok = malloc(FE_RECON_LINE_MAX + 200);
  memset(ok, '#', FE_RECON_LINE_MAX);
  strcpy(ok + FE_RECON_LINE_MAX, "\n" HEAD "end,0\n");
  st = parse_ok(ok);
  fe_recon_statement_free(st);
  free(ok);
  /* arguments */
  assert_int_equal(fe_recon_parse(NULL, 1, "x", &st, &err), FE_EINVAL);
  assert_int_equal(err.code, FE_EINVAL);
  assert_int_equal(fe_recon_parse("x", 1, "x", NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_recon_parse("x", 1, "x", &st, NULL), FE_ECORRUPT);
}

static char tmpdir[64];

static void files(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_recon_XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  char path[128];
  snprintf(path, sizeof path, "%s/stmt.csv", tmpdir);
  fe_recon_item_t it[] = {
      item(1001, "AAPL", 100, -(15025 * S + S / 2)), item(UINT64_MAX, "a/b", -1, 1),
      item(2, "Z", INT64_MAX, INT64_MAX), item(3, "Y", -INT64_MAX, -INT64_MAX),
      item(4, "X", 0, 0)};
  fe_diag_t d;
  assert_int_equal(fe_recon_write(path, "CUST-A", 20261204, it, 5, &d), 0);
  fe_recon_statement_t *st;
  fe_recon_error_t err;
  assert_int_equal(fe_recon_load(path, &st, &err), 0);
  assert_string_equal(st->custodian, "CUST-A");
  assert_int_equal(st->as_of, 20261204);
  assert_int_equal(st->n_items, 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(st->items[i].account, it[i].account);
    assert_string_equal(st->items[i].ref, it[i].ref);
    assert_int_equal(st->items[i].quantity, it[i].quantity);
    assert_int_equal(st->items[i].amount, it[i].amount);
  }
  assert_int_equal(st->items[0].line, 4); /* comment, statement, header */
  fe_recon_statement_free(st);
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
  /* refusals of the writer */
  assert_int_equal(fe_recon_write(NULL, "C", 20261204, it, 1, &d), FE_EINVAL);
  assert_int_equal(fe_recon_write(path, NULL, 20261204, it, 1, &d), FE_EINVAL);
  assert_int_equal(fe_recon_write(path, "C", 20261204, NULL, 1, &d), FE_EINVAL);
  assert_int_equal(fe_recon_write(path, "C D", 20261204, it, 1, &d), FE_EINVAL);
  assert_int_equal(fe_recon_write(path, "C", 20260230, it, 1, &d), FE_EINVAL);
  fe_recon_item_t bad = item(0, "A", 1, 1);
  assert_int_equal(fe_recon_write(path, "C", 20261204, &bad, 1, &d), FE_EINVAL);
  bad = item(1, "A B", 1, 1);
  assert_int_equal(fe_recon_write(path, "C", 20261204, &bad, 1, &d), FE_EINVAL);
  bad = item(1, "A", 1, INT64_MIN);
  assert_int_equal(fe_recon_write(path, "C", 20261204, &bad, 1, &d), FE_EINVAL);
  assert_int_equal(fe_recon_write("/nonexistent-dir/x.csv", "C", 20261204, it, 1, &d), FE_EIO);
  assert_int_equal(d.code, FE_EIO);
  /* the load's own refusals */
  assert_int_equal(fe_recon_load("/nonexistent-dir/x.csv", &st, &err), FE_EIO);
  assert_non_null(strstr(err.msg, "No such file"));
  assert_int_equal(fe_recon_load(NULL, &st, &err), FE_EINVAL);
  assert_int_equal(fe_recon_load(path, NULL, &err), FE_EINVAL);
  FILE *fp = fopen(path, "w");
  fputs(HEAD "1,A,1,1\n", fp);
  fclose(fp);
  assert_int_equal(fe_recon_load(path, &st, &err), FE_ECORRUPT);
  assert_non_null(strstr(err.msg, "stmt.csv:4: no end line"));
  unlink(path);
  rmdir(tmpdir);
}

/* ------------------------------------------------------------- calendar */

static uint32_t settle(uint32_t d, uint32_t n) {
  uint32_t out = 0;
  assert_int_equal(fe_recon_settle_date(d, n, &out), 0);
  return out;
}

static void calendar(void **state) {
  (void)state;
  assert_int_equal(fe_recon_weekday(19700101), 4); /* Thursday */
  assert_int_equal(fe_recon_weekday(20261204), 5); /* Friday */
  assert_int_equal(fe_recon_weekday(20261205), 6);
  assert_int_equal(fe_recon_weekday(20261206), 7);
  assert_int_equal(fe_recon_weekday(20261207), 1);
  assert_int_equal(fe_recon_weekday(20000229), 2);
  assert_int_equal(fe_recon_weekday(99991231), 5);
  assert_int_equal(settle(20261203, 1), 20261204); /* Thu -> Fri */
  assert_int_equal(settle(20261204, 1), 20261207); /* Fri -> Mon */
  assert_int_equal(settle(20261205, 1), 20261208); /* Sat: from Mon, -> Tue */
  assert_int_equal(settle(20261206, 0), 20261207); /* Sun T+0 -> Mon */
  assert_int_equal(settle(20261204, 0), 20261204);
  assert_int_equal(settle(20261204, 2), 20261208);
  assert_int_equal(settle(20261231, 1), 20270101); /* year end, a Friday */
  assert_int_equal(settle(20240228, 1), 20240229); /* leap day, Thursday */
  assert_int_equal(settle(20230228, 1), 20230301);
  assert_int_equal(settle(20261204, 5), 20261211); /* a whole week */
  assert_int_equal(settle(20261204, 10), 20261218);
  uint32_t out = 7;
  assert_int_equal(fe_recon_settle_date(20261204, 1, NULL), FE_EINVAL);
  assert_int_equal(fe_recon_settle_date(20261232, 1, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(20260229, 1, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(19691231, 1, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(20261300, 1, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(0, 1, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(20261204, 3651, &out), FE_ERANGE);
  assert_int_equal(fe_recon_settle_date(99991231, 1, &out), FE_ERANGE);
  assert_int_equal(out, 7);
  assert_int_equal(fe_recon_weekday(20261131), FE_ERANGE);
  assert_int_equal(fe_recon_weekday(UINT32_MAX), FE_ERANGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_kind),    cmocka_unit_test(tolerances),
      cmocka_unit_test(callback),      cmocka_unit_test(bad_arguments),
      cmocka_unit_test(parse_good),    cmocka_unit_test(parse_bad),
      cmocka_unit_test(files),         cmocka_unit_test(calendar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
