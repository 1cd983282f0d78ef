/* examples/order_flow end to end: runs the program at a reduced size with
 * a fixed seed and checks its machine-readable summary (--json):
 * conservation, duplicates caught = injected, the compliance kit (every
 * fat finger refused, rejects by the kit's reason codes, every order it
 * accepted closed), the XNYS outage (breaker opened and closed, redrive
 * emptied the DLQ), malformed orders rejected with their reasons, every
 * injected reconciliation break found and nothing else; a second run on
 * the same directory recovers from the journal and executes nothing
 * again; the audit trail verifies (with fe-audit too) after each run.  A
 * run killed with SIGKILL in the middle of the day resumes on its
 * directory: recovery reports what it found and conservation holds over
 * both runs.  A last test scrapes --metrics-port with curl while it runs
 * and checks the text with `promtool check metrics`.  FE_ORDER_FLOW names
 * the binary (Makefile). */
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#if !defined(FE_ORDER_FLOW) || !defined(FE_AUDIT_TOOL) || !defined(FE_JOURNAL_TOOL)
#error "FE_ORDER_FLOW, FE_AUDIT_TOOL and FE_JOURNAL_TOOL must name the binaries"
#endif

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/test_order_flow_XXXXXX");
  assert_non_null(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* Runs order_flow with args; returns its exit status (-1: no exit). */
static int run(const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s %s > %s/out.txt 2>&1", FE_ORDER_FLOW, args, dir);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char json[16384];

static void load_json(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(json, 1, sizeof json - 1, f);
  json[n] = 0;
  fclose(f);
  assert_true(n > 100 && n < sizeof json - 1);
}

/* The value of "key" in the flat summary; fails the test if absent. */
static double jv(const char *key) {
  char pat[96];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(json, pat);
  if (p == NULL)
    fail_msg("summary has no \"%s\"", key);
  return strtod(p + strlen(pat), NULL);
}
#define J(key) ((uint64_t)jv(key))

/* The sum of every value whose key starts with prefix. */
static uint64_t jsum(const char *prefix) {
  char pat[96];
  snprintf(pat, sizeof pat, "\"%s", prefix);
  uint64_t sum = 0;
  for (const char *p = strstr(json, pat); p != NULL; p = strstr(p + 1, pat)) {
    const char *v = strstr(p, "\": ");
    if (v != NULL)
      sum += (uint64_t)strtod(v + 3, NULL);
  }
  return sum;
}

static const char *outcomes[] = {
    "rejected_validation", "rejected_compliance", "rejected_venue",
    "rejected_booking", "filled", "partially_filled", "cancelled",
    "expired_compensated", "saga_failed", "dead_lettered"};

/* Conservation in the loaded summary: every one of n orders acknowledged
 * has one outcome, none reached a venue twice or got two sagas, and the
 * bus's published = completed + rejected + dead-lettered held. */
static void assert_conserved(uint64_t n) {
  assert_int_equal(J("orders_acknowledged"), n);
  assert_int_equal(J("conservation_ok"), 1);
  assert_int_equal(J("ended_twice"), 0);
  assert_int_equal(J("never_ended"), 0);
  assert_int_equal(J("venue_took_twice"), 0);
  assert_int_equal(J("orphan_sagas"), 0);
  uint64_t sum = 0;
  for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
    char key[64];
    snprintf(key, sizeof key, "outcome_%s", outcomes[i]);
    sum += J(key);
  }
  assert_int_equal(sum, n);
}

static void test_day_and_resume(void **state) {
  (void)state;
  make_dir();
  char args[512];
  snprintf(args, sizeof args, "--orders 8000 --accounts 400 --symbols 60 "
           "--seed 7 --dir %s --quiet --json %s/first.json", dir, dir);
  int rc = run(args);
  load_json("first.json");
  if (rc != 0)
    fail_msg("order_flow exited %d; see %s/out.txt", rc, dir);
  assert_int_equal(J("resumed"), 0);
  assert_int_equal(J("orders_submitted"), 8000);
  assert_int_equal(J("orders_accepted"), 8000);
  assert_conserved(8000);
  assert_true(J("outcome_filled") > 4000);
  assert_true(J("outcome_partially_filled") > 0);
  assert_true(J("outcome_expired_compensated") > 0);
  assert_true(J("outcome_cancelled") > 0);
  assert_int_equal(J("outcome_dead_lettered"), 0);
  /* compliance: the built-in kit, rules from examples/ */
  assert_true(J("fat_fingers") > 5);
  assert_int_equal(J("fat_fingers_rejected"), J("fat_fingers"));
  assert_true(J("rejected_CR_MAX_QTY") > 0);
  assert_true(J("rejected_CR_RESTRICTED") > 0);
  assert_int_equal(jsum("rejected_CR_"), J("outcome_rejected_compliance"));
  assert_true(J("compliance_checked") >= J("outcome_rejected_compliance"));
  assert_int_equal(J("compliance_reserved_at_end"), 0);
  assert_int_equal(J("compliance_unknown_closes"), 0);
  /* duplicates */
  assert_true(J("retries_injected") > 20);
  assert_int_equal(J("retries_caught"), J("retries_injected"));
  assert_true(J("reuses_injected") > 2);
  assert_int_equal(J("reuses_caught"), J("reuses_injected"));
  assert_int_equal(J("duplicates_bus"), J("retries_injected") + J("reuses_injected"));
  /* malformed orders: each rejected by validation with its reason */
  assert_true(J("malformed_injected") > 10);
  assert_int_equal(J("malformed_rejected_with_reason"), J("malformed_injected"));
  assert_int_equal(J("malformed_wrong"), 0);
  assert_int_equal(J("outcome_rejected_validation"), J("malformed_injected"));
  /* the outage */
  assert_true(J("breaker_XNYS_opened") >= 1);
  assert_true(J("breaker_XNYS_closed") >= 1);
  assert_int_equal(J("breaker_XNAS_opened"), 0);
  assert_true(J("dlq_peak") > 0);
  assert_true(J("dlq_peak_venue_down") > 0);
  assert_true(J("dlq_redriven") >= J("dlq_peak"));
  assert_int_equal(J("dlq_left"), 0);
  assert_int_equal(J("dlq_refused"), 0);
  /* sagas and settlement */
  assert_int_equal(J("sagas_stuck"), 0);
  assert_int_equal(J("sagas_live"), 0);
  assert_true(J("settle_refusals") > 0);
  assert_int_equal(J("sagas_completed"),
                   J("outcome_filled") + J("outcome_partially_filled"));
  /* reconciliation: every injected break, nothing else */
  assert_true(J("recon_injected") >= 4);
  assert_int_equal(J("recon_found_injected"), J("recon_injected"));
  assert_int_equal(J("recon_breaks"), J("recon_injected"));
  assert_int_equal(J("recon_unexpected"), 0);
  assert_true(J("recon_matched") > 1000);
  /* the audit trail: verifies under the run's key, every break in it */
  assert_int_equal(J("audit_verified"), 1);
  assert_int_equal(J("audit_refused"), 0);
  assert_int_equal(J("audit_recon_records"), J("recon_breaks"));
  assert_true(J("audit_records") > 8000);
  assert_true(J("audit_checkpoints") >= 1);
  char verify[512];
  snprintf(verify, sizeof verify, "%s verify --pubkey %s/audit.pub %s/audit > /dev/null",
           FE_AUDIT_TOOL, dir, dir);
  assert_int_equal(system(verify), 0);
  assert_int_equal(J("failures"), 0);
  uint64_t published = J("bus_published");
  /* The venue's and the custodian's answers keep their verdict (8 user
   * bytes) in the journal: a re-driven one must not come back blank. */
  char jcheck[512];
  snprintf(jcheck, sizeof jcheck, "%s dump --json %s/journal | grep '\"type\":\"EVENT\"' "
           "| grep -q '\"user_len\":8'", FE_JOURNAL_TOOL, dir);
  assert_int_equal(system(jcheck), 0);

  /* The same day again on the same directory: recovered, and every order
   * answered from the idempotency table; no venue sees anything. */
  snprintf(args, sizeof args, "--orders 8000 --accounts 400 --symbols 60 "
           "--seed 7 --dir %s --quiet --json %s/second.json", dir, dir);
  rc = run(args);
  load_json("second.json");
  if (rc != 0)
    fail_msg("resumed order_flow exited %d; see %s/out.txt", rc, dir);
  assert_int_equal(J("resumed"), 1);
  assert_int_equal(J("orders_accepted"), 0);
  assert_int_equal(J("orders_answered_from_journal"), 8000);
  assert_int_equal(J("venue_XNAS_sent") + J("venue_XNYS_sent") + J("venue_ARCX_sent"), 0);
  assert_int_equal(J("sagas_completed"), 0);
  assert_int_equal(J("audit_verified"), 1);
  assert_int_equal(system(verify), 0); /* the chain goes on across runs */
  assert_int_equal(J("failures"), 0);
  assert_true(J("bus_published") < published);
  char out[128];
  snprintf(out, sizeof out, "grep -q 'recovered from the journal: ' %s/out.txt", dir);
  assert_int_equal(system(out), 0);
  remove_dir();
}

/* The number of orders the last progress line of path reports sent
 * ("orders N/M"), 0 before the first. */
static uint64_t progress_orders(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  char line[512];
  uint64_t n = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    const char *p = strstr(line, "] orders ");
    if (p != NULL)
      n = strtoull(p + 9, NULL, 10);
  }
  fclose(f);
  return n;
}

/* A day killed with SIGKILL in the middle - orders in flight on the bus
 * and in sagas, answers owed by the venue and the custodian, XNYS in its
 * outage - resumes on the same directory: recovery reports what it found,
 * and over both runs every order acknowledged ends exactly once, none
 * reaches a venue twice, the ledger and the custodian agree but for the
 * injected breaks, and the audit trail verifies. */
static void test_kill_and_resume(void **state) {
  (void)state;
  make_dir();
  char out[128], json1[128];
  snprintf(out, sizeof out, "%s/killed.txt", dir);
  snprintf(json1, sizeof json1, "%s/killed.json", dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
      _exit(127);
    /* paced, so that the kill lands mid-day whatever the machine's load */
    execl(FE_ORDER_FLOW, FE_ORDER_FLOW, "--orders", "20000", "--rate", "10000",
          "--accounts", "400", "--symbols", "60", "--seed", "11", "--dir", dir,
          "--progress-ms", "20", "--json", json1, (char *)NULL);
    _exit(127);
  }
  /* Past 40 % of the stream (the outage starts at 35 %), and not done. */
  uint64_t sent = 0;
  for (uint64_t end = fe_t_now_ns() + FE_T_LONG_NS;
       sent < 8000 && fe_t_now_ns() < end;) {
    sent = progress_orders(out);
    if (sent < 8000)
      usleep(5000);
  }
  assert_true(sent >= 8000);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  struct stat js;
  assert_int_equal(stat(json1, &js), -1); /* it never got to its summary */

  char args[512];
  snprintf(args, sizeof args, "--orders 20000 --accounts 400 --symbols 60 --seed 11 "
           "--dir %s --quiet --json %s/resumed.json", dir, dir);
  int rc = run(args);
  load_json("resumed.json");
  if (rc != 0)
    fail_msg("resumed order_flow exited %d; see %s/out.txt", rc, dir);
  /* what recovery found */
  assert_int_equal(J("resumed"), 1);
  assert_int_equal(J("run"), 2);
  assert_true(J("recovery_events") > 8000);
  assert_true(J("recovery_finished") > 0);
  assert_true(J("recovery_redriven") + J("recovery_sagas_live") +
              J("recovery_dlq_restored") > 0);
  assert_true(J("recovery_idem_restored") > 0);
  char grep[256];
  snprintf(grep, sizeof grep, "grep -q 'recovered from the journal: ' %s/out.txt && "
           "grep -q 'recovered sagas: ' %s/out.txt", dir, dir);
  assert_int_equal(system(grep), 0);
  /* the client sent the day again: part answered from the journal, the
   * rest (never journaled before the kill) accepted now */
  assert_true(J("orders_answered_from_journal") >= 1000);
  assert_true(J("orders_accepted") >= 1000);
  assert_int_equal(J("orders_answered_from_journal") + J("orders_accepted"), 20000);
  assert_int_equal(J("admission_other"), 0);
  assert_conserved(20000); /* over both runs */
  assert_int_equal(J("outcome_dead_lettered"), 0);
  assert_int_equal(J("dlq_left"), 0);
  assert_int_equal(J("sagas_stuck"), 0);
  assert_int_equal(J("sagas_live"), 0);
  assert_int_equal(J("fat_fingers_rejected"), J("fat_fingers"));
  assert_int_equal(J("compliance_reserved_at_end"), 0);
  assert_int_equal(J("malformed_rejected_with_reason"), J("malformed_injected"));
  assert_int_equal(J("retries_caught"), J("retries_injected"));
  assert_int_equal(J("recon_found_injected"), J("recon_injected"));
  assert_int_equal(J("recon_unexpected"), 0);
  assert_int_equal(J("audit_verified"), 1);
  char verify[512];
  snprintf(verify, sizeof verify, "%s verify --pubkey %s/audit.pub %s/audit > /dev/null",
           FE_AUDIT_TOOL, dir, dir);
  assert_int_equal(system(verify), 0);
  assert_int_equal(J("failures"), 0);
  remove_dir();
}

/* A bad option is a usage error (2), --help is not. */
static void test_options(void **state) {
  (void)state;
  make_dir();
  assert_int_equal(run("--orders x"), 2);
  assert_int_equal(run("--orders 0"), 2);
  assert_int_equal(run("--wait sometimes"), 2);
  assert_int_equal(run("--date 20260230"), 2);
  assert_int_equal(run("--dir"), 2);
  assert_int_equal(run("--progress-ms 0"), 2);
  assert_int_equal(run("--compliance /nonexistent.ini --orders 10 --quiet"), 2);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "grep -q 'nonexistent.ini:0: .*--compliance FILE' %s/out.txt",
           dir);
  assert_int_equal(system(cmd), 0);
  /* a rule file that does not parse: refused, with its line */
  char bad[128], args[256];
  snprintf(bad, sizeof bad, "%s/bad.ini", dir);
  FILE *f = fopen(bad, "w");
  assert_non_null(f);
  fputs("[defaults]\nmax_qty = banana\n", f);
  fclose(f);
  snprintf(args, sizeof args, "--compliance %s --orders 10 --quiet", bad);
  assert_int_equal(run(args), 2);
  snprintf(cmd, sizeof cmd, "grep -q 'bad.ini:2: ' %s/out.txt", dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(run("--help"), 0);
  remove_dir();
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  close(s);
  return ntohs(a.sin_port);
}

/* Scrapes /metrics while the run goes on; promtool must find it clean and
 * no series may appear twice (promtool does not check that). */
static void test_metrics_scrape(void **state) {
  (void)state;
  make_dir();
  int port = free_port();
  char args[512];
  snprintf(args, sizeof args, "--orders 40000 --rate 8000 --accounts 400 "
           "--symbols 60 --metrics-port %d --linger-ms 2000 --quiet", port);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s %s > %s/out.txt 2>&1", FE_ORDER_FLOW, args, dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  char scrape[512];
  snprintf(scrape, sizeof scrape,
           "curl -sf -o %s/m.txt http://127.0.0.1:%d/metrics", dir, port);
  int got = 0;
  for (uint64_t end = fe_t_now_ns() + FE_T_LONG_NS; !got && fe_t_now_ns() < end;) {
    got = system(scrape) == 0;
    if (!got)
      usleep(50000);
  }
  assert_true(got);
  /* a second scrape a little later sees the counters move */
  usleep(300000);
  snprintf(scrape, sizeof scrape,
           "curl -sf -o %s/m2.txt http://127.0.0.1:%d/metrics", dir, port);
  assert_int_equal(system(scrape), 0);
  char check[2048];
  snprintf(check, sizeof check, "promtool check metrics < %s/m.txt && "
           "promtool check metrics < %s/m2.txt", dir, dir);
  assert_int_equal(system(check), 0);
  snprintf(check, sizeof check, "test -z \"$(grep -v '^#' %s/m2.txt | "
           "sed 's/ [^ ]*$//' | sort | uniq -d)\"", dir);
  assert_int_equal(system(check), 0);
  /* the library's exposition (fe_metrics_write_prometheus) with the
   * run's per-stage latencies and outcomes, then the example's series */
  snprintf(check, sizeof check,
           "grep -q '^finevent_bus_events_total{outcome=\"published\"} [1-9]' %s/m2.txt "
           "&& grep -q '^finevent_stage_latency_seconds_count{stage=\"compliance\"} [1-9]' %s/m2.txt "
           "&& grep -q '^finevent_stage_latency_seconds_bucket{stage=\"fe.outcome\",le=\"+Inf\"} [1-9]' %s/m2.txt "
           "&& grep -q '^finevent_stage_outcomes_total{stage=\"fe.outcome\",outcome=\"accepted\"} [1-9]' %s/m2.txt "
           "&& grep -q '^order_flow_breaker_state{venue=\"XNYS\"} ' %s/m2.txt "
           "&& grep -q '^order_flow_compliance_checks_total{verdict=\"accepted\"} [1-9]' %s/m2.txt "
           "&& grep -q '^order_flow_sagas_live ' %s/m2.txt", dir, dir, dir, dir, dir, dir, dir);
  assert_int_equal(system(check), 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  remove_dir();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_day_and_resume),
      cmocka_unit_test(test_kill_and_resume),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_metrics_scrape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
