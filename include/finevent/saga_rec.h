/*
 * libfinevent: the saga coordinator's records (see saga.h).  Their format
 * is an on-disk contract of its own - a journal or a host's log keeps
 * them across versions of the library - so it lives apart from the
 * coordinator's API.
 */
#ifndef FINEVENT_SAGA_REC_H
#define FINEVENT_SAGA_REC_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fe_saga_coord fe_saga_coord_t;

/*
 * Records.  Each is one fe_saga_rec_t header followed by ctx_len bytes of
 * context, in the host's byte order (little-endian on x86-64 and arm64),
 * 8-byte aligned when the buffer is.  Every record carries the saga's
 * whole state after the change (state, step, attempt, phase, the mask of
 * completed steps not yet compensated, flags, the armed token and the
 * deadline in wall-clock ns), so replay keeps only the newest record per
 * saga; the context is carried by START and whenever an invocation changed
 * it, so a journal that compacts must keep, per live saga, its newest
 * record and the newest one with a context.  Every record also carries
 * the salt and the generation high-water: replay takes the largest, so
 * ids and tokens are never reused as long as the newest record logged is
 * replayed (a journal that drops finished sagas keeps its last segment).
 *
 *   START   taken up; context always                (before its first step)
 *   STEP    an action/compensation is about to run  (IN DOUBT until the
 *           next record of the saga)
 *   RESULT  its result and the state it led to: RUNNING (next step),
 *           WAITING (token, deadline), BACKOFF (deadline), COMPENSATING,
 *           STUCK
 *           (a timeout is a RESULT: FE_SAGA_RETRY, FE_SAGA_REASON_TIMEOUT)
 *   HEARTBEAT  a heartbeat moved a WAITING step's deadline
 *   ABORT   an abort applied (state COMPENSATING; with nothing to
 *           compensate, END alone)
 *   REDRIVE a STUCK saga resumed
 *   END     terminal state; the saga's slot is free after it
 *
 * The checksum is XXH3-64 of the header (checksum field zero) and the
 * context.  def_hash is XXH3-64 over the definition's name and every
 * step's name and kind: replaying into a coordinator whose definition of
 * that name has other steps fails with FE_ENOTFOUND.
 */
#define FE_SAGA_REC_MAGIC UINT32_C(0x47534546) /* "FESG" */
#define FE_SAGA_REC_VERSION 1

typedef enum fe_saga_rec_type {
  FE_SAGA_REC_START = 1,
  FE_SAGA_REC_STEP = 2,
  FE_SAGA_REC_RESULT = 3,
  FE_SAGA_REC_HEARTBEAT = 4,
  FE_SAGA_REC_ABORT = 5,
  FE_SAGA_REC_REDRIVE = 6,
  FE_SAGA_REC_END = 7
} fe_saga_rec_type_t;

/* fe_saga_rec_t.flags */
#define FE_SAGA_RECF_PNR 1u    /* the point of no return is passed */
#define FE_SAGA_RECF_COMP 2u   /* compensation phase */
#define FE_SAGA_RECF_UNDONE 4u /* some compensation completed (the end is
                                  then COMPENSATED, not FAILED) */
#define FE_SAGA_RECF_DURABLE 8u /* STEP of a durable step: a log hook must
                                   make it durable before it returns (see
                                   FE_SAGA_STEP_DURABLE); replay ignores it */

typedef struct fe_saga_rec {
  uint32_t magic;        /* FE_SAGA_REC_MAGIC */
  uint16_t version;      /* FE_SAGA_REC_VERSION */
  uint16_t type;         /* fe_saga_rec_type_t */
  uint32_t len;          /* bytes: sizeof(fe_saga_rec_t) + ctx_len */
  uint32_t ctx_len;      /* 0, or the coordinator's ctx_size */
  uint64_t saga_id;
  uint64_t def_hash;
  uint64_t salt;         /* the coordinator's token salt */
  uint64_t gen_hw;       /* id/token generation high-water */
  uint64_t token;        /* the armed token, 0 if none */
  uint64_t wall_ns;      /* wall clock when logged */
  uint64_t deadline_wall_ns; /* WAITING with a timeout, BACKOFF: when it
                                ends; else 0 */
  uint32_t state;        /* fe_saga_state_t after the change */
  uint32_t step;
  uint32_t attempt;      /* attempts of that step (action or compensation) */
  uint32_t result;       /* RESULT and END: the fe_saga_result_t that led
                            to it; else 0 */
  uint32_t reason;       /* the saga's reason (see fe_saga_info_t) */
  uint32_t done_mask;    /* bit i: step i completed and not compensated */
  uint32_t flags;        /* FE_SAGA_RECF_* */
  uint32_t reserved;
  uint64_t checksum;
} fe_saga_rec_t;

/* Applies one record to c, before it is opened.  Records must come in the
 * order they were logged; a record older than what c already holds for its
 * saga (a duplicate) is skipped and returns 0.
 *   rec, len  in: read during the call only; any alignment.
 * Returns 0; FE_EINVAL (c or rec NULL); FE_ECORRUPT (len shorter than the
 * header or than its len field says, bad magic, bad checksum, an unknown
 * type or state, a saga whose slot holds another live saga, a record the
 * coordinator never writes: an END in a live state or another type in a
 * terminal one, completed steps beyond the definition, the compensation
 * of a step that has none); FE_EVERSION
 * (another version); FE_ENOTFOUND (no definition with that hash); FE_ERANGE
 * (the saga's slot is beyond max_sagas, a step beyond its definition, a
 * context of another size); FE_EMISMATCH (a salt other than the one the
 * first record gave); FE_ESTATE (c is open).  On failure c is unchanged.
 * One thread, before open; no allocation. */
FE_API int fe_saga_replay(fe_saga_coord_t *c, const void *rec, uint32_t len);

/* "START", "STEP", ... "END", or "UNKNOWN".  Static; cannot fail. */
FE_API const char *fe_saga_rec_type_name(uint32_t type);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_SAGA_REC_H */
