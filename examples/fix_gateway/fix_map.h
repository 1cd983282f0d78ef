/*
 * fix_map.h: FIX 4.4 fields -> fe_order_t, and back to FIX values.
 *
 * Plain C11 with no QuickFIX in it, so that the libFuzzer harness
 * (test/fuzz/fuzz_fix_map.c) and the cmocka suite (test/test_fix_map.c)
 * exercise exactly the code the gateway runs.  The gateway hands it the
 * body fields of a parsed QuickFIX message; the fuzzer hands it raw bytes
 * cut at SOH by fgw_split().
 *
 * The mapping decides, for a NewOrderSingle (D) or an OrderCancelRequest
 * (F), one of four answers (fgw_verdict_t.kind):
 *   FGW_OK               the order is filled in: submit it;
 *   FGW_SESSION_REJECT   the message is malformed: Reject(3) with
 *                        SessionRejectReason `reason` and RefTagID `tag`
 *                        (1 required tag missing, 4 tag without value,
 *                        5 value out of range, 6 bad data format, 13 tag
 *                        repeated);
 *   FGW_BUSINESS_REJECT  BusinessMessageReject(j), BusinessRejectReason
 *                        `reason` (5: conditionally required field
 *                        missing, e.g. Price of a limit order), RefTagID;
 *   FGW_ORDER_REJECT     well formed but not representable as an order
 *                        (fractional quantity, non-numeric account, a
 *                        price finer than 10^-8, a symbol over 16 bytes):
 *                        an ExecutionReport rejected with OrdRejReason
 *                        `reason`; the order is filled in as far as it
 *                        could be, for the report's echoed fields.
 * Checks run in a fixed order: presence and format of every field first
 * (session level), then what the order can hold (business level).
 *
 * Prices are parsed from their decimal text straight into FE_PRICE_SCALE
 * fixed point (10^-8): "190.25" is 19025000000 exactly; no double is
 * involved anywhere, and a price with a non-zero digit past the eighth
 * decimal is refused rather than rounded.
 *
 * Every function is reentrant and thread-safe (no state), never allocates,
 * and accepts any bytes: lengths are explicit, values need not be
 * NUL-terminated, NULL pointers return FGW_EINVAL.
 */
#ifndef FIX_MAP_H
#define FIX_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <finevent/event.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FGW_SOH '\001'

/* Parse errors of the value parsers (negative, like the library's). */
#define FGW_EINVAL (-1)    /* NULL argument */
#define FGW_EFORMAT (-2)   /* not the FIX data type's syntax */
#define FGW_EPRECISION (-3)/* finer than the target can hold */
#define FGW_ERANGE (-4)    /* does not fit */

/* One tag=value field; val points into the caller's buffer, not NUL
 * terminated. */
typedef struct fgw_field {
  int tag;
  const char *val;
  size_t len;
} fgw_field_t;

enum fgw_kind {
  FGW_OK = 0,
  FGW_SESSION_REJECT = 1,
  FGW_BUSINESS_REJECT = 2,
  FGW_ORDER_REJECT = 3
};

/* What to answer; text is static storage. */
typedef struct fgw_verdict {
  int kind;   /* enum fgw_kind */
  int reason; /* SessionRejectReason, BusinessRejectReason or OrdRejReason */
  int tag;    /* RefTagID for the two reject messages, else 0 */
  const char *text;
} fgw_verdict_t;

/* The gateway's reject reasons inside the bus (fe_reject(ctx, r)): the
 * "library reason codes" its risk and execution stages give, 1..250, and
 * the library's own (FE_REASON_CIRCUIT_OPEN, FE_REASON_NO_VENUE). */
enum fgw_reason {
  FGW_R_UNKNOWN_SYMBOL = 1, /* not in the instrument table */
  FGW_R_BAD_QUANTITY = 2,   /* <= 0 or above the per-order maximum */
  FGW_R_NOTIONAL = 3,       /* quantity x price over the per-order limit */
  FGW_R_BAD_PRICE = 4,      /* limit price <= 0 */
  FGW_R_UNSUPPORTED = 5,    /* stop orders: the venue takes none */
  FGW_R_UNKNOWN_ACCOUNT = 6,/* account 0 */
  FGW_R_VENUE_CLOSED = 7,   /* the venue refused: instrument halted */
  FGW_R_CXL_UNKNOWN = 8,    /* cancel: no such order at the venue */
  FGW_R_CXL_TOO_LATE = 9    /* cancel: already filled or cancelled */
};

/* Splits buf (tag=value<SOH>...) into at most max fields.  The last field
 * may lack its SOH.  Returns the number of fields (>= 0), FGW_EFORMAT (a
 * tag that is not 1..9 digits with no leading zero, a field without '=',
 * an empty field), FGW_ERANGE (more than max fields), FGW_EINVAL. */
int fgw_split(const char *buf, size_t len, fgw_field_t *out, size_t max);

/* Index of the first field with tag among f[0..n-1], or -1.  *count (may
 * be NULL) gets how many fields have it. */
int fgw_find(const fgw_field_t *f, size_t n, int tag, int *count);

/* FIX Price/float text -> FE_PRICE_SCALE fixed point: optional '-',
 * digits, optional '.' and digits (at least one digit in all).  Returns 0,
 * FGW_EFORMAT, FGW_EPRECISION (a non-zero digit past the 8th decimal),
 * FGW_ERANGE (beyond int64_t), FGW_EINVAL. */
int fgw_parse_price(const char *s, size_t len, int64_t *out);

/* FIX Qty text (the float syntax) -> whole units.  Returns 0, FGW_EFORMAT,
 * FGW_EPRECISION (a non-zero fraction), FGW_ERANGE, FGW_EINVAL. */
int fgw_parse_qty(const char *s, size_t len, int64_t *out);

/* FIX UTCTimestamp "YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]" -> ns
 * since the epoch (seconds 0..60, years 1970..2261).  Returns 0,
 * FGW_EFORMAT, FGW_ERANGE, FGW_EINVAL. */
int fgw_parse_utc(const char *s, size_t len, uint64_t *out);

/* Fixed point -> shortest exact decimal ("190.25", "-0.00000001", "7").
 * Writes a NUL-terminated string into buf and returns its length, or
 * FGW_ERANGE when cap is too small (24 bytes always suffice), FGW_EINVAL. */
int fgw_format_price(int64_t p, char *buf, size_t cap);

/* NewOrderSingle(D) body fields -> *o (zeroed first; recv_ts_ns is left 0
 * for the caller).  Required: ClOrdID 11, Account 1 (this gateway keys
 * idempotency by account, so it requires it), Symbol 55, Side 54
 * (1, 2, 5), OrderQty 38, OrdType 40 (1..4), TransactTime 60; Price 44
 * for OrdType 2 and 4 (BusinessMessageReject 5 when missing); TimeInForce
 * 59 optional (0, 1, 3, 4, 6; Day when absent) and ExpireTime 126 for 6.
 * Returns v->kind (FGW_OK ...), or FGW_EINVAL for a NULL pointer (with n
 * > 0 for f). */
int fgw_map_new_order(const fgw_field_t *f, size_t n, fe_order_t *o,
                      fgw_verdict_t *v);

/* OrderCancelRequest(F) body fields -> *o (the cancel's own ClOrdID in
 * client_order_id, Account, Symbol, Side, OrderQty when given) and
 * orig (OrigClOrdID 41, NUL padded).  Required: 11, 41, 1, 55, 54, 60.
 * Returns as fgw_map_new_order(). */
int fgw_map_cancel(const fgw_field_t *f, size_t n, fe_order_t *o,
                   char orig[FE_CLORDID_MAX], fgw_verdict_t *v);

/* OrdRejReason (103) and a text for an order the bus rejected at a stage
 * with reason (enum fgw_reason, FE_REASON_CIRCUIT_OPEN, ...); dead is 1
 * when the order was dead-lettered instead.  Never fails: unknown reasons
 * give 99 (Other). */
int fgw_ord_rej_reason(uint32_t reason, int dead, const char **text);

/* OrdRejReason and text for fe_bus_submit()'s refusals before the ring
 * (FE_EHALTED, FE_ETHROTTLED, FE_EMISMATCH (6, duplicate order),
 * FE_ETABLEFULL, FE_ETIMEDOUT, ...).  Never fails. */
int fgw_ord_rej_error(int fe_err, const char **text);

/* CxlRejReason (102) for a cancel the bus rejected with reason: 1 unknown
 * order, 0 too late, 2 (broker option) otherwise. */
int fgw_cxl_rej_reason(uint32_t reason);

#ifdef __cplusplus
}
#endif
#endif /* FIX_MAP_H */
