/*
 * bench/hgrm.h: HdrHistogram's percentile-distribution text (".hgrm").
 *
 * hgrm_write() prints an fe_hist_t the way HdrHistogram Java's
 * AbstractHistogram.outputPercentileDistribution(stream, ticks, ratio)
 * prints a Histogram holding the same samples: the column header, one line
 * per percentile tick (Value, Percentile, TotalCount, 1/(1-Percentile)), the
 * 100% line without its last column, and the three "#[...]" footer lines
 * (Mean, StdDeviation, Max, Total count, Buckets, SubBuckets).  Byte for
 * byte, including Java's rounding of %f (half-up on the shortest decimal
 * form of the double), so HdrHistogram's plotters and scripts written for
 * Java's output read it unchanged.  fe_hist's buckets are HdrHistogram's
 * for the same lowest/highest/digits, so the rows are the ones Java would
 * print; the footer's mean and deviation are computed, as Java does, from
 * each bucket's median value (fe_hist_mean() is the exact mean).
 *
 * Optional "#" comment lines may precede the header (the reproducibility
 * record): HdrHistogram's plotters skip lines that are not four numbers.
 *
 * hgrm_parse() reads such a file back (Java's or ours).
 *
 * Not thread-safe for the same FILE or hgrm_t; otherwise reentrant.
 */
#ifndef FE_BENCH_HGRM_H
#define FE_BENCH_HGRM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <finevent/hist.h>

/* HdrHistogram's default percentile ticks per half distance. */
#define HGRM_TICKS_DEFAULT 5

typedef struct hgrm_line {
  double value;   /* column 1: value / unit ratio */
  double pct;     /* column 2: percentile as a fraction, 0..1 */
  uint64_t total; /* column 3: samples at or below value */
} hgrm_line_t;

typedef struct hgrm {
  hgrm_line_t *lines; /* owned; hgrm_free() releases */
  size_t n;
  double mean, stddev, max; /* footer, in output units */
  uint64_t total;
  uint32_t buckets, sub_buckets;
} hgrm_t;

/* Writes h's percentile distribution to f.
 *   comment  may be NULL: text written first, each line prefixed "# ".
 *   ticks    percentile ticks per half distance (HdrHistogram's default 5).
 *   ratio    values are divided by it (1.0: the histogram's unit; 1000.0:
 *            ns recorded, us printed).
 * Returns 0, -1 (f or h NULL, ticks < 1, ratio <= 0, or a write failed;
 * part of the output may then be written). */
int hgrm_write(FILE *f, const fe_hist_t *h, int ticks, double ratio,
               const char *comment);

/* Parses a percentile distribution from f into *out (which hgrm_free()
 * must release on success; on failure nothing needs freeing).  Comment
 * lines ("#" not followed by "[") and blank lines are skipped.
 * Returns 0, or -1 with a message in err (size errlen) naming the line. */
int hgrm_parse(FILE *f, hgrm_t *out, char *err, size_t errlen);

void hgrm_free(hgrm_t *g);

/* Writes v with `decimals` digits after the point as Java's Formatter does
 * for %.Nf (HALF_UP on the shortest decimal that reads back as v).  buf
 * needs room for the integer digits + decimals + 3.  Exposed for tests. */
void hgrm_java_fixed(char *buf, size_t size, double v, int decimals);

/* The collector: fe_bench's latency scenarios hand each run's histogram
 * to hgrm_collect() before destroying it; hgrm_collect_write() writes the
 * merge of every run since the last write and starts over.  Off until
 * hgrm_collect_enable(1).  One thread at a time. */
void hgrm_collect_enable(int on);
void hgrm_collect(const fe_hist_t *h);
/* Returns 0 (written), 1 (nothing collected: no file), -1 (open, merge or
 * write failed; errno from the failing call). */
int hgrm_collect_write(const char *path, const char *comment);

#endif
