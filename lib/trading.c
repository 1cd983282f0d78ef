/* Trading state and kill switch: see include/finevent/trading.h.
 *
 * State words.  The global state (32 bits) and each account's state (its
 * 64-bit value word in the account table) are one word each, changed only by atomic exchange, so every change has exactly
 * one "from" (the exchange's result) and is reported exactly once, with no
 * lock: the kill switch stays wait-free and async-signal-safe.
 *
 * Memory order (pairs labelled as in DPDK):
 *   W1  setters and the kill write a state word with a seq_cst exchange.
 *   R1  fe_trading_check() reads it with an acquire load.
 * Why W1 is seq_cst, not release.  The promise is about time: "once
 * fe_trading_kill() has returned, a check that starts afterwards sees
 * HALTED".  In the C11 model any check ordered after the kill's return by
 * happens-before (the host's flag, mutex, queue...) already sees HALTED or
 * later by write-read coherence, whatever the two orders.  But a check on
 * another core that is merely later in wall-clock time is not ordered by
 * anything, and with a release store (a plain MOV on x86-64) the kill could
 * return while HALTED still sits in its core's store buffer, so that check
 * would admit an order.  A seq_cst exchange (LOCK XCHG on x86-64) does not
 * complete until the store is globally visible, which closes that window;
 * it also keeps the kill from being reordered after anything the killer
 * does next (telling the desk, signalling a flag).  The setters are
 * control-plane calls: the extra ~20 ns is irrelevant.
 * Why R1 is acquire.  For the state itself relaxed would do (coherence);
 * acquire costs nothing on x86-64 (a plain MOV) and makes the state word a
 * publication point: a host that writes its own data (say, a halt report)
 * before a setter may read it after a check that saw the new state.
 *   W2/R2  an account's key word is claimed by a relaxed CAS and read
 * relaxed: it carries no data but "this entry is account K", and the state
 * word beside it starts ACTIVE from create (which happened before any call
 * through the host's hand-off of t).  A check that finds the key but reads
 * the state before the setter's exchange sees ACTIVE: exactly what a check
 * that started before the setter returned may see.
 *   Counters are statistics: relaxed increments, relaxed reads.
 *
 * Account table.  The shared one (lib/keytab.h, also the throttles'):
 * grow-only, lock-free, fixed capacity; FE_ETABLEFULL is never spurious and
 * concurrent inserters may overshoot max_accounts by at most their number
 * - 1.  Only setters insert; checks and getters only look up.
 *
 * Fail closed.  Under REDUCING, an order whose reduction cannot be shown
 * (no position callback, quantity <= 0, unknown side) is rejected: a
 * control that admits what it cannot judge is not a control.
 */
#include "finevent/trading.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "keytab.h"
#include "sync.h"

typedef struct counters {
  uint64_t checked, rejected_halted, rejected_reducing;
} counters_t;

struct fe_trading {
  /* Read by every check.  Read-only after create except `global`, which
   * shares the line on purpose: it changes a handful of times a day, and a
   * check then touches one line of this struct instead of two. */
  uint32_t global;       /* W1 by setters and kill; R1 by checks */
  fe__keytab_t accounts;  /* account -> state word (W1/R1); key words W2/R2 */
  fe_trading_position_fn position;
  void *position_user;
  fe_trading_change_fn on_change;
  void *change_user;
  fe_trading_kill_fn on_kill;
  void *kill_user;

  /* Written by setters only (rare): the control-plane counters. */
  _Alignas(FE_PAD) uint64_t kills, changes, table_full;

  /* Written by every check (relaxed fetch-add), read by stats. */
  _Alignas(FE_PAD) counters_t c;
};

#define count(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)

static int state_valid(int s) {
  return s == FE_TRADING_ACTIVE || s == FE_TRADING_REDUCING ||
         s == FE_TRADING_HALTED;
}

/* ---------------------------------------------------------------- check */

/* 0 when an order of side and qty reduces position pos without flipping
 * it, else FE_EREDUCEONLY.  Magnitudes in uint64_t: -INT64_MIN overflows. */
static int reduces(int64_t pos, uint8_t side, int64_t qty) {
  if (qty <= 0) return FE_EREDUCEONLY;
  uint64_t q = (uint64_t)qty;
  switch (side) {
  case FE_SIDE_BUY:
    return pos < 0 && q <= (uint64_t)0 - (uint64_t)pos ? 0 : FE_EREDUCEONLY;
  case FE_SIDE_SELL:
  case FE_SIDE_SELL_SHORT:
    return pos > 0 && q <= (uint64_t)pos ? 0 : FE_EREDUCEONLY;
  default:
    return FE_EREDUCEONLY;
  }
}

static int reject(fe_trading_t *t, int rc) {
  count(rc == FE_EHALTED ? &t->c.rejected_halted : &t->c.rejected_reducing);
  return rc;
}

int fe_trading_check(fe_trading_t *t, const fe_event_t *ev) {
  if (FE_UNLIKELY(t == NULL || ev == NULL)) return FE_EINVAL;
  return fe__trading_check_order(t, ev->type, &ev->order);
}

int fe__trading_check_order(fe_trading_t *t, uint32_t type,
                            const fe_order_t *o) {
  count(&t->c.checked);
  if (type != FE_EV_NEW_ORDER) return 0; /* see trading.h: not gated */

  uint32_t g = fe__load_acquire(&t->global); /* R1, pairs with W1 */
  if (g == FE_TRADING_HALTED) return reject(t, FE_EHALTED);
  const uint64_t *as = fe__keytab_find(&t->accounts, o->account);
  uint32_t s = as != NULL ? (uint32_t)fe__load_acquire(as)
                          : FE_TRADING_ACTIVE; /* R1 */
  if (s < g) s = g; /* the stricter wins: values are ordered */
  if (FE_LIKELY(s == FE_TRADING_ACTIVE)) return 0;
  if (s == FE_TRADING_HALTED) return reject(t, FE_EHALTED);

  if (t->position == NULL) return reject(t, FE_EREDUCEONLY);
  int64_t pos =
      t->position(o->account, o->symbol, t->position_user);
  int rc = reduces(pos, o->side, o->quantity);
  return rc == 0 ? 0 : reject(t, rc);
}

/* -------------------------------------------------------------- setters */

static void changed(fe_trading_t *t, uint64_t account, int is_global,
                    uint32_t from, uint32_t to, const char *why) {
  count(&t->changes);
  if (t->on_change != NULL)
    t->on_change(account, is_global, (fe_trading_state_t)from,
                 (fe_trading_state_t)to, why != NULL ? why : "",
                 t->change_user);
}

int fe_trading_set_global(fe_trading_t *t, fe_trading_state_t state,
                          const char *why) {
  if (t == NULL || !state_valid((int)state)) return FE_EINVAL;
  uint32_t from = __atomic_exchange_n(&t->global, (uint32_t)state,
                                      __ATOMIC_SEQ_CST); /* W1 */
  if (from != (uint32_t)state) changed(t, 0, 1, from, (uint32_t)state, why);
  return 0;
}

int fe_trading_set_account(fe_trading_t *t, uint64_t account,
                           fe_trading_state_t state, const char *why) {
  if (t == NULL || !state_valid((int)state)) return FE_EINVAL;
  uint64_t *w;
  if (state == FE_TRADING_ACTIVE) {
    /* An account without an entry is ACTIVE already: spend no entry. */
    w = fe__keytab_find(&t->accounts, account);
    if (w == NULL) return 0;
  } else {
    w = fe__keytab_get(&t->accounts, account);
    if (w == NULL) {
      count(&t->table_full);
      return FE_ETABLEFULL;
    }
  }
  uint32_t from =
      (uint32_t)__atomic_exchange_n(w, (uint64_t)state, __ATOMIC_SEQ_CST); /* W1 */
  if (from != (uint32_t)state)
    changed(t, account, 0, from, (uint32_t)state, why);
  return 0;
}

int fe_trading_kill(fe_trading_t *t, const char *why) {
  if (t == NULL) return FE_EINVAL;
  if (why == NULL) why = "kill switch";
  /* W1: seq_cst, so HALTED is globally visible before we return (top). */
  uint32_t from =
      __atomic_exchange_n(&t->global, FE_TRADING_HALTED, __ATOMIC_SEQ_CST);
  count(&t->kills);
  if (from == FE_TRADING_HALTED) return 0; /* idempotent: no re-fire */
  if (t->on_kill != NULL)
    t->on_kill((fe_trading_state_t)from, why, t->kill_user);
  changed(t, 0, 1, from, FE_TRADING_HALTED, why);
  return 0;
}

int fe_trading_get_global(const fe_trading_t *t) {
  if (t == NULL) return FE_EINVAL;
  return (int)fe__load_acquire(&t->global); /* R1 */
}

int fe_trading_get_account(const fe_trading_t *t, uint64_t account) {
  if (t == NULL) return FE_EINVAL;
  const uint64_t *w = fe__keytab_find(&t->accounts, account);
  return w != NULL ? (int)fe__load_acquire(w) : FE_TRADING_ACTIVE; /* R1 */
}

const char *fe_trading_state_name(int state) {
  switch (state) {
  case FE_TRADING_ACTIVE: return "ACTIVE";
  case FE_TRADING_REDUCING: return "REDUCING";
  case FE_TRADING_HALTED: return "HALTED";
  default: return "UNKNOWN";
  }
}

/* ---------------------------------------------------- configuration, life */

void fe_trading_config_init(fe_trading_config_t *cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->max_accounts = FE_TRADING_DEFAULT_MAX_ACCOUNTS;
}

static int check_config(const fe_trading_config_t *cfg, fe_diag_t *diag) {
  if (cfg == NULL) return fe__diag(diag, FE_EINVAL, "trading: cfg is NULL");
  if (cfg->max_accounts == 0 ||
      cfg->max_accounts > FE_TRADING_MAX_ACCOUNTS_MAX)
    return fe__diag(diag, FE_ERANGE,
                    "trading: max_accounts %llu is not in 1..%llu",
                    (unsigned long long)cfg->max_accounts,
                    (unsigned long long)FE_TRADING_MAX_ACCOUNTS_MAX);
  if (cfg->position == NULL && cfg->position_user != NULL)
    return fe__diag(diag, FE_EINVAL,
                    "trading: position_user is set but position is NULL");
  if (cfg->on_change == NULL && cfg->change_user != NULL)
    return fe__diag(diag, FE_EINVAL,
                    "trading: change_user is set but on_change is NULL");
  if (cfg->on_kill == NULL && cfg->kill_user != NULL)
    return fe__diag(diag, FE_EINVAL,
                    "trading: kill_user is set but on_kill is NULL");
  return 0;
}

int fe_trading_create(const fe_trading_config_t *cfg, fe_trading_t **out,
                      fe_diag_t *diag) {
  if (out == NULL) return fe__diag(diag, FE_EINVAL, "trading: out is NULL");
  int rc = check_config(cfg, diag);
  if (rc != 0) return rc;

  fe_trading_t *t = fe__zalloc_aligned(sizeof *t);
  if (t == NULL || fe__keytab_init(&t->accounts, cfg->max_accounts) != 0) {
    free(t);
    return fe__diag(diag, FE_ENOMEM, "trading: cannot allocate the table for "
                    "%llu accounts", (unsigned long long)cfg->max_accounts);
  }
  t->global = FE_TRADING_ACTIVE;
  t->position = cfg->position;
  t->position_user = cfg->position_user;
  t->on_change = cfg->on_change;
  t->change_user = cfg->change_user;
  t->on_kill = cfg->on_kill;
  t->kill_user = cfg->kill_user;
  *out = t;
  return 0;
}

void fe_trading_destroy(fe_trading_t *t) {
  if (t == NULL) return;
  fe__keytab_free(&t->accounts);
  free(t);
}

int fe_trading_stats(const fe_trading_t *t, fe_trading_stats_t *out) {
  if (t == NULL || out == NULL) return FE_EINVAL;
  out->checked = fe__load_relaxed(&t->c.checked);
  out->rejected_halted = fe__load_relaxed(&t->c.rejected_halted);
  out->rejected_reducing = fe__load_relaxed(&t->c.rejected_reducing);
  out->kills = fe__load_relaxed(&t->kills);
  out->changes = fe__load_relaxed(&t->changes);
  out->table_full = fe__load_relaxed(&t->table_full);
  out->accounts = fe__keytab_count(&t->accounts);
  return 0;
}
