/* Saga coordinator: configuration, definitions, the order template, and
 * everything other threads call (requests, queries).  The coordinator
 * itself is in saga_run.c, records and replay in saga_log.c; the shared
 * structures and the memory-order pairs are described in saga_impl.h.
 *
 * Requests never take a lock.  A starter pops a free slot (Treiber stack,
 * tagged head against ABA), fills it and queues it; a completer, aborter
 * or redriver decides its race with one CAS on the slot's ctl word and
 * queues the slot with a request bit.  The inbox is an intrusive stack of
 * slots: a slot is on it at most once (REQ_QUEUED), so it can never
 * overflow, and the coordinator takes it whole with one exchange.
 */
#define _GNU_SOURCE /* getrandom */
#include "saga_impl.h"

#include <ck_pr.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* -------------------------------------------------------------- tokens */

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static uint32_t round_fn(uint32_t x, uint64_t k) {
  return (uint32_t)mix64((uint64_t)x ^ k);
}

uint64_t fe__saga_tok_encode(const fe_saga_coord_t *c, uint64_t p) {
  uint32_t l = (uint32_t)(p >> 32), r = (uint32_t)p;
  for (int i = 0; i < 4; i++) {
    uint32_t t = l ^ round_fn(r, c->key[i]);
    l = r;
    r = t;
  }
  return (uint64_t)l << 32 | r;
}

uint64_t fe__saga_tok_decode_keys(const uint64_t key[4], uint64_t tok) {
  uint32_t l = (uint32_t)(tok >> 32), r = (uint32_t)tok;
  for (int i = 3; i >= 0; i--) {
    uint32_t t = r ^ round_fn(l, key[i]);
    r = l;
    l = t;
  }
  return (uint64_t)l << 32 | r;
}

uint64_t fe__saga_tok_decode(const fe_saga_coord_t *c, uint64_t tok) {
  return fe__saga_tok_decode_keys(c->key, tok);
}

void fe__saga_keys(uint64_t salt, uint64_t key[4]) {
  for (int i = 0; i < 4; i++)
    key[i] = mix64(salt + (uint64_t)(i + 1) * UINT64_C(0x9E3779B97F4A7C15));
}

void fe__saga_set_salt(fe_saga_coord_t *c, uint64_t salt) {
  c->salt = salt;
  fe__saga_keys(salt, c->key);
}

static uint64_t random_salt(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
    s = mix64(fe_clock_realtime_ns() ^ (uint64_t)(uintptr_t)&s);
  return s ? s : 1;
}

/* -------------------------------------------------------------- config */

void fe_saga_config_init(fe_saga_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->max_sagas = 65536;
  cfg->max_defs = 16;
  cfg->ctx_size = 64;
  cfg->history = 16;
  cfg->tick_ns = 1000000;
  cfg->dlq_event_type = FE_EV_USER;
}

int fe_saga_config_check(const fe_saga_config_t *cfg, fe_diag_t *d) {
  if (cfg == NULL)
    return fe__diag(d, FE_EINVAL, "saga: config is NULL");
  if (cfg->max_sagas == 0 || cfg->max_sagas > FE_SAGA_MAX_SAGAS)
    return fe__diag(d, FE_ERANGE, "saga: max_sagas %u is outside 1..%u",
                    cfg->max_sagas, FE_SAGA_MAX_SAGAS);
  if (cfg->max_defs == 0 || cfg->max_defs > FE_SAGA_MAX_DEFS)
    return fe__diag(d, FE_ERANGE, "saga: max_defs %u is outside 1..%u",
                    cfg->max_defs, FE_SAGA_MAX_DEFS);
  if (cfg->ctx_size > FE_SAGA_CTX_MAX)
    return fe__diag(d, FE_ERANGE, "saga: ctx_size %u is above %u",
                    cfg->ctx_size, FE_SAGA_CTX_MAX);
  if (cfg->history > FE_SAGA_HISTORY_MAX)
    return fe__diag(d, FE_ERANGE, "saga: history %u is above %u",
                    cfg->history, FE_SAGA_HISTORY_MAX);
  if (cfg->tick_ns < 1000 || cfg->tick_ns > 1000000000)
    return fe__diag(d, FE_ERANGE, "saga: tick_ns %llu is outside "
                    "1000..1000000000", (unsigned long long)cfg->tick_ns);
  return 0;
}

/* ----------------------------------------------------------- lifecycle */

int fe_saga_create(const fe_saga_config_t *cfg, fe_saga_coord_t **out,
                   fe_diag_t *d) {
  if (out == NULL)
    return fe__diag(d, FE_EINVAL, "saga: out is NULL");
  int rc = fe_saga_config_check(cfg, d);
  if (rc != 0)
    return rc;
  fe_saga_coord_t *c = fe__zalloc_aligned(sizeof *c);
  if (c == NULL)
    return fe__diag(d, FE_ENOMEM, "saga: cannot allocate the coordinator");
  c->cfg = *cfg;
  c->max = cfg->max_sagas;
  c->ctx_stride = (cfg->ctx_size + 7u) & ~7u;
  c->hist_n = cfg->history;
  c->rec_len = (uint32_t)sizeof(fe_saga_rec_t) + cfg->ctx_size;
  size_t n = c->max;
  c->slots = fe__zalloc_aligned(n * sizeof(sg_slot_t));
  c->ctx = c->ctx_stride ? fe__zalloc_aligned(n * c->ctx_stride) : NULL;
  c->hist = c->hist_n ? fe__zalloc_aligned(n * c->hist_n * sizeof(uint64_t))
                      : NULL;
  c->defs = fe__zalloc_aligned(cfg->max_defs * sizeof(sg_def_t));
  c->rec = fe__zalloc_aligned(c->rec_len);
  c->rec_lsn = fe__zalloc_aligned(n * sizeof(uint64_t));
  int mu = pthread_mutex_init(&c->ctl_mu, NULL) == 0;
  if (c->slots == NULL || (c->ctx_stride && c->ctx == NULL) ||
      (c->hist_n && c->hist == NULL) || c->defs == NULL || c->rec == NULL ||
      c->rec_lsn == NULL || !mu) {
    if (mu)
      pthread_mutex_destroy(&c->ctl_mu);
    free(c->slots);
    free(c->ctx);
    free(c->hist);
    free(c->defs);
    free(c->rec);
    free(c->rec_lsn);
    free(c);
    return fe__diag(d, FE_ENOMEM, "saga: cannot allocate %u sagas of %u "
                    "context bytes and %u history entries", cfg->max_sagas,
                    cfg->ctx_size, cfg->history);
  }
  for (uint32_t i = 0; i < c->max; i++) {
    sg_slot_t *s = &c->slots[i];
    fe__tw_node_init(&s->timer);
    s->rnext = s->rprev = SG_NIL;
    s->qnext = s->fnext = SG_NIL;
  }
  fe__saga_set_salt(c, cfg->salt ? cfg->salt : random_salt());
  c->free_head = SG_NIL; /* built at open, after replay */
  c->inbox = SG_NIL;
  c->run_head = c->run_tail = SG_NIL;
  c->rng = mix64(c->salt ^ UINT64_C(0x5A6A));
  c->st.capacity = c->max;
  c->logs = cfg->log != NULL;
  *out = c;
  return 0;
}

void fe_saga_destroy(fe_saga_coord_t *c) {
  if (c == NULL)
    return;
  if (c->thread_on)
    fe_saga_coord_stop(c);
  if (c->journal != NULL)
    fe_journal_pin_release(c->journal, c->jpin);
  pthread_mutex_destroy(&c->ctl_mu);
  free(c->slots);
  free(c->ctx);
  free(c->hist);
  free(c->defs);
  free(c->rec);
  free(c->rec_lsn);
  free(c);
}

/* --------------------------------------------------------- definitions */

void fe_saga_def_init(fe_saga_def_t *d) {
  if (d == NULL)
    return;
  memset(d, 0, sizeof *d);
  for (uint32_t i = 0; i < FE_SAGA_MAX_STEPS; i++) {
    fe_retry_policy_init(&d->steps[i].retry);
    d->steps[i].kind = FE_SAGA_COMPENSATABLE;
  }
}

static int name_ok(const char *n) {
  return n != NULL && n[0] != '\0' &&
         strnlen(n, FE_SAGA_NAME_MAX) < FE_SAGA_NAME_MAX;
}

static const char *kind_name(uint32_t k) {
  switch (k) {
  case FE_SAGA_COMPENSATABLE: return "compensatable";
  case FE_SAGA_PIVOT: return "the pivot";
  case FE_SAGA_RETRIABLE: return "retriable";
  default: return "?";
  }
}

int fe_saga_def_check(const fe_saga_def_t *d, fe_diag_t *dg) {
  if (d == NULL)
    return fe__diag(dg, FE_EINVAL, "saga: definition is NULL");
  if (!name_ok(d->name))
    return fe__diag(dg, FE_EDEFINE, "saga: the definition's name is %s "
                    "(1..%d bytes)", d->name == NULL ? "NULL" :
                    d->name[0] == '\0' ? "empty" : "too long",
                    FE_SAGA_NAME_MAX - 1);
  if (d->n_steps == 0)
    return fe__diag(dg, FE_EDEFINE, "saga '%s': no steps", d->name);
  if (d->n_steps > FE_SAGA_MAX_STEPS)
    return fe__diag(dg, FE_EDEFINE, "saga '%s': %u steps, at most %d",
                    d->name, d->n_steps, FE_SAGA_MAX_STEPS);
  int pivot = -1, last_retriable = -1;
  for (uint32_t i = 0; i < d->n_steps; i++) {
    const fe_saga_step_def_t *s = &d->steps[i];
    if (!name_ok(s->name))
      return fe__diag(dg, FE_EDEFINE, "saga '%s': step %u's name is %s "
                      "(1..%d bytes)", d->name, i, s->name == NULL ? "NULL" :
                      s->name[0] == '\0' ? "empty" : "too long",
                      FE_SAGA_NAME_MAX - 1);
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(d->steps[j].name, s->name) == 0)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': step %u '%s' has the "
                        "name of step %u", d->name, i, s->name, j);
    if (s->action == NULL)
      return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' has no action",
                      d->name, s->name);
    switch (s->kind) {
    case FE_SAGA_COMPENSATABLE:
      if (s->compensate == NULL)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' is "
                        "compensatable but has no compensation", d->name,
                        s->name);
      if (pivot >= 0)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' is "
                        "compensatable but comes after the pivot '%s'",
                        d->name, s->name, d->steps[pivot].name);
      if (last_retriable >= 0)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' is "
                        "compensatable but comes after the retriable step "
                        "'%s'", d->name, s->name,
                        d->steps[last_retriable].name);
      break;
    case FE_SAGA_PIVOT:
      if (pivot >= 0)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' is a second "
                        "pivot (the first is '%s')", d->name, s->name,
                        d->steps[pivot].name);
      if (last_retriable >= 0)
        return fe__diag(dg, FE_EDEFINE, "saga '%s': the retriable step '%s' "
                        "comes before the pivot '%s'", d->name,
                        d->steps[last_retriable].name, s->name);
      pivot = (int)i;
      break;
    case FE_SAGA_RETRIABLE:
      last_retriable = (int)i;
      break;
    default:
      return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' has unknown "
                      "kind %d", d->name, s->name, (int)s->kind);
    }
    if (s->flags & ~(uint32_t)FE_SAGA_STEP_FLAGS_ALL)
      return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' has unknown "
                      "flags 0x%x (known: 0x%x)", d->name, s->name,
                      s->flags & ~(uint32_t)FE_SAGA_STEP_FLAGS_ALL,
                      (uint32_t)FE_SAGA_STEP_FLAGS_ALL);
    if (s->kind != FE_SAGA_COMPENSATABLE && s->compensate != NULL)
      return fe__diag(dg, FE_EDEFINE, "saga '%s': step '%s' is %s: its "
                      "compensation would never run", d->name, s->name,
                      kind_name(s->kind));
    fe_diag_t rd;
    int rc = fe_retry_policy_check(&s->retry, &rd);
    if (rc != 0)
      return fe__diag(dg, rc, "saga '%s': step '%s': %s", d->name, s->name,
                      rd.msg);
  }
  return 0;
}

static uint64_t def_hash(const fe_saga_def_t *d) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, d->name, strlen(d->name) + 1);
  for (uint32_t i = 0; i < d->n_steps; i++) {
    uint32_t k = d->steps[i].kind;
    XXH3_64bits_update(&st, d->steps[i].name, strlen(d->steps[i].name) + 1);
    XXH3_64bits_update(&st, &k, sizeof k);
  }
  return XXH3_64bits_digest(&st);
}

int fe_saga_define(fe_saga_coord_t *c, const fe_saga_def_t *d,
                   uint32_t *def_id, fe_diag_t *dg) {
  if (c == NULL)
    return fe__diag(dg, FE_EINVAL, "saga: coordinator is NULL");
  if (fe__load_relaxed(&c->open)) /* the defining thread is the opener's
                                     or ordered before it by the host */
    return fe__diag(dg, FE_ESTATE, "saga: definitions must come before the "
                    "coordinator is started or polled");
  int rc = fe_saga_def_check(d, dg);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < c->n_defs; i++)
    if (strcmp(c->defs[i].name, d->name) == 0)
      return fe__diag(dg, FE_EDEFINE, "saga '%s': defined already (id %u)",
                      d->name, i);
  if (c->n_defs >= c->cfg.max_defs)
    return fe__diag(dg, FE_ETABLEFULL, "saga '%s': max_defs (%u) "
                    "definitions exist already", d->name, c->cfg.max_defs);
  sg_def_t *x = &c->defs[c->n_defs];
  memset(x, 0, sizeof *x);
  memcpy(x->name, d->name, strlen(d->name) + 1);
  x->hash = def_hash(d);
  x->n_steps = d->n_steps;
  int pivot = -1, last_comp = -1;
  for (uint32_t i = 0; i < d->n_steps; i++) {
    const fe_saga_step_def_t *s = &d->steps[i];
    sg_step_t *t = &x->steps[i];
    memcpy(t->name, s->name, strlen(s->name) + 1);
    t->action = s->action;
    t->compensate = s->compensate;
    t->kind = s->kind;
    t->flags = s->flags;
    t->timeout_ns = s->timeout_ns;
    t->retry = s->retry;
    t->user = s->user;
    if (s->kind == FE_SAGA_PIVOT)
      pivot = (int)i;
    if (s->kind == FE_SAGA_COMPENSATABLE) {
      last_comp = (int)i;
      x->comp_mask |= 1u << i;
    }
  }
  x->pnr = pivot >= 0 ? pivot : last_comp;
  if (def_id != NULL)
    *def_id = c->n_defs;
  c->n_defs++;
  return 0;
}

int fe_saga_order_template(fe_saga_def_t *out, const fe_saga_order_hooks_t *h) {
  if (out == NULL || h == NULL || h->reserve == NULL || h->release == NULL ||
      h->submit == NULL || h->cancel == NULL || h->await_fill == NULL ||
      h->settle == NULL)
    return FE_EINVAL;
  fe_saga_def_init(out);
  out->name = "order";
  out->n_steps = 4;
  fe_saga_step_def_t *s = out->steps;
  s[0].name = "reserve";
  s[0].action = h->reserve;
  s[0].compensate = h->release;
  s[0].kind = FE_SAGA_COMPENSATABLE;
  s[1].name = "submit";
  s[1].action = h->submit;
  s[1].compensate = h->cancel;
  s[1].kind = FE_SAGA_COMPENSATABLE;
  s[1].flags = FE_SAGA_STEP_DURABLE; /* its effect leaves for the venue */
  s[1].timeout_ns = h->submit_timeout_ns ? h->submit_timeout_ns
                                         : UINT64_C(5000000000);
  s[2].name = "await_fill";
  s[2].action = h->await_fill;
  s[2].kind = FE_SAGA_PIVOT;
  s[2].timeout_ns = h->fill_timeout_ns;
  s[3].name = "settle";
  s[3].action = h->settle;
  s[3].kind = FE_SAGA_RETRIABLE;
  s[3].timeout_ns = h->settle_timeout_ns ? h->settle_timeout_ns
                                         : UINT64_C(36) * 3600 * 1000000000;
  s[3].retry.max_attempts = 10;
  for (int i = 0; i < 4; i++)
    s[i].user = h->user;
  return 0;
}

const char *fe_saga_state_name(uint32_t state) {
  static const char *const n[FE_SAGA_STATES] = {
      NULL, "RUNNING", "WAITING", "BACKOFF", "COMPENSATING", "COMPLETED",
      "COMPENSATED", "FAILED", "STUCK"};
  return state > 0 && state < FE_SAGA_STATES ? n[state] : "UNKNOWN";
}

const char *fe_saga_rec_type_name(uint32_t type) {
  static const char *const n[] = {NULL,     "START", "STEP",    "RESULT",
                                  "HEARTBEAT", "ABORT", "REDRIVE", "END"};
  return type > 0 && type < sizeof n / sizeof n[0] ? n[type] : "UNKNOWN";
}

/* ------------------------------------------------- free list and inbox */

void fe__saga_free_push(fe_saga_coord_t *c, uint32_t i) {
  uint64_t h = fe__load_relaxed(&c->free_head);
  for (;;) {
    fe__store_relaxed(&c->slots[i].fnext, (uint32_t)h);
    uint64_t nh = ((h >> 32) + 1) << 32 | i;
    /* F1, pairs with F2: the slot, as left by its last owner, and fnext */
    if (__atomic_compare_exchange_n(&c->free_head, &h, nh, 1,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
      return;
  }
}

/* Pops a free slot, or returns SG_NIL.  The tag (bumped by every push and
 * pop) makes a stale head fail the CAS even if its slot came back on top:
 * ABA would need 2^32 operations while one popper is preempted. */
static uint32_t free_pop(fe_saga_coord_t *c) {
  uint64_t h = fe__load_acquire(&c->free_head); /* F2, pairs with F1 */
  for (;;) {
    uint32_t i = (uint32_t)h;
    if (i == SG_NIL)
      return SG_NIL;
    /* May be stale if another thread popped i meanwhile: the CAS then
     * fails, the tag having moved. */
    uint32_t next = fe__load_relaxed(&c->slots[i].fnext);
    uint64_t nh = ((h >> 32) + 1) << 32 | next;
    if (__atomic_compare_exchange_n(&c->free_head, &h, nh, 1,
                                    __ATOMIC_ACQUIRE, /* F2 */
                                    __ATOMIC_ACQUIRE))
      return i;
  }
}

#ifdef FE_TSAN
uint32_t fe__saga_fence_word;
#endif

void (*fe__saga_hook_claimed)(fe_saga_coord_t *c, uint64_t token);

static void wake(fe_saga_coord_t *c) {
  /* W4: after the push (W3); sees W1 unless the coordinator's W2 sees the
   * push.  The exchange makes one waker call the kernel. */
  if (__atomic_load_n(&c->sleeping, __ATOMIC_SEQ_CST) &&
      __atomic_exchange_n(&c->sleeping, 0, __ATOMIC_SEQ_CST))
    fe__futex_wake(&c->sleeping, 1);
}

/* Sets request bit `req` on slot i and queues the slot if it is not
 * queued yet.  Lock-free. */
static void request(fe_saga_coord_t *c, uint32_t i, uint32_t req) {
  sg_slot_t *s = &c->slots[i];
  /* P1, pairs with P2: what the caller wrote before is visible when the
   * coordinator takes the bit */
  uint32_t old = __atomic_fetch_or(&s->pend, req | REQ_QUEUED,
                                   __ATOMIC_RELEASE);
  if (old & REQ_QUEUED)
    return; /* queued and not yet taken: it will see this bit */
  uint32_t h = fe__load_relaxed(&c->inbox);
  do
    fe__store_relaxed(&s->qnext, h);
  while (!__atomic_compare_exchange_n(&c->inbox, &h, i, 1,
                                      __ATOMIC_SEQ_CST, /* Q1, W3 */
                                      __ATOMIC_RELAXED));
  wake(c);
}

void fe_saga_wake(fe_saga_coord_t *c) {
  if (c != NULL && __atomic_exchange_n(&c->sleeping, 0, __ATOMIC_SEQ_CST))
    fe__futex_wake(&c->sleeping, 1);
}

/* ------------------------------------------------------------ requests */

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
  uint32_t i = free_pop(c);
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
  fe__saga_view_begin(s);
  fe__store_relaxed(&s->sgen, gen);
  fe__store_relaxed(&s->vstate, fe__saga_vstate(FE_SAGA_RUNNING, 0, 0, 0,
                                                def_id, 0));
  fe__store_relaxed(&s->vaux, 0);
  fe__store_relaxed(&s->vstart, 0);
  fe__saga_view_end(s);
  uint64_t v = gen << CTL_GEN_SHIFT | CTL_LIVE | (d->pnr < 0 ? CTL_PNR : 0);
  fe__store_release(&s->ctl, v); /* C1, pairs with C2 */
  request(c, i, REQ_START);
  *saga_id = sg_id(gen, i);
  return 0;
}

/* Decodes token into slot *i and generation *gen; FE_ETOKEN (counted) if
 * it cannot have been issued. */
static int decode(fe_saga_coord_t *c, uint64_t token, uint32_t *i,
                  uint64_t *gen) {
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
  if (!is_open(c))
    return FE_ESTATE;
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
  if (FE_UNLIKELY(fe__saga_hook_claimed != NULL))
    fe__saga_hook_claimed(c, token);
  request(c, i, REQ_COMPLETE);
  return 0;
}

int fe_saga_heartbeat(fe_saga_coord_t *c, uint64_t token, uint64_t extend_ns) {
  if (c == NULL)
    return FE_EINVAL;
  if (!is_open(c))
    return FE_ESTATE;
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
  request(c, i, REQ_HEARTBEAT);
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
  request(c, (uint32_t)(saga_id & SG_SLOT_MASK), REQ_ABORT);
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
  request(c, (uint32_t)(saga_id & SG_SLOT_MASK), REQ_REDRIVE);
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
