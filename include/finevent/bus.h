/*
 * libfinevent: the event bus.
 *
 * A ring of pre-allocated, cache-line-aligned event slots (LMAX Disruptor
 * style).  Producers claim a sequence, fill the slot in place and publish
 * it; stages consume the published events in sequence order, each gated on
 * the stages it depends on; producers are gated on the last stages, so a
 * slot is never reused before every stage has finished with it.
 *
 * Lifecycle (one order, like LMDB's create/configure/open):
 *
 *     fe_bus_config_init(&cfg);  ... fill cfg and its stage table ...
 *     fe_bus_create(&cfg, &bus, &diag);   validates, allocates, pre-faults
 *     fe_bus_start(bus, &diag);           starts worker threads (if any)
 *     fe_bus_try_claim / fe_bus_publish ... from producer threads
 *     fe_bus_drain(bus, timeout);         optional: wait for quiescence
 *     fe_bus_stop(bus);                   refuse new events, finish the rest
 *     fe_bus_destroy(bus);
 *
 * Threads.  "Worker" means one unit of execution: a library thread, or in
 * host-driven mode a host thread calling fe_bus_poll() for that worker
 * index.  Every stage shard is assigned to exactly one worker; a worker may
 * run shards of several stages.  Handlers of one shard always run on its
 * worker, one event at a time, in sequence order.
 *
 * Every event ends exactly once: completed (no stage rejected it) or
 * rejected (by one stage, with a reason).  After fe_bus_drain() returns 0,
 * published == completed + rejected in fe_bus_stats().
 */
#ifndef FINEVENT_BUS_H
#define FINEVENT_BUS_H

#include <stdint.h>

#include "error.h"
#include "event.h"
#include "idem.h"
#include "reason.h"
#include "retry.h"
#include "throttle.h"
#include "trading.h"

/* dlq.h includes this header; the bus needs only the handle. */
typedef struct fe_dlq fe_dlq_t;
/* journal.h: the bus needs only these names. */
typedef struct fe_journal fe_journal_t;
struct fe_journal_config;
struct fe_journal_record;

#ifdef __cplusplus
extern "C" {
#endif

#define FE_BUS_MAX_STAGES 64   /* stages in one bus */
#define FE_BUS_MAX_DEPS 8      /* upstream stages of one stage */
#define FE_BUS_MAX_WORKERS 64  /* workers (threads) of one bus */
#define FE_BUS_BATCH_DEFAULT UINT32_MAX /* max_batch: 256 or the capacity */
#define FE_BUS_MAX_SHARDS 64   /* workers of one stage */
#define FE_BUS_MAX_NAME 32     /* stage name bytes, including the NUL */
#define FE_REASON_MAX 255      /* reject reasons are 1..FE_REASON_MAX; the
                                  library's own are in reason.h */
#define FE_WAIT_FOREVER UINT64_MAX /* timeout meaning "no timeout" */
#define FE_STAGE_MAX_TYPES 8   /* event types one stage may select */

typedef struct fe_bus fe_bus_t;

/* Producer modes. */
typedef enum fe_producer {
  /* One thread publishes at a time (the host guarantees it): claims need no
   * atomic read-modify-write. */
  FE_PRODUCER_SINGLE = 1,
  /* Any number of threads publish concurrently; the ring sequence is the one
   * total order across them.  Claims are one compare-and-swap. */
  FE_PRODUCER_MULTI = 2
} fe_producer_t;

/* How an idle worker (and a producer facing a full ring) waits. */
typedef enum fe_wait {
  /* Busy spin with the CPU's pause hint: lowest latency, burns a core per
   * worker even when idle.  Only for workers pinned to their own cores. */
  FE_WAIT_SPIN = 1,
  /* Spin spin_tries times, then sched_yield() between checks: good latency,
   * shares cores, still uses CPU while idle. */
  FE_WAIT_YIELD = 2,
  /* Spin, yield yield_tries times, then sleep on a futex until upstream
   * progress wakes it: no CPU while idle; a publish wakes parked workers
   * (the publisher pays a system call only when somebody is parked). */
  FE_WAIT_PARK = 3
} fe_wait_t;

/* What a handler returns. */
typedef enum fe_verdict {
  FE_CONTINUE = 0, /* pass the event on */
  FE_REJECT = 1,   /* business reject (fe_reject()): later stages skip it */
  FE_RETRY = 2,    /* transient failure (fe_retry()): the shard pauses and
                      calls the handler again for this event after the
                      stage's retry policy delay; exhausted or
                      non-retryable reasons dead-letter it */
  FE_FAIL = 3      /* permanent technical failure (fe_fail()): the event is
                      dead-lettered, later stages skip it */
} fe_verdict_t;

/* Per-call context handed to a handler.  The bus fills every field but
 * `reason` before each call; the handler reads them and writes `reason`
 * only through fe_reject(). */
typedef struct fe_stage_ctx {
  fe_bus_t *bus;
  uint32_t stage;       /* id of the running stage (its index in cfg) */
  uint32_t shard;       /* which of the stage's workers, 0..shards-1 */
  uint32_t worker;      /* the worker (thread) index running it */
  uint32_t end_of_batch;/* 1 on the last event this handler gets in the
                           current batch: flush buffered work now */
  uint32_t reason;      /* out: reason of a reject, retry or failure, set
                           by fe_reject(), fe_retry(), fe_fail() */
  uint32_t attempt;     /* 1 on the first call for an event, n on the n-th
                           (after n-1 FE_RETRY verdicts) */
  const char *text;     /* out, optional: a short text for a retry or
                           failure (static storage, or valid until the
                           handler returns); the dead-letter queue keeps
                           a copy */
  void *priv;           /* private to the bus */
} fe_stage_ctx_t;

/* A stage handler.  Called on the stage shard's worker, once per event the
 * shard owns, in sequence order.  It may read the event and write the order
 * fields and user area that no parallel stage touches; it must not claim or
 * publish on the same bus from a worker (the ring may be full of events
 * that wait for this very worker: that is a deadlock).  Every event behind
 * this one on the worker waits while the handler runs, so it should not
 * wait on the outside world: handing an order to a venue session (the
 * gateway's send, gateway.h) is a quick local call; waiting for the
 * venue's fill or a custodian's confirmation belongs in a saga step that
 * returns FE_SAGA_PENDING and is completed by a later event (saga.h, "On
 * the bus").  Return FE_CONTINUE, or
 * fe_reject(ctx, reason) to short-circuit the event: stages downstream of
 * this one skip their handlers for it, and it still completes in order. */
typedef fe_verdict_t (*fe_stage_fn)(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                    void *user);

/* A batch handler: the alternative to fe_stage_fn for stages whose per-event
 * work is a few instructions, where one indirect call per event would cost
 * more than the work.  Called on the shard's worker with the events of one
 * batch that the shard owns and that no upstream stage rejected, in
 * sequence order (evs[0..n-1], n >= 1; a batch larger than
 * FE_BATCH_CHUNK arrives in several calls, ctx->end_of_batch set on the
 * last).  The same rules as fe_stage_fn apply to what it may touch and
 * call.  To reject evs[i], call fe_batch_reject(ctx, evs[i], reason); the
 * others continue. */
typedef void (*fe_stage_batch_fn)(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                                  uint32_t n, void *user);
#define FE_BATCH_CHUNK 256

/* From inside a batch handler only: rejects ev (one of the evs it was
 * given) with reason (1..FE_REASON_MAX, others counted as 0), with the same
 * effect as a handler returning fe_reject().  ctx or ev NULL: nothing.
 * Wait-free; cannot fail. */
FE_API void fe_batch_reject(fe_stage_ctx_t *ctx, fe_event_t *ev,
                            uint32_t reason);

/* From inside a batch handler only: dead-letters ev (permanent failure),
 * as a handler returning fe_fail().  Batch handlers cannot retry: the
 * events after ev were already handled in the same call.  ctx or ev NULL:
 * nothing.  Wait-free. */
FE_API void fe_batch_fail(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t reason);

/* Records `reason` (1..FE_REASON_MAX; other values are counted as reason 0)
 * and returns FE_REJECT, for use as `return fe_reject(ctx, 42);`. */
static inline fe_verdict_t fe_reject(fe_stage_ctx_t *ctx, uint32_t reason) {
  if (ctx != NULL)
    ctx->reason = reason;
  return FE_REJECT;
}

/* Records `reason` and returns FE_RETRY: `return fe_retry(ctx, E_TIMEOUT);`
 * The policy's non-retryable reasons dead-letter at once. */
static inline fe_verdict_t fe_retry(fe_stage_ctx_t *ctx, uint32_t reason) {
  if (ctx != NULL)
    ctx->reason = reason;
  return FE_RETRY;
}

/* Records `reason` and returns FE_FAIL: `return fe_fail(ctx, E_BADDATA);` */
static inline fe_verdict_t fe_fail(fe_stage_ctx_t *ctx, uint32_t reason) {
  if (ctx != NULL)
    ctx->reason = reason;
  return FE_FAIL;
}

/* What the bus tells the dead-letter hook about an event it gives up on. */
typedef struct fe_dead_letter {
  uint32_t stage;    /* the stage that failed it */
  uint32_t reason;   /* the handler's reason code */
  uint32_t attempts; /* handler calls made for it by that stage */
  uint32_t exhausted;/* 1: FE_RETRY until the policy gave up (exhausted or
                        a non-retryable reason); 0: FE_FAIL */
  uint32_t redrives; /* times this event was redriven from a dead-letter
                        queue before (fe_bus_redrive) */
  const char *text;  /* the handler's ctx->text, or "" */
} fe_dead_letter_t;

/* Called on the failing shard's worker, once per dead-lettered event, before
 * any later stage could see it; ev is valid only during the call (copy what
 * you keep: fe_dlq_put() does).  Same rules as a handler. */
typedef void (*fe_dead_letter_fn)(const fe_event_t *ev,
                                  const fe_dead_letter_t *info, void *user);

/* Sharding key: the value whose hash picks the shard.  Must depend only on
 * the event's contents, and be cheap: every shard of a stage evaluates it
 * for every event. */
typedef uint64_t (*fe_key_fn)(const fe_event_t *ev, void *user);

/* One stage of the graph.  Initialise with fe_stage_def_init(). */
typedef struct fe_stage_def {
  const char *name;     /* required, unique, < FE_BUS_MAX_NAME bytes; copied */
  fe_stage_fn handler;  /* one of handler and batch_handler is required */
  fe_stage_batch_fn batch_handler;
  void *user;           /* passed to handler */
  uint32_t n_deps;      /* 0: the stage reads straight from the producers */
  uint32_t deps[FE_BUS_MAX_DEPS]; /* indices (in cfg->stages) of upstream
                                     stages: this stage sees an event only
                                     after all of them have finished it */
  uint32_t shards;      /* workers for this stage, 1..FE_BUS_MAX_SHARDS
                           (default 1); events are partitioned by key */
  uint32_t worker;      /* worker index of shard 0; shard k runs on worker
                           `worker + k` (default 0) */
  fe_key_fn key;        /* NULL (default): XXH3-64 of order.account */
  void *key_user;       /* passed to key */
  uint32_t n_types;     /* 0 (default): every event type; else the stage
                           handles only these types and steps over the rest
                           (they continue to later stages untouched) */
  uint32_t types[FE_STAGE_MAX_TYPES];
  uint32_t parallel_to_journal; /* with a journal (cfg.journal): 0 (default):
                              the stage sees an event only once it is
                              journaled; 1: it runs in parallel with the
                              journaller, as LMAX runs business logic -- only
                              for stages with no effect outside the process
                              (validation), since a crash may lose an event
                              they saw */
  fe_retry_policy_t retry; /* used on FE_RETRY (default: fe_retry_policy_init:
                              1 ms doubling to 100 ms, 5 attempts) */
  uint32_t fuse;        /* 1: the handler finishes its work on an event before
                           it returns (it defers nothing to end_of_batch), so
                           the stages after it on its worker may take each
                           event straight after it.  A worker whose stages
                           (2 to 8) all set it runs them as one pass over a
                           batch, event by event, instead of one pass per
                           stage: a chain of cheap stages costs less (see
                           README, Performance).  Verdicts, retries,
                           end_of_batch, counters and order are as without
                           it.  No effect on a worker with a sharded or
                           type-filtered stage, on a bus with an audit
                           trail, or with a stage timing hook
                           (fe_bus_on_stage_timing: it times each stage
                           over the batch).  0 (default): the stages after
                           it on the worker see a batch only after its
                           end_of_batch call, as on another worker -- what
                           a stage that buffers work until end_of_batch (a
                           batched write) needs.  Handler stages only
                           (FE_EINVAL with a batch_handler) */
} fe_stage_def_t;

/* Bus configuration.  Initialise with fe_bus_config_init(). */
typedef struct fe_bus_config {
  uint32_t capacity;      /* slots; power of two >= 2 (default 65536) */
  uint32_t slot_size;     /* bytes per slot, rounded up to a multiple of 64;
                             must hold fe_event_t (default 256: 80 bytes
                             of user area) */
  fe_producer_t producer; /* default FE_PRODUCER_SINGLE */
  fe_wait_t wait;         /* default FE_WAIT_PARK */
  uint32_t max_batch;     /* most events a shard takes per batch, 1 ..
                             capacity (default FE_BUS_BATCH_DEFAULT: 256,
                             or the capacity when that is smaller) */
  uint32_t spin_tries;    /* checks spun before yielding (default 1000:
                             20-40 us on current x86, whose pause hint
                             takes 15-40 ns; long enough that a worker fed
                             every 10 us never sleeps in sched_yield) */
  uint32_t yield_tries;   /* FE_WAIT_PARK: yields before parking (default
                             50) */
  uint32_t catchup_pauses; /* a worker that caught up with a busy upstream
                             pauses this many times before it reads the
                             upstream's sequence again (default 64, about
                             1 us; 0: never).  It happens when a poll
                             finds fewer than max_batch events right after
                             a poll that found some, never twice in a
                             row.  Why: a worker that re-reads the
                             producer's cursor after every few events
                             takes that cache line from the producer each
                             time, and the producer, stalled on the line,
                             slows to the worker's pace (per-event publish
                             fell from 200+ to 15-40 M ev/s without it) */
  int host_driven;        /* 1: no library threads; host calls fe_bus_poll()
                             (default 0) */
  const fe_stage_def_t *stages; /* the stage table, read during create only */
  uint32_t n_stages;      /* 1..FE_BUS_MAX_STAGES */
  int cpu[FE_BUS_MAX_WORKERS]; /* CPU to pin each worker thread to; -1
                                  (default): no pinning.  Ignored in
                                  host-driven mode. */
  fe_dlq_t *dlq;           /* dead letters go here (kind FAIL or
                              RETRIES_EXHAUSTED, the stage's text, the client
                              order id as key); NULL: none.  Borrowed.  A
                              full queue under REJECT refuses the entry (the
                              DLQ counts and alerts it; the event still ends
                              dead-lettered); under BLOCK the worker waits.
                              With cfg.journal the queue is rebuilt by
                              fe_bus_start and its redrives and purges are
                              journaled; one journaled bus per queue
                              (another gets FE_ESTATE). */
  fe_dead_letter_fn on_dead_letter; /* NULL: dead letters are only counted */
  struct fe_audit *audit;  /* every verdict becomes an audit record
                              (audit.h): a reject or dead letter when a
                              stage gives it (stage, reason), an accept
                              when the event has passed every stage
                              (stage FE_AUDIT_ALL_STAGES), a redrive when
                              fe_bus_redrive publishes it (a purge is the
                              host's to note: fe_audit_note with
                              FE_AUDIT_PURGED); event id: the ring
                              sequence.  The hand-off is the trail's
                              lock-free append, on the deciding worker; a
                              full queue follows the trail's policy.  NULL:
                              none.  Borrowed: must outlive the bus. */
  void *dead_letter_user;
  fe_trading_t *trading;   /* admission by fe_bus_publish_order: trading
                              states and kill switch; NULL: none.  Borrowed:
                              must outlive the bus. */
  fe_throttle_t *throttle; /* admission: rate limits on new orders, keyed
                              by account; NULL: none.  Borrowed. */
  /* Exactly-once (see "Durability" below).  All three NULL: none. */
  fe_idem_t *idem;         /* admission by fe_bus_submit of new orders:
                              duplicates get the first outcome.  Borrowed.
                              With a journal, give the table a wall clock
                              (now_ns = fe_clock_wall_fn): recovery restores
                              entries with their wall completion times */
  const struct fe_journal_config *journal; /* the bus opens (recovering) and
                              closes this journal; NULL: no journal.  A
                              batch whose events or outcomes do not fit
                              one record (buffer_bytes, segment_bytes) is
                              written as several; a journal whose record
                              cannot hold even one entry (440 bytes plus
                              the journaled user bytes) is refused
                              with FE_ERANGE, before recovery */
  uint32_t journal_worker; /* worker that runs the journaller and the
                              outcome stage (default 0) */
  uint32_t journal_user_bytes; /* user-area bytes journaled with each event
                              (default UINT32_MAX: all of it) */
  /* Recovery: an event journaled with an intent to send and no outcome is
   * "in doubt".  The hook asks the outside world (the venue) whether it was
   * sent and returns 1 (sent: it is re-driven marked as sent, so
   * fe_bus_intent() answers FE_EDUPLICATE and nothing sends it again), 0
   * (not sent: re-driven normally) or a negative code (fe_bus_create fails
   * with it).  NULL: every in-doubt event counts as sent (never send twice;
   * the host reconciles).  Called during fe_bus_create, on its thread. */
  int (*in_doubt)(const fe_event_t *ev, void *user);
  void *in_doubt_user;
  /* Fills in what the idempotency table stores for a finished event
   * (venue order id, fill summary, host bytes) after the bus set status,
   * reason and ref.  Runs on the journal worker; NULL: nothing added.
   * It runs before the outcome is journaled (what it adds goes into the
   * outcome record), so it must not tell anybody the order ended: a crash
   * after it can re-drive the event.  The outcome is final once the
   * idempotency table has it (fe_idem_get, a duplicate's answer), which
   * happens only after the journal took it. */
  void (*on_outcome)(const fe_event_t *ev, fe_idem_outcome_t *out,
                     void *user);
  void *outcome_user;
  /* Every journal record met during recovery whose type the bus does not
   * consume itself (it consumes FE_JREC_EVENT, FE_JREC_OUTCOME and
   * FE_JREC_INTENT): FE_JREC_SAGA (pass fe_saga_journal_replay with the
   * coordinator as replay_user), the other library types and the host's
   * (>= FE_JREC_HOST), in lsn order, on the thread calling fe_bus_create.
   * A non-zero return stops recovery: fe_bus_create fails with it.  NULL:
   * such records are skipped. */
  int (*on_replay)(const struct fe_journal_record *rec, void *user);
  void *replay_user;
  uint64_t (*now_ns)(void *clock_user); /* monotonic ns for retry timing;
                                           NULL (default): fe_clock_now_ns.
                                           Tests inject a fake clock. */
  void *clock_user;
} fe_bus_config_t;

/* Whole-bus counters (fe_bus_stats()).  Each is read atomically but the set
 * is not a snapshot while events flow; after fe_bus_drain() returns 0 (and
 * with no concurrent publisher),
 * published == completed + rejected + dead_lettered. */
typedef struct fe_bus_stats {
  uint64_t published; /* events published (claims voided by stop excluded) */
  uint64_t completed; /* events that passed every stage */
  uint64_t rejected;  /* events rejected by some stage */
  uint64_t dead_lettered; /* events some stage failed (FE_FAIL, or FE_RETRY
                             until its policy gave up) */
  uint64_t full;      /* try-claims refused because the ring was full */
  uint64_t throttled; /* fe_bus_publish_order refused by the throttle
                         (never entered the ring: not in published) */
  uint64_t halted;    /* fe_bus_publish_order refused by the trading state
                         (halted or reduce-only; not in published) */
  uint64_t duplicates;/* fe_bus_submit answered from the idempotency table
                         (FE_EDUPLICATE, FE_EINPROGRESS, FE_EMISMATCH; not
                         in published) */
  uint64_t parks;     /* times a worker went to sleep (FE_WAIT_PARK) */
  uint64_t wakeups;   /* futex wake calls made by publishers and stages */
  uint64_t lost_wakeups; /* parks that ended by the safety timeout while
                            work was waiting: always 0 unless a wake-up was
                            missed (a library bug; the timeout bounds it) */
  uint64_t catchups;  /* catch-up pauses taken by workers (catchup_pauses) */
} fe_bus_stats_t;

/* Per-stage counters, summed over the stage's shards. */
typedef struct fe_stage_stats {
  uint64_t handled;  /* handler calls */
  uint64_t rejected; /* handler calls that returned FE_REJECT */
  uint64_t skipped;  /* events not handed over: rejected or dead-lettered
                        upstream */
  uint64_t filtered; /* events not handed over: a type the stage does not
                        select */
  uint64_t retried;  /* FE_RETRY verdicts that scheduled another attempt */
  uint64_t failed;   /* events this stage dead-lettered */
  uint64_t batches;  /* batches in which the handler ran at least once */
  uint64_t processed;/* sequence reached, minimum over shards */
} fe_stage_stats_t;

/* Fills cfg with the defaults above and no stages.  Cannot fail. */
FE_API void fe_bus_config_init(fe_bus_config_t *cfg);

/* Fills def with the defaults above (no name, no handler).  Cannot fail. */
FE_API void fe_stage_def_init(fe_stage_def_t *def);

/* Validates cfg, then allocates and pre-faults everything the bus will ever
 * use (ring, sequences, counters).  No allocation happens after this call.
 *   cfg   in: read during the call only; cfg->stages likewise.
 *   out   out: the new bus, in the created state; untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, or FE_EINVAL (NULL argument, bad flag), FE_ECAPACITY (zero,
 * one, not a power of two, or too large), FE_ESLOTSIZE (slot smaller than
 * fe_event_t or over 1 MiB), FE_EPRODUCER, FE_EWAIT, FE_EBATCH (max_batch
 * 0 or above capacity), FE_ENOSTAGES (none, or more than the maximum),
 * FE_ENAME (missing, too long or duplicate stage name), FE_ENOHANDLER
 * (neither handler nor batch_handler, or both),
 * FE_EDEPEND (dependency index out of range or repeated, too many deps),
 * FE_ECYCLE (the graph has a cycle, self-dependency included), FE_ESHARDS,
 * FE_EWORKER (worker index out of range, or a worker between 0 and the
 * highest used that runs no stage), FE_ERANGE (cpu index invalid),
 * FE_ENOMEM.  On failure nothing is allocated.  With a journal also the
 * journal's own errors (fe_journal_open), FE_ERANGE (a record cannot hold
 * one entry), FE_ESTATE (cfg.dlq is used by another journaled bus: refused
 * before the journal is read, so nothing borrowed was touched), and an
 * in-doubt hook's error.  A failure after the journal was read (FE_ENOMEM,
 * a replay or in-doubt hook's error) leaves in cfg.idem the entries
 * replay restored, and the hooks may have been called for the records
 * read; cfg.dlq is untouched (its dead letters go back at fe_bus_start).
 * Thread-safe (no shared state).  Blocking (allocates and touches
 * memory). */
FE_API int fe_bus_create(const fe_bus_config_t *cfg, fe_bus_t **out,
                         fe_diag_t *diag);

/* Starts the worker threads (none in host-driven mode) and pins them.
 * Returns 0, FE_EINVAL (bus NULL), FE_ESTATE (not in the created state),
 * FE_ETHREAD (a thread could not be created), FE_EAFFINITY (pinning
 * failed: the CPU is offline or not allowed).  On those failures the
 * threads that were started are stopped again and the bus stays in the
 * created state.  With a journal, recovery's dead letters go back into
 * cfg.dlq and its unfinished events are re-driven here; if that fails
 * (FE_ETABLEFULL: cfg.idem has no room to take a recovered order's key back,
 * which the message names), the bus is stopped (events already re-driven
 * are processed) and can only be destroyed; the order stays unfinished in
 * the journal for a restart with a larger table.  Call from one thread;
 * blocking. */
FE_API int fe_bus_start(fe_bus_t *bus, fe_diag_t *diag);

/* ------------------------------------------ claim and publish, inline */

/* The per-event claim and publish are inline functions: a host's producer
 * loop compiles them in and calls into the library only off the common
 * case (multi producer, a ring full by the cached gate, a parked worker to
 * wake, a stop).  A call per event cost the README's one-producer program a
 * fifth of its throughput.  The library also exports each of them as a
 * function, for hosts that bind by symbol.
 *
 * To compile in, they read the first bytes of every bus, declared here for
 * that alone: fe_bus_priv_fast_t is private to the library (a host never
 * reads or writes it), and its layout is part of the ABI (SOVERSION changes
 * with it).  Each field's line and its writers are described in lib/ring.h. */
#define FE_BUS_PRIV_LINE 128     /* padding unit: two cache lines */
#define FE_BUS_PRIV_STOPPING 2   /* state from which claims fail */
typedef struct fe_bus_priv_fast {
  /* Read-mostly: set at create; state and asym also at start and stop. */
  unsigned char *slots;
  uint64_t mask;           /* capacity - 1 */
  uint64_t root_wake_mask; /* workers a publish may have to wake */
  uint32_t capacity;
  uint32_t slot_size;
  uint32_t prefetch_off;   /* bytes ahead of a claimed slot to prefetch */
  fe_producer_t producer;
  fe_wait_t wait;
  int asym;                /* 1: the light side of a store-load fence is free */
  uint32_t state;
  char pad0[FE_BUS_PRIV_LINE - 52];
  uint64_t cursor;         /* single producer: the published count */
  char pad1[FE_BUS_PRIV_LINE - 8];
  uint64_t claimed;        /* single producer: the claimed count */
  uint64_t sp_gate;        /* single producer: the cached end gate */
  char pad2[FE_BUS_PRIV_LINE - 16];
  uint64_t parked_mask;    /* bit w: worker w is parked or about to be */
  char pad3[FE_BUS_PRIV_LINE - 8];
} fe_bus_priv_fast_t;

/* The library's side of the inline paths. */
FE_API int fe_bus_priv_claim_slow(fe_bus_t *bus, fe_event_t **ev,
                                  uint64_t timeout_ns, int wait);
FE_API int fe_bus_priv_claim_void(fe_bus_t *bus, uint64_t seq);
FE_API int fe_bus_priv_publish_slow(fe_bus_t *bus, fe_event_t *ev);
FE_API void fe_bus_priv_wake(fe_bus_t *bus);

/* prefetchw: asks for the line at p for writing, so that it arrives
 * writable in one transfer instead of shared and then upgraded; a store
 * that misses would hold a store-buffer entry until the line came.  Never
 * faults.  __builtin_prefetch(p, 1) emits it only when compiling for a CPU
 * that has it; every x86-64 CPU this library targets does (3DNow! prefetch
 * on AMD, PRFCHW on Intel since Broadwell), older ones treat it as a NOP.
 * The claims and the workers use it (lib/ring.h says how far ahead). */
static inline void fe_bus_priv_prefetch_w(const void *p) {
#if defined(__x86_64__)
  __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1);
#endif
}

/* The header fields a claim resets: the sequence, the default type, the
 * bus's private words.  Relaxed: the stages read the verdict atomically,
 * and the gate that let this claim reuse the slot ordered their reads
 * before this store. */
static inline void fe_bus_priv_reset(fe_event_t *ev, uint64_t seq) {
  ev->seq = seq;
  ev->type = FE_EV_NEW_ORDER;
  ev->flags = 0;
  __atomic_store_n(&ev->verdict, 0, __ATOMIC_RELAXED);
}

/* One claim: the single producer's common case inline, the rest in
 * fe_bus_priv_claim_slow (wait: 1 for fe_bus_claim). */
static inline __attribute__((always_inline)) int
fe_bus_priv_claim(fe_bus_t *bus, fe_event_t **ev, uint64_t timeout_ns,
                  int wait) {
  if (__builtin_expect(bus == NULL || ev == NULL, 0))
    return FE_EINVAL;
  fe_bus_priv_fast_t *f = (fe_bus_priv_fast_t *)(void *)bus;
  /* Relaxed: claimed and sp_gate are this thread's own (single producer);
   * state is re-read below, after the fence that orders it. */
  uint64_t c = __atomic_load_n(&f->claimed, __ATOMIC_RELAXED);
  if (__builtin_expect(f->producer != FE_PRODUCER_SINGLE ||
                       !__atomic_load_n(&f->asym, __ATOMIC_RELAXED) ||
                       __atomic_load_n(&f->state, __ATOMIC_RELAXED) >=
                           FE_BUS_PRIV_STOPPING ||
                       c + 1 - f->sp_gate > f->capacity, 0))
    return fe_bus_priv_claim_slow(bus, ev, timeout_ns, wait);
  __atomic_store_n(&f->claimed, c + 1, __ATOMIC_RELAXED);
  /* The stop protocol's light side (asym is set: a compiler barrier is
   * enough, the stopper's membarrier fences this thread): either the
   * stopper's read of claimed sees this claim and waits for its publish,
   * or this read sees the stop and the claim is voided. */
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  if (__builtin_expect(__atomic_load_n(&f->state, __ATOMIC_RELAXED) >=
                           FE_BUS_PRIV_STOPPING, 0))
    return fe_bus_priv_claim_void(bus, c);
  fe_event_t *e = (fe_event_t *)(void *)(f->slots + (c & f->mask) *
                                                        f->slot_size);
  fe_bus_priv_prefetch_w((const char *)e + f->prefetch_off);
  fe_bus_priv_reset(e, c);
  *ev = e;
  return 0;
}

static inline __attribute__((always_inline)) int
fe_bus_priv_publish(fe_bus_t *bus, fe_event_t *ev) {
  if (__builtin_expect(bus == NULL || ev == NULL, 0))
    return FE_EINVAL;
  fe_bus_priv_fast_t *f = (fe_bus_priv_fast_t *)(void *)bus;
  const int park = f->wait == FE_WAIT_PARK;
  if (__builtin_expect(f->producer != FE_PRODUCER_SINGLE ||
                       (park && !__atomic_load_n(&f->asym, __ATOMIC_RELAXED)),
                       0))
    return fe_bus_priv_publish_slow(bus, ev);
  /* Release: the slot's contents, written before, are visible to a stage
   * whose acquire load of the cursor sees this count.  Single producer:
   * claims are published in order, so this publishes all before ev too. */
  __atomic_store_n(&f->cursor, ev->seq + 1, __ATOMIC_RELEASE);
  if (park) {
    /* Store-load against a parking worker, which sets its bit, fences
     * every thread (membarrier: this compiler barrier is enough here) and
     * re-reads the cursor: it sees this publish or this load sees it. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect((__atomic_load_n(&f->parked_mask, __ATOMIC_RELAXED) &
                          f->root_wake_mask) != 0, 0))
      fe_bus_priv_wake(bus);
  }
  return 0;
}

#ifdef FE_BUS_PRIV_OUT_OF_LINE /* lib/bus.c: the exported copies */
FE_API int fe_bus_try_claim(fe_bus_t *bus, fe_event_t **ev);
FE_API int fe_bus_claim(fe_bus_t *bus, fe_event_t **ev, uint64_t timeout_ns);
FE_API int fe_bus_publish(fe_bus_t *bus, fe_event_t *ev);
#else
/* Claims the next slot without waiting.  On success *ev points at the slot,
 * whose header (seq, type = FE_EV_NEW_ORDER) is set and whose payload and
 * user area hold whatever the previous event left: the caller fills it and
 * must then call fe_bus_publish(ev) exactly once, soon (stages stall at an
 * unpublished sequence).  Returns 0, FE_EFULL (every slot is still in use:
 * backpressure; nothing changed), FE_ESTOPPED (fe_bus_stop() was called).
 * Allowed in the created and running states.  Single-producer mode: one
 * thread at a time.  Multi-producer: any thread.  Lock-free; no allocation,
 * no system call. */
static inline int fe_bus_try_claim(fe_bus_t *bus, fe_event_t **ev) {
  return fe_bus_priv_claim(bus, ev, 0, 0);
}

/* Like fe_bus_try_claim(), but when the ring is full waits by the bus's
 * wait strategy for up to timeout_ns nanoseconds (FE_WAIT_FOREVER: no
 * limit).  Returns 0, FE_ETIMEDOUT (still full; nothing changed),
 * FE_ESTOPPED.  Blocking only while the ring is full. */
static inline int fe_bus_claim(fe_bus_t *bus, fe_event_t **ev,
                               uint64_t timeout_ns) {
  return fe_bus_priv_claim(bus, ev, timeout_ns, 1);
}

/* Publishes a claimed event: stages may see it from now on and the caller
 * must not touch it again.  Returns 0, or FE_EINVAL when ev is NULL.  In
 * multi-producer mode events become visible in sequence order, so an event
 * waits for earlier claims to be published.  Wait-free; no system call
 * unless a worker is parked. */
static inline int fe_bus_publish(fe_bus_t *bus, fe_event_t *ev) {
  return fe_bus_priv_publish(bus, ev);
}

#endif

/* Batch claim: n consecutive sequences starting at *first, all or nothing.
 * Reach each slot with fe_bus_event_at(bus, *first + i) and publish them
 * with one fe_bus_publish_n(bus, *first, n).  Returns 0, FE_EINVAL (n is 0
 * or above capacity), FE_EFULL, FE_ESTOPPED.  Threads as fe_bus_try_claim. */
FE_API int fe_bus_try_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first);

/* Blocking batch claim with a timeout, as fe_bus_claim(). */
FE_API int fe_bus_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first,
                          uint64_t timeout_ns);

/* The slot of sequence seq.  Valid for a sequence the caller has claimed and
 * not yet published, or inside a handler for the event being handled.
 * NULL for bus NULL.  Wait-free, cannot fail. */
FE_API fe_event_t *fe_bus_event_at(fe_bus_t *bus, uint64_t seq);

/* Admission and publication in one call, for hosts that use the bus's
 * trading states and throttles (cfg.trading, cfg.throttle): checks the
 * trading state first (FE_EHALTED, FE_EREDUCEONLY: cancels and non-order
 * events always pass), then the throttle for new orders (FE_ETHROTTLED,
 * keyed by order->account), and only then claims a slot (waiting up to
 * timeout_ns as fe_bus_claim: FE_ETIMEDOUT, FE_ESTOPPED), copies type,
 * *order and trace_id into it and publishes it; *seq (may be NULL) gets its
 * sequence.  An admission refusal never touches the ring and is counted in
 * fe_bus_stats (throttled, halted); a claim that fails after admission has
 * spent the throttle token (rate limits count attempts).  The raw
 * claim/publish calls skip admission entirely.  Threads as
 * fe_bus_try_claim; lock-free admission (no allocation, lock or system
 * call), blocking only while the ring is full. */
FE_API int fe_bus_publish_order(fe_bus_t *bus, uint32_t type,
                                const fe_order_t *order, uint64_t trace_id,
                                uint64_t timeout_ns, uint64_t *seq);

/* ------------------------------------------------------------ durability
 *
 * With cfg.idem and/or cfg.journal the bus gives each new order an
 * exactly-once effect:
 *   - fe_bus_submit() claims the order's idempotency key (account, client
 *     order id) before it claims a slot: a duplicate returns FE_EDUPLICATE
 *     with the first outcome (or FE_EINPROGRESS) and never enters the ring;
 *     a different order under a used key returns FE_EMISMATCH.
 *   - An internal stage, "fe.journal" (on journal_worker), appends every
 *     event to the journal in groups, in parallel with the stages marked
 *     parallel_to_journal; every other stage sees an event only after its
 *     group was written (and fsynced, under FE_FSYNC_GROUP).  When the
 *     journal cannot be written, the group's events are dead-lettered
 *     with reason FE_REASON_JOURNAL (reason.h) and text "journal write
 *     failed"; they reach no other stage.
 *   - An internal last stage, "fe.outcome", records each event's outcome
 *     (completed, rejected, dead-lettered) in the journal and then in the
 *     idempotency table.
 *   - The execution stage calls fe_bus_intent() before it sends an order
 *     out (fe_gateway_stage does): the intent is journaled first, so that
 *     recovery knows which orders may have reached the venue.
 *   - fe_bus_create() with a journal recovers: it verifies the journal
 *     (see journal.h), rebuilds the idempotency table and asks cfg.in_doubt
 *     about orders with an intent but no outcome; fe_bus_start() then puts
 *     the dead letters back into cfg.dlq (so between the two calls the
 *     queue does not have them yet and fe_bus_recovery().dlq_restored is
 *     0) and re-drives every journaled event with no outcome, before
 *     anything new.
 * The two internal stages take stage ids n_stages and n_stages + 1 (so a
 * journaled bus has at most FE_BUS_MAX_STAGES - 2 stages of its own).
 */

/* What to submit: fe_bus_submit() copies it into a slot. */
typedef struct fe_submit {
  uint32_t type;            /* FE_EV_NEW_ORDER, FE_EV_CANCEL, ... */
  uint32_t flags;           /* FE_SUBMIT_DURABLE */
  const fe_order_t *order;  /* required */
  uint64_t trace_id;
  fe_trace_t trace;         /* W3C trace context, copied into the event */
  const void *user_area;    /* copied into the slot's user area (the rest
                               of it is zeroed); may be NULL */
  uint32_t user_len;        /* <= fe_bus_user_size() */
  uint64_t timeout_ns;      /* longest wait for a slot, and for durability
                               (FE_WAIT_FOREVER: none) */
} fe_submit_t;

/* Return only once the event is journaled under the journal's fsync policy
 * (needs cfg.journal): the acknowledgement a broker may give its client. */
#define FE_SUBMIT_DURABLE 1u

typedef struct fe_submit_result {
  uint64_t seq;              /* 0: ring sequence of the published event */
  uint64_t lease_expiry_ns;  /* FE_EINPROGRESS: when the first claim's lease
                                ends (the idempotency table's clock) */
  fe_idem_outcome_t outcome; /* FE_EDUPLICATE: the first outcome */
} fe_submit_result_t;

/* Admission, idempotency and publication of one event, optionally waiting
 * until it is durable.  In order: the trading state (FE_EHALTED,
 * FE_EREDUCEONLY), the throttle for new orders (FE_ETHROTTLED), the
 * idempotency claim for new orders when cfg.idem is set (FE_EDUPLICATE
 * with out->outcome, FE_EINPROGRESS, FE_EMISMATCH, FE_ETABLEFULL, FE_EINVAL
 * for an empty client order id), the slot claim (FE_ETIMEDOUT,
 * FE_ESTOPPED: the idempotency claim is then abandoned), publication, and
 * with FE_SUBMIT_DURABLE the wait for the journal (FE_ETIMEDOUT here means
 * the event IS published but was not yet durable at the deadline; out->seq
 * is set).  Refusals before the slot claim never touch the ring and are
 * counted (throttled, halted, duplicates).
 *   in   required; read during the call.
 *   out  may be NULL.
 * Returns 0, the codes above, FE_EINVAL (NULL, user_len too large,
 * FE_SUBMIT_DURABLE without a journal).  Threads as fe_bus_try_claim.
 * Lock-free up to the slot claim (no allocation, lock or system call);
 * blocking while the ring is full and while waiting for durability. */
FE_API int fe_bus_submit(fe_bus_t *bus, const fe_submit_t *in,
                         fe_submit_result_t *out);

/* A burst: in[0] .. in[n-1] submitted in order, each exactly as by its own
 * fe_bus_submit() call (its answer in rc[i], its result in out[i]), while
 * the idempotency table's cache misses of the orders a few places ahead
 * are started early (fe_idem_prefetch, fe_idem_prefetch_claim): on a table
 * larger than the cache one submit waits for about two memory reads, a
 * burst overlaps them.  One order's refusal does not stop the others.
 *   out  may be NULL; else n results.
 * Returns the number of orders accepted (rc[i] == 0), FE_EINVAL (bus NULL,
 * or in or rc NULL with n > 0: nothing submitted), FE_ERANGE (n above
 * INT32_MAX: nothing submitted).  Threads and blocking as fe_bus_submit. */
FE_API int fe_bus_submit_n(fe_bus_t *bus, const fe_submit_t *in, size_t n,
                           fe_submit_result_t *out, int *rc);

/* From a handler, before an effect outside the process that must never
 * happen twice (sending ev to a venue): journals the intent and writes it
 * out (and fsyncs under FE_FSYNC_GROUP).  Returns
 *   0             go ahead (also when the bus has no journal);
 *   FE_EDUPLICATE recovery established that ev was already sent before a
 *                 crash: do not send it again, treat it as sent;
 *   FE_EIO        the journal cannot be written: do not send (retry);
 *   FE_ESTATE     the stage runs parallel_to_journal (ev may not be
 *                 journaled yet: such a stage must not send).
 * Called on the stage's worker; blocking (one write, maybe an fsync). */
FE_API int fe_bus_intent(fe_stage_ctx_t *ctx, const fe_event_t *ev);

/* What recovery found (all 0 without a journal). */
typedef struct fe_bus_recovery {
  uint64_t records;         /* journal records read */
  uint64_t events;          /* events journaled */
  uint64_t finished;        /* of them, with an outcome */
  uint64_t redriven;        /* without one: re-driven by fe_bus_start */
  uint64_t in_doubt_sent;   /* in doubt, found sent (re-driven as sent) */
  uint64_t in_doubt_unsent; /* in doubt, found not sent */
  uint64_t idem_restored;   /* idempotency entries rebuilt */
  uint64_t dlq_restored;    /* dead letters put back into cfg.dlq */
  uint64_t dlq_refused;     /* dead letters the queue refused on the way
                               back (full, or its REJECT policy): their
                               outcome stays dead-lettered, but they are
                               not in the queue to be redriven */
  uint64_t dlq_purged;      /* purges of dead letters found (those stay
                               out of the queue) */
  uint64_t truncated_bytes; /* torn tail cut off the journal */
  /* Non-zero: the journal's last record was whole but damaged (see
   * "Recovery" in journal.h), and was cut off with the torn tail: the
   * event or outcome it held, with this lsn, may have been acknowledged
   * and is lost.  Reconcile it from outside (the venue, the client)
   * before going on.  tail_corrupt_msg says where and what; "" if 0. */
  uint64_t tail_corrupt_lsn;
  char tail_corrupt_msg[512]; /* FE_JOURNAL_MSG_MAX */
} fe_bus_recovery_t;

/* Copies what recovery found.  Returns 0 or FE_EINVAL.  Any thread. */
FE_API int fe_bus_recovery(const fe_bus_t *bus, fe_bus_recovery_t *out);

/* The bus's journal (NULL without one), for other users' records
 * appended with fe_journal_append() (host types >= FE_JREC_HOST) or by the
 * saga coordinator (fe_saga_use_journal()); they come back through
 * cfg.on_replay, and for its stats: the outcome stage retires finished
 * segments once a second, and a removal the system refuses shows there
 * (retire_failures, sys_errno) while the bus carries on.  Owned by the
 * bus: do not close it (destroy a coordinator that uses it before the
 * bus). */
FE_API fe_journal_t *fe_bus_journal(fe_bus_t *bus);

/* The republish function for fe_dlq_redrive() / fe_dlq_redrive_all() of a
 * dead-letter queue fed by this bus: pass it with the bus as `user`.  It
 * re-publishes a copy of the event (type, order, trace id, user area)
 * without admission checks (it was admitted once), carrying the redrive
 * count so that the queue's redrive limit holds across failures.  With
 * cfg.idem, a new order first takes its key back (fe_idem_reopen()): while
 * it runs, duplicates answer FE_EINPROGRESS, and then the redrive's
 * outcome replaces the dead letter's (also in the journal); if the key is
 * done with another outcome (a client's retry ran the order, under
 * cache_failures 0) the redrive is refused with FE_EDUPLICATE, if a retry
 * is running with FE_EINPROGRESS, if the client order id now names another
 * order with FE_EMISMATCH (FE_ETABLEFULL when the table is full): the
 * entry stays in the queue, and an order never runs twice.  Waits for a
 * slot like fe_bus_claim with no timeout; returns 0, those codes,
 * FE_ESTOPPED or FE_EINVAL (NULL, or user_len above fe_bus_user_size():
 * the same rule as fe_bus_submit, whose user area it fills the same way:
 * the bytes given, the rest zeroed).  Threads as fe_bus_try_claim
 * (multi-producer mode, or the single producer thread). */
FE_API int fe_bus_redrive(const fe_event_t *ev, const void *user_area,
                          uint32_t user_len, uint32_t redrive_count,
                          void *bus);

/* Publishes n events claimed together by fe_bus_(try_)claim_n().  Returns 0
 * or FE_EINVAL (n is 0).  Wait-free as fe_bus_publish(). */
FE_API int fe_bus_publish_n(fe_bus_t *bus, uint64_t first, uint32_t n);

/* Host-driven mode: runs one batch of every stage shard assigned to
 * `worker` that has work, on the calling thread.  A worker must be polled
 * by one thread at a time (different workers from different threads is
 * fine).  Returns the number of sequences the worker's shards advanced
 * (0 when idle; it never waits), FE_ESTOPPED once fe_bus_stop() was called
 * and this worker has finished every event published before it,
 * FE_EWORKER (no such worker), FE_ESTATE (not host-driven, or not
 * started).  Lock-free. */
FE_API int fe_bus_poll(fe_bus_t *bus, uint32_t worker);

/* Waits until every event claimed before the call has completed, for up to
 * timeout_ns (FE_WAIT_FOREVER: no limit).  On success everything the
 * handlers wrote for those events (order fields, user area, their own
 * state) happens-before the return, so the caller may read it, e.g. through
 * event pointers it kept.  In host-driven mode other threads must keep
 * polling meanwhile.  Returns 0, FE_ETIMEDOUT, FE_ESTATE
 * (not started).  Any thread; blocking (sleeps on a futex in FE_WAIT_PARK,
 * otherwise yields). */
FE_API int fe_bus_drain(fe_bus_t *bus, uint64_t timeout_ns);

/* Stops the bus: from now on claims fail with FE_ESTOPPED; every event
 * published before (and every claim racing with this call that succeeds) is
 * still processed by every stage, then the worker threads exit and are
 * joined.  In host-driven mode it returns at once and the host keeps
 * polling each worker until fe_bus_poll() returns FE_ESTOPPED.  Returns 0,
 * FE_EINVAL (bus NULL), FE_ESTATE (already stopped, or never started while
 * events were claimed: start it to process them, or destroy it to discard
 * them).  Stopping a bus that was never started and holds no event just
 * marks it stopped.  Call from one thread, not from a handler; blocking. */
FE_API int fe_bus_stop(fe_bus_t *bus);

/* Frees everything.  Accepts NULL.  A running bus is stopped first (so
 * nothing published is lost; in host-driven mode the host must have polled
 * every worker to FE_ESTOPPED first); events claimed on a bus that was
 * never started are discarded.  Not thread-safe: no other call may be in
 * progress or follow. */
FE_API void fe_bus_destroy(fe_bus_t *bus);

/* Fills *out with the whole-bus counters.  Returns 0 or FE_EINVAL.  Any
 * thread; wait-free. */
FE_API int fe_bus_stats(const fe_bus_t *bus, fe_bus_stats_t *out);

/* What one stage shard did in one batch, for fe_bus_on_stage_timing(). */
typedef struct fe_stage_timing {
  uint32_t stage;   /* stage id */
  uint32_t shard;
  uint32_t worker;  /* the worker (thread, or host-driven poll) that ran it */
  uint32_t handled; /* handler calls in the batch, >= 1 */
  uint64_t ns;      /* time the stage spent on the batch (fe_clock_now_ns):
                       handler calls and the bus's own work around them */
} fe_stage_timing_t;
typedef void (*fe_stage_timing_fn)(const fe_stage_timing_t *t, void *user);

/* Has every worker call fn after each batch in which a stage shard called
 * its handler, on the worker's thread (so per-worker recording needs no
 * lock; fe_metrics_attach() plugs the metrics module in this way).  The
 * later attempts of an event paused by FE_RETRY are not reported (each is
 * a call on its own, after its delay).  The cost is two clock reads per
 * stage per batch, none when fn is NULL (the default); with a hook, fused
 * stages (fe_stage_def_t.fuse) run stage by stage.  fn must not block: the
 * worker's stages wait for it.  Call before fe_bus_start.  Returns 0,
 * FE_EINVAL (bus NULL), FE_ESTATE (started).  Not thread-safe. */
FE_API int fe_bus_on_stage_timing(fe_bus_t *bus, fe_stage_timing_fn fn,
                                  void *user);

/* Fills *out with the counters of one stage.  Returns 0, FE_EINVAL, or
 * FE_ERANGE (no such stage).  Any thread; wait-free. */
FE_API int fe_bus_stage_stats(const fe_bus_t *bus, uint32_t stage,
                              fe_stage_stats_t *out);

/* Number of events stage rejected with reason (0..FE_REASON_MAX; 0 counts
 * rejections with an out-of-range reason).  Returns 0 for an unknown stage
 * or reason.  Any thread; wait-free. */
FE_API uint64_t fe_bus_stage_rejects(const fe_bus_t *bus, uint32_t stage,
                                     uint32_t reason);

/* Id of the stage called name, FE_ENAME (no such stage), FE_EINVAL (bus or
 * name NULL).  Any thread; cannot block. */
FE_API int fe_bus_stage_id(const fe_bus_t *bus, const char *name);

/* Name of stage id, or NULL.  Owned by the bus. */
FE_API const char *fe_bus_stage_name(const fe_bus_t *bus, uint32_t stage);

/* Geometry: slots, bytes of user area per slot, workers (0 for NULL). */
FE_API uint32_t fe_bus_capacity(const fe_bus_t *bus);
FE_API uint32_t fe_bus_user_size(const fe_bus_t *bus);
FE_API uint32_t fe_bus_workers(const fe_bus_t *bus);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_BUS_H */
