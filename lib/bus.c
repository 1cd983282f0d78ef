/*
 * The event bus: ring, sequencers, stage graph, workers.
 *
 * Sequences are counts, not indices: a consumer's `seq` is the number of
 * events it has finished, so it may process sequence s when s < the gate
 * (the minimum `seq` of its upstream consumers, or the producers' published
 * count).  Slot of sequence s: s & mask.  A producer may claim s when
 * s < min(end seq) + capacity.
 *
 * Memory-order pairs used below (DPDK style labels):
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
 * with the asymmetric fence of sync.h; see park_worker() and fe_bus_stop().
 */
#define _GNU_SOURCE
#include "bus_impl.h"
#include "sync.h"

#include <ck_pr.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FE_PREFETCH 32 /* slots ahead */

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---------------------------------------------------------------- helpers */

static inline fe_event_t *slot(const fe_bus_t *bus, uint64_t seq) {
  return (fe_event_t *)(bus->slots + (seq & bus->mask) * bus->slot_size);
}

static uint64_t min_seq(const uint64_t *const *gates, uint32_t n) {
  uint64_t m = UINT64_MAX;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t v = fe__load_acquire(gates[i]); /* C1 / P2 */
    if (v < m)
      m = v;
  }
  return m;
}

static uint64_t end_seq(const fe_bus_t *bus) {
  uint64_t m = UINT64_MAX;
  for (uint32_t i = 0; i < bus->n_ends; i++) {
    uint64_t v = fe__load_acquire(&bus->ends[i]->seq); /* P2, pairs with C2 */
    if (v < m)
      m = v;
  }
  return m;
}

/* Events claimed so far (published, being filled, or voided). */
static uint64_t claimed_count(const fe_bus_t *bus) {
  return bus->producer == FE_PRODUCER_SINGLE ? fe__load_relaxed(&bus->claimed)
                                             : fe__load_relaxed(&bus->cursor);
}

static void wake_workers(fe_bus_t *bus, uint64_t mask) {
  /* Publisher side of the park protocol: our sequence store is ordered
   * before this load by fe__asym_light (the parker runs fe__asym_heavy
   * between setting its bit and re-reading the sequences). */
  fe__asym_light(bus->asym);
  uint64_t parked = fe__load_relaxed(&bus->parked_mask) & mask;
  while (FE_UNLIKELY(parked != 0)) {
    worker_t *w = &bus->workers[__builtin_ctzll(parked)];
    parked &= parked - 1;
    __atomic_fetch_add(&w->futex, 1, __ATOMIC_RELEASE);
    fe__futex_wake(&w->futex, 1);
    __atomic_fetch_add(&bus->wakeups, 1, __ATOMIC_RELAXED);
  }
}

static void wake_space(fe_bus_t *bus) {
  fe__asym_light(bus->asym);
  if (FE_UNLIKELY(fe__load_relaxed(&bus->space_waiters) != 0)) {
    __atomic_fetch_add(&bus->space_futex, 1, __ATOMIC_RELEASE);
    fe__futex_wake(&bus->space_futex, -1);
    __atomic_fetch_add(&bus->wakeups, 1, __ATOMIC_RELAXED);
  }
}

static void wake_all(fe_bus_t *bus) {
  for (uint32_t i = 0; i < bus->n_workers; i++) {
    __atomic_fetch_add(&bus->workers[i].futex, 1, __ATOMIC_SEQ_CST);
    fe__futex_wake(&bus->workers[i].futex, 1);
  }
  __atomic_fetch_add(&bus->space_futex, 1, __ATOMIC_SEQ_CST);
  fe__futex_wake(&bus->space_futex, -1);
}

/* ------------------------------------------------------------- consumers */

/* How far c may go, reading its gates (C1). */
static uint64_t gate_of(const fe_bus_t *bus, const consumer_t *c,
                        uint64_t next) {
  if (c->gates != NULL)
    return min_seq(c->gates, c->n_gates);
  if (bus->producer == FE_PRODUCER_SINGLE)
    return fe__load_acquire(&bus->cursor); /* C1, pairs with P1 */
  /* Multi-producer: the longest run of published slots from next.  Each
   * acquire pairs with that slot's P1; no need to read the contended claim
   * cursor at all. */
  uint64_t s = next, limit = next + bus->max_batch;
  while (s < limit && fe__load_acquire(&bus->avail[s & bus->mask]) == s + 1)
    s++;
  return s;
}

static __attribute__((noinline)) uint32_t shard_of(const stage_t *st,
                                                  const fe_event_t *ev) {
  uint64_t k = st->key ? st->key(ev, st->key_user) : ev->order.account;
  uint64_t h = XXH3_64bits(&k, sizeof k);
  /* Multiply-shift range reduction: uniform, no division. */
  return (uint32_t)(((h >> 32) * st->n_shards) >> 32);
}

/* What consumer c does with the event in a slot. */
enum { EV_HANDLE, EV_SKIP, EV_IGNORE, EV_FILTERED };

static int type_selected(const stage_t *st, uint32_t type) {
  if (type < 64)
    return (st->type_mask >> type) & 1;
  for (uint32_t i = 0; i < st->n_big_types; i++)
    if (st->big_types[i] == type)
      return 1;
  return 0;
}

/* verdict == 0 is the fast path (live, nobody rejected it).  Relaxed is
 * enough: a verdict by an ancestor happens-before this read through the
 * C2/C1 chain, so coherence shows it; one by a parallel stage may or may
 * not be seen and is ignored by the ancestor test. */
static inline __attribute__((always_inline)) int
classify(const consumer_t *c, const stage_t *st, const fe_event_t *ev,
         int sharded) {
  uint64_t v = fe__load_relaxed(&ev->verdict);
  if (FE_UNLIKELY(v == FE_VERDICT_VOID))
    return EV_IGNORE;
  if (sharded && shard_of(st, ev) != c->shard)
    return EV_IGNORE;
  if (FE_UNLIKELY(v != 0) && ((c->ancestors >> ((v >> 32) - 1)) & 1))
    return EV_SKIP;
  if (FE_UNLIKELY(!st->all_types) && !type_selected(st, ev->type))
    return EV_FILTERED;
  return EV_HANDLE;
}

/* Sets ev's verdict for c's stage (kind: 0 reject, FE_VERDICT_DEAD) and
 * counts the reason. */
static void mark(consumer_t *c, fe_event_t *ev, uint64_t kind, uint32_t reason) {
  uint32_t r = reason <= FE_REASON_MAX ? reason : 0;
  uint64_t expect = 0, v = ((uint64_t)(c->stage->id + 1) << 32) | kind | r;
  /* First verdict wins; relaxed: the value travels to later stages with
   * the slot (C2/C1). */
  __atomic_compare_exchange_n(&ev->verdict, &expect, v, 0, __ATOMIC_RELAXED,
                              __ATOMIC_RELAXED);
  if (kind == 0)
    fe__add_owned(&c->reasons[r], 1);
  if (c->bus->audit != NULL) /* audit: the verdict, as given */
    fe_audit_event(c->bus->audit, ev, ev->seq, c->stage->id,
                   kind ? FE_AUDIT_DEAD_LETTERED : FE_AUDIT_REJECTED, r, NULL);
}

static void reject(consumer_t *c, fe_event_t *ev, uint32_t reason) {
  mark(c, ev, 0, reason);
}

/* The redrive count an event carries (fe_bus_redrive), in the private
 * flags word: bits 16..31. */
#define FLAGS_REDRIVE_SHIFT 16

/* Gives up on ev: verdict, counter, then the dead-letter queue and the
 * host's hook (before any later stage can see the event, since our
 * progress is published after). */
static void dead_letter(fe_bus_t *bus, consumer_t *c, fe_event_t *ev,
                        uint32_t reason, uint32_t attempts, int exhausted,
                        const char *text) {
  mark(c, ev, FE_VERDICT_DEAD, reason);
  fe__add_owned(&c->failed, 1);
  fe_dead_letter_t info = {c->stage->id, reason, attempts, (uint32_t)exhausted,
                           ev->flags >> FLAGS_REDRIVE_SHIFT, text ? text : ""};
  const fe_event_t *put_ev = ev;
  fe_event_t copy;
  if (bus->meta != NULL) {
    /* For the outcome stage downstream (C2), which journals it. */
    slot_meta_t *m = fe__meta(bus, ev->seq);
    m->dl_kind = exhausted ? FE_DLQ_RETRIES_EXHAUSTED : FE_DLQ_FAIL;
    m->dl_attempts = attempts;
    m->dl_redrives = info.redrives;
    strncpy(m->dl_text, info.text, sizeof m->dl_text - 1);
    m->dl_text[sizeof m->dl_text - 1] = '\0';
    if (bus->dur != NULL) {
      /* The queue's copy carries the journal event id in seq, so that a
       * redrive can be journaled as taking it out of the queue.  A stage
       * that runs parallel_to_journal may fail an event before it has an
       * id: then 0. */
      copy = *ev;
      copy.seq = bus->stages[c->stage->id].parallel_to_journal ? 0 : m->eid;
      if (copy.seq != 0)
        copy.flags |= FE_EVF_DLQ_EID;
      put_ev = &copy;
    }
  }
  if (bus->dlq != NULL) {
    fe_dlq_put_t in = {
        .event = put_ev,
        .user_area = fe_event_user(ev),
        .user_len = bus->slot_size - (uint32_t)sizeof(fe_event_t),
        .stage = info.stage,
        .kind = exhausted ? FE_DLQ_RETRIES_EXHAUSTED : FE_DLQ_FAIL,
        .reason = reason <= FE_REASON_MAX ? reason : 0,
        .text = info.text,
        .attempts = attempts,
        .redrive_count = info.redrives,
        .first_seen_ns = ev->order.recv_ts_ns ? ev->order.recv_ts_ns
                                               : fe_clock_realtime_ns(),
        .key = ev->order.client_order_id,
        .key_len = (uint32_t)strnlen(ev->order.client_order_id, FE_CLORDID_MAX)};
    /* A refusal (REJECT policy, full) is counted and alerted by the DLQ;
     * the event still ends dead-lettered here. */
    fe_dlq_put(bus->dlq, &in, FE_WAIT_FOREVER, NULL);
  }
  if (bus->on_dead_letter != NULL)
    bus->on_dead_letter(ev, &info, bus->dead_letter_user);
}

/* The last sequence in [next, end) that c hands to its handler, or end. */
static uint64_t last_handled(const fe_bus_t *bus, const consumer_t *c,
                             uint64_t next, uint64_t end, int sharded) {
  for (uint64_t s = end; s > next; s--)
    if (classify(c, c->stage, slot(bus, s - 1), sharded) == EV_HANDLE)
      return s - 1;
  return end;
}

typedef struct tally {
  uint64_t handled, rejected, skipped, filtered, done, failed, dead;
  struct fe_audit *audit; /* the sink's: bus->audit */
} tally_t;

/* The sink's count of an event it finished: rejected or dead-lettered by
 * someone (the sink is downstream of every stage, so every verdict is
 * visible), or done. */
static inline void tally_outcome(const fe_event_t *ev, tally_t *t) {
  uint64_t v = fe__load_relaxed(&ev->verdict);
  if (v == 0) {
    t->done++;
    if (FE_UNLIKELY(t->audit != NULL)) /* audit: passed every stage */
      fe_audit_event(t->audit, ev, ev->seq, FE_AUDIT_ALL_STAGES,
                     FE_AUDIT_ACCEPTED, 0, NULL);
  } else if (v & FE_VERDICT_DEAD)
    t->dead++;
  else
    t->failed++;
}

/* An event c did not hand over: skipped (verdict upstream), filtered (type)
 * or not its (another shard's, void). */
static inline void tally_unhandled(const consumer_t *c, const fe_event_t *ev,
                                   int what, tally_t *t) {
  if (what == EV_SKIP)
    t->skipped++;
  else if (what == EV_FILTERED)
    t->filtered++;
  else
    return;
  if (c->counts_outcome)
    tally_outcome(ev, t);
}

static uint64_t bus_now(const fe_bus_t *bus) {
  return bus->now_ns ? bus->now_ns(bus->clock_user) : fe_clock_now_ns();
}

/* FE_RETRY for the event at seq after `attempts` handler calls: schedules
 * the next attempt and returns 1 (the shard pauses there), or returns 0
 * when the policy gives up (the caller dead-letters it). */
static int schedule_retry(fe_bus_t *bus, consumer_t *c, uint64_t seq,
                          uint32_t reason, uint32_t attempts) {
  uint64_t delay, x = c->rng;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  c->rng = x;
  if (fe_retry_next(&c->stage->retry, attempts, reason, x, &delay) != 0)
    return 0;
  c->retry_pending = 1;
  c->retry_seq = seq;
  c->retry_attempt = attempts;
  c->retry_at = bus_now(bus) + delay;
  fe__add_owned(&c->retried, 1);
  return 1;
}

/* Applies a handler's non-continue verdict for ev (at seq, after
 * `attempts` calls).  Returns 1 when the shard must pause at seq. */
static int settle(fe_bus_t *bus, consumer_t *c, fe_event_t *ev, uint64_t seq,
                  fe_verdict_t v, uint32_t reason, const char *text,
                  uint32_t attempts, tally_t *t) {
  if (v == FE_REJECT) {
    reject(c, ev, reason);
    t->rejected++;
  } else if (v == FE_RETRY && schedule_retry(bus, c, seq, reason, attempts)) {
    return 1;
  } else { /* FE_FAIL, a retry the policy refused, or an unknown verdict */
    dead_letter(bus, c, ev, reason, attempts, v == FE_RETRY, text);
  }
  if (c->counts_outcome)
    tally_outcome(ev, t);
  return 0;
}

/* Runs c's handler over [next, end) and returns where c got to: end, or
 * the sequence of an event paused by FE_RETRY.  Always inlined into
 * run_stage() with constant `sharded` and `outcome`, so the common loop
 * (one shard, not the sink) carries no test for either. */
static inline __attribute__((always_inline)) uint64_t
run_stage_as(fe_bus_t *bus, consumer_t *c, uint64_t next, uint64_t end,
             tally_t *t, const int sharded, const int outcome) {
  const stage_t *st = c->stage;
  const fe_stage_fn fn = st->fn;
  void *const user = st->user;
  const uint64_t last = last_handled(bus, c, next, end, sharded);
  fe_stage_ctx_t ctx = {.bus = bus, .stage = st->id, .shard = c->shard,
                        .worker = c->worker, .attempt = 1};
  /* Locals: the handler call would otherwise force reloads every event. */
  uint8_t *const base = bus->slots;
  const uint64_t mask = bus->mask, size = bus->slot_size;
  for (uint64_t s = next; s < end; s++) {
    fe_event_t *ev = (fe_event_t *)(base + (s & mask) * size);
    /* Slots fresh from another core's cache: request them ahead, so the
     * transfers overlap instead of stalling one by one. */
    __builtin_prefetch(base + ((s + FE_PREFETCH) & mask) * size, 1);
    int what = classify(c, st, ev, sharded);
    if (FE_UNLIKELY(what != EV_HANDLE)) {
      tally_unhandled(c, ev, what, t);
      continue;
    }
    ctx.end_of_batch = s == last;
    t->handled++;
    fe_verdict_t v = fn(&ctx, ev, user);
    if (FE_UNLIKELY(v != FE_CONTINUE)) {
      uint32_t reason = ctx.reason;
      const char *text = ctx.text;
      ctx.reason = 0;
      ctx.text = NULL;
      if (settle(bus, c, ev, s, v, reason, text, 1, t))
        return s;
    } else if (outcome) {
      tally_outcome(ev, t);
    }
  }
  return end;
}

/* Hands one chunk to a batch handler; counts what the sink must. */
static void flush_chunk(consumer_t *c, fe_stage_ctx_t *ctx, fe_event_t **evs,
                        uint32_t n, uint32_t last, tally_t *t) {
  ctx->end_of_batch = last;
  c->stage->batch_fn(ctx, evs, n, c->stage->user);
  t->handled += n;
  if (c->counts_outcome)
    for (uint32_t i = 0; i < n; i++)
      tally_outcome(evs[i], t);
}

/* As run_stage_as, for a batch handler: gathers the events the shard
 * handles, FE_BATCH_CHUNK at a time. */
static uint64_t run_batch_stage(fe_bus_t *bus, consumer_t *c, uint64_t next,
                                uint64_t end, tally_t *t) {
  const stage_t *st = c->stage;
  const int sharded = st->n_shards > 1;
  fe_event_t *evs[FE_BATCH_CHUNK];
  uint32_t n = 0;
  fe_stage_ctx_t ctx = {.bus = bus, .stage = st->id, .shard = c->shard,
                        .worker = c->worker, .attempt = 1, .priv = c};
  uint8_t *const base = bus->slots;
  const uint64_t mask = bus->mask, size = bus->slot_size;
  for (uint64_t s = next; s < end; s++) {
    fe_event_t *ev = (fe_event_t *)(base + (s & mask) * size);
    __builtin_prefetch(base + ((s + FE_PREFETCH) & mask) * size, 1);
    int what = classify(c, st, ev, sharded);
    if (FE_UNLIKELY(what != EV_HANDLE)) {
      tally_unhandled(c, ev, what, t);
      continue;
    }
    if (n == FE_BATCH_CHUNK) {
      flush_chunk(c, &ctx, evs, n, 0, t);
      n = 0;
    }
    evs[n++] = ev;
  }
  if (n != 0)
    flush_chunk(c, &ctx, evs, n, 1, t);
  return end;
}

void fe_batch_reject(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t reason) {
  consumer_t *c = ctx->priv;
  reject(c, ev, reason);
  fe__add_owned(&c->rejected, 1);
}

void fe_batch_fail(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t reason) {
  consumer_t *c = ctx->priv;
  dead_letter(c->bus, c, ev, reason, 1, 0, ctx->text);
}

static uint64_t run_stage(fe_bus_t *bus, consumer_t *c, uint64_t next,
                          uint64_t end, tally_t *t) {
  if (c->stage->batch_fn != NULL)
    return run_batch_stage(bus, c, next, end, t);
  int sharded = c->stage->n_shards > 1;
  if (c->counts_outcome)
    return sharded ? run_stage_as(bus, c, next, end, t, 1, 1)
                   : run_stage_as(bus, c, next, end, t, 0, 1);
  return sharded ? run_stage_as(bus, c, next, end, t, 1, 0)
                 : run_stage_as(bus, c, next, end, t, 0, 0);
}

/* The accountant of a graph with several sinks: counts outcomes only. */
static uint64_t run_accountant(fe_bus_t *bus, uint64_t next, uint64_t end,
                               tally_t *t) {
  for (uint64_t s = next; s < end; s++) {
    const fe_event_t *ev = slot(bus, s);
    if (fe__load_relaxed(&ev->verdict) != FE_VERDICT_VOID)
      tally_outcome(ev, t);
  }
  return end;
}

/* The paused event's next attempt, when it is due.  Returns the sequence
 * c reaches: still retry_seq while paused, retry_seq + 1 once settled. */
static uint64_t resume_retry(fe_bus_t *bus, consumer_t *c, tally_t *t) {
  uint64_t s = c->retry_seq;
  if (bus_now(bus) < c->retry_at)
    return s;
  fe_event_t *ev = slot(bus, s);
  fe_stage_ctx_t ctx = {.bus = bus, .stage = c->stage->id, .shard = c->shard,
                        .worker = c->worker, .end_of_batch = 1,
                        .attempt = c->retry_attempt + 1};
  c->retry_pending = 0;
  t->handled++;
  fe_verdict_t v = c->stage->fn(&ctx, ev, c->stage->user);
  if (v == FE_CONTINUE) {
    if (c->counts_outcome)
      tally_outcome(ev, t);
  } else if (settle(bus, c, ev, s, v, ctx.reason, ctx.text, ctx.attempt, t)) {
    return s;
  }
  return s + 1;
}

/* Runs one batch of consumer c.  Returns how many sequences it advanced. */
static uint32_t consumer_run(fe_bus_t *bus, consumer_t *c) {
  uint64_t next = fe__load_relaxed(&c->seq); /* owner's own value */
  tally_t t = {0, 0, 0, 0, 0, 0, 0, c->counts_outcome ? bus->audit : NULL};
  uint64_t reached;
  if (FE_UNLIKELY(c->retry_pending)) {
    reached = resume_retry(bus, c, &t);
  } else {
    if (next >= c->cached_gate) {
      c->cached_gate = gate_of(bus, c, next);
      if (next >= c->cached_gate)
        return 0;
    }
    uint64_t end = c->cached_gate;
    if (end - next > bus->max_batch)
      end = next + bus->max_batch;
    reached = c->stage != NULL ? run_stage(bus, c, next, end, &t)
                               : run_accountant(bus, next, end, &t);
  }
  if (t.handled) {
    fe__add_owned(&c->handled, t.handled);
    fe__add_owned(&c->batches, 1);
  }
  if (t.rejected)
    fe__add_owned(&c->rejected, t.rejected);
  if (t.skipped)
    fe__add_owned(&c->skipped, t.skipped);
  if (t.filtered)
    fe__add_owned(&c->filtered, t.filtered);
  if (c->counts_outcome) {
    fe__add_owned(&c->completed_out, t.done);
    fe__add_owned(&c->rejected_out, t.failed);
    fe__add_owned(&c->dead_out, t.dead);
  }
  if (reached == next)
    return 0;
  fe__store_release(&c->seq, reached); /* C2 */
  if (bus->wait == FE_WAIT_PARK) {
    if (c->wake_mask)
      wake_workers(bus, c->wake_mask);
    if (c->wakes_space)
      wake_space(bus);
  }
  return (uint32_t)(reached - next);
}

/* Nanoseconds until the earliest paused retry of w is due; UINT64_MAX when
 * none is paused, 0 when one is due. */
static uint64_t retry_due_in(const fe_bus_t *bus, const worker_t *w) {
  uint64_t best = UINT64_MAX, now = 0;
  for (uint32_t i = 0; i < w->n; i++) {
    const consumer_t *c = w->list[i];
    if (!c->retry_pending)
      continue;
    if (now == 0)
      now = bus_now(bus);
    uint64_t in = c->retry_at > now ? c->retry_at - now : 0;
    if (in < best)
      best = in;
  }
  return best;
}

/* ---------------------------------------------------------------- workers */

static uint32_t worker_poll(fe_bus_t *bus, worker_t *w) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < w->n; i++)
    n += consumer_run(bus, w->list[i]);
  return n;
}

/* Whether one of w's shards has events to take.  A shard paused by a
 * retry has work only once it is due, and only if count_due. */
static int worker_has_work(const fe_bus_t *bus, const worker_t *w,
                           int count_due) {
  for (uint32_t i = 0; i < w->n; i++) {
    const consumer_t *c = w->list[i];
    if (c->retry_pending)
      continue;
    uint64_t next = fe__load_relaxed(&c->seq);
    if (gate_of(bus, c, next) > next)
      return 1;
  }
  return count_due && retry_due_in(bus, w) == 0;
}

/* Stopping and every shard of this worker reached the stop target. */
static int worker_done(const fe_bus_t *bus, const worker_t *w) {
  uint64_t target = fe__load_acquire(&bus->stop_target);
  if (target == UINT64_MAX)
    return 0;
  for (uint32_t i = 0; i < w->n; i++)
    if (fe__load_relaxed(&w->list[i]->seq) < target)
      return 0;
  return 1;
}

/* Sleeps until a sequence this worker is gated on moves, a paused retry is
 * due, or stop.
 * Dekker with the publishers' wake_workers(): we set our parked bit, then
 * fe__asym_heavy, then re-read the gates; a publisher stores its sequence,
 * then fe__asym_light, then reads parked_mask.  One of the two sees the
 * other's store, so either we do not sleep or we are woken.  The futex word
 * is read before the bit is set, so a wake between our check and
 * futex_wait makes the wait return at once. */
static void park_worker(fe_bus_t *bus, worker_t *w) {
  uint64_t bit = 1ull << w->index;
  uint32_t v = __atomic_load_n(&w->futex, __ATOMIC_ACQUIRE);
  __atomic_fetch_or(&bus->parked_mask, bit, __ATOMIC_SEQ_CST);
  fe__asym_heavy(bus->asym);
  if (!worker_has_work(bus, w, 1) && !worker_done(bus, w) &&
      !fe__load_relaxed(&bus->abort_workers)) {
    /* Sleep no longer than until a paused retry is due. */
    uint64_t due = retry_due_in(bus, w), nap = PARK_SAFETY_NS;
    if (due < nap)
      nap = due;
    __atomic_fetch_add(&bus->parks, 1, __ATOMIC_RELAXED);
    if (fe__futex_wait(&w->futex, v, nap) != 0 && nap == PARK_SAFETY_NS &&
        worker_has_work(bus, w, 0)) {
      /* Woken by the safety timeout with work waiting: unless a wake is in
       * flight (the futex word moved), a wake-up was lost. */
      sched_yield();
      if (__atomic_load_n(&w->futex, __ATOMIC_ACQUIRE) == v)
        __atomic_fetch_add(&bus->lost_wakeups, 1, __ATOMIC_RELAXED);
    }
  }
  __atomic_fetch_and(&bus->parked_mask, ~bit, __ATOMIC_RELAXED);
}

static void idle_wait(fe_bus_t *bus, worker_t *w, uint32_t *idle) {
  uint32_t i = (*idle)++;
  if (bus->wait == FE_WAIT_SPIN || i < bus->spin_tries) {
    ck_pr_stall();
  } else if (bus->wait == FE_WAIT_YIELD ||
             i < bus->spin_tries + bus->yield_tries) {
    sched_yield();
  } else {
    park_worker(bus, w);
    *idle = 0;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  fe_bus_t *bus = w->bus;
  uint32_t idle = 0;
  while (!fe__load_relaxed(&bus->abort_workers)) {
    if (worker_poll(bus, w) != 0) {
      idle = 0;
      continue;
    }
    if (worker_done(bus, w))
      break;
    idle_wait(bus, w, &idle);
  }
  return NULL;
}

/* ------------------------------------------------------------- producers */

/* Waits for the end sequences to move, by the wait strategy.  Returns
 * FE_ETIMEDOUT once the deadline passed, else 0 (re-check the condition). */
static int wait_space(fe_bus_t *bus, uint32_t *iter, uint64_t deadline,
                      int (*ready)(fe_bus_t *, uint64_t), uint64_t arg) {
  uint32_t i = (*iter)++;
  if (i < bus->spin_tries) {
    ck_pr_stall();
  } else if (bus->wait != FE_WAIT_PARK || i < bus->spin_tries + bus->yield_tries) {
    sched_yield();
  } else {
    uint32_t v = __atomic_load_n(&bus->space_futex, __ATOMIC_ACQUIRE);
    __atomic_fetch_add(&bus->space_waiters, 1, __ATOMIC_SEQ_CST);
    fe__asym_heavy(bus->asym); /* pairs with wake_space(): as park_worker */
    uint64_t now = fe__mono_ns();
    if (!ready(bus, arg) && now < deadline) {
      uint64_t left = deadline - now;
      fe__futex_wait(&bus->space_futex, v, left < PARK_SAFETY_NS ? left : PARK_SAFETY_NS);
    }
    __atomic_fetch_sub(&bus->space_waiters, 1, __ATOMIC_RELAXED);
  }
  return fe__mono_ns() >= deadline ? FE_ETIMEDOUT : 0;
}

static int stopping(const fe_bus_t *bus) {
  return fe__load_relaxed(&bus->state) >= ST_STOPPING;
}

static void reset_slots(fe_bus_t *bus, uint64_t first, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev = slot(bus, first + i);
    ev->seq = first + i;
    ev->type = FE_EV_NEW_ORDER;
    ev->flags = 0;
    /* Consumers read verdict atomically; our store is ordered after their
     * reads by P2 (we only got here because the gate passed this slot). */
    fe__store_relaxed(&ev->verdict, 0);
  }
}

static void publish_range(fe_bus_t *bus, uint64_t first, uint32_t n) {
  if (bus->producer == FE_PRODUCER_SINGLE) {
    fe__store_release(&bus->cursor, first + n); /* P1 */
  } else {
    for (uint32_t i = 0; i < n; i++) {
      uint64_t s = first + i;
      fe__store_release(&bus->avail[s & bus->mask], s + 1); /* P1 */
    }
  }
  if (bus->wait == FE_WAIT_PARK)
    wake_workers(bus, bus->root_wake_mask);
}

/* A claim that raced with fe_bus_stop() and lost: the sequences are taken,
 * so they are published as void events that every stage steps over. */
static int void_claim(fe_bus_t *bus, uint64_t first, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    fe__store_relaxed(&slot(bus, first + i)->verdict, FE_VERDICT_VOID);
  __atomic_fetch_add(&bus->voided, n, __ATOMIC_RELAXED);
  publish_range(bus, first, n);
  return FE_ESTOPPED;
}

/* One claim attempt; FE_EFULL without counting it. */
static int claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first) {
  if (FE_UNLIKELY(stopping(bus)))
    return FE_ESTOPPED;
  uint64_t cap = bus->capacity, s;
  if (bus->producer == FE_PRODUCER_SINGLE) {
    s = fe__load_relaxed(&bus->claimed);
    if (s + n - bus->sp_gate > cap) {
      bus->sp_gate = end_seq(bus); /* P2 */
      if (s + n - bus->sp_gate > cap)
        return FE_EFULL;
    }
    fe__store_relaxed(&bus->claimed, s + n);
  } else {
    s = fe__load_relaxed(&bus->cursor);
    do {
      uint64_t gate = fe__load_acquire(&bus->mp_gate); /* G2 */
      if (s + n - gate > cap) {
        gate = end_seq(bus); /* P2 */
        fe__store_release(&bus->mp_gate, gate); /* G1; a stale overwrite
                                                   only lowers the cache */
        if (s + n - gate > cap)
          return FE_EFULL;
      }
    } while (!__atomic_compare_exchange_n(&bus->cursor, &s, s + n, 1,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  }
  /* Stop protocol, light side: the claim store above is ordered before
   * this state load; fe_bus_stop() sets the state, runs the heavy side and
   * then reads the claimed count.  So either stop waits for this claim, or
   * we see the stop and void the claim (never both missed). */
  fe__asym_light(bus->asym);
  if (FE_UNLIKELY(stopping(bus)))
    return void_claim(bus, s, n);
  reset_slots(bus, s, n);
  *first = s;
  return 0;
}

static int space_ready(fe_bus_t *bus, uint64_t n) {
  return claimed_count(bus) + n - end_seq(bus) <= bus->capacity;
}

static int claim_wait(fe_bus_t *bus, uint32_t n, uint64_t *first,
                      uint64_t timeout_ns) {
  uint64_t deadline = 0;
  uint32_t iter = 0;
  for (;;) {
    int r = claim_n(bus, n, first);
    if (r != FE_EFULL)
      return r;
    if (timeout_ns == 0)
      return FE_ETIMEDOUT;
    if (deadline == 0)
      deadline = fe__deadline(timeout_ns);
    if (wait_space(bus, &iter, deadline, space_ready, n) != 0 &&
        !space_ready(bus, n))
      return FE_ETIMEDOUT;
  }
}

int fe_bus_try_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first) {
  if (FE_UNLIKELY(bus == NULL || first == NULL || n == 0 || n > bus->capacity))
    return FE_EINVAL;
  int r = claim_n(bus, n, first);
  if (r == FE_EFULL)
    __atomic_fetch_add(&bus->full, 1, __ATOMIC_RELAXED);
  return r;
}

int fe_bus_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first,
                   uint64_t timeout_ns) {
  if (bus == NULL || first == NULL || n == 0 || n > bus->capacity)
    return FE_EINVAL;
  return claim_wait(bus, n, first, timeout_ns);
}

int fe_bus_try_claim(fe_bus_t *bus, fe_event_t **ev) {
  uint64_t s;
  if (FE_UNLIKELY(ev == NULL))
    return FE_EINVAL;
  int r = fe_bus_try_claim_n(bus, 1, &s);
  if (r == 0)
    *ev = slot(bus, s);
  return r;
}

int fe_bus_claim(fe_bus_t *bus, fe_event_t **ev, uint64_t timeout_ns) {
  uint64_t s;
  if (ev == NULL)
    return FE_EINVAL;
  int r = fe_bus_claim_n(bus, 1, &s, timeout_ns);
  if (r == 0)
    *ev = slot(bus, s);
  return r;
}

fe_event_t *fe_bus_event_at(fe_bus_t *bus, uint64_t seq) {
  return slot(bus, seq);
}

int fe_bus_publish(fe_bus_t *bus, fe_event_t *ev) {
  if (FE_UNLIKELY(bus == NULL || ev == NULL))
    return FE_EINVAL;
  publish_range(bus, ev->seq, 1);
  return 0;
}

/* The admission checks of fe_bus_publish_order; nothing touches the ring. */
static int admit(fe_bus_t *bus, uint32_t type, const fe_order_t *order) {
  if (bus->trading != NULL) {
    int r = fe__trading_check_order(bus->trading, type, order);
    if (FE_UNLIKELY(r != 0)) {
      __atomic_fetch_add(&bus->halted, 1, __ATOMIC_RELAXED);
      return r;
    }
  }
  if (bus->throttle != NULL && type == FE_EV_NEW_ORDER) {
    int r = fe_throttle_admit(bus->throttle, order->account, 1);
    if (FE_UNLIKELY(r != 0)) {
      if (r == FE_ETHROTTLED)
        __atomic_fetch_add(&bus->throttled, 1, __ATOMIC_RELAXED);
      return r;
    }
  }
  return 0;
}

int fe__claim_wait(fe_bus_t *bus, uint64_t *seq, uint64_t timeout_ns) {
  return claim_wait(bus, 1, seq, timeout_ns);
}

void fe__publish_one(fe_bus_t *bus, uint64_t seq) { publish_range(bus, seq, 1); }

/* The idempotency claim of a new order: 0 with *token (and key and
 * fingerprint in *m's fields), or the table's answer. */
static int idem_claim(fe_bus_t *bus, const fe_order_t *order,
                      const fe_idem_key_t *key, slot_meta_t *m,
                      fe_submit_result_t *out) {
  if (key != NULL) /* fe_bus_submit_n hashed it already */
    m->sub_key = *key;
  else if (fe_idem_key_order(order, &m->sub_key) != 0)
    return FE_EINVAL; /* no client order id: nothing to be idempotent on */
  m->sub_fp = fe_idem_fingerprint(order);
  fe_idem_claim_t c;
  int r = fe_idem_claim(bus->idem, &m->sub_key, m->sub_fp, &c);
  if (FE_LIKELY(r == 0)) {
    m->sub_token = c.token;
    m->sub_flags = META_KEY;
    return 0;
  }
  if (r == FE_EDUPLICATE || r == FE_EINPROGRESS || r == FE_EMISMATCH)
    __atomic_fetch_add(&bus->duplicates, 1, __ATOMIC_RELAXED);
  if (out != NULL) {
    if (r == FE_EDUPLICATE)
      out->outcome = c.outcome;
    else if (r == FE_EINPROGRESS)
      out->lease_expiry_ns = c.expires_ns;
  }
  return r;
}

/* Whether the journaller has finished seq: its progress is released after
 * the group was written (C2). */
static int journaled(fe_bus_t *bus, uint64_t seq) {
  const consumer_t *j = bus->stages[bus->journal_stage].shards[0];
  return fe__load_acquire(&j->seq) > seq; /* C1 */
}

/* FE_SUBMIT_DURABLE: waits by the bus's wait strategy (the journaller wakes
 * space waiters like the last stages do). */
static int wait_durable(fe_bus_t *bus, uint64_t seq, uint64_t timeout_ns) {
  uint64_t deadline = fe__deadline(timeout_ns);
  uint32_t iter = 0;
  while (!journaled(bus, seq))
    if (wait_space(bus, &iter, deadline, journaled, seq) != 0 &&
        !journaled(bus, seq))
      return FE_ETIMEDOUT;
  return fe__durable_failed(bus) ? FE_EIO : 0;
}

/* fe_bus_submit, with the order's idempotency key when the caller has it
 * (NULL: computed here; never passed for an order without a key). */
static int submit_one(fe_bus_t *bus, const fe_submit_t *in,
                      fe_submit_result_t *out, const fe_idem_key_t *key) {
  uint64_t s;
  if (FE_UNLIKELY(bus == NULL || in == NULL || in->order == NULL))
    return FE_EINVAL;
  uint32_t room = bus->slot_size - (uint32_t)sizeof(fe_event_t);
  if (FE_UNLIKELY(in->user_len > room || (in->user_len && !in->user_area) ||
                  ((in->flags & FE_SUBMIT_DURABLE) && bus->dur == NULL) ||
                  (in->flags & ~FE_SUBMIT_DURABLE)))
    return FE_EINVAL;
  if (FE_UNLIKELY(fe__durable_failed(bus)))
    return FE_EIO;
  int r = admit(bus, in->type, in->order);
  if (r != 0)
    return r;
  slot_meta_t sub = {0};
  if (bus->idem != NULL && in->type == FE_EV_NEW_ORDER &&
      (r = idem_claim(bus, in->order, key, &sub, out)) != 0)
    return r;
  if ((r = claim_wait(bus, 1, &s, in->timeout_ns)) != 0) {
    if (sub.sub_token != 0)
      fe_idem_abandon(bus->idem, sub.sub_token);
    return r;
  }
  fe_event_t *ev = slot(bus, s);
  ev->type = in->type;
  ev->order = *in->order;
  ev->trace_id = in->trace_id;
  ev->trace = in->trace;
  if (in->user_len != 0 || in->user_area != NULL) {
    memcpy(fe_event_user(ev), in->user_area, in->user_len);
    memset((uint8_t *)fe_event_user(ev) + in->user_len, 0,
           room - in->user_len);
  }
  if (bus->meta != NULL)
    fe__meta_submit(fe__meta(bus, s), s, &sub, 0);
  publish_range(bus, s, 1); /* P1 releases the slot and its meta */
  if (out != NULL)
    out->seq = s;
  if (in->flags & FE_SUBMIT_DURABLE)
    return wait_durable(bus, s, in->timeout_ns);
  return 0;
}

int fe_bus_submit(fe_bus_t *bus, const fe_submit_t *in,
                  fe_submit_result_t *out) {
  return submit_one(bus, in, out, NULL);
}

/* fe_bus_submit_n's pipeline: the home control line of the order
 * 2 * SUBMIT_AHEAD places ahead, the entry SUBMIT_AHEAD ahead (by then its
 * control line has arrived).  keys[] keeps each order's key from the first
 * hint to the second. */
#define SUBMIT_AHEAD 8

static void submit_hint(const fe_bus_t *bus, const fe_submit_t *in,
                        fe_idem_key_t keys[2 * SUBMIT_AHEAD], uint8_t *has,
                        size_t i, int stage) {
  fe_idem_key_t *k = &keys[i % (2 * SUBMIT_AHEAD)];
  uint8_t bit = (uint8_t)(1u << (i % 8));
  if (stage == 1) {
    if (in->type == FE_EV_NEW_ORDER && in->order != NULL &&
        fe_idem_key_order(in->order, k) == 0) {
      has[(i / 8) % 2] |= bit;
      fe_idem_prefetch(bus->idem, k);
    } else {
      has[(i / 8) % 2] &= (uint8_t)~bit;
    }
  } else if (has[(i / 8) % 2] & bit) {
    fe_idem_prefetch_claim(bus->idem, k);
  }
}

int fe_bus_submit_n(fe_bus_t *bus, const fe_submit_t *in, size_t n,
                    fe_submit_result_t *out, int *rc) {
  if (bus == NULL || (n != 0 && (in == NULL || rc == NULL)))
    return FE_EINVAL;
  if (n > INT32_MAX)
    return FE_ERANGE;
  fe_idem_key_t keys[2 * SUBMIT_AHEAD];
  uint8_t has[2] = {0, 0}; /* keys[] slots holding a key, by i % 16 */
  int ok = 0;
  const int hint = bus->idem != NULL;
  for (size_t i = 0; hint && i < n && i < 2 * SUBMIT_AHEAD; i++)
    submit_hint(bus, &in[i], keys, has, i, 1);
  for (size_t i = 0; hint && i < n && i < SUBMIT_AHEAD; i++)
    submit_hint(bus, &in[i], keys, has, i, 2);
  for (size_t i = 0; i < n; i++) {
    /* Order i's key, if the hints computed it (its keys[] slot is not
     * reused before order i + 16's first hint, after this call). */
    const int known = hint && (has[(i / 8) % 2] & (1u << (i % 8)));
    const fe_idem_key_t *k = known ? &keys[i % (2 * SUBMIT_AHEAD)] : NULL;
    rc[i] = submit_one(bus, &in[i], out != NULL ? &out[i] : NULL, k);
    ok += rc[i] == 0;
    /* After order i: its keys[] slot is free for order i + 16. */
    if (hint && i + SUBMIT_AHEAD < n)
      submit_hint(bus, &in[i + SUBMIT_AHEAD], keys, has, i + SUBMIT_AHEAD, 2);
    if (hint && i + 2 * SUBMIT_AHEAD < n)
      submit_hint(bus, &in[i + 2 * SUBMIT_AHEAD], keys, has,
                  i + 2 * SUBMIT_AHEAD, 1);
  }
  return ok;
}

int fe_bus_publish_order(fe_bus_t *bus, uint32_t type, const fe_order_t *order,
                         uint64_t trace_id, uint64_t timeout_ns,
                         uint64_t *seq) {
  fe_submit_t in = {.type = type, .order = order, .trace_id = trace_id,
                    .timeout_ns = timeout_ns};
  fe_submit_result_t out;
  int r = fe_bus_submit(bus, &in, &out);
  if (r == 0 && seq != NULL)
    *seq = out.seq;
  return r;
}

int fe_bus_redrive(const fe_event_t *ev, const void *user_area,
                   uint32_t user_len, uint32_t redrive_count, void *arg) {
  fe_bus_t *bus = arg;
  uint64_t s;
  if (bus == NULL || ev == NULL || (user_len != 0 && user_area == NULL))
    return FE_EINVAL;
  /* A new order under an idempotency table: take its key back from the
   * dead letter's outcome, so that duplicates wait for this run and then
   * get its outcome (fe_idem_reopen). */
  slot_meta_t sub = {0};
  fe_idem_claim_t claim;
  if (bus->idem != NULL && ev->type == FE_EV_NEW_ORDER &&
      fe_idem_key_order(&ev->order, &sub.sub_key) == 0) {
    sub.sub_fp = fe_idem_fingerprint(&ev->order);
    int r = fe_idem_reopen(bus->idem, &sub.sub_key, sub.sub_fp, &claim);
    fe_idem_entry_t e;
    if (r == FE_EMISMATCH &&
        fe_idem_lookup(bus->idem, &sub.sub_key, &e) == 0 &&
        e.state == FE_IDEM_DONE &&
        e.outcome.status == FE_IDEM_DEAD_LETTERED) {
      /* A stage changed the order's economic fields before it failed (a
       * corrective step): the key's dead letter is this order's all the
       * same; take it back under the fingerprint it was claimed with. */
      sub.sub_fp = e.fingerprint;
      r = fe_idem_reopen(bus->idem, &sub.sub_key, sub.sub_fp, &claim);
    }
    if (r != 0)
      return r; /* finished, running or taken by another order: not now */
    sub.sub_token = claim.token;
    sub.sub_flags = META_KEY;
  }
  int r = claim_wait(bus, 1, &s, FE_WAIT_FOREVER);
  if (r != 0) {
    if (sub.sub_token != 0) { /* give the key back as it was */
      if (claim.flags & FE_IDEM_F_REOPENED)
        fe_idem_complete(bus->idem, sub.sub_token, &claim.outcome);
      else
        fe_idem_abandon(bus->idem, sub.sub_token);
    }
    return r;
  }
  fe_event_t *dst = slot(bus, s);
  dst->type = ev->type;
  dst->order = ev->order;
  dst->trace_id = ev->trace_id;
  dst->trace = ev->trace;
  dst->flags = (redrive_count > 0xffff ? 0xffff : redrive_count)
               << FLAGS_REDRIVE_SHIFT;
  uint32_t room = bus->slot_size - (uint32_t)sizeof(fe_event_t);
  if (user_len != 0)
    memcpy(fe_event_user(dst), user_area, user_len < room ? user_len : room);
  /* With a journal, ev's seq is the dead letter's event id
   * (dead_letter()). */
  if (bus->meta != NULL)
    fe__meta_submit(fe__meta(bus, s), s, sub.sub_flags ? &sub : NULL,
                    bus->dur != NULL && (ev->flags & FE_EVF_DLQ_EID) ? ev->seq
                                                                     : 0);
  if (bus->audit != NULL) /* audit: out of the dead-letter queue */
    fe_audit_event(bus->audit, dst, s, 0, FE_AUDIT_REDRIVEN, 0, NULL);
  publish_range(bus, s, 1);
  return 0;
}

int fe_bus_publish_n(fe_bus_t *bus, uint64_t first, uint32_t n) {
  if (FE_UNLIKELY(bus == NULL || n == 0))
    return FE_EINVAL;
  publish_range(bus, first, n);
  return 0;
}

int fe_event_rejected(const fe_event_t *ev, uint32_t *stage, uint32_t *reason) {
  uint64_t v = fe__load_relaxed(&ev->verdict);
  if (v == 0 || v == FE_VERDICT_VOID || (v & FE_VERDICT_DEAD))
    return 0;
  if (stage)
    *stage = (uint32_t)(v >> 32) - 1;
  if (reason)
    *reason = (uint32_t)v & 0xffff;
  return 1;
}

int fe_event_dead_lettered(const fe_event_t *ev, uint32_t *stage,
                           uint32_t *reason) {
  uint64_t v = fe__load_relaxed(&ev->verdict);
  if (v == FE_VERDICT_VOID || !(v & FE_VERDICT_DEAD))
    return 0;
  if (stage)
    *stage = (uint32_t)(v >> 32) - 1;
  if (reason)
    *reason = (uint32_t)v & 0xffff;
  return 1;
}

/* ------------------------------------------------------------- lifecycle */

static void join_workers(fe_bus_t *bus) {
  for (uint32_t i = 0; i < bus->n_workers; i++)
    if (bus->workers[i].started) {
      pthread_join(bus->workers[i].thread, NULL);
      bus->workers[i].started = 0;
    }
}

static int start_worker(worker_t *w, fe_diag_t *diag) {
  pthread_attr_t attr;
  cpu_set_t set;
  if (pthread_attr_init(&attr) != 0)
    return fe__diag(diag, FE_ETHREAD, "worker %u: pthread_attr_init failed",
                    w->index);
  if (w->cpu >= 0) {
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  }
  int e = pthread_create(&w->thread, &attr, worker_main, w);
  pthread_attr_destroy(&attr);
  if (e == EINVAL && w->cpu >= 0)
    return fe__diag(diag, FE_EAFFINITY, "worker %u: cannot pin to cpu %d "
                    "(offline or not allowed)", w->index, w->cpu);
  if (e != 0)
    return fe__diag(diag, FE_ETHREAD, "worker %u: pthread_create: %s",
                    w->index, strerror(e));
  w->started = 1;
  char name[16];
  snprintf(name, sizeof name, "fe-worker-%u", w->index);
  pthread_setname_np(w->thread, name);
  return 0;
}

int fe_bus_start(fe_bus_t *bus, fe_diag_t *diag) {
  if (bus == NULL)
    return fe__diag(diag, FE_EINVAL, "bus is NULL");
  if (fe__load_relaxed(&bus->state) != ST_CREATED)
    return fe__diag(diag, FE_ESTATE, "fe_bus_start: the bus was already "
                    "started or stopped");
  if (!bus->host_driven)
    for (uint32_t i = 0; i < bus->n_workers; i++) {
      int r = start_worker(&bus->workers[i], diag);
      if (r != 0) {
        fe__store_relaxed(&bus->abort_workers, 1);
        wake_all(bus);
        join_workers(bus);
        fe__store_relaxed(&bus->abort_workers, 0);
        return r;
      }
    }
  __atomic_store_n(&bus->state, ST_RUNNING, __ATOMIC_RELEASE);
  /* Recovery's dead letters back into the DLQ, then its unfinished events,
   * before anything the host publishes after this returns. */
  return fe__durable_start(bus, diag);
}

int fe_bus_poll(fe_bus_t *bus, uint32_t worker) {
  if (bus == NULL)
    return FE_EINVAL;
  if (worker >= bus->n_workers)
    return FE_EWORKER;
  uint32_t st = fe__load_acquire(&bus->state);
  if (!bus->host_driven || st == ST_CREATED)
    return FE_ESTATE;
  worker_t *w = &bus->workers[worker];
  uint32_t n = worker_poll(bus, w);
  if (n == 0 && worker_done(bus, w))
    return FE_ESTOPPED;
  return (int)(n > INT32_MAX ? INT32_MAX : n);
}

static int drained(fe_bus_t *bus, uint64_t target) {
  return end_seq(bus) >= target;
}

int fe_bus_drain(fe_bus_t *bus, uint64_t timeout_ns) {
  if (bus == NULL)
    return FE_EINVAL;
  if (fe__load_acquire(&bus->state) == ST_CREATED)
    return FE_ESTATE;
  uint64_t target = claimed_count(bus), deadline = fe__deadline(timeout_ns);
  uint32_t iter = bus->spin_tries; /* drain is not latency critical */
  while (!drained(bus, target)) {
    if (fe__mono_ns() >= deadline)
      return FE_ETIMEDOUT;
    if (bus->wait == FE_WAIT_PARK) {
      wait_space(bus, &iter, deadline, drained, target);
    } else if (iter++ < bus->spin_tries + bus->yield_tries) {
      sched_yield();
    } else {
      /* Spin and yield workers do not wake sleepers: poll gently. */
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
    }
  }
  return 0;
}

int fe_bus_stop(fe_bus_t *bus) {
  if (bus == NULL)
    return FE_EINVAL;
  uint32_t st = fe__load_acquire(&bus->state);
  if (st >= ST_STOPPING)
    return FE_ESTATE;
  if (st == ST_CREATED && claimed_count(bus) != 0)
    return FE_ESTATE; /* events are waiting: start the bus to process them */
  __atomic_store_n(&bus->state, ST_STOPPING, __ATOMIC_SEQ_CST);
  /* Heavy side of the claim/stop Dekker (claim_n): after this, every claim
   * not counted below will see ST_STOPPING and void itself. */
  fe__asym_heavy(bus->asym);
  uint64_t target = claimed_count(bus);
  __atomic_store_n(&bus->stop_target, target, __ATOMIC_SEQ_CST);
  wake_all(bus);
  if (st == ST_CREATED || !bus->host_driven) {
    join_workers(bus);
    __atomic_store_n(&bus->state, ST_STOPPED, __ATOMIC_RELEASE);
  }
  return 0;
}

void fe_bus_destroy(fe_bus_t *bus) {
  if (bus == NULL)
    return;
  uint32_t st = fe__load_acquire(&bus->state);
  if (st == ST_RUNNING || (st == ST_CREATED && claimed_count(bus) == 0))
    fe_bus_stop(bus);
  else
    join_workers(bus);
  fe__bus_free(bus);
}

/* ----------------------------------------------------------------- stats */

int fe_bus_stats(const fe_bus_t *bus, fe_bus_stats_t *out) {
  if (bus == NULL || out == NULL)
    return FE_EINVAL;
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < bus->n_ends; i++) {
    out->completed += fe__load_relaxed(&bus->ends[i]->completed_out);
    out->rejected += fe__load_relaxed(&bus->ends[i]->rejected_out);
    out->dead_lettered += fe__load_relaxed(&bus->ends[i]->dead_out);
  }
  out->published = claimed_count(bus) - fe__load_relaxed(&bus->voided);
  out->full = fe__load_relaxed(&bus->full);
  out->throttled = fe__load_relaxed(&bus->throttled);
  out->halted = fe__load_relaxed(&bus->halted);
  out->duplicates = fe__load_relaxed(&bus->duplicates);
  out->parks = fe__load_relaxed(&bus->parks);
  out->wakeups = fe__load_relaxed(&bus->wakeups);
  out->lost_wakeups = fe__load_relaxed(&bus->lost_wakeups);
  return 0;
}

int fe_bus_stage_stats(const fe_bus_t *bus, uint32_t stage,
                       fe_stage_stats_t *out) {
  if (bus == NULL || out == NULL)
    return FE_EINVAL;
  if (stage >= bus->n_stages)
    return FE_ERANGE;
  const stage_t *st = &bus->stages[stage];
  memset(out, 0, sizeof *out);
  out->processed = UINT64_MAX;
  for (uint32_t s = 0; s < st->n_shards; s++) {
    const consumer_t *c = st->shards[s];
    out->handled += fe__load_relaxed(&c->handled);
    out->rejected += fe__load_relaxed(&c->rejected);
    out->skipped += fe__load_relaxed(&c->skipped);
    out->filtered += fe__load_relaxed(&c->filtered);
    out->retried += fe__load_relaxed(&c->retried);
    out->failed += fe__load_relaxed(&c->failed);
    out->batches += fe__load_relaxed(&c->batches);
    uint64_t q = fe__load_relaxed(&c->seq);
    if (q < out->processed)
      out->processed = q;
  }
  return 0;
}

uint64_t fe_bus_stage_rejects(const fe_bus_t *bus, uint32_t stage,
                              uint32_t reason) {
  if (bus == NULL || stage >= bus->n_stages || reason > FE_REASON_MAX)
    return 0;
  uint64_t n = 0;
  const stage_t *st = &bus->stages[stage];
  for (uint32_t s = 0; s < st->n_shards; s++)
    n += fe__load_relaxed(&st->shards[s]->reasons[reason]);
  return n;
}

int fe_bus_stage_id(const fe_bus_t *bus, const char *name) {
  if (bus == NULL || name == NULL)
    return FE_ENAME;
  for (uint32_t i = 0; i < bus->n_stages; i++)
    if (strcmp(bus->stages[i].name, name) == 0)
      return (int)i;
  return FE_ENAME;
}

const char *fe_bus_stage_name(const fe_bus_t *bus, uint32_t stage) {
  return bus != NULL && stage < bus->n_stages ? bus->stages[stage].name : NULL;
}

uint32_t fe_bus_capacity(const fe_bus_t *bus) { return bus->capacity; }
uint32_t fe_bus_user_size(const fe_bus_t *bus) {
  return bus->slot_size - (uint32_t)sizeof(fe_event_t);
}
uint32_t fe_bus_workers(const fe_bus_t *bus) { return bus->n_workers; }
