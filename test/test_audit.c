/*
 * The audit trail: hand-off and writer, chain and checkpoints across
 * restarts and rotations, tamper detection (each kind at the right
 * frame), back-pressure policies, a SIGKILL mid-write, and the fe-audit
 * tool.
 */
#include "helpers.h"

#include <fcntl.h>
#include <sodium.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "audit_impl.h"

extern char **environ;

typedef struct fx {
  char root[64];
  char dir[96];
  uint8_t pk[FE_AUDIT_PUBKEY], sk[FE_AUDIT_SECKEY];
} fx_t;

static int setup(void **state) {
  fe_t_watchdog(state);
  fx_t *f = calloc(1, sizeof *f);
  strcpy(f->root, "/tmp/fe-audit-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->dir, sizeof f->dir, "%s/trail", f->root);
  assert_true(sodium_init() >= 0);
  crypto_sign_keypair(f->pk, f->sk);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->root);
  if (system(cmd) != 0) {
  }
  free(f);
  return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static fe_audit_config_t config(fx_t *f) {
  fe_audit_config_t c;
  fe_audit_config_init(&c);
  c.dir = f->dir;
  c.sign_key = f->sk;
  c.fsync = FE_FSYNC_NONE;
  c.checkpoint_every = 4;
  c.checkpoint_ns = 0;
  c.idle_poll_ns = 200 * FE_T_US;
  return c;
}

static fe_audit_rec_t rec_n(uint64_t i) {
  fe_audit_rec_t r;
  memset(&r, 0, sizeof r);
  r.event_id = 1000 + i;
  r.account = 7 + i % 3;
  r.stage = (uint32_t)(i % 4);
  r.decision = i % 2 ? FE_AUDIT_REJECTED : FE_AUDIT_ACCEPTED;
  r.reason = (uint32_t)(i % 2 ? 5 : 0);
  r.trace_id[0] = (uint8_t)i;
  r.span_id[7] = 0xab;
  snprintf(r.client_order_id, sizeof r.client_order_id, "ord-%" PRIu64, i);
  snprintf(r.detail, sizeof r.detail, "record %" PRIu64, i);
  return r;
}

/* Writes n records (numbered from first) and closes the trail. */
static void write_trail(fe_audit_config_t c, uint64_t first, uint64_t n) {
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  for (uint64_t i = first; i < first + n; i++) {
    fe_audit_rec_t r = rec_n(i);
    assert_fe_ok(fe_audit_append(a, &r));
  }
  fe_audit_destroy(a);
}

typedef struct seen {
  uint64_t frames, recs, ckpts, opened, lost_count;
  fe_audit_rec_t last;
  uint64_t ids[512];
  uint64_t n_ids;
} seen_t;

static int collect(const fe_audit_rec_t *r, void *user) {
  seen_t *s = user;
  s->frames++;
  if (r->type == 2)
    s->ckpts++;
  else if (r->decision == FE_AUDIT_OPENED)
    s->opened++;
  else if (r->decision == FE_AUDIT_LOST)
    s->lost_count += r->reason;
  else {
    s->recs++;
    if (s->n_ids < 512)
      s->ids[s->n_ids++] = r->event_id;
  }
  s->last = *r;
  return 0;
}

static int verify(fx_t *f, const uint8_t *pk, seen_t *s,
                  fe_audit_verify_result_t *res) {
  memset(s, 0, sizeof *s);
  return fe_audit_verify_dir(f->dir, pk, collect, s, res);
}

/* ------------------------------------------------------------ basics */

static void test_config_and_args(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c;
  fe_audit_config_init(&c);
  fe_audit_config_init(NULL);
  assert_int_equal(c.fsync, FE_FSYNC_INTERVAL);
  assert_int_equal(c.capacity, 16384);
  fe_audit_t *a = (fe_audit_t *)1;
  fe_diag_t d = {0};
  assert_fe(fe_audit_create(NULL, &a, &d), FE_EINVAL);
  assert_null(a);
  assert_fe(fe_audit_create(&c, NULL, NULL), FE_EINVAL);
  assert_fe(fe_audit_create(&c, &a, &d), FE_EINVAL); /* no dir */
  assert_non_null(strstr(d.msg, "dir"));
  c.dir = f->dir;
  c.capacity = 3;
  assert_fe(fe_audit_create(&c, &a, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "capacity"));
  c.capacity = 8;
  c.segment_bytes = 100;
  assert_fe(fe_audit_create(&c, &a, &d), FE_ERANGE);
  c.segment_bytes = 1 << 20;
  c.fsync = (fe_fsync_t)9;
  assert_fe(fe_audit_create(&c, &a, &d), FE_EINVAL);
  c.fsync = FE_FSYNC_GROUP;
  c.dir = "/proc/no/such/dir/x";
  assert_fe(fe_audit_create(&c, &a, &d), FE_EIO);
  c.dir = f->dir;
  assert_fe_ok(fe_audit_create(&c, &a, &d));
  fe_audit_rec_t r = rec_n(1);
  assert_fe(fe_audit_append(NULL, &r), FE_EINVAL);
  assert_fe(fe_audit_append(a, NULL), FE_EINVAL);
  r.decision = 0;
  assert_fe(fe_audit_append(a, &r), FE_EINVAL);
  r.decision = FE_AUDIT_LOST; /* the writer's own */
  assert_fe(fe_audit_append(a, &r), FE_EINVAL);
  r.decision = 999;
  assert_fe(fe_audit_append(a, &r), FE_EINVAL);
  assert_fe(fe_audit_event(a, NULL, 1, 0, FE_AUDIT_ACCEPTED, 0, NULL), FE_EINVAL);
  assert_fe(fe_audit_note(NULL, FE_AUDIT_NOTE, 0, "x"), FE_EINVAL);
  assert_fe(fe_audit_flush(NULL, 0), FE_EINVAL);
  assert_fe(fe_audit_stats(a, NULL), FE_EINVAL);
  assert_fe(fe_audit_stats(NULL, &(fe_audit_stats_t){0}), FE_EINVAL);
  fe_audit_verify_result_t res;
  assert_fe(fe_audit_verify_dir(NULL, NULL, NULL, NULL, &res), FE_EINVAL);
  assert_fe(fe_audit_verify_dir(f->dir, NULL, NULL, NULL, NULL), FE_EINVAL);
  fe_audit_destroy(a);
  fe_audit_destroy(NULL);
  fe_audit_verifier_init(NULL, NULL);
  assert_fe(fe_audit_verifier_feed(NULL, "x", (const uint8_t *)"", 0, NULL, NULL), FE_EINVAL);
  fe_audit_verifier_t v;
  fe_audit_verifier_init(&v, NULL);
  assert_fe(fe_audit_verifier_feed(&v, "x", NULL, 5, NULL, NULL), FE_EINVAL);
  assert_fe(fe_audit_verifier_end(NULL), FE_EINVAL);
  assert_int_equal(fe_audit_verifier_end(&v), FE_AUDIT_BAD_FORMAT); /* nothing fed */
  assert_int_equal(fe_audit_verifier_feed(&v, NULL, NULL, 0, NULL, NULL), 1);
  fe_audit_breaker_hook("x", FE_BREAKER_CLOSED, FE_BREAKER_OPEN, NULL); /* no trail */
  fe_audit_kill_hook(FE_TRADING_ACTIVE, NULL, NULL);
  fe_audit_trading_hook(1, 0, FE_TRADING_ACTIVE, FE_TRADING_HALTED, NULL, NULL);
  assert_string_equal(fe_audit_decision_name(FE_AUDIT_DEAD_LETTERED), "dead_lettered");
  assert_string_equal(fe_audit_decision_name(0), "?");
  assert_int_equal(fe_audit_decision_parse("kill_switch"), FE_AUDIT_KILL_SWITCH);
  assert_int_equal(fe_audit_decision_parse("nope"), 0);
  assert_int_equal(fe_audit_decision_parse(NULL), 0);
  assert_string_equal(fe_audit_bad_name(FE_AUDIT_BAD_REORDERED), "reordered");
  assert_string_equal(fe_audit_bad_name(-3), "?");
}

static void test_roundtrip(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  for (uint64_t i = 0; i < 10; i++) {
    fe_audit_rec_t r = rec_n(i);
    assert_fe_ok(fe_audit_append(a, &r));
  }
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.order.account = 4242;
  strcpy(ev.order.client_order_id, "C-77");
  ev.trace.trace_id[15] = 0x9c;
  ev.trace.span_id[0] = 0x11;
  assert_fe_ok(fe_audit_event(a, &ev, 555, 2, FE_AUDIT_AMENDED, 0, "qty 100->50"));
  assert_fe_ok(fe_audit_flush(a, FE_T_LONG_NS));
  fe_audit_stats_t st;
  assert_fe_ok(fe_audit_stats(a, &st));
  assert_int_equal(st.appended, 11);
  assert_int_equal(st.written, 11);
  assert_int_equal(st.depth, 0);
  assert_int_equal(st.lost, 0);
  assert_true(st.checkpoints >= 3);
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, f->pk, &s, &res), 0); /* readable while open */
  assert_int_equal(s.recs, 11);
  assert_int_equal(s.opened, 1);
  assert_int_equal(s.last.type, 2); /* the flush signed it */
  fe_audit_destroy(a);
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  for (uint64_t i = 0; i < 10; i++)
    assert_int_equal(s.ids[i], 1000 + i);
  assert_int_equal(s.ids[10], 555);
  assert_int_equal(res.bad, FE_AUDIT_OK);
  assert_int_equal(res.last_signed_seq, s.frames);
}

static int find_amended(const fe_audit_rec_t *r, void *user) {
  if (r->decision == FE_AUDIT_AMENDED) {
    *(fe_audit_rec_t *)user = *r;
    return 7;
  }
  return 0;
}

static void test_event_fields(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.order.account = 4242;
  strcpy(ev.order.client_order_id, "C-77");
  ev.trace.trace_id[15] = 0x9c;
  ev.trace.span_id[0] = 0x11;
  static const char long_detail[] =
      "qty 100->50, a detail longer than the field can hold so that it must "
      "be cut at eighty bytes exactly: 0123456789";
  assert_fe_ok(fe_audit_event(a, &ev, 555, 2, FE_AUDIT_AMENDED, 3, long_detail));
  fe_audit_destroy(a);
  fe_audit_rec_t r;
  fe_audit_verify_result_t res;
  assert_int_equal(fe_audit_verify_dir(f->dir, f->pk, find_amended, &r, &res), 7);
  assert_int_equal(r.account, 4242);
  assert_int_equal(r.event_id, 555);
  assert_int_equal(r.stage, 2);
  assert_int_equal(r.reason, 3);
  assert_memory_equal(r.client_order_id, "C-77\0", 5);
  assert_int_equal(r.trace_id[15], 0x9c);
  assert_int_equal(r.span_id[0], 0x11);
  assert_memory_equal(r.detail, "qty 100->50", 11);
  assert_memory_equal(r.detail, long_detail, FE_AUDIT_DETAIL_MAX); /* cut */
  assert_true(r.wall_ns > UINT64_C(1600000000) * FE_T_SEC); /* stamped */
}

/* The chain continues across restarts and segment rotations. */
static void test_restart_and_rotation(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  c.segment_bytes = FE_AUDIT_SEGMENT_MIN; /* 15 frames a segment */
  write_trail(c, 0, 20);
  write_trail(c, 20, 20);
  c.sign_key = NULL; /* a restart without the key: chained, not signed */
  write_trail(c, 40, 5);
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, NULL, &s, &res), 0);
  assert_int_equal(s.recs, 45);
  assert_int_equal(s.opened, 3);
  for (uint64_t i = 0; i < 45; i++)
    assert_int_equal(s.ids[i], 1000 + i);
  char(*names)[FEA_NAME_LEN + 1];
  size_t n;
  assert_fe_ok(fe__audit_list(f->dir, &names, &n));
  free(names);
  assert_true(n >= 4);
  assert_true(res.last_signed_seq < s.frames); /* the unsigned tail */
  /* A pinned key verifies the signed part. */
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
}

/* ---------------------------------------------------------- tampering */

static char *seg_path(fx_t *f, int i) {
  char(*names)[FEA_NAME_LEN + 1];
  size_t n;
  assert_fe_ok(fe__audit_list(f->dir, &names, &n));
  assert_true(i < (int)n);
  char *p = malloc(256);
  snprintf(p, 256, "%s/%s", f->dir, names[i]);
  free(names);
  return p;
}

static uint8_t *slurp(const char *p, size_t *len) {
  FILE *fp = fopen(p, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  *len = (size_t)ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *b = malloc(*len + FE_AUDIT_FRAME);
  assert_int_equal(fread(b, 1, *len, fp), *len);
  fclose(fp);
  return b;
}

static void spit(const char *p, const uint8_t *b, size_t len) {
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(b, 1, len, fp), len);
  fclose(fp);
}

#define FR(i) ((size_t)(i + 1) * FE_AUDIT_FRAME) /* offset of frame i */

/* A fresh one-segment trail: frame 0 OPENED, records, checkpoints every
 * 4 records.  Returns its bytes. */
static uint8_t *tamper_base(fx_t *f, char **path, size_t *len) {
  fe_audit_config_t c = config(f);
  write_trail(c, 0, 12);
  *path = seg_path(f, 0);
  return slurp(*path, len);
}

/* Recomputes every frame's h of the one-segment trail b, as a forger
 * would after editing it. */
static void rechain(uint8_t *b, size_t len) {
  uint8_t h[FE_AUDIT_HASH];
  memcpy(h, b + 32, FE_AUDIT_HASH); /* the header's */
  for (size_t i = 0; FR(i) + FE_AUDIT_FRAME <= len; i++) {
    fe__audit_chain(b + FR(i) + FEA_OFF_HASH, h, b + FR(i));
    memcpy(h, b + FR(i) + FEA_OFF_HASH, FE_AUDIT_HASH);
  }
}

static void expect_bad(fx_t *f, const uint8_t *pk, int bad, uint64_t seq) {
  seen_t s;
  fe_audit_verify_result_t res;
  int rc = verify(f, pk, &s, &res);
  if (rc != 1 || res.bad != bad || res.seq != seq)
    fail_msg("expected %s at seq %" PRIu64 ", got rc %d %s at seq %" PRIu64 ": %s",
             fe_audit_bad_name(bad), seq, rc, fe_audit_bad_name(res.bad), res.seq,
             res.why);
  assert_int_equal(res.frames, seq - 1); /* everything before verified */
}

static void test_tamper_flip(void **state) {
  fx_t *f = *state;
  char *p;
  size_t len;
  uint8_t *b = tamper_base(f, &p, &len);
  uint8_t *o = malloc(len);
  memcpy(o, b, len);
  /* A byte in the detail, the account, the stored hash: each "edited". */
  const size_t offs[] = {FR(5) + 120, FR(5) + 33, FR(5) + FEA_OFF_HASH + 3};
  for (size_t k = 0; k < 3; k++) {
    memcpy(b, o, len);
    b[offs[k]] ^= 0x20;
    spit(p, b, len);
    expect_bad(f, f->pk, FE_AUDIT_BAD_EDITED, 6);
  }
  /* The sequence field itself. */
  memcpy(b, o, len);
  b[FR(5) + 8] ^= 0x40;
  spit(p, b, len);
  expect_bad(f, f->pk, FE_AUDIT_BAD_EDITED, 6);
  /* The last frame. */
  memcpy(b, o, len);
  b[len - 200] ^= 1;
  spit(p, b, len);
  expect_bad(f, f->pk, FE_AUDIT_BAD_EDITED, len / FE_AUDIT_FRAME - 1);
  free(o);
  free(b);
  free(p);
}

static void test_tamper_delete_insert_swap(void **state) {
  fx_t *f = *state;
  char *p;
  size_t len;
  uint8_t *b = tamper_base(f, &p, &len);
  uint8_t *t = malloc(len + FE_AUDIT_FRAME);
  /* Delete frame 3 (seq 4). */
  memcpy(t, b, FR(3));
  memcpy(t + FR(3), b + FR(4), len - FR(4));
  spit(p, t, len - FE_AUDIT_FRAME);
  expect_bad(f, f->pk, FE_AUDIT_BAD_DELETED, 4);
  /* Insert a copy of frame 1 before frame 4. */
  memcpy(t, b, FR(4));
  memcpy(t + FR(4), b + FR(1), FE_AUDIT_FRAME);
  memcpy(t + FR(5), b + FR(4), len - FR(4));
  spit(p, t, len + FE_AUDIT_FRAME);
  expect_bad(f, f->pk, FE_AUDIT_BAD_INSERTED, 5);
  /* Insert a forged frame with the right sequence. */
  memcpy(t + FR(4), b + FR(4), FE_AUDIT_FRAME);
  t[FR(4) + 120] ^= 1;
  spit(p, t, len + FE_AUDIT_FRAME);
  expect_bad(f, f->pk, FE_AUDIT_BAD_INSERTED, 5);
  /* Swap frames 6 and 7. */
  memcpy(t, b, len);
  memcpy(t + FR(6), b + FR(7), FE_AUDIT_FRAME);
  memcpy(t + FR(7), b + FR(6), FE_AUDIT_FRAME);
  spit(p, t, len);
  expect_bad(f, f->pk, FE_AUDIT_BAD_REORDERED, 7);
  /* Truncated: a torn last frame; a torn header. */
  spit(p, b, len - 100);
  expect_bad(f, f->pk, FE_AUDIT_BAD_TRUNCATED, len / FE_AUDIT_FRAME - 1);
  spit(p, b, 100);
  expect_bad(f, f->pk, FE_AUDIT_BAD_TRUNCATED, 1);
  /* Cut at a frame boundary after the last checkpoint: indistinguishable
   * from a crash (the header says so); before it, the signed part stands. */
  spit(p, b, len);
  free(t);
  free(b);
  free(p);
}

/* Deleting a whole segment breaks the chain at the next one. */
static void test_tamper_segment(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  c.segment_bytes = FE_AUDIT_SEGMENT_MIN;
  write_trail(c, 0, 40);
  char *p1 = seg_path(f, 1);
  size_t len;
  uint8_t *b = slurp(p1, &len);
  uint64_t first = fea_get64(b + 16);
  assert_int_equal(unlink(p1), 0);
  expect_bad(f, NULL, FE_AUDIT_BAD_DELETED, first);
  spit(p1, b, len);
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  /* The first segment gone: seq 1 is missing. */
  char *p0 = seg_path(f, 0);
  assert_int_equal(unlink(p0), 0);
  expect_bad(f, NULL, FE_AUDIT_BAD_DELETED, 1);
  free(p0);
  free(p1);
  free(b);
}

/* A checkpoint re-signed with another key, and the chain recomputed after
 * it: caught by signature with a pinned key, and as a key change without. */
static void test_tamper_forged_checkpoint(void **state) {
  fx_t *f = *state;
  char *p;
  size_t len;
  uint8_t *b = tamper_base(f, &p, &len);
  size_t nf = len / FE_AUDIT_FRAME - 1;
  /* The second checkpoint frame. */
  size_t ck = 0;
  int seen_ck = 0;
  for (size_t i = 0; i < nf; i++)
    if (fea_get32(b + FR(i)) == FEA_CKPT && ++seen_ck == 2) {
      ck = i;
      break;
    }
  assert_true(ck > 0);
  uint8_t pk2[32], sk2[64];
  crypto_sign_keypair(pk2, sk2);
  /* Edit the record before it, re-chain everything and re-sign the
   * checkpoints with the forger's key. */
  b[FR(ck - 1) + 120] ^= 1;
  for (size_t i = ck; i < nf; i++) {
    uint8_t *fr = b + FR(i);
    if (fea_get32(fr) != FEA_CKPT)
      continue;
    rechain(b, len); /* the signature covers the h before it */
    uint8_t m[FEA_CK_MSG];
    fea_ck_msg(m, fea_get64(fr + 8), fr - FE_AUDIT_FRAME + FEA_OFF_HASH,
               fea_get64(fr + 16));
    crypto_sign_detached(fr + FEA_OFF_SIG, NULL, m, sizeof m, sk2);
    memcpy(fr + FEA_OFF_KEY, pk2, 32);
  }
  rechain(b, len);
  spit(p, b, len);
  expect_bad(f, f->pk, FE_AUDIT_BAD_SIGNATURE, ck + 1);
  expect_bad(f, NULL, FE_AUDIT_BAD_SIGNATURE, ck + 1);
  /* The forger's own key pinned: the first (genuine) checkpoint fails. */
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, pk2, &s, &res), 1);
  assert_int_equal(res.bad, FE_AUDIT_BAD_SIGNATURE);
  assert_true(res.seq < ck + 1);
  /* A signature byte flipped, chain recomputed: bad signature. */
  free(b);
  teardown(state);
  setup(state);
  f = *state;
  free(p);
  b = tamper_base(f, &p, &len);
  for (size_t i = 0; i < nf; i++)
    if (fea_get32(b + FR(i)) == FEA_CKPT) {
      ck = i;
      break;
    }
  b[FR(ck) + FEA_OFF_SIG + 5] ^= 1;
  rechain(b, len);
  spit(p, b, len);
  expect_bad(f, (*(fx_t **)state)->pk, FE_AUDIT_BAD_SIGNATURE, ck + 1);
  free(b);
  free(p);
}

/* An empty directory, an unrelated one, a file with the right name and
 * the wrong contents: never "ok". */
static void test_not_a_trail(void **state) {
  fx_t *f = *state;
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(verify(f, NULL, &s, &res), 1);
  assert_int_equal(res.bad, FE_AUDIT_BAD_FORMAT);
  char p[160];
  snprintf(p, sizeof p, "%s/notes.txt", f->dir);
  spit(p, (const uint8_t *)"hello\n", 6);
  assert_int_equal(verify(f, NULL, &s, &res), 1);
  assert_int_equal(res.bad, FE_AUDIT_BAD_FORMAT);
  snprintf(p, sizeof p, "%s/audit-0000000000000001.fea", f->dir);
  uint8_t junk[1024];
  memset(junk, 'x', sizeof junk);
  spit(p, junk, sizeof junk);
  assert_int_equal(verify(f, NULL, &s, &res), 1);
  assert_int_equal(res.bad, FE_AUDIT_BAD_FORMAT);
  /* And the writer refuses to continue it. */
  fe_audit_config_t c = config(f);
  fe_audit_t *a;
  fe_diag_t d = {0};
  assert_fe(fe_audit_create(&c, &a, &d), FE_ECORRUPT);
  /* A missing directory is an I/O error. */
  assert_int_equal(fe_audit_verify_dir("/nonexistent/dir", NULL, NULL, NULL, &res),
                   FE_EIO);
  /* A pinned key on an unsigned trail. */
  unlink(p);
  c.sign_key = NULL;
  write_trail(c, 0, 3);
  assert_int_equal(verify(f, f->pk, &s, &res), 1);
  assert_int_equal(res.bad, FE_AUDIT_BAD_UNSIGNED);
}

/* ------------------------------------------------------- back-pressure */

typedef struct gate {
  atomic_int held, release;
  atomic_int ckpts, alerts;
  atomic_llong alert_n;
} gate_t;

/* Holds the writer inside its first checkpoint until released. */
static void gate_ck(const fe_audit_checkpoint_t *ck, void *user) {
  gate_t *g = user;
  (void)ck;
  atomic_fetch_add(&g->ckpts, 1);
  atomic_store(&g->held, 1);
  while (!atomic_load(&g->release))
    fe_t_sleep_ns(50 * FE_T_US);
}

static void gate_alert(fe_audit_alert_t what, int64_t n, void *user) {
  gate_t *g = user;
  if (what == FE_AUDIT_ALERT_LOST) {
    atomic_fetch_add(&g->alerts, 1);
    atomic_fetch_add(&g->alert_n, n);
  }
}

static void *release_later(void *arg) {
  gate_t *g = arg;
  fe_t_sleep_ms(30);
  atomic_store(&g->release, 1);
  return NULL;
}

static void backpressure(fx_t *f, fe_audit_full_t policy) {
  gate_t g = {0};
  fe_audit_config_t c = config(f);
  c.capacity = 4;
  c.full = policy;
  c.block_ns = 20 * FE_T_MS;
  c.checkpoint_every = 1; /* the OPENED record's checkpoint holds it */
  c.on_checkpoint = gate_ck;
  c.on_alert = gate_alert;
  c.user = &g;
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  int ok;
  FE_T_WAIT_UNTIL(ok, atomic_load(&g.held), FE_T_LONG_MS);
  assert_true(ok);
  fe_audit_rec_t r = rec_n(1);
  for (int i = 0; i < 4; i++)
    assert_fe_ok(fe_audit_append(a, &r));
  uint64_t t0 = fe_t_now_ns();
  assert_fe(fe_audit_append(a, &r),
            policy == FE_AUDIT_FULL_COUNT ? FE_EFULL : FE_ETIMEDOUT);
  uint64_t took = fe_t_now_ns() - t0;
  if (policy == FE_AUDIT_FULL_BLOCK)
    assert_true(took >= 20 * FE_T_MS);
  else
    assert_true(took < 20 * FE_T_MS);
  assert_fe(fe_audit_append(a, &r),
            policy == FE_AUDIT_FULL_COUNT ? FE_EFULL : FE_ETIMEDOUT);
  fe_audit_stats_t st;
  assert_fe_ok(fe_audit_stats(a, &st));
  assert_int_equal(st.lost, 2);
  assert_int_equal(st.blocked, policy == FE_AUDIT_FULL_BLOCK ? 2 : 0);
  if (policy == FE_AUDIT_FULL_BLOCK) {
    /* Room comes while it waits: it gets in. */
    pthread_t th;
    c.block_ns = 0;
    pthread_create(&th, NULL, release_later, &g);
    /* block_ns is the config's: a long wait this time */
    fe_audit_destroy(a); /* releases after 30 ms; destroy waits for it */
    pthread_join(th, NULL);
  } else {
    atomic_store(&g.release, 1);
    assert_fe_ok(fe_audit_flush(a, FE_T_LONG_NS));
    fe_audit_destroy(a);
  }
  assert_int_equal(atomic_load(&g.alerts), 1);
  assert_int_equal(atomic_load(&g.alert_n), 2);
  /* The loss is in the signed trail. */
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  assert_int_equal(s.lost_count, 2);
  assert_int_equal(s.recs, 4);
}

static void test_full_count(void **state) { backpressure(*state, FE_AUDIT_FULL_COUNT); }
static void test_full_block(void **state) { backpressure(*state, FE_AUDIT_FULL_BLOCK); }

/* A blocked append gets in when the writer frees room within block_ns. */
static void test_block_then_room(void **state) {
  fx_t *f = *state;
  gate_t g = {0};
  fe_audit_config_t c = config(f);
  c.capacity = 2;
  c.block_ns = 10 * FE_T_SEC;
  c.checkpoint_every = 1;
  c.on_checkpoint = gate_ck;
  c.user = &g;
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  int ok;
  FE_T_WAIT_UNTIL(ok, atomic_load(&g.held), FE_T_LONG_MS);
  assert_true(ok);
  fe_audit_rec_t r = rec_n(1);
  assert_fe_ok(fe_audit_append(a, &r));
  assert_fe_ok(fe_audit_append(a, &r));
  pthread_t th;
  pthread_create(&th, NULL, release_later, &g);
  assert_fe_ok(fe_audit_append(a, &r)); /* waited for the writer */
  pthread_join(th, NULL);
  fe_audit_stats_t st;
  assert_fe_ok(fe_audit_stats(a, &st));
  assert_int_equal(st.blocked, 1);
  assert_int_equal(st.lost, 0);
  fe_audit_destroy(a);
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  assert_int_equal(s.recs, 3);
}

/* Many producers at once: every record lands exactly once. */
typedef struct prod {
  fe_audit_t *a;
  int id;
} prod_t;

static void *producer(void *arg) {
  prod_t *p = arg;
  for (uint64_t i = 0; i < 2000; i++) {
    fe_audit_rec_t r = rec_n(i);
    r.event_id = (uint64_t)p->id << 32 | i;
    if (fe_audit_append(p->a, &r) != 0)
      abort();
  }
  return NULL;
}

typedef struct tally {
  uint64_t next[4];
  int bad;
} tally_t;

static int check_order(const fe_audit_rec_t *r, void *user) {
  tally_t *t = user;
  if (r->type != 1 || r->decision == FE_AUDIT_OPENED)
    return 0;
  uint32_t id = (uint32_t)(r->event_id >> 32);
  if (id >= 4 || (r->event_id & 0xffffffffu) != t->next[id]++)
    t->bad = 1;
  return 0;
}

static void test_producers(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  c.capacity = 64;
  c.block_ns = FE_T_LONG_NS;
  c.checkpoint_every = 100;
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  pthread_t th[4];
  prod_t p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = (prod_t){a, i};
    pthread_create(&th[i], NULL, producer, &p[i]);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  fe_audit_destroy(a);
  tally_t t = {0};
  fe_audit_verify_result_t res;
  assert_int_equal(fe_audit_verify_dir(f->dir, f->pk, check_order, &t, &res), 0);
  assert_int_equal(t.bad, 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(t.next[i], 2000);
}

/* Checkpoints by time, with an injected wall clock in them. */
static uint64_t fake_wall(void *u) { return *(uint64_t *)u; }

static void count_ck(const fe_audit_checkpoint_t *ck, void *user) {
  gate_t *g = user;
  if (ck->wall_ns == UINT64_C(1700000000000000000))
    atomic_fetch_add(&g->ckpts, 1);
}

static void test_checkpoint_by_time(void **state) {
  fx_t *f = *state;
  gate_t g = {0};
  uint64_t now = UINT64_C(1700000000000000000);
  fe_audit_config_t c = config(f);
  c.checkpoint_every = 0;
  c.checkpoint_ns = 5 * FE_T_MS;
  c.on_checkpoint = count_ck;
  c.user = &g;
  c.wall_ns = fake_wall;
  c.clock_user = &now;
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  int ok;
  FE_T_WAIT_UNTIL(ok, atomic_load(&g.ckpts) >= 1, FE_T_LONG_MS); /* OPENED's */
  assert_true(ok);
  fe_audit_rec_t r = rec_n(1);
  assert_fe_ok(fe_audit_append(a, &r));
  FE_T_WAIT_UNTIL(ok, atomic_load(&g.ckpts) >= 2, FE_T_LONG_MS);
  assert_true(ok);
  fe_audit_destroy(a);
  seen_t s;
  fe_audit_verify_result_t res;
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  assert_int_equal(s.last.wall_ns, now);
}

/* -------------------------------------------------------------- crash */

static void test_sigkill_mid_write(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  c.segment_bytes = 64 * FE_AUDIT_FRAME;
  c.checkpoint_every = 50;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fe_audit_t *a;
    if (fe_audit_create(&c, &a, NULL) != 0)
      _exit(3);
    for (uint64_t i = 0;; i++) {
      fe_audit_rec_t r = rec_n(i);
      r.event_id = i;
      fe_audit_append(a, &r);
    }
  }
  /* Kill it once it has written a few segments. */
  int ok;
  FE_T_WAIT_UNTIL(ok, ({
                    char(*names)[FEA_NAME_LEN + 1];
                    size_t n = 0;
                    if (fe__audit_list(f->dir, &names, &n) == 0)
                      free(names);
                    n >= 4;
                  }),
                  FE_T_LONG_MS);
  assert_true(ok);
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  seen_t s;
  fe_audit_verify_result_t res;
  int rc = verify(f, f->pk, &s, &res);
  /* Whole frames all verify; at most a torn one at the very end. */
  if (rc != 0) {
    assert_int_equal(rc, 1);
    assert_int_equal(res.bad, FE_AUDIT_BAD_TRUNCATED);
    char *last = seg_path(f, 0);
    (void)last;
    free(last);
  }
  uint64_t whole = s.frames;
  assert_true(whole > 100);
  /* Reopening cuts the torn tail and continues the chain. */
  write_trail(c, 0, 3);
  assert_int_equal(verify(f, f->pk, &s, &res), 0);
  assert_true(s.frames >= whole + 4);
}

/* A disk that refuses writes (a file size limit): the writer alerts and
 * counts, flush reports FE_EIO, destroy does not hang, and what reached
 * the disk verifies. */
static atomic_int io_alerts;
static void io_alert(fe_audit_alert_t what, int64_t n, void *user) {
  (void)n, (void)user;
  if (what == FE_AUDIT_ALERT_IO)
    atomic_fetch_add(&io_alerts, 1);
}

static void test_io_error(void **state) {
  fx_t *f = *state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG */
    struct rlimit rl = {64 * FE_AUDIT_FRAME, 64 * FE_AUDIT_FRAME};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
      _exit(10);
    fe_audit_config_t c = config(f);
    c.on_alert = io_alert;
    c.block_ns = 50 * FE_T_MS;
    fe_audit_t *a;
    if (fe_audit_create(&c, &a, NULL) != 0)
      _exit(11);
    for (uint64_t i = 0; i < 200; i++) {
      fe_audit_rec_t r = rec_n(i);
      fe_audit_append(a, &r); /* may time out once the queue is stuck */
    }
    int rc = fe_audit_flush(a, 5 * FE_T_SEC);
    fe_audit_stats_t st;
    fe_audit_stats(a, &st);
    fe_audit_destroy(a);
    if (rc != FE_EIO)
      _exit(12);
    if (st.io_errors == 0 || atomic_load(&io_alerts) == 0)
      _exit(13);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  /* A failed write is cut back to the last whole one: what is on disk is
   * a clean prefix of the chain (here the header alone, as the first
   * batch was already past the limit). */
  seen_t s;
  fe_audit_verify_result_t res;
  int rc = verify(f, NULL, &s, &res);
  if (rc != 0)
    fail_msg("%s at seq %" PRIu64 ": %s", fe_audit_bad_name(res.bad), res.seq, res.why);
  assert_true(s.frames < 64);
}

/* --------------------------------------------------------------- bus */

static fe_verdict_t risk(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)user;
  if (ev->order.quantity % 2) {
    ctx->reason = 5;
    return FE_REJECT;
  }
  return FE_CONTINUE;
}

static fe_verdict_t exec_stage(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)user;
  if (ev->order.quantity % 4 == 0) {
    ctx->reason = 9;
    return FE_FAIL;
  }
  return FE_CONTINUE;
}

static fe_event_t dead_copy;
static void on_dead(const fe_event_t *ev, const fe_dead_letter_t *info, void *user) {
  (void)info, (void)user;
  dead_copy = *ev;
}

typedef struct bus_seen {
  uint64_t by_qty[16][FE_AUDIT_DECISION_MAX + 1];
  uint32_t stage_of[16][FE_AUDIT_DECISION_MAX + 1];
  uint32_t reason_of[16][FE_AUDIT_DECISION_MAX + 1];
  int bad;
} bus_seen_t;

static int bus_rec(const fe_audit_rec_t *r, void *user) {
  bus_seen_t *b = user;
  unsigned q;
  if (r->type != 1 || sscanf(r->client_order_id, "Q-%u", &q) != 1 || q >= 16)
    return 0;
  b->by_qty[q][r->decision]++;
  b->stage_of[q][r->decision] = r->stage;
  b->reason_of[q][r->decision] = r->reason;
  if (r->account != 100 + q || r->trace_id[0] != q || r->span_id[7] != 0x5a)
    b->bad++;
  return 0;
}

/* Every verdict of a bus with cfg.audit is one record, with the event's
 * identity and trace context. */
static void test_bus_verdicts(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  fe_t_def_t d;
  fe_t_def_init(&d, 64);
  uint32_t r = fe_t_add_stage(&d, "risk", risk, NULL, 0);
  uint32_t x = fe_t_add_stage(&d, "exec", exec_stage, NULL, 0);
  fe_t_add_dep(&d, x, r);
  d.cfg.host_driven = 1;
  d.cfg.audit = a;
  d.cfg.on_dead_letter = on_dead;
  fe_bus_t *bus = fe_t_create(&d);
  assert_fe_ok(fe_bus_start(bus, NULL));
  for (unsigned q = 1; q <= 8; q++) {
    fe_event_t *ev;
    assert_fe_ok(fe_bus_claim(bus, &ev, FE_T_LONG_NS));
    ev->order.quantity = q;
    ev->order.account = 100 + q;
    snprintf(ev->order.client_order_id, sizeof ev->order.client_order_id, "Q-%u", q);
    memset(&ev->trace, 0, sizeof ev->trace);
    ev->trace.trace_id[0] = (uint8_t)q;
    ev->trace.span_id[7] = 0x5a;
    assert_fe_ok(fe_bus_publish(bus, ev));
  }
  while (fe_bus_poll(bus, 0) > 0) {
  }
  /* Redrive the last dead letter (qty 8) with a changed quantity. */
  fe_event_t again = dead_copy;
  assert_int_equal(again.order.quantity, 8);
  again.order.quantity = 10;
  snprintf(again.order.client_order_id, sizeof again.order.client_order_id, "Q-10");
  again.order.account = 110;
  again.trace.trace_id[0] = 10;
  assert_fe_ok(fe_bus_redrive(&again, NULL, 0, 1, bus));
  while (fe_bus_poll(bus, 0) > 0) {
  }
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
  fe_audit_destroy(a);
  bus_seen_t b;
  memset(&b, 0, sizeof b);
  fe_audit_verify_result_t res;
  assert_int_equal(fe_audit_verify_dir(f->dir, f->pk, bus_rec, &b, &res), 0);
  assert_int_equal(b.bad, 0);
  for (unsigned q = 1; q <= 8; q++) {
    uint64_t total = 0;
    for (int k = 0; k <= FE_AUDIT_DECISION_MAX; k++)
      total += b.by_qty[q][k];
    assert_int_equal(total, 1); /* exactly one verdict each */
    if (q % 2) {
      assert_int_equal(b.by_qty[q][FE_AUDIT_REJECTED], 1);
      assert_int_equal(b.stage_of[q][FE_AUDIT_REJECTED], r);
      assert_int_equal(b.reason_of[q][FE_AUDIT_REJECTED], 5);
    } else if (q % 4 == 0) {
      assert_int_equal(b.by_qty[q][FE_AUDIT_DEAD_LETTERED], 1);
      assert_int_equal(b.stage_of[q][FE_AUDIT_DEAD_LETTERED], x);
      assert_int_equal(b.reason_of[q][FE_AUDIT_DEAD_LETTERED], 9);
    } else {
      assert_int_equal(b.by_qty[q][FE_AUDIT_ACCEPTED], 1);
      assert_int_equal(b.stage_of[q][FE_AUDIT_ACCEPTED], FE_AUDIT_ALL_STAGES);
    }
  }
  assert_int_equal(b.by_qty[10][FE_AUDIT_REDRIVEN], 1);
  assert_int_equal(b.by_qty[10][FE_AUDIT_ACCEPTED], 1);
}

typedef struct notes {
  int n[FE_AUDIT_DECISION_MAX + 1];
  char detail[FE_AUDIT_DECISION_MAX + 1][FE_AUDIT_DETAIL_MAX + 1];
  uint64_t account[FE_AUDIT_DECISION_MAX + 1];
  int saga_logged;
} notes_t;

static int note_rec(const fe_audit_rec_t *r, void *user) {
  notes_t *n = user;
  if (r->type != 1)
    return 0;
  n->n[r->decision]++;
  memcpy(n->detail[r->decision], r->detail, FE_AUDIT_DETAIL_MAX);
  n->account[r->decision] = r->account;
  return 0;
}

static void next_log(const void *rec, uint32_t len, void *user) {
  (void)rec, (void)len;
  ((notes_t *)user)->saga_logged++;
}

/* The adapters for the breaker's, trading's and saga's hooks, and notes. */
static void test_hooks(void **state) {
  fx_t *f = *state;
  fe_audit_config_t c = config(f);
  fe_audit_t *a;
  assert_fe_ok(fe_audit_create(&c, &a, NULL));
  fe_trading_config_t tc;
  fe_trading_config_init(&tc);
  tc.on_change = fe_audit_trading_hook;
  tc.change_user = a;
  tc.on_kill = fe_audit_kill_hook;
  tc.kill_user = a;
  fe_trading_t *t;
  assert_fe_ok(fe_trading_create(&tc, &t, NULL));
  assert_fe_ok(fe_trading_set_account(t, 42, FE_TRADING_REDUCING, "margin call"));
  assert_fe_ok(fe_trading_kill(t, "operator"));
  fe_trading_destroy(t);
  fe_breaker_config_t bc;
  fe_breaker_config_init(&bc);
  bc.name = "venue1";
  bc.on_state = fe_audit_breaker_hook;
  bc.user = a;
  fe_breaker_t *br;
  assert_fe_ok(fe_breaker_create(&bc, &br, NULL));
  assert_fe_ok(fe_breaker_force_open(br));
  fe_breaker_destroy(br);
  notes_t n;
  memset(&n, 0, sizeof n);
  fe_audit_saga_tap_t tap = {a, next_log, &n};
  fe_saga_rec_t rec;
  memset(&rec, 0, sizeof rec);
  rec.magic = FE_SAGA_REC_MAGIC;
  rec.type = FE_SAGA_REC_END;
  rec.state = FE_SAGA_COMPENSATED;
  rec.saga_id = 77;
  rec.step = 2;
  fe_audit_saga_log(&rec, sizeof rec, &tap);
  rec.type = FE_SAGA_REC_HEARTBEAT; /* not audited, still passed on */
  fe_audit_saga_log(&rec, sizeof rec, &tap);
  rec.type = FE_SAGA_REC_STEP;
  rec.state = FE_SAGA_RUNNING;
  fe_audit_saga_log(&rec, sizeof rec, &tap);
  fe_audit_saga_log(&rec, 3, &tap); /* too short: passed on only */
  fe_audit_saga_log(&rec, sizeof rec, NULL);
  assert_int_equal(n.saga_logged, 4);
  assert_fe_ok(fe_audit_note(a, FE_AUDIT_CONFIG, 0, "risk limits v7 fingerprint ab12"));
  fe_audit_destroy(a);
  fe_audit_verify_result_t res;
  assert_int_equal(fe_audit_verify_dir(f->dir, f->pk, note_rec, &n, &res), 0);
  assert_int_equal(n.n[FE_AUDIT_TRADING_STATE], 2); /* account, then global */
  assert_non_null(strstr(n.detail[FE_AUDIT_TRADING_STATE], "global"));
  assert_int_equal(n.n[FE_AUDIT_KILL_SWITCH], 1);
  assert_non_null(strstr(n.detail[FE_AUDIT_KILL_SWITCH], "operator"));
  assert_int_equal(n.n[FE_AUDIT_BREAKER], 1);
  assert_non_null(strstr(n.detail[FE_AUDIT_BREAKER], "venue1: "));
  assert_int_equal(n.n[FE_AUDIT_COMPENSATED], 1);
  assert_int_equal(n.n[FE_AUDIT_SAGA], 1);
  assert_non_null(strstr(n.detail[FE_AUDIT_SAGA], "step=2"));
  assert_int_equal(n.n[FE_AUDIT_CONFIG], 1);
}

/* -------------------------------------------------------------- tool */

#ifdef FE_AUDIT_TOOL
static int run_tool(fx_t *f, const char *const *args, char **out, char **err) {
  char po[160], pe[160];
  snprintf(po, sizeof po, "%s/out", f->root);
  snprintf(pe, sizeof pe, "%s/err", f->root);
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)FE_AUDIT_TOOL;
  for (; args[n - 1] != NULL && n < 15; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, po, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawn(&pid, FE_AUDIT_TOOL, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    fail_msg("cannot run %s: %s", FE_AUDIT_TOOL, strerror(rc));
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  size_t len;
  uint8_t *b = slurp(po, &len);
  b[len] = 0;
  *out = (char *)b;
  b = slurp(pe, &len);
  b[len] = 0;
  *err = (char *)b;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}
#endif

static void test_tool(void **state) {
#ifndef FE_AUDIT_TOOL
  (void)state;
  skip();
#else
  fx_t *f = *state;
  char *out, *err, sk[160], pk[160], pk2[160];
  snprintf(sk, sizeof sk, "%s/sk", f->root);
  snprintf(pk, sizeof pk, "%s/pk", f->root);
  snprintf(pk2, sizeof pk2, "%s/pk2", f->root);
  assert_int_equal(run_tool(f, (const char *[]){"keygen", sk, pk, NULL}, &out, &err), 0);
  free(out), free(err);
  struct stat st;
  assert_int_equal(stat(sk, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* keygen refuses to overwrite. */
  assert_int_equal(run_tool(f, (const char *[]){"keygen", sk, pk2, NULL}, &out, &err), 2);
  free(out), free(err);
  /* Load the generated secret key the way a host would. */
  FILE *fp = fopen(sk, "r");
  char hex[200];
  assert_non_null(fgets(hex, sizeof hex, fp));
  fclose(fp);
  size_t kl;
  assert_int_equal(sodium_hex2bin(f->sk, 64, hex, 128, NULL, &kl, NULL), 0);
  /* Empty directory, unrelated directory: never ok. */
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(run_tool(f, (const char *[]){"verify", f->dir, NULL}, &out, &err), 1);
  assert_non_null(strstr(err, "no audit segment"));
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"verify", "/etc", NULL}, &out, &err), 1);
  free(out), free(err);
  fe_audit_config_t c = config(f);
  write_trail(c, 0, 12);
  assert_int_equal(
      run_tool(f, (const char *[]){"verify", "--pubkey", pk, f->dir, NULL}, &out, &err), 0);
  assert_non_null(strstr(out, "ok: "));
  free(out), free(err);
  /* search by account / decision / clordid / time. */
  assert_int_equal(run_tool(f, (const char *[]){"search", "--account", "8", f->dir, NULL},
                            &out, &err), 0);
  assert_int_equal(lines(out), 4); /* i % 3 == 1 for i < 12 */
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"search", "--decision", "rejected",
                                                "--account", "7", f->dir, NULL},
                            &out, &err), 0);
  assert_int_equal(lines(out), 2); /* odd and i % 3 == 0: 3, 9 */
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"search", "--clordid", "ord-11", "--json",
                                                f->dir, NULL}, &out, &err), 0);
  assert_int_equal(lines(out), 1);
  assert_non_null(strstr(out, "\"client_order_id\":\"ord-11\""));
  assert_non_null(strstr(out, "\"span_id\":\"00000000000000ab\""));
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"search", "--from", "0", "--to", "1",
                                                f->dir, NULL}, &out, &err), 0);
  assert_int_equal(lines(out), 0);
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"dump", "--json", f->dir, NULL}, &out, &err),
                   0);
  assert_true(lines(out) >= 13);
  for (char *l = out; *l; l = strchr(l, '\n') + 1)
    assert_true(l[0] == '{' && strchr(l, '\n')[-1] == '}');
  free(out), free(err);
  /* Tampered: named. */
  char *p = seg_path(f, 0);
  size_t len;
  uint8_t *b = slurp(p, &len);
  b[FR(5) + 120] ^= 1;
  spit(p, b, len);
  assert_int_equal(run_tool(f, (const char *[]){"verify", f->dir, NULL}, &out, &err), 1);
  assert_non_null(strstr(err, "BAD (edited) at seq 6"));
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"dump", f->dir, NULL}, &out, &err), 1);
  assert_int_equal(lines(out), 5);
  free(out), free(err);
  /* Usage. */
  assert_int_equal(run_tool(f, (const char *[]){"verify", NULL}, &out, &err), 64);
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"search", "--decision", "x", f->dir, NULL},
                            &out, &err), 64);
  free(out), free(err);
  assert_int_equal(run_tool(f, (const char *[]){"verify", "--pubkey", "/nonexistent",
                                                f->dir, NULL}, &out, &err), 2);
  free(out), free(err);
  free(b);
  free(p);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_config_and_args),
      T(test_roundtrip),
      T(test_event_fields),
      T(test_restart_and_rotation),
      T(test_tamper_flip),
      T(test_tamper_delete_insert_swap),
      T(test_tamper_segment),
      T(test_tamper_forged_checkpoint),
      T(test_not_a_trail),
      T(test_full_count),
      T(test_full_block),
      T(test_block_then_room),
      T(test_producers),
      T(test_checkpoint_by_time),
      T(test_sigkill_mid_write),
      T(test_io_error),
      T(test_bus_verdicts),
      T(test_hooks),
      T(test_tool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
