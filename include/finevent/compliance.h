/*
 * libfinevent: built-in pre-trade compliance (SEC Rule 15c3-5, MiFID II
 * RTS 6 style risk checks) as a ready-made bus stage.
 *
 * The rule kit.  Every new order (FE_EV_NEW_ORDER) is checked by these
 * rules, in this order (the first rule that rejects decides the reason):
 *
 *   AUTHORIZED     the account is on the authorized list (when the list is
 *                  not empty: an empty list authorizes every account)
 *   RESTRICTED     the symbol is not on the restricted list
 *   TRADING_STATE  the account's trading state (a borrowed fe_trading_t,
 *                  trading.h: HALTED, REDUCING) allows the order
 *   THROTTLE       per-account message rate: throttle.h's GCRA token
 *                  bucket (rate and burst), one bucket per account kept
 *                  with the account's state
 *   SANITY         quantity > 0, a known side and type, quantity * price
 *                  fits (never switched off: always preventive)
 *   MAX_QTY        quantity <= max_qty
 *   COLLAR         the price lies within a band around the symbol's
 *                  reference price: ref +/- width, the width from the first
 *                  tier (by reference price) that applies, either basis
 *                  points of the reference or an absolute price; a market
 *                  order needs a reference price (reason NO_REFERENCE) and
 *                  is valued at it
 *   MAX_NOTIONAL   quantity * price <= max_notional
 *   DUPLICATE      no order with the same account, symbol, side, quantity
 *                  and price within dup_window_ns (among the last
 *                  FE_COMPLIANCE_DUP_DEPTH orders of that account and
 *                  symbol)
 *   MAX_OPEN       the account's open orders in the symbol < max_open
 *   MAX_POSITION   |position + open quantity on the order's side + the
 *                  order| <= max_position (intraday, per account and
 *                  symbol; buys count up, sells down)
 *   SELF_MATCH     the order would not cross one of the account's own
 *                  resting orders in the symbol (a buy at or above one of
 *                  its sells, or a sell at or below one of its buys; a
 *                  market order crosses any); policy cancel-newest (the
 *                  default: the new order is refused), cancel-oldest (the
 *                  resting one is reported for the host to cancel, the new
 *                  one passes) or cancel-both
 *   CREDIT         the account's reserved notional + this order's <=
 *                  credit, and the firm's reserved notional + this
 *                  order's <= firm_credit; reserved when the order is
 *                  accepted, released when it is cancelled, rejected or
 *                  filled (fe_compliance_release(), fe_compliance_fill(),
 *                  or FE_EV_CANCEL / FE_EV_EXEC_REPORT events on the stage)
 *
 * Limits.  Every limit has a default; an account may override it, and a
 * symbol may tighten it: the limit in force for (account, symbol) is
 * min(account's override or the default, symbol's override if any).  A
 * limit of FE_COMPLIANCE_UNLIMITED (the default of every limit) checks
 * nothing.  credit and the throttle are per account only, firm_credit and
 * the collar tiers of the default and per symbol.  Quantities are whole
 * units, prices and notionals FE_PRICE_SCALE fixed point (event.h):
 * notional = quantity * price, in the same scale (an order whose notional
 * exceeds INT64_MAX / 2, about 46 billion, is refused as BAD_ORDER).
 *
 * Control modes.  Each rule runs in one mode:
 *   OFF         not checked;
 *   PREVENTIVE  a breach rejects the order with the rule's reason;
 *   DETECTIVE   a breach lets the order through, counts it, and reports it
 *               (kind FE_COMPLIANCE_FLAG) to cfg.on_event: the alert and
 *               the audit record;
 *   CORRECTIVE  a breach amends the order where the rule can: MAX_QTY
 *               clamps the quantity to the limit, MAX_NOTIONAL and
 *               MAX_POSITION and CREDIT clamp it to what fits, COLLAR turns
 *               a market order into a limit order at the band's edge and
 *               moves an out-of-band limit price to the edge; the
 *               amendment is written into the event and reported (kind
 *               FE_COMPLIANCE_AMEND, before and after).  An order that
 *               cannot be amended into compliance (nothing fits, no
 *               reference price, or a rule with no amendment: the lists,
 *               the state, the throttle, DUPLICATE, MAX_OPEN, SELF_MATCH)
 *               is rejected as under PREVENTIVE.
 * A profile sets every rule's mode at once ("production": all PREVENTIVE;
 * "development": all DETECTIVE); individual rules may then override it.
 *
 * Rule sets and live changes.  Rules, limits and modes are written into a
 * draft (fe_compliance_rules_t) through the calls below, or by the file
 * loader (compliance_conf.h), then installed whole: fe_compliance_create()
 * takes the first, fe_compliance_apply() replaces it while orders flow.
 * The installed set is an immutable snapshot published by one pointer
 * swap; checks read it inside a read-side section (an epoch per reader),
 * and the replaced snapshot is freed only once no reader can still see it.
 * So a check sees the old set or the new one, never a mixture, and takes
 * no lock.  Every change is counted and reported (kind
 * FE_COMPLIANCE_CHANGE) with the old and new fingerprints.
 *
 * Fingerprint.  XXH3-128 of the canonical form of the effective rule set
 * (modes, limits, overrides sorted by key, lists sorted, tiers sorted,
 * self-match policy, with the format's version): the same set gives the
 * same fingerprint whatever order or file formatting produced it, and any
 * effective change gives another one.  It is recorded at create and at
 * every change (kinds START and CHANGE).  The host may pin an approved
 * fingerprint (cfg.approved, fe_compliance_pin()): a running set that
 * differs is a drift, reported as kind DRIFT (pin_mode DETECTIVE) or
 * refused (pin_mode PREVENTIVE: create and apply fail with FE_EMISMATCH
 * and nothing is installed).
 *
 * State.  Reservations, open orders, positions, resting orders, recent
 * orders and reference prices live in fixed tables sized at create
 * (cfg.max_accounts, max_symbols, max_cells: account-and-symbol pairs,
 * max_orders: open orders at once, less up to 16 free entries that each
 * other reader keeps for itself): a full table fails closed (the order
 * is rejected with reason TABLE_FULL), as does an account with
 * FE_COMPLIANCE_MAX_OPEN open orders in one symbol whatever max_open's
 * mode (each open order is tracked for release and self-match).  State is
 * kept across rule changes.
 *
 * Threads.  Everything the module keeps about one account (its cells,
 * open orders, position and reserved notional) has a single writer: the
 * calls that touch an account -- fe_compliance_check() of its orders,
 * fe_compliance_fill() and fe_compliance_release() of them -- must be made
 * by one thread at a time, and a host that moves an account to another
 * thread must order the move (a lock, a queue, the bus's sequences).  The
 * bus stage keyed by account (its default) does exactly that however many
 * shards it has, since each account's events go to one worker; sharding
 * the stage by anything else is not supported.  Different accounts may be
 * checked on any number of threads at once, each with its own reader
 * index (the stage uses the bus's worker index).  What accounts share is
 * the firm's reserved total, reserved by compare-and-swap against the
 * firm limit: however many threads check concurrently, under PREVENTIVE
 * and CORRECTIVE neither an account's total nor the firm's ever exceeds
 * its limit.  A batch of the stage moves the firm's total a few times,
 * not once per order: it sets aside headroom (at most about what the
 * batch has reserved so far, and only what fits under the limit), draws
 * its orders' reservations from it, adds what its fills and cancels
 * release, and hands the rest back when the batch ends.  So while another
 * shard's batch is in progress a check may find less room than the
 * orders themselves hold (it is refused rather than let over the limit),
 * and fe_compliance_reserved(NULL) counts that headroom; one worker alone
 * is exact at the limit, and every figure is exact once the batches in
 * progress have ended.  Monitoring calls (fe_compliance_reserved,
 * fe_compliance_position, fe_compliance_stats, fe_compliance_reference)
 * may run on any thread at any time.  No check, fill, release or
 * reference update allocates, locks or makes a system call (the throttle
 * and the duplicate window read the configured clock, once per order);
 * per order the stage makes one probe of its cell index and, besides
 * those of a borrowed fe_trading_t, no atomic read-modify-write: the
 * firm's total is moved per batch (above), and each reader keeps a few
 * free order entries of its own so that the shared free list is touched
 * only when orders open faster than they close.  fe_compliance_apply() and
 * fe_compliance_pin() may be called from any thread, one at a time; apply
 * blocks until readers of the old set have left (a batch).
 */
#ifndef FINEVENT_COMPLIANCE_H
#define FINEVENT_COMPLIANCE_H

#include <stdint.h>

#include "bus.h"
#include "error.h"
#include "event.h"
#include "reason.h"
#include "trading.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The rules' reject reasons are library reasons (reason.h, FE_REASON_CR_*,
 * 224..240): X(name, fix) lists them with the FIX OrdRejReason (tag 103)
 * each maps onto (fe_compliance_fix_reason()): 0 broker option, 3 order
 * exceeds limit, 6 duplicate order, 11 unsupported order characteristic,
 * 15 unknown account, 16 price exceeds current price band, 99 other (FIX
 * has no closer value). */
#define FE_COMPLIANCE_REASON_MAP(X)                                            \
  X(UNAUTHORIZED, 15)                                                          \
  X(RESTRICTED, 0)                                                             \
  X(HALTED, 0)                                                                 \
  X(REDUCE_ONLY, 0)                                                            \
  X(THROTTLED, 99)                                                             \
  X(BAD_ORDER, 11)                                                             \
  X(MAX_QTY, 3)                                                                \
  X(NO_REFERENCE, 99)                                                          \
  X(COLLAR, 16)                                                                \
  X(MAX_NOTIONAL, 3)                                                           \
  X(DUPLICATE, 6)                                                              \
  X(MAX_OPEN, 3)                                                               \
  X(MAX_POSITION, 3)                                                           \
  X(SELF_MATCH, 99)                                                            \
  X(CREDIT, 3)                                                                 \
  X(FIRM_CREDIT, 3)                                                            \
  X(TABLE_FULL, 99)

/* Short names: FE_CR_MAX_QTY == FE_REASON_CR_MAX_QTY. */
typedef enum fe_compliance_reason {
#define FE__CR_ENUM(name, fix) FE_CR_##name = FE_REASON_CR_##name,
  FE_COMPLIANCE_REASON_MAP(FE__CR_ENUM)
#undef FE__CR_ENUM
} fe_compliance_reason_t;

/* The rules (index into modes and counters). */
#define FE_COMPLIANCE_RULE_MAP(X)                                              \
  X(AUTHORIZED, "authorized")                                                  \
  X(RESTRICTED, "restricted")                                                  \
  X(TRADING_STATE, "trading_state")                                            \
  X(THROTTLE, "throttle")                                                      \
  X(MAX_QTY, "max_qty")                                                        \
  X(COLLAR, "collar")                                                          \
  X(MAX_NOTIONAL, "max_notional")                                              \
  X(DUPLICATE, "duplicate")                                                    \
  X(MAX_OPEN, "max_open")                                                      \
  X(MAX_POSITION, "max_position")                                              \
  X(SELF_MATCH, "self_match")                                                  \
  X(CREDIT, "credit")

typedef enum fe_compliance_rule {
#define FE__CRULE_ENUM(name, text) FE_RULE_##name,
  FE_COMPLIANCE_RULE_MAP(FE__CRULE_ENUM)
#undef FE__CRULE_ENUM
  FE_RULE_COUNT
} fe_compliance_rule_t;

typedef enum fe_compliance_mode {
  FE_MODE_OFF = 0,
  FE_MODE_PREVENTIVE = 1,
  FE_MODE_DETECTIVE = 2,
  FE_MODE_CORRECTIVE = 3
} fe_compliance_mode_t;

typedef enum fe_compliance_profile {
  FE_PROFILE_PRODUCTION = 1,  /* every rule PREVENTIVE */
  FE_PROFILE_DEVELOPMENT = 2  /* every rule DETECTIVE */
} fe_compliance_profile_t;

/* Limits.  DUP_WINDOW_NS, THROTTLE_RATE (orders per second) and
 * THROTTLE_BURST and FIRM_CREDIT are default-only; CREDIT is per account
 * (a symbol override is refused). */
#define FE_COMPLIANCE_LIMIT_MAP(X)                                             \
  X(MAX_QTY, "max_qty")                                                        \
  X(MAX_NOTIONAL, "max_notional")                                              \
  X(CREDIT, "credit")                                                          \
  X(FIRM_CREDIT, "firm_credit")                                                \
  X(MAX_OPEN, "max_open")                                                      \
  X(MAX_POSITION, "max_position")                                              \
  X(DUP_WINDOW_NS, "dup_window_ns")                                            \
  X(THROTTLE_RATE, "throttle_rate")                                            \
  X(THROTTLE_BURST, "throttle_burst")

typedef enum fe_compliance_limit {
#define FE__CLIM_ENUM(name, text) FE_LIMIT_##name,
  FE_COMPLIANCE_LIMIT_MAP(FE__CLIM_ENUM)
#undef FE__CLIM_ENUM
  FE_LIMIT_COUNT
} fe_compliance_limit_t;

/* "No limit" for every limit; the default of each.  For DUP_WINDOW_NS it
 * means "no window" (the check is off), for the throttle "no throttle". */
#define FE_COMPLIANCE_UNLIMITED INT64_MAX

/* Most open orders per account and symbol that max_open may allow (the
 * self-match check tracks each of them). */
#define FE_COMPLIANCE_MAX_OPEN 32
/* Recent orders per account and symbol the duplicate check compares. */
#define FE_COMPLIANCE_DUP_DEPTH 8
/* Collar tiers per symbol (and for the default). */
#define FE_COMPLIANCE_MAX_TIERS 8
/* Reader indices for fe_compliance_check(): 0..FE_COMPLIANCE_READERS-1;
 * the stage uses its worker index, so host threads calling check
 * directly take indices no bus worker uses. */
#define FE_COMPLIANCE_READERS 128

/* Self-match policies. */
typedef enum fe_compliance_smp {
  FE_SMP_CANCEL_NEWEST = 1, /* refuse the new order (default) */
  FE_SMP_CANCEL_OLDEST = 2, /* pass it; report the resting order
                               (kind SMP_CANCEL) for the host to cancel */
  FE_SMP_CANCEL_BOTH = 3    /* refuse it and report the resting order */
} fe_compliance_smp_t;

/* Collar width basis. */
typedef enum fe_collar_basis {
  FE_COLLAR_BPS = 1,     /* width = ref * value / 10000 (value in basis
                            points: 500 = 5 %) */
  FE_COLLAR_ABSOLUTE = 2 /* width = value (FE_PRICE_SCALE) */
} fe_collar_basis_t;

/* A 128-bit fingerprint (XXH3-128: lo and hi 64-bit halves). */
typedef struct fe_fingerprint {
  uint64_t lo, hi;
} fe_fingerprint_t;

/* The size of fe_fingerprint_format()'s output, NUL included. */
#define FE_FINGERPRINT_HEX 33

typedef struct fe_compliance fe_compliance_t;
typedef struct fe_compliance_rules fe_compliance_rules_t;

/* ------------------------------------------------------- the callback */

typedef enum fe_compliance_kind {
  FE_COMPLIANCE_FLAG = 1,       /* DETECTIVE: a breach let through */
  FE_COMPLIANCE_AMEND = 2,      /* CORRECTIVE: the order was amended */
  FE_COMPLIANCE_SMP_CANCEL = 3, /* self-match: cancel the resting order
                                   (resting_client_order_id) */
  FE_COMPLIANCE_START = 4,      /* create installed the first rule set */
  FE_COMPLIANCE_CHANGE = 5,     /* apply installed a new rule set */
  FE_COMPLIANCE_DRIFT = 6       /* the installed set is not the pinned one */
} fe_compliance_kind_t;

/* Everything an audit record of a compliance event needs.  Order fields
 * are those of the order as checked (before) and, for AMEND, as amended
 * (after); for START, CHANGE and DRIFT only the fingerprints, change and
 * wall_ns are meaningful. */
typedef struct fe_compliance_event {
  fe_compliance_kind_t kind;
  fe_compliance_rule_t rule;   /* FLAG, AMEND, SMP_CANCEL */
  fe_compliance_mode_t mode;   /* the rule's mode */
  uint32_t reason;             /* the reason the rule would reject with */
  uint64_t account;
  char symbol[FE_SYMBOL_MAX + 1];
  char client_order_id[FE_CLORDID_MAX + 1];
  char resting_client_order_id[FE_CLORDID_MAX + 1]; /* SMP_CANCEL */
  int64_t limit;               /* the limit in force (or the band edge) */
  int64_t value;               /* the value checked against it */
  int64_t qty_before, qty_after;
  int64_t price_before, price_after;
  uint8_t type_before, type_after;
  uint64_t trace_id;
  fe_fingerprint_t fingerprint;      /* the rule set in force (CHANGE: new) */
  fe_fingerprint_t prev_fingerprint; /* CHANGE: the replaced set; DRIFT:
                                        the pinned one */
  uint64_t change;             /* changes installed so far (START: 0) */
  uint64_t wall_ns;            /* CLOCK_REALTIME ns */
} fe_compliance_event_t;

/* Called on the checking thread (the stage's worker) for every FLAG,
 * AMEND and SMP_CANCEL, and on the thread of create/apply/pin for START,
 * CHANGE and DRIFT.  ev is valid during the call only.  It must not block
 * (it runs on the order path) and must not call fe_compliance_apply() or
 * fe_compliance_destroy(). */
typedef void (*fe_compliance_event_fn)(const fe_compliance_event_t *ev,
                                       void *user);

/* ------------------------------------------------------- configuration */

typedef struct fe_compliance_config {
  uint64_t max_accounts; /* account state entries (default 65536) */
  uint64_t max_symbols;  /* symbol entries (default 4096) */
  uint64_t max_cells;    /* account-and-symbol entries (default 262144) */
  uint64_t max_orders;   /* open orders at once (default 262144) */
  fe_trading_t *trading; /* TRADING_STATE's source; NULL: the rule passes
                            every order.  Borrowed: must outlive c */
  fe_compliance_event_fn on_event; /* NULL: events are only counted */
  void *event_user;
  /* Time for the duplicate window and the throttle, ns; called on the
   * checking thread.  NULL: fe_clock_now_ns(). */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
  /* Pinned approved fingerprint; pin_mode OFF (default): none. */
  fe_fingerprint_t approved;
  fe_compliance_mode_t pin_mode; /* OFF, DETECTIVE or PREVENTIVE */
} fe_compliance_config_t;

/* Counters since create (each exact; not one snapshot). */
typedef struct fe_compliance_stats {
  uint64_t checked;                    /* new orders checked */
  uint64_t accepted;                   /* passed (possibly amended) */
  uint64_t rejected[FE_RULE_COUNT + 1];/* by rule; [FE_RULE_COUNT]: SANITY
                                          and TABLE_FULL */
  uint64_t flagged[FE_RULE_COUNT];     /* DETECTIVE breaches */
  uint64_t amended[FE_RULE_COUNT];     /* CORRECTIVE amendments */
  uint64_t smp_cancels;                /* resting orders reported */
  uint64_t released;                   /* orders closed (cancel, reject,
                                          complete fill) */
  uint64_t fills;                      /* fills applied */
  uint64_t unknown_orders;             /* fill/release of no open order */
  uint64_t md_updates;                 /* reference prices stored */
  uint64_t changes;                    /* rule sets installed after create */
  uint64_t refused_changes;            /* apply refused (validation, pin) */
  uint64_t drifts;                     /* DRIFT reports */
} fe_compliance_stats_t;

/* The outcome of one check. */
typedef struct fe_compliance_result {
  int verdict;      /* FE_CONTINUE or FE_REJECT (fe_verdict_t) */
  uint32_t reason;  /* FE_REJECT: the fe_compliance_reason_t */
  int rule;         /* FE_REJECT: the rule (FE_RULE_COUNT for SANITY and
                       TABLE_FULL) */
  uint32_t flags;   /* bit r set: rule r flagged (DETECTIVE) */
  uint32_t amended; /* bit r set: rule r amended the order */
} fe_compliance_result_t;

/* --------------------------------------------------------- the draft */

/* Allocates an empty draft: the "production" profile, every limit
 * FE_COMPLIANCE_UNLIMITED, no lists, no tiers, cancel-newest.
 * Returns 0, FE_EINVAL (out NULL), FE_ENOMEM.  Thread-safe (a draft is
 * the caller's alone); blocking (allocates). */
FE_API int fe_compliance_rules_create(fe_compliance_rules_t **out);

/* Frees r.  Accepts NULL. */
FE_API void fe_compliance_rules_destroy(fe_compliance_rules_t *r);

/* Copies the rule set installed in c (for a live change: copy, edit,
 * apply).  Returns 0, FE_EINVAL (NULL), FE_ENOMEM.  Any thread. */
FE_API int fe_compliance_rules_copy(fe_compliance_t *c,
                                    fe_compliance_rules_t **out);

/* Sets every rule's mode from a profile (later fe_compliance_rules_mode()
 * calls override single rules; a profile set afterwards resets them).
 * Returns 0 or FE_EINVAL (r NULL, p unknown: nothing changed). */
FE_API int fe_compliance_rules_profile(fe_compliance_rules_t *r,
                                       fe_compliance_profile_t p);

/* Sets one rule's mode.  Returns 0 or FE_EINVAL (r NULL, rule or mode out
 * of range: nothing changed). */
FE_API int fe_compliance_rules_mode(fe_compliance_rules_t *r,
                                    fe_compliance_rule_t rule,
                                    fe_compliance_mode_t mode);

/* Sets the default of a limit (value >= 0; FE_COMPLIANCE_UNLIMITED: none;
 * MAX_OPEN 0..FE_COMPLIANCE_MAX_OPEN or unlimited, which is taken as
 * FE_COMPLIANCE_MAX_OPEN).  Returns 0, FE_EINVAL (r NULL, which unknown),
 * FE_ERANGE (value negative, MAX_OPEN or THROTTLE_* too large).  Nothing
 * changed on failure. */
FE_API int fe_compliance_rules_limit(fe_compliance_rules_t *r,
                                     fe_compliance_limit_t which,
                                     int64_t value);

/* Overrides a limit for one account (MAX_QTY, MAX_NOTIONAL, CREDIT,
 * MAX_OPEN, MAX_POSITION).  Returns 0, FE_EINVAL (r NULL, which unknown
 * or default-only), FE_ERANGE (value as above), FE_ENOMEM. */
FE_API int fe_compliance_rules_account_limit(fe_compliance_rules_t *r,
                                             uint64_t account,
                                             fe_compliance_limit_t which,
                                             int64_t value);

/* Tightens a limit for one symbol (MAX_QTY, MAX_NOTIONAL, MAX_OPEN,
 * MAX_POSITION).  symbol: 1..FE_SYMBOL_MAX bytes, NUL-terminated.
 * Returns 0, FE_EINVAL (NULL, bad symbol, which not per symbol),
 * FE_ERANGE, FE_ENOMEM. */
FE_API int fe_compliance_rules_symbol_limit(fe_compliance_rules_t *r,
                                            const char *symbol,
                                            fe_compliance_limit_t which,
                                            int64_t value);

/* Adds account to the authorized list (once the list is not empty, only
 * its accounts may trade).  Returns 0, FE_EINVAL, FE_ENOMEM. */
FE_API int fe_compliance_rules_authorize(fe_compliance_rules_t *r,
                                         uint64_t account);

/* Adds symbol to the restricted list.  Returns 0, FE_EINVAL, FE_ENOMEM. */
FE_API int fe_compliance_rules_restrict(fe_compliance_rules_t *r,
                                        const char *symbol);

/* Adds a collar tier: for reference prices >= from_price (>= 0) the band
 * is ref +/- width (basis, value > 0; BPS at most 10000).  symbol NULL:
 * the default tiers (used by symbols without tiers of their own).  A tier
 * with the same from_price replaces the old one.  Without any tier the
 * COLLAR rule checks only that a market order has a reference price.
 * Returns 0, FE_EINVAL (r NULL, bad symbol, basis unknown), FE_ERANGE
 * (from_price < 0, value out of range, more than FE_COMPLIANCE_MAX_TIERS
 * tiers), FE_ENOMEM. */
FE_API int fe_compliance_rules_collar(fe_compliance_rules_t *r,
                                      const char *symbol, int64_t from_price,
                                      fe_collar_basis_t basis, int64_t value);

/* Sets the self-match policy.  Returns 0 or FE_EINVAL. */
FE_API int fe_compliance_rules_smp(fe_compliance_rules_t *r,
                                   fe_compliance_smp_t policy);

/* The fingerprint the draft would have once installed.  Returns 0,
 * FE_EINVAL (NULL), FE_ENOMEM. */
FE_API int fe_compliance_rules_fingerprint(const fe_compliance_rules_t *r,
                                           fe_fingerprint_t *out);

/* --------------------------------------------------------- the module */

/* Fills cfg with the defaults above.  Does nothing when cfg is NULL. */
FE_API void fe_compliance_config_init(fe_compliance_config_t *cfg);

/* Validates cfg and rules, allocates and pre-faults every table, installs
 * rules (copied: the draft stays the caller's) and reports START (and
 * DRIFT when pinned and different).
 *   diag  out, may be NULL: the code and a message naming the field.
 * Returns 0, FE_EINVAL (a NULL argument, a user pointer without its
 * callback, pin_mode not OFF/DETECTIVE/PREVENTIVE), FE_ERANGE (a table
 * size 0 or above 2^26), FE_EMISMATCH (pin_mode PREVENTIVE and the rules'
 * fingerprint is not cfg.approved), FE_ENOMEM.  Nothing allocated and no
 * callback on failure.  Thread-safe; blocking (allocates). */
FE_API int fe_compliance_create(const fe_compliance_config_t *cfg,
                                const fe_compliance_rules_t *rules,
                                fe_compliance_t **out, fe_diag_t *diag);

/* Frees c.  Accepts NULL.  No other call may be in progress or follow
 * (destroy the bus that runs its stages first). */
FE_API void fe_compliance_destroy(fe_compliance_t *c);

/* Installs rules (copied) in place of the running set, atomically (see the
 * top), counts the change and reports CHANGE (and DRIFT when pinned and
 * different).  Returns 0, FE_EINVAL (NULL), FE_EMISMATCH (pinned
 * PREVENTIVE and the fingerprint differs: nothing installed, counted in
 * refused_changes), FE_ENOMEM (nothing installed).  Any thread, one apply
 * or pin at a time (not from a check or the callback); blocking: waits
 * for readers of the old set to leave. */
FE_API int fe_compliance_apply(fe_compliance_t *c,
                               const fe_compliance_rules_t *rules,
                               fe_diag_t *diag);

/* Pins (mode DETECTIVE or PREVENTIVE) or unpins (mode OFF) an approved
 * fingerprint; when pinned and the running set differs, reports DRIFT
 * (under PREVENTIVE too: the running set is not removed, later applies
 * must match).  Returns 0 or FE_EINVAL.  As fe_compliance_apply(). */
FE_API int fe_compliance_pin(fe_compliance_t *c, fe_fingerprint_t approved,
                             fe_compliance_mode_t mode);

/* The fingerprint of the running set.  Returns 0 or FE_EINVAL.  Any
 * thread; blocking briefly (the lock that orders applies). */
FE_API int fe_compliance_fingerprint(const fe_compliance_t *c,
                                     fe_fingerprint_t *out);

/* Writes fp as 32 lower-case hex digits (hi then lo) and a NUL into out
 * (FE_FINGERPRINT_HEX bytes).  Returns 0 or FE_EINVAL (out NULL). */
FE_API int fe_fingerprint_format(fe_fingerprint_t fp,
                                 char out[FE_FINGERPRINT_HEX]);

/* Parses 32 hex digits (as fe_fingerprint_format writes).  Returns 0 or
 * FE_EINVAL (NULL, not 32 hex digits). */
FE_API int fe_fingerprint_parse(const char *hex, fe_fingerprint_t *out);

/* Checks a new order (ev->type FE_EV_NEW_ORDER; other types pass
 * untouched with FE_CONTINUE) under the running rules, amends ev in place
 * under CORRECTIVE, and on acceptance reserves its notional and records
 * it as open (keyed by account, symbol and client order id).
 *   reader  0..FE_COMPLIANCE_READERS-1, one per concurrent caller.
 *   out     may be NULL.
 * Returns FE_CONTINUE (accepted) or FE_REJECT (out->reason says why; the
 * state is unchanged), or FE_EINVAL (c or ev NULL, reader out of range).
 * Any thread, one thread at a time per account (see the top); lock-free,
 * no allocation or system call. */
FE_API int fe_compliance_check(fe_compliance_t *c, uint32_t reader,
                               fe_event_t *ev, fe_compliance_result_t *out);

/* A fill of qty (> 0) of the open order (account, symbol,
 * client_order_id; symbol as for fe_compliance_set_reference): moves
 * the account's position in its symbol, releases qty's reservation, and
 * closes the order when nothing remains (a fill above the remainder is
 * taken as the remainder).  Returns 0, FE_ENOTFOUND (no such open order:
 * counted), FE_EINVAL (NULL, qty <= 0).  Lock-free; one thread at a time
 * per account, as fe_compliance_check(). */
FE_API int fe_compliance_fill(fe_compliance_t *c, uint64_t account,
                              const char *symbol, const char *client_order_id,
                              int64_t qty);

/* Closes the open order (account, symbol, client_order_id) without a fill
 * (cancelled, rejected by the venue or by a later stage, expired):
 * releases what it still reserved.  Returns 0, FE_ENOTFOUND, FE_EINVAL.
 * As fe_compliance_fill(). */
FE_API int fe_compliance_release(fe_compliance_t *c, uint64_t account,
                                 const char *symbol,
                                 const char *client_order_id);

/* Stores symbol's reference price (> 0).  Returns 0, FE_EINVAL (NULL,
 * empty symbol, price <= 0), FE_ETABLEFULL.  Any thread; lock-free. */
FE_API int fe_compliance_set_reference(fe_compliance_t *c, const char *symbol,
                                       int64_t price);

/* The reference price of symbol, or 0 when none.  FE_EINVAL for NULL. */
FE_API int64_t fe_compliance_reference(const fe_compliance_t *c,
                                       const char *symbol);

/* Reserved notional of an account (account != NULL) or of the firm
 * (account NULL), for monitoring.  The firm's figure moves once per batch
 * of the stage ("Threads" at the top): while batches are in progress it
 * includes the headroom they set aside under a firm limit (so it never
 * passes the limit either), and without a firm limit it lags by what they
 * have not yet handed over; exact whenever none is.  Returns it (>= 0),
 * or FE_EINVAL.  Any thread; lock-free. */
FE_API int64_t fe_compliance_reserved(const fe_compliance_t *c,
                                      const uint64_t *account);

/* Intraday position of account in symbol: 0 when unknown, and for c or
 * symbol NULL or a symbol that is not valid (a position may be negative,
 * so no error code could be told from one).  Any thread; lock-free. */
FE_API int64_t fe_compliance_position(const fe_compliance_t *c,
                                      uint64_t account, const char *symbol);

/* Copies the counters.  Returns 0 or FE_EINVAL.  Any thread; wait-free. */
FE_API int fe_compliance_stats(const fe_compliance_t *c,
                               fe_compliance_stats_t *out);

/* ------------------------------------------------------- on the bus
 *
 * fe_compliance_stage() fills the order stage: a batch handler for
 * FE_EV_NEW_ORDER (checked as fe_compliance_check with the worker as
 * reader; a reject is fe_batch_reject with the reason), FE_EV_CANCEL
 * (order.account, order.symbol and order.client_order_id name the order
 * to close: released) and FE_EV_EXEC_REPORT (a fill of order.quantity of
 * the order so named;
 * quantity 0 closes it: the venue rejected or expired it).  Its key is the
 * account (the default), so each account's state has one writer however
 * many shards there are (see "Threads" at the top): leave out->key NULL.
 * Set name, deps, shards and worker afterwards as
 * for any stage.
 *
 * fe_compliance_md_stage() fills the market-data stage: a multicast
 * consumer of FE_EV_MARKET_DATA events (order.symbol, order.price = the
 * new reference price) that keeps reference prices current; it never
 * rejects.  Put it on the ring in parallel with the others, or make the
 * order stage depend on it so that an order published after a price
 * update is always checked against it. */
FE_API int fe_compliance_stage(fe_compliance_t *c, fe_stage_def_t *out,
                               fe_diag_t *diag);
FE_API int fe_compliance_md_stage(fe_compliance_t *c, fe_stage_def_t *out,
                                  fe_diag_t *diag);

/* ------------------------------------------------------- names */

/* "AUTHORIZED"... for rules: the text of FE_COMPLIANCE_RULE_MAP ("max_qty"),
 * NULL for an unknown value. */
FE_API const char *fe_compliance_rule_name(int rule);
/* "off", "preventive", "detective", "corrective", or NULL. */
FE_API const char *fe_compliance_mode_name(int mode);
/* The limit's name ("max_qty"), or NULL. */
FE_API const char *fe_compliance_limit_name(int limit);
/* Names and meanings of the reasons: fe_reason_name() ("CR_MAX_QTY") and
 * fe_reason_meaning() in reason.h. */
/* The FIX OrdRejReason (tag 103) for a compliance reason (99 "other" when
 * FIX has no closer value), or -1 for a code that is not a compliance
 * reason. */
FE_API int fe_compliance_fix_reason(uint32_t reason);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_COMPLIANCE_H */
