/*
 * test_bus_inline: the exported copies of the inline claim and publish.
 *
 * bus.h compiles fe_bus_try_claim, fe_bus_claim and fe_bus_publish into
 * the host; the library also exports each as a function for hosts that
 * bind by symbol (FFI, dlsym).  Every other suite exercises the inline
 * versions; this one loads the shared library of its own flavour with
 * dlopen and drives a bus through the symbols alone, in each mode the
 * inline paths branch on: single producer with and without park, and
 * multi producer.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <dlfcn.h>

#ifndef FE_SHARED_LIB
#error "FE_SHARED_LIB: the path of libfinevent.so (set by the Makefile)"
#endif

typedef struct api {
  void *dl;
  void (*config_init)(fe_bus_config_t *);
  void (*stage_def_init)(fe_stage_def_t *);
  int (*create)(const fe_bus_config_t *, fe_bus_t **, fe_diag_t *);
  int (*start)(fe_bus_t *, fe_diag_t *);
  int (*try_claim)(fe_bus_t *, fe_event_t **);
  int (*claim)(fe_bus_t *, fe_event_t **, uint64_t);
  int (*publish)(fe_bus_t *, fe_event_t *);
  int (*drain)(fe_bus_t *, uint64_t);
  int (*stop)(fe_bus_t *);
  void (*stats)(const fe_bus_t *, fe_bus_stats_t *);
  void (*destroy)(fe_bus_t *);
} api_t;

static void *sym(void *dl, const char *name) {
  void *p = dlsym(dl, name);
  if (p == NULL)
    fail_msg("%s is not exported by %s: %s", name, FE_SHARED_LIB, dlerror());
  return p;
}

static void api_open(api_t *a) {
  a->dl = dlopen(FE_SHARED_LIB, RTLD_NOW | RTLD_LOCAL);
  if (a->dl == NULL)
    fail_msg("dlopen %s: %s", FE_SHARED_LIB, dlerror());
  *(void **)&a->config_init = sym(a->dl, "fe_bus_config_init");
  *(void **)&a->stage_def_init = sym(a->dl, "fe_stage_def_init");
  *(void **)&a->create = sym(a->dl, "fe_bus_create");
  *(void **)&a->start = sym(a->dl, "fe_bus_start");
  *(void **)&a->try_claim = sym(a->dl, "fe_bus_try_claim");
  *(void **)&a->claim = sym(a->dl, "fe_bus_claim");
  *(void **)&a->publish = sym(a->dl, "fe_bus_publish");
  *(void **)&a->drain = sym(a->dl, "fe_bus_drain");
  *(void **)&a->stop = sym(a->dl, "fe_bus_stop");
  *(void **)&a->stats = sym(a->dl, "fe_bus_stats");
  *(void **)&a->destroy = sym(a->dl, "fe_bus_destroy");
}

typedef struct sum {
  int64_t total;
  uint64_t next_seq, out_of_order;
} sum_t;

static fe_verdict_t add_qty(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx;
  sum_t *s = user;
  s->out_of_order += ev->seq != s->next_seq;
  s->next_seq = ev->seq + 1;
  s->total += ev->order.quantity;
  return FE_CONTINUE;
}

/* N events through the exported symbols, half by try_claim (retried while
 * full) and half by claim; a small ring so that both wrap and wait. */
static void run_mode(const api_t *a, fe_producer_t producer, fe_wait_t wait) {
  enum { N = 20000 };
  sum_t s = {0};
  fe_stage_def_t st;
  a->stage_def_init(&st);
  st.name = "sum", st.handler = add_qty, st.user = &s;
  fe_bus_config_t cfg;
  a->config_init(&cfg);
  cfg.stages = &st, cfg.n_stages = 1;
  cfg.capacity = 64, cfg.producer = producer, cfg.wait = wait;
  fe_bus_t *bus;
  fe_diag_t d;
  if (a->create(&cfg, &bus, &d) != 0 || a->start(bus, &d) != 0)
    fail_msg("create/start: %s", d.msg);
  for (int64_t i = 1; i <= N; i++) {
    fe_event_t *ev = NULL;
    int r;
    if (i % 2)
      while ((r = a->try_claim(bus, &ev)) == FE_EFULL)
        sched_yield();
    else
      r = a->claim(bus, &ev, FE_WAIT_FOREVER);
    assert_int_equal(r, 0);
    assert_int_equal(ev->seq, (uint64_t)(i - 1));
    ev->order.quantity = i;
    assert_int_equal(a->publish(bus, ev), 0);
  }
  assert_int_equal(a->drain(bus, FE_WAIT_FOREVER), 0);
  fe_bus_stats_t bs;
  a->stats(bus, &bs);
  assert_int_equal(bs.published, N);
  assert_int_equal(bs.completed, N);
  assert_int_equal(s.total, (int64_t)N * (N + 1) / 2);
  assert_int_equal(s.out_of_order, 0);
  /* After stop, the exported claims refuse and the argument checks hold. */
  assert_int_equal(a->stop(bus), 0);
  fe_event_t *ev = NULL;
  assert_int_equal(a->try_claim(bus, &ev), FE_ESTOPPED);
  assert_int_equal(a->claim(bus, &ev, 0), FE_ESTOPPED);
  assert_null(ev);
  assert_int_equal(a->try_claim(NULL, &ev), FE_EINVAL);
  assert_int_equal(a->claim(bus, NULL, 0), FE_EINVAL);
  assert_int_equal(a->publish(bus, NULL), FE_EINVAL);
  a->destroy(bus);
}

static void test_exported_single_park(void **state) {
  api_t *a = *state;
  run_mode(a, FE_PRODUCER_SINGLE, FE_WAIT_PARK);
}

static void test_exported_single_yield(void **state) {
  api_t *a = *state;
  run_mode(a, FE_PRODUCER_SINGLE, FE_WAIT_YIELD);
}

static void test_exported_multi_park(void **state) {
  api_t *a = *state;
  run_mode(a, FE_PRODUCER_MULTI, FE_WAIT_PARK);
}

static int setup(void **state) {
  static api_t a;
  api_open(&a);
  *state = &a;
  return 0;
}

static int teardown(void **state) {
  api_t *a = *state;
  dlclose(a->dl);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_exported_single_park),
      FE_T_TEST(test_exported_single_yield),
      FE_T_TEST(test_exported_multi_park),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
