/* Reconciliation of a ledger against a custodian statement, the statement
 * file's parser and writer, and the settlement calendar (recon.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "finevent/recon.h"

__extension__ typedef __int128 fe__i128;

static void diag_set(fe_diag_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diag_set(fe_diag_t *d, int code, const char *fmt, ...) {
  if (d == NULL)
    return;
  d->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->msg, sizeof d->msg, fmt, ap);
  va_end(ap);
}

const char *fe_recon_kind_name(uint32_t kind) {
  static const char *const n[FE_RECON_KINDS] = {NULL, "MISSING", "EXTRA",
                                                "QUANTITY", "AMOUNT"};
  return kind > 0 && kind < FE_RECON_KINDS ? n[kind] : "UNKNOWN";
}

/* ------------------------------------------------------------ calendar */

static int leap(uint32_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static uint32_t month_days(uint32_t y, uint32_t m) {
  static const uint8_t d[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : d[m];
}

/* Days since 1970-01-01 of a valid YYYYMMDD date, or -1. */
static int64_t date_days(uint32_t date) {
  uint32_t y = date / 10000, m = date / 100 % 100, d = date % 100;
  if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
    return -1;
  int64_t n = 0;
  for (uint32_t yy = 1970; yy < y; yy++) /* at most 8029 steps */
    n += leap(yy) ? 366 : 365;
  for (uint32_t mm = 1; mm < m; mm++)
    n += month_days(y, mm);
  return n + d - 1;
}

/* The next calendar day of a valid date. */
static uint32_t next_day(uint32_t date) {
  uint32_t y = date / 10000, m = date / 100 % 100, d = date % 100;
  if (++d > month_days(y, m) && (d = 1, ++m > 12))
    m = 1, y++;
  return y * 10000 + m * 100 + d;
}

int fe_recon_weekday(uint32_t date) {
  int64_t n = date_days(date);
  if (n < 0)
    return FE_ERANGE;
  return (int)((n + 3) % 7) + 1; /* 1970-01-01 was a Thursday (4) */
}

int fe_recon_settle_date(uint32_t trade_date, uint32_t days, uint32_t *out) {
  if (out == NULL)
    return FE_EINVAL;
  if (date_days(trade_date) < 0 || days > 3650)
    return FE_ERANGE;
  uint32_t d = trade_date;
  while (fe_recon_weekday(d) > 5)
    d = next_day(d);
  for (uint32_t i = 0; i < days; i++)
    do
      d = next_day(d);
    while (fe_recon_weekday(d) > 5);
  if (d / 10000 > 9999)
    return FE_ERANGE;
  *out = d;
  return 0;
}

/* ------------------------------------------------------- reconciliation */

void fe_recon_config_init(fe_recon_config_t *cfg) {
  if (cfg != NULL)
    memset(cfg, 0, sizeof *cfg);
}

void fe_recon_report_free(fe_recon_report_t *report) {
  if (report == NULL)
    return;
  free(report->breaks);
  memset(report, 0, sizeof *report);
}

static int key_cmp(const fe_recon_item_t *a, const fe_recon_item_t *b) {
  if (a->account != b->account)
    return a->account < b->account ? -1 : 1;
  return strncmp(a->ref, b->ref, FE_RECON_REF_MAX);
}

static int ptr_cmp(const void *x, const void *y) {
  return key_cmp(*(const fe_recon_item_t *const *)x,
                 *(const fe_recon_item_t *const *)y);
}

static int ref_ok(const char *ref) {
  return ref[0] != '\0' && memchr(ref, '\0', FE_RECON_REF_MAX) != NULL;
}

/* Sorted pointers to side[0..n-1]; checks refs and unique keys. */
static int sort_side(const fe_recon_item_t *side, size_t n, const char *what,
                     const fe_recon_item_t ***out, fe_diag_t *diag) {
  *out = NULL;
  if (n == 0)
    return 0;
  const fe_recon_item_t **p = malloc(n * sizeof *p);
  if (p == NULL) {
    diag_set(diag, FE_ENOMEM, "recon: no memory for %zu %s items", n, what);
    return FE_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if (!ref_ok(side[i].ref)) {
      free(p);
      diag_set(diag, FE_EINVAL, "recon: %s item %zu: ref empty or not "
               "NUL-terminated within %d bytes", what, i, FE_RECON_REF_MAX);
      return FE_EINVAL;
    }
    p[i] = &side[i];
  }
  qsort(p, n, sizeof *p, ptr_cmp);
  for (size_t i = 1; i < n; i++)
    if (key_cmp(p[i - 1], p[i]) == 0) {
      diag_set(diag, FE_EINVAL, "recon: %s has account %llu ref %s twice",
               what, (unsigned long long)p[i]->account, p[i]->ref);
      free(p);
      return FE_EINVAL;
    }
  *out = p;
  return 0;
}

static fe__i128 abs128(fe__i128 v) { return v < 0 ? -v : v; }

typedef struct run {
  const fe_recon_config_t *cfg;
  fe_recon_report_t *rep;
  size_t cap;
} run_t;

/* Stores a break and tells the callback.  Returns 0, FE_ENOMEM, or the
 * callback's value. */
static int emit(run_t *r, uint32_t kind, const fe_recon_item_t *l,
                const fe_recon_item_t *s) {
  fe_recon_report_t *rep = r->rep;
  if (rep->n_breaks == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    fe_recon_break_t *nb = realloc(rep->breaks, cap * sizeof *nb);
    if (nb == NULL)
      return FE_ENOMEM;
    rep->breaks = nb, r->cap = cap;
  }
  fe_recon_break_t *b = &rep->breaks[rep->n_breaks++];
  memset(b, 0, sizeof *b);
  const fe_recon_item_t *k = l ? l : s;
  b->kind = kind;
  b->line = s ? s->line : 0;
  b->account = k->account;
  memcpy(b->ref, k->ref, FE_RECON_REF_MAX);
  b->ref[FE_RECON_REF_MAX - 1] = '\0';
  if (l)
    b->ledger_quantity = l->quantity, b->ledger_amount = l->amount;
  if (s)
    b->statement_quantity = s->quantity, b->statement_amount = s->amount;
  rep->by_kind[kind]++;
  return r->cfg->on_break ? r->cfg->on_break(b, r->cfg->user) : 0;
}

/* Compares one key present on both sides. */
static int compare_pair(run_t *r, const fe_recon_item_t *l,
                        const fe_recon_item_t *s) {
  const fe_recon_config_t *c = r->cfg;
  int rc, broke = 0;
  if (abs128((fe__i128)l->quantity - s->quantity) > c->quantity_tolerance) {
    broke = 1;
    if ((rc = emit(r, FE_RECON_QUANTITY, l, s)) != 0)
      return rc;
  }
  fe__i128 tol = abs128(l->amount) * c->amount_tolerance_bp / 10000;
  if (tol < c->amount_tolerance)
    tol = c->amount_tolerance;
  if (abs128((fe__i128)l->amount - s->amount) > tol) {
    broke = 1;
    if ((rc = emit(r, FE_RECON_AMOUNT, l, s)) != 0)
      return rc;
  }
  r->rep->matched += !broke;
  return 0;
}

int fe_recon_run(const fe_recon_config_t *cfg, const fe_recon_item_t *ledger,
                 size_t n_ledger, const fe_recon_item_t *statement,
                 size_t n_statement, fe_recon_report_t *report,
                 fe_diag_t *diag) {
  if (report != NULL)
    memset(report, 0, sizeof *report);
  if (cfg == NULL || report == NULL || (ledger == NULL && n_ledger > 0) ||
      (statement == NULL && n_statement > 0)) {
    diag_set(diag, FE_EINVAL, "recon: cfg, report, or an array with a count "
             "is NULL");
    return FE_EINVAL;
  }
  if (cfg->quantity_tolerance < 0 || cfg->amount_tolerance < 0) {
    diag_set(diag, FE_ERANGE, "recon: tolerances must be >= 0 (quantity %lld, "
             "amount %lld)", (long long)cfg->quantity_tolerance,
             (long long)cfg->amount_tolerance);
    return FE_ERANGE;
  }
  if (cfg->amount_tolerance_bp > 10000) {
    diag_set(diag, FE_ERANGE, "recon: amount_tolerance_bp %u above 10000",
             cfg->amount_tolerance_bp);
    return FE_ERANGE;
  }
  if (n_ledger > FE_RECON_MAX_ITEMS || n_statement > FE_RECON_MAX_ITEMS) {
    diag_set(diag, FE_ERANGE, "recon: %zu ledger / %zu statement items: at "
             "most %u a side", n_ledger, n_statement, FE_RECON_MAX_ITEMS);
    return FE_ERANGE;
  }
  const fe_recon_item_t **l, **s;
  int rc = sort_side(ledger, n_ledger, "ledger", &l, diag);
  if (rc != 0)
    return rc;
  if ((rc = sort_side(statement, n_statement, "statement", &s, diag)) != 0) {
    free(l);
    return rc;
  }
  run_t r = {cfg, report, 0};
  report->ledger_items = n_ledger, report->statement_items = n_statement;
  size_t i = 0, j = 0;
  while (rc == 0 && (i < n_ledger || j < n_statement)) {
    int c = i == n_ledger ? 1 : j == n_statement ? -1 : key_cmp(l[i], s[j]);
    if (c < 0)
      rc = emit(&r, FE_RECON_MISSING, l[i++], NULL);
    else if (c > 0)
      rc = emit(&r, FE_RECON_EXTRA, NULL, s[j++]);
    else
      rc = compare_pair(&r, l[i++], s[j++]);
  }
  free(l);
  free(s);
  if (rc == FE_ENOMEM) {
    fe_recon_report_free(report);
    diag_set(diag, FE_ENOMEM, "recon: no memory for the break list");
  }
  return rc;
}

/* ---------------------------------------------------------------- parser */

typedef struct parser {
  const char *name;
  fe_recon_error_t *err;
  uint32_t line;
} parser_t;

static int perr(parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int perr(parser_t *p, const char *fmt, ...) {
  if (p->err != NULL) {
    char why[FE_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    p->err->code = FE_ECORRUPT;
    p->err->line = p->line;
    snprintf(p->err->msg, sizeof p->err->msg, "%.96s:%u: %.140s", p->name,
             p->line, why);
  }
  return FE_ECORRUPT;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Unsigned decimal [s, e): 1+ digits, value <= max. */
static int parse_u64(const char *s, const char *e, uint64_t max, uint64_t *v) {
  if (s == e)
    return -1;
  uint64_t x = 0;
  for (; s < e; s++) {
    if (!is_digit(*s))
      return -1;
    unsigned dg = (unsigned)(*s - '0');
    if (x > (max - dg) / 10)
      return -1;
    x = x * 10 + dg;
  }
  *v = x;
  return 0;
}

static int parse_qty(const char *s, const char *e, int64_t *v) {
  int neg = s < e && *s == '-';
  uint64_t m;
  if (parse_u64(s + neg, e, INT64_MAX, &m) != 0)
    return -1;
  *v = neg ? -(int64_t)m : (int64_t)m;
  return 0;
}

/* [-]digits[.1-8 digits] to FE_PRICE_SCALE fixed point. */
static int parse_amount(const char *s, const char *e, int64_t *v) {
  int neg = s < e && *s == '-';
  s += neg;
  const char *dot = memchr(s, '.', (size_t)(e - s));
  const char *ie = dot ? dot : e;
  uint64_t ip, fp = 0;
  if (parse_u64(s, ie, INT64_MAX / FE_PRICE_SCALE, &ip) != 0)
    return -1;
  if (dot) {
    size_t nf = (size_t)(e - dot - 1);
    if (nf < 1 || nf > 8 || parse_u64(dot + 1, e, UINT64_MAX, &fp) != 0)
      return -1;
    for (size_t k = nf; k < 8; k++)
      fp *= 10;
  }
  uint64_t m = ip * (uint64_t)FE_PRICE_SCALE;
  if (m > (uint64_t)INT64_MAX - fp)
    return -1;
  m += fp;
  *v = neg ? -(int64_t)m : (int64_t)m;
  return 0;
}

static int token_ok(const char *s, const char *e, size_t max, int slash) {
  if (s == e || (size_t)(e - s) >= max)
    return 0;
  for (; s < e; s++) {
    char c = *s;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
          c == '_' || c == '.' || c == ':' || c == '-' || (slash && c == '/')))
      return 0;
  }
  return 1;
}

/* Splits [s, e) at commas into at most max fields; returns the count, or
 * max + 1 when there are more. */
static int split(const char *s, const char *e, const char **f, const char **fe,
                 int max) {
  int n = 0;
  for (;;) {
    const char *c = memchr(s, ',', (size_t)(e - s));
    if (n == max)
      return max + 1;
    f[n] = s, fe[n] = c ? c : e, n++;
    if (c == NULL)
      return n;
    s = c + 1;
  }
}

static int field_is(const char *s, const char *e, const char *lit) {
  size_t n = strlen(lit);
  return (size_t)(e - s) == n && memcmp(s, lit, n) == 0;
}

static int parse_date(const char *s, const char *e, uint32_t *date) {
  /* YYYY-MM-DD */
  if (e - s != 10 || s[4] != '-' || s[7] != '-')
    return -1;
  uint64_t y, m, d;
  if (parse_u64(s, s + 4, 9999, &y) || parse_u64(s + 5, s + 7, 99, &m) ||
      parse_u64(s + 8, s + 10, 99, &d))
    return -1;
  uint32_t v = (uint32_t)(y * 10000 + m * 100 + d);
  if (date_days(v) < 0)
    return -1;
  *date = v;
  return 0;
}

void fe_recon_statement_free(fe_recon_statement_t *st) {
  if (st == NULL)
    return;
  free(st->items);
  free(st);
}

int fe_recon_parse(const char *buf, size_t len, const char *name,
                   fe_recon_statement_t **out, fe_recon_error_t *err) {
  parser_t p = {name ? name : "statement", err, 0};
  if (err != NULL)
    memset(err, 0, sizeof *err);
  if ((buf == NULL && len > 0) || out == NULL) {
    if (err != NULL) {
      err->code = FE_EINVAL;
      snprintf(err->msg, sizeof err->msg, "%.96s: buf or out NULL", p.name);
    }
    return FE_EINVAL;
  }
  fe_recon_statement_t *st = calloc(1, sizeof *st);
  if (st == NULL)
    return FE_ENOMEM;
  size_t cap = 0;
  int state = 0, rc = 0; /* 0 statement line, 1 header, 2 items, 3 after end */
  const char *pos = buf, *end = buf + len;
  while (rc == 0 && pos < end) {
    p.line++;
    const char *nl = memchr(pos, '\n', (size_t)(end - pos));
    const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
    if (le > pos && le[-1] == '\r')
      le--;
    const char *s = pos;
    pos = next;
    if ((size_t)(le - s) > FE_RECON_LINE_MAX) {
      rc = perr(&p, "line longer than %d bytes", FE_RECON_LINE_MAX);
      break;
    }
    if (memchr(s, '\0', (size_t)(le - s)) || memchr(s, '\r', (size_t)(le - s))) {
      rc = perr(&p, "NUL or stray carriage return in the line");
      break;
    }
    if (s == le || *s == '#')
      continue;
    const char *f[5], *fe[5];
    int nf = split(s, le, f, fe, 4);
    switch (state) {
    case 0:
      if (nf != 4 || !field_is(f[0], fe[0], "statement"))
        rc = perr(&p, "expected \"statement,v1,<custodian>,<YYYY-MM-DD>\"");
      else if (!field_is(f[1], fe[1], "v1"))
        rc = perr(&p, "unknown format version \"%.*s\" (this reader knows v1)",
                  (int)(fe[1] - f[1] > 16 ? 16 : fe[1] - f[1]), f[1]);
      else if (!token_ok(f[2], fe[2], FE_RECON_NAME_MAX, 0))
        rc = perr(&p, "custodian: 1..%d bytes of [A-Za-z0-9_.:-]",
                  FE_RECON_NAME_MAX - 1);
      else if (parse_date(f[3], fe[3], &st->as_of) != 0)
        rc = perr(&p, "as-of date: not a YYYY-MM-DD date from 1970 on");
      else {
        memcpy(st->custodian, f[2], (size_t)(fe[2] - f[2]));
        state = 1;
      }
      break;
    case 1:
      if ((size_t)(le - s) != strlen("account,ref,quantity,amount") ||
          memcmp(s, "account,ref,quantity,amount", (size_t)(le - s)) != 0)
        rc = perr(&p, "expected the header \"account,ref,quantity,amount\"");
      else
        state = 2;
      break;
    case 2: {
      if (nf == 2 && field_is(f[0], fe[0], "end")) {
        uint64_t n;
        if (parse_u64(f[1], fe[1], UINT64_MAX, &n) != 0)
          rc = perr(&p, "end: item count not a number");
        else if (n != st->n_items)
          rc = perr(&p, "end: says %llu items, the file has %llu",
                    (unsigned long long)n, (unsigned long long)st->n_items);
        else
          state = 3;
        break;
      }
      if (nf != 4) {
        rc = perr(&p, "expected 4 fields (account,ref,quantity,amount), got %s",
                  nf > 4 ? "more" : nf == 3 ? "3" : nf == 2 ? "2" : "1");
        break;
      }
      fe_recon_item_t it;
      memset(&it, 0, sizeof it);
      it.line = p.line;
      if (parse_u64(f[0], fe[0], UINT64_MAX, &it.account) != 0 || it.account == 0) {
        rc = perr(&p, "account: not a decimal number 1..2^64-1");
        break;
      }
      if (!token_ok(f[1], fe[1], FE_RECON_REF_MAX, 1)) {
        rc = perr(&p, "ref: 1..%d bytes of [A-Za-z0-9_.:/-]", FE_RECON_REF_MAX - 1);
        break;
      }
      memcpy(it.ref, f[1], (size_t)(fe[1] - f[1]));
      if (parse_qty(f[2], fe[2], &it.quantity) != 0) {
        rc = perr(&p, "quantity: not an integer within 64 bits");
        break;
      }
      if (parse_amount(f[3], fe[3], &it.amount) != 0) {
        rc = perr(&p, "amount: not a decimal with at most 8 decimals within "
                  "the fixed-point range");
        break;
      }
      if (st->n_items >= FE_RECON_MAX_ITEMS) {
        rc = perr(&p, "more than %u items", FE_RECON_MAX_ITEMS);
        break;
      }
      if (st->n_items == cap) {
        size_t nc = cap ? cap * 2 : 256;
        fe_recon_item_t *ni = realloc(st->items, nc * sizeof *ni);
        if (ni == NULL) {
          rc = FE_ENOMEM;
          break;
        }
        st->items = ni, cap = nc;
      }
      st->items[st->n_items++] = it;
      break;
    }
    default:
      rc = perr(&p, "content after the end line");
    }
  }
  if (rc == 0 && state != 3) {
    p.line++;
    rc = perr(&p, "%s", state == 0   ? "no statement line: empty file"
                        : state == 1 ? "no column header"
                                     : "no end line: the file is truncated");
  }
  if (rc == 0 && st->n_items > 1) {
    /* A key twice: find it in sorted order, report its later line. */
    const fe_recon_item_t **sp = malloc(st->n_items * sizeof *sp);
    if (sp == NULL)
      rc = FE_ENOMEM;
    for (uint64_t i = 0; sp && i < st->n_items; i++)
      sp[i] = &st->items[i];
    if (sp) {
      qsort(sp, st->n_items, sizeof *sp, ptr_cmp);
      for (uint64_t i = 1; i < st->n_items && rc == 0; i++)
        if (key_cmp(sp[i - 1], sp[i]) == 0) {
          uint32_t a = sp[i - 1]->line, b = sp[i]->line;
          p.line = a > b ? a : b;
          rc = perr(&p, "account %llu ref %s already on line %u",
                    (unsigned long long)sp[i]->account, sp[i]->ref, a < b ? a : b);
        }
      free(sp);
    }
  }
  if (rc == FE_ENOMEM && err != NULL) {
    err->code = FE_ENOMEM;
    snprintf(err->msg, sizeof err->msg, "%.96s: out of memory", p.name);
  }
  if (rc != 0) {
    fe_recon_statement_free(st);
    return rc;
  }
  *out = st;
  return 0;
}

int fe_recon_load(const char *path, fe_recon_statement_t **out,
                  fe_recon_error_t *err) {
  if (err != NULL)
    memset(err, 0, sizeof *err);
  if (path == NULL || out == NULL) {
    if (err != NULL) {
      err->code = FE_EINVAL;
      snprintf(err->msg, sizeof err->msg, "statement: path or out NULL");
    }
    return FE_EINVAL;
  }
  FILE *fp = fopen(path, "rb");
  struct stat sb;
  int rc = 0;
  char *buf = NULL;
  if (fp == NULL || fstat(fileno(fp), &sb) != 0)
    rc = FE_EIO;
  else if (sb.st_size > (1 << 30))
    rc = FE_ERANGE;
  else if ((buf = malloc((size_t)sb.st_size + 1)) == NULL)
    rc = FE_ENOMEM;
  else if (fread(buf, 1, (size_t)sb.st_size, fp) != (size_t)sb.st_size)
    rc = FE_EIO;
  int e = errno;
  if (fp != NULL)
    fclose(fp);
  if (rc != 0) {
    free(buf);
    if (err != NULL) {
      err->code = rc;
      snprintf(err->msg, sizeof err->msg, "%.160s: %s", path,
               rc == FE_EIO ? strerror(e) : fe_strerror(rc));
    }
    return rc;
  }
  rc = fe_recon_parse(buf, (size_t)sb.st_size, path, out, err);
  free(buf);
  return rc;
}

/* "-12.5" style: at most 8 decimals, trailing zeros dropped. */
static void format_amount(char *b, size_t n, int64_t v) {
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  uint64_t ip = m / (uint64_t)FE_PRICE_SCALE, fp = m % (uint64_t)FE_PRICE_SCALE;
  if (fp == 0) {
    snprintf(b, n, "%s%llu", v < 0 ? "-" : "", (unsigned long long)ip);
    return;
  }
  int w = 8;
  while (fp % 10 == 0)
    fp /= 10, w--;
  snprintf(b, n, "%s%llu.%0*llu", v < 0 ? "-" : "", (unsigned long long)ip, w,
           (unsigned long long)fp);
}

int fe_recon_write(const char *path, const char *custodian, uint32_t as_of,
                   const fe_recon_item_t *items, size_t n, fe_diag_t *diag) {
  if (path == NULL || custodian == NULL || (items == NULL && n > 0)) {
    diag_set(diag, FE_EINVAL, "recon write: path, custodian or items NULL");
    return FE_EINVAL;
  }
  if (!token_ok(custodian, custodian + strlen(custodian), FE_RECON_NAME_MAX, 0)) {
    diag_set(diag, FE_EINVAL, "recon write: custodian \"%.40s\" not 1..%d bytes "
             "of [A-Za-z0-9_.:-]", custodian, FE_RECON_NAME_MAX - 1);
    return FE_EINVAL;
  }
  if (date_days(as_of) < 0) {
    diag_set(diag, FE_EINVAL, "recon write: as_of %u is not a date", as_of);
    return FE_EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    const char *r = items[i].ref;
    const char *z = memchr(r, '\0', FE_RECON_REF_MAX);
    if (items[i].account == 0 || z == NULL || !token_ok(r, z, FE_RECON_REF_MAX, 1) ||
        items[i].amount == INT64_MIN || items[i].quantity == INT64_MIN) {
      diag_set(diag, FE_EINVAL, "recon write: item %zu: account 0, a ref the "
               "format refuses, or INT64_MIN", i);
      return FE_EINVAL;
    }
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    diag_set(diag, FE_EINVAL, "recon write: path too long");
    return FE_EINVAL;
  }
  FILE *fp = fopen(tmp, "w");
  if (fp == NULL) {
    diag_set(diag, FE_EIO, "recon write: %s: %s", tmp, strerror(errno));
    return FE_EIO;
  }
  int bad = fprintf(fp, "# finevent custodian statement\nstatement,v1,%s,"
                    "%04u-%02u-%02u\naccount,ref,quantity,amount\n", custodian,
                    as_of / 10000, as_of / 100 % 100, as_of % 100) < 0;
  for (size_t i = 0; i < n && !bad; i++) {
    char a[48];
    format_amount(a, sizeof a, items[i].amount);
    bad = fprintf(fp, "%llu,%s,%lld,%s\n", (unsigned long long)items[i].account,
                  items[i].ref, (long long)items[i].quantity, a) < 0;
  }
  bad |= fprintf(fp, "end,%zu\n", n) < 0;
  bad |= fflush(fp) != 0;
  int e = errno;
  bad |= fclose(fp) != 0;
  if (bad || rename(tmp, path) != 0) {
    e = errno ? errno : e;
    unlink(tmp);
    diag_set(diag, FE_EIO, "recon write: %s: %s", path, strerror(e));
    return FE_EIO;
  }
  return 0;
}
