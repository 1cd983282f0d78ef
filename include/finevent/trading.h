/*
 * libfinevent: trading state and kill switch (pre-trade control).
 *
 * A trading object answers, at admission (before an event is published),
 * "may this event enter the market now?" from a trading state:
 *
 *   FE_TRADING_ACTIVE    every event passes.
 *   FE_TRADING_REDUCING  a new order passes only if it reduces the account's
 *                        position in its symbol (see fe_trading_check()).
 *   FE_TRADING_HALTED    no new order passes.
 *
 * There is one global state and one state per account.  The state in force
 * for an order is the stricter of the two (HALTED > REDUCING > ACTIVE): the
 * numeric values are ordered so, and stay so.  An account without an entry
 * is ACTIVE.
 *
 * What is gated.  Only FE_EV_NEW_ORDER is an order entering the market.
 * FE_EV_CANCEL always passes, in every state: a halt must never stop a firm
 * from pulling its orders.  FE_EV_EXEC_REPORT, FE_EV_SETTLE_CONFIRM,
 * FE_EV_MARKET_DATA, the other values below FE_EV_USER and the host's own
 * types (>= FE_EV_USER) also always pass: they report on or feed orders
 * already in the market, and rejecting them would lose fills and
 * settlements, not stop trading.  A host type that does send orders must be
 * checked by the host as a new order (set type FE_EV_NEW_ORDER in a copy).
 *
 * Accounts.  Per-account states live in a fixed table of max_accounts
 * entries allocated by fe_trading_create(); an entry is made the first time
 * an account is set to a state other than ACTIVE and stays for the object's
 * lifetime (setting it back to ACTIVE keeps the entry).  When the table is
 * full a new account is refused with FE_ETABLEFULL; nothing is ever evicted,
 * and accounts already present keep working.  Every uint64_t is a valid
 * account, 0 included.
 *
 * Kill switch.  fe_trading_kill() halts globally: one atomic exchange, so it
 * can be called from any thread, and from a signal handler when no callback
 * is configured.  When it returns, every fe_trading_check() that starts
 * afterwards, on any thread, sees HALTED.  Trading resumes only by an
 * explicit fe_trading_set_global(t, FE_TRADING_ACTIVE, why).
 *
 * Callbacks run on the thread whose call caused them, outside any lock
 * (there is none).  Two changes made at once on different threads are
 * each reported exactly once with the correct from and to (they are links
 * of the state word's modification order), but their callbacks may run
 * concurrently and be seen in either order.
 *
 * Threads.  fe_trading_check(), the setters, the getters, fe_trading_kill()
 * and fe_trading_stats() may all be called from any number of threads at
 * once; none allocates, locks or makes a system call.  fe_trading_destroy()
 * needs every other call stopped.
 *
 * Lifecycle:
 *     fe_trading_config_init(&cfg);   set max_accounts, position, on_change...
 *     fe_trading_create(&cfg, &t, &diag);
 *     if (fe_trading_check(t, ev) == 0) publish ... else reject
 *     fe_trading_kill(t, "operator");            from any thread
 *     fe_trading_set_global(t, FE_TRADING_ACTIVE, "resumed after review");
 *     fe_trading_destroy(t);
 */
#ifndef FINEVENT_TRADING_H
#define FINEVENT_TRADING_H

#include <stdint.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest accepted max_accounts: the table then takes 2 GiB (16 bytes an
 * entry, at most half the entries used). */
#define FE_TRADING_MAX_ACCOUNTS_MAX (UINT64_C(1) << 26)
/* Default max_accounts. */
#define FE_TRADING_DEFAULT_MAX_ACCOUNTS UINT64_C(65536)

/* Trading states, in increasing strictness (the values are compared). */
typedef enum fe_trading_state {
  FE_TRADING_ACTIVE = 0,
  FE_TRADING_REDUCING = 1,
  FE_TRADING_HALTED = 2
} fe_trading_state_t;

typedef struct fe_trading fe_trading_t;

/* Signed position of account in symbol: > 0 long, < 0 short, 0 flat.
 * symbol points at the order's symbol field: FE_SYMBOL_MAX bytes, NUL
 * padded, NOT NUL-terminated when the symbol is FE_SYMBOL_MAX bytes long.
 * Called by fe_trading_check() on the checking thread, only for a new
 * order while REDUCING is in force, so it must be thread-safe; the check's
 * cost and progress guarantee become this function's.  It may call
 * fe_trading_get_*() and fe_trading_stats(), not fe_trading_destroy(). */
typedef int64_t (*fe_trading_position_fn)(uint64_t account, const char *symbol,
                                          void *user);

/* Called once per real change of a state (a set to the current value, and
 * a kill while already halted, are not changes), on the thread that made
 * it, after the change is visible to checks.  account_or_global is the
 * account (is_global 0) or 0 (is_global 1); why is the setter's text
 * (never NULL: "" when the setter gave NULL), valid during the call only.
 * It may call any fe_trading_ function on t but fe_trading_destroy(); a
 * change it makes is reported by a nested call. */
typedef void (*fe_trading_change_fn)(uint64_t account_or_global, int is_global,
                                     fe_trading_state_t from,
                                     fe_trading_state_t to, const char *why,
                                     void *user);

/* Called by the fe_trading_kill() that moved the global state to HALTED
 * (not by a kill that found it halted already), on the killing thread,
 * before on_change; from is the global state the kill replaced.  Same rules
 * as fe_trading_change_fn.  Its cost is the kill's: a signal handler that
 * kills makes it run in signal context. */
typedef void (*fe_trading_kill_fn)(fe_trading_state_t from, const char *why,
                                   void *user);

/* Configuration.  Initialise with fe_trading_config_init(). */
typedef struct fe_trading_config {
  /* Accounts the table can hold, 1..FE_TRADING_MAX_ACCOUNTS_MAX (default
   * FE_TRADING_DEFAULT_MAX_ACCOUNTS). */
  uint64_t max_accounts;
  /* Position source for REDUCING.  NULL (the default): while REDUCING is
   * in force every new order is rejected with FE_EREDUCEONLY, since no
   * order can be shown to reduce a position. */
  fe_trading_position_fn position;
  void *position_user;
  /* State-change and kill notifications; NULL (the default) for none.
   * Each *_user is set only with its callback. */
  fe_trading_change_fn on_change;
  void *change_user;
  fe_trading_kill_fn on_kill;
  void *kill_user;
} fe_trading_config_t;

/* Counters since create.  Each counter is exact; they are not read as one
 * snapshot, so they add up once checks stop:
 *   checked = (checks that returned 0) + rejected_halted + rejected_reducing.
 */
typedef struct fe_trading_stats {
  uint64_t checked;           /* fe_trading_check() calls past argument
                                 checking, every event type */
  uint64_t rejected_halted;   /* returned FE_EHALTED */
  uint64_t rejected_reducing; /* returned FE_EREDUCEONLY */
  uint64_t kills;             /* fe_trading_kill() calls, halted or not */
  uint64_t changes;           /* real state changes (= on_change calls,
                                 when configured), global and accounts */
  uint64_t table_full;        /* setters refused with FE_ETABLEFULL */
  uint64_t accounts;          /* accounts with an entry (account 0
                                 included) */
} fe_trading_stats_t;

/* Fills cfg with the defaults: max_accounts FE_TRADING_DEFAULT_MAX_ACCOUNTS,
 * no callbacks.  Does nothing when cfg is NULL.  Cannot fail; thread-safe
 * (touches only cfg). */
FE_API void fe_trading_config_init(fe_trading_config_t *cfg);

/* Validates cfg, then allocates and pre-faults the object and its account
 * table; every state ACTIVE, counters 0.
 *   cfg   in: read during the call only (callbacks and user pointers are
 *         kept and must stay valid until fe_trading_destroy()).
 *   out   out: the new object, owned by the caller, freed with
 *         fe_trading_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg or out NULL; position_user, change_user or
 * kill_user set without its callback), FE_ERANGE (max_accounts 0 or above
 * FE_TRADING_MAX_ACCOUNTS_MAX), FE_ENOMEM.  On failure nothing is
 * allocated and no callback runs.  Thread-safe; blocking (allocates and
 * touches memory, O(max_accounts)). */
FE_API int fe_trading_create(const fe_trading_config_t *cfg,
                             fe_trading_t **out, fe_diag_t *diag);

/* Frees t and its table.  Accepts NULL.  No other call on t may be in
 * progress or follow.  Cannot fail. */
FE_API void fe_trading_destroy(fe_trading_t *t);

/* Decides whether ev may enter the market under the state in force for its
 * account (the stricter of global and account).
 *   t   in: the object.
 *   ev  in: the event, read only (type, order.account, side, quantity,
 *       symbol); not kept.
 * Returns 0 (allowed), or for FE_EV_NEW_ORDER only:
 *   FE_EHALTED      HALTED is in force;
 *   FE_EREDUCEONLY  REDUCING is in force and the order does not reduce the
 *                   position p = position(account, symbol): a buy passes
 *                   only when p < 0 and quantity <= -p, a sell or
 *                   FE_SIDE_SELL_SHORT only when p > 0 and quantity <= p
 *                   (so it can neither grow |p| nor flip its sign).  Also
 *                   returned, failing closed, for a quantity <= 0, a side
 *                   outside fe_side_t, or no position callback configured.
 * Every other event type returns 0 in every state (see the top).
 * FE_EINVAL (t or ev NULL) is not counted; every other call is counted in
 * checked and in at most one rejection counter.
 * Any thread, concurrently with every call but destroy.  Lock-free and,
 * without REDUCING, wait-free: one atomic load of the global state, one
 * lookup in the account table (a hash and a short probe), one or two
 * relaxed counter increments; no allocation, lock or system call.  Under
 * REDUCING it also calls the position callback once, and inherits its
 * guarantees.  Memory: a check that starts after fe_trading_kill() or a
 * setter has returned sees that state or a later one. */
FE_API int fe_trading_check(fe_trading_t *t, const fe_event_t *ev);

/* Sets the global state.
 *   t      in: the object.
 *   state  in: an fe_trading_state_t value.
 *   why    in, may be NULL: reason, handed to on_change; not kept.
 * Returns 0 (on_change has run if the state changed), or FE_EINVAL (t NULL
 * or state not a fe_trading_state_t value: nothing changed, no callback).
 * This is the only way out of a kill: set FE_TRADING_ACTIVE.  It does not
 * count as a kill and does not call on_kill, even to HALTED.
 * Any thread.  Lock-free (one atomic exchange) apart from the callback;
 * no allocation or system call.  Checks that start after it returns see
 * state or a later one. */
FE_API int fe_trading_set_global(fe_trading_t *t, fe_trading_state_t state,
                                 const char *why);

/* Sets account's state, making its entry if it has none.
 *   t        in: the object.
 *   account  in: any value, 0 included.
 *   state    in: an fe_trading_state_t value.
 *   why      in, may be NULL: reason, handed to on_change; not kept.
 * Returns 0 (on_change has run if the state changed; setting ACTIVE on an
 * account without an entry changes nothing and makes no entry),
 * FE_ETABLEFULL (account has no entry and the table already holds
 * max_accounts: nothing changed, no callback, counted in table_full; other
 * accounts unaffected), or FE_EINVAL (t NULL or state invalid: nothing
 * changed).  FE_ETABLEFULL is never spurious; conversely, threads that
 * make distinct new entries at the very moment the table fills may all
 * succeed, leaving it up to (such threads - 1) entries over max_accounts
 * (never beyond its fixed memory; exact with one setting thread).
 * Any thread.  Lock-free apart from the callback: a hash, a short probe,
 * at most one compare-and-swap and one exchange; no allocation or system
 * call.  Checks that start after it returns see state or a later one. */
FE_API int fe_trading_set_account(fe_trading_t *t, uint64_t account,
                                  fe_trading_state_t state, const char *why);

/* Returns the global state (a fe_trading_state_t value, >= 0), or
 * FE_EINVAL (t NULL).  Any thread; wait-free. */
FE_API int fe_trading_get_global(const fe_trading_t *t);

/* Returns account's own state (FE_TRADING_ACTIVE when it has no entry;
 * the global state is not folded in), or FE_EINVAL (t NULL).  Any thread;
 * lock-free (a hash and a short probe), makes no entry. */
FE_API int fe_trading_get_account(const fe_trading_t *t, uint64_t account);

/* The kill switch: sets the global state to HALTED.
 *   t    in: the object.
 *   why  in, may be NULL ("kill switch" is reported then): reason, handed
 *        to on_kill and on_change; not kept.
 * Counts in kills, always.  If the state was not HALTED, calls on_kill,
 * then on_change (from the replaced state to HALTED); if it was already
 * HALTED (an earlier kill or set_global), calls neither.  Returns 0, or
 * FE_EINVAL (t NULL).  When it returns, every fe_trading_check() that
 * starts afterwards on any thread returns FE_EHALTED for a new order.
 * Any thread.  Wait-free without callbacks: one atomic exchange and one
 * atomic increment, so async-signal-safe when neither on_kill nor
 * on_change is configured; with callbacks it is as safe as they are (they
 * run on the calling thread, in signal context if called from a handler).
 * Cannot fail otherwise. */
FE_API int fe_trading_kill(fe_trading_t *t, const char *why);

/* Fills *out with t's counters.  Returns 0 or FE_EINVAL (a NULL argument).
 * Any thread, concurrently with every call but destroy: each counter is
 * read atomically, not as one snapshot.  Wait-free. */
FE_API int fe_trading_stats(const fe_trading_t *t, fe_trading_stats_t *out);

/* Returns "ACTIVE", "REDUCING", "HALTED", or "UNKNOWN" for another value.
 * Static storage; thread-safe; cannot fail. */
FE_API const char *fe_trading_state_name(int state);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_TRADING_H */
