/* The saga coordinator on an fe_journal: see "Journal" in
 * include/finevent/saga.h.
 *
 * Every record fe__saga_log() builds is appended as FE_JREC_SAGA; the
 * pass commits what it appended (and every SG_THREAD_BATCH invocations
 * within a long pass), so a crash loses at most the records of one pass.
 * A pin keeps retire from dropping what replay needs: per live saga the
 * newest record with its context (rec_lsn[], lsn order means everything
 * after it, so its newest record too), and the newest saga record overall
 * (salt, gen_hw).  That minimum never decreases: a saga's rec_lsn only
 * grows while it lives, a new saga's first record is newer than any
 * before it, an ended saga drops out.  So an old value of the pin is
 * always a safe (lower) bound and recomputing it - one scan of the dense
 * rec_lsn array - once a second is enough.  Everything here runs on the
 * coordinator's thread (or before open, on the replaying one).
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
  if (type == FE_SAGA_REC_END)
    c->rec_lsn[i] = 0; /* the slot is free: nothing of it is needed */
  else if (ctx || type == FE_SAGA_REC_START)
    c->rec_lsn[i] = lsn;
  return 0;
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

/* min(rec_lsn of every live saga, jlast_lsn); UINT64_MAX: nothing. */
static uint64_t needed_from(const fe_saga_coord_t *c) {
  uint64_t lo = c->jlast_lsn ? c->jlast_lsn : UINT64_MAX;
  const uint64_t *a = c->rec_lsn;
  for (uint32_t i = 0; i < c->max; i++) {
    uint64_t v = a[i] ? a[i] : UINT64_MAX; /* branch-free: vectorises */
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
