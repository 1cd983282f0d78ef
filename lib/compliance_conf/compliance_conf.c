/* The compliance file loader: INI through libinih.  See
 * include/finevent/compliance_conf.h.
 *
 * libinih does the lexing (sections, keys, values, comments, continuation
 * lines); this file checks and converts the values and calls the draft
 * API.  Line numbers: Debian's libinih is built without
 * INI_HANDLER_LINENO, so the handler is not told its line.  The text is
 * fed through ini_parse_stream() by our own reader, one line per call, so
 * the reader's line count is the line the handler is called for.  Lines
 * are checked first (no NUL byte, at most FE_COMPLIANCE_CONF_MAX_LINE
 * bytes, below libinih's 200-byte buffer), so a line is never split. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/compliance_conf.h"

typedef struct ctx {
  const char *text;
  size_t len, pos;
  int line;
  fe_compliance_rules_t *r;
  fe_compliance_config_t cfg; /* the caller's copy, or defaults */
  int have_cfg;
  int profile;                /* 0: none given */
  int mode[FE_RULE_COUNT];    /* -1: no override */
  int code;                   /* first error */
  int err_line;
  char reason[FE_DIAG_MAX];
} ctx_t;

static int fail(ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx_t *c, int code, const char *fmt, ...) {
  if (c->code == 0) {
    c->code = code;
    c->err_line = c->line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
  }
  return 0;
}

static char *reader(char *str, int num, void *stream) {
  ctx_t *c = stream;
  if (c->pos >= c->len)
    return NULL;
  size_t end = c->pos;
  while (end < c->len && c->text[end] != '\n')
    end++;
  size_t n = end - c->pos + (end < c->len); /* with its newline */
  if (n + 1 > (size_t)num)
    n = (size_t)num - 1; /* cannot happen: lines were checked */
  memcpy(str, c->text + c->pos, n);
  str[n] = '\0';
  c->pos += n;
  c->line++;
  return str;
}

/* ------------------------------------------------------------ values */

static int parse_u64(const char *s, uint64_t *out) {
  if (*s == '\0')
    return 0;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return 0;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return 0;
    v = v * 10 + d;
  }
  *out = v;
  return 1;
}

/* A non-negative decimal with at most `places` decimals, scaled by
 * 10^places, into an int64_t below INT64_MAX ("unlimited" is separate). */
static int parse_dec(const char *s, int places, int64_t *out) {
  const char *dot = strchr(s, '.');
  size_t il = dot ? (size_t)(dot - s) : strlen(s);
  if (il == 0 || il > 19)
    return 0;
  char ib[20];
  memcpy(ib, s, il);
  ib[il] = '\0';
  uint64_t ip, fp = 0;
  if (!parse_u64(ib, &ip))
    return 0;
  int fl = 0;
  if (dot) {
    const char *f = dot + 1;
    if (*f == '\0')
      return 0;
    for (; *f; f++, fl++) {
      if (*f < '0' || *f > '9' || fl >= places)
        return 0;
      fp = fp * 10 + (uint64_t)(*f - '0');
    }
  }
  uint64_t scale = 1;
  for (int i = 0; i < places; i++)
    scale *= 10;
  for (int i = fl; i < places; i++)
    fp *= 10;
  if (ip > ((uint64_t)INT64_MAX - 1 - fp) / scale)
    return 0;
  *out = (int64_t)(ip * scale + fp);
  return 1;
}

static int parse_duration(const char *s, int64_t *out) {
  size_t n = strlen(s), dl = n;
  uint64_t mul = 1;
  if (n > 2 && strcmp(s + n - 2, "ns") == 0)
    dl = n - 2;
  else if (n > 2 && strcmp(s + n - 2, "us") == 0)
    dl = n - 2, mul = 1000;
  else if (n > 2 && strcmp(s + n - 2, "ms") == 0)
    dl = n - 2, mul = 1000000;
  else if (n > 1 && s[n - 1] == 's')
    dl = n - 1, mul = 1000000000;
  char b[32];
  if (dl == 0 || dl >= sizeof b)
    return 0;
  memcpy(b, s, dl);
  b[dl] = '\0';
  uint64_t v;
  if (!parse_u64(b, &v) || v > (uint64_t)(INT64_MAX - 1) / mul)
    return 0;
  *out = (int64_t)(v * mul);
  return 1;
}

static int parse_bool(const char *s, int *out) {
  if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1"))
    return *out = 1, 1;
  if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0"))
    return *out = 0, 1;
  return 0;
}

static int parse_mode(const char *s) {
  for (int m = FE_MODE_OFF; m <= FE_MODE_CORRECTIVE; m++)
    if (strcmp(s, fe_compliance_mode_name(m)) == 0)
      return m;
  return -1;
}

/* Splits s at spaces and commas, calling fn(c, word) for each word; stops
 * at the first that fails. */
static int each_word(ctx_t *c, const char *s,
                     int (*fn)(ctx_t *, const char *, void *), void *arg) {
  char w[FE_COMPLIANCE_CONF_MAX_LINE + 1];
  while (*s) {
    while (*s == ' ' || *s == ',' || *s == '\t')
      s++;
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != ',' && s[n] != '\t')
      n++;
    if (n == 0)
      break;
    memcpy(w, s, n);
    w[n] = '\0';
    if (!fn(c, w, arg))
      return 0;
    s += n;
  }
  return 1;
}

/* ------------------------------------------------------------ limits */

enum { Q = 1, M = 2, D = 3 }; /* quantity, money, duration */

static const struct {
  const char *name;
  fe_compliance_limit_t which;
  int kind;
} limits[] = {
    {"max_qty", FE_LIMIT_MAX_QTY, Q},
    {"max_notional", FE_LIMIT_MAX_NOTIONAL, M},
    {"credit", FE_LIMIT_CREDIT, M},
    {"firm_credit", FE_LIMIT_FIRM_CREDIT, M},
    {"max_open", FE_LIMIT_MAX_OPEN, Q},
    {"max_position", FE_LIMIT_MAX_POSITION, Q},
    {"dup_window", FE_LIMIT_DUP_WINDOW_NS, D},
    {"throttle_rate", FE_LIMIT_THROTTLE_RATE, Q},
    {"throttle_burst", FE_LIMIT_THROTTLE_BURST, Q},
};

static int limit_index(const char *name) {
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
    if (strcmp(name, limits[i].name) == 0)
      return (int)i;
  return -1;
}

static int limit_value(ctx_t *c, int li, const char *v, int64_t *out) {
  if (strcmp(v, "unlimited") == 0) {
    *out = FE_COMPLIANCE_UNLIMITED;
    return 1;
  }
  int ok = 0;
  switch (limits[li].kind) {
  case Q: {
    uint64_t u = 0;
    ok = parse_u64(v, &u) && u < (uint64_t)INT64_MAX;
    *out = (int64_t)u;
    break;
  }
  case M:
    ok = parse_dec(v, 8, out);
    break;
  default:
    ok = parse_duration(v, out);
    break;
  }
  if (!ok)
    return fail(c, FE_EINVAL, "%s: '%s' is not %s or 'unlimited'",
                limits[li].name, v,
                limits[li].kind == Q   ? "a whole number"
                : limits[li].kind == M ? "a decimal amount (<= 8 places)"
                                       : "a duration (N, Nns, Nus, Nms, Ns)");
  return 1;
}

static int set_rc(ctx_t *c, int rc, const char *what, const char *v) {
  if (rc == 0)
    return 1;
  if (rc == FE_ENOMEM)
    return fail(c, rc, "out of memory");
  if (rc == FE_ERANGE)
    return fail(c, rc, "%s: '%s' is out of range", what, v);
  return fail(c, rc, "%s is not allowed here", what);
}

/* ------------------------------------------------------------ collar */

typedef struct tier_arg {
  const char *sym; /* NULL: default tiers */
} tier_arg_t;

static int one_tier(ctx_t *c, const char *w, void *arg) {
  const tier_arg_t *t = arg;
  const char *colon = strchr(w, ':');
  if (colon == NULL || colon == w)
    return fail(c, FE_EINVAL, "collar: '%s' is not FROM:WIDTH", w);
  char from_s[64];
  size_t fl = (size_t)(colon - w);
  if (fl >= sizeof from_s)
    return fail(c, FE_EINVAL, "collar: '%s' is not FROM:WIDTH", w);
  memcpy(from_s, w, fl);
  from_s[fl] = '\0';
  const char *width = colon + 1;
  int64_t from, value;
  if (!parse_dec(from_s, 8, &from))
    return fail(c, FE_EINVAL, "collar: tier price '%s' is not a decimal",
                from_s);
  size_t wl = strlen(width);
  fe_collar_basis_t basis = FE_COLLAR_ABSOLUTE;
  int ok;
  if (wl > 1 && width[wl - 1] == '%') {
    char pct[64];
    if (wl >= sizeof pct)
      return fail(c, FE_EINVAL, "collar: width '%s' is too long", width);
    memcpy(pct, width, wl - 1);
    pct[wl - 1] = '\0';
    ok = parse_dec(pct, 2, &value); /* hundredths of a percent: bps */
    basis = FE_COLLAR_BPS;
  } else {
    ok = parse_dec(width, 8, &value);
  }
  if (!ok)
    return fail(c, FE_EINVAL,
                "collar: width '%s' is not N%% (<= 2 places) or a price",
                width);
  int rc = fe_compliance_rules_collar(c->r, t->sym, from, basis, value);
  if (rc == FE_ERANGE)
    return fail(c, rc,
                "collar: tier '%s' out of range (width > 0, <= 100%%, at "
                "most %d tiers)", w, FE_COMPLIANCE_MAX_TIERS);
  return set_rc(c, rc, "collar", w);
}

/* ------------------------------------------------------------ sections */

static int kv_compliance(ctx_t *c, const char *k, const char *v) {
  if (strcmp(k, "profile") == 0) {
    if (strcmp(v, "production") == 0)
      c->profile = FE_PROFILE_PRODUCTION;
    else if (strcmp(v, "development") == 0)
      c->profile = FE_PROFILE_DEVELOPMENT;
    else
      return fail(c, FE_EINVAL,
                  "profile: '%s' is not production or development", v);
    return 1;
  }
  if (strcmp(k, "smp") == 0) {
    static const char *const p[] = {"cancel_newest", "cancel_oldest",
                                    "cancel_both"};
    for (int i = 0; i < 3; i++)
      if (strcmp(v, p[i]) == 0)
        return set_rc(c, fe_compliance_rules_smp(c->r, i + 1), k, v);
    return fail(c, FE_EINVAL,
                "smp: '%s' is not cancel_newest, cancel_oldest or "
                "cancel_both", v);
  }
  if (strcmp(k, "pin") == 0 || strcmp(k, "approved") == 0) {
    if (!c->have_cfg)
      return fail(c, FE_EINVAL, "%s needs a configuration to fill (cfg is "
                  "NULL)", k);
    if (k[0] == 'p') {
      int m = parse_mode(v);
      if (m != FE_MODE_OFF && m != FE_MODE_DETECTIVE &&
          m != FE_MODE_PREVENTIVE)
        return fail(c, FE_EINVAL,
                    "pin: '%s' is not off, detective or preventive", v);
      c->cfg.pin_mode = (fe_compliance_mode_t)m;
      return 1;
    }
    if (fe_fingerprint_parse(v, &c->cfg.approved) != 0)
      return fail(c, FE_EINVAL, "approved: '%s' is not 32 hex digits", v);
    return 1;
  }
  return fail(c, FE_EINVAL, "[compliance]: unknown key '%s'", k);
}

static int kv_modes(ctx_t *c, const char *k, const char *v) {
  for (int r = 0; r < FE_RULE_COUNT; r++) {
    if (strcmp(k, fe_compliance_rule_name(r)) != 0)
      continue;
    int m = parse_mode(v);
    if (m < 0)
      return fail(c, FE_EINVAL,
                  "%s: mode '%s' is not off, preventive, detective or "
                  "corrective", k, v);
    c->mode[r] = m;
    return 1;
  }
  return fail(c, FE_EINVAL, "[modes]: unknown rule '%s'", k);
}

static int kv_defaults(ctx_t *c, const char *k, const char *v) {
  if (strcmp(k, "collar") == 0) {
    tier_arg_t t = {NULL};
    return each_word(c, v, one_tier, &t);
  }
  int li = limit_index(k);
  if (li < 0)
    return fail(c, FE_EINVAL, "[defaults]: unknown key '%s'", k);
  int64_t x;
  if (!limit_value(c, li, v, &x))
    return 0;
  return set_rc(c, fe_compliance_rules_limit(c->r, limits[li].which, x), k, v);
}

static int add_account(ctx_t *c, const char *w, void *arg) {
  (void)arg;
  uint64_t a;
  if (!parse_u64(w, &a))
    return fail(c, FE_EINVAL, "accounts: '%s' is not an account number", w);
  return set_rc(c, fe_compliance_rules_authorize(c->r, a), "accounts", w);
}

static int add_symbol(ctx_t *c, const char *w, void *arg) {
  (void)arg;
  int rc = fe_compliance_rules_restrict(c->r, w);
  if (rc == FE_EINVAL)
    return fail(c, rc, "symbols: '%s' is longer than %d bytes", w,
                FE_SYMBOL_MAX);
  return set_rc(c, rc, "symbols", w);
}

static int kv_tables(ctx_t *c, const char *k, const char *v) {
  if (!c->have_cfg)
    return fail(c, FE_EINVAL, "[tables] needs a configuration to fill (cfg "
                "is NULL)");
  uint64_t *dst = !strcmp(k, "max_accounts") ? &c->cfg.max_accounts
                  : !strcmp(k, "max_symbols") ? &c->cfg.max_symbols
                  : !strcmp(k, "max_cells")   ? &c->cfg.max_cells
                  : !strcmp(k, "max_orders")  ? &c->cfg.max_orders
                                              : NULL;
  if (dst == NULL)
    return fail(c, FE_EINVAL, "[tables]: unknown key '%s'", k);
  uint64_t x;
  if (!parse_u64(v, &x) || x == 0 || x > (UINT64_C(1) << 26))
    return fail(c, FE_ERANGE, "%s: '%s' is not in 1..%llu", k, v,
                (unsigned long long)(UINT64_C(1) << 26));
  *dst = x;
  return 1;
}

/* A limit key of [account N] (sym NULL) or [symbol S]. */
static int scoped_limit(ctx_t *c, uint64_t account, const char *sym,
                        const char *k, const char *v) {
  const char *scope = sym == NULL ? "account" : "symbol";
  int li = limit_index(k);
  if (li < 0)
    return fail(c, FE_EINVAL, "[%s]: unknown key '%s'", scope, k);
  int64_t x;
  if (!limit_value(c, li, v, &x))
    return 0;
  fe_compliance_limit_t w = limits[li].which;
  int rc = sym == NULL
               ? fe_compliance_rules_account_limit(c->r, account, w, x)
               : fe_compliance_rules_symbol_limit(c->r, sym, w, x);
  if (rc == FE_EINVAL)
    return fail(c, rc, "%s cannot be set per %s", k, scope);
  return set_rc(c, rc, k, v);
}

static int kv_account(ctx_t *c, uint64_t a, const char *k, const char *v) {
  if (strcmp(k, "authorized") == 0) {
    int b;
    if (!parse_bool(v, &b))
      return fail(c, FE_EINVAL, "authorized: '%s' is not yes or no", v);
    return b ? set_rc(c, fe_compliance_rules_authorize(c->r, a), k, v) : 1;
  }
  return scoped_limit(c, a, NULL, k, v);
}

static int kv_symbol(ctx_t *c, const char *sym, const char *k,
                     const char *v) {
  if (strcmp(k, "restricted") == 0) {
    int b;
    if (!parse_bool(v, &b))
      return fail(c, FE_EINVAL, "restricted: '%s' is not yes or no", v);
    return b ? set_rc(c, fe_compliance_rules_restrict(c->r, sym), k, v) : 1;
  }
  if (strcmp(k, "collar") == 0) {
    tier_arg_t t = {sym};
    return each_word(c, v, one_tier, &t);
  }
  return scoped_limit(c, 0, sym, k, v);
}

static int handler(void *user, const char *section, const char *name,
                   const char *value) {
  ctx_t *c = user;
  if (c->code != 0)
    return 1; /* keep the first error */
  if (section[0] == '\0')
    return fail(c, FE_EINVAL, "key '%s' outside a section", name);
  if (value[0] == '\0')
    return fail(c, FE_EINVAL, "%s: empty value", name);
  if (!strcmp(section, "compliance"))
    return kv_compliance(c, name, value);
  if (!strcmp(section, "modes"))
    return kv_modes(c, name, value);
  if (!strcmp(section, "defaults"))
    return kv_defaults(c, name, value);
  if (!strcmp(section, "tables"))
    return kv_tables(c, name, value);
  if (!strcmp(section, "authorized")) {
    if (strcmp(name, "accounts") != 0)
      return fail(c, FE_EINVAL, "[authorized]: unknown key '%s'", name);
    return each_word(c, value, add_account, NULL);
  }
  if (!strcmp(section, "restricted")) {
    if (strcmp(name, "symbols") != 0)
      return fail(c, FE_EINVAL, "[restricted]: unknown key '%s'", name);
    return each_word(c, value, add_symbol, NULL);
  }
  if (!strncmp(section, "account ", 8)) {
    uint64_t a;
    if (!parse_u64(section + 8, &a))
      return fail(c, FE_EINVAL, "[%s]: '%s' is not an account number",
                  section, section + 8);
    return kv_account(c, a, name, value);
  }
  if (!strncmp(section, "symbol ", 7)) {
    const char *sym = section + 7;
    size_t n = strlen(sym);
    if (n == 0 || n > FE_SYMBOL_MAX || strpbrk(sym, " \t") != NULL)
      return fail(c, FE_EINVAL, "[%s]: '%s' is not a symbol of 1..%d bytes",
                  section, sym, FE_SYMBOL_MAX);
    return kv_symbol(c, sym, name, value);
  }
  return fail(c, FE_EINVAL, "unknown section [%s]", section);
}

/* ------------------------------------------------------------ entry */

static int refuse(const char *name, int code, int line, const char *reason,
                  fe_compliance_conf_error_t *err) {
  if (err != NULL) {
    err->code = code;
    err->line = line;
    snprintf(err->file, sizeof err->file, "%s", name);
    snprintf(err->reason, sizeof err->reason, "%s", reason);
  }
  return code;
}

int fe_compliance_conf_parse(const char *text, size_t len, const char *name,
                             fe_compliance_rules_t **rules,
                             fe_compliance_config_t *cfg,
                             fe_compliance_conf_error_t *err) {
  if (name == NULL)
    name = "<string>";
  if (text == NULL || rules == NULL)
    return refuse(name, FE_EINVAL, 0, text == NULL ? "text is NULL"
                                                   : "rules is NULL", err);
  if (len > FE_COMPLIANCE_CONF_MAX_BYTES)
    return refuse(name, FE_ERANGE, 0, "larger than 16 MiB", err);
  /* Lines first: no NUL byte, none longer than the reader's buffer. */
  for (size_t i = 0, start = 0, line = 1; i <= len; i++) {
    if (i < len && text[i] == '\0') {
      char m[64];
      snprintf(m, sizeof m, "a NUL byte (not a text file)");
      return refuse(name, FE_EINVAL, (int)line, m, err);
    }
    if (i == len || text[i] == '\n') {
      if (i - start > FE_COMPLIANCE_CONF_MAX_LINE) {
        char m[80];
        snprintf(m, sizeof m, "line longer than %d bytes",
                 FE_COMPLIANCE_CONF_MAX_LINE);
        return refuse(name, FE_EINVAL, (int)line, m, err);
      }
      start = i + 1;
      line++;
    }
  }
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return refuse(name, FE_ENOMEM, 0, "out of memory", err);
  c->text = text;
  c->len = len;
  if (cfg != NULL) {
    c->cfg = *cfg;
    c->have_cfg = 1;
  }
  for (int i = 0; i < FE_RULE_COUNT; i++)
    c->mode[i] = -1;
  int rc = fe_compliance_rules_create(&c->r);
  if (rc != 0) {
    free(c);
    return refuse(name, rc, 0, "out of memory", err);
  }
  int line = ini_parse_stream(reader, c, handler, c);
  /* inih reports the first line it found wrong: a syntax error it found
   * before our first complaint comes first. */
  if (line < 0 || (line > 0 && (c->code == 0 || line < c->err_line))) {
    c->code = FE_EINVAL;
    c->err_line = line > 0 ? line : 0;
    snprintf(c->reason, sizeof c->reason, "%s",
             line > 0 ? "syntax error (expected [section], key = value or a "
                        "comment)"
                      : "out of memory");
    if (line < 0)
      c->code = FE_ENOMEM;
  }
  if (c->code == 0 && c->profile != 0)
    fe_compliance_rules_profile(c->r, c->profile);
  for (int i = 0; c->code == 0 && i < FE_RULE_COUNT; i++)
    if (c->mode[i] >= 0)
      fe_compliance_rules_mode(c->r, i, c->mode[i]);
  if (c->code != 0) {
    rc = refuse(name, c->code, c->err_line, c->reason, err);
    fe_compliance_rules_destroy(c->r);
    free(c);
    return rc;
  }
  *rules = c->r;
  if (cfg != NULL)
    *cfg = c->cfg;
  free(c);
  return 0;
}

int fe_compliance_conf_load(const char *path, fe_compliance_rules_t **rules,
                            fe_compliance_config_t *cfg,
                            fe_compliance_conf_error_t *err) {
  if (path == NULL || rules == NULL)
    return refuse(path ? path : "<NULL>", FE_EINVAL, 0,
                  path == NULL ? "path is NULL" : "rules is NULL", err);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    char m[FE_DIAG_MAX];
    snprintf(m, sizeof m, "cannot open: %s", strerror(errno));
    return refuse(path, FE_EIO, 0, m, err);
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  int rc = 0;
  while (buf != NULL) {
    if (n == cap) {
      if (cap > FE_COMPLIANCE_CONF_MAX_BYTES) {
        rc = FE_ERANGE;
        break;
      }
      char *p = realloc(buf, cap * 2);
      if (p == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = p;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f))
        rc = FE_EIO;
      break;
    }
  }
  fclose(f);
  if (buf == NULL)
    return refuse(path, FE_ENOMEM, 0, "out of memory", err);
  if (rc == 0 && n > FE_COMPLIANCE_CONF_MAX_BYTES)
    rc = FE_ERANGE;
  if (rc != 0) {
    free(buf);
    return refuse(path, rc, 0,
                  rc == FE_EIO ? "read error" : "larger than 16 MiB", err);
  }
  rc = fe_compliance_conf_parse(buf, n, path, rules, cfg, err);
  free(buf);
  return rc;
}
