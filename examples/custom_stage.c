#include <finevent/finevent.h>
#include <stdio.h>

enum { R_TOO_BIG = 1 };              /* your reject reasons: 1..223 (224..255: reason.h) */

static fe_verdict_t max_notional(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  int64_t limit = *(const int64_t *)user;     /* FE_PRICE_SCALE fixed point */
  if (ev->order.quantity * ev->order.price > limit)
    return fe_reject(ctx, R_TOO_BIG);         /* later stages skip this order */
  return FE_CONTINUE;
}

int main(void) {
  static int64_t limit = 1000000 * FE_PRICE_SCALE;
  fe_stage_def_t st;  fe_stage_def_init(&st);
  st.name = "compliance", st.handler = max_notional, st.user = &limit;
  fe_bus_config_t cfg;  fe_bus_config_init(&cfg);
  cfg.stages = &st, cfg.n_stages = 1;
  fe_bus_t *bus;  fe_diag_t diag;
  if (fe_bus_create(&cfg, &bus, &diag) || fe_bus_start(bus, &diag))
    return fprintf(stderr, "%s\n", diag.msg), 1;
  for (int64_t qty = 100; qty <= 1000000; qty *= 100) {  /* notional 500 .. 5 M */
    fe_event_t *ev;
    if (fe_bus_claim(bus, &ev, FE_WAIT_FOREVER) == 0) {  /* waits while full */
      ev->order.account = 42, ev->order.quantity = qty, ev->order.price = 5 * FE_PRICE_SCALE;
      fe_bus_publish(bus, ev);
    }
  }
  fe_bus_drain(bus, FE_WAIT_FOREVER);
  fe_bus_stats_t s;  fe_bus_stats(bus, &s);
  printf("completed %llu, rejected %llu\n", (unsigned long long)s.completed,
         (unsigned long long)s.rejected);
  fe_bus_destroy(bus);                         /* stops first: nothing published is lost */
  return s.completed == 2 && s.rejected == 1 ? 0 : 1;
}
