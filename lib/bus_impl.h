/*
 * The bus's private data structures, shared by bus.c (the running bus) and
 * bus_create.c (validation and construction).  Not installed.
 */
#ifndef FE_BUS_IMPL_H
#define FE_BUS_IMPL_H

#include "durable.h"
#include "ring.h"

#include <pthread.h>

#define MAX_SLOT_SIZE (1u << 20)
#define MAX_CAPACITY (1u << 30)

typedef struct stage stage_t;

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
  uint32_t index;          /* in its worker's list */
  uint64_t up_local;       /* list indices of its upstream consumers on the
                              same worker (the group pass, worker_t) */
  /* owner-only: an event paused by FE_RETRY (progress stops before it) */
  int retry_pending;
  uint32_t retry_attempt; /* handler calls made so far for it */
  uint64_t retry_seq, retry_at;
  uint64_t rng;           /* xorshift state for retry jitter */
  fe_stage_ctx_t ctx;     /* handed to the handler; only end_of_batch
                             and the verdict's outputs change per call */
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
  uint32_t fuse;            /* fe_stage_def_t.fuse */
};

#define FUSE_MAX 8 /* consumers a fused worker may have (bus.h: 2 to 8) */

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
  /* The group pass (bus.c, group_pass()): while every consumer of the
   * worker stands at the same sequence with no retry paused, the worker
   * reads its gates once per pass and runs each consumer over the same
   * batch, then publishes their sequences.  Owner-only after create. */
  int group;                 /* the group pass applies: at most 64
                                consumers, and no gate on another worker
                                waits for one of them (build_group) */
  int aligned;               /* all consumers at one seq, none paused */
  int fused;                 /* the group pass starts with the fused pass
                                (worker.c): 2..FUSE_MAX consumers, each a handler
                                stage with fuse set, one shard, every type,
                                and no audit trail (build_groups); off
                                per pass while a timing hook is set */
  int root;                  /* a consumer is gated on the producers */
  uint32_t n_ext;
  const uint64_t **ext;      /* gates on other workers' consumers */
  uint64_t cached_gate;      /* a lower bound of the group's gate */
  uint32_t trail;            /* fe__catchup_due()'s state */
  uint64_t catchups;         /* catch-up pauses taken (owner adds) */
} __attribute__((aligned(FE_PAD))) worker_t;

struct fe_bus {
  fe_ring_t ring; /* first: its hot lines are padded from the rest */
  /* read-mostly after create */
  uint32_t max_batch;
  uint32_t catchup_pauses; /* cfg.catchup_pauses */
  int host_driven;
  fe_trading_t *trading;
  fe_throttle_t *throttle;
  fe_idem_t *idem;
  fe_durable_env_t env; /* the internal stages' view: idem, dlq, outcome
                           hook, journal state (env.dur; NULL: none) */
  uint32_t journal_stage, outcome_stage; /* internal stage ids, or
                                            UINT32_MAX */
  fe_dlq_t *dlq;
  fe_dead_letter_fn on_dead_letter;
  struct fe_audit *audit; /* cfg.audit */
  fe_stage_timing_fn on_timing; /* fe_bus_on_stage_timing; NULL: none */
  void *timing_user;
  void *dead_letter_user;
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
  consumer_t **ends;       /* the producers are gated on these */
  uint32_t n_ends;
  stage_t *stages;
  uint32_t n_stages;
  consumer_t **consumers; /* every consumer, for stats and freeing */
  uint32_t n_consumers;
  worker_t *workers;
  uint32_t n_workers;
  char pad0[FE_PAD];
  /* Slow-path counters (atomic read-modify-write, off the hot path). */
  uint64_t throttled, halted, duplicates;
};

_Static_assert(offsetof(struct fe_bus, ring) == 0, "fe__bus_of");
/* The bus whose ring r is (ring callbacks get the ring). */
static inline fe_bus_t *fe__bus_of(fe_ring_t *r) { return (fe_bus_t *)r; }

/* The redrive count an event carries (fe_bus_redrive), in the private
 * flags word: bits 16..31. */
#define FLAGS_REDRIVE_SHIFT 16

/* Frees a bus built (even partly) by fe_bus_create. */
void fe__bus_free(fe_bus_t *bus);

/* lib/worker.c: the consumers and the worker threads. */
/* One pass of worker w; returns how many sequences its consumers took. */
uint32_t fe__worker_poll(fe_bus_t *bus, worker_t *w);

/* The catch-up rule of the worker threads (fe_bus_config_t.catchup_pauses),
 * fed with what each poll found (got events; full: max_batch): 1 when the
 * worker should pause before its next poll.  A short batch right after a
 * poll that found work means the worker is chasing its upstream, reading
 * the cursor line the producer is writing; a short batch right after a
 * pause means the upstream is slow, and pausing again would only delay its
 * next event (at 1 M ev/s a 1 us pause before every poll would make every
 * event wait for it).  *trail: 0 after an empty poll, 1 after one that
 * found work, 2 after a pause. */
static inline int fe__catchup_due(uint32_t *trail, uint32_t got,
                                  uint32_t full) {
  if (got == 0) {
    *trail = 0;
    return 0;
  }
  int due = *trail == 1 && got < full;
  *trail = due ? 2 : 1;
  return due;
}
/* Stopping and every consumer of w reached the stop target. */
int fe__worker_done(const fe_bus_t *bus, const worker_t *w);
/* A worker thread's body (arg: its worker_t). */
void *fe__worker_main(void *arg);

#endif /* FE_BUS_IMPL_H */
