/*
 * libfinevent: the saga coordinator.
 *
 * A saga is a long-lived, multi-step piece of work (an order from
 * reservation to settlement, an account closure) that cannot hold a
 * transaction open across its steps.  Each step is a local action; when a
 * step fails for good before the point of no return, the steps already
 * done are undone by their compensations, newest first (Garcia-Molina and
 * Salem's sagas, in Richardson's vocabulary: compensatable steps, one
 * pivot, retriable steps).  Retries follow Temporal's retry policies
 * (fe_retry_policy_t); a step that waits on the outside world gets a task
 * token, as in AWS Step Functions, and whoever learns the outcome hands it
 * back with fe_saga_complete().
 *
 * Definitions.  A definition (fe_saga_def_t) is an ordered list of up to
 * FE_SAGA_MAX_STEPS steps, each with a name, an action, a compensation
 * (compensatable steps only), a kind, a timeout for waiting on its token
 * and a retry policy.  The kinds must come in the order
 *
 *     COMPENSATABLE*  [PIVOT]  RETRIABLE*
 *
 * The "point of no return" is passed when the pivot completes; without a
 * pivot, when the last compensatable step completes; with neither (only
 * retriable steps), from the start.  Before it, a failure compensates;
 * after it, nothing is ever compensated: retriable steps retry, and one
 * that exhausts its policy (or fails permanently) parks the saga STUCK.
 *
 * What a step does.  The coordinator calls the step's action (or, when
 * compensating, its compensation) with an fe_saga_call_t; the function
 * returns
 *   FE_SAGA_DONE     the step is done; the saga moves on;
 *   FE_SAGA_RETRY    it failed, may be retried (call->reason says why):
 *                    the step's policy decides whether and after how long
 *                    (BACKOFF); when it says no, the failure is final;
 *   FE_SAGA_FAIL     it failed for good (call->reason);
 *   FE_SAGA_PENDING  the outcome will come later: call->token (armed before
 *                    the call, so it may be handed out from inside it) is
 *                    completed from any thread with fe_saga_complete(); the
 *                    saga WAITs, for at most the step's timeout_ns.  A
 *                    timeout is a retryable failure with reason
 *                    FE_SAGA_REASON_TIMEOUT; fe_saga_heartbeat() pushes the
 *                    timeout back.
 * Any other value counts as FE_SAGA_FAIL.  Compensations answer the same
 * way and are retried by the same step's policy; a compensation that
 * exhausts it, or fails for good, parks the saga STUCK: a compensation is
 * never skipped.
 *
 * Failure before the point of no return compensates, newest first, every
 * compensatable step that completed; the step that failed did not complete
 * and is not compensated.  The saga ends COMPENSATED, or FAILED when there
 * was nothing to compensate.  (A step whose effect may outlive its failure
 * - a timed-out request that may still have landed - should be split so
 * that "done" means "acknowledged", as the order template's submit step
 * is: PENDING until the venue acknowledges.)
 *
 * States (fe_saga_state_t): RUNNING (an action or compensation is due or
 * running), WAITING (on a token), BACKOFF (a retry timer), COMPENSATING
 * (the compensation phase: its waits and backoffs show in
 * fe_saga_info_t.waiting), STUCK (parked after the point of no return or in
 * a compensation: an alert was raised, a dead letter put if a DLQ is
 * configured; fe_saga_redrive() resumes it), and the terminal COMPLETED,
 * COMPENSATED and FAILED.  A saga that reaches a terminal state frees its
 * slot once its final record is logged and on_end has run.
 *
 * External abort.  fe_saga_abort(), from any thread (a compliance
 * rejection arriving after submission): before the point of no return the
 * saga is compensated as after a failure (the pending step's token becomes
 * late); after it, the abort is refused with FE_ESTATE and counted.  An
 * abort and a step result racing for the same saga are decided by one
 * atomic word: whichever lands first wins, the other is late.  (An action
 * that returns DONE after an abort landed during the call did complete:
 * its step is compensated with the others.)
 *
 * Tokens.  64-bit values that encode the saga's slot and a generation,
 * scrambled with the coordinator's salt (a keyed 64-bit permutation: not
 * cryptography, but a random value matches a pending token with
 * probability below 2^-40).  fe_saga_complete() on the token the saga
 * waits on applies it; of several concurrent completions of one token
 * exactly one applies, the others get FE_ELATE.  A token already
 * completed, timed out, superseded by a retry, or of a saga aborted or
 * finished: FE_ELATE (counted, late).  A value never issued: FE_ETOKEN
 * (counted, unknown) - except that a value decoding to a generation the
 * slot has passed (rare for garbage: about one in 2^40 / generations
 * used), or after a replay to any generation issued before the restart
 * (replay does not know every token of every slot), reads as FE_ELATE.
 *
 * Threads.  ONE thread at a time runs the coordinator: every action,
 * compensation, callback and timer runs on it.  Either the library's own
 * thread (fe_saga_thread_start(): it parks on a futex when idle, until the
 * next timer or request, so an idle coordinator uses no CPU) or the host's
 * thread calling fe_saga_poll() (host-driven).  fe_saga_start(),
 * fe_saga_complete(), fe_saga_heartbeat(), fe_saga_abort(),
 * fe_saga_redrive(), fe_saga_wake() and the queries may be called from any
 * thread, concurrently.
 *
 * Requests from other threads.  Each saga's slot is its own inbox node: a
 * request sets a bit in the slot and, if the slot is not queued yet, pushes
 * it on a lock-free intrusive stack that the coordinator takes whole.  So
 * the inbox holds at most max_sagas entries by construction and a
 * completion, heartbeat or abort never fails for want of space; the only
 * backpressure is fe_saga_start()'s FE_EFULL when every slot is taken.
 * Requests are applied in the order the coordinator takes them; a
 * completion and an abort already decided their race when they were made.
 *
 * Queries.  fe_saga_get() and fe_saga_foreach() copy a saga's state under
 * a per-saga sequence lock: the coordinator never waits for a reader (it
 * bumps a counter around its few stores); a reader retries if the
 * coordinator changed that saga meanwhile.  The snapshot is consistent:
 * state, step, attempt and history as of one moment.  fe_saga_stats() is a
 * consistent snapshot of the coordinator's counters as of its last pass,
 * plus counters bumped by other threads (late, unknown tokens, refused
 * aborts and starts), read one by one.
 *
 * Memory.  Everything is allocated at create: per saga, a 160-byte slot,
 * ctx_size bytes of context (rounded up to 8), 8 bytes per history entry
 * and 8 bytes for the journal's bookkeeping (the lsn replay needs, see
 * fe_saga_use_journal()).  With the defaults (64 bytes of context, 16
 * entries) that is 360 bytes per saga: 360 MB for a million sagas (192 MB
 * with 8 bytes of context and 2 entries).
 *
 * Durability (see "Records" below).  With a log hook, the coordinator
 * hands it a record for every state change, on its own thread, before the
 * change has any effect outside the coordinator (before an action runs,
 * after its result and before the next).  After a crash the host feeds the
 * records back, in order, to fe_saga_replay() on a new coordinator before
 * starting it: completed steps are not run again; WAITING steps wait
 * again, for what is left of their timeout (deadline in wall-clock time
 * minus the wall clock now), with the same token; a BACKOFF resumes its
 * timer likewise; a compensation in progress continues; a step whose
 * start was logged without a result is IN DOUBT and runs again, with the
 * same attempt number and token and call->replayed set: actions and
 * compensations must therefore be idempotent.  fe_saga_complete()
 * returning 0 means the completion was accepted in memory; it is durable
 * once its record is logged: a confirmation source should re-deliver
 * until the saga shows the step done (the token stays valid until then).
 * A saga is durable from its START record.  With a log hook the
 * coordinator logs it when it takes the saga up, not when fe_saga_start()
 * returns.  With a journal (below) fe_saga_start() appends it itself
 * before returning, so that whatever its caller appends to the same
 * journal afterwards comes later: a bus stage that starts a saga, on a
 * coordinator that shares the bus's journal, never has its event's
 * outcome journaled without the saga.
 *
 * Journal.  Instead of a log hook the coordinator can write its records to
 * an fe_journal itself (fe_saga_use_journal(); a journal of its own or the
 * bus's, fe_bus_journal()): each record is appended as FE_JREC_SAGA, and
 * every pass of the coordinator that appended something commits the
 * journal at its end (and after every 256 invocations within a long
 * pass).  A record is therefore
 *   - handed to the kernel (survives a crash of the process) at the end of
 *     the pass that logged it, or earlier if someone else commits the
 *     journal (the bus's journaller does, all the time) or the group
 *     buffer fills;
 *   - durable against a power loss when the journal's fsync policy says
 *     so (FE_FSYNC_GROUP: at that commit; FE_FSYNC_INTERVAL: within the
 *     interval; FE_FSYNC_NONE: never promised).
 * So the STEP record of an action is NOT necessarily written before the
 * action runs (unless its step is FE_SAGA_STEP_DURABLE, which commits it
 * first: see there): a crash loses the records of the pass in progress,
 * and on restart every step whose STEP record was not written runs again -
 * as a fresh invocation (replayed 0, a new token) if the record before it
 * was the last written, as an IN DOUBT one (replayed 1, its old token) if
 * its STEP but not its RESULT was written.  Either way actions and
 * compensations must be idempotent, as above; a step whose RESULT was
 * written never runs again.  Generations (ids and tokens) the lost
 * records may have handed out are never issued again: after a replay the
 * coordinator skips 2 * max_sagas + 512 of them.  Replay with
 * fe_saga_journal_replay() as the journal's replay function (or as the
 * bus's cfg.on_replay), then fe_saga_use_journal().  The coordinator pins
 * the journal (fe_journal_pin()) so that retire never removes what a
 * replay needs: per live saga its newest record with context (and
 * everything after it), and the newest saga record (salt, generation
 * high-water).  The pin is recomputed at open and then at most once a
 * second (one pass over 8 bytes per saga); between two recomputations it
 * is low, never high (that minimum only grows).
 *
 * Lifecycle:
 *     fe_saga_config_init(&cfg);  set max_sagas, ctx_size, hooks ...
 *     fe_saga_create(&cfg, &c, &diag);
 *     fe_saga_define(c, &def, &def_id, &diag);   every definition
 *     fe_saga_replay(c, rec, len);               every record, in order
 *       (or: fe_journal_open(.., fe_saga_journal_replay, c, &j, ..);
 *            fe_saga_use_journal(c, j, &diag);)
 *     fe_saga_thread_start(c)  or  fe_saga_poll(c, n) repeatedly
 *     fe_saga_start / complete / abort / get ... from any thread
 *     fe_saga_thread_stop(c);  fe_saga_destroy(c);
 * The first fe_saga_thread_start() or fe_saga_poll() OPENS the coordinator:
 * definitions and replay are refused after it, requests before it.
 */
#ifndef FINEVENT_SAGA_H
#define FINEVENT_SAGA_H

#include <stdint.h>

#include "dlq.h"
#include "error.h"
#include "journal.h"
#include "reason.h"
#include "saga_rec.h"
#include "retry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_SAGA_MAX_STEPS 16   /* steps per definition */
#define FE_SAGA_NAME_MAX 32    /* names: up to 31 bytes and a NUL */
#define FE_SAGA_MAX_SAGAS (UINT32_C(1) << 24) /* largest max_sagas */
#define FE_SAGA_MAX_DEFS 256   /* largest max_defs */
#define FE_SAGA_CTX_MAX 1024   /* largest ctx_size */
#define FE_SAGA_HISTORY_MAX 64 /* largest history */
/* The reasons the coordinator gives itself (reason.h has the list).
 * Reasons are the host's own otherwise: keep them below
 * FE_REASON_RESERVED_MIN (a step may pass on a library reason it got, such
 * as the gateway's FE_REASON_CIRCUIT_OPEN).
 * FE_SAGA_REASON_TIMEOUT: the reason a timeout carries.
 * FE_SAGA_REASON_JOURNAL: a durable step's attempt did not run because the
 * journal could not make its STEP record durable (FE_SAGA_STEP_DURABLE). */
#define FE_SAGA_REASON_TIMEOUT ((uint32_t)FE_REASON_SAGA_TIMEOUT)
#define FE_SAGA_REASON_JOURNAL ((uint32_t)FE_REASON_JOURNAL)

typedef struct fe_saga_coord fe_saga_coord_t;

typedef enum fe_saga_kind {
  FE_SAGA_COMPENSATABLE = 1, /* has a compensation; before the pivot */
  FE_SAGA_PIVOT = 2,         /* the go/no-go step; at most one */
  FE_SAGA_RETRIABLE = 3      /* after the pivot; retried, never undone */
} fe_saga_kind_t;

typedef enum fe_saga_result {
  FE_SAGA_DONE = 0,
  FE_SAGA_RETRY = 1,  /* failed, retryable (call->reason / reason) */
  FE_SAGA_FAIL = 2,   /* failed for good */
  FE_SAGA_PENDING = 3 /* the token will be completed later */
} fe_saga_result_t;

typedef enum fe_saga_state {
  FE_SAGA_RUNNING = 1,
  FE_SAGA_WAITING = 2,
  FE_SAGA_BACKOFF = 3,
  FE_SAGA_COMPENSATING = 4,
  FE_SAGA_COMPLETED = 5,   /* terminal: every step done */
  FE_SAGA_COMPENSATED = 6, /* terminal: failed, compensations done */
  FE_SAGA_FAILED = 7,      /* terminal: failed, nothing to compensate */
  FE_SAGA_STUCK = 8        /* parked; fe_saga_redrive() resumes it */
} fe_saga_state_t;
#define FE_SAGA_STATES 9 /* states are 1..FE_SAGA_STATES-1 */

/* fe_saga_info_t.waiting */
typedef enum fe_saga_wait {
  FE_SAGA_WAIT_NONE = 0,
  FE_SAGA_WAIT_TOKEN = 1, /* on a token (WAITING, or compensating) */
  FE_SAGA_WAIT_TIMER = 2  /* on a retry timer (BACKOFF, or compensating) */
} fe_saga_wait_t;

/* ---------------------------------------------------------- definitions */

/* What an action or compensation gets.  Valid during the call only. */
typedef struct fe_saga_call {
  uint64_t saga_id;
  uint64_t token;       /* armed before the call: return FE_SAGA_PENDING and
                           hand it to whoever will call fe_saga_complete();
                           it is valid as soon as the call starts */
  uint32_t def_id;
  uint32_t step;        /* index in the definition */
  uint32_t attempt;     /* of this action (or this compensation): 1 first */
  uint32_t compensating; /* 1 in a compensation */
  uint32_t replayed;    /* 1: a re-run of an invocation left in doubt by a
                           crash (its start was logged, its result not) */
  uint32_t reason;      /* out: why, for FE_SAGA_RETRY and FE_SAGA_FAIL */
  void *ctx;            /* the saga's context: ctx_size bytes, read-write;
                           changes are logged with the result */
  uint32_t ctx_size;
  uint32_t reserved;
} fe_saga_call_t;

/* An action or a compensation.  Runs on the coordinator thread.
 *   call  in/out: see fe_saga_call_t.
 *   user  the step's user pointer.
 * Returns an fe_saga_result_t.  It may call fe_saga_start(),
 * fe_saga_complete() (even on its own token), fe_saga_heartbeat(),
 * fe_saga_abort(), fe_saga_redrive() and the queries; not fe_saga_poll()
 * (FE_ESTATE), fe_saga_thread_stop() (FE_ESTATE) or fe_saga_destroy().  It
 * delays every other saga while it runs: hand slow work to another thread
 * and return FE_SAGA_PENDING. */
typedef fe_saga_result_t (*fe_saga_action_fn)(fe_saga_call_t *call,
                                              void *user);

/* fe_saga_step_def_t.flags */
/* Durable step.  Before its action (or its compensation) is called, the
 * coordinator makes every record it logged so far - the invocation's STEP
 * record included - durable:
 *   with a journal (fe_saga_use_journal()): fe_journal_commit(), and then,
 *     if the journal's durable_lsn is still behind that STEP record (only
 *     FE_FSYNC_INTERVAL leaves it so), fe_journal_sync(): the host asked
 *     for durability before the effect, so the interval is not waited
 *     for.  "Durable" is the policy's word: under FE_FSYNC_GROUP and
 *     INTERVAL the record is fsynced; under FE_FSYNC_NONE it is handed to
 *     the kernel (survives a crash of the process, not a power loss, as
 *     the policy says) and no fsync is forced.
 *   with a log hook (cfg.log): the hook's return already means "durable"
 *     (see fe_saga_log_fn), so the coordinator does nothing more; the STEP
 *     record of a durable step carries FE_SAGA_RECF_DURABLE so that a hook
 *     that buffers knows to flush it (and everything before it) before it
 *     returns.  A hook that buffers and ignores the flag voids the
 *     guarantee below.
 * The guarantee: for a durable step, a crash after its action (or
 * compensation) started always replays that invocation as IN DOUBT - it
 * runs again with call->replayed 1, the same attempt number and the same
 * token - never as a fresh invocation (replayed 0, a new token), whatever
 * records of the same pass were lost; unless a later record of the saga
 * (the invocation's RESULT) was written too, and the saga resumes from
 * that instead.  So the action may ask the outside world "did my previous
 * try (this token) land?" instead of acting twice.  Without the flag a
 * crash may lose the STEP record with the pass, and the re-run is then a
 * fresh invocation (see "Journal" at the top).  Without records (neither
 * a journal nor a log hook) the flag does nothing.
 * If the commit or sync fails (or the STEP record's append did), the
 * action does NOT run: the invocation counts as an attempt that failed
 * with FE_SAGA_RETRY and reason FE_SAGA_REASON_JOURNAL, under the step's
 * retry policy (so: a backoff and another attempt; exhausted, or the
 * reason marked non-retryable in the policy, it is final: compensation
 * before the point of no return, STUCK after it or in a compensation), and
 * it is counted in fe_saga_stats_t.journal_errors.  A journal that failed
 * with FE_EIO stays failed, so every later attempt fails the same way
 * until the process restarts on a reopened journal.
 * Cost: one commit (a write; under FE_FSYNC_GROUP also an fdatasync) per
 * invocation of the step, on the coordinator thread, which delays every
 * other saga meanwhile.  Mark only the steps whose effect leaves the
 * process and cannot be asked about by their token otherwise.  The flag
 * is not part of the definition's hash: it may be turned on or off
 * between a crash and the replay of its records. */
#define FE_SAGA_STEP_DURABLE 1u
#define FE_SAGA_STEP_FLAGS_ALL FE_SAGA_STEP_DURABLE /* every known flag */

typedef struct fe_saga_step_def {
  const char *name;               /* 1..FE_SAGA_NAME_MAX-1 bytes, unique in
                                     the definition; copied */
  fe_saga_action_fn action;       /* required */
  fe_saga_action_fn compensate;   /* required for COMPENSATABLE, NULL for
                                     the others (it would never run) */
  fe_saga_kind_t kind;
  uint32_t flags;                 /* FE_SAGA_STEP_* (0: none); other bits
                                     are refused (FE_EDEFINE) */
  uint64_t timeout_ns;            /* how long a PENDING result may wait for
                                     its token (also a PENDING
                                     compensation); 0: no limit */
  fe_retry_policy_t retry;        /* for the action and the compensation */
  void *user;                     /* passed to action and compensate */
} fe_saga_step_def_t;

typedef struct fe_saga_def {
  const char *name;               /* 1..FE_SAGA_NAME_MAX-1 bytes, unique in
                                     the coordinator; copied */
  uint32_t n_steps;               /* 1..FE_SAGA_MAX_STEPS */
  uint32_t reserved;
  fe_saga_step_def_t steps[FE_SAGA_MAX_STEPS];
} fe_saga_def_t;

/* Zeroes d and gives every step the default retry policy
 * (fe_retry_policy_init()) and kind FE_SAGA_COMPENSATABLE.  d NULL: nothing.
 * Cannot fail; thread-safe (touches only d). */
FE_API void fe_saga_def_init(fe_saga_def_t *d);

/* Checks d without registering it.
 *   d     in: read during the call only.
 *   diag  out, may be NULL: on failure the code and a message naming the
 *         step.
 * Returns 0; FE_EINVAL (d NULL); FE_EDEFINE: no or over-long name, no
 * steps, more than FE_SAGA_MAX_STEPS, a step without a name or action, an
 * empty, over-long or duplicate step name, an unknown kind, unknown flag
 * bits (outside FE_SAGA_STEP_FLAGS_ALL), a compensatable
 * step without a compensation or another kind with one, more than one
 * pivot, a compensatable step after the pivot (or after a retriable step),
 * a retriable step before the pivot; FE_ERANGE: a step's retry policy fails
 * fe_retry_policy_check() (the message names the step).  Thread-safe,
 * wait-free. */
FE_API int fe_saga_def_check(const fe_saga_def_t *d, fe_diag_t *diag);

/* Callbacks the host gives the order template: each is an action or a
 * compensation (see fe_saga_action_fn), all called with `user`. */
typedef struct fe_saga_order_hooks {
  fe_saga_action_fn reserve;    /* reserve buying power */
  fe_saga_action_fn release;    /* compensates reserve */
  fe_saga_action_fn submit;     /* send to the venue; typically publishes to
                                   the bus's execution stage and returns
                                   PENDING until the venue acknowledges */
  fe_saga_action_fn cancel;     /* compensates submit */
  fe_saga_action_fn await_fill; /* the pivot: PENDING until the execution
                                   report */
  fe_saga_action_fn settle;     /* T+1: PENDING until the custodian
                                   confirms; retried, never undone */
  void *user;
  uint64_t submit_timeout_ns;   /* 0: 5 s */
  uint64_t fill_timeout_ns;     /* 0: no limit */
  uint64_t settle_timeout_ns;   /* 0: 36 h */
} fe_saga_order_hooks_t;

/* Fills *out with the order saga "order": reserve (compensatable,
 * compensated by release) -> submit (compensatable, by cancel) ->
 * await_fill (pivot) -> settle (retriable, up to 10 attempts).  Every step
 * gets the default retry policy except settle (max_attempts 10).  submit
 * is FE_SAGA_STEP_DURABLE (so is its compensation, cancel): it is the step
 * whose effect leaves for the venue, and after a crash it must come back
 * IN DOUBT with its token - "ask the venue whether this order (token) was
 * sent" - never as a fresh submission; the others are local or wait on
 * the outside world and are not.  The host may adjust *out (flags
 * included) before fe_saga_define().
 *   out  out: overwritten.
 *   h    in: read during the call only; every hook required.
 * Returns 0, FE_EINVAL (out or h NULL, a hook NULL; *out untouched).
 * Thread-safe. */
FE_API int fe_saga_order_template(fe_saga_def_t *out,
                                  const fe_saga_order_hooks_t *h);

/* ----------------------------------------------------------- callbacks */

/* Hands one record to the host's journal; coordinator thread; see
 * "Records".  rec is valid during the call only.  It must not fail: a
 * journal that cannot write should retry inside or stop the process; the
 * coordinator goes on as if the record were durable.  A hook that buffers
 * must at least make a record flagged FE_SAGA_RECF_DURABLE (a durable
 * step's STEP), and everything before it, durable before returning: the
 * step's action runs right after.  It must not call into the coordinator
 * except the queries. */
typedef void (*fe_saga_log_fn)(const void *rec, uint32_t len, void *user);

/* How a saga ended; passed to on_end. */
typedef struct fe_saga_end {
  uint64_t saga_id;
  uint32_t def_id;
  uint32_t state;       /* COMPLETED, COMPENSATED or FAILED */
  uint32_t reason;      /* the failure's (or abort's) reason, 0 if none */
  uint32_t ctx_size;
  const void *ctx;      /* the final context, valid during the call */
} fe_saga_end_t;

/* A saga reached a terminal state; coordinator thread, after its final
 * record, before its slot is freed (so fe_saga_get() still finds it).
 * May call what an action may. */
typedef void (*fe_saga_end_fn)(const fe_saga_end_t *e, void *user);

/* fe_saga_alert_t.kind */
typedef enum fe_saga_alert_kind {
  FE_SAGA_ALERT_STUCK = 1 /* a saga was parked STUCK */
} fe_saga_alert_kind_t;

typedef struct fe_saga_alert {
  uint32_t kind;        /* fe_saga_alert_kind_t */
  uint32_t def_id;
  uint64_t saga_id;
  uint32_t step;
  uint32_t attempt;     /* attempts made */
  uint32_t compensating; /* 1: a compensation got stuck */
  uint32_t reason;
  int dlq_rc;           /* the DLQ put's result (0 or its error), or 1 when
                           no DLQ is configured */
  uint32_t reserved;
  uint64_t dlq_id;      /* the dead letter's id, 0 if none */
} fe_saga_alert_t;

/* Raised on the coordinator thread, after the STUCK record and the dead
 * letter.  May call what an action may. */
typedef void (*fe_saga_alert_fn)(const fe_saga_alert_t *a, void *user);

/* -------------------------------------------------------- configuration */

typedef struct fe_saga_config {
  uint32_t max_sagas;  /* sagas in flight at once, 1..FE_SAGA_MAX_SAGAS
                          (default 65536) */
  uint32_t max_defs;   /* definitions, 1..FE_SAGA_MAX_DEFS (default 16) */
  uint32_t ctx_size;   /* context bytes per saga, 0..FE_SAGA_CTX_MAX
                          (default 64) */
  uint32_t history;    /* transitions kept per saga, 0..FE_SAGA_HISTORY_MAX
                          (default 16) */
  uint64_t tick_ns;    /* timer resolution, 1000 ns..1 s (default 1 ms):
                          timeouts and backoffs fire within one tick after
                          they are due, never before */
  uint64_t salt;       /* token salt; 0: random (getrandom); replay adopts
                          the salt of the records */
  /* Monotonic ns (timeouts, backoffs, history); NULL: fe_clock_now_ns.
   * Wall-clock ns since the epoch (deadlines in records); NULL:
   * fe_clock_realtime_ns.  Coordinator thread only, but that with a
   * journal wall_ns also stamps the START record on fe_saga_start()'s
   * thread: then it must be thread-safe. */
  uint64_t (*now_ns)(void *clock_user);
  uint64_t (*wall_ns)(void *clock_user);
  void *clock_user;
  fe_saga_log_fn log;        /* may be NULL: no records */
  fe_saga_end_fn on_end;     /* may be NULL */
  fe_saga_alert_fn on_alert; /* may be NULL */
  void *user;                /* passed to log, on_end, on_alert */
  /* Dead letters for stuck sagas, may be NULL.  The entry: an event of
   * type dlq_event_type (default FE_EV_USER) whose trace_id is the saga id,
   * client_order_id "saga-<id>" and symbol the definition's name (cut to
   * fit); the context as its user area; stage = the step; kind
   * FE_DLQ_RETRIES_EXHAUSTED or FE_DLQ_FAIL; the reason; the saga id (8
   * bytes) as key.  Put without waiting (timeout 0) from the coordinator
   * thread: a full queue is reported in the alert, not waited on.  Must
   * outlive the coordinator. */
  fe_dlq_t *dlq;
  uint32_t dlq_event_type;
  uint32_t reserved;
} fe_saga_config_t;

/* Fills cfg with the defaults above.  Cannot fail; thread-safe. */
FE_API void fe_saga_config_init(fe_saga_config_t *cfg);

/* Checks cfg without allocating.  Returns 0, FE_EINVAL (cfg NULL),
 * FE_ERANGE (a field outside the range above; diag names it).
 * Thread-safe, wait-free. */
FE_API int fe_saga_config_check(const fe_saga_config_t *cfg, fe_diag_t *diag);

/* Validates cfg and allocates the coordinator with every slot, context,
 * history entry and timer it will use, touching every page.
 *   cfg   in: copied (callbacks, their pointers and dlq must stay valid).
 *   out   out: the coordinator, freed with fe_saga_destroy(); untouched on
 *         failure.
 *   diag  out, may be NULL.
 * Returns 0, FE_EINVAL (cfg or out NULL), FE_ERANGE (as the check),
 * FE_ENOMEM.  On failure nothing is allocated.  Blocking (allocates: about
 * a second per GB). */
FE_API int fe_saga_create(const fe_saga_config_t *cfg, fe_saga_coord_t **out,
                          fe_diag_t *diag);

/* Stops the internal thread if it runs (as fe_saga_thread_stop()), then
 * frees everything; sagas in flight are dropped without records.  Accepts
 * NULL.  No other call on c may be in progress or follow. */
FE_API void fe_saga_destroy(fe_saga_coord_t *c);

/* Registers a copy of d (fe_saga_def_check() first).
 *   def_id  out, may be NULL: its id, 0, 1, ... in registration order.
 * Returns 0, the check's codes, FE_EINVAL (c NULL), FE_EDEFINE (a
 * definition of that name exists), FE_ETABLEFULL (max_defs reached),
 * FE_ESTATE (the coordinator is open).  On failure nothing is registered.
 * Before open, from one thread. */
FE_API int fe_saga_define(fe_saga_coord_t *c, const fe_saga_def_t *d,
                          uint32_t *def_id, fe_diag_t *diag);

/* ------------------------------------------------------------- driving */

/* Opens c if it is not open yet and starts the coordinator thread.
 * Returns 0, FE_EINVAL (c NULL), FE_ESTATE (the thread runs already, or a
 * poll is in progress, or called from an action), FE_ETHREAD (thread
 * creation failed: c is open, nothing runs it; poll or try again).  Any
 * thread; blocking. */
FE_API int fe_saga_thread_start(fe_saga_coord_t *c);

/* Asks the coordinator thread to stop after the invocation in progress
 * and waits for it.  Sagas keep their state: fe_saga_thread_start() or
 * fe_saga_poll() carries on.  Returns 0, FE_EINVAL, FE_ESTATE (the thread
 * is not running, or called from it).  Any thread but the coordinator's;
 * blocking. */
FE_API int fe_saga_thread_stop(fe_saga_coord_t *c);

/* Host-driven: runs the coordinator once on the calling thread (opening c
 * on the first call): fires the timers due on the monotonic clock, applies
 * every request queued, then invokes up to max_work actions and
 * compensations, each saga running on while its steps finish at once.
 * Returns the work done (requests applied + timers fired + invocations),
 * 0 when there was nothing to do, or FE_EINVAL (c NULL, max_work 0),
 * FE_ESTATE (the coordinator thread runs, another poll is in progress, or
 * called from an action or callback).  Any thread, one at a time; never
 * waits (its time is the callbacks' time plus O(work)). */
FE_API int fe_saga_poll(fe_saga_coord_t *c, uint32_t max_work);

/* Host-driven: nanoseconds on the monotonic clock until the next timer
 * may fire (0: due now; UINT64_MAX: none armed), measured from the last
 * poll's clock reading: how long a host may sleep when fe_saga_poll()
 * returned 0, unless a request arrives.  UINT64_MAX for c NULL or not yet
 * open.  The coordinator's thread only (or between polls); a lower bound,
 * never late. */
FE_API uint64_t fe_saga_idle_ns(fe_saga_coord_t *c);

/* Wakes the coordinator thread so it re-reads the clock now (needed only
 * with an injected clock that does not follow real time: the thread
 * sleeps in real time until the next timer).  Any thread; wait-free
 * unless it wakes the thread (one futex call). */
FE_API void fe_saga_wake(fe_saga_coord_t *c);

/* ------------------------------------------------------------- requests */

/* Starts a saga of definition def_id with an initial context: ctx_len
 * bytes from ctx, the rest zero.
 *   saga_id  out: its id (never 0, never reused by this coordinator or
 *            one replaying its records); untouched on failure.
 * Returns 0, FE_EINVAL (c or saga_id NULL, ctx NULL with ctx_len > 0),
 * FE_ENOTFOUND (no definition def_id), FE_ERANGE (ctx_len above ctx_size;
 * or 2^40 ids and tokens used), FE_EFULL (every slot taken: counted),
 * FE_ESTATE (not open); with a journal, the error of appending the START
 * record (FE_EIO: the journal failed; see fe_journal_append()).  On
 * failure nothing changed.  Any thread; no allocation, O(ctx_size).
 * Lock-free with a log hook or no records; with a journal it appends the
 * START record (fe_saga_use_journal()): the journal's lock, and I/O only
 * when the journal's buffer is full. */
FE_API int fe_saga_start(fe_saga_coord_t *c, uint32_t def_id, const void *ctx,
                         uint32_t ctx_len, uint64_t *saga_id);

/* Completes a pending step: result FE_SAGA_DONE, FE_SAGA_RETRY (reason) or
 * FE_SAGA_FAIL (reason), applied as if the step's function had returned it
 * (a completion of a pending compensation completes the compensation).
 * Returns 0 (accepted; applied by the coordinator in order), FE_EINVAL (c
 * NULL, result not one of the three), FE_ETOKEN (never issued: counted),
 * FE_ELATE (late or duplicate: counted; nothing changed), FE_ESTATE (not
 * open).  Any thread; lock-free, no allocation. */
FE_API int fe_saga_complete(fe_saga_coord_t *c, uint64_t token,
                            fe_saga_result_t result, uint32_t reason);

/* The pending step holding token is alive: its timeout restarts from now,
 * for extend_ns (0: the step's own timeout_ns; rounded up to a
 * microsecond, capped at 2^40 us, 12.7 days).  Applied by the coordinator
 * when it takes the request; if several arrive between two of its passes,
 * the last one counts.
 * Returns 0, FE_EINVAL, FE_ETOKEN, FE_ELATE (as fe_saga_complete(),
 * counted), FE_ESTATE (not open).  Any thread; lock-free. */
FE_API int fe_saga_heartbeat(fe_saga_coord_t *c, uint64_t token,
                             uint64_t extend_ns);

/* Aborts saga_id from outside (reason: the host's code, kept as the
 * saga's reason).  Before the point of no return: 0, and the saga is
 * compensated as after a failure; its pending token, if any, becomes late;
 * an abort of a saga already compensating (or aborted) also returns 0 and
 * changes nothing.  After it: FE_ESTATE, counted, nothing changed.
 * Returns also FE_EINVAL (c NULL), FE_ENOTFOUND (no such saga: finished,
 * or never started).  Any thread; lock-free. */
FE_API int fe_saga_abort(fe_saga_coord_t *c, uint64_t saga_id,
                         uint32_t reason);

/* Resumes a STUCK saga: its stuck action or compensation runs again, with
 * a fresh attempt count under the same policy.  Returns 0, FE_EINVAL,
 * FE_ENOTFOUND, FE_ESTATE (the saga is not STUCK, or a redrive of it is
 * already queued; or not open).  Any thread; lock-free. */
FE_API int fe_saga_redrive(fe_saga_coord_t *c, uint64_t saga_id);

/* -------------------------------------------------------------- queries */

typedef struct fe_saga_transition {
  uint64_t time_ns;    /* monotonic clock (microsecond resolution; a
                          transition more than 12.7 days after the start
                          shows that bound) */
  uint32_t step;       /* the step after the transition */
  uint32_t attempt;    /* its attempt count (saturates at 2047) */
  uint8_t from, to;    /* fe_saga_state_t */
  uint8_t reserved[6];
} fe_saga_transition_t;

typedef struct fe_saga_info {
  uint64_t saga_id;
  uint64_t started_ns;  /* monotonic; 0 until the coordinator took it up */
  uint32_t def_id;
  uint32_t state;       /* fe_saga_state_t */
  uint32_t step;        /* the action or compensation at hand */
  uint32_t attempt;     /* its attempts so far */
  uint32_t compensating;
  uint32_t waiting;     /* fe_saga_wait_t */
  uint32_t reason;      /* the last failure's or abort's reason, 0 none */
  uint32_t n_history;   /* entries in history, oldest first */
  uint64_t transitions; /* transitions since the start (history keeps the
                           last `history` of them; a replayed saga's start
                           is its replay) */
  fe_saga_transition_t history[FE_SAGA_HISTORY_MAX];
} fe_saga_info_t;

/* Copies saga_id's state into *out (a consistent snapshot).  A saga just
 * started and not yet taken up shows RUNNING at step 0, attempt 0.
 * Returns 0, FE_EINVAL (c or out NULL), FE_ENOTFOUND (no such saga now).
 * Any thread, any time; no allocation; never blocks the coordinator
 * (retries while the coordinator is updating this saga). */
FE_API int fe_saga_get(fe_saga_coord_t *c, uint64_t saga_id,
                       fe_saga_info_t *out);

/* Visits one saga for fe_saga_foreach(); info valid during the call.
 * Returns 0 to go on, anything else to stop (returned by foreach). */
typedef int (*fe_saga_visit_fn)(const fe_saga_info_t *info, void *user);

/* Calls fn with a snapshot (as fe_saga_get()) of every saga whose state is
 * in state_mask (bit 1u << state; 0: every state), in slot order; each
 * snapshot is consistent, the walk as a whole is not.  fn may call any
 * function an action may.  Returns 0, fn's non-zero value, FE_EINVAL (c
 * or fn NULL).  Any thread; O(max_sagas). */
FE_API int fe_saga_foreach(fe_saga_coord_t *c, uint32_t state_mask,
                           fe_saga_visit_fn fn, void *user);

typedef struct fe_saga_stats {
  uint64_t capacity;      /* max_sagas */
  uint64_t live;          /* sagas holding a slot (taken up) */
  uint64_t in_state[FE_SAGA_STATES]; /* live sagas per non-terminal state */
  uint64_t started;       /* taken up by the coordinator */
  uint64_t completed, compensated, failed; /* terminal, since create */
  uint64_t stuck;         /* times a saga was parked STUCK */
  uint64_t redriven;      /* redrives applied */
  uint64_t retries;       /* retries scheduled (actions and compensations) */
  uint64_t timeouts;      /* pending steps that timed out */
  uint64_t heartbeats;    /* heartbeats applied */
  uint64_t aborts;        /* aborts applied */
  uint64_t invocations;   /* actions and compensations called */
  uint64_t records;       /* records logged */
  uint64_t dlq_failed;    /* dead-letter puts that failed */
  uint64_t journal_errors; /* with fe_saga_use_journal(): appends and
                             commits that failed, a durable step's commit
                             or sync included (its attempt did not run);
                             the journal's error, FE_EIO once it failed,
                             is in its stats */
  /* bumped by the calling threads */
  uint64_t late;          /* FE_ELATE answers, and results that lost a race */
  uint64_t unknown_tokens; /* FE_ETOKEN answers */
  uint64_t abort_refused; /* aborts after the point of no return */
  uint64_t start_refused; /* FE_EFULL starts */
} fe_saga_stats_t;

/* Fills *s.  Returns 0 or FE_EINVAL.  Any thread; never blocks the
 * coordinator. */
FE_API int fe_saga_stats(fe_saga_coord_t *c, fe_saga_stats_t *s);

/* "RUNNING", "WAITING", ... "STUCK", or "UNKNOWN".  Static; cannot fail. */
FE_API const char *fe_saga_state_name(uint32_t state);

/* ------------------------------------------------------------- records */

/* The records a coordinator logs and replays, their on-disk format,
 * fe_saga_replay() and fe_saga_rec_type_name(): saga_rec.h. */

/* Makes c write its records to journal j (see "Journal" at the top)
 * instead of handing them to a log hook, and pins j (fe_journal_pin())
 * so that fe_journal_retire() keeps what a replay of c needs.  Call it
 * after replaying j into c (fe_saga_journal_replay()), before c is
 * opened; with the bus's journal, also before fe_bus_start() (from then
 * on the bus's journal worker retires segments, and until the pin exists
 * nothing holds the saga records back).
 *   j     the journal, borrowed: it must stay open until c is destroyed
 *         (fe_saga_destroy() releases the pin: destroy c before closing j,
 *         or before destroying the bus that owns it).
 *   diag  out, may be NULL: on failure the code and a message.
 * Returns 0; FE_EINVAL (c or j NULL, or cfg.log is set: records go to one
 * place); FE_ESTATE (c is open, c has a journal already, or j is
 * read-only); FE_ERANGE (c's records, sizeof(fe_saga_rec_t) + ctx_size
 * bytes, do not fit j's largest record); FE_EFULL (j has no free pin).
 * On failure nothing changed.  Before open, from one thread. */
FE_API int fe_saga_use_journal(fe_saga_coord_t *c, fe_journal_t *j,
                               fe_diag_t *diag);

/* An fe_journal_replay_fn (also usable as the bus's cfg.on_replay, with
 * the coordinator as user): applies an FE_JREC_SAGA record to the
 * coordinator `coord` as fe_saga_replay() does, noting its lsn for the
 * pin, and ignores records of every other type (returns 0).
 * Returns 0, FE_EINVAL (r or coord NULL), or fe_saga_replay()'s error
 * (which stops the journal's or the bus's open with that code).  The
 * replaying thread, before c is opened. */
FE_API int fe_saga_journal_replay(const struct fe_journal_record *r,
                                  void *coord);

/* ---------------------------------------------------------- on the bus */

/*
 * On the bus.  Confirmations from the outside world arrive as events -
 * execution reports from the venue, settlement confirmations from the
 * custodian - and complete the saga steps waiting on them (the ring never
 * waits for the outside world; the saga does).  fe_saga_bus_stage()
 * fills a stage definition whose handler, for each event of the map's
 * types, finds the token and the result and calls fe_saga_complete():
 *   default            token = ev->trace_id (the host publishes the
 *                      report with the token it got from the step's
 *                      call->token as trace id), result FE_SAGA_DONE;
 *   map.extract        the host's: e.g. an execution report whose status
 *                      is a reject -> FE_SAGA_FAIL with a reason; or 0 to
 *                      let the event pass without completing anything.
 * Every event continues to the next stage (FE_CONTINUE) whatever the
 * outcome: late or duplicate reports (FE_ELATE), unknown tokens
 * (FE_ETOKEN) and refusals are counted (fe_saga_bus_stats()), never a
 * failure of the stage.  Events of other types are stepped over by the
 * bus's type filter (the stage's n_types/types), untouched.
 */
typedef struct fe_saga_bus_map {
  /* Event types whose events complete steps, 1..FE_STAGE_MAX_TYPES of
   * them, none 0.  Default: FE_EV_EXEC_REPORT, FE_EV_SETTLE_CONFIRM. */
  uint32_t n_types;
  uint32_t types[FE_STAGE_MAX_TYPES];
  /* NULL (default): token = ev->trace_id, result FE_SAGA_DONE, reason 0.
   * Else called for each such event on the stage's worker (concurrently
   * when the stage is sharded): fills *token, *result (DONE, RETRY or
   * FAIL) and *reason, preset to the defaults, and returns 1; or returns
   * 0: the event completes nothing (counted as ignored).  Must be cheap
   * and must not block; it may read ev and its user area. */
  int (*extract)(const fe_event_t *ev, uint64_t *token,
                 fe_saga_result_t *result, uint32_t *reason, void *user);
  void *user;             /* passed to extract */
} fe_saga_bus_map_t;

/* What the stage did, since the coordinator was created.  Each counter is
 * read atomically; the set is not one snapshot. */
typedef struct fe_saga_bus_stats {
  uint64_t completed;     /* fe_saga_complete() accepted the result */
  uint64_t late;          /* FE_ELATE: late or duplicate report */
  uint64_t unknown;       /* FE_ETOKEN: a token never issued */
  uint64_t ignored;       /* extract returned 0 */
  uint64_t refused;       /* any other answer: FE_ESTATE (the coordinator
                             is not open yet: open it before the bus
                             starts) or FE_EINVAL (extract gave a result
                             other than DONE, RETRY, FAIL) */
} fe_saga_bus_stats_t;

/* Fills m with the defaults above.  Cannot fail; thread-safe. */
FE_API void fe_saga_bus_map_init(fe_saga_bus_map_t *m);

/* Fills *out (fe_stage_def_init() first) with the stage "saga": handler
 * and user (c) set, the map's types as the stage's type filter; the host
 * sets deps, shards, worker and may rename it, then puts it in its stage
 * table.  The map is copied into c: one map per coordinator, a second
 * call replaces it for every stage built from c.
 *   c     the coordinator: it must outlive the bus (destroy the bus
 *         first).
 *   map   in, may be NULL (the defaults); read during the call only.
 *   out   out: overwritten; untouched on failure.
 *   diag  out, may be NULL.
 * Returns 0, FE_EINVAL (c or out NULL), FE_ERANGE (n_types 0 or above
 * FE_STAGE_MAX_TYPES, a type 0).  On failure nothing changed.  Before the
 * bus that will run the stage is created, from one thread.  The handler
 * runs on the stage's workers: lock-free, no allocation (it is
 * fe_saga_complete() and a counter). */
FE_API int fe_saga_bus_stage(fe_saga_coord_t *c, const fe_saga_bus_map_t *map,
                             fe_stage_def_t *out, fe_diag_t *diag);

/* Copies the stage's counters.  Returns 0 or FE_EINVAL (NULL).  Any
 * thread; wait-free. */
FE_API int fe_saga_bus_stats(const fe_saga_coord_t *c,
                             fe_saga_bus_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_SAGA_H */
