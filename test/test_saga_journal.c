/*
 * The saga coordinator on an fe_journal: fe_saga_use_journal() and its
 * errors, the pin that keeps retire off what replay needs, the replay
 * adapter, and crash-and-resume: a forked child opens the journal,
 * replays it into a fresh coordinator, runs a saga whose actions append
 * one line per execution to a side file, and kills itself (SIGKILL: the
 * journal's user-space group buffer is lost, what was committed stays in
 * the page cache, which FE_FSYNC_NONE is enough for) at a chosen boundary.
 * The parent restarts it until the saga ends and reads the side file.
 * Durable steps (FE_SAGA_STEP_DURABLE): the same crash inside an action
 * with the flag on and off, a journal that cannot write (RLIMIT_FSIZE),
 * FE_FSYNC_INTERVAL's forced sync, the log hook's record flag and the
 * definition checks.
 *
 * The child is host-driven, one invocation per fe_saga_poll(), so every
 * poll commits exactly one step's STEP and RESULT records: the boundaries
 * are exact.  Both clocks are fakes; the parent moves the wall clock on
 * between runs (the "downtime") and every run starts its monotonic clock
 * somewhere else, as a new process would.
 */
#include "helpers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "finevent/journal.h"
#include "finevent/saga.h"

#define SEC FE_T_SEC
#define MS FE_T_MS
#define WALL0 (UINT64_C(1700000000) * SEC)
#define WAIT_TIMEOUT (10 * SEC) /* step C's token timeout */
#define BACKOFF (5 * SEC)       /* step E's first retry delay */
#define DOWNTIME (3 * SEC)      /* wall time between a crash and the restart */

static char dir[128], side[160];
/* The fake clocks.  The wall clock lives in a shared page so that the
 * time a child spent before it was killed counts (as real time would). */
static uint64_t mono;
static uint64_t *wallp;
#define wall (*wallp)

static uint64_t mono_fn(void *u) { (void)u; return mono; }
static uint64_t wall_fn(void *u) { (void)u; return wall; }
static void advance(uint64_t ns) { mono += ns; wall += ns; }

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/fe-sagaj-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(side, sizeof side, "%s.side", dir);
  unlink(side);
}

static void remove_dir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, side);
  assert_int_equal(system(cmd), 0);
}

/* One line to the side file, written through at once (a SIGKILL right
 * after must not lose it). */
static void side_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void side_line(const char *fmt, ...) {
  char buf[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  int fd = open(side, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0 || write(fd, buf, (size_t)n) != n)
    abort();
  close(fd);
}

/* The side file's lines, joined by spaces. */
static char *side_read(char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = fopen(side, "r");
  if (f == NULL)
    return out;
  char line[128];
  size_t used = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    used += (size_t)snprintf(out + used, cap - used, "%s%s",
                             used ? " " : "", line);
  }
  fclose(f);
  return out;
}

/* The last "<key> <u64>" line of the side file, 0 if none. */
static uint64_t side_value(const char *key) {
  FILE *f = fopen(side, "r");
  uint64_t v = 0;
  if (f == NULL)
    return 0;
  char line[128];
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
      v = strtoull(line + kl + 1, NULL, 0);
  fclose(f);
  return v;
}

/* ------------------------------------------------------------- the saga */

/* Five steps: A, B, C compensatable (C waits on its token), D the pivot,
 * E retriable (its first attempt asks for a retry: a backoff).  In the
 * "fail" variant D fails for good: C, B, A are compensated. */
enum kill_at {
  K_NONE,
  K_IN_ACTION,    /* after the action's side effect, nothing committed */
  K_STEP_WRITTEN, /* STEP committed, before the action's side effect */
  K_AFTER_RESULT, /* after the poll that logged the step's RESULT */
  K_WAITING,      /* after the poll that left C waiting on its token */
  K_BACKOFF       /* after the poll that left E in its backoff */
};

typedef struct child {
  enum kill_at kill;
  int kill_step, kill_comp;
  int fail_pivot;
  fe_saga_coord_t *c;
  fe_journal_t *j;
  int via_bus;            /* the bus's journal, replayed by the bus */
  uint32_t durable;       /* bit k: step k is FE_SAGA_STEP_DURABLE */
  int ran_step, ran_comp; /* the last invocation of this run */
  uint64_t expect_left;   /* a resumed wait should have this much left */
} child_t;

static child_t ch;

static char ctx_seen[16]; /* the context the last invocation saw */

static fe_saga_result_t step_fn(fe_saga_call_t *call, void *user) {
  (void)user;
  memcpy(ctx_seen, call->ctx, sizeof ctx_seen);
  int k = (int)call->step, comp = (int)call->compensating;
  int here = ch.kill_step == k && ch.kill_comp == comp;
  if (here && ch.kill == K_STEP_WRITTEN) {
    side_line("PRE %" PRIu64, call->token);
    fe_journal_commit(ch.j); /* as the bus's journaller may at any time */
    raise(SIGKILL);
  }
  side_line("%c%s%s", 'A' + k, comp ? "-" : "", call->replayed ? "r" : "");
  if (call->replayed) { /* what an in-doubt re-run asks the venue about */
    side_line("RTOK %" PRIu64, call->token);
    side_line("RATT %u", call->attempt);
  }
  if (here && ch.kill == K_IN_ACTION) {
    side_line("PRE %" PRIu64, call->token);
    raise(SIGKILL);
  }
  ch.ran_step = k;
  ch.ran_comp = comp;
  if (comp)
    return FE_SAGA_DONE;
  if (k == 2) {
    side_line("TOKEN %" PRIu64, call->token);
    return FE_SAGA_PENDING;
  }
  if (k == 3 && ch.fail_pivot) {
    call->reason = 9;
    return FE_SAGA_FAIL;
  }
  if (k == 4 && call->attempt == 1) {
    call->reason = 5;
    return FE_SAGA_RETRY;
  }
  return FE_SAGA_DONE;
}

static void on_end(const fe_saga_end_t *e, void *user) {
  (void)user;
  side_line("END %s", fe_saga_state_name(e->state));
}

static void define(fe_saga_coord_t *c, uint32_t durable) {
  fe_saga_def_t d;
  fe_saga_def_init(&d);
  d.name = "crash";
  d.n_steps = 5;
  static const char *names[5] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++) {
    d.steps[i].name = names[i];
    d.steps[i].action = step_fn;
    d.steps[i].kind = i < 3 ? FE_SAGA_COMPENSATABLE
                            : i == 3 ? FE_SAGA_PIVOT : FE_SAGA_RETRIABLE;
    d.steps[i].compensate = i < 3 ? step_fn : NULL;
    d.steps[i].retry.initial_ns = BACKOFF;
    d.steps[i].retry.max_interval_ns = BACKOFF;
    d.steps[i].retry.jitter_milli = 0;
    d.steps[i].flags = (durable >> i & 1u) ? FE_SAGA_STEP_DURABLE : 0;
  }
  d.steps[2].timeout_ns = WAIT_TIMEOUT;
  assert_fe(fe_saga_define(c, &d, NULL, NULL), 0);
}

static void coord_config(fe_saga_config_t *cfg) {
  fe_saga_config_init(cfg);
  cfg->max_sagas = 8;
  cfg->ctx_size = 16;
  cfg->salt = 0x5eed;
  cfg->now_ns = mono_fn;
  cfg->wall_ns = wall_fn;
  cfg->on_end = on_end;
}

static void journal_config(fe_journal_config_t *jc) {
  fe_journal_config_init(jc);
  jc->dir = dir;
  jc->fsync = FE_FSYNC_NONE;
  jc->segment_bytes = 4096;
  jc->retention_ns = 0;
  jc->now_ns = wall_fn;
}

static fe_verdict_t pass_stage(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  return FE_CONTINUE;
}

/* A host-driven bus on the journal jc, replaying into coordinator c. */
static int open_bus(const fe_journal_config_t *jc, fe_saga_coord_t *c,
                    fe_bus_t **bus) {
  static fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "pass";
  st.handler = pass_stage;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.max_batch = 16;
  cfg.host_driven = 1;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.journal = jc;
  cfg.on_replay = fe_saga_journal_replay;
  cfg.replay_user = c;
  fe_diag_t d;
  int rc = fe_bus_create(&cfg, bus, &d);
  if (rc != 0)
    fprintf(stderr, "bus: %s\n", d.msg);
  if (rc == 0)
    rc = fe_bus_start(*bus, NULL);
  return rc;
}

static int count_live(const fe_saga_info_t *i, void *u) {
  (void)i;
  ++*(int *)u;
  return 0;
}

static int copy_info(const fe_saga_info_t *i, void *u) {
  *(fe_saga_info_t *)u = *i;
  return 1;
}

/* The child: replay, resume, run until the saga ends or the kill point.
 * Exit codes: 0 the saga ended, 10+ a check failed. */
static void child_run(void) {
  fe_saga_config_t cfg;
  coord_config(&cfg);
  if (fe_saga_create(&cfg, &ch.c, NULL) != 0)
    _exit(10);
  define(ch.c, ch.durable);
  fe_journal_config_t jc;
  journal_config(&jc);
  if (ch.via_bus) {
    fe_bus_t *bus;
    if (open_bus(&jc, ch.c, &bus) != 0)
      _exit(11);
    fe_bus_recovery_t rec;
    fe_bus_recovery(bus, &rec);
    side_line("BUSRECORDS %" PRIu64, rec.records);
    ch.j = fe_bus_journal(bus);
  } else if (fe_journal_open(&jc, fe_saga_journal_replay, ch.c, &ch.j, NULL,
                             NULL) != 0) {
    _exit(11);
  }
  if (fe_saga_use_journal(ch.c, ch.j, NULL) != 0)
    _exit(12);
  int live = 0;
  fe_saga_foreach(ch.c, 0, count_live, &live);
  if (fe_saga_poll(ch.c, 1) < 0) /* opens */
    _exit(13);
  fe_saga_info_t in;
  memset(&in, 0, sizeof in);
  fe_saga_foreach(ch.c, 0, copy_info, &in);
  char buf[512];
  if (live == 0 && strstr(side_read(buf, sizeof buf), "END") == NULL) {
    uint64_t id;
    if (fe_saga_start(ch.c, 0, "ctx", 3, &id) != 0)
      _exit(14);
  } else if (ch.expect_left != 0 &&
             (in.state == FE_SAGA_WAITING || in.state == FE_SAGA_BACKOFF)) {
    /* Resumed: what is left of the wait, by the wall clock.  Just before
     * it is over nothing has fired, and the timer is due within a few ms
     * (idle_ns is a lower bound: the wheel's slot). */
    uint32_t st = in.state;
    advance(ch.expect_left - 5 * MS);
    fe_saga_poll(ch.c, 1);
    fe_saga_foreach(ch.c, 0, copy_info, &in);
    if (in.state != st)
      _exit(18);
    side_line("LEFT %" PRIu64, fe_saga_idle_ns(ch.c));
  }
  for (int guard = 0; guard < 1000; guard++) {
    ch.ran_step = -1;
    int n = fe_saga_poll(ch.c, 1);
    if (n < 0)
      _exit(15);
    if (strstr(side_read(buf, sizeof buf), "END") != NULL)
      _exit(0);
    memset(&in, 0, sizeof in);
    fe_saga_foreach(ch.c, 0, copy_info, &in);
    if (ch.kill == K_AFTER_RESULT && ch.ran_step == ch.kill_step &&
        ch.ran_comp == ch.kill_comp)
      raise(SIGKILL);
    if (in.state == FE_SAGA_WAITING) {
      if (ch.kill == K_WAITING)
        raise(SIGKILL);
      /* The venue answers with the token it was given, whichever run
       * gave it. */
      advance(1 * SEC);
      if (fe_saga_complete(ch.c, side_value("TOKEN"), FE_SAGA_DONE, 0) != 0)
        _exit(16);
      continue;
    }
    if (in.state == FE_SAGA_BACKOFF && ch.kill == K_BACKOFF)
      raise(SIGKILL);
    if (n == 0) {
      uint64_t idle = fe_saga_idle_ns(ch.c);
      advance(idle == UINT64_MAX ? SEC : idle + MS);
    }
  }
  _exit(17);
}

/* Runs the child with `kill` at (step, comp) first, then without, until
 * the saga ends.  Returns the side file. */
static uint64_t expect_left;
static int via_bus;
static uint32_t durable_mask;

static char *run(enum kill_at kill, int step, int comp, int fail_pivot,
                 char *out, size_t cap) {
  int killed = 0;
  for (int r = 0; r < 4; r++) {
    fflush(NULL);
    memset(&ch, 0, sizeof ch);
    ch.kill = r == 0 ? kill : K_NONE;
    ch.kill_step = step;
    ch.kill_comp = comp;
    ch.fail_pivot = fail_pivot;
    ch.expect_left = r == 0 ? 0 : expect_left;
    ch.via_bus = via_bus;
    ch.durable = durable_mask;
    mono = (uint64_t)(r + 1) * 1000 * SEC; /* a new boot each time */
    pid_t pid = fork();
    if (pid == 0)
      child_run();
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
      assert_int_equal(WTERMSIG(status), SIGKILL);
      killed++;
      wall += DOWNTIME; /* the child's own advances are lost with it */
      continue;
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(killed, kill != K_NONE);
    return side_read(out, cap);
  }
  fail_msg("the saga never ended");
  return NULL;
}

static int setup(void **state) {
  fe_t_watchdog(state);
  make_dir();
  wall = WALL0;
  durable_mask = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  remove_dir();
  return 0;
}

/* Drops the value lines (TOKEN, LEFT, PRE, RTOK, RATT, BUSRECORDS),
 * keeps the steps. */
static char *steps_only(const char *s, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s", s);
  for (char *save = NULL, *w = strtok_r(tmp, " ", &save); w != NULL;
       w = strtok_r(NULL, " ", &save)) {
    if (strcmp(w, "TOKEN") == 0 || strcmp(w, "LEFT") == 0 ||
        strcmp(w, "PRE") == 0 || strcmp(w, "RTOK") == 0 ||
        strcmp(w, "RATT") == 0 || strcmp(w, "BUSRECORDS") == 0) {
      strtok_r(NULL, " ", &save); /* its value */
      continue;
    }
    used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "",
                             w);
  }
  return out;
}

#define FORWARD "A B C D E E END COMPLETED"

/* Runs a scenario in a fresh journal and side file. */
static void expect(enum kill_at kill, int step, int comp, int fail,
                   const char *want) {
  char buf[512], s[512];
  remove_dir();
  make_dir();
  run(kill, step, comp, fail, buf, sizeof buf);
  assert_string_equal(steps_only(buf, s, sizeof s), want);
}

/* ------------------------------------------------------------- tests */

static void test_no_crash(void **state) {
  (void)state;
  expect(K_NONE, 0, 0, 0, FORWARD);
}

static void test_no_crash_compensates(void **state) {
  (void)state;
  expect(K_NONE, 0, 0, 1, "A B C D C- B- A- END COMPENSATED");
}

/* Every step whose RESULT was written never runs again. */
static void test_crash_after_each_result(void **state) {
  (void)state;
  expect(K_AFTER_RESULT, 0, 0, 0, FORWARD);
  expect(K_AFTER_RESULT, 1, 0, 0, FORWARD);
  expect(K_AFTER_RESULT, 3, 0, 0, FORWARD);
  expect(K_AFTER_RESULT, 4, 0, 0, FORWARD); /* E's retry: a BACKOFF */
}

/* A crash inside an action before anything of its pass was written: the
 * step runs again as a fresh invocation; the steps before it do not. */
static void test_crash_in_action_unwritten(void **state) {
  (void)state;
  expect(K_IN_ACTION, 0, 0, 0, "A A B C D E E END COMPLETED");
  expect(K_IN_ACTION, 1, 0, 0, "A B B C D E E END COMPLETED");
  expect(K_IN_ACTION, 3, 0, 0, "A B C D D E E END COMPLETED");
  /* C's token was handed out, its records lost: the re-run gets another
   * one (generations a lost tail may have used are skipped), so a late
   * answer to the lost invocation cannot complete a later one */
  expect(K_IN_ACTION, 2, 0, 0, "A B C C D E E END COMPLETED");
  assert_int_not_equal(side_value("PRE"), 0);
  assert_int_not_equal(side_value("PRE"), side_value("TOKEN"));
}

/* A crash after the STEP record was written: the step is in doubt and
 * runs again with replayed set, with the token it had. */
static void test_crash_step_written_replays(void **state) {
  (void)state;
  char buf[512], s[512];
  run(K_STEP_WRITTEN, 1, 0, 0, buf, sizeof buf);
  assert_string_equal(steps_only(buf, s, sizeof s),
                      "A Br C D E E END COMPLETED");
  remove_dir();
  make_dir();
  /* C in doubt: it is re-run with its old token, which the venue (the
   * child) then completes */
  run(K_STEP_WRITTEN, 2, 0, 0, buf, sizeof buf);
  assert_string_equal(steps_only(buf, s, sizeof s),
                      "A B Cr D E E END COMPLETED");
  assert_int_not_equal(side_value("PRE"), 0);
  assert_int_equal(side_value("PRE"), side_value("TOKEN"));
}

/* WAITING resumes with the same token (the child completes the token of
 * the first run: fe_saga_complete must accept it) and what is left of the
 * timeout by the wall clock: 10 s - 3 s of downtime (not fired 5 ms
 * before, due within 6 ms then). */
static void test_crash_while_waiting(void **state) {
  (void)state;
  char buf[512], s[512];
  expect_left = WAIT_TIMEOUT - DOWNTIME;
  run(K_WAITING, 2, 0, 0, buf, sizeof buf);
  expect_left = 0;
  assert_string_equal(steps_only(buf, s, sizeof s), FORWARD);
  assert_non_null(strstr(buf, "LEFT"));
  assert_true(side_value("LEFT") <= 6 * MS);
  /* one token only: C ran once */
  assert_non_null(strstr(buf, "C TOKEN"));
}

/* BACKOFF resumes with what is left of the delay: 5 s - 3 s; E's second
 * attempt runs once, after it. */
static void test_crash_during_backoff(void **state) {
  (void)state;
  char buf[512], s[512];
  expect_left = BACKOFF - DOWNTIME;
  run(K_BACKOFF, 4, 0, 0, buf, sizeof buf);
  expect_left = 0;
  assert_string_equal(steps_only(buf, s, sizeof s), FORWARD);
  assert_non_null(strstr(buf, "LEFT"));
  assert_true(side_value("LEFT") <= 6 * MS);
}

/* A crash in the middle of compensation: it continues in reverse order;
 * a compensation whose RESULT was written does not run again. */
static void test_crash_in_compensation(void **state) {
  (void)state;
  expect(K_IN_ACTION, 1, 1, 1, "A B C D C- B- B- A- END COMPENSATED");
  expect(K_AFTER_RESULT, 2, 1, 1, "A B C D C- B- A- END COMPENSATED");
  expect(K_STEP_WRITTEN, 0, 1, 1, "A B C D C- B- A-r END COMPENSATED");
}

/* The same through the bus: coordinator and bus share the bus's journal,
 * the bus's recovery hands the saga records to fe_saga_journal_replay. */
static void test_crash_through_the_bus(void **state) {
  (void)state;
  char buf[512], s[512];
  via_bus = 1;
  run(K_WAITING, 2, 0, 0, buf, sizeof buf);
  via_bus = 0;
  /* the restarted bus replayed the first run's saga records */
  assert_true(side_value("BUSRECORDS") >= 6);
  char *p = strstr(buf, "BUSRECORDS 0 "); /* the first run's line */
  assert_non_null(p);
  p = steps_only(buf, s, sizeof s);
  assert_non_null(strstr(p, "A B C"));
  assert_non_null(strstr(p, "D E E END COMPLETED"));
  assert_null(strstr(p, "C C")); /* C ran once: WAITING resumed */
}

/* ------------------------------------------------- without crashes */

static fe_saga_coord_t *new_coord(void) {
  fe_saga_config_t cfg;
  coord_config(&cfg);
  cfg.on_end = NULL;
  fe_saga_coord_t *c;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  define(c, 0);
  return c;
}

/* A new coordinator replaying the journal of jc, and using it. */
static fe_saga_coord_t *coord_on_journal(const fe_journal_config_t *jc,
                                         fe_journal_t **j) {
  fe_saga_coord_t *c = new_coord();
  assert_fe(fe_journal_open(jc, fe_saga_journal_replay, c, j, NULL, NULL), 0);
  assert_fe(fe_saga_use_journal(c, *j, NULL), 0);
  return c;
}

static void test_use_journal_errors(void **state) {
  (void)state;
  fe_journal_config_t jc;
  journal_config(&jc);
  fe_journal_t *j;
  assert_fe(fe_journal_open(&jc, NULL, NULL, &j, NULL, NULL), 0);
  fe_saga_coord_t *c = new_coord();
  fe_diag_t d;
  assert_fe(fe_saga_use_journal(NULL, j, &d), FE_EINVAL);
  assert_fe(fe_saga_use_journal(c, NULL, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "journal"));
  /* a log hook and a journal: one or the other */
  fe_saga_config_t cfg;
  coord_config(&cfg);
  cfg.log = (fe_saga_log_fn)(void (*)(void))abort;
  fe_saga_coord_t *lc;
  assert_fe(fe_saga_create(&cfg, &lc, NULL), 0);
  assert_fe(fe_saga_use_journal(lc, j, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "cfg.log"));
  fe_saga_destroy(lc);
  /* twice */
  assert_fe(fe_saga_use_journal(c, j, &d), 0);
  assert_fe(fe_saga_use_journal(c, j, &d), FE_ESTATE);
  /* after open */
  fe_saga_coord_t *c2 = new_coord();
  assert_fe(fe_saga_poll(c2, 1), 0);
  assert_fe(fe_saga_use_journal(c2, j, &d), FE_ESTATE);
  fe_saga_destroy(c2);
  /* out of pins: c holds one */
  uint32_t pins[FE_JOURNAL_MAX_PINS - 1];
  for (int i = 0; i < FE_JOURNAL_MAX_PINS - 1; i++)
    assert_fe(fe_journal_pin(j, 1, &pins[i]), 0);
  c2 = new_coord();
  assert_fe(fe_saga_use_journal(c2, j, &d), FE_EFULL);
  fe_saga_destroy(c2);
  /* destroying c gives its pin back */
  fe_saga_destroy(c);
  c2 = new_coord();
  assert_fe(fe_saga_use_journal(c2, j, &d), 0);
  fe_saga_destroy(c2);
  assert_fe(fe_journal_close(j), 0);
  /* a read-only journal */
  jc.read_only = 1;
  assert_fe(fe_journal_open(&jc, NULL, NULL, &j, NULL, NULL), 0);
  c2 = new_coord();
  assert_fe(fe_saga_use_journal(c2, j, &d), FE_ESTATE);
  fe_saga_destroy(c2);
  assert_fe(fe_journal_close(j), 0);
}

/* The adapter takes FE_JREC_SAGA records only, and reports bad ones. */
static void test_replay_adapter(void **state) {
  (void)state;
  fe_saga_coord_t *c = new_coord();
  uint64_t junk[16] = {0};
  fe_journal_record_t r = {.lsn = 1, .data = junk, .len = sizeof junk,
                           .type = FE_JREC_EVENT};
  assert_fe(fe_saga_journal_replay(&r, c), 0); /* not ours: ignored */
  r.type = FE_JREC_HOST;
  assert_fe(fe_saga_journal_replay(&r, c), 0);
  r.type = FE_JREC_SAGA;
  assert_fe(fe_saga_journal_replay(&r, c), FE_ECORRUPT);
  assert_fe(fe_saga_journal_replay(NULL, c), FE_EINVAL);
  assert_fe(fe_saga_journal_replay(&r, NULL), FE_EINVAL);
  fe_saga_destroy(c);
}

static int count_segments(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    n += strstr(e->d_name, ".fej") != NULL;
  if (d != NULL)
    closedir(d);
  return n;
}

/* Retire keeps the records a live saga needs (here: its START, the only
 * record with its context) however many newer segments follow, and lets
 * them go once the saga ended and the pin moved (at most a second later).
 * Each run restarts from the journal: replay works from what is left. */
static void test_pin_keeps_what_replay_needs(void **state) {
  (void)state;
  fe_journal_config_t jc;
  journal_config(&jc);
  fe_journal_t *j;
  fe_saga_coord_t *c = coord_on_journal(&jc, &j);
  assert_fe(fe_saga_poll(c, 1), 0);
  uint64_t id;
  assert_fe(fe_saga_start(c, 0, "keep", 4, &id), 0);
  while (fe_saga_poll(c, 1) > 0) { /* A, B, then C waits */
  }
  /* fill a few segments with other records */
  uint8_t pad[1000] = {0};
  for (int i = 0; i < 20; i++)
    assert_fe(fe_journal_append(j, FE_JREC_HOST, pad, sizeof pad, NULL), 0);
  assert_fe(fe_journal_commit(j), 0);
  int before = count_segments();
  assert_true(before >= 5);
  advance(2 * SEC);
  assert_fe(fe_saga_poll(c, 1), 0); /* recomputes the pin */
  uint32_t removed = 9;
  assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), 0);
  assert_int_equal(removed, 0); /* segment 1 holds the START */
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(j), 0);

  /* a restart finds the saga and its context */
  c = coord_on_journal(&jc, &j);
  fe_saga_info_t in;
  assert_fe(fe_saga_get(c, id, &in), 0);
  assert_int_equal(in.state, FE_SAGA_WAITING);
  assert_fe(fe_saga_poll(c, 1), 0);
  assert_int_equal(count_segments(), before);

  /* once it ended (and a second passed) the pin lets everything before
   * the newest saga record go */
  assert_fe(fe_saga_abort(c, id, 3), 0);
  while (fe_saga_poll(c, 1) > 0) {
  }
  assert_fe(fe_saga_get(c, id, &in), FE_ENOTFOUND);
  assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), 0);
  assert_int_equal(removed, 0); /* not recomputed yet */
  advance(2 * SEC);
  assert_fe(fe_saga_poll(c, 1), 0);
  assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), 0);
  assert_int_equal(removed, before - 1);
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(j), 0);
}

/* A saga started from a bus stage must not be lost when the bus journals
 * that event's outcome and the process dies before the coordinator took
 * the saga up: fe_saga_start() appends the START itself, so anything its
 * caller appends afterwards (here a host record standing for the
 * outcome) comes later in the journal, and no crash keeps one without
 * the other.  The coordinator never runs between the start and the
 * "crash"; the restart finds the saga, with its context, and runs it. */
static void test_start_journaled_before_return(void **state) {
  (void)state;
  ch.kill = K_NONE;
  fe_journal_config_t jc;
  journal_config(&jc);
  fe_journal_t *j;
  fe_saga_coord_t *c = coord_on_journal(&jc, &j);
  assert_fe(fe_saga_poll(c, 1), 0); /* opens it */
  uint64_t w0 = fe_journal_written_lsn(j);
  uint64_t id;
  assert_fe(fe_saga_start(c, 0, "start-ctx", 9, &id), 0);
  uint64_t outcome;
  assert_fe(fe_journal_append(j, FE_JREC_HOST, "outcome", 7, &outcome), 0);
  assert_true(outcome > w0 + 1); /* the START took the lsn before it */
  assert_fe(fe_journal_commit(j), 0);
  fe_saga_info_t in;
  assert_fe(fe_saga_get(c, id, &in), 0);
  assert_int_equal(in.started_ns, 0); /* never taken up */
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(j), 0);

  c = coord_on_journal(&jc, &j);
  assert_fe(fe_saga_get(c, id, &in), 0);
  assert_int_equal(in.state, FE_SAGA_RUNNING);
  assert_int_equal(in.step, 0);
  assert_fe(fe_saga_poll(c, 1), 1); /* step A runs, with the context */
  assert_int_equal(ctx_seen[0], 's');
  assert_memory_equal(ctx_seen, "start-ctx", 9);
  fe_saga_stats_t st;
  assert_fe(fe_saga_stats(c, &st), 0);
  assert_int_equal(st.journal_errors, 0);
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(j), 0);
}

/* Starts on two threads while the coordinator's thread runs the sagas and
 * the main thread retires the journal as fast as it can, under nothing
 * but the coordinator's pin (segments of 4 KiB: it rotates all along),
 * and moves the coordinator's clock on so that every pass recomputes the
 * pin.  Then everything stops at once: every saga a start returned either
 * ended (on_end) or comes back from what retire left.  The last of each
 * thread's sagas wait for ever, so some come back; the rest end, so the
 * pin moves and retire has segments to take. */
enum { RACE_THREADS = 2, RACE_STARTS = 400, RACE_WAITING = 40 };
static uint8_t race_ended[RACE_THREADS][RACE_STARTS]; /* coordinator only */
static uint64_t race_id[RACE_THREADS][RACE_STARTS];
static atomic_int race_errors, race_done;
static fe_saga_coord_t *race_c;
static uint32_t race_def;

/* The last RACE_WAITING of each thread wait (for a token nobody sends):
 * they are still live at the stop, and only their records bring them
 * back. */
static fe_saga_result_t race_step(fe_saga_call_t *call, void *user) {
  (void)user;
  uint32_t who[2];
  memcpy(who, call->ctx, sizeof who);
  return who[1] >= RACE_STARTS - RACE_WAITING ? FE_SAGA_PENDING : FE_SAGA_DONE;
}

static _Atomic uint64_t race_mono;
static uint64_t race_now(void *u) {
  (void)u;
  return atomic_load_explicit(&race_mono, memory_order_relaxed);
}

static void race_on_end(const fe_saga_end_t *e, void *user) {
  (void)user;
  uint32_t who[2];
  memcpy(who, e->ctx, sizeof who);
  if (who[0] < RACE_THREADS && who[1] < RACE_STARTS)
    race_ended[who[0]][who[1]] = 1;
}

static void *race_starter(void *arg) {
  uint32_t t = (uint32_t)(uintptr_t)arg;
  for (uint32_t k = 0; k < RACE_STARTS; k++) {
    uint32_t who[2] = {t, k};
    int rc;
    while ((rc = fe_saga_start(race_c, race_def, who, sizeof who,
                               &race_id[t][k])) == FE_EFULL)
      sched_yield();
    if (rc != 0)
      atomic_fetch_add(&race_errors, 1);
  }
  atomic_fetch_add(&race_done, 1);
  return NULL;
}

static fe_saga_coord_t *race_coord(void) {
  fe_saga_config_t cfg;
  coord_config(&cfg);
  cfg.now_ns = race_now; /* moved on by the test: the pin's second */
  cfg.wall_ns = NULL;
  cfg.on_end = race_on_end;
  cfg.max_sagas = RACE_THREADS * RACE_STARTS;
  fe_saga_coord_t *c;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  fe_saga_def_t d;
  fe_saga_def_init(&d);
  d.name = "race";
  d.n_steps = 1;
  d.steps[0].name = "only";
  d.steps[0].action = race_step;
  d.steps[0].kind = FE_SAGA_RETRIABLE;
  d.steps[0].timeout_ns = 3600 * SEC;
  assert_fe(fe_saga_define(c, &d, &race_def, NULL), 0);
  return c;
}

static void test_starts_race_retire(void **state) {
  (void)state;
  memset(race_ended, 0, sizeof race_ended);
  atomic_store(&race_errors, 0);
  atomic_store(&race_done, 0);
  fe_journal_config_t jc;
  journal_config(&jc);
  jc.now_ns = NULL;
  fe_journal_t *j;
  race_c = race_coord();
  assert_fe(fe_journal_open(&jc, NULL, NULL, &j, NULL, NULL), 0);
  assert_fe(fe_saga_use_journal(race_c, j, NULL), 0);
  assert_fe(fe_saga_thread_start(race_c), 0);
  pthread_t th[RACE_THREADS];
  for (uintptr_t t = 0; t < RACE_THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, race_starter, (void *)t),
                     0);
  uint64_t removed_total = 0;
  while (atomic_load(&race_done) < RACE_THREADS) {
    atomic_fetch_add(&race_mono, 2 * SEC);
    fe_saga_wake(race_c);
    uint32_t removed = 0;
    assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), 0);
    removed_total += removed;
    sched_yield();
  }
  for (int t = 0; t < RACE_THREADS; t++)
    pthread_join(th[t], NULL);
  assert_int_equal(atomic_load(&race_errors), 0);
  fe_saga_destroy(race_c); /* stops its thread, sagas in flight stay */
  assert_fe(fe_journal_close(j), 0);

  race_c = race_coord();
  assert_fe(fe_journal_open(&jc, fe_saga_journal_replay, race_c, &j, NULL,
                            NULL),
            0);
  assert_fe(fe_saga_use_journal(race_c, j, NULL), 0);
  uint32_t live = 0, lost = 0, waiting_ended = 0;
  for (int t = 0; t < RACE_THREADS; t++)
    for (int k = 0; k < RACE_STARTS; k++) {
      fe_saga_info_t in;
      if (race_ended[t][k]) {
        waiting_ended += k >= RACE_STARTS - RACE_WAITING;
        continue;
      }
      if (fe_saga_get(race_c, race_id[t][k], &in) == 0)
        live++;
      else
        lost++;
    }
  print_message("starts %d, left live %u, lost %u, segments retired "
                "%" PRIu64 "\n",
                RACE_THREADS * RACE_STARTS, live, lost, removed_total);
  assert_int_equal(lost, 0);
  assert_int_equal(waiting_ended, 0);
  assert_true(live >= RACE_THREADS * RACE_WAITING);
  fe_saga_destroy(race_c);
  assert_fe(fe_journal_close(j), 0);
}

/* ---------------------------------------------------- durable steps */

/* The crash FE_SAGA_STEP_DURABLE is for: inside the action, right after
 * its external effect (the side file's line), before the pass committed
 * anything.  With the flag the step comes back IN DOUBT (replayed, the
 * token and attempt it had); without it - the same crash, the same
 * journal - it comes back as a fresh invocation with another token. */
static void test_durable_crash_in_action(void **state) {
  (void)state;
  /* the flag off: a fresh re-run, nothing replayed */
  expect(K_IN_ACTION, 1, 0, 0, "A B B C D E E END COMPLETED");
  assert_int_equal(side_value("RTOK"), 0);
  /* the flag on */
  durable_mask = 1u << 1;
  expect(K_IN_ACTION, 1, 0, 0, "A B Br C D E E END COMPLETED");
  assert_int_not_equal(side_value("PRE"), 0);
  assert_int_equal(side_value("RTOK"), side_value("PRE"));
  assert_int_equal(side_value("RATT"), 1);
  /* C waits on its token: the re-run has the token the first run handed
   * out, and the venue's answer to that token completes C */
  durable_mask = 1u << 2;
  expect(K_IN_ACTION, 2, 0, 0, "A B C Cr D E E END COMPLETED");
  assert_int_equal(side_value("RTOK"), side_value("PRE"));
  assert_int_equal(side_value("TOKEN"), side_value("PRE"));
  /* a durable step's compensation likewise (unflagged: "B- B-") */
  durable_mask = 1u << 1;
  expect(K_IN_ACTION, 1, 1, 1, "A B C D C- B- B-r A- END COMPENSATED");
  assert_int_equal(side_value("RTOK"), side_value("PRE"));
  /* and through the bus's journal */
  via_bus = 1;
  durable_mask = 1u << 3;
  expect(K_IN_ACTION, 3, 0, 0, "A B C D Dr E E END COMPLETED");
  via_bus = 0;
  assert_int_equal(side_value("RTOK"), side_value("PRE"));
}

static int calls[2][2]; /* [step][compensating] */
static fe_journal_t *jcur;
static uint64_t seen_written[3], seen_durable[3];

static fe_saga_result_t count_fn(fe_saga_call_t *call, void *user) {
  (void)user;
  if (call->step < 2)
    calls[call->step][call->compensating]++;
  if (call->step < 3 && jcur != NULL) {
    seen_written[call->step] = fe_journal_written_lsn(jcur);
    seen_durable[call->step] = fe_journal_durable_lsn(jcur);
  }
  return FE_SAGA_DONE;
}

/* n steps "a", "b", ... of kind `kind`, durable where `durable` says,
 * two attempts each, BACKOFF apart. */
static void define_n(fe_saga_coord_t *c, uint32_t n, fe_saga_kind_t kind,
                     uint32_t durable) {
  static const char *names[3] = {"a", "b", "c"};
  fe_saga_def_t d;
  fe_saga_def_init(&d);
  d.name = "durable";
  d.n_steps = n;
  for (uint32_t i = 0; i < n; i++) {
    d.steps[i].name = names[i];
    d.steps[i].action = count_fn;
    d.steps[i].compensate = kind == FE_SAGA_COMPENSATABLE ? count_fn : NULL;
    d.steps[i].kind = kind;
    d.steps[i].flags = (durable >> i & 1u) ? FE_SAGA_STEP_DURABLE : 0;
    d.steps[i].retry.max_attempts = 2;
    d.steps[i].retry.initial_ns = BACKOFF;
    d.steps[i].retry.max_interval_ns = BACKOFF;
    d.steps[i].retry.jitter_milli = 0;
  }
  assert_fe(fe_saga_define(c, &d, NULL, NULL), 0);
}

static fe_saga_coord_t *coord_plain(void) {
  fe_saga_config_t cfg;
  coord_config(&cfg);
  cfg.on_end = NULL;
  fe_saga_coord_t *c;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  return c;
}

/* Step a runs; then the journal cannot grow (RLIMIT_FSIZE at the
 * segment's size: the next write fails with EFBIG, root or not, and the
 * journal fails for good) and the durable step b comes up: its action
 * never runs.  Each attempt is a retryable failure, reason
 * FE_SAGA_REASON_JOURNAL, counted in journal_errors; exhausted before
 * the point of no return, the saga compensates a - whose compensation
 * runs if a is not durable, and parks the saga STUCK if it is (its
 * commit fails too: a compensation is never skipped). */
static void journal_fails(int a_durable) {
  memset(calls, 0, sizeof calls);
  fe_journal_config_t jc;
  journal_config(&jc);
  jc.segment_bytes = 1u << 20; /* one segment: no rotation */
  fe_journal_t *j;
  assert_fe(fe_journal_open(&jc, NULL, NULL, &j, NULL, NULL), 0);
  fe_saga_coord_t *c = coord_plain();
  define_n(c, 2, FE_SAGA_COMPENSATABLE, (a_durable ? 1u : 0u) | 2u);
  assert_fe(fe_saga_use_journal(c, j, NULL), 0);
  assert_fe(fe_saga_poll(c, 1), 0);
  uint64_t id;
  assert_fe(fe_saga_start(c, 0, NULL, 0, &id), 0);
  assert_true(fe_saga_poll(c, 1) > 0); /* a, and the pass's commit */
  assert_int_equal(calls[0][0], 1);

  char seg[200];
  snprintf(seg, sizeof seg, "%s/0000000000000001.fej", dir);
  struct stat st;
  assert_int_equal(stat(seg, &st), 0);
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = (rlim_t)st.st_size;
  void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

  fe_saga_stats_t s0, s1;
  assert_fe(fe_saga_stats(c, &s0), 0);
  assert_true(fe_saga_poll(c, 1) > 0); /* b's first attempt */
  assert_int_equal(calls[1][0], 0);    /* not run */
  fe_saga_info_t in;
  assert_fe(fe_saga_get(c, id, &in), 0);
  assert_int_equal(in.state, FE_SAGA_BACKOFF);
  assert_int_equal(in.step, 1);
  assert_int_equal(in.attempt, 1);
  assert_int_equal(in.reason, FE_SAGA_REASON_JOURNAL);
  assert_fe(fe_saga_stats(c, &s1), 0);
  assert_true(s1.journal_errors > s0.journal_errors);
  assert_int_equal(s1.invocations, s0.invocations);

  /* the journal stays failed: b's second attempt fails alike, then the
   * compensation */
  for (int k = 0; k < 6; k++) {
    advance(BACKOFF + 10 * MS);
    while (fe_saga_poll(c, 1) > 0) {
    }
  }
  assert_int_equal(calls[1][0], 0);
  assert_int_equal(calls[1][1], 0); /* b never completed: not undone */
  assert_fe(fe_saga_stats(c, &s1), 0);
  if (!a_durable) {
    assert_int_equal(calls[0][1], 1);
    assert_fe(fe_saga_get(c, id, &in), FE_ENOTFOUND);
    assert_int_equal(s1.compensated, 1);
  } else {
    assert_int_equal(calls[0][1], 0);
    assert_fe(fe_saga_get(c, id, &in), 0);
    assert_int_equal(in.state, FE_SAGA_STUCK);
    assert_int_equal(in.compensating, 1);
    assert_int_equal(in.step, 0);
    assert_int_equal(in.reason, FE_SAGA_REASON_JOURNAL);
    assert_int_equal(s1.stuck, 1);
  }
  /* a start whose START cannot be appended is refused whole: no id, no
   * slot taken (every slot can still be started), nothing taken up */
  uint64_t none = 0;
  assert_fe(fe_saga_start(c, 0, NULL, 0, &none), FE_EIO);
  assert_int_equal(none, 0);
  while (fe_saga_poll(c, 1) > 0) {
  }
  fe_saga_stats_t s2;
  assert_fe(fe_saga_stats(c, &s2), 0);
  assert_int_equal(s2.started, s1.started);
  for (int k = 0; k < 20; k++)
    assert_fe(fe_saga_start(c, 0, NULL, 0, &none), FE_EIO);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, old_xfsz);
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(j), FE_EIO);
}

static void test_durable_commit_fails(void **state) {
  (void)state;
  journal_fails(0);
}

static void test_durable_commit_fails_in_compensation(void **state) {
  (void)state;
  journal_fails(1);
}

/* FE_FSYNC_INTERVAL with an interval that never passes (the journal's
 * clock stands still): a durable step's records are synced before it
 * runs anyway; a step without the flag runs with the journal's written
 * records ahead of its durable ones. */
static void test_durable_interval_syncs(void **state) {
  (void)state;
  fe_journal_config_t jc;
  journal_config(&jc);
  jc.fsync = FE_FSYNC_INTERVAL;
  jc.fsync_interval_ns = 3600 * SEC;
  assert_fe(fe_journal_open(&jc, NULL, NULL, &jcur, NULL, NULL), 0);
  fe_saga_coord_t *c = coord_plain();
  define_n(c, 3, FE_SAGA_RETRIABLE, 2u);
  assert_fe(fe_saga_use_journal(c, jcur, NULL), 0);
  assert_fe(fe_saga_poll(c, 1), 0);
  uint64_t id;
  assert_fe(fe_saga_start(c, 0, NULL, 0, &id), 0);
  for (int k = 0; k < 3; k++)
    assert_true(fe_saga_poll(c, 1) > 0); /* one step per poll */
  assert_true(seen_written[1] > seen_written[0]); /* b's STEP, at least */
  assert_int_equal(seen_durable[1], seen_written[1]);
  assert_true(seen_durable[2] < seen_written[2]);
  fe_saga_destroy(c);
  assert_fe(fe_journal_close(jcur), 0);
  jcur = NULL;
}

/* With a log hook: the STEP record of a durable step, and only it, says
 * so (FE_SAGA_RECF_DURABLE); replay takes it like any other. */
static uint8_t logged[64][sizeof(fe_saga_rec_t) + 16];
static uint32_t logged_len[64], n_logged;

static void log_fn(const void *rec, uint32_t len, void *user) {
  (void)user;
  if (n_logged < 64 && len <= sizeof logged[0]) {
    memcpy(logged[n_logged], rec, len);
    logged_len[n_logged++] = len;
  }
}

static void test_durable_log_hook_flag(void **state) {
  (void)state;
  n_logged = 0;
  fe_saga_config_t cfg;
  coord_config(&cfg);
  cfg.on_end = NULL;
  cfg.log = log_fn;
  fe_saga_coord_t *c;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  define(c, 1u << 1);
  assert_fe(fe_saga_poll(c, 1), 0);
  uint64_t id;
  assert_fe(fe_saga_start(c, 0, "x", 1, &id), 0);
  while (fe_saga_poll(c, 1) > 0) { /* A, B, then C waits */
  }
  int steps = 0;
  for (uint32_t k = 0; k < n_logged; k++) {
    fe_saga_rec_t h;
    memcpy(&h, logged[k], sizeof h);
    int want = h.type == FE_SAGA_REC_STEP && h.step == 1;
    assert_int_equal((h.flags & FE_SAGA_RECF_DURABLE) != 0, want);
    steps += h.type == FE_SAGA_REC_STEP;
  }
  assert_int_equal(steps, 3);
  fe_saga_destroy(c);
  /* replay into a coordinator where the step is not durable */
  cfg.log = NULL;
  assert_fe(fe_saga_create(&cfg, &c, NULL), 0);
  define(c, 0);
  for (uint32_t k = 0; k < n_logged; k++)
    assert_fe(fe_saga_replay(c, logged[k], logged_len[k]), 0);
  fe_saga_info_t in;
  assert_fe(fe_saga_get(c, id, &in), 0);
  assert_int_equal(in.state, FE_SAGA_WAITING);
  assert_int_equal(in.step, 2);
  fe_saga_destroy(c);
}

/* Unknown flag bits are refused at definition time, naming the step; the
 * order template makes submit (and its cancel) durable, nothing else. */
static void test_durable_definition(void **state) {
  (void)state;
  fe_saga_def_t d;
  fe_saga_def_init(&d);
  d.name = "flags";
  d.n_steps = 1;
  d.steps[0].name = "send";
  d.steps[0].action = count_fn;
  d.steps[0].compensate = count_fn;
  d.steps[0].flags = FE_SAGA_STEP_DURABLE;
  fe_diag_t dg;
  assert_fe(fe_saga_def_check(&d, &dg), 0);
  d.steps[0].flags = FE_SAGA_STEP_DURABLE | 0x80u;
  assert_fe(fe_saga_def_check(&d, &dg), FE_EDEFINE);
  assert_non_null(strstr(dg.msg, "'send'"));
  assert_non_null(strstr(dg.msg, "flags 0x80"));
  fe_saga_coord_t *c = new_coord();
  uint32_t id = 99;
  assert_fe(fe_saga_define(c, &d, &id, &dg), FE_EDEFINE);
  assert_int_equal(id, 99);
  d.steps[0].flags = 2;
  assert_fe(fe_saga_define(c, &d, &id, &dg), FE_EDEFINE);
  assert_non_null(strstr(dg.msg, "'send'"));
  d.steps[0].flags = 0;
  assert_fe(fe_saga_define(c, &d, &id, &dg), 0);
  assert_int_equal(id, 1); /* "crash" is 0: nothing was registered before */
  fe_saga_destroy(c);

  fe_saga_order_hooks_t h;
  memset(&h, 0, sizeof h);
  h.reserve = h.release = h.submit = h.cancel = h.await_fill = h.settle =
      count_fn;
  assert_fe(fe_saga_order_template(&d, &h), 0);
  for (uint32_t k = 0; k < d.n_steps; k++)
    assert_int_equal(d.steps[k].flags,
                     strcmp(d.steps[k].name, "submit") == 0
                         ? FE_SAGA_STEP_DURABLE
                         : 0);
  assert_fe(fe_saga_def_check(&d, NULL), 0);
}

int main(void) {
  wallp = mmap(NULL, sizeof *wallp, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (wallp == MAP_FAILED)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_crash_compensates, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_after_each_result, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_in_action_unwritten, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_step_written_replays, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_while_waiting, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_during_backoff, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_in_compensation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_through_the_bus, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_use_journal_errors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_replay_adapter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_journaled_before_return,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_starts_race_retire, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pin_keeps_what_replay_needs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_durable_crash_in_action, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_durable_commit_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_durable_commit_fails_in_compensation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durable_interval_syncs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_durable_log_hook_flag, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_durable_definition, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
