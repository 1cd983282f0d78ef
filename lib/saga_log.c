/* Saga records and replay: see "Records" in include/finevent/saga.h.
 *
 * A record is the saga's whole state after a change, so replay is "the
 * newest record wins": each record overwrites its saga's slot (the slot is
 * the low 24 bits of the saga id, as when the saga ran), an END frees it,
 * and fe__saga_open() (saga_run.c) re-arms what is left: tokens, timers
 * and the run queue.  Replay runs before open, on one thread, so it writes
 * the slots' plain fields directly; the ctl word and the view are written
 * with the same atomic stores the coordinator uses, since queries may run
 * meanwhile.
 */
#include "saga_impl.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static uint64_t checksum(const fe_saga_rec_t *h, const void *ctx) {
  fe_saga_rec_t z = *h;
  z.checksum = 0;
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, &z, sizeof z);
  if (h->ctx_len != 0)
    XXH3_64bits_update(&st, ctx, h->ctx_len);
  return XXH3_64bits_digest(&st);
}

static uint32_t rec_flags(const fe_saga_coord_t *c, const sg_slot_t *s) {
  const sg_def_t *d = &c->defs[s->def];
  uint32_t f = 0;
  if (s->phase == PH_FWD && (d->pnr < 0 || ((s->done >> d->pnr) & 1u)))
    f |= FE_SAGA_RECF_PNR;
  if (s->phase == PH_COMP)
    f |= FE_SAGA_RECF_COMP;
  if (s->flags & SF_COMP_ANY)
    f |= FE_SAGA_RECF_UNDONE;
  return f;
}

uint32_t fe__saga_rec_build(fe_saga_coord_t *c, sg_slot_t *s, uint32_t i,
                            uint32_t type, uint32_t result, uint8_t *buf,
                            int *with_ctx) {
  fe_saga_rec_t *h = (fe_saga_rec_t *)(void *)buf;
  memset(h, 0, sizeof *h);
  *with_ctx = c->cfg.ctx_size != 0 &&
              (type == FE_SAGA_REC_START || (s->flags & SF_CTX_DIRTY));
  if (*with_ctx)
    memcpy(buf + sizeof *h, sg_ctx(c, i), c->cfg.ctx_size);
  h->magic = FE_SAGA_REC_MAGIC;
  h->version = FE_SAGA_REC_VERSION;
  h->type = (uint16_t)type;
  h->ctx_len = *with_ctx ? c->cfg.ctx_size : 0;
  h->len = (uint32_t)sizeof *h + h->ctx_len;
  h->saga_id = sg_id(fe__load_relaxed(&s->sgen), i);
  h->def_hash = c->defs[s->def].hash;
  h->salt = c->salt;
  h->gen_hw = fe__load_relaxed(&c->gen);
  h->token = s->wait_gen ? fe__saga_tok_encode(c, sg_id(s->wait_gen, i)) : 0;
  h->wall_ns = c->cfg.wall_ns ? c->cfg.wall_ns(c->cfg.clock_user)
                              : fe_clock_realtime_ns();
  if (s->wait != FE_SAGA_WAIT_NONE && s->deadline != 0)
    h->deadline_wall_ns =
        h->wall_ns + (s->deadline > c->now ? s->deadline - c->now : 0);
  h->state = s->state;
  h->step = s->step;
  h->attempt = s->attempt;
  h->result = result;
  h->reason = s->reason;
  h->done_mask = s->done;
  h->flags = rec_flags(c, s);
  if (type == FE_SAGA_REC_STEP &&
      (c->defs[s->def].steps[s->step].flags & FE_SAGA_STEP_DURABLE))
    h->flags |= FE_SAGA_RECF_DURABLE; /* tells a buffering hook to flush */
  h->checksum = XXH3_64bits(buf, h->len);
  return h->len;
}

int fe__saga_log(fe_saga_coord_t *c, sg_slot_t *s, uint32_t type,
                 uint32_t result) {
  uint32_t i = sg_index(c, s);
  int with_ctx;
  uint32_t len = fe__saga_rec_build(c, s, i, type, result, c->rec, &with_ctx);
  if (with_ctx)
    s->flags &= (uint8_t)~SF_CTX_DIRTY;
  c->st.records++;
  if (c->journal != NULL)
    return fe__saga_journal_put(c, i, type, with_ctx || c->cfg.ctx_size == 0);
  c->cfg.log(c->rec, len, c->cfg.user);
  return 0;
}

static const sg_def_t *def_by_hash(const fe_saga_coord_t *c, uint64_t hash,
                                   uint32_t *id) {
  for (uint32_t k = 0; k < c->n_defs; k++)
    if (c->defs[k].hash == hash) {
      *id = k;
      return &c->defs[k];
    }
  return NULL;
}

int fe_saga_replay(fe_saga_coord_t *c, const void *rec, uint32_t len) {
  return fe__saga_replay_at(c, rec, len, 0);
}

int fe__saga_replay_at(fe_saga_coord_t *c, const void *rec, uint32_t len,
                       uint64_t lsn) {
  if (c == NULL || rec == NULL)
    return FE_EINVAL;
  if (c->opened || fe__load_relaxed(&c->open))
    return FE_ESTATE;
  fe_saga_rec_t h;
  if (len < sizeof h)
    return FE_ECORRUPT;
  memcpy(&h, rec, sizeof h);
  if (h.magic != FE_SAGA_REC_MAGIC)
    return FE_ECORRUPT;
  if (h.version != FE_SAGA_REC_VERSION)
    return FE_EVERSION;
  if (h.ctx_len > FE_SAGA_CTX_MAX || h.len != sizeof h + h.ctx_len ||
      h.len > len)
    return FE_ECORRUPT;
  const uint8_t *ctx = (const uint8_t *)rec + sizeof h;
  if (checksum(&h, ctx) != h.checksum)
    return FE_ECORRUPT;
  if (h.type < FE_SAGA_REC_START || h.type > FE_SAGA_REC_END ||
      h.state == 0 || h.state >= FE_SAGA_STATES)
    return FE_ECORRUPT;
  if (h.ctx_len != 0 && h.ctx_len != c->cfg.ctx_size)
    return FE_ERANGE;
  uint32_t def_id;
  const sg_def_t *d = def_by_hash(c, h.def_hash, &def_id);
  if (d == NULL)
    return FE_ENOTFOUND;
  uint64_t slot = h.saga_id & SG_SLOT_MASK, gen = h.saga_id >> SG_SLOT_BITS;
  if (gen == 0 || gen > h.gen_hw)
    return FE_ECORRUPT;
  if (slot >= c->max)
    return FE_ERANGE;
  if (h.step > d->n_steps ||
      (h.step == d->n_steps && h.type != FE_SAGA_REC_END))
    return FE_ERANGE;
  /* What the coordinator never logs: an END in a live state or another
   * record in a terminal one, completed steps the definition does not
   * have, a compensation of a step that has none. */
  int terminal = h.state == FE_SAGA_COMPLETED ||
                 h.state == FE_SAGA_COMPENSATED || h.state == FE_SAGA_FAILED;
  if (terminal != (h.type == FE_SAGA_REC_END) ||
      (h.done_mask >> d->n_steps) != 0 ||
      ((h.flags & FE_SAGA_RECF_COMP) && h.type != FE_SAGA_REC_END &&
       !((d->comp_mask >> h.step) & 1u)))
    return FE_ECORRUPT;
  if (c->salt_replayed && h.salt != c->salt)
    return FE_EMISMATCH;
  uint64_t tgen = 0;
  if (h.token != 0) {
    uint64_t key[4];
    fe__saga_keys(h.salt, key);
    uint64_t p = fe__saga_tok_decode_keys(key, h.token);
    tgen = p >> SG_SLOT_BITS;
    if ((p & SG_SLOT_MASK) != slot || tgen == 0 || tgen > h.gen_hw)
      return FE_ECORRUPT;
  }
  if (lsn > c->jlast_lsn) /* a valid record: the newest one overall */
    c->jlast_lsn = lsn;
  sg_slot_t *s = &c->slots[slot];
  uint64_t cur = fe__load_relaxed(&s->sgen);
  if (s->state != 0 && cur != gen) {
    if (gen < cur)
      return 0; /* an older saga's record, replayed again */
    return FE_ECORRUPT; /* the slot's saga never ended */
  }
  if (s->state == 0 && gen <= cur)
    return 0; /* that saga (or a later one) ended already */

  /* Valid: apply. */
  if (!c->salt_replayed) {
    fe__saga_set_salt(c, h.salt);
    c->salt_replayed = 1;
  }
  if (h.gen_hw > c->gen)
    fe__store_relaxed(&c->gen, h.gen_hw);
  int fresh = s->state == 0;
  uint8_t *x = sg_ctx(c, (uint32_t)slot);
  if (fresh && x != NULL)
    memset(x, 0, c->ctx_stride); /* a saga whose START was compacted away */
  if (h.ctx_len != 0)
    memcpy(x, ctx, h.ctx_len);
  uint64_t g = tgen > gen ? tgen : gen;
  if (lsn != 0 && (fresh || h.ctx_len != 0 || c->cfg.ctx_size == 0))
    fe__store_relaxed(&c->rec_lsn[slot], lsn); /* replay needs it from now */
  if (h.type == FE_SAGA_REC_END) {
    fe__store_relaxed(&c->rec_lsn[slot], 0);
    s->state = 0;
    s->flags = 0;
    fe__store_relaxed(&s->ctl, g << CTL_GEN_SHIFT);
    fe__saga_view_begin(s);
    fe__store_relaxed(&s->sgen, gen);
    fe__store_relaxed(&s->vstate, 0);
    fe__saga_view_end(s);
    return 0;
  }
  int comp = (h.flags & FE_SAGA_RECF_COMP) != 0;
  s->def = (uint16_t)def_id;
  s->state = (uint8_t)h.state;
  s->phase = comp ? PH_COMP : PH_FWD;
  s->step = (uint8_t)h.step;
  s->attempt = h.attempt;
  s->done = (uint16_t)h.done_mask;
  s->reason = h.reason;
  s->wait_gen = tgen;
  s->flags = (h.flags & FE_SAGA_RECF_UNDONE) ? SF_COMP_ANY : 0;
  s->deadline = 0;
  if (h.type == FE_SAGA_REC_STEP) {
    s->wait = FE_SAGA_WAIT_NONE;
    s->flags |= SF_IN_DOUBT;
  } else if (h.token != 0) {
    s->wait = FE_SAGA_WAIT_TOKEN;
  } else if (h.deadline_wall_ns != 0) {
    s->wait = FE_SAGA_WAIT_TIMER;
  } else {
    s->wait = FE_SAGA_WAIT_NONE;
  }
  if (s->wait != FE_SAGA_WAIT_NONE && h.deadline_wall_ns != 0) {
    s->deadline = h.deadline_wall_ns; /* made monotonic at open */
    s->flags |= SF_WALL_DL;
  }
  uint64_t v = g << CTL_GEN_SHIFT | CTL_LIVE;
  if (h.flags & FE_SAGA_RECF_PNR)
    v |= CTL_PNR;
  if (comp)
    v |= CTL_COMP;
  if (h.state == FE_SAGA_STUCK)
    v |= CTL_STUCK;
  fe__store_relaxed(&s->ctl, v); /* published by O1 with the rest */
  fe__saga_view_begin(s);
  fe__store_relaxed(&s->sgen, gen);
  fe__store_relaxed(&s->vstate,
                    fe__saga_vstate(s->state, s->step, s->wait, s->phase,
                                    s->def, s->attempt));
  uint64_t total = fresh ? 0 : fe__load_relaxed(&s->vaux) >> 32;
  fe__store_relaxed(&s->vaux, (uint64_t)s->reason | total << 32);
  fe__saga_view_end(s);
  return 0;
}

int fe_saga_journal_replay(const fe_journal_record_t *r, void *coord) {
  if (r == NULL || coord == NULL)
    return FE_EINVAL;
  if (r->type != FE_JREC_SAGA)
    return 0;
  return fe__saga_replay_at(coord, r->data, r->len, r->lsn);
}
