/* Durable journal, the writer: open (= recover), append, group commit,
 * rotation, fsync policies, retire, close.  See include/finevent/journal.h;
 * the recovery walk is in journal_scan.c.
 *
 * Locks (order: io_mu, then mu; wait_mu is a leaf taken alone):
 *   mu      the append side: the active group buffer `act`, next_lsn and
 *           the plan (segment and offset the next record lands at).
 *   io_mu   the file side: the idle buffer, the active segment's fd and
 *           offset, the segment table, the fsync bookkeeping.  A commit
 *           holds it across write and fsync and takes mu only to swap
 *           `act` (full) with `idle` (empty, reset by the previous commit
 *           under io_mu): appends go on into the other buffer meanwhile.
 *   wait_mu with `durable_cv`: fe_journal_wait_durable() sleeps there.
 *
 * Double buffering keeps each record's bytes in one buffer: a buffer is
 * touched by appenders (under mu) only while it is `act`, and by the
 * committer (under io_mu) only after the swap, which both locks order.
 * Every group goes to one segment: an append whose record would not fit
 * the planned segment commits the buffer first if it holds records of the
 * old segment, and an empty buffer is then tagged with the next index; the
 * committer rotates when a group's segment is not the active one.
 *
 * Published marks (written only under io_mu, read by anyone, lock-free):
 *   written_lsn  W1 store-release after the group's write returned.
 *   durable_lsn  D1 store-release after the fsync returned (NONE: right
 *                after W1).  Readers load with acquire (A1, A2).  The
 *                values alone need no ordering; the pairs make
 *                "durable <= written" hold for a reader that loads
 *                durable (A2) before written (A1): D1 follows W1 in the
 *                committer's order, so seeing D1 makes W1 visible.
 *   err          E1 store-release when the journal fails, after sys_errno;
 *                E2 load-acquire by every call that checks it, so a thread
 *                that sees the error sees its errno.  An append that loads
 *                err just before it is set lets one more record into the
 *                buffer, which the next commit refuses: harmless.
 * Counters in `st` are written by the holder of the lock that guards what
 * they count (appends: mu; I/O: io_mu; full_flushes: a relaxed
 * fetch-add, no lock) and read relaxed by fe_journal_stats(). */
#define _GNU_SOURCE 1 /* openat, renameat, syncfs, flock */

#include "finevent/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h> /* snprintf, renameat */
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "journal_impl.h"
#include "sync.h"

#define DIR_MAX 3900 /* leaves room for "/<name>" in PATH_MAX and messages */
#define NS_PER_SEC UINT64_C(1000000000)

typedef struct gbuf {
  uint8_t *data;       /* buffer_bytes */
  uint64_t fill;       /* bytes used */
  uint64_t seg;        /* segment its records go to */
  uint64_t first_lsn, last_lsn;
  uint64_t newest_ns;  /* newest record wall time */
} gbuf_t;

typedef struct jstats {
  uint64_t appends, append_bytes, full_flushes, writes, write_bytes, fsyncs,
      rotations, retired, retire_failures, segments, first_segment,
      active_segment, next_lsn;
} jstats_t;

struct fe_journal {
  /* Read-only after open. */
  fe_journal_config_t cfg;  /* cfg.dir points at dir */
  char *dir;
  int dfd;                  /* the directory; holds the flock (writer) */
  uint64_t max_frame;       /* largest frame accepted */
  uint32_t max_len;         /* largest payload accepted */

  /* Published marks, see the top.  Own line: read by every waiter. */
  uint64_t written_lsn __attribute__((aligned(FE_PAD)));
  uint64_t durable_lsn;
  int err;                  /* 0 or FE_EIO, sticky */
  int sys_errno;            /* written before err (E1) */

  pthread_mutex_t mu __attribute__((aligned(FE_PAD)));
  /* Under mu. */
  gbuf_t *act;
  uint64_t next_lsn;
  uint64_t plan_seg;        /* segment of the last record planned */
  uint64_t plan_off;        /* offset after it in that segment */

  pthread_mutex_t io_mu __attribute__((aligned(FE_PAD)));
  /* Under io_mu. */
  gbuf_t *idle;
  int fd;                   /* active segment, -1 when none (read-only) */
  uint64_t seg_off;         /* its length */
  uint64_t synced_lsn;      /* highest lsn fsynced */
  uint64_t last_fsync_ns;   /* clock at the last data fsync */
  int old_dirty;            /* NONE: a rotated-away segment may hold
                               unsynced data (sync/close use syncfs) */
  fe__jseg_t *segs;         /* oldest first; the last is the active one */
  size_t n_segs, cap_segs;

  pthread_mutex_t wait_mu;
  pthread_cond_t durable_cv;

  jstats_t st;              /* see the top */
  gbuf_t bufs[2];

  /* Pins (see fe_journal_pin()): pin_used is a bitmask, a bit claimed by
   * a CAS (R2, acquire) and dropped by a fetch_and (R1, release); pins[i]
   * is "keep lsn >= it", stored by the pin's owner (P1, release) and read
   * by retire under io_mu (P2, acquire).  A free pin holds UINT64_MAX,
   * which holds nothing back. */
  uint32_t pin_used __attribute__((aligned(FE_PAD)));
  uint64_t pins[FE_JOURNAL_MAX_PINS];
};

/* ------------------------------------------------------------ helpers */

static uint64_t now_ns(const fe_journal_t *j) {
  return j->cfg.now_ns != NULL ? j->cfg.now_ns(j->cfg.clock_user)
                               : fe_clock_realtime_ns();
}

static int pwrite_all(int fd, const uint8_t *p, uint64_t n, uint64_t off) {
  while (n > 0) {
    size_t chunk = n > (UINT64_C(1) << 30) ? (size_t)1 << 30 : (size_t)n;
    ssize_t w = pwrite(fd, p, chunk, (off_t)off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (w == 0)
        errno = EIO;
      return -1;
    }
    p += w;
    n -= (uint64_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

/* Owner-only counter update (see the top). */
static void cnt(uint64_t *c, uint64_t n) { fe__add_owned(c, n); }

/* Publishes durable_lsn (D1) and wakes the waiters.  Under io_mu. */
static void publish_durable(fe_journal_t *j, uint64_t lsn) {
  fe__store_release(&j->durable_lsn, lsn); /* D1, pairs with A2 */
  pthread_mutex_lock(&j->wait_mu);
  pthread_cond_broadcast(&j->durable_cv);
  pthread_mutex_unlock(&j->wait_mu);
}

/* Makes the journal failed for good (see Failures); returns FE_EIO. */
static int fail(fe_journal_t *j, int e) {
  fe__store_relaxed(&j->sys_errno, e);
  fe__store_release(&j->err, FE_EIO); /* E1, pairs with E2 */
  pthread_mutex_lock(&j->wait_mu);
  pthread_cond_broadcast(&j->durable_cv);
  pthread_mutex_unlock(&j->wait_mu);
  return FE_EIO;
}

static int failed(const fe_journal_t *j) {
  return fe__load_acquire(&j->err); /* E2, pairs with E1 */
}

/* Creates segment `index` starting at first_lsn: header into the tmp
 * name, fsync, rename into place, fsync the directory (sync only when
 * `sync`).  *fd gets it open for writing.  Returns 0 or -1 with errno. */
static int create_segment(fe_journal_t *j, uint64_t index, uint64_t first_lsn,
                          int sync, uint64_t *created, int *fd) {
  char tmp[JNAME_MAX], fin[JNAME_MAX];
  uint8_t hdr[JHDR];
  fe__jseg_name(tmp, index, 1);
  fe__jseg_name(fin, index, 0);
  *created = now_ns(j);
  fe__jseg_encode(hdr, index, first_lsn, *created);
  int f = openat(j->dfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f < 0)
    return -1;
  if (pwrite_all(f, hdr, JHDR, 0) != 0 || (sync && fdatasync(f) != 0) ||
      renameat(j->dfd, tmp, j->dfd, fin) != 0 || (sync && fsync(j->dfd) != 0)) {
    int e = errno;
    close(f);
    unlinkat(j->dfd, tmp, 0);
    errno = e;
    return -1;
  }
  *fd = f;
  return 0;
}

/* Mirrors of io-side state for fe_journal_stats().  Under io_mu. */
static void mirror_segments(fe_journal_t *j) {
  fe__store_relaxed(&j->st.segments, (uint64_t)j->n_segs);
  fe__store_relaxed(&j->st.first_segment, j->n_segs ? j->segs[0].index : 0);
  fe__store_relaxed(&j->st.active_segment,
                    j->n_segs ? j->segs[j->n_segs - 1].index : 0);
}

/* ------------------------------------------------------------- config */

void fe_journal_config_init(fe_journal_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->segment_bytes = UINT64_C(64) << 20;
  cfg->fsync = FE_FSYNC_GROUP;
  cfg->fsync_interval_ns = 10 * UINT64_C(1000000);
  cfg->buffer_bytes = UINT32_C(1) << 20;
  cfg->retention_ns = 24 * 3600 * NS_PER_SEC;
}

int fe_journal_config_check(const fe_journal_config_t *cfg, fe_diag_t *d) {
  if (cfg == NULL)
    return fe__diag(d, FE_EINVAL, "journal: config is NULL");
  if (cfg->dir == NULL || cfg->dir[0] == '\0')
    return fe__diag(d, FE_EINVAL, "journal: dir is NULL or empty (required)");
  size_t n = strnlen(cfg->dir, DIR_MAX + 1);
  if (n > DIR_MAX)
    return fe__diag(d, FE_ERANGE, "journal: dir is longer than %d bytes",
                    DIR_MAX);
  if (cfg->segment_bytes < FE_JOURNAL_SEGMENT_MIN ||
      cfg->segment_bytes > FE_JOURNAL_SEGMENT_MAX)
    return fe__diag(d, FE_ERANGE, "journal: segment_bytes %" PRIu64 " is "
                    "outside %" PRIu64 "..%" PRIu64, cfg->segment_bytes,
                    FE_JOURNAL_SEGMENT_MIN, FE_JOURNAL_SEGMENT_MAX);
  if (cfg->buffer_bytes < FE_JOURNAL_BUFFER_MIN ||
      cfg->buffer_bytes > FE_JOURNAL_BUFFER_MAX)
    return fe__diag(d, FE_ERANGE, "journal: buffer_bytes %" PRIu32 " is "
                    "outside %" PRIu32 "..%" PRIu32, cfg->buffer_bytes,
                    FE_JOURNAL_BUFFER_MIN, FE_JOURNAL_BUFFER_MAX);
  if (cfg->fsync != FE_FSYNC_NONE && cfg->fsync != FE_FSYNC_INTERVAL &&
      cfg->fsync != FE_FSYNC_GROUP)
    return fe__diag(d, FE_EINVAL, "journal: fsync policy %d is none of "
                    "FE_FSYNC_NONE (0), _INTERVAL (1), _GROUP (2)",
                    (int)cfg->fsync);
  return 0;
}

/* ---------------------------------------------------------- lifecycle */

static void destroy(fe_journal_t *j) {
  if (j->fd >= 0)
    close(j->fd);
  if (j->dfd >= 0)
    close(j->dfd); /* drops the flock */
  pthread_cond_destroy(&j->durable_cv);
  pthread_mutex_destroy(&j->wait_mu);
  pthread_mutex_destroy(&j->io_mu);
  pthread_mutex_destroy(&j->mu);
  free(j->bufs[0].data);
  free(j->bufs[1].data);
  free(j->segs);
  free(j->dir);
  free(j);
}

/* Initialises the three mutexes and the condition variable (on
 * CLOCK_MONOTONIC, for wait_durable's deadlines).  0, or -1 with none
 * left initialised. */
static int init_locks(fe_journal_t *j) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0)
    return -1;
  int ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
           pthread_cond_init(&j->durable_cv, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ok)
    return -1;
  if (pthread_mutex_init(&j->mu, NULL) != 0)
    goto no_mu;
  if (pthread_mutex_init(&j->io_mu, NULL) != 0)
    goto no_io_mu;
  if (pthread_mutex_init(&j->wait_mu, NULL) != 0)
    goto no_wait_mu;
  return 0;
no_wait_mu:
  pthread_mutex_destroy(&j->io_mu);
no_io_mu:
  pthread_mutex_destroy(&j->mu);
no_mu:
  pthread_cond_destroy(&j->durable_cv);
  return -1;
}

/* Allocates the journal, its group buffers (writer; zeroed, so every page
 * is faulted in now) and its locks.  On failure nothing is left. */
static int alloc_journal(const fe_journal_config_t *cfg, fe_journal_t **out,
                         fe_diag_t *d) {
  fe_journal_t *j = fe__zalloc_aligned(sizeof *j);
  if (j == NULL)
    return fe__diag(d, FE_ENOMEM, "journal: cannot allocate the journal");
  j->fd = -1;
  j->dfd = -1;
  j->cfg = *cfg;
  j->dir = strdup(cfg->dir);
  j->cfg.dir = j->dir;
  int ok = j->dir != NULL;
  for (int i = 0; ok && !cfg->read_only && i < 2; i++)
    ok = (j->bufs[i].data = fe__zalloc_aligned(cfg->buffer_bytes)) != NULL;
  if (!ok || init_locks(j) != 0) {
    free(j->bufs[0].data);
    free(j->bufs[1].data);
    free(j->dir);
    free(j);
    return fe__diag(d, FE_ENOMEM, "journal: cannot allocate %s",
                    ok ? "the locks" : "the group buffers");
  }
  j->act = &j->bufs[0];
  j->idle = &j->bufs[1];
  for (int i = 0; i < FE_JOURNAL_MAX_PINS; i++)
    j->pins[i] = UINT64_MAX; /* before open returns j: no reader yet */
  uint64_t room = cfg->segment_bytes - JHDR;
  j->max_frame = room < cfg->buffer_bytes ? room : cfg->buffer_bytes;
  j->max_len = fe__jmax_len(cfg);
  *out = j;
  return 0;
}

/* fsyncs the directory that contains dir (after creating dir). */
static int fsync_parent(const char *dir) {
  char buf[DIR_MAX + 2];
  snprintf(buf, sizeof buf, "%s", dir);
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/')
    buf[--n] = '\0';
  char *slash = strrchr(buf, '/');
  const char *parent = slash == NULL ? "." : slash == buf ? "/" : buf;
  if (slash != NULL && slash != buf)
    *slash = '\0';
  int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Creates (writer) and opens the directory, and locks it (writer). */
static int open_dir(fe_journal_t *j, fe_diag_t *d) {
  const char *dir = j->dir;
  int ro = j->cfg.read_only;
  if (!ro) {
    if (mkdir(dir, 0755) == 0) {
      if (j->cfg.fsync != FE_FSYNC_NONE && fsync_parent(dir) != 0)
        return fe__diag(d, FE_EIO, "journal: cannot fsync the parent of %s: "
                        "%s", dir, strerror(errno));
    } else if (errno != EEXIST) {
      int e = errno;
      return fe__diag(d, e == ENOENT ? FE_ENOTFOUND : FE_EIO,
                      "journal: cannot create directory %s: %s", dir,
                      strerror(e));
    }
  }
  j->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j->dfd < 0) {
    int e = errno;
    return fe__diag(d, e == ENOENT ? FE_ENOTFOUND : FE_EIO,
                    "journal: cannot open directory %s: %s", dir, strerror(e));
  }
  if (!ro && flock(j->dfd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    return fe__diag(d, e == EWOULDBLOCK ? FE_ESTATE : FE_EIO,
                    "journal: cannot lock %s: %s%s", dir, strerror(e),
                    e == EWOULDBLOCK ? " (another writer has it open)" : "");
  }
  return 0;
}

/* Writer: makes the repairs the walk asks for, then fsyncs every segment
 * and the directory unless FE_FSYNC_NONE. */
static int repair(fe_journal_t *j, fe__jwalk_t *w, fe_diag_t *d) {
  char name[JNAME_MAX];
  for (size_t i = 0; i < w->n_tmp; i++) {
    fe__jseg_name(name, w->tmp[i], 1);
    if (unlinkat(j->dfd, name, 0) != 0 && errno != ENOENT)
      return fe__diag(d, FE_EIO, "journal: cannot remove %s/%s: %s", j->dir,
                      name, strerror(errno));
  }
  if (w->rep.short_segment != 0) {
    fe__jseg_name(name, w->rep.short_segment, 0);
    if (unlinkat(j->dfd, name, 0) != 0)
      return fe__diag(d, FE_EIO, "journal: cannot remove %s/%s: %s", j->dir,
                      name, strerror(errno));
    w->rep.short_removed = 1;
  }
  if (w->rep.torn) {
    fe__jseg_name(name, w->rep.torn_segment, 0);
    int fd = openat(j->dfd, name, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && ftruncate(fd, (off_t)w->rep.torn_offset) == 0 &&
             fdatasync(fd) == 0;
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (!ok)
      return fe__diag(d, FE_EIO, "journal: cannot truncate %s/%s to %" PRIu64
                      ": %s", j->dir, name, w->rep.torn_offset, strerror(e));
    w->rep.truncated = 1;
  }
  int changed = w->n_tmp != 0 || w->rep.short_removed;
  if (j->cfg.fsync == FE_FSYNC_NONE)
    return changed && fsync(j->dfd) != 0
               ? fe__diag(d, FE_EIO, "journal: cannot fsync %s: %s", j->dir,
                          strerror(errno))
               : 0;
  for (size_t i = 0; i < w->n_segs; i++) {
    fe__jseg_name(name, w->segs[i].index, 0);
    int fd = openat(j->dfd, name, O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && fdatasync(fd) == 0;
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (!ok)
      return fe__diag(d, FE_EIO, "journal: cannot fsync %s/%s: %s", j->dir,
                      name, strerror(e));
  }
  if (fsync(j->dfd) != 0)
    return fe__diag(d, FE_EIO, "journal: cannot fsync %s: %s", j->dir,
                    strerror(errno));
  return 0;
}

/* Takes over the walk's segment table; a writer then opens (or, in an
 * empty directory, creates) the active segment. */
static int start_writer(fe_journal_t *j, fe__jwalk_t *w, fe_diag_t *d) {
  /* Room for 1024 rotations beyond what is there (32 KB; 64 GB of
   * default-sized segments): in practice the writer never grows the table,
   * so appends and commits do not allocate.  Growing stays correct. */
  size_t cap = w->n_segs * 2 + 1024;
  j->segs = malloc(cap * sizeof *j->segs);
  if (j->segs == NULL)
    return fe__diag(d, FE_ENOMEM, "journal: cannot allocate the segment "
                    "table");
  j->cap_segs = cap;
  j->n_segs = w->n_segs;
  if (w->n_segs != 0)
    memcpy(j->segs, w->segs, w->n_segs * sizeof *j->segs);
  if (j->cfg.read_only)
    return 0;
  char name[JNAME_MAX];
  if (j->n_segs == 0) {
    uint64_t created;
    if (create_segment(j, 1, 1, j->cfg.fsync != FE_FSYNC_NONE, &created,
                       &j->fd) != 0)
      return fe__diag(d, FE_EIO, "journal: cannot create the first segment "
                      "in %s: %s", j->dir, strerror(errno));
    j->segs[0] = (fe__jseg_t){1, 1, 0, created, JHDR};
    j->n_segs = 1;
  } else {
    fe__jseg_t *s = &j->segs[j->n_segs - 1];
    fe__jseg_name(name, s->index, 0);
    struct stat st;
    j->fd = openat(j->dfd, name, O_RDWR | O_CLOEXEC);
    if (j->fd < 0 || fstat(j->fd, &st) != 0)
      return fe__diag(d, FE_EIO, "journal: cannot open %s/%s: %s", j->dir,
                      name, strerror(errno));
    if ((uint64_t)st.st_size != s->end)
      return fe__diag(d, FE_EIO, "journal: %s/%s changed during recovery "
                      "(%" PRIu64 " bytes, expected %" PRIu64 ")", j->dir,
                      name, (uint64_t)st.st_size, s->end);
  }
  j->seg_off = j->segs[j->n_segs - 1].end; /* n_segs >= 1 from here */
  j->plan_seg = j->segs[j->n_segs - 1].index;
  j->plan_off = j->seg_off;
  return 0;
}

int fe_journal_open(const fe_journal_config_t *cfg, fe_journal_replay_fn fn,
                    void *user, fe_journal_t **out, fe_journal_report_t *report,
                    fe_diag_t *d) {
  if (report != NULL)
    memset(report, 0, sizeof *report);
  if (out == NULL)
    return fe__diag(d, FE_EINVAL, "journal: out is NULL");
  int rc = fe_journal_config_check(cfg, d);
  fe_journal_t *j = NULL;
  if (rc == 0)
    rc = alloc_journal(cfg, &j, d);
  if (rc != 0)
    return rc;
  rc = open_dir(j, d);
  fe__jwalk_t w;
  memset(&w, 0, sizeof w);
  w.dfd = j->dfd;
  w.dir = j->dir;
  w.stop_after = UINT64_MAX;
  if (rc == 0)
    rc = fe__jwalk_run(&w, d); /* verify: no callback */
  if (rc == 0 && !cfg->read_only)
    rc = repair(j, &w, d);
  fe_journal_report_t rep = w.rep;
  if (rc == 0 && fn != NULL) {
    fe__jwalk_t r;
    memset(&r, 0, sizeof r);
    r.dfd = j->dfd;
    r.dir = j->dir;
    r.fn = fn;
    r.user = user;
    r.stop_after = rep.last_lsn;
    rc = fe__jwalk_run(&r, d);
    fe__jwalk_free(&r);
  }
  if (rc == 0)
    rc = start_writer(j, &w, d);
  fe__jwalk_free(&w);
  if (report != NULL)
    *report = rep;
  if (rc != 0) {
    destroy(j);
    return rc;
  }
  j->next_lsn = rep.next_lsn;
  uint64_t last = rep.next_lsn - 1;
  j->written_lsn = last;
  j->durable_lsn = last;
  j->synced_lsn = cfg->fsync != FE_FSYNC_NONE || cfg->read_only ? last : 0;
  j->last_fsync_ns = now_ns(j);
  j->st.next_lsn = rep.next_lsn;
  mirror_segments(j);
  /* Plain stores are fine so far: no other thread can see j before open
   * returns it, and the caller's hand-off of j to other threads orders
   * them. */
  *out = j;
  return 0;
}

/* --------------------------------------------------------- committing */

/* Under io_mu: makes room in the segment table for one rotation. */
static int reserve_segment(fe_journal_t *j) {
  if (j->n_segs < j->cap_segs)
    return 0;
  size_t cap = j->cap_segs * 2;
  fe__jseg_t *p = realloc(j->segs, cap * sizeof *p);
  if (p == NULL)
    return FE_ENOMEM;
  j->segs = p;
  j->cap_segs = cap;
  return 0;
}

/* Under io_mu: fsyncs the active segment (or, with force and a dirty
 * rotated-away segment under NONE, the whole file system) and publishes
 * durable_lsn. */
static int do_fsync(fe_journal_t *j, int whole_fs) {
  uint64_t w = fe__load_relaxed(&j->written_lsn); /* we are its writer */
  if ((whole_fs ? syncfs(j->dfd) : fdatasync(j->fd)) != 0)
    return fail(j, errno);
  cnt(&j->st.fsyncs, 1);
  j->old_dirty = whole_fs ? 0 : j->old_dirty;
  j->synced_lsn = w;
  j->last_fsync_ns = now_ns(j);
  if (j->cfg.fsync != FE_FSYNC_NONE)
    publish_durable(j, w);
  return 0;
}

/* Under io_mu: closes the active segment and creates `index`, which starts
 * at first_lsn. */
static int rotate(fe_journal_t *j, uint64_t index, uint64_t first_lsn) {
  fe__jseg_t *cur = &j->segs[j->n_segs - 1];
  if (index != cur->index + 1 || first_lsn != cur->last_lsn + 1)
    return fail(j, EINVAL); /* cannot happen: the plan is sequential */
  int sync = j->cfg.fsync != FE_FSYNC_NONE;
  if (j->synced_lsn < fe__load_relaxed(&j->written_lsn)) {
    if (!sync)
      j->old_dirty = 1;
    else if (do_fsync(j, 0) != 0)
      return FE_EIO;
  }
  uint64_t created;
  int fd;
  if (create_segment(j, index, first_lsn, sync, &created, &fd) != 0)
    return fail(j, errno);
  close(j->fd);
  j->fd = fd;
  j->seg_off = JHDR;
  j->segs[j->n_segs++] = (fe__jseg_t){index, first_lsn, first_lsn - 1,
                                      created, JHDR};
  cnt(&j->st.rotations, 1);
  mirror_segments(j);
  return 0;
}

/* Under io_mu: swaps the group buffer out and writes it (rotating first
 * when it opens a new segment), then publishes written_lsn. */
static int write_group(fe_journal_t *j) {
  if (reserve_segment(j) != 0)
    return FE_ENOMEM; /* before the swap: the group stays buffered */
  pthread_mutex_lock(&j->mu);
  gbuf_t *g = j->act;
  if (g->fill == 0) {
    pthread_mutex_unlock(&j->mu);
    return 0;
  }
  j->act = j->idle; /* empty: reset by the previous write, under io_mu */
  j->idle = g;
  pthread_mutex_unlock(&j->mu);

  uint64_t fill = g->fill;
  g->fill = 0;
  if (g->seg != j->segs[j->n_segs - 1].index) {
    int rc = rotate(j, g->seg, g->first_lsn);
    if (rc != 0)
      return rc;
  }
  if (pwrite_all(j->fd, g->data, fill, j->seg_off) != 0)
    return fail(j, errno);
  j->seg_off += fill;
  fe__jseg_t *s = &j->segs[j->n_segs - 1];
  if (s->last_lsn < s->first_lsn || g->newest_ns > s->newest_ns)
    s->newest_ns = g->newest_ns;
  s->last_lsn = g->last_lsn;
  s->end = j->seg_off;
  cnt(&j->st.writes, 1);
  cnt(&j->st.write_bytes, fill);
  fe__store_release(&j->written_lsn, g->last_lsn); /* W1, pairs with A1 */
  if (j->cfg.fsync == FE_FSYNC_NONE)
    publish_durable(j, g->last_lsn); /* process-crash-safe only */
  return 0;
}

/* Under io_mu: write the group, then fsync per the policy (force: if
 * anything written is not fsynced, whatever the policy). */
static int commit_locked(fe_journal_t *j, int force) {
  int rc = failed(j);
  if (rc == 0)
    rc = write_group(j);
  if (rc != 0)
    return rc;
  uint64_t w = fe__load_relaxed(&j->written_lsn); /* we are its writer */
  if (force)
    return w > j->synced_lsn || j->old_dirty ? do_fsync(j, j->old_dirty) : 0;
  if (w == j->synced_lsn || j->cfg.fsync == FE_FSYNC_NONE)
    return 0;
  if (j->cfg.fsync == FE_FSYNC_INTERVAL) {
    uint64_t now = now_ns(j);
    if (now >= j->last_fsync_ns &&
        now - j->last_fsync_ns < j->cfg.fsync_interval_ns)
      return 0;
  }
  return do_fsync(j, 0);
}

static int commit(fe_journal_t *j, int force) {
  if (j == NULL)
    return FE_EINVAL;
  if (j->cfg.read_only)
    return 0;
  pthread_mutex_lock(&j->io_mu);
  int rc = commit_locked(j, force);
  pthread_mutex_unlock(&j->io_mu);
  return rc;
}

int fe_journal_commit(fe_journal_t *j) { return commit(j, 0); }
int fe_journal_tick(fe_journal_t *j) { return commit(j, 0); }
int fe_journal_sync(fe_journal_t *j) { return commit(j, 1); }

int fe_journal_close(fe_journal_t *j) {
  if (j == NULL)
    return 0;
  int rc = commit(j, 1);
  destroy(j);
  return rc;
}

/* ------------------------------------------------------------- append */

int fe_journal_append(fe_journal_t *j, uint16_t type, const void *data,
                      uint32_t len, uint64_t *lsn_out) {
  if (j == NULL || type == 0 || (data == NULL && len != 0))
    return FE_EINVAL;
  if (j->cfg.read_only)
    return FE_ESTATE;
  uint64_t fsz = fe__jframe_size(len);
  if (fsz > j->max_frame)
    return FE_ERANGE;
  uint64_t wall = now_ns(j);
  pthread_mutex_lock(&j->mu);
  for (;;) {
    int rc = failed(j);
    if (rc == 0 && j->next_lsn == UINT64_MAX)
      rc = FE_ERANGE;
    if (rc != 0) {
      pthread_mutex_unlock(&j->mu);
      return rc;
    }
    gbuf_t *g = j->act;
    uint64_t seg = j->plan_seg, off = j->plan_off;
    if (off + fsz > j->cfg.segment_bytes && off > JHDR) {
      seg++; /* the record opens the next segment */
      off = JHDR;
    }
    if (g->fill != 0 && (seg != g->seg || g->fill + fsz > j->cfg.buffer_bytes)) {
      /* The group is full, or belongs to the old segment: commit it. */
      pthread_mutex_unlock(&j->mu);
      __atomic_fetch_add(&j->st.full_flushes, 1, __ATOMIC_RELAXED);
      rc = fe_journal_commit(j);
      if (rc != 0)
        return rc;
      pthread_mutex_lock(&j->mu);
      continue;
    }
    uint64_t lsn = j->next_lsn++;
    fe__jframe_encode(g->data + g->fill, type, lsn, wall, data, len);
    if (g->fill == 0) {
      g->seg = seg;
      g->first_lsn = lsn;
      g->newest_ns = wall;
    } else if (wall > g->newest_ns) {
      g->newest_ns = wall;
    }
    g->last_lsn = lsn;
    g->fill += fsz;
    j->plan_seg = seg;
    j->plan_off = off + fsz;
    cnt(&j->st.appends, 1);
    cnt(&j->st.append_bytes, fsz);
    fe__store_relaxed(&j->st.next_lsn, j->next_lsn);
    pthread_mutex_unlock(&j->mu);
    if (lsn_out != NULL)
      *lsn_out = lsn;
    return 0;
  }
}

/* -------------------------------------------------------------- marks */

uint64_t fe_journal_written_lsn(const fe_journal_t *j) {
  return j != NULL ? fe__load_acquire(&j->written_lsn) : 0; /* A1 */
}

uint64_t fe_journal_durable_lsn(const fe_journal_t *j) {
  return j != NULL ? fe__load_acquire(&j->durable_lsn) : 0; /* A2 */
}

uint32_t fe_journal_max_record(const fe_journal_t *j) {
  return j != NULL ? j->max_len : 0;
}

int fe_journal_wait_durable(fe_journal_t *j, uint64_t lsn,
                            uint64_t timeout_ns) {
  if (j == NULL)
    return FE_EINVAL;
  if (fe_journal_durable_lsn(j) >= lsn)
    return 0;
  /* Relaxed is enough: a caller holding lsn got it from an append that
   * stored next_lsn past it before returning, or from a thread that did,
   * through some synchronisation; either way that store happens-before
   * this load, which therefore cannot see an older value. */
  if (lsn >= fe__load_relaxed(&j->st.next_lsn))
    return FE_ERANGE;
  struct timespec ts = {0, 0};
  int forever = timeout_ns == FE_WAIT_FOREVER;
  if (!forever) {
    uint64_t end = fe__deadline(timeout_ns);
    ts.tv_sec = (time_t)(end / NS_PER_SEC);
    ts.tv_nsec = (long)(end % NS_PER_SEC);
  }
  int rc = 0;
  pthread_mutex_lock(&j->wait_mu);
  /* publish_durable() and fail() store before taking wait_mu, then
   * broadcast under it: a check made under wait_mu either sees the store
   * or runs before the broadcast, which then finds us waiting. */
  while (fe_journal_durable_lsn(j) < lsn) {
    if ((rc = failed(j)) != 0)
      break;
    if (timeout_ns == 0) {
      rc = FE_ETIMEDOUT;
      break;
    }
    int w = forever ? pthread_cond_wait(&j->durable_cv, &j->wait_mu)
                    : pthread_cond_timedwait(&j->durable_cv, &j->wait_mu, &ts);
    if (w == ETIMEDOUT && fe_journal_durable_lsn(j) < lsn) {
      rc = failed(j) ? failed(j) : FE_ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&j->wait_mu);
  return rc;
}

/* --------------------------------------------------------------- pins */

int fe_journal_pin(fe_journal_t *j, uint64_t lsn, uint32_t *pin) {
  if (j == NULL || pin == NULL)
    return FE_EINVAL;
  if (j->cfg.read_only)
    return FE_ESTATE;
  /* Relaxed: the CAS below validates it. */
  uint32_t m = fe__load_relaxed(&j->pin_used);
  for (;;) {
    if (m == (UINT32_C(1) << FE_JOURNAL_MAX_PINS) - 1)
      return FE_EFULL;
    uint32_t i = (uint32_t)__builtin_ctz(~m);
    /* Acquire (R2, pairs with R1 in fe_journal_pin_release()): the
     * previous owner's UINT64_MAX store happens before ours below, so
     * ours is the pin's value.  The lsn itself is published by P1. */
    if (__atomic_compare_exchange_n(&j->pin_used, &m, m | UINT32_C(1) << i,
                                    1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      fe__store_release(&j->pins[i], lsn); /* P1, pairs with P2 */
      *pin = i;
      return 0;
    }
  }
}

static int pin_ok(const fe_journal_t *j, uint32_t pin) {
  if (pin >= FE_JOURNAL_MAX_PINS)
    return FE_ERANGE;
  /* Relaxed: only the pin's owner sets or clears its bit, and it is the
   * caller (calling on a pin it does not own is the caller's bug, which
   * this check catches only when the pin is free). */
  if (!(fe__load_relaxed(&j->pin_used) & UINT32_C(1) << pin))
    return FE_ENOTFOUND;
  return 0;
}

int fe_journal_pin_set(fe_journal_t *j, uint32_t pin, uint64_t lsn) {
  if (j == NULL)
    return FE_EINVAL;
  int rc = pin_ok(j, pin);
  if (rc == 0)
    fe__store_release(&j->pins[pin], lsn); /* P1, pairs with P2 */
  return rc;
}

int fe_journal_pin_release(fe_journal_t *j, uint32_t pin) {
  if (j == NULL)
    return FE_EINVAL;
  int rc = pin_ok(j, pin);
  if (rc != 0)
    return rc;
  fe__store_release(&j->pins[pin], UINT64_MAX); /* P1 */
  /* R1, release, pairs with R2: the UINT64_MAX store above happens
   * before the next owner's lsn store. */
  __atomic_fetch_and(&j->pin_used, ~(UINT32_C(1) << pin), __ATOMIC_RELEASE);
  return 0;
}

/* The lowest pin, UINT64_MAX when none holds anything back. */
static uint64_t pin_min(const fe_journal_t *j) {
  uint64_t lo = UINT64_MAX;
  for (int i = 0; i < FE_JOURNAL_MAX_PINS; i++) {
    uint64_t v = fe__load_acquire(&j->pins[i]); /* P2, pairs with P1 */
    if (v < lo)
      lo = v;
  }
  return lo;
}

/* ------------------------------------------------------------- retire */

int fe_journal_retire(fe_journal_t *j, uint64_t finished_below_lsn,
                      uint32_t *removed) {
  if (removed != NULL)
    *removed = 0;
  if (j == NULL)
    return FE_EINVAL;
  if (j->cfg.read_only)
    return FE_ESTATE;
  pthread_mutex_lock(&j->io_mu);
  uint64_t pinned = pin_min(j);
  if (pinned < finished_below_lsn)
    finished_below_lsn = pinned;
  int rc = failed(j);
  uint64_t now = now_ns(j);
  uint32_t n = 0;
  while (rc == 0 && j->n_segs - n > 1) {
    const fe__jseg_t *s = &j->segs[n];
    if (s->last_lsn >= finished_below_lsn || now < s->newest_ns ||
        now - s->newest_ns < j->cfg.retention_ns)
      break;
    char name[JNAME_MAX];
    fe__jseg_name(name, s->index, 0);
    if (unlinkat(j->dfd, name, 0) != 0) {
      fe__store_relaxed(&j->sys_errno, errno);
      cnt(&j->st.retire_failures, 1);
      rc = FE_EIO;
      break;
    }
    n++;
  }
  if (n != 0) {
    j->n_segs -= n;
    memmove(j->segs, j->segs + n, j->n_segs * sizeof *j->segs);
    cnt(&j->st.retired, n);
    mirror_segments(j);
    if (j->cfg.fsync != FE_FSYNC_NONE && fsync(j->dfd) != 0 && rc == 0) {
      fe__store_relaxed(&j->sys_errno, errno);
      cnt(&j->st.retire_failures, 1);
      rc = FE_EIO;
    }
  }
  pthread_mutex_unlock(&j->io_mu);
  if (removed != NULL)
    *removed = n;
  return rc;
}

/* -------------------------------------------------------------- stats */

int fe_journal_stats(const fe_journal_t *j, fe_journal_stats_t *s) {
  if (j == NULL || s == NULL)
    return FE_EINVAL;
  const jstats_t *t = &j->st;
  s->appends = fe__load_relaxed(&t->appends);
  s->append_bytes = fe__load_relaxed(&t->append_bytes);
  s->full_flushes = fe__load_relaxed(&t->full_flushes);
  s->writes = fe__load_relaxed(&t->writes);
  s->write_bytes = fe__load_relaxed(&t->write_bytes);
  s->fsyncs = fe__load_relaxed(&t->fsyncs);
  s->rotations = fe__load_relaxed(&t->rotations);
  s->retired = fe__load_relaxed(&t->retired);
  s->retire_failures = fe__load_relaxed(&t->retire_failures);
  s->segments = fe__load_relaxed(&t->segments);
  s->first_segment = fe__load_relaxed(&t->first_segment);
  s->active_segment = fe__load_relaxed(&t->active_segment);
  s->next_lsn = fe__load_relaxed(&t->next_lsn);
  s->durable_lsn = fe_journal_durable_lsn(j);
  s->written_lsn = fe_journal_written_lsn(j);
  s->error = failed(j);
  s->sys_errno = fe__load_relaxed(&j->sys_errno);
  return 0;
}
