/* Saga coordinator: configuration, create and destroy, definitions and
 * the order template.  The rest, each in its own file, with calls only
 * going down this list:
 *   saga_req.c     what other threads call: requests and queries
 *   saga_run.c     the coordinator's pass: the run loop, timers, open
 *   saga_log.c     records: writing one, replaying them
 *   saga_journal.c records on an fe_journal: appends, durability, pins
 *   saga_inbox.c   the free list of slots and the request inbox
 *   saga_token.c   tokens and the salt
 * saga_bus.c adapts the coordinator to a bus stage.  The shared structures
 * and the memory-order pairs are described in saga_impl.h.
 */
#define _GNU_SOURCE /* strnlen */
#include "saga_impl.h"

#include <stdio.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

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
  fe__saga_set_salt(c, cfg->salt ? cfg->salt : fe__saga_random_salt());
  c->free_head = SG_NIL; /* built at open, after replay */
  c->inbox = SG_NIL;
  c->run_head = c->run_tail = SG_NIL;
  c->rng = fe__mix64(c->salt ^ UINT64_C(0x5A6A));
  c->st.capacity = c->max;
  c->logs = cfg->log != NULL;
  *out = c;
  return 0;
}

void fe_saga_destroy(fe_saga_coord_t *c) {
  if (c == NULL)
    return;
  if (c->thread_on)
    fe_saga_thread_stop(c);
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

