/*
 * The bus's exactly-once machinery: the journaller and outcome stages, the
 * intent record, and recovery (replay, idempotency and dead-letter rebuild,
 * in-doubt resolution, re-drive).  See "durability" in bus.h; the record
 * layouts are in jrec.h.
 */
#define _GNU_SOURCE
#include "durable.h"
#include "journal_impl.h"
#include "jrec.h"
#include "sync.h"
#include "verdict.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define RETIRE_EVERY_NS 1000000000ull

/* ------------------------------------------------- recovery's eid map */

/* An event met during replay: its record copy (jrec_event_t + user bytes). */
typedef struct rentry {
  uint64_t eid, lsn;
  int intent;             /* an intent record was seen */
  int sent;               /* in doubt, resolved as sent */
  /* Dead letters: what the outcome said. */
  uint32_t dl_stage, dl_reason;
  jrec_out_dl_t dl;
  uint32_t size;
  jrec_event_t rec;       /* followed by the user bytes */
} rentry_t;

/* Open addressing on eid with linear probing and backward-shift deletion:
 * recovery only (allocation is fine at create). */
typedef struct rmap {
  rentry_t **v;
  size_t cap, n;
} rmap_t;

static size_t rmap_slot(const rmap_t *m, uint64_t eid) {
  return (size_t)((eid * 0x9e3779b97f4a7c15ull) >> 20) & (m->cap - 1);
}

static int rmap_put(rmap_t *m, rentry_t *e) {
  if ((m->n + 1) * 2 > m->cap) {
    rmap_t g = {calloc(m->cap ? m->cap * 2 : 1024, sizeof(rentry_t *)),
                m->cap ? m->cap * 2 : 1024, 0};
    if (g.v == NULL)
      return FE_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
      if (m->v[i] != NULL) {
        size_t k = rmap_slot(&g, m->v[i]->eid);
        while (g.v[k] != NULL)
          k = (k + 1) & (g.cap - 1);
        g.v[k] = m->v[i];
        g.n++;
      }
    free(m->v);
    *m = g;
  }
  size_t k = rmap_slot(m, e->eid);
  while (m->v[k] != NULL) {
    if (m->v[k]->eid == e->eid) { /* a duplicate id: keep the first */
      free(e);
      return 0;
    }
    k = (k + 1) & (m->cap - 1);
  }
  m->v[k] = e;
  m->n++;
  return 0;
}

static rentry_t *rmap_take(rmap_t *m, uint64_t eid) {
  if (m->cap == 0)
    return NULL;
  size_t k = rmap_slot(m, eid);
  while (m->v[k] != NULL && m->v[k]->eid != eid)
    k = (k + 1) & (m->cap - 1);
  rentry_t *e = m->v[k];
  if (e == NULL)
    return NULL;
  m->v[k] = NULL;
  m->n--;
  /* Backward shift: move later members of the cluster into the hole when
   * their home lies at or before it. */
  for (size_t j = (k + 1) & (m->cap - 1); m->v[j] != NULL;
       j = (j + 1) & (m->cap - 1)) {
    size_t h = rmap_slot(m, m->v[j]->eid);
    if (((j - h) & (m->cap - 1)) >= ((j - k) & (m->cap - 1))) {
      m->v[k] = m->v[j];
      m->v[j] = NULL;
      k = j;
    }
  }
  return e;
}

static rentry_t *rmap_get(const rmap_t *m, uint64_t eid) {
  if (m->cap == 0)
    return NULL;
  size_t k = rmap_slot(m, eid);
  while (m->v[k] != NULL && m->v[k]->eid != eid)
    k = (k + 1) & (m->cap - 1);
  return m->v[k];
}

/* Moves the map's entries into a new array sorted by eid. */
static int cmp_entry(const void *a, const void *b) {
  uint64_t x = (*(rentry_t *const *)a)->eid, y = (*(rentry_t *const *)b)->eid;
  return x < y ? -1 : x > y;
}

static rentry_t **rmap_drain_sorted(rmap_t *m, size_t *n) {
  rentry_t **out = malloc((m->n ? m->n : 1) * sizeof *out);
  if (out == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < m->cap; i++)
    if (m->v[i] != NULL)
      out[k++] = m->v[i], m->v[i] = NULL;
  m->n = 0;
  qsort(out, k, sizeof *out, cmp_entry);
  *n = k;
  return out;
}

static void rmap_free(rmap_t *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->v[i]);
  free(m->v);
  m->v = NULL;
  m->cap = m->n = 0;
}

/* --------------------------------------------------------- the state */

struct durable {
  fe_journal_t *j;
  uint32_t user_len;   /* user bytes journaled per event */
  uint32_t entry_size; /* jrec_event_t + user bytes, rounded to 8 */
  /* Journaller-owned (journal worker). */
  uint64_t next_eid;
  uint8_t *ebuf;       /* one FE_JREC_EVENT record of FE_BATCH_CHUNK */
  slot_meta_t *emeta[FE_BATCH_CHUNK];
  /* Outcome-stage-owned (journal worker). */
  uint8_t *obuf;       /* one FE_JREC_OUTCOME record */
  uint8_t *ubuf;       /* recovery: a compact entry's user bytes */
  size_t max_rec;      /* the journal's largest record: a batch's events
                          or outcomes that need more go in several */
  fe_idem_outcome_t outs[FE_BATCH_CHUNK];
  uint64_t last_retire_ns, retire_below;
  /* Set once (release) when the journal cannot be written; read by
   * submitters and the stages (acquire).  Sticky: nothing after it is
   * acknowledged. */
  int failed;
  int dlq_attached; /* fe__dlq_attach succeeded: detach at destroy */
  /* Recovery, create/start thread only. */
  const fe_bus_config_t *cfg;
  rmap_t open, dead;
  rmap_t gone; /* dead letters purged or redriven before their outcome was
                  journaled: the outcome must not put them back */
  rentry_t **pending, **dls;
  size_t n_pending, n_dls;
  fe_bus_recovery_t rep;
  fe_diag_t *diag;
};

/* The largest outcome entry: every optional part present. */
static size_t max_outcome_entry(const durable_t *d) {
  return sizeof(jrec_outcome_t) + sizeof(jrec_out_key_t) +
         sizeof(fe_idem_outcome_t) + sizeof(jrec_out_dl_t) + d->entry_size;
}

/* ----------------------------------------------------- the journaller */

/* The event into a record, without the ring's seq and verdict. */
static void put_event(jrec_event_t *r, const fe_event_t *ev) {
  fe_event_t copy = *ev;
  copy.seq = 0;
  copy.verdict = 0;
  memcpy(r->ev, &copy, sizeof copy);
}

/* The jrec_event_t of ev: the event and the submitter's key. */
static void put_rec(jrec_event_t *r, const fe_event_t *ev, const slot_meta_t *m,
                    int sub) {
  put_event(r, ev);
  int key = sub && (m->sub_flags & META_KEY);
  memset(&r->key, 0, sizeof r->key);
  r->fingerprint = 0;
  if (key) {
    r->key = m->sub_key;
    r->fingerprint = m->sub_fp;
  }
  r->redrive_of = sub ? m->sub_redrive_of : 0;
  r->flags = key ? JREC_EV_KEY : 0;
  r->reserved = 0;
}

/* The words of put_rec()'s jrec_event_t after the event, into tail, for
 * jrec_ev_encode() (a new submission: sub is 1). */
static const uint64_t *tail_of(const slot_meta_t *m, uint64_t *tail) {
  int key = (m->sub_flags & META_KEY) != 0;
  tail[0] = key ? m->sub_key.lo : 0;
  tail[1] = key ? m->sub_key.hi : 0;
  tail[2] = key ? m->sub_fp : 0;
  tail[3] = m->sub_redrive_of;
  tail[4] = key ? JREC_EV_KEY : 0; /* flags, then reserved (0) */
  return tail;
}

/* A dead letter's fixed-size copy in an outcome entry: put_rec(), then
 * d->user_len bytes of user area, zero-padded to d->entry_size. */
static void put_entry(const durable_t *d, jrec_event_t *r, const fe_event_t *ev,
                      const slot_meta_t *m, int sub) {
  put_rec(r, ev, m, sub);
  memcpy(r + 1, fe_event_user((fe_event_t *)ev), d->user_len);
  memset((uint8_t *)(r + 1) + d->user_len, 0,
         d->entry_size - sizeof *r - d->user_len);
}

static void get_event(const jrec_event_t *r, fe_event_t *ev) {
  memcpy(ev, r->ev, sizeof *ev);
}

static void journal_failed(durable_t *d, fe_stage_ctx_t *ctx,
                           fe_event_t *const *evs, uint32_t n) {
  __atomic_store_n(&d->failed, 1, __ATOMIC_RELEASE); /* F1 */
  ctx->text = "journal write failed";
  for (uint32_t i = 0; i < n; i++)
    fe_batch_fail(ctx, evs[i], FE_REASON_JOURNAL);
}

/* Appends the FE_JREC_EVENT record in d->ebuf (entries up to end) for the
 * events of d->emeta[first..count), whose eids start at d->next_eid, and
 * gives them its lsn.  Returns 0 or the journal's error. */
static int append_events(durable_t *d, uint32_t first, uint32_t count,
                         const uint8_t *end) {
  jrec_events_t *h = (jrec_events_t *)d->ebuf;
  h->version = FE_JREC_BUS_VERSION;
  h->count = count - first;
  h->entry_size = 0; /* compact entries */
  h->user_len = d->user_len;
  h->first_eid = d->next_eid;
  uint64_t lsn = 0;
  int r = fe_journal_append(d->j, FE_JREC_EVENT, d->ebuf,
                            (uint32_t)(end - d->ebuf), &lsn);
  if (r != 0)
    return r;
  d->next_eid += count - first;
  for (uint32_t i = first; i < count; i++)
    d->emeta[i]->lsn = lsn;
  return 0;
}

/* The journaller reads every byte of each event (the stages before it
 * usually touch one line), most of them lines the publisher's core has
 * just written: it asks for them this many events ahead. */
#define JPREFETCH 8

void fe__journal_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *arg) {
  fe_durable_env_t *env = arg;
  durable_t *d = env->dur;
  if (FE_UNLIKELY(__atomic_load_n(&d->failed, __ATOMIC_ACQUIRE))) { /* F1 */
    journal_failed(d, ctx, evs, n);
    return;
  }
  uint8_t *p = d->ebuf + sizeof(jrec_events_t);
  uint32_t count = 0, first = 0; /* emeta[first..count): this record's */
  uint64_t tail[JREC_EV_TAIL];
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev = evs[i];
    if (i + JPREFETCH < n) { /* the publisher's lines, a few events ahead,
                                and the slot's meta line, to be written */
      const fe_event_t *f = evs[i + JPREFETCH];
      for (size_t off = 0; off < sizeof(fe_event_t); off += 64)
        __builtin_prefetch((const char *)f + off, 0, 3);
      __builtin_prefetch((const char *)f + sizeof(fe_event_t) - 1, 0, 3);
      __builtin_prefetch(fe__ring_meta(env->ring, ev->seq + JPREFETCH), 1, 3);
    }
    slot_meta_t *m = fe__ring_meta(env->ring, ev->seq);
    if (m->sub_seq != ev->seq) /* a raw publish: no submitter data */
      fe__meta_submit(m, ev->seq, NULL, 0);
    if (m->sub_flags & META_RECOVERED)
      continue; /* journaled before the crash; eid and lsn came with it */
    if ((size_t)(p - d->ebuf) + JREC_EV_MAX(d->user_len) > d->max_rec) {
      /* A small journal buffer or segment: this record is as big as the
       * journal takes; the rest of the batch goes in the next. */
      if (append_events(d, first, count, p) != 0) {
        journal_failed(d, ctx, evs, n);
        return;
      }
      first = count;
      p = d->ebuf + sizeof(jrec_events_t);
    }
    m->eid = d->next_eid + (count - first);
    d->emeta[count++] = m;
    p += jrec_ev_encode(p, ev, tail_of(m, tail), fe_event_user(ev),
                        d->user_len);
  }
  if (count != first && append_events(d, first, count, p) != 0) {
    journal_failed(d, ctx, evs, n);
    return;
  }
  /* The stage's progress is released after the batch (C2): the group must
   * be in the kernel (and fsynced, per policy) before anything downstream
   * can act on it. */
  if (ctx->end_of_batch && fe_journal_commit(d->j) != 0)
    journal_failed(d, ctx, evs, n);
}

/* --------------------------------------------------------- the outcome */

/* One outcome entry at p (see jrec.h): the header, then only the parts
 * that carry something.  Returns its size. */
static uint32_t put_outcome(const durable_t *d, uint8_t *p,
                            const fe_event_t *ev, const slot_meta_t *m,
                            int sub, uint32_t stage, const fe_idem_outcome_t *o,
                            uint64_t now_wall) {
  jrec_outcome_t *r = (jrec_outcome_t *)p;
  uint8_t *q = p + sizeof *r;
  *r = (jrec_outcome_t){.eid = m->eid,
                        .status = o->status,
                        .reason = o->reason,
                        .stage = stage};
  if (sub && (m->sub_flags & META_KEY)) {
    r->flags |= JREC_OUT_KEY;
    jrec_out_key_t k = {m->sub_key, m->sub_fp, now_wall};
    memcpy(q, &k, sizeof k);
    q += sizeof k;
  }
  fe_idem_outcome_t plain;
  memset(&plain, 0, sizeof plain);
  plain.status = o->status;
  plain.reason = o->reason;
  plain.ref = m->eid;
  if (memcmp(o, &plain, sizeof plain) != 0) {
    r->flags |= JREC_OUT_DETAIL;
    memcpy(q, o, sizeof *o);
    q += sizeof *o;
  }
  if (o->status == FE_IDEM_DEAD_LETTERED) {
    r->flags |= JREC_OUT_DL;
    jrec_out_dl_t dl = {.wall_ns = now_wall,
                        .kind = m->dl_kind,
                        .attempts = m->dl_attempts,
                        .redrives = m->dl_redrives};
    memcpy(dl.text, m->dl_text, sizeof dl.text);
    memcpy(q, &dl, sizeof dl);
    q += sizeof dl;
    jrec_event_t *copy = (jrec_event_t *)q;
    put_entry(d, copy, ev, m, sub);
    copy->redrive_of = 0; /* only event records carry it */
    q += d->entry_size;
  }
  r->entry_size = (uint32_t)(q - p);
  return r->entry_size;
}

_Static_assert(FE_BATCH_CHUNK <= JREC_RUN_MAX,
               "a run (one stage batch at most) is never refused");

/* Adds a plain completion of eid to the outcome entries ending at p: one
 * more event for the run that is the last entry when eid follows it, else
 * a new run at p.  Returns the new end. */
static uint8_t *run_add(jrec_out_run_t **run, uint8_t *p, uint32_t *entries,
                        uint64_t eid) {
  jrec_out_run_t *r = *run;
  if (r != NULL && r->eid + r->count == eid) {
    r->count++;
    return p;
  }
  r = (jrec_out_run_t *)p;
  *r = (jrec_out_run_t){.eid = eid,
                        .entry_size = sizeof *r,
                        .flags = JREC_OUT_RUN,
                        .count = 1};
  *run = r;
  ++*entries;
  return p + sizeof *r;
}

/* Appends the FE_JREC_OUTCOME record in d->obuf: `entries` entries, up to
 * end.  Returns 0 or the journal's error. */
static int append_outcomes(durable_t *d, uint32_t entries, const uint8_t *end) {
  jrec_outcomes_t *h = (jrec_outcomes_t *)d->obuf;
  h->version = FE_JREC_OUTCOME_VERSION;
  h->count = entries;
  h->user_len = d->user_len;
  h->reserved = 0;
  return fe_journal_append(d->j, FE_JREC_OUTCOME, d->obuf,
                           (uint32_t)(end - d->obuf), NULL);
}

static uint32_t status_of(uint64_t v, uint32_t *stage, uint32_t *reason) {
  verdict_info_t d = fe__verdict_decode(v);
  *stage = d.kind == VERDICT_NONE ? UINT32_MAX : d.stage;
  *reason = d.reason;
  if (d.kind == VERDICT_NONE)
    return FE_IDEM_COMPLETED;
  return d.kind == VERDICT_DEAD_LETTERED ? FE_IDEM_DEAD_LETTERED
                                         : FE_IDEM_REJECTED;
}

void fe__outcome_stage(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *arg) {
  (void)ctx;
  fe_durable_env_t *env = arg;
  durable_t *d = env->dur;
  uint8_t *p = d != NULL ? d->obuf + sizeof(jrec_outcomes_t) : NULL;
  uint64_t now_wall = d != NULL ? fe_clock_realtime_ns() : 0;
  jrec_out_run_t *run = NULL; /* the last entry, when it is a run */
  uint32_t entries = 0;
  int wfail = 0; /* a record this call appended was refused */
  for (uint32_t i = 0; i < n; i++) {
    fe_event_t *ev = evs[i];
    if (d != NULL &&
        (size_t)(p - d->obuf) + max_outcome_entry(d) > d->max_rec) {
      /* As big as the journal takes: the rest go in the next record. */
      wfail |= append_outcomes(d, entries, p) != 0;
      p = d->obuf + sizeof(jrec_outcomes_t);
      entries = 0;
      run = NULL;
    }
    if (env->idem != NULL && i + JPREFETCH < n) {
      /* The claim this stage completes a few events on: its control word
       * and entry were last written by the submitter, far back. */
      const slot_meta_t *f = fe__ring_meta(env->ring, evs[i + JPREFETCH]->seq);
      if (f->sub_token != 0)
        fe__idem_prefetch_token(env->idem, f->sub_token);
    }
    slot_meta_t *m = fe__ring_meta(env->ring, ev->seq);
    int sub = m->sub_seq == ev->seq;
    uint64_t v = fe__load_relaxed(&ev->verdict);
    if (d != NULL && v == 0 && env->on_outcome == NULL &&
        !(sub && ((m->sub_flags & META_KEY) || m->sub_token != 0))) {
      /* Completed, nothing to add, no key to finish: the common case. */
      d->retire_below = m->lsn;
      p = run_add(&run, p, &entries, m->eid);
      continue;
    }
    uint32_t stage, reason;
    fe_idem_outcome_t o;
    memset(&o, 0, sizeof o);
    o.status = (int32_t)status_of(v, &stage, &reason);
    o.reason = reason;
    /* Never 0 (0 reads as unset): the journal event id counts from 1, the
     * ring sequence from 0. */
    o.ref = d != NULL ? m->eid : ev->seq + 1;
    if (env->on_outcome != NULL)
      env->on_outcome(ev, &o, env->outcome_user);
    if (d == NULL) {
      if (sub && m->sub_token != 0)
        fe_idem_complete(env->idem, m->sub_token, &o);
      continue;
    }
    d->outs[i] = o;
    d->retire_below = m->lsn;
    uint32_t len = put_outcome(d, p, ev, m, sub, stage, &o, now_wall);
    const jrec_outcome_t *e = (const jrec_outcome_t *)p;
    if (e->flags != 0 || e->status != FE_IDEM_COMPLETED || e->reason != 0 ||
        e->stage != UINT32_MAX) {
      p += len;
      entries++;
      run = NULL;
    } else { /* plain after all (the host's hook set nothing) */
      p = run_add(&run, p, &entries, m->eid);
    }
  }
  if (d == NULL)
    return;
  /* Journal the outcomes first, then tell the idempotency table: a
   * duplicate must never get an outcome a crash could take back. */
  int failed = wfail || __atomic_load_n(&d->failed, __ATOMIC_ACQUIRE); /* F1 */
  if (!failed) {
    if ((entries != 0 && append_outcomes(d, entries, p) != 0) ||
        fe_journal_commit(d->j) != 0) {
      __atomic_store_n(&d->failed, 1, __ATOMIC_RELEASE); /* F1 */
      failed = 1;
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    slot_meta_t *m = fe__ring_meta(env->ring, evs[i]->seq);
    if (m->sub_seq == evs[i]->seq && m->sub_token != 0 && env->idem != NULL) {
      if (failed) /* not durable: leave the key to a retry */
        fe_idem_abandon(env->idem, m->sub_token);
      else
        fe_idem_complete(env->idem, m->sub_token, &d->outs[i]);
    }
  }
  /* Segments whose events all finished can go once they are older than
   * the retention; the journal checks the age.  Once a second. */
  uint64_t now = fe_clock_now_ns();
  if (!failed && now - d->last_retire_ns >= RETIRE_EVERY_NS) {
    d->last_retire_ns = now;
    /* A refused removal (FE_EIO) leaves the journal writable and the
     * segments on disk: the journal counts it (retire_failures, with its
     * errno), the host reads that through fe_bus_journal(), and this stage
     * tries again a second later.  Nothing here waits on the removal. */
    (void)fe_journal_retire(d->j, d->retire_below, NULL);
  }
}

/* ------------------------------------------------------------- intent */

int fe__durable_intent(fe_durable_env_t *env, uint32_t stage,
                       const fe_event_t *ev) {
  durable_t *d = env->dur;
  if (d == NULL)
    return 0;
  if (stage < 64 && (env->parallel_stages >> stage) & 1)
    return FE_ESTATE;
  /* The journaller finished ev before this stage saw it (C2/C1): meta's
   * eid and the submitter's fields are visible. */
  const slot_meta_t *m = fe__ring_meta(env->ring, ev->seq);
  if (m->sub_seq == ev->seq && (m->sub_flags & META_SENT))
    return FE_EDUPLICATE;
  if (__atomic_load_n(&d->failed, __ATOMIC_ACQUIRE)) /* F1 */
    return FE_EIO;
  jrec_intent_t r = {m->eid};
  if (fe_journal_append(d->j, FE_JREC_INTENT, &r, sizeof r, NULL) != 0 ||
      fe_journal_commit(d->j) != 0)
    return FE_EIO;
  return 0;
}

/* ----------------------------------------------------------- recovery */

/* An rentry holding rec and user_len bytes of user area from user.  The
 * journal may have been written with another user_len: what both have is
 * copied, the rest zeroed. */
static rentry_t *new_rentry(const durable_t *d, uint64_t eid, uint64_t lsn,
                            const jrec_event_t *rec, const uint8_t *user,
                            uint32_t user_len) {
  uint32_t size = sizeof(rentry_t) - sizeof(jrec_event_t) + d->entry_size;
  rentry_t *e = calloc(1, size);
  if (e == NULL)
    return NULL;
  e->eid = eid;
  e->lsn = lsn;
  e->size = size;
  memcpy(&e->rec, rec, sizeof *rec);
  memcpy(&e->rec + 1, user, user_len < d->user_len ? user_len : d->user_len);
  return e;
}

static int bad_record(durable_t *d, const fe_journal_record_t *rec,
                      const char *what) {
  return fe__diag(d->diag, FE_ECORRUPT, "journal record lsn %llu (%s, %u "
                  "bytes): %s", (unsigned long long)rec->lsn,
                  fe_journal_type_name(rec->type), rec->len, what);
}

/* Dead letter eid left the queue (redriven or purged).  Its outcome is
 * normally older; when a purge or redrive beat the outcome stage to the
 * journal, remember it so that the outcome does not bring it back. */
static int left_dlq(durable_t *d, uint64_t eid) {
  rentry_t *e = rmap_take(&d->dead, eid);
  if (e != NULL) {
    free(e);
    return 0;
  }
  if (rmap_get(&d->gone, eid) != NULL)
    return 0;
  e = calloc(1, sizeof *e);
  if (e == NULL)
    return FE_ENOMEM;
  e->eid = eid;
  if (rmap_put(&d->gone, e) != 0) {
    free(e);
    return FE_ENOMEM;
  }
  return 0;
}

static int replay_events(durable_t *d, const fe_journal_record_t *rec) {
  const jrec_events_t *h = rec->data;
  if (rec->len < sizeof *h)
    return bad_record(d, rec, "shorter than its header");
  if (h->version != FE_JREC_BUS_VERSION)
    return fe__diag(d->diag, FE_EVERSION, "journal record lsn %llu: event "
                    "format version %u, this library reads version %d",
                    (unsigned long long)rec->lsn, h->version,
                    FE_JREC_BUS_VERSION);
  if (h->entry_size != 0 || h->user_len > UINT16_MAX)
    return bad_record(d, rec, "entry size and count do not match its length");
  const uint8_t *p = (const uint8_t *)(h + 1), *end = p + (rec->len - sizeof *h);
  for (uint32_t i = 0; i < h->count; i++) {
    jrec_event_t r;
    const uint8_t *user = d->ubuf;
    uint32_t len = jrec_ev_decode(p, (size_t)(end - p), h->user_len, &r,
                                  d->ubuf);
    if (len == 0)
      return bad_record(d, rec, "an event entry is malformed or overruns "
                        "the record");
    p += len;
    uint64_t eid = h->first_eid + i;
    if (r.redrive_of != 0 && left_dlq(d, r.redrive_of) != 0)
      return fe__diag(d->diag, FE_ENOMEM, "recovery: out of memory");
    rentry_t *e = new_rentry(d, eid, rec->lsn, &r, user, h->user_len);
    if (e == NULL || rmap_put(&d->open, e) != 0)
      return fe__diag(d->diag, FE_ENOMEM, "recovery: out of memory");
    if (eid >= d->next_eid)
      d->next_eid = eid + 1;
    d->rep.events++;
  }
  if (p != end)
    return bad_record(d, rec, "bytes follow its last event entry");
  return 0;
}

static int replay_outcomes(fe_durable_env_t *env, durable_t *d,
                           const fe_journal_record_t *rec) {
  const jrec_outcomes_t *h = rec->data;
  if (rec->len < sizeof *h)
    return bad_record(d, rec, "shorter than its header");
  if (h->version != FE_JREC_OUTCOME_VERSION)
    return fe__diag(d->diag, FE_EVERSION, "journal record lsn %llu: outcome "
                    "format version %u, this library reads version %d",
                    (unsigned long long)rec->lsn, h->version,
                    FE_JREC_OUTCOME_VERSION);
  const uint8_t *p = (const uint8_t *)(h + 1), *end = p + (rec->len - sizeof *h);
  for (uint32_t i = 0; i < h->count; i++) {
    jrec_outcome_t r;
    uint32_t events = 0;
    if ((size_t)(end - p) < 16)
      return bad_record(d, rec, "an outcome entry overruns the record");
    if (jrec_out_read(p, (size_t)(end - p), &r, &events) == 0)
      return bad_record(d, rec, "an outcome entry's size or flags are wrong");
    if (r.flags == JREC_OUT_RUN) { /* completed, nothing else to restore */
      for (uint32_t k = 0; k < events; k++) {
        rentry_t *ev = rmap_take(&d->open, r.eid + k);
        d->rep.finished += ev != NULL;
        free(ev);
      }
      p += r.entry_size;
      continue;
    }
    const uint8_t *q = p + sizeof r;
    jrec_out_key_t k;
    if (r.flags & JREC_OUT_KEY) {
      memcpy(&k, q, sizeof k);
      q += sizeof k;
    }
    fe_idem_outcome_t o;
    if (r.flags & JREC_OUT_DETAIL) {
      memcpy(&o, q, sizeof o);
      q += sizeof o;
    } else {
      memset(&o, 0, sizeof o);
      o.status = r.status;
      o.reason = r.reason;
      o.ref = r.eid;
    }
    rentry_t *ev = rmap_take(&d->open, r.eid);
    if (ev != NULL)
      d->rep.finished++;
    free(ev);
    if ((r.flags & JREC_OUT_KEY) && env->idem != NULL) {
      int rc = fe_idem_restore(env->idem, &k.key, k.fingerprint, &o,
                               k.wall_ns);
      if (rc == 0)
        d->rep.idem_restored++;
      else if (rc == FE_ETABLEFULL)
        return fe__diag(d->diag, rc, "recovery: the idempotency table is too "
                        "small for the journal's %llu+ finished orders",
                        (unsigned long long)d->rep.idem_restored);
    }
    rentry_t *gone = (r.flags & JREC_OUT_DL) ? rmap_take(&d->gone, r.eid)
                                             : NULL;
    if (gone != NULL) {
      free(gone);
    } else if (r.flags & JREC_OUT_DL) {
      jrec_out_dl_t dl;
      memcpy(&dl, q, sizeof dl);
      q += sizeof dl;
      jrec_event_t copy;
      memcpy(&copy, q, sizeof copy);
      uint32_t room = r.entry_size - (uint32_t)(q - p) - (uint32_t)sizeof copy;
      rentry_t *e = new_rentry(d, r.eid, rec->lsn, &copy, q + sizeof copy,
                               h->user_len < room ? h->user_len : room);
      if (e == NULL)
        return fe__diag(d->diag, FE_ENOMEM, "recovery: out of memory");
      e->dl_stage = r.stage;
      e->dl_reason = r.reason;
      e->dl = dl;
      if (rmap_put(&d->dead, e) != 0)
        return fe__diag(d->diag, FE_ENOMEM, "recovery: out of memory");
    }
    p += r.entry_size;
  }
  return 0;
}

static int replay(const fe_journal_record_t *rec, void *arg) {
  fe_durable_env_t *env = arg;
  durable_t *d = env->dur;
  d->rep.records++;
  switch (rec->type) {
  case FE_JREC_EVENT:
    return replay_events(d, rec);
  case FE_JREC_OUTCOME:
    return replay_outcomes(env, d, rec);
  case FE_JREC_DEAD_LETTER: {
    jrec_dlq_t r;
    if (rec->len != sizeof r)
      return bad_record(d, rec, "a dead-letter record is 16 bytes");
    memcpy(&r, rec->data, sizeof r);
    if (r.op != JREC_DLQ_PURGED || r.eid == 0)
      return bad_record(d, rec, "unknown dead-letter operation");
    if (left_dlq(d, r.eid) != 0)
      return fe__diag(d->diag, FE_ENOMEM, "recovery: out of memory");
    d->rep.dlq_purged++;
    return 0;
  }
  case FE_JREC_INTENT: {
    if (rec->len != sizeof(jrec_intent_t))
      return bad_record(d, rec, "an intent record is 8 bytes");
    const jrec_intent_t *r = rec->data;
    rentry_t *e = rmap_get(&d->open, r->eid);
    if (e != NULL)
      e->intent = 1;
    return 0;
  }
  default: /* FE_JREC_SAGA, the other library types, the host's */
    if (d->cfg->on_replay != NULL)
      return d->cfg->on_replay(rec, d->cfg->replay_user);
    return 0;
  }
}

/* ------------------------------------------------------ DLQ purges */

/* Under the DLQ's lock: a dead letter of this bus was purged; journal it
 * so that recovery does not put it back.  If the journal cannot take it
 * (failed), the purge stays in memory only: after a restart the entry is
 * back, which loses nothing. */
static void dlq_purged(const fe_event_t *ev, void *arg) {
  fe_durable_env_t *env = arg;
  /* J1: the journal, once fe__durable_open has it (the queue is attached
   * before the journal is read, so that a refused create changes nothing);
   * pairs with J0.  A purge before then is not journaled: the entry comes
   * back after a restart, which loses nothing. */
  fe_journal_t *j = __atomic_load_n(&env->dur->j, __ATOMIC_ACQUIRE);
  if (j == NULL || !(ev->flags & FE_EVF_DLQ_EID) || ev->seq == 0)
    return; /* not one of ours, or failed before it was journaled */
  jrec_dlq_t r = {JREC_DLQ_PURGED, 0, ev->seq};
  if (fe_journal_append(j, FE_JREC_DEAD_LETTER, &r, sizeof r, NULL) != 0)
    __atomic_store_n(&env->dur->failed, 1, __ATOMIC_RELEASE); /* F1 */
}

/* After the purging call dropped the DLQ's lock: write the records out
 * (and fsync them under FE_FSYNC_GROUP), so the purge is durable when
 * fe_dlq_purge returns. */
static void dlq_flush(void *arg) {
  fe_durable_env_t *env = arg;
  fe_journal_t *j = __atomic_load_n(&env->dur->j, __ATOMIC_ACQUIRE); /* J1 */
  /* A purge that cannot be made durable breaks the journal's promise:
   * the journal is marked failed (sticky), so submits answer FE_EIO and
   * the host learns of it, rather than the purge silently coming back. */
  if (j != NULL && fe_journal_commit(j) != 0)
    __atomic_store_n(&env->dur->failed, 1, __ATOMIC_RELEASE); /* F1 */
}

void fe__durable_detach(fe_durable_env_t *env) {
  if (env->dur != NULL && env->dur->dlq_attached)
    fe__dlq_attach(env->dlq, NULL, NULL, NULL);
}

int fe__durable_open(fe_durable_env_t *env, const fe_bus_config_t *cfg,
                     fe_diag_t *diag) {
  durable_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return fe__diag(diag, FE_ENOMEM, "cannot allocate the journal state");
  env->dur = d;
  d->cfg = cfg;
  d->next_eid = 1;
  uint32_t room = fe__ring_user_size(env->ring);
  d->user_len = cfg->journal_user_bytes < room ? cfg->journal_user_bytes : room;
  d->entry_size = (uint32_t)((sizeof(jrec_event_t) + d->user_len + 7) / 8 * 8);
  d->ebuf = malloc(sizeof(jrec_events_t) +
                   (size_t)FE_BATCH_CHUNK * JREC_EV_MAX(d->user_len) +
                   JREC_EV_SLACK);
  d->ubuf = malloc(UINT16_MAX); /* the most a record's user_len may say */
  d->obuf = malloc(sizeof(jrec_outcomes_t) + (size_t)FE_BATCH_CHUNK *
                   max_outcome_entry(d));
  if (d->ebuf == NULL || d->obuf == NULL || d->ubuf == NULL)
    return fe__diag(diag, FE_ENOMEM, "cannot allocate the journal buffers");
  /* A batch's records are split to fit the journal, but one event's or
   * outcome's entry must fit a record: refused here, before recovery
   * touches the idempotency table or the queue. */
  int rc = fe_journal_config_check(cfg->journal, diag);
  if (rc != 0)
    return rc;
  d->max_rec = fe__jmax_len(cfg->journal);
  size_t need_ev = sizeof(jrec_events_t) + JREC_EV_MAX(d->user_len);
  size_t need_out = sizeof(jrec_outcomes_t) + max_outcome_entry(d);
  size_t need = need_ev > need_out ? need_ev : need_out;
  if (d->max_rec < need)
    return fe__diag(diag, FE_ERANGE, "journal: records of at most %zu bytes "
                    "(buffer_bytes %u, segment_bytes %llu) cannot hold one "
                    "event's entry with %u journaled user bytes (%zu bytes "
                    "needed)", d->max_rec, cfg->journal->buffer_bytes,
                    (unsigned long long)cfg->journal->segment_bytes,
                    d->user_len, need);
  fe_journal_report_t jr;
  memset(&jr, 0, sizeof jr);
  /* Recovery's own messages (what is wrong with a record) go to rd, the
   * journal's (a file, a frame, a host callback's code) to diag; the more
   * specific one wins. */
  /* The queue first: a queue another journaled bus uses is refused before
   * replay restores anything into the idempotency table or calls the
   * host's hooks. */
  if (env->dlq != NULL) {
    if (fe__dlq_attach(env->dlq, dlq_purged, dlq_flush, env) != 0)
      return fe__diag(diag, FE_ESTATE, "the dead-letter queue is already "
                      "used by another bus with a journal");
    d->dlq_attached = 1;
  }
  fe_diag_t rd = {0, ""};
  d->diag = &rd;
  fe_journal_t *j = NULL;
  int r = fe_journal_open(cfg->journal, replay, env, &j, &jr, diag);
  d->diag = NULL;
  if (r != 0) {
    if (rd.code == r && diag != NULL)
      *diag = rd;
    return r;
  }
  __atomic_store_n(&d->j, j, __ATOMIC_RELEASE); /* J0, pairs with J1 */
  d->rep.truncated_bytes = jr.truncated ? jr.torn_bytes : 0;
  fe__jrecovery_tail(&d->rep, &jr);
  d->pending = rmap_drain_sorted(&d->open, &d->n_pending);
  d->dls = rmap_drain_sorted(&d->dead, &d->n_dls);
  if (d->pending == NULL || d->dls == NULL)
    return fe__diag(diag, FE_ENOMEM, "recovery: out of memory");
  d->rep.redriven = d->n_pending;
  for (size_t i = 0; i < d->n_pending; i++) {
    rentry_t *e = d->pending[i];
    if (!e->intent)
      continue;
    int sent = 1;
    if (cfg->in_doubt != NULL) {
      fe_event_t ev;
      get_event(&e->rec, &ev);
      sent = cfg->in_doubt(&ev, cfg->in_doubt_user);
      if (sent < 0)
        return fe__diag(diag, sent, "recovery: the in-doubt hook failed for "
                        "journal event %llu (client order id \"%.32s\")",
                        (unsigned long long)e->eid,
                        ev.order.client_order_id);
    }
    e->sent = sent != 0;
    if (e->sent)
      d->rep.in_doubt_sent++;
    else
      d->rep.in_doubt_unsent++;
  }
  return 0;
}

/* The dead letters recovery found go back into the DLQ. */
int fe__dlq_put_dead(fe_dlq_t *dlq, const fe_event_t *ev, const void *user,
                     uint32_t user_len, const fe_dead_letter_t *dl,
                     uint32_t kind, uint64_t fallback_ns,
                     uint64_t timeout_ns) {
  fe_dlq_put_t in = {
      .event = ev,
      .user_area = user,
      .user_len = user_len,
      .stage = dl->stage,
      .kind = kind,
      .reason = dl->reason <= FE_REASON_MAX ? dl->reason : 0,
      .text = dl->text,
      .attempts = dl->attempts,
      .redrive_count = dl->redrives,
      .first_seen_ns = ev->order.recv_ts_ns ? ev->order.recv_ts_ns
                                            : fallback_ns,
      .key = ev->order.client_order_id,
      .key_len = (uint32_t)strnlen(ev->order.client_order_id,
                                   FE_CLORDID_MAX)};
  return fe_dlq_put(dlq, &in, timeout_ns, NULL);
}

static void restore_dead_letters(fe_durable_env_t *env, durable_t *d) {
  for (size_t i = 0; i < d->n_dls; i++) {
    rentry_t *e = d->dls[i];
    if (env->dlq == NULL)
      break;
    fe_event_t ev;
    get_event(&e->rec, &ev);
    ev.seq = e->eid; /* a dead letter's copy carries its eid (redrive) */
    ev.flags |= FE_EVF_DLQ_EID;
    char text[JREC_DL_TEXT + 1];
    memcpy(text, e->dl.text, JREC_DL_TEXT);
    text[JREC_DL_TEXT] = '\0';
    fe_dead_letter_t dl = {.stage = e->dl_stage,
                           .reason = e->dl_reason,
                           .attempts = e->dl.attempts,
                           .redrives = e->dl.redrives,
                           .text = text};
    /* A full queue (or its REJECT policy) refuses: the entry's outcome
     * stays journaled as dead-lettered, but it is no longer in the queue
     * to be redriven.  Counted, so the host can see it. */
    if (fe__dlq_put_dead(env->dlq, &ev, &e->rec + 1, d->user_len, &dl,
                         e->dl.kind, e->dl.wall_ns, 0) == 0)
      d->rep.dlq_restored++;
    else
      d->rep.dlq_refused++;
  }
}

/* Publishes one recovered event, polling the workers itself in host-driven
 * mode while the ring is full. */
static int redrive_one(fe_durable_env_t *env, durable_t *d, rentry_t *e,
                       void (*poll)(void *), void *arg) {
  slot_meta_t sub = {.sub_flags = META_RECOVERED | (e->sent ? META_SENT : 0)};
  if (e->rec.flags & JREC_EV_KEY) {
    sub.sub_key = e->rec.key;
    sub.sub_fp = e->rec.fingerprint;
    sub.sub_flags |= META_KEY;
    fe_idem_claim_t c;
    /* The order's key, taken back (a redrive in flight at the crash takes
     * it back from the dead letter's restored outcome, as it did before
     * the crash).  A table with no room for it refuses the re-drive: the
     * order must not run with its duplicate protection silently gone.  It
     * stays unfinished in the journal for a restart with a larger table. */
    int rc = env->idem != NULL
                 ? fe_idem_reopen(env->idem, &sub.sub_key, sub.sub_fp, &c)
                 : FE_EINVAL;
    if (rc == FE_ETABLEFULL)
      return rc;
    if (rc == 0)
      sub.sub_token = c.token;
  }
  uint64_t s;
  int r;
  for (;;) {
    r = fe__ring_claim_wait(env->ring, 1, &s,
                            env->host_driven ? 0 : FE_WAIT_FOREVER);
    if (r != FE_ETIMEDOUT && r != FE_EFULL)
      break;
    poll(arg);
  }
  if (r != 0) {
    if (sub.sub_token != 0)
      fe_idem_abandon(env->idem, sub.sub_token);
    return r;
  }
  fe_event_t *ev = fe__ring_slot(env->ring, s), src;
  get_event(&e->rec, &src);
  ev->type = src.type;
  ev->order = src.order;
  ev->trace_id = src.trace_id;
  ev->trace = src.trace;
  ev->flags = src.flags;
  memcpy(fe_event_user(ev), &e->rec + 1, d->user_len); /* <= room: open */
  slot_meta_t *m = fe__ring_meta(env->ring, s);
  fe__meta_submit(m, s, &sub, 0);
  m->eid = e->eid;
  m->lsn = e->lsn;
  fe__ring_publish(env->ring, s, 1); /* releases the slot and meta (P1) */
  return 0;
}

int fe__durable_start(fe_durable_env_t *env, void (*poll)(void *arg),
                      void *arg, fe_diag_t *diag) {
  durable_t *d = env->dur;
  if (d == NULL)
    return 0;
  restore_dead_letters(env, d);
  for (size_t i = 0; i < d->n_dls; i++)
    free(d->dls[i]);
  d->n_dls = 0;
  for (size_t i = 0; i < d->n_pending; i++) {
    int r = redrive_one(env, d, d->pending[i], poll, arg);
    if (r != 0) {
      fe_event_t ev;
      get_event(&d->pending[i]->rec, &ev);
      return fe__diag(diag, r, "recovery: re-driving journal event %llu "
                      "(client order id \"%.32s\"): %s%s",
                      (unsigned long long)d->pending[i]->eid,
                      ev.order.client_order_id, fe_strerror(r),
                      r == FE_ETABLEFULL ? ": the idempotency table has no room "
                                      "for its key" : "");
    }
    free(d->pending[i]);
    d->pending[i] = NULL;
  }
  d->n_pending = 0;
  return 0;
}

void fe__durable_free(durable_t *d) {
  if (d == NULL)
    return;
  fe_journal_close(d->j);
  rmap_free(&d->open);
  rmap_free(&d->dead);
  rmap_free(&d->gone);
  for (size_t i = 0; i < d->n_pending; i++)
    free(d->pending[i]);
  for (size_t i = 0; i < d->n_dls; i++)
    free(d->dls[i]);
  free(d->pending);
  free(d->dls);
  free(d->ebuf);
  free(d->obuf);
  free(d->ubuf);
  free(d);
}

int fe__durable_failed(const fe_durable_env_t *env) {
  return env->dur != NULL &&
         __atomic_load_n(&env->dur->failed, __ATOMIC_ACQUIRE); /* F1 */
}

const fe_bus_recovery_t *fe__durable_report(const durable_t *d) {
  return &d->rep;
}

fe_journal_t *fe__durable_journal(const durable_t *d) { return d->j; }
