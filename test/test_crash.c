/*
 * The crash test of exactly-once: a child process runs the full pipeline
 * (validation in parallel with the journaller, compliance, execution
 * through the gateway, settlement) with a journal and an idempotency
 * table, acknowledging each order once fe_bus_submit(FE_SUBMIT_DURABLE)
 * returns.  Its venue is an append-only file that does not dedupe.  The
 * parent kills it with SIGKILL at random moments, CRASHES times, and
 * restarts it each time; the child recovers (the in-doubt hook reads the
 * venue file, as a real one would ask the venue) and resubmits every order
 * not yet acknowledged, as a client would.  After the last run has drained:
 *   - no order reached the venue twice;
 *   - every acknowledged order reached the venue and has exactly one
 *     outcome in the journal;
 *   - a resubmission of any order gets its stored outcome (FE_EDUPLICATE).
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "finevent/journal.h"
#include "../lib/jrec.h"

#define ORDERS 6000
#define CRASHES 55

static char dir[128], jdir[160], venue_path[160], acks_path[160],
    stats_path[160];

/* ---------------------------------------------------------- the child */

static int venue_fd = -1;

static fe_verdict_t check(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  return ev->order.quantity > 0 ? FE_CONTINUE : fe_reject(ctx, 1);
}

static fe_verdict_t pass(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  return FE_CONTINUE;
}

/* Settlement takes a while too: kills land between send and outcome. */
static fe_verdict_t settle(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  fe_t_sleep_ns(100 * FE_T_US);
  return FE_CONTINUE;
}

/* The venue: one line per order received.  A write to an O_APPEND file is
 * whole or absent after a SIGKILL. */
static fe_verdict_t venue_send(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               uint32_t venue, void *u) {
  (void)ctx, (void)venue, (void)u;
  /* A slow venue round trip: kills often land between the intent and the
   * send, or between the send and the outcome. */
  fe_t_sleep_ns(100 * FE_T_US);
  char line[64];
  int n = snprintf(line, sizeof line, "%.32s\n", ev->order.client_order_id);
  if (write(venue_fd, line, (size_t)n) != n)
    return fe_retry(ctx, 2);
  return FE_CONTINUE;
}

/* Reads path into a malloc'd NUL-terminated buffer ("" when missing). */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return strdup("");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  size_t got = fread(b, 1, (size_t)n, f);
  b[got] = '\0';
  fclose(f);
  return b;
}

/* How many lines of buf are exactly `id`. */
static int count_lines(const char *buf, const char *id) {
  int n = 0;
  size_t len = strlen(id);
  for (const char *p = buf; *p;) {
    const char *e = strchr(p, '\n');
    if (e == NULL)
      break;
    if ((size_t)(e - p) == len && memcmp(p, id, len) == 0)
      n++;
    p = e + 1;
  }
  return n;
}

/* Recovery's question to the venue: was this order received? */
static int in_doubt(const fe_event_t *ev, void *u) {
  (void)u;
  char *v = slurp(venue_path);
  char id[40];
  snprintf(id, sizeof id, "%.32s", ev->order.client_order_id);
  int sent = count_lines(v, id) > 0;
  free(v);
  return sent;
}

static void order_of(uint32_t i, fe_order_t *o) {
  memset(o, 0, sizeof *o);
  o->account = 1 + i % 17;
  o->quantity = 1 + i % 5;
  o->price = 100 * FE_PRICE_SCALE;
  o->side = FE_SIDE_BUY;
  snprintf(o->client_order_id, sizeof o->client_order_id, "ORD-%06u", i);
  snprintf(o->symbol, sizeof o->symbol, "XYZ");
}

static int ready_fd = -1; /* the child writes one byte once it submits */

static int child_run(int final) {
  fe_diag_t d;
  venue_fd = open(venue_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  int acks_fd = open(acks_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (venue_fd < 0 || acks_fd < 0)
    return 10;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 8192;
  ic.now_ns = fe_clock_wall_fn;
  fe_idem_t *idem;
  if (fe_idem_create(&ic, &idem, &d) != 0)
    return 11;
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = jdir;
  jc.fsync = FE_FSYNC_NONE; /* SIGKILL, not power loss: the kernel keeps it */
  jc.segment_bytes = 256 * 1024;
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = venue_send;
  fe_gateway_t *gw;
  if (fe_gateway_create(&gc, &gw, &d) != 0)
    return 12;
  fe_stage_def_t st[4];
  const char *names[4] = {"validation", "compliance", "execution",
                          "settlement"};
  for (uint32_t i = 0; i < 4; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i];
    st[i].handler = pass;
    st[i].worker = i < 2 ? 0 : 1;
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = i - 1;
  }
  st[0].handler = check;
  st[0].parallel_to_journal = 1;
  st[2].handler = fe_gateway_stage, st[2].user = gw;
  st[3].handler = settle;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 256;
  cfg.stages = st, cfg.n_stages = 4;
  cfg.wait = FE_WAIT_PARK;
  cfg.idem = idem;
  cfg.journal = &jc;
  cfg.journal_worker = 1;
  cfg.in_doubt = in_doubt;
  fe_bus_t *bus;
  if (fe_bus_create(&cfg, &bus, &d) != 0) {
    fprintf(stderr, "child: fe_bus_create: %s\n", d.msg);
    return 13;
  }
  if (fe_bus_start(bus, &d) != 0) {
    fprintf(stderr, "child: fe_bus_start: %s\n", d.msg);
    return 14;
  }
  /* What this run's recovery found, for the parent's summary. */
  fe_bus_recovery_t rv;
  fe_bus_recovery(bus, &rv);
  FILE *sf = fopen(stats_path, "a");
  if (sf != NULL) {
    fprintf(sf, "%llu %llu %llu %llu %llu\n",
            (unsigned long long)rv.redriven,
            (unsigned long long)rv.in_doubt_sent,
            (unsigned long long)rv.in_doubt_unsent,
            (unsigned long long)rv.truncated_bytes,
            (unsigned long long)rv.idem_restored);
    fclose(sf);
  }
  /* Resubmit from the first order not acknowledged, as a client would. */
  char *acks = slurp(acks_path);
  uint32_t first = 0;
  for (const char *p = acks; *p; p = strchr(p, '\n') + 1) {
    unsigned v;
    if (sscanf(p, "ORD-%u", &v) == 1 && v + 1 > first)
      first = v + 1;
    if (strchr(p, '\n') == NULL)
      break;
  }
  free(acks);
  if (write(ready_fd, "r", 1) != 1)
    return 19;
  for (uint32_t i = first; i < ORDERS; i++) {
    fe_order_t o;
    order_of(i, &o);
    fe_submit_t in = {.type = FE_EV_NEW_ORDER, .flags = FE_SUBMIT_DURABLE,
                      .order = &o, .trace_id = i,
                      .timeout_ns = FE_T_LONG_NS};
    fe_submit_result_t res;
    int r;
    while ((r = fe_bus_submit(bus, &in, &res)) == FE_EINPROGRESS)
      fe_t_sleep_ns(100 * FE_T_US); /* the recovered first is running */
    if (r != 0 && r != FE_EDUPLICATE) {
      fprintf(stderr, "child: submit %u: %s\n", i, fe_err_name(r));
      return 15;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "ORD-%06u\n", i);
    if (write(acks_fd, line, (size_t)n) != n)
      return 16;
    if (!final)
      fe_t_sleep_ns(50 * FE_T_US); /* spread the run over the kill window */
  }
  if (fe_bus_drain(bus, FE_T_LONG_NS) != 0)
    return 17;
  /* Every order now has its stored outcome. */
  for (uint32_t i = 0; i < ORDERS; i++) {
    fe_order_t o;
    order_of(i, &o);
    fe_submit_t in = {.type = FE_EV_NEW_ORDER, .order = &o,
                      .timeout_ns = FE_T_LONG_NS};
    fe_submit_result_t res;
    int r = fe_bus_submit(bus, &in, &res);
    if (r != FE_EDUPLICATE || res.outcome.status != FE_IDEM_COMPLETED) {
      fprintf(stderr, "child: resubmit %u: %s status %d\n", i,
              fe_err_name(r), res.outcome.status);
      return 18;
    }
  }
  fe_bus_recovery_t rec;
  fe_bus_recovery(bus, &rec);
  if (final && rec.events == 0)
    return 20; /* the earlier runs must have left a journal to recover */
  fprintf(stderr, "final run: recovery read %llu events, %llu finished, "
          "%llu re-driven (%llu in doubt sent, %llu not), %llu torn bytes\n",
          (unsigned long long)rec.events, (unsigned long long)rec.finished,
          (unsigned long long)rec.redriven,
          (unsigned long long)rec.in_doubt_sent,
          (unsigned long long)rec.in_doubt_unsent,
          (unsigned long long)rec.truncated_bytes);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_gateway_destroy(gw);
  fe_idem_destroy(idem);
  close(venue_fd);
  close(acks_fd);
  return 0;
}

/* ---------------------------------------------------------- the parent */

/* Forks a child run; *ready gets the read end of its "submitting" pipe. */
static pid_t spawn(int final, int *ready) {
  int p[2];
  if (pipe(p) != 0)
    return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    ready_fd = p[1];
    _exit(child_run(final));
  }
  close(p[1]);
  *ready = p[0];
  return pid;
}

/* Waits up to ms for the child's ready byte; 1 if it came. */
static int wait_ready(int fd, int ms) {
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  char c;
  return poll(&pf, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

typedef struct outcome_count {
  uint32_t n[ORDERS];
  uint64_t bad;
} outcome_count_t;

/* Counts the journal's outcome records per order (the client order id is
 * in the idempotency key; the event records map eid -> order). */
typedef struct scan {
  uint32_t *order_of_eid; /* eid -> order index + 1 */
  uint64_t max_eid;
  outcome_count_t *oc;
} scan_t;

static int scan_rec(const fe_journal_record_t *rec, void *u) {
  scan_t *s = u;
  if (rec->type == FE_JREC_EVENT) {
    const jrec_events_t *h = rec->data;
    const uint8_t *p = (const uint8_t *)(h + 1);
    const uint8_t *end = (const uint8_t *)rec->data + rec->len;
    assert_int_equal(h->version, FE_JREC_BUS_VERSION);
    for (uint32_t i = 0; i < h->count; i++) {
      jrec_event_t r;
      uint8_t user[256];
      assert_true(h->user_len <= sizeof user);
      uint32_t len = jrec_ev_decode(p, (size_t)(end - p), h->user_len, &r,
                                    user);
      assert_int_not_equal(len, 0);
      p += len;
      fe_event_t ev;
      memcpy(&ev, r.ev, sizeof ev);
      unsigned v;
      uint64_t eid = h->first_eid + i;
      if (eid < s->max_eid &&
          sscanf(ev.order.client_order_id, "ORD-%u", &v) == 1 && v < ORDERS)
        s->order_of_eid[eid] = v + 1;
    }
  } else if (rec->type == FE_JREC_OUTCOME) {
    const jrec_outcomes_t *h = rec->data;
    const uint8_t *p = (const uint8_t *)(h + 1);
    const uint8_t *end = (const uint8_t *)rec->data + rec->len;
    for (uint32_t i = 0; i < h->count; i++) {
      jrec_outcome_t o;
      uint32_t events = 0;
      uint32_t size = jrec_out_read(p, (size_t)(end - p), &o, &events);
      assert_int_not_equal(size, 0);
      for (uint64_t eid = o.eid; eid < o.eid + events; eid++)
        if (eid < s->max_eid && s->order_of_eid[eid] != 0)
          s->oc->n[s->order_of_eid[eid] - 1]++;
        else
          s->oc->bad++;
      p += size;
    }
  }
  return 0;
}

static void test_sigkill_many_times(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/fe-crash-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(jdir, sizeof jdir, "%s/journal", dir);
  snprintf(venue_path, sizeof venue_path, "%s/venue", dir);
  snprintf(acks_path, sizeof acks_path, "%s/acks", dir);
  snprintf(stats_path, sizeof stats_path, "%s/recoveries", dir);
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, (uint64_t)getpid() * 7919 + (uint64_t)time(NULL));
  int kills = 0, early_exits = 0, in_flight = 0;
  for (int i = 0; i < CRASHES; i++) {
    int ready;
    pid_t pid = spawn(0, &ready);
    assert_true(pid > 0);
    /* A random moment: one kill in eight during recovery and start, the
     * others 0-15 ms into the submit loop. */
    if (fe_t_rng_range(&rng, 0, 7) == 0) {
      fe_t_sleep_ns(fe_t_rng_range(&rng, 1, 30) * FE_T_MS);
    } else if (wait_ready(ready, FE_T_LONG_MS)) {
      fe_t_sleep_ns(fe_t_rng_range(&rng, 0, 15000) * FE_T_US);
      in_flight++;
    }
    int killed = kill(pid, SIGKILL) == 0;
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(ready); /* only now: an early close would SIGPIPE the child */
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && killed) {
      kills++;
    } else {
      /* it finished before the kill: that must be a clean exit */
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child run %d failed: status %d", i, status);
      early_exits++;
    }
  }
  int ready;
  pid_t pid = spawn(1, &ready);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(ready);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("final run failed: status %d", status);
  printf("%d kills (%d in the submit loop), %d runs finished before their "
         "kill\n", kills, in_flight, early_exits);
  assert_true(kills >= 50);
  assert_true(in_flight >= 40);

  unsigned long long sum[5] = {0}, v[5];
  FILE *sf = fopen(stats_path, "r");
  while (sf != NULL && fscanf(sf, "%llu %llu %llu %llu %llu", &v[0], &v[1],
                              &v[2], &v[3], &v[4]) == 5)
    for (int k = 0; k < 5; k++)
      sum[k] += v[k];
  if (sf != NULL)
    fclose(sf);
  printf("over all restarts: %llu events re-driven, %llu in doubt found sent "
         "(not resent), %llu in doubt found unsent, %llu torn bytes cut\n",
         sum[0], sum[1], sum[2], sum[3]);
  /* The runs must have exercised recovery: re-drives and both answers of
   * the in-doubt hook (with ~50 kills among ~6 orders in flight, each is
   * all but certain). */
  assert_true(sum[0] > 0);
  assert_true(sum[1] > 0);
  assert_true(sum[2] > 0);
  char *venue = slurp(venue_path), *acks = slurp(acks_path);
  static outcome_count_t oc;
  memset(&oc, 0, sizeof oc);
  scan_t s = {calloc(64 * ORDERS, sizeof(uint32_t)), 64 * ORDERS, &oc};
  fe_journal_report_t rep;
  fe_diag_t d;
  assert_fe(fe_journal_scan(jdir, 0, scan_rec, &s, &rep, &d), 0);
  uint32_t twice = 0, missing = 0, acked = 0, bad_outcomes = 0;
  for (uint32_t i = 0; i < ORDERS; i++) {
    char id[32];
    snprintf(id, sizeof id, "ORD-%06u", i);
    int at_venue = count_lines(venue, id);
    twice += at_venue > 1;
    if (count_lines(acks, id) > 0) {
      acked++;
      missing += at_venue == 0;
      bad_outcomes += oc.n[i] != 1;
    }
  }
  printf("%u orders acknowledged; %u sent twice, %u acknowledged but never "
         "sent, %u without exactly one outcome\n", acked, twice, missing,
         bad_outcomes);
  assert_int_equal(acked, ORDERS);
  assert_int_equal(twice, 0);
  assert_int_equal(missing, 0);
  assert_int_equal(bad_outcomes, 0);
  assert_int_equal(oc.bad, 0);
  free(s.order_of_eid);
  free(venue);
  free(acks);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigkill_many_times),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
