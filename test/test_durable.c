/*
 * Exactly-once on the bus: idempotent admission (fe_bus_submit), the
 * journaller and outcome stages, intents, and recovery after a crash
 * (simulated with fork + _exit, so nothing is closed or flushed by the
 * crashed process): unfinished events are re-driven, in-doubt orders are
 * resolved by the host's hook and never sent twice, the idempotency table
 * and the dead-letter queue are rebuilt, redriven dead letters stay out.
 * Host-driven buses make each step deterministic.
 */
#include "helpers.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "finevent/journal.h"
#include "../lib/jrec.h"

static char dir[128];
static int sent_count[64];  /* venue: sends per order (quantity index) */
static int fail_from = 1000; /* execution fails orders with quantity >= */

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/fe-durable-XXXXXX");
  assert_non_null(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Events validation saw with the trace context submit() gives them. */
static int validated_traced;
static int has_submit_trace(const fe_event_t *ev) {
  return ev->trace.trace_id[0] == (uint8_t)ev->order.quantity &&
         ev->trace.trace_id[15] == 0x7e && ev->trace.span_id[7] == 0x5a &&
         ev->trace.flags == 1;
}

static fe_verdict_t validate(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  validated_traced += has_submit_trace(ev);
  return ev->order.quantity > 0 ? FE_CONTINUE : fe_reject(ctx, 9);
}

/* The venue records sends in a file too, so that a forked "crashed"
 * process's sends are visible to the parent. */
static char venue_path[160];

/* A forked child sets it to die by SIGKILL in the venue call: KILL_BEFORE
 * the order reaches the venue (intent journaled, nothing sent), KILL_AFTER
 * it did (sent, no outcome). */
enum { KILL_NEVER, KILL_BEFORE, KILL_AFTER };
static int kill_in_send = KILL_NEVER;

static fe_verdict_t send(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t v,
                         void *u) {
  (void)v, (void)u;
  if (ev->order.quantity >= fail_from)
    return fe_fail(ctx, 33);
  if (kill_in_send == KILL_BEFORE)
    raise(SIGKILL);
  int fd = open(venue_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  char line[16];
  int n = snprintf(line, sizeof line, "%d\n", (int)ev->order.quantity);
  if (write(fd, line, (size_t)n) != n)
    abort();
  close(fd);
  if (kill_in_send == KILL_AFTER)
    raise(SIGKILL);
  return FE_CONTINUE;
}

/* A new journal directory and an empty venue whose execution fails
 * orders with quantity >= fail. */
static void fresh_venue(int fail) {
  make_dir();
  snprintf(venue_path, sizeof venue_path, "%s/venue", dir);
  unlink(venue_path);
  fail_from = fail;
}

static void count_sends(void) {
  memset(sent_count, 0, sizeof sent_count);
  FILE *f = fopen(venue_path, "r");
  if (f == NULL)
    return;
  int q;
  while (fscanf(f, "%d", &q) == 1)
    if (q >= 0 && q < 64)
      sent_count[q]++;
  fclose(f);
}

static int in_doubt_calls, in_doubt_traced;
static int in_doubt(const fe_event_t *ev, void *u) {
  (void)u;
  in_doubt_calls++;
  /* The W3C trace context submit() gave it, back from the journal. */
  in_doubt_traced += has_submit_trace(ev);
  count_sends();
  return sent_count[ev->order.quantity] > 0;
}

/* The host's outcome details: a venue order id and a fill, when set. */
static int with_detail;
static void on_outcome(const fe_event_t *ev, fe_idem_outcome_t *o, void *u) {
  (void)u;
  snprintf(o->venue_order_id, sizeof o->venue_order_id, "V-%d",
           (int)ev->order.quantity);
  o->filled_quantity = ev->order.quantity;
}

typedef struct rig {
  fe_idem_t *idem;
  fe_gateway_t *gw;
  fe_dlq_t *dlq;
  fe_bus_t *bus;
  fe_journal_config_t jc;
  fe_stage_def_t st[2];
  fe_diag_t d;
  int rc, start_rc;
} rig_t;

/* The journal's segment size and the user bytes journaled per event, for
 * the tests of small journals (0: the defaults). */
static uint64_t rig_segment_bytes;
static uint32_t rig_user_bytes;
static int rig_retain_nothing; /* retention 0: finished segments may go */
/* The restart tests of full tables and queues: the DLQ's capacity (0: the
 * default), an idempotency table filled with other keys before create, and
 * fe_bus_start's result instead of asserting it (start_rc). */
static uint32_t rig_dlq_capacity;
static int rig_fill_idem, rig_start_may_fail;

/* validation (parallel to the journal, worker 0) -> execution (gateway,
 * worker 0); journal and outcome stages on worker 1.  Host-driven. */
static void rig_open(rig_t *r, int journal, uint32_t max_batch) {
  memset(r, 0, sizeof *r);
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 1024;
  ic.now_ns = fe_clock_wall_fn;
  assert_fe(fe_idem_create(&ic, &r->idem, NULL), 0);
  /* Other orders' keys, until every probe window is full: a claim is
   * refused when its key's window is, so keep going well past the first. */
  for (int i = 0, full = 0; rig_fill_idem && full < 4096; i++) {
    fe_order_t o = {.account = 99, .quantity = 1};
    snprintf(o.client_order_id, sizeof o.client_order_id, "FILL-%d", i);
    fe_idem_key_t k;
    fe_idem_claim_t c;
    assert_fe(fe_idem_key_order(&o, &k), 0);
    full += fe_idem_claim(r->idem, &k, 1, &c) == FE_ETABLEFULL;
  }
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = send;
  assert_fe(fe_gateway_create(&gc, &r->gw, NULL), 0);
  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  qc.user_size = 16;
  if (rig_dlq_capacity != 0)
    qc.capacity = rig_dlq_capacity;
  assert_fe(fe_dlq_create(&qc, &r->dlq, NULL), 0);
  fe_journal_config_init(&r->jc);
  r->jc.dir = dir;
  r->jc.fsync = FE_FSYNC_NONE;
  if (rig_segment_bytes != 0)
    r->jc.segment_bytes = rig_segment_bytes;
  if (rig_retain_nothing)
    r->jc.retention_ns = 0;
  fe_stage_def_init(&r->st[0]);
  r->st[0].name = "validation";
  r->st[0].handler = validate;
  r->st[0].parallel_to_journal = 1;
  fe_stage_def_init(&r->st[1]);
  r->st[1].name = "execution";
  r->st[1].handler = fe_gateway_stage;
  r->st[1].user = r->gw;
  r->st[1].n_deps = 1;
  r->st[1].retry.max_attempts = 1;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  if (rig_user_bytes != 0) { /* else the defaults: the whole user area */
    cfg.slot_size = sizeof(fe_event_t) + 4096;
    cfg.journal_user_bytes = rig_user_bytes;
  }
  cfg.max_batch = max_batch;
  cfg.host_driven = 1;
  cfg.stages = r->st;
  cfg.n_stages = 2;
  cfg.idem = r->idem;
  cfg.dlq = r->dlq;
  cfg.journal = journal ? &r->jc : NULL;
  cfg.journal_worker = 1;
  cfg.in_doubt = in_doubt;
  cfg.on_outcome = with_detail ? on_outcome : NULL;
  r->rc = fe_bus_create(&cfg, &r->bus, &r->d);
  if (r->rc == 0) {
    r->start_rc = fe_bus_start(r->bus, &r->d);
    if (!rig_start_may_fail)
      assert_fe(r->start_rc, 0);
  }
}

/* rig_open() with the journal and batches of 64, which must succeed; then
 * what recovery found into *rec (may be NULL). */
static void rig_up(rig_t *r, fe_bus_recovery_t *rec) {
  rig_open(r, 1, 64);
  assert_fe(r->rc, 0);
  if (rec != NULL)
    assert_fe(fe_bus_recovery(r->bus, rec), 0);
}

static void rig_close(rig_t *r) {
  if (r->bus != NULL) {
    fe_bus_stop(r->bus);
    for (int more = 1; more;) {
      more = 0;
      for (uint32_t w = 0; w < 2; w++)
        more |= fe_bus_poll(r->bus, w) != FE_ESTOPPED;
    }
    fe_bus_destroy(r->bus);
  }
  fe_gateway_destroy(r->gw);
  fe_dlq_destroy(r->dlq);
  fe_idem_destroy(r->idem);
}

static void poll_all(fe_bus_t *bus) {
  for (int more = 1; more;) {
    more = 0;
    for (uint32_t w = 0; w < 2; w++)
      while (fe_bus_poll(bus, w) > 0)
        more = 1;
  }
}

static int submit(rig_t *r, int qty, const char *id, fe_submit_result_t *res) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = 7;
  o.quantity = qty;
  o.price = 10 * FE_PRICE_SCALE;
  snprintf(o.client_order_id, sizeof o.client_order_id, "%s", id);
  fe_submit_t in = {.type = FE_EV_NEW_ORDER, .order = &o, .trace_id = 99,
                    .timeout_ns = 0};
  in.trace.trace_id[0] = (uint8_t)qty;
  in.trace.trace_id[15] = 0x7e;
  in.trace.span_id[7] = 0x5a;
  in.trace.flags = 1;
  return fe_bus_submit(r->bus, &in, res);
}

/* Submits orders prefix-1 .. prefix-n with quantities 1 .. n; each must
 * be accepted. */
static void submit_orders(rig_t *r, const char *prefix, int n) {
  for (int i = 1; i <= n; i++) {
    char id[16];
    snprintf(id, sizeof id, "%s-%d", prefix, i);
    assert_fe(submit(r, i, id, NULL), 0);
  }
}

/* Duplicates: in progress while the first runs, then its stored outcome;
 * the same key for another order is a mismatch. */
static void test_submit_is_idempotent(void **state) {
  (void)state;
  make_dir();
  snprintf(venue_path, sizeof venue_path, "%s/venue", dir);
  rig_t r;
  rig_open(&r, 0, 64);
  assert_fe(r.rc, 0);
  fe_submit_result_t res;
  assert_fe(submit(&r, 3, "A-1", &res), 0);
  assert_fe(submit(&r, 0, "A-2", &res), 0); /* rejected by validation */
  assert_fe(submit(&r, 3, "A-1", &res), FE_EINPROGRESS);
  poll_all(r.bus);
  memset(&res, 0, sizeof res);
  assert_fe(submit(&r, 3, "A-1", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_fe(submit(&r, 0, "A-2", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_REJECTED);
  assert_int_equal(res.outcome.reason, 9);
  assert_fe(submit(&r, 4, "A-1", &res), FE_EMISMATCH);
  assert_fe(submit(&r, 4, "", &res), FE_EINVAL);
  poll_all(r.bus);
  count_sends();
  assert_int_equal(sent_count[3], 1);
  fe_bus_stats_t s;
  fe_bus_stats(r.bus, &s);
  assert_int_equal(s.published, 2);
  assert_int_equal(s.duplicates, 4);
  assert_int_equal(s.completed + s.rejected + s.dead_lettered, s.published);
  /* FE_SUBMIT_DURABLE needs a journal */
  fe_order_t o = {.account = 1, .quantity = 1};
  snprintf(o.client_order_id, sizeof o.client_order_id, "B");
  fe_submit_t in = {.type = FE_EV_NEW_ORDER, .flags = FE_SUBMIT_DURABLE,
                    .order = &o};
  assert_fe(fe_bus_submit(r.bus, &in, NULL), FE_EINVAL);
  rig_close(&r);
  remove_dir();
}

/* A clean restart: everything finished, nothing re-driven, the table is
 * rebuilt from the journal so duplicates still get the first outcome. */
static void test_restart_rebuilds_the_table(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t r;
  rig_up(&r, NULL);
  fe_submit_result_t res;
  submit_orders(&r, "C", 10);
  poll_all(r.bus);
  rig_close(&r);

  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.events, 10);
  assert_int_equal(rec.finished, 10);
  assert_int_equal(rec.redriven, 0);
  assert_int_equal(rec.idem_restored, 10);
  assert_fe(submit(&r, 5, "C-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_fe(submit(&r, 6, "C-5", &res), FE_EMISMATCH);
  assert_fe(submit(&r, 11, "C-11", &res), 0);
  poll_all(r.bus);
  count_sends();
  for (int i = 1; i <= 11; i++)
    assert_int_equal(sent_count[i], 1);
  rig_close(&r);
  remove_dir();
}

/* What the host's on_outcome added survives a restart: a duplicate gets
 * the venue order id and the fill, not only the status. */
static void test_restart_keeps_host_outcome(void **state) {
  (void)state;
  fresh_venue(1000);
  with_detail = 1;
  rig_t r;
  rig_up(&r, NULL);
  fe_submit_result_t res;
  assert_fe(submit(&r, 3, "H-3", &res), 0);
  assert_fe(submit(&r, 0, "H-0", &res), 0); /* rejected by validation */
  poll_all(r.bus);
  rig_close(&r);
  with_detail = 0; /* the stored outcome must come from the journal */
  rig_up(&r, NULL);
  assert_fe(submit(&r, 3, "H-3", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_string_equal(res.outcome.venue_order_id, "V-3");
  assert_int_equal(res.outcome.filled_quantity, 3);
  assert_fe(submit(&r, 0, "H-0", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_REJECTED);
  assert_int_equal(res.outcome.reason, 9);
  assert_string_equal(res.outcome.venue_order_id, "V-0");
  rig_close(&r);
  remove_dir();
}

/* Appends one FE_JREC_OUTCOME record with the given payload to a fresh
 * journal in dir (valid frame and checksum: only the payload is wrong). */
static void write_record(uint16_t type, const void *data, uint32_t len) {
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = dir;
  jc.fsync = FE_FSYNC_NONE;
  fe_journal_t *j = NULL;
  assert_fe(fe_journal_open(&jc, NULL, NULL, &j, NULL, NULL), 0);
  assert_fe(fe_journal_append(j, type, data, len, NULL), 0);
  assert_fe(fe_journal_close(j), 0);
}

static void write_outcome_record(const void *data, uint32_t len) {
  write_record(FE_JREC_OUTCOME, data, len);
}

/* Opens the rig on the journal in dir, expecting refusal with rc and a
 * message that names the record (lsn 1) and contains msg. */
static void expect_refused(int rc, const char *msg, size_t case_no) {
  rig_t r;
  rig_open(&r, 1, 64);
  assert_int_equal(r.rc, rc);
  assert_null(r.bus);
  if (strstr(r.d.msg, msg) == NULL || strstr(r.d.msg, "lsn 1") == NULL)
    fail_msg("case %zu: %s", case_no, r.d.msg);
  rig_close(&r);
}

/* Outcome payloads that frame and checksum correctly but make no sense
 * are refused with their own error, naming the record. */
static void test_bad_outcome_payloads_refused(void **state) {
  (void)state;
  struct {
    jrec_outcomes_t h;
    jrec_outcome_t o;
    uint8_t part[32];
  } rec;
  const struct {
    uint32_t version, flags, entry_size, len;
    int rc;
    const char *msg;
  } cases[] = {
      {99, 0, sizeof(jrec_outcome_t), sizeof rec.h + sizeof rec.o,
       FE_EVERSION, "version 99"},
      {FE_JREC_OUTCOME_VERSION, 64, sizeof(jrec_outcome_t),
       sizeof rec.h + sizeof rec.o, FE_ECORRUPT, "size or flags"},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_KEY, sizeof(jrec_outcome_t),
       sizeof rec.h + sizeof rec.o, FE_ECORRUPT, "size or flags"},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_DETAIL, sizeof rec.o + 32,
       sizeof rec, FE_ECORRUPT, "size or flags"},
      {FE_JREC_OUTCOME_VERSION, 0, sizeof(jrec_outcome_t) + 4,
       sizeof rec.h + sizeof rec.o + 8, FE_ECORRUPT, "size or flags"},
      {FE_JREC_OUTCOME_VERSION, 0, sizeof(jrec_outcome_t),
       sizeof rec.h + 8, FE_ECORRUPT, "overruns"},
      {FE_JREC_OUTCOME_VERSION, 0, 0, 8, FE_ECORRUPT, "shorter"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_dir();
    memset(&rec, 0, sizeof rec);
    rec.h.version = cases[i].version;
    rec.h.count = 1;
    rec.o.eid = 1;
    rec.o.status = FE_IDEM_COMPLETED;
    rec.o.flags = cases[i].flags;
    rec.o.entry_size = cases[i].entry_size;
    write_outcome_record(&rec, cases[i].len);
    expect_refused(cases[i].rc, cases[i].msg, i);
    remove_dir();
  }
}

/* Run entries (a batch of plain completions) that make no sense: refused
 * like any other bad outcome entry. */
static void test_bad_outcome_runs_refused(void **state) {
  (void)state;
  struct {
    jrec_outcomes_t h;
    jrec_out_run_t run;
  } rec;
  const struct {
    uint32_t version, flags, entry_size, count, reserved;
    uint64_t eid;
  } cases[] = {
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN, sizeof rec.run, 0, 0, 1},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN, sizeof rec.run + 8, 1, 0, 1},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN | JREC_OUT_KEY, sizeof rec.run,
       1, 0, 1},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN, sizeof rec.run, 1, 7, 1},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN, sizeof rec.run,
       JREC_RUN_MAX + 1, 0, 1},
      {FE_JREC_OUTCOME_VERSION, JREC_OUT_RUN, sizeof rec.run, 2, 0,
       UINT64_MAX}, /* wraps */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_dir();
    memset(&rec, 0, sizeof rec);
    rec.h.version = cases[i].version;
    rec.h.count = 1;
    rec.run = (jrec_out_run_t){cases[i].eid, cases[i].entry_size,
                               cases[i].flags, cases[i].count,
                               cases[i].reserved};
    write_outcome_record(&rec, sizeof rec);
    expect_refused(FE_ECORRUPT, "size or flags", i);
    remove_dir();
  }
}

/* The compact event entry: every word and the user area come back, seq
 * and verdict are never written, zero words cost nothing, and a decoder
 * refuses what an encoder cannot have written. */
static void test_event_entry_codec(void **state) {
  (void)state;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  enum { USER = 24 };
  uint8_t buf[JREC_EV_MAX(USER) + JREC_EV_SLACK];
  for (int round = 0; round < 2000; round++) {
    fe_event_t ev;
    uint64_t tail[JREC_EV_TAIL];
    uint8_t user[USER], back_user[USER];
    uint64_t *w = (uint64_t *)(void *)&ev;
    for (size_t k = 0; k < sizeof ev / 8; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* zero, a few low bytes, or all 8: every length occurs */
      w[k] = (x & 3) == 0 ? 0 : x >> (8 * (x % 8));
    }
    for (size_t k = 0; k < JREC_EV_TAIL; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      tail[k] = (x & 1) ? x : 0;
    }
    for (size_t k = 0; k < USER; k++)
      user[k] = (uint8_t)(x >> (k % 8));
    memset(buf, 0xee, sizeof buf);
    uint32_t len = jrec_ev_encode(buf, &ev, tail, user, USER);
    assert_true(len <= JREC_EV_MAX(USER));
    jrec_event_t back;
    /* exactly len bytes are needed: one fewer is an overrun */
    assert_int_equal(jrec_ev_decode(buf, len - 1, USER, &back, back_user), 0);
    assert_int_equal(jrec_ev_decode(buf, len, USER, &back, back_user), len);
    fe_event_t want = ev;
    want.seq = 0;
    want.verdict = 0;
    assert_memory_equal(back.ev, &want, sizeof want);
    assert_memory_equal(&back.key, tail, sizeof tail);
    assert_memory_equal(back_user, user, USER);
  }
  /* Sizes: nothing but the codes for an empty event; a sparse order (type,
   * account 1023, quantity 5, price 100) in 5 bytes after them. */
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.seq = 77;
  ev.verdict = 5;
  uint64_t tail[JREC_EV_TAIL] = {0};
  assert_int_equal(jrec_ev_encode(buf, &ev, tail, NULL, 0), JREC_EV_CODES);
  ev.type = FE_EV_NEW_ORDER;
  ev.order.account = 1023;
  ev.order.quantity = 5;
  ev.order.price = 100;
  uint32_t len = jrec_ev_encode(buf, &ev, tail, NULL, 0);
  assert_int_equal(len, JREC_EV_CODES + 5);
  jrec_event_t back;
  assert_int_equal(jrec_ev_decode(buf, len, 0, &back, NULL), len);
  /* What an encoder never writes: a length over 8, a length for a word
   * past the last one, a journaled seq or verdict. */
  uint8_t bad[sizeof buf];
  memcpy(bad, buf, len);
  bad[5] = (uint8_t)((bad[5] & 0xf0) | 9);
  assert_int_equal(jrec_ev_decode(bad, sizeof bad, 0, &back, NULL), 0);
  memcpy(bad, buf, len);
  bad[JREC_EV_CODES - 1] |= 0x10; /* nibble 23: no such word */
  assert_int_equal(jrec_ev_decode(bad, sizeof bad, 0, &back, NULL), 0);
  memcpy(bad, buf, len);
  bad[0] = 0x01; /* seq */
  assert_int_equal(jrec_ev_decode(bad, sizeof bad, 0, &back, NULL), 0);
  bad[0] = 0x10; /* verdict */
  assert_int_equal(jrec_ev_decode(bad, sizeof bad, 0, &back, NULL), 0);
  assert_int_equal(jrec_ev_decode(buf, JREC_EV_CODES - 1, 0, &back, NULL), 0);
}

/* Event payloads that frame and checksum but make no sense. */
static void test_bad_event_payloads_refused(void **state) {
  (void)state;
  struct {
    jrec_events_t h;
    uint8_t e[JREC_EV_CODES + 16];
  } rec;
  const struct {
    uint32_t version, entry_size, user_len, len;
    int corrupt_nibble; /* 1: a length of 9 in the entry */
    int rc;
    const char *msg;
  } cases[] = {
      {99, 0, 0, sizeof rec.h + JREC_EV_CODES, 0, FE_EVERSION, "version 99"},
      {FE_JREC_BUS_VERSION, 8, 0, sizeof rec.h + JREC_EV_CODES, 0,
       FE_ECORRUPT, "entry size"},
      {FE_JREC_BUS_VERSION, 0, 0, sizeof rec.h + JREC_EV_CODES, 1,
       FE_ECORRUPT, "malformed"},
      {FE_JREC_BUS_VERSION, 0, 8, sizeof rec.h + JREC_EV_CODES, 0,
       FE_ECORRUPT, "malformed"}, /* its user bytes are missing */
      {FE_JREC_BUS_VERSION, 0, 0, sizeof rec.h + JREC_EV_CODES + 3, 0,
       FE_ECORRUPT, "bytes follow"},
      {1, sizeof(jrec_event_t), 8, sizeof rec.h + sizeof(jrec_event_t), 0,
       FE_EVERSION, "reads version 3"}, /* fixed entries: not read */
      {2, 0, 0, sizeof rec.h + JREC_EV_CODES, 0,
       FE_EVERSION, "reads version 3"}, /* before the trace context */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_dir();
    uint8_t raw[sizeof rec.h + sizeof(jrec_event_t)];
    memset(raw, 0, sizeof raw);
    jrec_events_t h = {.version = cases[i].version,
                       .count = 1,
                       .entry_size = cases[i].entry_size,
                       .user_len = cases[i].user_len,
                       .first_eid = 1};
    memcpy(raw, &h, sizeof h);
    if (cases[i].corrupt_nibble)
      raw[sizeof h + 3] = 0x09;
    write_record(FE_JREC_EVENT, raw, cases[i].len);
    expect_refused(cases[i].rc, cases[i].msg, i);
    remove_dir();
  }
}

/* The formats an unreleased 0.1.0 wrote before the current ones (event
 * version 1, fixed entries; event version 2, no trace context; outcome
 * version 2, no runs) are not read:
 * recovery refuses them by version rather than misread them. */
static void test_old_formats_refused(void **state) {
  (void)state;
  struct {
    jrec_events_t h;
    uint8_t e[sizeof(jrec_event_t) + 16];
  } evr;
  memset(&evr, 0, sizeof evr);
  evr.h = (jrec_events_t){.version = 1, .count = 1,
                          .entry_size = sizeof evr.e, .user_len = 16,
                          .first_eid = 1};
  make_dir();
  write_record(FE_JREC_EVENT, &evr, sizeof evr);
  expect_refused(FE_EVERSION, "event format version 1, this library reads "
                 "version 3", 0);
  remove_dir();
  /* version 2: compact entries of the event before its trace context */
  evr.h.version = 2;
  evr.h.entry_size = 0;
  make_dir();
  write_record(FE_JREC_EVENT, &evr, sizeof evr);
  expect_refused(FE_EVERSION, "event format version 2, this library reads "
                 "version 3", 0);
  remove_dir();
  struct {
    jrec_outcomes_t h;
    jrec_outcome_t o;
  } out;
  memset(&out, 0, sizeof out);
  out.h = (jrec_outcomes_t){.version = 2, .count = 1};
  out.o = (jrec_outcome_t){.eid = 1, .entry_size = sizeof out.o,
                           .status = FE_IDEM_COMPLETED, .stage = UINT32_MAX};
  make_dir();
  write_outcome_record(&out, sizeof out);
  expect_refused(FE_EVERSION, "outcome format version 2, this library reads "
                 "version 3", 1);
  remove_dir();
}

/* Child: publishes 8 orders, lets the journaller write them, then lets the
 * execution stage handle the first `exec` of them (intent + send), and
 * "crashes" (_exit without closing anything). */
static void crash_after(int exec) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    rig_t r;
    rig_open(&r, 1, (uint32_t)(exec > 0 ? exec : 1));
    if (r.rc != 0)
      _exit(2);
    for (int i = 1; i <= 8; i++) {
      char id[16];
      snprintf(id, sizeof id, "D-%d", i);
      if (submit(&r, i, id, NULL) != 0)
        _exit(3);
    }
    while (fe_bus_poll(r.bus, 1) > 0) { /* journal the 8; no outcomes yet */
    }
    if (exec > 0) /* one batch of `exec` events through validation and,
                     in the same poll, execution */
      fe_bus_poll(r.bus, 0);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_crash_redrives_and_never_sends_twice(void **state) {
  (void)state;
  fresh_venue(1000);
  crash_after(3);
  count_sends();
  int sent_before = 0;
  for (int i = 1; i <= 8; i++)
    sent_before += sent_count[i];
  assert_int_equal(sent_before, 3);

  in_doubt_calls = in_doubt_traced = 0;
  rig_t r;
  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.events, 8);
  assert_int_equal(rec.finished, 0);
  assert_int_equal(rec.redriven, 8);
  assert_int_equal(rec.in_doubt_sent, 3);
  assert_int_equal(rec.in_doubt_unsent, 0);
  assert_int_equal(in_doubt_calls, 3);
  assert_int_equal(in_doubt_traced, 3); /* the journal kept the trace */
  /* a client retry while the recovered order runs: in progress */
  fe_submit_result_t res;
  assert_fe(submit(&r, 2, "D-2", &res), FE_EINPROGRESS);
  validated_traced = 0;
  poll_all(r.bus);
  assert_int_equal(validated_traced, 8); /* re-driven with it */
  count_sends();
  for (int i = 1; i <= 8; i++)
    assert_int_equal(sent_count[i], 1); /* each once, over both lives */
  fe_gateway_stats_t gs;
  fe_gateway_stats(r.gw, 0, &gs);
  assert_int_equal(gs.already_sent, 3);
  assert_int_equal(gs.sent, 5);
  assert_fe(submit(&r, 2, "D-2", &res), FE_EDUPLICATE);
  fe_bus_stats_t s;
  fe_bus_stats(r.bus, &s);
  assert_int_equal(s.completed, 8);
  rig_close(&r);

  /* third life: all finished */
  rig_up(&r, &rec);
  assert_int_equal(rec.finished, 8);
  assert_int_equal(rec.redriven, 0);
  rig_close(&r);
  remove_dir();
}

/* An intent written but the send never made (crash between them): the
 * in-doubt hook says "not sent", and the order is sent exactly once. */
static void test_in_doubt_not_sent_is_sent_once(void **state) {
  (void)state;
  make_dir();
  snprintf(venue_path, sizeof venue_path, "%s/venue", dir);
  crash_after(2);
  /* Pretend the venue never got order 2: its intent exists, its send not. */
  FILE *f = fopen(venue_path, "w");
  fprintf(f, "1\n");
  fclose(f);
  rig_t r;
  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.in_doubt_sent, 1);
  assert_int_equal(rec.in_doubt_unsent, 1);
  poll_all(r.bus);
  count_sends();
  for (int i = 1; i <= 8; i++)
    assert_int_equal(sent_count[i], 1);
  rig_close(&r);
  remove_dir();
}

/* Dead letters survive a restart (rebuilt into the DLQ); one redriven
 * before the restart does not come back. */
static int first_id(const fe_dlq_entry_t *e, void *u) {
  *(uint64_t *)u = e->id;
  return 1;
}

static void test_dead_letters_are_rebuilt(void **state) {
  (void)state;
  fresh_venue(5);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "E", 8);
  poll_all(r.bus);
  assert_int_equal(fe_dlq_count(r.dlq), 4); /* 5, 6, 7, 8 */
  fe_submit_result_t res;
  assert_fe(submit(&r, 6, "E-6", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_DEAD_LETTERED);
  assert_int_equal(res.outcome.reason, 33);
  rig_close(&r);

  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.dlq_restored, 4);
  assert_int_equal(fe_dlq_count(r.dlq), 4);
  assert_int_equal(fe_dlq_count_reason(r.dlq, 33), 4);
  /* redrive one (the venue is healthy again) */
  fail_from = 1000;
  uint64_t id = 0;
  fe_dlq_foreach(r.dlq, NULL, first_id, &id);
  assert_fe(fe_dlq_redrive(r.dlq, id, fe_bus_redrive, r.bus), 0);
  poll_all(r.bus);
  assert_int_equal(fe_dlq_count(r.dlq), 3);
  rig_close(&r);

  rig_up(&r, &rec);
  assert_int_equal(rec.dlq_restored, 3);
  assert_int_equal(fe_dlq_count(r.dlq), 3);
  rig_close(&r);
  remove_dir();
}

static int last_id(const fe_dlq_entry_t *e, void *u) {
  *(uint64_t *)u = e->id;
  return 0;
}

/* A purge is journaled: the purged dead letter does not come back after a
 * restart, also when the purge beat the outcome stage to the journal. */
static void test_dead_letter_purges_survive_restart(void **state) {
  (void)state;
  fresh_venue(5);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "P", 8);
  poll_all(r.bus);
  assert_int_equal(fe_dlq_count(r.dlq), 4);
  uint64_t id = 0;
  fe_dlq_foreach(r.dlq, NULL, first_id, &id);
  fe_dlq_entry_t e;
  assert_fe(fe_dlq_get(r.dlq, id, &e, NULL, 0), 0);
  assert_int_equal(e.event.order.quantity, 5);
  assert_fe(fe_dlq_purge(r.dlq, id), 0);
  assert_int_equal(fe_dlq_count(r.dlq), 3);
  rig_close(&r);

  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.dlq_purged, 1);
  assert_int_equal(rec.dlq_restored, 3);
  assert_int_equal(fe_dlq_count(r.dlq), 3);
  fe_dlq_foreach(r.dlq, NULL, first_id, &id);
  assert_fe(fe_dlq_get(r.dlq, id, &e, NULL, 0), 0);
  assert_int_equal(e.event.order.quantity, 6); /* 5 stayed purged */
  /* The race: order 9 is dead-lettered by execution (worker 0) and purged
   * before the outcome stage (worker 1) journals its outcome. */
  assert_fe(submit(&r, 9, "P-9", NULL), 0);
  while (fe_bus_poll(r.bus, 1) > 0) { /* the journaller writes it */
  }
  while (fe_bus_poll(r.bus, 0) > 0) { /* execution dead-letters it */
  }
  assert_int_equal(fe_dlq_count(r.dlq), 4);
  fe_dlq_foreach(r.dlq, NULL, last_id, &id);
  assert_fe(fe_dlq_get(r.dlq, id, &e, NULL, 0), 0);
  assert_int_equal(e.event.order.quantity, 9);
  assert_fe(fe_dlq_purge(r.dlq, id), 0);
  poll_all(r.bus); /* now the outcome, with its dead-letter copy */
  rig_close(&r);

  rig_up(&r, &rec);
  assert_int_equal(rec.dlq_purged, 2);
  assert_int_equal(rec.dlq_restored, 3);
  assert_int_equal(fe_dlq_count(r.dlq), 3);
  /* A second journaled bus cannot take over the same queue's purges. */
  char dir2[160];
  snprintf(dir2, sizeof dir2, "%s/second", dir);
  fe_journal_config_t jc2 = r.jc;
  jc2.dir = dir2;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.host_driven = 1;
  cfg.stages = r.st;
  cfg.n_stages = 2;
  cfg.dlq = r.dlq;
  cfg.journal = &jc2;
  cfg.journal_worker = 1;
  cfg.max_batch = 64;
  fe_bus_t *bus2 = NULL;
  fe_diag_t d;
  assert_fe(fe_bus_create(&cfg, &bus2, &d), FE_ESTATE);
  assert_non_null(strstr(d.msg, "dead-letter queue"));
  assert_null(bus2);
  rig_close(&r);
  remove_dir();
}

/* Runs fe-journal dump [--json] on dir; returns its output (static). */
static const char *tool_dump(int json) {
  static char out[1 << 16];
  char cmd[300];
  snprintf(cmd, sizeof cmd, "%s dump %s%s", FE_JOURNAL_TOOL,
           json ? "--json " : "", dir);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  assert_int_equal(pclose(f), 0);
  return out;
}

static void expect_in(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" not in:\n%s", needle, hay);
}

/* fe-journal dump says what the bus's records hold. */
static void test_tool_decodes_bus_records(void **state) {
  (void)state;
  fresh_venue(3);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "T", 3);
  poll_all(r.bus);
  uint64_t id = 0;
  fe_dlq_foreach(r.dlq, NULL, first_id, &id);
  assert_fe(fe_dlq_purge(r.dlq, id), 0);
  rig_close(&r);
  const char *t = tool_dump(0);
  expect_in(t, "type=EVENT");
  expect_in(t, "events=3 first_eid=1 user_len=");
  expect_in(t, "intent_eid=1");
  expect_in(t, "intent_eid=2");
  expect_in(t, "eids=1..3 completed=2 rejected=0 dead_lettered=1 "
               "host_status=0 keys=3");
  expect_in(t, "dlq=purged eid=3");
  const char *j = tool_dump(1);
  expect_in(j, "\"events\":3,\"first_eid\":1");
  expect_in(j, "\"eids\":\"1..3\",\"completed\":2");
  expect_in(j, "\"dlq\":\"purged\",\"eid\":3}");
  remove_dir();
}

/* Raw publishes (no key) that complete are journaled as runs, one entry
 * for the batch, and a restart counts every one of them finished. */
static void test_plain_completions_are_runs(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t r;
  rig_up(&r, NULL);
  for (int i = 1; i <= 20; i++) {
    fe_event_t *ev;
    assert_fe(fe_bus_claim(r.bus, &ev, 0), 0);
    memset(&ev->order, 0, sizeof ev->order);
    ev->order.account = 7;
    ev->order.quantity = i == 10 ? 0 : i; /* 10 is rejected: breaks the run */
    ev->order.price = 10 * FE_PRICE_SCALE;
    assert_fe(fe_bus_publish(r.bus, ev), 0);
  }
  poll_all(r.bus);
  rig_close(&r);
  const char *t = tool_dump(0);
  expect_in(t, "events=20 first_eid=1");
  expect_in(t, "eids=1..20 completed=19 rejected=1 dead_lettered=0 "
               "host_status=0 keys=0 runs=2");
  fe_bus_recovery_t rep;
  rig_up(&r, &rep);
  assert_int_equal(rep.events, 20);
  assert_int_equal(rep.finished, 20);
  assert_int_equal(rep.redriven, 0);
  rig_close(&r);
  remove_dir();
}

/* A burst (fe_bus_submit_n) answers each order as its own fe_bus_submit()
 * would: a duplicate inside the burst is in progress, an order without a
 * client order id or reusing one for another order is refused alone, and
 * the same burst again gets the stored outcomes. */
static void test_submit_burst(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t r;
  rig_up(&r, NULL);
  enum { N = 40 };
  fe_order_t o[N];
  fe_submit_t in[N];
  fe_submit_result_t out[N];
  int rc[N], want[N];
  for (int i = 0; i < N; i++) {
    memset(&o[i], 0, sizeof o[i]);
    o[i].account = 7;
    o[i].quantity = i + 1;
    o[i].price = 10 * FE_PRICE_SCALE;
    snprintf(o[i].client_order_id, sizeof o[i].client_order_id, "B-%d", i);
    in[i] = (fe_submit_t){.type = FE_EV_NEW_ORDER, .order = &o[i]};
    want[i] = 0;
  }
  o[5] = o[2]; /* the same order again, while it runs */
  want[5] = FE_EINPROGRESS;
  memset(o[7].client_order_id, 0, sizeof o[7].client_order_id);
  want[7] = FE_EINVAL;
  snprintf(o[29].client_order_id, sizeof o[29].client_order_id, "B-3");
  want[29] = FE_EMISMATCH; /* B-3's id, another quantity */
  memset(out, 0, sizeof out);
  assert_int_equal(fe_bus_submit_n(r.bus, in, N, out, rc), N - 3);
  uint64_t last = 0;
  for (int i = 0; i < N; i++) {
    if (rc[i] != want[i])
      fail_msg("order %d: %s, expected %s", i, fe_err_name(rc[i]),
               fe_err_name(want[i]));
    if (rc[i] == 0) { /* published in order */
      assert_true(i == 0 || out[i].seq > last);
      last = out[i].seq;
    }
  }
  poll_all(r.bus);
  count_sends();
  for (int q = 1; q <= N; q++) /* 6 (order 5), 8 (7) and 30 (29) never ran */
    assert_int_equal(sent_count[q], q == 6 || q == 8 || q == 30 ? 0 : 1);
  /* Again: every order that ran answers with its outcome. */
  assert_int_equal(fe_bus_submit_n(r.bus, in, N, out, rc), 0);
  for (int i = 0; i < N; i++) {
    int w = i == 7 ? FE_EINVAL : i == 29 ? FE_EMISMATCH : FE_EDUPLICATE;
    if (rc[i] != w)
      fail_msg("again, order %d: %s", i, fe_err_name(rc[i]));
    if (w == FE_EDUPLICATE)
      assert_int_equal(out[i].outcome.status, FE_IDEM_COMPLETED);
  }
  /* out may be NULL; bad arguments submit nothing. */
  o[0].quantity = 1;
  snprintf(o[0].client_order_id, sizeof o[0].client_order_id, "B-new");
  assert_int_equal(fe_bus_submit_n(r.bus, in, 1, NULL, rc), 1);
  assert_int_equal(fe_bus_submit_n(NULL, in, 1, NULL, rc), FE_EINVAL);
  assert_int_equal(fe_bus_submit_n(r.bus, NULL, 1, NULL, rc), FE_EINVAL);
  assert_int_equal(fe_bus_submit_n(r.bus, in, 1, NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_bus_submit_n(r.bus, in, (size_t)INT32_MAX + 1, NULL,
                                   rc),
                   FE_ERANGE);
  assert_int_equal(fe_bus_submit_n(r.bus, NULL, 0, NULL, NULL), 0);
  fe_bus_stats_t st;
  assert_fe(fe_bus_stats(r.bus, &st), 0);
  assert_int_equal(st.published, N - 3 + 1);
  rig_close(&r);
  remove_dir();
}

/* By default the journal keeps the whole user area (bus.h): 80 bytes in
 * the default 256-byte slot. */
static void test_default_journals_the_whole_user_area(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "UA", 2);
  poll_all(r.bus);
  rig_close(&r);
  expect_in(tool_dump(0), "user_len=80");
  remove_dir();
}

/* A journal whose records are smaller than a batch's: the journaller and
 * the outcome stage split the batch over several records, and recovery
 * reads them all back (completions, and dead letters with their copies).
 * A journal too small for one entry is refused at create, before recovery
 * touches the idempotency table. */
static void test_small_journal_splits_batches(void **state) {
  (void)state;
  fresh_venue(33); /* quantities 33.. fail: dead letters */
  rig_segment_bytes = 4096;
  rig_user_bytes = 128; /* raw in every entry: 48 events are ~9 KiB */
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "SM", 48); /* one batch */
  poll_all(r.bus);
  fe_journal_stats_t js;
  assert_fe(fe_journal_stats(fe_bus_journal(r.bus), &js), 0);
  assert_true(js.segments > 2); /* records of under 4 KiB each */
  fe_bus_stats_t st;
  assert_fe(fe_bus_stats(r.bus, &st), 0);
  assert_int_equal(st.completed, 32);
  assert_int_equal(st.dead_lettered, 16);
  rig_close(&r);
  const char *t = tool_dump(0);
  expect_in(t, "events=");
  fe_bus_recovery_t rep;
  rig_up(&r, &rep);
  assert_int_equal(rep.events, 48);
  assert_int_equal(rep.finished, 48);
  assert_int_equal(rep.redriven, 0);
  assert_int_equal(rep.idem_restored, 48);
  assert_int_equal(rep.dlq_restored, 16);
  fe_submit_result_t res;
  assert_fe(submit(&r, 40, "SM-40", &res),
            FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_DEAD_LETTERED);
  rig_close(&r);
  /* 4000 journaled user bytes cannot fit a 4 KiB segment's record. */
  rig_user_bytes = 4000;
  rig_open(&r, 1, 64);
  assert_int_equal(r.rc, FE_ERANGE);
  assert_non_null(strstr(r.d.msg, "4000 journaled user bytes"));
  fe_idem_stats_t is;
  assert_fe(fe_idem_stats(r.idem, &is), 0);
  assert_int_equal(is.live, 0); /* refused before recovery restored any */
  rig_close(&r);
  rig_user_bytes = 0;
  rig_segment_bytes = 0;
  count_sends();
  for (int q = 1; q <= 48; q++)
    assert_int_equal(sent_count[q], q < 33 ? 1 : 0);
  remove_dir();
}

/* One more order through the bus, then the journal's stats: the outcome
 * stage retires at most once a second, so the callers repeat this. */
static fe_journal_stats_t order_and_stats(rig_t *r, const char *prefix,
                                          int *n) {
  char id[24];
  snprintf(id, sizeof id, "%s-%d", prefix, ++*n);
  assert_fe(submit(r, 1, id, NULL), 0);
  poll_all(r->bus);
  fe_t_sleep_ns(20 * FE_T_MS);
  fe_journal_stats_t js;
  assert_fe(fe_journal_stats(fe_bus_journal(r->bus), &js), 0);
  return js;
}

/* The outcome stage's retirement refused by the system (a directory where
 * the oldest segment was: unlink fails even for root): the journal counts
 * it and keeps the segment, the bus carries on, and once the segment can
 * go a later pass retires it. */
static void test_retire_failure_is_reported(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_segment_bytes = 4096;
  rig_user_bytes = 128;
  rig_retain_nothing = 1;
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "RF", 48);
  poll_all(r.bus);
  /* A finished segment behind the active one (retirement may have taken
   * every other one already): more orders until the journal rotates. */
  int n = 0, ok = 0;
  fe_journal_stats_t js;
  do
    js = order_and_stats(&r, "RG", &n);
  while (js.active_segment == js.first_segment && n < 200);
  assert_true(js.active_segment > js.first_segment);
  uint64_t first = js.first_segment;
  char p[PATH_MAX], aside[PATH_MAX + 8];
  snprintf(p, sizeof p, "%s/%016" PRIx64 ".fej", dir, first);
  snprintf(aside, sizeof aside, "%s.aside", p);
  assert_int_equal(rename(p, aside), 0);
  assert_int_equal(mkdir(p, 0700), 0);
  uint64_t deadline = fe_t_now_ns() + FE_T_LONG_MS * FE_T_MS;
  while (!ok && fe_t_now_ns() < deadline) {
    js = order_and_stats(&r, "RG", &n);
    ok = js.retire_failures > 0;
  }
  assert_true(ok);
  assert_int_equal(js.sys_errno, EISDIR);
  assert_int_equal(js.error, 0);
  assert_int_equal(js.first_segment, first);
  fe_bus_stats_t st;
  assert_fe(fe_bus_stats(r.bus, &st), 0);
  assert_int_equal(st.completed, 48 + (uint64_t)n);
  assert_int_equal(rmdir(p), 0);
  assert_int_equal(rename(aside, p), 0);
  for (ok = 0; !ok && fe_t_now_ns() < deadline;)
    ok = order_and_stats(&r, "RG", &n).first_segment > first;
  assert_true(ok);
  rig_close(&r);
  rig_retain_nothing = 0;
  rig_user_bytes = 0;
  rig_segment_bytes = 0;
  remove_dir();
}

/* A redrive takes the order's key back: duplicates wait for it, then get
 * its outcome instead of the dead letter's, also after a restart. */
static void test_redrive_takes_the_key_back(void **state) {
  (void)state;
  fresh_venue(5);
  with_detail = 1;
  rig_t r;
  rig_up(&r, NULL);
  fe_submit_result_t res;
  assert_fe(submit(&r, 5, "K-5", &res), 0);
  poll_all(r.bus);
  assert_fe(submit(&r, 5, "K-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_DEAD_LETTERED);
  fail_from = 1000; /* the venue is back */
  uint64_t id = 0;
  fe_dlq_foreach(r.dlq, NULL, first_id, &id);
  assert_fe(fe_dlq_redrive(r.dlq, id, fe_bus_redrive, r.bus), 0);
  assert_fe(submit(&r, 5, "K-5", &res), FE_EINPROGRESS);
  poll_all(r.bus);
  assert_fe(submit(&r, 5, "K-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_string_equal(res.outcome.venue_order_id, "V-5");
  count_sends();
  assert_int_equal(sent_count[5], 1);
  rig_close(&r);
  with_detail = 0;

  rig_up(&r, NULL);
  assert_fe(submit(&r, 5, "K-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_string_equal(res.outcome.venue_order_id, "V-5");
  assert_int_equal(fe_dlq_count(r.dlq), 0);
  rig_close(&r);
  remove_dir();
}

/* Child: order R-5 is dead-lettered (the venue is down), the venue comes
 * back, the dead letter is redriven, the journaller writes the redriven
 * event, and the process is SIGKILLed in the venue call of the redriven
 * attempt (`when`): its intent is journaled, its outcome is not. */
static void crash_in_redrive(int when) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    rig_t r;
    fail_from = 5;
    rig_open(&r, 1, 64);
    if (r.rc != 0)
      _exit(2);
    if (submit(&r, 5, "R-5", NULL) != 0)
      _exit(3);
    poll_all(r.bus);
    uint64_t id = 0;
    if (fe_dlq_count(r.dlq) != 1 || (fe_dlq_foreach(r.dlq, NULL, first_id,
                                                    &id), id == 0))
      _exit(4);
    fail_from = 1000;
    if (fe_dlq_redrive(r.dlq, id, fe_bus_redrive, r.bus) != 0)
      _exit(5);
    while (fe_bus_poll(r.bus, 1) > 0) { /* the journaller writes it */
    }
    kill_in_send = when;
    fe_bus_poll(r.bus, 0); /* validation, execution: dies in send */
    _exit(6);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fail_msg("the child did not die in the venue call (status 0x%x)", status);
}

/* A redrive in flight at a crash: recovery re-drives it under the key it
 * took back (fe_idem_reopen), the dead letter stays out of the queue, the
 * order reaches the venue exactly once over both lives (the in-doubt hook
 * decides), and a client retry gets the redrive's outcome. */
static void redrive_crash_case(int when) {
  make_dir();
  snprintf(venue_path, sizeof venue_path, "%s/venue", dir);
  with_detail = 0;
  crash_in_redrive(when);
  count_sends();
  assert_int_equal(sent_count[5], when == KILL_AFTER ? 1 : 0);

  in_doubt_calls = 0;
  fail_from = 1000;
  with_detail = 1;
  rig_t r;
  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.events, 2);   /* the first attempt, the redrive */
  assert_int_equal(rec.finished, 1); /* the first attempt's dead letter */
  assert_int_equal(rec.redriven, 1);
  assert_int_equal(rec.in_doubt_sent, when == KILL_AFTER);
  assert_int_equal(rec.in_doubt_unsent, when == KILL_BEFORE);
  assert_int_equal(in_doubt_calls, 1);
  assert_int_equal(rec.idem_restored, 1);
  assert_int_equal(rec.dlq_restored, 0); /* redriven: not put back */
  assert_int_equal(rec.dlq_purged, 0);
  assert_int_equal(fe_dlq_count(r.dlq), 0);
  /* the recovered redrive holds the key: a retry waits for it */
  fe_submit_result_t res;
  memset(&res, 0, sizeof res);
  assert_fe(submit(&r, 5, "R-5", &res), FE_EINPROGRESS);
  poll_all(r.bus);
  count_sends();
  assert_int_equal(sent_count[5], 1); /* once, over both lives */
  fe_gateway_stats_t gs;
  fe_gateway_stats(r.gw, 0, &gs);
  assert_int_equal(gs.already_sent, when == KILL_AFTER);
  assert_int_equal(gs.sent, when == KILL_BEFORE);
  memset(&res, 0, sizeof res);
  assert_fe(submit(&r, 5, "R-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_string_equal(res.outcome.venue_order_id, "V-5");
  fe_bus_stats_t s;
  fe_bus_stats(r.bus, &s);
  assert_int_equal(s.completed, 1);
  assert_int_equal(s.dead_lettered, 0);
  assert_int_equal(fe_dlq_count(r.dlq), 0);
  rig_close(&r);

  /* third life: all settled, from the journal alone */
  with_detail = 0;
  rig_up(&r, &rec);
  assert_int_equal(rec.events, 2);
  assert_int_equal(rec.finished, 2);
  assert_int_equal(rec.redriven, 0);
  assert_int_equal(rec.dlq_restored, 0);
  assert_int_equal(fe_dlq_count(r.dlq), 0);
  memset(&res, 0, sizeof res);
  assert_fe(submit(&r, 5, "R-5", &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.status, FE_IDEM_COMPLETED);
  assert_string_equal(res.outcome.venue_order_id, "V-5");
  poll_all(r.bus);
  count_sends();
  assert_int_equal(sent_count[5], 1);
  rig_close(&r);
  remove_dir();
}

static void test_crash_in_redrive_after_send(void **state) {
  (void)state;
  redrive_crash_case(KILL_AFTER);
}

static void test_crash_in_redrive_before_send(void **state) {
  (void)state;
  redrive_crash_case(KILL_BEFORE);
}

/* A journal corrupt in the middle: the bus refuses to open, with the
 * journal's error and message; nothing is guessed. */
static void test_corrupt_journal_refused(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t r;
  rig_open(&r, 1, 4);
  assert_fe(r.rc, 0);
  for (int i = 1; i <= 20; i++) {
    char id[16];
    snprintf(id, sizeof id, "F-%d", i);
    assert_fe(submit(&r, 1 + i % 30, id, NULL), 0);
    poll_all(r.bus);
  }
  rig_close(&r);
  /* flip a byte well inside the first segment */
  char seg[200];
  snprintf(seg, sizeof seg, "%s/0000000000000001.fej", dir);
  int fd = open(seg, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, 600), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, 600), 1);
  close(fd);
  rig_open(&r, 1, 64);
  assert_int_equal(r.rc, FE_ECORRUPT);
  assert_non_null(strstr(r.d.msg, "0000000000000001.fej"));
  assert_null(r.bus);
  rig_close(&r);
  remove_dir();
}

/* A started (threaded) journaled bus in dir with an idempotency table of
 * 4096 and one stage, `handler`, on worker 0; journal and outcome stages
 * on worker 1. */
static fe_bus_t *threaded_bus(fe_fsync_t fsync, fe_producer_t producer,
                              fe_stage_fn handler, fe_idem_t **idem) {
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 4096;
  assert_fe(fe_idem_create(&ic, idem, NULL), 0);
  static fe_journal_config_t jc; /* read by the bus until destroy */
  fe_journal_config_init(&jc);
  jc.dir = dir;
  jc.fsync = fsync;
  static fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "stage";
  st.handler = handler;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 256;
  cfg.producer = producer;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.idem = *idem;
  cfg.journal = &jc;
  cfg.journal_worker = 1;
  fe_bus_t *bus;
  fe_diag_t d;
  assert_fe(fe_bus_create(&cfg, &bus, &d), 0);
  assert_fe(fe_bus_start(bus, &d), 0);
  return bus;
}

/* Threads: durable submits return once the journaller has the event. */
static void test_durable_submit_threads(void **state) {
  (void)state;
  fresh_venue(1000);
  fe_idem_t *idem;
  fe_bus_t *bus = threaded_bus(FE_FSYNC_GROUP, FE_PRODUCER_SINGLE, validate,
                               &idem);
  int js = fe_bus_stage_id(bus, "fe.journal");
  assert_true(js >= 0);
  for (int i = 0; i < 300; i++) {
    fe_order_t o = {.account = 3, .quantity = 1 + i % 7};
    snprintf(o.client_order_id, sizeof o.client_order_id, "G-%d", i);
    fe_submit_t in = {.type = FE_EV_NEW_ORDER, .flags = FE_SUBMIT_DURABLE,
                      .order = &o, .timeout_ns = FE_T_LONG_NS};
    fe_submit_result_t res;
    assert_fe(fe_bus_submit(bus, &in, &res), 0);
    fe_stage_stats_t ss;
    fe_bus_stage_stats(bus, (uint32_t)js, &ss);
    assert_true(ss.processed > res.seq);
  }
  assert_fe(fe_bus_drain(bus, FE_T_LONG_NS), 0);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, 300);
  fe_bus_destroy(bus);
  fe_idem_destroy(idem);
  remove_dir();
}

/* Two producer threads submit the same 1000 orders in bursts of 32
 * (fe_bus_submit_n) against a running journaled bus: every order runs
 * exactly once, the other thread's copy is answered as a duplicate (or in
 * progress), and the hints race with claims and completions cleanly (this
 * suite also runs under TSan). */
enum { BURST_ORDERS = 1000, BURST = 32 };
static int burst_runs[BURST_ORDERS + 1];

static fe_verdict_t count_run(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)u;
  int64_t q = ev->order.quantity;
  if (q >= 1 && q <= BURST_ORDERS)
    __atomic_fetch_add(&burst_runs[q], 1, __ATOMIC_RELAXED);
  return FE_CONTINUE;
}

typedef struct burst_arg {
  fe_bus_t *bus;
  int won, dup, other, start;
} burst_arg_t;

static void *burst_thread(void *p) {
  burst_arg_t *a = p;
  fe_order_t o[BURST];
  fe_submit_t in[BURST];
  int rc[BURST];
  for (int b = 0; b < BURST_ORDERS; b += BURST) {
    int n = BURST_ORDERS - b < BURST ? BURST_ORDERS - b : BURST;
    for (int k = 0; k < n; k++) {
      /* the two threads walk the same orders from different ends */
      int i = a->start ? BURST_ORDERS - 1 - (b + k) : b + k;
      memset(&o[k], 0, sizeof o[k]);
      o[k].account = 9;
      o[k].quantity = i + 1;
      o[k].price = FE_PRICE_SCALE;
      snprintf(o[k].client_order_id, sizeof o[k].client_order_id, "MT-%d", i);
      in[k] = (fe_submit_t){.type = FE_EV_NEW_ORDER, .order = &o[k],
                            .timeout_ns = FE_T_LONG_NS};
    }
    int won = fe_bus_submit_n(a->bus, in, (size_t)n, NULL, rc);
    a->won += won;
    for (int k = 0; k < n; k++)
      if (rc[k] == FE_EDUPLICATE || rc[k] == FE_EINPROGRESS)
        a->dup++;
      else if (rc[k] != 0)
        a->other++;
  }
  return NULL;
}

static void test_submit_bursts_two_threads(void **state) {
  (void)state;
  fresh_venue(1000);
  memset(burst_runs, 0, sizeof burst_runs);
  fe_idem_t *idem;
  fe_bus_t *bus = threaded_bus(FE_FSYNC_NONE, FE_PRODUCER_MULTI, count_run,
                               &idem);
  burst_arg_t a[2] = {{bus, 0, 0, 0, 0}, {bus, 0, 0, 0, 1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, burst_thread, &a[i]), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  assert_fe(fe_bus_drain(bus, FE_T_LONG_NS), 0);
  assert_int_equal(a[0].other + a[1].other, 0);
  assert_int_equal(a[0].won + a[1].won, BURST_ORDERS);
  assert_int_equal(a[0].dup + a[1].dup, BURST_ORDERS);
  for (int q = 1; q <= BURST_ORDERS; q++)
    if (burst_runs[q] != 1)
      fail_msg("order %d ran %d times", q - 1, burst_runs[q]);
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  assert_int_equal(s.completed, BURST_ORDERS);
  fe_bus_destroy(bus);
  fe_idem_destroy(idem);
  remove_dir();
}

/* Configuration errors specific to durability. */
static void test_config_errors(void **state) {
  (void)state;
  fe_stage_def_t st[FE_BUS_MAX_STAGES];
  char names[FE_BUS_MAX_STAGES][8];
  for (int i = 0; i < FE_BUS_MAX_STAGES; i++) {
    fe_stage_def_init(&st[i]);
    snprintf(names[i], sizeof names[i], "s%d", i);
    st[i].name = names[i];
    st[i].handler = validate;
  }
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = "/tmp/fe-durable-unused";
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.stages = st;
  cfg.n_stages = FE_BUS_MAX_STAGES - 1;
  cfg.journal = &jc;
  fe_bus_t *bus = NULL;
  fe_diag_t d;
  assert_fe(fe_bus_create(&cfg, &bus, &d), FE_ENOSTAGES);
  assert_non_null(strstr(d.msg, "journal"));
  cfg.n_stages = 2;
  cfg.journal_worker = FE_BUS_MAX_WORKERS;
  assert_fe(fe_bus_create(&cfg, &bus, &d), FE_EWORKER);
  cfg.journal_worker = 0;
  st[1].n_deps = FE_BUS_MAX_DEPS;
  for (int k = 0; k < FE_BUS_MAX_DEPS; k++)
    st[1].deps[k] = 0;
  assert_fe(fe_bus_create(&cfg, &bus, &d), FE_EDEPEND);
  assert_non_null(strstr(d.msg, "journal"));
  assert_null(bus);
  /* messages in the host's terms: a journal worker past a gap names
   * journal_worker, a stage named like the bus's own says so */
  st[1].n_deps = 0;
  cfg.journal_worker = 5;
  assert_fe(fe_bus_create(&cfg, &bus, &d), FE_EWORKER);
  assert_non_null(strstr(d.msg, "journal_worker 5"));
  assert_null(strstr(d.msg, "worker 1 runs no stage"));
  cfg.journal_worker = 0;
  st[1].name = "fe.journal";
  assert_fe(fe_bus_create(&cfg, &bus, &d), FE_ENAME);
  assert_non_null(strstr(d.msg, "bus's own"));
  assert_non_null(strstr(d.msg, "\"fe.journal\""));
  st[1].name = names[1];
  /* a journal directory that cannot be created */
  jc.dir = "/proc/fe-no-such-dir/journal";
  assert_true(fe_bus_create(&cfg, &bus, &d) < 0);
  assert_null(bus);
}

/* The journal's last record whole but damaged (a payload byte flipped
 * after a clean stop): recovery cuts it off as it does a torn tail, and
 * the bus's report names its lsn as a possible loss of an acknowledged
 * order (a torn tail does not). */
static int keep_last(const fe_journal_record_t *rec, void *user) {
  *(fe_journal_record_t *)user = *rec;
  return 0;
}

static void test_damaged_last_record_reported(void **state) {
  (void)state;
  fresh_venue(100);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "D", 3);
  poll_all(r.bus);
  rig_close(&r);
  fe_journal_record_t last;
  memset(&last, 0, sizeof last);
  assert_fe(fe_journal_scan(dir, 0, keep_last, &last, NULL, NULL), 0);
  assert_true(last.lsn > 0 && last.len > 8);
  char seg[200];
  snprintf(seg, sizeof seg, "%s/%016" PRIx64 ".fej", dir, last.segment);
  int fd = open(seg, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  off_t at = (off_t)(last.offset + FE_JOURNAL_RECORD_HEADER + 4);
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x20;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.tail_corrupt_lsn, last.lsn);
  assert_true(rec.truncated_bytes > 0);
  assert_non_null(strstr(rec.tail_corrupt_msg, "possible loss of an "
                                               "acknowledged record"));
  rig_close(&r);
  /* the next start finds a clean journal: nothing to report */
  rig_up(&r, &rec);
  assert_int_equal(rec.tail_corrupt_lsn, 0);
  assert_int_equal(rec.tail_corrupt_msg[0], '\0');
  assert_int_equal(rec.truncated_bytes, 0);
  rig_close(&r);
}

/* Without a journal a duplicate's stored outcome names the first run by
 * its ring sequence + 1: never 0, also for the bus's first event. */
static void test_outcome_ref_is_never_zero(void **state) {
  (void)state;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 64;
  fe_idem_t *idem;
  assert_fe(fe_idem_create(&ic, &idem, NULL), 0);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "validation";
  st.handler = validate;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.host_driven = 1;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.idem = idem;
  fe_bus_t *bus;
  assert_fe(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_fe(fe_bus_start(bus, NULL), 0);
  fe_order_t o = {.account = 1, .quantity = 5, .price = FE_PRICE_SCALE};
  snprintf(o.client_order_id, sizeof o.client_order_id, "FIRST");
  fe_submit_t in = {.type = FE_EV_NEW_ORDER, .order = &o};
  fe_submit_result_t res;
  assert_fe(fe_bus_submit(bus, &in, &res), 0);
  assert_int_equal(res.seq, 0);
  for (uint32_t w = 0; w < fe_bus_workers(bus); w++)
    while (fe_bus_poll(bus, w) > 0) {
    }
  assert_fe(fe_bus_submit(bus, &in, &res), FE_EDUPLICATE);
  assert_int_equal(res.outcome.ref, 1);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_idem_destroy(idem);
}

/* Restart with a dead-letter queue too small for what the journal holds:
 * the ones it refuses are counted, not silently lost. */
static void test_dead_letters_refused_on_restart_are_counted(void **state) {
  (void)state;
  fresh_venue(5);
  rig_t r;
  rig_up(&r, NULL);
  submit_orders(&r, "Q", 8);
  poll_all(r.bus);
  assert_int_equal(fe_dlq_count(r.dlq), 4); /* 5, 6, 7, 8 */
  rig_close(&r);

  rig_dlq_capacity = 2; /* REJECT, the default policy: 2 of 4 fit */
  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  rig_dlq_capacity = 0;
  assert_int_equal(rec.dlq_restored, 2);
  assert_int_equal(rec.dlq_refused, 2);
  assert_int_equal(fe_dlq_count(r.dlq), 2);
  rig_close(&r);
  remove_dir();
}

/* Recovery cannot take a recovered order's key back (the table is full):
 * fe_bus_start refuses with FE_ETABLEFULL and a message naming the order, the
 * order does not run without its duplicate protection, and a restart with
 * room runs it once. */
static void test_recovery_refuses_without_room_for_a_key(void **state) {
  (void)state;
  fresh_venue(1000);
  crash_after(0); /* 8 orders journaled, none executed */
  rig_t r;
  rig_fill_idem = 1, rig_start_may_fail = 1;
  rig_open(&r, 1, 64);
  rig_fill_idem = 0, rig_start_may_fail = 0;
  assert_fe(r.rc, 0);
  assert_fe(r.start_rc, FE_ETABLEFULL);
  assert_non_null(strstr(r.d.msg, "D-1"));
  assert_non_null(strstr(r.d.msg, "idempotency table"));
  assert_fe(fe_bus_poll(r.bus, 0), FE_ESTOPPED); /* stopped, not running */
  rig_close(&r);
  count_sends();
  for (int i = 1; i <= 8; i++)
    assert_int_equal(sent_count[i], 0);

  fe_bus_recovery_t rec;
  rig_up(&r, &rec);
  assert_int_equal(rec.redriven, 8);
  poll_all(r.bus);
  count_sends();
  for (int i = 1; i <= 8; i++)
    assert_int_equal(sent_count[i], 1);
  rig_close(&r);
  remove_dir();
}

/* A second journaled bus on a queue the first uses is refused before its
 * journal is read: its idempotency table gets nothing restored. */
static void test_shared_dlq_refused_before_replay(void **state) {
  (void)state;
  fresh_venue(1000);
  rig_t a;
  rig_up(&a, NULL);
  submit_orders(&a, "S", 4); /* finished and keyed: replay would restore */
  poll_all(a.bus);
  rig_close(&a);

  rig_up(&a, NULL); /* the journal's owner, running */
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 1024;
  fe_idem_t *idem;
  assert_fe(fe_idem_create(&ic, &idem, NULL), 0);
  /* the same directory is locked by a; a second directory with the same
   * records shows the order of the checks */
  char dir2[sizeof dir + 8];
  snprintf(dir2, sizeof dir2, "%s/b", dir);
  assert_int_equal(mkdir(dir2, 0700), 0);
  char cmd[2 * sizeof dir2 + 32];
  snprintf(cmd, sizeof cmd, "cp %s/*.fej %s/", dir, dir2);
  assert_int_equal(system(cmd), 0);
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = dir2;
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "validation";
  st.handler = validate;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64;
  cfg.host_driven = 1;
  cfg.stages = &st;
  cfg.n_stages = 1;
  cfg.idem = idem;
  cfg.dlq = a.dlq;
  cfg.journal = &jc;
  fe_bus_t *b;
  fe_diag_t d;
  assert_fe(fe_bus_create(&cfg, &b, &d), FE_ESTATE);
  assert_non_null(strstr(d.msg, "dead-letter queue"));
  fe_idem_stats_t is;
  assert_fe(fe_idem_stats(idem, &is), 0);
  assert_int_equal(is.live, 0);
  /* and with a queue of its own it recovers the same records */
  cfg.dlq = NULL;
  assert_fe(fe_bus_create(&cfg, &b, &d), 0);
  fe_bus_recovery_t rec;
  assert_fe(fe_bus_recovery(b, &rec), 0);
  assert_int_equal(rec.idem_restored, 4);
  fe_bus_destroy(b);
  fe_idem_destroy(idem);
  rig_close(&a);
  remove_dir();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_submit_is_idempotent),
      FE_T_TEST(test_default_journals_the_whole_user_area),
      FE_T_TEST(test_damaged_last_record_reported),
      FE_T_TEST(test_restart_rebuilds_the_table),
      FE_T_TEST(test_restart_keeps_host_outcome),
      FE_T_TEST(test_bad_outcome_payloads_refused),
      FE_T_TEST(test_bad_outcome_runs_refused),
      FE_T_TEST(test_event_entry_codec),
      FE_T_TEST(test_bad_event_payloads_refused),
      FE_T_TEST(test_plain_completions_are_runs),
      FE_T_TEST(test_old_formats_refused),
      FE_T_TEST(test_crash_redrives_and_never_sends_twice),
      FE_T_TEST(test_in_doubt_not_sent_is_sent_once),
      FE_T_TEST(test_dead_letters_are_rebuilt),
      FE_T_TEST(test_dead_letter_purges_survive_restart),
      FE_T_TEST(test_tool_decodes_bus_records),
      FE_T_TEST(test_submit_burst),
      FE_T_TEST(test_small_journal_splits_batches),
      FE_T_TEST(test_retire_failure_is_reported),
      FE_T_TEST(test_redrive_takes_the_key_back),
      FE_T_TEST(test_crash_in_redrive_after_send),
      FE_T_TEST(test_crash_in_redrive_before_send),
      FE_T_TEST(test_corrupt_journal_refused),
      FE_T_TEST(test_durable_submit_threads),
      FE_T_TEST(test_submit_bursts_two_threads),
      FE_T_TEST(test_config_errors),
      FE_T_TEST(test_outcome_ref_is_never_zero),
      FE_T_TEST(test_dead_letters_refused_on_restart_are_counted),
      FE_T_TEST(test_recovery_refuses_without_room_for_a_key),
      FE_T_TEST(test_shared_dlq_refused_before_replay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
