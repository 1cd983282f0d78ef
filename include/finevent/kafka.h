/*
 * libfinevent-kafka: partitioned order flow over Kafka, with exactly-once
 * hand-over of a partition from one server to another.
 *
 * A companion library (libfinevent-kafka, pkg-config libfinevent-kafka),
 * built on librdkafka; the core library does not depend on it.
 *
 * The model.  Accounts map to the partitions of an orders topic (record key:
 * the account in decimal).  Every server runs a bus and an fe_kafka in one
 * consumer group; Kafka gives each partition to one server, so each account
 * is served by one server at a time, in order.  Two more topics, with the
 * SAME number of partitions as the orders topic, hold what a new owner
 * needs to take a partition over without the old owner's disk:
 *
 *   outcomes  one record per finished order, written to the partition of
 *             its order (key: account), by librdkafka's idempotent producer
 *             (so per-account order holds): the clients' answers, and the
 *             idempotency entries of the partition.
 *   intents   one record per order about to leave for the venue, written
 *             and acknowledged by Kafka (acks=all) BEFORE the send: the
 *             orders that may have reached the venue.
 *
 * Source (a library thread, fe_kafka_start()).  Consumes the orders topic,
 * decodes each record (the wire format below) and submits it with
 * fe_bus_submit().  Offsets are committed only up to the first order whose
 * outcome is not yet acknowledged by Kafka, so a record is re-delivered to
 * the next owner unless its outcome is in the log; the idempotency table
 * absorbs re-deliveries (FE_EDUPLICATE: nothing runs twice).  When the ring
 * or the idempotency table pushes back (FE_ETIMEDOUT, FE_ETABLEFULL), or a
 * partition has max_inflight orders without an acknowledged outcome, the
 * partition is paused (rd_kafka_pause_partitions) and rewound to the record
 * that could not be taken: nothing is buffered beyond librdkafka's own
 * bounded fetch queue (queued.max.messages.kbytes, 4 MiB unless you set
 * it).  A record that does not decode goes to the dead-letter queue
 * (cfg.dlq: kind FE_KAFKA_DLQ_MALFORMED, text "topic/partition@offset:
 * error", the raw record as the user area) and is committed.  A record the
 * bus refuses for good (FE_EMISMATCH, FE_EHALTED, FE_ETHROTTLED,
 * FE_EREDUCEONLY, FE_EINVAL) gets a REFUSED outcome record (not an
 * idempotency entry).
 *
 * Sink (fe_kafka_on_outcome(), the bus's cfg.on_outcome).  On the bus's
 * outcome stage, encodes the outcome and hands it to the idempotent
 * producer without waiting (no allocation: the record lives in the order's
 * in-flight slot until Kafka acknowledges it).  It never blocks a worker:
 * when librdkafka's local queue is full, cfg.on_full says what happens:
 * FE_KAFKA_FULL_SPILL (default) keeps the record in its slot and the source
 * thread re-sends it (bounded by max_inflight per partition, so nothing is
 * ever dropped), FE_KAFKA_FULL_DROP gives it up (its order is committed
 * without an outcome in the log: only the intent protects a later owner).
 * Either way it is counted (queue_full) and alerted (FE_KAFKA_ALERT_QUEUE_FULL
 * on the first of each episode).  A failed delivery is alerted
 * (FE_KAFKA_ALERT_DELIVERY), counted, and re-sent.
 *
 * Intents (fe_kafka_intent_stage(), a batch stage placed just before the
 * execution stage).  For each batch it produces one intent per order and
 * waits once for all of them (rd_kafka_flush): a group commit, as the
 * journal's fsync.  While Kafka does not answer (a broker down) the stage
 * waits, alerting once a second, so the ring fills and the source pauses:
 * nothing is lost.  An order whose intent is still unacknowledged after
 * intent_timeout_ms (also the intent producer's message.timeout.ms) is
 * not sent: it is dead-lettered with intent_reason (the DLQ redrives it);
 * one whose partition was released meanwhile is dead-lettered with
 * revoked_reason.  COST: one Kafka round trip (acks=all, all in-sync
 * replicas) per batch before the venue sees any order of it: on a real
 * cluster its produce latency with acks=all (the README gives what was
 * measured on librdkafka's mock cluster, and why that overstates it).  OPTIONS: cfg.intents_topic NULL turns
 * intents off (no round trip, the stage passes everything) -- then a
 * hand-over after a crash cannot tell which unfinished orders reached the
 * venue, and such an order may be sent twice unless the venue itself
 * dedupes client order ids; larger bus batches (max_batch) amortise the
 * round trip further; a local journal (fe_bus_intent) is independent of
 * this and may be used as well.  The other cost is the rebuild: a new
 * owner reads the partition's whole retained outcomes and intents before
 * it consumes, inside the rebalance callback (keep max.poll.interval.ms
 * above it); give both topics a time retention about the idempotency
 * table's (outcomes older than that are not restored anyway).
 *
 * Hand-over (rebalance).  On revoke: the partition takes no new records,
 * its in-flight orders finish (up to revoke_timeout_ms) and their outcomes
 * are acknowledged, the offsets are committed, and only then is the
 * partition released.  If the orders do not finish in time the partition
 * is released anyway (FE_KAFKA_ALERT_REVOKE_TIMEOUT): from then on the
 * intent stage refuses its orders (dead-lettered with revoked_reason, never
 * sent) and nothing after an unfinished order is committed, BUT an order
 * that had already passed the intent stage may still be sent by this server
 * after the next owner asked the venue about it: the guarantee needs
 * revoke_timeout_ms above the worst time an order takes from the intent
 * stage to its outcome (the ring never waits for the outside world, so
 * that is normally milliseconds).  On assign, BEFORE
 * consuming: the partition's outcomes are read from the start to the end of
 * the log and restored into the idempotency table (fe_idem_restore()); then
 * its intents: an intent whose key has no outcome is in doubt and cfg.in_doubt
 * asks the venue (the same hook, with the same meaning, as the bus's
 * cfg.in_doubt).  Sent (or no hook): an outcome is written for it (status
 * COMPLETED, flag FE_KAFKA_OUT_IN_DOUBT_SENT: the host reconciles its fills
 * with the venue) and restored, so the re-delivered record is a duplicate
 * and is never sent again.  Not sent: nothing is written; the re-delivered
 * record runs normally.  Only then is the partition consumed.  This holds
 * when the previous owner was SIGKILLed and its disk is gone: it sent an
 * order only after Kafka acknowledged its intent, and committed an offset
 * only after Kafka acknowledged the outcomes before it.
 *
 * What it does NOT cover.  Kafka transactions are not used (librdkafka
 * 2.0.2's mock cluster does not honour them, so they could not be tested).
 * An owner that stalls longer than the group's session timeout while
 * holding a partition (a zombie, not a crash) is not fenced: after the
 * group moved its partition, its intent stage may still send an order it
 * had already taken.  Keep session.timeout.ms well above your worst stall.
 * The eager rebalance protocol only (range/roundrobin assignors, the
 * default); cooperative-sticky is refused at start.
 *
 * Requirements on the bus.  The bus has an idempotency table (the same as
 * cfg.idem) whose clock is the wall clock (fe_clock_wall_fn: outcomes are
 * restored with the time they completed on another server),
 * cfg.on_outcome = fe_kafka_on_outcome with outcome_user = the fe_kafka_t
 * (chain your own filler through this library's cfg.on_outcome), and a
 * user area of at least FE_KAFKA_ORIGIN_BYTES: the source keeps the
 * record's origin in the first FE_KAFKA_ORIGIN_BYTES bytes of each event's
 * user area (do not write them).  The source thread is a producer of the
 * bus: with other producers use FE_PRODUCER_MULTI.
 *
 * Threads.  The source thread runs the consumer, the rebalance callbacks,
 * the rebuilds and the in_doubt hook, and serves the sink's delivery
 * reports.  fe_kafka_on_outcome runs on the bus's outcome stage and
 * fe_kafka_intent_stage on its stage's workers (it may be sharded).
 * Alerts come from any of these threads.
 *
 * Lifecycle:
 *     fe_kafka_config_init(&kc); ... kc.brokers, group_id, topics, idem ...
 *     fe_kafka_create(&kc, &k, &diag);
 *     bus cfg: on_outcome = fe_kafka_on_outcome, outcome_user = k; a stage
 *       { batch_handler = fe_kafka_intent_stage, user = k } before execution
 *     fe_bus_create, fe_bus_start
 *     fe_kafka_start(k, bus, &diag);
 *     ...
 *     fe_kafka_stop(k);          leaves the group cleanly (as a revoke)
 *     fe_bus_stop(bus); fe_bus_destroy(bus); fe_kafka_destroy(k);
 */
#ifndef FINEVENT_KAFKA_H
#define FINEVENT_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "dlq.h"
#include "error.h"
#include "event.h"
#include "idem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ wire format
 *
 * An orders-topic record's value is exactly FE_KAFKA_ORDER_BYTES bytes,
 * integers little-endian, strings NUL padded (every byte after the first
 * NUL is 0); Kafka's own record CRC covers corruption:
 *
 *   off size field
 *     0    4 magic "FEO1"
 *     4    2 event type: FE_EV_NEW_ORDER (1) or FE_EV_CANCEL (2)
 *     6    1 side (fe_side_t, 1..3)
 *     7    1 order type (fe_ord_type_t, 1..4)
 *     8    1 time in force (fe_tif_t, 1..5)
 *     9    7 zero
 *    16    8 account
 *    24    8 quantity (> 0)
 *    32    8 price, FE_PRICE_SCALE fixed point (>= 0; > 0 for limit and
 *            stop-limit orders)
 *    40    8 expire_ns (non-zero for FE_TIF_GTD, else 0)
 *    48    8 client_ts_ns
 *    56    8 trace id
 *    64   32 client order id (1..32 bytes)
 *    96   16 symbol (1..16 bytes)
 *
 * The record key, when present, is the account in decimal ASCII (no sign,
 * no leading zeros); the producer should use it so that one account stays
 * on one partition.
 *
 * An outcomes-topic record is FE_KAFKA_OUTCOME_BYTES (fe_kafka_outcome_t
 * below, magic "FEU1"); an intents-topic record is FE_KAFKA_INTENT_BYTES
 * (magic "FEI1", partition, offset, then the order as above).  Use
 * fe_kafka_outcome_decode() to read outcomes.
 */
#define FE_KAFKA_ORDER_BYTES 112
#define FE_KAFKA_OUTCOME_BYTES 184
#define FE_KAFKA_INTENT_BYTES 128
/* Bytes at the start of each event's user area that the source uses. */
#define FE_KAFKA_ORIGIN_BYTES 16
#define FE_KAFKA_MAX_PARTITIONS 1024
#define FE_KAFKA_MAX_PROPS 32
/* Dead-letter kind of a record that did not decode. */
#define FE_KAFKA_DLQ_MALFORMED (FE_DLQ_KIND_USER + 0x4b)
/* Default reasons of the intent stage's dead letters. */
#define FE_KAFKA_REASON_INTENT 251  /* Kafka did not acknowledge the intent */
#define FE_KAFKA_REASON_REVOKED 250 /* the partition was released first */

typedef struct fe_kafka fe_kafka_t;

/* Kinds of outcome record. */
typedef enum fe_kafka_out_kind {
  FE_KAFKA_OUT_FINAL = 1,  /* the order's outcome: what duplicates get */
  FE_KAFKA_OUT_REFUSED = 2 /* the bus refused this record (error); not an
                              idempotency entry */
} fe_kafka_out_kind_t;

/* fe_kafka_outcome_t.flags */
#define FE_KAFKA_OUT_IN_DOUBT_SENT 1u /* written by a new owner for an order
                                         the venue said it had received */

/* An outcome record, decoded. */
typedef struct fe_kafka_outcome {
  uint32_t kind;        /* fe_kafka_out_kind_t */
  uint32_t flags;       /* FE_KAFKA_OUT_* */
  int32_t partition;    /* of the order record */
  int32_t error;        /* REFUSED: the FE_E* code; else 0 */
  int64_t offset;       /* of the order record; -1 when unknown (in doubt) */
  uint64_t account;
  uint64_t fingerprint; /* fe_idem_fingerprint() of the order */
  uint64_t completed_ns;/* wall clock (CLOCK_REALTIME ns) */
  uint64_t trace_id;
  char client_order_id[FE_CLORDID_MAX];
  fe_idem_outcome_t outcome; /* status, reason, ref, fills, venue id and
                                user bytes, all of it */
} fe_kafka_outcome_t;

/* Encodes an order as an orders-topic value.
 *   type   FE_EV_NEW_ORDER or FE_EV_CANCEL.
 *   buf    out: FE_KAFKA_ORDER_BYTES bytes; untouched on failure.
 * Returns FE_KAFKA_ORDER_BYTES, FE_EINVAL (NULL), FE_ERANGE (len too small,
 * or a field the decoder would refuse: the same checks).  Thread-safe. */
FE_API int fe_kafka_order_encode(uint32_t type, const fe_order_t *order,
                                 uint64_t trace_id, void *buf, size_t len);

/* Decodes an orders-topic record.
 *   val, len   the record's value.
 *   key, klen  the record's key; NULL or 0: not checked.
 *   type, order, trace_id   out (order zeroed then filled); written only
 *              on success; trace_id may be NULL.
 * Returns 0; FE_EINVAL (val, type or order NULL); FE_ECORRUPT (length not
 * FE_KAFKA_ORDER_BYTES, non-zero padding, a string not NUL padded);
 * FE_EVERSION (magic not "FEO1"); FE_ERANGE (a field outside its range,
 * empty id or symbol); FE_EMISMATCH (key is not the account in decimal).
 * Thread-safe; no allocation. */
FE_API int fe_kafka_order_decode(const void *val, size_t len, const void *key,
                                 size_t klen, uint32_t *type,
                                 fe_order_t *order, uint64_t *trace_id);

/* Decodes an outcomes-topic record into *out.  Returns 0, FE_EINVAL
 * (NULL), FE_ECORRUPT (wrong length, unknown kind, non-zero padding),
 * FE_EVERSION (magic).  Thread-safe. */
FE_API int fe_kafka_outcome_decode(const void *val, size_t len,
                                   fe_kafka_outcome_t *out);

/* ---------------------------------------------------------------- config */

/* One librdkafka property, applied to every client the library creates
 * (consumer, producers, log reader) after its own defaults. */
typedef struct fe_kafka_prop {
  const char *name, *value;
} fe_kafka_prop_t;

typedef enum fe_kafka_full {
  FE_KAFKA_FULL_SPILL = 1, /* keep it in its slot; the source re-sends it */
  FE_KAFKA_FULL_DROP = 2   /* give it up (counted, alerted) */
} fe_kafka_full_t;

typedef enum fe_kafka_alert {
  FE_KAFKA_ALERT_QUEUE_FULL = 1,     /* sink's local queue full */
  FE_KAFKA_ALERT_DELIVERY = 2,       /* an outcome's delivery failed */
  FE_KAFKA_ALERT_INTENT = 3,         /* intents not acknowledged in time */
  FE_KAFKA_ALERT_REBUILD = 4,        /* a partition's rebuild failed: it
                                        stays paused and is retried */
  FE_KAFKA_ALERT_REVOKE_TIMEOUT = 5, /* released with orders unfinished */
  FE_KAFKA_ALERT_COMMIT = 6,         /* an offset commit failed */
  FE_KAFKA_ALERT_MALFORMED = 7,      /* a record did not decode */
  FE_KAFKA_ALERT_CLIENT = 8          /* librdkafka reported an error */
} fe_kafka_alert_t;

/* An alert: kind, the partition concerned (-1: none), a short text (valid
 * during the call).  Called on the thread that noticed (source thread,
 * outcome stage, intent stage, librdkafka's threads for CLIENT); must not
 * block or call back into this library. */
typedef void (*fe_kafka_alert_fn)(fe_kafka_alert_t kind, int32_t partition,
                                  const char *text, void *user);

typedef struct fe_kafka_config {
  const char *brokers;        /* required: bootstrap.servers */
  const char *group_id;       /* required: the consumer group */
  const char *orders_topic;   /* required */
  const char *outcomes_topic; /* required; as many partitions as orders */
  const char *intents_topic;  /* as many partitions as orders; NULL: no
                                 intents (see OPTIONS above) */
  fe_idem_t *idem;            /* required: the bus's table (borrowed) */
  fe_dlq_t *dlq;              /* malformed records; NULL: counted only */
  uint32_t max_partitions;    /* partitions of the orders topic at most,
                                 1..FE_KAFKA_MAX_PARTITIONS (default 64) */
  uint32_t max_inflight;      /* orders per partition taken and not yet
                                 acknowledged in the outcomes topic; a
                                 power of two, 2..65536 (default 1024).
                                 Memory: max_partitions * max_inflight *
                                 344 bytes, allocated at create */
  fe_kafka_full_t on_full;    /* default FE_KAFKA_FULL_SPILL */
  uint32_t intent_timeout_ms; /* default 60000 */
  uint32_t revoke_timeout_ms; /* default 10000 */
  uint32_t rebuild_timeout_ms;/* per partition; default 30000 */
  uint32_t commit_interval_ms;/* default 100 */
  uint32_t intent_reason;     /* default FE_KAFKA_REASON_INTENT */
  uint32_t revoked_reason;    /* default FE_KAFKA_REASON_REVOKED */
  /* As the bus's cfg.in_doubt: 1 sent, 0 not sent, negative: the rebuild
   * fails (alerted, retried).  NULL: every in-doubt order counts as sent.
   * Called on the source thread. */
  int (*in_doubt)(const fe_event_t *ev, void *user);
  void *in_doubt_user;
  /* Your outcome filler (venue order id, fills), called first by
   * fe_kafka_on_outcome for every event; NULL: none. */
  void (*on_outcome)(const fe_event_t *ev, fe_idem_outcome_t *out,
                     void *user);
  void *outcome_user;
  fe_kafka_alert_fn on_alert; /* NULL: alerts are only counted */
  void *alert_user;
  const fe_kafka_prop_t *props; /* librdkafka properties (copied) */
  uint32_t n_props;             /* 0..FE_KAFKA_MAX_PROPS */
  /* Properties of the outcome producer only, applied after props (e.g.
   * queue.buffering.max.messages: the local queue whose overflow
   * on_full handles; message.timeout.ms: when a delivery fails). */
  const fe_kafka_prop_t *sink_props; /* copied */
  uint32_t n_sink_props;             /* 0..FE_KAFKA_MAX_PROPS */
} fe_kafka_config_t;

/* Counters since create.  Each exact; not one snapshot. */
typedef struct fe_kafka_stats {
  uint64_t consumed;      /* records handed to the source */
  uint64_t submitted;     /* accepted by fe_bus_submit */
  uint64_t duplicates;    /* FE_EDUPLICATE / FE_EINPROGRESS: not run */
  uint64_t refused;       /* REFUSED outcomes */
  uint64_t malformed;     /* dead-lettered records */
  uint64_t pauses;        /* partitions paused (back-pressure) */
  uint64_t rewinds;       /* records rewound to be fetched again */
  uint64_t outcomes;      /* outcome records acknowledged by Kafka */
  uint64_t queue_full;    /* sink produce refused: local queue full */
  uint64_t dropped;       /* outcomes given up (FE_KAFKA_FULL_DROP) */
  uint64_t delivery_failed; /* outcome deliveries that failed */
  uint64_t intents;       /* intents acknowledged */
  uint64_t intent_failed; /* orders not sent: intent not acknowledged */
  uint64_t revoked_refused; /* orders not sent: partition released */
  uint64_t stale;         /* outcomes of orders of a released partition */
  uint64_t assigned;      /* partitions assigned (rebuilt) */
  uint64_t revoked;       /* partitions released */
  uint64_t revoke_timeouts;
  uint64_t restored;      /* idempotency entries rebuilt from the log */
  uint64_t in_doubt_sent; /* in doubt, the venue had it */
  uint64_t in_doubt_unsent; /* in doubt, the venue did not */
  uint64_t rebuild_failed;
  uint64_t commits;       /* offset commits that succeeded */
  uint64_t commit_failed;
  uint64_t intent_batches; /* group commits of intents (one wait each) */
  uint64_t intent_wait_ns; /* total time the intent stage waited for them */
  uint64_t owned;         /* gauge: partitions owned now */
  uint64_t inflight;      /* gauge: orders taken, outcome not acknowledged */
} fe_kafka_stats_t;

/* Fills cfg with the defaults above.  Does nothing for NULL. */
FE_API void fe_kafka_config_init(fe_kafka_config_t *cfg);

/* Validates cfg, creates the librdkafka clients (consumer, outcome
 * producer with enable.idempotence=true, intent producer with acks=all, a
 * log reader for rebuilds) and allocates every in-flight slot.  Connects
 * lazily: a broker that is down is not an error here.
 *   cfg   in: read during the call (strings and props copied).
 *   out   out: the handle; untouched on failure.
 *   diag  out, may be NULL: the code and a message naming the field.
 * Returns 0, FE_EINVAL (NULL, a required field missing, on_full unknown),
 * FE_ERANGE (max_partitions, max_inflight, n_props, a reason out of
 * range, a timeout 0), FE_EINCOMPAT (librdkafka refused a property: its
 * message in diag), FE_ENOMEM.  Nothing is left allocated on failure.
 * Thread-safe; blocking. */
FE_API int fe_kafka_create(const fe_kafka_config_t *cfg, fe_kafka_t **out,
                           fe_diag_t *diag);

/* Starts the source thread on bus (which must be running and configured as
 * "Requirements on the bus" says): it checks the topics (same partition
 * counts, at most max_partitions) within rebuild_timeout_ms, subscribes,
 * and consumes.
 * Returns 0, FE_EINVAL (NULL), FE_ESTATE (already started), FE_EINCOMPAT
 * (the bus's user area is smaller than FE_KAFKA_ORIGIN_BYTES, the topics'
 * partition counts differ, or the assignor is cooperative), FE_ERANGE
 * (more partitions than max_partitions), FE_ETIMEDOUT (no metadata from
 * the brokers), FE_ETHREAD.  On failure nothing was started.  One thread;
 * blocking. */
FE_API int fe_kafka_start(fe_kafka_t *k, fe_bus_t *bus, fe_diag_t *diag);

/* Leaves the group as a revoke does (the owned partitions finish their
 * in-flight orders, commit, release), flushes the outcome producer (up to
 * revoke_timeout_ms) and joins the source thread.  The bus must keep
 * running until it returns.  Returns 0, FE_EINVAL, FE_ESTATE (not
 * started, or already stopped), FE_ETIMEDOUT (outcomes still unacknowledged
 * at the end: they are re-delivered to the next owner).  One thread;
 * blocking. */
FE_API int fe_kafka_stop(fe_kafka_t *k);

/* Stops (if started and not stopped) and frees everything.  Accepts NULL.
 * No other call may be in progress or follow; the bus must no longer run
 * the intent stage or the outcome hook with k. */
FE_API void fe_kafka_destroy(fe_kafka_t *k);

/* The bus's cfg.on_outcome (outcome_user = the fe_kafka_t): calls
 * cfg.on_outcome, then, for an event the source submitted, hands its
 * outcome record to the producer (see Sink above).  Other events: only
 * cfg.on_outcome.  Runs on the bus's outcome stage; never blocks; no
 * allocation. */
FE_API void fe_kafka_on_outcome(const fe_event_t *ev, fe_idem_outcome_t *out,
                                void *k);

/* The intent stage (fe_stage_def_t.batch_handler, user = the fe_kafka_t),
 * placed directly upstream of the execution stage (not
 * parallel_to_journal).  See Intents above.  Events that the source did
 * not submit pass untouched.  Blocking: one Kafka round trip per call. */
FE_API void fe_kafka_intent_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                                  uint32_t n, void *k);

/* Copies the counters.  Returns 0 or FE_EINVAL.  Any thread; wait-free. */
FE_API int fe_kafka_stats(const fe_kafka_t *k, fe_kafka_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_KAFKA_H */
