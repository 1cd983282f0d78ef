/*
 * test_kafka: libfinevent-kafka on librdkafka's in-process mock cluster
 * (3 brokers, loopback, no external Kafka).
 *
 *   codec_*            the wire formats: round trip, every refusal
 *   config_*           NULL and garbage to every public call
 *   end_to_end         orders in, outcomes out: per-account order, each
 *                      order exactly once, malformed records dead-lettered
 *                      with topic/partition/offset, a reused id refused,
 *                      re-sent records absorbed
 *   broker_down_up     a broker down and up during load: no loss, no
 *                      duplicate
 *   rebalance          two instances in one group, the second joins under
 *                      load: partitions move, nothing runs twice
 *   sigkill_takeover   an instance in a child process is SIGKILLed and never
 *                      restarted; the other takes its partitions over: the
 *                      venue saw each order at most once and every
 *                      acknowledged order exactly once
 *   backpressure       a blocked stage: partitions pause, memory bounded,
 *                      then everything finishes exactly once
 *   sink_full_and_delivery  the outcome producer's queue full (SPILL:
 *                      counted, alerted, re-sent; DROP: counted) and its
 *                      deliveries failing while a broker is down (alerted,
 *                      re-sent): nothing lost, nothing run twice
 *
 * Waits are bounded (FE_T_WAIT_UNTIL); the mock's group joins take ~3 s
 * and a rebalance ~5 s with session.timeout.ms=6000.
 */
#include "helpers.h"

#include <sys/prctl.h>

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "finevent/kafka.h"

#define NPART 4
#define MAX_ORDERS 40000
#define ACCOUNTS 40
#define NLIVE 4 /* instances one test runs at once, at most */

static const fe_kafka_prop_t PROPS[] = {
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "500"},
    {"fetch.wait.max.ms", "10"},
    {"log_level", "2"},
};
#define NPROPS ((uint32_t)(sizeof PROPS / sizeof PROPS[0]))

/* ------------------------------------------------------------ the cluster */

typedef struct cluster {
  rd_kafka_t *owner; /* the handle the mock lives in */
  rd_kafka_mock_cluster_t *mc;
  char boot[256];
  rd_kafka_t *prod;  /* the clients' producer of orders */
} cluster_t;

/* What the running test started, so that a failed assertion (cmocka
 * longjmps out of the test, then runs teardown()) does not leave a mock
 * cluster, a running instance, a pacer thread, a child process or the
 * venue globals to the tests after it.  The helpers below register what
 * they start and unregister what they end; everything here is on the heap,
 * never on the failed test's stack. */
struct inst;
struct outlog;
struct intents;
struct pacer;
static struct {
  cluster_t *cluster;
  struct inst *inst[NLIVE];
  struct outlog *log;
  struct intents *intents;
  struct pacer *pacer;
  pid_t child;
  char venue[64]; /* the SIGKILL test's venue file; "" when none */
} g_live;

static rd_kafka_t *new_client(rd_kafka_type_t t, const char *const *kv) {
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  for (int i = 0; kv[i] != NULL; i += 2)
    if (rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof err))
      return NULL;
  return rd_kafka_new(t, c, err, sizeof err);
}

static cluster_t *cluster_up(void) {
  cluster_t *c = calloc(1, sizeof *c);
  assert_non_null(c);
  assert_null(g_live.cluster);
  g_live.cluster = c;
  const char *kv[] = {"log_level", "2", NULL};
  c->owner = new_client(RD_KAFKA_PRODUCER, kv);
  assert_non_null(c->owner);
  c->mc = rd_kafka_mock_cluster_new(c->owner, 3);
  assert_non_null(c->mc);
  snprintf(c->boot, sizeof c->boot, "%s", rd_kafka_mock_cluster_bootstraps(c->mc));
  assert_int_equal(rd_kafka_mock_topic_create(c->mc, "orders", NPART, 3), 0);
  assert_int_equal(rd_kafka_mock_topic_create(c->mc, "outcomes", NPART, 3), 0);
  assert_int_equal(rd_kafka_mock_topic_create(c->mc, "intents", NPART, 3), 0);
  const char *pk[] = {"bootstrap.servers", c->boot, "enable.idempotence",
                      "true", "linger.ms", "2", "log_level", "2", NULL};
  c->prod = new_client(RD_KAFKA_PRODUCER, pk);
  assert_non_null(c->prod);
  return c;
}

/* Also ends a cluster that cluster_up() left half made. */
static void cluster_down(cluster_t *c) {
  if (c->prod != NULL) {
    rd_kafka_flush(c->prod, 5000);
    rd_kafka_destroy(c->prod);
  }
  if (c->mc != NULL)
    rd_kafka_mock_cluster_destroy(c->mc);
  if (c->owner != NULL)
    rd_kafka_destroy(c->owner);
  if (g_live.cluster == c)
    g_live.cluster = NULL;
  free(c);
}

static void order_of(uint64_t n, fe_order_t *o) {
  memset(o, 0, sizeof *o);
  o->account = 1000 + n % ACCOUNTS;
  o->quantity = 1 + (int64_t)(n % 7);
  o->price = (int64_t)(100 + n % 13) * FE_PRICE_SCALE;
  o->side = FE_SIDE_BUY;
  o->type = FE_ORD_LIMIT;
  o->tif = FE_TIF_DAY;
  snprintf(o->client_order_id, FE_CLORDID_MAX, "o%" PRIu64, n);
  snprintf(o->symbol, FE_SYMBOL_MAX, "SYM%u", (unsigned)(n % 5));
}

/* Sends raw bytes keyed by account to the account's partition. */
static void send_raw(cluster_t *c, uint64_t account, const void *v, size_t len) {
  char key[24];
  int kl = snprintf(key, sizeof key, "%" PRIu64, account);
  rd_kafka_resp_err_t e;
  do {
    e = rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC("orders"),
                          RD_KAFKA_V_PARTITION((int32_t)(account % NPART)),
                          RD_KAFKA_V_KEY(key, (size_t)kl),
                          RD_KAFKA_V_VALUE((void *)v, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(c->prod, 10);
  } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
  assert_int_equal(e, 0);
  rd_kafka_poll(c->prod, 0);
}

static void send_order(cluster_t *c, uint64_t n) {
  fe_order_t o;
  order_of(n, &o);
  uint8_t buf[FE_KAFKA_ORDER_BYTES];
  assert_int_equal(fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, n, buf, sizeof buf),
                   FE_KAFKA_ORDER_BYTES);
  send_raw(c, o.account, buf, sizeof buf);
}

static void send_range_noflush(cluster_t *c, uint64_t from, uint64_t to) {
  for (uint64_t n = from; n < to; n++)
    send_order(c, n);
}

static void send_range(cluster_t *c, uint64_t from, uint64_t to) {
  send_range_noflush(c, from, to);
  assert_int_equal(rd_kafka_flush(c->prod, 30000), 0);
}

typedef struct pacer {
  cluster_t *c;
  uint64_t from, to, per_ms;
  pthread_t th;
} pacer_t;

/* Sends orders at a steady pace (per_ms a millisecond), so that load is
 * still coming in while the group rebalances. */
static void *pace_main(void *arg) {
  pacer_t *p = arg;
  for (uint64_t n = p->from; n < p->to; n++) {
    send_order(p->c, n);
    if ((n - p->from) % p->per_ms == p->per_ms - 1)
      fe_t_sleep_ms(1);
  }
  rd_kafka_flush(p->c->prod, 10000);
  return NULL;
}

/* One pacer at a time; pacer_join() waits for it to have sent them all. */
static void pacer_start(cluster_t *c, uint64_t from, uint64_t to,
                        uint64_t per_ms) {
  assert_null(g_live.pacer);
  pacer_t *p = calloc(1, sizeof *p);
  assert_non_null(p);
  *p = (pacer_t){.c = c, .from = from, .to = to, .per_ms = per_ms};
  assert_int_equal(pthread_create(&p->th, NULL, pace_main, p), 0);
  g_live.pacer = p;
}

static void pacer_join(void) {
  if (g_live.pacer == NULL)
    return;
  pthread_join(g_live.pacer->th, NULL);
  free(g_live.pacer);
  g_live.pacer = NULL;
}

/* ------------------------------------------------------------- the venue */

/* In-process venue: sends per order number.  The SIGKILL test uses a file
 * instead (venue_file). */
static _Atomic uint32_t g_sends[MAX_ORDERS];
static const char *g_venue_file;
static int g_venue_fd = -1;
static _Atomic int g_gate = 1;          /* 0: the exec stage waits */
static _Atomic uint32_t g_exec_delay_us;
static const char *g_stall_file; /* the child: once it exists, the next
                                    order sent stalls its stage for good */

static uint64_t n_of(const fe_order_t *o) {
  return strtoull(o->client_order_id + 1, NULL, 10);
}

/* Per-account order: the exec stage sees an account's orders in order. */
typedef struct acct_seq {
  _Atomic int64_t last[ACCOUNTS];
  _Atomic uint32_t out_of_order;
} acct_seq_t;

static fe_verdict_t exec_stage(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx;
  acct_seq_t *as = user;
  uint64_t n = n_of(&ev->order);
  while (!atomic_load(&g_gate))
    fe_t_sleep_ms(1);
  uint32_t a = (uint32_t)(ev->order.account - 1000) % ACCOUNTS;
  if (as != NULL) {
    int64_t prev = atomic_exchange(&as->last[a], (int64_t)n);
    if (prev >= (int64_t)n)
      atomic_fetch_add(&as->out_of_order, 1);
  }
  if (g_venue_fd >= 0) {
    char line[32];
    int l = snprintf(line, sizeof line, "%" PRIu64 "\n", n);
    if (write(g_venue_fd, line, (size_t)l) != l)
      return fe_retry(ctx, 9);
    if (g_stall_file != NULL && access(g_stall_file, F_OK) == 0) {
      /* ".stalled" holds the order's number: written aside, then renamed,
       * so that the test never reads it half written. */
      char done[PATH_MAX], tmp[PATH_MAX + 8];
      snprintf(done, sizeof done, "%sed", g_stall_file);
      snprintf(tmp, sizeof tmp, "%s.tmp", done);
      FILE *f = fopen(tmp, "w");
      if (f != NULL) {
        fprintf(f, "%" PRIu64 "\n", n);
        fclose(f);
        rename(tmp, done);
      }
      for (;;) /* sent, and never finished: in doubt (SIGKILL ends it) */
        fe_t_sleep_ms(10);
    }
  } else if (n < MAX_ORDERS) {
    atomic_fetch_add(&g_sends[n], 1);
  }
  uint32_t d = atomic_load(&g_exec_delay_us);
  if (d)
    fe_t_sleep_ns(d * FE_T_US);
  return FE_CONTINUE;
}

/* The venue file, read back: counts per order. */
static void venue_counts(const char *path, uint32_t *cnt) {
  memset(cnt, 0, MAX_ORDERS * sizeof *cnt);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  unsigned long long n;
  while (fscanf(f, "%llu", &n) == 1)
    if (n < MAX_ORDERS)
      cnt[n]++;
  fclose(f);
}

static uint64_t venue_lines(const char *path, uint32_t *cnt) {
  venue_counts(path, cnt);
  uint64_t lines = 0;
  for (int i = 0; i < MAX_ORDERS; i++)
    lines += cnt[i];
  return lines;
}

static int in_doubt_venue(const fe_event_t *ev, void *user) {
  (void)user;
  uint64_t n = n_of(&ev->order);
  if (g_venue_file != NULL) {
    static uint32_t cnt[MAX_ORDERS];
    venue_counts(g_venue_file, cnt);
    return n < MAX_ORDERS && cnt[n] > 0;
  }
  return n < MAX_ORDERS && atomic_load(&g_sends[n]) > 0;
}

/* ---------------------------------------------------------- an instance */

typedef struct inst {
  fe_idem_t *idem;
  fe_dlq_t *dlq;
  fe_bus_t *bus;
  fe_kafka_t *k;
  acct_seq_t seq;
  _Atomic uint32_t alerts[16];
} inst_t;

static void on_alert(fe_kafka_alert_t kind, int32_t p, const char *text,
                     void *user) {
  (void)p;
  (void)text;
  inst_t *in = user;
  atomic_fetch_add(&in->alerts[kind & 15], 1);
}

/* Per-test variations of inst_up(). */
static const fe_kafka_prop_t *g_sink_props;
static uint32_t g_n_sink_props;
static fe_kafka_full_t g_on_full = FE_KAFKA_FULL_SPILL;
static const char *g_group = "fe";
/* The exec stage's worker.  0: the intent stage's own, so a stalled venue
 * call also stops intents (nothing behind the stalled batch gets one). */
static uint32_t g_exec_worker;

static void inst_up(inst_t *in, cluster_t *c, uint32_t capacity,
                    uint32_t max_inflight, const char *boot) {
  memset(in, 0, sizeof *in);
  size_t slot = 0;
  while (slot < NLIVE && g_live.inst[slot] != NULL &&
         g_live.inst[slot] != in)
    slot++;
  assert_true(slot < NLIVE);
  g_live.inst[slot] = in;
  for (int i = 0; i < ACCOUNTS; i++)
    atomic_store(&in->seq.last[i], -1);
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 1 << 16;
  ic.now_ns = fe_clock_wall_fn;
  assert_fe_ok(fe_idem_create(&ic, &in->idem, NULL));
  fe_dlq_config_t dc;
  fe_dlq_config_init(&dc);
  dc.user_size = 256;
  assert_fe_ok(fe_dlq_create(&dc, &in->dlq, NULL));
  fe_kafka_config_t kc;
  fe_kafka_config_init(&kc);
  kc.brokers = c != NULL ? c->boot : boot;
  kc.group_id = g_group;
  kc.sink_props = g_sink_props;
  kc.n_sink_props = g_n_sink_props;
  kc.on_full = g_on_full;
  kc.orders_topic = "orders";
  kc.outcomes_topic = "outcomes";
  kc.intents_topic = "intents";
  kc.idem = in->idem;
  kc.dlq = in->dlq;
  kc.max_inflight = max_inflight;
  kc.in_doubt = in_doubt_venue;
  kc.on_alert = on_alert;
  kc.alert_user = in;
  kc.props = PROPS;
  kc.n_props = NPROPS;
  kc.revoke_timeout_ms = 8000;
  fe_diag_t d;
  int rc = fe_kafka_create(&kc, &in->k, &d);
  if (rc != 0)
    fprintf(stderr, "fe_kafka_create: %s\n", d.msg);
  assert_fe_ok(rc);
  fe_stage_def_t st[2];
  fe_stage_def_init(&st[0]);
  st[0].name = "intent";
  st[0].batch_handler = fe_kafka_intent_stage;
  st[0].user = in->k;
  fe_stage_def_init(&st[1]);
  st[1].name = "exec";
  st[1].handler = exec_stage;
  st[1].user = &in->seq;
  st[1].n_deps = 1;
  st[1].deps[0] = 0;
  st[1].worker = g_exec_worker;
  fe_bus_config_t bc;
  fe_bus_config_init(&bc);
  bc.capacity = capacity;
  bc.max_batch = capacity < 256 ? capacity : 256;
  bc.stages = st;
  bc.n_stages = 2;
  bc.idem = in->idem;
  bc.dlq = in->dlq;
  bc.on_outcome = fe_kafka_on_outcome;
  bc.outcome_user = in->k;
  bc.producer = FE_PRODUCER_MULTI;
  assert_fe_ok(fe_bus_create(&bc, &in->bus, &d));
  assert_fe_ok(fe_bus_start(in->bus, &d));
  rc = fe_kafka_start(in->k, in->bus, &d);
  if (rc != 0)
    fprintf(stderr, "fe_kafka_start: %s\n", d.msg);
  assert_fe_ok(rc);
}

/* Also ends an instance that inst_up() left half made (NULLs ignored). */
static void inst_down(inst_t *in) {
  fe_kafka_stop(in->k);
  fe_bus_destroy(in->bus);
  fe_kafka_destroy(in->k);
  fe_dlq_destroy(in->dlq);
  fe_idem_destroy(in->idem);
  memset(in, 0, sizeof *in);
  for (size_t i = 0; i < NLIVE; i++)
    if (g_live.inst[i] == in)
      g_live.inst[i] = NULL;
}

static fe_kafka_stats_t kstats(inst_t *in) {
  fe_kafka_stats_t s;
  fe_kafka_stats(in->k, &s);
  return s;
}

/* ------------------------------------------------------- the outcomes log */

typedef struct outlog {
  rd_kafka_t *rk;
  uint32_t final[MAX_ORDERS];   /* FINAL outcomes per order */
  uint32_t refused;
  uint32_t in_doubt;
  uint32_t order_breaks;        /* an account's outcomes out of order */
  int64_t last[ACCOUNTS];
  uint64_t distinct;
} outlog_t;

static void outlog_open(outlog_t *l, cluster_t *c) {
  memset(l, 0, sizeof *l);
  for (int i = 0; i < ACCOUNTS; i++)
    l->last[i] = -1;
  const char *kv[] = {"bootstrap.servers", c->boot, "group.id", "reader",
                      "enable.auto.commit", "false", "log_level", "2",
                      "fetch.wait.max.ms", "10", NULL};
  l->rk = new_client(RD_KAFKA_CONSUMER, kv);
  assert_non_null(l->rk);
  g_live.log = l;
  rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(NPART);
  for (int p = 0; p < NPART; p++)
    rd_kafka_topic_partition_list_add(pl, "outcomes", p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(l->rk, pl), 0);
  rd_kafka_topic_partition_list_destroy(pl);
}

/* Reads what is there now. */
static void outlog_poll(outlog_t *l) {
  rd_kafka_message_t *m;
  while ((m = rd_kafka_consumer_poll(l->rk, 20)) != NULL) {
    fe_kafka_outcome_t o;
    if (m->err == 0 && fe_kafka_outcome_decode(m->payload, m->len, &o) == 0) {
      uint64_t n = strtoull(o.client_order_id + 1, NULL, 10);
      if (o.kind == FE_KAFKA_OUT_REFUSED) {
        l->refused++;
      } else if (n < MAX_ORDERS) {
        if (l->final[n]++ == 0)
          l->distinct++;
        if (o.flags & FE_KAFKA_OUT_IN_DOUBT_SENT)
          l->in_doubt++;
        uint32_t a = (uint32_t)(o.account - 1000) % ACCOUNTS;
        if (!(o.flags & FE_KAFKA_OUT_IN_DOUBT_SENT)) {
          if ((int64_t)n <= l->last[a])
            l->order_breaks++;
          l->last[a] = (int64_t)n;
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
}

static int outlog_has(outlog_t *l, uint64_t want) {
  outlog_poll(l);
  return l->distinct >= want;
}

/* The intents topic, read as it grows: which orders have an intent. */
typedef struct intents {
  rd_kafka_t *rk;
  uint8_t seen[MAX_ORDERS]; /* 1 + the partition of the order's intent */
} intents_t;

static intents_t *intents_open(cluster_t *c) {
  intents_t *it = calloc(1, sizeof *it);
  const char *kv[] = {"bootstrap.servers", c->boot, "group.id", "ireader",
                      "enable.auto.commit", "false", "log_level", "2",
                      "fetch.wait.max.ms", "10", NULL};
  it->rk = new_client(RD_KAFKA_CONSUMER, kv);
  assert_non_null(it->rk);
  g_live.intents = it;
  rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(NPART);
  for (int p = 0; p < NPART; p++)
    rd_kafka_topic_partition_list_add(pl, "intents", p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(it->rk, pl);
  rd_kafka_topic_partition_list_destroy(pl);
  return it;
}

/* Orders of partition p with an intent in the log that the venue never
 * saw. */
static uint64_t intents_unsent(intents_t *it, const char *venue, int32_t p,
                               uint32_t *cnt) {
  rd_kafka_message_t *m;
  while ((m = rd_kafka_consumer_poll(it->rk, 20)) != NULL) {
    /* "FEI1", partition, offset, then the order: its id at 16 + 64. */
    if (m->err == 0 && m->len == FE_KAFKA_INTENT_BYTES) {
      uint64_t n = strtoull((const char *)m->payload + 16 + 64 + 1, NULL, 10);
      if (n < MAX_ORDERS && m->partition >= 0 && m->partition < NPART)
        it->seen[n] = (uint8_t)(1 + m->partition);
    }
    rd_kafka_message_destroy(m);
  }
  venue_counts(venue, cnt);
  uint64_t unsent = 0;
  for (int n = 0; n < MAX_ORDERS; n++)
    unsent += it->seen[n] == 1 + p && cnt[n] == 0;
  return unsent;
}

static void intents_close(intents_t *it) {
  if (it->rk != NULL) {
    rd_kafka_consumer_close(it->rk);
    rd_kafka_destroy(it->rk);
  }
  if (g_live.intents == it)
    g_live.intents = NULL;
  free(it);
}

static void outlog_close(outlog_t *l) {
  if (l->rk != NULL) {
    rd_kafka_consumer_close(l->rk);
    rd_kafka_destroy(l->rk);
    l->rk = NULL;
  }
  if (g_live.log == l)
    g_live.log = NULL;
}

static void reset_venue(void) {
  for (int i = 0; i < MAX_ORDERS; i++)
    atomic_store(&g_sends[i], 0);
  atomic_store(&g_gate, 1);
  atomic_store(&g_exec_delay_us, 0);
}

static void venue_file_unlink(const char *venue, const char *suffix) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s%s", venue, suffix);
  unlink(path);
}

/* cmocka setup: the watchdog, and the globals every test starts from. */
static int setup(void **state) {
  fe_t_watchdog(state);
  reset_venue();
  g_venue_file = NULL;
  g_stall_file = NULL;
  g_sink_props = NULL, g_n_sink_props = 0, g_group = "fe";
  g_on_full = FE_KAFKA_FULL_SPILL;
  g_exec_worker = 0;
  return 0;
}

/* cmocka teardown, run after a failed test too: ends what the test left
 * running (see g_live), in the order that lets each part stop. */
static int teardown(void **state) {
  (void)state;
  alarm(FE_T_TEST_TIMEOUT_S); /* a stuck clean-up still ends the run */
  atomic_store(&g_gate, 1);   /* a stage blocked on it holds inst_down() */
  if (g_live.child > 0) {
    kill(g_live.child, SIGKILL);
    waitpid(g_live.child, NULL, 0);
    g_live.child = 0;
  }
  pacer_join(); /* before the cluster: it sends through the cluster's producer */
  if (g_live.intents != NULL)
    intents_close(g_live.intents);
  if (g_live.log != NULL) {
    outlog_t *l = g_live.log;
    outlog_close(l);
    free(l);
  }
  for (size_t i = 0; i < NLIVE; i++) {
    inst_t *in = g_live.inst[i];
    if (in != NULL) {
      inst_down(in);
      free(in);
    }
  }
  if (g_live.cluster != NULL)
    cluster_down(g_live.cluster);
  if (g_venue_fd >= 0)
    close(g_venue_fd);
  g_venue_fd = -1;
  g_venue_file = NULL;
  g_stall_file = NULL;
  if (g_live.venue[0] != 0) {
    venue_file_unlink(g_live.venue, ".stall");
    venue_file_unlink(g_live.venue, ".stalled");
    venue_file_unlink(g_live.venue, ".stalled.tmp");
    venue_file_unlink(g_live.venue, ".child");
    venue_file_unlink(g_live.venue, ".child.tmp");
    venue_file_unlink(g_live.venue, "");
    g_live.venue[0] = 0;
  }
  return 0;
}

#define KTEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ------------------------------------------------------------ the codec */

static void codec_round_trip(void **state) {
  (void)state;
  fe_order_t o, back;
  order_of(77, &o);
  o.tif = FE_TIF_GTD;
  o.expire_ns = 123456789;
  o.client_ts_ns = 42;
  uint8_t buf[FE_KAFKA_ORDER_BYTES];
  assert_int_equal(fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 9, buf, sizeof buf),
                   FE_KAFKA_ORDER_BYTES);
  uint32_t type;
  uint64_t trace;
  assert_fe_ok(fe_kafka_order_decode(buf, sizeof buf, "1037", 4, &type, &back,
                                     &trace));
  assert_int_equal(type, FE_EV_NEW_ORDER);
  assert_int_equal(trace, 9);
  assert_int_equal(back.account, o.account);
  assert_int_equal(back.quantity, o.quantity);
  assert_int_equal(back.price, o.price);
  assert_int_equal(back.expire_ns, o.expire_ns);
  assert_int_equal(back.client_ts_ns, 42);
  assert_string_equal(back.client_order_id, "o77");
  assert_string_equal(back.symbol, o.symbol);
  /* No key: not checked. */
  assert_fe_ok(fe_kafka_order_decode(buf, sizeof buf, NULL, 0, &type, &back, NULL));
}

static void codec_refusals(void **state) {
  (void)state;
  fe_order_t o, back;
  order_of(1, &o);
  uint8_t good[FE_KAFKA_ORDER_BYTES], b[FE_KAFKA_ORDER_BYTES];
  uint32_t type;
  assert_int_equal(fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 0, good, sizeof good),
                   FE_KAFKA_ORDER_BYTES);
  assert_fe(fe_kafka_order_decode(NULL, 1, NULL, 0, &type, &back, NULL), FE_EINVAL);
  assert_fe(fe_kafka_order_decode(good, sizeof good, NULL, 0, NULL, &back, NULL), FE_EINVAL);
  assert_fe(fe_kafka_order_decode(good, sizeof good, NULL, 0, &type, NULL, NULL), FE_EINVAL);
  assert_fe(fe_kafka_order_decode(good, sizeof good - 1, NULL, 0, &type, &back, NULL),
            FE_ECORRUPT);
  struct { size_t off; uint8_t val; int rc; } cases[] = {
      {0, 'X', FE_EVERSION},   {4, 9, FE_ERANGE},    {6, 0, FE_ERANGE},
      {6, 4, FE_ERANGE},       {7, 5, FE_ERANGE},    {8, 6, FE_ERANGE},
      {10, 1, FE_ECORRUPT},    {64, 0, FE_ERANGE},   {96, 0, FE_ERANGE},
      {70, 'x', FE_ECORRUPT},  {110, 'x', FE_ECORRUPT},
      {31, 0x80, FE_ERANGE},   /* negative quantity */
      {39, 0x80, FE_ERANGE},   /* negative price */
      {40, 1, FE_ERANGE},      /* expiry without GTD */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(b, good, sizeof b);
    b[cases[i].off] = cases[i].val;
    if (cases[i].off == 31) /* the whole quantity negative */
      memset(b + 24, 0xff, 8);
    if (cases[i].off == 64) /* an empty id */
      memset(b + 64, 0, FE_CLORDID_MAX);
    if (cases[i].off == 96) /* an empty symbol */
      memset(b + 96, 0, FE_SYMBOL_MAX);
    assert_fe(fe_kafka_order_decode(b, sizeof b, NULL, 0, &type, &back, NULL),
              cases[i].rc);
  }
  assert_fe(fe_kafka_order_decode(good, sizeof good, "1002", 4, &type, &back, NULL),
            FE_EMISMATCH);
  assert_fe(fe_kafka_order_decode(good, sizeof good, "01001", 5, &type, &back, NULL),
            FE_EMISMATCH);
  assert_fe(fe_kafka_order_decode(good, sizeof good, "1001x", 5, &type, &back, NULL),
            FE_EMISMATCH);
  assert_fe(fe_kafka_order_decode(good, sizeof good, "99999999999999999999999", 23,
                                  &type, &back, NULL), FE_EMISMATCH);
  /* encode refuses what decode would */
  assert_fe(fe_kafka_order_encode(FE_EV_NEW_ORDER, NULL, 0, b, sizeof b), FE_EINVAL);
  assert_fe(fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 0, NULL, sizeof b), FE_EINVAL);
  assert_fe(fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 0, b, sizeof b - 1), FE_ERANGE);
  assert_fe(fe_kafka_order_encode(FE_EV_USER, &o, 0, b, sizeof b), FE_ERANGE);
  fe_order_t bad = o;
  bad.quantity = 0;
  assert_fe(fe_kafka_order_encode(FE_EV_NEW_ORDER, &bad, 0, b, sizeof b), FE_ERANGE);
  bad = o;
  bad.client_order_id[0] = 0;
  assert_fe(fe_kafka_order_encode(FE_EV_NEW_ORDER, &bad, 0, b, sizeof b), FE_ERANGE);
  /* outcome decoder */
  fe_kafka_outcome_t out;
  assert_fe(fe_kafka_outcome_decode(NULL, 0, &out), FE_EINVAL);
  assert_fe(fe_kafka_outcome_decode(good, sizeof good, &out), FE_ECORRUPT);
  uint8_t ob[FE_KAFKA_OUTCOME_BYTES];
  memset(ob, 0, sizeof ob);
  assert_fe(fe_kafka_outcome_decode(ob, sizeof ob, &out), FE_EVERSION);
  memcpy(ob, "FEU1", 4);
  assert_fe(fe_kafka_outcome_decode(ob, sizeof ob, &out), FE_ECORRUPT);
  ob[4] = FE_KAFKA_OUT_FINAL;
  assert_fe_ok(fe_kafka_outcome_decode(ob, sizeof ob, &out));
  ob[5] = 0x80;
  assert_fe(fe_kafka_outcome_decode(ob, sizeof ob, &out), FE_ECORRUPT);
}

static void config_refusals(void **state) {
  (void)state;
  fe_kafka_config_init(NULL);
  fe_kafka_t *k = NULL;
  fe_diag_t d;
  assert_fe(fe_kafka_create(NULL, &k, &d), FE_EINVAL);
  fe_kafka_config_t c;
  fe_kafka_config_init(&c);
  assert_fe(fe_kafka_create(&c, NULL, &d), FE_EINVAL);
  assert_fe(fe_kafka_create(&c, &k, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "brokers"));
  fe_idem_t *idem;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  assert_fe_ok(fe_idem_create(&ic, &idem, NULL));
  c.brokers = "127.0.0.1:1", c.group_id = "g", c.orders_topic = "o";
  c.outcomes_topic = "u";
  assert_fe(fe_kafka_create(&c, &k, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "idem"));
  c.idem = idem;
  c.max_inflight = 1000;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "max_inflight"));
  c.max_inflight = 64;
  c.max_partitions = 0;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_ERANGE);
  c.max_partitions = 4;
  c.on_full = 7;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_EINVAL);
  c.on_full = FE_KAFKA_FULL_SPILL;
  c.revoked_reason = c.intent_reason;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_ERANGE);
  c.revoked_reason = FE_KAFKA_REASON_REVOKED;
  c.intents_topic = "";
  assert_fe(fe_kafka_create(&c, &k, &d), FE_EINVAL);
  c.intents_topic = NULL;
  fe_kafka_prop_t bad = {"no.such.property", "1"};
  c.props = &bad, c.n_props = 1;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_EINCOMPAT);
  assert_non_null(strstr(d.msg, "no.such.property"));
  c.n_props = FE_KAFKA_MAX_PROPS + 1;
  assert_fe(fe_kafka_create(&c, &k, &d), FE_ERANGE);
  c.n_props = 0;
  assert_null(k);
  /* A valid one: nothing connects until start. */
  assert_fe_ok(fe_kafka_create(&c, &k, &d));
  assert_fe(fe_kafka_start(NULL, NULL, &d), FE_EINVAL);
  assert_fe(fe_kafka_start(k, NULL, &d), FE_EINVAL);
  assert_fe(fe_kafka_stop(k), FE_ESTATE);
  assert_fe(fe_kafka_stop(NULL), FE_EINVAL);
  assert_fe(fe_kafka_stats(NULL, NULL), FE_EINVAL);
  fe_kafka_stats_t s;
  assert_fe_ok(fe_kafka_stats(k, &s));
  assert_int_equal(s.consumed, 0);
  /* The hooks ignore NULL and events that are not theirs. */
  fe_kafka_on_outcome(NULL, NULL, k);
  fe_event_t ev[2];
  memset(ev, 0, sizeof ev);
  fe_idem_outcome_t out = {.status = FE_IDEM_COMPLETED};
  fe_kafka_on_outcome(&ev[0], &out, k);
  fe_kafka_on_outcome(&ev[0], &out, NULL);
  fe_kafka_intent_stage(NULL, NULL, 0, k);
  fe_kafka_destroy(k);
  fe_kafka_destroy(NULL);
  fe_idem_destroy(idem);
}

/* ------------------------------------------------------ with the cluster */

static int visit(const fe_dlq_entry_t *e, void *u) {
  if (strncmp(e->text, "orders/", 7) == 0 && strchr(e->text, '@') != NULL)
    ++*(int *)u;
  return 0;
}

static void end_to_end(void **state) {
  (void)state;
  reset_venue();
  cluster_t *c = cluster_up();
  const uint64_t N = 2000;
  send_range(c, 0, N / 2);
  /* Malformed: bad magic, short, key not the account. */
  uint8_t junk[FE_KAFKA_ORDER_BYTES];
  memset(junk, 'z', sizeof junk);
  send_raw(c, 1000, junk, sizeof junk);
  send_raw(c, 1001, junk, 7);
  fe_order_t o;
  order_of(5, &o);
  uint8_t buf[FE_KAFKA_ORDER_BYTES];
  fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 0, buf, sizeof buf);
  char wrongkey[] = "1003";
  rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_PARTITION(1),
                    RD_KAFKA_V_KEY(wrongkey, 4), RD_KAFKA_V_VALUE(buf, sizeof buf),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  inst_t *in = calloc(1, sizeof *in);
  inst_up(in, c, 1024, 256, NULL);
  send_range(c, N / 2, N);
  /* Re-sends (a client's retries) and a reused id with another order. */
  send_range(c, 0, 100);
  order_of(7, &o);
  o.quantity += 100;
  fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, 0, buf, sizeof buf);
  send_raw(c, o.account, buf, sizeof buf);
  rd_kafka_flush(c->prod, 5000);
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  int ok;
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N) && l->refused >= 1, 60000);
  assert_true(ok);
  FE_T_WAIT_UNTIL(ok, kstats(in).inflight == 0 && kstats(in).consumed >= N + 104, 20000);
  assert_true(ok);
  fe_kafka_stats_t s = kstats(in);
  for (uint64_t n = 0; n < N; n++) {
    assert_int_equal(atomic_load(&g_sends[n]), 1);
    assert_int_equal(l->final[n], 1);
  }
  assert_int_equal(l->order_breaks, 0);
  assert_int_equal(atomic_load(&in->seq.out_of_order), 0);
  assert_int_equal(s.malformed, 3);
  assert_int_equal(s.refused, 1);
  assert_true(s.duplicates >= 100);
  assert_int_equal(s.intents, N);
  assert_int_equal(s.outcomes, N + 1);
  assert_int_equal(fe_dlq_count(in->dlq), 3);
  assert_true(atomic_load(&in->alerts[FE_KAFKA_ALERT_MALFORMED]) >= 3);
  /* The dead letters say where the record was. */
  fe_dlq_filter_t f = {.match = FE_DLQ_MATCH_KIND, .kind = FE_KAFKA_DLQ_MALFORMED};
  int texts = 0;
  assert_fe_ok(fe_dlq_foreach(in->dlq, &f, visit, &texts));
  assert_int_equal(texts, 3);
  inst_down(in);
  free(in);
  outlog_close(l);
  free(l);
  cluster_down(c);
}

static void broker_down_up(void **state) {
  (void)state;
  reset_venue();
  cluster_t *c = cluster_up();
  inst_t *in = calloc(1, sizeof *in);
  inst_up(in, c, 1024, 256, NULL);
  const uint64_t N = 3000;
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  send_range(c, 0, N / 3);
  int ok;
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N / 6), 60000);
  assert_true(ok);
  rd_kafka_mock_broker_set_down(c->mc, 2);
  /* Orders for the down broker's partitions wait in the client. */
  send_range_noflush(c, N / 3, 2 * N / 3);
  /* Down while the load comes in (the intent stage waits for the down
   * broker's partitions, so the ring fills and the source pauses): until
   * 300 more records were taken, 5 s at most. */
  uint64_t before = kstats(in).consumed;
  FE_T_WAIT_UNTIL(ok, kstats(in).consumed >= before + 300, 5000);
  rd_kafka_mock_broker_set_up(c->mc, 2);
  send_range(c, 2 * N / 3, N);
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N), 90000);
  assert_true(ok);
  for (uint64_t n = 0; n < N; n++) {
    assert_int_equal(atomic_load(&g_sends[n]), 1);
    assert_int_equal(l->final[n], 1);
  }
  assert_int_equal(atomic_load(&in->seq.out_of_order), 0);
  fe_kafka_stats_t s = kstats(in);
  assert_int_equal(s.intent_failed, 0);
  assert_int_equal(fe_dlq_count(in->dlq), 0);
  inst_down(in);
  free(in);
  outlog_close(l);
  free(l);
  cluster_down(c);
}

static void rebalance(void **state) {
  (void)state;
  reset_venue();
  cluster_t *c = cluster_up();
  inst_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  inst_up(a, c, 1024, 256, NULL);
  const uint64_t N = 6000;
  pacer_start(c, 0, N, 1);
  int ok;
  FE_T_WAIT_UNTIL(ok, kstats(a).outcomes >= 500, 30000);
  assert_true(ok);
  inst_up(b, c, 1024, 256, NULL);
  /* Both own partitions, under load. */
  FE_T_WAIT_UNTIL(ok, kstats(b).owned > 0 && kstats(a).revoked > 0, 30000);
  assert_true(ok);
  pacer_join();
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N), 90000);
  assert_true(ok);
  uint32_t twice = 0;
  for (uint64_t n = 0; n < N; n++) {
    twice += atomic_load(&g_sends[n]) != 1;
    assert_true(l->final[n] >= 1);
  }
  assert_int_equal(twice, 0);
  fe_kafka_stats_t sa = kstats(a), sb = kstats(b);
  assert_true(sb.submitted > 0);
  assert_true(sa.submitted > 0);
  assert_int_equal(sa.revoke_timeouts + sb.revoke_timeouts, 0);
  inst_down(b);
  inst_down(a);
  free(a);
  free(b);
  outlog_close(l);
  free(l);
  cluster_down(c);
}

/* The child of sigkill_takeover: an instance on its own, until killed. */
static int child_main(const char *boot, const char *venue) {
  g_venue_fd = open(venue, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (g_venue_fd < 0)
    return 2;
  g_venue_file = venue;
  static char stall[PATH_MAX];
  snprintf(stall, sizeof stall, "%s.stall", venue);
  g_stall_file = stall;
  atomic_store(&g_exec_delay_us, 200);
  /* Its own worker for the venue: once execution stalls, the source and
   * the intent stage go on, so every order taken behind the stalled one
   * gets an intent and stays unsent. */
  g_exec_worker = 1;
  inst_t *in = calloc(1, sizeof *in);
  inst_up(in, NULL, 1024, 256, boot);
  /* What it is doing, for the test's failure messages: "<venue>.child". */
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  snprintf(path, sizeof path, "%s.child", venue);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  for (;;) {
    fe_kafka_stats_t s = kstats(in);
    FILE *f = fopen(tmp, "w");
    if (f != NULL) {
      fprintf(f, "owned %" PRIu64 " assigned %" PRIu64 " revoked %" PRIu64
              " consumed %" PRIu64 " submitted %" PRIu64 " intents %" PRIu64
              " outcomes %" PRIu64 " inflight %" PRIu64 " rebuild_failed %"
              PRIu64 " restored %" PRIu64 " pauses %" PRIu64 "\n", s.owned,
              s.assigned, s.revoked, s.consumed, s.submitted, s.intents,
              s.outcomes, s.inflight, s.rebuild_failed, s.restored, s.pauses);
      fclose(f);
      rename(tmp, path);
    }
    fe_t_sleep_ms(100);
  }
}

/* The child's last "<venue>.child" line, into a failure message. */
static void print_child(const char *venue) {
  char path[PATH_MAX], line[512] = "(none)\n";
  snprintf(path, sizeof path, "%s.child", venue);
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    if (fgets(line, sizeof line, f) == NULL)
      snprintf(line, sizeof line, "(empty)\n");
    fclose(f);
  }
  print_message("sigkill: the child: %s", line);
}

static char g_self[PATH_MAX];

static void sigkill_takeover(void **state) {
  (void)state;
  cluster_t *c = cluster_up();
  char *venue = g_live.venue; /* not the stack: teardown() removes it */
  snprintf(venue, sizeof g_live.venue, "/tmp/fe_kafka_venue_XXXXXX");
  int fd = mkstemp(venue);
  assert_true(fd >= 0);
  close(fd);
  g_venue_fd = open(venue, O_WRONLY | O_APPEND); /* the survivor's */
  assert_true(g_venue_fd >= 0);
  g_venue_file = venue;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* Dies with the test process (the watchdog's _exit, a crash); a failed
     * assertion is teardown()'s (the signal survives exec). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(3);
    execl(g_self, g_self, "--child", c->boot, venue, (char *)NULL);
    _exit(3);
  }
  assert_true(pid > 0);
  g_live.child = pid;
  const uint64_t N = 4000, M = 200;
  pacer_start(c, 0, N, 2);
  static uint32_t cnt[MAX_ORDERS];
  int ok;
  /* The child is sending. */
  FE_T_WAIT_UNTIL(ok, venue_lines(venue, cnt) >= 300, 30000);
  assert_true(ok);
  inst_t *b = calloc(1, sizeof *b);
  inst_up(b, c, 1024, 256, NULL);
  /* Both own partitions.  Under load the child can miss the join round
   * and the survivor gets all of them for a generation; the child then
   * rejoins in the next one.  A child with no partition never stalls. */
  FE_T_WAIT_UNTIL(ok, kstats(b).owned > 0 && kstats(b).owned < NPART, 60000);
  assert_true(ok);
  /* Both run.  Then the child's execution stalls right after a send
   * (that order is in doubt, sent) while its source and intent stage go
   * on (the orders behind it are in doubt, unsent). */
  uint64_t at = kstats(b).outcomes;
  FE_T_WAIT_UNTIL(ok, kstats(b).outcomes >= at + 50, 20000);
  pacer_join();
  char stall[PATH_MAX];
  snprintf(stall, sizeof stall, "%s.stall", venue);
  int sfd = open(stall, O_CREAT | O_WRONLY, 0600);
  assert_true(sfd >= 0);
  close(sfd);
  /* Orders behind the stalled one, whatever the child had left: the pacer
   * is long done (the child's first join takes longer than its 2 s), so
   * without these the stalled order can be the last of the child's
   * partitions and nothing is left to be in doubt unsent.  The child takes
   * them and writes their intents (its exec stage has its own worker, see
   * child_main); at least those of the stalled order's partition that
   * come after it stay unsent. */
  send_range(c, N, N + M);
  char stalled[PATH_MAX];
  snprintf(stalled, sizeof stalled, "%s.stalled", venue);
  /* Bounded above what the child may take to start on its partitions: it
   * rebuilds each one on assignment (rebuild_timeout_ms, 30 s, then a
   * retry each second). */
  FE_T_WAIT_UNTIL(ok, access(stalled, F_OK) == 0, 90000);
  if (!ok) {
    print_message("sigkill: the child never stalled; survivor owns %" PRIu64
                  ", assigned %" PRIu64 ", revoked %" PRIu64 "\n",
                  kstats(b).owned, kstats(b).assigned, kstats(b).revoked);
    print_child(venue);
  }
  assert_true(ok);
  FILE *sf = fopen(stalled, "r");
  assert_non_null(sf);
  unsigned long long xs = 0;
  assert_int_equal(fscanf(sf, "%llu", &xs), 1);
  fclose(sf);
  fe_order_t xo;
  order_of(xs, &xo);
  int32_t xp = (int32_t)(xo.account % NPART); /* send_raw()'s partition */
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  intents_t *it = intents_open(c);
  /* Kill it once Kafka holds intents, in the stalled order's partition,
   * for orders the venue never saw.  Only that partition counts: the
   * survivor's own partitions always have a few intents whose order is
   * not sent yet (its intent stage runs ahead of its venue), and counting
   * those let the kill come before the child had any. */
  FE_T_WAIT_UNTIL(ok, intents_unsent(it, venue, xp, cnt) >= 5, 30000);
  assert_true(ok);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  g_live.child = 0;
  assert_true(WIFSIGNALED(st));
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N + M), 120000);
  assert_true(ok);
  fe_kafka_stats_t s = kstats(b);
  assert_int_equal(s.owned, NPART);
  venue_counts(venue, cnt);
  uint32_t twice = 0, missing = 0;
  for (uint64_t n = 0; n < N + M; n++) {
    twice += cnt[n] > 1;
    missing += l->final[n] >= 1 && cnt[n] != 1; /* acknowledged, not sent once */
  }
  print_message("sigkill: stalled at o%llu (partition %d), in doubt sent %"
                PRIu64 ", unsent %" PRIu64 ", restored %" PRIu64
                ", outcomes in doubt %u\n", xs, xp, s.in_doubt_sent,
                s.in_doubt_unsent, s.restored, l->in_doubt);
  assert_int_equal(twice, 0);
  assert_int_equal(missing, 0);
  assert_true(s.in_doubt_sent >= 1);   /* the stalled order */
  assert_true(s.in_doubt_unsent >= 1); /* the ones behind it */
  assert_true(l->in_doubt >= 1);
  intents_close(it);
  inst_down(b);
  free(b);
  outlog_close(l);
  free(l);
  cluster_down(c);
  /* teardown() closes g_venue_fd and removes the venue files. */
}

/* The outcome producer's local queue holds 4 records and gives up on a
 * delivery after 1.5 s: its leader broker goes down for a while. */
static void sink_full_and_delivery(void **state) {
  (void)state;
  reset_venue();
  cluster_t *c = cluster_up();
  for (int p = 0; p < NPART; p++) { /* outcomes alone on broker 3 */
    rd_kafka_mock_partition_set_leader(c->mc, "orders", p, 1);
    rd_kafka_mock_partition_set_leader(c->mc, "intents", p, 2);
    rd_kafka_mock_partition_set_leader(c->mc, "outcomes", p, 3);
  }
  rd_kafka_mock_coordinator_set(c->mc, "group", "fe-sink", 1);
  rd_kafka_mock_coordinator_set(c->mc, "group", "fe-drop", 1);
  static const fe_kafka_prop_t sp[] = {{"queue.buffering.max.messages", "4"},
                                       {"message.timeout.ms", "1500"}};
  g_sink_props = sp, g_n_sink_props = 2, g_group = "fe-sink";
  inst_t *in = calloc(1, sizeof *in);
  inst_up(in, c, 1024, 256, NULL);
  const uint64_t N = 1000;
  send_range(c, 0, N);
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  int ok;
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N / 4), 60000);
  assert_true(ok);
  rd_kafka_mock_broker_set_down(c->mc, 3);
  send_range(c, N, 2 * N);
  FE_T_WAIT_UNTIL(ok, kstats(in).delivery_failed > 0, 30000);
  assert_true(ok);
  rd_kafka_mock_broker_set_up(c->mc, 3);
  FE_T_WAIT_UNTIL(ok, outlog_has(l, 2 * N), 90000);
  assert_true(ok);
  fe_kafka_stats_t s = kstats(in);
  assert_true(s.queue_full > 0);
  assert_true(atomic_load(&in->alerts[FE_KAFKA_ALERT_QUEUE_FULL]) > 0);
  assert_true(atomic_load(&in->alerts[FE_KAFKA_ALERT_DELIVERY]) > 0);
  assert_int_equal(s.dropped, 0);
  for (uint64_t n = 0; n < 2 * N; n++)
    assert_int_equal(atomic_load(&g_sends[n]), 1);
  inst_down(in);

  /* FE_KAFKA_FULL_DROP, in another group: the rebuild makes the first
   * orders duplicates, the new ones run, and some outcomes are dropped. */
  g_on_full = FE_KAFKA_FULL_DROP, g_group = "fe-drop";
  inst_up(in, c, 1024, 256, NULL);
  send_range(c, 2 * N, 3 * N);
  FE_T_WAIT_UNTIL(ok, kstats(in).consumed >= 3 * N && kstats(in).inflight == 0,
                  60000);
  assert_true(ok);
  s = kstats(in);
  assert_true(s.dropped > 0);
  assert_true(s.restored >= 2 * N);
  assert_true(s.duplicates >= 2 * N);
  for (uint64_t n = 0; n < 3 * N; n++)
    assert_int_equal(atomic_load(&g_sends[n]), 1);
  inst_down(in);
  free(in);
  g_sink_props = NULL, g_n_sink_props = 0, g_group = "fe";
  g_on_full = FE_KAFKA_FULL_SPILL;
  outlog_close(l);
  free(l);
  cluster_down(c);
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
      res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void backpressure(void **state) {
  (void)state;
  reset_venue();
  cluster_t *c = cluster_up();
  inst_t *in = calloc(1, sizeof *in);
  inst_up(in, c, 64, 32, NULL);
  int ok;
  FE_T_WAIT_UNTIL(ok, kstats(in).owned == NPART, 30000);
  assert_true(ok);
  atomic_store(&g_gate, 0); /* the slow stage */
  const uint64_t N = 2000;
  long before = rss_kb();
  send_range(c, 0, N);
  FE_T_WAIT_UNTIL(ok, kstats(in).pauses >= NPART, 30000);
  assert_true(ok);
  /* Let it sit paused: what it took stays bounded by the windows. */
  uint64_t consumed0 = kstats(in).submitted;
  fe_t_sleep_ms(300); /* an observation period, not a synchronisation */
  fe_kafka_stats_t s = kstats(in);
  long grown = rss_kb() - before;
  print_message("backpressure: submitted %" PRIu64 " of %" PRIu64 ", inflight %"
                PRIu64 ", pauses %" PRIu64 ", rss +%ld kB\n", s.submitted, N,
                s.inflight, s.pauses, grown);
  assert_true(s.inflight <= NPART * 32);
  assert_true(s.submitted <= NPART * 32 + 64);
  assert_int_equal(s.submitted, consumed0);
  assert_true(grown < 64 * 1024);
  atomic_store(&g_gate, 1);
  uint64_t t_open = fe_t_now_ns();
  outlog_t *l = calloc(1, sizeof *l);
  outlog_open(l, c);
  FE_T_WAIT_UNTIL(ok, outlog_has(l, N), 120000);
  assert_true(ok);
  print_message("backpressure: %" PRIu64 " orders done %.1f s after the gate "
                "opened, %" PRIu64 " pauses\n", N,
                (double)(fe_t_now_ns() - t_open) / 1e9, kstats(in).pauses);
  for (uint64_t n = 0; n < N; n++)
    assert_int_equal(atomic_load(&g_sends[n]), 1);
  assert_int_equal(atomic_load(&in->seq.out_of_order), 0);
  inst_down(in);
  free(in);
  outlog_close(l);
  free(l);
  cluster_down(c);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2], argv[3]);
  if (readlink("/proc/self/exe", g_self, sizeof g_self - 1) < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      KTEST(codec_round_trip), KTEST(codec_refusals),
      KTEST(config_refusals),  KTEST(end_to_end),
      KTEST(broker_down_up),   KTEST(rebalance),
      KTEST(sigkill_takeover), KTEST(backpressure),
      KTEST(sink_full_and_delivery),
  };
  if (getenv("FE_TEST_FILTER") != NULL) /* e.g. "sigkill*" */
    cmocka_set_test_filter(getenv("FE_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
