/* HdrHistogram percentile-distribution text: see hgrm.h.
 *
 * The walk reproduces HdrHistogram's PercentileIterator over fe_hist's
 * non-empty buckets: a reporting level starts at 0%, each bucket whose
 * cumulative share reaches the level is reported at that level (again and
 * again while it covers several levels), and the level then advances by
 * 100 / (ticks * 2^(floor(log2(100 / (100 - level))) + 1)) percent, so the
 * ticks halve with every halving of the distance to 100%.  Once the last
 * sample has been counted one more line reports the maximum at 100%.  The
 * arithmetic is Java's, in the same order and in doubles, so the printed
 * levels are the same to the last digit. */
#define _GNU_SOURCE
#include "hgrm.h"
#include "machine.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------- Java's %.Nf */

void hgrm_java_fixed(char *buf, size_t size, double v, int decimals) {
  if (size == 0)
    return;
  if (isnan(v) || isinf(v)) {
    snprintf(buf, size, "%s", isnan(v) ? "NaN" : v < 0 ? "-Infinity" : "Infinity");
    return;
  }
  /* Shortest digits that read back as v: d[0..nd) with v = 0.d * 10^exp. */
  char tmp[40], d[40];
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  snprintf(tmp, sizeof tmp, "%.*e", prec - 1, fabs(v));
  int nd = 0;
  char *p = tmp;
  for (; *p && *p != 'e'; p++)
    if (isdigit((unsigned char)*p))
      d[nd++] = *p;
  int exp = atoi(p + 1) + 1; /* digits scaled so the point precedes d[0] */
  if (v == 0)
    exp = 1;
  /* Integer part: d[0..exp), fraction: d[exp..).  Lay the number out as a
   * digit string with `decimals` places and round half-up on the first
   * dropped digit (Java's FormattedFloatingDecimal.applyPrecision). */
  char out[400];
  int len = 0, intlen = exp > 0 ? exp : 1;
  if (intlen + decimals + 2 > (int)sizeof out) {
    snprintf(buf, size, "%.*f", decimals, v);
    return;
  }
  for (int i = 0; i < intlen + decimals; i++) {
    int k = exp > 0 ? i : i - 1 + exp; /* index into d */
    out[len++] = k >= 0 && k < nd ? d[k] : '0';
  }
  int k = (exp > 0 ? intlen + decimals : decimals + exp); /* first dropped */
  if (k >= 0 && k < nd && d[k] >= '5') {
    int i = len - 1;
    while (i >= 0 && out[i] == '9')
      out[i--] = '0';
    if (i >= 0)
      out[i]++;
    else { /* carried past the first digit */
      memmove(out + 1, out, (size_t)len);
      out[0] = '1';
      len++;
      intlen++;
    }
  }
  int neg = signbit(v) && v != 0, w = 0;
  char *b = buf;
  size_t room = size;
#define PUT(c)                                                                 \
  do {                                                                         \
    if (room > 1) {                                                            \
      *b++ = (c);                                                              \
      room--;                                                                  \
    }                                                                          \
    w++;                                                                       \
  } while (0)
  if (neg)
    PUT('-');
  for (int i = 0; i < intlen; i++)
    PUT(out[i]);
  if (decimals > 0) {
    PUT('.');
    for (int i = intlen; i < len; i++)
      PUT(out[i]);
  }
#undef PUT
  *b = '\0';
  (void)w;
}

/* Right-aligns s in width (Java's %W.Nf pads with spaces). */
static int put_field(FILE *f, int width, double v, int decimals) {
  char s[64];
  hgrm_java_fixed(s, sizeof s, v, decimals);
  return fprintf(f, "%*s", width, s) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ writer */

/* HdrHistogram's bucket count and sub-bucket count for a configuration. */
static void hdr_geometry(const fe_hist_config_t *c, uint32_t *buckets,
                         uint32_t *sub) {
  uint64_t largest_single = 2;
  for (uint32_t i = 0; i < c->digits; i++)
    largest_single *= 10;
  int mag = (int)ceil(log((double)largest_single) / log(2.0));
  int half_mag = (mag > 1 ? mag : 1) - 1;
  uint64_t subc = UINT64_C(1) << (half_mag + 1);
  int unit_mag = 0;
  while ((UINT64_C(2) << unit_mag) <= c->lowest)
    unit_mag++;
  uint64_t smallest_untrackable = subc << unit_mag;
  uint32_t n = 1;
  while (smallest_untrackable <= c->highest) {
    if (smallest_untrackable > (uint64_t)INT64_MAX / 2) {
      n++;
      break;
    }
    smallest_untrackable <<= 1;
    n++;
  }
  *buckets = n;
  *sub = (uint32_t)subc;
}

static double median_equiv(const fe_hist_iter_t *it) {
  uint64_t size = it->highest - it->lowest + 1;
  return (double)(it->lowest + (size >> 1));
}

int hgrm_write(FILE *f, const fe_hist_t *h, int ticks, double ratio,
               const char *comment) {
  if (f == NULL || h == NULL || ticks < 1 || !(ratio > 0))
    return -1;
  fe_hist_config_t cfg;
  fe_hist_get_config(h, &cfg);
  int dg = (int)cfg.digits;
  int rc = 0;
  if (comment != NULL) {
    const char *s = comment;
    while (*s) {
      size_t n = strcspn(s, "\n");
      rc |= fprintf(f, "# %.*s\n", (int)n, s) < 0;
      s += n + (s[n] == '\n');
    }
  }
  rc |= fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile",
                "TotalCount", "1/(1-Percentile)") < 0;
  uint64_t total = fe_hist_count(h);
  fe_hist_iter_t it;
  fe_hist_iter_init(&it, h);
  double level = 0.0;
  int more = total > 0 && fe_hist_iter_next(&it);
  while (more) {
    double reached = (100.0 * (double)it.cumulative) / (double)total;
    int last = it.cumulative >= total;
    if (reached >= level) {
      rc |= put_field(f, 12, (double)it.highest / ratio, dg);
      rc |= put_field(f, 15, level / 100.0, 12);
      rc |= fprintf(f, " %10" PRIu64, it.cumulative) < 0;
      if (level != 100.0) {
        rc |= put_field(f, 15, 1 / (1.0 - (level / 100.0)), 2);
        rc |= fputc('\n', f) == EOF;
        long reporting_ticks =
            (long)ticks *
            (long)pow(2, (double)((long)(log(100.0 / (100.0 - level)) / log(2)) + 1));
        level += 100.0 / (double)reporting_ticks;
        if (last) /* Java's one extra step to 100% at the end */
          level = 100.0;
      } else {
        rc |= fputc('\n', f) == EOF;
        more = 0;
      }
    } else {
      more = fe_hist_iter_next(&it);
    }
  }
  /* Footer: mean and deviation from bucket medians, in Java's order. */
  double mean = 0, sd = 0;
  if (total > 0) {
    double sum = 0;
    fe_hist_iter_init(&it, h);
    while (fe_hist_iter_next(&it))
      sum += median_equiv(&it) * (double)it.count;
    mean = (sum * 1.0) / (double)total;
    double dev = 0;
    fe_hist_iter_init(&it, h);
    while (fe_hist_iter_next(&it)) {
      double x = (median_equiv(&it) * 1.0) - mean;
      dev += (x * x) * (double)it.count;
    }
    sd = sqrt(dev / (double)total);
  }
  uint64_t max = total ? fe_hist_highest_equiv(h, fe_hist_max(h)) : 0;
  uint32_t buckets, sub;
  hdr_geometry(&cfg, &buckets, &sub);
  rc |= fputs("#[Mean    = ", f) == EOF;
  rc |= put_field(f, 12, mean / ratio, dg);
  rc |= fputs(", StdDeviation   = ", f) == EOF;
  rc |= put_field(f, 12, sd / ratio, dg);
  rc |= fputs("]\n#[Max     = ", f) == EOF;
  rc |= put_field(f, 12, (double)max / ratio, dg);
  rc |= fprintf(f, ", Total count    = %12" PRIu64 "]\n", total) < 0;
  rc |= fprintf(f, "#[Buckets = %12" PRIu32 ", SubBuckets     = %12" PRIu32 "]\n",
                buckets, sub) < 0;
  return rc ? -1 : 0;
}

/* ------------------------------------------------------------ reader */


void hgrm_free(hgrm_t *g) {
  if (g == NULL)
    return;
  free(g->lines);
  memset(g, 0, sizeof *g);
}

int hgrm_parse(FILE *f, hgrm_t *out, char *err, size_t errlen) {
  if (f == NULL || out == NULL)
    return bench_errf(err, errlen, "hgrm_parse: NULL argument");
  memset(out, 0, sizeof *out);
  char line[512];
  size_t cap = 0, lineno = 0;
  int header = 0, footer = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    if (*s == '\n' || *s == '\0' || (s[0] == '#' && s[1] != '['))
      continue;
    if (strncmp(s, "Value", 5) == 0) {
      header = 1;
      continue;
    }
    if (s[0] == '#') {
      if (sscanf(s, "#[Mean = %lf, StdDeviation = %lf]", &out->mean,
                 &out->stddev) == 2)
        footer |= 1;
      else if (sscanf(s, "#[Max = %lf, Total count = %" SCNu64 "]", &out->max,
                      &out->total) == 2)
        footer |= 2;
      else if (sscanf(s, "#[Buckets = %" SCNu32 ", SubBuckets = %" SCNu32 "]",
                      &out->buckets, &out->sub_buckets) == 2)
        footer |= 4;
      else
        goto bad;
      continue;
    }
    if (!header || footer)
      goto bad;
    hgrm_line_t l;
    double inv;
    int got = sscanf(s, "%lf %lf %" SCNu64 " %lf", &l.value, &l.pct, &l.total, &inv);
    (void)inv;
    if (got < 3 || l.pct < 0 || l.pct > 1)
      goto bad;
    if (out->n > 0 && (l.pct < out->lines[out->n - 1].pct ||
                       l.total < out->lines[out->n - 1].total ||
                       l.value < out->lines[out->n - 1].value)) {
      hgrm_free(out);
      return bench_errf(err, errlen, "line %zu: not ascending", lineno);
    }
    if (out->n == cap) {
      cap = cap ? 2 * cap : 128;
      hgrm_line_t *nl = realloc(out->lines, cap * sizeof *nl);
      if (nl == NULL) {
        hgrm_free(out);
        return bench_errf(err, errlen, "out of memory");
      }
      out->lines = nl;
    }
    out->lines[out->n++] = l;
    continue;
  bad:
    hgrm_free(out);
    line[strcspn(line, "\n")] = '\0';
    return bench_errf(err, errlen, "line %zu: not a percentile-distribution line: '%.60s'",
                lineno, line);
  }
  if (!header) {
    hgrm_free(out);
    return bench_errf(err, errlen, "no 'Value Percentile TotalCount' header");
  }
  if (footer != 7) {
    hgrm_free(out);
    return bench_errf(err, errlen, "missing the #[Mean/#[Max/#[Buckets footer");
  }
  return 0;
}

/* --------------------------------------------------------- collector */

static int collect_on;
static fe_hist_t *collected;
static int collect_failed;

void hgrm_collect_enable(int on) { collect_on = on; }

void hgrm_collect(const fe_hist_t *h) {
  if (!collect_on || h == NULL)
    return;
  if (collected == NULL) {
    fe_hist_config_t c;
    if (fe_hist_get_config(h, &c) != 0 || fe_hist_create(&c, &collected, NULL) != 0) {
      collect_failed = 1;
      return;
    }
  }
  if (fe_hist_merge(collected, h) != 0)
    collect_failed = 1;
}

int hgrm_collect_write(const char *path, const char *comment) {
  int failed = collect_failed;
  collect_failed = 0;
  if (collected == NULL || fe_hist_count(collected) == 0)
    return failed ? -1 : 1;
  FILE *f = failed ? NULL : fopen(path, "w");
  int rc = f == NULL ? -1 : hgrm_write(f, collected, HGRM_TICKS_DEFAULT, 1.0, comment);
  if (f != NULL && fclose(f) != 0)
    rc = -1;
  fe_hist_destroy(collected);
  collected = NULL;
  return rc;
}
