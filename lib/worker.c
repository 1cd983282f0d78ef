/*
 * The workers: each runs its consumers (the shards of the stages placed on
 * it, in topological order) over the batches its gates allow, applies the
 * handlers' verdicts, and waits by the wait strategy when idle.  Sits on
 * the ring (ring.h); the memory-order labels (P1, C1, C2, P2) are defined
 * there.
 */
#define _GNU_SOURCE
#include "bus_impl.h"
#include "verdict.h"

#include <ck_pr.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#ifndef FE_PREFETCH
#define FE_PREFETCH 32 /* slots ahead */
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ------------------------------------------------------------- consumers */

/* The slot of sequence s, from the ring's geometry held in locals (a
 * handler call would force fe__ring_slot() to reload it). */
static inline fe_event_t *slot_at(uint8_t *base, uint64_t mask, uint64_t size,
                                  uint64_t s) {
  return (fe_event_t *)(base + (s & mask) * size);
}

/* How far a consumer gated on the producers may go from next (C1). */
static inline uint64_t producers_gate(const fe_bus_t *bus, uint64_t next) {
  return fe__ring_published(&bus->ring, next, bus->max_batch);
}

/* How far c may go, reading its gates (C1). */
static uint64_t gate_of(const fe_bus_t *bus, const consumer_t *c,
                        uint64_t next) {
  if (c->gates != NULL)
    return fe__ring_min(c->gates, c->n_gates);
  return producers_gate(bus, next);
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
  if (FE_UNLIKELY(v != 0) && ((c->ancestors >> fe__verdict_stage(v)) & 1))
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
  if (bus->ring.meta != NULL) {
    /* For the outcome stage downstream (C2), which journals it. */
    slot_meta_t *m = fe__ring_meta(&bus->ring, ev->seq);
    m->dl_kind = exhausted ? FE_DLQ_RETRIES_EXHAUSTED : FE_DLQ_FAIL;
    m->dl_attempts = attempts;
    m->dl_redrives = info.redrives;
    strncpy(m->dl_text, info.text, sizeof m->dl_text - 1);
    m->dl_text[sizeof m->dl_text - 1] = '\0';
    if (bus->env.dur != NULL) {
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
    /* A refusal (REJECT policy, full) is counted and alerted by the DLQ;
     * the event still ends dead-lettered here. */
    fe__dlq_put_dead(bus->dlq, put_ev, fe_event_user(ev),
                     fe__ring_user_size(&bus->ring), &info,
                     exhausted ? FE_DLQ_RETRIES_EXHAUSTED : FE_DLQ_FAIL,
                     fe_clock_realtime_ns(), FE_WAIT_FOREVER);
  }
  if (bus->on_dead_letter != NULL)
    bus->on_dead_letter(ev, &info, bus->dead_letter_user);
}

/* The last sequence in [next, end) that c hands to its handler, or end. */
static uint64_t last_handled(const fe_bus_t *bus, const consumer_t *c,
                             uint64_t next, uint64_t end, int sharded) {
  for (uint64_t s = end; s > next; s--)
    if (classify(c, c->stage, fe__ring_slot(&bus->ring, s - 1), sharded) == EV_HANDLE)
      return s - 1;
  return end;
}

typedef struct tally {
  uint64_t handled, rejected, skipped, filtered, done, rejected_out, dead;
  struct fe_audit *audit; /* the sink's: bus->audit */
} tally_t;

/* Audit: the sink saw ev pass every stage. */
static void audit_accepted(struct fe_audit *a, const fe_event_t *ev) {
  fe_audit_event(a, ev, ev->seq, FE_AUDIT_ALL_STAGES, FE_AUDIT_ACCEPTED, 0,
                 NULL);
}

/* The sink's count of an event whose verdict word was v when it was
 * handed over: rejected or dead-lettered by someone (the sink is
 * downstream of every stage, so every verdict is visible, and v is final
 * unless the sink's own handler gives one, which apply_verdict()
 * counts), or done. */
static inline void tally_verdict(const fe_event_t *ev, uint64_t v,
                                 tally_t *t) {
  if (v == 0) {
    t->done++;
    if (FE_UNLIKELY(t->audit != NULL))
      audit_accepted(t->audit, ev);
  } else if (fe__verdict_dead(v))
    t->dead++;
  else
    t->rejected_out++;
}

/* The sink's count of an event it finished (its verdict as it is now). */
static inline void tally_outcome(const fe_event_t *ev, tally_t *t) {
  tally_verdict(ev, fe__load_relaxed(&ev->verdict), t);
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
static int apply_verdict(fe_bus_t *bus, consumer_t *c, fe_event_t *ev,
                         uint64_t seq, fe_verdict_t v, uint32_t reason,
                         const char *text, uint32_t attempts, tally_t *t) {
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
 * (one shard, not the sink) carries no test for either.  This loop is
 * what a stage costs per event, and with several stages on a worker it
 * runs once per stage: so it is kept to a pointer walk, one verdict load
 * and test, the call and its result test.  The walk goes over each
 * stretch of the ring that does not wrap (a batch has at most two);
 * end_of_batch is stored once per batch; the prefetch keeps FE_PREFETCH
 * slots ahead with no test in the body of a batch.  Every stage of a
 * group pass prefetches: a batch of 256 slots spans 48 KiB or more, past
 * L1, so the later stages' walks would wait on L2 (measured: 20-30 %
 * slower with the first stage alone prefetching). */
static inline __attribute__((always_inline)) uint64_t
run_stage_as(fe_bus_t *bus, consumer_t *c, uint64_t next, uint64_t end,
             tally_t *t, const int sharded, const int outcome) {
  const stage_t *st = c->stage;
  const fe_stage_fn fn = st->fn;
  void *const user = st->user;
  const uint64_t typed = !st->all_types;
  fe_stage_ctx_t *const ctx = &c->ctx;
  /* Locals: the handler call would otherwise force reloads every event. */
  uint8_t *const base = bus->ring.pub.slots;
  const uint64_t mask = bus->ring.pub.mask, size = bus->ring.pub.slot_size;
  const uint64_t ahead = FE_PREFETCH * size;
  /* The last event handed over gets end_of_batch.  Usually that is the
   * batch's last; only a verdict, a type filter or sharding make the
   * backward walk necessary. */
  uint64_t last = end - 1;
  if (sharded || typed ||
      fe__load_relaxed(&slot_at(base, mask, size, last)->verdict))
    last = last_handled(bus, c, next, end, sharded);
  /* Only published slots are prefetched: a slot the producer has yet to
   * fill would be pulled away from it, and its next store would have to
   * take it back.  The batch's first ones all at once (their transfers
   * overlap), then the loop keeps FE_PREFETCH ahead up to pf_end. */
  for (uint64_t s = next; s < end && s < next + FE_PREFETCH; s++)
    fe_bus_priv_prefetch_w(slot_at(base, mask, size, s));
  const uint64_t pf_end = end > next + FE_PREFETCH ? end - FE_PREFETCH : next;
  uint64_t unhandled = 0, done = 0;
  ctx->end_of_batch = 0;
  for (uint64_t s = next; s < end;) {
    uint64_t stretch = (s | mask) + 1; /* where the ring wraps */
    if (stretch > end)
      stretch = end;
    uint8_t *const p0 = base + (s & mask) * size;
    uint8_t *const p_end = p0 + (stretch - s) * size;
    /* Prefetching stops at pf_end.  Near the ring's end p + ahead is past
     * it: x86 prefetches do not fault, and FE_PREFETCH slots a lap go
     * unfetched. */
    uint8_t *const pf_stop =
        pf_end > s ? p0 + ((pf_end < stretch ? pf_end : stretch) - s) * size
                   : p0;
    uint8_t *const p_last =
        last >= s && last < stretch ? p0 + (last - s) * size : NULL;
    for (uint8_t *p = p0; p < p_end; p += size) {
      fe_event_t *ev = (fe_event_t *)p;
      if (p < pf_stop)
        fe_bus_priv_prefetch_w(p + ahead);
      uint64_t v = fe__load_relaxed(&ev->verdict);
      if (FE_UNLIKELY((v | typed) != 0 || sharded)) {
        int what = classify(c, st, ev, sharded);
        if (what != EV_HANDLE) {
          unhandled++;
          tally_unhandled(c, ev, what, t);
          continue;
        }
      }
      if (FE_UNLIKELY(p == p_last))
        ctx->end_of_batch = 1;
      fe_verdict_t r = fn(ctx, ev, user);
      if (FE_UNLIKELY(r != FE_CONTINUE)) {
        uint32_t reason = ctx->reason;
        const char *text = ctx->text;
        ctx->reason = 0;
        ctx->text = NULL;
        uint64_t at = s + (uint64_t)(p - p0) / size;
        if (apply_verdict(bus, c, ev, at, r, reason, text, 1, t)) {
          t->handled += at + 1 - next - unhandled;
          t->done += done;
          return at;
        }
      } else if (outcome) {
        if (FE_LIKELY(v == 0 && t->audit == NULL))
          done++;
        else
          tally_verdict(ev, v, t);
      }
    }
    s = stretch;
  }
  t->handled += end - next - unhandled;
  t->done += done;
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
  uint8_t *const base = bus->ring.pub.slots;
  const uint64_t mask = bus->ring.pub.mask, size = bus->ring.pub.slot_size;
  for (uint64_t s = next; s < end; s++) {
    fe_event_t *ev = slot_at(base, mask, size, s);
    if (s + FE_PREFETCH < end) /* published slots only: see run_stage_as */
      fe_bus_priv_prefetch_w(slot_at(base, mask, size, s + FE_PREFETCH));
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
  if (ctx == NULL || ev == NULL)
    return;
  consumer_t *c = ctx->priv;
  reject(c, ev, reason);
  fe__add_owned(&c->rejected, 1);
}

void fe_batch_fail(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t reason) {
  if (ctx == NULL || ev == NULL)
    return;
  consumer_t *c = ctx->priv;
  dead_letter(c->bus, c, ev, reason, 1, 0, ctx->text);
}

/* Aligned so that its loop's placement does not move with unrelated code:
 * when the fused pass grew group_pass, this function moved by 32 bytes and
 * bus_diamond measured 4 % lower (6 alternated runs each, 10:26 UTC); at
 * 64 bytes it measured level with the build before (5 runs each). */
static __attribute__((aligned(64))) uint64_t
run_stage_plain(fe_bus_t *bus, consumer_t *c, uint64_t next, uint64_t end,
                tally_t *t) {
  if (c->stage->batch_fn != NULL)
    return run_batch_stage(bus, c, next, end, t);
  int sharded = c->stage->n_shards > 1;
  if (c->counts_outcome)
    return sharded ? run_stage_as(bus, c, next, end, t, 1, 1)
                   : run_stage_as(bus, c, next, end, t, 0, 1);
  return sharded ? run_stage_as(bus, c, next, end, t, 1, 0)
                 : run_stage_as(bus, c, next, end, t, 0, 0);
}

/* run_stage_plain timed for fe_bus_on_stage_timing: one clock read before
 * and one after, and the report.  Out of line, and the untimed path only
 * tests the hook: the clock reads compiled into the workers' loops cost
 * their latency even unused (lat_1p1c_1m p50 380 -> 520 ns, measured). */
static __attribute__((noinline)) uint64_t
run_stage_timed(fe_bus_t *bus, consumer_t *c, uint64_t next, uint64_t end,
                tally_t *t) {
  uint64_t handled = t->handled, t0 = fe_clock_now_ns();
  uint64_t reached = run_stage_plain(bus, c, next, end, t);
  uint64_t ns = fe_clock_now_ns() - t0;
  if (t->handled != handled) {
    fe_stage_timing_t info = {c->stage->id, c->shard, c->worker,
                              (uint32_t)(t->handled - handled), ns};
    bus->on_timing(&info, bus->timing_user);
  }
  return reached;
}

static inline uint64_t run_stage(fe_bus_t *bus, consumer_t *c, uint64_t next,
                                 uint64_t end, tally_t *t) {
  if (FE_UNLIKELY(bus->on_timing != NULL))
    return run_stage_timed(bus, c, next, end, t);
  return run_stage_plain(bus, c, next, end, t);
}

/* The accountant of a graph with several sinks: counts outcomes only. */
static uint64_t run_accountant(fe_bus_t *bus, uint64_t next, uint64_t end,
                               tally_t *t) {
  for (uint64_t s = next; s < end; s++) {
    const fe_event_t *ev = fe__ring_slot(&bus->ring, s);
    if (fe__load_relaxed(&ev->verdict) != FE_VERDICT_VOID)
      tally_outcome(ev, t);
  }
  return end;
}

/* The paused event's next attempt, when it is due.  Returns the sequence
 * c reaches: still retry_seq while paused, retry_seq + 1 once decided. */
static uint64_t resume_retry(fe_bus_t *bus, consumer_t *c, tally_t *t) {
  uint64_t s = c->retry_seq;
  if (bus_now(bus) < c->retry_at)
    return s;
  fe_event_t *ev = fe__ring_slot(&bus->ring, s);
  fe_stage_ctx_t ctx = {.bus = bus, .stage = c->stage->id, .shard = c->shard,
                        .worker = c->worker, .end_of_batch = 1,
                        .attempt = c->retry_attempt + 1};
  c->retry_pending = 0;
  t->handled++;
  fe_verdict_t v = c->stage->fn(&ctx, ev, c->stage->user);
  if (v == FE_CONTINUE) {
    if (c->counts_outcome)
      tally_outcome(ev, t);
  } else if (apply_verdict(bus, c, ev, s, v, ctx.reason, ctx.text,
                           ctx.attempt, t)) {
    return s;
  }
  return s + 1;
}

/* Adds a pass's tally to c's counters. */
static inline void account(consumer_t *c, const tally_t *t) {
  if (t->handled) {
    fe__add_owned(&c->handled, t->handled);
    fe__add_owned(&c->batches, 1);
  }
  if (c->counts_outcome && t->done)
    fe__add_owned(&c->completed_out, t->done);
  if (FE_UNLIKELY((t->rejected | t->skipped | t->filtered |
                   t->rejected_out | t->dead) != 0)) {
    fe__add_owned(&c->rejected, t->rejected);
    fe__add_owned(&c->skipped, t->skipped);
    fe__add_owned(&c->filtered, t->filtered);
    if (c->counts_outcome) {
      fe__add_owned(&c->rejected_out, t->rejected_out);
      fe__add_owned(&c->dead_out, t->dead);
    }
  }
}

/* Publishes that c finished every sequence below `reached` (C2), then, in
 * park mode, wakes the workers and producers waiting on it. */
static void advance(fe_bus_t *bus, consumer_t *c, uint64_t reached) {
  fe__store_release(&c->seq, reached); /* C2 */
  if (bus->ring.pub.wait == FE_WAIT_PARK) {
    if (c->wake_mask)
      fe__ring_wake_workers(&bus->ring, c->wake_mask);
    if (c->wakes_space)
      fe__ring_wake_space(&bus->ring);
  }
}

/* The end of a batch from next under gate: at most max_batch events. */
static inline uint64_t batch_end(const fe_bus_t *bus, uint64_t next,
                                 uint64_t gate) {
  return gate - next > bus->max_batch ? next + bus->max_batch : gate;
}

/* Runs one batch of consumer c on its own gates.  Returns how many
 * sequences it advanced. */
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
    uint64_t end = batch_end(bus, next, c->cached_gate);
    reached = c->stage != NULL ? run_stage(bus, c, next, end, &t)
                               : run_accountant(bus, next, end, &t);
  }
  account(c, &t);
  if (reached == next)
    return 0;
  advance(bus, c, reached);
  return (uint32_t)(reached - next);
}

/* The group's gate from `next`: the least of the gates on other workers
 * and, when a consumer is gated on the producers, the producers' (C1). */
static uint64_t group_gate(const fe_bus_t *bus, const worker_t *w,
                           uint64_t next) {
  uint64_t g = w->n_ext ? fe__ring_min(w->ext, w->n_ext) : UINT64_MAX;
  if (w->root && g > next) {
    uint64_t p = producers_gate(bus, next);
    if (p < g)
      g = p;
  }
  return g;
}

/* The fused pass (fe_stage_def_t.fuse): a worker whose consumers are all
 * fused handler stages runs them over the batch event by event, as one
 * wavefront: in step s, consumer j (in topological order) takes event
 * s - j.  So when j takes event e, every consumer before it has already
 * taken e + 1, and j knows at once whether e is its last event of the
 * batch: it is not when e + 1's verdict word is still 0 (no stage, here or
 * upstream, gave one, so j will take e + 1 too); on any verdict word the
 * pass stops there, and the rest of the batch goes stage by stage
 * (group_pass), where last_handled() finds each stage's last event.  That
 * keeps end_of_batch exact: a call gets 0 only when the same stage takes
 * e + 1 later in the batch.  The pass also stops at the first verdict that
 * is not FE_CONTINUE, after applying it as run_stage_as() does (a retry
 * pauses the stage at its event; the ones after it on this worker stop
 * before it, exactly as in the group pass).
 *
 * What the caller gets: from[j], the first sequence consumer j did not
 * take, and its tally so far.  A consumer paused by a retry gets
 * paused[j] = 1 and from[j] = the paused sequence.
 *
 * Relaxed loads of the verdict words are enough for the same reason as in
 * classify(): a verdict from an upstream stage on another worker
 * happens-before our read through C2/C1; one from a consumer before j on
 * this worker is program order; one from a parallel stage elsewhere may or
 * may not be seen, and only makes the pass stop early. */

typedef struct fused_stop {
  uint64_t step;    /* the step the pass stopped in (end + n - 1: none) */
  uint32_t who;     /* the consumer it stopped at */
  int called;       /* who's handler was called on its event */
  int paused;       /* ... and paused it (FE_RETRY) */
} fused_stop_t;

/* The handlers of a fused worker, in list order. */
typedef struct fused_fns {
  fe_stage_fn fn[FUSE_MAX];
  void *user[FUSE_MAX];
  fe_stage_ctx_t *ctx[FUSE_MAX];
} fused_fns_t;

/* Consumer j's call on ev, after = the event it takes next (NULL: ev is
 * its last of the batch).  0 to go on; else the pass stops, *stop says
 * where. */
static inline __attribute__((always_inline)) int
fused_call(fe_bus_t *bus, worker_t *w, const fused_fns_t *f, uint32_t j,
           uint64_t s, uint64_t e, fe_event_t *ev, const fe_event_t *after,
           tally_t *t, fused_stop_t *stop) {
  if (after != NULL && FE_UNLIKELY(fe__load_relaxed(&after->verdict) != 0)) {
    *stop = (fused_stop_t){s, j, 0, 0};
    return 1;
  }
  if (after == NULL)
    f->ctx[j]->end_of_batch = 1;
  fe_verdict_t r = f->fn[j](f->ctx[j], ev, f->user[j]);
  if (FE_LIKELY(r == FE_CONTINUE))
    return 0;
  consumer_t *c = w->list[j];
  uint32_t reason = c->ctx.reason;
  const char *text = c->ctx.text;
  c->ctx.reason = 0;
  c->ctx.text = NULL;
  int paused = apply_verdict(bus, c, ev, e, r, reason, text, 1, &t[j]);
  *stop = (fused_stop_t){s, j, 1, paused};
  return 1;
}

/* One step s of the wavefront with the edges tested: the first n - 1
 * steps, where the later consumers have not started, and the last ones,
 * where the earlier ones are done. */
static inline __attribute__((always_inline)) int
fused_edge_step(fe_bus_t *bus, worker_t *w, const fused_fns_t *f,
                uint64_t next, uint64_t end, uint64_t s, tally_t *t,
                fused_stop_t *stop, const uint32_t n) {
  uint8_t *const base = bus->ring.pub.slots;
  const uint64_t mask = bus->ring.pub.mask, size = bus->ring.pub.slot_size;
  const fe_event_t *after = s + 1 < end ? slot_at(base, mask, size, s + 1)
                                        : NULL;
  for (uint32_t j = 0; j < n; j++) {
    if (s < next + j) /* j starts at step next + j */
      break;
    uint64_t e = s - j;
    if (e >= end) { /* j is done; e - 1 is the next one's last */
      after = NULL;
      continue;
    }
    fe_event_t *ev = slot_at(base, mask, size, e);
    if (fused_call(bus, w, f, j, s, e, ev, after, t, stop))
      return 1;
    after = ev;
  }
  return 0;
}

/* The wavefront over [next, end).  In the middle steps every consumer
 * has an event and a next one: no edge tests, one slot address per step
 * (q[j + 1] is consumer j's event, q[j] the one it takes next: the event
 * consumer j - 1 took in this step, or for consumer 0 the next slot), and
 * with constant n the stages are unrolled. */
static inline __attribute__((always_inline)) void
fused_steps(fe_bus_t *bus, worker_t *w, uint64_t next, uint64_t end,
            tally_t *t, fused_stop_t *stop, const uint32_t n) {
  uint8_t *const base = bus->ring.pub.slots;
  const uint64_t mask = bus->ring.pub.mask, size = bus->ring.pub.slot_size;
  fused_fns_t f;
  for (uint32_t j = 0; j < n; j++) {
    f.fn[j] = w->list[j]->stage->fn;
    f.user[j] = w->list[j]->stage->user;
    f.ctx[j] = &w->list[j]->ctx;
    f.ctx[j]->end_of_batch = 0;
  }
  /* Published slots only, as in run_stage_as. */
  for (uint64_t s = next; s < end && s < next + FE_PREFETCH; s++)
    fe_bus_priv_prefetch_w(slot_at(base, mask, size, s));
  const uint64_t mid = next + n - 1; /* first step with every consumer */
  uint64_t s = next;
  for (; s < mid && s < end + n - 1; s++) {
    if (s + FE_PREFETCH < end)
      fe_bus_priv_prefetch_w(slot_at(base, mask, size, s + FE_PREFETCH));
    if (fused_edge_step(bus, w, &f, next, end, s, t, stop, n))
      return;
  }
  if (s + 1 < end) {
    fe_event_t *q[FUSE_MAX + 1];
    for (uint32_t j = 0; j < n; j++)
      q[j + 1] = slot_at(base, mask, size, s - j);
    for (; s + 1 < end; s++) {
      q[0] = slot_at(base, mask, size, s + 1);
      if (s + FE_PREFETCH < end)
        fe_bus_priv_prefetch_w(slot_at(base, mask, size, s + FE_PREFETCH));
#pragma GCC unroll 8
      for (uint32_t j = 0; j < n; j++)
        if (fused_call(bus, w, &f, j, s, s - j, q[j + 1], q[j], t, stop))
          return;
#pragma GCC unroll 8
      for (uint32_t j = n; j > 0; j--)
        q[j] = q[j - 1];
    }
  }
  for (; s < end + n - 1; s++)
    if (fused_edge_step(bus, w, &f, next, end, s, t, stop, n))
      return;
  *stop = (fused_stop_t){end + n - 1, 0, 0, 0};
}

/* Runs the fused pass over [next, end) (see above) and fills from[] and
 * the tallies.  Returns the consumer a retry paused, or FUSE_MAX: none. */
static uint32_t fused_pass(fe_bus_t *bus, worker_t *w, uint64_t next,
                           uint64_t end, uint64_t from[], tally_t t[]) {
  const uint32_t n = w->n;
  fused_stop_t stop;
  /* Constant n for the common chains: the compiler unrolls the stages. */
  if (n == 2)
    fused_steps(bus, w, next, end, t, &stop, 2);
  else if (n == 3)
    fused_steps(bus, w, next, end, t, &stop, 3);
  else if (n == 4)
    fused_steps(bus, w, next, end, t, &stop, 4);
  else
    fused_steps(bus, w, next, end, t, &stop, n);
  /* In the stop's step, consumers before `who` took s - j, the ones after
   * it took s - j - 1 (so their next is s - j), and `who` took its event
   * only if its handler was called and did not pause it. */
  uint32_t paused = stop.paused ? stop.who : FUSE_MAX;
  for (uint32_t j = 0; j < n; j++) {
    uint64_t s = stop.step, f;
    int took = j < stop.who || (j == stop.who && stop.called && !stop.paused);
    if (s + (uint64_t)took < next + j)
      f = next; /* not started */
    else
      f = s + (uint64_t)took - j;
    if (f > end)
      f = end;
    from[j] = f;
    /* Every call up to from[j] (and the paused event's) handled the
     * event; the ones that continued a live event complete it at the
     * sink.  A verdict call's own tally came from apply_verdict(). */
    uint64_t calls = f - next + (j == paused);
    t[j].handled += calls;
    if (w->list[j]->counts_outcome)
      t[j].done += calls - (j == stop.who && stop.called);
  }
  return paused;
}

/* One pass of an aligned worker (every consumer at seq `next`, none
 * paused): the gates are read once for the whole group, each consumer in
 * topological order runs over the same batch (so a chain of stages on one
 * worker pays the per-batch work once, and each stage's calls stay in
 * sequence order with exact end_of_batch), then every consumer's progress
 * is published.  A fused worker first takes the batch event by event
 * (fused_pass), and the loop below runs only what that left.  A consumer
 * whose upstream on this worker stopped early (a paused retry) stops there
 * too; the worker then leaves the group pass until its consumers line up
 * again (worker_poll).  Returns how many sequences the group advanced. */
static uint32_t group_pass(fe_bus_t *bus, worker_t *w) {
  consumer_t *const *list = w->list;
  const uint32_t n = w->n;
  uint64_t next = fe__load_relaxed(&list[0]->seq); /* owner's own value */
  if (next >= w->cached_gate) {
    w->cached_gate = group_gate(bus, w, next);
    if (next >= w->cached_gate)
      return 0;
  }
  uint64_t end = batch_end(bus, next, w->cached_gate);
  uint64_t reached[64];
  tally_t fused_t[FUSE_MAX];
  uint64_t from[FUSE_MAX];
  uint32_t paused = FUSE_MAX;
  /* Fused only from a live first event (its verdict is what consumer 0
   * would otherwise need to test), and with no timing hook to feed. */
  int fused = w->fused && FE_LIKELY(bus->on_timing == NULL) &&
              fe__load_relaxed(&fe__ring_slot(&bus->ring, next)->verdict) == 0;
  if (fused) {
    memset(fused_t, 0, sizeof fused_t);
    paused = fused_pass(bus, w, next, end, from, fused_t);
  }
  int short_pass = 0;
  for (uint32_t i = 0; i < n; i++) {
    consumer_t *c = list[i];
    uint64_t e = end;
    if (FE_UNLIKELY(short_pass))
      for (uint64_t up = c->up_local; up != 0; up &= up - 1)
        if (reached[__builtin_ctzll(up)] < e)
          e = reached[__builtin_ctzll(up)];
    tally_t t = {0, 0, 0, 0, 0, 0, 0, c->counts_outcome ? bus->audit : NULL};
    uint64_t start = next;
    if (fused) {
      t = fused_t[i];
      start = from[i];
    }
    if (i == paused)
      reached[i] = start;
    else
      reached[i] = start >= e           ? e
                   : c->stage != NULL   ? run_stage(bus, c, start, e, &t)
                                        : run_accountant(bus, start, e, &t);
    account(c, &t);
    short_pass |= reached[i] != end;
  }
  for (uint32_t i = 0; i < n; i++)
    if (reached[i] != next)
      advance(bus, list[i], reached[i]);
  if (FE_UNLIKELY(short_pass))
    w->aligned = 0;
  return (uint32_t)(end - next);
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

/* One pass of worker w: the group pass while its consumers stand together,
 * else one batch per consumer on its own gates until they line up again
 * (which they do as soon as the lagging ones catch up with their
 * upstreams). */
uint32_t fe__worker_poll(fe_bus_t *bus, worker_t *w) {
  if (FE_LIKELY(w->aligned))
    return group_pass(bus, w);
  uint32_t n = 0;
  int together = w->group;
  for (uint32_t i = 0; i < w->n; i++) {
    consumer_t *c = w->list[i];
    n += consumer_run(bus, c);
    together &= !c->retry_pending;
  }
  for (uint32_t i = 0; together && i < w->n; i++)
    together = fe__load_relaxed(&w->list[i]->seq) ==
               fe__load_relaxed(&w->list[0]->seq);
  if (together)
    w->aligned = 1;
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
int fe__worker_done(const fe_bus_t *bus, const worker_t *w) {
  uint64_t target = fe__load_acquire(&bus->ring.stop_target);
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
  __atomic_fetch_or(&bus->ring.pub.parked_mask, bit, __ATOMIC_SEQ_CST);
  int fenced = fe__asym_heavy(&bus->ring.pub.asym) == 0; /* else: no sleep */
  if (fenced && !worker_has_work(bus, w, 1) && !fe__worker_done(bus, w) &&
      !fe__load_relaxed(&bus->ring.abort_workers)) {
    /* Sleep no longer than until a paused retry is due. */
    uint64_t due = retry_due_in(bus, w), nap = PARK_SAFETY_NS;
    if (due < nap)
      nap = due;
    __atomic_fetch_add(&bus->ring.parks, 1, __ATOMIC_RELAXED);
    if (fe__futex_wait(&w->futex, v, nap) != 0 && nap == PARK_SAFETY_NS &&
        worker_has_work(bus, w, 0)) {
      /* Woken by the safety timeout with work waiting: unless a wake is in
       * flight (the futex word moved), a wake-up was lost. */
      sched_yield();
      if (__atomic_load_n(&w->futex, __ATOMIC_ACQUIRE) == v)
        __atomic_fetch_add(&bus->ring.lost_wakeups, 1, __ATOMIC_RELAXED);
    }
  }
  __atomic_fetch_and(&bus->ring.pub.parked_mask, ~bit, __ATOMIC_RELAXED);
}

static void idle_wait(fe_bus_t *bus, worker_t *w, uint32_t *idle) {
  uint32_t i = (*idle)++;
  if (bus->ring.pub.wait == FE_WAIT_SPIN || i < bus->ring.spin_tries) {
    ck_pr_stall();
  } else if (bus->ring.pub.wait == FE_WAIT_YIELD ||
             i < bus->ring.spin_tries + bus->ring.yield_tries) {
    sched_yield();
  } else {
    park_worker(bus, w);
    *idle = 0;
  }
}

void *fe__worker_main(void *arg) {
  worker_t *w = arg;
  fe_bus_t *bus = w->bus;
  uint32_t idle = 0;
  while (!fe__load_relaxed(&bus->ring.abort_workers)) {
    uint32_t got = fe__worker_poll(bus, w);
    if (fe__catchup_due(&w->trail, got, bus->max_batch) &&
        bus->catchup_pauses != 0) {
      fe__add_owned(&w->catchups, 1);
      for (uint32_t i = 0; i < bus->catchup_pauses; i++)
        ck_pr_stall();
    }
    if (got != 0) {
      idle = 0;
      continue;
    }
    if (fe__worker_done(bus, w))
      break;
    idle_wait(bus, w, &idle);
  }
  return NULL;
}

