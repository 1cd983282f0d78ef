/*
 * libfinevent: the reason codes the library itself gives.
 *
 * A reject, retry or dead letter carries a reason code (1..FE_REASON_MAX,
 * see bus.h).  Most reasons are the host's own: its handlers pick them.  A
 * few are given by the library when it, not a handler, rejects or fails an
 * event.  Those live in the one list below, which generates the constants
 * FE_REASON_<name>, fe_reason_name() and fe_reason_meaning().
 *
 * Codes FE_REASON_RESERVED_MIN..FE_REASON_MAX belong to the library; a
 * host's own reasons stay in 1..FE_REASON_RESERVED_MIN-1 so that a dead
 * letter's reason always says who decided it.  Codes in the reserved range
 * that are not in the list are unassigned today and may be assigned later.
 */
#ifndef FINEVENT_REASON_H
#define FINEVENT_REASON_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first code the library reserves; the last is FE_REASON_MAX (255). */
#define FE_REASON_RESERVED_MIN 224

/*
 * X(name, value, meaning).  Values are stable: never renumber.  Layout of
 * the reserved range:
 *   224..239  compliance rules (one code per rule; the compliance module
 *             appends its entries here)
 *   240..251  free
 *   252..255  the bus, the gateway and the saga coordinator
 */
#define FE_REASON_MAP(X)                                                      \
  X(JOURNAL,      252, "the journal could not make the record durable: "      \
                       "the event was not processed (bus) or the saga step "  \
                       "did not run (saga coordinator)")                      \
  X(NO_VENUE,     253, "gateway: the venue function chose no configured "     \
                       "venue")                                               \
  X(CIRCUIT_OPEN, 254, "gateway: the venue's circuit breaker is open; the "   \
                       "order was not sent")                                  \
  X(SAGA_TIMEOUT, 255, "saga: the step's deadline passed without a result")

typedef enum fe_reason {
#define FE__REASON_ENUM(name, value, meaning) FE_REASON_##name = (value),
  FE_REASON_MAP(FE__REASON_ENUM)
#undef FE__REASON_ENUM
} fe_reason_t;

/* Returns the symbolic name of a library reason without the FE_REASON_
 * prefix ("CIRCUIT_OPEN"), or NULL for any other value (a host's own
 * reason, an unassigned reserved code, 0).  Thread-safe, cannot fail. */
FE_API const char *fe_reason_name(uint32_t reason);

/* Returns a static sentence saying what a library reason means, or NULL
 * for any other value.  Thread-safe, cannot fail. */
FE_API const char *fe_reason_meaning(uint32_t reason);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_REASON_H */
