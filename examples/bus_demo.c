/*
 * bus_demo: orders through validation -> compliance -> execution ->
 * settlement on a libfinevent bus.
 *
 * Two producer threads publish a million orders for 1,000 accounts; a few
 * are malformed (validation rejects them) and a few are too large
 * (compliance rejects them).  Execution is sharded over two workers by
 * account, so each account's orders still execute in the order they were
 * sent.  Settlement keeps per-account positions.  At the end the program
 * checks that every order ended exactly once and prints the counters.
 */
#include <finevent/finevent.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define ORDERS 1000000
#define ACCOUNTS 1000
#define MAX_NOTIONAL (INT64_C(1000000) * FE_PRICE_SCALE) /* 1,000,000.00 */

enum { R_BAD_QTY = 1, R_BAD_PRICE = 2, R_NOTIONAL = 10 };

/* What execution records in each event's user area. */
typedef struct fill {
  int64_t filled_qty;
  int64_t notional; /* quantity * price, FE_PRICE_SCALE fixed point */
} fill_t;

static fe_verdict_t validation(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)user;
  if (ev->order.quantity <= 0)
    return fe_reject(ctx, R_BAD_QTY);
  if (ev->order.type == FE_ORD_LIMIT && ev->order.price <= 0)
    return fe_reject(ctx, R_BAD_PRICE);
  return FE_CONTINUE;
}

static fe_verdict_t compliance(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)user;
  /* quantity < 2^31 and price < 2^40 here, so the product fits. */
  if (ev->order.quantity * ev->order.price > MAX_NOTIONAL)
    return fe_reject(ctx, R_NOTIONAL);
  return FE_CONTINUE;
}

static fe_verdict_t execution(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx;
  (void)user;
  fill_t *f = fe_event_user(ev);
  f->filled_qty = ev->order.quantity;
  f->notional = ev->order.quantity * ev->order.price;
  return FE_CONTINUE;
}

typedef struct book {
  int64_t position[ACCOUNTS];
  int64_t cash[ACCOUNTS];
} book_t;

static fe_verdict_t settlement(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx;
  book_t *b = user;
  const fill_t *f = fe_event_user(ev);
  int64_t sign = ev->order.side == FE_SIDE_BUY ? 1 : -1;
  b->position[ev->order.account] += sign * f->filled_qty;
  b->cash[ev->order.account] -= sign * f->notional;
  return FE_CONTINUE;
}

typedef struct producer {
  fe_bus_t *bus;
  int id;
  uint64_t published;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  for (uint64_t i = (uint64_t)p->id; i < ORDERS; i += 2) {
    fe_event_t *ev;
    if (fe_bus_claim(p->bus, &ev, FE_WAIT_FOREVER) != 0)
      break;
    memset(&ev->order, 0, sizeof ev->order);
    ev->trace_id = i;
    ev->order.account = i % ACCOUNTS;
    ev->order.side = (i & 1) ? FE_SIDE_SELL : FE_SIDE_BUY;
    ev->order.type = FE_ORD_LIMIT;
    ev->order.tif = FE_TIF_DAY;
    ev->order.quantity = (i % 997 == 0) ? 0 : (int64_t)(1 + i % 500);
    ev->order.price = (int64_t)(10 + i % 90) * FE_PRICE_SCALE;
    if (i % 1009 == 0)
      ev->order.quantity = 1000000; /* notional far above the limit */
    snprintf(ev->order.client_order_id, FE_CLORDID_MAX, "C%" PRIu64, i);
    memcpy(ev->order.symbol, "ACME", 5);
    fe_bus_publish(p->bus, ev);
    p->published++;
  }
  return NULL;
}

int main(void) {
  static book_t book;
  fe_stage_def_t st[4];
  for (int i = 0; i < 4; i++)
    fe_stage_def_init(&st[i]);
  st[0].name = "validation", st[0].handler = validation;
  st[1].name = "compliance", st[1].handler = compliance;
  st[1].n_deps = 1, st[1].deps[0] = 0;
  st[2].name = "execution", st[2].handler = execution;
  st[2].n_deps = 1, st[2].deps[0] = 1;
  st[2].shards = 2, st[2].worker = 0; /* workers 0 and 1, keyed by account */
  st[3].name = "settlement", st[3].handler = settlement, st[3].user = &book;
  st[3].n_deps = 1, st[3].deps[0] = 2, st[3].worker = 1;

  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 4096;
  cfg.producer = FE_PRODUCER_MULTI;
  cfg.wait = FE_WAIT_PARK;
  cfg.stages = st;
  cfg.n_stages = 4;

  fe_bus_t *bus;
  fe_diag_t diag;
  if (fe_bus_create(&cfg, &bus, &diag) != 0 || fe_bus_start(bus, &diag) != 0) {
    fprintf(stderr, "bus_demo: %s (%s)\n", diag.msg, fe_err_name(diag.code));
    return 1;
  }
  producer_t prod[2] = {{bus, 0, 0}, {bus, 1, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, produce, &prod[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  int r = fe_bus_drain(bus, 10ull * 1000000000u);
  if (r != 0) {
    fprintf(stderr, "bus_demo: drain: %s\n", fe_strerror(r));
    return 1;
  }

  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  printf("published %" PRIu64 "  completed %" PRIu64 "  rejected %" PRIu64
         "  worker parks %" PRIu64 "\n", s.published, s.completed, s.rejected,
         s.parks);
  for (uint32_t i = 0; i < 4; i++) {
    fe_stage_stats_t ss;
    fe_bus_stage_stats(bus, i, &ss);
    printf("  %-10s handled %7" PRIu64 "  rejected %5" PRIu64 "  skipped %5"
           PRIu64 "  batches %6" PRIu64 "\n", fe_bus_stage_name(bus, i),
           ss.handled, ss.rejected, ss.skipped, ss.batches);
  }
  printf("  rejects: quantity %" PRIu64 ", notional %" PRIu64 "\n",
         fe_bus_stage_rejects(bus, 0, R_BAD_QTY),
         fe_bus_stage_rejects(bus, 1, R_NOTIONAL));
  int64_t net = 0;
  for (int a = 0; a < ACCOUNTS; a++)
    net += book.position[a];
  printf("  net position over all accounts: %" PRId64 "\n", net);

  int ok = s.published == prod[0].published + prod[1].published &&
           s.published == s.completed + s.rejected;
  printf("%s: every order ended exactly once (published = completed + "
         "rejected)\n", ok ? "OK" : "MISMATCH");
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  return ok ? 0 : 1;
}
