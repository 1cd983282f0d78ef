/*
 * test_bus_config: fe_bus_create() validation, defaults and geometry.
 *
 * Every invalid configuration must give its own code, store that code in
 * the diagnostic with a non-empty message naming the field (and, where it
 * is a number, the offending value), leave `out` untouched, and allocate
 * nothing (ASan's leak check covers the last point).
 */
#include "helpers.h"

static fe_verdict_t noop(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx;
  (void)ev;
  (void)user;
  return FE_CONTINUE;
}

/* Baseline that must be valid: capacity 64, "a" -> "b" on worker 0. */
static void base(fe_t_def_t *d) {
  fe_t_def_init(d, 64);
  fe_t_add_stage(d, "a", noop, NULL, 0);
  uint32_t b = fe_t_add_stage(d, "b", noop, NULL, 0);
  fe_t_add_dep(d, b, 0);
}

/* A pointer that create must not overwrite on failure. */
static int g_sentinel_target;
#define SENTINEL ((fe_bus_t *)(void *)&g_sentinel_target)

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = hay; *p; p++)
    if (strncasecmp(p, needle, n) == 0)
      return 1;
  return 0;
}

/* Asserts create fails with `code`; the diag names one of the
 * '|'-separated alternatives in `fields` and contains `value` (if given). */
static void expect_fail_at(const fe_bus_config_t *cfg, int code,
                           const char *fields, const char *value,
                           const char *what, int line) {
  fe_bus_t *out = SENTINEL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  diag.code = 12345;
  int rc = fe_bus_create(cfg, &out, &diag);
  if (rc != code)
    fail_msg("line %d (%s): got %s (%d), expected %s; diag: \"%s\"", line,
             what, fe_err_name(rc), rc, fe_err_name(code), diag.msg);
  if (out != SENTINEL)
    fail_msg("line %d (%s): out was written on failure", line, what);
  if (diag.code != code)
    fail_msg("line %d (%s): diag.code %d (%s), expected %s", line, what,
             diag.code, fe_err_name(diag.code), fe_err_name(code));
  if (memchr(diag.msg, '\0', sizeof diag.msg) == NULL)
    fail_msg("line %d (%s): diag.msg is not NUL-terminated", line, what);
  if (diag.msg[0] == '\0')
    fail_msg("line %d (%s): empty diag message", line, what);
  char alts[128];
  snprintf(alts, sizeof alts, "%s", fields);
  int found = 0;
  for (char *save = NULL, *f = strtok_r(alts, "|", &save); f;
       f = strtok_r(NULL, "|", &save))
    found |= contains_ci(diag.msg, f);
  if (!found)
    fail_msg("line %d (%s): diag \"%s\" does not name the field (%s)", line,
             what, diag.msg, fields);
  if (value && !strstr(diag.msg, value))
    fail_msg("line %d (%s): diag \"%s\" does not show the value %s", line,
             what, diag.msg, value);
  /* NULL diag is accepted and gives the same answer */
  out = SENTINEL;
  rc = fe_bus_create(cfg, &out, NULL);
  if (rc != code)
    fail_msg("line %d (%s): with diag NULL got %s, expected %s", line, what,
             fe_err_name(rc), fe_err_name(code));
  if (out != SENTINEL)
    fail_msg("line %d (%s): out was written on failure (diag NULL)", line,
             what);
}

#define expect_fail(cfg, code, fields, value)                                 \
  expect_fail_at((cfg), (code), (fields), (value), #code, __LINE__)

/* Creates and destroys; fails the test with the diag on error. */
static void expect_ok(const fe_t_def_t *d) {
  fe_bus_t *bus = fe_t_create(d);
  fe_bus_destroy(bus);
}

static void test_baseline_is_valid(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  fe_bus_t *bus = NULL;
  fe_diag_t diag;
  memset(&diag, 0x5a, sizeof diag);
  assert_fe_ok(fe_bus_create(&d.cfg, &bus, &diag));
  assert_non_null(bus);
  /* "Untouched on success" */
  fe_diag_t pristine;
  memset(&pristine, 0x5a, sizeof pristine);
  assert_memory_equal(&diag, &pristine, sizeof diag);
  fe_bus_destroy(bus);
}

static void test_null_arguments(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  expect_fail(NULL, FE_EINVAL, "cfg", NULL);
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  assert_fe(fe_bus_create(&d.cfg, NULL, &diag), FE_EINVAL);
  assert_int_equal(diag.code, FE_EINVAL);
  if (!contains_ci(diag.msg, "out"))
    fail_msg("diag \"%s\" does not name `out`", diag.msg);
  assert_fe(fe_bus_create(&d.cfg, NULL, NULL), FE_EINVAL);
  assert_fe(fe_bus_create(NULL, NULL, NULL), FE_EINVAL);
}

static void test_destroy_null(void **state) {
  (void)state;
  fe_bus_destroy(NULL);
}

static void test_capacity(void **state) {
  (void)state;
  fe_t_def_t d;
  const uint32_t bad[] = {0, 1, 3, 1000, 6, 65535, 65537};
  char v[32];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    base(&d);
    d.cfg.capacity = bad[i];
    d.cfg.max_batch = 1;
    snprintf(v, sizeof v, "%u", bad[i]);
    expect_fail(&d.cfg, FE_ECAPACITY, "capacity", v);
  }
  const uint32_t good[] = {2, 4, 8, 1024};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    base(&d);
    d.cfg.capacity = good[i];
    d.cfg.max_batch = 1;
    fe_bus_t *bus = fe_t_create(&d);
    assert_int_equal(fe_bus_capacity(bus), good[i]);
    fe_bus_destroy(bus);
  }
}

static void test_slot_size_too_small_or_large(void **state) {
  (void)state;
  fe_t_def_t d;
  const uint32_t bad[] = {0, 1, 64, (uint32_t)sizeof(fe_event_t) - 1,
                          (1u << 20) + 1, UINT32_MAX};
  char v[32];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    base(&d);
    d.cfg.slot_size = bad[i];
    snprintf(v, sizeof v, "%u", bad[i]);
    expect_fail(&d.cfg, FE_ESLOTSIZE, "slot_size|slot size", v);
  }
}

static void test_slot_size_rounding(void **state) {
  (void)state;
  /* user size = slot_size rounded up to a multiple of 64, minus the
   * header.  (sizeof(fe_event_t) is 136 with this event.h, although its
   * comments imply 128: see the report.) */
  const uint32_t ev = (uint32_t)sizeof(fe_event_t);
  const uint32_t ev_up = (ev + 63) / 64 * 64;
  const struct {
    uint32_t slot, user;
  } cases[] = {
      {ev, ev_up - ev},          /* exactly the header */
      {ev + 1, ev_up - ev},      /* rounded up */
      {ev_up, ev_up - ev},       /* already a multiple of 64 */
      {ev_up + 1, ev_up + 64 - ev},
      {200, 256 - ev},           /* the brief's example */
      {256, 256 - ev},           /* the default */
      {257, 320 - ev},
      {1u << 20, (1u << 20) - ev}, /* the largest allowed */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fe_t_def_t d;
    base(&d);
    d.cfg.capacity = 4;
    d.cfg.max_batch = 4;
    d.cfg.slot_size = cases[i].slot;
    fe_bus_t *bus = fe_t_create(&d);
    if (fe_bus_user_size(bus) != cases[i].user)
      fail_msg("slot_size %u: user size %u, expected %u", cases[i].slot,
               fe_bus_user_size(bus), cases[i].user);
    fe_bus_destroy(bus);
  }
}

static void test_producer_and_wait(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.cfg.producer = (fe_producer_t)0;
  expect_fail(&d.cfg, FE_EPRODUCER, "producer", "0");
  base(&d);
  d.cfg.producer = (fe_producer_t)3;
  expect_fail(&d.cfg, FE_EPRODUCER, "producer", "3");
  base(&d);
  d.cfg.wait = (fe_wait_t)0;
  expect_fail(&d.cfg, FE_EWAIT, "wait", "0");
  base(&d);
  d.cfg.wait = (fe_wait_t)4;
  expect_fail(&d.cfg, FE_EWAIT, "wait", "4");
  /* every valid value is accepted */
  const fe_producer_t prods[] = {FE_PRODUCER_SINGLE, FE_PRODUCER_MULTI};
  const fe_wait_t waits[] = {FE_WAIT_SPIN, FE_WAIT_YIELD, FE_WAIT_PARK};
  for (int p = 0; p < 2; p++)
    for (int w = 0; w < 3; w++) {
      base(&d);
      d.cfg.producer = prods[p];
      d.cfg.wait = waits[w];
      expect_ok(&d);
    }
}

static void test_host_driven_flag(void **state) {
  (void)state;
  /* Reading of the header: host_driven is a 0/1 flag and "bad flag" is in
   * the FE_EINVAL list, so 2 is invalid. */
  fe_t_def_t d;
  base(&d);
  d.cfg.host_driven = 2;
  expect_fail(&d.cfg, FE_EINVAL, "host_driven|host-driven|host driven", "2");
  base(&d);
  d.cfg.host_driven = 1;
  expect_ok(&d);
}

static void test_max_batch(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.cfg.max_batch = 0;
  expect_fail(&d.cfg, FE_EBATCH, "max_batch|batch", "0");
  base(&d);
  d.cfg.max_batch = 65; /* capacity is 64 */
  expect_fail(&d.cfg, FE_EBATCH, "max_batch|batch", "65");
  base(&d);
  d.cfg.max_batch = 64;
  expect_ok(&d);
  base(&d);
  d.cfg.max_batch = 1;
  expect_ok(&d);
  /* The default follows a capacity below 256: capacity 2 is valid with
   * the defaults, and a batch never exceeds it. */
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  assert_int_equal(cfg.max_batch, FE_BUS_BATCH_DEFAULT);
  cfg.capacity = 2;
  cfg.stages = d.cfg.stages;
  cfg.n_stages = 1;
  fe_bus_t *bus = NULL;
  fe_diag_t diag;
  assert_fe_ok(fe_bus_create(&cfg, &bus, &diag));
  fe_bus_destroy(bus);
}

static void test_no_stages(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.cfg.n_stages = 0;
  expect_fail(&d.cfg, FE_ENOSTAGES, "stage", NULL);
  /* The brief asks for FE_ENOSTAGES here; the header would also allow
   * FE_EINVAL ("NULL argument").  See the report. */
  base(&d);
  d.cfg.stages = NULL;
  expect_fail(&d.cfg, FE_ENOSTAGES, "stage", NULL);
  base(&d);
  for (uint32_t i = 0; i < FE_BUS_MAX_STAGES + 1; i++) {
    fe_stage_def_init(&d.st[i]);
    d.st[i].handler = noop;
  }
  static char names[FE_BUS_MAX_STAGES + 1][8];
  for (uint32_t i = 0; i < FE_BUS_MAX_STAGES + 1; i++) {
    snprintf(names[i], sizeof names[i], "s%u", i);
    d.st[i].name = names[i];
  }
  d.cfg.n_stages = FE_BUS_MAX_STAGES + 1;
  expect_fail(&d.cfg, FE_ENOSTAGES, "stage", "65");
  /* exactly the maximum is fine (all on worker 0) */
  d.cfg.n_stages = FE_BUS_MAX_STAGES;
  expect_ok(&d);
}

static void test_no_handler(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.st[1].handler = NULL;
  expect_fail(&d.cfg, FE_ENOHANDLER, "handler", NULL);
  fe_diag_t diag;
  fe_bus_t *out = NULL;
  memset(&diag, 0, sizeof diag);
  assert_fe(fe_bus_create(&d.cfg, &out, &diag), FE_ENOHANDLER);
  assert_null(out);
  /* the message should say which stage: its name or its index */
  if (!strstr(diag.msg, "\"b\"") && !strstr(diag.msg, "'b'") &&
      !strstr(diag.msg, " b") && !strstr(diag.msg, "[1]") &&
      !strstr(diag.msg, " 1"))
    fail_msg("diag \"%s\" does not say which stage has no handler", diag.msg);
}

static void noop_batch(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *user) {
  (void)ctx;
  (void)evs;
  (void)n;
  (void)user;
}

static void test_handler_and_batch_handler(void **state) {
  (void)state;
  /* "one of handler and batch_handler is required": both is an error */
  fe_t_def_t d;
  base(&d);
  d.st[0].batch_handler = noop_batch;
  expect_fail(&d.cfg, FE_ENOHANDLER, "handler", NULL);
  /* a batch handler alone is enough */
  base(&d);
  d.st[0].handler = NULL;
  d.st[0].batch_handler = noop_batch;
  expect_ok(&d);
}

/* fe_stage_def_t.fuse: 0 or 1, and only with a handler. */
static void test_fuse(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.st[0].fuse = 2;
  expect_fail(&d.cfg, FE_EINVAL, "fuse", NULL);
  base(&d);
  d.st[0].fuse = UINT32_MAX;
  expect_fail(&d.cfg, FE_EINVAL, "fuse", NULL);
  base(&d);
  d.st[0].handler = NULL;
  d.st[0].batch_handler = noop_batch;
  d.st[0].fuse = 1;
  expect_fail(&d.cfg, FE_EINVAL, "batch_handler", NULL);
  base(&d);
  d.st[0].fuse = 1, d.st[1].fuse = 1;
  expect_ok(&d);
}

static void test_names(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.st[1].name = NULL;
  expect_fail(&d.cfg, FE_ENAME, "name", NULL);
  /* an empty name is a missing name (see the report) */
  base(&d);
  d.st[1].name = "";
  expect_fail(&d.cfg, FE_ENAME, "name", NULL);
  base(&d);
  d.st[1].name = "a";
  expect_fail(&d.cfg, FE_ENAME, "name", "a");
  /* FE_BUS_MAX_NAME includes the NUL: 32 characters are too many, 31 fit */
  char longname[FE_BUS_MAX_NAME + 1];
  memset(longname, 'x', FE_BUS_MAX_NAME);
  longname[FE_BUS_MAX_NAME] = '\0';
  base(&d);
  d.st[1].name = longname;
  expect_fail(&d.cfg, FE_ENAME, "name", NULL);
  longname[FE_BUS_MAX_NAME - 1] = '\0';
  base(&d);
  d.st[1].name = longname;
  fe_bus_t *bus = fe_t_create(&d);
  assert_string_equal(fe_bus_stage_name(bus, 1), longname);
  fe_bus_destroy(bus);
}

static void test_name_is_copied(void **state) {
  (void)state;
  fe_t_def_t d;
  char buf[16] = "mutable";
  base(&d);
  d.st[0].name = buf;
  fe_bus_t *bus = fe_t_create(&d);
  memcpy(buf, "changed", 8);
  assert_string_equal(fe_bus_stage_name(bus, 0), "mutable");
  assert_int_equal(fe_bus_stage_id(bus, "mutable"), 0);
  assert_int_equal(fe_bus_stage_id(bus, "b"), 1);
  assert_fe(fe_bus_stage_id(bus, "changed"), FE_ENAME);
  assert_fe(fe_bus_stage_id(bus, ""), FE_ENAME);
  assert_string_equal(fe_bus_stage_name(bus, 1), "b");
  assert_null(fe_bus_stage_name(bus, 2));
  assert_null(fe_bus_stage_name(bus, UINT32_MAX));
  fe_bus_destroy(bus);
}

static void test_dependencies(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.st[1].deps[0] = 2; /* only stages 0 and 1 exist */
  expect_fail(&d.cfg, FE_EDEPEND, "dep", "2");
  base(&d);
  d.st[1].deps[0] = UINT32_MAX;
  expect_fail(&d.cfg, FE_EDEPEND, "dep", NULL);
  base(&d); /* repeated */
  fe_t_add_dep(&d, 1, 0);
  expect_fail(&d.cfg, FE_EDEPEND, "dep", NULL);
  /* more than FE_BUS_MAX_DEPS: the stage table must not be read past
   * deps[FE_BUS_MAX_DEPS - 1] */
  fe_t_def_init(&d, 64);
  for (uint32_t i = 0; i < FE_BUS_MAX_DEPS + 2; i++) {
    static char names[FE_BUS_MAX_DEPS + 2][8];
    snprintf(names[i], sizeof names[i], "s%u", i);
    fe_t_add_stage(&d, names[i], noop, NULL, 0);
  }
  uint32_t sink = FE_BUS_MAX_DEPS + 1;
  for (uint32_t i = 0; i < FE_BUS_MAX_DEPS; i++)
    fe_t_add_dep(&d, sink, i);
  expect_ok(&d); /* exactly the maximum */
  d.st[sink].n_deps = FE_BUS_MAX_DEPS + 1;
  expect_fail(&d.cfg, FE_EDEPEND, "dep", NULL);
}

static void test_forward_dependency_is_not_a_cycle(void **state) {
  (void)state;
  /* Nothing in the header asks the table to be topologically sorted: a
   * stage may depend on a stage listed after it. */
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  uint32_t a = fe_t_add_stage(&d, "late-consumer", noop, NULL, 0);
  uint32_t b = fe_t_add_stage(&d, "early-producer-side", noop, NULL, 0);
  fe_t_add_dep(&d, a, b);
  expect_ok(&d);
}

static void test_cycles(void **state) {
  (void)state;
  fe_t_def_t d;
  /* A -> B -> A */
  fe_t_def_init(&d, 64);
  fe_t_add_stage(&d, "A", noop, NULL, 0);
  fe_t_add_stage(&d, "B", noop, NULL, 0);
  fe_t_add_dep(&d, 0, 1);
  fe_t_add_dep(&d, 1, 0);
  expect_fail(&d.cfg, FE_ECYCLE, "cycle|dep", NULL);
  /* self-dependency */
  base(&d);
  fe_t_add_dep(&d, 0, 0);
  expect_fail(&d.cfg, FE_ECYCLE, "cycle|dep", NULL);
  /* a longer cycle behind a valid entry stage: in -> x -> y -> z -> x */
  fe_t_def_init(&d, 64);
  fe_t_add_stage(&d, "in", noop, NULL, 0);
  fe_t_add_stage(&d, "x", noop, NULL, 0);
  fe_t_add_stage(&d, "y", noop, NULL, 0);
  fe_t_add_stage(&d, "z", noop, NULL, 0);
  fe_t_add_dep(&d, 1, 0);
  fe_t_add_dep(&d, 1, 3);
  fe_t_add_dep(&d, 2, 1);
  fe_t_add_dep(&d, 3, 2);
  expect_fail(&d.cfg, FE_ECYCLE, "cycle|dep", NULL);
}

static void test_shards(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.st[1].shards = 0;
  expect_fail(&d.cfg, FE_ESHARDS, "shards", "0");
  base(&d);
  d.st[1].shards = FE_BUS_MAX_SHARDS + 1;
  expect_fail(&d.cfg, FE_ESHARDS, "shards", "65");
  /* the maximum: 64 shards on workers 0..63 */
  base(&d);
  d.st[1].shards = FE_BUS_MAX_SHARDS;
  fe_bus_t *bus = fe_t_create(&d);
  assert_int_equal(fe_bus_workers(bus), FE_BUS_MAX_SHARDS);
  fe_bus_destroy(bus);
}

static void test_workers(void **state) {
  (void)state;
  fe_t_def_t d;
  /* stages on workers 0 and 2, none on 1 */
  base(&d);
  d.st[1].worker = 2;
  expect_fail(&d.cfg, FE_EWORKER, "worker", NULL);
  /* nothing on worker 0 */
  base(&d);
  d.st[0].worker = 1;
  d.st[1].worker = 1;
  expect_fail(&d.cfg, FE_EWORKER, "worker", NULL);
  /* worker + shards beyond FE_BUS_MAX_WORKERS, without a gap: stage 0
   * covers workers 0..63, stage 1 asks for 63..64 */
  base(&d);
  d.st[0].shards = FE_BUS_MAX_WORKERS;
  d.st[1].worker = FE_BUS_MAX_WORKERS - 1;
  d.st[1].shards = 2;
  expect_fail(&d.cfg, FE_EWORKER, "worker", NULL);
  base(&d);
  d.st[0].shards = FE_BUS_MAX_WORKERS;
  d.st[1].worker = FE_BUS_MAX_WORKERS;
  expect_fail(&d.cfg, FE_EWORKER, "worker", "64");
  base(&d);
  d.st[1].worker = UINT32_MAX;
  expect_fail(&d.cfg, FE_EWORKER, "worker", NULL);
  /* a valid spread: 0, 1..2 (sharded), 3 */
  fe_t_def_init(&d, 64);
  fe_t_add_stage(&d, "v", noop, NULL, 0);
  uint32_t c = fe_t_add_stage(&d, "c", noop, NULL, 1);
  d.st[c].shards = 2;
  fe_t_add_dep(&d, c, 0);
  uint32_t e = fe_t_add_stage(&d, "e", noop, NULL, 3);
  fe_t_add_dep(&d, e, c);
  fe_bus_t *bus = fe_t_create(&d);
  assert_int_equal(fe_bus_workers(bus), 4);
  fe_bus_destroy(bus);
}

static void test_cpu(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  d.cfg.cpu[0] = -2;
  expect_fail(&d.cfg, FE_ERANGE, "cpu", "-2");
  base(&d);
  d.cfg.cpu[0] = INT_MIN;
  expect_fail(&d.cfg, FE_ERANGE, "cpu", NULL);
  base(&d);
  d.cfg.cpu[0] = -1;
  expect_ok(&d);
  int c = fe_t_first_allowed_cpu();
  if (c >= 0) {
    base(&d);
    d.cfg.cpu[0] = c;
    expect_ok(&d);
  }
}

static void test_config_defaults(void **state) {
  (void)state;
  fe_bus_config_t cfg;
  memset(&cfg, 0x77, sizeof cfg);
  fe_bus_config_init(&cfg);
  assert_int_equal(cfg.capacity, 65536);
  assert_int_equal(cfg.slot_size, 256);
  assert_int_equal(cfg.producer, FE_PRODUCER_SINGLE);
  assert_int_equal(cfg.wait, FE_WAIT_PARK);
  assert_int_equal(cfg.max_batch, FE_BUS_BATCH_DEFAULT);
  assert_int_equal(cfg.spin_tries, 1000);
  assert_int_equal(cfg.yield_tries, 50);
  assert_int_equal(cfg.catchup_pauses, 64);
  assert_int_equal(cfg.journal_user_bytes, UINT32_MAX);
  assert_int_equal(cfg.host_driven, 0);
  assert_null(cfg.stages);
  assert_int_equal(cfg.n_stages, 0);
  for (int i = 0; i < FE_BUS_MAX_WORKERS; i++)
    if (cfg.cpu[i] != -1)
      fail_msg("cfg.cpu[%d] = %d, expected -1", i, cfg.cpu[i]);

  fe_stage_def_t def;
  memset(&def, 0x77, sizeof def);
  fe_stage_def_init(&def);
  assert_null(def.name);
  assert_null(def.handler);
  assert_null(def.batch_handler);
  assert_null(def.user);
  assert_int_equal(def.n_deps, 0);
  assert_int_equal(def.shards, 1);
  assert_int_equal(def.worker, 0);
  assert_null(def.key);
  assert_null(def.key_user);
}

static void test_defaults_create_a_working_geometry(void **state) {
  (void)state;
  /* Defaults plus one stage are a valid bus with the documented geometry. */
  fe_bus_config_t cfg;
  fe_stage_def_t st;
  fe_bus_config_init(&cfg);
  fe_stage_def_init(&st);
  st.name = "only";
  st.handler = noop;
  cfg.stages = &st;
  cfg.n_stages = 1;
  fe_bus_t *bus = NULL;
  assert_fe_ok(fe_bus_create(&cfg, &bus, NULL));
  assert_int_equal(fe_bus_capacity(bus), 65536);
  /* bus.h says "default 256: 128 bytes of user area", which assumes a
   * 128-byte fe_event_t; the rule that holds is 256 - sizeof(fe_event_t). */
  assert_int_equal(fe_bus_user_size(bus), 256 - sizeof(fe_event_t));
  assert_int_equal(fe_bus_workers(bus), 1);
  assert_int_equal(fe_bus_stage_id(bus, "only"), 0);
  /* "read during create only": the table may go away */
  memset(&st, 0, sizeof st);
  assert_string_equal(fe_bus_stage_name(bus, 0), "only");
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, 0);
  assert_int_equal(s.completed, 0);
  assert_int_equal(s.rejected, 0);
  assert_int_equal(s.full, 0);
  assert_int_equal(s.lost_wakeups, 0);
  fe_stage_stats_t ss = fe_t_stage_stats(bus, 0);
  assert_int_equal(ss.handled, 0);
  assert_int_equal(ss.rejected, 0);
  assert_int_equal(ss.skipped, 0);
  assert_int_equal(ss.batches, 0);
  fe_bus_destroy(bus);
}

static void test_stats_arguments(void **state) {
  (void)state;
  fe_t_def_t d;
  base(&d);
  fe_bus_t *bus = fe_t_create(&d);
  fe_bus_stats_t s;
  fe_stage_stats_t ss;
  assert_fe(fe_bus_stats(NULL, &s), FE_EINVAL);
  assert_fe(fe_bus_stats(bus, NULL), FE_EINVAL);
  assert_fe(fe_bus_stage_stats(NULL, 0, &ss), FE_EINVAL);
  assert_fe(fe_bus_stage_stats(bus, 0, NULL), FE_EINVAL);
  assert_fe(fe_bus_stage_stats(bus, 2, &ss), FE_ERANGE);
  assert_fe(fe_bus_stage_stats(bus, UINT32_MAX, &ss), FE_ERANGE);
  assert_fe_ok(fe_bus_stage_stats(bus, 1, &ss));
  assert_int_equal(fe_bus_stage_rejects(bus, 5, 1), 0);
  assert_int_equal(fe_bus_stage_rejects(bus, 0, FE_REASON_MAX + 1), 0);
  fe_bus_destroy(bus);
}

static void test_config_not_modified(void **state) {
  (void)state;
  /* cfg is an input: neither a failing nor a succeeding create writes it */
  fe_t_def_t d, copy;
  base(&d);
  d.cfg.capacity = 3;
  memcpy(&copy, &d, sizeof d);
  fe_bus_t *bus = NULL;
  assert_fe(fe_bus_create(&d.cfg, &bus, NULL), FE_ECAPACITY);
  assert_memory_equal(&copy.st, &d.st, sizeof d.st);
  d.cfg.capacity = 64;
  copy.cfg.capacity = 64;
  assert_fe_ok(fe_bus_create(&d.cfg, &bus, NULL));
  assert_memory_equal(&copy.cfg, &d.cfg, sizeof d.cfg);
  assert_memory_equal(&copy.st, &d.st, sizeof d.st);
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest test_bus_config[] = {
      FE_T_TEST(test_baseline_is_valid),
      FE_T_TEST(test_null_arguments),
      FE_T_TEST(test_destroy_null),
      FE_T_TEST(test_capacity),
      FE_T_TEST(test_slot_size_too_small_or_large),
      FE_T_TEST(test_slot_size_rounding),
      FE_T_TEST(test_producer_and_wait),
      FE_T_TEST(test_host_driven_flag),
      FE_T_TEST(test_max_batch),
      FE_T_TEST(test_no_stages),
      FE_T_TEST(test_no_handler),
      FE_T_TEST(test_handler_and_batch_handler),
      FE_T_TEST(test_fuse),
      FE_T_TEST(test_names),
      FE_T_TEST(test_name_is_copied),
      FE_T_TEST(test_dependencies),
      FE_T_TEST(test_forward_dependency_is_not_a_cycle),
      FE_T_TEST(test_cycles),
      FE_T_TEST(test_shards),
      FE_T_TEST(test_workers),
      FE_T_TEST(test_cpu),
      FE_T_TEST(test_config_defaults),
      FE_T_TEST(test_defaults_create_a_working_geometry),
      FE_T_TEST(test_stats_arguments),
      FE_T_TEST(test_config_not_modified),
  };
  return cmocka_run_group_tests(test_bus_config, NULL, NULL);
}
