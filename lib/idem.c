/* Idempotency table: see include/finevent/idem.h.
 *
 * Layout.  Open addressing over buckets of 8 slots.  Each slot has a
 * control word in `ctl` (8 per 64-byte line: one bucket is one line, so a
 * lookup's tag scan touches one line) and a 128-byte entry in `ent` (the
 * key's two hash words, fingerprint, deadline, then the 96-byte outcome).
 * A key's home bucket is lo & bmask; it may live in that bucket or the
 * max_probe - 1 that follow (wrapping), slot 0..7 of each: its "chain",
 * and a slot's "position" is its index along the chain (0..8 * probe - 1).
 *
 * Control word: gen (32) | tag (20) | epoch (9) | state (3).
 *   tag    the top 20 bits of key.hi: a scan compares the full hash only
 *          on a tag match (false matches: ~8 per million slots scanned).
 *   gen    the incarnation of the slot: a new insert and a takeover bump
 *          it, so a token (slot, gen) names one claim, and a reader that
 *          sees the same word before and after copying an entry knows the
 *          copy is of one incarnation (a seqlock without a counter).
 *   epoch  bumped by fe_idem_extend(): keeps a takeover that read an
 *          expired deadline from winning over an extension made since
 *          (unless exactly 512 extensions of that claim fit between the
 *          taker's read and its CAS).
 *   state  EMPTY (the whole word 0: only ever the initial value), RESERVED
 *          (an inserter is writing the entry), PENDING (written, the
 *          insert not yet decided), TOMB (free: withdrawn, killed,
 *          abandoned, reaped), and the three "visible" states with bit 2
 *          set: OWNED (in progress), BUSY (its holder is writing it:
 *          completing, extending, or taking over), DONE.
 *
 * Writers.  Only the thread that moved a slot into RESERVED or BUSY (by
 * CAS) writes its entry, until it moves the slot out again with a release
 * store; everyone else only reads.  A DONE entry is immutable until the
 * slot is recycled, or reopened (fe_idem_reopen(): a dead-lettered entry
 * goes DONE -> BUSY with the next generation, exactly as a takeover goes
 * OWNED -> BUSY, so readers and stale tokens see a new incarnation).  Slots never return to EMPTY: tombstones are reused by
 * later inserts, so chains never shrink, and an EMPTY slot seen in a chain
 * proves every key inserted before that moment lies before it (an insert
 * takes the first free slot of its chain).  Scans therefore stop at the end
 * of the first bucket holding an EMPTY slot.
 *
 * Reading an entry (seqlock).  Load the control word c (acquire), load the
 * entry words (acquire, word by word, as atomics), load the control word
 * again: if it is still c, the words belong to c's incarnation.  Why the
 * orders suffice: entry words are written with release stores after the
 * writer's CAS changed the control word (W1); a reader's acquire load that
 * sees such a word synchronises with it (R1 pairs with W1), so the CAS
 * happens before the reader's second control load, which then cannot
 * return c.  The first acquire load pairs with the release store that
 * published the entry (PENDING, OWNED after BUSY, DONE: W2).  ABA would need
 * the slot's generation to wrap (2^32 incarnations) during one read.
 *
 * Claim: exactly one winner without a lock (a Dekker-style insert-then-
 * rescan).  Every control-word access of claim is seq_cst, and so is every
 * write that the argument relies on (the CAS to RESERVED, the PENDING
 * store, the CASes out of PENDING); on x86-64 a seq_cst load is a plain
 * load, and a CAS is a locked instruction either way.
 *   1. Scan the chain.  A visible or PENDING entry of the key answers:
 *      OWNED/BUSY/PENDING -> in progress (or a takeover of an expired
 *      OWNED), DONE -> replay, other fingerprint -> mismatch.  A DONE entry
 *      of the key past its retention counts as absent (and free).
 *   2. Otherwise CAS the first free slot (EMPTY, TOMB, or that expired
 *      entry) to RESERVED, write key, fingerprint, lease, store PENDING
 *      (P), and rescan the chain (seq_cst loads) for entries of the key:
 *      a visible one (or a PENDING one at an earlier position) means
 *      someone else is ahead: withdraw mine (PENDING -> TOMB) and start
 *      over (step 1 then answers from theirs); a PENDING one at a later
 *      position is killed (PENDING -> TOMB).  Finally CAS mine
 *      PENDING -> OWNED; if that fails I was killed: start over.
 * At most one winner.  Take two inserts A and B of one key with PENDING
 * stores Pa, Pb, and say Pa precedes Pb in the seq_cst order S.  B's rescan
 * loads come after Pb, so after Pa: when B's rescan reads A's slot it sees
 * A's PENDING or a later state.  It does reach the slot: had B's rescan
 * stopped at an EMPTY slot e before it, A must have read e as not EMPTY
 * when it chose its later slot (an insert takes the first free slot), so
 * the first write to e precedes A's read, and B's read of e, which saw
 * EMPTY, precedes that write (coherence, all seq_cst): B's read <S A's
 * read <S Pa <S Pb <S B's read, a contradiction.  So B sees A's entry:
 * visible (A already won: B withdraws), PENDING at an earlier position (B
 * withdraws), PENDING later (B kills it; if the kill fails because A just
 * won, B withdraws), or TOMB (A withdrew or was killed: A does not win).
 * Either way A and B do not both win.  RESERVED slots are skipped: their
 * owner's PENDING store comes after mine, so their rescan sees mine.
 * At least one winner.  Killing only goes from an earlier position to a
 * later one, so the earliest PENDING insert is never killed: it wins unless
 * it sees a visible entry (someone else won) or withdraws for an earlier
 * PENDING one, which recursively ends at the earliest.  A claim that
 * answers "in progress" from a PENDING entry therefore always has a winner
 * behind it.  Starting over is lock-free: it happens only when another
 * claim changed the chain.
 *
 * Takeover.  An OWNED entry whose deadline has passed is CASed from its
 * exact word (epoch included) to BUSY with the next generation, given a
 * new deadline, and published OWNED: one taker wins the CAS; the old token
 * no longer matches the generation.  A reopen does the same from a DONE
 * word whose outcome is FE_IDEM_DEAD_LETTERED (take()).  Extend goes OWNED -> BUSY -> OWNED
 * with the epoch bumped, so a taker that read the old deadline fails its
 * CAS.
 *
 * Counters live in 8 stripes, each on its own 128-byte pair of lines,
 * chosen by bucket: two threads working on different keys rarely share a
 * stripe, so the hot paths do not bounce one counter line between cores.
 */
#define _GNU_SOURCE
#include "finevent/idem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "sync.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ------------------------------------------------------- control words */

enum {
  S_EMPTY = 0,
  S_RESERVED = 1,
  S_PENDING = 2,
  S_TOMB = 3,
  S_OWNED = 4,
  S_BUSY = 5,
  S_DONE = 6
};
#define VISIBLE 4u /* state bit shared by OWNED, BUSY and DONE */
#define ST_MASK UINT64_C(7)
#define EPOCH_SHIFT 3
#define EPOCH_MASK (UINT64_C(0x1ff) << EPOCH_SHIFT)
#define TAG_SHIFT 12
#define TAG_MASK (UINT64_C(0xfffff) << TAG_SHIFT)
#define GEN_SHIFT 32

static inline unsigned st_of(uint64_t c) { return (unsigned)(c & ST_MASK); }
static inline uint32_t gen_of(uint64_t c) { return (uint32_t)(c >> GEN_SHIFT); }
static inline uint64_t tag_bits(const fe_idem_key_t *k) {
  return (k->hi >> 44) << TAG_SHIFT;
}
/* c with state s (epoch and tag kept). */
static inline uint64_t with_st(uint64_t c, unsigned s) {
  return (c & ~ST_MASK) | s;
}
/* A new incarnation: next generation (never 0), the key's tag, epoch 0. */
static inline uint64_t fresh(uint64_t c, uint64_t tag, unsigned s) {
  uint32_t g = gen_of(c) + 1;
  return ((uint64_t)(g != 0 ? g : 1) << GEN_SHIFT) | tag | s;
}
static inline uint64_t bump_epoch(uint64_t c) {
  return (c & ~EPOCH_MASK) | ((c + (UINT64_C(1) << EPOCH_SHIFT)) & EPOCH_MASK);
}

static inline fe_idem_token_t token_of(uint64_t slot, uint64_t c) {
  return ((uint64_t)gen_of(c) << 32) | slot;
}

/* ------------------------------------------------------------- the table */

#define OUT_WORDS 12 /* sizeof(fe_idem_outcome_t) / 8 */
_Static_assert(sizeof(fe_idem_outcome_t) == OUT_WORDS * 8,
               "fe_idem_outcome_t must be 96 bytes without padding");

typedef struct entry {
  uint64_t lo, hi;   /* the key */
  uint64_t fp;       /* fingerprint */
  uint64_t deadline; /* lease expiry (in progress) or retention expiry */
  uint64_t out[OUT_WORDS];
} entry_t;
_Static_assert(sizeof(entry_t) == 128, "an entry is two cache lines");

/* Per-stripe counters, updated with relaxed fetch-adds (statistics: they
 * order nothing), read by fe_idem_stats(). */
typedef struct stripe {
  uint64_t claims, claimed, takeovers, replays, in_progress_answers,
      mismatches, full, completed, abandoned, stale, reaped, restored,
      reopened;
  int64_t live, in_progress; /* gauges: sums over stripes are exact at rest */
} __attribute__((aligned(FE_PAD))) stripe_t;
#define STRIPES 8

struct fe_idem {
  /* Read-only after create. */
  uint64_t *ctl;      /* control words, capacity of them */
  entry_t *ent;       /* entries, capacity of them */
  uint64_t capacity;  /* slots */
  uint64_t bmask;     /* buckets - 1 */
  uint32_t probe;     /* buckets in a chain */
  int cache_failures;
  uint64_t lease_ns, retention_ns;
  uint64_t (*now_ns)(void *);
  void *clock_user;
  void *map_ctl, *map_ent; /* mappings, for destroy */
  size_t len_ctl, len_ent;

  /* Reaper cursor: fetch-added (relaxed: it only hands out ranges) by every
   * fe_idem_reap(). */
  _Alignas(FE_PAD) uint64_t cursor;

  _Alignas(FE_PAD) stripe_t st[STRIPES];
};

#define count(s, f) __atomic_fetch_add(&(s)->f, 1, __ATOMIC_RELAXED)
#define gauge(s, f, d) __atomic_fetch_add(&(s)->f, (d), __ATOMIC_RELAXED)

static inline stripe_t *stripe_of(fe_idem_t *t, uint64_t slot) {
  return &t->st[(slot >> 3) & (STRIPES - 1)];
}

static inline uint64_t now_of(const fe_idem_t *t) {
  return t->now_ns != NULL ? t->now_ns(t->clock_user) : fe_clock_now_ns();
}

static inline uint64_t after(uint64_t now, uint64_t d) {
  return now > UINT64_MAX - d ? UINT64_MAX : now + d;
}

/* Slot at position pos of the chain from bucket home. */
static inline uint64_t slot_at(const fe_idem_t *t, uint64_t home,
                               uint32_t pos) {
  return (((home + (pos >> 3)) & t->bmask) << 3) | (pos & 7);
}

#define ld_seq(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define cas_seq(p, exp, des)                                                 \
  __atomic_compare_exchange_n((p), (exp), (des), 0, __ATOMIC_SEQ_CST,        \
                              __ATOMIC_SEQ_CST)

/* ---------------------------------------------------------- entry reads */

typedef struct head {
  uint64_t lo, hi, fp, deadline;
} head_t;

/* Seqlock read of slot i's first four words, c being the control word
 * just read.  R1 (acquire loads) pair with W1 (the release stores of the
 * entry's writer; see the top).  Returns 1 when the copy is of c's
 * incarnation, 0 when the slot changed meanwhile (read it again). */
static inline int read_head(const fe_idem_t *t, uint64_t i, uint64_t c,
                            head_t *h) {
  const entry_t *e = &t->ent[i];
  h->lo = fe__load_acquire(&e->lo);
  h->hi = fe__load_acquire(&e->hi);
  h->fp = fe__load_acquire(&e->fp);
  h->deadline = fe__load_acquire(&e->deadline);
  return fe__load_acquire(&t->ctl[i]) == c;
}

/* Seqlock read of slot i's outcome (c: its DONE word).  As read_head(). */
static inline int read_outcome(const fe_idem_t *t, uint64_t i, uint64_t c,
                               fe_idem_outcome_t *o) {
  uint64_t w[OUT_WORDS];
  const entry_t *e = &t->ent[i];
  for (int k = 0; k < OUT_WORDS; k++)
    w[k] = fe__load_acquire(&e->out[k]); /* R1 */
  if (fe__load_acquire(&t->ctl[i]) != c)
    return 0;
  memcpy(o, w, sizeof w);
  return 1;
}

/* ---------------------------------------------------------------- claim */

enum { REREAD = 1, RESTART = 2 }; /* internal answers, never returned */

/* Makes slot i, read in state c (OWNED past its lease, or DONE being
 * reopened), a new claim of the caller's: the exact word read, epoch
 * included, is CASed to BUSY with the next generation, so one taker wins,
 * an extension made since the deadline was read makes the CAS fail, and
 * the old token (and a reader's copy of the old incarnation) goes stale.
 * Returns 0 or REREAD (lost the race: look again). */
static int take(fe_idem_t *t, uint64_t i, uint64_t c, uint64_t lease,
                uint64_t now, fe_idem_claim_t *out, uint32_t flag) {
  uint64_t busy = fresh(c, c & TAG_MASK, S_BUSY);
  if (!cas_seq(&t->ctl[i], &c, busy))
    return REREAD;
  uint64_t dl = after(now, lease);
  fe__store_release(&t->ent[i].deadline, dl); /* W1 */
  /* W2: publishes the deadline; pairs with the acquire loads of readers
   * and with the takeover / completion CAS of later holders. */
  fe__store_release(&t->ctl[i], with_st(busy, S_OWNED));
  out->token = token_of(i, busy);
  out->expires_ns = dl;
  out->flags = flag;
  return 0;
}

/* Answers a claim from slot i, holding the key (head h) in state c;
 * reopen: a DONE entry with status FE_IDEM_DEAD_LETTERED is taken back
 * (fe_idem_reopen).  Returns a claim result, REREAD (the slot changed:
 * look again) or, never here, RESTART. */
static int answer(fe_idem_t *t, uint64_t i, uint64_t c, const head_t *h,
                  uint64_t fp, uint64_t lease, uint64_t now, int reopen,
                  fe_idem_claim_t *out, stripe_t *s) {
  unsigned st = st_of(c);
  if (h->fp != fp) {
    if (s != NULL) count(s, mismatches);
    return FE_EMISMATCH;
  }
  if (st == S_DONE) {
    if (!read_outcome(t, i, c, &out->outcome))
      return REREAD;
    if (reopen && out->outcome.status == FE_IDEM_DEAD_LETTERED) {
      /* out->outcome keeps what is being taken back. */
      if (take(t, i, c, lease, now, out, FE_IDEM_F_REOPENED) != 0)
        return REREAD;
      stripe_t *g = stripe_of(t, i);
      gauge(g, in_progress, 1); /* DONE -> OWNED; finish() takes it off */
      if (s != NULL) {
        count(s, claimed);
        count(s, reopened);
      }
      return 0;
    }
    out->expires_ns = h->deadline;
    out->flags = FE_IDEM_F_REPLAY;
    if (s != NULL) count(s, replays);
    return FE_EDUPLICATE;
  }
  if (st == S_OWNED && now >= h->deadline) {
    if (take(t, i, c, lease, now, out, FE_IDEM_F_TAKEOVER) != 0)
      return REREAD;
    if (s != NULL) {
      count(s, claimed);
      count(s, takeovers);
    }
    return 0;
  }
  /* PENDING, OWNED with a running lease, BUSY. */
  out->expires_ns = h->deadline;
  if (s != NULL) count(s, in_progress_answers);
  return FE_EINPROGRESS;
}

/* Does slot word c (with its head h, read valid) hold live key k?  An
 * expired DONE entry is absent. */
static inline int holds(const head_t *h, uint64_t c, const fe_idem_key_t *k,
                        uint64_t now) {
  return h->lo == k->lo && h->hi == k->hi &&
         !(st_of(c) == S_DONE && now >= h->deadline);
}

#define NOWHERE UINT32_MAX

/* Step 2 of the top comment after the CAS to RESERVED: publish PENDING,
 * rescan, decide.  Returns 0 (won), or RESTART. */
static int insert_decide(fe_idem_t *t, const fe_idem_key_t *k, uint64_t home,
                         uint32_t mine, uint64_t pend, uint64_t now) {
  uint64_t i = slot_at(t, home, mine), tag = pend & TAG_MASK;
  uint32_t n = t->probe * 8;
  /* P: seq_cst, before every load of the rescan (see the top). */
  __atomic_store_n(&t->ctl[i], pend, __ATOMIC_SEQ_CST);
  int empty = 0;
  for (uint32_t pos = 0; pos < n; pos++) {
    if ((pos & 7) == 0 && empty)
      break;
    if (pos == mine)
      continue;
    uint64_t j = slot_at(t, home, pos);
    for (;;) {
      uint64_t c = ld_seq(&t->ctl[j]);
      unsigned st = st_of(c);
      empty |= c == 0;
      if ((st != S_PENDING && !(st & VISIBLE)) || (c & TAG_MASK) != tag)
        break;
      head_t h;
      if (!read_head(t, j, c, &h))
        continue;
      if (!holds(&h, c, k, now))
        break;
      if (st == S_PENDING && pos > mine) {
        /* Kill the later insert; if it changed meanwhile (it won, or
         * withdrew), look at it again. */
        if (cas_seq(&t->ctl[j], &c, with_st(c, S_TOMB)))
          break;
        continue;
      }
      /* Someone is ahead: withdraw mine (fails only if I was killed,
       * which leaves it TOMB as well) and start over. */
      uint64_t p = pend;
      cas_seq(&t->ctl[i], &p, with_st(pend, S_TOMB));
      return RESTART;
    }
  }
  uint64_t p = pend;
  if (!cas_seq(&t->ctl[i], &p, with_st(pend, S_OWNED)))
    return RESTART; /* killed by an earlier insert of the key */
  return 0;
}

/* The claim.  s: counters to update, NULL for restore. */
static int claim_impl(fe_idem_t *t, const fe_idem_key_t *k, uint64_t fp,
                      uint64_t lease, uint64_t now, int reopen,
                      fe_idem_claim_t *out, stripe_t *s) {
  uint64_t home = k->lo & t->bmask, tag = tag_bits(k);
  uint32_t n = t->probe * 8;
  memset(out, 0, sizeof *out);
  for (;;) { /* RESTART */
    uint32_t free_pos = NOWHERE;
    uint64_t free_c = 0;
    int empty = 0;
    for (uint32_t pos = 0; pos < n; pos++) {
      if ((pos & 7) == 0 && empty)
        break;
      uint64_t i = slot_at(t, home, pos);
      for (;;) { /* REREAD */
        uint64_t c = ld_seq(&t->ctl[i]);
        unsigned st = st_of(c);
        if (c == 0 || st == S_TOMB) {
          empty |= c == 0;
          if (free_pos == NOWHERE)
            free_pos = pos, free_c = c;
          break;
        }
        if ((st != S_PENDING && !(st & VISIBLE)) || (c & TAG_MASK) != tag)
          break;
        head_t h;
        if (!read_head(t, i, c, &h))
          continue;
        if (h.lo != k->lo || h.hi != k->hi)
          break;
        if (st == S_DONE && now >= h.deadline) {
          if (free_pos == NOWHERE) /* expired: absent, and reusable */
            free_pos = pos, free_c = c;
          break;
        }
        int rc = answer(t, i, c, &h, fp, lease, now, reopen, out, s);
        if (rc == REREAD)
          continue;
        return rc;
      }
    }
    if (free_pos == NOWHERE) {
      if (s != NULL) count(s, full);
      return FE_ETABLEFULL;
    }
    uint64_t i = slot_at(t, home, free_pos);
    uint64_t resv = fresh(free_c, tag, S_RESERVED);
    if (!cas_seq(&t->ctl[i], &free_c, resv))
      continue; /* taken meanwhile: start over */
    stripe_t *g = stripe_of(t, i);
    if (st_of(free_c) == S_DONE) { /* replaced an expired entry */
      count(g, reaped);
      gauge(g, live, -1);
    }
    entry_t *e = &t->ent[i];
    uint64_t dl = after(now, lease);
    fe__store_release(&e->lo, k->lo); /* W1, under RESERVED */
    fe__store_release(&e->hi, k->hi);
    fe__store_release(&e->fp, fp);
    fe__store_release(&e->deadline, dl);
    uint64_t pend = with_st(resv, S_PENDING);
    if (insert_decide(t, k, home, free_pos, pend, now) != 0)
      continue;
    gauge(g, live, 1);
    gauge(g, in_progress, 1);
    if (s != NULL) count(s, claimed);
    out->token = token_of(i, pend);
    out->expires_ns = dl;
    return 0;
  }
}

int fe_idem_claim_lease(fe_idem_t *t, const fe_idem_key_t *key,
                        uint64_t fingerprint, uint64_t lease_ns,
                        fe_idem_claim_t *out) {
  if (FE_UNLIKELY(t == NULL || key == NULL || out == NULL))
    return FE_EINVAL;
  if (FE_UNLIKELY(lease_ns > FE_IDEM_DURATION_MAX))
    return FE_ERANGE;
  stripe_t *s = stripe_of(t, (key->lo & t->bmask) << 3);
  count(s, claims);
  return claim_impl(t, key, fingerprint, lease_ns ? lease_ns : t->lease_ns,
                    now_of(t), 0, out, s);
}

int fe_idem_reopen(fe_idem_t *t, const fe_idem_key_t *key,
                   uint64_t fingerprint, fe_idem_claim_t *out) {
  if (FE_UNLIKELY(t == NULL || key == NULL || out == NULL))
    return FE_EINVAL;
  stripe_t *s = stripe_of(t, (key->lo & t->bmask) << 3);
  count(s, claims);
  return claim_impl(t, key, fingerprint, t->lease_ns, now_of(t), 1, out, s);
}

int fe_idem_claim(fe_idem_t *t, const fe_idem_key_t *key, uint64_t fingerprint,
                  fe_idem_claim_t *out) {
  return fe_idem_claim_lease(t, key, fingerprint, 0, out);
}

/* ------------------------------------------------- complete, abandon ... */

/* Decodes token and checks it against slot word c: 0 when c is the
 * token's claim, OWNED; else the error to return. */
static int check_token(fe_idem_token_t token, uint64_t c) {
  if (gen_of(c) != (uint32_t)(token >> 32))
    return FE_ELEASE; /* retaken or recycled */
  switch (st_of(c)) {
  case S_OWNED: return 0;
  case S_BUSY: return FE_ESTATE; /* the same token, in another call */
  case S_DONE: return FE_ELATE;
  default: return FE_ELEASE; /* abandoned, reaped */
  }
}

static int token_slot(const fe_idem_t *t, fe_idem_token_t token,
                      uint64_t *slot) {
  *slot = token & UINT32_MAX;
  if (*slot >= t->capacity || (token >> 32) == 0)
    return FE_ETOKEN;
  return 0;
}

static int valid_status(int32_t s) {
  return (s >= FE_IDEM_COMPLETED && s <= FE_IDEM_DEAD_LETTERED) ||
         s >= FE_IDEM_STATUS_USER;
}

/* Ends the claim `token`: stores o, DONE until `deadline`, or (o NULL)
 * removes the entry.  counted: update completed/abandoned/stale. */
static int finish(fe_idem_t *t, fe_idem_token_t token,
                  const fe_idem_outcome_t *o, uint64_t deadline,
                  int counted) {
  uint64_t i;
  int rc = token_slot(t, token, &i);
  if (rc != 0)
    return rc;
  stripe_t *s = stripe_of(t, i);
  uint64_t *ctl = &t->ctl[i];
  /* Acquire: pairs with W2 of a takeover or extension, so the CAS below
   * starts from the latest holder's word.  A failed CAS reloads c. */
  uint64_t c = fe__load_acquire(ctl);
  for (;;) {
    rc = check_token(token, c);
    if (rc != 0) {
      if (rc == FE_ELEASE && counted) count(s, stale);
      return rc;
    }
    if (o == NULL) {
      if (cas_seq(ctl, &c, with_st(c, S_TOMB)))
        break;
      continue;
    }
    uint64_t busy = with_st(c, S_BUSY);
    if (!cas_seq(ctl, &c, busy))
      continue;
    uint64_t w[OUT_WORDS];
    memcpy(w, o, sizeof w);
    entry_t *e = &t->ent[i];
    for (int k = 0; k < OUT_WORDS; k++)
      fe__store_release(&e->out[k], w[k]); /* W1, under BUSY */
    fe__store_release(&e->deadline, deadline);
    fe__store_release(ctl, with_st(busy, S_DONE)); /* W2 */
    gauge(s, in_progress, -1);
    if (counted) count(s, completed);
    return 0;
  }
  gauge(s, in_progress, -1);
  gauge(s, live, -1);
  if (counted) count(s, abandoned);
  return 0;
}

int fe_idem_complete(fe_idem_t *t, fe_idem_token_t token,
                     const fe_idem_outcome_t *outcome) {
  if (t == NULL || outcome == NULL || !valid_status(outcome->status))
    return FE_EINVAL;
  if (!t->cache_failures && outcome->status == FE_IDEM_DEAD_LETTERED) {
    /* Removed, not stored: counted as a completion, not an abandon. */
    uint64_t i;
    int rc = token_slot(t, token, &i);
    if (rc != 0)
      return rc;
    rc = finish(t, token, NULL, 0, 0);
    if (rc == 0)
      count(stripe_of(t, i), completed);
    else if (rc == FE_ELEASE)
      count(stripe_of(t, i), stale);
    return rc;
  }
  return finish(t, token, outcome, after(now_of(t), t->retention_ns), 1);
}

int fe_idem_abandon(fe_idem_t *t, fe_idem_token_t token) {
  if (t == NULL)
    return FE_EINVAL;
  return finish(t, token, NULL, 0, 1);
}

int fe_idem_extend(fe_idem_t *t, fe_idem_token_t token, uint64_t lease_ns) {
  if (t == NULL)
    return FE_EINVAL;
  if (lease_ns > FE_IDEM_DURATION_MAX)
    return FE_ERANGE;
  uint64_t i;
  int rc = token_slot(t, token, &i);
  if (rc != 0)
    return rc;
  uint64_t *ctl = &t->ctl[i];
  uint64_t c = fe__load_acquire(ctl); /* as in finish() */
  for (;;) {
    rc = check_token(token, c);
    if (rc != 0) {
      if (rc == FE_ELEASE) count(stripe_of(t, i), stale);
      return rc;
    }
    uint64_t busy = with_st(c, S_BUSY);
    if (cas_seq(ctl, &c, busy))
      break;
  }
  uint64_t dl = after(now_of(t), lease_ns ? lease_ns : t->lease_ns);
  fe__store_release(&t->ent[i].deadline, dl);             /* W1 */
  fe__store_release(ctl, with_st(bump_epoch(c), S_OWNED)); /* W2 */
  return 0;
}

/* --------------------------------------------------------------- lookup */

/* The hot read.  One control line per bucket: the tag and visibility of
 * all 8 words are compared without branches into a bit mask (a branch per
 * word would mispredict once per lookup and throw away the work the CPU
 * had started on the caller's next lookup), then only matching slots
 * touch the entry array, whose 16 words are copied (straight into out)
 * and validated once.  The clock is read on first need, before the copy
 * (the state is known from the control word), so the read overlaps the
 * entry's cache miss; *now and *have_now carry it across a batch. */
static inline int lookup_at(const fe_idem_t *t, const fe_idem_key_t *key,
                            fe_idem_entry_t *out, uint64_t *now,
                            int *have_now) {
  const uint64_t want = tag_bits(key) | VISIBLE, mask = TAG_MASK | VISIBLE;
  const uint64_t home = key->lo & t->bmask;
again:
  for (uint32_t b = 0; b < t->probe; b++) {
    const uint64_t base = ((home + b) & t->bmask) << 3;
    const uint64_t *w = &t->ctl[base];
    uint64_t c[8];
    unsigned hit = 0, empty = 0;
    for (unsigned k = 0; k < 8; k++) {
      c[k] = fe__load_acquire(&w[k]); /* pairs with W2 */
      hit |= (unsigned)((c[k] & mask) == want) << k;
      empty |= c[k] == 0;
    }
    while (hit != 0) {
      const unsigned k = (unsigned)__builtin_ctz(hit);
      hit &= hit - 1;
      const entry_t *e = &t->ent[base + k];
      const int done = st_of(c[k]) == S_DONE;
      if (done && !*have_now) {
        *now = now_of(t);
        *have_now = 1;
      }
      /* R1: the seqlock copy (see the top), all words, one validation. */
      const uint64_t lo = fe__load_acquire(&e->lo);
      const uint64_t hi = fe__load_acquire(&e->hi);
      const uint64_t fp = fe__load_acquire(&e->fp);
      const uint64_t dl = fe__load_acquire(&e->deadline);
      char *o = (char *)&out->outcome;
      for (int j = 0; j < OUT_WORDS; j++) {
        uint64_t x = fe__load_acquire(&e->out[j]);
        memcpy(o + 8 * j, &x, 8);
      }
      if (fe__load_acquire(&w[k]) != c[k])
        goto again; /* recycled or changed meanwhile: start over */
      if (lo != key->lo || hi != key->hi)
        continue;
      if (done) {
        if (*now >= dl)
          continue; /* expired: absent */
        out->state = FE_IDEM_DONE;
      } else {
        memset(&out->outcome, 0, sizeof out->outcome);
        out->state = FE_IDEM_IN_PROGRESS;
      }
      out->reserved = 0;
      out->fingerprint = fp;
      out->expires_ns = dl;
      return 0;
    }
    if (empty)
      break;
  }
  return FE_ENOTFOUND;
}

int fe_idem_lookup(const fe_idem_t *t, const fe_idem_key_t *key,
                   fe_idem_entry_t *out) {
  if (FE_UNLIKELY(t == NULL || key == NULL || out == NULL))
    return FE_EINVAL;
  uint64_t now = 0;
  int have_now = 0;
  return lookup_at(t, key, out, &now, &have_now);
}

void fe_idem_prefetch(const fe_idem_t *t, const fe_idem_key_t *key) {
  if (t == NULL || key == NULL)
    return;
  __builtin_prefetch(&t->ctl[(key->lo & t->bmask) << 3], 0, 3);
}

void fe_idem_prefetch_claim(const fe_idem_t *t, const fe_idem_key_t *key) {
  if (t == NULL || key == NULL)
    return;
  const uint64_t base = (key->lo & t->bmask) << 3, tag = tag_bits(key);
  for (unsigned k = 0; k < 8; k++) {
    uint64_t c = fe__load_relaxed(&t->ctl[base + k]);
    unsigned st = st_of(c);
    if (c == 0 || st == S_TOMB || (c & TAG_MASK) == tag) {
      __builtin_prefetch(&t->ent[base + k], 1, 3); /* key, fp, deadline */
      __builtin_prefetch(&t->ctl[base], 1, 3);     /* for the CAS */
      return;
    }
  }
}

void fe__idem_prefetch_token(const fe_idem_t *t, fe_idem_token_t token) {
  uint64_t i = token & UINT32_MAX;
  if (t == NULL || i >= t->capacity)
    return;
  __builtin_prefetch(&t->ctl[i], 1, 3);
  __builtin_prefetch(&t->ent[i], 1, 3);
  __builtin_prefetch((const char *)&t->ent[i] + 64, 1, 3);
}

/* Second stage of the batch pipeline: reads key's home control line (by
 * now in cache, prefetched LOOKAHEAD keys ago) and starts loading both
 * lines of every entry whose tag matches.  Only a hint: nothing is
 * validated here, fe_idem_lookup() does it all again. */
static inline void prefetch_entries(const fe_idem_t *t,
                                    const fe_idem_key_t *key) {
  const uint64_t want = tag_bits(key) | VISIBLE, mask = TAG_MASK | VISIBLE;
  uint64_t base = (key->lo & t->bmask) << 3;
  unsigned hit = 0;
  for (unsigned k = 0; k < 8; k++)
    hit |= (unsigned)((fe__load_relaxed(&t->ctl[base + k]) & mask) == want)
           << k;
  while (hit != 0) {
    const entry_t *e = &t->ent[base + (unsigned)__builtin_ctz(hit)];
    hit &= hit - 1;
    __builtin_prefetch(e, 0, 3);
    __builtin_prefetch((const char *)e + 64, 0, 3);
  }
}

/* Keys ahead: the control line is prefetched 2 * LOOKAHEAD keys ahead and
 * the entries LOOKAHEAD ahead, so about LOOKAHEAD misses of each kind are
 * in flight while one lookup runs, where a loop of single lookups keeps
 * about one (each waits for its control line, then its entry). */
#define LOOKAHEAD 8

int fe_idem_lookup_n(const fe_idem_t *t, const fe_idem_key_t *keys, size_t n,
                     fe_idem_entry_t *out, int *rc) {
  if (t == NULL || (n != 0 && (keys == NULL || out == NULL || rc == NULL)))
    return FE_EINVAL;
  if (n > INT32_MAX)
    return FE_ERANGE;
  int found = 0;
  uint64_t now = 0; /* one clock reading for the batch */
  int have_now = 0;
  /* Fill the pipeline: control lines of the first 2 * LOOKAHEAD keys,
   * then the entries of the first LOOKAHEAD (whose lines are on the way). */
  for (size_t i = 0; i < n && i < 2 * LOOKAHEAD; i++)
    fe_idem_prefetch(t, &keys[i]);
  for (size_t i = 0; i < n && i < LOOKAHEAD; i++)
    prefetch_entries(t, &keys[i]);
  for (size_t i = 0; i < n; i++) {
    if (i + 2 * LOOKAHEAD < n)
      fe_idem_prefetch(t, &keys[i + 2 * LOOKAHEAD]);
    if (i + LOOKAHEAD < n)
      prefetch_entries(t, &keys[i + LOOKAHEAD]);
    rc[i] = lookup_at(t, &keys[i], &out[i], &now, &have_now);
    found += rc[i] == 0;
  }
  return found;
}

/* ----------------------------------------------------------------- reap */

int fe_idem_reap(fe_idem_t *t, uint64_t max_slots, uint64_t *reaped) {
  if (reaped != NULL)
    *reaped = 0;
  if (t == NULL || max_slots == 0)
    return FE_EINVAL;
  if (max_slots > t->capacity)
    max_slots = t->capacity;
  uint64_t start = __atomic_fetch_add(&t->cursor, max_slots, __ATOMIC_RELAXED);
  uint64_t now = now_of(t), n = 0, mask = t->capacity - 1;
  for (uint64_t k = 0; k < max_slots; k++) {
    uint64_t i = (start + k) & mask;
    uint64_t c = fe__load_acquire(&t->ctl[i]); /* pairs with W2 */
    unsigned st = st_of(c);
    if (st != S_DONE && st != S_OWNED)
      continue;
    head_t h;
    if (!read_head(t, i, c, &h))
      continue; /* changed under us: someone else is using it */
    if (now < h.deadline ||
        (st == S_OWNED && now - h.deadline < t->retention_ns))
      continue;
    /* The exact word: an extension, takeover or completion since the read
     * makes the CAS fail, and the entry then is not ours to judge. */
    if (!cas_seq(&t->ctl[i], &c, with_st(c, S_TOMB)))
      continue;
    stripe_t *s = stripe_of(t, i);
    gauge(s, live, -1);
    if (st == S_OWNED)
      gauge(s, in_progress, -1);
    count(s, reaped);
    n++;
  }
  if (reaped != NULL)
    *reaped = n;
  return 0;
}

/* -------------------------------------------------------------- restore */

int fe_idem_restore(fe_idem_t *t, const fe_idem_key_t *key,
                    uint64_t fingerprint, const fe_idem_outcome_t *outcome,
                    uint64_t completed_ns) {
  if (t == NULL || key == NULL || outcome == NULL ||
      !valid_status(outcome->status))
    return FE_EINVAL;
  uint64_t now = now_of(t), deadline = after(completed_ns, t->retention_ns);
  if (deadline <= now)
    return FE_ERANGE;
  if (!t->cache_failures && outcome->status == FE_IDEM_DEAD_LETTERED)
    return 0;
  fe_idem_claim_t c;
  /* Reopen: a later outcome of a dead-lettered key (its redrive's)
   * replaces the dead letter's, as it did when it happened. */
  int rc = claim_impl(t, key, fingerprint, t->lease_ns, now, 1, &c, NULL);
  if (rc != 0)
    return rc;
  rc = finish(t, c.token, outcome, deadline, 0);
  if (rc == 0)
    count(stripe_of(t, c.token & UINT32_MAX), restored);
  return rc;
}

/* ---------------------------------------------------------------- stats */

int fe_idem_stats(const fe_idem_t *t, fe_idem_stats_t *out) {
  if (t == NULL || out == NULL)
    return FE_EINVAL;
  memset(out, 0, sizeof *out);
  int64_t live = 0, busy = 0;
  for (int k = 0; k < STRIPES; k++) {
    const stripe_t *s = &t->st[k];
#define SUM(f) out->f += fe__load_relaxed(&s->f)
    SUM(claims);
    SUM(claimed);
    SUM(takeovers);
    SUM(replays);
    SUM(in_progress_answers);
    SUM(mismatches);
    SUM(full);
    SUM(completed);
    SUM(abandoned);
    SUM(stale);
    SUM(reaped);
    SUM(restored);
    SUM(reopened);
#undef SUM
    live += fe__load_relaxed(&s->live);
    busy += fe__load_relaxed(&s->in_progress);
  }
  out->capacity = t->capacity;
  out->live = live > 0 ? (uint64_t)live : 0;
  out->in_progress = busy > 0 ? (uint64_t)busy : 0;
  return 0;
}

/* ------------------------------------------------------ keys, fingerprint */

static inline void put_le64(uint8_t *p, uint64_t v) {
  for (int k = 0; k < 8; k++)
    p[k] = (uint8_t)(v >> (8 * k));
}

int fe_idem_key(uint64_t account, const void *id, size_t len,
                fe_idem_key_t *out) {
  if (id == NULL || out == NULL)
    return FE_EINVAL;
  if (len == 0 || len > FE_IDEM_KEY_MAX)
    return FE_ERANGE;
  uint8_t buf[8 + FE_IDEM_KEY_MAX];
  put_le64(buf, account);
  memcpy(buf + 8, id, len);
  XXH128_hash_t h = XXH3_128bits(buf, 8 + len);
  out->lo = h.low64;
  out->hi = h.high64;
  return 0;
}

int fe_idem_key_order(const fe_order_t *o, fe_idem_key_t *out) {
  if (o == NULL || out == NULL)
    return FE_EINVAL;
  size_t len = strnlen(o->client_order_id, FE_CLORDID_MAX);
  if (len == 0)
    return FE_ERANGE;
  return fe_idem_key(o->account, o->client_order_id, len, out);
}

uint64_t fe_idem_fingerprint(const fe_order_t *o) {
  if (o == NULL)
    return 0;
  /* account, quantity, price, expire_ns, side, type, tif, symbol */
  uint8_t buf[4 * 8 + 3 + FE_SYMBOL_MAX];
  memset(buf, 0, sizeof buf);
  put_le64(buf, o->account);
  put_le64(buf + 8, (uint64_t)o->quantity);
  put_le64(buf + 16, (uint64_t)o->price);
  put_le64(buf + 24, o->expire_ns);
  buf[32] = o->side;
  buf[33] = o->type;
  buf[34] = o->tif;
  memcpy(buf + 35, o->symbol, strnlen(o->symbol, FE_SYMBOL_MAX));
  return XXH3_64bits(buf, sizeof buf);
}

/* ------------------------------------------------------ create, destroy */

void fe_idem_config_init(fe_idem_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->capacity = FE_IDEM_DEFAULT_CAPACITY;
  cfg->max_probe = FE_IDEM_DEFAULT_PROBE;
  cfg->cache_failures = 1;
  cfg->lease_ns = FE_IDEM_DEFAULT_LEASE_NS;
  cfg->retention_ns = FE_IDEM_DEFAULT_RETENTION_NS;
}

static int check_config(const fe_idem_config_t *cfg, fe_diag_t *diag) {
  if (cfg == NULL)
    return fe__diag(diag, FE_EINVAL, "idem: cfg is NULL");
  uint64_t cap = cfg->capacity;
  if (cap < FE_IDEM_CAPACITY_MIN || cap > FE_IDEM_CAPACITY_MAX ||
      (cap & (cap - 1)) != 0)
    return fe__diag(diag, FE_ERANGE,
                    "idem: capacity %llu is not a power of two in %llu..%llu",
                    (unsigned long long)cap,
                    (unsigned long long)FE_IDEM_CAPACITY_MIN,
                    (unsigned long long)FE_IDEM_CAPACITY_MAX);
  if (cfg->max_probe == 0 || cfg->max_probe > FE_IDEM_PROBE_MAX)
    return fe__diag(diag, FE_ERANGE, "idem: max_probe %u is not in 1..%u",
                    cfg->max_probe, FE_IDEM_PROBE_MAX);
  if (cfg->lease_ns == 0 || cfg->lease_ns > FE_IDEM_DURATION_MAX)
    return fe__diag(diag, FE_ERANGE, "idem: lease_ns %llu is not in 1..%llu",
                    (unsigned long long)cfg->lease_ns,
                    (unsigned long long)FE_IDEM_DURATION_MAX);
  if (cfg->retention_ns == 0 || cfg->retention_ns > FE_IDEM_DURATION_MAX)
    return fe__diag(diag, FE_ERANGE,
                    "idem: retention_ns %llu is not in 1..%llu",
                    (unsigned long long)cfg->retention_ns,
                    (unsigned long long)FE_IDEM_DURATION_MAX);
  if (cfg->cache_failures != 0 && cfg->cache_failures != 1)
    return fe__diag(diag, FE_EINVAL,
                    "idem: cache_failures is %d; must be 0 or 1",
                    cfg->cache_failures);
  if (cfg->now_ns == NULL && cfg->clock_user != NULL)
    return fe__diag(diag, FE_EINVAL,
                    "idem: clock_user is set but now_ns is NULL");
  return 0;
}

#define HUGE_PAGE (UINT64_C(2) << 20)

/* Anonymous memory aligned to a huge page when it is at least one, with
 * transparent huge pages asked for (a lookup then costs no TLB miss on a
 * large table), zeroed and touched so that nothing faults later.  *base
 * and *len receive the mapping for unmap(). */
static void *map(size_t size, void **base, size_t *len) {
  size_t align = size >= HUGE_PAGE ? HUGE_PAGE : 4096;
  size_t n = size + align;
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
#ifdef MADV_HUGEPAGE
  if (align == HUGE_PAGE)
    madvise((void *)a, size, MADV_HUGEPAGE); /* a hint: failure is fine */
#endif
  memset((void *)a, 0, size);
  *base = p;
  *len = n;
  return (void *)a;
}

static void unmap(void *base, size_t len) {
  if (base != NULL)
    munmap(base, len);
}

int fe_idem_create(const fe_idem_config_t *cfg, fe_idem_t **out,
                   fe_diag_t *diag) {
  if (out == NULL)
    return fe__diag(diag, FE_EINVAL, "idem: out is NULL");
  int rc = check_config(cfg, diag);
  if (rc != 0)
    return rc;
  fe_idem_t *t = fe__zalloc_aligned(sizeof *t);
  if (t == NULL)
    return fe__diag(diag, FE_ENOMEM, "idem: cannot allocate %zu bytes",
                    sizeof *t);
  t->capacity = cfg->capacity;
  t->bmask = cfg->capacity / 8 - 1;
  t->probe = cfg->max_probe < cfg->capacity / 8 ? cfg->max_probe
                                                : (uint32_t)(cfg->capacity / 8);
  t->cache_failures = cfg->cache_failures;
  t->lease_ns = cfg->lease_ns;
  t->retention_ns = cfg->retention_ns;
  t->now_ns = cfg->now_ns;
  t->clock_user = cfg->clock_user;
  t->ctl = map((size_t)cfg->capacity * sizeof *t->ctl, &t->map_ctl,
               &t->len_ctl);
  t->ent = t->ctl == NULL ? NULL
                          : map((size_t)cfg->capacity * sizeof *t->ent,
                                &t->map_ent, &t->len_ent);
  if (t->ent == NULL) {
    fe_idem_destroy(t);
    return fe__diag(diag, FE_ENOMEM,
                    "idem: cannot allocate %llu slots (%llu bytes)",
                    (unsigned long long)cfg->capacity,
                    (unsigned long long)cfg->capacity *
                        (sizeof(entry_t) + sizeof(uint64_t)));
  }
  *out = t;
  return 0;
}

void fe_idem_destroy(fe_idem_t *t) {
  if (t == NULL)
    return;
  unmap(t->map_ctl, t->len_ctl);
  unmap(t->map_ent, t->len_ent);
  free(t);
}
