/* The execution gateway stage: a host send function behind per-venue
 * circuit breakers.  See include/finevent/gateway.h. */
#include <stdlib.h>
#include <string.h>

#include "finevent/gateway.h"
#include "internal.h"
#include "sync.h"

/* Counters of one venue, on their own lines: a sharded execution stage
 * updates different venues from different workers. */
typedef struct venue_ctr {
  uint64_t sent, accepted, rejected, errors, not_permitted, already_sent;
  char pad[FE_PAD - 6 * sizeof(uint64_t)];
} venue_ctr_t;

struct fe_gateway {
  fe_gateway_config_t cfg;
  /* Counters: relaxed atomic increments from the stage's workers, relaxed
   * loads from any thread; they order nothing, they only count. */
  venue_ctr_t ctr[];
};

void fe_gateway_config_init(fe_gateway_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->n_venues = 1;
  cfg->on_open = FE_GATEWAY_OPEN_REJECT;
  cfg->open_reason = FE_REASON_CIRCUIT_OPEN;
  cfg->no_venue_reason = FE_REASON_NO_VENUE;
}

static int check(const fe_gateway_config_t *c, fe_diag_t *d) {
  if (c->send == NULL)
    return fe__diag(d, FE_EINVAL, "gateway: send is NULL");
  if (c->n_venues == 0 || c->n_venues > FE_GATEWAY_MAX_VENUES)
    return fe__diag(d, FE_ERANGE, "gateway: n_venues %u is not in 1..%d",
                    c->n_venues, FE_GATEWAY_MAX_VENUES);
  if (c->on_open != FE_GATEWAY_OPEN_REJECT &&
      c->on_open != FE_GATEWAY_OPEN_DEAD_LETTER)
    return fe__diag(d, FE_EINVAL, "gateway: on_open %d is not "
                    "FE_GATEWAY_OPEN_REJECT or FE_GATEWAY_OPEN_DEAD_LETTER",
                    (int)c->on_open);
  if (c->open_reason == 0 || c->open_reason > FE_REASON_MAX)
    return fe__diag(d, FE_ERANGE, "gateway: open_reason %u is not in 1..%d",
                    c->open_reason, FE_REASON_MAX);
  if (c->no_venue_reason == 0 || c->no_venue_reason > FE_REASON_MAX)
    return fe__diag(d, FE_ERANGE,
                    "gateway: no_venue_reason %u is not in 1..%d",
                    c->no_venue_reason, FE_REASON_MAX);
  return 0;
}

int fe_gateway_create(const fe_gateway_config_t *cfg, fe_gateway_t **out,
                      fe_diag_t *diag) {
  if (cfg == NULL || out == NULL)
    return fe__diag(diag, FE_EINVAL, "gateway: %s is NULL",
                    cfg == NULL ? "cfg" : "out");
  int rc = check(cfg, diag);
  if (rc != 0)
    return rc;
  fe_gateway_t *gw = fe__zalloc_aligned(sizeof *gw + cfg->n_venues *
                                        sizeof(venue_ctr_t));
  if (gw == NULL)
    return fe__diag(diag, FE_ENOMEM, "gateway: out of memory");
  gw->cfg = *cfg;
  *out = gw;
  return 0;
}

void fe_gateway_destroy(fe_gateway_t *gw) { free(gw); }

static inline void count(uint64_t *c) {
  __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* The breaker refused: fail fast without calling the venue. */
static fe_verdict_t open_verdict(fe_gateway_t *gw, fe_stage_ctx_t *ctx,
                                 fe_breaker_t *b) {
  if (gw->cfg.on_open == FE_GATEWAY_OPEN_REJECT)
    return fe_reject(ctx, gw->cfg.open_reason);
  /* The name lives as long as the breaker, which outlives the gateway:
   * static enough for the dead-letter queue to copy. */
  ctx->text = fe_breaker_name(b);
  return fe_fail(ctx, gw->cfg.open_reason);
}

fe_verdict_t fe_gateway_stage(fe_stage_ctx_t *ctx, fe_event_t *ev,
                              void *user) {
  fe_gateway_t *gw = user;
  if (ctx == NULL || ev == NULL || gw == NULL)
    return FE_FAIL; /* not a call the bus makes: nothing was sent */
  uint32_t v = gw->cfg.venue ? gw->cfg.venue(ev, gw->cfg.venue_user) : 0;
  if (FE_UNLIKELY(v >= gw->cfg.n_venues)) {
    ctx->text = "gateway: venue index out of range";
    return fe_fail(ctx, gw->cfg.no_venue_reason);
  }
  venue_ctr_t *c = &gw->ctr[v];
  fe_breaker_t *b = gw->cfg.breakers[v];
  uint64_t permit = 0;
  if (b != NULL && fe_breaker_acquire(b, &permit) != 0) {
    count(&c->not_permitted);
    return open_verdict(gw, ctx, b);
  }
  /* Journal the intent before the order can leave the process. */
  int r = ctx->bus != NULL ? fe_bus_intent(ctx, ev) : 0;
  if (r != 0) {
    if (b != NULL)
      fe_breaker_release(b, permit); /* no call made */
    if (r == FE_EDUPLICATE) { /* sent before a crash: never again */
      count(&c->already_sent);
      return FE_CONTINUE;
    }
    ctx->text = "gateway: cannot journal the intent to send";
    return fe_retry(ctx, gw->cfg.open_reason);
  }
  count(&c->sent);
  fe_verdict_t vd = gw->cfg.send(ctx, ev, v, gw->cfg.user);
  switch (vd) {
  case FE_CONTINUE:
    count(&c->accepted);
    break;
  case FE_REJECT:
    count(&c->rejected);
    break;
  default: /* FE_RETRY, FE_FAIL, or garbage the bus treats as a failure */
    count(&c->errors);
    break;
  }
  if (b != NULL) {
    if (vd == FE_CONTINUE || vd == FE_REJECT)
      fe_breaker_on_success(b, permit);
    else
      fe_breaker_on_error(b, permit);
  }
  return vd;
}

int fe_gateway_stats(const fe_gateway_t *gw, uint32_t venue,
                     fe_gateway_stats_t *out) {
  if (gw == NULL || out == NULL)
    return FE_EINVAL;
  if (venue >= gw->cfg.n_venues)
    return FE_ERANGE;
  const venue_ctr_t *c = &gw->ctr[venue];
  out->sent = fe__load_relaxed(&c->sent);
  out->accepted = fe__load_relaxed(&c->accepted);
  out->rejected = fe__load_relaxed(&c->rejected);
  out->errors = fe__load_relaxed(&c->errors);
  out->not_permitted = fe__load_relaxed(&c->not_permitted);
  out->already_sent = fe__load_relaxed(&c->already_sent);
  return 0;
}
