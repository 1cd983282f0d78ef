/*
 * Admission at publish (fe_bus_publish_order): throttles and trading states
 * refuse before the ring is touched, refusals are counted apart from
 * published, cancels pass a halt, and a kill switch thrown from a foreign
 * thread under load stops every later new order without losing or double
 * counting any accepted one.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "finevent/finevent.h"

static uint64_t fake_now = 1000000000;
static uint64_t fake_clock(void *user) {
  (void)user;
  return fake_now;
}

static uint64_t handled;
static fe_verdict_t count(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx, (void)ev, (void)user;
  __atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED);
  return FE_CONTINUE;
}

static fe_bus_t *make(fe_trading_t *trading, fe_throttle_t *throttle,
                      int host) {
  static fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "count", st.handler = count;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.host_driven = host;
  cfg.wait = FE_WAIT_YIELD;
  cfg.stages = &st, cfg.n_stages = 1;
  cfg.trading = trading;
  cfg.throttle = throttle;
  fe_bus_t *bus = NULL;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  return bus;
}

static fe_order_t order(uint64_t account, int64_t qty, uint8_t side) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = account;
  o.quantity = qty;
  o.price = 10 * FE_PRICE_SCALE;
  o.side = side;
  o.type = FE_ORD_LIMIT;
  memcpy(o.symbol, "ACME", 5);
  return o;
}

static fe_bus_stats_t stats(fe_bus_t *bus) {
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  return s;
}

static void test_copies_the_order(void **state) {
  (void)state;
  fe_bus_t *bus = make(NULL, NULL, 1);
  fe_order_t o = order(42, 100, FE_SIDE_BUY);
  uint64_t seq = 99;
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_CANCEL, &o, 777, 0, &seq), 0);
  assert_int_equal(seq, 0);
  fe_event_t *ev = fe_bus_event_at(bus, 0);
  assert_int_equal(ev->type, FE_EV_CANCEL);
  assert_int_equal(ev->trace_id, 777);
  assert_memory_equal(&ev->order, &o, sizeof o);
  assert_int_equal(fe_bus_publish_order(NULL, FE_EV_NEW_ORDER, &o, 0, 0, NULL),
                   FE_EINVAL);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, NULL, 0, 0, NULL),
                   FE_EINVAL);
  while (fe_bus_poll(bus, 0) > 0) {
  }
  assert_int_equal(stats(bus).completed, 1);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

static void test_throttle_refuses_without_touching_the_ring(void **state) {
  (void)state;
  fe_throttle_config_t tc;
  fe_throttle_config_init(&tc);
  tc.key_rate = 100, tc.key_burst = 3;
  tc.now_ns = fake_clock;
  fe_throttle_t *th;
  assert_int_equal(fe_throttle_create(&tc, &th, NULL), 0);
  fe_bus_t *bus = make(NULL, th, 1);
  fe_order_t o = order(7, 1, FE_SIDE_BUY);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, 0, 0, NULL),
                   FE_ETHROTTLED);
  assert_int_equal(stats(bus).published, 3); /* the ring was not touched */
  assert_int_equal(stats(bus).throttled, 1);
  /* another account, and cancels of this one, still pass */
  fe_order_t other = order(8, 1, FE_SIDE_BUY);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &other, 0, 0, NULL), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_CANCEL, &o, 0, 0, NULL), 0);
  /* 10 ms later one more token for account 7 */
  fake_now += 10000000;
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &o, 0, 0, NULL), 0);
  while (fe_bus_poll(bus, 0) > 0) {
  }
  fe_bus_stats_t s = stats(bus);
  assert_int_equal(s.published, 6);
  assert_int_equal(s.completed, 6);
  assert_int_equal(s.throttled, 1);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_throttle_destroy(th);
}

static int64_t position_of_42(uint64_t account, const char *symbol, void *user) {
  (void)symbol, (void)user;
  return account == 42 ? 100 : 0;
}

static void test_trading_states(void **state) {
  (void)state;
  fe_trading_config_t tc;
  fe_trading_config_init(&tc);
  tc.position = position_of_42;
  fe_trading_t *tr;
  assert_int_equal(fe_trading_create(&tc, &tr, NULL), 0);
  fe_bus_t *bus = make(tr, NULL, 1);
  fe_order_t buy = order(42, 10, FE_SIDE_BUY), sell = order(42, 10, FE_SIDE_SELL);
  assert_int_equal(fe_trading_set_account(tr, 42, FE_TRADING_REDUCING, "review"), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &buy, 0, 0, NULL),
                   FE_EREDUCEONLY);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &sell, 0, 0, NULL), 0);
  assert_int_equal(fe_trading_kill(tr, "test"), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &sell, 0, 0, NULL),
                   FE_EHALTED);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_CANCEL, &sell, 0, 0, NULL), 0);
  assert_int_equal(fe_trading_set_global(tr, FE_TRADING_ACTIVE, "resume"), 0);
  assert_int_equal(fe_trading_set_account(tr, 42, FE_TRADING_ACTIVE, "ok"), 0);
  assert_int_equal(fe_bus_publish_order(bus, FE_EV_NEW_ORDER, &buy, 0, 0, NULL), 0);
  while (fe_bus_poll(bus, 0) > 0) {
  }
  fe_bus_stats_t s = stats(bus);
  assert_int_equal(s.published, 3);
  assert_int_equal(s.halted, 2);
  assert_int_equal(s.completed, 3);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_trading_destroy(tr);
}

/* The kill switch from a foreign thread while two producers publish. */
typedef struct race {
  fe_bus_t *bus;
  fe_trading_t *tr;
  int killed;               /* set (release) after fe_trading_kill returned */
  uint64_t ok, refused, violations;
} race_t;

static void *producer(void *arg) {
  race_t *r = arg;
  fe_order_t o = order(1, 1, FE_SIDE_BUY);
  uint64_t ok = 0, refused = 0, bad = 0;
  for (int i = 0; i < 200000; i++) {
    int after_kill = __atomic_load_n(&r->killed, __ATOMIC_ACQUIRE);
    int rc = fe_bus_publish_order(r->bus, FE_EV_NEW_ORDER, &o, 0,
                                  FE_WAIT_FOREVER, NULL);
    if (rc == 0) {
      ok++;
      bad += (uint64_t)after_kill;
    } else {
      refused += rc == FE_EHALTED;
      bad += rc != FE_EHALTED;
    }
    if (after_kill && i % 64 == 0 && refused > 1000)
      break;
  }
  __atomic_fetch_add(&r->ok, ok, __ATOMIC_RELAXED);
  __atomic_fetch_add(&r->refused, refused, __ATOMIC_RELAXED);
  __atomic_fetch_add(&r->violations, bad, __ATOMIC_RELAXED);
  return NULL;
}

static void *killer(void *arg) {
  race_t *r = arg;
  while (__atomic_load_n(&handled, __ATOMIC_RELAXED) < 20000)
    sched_yield();
  fe_trading_kill(r->tr, "foreign thread");
  __atomic_store_n(&r->killed, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void test_kill_switch_under_load(void **state) {
  (void)state;
  fe_trading_config_t tc;
  fe_trading_config_init(&tc);
  fe_trading_t *tr;
  assert_int_equal(fe_trading_create(&tc, &tr, NULL), 0);
  handled = 0;
  static fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "count", st.handler = count;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 1024;
  cfg.producer = FE_PRODUCER_MULTI;
  cfg.wait = FE_WAIT_YIELD;
  cfg.stages = &st, cfg.n_stages = 1;
  cfg.trading = tr;
  fe_bus_t *bus;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  static race_t r;
  memset(&r, 0, sizeof r);
  r.bus = bus, r.tr = tr;
  pthread_t p[2], k;
  for (int i = 0; i < 2; i++)
    pthread_create(&p[i], NULL, producer, &r);
  pthread_create(&k, NULL, killer, &r);
  pthread_join(k, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join(p[i], NULL);
  assert_int_equal(fe_bus_drain(bus, 60ull * 1000000000u), 0);
  fe_bus_stats_t s = stats(bus);
  assert_int_equal(r.violations, 0);
  assert_true(r.refused > 0);
  assert_int_equal(s.published, r.ok);      /* nothing lost or invented */
  assert_int_equal(s.completed, r.ok);
  assert_int_equal(__atomic_load_n(&handled, __ATOMIC_RELAXED), r.ok);
  assert_int_equal(s.halted, r.refused);
  fe_bus_destroy(bus);
  fe_trading_destroy(tr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_copies_the_order),
      cmocka_unit_test(test_throttle_refuses_without_touching_the_ring),
      cmocka_unit_test(test_trading_states),
      cmocka_unit_test(test_kill_switch_under_load),
  };
  return cmocka_run_group_tests_name("bus_admission", tests, NULL, NULL);
}
