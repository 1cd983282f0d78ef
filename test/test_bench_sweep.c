/* fe_bench's tuning workflow (bench/sweep.c, bench/hgrm.c,
 * bench/machine.c, bench/plot.sh): the sweep grid parser, the runner's
 * medians, spreads and outputs, .hgrm files byte for byte against
 * HdrHistogram Java's and round trips against fe_hist's own percentiles,
 * the machine record, and `make bench-plot`.
 *
 * FE_SRCDIR (from the Makefile) is the source tree, for the fixtures under
 * test/fixtures/ and for running make bench-plot. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <finevent/bus.h>
#include <finevent/hist.h>

#include "internal.h"
#include "../bench/hgrm.h"
#include "../bench/machine.h"
#include "../bench/sweep.h"

#ifndef FE_SRCDIR
#define FE_SRCDIR "."
#endif
#define FIX FE_SRCDIR "/test/fixtures/"

/* ------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  do {
    if (n + 4096 > cap) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc(buf, cap + 1);
      assert_non_null(buf);
    }
    got = fread(buf + n, 1, 4096, f);
    n += got;
  } while (got > 0);
  fclose(f);
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

/* What f wrote, through a memstream. */
typedef struct mem {
  char *buf;
  size_t len;
  FILE *f;
} mem_t;
static void mem_open(mem_t *m) {
  m->buf = NULL, m->len = 0;
  m->f = open_memstream(&m->buf, &m->len);
  assert_non_null(m->f);
}
static char *mem_close(mem_t *m) {
  fclose(m->f);
  return m->buf;
}

static void parse_fails(const char *spec, const char *want) {
  sweep_grid_t g;
  char err[256] = "";
  int rc = sweep_parse(spec, &g, err, sizeof err);
  if (rc != -1 || strstr(err, want) == NULL)
    fail_msg("grid '%s': rc %d, message '%s', want it to name '%s'", spec, rc, err, want);
}

/* ------------------------------------------------------- grid parser */

static void test_parse_issue_grid(void **state) {
  (void)state;
  sweep_grid_t g;
  char err[256];
  assert_int_equal(sweep_parse("ring=4096,65536;batch=16,256;wait=spin,yield,park",
                               &g, err, sizeof err), 0);
  assert_int_equal(g.n_axes, 3);
  assert_int_equal(g.points, 12);
  assert_int_equal(g.axis[0].knob, SWEEP_RING);
  assert_int_equal(g.axis[0].n, 2);
  assert_int_equal(g.axis[0].v[0], 4096);
  assert_int_equal(g.axis[0].v[1], 65536);
  assert_int_equal(g.axis[1].knob, SWEEP_BATCH);
  assert_int_equal(g.axis[1].v[1], 256);
  assert_int_equal(g.axis[2].knob, SWEEP_WAIT);
  assert_int_equal(g.axis[2].v[0], FE_WAIT_SPIN);
  assert_int_equal(g.axis[2].v[1], FE_WAIT_YIELD);
  assert_int_equal(g.axis[2].v[2], FE_WAIT_PARK);
}

static void test_parse_every_knob(void **state) {
  (void)state;
  sweep_grid_t g;
  char err[256];
  assert_int_equal(sweep_parse(" ring = 2 , 1073741824 ; batch=1;wait=park;spin=0,4294967295;"
                               "yields=7;catchup=0;pin=on,off;claim=1,65536;handler=event,batch;"
                               "fuse=off,on;rate=1,1000000000;events=5 ;",
                               &g, err, sizeof err), 0);
  assert_int_equal(g.n_axes, SWEEP_N_KNOBS);
  assert_int_equal(g.points, 2 * 2 * 2 * 2 * 2 * 2 * 2);
  for (uint32_t a = 0; a < g.n_axes; a++)
    assert_int_equal(g.axis[a].knob, (sweep_knob_t)a);
  assert_int_equal(g.axis[SWEEP_RING].v[1], UINT64_C(1) << 30);
  assert_int_equal(g.axis[SWEEP_SPIN].v[1], UINT32_MAX);
  assert_int_equal(g.axis[SWEEP_PIN].v[0], 1);
  assert_int_equal(g.axis[SWEEP_PIN].v[1], 0);
  assert_int_equal(g.axis[SWEEP_HANDLER].v[1], 1);
  assert_int_equal(g.axis[SWEEP_EVENTS].v[0], 5);
  /* the other spellings of pin */
  assert_int_equal(sweep_parse("pin=yes,0", &g, err, sizeof err), 0);
  assert_int_equal(g.axis[0].v[0], 1);
  assert_int_equal(g.axis[0].v[1], 0);
}

static void test_parse_refuses_naming_the_bad_part(void **state) {
  (void)state;
  parse_fails("", "empty knob");
  parse_fails("ring=4096;;batch=16", "empty knob");
  parse_fails("rnig=4096", "unknown knob 'rnig'");
  parse_fails("rnig=4096", "knobs: ring, batch, wait");
  parse_fails("ring", "'ring' has no '='");
  parse_fails("ring=4096;batch16", "'batch16' has no '='");
  parse_fails("ring=", "ring: empty value");
  parse_fails("ring=4096,,65536", "ring: empty value in 'ring=4096,,65536'");
  parse_fails("ring=4000", "ring: '4000' is not a power of two");
  parse_fails("ring=1", "ring: '1' is not a power of two in 2..1073741824");
  parse_fails("ring=2147483648", "ring: '2147483648'");
  parse_fails("batch=0", "batch: '0' is not an integer in 1..");
  parse_fails("batch=-1", "batch: '-1'");
  parse_fails("batch=16x", "batch: '16x'");
  parse_fails("batch= 1 6", "batch: '1 6'");
  parse_fails("claim=65537", "claim: '65537' is not an integer in 1..65536");
  parse_fails("spin=4294967296", "spin: '4294967296'");
  parse_fails("rate=0", "rate: '0'");
  parse_fails("events=0", "events: '0'");
  parse_fails("wait=spin,fast", "wait: 'fast' is not spin, yield or park");
  parse_fails("pin=maybe", "pin: 'maybe' is not on or off");
  parse_fails("handler=lambda", "handler: 'lambda' is not event or batch");
  parse_fails("ring=4096;ring=8192", "knob 'ring' given twice");
  parse_fails("batch=16,256,16", "batch: value '16' repeated");
  parse_fails("wait=spin,spin", "wait: value 'spin' repeated");
  char many[512] = "batch=1";
  for (int i = 2; i <= SWEEP_MAX_VALUES + 1; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), ",%d", i);
  parse_fails(many, "batch: more than 32 values");
  parse_fails("batch=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16;spin=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16;"
              "yields=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
              "more than 4096 points (at 'yields=");
  /* NULL arguments: refused, not a crash */
  sweep_grid_t g;
  char err[64];
  assert_int_equal(sweep_parse(NULL, &g, err, sizeof err), -1);
  assert_non_null(strstr(err, "NULL"));
  assert_int_equal(sweep_parse("ring=4096", NULL, NULL, 0), -1);
  uint64_t v;
  assert_int_equal(sweep_value_parse(SWEEP_N_KNOBS, "1", &v, NULL, 0), -1);
  assert_int_equal(sweep_value_parse(SWEEP_RING, NULL, &v, NULL, 0), -1);
  assert_null(sweep_knob_name(SWEEP_N_KNOBS));
  assert_string_equal(sweep_knob_name(SWEEP_YIELDS), "yields");
}

static void test_points_and_labels(void **state) {
  (void)state;
  sweep_grid_t g;
  assert_int_equal(sweep_parse("ring=4096,65536;batch=16,256;wait=spin,yield,park", &g, NULL, 0), 0);
  uint64_t seen[12][SWEEP_N_KNOBS];
  for (uint64_t i = 0; i < g.points; i++) {
    uint64_t k[SWEEP_N_KNOBS] = {0};
    k[SWEEP_CLAIM] = 77; /* not swept: left alone */
    sweep_point(&g, i, k);
    assert_int_equal(k[SWEEP_CLAIM], 77);
    memcpy(seen[i], k, sizeof k);
    for (uint64_t j = 0; j < i; j++)
      assert_memory_not_equal(seen[j], k, sizeof k);
  }
  /* the first knob varies slowest, the last fastest */
  assert_int_equal(seen[0][SWEEP_RING], 4096);
  assert_int_equal(seen[5][SWEEP_RING], 4096);
  assert_int_equal(seen[6][SWEEP_RING], 65536);
  assert_int_equal(seen[0][SWEEP_WAIT], FE_WAIT_SPIN);
  assert_int_equal(seen[1][SWEEP_WAIT], FE_WAIT_YIELD);
  assert_int_equal(seen[3][SWEEP_BATCH], 256);
  char l[128];
  sweep_label(&g, seen[7], " ", 1, l, sizeof l);
  assert_string_equal(l, "ring=65536 batch=16 wait=yield");
  sweep_label(&g, seen[7], "_", 0, l, sizeof l);
  assert_string_equal(l, "ring65536_batch16_waityield");
  char v[16];
  sweep_value_str(SWEEP_PIN, 1, v, sizeof v);
  assert_string_equal(v, "on");
  sweep_value_str(SWEEP_HANDLER, 1, v, sizeof v);
  assert_string_equal(v, "batch");
  sweep_value_str(SWEEP_WAIT, 0, v, sizeof v);
  assert_string_equal(v, "default");
}

/* ------------------------------------------------------------ runner */

/* Fake scenario: throughput and p99 depend on the knobs and the run, so the
 * medians, spreads and the order are known. */
static int fake_calls;
static int fake_run(const uint64_t k[SWEEP_N_KNOBS], int run, int runs,
                    sweep_sample_t *out, void *user) {
  (void)runs;
  fake_calls++;
  int *stop_after = user;
  if (stop_after && fake_calls > *stop_after)
    return 7;
  double base = (double)k[SWEEP_BATCH]; /* mev_s grows with batch */
  out->mev_s = base + run;              /* runs: base, base+1, base+2 */
  out->has_lat = 1;
  out->p50 = 100;
  out->p99 = 1000 * k[SWEEP_BATCH] + (uint64_t)run * 10;
  out->p999 = 2 * out->p99;
  out->p9999 = 3 * out->p99;
  out->max = 4 * out->p99;
  return 0;
}

static void make_opts(sweep_opts_t *o, sweep_objective_t obj) {
  memset(o, 0, sizeof *o);
  o->scenario = "lat_fake";
  o->runs = 3;
  o->objective = obj;
  o->base[SWEEP_RING] = 65536;
  o->base[SWEEP_BATCH] = 256;
  o->base[SWEEP_WAIT] = FE_WAIT_YIELD;
  o->base[SWEEP_SPIN] = 200;
  o->base[SWEEP_YIELDS] = 50;
  o->base[SWEEP_CATCHUP] = 64;
  o->base[SWEEP_CLAIM] = 1;
  o->base[SWEEP_RATE] = 100000;
  o->base[SWEEP_EVENTS] = 1000;
}

static void test_run_medians_spread_and_order(void **state) {
  (void)state;
  sweep_grid_t g;
  assert_int_equal(sweep_parse("batch=16,64,4", &g, NULL, 0), 0);
  sweep_opts_t o;
  make_opts(&o, SWEEP_OBJ_MEV_S);
  sweep_row_t rows[3];
  fake_calls = 0;
  assert_int_equal(sweep_run(&g, &o, fake_run, NULL, rows), 0);
  assert_int_equal(fake_calls, 9);
  assert_int_equal(rows[0].knobs[SWEEP_BATCH], 16);
  assert_int_equal(rows[0].knobs[SWEEP_RING], 65536); /* base knobs carried */
  assert_true(rows[0].mev_s == 17.0);
  assert_true(rows[0].mev_min == 16.0 && rows[0].mev_max == 18.0);
  assert_int_equal(rows[0].p99, 16010);
  assert_int_equal(rows[0].p99_min, 16000);
  assert_int_equal(rows[0].p99_max, 16020);
  assert_int_equal(rows[0].p999, 32020);
  assert_true(fabs(sweep_spread_pct(16, 18, 17) - 200.0 / 17) < 1e-9);
  sweep_sort(rows, 3, SWEEP_OBJ_MEV_S); /* highest throughput first */
  assert_int_equal(rows[0].knobs[SWEEP_BATCH], 64);
  assert_int_equal(rows[2].knobs[SWEEP_BATCH], 4);
  sweep_sort(rows, 3, SWEEP_OBJ_P99); /* lowest p99 first */
  assert_int_equal(rows[0].knobs[SWEEP_BATCH], 4);
  assert_int_equal(rows[2].knobs[SWEEP_BATCH], 64);
  /* a failing run stops the sweep with its code */
  int stop = 4;
  fake_calls = 0;
  assert_int_equal(sweep_run(&g, &o, fake_run, &stop, rows), 7);
}

static void test_outputs_carry_record_and_knobs(void **state) {
  (void)state;
  sweep_grid_t g;
  assert_int_equal(sweep_parse("batch=16,64;wait=spin,park", &g, NULL, 0), 0);
  sweep_opts_t o;
  make_opts(&o, SWEEP_OBJ_P99);
  sweep_row_t rows[4];
  assert_int_equal(sweep_run(&g, &o, fake_run, NULL, rows), 0);
  sweep_sort(rows, 4, o.objective);
  machine_t m;
  machine_probe(&m, FIX "machine/yes");
  const char *must[] = {"cpu: Test CPU X-1 @ 3.00GHz", "cores: ", "kernel: ",
                        "clocksource: tsc", "tsc_invariant: yes", "version: ",
                        "commit: ", "spin=200", "yields=50", "catchup=64", "claim=1", "rate=100000"};
  for (int fmt = SWEEP_TABLE; fmt <= SWEEP_JSON; fmt++) {
    mem_t mm;
    mem_open(&mm);
    assert_int_equal(sweep_print(mm.f, (sweep_format_t)fmt, &m, &g, &o, rows, 4), 0);
    char *s = mem_close(&mm);
    if (fmt != SWEEP_JSON)
      for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (strstr(s, must[i]) == NULL)
          fail_msg("format %d lacks '%s':\n%s", fmt, must[i], s);
    if (fmt == SWEEP_TABLE) {
      /* best first: batch 16 (p99 16010) before batch 64 */
      char *a = strstr(s, "\n   1 "), *b = strstr(s, "\n   3 ");
      assert_non_null(a);
      assert_non_null(b);
      assert_non_null(strstr(a, "16"));
      assert_true(strstr(a, "16") < b);
      assert_non_null(strstr(s, "sorted by p99 (lower is better)"));
    } else if (fmt == SWEEP_CSV) {
      int rows_seen = 0;
      for (char *p = s; (p = strstr(p, "\n")) != NULL; p++)
        rows_seen += p[1] >= '1' && p[1] <= '9';
      assert_int_equal(rows_seen, 4);
      assert_non_null(strstr(s, "rank,scenario,label,ring,batch,wait,spin,yields,catchup,pin,claim,"
                                "handler,fuse,rate,events,runs,mev_s"));
      assert_non_null(strstr(s, "1,lat_fake,\"batch=16 wait=spin\",65536,16,spin,200,50,64,off,1,"
                                "event,off,100000,1000,3,17.0000,16.0000,18.0000,11.76,100,16010,"));
    } else {
      assert_non_null(strstr(s, "\"machine\":{\"cpu\":\"Test CPU X-1 @ 3.00GHz\""));
      assert_non_null(strstr(s, "\"tsc_invariant\":\"yes\""));
      assert_non_null(strstr(s, "\"swept\":[\"batch\",\"wait\"]"));
      assert_non_null(strstr(s, "\"knobs\":{\"ring\":65536,\"batch\":16,\"wait\":\"spin\","
                                "\"spin\":200,\"yields\":50,\"catchup\":64,\"pin\":\"off\",\"claim\":1,"
                                "\"handler\":\"event\",\"fuse\":\"off\",\"rate\":100000,\"events\":1000}"));
      assert_non_null(strstr(s, "\"p99_ns\":16010"));
      /* braces balance */
      int depth = 0;
      for (char *p = s; *p; p++)
        depth += (*p == '{') - (*p == '}');
      assert_int_equal(depth, 0);
    }
    free(s);
  }
  assert_int_equal(sweep_print(NULL, SWEEP_CSV, &m, &g, &o, rows, 4), -1);
  assert_int_equal(sweep_print(stdout, SWEEP_CSV, NULL, &g, &o, rows, 4), -1);
}

/* ------------------------------------------------------------- .hgrm */

/* The sample set of test/fixtures/HgrmFixture.java (the same LCG). */
static fe_hist_t *fixture_hist(void) {
  fe_hist_config_t c;
  fe_hist_config_init(&c);
  fe_hist_t *h;
  assert_int_equal(fe_hist_create(&c, &h, NULL), 0);
  uint64_t x = 42;
  for (int i = 0; i < 100000; i++) {
    x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    uint64_t r = x >> 33;
    uint64_t v = (r % 16 != 0) ? 150 + (r >> 4) % 900
                               : 1 + (r >> 4) % 1000 * (UINT64_C(1) << ((r >> 14) % 14));
    fe_hist_record(h, v);
  }
  return h;
}

static void test_hgrm_matches_java_byte_for_byte(void **state) {
  (void)state;
  fe_hist_t *h = fixture_hist();
  const struct {
    const char *file;
    double ratio;
  } cases[] = {{FIX "hgrm_java.hgrm", 1.0}, {FIX "hgrm_java_us.hgrm", 1000.0}};
  for (size_t i = 0; i < 2; i++) {
    char *want = slurp(cases[i].file, NULL);
    assert_non_null(want);
    mem_t m;
    mem_open(&m);
    assert_int_equal(hgrm_write(m.f, h, HGRM_TICKS_DEFAULT, cases[i].ratio, NULL), 0);
    char *got = mem_close(&m);
    if (strcmp(got, want) != 0) {
      size_t k = 0;
      while (got[k] == want[k])
        k++;
      fail_msg("%s differs at byte %zu: got '%.40s' want '%.40s'", cases[i].file, k,
               got + k, want + k);
    }
    free(got);
    free(want);
  }
  fe_hist_destroy(h);
}

/* The first bucket whose cumulative share reaches fraction q: what the
 * histogram itself says the q-quantile is (as its highest value). */
static void check_line(const fe_hist_t *h, const hgrm_line_t *l, uint64_t total) {
  uint64_t v = (uint64_t)llround(l->value);
  assert_int_equal(fe_hist_highest_equiv(h, v), v); /* a bucket's top value */
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  uint64_t before = 0;
  while (fe_hist_iter_next(&it) && it.highest < v)
    before = it.cumulative;
  assert_int_equal(it.highest, v);
  assert_int_equal(it.cumulative, l->total); /* TotalCount column */
  /* v reaches the level and the bucket before it does not (the printed
   * level is rounded to 12 decimals). */
  assert_true((double)it.cumulative / (double)total >= l->pct - 1e-12);
  assert_true(l->pct == 0 || (double)before / (double)total < l->pct + 1e-12);
  /* and fe_hist_percentile() agrees wherever the level is not within
   * rounding of a bucket boundary */
  double p = l->pct * 100.0;
  uint64_t a = fe_hist_highest_equiv(h, fe_hist_percentile(h, p * (1 - 1e-11)));
  uint64_t b = fe_hist_highest_equiv(h, fe_hist_percentile(h, p * (1 + 1e-11)));
  if (a == b && l->pct < 1.0)
    assert_int_equal(a, v);
}

static void test_hgrm_round_trip(void **state) {
  (void)state;
  fe_hist_config_t c;
  fe_hist_config_init(&c);
  fe_hist_t *h;
  assert_int_equal(fe_hist_create(&c, &h, NULL), 0);
  uint64_t s = 7;
  for (int i = 0; i < 200000; i++) { /* log-uniform 1 ns .. 1 s */
    uint64_t z = fe__splitmix64(&s);
    fe_hist_record(h, (uint64_t)exp((double)(z % 1000000) / 1000000.0 * log(1e9)));
  }
  char path[] = "/tmp/fe-hgrm-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  assert_int_equal(hgrm_write(f, h, HGRM_TICKS_DEFAULT, 1.0, "scenario: test\nknobs: a=1"), 0);
  rewind(f);
  hgrm_t g;
  char err[256];
  assert_int_equal(hgrm_parse(f, &g, err, sizeof err), 0);
  fclose(f);
  unlink(path);
  uint64_t total = fe_hist_count(h);
  assert_true(g.n > 50);
  assert_true(g.lines[0].pct == 0.0);
  assert_true(g.lines[g.n - 1].pct == 1.0);
  assert_int_equal(g.lines[g.n - 1].total, total);
  for (size_t i = 0; i < g.n; i++)
    check_line(h, &g.lines[i], total);
  /* the standard percentiles, read off the file as a plotter would (50%
   * and 90% are rows of their own with 5 ticks per half distance) */
  const double ps[] = {50, 90, 99, 99.9, 99.99};
  for (size_t i = 0; i < 5; i++) {
    size_t k = 0;
    while (g.lines[k].pct * 100.0 < ps[i] - 1e-9)
      k++;
    /* the rows around p bracket the histogram's own p-th percentile */
    uint64_t want = fe_hist_highest_equiv(h, fe_hist_percentile(h, ps[i]));
    assert_true(k > 0);
    assert_true((uint64_t)g.lines[k - 1].value <= want);
    assert_true((uint64_t)g.lines[k].value >= want);
    if (g.lines[k].pct * 100.0 - ps[i] < 1e-9) /* the level itself is a row */
      assert_int_equal((uint64_t)g.lines[k].value, want);
  }
  assert_int_equal(g.total, total);
  assert_true(g.max == (double)fe_hist_highest_equiv(h, fe_hist_max(h)));
  assert_true(fabs(g.mean - fe_hist_mean(h)) <= fe_hist_mean(h) * 1e-3);
  assert_true(g.stddev > 0);
  assert_int_equal(g.buckets, 32);
  assert_int_equal(g.sub_buckets, 2048);
  hgrm_free(&g);
  hgrm_free(NULL);
  fe_hist_destroy(h);
}

static void test_hgrm_parses_java_and_fe_bench_files(void **state) {
  (void)state;
  const char *files[] = {FIX "disruptor_lat_1c.hgrm", FIX "fe_lat_1p1c_100k.hgrm",
                         FIX "hgrm_java_us.hgrm"};
  for (size_t i = 0; i < 3; i++) {
    FILE *f = fopen(files[i], "r");
    assert_non_null(f);
    hgrm_t g;
    char err[256] = "";
    if (hgrm_parse(f, &g, err, sizeof err) != 0)
      fail_msg("%s: %s", files[i], err);
    fclose(f);
    assert_true(g.n > 10);
    assert_int_equal(g.lines[g.n - 1].total, g.total);
    assert_true(g.lines[g.n - 1].value == g.max);
    hgrm_free(&g);
  }
}

static void parse_text_fails(const char *text, const char *want) {
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  assert_non_null(f);
  hgrm_t g;
  char err[256] = "";
  int rc = hgrm_parse(f, &g, err, sizeof err);
  fclose(f);
  if (rc != -1 || strstr(err, want) == NULL)
    fail_msg("rc %d, message '%s', want '%s'", rc, err, want);
}

static void test_hgrm_parse_refuses_bad_files(void **state) {
  (void)state;
  const char *hdr = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
  const char *foot = "#[Mean    =        1.000, StdDeviation   =        0.000]\n"
                     "#[Max     =        1.000, Total count    =            1]\n"
                     "#[Buckets =           32, SubBuckets     =         2048]\n";
  char buf[1024];
  parse_text_fails("", "no 'Value Percentile TotalCount' header");
  parse_text_fails("   1.000 0.000000000000 1 1.00\n", "line 1: not a percentile-distribution line");
  snprintf(buf, sizeof buf, "%s       1.000 0.000000000000          1           1.00\n", hdr);
  parse_text_fails(buf, "missing the #[Mean/#[Max/#[Buckets footer");
  snprintf(buf, sizeof buf, "%s       1.000 0.000000000000          1           1.00\nbanana\n%s", hdr, foot);
  parse_text_fails(buf, "line 4: not a percentile-distribution line: 'banana'");
  snprintf(buf, sizeof buf, "%s       5.000 0.500000000000          2           2.00\n"
                            "       1.000 0.600000000000          3           2.50\n%s", hdr, foot);
  parse_text_fails(buf, "line 4: not ascending");
  snprintf(buf, sizeof buf, "%s       1.000 1.500000000000          1\n%s", hdr, foot);
  parse_text_fails(buf, "line 3");
  snprintf(buf, sizeof buf, "%s#[Mean = x]\n", hdr);
  parse_text_fails(buf, "line 3");
  /* the comment header is skipped; the smallest valid file parses */
  snprintf(buf, sizeof buf, "# cpu: x\n%s       1.000 1.000000000000          1\n%s", hdr, foot);
  FILE *f = fmemopen(buf, strlen(buf), "r");
  hgrm_t g;
  assert_int_equal(hgrm_parse(f, &g, NULL, 0), 0);
  fclose(f);
  assert_int_equal(g.n, 1);
  hgrm_free(&g);
  assert_int_equal(hgrm_parse(NULL, &g, NULL, 0), -1);
  /* the writer refuses what it cannot print */
  fe_hist_t *h = fixture_hist();
  assert_int_equal(hgrm_write(NULL, h, 5, 1.0, NULL), -1);
  assert_int_equal(hgrm_write(stdout, NULL, 5, 1.0, NULL), -1);
  assert_int_equal(hgrm_write(stdout, h, 0, 1.0, NULL), -1);
  assert_int_equal(hgrm_write(stdout, h, 5, 0.0, NULL), -1);
  fe_hist_destroy(h);
}

static void test_hgrm_empty_histogram(void **state) {
  (void)state;
  fe_hist_config_t c;
  fe_hist_config_init(&c);
  fe_hist_t *h;
  assert_int_equal(fe_hist_create(&c, &h, NULL), 0);
  mem_t m;
  mem_open(&m);
  assert_int_equal(hgrm_write(m.f, h, 5, 1.0, NULL), 0);
  char *s = mem_close(&m);
  assert_non_null(strstr(s, "Total count    =            0]"));
  assert_null(strstr(s, "0.000000000000")); /* no rows */
  free(s);
  fe_hist_destroy(h);
}

static void test_java_fixed_rounding(void **state) {
  (void)state;
  const struct {
    double v;
    int d;
    const char *want;
  } cases[] = {
      {0.0625, 3, "0.063"},     /* C's printf: 0.062 (half-even on the binary) */
      {1.005, 2, "1.01"},       /* binary 1.00499..., shortest "1.005": Java rounds up */
      {9.9995, 3, "10.000"},    /* carry through every digit */
      {0.0, 3, "0.000"},
      {368.0, 3, "368.000"},
      {-2.5, 0, "-3"},
      {0.999993133544921875, 12, "0.999993133545"},
      {145635.55555555556, 2, "145635.56"},
      {1e-5, 3, "0.000"},
      {0.0005, 3, "0.001"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[64];
    hgrm_java_fixed(buf, sizeof buf, cases[i].v, cases[i].d);
    if (strcmp(buf, cases[i].want) != 0)
      fail_msg("%.17g with %d decimals: got %s want %s", cases[i].v, cases[i].d, buf,
               cases[i].want);
  }
}

static void test_collector_merges_runs(void **state) {
  (void)state;
  char dir[] = "/tmp/fe-collect-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/x.hgrm", dir);
  assert_int_equal(hgrm_collect_write(path, NULL), 1); /* nothing yet: no file */
  assert_int_equal(access(path, F_OK), -1);
  fe_hist_t *a = fixture_hist(), *b = fixture_hist();
  hgrm_collect(a); /* off: ignored */
  hgrm_collect_enable(1);
  hgrm_collect(a);
  hgrm_collect(b);
  hgrm_collect(NULL);
  assert_int_equal(hgrm_collect_write(path, "scenario: lat_x"), 0);
  FILE *f = fopen(path, "r");
  hgrm_t g;
  assert_int_equal(hgrm_parse(f, &g, NULL, 0), 0);
  fclose(f);
  assert_int_equal(g.total, 200000);
  hgrm_free(&g);
  char *s = slurp(path, NULL);
  assert_true(strncmp(s, "# scenario: lat_x\n", 18) == 0);
  free(s);
  unlink(path);
  /* started over */
  assert_int_equal(hgrm_collect_write(path, NULL), 1);
  hgrm_collect(a);
  snprintf(path, sizeof path, "%s/no/such/dir.hgrm", dir);
  assert_int_equal(hgrm_collect_write(path, NULL), -1);
  hgrm_collect_enable(0);
  fe_hist_destroy(a);
  fe_hist_destroy(b);
  rmdir(dir);
}

/* ---------------------------------------------------------- machine */

static void test_machine_record(void **state) {
  (void)state;
  machine_t m;
  machine_probe(&m, FIX "machine/yes");
  assert_string_equal(m.cpu, "Test CPU X-1 @ 3.00GHz"); /* the first CPU's */
  assert_string_equal(m.clocksource, "tsc");
  assert_int_equal(m.tsc_invariant, 1);
  assert_true(m.cores >= 1);
  assert_true(strlen(m.kernel) > 0);
  assert_true(strlen(m.commit) > 0);
  assert_non_null(strchr(m.version, '.'));
  assert_int_equal(strlen(m.date), 20);
  machine_probe(&m, FIX "machine/no"); /* nonstop_tsc_x is not nonstop_tsc */
  assert_int_equal(m.tsc_invariant, 0);
  assert_string_equal(m.clocksource, "unknown");
  assert_string_equal(machine_tsc_str(&m), "no");
  machine_probe(&m, FIX "machine/none");
  assert_int_equal(m.tsc_invariant, -1);
  assert_string_equal(m.cpu, "unknown");
  assert_string_equal(machine_tsc_str(&m), "unknown");
  char text[1024];
  machine_text(&m, text, sizeof text);
  const char *keys[] = {"cpu: ", "cores: ", "kernel: ", "clocksource: ", "tsc_invariant: ",
                        "version: ", "commit: ", "date: "};
  for (size_t i = 0; i < 8; i++)
    assert_non_null(strstr(text, keys[i]));
  mem_t mm;
  mem_open(&mm);
  snprintf(m.cpu, sizeof m.cpu, "quote\" back\\ nl\n");
  machine_json(&m, mm.f);
  char *s = mem_close(&mm);
  assert_non_null(strstr(s, "\"cpu\":\"quote\\\" back\\\\ nl\\u000a\""));
  free(s);
  /* the real machine: whatever it is, every field is filled */
  machine_probe(&m, NULL);
  assert_true(m.cpu[0] && m.clocksource[0] && m.kernel[0]);
}

/* ------------------------------------------------------- bench-plot */

static int file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int)st.st_size : -1;
}

static void test_make_bench_plot(void **state) {
  (void)state;
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
    print_message("SKIPPED: gnuplot is not installed (Debian: apt-get install gnuplot-nox; "
                  "make test installs it)\n");
    skip();
  }
  char dir[] = "/tmp/fe-plot-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory -C '%s' bench-plot "
           "PLOT_HGRM='%s %s %s' PLOT_CSV='%s' PLOT_OUT='%s' >/dev/null",
           FE_SRCDIR, FIX "fe_lat_1p1c_100k.hgrm", FIX "disruptor_lat_1c.hgrm",
           FIX "hgrm_java.hgrm", FIX "sweep_bus_1p1c.csv", dir);
  assert_int_equal(system(cmd), 0);
  const char *outs[] = {"latency.svg", "latency.png", "throughput.svg", "throughput.png"};
  for (size_t i = 0; i < 4; i++) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, outs[i]);
    if (file_size(p) <= 1000)
      fail_msg("%s: size %d", p, file_size(p));
    char *s = slurp(p, NULL);
    if (strstr(outs[i], ".png"))
      assert_memory_equal(s, "\x89PNG\r\n", 6);
    else {
      assert_non_null(strstr(s, "<svg"));
      /* one line per file, named by it */
      if (i == 0) {
        assert_non_null(strstr(s, "disruptor_lat_1c"));
        assert_non_null(strstr(s, "fe_lat_1p1c_100k"));
      } else {
        assert_non_null(strstr(s, "batch=16 wait=yield"));
      }
    }
    free(s);
    unlink(p);
  }
  /* nothing to plot is an error, not an empty chart */
  snprintf(cmd, sizeof cmd,
           "env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory -C '%s' bench-plot "
           "PLOT_HGRM= PLOT_CSV= PLOT_OUT='%s' >/dev/null 2>&1", FE_SRCDIR, dir);
  assert_int_not_equal(system(cmd), 0);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_issue_grid),
      cmocka_unit_test(test_parse_every_knob),
      cmocka_unit_test(test_parse_refuses_naming_the_bad_part),
      cmocka_unit_test(test_points_and_labels),
      cmocka_unit_test(test_run_medians_spread_and_order),
      cmocka_unit_test(test_outputs_carry_record_and_knobs),
      cmocka_unit_test(test_hgrm_matches_java_byte_for_byte),
      cmocka_unit_test(test_hgrm_round_trip),
      cmocka_unit_test(test_hgrm_parses_java_and_fe_bench_files),
      cmocka_unit_test(test_hgrm_parse_refuses_bad_files),
      cmocka_unit_test(test_hgrm_empty_histogram),
      cmocka_unit_test(test_java_fixed_rounding),
      cmocka_unit_test(test_collector_merges_runs),
      cmocka_unit_test(test_machine_record),
      cmocka_unit_test(test_make_bench_plot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
