/*
 * fuzz_bus_recovery: the bus's recovery (lib/durable.c) and the saga
 * coordinator's replay of the same journal, on fuzzed records: every
 * decoder of the bus's event, outcome, intent and dead-letter records
 * (lib/jrec.h) and of saga records, as fe_bus_create() runs them, then
 * fe_bus_start()'s re-drive, the in-doubt answers and the coordinator's
 * open.
 *
 * Input: records, each u16 type, u32 len, then len payload bytes (a len
 * past the end takes what is left).  The harness frames them into a valid
 * segment (lsns from 1, checksums right), so every record reaches the
 * decoders; the framing itself is fuzz_journal_scan's.  The bus and the
 * coordinator are fuzz_rig.h's, as the seeds (gen_seeds.c) were written.
 */
#include "fuzz_util.h"
#include "fuzz_rig.h"

static uint64_t now = 1;
static uint64_t now_fn(void *u) { (void)u; return now; }
static uint64_t wall_fn(void *u) { (void)u; return UINT64_C(1) << 60; }

/* Frames the input's records into segment 1 of the scratch dir. */
static void write_segment(const uint8_t *data, size_t size) {
  size_t cap = JHDR + 64, n = JHDR;
  uint8_t *seg = malloc(cap);
  fe__jseg_encode(seg, 1, 1, 1);
  uint64_t lsn = 1;
  size_t off = 0;
  while (size - off >= 6) {
    uint16_t type;
    uint32_t len;
    memcpy(&type, data + off, 2);
    memcpy(&len, data + off + 2, 4);
    off += 6;
    if (len > size - off)
      len = (uint32_t)(size - off);
    if (type == 0)
      type = FE_JREC_HOST; /* a frame of type 0 is the scanner's business */
    uint64_t fsz = fe__jframe_size(len);
    if (n + fsz > cap) {
      cap = (n + fsz) * 2;
      seg = realloc(seg, cap);
    }
    fe__jframe_encode(seg + n, type, lsn++, 2, data + off, len);
    n += fsz;
    off += len;
  }
  char name[JNAME_MAX];
  fe__jseg_name(name, 1, 0);
  fz_write(name, seg, n);
  free(seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_setup();
  fz_clear();
  write_segment(data, size);
  fz_rig_t r;
  memset(&r, 0, sizeof r);
  if (fz_saga_create(&r.saga, now_fn, wall_fn) != 0)
    abort();
  fe_diag_t d;
  int rc = fz_bus_create(&r, fz_dir, &d);
  if (rc == 0) {
    fe_bus_recovery_t rec;
    if (fe_bus_recovery(r.bus, &rec) != 0 || rec.finished > rec.events)
      abort();
    if (fe_saga_use_journal(r.saga, fe_bus_journal(r.bus), NULL) != 0)
      abort();
    if (fe_bus_start(r.bus, &d) == 0) {
      fz_poll_all(r.bus);
      for (int i = 0; i < 3; i++) {
        now += 1000000;
        if (fe_saga_poll(r.saga, 16) < 0)
          break;
        fz_poll_all(r.bus);
      }
    }
  } else if (rc > 0 || rc <= FE_ERRNO_END) {
    abort(); /* not a code of the list (nor a replay callback's) */
  }
  fz_bus_destroy(&r);
  return 0;
}
