/*
 * The saga coordinator's private data structures, shared by its files
 * (saga.c lists them and the one direction their calls go).  Not
 * installed.
 *
 * Who touches what.  A saga lives in a slot.  The coordinator thread (the
 * one thread that holds `driver`) owns every plain field of every slot
 * that is live.  Other threads touch only the atomic words at the top of
 * sg_slot_t, and the starter of a saga owns its free slot between popping
 * it and queuing it.  Every atomic access below names its order; the pairs:
 *
 *   F1 (free-list push, release CAS, coordinator) pairs with F2 (pop,
 *      acquire CAS, starter): the starter sees the slot as the coordinator
 *      left it (its context, view counter, timer node all quiescent).
 *   C1 (starter's ctl store of LIVE, release) pairs with C2 (acquire loads
 *      of ctl in abort, redrive, complete): sgen, written before, is the
 *      saga's.
 *   P1 (a request's fetch_or on pend, release) pairs with P2 (the
 *      coordinator's exchange of pend, acquire): what the requester wrote
 *      before (the new saga's fields, cres, abort_reason) is visible to the
 *      coordinator when it handles the bit.
 *   Q1 (inbox push CAS, seq_cst: release + the W pair) pairs with Q2 (the
 *      coordinator's exchange of the inbox head, acquire): qnext links.
 *   A1 (the coordinator's arm CAS on ctl, release) pairs with A2 (the
 *      completer's and heartbeater's acquire on ctl): whatever the
 *      coordinator read of cres and hb before arming a token happens before
 *      a requester of that token writes them again.
 *   V1..V4: the view's sequence lock (see fe__saga_view_begin()).
 *   S1..S4: the same for the published statistics.
 *   O1 (opening, release store of `open`) pairs with O2 (acquire load in
 *      every request): definitions, the free list and replayed slots are
 *      visible to requesters.
 *   D1 (driver release store) pairs with D2 (driver acquire CAS): one
 *      driver's writes to coordinator-private state are visible to the
 *      next (a host may poll from different threads).
 *   W1..W4: the park/wake handshake, seq_cst (Dekker): the coordinator
 *      stores `sleeping` then loads the inbox head; a requester pushes
 *      (RMW) then loads `sleeping`; one of them sees the other.
 */
#ifndef FE_SAGA_IMPL_H
#define FE_SAGA_IMPL_H

#include "internal.h"
#include "sync.h"
#include "timerwheel.h"

#include "finevent/journal.h"
#include "finevent/saga.h"

#include <pthread.h>

#define SG_NIL UINT32_MAX
#define SG_SLOT_BITS 24
#define SG_SLOT_MASK ((UINT64_C(1) << SG_SLOT_BITS) - 1)
#define SG_GEN_MAX ((UINT64_C(1) << 40) - 1)
#define SG_PARK_MAX_NS UINT64_C(1000000000) /* longest sleep when idle */
#define SG_THREAD_BATCH 256u /* invocations per pass on the thread */

/*
 * ctl: one word per slot that every race on a saga is decided on.
 * Bits 24..63: the slot's newest generation (the saga's id generation at
 * start, then the generation of each token armed); generations come from
 * one counter, so they are unique and, per slot, increasing: a ctl value
 * never repeats (no ABA) and a token whose generation is above the slot's
 * was never issued there.  Bits 0..7: flags.
 */
#define CTL_LIVE 0x01u     /* a saga holds the slot */
#define CTL_PENDING 0x02u  /* the token of generation gen awaits a result */
#define CTL_CLAIMED 0x04u  /* a completer took it; its request is on the way */
#define CTL_PNR_STEP 0x08u /* the armed step's DONE passes the point of no
                              return */
#define CTL_PNR 0x10u      /* the point of no return is passed */
#define CTL_ABORTED 0x20u  /* an abort was accepted */
#define CTL_COMP 0x40u     /* compensating */
#define CTL_STUCK 0x80u    /* parked STUCK, not yet redriven */
#define CTL_GEN_SHIFT 24
#define CTL_GEN(v) ((v) >> CTL_GEN_SHIFT)
#define CTL_FLAGS(v) ((v) & ((UINT64_C(1) << CTL_GEN_SHIFT) - 1))

/* pend: requests waiting for the coordinator. */
#define REQ_QUEUED 0x01u /* the slot is on the inbox (or being handled) */
#define REQ_START 0x02u
#define REQ_HEARTBEAT 0x04u
#define REQ_COMPLETE 0x08u
#define REQ_ABORT 0x10u
#define REQ_REDRIVE 0x20u

/* hb: (generation & 0xffffff) << 40 | extension in us (0: the step's). */
#define HB_US_BITS 40
#define HB_US_MAX ((UINT64_C(1) << HB_US_BITS) - 1)

/* Phases and coordinator-side flags of a slot. */
enum { PH_FWD = 0, PH_COMP = 1 };
#define SF_RUNQ 0x01u      /* on the run queue */
#define SF_IN_DOUBT 0x02u  /* replayed: re-run the step with its token */
#define SF_COMP_ANY 0x04u  /* some compensation completed */
#define SF_ABORT_LATER 0x08u /* an abort waits for a claimed completion */
#define SF_CTX_DIRTY 0x10u /* the context changed since the last record */
#define SF_WALL_DL 0x20u   /* replayed: `deadline` is wall-clock ns */

typedef struct sg_slot {
  /* --- shared: atomics only -------------------------------------------- */
  uint64_t ctl;          /* see above: CAS by everyone */
  uint64_t sgen;         /* the saga's id generation: starter writes
                            (under the view lock, before C1); read by
                            abort, redrive and queries */
  uint64_t cres;         /* result | reason << 8: the winning completer
                            writes before P1; coordinator reads after P2 */
  uint64_t hb;           /* heartbeaters write before P1; coordinator
                            exchanges after P2 */
  uint32_t pend;         /* REQ_*: requesters fetch_or (P1), coordinator
                            exchanges (P2) */
  uint32_t qnext;        /* inbox link: pusher writes before Q1 */
  uint32_t fnext;        /* free-list link: coordinator writes before F1,
                            starters read after F2 */
  uint32_t abort_reason; /* the winning aborter writes before P1 */
  /* --- the view, under the sequence lock vseq ------------------------- */
  uint32_t vseq;         /* odd while a writer is inside */
  uint32_t vpad;
  uint64_t vstate;       /* state | step << 8 | wait << 16 | phase << 20 |
                            def << 24 | attempt << 32 */
  uint64_t vaux;         /* reason | transitions << 32 */
  uint64_t vstart;       /* started_ns */
  /* --- coordinator only (the starter sets def before queuing) ---------- */
  fe__tw_node_t timer;   /* timeout or backoff */
  uint64_t deadline;     /* when the timer fires (monotonic ns) */
  uint64_t wait_gen;     /* generation of the armed token, 0 none */
  uint32_t rnext, rprev; /* run queue */
  uint32_t reason;       /* last failure or abort reason */
  uint32_t attempt;      /* of the current action or compensation */
  uint16_t def;
  uint16_t done;         /* steps completed, not compensated */
  uint8_t state;         /* fe_saga_state_t, 0: free */
  uint8_t phase;         /* PH_* */
  uint8_t step;
  uint8_t wait;          /* fe_saga_wait_t */
  uint8_t flags;         /* SF_* */
  uint8_t pad[7];
} sg_slot_t;

typedef struct sg_step {
  char name[FE_SAGA_NAME_MAX];
  fe_saga_action_fn action, compensate;
  uint32_t kind;
  uint32_t flags;      /* FE_SAGA_STEP_* */
  uint64_t timeout_ns;
  fe_retry_policy_t retry;
  void *user;
} sg_step_t;

typedef struct sg_def {
  char name[FE_SAGA_NAME_MAX];
  uint64_t hash;       /* over the name and each step's name and kind */
  uint32_t n_steps;
  int32_t pnr;         /* step whose DONE passes the point of no return;
                          -1: passed from the start */
  uint32_t comp_mask;  /* compensatable steps */
  sg_step_t steps[FE_SAGA_MAX_STEPS];
} sg_def_t;

#define SG_NSTATS (sizeof(fe_saga_stats_t) / sizeof(uint64_t))

struct fe_saga_coord {
  /* Read-only after create (defs and n_defs: after open; salt and keys:
   * may change during replay, before open). */
  fe_saga_config_t cfg;
  uint32_t max;          /* max_sagas */
  uint32_t ctx_stride;   /* ctx_size rounded up to 8 */
  uint32_t hist_n;       /* history entries per saga */
  uint32_t rec_len;      /* largest record: header + ctx_size */
  uint64_t salt;
  uint64_t key[4];       /* token permutation round keys */
  int salt_replayed;     /* a record's salt was adopted */
  uint64_t replay_hw;    /* generations up to here may have been issued
                            before a restart, on any slot (0: none) */
  sg_slot_t *slots;
  uint8_t *ctx;          /* max * ctx_stride */
  uint64_t *hist;        /* max * hist_n */
  sg_def_t *defs;        /* max_defs */
  uint32_t n_defs;
  uint8_t *rec;          /* record buffer, rec_len bytes (coordinator) */
  int logs;              /* records go somewhere: cfg.log or a journal */
  /* Journal (fe_saga_use_journal(), saga_journal.c).  Set before open;
   * then the coordinator's alone. */
  fe_journal_t *journal;
  uint32_t jpin;         /* our pin on it */
  uint32_t jdirty;       /* records appended since the last commit */
  uint64_t *rec_lsn;     /* per slot: lsn of the oldest record replay needs
                            for its saga (the newest carrying the context;
                            with ctx_size 0 the newest), 0: none.  max
                            entries, allocated at create.  Atomic: the
                            starter of a saga writes its slot's (see
                            fe__saga_journal_start), the coordinator the
                            rest and reads them all */
  uint64_t jlast_lsn;    /* newest saga record's lsn (salt, gen_hw) */
  uint64_t jpin_lsn;     /* what the pin holds now */
  uint64_t jpin_at;      /* monotonic ns of its last recomputation */
  fe_saga_bus_map_t busmap; /* fe_saga_bus_stage(): written before the bus
                               starts, read by its workers (saga_bus.c) */
  pthread_mutex_t ctl_mu; /* serialises thread_start / thread_stop */
  pthread_t thread;      /* under ctl_mu */
  int thread_on;         /* under ctl_mu */

  /* Lifecycle words, each read by every request. */
  _Alignas(FE_PAD) uint32_t open;   /* O1/O2 */
  uint32_t driver;                  /* D1/D2: 1 while a poll or the
                                       thread drives */
  uint32_t stop;                    /* thread_stop -> thread */

  /* Shared hot words, one line each. */
  _Alignas(FE_PAD) uint64_t gen;       /* generation counter: fetch_add */
  _Alignas(FE_PAD) uint64_t free_head; /* tag << 32 | slot: F1/F2 */
  _Alignas(FE_PAD) uint32_t inbox;     /* slot stack head: Q1/Q2 */
  _Alignas(FE_PAD) uint32_t sleeping;  /* futex word: W1..W4 */
  /* Counters bumped by requesting threads (relaxed fetch_add). */
  _Alignas(FE_PAD) uint64_t x_late, x_unknown, x_abort_refused,
      x_start_refused;
  /* The bus stage's counters (relaxed fetch_add by its workers). */
  _Alignas(FE_PAD) fe_saga_bus_stats_t bus_st;
  /* Statistics published by the coordinator under sseq (S1/S2). */
  _Alignas(FE_PAD) uint32_t sseq;
  uint64_t pub[SG_NSTATS];

  /* Coordinator only. */
  _Alignas(FE_PAD) fe__tw_t tw;
  uint64_t now;          /* monotonic ns, refreshed per pass and call */
  uint32_t run_head, run_tail;
  uint64_t rng;          /* retry jitter */
  int opened;            /* coordinator's own view of `open` */
  fe_saga_stats_t st;    /* counters (the x_ ones excepted) */
};

/* ---------------------------------------------------------- helpers */

static inline sg_slot_t *sg_slot(fe_saga_coord_t *c, uint32_t i) {
  return &c->slots[i];
}
static inline uint32_t sg_index(const fe_saga_coord_t *c, const sg_slot_t *s) {
  return (uint32_t)(s - c->slots);
}
static inline uint8_t *sg_ctx(fe_saga_coord_t *c, uint32_t i) {
  return c->ctx_stride ? c->ctx + (size_t)i * c->ctx_stride : NULL;
}
static inline uint64_t sg_id(uint64_t gen, uint32_t slot) {
  return gen << SG_SLOT_BITS | slot;
}

/*
 * Release and acquire fences.  ThreadSanitizer does not model fences (gcc
 * refuses them under -fsanitize=thread), so TSan builds use an acq_rel
 * read-modify-write of one shared word instead, which orders at least as
 * much between the threads that use it; every access these fences order
 * is atomic anyway, so TSan has no data race to miss.  (Release stores and
 * acquire loads on every field would also do, but TSan keeps a clock per
 * address so synchronised: eight words per saga times a million sagas is
 * gigabytes of TSan metadata.)
 */
#ifdef FE_TSAN
extern uint32_t fe__saga_fence_word;
static inline void fe__saga_fence(void) {
  __atomic_fetch_add(&fe__saga_fence_word, 0, __ATOMIC_ACQ_REL);
}
#define fe__saga_fence_rel() fe__saga_fence()
#define fe__saga_fence_acq() fe__saga_fence()
#else
#define fe__saga_fence_rel() __atomic_thread_fence(__ATOMIC_RELEASE)
#define fe__saga_fence_acq() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif

/*
 * The view's sequence lock (Boehm's formulation).  The writer - only ever
 * one: the coordinator, or the starter that owns a free slot - makes the
 * counter odd, issues a release fence (V1), stores the fields (relaxed
 * atomics) and makes the counter even with a release store (V2).  A reader
 * loads the counter with acquire (V3, pairs with V2: an even value shows
 * every field of that write), loads the fields (relaxed), issues an
 * acquire fence (V4, pairs with V1: if a field load saw a store made after
 * a writer's V1, the odd count that writer stored before V1 is visible to
 * what follows) and loads the counter again: equal and even means no write
 * overlapped.  On x86-64 both fences are compiler barriers.
 */
static inline void fe__saga_view_begin(sg_slot_t *s) {
  uint32_t q = fe__load_relaxed(&s->vseq); /* writer-owned */
  fe__store_relaxed(&s->vseq, q + 1);
  fe__saga_fence_rel(); /* V1, pairs with V4 */
}
static inline void fe__saga_view_end(sg_slot_t *s) {
  uint32_t q = fe__load_relaxed(&s->vseq);
  fe__store_release(&s->vseq, q + 1); /* V2, pairs with V3 */
}

static inline uint64_t fe__saga_vstate(uint32_t state, uint32_t step,
                                       uint32_t wait, uint32_t phase,
                                       uint32_t def, uint32_t attempt) {
  return (uint64_t)state | (uint64_t)step << 8 | (uint64_t)wait << 16 |
         (uint64_t)phase << 20 | (uint64_t)def << 24 |
         (uint64_t)attempt << 32;
}

/* Token <-> (generation << 24 | slot): a 4-round Feistel permutation keyed
 * by the salt.  saga_token.c. */
uint64_t fe__saga_tok_encode(const fe_saga_coord_t *c, uint64_t plain);
uint64_t fe__saga_tok_decode(const fe_saga_coord_t *c, uint64_t token);
uint64_t fe__saga_tok_decode_keys(const uint64_t key[4], uint64_t token);
void fe__saga_keys(uint64_t salt, uint64_t key[4]);
void fe__saga_set_salt(fe_saga_coord_t *c, uint64_t salt);

/* A salt from getrandom() (the clock if that fails), never 0
 * (saga_token.c). */
uint64_t fe__saga_random_salt(void);

/* Free list and inbox (saga_inbox.c).  Push: the coordinator or a starter
 * giving a slot back; pop: a starter taking one (SG_NIL when none).
 * fe__saga_request() sets request bit req on slot i and queues the slot
 * unless it is queued already, then wakes the coordinator.  Lock-free. */
void fe__saga_free_push(fe_saga_coord_t *c, uint32_t i);
uint32_t fe__saga_free_pop(fe_saga_coord_t *c);
void fe__saga_request(fe_saga_coord_t *c, uint32_t i, uint32_t req);

/* The coordinator (saga_run.c). */
int fe__saga_pass(fe_saga_coord_t *c, uint32_t max_work);
void fe__saga_open(fe_saga_coord_t *c);
void *fe__saga_thread(void *arg);

/* Records (saga_log.c): logs one of saga s's records of `type` (with the
 * result that led to it, for RESULT and END).  Returns 0, or the journal
 * append's error (counted in journal_errors; the record is lost). */
int fe__saga_log(fe_saga_coord_t *c, sg_slot_t *s, uint32_t type,
                 uint32_t result);
/* Builds saga s's record of `type` (slot i) into buf (rec_len bytes):
 * the header and, when the record carries it, the context (*with_ctx).
 * Returns its length.  Reads s's coordinator fields: a starter passes a
 * slot image of its own (fe__saga_journal_start). */
uint32_t fe__saga_rec_build(fe_saga_coord_t *c, sg_slot_t *s, uint32_t i,
                            uint32_t type, uint32_t result, uint8_t *buf,
                            int *with_ctx);
/* fe_saga_replay() of a record at journal lsn `lsn` (0: not from a
 * journal): also keeps rec_lsn and jlast_lsn. */
int fe__saga_replay_at(fe_saga_coord_t *c, const void *rec, uint32_t len,
                       uint64_t lsn);

/* The journal (saga_journal.c).  put: appends the record in c->rec for
 * slot i (ctx: it carries the context, or the coordinator has none);
 * returns 0 or the append's error.  durable: makes every record appended
 * so far durable before a durable step's invocation (see
 * FE_SAGA_STEP_DURABLE); returns 0 or the commit's or sync's error.
 * pass_end: commits what the pass appended and, at most once per
 * SG_PIN_EVERY_NS (or when force), moves the pin.  open: after replay,
 * before anything runs. */
#define SG_PIN_EVERY_NS UINT64_C(1000000000)
int fe__saga_journal_put(fe_saga_coord_t *c, uint32_t i, uint32_t type,
                         int ctx);
int fe__saga_journal_durable(fe_saga_coord_t *c);
/* start: fe_saga_start()'s caller appends the START record of the saga it
 * is starting in slot i (generation gen, definition def), before queuing
 * it; returns 0 or the append's error (nothing appended).  started: the
 * coordinator takes that record over when it takes the saga up. */
int fe__saga_journal_start(fe_saga_coord_t *c, uint32_t i, uint64_t gen,
                           uint16_t def);
void fe__saga_journal_started(fe_saga_coord_t *c, uint32_t i);
void fe__saga_journal_pass_end(fe_saga_coord_t *c, int force);
void fe__saga_journal_open(fe_saga_coord_t *c);

#endif /* FE_SAGA_IMPL_H */
