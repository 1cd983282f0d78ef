/* Journal: round trips, lsn continuity, rotation, group commit and the
 * three fsync policies, wait_durable, retire with a fake clock, three
 * appending threads, every recovery rule (torn tails at every offset,
 * zero-filled tails, bad magic/version/header checksum, corruption in the
 * middle, segment gaps, lsn discontinuities, short and tmp segments), a
 * bit-flip fuzz loop, a failed write (RLIMIT_FSIZE), scan, the operator's
 * cut of a hole (fe_journal_truncate_corrupt), and the fe-journal tool run
 * as a child process.  Every test works in its own
 * mkdtemp directory under /tmp, removed by the teardown; the journal's
 * clock is a fake except in the threaded test. */
#include "helpers.h"

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "finevent/journal.h"

#define HDR FE_JOURNAL_SEGMENT_HEADER
#define T0 (UINT64_C(1700000000) * FE_T_SEC)

/* ------------------------------------------------------------ fixtures */

typedef struct fx {
  char root[64];   /* mkdtemp: removed by the teardown */
  char dir[96];    /* root/j: the journal, created by the first open */
  uint64_t clock;  /* the fake wall clock (atomic accesses) */
  fe_journal_config_t cfg;
} fx_t;

static uint64_t fake_now(void *user) {
  return __atomic_load_n((uint64_t *)user, __ATOMIC_RELAXED);
}

static void set_clock(fx_t *f, uint64_t ns) {
  __atomic_store_n(&f->clock, ns, __ATOMIC_RELAXED);
}

static int jsetup(void **state) {
  fe_t_watchdog(state);
  fx_t *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->root, sizeof f->root, "/tmp/fe_journal_XXXXXX");
  if (mkdtemp(f->root) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->dir, sizeof f->dir, "%s/j", f->root);
  f->clock = T0;
  fe_journal_config_init(&f->cfg);
  f->cfg.dir = f->dir;
  f->cfg.now_ns = fake_now;
  f->cfg.clock_user = &f->clock;
  *state = f;
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int jteardown(void **state) {
  fx_t *f = *state;
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

#define JTEST(fn) cmocka_unit_test_setup_teardown(fn, jsetup, jteardown)

/* Deterministic payload bytes for key. */
static void fill_payload(uint8_t *buf, uint64_t key, uint32_t len) {
  fe_t_rng_t r;
  fe_t_rng_seed(&r, key * 7919 + 1);
  for (uint32_t i = 0; i < len; i++)
    buf[i] = (uint8_t)fe_t_rng_next(&r);
}

/* Records seen by a replay or scan, copied. */
typedef struct rec {
  uint64_t lsn, wall, seg, off;
  uint16_t type;
  uint32_t len;
  uint8_t *data;
} rec_t;

typedef struct coll {
  rec_t *v;
  size_t n, cap;
  size_t abort_at;  /* > 0: return abort_rc at the abort_at-th record */
  int abort_rc;
  int misaligned;
} coll_t;

static int collect(const fe_journal_record_t *r, void *user) {
  coll_t *c = user;
  if (((uintptr_t)r->data & 7u) != 0 || r->data == NULL)
    c->misaligned++;
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->v = realloc(c->v, c->cap * sizeof *c->v);
    if (c->v == NULL)
      abort();
  }
  rec_t *e = &c->v[c->n++];
  e->lsn = r->lsn;
  e->wall = r->wall_ns;
  e->seg = r->segment;
  e->off = r->offset;
  e->type = r->type;
  e->len = r->len;
  e->data = malloc(r->len ? r->len : 1);
  if (e->data == NULL)
    abort();
  memcpy(e->data, r->data, r->len);
  if (c->abort_at != 0 && c->n == c->abort_at)
    return c->abort_rc;
  return 0;
}

static void coll_free(coll_t *c) {
  for (size_t i = 0; i < c->n; i++)
    free(c->v[i].data);
  free(c->v);
  memset(c, 0, sizeof *c);
}

/* Opens f->cfg or fails the test with the diagnostic. */
static fe_journal_t *jopen(fx_t *f, coll_t *c, fe_journal_report_t *rep) {
  fe_journal_t *j = NULL;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_open(&f->cfg, c ? collect : NULL, c, &j, rep, &d);
  if (rc != 0)
    fail_msg("fe_journal_open: %s (%d): %s", fe_err_name(rc), rc, d.msg);
  assert_non_null(j);
  return j;
}

/* Open expected to fail with `want`; returns the diag (and closes a
 * journal that opened by mistake). */
static fe_diag_t jopen_fails(fx_t *f, int want, coll_t *c,
                             fe_journal_report_t *rep) {
  fe_journal_t *j = NULL;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_open(&f->cfg, c ? collect : NULL, c, &j, rep, &d);
  if (rc == 0)
    fe_journal_close(j);
  assert_fe(rc, want);
  assert_null(j);
  assert_int_equal(d.code, want);
  assert_true(d.msg[0] != '\0');
  return d;
}

static void assert_msg_has(const fe_diag_t *d, const char *needle) {
  if (strstr(d->msg, needle) == NULL)
    fail_msg("diag \"%s\" does not mention \"%s\"", d->msg, needle);
}

/* Appends a record whose payload is fill_payload(lsn-to-be, len). */
static uint64_t append_key(fe_journal_t *j, uint16_t type, uint64_t key,
                           uint32_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  assert_non_null(buf);
  fill_payload(buf, key, len);
  uint64_t lsn = 0;
  assert_fe_ok(fe_journal_append(j, type, buf, len, &lsn));
  free(buf);
  return lsn;
}

static int payload_ok(const rec_t *r, uint64_t key, uint32_t len) {
  if (r->len != len)
    return 0;
  uint8_t *want = malloc(len ? len : 1);
  fill_payload(want, key, len);
  int ok = memcmp(want, r->data, len) == 0;
  free(want);
  return ok;
}

static fe_journal_stats_t jstats(fe_journal_t *j) {
  fe_journal_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_journal_stats(j, &s));
  return s;
}

/* ----------------------------------------------------------- files */

static void seg_path(const fx_t *f, char *buf, size_t cap, uint64_t index) {
  snprintf(buf, cap, "%s/%016" PRIx64 ".fej", f->dir, index);
}

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    fail_msg("cannot open %s: %s", path, strerror(errno));
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  *len = (size_t)n;
  return b;
}

static void write_all(const char *path, const uint8_t *b, size_t len) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL)
    fail_msg("cannot write %s: %s", path, strerror(errno));
  assert_int_equal(fwrite(b, 1, len, fp), len);
  fclose(fp);
}

static int64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int64_t seg_size(const fx_t *f, uint64_t index) {
  char p[160];
  seg_path(f, p, sizeof p, index);
  return file_size(p);
}

/* Applies fn to byte `off` of segment `index`. */
static void poke(const fx_t *f, uint64_t index, size_t off, uint8_t xor_mask) {
  char p[160];
  seg_path(f, p, sizeof p, index);
  size_t len;
  uint8_t *b = read_all(p, &len);
  assert_true(off < len);
  b[off] ^= xor_mask;
  write_all(p, b, len);
  free(b);
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the first lsn in segment `index`'s header, checksum fixed. */
static void set_first_lsn(const fx_t *f, uint64_t index, uint64_t lsn) {
  char p[160];
  seg_path(f, p, sizeof p, index);
  size_t len;
  uint8_t *b = read_all(p, &len);
  put64(b + 24, lsn);
  put64(b + 56, XXH3_64bits(b, 56));
  write_all(p, b, len);
  free(b);
}

static int count_segments(const fx_t *f) {
  DIR *d = opendir(f->dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strlen(e->d_name) == 20 && strcmp(e->d_name + 16, ".fej") == 0;
  closedir(d);
  return n;
}

/* A journal of n records, record i (lsn i) of length len_of(i), type
 * EVENT or OUTCOME, the clock advancing 1 s per record; commits every
 * `every` records; closed. */
static uint32_t len_std(uint64_t i) { return (uint32_t)((i * 37) % 300); }

static void build(fx_t *f, uint64_t n, uint32_t (*len_of)(uint64_t),
                  uint64_t every) {
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 1; i <= n; i++) {
    set_clock(f, T0 + i * FE_T_SEC);
    uint64_t lsn = append_key(j, i % 2 ? FE_JREC_EVENT : FE_JREC_OUTCOME, i,
                              len_of(i));
    assert_int_equal(lsn, i);
    if (i % every == 0)
      assert_fe_ok(fe_journal_commit(j));
  }
  assert_fe_ok(fe_journal_close(j));
}

/* Opens, expects exactly records 1..n as build() wrote them. */
static void expect_records(fx_t *f, uint64_t n, uint32_t (*len_of)(uint64_t)) {
  coll_t c = {0};
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, &c, &rep);
  assert_int_equal(c.n, n);
  assert_int_equal(rep.records, n);
  assert_int_equal(rep.next_lsn, n + 1);
  for (uint64_t i = 1; i <= n; i++) {
    rec_t *r = &c.v[i - 1];
    assert_int_equal(r->lsn, i);
    assert_true(payload_ok(r, i, len_of(i)));
  }
  assert_int_equal(c.misaligned, 0);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
}

/* ------------------------------------------------------------- basics */

static void test_defaults_and_config(void **state) {
  fx_t *f = *state;
  fe_journal_config_t c;
  fe_journal_config_init(&c);
  assert_null(c.dir);
  assert_int_equal(c.segment_bytes, UINT64_C(64) << 20);
  assert_int_equal(c.fsync, FE_FSYNC_GROUP);
  assert_int_equal(c.fsync_interval_ns, 10 * FE_T_MS);
  assert_int_equal(c.buffer_bytes, 1u << 20);
  assert_int_equal(c.retention_ns, 24 * 3600 * FE_T_SEC);
  assert_int_equal(c.read_only, 0);
  assert_null(c.now_ns);

  fe_diag_t d;
  assert_fe(fe_journal_config_check(NULL, &d), FE_EINVAL);
  assert_fe(fe_journal_config_check(&c, &d), FE_EINVAL);
  assert_msg_has(&d, "dir");
  c.dir = "";
  assert_fe(fe_journal_config_check(&c, &d), FE_EINVAL);
  c.dir = f->dir;
  assert_fe_ok(fe_journal_config_check(&c, NULL));
  c.segment_bytes = FE_JOURNAL_SEGMENT_MIN - 1;
  assert_fe(fe_journal_config_check(&c, &d), FE_ERANGE);
  assert_msg_has(&d, "segment_bytes 4095");
  c.segment_bytes = FE_JOURNAL_SEGMENT_MAX + 1;
  assert_fe(fe_journal_config_check(&c, &d), FE_ERANGE);
  c.segment_bytes = FE_JOURNAL_SEGMENT_MIN;
  c.buffer_bytes = FE_JOURNAL_BUFFER_MIN - 1;
  assert_fe(fe_journal_config_check(&c, &d), FE_ERANGE);
  assert_msg_has(&d, "buffer_bytes");
  c.buffer_bytes = FE_JOURNAL_BUFFER_MAX + 1;
  assert_fe(fe_journal_config_check(&c, &d), FE_ERANGE);
  c.buffer_bytes = FE_JOURNAL_BUFFER_MIN;
  c.fsync = (fe_fsync_t)7;
  assert_fe(fe_journal_config_check(&c, &d), FE_EINVAL);
  assert_msg_has(&d, "fsync policy 7");
  c.fsync = FE_FSYNC_NONE;
  char *longdir = malloc(5000);
  memset(longdir, 'a', 4999);
  longdir[4999] = '\0';
  c.dir = longdir;
  assert_fe(fe_journal_config_check(&c, &d), FE_ERANGE);
  free(longdir);

  /* open validates too, and touches nothing on failure */
  fe_journal_t *j = (fe_journal_t *)0x1;
  f->cfg.buffer_bytes = 1;
  assert_fe(fe_journal_open(&f->cfg, NULL, NULL, &j, NULL, &d), FE_ERANGE);
  assert_ptr_equal(j, (fe_journal_t *)0x1);
  assert_int_equal(file_size(f->dir), -1);
  f->cfg.buffer_bytes = FE_JOURNAL_BUFFER_MIN;
  assert_fe(fe_journal_open(&f->cfg, NULL, NULL, NULL, NULL, &d), FE_EINVAL);
  assert_fe(fe_journal_open(NULL, NULL, NULL, &j, NULL, &d), FE_EINVAL);
}

static void test_type_names(void **state) {
  (void)state;
  assert_string_equal(fe_journal_type_name(0), "INVALID");
  assert_string_equal(fe_journal_type_name(FE_JREC_EVENT), "EVENT");
  assert_string_equal(fe_journal_type_name(FE_JREC_OUTCOME), "OUTCOME");
  assert_string_equal(fe_journal_type_name(FE_JREC_INTENT), "INTENT");
  assert_string_equal(fe_journal_type_name(FE_JREC_DEAD_LETTER), "DEAD_LETTER");
  assert_string_equal(fe_journal_type_name(FE_JREC_SAGA), "SAGA");
  assert_string_equal(fe_journal_type_name(FE_JREC_CHECKPOINT), "CHECKPOINT");
  assert_string_equal(fe_journal_type_name(7), "RESERVED");
  assert_string_equal(fe_journal_type_name(0x7fff), "RESERVED");
  assert_string_equal(fe_journal_type_name(FE_JREC_HOST), "HOST");
  assert_string_equal(fe_journal_type_name(0xffff), "HOST");
}

static void test_null_args(void **state) {
  (void)state;
  fe_journal_stats_t s;
  assert_fe_ok(fe_journal_close(NULL));
  assert_fe(fe_journal_append(NULL, 1, "x", 1, NULL), FE_EINVAL);
  assert_fe(fe_journal_commit(NULL), FE_EINVAL);
  assert_fe(fe_journal_tick(NULL), FE_EINVAL);
  assert_fe(fe_journal_sync(NULL), FE_EINVAL);
  assert_fe(fe_journal_wait_durable(NULL, 1, 0), FE_EINVAL);
  assert_fe(fe_journal_retire(NULL, 1, NULL), FE_EINVAL);
  assert_fe(fe_journal_stats(NULL, &s), FE_EINVAL);
  assert_int_equal(fe_journal_written_lsn(NULL), 0);
  assert_int_equal(fe_journal_durable_lsn(NULL), 0);
  assert_int_equal(fe_journal_max_record(NULL), 0);
}

/* Every size class, both record kinds, every field of the record. */
static void test_round_trip(void **state) {
  fx_t *f = *state;
  f->cfg.segment_bytes = 1 << 20;
  f->cfg.buffer_bytes = 64 << 10;
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, NULL, &rep);
  assert_int_equal(rep.records, 0);
  assert_int_equal(rep.next_lsn, 1);
  assert_int_equal(file_size(f->dir) > 0, 1); /* created, one level */
  uint32_t max = fe_journal_max_record(j);
  assert_int_equal(max, (64u << 10) - FE_JOURNAL_RECORD_HEADER);
  const uint32_t sizes[] = {0, 1, 7, 8, 9, 23, 24, 25, 31, 32, 33, 100,
                            255, 1000, 4000, 4096, 30000, max};
  const size_t n = sizeof sizes / sizeof sizes[0];
  uint64_t off = HDR;
  uint64_t offs[sizeof sizes / sizeof sizes[0]];
  for (size_t i = 0; i < n; i++) {
    set_clock(f, T0 + i * 1000 + 5);
    uint16_t type = i % 3 == 0 ? FE_JREC_HOST + 1 : FE_JREC_INTENT;
    uint64_t lsn = append_key(j, type, i + 1, sizes[i]);
    assert_int_equal(lsn, i + 1);
    offs[i] = off;
    off += FE_JOURNAL_RECORD_HEADER + ((sizes[i] + 7u) & ~7u);
  }
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(seg_size(f, 1), (int64_t)off);

  coll_t c = {0};
  j = jopen(f, &c, &rep);
  assert_int_equal(c.n, n);
  assert_int_equal(c.misaligned, 0);
  for (size_t i = 0; i < n; i++) {
    rec_t *r = &c.v[i];
    assert_int_equal(r->lsn, i + 1);
    assert_int_equal(r->type, i % 3 == 0 ? FE_JREC_HOST + 1 : FE_JREC_INTENT);
    assert_int_equal(r->wall, T0 + i * 1000 + 5);
    assert_int_equal(r->seg, 1);
    assert_int_equal(r->off, offs[i]);
    assert_true(payload_ok(r, i + 1, sizes[i]));
  }
  assert_int_equal(rep.records, n);
  assert_int_equal(rep.segments, 1);
  assert_int_equal(rep.first_segment, 1);
  assert_int_equal(rep.last_segment, 1);
  assert_int_equal(rep.first_lsn, 1);
  assert_int_equal(rep.last_lsn, n);
  assert_int_equal(rep.next_lsn, n + 1);
  assert_int_equal(rep.bytes, off);
  assert_int_equal(rep.torn, 0);
  assert_int_equal(rep.short_segment, 0);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
}

static void test_append_invalid(void **state) {
  fx_t *f = *state;
  f->cfg.buffer_bytes = 8192;
  fe_journal_t *j = jopen(f, NULL, NULL);
  uint8_t big[8192] = {0};
  uint64_t lsn = 99;
  assert_fe(fe_journal_append(j, 0, big, 1, &lsn), FE_EINVAL);
  assert_fe(fe_journal_append(j, 1, NULL, 1, &lsn), FE_EINVAL);
  uint32_t max = fe_journal_max_record(j);
  assert_int_equal(max, 8192 - 32);
  assert_fe(fe_journal_append(j, 1, big, max + 1, &lsn), FE_ERANGE);
  assert_int_equal(lsn, 99); /* untouched on failure */
  assert_fe_ok(fe_journal_append(j, 1, NULL, 0, &lsn));
  assert_int_equal(lsn, 1); /* the failures took no lsn */
  assert_fe_ok(fe_journal_append(j, 0xffff, big, max, &lsn));
  assert_int_equal(lsn, 2);
  assert_fe_ok(fe_journal_close(j));

  /* a segment smaller than the buffer bounds the record too */
  f->cfg.segment_bytes = 4096;
  f->cfg.buffer_bytes = 8192;
  j = jopen(f, NULL, NULL);
  assert_int_equal(fe_journal_max_record(j), 4096 - 64 - 32);
  assert_fe(fe_journal_append(j, 1, big, 4096 - 64 - 32 + 1, NULL), FE_ERANGE);
  assert_fe_ok(fe_journal_append(j, 1, big, 4096 - 64 - 32, &lsn));
  assert_int_equal(lsn, 3);
  assert_fe_ok(fe_journal_close(j));
  coll_t c = {0};
  j = jopen(f, &c, NULL);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.v[0].len, 0);
  assert_int_equal(c.v[1].len, 8192 - 32);
  assert_int_equal(c.v[1].type, 0xffff);
  assert_int_equal(c.v[2].len, 4096 - 64 - 32);
  assert_int_equal(c.v[2].seg, 2); /* did not fit segment 1 */
  assert_int_equal(c.v[2].off, HDR);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
}

static void test_lsn_continuity(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 1; i <= 10; i++)
    assert_int_equal(append_key(j, FE_JREC_EVENT, i, 40), i);
  assert_fe_ok(fe_journal_close(j));

  fe_journal_report_t rep;
  coll_t c = {0};
  j = jopen(f, &c, &rep);
  assert_int_equal(c.n, 10);
  assert_int_equal(rep.next_lsn, 11);
  assert_int_equal(fe_journal_written_lsn(j), 10);
  assert_int_equal(fe_journal_durable_lsn(j), 10);
  assert_int_equal(jstats(j).next_lsn, 11);
  for (uint64_t i = 11; i <= 15; i++)
    assert_int_equal(append_key(j, FE_JREC_SAGA, i, 40), i);
  assert_fe_ok(fe_journal_close(j));
  coll_free(&c);

  j = jopen(f, &c, &rep);
  assert_int_equal(c.n, 15);
  for (uint64_t i = 1; i <= 15; i++) {
    assert_int_equal(c.v[i - 1].lsn, i);
    assert_int_equal(c.v[i - 1].type, i <= 10 ? FE_JREC_EVENT : FE_JREC_SAGA);
    assert_true(payload_ok(&c.v[i - 1], i, 40));
  }
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
}

/* ----------------------------------------------- rotation and groups */

/* 4 KiB segments, 500-byte records (536-byte frames): 7 per segment. */
static uint32_t len_500(uint64_t i) {
  (void)i;
  return 500;
}

static uint32_t len_1000(uint64_t i) {
  (void)i;
  return 1000;
}

static void test_rotation(void **state) {
  fx_t *f = *state;
  f->cfg.segment_bytes = 4096;
  f->cfg.fsync = FE_FSYNC_NONE;
  build(f, 50, len_500, 3);
  assert_int_equal(count_segments(f), 8); /* ceil(50 / 7) */
  for (uint64_t s = 1; s <= 8; s++) {
    int64_t size = seg_size(f, s);
    assert_true(size <= 4096);
    assert_int_equal(size, HDR + (s < 8 ? 7 : 1) * 536);
  }
  coll_t c = {0};
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, &c, &rep);
  assert_int_equal(c.n, 50);
  for (uint64_t i = 1; i <= 50; i++) {
    assert_int_equal(c.v[i - 1].seg, (i - 1) / 7 + 1);
    assert_int_equal(c.v[i - 1].off, HDR + ((i - 1) % 7) * 536);
    assert_true(payload_ok(&c.v[i - 1], i, 500));
  }
  assert_int_equal(rep.segments, 8);
  assert_int_equal(rep.last_segment, 8);
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.segments, 8);
  assert_int_equal(s.first_segment, 1);
  assert_int_equal(s.active_segment, 8);
  assert_int_equal(s.rotations, 0);
  /* one uncommitted group crossing a segment boundary: the append that
   * opens segment 9 commits segment 8's part first */
  for (uint64_t i = 51; i <= 60; i++)
    assert_int_equal(append_key(j, FE_JREC_EVENT, i, 500), i);
  s = jstats(j);
  assert_int_equal(s.rotations, 0);
  assert_int_equal(s.full_flushes, 1);
  assert_int_equal(s.writes, 1);
  assert_int_equal(fe_journal_written_lsn(j), 56); /* segment 8 is full */
  assert_fe_ok(fe_journal_commit(j));
  s = jstats(j);
  assert_int_equal(s.rotations, 1);
  assert_int_equal(s.writes, 2);
  assert_int_equal(s.active_segment, 9);
  assert_int_equal(seg_size(f, 9), HDR + 4 * 536);
  assert_int_equal(fe_journal_written_lsn(j), 60);
  assert_fe_ok(fe_journal_close(j));
  coll_free(&c);
  expect_records(f, 60, len_500);
}

static void test_buffer_full_flush(void **state) {
  fx_t *f = *state;
  f->cfg.buffer_bytes = 4096;
  f->cfg.fsync = FE_FSYNC_GROUP;
  fe_journal_t *j = jopen(f, NULL, NULL);
  /* 1000-byte records, 1032-byte frames: 3 per 4 KiB group */
  for (uint64_t i = 1; i <= 3; i++)
    append_key(j, FE_JREC_EVENT, i, 1000);
  assert_int_equal(fe_journal_written_lsn(j), 0);
  append_key(j, FE_JREC_EVENT, 4, 1000); /* the group is full: written */
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.full_flushes, 1);
  assert_int_equal(s.writes, 1);
  assert_int_equal(s.fsyncs, 1); /* GROUP: every write */
  assert_int_equal(fe_journal_written_lsn(j), 3);
  assert_int_equal(fe_journal_durable_lsn(j), 3);
  assert_int_equal(s.appends, 4);
  assert_int_equal(s.append_bytes, 4 * 1032);
  assert_int_equal(s.write_bytes, 3 * 1032);
  assert_fe_ok(fe_journal_close(j));
  expect_records(f, 4, len_1000);
}

/* --------------------------------------------------- fsync policies */

static void test_fsync_group(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_GROUP;
  fe_journal_t *j = jopen(f, NULL, NULL);
  fe_journal_stats_t s0 = jstats(j);
  for (uint64_t i = 1; i <= 3; i++)
    append_key(j, FE_JREC_EVENT, i, 64);
  assert_int_equal(fe_journal_written_lsn(j), 0);
  assert_int_equal(fe_journal_durable_lsn(j), 0);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_written_lsn(j), 3);
  assert_int_equal(fe_journal_durable_lsn(j), 3);
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.fsyncs - s0.fsyncs, 1);
  assert_int_equal(s.writes - s0.writes, 1);
  /* nothing buffered: no write, no fsync */
  assert_fe_ok(fe_journal_commit(j));
  assert_fe_ok(fe_journal_tick(j));
  assert_fe_ok(fe_journal_sync(j));
  s = jstats(j);
  assert_int_equal(s.fsyncs - s0.fsyncs, 1);
  assert_int_equal(s.writes - s0.writes, 1);
  for (int g = 0; g < 5; g++) {
    append_key(j, FE_JREC_EVENT, 4 + (uint64_t)g, 64);
    assert_fe_ok(fe_journal_commit(j));
    assert_int_equal(fe_journal_durable_lsn(j), 4 + (uint64_t)g);
  }
  s = jstats(j);
  assert_int_equal(s.fsyncs - s0.fsyncs, 6);
  assert_int_equal(s.durable_lsn, 8);
  assert_int_equal(s.written_lsn, 8);
  assert_fe_ok(fe_journal_close(j));
}

static void test_fsync_interval(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_INTERVAL;
  f->cfg.fsync_interval_ns = 10 * FE_T_MS;
  set_clock(f, T0);
  fe_journal_t *j = jopen(f, NULL, NULL); /* the interval starts here */
  uint64_t f0 = jstats(j).fsyncs;
  append_key(j, FE_JREC_EVENT, 1, 64);
  set_clock(f, T0 + 1 * FE_T_MS);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_written_lsn(j), 1);
  assert_int_equal(fe_journal_durable_lsn(j), 0); /* too soon */
  set_clock(f, T0 + 9 * FE_T_MS);
  assert_fe_ok(fe_journal_tick(j));
  assert_int_equal(fe_journal_durable_lsn(j), 0);
  set_clock(f, T0 + 10 * FE_T_MS); /* "at least this long": exactly */
  assert_fe_ok(fe_journal_tick(j)); /* nothing new buffered; still fsyncs */
  assert_int_equal(fe_journal_durable_lsn(j), 1);
  assert_int_equal(jstats(j).fsyncs - f0, 1);
  assert_fe_ok(fe_journal_tick(j)); /* nothing unsynced: no fsync */
  assert_int_equal(jstats(j).fsyncs - f0, 1);

  append_key(j, FE_JREC_EVENT, 2, 64);
  set_clock(f, T0 + 15 * FE_T_MS);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_written_lsn(j), 2);
  assert_int_equal(fe_journal_durable_lsn(j), 1);
  set_clock(f, T0 + 21 * FE_T_MS);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_durable_lsn(j), 2);
  assert_int_equal(jstats(j).fsyncs - f0, 2);

  /* a clock that steps back counts as elapsed */
  append_key(j, FE_JREC_EVENT, 3, 64);
  set_clock(f, T0);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_durable_lsn(j), 3);
  assert_int_equal(jstats(j).fsyncs - f0, 3);

  /* sync forces it */
  append_key(j, FE_JREC_EVENT, 4, 64);
  assert_fe_ok(fe_journal_sync(j));
  assert_int_equal(fe_journal_durable_lsn(j), 4);
  assert_int_equal(jstats(j).fsyncs - f0, 4);
  assert_fe_ok(fe_journal_close(j));

  /* interval 0: every commit that wrote fsyncs */
  f->cfg.fsync_interval_ns = 0;
  j = jopen(f, NULL, NULL);
  f0 = jstats(j).fsyncs;
  append_key(j, FE_JREC_EVENT, 5, 64);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_durable_lsn(j), 5);
  assert_int_equal(jstats(j).fsyncs - f0, 1);
  assert_fe_ok(fe_journal_close(j));
}

/* Under INTERVAL a rotation fsyncs the old segment first, whatever the
 * interval, so a power loss cannot keep a newer segment and lose the end
 * of an older one. */
static void test_rotation_fsyncs_old_segment(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_INTERVAL;
  f->cfg.fsync_interval_ns = 3600 * FE_T_SEC;
  f->cfg.segment_bytes = 4096;
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 1; i <= 7; i++)
    append_key(j, FE_JREC_EVENT, i, 500);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(fe_journal_written_lsn(j), 7);
  assert_int_equal(fe_journal_durable_lsn(j), 0);
  assert_int_equal(jstats(j).fsyncs, 0);
  append_key(j, FE_JREC_EVENT, 8, 500); /* opens segment 2 */
  assert_fe_ok(fe_journal_commit(j));
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.rotations, 1);
  assert_int_equal(s.fsyncs, 1);
  assert_int_equal(s.durable_lsn, 7);
  assert_int_equal(s.written_lsn, 8);
  assert_fe_ok(fe_journal_close(j));
  expect_records(f, 8, len_500);
}

static void test_fsync_none(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_NONE;
  f->cfg.segment_bytes = 4096;
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 1; i <= 5; i++) {
    append_key(j, FE_JREC_EVENT, i, 500);
    assert_fe_ok(fe_journal_commit(j));
    /* durable means written: process-crash-safe only */
    assert_int_equal(fe_journal_written_lsn(j), i);
    assert_int_equal(fe_journal_durable_lsn(j), i);
    assert_fe_ok(fe_journal_wait_durable(j, i, 0));
  }
  assert_int_equal(jstats(j).fsyncs, 0);
  assert_fe_ok(fe_journal_sync(j)); /* sync fsyncs whatever the policy */
  assert_int_equal(jstats(j).fsyncs, 1);
  assert_fe_ok(fe_journal_sync(j));
  assert_int_equal(jstats(j).fsyncs, 1);
  /* a rotation under NONE leaves the old segment unsynced: the next sync
   * still covers it (one syncfs) */
  for (uint64_t i = 6; i <= 12; i++) {
    append_key(j, FE_JREC_EVENT, i, 500);
    assert_fe_ok(fe_journal_commit(j));
  }
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.rotations, 1);
  assert_int_equal(s.fsyncs, 1);
  assert_fe_ok(fe_journal_sync(j));
  assert_int_equal(jstats(j).fsyncs, 2);
  assert_fe_ok(fe_journal_close(j));
  expect_records(f, 12, len_500);
}

/* ------------------------------------------------------ wait_durable */

typedef struct waiter {
  fe_journal_t *j;
  uint64_t lsn;
  int rc;
  atomic_int started, done;
} waiter_t;

/* Waits with no timeout: only a wake-up from the commit ends the wait. */
static void *waiter_main(void *arg) {
  waiter_t *w = arg;
  atomic_store(&w->started, 1);
  w->rc = fe_journal_wait_durable(w->j, w->lsn, FE_WAIT_FOREVER);
  atomic_store(&w->done, 1);
  return NULL;
}

static void test_wait_durable(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_GROUP;
  fe_journal_t *j = jopen(f, NULL, NULL);
  assert_fe_ok(fe_journal_wait_durable(j, 0, 0));
  assert_fe(fe_journal_wait_durable(j, 1, 0), FE_ERANGE); /* never handed out */
  uint64_t lsn = append_key(j, FE_JREC_EVENT, 1, 10);
  assert_fe(fe_journal_wait_durable(j, lsn, 0), FE_ETIMEDOUT);
  assert_fe(fe_journal_wait_durable(j, lsn, 2 * FE_T_MS), FE_ETIMEDOUT);
  assert_fe(fe_journal_wait_durable(j, lsn + 1, FE_T_LONG_NS), FE_ERANGE);

  waiter_t w = {.j = j, .lsn = lsn};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
  int ok;
  FE_T_WAIT_UNTIL(ok, atomic_load(&w.started), FE_T_LONG_MS);
  assert_true(ok);
  fe_t_sleep_ms(5); /* most likely asleep in the wait by now */
  assert_false(atomic_load(&w.done));
  assert_fe_ok(fe_journal_commit(j));
  FE_T_WAIT_UNTIL(ok, atomic_load(&w.done), FE_T_LONG_MS);
  if (!ok)
    fail_msg("the commit did not wake the waiter"); /* leaks the thread */
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_fe_ok(w.rc);
  assert_true(fe_journal_durable_lsn(j) >= lsn);
  assert_fe_ok(fe_journal_wait_durable(j, lsn, 0));
  assert_fe_ok(fe_journal_close(j));
}

/* --------------------------------------------------------- threads */

#define THREADS 3
#define PER_THREAD 3000

typedef struct shared {
  fe_journal_t *j;
  fe_t_errs_t errs;
  atomic_int appenders_left;
  uint64_t lsn_of[THREADS][PER_THREAD]; /* written by each appender */
} shared_t;

typedef struct appender {
  shared_t *sh;
  uint32_t id;
} appender_t;

/* Payload: thread id, index, then filler bytes of a length that varies. */
static uint32_t thread_len(uint32_t t, uint32_t i) {
  return 8 + (t * 131 + i * 29) % 200;
}

static void *appender_main(void *arg) {
  appender_t *a = arg;
  shared_t *sh = a->sh;
  uint8_t buf[256];
  for (uint32_t i = 0; i < PER_THREAD; i++) {
    uint32_t len = thread_len(a->id, i);
    fill_payload(buf, (uint64_t)a->id << 32 | i, len);
    buf[0] = (uint8_t)a->id;
    memcpy(buf + 4, &i, 4);
    uint64_t lsn = 0;
    int rc = fe_journal_append(sh->j, FE_JREC_HOST + (uint16_t)a->id, buf,
                               len, &lsn);
    if (rc != 0) {
      fe_t_errf(&sh->errs, "thread %u: append %u: %s", a->id, i,
                fe_err_name(rc));
      break;
    }
    sh->lsn_of[a->id][i] = lsn;
    if (i % 500 == 499) {
      /* now and then an appender commits and waits, as the execution
       * stage does for an intent record */
      rc = fe_journal_commit(sh->j);
      if (rc == 0)
        rc = fe_journal_wait_durable(sh->j, lsn, FE_T_LONG_NS);
      if (rc != 0)
        fe_t_errf(&sh->errs, "thread %u: commit/wait: %s", a->id,
                  fe_err_name(rc));
      if (fe_journal_durable_lsn(sh->j) > fe_journal_written_lsn(sh->j))
        fe_t_errf(&sh->errs, "durable_lsn above written_lsn");
    }
  }
  atomic_fetch_sub(&sh->appenders_left, 1);
  return NULL;
}

static void *committer_main(void *arg) {
  shared_t *sh = arg;
  uint64_t last = 0;
  while (atomic_load(&sh->appenders_left) > 0) {
    int rc = fe_journal_commit(sh->j);
    if (rc != 0) {
      fe_t_errf(&sh->errs, "commit: %s", fe_err_name(rc));
      break;
    }
    uint64_t d = fe_journal_durable_lsn(sh->j);
    if (d < last)
      fe_t_errf(&sh->errs, "durable_lsn went back: %" PRIu64 " < %" PRIu64, d,
                last);
    last = d;
    fe_t_sleep_ns(200 * FE_T_US);
  }
  return NULL;
}

static void test_threads(void **state) {
  fx_t *f = *state;
  f->cfg.now_ns = NULL; /* the real clock: several threads read it */
  f->cfg.fsync = FE_FSYNC_GROUP;
  f->cfg.segment_bytes = 64 << 10;
  f->cfg.buffer_bytes = 8 << 10;
  shared_t *sh = calloc(1, sizeof *sh);
  assert_non_null(sh);
  sh->j = jopen(f, NULL, NULL);
  atomic_store(&sh->appenders_left, THREADS);
  pthread_t th[THREADS], ct;
  appender_t a[THREADS];
  for (uint32_t t = 0; t < THREADS; t++) {
    a[t] = (appender_t){sh, t};
    assert_int_equal(pthread_create(&th[t], NULL, appender_main, &a[t]), 0);
  }
  assert_int_equal(pthread_create(&ct, NULL, committer_main, sh), 0);
  for (int t = 0; t < THREADS; t++)
    assert_int_equal(pthread_join(th[t], NULL), 0);
  assert_int_equal(pthread_join(ct, NULL), 0);
  fe_t_assert_clean(&sh->errs);
  fe_journal_stats_t s = jstats(sh->j);
  assert_int_equal(s.appends, THREADS * PER_THREAD);
  assert_true(s.rotations > 0);
  assert_true(s.full_flushes > 0);
  assert_fe_ok(fe_journal_close(sh->j));

  coll_t c = {0};
  fe_journal_t *j = jopen(f, &c, NULL);
  assert_int_equal(c.n, THREADS * PER_THREAD);
  uint32_t next[THREADS] = {0};
  for (size_t k = 0; k < c.n; k++) {
    rec_t *r = &c.v[k];
    assert_int_equal(r->lsn, k + 1);
    uint32_t t = r->data[0], i;
    assert_true(t < THREADS);
    assert_int_equal(r->type, FE_JREC_HOST + t);
    memcpy(&i, r->data + 4, 4);
    /* each thread's records in its order, each exactly once */
    assert_int_equal(i, next[t]);
    next[t]++;
    assert_int_equal(sh->lsn_of[t][i], r->lsn);
    assert_int_equal(r->len, thread_len(t, i));
    uint8_t want[256];
    fill_payload(want, (uint64_t)t << 32 | i, r->len);
    assert_memory_equal(want + 8, r->data + 8, r->len - 8);
  }
  for (uint32_t t = 0; t < THREADS; t++)
    assert_int_equal(next[t], PER_THREAD);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
  free(sh);
}

/* ----------------------------------------------------------- retire */

/* The retirement tests' journal: 30 records of 500 bytes, record i at
 * T0 + i s, 7 per 4 KiB segment (segment k, 1..4, holds lsns 7k-6..7k; 5
 * is active), 10 s retention; opened. */
static fe_journal_t *retire_journal(fx_t *f) {
  f->cfg.segment_bytes = 4096;
  f->cfg.retention_ns = 10 * FE_T_SEC;
  build(f, 30, len_500, 3);
  return jopen(f, NULL, NULL);
}

static void test_retire(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = retire_journal(f);
  assert_int_equal(count_segments(f), 5);
  uint32_t removed = 99;

  /* by age: segments 1 (newest 7 s) and 2 (14 s) are 10 s old at 30 s,
   * segment 3 (21 s) is not */
  set_clock(f, T0 + 30 * FE_T_SEC);
  assert_fe_ok(fe_journal_retire(j, 1000, &removed));
  assert_int_equal(removed, 2);
  assert_int_equal(seg_size(f, 1), -1);
  assert_int_equal(seg_size(f, 2), -1);
  assert_true(seg_size(f, 3) > 0);

  /* by lsn: segment 3 holds lsns 15..21, segment 4 22..28 */
  set_clock(f, T0 + 100 * FE_T_SEC);
  assert_fe_ok(fe_journal_retire(j, 21, &removed));
  assert_int_equal(removed, 0); /* 21 is not below 21 */
  assert_fe_ok(fe_journal_retire(j, 22, &removed));
  assert_int_equal(removed, 1);
  assert_int_equal(seg_size(f, 3), -1);

  /* never the active segment */
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 1);
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 0);
  assert_int_equal(count_segments(f), 1);
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.retired, 4);
  assert_int_equal(s.segments, 1);
  assert_int_equal(s.first_segment, 5);
  assert_int_equal(s.active_segment, 5);
  assert_fe_ok(fe_journal_close(j));

  /* a journal whose first segment is 5 reopens and continues */
  coll_t c = {0};
  fe_journal_report_t rep;
  j = jopen(f, &c, &rep);
  assert_int_equal(rep.first_segment, 5);
  assert_int_equal(rep.first_lsn, 29);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.v[0].lsn, 29);
  assert_int_equal(append_key(j, FE_JREC_EVENT, 31, 500), 31);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));

  f->cfg.read_only = 1;
  j = jopen(f, NULL, NULL);
  assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), FE_ESTATE);
  assert_fe_ok(fe_journal_close(j));
}

/* A segment that does not qualify stops retirement even when a newer one
 * would: never a gap. */
static void test_retire_never_gap(void **state) {
  fx_t *f = *state;
  f->cfg.segment_bytes = 4096;
  f->cfg.retention_ns = 10 * FE_T_SEC;
  fe_journal_t *j = jopen(f, NULL, NULL);
  set_clock(f, T0 + 1000 * FE_T_SEC); /* segment 1: the clock was ahead */
  for (uint64_t i = 1; i <= 7; i++)
    append_key(j, FE_JREC_EVENT, i, 500);
  set_clock(f, T0 + 1 * FE_T_SEC); /* segment 2: stepped back */
  for (uint64_t i = 8; i <= 15; i++)
    append_key(j, FE_JREC_EVENT, i, 500);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(jstats(j).active_segment, 3);
  uint32_t removed = 99;
  set_clock(f, T0 + 500 * FE_T_SEC);
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 0); /* segment 2 qualifies, segment 1 not */
  assert_int_equal(count_segments(f), 3);
  set_clock(f, T0 + 2000 * FE_T_SEC);
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 2);
  assert_fe_ok(fe_journal_close(j));
}

/* A segment the system will not remove (a directory in its place makes
 * unlink fail, even for root): FE_EIO, counted with its errno, the later
 * segments kept (no gap), and the journal still writable; once removable
 * the next call retires it and the rest. */
static void test_retire_failure_counted(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = retire_journal(f);
  char p[160], aside[170];
  seg_path(f, p, sizeof p, 1);
  snprintf(aside, sizeof aside, "%s.aside", p);
  assert_int_equal(rename(p, aside), 0);
  assert_int_equal(mkdir(p, 0700), 0);
  set_clock(f, T0 + 100 * FE_T_SEC);
  uint32_t removed = 99;
  assert_fe(fe_journal_retire(j, UINT64_MAX, &removed), FE_EIO);
  assert_int_equal(removed, 0);
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.retire_failures, 1);
  assert_int_equal(s.sys_errno, EISDIR);
  assert_int_equal(s.error, 0);
  assert_int_equal(s.retired, 0);
  assert_true(seg_size(f, 2) > 0);
  assert_int_equal(append_key(j, FE_JREC_EVENT, 31, 500), 31);
  assert_fe_ok(fe_journal_commit(j));
  assert_int_equal(rmdir(p), 0);
  assert_int_equal(rename(aside, p), 0);
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_true(removed >= 4);
  s = jstats(j);
  assert_int_equal(s.retire_failures, 1);
  assert_int_equal(s.retired, removed);
  assert_fe_ok(fe_journal_close(j));
}

/* ------------------------------------------------------------- pins */

/* retire_journal(), all of it old enough: only lsns and pins decide. */
static void test_retire_respects_pins(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = retire_journal(f);
  set_clock(f, T0 + 100 * FE_T_SEC);
  uint32_t a = 99, b = 99, removed = 99;
  assert_fe_ok(fe_journal_pin(j, 8, &a)); /* keeps segment 2 (8..14) */
  assert_fe_ok(fe_journal_pin(j, UINT64_MAX, &b)); /* holds nothing */
  assert_int_not_equal(a, b);
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 1); /* segment 1 only: 7 < 8 */
  assert_int_equal(seg_size(f, 1), -1);
  assert_true(seg_size(f, 2) > 0);

  /* the lowest pin counts; finished_below still counts too */
  assert_fe_ok(fe_journal_pin_set(j, b, 9));
  assert_fe_ok(fe_journal_pin_set(j, a, 22));
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 0); /* b = 9 keeps segment 2 */
  assert_fe_ok(fe_journal_pin_set(j, b, 100));
  assert_fe_ok(fe_journal_retire(j, 15, &removed));
  assert_int_equal(removed, 1); /* segment 2; finished_below keeps 3 */
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 1); /* segment 3 (15..21); a = 22 keeps 4 */
  assert_true(seg_size(f, 4) > 0);

  /* releasing lets it go */
  assert_fe_ok(fe_journal_pin_release(j, a));
  assert_fe_ok(fe_journal_pin_release(j, b));
  assert_fe_ok(fe_journal_retire(j, UINT64_MAX, &removed));
  assert_int_equal(removed, 1);
  assert_int_equal(seg_size(f, 4), -1);
  assert_fe_ok(fe_journal_close(j));
}

static void test_pins_full_and_bad_args(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = jopen(f, NULL, NULL);
  uint32_t p[FE_JOURNAL_MAX_PINS], extra = 77;
  for (uint32_t i = 0; i < FE_JOURNAL_MAX_PINS; i++) {
    assert_fe_ok(fe_journal_pin(j, 1, &p[i]));
    assert_int_equal(p[i], i);
  }
  assert_fe(fe_journal_pin(j, 1, &extra), FE_EFULL);
  assert_int_equal(extra, 77); /* untouched */
  /* a released id is handed out again */
  assert_fe_ok(fe_journal_pin_release(j, p[3]));
  assert_fe(fe_journal_pin_release(j, p[3]), FE_ENOTFOUND);
  assert_fe(fe_journal_pin_set(j, p[3], 5), FE_ENOTFOUND);
  assert_fe_ok(fe_journal_pin(j, 1, &extra));
  assert_int_equal(extra, 3);

  assert_fe(fe_journal_pin(NULL, 1, &extra), FE_EINVAL);
  assert_fe(fe_journal_pin(j, 1, NULL), FE_EINVAL);
  assert_fe(fe_journal_pin_set(NULL, 0, 1), FE_EINVAL);
  assert_fe(fe_journal_pin_set(j, FE_JOURNAL_MAX_PINS, 1), FE_ERANGE);
  assert_fe(fe_journal_pin_release(NULL, 0), FE_EINVAL);
  assert_fe(fe_journal_pin_release(j, UINT32_MAX), FE_ERANGE);
  assert_fe_ok(fe_journal_close(j));

  f->cfg.read_only = 1;
  j = jopen(f, NULL, NULL);
  assert_fe(fe_journal_pin(j, 1, &extra), FE_ESTATE);
  assert_fe_ok(fe_journal_close(j));
}

/* ------------------------------------------ read-only, locks, replay */

static void test_read_only(void **state) {
  fx_t *f = *state;
  f->cfg.read_only = 1;
  jopen_fails(f, FE_ENOTFOUND, NULL, NULL); /* not created */
  assert_int_equal(file_size(f->dir), -1);
  f->cfg.read_only = 0;
  build(f, 5, len_std, 5);
  char p[160];
  seg_path(f, p, sizeof p, 1);
  int64_t size = file_size(p);
  /* a torn tail: half of a sixth record */
  size_t len;
  uint8_t *b = read_all(p, &len);
  uint8_t *b2 = malloc(len + 40);
  memcpy(b2, b, len);
  memcpy(b2 + len, b + HDR, 40);
  write_all(p, b2, len + 40);

  f->cfg.read_only = 1;
  coll_t c = {0};
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, &c, &rep);
  assert_int_equal(c.n, 5);
  assert_int_equal(rep.torn, 1);
  assert_int_equal(rep.truncated, 0);
  assert_int_equal(rep.torn_offset, (uint64_t)size);
  assert_int_equal(file_size(p), size + 40); /* untouched */
  assert_fe(fe_journal_append(j, 1, "x", 1, NULL), FE_ESTATE);
  assert_fe_ok(fe_journal_commit(j));
  assert_fe_ok(fe_journal_sync(j));
  assert_int_equal(fe_journal_written_lsn(j), 5);
  assert_int_equal(jstats(j).segments, 1);
  assert_fe_ok(fe_journal_close(j));
  coll_free(&c);
  free(b);
  free(b2);
}

static void test_single_writer(void **state) {
  fx_t *f = *state;
  fe_journal_t *j = jopen(f, NULL, NULL);
  fe_diag_t d = jopen_fails(f, FE_ESTATE, NULL, NULL);
  assert_msg_has(&d, "another writer");
  f->cfg.read_only = 1;
  fe_journal_t *r = jopen(f, NULL, NULL); /* readers take no lock */
  assert_fe_ok(fe_journal_close(r));
  f->cfg.read_only = 0;
  assert_fe_ok(fe_journal_close(j));
  j = jopen(f, NULL, NULL); /* the lock went with the close */
  assert_fe_ok(fe_journal_close(j));
}

static void test_dir_one_level(void **state) {
  fx_t *f = *state;
  char deep[160];
  snprintf(deep, sizeof deep, "%s/a/b", f->root);
  f->cfg.dir = deep;
  fe_diag_t d = jopen_fails(f, FE_ENOTFOUND, NULL, NULL);
  assert_msg_has(&d, deep);
}

static void test_replay_abort(void **state) {
  fx_t *f = *state;
  build(f, 10, len_std, 4);
  coll_t c = {.abort_at = 3, .abort_rc = 77};
  fe_journal_t *j = NULL;
  assert_fe(fe_journal_open(&f->cfg, collect, &c, &j, NULL, NULL), 77);
  assert_null(j);
  assert_int_equal(c.n, 3);
  coll_free(&c);
  expect_records(f, 10, len_std);
}

/* --------------------------------------------------------- recovery */

static uint32_t len_300(uint64_t i) {
  (void)i;
  return 300;
}

/* A journal cut at every offset of its last record: a torn tail, cut
 * back to the record's start; the next append reuses its lsn. */
static void test_torn_every_offset(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_NONE;
  build(f, 5, len_300, 5);
  char p[160];
  seg_path(f, p, sizeof p, 1);
  size_t len;
  uint8_t *orig = read_all(p, &len);
  const size_t frame = 336, start = HDR + 4 * frame;
  assert_int_equal(len, start + frame);
  for (size_t cut = start; cut < len; cut++) {
    write_all(p, orig, cut);
    coll_t c = {0};
    fe_journal_report_t rep;
    fe_journal_t *j = jopen(f, &c, &rep);
    assert_int_equal(c.n, 4);
    assert_int_equal(rep.records, 4);
    assert_int_equal(rep.next_lsn, 5);
    if (cut == start) {
      assert_int_equal(rep.torn, 0);
    } else {
      assert_int_equal(rep.torn, 1);
      assert_int_equal(rep.truncated, 1);
      assert_int_equal(rep.torn_segment, 1);
      assert_int_equal(rep.torn_offset, start);
      assert_int_equal(rep.torn_bytes, cut - start);
      assert_non_null(rep.torn_why);
      assert_int_equal(rep.tail_corrupt, 0); /* cut short: not damaged */
      assert_int_equal(rep.tail_corrupt_msg[0], '\0');
    }
    assert_int_equal(file_size(p), (int64_t)start);
    if (cut % 37 == 0) { /* now and then: the journal goes on from there */
      assert_int_equal(append_key(j, FE_JREC_EVENT, 5, 300), 5);
      assert_fe_ok(fe_journal_close(j));
      coll_free(&c);
      j = jopen(f, &c, &rep);
      assert_int_equal(c.n, 5);
      assert_true(payload_ok(&c.v[4], 5, 300));
      assert_int_equal(rep.torn, 0);
    }
    coll_free(&c);
    assert_fe_ok(fe_journal_close(j));
  }
  free(orig);
}

static void append_bytes(const char *p, const uint8_t *b, size_t n) {
  size_t len;
  uint8_t *old = read_all(p, &len);
  uint8_t *nb = malloc(len + n);
  memcpy(nb, old, len);
  memcpy(nb + len, b, n);
  write_all(p, nb, len + n);
  free(old);
  free(nb);
}

static void test_zero_tail(void **state) {
  fx_t *f = *state;
  build(f, 5, len_300, 2);
  char p[160];
  seg_path(f, p, sizeof p, 1);
  int64_t size = file_size(p);
  static const uint8_t zeros[4096];
  append_bytes(p, zeros, sizeof zeros);
  fe_journal_report_t rep;
  coll_t c = {0};
  fe_journal_t *j = jopen(f, &c, &rep);
  assert_int_equal(c.n, 5);
  assert_int_equal(rep.torn, 1);
  assert_int_equal(rep.torn_offset, (uint64_t)size);
  assert_int_equal(rep.torn_bytes, 4096);
  assert_non_null(strstr(rep.torn_why, "zero"));
  assert_int_equal(file_size(p), size);
  assert_fe_ok(fe_journal_close(j));
  coll_free(&c);
  /* 8 zero bytes: shorter than a record header */
  append_bytes(p, zeros, 8);
  j = jopen(f, NULL, &rep);
  assert_int_equal(rep.torn, 1);
  assert_non_null(strstr(rep.torn_why, "short"));
  assert_fe_ok(fe_journal_close(j));
  expect_records(f, 5, len_300);
}

/* 21 records of 500 bytes: segments 1..3 of 7 records each. */
static void build3(fx_t *f) {
  f->cfg.segment_bytes = 4096;
  build(f, 21, len_500, 4);
  assert_int_equal(count_segments(f), 3);
}

#define REC_OFF(k) (HDR + (size_t)(k) * 536) /* k-th record of a segment */

static void test_bad_magic(void **state) {
  fx_t *f = *state;
  build3(f);
  poke(f, 2, 0, 0x01);
  coll_t c = {0};
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, &c, NULL);
  assert_msg_has(&d, "0000000000000002.fej");
  assert_msg_has(&d, "magic");
  assert_int_equal(c.n, 0); /* nothing replayed from a refused journal */
  poke(f, 2, 0, 0x01);
  expect_records(f, 21, len_500);
}

static void test_bad_version(void **state) {
  fx_t *f = *state;
  build3(f);
  poke(f, 3, 8, 0x06); /* 1 -> 7 */
  fe_diag_t d = jopen_fails(f, FE_EVERSION, NULL, NULL);
  assert_msg_has(&d, "0000000000000003.fej");
  assert_msg_has(&d, "version 7");
  /* the scan says the same, and the tool */
  fe_diag_t d2;
  assert_fe(fe_journal_scan(f->dir, 0, NULL, NULL, NULL, &d2), FE_EVERSION);
}

static void test_bad_header_checksum(void **state) {
  fx_t *f = *state;
  build3(f);
  poke(f, 1, 33, 0x80); /* created_ns */
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000001.fej");
  assert_msg_has(&d, "header checksum");
  poke(f, 1, 33, 0x80);
  poke(f, 3, 45, 0x01); /* reserved bytes are covered too */
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "header checksum");
}

static void test_corrupt_middle_refused(void **state) {
  fx_t *f = *state;
  build3(f);
  char p[160];
  seg_path(f, p, sizeof p, 3);
  size_t len0, len1;
  poke(f, 3, REC_OFF(2) + 100, 0x04); /* payload of lsn 17 */
  uint8_t *before = read_all(p, &len0);
  coll_t c = {0};
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, &c, NULL);
  assert_int_equal(c.n, 0);
  assert_msg_has(&d, "0000000000000003.fej offset 1136");
  assert_msg_has(&d, "checksum mismatch");
  assert_msg_has(&d, "lsn 18"); /* the valid record that follows */
  uint8_t *after = read_all(p, &len1);
  assert_int_equal(len0, len1); /* refused: nothing truncated */
  assert_memory_equal(before, after, len0);
  free(before);
  free(after);
  poke(f, 3, REC_OFF(2) + 100, 0x04);

  /* the last record of a segment that is not the last */
  poke(f, 2, REC_OFF(6) + 40, 0x20);
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000002.fej");
  assert_msg_has(&d, "not the last");
  poke(f, 2, REC_OFF(6) + 40, 0x20);

  /* non-zero padding is invalid too (500 bytes: 4 bytes of padding) */
  poke(f, 3, REC_OFF(3) + 32 + 500 + 2, 0x01);
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "padding");
  poke(f, 3, REC_OFF(3) + 32 + 500 + 2, 0x01);
  expect_records(f, 21, len_500);
}

static void test_segment_gap(void **state) {
  fx_t *f = *state;
  build3(f);
  char p[160];
  seg_path(f, p, sizeof p, 2);
  assert_int_equal(unlink(p), 0);
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000002.fej is missing");
}

/* Rewrites the lsn of the record at off of segment index, checksum
 * fixed, so only the sequence is wrong. */
static void set_record_lsn(const fx_t *f, uint64_t index, size_t off,
                           uint64_t lsn) {
  char p[160];
  seg_path(f, p, sizeof p, index);
  size_t len;
  uint8_t *b = read_all(p, &len);
  uint8_t *r = b + off;
  uint32_t plen = (uint32_t)r[0] | (uint32_t)r[1] << 8 |
                  (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
  put64(r + 8, lsn);
  put64(r + 24, XXH3_64bits_withSeed(r + 32, plen, XXH3_64bits(r, 24)));
  write_all(p, b, len);
  free(b);
}

static void test_lsn_discontinuity(void **state) {
  fx_t *f = *state;
  build3(f);
  set_first_lsn(f, 3, 16); /* segment 2 ends at 14 */
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000003.fej offset 0");
  assert_msg_has(&d, "lsn discontinuity");
  set_first_lsn(f, 3, 15);
  set_first_lsn(f, 1, 2); /* segment 1 must start at lsn 1 */
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "not 1");
  set_first_lsn(f, 1, 1);
  set_record_lsn(f, 2, REC_OFF(3), 99); /* lsn 11 says 99 */
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000002.fej offset 1672");
  assert_msg_has(&d, "lsn 99, expected 11");
  set_record_lsn(f, 2, REC_OFF(3), 11);
  expect_records(f, 21, len_500);
}

static void test_truncated_non_last(void **state) {
  fx_t *f = *state;
  build3(f);
  char p[160];
  seg_path(f, p, sizeof p, 1);
  assert_int_equal(truncate(p, file_size(p) - 8), 0);
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "0000000000000001.fej");
  assert_msg_has(&d, "not the last");
  assert_int_equal(truncate(p, 10), 0); /* shorter than the header */
  d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "shorter than its header, and not the last");
}

static void test_short_last_segment(void **state) {
  fx_t *f = *state;
  build3(f);
  char p[160];
  seg_path(f, p, sizeof p, 4);
  write_all(p, (const uint8_t *)"FEJOURN", 8);
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, NULL, &rep);
  assert_int_equal(rep.short_segment, 4);
  assert_int_equal(rep.short_bytes, 8);
  assert_int_equal(rep.short_removed, 1);
  assert_int_equal(rep.records, 21);
  assert_int_equal(file_size(p), -1);
  /* segment 3 is full: the next record creates segment 4 properly */
  assert_int_equal(append_key(j, FE_JREC_EVENT, 22, 500), 22);
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(seg_size(f, 4), HDR + 536);
  expect_records(f, 22, len_500);
}

static void test_short_only_segment(void **state) {
  fx_t *f = *state;
  assert_int_equal(mkdir(f->dir, 0755), 0);
  char p[160];
  seg_path(f, p, sizeof p, 5);
  write_all(p, (const uint8_t *)"FEJ", 3);
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "next lsn is unknown");
  assert_int_equal(unlink(p), 0);
  seg_path(f, p, sizeof p, 1);
  write_all(p, (const uint8_t *)"FEJ", 3);
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, NULL, &rep);
  assert_int_equal(rep.short_removed, 1);
  assert_int_equal(append_key(j, FE_JREC_EVENT, 1, 10), 1);
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(seg_size(f, 1), HDR + 32 + 16);
}

static void test_tmp_leftover(void **state) {
  fx_t *f = *state;
  build3(f);
  char p[160];
  snprintf(p, sizeof p, "%s/0000000000000004.fej.tmp", f->dir);
  write_all(p, (const uint8_t *)"half a header", 13);
  char other[160];
  snprintf(other, sizeof other, "%s/notes.txt", f->dir);
  write_all(other, (const uint8_t *)"kept", 4);
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, NULL, &rep);
  assert_int_equal(rep.tmp_files, 1);
  assert_int_equal(file_size(p), -1);
  assert_int_equal(file_size(other), 4); /* other names are ignored */
  assert_fe_ok(fe_journal_close(j));
}

/* ~200 random bit flips anywhere in a 5-segment journal: every one is
 * detected; the only flips that open are in the last record (a torn
 * tail), and then exactly the records before it replay, unchanged. */
static void test_bitflip_fuzz(void **state) {
  fx_t *f = *state;
  f->cfg.segment_bytes = 4096;
  f->cfg.fsync = FE_FSYNC_NONE;
  build(f, 60, len_std, 7);
  coll_t ref = {0};
  fe_journal_t *j = jopen(f, &ref, NULL);
  assert_fe_ok(fe_journal_close(j));
  const uint64_t n = ref.n, nseg = ref.v[n - 1].seg;
  assert_int_equal(n, 60);
  assert_true(nseg >= 3);
  uint8_t *orig[16];
  size_t olen[16];
  char paths[16][160];
  for (uint64_t s = 1; s <= nseg; s++) {
    seg_path(f, paths[s - 1], sizeof paths[0], s);
    orig[s - 1] = read_all(paths[s - 1], &olen[s - 1]);
  }
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 2024);
  int torn = 0, corrupt = 0, version = 0;
  for (int it = 0; it < 200; it++) {
    for (uint64_t s = 0; s < nseg; s++)
      write_all(paths[s], orig[s], olen[s]);
    uint64_t seg;
    size_t off;
    if (it % 4 == 0) { /* aim at the last record now and then */
      seg = nseg;
      off = (size_t)ref.v[n - 1].off +
            fe_t_rng_range(&rng, 0, (uint32_t)(olen[seg - 1] -
                                               ref.v[n - 1].off - 1));
    } else {
      seg = fe_t_rng_range(&rng, 1, (uint32_t)nseg);
      off = fe_t_rng_range(&rng, 0, (uint32_t)olen[seg - 1] - 1);
    }
    poke(f, seg, off, (uint8_t)(1u << fe_t_rng_range(&rng, 0, 7)));
    coll_t c = {0};
    fe_journal_report_t rep;
    fe_diag_t d;
    memset(&d, 0, sizeof d);
    j = NULL;
    int rc = fe_journal_open(&f->cfg, collect, &c, &j, &rep, &d);
    if (rc == 0) {
      if (!(seg == nseg && off >= ref.v[n - 1].off))
        fail_msg("flip at segment %" PRIu64 " offset %zu went undetected",
                 seg, off);
      assert_int_equal(rep.torn, 1);
      assert_int_equal(rep.torn_offset, ref.v[n - 1].off);
      assert_int_equal(c.n, n - 1);
      for (size_t k = 0; k < c.n; k++) {
        assert_int_equal(c.v[k].lsn, k + 1);
        assert_int_equal(c.v[k].len, ref.v[k].len);
        assert_memory_equal(c.v[k].data, ref.v[k].data, c.v[k].len);
      }
      assert_fe_ok(fe_journal_close(j));
      torn++;
    } else {
      if (rc != FE_ECORRUPT && rc != FE_EVERSION)
        fail_msg("flip at segment %" PRIu64 " offset %zu: %s: %s", seg, off,
                 fe_err_name(rc), d.msg);
      assert_null(j);
      assert_int_equal(c.n, 0);
      assert_true(d.msg[0] != '\0');
      version += rc == FE_EVERSION;
      corrupt += rc == FE_ECORRUPT;
    }
    coll_free(&c);
  }
  assert_true(torn > 0);
  assert_true(corrupt > 0);
  assert_int_equal(torn + corrupt + version, 200);
  for (uint64_t s = 0; s < nseg; s++) {
    write_all(paths[s], orig[s], olen[s]);
    free(orig[s]);
  }
  coll_free(&ref);
  expect_records(f, 60, len_std);
}

/* A write that fails (the file size limit) fails the journal for good;
 * reopening recovers what reached the file, the partial group as a torn
 * tail. */
static void test_write_failure(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_GROUP;
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 1; i <= 3; i++)
    append_key(j, FE_JREC_EVENT, i, 1000);
  assert_fe_ok(fe_journal_commit(j)); /* 64 + 3 * 1032 = 3160 bytes */
  uint64_t lsn = 0;
  for (uint64_t i = 4; i <= 13; i++)
    lsn = append_key(j, FE_JREC_EVENT, i, 1000);
  /* a waiter blocked before the failure is woken with it */
  waiter_t w = {.j = j, .lsn = lsn};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
  int ok;
  FE_T_WAIT_UNTIL(ok, atomic_load(&w.started), FE_T_LONG_MS);
  fe_t_sleep_ms(5);
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 8192;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = fe_journal_commit(j);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);
  assert_fe(rc, FE_EIO);
  FE_T_WAIT_UNTIL(ok, atomic_load(&w.done), FE_T_LONG_MS);
  if (!ok)
    fail_msg("the failure did not wake the waiter"); /* leaks the thread */
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_fe(w.rc, FE_EIO);
  fe_journal_stats_t s = jstats(j);
  assert_int_equal(s.error, FE_EIO);
  assert_int_equal(s.sys_errno, EFBIG);
  assert_int_equal(s.written_lsn, 3);
  assert_fe(fe_journal_append(j, 1, "x", 1, NULL), FE_EIO);
  assert_fe(fe_journal_commit(j), FE_EIO);
  assert_fe(fe_journal_sync(j), FE_EIO);
  assert_fe(fe_journal_wait_durable(j, lsn, FE_T_LONG_NS), FE_EIO);
  assert_fe(fe_journal_retire(j, UINT64_MAX, NULL), FE_EIO);
  assert_fe(fe_journal_close(j), FE_EIO);

  fe_journal_report_t rep;
  coll_t c = {0};
  j = jopen(f, &c, &rep);
  /* 8192 - 3160 bytes reached the file: 4 whole records and a piece */
  assert_int_equal(rep.records, 7);
  assert_int_equal(rep.torn, 1);
  assert_int_equal(rep.torn_offset, 64 + 7 * 1032);
  assert_int_equal(rep.next_lsn, 8);
  for (uint64_t i = 1; i <= 7; i++)
    assert_true(payload_ok(&c.v[i - 1], i, 1000));
  assert_int_equal(append_key(j, FE_JREC_EVENT, 8, 1000), 8);
  coll_free(&c);
  assert_fe_ok(fe_journal_close(j));
}

/* ------------------------------------------------------------- scan */

static void test_scan(void **state) {
  fx_t *f = *state;
  fe_diag_t d;
  assert_fe(fe_journal_scan(NULL, 0, NULL, NULL, NULL, &d), FE_EINVAL);
  assert_fe(fe_journal_scan("", 0, NULL, NULL, NULL, &d), FE_EINVAL);
  assert_fe(fe_journal_scan(f->dir, 0, NULL, NULL, NULL, &d), FE_ENOTFOUND);
  build3(f);
  assert_fe(fe_journal_scan(f->dir, 2, NULL, NULL, NULL, &d), FE_EINVAL);
  coll_t c = {0};
  fe_journal_report_t rep;
  assert_fe_ok(fe_journal_scan(f->dir, 0, collect, &c, &rep, &d));
  assert_int_equal(c.n, 21);
  assert_int_equal(rep.records, 21);
  assert_int_equal(rep.segments, 3);
  assert_int_equal(c.misaligned, 0);
  coll_free(&c);

  /* a torn tail: reported, not repaired; an error only when strict */
  char p[160];
  seg_path(f, p, sizeof p, 3);
  static const uint8_t junk[24] = {1, 2, 3};
  append_bytes(p, junk, sizeof junk);
  int64_t size = file_size(p);
  assert_fe_ok(fe_journal_scan(f->dir, 0, NULL, NULL, &rep, &d));
  assert_int_equal(rep.torn, 1);
  assert_int_equal(rep.truncated, 0);
  assert_int_equal(rep.torn_bytes, 24);
  assert_int_equal(file_size(p), size);
  assert_fe(fe_journal_scan(f->dir, FE_JOURNAL_SCAN_STRICT, NULL, NULL, &rep,
                            &d), FE_ECORRUPT);
  assert_msg_has(&d, "torn tail");

  /* streaming: the records before a corruption were seen */
  poke(f, 2, REC_OFF(3) + 50, 0x01); /* lsn 11 */
  assert_fe(fe_journal_scan(f->dir, 0, collect, &c, &rep, &d), FE_ECORRUPT);
  assert_int_equal(c.n, 10);
  assert_int_equal(rep.records, 10);
  coll_free(&c);
  c.abort_at = 2;
  c.abort_rc = 5;
  assert_fe(fe_journal_scan(f->dir, 0, collect, &c, &rep, &d), 5);
  coll_free(&c);
}

/* ------------------------------------------------ operator truncate */

/* Zeroes n bytes of segment index from off: the hole a power loss leaves
 * when later pages of a write reached the disk and earlier ones did not. */
static void zero_range(const fx_t *f, uint64_t index, size_t off, size_t n) {
  char p[160];
  seg_path(f, p, sizeof p, index);
  size_t len;
  uint8_t *b = read_all(p, &len);
  assert_true(off + n <= len);
  memset(b + off, 0, n);
  write_all(p, b, len);
  free(b);
}

/* Every segment file's bytes (indices 1..16), to prove that a call changed
 * nothing: len -1 for a missing one. */
typedef struct snap {
  uint8_t *b[16];
  int64_t len[16];
} snap_t;

static snap_t snap_take(const fx_t *f) {
  snap_t s;
  memset(&s, 0, sizeof s);
  for (int i = 0; i < 16; i++) {
    char p[160];
    seg_path(f, p, sizeof p, (uint64_t)i + 1);
    s.len[i] = file_size(p);
    if (s.len[i] >= 0) {
      size_t n;
      s.b[i] = read_all(p, &n);
      assert_int_equal(n, s.len[i]);
    }
  }
  return s;
}

/* Fails unless the segments are exactly as in s; frees s. */
static void snap_same(const fx_t *f, snap_t *s) {
  snap_t now = snap_take(f);
  for (int i = 0; i < 16; i++) {
    if (now.len[i] != s->len[i])
      fail_msg("segment %d: %" PRId64 " bytes, was %" PRId64, i + 1,
               now.len[i], s->len[i]);
    if (s->len[i] > 0)
      assert_memory_equal(now.b[i], s->b[i], (size_t)s->len[i]);
    free(now.b[i]);
    free(s->b[i]);
  }
}

static fe_journal_truncate_report_t truncate_ok(const fx_t *f, unsigned flags) {
  fe_journal_truncate_report_t t;
  memset(&t, 0xa5, sizeof t);
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_truncate_corrupt(f->dir, flags, &t, &d);
  if (rc != 0)
    fail_msg("fe_journal_truncate_corrupt: %s: %s", fe_err_name(rc), d.msg);
  assert_int_equal(t.dry_run, (flags & FE_JOURNAL_TRUNCATE_DRY_RUN) != 0);
  return t;
}

/* Refused with want: the message is set and no file changed. */
static fe_diag_t truncate_refused(const fx_t *f, unsigned flags, int want) {
  snap_t s = snap_take(f);
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  fe_journal_truncate_report_t t;
  assert_fe(fe_journal_truncate_corrupt(f->dir, flags, &t, &d), want);
  assert_int_equal(d.code, want);
  assert_true(d.msg[0] != '\0');
  assert_int_equal(t.truncated, 0);
  snap_same(f, &s);
  return d;
}

/* A hole in the middle of the last segment: open refuses; the dry run
 * reports the cut and changes nothing; the cut makes open replay exactly
 * the records before the hole, and appends go on from there. */
static void test_truncate_hole_in_last_segment(void **state) {
  fx_t *f = *state;
  build3(f); /* segment 3: lsn 15..21 at REC_OFF(0..6), 3816 bytes */
  zero_range(f, 3, REC_OFF(2), 2 * 536); /* lsn 17 and 18 */
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "corrupt in the middle");

  snap_t s = snap_take(f);
  fe_journal_truncate_report_t t = truncate_ok(f, FE_JOURNAL_TRUNCATE_DRY_RUN);
  snap_same(f, &s);
  assert_int_equal(t.hole, 1);
  assert_int_equal(t.truncated, 0);
  assert_int_equal(t.cut_segment, 3);
  assert_int_equal(t.cut_offset, REC_OFF(2));
  assert_non_null(strstr(t.cut_why, "zero"));
  assert_int_equal(t.discarded_bytes, HDR + 7 * 536 - REC_OFF(2));
  assert_int_equal(t.lost_records, 3);
  assert_int_equal(t.lost_first_lsn, 19);
  assert_int_equal(t.lost_last_lsn, 21);
  assert_int_equal(t.removed_segments, 0);
  assert_int_equal(t.first_removed, 0);
  assert_int_equal(t.walk.records, 16);
  assert_int_equal(t.walk.last_lsn, 16);
  assert_int_equal(t.walk.next_lsn, 17);
  jopen_fails(f, FE_ECORRUPT, NULL, NULL); /* the dry run fixed nothing */

  fe_journal_truncate_report_t t2 = truncate_ok(f, 0);
  assert_int_equal(t2.truncated, 1); /* the same findings, now done */
  assert_int_equal(t2.hole, 1);
  assert_int_equal(t2.cut_segment, t.cut_segment);
  assert_int_equal(t2.cut_offset, t.cut_offset);
  assert_int_equal(t2.discarded_bytes, t.discarded_bytes);
  assert_int_equal(t2.lost_records, t.lost_records);
  assert_int_equal(t2.lost_first_lsn, t.lost_first_lsn);
  assert_int_equal(t2.lost_last_lsn, t.lost_last_lsn);
  assert_int_equal(t2.walk.next_lsn, 17);
  assert_int_equal(seg_size(f, 3), (int64_t)REC_OFF(2));
  assert_int_equal(count_segments(f), 3);

  coll_t c = {0};
  fe_journal_report_t rep;
  fe_journal_t *j = jopen(f, &c, &rep);
  assert_int_equal(rep.torn, 0);
  assert_int_equal(c.n, 16);
  for (uint64_t i = 1; i <= 16; i++) {
    assert_int_equal(c.v[i - 1].lsn, i);
    assert_true(payload_ok(&c.v[i - 1], i, 500));
  }
  coll_free(&c);
  assert_int_equal(append_key(j, FE_JREC_EVENT, 17, 500), 17);
  assert_fe_ok(fe_journal_close(j));
  expect_records(f, 17, len_500);
  /* a second run finds nothing to cut */
  t = truncate_ok(f, 0);
  assert_int_equal(t.hole, 0);
  assert_int_equal(t.truncated, 0);
  assert_int_equal(t.walk.records, 17);
}

/* A hole in a segment that is not the last: the segments after it go,
 * and what they held is counted first. */
static void test_truncate_hole_in_earlier_segment(void **state) {
  fx_t *f = *state;
  build3(f);
  poke(f, 1, REC_OFF(3) + 100, 0x10); /* lsn 4's payload */
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "not the last");
  const uint64_t seg = HDR + 7 * 536;

  snap_t s = snap_take(f);
  fe_journal_truncate_report_t t = truncate_ok(f, FE_JOURNAL_TRUNCATE_DRY_RUN);
  snap_same(f, &s);
  assert_int_equal(t.hole, 1);
  assert_int_equal(t.cut_segment, 1);
  assert_int_equal(t.cut_offset, REC_OFF(3));
  assert_non_null(strstr(t.cut_why, "checksum"));
  assert_int_equal(t.lost_records, 3 + 7 + 7);
  assert_int_equal(t.lost_first_lsn, 5);
  assert_int_equal(t.lost_last_lsn, 21);
  assert_int_equal(t.removed_segments, 2);
  assert_int_equal(t.first_removed, 2);
  assert_int_equal(t.last_removed, 3);
  assert_int_equal(t.discarded_bytes, seg - REC_OFF(3) + 2 * seg);
  assert_int_equal(t.walk.records, 3);

  t = truncate_ok(f, 0);
  assert_int_equal(t.truncated, 1);
  assert_int_equal(t.removed_segments, 2);
  assert_int_equal(count_segments(f), 1);
  assert_int_equal(seg_size(f, 1), (int64_t)REC_OFF(3));
  assert_int_equal(seg_size(f, 2), -1);
  assert_int_equal(seg_size(f, 3), -1);
  expect_records(f, 3, len_500);
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 4; i <= 9; i++) /* fills segment 1, rotates into 2 */
    assert_int_equal(append_key(j, FE_JREC_EVENT, i, 500), i);
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(count_segments(f), 2);
  expect_records(f, 9, len_500);
}

/* A segment whose header never reached the disk, with a later segment
 * after it: the hole starts at its offset 0, so it goes whole with every
 * later one, and open replays the segments before it.  The first segment
 * headerless leaves nothing to keep: refused. */
static void test_truncate_headerless_segment(void **state) {
  fx_t *f = *state;
  build3(f);
  const uint64_t seg = HDR + 7 * 536;
  char p[160];
  seg_path(f, p, sizeof p, 2);
  assert_int_equal(truncate(p, 10), 0);
  fe_diag_t d = jopen_fails(f, FE_ECORRUPT, NULL, NULL);
  assert_msg_has(&d, "shorter than its header, and not the last");

  snap_t s = snap_take(f);
  fe_journal_truncate_report_t t = truncate_ok(f, FE_JOURNAL_TRUNCATE_DRY_RUN);
  snap_same(f, &s);
  assert_int_equal(t.hole, 1);
  assert_int_equal(t.cut_segment, 2);
  assert_int_equal(t.cut_offset, 0);
  assert_non_null(strstr(t.cut_why, "shorter than its header"));
  assert_int_equal(t.removed_segments, 2);
  assert_int_equal(t.first_removed, 2);
  assert_int_equal(t.last_removed, 3);
  assert_int_equal(t.lost_records, 7);
  assert_int_equal(t.lost_first_lsn, 15);
  assert_int_equal(t.lost_last_lsn, 21);
  assert_int_equal(t.discarded_bytes, 10 + seg);
  assert_int_equal(t.walk.records, 7);
  assert_int_equal(t.walk.next_lsn, 8);

  t = truncate_ok(f, 0);
  assert_int_equal(t.truncated, 1);
  assert_int_equal(count_segments(f), 1);
  assert_int_equal(seg_size(f, 1), (int64_t)seg);
  assert_int_equal(seg_size(f, 2), -1);
  assert_int_equal(seg_size(f, 3), -1);
  expect_records(f, 7, len_500);
  fe_journal_t *j = jopen(f, NULL, NULL);
  for (uint64_t i = 8; i <= 9; i++) /* rotates into a new segment 2 */
    assert_int_equal(append_key(j, FE_JREC_EVENT, i, 500), i);
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(count_segments(f), 2);
  expect_records(f, 9, len_500);

  /* Segment 1 headerless, 2 after it: nothing before the hole. */
  seg_path(f, p, sizeof p, 1);
  assert_int_equal(truncate(p, 10), 0);
  d = truncate_refused(f, 0, FE_ECORRUPT);
  assert_non_null(strstr(d.msg, "shorter than its header"));
  truncate_refused(f, FE_JOURNAL_TRUNCATE_DRY_RUN, FE_ECORRUPT);
}

/* Nothing to cut: a clean journal, an empty one, a torn tail (left for
 * open, which repairs it). */
static void test_truncate_nothing_to_cut(void **state) {
  fx_t *f = *state;
  build3(f);
  for (unsigned flags = 0; flags <= FE_JOURNAL_TRUNCATE_DRY_RUN; flags++) {
    snap_t s = snap_take(f);
    fe_journal_truncate_report_t t = truncate_ok(f, flags);
    snap_same(f, &s);
    assert_int_equal(t.hole, 0);
    assert_int_equal(t.truncated, 0);
    assert_int_equal(t.lost_records, 0);
    assert_int_equal(t.discarded_bytes, 0);
    assert_int_equal(t.walk.records, 21);
    assert_int_equal(t.walk.torn, 0);
  }
  char p[160];
  seg_path(f, p, sizeof p, 3);
  static const uint8_t junk[40] = {7, 7, 7};
  append_bytes(p, junk, sizeof junk);
  snap_t s = snap_take(f);
  fe_journal_truncate_report_t t = truncate_ok(f, 0);
  snap_same(f, &s);
  assert_int_equal(t.hole, 0);
  assert_int_equal(t.walk.torn, 1);
  assert_int_equal(t.walk.torn_segment, 3);
  assert_int_equal(t.walk.torn_bytes, 40);
  expect_records(f, 21, len_500); /* open cuts the torn tail */

  char empty[160];
  snprintf(empty, sizeof empty, "%s/empty", f->root);
  assert_int_equal(mkdir(empty, 0755), 0);
  fe_diag_t d;
  assert_fe_ok(fe_journal_truncate_corrupt(empty, 0, &t, &d));
  assert_int_equal(t.hole, 0);
  assert_int_equal(t.walk.segments, 0);
}

/* What is not a hole is refused, before or after the hole, and no file is
 * touched: an unknown version, a foreign or damaged segment header, a gap,
 * an lsn discontinuity. */
static void test_truncate_refuses_what_is_not_a_hole(void **state) {
  fx_t *f = *state;
  build3(f);
  for (unsigned flags = 0; flags <= FE_JOURNAL_TRUNCATE_DRY_RUN; flags++) {
    poke(f, 3, 8, 0x06); /* version 7, no hole */
    fe_diag_t d = truncate_refused(f, flags, FE_EVERSION);
    assert_msg_has(&d, "0000000000000003.fej");
    assert_msg_has(&d, "version 7");
    /* a hole in segment 1: segment 3 would be removed, but it is not ours
     * to remove */
    poke(f, 1, REC_OFF(2) + 64, 0x01);
    d = truncate_refused(f, flags, FE_EVERSION);
    assert_msg_has(&d, "0000000000000003.fej");
    poke(f, 3, 8, 0x06);
    poke(f, 2, 0, 0x01); /* magic */
    d = truncate_refused(f, flags, FE_ECORRUPT);
    assert_msg_has(&d, "magic");
    poke(f, 2, 0, 0x01);
    poke(f, 3, 40, 0x01); /* header checksum (reserved bytes) */
    d = truncate_refused(f, flags, FE_ECORRUPT);
    assert_msg_has(&d, "0000000000000003.fej: segment header checksum");
    poke(f, 3, 40, 0x01);
    poke(f, 1, REC_OFF(2) + 64, 0x01);
  }
  set_first_lsn(f, 2, 9); /* segment 1 ends at 7 */
  zero_range(f, 3, REC_OFF(1), 536); /* a hole after the discontinuity */
  fe_diag_t d = truncate_refused(f, 0, FE_ECORRUPT);
  assert_msg_has(&d, "lsn discontinuity");
  set_first_lsn(f, 2, 8);
  set_record_lsn(f, 2, REC_OFF(2), 40);
  d = truncate_refused(f, 0, FE_ECORRUPT);
  assert_msg_has(&d, "lsn 40, expected 10");
  set_record_lsn(f, 2, REC_OFF(2), 10);
  /* now the hole alone: cut */
  fe_journal_truncate_report_t t = truncate_ok(f, 0);
  assert_int_equal(t.cut_segment, 3);
  assert_int_equal(t.lost_records, 5);
  expect_records(f, 15, len_500);
  /* a gap in the segments */
  char p[160], moved[160];
  seg_path(f, p, sizeof p, 2);
  snprintf(moved, sizeof moved, "%s/moved", f->root);
  assert_int_equal(rename(p, moved), 0);
  d = truncate_refused(f, 0, FE_ECORRUPT);
  assert_msg_has(&d, "0000000000000002.fej is missing");
  assert_int_equal(rename(moved, p), 0);
}

/* A writer holds the journal: refused (dry run too), nothing changed;
 * once it closed, the cut goes through. */
static void test_truncate_refused_beside_a_writer(void **state) {
  fx_t *f = *state;
  build3(f);
  fe_journal_t *j = jopen(f, NULL, NULL);
  zero_range(f, 1, REC_OFF(1), 536); /* not the writer's active segment */
  fe_diag_t d = truncate_refused(f, 0, FE_ESTATE);
  assert_msg_has(&d, "writer");
  truncate_refused(f, FE_JOURNAL_TRUNCATE_DRY_RUN, FE_ESTATE);
  assert_fe_ok(fe_journal_close(j));
  fe_journal_truncate_report_t t = truncate_ok(f, 0);
  assert_int_equal(t.truncated, 1);
  assert_int_equal(t.cut_segment, 1);
  expect_records(f, 1, len_500);
  /* the lock went with the call */
  int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
  assert_true(dfd >= 0);
  assert_int_equal(flock(dfd, LOCK_EX | LOCK_NB), 0); /* released after */
  close(dfd);
}

static void test_truncate_bad_args(void **state) {
  fx_t *f = *state;
  fe_diag_t d;
  fe_journal_truncate_report_t t;
  memset(&d, 0, sizeof d);
  assert_fe(fe_journal_truncate_corrupt(NULL, 0, &t, &d), FE_EINVAL);
  assert_msg_has(&d, "NULL or empty");
  assert_fe(fe_journal_truncate_corrupt("", 0, &t, &d), FE_EINVAL);
  assert_msg_has(&d, "NULL or empty");
  assert_fe(fe_journal_truncate_corrupt(f->dir, 0, &t, &d), FE_ENOTFOUND);
  assert_msg_has(&d, f->dir);
  build3(f);
  assert_fe(fe_journal_truncate_corrupt(f->dir, 6, &t, &d), FE_EINVAL);
  assert_msg_has(&d, "unknown truncate flags 0x6");
  char p[160];
  seg_path(f, p, sizeof p, 1);
  assert_fe(fe_journal_truncate_corrupt(p, 0, &t, &d), FE_EIO);
  assert_msg_has(&d, "Not a directory");
  /* report and diag may be NULL */
  zero_range(f, 2, REC_OFF(0), 8);
  assert_fe(fe_journal_truncate_corrupt(f->dir, 0, NULL, NULL), 0);
  expect_records(f, 7, len_500);
}

/* ------------------------------------------------------------- tool */

#ifdef FE_JOURNAL_TOOL
/* Runs the tool with args (NULL-terminated), stdout and stderr into the
 * files out and err under root; returns its exit status. */
static int run_tool(const fx_t *f, const char *const *args) {
  char out[160], err[160];
  snprintf(out, sizeof out, "%s/out", f->root);
  snprintf(err, sizeof err, "%s/err", f->root);
  char *argv[8];
  int n = 0;
  argv[n++] = (char *)FE_JOURNAL_TOOL;
  for (; args[n - 1] != NULL && n < 7; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid;
  int rc = posix_spawn(&pid, FE_JOURNAL_TOOL, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    fail_msg("cannot run %s: %s", FE_JOURNAL_TOOL, strerror(rc));
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Contents of root/name, NUL-terminated (free it). */
static char *tool_file(const fx_t *f, const char *name) {
  char p[160];
  snprintf(p, sizeof p, "%s/%s", f->root, name);
  size_t len;
  uint8_t *b = read_all(p, &len);
  char *s = malloc(len + 1);
  memcpy(s, b, len);
  s[len] = '\0';
  free(b);
  return s;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void expect_output(const fx_t *f, const char *name, const char *needle) {
  char *s = tool_file(f, name);
  if (strstr(s, needle) == NULL)
    fail_msg("fe-journal %s: \"%s\" not in:\n%s", name, needle, s);
  free(s);
}
#endif

static void test_tool(void **state) {
#ifndef FE_JOURNAL_TOOL
  (void)state;
  skip();
#else
  fx_t *f = *state;
  build3(f);
  const char *d = f->dir;
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, NULL}), 0);
  expect_output(f, "out", "21 records in 3 segments, lsn 1..21");

  assert_int_equal(run_tool(f, (const char *[]){"dump", "--json", d, NULL}), 0);
  char *s = tool_file(f, "out");
  assert_int_equal(count_lines(s), 21);
  assert_non_null(strstr(s, "{\"lsn\":1,\"type\":\"EVENT\",\"type_id\":1,"
                            "\"len\":500,\"segment\":1,\"offset\":64,"));
  assert_non_null(strstr(s, "{\"lsn\":2,\"type\":\"OUTCOME\","));
  assert_non_null(strstr(s, "\"time\":\"2023-11-14T22:13:21.000000000Z\""));
  free(s);
  assert_int_equal(run_tool(f, (const char *[]){"dump", d, NULL}), 0);
  s = tool_file(f, "out");
  assert_int_equal(count_lines(s), 21);
  assert_non_null(strstr(s, "lsn=8 type=OUTCOME len=500 at=2:64 "));
  free(s);
  assert_int_equal(run_tool(f, (const char *[]){"stats", d, NULL}), 0);
  expect_output(f, "out", "records: 21\n");
  expect_output(f, "out", "types: EVENT=11 OUTCOME=10\n");
  expect_output(f, "out", "torn_tail: none\n");

  /* a host type is shown by number */
  fe_journal_t *j = jopen(f, NULL, NULL);
  append_key(j, 0x8123, 22, 3);
  assert_fe_ok(fe_journal_close(j));
  assert_int_equal(run_tool(f, (const char *[]){"dump", "--json", d, NULL}), 0);
  expect_output(f, "out", "{\"lsn\":22,\"type\":33059,\"type_id\":33059,"
                          "\"len\":3,");

  /* torn: exit 2, reported, not repaired */
  char p[160];
  seg_path(f, p, sizeof p, 3); /* the 3-byte record still fit segment 3 */
  static const uint8_t junk[40] = {9, 9, 9};
  append_bytes(p, junk, sizeof junk);
  int64_t size = file_size(p);
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, NULL}), 2);
  expect_output(f, "err", "torn tail in segment 3 at offset 3856: 40 bytes");
  assert_int_equal(file_size(p), size);
  assert_int_equal(run_tool(f, (const char *[]){"dump", "--json", d, NULL}), 2);
  s = tool_file(f, "out");
  assert_int_equal(count_lines(s), 22);
  free(s);
  assert_int_equal(run_tool(f, (const char *[]){"stats", d, NULL}), 2);
  expect_output(f, "out", "torn_tail: segment 3 offset 3856, 40 bytes");

  /* corrupt: exit 1 with the precise error */
  poke(f, 2, REC_OFF(1) + 60, 0x08);
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, NULL}), 1);
  expect_output(f, "err", "ECORRUPT");
  expect_output(f, "err", "0000000000000002.fej offset 600");

  /* usage errors */
  assert_int_equal(run_tool(f, (const char *[]){NULL}), 64);
  assert_int_equal(run_tool(f, (const char *[]){"verify", NULL}), 64);
  assert_int_equal(run_tool(f, (const char *[]){"frob", d, NULL}), 64);
  assert_int_equal(run_tool(f, (const char *[]){"dump", "--xml", d, NULL}), 64);
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, "x", NULL}), 64);
  expect_output(f, "err", "usage: fe-journal");
  char missing[160];
  snprintf(missing, sizeof missing, "%s/nope", f->root);
  assert_int_equal(run_tool(f, (const char *[]){"verify", missing, NULL}), 1);
#endif
}

/* The last record whole but damaged (a payload byte, then a padding byte
 * flipped): cut off like a torn tail, but reported apart, with its lsn,
 * as a possible loss of an acknowledged record; by the scan too, and by
 * fe-journal. */
static void test_damaged_last_record(void **state) {
  fx_t *f = *state;
  f->cfg.fsync = FE_FSYNC_NONE;
  const size_t frame = 336, start = HDR + 4 * frame;
  const size_t where[2] = {start + 32 + 100, start + 32 + 300 + 2};
  for (int k = 0; k < 2; k++) {
    build(f, 5, len_300, 5);
    poke(f, 1, where[k], 0x40);
    fe_journal_report_t rep;
    assert_fe_ok(fe_journal_scan(f->dir, 0, NULL, NULL, &rep, NULL));
    assert_int_equal(rep.tail_corrupt, 1);
    assert_int_equal(rep.tail_corrupt_lsn, 5);
    assert_fe(fe_journal_scan(f->dir, FE_JOURNAL_SCAN_STRICT, NULL, NULL, &rep,
                              NULL), FE_ECORRUPT);
#ifdef FE_JOURNAL_TOOL
    assert_int_equal(run_tool(f, (const char *[]){"verify", f->dir, NULL}), 2);
    expect_output(f, "err", "WARNING");
    expect_output(f, "err", "(lsn 5, 336 bytes) is whole but has a ");
    expect_output(f, "err", "possible loss of an acknowledged record");
#endif
    coll_t c = {0};
    fe_journal_t *j = jopen(f, &c, &rep);
    assert_int_equal(c.n, 4);
    assert_int_equal(rep.torn, 1);
    assert_int_equal(rep.truncated, 1);
    assert_int_equal(rep.torn_offset, start);
    assert_int_equal(rep.tail_corrupt, 1);
    assert_int_equal(rep.tail_corrupt_lsn, 5);
    assert_non_null(strstr(rep.tail_corrupt_msg, "0000000000000001.fej offset "
                                                 "1408: the last record (lsn 5"));
    assert_non_null(strstr(rep.tail_corrupt_msg, k == 0 ? "checksum mismatch"
                                                        : "non-zero record "
                                                          "padding"));
    assert_fe_ok(fe_journal_close(j));
    coll_free(&c);
    /* the report is about that open only */
    j = jopen(f, &c, &rep);
    assert_int_equal(rep.tail_corrupt, 0);
    assert_int_equal(rep.tail_corrupt_lsn, 0);
    assert_fe_ok(fe_journal_close(j));
    coll_free(&c);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  }
}

/* fe-journal pointed at the wrong place: an empty directory, one holding
 * an unrelated file, the parent of a journal.  Every command says there
 * is no journal (naming the subdirectory that holds one) and exits 1;
 * none prints "ok".  help, --help and --version exit 0 on stdout. */
static void test_tool_no_journal(void **state) {
#ifndef FE_JOURNAL_TOOL
  (void)state;
  skip();
#else
  fx_t *f = *state;
  char empty[160], other[160], file[200];
  snprintf(empty, sizeof empty, "%s/empty", f->root);
  snprintf(other, sizeof other, "%s/other", f->root);
  snprintf(file, sizeof file, "%s/notes.txt", other);
  assert_int_equal(mkdir(empty, 0755), 0);
  assert_int_equal(mkdir(other, 0755), 0);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fputs("not a journal\n", fp);
  fclose(fp);
  build3(f); /* a journal in root/j */
  const char *dirs[] = {empty, other, f->root};
  for (int i = 0; i < 3; i++) {
    const char *d = dirs[i];
    const char *const cmds[][4] = {{"verify", d, NULL},
                                   {"stats", d, NULL},
                                   {"dump", d, NULL},
                                   {"dump", "--json", d, NULL},
                                   {"truncate", "--dry-run", d, NULL},
                                   {"truncate", "--yes", d, NULL}};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
      if (run_tool(f, cmds[c]) != 1)
        fail_msg("fe-journal %s on %s: not exit 1", cmds[c][0], d);
      expect_output(f, "err", "no journal here");
      char *out = tool_file(f, "out");
      if (strstr(out, "ok") != NULL || strstr(out, "records") != NULL)
        fail_msg("fe-journal %s on %s printed:\n%s", cmds[c][0], d, out);
      free(out);
    }
  }
  assert_int_equal(run_tool(f, (const char *[]){"verify", f->root, NULL}), 1);
  char hint[200];
  snprintf(hint, sizeof hint, "%s holds one", f->dir);
  expect_output(f, "err", hint);
  assert_int_equal(run_tool(f, (const char *[]){"verify", f->dir, NULL}), 0);
  /* help: the same text and status however it is asked for */
  const char *helps[] = {"help", "--help", "-h"};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(run_tool(f, (const char *[]){helps[i], NULL}), 0);
    expect_output(f, "out", "usage: fe-journal");
  }
  assert_int_equal(run_tool(f, (const char *[]){"--version", NULL}), 0);
  expect_output(f, "out", "fe-journal (libfinevent) 0.1.0, journal format "
                          "version 1");
#endif
}

/* fe-journal truncate: without --yes it shows and refuses; --dry-run
 * shows and exits 3; --yes cuts; a writer's lock and what is not a hole
 * are refused with exit 1. */
static void test_tool_truncate(void **state) {
#ifndef FE_JOURNAL_TOOL
  (void)state;
  skip();
#else
  fx_t *f = *state;
  build3(f);
  const char *d = f->dir;
  zero_range(f, 3, REC_OFF(2), 2 * 536);
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, NULL}), 1);
  snap_t s = snap_take(f);
  assert_int_equal(run_tool(f, (const char *[]){"truncate", d, NULL}), 64);
  expect_output(f, "out", "hole in segment 3 (0000000000000003.fej) at "
                          "offset 1136: zero-filled record header");
  expect_output(f, "out", "would cut there: 2680 bytes discarded, 0 "
                          "segments removed");
  expect_output(f, "err", "only with --yes (nothing was changed)");
  expect_output(f, "err", "usage: fe-journal");
  snap_same(f, &s);
  s = snap_take(f);
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--dry-run", d, NULL}), 3);
  expect_output(f, "out", "3 valid records after the hole would be lost: "
                          "lsn 19..21");
  expect_output(f, "out", "kept: 16 records, lsn 1..16; the next record "
                          "gets lsn 17");
  snap_same(f, &s);
  /* the owner has it open: refused */
  fe_journal_t *j = NULL;
  int dfd = open(d, O_RDONLY | O_DIRECTORY);
  assert_true(dfd >= 0);
  assert_int_equal(flock(dfd, LOCK_EX | LOCK_NB), 0); /* as a writer does */
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--yes", d, NULL}), 1);
  expect_output(f, "err", "ESTATE");
  expect_output(f, "err", "a writer has it open");
  close(dfd);
  assert_int_equal(seg_size(f, 3), (int64_t)(HDR + 7 * 536));
  /* usage errors change nothing */
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--force", d, NULL}), 64);
  assert_int_equal(run_tool(f, (const char *[]){"truncate", NULL}), 64);
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--yes", d, "x", NULL}), 64);
  assert_int_equal(seg_size(f, 3), (int64_t)(HDR + 7 * 536));

  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--yes", d, NULL}), 0);
  expect_output(f, "out", "cut there: 2680 bytes discarded");
  expect_output(f, "out", "3 valid records after the hole are lost: lsn "
                          "19..21");
  assert_int_equal(seg_size(f, 3), (int64_t)REC_OFF(2));
  assert_int_equal(run_tool(f, (const char *[]){"verify", d, NULL}), 0);
  expect_output(f, "out", "16 records in 3 segments, lsn 1..16");
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--dry-run", d, NULL}), 0);
  expect_output(f, "out", "no hole: 16 records in 3 segments");
  j = jopen(f, NULL, NULL);
  assert_fe_ok(fe_journal_close(j));

  /* not a hole: refused, exit 1 */
  poke(f, 2, 8, 0x02);
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--yes", d, NULL}), 1);
  expect_output(f, "err", "EVERSION");
  char missing[160];
  snprintf(missing, sizeof missing, "%s/nope", f->root);
  assert_int_equal(
      run_tool(f, (const char *[]){"truncate", "--dry-run", missing, NULL}),
      1);
  expect_output(f, "err", "ENOTFOUND");
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      JTEST(test_defaults_and_config),
      JTEST(test_type_names),
      JTEST(test_null_args),
      JTEST(test_round_trip),
      JTEST(test_append_invalid),
      JTEST(test_lsn_continuity),
      JTEST(test_rotation),
      JTEST(test_buffer_full_flush),
      JTEST(test_fsync_group),
      JTEST(test_fsync_interval),
      JTEST(test_rotation_fsyncs_old_segment),
      JTEST(test_fsync_none),
      JTEST(test_wait_durable),
      JTEST(test_threads),
      JTEST(test_retire),
      JTEST(test_retire_failure_counted),
      JTEST(test_retire_never_gap),
      JTEST(test_retire_respects_pins),
      JTEST(test_pins_full_and_bad_args),
      JTEST(test_read_only),
      JTEST(test_single_writer),
      JTEST(test_dir_one_level),
      JTEST(test_replay_abort),
      JTEST(test_torn_every_offset),
      JTEST(test_zero_tail),
      JTEST(test_bad_magic),
      JTEST(test_bad_version),
      JTEST(test_bad_header_checksum),
      JTEST(test_corrupt_middle_refused),
      JTEST(test_segment_gap),
      JTEST(test_lsn_discontinuity),
      JTEST(test_truncated_non_last),
      JTEST(test_short_last_segment),
      JTEST(test_short_only_segment),
      JTEST(test_tmp_leftover),
      JTEST(test_bitflip_fuzz),
      JTEST(test_write_failure),
      JTEST(test_scan),
      JTEST(test_truncate_hole_in_last_segment),
      JTEST(test_truncate_hole_in_earlier_segment),
      JTEST(test_truncate_headerless_segment),
      JTEST(test_truncate_nothing_to_cut),
      JTEST(test_truncate_refuses_what_is_not_a_hole),
      JTEST(test_truncate_refused_beside_a_writer),
      JTEST(test_truncate_bad_args),
      JTEST(test_damaged_last_record),
      JTEST(test_tool),
      JTEST(test_tool_no_journal),
      JTEST(test_tool_truncate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
