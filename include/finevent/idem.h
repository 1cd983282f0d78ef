/*
 * libfinevent: idempotency table.
 *
 * A broker's clients retry.  Every new order carries an idempotency key,
 * (account, client order id), and among any number of submissions of one
 * key the table lets exactly one run the order flow: the first claim wins
 * and gets a token; the others are told "in progress" (FE_EINPROGRESS) or
 * get the stored outcome of the first ("replay", FE_EDUPLICATE).  A
 * submission that reuses a key with a different order (different economic
 * fields) is refused with FE_EMISMATCH, never accepted silently.  The
 * models are Stripe's idempotency keys and the AWS Powertools idempotency
 * utility.
 *
 * Keys.  A key is the XXH3-128 hash (seed 0) of the account's 8
 * little-endian bytes followed by the client order id's bytes
 * (fe_idem_key()), and the table identifies keys by the full 128-bit hash:
 * two different (account, id) pairs with the same hash are the same key to
 * it.  For n distinct keys alive at once the chance of any such collision
 * is about n^2 / 2^129: 10^-26 for a billion keys; the hash is not keyed,
 * though, so it is not a defence against a client that searches for
 * collisions on purpose (see the fingerprint: a collision with a different
 * order shows up as FE_EMISMATCH, not as a wrong replay).
 *
 * Fingerprints.  fe_idem_fingerprint() hashes an order's economic fields.
 * A claim carries the fingerprint; a later claim of the same key with a
 * different fingerprint gets FE_EMISMATCH (counted).
 *
 * Life of an entry:
 *
 *     claim ──0──▶ IN PROGRESS ──complete──▶ DONE ──retention──▶ expired,
 *     (token, lease)   │   │  ▲ extend                         reaped
 *                      │   └──lease expired, a new claim retakes it
 *                      │      (takeover: new token, the old one is stale)
 *                      └──abandon──▶ removed (the next claim runs again)
 *
 * Leases.  A claim holds its key for a lease (config lease_ns, or per
 * claim with fe_idem_claim_lease()), which fe_idem_extend() renews.  While
 * the lease runs, other claims get FE_EINPROGRESS; once it has expired, the
 * next claim of the key retakes it (returns 0 with a new token, counted as
 * a takeover) and the old token is stale: completing, extending or
 * abandoning with it returns FE_ELEASE.  An expired lease that nobody
 * retook is still the holder's: its completion succeeds.
 *
 * Retention.  A DONE entry expires retention_ns after its completion; an
 * expired entry behaves as absent (lookups do not find it, a claim of its
 * key runs the flow again) until fe_idem_reap() frees its slot, or a claim
 * of the same key reuses it.  The reaper also frees claims whose lease
 * expired more than retention_ns ago (a holder that never completed).
 *
 * Failure caching.  Config cache_failures chooses what a dead-lettered
 * order leaves behind.  1 (the default, the safe choice): every outcome is
 * stored, FE_IDEM_DEAD_LETTERED included, so a client's retry of a
 * dead-lettered order gets its outcome replayed and is never run twice; an
 * operator redrives it instead, and the redrive takes the key back
 * (fe_idem_reopen()) so that its outcome replaces the dead letter's.  0 (the Powertools behaviour): completing
 * with status FE_IDEM_DEAD_LETTERED removes the entry, so the client's
 * retry runs the flow again, which is only safe when a dead-lettered order
 * had no side effect anywhere.  Rejections (FE_IDEM_REJECTED) and host
 * statuses are stored either way.
 *
 * Clock.  Leases and retention read the configured clock (default
 * fe_clock_now_ns(), monotonic).  A table rebuilt after a restart
 * (fe_idem_restore()) needs a clock that survives restarts: the bus
 * configures its table with CLOCK_REALTIME nanoseconds
 * (fe_clock_realtime_ns); a host that restores from a journal must do the
 * same and give completion times in that clock.
 *
 * Capacity.  Fixed at create: capacity slots, all memory allocated and
 * touched then (about 136 bytes a slot).  A key lives in one of the
 * max_probe buckets (8 slots each, one cache line of control words) that
 * follow its home bucket; when all of those hold live entries, a claim of
 * a new key fails with FE_ETABLEFULL (counted); live entries are never
 * overwritten.  Keep the live entries at or below about 3/4 of capacity.
 *
 * Threads.  Every call except create, destroy and restore may be made from
 * any number of threads at once.  Claim, lookup, complete, extend, abandon
 * and reap take no lock, allocate nothing and make no system call (other
 * than the configured clock's; the default makes none with the TSC source,
 * see clock.h).  They are lock-free: a call retries a step only when a
 * concurrent call changed the slot it was looking at.  Nobody ever waits
 * for another thread: a key whose holder is busy is answered "in
 * progress".  A token is used by one thread at a time (complete, extend and
 * abandon with the same token must not overlap).
 *
 * Lifecycle:
 *     fe_idem_config_init(&cfg);          set capacity, lease, retention ...
 *     fe_idem_create(&cfg, &t, &diag);
 *     fe_idem_restore(...) for each journaled outcome (start-up)
 *     at admission: fe_idem_key_order(o, &k);
 *                   fe_idem_claim(t, &k, fe_idem_fingerprint(o), &c) ...
 *     when the order's flow ends: fe_idem_complete(t, c.token, &outcome)
 *     periodically: fe_idem_reap(t, 4096, NULL)
 *     fe_idem_destroy(t);
 */
#ifndef FINEVENT_IDEM_H
#define FINEVENT_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest client order id accepted by fe_idem_key() (bytes). */
#define FE_IDEM_KEY_MAX 64
/* Capacity bounds (slots; a power of two). */
#define FE_IDEM_CAPACITY_MIN UINT64_C(8)
#define FE_IDEM_CAPACITY_MAX (UINT64_C(1) << 28)
/* Largest max_probe (buckets of 8 slots). */
#define FE_IDEM_PROBE_MAX 64u
/* Longest lease or retention accepted (ns, about 146 years). */
#define FE_IDEM_DURATION_MAX (UINT64_C(1) << 62)
/* Defaults. */
#define FE_IDEM_DEFAULT_CAPACITY (UINT64_C(1) << 16)
#define FE_IDEM_DEFAULT_PROBE 8u
#define FE_IDEM_DEFAULT_LEASE_NS (UINT64_C(30) * 1000000000u)
#define FE_IDEM_DEFAULT_RETENTION_NS (UINT64_C(86400) * 1000000000u)

typedef struct fe_idem fe_idem_t;

/* An idempotency key: the 128-bit XXH3 hash (see the top). */
typedef struct fe_idem_key {
  uint64_t lo, hi; /* XXH128_hash_t's low64 and high64 */
} fe_idem_key_t;

/* A claim's token: opaque, never 0.  It names the claim (slot and
 * generation), so it goes stale when the claim is retaken, removed or
 * reaped, and stays stale (until the slot's 32-bit generation wraps: 2^32
 * later claims of the same slot). */
typedef uint64_t fe_idem_token_t;

/* Outcome statuses.  Values from FE_IDEM_STATUS_USER up are the host's
 * own; 0, negative values and 4..15 are invalid. */
typedef enum fe_idem_status {
  FE_IDEM_COMPLETED = 1,     /* the flow ran to its end */
  FE_IDEM_REJECTED = 2,      /* a stage rejected the order */
  FE_IDEM_DEAD_LETTERED = 3, /* a stage gave up: see cache_failures */
  FE_IDEM_STATUS_USER = 16   /* first host-defined status */
} fe_idem_status_t;

/* What the first processing of a key produced, returned as-is to every
 * duplicate.  Fixed size (96 bytes); the table does not interpret any
 * field but status. */
typedef struct fe_idem_outcome {
  int32_t status;          /* fe_idem_status_t or >= FE_IDEM_STATUS_USER */
  uint32_t reason;         /* e.g. the rejecting stage's reason code */
  uint64_t ref;            /* e.g. the bus sequence or journal id of the
                              first processing; the bus sets the journal
                              event id, or without a journal the ring
                              sequence + 1: never 0 */
  int64_t filled_quantity; /* whole units */
  int64_t avg_price;       /* FE_PRICE_SCALE fixed point */
  char venue_order_id[32]; /* bytes, NUL padded by convention */
  uint8_t user[32];        /* the host's own bytes */
} fe_idem_outcome_t;

/* Entry states as fe_idem_lookup() reports them. */
typedef enum fe_idem_state {
  FE_IDEM_IN_PROGRESS = 1, /* claimed, not completed */
  FE_IDEM_DONE = 2         /* completed: outcome stored */
} fe_idem_state_t;

/* An entry as fe_idem_lookup() shows it. */
typedef struct fe_idem_entry {
  uint32_t state;          /* fe_idem_state_t */
  uint32_t reserved;       /* 0 */
  uint64_t fingerprint;    /* the claim's */
  /* IN_PROGRESS: when the holder's lease expires (it may be past: nobody
   * retook it yet; while the holder is completing, it may already be the
   * retention expiry about to apply).  DONE: when the entry expires.
   * Table clock, ns. */
  uint64_t expires_ns;
  fe_idem_outcome_t outcome; /* DONE: the stored outcome; else zeroed */
} fe_idem_entry_t;

/* fe_idem_claim_t.flags */
#define FE_IDEM_F_REPLAY 1u   /* FE_EDUPLICATE: outcome is a replay */
#define FE_IDEM_F_TAKEOVER 2u /* 0: the key was retaken from an expired
                                 claim */
#define FE_IDEM_F_REOPENED 4u /* 0 from fe_idem_reopen(): a dead-lettered
                                 entry was taken back; outcome is the
                                 dead letter's */

/* What a claim answers (which fields are meaningful depends on the return
 * code; the others are zeroed). */
typedef struct fe_idem_claim {
  fe_idem_token_t token; /* 0 returned: the claim's token; else 0 */
  /* 0 returned: when this claim's lease expires.  FE_EINPROGRESS: when the
   * holder's lease expires (the holder may be renewing it: a hint for the
   * client's retry delay, not a promise).  FE_EDUPLICATE: when the stored
   * outcome expires.  Table clock, ns. */
  uint64_t expires_ns;
  uint32_t flags;        /* FE_IDEM_F_* */
  uint32_t reserved;
  fe_idem_outcome_t outcome; /* FE_EDUPLICATE: the stored outcome */
} fe_idem_claim_t;

/* Counters.  Event counters count calls since create; each is exact, but
 * they are read one by one while calls run.  live and in_progress are
 * gauges kept as sums of per-stripe counts: exact whenever no call runs,
 * approximate (clamped at 0) meanwhile. */
typedef struct fe_idem_stats {
  uint64_t capacity;        /* slots */
  uint64_t live;            /* slots holding an entry: in progress or
                               done, expired ones not yet reaped included */
  uint64_t in_progress;     /* of which claimed and not completed */
  uint64_t claims;          /* fe_idem_claim*() calls past argument checks */
  uint64_t claimed;         /* of which returned 0 (takeovers included) */
  uint64_t takeovers;       /* of which retook an expired claim */
  uint64_t replays;         /* returned FE_EDUPLICATE */
  uint64_t in_progress_answers; /* returned FE_EINPROGRESS */
  uint64_t mismatches;      /* returned FE_EMISMATCH */
  uint64_t full;            /* returned FE_ETABLEFULL */
  uint64_t completed;       /* fe_idem_complete() returned 0 */
  uint64_t abandoned;       /* fe_idem_abandon() returned 0 */
  uint64_t stale;           /* complete, extend or abandon returned
                               FE_ELEASE */
  uint64_t reaped;          /* expired entries freed (by fe_idem_reap() or
                               reused by a claim of the same key) */
  uint64_t restored;        /* fe_idem_restore() returned 0 */
  uint64_t reopened;        /* dead-lettered entries taken back in progress
                               by fe_idem_reopen() (counted in claimed) */
} fe_idem_stats_t;

/* Table configuration.  Initialise with fe_idem_config_init(). */
typedef struct fe_idem_config {
  uint64_t capacity;     /* slots: a power of two, FE_IDEM_CAPACITY_MIN..
                            FE_IDEM_CAPACITY_MAX (default 65536) */
  uint32_t max_probe;    /* buckets a key may live in, 1..FE_IDEM_PROBE_MAX
                            (default 8); above capacity / 8, capacity / 8
                            is used */
  int cache_failures;    /* 1 (default) or 0: see the top */
  uint64_t lease_ns;     /* default lease, 1..FE_IDEM_DURATION_MAX
                            (default 30 s) */
  uint64_t retention_ns; /* how long a DONE entry stays,
                            1..FE_IDEM_DURATION_MAX (default 24 h) */
  /* Time source in ns, called from the calling thread with clock_user by
   * claim (once), complete, extend, reap, restore and by lookup when it
   * finds a DONE entry; it must be thread-safe, fast, and must not call
   * into the table.  Its readings must stay below 2^63.  NULL (default):
   * fe_clock_now_ns().  See "Clock" above for restarts. */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
} fe_idem_config_t;

/* Fills cfg with the defaults listed in fe_idem_config_t.  Does nothing
 * when cfg is NULL.  Cannot fail; thread-safe (touches only cfg). */
FE_API void fe_idem_config_init(fe_idem_config_t *cfg);

/* Validates cfg, then allocates and touches every slot the table will
 * ever have (asking for transparent huge pages where the kernel offers
 * them), all empty.
 *   cfg   in: read during the call only (the clock pointers are kept and
 *         must stay valid until destroy).
 *   out   out: the table, owned by the caller, freed with
 *         fe_idem_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg or out NULL, cache_failures neither 0 nor 1,
 * clock_user set without now_ns), FE_ERANGE (capacity not a power of two
 * in range, max_probe, lease_ns or retention_ns 0 or above its maximum),
 * FE_ENOMEM.  On failure nothing is allocated.  Thread-safe; blocking
 * (allocates, O(capacity)). */
FE_API int fe_idem_create(const fe_idem_config_t *cfg, fe_idem_t **out,
                          fe_diag_t *diag);

/* Frees t.  Accepts NULL.  No other call on t may be in progress or
 * follow.  Cannot fail. */
FE_API void fe_idem_destroy(fe_idem_t *t);

/* Computes the key of (account, id): XXH3-128, seed 0, over the account's
 * 8 little-endian bytes followed by the len bytes at id.
 *   id   in: any bytes (not necessarily text); read during the call.
 *   out  out: the key; untouched on failure.
 * Returns 0, FE_EINVAL (id or out NULL), FE_ERANGE (len 0 or above
 * FE_IDEM_KEY_MAX).  Thread-safe, wait-free, no allocation. */
FE_API int fe_idem_key(uint64_t account, const void *id, size_t len,
                       fe_idem_key_t *out);

/* fe_idem_key() of an order: its account and its client_order_id up to the
 * first NUL (at most FE_CLORDID_MAX bytes).
 * Returns 0, FE_EINVAL (o or out NULL), FE_ERANGE (empty client order id).
 * Thread-safe, wait-free. */
FE_API int fe_idem_key_order(const fe_order_t *o, fe_idem_key_t *out);

/* The fingerprint of an order's economic content: XXH3-64 (seed 0) over
 * account, side, type, tif, quantity, price, expire_ns and symbol (up to
 * its first NUL), in a fixed little-endian layout.  Timestamps, notional,
 * reserved bytes and the client order id do not count: a resend with a new
 * timestamp is the same order.  Returns 0 for o NULL (and, with
 * probability 2^-64, for some order).  Thread-safe, wait-free. */
FE_API uint64_t fe_idem_fingerprint(const fe_order_t *o);

/* Claims key for the caller, atomically: among any number of concurrent
 * claims of one key exactly one returns 0 (and, later, only a claim that
 * retakes an expired lease or comes after the entry was removed or
 * expired).  Same as fe_idem_claim_lease() with lease_ns 0.
 *   t            in: the table.
 *   key          in: the key (fe_idem_key*()).
 *   fingerprint  in: the order's (fe_idem_fingerprint()).
 *   out          out: the answer (see fe_idem_claim_t); written on every
 *                return except FE_EINVAL.
 * Returns
 *   0               claimed: out->token names the claim; the caller now
 *                   runs the flow and ends it with fe_idem_complete() or
 *                   fe_idem_abandon().  FE_IDEM_F_TAKEOVER when an expired
 *                   claim was retaken.
 *   FE_EINPROGRESS  another claim holds the key; out->expires_ns is its
 *                   lease expiry.
 *   FE_EDUPLICATE   the key is done: out->outcome is the stored outcome,
 *                   FE_IDEM_F_REPLAY set.
 *   FE_EMISMATCH    the key is in progress or done with a different
 *                   fingerprint (nothing else is said about it).
 *   FE_ETABLEFULL   the key is new and every slot of its probe buckets
 *                   holds a live entry; nothing was changed.
 *   FE_EINVAL       t, key or out NULL (not counted).
 * Every other return is counted in the stats.  Any thread, concurrently
 * with every call but create, destroy and restore; lock-free; no
 * allocation, lock or system call; reads the clock once. */
FE_API int fe_idem_claim(fe_idem_t *t, const fe_idem_key_t *key,
                         uint64_t fingerprint, fe_idem_claim_t *out);

/* fe_idem_claim() with this claim's own lease: lease_ns 1..
 * FE_IDEM_DURATION_MAX, or 0 for the table's lease_ns.  The lease applies
 * to a takeover too.  Returns as fe_idem_claim(), plus FE_ERANGE (lease_ns
 * above the maximum; not counted). */
FE_API int fe_idem_claim_lease(fe_idem_t *t, const fe_idem_key_t *key,
                               uint64_t fingerprint, uint64_t lease_ns,
                               fe_idem_claim_t *out);

/* fe_idem_claim() for a redrive of a dead-lettered order (the bus's
 * fe_bus_redrive() calls it): as a claim, except that an entry DONE with
 * status FE_IDEM_DEAD_LETTERED is taken back in progress under a new token
 * (returns 0 with FE_IDEM_F_REOPENED, out->outcome the dead letter's
 * outcome), so duplicates answer "in progress" while the redrive runs and
 * then get its outcome, never the stale dead letter's.  With the table's
 * lease.  An entry done with any other status answers FE_EDUPLICATE: the
 * order finished (a client's retry ran it under cache_failures 0), so it
 * must not run again; one in progress answers FE_EINPROGRESS (that retry
 * is running).  Returns as fe_idem_claim().  Any thread; lock-free; no
 * allocation, lock or system call; reads the clock once. */
FE_API int fe_idem_reopen(fe_idem_t *t, const fe_idem_key_t *key,
                          uint64_t fingerprint, fe_idem_claim_t *out);

/* Stores outcome as the key's outcome and makes the entry DONE, expiring
 * retention_ns from now; from then on claims of the key get it replayed.
 * Under cache_failures 0, an outcome with status FE_IDEM_DEAD_LETTERED
 * instead removes the entry (see the top).
 *   token    in: from the claim that returned 0.
 *   outcome  in: copied during the call.
 * Returns 0; FE_ELEASE (the token is stale: the claim was retaken after its
 * lease expired, abandoned or reaped; nothing stored; counted in stale);
 * FE_ELATE (this token already completed: nothing changed); FE_ESTATE
 * (another call with the same token is running: nothing changed);
 * FE_ETOKEN (not a token of this table's shape: slot out of range or
 * generation 0); FE_EINVAL (t or outcome NULL, or outcome->status not a
 * valid status).  Any thread (the token may travel), concurrently with
 * every call but create, destroy and restore; lock-free; no allocation,
 * lock or system call; reads the clock once. */
FE_API int fe_idem_complete(fe_idem_t *t, fe_idem_token_t token,
                            const fe_idem_outcome_t *outcome);

/* Gives the claim up: the entry is removed and the next claim of the key
 * runs the flow (for a claimer that could not go on, e.g. the ring was
 * stopped or full).
 * Returns 0, FE_ELEASE (stale token, as fe_idem_complete(): counted),
 * FE_ELATE (already completed), FE_ESTATE (same token in use),
 * FE_ETOKEN, FE_EINVAL (t NULL).  Threads and progress as
 * fe_idem_complete(); makes no clock call. */
FE_API int fe_idem_abandon(fe_idem_t *t, fe_idem_token_t token);

/* Heartbeat: the claim's lease now expires lease_ns from now (0: the
 * table's lease_ns), whether or not it had expired, provided nobody retook
 * it.
 * Returns 0, FE_ELEASE (stale token: counted), FE_ELATE (already
 * completed), FE_ESTATE (same token in use), FE_ETOKEN, FE_EINVAL (t NULL),
 * FE_ERANGE (lease_ns above FE_IDEM_DURATION_MAX).  Threads and progress
 * as fe_idem_complete(). */
FE_API int fe_idem_extend(fe_idem_t *t, fe_idem_token_t token,
                          uint64_t lease_ns);

/* Looks key up without changing anything.
 *   out  out: the entry (see fe_idem_entry_t); meaningful only when 0
 *        is returned (it may be scribbled on otherwise).
 * Returns 0 (the key is IN_PROGRESS, or DONE and not expired),
 * FE_ENOTFOUND (absent, being claimed and not yet won, or expired),
 * FE_EINVAL (a NULL argument).  Any thread, concurrently with every call
 * but create, destroy and restore; lock-free (it starts over only when a
 * concurrent call recycled a slot it was reading, so it never returns a
 * mixture); no allocation, lock or system call; reads the clock only when
 * it finds a DONE entry. */
FE_API int fe_idem_lookup(const fe_idem_t *t, const fe_idem_key_t *key,
                          fe_idem_entry_t *out);

/* fe_idem_lookup() of n keys, faster than n calls on a large table: it
 * prefetches the control lines and then the entries of keys further down
 * the array while it looks the earlier ones up, so several memory misses
 * overlap (a single lookup of a key not in cache waits for two misses in
 * a row: its control line, then its entry).
 *   keys  in: n keys (may be NULL when n is 0).
 *   out   out: n entries; out[i] is meaningful when rc[i] is 0.
 *   rc    out: n codes, as fe_idem_lookup() returns for keys[i]: 0 or
 *         FE_ENOTFOUND.
 * Returns the number of keys found (>= 0), FE_EINVAL (t NULL, or a NULL
 * array with n > 0), FE_ERANGE (n above INT32_MAX; nothing looked up).
 * Each key's answer is as fe_idem_lookup()'s at some moment during the
 * call (not one snapshot of all of them), except that expiry is judged
 * against one clock reading taken when the first DONE entry is found.
 * Threads and progress as fe_idem_lookup(); reads the clock at most once. */
FE_API int fe_idem_lookup_n(const fe_idem_t *t, const fe_idem_key_t *keys,
                            size_t n, fe_idem_entry_t *out, int *rc);

/* Hints that key will be looked up or claimed soon: starts loading its home
 * bucket's control line.  For callers that know the next keys ahead (a
 * batch of orders).  Never faults, cannot fail; any thread; wait-free. */
FE_API void fe_idem_prefetch(const fe_idem_t *t, const fe_idem_key_t *key);

/* The second hint before a claim, for a key whose home control line was
 * prefetched a while ago (fe_idem_prefetch()): reads that line and starts
 * loading, for writing, the entry the claim will read or take (the key's
 * own, or the first free slot) and the control line itself.  A claim then
 * waits for neither.  fe_bus_submit_n() pipelines both hints over a burst
 * (control lines 16 orders ahead, entries 8).  Nothing is validated or
 * changed; never faults, cannot fail; any thread; wait-free. */
FE_API void fe_idem_prefetch_claim(const fe_idem_t *t,
                                   const fe_idem_key_t *key);

/* Frees the slots of expired entries among the next max_slots slots of a
 * cursor that cycles through the table: DONE entries past their
 * retention, and claims whose lease expired more than retention_ns ago
 * (their tokens become stale).  Call it periodically, e.g. max_slots =
 * capacity / 1000 every few seconds; expired entries behave as absent
 * meanwhile, so reaping only returns slots for new keys.
 *   max_slots  in: slots to visit, 1..capacity (more is clamped).
 *   reaped     out, may be NULL: entries freed by this call.
 * Returns 0, FE_EINVAL (t NULL or max_slots 0).  Any thread, any number
 * at once (each takes its own range of the cursor), concurrently with
 * claims and lookups; lock-free, O(max_slots); reads the clock once. */
FE_API int fe_idem_reap(fe_idem_t *t, uint64_t max_slots, uint64_t *reaped);

/* Inserts key directly as DONE with outcome, as completed at
 * completed_ns (table clock), for rebuilding the table from a journal on
 * restart.  Meant for start-up, before the table is in use (it is safe
 * with concurrent calls too, through the claim path, but a restored key
 * then races ordinary claims).
 * Returns 0 (inserted, expiring completed_ns + retention_ns; under
 * cache_failures 0 an FE_IDEM_DEAD_LETTERED outcome inserts nothing and
 * also returns 0); FE_ERANGE (completed_ns + retention_ns is not after
 * now: the entry would already be expired; nothing inserted: a replay
 * skips these); FE_EDUPLICATE (the key is already present and done with
 * the same fingerprint and a status other than FE_IDEM_DEAD_LETTERED: left
 * as it was, e.g. a journal replayed twice; a dead-lettered entry is
 * replaced, as fe_idem_reopen() and the redrive's completion did);
 * FE_EMISMATCH (present with another fingerprint); FE_EINPROGRESS (present
 * and claimed); FE_ETABLEFULL; FE_EINVAL (a NULL pointer or an invalid
 * status).  Not counted as a claim.  Blocking only in name: O(max_probe). */
FE_API int fe_idem_restore(fe_idem_t *t, const fe_idem_key_t *key,
                           uint64_t fingerprint,
                           const fe_idem_outcome_t *outcome,
                           uint64_t completed_ns);

/* Fills *out with t's counters (see fe_idem_stats_t).  Returns 0 or
 * FE_EINVAL (a NULL argument).  Any thread, concurrently with everything
 * but destroy; wait-free, O(1). */
FE_API int fe_idem_stats(const fe_idem_t *t, fe_idem_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_IDEM_H */
