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

#define FE_JREC_BUS_VERSION 1

/* FE_JREC_EVENT: a group of events the journaller wrote together.
 * Followed by `count` entries of `entry_size` bytes: a jrec_event_t, then
 * user_len bytes of user area, zero-padded to a multiple of 8. */
typedef struct jrec_events {
  uint32_t version;    /* FE_JREC_BUS_VERSION */
  uint32_t count;
  uint32_t entry_size; /* sizeof(jrec_event_t) + user bytes, rounded to 8 */
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

/* FE_JREC_INTENT: the execution stage is about to send event eid. */
typedef struct jrec_intent {
  uint64_t eid;
} jrec_intent_t;

/* FE_JREC_OUTCOME: a group of finished events.  Followed by `count`
 * entries, each a jrec_outcome_t and then, in this order, the optional
 * parts its flags name; entry_size covers them all.  Most events finish
 * completed with nothing to add, so the common entry is the 32-byte
 * header alone: the outcome stage writes one entry per event, and on a
 * page-cache-bound journal its bytes are the pipeline's cost. */
#define FE_JREC_OUTCOME_VERSION 2

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

typedef struct jrec_outcome {
  uint64_t eid;
  uint32_t entry_size; /* this entry with its parts, a multiple of 8 */
  uint32_t flags;      /* JREC_OUT_* */
  int32_t status;      /* fe_idem_status_t or the host's */
  uint32_t reason;
  uint32_t stage;      /* rejecting / failing stage, or UINT32_MAX */
  uint32_t reserved;
} jrec_outcome_t;

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
