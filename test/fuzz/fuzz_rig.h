/*
 * test/fuzz/fuzz_rig.h: the journaled bus and saga coordinator that
 * gen_seeds.c writes real journals with and fuzz_bus_recovery.c recovers
 * fuzzed ones into.  One definition for both, so that the seeds' records
 * match the harness's configuration (user area size, the saga
 * definition's hash).
 */
#ifndef FE_FUZZ_RIG_H
#define FE_FUZZ_RIG_H

#include <string.h>

#include <finevent/finevent.h>

#define FZ_DLQ_USER 16
#define FZ_CTX 16

/* Stage 0: rejects quantity 0 (reason 9); parallel to the journal. */
static inline fe_verdict_t fz_validate(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  return ev->order.quantity == 0 ? fe_reject(ctx, 9) : FE_CONTINUE;
}

/* Stage 1: journals the intent, then fails quantities >= 5 for good (a
 * dead letter, reason 33). */
static inline fe_verdict_t fz_execute(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (fe_bus_intent(ctx, ev) != 0)
    return fe_retry(ctx, 1);
  return ev->order.quantity >= 5 ? fe_fail(ctx, 33) : FE_CONTINUE;
}

/* In doubt: odd quantities were sent. */
static inline int fz_in_doubt(const fe_event_t *ev, void *u) {
  (void)u;
  return (int)(ev->order.quantity & 1);
}

static inline void fz_on_outcome(const fe_event_t *ev, fe_idem_outcome_t *o,
                          void *u) {
  (void)u;
  if (ev->order.quantity == 3)
    snprintf(o->venue_order_id, sizeof o->venue_order_id, "V-3");
}

typedef struct fz_rig {
  fe_idem_t *idem;
  fe_dlq_t *dlq;
  fe_bus_t *bus;
  fe_saga_coord_t *saga;
  fe_stage_def_t st[2];
  fe_journal_config_t jc;
} fz_rig_t;

static uint64_t fz_pending_token; /* step b's newest token */

static inline fe_saga_result_t fz_step(fe_saga_call_t *call, void *user) {
  (void)user;
  if (call->compensating)
    return FE_SAGA_DONE;
  if (call->step == 1) {
    fz_pending_token = call->token;
    return FE_SAGA_PENDING; /* completed by the host with the token */
  }
  if (call->step == 2 && call->attempt == 1) {
    call->reason = 5;
    return FE_SAGA_RETRY;
  }
  return FE_SAGA_DONE;
}

/* A coordinator with one definition: a (compensatable), b (compensatable,
 * pending), c (pivot, retried once).  Returns 0 or the error. */
static inline int fz_saga_create(fe_saga_coord_t **out, uint64_t (*now)(void *),
                          uint64_t (*wall)(void *)) {
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 8;
  cfg.ctx_size = FZ_CTX;
  cfg.salt = 0x5eed;
  cfg.now_ns = now;
  cfg.wall_ns = wall;
  int rc = fe_saga_create(&cfg, out, NULL);
  if (rc != 0)
    return rc;
  fe_saga_def_t d;
  fe_saga_def_init(&d);
  d.name = "fuzz";
  d.n_steps = 3;
  static const char *names[3] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    d.steps[i].name = names[i];
    d.steps[i].action = fz_step;
    d.steps[i].kind = i < 2 ? FE_SAGA_COMPENSATABLE : FE_SAGA_PIVOT;
    d.steps[i].compensate = i < 2 ? fz_step : NULL;
    d.steps[i].retry.initial_ns = 1000;
    d.steps[i].retry.jitter_milli = 0;
  }
  d.steps[1].timeout_ns = 1000000000;
  rc = fe_saga_define(*out, &d, NULL, NULL);
  if (rc != 0) {
    fe_saga_destroy(*out);
    *out = NULL;
  }
  return rc;
}

/* The journaled, host-driven bus on dir (validation, execution; journal
 * and outcome stages on worker 1), replaying saga records into r->saga
 * (which may be NULL).  Returns fe_bus_create()'s code; on failure
 * everything but r->saga is freed. */
static inline int fz_bus_create(fz_rig_t *r, const char *dir, fe_diag_t *d) {
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 256;
  int rc = fe_idem_create(&ic, &r->idem, NULL);
  if (rc != 0)
    return rc;
  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  qc.user_size = FZ_DLQ_USER;
  qc.capacity = 64;
  if ((rc = fe_dlq_create(&qc, &r->dlq, NULL)) != 0) {
    fe_idem_destroy(r->idem);
    r->idem = NULL;
    return rc;
  }
  fe_journal_config_init(&r->jc);
  r->jc.dir = dir;
  r->jc.fsync = FE_FSYNC_NONE;
  r->jc.segment_bytes = 4096;
  r->jc.buffer_bytes = 4096;
  fe_stage_def_init(&r->st[0]);
  r->st[0].name = "validation";
  r->st[0].handler = fz_validate;
  r->st[0].parallel_to_journal = 1;
  fe_stage_def_init(&r->st[1]);
  r->st[1].name = "execution";
  r->st[1].handler = fz_execute;
  r->st[1].n_deps = 1;
  r->st[1].retry.max_attempts = 1;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.max_batch = 8;
  cfg.slot_size = sizeof(fe_event_t) + 64;
  cfg.host_driven = 1;
  cfg.stages = r->st;
  cfg.n_stages = 2;
  cfg.idem = r->idem;
  cfg.dlq = r->dlq;
  cfg.journal = &r->jc;
  cfg.journal_worker = 1;
  cfg.in_doubt = fz_in_doubt;
  cfg.on_outcome = fz_on_outcome;
  if (r->saga != NULL) {
    cfg.on_replay = fe_saga_journal_replay;
    cfg.replay_user = r->saga;
  }
  rc = fe_bus_create(&cfg, &r->bus, d);
  if (rc != 0) {
    r->bus = NULL;
    fe_dlq_destroy(r->dlq);
    fe_idem_destroy(r->idem);
    r->dlq = NULL;
    r->idem = NULL;
  }
  return rc;
}

/* Runs both workers until neither has work. */
static inline void fz_poll_all(fe_bus_t *bus) {
  for (int more = 1; more;) {
    more = 0;
    for (uint32_t w = 0; w < 2; w++)
      while (fe_bus_poll(bus, w) > 0)
        more = 1;
  }
}

static inline void fz_bus_destroy(fz_rig_t *r) {
  if (r->bus != NULL) {
    fe_bus_stop(r->bus);
    for (int more = 1; more;) {
      more = 0;
      for (uint32_t w = 0; w < 2; w++)
        more |= fe_bus_poll(r->bus, w) != FE_ESTOPPED;
    }
    fe_saga_destroy(r->saga); /* releases its pin before the journal goes */
    r->saga = NULL;
    fe_bus_destroy(r->bus);
  }
  fe_saga_destroy(r->saga);
  fe_dlq_destroy(r->dlq);
  fe_idem_destroy(r->idem);
  memset(r, 0, sizeof *r);
}

#endif /* FE_FUZZ_RIG_H */
