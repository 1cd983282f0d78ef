/*
 * The bus's private data structures, shared by bus.c (the running bus) and
 * bus_create.c (validation and construction).  Not installed.
 */
#ifndef FE_BUS_IMPL_H
#define FE_BUS_IMPL_H

#include "internal.h"

#include <pthread.h>

/* An event's verdict word: 0 while live; else (stage + 1) << 32, the kind
 * in bits 16..23 (0 reject, 1 dead letter) and the reason in bits 0..15. */
#define FE_VERDICT_DEAD (1ull << 16)
#define FE_VERDICT_KIND_MASK (0xffull << 16)

/* Verdict of a void slot: claimed by a producer that saw stop, published
 * so that sequences stay contiguous, skipped by every stage, not counted. */
#define FE_VERDICT_VOID UINT64_MAX
/* fe_event_t.flags bit of a dead letter's copy in the DLQ: its seq is the
 * event's journal id (redrives and purges are journaled against it). */
#define FE_EVF_DLQ_EID 1u
#define PARK_SAFETY_NS 100000000ull /* longest sleep: bounds a lost wake-up */
#define MAX_SLOT_SIZE (1u << 20)
#define MAX_CAPACITY (1u << 30)

enum { ST_CREATED, ST_RUNNING, ST_STOPPING, ST_STOPPED };

typedef struct stage stage_t;

/* Per-slot durability data, beside the ring (the event layout stays the
 * host's).  Three writers, each with its own fields:
 *   sub_*: the submitting thread, before the publish that releases them
 *          (fe_bus_submit, fe_bus_redrive, recovery); valid only while
 *          sub_seq equals the event's seq (a raw fe_bus_publish does not
 *          write them, so stale values are recognised);
 *   eid, lsn: the journaller, before its progress is released (C2) to the
 *          stages gated on it;
 *   dl_*:  the stage that dead-letters the event, read by the outcome stage
 *          downstream of it (C2 again). */
/* 128 bytes, two lines (the array comes from mmap: page aligned).  The
 * first holds what the journaller and the outcome stage touch for every
 * event; the key (set only by fe_bus_submit with cfg.idem) and the dead
 * letter's details are on the second, so an event without a key costs
 * one line here. */
typedef struct slot_meta {
  /* -- first line -- */
  uint64_t sub_seq;
  uint64_t sub_token;      /* idempotency claim, 0: none */
  uint64_t sub_redrive_of; /* eid of the dead letter redriven, 0: none */
  uint64_t eid;            /* journal event id, 0: not journaled */
  uint64_t lsn;            /* journal record that holds the event */
  uint32_t sub_flags;      /* META_* */
  uint32_t dl_attempts;
  uint32_t dl_kind, dl_redrives;
  /* -- the key starts the second line's bytes (it straddles) -- */
  fe_idem_key_t sub_key;
  uint64_t sub_fp;
  char dl_text[48];
} slot_meta_t;
_Static_assert(sizeof(slot_meta_t) == 128, "two lines per slot");
_Static_assert(offsetof(slot_meta_t, dl_kind) + 8 <= 64,
               "the per-event fields share the first line");

#define META_KEY 1u       /* sub_key and sub_fp are set */
#define META_RECOVERED 2u /* re-driven by recovery: already journaled */
#define META_SENT 4u      /* recovery found it sent: fe_bus_intent refuses */

typedef struct durable durable_t; /* lib/durable.c */

/* One shard of a stage (or the bus's internal end-of-graph accountant).
 * Written by the worker that owns it; `seq` is read by downstream
 * consumers and producers, the counters by fe_bus_stats(). */
typedef struct consumer {
  uint64_t seq; /* events finished (C2); alone on its line (see below) */
  char pad0[FE_PAD - sizeof(uint64_t)];
  /* read-mostly after create */
  stage_t *stage;          /* NULL: the end accountant */
  fe_bus_t *bus;
  const uint64_t **gates;  /* upstream seqs; NULL: the producers */
  uint32_t n_gates;
  uint32_t shard, worker;
  int counts_outcome;      /* counts completed/rejected per event */
  uint64_t ancestors;      /* stage bit set: a reject by these skips us */
  uint64_t wake_mask;      /* workers gated on this consumer */
  int wakes_space;         /* producers/drain are gated on this consumer */
  /* owner-only */
  uint64_t cached_gate;
  /* owner-only: an event paused by FE_RETRY (progress stops before it) */
  int retry_pending;
  uint32_t retry_attempt; /* handler calls made so far for it */
  uint64_t retry_seq, retry_at;
  uint64_t rng;           /* xorshift state for retry jitter */
  /* counters: owner writes (fe__add_owned), anyone reads */
  uint64_t handled, rejected, skipped, batches, completed_out, rejected_out;
  uint64_t filtered, retried, failed, dead_out;
  uint64_t reasons[FE_REASON_MAX + 1];
} __attribute__((aligned(FE_PAD))) consumer_t;

struct stage {
  char name[FE_BUS_MAX_NAME];
  uint32_t id;
  fe_stage_fn fn;           /* one of fn and batch_fn */
  fe_stage_batch_fn batch_fn;
  void *user;
  fe_key_fn key;
  void *key_user;
  uint32_t n_shards;
  uint32_t n_deps;
  uint32_t deps[FE_BUS_MAX_DEPS];
  uint64_t ancestors;
  int has_downstream;
  consumer_t **shards;
  /* type filter: all_types, or types < 64 in type_mask plus a short list */
  int all_types;
  uint64_t type_mask;
  uint32_t n_big_types;
  uint32_t big_types[FE_STAGE_MAX_TYPES];
  fe_retry_policy_t retry;
  uint32_t parallel_to_journal;
};

typedef struct worker {
  uint32_t futex; /* bumped by wakers; the parked worker sleeps on it */
  char pad0[FE_PAD - sizeof(uint32_t)];
  fe_bus_t *bus;
  consumer_t **list; /* in topological order */
  uint32_t n;
  uint32_t index;
  int cpu;
  pthread_t thread;
  int started;
} __attribute__((aligned(FE_PAD))) worker_t;

struct fe_bus {
  /* read-mostly after create */
  uint8_t *slots;
  uint64_t *avail; /* multi-producer: slot -> published seq + 1 */
  uint64_t mask;
  uint32_t capacity, slot_size, max_batch, spin_tries, yield_tries;
  fe_producer_t producer;
  fe_wait_t wait;
  int host_driven, asym;
  fe_trading_t *trading;
  fe_throttle_t *throttle;
  fe_idem_t *idem;
  void (*on_outcome)(const fe_event_t *ev, fe_idem_outcome_t *out,
                     void *user);
  void *outcome_user;
  durable_t *dur;     /* journal, recovery state; NULL: none */
  slot_meta_t *meta;  /* capacity entries when idem or journal; else NULL */
  uint32_t journal_stage, outcome_stage; /* internal stage ids, or
                                            UINT32_MAX */
  fe_dlq_t *dlq;
  fe_dead_letter_fn on_dead_letter;
  struct fe_audit *audit; /* cfg.audit */
  void *dead_letter_user;
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
  uint64_t root_wake_mask; /* workers gated on the producers */
  consumer_t **ends;       /* the producers are gated on these */
  uint32_t n_ends;
  stage_t *stages;
  uint32_t n_stages;
  consumer_t **consumers; /* every consumer, for stats and freeing */
  uint32_t n_consumers;
  worker_t *workers;
  uint32_t n_workers;
  char pad0[FE_PAD];

  /* Producer side.  cursor: single-producer, the published count (P1);
   * multi-producer, the claimed count (CAS).  Read by root consumers in
   * single-producer mode and by drain/stop. */
  uint64_t cursor;
  char pad1[FE_PAD - sizeof(uint64_t)];
  /* Single-producer private: claimed count and cached gate.  `claimed` is
   * atomic only because drain/stop read it. */
  uint64_t claimed;
  uint64_t sp_gate;
  char pad2[FE_PAD - 2 * sizeof(uint64_t)];
  uint64_t mp_gate; /* multi-producer gate cache (G1/G2) */
  char pad3[FE_PAD - sizeof(uint64_t)];

  /* Control, read on every claim/publish, written rarely. */
  uint32_t state;
  uint32_t space_waiters; /* threads sleeping until the end seqs move */
  uint64_t parked_mask;   /* bit w: worker w is parked or about to be */
  uint64_t stop_target;   /* UINT64_MAX until stop: workers finish this */
  int abort_workers;      /* failed start: exit without draining */
  char pad4[FE_PAD - 4 * sizeof(uint64_t)];
  uint32_t space_futex;
  char pad5[FE_PAD - sizeof(uint32_t)];

  /* Slow-path counters (atomic read-modify-write, off the hot path). */
  uint64_t full, voided, parks, wakeups, lost_wakeups, throttled, halted,
      duplicates;
};

/* Frees a bus built (even partly) by fe_bus_create. */
void fe__bus_free(fe_bus_t *bus);

/* lib/durable.c.  The internal stages' batch handlers (user: the bus). */
void fe__journal_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *bus);
void fe__outcome_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *bus);
/* Opens cfg->journal and replays it into a new durable_t (idempotency
 * entries restored, dead letters and unfinished events collected, in-doubt
 * events resolved).  Called by fe_bus_create once the bus is built. */
int fe__durable_open(fe_bus_t *bus, const fe_bus_config_t *cfg,
                     fe_diag_t *diag);
/* Puts the collected dead letters into the DLQ and re-drives the
 * unfinished events; called by fe_bus_start once workers run. */
int fe__durable_start(fe_bus_t *bus, fe_diag_t *diag);
void fe__durable_free(durable_t *d);
/* Detaches the bus from its DLQ's purge hook (fe__bus_free, first). */
void fe__durable_detach(fe_bus_t *bus);
/* 1 once the journal could not be written (sticky). */
int fe__durable_failed(const fe_bus_t *bus);
/* Publishing helpers shared with durable.c (lib/bus.c). */
int fe__claim_wait(fe_bus_t *bus, uint64_t *seq, uint64_t timeout_ns);
void fe__publish_one(fe_bus_t *bus, uint64_t seq);
static inline fe_event_t *fe__slot(const fe_bus_t *bus, uint64_t seq) {
  return (fe_event_t *)(bus->slots + (seq & bus->mask) * bus->slot_size);
}
static inline slot_meta_t *fe__meta(const fe_bus_t *bus, uint64_t seq) {
  return &bus->meta[seq & bus->mask];
}
/* Sets the submitter's fields of slot seq before its publish: the claim of
 * `from` (sub_token, sub_key, sub_fp, sub_flags; NULL: none) and the dead
 * letter it redrives (0: none). */
static inline void fe__meta_submit(slot_meta_t *m, uint64_t seq,
                                   const slot_meta_t *from,
                                   uint64_t redrive_of) {
  m->sub_seq = seq;
  m->sub_token = from ? from->sub_token : 0;
  m->sub_flags = from ? from->sub_flags : 0;
  if (from != NULL && (from->sub_flags & META_KEY)) {
    m->sub_key = from->sub_key;
    m->sub_fp = from->sub_fp;
  }
  m->sub_redrive_of = redrive_of;
}

#endif /* FE_BUS_IMPL_H */
