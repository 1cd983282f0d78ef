/*
 * libfinevent: the event that travels through the ring.
 *
 * Every ring slot holds one fe_event_t followed by a user area whose size is
 * fixed when the bus is created (fe_bus_user_size()).  Events are filled in
 * place by the publisher and read or amended in place by stage handlers; the
 * library never copies them.
 *
 * Money is integers: quantities are whole units (shares, contracts) and
 * prices are signed 64-bit fixed point with FE_PRICE_SCALE units per 1.0 of
 * currency, so 123.45 is 12345000000.  No floating point touches money.
 */
#ifndef FINEVENT_EVENT_H
#define FINEVENT_EVENT_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed-point price scale: 10^8 units per 1.0 (covers crypto lot sizes and
 * keeps +/- 92 billion of price range in an int64_t). */
#define FE_PRICE_SCALE INT64_C(100000000)

#define FE_CLORDID_MAX 32 /* client order id bytes (FIX tag 11), NUL padded */
#define FE_SYMBOL_MAX 16  /* symbol bytes, NUL padded */

typedef enum fe_side {
  FE_SIDE_BUY = 1,
  FE_SIDE_SELL = 2,
  FE_SIDE_SELL_SHORT = 3
} fe_side_t;

typedef enum fe_ord_type {
  FE_ORD_MARKET = 1,
  FE_ORD_LIMIT = 2,
  FE_ORD_STOP = 3,
  FE_ORD_STOP_LIMIT = 4
} fe_ord_type_t;

typedef enum fe_tif {
  FE_TIF_DAY = 1,
  FE_TIF_GTC = 2, /* good till cancel */
  FE_TIF_IOC = 3, /* immediate or cancel */
  FE_TIF_FOK = 4, /* fill or kill */
  FE_TIF_GTD = 5  /* good till date: see fe_order_t.expire_ns */
} fe_tif_t;

/* Event types.  Values from FE_EV_USER upwards are the host's own. */
typedef enum fe_event_type {
  FE_EV_NEW_ORDER = 1,
  FE_EV_CANCEL = 2,
  FE_EV_EXEC_REPORT = 3,
  FE_EV_SETTLE_CONFIRM = 4,
  FE_EV_MARKET_DATA = 5,
  FE_EV_USER = 1024
} fe_event_type_t;

/* The typed order payload.  The fields every stage of an order cascade
 * reads (account, quantity, price) and the one execution writes (notional)
 * share the event's first cache line with the bus's header, so a stage that
 * needs only those touches one line per event; the descriptive fields follow
 * on the next line.  Fixed widths: the layout is the same for every compiler
 * on a 64-bit target. */
typedef struct fe_order {
  uint64_t account;        /* account number: the default sharding key */
  int64_t quantity;        /* whole units; > 0 for a valid order */
  int64_t price;           /* FE_PRICE_SCALE fixed point; 0 for market */
  int64_t notional;        /* for the stages' use, e.g. quantity * price as
                              filled by execution; the bus never reads it */
  uint8_t side;            /* fe_side_t */
  uint8_t type;            /* fe_ord_type_t */
  uint8_t tif;             /* fe_tif_t */
  uint8_t reserved[5];
  /* -- second cache line of the event -- */
  uint64_t client_ts_ns;   /* when the client sent it (CLOCK_REALTIME ns) */
  uint64_t recv_ts_ns;     /* when the host received it (host's clock, ns) */
  uint64_t expire_ns;      /* FE_TIF_GTD expiry (CLOCK_REALTIME ns), else 0 */
  char client_order_id[FE_CLORDID_MAX];
  char symbol[FE_SYMBOL_MAX];
} fe_order_t;

/* W3C trace context (https://www.w3.org/TR/trace-context/) carried by an
 * event: set from an incoming `traceparent` header (fe_traceparent_parse,
 * trace.h) or generated (fe_trace_new).  All-zero trace_id: none.  The
 * bus carries it untouched; audit records and logs copy it. */
typedef struct fe_trace {
  uint8_t trace_id[16]; /* W3C trace-id */
  uint8_t span_id[8];   /* W3C parent-id: the span this event belongs to */
  uint8_t flags;        /* W3C trace-flags (bit 0: sampled) */
  uint8_t reserved[7];
} fe_trace_t;

/* One event: the header the bus maintains, the order payload, the host's
 * correlation id and trace context.  The user area follows the struct
 * (fe_event_user()).  `verdict` and `flags` are opaque: the bus's own
 * encoding, which may change; read an event's fate with
 * fe_event_rejected() and fe_event_dead_lettered(), and never write them. */
typedef struct fe_event {
  uint64_t seq;      /* ring sequence, set by the claim; read-only */
  uint64_t verdict;  /* private to the bus: read with fe_event_rejected() */
  uint32_t type;     /* fe_event_type_t or a host type >= FE_EV_USER; the
                        claim sets FE_EV_NEW_ORDER */
  uint32_t flags;    /* private to the bus: do not touch */
  fe_order_t order;
  uint64_t trace_id; /* host-defined 64-bit correlation id, carried
                        untouched (the saga coordinator's token by
                        default); not the W3C trace id, see trace */
  fe_trace_t trace;  /* W3C trace context, carried untouched */
} __attribute__((aligned(16))) fe_event_t;

/* Start of the user area that follows the event in its slot.  Its size is
 * fe_bus_user_size(); it is 16-byte aligned and zeroed only at create:
 * publishers own its contents. */
static inline void *fe_event_user(fe_event_t *ev) {
  return ev != NULL ? (void *)(ev + 1) : NULL;
}

/* Reads whether an upstream stage rejected ev.  Returns 1 and stores the
 * rejecting stage id and its reason code (either pointer may be NULL) when
 * it did, 0 otherwise.  Call it only from a stage that runs after the event
 * was rejected (a stage downstream of the rejecting one, or after drain):
 * parallel stages may reject concurrently.  0 for ev NULL.  Wait-free,
 * cannot fail. */
FE_API int fe_event_rejected(const fe_event_t *ev, uint32_t *stage,
                             uint32_t *reason);

/* As fe_event_rejected(), for an event a stage dead-lettered (FE_FAIL, or
 * FE_RETRY until its policy gave up).  Wait-free, cannot fail. */
FE_API int fe_event_dead_lettered(const fe_event_t *ev, uint32_t *stage,
                                  uint32_t *reason);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_EVENT_H */
