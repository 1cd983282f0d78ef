/*
 * Payloads of the journal records the bus writes (types FE_JREC_* of
 * journal.h).  Private to the library and the fe-journal tool, but an
 * on-disk contract all the same: fields are only ever appended, and
 * FE_JREC_BUS_VERSION changes if a layout must change.  Little endian,
 * fixed widths, 8-byte aligned.
 */
#ifndef FE_JREC_H
#define FE_JREC_H

#include <stdint.h>

#include "finevent/event.h"
#include "finevent/idem.h"

#include <stddef.h>
#include <string.h>

/* Event record format: compact entries, see jrec_ev_encode(), of a
 * jrec_event_t whose event carries the W3C trace context (fe_event_t
 * .trace).  Recovery reads this version only. */
#define FE_JREC_BUS_VERSION 3

/* FE_JREC_EVENT: a group of events the journaller wrote together.
 * Followed by `count` entries, each as jrec_ev_encode() writes it, the
 * record ending with the last entry. */
typedef struct jrec_events {
  uint32_t version;    /* FE_JREC_BUS_VERSION */
  uint32_t count;
  uint32_t entry_size; /* 0: entries are compact (variable length) */
  uint32_t user_len;
  uint64_t first_eid;  /* event ids first_eid .. first_eid + count - 1 */
} jrec_events_t;

#define JREC_EV_KEY 1u /* key and fingerprint are set */

typedef struct jrec_event {
  /* The fe_event_t as bytes (seq and verdict zero, flags as published):
   * records are only 8-byte aligned, the event type is 16-aligned. */
  uint8_t ev[sizeof(fe_event_t)];
  fe_idem_key_t key;
  uint64_t fingerprint;
  uint64_t redrive_of;    /* eid of the dead letter this redrives, or 0 */
  uint32_t flags;         /* JREC_EV_* */
  uint32_t reserved;
} jrec_event_t;

/* An entry is the jrec_event_t read as JREC_EV_WORDS 64-bit
 * words, each cut to the bytes that carry its value, then the user area.
 *   codes   JREC_EV_CODES bytes: word w's length (0..8 bytes) in the low
 *           nibble of byte w / 2 for even w, the high nibble for odd w;
 *           the nibbles past the last word are 0;
 *   bytes   the low `length` bytes of each word in turn, little endian
 *           (a zero word has length 0: no bytes);
 *   user    user_len bytes, as the slot's user area holds them.
 * Most of an order is zero or small (padding, unset fields, NUL-padded
 * ids, small quantities), and every byte written is page-cache copy on
 * the journaller's path: a typical order takes about 100 bytes instead
 * of 184, a sparse one under 20.  seq and verdict (words 0 and 1) are
 * never journaled: their length must be 0. */
#define JREC_EV_WORDS (sizeof(jrec_event_t) / 8)
#define JREC_EV_CODES ((JREC_EV_WORDS + 1) / 2)
/* The most an entry takes (every word whole), and the slack past the end
 * of the output that jrec_ev_encode() may scribble on. */
#define JREC_EV_MAX(user_len) (JREC_EV_CODES + sizeof(jrec_event_t) + (user_len))
#define JREC_EV_SLACK 8

_Static_assert(sizeof(jrec_event_t) % 8 == 0, "jrec_event_t is whole words");
_Static_assert(JREC_EV_WORDS <= 2 * JREC_EV_CODES, "a nibble per word");
_Static_assert(JREC_EV_WORDS > 16 && JREC_EV_WORDS <= 32 &&
                   JREC_EV_CODES > 8 && sizeof(fe_event_t) / 8 > 16,
               "the codes fit two words, both used; the event spans both");
_Static_assert(offsetof(jrec_event_t, key) == sizeof(fe_event_t),
               "the tail follows the event");

/* Bytes that carry w's value: ceil(significant bits / 8), 0 for 0.  No
 * branch on data (clz of 0 is undefined, hence w | 1). */
static inline unsigned jrec_ev_len(uint64_t w) {
  return (unsigned)(71 - __builtin_clzll(w | 1)) / 8 * (w != 0);
}

/* One word of an entry: stored whole at p (the caller leaves
 * JREC_EV_SLACK bytes of room); returns its length, by which the caller
 * moves p. */
static inline unsigned jrec_ev_put(uint8_t *p, uint64_t w) {
  memcpy(p, &w, 8);
  return jrec_ev_len(w);
}

/* Writes an entry at out: ev (without seq and verdict), then
 * tail, the jrec_event_t's words after the event (key, fingerprint,
 * redrive_of, flags and reserved), then user_len bytes of user.  out has
 * room for JREC_EV_MAX(user_len) + JREC_EV_SLACK bytes.  Returns the
 * entry's length.  Reads each word once, straight from the ring slot; the
 * loops are unrolled so that the codes stay in registers and the only
 * chain from word to word is the cursor's add (an array of codes or of
 * lengths would go through memory, a store-to-load chain per word:
 * measured 2.4 times slower). */
#define JREC_EV_TAIL (JREC_EV_WORDS - sizeof(fe_event_t) / 8)
static inline uint32_t jrec_ev_encode(uint8_t *out, const fe_event_t *ev,
                                      const uint64_t tail[JREC_EV_TAIL],
                                      const void *user, uint32_t user_len) {
  const uint8_t *e = (const uint8_t *)ev;
  uint8_t *p = out + JREC_EV_CODES;
  uint64_t c0 = 0, c1 = 0; /* the codes of words 0-15 and 16-23 */
  /* Words 0 and 1, seq and verdict, are never journaled and never read (a
   * stage parallel to the journal may be writing the verdict). */
#pragma GCC unroll 16
  for (unsigned i = 2; i < 16; i++) {
    uint64_t w;
    memcpy(&w, e + 8 * i, 8);
    unsigned len = jrec_ev_put(p, w);
    p += len;
    c0 |= (uint64_t)len << (4 * i);
  }
#pragma GCC unroll 8
  for (unsigned i = 16; i < JREC_EV_WORDS; i++) {
    uint64_t w;
    if (i < sizeof(fe_event_t) / 8)
      memcpy(&w, e + 8 * i, 8);
    else
      w = tail[i - sizeof(fe_event_t) / 8];
    unsigned len = jrec_ev_put(p, w);
    p += len;
    c1 |= (uint64_t)len << (4 * (i - 16));
  }
  memcpy(out, &c0, 8); /* little endian: word 0's nibble first */
  memcpy(out + 8, &c1, JREC_EV_CODES - 8);
  if (user_len != 0) /* user may be NULL then */
    memcpy(p, user, user_len);
  return (uint32_t)(p - out) + user_len;
}

/* Reads the entry at in (avail bytes left in the record) into
 * *r and user_len bytes into user.  Returns the entry's length, or 0 when
 * it is malformed (a length over 8, a non-zero nibble past the last word,
 * a journaled seq or verdict, bytes beyond avail). */
static inline uint32_t jrec_ev_decode(const uint8_t *in, size_t avail,
                                      uint32_t user_len, jrec_event_t *r,
                                      void *user) {
  if (avail < JREC_EV_CODES)
    return 0;
  uint64_t w[JREC_EV_WORDS];
  size_t used = JREC_EV_CODES;
  for (unsigned i = 0; i < 2 * JREC_EV_CODES; i++) {
    unsigned len = (in[i / 2] >> (4 * (i & 1))) & 15u;
    if (i >= JREC_EV_WORDS || i < 2) {
      if (len != 0)
        return 0;
      if (i < 2)
        w[i] = 0;
      continue;
    }
    if (len > 8 || avail - used < len)
      return 0;
    w[i] = 0;
    memcpy(&w[i], in + used, len);
    used += len;
  }
  if (avail - used < user_len)
    return 0;
  memcpy(r, w, sizeof w);
  if (user_len != 0) /* user may be NULL then */
    memcpy(user, in + used, user_len);
  return (uint32_t)(used + user_len);
}

/* FE_JREC_INTENT: the execution stage is about to send event eid. */
typedef struct jrec_intent {
  uint64_t eid;
} jrec_intent_t;

/* FE_JREC_OUTCOME: a group of finished events.  Followed by `count`
 * entries, each a jrec_outcome_t and then, in this order, the optional
 * parts its flags name (entry_size covers them all), or a run
 * (jrec_out_run_t).  Most events finish completed with nothing to add:
 * consecutive ones share one 24-byte run entry, so a batch of plain
 * completions costs one entry, not one per event: on a page-cache-bound
 * journal the bytes written are the pipeline's cost.  Recovery reads this
 * version only. */
#define FE_JREC_OUTCOME_VERSION 3

typedef struct jrec_outcomes {
  uint32_t version;    /* FE_JREC_OUTCOME_VERSION */
  uint32_t count;
  uint32_t user_len;   /* user bytes carried by dead-letter entries */
  uint32_t reserved;
} jrec_outcomes_t;

#define JREC_OUT_KEY 1u    /* jrec_out_key_t follows: restore the key */
#define JREC_OUT_DETAIL 2u /* a whole fe_idem_outcome_t follows: the host's
                              on_outcome set more than status, reason and
                              ref = eid */
#define JREC_OUT_DL 4u     /* jrec_out_dl_t follows, then the event and its
                              user area as in FE_JREC_EVENT (so the DLQ can
                              be rebuilt without the event record) */
#define JREC_OUT_ALL (JREC_OUT_KEY | JREC_OUT_DETAIL | JREC_OUT_DL)
#define JREC_OUT_RUN 8u    /* alone: the entry is a jrec_out_run_t */

typedef struct jrec_outcome {
  uint64_t eid;
  uint32_t entry_size; /* this entry with its parts, a multiple of 8 */
  uint32_t flags;      /* JREC_OUT_* */
  int32_t status;      /* fe_idem_status_t or the host's */
  uint32_t reason;
  uint32_t stage;      /* rejecting / failing stage, or UINT32_MAX */
  uint32_t reserved;
} jrec_outcome_t;

/* A run: `count` events with consecutive eids from eid that all
 * completed with nothing to add (status FE_IDEM_COMPLETED, reason 0, no
 * stage, no key, no detail).  The outcome stage of a pipeline where most
 * orders complete writes one such entry per batch instead of one entry per
 * event. */
typedef struct jrec_out_run {
  uint64_t eid;        /* the first */
  uint32_t entry_size; /* sizeof(jrec_out_run_t) */
  uint32_t flags;      /* JREC_OUT_RUN */
  uint32_t count;      /* 1 .. JREC_RUN_MAX */
  uint32_t reserved;   /* 0 */
} jrec_out_run_t;

/* A run never spans more than one outcome stage batch (FE_BATCH_CHUNK
 * events); a reader refuses a longer one rather than spend minutes
 * walking a corrupt count. */
#define JREC_RUN_MAX 65536u

typedef struct jrec_out_key {
  fe_idem_key_t key;   /* as in its event */
  uint64_t fingerprint;
  uint64_t wall_ns;    /* when it finished (CLOCK_REALTIME): the entry's
                          retention runs from here */
} jrec_out_key_t;

#define JREC_DL_TEXT 48

typedef struct jrec_out_dl {
  uint64_t wall_ns;    /* when it was dead-lettered (CLOCK_REALTIME) */
  uint32_t kind;       /* fe_dlq_kind_t */
  uint32_t attempts;
  uint32_t redrives;
  uint32_t reserved;
  char text[JREC_DL_TEXT];
} jrec_out_dl_t;

/* Reads the outcome entry at p (avail bytes left in the record) into *o
 * and the number of events it covers into *events (1, or a run's count; a
 * run reads as its first event, completed).  Checks the
 * entry's size against its flags and avail.  Returns the entry's size, or
 * 0 when it is malformed.  The parts that follow the header are the
 * caller's to read, in the order of jrec_outcome_t's flags. */
static inline uint32_t jrec_out_read(const uint8_t *p, size_t avail,
                                     jrec_outcome_t *o, uint32_t *events) {
  if (avail < 16)
    return 0;
  memcpy(o, p, 16); /* eid, entry_size, flags: common to both layouts */
  if (o->flags == JREC_OUT_RUN) {
    jrec_out_run_t run;
    if (o->entry_size != sizeof run || avail < sizeof run)
      return 0;
    memcpy(&run, p, sizeof run);
    if (run.count == 0 || run.count > JREC_RUN_MAX || run.reserved != 0 ||
        run.eid + run.count < run.eid)
      return 0;
    o->status = FE_IDEM_COMPLETED;
    o->reason = 0;
    o->stage = UINT32_MAX;
    o->reserved = 0;
    *events = run.count;
    return o->entry_size;
  }
  if (avail < sizeof *o)
    return 0;
  memcpy(o, p, sizeof *o);
  size_t need = sizeof *o;
  need += o->flags & JREC_OUT_KEY ? sizeof(jrec_out_key_t) : 0;
  need += o->flags & JREC_OUT_DETAIL ? sizeof(fe_idem_outcome_t) : 0;
  need += o->flags & JREC_OUT_DL ? sizeof(jrec_out_dl_t) + sizeof(jrec_event_t)
                                 : 0;
  if ((o->flags & ~JREC_OUT_ALL) != 0 || o->entry_size % 8 != 0 ||
      o->entry_size < need || o->entry_size > avail)
    return 0;
  *events = 1;
  return o->entry_size;
}

/* FE_JREC_DEAD_LETTER: an operator purged a dead letter from the DLQ, so
 * recovery must not put it back.  (A redrive needs no record of its own:
 * the redriven event's record names the dead letter in redrive_of.) */
#define JREC_DLQ_PURGED 1u

typedef struct jrec_dlq {
  uint32_t op;         /* JREC_DLQ_PURGED */
  uint32_t reserved;
  uint64_t eid;        /* the dead letter's event id */
} jrec_dlq_t;

#endif /* FE_JREC_H */
