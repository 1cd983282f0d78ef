/*
 * Metrics: per-worker recording merged on read, the Prometheus text format
 * (checked by promtool and, for what promtool misses, here), the JSON
 * snapshot, bus and audit figures, and EWMA alerts under an injected
 * clock.
 */
#include "helpers.h"
#include "json_check.h"

#include <sys/wait.h>

static char buf[1 << 20];

static fe_metrics_t *make(uint32_t workers, uint32_t stages, const char *const *names) {
  fe_metrics_config_t c;
  fe_metrics_config_init(&c);
  c.workers = workers;
  c.stages = stages;
  c.stage_names = names;
  fe_metrics_t *m = NULL;
  fe_diag_t d = {0};
  int rc = fe_metrics_create(&c, &m, &d);
  if (rc != 0)
    fail_msg("fe_metrics_create: %s %s", fe_err_name(rc), d.msg);
  return m;
}

static const char *prom(fe_metrics_t *m) {
  size_t len;
  assert_fe_ok(fe_metrics_write_prometheus(m, buf, sizeof buf, &len));
  assert_int_equal(strlen(buf), len);
  return buf;
}

/* The value of the series written exactly as `series` (name{labels}). */
static double value_of(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
    if (strncmp(l, series, n) == 0 && l[n] == ' ')
      return strtod(l + n + 1, NULL);
    if (strchr(l, '\n') == NULL)
      break;
  }
  fail_msg("no series %s", series);
  return -1;
}

/* What promtool does not check: every series once, every histogram's
 * label set ending with le="+Inf" whose value equals its _count, buckets
 * non-decreasing, HELP and TYPE before each family's samples. */
static void check_exposition(const char *text) {
  enum { MAX = 4096 };
  static char *series[MAX];
  int n = 0;
  char fam[128] = "", type[32] = "";
  double prev_bucket = -1;
  char prev_key[512] = "";
  for (const char *l = text; *l;) {
    const char *e = strchr(l, '\n');
    assert_non_null(e);
    char line[1024];
    size_t len = (size_t)(e - l);
    assert_true(len < sizeof line);
    memcpy(line, l, len);
    line[len] = '\0';
    l = e + 1;
    if (strncmp(line, "# HELP ", 7) == 0) {
      sscanf(line + 7, "%127s", fam);
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      char f2[128];
      sscanf(line + 7, "%127s %31s", f2, type);
      assert_string_equal(f2, fam);
      continue;
    }
    char *sp = strrchr(line, ' ');
    assert_non_null(sp);
    *sp = '\0';
    assert_true(strncmp(line, fam, strlen(fam)) == 0); /* in its family */
    if (strcmp(type, "counter") == 0)
      assert_non_null(strstr(fam, "_total"));
    for (int i = 0; i < n; i++)
      if (strcmp(series[i], line) == 0)
        fail_msg("series twice: %s", line);
    assert_true(n < MAX);
    series[n++] = strdup(line);
    double v = strtod(sp + 1, NULL);
    char *le = strstr(line, ",le=\"");
    if (strcmp(type, "histogram") == 0 && le != NULL) {
      char key[512];
      snprintf(key, sizeof key, "%.*s", (int)(le - line), line);
      if (strcmp(key, prev_key) == 0)
        assert_true(v >= prev_bucket);
      snprintf(prev_key, sizeof prev_key, "%s", key);
      prev_bucket = v;
      if (strncmp(le, ",le=\"+Inf\"}", 11) == 0) {
        /* _count of the same labels equals it */
        char cnt[600];
        const char *b = strstr(key, "_bucket{");
        assert_non_null(b);
        snprintf(cnt, sizeof cnt, "%.*s_count{%s}", (int)(b - key), key, b + 8);
        assert_true(value_of(text, cnt) == v);
      }
    }
  }
  /* Every bucketed label set has its +Inf. */
  for (int i = 0; i < n; i++) {
    char *le = strstr(series[i], ",le=\"");
    if (le == NULL)
      continue;
    char inf[600];
    snprintf(inf, sizeof inf, "%.*s,le=\"+Inf\"}", (int)(le - series[i]), series[i]);
    int found = 0;
    for (int j = 0; j < n && !found; j++)
      found = strcmp(series[j], inf) == 0;
    if (!found)
      fail_msg("no +Inf bucket for %s", series[i]);
  }
  for (int i = 0; i < n; i++)
    free(series[i]);
}

/* promtool check metrics on text: its exit status, or -1 when promtool is
 * not installed. */
static int promtool(const char *text) {
  if (system("command -v promtool >/dev/null 2>&1") != 0)
    return -1;
  char path[] = "/tmp/fe-metrics-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
  FILE *p = popen(cmd, "r");
  char msg[512] = "";
  size_t got = fread(msg, 1, sizeof msg - 1, p);
  msg[got] = '\0';
  int st = pclose(p);
  unlink(path);
  if (WEXITSTATUS(st) != 0)
    print_message("promtool: %s\n", msg);
  return WEXITSTATUS(st);
}

static void test_config(void **state) {
  (void)state;
  fe_metrics_config_t c;
  fe_metrics_config_init(&c);
  fe_metrics_config_init(NULL);
  fe_metrics_t *m;
  fe_diag_t d = {0};
  assert_fe(fe_metrics_create(NULL, &m, &d), FE_EINVAL);
  assert_fe(fe_metrics_create(&c, NULL, &d), FE_EINVAL);
  c.workers = 0;
  assert_fe(fe_metrics_create(&c, &m, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "workers"));
  c.workers = 1;
  c.stages = FE_BUS_MAX_STAGES + 1;
  assert_fe(fe_metrics_create(&c, &m, &d), FE_ERANGE);
  c.stages = 1;
  c.prefix = "9bad";
  assert_fe(fe_metrics_create(&c, &m, &d), FE_EINVAL);
  c.prefix = "my-app";
  assert_fe(fe_metrics_create(&c, &m, &d), FE_EINVAL);
  c.prefix = NULL;
  c.alert_alpha = 0;
  assert_fe(fe_metrics_create(&c, &m, &d), FE_ERANGE);
  c.alert_alpha = 0.5;
  c.alert_factor = 1;
  assert_fe(fe_metrics_create(&c, &m, &d), FE_ERANGE);
  c.alert_factor = 2;
  c.latency.digits = 9;
  assert_true(fe_metrics_create(&c, &m, &d) < 0);
  c.latency.digits = 2;
  const char *longname[] = {"an-extremely-long-stage-name-that-goes-on-and-on-and-on-and-on-and"};
  c.stage_names = longname;
  assert_fe(fe_metrics_create(&c, &m, &d), FE_EINVAL);
  c.stage_names = NULL;
  assert_fe_ok(fe_metrics_create(&c, &m, &d));
  assert_fe(fe_metrics_latency(NULL, 0, 0, 1), FE_EINVAL);
  assert_fe(fe_metrics_latency(m, 1, 0, 1), FE_EINVAL);
  assert_fe(fe_metrics_latency(m, 0, 1, 1), FE_EINVAL);
  assert_fe(fe_metrics_batch(m, 0, 5, 1), FE_EINVAL);
  assert_fe(fe_metrics_count(m, 0, 0, FE_METRIC_OUTCOMES, 0), FE_EINVAL);
  assert_fe(fe_metrics_count(m, 0, 0, (fe_metric_outcome_t)-1, 0), FE_EINVAL);
  assert_fe(fe_metrics_gauge(m, FE_METRIC_GAUGES, 1), FE_EINVAL);
  assert_fe(fe_metrics_gauge(NULL, FE_METRIC_GAUGE_JOURNAL_LAG, 1), FE_EINVAL);
  size_t len;
  assert_fe(fe_metrics_write_prometheus(NULL, buf, 10, &len), FE_EINVAL);
  assert_fe(fe_metrics_write_prometheus(m, buf, 10, NULL), FE_EINVAL);
  assert_fe(fe_metrics_write_prometheus(m, NULL, 10, &len), FE_EINVAL);
  assert_fe(fe_metrics_write_json(m, NULL, 10, &len), FE_EINVAL);
  assert_fe(fe_metrics_tick(NULL, 0), FE_EINVAL);
  /* Too small a buffer: FE_ERANGE, the length needed, a cut prefix. */
  assert_fe(fe_metrics_write_prometheus(m, NULL, 0, &len), FE_ERANGE);
  size_t need = len;
  char small[64];
  assert_fe(fe_metrics_write_prometheus(m, small, sizeof small, &len), FE_ERANGE);
  assert_int_equal(len, need);
  assert_int_equal(strlen(small), sizeof small - 1);
  char *exact = malloc(need + 1);
  assert_fe_ok(fe_metrics_write_prometheus(m, exact, need + 1, &len));
  assert_int_equal(strlen(exact), need);
  free(exact);
  fe_metrics_destroy(m);
  fe_metrics_destroy(NULL);
}

typedef struct rec_arg {
  fe_metrics_t *m;
  uint32_t w;
} rec_arg_t;

static void *recorder(void *arg) {
  rec_arg_t *a = arg;
  for (uint64_t i = 1; i <= 10000; i++) {
    fe_metrics_latency(a->m, a->w, 0, 1000 * (i % 10 + 1)); /* 1..10 us */
    fe_metrics_count(a->m, a->w, 0, i % 100 == 0 ? FE_METRIC_REJECTED : FE_METRIC_ACCEPTED,
                     7);
    if (i % 100 == 0)
      fe_metrics_batch(a->m, a->w, 1, 100);
  }
  return NULL;
}

/* Two workers record at once while a reader exports; the sums are exact
 * once they stop. */
static void test_workers_merge(void **state) {
  (void)state;
  const char *names[] = {"valid\"ate\\", "risk\nx"};
  fe_metrics_t *m = make(2, 2, names);
  pthread_t th[2];
  rec_arg_t a[2] = {{m, 0}, {m, 1}};
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, recorder, &a[i]);
  size_t len;
  for (int k = 0; k < 20; k++)
    assert_fe_ok(fe_metrics_write_prometheus(m, buf, sizeof buf, &len));
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  fe_metrics_gauge(m, FE_METRIC_GAUGE_JOURNAL_LAG, 12);
  const char *t = prom(m);
  check_exposition(t);
  const char *st0 = "stage=\"valid\\\"ate\\\\\"";
  char s[256];
  snprintf(s, sizeof s, "finevent_stage_latency_seconds_count{%s}", st0);
  assert_true(value_of(t, s) == 20000);
  snprintf(s, sizeof s, "finevent_stage_latency_seconds_bucket{%s,le=\"+Inf\"}", st0);
  assert_true(value_of(t, s) == 20000);
  snprintf(s, sizeof s, "finevent_stage_latency_seconds_bucket{%s,le=\"1e-06\"}", st0);
  assert_true(value_of(t, s) == 2000); /* the 1 us samples */
  snprintf(s, sizeof s, "finevent_stage_latency_seconds_bucket{%s,le=\"1e-05\"}", st0);
  assert_true(value_of(t, s) == 20000);
  snprintf(s, sizeof s, "finevent_stage_latency_seconds_sum{%s}", st0);
  double sum = value_of(t, s);
  assert_true(sum > 0.10 && sum < 0.12); /* 20000 * 5.5 us, within buckets */
  snprintf(s, sizeof s, "finevent_stage_outcomes_total{%s,outcome=\"rejected\"}", st0);
  assert_true(value_of(t, s) == 200);
  snprintf(s, sizeof s, "finevent_stage_reasons_total{%s,reason=\"7\"}", st0);
  assert_true(value_of(t, s) == 200);
  assert_true(value_of(t, "finevent_stage_batch_size_count{stage=\"risk\\nx\"}") == 200);
  assert_true(value_of(t, "finevent_stage_batch_size_bucket{stage=\"risk\\nx\",le=\"64\"}") == 0);
  assert_true(value_of(t, "finevent_stage_batch_size_bucket{stage=\"risk\\nx\",le=\"128\"}") ==
              200);
  assert_true(value_of(t, "finevent_journal_lag") == 12);
  int rc = promtool(t);
  if (rc < 0)
    print_message("SKIPPED promtool check: promtool is not installed "
                  "(Debian package prometheus; make deps installs it)\n");
  else
    assert_int_equal(rc, 0);
  /* JSON snapshot. */
  assert_fe_ok(fe_metrics_write_json(m, buf, sizeof buf, &len));
  assert_true(fe_t_json_object(buf, len));
  assert_non_null(strstr(buf, "\"name\":\"valid\\\"ate\\\\\""));
  assert_non_null(strstr(buf, "\"count\":20000,\"min\":1000"));
  assert_non_null(strstr(buf, "\"rejected\":200"));
  assert_non_null(strstr(buf, "\"reasons\":{\"7\":200}"));
  assert_non_null(strstr(buf, "\"journal_lag\":12"));
  fe_metrics_destroy(m);
}


/* fe_metrics_attach: the bus itself feeds each stage's latency and batch
 * histograms, one sample per handler call, from every worker; a metrics
 * object too small for the bus, or a started bus, is refused. */
static fe_verdict_t slow_pass(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  for (volatile int i = 0; i < 200; i++)
    ;
  return FE_CONTINUE;
}

static void test_bus_feeds_latency(void **state) {
  (void)state;
  fe_t_def_t d;
  fe_t_def_init(&d, 1024);
  fe_t_add_stage(&d, "check", slow_pass, NULL, 0);
  fe_t_add_dep(&d, fe_t_add_stage(&d, "book", slow_pass, NULL, 1), 0);
  d.cfg.wait = FE_WAIT_YIELD;
  fe_bus_t *bus = fe_t_create(&d);
  fe_metrics_config_t mc;
  fe_metrics_config_init(&mc);
  mc.bus = bus;
  mc.stages = 0;  /* the bus's */
  mc.workers = 1; /* the bus has 2 */
  fe_metrics_t *m;
  assert_fe_ok(fe_metrics_create(&mc, &m, NULL));
  fe_diag_t dg;
  assert_int_equal(fe_metrics_attach(m, bus, &dg), FE_ERANGE);
  assert_non_null(strstr(dg.msg, "2 workers"));
  fe_metrics_destroy(m);
  mc.workers = 2;
  assert_fe_ok(fe_metrics_create(&mc, &m, NULL));
  assert_int_equal(fe_metrics_attach(NULL, bus, NULL), FE_EINVAL);
  assert_fe_ok(fe_metrics_attach(m, bus, NULL));
  assert_fe_ok(fe_bus_start(bus, NULL));
  assert_int_equal(fe_metrics_attach(m, bus, &dg), FE_ESTATE);
  for (int i = 0; i < 3000; i++) {
    fe_event_t *ev;
    assert_fe_ok(fe_bus_claim(bus, &ev, FE_T_LONG_NS));
    ev->order.quantity = 1;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus)); /* every worker's last report is in */
  const char *t = prom(m);
  check_exposition(t);
  assert_true(value_of(t, "finevent_stage_latency_seconds_count{stage=\"check\"}") == 3000);
  assert_true(value_of(t, "finevent_stage_latency_seconds_count{stage=\"book\"}") == 3000);
  assert_true(value_of(t, "finevent_stage_latency_seconds_sum{stage=\"check\"}") > 0);
  double batches = value_of(t, "finevent_stage_batch_size_count{stage=\"book\"}");
  assert_true(batches >= 1 && batches <= 3000);
  assert_true(value_of(t, "finevent_stage_batch_size_sum{stage=\"book\"}") == 3000);
  fe_bus_destroy(bus);
  fe_metrics_destroy(m);
}

/* promtool and the checks above would catch a broken exposition. */
static void test_checkers_catch(void **state) {
  (void)state;
  const char *no_total = "# HELP x_events Events.\n# TYPE x_events counter\nx_events 1\n";
  int rc = promtool(no_total);
  if (rc >= 0)
    assert_int_not_equal(rc, 0);
  const char *bad_escape = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b\\q\"} 1\n";
  rc = promtool(bad_escape);
  if (rc >= 0)
    assert_int_not_equal(rc, 0);
}

/* A bus and an audit trail attached: their figures are exported. */
static fe_verdict_t half(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)user;
  if (ev->order.quantity % 2) {
    ctx->reason = 9;
    return FE_REJECT;
  }
  return FE_CONTINUE;
}

static void test_bus_and_audit(void **state) {
  (void)state;
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  fe_t_add_stage(&d, "half", half, NULL, 0);
  d.cfg.host_driven = 1;
  fe_bus_t *bus = fe_t_create(&d);
  assert_fe_ok(fe_bus_start(bus, NULL));
  char dir[] = "/tmp/fe-metrics-audit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  fe_audit_config_t ac;
  fe_audit_config_init(&ac);
  ac.dir = dir;
  ac.fsync = FE_FSYNC_NONE;
  fe_audit_t *au;
  assert_fe_ok(fe_audit_create(&ac, &au, NULL));
  assert_fe_ok(fe_audit_note(au, FE_AUDIT_CONFIG, 0, "limits v2"));
  assert_fe_ok(fe_audit_flush(au, FE_T_LONG_NS));
  for (int i = 0; i < 10; i++) {
    fe_event_t *ev;
    assert_fe_ok(fe_bus_claim(bus, &ev, FE_T_LONG_NS));
    ev->order.quantity = i;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  fe_metrics_config_t c;
  fe_metrics_config_init(&c);
  c.stages = 0; /* the bus's */
  c.bus = bus;
  c.audit = au;
  fe_metrics_t *m;
  assert_fe_ok(fe_metrics_create(&c, &m, NULL));
  const char *t = prom(m);
  assert_true(value_of(t, "finevent_stage_queue_depth{stage=\"half\"}") == 10);
  while (fe_bus_poll(bus, 0) > 0) {
  }
  t = prom(m);
  check_exposition(t);
  assert_true(value_of(t, "finevent_bus_events_total{outcome=\"published\"}") == 10);
  assert_true(value_of(t, "finevent_bus_events_total{outcome=\"rejected\"}") == 5);
  assert_true(value_of(t, "finevent_bus_stage_events_total{stage=\"half\",what=\"handled\"}") ==
              10);
  assert_true(value_of(t, "finevent_stage_reasons_total{stage=\"half\",reason=\"9\"}") == 5);
  assert_true(value_of(t, "finevent_stage_queue_depth{stage=\"half\"}") == 0);
  assert_true(value_of(t, "finevent_audit_records_total{result=\"appended\"}") == 1);
  assert_true(value_of(t, "finevent_audit_records_total{result=\"written\"}") == 1);
  assert_true(value_of(t, "finevent_audit_lag") == 0);
  int rc = promtool(t);
  if (rc >= 0)
    assert_int_equal(rc, 0);
  size_t len;
  assert_fe_ok(fe_metrics_write_json(m, buf, sizeof buf, &len));
  assert_true(fe_t_json_object(buf, len));
  assert_non_null(strstr(buf, "\"published\":10"));
  fe_metrics_destroy(m);
  fe_audit_destroy(au);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------- alerts */

typedef struct alerts {
  int n;
  fe_alert_t a[16];
} alerts_t;

static void on_alert(const fe_alert_t *a, void *user) {
  alerts_t *s = user;
  if (s->n < 16)
    s->a[s->n] = *a;
  s->n++;
}

static void test_alerts(void **state) {
  (void)state;
  alerts_t got = {0};
  fe_metrics_config_t c;
  fe_metrics_config_init(&c);
  c.alert_window_ns = 1000;
  c.alert_alpha = 0.5;
  c.alert_factor = 3;
  c.alert_min_samples = 10;
  c.on_alert = on_alert;
  c.user = &got;
  fe_metrics_t *m;
  assert_fe_ok(fe_metrics_create(&c, &m, NULL));
  uint64_t now = 5000;
  assert_int_equal(fe_metrics_tick(m, now), 0); /* starts the interval */
  /* One interval of `n` samples of latency lat and `err` errors. */
#define INTERVAL(lat, errs)                                                   \
  do {                                                                        \
    for (int i_ = 0; i_ < 100; i_++) {                                        \
      fe_metrics_latency(m, 0, 0, (lat));                                     \
      fe_metrics_count(m, 0, 0, i_ < (errs) ? FE_METRIC_REJECTED : FE_METRIC_ACCEPTED, 3); \
    }                                                                         \
    now += 1000;                                                              \
  } while (0)
  for (int k = 0; k < 5; k++) { /* the baseline: 10 us, 1 % errors */
    INTERVAL(10000, 1);
    assert_int_equal(fe_metrics_tick(m, now), 0);
  }
  /* A tick before the window has passed does nothing. */
  INTERVAL(900000, 90);
  now -= 1000;
  assert_int_equal(fe_metrics_tick(m, now + 500), 0);
  now += 1000;
  assert_int_equal(fe_metrics_tick(m, now), 2); /* both raised at once */
  assert_int_equal(got.n, 2);
  assert_int_equal(got.a[0].kind, FE_ALERT_LATENCY);
  assert_int_equal(got.a[0].state, FE_ALERT_RAISED);
  assert_true(got.a[0].value > 800000 && got.a[0].baseline < 20000);
  assert_int_equal(got.a[1].kind, FE_ALERT_ERROR_RATE);
  assert_int_equal(got.a[1].state, FE_ALERT_RAISED);
  assert_true(got.a[1].value > 0.8);
  assert_int_equal(got.a[1].now_ns, now);
  /* Still bad: no repeat. */
  INTERVAL(900000, 90);
  assert_int_equal(fe_metrics_tick(m, now), 0);
  /* Latency recovers, errors do not: one clear. */
  INTERVAL(10000, 90);
  assert_int_equal(fe_metrics_tick(m, now), 1);
  assert_int_equal(got.a[2].kind, FE_ALERT_LATENCY);
  assert_int_equal(got.a[2].state, FE_ALERT_CLEARED);
  INTERVAL(10000, 1);
  assert_int_equal(fe_metrics_tick(m, now), 1);
  assert_int_equal(got.a[3].kind, FE_ALERT_ERROR_RATE);
  assert_int_equal(got.a[3].state, FE_ALERT_CLEARED);
  /* Too few samples: ignored. */
  for (int i = 0; i < 5; i++)
    fe_metrics_latency(m, 0, 0, 5000000);
  now += 1000;
  assert_int_equal(fe_metrics_tick(m, now), 0);
  assert_int_equal(got.n, 4);
  /* The baseline did not learn from the bad intervals. */
  INTERVAL(50000, 1); /* 5x the 10 us baseline */
  assert_int_equal(fe_metrics_tick(m, now), 1);
  assert_true(got.a[4].baseline < 12000);
  fe_metrics_destroy(m);
#undef INTERVAL
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_config),
      FE_T_TEST(test_workers_merge),
      FE_T_TEST(test_bus_feeds_latency),
      FE_T_TEST(test_checkers_catch),
      FE_T_TEST(test_bus_and_audit),
      FE_T_TEST(test_alerts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
