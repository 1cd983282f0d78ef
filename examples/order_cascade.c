/*
 * order_cascade: the trading stage cascade end to end, on two threads.
 *
 *   admission (throttle 100 orders/s per account, trading states)
 *     -> validation -> compliance -> execution (two venues, each behind
 *        its own circuit breaker) -> settlement
 *   dead letters -> the dead-letter queue, redriven once the venue is back
 *
 * The XNYS venue fails for a while: its breaker opens and its orders are
 * dead-lettered fast without being sent; XNAS keeps trading.  When XNYS is
 * healthy again the operator resets the breaker and redrives the DLQ.  Then
 * the kill switch halts everything.  Every count printed at the end adds
 * up: published = completed + rejected + dead-lettered.
 */
#include <finevent/finevent.h>
#include <stdio.h>
#include <string.h>

enum { R_BAD_QTY = 1, R_LIMIT = 2, R_VENUE_DOWN = 3 };
#define NOTIONAL_LIMIT (1000000 * FE_PRICE_SCALE) /* 1 M per order */

static fe_verdict_t validation(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (ev->order.quantity <= 0 || ev->order.price <= 0)
    return fe_reject(ctx, R_BAD_QTY);
  return FE_CONTINUE;
}

static fe_verdict_t compliance(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  ev->order.notional = ev->order.quantity * ev->order.price;
  return ev->order.notional > NOTIONAL_LIMIT ? fe_reject(ctx, R_LIMIT)
                                             : FE_CONTINUE;
}

/* The venues: XNYS answers "session down" while xnys_down is set. */
static volatile int xnys_down;
static uint64_t sent[2];

static fe_verdict_t send_to_venue(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                  uint32_t venue, void *u) {
  (void)ev, (void)u;
  if (venue == 1 && xnys_down) {
    ctx->text = "XNYS session down";
    return fe_fail(ctx, R_VENUE_DOWN);
  }
  sent[venue]++;
  return FE_CONTINUE;
}

static uint32_t venue_of(const fe_event_t *ev, void *u) {
  (void)u;
  return ev->order.symbol[0] == 'I' ? 1 : 0; /* IBM on XNYS, rest XNAS */
}

static uint64_t settled;
static fe_verdict_t settlement(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  settled++;
  return FE_CONTINUE;
}

static void on_breaker(const char *name, fe_breaker_state_t from,
                       fe_breaker_state_t to, void *u) {
  (void)u;
  printf("  breaker %s: %s -> %s\n", name, fe_breaker_state_name((int)from),
         fe_breaker_state_name((int)to));
}

static int publish(fe_bus_t *bus, uint64_t account, const char *sym,
                   int64_t qty, uint64_t id) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = account;
  o.quantity = qty;
  o.price = 50 * FE_PRICE_SCALE;
  o.side = FE_SIDE_BUY;
  snprintf(o.symbol, sizeof o.symbol, "%s", sym);
  snprintf(o.client_order_id, sizeof o.client_order_id, "C%llu",
           (unsigned long long)id);
  return fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, id, FE_WAIT_FOREVER,
                              NULL);
}

#define CHECK(call)                                                           \
  do {                                                                        \
    int rc_ = (call);                                                         \
    if (rc_ != 0) {                                                           \
      fprintf(stderr, "%s: %s (%s)\n", #call, fe_strerror(rc_), d.msg);       \
      return 1;                                                               \
    }                                                                         \
  } while (0)

int main(void) {
  fe_diag_t d = {0};
  fe_breaker_t *br[2];
  const char *venue_names[2] = {"XNAS", "XNYS"};
  for (int i = 0; i < 2; i++) {
    fe_breaker_config_t bc;
    fe_breaker_config_init(&bc);
    bc.name = venue_names[i];
    bc.window_size = 20;     /* judge the last 20 calls */
    bc.minimum_calls = 10;
    bc.wait_open_ns = 3600 * UINT64_C(1000000000); /* until an operator acts */
    bc.on_state = on_breaker;
    CHECK(fe_breaker_create(&bc, &br[i], &d));
  }
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = send_to_venue;
  gc.venue = venue_of;
  gc.n_venues = 2;
  gc.breakers[0] = br[0], gc.breakers[1] = br[1];
  gc.on_open = FE_GATEWAY_OPEN_DEAD_LETTER; /* park them for a redrive */
  fe_gateway_t *gw;
  CHECK(fe_gateway_create(&gc, &gw, &d));

  fe_throttle_config_t tc;
  fe_throttle_config_init(&tc);
  tc.key_rate = 100, tc.key_burst = 100; /* 100 orders/s per account */
  fe_throttle_t *thr;
  CHECK(fe_throttle_create(&tc, &thr, &d));
  fe_trading_config_t trc;
  fe_trading_config_init(&trc);
  fe_trading_t *trading;
  CHECK(fe_trading_create(&trc, &trading, &d));
  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  fe_dlq_t *dlq;
  CHECK(fe_dlq_create(&qc, &dlq, &d));

  fe_stage_def_t st[4];
  const char *names[4] = {"validation", "compliance", "execution",
                          "settlement"};
  for (uint32_t i = 0; i < 4; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i];
    st[i].worker = i < 2 ? 0 : 1; /* two threads: checks | venue side */
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = i - 1;
  }
  st[0].handler = validation;
  st[1].handler = compliance;
  st[2].handler = fe_gateway_stage, st[2].user = gw;
  st[2].retry.max_attempts = 1; /* a venue failure dead-letters at once */
  st[3].handler = settlement;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.stages = st, cfg.n_stages = 4;
  cfg.dlq = dlq, cfg.throttle = thr, cfg.trading = trading;
  fe_bus_t *bus;
  CHECK(fe_bus_create(&cfg, &bus, &d));
  CHECK(fe_bus_start(bus, &d));

  printf("1. 300 orders on 3 accounts, XNYS down\n");
  xnys_down = 1;
  uint64_t id = 0, throttled = 0;
  for (int i = 0; i < 300; i++) {
    int rc = publish(bus, 1 + i % 3, i % 2 ? "IBM" : "AAPL", i % 50 ? 10 : 0,
                     ++id);
    throttled += rc == FE_ETHROTTLED;
  }
  publish(bus, 4, "AAPL", 1000000, ++id); /* over the notional limit */
  fe_bus_drain(bus, FE_WAIT_FOREVER);
  fe_breaker_metrics_t m;
  fe_breaker_metrics(br[1], &m);
  printf("  XNYS breaker refused %llu orders; DLQ holds %d\n",
         (unsigned long long)m.not_permitted_calls, fe_dlq_count(dlq));

  printf("2. 250 more orders on account 1 in the same second: throttled\n");
  for (int i = 0; i < 250; i++)
    throttled += publish(bus, 1, "AAPL", 5, ++id) == FE_ETHROTTLED;
  fe_bus_drain(bus, FE_WAIT_FOREVER);

  printf("3. XNYS is back: reset its breaker, redrive the DLQ\n");
  xnys_down = 0;
  fe_breaker_reset(br[1]);
  uint64_t redriven = 0;
  fe_dlq_redrive_all(dlq, NULL, fe_bus_redrive, bus, &redriven);
  fe_bus_drain(bus, FE_WAIT_FOREVER);
  printf("  redriven %llu, DLQ now holds %d\n", (unsigned long long)redriven, fe_dlq_count(dlq));

  printf("4. kill switch\n");
  fe_trading_kill(trading, "operator: end of example");
  int rc = publish(bus, 2, "AAPL", 1, ++id);
  printf("  new order after the kill: %s\n", fe_err_name(rc));

  fe_bus_stop(bus);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  fe_gateway_stats_t g0, g1;
  fe_gateway_stats(gw, 0, &g0);
  fe_gateway_stats(gw, 1, &g1);
  printf("\npublished %llu = completed %llu + rejected %llu + dead-lettered "
         "%llu (redriven events publish again)\n",
         (unsigned long long)s.published, (unsigned long long)s.completed,
         (unsigned long long)s.rejected, (unsigned long long)s.dead_lettered);
  printf("refused at admission: throttled %llu, halted %llu\n",
         (unsigned long long)s.throttled, (unsigned long long)s.halted);
  printf("rejects: bad quantity %llu, notional limit %llu\n",
         (unsigned long long)fe_bus_stage_rejects(bus, 0, R_BAD_QTY),
         (unsigned long long)fe_bus_stage_rejects(bus, 1, R_LIMIT));
  printf("XNAS sent %llu; XNYS sent %llu, errors %llu, refused by breaker "
         "%llu; settled %llu\n",
         (unsigned long long)g0.sent, (unsigned long long)g1.sent,
         (unsigned long long)g1.errors, (unsigned long long)g1.not_permitted,
         (unsigned long long)settled);
  int ok = s.published == s.completed + s.rejected + s.dead_lettered &&
           s.throttled == throttled && rc == FE_EHALTED &&
           fe_dlq_count(dlq) == 0 && settled == s.completed;
  fe_bus_destroy(bus);
  fe_gateway_destroy(gw);
  fe_breaker_destroy(br[0]);
  fe_breaker_destroy(br[1]);
  fe_dlq_destroy(dlq);
  fe_trading_destroy(trading);
  fe_throttle_destroy(thr);
  printf("%s\n", ok ? "all accounted for" : "MISMATCH");
  return ok ? 0 : 1;
}
