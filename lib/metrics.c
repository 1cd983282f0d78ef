/*
 * Metrics: per-worker single-writer histograms and counters, merged under
 * a reader lock at export; Prometheus text 0.0.4 and JSON; EWMA anomaly
 * alerts on tick.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "finevent/metrics.h"
#include "internal.h"
#include "sync.h"

#define MAX_WORKERS 1024
#define NAME_MAX_LEN 64
#define REASONS (FE_REASON_MAX + 1)

/* One worker slot's figures for one stage.  Written by the slot's thread
 * only (fe__add_owned: relaxed stores), read relaxed by exporters. */
typedef struct cell {
  fe_hist_t *lat, *batch;
  uint64_t out[FE_METRIC_OUTCOMES];
  uint64_t reasons[REASONS]; /* rejected and dead-lettered, by reason */
} cell_t;

typedef struct ewma {
  double base;
  int have, alerting;
} ewma_t;

typedef struct stage_view {
  char name[NAME_MAX_LEN + 1];
  uint64_t prev_count, prev_handled, prev_errors;
  double prev_sum;
  ewma_t lat, err;
} stage_view_t;

struct fe_metrics {
  fe_metrics_config_t cfg;
  char prefix[NAME_MAX_LEN + 1];
  uint32_t workers, stages;
  cell_t *cells;          /* [worker * stages + stage], each on its own lines */
  fe_hist_t **mlat, **mbatch; /* per stage: merge scratch, reader lock */
  stage_view_t *view;
  int64_t gauges[FE_METRIC_GAUGES]; /* relaxed: any thread */
  pthread_mutex_t lock;   /* readers: export and tick */
  uint64_t last_tick;
  int ticked;
};

static const char *const outcome_names[FE_METRIC_OUTCOMES] = {
    "accepted", "rejected", "dead_lettered", "retried", "amended"};

void fe_metrics_config_init(fe_metrics_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->workers = 1;
  cfg->stages = 1;
  cfg->prefix = "finevent";
  fe_hist_config_init(&cfg->latency);
  cfg->latency.highest = UINT64_C(60000000000);
  cfg->latency.digits = 2;
  cfg->alert_window_ns = UINT64_C(10000000000);
  cfg->alert_alpha = 0.2;
  cfg->alert_factor = 3.0;
  cfg->alert_latency_floor_ns = 1000;
  cfg->alert_error_floor = 0.01;
  cfg->alert_min_samples = 20;
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return 0;
  }
  return 1;
}

static cell_t *cell(const fe_metrics_t *m, uint32_t w, uint32_t s) {
  return &m->cells[(size_t)w * m->stages + s];
}

void fe_metrics_destroy(fe_metrics_t *m) {
  if (m == NULL)
    return;
  if (m->cells != NULL)
    for (size_t i = 0; i < (size_t)m->workers * m->stages; i++) {
      fe_hist_destroy(m->cells[i].lat);
      fe_hist_destroy(m->cells[i].batch);
    }
  for (uint32_t s = 0; s < m->stages && m->mlat != NULL; s++) {
    fe_hist_destroy(m->mlat[s]);
    fe_hist_destroy(m->mbatch[s]);
  }
  free(m->cells);
  free(m->mlat);
  free(m->mbatch);
  free(m->view);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

static fe_hist_config_t batch_config(void) {
  fe_hist_config_t c;
  fe_hist_config_init(&c);
  c.highest = UINT64_C(1) << 32;
  c.digits = 2;
  return c;
}

/* How many stages bus has (fe_bus_stage_stats answers for each). */
static uint32_t bus_stages(const fe_bus_t *bus) {
  uint32_t n = 0;
  fe_stage_stats_t st;
  while (n < FE_BUS_MAX_STAGES && fe_bus_stage_stats(bus, n, &st) == 0)
    n++;
  return n;
}

int fe_metrics_create(const fe_metrics_config_t *cfg, fe_metrics_t **out,
                      fe_diag_t *d) {
  if (cfg == NULL || out == NULL)
    return fe__diag(d, FE_EINVAL, "metrics: cfg or out is NULL");
  uint32_t stages = cfg->stages;
  if (stages == 0 && cfg->bus != NULL)
    stages = bus_stages(cfg->bus);
  if (cfg->workers == 0 || cfg->workers > MAX_WORKERS)
    return fe__diag(d, FE_ERANGE, "metrics: workers %u is outside 1..%u", cfg->workers,
                    MAX_WORKERS);
  if (stages == 0 || stages > FE_BUS_MAX_STAGES)
    return fe__diag(d, FE_ERANGE, "metrics: stages %u is outside 1..%u", stages,
                    FE_BUS_MAX_STAGES);
  const char *prefix = cfg->prefix ? cfg->prefix : "finevent";
  if (!valid_name(prefix))
    return fe__diag(d, FE_EINVAL, "metrics: prefix \"%s\" is not a metric name", prefix);
  if (!(cfg->alert_alpha > 0 && cfg->alert_alpha <= 1) || !(cfg->alert_factor > 1) ||
      cfg->alert_window_ns == 0)
    return fe__diag(d, FE_ERANGE, "metrics: alert_alpha %g, alert_factor %g or "
                    "alert_window_ns 0 out of range", cfg->alert_alpha, cfg->alert_factor);
  int rc = fe_hist_config_check(&cfg->latency, d);
  if (rc != 0)
    return rc;
  fe_metrics_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return fe__diag(d, FE_ENOMEM, "metrics: out of memory");
  pthread_mutex_init(&m->lock, NULL);
  m->cfg = *cfg;
  m->cfg.stage_names = NULL;
  m->workers = cfg->workers;
  m->stages = stages;
  snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
  m->cells = fe__zalloc_aligned((size_t)m->workers * stages * sizeof(cell_t));
  m->mlat = calloc(stages, sizeof *m->mlat);
  m->mbatch = calloc(stages, sizeof *m->mbatch);
  m->view = calloc(stages, sizeof *m->view);
  if (m->cells == NULL || m->mlat == NULL || m->mbatch == NULL || m->view == NULL) {
    fe_metrics_destroy(m);
    return fe__diag(d, FE_ENOMEM, "metrics: out of memory");
  }
  fe_hist_config_t bc = batch_config();
  for (size_t i = 0; i < (size_t)m->workers * stages && rc == 0; i++)
    if ((rc = fe_hist_create(&cfg->latency, &m->cells[i].lat, d)) == 0)
      rc = fe_hist_create(&bc, &m->cells[i].batch, d);
  for (uint32_t s = 0; s < stages && rc == 0; s++)
    if ((rc = fe_hist_create(&cfg->latency, &m->mlat[s], d)) == 0)
      rc = fe_hist_create(&bc, &m->mbatch[s], d);
  for (uint32_t s = 0; s < stages && rc == 0; s++) {
    const char *n = cfg->stage_names ? cfg->stage_names[s]
                    : cfg->bus       ? fe_bus_stage_name(cfg->bus, s)
                                     : NULL;
    if (n != NULL && strlen(n) > NAME_MAX_LEN)
      rc = fe__diag(d, FE_EINVAL, "metrics: stage %u's name is longer than %d", s,
                    NAME_MAX_LEN);
    else if (n != NULL)
      snprintf(m->view[s].name, sizeof m->view[s].name, "%s", n);
    else
      snprintf(m->view[s].name, sizeof m->view[s].name, "%u", s);
  }
  if (rc != 0) {
    fe_metrics_destroy(m);
    return rc;
  }
  *out = m;
  return 0;
}

/* ----------------------------------------------------------- recording */

int fe_metrics_latency(fe_metrics_t *m, uint32_t w, uint32_t s, uint64_t ns) {
  if (m == NULL || w >= m->workers || s >= m->stages)
    return FE_EINVAL;
  return fe_hist_record(cell(m, w, s)->lat, ns);
}

int fe_metrics_batch(fe_metrics_t *m, uint32_t w, uint32_t s, uint64_t events) {
  if (m == NULL || w >= m->workers || s >= m->stages)
    return FE_EINVAL;
  return fe_hist_record(cell(m, w, s)->batch, events);
}

int fe_metrics_count(fe_metrics_t *m, uint32_t w, uint32_t s,
                     fe_metric_outcome_t o, uint32_t reason) {
  if (m == NULL || w >= m->workers || s >= m->stages ||
      (unsigned)o >= FE_METRIC_OUTCOMES)
    return FE_EINVAL;
  cell_t *c = cell(m, w, s);
  fe__add_owned(&c->out[o], 1);
  if (o == FE_METRIC_REJECTED || o == FE_METRIC_DEAD_LETTERED)
    fe__add_owned(&c->reasons[reason <= FE_REASON_MAX ? reason : 0], 1);
  return 0;
}

void fe_metrics_stage_timing(const fe_stage_timing_t *t, void *user) {
  fe_metrics_t *m = user;
  if (t == NULL || m == NULL || t->worker >= m->workers ||
      t->stage >= m->stages || t->handled == 0)
    return;
  cell_t *c = cell(m, t->worker, t->stage);
  fe_hist_record_n(c->lat, t->ns / t->handled, t->handled);
  fe_hist_record(c->batch, t->handled);
}

int fe_metrics_attach(fe_metrics_t *m, fe_bus_t *bus, fe_diag_t *d) {
  if (m == NULL || bus == NULL)
    return fe__diag(d, FE_EINVAL, "metrics: attach: m or bus is NULL");
  uint32_t workers = fe_bus_workers(bus), stages = bus_stages(bus);
  if (workers > m->workers)
    return fe__diag(d, FE_ERANGE, "metrics: attach: the bus has %u workers, "
                    "the metrics %u worker slots (cfg.workers)", workers,
                    m->workers);
  if (stages > m->stages)
    return fe__diag(d, FE_ERANGE, "metrics: attach: the bus has %u stages, "
                    "the metrics %u (cfg.stages)", stages, m->stages);
  int rc = fe_bus_on_stage_timing(bus, fe_metrics_stage_timing, m);
  if (rc != 0)
    return fe__diag(d, rc, "metrics: attach: the bus is already started");
  return 0;
}

int fe_metrics_gauge(fe_metrics_t *m, fe_metric_gauge_t g, int64_t v) {
  if (m == NULL || (unsigned)g >= FE_METRIC_GAUGES)
    return FE_EINVAL;
  fe__store_relaxed(&m->gauges[g], v);
  return 0;
}

/* ------------------------------------------------------------- reading */

/* Merges every slot of stage s into the scratch histograms; sums the
 * counters.  Reader lock held. */
static void merge(fe_metrics_t *m, uint32_t s, uint64_t out[FE_METRIC_OUTCOMES]) {
  fe_hist_reset(m->mlat[s]);
  fe_hist_reset(m->mbatch[s]);
  memset(out, 0, FE_METRIC_OUTCOMES * sizeof *out);
  for (uint32_t w = 0; w < m->workers; w++) {
    cell_t *c = cell(m, w, s);
    fe_hist_merge(m->mlat[s], c->lat);
    fe_hist_merge(m->mbatch[s], c->batch);
    for (int o = 0; o < FE_METRIC_OUTCOMES; o++)
      out[o] += fe__load_relaxed(&c->out[o]);
  }
}

static uint64_t reason_total(const fe_metrics_t *m, uint32_t s, uint32_t r) {
  uint64_t n = 0;
  for (uint32_t w = 0; w < m->workers; w++)
    n += fe__load_relaxed(&cell(m, w, s)->reasons[r]);
  if (m->cfg.bus != NULL)
    n += fe_bus_stage_rejects(m->cfg.bus, s, r);
  return n;
}

/* An output buffer that counts what it could not hold. */
typedef struct out {
  char *buf;
  size_t cap, len;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->len < o->cap ? o->cap - o->len : 0;
  int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->len += (size_t)n;
}

/* A label value or JSON string body, escaped for prom (json 0) or JSON. */
static void put_esc(out_t *o, const char *s, int json) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\\' || c == '"')
      put(o, "\\%c", c);
    else if (c == '\n')
      put(o, "\\n");
    else if (json && c < 0x20)
      put(o, "\\u%04x", c);
    else
      put(o, "%c", c);
  }
}

static int finish(out_t *o, size_t *len) {
  *len = o->len;
  if (o->cap == 0)
    return FE_ERANGE;
  if (o->len >= o->cap) {
    o->buf[o->cap - 1] = '\0';
    return FE_ERANGE;
  }
  o->buf[o->len] = '\0';
  return 0;
}

static void family(out_t *o, const fe_metrics_t *m, const char *name,
                   const char *type, const char *help) {
  put(o, "# HELP %s_%s %s\n# TYPE %s_%s %s\n", m->prefix, name, help, m->prefix, name,
      type);
}

static void stage_label(out_t *o, const fe_metrics_t *m, uint32_t s) {
  put(o, "stage=\"");
  put_esc(o, m->view[s].name, 0);
  put(o, "\"");
}

/* Cumulative histogram series of h for stage s: bounds in h's unit,
 * printed divided by scale. */
static void put_hist(out_t *o, const fe_metrics_t *m, const char *name, uint32_t s,
                     const fe_hist_t *h, const double *bounds, size_t nb, double scale) {
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  int more = fe_hist_iter_next(&it);
  uint64_t cum = 0;
  for (size_t b = 0; b < nb; b++) {
    /* A bucket whose lowest value is within the bound counts in it: exact
     * to the histogram's precision (a bucket may straddle a bound). */
    while (more && (double)it.lowest <= bounds[b]) {
      cum = it.cumulative;
      more = fe_hist_iter_next(&it);
    }
    put(o, "%s_%s_bucket{", m->prefix, name);
    stage_label(o, m, s);
    put(o, ",le=\"%g\"} %llu\n", bounds[b] / scale, (unsigned long long)cum);
  }
  uint64_t count = fe_hist_count(h);
  put(o, "%s_%s_bucket{", m->prefix, name);
  stage_label(o, m, s);
  put(o, ",le=\"+Inf\"} %llu\n", (unsigned long long)count);
  put(o, "%s_%s_sum{", m->prefix, name);
  stage_label(o, m, s);
  put(o, "} %.9g\n", count ? fe_hist_mean(h) * (double)count / scale : 0.0);
  put(o, "%s_%s_count{", m->prefix, name);
  stage_label(o, m, s);
  put(o, "} %llu\n", (unsigned long long)count);
}

static const double lat_bounds[] = {1e2, 2.5e2, 5e2, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4,
                                    1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7, 5e7,
                                    1e8, 2.5e8, 5e8, 1e9, 2.5e9, 5e9, 1e10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
#define N(a) (sizeof(a) / sizeof(a)[0])

static uint64_t queue_depth(const fe_metrics_t *m, uint32_t s) {
  fe_bus_stats_t bs;
  fe_stage_stats_t st;
  if (fe_bus_stats(m->cfg.bus, &bs) != 0 || fe_bus_stage_stats(m->cfg.bus, s, &st) != 0)
    return 0;
  return bs.published > st.processed ? bs.published - st.processed : 0;
}

static void prom_bus(out_t *o, fe_metrics_t *m) {
  fe_bus_stats_t b;
  if (fe_bus_stats(m->cfg.bus, &b) != 0)
    return;
  family(o, m, "bus_events_total", "counter", "Events by what became of them at the bus.");
  const struct {
    const char *k;
    uint64_t v;
  } ev[] = {{"published", b.published},   {"completed", b.completed},
            {"rejected", b.rejected},     {"dead_lettered", b.dead_lettered},
            {"ring_full", b.full},        {"throttled", b.throttled},
            {"halted", b.halted},         {"duplicate", b.duplicates}};
  for (size_t i = 0; i < N(ev); i++)
    put(o, "%s_bus_events_total{outcome=\"%s\"} %llu\n", m->prefix, ev[i].k,
        (unsigned long long)ev[i].v);
  family(o, m, "bus_stage_events_total", "counter", "Events per stage by what the stage did.");
  for (uint32_t s = 0; s < m->stages; s++) {
    fe_stage_stats_t st;
    if (fe_bus_stage_stats(m->cfg.bus, s, &st) != 0)
      continue;
    const struct {
      const char *k;
      uint64_t v;
    } se[] = {{"handled", st.handled}, {"rejected", st.rejected}, {"skipped", st.skipped},
              {"filtered", st.filtered}, {"retried", st.retried}, {"failed", st.failed}};
    for (size_t i = 0; i < N(se); i++) {
      put(o, "%s_bus_stage_events_total{", m->prefix);
      stage_label(o, m, s);
      put(o, ",what=\"%s\"} %llu\n", se[i].k, (unsigned long long)se[i].v);
    }
  }
  family(o, m, "bus_stage_batches_total", "counter", "Batches in which a stage's handler ran.");
  for (uint32_t s = 0; s < m->stages; s++) {
    fe_stage_stats_t st;
    if (fe_bus_stage_stats(m->cfg.bus, s, &st) != 0)
      continue;
    put(o, "%s_bus_stage_batches_total{", m->prefix);
    stage_label(o, m, s);
    put(o, "} %llu\n", (unsigned long long)st.batches);
  }
  family(o, m, "stage_queue_depth", "gauge", "Events published and not yet processed by the stage.");
  for (uint32_t s = 0; s < m->stages; s++) {
    put(o, "%s_stage_queue_depth{", m->prefix);
    stage_label(o, m, s);
    put(o, "} %llu\n", (unsigned long long)queue_depth(m, s));
  }
}

static void prom_audit(out_t *o, fe_metrics_t *m) {
  fe_audit_stats_t a;
  if (fe_audit_stats(m->cfg.audit, &a) != 0)
    return;
  family(o, m, "audit_records_total", "counter", "Audit records by result.");
  put(o, "%s_audit_records_total{result=\"appended\"} %llu\n", m->prefix,
      (unsigned long long)a.appended);
  put(o, "%s_audit_records_total{result=\"written\"} %llu\n", m->prefix,
      (unsigned long long)a.written);
  put(o, "%s_audit_records_total{result=\"lost\"} %llu\n", m->prefix,
      (unsigned long long)a.lost);
  family(o, m, "audit_checkpoints_total", "counter", "Signed audit checkpoints written.");
  put(o, "%s_audit_checkpoints_total %llu\n", m->prefix, (unsigned long long)a.checkpoints);
  family(o, m, "audit_io_errors_total", "counter", "Failed audit writes or fsyncs.");
  put(o, "%s_audit_io_errors_total %llu\n", m->prefix, (unsigned long long)a.io_errors);
  family(o, m, "audit_lag", "gauge", "Audit records appended and not yet written.");
  put(o, "%s_audit_lag %llu\n", m->prefix, (unsigned long long)a.depth);
}

int fe_metrics_write_prometheus(fe_metrics_t *m, char *buf, size_t cap, size_t *len) {
  if (m == NULL || len == NULL || (buf == NULL && cap != 0))
    return FE_EINVAL;
  out_t o = {buf, cap, 0};
  pthread_mutex_lock(&m->lock);
  uint64_t outs[FE_BUS_MAX_STAGES][FE_METRIC_OUTCOMES];
  for (uint32_t s = 0; s < m->stages; s++)
    merge(m, s, outs[s]);
  family(&o, m, "stage_latency_seconds", "histogram", "Stage handler latency.");
  for (uint32_t s = 0; s < m->stages; s++)
    put_hist(&o, m, "stage_latency_seconds", s, m->mlat[s], lat_bounds, N(lat_bounds), 1e9);
  family(&o, m, "stage_batch_size", "histogram", "Events per batch a stage took.");
  for (uint32_t s = 0; s < m->stages; s++)
    put_hist(&o, m, "stage_batch_size", s, m->mbatch[s], batch_bounds, N(batch_bounds), 1);
  family(&o, m, "stage_outcomes_total", "counter", "Stage decisions by outcome.");
  for (uint32_t s = 0; s < m->stages; s++)
    for (int k = 0; k < FE_METRIC_OUTCOMES; k++) {
      put(&o, "%s_stage_outcomes_total{", m->prefix);
      stage_label(&o, m, s);
      put(&o, ",outcome=\"%s\"} %llu\n", outcome_names[k], (unsigned long long)outs[s][k]);
    }
  family(&o, m, "stage_reasons_total", "counter",
         "Rejections and dead letters by stage and reason code.");
  for (uint32_t s = 0; s < m->stages; s++)
    for (uint32_t r = 0; r <= FE_REASON_MAX; r++) {
      uint64_t n = reason_total(m, s, r);
      if (n == 0)
        continue;
      put(&o, "%s_stage_reasons_total{", m->prefix);
      stage_label(&o, m, s);
      put(&o, ",reason=\"%u\"} %llu\n", r, (unsigned long long)n);
    }
  if (m->cfg.bus != NULL)
    prom_bus(&o, m);
  if (m->cfg.audit != NULL)
    prom_audit(&o, m);
  family(&o, m, "journal_lag", "gauge", "Journal lag as the host last set it.");
  put(&o, "%s_journal_lag %lld\n", m->prefix,
      (long long)fe__load_relaxed(&m->gauges[FE_METRIC_GAUGE_JOURNAL_LAG]));
  family(&o, m, "host_queue_depth", "gauge", "A host queue's depth as the host last set it.");
  put(&o, "%s_host_queue_depth %lld\n", m->prefix,
      (long long)fe__load_relaxed(&m->gauges[FE_METRIC_GAUGE_QUEUE_DEPTH]));
  pthread_mutex_unlock(&m->lock);
  return finish(&o, len);
}

int fe_metrics_write_json(fe_metrics_t *m, char *buf, size_t cap, size_t *len) {
  if (m == NULL || len == NULL || (buf == NULL && cap != 0))
    return FE_EINVAL;
  out_t o = {buf, cap, 0};
  pthread_mutex_lock(&m->lock);
  put(&o, "{\"stages\":[");
  for (uint32_t s = 0; s < m->stages; s++) {
    uint64_t outs[FE_METRIC_OUTCOMES];
    merge(m, s, outs);
    const fe_hist_t *h = m->mlat[s], *b = m->mbatch[s];
    put(&o, "%s{\"name\":\"", s ? "," : "");
    put_esc(&o, m->view[s].name, 1);
    put(&o, "\",\"latency_ns\":{\"count\":%llu,\"min\":%llu,\"p50\":%llu,\"p90\":%llu,"
            "\"p99\":%llu,\"p999\":%llu,\"max\":%llu,\"mean\":%.1f}",
        (unsigned long long)fe_hist_count(h), (unsigned long long)fe_hist_min(h),
        (unsigned long long)fe_hist_percentile(h, 50), (unsigned long long)fe_hist_percentile(h, 90),
        (unsigned long long)fe_hist_percentile(h, 99),
        (unsigned long long)fe_hist_percentile(h, 99.9), (unsigned long long)fe_hist_max(h),
        fe_hist_count(h) ? fe_hist_mean(h) : 0.0);
    put(&o, ",\"batch\":{\"count\":%llu,\"mean\":%.2f,\"max\":%llu}",
        (unsigned long long)fe_hist_count(b), fe_hist_count(b) ? fe_hist_mean(b) : 0.0,
        (unsigned long long)fe_hist_max(b));
    put(&o, ",\"outcomes\":{");
    for (int k = 0; k < FE_METRIC_OUTCOMES; k++)
      put(&o, "%s\"%s\":%llu", k ? "," : "", outcome_names[k], (unsigned long long)outs[k]);
    put(&o, "},\"reasons\":{");
    int first = 1;
    for (uint32_t r = 0; r <= FE_REASON_MAX; r++) {
      uint64_t n = reason_total(m, s, r);
      if (n != 0)
        put(&o, "%s\"%u\":%llu", first ? "" : ",", r, (unsigned long long)n), first = 0;
    }
    put(&o, "}");
    if (m->cfg.bus != NULL)
      put(&o, ",\"queue_depth\":%llu", (unsigned long long)queue_depth(m, s));
    put(&o, "}");
  }
  put(&o, "]");
  fe_bus_stats_t bs;
  if (m->cfg.bus != NULL && fe_bus_stats(m->cfg.bus, &bs) == 0)
    put(&o, ",\"bus\":{\"published\":%llu,\"completed\":%llu,\"rejected\":%llu,"
            "\"dead_lettered\":%llu,\"ring_full\":%llu,\"throttled\":%llu,\"halted\":%llu,"
            "\"duplicates\":%llu}",
        (unsigned long long)bs.published, (unsigned long long)bs.completed,
        (unsigned long long)bs.rejected, (unsigned long long)bs.dead_lettered,
        (unsigned long long)bs.full, (unsigned long long)bs.throttled,
        (unsigned long long)bs.halted, (unsigned long long)bs.duplicates);
  fe_audit_stats_t as;
  if (m->cfg.audit != NULL && fe_audit_stats(m->cfg.audit, &as) == 0)
    put(&o, ",\"audit\":{\"appended\":%llu,\"written\":%llu,\"lost\":%llu,"
            "\"checkpoints\":%llu,\"lag\":%llu,\"io_errors\":%llu}",
        (unsigned long long)as.appended, (unsigned long long)as.written,
        (unsigned long long)as.lost, (unsigned long long)as.checkpoints,
        (unsigned long long)as.depth, (unsigned long long)as.io_errors);
  put(&o, ",\"gauges\":{\"journal_lag\":%lld,\"host_queue_depth\":%lld}}",
      (long long)fe__load_relaxed(&m->gauges[FE_METRIC_GAUGE_JOURNAL_LAG]),
      (long long)fe__load_relaxed(&m->gauges[FE_METRIC_GAUGE_QUEUE_DEPTH]));
  pthread_mutex_unlock(&m->lock);
  return finish(&o, len);
}

/* -------------------------------------------------------------- alerts */

/* One interval's value v against e; returns 1 when it raised or cleared. */
static int judge(fe_metrics_t *m, ewma_t *e, uint32_t s, fe_alert_kind_t kind, double v,
                 double floor, uint64_t now) {
  if (!e->have) {
    e->base = v;
    e->have = 1;
    return 0;
  }
  double limit = e->base * m->cfg.alert_factor;
  if (limit < e->base + floor)
    limit = e->base + floor;
  fe_alert_t a = {s, kind, 0, v, e->base, now};
  if (!e->alerting && v > limit) {
    e->alerting = 1;
    a.state = FE_ALERT_RAISED;
  } else if (e->alerting && v <= limit) {
    e->alerting = 0;
    a.state = FE_ALERT_CLEARED;
  }
  if (!e->alerting && a.state == 0)
    e->base += m->cfg.alert_alpha * (v - e->base);
  if (a.state != 0 && m->cfg.on_alert != NULL)
    m->cfg.on_alert(&a, m->cfg.user);
  return a.state != 0;
}

int fe_metrics_tick(fe_metrics_t *m, uint64_t now) {
  if (m == NULL)
    return FE_EINVAL;
  pthread_mutex_lock(&m->lock);
  int fired = 0;
  int close_it = m->ticked && now - m->last_tick >= m->cfg.alert_window_ns;
  if (!m->ticked || close_it) {
    for (uint32_t s = 0; s < m->stages; s++) {
      uint64_t outs[FE_METRIC_OUTCOMES];
      merge(m, s, outs);
      stage_view_t *v = &m->view[s];
      uint64_t count = fe_hist_count(m->mlat[s]);
      double sum = count ? fe_hist_mean(m->mlat[s]) * (double)count : 0;
      uint64_t handled = outs[FE_METRIC_ACCEPTED] + outs[FE_METRIC_REJECTED] +
                         outs[FE_METRIC_DEAD_LETTERED];
      uint64_t errors = outs[FE_METRIC_REJECTED] + outs[FE_METRIC_DEAD_LETTERED];
      fe_stage_stats_t st;
      if (m->cfg.bus != NULL && fe_bus_stage_stats(m->cfg.bus, s, &st) == 0) {
        handled += st.handled;
        errors += st.rejected + st.failed;
      }
      if (close_it) {
        uint64_t dc = count - v->prev_count, dh = handled - v->prev_handled;
        if (dc >= m->cfg.alert_min_samples && dc > 0)
          fired += judge(m, &v->lat, s, FE_ALERT_LATENCY, (sum - v->prev_sum) / (double)dc,
                         m->cfg.alert_latency_floor_ns, now);
        if (dh >= m->cfg.alert_min_samples && dh > 0)
          fired += judge(m, &v->err, s, FE_ALERT_ERROR_RATE,
                         (double)(errors - v->prev_errors) / (double)dh,
                         m->cfg.alert_error_floor, now);
      }
      v->prev_count = count;
      v->prev_sum = sum;
      v->prev_handled = handled;
      v->prev_errors = errors;
    }
    m->last_tick = now;
    m->ticked = 1;
  }
  pthread_mutex_unlock(&m->lock);
  return fired;
}
