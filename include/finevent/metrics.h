/*
 * libfinevent: metrics, their Prometheus and JSON export, and anomaly
 * alerts.
 *
 * What is measured.
 *   - Per stage: a latency histogram (fe_hist) and a batch-size
 *     histogram, recorded by whoever runs the stage (fe_metrics_latency,
 *     fe_metrics_batch), and a counter per outcome and reason
 *     (fe_metrics_count).
 *   - With cfg.bus: the bus's own counters, read at export (published,
 *     completed, rejected, dead-lettered, throttled, halted, duplicates;
 *     per stage handled, rejected by reason, retried, failed, batches)
 *     and each stage's queue depth (events published and not yet
 *     processed by it).  The per-stage outcome and reason series add the
 *     bus's counts to fe_metrics_count's: with cfg.bus, count there only
 *     what the bus does not (a host's own outcomes), or the bus's rejects
 *     are counted twice.
 *   - With cfg.audit: records appended, lost, written, and the audit lag
 *     (appended, not yet written).
 *   - Gauges the host sets (fe_metrics_gauge): journal lag and anything
 *     else of FE_METRIC_GAUGE_*.
 *
 * Recording without contention.  Each recording call names a worker
 * slot (0..cfg.workers-1); a slot must be used by one thread at a time
 * (a bus worker index is a natural choice).  A slot's histograms and
 * counters are written only by that thread with plain stores (relaxed
 * atomics, no read-modify-write), and readers merge every slot at export:
 * no cache line is shared between two recording threads.
 *
 * Anomaly alerts.  fe_metrics_tick(now) (from a host timer, with any clock:
 * tests inject one) closes an interval of at least cfg.alert_window_ns and
 * computes, per stage, the interval's mean latency and its error rate
 * ((rejected + dead-lettered) / handled, counted from fe_metrics_count
 * and, with cfg.bus, the bus's stage counters).  Each is compared with an
 * exponentially weighted moving average of the previous intervals (weight
 * cfg.alert_alpha): a value above baseline * cfg.alert_factor (and above
 * the absolute floor) raises on_alert(RAISED) once; the first interval back
 * at or below it raises on_alert(CLEARED) once.  The baseline does not
 * learn from intervals that are in alert, so a lasting anomaly does not
 * become the new normal.  Intervals with fewer than cfg.alert_min_samples
 * samples are ignored.
 */
#ifndef FINEVENT_METRICS_H
#define FINEVENT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "bus.h"
#include "error.h"
#include "hist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fe_metrics fe_metrics_t;

/* Outcomes counted by fe_metrics_count. */
typedef enum fe_metric_outcome {
  FE_METRIC_ACCEPTED = 0,
  FE_METRIC_REJECTED = 1,
  FE_METRIC_DEAD_LETTERED = 2,
  FE_METRIC_RETRIED = 3,
  FE_METRIC_AMENDED = 4,
  FE_METRIC_OUTCOMES = 5
} fe_metric_outcome_t;

/* Host-set gauges. */
typedef enum fe_metric_gauge {
  FE_METRIC_GAUGE_JOURNAL_LAG = 0, /* e.g. written_lsn - durable_lsn */
  FE_METRIC_GAUGE_QUEUE_DEPTH = 1, /* a host queue outside the bus */
  FE_METRIC_GAUGES = 2
} fe_metric_gauge_t;

typedef enum fe_alert_kind {
  FE_ALERT_LATENCY = 1,
  FE_ALERT_ERROR_RATE = 2
} fe_alert_kind_t;

typedef enum fe_alert_state {
  FE_ALERT_RAISED = 1,
  FE_ALERT_CLEARED = 2
} fe_alert_state_t;

typedef struct fe_alert {
  uint32_t stage;
  fe_alert_kind_t kind;
  fe_alert_state_t state;
  double value;    /* the interval's mean latency (ns) or error rate */
  double baseline; /* the moving average it was compared with */
  uint64_t now_ns; /* the tick's time */
} fe_alert_t;

typedef struct fe_metrics_config {
  uint32_t workers;  /* recording slots, 1..1024 (default 1) */
  uint32_t stages;   /* stage ids 0..stages-1, 1..FE_BUS_MAX_STAGES
                        (default 1; with bus: 0 means the bus's count) */
  const char *const *stage_names; /* NULL: the bus's names, or "0", "1".. */
  const char *prefix; /* metric name prefix, [a-zA-Z_:][a-zA-Z0-9_:]*
                         (default "finevent") */
  fe_hist_config_t latency; /* default: lowest 1 ns, highest 60 s,
                               2 digits */
  const fe_bus_t *bus;      /* read at export and tick; NULL: none */
  const fe_audit_t *audit;  /* read at export; NULL: none */
  /* Alerts (see the header comment).  on_alert NULL: none. */
  uint64_t alert_window_ns; /* default 10 s */
  double alert_alpha;       /* (0, 1], default 0.2 */
  double alert_factor;      /* > 1, default 3.0 */
  double alert_latency_floor_ns; /* default 1000 */
  double alert_error_floor;      /* default 0.01 */
  uint64_t alert_min_samples;    /* default 20 */
  /* Called on the thread calling fe_metrics_tick, which holds m's reader
   * lock: it must not call fe_metrics_tick or an export. */
  void (*on_alert)(const fe_alert_t *a, void *user);
  void *user;
} fe_metrics_config_t;

/* Fills the defaults above.  NULL: no-op. */
FE_API void fe_metrics_config_init(fe_metrics_config_t *cfg);

/* Validates cfg and allocates every histogram and counter.  Returns 0 and
 * *out, or FE_EINVAL (NULL, bad prefix or stage name), FE_ERANGE (workers,
 * stages, alert settings), FE_EINCOMPAT (bad latency configuration, as
 * fe_hist_config_check says), FE_ENOMEM; diag names the field.  On
 * failure nothing is allocated.  Any thread. */
FE_API int fe_metrics_create(const fe_metrics_config_t *cfg,
                             fe_metrics_t **out, fe_diag_t *diag);

/* Frees m.  NULL: no-op.  No other call may run concurrently. */
FE_API void fe_metrics_destroy(fe_metrics_t *m);

/* Record into worker slot w (one thread per slot at a time; see above).
 * Each returns 0 or FE_EINVAL (m NULL, w or stage out of range, outcome
 * unknown).  Wait-free: no allocation, lock, read-modify-write or system
 * call.  A reason above FE_REASON_MAX counts as 0. */
FE_API int fe_metrics_latency(fe_metrics_t *m, uint32_t w, uint32_t stage,
                              uint64_t ns);
FE_API int fe_metrics_batch(fe_metrics_t *m, uint32_t w, uint32_t stage,
                            uint64_t events);
FE_API int fe_metrics_count(fe_metrics_t *m, uint32_t w, uint32_t stage,
                            fe_metric_outcome_t outcome, uint32_t reason);

/* Has bus feed m: after each batch, every stage shard's time per event
 * (the batch's time over its handler calls, recorded once per call) goes
 * into the stage's latency histogram and the batch's size into its batch
 * histogram, in the slot of the worker that ran it (fe_bus_on_stage_timing
 * with fe_metrics_stage_timing).  So the latency histogram holds each
 * event's share of its batch, not each event alone: two clock reads per
 * stage per batch, not two per event.  Call between fe_bus_create and
 * fe_bus_start.  Returns 0, FE_EINVAL (NULL), FE_ERANGE (m has fewer
 * worker slots than bus has workers, or fewer stages than bus: the
 * message says which), FE_ESTATE (bus started).  Not thread-safe. */
FE_API int fe_metrics_attach(fe_metrics_t *m, fe_bus_t *bus, fe_diag_t *diag);

/* The fe_stage_timing_fn that fe_metrics_attach installs (user: the
 * fe_metrics_t).  Records as described there; a timing whose worker or
 * stage is outside m's ranges is ignored (fe_metrics_attach refuses such
 * a bus).  Wait-free. */
FE_API void fe_metrics_stage_timing(const fe_stage_timing_t *t, void *m);

/* Sets gauge g.  Returns 0 or FE_EINVAL.  Any thread; wait-free. */
FE_API int fe_metrics_gauge(fe_metrics_t *m, fe_metric_gauge_t g,
                            int64_t value);

/* Writes the Prometheus text exposition format 0.0.4 into buf (cap bytes,
 * NUL-terminated when it fits) and the length it needs (without the NUL)
 * into *len.  Every family has HELP and TYPE lines; counters end in
 * _total; histograms have cumulative _bucket{le=".."} series ending with
 * le="+Inf", then _sum and _count; label values are escaped (\\, \", \n).
 * Latencies are in seconds.  Returns 0, FE_EINVAL (m or len NULL; buf may
 * be NULL when cap is 0), or FE_ERANGE (cap too small: *len says how much
 * is needed; buf holds a cut prefix).  Any thread (serialised with the
 * other readers by m's reader lock); allocates nothing. */
FE_API int fe_metrics_write_prometheus(fe_metrics_t *m, char *buf, size_t cap,
                                       size_t *len);

/* The same figures as one JSON object (no trailing newline): per stage its
 * name, latency count/min/p50/p90/p99/p999/max/mean (ns), batch
 * count/mean/max, outcomes, rejects by reason and queue depth; the bus,
 * audit and gauge figures.  Returns as fe_metrics_write_prometheus. */
FE_API int fe_metrics_write_json(fe_metrics_t *m, char *buf, size_t cap,
                                 size_t *len);

/* Closes an alert interval at now_ns if at least cfg.alert_window_ns has
 * passed since the previous one (the first call only starts it) and calls
 * on_alert for every crossing.  Returns the number of alerts raised or
 * cleared, or FE_EINVAL.  Any thread; blocking (m's reader lock). */
FE_API int fe_metrics_tick(fe_metrics_t *m, uint64_t now_ns);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_METRICS_H */
