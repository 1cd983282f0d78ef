/*
 * account_closure: closing a brokerage account as a saga.
 *
 *   disable login      compensatable (undo: enable login again)
 *   liquidate          the pivot: once positions are sold there is no way back
 *   settle cash        retriable; PENDING until the custodian confirms
 *   archive audit      retriable
 *   delete PII         retriable
 *
 * Three accounts, on a host-driven coordinator with a simulated clock:
 *   1001  the venue rejects the liquidation twice (transient), then fills;
 *         the custodian first answers "try again"; the closure completes.
 *   1002  liquidation is refused for good (a legal hold): the saga
 *         compensates - login is enabled again - and ends COMPENSATED.
 *   1003  the process "crashes" while the custodian has not answered.  The
 *         coordinator writes its records to a journal (fe_saga_use_journal,
 *         in a fresh directory under /tmp); a second coordinator replays it
 *         (fe_saga_journal_replay), the custodian's answer arrives with the
 *         token issued before the crash, and the closure completes without
 *         running any finished step again.
 *
 * Prints a trace; exits 0 when every account ended as described.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <finevent/finevent.h>
#include <finevent/journal.h>
#include <finevent/saga.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { R_VENUE_BUSY = 1, R_LEGAL_HOLD = 2, R_CUSTODIAN_BUSY = 3 };

/* The saga's context: what the steps need and what they leave behind. */
typedef struct closure {
  uint64_t account;
  int64_t cash;          /* FE_PRICE_SCALE fixed point, after liquidation */
  uint32_t login_disabled;
  uint32_t liquidated;
  uint32_t archived, deleted;
} closure_t;

/* The simulated world. */
static uint64_t now_ns = 1000000000, wall_ns = UINT64_C(1700000000000000000);
static int venue_rejects[2000];   /* per account: transient rejects left */
static int custodian_retries[2000];
static uint64_t custodian_token[2000]; /* what the custodian will answer */
static int calls[2000][5];        /* actions run, per account and step */

static uint64_t clock_mono(void *u) { (void)u; return now_ns; }
static uint64_t clock_wall(void *u) { (void)u; return wall_ns; }
static void advance(uint64_t ns) { now_ns += ns; wall_ns += ns; }

static void say(const closure_t *x, const char *fmt, const char *what,
                uint32_t attempt) {
  printf("  [t=%4" PRIu64 " ms] account %" PRIu64 ": %-16s attempt %u: %s\n",
         (now_ns - 1000000000) / 1000000, x->account, what, attempt, fmt);
}

static fe_saga_result_t disable_login(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  calls[x->account - 1000][0]++;
  x->login_disabled = 1;
  say(x, "login disabled", "disable login", c->attempt);
  return FE_SAGA_DONE;
}

static fe_saga_result_t enable_login(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  x->login_disabled = 0;
  say(x, "login enabled again (compensation)", "enable login", c->attempt);
  return FE_SAGA_DONE;
}

static fe_saga_result_t liquidate(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  uint64_t a = x->account - 1000;
  calls[a][1]++;
  if (x->account == 1002) {
    c->reason = R_LEGAL_HOLD;
    say(x, "refused: legal hold on the positions", "liquidate", c->attempt);
    return FE_SAGA_FAIL;
  }
  if (venue_rejects[a] > 0) {
    venue_rejects[a]--;
    c->reason = R_VENUE_BUSY;
    say(x, "venue busy, will retry", "liquidate", c->attempt);
    return FE_SAGA_RETRY;
  }
  x->liquidated = 1;
  x->cash = INT64_C(25431275) * FE_PRICE_SCALE / 100; /* 254,312.75 */
  say(x, "positions sold", "liquidate", c->attempt);
  return FE_SAGA_DONE;
}

static fe_saga_result_t settle_cash(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  uint64_t a = x->account - 1000;
  calls[a][2]++;
  /* Ask the custodian to wire the cash out; it answers later, with this
   * token (a real host would put it in the message). */
  custodian_token[a] = c->token;
  say(x, c->replayed ? "wire re-sent after the restart, waiting"
                     : "wire requested, waiting for the custodian",
      "settle cash", c->attempt);
  return FE_SAGA_PENDING;
}

static fe_saga_result_t archive_audit(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  calls[x->account - 1000][3]++;
  x->archived = 1;
  say(x, "audit records archived", "archive audit", c->attempt);
  return FE_SAGA_DONE;
}

static fe_saga_result_t delete_pii(fe_saga_call_t *c, void *u) {
  (void)u;
  closure_t *x = c->ctx;
  calls[x->account - 1000][4]++;
  x->deleted = 1;
  say(x, "personal data deleted", "delete PII", c->attempt);
  return FE_SAGA_DONE;
}

/* The journal's directory. */
static char jdir[64] = "/tmp/account_closure_XXXXXX";

static int ended[2000];
static void on_end(const fe_saga_end_t *e, void *user) {
  (void)user;
  const closure_t *x = e->ctx;
  ended[x->account - 1000] = (int)e->state;
  printf("  account %" PRIu64 ": saga %s (login %s, positions %s, data %s)\n",
         x->account, fe_saga_state_name(e->state),
         x->login_disabled ? "disabled" : "enabled",
         x->liquidated ? "sold" : "kept", x->deleted ? "deleted" : "kept");
}

static void define(fe_saga_def_t *d) {
  fe_saga_def_init(d);
  d->name = "account_closure";
  d->n_steps = 5;
  static const char *names[5] = {"disable_login", "liquidate", "settle_cash",
                                 "archive_audit", "delete_pii"};
  fe_saga_action_fn fns[5] = {disable_login, liquidate, settle_cash,
                              archive_audit, delete_pii};
  fe_saga_kind_t kinds[5] = {FE_SAGA_COMPENSATABLE, FE_SAGA_PIVOT,
                             FE_SAGA_RETRIABLE, FE_SAGA_RETRIABLE,
                             FE_SAGA_RETRIABLE};
  for (int i = 0; i < 5; i++) {
    d->steps[i].name = names[i];
    d->steps[i].action = fns[i];
    d->steps[i].kind = kinds[i];
    d->steps[i].retry.initial_ns = 100000000; /* 100 ms, doubling */
    d->steps[i].retry.jitter_milli = 0;
    d->steps[i].retry.max_attempts = 5;
  }
  d->steps[0].compensate = enable_login;
  d->steps[2].timeout_ns = UINT64_C(3600) * 1000000000; /* an hour */
}

/* A coordinator on the journal in jdir, with whatever it holds replayed:
 * the journal's open replays every record into the coordinator, then the
 * coordinator takes the journal over.  *records: how many it held. */
static fe_saga_coord_t *coordinator(fe_journal_t **j, uint64_t *records) {
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 16;
  cfg.ctx_size = sizeof(closure_t);
  cfg.now_ns = clock_mono;
  cfg.wall_ns = clock_wall;
  cfg.on_end = on_end;
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = jdir;
  jc.fsync = FE_FSYNC_NONE; /* a demo: the page cache survives a crash of
                               the process, not of the machine */
  jc.now_ns = clock_wall;
  fe_saga_coord_t *c;
  fe_saga_def_t d;
  fe_diag_t diag;
  fe_journal_report_t rep;
  define(&d);
  if (fe_saga_create(&cfg, &c, &diag) != 0 ||
      fe_saga_define(c, &d, NULL, &diag) != 0 ||
      fe_journal_open(&jc, fe_saga_journal_replay, c, j, &rep, &diag) != 0 ||
      fe_saga_use_journal(c, *j, &diag) != 0) {
    fprintf(stderr, "account_closure: %s\n", diag.msg);
    exit(1);
  }
  *records = rep.records;
  return c;
}

static void remove_journal(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", jdir);
  if (system(cmd) != 0)
    fprintf(stderr, "account_closure: could not remove %s\n", jdir);
}

/* Runs the coordinator until it has nothing to do now, then moves the
 * clock to its next timer, at most `budget` of simulated time. */
static void run_for(fe_saga_coord_t *c, uint64_t budget) {
  uint64_t end = now_ns + budget;
  for (;;) {
    while (fe_saga_poll(c, 64) > 0) {
    }
    uint64_t idle = fe_saga_idle_ns(c);
    if (idle == UINT64_MAX || now_ns + idle > end)
      return;
    advance(idle ? idle : 1);
  }
}

/* The custodian answers account a: retry first if so configured. */
static void custodian_answers(fe_saga_coord_t *c, uint64_t a) {
  int retry = custodian_retries[a] > 0;
  if (retry)
    custodian_retries[a]--;
  printf("  custodian: account %" PRIu64 " wire %s\n", a + 1000,
         retry ? "not possible yet (cut-off), try again" : "confirmed");
  int rc = fe_saga_complete(c, custodian_token[a],
                            retry ? FE_SAGA_RETRY : FE_SAGA_DONE,
                            retry ? R_CUSTODIAN_BUSY : 0);
  if (rc != 0) {
    fprintf(stderr, "account_closure: completion refused: %s\n",
            fe_strerror(rc));
    exit(1);
  }
}

static uint64_t start(fe_saga_coord_t *c, uint64_t account) {
  closure_t x;
  memset(&x, 0, sizeof x);
  x.account = account;
  uint64_t id;
  if (fe_saga_start(c, 0, &x, sizeof x, &id) != 0)
    exit(1);
  return id;
}

int main(void) {
  int ok = 1;
  venue_rejects[1] = 2;
  custodian_retries[1] = 1;

  if (mkdtemp(jdir) == NULL) {
    perror("account_closure: mkdtemp");
    return 1;
  }
  printf("== account 1001: transient failures, retries\n");
  fe_journal_t *j;
  uint64_t records;
  fe_saga_coord_t *c = coordinator(&j, &records);
  (void)fe_saga_poll(c, 1); /* opens it */
  (void)start(c, 1001);
  run_for(c, 1000000000);
  custodian_answers(c, 1); /* try again */
  run_for(c, 1000000000);
  custodian_answers(c, 1); /* confirmed */
  run_for(c, 1000000000);
  ok &= ended[1] == FE_SAGA_COMPLETED;

  printf("== account 1002: liquidation refused, compensation\n");
  (void)start(c, 1002);
  run_for(c, 1000000000);
  ok &= ended[2] == FE_SAGA_COMPENSATED;

  printf("== account 1003: crash while waiting for the custodian\n");
  uint64_t mark = fe_journal_written_lsn(j);
  uint64_t id3 = start(c, 1003);
  run_for(c, 1000000000);
  uint64_t token = custodian_token[3];
  printf("  ... crash: coordinator gone, %" PRIu64 " records of this closure "
         "in the journal\n", fe_journal_written_lsn(j) - mark);
  /* Every pass of the coordinator committed what it logged; closing here
   * only lets the next open take the journal's lock, as the death of the
   * process would. */
  fe_saga_destroy(c);
  fe_journal_close(j);
  advance(90000000000); /* 90 s until the service is back */

  c = coordinator(&j, &records);
  printf("  restarted: replayed %" PRIu64 " records (every closure's)\n",
         records);
  run_for(c, 1000000000);
  fe_saga_info_t info;
  if (fe_saga_get(c, id3, &info) != 0)
    return 1;
  printf("  saga %#" PRIx64 " is %s at step %u (attempt %u), its token "
         "still valid\n", id3, fe_saga_state_name(info.state), info.step,
         info.attempt);
  ok &= info.state == FE_SAGA_WAITING && info.step == 2;
  custodian_token[3] = token; /* the answer carries the old token */
  custodian_answers(c, 3);
  run_for(c, 1000000000);
  ok &= ended[3] == FE_SAGA_COMPLETED;
  fe_saga_destroy(c);
  fe_journal_close(j);
  remove_journal();

  /* Nothing that had finished ran twice. */
  ok &= calls[1][1] == 3 && calls[1][2] == 2 && calls[1][4] == 1;
  ok &= calls[2][1] == 1 && calls[2][2] == 0;
  ok &= calls[3][0] == 1 && calls[3][1] == 1 && calls[3][2] == 1 &&
        calls[3][4] == 1;
  printf("%s\n", ok ? "all closures ended as expected"
                    : "UNEXPECTED OUTCOME");
  return ok ? 0 : 1;
}
