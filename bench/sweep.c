/* fe_bench's parameter sweeps: see sweep.h. */
#define _GNU_SOURCE
#include "sweep.h"

#include <finevent/bus.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { K_NUM, K_POW2, K_WAIT, K_BOOL, K_HANDLER } kind_t;

static const struct {
  const char *name;
  kind_t kind;
  uint64_t lo, hi;
} knob_info[SWEEP_N_KNOBS] = {
    [SWEEP_RING] = {"ring", K_POW2, 2, UINT64_C(1) << 30},
    [SWEEP_BATCH] = {"batch", K_NUM, 1, UINT64_C(1) << 30},
    [SWEEP_WAIT] = {"wait", K_WAIT, 0, 0},
    [SWEEP_SPIN] = {"spin", K_NUM, 0, UINT32_MAX},
    [SWEEP_YIELDS] = {"yields", K_NUM, 0, UINT32_MAX},
    [SWEEP_CATCHUP] = {"catchup", K_NUM, 0, UINT32_MAX},
    [SWEEP_PIN] = {"pin", K_BOOL, 0, 1},
    [SWEEP_CLAIM] = {"claim", K_NUM, 1, 65536},
    [SWEEP_HANDLER] = {"handler", K_HANDLER, 0, 1},
    [SWEEP_FUSE] = {"fuse", K_BOOL, 0, 1},
    [SWEEP_RATE] = {"rate", K_NUM, 1, 1000000000},
    [SWEEP_EVENTS] = {"events", K_NUM, 1, UINT64_MAX},
};


const char *sweep_knob_name(sweep_knob_t knob) {
  return (unsigned)knob < SWEEP_N_KNOBS ? knob_info[knob].name : NULL;
}

static const char *wait_name(uint64_t v) {
  return v == FE_WAIT_SPIN ? "spin" : v == FE_WAIT_YIELD ? "yield"
         : v == FE_WAIT_PARK ? "park" : "default";
}

int sweep_value_parse(sweep_knob_t knob, const char *s, uint64_t *out,
                      char *err, size_t errlen) {
  if ((unsigned)knob >= SWEEP_N_KNOBS || s == NULL || out == NULL)
    return bench_errf(err, errlen, "sweep: bad knob or NULL value");
  const char *name = knob_info[knob].name;
  switch (knob_info[knob].kind) {
  case K_WAIT:
    *out = !strcmp(s, "spin") ? FE_WAIT_SPIN : !strcmp(s, "yield") ? FE_WAIT_YIELD
           : !strcmp(s, "park") ? FE_WAIT_PARK : 0;
    return *out ? 0 : bench_errf(err, errlen, "%s: '%s' is not spin, yield or park", name, s);
  case K_BOOL:
    if (!strcmp(s, "on") || !strcmp(s, "1") || !strcmp(s, "yes"))
      return *out = 1, 0;
    if (!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "no"))
      return *out = 0, 0;
    return bench_errf(err, errlen, "%s: '%s' is not on or off", name, s);
  case K_HANDLER:
    if (!strcmp(s, "event") || !strcmp(s, "batch"))
      return *out = s[0] == 'b', 0;
    return bench_errf(err, errlen, "%s: '%s' is not event or batch", name, s);
  case K_NUM:
  case K_POW2: {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int pow2 = knob_info[knob].kind == K_POW2;
    if (s[0] < '0' || s[0] > '9' || errno || *end != '\0' ||
        v < knob_info[knob].lo || v > knob_info[knob].hi || (pow2 && (v & (v - 1))))
      return bench_errf(err, errlen, "%s: '%s' is not %s in %" PRIu64 "..%" PRIu64, name, s,
                  pow2 ? "a power of two" : "an integer", knob_info[knob].lo,
                  knob_info[knob].hi);
    *out = v;
    return 0;
  }
  }
  return -1;
}

void sweep_value_str(sweep_knob_t knob, uint64_t v, char *buf, size_t size) {
  if ((unsigned)knob >= SWEEP_N_KNOBS) {
    snprintf(buf, size, "?");
    return;
  }
  switch (knob_info[knob].kind) {
  case K_WAIT: snprintf(buf, size, "%s", wait_name(v)); break;
  case K_BOOL: snprintf(buf, size, "%s", v ? "on" : "off"); break;
  case K_HANDLER: snprintf(buf, size, "%s", v ? "batch" : "event"); break;
  default: snprintf(buf, size, "%" PRIu64, v); break;
  }
}

/* Copies [s, e) without surrounding blanks into buf (size bytes). */
static void strip(const char *s, const char *e, char *buf, size_t size) {
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  size_t n = (size_t)(e - s) < size - 1 ? (size_t)(e - s) : size - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
}

static void knob_list(char *buf, size_t size) {
  size_t off = 0;
  buf[0] = '\0';
  for (int k = 0; k < SWEEP_N_KNOBS && off < size; k++)
    off += (size_t)snprintf(buf + off, size - off, "%s%s", k ? ", " : "", knob_info[k].name);
}

int sweep_parse(const char *spec, sweep_grid_t *g, char *err, size_t errlen) {
  if (spec == NULL || g == NULL)
    return bench_errf(err, errlen, "sweep: NULL grid");
  memset(g, 0, sizeof *g);
  g->points = 1;
  const char *p = spec;
  char part[256], name[64], val[128];
  for (;;) {
    const char *semi = strchr(p, ';');
    const char *end = semi ? semi : p + strlen(p);
    strip(p, end, part, sizeof part);
    if (part[0] == '\0') {
      if (semi == NULL && g->n_axes > 0)
        break; /* a trailing ';' */
      return bench_errf(err, errlen, "sweep: empty knob in '%s'", spec);
    }
    char *eq = strchr(part, '=');
    if (eq == NULL)
      return bench_errf(err, errlen, "sweep: '%s' has no '=' (write knob=v1,v2,...)", part);
    strip(part, eq, name, sizeof name);
    int k = 0;
    while (k < SWEEP_N_KNOBS && strcmp(name, knob_info[k].name) != 0)
      k++;
    if (k == SWEEP_N_KNOBS) {
      char known[160];
      knob_list(known, sizeof known);
      return bench_errf(err, errlen, "sweep: unknown knob '%s' in '%s' (knobs: %s)", name, part, known);
    }
    for (uint32_t a = 0; a < g->n_axes; a++)
      if (g->axis[a].knob == (sweep_knob_t)k)
        return bench_errf(err, errlen, "sweep: knob '%s' given twice", name);
    sweep_axis_t *ax = &g->axis[g->n_axes++];
    ax->knob = (sweep_knob_t)k;
    const char *v = eq + 1;
    for (;;) {
      const char *comma = strchr(v, ',');
      const char *ve = comma ? comma : v + strlen(v);
      strip(v, ve, val, sizeof val);
      if (val[0] == '\0')
        return bench_errf(err, errlen, "sweep: %s: empty value in '%s'", name, part);
      if (ax->n == SWEEP_MAX_VALUES)
        return bench_errf(err, errlen, "sweep: %s: more than %d values", name, SWEEP_MAX_VALUES);
      uint64_t x;
      if (sweep_value_parse(ax->knob, val, &x, err, errlen) != 0) {
        if (err != NULL && errlen > 0) { /* prefix "sweep: " */
          char tmp[256];
          snprintf(tmp, sizeof tmp, "sweep: %s", err);
          snprintf(err, errlen, "%s", tmp);
        }
        return -1;
      }
      for (uint32_t i = 0; i < ax->n; i++)
        if (ax->v[i] == x)
          return bench_errf(err, errlen, "sweep: %s: value '%s' repeated", name, val);
      ax->v[ax->n++] = x;
      if (comma == NULL)
        break;
      v = comma + 1;
    }
    if (g->points * ax->n > SWEEP_MAX_POINTS)
      return bench_errf(err, errlen, "sweep: the grid has more than %d points (at '%s')",
                  SWEEP_MAX_POINTS, part);
    g->points *= ax->n;
    if (semi == NULL)
      break;
    p = semi + 1;
  }
  return 0;
}

void sweep_point(const sweep_grid_t *g, uint64_t i,
                 uint64_t knobs[SWEEP_N_KNOBS]) {
  for (uint32_t a = g->n_axes; a-- > 0;) { /* the last axis varies fastest */
    const sweep_axis_t *ax = &g->axis[a];
    knobs[ax->knob] = ax->v[i % ax->n];
    i /= ax->n;
  }
}

void sweep_label(const sweep_grid_t *g, const uint64_t knobs[SWEEP_N_KNOBS],
                 const char *sep, int with_eq, char *buf, size_t size) {
  size_t off = 0;
  buf[0] = '\0';
  for (uint32_t a = 0; a < g->n_axes && off < size; a++) {
    char v[32];
    sweep_value_str(g->axis[a].knob, knobs[g->axis[a].knob], v, sizeof v);
    off += (size_t)snprintf(buf + off, size - off, "%s%s%s%s", a ? sep : "",
                            knob_info[g->axis[a].knob].name, with_eq ? "=" : "", v);
  }
}

/* ------------------------------------------------------------- runner */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static int cmp_u(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}
static uint64_t med_u(uint64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u);
  return v[n / 2];
}

static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void progress(const sweep_grid_t *g, const sweep_opts_t *o, uint64_t pt,
                     int run, const uint64_t *knobs, double t0) {
  char label[256];
  sweep_label(g, knobs, " ", 1, label, sizeof label);
  uint64_t done = pt * (uint64_t)o->runs + (uint64_t)run,
           all = g->points * (uint64_t)o->runs;
  char eta[32] = "?";
  if (done > 0) {
    double left = (mono_s() - t0) / (double)done * (double)(all - done);
    snprintf(eta, sizeof eta, "%dm%02ds", (int)(left / 60), (int)left % 60);
  }
  fprintf(stderr, "\r\033[K%s: point %" PRIu64 "/%" PRIu64 " [%s] run %d/%d, eta %s",
          o->scenario, pt + 1, g->points, label, run + 1, o->runs, eta);
  fflush(stderr);
}

int sweep_run(const sweep_grid_t *g, const sweep_opts_t *o, sweep_run_fn fn,
              void *user, sweep_row_t *rows) {
  double t0 = mono_s();
  int runs = o->runs < 1 ? 1 : o->runs > SWEEP_MAX_RUNS ? SWEEP_MAX_RUNS : o->runs;
  for (uint64_t pt = 0; pt < g->points; pt++) {
    sweep_row_t *r = &rows[pt];
    memset(r, 0, sizeof *r);
    r->point = pt;
    memcpy(r->knobs, o->base, sizeof r->knobs);
    sweep_point(g, pt, r->knobs);
    double m[SWEEP_MAX_RUNS];
    uint64_t q[5][SWEEP_MAX_RUNS];
    for (int i = 0; i < runs; i++) {
      if (o->progress)
        progress(g, o, pt, i, r->knobs, t0);
      sweep_sample_t s;
      memset(&s, 0, sizeof s);
      int rc = fn(r->knobs, i, runs, &s, user);
      if (rc != 0) {
        if (o->progress)
          fputs("\r\033[K", stderr);
        return rc;
      }
      m[i] = s.mev_s;
      q[0][i] = s.p50, q[1][i] = s.p99, q[2][i] = s.p999, q[3][i] = s.p9999,
      q[4][i] = s.max;
      r->has_lat = s.has_lat;
      if (s.hgrm[0])
        snprintf(r->hgrm, sizeof r->hgrm, "%s", s.hgrm);
    }
    r->runs = runs;
    qsort(m, (size_t)runs, sizeof *m, cmp_d);
    r->mev_s = m[runs / 2], r->mev_min = m[0], r->mev_max = m[runs - 1];
    uint64_t p99s[SWEEP_MAX_RUNS];
    memcpy(p99s, q[1], sizeof(uint64_t) * (size_t)runs);
    qsort(p99s, (size_t)runs, sizeof *p99s, cmp_u);
    r->p99_min = p99s[0], r->p99_max = p99s[runs - 1];
    r->p50 = med_u(q[0], runs), r->p99 = med_u(q[1], runs);
    r->p999 = med_u(q[2], runs), r->p9999 = med_u(q[3], runs);
    r->max = med_u(q[4], runs);
  }
  if (o->progress)
    fputs("\r\033[K", stderr);
  return 0;
}

static sweep_objective_t sort_obj;
static int cmp_rows(const void *a, const void *b) {
  const sweep_row_t *x = a, *y = b;
  int c = sort_obj == SWEEP_OBJ_P99 ? (x->p99 > y->p99) - (x->p99 < y->p99) : 0;
  if (c == 0)
    c = (x->mev_s < y->mev_s) - (x->mev_s > y->mev_s);
  if (c == 0 && sort_obj == SWEEP_OBJ_MEV_S)
    c = (x->p99 > y->p99) - (x->p99 < y->p99);
  return c ? c : (x->point > y->point) - (x->point < y->point);
}

void sweep_sort(sweep_row_t *rows, uint64_t n, sweep_objective_t obj) {
  sort_obj = obj;
  qsort(rows, (size_t)n, sizeof *rows, cmp_rows);
}

double sweep_spread_pct(double lo, double hi, double median) {
  return median > 0 ? (hi - lo) / median * 100.0 : 0.0;
}

/* -------------------------------------------------------------- output */

static const char *obj_name(sweep_objective_t o) {
  return o == SWEEP_OBJ_P99 ? "p99" : "mev_s";
}

static void base_knobs(const sweep_opts_t *o, char *buf, size_t size) {
  size_t off = 0;
  buf[0] = '\0';
  for (int k = 0; k < SWEEP_N_KNOBS && off < size; k++) {
    char v[32];
    sweep_value_str((sweep_knob_t)k, o->base[k], v, sizeof v);
    off += (size_t)snprintf(buf + off, size - off, "%s%s=%s", k ? " " : "", knob_info[k].name, v);
  }
}

/* The record as "# key: value" lines. */
static void comment_header(FILE *f, const machine_t *m, const sweep_grid_t *g,
                           const sweep_opts_t *o) {
  char text[1024], knobs[512];
  machine_text(m, text, sizeof text);
  fprintf(f, "# fe_bench sweep: scenario %s, %" PRIu64 " points x %d runs (medians), "
             "sorted by %s (%s is better)\n",
          o->scenario, g->points, o->runs, obj_name(o->objective),
          o->objective == SWEEP_OBJ_P99 ? "lower" : "higher");
  for (char *s = text, *e; *s; s = e + 1) {
    e = strchr(s, '\n');
    fprintf(f, "# %.*s\n", (int)(e - s), s);
  }
  base_knobs(o, knobs, sizeof knobs);
  fprintf(f, "# knobs not swept: %s\n", knobs);
}

static void fmt_ns(char *buf, size_t size, const sweep_row_t *r, uint64_t v) {
  if (r->has_lat)
    snprintf(buf, size, "%" PRIu64, v);
  else
    snprintf(buf, size, "-");
}

static void print_table(FILE *f, const machine_t *m, const sweep_grid_t *g,
                        const sweep_opts_t *o, const sweep_row_t *rows, uint64_t n) {
  comment_header(f, m, g, o);
  int w[SWEEP_N_KNOBS];
  fprintf(f, "%4s", "rank");
  for (uint32_t a = 0; a < g->n_axes; a++) {
    const char *name = knob_info[g->axis[a].knob].name;
    w[a] = (int)strlen(name) > 7 ? (int)strlen(name) : 7;
    fprintf(f, " %*s", w[a], name);
  }
  fprintf(f, " %9s %7s %9s %9s %9s %7s\n", "mev_s", "mev_±%", "p50_ns", "p99_ns",
          "p999_ns", "p99_±%");
  for (uint64_t i = 0; i < n; i++) {
    const sweep_row_t *r = &rows[i];
    fprintf(f, "%4" PRIu64, i + 1);
    for (uint32_t a = 0; a < g->n_axes; a++) {
      char v[32];
      sweep_value_str(g->axis[a].knob, r->knobs[g->axis[a].knob], v, sizeof v);
      fprintf(f, " %*s", w[a], v);
    }
    char p50[24], p99[24], p999[24], sp[24];
    fmt_ns(p50, sizeof p50, r, r->p50);
    fmt_ns(p99, sizeof p99, r, r->p99);
    fmt_ns(p999, sizeof p999, r, r->p999);
    if (r->has_lat)
      snprintf(sp, sizeof sp, "%.1f",
               sweep_spread_pct((double)r->p99_min, (double)r->p99_max, (double)r->p99));
    else
      snprintf(sp, sizeof sp, "-");
    fprintf(f, " %9.3f %7.1f %9s %9s %9s %7s\n", r->mev_s,
            sweep_spread_pct(r->mev_min, r->mev_max, r->mev_s), p50, p99, p999, sp);
  }
  fprintf(f, "# mev_s: millions of events per second; p50/p99/p999: ns; "
             "±%%: (max - min) / median over the runs\n");
}

static void print_csv(FILE *f, const machine_t *m, const sweep_grid_t *g,
                      const sweep_opts_t *o, const sweep_row_t *rows, uint64_t n) {
  comment_header(f, m, g, o);
  fprintf(f, "rank,scenario,label");
  for (int k = 0; k < SWEEP_N_KNOBS; k++)
    fprintf(f, ",%s", knob_info[k].name);
  fprintf(f, ",runs,mev_s,mev_s_min,mev_s_max,mev_s_spread_pct,p50_ns,p99_ns,"
             "p999_ns,p9999_ns,max_ns,p99_min_ns,p99_max_ns,p99_spread_pct,hgrm\n");
  for (uint64_t i = 0; i < n; i++) {
    const sweep_row_t *r = &rows[i];
    char label[256];
    sweep_label(g, r->knobs, " ", 1, label, sizeof label);
    fprintf(f, "%" PRIu64 ",%s,\"%s\"", i + 1, o->scenario, label);
    for (int k = 0; k < SWEEP_N_KNOBS; k++) {
      char v[32];
      sweep_value_str((sweep_knob_t)k, r->knobs[k], v, sizeof v);
      fprintf(f, ",%s", v);
    }
    fprintf(f, ",%d,%.4f,%.4f,%.4f,%.2f", r->runs, r->mev_s, r->mev_min, r->mev_max,
            sweep_spread_pct(r->mev_min, r->mev_max, r->mev_s));
    if (r->has_lat)
      fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
                 ",%" PRIu64 ",%.2f",
              r->p50, r->p99, r->p999, r->p9999, r->max, r->p99_min, r->p99_max,
              sweep_spread_pct((double)r->p99_min, (double)r->p99_max, (double)r->p99));
    else
      fprintf(f, ",,,,,,,,");
    fprintf(f, ",%s\n", r->hgrm);
  }
}

static void print_json(FILE *f, const machine_t *m, const sweep_grid_t *g,
                       const sweep_opts_t *o, const sweep_row_t *rows, uint64_t n) {
  fputs("{\"scenario\":", f);
  machine_json_str(f, o->scenario);
  fprintf(f, ",\"objective\":\"%s\",\"runs\":%d,\"points\":%" PRIu64 ",\"machine\":",
          obj_name(o->objective), o->runs, g->points);
  machine_json(m, f);
  fputs(",\"swept\":[", f);
  for (uint32_t a = 0; a < g->n_axes; a++)
    fprintf(f, "%s\"%s\"", a ? "," : "", knob_info[g->axis[a].knob].name);
  fputs("],\"rows\":[", f);
  for (uint64_t i = 0; i < n; i++) {
    const sweep_row_t *r = &rows[i];
    char label[256];
    sweep_label(g, r->knobs, " ", 1, label, sizeof label);
    fprintf(f, "%s\n{\"rank\":%" PRIu64 ",\"label\":", i ? "," : "", i + 1);
    machine_json_str(f, label);
    fputs(",\"knobs\":{", f);
    for (int k = 0; k < SWEEP_N_KNOBS; k++) {
      char v[32];
      sweep_value_str((sweep_knob_t)k, r->knobs[k], v, sizeof v);
      if (knob_info[k].kind == K_NUM || knob_info[k].kind == K_POW2)
        fprintf(f, "%s\"%s\":%s", k ? "," : "", knob_info[k].name, v);
      else
        fprintf(f, "%s\"%s\":\"%s\"", k ? "," : "", knob_info[k].name, v);
    }
    fprintf(f, "},\"runs\":%d,\"mev_s\":%.4f,\"mev_s_min\":%.4f,\"mev_s_max\":%.4f,"
               "\"mev_s_spread_pct\":%.2f",
            r->runs, r->mev_s, r->mev_min, r->mev_max,
            sweep_spread_pct(r->mev_min, r->mev_max, r->mev_s));
    if (r->has_lat)
      fprintf(f, ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
                 ",\"p9999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"p99_min_ns\":%" PRIu64
                 ",\"p99_max_ns\":%" PRIu64 ",\"p99_spread_pct\":%.2f",
              r->p50, r->p99, r->p999, r->p9999, r->max, r->p99_min, r->p99_max,
              sweep_spread_pct((double)r->p99_min, (double)r->p99_max, (double)r->p99));
    if (r->hgrm[0]) {
      fputs(",\"hgrm\":", f);
      machine_json_str(f, r->hgrm);
    }
    fputc('}', f);
  }
  fputs("\n]}\n", f);
}

int sweep_print(FILE *f, sweep_format_t fmt, const machine_t *m,
                const sweep_grid_t *g, const sweep_opts_t *o,
                const sweep_row_t *rows, uint64_t n) {
  if (f == NULL || m == NULL || g == NULL || o == NULL || (rows == NULL && n))
    return -1;
  if (fmt == SWEEP_CSV)
    print_csv(f, m, g, o, rows, n);
  else if (fmt == SWEEP_JSON)
    print_json(f, m, g, o, rows, n);
  else
    print_table(f, m, g, o, rows, n);
  return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
