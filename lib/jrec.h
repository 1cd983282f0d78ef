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
 * entries of `entry_size` bytes: a jrec_outcome_t, and for a dead letter
 * (status FE_IDEM_DEAD_LETTERED) the event and its user area as in
 * FE_JREC_EVENT (so the dead-letter queue can be rebuilt without it). */
typedef struct jrec_outcomes {
  uint32_t version;
  uint32_t count;
  uint32_t user_len;   /* user bytes carried by dead-letter entries */
  uint32_t reserved;
} jrec_outcomes_t;

#define JREC_DL_TEXT 48

typedef struct jrec_outcome {
  uint64_t eid;
  uint64_t wall_ns;        /* when it finished (CLOCK_REALTIME) */
  fe_idem_key_t key;       /* as in its event */
  uint64_t fingerprint;
  uint32_t flags;          /* JREC_EV_KEY */
  uint32_t entry_size;     /* this entry, dead-letter copy included */
  uint32_t stage;          /* rejecting / failing stage, or UINT32_MAX */
  uint32_t dl_kind;        /* dead letter: fe_dlq_kind_t */
  uint32_t dl_attempts;
  uint32_t dl_redrives;
  fe_idem_outcome_t outcome; /* status, reason, ref (= eid), host fields */
  char dl_text[JREC_DL_TEXT];
} jrec_outcome_t;

#endif /* FE_JREC_H */
