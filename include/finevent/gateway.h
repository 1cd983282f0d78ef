/*
 * libfinevent: the execution gateway stage -- the host's venue call behind
 * one named circuit breaker per venue.
 *
 * The host writes the call that sends an order to a venue (FIX session,
 * REST gateway, simulator) as an fe_gateway_send_fn.  The gateway wraps it
 * into a stage handler, fe_gateway_stage(), that for every event:
 *
 *   1. picks the venue (cfg.venue(ev), or venue 0) and its breaker;
 *   2. asks the breaker for a permit.  When the breaker refuses (OPEN,
 *      FORCED_OPEN, or HALF_OPEN with every trial call taken), the send is
 *      not made and the event fails fast with cfg.open_reason, as the
 *      stage's policy says: rejected (FE_GATEWAY_OPEN_REJECT, the default:
 *      the client gets a reject it can resubmit later) or dead-lettered
 *      (FE_GATEWAY_OPEN_DEAD_LETTER: the order goes to the bus's
 *      dead-letter queue, text "circuit open: <breaker name>", for an
 *      operator to redrive once the venue is back);
 *   3. journals the intent to send (fe_bus_intent(); with no journal this
 *      costs nothing).  An order that recovery found already sent before a
 *      crash is not sent again: it continues as accepted.  If the intent
 *      cannot be written the order is not sent: FE_RETRY with open_reason.
 *   4. otherwise calls send and reports its verdict to the breaker:
 *        FE_CONTINUE  the venue accepted it              -> success
 *        FE_REJECT    the venue answered with a reject   -> success (a
 *                     business reject says the venue is healthy)
 *        FE_RETRY, FE_FAIL  a technical failure          -> error
 *      The call's duration (breaker clock) decides whether it was slow.
 *      The verdict is then returned to the bus unchanged, so FE_RETRY is
 *      retried by the stage's retry policy (each attempt asks the breaker
 *      again: an attempt that finds it open fails fast as in 2) and FE_FAIL
 *      dead-letters.
 *
 * Breakers are the host's (fe_breaker_create(), one per venue, named after
 * it): their configuration, state-change callback, manual states and
 * metrics (fe_breaker_metrics()) are all as in breaker.h.  The gateway adds
 * per-venue counters (fe_gateway_stats()).
 *
 * Use:
 *     fe_gateway_config_init(&gc);
 *     gc.send = my_send; gc.user = my_session;
 *     gc.venue = my_venue_of; gc.n_venues = 2;
 *     gc.breakers[0] = xnas_breaker; gc.breakers[1] = xnys_breaker;
 *     fe_gateway_create(&gc, &gw, &diag);
 *     def.name = "execution"; def.handler = fe_gateway_stage; def.user = gw;
 *
 * Threads.  fe_gateway_stage runs wherever the bus runs the stage: on each
 * shard's worker, concurrently when the stage is sharded.  send is called
 * there with the same rules as any handler (bus.h); it is a blocking call
 * to the outside only in the sense the host accepts for its execution
 * stage.  The gateway itself adds a breaker acquire (wait-free while
 * CLOSED), one outcome report (the breaker's short spinlock, see
 * breaker.h) and relaxed counter increments: no allocation, no system call.
 */
#ifndef FINEVENT_GATEWAY_H
#define FINEVENT_GATEWAY_H

#include <stdint.h>

#include "breaker.h"
#include "bus.h"
#include "error.h"
#include "event.h"
#include "reason.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_GATEWAY_MAX_VENUES 64
/* The default reasons, FE_REASON_CIRCUIT_OPEN ("breaker open, not sent")
 * and FE_REASON_NO_VENUE ("cfg.venue returned an index >= n_venues"), are
 * in reason.h with the library's other reasons. */

typedef struct fe_gateway fe_gateway_t;

/* What happens to an order whose venue breaker refuses the call. */
typedef enum fe_gateway_open {
  FE_GATEWAY_OPEN_REJECT = 1,      /* FE_REJECT with open_reason */
  FE_GATEWAY_OPEN_DEAD_LETTER = 2  /* FE_FAIL with open_reason: dead letter */
} fe_gateway_open_t;

/* The host's venue call.  ctx and ev as for a stage handler; venue is the
 * index cfg.venue chose.  Returns the verdict of the send (see the top):
 * FE_CONTINUE, fe_reject(ctx, r), fe_retry(ctx, r) or fe_fail(ctx, r). */
typedef fe_verdict_t (*fe_gateway_send_fn)(fe_stage_ctx_t *ctx,
                                           fe_event_t *ev, uint32_t venue,
                                           void *user);

/* Picks the venue of an event: 0..n_venues-1.  Called on the stage's
 * worker before each attempt; must be cheap and depend only on ev. */
typedef uint32_t (*fe_gateway_venue_fn)(const fe_event_t *ev, void *user);

typedef struct fe_gateway_config {
  fe_gateway_send_fn send;   /* required */
  void *user;                /* passed to send */
  fe_gateway_venue_fn venue; /* NULL: every event goes to venue 0 */
  void *venue_user;          /* passed to venue */
  uint32_t n_venues;         /* 1..FE_GATEWAY_MAX_VENUES (default 1) */
  /* Breaker of each venue, borrowed (must outlive the gateway); NULL: the
   * venue's calls are not guarded.  One breaker may guard several venues. */
  fe_breaker_t *breakers[FE_GATEWAY_MAX_VENUES];
  fe_gateway_open_t on_open; /* default FE_GATEWAY_OPEN_REJECT */
  uint32_t open_reason;      /* 1..FE_REASON_MAX (default
                                FE_REASON_CIRCUIT_OPEN) */
  uint32_t no_venue_reason;  /* 1..FE_REASON_MAX (default
                                FE_REASON_NO_VENUE): a venue index out of
                                range is a configuration bug, so the event
                                is dead-lettered (FE_FAIL) with it */
} fe_gateway_config_t;

/* Per-venue counters, since create.  Each is exact; the set is not one
 * snapshot while events flow. */
typedef struct fe_gateway_stats {
  uint64_t sent;          /* send calls made */
  uint64_t accepted;      /* send returned FE_CONTINUE */
  uint64_t rejected;      /* send returned FE_REJECT */
  uint64_t errors;        /* send returned FE_RETRY or FE_FAIL */
  uint64_t not_permitted; /* breaker refused: send not called */
  uint64_t already_sent;  /* recovery found it sent before a crash
                             (fe_bus_intent): send not called again */
} fe_gateway_stats_t;

/* Fills cfg with the defaults above (no send, one unguarded venue).
 * Cannot fail. */
FE_API void fe_gateway_config_init(fe_gateway_config_t *cfg);

/* Validates cfg and allocates a gateway.
 *   cfg   in: read during the call (the breaker pointers are copied).
 *   out   out: the gateway, freed with fe_gateway_destroy(); untouched on
 *         failure.
 *   diag  out, may be NULL: the code and a message naming the field.
 * Returns 0, FE_EINVAL (cfg or out NULL, send NULL, on_open unknown),
 * FE_ERANGE (n_venues 0 or above the maximum, a reason outside
 * 1..FE_REASON_MAX), FE_ENOMEM.  Nothing allocated on failure.
 * Thread-safe; blocking (allocates). */
FE_API int fe_gateway_create(const fe_gateway_config_t *cfg,
                             fe_gateway_t **out, fe_diag_t *diag);

/* Frees gw (not its breakers).  Accepts NULL.  The bus that uses it must be
 * destroyed (or at least stopped) first. */
FE_API void fe_gateway_destroy(fe_gateway_t *gw);

/* The stage handler: fe_stage_def_t.handler = fe_gateway_stage, .user =
 * the gateway.  Behaviour at the top.  Runs on the stage's workers. */
FE_API fe_verdict_t fe_gateway_stage(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                     void *gw);

/* Copies the counters of venue into *out.  Returns 0, FE_EINVAL (NULL),
 * FE_ERANGE (venue >= n_venues).  Any thread; wait-free. */
FE_API int fe_gateway_stats(const fe_gateway_t *gw, uint32_t venue,
                            fe_gateway_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_GATEWAY_H */
