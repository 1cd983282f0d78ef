/*
 * libfinevent: dead-letter queue.
 *
 * Where an event goes when a stage gives up on it: its handler's verdict
 * was a permanent technical failure (FE_DLQ_FAIL), or its retries ran out
 * (FE_DLQ_RETRIES_EXHAUSTED), or the host has a reason of its own
 * (FE_DLQ_KIND_USER and up).  Each entry keeps a copy of the event, up to
 * user_size bytes of its user area, and the failure metadata an operator
 * needs to decide: redrive (re-publish it, with a redrive count and a
 * limit) or purge (discard it).
 *
 * Bounded and never silent.  Everything is allocated at create: capacity
 * entries, each with its user area bytes.  When the queue is full, a put
 * either fails at once (FE_DLQ_REJECT: FE_EFULL) or waits for space up to a
 * timeout (FE_DLQ_BLOCK: FE_ETIMEDOUT); either way it is counted and the
 * alert callback runs.  A high-water mark raises an alert earlier.
 *
 * Entry ids.  Every put gets an id that is strictly greater than the id of
 * every earlier put on the same queue and is never reused; ids are not
 * consecutive (an id encodes where the entry lives, so that get, redrive
 * and purge find it in O(1)).  0 is never an id.  After about
 * 2^64 / capacity puts (2^44 at the largest capacity) the id space is
 * exhausted and puts fail with FE_ERANGE.
 *
 * Accounting.  Every accepted put ends exactly once: it is still in the
 * queue (count), was redriven (a republish returned 0), or was purged.  So
 * whenever no redrive is in progress, put == count + redriven + purged in
 * fe_dlq_stats().
 *
 * Threads.  Every call may be made from any thread, concurrently, on the
 * same queue, except fe_dlq_destroy().  One mutex guards the queue: this is
 * the exceptional path, not the hot path.  Put, get, purge, the counts,
 * stats and the two ends of a redrive hold it for O(1) work in the number
 * of entries (put and get also copy one entry: at most user_size + ~400
 * bytes), with no allocation and no user callback except the queue's
 * clock; foreach, redrive_all and purge_all walk the entries, O(count).
 * So every call is "blocking" in the strict sense (a preempted holder
 * delays the others).  The republish and alert callbacks run with no lock
 * held; the foreach callback runs with the lock held.
 *
 * Layout.  Entries live in one array allocated at create; the free ones
 * form a free list, the used ones a doubly linked list in insertion (=
 * id) order, so put, purge and redrive unlink in O(1) and iteration is
 * oldest first without tombstones.
 *
 * Lifecycle:
 *     fe_dlq_config_init(&cfg);   set capacity, user_size, policy, hooks
 *     fe_dlq_create(&cfg, &q, &diag);
 *     fe_dlq_put ... from workers; inspect, redrive, purge ... any thread
 *     fe_dlq_destroy(q);
 */
#ifndef FINEVENT_DLQ_H
#define FINEVENT_DLQ_H

#include <stdint.h>

#include "bus.h" /* FE_REASON_MAX, FE_WAIT_FOREVER */
#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest capacity accepted (entries). */
#define FE_DLQ_CAPACITY_MAX (UINT32_C(1) << 20)
/* Largest user_size accepted (bytes of user area kept per entry). */
#define FE_DLQ_USER_SIZE_MAX (UINT32_C(1) << 16)
/* Largest redrive_limit accepted. */
#define FE_DLQ_REDRIVE_LIMIT_MAX UINT32_C(1000000)
/* Reason text: up to FE_DLQ_TEXT_MAX - 1 bytes and a NUL. */
#define FE_DLQ_TEXT_MAX 64
/* Idempotency key: up to this many opaque bytes. */
#define FE_DLQ_KEY_MAX 64

typedef struct fe_dlq fe_dlq_t;

/* Why an event was dead-lettered.  Values from FE_DLQ_KIND_USER up are the
 * host's own; values between the named ones are invalid. */
typedef enum fe_dlq_kind {
  FE_DLQ_FAIL = 1,              /* handler verdict: permanent failure */
  FE_DLQ_RETRIES_EXHAUSTED = 2, /* retry policy gave up */
  FE_DLQ_KIND_USER = 256        /* first host-defined kind */
} fe_dlq_kind_t;

/* What a put does when every entry is taken. */
typedef enum fe_dlq_policy {
  FE_DLQ_REJECT = 0, /* fail at once with FE_EFULL */
  FE_DLQ_BLOCK = 1   /* wait for space up to the put's timeout */
} fe_dlq_policy_t;

/* What an alert is about. */
typedef enum fe_dlq_alert {
  /* A put found the queue full: once per refused put (REJECT), once per
   * put that starts waiting (BLOCK). */
  FE_DLQ_ALERT_FULL = 1,
  /* Occupancy rose to the high-water mark.  Fires once per crossing: it
   * re-arms when occupancy falls below the mark again. */
  FE_DLQ_ALERT_HIGH_WATER = 2
} fe_dlq_alert_t;

/* Entry flags. */
#define FE_DLQ_F_TEXT_TRUNCATED 1u /* the reason text was cut */
#define FE_DLQ_F_USER_TRUNCATED 2u /* the user area was longer than user_size */

/* Counters.  All since create, except count; a snapshot taken under the
 * lock, so consistent with itself. */
typedef struct fe_dlq_stats {
  uint32_t count;           /* entries in the queue now */
  uint32_t capacity;
  uint64_t put;             /* puts that stored an entry */
  uint64_t refused;         /* puts that failed because the queue was full
                               (FE_EFULL, or FE_ETIMEDOUT under BLOCK) */
  uint64_t blocked;         /* BLOCK puts that had to wait (whatever the
                               outcome) */
  uint64_t full_alerts;     /* FE_DLQ_ALERT_FULL alerts raised */
  uint64_t high_water_alerts; /* FE_DLQ_ALERT_HIGH_WATER alerts raised */
  uint64_t redriven;        /* entries removed by a successful republish */
  uint64_t redrive_failed;  /* republish calls that returned non-zero */
  uint64_t redrive_refused; /* redrives refused: redrive limit reached */
  uint64_t purged;          /* entries discarded by a purge */
} fe_dlq_stats_t;

/* Called when a put finds the queue full or raises occupancy to the
 * high-water mark; on the thread calling fe_dlq_put(), inside that call,
 * with no lock held, after the counters were updated.
 *   kind  what happened.
 *   s     the counters at that moment (valid during the call only).
 *   user  fe_dlq_config_t.user.
 * It may call any fe_dlq_ function on this queue except fe_dlq_destroy()
 * (a purge to make room is fine); a put from it may raise a nested alert
 * and, under BLOCK, may wait.  Keep it short: it delays a worker. */
typedef void (*fe_dlq_alert_fn)(fe_dlq_alert_t kind, const fe_dlq_stats_t *s,
                                void *user);

/* Queue configuration.  Initialise with fe_dlq_config_init(). */
typedef struct fe_dlq_config {
  uint32_t capacity;        /* entries, 1..FE_DLQ_CAPACITY_MAX (default
                               1024) */
  uint32_t user_size;       /* user area bytes kept per entry,
                               0..FE_DLQ_USER_SIZE_MAX (default 0) */
  uint32_t redrive_limit;   /* redrives allowed per entry,
                               1..FE_DLQ_REDRIVE_LIMIT_MAX (default 3) */
  fe_dlq_policy_t policy;   /* default FE_DLQ_REJECT */
  uint32_t high_water_pct;  /* alert when occupancy reaches this percent
                               of capacity (rounded up, at least one
                               entry); 0: off; 1..100 (default 80) */
  /* Wall clock in ns since the epoch, stamps dead_ns; NULL:
   * fe_clock_realtime_ns().  Called by the putting thread, under the
   * queue's lock (so it must be fast, must be thread-safe, and must not
   * call into the queue). */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
  fe_dlq_alert_fn on_alert; /* may be NULL */
  void *user;               /* passed to on_alert */
} fe_dlq_config_t;

/* What fe_dlq_put() stores.  Every pointer is read during the call only. */
typedef struct fe_dlq_put {
  const fe_event_t *event;  /* required: copied whole */
  const void *user_area;    /* may be NULL when user_len is 0 */
  uint32_t user_len;        /* bytes at user_area; the first user_size are
                               kept (FE_DLQ_F_USER_TRUNCATED if more) */
  uint32_t stage;           /* stage id that gave up */
  uint32_t kind;            /* fe_dlq_kind_t, or >= FE_DLQ_KIND_USER */
  uint32_t reason;          /* 0..FE_REASON_MAX */
  const char *text;         /* NUL-terminated, may be NULL (empty); the
                               first FE_DLQ_TEXT_MAX - 1 bytes are kept, cut
                               back to a UTF-8 character boundary */
  uint32_t attempts;        /* delivery attempts made */
  uint32_t redrive_count;   /* redrives this event already had (0 for a
                               first failure) */
  uint64_t first_seen_ns;   /* CLOCK_REALTIME ns of the first attempt */
  const void *key;          /* idempotency key, may be NULL when key_len
                               is 0 */
  uint32_t key_len;         /* 0..FE_DLQ_KEY_MAX */
} fe_dlq_put_t;

/* One entry as the queue shows it. */
typedef struct fe_dlq_entry {
  fe_event_t event;         /* the copy taken at put */
  uint64_t id;
  uint64_t first_seen_ns;   /* as given at put */
  uint64_t dead_ns;         /* the queue's clock at put */
  uint64_t trace_id;        /* event.trace_id, for convenience */
  uint32_t stage, kind, reason, attempts;
  uint32_t redrive_count;   /* redrives so far (only a successful one would
                               increment it, and that removes the entry) */
  uint32_t flags;           /* FE_DLQ_F_* */
  uint32_t user_len;        /* user area bytes kept (<= user_size) */
  uint32_t key_len;
  /* In fe_dlq_foreach(): the kept user area inside the queue, valid during
   * the callback only.  From fe_dlq_get(): the caller's buffer, or NULL. */
  const void *user_area;
  char text[FE_DLQ_TEXT_MAX];  /* NUL-terminated */
  uint8_t key[FE_DLQ_KEY_MAX];
} fe_dlq_entry_t;

/* Which entries a bulk call touches: those matching every field whose bit
 * is set in `match` (0: every entry).  A NULL filter also means every
 * entry. */
#define FE_DLQ_MATCH_STAGE 1u
#define FE_DLQ_MATCH_REASON 2u
#define FE_DLQ_MATCH_KIND 4u
typedef struct fe_dlq_filter {
  uint32_t match;
  uint32_t stage, reason, kind;
} fe_dlq_filter_t;

/* Re-publishes a dead-lettered event: the host's own publish, or the
 * bus's.  Called by fe_dlq_redrive() and fe_dlq_redrive_all() on their
 * calling thread, with no lock held.
 *   ev, user_area, user_len  the entry's copies; valid during the call
 *            only, read-only (the entry is pinned meanwhile).
 *   redrive_count  the entry's count plus one: this redrive included.
 *   user     the user pointer given to the redrive call.
 * Returns 0 when the event was re-published (the entry is then removed),
 * anything else to keep the entry unchanged (that value is returned by the
 * redrive call).  It may call any fe_dlq_ function on this queue except
 * fe_dlq_destroy(); a redrive of the same entry from inside it gets
 * FE_ESTATE. */
typedef int (*fe_dlq_republish_fn)(const fe_event_t *ev, const void *user_area,
                                   uint32_t user_len, uint32_t redrive_count,
                                   void *user);

/* Visits one entry for fe_dlq_foreach(), with the queue's lock held.
 *   e     the entry, valid during the call only (copy what you keep).
 *   user  the user pointer given to fe_dlq_foreach().
 * Returns 0 to continue, anything else to stop the walk (that value is
 * returned by fe_dlq_foreach()).  It must not call any fe_dlq_ function on
 * this queue (the lock is not recursive: it would deadlock), and it delays
 * every put meanwhile: keep it short. */
typedef int (*fe_dlq_visit_fn)(const fe_dlq_entry_t *e, void *user);

/* Fills cfg with the defaults: capacity 1024, user_size 0, redrive_limit
 * 3, FE_DLQ_REJECT, high water 80 %, fe_clock_realtime_ns, no alert
 * callback.  cfg NULL: does nothing.  Cannot fail; thread-safe (touches only
 * cfg). */
FE_API void fe_dlq_config_init(fe_dlq_config_t *cfg);

/* Checks cfg without allocating anything.
 *   cfg   in: read during the call only.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg NULL, unknown policy), FE_ERANGE (capacity 0
 * or above FE_DLQ_CAPACITY_MAX, user_size above FE_DLQ_USER_SIZE_MAX,
 * redrive_limit 0 or above FE_DLQ_REDRIVE_LIMIT_MAX, high_water_pct above
 * 100).  Thread-safe, wait-free. */
FE_API int fe_dlq_config_check(const fe_dlq_config_t *cfg, fe_diag_t *diag);

/* Validates cfg (as fe_dlq_config_check()) and allocates an empty queue
 * with every entry it will ever hold; nothing is allocated later.
 *   cfg   in: read during the call only (the callbacks and their user
 *         pointers are kept and must stay valid until destroy).
 *   out   out: the queue, owned by the caller, freed with
 *         fe_dlq_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (cfg or out NULL, or as the check), FE_ERANGE (as
 * the check), FE_ENOMEM (allocation or mutex/condition initialisation
 * failed).  On failure nothing is allocated.  Thread-safe; blocking
 * (allocates, and touches every page so none faults later). */
FE_API int fe_dlq_create(const fe_dlq_config_t *cfg, fe_dlq_t **out,
                         fe_diag_t *diag);

/* Frees q and every entry in it.  Accepts NULL.  No other call on q may be
 * in progress (a blocked put, a redrive, a callback) or follow.  Cannot
 * fail. */
FE_API void fe_dlq_destroy(fe_dlq_t *q);

/* Stores a copy of in->event, of its user area and of the metadata as a
 * new entry, the newest, stamped with the queue's clock.
 *   in          in: read during the call only.
 *   timeout_ns  FE_DLQ_BLOCK only: how long to wait for space
 *               (FE_WAIT_FOREVER: no limit; 0: do not wait); ignored under
 *               FE_DLQ_REJECT.
 *   id_out      out, may be NULL: the new entry's id; untouched on failure.
 * Returns 0; FE_EFULL (REJECT, queue full: counted in refused, FULL alert);
 * FE_ETIMEDOUT (BLOCK, still full at the deadline: counted in blocked and
 * refused, one FULL alert when it started waiting); FE_EINVAL (q, in or
 * in->event NULL, user_area or key NULL with a non-zero length, kind 0 or
 * between the named kinds and FE_DLQ_KIND_USER); FE_ERANGE (reason above
 * FE_REASON_MAX, key_len above FE_DLQ_KEY_MAX, id space exhausted).  On
 * failure nothing is stored.  A successful put that brings occupancy to the
 * high-water mark raises that alert.  Alerts run on this thread after the
 * lock is dropped.  Any thread, concurrently; O(1) under the lock; blocking
 * (and, under BLOCK with a full queue, waits on a condition variable). */
FE_API int fe_dlq_put(fe_dlq_t *q, const fe_dlq_put_t *in, uint64_t timeout_ns,
                      uint64_t *id_out);

/* Number of entries in the queue (>= 0), or FE_EINVAL (q NULL).  Any
 * thread; O(1) under the lock. */
FE_API int fe_dlq_count(fe_dlq_t *q);

/* Number of entries with reason code `reason` (>= 0), FE_EINVAL (q NULL),
 * FE_ERANGE (reason above FE_REASON_MAX).  Any thread; O(1) under the
 * lock (per-reason counters). */
FE_API int fe_dlq_count_reason(fe_dlq_t *q, uint32_t reason);

/* Calls fn on each entry matching f, oldest first, with the queue's lock
 * held for the whole walk (so it sees one consistent state, and every
 * other call waits for it: see fe_dlq_visit_fn for what fn may do).  An
 * entry being redriven is visited (it is still in the queue).
 *   f     in, may be NULL (every entry): read during the call.
 *   fn    required.
 *   user  passed to fn.
 * Returns 0 when the walk ended, fn's non-zero value when fn stopped it,
 * FE_EINVAL (q or fn NULL; fn never runs).  Any thread; O(count) under the
 * lock. */
FE_API int fe_dlq_foreach(fe_dlq_t *q, const fe_dlq_filter_t *f,
                          fe_dlq_visit_fn fn, void *user);

/* Copies entry id out.
 *   out       out: the entry; out->user_area is user_buf (NULL if
 *             user_buf is NULL).  Untouched on failure.
 *   user_buf  out, may be NULL: receives min(out->user_len, user_cap) bytes
 *             of the user area (out->user_len still says how many were
 *             kept).
 * Returns 0, FE_EINVAL (q or out NULL, user_buf NULL with user_cap > 0),
 * FE_ENOTFOUND (no such entry: never put, redriven or purged).  Any
 * thread; O(1) plus the copy, under the lock. */
FE_API int fe_dlq_get(fe_dlq_t *q, uint64_t id, fe_dlq_entry_t *out,
                      void *user_buf, uint32_t user_cap);

/* Re-publishes entry id through republish (see fe_dlq_republish_fn): pins
 * the entry under the lock, calls republish with no lock held, then under
 * the lock again removes the entry (republish returned 0: counted in
 * redriven) or leaves it as it was (non-zero: counted in redrive_failed).
 * If the entry was purged while republish ran, it is counted as redriven
 * when republish returned 0 (the event did go back) and as purged
 * otherwise; either way it is gone afterwards.
 *   republish  required.
 *   user       passed to republish.
 * Returns 0 (re-published and removed), republish's non-zero value (kept),
 * FE_EINVAL (q or republish NULL), FE_ENOTFOUND (no such entry),
 * FE_EREDRIVE (its redrive count has reached redrive_limit: counted in
 * redrive_refused; republish does not run), FE_ESTATE (another redrive of
 * this entry is in progress); with these four, republish did not run and
 * nothing changed except the counter named.  republish's value is passed
 * through as is: give it positive values to tell them apart.  Any thread;
 * blocking (the
 * callback's time plus two O(1) locked sections). */
FE_API int fe_dlq_redrive(fe_dlq_t *q, uint64_t id,
                          fe_dlq_republish_fn republish, void *user);

/* Redrives, oldest first, every entry that matches f and was in the queue
 * when the call started, one at a time as fe_dlq_redrive() does.  Entries
 * at the redrive limit are skipped (each counted in redrive_refused) and
 * entries another thread is redriving are skipped.  Stops at the first
 * republish that returns non-zero, leaving that entry and the rest.
 *   f     in, may be NULL (every entry).
 *   done  out, may be NULL: entries re-published and removed (also on
 *         failure).
 * Returns 0, the stopping republish's non-zero value, FE_EREDRIVE (the
 * walk finished but skipped at least one entry at its limit), FE_EINVAL
 * (q or republish NULL; *done set to 0).  Any thread; blocking: O(count)
 * under the lock in total, in short sections, plus one callback per entry.
 * Entries put during the walk are not visited. */
FE_API int fe_dlq_redrive_all(fe_dlq_t *q, const fe_dlq_filter_t *f,
                              fe_dlq_republish_fn republish, void *user,
                              uint64_t *done);

/* Discards entry id (counted in purged; see fe_dlq_redrive() for an entry
 * being redriven, which disappears from view at once).  Frees its place
 * and wakes one blocked put.  When q belongs to a bus with a journal
 * (fe_bus_config_t.dlq), the purge of one of the bus's dead letters is
 * journaled and written out before this returns, so it survives a
 * restart (if the journal has failed, it does not: the entry comes back).
 * Returns 0, FE_EINVAL (q NULL), FE_ENOTFOUND.  On failure nothing
 * changes.  Any thread; O(1) under the lock. */
FE_API int fe_dlq_purge(fe_dlq_t *q, uint64_t id);

/* Discards every entry matching f (NULL: all), as fe_dlq_purge() does.
 *   removed  out, may be NULL: how many.
 * Returns 0 or FE_EINVAL (q NULL; *removed set to 0).  Any thread; O(count)
 * under the lock. */
FE_API int fe_dlq_purge_all(fe_dlq_t *q, const fe_dlq_filter_t *f,
                            uint64_t *removed);

/* Fills *s with a consistent snapshot of the counters.  Returns 0 or
 * FE_EINVAL (q or s NULL; *s untouched).  Any thread; O(1) under the
 * lock. */
FE_API int fe_dlq_stats(fe_dlq_t *q, fe_dlq_stats_t *s);

/* "FAIL", "RETRIES_EXHAUSTED", "USER" (>= FE_DLQ_KIND_USER) or "UNKNOWN".
 * Static string; cannot fail; thread-safe. */
FE_API const char *fe_dlq_kind_name(uint32_t kind);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_DLQ_H */
