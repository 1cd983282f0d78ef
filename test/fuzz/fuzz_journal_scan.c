/*
 * fuzz_journal_scan: the journal's segment and record scanner
 * (lib/journal_scan.c) and the recovery that repairs a journal at open
 * (lib/journal.c, lib/journal_repair.c), on a fuzzed journal directory
 * (input format: fuzz_util.h).
 *
 * Per input: every frame offset checked in memory (fe__jframe_check);
 * fe_journal_scan(), lenient or strict; fe_journal_truncate_corrupt() as a
 * dry run; fe_journal_open() (which repairs), one append, close.  Checked
 * beyond "no crash, no sanitizer report":
 *   - scan and the dry run agree on the records before any hole;
 *   - after a successful open and close, a strict scan finds the journal
 *     clean and holding every record open replayed plus the one appended.
 */
#include "fuzz_util.h"

typedef struct seen {
  uint64_t records, sum;
} seen_t;

/* Reads every payload byte, so that ASan sees any overrun. */
static int touch(const fe_journal_record_t *r, void *user) {
  seen_t *s = user;
  const uint8_t *p = r->data;
  for (uint32_t i = 0; i < r->len; i++)
    s->sum += p[i];
  s->records++;
  return 0;
}

static void check_frames(const uint8_t *data, size_t size) {
  for (uint64_t off = 0; off + 8 <= size; off += 8) {
    uint64_t fsz = 0;
    if (fe__jframe_check(data, size, off, &fsz) == 0 &&
        (fsz < JFRAME || fsz > size - off || fsz % 8 != 0))
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_frames(data, size);
  unsigned flags = fz_journal_from(data, size);

  seen_t scanned = {0, 0};
  fe_journal_report_t rep;
  fe_diag_t d;
  int src = fe_journal_scan(fz_dir, flags & FZ_STRICT ? FE_JOURNAL_SCAN_STRICT
                                                      : 0,
                            touch, &scanned, &rep, &d);
  if (src == 0 && rep.records != scanned.records)
    abort();

  fe_journal_truncate_report_t t;
  int trc = fe_journal_truncate_corrupt(fz_dir, FE_JOURNAL_TRUNCATE_DRY_RUN,
                                        &t, &d);
  /* A journal the lenient scan accepts has no hole to cut. */
  if (src == 0 && !(flags & FZ_STRICT) && trc == 0 &&
      (t.hole || t.walk.records != rep.records))
    abort();

  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = fz_dir;
  jc.fsync = FE_FSYNC_NONE;
  jc.segment_bytes = FE_JOURNAL_SEGMENT_MIN;
  jc.buffer_bytes = FE_JOURNAL_BUFFER_MIN;
  fe_journal_t *j = NULL;
  seen_t replayed = {0, 0};
  if (fe_journal_open(&jc, touch, &replayed, &j, &rep, &d) != 0)
    return 0;
  static const uint8_t rec[24] = {1, 2, 3};
  int arc = fe_journal_append(j, FE_JREC_HOST, rec, sizeof rec, NULL);
  if (fe_journal_close(j) != 0)
    abort();
  seen_t after = {0, 0};
  if (fe_journal_scan(fz_dir, FE_JOURNAL_SCAN_STRICT, touch, &after, &rep,
                      &d) != 0) {
    fprintf(stderr, "after open and close: %s\n", d.msg);
    abort();
  }
  if (after.records != replayed.records + (arc == 0))
    abort();
  return 0;
}
