/* The saga coordinator on an fe_journal: see "Journal" in
 * include/finevent/saga.h.
 *
 * Every record fe__saga_log() builds is appended as FE_JREC_SAGA; the
 * pass commits what it appended (and every SG_THREAD_BATCH invocations
 * within a long pass), so a crash loses at most the records of one pass.
 * A pin keeps retire from dropping what replay needs: per live saga the
 * newest record with its context (rec_lsn[], lsn order means everything
 * after it, so its newest record too), and the newest saga record overall
 * (salt, gen_hw).  Every record that minimum will ever need is at or above
 * an old value of it: a saga's rec_lsn only grows while it lives, a new
 * saga's START is appended after the scan that computed the old value
 * missed it (see fe__saga_journal_start), an ended saga drops out.  So an
 * old pin is always a safe (lower) bound and recomputing it - one scan of
 * the rec_lsn array - once a second is enough.  Everything here runs on
 * the coordinator's thread (or before open, on the replaying one), but
 * fe__saga_journal_start, which runs on fe_saga_start()'s caller.
 */
#include "saga_impl.h"

int fe_saga_use_journal(fe_saga_coord_t *c, fe_journal_t *j, fe_diag_t *d) {
  if (c == NULL || j == NULL)
    return fe__diag(d, FE_EINVAL, "saga: %s is NULL",
                    c == NULL ? "coordinator" : "journal");
  if (c->cfg.log != NULL)
    return fe__diag(d, FE_EINVAL, "saga: cfg.log is set: records go either "
                    "to the log hook or to a journal, not both");
  if (c->opened || fe__load_relaxed(&c->open))
    return fe__diag(d, FE_ESTATE, "saga: the journal must be given before "
                    "the coordinator is started or polled");
  if (c->journal != NULL)
    return fe__diag(d, FE_ESTATE, "saga: the coordinator uses a journal "
                    "already");
  if (fe_journal_max_record(j) < c->rec_len)
    return fe__diag(d, FE_ERANGE, "saga: records of %u bytes do not fit the "
                    "journal's largest record (%u bytes): raise its "
                    "buffer_bytes", c->rec_len, fe_journal_max_record(j));
  /* Keep everything until open computes the real minimum. */
  int rc = fe_journal_pin(j, 1, &c->jpin);
  if (rc == FE_ESTATE)
    return fe__diag(d, rc, "saga: the journal is read-only");
  if (rc != 0)
    return fe__diag(d, rc, "saga: no free pin on the journal (%d in use)",
                    FE_JOURNAL_MAX_PINS);
  c->journal = j;
  c->jpin_lsn = 1;
  c->logs = 1;
  return 0;
}


int fe__saga_journal_put(fe_saga_coord_t *c, uint32_t i, uint32_t type,
                         int ctx) {
  const fe_saga_rec_t *h = (const fe_saga_rec_t *)(const void *)c->rec;
  uint64_t lsn;
  int rc = fe_journal_append(c->journal, FE_JREC_SAGA, c->rec, h->len, &lsn);
  if (rc != 0) {
    c->st.journal_errors++;
    return rc;
  }
  c->jdirty++;
  c->jlast_lsn = lsn;
  if (type == FE_SAGA_REC_END) /* the slot is free: nothing of it needed */
    fe__store_relaxed(&c->rec_lsn[i], 0);
  else if (ctx || type == FE_SAGA_REC_START)
    fe__store_relaxed(&c->rec_lsn[i], lsn);
  return 0;
}

/* The START record is the starter's to append, before fe_saga_start()
 * returns: whatever the caller appends to the journal after that call
 * (the bus's outcome of the event whose stage started the saga, when the
 * coordinator shares the bus's journal) has a higher lsn, so no crash can
 * keep it and lose the saga.  The coordinator's later records of this
 * saga come after it too: it takes the saga up only from the queue.
 *
 * The pin.  Until the coordinator takes the saga up, the START's lsn is
 * only in rec_lsn[i], which the starter stores twice: first a lower bound
 * of the lsn the append will take (the journal's written lsn, at least 1),
 * then the lsn.  A pin computed meanwhile that misses even the first store
 * read rec_lsn[i] before it, so the starter's append came after every
 * append of the coordinator before that scan (both appends take the
 * journal's lock; were the starter's first, its store would happen before
 * the scan and be seen): its lsn is above jlast_lsn, the pin's ceiling.
 * Relaxed stores and loads are enough: the journal's lock orders them. */
int fe__saga_journal_start(fe_saga_coord_t *c, uint32_t i, uint64_t gen,
                           uint16_t def) {
  /* The slot as on_start() will set it (saga_run.c): RUNNING, step 0, no
   * attempt, nothing done, no wait. */
  sg_slot_t img;
  memset(&img, 0, sizeof img);
  img.def = def;
  img.state = FE_SAGA_RUNNING;
  img.phase = PH_FWD;
  fe__store_relaxed(&img.sgen, gen);
  _Alignas(8) uint8_t buf[sizeof(fe_saga_rec_t) + FE_SAGA_CTX_MAX];
  int with_ctx;
  uint32_t len =
      fe__saga_rec_build(c, &img, i, FE_SAGA_REC_START, 0, buf, &with_ctx);
  uint64_t floor = fe_journal_written_lsn(c->journal);
  fe__store_relaxed(&c->rec_lsn[i], floor != 0 ? floor : 1);
  uint64_t lsn;
  int rc = fe_journal_append(c->journal, FE_JREC_SAGA, buf, len, &lsn);
  fe__store_relaxed(&c->rec_lsn[i], rc == 0 ? lsn : 0);
  return rc;
}

void fe__saga_journal_started(fe_saga_coord_t *c, uint32_t i) {
  uint64_t lsn = fe__load_relaxed(&c->rec_lsn[i]); /* after P2: the final */
  if (lsn > c->jlast_lsn)
    c->jlast_lsn = lsn;
  c->jdirty++; /* this pass commits it, if nobody did */
  c->st.records++;
}

/* The commit makes everything appended durable as far as the policy
 * promises at a commit (GROUP: fsynced; NONE: written, all NONE ever
 * promises).  Only INTERVAL can leave durable_lsn behind the newest saga
 * record after it: then sync, rather than let the effect outrun its
 * record by up to an interval.  Other appenders of a shared journal only
 * add lsns above ours, so durable_lsn >= jlast_lsn is exactly "our
 * records are durable". */
int fe__saga_journal_durable(fe_saga_coord_t *c) {
  int rc = fe_journal_commit(c->journal);
  if (rc == 0 && fe_journal_durable_lsn(c->journal) < c->jlast_lsn)
    rc = fe_journal_sync(c->journal);
  if (rc != 0) {
    c->st.journal_errors++;
    return rc; /* jdirty stays: pass_end tries (and counts) again */
  }
  c->jdirty = 0;
  return 0;
}

/* min(rec_lsn of every live saga, jlast_lsn).  With no saga record yet,
 * the journal's next lsn: a START appended after this scan is above it
 * (one appended before it is in rec_lsn), while "nothing" would let a
 * retire within the next second take the first sagas' records. */
static uint64_t needed_from(const fe_saga_coord_t *c) {
  uint64_t lo = c->jlast_lsn ? c->jlast_lsn
                             : fe_journal_written_lsn(c->journal) + 1;
  for (uint32_t i = 0; i < c->max; i++) {
    uint64_t v = fe__load_relaxed(&c->rec_lsn[i]); /* see journal_start */
    v = v ? v : UINT64_MAX;
    lo = v < lo ? v : lo;
  }
  return lo;
}

void fe__saga_journal_pass_end(fe_saga_coord_t *c, int force) {
  if (c->jdirty != 0) {
    c->jdirty = 0;
    if (fe_journal_commit(c->journal) != 0)
      c->st.journal_errors++;
  }
  if (!force && c->now - c->jpin_at < SG_PIN_EVERY_NS)
    return;
  c->jpin_at = c->now;
  uint64_t lo = needed_from(c);
  if (lo != c->jpin_lsn) {
    c->jpin_lsn = lo;
    fe_journal_pin_set(c->journal, c->jpin, lo); /* our pin: cannot fail */
  }
}

void fe__saga_journal_open(fe_saga_coord_t *c) {
  /* Records appended before a crash but never committed are lost, and
   * with them the generations (ids, tokens) they recorded, which may have
   * been handed out.  Between two commits the coordinator takes at most
   * SG_THREAD_BATCH for invocations and, for starts, one per slot freed
   * or taken (2 * max): skip that many so none is issued twice. */
  if (c->salt_replayed)
    fe__store_relaxed(&c->gen, fe__load_relaxed(&c->gen) + 2 * (uint64_t)c->max +
                                   2 * SG_THREAD_BATCH);
  fe__saga_journal_pass_end(c, 1);
}
