/*
 * The audit trail's writer: a bounded lock-free MPSC queue of records
 * (Dmitry Vyukov's bounded queue: per-cell sequence numbers, producers
 * race on one compare-and-swap of the tail, the single writer never
 * writes the tail), and a thread that chains, signs and writes them.
 */
#define _GNU_SOURCE /* fdatasync, O_CLOEXEC */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_impl.h"
#include "internal.h"
#include "sync.h"

#define WBUF_FRAMES 256 /* frames the writer gathers into one write(2) */

typedef struct cell {
  /* Cell i is free for the producer of position p when seq == p, holds
   * that record when seq == p + 1, free again for p + capacity after the
   * writer stores seq = p + capacity.  A1 (producer's release) pairs with
   * W0 (writer's acquire); W1 (writer's release) pairs with P0. */
  uint64_t seq;
  fe_audit_rec_t rec;
} cell_t;

struct fe_audit {
  /* Producers' line: the next position to claim (CAS, relaxed: the cell's
   * own seq carries the ordering). */
  uint64_t tail __attribute__((aligned(FE_PAD)));
  uint64_t lost;    /* producers add (relaxed RMW), anyone reads */
  uint64_t blocked; /* producers add (relaxed RMW), anyone reads */
  /* Writer-owned, others read relaxed. */
  uint64_t head __attribute__((aligned(FE_PAD)));
  uint64_t written, checkpoints, last_seq, io_errors;
  /* fe_audit_flush: flushers increment req (release), the writer acks
   * (release) after the work; the acquire loads pair. */
  uint64_t flush_req __attribute__((aligned(FE_PAD)));
  uint64_t flush_ack;
  int stop;     /* destroy sets (release), the writer reads (acquire) */
  int last_err; /* writer writes, flushers read (relaxed) */

  cell_t *cells;
  uint64_t mask;
  fe_audit_config_t cfg;
  char *dir;
  uint8_t sk[FE_AUDIT_SECKEY];
  uint8_t pk[FE_AUDIT_PUBKEY];
  int have_key;
  pthread_t thread;

  /* Writer state. */
  int fd, dirfd;
  uint64_t seg_bytes;   /* bytes in the current segment on disk */
  uint64_t seg_limit;
  uint64_t seq;         /* next frame's sequence */
  uint8_t h[FE_AUDIT_HASH];
  uint8_t *wbuf;
  uint32_t wn;          /* frames in wbuf */
  uint64_t unsigned_recs, first_unsigned_ns;
  uint64_t last_fsync_ns;
  int dirty;            /* written since the last fsync */
  uint64_t lost_noted;
};

void fe_audit_config_init(fe_audit_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->segment_bytes = 64u << 20;
  cfg->fsync = FE_FSYNC_INTERVAL;
  cfg->fsync_interval_ns = 10000000;
  cfg->capacity = 16384;
  cfg->full = FE_AUDIT_FULL_BLOCK;
  cfg->block_ns = 10000000;
  cfg->checkpoint_every = 1024;
  cfg->checkpoint_ns = 1000000000;
  cfg->idle_poll_ns = 1000000;
}

static uint64_t wall(const fe_audit_t *a) {
  return a->cfg.wall_ns ? a->cfg.wall_ns(a->cfg.clock_user) : fe_clock_realtime_ns();
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ hand-off */

static int try_put(fe_audit_t *a, const fe_audit_rec_t *rec) {
  uint64_t pos = fe__load_relaxed(&a->tail);
  for (;;) {
    cell_t *c = &a->cells[pos & a->mask];
    uint64_t s = fe__load_acquire(&c->seq); /* P0: pairs with W1 */
    int64_t dif = (int64_t)(s - pos);
    if (dif == 0) {
      /* Relaxed CAS: winning it only grants the cell; its contents are
       * published by A1. */
      if (__atomic_compare_exchange_n(&a->tail, &pos, pos + 1, 1,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        c->rec = *rec;
        if (c->rec.wall_ns == 0)
          c->rec.wall_ns = wall(a);
        fe__store_release(&c->seq, pos + 1); /* A1 */
        return 0;
      }
    } else if (dif < 0) {
      return FE_EFULL; /* the writer has not freed this cell yet */
    } else {
      pos = fe__load_relaxed(&a->tail);
    }
  }
}

static int valid_rec(const fe_audit_rec_t *r) {
  return r->decision >= 1 && r->decision < FE_AUDIT_CHECKPOINT &&
         r->decision != FE_AUDIT_OPENED && r->decision != FE_AUDIT_LOST;
}

int fe_audit_append(fe_audit_t *a, const fe_audit_rec_t *rec) {
  if (a == NULL || rec == NULL || !valid_rec(rec))
    return FE_EINVAL;
  int rc = try_put(a, rec);
  if (FE_LIKELY(rc == 0))
    return 0;
  if (a->cfg.full == FE_AUDIT_FULL_BLOCK) {
    __atomic_fetch_add(&a->blocked, 1, __ATOMIC_RELAXED);
    uint64_t t0 = fe_clock_now_ns();
    for (uint32_t i = 0;; i++) {
      if (i < 64)
        __builtin_ia32_pause();
      else
        sched_yield();
      if (try_put(a, rec) == 0)
        return 0;
      if ((i & 63) == 63 && fe_clock_now_ns() - t0 >= a->cfg.block_ns)
        break;
    }
    rc = FE_ETIMEDOUT;
  }
  __atomic_fetch_add(&a->lost, 1, __ATOMIC_RELAXED); /* the writer notes it */
  return rc;
}

static void copy_text(char *dst, size_t cap, const char *src) {
  memset(dst, 0, cap);
  if (src != NULL)
    memcpy(dst, src, strnlen(src, cap));
}

int fe_audit_event(fe_audit_t *a, const fe_event_t *ev, uint64_t eid,
                   uint32_t stage, uint32_t decision, uint32_t reason,
                   const char *detail) {
  if (ev == NULL)
    return FE_EINVAL;
  fe_audit_rec_t r;
  r.wall_ns = 0;
  r.seq = 0;
  r.event_id = eid;
  r.account = ev->order.account;
  r.stage = stage;
  r.decision = decision;
  r.reason = reason;
  r.type = FEA_REC;
  memcpy(r.trace_id, ev->trace.trace_id, sizeof r.trace_id);
  memcpy(r.span_id, ev->trace.span_id, sizeof r.span_id);
  memcpy(r.client_order_id, ev->order.client_order_id, FE_CLORDID_MAX);
  copy_text(r.detail, sizeof r.detail, detail);
  return fe_audit_append(a, &r);
}

int fe_audit_note(fe_audit_t *a, uint32_t decision, uint64_t account,
                  const char *text) {
  fe_audit_rec_t r;
  memset(&r, 0, sizeof r);
  r.decision = decision;
  r.account = account;
  copy_text(r.detail, sizeof r.detail, text);
  return fe_audit_append(a, &r);
}

/* -------------------------------------------------------------- writer */

static void io_error(fe_audit_t *a, int err) {
  fe__add_owned(&a->io_errors, 1);
  fe__store_relaxed(&a->last_err, err);
  if (a->cfg.on_alert != NULL)
    a->cfg.on_alert(FE_AUDIT_ALERT_IO, -err, a->cfg.user);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return errno ? errno : EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int do_fsync(fe_audit_t *a) {
  if (!a->dirty)
    return 0;
  if (fdatasync(a->fd) != 0) {
    io_error(a, errno);
    return -1;
  }
  a->dirty = 0;
  a->last_fsync_ns = fe_clock_now_ns();
  return 0;
}

/* Writes wbuf out.  On failure the bytes stay in wbuf, the file is cut
 * back to its last whole write, and the next call tries again. */
static int write_out(fe_audit_t *a) {
  if (a->wn == 0)
    return 0;
  size_t n = (size_t)a->wn * FE_AUDIT_FRAME;
  int e = write_all(a->fd, a->wbuf, n);
  if (e != 0) {
    if (ftruncate(a->fd, (off_t)a->seg_bytes) != 0) { /* best effort */
    }
    io_error(a, e);
    return -1;
  }
  a->seg_bytes += n;
  a->wn = 0;
  a->dirty = 1;
  fe__store_relaxed(&a->last_err, 0);
  if (a->cfg.fsync == FE_FSYNC_GROUP ||
      (a->cfg.fsync == FE_FSYNC_INTERVAL &&
       fe_clock_now_ns() - a->last_fsync_ns >= a->cfg.fsync_interval_ns))
    return do_fsync(a);
  return 0;
}

static int open_segment(fe_audit_t *a) {
  char name[FEA_NAME_LEN + 1];
  snprintf(name, sizeof name, FEA_NAME_FMT, (unsigned long long)a->seq);
  int fd = openat(a->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno;
  uint8_t hdr[FE_AUDIT_FRAME] = {0};
  memcpy(hdr, FEA_MAGIC, 8);
  fea_put32(hdr + 8, FEA_VERSION);
  fea_put32(hdr + 12, FE_AUDIT_FRAME);
  fea_put64(hdr + 16, a->seq);
  fea_put64(hdr + 24, wall(a));
  memcpy(hdr + 32, a->h, FE_AUDIT_HASH);
  int e = write_all(fd, hdr, sizeof hdr);
  if (e == 0 && a->cfg.fsync != FE_FSYNC_NONE &&
      (fdatasync(fd) != 0 || fsync(a->dirfd) != 0))
    e = errno;
  if (e != 0) {
    close(fd);
    unlinkat(a->dirfd, name, 0);
    return e;
  }
  if (a->fd >= 0)
    close(a->fd);
  a->fd = fd;
  a->seg_bytes = FE_AUDIT_FRAME;
  return 0;
}

/* Chains frame f (bytes 0..191 filled) into wbuf, rotating first when the
 * segment is full.  The caller left room in wbuf. */
static void emit(fe_audit_t *a, uint8_t *f) {
  if (a->seg_bytes + (uint64_t)(a->wn + 1) * FE_AUDIT_FRAME > a->seg_limit &&
      a->seg_bytes + (uint64_t)a->wn * FE_AUDIT_FRAME > FE_AUDIT_FRAME) {
    if (write_out(a) == 0) {
      if (a->cfg.fsync != FE_FSYNC_NONE)
        do_fsync(a);
      int e = open_segment(a);
      if (e != 0)
        io_error(a, e); /* keep growing the current segment */
    }
  }
  uint8_t *dst = a->wbuf + (size_t)a->wn * FE_AUDIT_FRAME;
  if (dst != f)
    memcpy(dst, f, FE_AUDIT_FRAME);
  fe__audit_chain(dst + FEA_OFF_HASH, a->h, dst);
  memcpy(a->h, dst + FEA_OFF_HASH, FE_AUDIT_HASH);
  a->wn++;
  fe__store_relaxed(&a->last_seq, a->seq);
  a->seq++;
}

static void emit_rec(fe_audit_t *a, const fe_audit_rec_t *r) {
  uint8_t f[FE_AUDIT_FRAME];
  fea_encode(f, r, FEA_REC, a->seq);
  emit(a, f);
  if (a->unsigned_recs++ == 0)
    a->first_unsigned_ns = fe_clock_now_ns();
}

static void emit_checkpoint(fe_audit_t *a) {
  fe_audit_checkpoint_t ck;
  memset(&ck, 0, sizeof ck);
  ck.seq = a->seq;
  ck.wall_ns = wall(a);
  memcpy(ck.hash, a->h, FE_AUDIT_HASH);
  memcpy(ck.pubkey, a->pk, FE_AUDIT_PUBKEY);
  uint8_t m[FEA_CK_MSG];
  fea_ck_msg(m, ck.seq, ck.hash, ck.wall_ns);
  crypto_sign_detached(ck.sig, NULL, m, sizeof m, a->sk);
  uint8_t f[FE_AUDIT_FRAME] = {0};
  fea_put32(f, FEA_CKPT);
  fea_put64(f + 8, ck.seq);
  fea_put64(f + 16, ck.wall_ns);
  memcpy(f + FEA_OFF_SIG, ck.sig, FE_AUDIT_SIG);
  emit(a, f);
  memcpy(a->wbuf + (size_t)(a->wn - 1) * FE_AUDIT_FRAME + FEA_OFF_KEY, a->pk,
         FE_AUDIT_PUBKEY);
  a->unsigned_recs = 0;
  fe__add_owned(&a->checkpoints, 1);
  if (a->cfg.on_checkpoint != NULL)
    a->cfg.on_checkpoint(&ck, a->cfg.user);
}

/* Whether wbuf has room for k more frames (it may not while the disk
 * refuses writes: the writer's own frames then wait for the next try). */
static int room(const fe_audit_t *a, uint32_t k) { return a->wn + k <= WBUF_FRAMES; }

/* Records lost since the last note, as a LOST record and an alert. */
static void note_lost(fe_audit_t *a) {
  uint64_t l = fe__load_relaxed(&a->lost);
  if (l == a->lost_noted || !room(a, 2)) /* the LOST record and a checkpoint */
    return;
  uint64_t n = l - a->lost_noted;
  a->lost_noted = l;
  fe_audit_rec_t r;
  memset(&r, 0, sizeof r);
  r.wall_ns = wall(a);
  r.decision = FE_AUDIT_LOST;
  r.reason = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  snprintf(r.detail, sizeof r.detail, "%" PRIu64 " records refused: queue full", n);
  emit_rec(a, &r);
  if (a->cfg.on_alert != NULL)
    a->cfg.on_alert(FE_AUDIT_ALERT_LOST, (int64_t)n, a->cfg.user);
}

/* Moves ready records from the queue into wbuf, up to `upto` (or room).
 * Returns how many. */
static uint32_t drain(fe_audit_t *a, uint64_t upto) {
  uint32_t n = 0;
  while (a->wn + 3 < WBUF_FRAMES && a->head < upto) {
    cell_t *c = &a->cells[a->head & a->mask];
    if (fe__load_acquire(&c->seq) != a->head + 1) /* W0: pairs with A1 */
      break;
    emit_rec(a, &c->rec);
    fe__store_release(&c->seq, a->head + a->mask + 1); /* W1 */
    if (a->have_key && a->cfg.checkpoint_every != 0 &&
        a->unsigned_recs >= a->cfg.checkpoint_every)
      emit_checkpoint(a); /* exactly every N, even inside a batch */
    a->head++;
    n++;
  }
  fe__store_relaxed(&a->written, a->written + n);
  return n;
}

static int ck_due(const fe_audit_t *a) {
  if (!a->have_key || a->unsigned_recs == 0 || !room(a, 1))
    return 0;
  return (a->cfg.checkpoint_every != 0 &&
          a->unsigned_recs >= a->cfg.checkpoint_every) ||
         (a->cfg.checkpoint_ns != 0 &&
          fe_clock_now_ns() - a->first_unsigned_ns >= a->cfg.checkpoint_ns);
}

static void *writer_main(void *arg) {
  fe_audit_t *a = arg;
  for (;;) {
    int stop = fe__load_acquire(&a->stop);
    uint64_t req = fe__load_acquire(&a->flush_req); /* pairs with flushers */
    /* A flush or the stop covers every record claimed before it. */
    uint64_t target = fe__load_relaxed(&a->tail);
    int want = stop || req != fe__load_relaxed(&a->flush_ack);
    uint32_t got = 0, n;
    do {
      note_lost(a);
      n = drain(a, UINT64_MAX);
      got += n;
      if (ck_due(a))
        emit_checkpoint(a);
      if (a->wn != 0 && write_out(a) != 0 && n == 0)
        break; /* the disk refuses: report it, retry after the sleep */
      if (want && n == 0 && a->head < target)
        sched_yield(); /* a producer between its claim and its store */
    } while (want ? a->head < target : n != 0 && got < 16 * WBUF_FRAMES);
    if (want) {
      note_lost(a);
      if (a->have_key && a->unsigned_recs != 0 && room(a, 1))
        emit_checkpoint(a);
      write_out(a);
      if (a->cfg.fsync != FE_FSYNC_NONE)
        do_fsync(a);
      fe__store_release(&a->flush_ack, req);
      /* Stop once everything is out, or when the disk refuses it (the
       * failure was counted and alerted; the rest is lost with the
       * process). */
      if (stop && ((a->head >= target && a->wn == 0) ||
                   fe__load_relaxed(&a->last_err) != 0))
        break;
    }
    if (a->cfg.fsync == FE_FSYNC_INTERVAL && a->dirty &&
        fe_clock_now_ns() - a->last_fsync_ns >= a->cfg.fsync_interval_ns)
      do_fsync(a);
    if (got == 0)
      sleep_ns(stop ? 1000000 : a->cfg.idle_poll_ns);
  }
  return NULL;
}

/* ---------------------------------------------------------------- open */

static int read_at(int fd, void *buf, size_t n, off_t off) {
  return pread(fd, buf, n, off) == (ssize_t)n ? 0 : -1;
}

/* Finds where the chain stands (a->seq, a->h) and opens the segment to
 * continue, cutting a torn tail; or creates the first segment. */
static int recover(fe_audit_t *a, fe_diag_t *d) {
  char(*names)[FEA_NAME_LEN + 1] = NULL;
  size_t n = 0;
  int rc = fe__audit_list(a->dir, &names, &n);
  if (rc != 0)
    return fe__diag(d, rc, "audit: cannot list %s", a->dir);
  a->seq = 1;
  memset(a->h, 0, sizeof a->h);
  while (n > 0) {
    const char *name = names[n - 1];
    int fd = openat(a->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      rc = fe__diag(d, FE_EIO, "audit: %s/%s: %s", a->dir, name, strerror(errno));
      if (fd >= 0)
        close(fd);
      break;
    }
    uint64_t size = (uint64_t)st.st_size, first = 0;
    fe__audit_segname(name, &first);
    if (size < FE_AUDIT_FRAME) { /* died creating it: nothing in it */
      close(fd);
      unlinkat(a->dirfd, name, 0);
      n--;
      continue;
    }
    uint8_t hdr[FE_AUDIT_FRAME], last[FE_AUDIT_FRAME];
    if (read_at(fd, hdr, sizeof hdr, 0) != 0 || memcmp(hdr, FEA_MAGIC, 8) != 0 ||
        fea_get64(hdr + 16) != first) {
      close(fd);
      rc = fe__diag(d, FE_ECORRUPT, "audit: %s/%s is not an audit segment", a->dir, name);
      break;
    }
    if (fea_get32(hdr + 8) != FEA_VERSION || fea_get32(hdr + 12) != FE_AUDIT_FRAME) {
      close(fd);
      rc = fe__diag(d, FE_EVERSION, "audit: %s/%s: format version %u", a->dir, name,
                    fea_get32(hdr + 8));
      break;
    }
    uint64_t k = (size - FE_AUDIT_FRAME) / FE_AUDIT_FRAME;
    uint64_t whole = FE_AUDIT_FRAME + k * FE_AUDIT_FRAME;
    if (whole != size && ftruncate(fd, (off_t)whole) != 0) {
      close(fd);
      rc = fe__diag(d, FE_EIO, "audit: cutting the torn tail of %s: %s", name,
                    strerror(errno));
      break;
    }
    uint8_t prev[FE_AUDIT_HASH];
    memcpy(prev, hdr + 32, FE_AUDIT_HASH);
    a->seq = first;
    memcpy(a->h, prev, FE_AUDIT_HASH);
    if (k > 0) {
      uint8_t before[FE_AUDIT_FRAME];
      if ((k > 1 && read_at(fd, before, sizeof before, (off_t)(whole - 2 * FE_AUDIT_FRAME)) != 0) ||
          read_at(fd, last, sizeof last, (off_t)(whole - FE_AUDIT_FRAME)) != 0) {
        close(fd);
        rc = fe__diag(d, FE_EIO, "audit: reading %s: %s", name, strerror(errno));
        break;
      }
      if (k > 1)
        memcpy(prev, before + FEA_OFF_HASH, FE_AUDIT_HASH);
      uint8_t h[FE_AUDIT_HASH];
      fe__audit_chain(h, prev, last);
      if (memcmp(h, last + FEA_OFF_HASH, FE_AUDIT_HASH) != 0 ||
          fea_get64(last + 8) != first + k - 1) {
        close(fd);
        rc = fe__diag(d, FE_ECORRUPT,
                      "audit: the last frame of %s/%s does not continue the chain "
                      "(run fe-audit verify)", a->dir, name);
        break;
      }
      a->seq = first + k;
      memcpy(a->h, h, FE_AUDIT_HASH);
    }
    a->fd = fd;
    a->seg_bytes = whole;
    break;
  }
  free(names);
  if (rc != 0)
    return rc;
  if (a->fd < 0) {
    int e = open_segment(a);
    if (e != 0)
      return fe__diag(d, FE_EIO, "audit: creating a segment in %s: %s", a->dir,
                      strerror(e));
  }
  return 0;
}

/* Closes and frees what a holds (the writer is not running). */
static void free_audit(fe_audit_t *a) {
  if (a->fd >= 0)
    close(a->fd);
  if (a->dirfd >= 0)
    close(a->dirfd);
  sodium_memzero(a->sk, sizeof a->sk);
  free(a->wbuf);
  free(a->cells);
  free(a->dir);
  free(a);
}

int fe_audit_create(const fe_audit_config_t *cfg, fe_audit_t **out, fe_diag_t *d) {
  if (out == NULL)
    return fe__diag(d, FE_EINVAL, "audit: out is NULL");
  *out = NULL;
  if (cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0')
    return fe__diag(d, FE_EINVAL, "audit: cfg or cfg->dir is NULL");
  if (cfg->capacity < 2 || (cfg->capacity & (cfg->capacity - 1)) != 0)
    return fe__diag(d, FE_ERANGE, "audit: capacity %u is not a power of two >= 2",
                    cfg->capacity);
  if (cfg->segment_bytes < FE_AUDIT_SEGMENT_MIN)
    return fe__diag(d, FE_ERANGE, "audit: segment_bytes %llu is below %u",
                    (unsigned long long)cfg->segment_bytes, FE_AUDIT_SEGMENT_MIN);
  if ((unsigned)cfg->fsync > FE_FSYNC_GROUP || (unsigned)cfg->full > FE_AUDIT_FULL_COUNT)
    return fe__diag(d, FE_EINVAL, "audit: fsync %d or full %d unknown", (int)cfg->fsync,
                    (int)cfg->full);
  if (sodium_init() < 0)
    return fe__diag(d, FE_EIO, "audit: sodium_init failed");
  fe_audit_t *a = fe__zalloc_aligned(sizeof *a);
  if (a == NULL)
    return fe__diag(d, FE_ENOMEM, "audit: out of memory");
  a->cfg = *cfg;
  a->fd = a->dirfd = -1;
  a->seg_limit = cfg->segment_bytes / FE_AUDIT_FRAME * FE_AUDIT_FRAME;
  a->mask = cfg->capacity - 1;
  a->dir = strdup(cfg->dir);
  a->cells = fe__zalloc_aligned((size_t)cfg->capacity * sizeof(cell_t));
  a->wbuf = malloc((size_t)WBUF_FRAMES * FE_AUDIT_FRAME);
  int rc = 0;
  if (a->dir == NULL || a->cells == NULL || a->wbuf == NULL) {
    rc = fe__diag(d, FE_ENOMEM, "audit: out of memory");
    goto fail;
  }
  a->cfg.dir = a->dir;
  for (uint64_t i = 0; i <= a->mask; i++)
    a->cells[i].seq = i;
  if (cfg->sign_key != NULL) {
    memcpy(a->sk, cfg->sign_key, FE_AUDIT_SECKEY);
    crypto_sign_ed25519_sk_to_pk(a->pk, a->sk);
    a->have_key = 1;
  }
  if (mkdir(a->dir, 0755) != 0 && errno != EEXIST) {
    rc = fe__diag(d, FE_EIO, "audit: mkdir %s: %s", a->dir, strerror(errno));
    goto fail;
  }
  a->dirfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (a->dirfd < 0) {
    rc = fe__diag(d, FE_EIO, "audit: open %s: %s", a->dir, strerror(errno));
    goto fail;
  }
  if ((rc = recover(a, d)) != 0)
    goto fail;
  a->last_fsync_ns = fe_clock_now_ns();
  fe_audit_rec_t r;
  memset(&r, 0, sizeof r);
  r.wall_ns = wall(a);
  r.decision = FE_AUDIT_OPENED;
  snprintf(r.detail, sizeof r.detail, "opened at seq %llu", (unsigned long long)a->seq);
  emit_rec(a, &r);
  int e = pthread_create(&a->thread, NULL, writer_main, a);
  if (e != 0) {
    rc = fe__diag(d, FE_ETHREAD, "audit: pthread_create: %s", strerror(e));
    goto fail;
  }
  *out = a;
  return 0;
fail:
  free_audit(a);
  return rc;
}

int fe_audit_flush(fe_audit_t *a, uint64_t timeout_ns) {
  if (a == NULL)
    return FE_EINVAL;
  /* Release: our appends happen-before the writer's acquire of req. */
  uint64_t r = __atomic_add_fetch(&a->flush_req, 1, __ATOMIC_RELEASE);
  uint64_t t0 = fe_clock_now_ns();
  while (fe__load_acquire(&a->flush_ack) < r) {
    if (fe_clock_now_ns() - t0 >= timeout_ns)
      return FE_ETIMEDOUT;
    sleep_ns(100000);
  }
  return fe__load_relaxed(&a->last_err) != 0 ? FE_EIO : 0;
}

void fe_audit_destroy(fe_audit_t *a) {
  if (a == NULL)
    return;
  fe__store_release(&a->stop, 1);
  pthread_join(a->thread, NULL);
  free_audit(a);
}

int fe_audit_stats(const fe_audit_t *a, fe_audit_stats_t *o) {
  if (a == NULL || o == NULL)
    return FE_EINVAL;
  uint64_t lost = fe__load_relaxed(&a->lost);
  o->written = fe__load_relaxed(&a->written);
  o->appended = fe__load_relaxed(&a->tail);
  o->lost = lost;
  o->blocked = fe__load_relaxed(&a->blocked);
  o->checkpoints = fe__load_relaxed(&a->checkpoints);
  o->last_seq = fe__load_relaxed(&a->last_seq);
  o->depth = o->appended >= o->written ? o->appended - o->written : 0;
  o->io_errors = fe__load_relaxed(&a->io_errors);
  return 0;
}
