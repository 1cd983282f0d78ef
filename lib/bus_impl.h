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
#define PARK_SAFETY_NS 100000000ull /* longest sleep: bounds a lost wake-up */
#define MAX_SLOT_SIZE (1u << 20)
#define MAX_CAPACITY (1u << 30)

enum { ST_CREATED, ST_RUNNING, ST_STOPPING, ST_STOPPED };

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
  fe_dlq_t *dlq;
  fe_dead_letter_fn on_dead_letter;
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
  uint64_t full, voided, parks, wakeups, lost_wakeups, throttled, halted;
};

/* Frees a bus built (even partly) by fe_bus_create. */
void fe__bus_free(fe_bus_t *bus);

#endif /* FE_BUS_IMPL_H */
