/*
 * kafka_partitions: two server processes share the partitions of an
 * orders topic through one consumer group (libfinevent-kafka).
 *
 *   kafka_partitions                 runs librdkafka's in-process mock
 *                                    cluster (3 brokers, loopback), starts
 *                                    two servers, sends 2000 orders for 20
 *                                    accounts and waits for their outcomes
 *   kafka_partitions --server BOOTSTRAP NAME
 *                                    one server against any cluster (the
 *                                    topics orders/outcomes/intents must
 *                                    exist with equal partition counts)
 *
 * Each server is a bus with an idempotency table and two stages: the
 * intent stage (fe_kafka_intent_stage) and an execution stage that stands
 * in for the venue.  The output shows which server took which accounts;
 * the run checks that every order got exactly one outcome.
 * Build: make kafka; it is also run by make test (run-kafka).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <finevent/finevent.h>
#include <finevent/kafka.h>

#define ORDERS 2000
#define ACCOUNTS 20
#define PARTITIONS 6

static volatile sig_atomic_t g_stop;
static void on_term(int sig) { (void)sig; g_stop = 1; }

static uint64_t g_executed;
static uint64_t g_accounts_seen[ACCOUNTS];

static fe_verdict_t venue(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx, (void)user;
  g_executed++; /* one shard: one thread */
  g_accounts_seen[ev->order.account % ACCOUNTS]++;
  return FE_CONTINUE;
}

static const fe_kafka_prop_t props[] = {
    {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"},
    {"fetch.wait.max.ms", "10"},    {"log_level", "2"}};

static int server(const char *boot, const char *name) {
  signal(SIGTERM, on_term);
  fe_diag_t d;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.now_ns = fe_clock_wall_fn; /* outcomes are restored across servers */
  fe_idem_t *idem;
  if (fe_idem_create(&ic, &idem, &d))
    return fprintf(stderr, "%s\n", d.msg), 1;
  fe_kafka_config_t kc;
  fe_kafka_config_init(&kc);
  kc.brokers = boot, kc.group_id = "servers";
  kc.orders_topic = "orders", kc.outcomes_topic = "outcomes";
  kc.intents_topic = "intents";
  kc.idem = idem;
  kc.props = props, kc.n_props = sizeof props / sizeof props[0];
  fe_kafka_t *k;
  if (fe_kafka_create(&kc, &k, &d))
    return fprintf(stderr, "%s\n", d.msg), 1;
  fe_stage_def_t st[2];
  fe_stage_def_init(&st[0]);
  st[0].name = "intent", st[0].batch_handler = fe_kafka_intent_stage;
  st[0].user = k;
  fe_stage_def_init(&st[1]);
  st[1].name = "venue", st[1].handler = venue;
  st[1].n_deps = 1, st[1].deps[0] = 0;
  fe_bus_config_t bc;
  fe_bus_config_init(&bc);
  bc.capacity = 4096, bc.stages = st, bc.n_stages = 2;
  bc.idem = idem;
  bc.on_outcome = fe_kafka_on_outcome, bc.outcome_user = k;
  fe_bus_t *bus;
  if (fe_bus_create(&bc, &bus, &d) || fe_bus_start(bus, &d) ||
      fe_kafka_start(k, bus, &d))
    return fprintf(stderr, "%s: %s\n", name, d.msg), 1;
  while (!g_stop)
    pause();
  fe_kafka_stop(k); /* finishes, commits, leaves the group */
  fe_bus_destroy(bus);
  fe_kafka_stats_t s;
  fe_kafka_stats(k, &s);
  printf("%s: executed %" PRIu64 " orders for accounts", name, g_executed);
  for (int a = 0; a < ACCOUNTS; a++)
    if (g_accounts_seen[a])
      printf(" %d", 1000 + a);
  printf(" (partitions taken %" PRIu64 ", released %" PRIu64 ")\n", s.assigned,
         s.revoked);
  fe_kafka_destroy(k);
  fe_idem_destroy(idem);
  return 0;
}

static rd_kafka_t *client(rd_kafka_type_t t, const char *const *kv) {
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  for (int i = 0; kv[i] != NULL; i += 2)
    rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof err);
  return rd_kafka_new(t, c, err, sizeof err);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--server") == 0)
    return server(argv[2], argv[3]);
  const char *quiet[] = {"log_level", "2", NULL};
  rd_kafka_t *owner = client(RD_KAFKA_PRODUCER, quiet);
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 3);
  char boot[256];
  snprintf(boot, sizeof boot, "%s", rd_kafka_mock_cluster_bootstraps(mc));
  const char *topics[] = {"orders", "outcomes", "intents"};
  for (int i = 0; i < 3; i++)
    rd_kafka_mock_topic_create(mc, topics[i], PARTITIONS, 3);
  printf("mock cluster (3 brokers, loopback): %s\n", boot);

  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0)
    return 1;
  self[n] = 0;
  pid_t pids[2];
  const char *names[2] = {"server-A", "server-B"};
  for (int i = 0; i < 2; i++)
    if ((pids[i] = fork()) == 0) {
      execl(self, self, "--server", boot, names[i], (char *)NULL);
      _exit(127);
    }

  const char *pk[] = {"bootstrap.servers", boot, "enable.idempotence", "true",
                      "log_level", "2", NULL};
  rd_kafka_t *prod = client(RD_KAFKA_PRODUCER, pk);
  for (uint64_t i = 0; i < ORDERS; i++) {
    fe_order_t o = {.account = 1000 + i % ACCOUNTS, .quantity = 10,
                    .price = 25 * FE_PRICE_SCALE, .side = FE_SIDE_BUY,
                    .type = FE_ORD_LIMIT, .tif = FE_TIF_DAY};
    snprintf(o.client_order_id, sizeof o.client_order_id, "c%" PRIu64, i);
    memcpy(o.symbol, "ACME", 4);
    uint8_t v[FE_KAFKA_ORDER_BYTES];
    fe_kafka_order_encode(FE_EV_NEW_ORDER, &o, i, v, sizeof v);
    char key[24];
    int kl = snprintf(key, sizeof key, "%" PRIu64, o.account);
    /* One account, one partition: the key decides. */
    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("orders"),
                      RD_KAFKA_V_PARTITION((int32_t)(o.account % PARTITIONS)),
                      RD_KAFKA_V_KEY(key, (size_t)kl), RD_KAFKA_V_VALUE(v, sizeof v),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(prod, 0);
  }
  rd_kafka_flush(prod, 10000);

  /* Read the outcomes until every order has one (60 s at most). */
  const char *ck[] = {"bootstrap.servers", boot, "group.id", "watcher",
                      "enable.auto.commit", "false", "log_level", "2", NULL};
  rd_kafka_t *watch = client(RD_KAFKA_CONSUMER, ck);
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(PARTITIONS);
  for (int p = 0; p < PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(l, "outcomes", p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(watch, l);
  rd_kafka_topic_partition_list_destroy(l);
  static uint8_t seen[ORDERS];
  uint64_t distinct = 0, dup = 0;
  time_t end = time(NULL) + 60;
  while (distinct < ORDERS && time(NULL) < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(watch, 100);
    if (m == NULL)
      continue;
    fe_kafka_outcome_t o;
    if (!m->err && !fe_kafka_outcome_decode(m->payload, m->len, &o)) {
      unsigned long i = strtoul(o.client_order_id + 1, NULL, 10);
      if (i < ORDERS && seen[i]++ == 0)
        distinct++;
      else
        dup++;
    }
    rd_kafka_message_destroy(m);
  }
  printf("outcomes: %" PRIu64 " of %d orders, %" PRIu64 " duplicates\n",
         distinct, ORDERS, dup);
  int rc = distinct == ORDERS && dup == 0 ? 0 : 1;
  for (int i = 0; i < 2; i++) {
    int st;
    kill(pids[i], SIGTERM);
    waitpid(pids[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      rc = 1;
  }
  rd_kafka_consumer_close(watch);
  rd_kafka_destroy(watch);
  rd_kafka_destroy(prod);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(owner);
  return rc;
}
