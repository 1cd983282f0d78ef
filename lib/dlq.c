/* Dead-letter queue: see include/finevent/dlq.h.
 *
 * One pthread mutex guards every field of the queue below `mu` (the
 * configuration is read-only after create).  Nothing is read or written
 * without it, so there is no atomic access and no memory-order reasoning
 * here: the mutex's lock/unlock pairs order everything, including the
 * slot contents a redrive reads outside the lock (it pinned the slot under
 * the lock; nobody writes a pinned slot; the unlock after pinning
 * happens-before the callback's reads).
 *
 * Slots.  slots[i] is FREE (on the free list, linked by `next`), LIVE (in
 * the queue, on the ordered list) or HIDDEN (purged while a redrive had it
 * pinned: still on the ordered list so the redriver can continue from it,
 * but invisible to every other call; the redriver frees it).  `used`
 * counts LIVE + HIDDEN slots and decides fullness; `count` counts LIVE.
 *
 * Ids.  id = seq * capacity + index, seq = 1, 2, ...: strictly increasing
 * with puts (index < capacity), never 0, and index = id % capacity finds
 * the slot; the slot's stored id tells a live id from a stale one.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_condattr_setclock, strnlen */

#include "finevent/dlq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define NIL UINT32_MAX
#define NS_PER_SEC UINT64_C(1000000000)

enum { SLOT_FREE = 0, SLOT_LIVE = 1, SLOT_HIDDEN = 2 };

typedef struct slot {
  fe_dlq_entry_t e;    /* e.user_area is filled in only when shown */
  uint32_t prev, next; /* ordered list (LIVE, HIDDEN) or free list (FREE) */
  uint8_t state;       /* SLOT_* */
  uint8_t pinned;      /* a redrive is running on it */
} slot_t;

struct fe_dlq {
  fe_dlq_config_t cfg;      /* read-only after create */
  size_t user_stride;       /* user_size rounded up to 16 */
  uint64_t seq_limit;       /* largest seq whose ids fit in 64 bits */
  uint32_t hw_mark;         /* occupancy that raises the alert; 0: off */

  pthread_mutex_t mu;
  pthread_cond_t space;     /* signalled when a slot is freed */

  /* Everything below: under mu only. */
  slot_t *slots;
  uint8_t *user;            /* capacity * user_stride bytes */
  uint32_t head, tail;      /* ordered list: oldest, newest */
  uint32_t free_head;
  uint32_t used;            /* LIVE + HIDDEN */
  uint32_t waiters;         /* puts waiting on `space` */
  int hw_armed;
  uint64_t next_seq;
  fe_dlq_stats_t st;        /* st.count is `count` */
  uint32_t by_reason[FE_REASON_MAX + 1]; /* LIVE entries per reason */
  /* A journaled bus attached to the queue (fe__dlq_attach): told of every
   * purged entry under mu, and once after the lock is dropped. */
  void (*on_purge)(const fe_event_t *ev, void *user);
  void (*purge_flush)(void *user);
  void *purge_user;
  int purge_pending;        /* on_purge ran since the last flush */
};

/* ------------------------------------------------------------- config */

void fe_dlq_config_init(fe_dlq_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->capacity = 1024;
  cfg->user_size = 0;
  cfg->redrive_limit = 3;
  cfg->policy = FE_DLQ_REJECT;
  cfg->high_water_pct = 80;
}

int fe_dlq_config_check(const fe_dlq_config_t *cfg, fe_diag_t *d) {
  if (cfg == NULL)
    return fe__diag(d, FE_EINVAL, "dlq: config is NULL");
  if (cfg->capacity == 0 || cfg->capacity > FE_DLQ_CAPACITY_MAX)
    return fe__diag(d, FE_ERANGE, "dlq: capacity %u is outside 1..%u",
                    cfg->capacity, FE_DLQ_CAPACITY_MAX);
  if (cfg->user_size > FE_DLQ_USER_SIZE_MAX)
    return fe__diag(d, FE_ERANGE, "dlq: user_size %u is above %u",
                    cfg->user_size, FE_DLQ_USER_SIZE_MAX);
  if (cfg->redrive_limit == 0 || cfg->redrive_limit > FE_DLQ_REDRIVE_LIMIT_MAX)
    return fe__diag(d, FE_ERANGE, "dlq: redrive_limit %u is outside 1..%u",
                    cfg->redrive_limit, FE_DLQ_REDRIVE_LIMIT_MAX);
  if (cfg->policy != FE_DLQ_REJECT && cfg->policy != FE_DLQ_BLOCK)
    return fe__diag(d, FE_EINVAL, "dlq: policy %d is neither FE_DLQ_REJECT "
                    "(0) nor FE_DLQ_BLOCK (1)", (int)cfg->policy);
  if (cfg->high_water_pct > 100)
    return fe__diag(d, FE_ERANGE, "dlq: high_water_pct %u is above 100 "
                    "(0 turns the alert off)", cfg->high_water_pct);
  return 0;
}

/* ---------------------------------------------------------- lifecycle */

int fe_dlq_create(const fe_dlq_config_t *cfg, fe_dlq_t **out, fe_diag_t *d) {
  if (out == NULL)
    return fe__diag(d, FE_EINVAL, "dlq: out is NULL");
  int rc = fe_dlq_config_check(cfg, d);
  if (rc != 0)
    return rc;

  fe_dlq_t *q = calloc(1, sizeof *q);
  if (q == NULL)
    return fe__diag(d, FE_ENOMEM, "dlq: cannot allocate the queue");
  q->cfg = *cfg;
  q->user_stride = ((size_t)cfg->user_size + 15u) & ~(size_t)15u;
  q->seq_limit = (UINT64_MAX - (cfg->capacity - 1u)) / cfg->capacity;
  if (cfg->high_water_pct != 0) {
    uint64_t m = ((uint64_t)cfg->capacity * cfg->high_water_pct + 99u) / 100u;
    q->hw_mark = m == 0 ? 1u : (uint32_t)m;
  }
  q->hw_armed = 1;
  q->next_seq = 1;
  q->st.capacity = cfg->capacity;

  /* calloc touches nothing; memset below faults every page in now. */
  void *slots = NULL, *user = NULL;
  if (posix_memalign(&slots, 64, (size_t)cfg->capacity * sizeof(slot_t)) != 0)
    slots = NULL;
  if (q->user_stride != 0 &&
      posix_memalign(&user, 64, (size_t)cfg->capacity * q->user_stride) != 0)
    user = NULL;
  if (slots == NULL || (q->user_stride != 0 && user == NULL)) {
    free(slots);
    free(user);
    free(q);
    return fe__diag(d, FE_ENOMEM, "dlq: cannot allocate %u entries of %u "
                    "user bytes", cfg->capacity, cfg->user_size);
  }
  q->slots = slots;
  q->user = user;
  memset(q->slots, 0, (size_t)cfg->capacity * sizeof(slot_t));
  if (user != NULL)
    memset(user, 0, (size_t)cfg->capacity * q->user_stride);
  for (uint32_t i = 0; i < cfg->capacity; i++)
    q->slots[i].next = i + 1 < cfg->capacity ? i + 1 : NIL;
  q->free_head = 0;
  q->head = q->tail = NIL;

  pthread_condattr_t ca;
  int ok = pthread_condattr_init(&ca) == 0;
  if (ok) {
    ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&q->space, &ca) == 0;
    pthread_condattr_destroy(&ca);
  }
  if (ok && pthread_mutex_init(&q->mu, NULL) != 0) {
    pthread_cond_destroy(&q->space);
    ok = 0;
  }
  if (!ok) {
    free(q->slots);
    free(q->user);
    free(q);
    return fe__diag(d, FE_ENOMEM, "dlq: cannot initialise the mutex or the "
                    "condition variable");
  }
  *out = q;
  return 0;
}

void fe_dlq_destroy(fe_dlq_t *q) {
  if (q == NULL)
    return;
  pthread_cond_destroy(&q->space);
  pthread_mutex_destroy(&q->mu);
  free(q->slots);
  free(q->user);
  free(q);
}

/* ------------------------------------------------------------ helpers */

static void lock(fe_dlq_t *q) { pthread_mutex_lock(&q->mu); }
static void unlock(fe_dlq_t *q) { pthread_mutex_unlock(&q->mu); }

static uint8_t *user_of(const fe_dlq_t *q, uint32_t i) {
  return q->user_stride != 0 ? q->user + (size_t)i * q->user_stride : NULL;
}

/* The LIVE slot holding id, or NIL. */
static uint32_t find_live(const fe_dlq_t *q, uint64_t id) {
  if (id == 0)
    return NIL;
  uint32_t i = (uint32_t)(id % q->cfg.capacity);
  const slot_t *s = &q->slots[i];
  return s->state == SLOT_LIVE && s->e.id == id ? i : NIL;
}

static int matches(const slot_t *s, const fe_dlq_filter_t *f) {
  if (f == NULL)
    return 1;
  if ((f->match & FE_DLQ_MATCH_STAGE) && s->e.stage != f->stage)
    return 0;
  if ((f->match & FE_DLQ_MATCH_REASON) && s->e.reason != f->reason)
    return 0;
  if ((f->match & FE_DLQ_MATCH_KIND) && s->e.kind != f->kind)
    return 0;
  return 1;
}

static void snapshot(const fe_dlq_t *q, fe_dlq_stats_t *s) { *s = q->st; }

/* LIVE -> out of view: no longer counted. */
static void hide(fe_dlq_t *q, slot_t *s) {
  q->st.count--;
  q->by_reason[s->e.reason]--;
  s->state = SLOT_HIDDEN;
}

/* Unlinks slot i (HIDDEN, or LIVE already hidden from the counts by the
 * caller) and returns it to the free list; wakes a blocked put. */
static void release(fe_dlq_t *q, uint32_t i) {
  slot_t *s = &q->slots[i];
  if (s->prev != NIL)
    q->slots[s->prev].next = s->next;
  else
    q->head = s->next;
  if (s->next != NIL)
    q->slots[s->next].prev = s->prev;
  else
    q->tail = s->prev;
  s->state = SLOT_FREE;
  s->pinned = 0;
  s->next = q->free_head;
  q->free_head = i;
  q->used--;
  if (q->hw_mark != 0 && q->used < q->hw_mark)
    q->hw_armed = 1;
  if (q->waiters != 0)
    pthread_cond_signal(&q->space);
}

/* Under mu: tells the attached bus that s is gone for good. */
static void purged(fe_dlq_t *q, const slot_t *s) {
  if (q->on_purge != NULL) {
    q->on_purge(&s->e.event, q->purge_user);
    q->purge_pending = 1;
  }
}

/* After dropping mu: lets the attached bus make the purges durable. */
static void purge_flush(fe_dlq_t *q) {
  lock(q);
  int pending = q->purge_pending;
  q->purge_pending = 0;
  void (*flush)(void *) = q->purge_flush;
  void *user = q->purge_user;
  unlock(q);
  if (pending && flush != NULL)
    flush(user);
}

int fe__dlq_attach(fe_dlq_t *q, void (*on_purge)(const fe_event_t *, void *),
                   void (*flush)(void *), void *user) {
  lock(q);
  int busy = q->on_purge != NULL && on_purge != NULL;
  if (!busy) {
    q->on_purge = on_purge;
    q->purge_flush = flush;
    q->purge_user = user;
    q->purge_pending = 0;
  }
  unlock(q);
  return busy ? FE_ESTATE : 0;
}

/* Removes entry i from view: LIVE and unpinned slots are freed; a pinned
 * one stays HIDDEN for its redriver (who counts it). */
static void purge_slot(fe_dlq_t *q, uint32_t i) {
  slot_t *s = &q->slots[i];
  hide(q, s);
  if (!s->pinned) {
    q->st.purged++;
    purged(q, s);
    release(q, i);
  }
}

static void alert(const fe_dlq_t *q, fe_dlq_alert_t kind,
                  const fe_dlq_stats_t *s) {
  if (q->cfg.on_alert != NULL)
    q->cfg.on_alert(kind, s, q->cfg.user);
}

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait. */
static struct timespec deadline_ts(uint64_t timeout_ns) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
  uint64_t end = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
  ts.tv_sec = (time_t)(end / NS_PER_SEC);
  ts.tv_nsec = (long)(end % NS_PER_SEC);
  return ts;
}

/* Kept length of text: at most FE_DLQ_TEXT_MAX - 1 bytes, cut back to a
 * UTF-8 character boundary when it had to be cut (the first dropped byte
 * is a continuation byte 10xxxxxx: back off to its lead byte). */
static size_t text_len(const char *text, uint32_t *flags) {
  if (text == NULL)
    return 0;
  size_t n = strnlen(text, FE_DLQ_TEXT_MAX);
  if (n < FE_DLQ_TEXT_MAX)
    return n;
  *flags |= FE_DLQ_F_TEXT_TRUNCATED;
  n = FE_DLQ_TEXT_MAX - 1;
  while (n > 0 && ((unsigned char)text[n] & 0xC0u) == 0x80u)
    n--;
  return n;
}

static int check_put(const fe_dlq_put_t *in) {
  if (in == NULL || in->event == NULL)
    return FE_EINVAL;
  if ((in->user_area == NULL && in->user_len != 0) ||
      (in->key == NULL && in->key_len != 0))
    return FE_EINVAL;
  if (in->kind != FE_DLQ_FAIL && in->kind != FE_DLQ_RETRIES_EXHAUSTED &&
      in->kind < FE_DLQ_KIND_USER)
    return FE_EINVAL;
  if (in->reason > FE_REASON_MAX || in->key_len > FE_DLQ_KEY_MAX)
    return FE_ERANGE;
  return 0;
}

/* Takes a free slot (there is one), fills it from in and links it as the
 * newest.  Returns the new id. */
static uint64_t store(fe_dlq_t *q, const fe_dlq_put_t *in) {
  uint32_t i = q->free_head;
  slot_t *s = &q->slots[i];
  q->free_head = s->next;

  fe_dlq_entry_t *e = &s->e;
  e->event = *in->event;
  e->id = q->next_seq++ * q->cfg.capacity + i;
  e->first_seen_ns = in->first_seen_ns;
  e->dead_ns = q->cfg.now_ns != NULL ? q->cfg.now_ns(q->cfg.clock_user)
                                     : fe_clock_realtime_ns();
  e->trace_id = in->event->trace_id;
  e->stage = in->stage;
  e->kind = in->kind;
  e->reason = in->reason;
  e->attempts = in->attempts;
  e->redrive_count = in->redrive_count;
  e->flags = 0;
  e->user_len = in->user_len;
  if (e->user_len > q->cfg.user_size) {
    e->user_len = q->cfg.user_size;
    e->flags |= FE_DLQ_F_USER_TRUNCATED;
  }
  if (e->user_len != 0)
    memcpy(user_of(q, i), in->user_area, e->user_len);
  e->user_area = NULL;
  size_t n = text_len(in->text, &e->flags);
  if (n != 0)
    memcpy(e->text, in->text, n);
  memset(e->text + n, 0, sizeof e->text - n);
  e->key_len = in->key_len;
  if (in->key_len != 0)
    memcpy(e->key, in->key, in->key_len);
  memset(e->key + in->key_len, 0, sizeof e->key - in->key_len);

  s->state = SLOT_LIVE;
  s->pinned = 0;
  s->next = NIL;
  s->prev = q->tail;
  if (q->tail != NIL)
    q->slots[q->tail].next = i;
  else
    q->head = i;
  q->tail = i;
  q->used++;
  q->st.count++;
  q->st.put++;
  q->by_reason[e->reason]++;
  return e->id;
}

/* ---------------------------------------------------------------- put */

int fe_dlq_put(fe_dlq_t *q, const fe_dlq_put_t *in, uint64_t timeout_ns,
               uint64_t *id_out) {
  if (q == NULL)
    return FE_EINVAL;
  int rc = check_put(in);
  if (rc != 0)
    return rc;

  fe_dlq_stats_t snap;
  int blocking = q->cfg.policy == FE_DLQ_BLOCK;
  int alerted = 0, expired = timeout_ns == 0;
  struct timespec dl = {0, 0};
  if (blocking && !expired && timeout_ns != FE_WAIT_FOREVER)
    dl = deadline_ts(timeout_ns);

  lock(q);
  while (q->used >= q->cfg.capacity) {
    if (!blocking) {
      q->st.refused++;
      q->st.full_alerts++;
      snapshot(q, &snap);
      unlock(q);
      alert(q, FE_DLQ_ALERT_FULL, &snap);
      return FE_EFULL;
    }
    if (!alerted) {
      /* Alert once, outside the lock, then look again: the callback may
       * have made room. */
      alerted = 1;
      q->st.blocked++;
      q->st.full_alerts++;
      snapshot(q, &snap);
      unlock(q);
      alert(q, FE_DLQ_ALERT_FULL, &snap);
      lock(q);
      continue;
    }
    if (expired) {
      q->st.refused++;
      unlock(q);
      return FE_ETIMEDOUT;
    }
    q->waiters++;
    int w = timeout_ns == FE_WAIT_FOREVER
                ? pthread_cond_wait(&q->space, &q->mu)
                : pthread_cond_timedwait(&q->space, &q->mu, &dl);
    q->waiters--;
    if (w == ETIMEDOUT)
      expired = 1; /* but take a slot freed meanwhile: the loop checks */
  }
  if (q->next_seq > q->seq_limit) {
    unlock(q);
    return FE_ERANGE;
  }
  uint64_t id = store(q, in);
  int hw = q->hw_mark != 0 && q->hw_armed && q->used >= q->hw_mark;
  if (hw) {
    q->hw_armed = 0;
    q->st.high_water_alerts++;
    snapshot(q, &snap);
  }
  unlock(q);
  if (id_out != NULL)
    *id_out = id;
  if (hw)
    alert(q, FE_DLQ_ALERT_HIGH_WATER, &snap);
  return 0;
}

/* ------------------------------------------------------------ inspect */

int fe_dlq_count(fe_dlq_t *q) {
  if (q == NULL)
    return FE_EINVAL;
  lock(q);
  int n = (int)q->st.count;
  unlock(q);
  return n;
}

int fe_dlq_count_reason(fe_dlq_t *q, uint32_t reason) {
  if (q == NULL)
    return FE_EINVAL;
  if (reason > FE_REASON_MAX)
    return FE_ERANGE;
  lock(q);
  int n = (int)q->by_reason[reason];
  unlock(q);
  return n;
}

int fe_dlq_foreach(fe_dlq_t *q, const fe_dlq_filter_t *f, fe_dlq_visit_fn fn,
                   void *user) {
  if (q == NULL || fn == NULL)
    return FE_EINVAL;
  int rc = 0;
  lock(q);
  for (uint32_t i = q->head; i != NIL && rc == 0; i = q->slots[i].next) {
    slot_t *s = &q->slots[i];
    if (s->state != SLOT_LIVE || !matches(s, f))
      continue;
    s->e.user_area = user_of(q, i);
    rc = fn(&s->e, user);
    s->e.user_area = NULL;
  }
  unlock(q);
  return rc;
}

int fe_dlq_get(fe_dlq_t *q, uint64_t id, fe_dlq_entry_t *out, void *user_buf,
               uint32_t user_cap) {
  if (q == NULL || out == NULL || (user_buf == NULL && user_cap != 0))
    return FE_EINVAL;
  lock(q);
  uint32_t i = find_live(q, id);
  if (i == NIL) {
    unlock(q);
    return FE_ENOTFOUND;
  }
  *out = q->slots[i].e;
  if (user_buf != NULL) {
    uint32_t n = out->user_len < user_cap ? out->user_len : user_cap;
    if (n != 0)
      memcpy(user_buf, user_of(q, i), n);
  }
  unlock(q);
  out->user_area = user_buf;
  return 0;
}

/* ------------------------------------------------------------ redrive */

/* Under the lock: ends the redrive of pinned slot i whose republish
 * returned rc, and returns the slot that followed it in the list. */
static uint32_t redrive_finish(fe_dlq_t *q, uint32_t i, int rc) {
  slot_t *s = &q->slots[i];
  uint32_t next = s->next;
  s->pinned = 0;
  if (rc == 0) {
    if (s->state == SLOT_LIVE)
      hide(q, s);
    q->st.redriven++;
    release(q, i);
  } else {
    q->st.redrive_failed++;
    if (s->state == SLOT_HIDDEN) { /* purged meanwhile: now it is */
      q->st.purged++;
      purged(q, s);
      release(q, i);
    }
  }
  return next;
}

/* Pins slot i, drops the lock, republishes, retakes the lock and finishes.
 * Called and returns with the lock held; *next gets the successor. */
static int redrive_slot(fe_dlq_t *q, uint32_t i, fe_dlq_republish_fn republish,
                        void *user, uint32_t *next) {
  slot_t *s = &q->slots[i];
  s->pinned = 1;
  /* Read outside the lock: nobody writes a pinned slot (see the top). */
  const fe_event_t *ev = &s->e.event;
  const void *ua = user_of(q, i);
  uint32_t len = s->e.user_len, count = s->e.redrive_count + 1;
  unlock(q);
  int rc = republish(ev, ua, len, count, user);
  lock(q);
  *next = redrive_finish(q, i, rc);
  return rc;
}

int fe_dlq_redrive(fe_dlq_t *q, uint64_t id, fe_dlq_republish_fn republish,
                   void *user) {
  if (q == NULL || republish == NULL)
    return FE_EINVAL;
  lock(q);
  uint32_t i = find_live(q, id), next;
  int rc;
  if (i == NIL) {
    rc = FE_ENOTFOUND;
  } else if (q->slots[i].pinned) {
    rc = FE_ESTATE;
  } else if (q->slots[i].e.redrive_count >= q->cfg.redrive_limit) {
    q->st.redrive_refused++;
    rc = FE_EREDRIVE;
  } else {
    rc = redrive_slot(q, i, republish, user, &next);
  }
  unlock(q);
  purge_flush(q); /* a purge that landed during the republish */
  return rc;
}

int fe_dlq_redrive_all(fe_dlq_t *q, const fe_dlq_filter_t *f,
                       fe_dlq_republish_fn republish, void *user,
                       uint64_t *done) {
  if (done != NULL)
    *done = 0;
  if (q == NULL || republish == NULL)
    return FE_EINVAL;
  uint64_t n = 0;
  int rc = 0, refused = 0;
  lock(q);
  /* Ids grow along the list: stop past the newest id of the start. */
  uint64_t last = q->tail != NIL ? q->slots[q->tail].e.id : 0;
  uint32_t i = q->head;
  while (i != NIL && q->slots[i].e.id <= last) {
    slot_t *s = &q->slots[i];
    if (s->state != SLOT_LIVE || s->pinned || !matches(s, f)) {
      i = s->next;
      continue;
    }
    if (s->e.redrive_count >= q->cfg.redrive_limit) {
      q->st.redrive_refused++;
      refused = 1;
      i = s->next;
      continue;
    }
    rc = redrive_slot(q, i, republish, user, &i);
    if (rc != 0)
      break;
    n++;
  }
  unlock(q);
  purge_flush(q);
  if (done != NULL)
    *done = n;
  if (rc != 0)
    return rc;
  return refused ? FE_EREDRIVE : 0;
}

/* -------------------------------------------------------------- purge */

int fe_dlq_purge(fe_dlq_t *q, uint64_t id) {
  if (q == NULL)
    return FE_EINVAL;
  lock(q);
  uint32_t i = find_live(q, id);
  if (i != NIL)
    purge_slot(q, i);
  unlock(q);
  purge_flush(q);
  return i == NIL ? FE_ENOTFOUND : 0;
}

int fe_dlq_purge_all(fe_dlq_t *q, const fe_dlq_filter_t *f,
                     uint64_t *removed) {
  if (removed != NULL)
    *removed = 0;
  if (q == NULL)
    return FE_EINVAL;
  uint64_t n = 0;
  lock(q);
  for (uint32_t i = q->head; i != NIL;) {
    uint32_t next = q->slots[i].next; /* before release() relinks i */
    if (q->slots[i].state == SLOT_LIVE && matches(&q->slots[i], f)) {
      purge_slot(q, i);
      n++;
    }
    i = next;
  }
  unlock(q);
  purge_flush(q);
  if (removed != NULL)
    *removed = n;
  return 0;
}

/* -------------------------------------------------------------- stats */

int fe_dlq_stats(fe_dlq_t *q, fe_dlq_stats_t *s) {
  if (q == NULL || s == NULL)
    return FE_EINVAL;
  lock(q);
  snapshot(q, s);
  unlock(q);
  return 0;
}

const char *fe_dlq_kind_name(uint32_t kind) {
  switch (kind) {
  case FE_DLQ_FAIL: return "FAIL";
  case FE_DLQ_RETRIES_EXHAUSTED: return "RETRIES_EXHAUSTED";
  default: return kind >= FE_DLQ_KIND_USER ? "USER" : "UNKNOWN";
  }
}
