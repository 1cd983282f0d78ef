/* The saga coordinator as a bus stage: execution reports and settlement
 * confirmations complete saga steps.  See "On the bus" in
 * include/finevent/saga.h.
 *
 * The stage's handler runs on the bus's workers (several at once when the
 * stage is sharded); all it does is fe_saga_complete(), which any thread
 * may call, and relaxed counter increments (statistics: no ordering with
 * anything, each read atomically).  The map is copied into the
 * coordinator before the bus exists, and only read afterwards: the bus's
 * start (thread creation, or the host's ordering of its poll calls) orders
 * the copy before every handler call. */
#include "saga_impl.h"

void fe_saga_bus_map_init(fe_saga_bus_map_t *m) {
  if (m == NULL)
    return;
  memset(m, 0, sizeof *m);
  m->n_types = 2;
  m->types[0] = FE_EV_EXEC_REPORT;
  m->types[1] = FE_EV_SETTLE_CONFIRM;
}

static void bump(uint64_t *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }

static fe_verdict_t saga_stage(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               void *user) {
  (void)ctx;
  fe_saga_coord_t *c = user;
  const fe_saga_bus_map_t *m = &c->busmap;
  uint64_t token = ev->trace_id;
  fe_saga_result_t r = FE_SAGA_DONE;
  uint32_t reason = 0;
  if (m->extract != NULL && !m->extract(ev, &token, &r, &reason, m->user)) {
    bump(&c->bus_st.ignored);
    return FE_CONTINUE;
  }
  switch (fe_saga_complete(c, token, r, reason)) {
  case 0:
    bump(&c->bus_st.completed);
    break;
  case FE_ELATE:
    bump(&c->bus_st.late);
    break;
  case FE_ETOKEN:
    bump(&c->bus_st.unknown);
    break;
  default: /* FE_EINVAL (a result the extractor made up), FE_ESTATE */
    bump(&c->bus_st.refused);
    break;
  }
  return FE_CONTINUE;
}

int fe_saga_bus_stage(fe_saga_coord_t *c, const fe_saga_bus_map_t *map,
                      fe_stage_def_t *out, fe_diag_t *d) {
  if (c == NULL || out == NULL)
    return fe__diag(d, FE_EINVAL, "saga stage: %s is NULL",
                    c == NULL ? "coordinator" : "out");
  fe_saga_bus_map_t def;
  if (map == NULL) {
    fe_saga_bus_map_init(&def);
    map = &def;
  }
  if (map->n_types == 0 || map->n_types > FE_STAGE_MAX_TYPES)
    return fe__diag(d, FE_ERANGE, "saga stage: n_types %u is outside 1..%d",
                    map->n_types, FE_STAGE_MAX_TYPES);
  for (uint32_t k = 0; k < map->n_types; k++)
    if (map->types[k] == 0)
      return fe__diag(d, FE_ERANGE, "saga stage: types[%u] is 0", k);
  c->busmap = *map;
  fe_stage_def_init(out);
  out->name = "saga";
  out->handler = saga_stage;
  out->user = c;
  out->n_types = map->n_types;
  memcpy(out->types, map->types, sizeof out->types);
  return 0;
}

int fe_saga_bus_stats(const fe_saga_coord_t *c, fe_saga_bus_stats_t *out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  out->completed = __atomic_load_n(&c->bus_st.completed, __ATOMIC_RELAXED);
  out->late = __atomic_load_n(&c->bus_st.late, __ATOMIC_RELAXED);
  out->unknown = __atomic_load_n(&c->bus_st.unknown, __ATOMIC_RELAXED);
  out->ignored = __atomic_load_n(&c->bus_st.ignored, __ATOMIC_RELAXED);
  out->refused = __atomic_load_n(&c->bus_st.refused, __ATOMIC_RELAXED);
  return 0;
}
