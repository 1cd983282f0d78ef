/* Journal recovery walk: lists the segments, checks every header and every
 * record in order, tells a torn tail from corruption in the middle, and
 * reports.  It never changes a file: fe_journal_open() makes the repairs
 * the report asks for; fe_journal_scan() only reports;
 * fe_journal_truncate_corrupt() (journal_repair.c) asks it to stop at a
 * hole instead of refusing, and makes the cut itself.  See
 * include/finevent/journal.h for the format and the rules.
 *
 * Segments are read through a private read-only mapping, one at a time:
 * the payload pointers handed to the callback point into it, which makes
 * them 8-byte aligned (the mapping is page aligned, frames 8 aligned, the
 * frame header 32 bytes).  The walk takes no lock and shares nothing
 * between threads: it runs on the caller's thread only. */
#define _GNU_SOURCE 1 /* openat, fdopendir */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "journal_impl.h"

void fe__jseg_name(char *buf, uint64_t index, int tmp) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++)
    buf[i] = hex[(index >> (4 * (15 - i))) & 15u];
  memcpy(buf + 16, tmp ? ".fej.tmp" : ".fej", tmp ? 9 : 5);
}

/* 1 and *index when name is "<16 lower-case hex>.fej" (*tmp 0) or
 * "<16 hex>.fej.tmp" (*tmp 1); 0 for any other name. */
static int parse_name(const char *name, uint64_t *index, int *tmp) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = name[i];
    unsigned x;
    if (c >= '0' && c <= '9')
      x = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      x = (unsigned)(c - 'a' + 10);
    else
      return 0;
    v = v << 4 | x;
  }
  if (strcmp(name + 16, ".fej") == 0)
    *tmp = 0;
  else if (strcmp(name + 16, ".fej.tmp") == 0)
    *tmp = 1;
  else
    return 0;
  *index = v;
  return 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Appends v to a malloc'd array of *n entries with room for *cap. */
static int push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    uint64_t *p = realloc(*arr, c * sizeof *p);
    if (p == NULL)
      return FE_ENOMEM;
    *arr = p;
    *cap = c;
  }
  (*arr)[(*n)++] = v;
  return 0;
}

/* Sorted segment indices of the directory into *out (malloc'd) and the
 * tmp leftovers into w->tmp. */
static int list_segments(fe__jwalk_t *w, uint64_t **out, size_t *n,
                         fe_diag_t *d) {
  int fd = dup(w->dfd);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (dir == NULL) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return fe__diag(d, FE_EIO, "journal: cannot list %s: %s", w->dir,
                    strerror(e));
  }
  rewinddir(dir); /* the dup shares the offset of earlier listings */
  size_t cap = 0, tcap = 0;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(dir)) != NULL) {
    uint64_t index;
    int tmp;
    if (!parse_name(e->d_name, &index, &tmp))
      continue;
    rc = tmp ? push_u64(&w->tmp, &w->n_tmp, &tcap, index)
             : push_u64(out, n, &cap, index);
  }
  closedir(dir);
  if (rc != 0)
    return fe__diag(d, rc, "journal: out of memory listing %s", w->dir);
  if (*n > 1)
    qsort(*out, *n, sizeof **out, cmp_u64);
  return 0;
}

/* ------------------------------------------------------------ records */

/* Why a frame is invalid; names for the messages and report.torn_why. */
enum {
  FR_OK = 0,
  FR_SHORT_HEADER,
  FR_ZERO,
  FR_TYPE0,
  FR_FLAGS,
  FR_LENGTH,
  FR_CHECKSUM,
  FR_PADDING
};

static const char *const fr_why[] = {
    "valid",
    "short record header",
    "zero-filled record header",
    "record type 0",
    "unknown record flags",
    "record length beyond the end of the file",
    "record checksum mismatch",
    "non-zero record padding"};

/* Checks the frame at off of m[0..size); on FR_OK *fsz is its size. */
int fe__jframe_check(const uint8_t *m, uint64_t size, uint64_t off,
                     uint64_t *fsz) {
  if (size - off < JFRAME)
    return FR_SHORT_HEADER;
  const uint8_t *f = m + off;
  static const uint8_t zero[JFRAME];
  if (memcmp(f, zero, JFRAME) == 0)
    return FR_ZERO;
  uint32_t len = fe__le32(f);
  if (fe__le16(f + 4) == 0)
    return FR_TYPE0;
  if (fe__le16(f + 6) != 0)
    return FR_FLAGS;
  uint64_t total = fe__jframe_size(len);
  if (total > size - off)
    return FR_LENGTH;
  if (fe__jframe_sum(f, f + JFRAME, len) != fe__le64(f + 24))
    return FR_CHECKSUM;
  for (uint64_t p = JFRAME + len; p < total; p++)
    if (f[p] != 0)
      return FR_PADDING;
  *fsz = total;
  return FR_OK;
}

/* Looks past the invalid frame at bad for a frame whose checksum verifies
 * and whose lsn is in (after, after + records that could fit]: 1 and its
 * offset and lsn if there is one. */
static int find_follower(const uint8_t *m, uint64_t size, uint64_t bad,
                         uint64_t after, uint64_t *at, uint64_t *lsn) {
  uint64_t most = after + (size - bad) / JFRAME + 1;
  for (uint64_t p = bad + 8; p <= size && size - p >= JFRAME; p += 8) {
    const uint8_t *f = m + p;
    uint64_t l = fe__le64(f + 8);
    uint32_t len = fe__le32(f);
    if (l <= after || l > most || fe__le16(f + 4) == 0 ||
        fe__jframe_size(len) > size - p)
      continue;
    if (fe__jframe_sum(f, f + JFRAME, len) == fe__le64(f + 24)) {
      *at = p;
      *lsn = l;
      return 1;
    }
  }
  return 0;
}

/* ----------------------------------------------------------- segments */

int fe__jseg_check_header(const char *dir, const char *name, uint64_t index,
                          const uint8_t *m, uint64_t *first, uint64_t *created,
                          fe_diag_t *d) {
  if (memcmp(m, FE_JOURNAL_MAGIC, 8) != 0)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: bad magic: not a "
                    "journal segment", dir, name);
  uint32_t version = fe__le32(m + 8);
  if (version != FE_JOURNAL_FORMAT_VERSION)
    return fe__diag(d, FE_EVERSION, "journal: %s/%s: format version %" PRIu32
                    ", this library reads version %d", dir, name, version,
                    FE_JOURNAL_FORMAT_VERSION);
  if (fe__le32(m + 12) != JHDR)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: header size %" PRIu32
                    ", expected %u", dir, name, fe__le32(m + 12), JHDR);
  if (XXH3_64bits(m, 56) != fe__le64(m + 56))
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: segment header checksum "
                    "mismatch", dir, name);
  if (fe__le64(m + 16) != index)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: header says segment %"
                    PRIu64, dir, name, fe__le64(m + 16));
  *first = fe__le64(m + 24);
  *created = fe__le64(m + 32);
  if (*first == 0)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: first lsn 0", dir,
                    name);
  return 0;
}

/* The invalid frame at off of the segment: torn tail (0, reported) or
 * corruption (error). */
static int invalid_frame(fe__jwalk_t *w, const char *name, uint64_t index,
                         int last, const uint8_t *m, uint64_t size,
                         uint64_t off, int why, uint64_t expect, fe_diag_t *d) {
  uint32_t len = size - off >= 4 ? fe__le32(m + off) : 0;
  uint64_t at, lsn;
  if (w->find_hole &&
      (!last || find_follower(m, size, off, expect - 1, &at, &lsn))) {
    w->hole = 1;
    w->hole_segment = index;
    w->hole_offset = off;
    w->hole_why = fr_why[why];
    w->stopped = 1;
    return 0;
  }
  if (!last)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s offset %" PRIu64 ": %s "
                    "(expected lsn %" PRIu64 ", length field %" PRIu32 ") in a "
                    "segment that is not the last", w->dir, name, off,
                    fr_why[why], expect, len);
  if (find_follower(m, size, off, expect - 1, &at, &lsn))
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s offset %" PRIu64 ": %s "
                    "(expected lsn %" PRIu64 "), and a valid record (lsn %"
                    PRIu64 ") follows at offset %" PRIu64 ": corrupt in the "
                    "middle", w->dir, name, off, fr_why[why], expect, lsn, at);
  if (w->strict)
    return fe__diag(d, FE_ECORRUPT, "journal: %s/%s offset %" PRIu64 ": torn "
                    "tail of %" PRIu64 " bytes (%s)", w->dir, name, off,
                    size - off, fr_why[why]);
  w->rep.torn = 1;
  w->rep.torn_segment = index;
  w->rep.torn_offset = off;
  w->rep.torn_bytes = size - off;
  w->rep.torn_why = fr_why[why];
  /* fe__jframe_check() gets to the checksum and the padding only once the
   * header is sane and the whole frame lies within the file: this record
   * was written out whole, and then damaged. */
  if (why == FR_CHECKSUM || why == FR_PADDING) {
    w->rep.tail_corrupt = 1;
    w->rep.tail_corrupt_lsn = expect;
    snprintf(w->rep.tail_corrupt_msg, sizeof w->rep.tail_corrupt_msg,
             "journal: %s/%s offset %" PRIu64 ": the last record (lsn %"
             PRIu64 ", %" PRIu64 " bytes) is whole but has a %s: it reached "
             "the disk and was damaged, not cut short; open cuts it off: "
             "possible loss of an acknowledged record", w->dir, name, off,
             expect, size - off, fr_why[why]);
  }
  return 0;
}

/* Walks the records of a mapped segment from the header on. */
static int walk_records(fe__jwalk_t *w, const char *name, fe__jseg_t *s,
                        int last, const uint8_t *m, uint64_t size,
                        fe_diag_t *d) {
  uint64_t off = JHDR, lsn = s->first_lsn, fsz = 0;
  while (off < size) {
    if (lsn > w->stop_after) {
      w->stopped = 1;
      break;
    }
    int why = fe__jframe_check(m, size, off, &fsz);
    if (why != FR_OK) {
      s->end = off;
      return invalid_frame(w, name, s->index, last, m, size, off, why, lsn, d);
    }
    const uint8_t *f = m + off;
    fe_journal_record_t rec = {
        .lsn = fe__le64(f + 8), .wall_ns = fe__le64(f + 16),
        .segment = s->index, .offset = off, .data = f + JFRAME,
        .len = fe__le32(f), .type = fe__le16(f + 4), .flags = 0};
    if (rec.lsn != lsn)
      return fe__diag(d, FE_ECORRUPT, "journal: %s/%s offset %" PRIu64 ": "
                      "lsn %" PRIu64 ", expected %" PRIu64 ": lsn "
                      "discontinuity", w->dir, name, off, rec.lsn, lsn);
    if (w->fn != NULL) {
      int rc = w->fn(&rec, w->user);
      if (rc != 0)
        return fe__diag(d, rc, "journal: the replay callback returned %d at "
                        "lsn %" PRIu64, rc, lsn);
    }
    if (w->rep.records++ == 0)
      w->rep.first_lsn = lsn;
    w->rep.last_lsn = lsn;
    w->rep.bytes += fsz;
    if (rec.wall_ns > s->newest_ns || s->last_lsn < s->first_lsn)
      s->newest_ns = rec.wall_ns;
    s->last_lsn = lsn++;
    off += fsz;
  }
  s->end = off;
  return 0;
}

/* Checks and walks segment `index`; *expect is the lsn its first record
 * must have (0 for the first segment present) and gets the next one. */
static int walk_segment(fe__jwalk_t *w, uint64_t index, int last,
                        uint64_t *expect, fe_diag_t *d) {
  char name[JNAME_MAX];
  fe__jseg_name(name, index, 0);
  int fd = openat(w->dfd, name, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return fe__diag(d, FE_EIO, "journal: cannot open %s/%s: %s", w->dir, name,
                    strerror(e));
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < JHDR) {
    close(fd);
    if (!last && w->find_hole && w->n_segs > 0) {
      /* A segment whose header never reached the disk, with later ones
       * after it (a power loss under FE_FSYNC_NONE): the hole starts at
       * its offset 0, after a whole segment. */
      w->hole = 1;
      w->hole_segment = index;
      w->hole_offset = 0;
      w->hole_why = "segment shorter than its header";
      w->stopped = 1;
      return 0;
    }
    if (!last)
      return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: %" PRIu64 " bytes, "
                      "shorter than its header, and not the last segment",
                      w->dir, name, size);
    if (w->n_segs == 0 && index > 1)
      return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: %" PRIu64 " bytes, "
                      "shorter than its header, and the only segment: the "
                      "next lsn is unknown", w->dir, name, size);
    if (w->strict)
      return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: %" PRIu64 " bytes, "
                      "shorter than its header (crash while creating it)",
                      w->dir, name, size);
    w->rep.short_segment = index;
    w->rep.short_bytes = size;
    return 0;
  }
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd); /* the mapping stays valid */
  if (map == MAP_FAILED)
    return fe__diag(d, FE_EIO, "journal: cannot map %s/%s: %s", w->dir, name,
                    strerror(e));
  const uint8_t *m = map;
  fe__jseg_t *s = &w->segs[w->n_segs];
  memset(s, 0, sizeof *s);
  s->index = index;
  int rc = fe__jseg_check_header(w->dir, name, index, m, &s->first_lsn,
                                 &s->newest_ns, d);
  if (rc == 0 && *expect == 0 && index == 1 && s->first_lsn != 1)
    rc = fe__diag(d, FE_ECORRUPT, "journal: %s/%s: the first segment starts "
                  "at lsn %" PRIu64 ", not 1", w->dir, name, s->first_lsn);
  if (rc == 0 && *expect != 0 && s->first_lsn != *expect)
    rc = fe__diag(d, FE_ECORRUPT, "journal: %s/%s offset 0: first lsn %"
                  PRIu64 ", expected %" PRIu64 " after the previous segment: "
                  "lsn discontinuity", w->dir, name, s->first_lsn, *expect);
  if (rc == 0) {
    s->last_lsn = s->first_lsn - 1;
    if (w->rep.segments++ == 0)
      w->rep.first_segment = index;
    w->rep.last_segment = index;
    w->rep.bytes += JHDR;
    rc = walk_records(w, name, s, last, m, size, d);
    *expect = s->last_lsn + 1;
    w->n_segs++;
  }
  munmap(map, (size_t)size);
  return rc;
}

int fe__jwalk_run(fe__jwalk_t *w, fe_diag_t *d) {
  memset(&w->rep, 0, sizeof w->rep);
  w->stopped = 0;
  w->hole = 0;
  w->hole_segment = w->hole_offset = 0;
  w->hole_why = NULL;
  w->segs = NULL;
  w->n_segs = 0;
  w->tmp = NULL;
  w->n_tmp = 0;
  uint64_t *idx = NULL;
  size_t n = 0;
  int rc = list_segments(w, &idx, &n, d);
  w->rep.tmp_files = (uint32_t)w->n_tmp;
  w->last_listed = n != 0 ? idx[n - 1] : 0;
  if (rc == 0 && n != 0 && idx[0] == 0)
    rc = fe__diag(d, FE_ECORRUPT, "journal: %s/0000000000000000.fej: segment "
                  "index 0 is invalid", w->dir);
  for (size_t i = 1; rc == 0 && i < n; i++) {
    if (idx[i] != idx[i - 1] + 1) {
      char name[JNAME_MAX];
      fe__jseg_name(name, idx[i - 1] + 1, 0);
      rc = fe__diag(d, FE_ECORRUPT, "journal: %s/%s is missing: segments "
                    "jump from %" PRIu64 " to %" PRIu64, w->dir, name,
                    idx[i - 1], idx[i]);
    }
  }
  if (rc == 0 && (w->segs = calloc(n ? n : 1, sizeof *w->segs)) == NULL)
    rc = fe__diag(d, FE_ENOMEM, "journal: out of memory (%zu segments)", n);
  uint64_t expect = 0;
  for (size_t i = 0; rc == 0 && i < n && !w->stopped; i++)
    rc = walk_segment(w, idx[i], i + 1 == n, &expect, d);
  w->rep.next_lsn = expect != 0 ? expect : 1;
  free(idx);
  return rc;
}

void fe__jwalk_free(fe__jwalk_t *w) {
  free(w->segs);
  free(w->tmp);
  w->segs = NULL;
  w->tmp = NULL;
}

/* -------------------------------------------------------------- scan */

int fe_journal_scan(const char *dir, unsigned flags, fe_journal_replay_fn fn,
                    void *user, fe_journal_report_t *report, fe_diag_t *d) {
  if (dir == NULL || dir[0] == '\0')
    return fe__diag(d, FE_EINVAL, "journal: dir is NULL or empty");
  if ((flags & ~(unsigned)FE_JOURNAL_SCAN_STRICT) != 0)
    return fe__diag(d, FE_EINVAL, "journal: unknown scan flags 0x%x", flags);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int e = errno;
    return fe__diag(d, e == ENOENT ? FE_ENOTFOUND : FE_EIO,
                    "journal: cannot open directory %s: %s", dir, strerror(e));
  }
  fe__jwalk_t w;
  memset(&w, 0, sizeof w);
  w.dfd = dfd;
  w.dir = dir;
  w.strict = (flags & FE_JOURNAL_SCAN_STRICT) != 0;
  w.fn = fn;
  w.user = user;
  w.stop_after = UINT64_MAX;
  int rc = fe__jwalk_run(&w, d);
  if (report != NULL)
    *report = w.rep;
  fe__jwalk_free(&w);
  close(dfd);
  return rc;
}

const char *fe_journal_type_name(uint16_t type) {
  switch (type) {
  case 0: return "INVALID";
  case FE_JREC_EVENT: return "EVENT";
  case FE_JREC_OUTCOME: return "OUTCOME";
  case FE_JREC_INTENT: return "INTENT";
  case FE_JREC_DEAD_LETTER: return "DEAD_LETTER";
  case FE_JREC_SAGA: return "SAGA";
  case FE_JREC_CHECKPOINT: return "CHECKPOINT";
  default: return type >= FE_JREC_HOST ? "HOST" : "RESERVED";
  }
}
