/* Operator repair: fe_journal_truncate_corrupt() cuts a journal at its
 * first invalid record when fe_journal_open() refuses it as "corrupt in
 * the middle" (the hole a power loss leaves under FE_FSYNC_NONE or
 * _INTERVAL).  See include/finevent/journal.h.
 *
 * Two passes, then the cut:
 *   1. the recovery walk (journal_scan.c) in find_hole mode: every header
 *      and record up to the hole checked exactly as open checks them, so
 *      anything that is not a hole (a bad header, a version, a gap, an lsn
 *      discontinuity) is refused with open's own error and message;
 *   2. count what the cut throws away: the rest of the hole's segment and
 *      every later segment, whose headers must verify too (a file that is
 *      not one of our segments is never removed); records are found by
 *      their checksums at every 8-byte offset, as open looks for a
 *      follower;
 *   3. unless a dry run: remove the later segments, newest first, fsync
 *      the directory, then truncate the hole's segment and fsync it.  In
 *      that order a crash part way leaves consecutive segments with the
 *      hole still in the (now) last one, so running it again finishes the
 *      job (or open sees a torn tail and repairs it itself).
 * Runs on the caller's thread; holds the writer's flock throughout. */
#define _GNU_SOURCE 1 /* openat, flock */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "journal_impl.h"

/* Counts the valid frames of m[from..size) into rep: a frame that verifies
 * is counted and skipped whole (so a record inside a payload is not), any
 * other 8-byte step is skipped. */
static void count_lost(const uint8_t *m, uint64_t size, uint64_t from,
                       fe_journal_truncate_report_t *rep) {
  for (uint64_t p = from; p < size;) {
    uint64_t fsz;
    if (fe__jframe_check(m, size, p, &fsz) != 0) {
      p += 8;
      continue;
    }
    uint64_t lsn = fe__le64(m + p + 8);
    if (rep->lost_records++ == 0 || lsn < rep->lost_first_lsn)
      rep->lost_first_lsn = lsn;
    if (lsn > rep->lost_last_lsn)
      rep->lost_last_lsn = lsn;
    p += fsz;
  }
}

/* Pass 2 for one segment: the hole's (hole 1: from is the hole's offset,
 * counting starts one step past it; offset 0 is a segment without a whole
 * header, all of it discarded) or a later one (hole 0, from 0: its header
 * is checked; shorter than a header is allowed for the last one only, as
 * open allows it). */
static int survey_segment(int dfd, const char *dir, uint64_t index, int hole,
                          uint64_t from, int last,
                          fe_journal_truncate_report_t *rep, fe_diag_t *d) {
  char name[JNAME_MAX];
  fe__jseg_name(name, index, 0);
  int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return fe__diag(d, FE_EIO, "journal: cannot open %s/%s: %s", dir, name,
                    strerror(e));
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < JHDR) {
    close(fd);
    if (!last && !hole)
      return fe__diag(d, FE_ECORRUPT, "journal: %s/%s: %" PRIu64 " bytes, "
                      "shorter than its header, and not the last segment: "
                      "not a hole, nothing cut", dir, name, size);
    rep->discarded_bytes += size;
    return 0;
  }
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED)
    return fe__diag(d, FE_EIO, "journal: cannot map %s/%s: %s", dir, name,
                    strerror(e));
  const uint8_t *m = map;
  int rc = 0;
  if (!hole) {
    uint64_t first, created;
    rc = fe__jseg_check_header(dir, name, index, m, &first, &created, d);
    if (rc == 0) {
      count_lost(m, size, JHDR, rep);
      rep->discarded_bytes += size;
    }
  } else {
    count_lost(m, size, from + 8, rep);
    rep->discarded_bytes += size - from;
  }
  munmap(map, (size_t)size);
  return rc;
}

/* Pass 3: removes segments last..first+1 newest first, fsyncs the
 * directory, truncates segment `first` at off and fsyncs it.  off 0 (a
 * segment without a whole header, never the first: the walk refuses that)
 * removes `first` too. */
static int cut(int dfd, const char *dir, uint64_t first, uint64_t last,
               uint64_t off, fe_diag_t *d) {
  char name[JNAME_MAX];
  uint64_t keep = off == 0 ? first - 1 : first; /* the last segment kept */
  for (uint64_t i = last; i > keep; i--) {
    fe__jseg_name(name, i, 0);
    if (unlinkat(dfd, name, 0) != 0)
      return fe__diag(d, FE_EIO, "journal: cannot remove %s/%s: %s (the "
                      "segments after it are gone; run it again)", dir, name,
                      strerror(errno));
  }
  if (last > keep && fsync(dfd) != 0)
    return fe__diag(d, FE_EIO, "journal: cannot fsync %s: %s", dir,
                    strerror(errno));
  if (off == 0)
    return 0;
  fe__jseg_name(name, first, 0);
  int fd = openat(dfd, name, O_WRONLY | O_CLOEXEC);
  int ok = fd >= 0 && ftruncate(fd, (off_t)off) == 0 && fdatasync(fd) == 0;
  int e = errno;
  if (fd >= 0)
    close(fd);
  if (!ok)
    return fe__diag(d, FE_EIO, "journal: cannot truncate %s/%s to %" PRIu64
                    ": %s", dir, name, off, strerror(e));
  if (fsync(dfd) != 0)
    return fe__diag(d, FE_EIO, "journal: cannot fsync %s: %s", dir,
                    strerror(errno));
  return 0;
}

/* Fills rep from the walk and surveys what a cut would discard. */
static int survey(fe__jwalk_t *w, fe_journal_truncate_report_t *rep,
                  fe_diag_t *d) {
  if (!w->hole)
    return 0;
  rep->hole = 1;
  rep->cut_segment = w->hole_segment;
  rep->cut_offset = w->hole_offset;
  rep->cut_why = w->hole_why;
  /* A headerless segment (offset 0) goes whole; else from the next one. */
  uint64_t from = w->hole_segment + (w->hole_offset != 0);
  rep->first_removed = from <= w->last_listed ? from : 0;
  rep->last_removed = rep->first_removed ? w->last_listed : 0;
  rep->removed_segments = rep->first_removed ? w->last_listed - from + 1 : 0;
  for (uint64_t i = w->hole_segment; i <= w->last_listed; i++) {
    int hole = i == w->hole_segment;
    int rc = survey_segment(w->dfd, w->dir, i, hole,
                            hole ? w->hole_offset : 0, i == w->last_listed,
                            rep, d);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int fe_journal_truncate_corrupt(const char *dir, unsigned flags,
                                fe_journal_truncate_report_t *report,
                                fe_diag_t *d) {
  fe_journal_truncate_report_t rep;
  memset(&rep, 0, sizeof rep);
  if (report != NULL)
    *report = rep;
  if (dir == NULL || dir[0] == '\0')
    return fe__diag(d, FE_EINVAL, "journal: dir is NULL or empty");
  if ((flags & ~(unsigned)FE_JOURNAL_TRUNCATE_DRY_RUN) != 0)
    return fe__diag(d, FE_EINVAL, "journal: unknown truncate flags 0x%x",
                    flags);
  rep.dry_run = (flags & FE_JOURNAL_TRUNCATE_DRY_RUN) != 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int e = errno;
    return fe__diag(d, e == ENOENT ? FE_ENOTFOUND : FE_EIO,
                    "journal: cannot open directory %s: %s", dir, strerror(e));
  }
  if (flock(dfd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(dfd);
    return fe__diag(d, e == EWOULDBLOCK ? FE_ESTATE : FE_EIO,
                    "journal: cannot lock %s: %s%s", dir, strerror(e),
                    e == EWOULDBLOCK ? " (a writer has it open: close it "
                    "first)" : "");
  }
  fe__jwalk_t w;
  memset(&w, 0, sizeof w);
  w.dfd = dfd;
  w.dir = dir;
  w.stop_after = UINT64_MAX;
  w.find_hole = 1;
  int rc = fe__jwalk_run(&w, d);
  rep.walk = w.rep;
  if (rc == 0)
    rc = survey(&w, &rep, d);
  if (rc == 0 && rep.hole && !rep.dry_run) {
    rc = cut(dfd, dir, rep.cut_segment, w.last_listed, rep.cut_offset, d);
    rep.truncated = rc == 0;
  }
  fe__jwalk_free(&w);
  close(dfd); /* drops the flock */
  if (report != NULL)
    *report = rep;
  return rc;
}
