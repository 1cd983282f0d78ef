/*
 * The bus's exactly-once machinery (durable.c): the journaller and outcome
 * stages, the intent record, and recovery.  Internal.  It sits on the ring
 * (ring.h) and sees nothing else of the bus: what it needs is handed over
 * in an fe_durable_env_t that the bus fills at create.
 */
#ifndef FE_DURABLE_H
#define FE_DURABLE_H

#include "ring.h"

typedef struct durable durable_t;

/* fe_event_t.flags bit of a dead letter's copy in the DLQ: its seq is the
 * event's journal id (redrives and purges are journaled against it). */
#define FE_EVF_DLQ_EID 1u

/* What the internal stages and recovery use.  Filled by fe_bus_create
 * before the stages run; read-only afterwards (dur is set once by
 * fe__durable_open). */
typedef struct fe_durable_env {
  fe_ring_t *ring;
  fe_idem_t *idem;
  fe_dlq_t *dlq;
  void (*on_outcome)(const fe_event_t *ev, fe_idem_outcome_t *out,
                     void *user);
  void *outcome_user;
  uint64_t parallel_stages; /* bit s: stage s runs parallel_to_journal */
  int host_driven;
  durable_t *dur;           /* journal and recovery state; NULL: none */
} fe_durable_env_t;

/* The internal stages' batch handlers (user: the env). */
void fe__journal_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *env);
void fe__outcome_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *env);
/* Opens cfg->journal and replays it into env->dur (idempotency entries
 * restored, dead letters and unfinished events collected, in-doubt events
 * resolved).  Called by fe_bus_create once the bus is built. */
int fe__durable_open(fe_durable_env_t *env, const fe_bus_config_t *cfg,
                     fe_diag_t *diag);
/* Puts the collected dead letters into the DLQ and re-drives the
 * unfinished events; called by fe_bus_start once workers run.  In
 * host-driven mode, poll(arg) runs the workers while the ring is full. */
int fe__durable_start(fe_durable_env_t *env, void (*poll)(void *arg),
                      void *arg, fe_diag_t *diag);
void fe__durable_free(durable_t *d);
/* Detaches the bus from its DLQ's purge hook (first, when freeing). */
void fe__durable_detach(fe_durable_env_t *env);
/* 1 once the journal could not be written (sticky). */
int fe__durable_failed(const fe_durable_env_t *env);
/* fe_bus_intent for an event of `stage`. */
int fe__durable_intent(fe_durable_env_t *env, uint32_t stage,
                       const fe_event_t *ev);
/* Puts dead-lettered event ev into dlq, as both the bus and recovery do:
 * ev as the queue keeps it (its seq may carry the journal id, under
 * FE_EVF_DLQ_EID), its user area (user_len bytes), why it was given up
 * (dl: stage, reason, attempts, redrives, text; exhausted is not used),
 * and the queue's kind for it.  The first-seen time is the event's receive
 * time, or fallback_ns when the publisher left that 0; the key is its
 * client order id; a reason above FE_REASON_MAX is stored as 0.  Returns
 * fe_dlq_put()'s result: a refusal is already counted and alerted by the
 * queue; nothing else is changed.  Blocks up to timeout_ns (the queue's
 * BLOCK policy). */
int fe__dlq_put_dead(fe_dlq_t *dlq, const fe_event_t *ev, const void *user,
                     uint32_t user_len, const fe_dead_letter_t *dl,
                     uint32_t kind, uint64_t fallback_ns, uint64_t timeout_ns);
/* What recovery found; the journal (NULL: none). */
const fe_bus_recovery_t *fe__durable_report(const durable_t *d);
fe_journal_t *fe__durable_journal(const durable_t *d);

#endif /* FE_DURABLE_H */
