/*
 * An event's verdict word: its layout, and reading it.
 *
 * Every reader decodes the word here, so that the public queries
 * (fe_event_rejected, fe_event_dead_lettered), the sink's tally, the
 * ancestor test of the stages and the outcome journal cannot disagree
 * about which stage gave a verdict or why.  The word is given by
 * worker.c's mark() and cleared or voided by the ring; these helpers take
 * a value already loaded (the caller chooses the memory order) and are
 * pure.
 */
#ifndef FE_VERDICT_H
#define FE_VERDICT_H

#include <stdint.h>

/* An event's verdict word: 0 while live; else (stage + 1) << 32, the kind
 * in bits 16..23 (0 reject, 1 dead letter) and the reason in bits 0..15. */
#define FE_VERDICT_DEAD (1ull << 16)
#define FE_VERDICT_KIND_MASK (0xffull << 16)
/* Verdict of a void slot: claimed by a producer that saw stop, published
 * so that sequences stay contiguous, skipped by every stage, not counted. */
#define FE_VERDICT_VOID UINT64_MAX

enum { VERDICT_NONE, VERDICT_REJECTED, VERDICT_DEAD_LETTERED };

typedef struct verdict_info {
  uint32_t kind;   /* VERDICT_*: NONE for a live (0) or void slot */
  uint32_t stage;  /* the stage that gave it; 0 when kind is NONE */
  uint32_t reason; /* its reason code; 0 when kind is NONE */
} verdict_info_t;

/* The stage that gave verdict word v, which must be neither 0 nor
 * FE_VERDICT_VOID.  Cannot fail. */
static inline uint32_t fe__verdict_stage(uint64_t v) {
  return (uint32_t)(v >> 32) - 1;
}

/* Whether verdict word v (not 0, not FE_VERDICT_VOID) dead-letters. */
static inline int fe__verdict_dead(uint64_t v) {
  return (v & FE_VERDICT_DEAD) != 0;
}

/* Decodes verdict word v.  Cannot fail. */
static inline verdict_info_t fe__verdict_decode(uint64_t v) {
  verdict_info_t d = {VERDICT_NONE, 0, 0};
  if (v == 0 || v == FE_VERDICT_VOID)
    return d;
  d.kind = fe__verdict_dead(v) ? VERDICT_DEAD_LETTERED : VERDICT_REJECTED;
  d.stage = fe__verdict_stage(v);
  d.reason = (uint32_t)v & 0xffff;
  return d;
}

#endif
