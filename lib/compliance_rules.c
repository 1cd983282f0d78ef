/* Pre-trade compliance: drafts, their canonical form, fingerprints and the
 * immutable snapshots the checks read.  See include/finevent/compliance.h.
 *
 * Canonical form.  A draft is the list of settings in call order.  Sorting
 * it by (kind, account, symbol, limit or tier price) and keeping the last
 * setting of each key gives one list per effective rule set, whatever
 * order or file produced it; the fingerprint hashes that list, the modes,
 * the defaults and the self-match policy field by field in little-endian
 * fixed widths (never a struct's bytes, whose padding is undefined). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "compliance_impl.h"

/* Bumped whenever the canonical encoding changes: fingerprints of
 * different encodings must never compare equal by accident. */
#define CANON_TAG "fe-compliance-rules-v1"

static const char *const rule_names[] = {
#define X(name, text) text,
    FE_COMPLIANCE_RULE_MAP(X)
#undef X
};
static const char *const limit_names[] = {
#define X(name, text) text,
    FE_COMPLIANCE_LIMIT_MAP(X)
#undef X
};

const char *fe_compliance_rule_name(int rule) {
  return rule >= 0 && rule < FE_RULE_COUNT ? rule_names[rule] : NULL;
}

const char *fe_compliance_limit_name(int limit) {
  return limit >= 0 && limit < FE_LIMIT_COUNT ? limit_names[limit] : NULL;
}

const char *fe_compliance_mode_name(int mode) {
  switch (mode) {
  case FE_MODE_OFF: return "off";
  case FE_MODE_PREVENTIVE: return "preventive";
  case FE_MODE_DETECTIVE: return "detective";
  case FE_MODE_CORRECTIVE: return "corrective";
  default: return NULL;
  }
}

int fe_compliance_fix_reason(uint32_t reason) {
  switch (reason) {
#define X(name, fix) case FE_REASON_CR_##name: return fix;
    FE_COMPLIANCE_REASON_MAP(X)
#undef X
  default: return -1;
  }
}

int fe__sym_from_str(const char *s, char out[FE_SYMBOL_MAX]) {
  if (s == NULL)
    return FE_EINVAL;
  size_t n = strnlen(s, FE_SYMBOL_MAX + 1);
  if (n == 0 || n > FE_SYMBOL_MAX)
    return FE_EINVAL;
  memset(out, 0, FE_SYMBOL_MAX);
  memcpy(out, s, n);
  return 0;
}

/* ------------------------------------------------------------ drafts */

int fe_compliance_rules_create(fe_compliance_rules_t **out) {
  if (out == NULL)
    return FE_EINVAL;
  fe_compliance_rules_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return FE_ENOMEM;
  for (int i = 0; i < FE_RULE_COUNT; i++)
    r->mode[i] = FE_MODE_PREVENTIVE;
  for (int i = 0; i < FE_LIMIT_COUNT; i++)
    r->lim[i] = FE_COMPLIANCE_UNLIMITED;
  r->smp = FE_SMP_CANCEL_NEWEST;
  *out = r;
  return 0;
}

void fe_compliance_rules_destroy(fe_compliance_rules_t *r) {
  if (r == NULL)
    return;
  free(r->set);
  free(r);
}

int fe_compliance_rules_profile(fe_compliance_rules_t *r,
                                fe_compliance_profile_t p) {
  if (r == NULL)
    return FE_EINVAL;
  uint8_t m;
  if (p == FE_PROFILE_PRODUCTION)
    m = FE_MODE_PREVENTIVE;
  else if (p == FE_PROFILE_DEVELOPMENT)
    m = FE_MODE_DETECTIVE;
  else
    return FE_EINVAL;
  memset(r->mode, m, sizeof r->mode);
  return 0;
}

int fe_compliance_rules_mode(fe_compliance_rules_t *r,
                             fe_compliance_rule_t rule,
                             fe_compliance_mode_t mode) {
  if (r == NULL || (unsigned)rule >= FE_RULE_COUNT ||
      (unsigned)mode > FE_MODE_CORRECTIVE)
    return FE_EINVAL;
  r->mode[rule] = (uint8_t)mode;
  return 0;
}

/* Range of one limit's value. */
static int check_value(fe_compliance_limit_t which, int64_t v) {
  if (v < 0)
    return FE_ERANGE;
  if (v == FE_COMPLIANCE_UNLIMITED)
    return 0;
  switch (which) {
  case FE_LIMIT_MAX_OPEN:
    return v <= FE_COMPLIANCE_MAX_OPEN ? 0 : FE_ERANGE;
  case FE_LIMIT_THROTTLE_RATE:
    return v >= 1 && (uint64_t)v <= FE_THROTTLE_RATE_MAX ? 0 : FE_ERANGE;
  case FE_LIMIT_THROTTLE_BURST:
    return v >= 1 && (uint64_t)v <= FE_THROTTLE_BURST_MAX ? 0 : FE_ERANGE;
  default:
    return 0;
  }
}

/* MAX_OPEN "unlimited" is the tracked maximum: one canonical value. */
static int64_t norm_value(int which, int64_t v) {
  if (which == FE_LIMIT_MAX_OPEN && v == FE_COMPLIANCE_UNLIMITED)
    return FE_COMPLIANCE_MAX_OPEN;
  return v;
}

int fe_compliance_rules_limit(fe_compliance_rules_t *r,
                              fe_compliance_limit_t which, int64_t value) {
  if (r == NULL || (unsigned)which >= FE_LIMIT_COUNT)
    return FE_EINVAL;
  int rc = check_value(which, value);
  if (rc != 0)
    return rc;
  r->lim[which] = norm_value(which, value);
  return 0;
}

static int push(fe_compliance_rules_t *r, const fe__setting_t *s) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    fe__setting_t *p = realloc(r->set, cap * sizeof *p);
    if (p == NULL)
      return FE_ENOMEM;
    r->set = p;
    r->cap = cap;
  }
  r->set[r->n] = *s;
  r->set[r->n].order = r->next_order++;
  r->n++;
  return 0;
}

static int per_account(fe_compliance_limit_t w) {
  return w == FE_LIMIT_MAX_QTY || w == FE_LIMIT_MAX_NOTIONAL ||
         w == FE_LIMIT_CREDIT || w == FE_LIMIT_MAX_OPEN ||
         w == FE_LIMIT_MAX_POSITION;
}

int fe_compliance_rules_account_limit(fe_compliance_rules_t *r,
                                      uint64_t account,
                                      fe_compliance_limit_t which,
                                      int64_t value) {
  if (r == NULL || (unsigned)which >= FE_LIMIT_COUNT || !per_account(which))
    return FE_EINVAL;
  int rc = check_value(which, value);
  if (rc != 0)
    return rc;
  fe__setting_t s = {.kind = SET_ACCOUNT_LIMIT, .which = which,
                     .account = account, .value = norm_value(which, value)};
  return push(r, &s);
}

int fe_compliance_rules_symbol_limit(fe_compliance_rules_t *r,
                                     const char *symbol,
                                     fe_compliance_limit_t which,
                                     int64_t value) {
  if (r == NULL || (unsigned)which >= FE_LIMIT_COUNT || !per_account(which) ||
      which == FE_LIMIT_CREDIT)
    return FE_EINVAL;
  fe__setting_t s = {.kind = SET_SYMBOL_LIMIT, .which = which};
  if (fe__sym_from_str(symbol, s.sym) != 0)
    return FE_EINVAL;
  int rc = check_value(which, value);
  if (rc != 0)
    return rc;
  s.value = norm_value(which, value);
  return push(r, &s);
}

int fe_compliance_rules_authorize(fe_compliance_rules_t *r, uint64_t account) {
  if (r == NULL)
    return FE_EINVAL;
  fe__setting_t s = {.kind = SET_AUTHORIZE, .account = account, .value = 1};
  return push(r, &s);
}

int fe_compliance_rules_restrict(fe_compliance_rules_t *r, const char *symbol) {
  if (r == NULL)
    return FE_EINVAL;
  fe__setting_t s = {.kind = SET_RESTRICT, .value = 1};
  if (fe__sym_from_str(symbol, s.sym) != 0)
    return FE_EINVAL;
  return push(r, &s);
}

int fe_compliance_rules_collar(fe_compliance_rules_t *r, const char *symbol,
                               int64_t from_price, fe_collar_basis_t basis,
                               int64_t value) {
  if (r == NULL || (basis != FE_COLLAR_BPS && basis != FE_COLLAR_ABSOLUTE))
    return FE_EINVAL;
  fe__setting_t s = {.kind = SET_TIER, .which = basis, .from = from_price,
                     .value = value};
  if (symbol != NULL && fe__sym_from_str(symbol, s.sym) != 0)
    return FE_EINVAL;
  if (from_price < 0 || value <= 0 ||
      (basis == FE_COLLAR_BPS && value > 10000))
    return FE_ERANGE;
  /* Distinct tier prices of this symbol so far (a same-price tier
   * replaces, so it does not count). */
  uint32_t tiers = 0;
  for (size_t i = 0; i < r->n; i++) {
    const fe__setting_t *o = &r->set[i];
    if (o->kind != SET_TIER || memcmp(o->sym, s.sym, FE_SYMBOL_MAX) != 0)
      continue;
    int seen = o->from == from_price;
    for (size_t j = 0; j < i && !seen; j++)
      seen = r->set[j].kind == SET_TIER && r->set[j].from == o->from &&
             memcmp(r->set[j].sym, s.sym, FE_SYMBOL_MAX) == 0;
    if (seen)
      continue;
    tiers++;
  }
  if (tiers >= FE_COMPLIANCE_MAX_TIERS)
    return FE_ERANGE;
  return push(r, &s);
}

int fe_compliance_rules_smp(fe_compliance_rules_t *r,
                            fe_compliance_smp_t policy) {
  if (r == NULL || policy < FE_SMP_CANCEL_NEWEST ||
      policy > FE_SMP_CANCEL_BOTH)
    return FE_EINVAL;
  r->smp = policy;
  return 0;
}

/* ------------------------------------------------------ canonical form */

static int key_cmp(const fe__setting_t *a, const fe__setting_t *b) {
  if (a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  if (a->account != b->account)
    return a->account < b->account ? -1 : 1;
  int c = memcmp(a->sym, b->sym, FE_SYMBOL_MAX);
  if (c != 0)
    return c;
  if (a->kind != SET_TIER && a->which != b->which)
    return a->which < b->which ? -1 : 1;
  if (a->from != b->from)
    return a->from < b->from ? -1 : 1;
  return 0;
}

static int setting_cmp(const void *pa, const void *pb) {
  const fe__setting_t *a = pa, *b = pb;
  int c = key_cmp(a, b);
  if (c != 0)
    return c;
  return a->order < b->order ? -1 : a->order > b->order;
}

int fe__rules_canon(const fe_compliance_rules_t *r, fe__setting_t **out,
                    size_t *n) {
  *out = NULL;
  *n = 0;
  if (r->n == 0)
    return 0;
  fe__setting_t *v = malloc(r->n * sizeof *v);
  if (v == NULL)
    return FE_ENOMEM;
  memcpy(v, r->set, r->n * sizeof *v);
  qsort(v, r->n, sizeof *v, setting_cmp);
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (k > 0 && key_cmp(&v[k - 1], &v[i]) == 0)
      k--; /* the later setting of the same key wins */
    v[k] = v[i];
    v[k].order = 0;
    k++;
  }
  *out = v;
  *n = k;
  return 0;
}

static void put64(XXH3_state_t *st, uint64_t x) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(x >> (8 * i));
  XXH3_128bits_update(st, b, sizeof b);
}

static fe_fingerprint_t digest(const fe_compliance_rules_t *r,
                               const fe__setting_t *v, size_t n) {
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  XXH3_128bits_update(&st, CANON_TAG, sizeof CANON_TAG);
  put64(&st, FE_RULE_COUNT);
  for (int i = 0; i < FE_RULE_COUNT; i++)
    put64(&st, r->mode[i]);
  put64(&st, FE_LIMIT_COUNT);
  for (int i = 0; i < FE_LIMIT_COUNT; i++)
    put64(&st, (uint64_t)r->lim[i]);
  put64(&st, r->smp);
  put64(&st, n);
  for (size_t i = 0; i < n; i++) {
    put64(&st, v[i].kind);
    put64(&st, v[i].which);
    put64(&st, v[i].account);
    XXH3_128bits_update(&st, v[i].sym, FE_SYMBOL_MAX);
    put64(&st, (uint64_t)v[i].from);
    put64(&st, (uint64_t)v[i].value);
  }
  XXH128_hash_t h = XXH3_128bits_digest(&st);
  return (fe_fingerprint_t){.lo = h.low64, .hi = h.high64};
}

int fe_compliance_rules_fingerprint(const fe_compliance_rules_t *r,
                                    fe_fingerprint_t *out) {
  if (r == NULL || out == NULL)
    return FE_EINVAL;
  fe__setting_t *v;
  size_t n;
  if (fe__rules_canon(r, &v, &n) != 0)
    return FE_ENOMEM;
  *out = digest(r, v, n);
  free(v);
  return 0;
}

int fe_fingerprint_format(fe_fingerprint_t fp, char out[FE_FINGERPRINT_HEX]) {
  if (out == NULL)
    return FE_EINVAL;
  snprintf(out, FE_FINGERPRINT_HEX, "%016llx%016llx",
           (unsigned long long)fp.hi, (unsigned long long)fp.lo);
  return 0;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

int fe_fingerprint_parse(const char *hex, fe_fingerprint_t *out) {
  if (hex == NULL || out == NULL)
    return FE_EINVAL;
  uint64_t w[2] = {0, 0};
  for (int i = 0; i < 32; i++) {
    int v = hexval(hex[i]);
    if (v < 0)
      return FE_EINVAL;
    w[i / 16] = w[i / 16] << 4 | (uint64_t)v;
  }
  if (hex[32] != '\0')
    return FE_EINVAL;
  out->hi = w[0];
  out->lo = w[1];
  return 0;
}

/* ----------------------------------------------------------- snapshots */

static uint64_t pow2_at_least(uint64_t n) {
  uint64_t p = 4;
  while (p < n)
    p <<= 1;
  return p;
}

static uint64_t sym_hash(const char sym[FE_SYMBOL_MAX]) {
  return XXH3_64bits(sym, FE_SYMBOL_MAX);
}

const fe__arule_t *fe__snap_account(const fe__snap_t *s, uint64_t account) {
  if (s->accts == NULL)
    return NULL;
  for (uint64_t i = fe__mix64(account) & s->acct_mask;;
       i = (i + 1) & s->acct_mask) {
    const fe__arule_t *a = &s->accts[i];
    if (!a->used)
      return NULL;
    if (a->account == account)
      return a;
  }
}

const fe__srule_t *fe__snap_symbol(const fe__snap_t *s,
                                   const char sym[FE_SYMBOL_MAX]) {
  if (s->syms == NULL)
    return NULL;
  for (uint64_t i = sym_hash(sym) & s->sym_mask;; i = (i + 1) & s->sym_mask) {
    const fe__srule_t *e = &s->syms[i];
    if (!e->used)
      return NULL;
    if (memcmp(e->sym, sym, FE_SYMBOL_MAX) == 0)
      return e;
  }
}

static fe__arule_t *acct_slot(fe__snap_t *s, uint64_t account) {
  uint64_t i = fe__mix64(account) & s->acct_mask;
  while (s->accts[i].used && s->accts[i].account != account)
    i = (i + 1) & s->acct_mask;
  fe__arule_t *a = &s->accts[i];
  if (!a->used) {
    a->used = 1;
    a->account = account;
    for (int k = 0; k < FE_LIMIT_COUNT; k++)
      a->lim[k] = FE__LIM_UNSET;
  }
  return a;
}

static fe__srule_t *sym_slot(fe__snap_t *s, const char sym[FE_SYMBOL_MAX]) {
  uint64_t i = sym_hash(sym) & s->sym_mask;
  while (s->syms[i].used && memcmp(s->syms[i].sym, sym, FE_SYMBOL_MAX) != 0)
    i = (i + 1) & s->sym_mask;
  fe__srule_t *e = &s->syms[i];
  if (!e->used) {
    e->used = 1;
    memcpy(e->sym, sym, FE_SYMBOL_MAX);
    for (int k = 0; k < FE_LIMIT_COUNT; k++)
      e->lim[k] = FE__LIM_UNSET;
  }
  return e;
}

/* Canonical order is ascending by from_price; a snapshot keeps tiers
 * descending so the first with from <= ref is the one. */
static void add_tier(fe__tier_t *t, uint32_t *n, const fe__setting_t *s) {
  uint32_t i = *n;
  while (i > 0 && t[i - 1].from < s->from) {
    t[i] = t[i - 1];
    i--;
  }
  t[i] = (fe__tier_t){.from = s->from, .value = s->value, .basis = s->which};
  (*n)++;
}

void fe__snap_free(fe__snap_t *s) {
  if (s == NULL)
    return;
  free(s->accts);
  free(s->syms);
  free(s->set);
  free(s);
}

int fe__snap_build(const fe_compliance_rules_t *r, fe__snap_t **out,
                   fe_diag_t *diag) {
  fe__snap_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return fe__diag(diag, FE_ENOMEM, "compliance: out of memory");
  memcpy(s->mode, r->mode, sizeof s->mode);
  memcpy(s->lim, r->lim, sizeof s->lim);
  s->smp = r->smp;
  if (fe__rules_canon(r, &s->set, &s->n) != 0)
    goto nomem;
  s->fp = digest(r, s->set, s->n);
  size_t na = 0, ns = 0;
  for (size_t i = 0; i < s->n; i++) {
    uint32_t k = s->set[i].kind;
    if (k == SET_ACCOUNT_LIMIT || k == SET_AUTHORIZE)
      na++;
    else if (k != SET_TIER || s->set[i].sym[0] != '\0')
      ns++;
  }
  if (na > 0) {
    s->acct_mask = pow2_at_least(2 * na) - 1;
    s->accts = calloc(s->acct_mask + 1, sizeof *s->accts);
    if (s->accts == NULL)
      goto nomem;
  }
  if (ns > 0) {
    s->sym_mask = pow2_at_least(2 * ns) - 1;
    s->syms = calloc(s->sym_mask + 1, sizeof *s->syms);
    if (s->syms == NULL)
      goto nomem;
  }
  for (size_t i = 0; i < s->n; i++) {
    const fe__setting_t *e = &s->set[i];
    switch (e->kind) {
    case SET_ACCOUNT_LIMIT:
      acct_slot(s, e->account)->lim[e->which] = e->value;
      break;
    case SET_AUTHORIZE:
      acct_slot(s, e->account)->authorized = 1;
      s->auth_required = 1;
      break;
    case SET_SYMBOL_LIMIT:
      sym_slot(s, e->sym)->lim[e->which] = e->value;
      break;
    case SET_RESTRICT:
      sym_slot(s, e->sym)->restricted = 1;
      break;
    case SET_TIER:
      if (e->sym[0] == '\0') {
        if (s->ntiers >= FE_COMPLIANCE_MAX_TIERS)
          goto tiers;
        add_tier(s->tiers, &s->ntiers, e);
      } else {
        fe__srule_t *y = sym_slot(s, e->sym);
        if (y->ntiers >= FE_COMPLIANCE_MAX_TIERS)
          goto tiers;
        add_tier(y->tiers, &y->ntiers, e);
      }
      break;
    default:
      break;
    }
  }
  *out = s;
  return 0;
tiers:
  fe__snap_free(s);
  return fe__diag(diag, FE_ERANGE, "compliance: more than %d collar tiers",
                  FE_COMPLIANCE_MAX_TIERS);
nomem:
  fe__snap_free(s);
  return fe__diag(diag, FE_ENOMEM, "compliance: out of memory");
}
