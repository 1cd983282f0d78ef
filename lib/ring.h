/*
 * The ring: pre-allocated event slots, the producers' sequencer (claim,
 * publish), the gates producers wait on, per-slot durability data, and the
 * wait lot that publishers and parked workers share.  Internal.
 *
 * It is the bottom layer of the bus and knows nothing of stages: the
 * workers (worker.c), the submit path (submit.c), durability (durable.c)
 * and the bus's public calls (bus.c) use it through this header only.
 *
 * Sequences are counts, not indices: a consumer's `seq` is the number of
 * events it has finished, so it may process sequence s when s < its gate
 * (the minimum `seq` of its upstream consumers, or the producers' published
 * count).  Slot of sequence s: s & mask.  A producer may claim s when
 * s < min(end seq) + capacity, the ends being the consumers the producers
 * are gated on (fe_ring_t.ends).
 *
 * Memory-order pairs used here and by the workers (DPDK style labels):
 *   P1 (producer publish, release)   pairs with C1 (consumer gate, acquire):
 *      the slot contents written before publish are visible to the stage.
 *   C2 (consumer batch end, release) pairs with C1 of downstream consumers
 *      and with P2 (producer gate, acquire): a stage's reads and writes of a
 *      slot happen before the next stage reads it, and before a producer
 *      overwrites it on wrap-around.
 *   G1 (gate cache, release) pairs with G2 (gate cache, acquire): in
 *      multi-producer mode a producer may rely on another producer's reading
 *      of the end sequences (P2) without reading them itself.
 * The park/wake and stop protocols are store-load (Dekker) patterns ordered
 * with the asymmetric fence of sync.h: see fe__ring_wake_workers(),
 * fe__ring_stop() and the workers' park.
 */
#ifndef FE_RING_H
#define FE_RING_H

#include "internal.h"
#include "sync.h"

#include <finevent/bus.h>

#define PARK_SAFETY_NS 100000000ull /* longest sleep: bounds a lost wake-up */

enum { ST_CREATED, ST_RUNNING, ST_STOPPING, ST_STOPPED };

/* Per-slot durability data, beside the ring (the event layout stays the
 * host's).  Three writers, each with its own fields:
 *   sub_*: the submitting thread, before the publish that releases them
 *          (fe_bus_submit, fe_bus_redrive, recovery); valid only while
 *          sub_seq equals the event's seq (a raw fe_bus_publish does not
 *          write them, so stale values are recognised);
 *   eid, lsn: the journaller, before its progress is released (C2) to the
 *          stages gated on it;
 *   dl_*:  the stage that dead-letters the event, read by the outcome stage
 *          downstream of it (C2 again).
 * 128 bytes, two lines (the array comes from mmap: page aligned).  The
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

typedef struct fe_ring {
  /* First, at the bus's address: what the public header's inline claim and
   * publish read (fe_bus_priv_fast_t, bus.h), on three lines:
   *   read-mostly: slots, mask, root_wake_mask, capacity, slot_size,
   *     prefetch_off, producer, wait (set at create), asym (create; cleared
   *     if membarrier ever fails), state (start, stop);
   *   cursor: single producer, the published count (P1), read by the root
   *     consumers and by drain/stop; multi producer, the claimed count (CAS);
   *   claimed, sp_gate: single-producer private claimed count and cached
   *     gate (claimed is atomic only because drain/stop read it);
   *   parked_mask: bit w, worker w is parked or about to be (the workers
   *     set and clear theirs; publishers in park mode read it). */
  fe_bus_priv_fast_t pub;

  /* Read-mostly after create. */
  uint64_t *avail;     /* multi-producer: slot -> published seq + 1 */
  slot_meta_t *meta;   /* capacity entries when idem or journal; else NULL */
  uint32_t spin_tries, yield_tries;
  const uint64_t **ends; /* the producers are gated on these sequences */
  uint32_t n_ends;
  uint32_t n_workers;
  uint32_t *futex[FE_BUS_MAX_WORKERS]; /* each worker's park word */
  char pad0[FE_PAD];

  uint64_t mp_gate; /* multi-producer gate cache (G1/G2) */
  char pad3[FE_PAD - sizeof(uint64_t)];

  /* Control, read on idle polls and by publishers in park mode, written
   * rarely. */
  uint32_t space_waiters; /* threads sleeping until the end seqs move */
  int abort_workers;      /* failed start: exit without draining */
  uint64_t stop_target;   /* UINT64_MAX until stop: workers finish this */
  char pad4[FE_PAD - 2 * sizeof(uint64_t)];
  uint32_t space_futex;
  char pad5[FE_PAD - sizeof(uint32_t)];

  /* Slow-path counters (atomic read-modify-write, off the hot path). */
  uint64_t full, voided, parks, wakeups, lost_wakeups;
} fe_ring_t;
_Static_assert(offsetof(fe_ring_t, pub) == 0 &&
                   offsetof(fe_bus_priv_fast_t, cursor) == FE_PAD &&
                   offsetof(fe_bus_priv_fast_t, claimed) == 2 * FE_PAD &&
                   offsetof(fe_bus_priv_fast_t, parked_mask) == 3 * FE_PAD &&
                   sizeof(fe_bus_priv_fast_t) == 4 * FE_PAD,
               "the inline paths' lines (bus.h) are the ring's");
_Static_assert(ST_STOPPING == FE_BUS_PRIV_STOPPING, "bus.h knows the stop state");

/* Maps the slots (and, for multi-producer, the availability array; with
 * `meta`, the slot metadata), pre-faulted, and sets the read-mostly
 * fields from the arguments.  FE_ENOMEM on failure (fe__ring_free cleans
 * up). */
int fe__ring_alloc(fe_ring_t *r, uint32_t capacity, uint32_t slot_size,
                   fe_producer_t producer, int meta);
/* Adds the slot metadata to a ring allocated without. */
int fe__ring_alloc_meta(fe_ring_t *r);
void fe__ring_free(fe_ring_t *r);

static inline fe_event_t *fe__ring_slot(const fe_ring_t *r, uint64_t seq) {
  return (fe_event_t *)(r->pub.slots + (seq & r->pub.mask) * r->pub.slot_size);
}
static inline slot_meta_t *fe__ring_meta(const fe_ring_t *r, uint64_t seq) {
  return &r->meta[seq & r->pub.mask];
}
static inline uint32_t fe__ring_user_size(const fe_ring_t *r) {
  return r->pub.slot_size - (uint32_t)sizeof(fe_event_t);
}
static inline int fe__ring_stopping(const fe_ring_t *r) {
  return fe__load_relaxed(&r->pub.state) >= ST_STOPPING;
}

/* The least of n sequences (C1 / P2: each an acquire load). */
static inline uint64_t fe__ring_min(const uint64_t *const *seqs, uint32_t n) {
  uint64_t m = UINT64_MAX;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t v = fe__load_acquire(seqs[i]); /* C1 / P2 */
    if (v < m)
      m = v;
  }
  return m;
}
/* How far every end consumer got (P2, pairs with their C2). */
static inline uint64_t fe__ring_end(const fe_ring_t *r) {
  return fe__ring_min(r->ends, r->n_ends);
}
/* Events claimed so far (published, being filled, or voided). */
static inline uint64_t fe__ring_claimed(const fe_ring_t *r) {
  return r->pub.producer == FE_PRODUCER_SINGLE
             ? fe__load_relaxed(&r->pub.claimed)
             : fe__load_relaxed(&r->pub.cursor);
}
/* How far a consumer gated on the producers may go from next (C1). */
static inline uint64_t fe__ring_published(const fe_ring_t *r, uint64_t next,
                                          uint32_t max) {
  if (r->pub.producer == FE_PRODUCER_SINGLE)
    return fe__load_acquire(&r->pub.cursor); /* C1, pairs with P1 */
  /* Multi-producer: the longest run of published slots from next.  Each
   * acquire pairs with that slot's P1; no need to read the contended claim
   * cursor at all. */
  uint64_t s = next, limit = next + max;
  while (s < limit && fe__load_acquire(&r->avail[s & r->pub.mask]) == s + 1)
    s++;
  return s;
}

/* Wakes the parked workers among `mask` (park mode).  Publisher side of
 * the park protocol: the caller's sequence store is ordered before the
 * read of parked_mask by fe__asym_light; the parker runs fe__asym_heavy
 * between setting its bit and re-reading the sequences. */
void fe__ring_wake_workers(fe_ring_t *r, uint64_t mask);
/* Wakes producers (and drain) sleeping for space, if any. */
void fe__ring_wake_space(fe_ring_t *r);
/* Wakes every worker and every sleeper, unconditionally (stop, abort). */
void fe__ring_wake_all(fe_ring_t *r);
/* Waits for the end sequences to move, by the wait strategy (iter counts
 * the caller's attempts).  Returns FE_ETIMEDOUT once the deadline passed,
 * else 0 (re-check the condition). */
int fe__ring_wait_space(fe_ring_t *r, uint32_t *iter, uint64_t deadline,
                        int (*ready)(fe_ring_t *, uint64_t), uint64_t arg);

/* Publishes [first, first + n) (P1) and, in park mode, wakes the workers
 * gated on the producers.  Single producer: publishes everything claimed
 * below first + n, so claims must be published in order. */
static inline __attribute__((always_inline)) void
fe__ring_publish(fe_ring_t *r, uint64_t first, uint32_t n) {
  if (r->pub.producer == FE_PRODUCER_SINGLE) {
    fe__store_release(&r->pub.cursor, first + n); /* P1 */
  } else {
    for (uint32_t i = 0; i < n; i++) {
      uint64_t s = first + i;
      fe__store_release(&r->avail[s & r->pub.mask], s + 1); /* P1 */
    }
  }
  if (r->pub.wait == FE_WAIT_PARK)
    fe__ring_wake_workers(r, r->pub.root_wake_mask);
}

/* A claim that raced with stop and lost: publishes [first, first + n) as
 * void events every stage steps over.  Returns FE_ESTOPPED. */
int fe__ring_void_claim(fe_ring_t *r, uint64_t first, uint32_t n);

/* The producer asks for the slot FE_RING_PREFETCH ahead of the one it
 * claims, for writing (prefetchw): the slot's line was last written by the
 * consumers a lap ago and is in another core's cache or in memory, and a
 * store that misses holds a store-buffer entry until the line arrives.
 * With ~10 stores per event the buffer fills after a few events and the
 * producer stalls on every line in turn; a prefetch overlaps the transfers
 * without holding an entry.  fe_ring_t.pub.prefetch_off is that distance in
 * bytes, or 0 in a ring of fewer than 4 * FE_RING_PREFETCH slots, where
 * the slot ahead may still be in a stage's hands.  Past the ring's end the
 * address is not a slot: x86 prefetches never fault, and the few wasted
 * ones per lap cost nothing.  Measured on the 2-vCPU EPYC VM
 * (bus_1p1c_single, medians of 6-7 alternated runs): 8 slots 209, 16
 * 229-257, 32 251-255, 64 262 M ev/s; 32 it is. */
#define FE_RING_PREFETCH 32
/* A single producer takes n sequences from *s on: 0, or FE_EFULL when the
 * ends (read only when the cached gate says full, P2) leave no room. */
static inline __attribute__((always_inline)) int
fe__ring_sp_take(fe_ring_t *r, uint32_t n, uint64_t *s) {
  uint64_t c = fe__load_relaxed(&r->pub.claimed);
  if (FE_UNLIKELY(c + n - r->pub.sp_gate > r->pub.capacity)) {
    r->pub.sp_gate = fe__ring_end(r); /* P2 */
    if (c + n - r->pub.sp_gate > r->pub.capacity)
      return FE_EFULL;
  }
  fe__store_relaxed(&r->pub.claimed, c + n);
  *s = c;
  return 0;
}

/* One claim attempt of n slots: 0 with *first, FE_EFULL (not counted),
 * FE_ESTOPPED.  Inlined into the public claims, so that the common case
 * (room by the cached gate) is one straight run of code: the per-event
 * publish is the path a broker at ordinary load takes for every order. */
static inline __attribute__((always_inline)) int
fe__ring_claim_n(fe_ring_t *r, uint32_t n, uint64_t *first) {
  if (FE_UNLIKELY(fe__ring_stopping(r)))
    return FE_ESTOPPED;
  uint64_t cap = r->pub.capacity, s;
  if (r->pub.producer == FE_PRODUCER_SINGLE) {
    if (fe__ring_sp_take(r, n, &s) != 0)
      return FE_EFULL;
  } else {
    s = fe__load_relaxed(&r->pub.cursor);
    do {
      uint64_t gate = fe__load_acquire(&r->mp_gate); /* G2 */
      if (s + n - gate > cap) {
        gate = fe__ring_end(r); /* P2 */
        fe__store_release(&r->mp_gate, gate); /* G1; a stale overwrite
                                                 only lowers the cache */
        if (s + n - gate > cap)
          return FE_EFULL;
      }
    } while (!__atomic_compare_exchange_n(&r->pub.cursor, &s, s + n, 1,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  }
  /* Stop protocol, light side: the claim store above is ordered before
   * this state load; fe__ring_stop() sets the state, runs the heavy side
   * and then reads the claimed count.  So either stop waits for this
   * claim, or we see the stop and void the claim (never both missed). */
  fe__asym_light(&r->pub.asym);
  if (FE_UNLIKELY(fe__ring_stopping(r)))
    return fe__ring_void_claim(r, s, n);
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *e = fe__ring_slot(r, s + i);
    fe_bus_priv_prefetch_w((const char *)e + r->pub.prefetch_off);
    fe_bus_priv_reset(e, s + i);
  }
  *first = s;
  return 0;
}

/* Claims n slots, waiting by the wait strategy for space up to timeout_ns
 * (0: one attempt).  0, FE_ETIMEDOUT, FE_ESTOPPED. */
int fe__ring_claim_wait(fe_ring_t *r, uint32_t n, uint64_t *first,
                        uint64_t timeout_ns);

/* Stop, heavy side: sets ST_STOPPING, fences every thread (claims not
 * counted by the return value will see the state and void themselves) and
 * returns the claimed count, which becomes the stop target. */
uint64_t fe__ring_stop(fe_ring_t *r);

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

#endif /* FE_RING_H */
