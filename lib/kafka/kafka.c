/*
 * libfinevent-kafka: source, sink, intents, rebalance and rebuild (the
 * contract is in include/finevent/kafka.h).
 *
 * Who touches what.  Each owned partition has a window of max_inflight
 * slots, one per record taken and not yet finished; the window's bounds
 * (base, next) and everything in kpart_t but `state` and `assign_base`
 * belong to the source thread.  A slot's `state` moves:
 *
 *   INFLIGHT  set by the source before it submits the order (the bus's
 *             publish carries it to the workers);
 *   PRODUCED  set by the outcome stage (or the source, for a refusal)
 *             just before the outcome record goes to the producer;
 *   SPILLED   the producer's queue was full, or delivery failed: the source
 *             re-sends it;
 *   DONE      Kafka acknowledged the outcome (delivery report, served on
 *             the source thread), or nothing needs to be written
 *             (duplicate, malformed record, dropped outcome);
 *   ABANDONED the order was refused by the intent stage after the
 *             partition was released: finished, but never committed.
 *
 * Writers store with release and readers load with acquire, so the bytes
 * of the outcome record written before PRODUCED/SPILLED are visible to the
 * thread that re-sends it (S1 pairs with S2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "finevent/clock.h"
#include "finevent/kafka.h"
#include "kafka_impl.h"

enum { S_FREE, S_INFLIGHT, S_PRODUCED, S_SPILLED, S_DONE, S_ABANDONED };
enum { P_FREE, P_OWNED };
enum { I_PENDING = 0, I_OK = 1, I_FAILED = 2 };

#define HOLD_RETRY_MIN_NS 200000ull     /* 0.2 ms */
#define HOLD_RETRY_MAX_NS 20000000ull   /* 20 ms */

/* What the source puts at the start of each event's user area. */
typedef struct origin {
  uint32_t tag;       /* the fe_kafka_t's, never 0 */
  uint32_t partition;
  uint64_t seq;       /* slot sequence within the partition */
} origin_t;
_Static_assert(sizeof(origin_t) == FE_KAFKA_ORIGIN_BYTES, "origin size");

typedef struct kslot {
  uint32_t state;      /* S_*: see the top */
  uint32_t pad;
  uint64_t seq;        /* source writes before publishing; read by the
                          outcome stage (relaxed: a mismatch only means a
                          stale event) */
  uint64_t intent_tag; /* offset << 2 | I_*: written by the intent stage
                          and by the intent producer's delivery report */
  int64_t offset;
  uint8_t intent[FE_KAFKA_INTENT_BYTES];
  uint8_t out[FE_KAFKA_OUTCOME_BYTES];
} kslot_t;

typedef struct kpart {
  uint32_t state;        /* P_*: source writes (seq_cst), intent stage
                            reads (seq_cst): D1 pairs with D2 */
  uint64_t assign_base;  /* first seq of this assignment (release/acquire) */
  kslot_t *slots;
  /* source thread only */
  uint64_t base, next;
  int64_t last_offset;   /* last record taken, -1: none yet */
  int64_t committed;     /* last offset committed, -1: none */
  rd_kafka_message_t *held; /* back-pressured record, retried */
  uint64_t retry_at_ns, backoff_ns;
  int paused, rewound, full_wait, needs_rebuild;
} kpart_t;

typedef struct kstats {
  uint64_t consumed, submitted, duplicates, refused, malformed, pauses,
      rewinds, outcomes, queue_full, dropped, delivery_failed, intents,
      intent_failed, revoked_refused, stale, assigned, revoked,
      revoke_timeouts, restored, in_doubt_sent, in_doubt_unsent,
      rebuild_failed, commits, commit_failed, intent_batches, intent_wait_ns,
      owned, inflight;
} kstats_t;

struct fe_kafka {
  fe_kafka_config_t cfg;
  char *brokers, *group, *orders, *outcomes, *intents;
  fe_kafka_prop_t props[FE_KAFKA_MAX_PROPS];
  fe_kafka_prop_t sink_props[FE_KAFKA_MAX_PROPS];
  uint32_t tag, mask;
  rd_kafka_t *consumer, *sink, *intent_rk, *reader;
  rd_kafka_topic_t *sink_topic, *intent_topic;
  fe_bus_t *bus;
  kpart_t *parts;
  uint32_t nparts;       /* partitions of the topics, set by start */
  pthread_t thread;
  int started, stopped;
  int running;           /* atomic: stop clears it (relaxed: only a flag,
                            the join orders everything else) */
  uint32_t intent_busy;  /* intent stage calls in progress (seq_cst) */
  uint64_t spilled;      /* slots in SPILLED: a hint for the source */
  uint32_t full_episode; /* a queue-full alert is out (relaxed) */
  uint64_t last_commit_ns;
  int mark_pending, mark_failed; /* in-doubt outcomes (source thread) */
  int stop_rc;
  kstats_t st;
};

#define CNT(k, f) __atomic_fetch_add(&(k)->st.f, 1, __ATOMIC_RELAXED)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int diag_set(fe_diag_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int diag_set(fe_diag_t *d, int code, const char *fmt, ...) {
  if (d != NULL) {
    d->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

static void alert(fe_kafka_t *k, fe_kafka_alert_t kind, int32_t p,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void alert(fe_kafka_t *k, fe_kafka_alert_t kind, int32_t p,
                  const char *fmt, ...) {
  if (k->cfg.on_alert == NULL)
    return;
  char text[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  k->cfg.on_alert(kind, p, text, k->cfg.alert_user);
}

static int key_of(uint64_t account, char *buf) {
  return snprintf(buf, 24, "%" PRIu64, account);
}

/* ---------------------------------------------------------------- config */

void fe_kafka_config_init(fe_kafka_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->max_partitions = 64;
  cfg->max_inflight = 1024;
  cfg->on_full = FE_KAFKA_FULL_SPILL;
  cfg->intent_timeout_ms = 60000;
  cfg->revoke_timeout_ms = 10000;
  cfg->rebuild_timeout_ms = 30000;
  cfg->commit_interval_ms = 100;
  cfg->intent_reason = FE_KAFKA_REASON_INTENT;
  cfg->revoked_reason = FE_KAFKA_REASON_REVOKED;
}

static int check_config(const fe_kafka_config_t *c, fe_diag_t *d) {
  if (c->brokers == NULL || c->brokers[0] == 0)
    return diag_set(d, FE_EINVAL, "brokers: required");
  if (c->group_id == NULL || c->group_id[0] == 0)
    return diag_set(d, FE_EINVAL, "group_id: required");
  if (c->orders_topic == NULL || c->orders_topic[0] == 0)
    return diag_set(d, FE_EINVAL, "orders_topic: required");
  if (c->outcomes_topic == NULL || c->outcomes_topic[0] == 0)
    return diag_set(d, FE_EINVAL, "outcomes_topic: required");
  if (c->intents_topic != NULL && c->intents_topic[0] == 0)
    return diag_set(d, FE_EINVAL, "intents_topic: empty (NULL turns intents off)");
  if (c->idem == NULL)
    return diag_set(d, FE_EINVAL, "idem: required (the bus's table)");
  if (c->on_full != FE_KAFKA_FULL_SPILL && c->on_full != FE_KAFKA_FULL_DROP)
    return diag_set(d, FE_EINVAL, "on_full %d: unknown", (int)c->on_full);
  if (c->max_partitions == 0 || c->max_partitions > FE_KAFKA_MAX_PARTITIONS)
    return diag_set(d, FE_ERANGE, "max_partitions %u: must be 1..%d",
                    c->max_partitions, FE_KAFKA_MAX_PARTITIONS);
  if (c->max_inflight < 2 || c->max_inflight > 65536 ||
      (c->max_inflight & (c->max_inflight - 1)) != 0)
    return diag_set(d, FE_ERANGE, "max_inflight %u: a power of two, 2..65536",
                    c->max_inflight);
  if (c->intent_timeout_ms == 0 || c->revoke_timeout_ms == 0 ||
      c->rebuild_timeout_ms == 0 || c->commit_interval_ms == 0)
    return diag_set(d, FE_ERANGE, "a timeout or interval is 0");
  if (c->intent_reason == 0 || c->intent_reason > FE_REASON_MAX ||
      c->revoked_reason == 0 || c->revoked_reason > FE_REASON_MAX ||
      c->intent_reason == c->revoked_reason)
    return diag_set(d, FE_ERANGE, "intent_reason %u / revoked_reason %u: "
                    "distinct, 1..%d", c->intent_reason, c->revoked_reason,
                    FE_REASON_MAX);
  if (c->n_props > FE_KAFKA_MAX_PROPS || (c->n_props > 0 && c->props == NULL))
    return diag_set(d, c->n_props > FE_KAFKA_MAX_PROPS ? FE_ERANGE : FE_EINVAL,
                    "n_props %u: props missing or more than %d", c->n_props,
                    FE_KAFKA_MAX_PROPS);
  for (uint32_t i = 0; i < c->n_props; i++)
    if (c->props[i].name == NULL || c->props[i].value == NULL)
      return diag_set(d, FE_EINVAL, "props[%u]: name and value required", i);
  if (c->n_sink_props > FE_KAFKA_MAX_PROPS ||
      (c->n_sink_props > 0 && c->sink_props == NULL))
    return diag_set(d, c->n_sink_props > FE_KAFKA_MAX_PROPS ? FE_ERANGE
                                                            : FE_EINVAL,
                    "n_sink_props %u: sink_props missing or more than %d",
                    c->n_sink_props, FE_KAFKA_MAX_PROPS);
  for (uint32_t i = 0; i < c->n_sink_props; i++)
    if (c->sink_props[i].name == NULL || c->sink_props[i].value == NULL)
      return diag_set(d, FE_EINVAL, "sink_props[%u]: name and value required",
                      i);
  return 0;
}

/* ---------------------------------------------------------- the clients */

static void sink_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void intent_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque);
static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque);
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offs, void *opaque);

static void error_cb(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
  (void)rk;
  alert(opaque, FE_KAFKA_ALERT_CLIENT, -1, "%s: %s",
        rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* A configuration: bootstrap servers, defs (name, value pairs, NULL
 * ended), then the host's properties.  NULL and a message on failure. */
static rd_kafka_conf_t *client(fe_kafka_t *k, const char *const *defs,
                               fe_diag_t *d, int *rc) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (conf == NULL) {
    *rc = diag_set(d, FE_ENOMEM, "rd_kafka_conf_new failed");
    return NULL;
  }
  rd_kafka_conf_set_opaque(conf, k);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  if (rd_kafka_conf_set(conf, "bootstrap.servers", k->brokers, err,
                        sizeof err) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    *rc = diag_set(d, FE_EINCOMPAT, "brokers %s: %s", k->brokers, err);
    return NULL;
  }
  for (int i = 0; defs[2 * i] != NULL; i++)
    if (rd_kafka_conf_set(conf, defs[2 * i], defs[2 * i + 1], err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      *rc = diag_set(d, FE_EINCOMPAT, "%s=%s: %s", defs[2 * i],
                     defs[2 * i + 1], err);
      return NULL;
    }
  for (uint32_t p = 0; p < k->cfg.n_props; p++)
    if (rd_kafka_conf_set(conf, k->props[p].name, k->props[p].value, err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      *rc = diag_set(d, FE_EINCOMPAT, "props[%u] %s=%s: %s", p,
                     k->props[p].name, k->props[p].value, err);
      return NULL;
    }
  return conf;
}

static rd_kafka_t *make(rd_kafka_conf_t *conf, rd_kafka_type_t type,
                        fe_diag_t *d, int *rc) {
  char err[256];
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == NULL) {
    rd_kafka_conf_destroy(conf);
    *rc = diag_set(d, FE_EINCOMPAT, "rd_kafka_new: %s", err);
  }
  return rk;
}

static char *dup(const char *s) { return s != NULL ? strdup(s) : NULL; }

int fe_kafka_create(const fe_kafka_config_t *cfg, fe_kafka_t **out,
                    fe_diag_t *d) {
  if (cfg == NULL || out == NULL)
    return diag_set(d, FE_EINVAL, "cfg and out are required");
  int rc = check_config(cfg, d);
  if (rc != 0)
    return rc;
  fe_kafka_t *k = calloc(1, sizeof *k);
  if (k == NULL)
    return diag_set(d, FE_ENOMEM, "out of memory");
  k->cfg = *cfg;
  k->brokers = dup(cfg->brokers), k->group = dup(cfg->group_id);
  k->orders = dup(cfg->orders_topic), k->outcomes = dup(cfg->outcomes_topic);
  k->intents = dup(cfg->intents_topic);
  int nomem = !k->brokers || !k->group || !k->orders || !k->outcomes ||
              (cfg->intents_topic != NULL && !k->intents);
  for (uint32_t i = 0; i < cfg->n_props; i++) {
    k->props[i].name = dup(cfg->props[i].name);
    k->props[i].value = dup(cfg->props[i].value);
    nomem |= !k->props[i].name || !k->props[i].value;
  }
  for (uint32_t i = 0; i < cfg->n_sink_props; i++) {
    k->sink_props[i].name = dup(cfg->sink_props[i].name);
    k->sink_props[i].value = dup(cfg->sink_props[i].value);
    nomem |= !k->sink_props[i].name || !k->sink_props[i].value;
  }
  k->cfg.props = k->props;
  k->cfg.sink_props = k->sink_props;
  k->mask = cfg->max_inflight - 1;
  k->parts = calloc(cfg->max_partitions, sizeof *k->parts);
  nomem |= k->parts == NULL;
  for (uint32_t p = 0; !nomem && p < cfg->max_partitions; p++) {
    k->parts[p].slots = calloc(cfg->max_inflight, sizeof(kslot_t));
    nomem |= k->parts[p].slots == NULL;
  }
  if (nomem) {
    fe_kafka_destroy(k);
    return diag_set(d, FE_ENOMEM, "out of memory");
  }
  /* A tag that tells this handle's events from any other's. */
  k->tag = (uint32_t)(fe_clock_realtime_ns() ^ (uintptr_t)k) | 1u;

  char rebuild_group[512];
  snprintf(rebuild_group, sizeof rebuild_group, "%s.fe-rebuild", k->group);
  const char *cons_defs[] = {"group.id", k->group,
                             "enable.auto.commit", "false",
                             "enable.auto.offset.store", "false",
                             "auto.offset.reset", "earliest",
                             "queued.max.messages.kbytes", "4096",
                             NULL, NULL};
  const char *sink_defs[] = {"enable.idempotence", "true",
                             "linger.ms", "1", NULL, NULL};
  const char *intent_defs[] = {"acks", "all", "enable.idempotence", "true",
                               "linger.ms", "0", NULL, NULL, NULL, NULL};
  const char *reader_defs[] = {"group.id", rebuild_group,
                               "enable.auto.commit", "false",
                               "enable.partition.eof", "true",
                               "auto.offset.reset", "earliest", NULL, NULL};
  rd_kafka_conf_t *c;
  rc = 0;
  if ((c = client(k, cons_defs, d, &rc)) != NULL) {
    rd_kafka_conf_set_rebalance_cb(c, rebalance);
    rd_kafka_conf_set_offset_commit_cb(c, commit_cb);
    k->consumer = make(c, RD_KAFKA_CONSUMER, d, &rc);
  }
  if (rc == 0 &&
      (c = client(k, sink_defs, d, &rc)) != NULL) {
    rd_kafka_conf_set_dr_msg_cb(c, sink_dr);
    char err[256];
    for (uint32_t i = 0; c != NULL && i < k->cfg.n_sink_props; i++)
      if (rd_kafka_conf_set(c, k->sink_props[i].name, k->sink_props[i].value,
                            err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(c);
        c = NULL;
        rc = diag_set(d, FE_EINCOMPAT, "sink_props[%u] %s=%s: %s", i,
                      k->sink_props[i].name, k->sink_props[i].value, err);
      }
    if (c != NULL)
      k->sink = make(c, RD_KAFKA_PRODUCER, d, &rc);
  }
  char intent_tmo[24];
  snprintf(intent_tmo, sizeof intent_tmo, "%u", cfg->intent_timeout_ms);
  intent_defs[6] = "message.timeout.ms", intent_defs[7] = intent_tmo;
  if (rc == 0 && k->intents != NULL &&
      (c = client(k, intent_defs, d, &rc)) != NULL) {
    rd_kafka_conf_set_dr_msg_cb(c, intent_dr);
    k->intent_rk = make(c, RD_KAFKA_PRODUCER, d, &rc);
  }
  if (rc == 0 &&
      (c = client(k, reader_defs, d, &rc)) != NULL)
    k->reader = make(c, RD_KAFKA_CONSUMER, d, &rc);
  if (rc == 0) {
    k->sink_topic = rd_kafka_topic_new(k->sink, k->outcomes, NULL);
    if (k->intent_rk != NULL)
      k->intent_topic = rd_kafka_topic_new(k->intent_rk, k->intents, NULL);
    if (k->sink_topic == NULL || (k->intent_rk != NULL && !k->intent_topic))
      rc = diag_set(d, FE_EINCOMPAT, "rd_kafka_topic_new failed");
  }
  if (rc != 0) {
    fe_kafka_destroy(k);
    return rc;
  }
  if (k->consumer != NULL)
    rd_kafka_poll_set_consumer(k->consumer);
  *out = k;
  return 0;
}

/* ------------------------------------------------------------ the sink */

/* Hands slot's outcome record to the producer.  Any thread; never blocks
 * (rd_kafka_produce without RD_KAFKA_MSG_F_BLOCK); the record stays in
 * the slot (no copy) until its delivery report. */
static void emit(fe_kafka_t *k, int32_t p, uint64_t account, kslot_t *s) {
  char key[24];
  int klen = key_of(account, key);
  __atomic_store_n(&s->state, S_PRODUCED, __ATOMIC_RELEASE); /* S1 */
  if (rd_kafka_produce(k->sink_topic, p, 0, s->out, FE_KAFKA_OUTCOME_BYTES,
                       key, (size_t)klen, s) == 0) {
    __atomic_store_n(&k->full_episode, 0, __ATOMIC_RELAXED);
    return;
  }
  rd_kafka_resp_err_t err = rd_kafka_last_error();
  CNT(k, queue_full);
  if (__atomic_exchange_n(&k->full_episode, 1, __ATOMIC_RELAXED) == 0)
    alert(k, FE_KAFKA_ALERT_QUEUE_FULL, p, "outcome producer refused: %s (%s)",
          rd_kafka_err2str(err),
          k->cfg.on_full == FE_KAFKA_FULL_SPILL ? "kept, re-sent" : "dropped");
  if (k->cfg.on_full == FE_KAFKA_FULL_DROP &&
      err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    CNT(k, dropped);
    __atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
    return;
  }
  /* Not handed over, so no delivery report can race this store. */
  __atomic_store_n(&s->state, S_SPILLED, __ATOMIC_RELEASE); /* S1 */
  __atomic_fetch_add(&k->spilled, 1, __ATOMIC_RELAXED);
}

/* A marker for outcomes the rebuild writes itself (no slot). */
static char in_doubt_mark;

static void sink_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                    void *opaque) {
  (void)rk;
  fe_kafka_t *k = opaque;
  kslot_t *s = m->_private;
  if (m->err != 0) {
    CNT(k, delivery_failed);
    alert(k, FE_KAFKA_ALERT_DELIVERY, m->partition, "outcome delivery: %s",
          rd_kafka_err2str(m->err));
  } else {
    CNT(k, outcomes);
  }
  if (s == (void *)&in_doubt_mark) {
    k->mark_pending--;
    k->mark_failed |= m->err != 0;
    return;
  }
  if (s == NULL)
    return; /* a stale outcome, sent as a copy */
  if (m->err != 0) {
    __atomic_store_n(&s->state, S_SPILLED, __ATOMIC_RELEASE);
    __atomic_fetch_add(&k->spilled, 1, __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
  }
}

void fe_kafka_on_outcome(const fe_event_t *ev, fe_idem_outcome_t *out,
                         void *kv) {
  fe_kafka_t *k = kv;
  if (k == NULL || ev == NULL || out == NULL)
    return;
  if (k->cfg.on_outcome != NULL)
    k->cfg.on_outcome(ev, out, k->cfg.outcome_user);
  origin_t o;
  memcpy(&o, fe_event_user((fe_event_t *)ev), sizeof o);
  if (o.tag != k->tag || o.partition >= k->cfg.max_partitions)
    return;
  kpart_t *part = &k->parts[o.partition];
  kslot_t *s = &part->slots[o.seq & k->mask];
  int revoked = out->status == FE_IDEM_DEAD_LETTERED &&
                out->reason == k->cfg.revoked_reason;
  fe_kafka_outcome_t r;
  memset(&r, 0, sizeof r);
  r.kind = FE_KAFKA_OUT_FINAL;
  r.partition = (int32_t)o.partition;
  r.account = ev->order.account;
  r.fingerprint = fe_idem_fingerprint(&ev->order);
  r.completed_ns = fe_clock_realtime_ns();
  r.trace_id = ev->trace_id;
  memcpy(r.client_order_id, ev->order.client_order_id, FE_CLORDID_MAX);
  r.outcome = *out;
  if (o.seq < __atomic_load_n(&part->assign_base, __ATOMIC_ACQUIRE) ||
      __atomic_load_n(&s->seq, __ATOMIC_RELAXED) != o.seq) {
    /* The partition was released before this order finished and taken
     * again since: its slot is gone.  Its outcome still goes to the log
     * (a copy), unless it was never sent. */
    CNT(k, stale);
    if (!revoked) {
      uint8_t buf[FE_KAFKA_OUTCOME_BYTES];
      char key[24];
      r.offset = -1;
      fe__kafka_outcome_encode(&r, buf);
      rd_kafka_produce(k->sink_topic, r.partition, RD_KAFKA_MSG_F_COPY, buf,
                       sizeof buf, key, (size_t)key_of(r.account, key), NULL);
    }
    return;
  }
  if (revoked) {
    __atomic_store_n(&s->state, S_ABANDONED, __ATOMIC_RELEASE);
    return;
  }
  r.offset = s->offset;
  fe__kafka_outcome_encode(&r, s->out);
  emit(k, r.partition, r.account, s);
}

/* ---------------------------------------------------------- the intents */

static void intent_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque) {
  (void)rk;
  (void)opaque;
  kslot_t *s = m->_private;
  if (s == NULL || m->len != FE_KAFKA_INTENT_BYTES)
    return;
  /* The record names its offset: a report that comes after the slot was
   * reused for another record (the stage gave up waiting) changes
   * nothing. */
  int64_t off;
  memcpy(&off, (const uint8_t *)m->payload + 8, sizeof off); /* LE host */
  uint64_t want = (uint64_t)off << 2 | I_PENDING;
  uint64_t to = (uint64_t)off << 2 | (m->err == 0 ? I_OK : I_FAILED);
  __atomic_compare_exchange_n(&s->intent_tag, &want, to, 0, __ATOMIC_RELEASE,
                              __ATOMIC_RELAXED); /* I1 */
}

void fe_kafka_intent_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                           uint32_t n, void *kv) {
  fe_kafka_t *k = kv;
  if (k == NULL || ctx == NULL || evs == NULL || k->intent_rk == NULL)
    return;
  kslot_t *sl[FE_BATCH_CHUNK];
  if (n > FE_BATCH_CHUNK)
    n = FE_BATCH_CHUNK; /* the bus never passes more */
  /* D2: announce ourselves before reading any partition's state; a
   * release (D1) stores FREE before it reads intent_busy, so either we see
   * FREE or it waits for us. */
  __atomic_fetch_add(&k->intent_busy, 1, __ATOMIC_SEQ_CST);
  uint32_t produced = 0;
  for (uint32_t i = 0; i < n; i++) {
    sl[i] = NULL;
    origin_t o;
    memcpy(&o, fe_event_user(evs[i]), sizeof o);
    if (o.tag != k->tag || o.partition >= k->cfg.max_partitions)
      continue;
    kpart_t *part = &k->parts[o.partition];
    if (__atomic_load_n(&part->state, __ATOMIC_SEQ_CST) != P_OWNED ||
        o.seq < __atomic_load_n(&part->assign_base, __ATOMIC_ACQUIRE)) {
      CNT(k, revoked_refused);
      ctx->text = "partition released before its intent";
      fe_batch_fail(ctx, evs[i], k->cfg.revoked_reason);
      continue;
    }
    kslot_t *s = &part->slots[o.seq & k->mask];
    __atomic_store_n(&s->intent_tag, (uint64_t)s->offset << 2 | I_PENDING,
                     __ATOMIC_RELAXED);
    char key[24];
    int klen = key_of(evs[i]->order.account, key);
    /* A copy: if we stop waiting, librdkafka may still hold it while the
     * slot is reused. */
    if (rd_kafka_produce(k->intent_topic, (int32_t)o.partition,
                         RD_KAFKA_MSG_F_COPY, s->intent, FE_KAFKA_INTENT_BYTES,
                         key, (size_t)klen, s) != 0) {
      CNT(k, intent_failed);
      alert(k, FE_KAFKA_ALERT_INTENT, (int32_t)o.partition,
            "intent not queued: %s", rd_kafka_err2str(rd_kafka_last_error()));
      ctx->text = "intent not queued";
      fe_batch_fail(ctx, evs[i], k->cfg.intent_reason);
      continue;
    }
    sl[i] = s;
    produced++;
  }
  if (produced > 0) {
    /* The group commit: one wait for the whole batch.  We serve the
     * delivery reports ourselves (rd_kafka_poll) and stop as soon as OUR
     * intents are answered; rd_kafka_flush() would also wait for other
     * shards' messages.  (One sitting measured flush at ~20 ms where this
     * took a few; another found both fast: the VM is noisy.)  Another
     * shard's poll may run our reports, which the CAS in intent_dr makes
     * harmless (I1 pairs with the acquire loads here). */
    uint64_t t0 = now_ns(), deadline = t0 + k->cfg.intent_timeout_ms * 1000000ull;
    uint64_t next_alert = t0 + 1000000000ull;
    for (uint32_t pending = produced; pending > 0 && now_ns() < deadline;) {
      rd_kafka_poll(k->intent_rk, 1);
      pending = 0;
      for (uint32_t i = 0; i < n; i++)
        pending += sl[i] != NULL &&
                   (__atomic_load_n(&sl[i]->intent_tag, __ATOMIC_ACQUIRE) & 3) ==
                       I_PENDING;
      if (pending > 0 && now_ns() >= next_alert) {
        next_alert += 1000000000ull; /* a broker is down: say so, once a second */
        alert(k, FE_KAFKA_ALERT_INTENT, -1, "%u intents unacknowledged for %"
              PRIu64 " ms: the execution stage waits", pending,
              (now_ns() - t0) / 1000000);
        /* A partition released meanwhile gives its orders up (below). */
        uint32_t released = 0;
        for (uint32_t i = 0; i < n; i++)
          if (sl[i] != NULL) {
            origin_t o;
            memcpy(&o, fe_event_user(evs[i]), sizeof o);
            released += __atomic_load_n(&k->parts[o.partition].state,
                                        __ATOMIC_SEQ_CST) != P_OWNED;
          }
        if (released > 0)
          break;
      }
    }
    uint32_t failed = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (sl[i] == NULL)
        continue;
      origin_t o;
      memcpy(&o, fe_event_user(evs[i]), sizeof o);
      uint64_t t = __atomic_load_n(&sl[i]->intent_tag, __ATOMIC_ACQUIRE);
      if ((t & 3) != I_OK &&
          __atomic_load_n(&k->parts[o.partition].state, __ATOMIC_SEQ_CST) !=
              P_OWNED) {
        CNT(k, revoked_refused);
        ctx->text = "partition released before its intent";
        fe_batch_fail(ctx, evs[i], k->cfg.revoked_reason);
        continue;
      }
      if ((t & 3) == I_OK) {
        CNT(k, intents);
        continue;
      }
      failed++;
      CNT(k, intent_failed);
      ctx->text = "intent not acknowledged";
      fe_batch_fail(ctx, evs[i], k->cfg.intent_reason);
    }
    CNT(k, intent_batches);
    __atomic_fetch_add(&k->st.intent_wait_ns, now_ns() - t0, __ATOMIC_RELAXED);
    if (failed > 0)
      alert(k, FE_KAFKA_ALERT_INTENT, -1, "%u of %u intents not acknowledged "
            "within %u ms: those orders were not sent", failed, produced,
            k->cfg.intent_timeout_ms);
  }
  __atomic_fetch_sub(&k->intent_busy, 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------- the source */

static void one_part(rd_kafka_topic_partition_list_t **l, const char *topic,
                     int32_t p, int64_t off) {
  *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(*l, topic, p)->offset = off;
}

/* Pauses (pause 1) or resumes (0) the fetching of partition p. */
static void set_paused(fe_kafka_t *k, int32_t p, int pause) {
  kpart_t *part = &k->parts[p];
  if (part->paused == pause)
    return;
  rd_kafka_topic_partition_list_t *l;
  one_part(&l, k->orders, p, RD_KAFKA_OFFSET_INVALID);
  if (pause)
    rd_kafka_pause_partitions(k->consumer, l);
  else
    rd_kafka_resume_partitions(k->consumer, l);
  rd_kafka_topic_partition_list_destroy(l);
  part->paused = pause;
  part->rewound = 0;
  if (pause)
    CNT(k, pauses);
  else
    part->full_wait = 0;
}

static void pause_part(fe_kafka_t *k, int32_t p) { set_paused(k, p, 1); }
static void resume_part(fe_kafka_t *k, int32_t p) { set_paused(k, p, 0); }

/* A record that arrived for a paused partition (fetched before the pause
 * took effect): dropped, and the partition sent back to it, so it comes
 * again after the resume.  Records come in offset order, so the first
 * one dropped is the earliest. */
static void rewind_to(fe_kafka_t *k, int32_t p, int64_t off) {
  kpart_t *part = &k->parts[p];
  CNT(k, rewinds);
  if (part->rewound)
    return;
  rd_kafka_topic_partition_list_t *l;
  one_part(&l, k->orders, p, off);
  rd_kafka_error_t *e = rd_kafka_seek_partitions(k->consumer, l, 0);
  if (e != NULL)
    rd_kafka_error_destroy(e);
  rd_kafka_topic_partition_list_destroy(l);
  part->rewound = 1;
}

static kslot_t *take_slot(fe_kafka_t *k, kpart_t *part, int64_t off) {
  kslot_t *s = &part->slots[part->next & k->mask];
  __atomic_store_n(&s->seq, part->next, __ATOMIC_RELAXED);
  s->offset = off;
  /* The bus's publish releases this to the workers. */
  __atomic_store_n(&s->state, S_INFLIGHT, __ATOMIC_RELAXED);
  part->next++;
  part->last_offset = off;
  __atomic_fetch_add(&k->st.inflight, 1, __ATOMIC_RELAXED);
  return s;
}

static void malformed(fe_kafka_t *k, const rd_kafka_message_t *m, int rc) {
  CNT(k, malformed);
  char text[FE_DLQ_TEXT_MAX];
  snprintf(text, sizeof text, "%s/%" PRId32 "@%" PRId64 ": %s", k->orders,
           m->partition, m->offset, fe_err_name(rc));
  alert(k, FE_KAFKA_ALERT_MALFORMED, m->partition, "%s", text);
  if (k->cfg.dlq == NULL)
    return;
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = FE_EV_USER;
  fe_dlq_put_t in;
  memset(&in, 0, sizeof in);
  in.event = &ev;
  in.user_area = m->payload;
  in.user_len = m->payload != NULL ? (uint32_t)m->len : 0;
  in.kind = FE_KAFKA_DLQ_MALFORMED;
  in.reason = 0;
  in.text = text;
  in.attempts = 1;
  in.first_seen_ns = fe_clock_realtime_ns();
  if (fe_dlq_put(k->cfg.dlq, &in, 0, NULL) != 0)
    alert(k, FE_KAFKA_ALERT_MALFORMED, m->partition,
          "dead-letter queue refused %s", text);
}

/* Tries to take m.  Returns 1 when m was dealt with (the caller destroys
 * it), 0 when the bus pushed back (the caller holds it, paused). */
static int take(fe_kafka_t *k, const rd_kafka_message_t *m) {
  int32_t p = m->partition;
  kpart_t *part = &k->parts[p];
  uint32_t type;
  fe_order_t o;
  uint64_t trace;
  int rc = fe_kafka_order_decode(m->payload, m->len, m->key, m->key_len, &type,
                                 &o, &trace);
  if (rc != 0) {
    malformed(k, m, rc);
    kslot_t *s = take_slot(k, part, m->offset);
    __atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
    return 1;
  }
  kslot_t *s = take_slot(k, part, m->offset);
  origin_t org = {k->tag, (uint32_t)p, part->next - 1};
  if (k->intent_rk != NULL)
    fe__kafka_intent_encode(p, m->offset, m->payload, s->intent);
  fe_submit_t in;
  memset(&in, 0, sizeof in);
  in.type = type;
  in.order = &o;
  in.trace_id = trace;
  in.user_area = &org;
  in.user_len = sizeof org;
  /* A momentarily full ring is waited out (1 ms) rather than paused for:
   * a pause costs a fetch round trip when it ends. */
  in.timeout_ns = 1000000;
  fe_submit_result_t res;
  rc = fe_bus_submit(k->bus, &in, &res);
  if (rc == FE_EDUPLICATE && res.outcome.status == FE_IDEM_DEAD_LETTERED &&
      res.outcome.reason == k->cfg.revoked_reason) {
    /* This server refused it once when it lost the partition, before
     * sending it; the log has no outcome for it: it runs now. */
    fe_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.order = o;
    ev.trace_id = trace;
    rc = fe_bus_redrive(&ev, &org, sizeof org, 0, k->bus);
  }
  switch (rc) {
  case 0:
    CNT(k, submitted);
    return 1;
  case FE_EDUPLICATE:
  case FE_EINPROGRESS:
    /* Ran (or runs) already: its outcome is in the log or on its way from
     * an earlier slot, which holds the commit back until then. */
    CNT(k, duplicates);
    __atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
    return 1;
  case FE_ETIMEDOUT:
  case FE_EFULL:
  case FE_ETABLEFULL:
  case FE_ESTOPPED:
    part->next--; /* the slot was never used */
    __atomic_fetch_sub(&k->st.inflight, 1, __ATOMIC_RELAXED);
    return 0;
  default: {
    CNT(k, refused);
    fe_kafka_outcome_t r;
    memset(&r, 0, sizeof r);
    r.kind = FE_KAFKA_OUT_REFUSED;
    r.partition = p;
    r.error = rc;
    r.offset = m->offset;
    r.account = o.account;
    r.fingerprint = fe_idem_fingerprint(&o);
    r.completed_ns = fe_clock_realtime_ns();
    r.trace_id = trace;
    memcpy(r.client_order_id, o.client_order_id, FE_CLORDID_MAX);
    r.outcome.status = FE_IDEM_REJECTED;
    fe__kafka_outcome_encode(&r, s->out);
    emit(k, p, o.account, s);
    return 1;
  }
  }
}

static void consume(fe_kafka_t *k, rd_kafka_message_t *m) {
  if (m->err != 0) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      alert(k, FE_KAFKA_ALERT_CLIENT, m->partition, "consumer: %s",
            rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return;
  }
  int32_t p = m->partition;
  if (p < 0 || (uint32_t)p >= k->nparts) {
    rd_kafka_message_destroy(m);
    return;
  }
  if (__atomic_load_n(&k->parts[p].state, __ATOMIC_RELAXED) != P_OWNED) {
    /* Assigned but not rebuilt yet: fetched before its pause took hold.
     * It must come again once the partition is ours. */
    if (k->parts[p].needs_rebuild)
      rewind_to(k, p, m->offset);
    rd_kafka_message_destroy(m);
    return;
  }
  kpart_t *part = &k->parts[p];
  CNT(k, consumed);
  if (part->paused || part->held != NULL) {
    rewind_to(k, p, m->offset);
    rd_kafka_message_destroy(m);
    return;
  }
  if (take(k, m)) {
    rd_kafka_message_destroy(m);
    if (part->next - part->base >= k->cfg.max_inflight) {
      part->full_wait = 1;
      pause_part(k, p);
    }
    return;
  }
  part->held = m;
  part->backoff_ns = HOLD_RETRY_MIN_NS;
  part->retry_at_ns = now_ns() + part->backoff_ns;
  pause_part(k, p);
}

/* The held record of a back-pressured partition, once more. */
static void retry_held(fe_kafka_t *k, int32_t p, uint64_t now) {
  kpart_t *part = &k->parts[p];
  if (part->held == NULL || now < part->retry_at_ns)
    return;
  if (part->next - part->base >= k->cfg.max_inflight)
    return;
  if (!take(k, part->held)) {
    if (part->backoff_ns < HOLD_RETRY_MAX_NS)
      part->backoff_ns *= 2;
    part->retry_at_ns = now + part->backoff_ns;
    return;
  }
  rd_kafka_message_destroy(part->held);
  part->held = NULL;
  if (part->next - part->base < k->cfg.max_inflight)
    resume_part(k, p);
  else
    part->full_wait = 1;
}

/* Moves base over finished slots; returns the offset to commit (the
 * first unfinished record's, or the one after the last taken), -1: none. */
static int64_t advance(fe_kafka_t *k, kpart_t *part) {
  while (part->base < part->next) {
    kslot_t *s = &part->slots[part->base & k->mask];
    if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != S_DONE) /* S2 */
      break;
    part->base++;
    __atomic_fetch_sub(&k->st.inflight, 1, __ATOMIC_RELAXED);
  }
  if (part->base < part->next)
    return part->slots[part->base & k->mask].offset;
  return part->last_offset >= 0 ? part->last_offset + 1 : -1;
}

/* Slots in SPILLED go to the producer again. */
static void resend(fe_kafka_t *k) {
  if (__atomic_load_n(&k->spilled, __ATOMIC_RELAXED) == 0)
    return;
  for (uint32_t p = 0; p < k->nparts; p++) {
    kpart_t *part = &k->parts[p];
    for (uint64_t q = part->base; q < part->next; q++) {
      kslot_t *s = &part->slots[q & k->mask];
      if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != S_SPILLED) /* S2 */
        continue;
      __atomic_fetch_sub(&k->spilled, 1, __ATOMIC_RELAXED);
      uint64_t account = 0;
      for (int i = 7; i >= 0; i--)
        account = account << 8 | s->out[24 + i];
      emit(k, (int32_t)p, account, s);
      if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == S_SPILLED)
        return; /* still full: later */
    }
  }
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offs, void *opaque) {
  (void)rk;
  fe_kafka_t *k = opaque;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
    return;
  if (err != 0) {
    CNT(k, commit_failed);
    alert(k, FE_KAFKA_ALERT_COMMIT, -1, "commit: %s", rd_kafka_err2str(err));
    return;
  }
  CNT(k, commits);
  for (int i = 0; offs != NULL && i < offs->cnt; i++) {
    int32_t p = offs->elems[i].partition;
    if (offs->elems[i].err == 0 && p >= 0 && (uint32_t)p < k->nparts &&
        offs->elems[i].offset > k->parts[p].committed)
      k->parts[p].committed = offs->elems[i].offset;
  }
}

/* Commits what advance() allows for every owned partition (sync: wait
 * for the answer, on a revoke). */
static void commit(fe_kafka_t *k, int sync, int32_t only) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
  for (uint32_t p = 0; p < k->nparts; p++) {
    kpart_t *part = &k->parts[p];
    if ((only >= 0 && (int32_t)p != only) ||
        (only < 0 &&
         __atomic_load_n(&part->state, __ATOMIC_RELAXED) != P_OWNED))
      continue;
    int64_t off = advance(k, part);
    if (off >= 0 && off > part->committed)
      rd_kafka_topic_partition_list_add(l, k->orders, (int32_t)p)->offset = off;
  }
  if (l->cnt > 0) {
    rd_kafka_resp_err_t err = rd_kafka_commit(k->consumer, l, !sync);
    if (sync)
      commit_cb(k->consumer, err, l, k);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* Delivery reports, re-sends, window moves; resumes partitions that have
 * room again. */
static void service(fe_kafka_t *k, int poll_ms) {
  rd_kafka_poll(k->sink, poll_ms);
  resend(k);
  uint64_t now = now_ns();
  for (uint32_t p = 0; p < k->nparts; p++) {
    kpart_t *part = &k->parts[p];
    if (__atomic_load_n(&part->state, __ATOMIC_RELAXED) != P_OWNED)
      continue;
    advance(k, part);
    if (part->held != NULL)
      retry_held(k, (int32_t)p, now);
    else if (part->full_wait && part->next - part->base < k->cfg.max_inflight)
      resume_part(k, (int32_t)p);
  }
  if (now - k->last_commit_ns >= k->cfg.commit_interval_ms * 1000000ull) {
    k->last_commit_ns = now;
    commit(k, 0, -1);
  }
}

/* ------------------------------------------------------------ rebuild */

typedef int (*log_fn)(fe_kafka_t *k, int32_t p, const rd_kafka_message_t *m,
                      void *arg);

/* Reads partition p of topic from its start to its end as of now. */
static int read_log(fe_kafka_t *k, const char *topic, int32_t p,
                    uint64_t deadline, log_fn fn, void *arg) {
  int64_t lo, hi;
  int left = (int)((deadline - now_ns()) / 1000000);
  if (left <= 0)
    return FE_ETIMEDOUT;
  rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(k->reader, topic, p, &lo, &hi, left);
  if (e != 0) {
    alert(k, FE_KAFKA_ALERT_REBUILD, p, "%s watermarks: %s", topic,
          rd_kafka_err2str(e));
    return FE_EIO;
  }
  if (hi <= lo)
    return 0;
  rd_kafka_topic_partition_list_t *l;
  one_part(&l, topic, p, lo);
  e = rd_kafka_assign(k->reader, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != 0)
    return FE_EIO;
  int rc = FE_ETIMEDOUT;
  while (now_ns() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(k->reader, 50);
    if (m == NULL)
      continue;
    int64_t off = m->offset;
    int err = m->err, eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if (err == 0 && m->partition == p)
      rc = fn(k, p, m, arg);
    else
      rc = FE_ETIMEDOUT;
    rd_kafka_message_destroy(m);
    if (rc < 0 && rc != FE_ETIMEDOUT)
      break;
    if ((err == 0 && off >= hi - 1) || (eof && off >= hi)) {
      rc = 0;
      break;
    }
    rc = FE_ETIMEDOUT;
  }
  rd_kafka_assign(k->reader, NULL);
  return rc;
}

static int restore_outcome(fe_kafka_t *k, int32_t p,
                           const rd_kafka_message_t *m, void *arg) {
  (void)p;
  (void)arg;
  fe_kafka_outcome_t o;
  if (fe_kafka_outcome_decode(m->payload, m->len, &o) != 0 ||
      o.kind != FE_KAFKA_OUT_FINAL)
    return 0;
  fe_idem_key_t key;
  if (fe_idem_key(o.account, o.client_order_id,
                  strnlen(o.client_order_id, FE_CLORDID_MAX), &key) != 0)
    return 0;
  int rc = fe_idem_restore(k->cfg.idem, &key, o.fingerprint, &o.outcome,
                           o.completed_ns);
  if (rc == 0)
    CNT(k, restored);
  if (rc == FE_ETABLEFULL) {
    alert(k, FE_KAFKA_ALERT_REBUILD, p, "idempotency table full");
    return rc;
  }
  return 0;
}

typedef struct doubt {
  fe_idem_key_t key;
  fe_kafka_outcome_t out;
  uint8_t buf[FE_KAFKA_OUTCOME_BYTES];
} doubt_t;

typedef struct doubts {
  doubt_t *v;
  size_t n, cap;
} doubts_t;

static int check_intent(fe_kafka_t *k, int32_t p, const rd_kafka_message_t *m,
                        void *arg) {
  doubts_t *ds = arg;
  int32_t ip;
  int64_t off;
  uint32_t type;
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  if (fe__kafka_intent_decode(m->payload, m->len, &ip, &off, &type, &ev.order,
                              &ev.trace_id) != 0)
    return 0;
  ev.type = type;
  fe_idem_key_t key;
  if (fe_idem_key_order(&ev.order, &key) != 0)
    return 0;
  fe_idem_entry_t e;
  if (fe_idem_lookup(k->cfg.idem, &key, &e) == 0)
    return 0; /* it has an outcome */
  for (size_t i = 0; i < ds->n; i++)
    if (ds->v[i].key.lo == key.lo && ds->v[i].key.hi == key.hi)
      return 0; /* asked already */
  int sent = 1;
  if (k->cfg.in_doubt != NULL)
    sent = k->cfg.in_doubt(&ev, k->cfg.in_doubt_user);
  if (sent < 0) {
    alert(k, FE_KAFKA_ALERT_REBUILD, p, "in_doubt hook: %s",
          fe_err_name(sent));
    return sent;
  }
  if (!sent) {
    CNT(k, in_doubt_unsent);
    return 0;
  }
  CNT(k, in_doubt_sent);
  if (ds->n == ds->cap) {
    size_t cap = ds->cap ? ds->cap * 2 : 64;
    doubt_t *v = realloc(ds->v, cap * sizeof *v);
    if (v == NULL)
      return FE_ENOMEM;
    ds->v = v, ds->cap = cap;
  }
  doubt_t *d = &ds->v[ds->n++];
  memset(d, 0, sizeof *d);
  d->key = key;
  d->out.kind = FE_KAFKA_OUT_FINAL;
  d->out.flags = FE_KAFKA_OUT_IN_DOUBT_SENT;
  d->out.partition = p;
  d->out.offset = off;
  d->out.account = ev.order.account;
  d->out.fingerprint = fe_idem_fingerprint(&ev.order);
  d->out.completed_ns = fe_clock_realtime_ns();
  d->out.trace_id = ev.trace_id;
  memcpy(d->out.client_order_id, ev.order.client_order_id, FE_CLORDID_MAX);
  d->out.outcome.status = FE_IDEM_COMPLETED;
  fe__kafka_outcome_encode(&d->out, d->buf);
  return 0;
}

/* Rebuilds partition p from the log (see Hand-over in kafka.h). */
static int rebuild(fe_kafka_t *k, int32_t p) {
  uint64_t deadline = now_ns() + k->cfg.rebuild_timeout_ms * 1000000ull;
  int rc = read_log(k, k->outcomes, p, deadline, restore_outcome, NULL);
  if (rc != 0 || k->intents == NULL)
    return rc;
  doubts_t ds = {NULL, 0, 0};
  rc = read_log(k, k->intents, p, deadline, check_intent, &ds);
  k->mark_pending = 0;
  k->mark_failed = 0;
  for (size_t i = 0; rc == 0 && i < ds.n; i++) {
    char key[24];
    if (rd_kafka_produce(k->sink_topic, p, RD_KAFKA_MSG_F_COPY, ds.v[i].buf,
                         FE_KAFKA_OUTCOME_BYTES, key,
                         (size_t)key_of(ds.v[i].out.account, key),
                         &in_doubt_mark) != 0)
      rc = FE_EIO;
    else
      k->mark_pending++;
  }
  /* The outcomes must be in the log before the keys answer duplicates. */
  while (k->mark_pending > 0 && now_ns() < deadline)
    rd_kafka_poll(k->sink, 10);
  if (rc == 0 && (k->mark_pending > 0 || k->mark_failed))
    rc = k->mark_pending > 0 ? FE_ETIMEDOUT : FE_EIO;
  for (size_t i = 0; rc == 0 && i < ds.n; i++)
    if (fe_idem_restore(k->cfg.idem, &ds.v[i].key, ds.v[i].out.fingerprint,
                        &ds.v[i].out.outcome, ds.v[i].out.completed_ns) == 0)
      CNT(k, restored);
  free(ds.v);
  return rc;
}

static void own(fe_kafka_t *k, int32_t p) {
  kpart_t *part = &k->parts[p];
  part->base = part->next;
  part->last_offset = -1;
  part->committed = -1;
  part->held = NULL;
  part->paused = part->rewound = part->full_wait = part->needs_rebuild = 0;
  __atomic_store_n(&part->assign_base, part->next, __ATOMIC_RELEASE);
  __atomic_store_n(&part->state, P_OWNED, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&k->st.owned, 1, __ATOMIC_RELAXED);
  CNT(k, assigned);
}

static int all_finished(fe_kafka_t *k, kpart_t *part) {
  for (uint64_t q = part->base; q < part->next; q++) {
    uint32_t s = __atomic_load_n(&part->slots[q & k->mask].state,
                                 __ATOMIC_ACQUIRE);
    if (s != S_DONE && s != S_ABANDONED)
      return 0;
  }
  return 1;
}

/* Revoke: stop taking, finish, commit, release. */
static void release(fe_kafka_t *k, int32_t p) {
  kpart_t *part = &k->parts[p];
  if (__atomic_load_n(&part->state, __ATOMIC_RELAXED) != P_OWNED)
    return;
  if (part->held != NULL) {
    rd_kafka_message_destroy(part->held);
    part->held = NULL;
  }
  uint64_t deadline = now_ns() + k->cfg.revoke_timeout_ms * 1000000ull;
  while (!all_finished(k, part) && now_ns() < deadline) {
    rd_kafka_poll(k->sink, 2);
    resend(k);
  }
  int timed_out = !all_finished(k, part);
  /* D1: from here the intent stage refuses this partition's orders. */
  __atomic_store_n(&part->state, P_FREE, __ATOMIC_SEQ_CST);
  uint64_t busy_deadline = now_ns() + (k->cfg.intent_timeout_ms + 1000ull) *
                                          1000000ull;
  while (__atomic_load_n(&k->intent_busy, __ATOMIC_SEQ_CST) != 0 &&
         now_ns() < busy_deadline)
    rd_kafka_poll(k->sink, 1);
  if (timed_out) {
    CNT(k, revoke_timeouts);
    alert(k, FE_KAFKA_ALERT_REVOKE_TIMEOUT, p,
          "released with %" PRIu64 " orders unfinished after %u ms",
          part->next - part->base, k->cfg.revoke_timeout_ms);
  }
  commit(k, 1, p);
  __atomic_fetch_sub(&k->st.inflight, part->next - part->base,
                     __ATOMIC_RELAXED);
  part->base = part->next;
  __atomic_fetch_sub(&k->st.owned, 1, __ATOMIC_RELAXED);
  CNT(k, revoked);
}

static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque) {
  fe_kafka_t *k = opaque;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) {
      int32_t p = parts->elems[i].partition;
      if (p < 0 || (uint32_t)p >= k->nparts)
        continue;
      int rc = rebuild(k, p);
      if (rc == 0) {
        own(k, p);
      } else {
        CNT(k, rebuild_failed);
        alert(k, FE_KAFKA_ALERT_REBUILD, p, "rebuild failed (%s): paused, "
              "retried", fe_err_name(rc));
        k->parts[p].needs_rebuild = 1;
      }
    }
    rd_kafka_assign(rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
      int32_t p = parts->elems[i].partition;
      if (p >= 0 && (uint32_t)p < k->nparts && k->parts[p].needs_rebuild) {
        k->parts[p].paused = 0;
        pause_part(k, p);
      }
    }
  } else {
    for (int i = 0; i < parts->cnt; i++) {
      int32_t p = parts->elems[i].partition;
      if (p >= 0 && (uint32_t)p < k->nparts) {
        release(k, p);
        k->parts[p].needs_rebuild = 0;
      }
    }
    rd_kafka_assign(rk, NULL);
  }
}

/* Partitions whose rebuild failed at assignment: again, once a second. */
static void retry_rebuilds(fe_kafka_t *k, uint64_t *last) {
  uint64_t now = now_ns();
  if (now - *last < 1000000000ull)
    return;
  *last = now;
  for (uint32_t p = 0; p < k->nparts; p++) {
    kpart_t *part = &k->parts[p];
    if (!part->needs_rebuild)
      continue;
    if (rebuild(k, (int32_t)p) != 0) {
      CNT(k, rebuild_failed);
      continue;
    }
    own(k, (int32_t)p);
    part->paused = 1; /* still paused in librdkafka: resume it */
    resume_part(k, (int32_t)p);
  }
}

static void *source_main(void *arg) {
  fe_kafka_t *k = arg;
  uint64_t last_rebuild = 0;
  while (__atomic_load_n(&k->running, __ATOMIC_RELAXED)) {
    int holding = 0;
    for (uint32_t p = 0; p < k->nparts; p++)
      holding |= k->parts[p].held != NULL;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, holding ? 1 : 10);
    if (m != NULL)
      consume(k, m);
    service(k, 0);
    retry_rebuilds(k, &last_rebuild);
  }
  /* Leaving: the revoke callback finishes and commits each partition. */
  rd_kafka_consumer_close(k->consumer);
  uint64_t deadline = now_ns() + k->cfg.revoke_timeout_ms * 1000000ull;
  while (rd_kafka_outq_len(k->sink) > 0 && now_ns() < deadline) {
    rd_kafka_poll(k->sink, 5);
    resend(k);
  }
  k->stop_rc = rd_kafka_outq_len(k->sink) > 0 ? FE_ETIMEDOUT : 0;
  return NULL;
}

/* Partition count of topic, or a negative code (*why: librdkafka's
 * last error).  Transient errors are retried until the deadline. */
static int partitions_of(fe_kafka_t *k, const char *topic, int timeout_ms,
                         rd_kafka_resp_err_t *why) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(k->consumer, topic, NULL);
  if (t == NULL)
    return FE_EIO;
  uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
  int n = FE_ETIMEDOUT;
  for (;;) {
    int left = (int)((deadline - now_ns()) / 1000000);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->consumer, 0, t, &md,
                                              left > 1000 ? 1000 : left);
    if (e == 0) {
      e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
      if (e == 0)
        n = md->topics[0].partition_cnt;
      rd_kafka_metadata_destroy(md);
    }
    *why = e;
    if (e == 0 || now_ns() + 10000000ull >= deadline)
      break;
    rd_kafka_poll(k->consumer, 10); /* brokers still connecting */
  }
  rd_kafka_topic_destroy(t);
  return n;
}

int fe_kafka_start(fe_kafka_t *k, fe_bus_t *bus, fe_diag_t *d) {
  if (k == NULL || bus == NULL)
    return diag_set(d, FE_EINVAL, "k and bus are required");
  if (k->started)
    return diag_set(d, FE_ESTATE, "already started");
  if (fe_bus_user_size(bus) < FE_KAFKA_ORIGIN_BYTES)
    return diag_set(d, FE_EINCOMPAT, "the bus's user area has %u bytes: at "
                    "least %d needed", fe_bus_user_size(bus),
                    FE_KAFKA_ORIGIN_BYTES);
  for (uint32_t i = 0; i < k->cfg.n_props; i++)
    if (strcmp(k->props[i].name, "partition.assignment.strategy") == 0 &&
        strstr(k->props[i].value, "cooperative") != NULL)
      return diag_set(d, FE_EINCOMPAT, "props[%u]: cooperative rebalancing "
                      "is not supported (eager only)", i);
  int tmo = (int)k->cfg.rebuild_timeout_ms;
  const char *topics[3] = {k->orders, k->outcomes, k->intents};
  int n[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    if (topics[i] == NULL)
      continue;
    rd_kafka_resp_err_t why = 0;
    n[i] = partitions_of(k, topics[i], tmo, &why);
    if (n[i] < 0)
      return diag_set(d, n[i], "topic %s: no metadata within %d ms (%s)",
                      topics[i], tmo, rd_kafka_err2name(why));
    if (n[i] == 0)
      return diag_set(d, FE_EINCOMPAT, "topic %s: no partitions", topics[i]);
  }
  if (n[1] != n[0] || (k->intents != NULL && n[2] != n[0]))
    return diag_set(d, FE_EINCOMPAT, "partitions: %s has %d, %s %d, %s %d: "
                    "all must be equal", k->orders, n[0], k->outcomes, n[1],
                    k->intents ? k->intents : "(no intents)", n[2]);
  if ((uint32_t)n[0] > k->cfg.max_partitions)
    return diag_set(d, FE_ERANGE, "topic %s has %d partitions, max_partitions "
                    "is %u", k->orders, n[0], k->cfg.max_partitions);
  k->nparts = (uint32_t)n[0];
  k->bus = bus;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, k->orders, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(k->consumer, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != 0)
    return diag_set(d, FE_EIO, "subscribe: %s", rd_kafka_err2str(e));
  __atomic_store_n(&k->running, 1, __ATOMIC_RELAXED);
  if (pthread_create(&k->thread, NULL, source_main, k) != 0) {
    rd_kafka_unsubscribe(k->consumer);
    return diag_set(d, FE_ETHREAD, "pthread_create failed");
  }
  k->started = 1;
  return 0;
}

int fe_kafka_stop(fe_kafka_t *k) {
  if (k == NULL)
    return FE_EINVAL;
  if (!k->started || k->stopped)
    return FE_ESTATE;
  __atomic_store_n(&k->running, 0, __ATOMIC_RELAXED);
  pthread_join(k->thread, NULL);
  k->stopped = 1;
  return k->stop_rc;
}

void fe_kafka_destroy(fe_kafka_t *k) {
  if (k == NULL)
    return;
  if (k->started && !k->stopped)
    fe_kafka_stop(k);
  for (uint32_t p = 0; k->parts != NULL && p < k->cfg.max_partitions; p++) {
    if (k->parts[p].held != NULL)
      rd_kafka_message_destroy(k->parts[p].held);
  }
  if (k->sink_topic != NULL)
    rd_kafka_topic_destroy(k->sink_topic);
  if (k->intent_topic != NULL)
    rd_kafka_topic_destroy(k->intent_topic);
  if (k->consumer != NULL) {
    if (!k->started)
      rd_kafka_consumer_close(k->consumer);
    rd_kafka_destroy(k->consumer);
  }
  if (k->reader != NULL) {
    rd_kafka_consumer_close(k->reader);
    rd_kafka_destroy(k->reader);
  }
  /* Anything unacknowledged is purged: its order is re-delivered to the
   * next owner (nothing after it was committed). */
  if (k->intent_rk != NULL) {
    rd_kafka_purge(k->intent_rk, RD_KAFKA_PURGE_F_QUEUE |
                                     RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(k->intent_rk);
  }
  if (k->sink != NULL) {
    rd_kafka_purge(k->sink, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(k->sink, 0);
    rd_kafka_destroy(k->sink);
  }
  for (uint32_t p = 0; k->parts != NULL && p < k->cfg.max_partitions; p++)
    free(k->parts[p].slots);
  free(k->parts);
  for (uint32_t i = 0; i < FE_KAFKA_MAX_PROPS; i++) {
    free((char *)k->props[i].name);
    free((char *)k->props[i].value);
    free((char *)k->sink_props[i].name);
    free((char *)k->sink_props[i].value);
  }
  free(k->brokers);
  free(k->group);
  free(k->orders);
  free(k->outcomes);
  free(k->intents);
  free(k);
}

int fe_kafka_stats(const fe_kafka_t *k, fe_kafka_stats_t *out) {
  if (k == NULL || out == NULL)
    return FE_EINVAL;
  const uint64_t *src = (const uint64_t *)&k->st;
  uint64_t *dst = (uint64_t *)out;
  _Static_assert(sizeof(kstats_t) == sizeof(fe_kafka_stats_t), "stats");
  for (size_t i = 0; i < sizeof(kstats_t) / sizeof(uint64_t); i++)
    dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
  return 0;
}
