/* Pre-trade compliance: private structures shared by lib/compliance.c (the
 * checks, state and stages) and lib/compliance_rules.c (drafts, snapshots,
 * fingerprints).  See include/finevent/compliance.h. */
#ifndef FE_COMPLIANCE_IMPL_H
#define FE_COMPLIANCE_IMPL_H

#include <pthread.h>

#include "finevent/compliance.h"
#include "internal.h"
#include "keytab.h"

/* "No override" in a snapshot's per-account and per-symbol limits. */
#define FE__LIM_UNSET INT64_MIN

/* One setting of a draft.  A draft is a list of settings in the order the
 * calls made them; canonicalisation sorts them by key and keeps the last
 * of each key, so the result depends on what was set, not on the order. */
enum {
  SET_ACCOUNT_LIMIT = 1,
  SET_SYMBOL_LIMIT = 2,
  SET_AUTHORIZE = 3,
  SET_RESTRICT = 4,
  SET_TIER = 5 /* symbol "" (all NUL): the default tiers */
};

typedef struct fe__setting {
  uint32_t kind;
  uint32_t which; /* limit (LIMIT kinds) or basis (SET_TIER) */
  uint64_t account;
  char sym[FE_SYMBOL_MAX];
  int64_t from;   /* SET_TIER: from_price */
  int64_t value;
  uint64_t order; /* insertion number: the later wins */
} fe__setting_t;

struct fe_compliance_rules {
  uint8_t mode[FE_RULE_COUNT];
  int64_t lim[FE_LIMIT_COUNT];
  uint32_t smp;
  fe__setting_t *set;
  size_t n, cap;
  uint64_t next_order;
};

typedef struct fe__tier {
  int64_t from;
  int64_t value;
  uint32_t basis;
} fe__tier_t;

/* Per-account rules of a snapshot (open addressing; used = 1). */
typedef struct fe__arule {
  uint64_t account;
  uint32_t used, authorized;
  int64_t lim[FE_LIMIT_COUNT]; /* FE__LIM_UNSET: the default */
} fe__arule_t;

/* Per-symbol rules of a snapshot. */
typedef struct fe__srule {
  char sym[FE_SYMBOL_MAX];
  uint32_t used, restricted;
  uint32_t ntiers;
  int64_t lim[FE_LIMIT_COUNT]; /* FE__LIM_UNSET: no tightening */
  fe__tier_t tiers[FE_COMPLIANCE_MAX_TIERS]; /* by from, descending */
} fe__srule_t;

/* An installed rule set: immutable once published. */
typedef struct fe__snap {
  uint8_t mode[FE_RULE_COUNT];
  int64_t lim[FE_LIMIT_COUNT];
  uint32_t smp;
  uint32_t auth_required; /* the authorized list is not empty */
  uint32_t ntiers;
  fe__tier_t tiers[FE_COMPLIANCE_MAX_TIERS]; /* default, descending */
  fe__arule_t *accts;
  uint64_t acct_mask; /* slots - 1; accts NULL: none */
  fe__srule_t *syms;
  uint64_t sym_mask;
  /* THROTTLE (compliance.c, throttle_take): GCRA emission interval and
   * capacity in ns (thr_t 0: no throttle), and the generation of the
   * buckets (the same as the set it replaced when rate and burst are). */
  uint64_t thr_t, thr_limit, thr_gen;
  fe_fingerprint_t fp;
  /* Set when installed: 1, then one more per change (never reused, so a
   * cell's cached limits computed under another set never match). */
  uint64_t gen;
  /* The canonical settings, to copy the set back into a draft. */
  fe__setting_t *set;
  size_t n;
} fe__snap_t;

/* Sorts and deduplicates r's settings into a new array (*out, *n; NULL
 * when empty).  Returns 0 or FE_ENOMEM. */
int fe__rules_canon(const fe_compliance_rules_t *r, fe__setting_t **out,
                    size_t *n);

/* Builds a snapshot of r (throttle not set).  Returns 0, FE_ENOMEM, or
 * FE_ERANGE with diag (a symbol with too many tiers). */
int fe__snap_build(const fe_compliance_rules_t *r, fe__snap_t **out,
                   fe_diag_t *diag);
void fe__snap_free(fe__snap_t *s);

/* Account hashing: fe__mix64 (internal.h). */

/* Symbol bytes of a NUL-terminated string (1..FE_SYMBOL_MAX bytes),
 * NUL-padded.  Returns 0 or FE_EINVAL. */
int fe__sym_from_str(const char *s, char out[FE_SYMBOL_MAX]);

const fe__arule_t *fe__snap_account(const fe__snap_t *s, uint64_t account);
const fe__srule_t *fe__snap_symbol(const fe__snap_t *s,
                                   const char sym[FE_SYMBOL_MAX]);

#endif /* FE_COMPLIANCE_IMPL_H */
