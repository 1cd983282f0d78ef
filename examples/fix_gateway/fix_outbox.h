/*
 * fix_outbox.h: the lock-free hand-off from the threads that decide an
 * answer to the one thread that sends it.
 *
 * One single-producer/single-consumer ck_ring per producer, of reports
 * copied by value (CK_RING_PROTOTYPE): the bus's outcome path (the journal
 * worker) is one producer, each FIX session's thread another.  The sender
 * thread is the only consumer; it drains the rings round-robin and parks on
 * a semaphore when all are empty.  A producer pays a system call only when
 * the consumer is parked.
 *
 * C, not C++: ck_ring's inline functions do not compile as C++.
 */
#ifndef FIX_OUTBOX_H
#define FIX_OUTBOX_H

#include <stdint.h>

#include <finevent/event.h>

#ifdef __cplusplus
extern "C" {
#endif

enum fgw_report_kind {
  FGW_REP_NEW = 1,          /* ExecutionReport 150=0 39=0: acknowledged */
  FGW_REP_FILL = 2,         /* ExecutionReport 150=F 39=1|2 */
  FGW_REP_REJECT = 3,       /* ExecutionReport 150=8 39=8, 103 */
  FGW_REP_STATUS = 4,       /* ExecutionReport 150=I: a stored outcome */
  FGW_REP_CANCELED = 5,     /* ExecutionReport 150=4 39=4 */
  FGW_REP_CANCEL_REJECT = 6, /* OrderCancelReject(9), 102 */
  FGW_REP_SESSION_REJECT = 7,/* Reject(3): 373, 371, 45, 372 */
  FGW_REP_BUSINESS_REJECT = 8/* BusinessMessageReject(j): 380, 45, 372 */
};

/* One answer, everything the sender needs to build the FIX message. */
typedef struct fgw_report {
  uint16_t kind;         /* enum fgw_report_kind */
  uint16_t session;      /* index into the gateway's session table */
  char ord_status;       /* tag 39 */
  char side;             /* tag 54 (FIX value) */
  char pad[2];
  int32_t reason;        /* 103, 102, 373 or 380 */
  int32_t ref_tag;       /* Reject(3): RefTagID */
  uint32_t ref_seq;      /* Reject(3), (j): RefSeqNum */
  char ref_msg_type[4];  /* Reject(3), (j): RefMsgType */
  uint32_t exec_n;       /* makes ExecID unique: fill number, ... */
  int64_t order_qty, last_qty, cum_qty, leaves_qty;
  int64_t last_px, avg_px; /* FE_PRICE_SCALE */
  char clordid[FE_CLORDID_MAX + 1];
  char orig_clordid[FE_CLORDID_MAX + 1];
  char order_id[FE_CLORDID_MAX + 1];
  char symbol[FE_SYMBOL_MAX + 1];
  char text[80];
} fgw_report_t;

typedef struct fgw_outbox fgw_outbox_t;

/* producers rings of capacity slots each (a power of two >= 4; holds
 * capacity - 1).  Returns 0, -1 on bad arguments or no memory. */
int fgw_outbox_create(uint32_t producers, uint32_t capacity,
                      fgw_outbox_t **out);

/* Frees it.  Accepts NULL.  No other call may run. */
void fgw_outbox_destroy(fgw_outbox_t *ob);

/* Producer p (0..producers-1; one thread at a time per p) hands r over
 * (copied).  While p's ring is full it waits, yielding, for up to
 * timeout_ns: backpressure onto the producer, but bounded, so that a
 * consumer stuck in a blocking send to one slow client cannot stall the
 * producer (the bus worker) for good.  Returns 0, or -1 (bad p, still full
 * at the deadline, or the outbox was closed while waiting: r dropped). */
int fgw_outbox_put(fgw_outbox_t *ob, uint32_t p, const fgw_report_t *r,
                   uint64_t timeout_ns);

/* The consumer: moves up to max reports into out, round-robin over the
 * producers; when none is waiting, parks up to timeout_ns for one.
 * Returns the number taken (0 on timeout), or -1 once closed and empty. */
int fgw_outbox_take(fgw_outbox_t *ob, fgw_report_t *out, int max,
                    uint64_t timeout_ns);

/* Wakes the consumer; from now on take() returns -1 once the rings are
 * empty, and put() fails instead of waiting.  Any thread. */
void fgw_outbox_close(fgw_outbox_t *ob);

/* Reports handed over by producer p so far (relaxed: a statistic). */
uint64_t fgw_outbox_count(const fgw_outbox_t *ob, uint32_t p);

#ifdef __cplusplus
}
#endif
#endif /* FIX_OUTBOX_H */
