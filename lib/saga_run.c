/* The saga coordinator proper: the one thread (the driver) that runs
 * actions and compensations, applies requests and fires timers.  See
 * saga_impl.h for the structures and the memory-order pairs, saga_req.c
 * for the requesting side.
 *
 * A pass: read the clock, fire the timers due (timeouts claim the token
 * and count as retryable failures; backoffs make the saga runnable), take
 * the inbox and apply every request, then invoke up to max_work actions or
 * compensations from the run queue.  Everything a pass touches is the
 * driver's alone except the ctl words, which it changes only by CAS (a
 * completer, aborter or redriver may be changing them at the same moment):
 *
 *   arm     before each invocation: set the new token's generation and
 *           PENDING; fails in the forward phase if an abort got in first.
 *   claim   the coordinator's own result (a synchronous return, a
 *           timeout): clear PENDING if the token is still pending; fails if
 *           a completer or an aborter took it first, and then the saga
 *           waits for that request, which is on its way.
 *
 * The coordinator's CASes on ctl are relaxed but for arm's release (A1):
 * it publishes nothing else through ctl (requesters read only sgen next to
 * it, published by the starter's C1, whose release sequence these
 * read-modify-writes continue) and consumes nothing through it (request
 * data comes through P1/P2).
 */
#include "saga_impl.h"

#include <limits.h>
#include <stdio.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ----------------------------------------------------------- helpers */

static uint64_t mono_now(fe_saga_coord_t *c) {
  return c->cfg.now_ns ? c->cfg.now_ns(c->cfg.clock_user) : fe_clock_now_ns();
}

/* The coordinator's own generator for retry jitter. */
static uint64_t rng_next(fe_saga_coord_t *c) { return fe__splitmix64(&c->rng); }

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

static sg_slot_t *of_timer(fe__tw_node_t *n) {
  return (sg_slot_t *)((char *)n - offsetof(sg_slot_t, timer));
}

static const sg_def_t *def_of(const fe_saga_coord_t *c, const sg_slot_t *s) {
  return &c->defs[s->def];
}

static int terminal(uint32_t state) {
  return state == FE_SAGA_COMPLETED || state == FE_SAGA_COMPENSATED ||
         state == FE_SAGA_FAILED;
}

/* --------------------------------------------------------- run queue */

static void runq_push(fe_saga_coord_t *c, sg_slot_t *s) {
  if (s->flags & SF_RUNQ)
    return;
  uint32_t i = sg_index(c, s);
  s->flags |= SF_RUNQ;
  s->rnext = SG_NIL;
  s->rprev = c->run_tail;
  if (c->run_tail == SG_NIL)
    c->run_head = i;
  else
    c->slots[c->run_tail].rnext = i;
  c->run_tail = i;
}

static void runq_unlink(fe_saga_coord_t *c, sg_slot_t *s) {
  if (!(s->flags & SF_RUNQ))
    return;
  if (s->rprev == SG_NIL)
    c->run_head = s->rnext;
  else
    c->slots[s->rprev].rnext = s->rnext;
  if (s->rnext == SG_NIL)
    c->run_tail = s->rprev;
  else
    c->slots[s->rnext].rprev = s->rprev;
  s->rnext = s->rprev = SG_NIL;
  s->flags &= (uint8_t)~SF_RUNQ;
}

/* ------------------------------------------------------ view, states */

/* Writes s's view; appends a history entry when the state, step or
 * attempt changed (from: the state before, or -1 to take the view's). */
static void publish(fe_saga_coord_t *c, sg_slot_t *s, int from) {
  uint32_t i = sg_index(c, s);
  /* The coordinator is the view's only writer now: relaxed reads. */
  uint64_t old = fe__load_relaxed(&s->vstate);
  uint64_t aux = fe__load_relaxed(&s->vaux);
  /* from == 0: the saga starts (or resumes after replay) now */
  uint64_t start = from == 0 ? c->now : fe__load_relaxed(&s->vstart);
  uint64_t total = aux >> 32;
  uint32_t ofrom = from >= 0 ? (uint32_t)from : (uint32_t)(old & 0xff);
  int tr = from >= 0 || (old & 0xff) != s->state ||
           ((old >> 8) & 0xff) != s->step || (old >> 32) != s->attempt;
  fe__saga_view_begin(s);
  if (from == 0)
    fe__store_relaxed(&s->vstart, start);
  fe__store_relaxed(&s->vstate,
                    fe__saga_vstate(s->state, s->step, s->wait, s->phase,
                                    s->def, s->attempt));
  if (tr && c->hist_n != 0) {
    uint64_t us = c->now > start ? (c->now - start) / 1000 : 0;
    if (us > (UINT64_C(1) << 40) - 1)
      us = (UINT64_C(1) << 40) - 1;
    uint64_t att = s->attempt > 2047 ? 2047 : s->attempt;
    uint64_t e = (uint64_t)s->state | (uint64_t)(ofrom & 0xf) << 4 |
                 (uint64_t)s->step << 8 | att << 13 | us << 24;
    fe__store_relaxed(&c->hist[(size_t)i * c->hist_n + total % c->hist_n],
                      e);
  }
  total += (uint64_t)tr;
  fe__store_relaxed(&s->vaux, (uint64_t)s->reason | total << 32);
  fe__saga_view_end(s);
}

/* The one place a saga's state changes: counts and view. */
static void set_state(fe_saga_coord_t *c, sg_slot_t *s, uint32_t state,
                      uint32_t wait) {
  uint32_t from = s->state;
  if (from != state) {
    if (from != 0 && !terminal(from))
      c->st.in_state[from]--;
    if (!terminal(state))
      c->st.in_state[state]++;
  }
  s->state = (uint8_t)state;
  s->wait = (uint8_t)wait;
  publish(c, s, -1);
}

/* ------------------------------------------------------------ ctl CAS */

/* Arms the token of generation gen.  0 if an abort got in first (forward
 * phase only: a compensation runs whatever the abort flags say). */
static int arm(fe_saga_coord_t *c, sg_slot_t *s, uint64_t gen) {
  const sg_def_t *d = def_of(c, s);
  uint64_t pnr_step = s->phase == PH_FWD && (int32_t)s->step == d->pnr
                          ? CTL_PNR_STEP
                          : 0;
  uint64_t v = fe__load_relaxed(&s->ctl);
  for (;;) {
    if (s->phase == PH_FWD && (v & CTL_ABORTED))
      return 0;
    uint64_t keep = CTL_FLAGS(v) & ~(uint64_t)(CTL_PENDING | CTL_CLAIMED |
                                               CTL_PNR_STEP);
    uint64_t nv = gen << CTL_GEN_SHIFT | keep | CTL_PENDING | pnr_step;
    if (__atomic_compare_exchange_n(&s->ctl, &v, nv, 1,
                                    __ATOMIC_RELEASE, /* A1, pairs with A2 */
                                    __ATOMIC_RELAXED))
      return 1;
  }
}

/* Takes the pending token of generation gen for the coordinator's own
 * result.  0 if it is not pending any more (*vp: the ctl value seen). */
static int claim(fe_saga_coord_t *c, sg_slot_t *s, uint64_t gen, int done,
                 uint64_t *vp) {
  (void)c;
  uint64_t v = fe__load_relaxed(&s->ctl);
  for (;;) {
    if (CTL_GEN(v) != gen || !(v & CTL_PENDING)) {
      *vp = v;
      return 0;
    }
    uint64_t nv = v & ~(uint64_t)(CTL_PENDING | CTL_PNR_STEP);
    if (done && (v & CTL_PNR_STEP))
      nv |= CTL_PNR;
    if (__atomic_compare_exchange_n(&s->ctl, &v, nv, 1, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
      s->wait_gen = 0;
      *vp = nv;
      return 1;
    }
  }
}

static void ctl_set(sg_slot_t *s, uint64_t set, uint64_t clear) {
  uint64_t v = fe__load_relaxed(&s->ctl);
  while (!__atomic_compare_exchange_n(&s->ctl, &v, (v & ~clear) | set, 1,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* -------------------------------------------------------- the saga */

static void apply(fe_saga_coord_t *c, sg_slot_t *s, uint32_t r,
                  uint32_t reason);

static void free_slot(fe_saga_coord_t *c, sg_slot_t *s) {
  uint32_t i = sg_index(c, s);
  fe__tw_cancel(&c->tw, &s->timer);
  runq_unlink(c, s);
  /* Keep the generation (late tokens of this saga stay late), drop the
   * flags: no CAS of a requester succeeds on a slot without LIVE. */
  uint64_t v = fe__load_relaxed(&s->ctl);
  while (!__atomic_compare_exchange_n(&s->ctl, &v,
                                      CTL_GEN(v) << CTL_GEN_SHIFT, 1,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  s->state = 0;
  s->wait = 0;
  s->flags = 0;
  s->wait_gen = 0;
  c->st.live--;
  fe__saga_view_begin(s);
  fe__store_relaxed(&s->vstate, 0);
  fe__saga_view_end(s);
  fe__saga_free_push(c, i); /* F1: the slot is the starters' from here */
}

static void finish(fe_saga_coord_t *c, sg_slot_t *s, uint32_t state,
                   uint32_t r) {
  s->wait_gen = 0;
  set_state(c, s, state, FE_SAGA_WAIT_NONE);
  if (state == FE_SAGA_COMPLETED)
    c->st.completed++;
  else if (state == FE_SAGA_COMPENSATED)
    c->st.compensated++;
  else
    c->st.failed++;
  if (c->logs)
    fe__saga_log(c, s, FE_SAGA_REC_END, r);
  if (c->cfg.on_end != NULL) {
    uint32_t i = sg_index(c, s);
    fe_saga_end_t e = {sg_id(fe__load_relaxed(&s->sgen), i), s->def, state,
                       s->reason, c->cfg.ctx_size, sg_ctx(c, i)};
    c->cfg.on_end(&e, c->cfg.user);
  }
  free_slot(c, s);
}

static void dead_letter(fe_saga_coord_t *c, sg_slot_t *s, uint32_t kind,
                        fe_saga_alert_t *a) {
  uint32_t i = sg_index(c, s);
  const sg_def_t *d = def_of(c, s);
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = c->cfg.dlq_event_type;
  ev.trace_id = a->saga_id;
  snprintf(ev.order.client_order_id, sizeof ev.order.client_order_id,
           "saga-%llu", (unsigned long long)a->saga_id);
  size_t nl = strlen(d->name);
  memcpy(ev.order.symbol, d->name,
         nl < sizeof ev.order.symbol - 1 ? nl : sizeof ev.order.symbol - 1);
  char text[FE_DLQ_TEXT_MAX];
  snprintf(text, sizeof text, "saga %s: %s of %s stuck", d->name,
           s->phase == PH_COMP ? "compensation" : "action",
           d->steps[s->step].name);
  uint64_t key = a->saga_id;
  fe_dlq_put_t in;
  memset(&in, 0, sizeof in);
  in.event = &ev;
  in.user_area = sg_ctx(c, i);
  in.user_len = in.user_area != NULL ? c->cfg.ctx_size : 0;
  in.stage = s->step;
  in.kind = kind;
  in.reason = a->reason <= FE_REASON_MAX ? a->reason : 0;
  in.text = text;
  in.attempts = s->attempt;
  uint64_t wall = c->cfg.wall_ns ? c->cfg.wall_ns(c->cfg.clock_user)
                                 : fe_clock_realtime_ns();
  uint64_t age = c->now - fe__load_relaxed(&s->vstart);
  in.first_seen_ns = wall > age ? wall - age : 0;
  in.key = &key;
  in.key_len = sizeof key;
  a->dlq_rc = fe_dlq_put(c->cfg.dlq, &in, 0, &a->dlq_id);
  if (a->dlq_rc != 0)
    c->st.dlq_failed++;
}

/* Parks s STUCK: after the point of no return, or in a compensation. */
static void stuck(fe_saga_coord_t *c, sg_slot_t *s, uint32_t r,
                  uint32_t dlq_kind) {
  ctl_set(s, CTL_STUCK, 0);
  c->st.stuck++;
  set_state(c, s, FE_SAGA_STUCK, FE_SAGA_WAIT_NONE);
  if (c->logs)
    fe__saga_log(c, s, FE_SAGA_REC_RESULT, r);
  fe_saga_alert_t a;
  memset(&a, 0, sizeof a);
  a.kind = FE_SAGA_ALERT_STUCK;
  a.def_id = s->def;
  a.saga_id = sg_id(fe__load_relaxed(&s->sgen), sg_index(c, s));
  a.step = s->step;
  a.attempt = s->attempt;
  a.compensating = s->phase == PH_COMP;
  a.reason = s->reason;
  a.dlq_rc = 1;
  if (c->cfg.dlq != NULL)
    dead_letter(c, s, dlq_kind, &a);
  if (c->cfg.on_alert != NULL)
    c->cfg.on_alert(&a, c->cfg.user);
}

/* The next compensation (the newest completed compensatable step), or the
 * end.  rectype/r: the record that reports the change. */
static void next_compensation(fe_saga_coord_t *c, sg_slot_t *s,
                              uint32_t rectype, uint32_t r) {
  uint32_t m = s->done & def_of(c, s)->comp_mask;
  if (m == 0) {
    finish(c, s, (s->flags & SF_COMP_ANY) ? FE_SAGA_COMPENSATED
                                          : FE_SAGA_FAILED, r);
    return;
  }
  s->step = (uint8_t)(31 - __builtin_clz(m));
  s->attempt = 0;
  set_state(c, s, FE_SAGA_COMPENSATING, FE_SAGA_WAIT_NONE);
  if (c->logs)
    fe__saga_log(c, s, rectype, r);
  runq_push(c, s);
}

static void begin_compensation(fe_saga_coord_t *c, sg_slot_t *s,
                               uint32_t rectype, uint32_t r) {
  ctl_set(s, CTL_COMP, 0);
  s->phase = PH_COMP;
  next_compensation(c, s, rectype, r);
}

/* Applies result r (DONE, RETRY or FAIL) of the action or compensation
 * at hand; its token, if any, was claimed. */
static void apply(fe_saga_coord_t *c, sg_slot_t *s, uint32_t r,
                  uint32_t reason) {
  const sg_def_t *d = def_of(c, s);
  const sg_step_t *t = &d->steps[s->step];
  s->deadline = 0;
  s->wait_gen = 0;
  if (r == FE_SAGA_DONE) {
    if (s->phase == PH_COMP) {
      s->done &= (uint16_t)~(1u << s->step);
      s->flags |= SF_COMP_ANY;
      next_compensation(c, s, FE_SAGA_REC_RESULT, r);
      return;
    }
    s->done |= (uint16_t)(1u << s->step);
    s->step++;
    s->attempt = 0;
    if (s->step == d->n_steps) {
      finish(c, s, FE_SAGA_COMPLETED, r);
      return;
    }
    set_state(c, s, FE_SAGA_RUNNING, FE_SAGA_WAIT_NONE);
    if (c->logs)
      fe__saga_log(c, s, FE_SAGA_REC_RESULT, r);
    runq_push(c, s);
    return;
  }
  s->reason = reason;
  uint32_t kind = FE_DLQ_FAIL;
  if (r == FE_SAGA_RETRY) {
    uint64_t delay;
    int rc = fe_retry_next(&t->retry, s->attempt ? s->attempt : 1, reason,
                           rng_next(c), &delay);
    if (rc == 0) {
      c->st.retries++;
      s->deadline = sat_add(c->now, delay);
      fe__tw_arm(&c->tw, &s->timer, s->deadline);
      set_state(c, s, s->phase == PH_COMP ? FE_SAGA_COMPENSATING
                                          : FE_SAGA_BACKOFF,
                FE_SAGA_WAIT_TIMER);
      if (c->logs)
        fe__saga_log(c, s, FE_SAGA_REC_RESULT, r);
      return;
    }
    if (rc == FE_EEXHAUSTED)
      kind = FE_DLQ_RETRIES_EXHAUSTED;
  }
  /* Failed for good.  Before the point of no return: compensate. */
  if (s->phase == PH_FWD && !(fe__load_relaxed(&s->ctl) & CTL_PNR)) {
    begin_compensation(c, s, FE_SAGA_REC_RESULT, r);
    return;
  }
  stuck(c, s, r, kind);
}

/* Calls the action (or compensation) at hand of s with token tok; notes
 * a changed context.  *reason: the call's. */
static fe_saga_result_t call_step(fe_saga_coord_t *c, sg_slot_t *s,
                                  uint64_t tok, int replayed,
                                  uint32_t *reason) {
  uint32_t i = sg_index(c, s);
  const sg_step_t *t = &def_of(c, s)->steps[s->step];
  int comp = s->phase == PH_COMP;
  fe_saga_call_t call;
  memset(&call, 0, sizeof call);
  call.saga_id = sg_id(fe__load_relaxed(&s->sgen), i);
  call.token = tok;
  call.def_id = s->def;
  call.step = s->step;
  call.attempt = s->attempt;
  call.compensating = (uint32_t)comp;
  call.replayed = (uint32_t)replayed;
  call.ctx = sg_ctx(c, i);
  call.ctx_size = c->cfg.ctx_size;
  uint64_t h0 = 0;
  int watch = c->logs && call.ctx != NULL;
  if (watch)
    h0 = XXH3_64bits(call.ctx, call.ctx_size);
  fe_saga_result_t r = (comp ? t->compensate : t->action)(&call, t->user);
  c->st.invocations++;
  c->now = mono_now(c);
  if (watch && XXH3_64bits(call.ctx, call.ctx_size) != h0)
    s->flags |= SF_CTX_DIRTY;
  *reason = call.reason;
  return r;
}

/* Invokes the action (or compensation) at hand. */
static void invoke(fe_saga_coord_t *c, sg_slot_t *s) {
  uint32_t i = sg_index(c, s);
  const sg_def_t *d = def_of(c, s);
  const sg_step_t *t = &d->steps[s->step];
  int comp = s->phase == PH_COMP;
  int replayed = (s->flags & SF_IN_DOUBT) != 0;
  uint64_t gen = s->wait_gen, tok;
  if (!replayed || gen == 0) {
    do /* a token of 0 would read as "none" in records: skip it */
      gen = __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELAXED);
    while (fe__saga_tok_encode(c, sg_id(gen, i)) == 0);
  }
  s->flags &= (uint8_t)~SF_IN_DOUBT;
  if (gen > SG_GEN_MAX) { /* 2^40 ids and tokens used: fail the step */
    s->attempt++;
    apply(c, s, FE_SAGA_FAIL, 0);
    return;
  }
  if (!arm(c, s, gen))
    return; /* an abort is on its way; it decides what comes next */
  s->wait_gen = gen;
  tok = fe__saga_tok_encode(c, sg_id(gen, i));
  if (!replayed || s->attempt == 0)
    s->attempt++;
  set_state(c, s, comp ? FE_SAGA_COMPENSATING : FE_SAGA_RUNNING,
            FE_SAGA_WAIT_NONE);
  int lrc = c->logs ? fe__saga_log(c, s, FE_SAGA_REC_STEP, 0) : 0;

  fe_saga_result_t r;
  uint32_t reason;
  if ((t->flags & FE_SAGA_STEP_DURABLE) && c->journal != NULL &&
      (lrc != 0 || fe__saga_journal_durable(c) != 0)) {
    /* Its STEP record is not durable: the effect must not happen.  An
     * attempt that failed, retryable; the token armed for it goes with
     * the claim below as any synchronous result's does. */
    r = FE_SAGA_RETRY;
    reason = FE_SAGA_REASON_JOURNAL;
    c->now = mono_now(c); /* the failed commit may have taken a while */
  } else {
    r = call_step(c, s, tok, replayed, &reason);
  }

  if (r == FE_SAGA_PENDING) {
    s->deadline = 0;
    if (t->timeout_ns != 0) {
      s->deadline = sat_add(c->now, t->timeout_ns);
      fe__tw_arm(&c->tw, &s->timer, s->deadline);
    }
    set_state(c, s, comp ? FE_SAGA_COMPENSATING : FE_SAGA_WAITING,
              FE_SAGA_WAIT_TOKEN);
    if (c->logs)
      fe__saga_log(c, s, FE_SAGA_REC_RESULT, r);
    return;
  }
  if (r != FE_SAGA_DONE && r != FE_SAGA_RETRY)
    r = FE_SAGA_FAIL;
  uint64_t v;
  if (!claim(c, s, gen, r == FE_SAGA_DONE, &v)) {
    /* A completion or an abort got the token during the call: it wins and
     * its request is on the way; this result is late.  If an abort won
     * over a DONE, the step did complete: compensate it too. */
    c->st.late++;
    if (!comp && r == FE_SAGA_DONE && (v & CTL_ABORTED))
      s->done |= (uint16_t)(1u << s->step);
    set_state(c, s, comp ? FE_SAGA_COMPENSATING : FE_SAGA_WAITING,
              FE_SAGA_WAIT_TOKEN);
    return;
  }
  apply(c, s, (uint32_t)r, reason);
}

/* ------------------------------------------------------------ requests */

static void on_start(fe_saga_coord_t *c, sg_slot_t *s) {
  s->phase = PH_FWD;
  s->step = 0;
  s->attempt = 0;
  s->done = 0;
  s->reason = 0;
  s->flags = 0;
  s->wait = 0;
  s->wait_gen = 0;
  s->deadline = 0;
  s->state = FE_SAGA_RUNNING;
  c->st.in_state[FE_SAGA_RUNNING]++;
  c->st.started++;
  c->st.live++;
  publish(c, s, 0);
  if (c->journal != NULL) /* the starter appended the START */
    fe__saga_journal_started(c, sg_index(c, s));
  else if (c->logs)
    fe__saga_log(c, s, FE_SAGA_REC_START, 0);
  runq_push(c, s);
}

static void do_abort(fe_saga_coord_t *c, sg_slot_t *s) {
  if (s->phase == PH_COMP || s->state == 0 || terminal(s->state))
    return;
  c->st.aborts++;
  s->reason = fe__load_relaxed(&s->abort_reason); /* after P2 */
  fe__tw_cancel(&c->tw, &s->timer);
  s->deadline = 0;
  s->wait_gen = 0;
  begin_compensation(c, s, FE_SAGA_REC_ABORT, 0);
}

static void on_complete(fe_saga_coord_t *c, sg_slot_t *s) {
  if (!(fe__load_relaxed(&s->ctl) & CTL_CLAIMED))
    return; /* cannot happen: only a claim sets the bit */
  uint64_t res = fe__load_relaxed(&s->cres); /* after P2 */
  ctl_set(s, 0, CTL_CLAIMED);
  fe__tw_cancel(&c->tw, &s->timer);
  apply(c, s, (uint32_t)(res & 0xff), (uint32_t)(res >> 8));
  if (s->state != 0 && (s->flags & SF_ABORT_LATER)) {
    s->flags &= (uint8_t)~SF_ABORT_LATER;
    do_abort(c, s);
  }
}

static void on_abort(fe_saga_coord_t *c, sg_slot_t *s) {
  if (fe__load_relaxed(&s->ctl) & CTL_CLAIMED) {
    /* A completion took the token before the abort: apply it first. */
    s->flags |= SF_ABORT_LATER;
    return;
  }
  do_abort(c, s);
}

static void on_heartbeat(fe_saga_coord_t *c, sg_slot_t *s) {
  uint64_t hb = fe__load_relaxed(&s->hb); /* after P2: the newest */
  uint64_t v = fe__load_relaxed(&s->ctl);
  if (s->wait != FE_SAGA_WAIT_TOKEN || !(v & CTL_PENDING) ||
      (CTL_GEN(v) & 0xffffffu) != hb >> HB_US_BITS)
    return; /* for a token no longer pending */
  uint64_t ext = (hb & HB_US_MAX) * 1000;
  if (ext == 0)
    ext = def_of(c, s)->steps[s->step].timeout_ns;
  if (ext == 0)
    return; /* no timeout to push back */
  s->deadline = sat_add(c->now, ext);
  fe__tw_arm(&c->tw, &s->timer, s->deadline);
  c->st.heartbeats++;
  if (c->logs)
    fe__saga_log(c, s, FE_SAGA_REC_HEARTBEAT, 0);
}

static void on_redrive(fe_saga_coord_t *c, sg_slot_t *s) {
  if (s->state != FE_SAGA_STUCK)
    return;
  c->st.redriven++;
  s->attempt = 0;
  set_state(c, s, s->phase == PH_COMP ? FE_SAGA_COMPENSATING
                                      : FE_SAGA_RUNNING,
            FE_SAGA_WAIT_NONE);
  if (c->logs)
    fe__saga_log(c, s, FE_SAGA_REC_REDRIVE, 0);
  runq_push(c, s);
}

/* Takes the inbox whole and applies each slot's requests, oldest slot
 * first.  Returns the slots handled. */
static uint64_t drain(fe_saga_coord_t *c) {
  uint32_t h = __atomic_exchange_n(&c->inbox, SG_NIL,
                                   __ATOMIC_ACQUIRE); /* Q2, pairs with Q1 */
  /* Reverse the stack into arrival order.  Every slot on it has
   * REQ_QUEUED set, so no requester touches its qnext meanwhile. */
  uint32_t prev = SG_NIL;
  while (h != SG_NIL) {
    uint32_t nx = fe__load_relaxed(&c->slots[h].qnext);
    fe__store_relaxed(&c->slots[h].qnext, prev);
    prev = h;
    h = nx;
  }
  uint64_t n = 0;
  for (uint32_t i = prev; i != SG_NIL; n++) {
    sg_slot_t *s = &c->slots[i];
    /* Read the link first: once pend is cleared a requester may queue the
     * slot again and rewrite it. */
    i = fe__load_relaxed(&s->qnext);
    uint32_t bits = __atomic_exchange_n(&s->pend, 0,
                                        __ATOMIC_ACQUIRE); /* P2 */
    if (bits & REQ_START)
      on_start(c, s);
    /* Anything else for a free slot is a stale heartbeat: drop it. */
    if ((bits & REQ_HEARTBEAT) && s->state != 0)
      on_heartbeat(c, s);
    if ((bits & REQ_COMPLETE) && s->state != 0)
      on_complete(c, s);
    if ((bits & REQ_ABORT) && s->state != 0)
      on_abort(c, s);
    if ((bits & REQ_REDRIVE) && s->state != 0)
      on_redrive(c, s);
  }
  return n;
}

/* -------------------------------------------------------------- timers */

static void on_timer(fe__tw_node_t *n, void *user) {
  fe_saga_coord_t *c = user;
  sg_slot_t *s = of_timer(n);
  if (s->wait == FE_SAGA_WAIT_TIMER) { /* backoff over */
    s->deadline = 0;
    set_state(c, s, s->phase == PH_COMP ? FE_SAGA_COMPENSATING
                                        : FE_SAGA_RUNNING,
              FE_SAGA_WAIT_NONE);
    runq_push(c, s);
    return;
  }
  uint64_t v;
  if (s->wait != FE_SAGA_WAIT_TOKEN || !claim(c, s, s->wait_gen, 0, &v))
    return; /* a completion or an abort took the token: it is on its way */
  c->st.timeouts++;
  apply(c, s, FE_SAGA_RETRY, FE_SAGA_REASON_TIMEOUT);
}

/* ----------------------------------------------------------- the pass */

static void publish_stats(fe_saga_coord_t *c) {
  uint64_t w[SG_NSTATS];
  memcpy(w, &c->st, sizeof w);
  uint32_t q = fe__load_relaxed(&c->sseq); /* the writer's own */
  fe__store_relaxed(&c->sseq, q + 1);
  fe__saga_fence_rel(); /* S1, pairs with S4 */
  for (size_t k = 0; k < SG_NSTATS; k++)
    fe__store_relaxed(&c->pub[k], w[k]);
  fe__store_release(&c->sseq, q + 2); /* S2, pairs with S3 */
}

static int runnable(const sg_slot_t *s) {
  return s->wait == FE_SAGA_WAIT_NONE &&
         (s->state == FE_SAGA_RUNNING || s->state == FE_SAGA_COMPENSATING);
}

int fe__saga_pass(fe_saga_coord_t *c, uint32_t max_work) {
  c->now = mono_now(c);
  uint64_t work = fe__tw_advance(&c->tw, c->now, on_timer, c);
  work += drain(c);
  uint32_t n = 0;
  while (n < max_work && c->run_head != SG_NIL) {
    sg_slot_t *s = &c->slots[c->run_head];
    runq_unlink(c, s);
    /* Run the saga on while its steps finish at once. */
    while (runnable(s)) {
      invoke(c, s);
      n++;
      if (c->journal != NULL && n % SG_THREAD_BATCH == 0)
        fe__saga_journal_pass_end(c, 0); /* bounds what a crash loses */
      if (n >= max_work || !(s->flags & SF_RUNQ))
        break;
      runq_unlink(c, s);
    }
  }
  if (c->journal != NULL)
    fe__saga_journal_pass_end(c, 0);
  publish_stats(c);
  work += n;
  return work > INT_MAX ? INT_MAX : (int)work;
}

/* -------------------------------------------------------------- open */

/* Re-arms a replayed saga: its token, its timer (what is left of it in
 * wall-clock time), or the run queue. */
static void resume(fe_saga_coord_t *c, sg_slot_t *s, uint64_t wall) {
  const sg_def_t *d = def_of(c, s);
  c->st.live++;
  if (!terminal(s->state))
    c->st.in_state[s->state]++;
  if (s->flags & SF_WALL_DL) {
    uint64_t left = s->deadline > wall ? s->deadline - wall : 0;
    s->deadline = sat_add(c->now, left);
    s->flags &= (uint8_t)~SF_WALL_DL;
  }
  if (s->flags & SF_IN_DOUBT) {
    runq_push(c, s);
  } else if (s->wait == FE_SAGA_WAIT_TOKEN) {
    uint64_t pnr = s->phase == PH_FWD && (int32_t)s->step == d->pnr
                       ? CTL_PNR_STEP
                       : 0;
    ctl_set(s, CTL_PENDING | pnr, 0);
    if (s->deadline != 0)
      fe__tw_arm(&c->tw, &s->timer, s->deadline);
  } else if (s->wait == FE_SAGA_WAIT_TIMER) {
    fe__tw_arm(&c->tw, &s->timer, s->deadline);
  } else if (s->state != FE_SAGA_STUCK) {
    runq_push(c, s);
  }
  publish(c, s, 0);
}

void fe__saga_open(fe_saga_coord_t *c) {
  c->now = mono_now(c);
  fe__tw_init(&c->tw, c->cfg.tick_ns, c->now);
  uint64_t wall = 0;
  int any = 0;
  uint32_t head = SG_NIL;
  for (uint32_t i = c->max; i-- > 0;) {
    sg_slot_t *s = &c->slots[i];
    if (s->state != 0) {
      any = 1;
      continue;
    }
    fe__store_relaxed(&s->fnext, head);
    head = i;
  }
  fe__store_relaxed(&c->free_head, (uint64_t)head); /* published by O1 */
  if (c->journal != NULL)
    fe__saga_journal_open(c); /* may move gen past a lost tail */
  if (c->salt_replayed)
    c->replay_hw = fe__load_relaxed(&c->gen); /* published by O1 */
  if (any) {
    wall = c->cfg.wall_ns ? c->cfg.wall_ns(c->cfg.clock_user)
                          : fe_clock_realtime_ns();
    for (uint32_t i = 0; i < c->max; i++)
      if (c->slots[i].state != 0)
        resume(c, &c->slots[i], wall);
  }
  c->opened = 1;
  publish_stats(c);
  fe__store_release(&c->open, 1); /* O1, pairs with O2 */
}

/* ------------------------------------------------------------- driving */

/* Sleeps until a request, the next timer or SG_PARK_MAX_NS, whichever is
 * first. */
static void park(fe_saga_coord_t *c) {
  uint64_t next = fe__tw_next_ns(&c->tw);
  uint64_t now = mono_now(c);
  if (next <= now)
    return;
  uint64_t wait = next - now;
  if (wait > SG_PARK_MAX_NS)
    wait = SG_PARK_MAX_NS;
  __atomic_store_n(&c->sleeping, 1, __ATOMIC_SEQ_CST); /* W1 */
  if (__atomic_load_n(&c->inbox, __ATOMIC_SEQ_CST) != SG_NIL || /* W2 */
      __atomic_load_n(&c->stop, __ATOMIC_SEQ_CST)) {
    __atomic_store_n(&c->sleeping, 0, __ATOMIC_RELAXED);
    return;
  }
  fe__futex_wait(&c->sleeping, 1, wait);
  __atomic_store_n(&c->sleeping, 0, __ATOMIC_RELAXED);
}

void *fe__saga_thread(void *arg) {
  fe_saga_coord_t *c = arg;
  while (!__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST)) {
    if (fe__saga_pass(c, SG_THREAD_BATCH) == 0)
      park(c);
  }
  fe__store_release(&c->driver, 0); /* D1, pairs with D2 */
  return NULL;
}

int fe_saga_thread_start(fe_saga_coord_t *c) {
  if (c == NULL)
    return FE_EINVAL;
  pthread_mutex_lock(&c->ctl_mu);
  uint32_t z = 0;
  if (c->thread_on ||
      !__atomic_compare_exchange_n(&c->driver, &z, 1, 0,
                                   __ATOMIC_ACQUIRE, /* D2, pairs with D1 */
                                   __ATOMIC_RELAXED)) {
    pthread_mutex_unlock(&c->ctl_mu);
    return FE_ESTATE;
  }
  if (!c->opened)
    fe__saga_open(c);
  __atomic_store_n(&c->stop, 0, __ATOMIC_SEQ_CST);
  /* pthread_create orders everything above before the thread. */
  if (pthread_create(&c->thread, NULL, fe__saga_thread, c) != 0) {
    fe__store_release(&c->driver, 0); /* D1 */
    pthread_mutex_unlock(&c->ctl_mu);
    return FE_ETHREAD;
  }
  c->thread_on = 1;
  pthread_mutex_unlock(&c->ctl_mu);
  return 0;
}

int fe_saga_thread_stop(fe_saga_coord_t *c) {
  if (c == NULL)
    return FE_EINVAL;
  pthread_mutex_lock(&c->ctl_mu);
  if (!c->thread_on || pthread_equal(pthread_self(), c->thread)) {
    pthread_mutex_unlock(&c->ctl_mu);
    return FE_ESTATE;
  }
  /* W-pair with park(): the thread loads stop after storing sleeping, we
   * load sleeping (in fe_saga_wake) after storing stop. */
  __atomic_store_n(&c->stop, 1, __ATOMIC_SEQ_CST);
  fe_saga_wake(c);
  pthread_join(c->thread, NULL);
  c->thread_on = 0;
  pthread_mutex_unlock(&c->ctl_mu);
  return 0;
}

int fe_saga_poll(fe_saga_coord_t *c, uint32_t max_work) {
  if (c == NULL || max_work == 0)
    return FE_EINVAL;
  uint32_t z = 0;
  if (!__atomic_compare_exchange_n(&c->driver, &z, 1, 0,
                                   __ATOMIC_ACQUIRE, /* D2, pairs with D1 */
                                   __ATOMIC_RELAXED))
    return FE_ESTATE;
  if (!c->opened)
    fe__saga_open(c);
  int n = fe__saga_pass(c, max_work);
  fe__store_release(&c->driver, 0); /* D1, pairs with D2 */
  return n;
}

uint64_t fe_saga_idle_ns(fe_saga_coord_t *c) {
  if (c == NULL || !c->opened)
    return UINT64_MAX;
  if (c->run_head != SG_NIL || fe__load_relaxed(&c->inbox) != SG_NIL)
    return 0;
  uint64_t next = fe__tw_next_ns(&c->tw);
  if (next == UINT64_MAX)
    return UINT64_MAX;
  return next > c->now ? next - c->now : 0;
}
