/*
 * kafka_bench: the kafka_source_sink scenario of libfinevent-kafka.
 *
 * MOCK CLUSTER ON LOOPBACK, NOT A PRODUCTION FIGURE: librdkafka's
 * in-process mock cluster (3 brokers, replication factor 3, in this very
 * process, sharing its two cores), one server (bus + fe_kafka, one
 * execution stage that does nothing) in a consumer group.  A client
 * producer writes orders keyed by account to 8 partitions; a watcher
 * consumes the outcomes topic.
 *
 *   throughput  N orders sent at once; orders/s from the first send to the
 *               last outcome read.
 *   latency     orders paced at --rate per second; per order, the time
 *               from the client's send to the watcher reading its outcome
 *               (the whole added round trip: produce, fetch, bus, intent
 *               round trip, outcome produce, fetch).
 *
 * Each is run with intents on (the hand-over guarantee) and off (no
 * intent round trip), so the cost of the intent shows.
 * Usage: kafka_bench [--orders N] [--rate R] [--seconds S]
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <finevent/finevent.h>
#include <finevent/kafka.h>

#define PARTITIONS 8
#define ACCOUNTS 64

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static fe_verdict_t nop(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx, (void)ev, (void)user;
  return FE_CONTINUE;
}

static rd_kafka_t *client(rd_kafka_type_t t, const char *const *kv) {
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  for (int i = 0; kv[i] != NULL; i += 2)
    if (rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof err)) {
      fprintf(stderr, "%s: %s\n", kv[i], err);
      exit(1);
    }
  return rd_kafka_new(t, c, err, sizeof err);
}

typedef struct server {
  fe_idem_t *idem;
  fe_kafka_t *k;
  fe_bus_t *bus;
} server_t;

static const fe_kafka_prop_t props[] = {
    {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"},
    {"fetch.wait.max.ms", "5"},     {"log_level", "2"}};

static char g_orders[32], g_outcomes[32], g_intents[32];

static void server_up(server_t *s, const char *boot, const char *group,
                      int intents) {
  fe_diag_t d;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 1 << 20;
  ic.now_ns = fe_clock_wall_fn;
  fe_kafka_config_t kc;
  fe_kafka_config_init(&kc);
  kc.brokers = boot, kc.group_id = group;
  kc.orders_topic = g_orders, kc.outcomes_topic = g_outcomes;
  kc.intents_topic = intents ? g_intents : NULL;
  kc.props = props, kc.n_props = sizeof props / sizeof props[0];
  fe_stage_def_t st[2];
  fe_stage_def_init(&st[0]);
  fe_stage_def_init(&st[1]);
  fe_bus_config_t bc;
  fe_bus_config_init(&bc);
  if (fe_idem_create(&ic, &s->idem, &d) ||
      (kc.idem = s->idem, fe_kafka_create(&kc, &s->k, &d))) {
    fprintf(stderr, "%s\n", d.msg);
    exit(1);
  }
  st[0].name = "intent", st[0].batch_handler = fe_kafka_intent_stage;
  st[0].user = s->k;
  st[1].name = "exec", st[1].handler = nop;
  st[1].n_deps = 1, st[1].deps[0] = 0;
  bc.capacity = 8192, bc.stages = st, bc.n_stages = 2, bc.idem = s->idem;
  bc.on_outcome = fe_kafka_on_outcome, bc.outcome_user = s->k;
  if (fe_bus_create(&bc, &s->bus, &d) || fe_bus_start(s->bus, &d) ||
      fe_kafka_start(s->k, s->bus, &d)) {
    fprintf(stderr, "%s\n", d.msg);
    exit(1);
  }
}

static void server_down(server_t *s) {
  fe_kafka_stop(s->k);
  fe_bus_destroy(s->bus);
  fe_kafka_destroy(s->k);
  fe_idem_destroy(s->idem);
}

static void send_order(rd_kafka_t *prod, const char *run, uint64_t i) {
  fe_order_t o = {.account = 1 + i % ACCOUNTS, .quantity = 1,
                  .price = FE_PRICE_SCALE, .side = FE_SIDE_BUY,
                  .type = FE_ORD_LIMIT, .tif = FE_TIF_DAY};
  o.client_ts_ns = now_ns();
  snprintf(o.client_order_id, sizeof o.client_order_id, "%s%" PRIu64, run, i);
  memcpy(o.symbol, "ACME", 4);
  uint8_t v[FE_KAFKA_ORDER_BYTES];
  fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, o.client_ts_ns, v, sizeof v);
  char key[24];
  int kl = snprintf(key, sizeof key, "%" PRIu64, o.account);
  while (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(g_orders),
                           RD_KAFKA_V_PARTITION((int32_t)(o.account % PARTITIONS)),
                           RD_KAFKA_V_KEY(key, (size_t)kl),
                           RD_KAFKA_V_VALUE(v, sizeof v),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                           RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(prod, 1);
  rd_kafka_poll(prod, 0);
}

/* Reads outcomes of run `tag` until `want` came or 60 s passed; the
 * latency of each (trace id = client send time) into h.  Returns the
 * count and the time of the last one. */
static uint64_t watch(rd_kafka_t *w, const char *tag, uint64_t want,
                      fe_hist_t *h, uint64_t *last_ns, rd_kafka_t *prod,
                      uint64_t *sent, uint64_t total, uint64_t rate,
                      uint64_t t0) {
  uint64_t got = 0, end = now_ns() + 60000000000ull;
  size_t tl = strlen(tag);
  while (got < want && now_ns() < end) {
    if (prod != NULL && *sent < total) { /* pacing */
      uint64_t due = (now_ns() - t0) * rate / 1000000000ull;
      while (*sent < total && *sent <= due)
        send_order(prod, tag, (*sent)++);
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w, 1);
    if (m == NULL)
      continue;
    fe_kafka_outcome_t o;
    if (!m->err && !fe_kafka_outcome_decode(m->payload, m->len, &o) &&
        strncmp(o.client_order_id, tag, tl) == 0) {
      uint64_t t = now_ns();
      got++;
      *last_ns = t;
      if (h != NULL && t > o.trace_id)
        fe_hist_record(h, t - o.trace_id);
    }
    rd_kafka_message_destroy(m);
  }
  return got;
}

int main(int argc, char **argv) {
  uint64_t n = 20000, rate = 1000, seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--orders"))
      n = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--rate"))
      rate = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = strtoull(argv[i + 1], NULL, 10);
  }
  const char *quiet[] = {"log_level", "2", NULL};
  rd_kafka_t *owner = client(RD_KAFKA_PRODUCER, quiet);
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 3);
  char boot[256];
  snprintf(boot, sizeof boot, "%s", rd_kafka_mock_cluster_bootstraps(mc));
  const char *pk[] = {"bootstrap.servers", boot, "enable.idempotence", "true",
                      "linger.ms", "1", "log_level", "2", NULL};
  rd_kafka_t *prod = client(RD_KAFKA_PRODUCER, pk);
  printf("kafka_source_sink: MOCK CLUSTER ON LOOPBACK (librdkafka %s, 3 "
         "brokers in-process), not a production figure; %ld cores\n",
         rd_kafka_version_str(), sysconf(_SC_NPROCESSORS_ONLN));
  for (int intents = 1; intents >= 0; intents--) {
    /* Fresh topics per variant: the rebuild reads the whole log. */
    char run[8];
    snprintf(run, sizeof run, "%c", intents ? 'i' : 'n');
    snprintf(g_orders, sizeof g_orders, "orders-%s", run);
    snprintf(g_outcomes, sizeof g_outcomes, "outcomes-%s", run);
    snprintf(g_intents, sizeof g_intents, "intents-%s", run);
    rd_kafka_mock_topic_create(mc, g_orders, PARTITIONS, 3);
    rd_kafka_mock_topic_create(mc, g_outcomes, PARTITIONS, 3);
    rd_kafka_mock_topic_create(mc, g_intents, PARTITIONS, 3);
    char group[16];
    snprintf(group, sizeof group, "bench-%s", run);
    server_t s;
    server_up(&s, boot, group, intents);
    const char *ck[] = {"bootstrap.servers", boot, "group.id", "w",
                        "enable.auto.commit", "false", "fetch.wait.max.ms",
                        "5", "log_level", "2", NULL};
    rd_kafka_t *w = client(RD_KAFKA_CONSUMER, ck);
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
      rd_kafka_topic_partition_list_add(l, g_outcomes, p)->offset =
          RD_KAFKA_OFFSET_END;
    rd_kafka_assign(w, l);
    rd_kafka_topic_partition_list_destroy(l);
    /* Warm-up: the group's first join, then one order through. */
    uint64_t last = 0, sent = 0;
    char tag[16];
    snprintf(tag, sizeof tag, "%sw", run);
    send_order(prod, tag, 0);
    rd_kafka_flush(prod, 10000);
    watch(w, tag, 1, NULL, &last, NULL, &sent, 0, 0, 0);

    snprintf(tag, sizeof tag, "%st", run);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
      send_order(prod, tag, i);
    uint64_t got = watch(w, tag, n, NULL, &last, NULL, &sent, 0, 0, 0);
    double secs = (double)(last - t0) / 1e9;
    printf("  intents %-3s throughput: %" PRIu64 " of %" PRIu64
           " orders in %.2f s = %.0f orders/s\n",
           intents ? "on" : "off", got, n, secs, (double)got / secs);

    fe_hist_config_t hc;
    fe_hist_config_init(&hc);
    fe_hist_t *h;
    fe_hist_create(&hc, &h, NULL);
    snprintf(tag, sizeof tag, "%sl", run);
    uint64_t total = rate * seconds;
    sent = 0;
    t0 = now_ns();
    got = watch(w, tag, total, h, &last, prod, &sent, total, rate, t0);
    printf("  intents %-3s latency at %" PRIu64 " orders/s (%" PRIu64
           " orders): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
           intents ? "on" : "off", rate, got, fe_hist_percentile(h, 50) / 1e6,
           fe_hist_percentile(h, 99) / 1e6, fe_hist_percentile(h, 99.9) / 1e6,
           fe_hist_max(h) / 1e6);
    fe_kafka_stats_t ks;
    fe_kafka_stats(s.k, &ks);
    printf("  intents %-3s server: intents %" PRIu64 " in %" PRIu64
           " group commits (mean wait %.2f ms), outcomes %" PRIu64
           ", pauses %" PRIu64 "\n", intents ? "on" : "off", ks.intents,
           ks.intent_batches,
           ks.intent_batches ? ks.intent_wait_ns / 1e6 / ks.intent_batches : 0.0,
           ks.outcomes, ks.pauses);
    fe_hist_destroy(h);
    rd_kafka_consumer_close(w);
    rd_kafka_destroy(w);
    server_down(&s);
  }
  rd_kafka_destroy(prod);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(owner);
  return 0;
}
