/*
 * The saga coordinator's bus stage: execution reports and settlement
 * confirmations published on a real (host-driven) bus complete the order
 * template's await_fill and settle steps; duplicates are counted late,
 * unknown tokens unknown, other event types pass untouched; a host
 * extractor turns a rejected execution report into a failure, which
 * compensates (cancel, then release).
 */
#include "helpers.h"

#include "finevent/saga.h"

#define EXEC_REJECTED 1 /* order.reserved[0] of an execution report */
#define NOT_FOR_SAGA 2  /* ... and of one the extractor declines */

typedef struct rig {
  fe_saga_coord_t *c;
  fe_bus_t *bus;
  uint64_t mono;
  char trace[256];
  uint64_t fill_token, settle_token;
} rig_t;


static uint64_t clock_fn(void *u) { return ((rig_t *)u)->mono; }

static fe_saga_result_t hook(fe_saga_call_t *call, void *u, const char *name,
                             fe_saga_result_t r) {
  rig_t *g = u;
  size_t n = strlen(g->trace);
  snprintf(g->trace + n, sizeof g->trace - n, "%s ", name);
  (void)call;
  return r;
}
static fe_saga_result_t h_reserve(fe_saga_call_t *c, void *u) {
  return hook(c, u, "reserve", FE_SAGA_DONE);
}
static fe_saga_result_t h_release(fe_saga_call_t *c, void *u) {
  return hook(c, u, "release", FE_SAGA_DONE);
}
static fe_saga_result_t h_submit(fe_saga_call_t *c, void *u) {
  return hook(c, u, "submit", FE_SAGA_DONE);
}
static fe_saga_result_t h_cancel(fe_saga_call_t *c, void *u) {
  return hook(c, u, "cancel", FE_SAGA_DONE);
}
static fe_saga_result_t h_fill(fe_saga_call_t *c, void *u) {
  ((rig_t *)u)->fill_token = c->token;
  return hook(c, u, "await_fill", FE_SAGA_PENDING);
}
static fe_saga_result_t h_settle(fe_saga_call_t *c, void *u) {
  ((rig_t *)u)->settle_token = c->token;
  return hook(c, u, "settle", FE_SAGA_PENDING);
}

/* Host override: a rejected execution report fails the step. */
static int extract(const fe_event_t *ev, uint64_t *token,
                   fe_saga_result_t *result, uint32_t *reason, void *user) {
  (void)token;
  if (ev->order.reserved[0] == NOT_FOR_SAGA)
    return 0;
  if (ev->type == FE_EV_EXEC_REPORT &&
      ev->order.reserved[0] == EXEC_REJECTED) {
    *result = FE_SAGA_FAIL;
    *reason = 42;
  }
  ++*(int *)user;
  return 1;
}

static int extracted;

static void rig_open(rig_t *g, int with_extract) {
  memset(g, 0, sizeof *g);
  g->mono = 1000 * FE_T_SEC;
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 16;
  cfg.salt = 77;
  cfg.now_ns = clock_fn;
  cfg.wall_ns = clock_fn;
  cfg.clock_user = g;
  assert_fe(fe_saga_create(&cfg, &g->c, NULL), 0);
  fe_saga_order_hooks_t h = {h_reserve, h_release, h_submit, h_cancel,
                             h_fill, h_settle, g, 0, 0, 0};
  fe_saga_def_t d;
  assert_fe(fe_saga_order_template(&d, &h), 0);
  assert_fe(fe_saga_define(g->c, &d, NULL, NULL), 0);
  assert_fe(fe_saga_poll(g->c, 1), 0); /* open before the bus runs */

  fe_saga_bus_map_t m;
  fe_saga_bus_map_init(&m);
  if (with_extract) {
    m.extract = extract;
    m.user = &extracted;
  }
  fe_stage_def_t st;
  memset(&st, 0xa5, sizeof st); /* fe_saga_bus_stage initialises it */
  assert_fe(fe_saga_bus_stage(g->c, &m, &st, NULL), 0);
  assert_string_equal(st.name, "saga");
  assert_int_equal(st.n_deps, 0);
  fe_bus_config_t bc;
  fe_bus_config_init(&bc);
  bc.capacity = 64;
  bc.max_batch = 16;
  bc.host_driven = 1;
  bc.stages = &st;
  bc.n_stages = 1;
  assert_fe(fe_bus_create(&bc, &g->bus, NULL), 0);
  assert_fe(fe_bus_start(g->bus, NULL), 0);
}

static void rig_close(rig_t *g) {
  fe_bus_stop(g->bus);
  while (fe_bus_poll(g->bus, 0) != FE_ESTOPPED) {
  }
  fe_bus_destroy(g->bus);
  fe_saga_destroy(g->c);
}

static void publish(rig_t *g, uint32_t type, uint64_t trace, uint8_t flag) {
  fe_event_t *ev;
  assert_fe(fe_bus_try_claim(g->bus, &ev), 0);
  memset(&ev->order, 0, sizeof ev->order);
  ev->type = type;
  ev->trace_id = trace;
  ev->order.reserved[0] = flag;
  assert_fe(fe_bus_publish(g->bus, ev), 0);
  while (fe_bus_poll(g->bus, 0) > 0) {
  }
  while (fe_saga_poll(g->c, 16) > 0) {
  }
}

static uint32_t state_of(rig_t *g, uint64_t id, uint32_t *step) {
  fe_saga_info_t in;
  if (fe_saga_get(g->c, id, &in) != 0)
    return 0;
  if (step != NULL)
    *step = in.step;
  return in.state;
}

static uint64_t start_order(rig_t *g) {
  uint64_t id;
  assert_fe(fe_saga_start(g->c, 0, NULL, 0, &id), 0);
  while (fe_saga_poll(g->c, 16) > 0) {
  }
  uint32_t step;
  assert_int_equal(state_of(g, id, &step), FE_SAGA_WAITING);
  assert_int_equal(step, 2); /* await_fill */
  return id;
}

/* ------------------------------------------------------------- tests */

static void test_reports_complete_the_order(void **state) {
  (void)state;
  rig_t g;
  rig_open(&g, 0);
  uint64_t id = start_order(&g);
  /* another type passes untouched: nothing completed */
  publish(&g, FE_EV_NEW_ORDER, g.fill_token, 0);
  assert_int_equal(state_of(&g, id, NULL), FE_SAGA_WAITING);
  /* the execution report completes await_fill: on to settle */
  publish(&g, FE_EV_EXEC_REPORT, g.fill_token, 0);
  uint32_t step;
  assert_int_equal(state_of(&g, id, &step), FE_SAGA_WAITING);
  assert_int_equal(step, 3);
  /* a duplicate report is late; an unknown token is unknown */
  publish(&g, FE_EV_EXEC_REPORT, g.fill_token, 0);
  publish(&g, FE_EV_EXEC_REPORT, 0x1234567, 0);
  assert_int_equal(state_of(&g, id, NULL), FE_SAGA_WAITING);
  /* the settlement confirmation completes settle: the order is done */
  publish(&g, FE_EV_SETTLE_CONFIRM, g.settle_token, 0);
  assert_int_equal(state_of(&g, id, NULL), 0); /* ended, slot freed */
  assert_string_equal(g.trace, "reserve submit await_fill settle ");
  fe_saga_stats_t ss;
  assert_fe(fe_saga_stats(g.c, &ss), 0);
  assert_int_equal(ss.completed, 1);

  fe_saga_bus_stats_t bs;
  assert_fe(fe_saga_bus_stats(g.c, &bs), 0);
  assert_int_equal(bs.completed, 2);
  assert_int_equal(bs.late, 1);
  assert_int_equal(bs.unknown, 1);
  assert_int_equal(bs.ignored, 0);
  assert_int_equal(bs.refused, 0);
  /* nothing failed on the bus; the new order was stepped over */
  fe_stage_stats_t st;
  assert_fe(fe_bus_stage_stats(g.bus, 0, &st), 0);
  assert_int_equal(st.handled, 4);
  assert_int_equal(st.filtered, 1);
  assert_int_equal(st.rejected + st.failed + st.retried, 0);
  fe_bus_stats_t b;
  assert_fe(fe_bus_stats(g.bus, &b), 0);
  assert_int_equal(b.completed, 5);
  rig_close(&g);
}

/* A rejected execution report (the host's extractor says FAIL) fails
 * await_fill, the pivot, before the point of no return: the order is
 * compensated, cancel then release. */
static void test_rejected_report_compensates(void **state) {
  (void)state;
  rig_t g;
  extracted = 0;
  rig_open(&g, 1);
  uint64_t id = start_order(&g);
  publish(&g, FE_EV_EXEC_REPORT, g.fill_token, EXEC_REJECTED);
  assert_int_equal(state_of(&g, id, NULL), 0);
  assert_string_equal(g.trace, "reserve submit await_fill cancel release ");
  assert_int_equal(extracted, 1);
  fe_saga_stats_t ss;
  assert_fe(fe_saga_stats(g.c, &ss), 0);
  assert_int_equal(ss.compensated, 1);
  rig_close(&g);
}

/* An extractor that declines an event: counted ignored, nothing done. */
static void test_extract_declines(void **state) {
  (void)state;
  rig_t g;
  rig_open(&g, 1);
  uint64_t id = start_order(&g);
  publish(&g, FE_EV_EXEC_REPORT, g.fill_token, NOT_FOR_SAGA);
  assert_int_equal(state_of(&g, id, NULL), FE_SAGA_WAITING);
  fe_saga_bus_stats_t bs;
  assert_fe(fe_saga_bus_stats(g.c, &bs), 0);
  assert_int_equal(bs.ignored, 1);
  assert_int_equal(bs.completed, 0);
  rig_close(&g);
}

static void test_bad_args(void **state) {
  (void)state;
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 4;
  fe_saga_coord_t *c;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  fe_stage_def_t st;
  fe_diag_t d;
  assert_fe(fe_saga_bus_stage(NULL, NULL, &st, &d), FE_EINVAL);
  assert_fe(fe_saga_bus_stage(c, NULL, NULL, &d), FE_EINVAL);
  fe_saga_bus_map_t m;
  fe_saga_bus_map_init(&m);
  m.n_types = 0;
  assert_fe(fe_saga_bus_stage(c, &m, &st, &d), FE_ERANGE);
  m.n_types = FE_STAGE_MAX_TYPES + 1;
  assert_fe(fe_saga_bus_stage(c, &m, &st, &d), FE_ERANGE);
  m.n_types = 3;
  m.types[2] = 0;
  assert_fe(fe_saga_bus_stage(c, &m, &st, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "types[2]"));
  /* the defaults, with a NULL map */
  assert_fe(fe_saga_bus_stage(c, NULL, &st, &d), 0);
  assert_int_equal(st.n_types, 2);
  assert_int_equal(st.types[0], FE_EV_EXEC_REPORT);
  assert_int_equal(st.types[1], FE_EV_SETTLE_CONFIRM);
  assert_ptr_equal(st.user, c);
  fe_saga_bus_stats_t bs;
  assert_fe(fe_saga_bus_stats(NULL, &bs), FE_EINVAL);
  assert_fe(fe_saga_bus_stats(c, NULL), FE_EINVAL);
  /* a report before the coordinator is open: refused, counted */
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = FE_EV_EXEC_REPORT;
  ev.trace_id = 5;
  fe_stage_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  assert_int_equal(st.handler(&ctx, &ev, st.user), FE_CONTINUE);
  assert_fe(fe_saga_bus_stats(c, &bs), 0);
  assert_int_equal(bs.refused, 1);
  fe_saga_destroy(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_reports_complete_the_order),
      FE_T_TEST(test_rejected_report_compensates),
      FE_T_TEST(test_extract_declines),
      FE_T_TEST(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
