/*
 * bench/sweep.h: fe_bench's parameter sweeps.
 *
 * A grid is written  knob=v1,v2,...;knob=v1,...  e.g.
 *     ring=4096,65536;batch=16,256;wait=spin,yield,park
 * Each knob is one of fe_bench's options (sweep_knob_name() lists them):
 *     ring     --ring     power of two, 2..2^30
 *     batch    --batch    1..2^30
 *     wait     --wait     spin | yield | park
 *     spin     --spin     0..2^32-1
 *     yields   --yields   0..2^32-1
 *     catchup  --catchup  0..2^32-1
 *     pin      --pin      off | on  (also 0 | 1, no | yes)
 *     claim    --claim    1..65536
 *     handler  --handler  event | batch
 *     rate     --rate     1..10^9 (latency scenarios)
 *     events   --events   1..
 * The grid is the cartesian product (the first knob varies slowest), at
 * most SWEEP_MAX_POINTS points; a knob at most once, SWEEP_MAX_VALUES
 * distinct values each.  Spaces around names and values are ignored.
 *
 * sweep_run() runs every point `runs` times through a callback that
 * applies the knobs and runs the scenario, keeps each point's median and
 * spread, and the print calls write the rows as a table, CSV or JSON, each
 * with the reproducibility record (machine.h) and every knob.
 *
 * Not thread-safe (one sweep per thread); reentrant otherwise.
 */
#ifndef FE_BENCH_SWEEP_H
#define FE_BENCH_SWEEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "machine.h"

typedef enum sweep_knob {
  SWEEP_RING,
  SWEEP_BATCH,
  SWEEP_WAIT,
  SWEEP_SPIN,
  SWEEP_YIELDS,
  SWEEP_CATCHUP,
  SWEEP_PIN,
  SWEEP_CLAIM,
  SWEEP_HANDLER,
  SWEEP_FUSE,
  SWEEP_RATE,
  SWEEP_EVENTS,
  SWEEP_N_KNOBS
} sweep_knob_t;

#define SWEEP_MAX_VALUES 32
#define SWEEP_MAX_POINTS 4096
#define SWEEP_MAX_RUNS 64

typedef struct sweep_axis {
  sweep_knob_t knob;
  uint32_t n;                   /* values, >= 1 */
  uint64_t v[SWEEP_MAX_VALUES]; /* in the order given */
} sweep_axis_t;

typedef struct sweep_grid {
  uint32_t n_axes;
  sweep_axis_t axis[SWEEP_N_KNOBS]; /* in the order given */
  uint64_t points;                  /* product of the axes' n */
} sweep_grid_t;

/* Parses spec into *g.  Returns 0, or -1 with a message in err (errlen
 * bytes, may be NULL) quoting the bad part: an unknown knob, a knob without
 * '=', an empty or invalid value (with the accepted range), a repeated knob
 * or value, too many values or points.  On failure *g is unspecified. */
int sweep_parse(const char *spec, sweep_grid_t *g, char *err, size_t errlen);

/* The knob's name ("ring", ...), or NULL if knob is out of range. */
const char *sweep_knob_name(sweep_knob_t knob);

/* Parses one value of knob (e.g. "yield" for SWEEP_WAIT).  Returns 0 or
 * -1 with a message in err naming the knob, the value and what it takes. */
int sweep_value_parse(sweep_knob_t knob, const char *s, uint64_t *out,
                      char *err, size_t errlen);

/* Formats one value of knob as the grid would write it ("yield", "on"). */
void sweep_value_str(sweep_knob_t knob, uint64_t v, char *buf, size_t size);

/* Point i (0 <= i < g->points) of the grid: sets knobs[axis knob] for each
 * axis, leaving the other entries of knobs as they are. */
void sweep_point(const sweep_grid_t *g, uint64_t i,
                 uint64_t knobs[SWEEP_N_KNOBS]);

/* "ring=4096 batch=16 wait=spin": the swept knobs of a point (sep " "), or
 * with sep "_" and no '=' a file-name-safe "ring4096_batch16_waitspin". */
void sweep_label(const sweep_grid_t *g, const uint64_t knobs[SWEEP_N_KNOBS],
                 const char *sep, int with_eq, char *buf, size_t size);

/* One run's result, as the callback reports it. */
typedef struct sweep_sample {
  double mev_s;
  uint64_t p50, p99, p999, p9999, max; /* ns, when has_lat */
  int has_lat;
  char hgrm[256]; /* file the callback wrote for this point, or "" */
} sweep_sample_t;

/* One grid point after its runs. */
typedef struct sweep_row {
  uint64_t point;                  /* index in the grid */
  uint64_t knobs[SWEEP_N_KNOBS];   /* every knob, swept or not */
  int runs;
  int has_lat;
  double mev_s, mev_min, mev_max;  /* median and range over the runs */
  uint64_t p50, p99, p999, p9999, max; /* medians over the runs */
  uint64_t p99_min, p99_max;
  char hgrm[256];
} sweep_row_t;

typedef enum sweep_objective { SWEEP_OBJ_P99, SWEEP_OBJ_MEV_S } sweep_objective_t;
typedef enum sweep_format { SWEEP_TABLE, SWEEP_CSV, SWEEP_JSON } sweep_format_t;

/* Runs the scenario for one point: knobs holds every knob's value; run is
 * 0..runs-1.  Fills *out; returns 0, or nonzero to stop the sweep. */
typedef int (*sweep_run_fn)(const uint64_t knobs[SWEEP_N_KNOBS], int run,
                            int runs, sweep_sample_t *out, void *user);

typedef struct sweep_opts {
  const char *scenario;
  int runs;                      /* 1..SWEEP_MAX_RUNS */
  sweep_objective_t objective;
  int progress;                  /* draw a progress line on stderr */
  uint64_t base[SWEEP_N_KNOBS];  /* the knobs not swept */
} sweep_opts_t;

/* Runs every point of g (rows: g->points entries, filled in grid order).
 * Returns 0, or the callback's nonzero result (rows before it are valid). */
int sweep_run(const sweep_grid_t *g, const sweep_opts_t *o, sweep_run_fn fn,
              void *user, sweep_row_t *rows);

/* Sorts rows best first by the objective (p99 ascending, or mev_s
 * descending; ties by the other, then by grid order). */
void sweep_sort(sweep_row_t *rows, uint64_t n, sweep_objective_t obj);

/* Spread of a metric over the runs, in percent of its median. */
double sweep_spread_pct(double lo, double hi, double median);

/* Writes the sorted rows in the format, with the machine record and the
 * knobs.  Returns 0 or -1 (a write failed). */
int sweep_print(FILE *f, sweep_format_t fmt, const machine_t *m,
                const sweep_grid_t *g, const sweep_opts_t *o,
                const sweep_row_t *rows, uint64_t n);

#endif
