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
 *   224..239  compliance rules (compliance.h; fe_compliance_fix_reason()
 *             maps each onto FIX OrdRejReason)
 *   240       compliance: its state tables are full (fails closed)
 *   241..251  free
 *   252..255  the bus, the gateway and the saga coordinator
 */
#define FE_REASON_MAP(X)                                                      \
  X(CR_UNAUTHORIZED, 224, "compliance: the account is not on the "           \
                          "authorized list")                                  \
  X(CR_RESTRICTED,   225, "compliance: the symbol is restricted")             \
  X(CR_HALTED,       226, "compliance: trading is halted for the account")    \
  X(CR_REDUCE_ONLY,  227, "compliance: the account may only reduce its "      \
                          "position")                                         \
  X(CR_THROTTLED,    228, "compliance: the account's message rate is "        \
                          "exceeded")                                         \
  X(CR_BAD_ORDER,    229, "compliance: quantity, side, type or value "        \
                          "invalid, or the client order id is already open")  \
  X(CR_MAX_QTY,      230, "compliance: order quantity above the maximum")     \
  X(CR_NO_REFERENCE, 231, "compliance: a market order with no reference "     \
                          "price")                                            \
  X(CR_COLLAR,       232, "compliance: price outside the collar around the "  \
                          "reference price")                                  \
  X(CR_MAX_NOTIONAL, 233, "compliance: order notional above the maximum")     \
  X(CR_DUPLICATE,    234, "compliance: same account, symbol, side, quantity " \
                          "and price within the duplicate window")            \
  X(CR_MAX_OPEN,     235, "compliance: too many open orders in the symbol")   \
  X(CR_MAX_POSITION, 236, "compliance: intraday position limit")              \
  X(CR_SELF_MATCH,   237, "compliance: the order would match the "            \
                          "account's own resting order")                      \
  X(CR_CREDIT,       238, "compliance: the account's buying power is "        \
                          "exceeded")                                         \
  X(CR_FIRM_CREDIT,  239, "compliance: the firm's buying power is exceeded")  \
  X(CR_TABLE_FULL,   240, "compliance: a state table is full (fails "         \
                          "closed)")                                          \
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
