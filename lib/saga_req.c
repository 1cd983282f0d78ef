/* What threads other than the coordinator call: requests (start,
 * complete, heartbeat, abort, redrive), each decided by one CAS on the
 * slot's ctl word and queued on the inbox (saga_inbox.c), and the queries,
 * which read a slot's view under its seqlock (saga_impl.h).
 */
#include "saga_impl.h"

#include <ck_pr.h>
#include <string.h>

/* A build-time seam: test_saga.c compiles this file in with it defined,
 * to land an abort in the window between a completion winning the token
 * and queuing its request.  Nothing in the library. */
#ifndef FE_SAGA_SEAM_CLAIMED
#define FE_SAGA_SEAM_CLAIMED(c, token) ((void)0)
#endif

static int is_open(fe_saga_coord_t *c) {
  return fe__load_acquire(&c->open) != 0; /* O2, pairs with O1 */
}

int fe_saga_start(fe_saga_coord_t *c, uint32_t def_id, const void *ctx,
                  uint32_t ctx_len, uint64_t *saga_id) {
  if (c == NULL || saga_id == NULL || (ctx == NULL && ctx_len != 0))
    return FE_EINVAL;
  if (!is_open(c))
    return FE_ESTATE;
  if (def_id >= c->n_defs)
    return FE_ENOTFOUND;
  if (ctx_len > c->cfg.ctx_size)
    return FE_ERANGE;
  uint32_t i = fe__saga_free_pop(c);
  if (i == SG_NIL) {
    __atomic_fetch_add(&c->x_start_refused, 1, __ATOMIC_RELAXED);
    return FE_EFULL;
  }
  /* Relaxed: only uniqueness matters; what a generation orders travels
   * with the words it is stored in. */
  uint64_t gen = __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELAXED);
  if (gen > SG_GEN_MAX - c->max) {
    fe__saga_free_push(c, i);
    return FE_ERANGE;
  }
  sg_slot_t *s = &c->slots[i];
  const sg_def_t *d = &c->defs[def_id];
  uint8_t *x = sg_ctx(c, i);
  if (x != NULL) {
    if (ctx_len != 0)
      memcpy(x, ctx, ctx_len);
    memset(x + ctx_len, 0, c->ctx_stride - ctx_len);
  }
  s->def = (uint16_t)def_id; /* read by the coordinator after P2 */
  /* Set before open, read-only since: O2 ordered it before this read. */
  if (c->journal != NULL) {
    int rc = fe__saga_journal_start(c, i, gen, (uint16_t)def_id);
    if (rc != 0) {
      fe__saga_free_push(c, i);
      return rc;
    }
  }
  fe__saga_view_begin(s);
  fe__store_relaxed(&s->sgen, gen);
  fe__store_relaxed(&s->vstate, fe__saga_vstate(FE_SAGA_RUNNING, 0, 0, 0,
                                                def_id, 0));
  fe__store_relaxed(&s->vaux, 0);
  fe__store_relaxed(&s->vstart, 0);
  fe__saga_view_end(s);
  uint64_t v = gen << CTL_GEN_SHIFT | CTL_LIVE | (d->pnr < 0 ? CTL_PNR : 0);
  fe__store_release(&s->ctl, v); /* C1, pairs with C2 */
  fe__saga_request(c, i, REQ_START);
  *saga_id = sg_id(gen, i);
  return 0;
}

/* Decodes token into slot *i and generation *gen: FE_ESTATE before open,
 * FE_ETOKEN (counted) if it cannot have been issued. */
static int decode(fe_saga_coord_t *c, uint64_t token, uint32_t *i,
                  uint64_t *gen) {
  if (!is_open(c))
    return FE_ESTATE;
  uint64_t p = fe__saga_tok_decode(c, token);
  *i = (uint32_t)(p & SG_SLOT_MASK);
  *gen = p >> SG_SLOT_BITS;
  /* The completer learned the token from the coordinator, after the
   * generation was drawn: relaxed suffices to see it (coherence). */
  if (*i >= c->max || *gen == 0 || *gen > fe__load_relaxed(&c->gen)) {
    __atomic_fetch_add(&c->x_unknown, 1, __ATOMIC_RELAXED);
    return FE_ETOKEN;
  }
  return 0;
}

/* Classifies a token of generation gen that ctl value v does not hold
 * pending: never issued on this slot (the slot's generation is older, and
 * the generation is not one a previous run may have issued: replay does
 * not know every token of every slot) or late.  Counts it. */
static int not_pending(fe_saga_coord_t *c, uint64_t v, uint64_t gen) {
  if (CTL_GEN(v) < gen && gen > c->replay_hw) {
    __atomic_fetch_add(&c->x_unknown, 1, __ATOMIC_RELAXED);
    return FE_ETOKEN;
  }
  __atomic_fetch_add(&c->x_late, 1, __ATOMIC_RELAXED);
  return FE_ELATE;
}

int fe_saga_complete(fe_saga_coord_t *c, uint64_t token,
                     fe_saga_result_t result, uint32_t reason) {
  if (c == NULL || (result != FE_SAGA_DONE && result != FE_SAGA_RETRY &&
                    result != FE_SAGA_FAIL))
    return FE_EINVAL;
  uint32_t i;
  uint64_t gen;
  int rc = decode(c, token, &i, &gen);
  if (rc != 0)
    return rc;
  sg_slot_t *s = &c->slots[i];
  uint64_t v = fe__load_relaxed(&s->ctl); /* the CAS below validates it */
  for (;;) {
    if (CTL_GEN(v) != gen || !(v & CTL_PENDING))
      return not_pending(c, v, gen);
    uint64_t nv = (v & ~(uint64_t)(CTL_PENDING | CTL_PNR_STEP)) | CTL_CLAIMED;
    if ((v & CTL_PNR_STEP) && result == FE_SAGA_DONE)
      nv |= CTL_PNR; /* decided here, against a concurrent abort */
    /* A2, pairs with A1: the coordinator read the previous cres before it
     * armed this token.  No release needed: cres is published by P1. */
    if (__atomic_compare_exchange_n(&s->ctl, &v, nv, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      break;
  }
  /* This thread alone won the token: nobody else writes cres until the
   * coordinator has read it and armed a new token. */
  fe__store_relaxed(&s->cres, (uint64_t)result | (uint64_t)reason << 8);
  FE_SAGA_SEAM_CLAIMED(c, token);
  fe__saga_request(c, i, REQ_COMPLETE);
  return 0;
}

int fe_saga_heartbeat(fe_saga_coord_t *c, uint64_t token, uint64_t extend_ns) {
  if (c == NULL)
    return FE_EINVAL;
  uint32_t i;
  uint64_t gen;
  int rc = decode(c, token, &i, &gen);
  if (rc != 0)
    return rc;
  sg_slot_t *s = &c->slots[i];
  uint64_t v = fe__load_acquire(&s->ctl); /* A2, pairs with A1 (hb) */
  if (CTL_GEN(v) != gen || !(v & CTL_PENDING))
    return not_pending(c, v, gen);
  /* No claim: a heartbeat that races with the token's completion, or even
   * with the slot's reuse, lands on a slot whose armed generation no longer
   * matches the low 24 bits stored here, and the coordinator drops it. */
  uint64_t us = extend_ns / 1000 + (extend_ns % 1000 != 0);
  if (us > HB_US_MAX)
    us = HB_US_MAX;
  fe__store_relaxed(&s->hb, (gen & 0xffffffu) << HB_US_BITS | us);
  fe__saga_request(c, i, REQ_HEARTBEAT);
  return 0;
}

/* Loads the ctl word of the saga with id `id`, or returns 0 if no such
 * saga holds its slot.  *s is the slot. */
static uint64_t saga_ctl(fe_saga_coord_t *c, uint64_t id, sg_slot_t **s) {
  uint64_t i = id & SG_SLOT_MASK;
  if (i >= c->max)
    return 0;
  *s = &c->slots[i];
  uint64_t v = fe__load_acquire(&(*s)->ctl); /* C2: sgen below is v's */
  /* Loaded after ctl: if it is this id, v cannot be a later saga's (that
   * saga's starter wrote its sgen before its C1). */
  if (!(v & CTL_LIVE) || fe__load_relaxed(&(*s)->sgen) != id >> SG_SLOT_BITS)
    return 0;
  return v;
}

int fe_saga_abort(fe_saga_coord_t *c, uint64_t saga_id, uint32_t reason) {
  if (c == NULL)
    return FE_EINVAL;
  if (!is_open(c))
    return FE_ESTATE;
  sg_slot_t *s = NULL;
  for (;;) {
    uint64_t v = saga_ctl(c, saga_id, &s);
    if (v == 0)
      return FE_ENOTFOUND;
    if (v & CTL_PNR) {
      __atomic_fetch_add(&c->x_abort_refused, 1, __ATOMIC_RELAXED);
      return FE_ESTATE;
    }
    if (v & (CTL_COMP | CTL_ABORTED))
      return 0; /* being compensated already */
    /* Setting ABORTED also takes the pending token, if any: it is late
     * from here on.  Generations never repeat, so a CAS that succeeds acts
     * on the saga saga_ctl() checked. */
    uint64_t nv = (v & ~(uint64_t)(CTL_PENDING | CTL_PNR_STEP)) | CTL_ABORTED;
    if (__atomic_compare_exchange_n(&s->ctl, &v, nv, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE))
      break;
  }
  fe__store_relaxed(&s->abort_reason, reason); /* published by P1 */
  fe__saga_request(c, (uint32_t)(saga_id & SG_SLOT_MASK), REQ_ABORT);
  return 0;
}

int fe_saga_redrive(fe_saga_coord_t *c, uint64_t saga_id) {
  if (c == NULL)
    return FE_EINVAL;
  if (!is_open(c))
    return FE_ESTATE;
  sg_slot_t *s = NULL;
  for (;;) {
    uint64_t v = saga_ctl(c, saga_id, &s);
    if (v == 0)
      return FE_ENOTFOUND;
    if (!(v & CTL_STUCK))
      return FE_ESTATE;
    if (__atomic_compare_exchange_n(&s->ctl, &v, v & ~(uint64_t)CTL_STUCK, 0,
                                    __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
      break;
  }
  fe__saga_request(c, (uint32_t)(saga_id & SG_SLOT_MASK), REQ_REDRIVE);
  return 0;
}

/* ------------------------------------------------------------- queries */

/* Snapshot of slot i: 1 if it holds the saga of generation gen (0: any
 * live saga), with *out filled. */
static int snapshot(fe_saga_coord_t *c, uint32_t i, uint64_t gen,
                    fe_saga_info_t *out) {
  sg_slot_t *s = &c->slots[i];
  const uint64_t *h = c->hist_n ? c->hist + (size_t)i * c->hist_n : NULL;
  uint64_t sg, st, aux, start;
  for (;;) {
    uint32_t q = fe__load_acquire(&s->vseq); /* V3, pairs with V2 */
    if (q & 1) {
      ck_pr_stall();
      continue;
    }
    sg = fe__load_relaxed(&s->sgen);
    st = fe__load_relaxed(&s->vstate);
    aux = fe__load_relaxed(&s->vaux);
    start = fe__load_relaxed(&s->vstart);
    uint32_t state = (uint32_t)(st & 0xff);
    if (state == 0 || (gen != 0 && sg != gen)) {
      fe__saga_fence_acq(); /* V4, pairs with V1 */
      if (fe__load_relaxed(&s->vseq) == q)
        return 0;
      continue;
    }
    uint64_t total = aux >> 32;
    uint32_t n = total < c->hist_n ? (uint32_t)total : c->hist_n;
    for (uint32_t k = 0; k < n; k++) {
      uint64_t e = fe__load_relaxed(&h[(total - n + k) % c->hist_n]);
      fe_saga_transition_t *t = &out->history[k];
      t->to = (uint8_t)(e & 0xf);
      t->from = (uint8_t)((e >> 4) & 0xf);
      t->step = (uint32_t)((e >> 8) & 0x1f);
      t->attempt = (uint32_t)((e >> 13) & 0x7ff);
      t->time_ns = start + (e >> 24) * 1000;
      memset(t->reserved, 0, sizeof t->reserved);
    }
    fe__saga_fence_acq(); /* V4, pairs with V1 */
    if (fe__load_relaxed(&s->vseq) != q)
      continue;
    out->saga_id = sg_id(sg, i);
    out->started_ns = start;
    out->state = state;
    out->step = (uint32_t)((st >> 8) & 0xff);
    out->waiting = (uint32_t)((st >> 16) & 0xf);
    out->compensating = (uint32_t)((st >> 20) & 0xf);
    out->def_id = (uint32_t)((st >> 24) & 0xff);
    out->attempt = (uint32_t)(st >> 32);
    out->reason = (uint32_t)aux;
    out->transitions = total;
    out->n_history = n;
    return 1;
  }
}

int fe_saga_get(fe_saga_coord_t *c, uint64_t saga_id, fe_saga_info_t *out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  uint64_t i = saga_id & SG_SLOT_MASK, gen = saga_id >> SG_SLOT_BITS;
  if (i >= c->max || gen == 0)
    return FE_ENOTFOUND;
  return snapshot(c, (uint32_t)i, gen, out) ? 0 : FE_ENOTFOUND;
}

int fe_saga_foreach(fe_saga_coord_t *c, uint32_t state_mask,
                    fe_saga_visit_fn fn, void *user) {
  if (c == NULL || fn == NULL)
    return FE_EINVAL;
  fe_saga_info_t info;
  for (uint32_t i = 0; i < c->max; i++) {
    if (!snapshot(c, i, 0, &info))
      continue;
    if (state_mask != 0 && !(state_mask & (1u << info.state)))
      continue;
    int rc = fn(&info, user);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int fe_saga_stats(fe_saga_coord_t *c, fe_saga_stats_t *out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  uint64_t w[SG_NSTATS];
  for (;;) {
    uint32_t q = fe__load_acquire(&c->sseq); /* S3, pairs with S2 */
    if (q & 1) {
      ck_pr_stall();
      continue;
    }
    for (size_t k = 0; k < SG_NSTATS; k++)
      w[k] = fe__load_relaxed(&c->pub[k]);
    fe__saga_fence_acq(); /* S4, pairs with S1 */
    if (fe__load_relaxed(&c->sseq) == q)
      break;
  }
  memcpy(out, w, sizeof *out);
  out->capacity = c->max;
  out->late += fe__load_relaxed(&c->x_late);
  out->unknown_tokens = fe__load_relaxed(&c->x_unknown);
  out->abort_refused = fe__load_relaxed(&c->x_abort_refused);
  out->start_refused = fe__load_relaxed(&c->x_start_refused);
  return 0;
}

