/*
 * gen_seeds: writes the seed corpora of the journal harnesses from real
 * journals.  Not a harness (no fuzz_ prefix); `make fuzz-seeds` builds and
 * runs it, and its output is committed under test/fuzz/corpus/.
 *
 * A journaled bus (fuzz_rig.h) with a saga coordinator on its journal runs
 * orders that complete, get rejected, dead-lettered, purged and redriven,
 * plus sagas that complete, wait, retry and abort.  Two snapshots of the
 * journal directory are taken: in flight (events journaled, intents
 * written, no outcome yet) and after a clean stop.  From each:
 *   fuzz_journal_scan/, fuzz_fe_journal/  the segments (fuzz_util.h format)
 *                                         as they are, with the checksum
 *                                         fix-up flag, and with strict
 *   fuzz_bus_recovery/                    the records: u16 type, u32 len,
 *                                         payload, ...
 *   fuzz_jrec/                            each event, outcome and saga
 *                                         payload on its own (a selector
 *                                         byte first), and all saga
 *                                         records in sequence
 * Usage: gen_seeds OUTDIR (OUTDIR/<harness>/ must not need to exist).
 */
#include "fuzz_util.h"
#include "fuzz_rig.h"

#include <errno.h>
#include <inttypes.h>

static uint64_t fake_now = 1;
static uint64_t now_fn(void *u) { (void)u; return fake_now; }
static uint64_t wall_fn(void *u) {
  (void)u;
  return UINT64_C(1700000000000000000) + fake_now;
}

static const char *out_dir;
static char jdir[300];

static void die(const char *what, int rc) {
  fprintf(stderr, "gen_seeds: %s: %d (%s)\n", what, rc, fe_err_name(rc));
  exit(1);
}

static void put_file(const char *harness, const char *name, const void *p,
                     size_t n) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", out_dir, harness);
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    die("mkdir", FE_EIO);
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, harness, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
    die(path, FE_EIO);
}

/* A growing byte buffer. */
typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf_t;

static void add(buf_t *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
      die("realloc", FE_ENOMEM);
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void add_file(buf_t *b, const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    die(path, FE_EIO);
  uint8_t chunk[4096];
  size_t k;
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
    add(b, chunk, k);
  fclose(f);
}

typedef struct records {
  buf_t all;   /* fuzz_bus_recovery's format */
  buf_t sagas; /* fuzz_jrec's saga sequence: u32 len, record, ... */
  const char *snap;
  unsigned n;
} records_t;

static int take_record(const fe_journal_record_t *r, void *user) {
  records_t *rs = user;
  uint16_t type = r->type;
  uint32_t len = r->len;
  add(&rs->all, &type, 2);
  add(&rs->all, &len, 4);
  add(&rs->all, r->data, len);
  int sel = type == FE_JREC_EVENT ? 0 : type == FE_JREC_OUTCOME ? 1
          : type == FE_JREC_SAGA ? 2 : -1;
  if (sel == 2) {
    add(&rs->sagas, &len, 4);
    add(&rs->sagas, r->data, len);
  }
  if (sel >= 0) {
    buf_t one = {0};
    uint8_t s = (uint8_t)sel;
    add(&one, &s, 1);
    if (sel == 2) {
      add(&one, &len, 4);
    }
    add(&one, r->data, len);
    char name[64];
    snprintf(name, sizeof name, "%s-%s-%u", rs->snap,
             fe_journal_type_name(type), rs->n);
    put_file("fuzz_jrec", name, one.p, one.n);
    free(one.p);
  }
  rs->n++;
  return 0;
}

/* Writes every corpus file of one snapshot of jdir. */
static void snapshot(const char *snap) {
  fe_journal_report_t rep;
  fe_diag_t d;
  records_t rs;
  memset(&rs, 0, sizeof rs);
  rs.snap = snap;
  int rc = fe_journal_scan(jdir, 0, take_record, &rs, &rep, &d);
  if (rc != 0) {
    fprintf(stderr, "%s\n", d.msg);
    die("scan", rc);
  }
  char name[64];
  snprintf(name, sizeof name, "%s-records", snap);
  put_file("fuzz_bus_recovery", name, rs.all.p, rs.all.n);
  uint8_t sel = 3; /* fuzz_jrec: the saga sequence */
  buf_t seq = {0};
  add(&seq, &sel, 1);
  add(&seq, rs.sagas.p, rs.sagas.n);
  snprintf(name, sizeof name, "%s-saga-sequence", snap);
  put_file("fuzz_jrec", name, seq.p, seq.n);
  free(seq.p);
  static const uint8_t flag_sets[3] = {0, FZ_FIX_SUMS, FZ_FIX_SUMS | FZ_STRICT};
  for (int v = 0; v < 3; v++) {
    buf_t segs = {0};
    add(&segs, &flag_sets[v], 1);
    for (uint64_t i = rep.first_segment;
         i != 0 && i <= rep.last_segment && i < FZ_MAX_SEGS; i++) {
      char seg[JNAME_MAX], path[600];
      fe__jseg_name(seg, i, 0);
      snprintf(path, sizeof path, "%s/%s", jdir, seg);
      buf_t file = {0};
      add_file(&file, path);
      uint32_t len = (uint32_t)file.n;
      add(&segs, &len, 4);
      add(&segs, file.p, file.n);
      free(file.p);
    }
    snprintf(name, sizeof name, "%s-segments-%d", snap, v);
    put_file("fuzz_journal_scan", name, segs.p, segs.n);
    put_file("fuzz_fe_journal", name, segs.p, segs.n);
    free(segs.p);
  }
  free(rs.all.p);
  free(rs.sagas.p);
  printf("gen_seeds: %s: %" PRIu64 " records in %" PRIu64 " segments\n", snap,
         rep.records, rep.segments);
}

static int submit(fe_bus_t *bus, int qty, const char *id) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = 7;
  o.quantity = qty;
  o.price = 10 * FE_PRICE_SCALE;
  snprintf(o.client_order_id, sizeof o.client_order_id, "%s", id);
  uint8_t user[24] = {0xab, 0xcd};
  fe_submit_t in = {.type = FE_EV_NEW_ORDER, .order = &o, .trace_id = 5,
                    .user_area = user, .user_len = (uint32_t)(qty % 3) * 8};
  return fe_bus_submit(bus, &in, NULL);
}

static void saga_run(fe_saga_coord_t *c, int rounds) {
  for (int i = 0; i < rounds; i++) {
    fake_now += 2000;
    fe_saga_poll(c, 64);
  }
}

typedef struct pick {
  uint64_t ids[4];
  int n;
} pick_t;

static int pick_one(const fe_dlq_entry_t *e, void *user) {
  pick_t *p = user;
  if (p->n < 4)
    p->ids[p->n++] = e->id;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_seeds OUTDIR\n");
    return 64;
  }
  out_dir = argv[1];
  if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
    die(out_dir, FE_EIO);
  snprintf(jdir, sizeof jdir, "/tmp/fe-gen-seeds-XXXXXX");
  if (mkdtemp(jdir) == NULL)
    die("mkdtemp", FE_EIO);

  fz_rig_t r;
  memset(&r, 0, sizeof r);
  int rc = fz_saga_create(&r.saga, now_fn, wall_fn);
  if (rc != 0)
    die("saga", rc);
  fe_diag_t d;
  if ((rc = fz_bus_create(&r, jdir, &d)) != 0) {
    fprintf(stderr, "%s\n", d.msg);
    die("bus", rc);
  }
  if ((rc = fe_saga_use_journal(r.saga, fe_bus_journal(r.bus), &d)) != 0)
    die("use_journal", rc);
  if ((rc = fe_bus_start(r.bus, &d)) != 0)
    die("start", rc);
  saga_run(r.saga, 1);

  char id[16];
  for (int i = 0; i < 12; i++) {
    snprintf(id, sizeof id, "G-%d", i);
    if ((rc = submit(r.bus, i % 8, id)) != 0)
      die("submit", rc);
  }
  fz_poll_all(r.bus);
  submit(r.bus, 3, "G-3"); /* a duplicate: never journaled */

  uint64_t sid;
  if ((rc = fe_saga_start(r.saga, 0, "ctx-one", 7, &sid)) != 0)
    die("saga_start", rc);
  saga_run(r.saga, 4);
  if ((rc = fe_saga_start(r.saga, 0, "ctx-two", 7, &sid)) != 0)
    die("saga_start", rc);
  saga_run(r.saga, 4);
  fe_saga_abort(r.saga, sid, 77);
  saga_run(r.saga, 8);

  pick_t p;
  memset(&p, 0, sizeof p);
  fe_dlq_foreach(r.dlq, NULL, pick_one, &p);
  if (p.n >= 2) {
    fe_dlq_purge(r.dlq, p.ids[0]);
    fe_dlq_redrive(r.dlq, p.ids[1], fe_bus_redrive, r.bus);
  }
  fz_poll_all(r.bus);

  /* In flight: journaled and executed (intents), outcomes not yet. */
  for (int i = 20; i < 26; i++) {
    snprintf(id, sizeof id, "G-%d", i);
    submit(r.bus, i % 8, id);
  }
  fe_bus_poll(r.bus, 1); /* journal */
  fe_bus_poll(r.bus, 0); /* validation, execution: intents */
  fe_journal_commit(fe_bus_journal(r.bus));
  saga_run(r.saga, 2);
  fe_journal_commit(fe_bus_journal(r.bus));
  snapshot("inflight");

  fz_poll_all(r.bus);
  if (fz_pending_token != 0)
    fe_saga_complete(r.saga, fz_pending_token, FE_SAGA_DONE, 0);
  saga_run(r.saga, 8);
  fz_bus_destroy(&r);
  snapshot("stopped");

  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", jdir);
  return system(cmd) == 0 ? 0 : 1;
}
