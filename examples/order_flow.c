/*
 * order_flow: a broker's day of order flow on libfinevent, end to end.
 *
 *   client stream (seeded: thousands of accounts, hundreds of symbols,
 *   limit and market orders, cancels, bursts, ~1 % client retries,
 *   ~0.5 % malformed orders, ~0.2 % reused client order ids)
 *     -> fe_bus_submit: idempotency table + journal (exactly once)
 *     -> validation (field checks, parallel to the journal)
 *     -> compliance (notional limit, price collar against the moving
 *        reference prices published as FE_EV_MARKET_DATA, restricted list)
 *     -> execution: fe_gateway_stage around a simulated venue per symbol
 *        (XNAS, XNYS, ARCX), one circuit breaker each; the venue fills,
 *        partially fills, rejects and is sometimes slow; XNYS goes down
 *        for a while: its breaker opens, its orders go to the dead-letter
 *        queue, and once it is back an operator redrive empties the queue
 *     -> booking: every accepted order becomes an order saga
 *        (fe_saga_order_template): reserve buying power -> submit ->
 *        await the fill (the venue's execution report arrives later as an
 *        FE_EV_EXEC_REPORT event) -> settle T+1 on business days (the
 *        custodian's confirmation arrives later as FE_EV_SETTLE_CONFIRM;
 *        some are refused the first time and retried).  An order that
 *        expires unfilled, or that the client cancels in time, is
 *        compensated (cancel at the venue, buying power released).
 *   end of day: the simulated custodian writes a statement file with
 *   deliberate breaks; fe_recon reconciles the broker's settled ledger
 *   against it and must find exactly the injected breaks.
 *
 * The journal, the idempotency table and the DLQ are on, in a temporary
 * directory unless --dir DIR.  Run it again with the same --dir: the bus
 * recovers from the journal, the saga coordinator replays its records,
 * and the same client stream is answered from the idempotency table -
 * nothing reaches a venue twice.
 *
 * Exit status: 0 when every check held (conservation, duplicates, the
 * breaker and the redrive, malformed orders, reconciliation), 1 when one
 * failed, 2 on a usage or setup error.  `order_flow --help` lists the
 * options; --json FILE writes the summary as flat JSON for scripts.
 */
#define _GNU_SOURCE
#include <finevent/finevent.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S FE_PRICE_SCALE
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* ------------------------------------------------------------- options */

typedef struct opts {
  uint64_t orders, accounts, symbols, rate, seed;
  uint32_t trade_date; /* YYYYMMDD */
  const char *dir, *json;
  fe_wait_t wait;
  int metrics_port;    /* -1: none */
  uint64_t linger_ms;  /* keep serving metrics after the run */
  int quiet, progress; /* progress: 1 line on a tty, 0 plain lines */
} opts_t;

static opts_t opt = {.orders = 100000, .accounts = 5000, .symbols = 300,
                     .rate = 0, .seed = 42, .trade_date = 20261204,
                     .wait = FE_WAIT_PARK, .metrics_port = -1};

/* ------------------------------------------------------------ reasons */

enum { /* validation */
  R_BAD_QTY = 1, R_BAD_SIDE = 2, R_BAD_TYPE = 3, R_BAD_PRICE = 4,
  R_BAD_SYMBOL = 5,
  /* compliance */
  R_NOTIONAL = 10, R_COLLAR = 11, R_RESTRICTED = 12,
  /* venue */
  R_VENUE_REJECT = 20, R_VENUE_DOWN = 21,
  /* booking */
  R_SAGA_FULL = 30,
  /* sagas */
  R_NO_FILL = 40, R_CLIENT_CANCEL = 41, R_CUSTODIAN_DK = 42
};
static const char *reason_name(uint32_t r) {
  switch (r) {
  case R_BAD_QTY: return "bad_quantity";
  case R_BAD_SIDE: return "bad_side";
  case R_BAD_TYPE: return "bad_type";
  case R_BAD_PRICE: return "bad_price";
  case R_BAD_SYMBOL: return "unknown_symbol";
  case R_NOTIONAL: return "notional_limit";
  case R_COLLAR: return "price_collar";
  case R_RESTRICTED: return "restricted_symbol";
  case R_VENUE_REJECT: return "venue_reject";
  case R_VENUE_DOWN: return "venue_down";
  case FE_REASON_CIRCUIT_OPEN: return "circuit_open";
  case R_SAGA_FULL: return "saga_table_full";
  default: return "other";
  }
}

#define MAX_NOTIONAL (INT64_C(2000000) * S) /* 2 M per order */

/* The audit trail (audit.h): every order's outcome, every saga's end,
 * breaker changes, redrives and reconciliation breaks, hash-chained and
 * signed by a writer thread off the order path. */
static fe_audit_t *audit;
static uint64_t audit_refused;
static void audit_note(uint32_t decision, uint64_t account, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void audit_note(uint32_t decision, uint64_t account, const char *fmt, ...) {
  char text[FE_AUDIT_DETAIL_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (fe_audit_note(audit, decision, account, text) != 0)
    __atomic_fetch_add(&audit_refused, 1, __ATOMIC_RELAXED);
}
#define COLLAR_PCT 5                        /* limit within 5 % of ref */

/* --------------------------------------------------------- randomness */

static uint64_t mix(uint64_t z) { /* splitmix64's finaliser */
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}
static uint64_t rnd(uint64_t *s) { return mix(*s += UINT64_C(0x9E3779B97F4A7C15)); }
/* A per-order decision that does not depend on thread timing. */
static uint64_t hash2(uint64_t a, uint64_t b) { return mix(a * 0x9E3779B97F4A7C15u ^ mix(b + opt.seed)); }

/* -------------------------------------------------------------- symbols */

/* Symbol i is 3 or 4 letters derived from i; valid() decodes it back. */
static void sym_name(uint32_t i, char out[FE_SYMBOL_MAX]) {
  memset(out, 0, FE_SYMBOL_MAX);
  out[0] = (char)('A' + i % 26);
  out[1] = (char)('A' + (i / 26) % 26);
  out[2] = (char)('A' + (i / 676) % 26);
  if (i >= 17576)
    out[3] = 'X';
}
static int sym_index(const char *s) {
  if (s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' ||
      s[2] > 'Z' || (s[3] != 0 && s[3] != 'X'))
    return -1;
  for (int k = 4; k < FE_SYMBOL_MAX; k++)
    if (s[k] != 0)
      return -1;
  uint32_t i = (uint32_t)(s[0] - 'A') + 26u * (uint32_t)(s[1] - 'A') +
               676u * (uint32_t)(s[2] - 'A') + (s[3] ? 17576u : 0);
  return i < opt.symbols ? (int)i : -1;
}

/* Reference prices: written by the compliance stage from FE_EV_MARKET_DATA
 * events, read by the venue on another worker: relaxed atomics (a price a
 * moment old is what a real venue sees too). */
static int64_t *ref_px;

/* -------------------------------------------------------------- venues */

enum { XNAS, XNYS, ARCX, N_VENUES };
static const char *venue_names[N_VENUES] = {"XNAS", "XNYS", "ARCX"};
static fe_breaker_t *breakers[N_VENUES];
static uint64_t opened[N_VENUES], closed[N_VENUES], transitions[N_VENUES];
static int xnys_down;            /* set by the execution stage's progress */
static uint64_t down_from, down_to; /* order numbers of the outage */
static uint64_t exec_high;       /* highest order number execution saw */
static uint64_t slow_calls;

/* What the venue decided, in the event's user area; later the venue's
 * report.  The fill is decided at acceptance from the order's hash. */
enum { PLAN_FILL = 1, PLAN_PARTIAL = 2, PLAN_EXPIRE = 3 };
typedef struct plan {
  uint32_t kind;        /* PLAN_* */
  uint32_t venue;
  int64_t fill_qty;
  int64_t fill_px;
} plan_t;

typedef struct report {   /* user area of EXEC_REPORT / SETTLE_CONFIRM */
  uint32_t ok;            /* 1 filled / settled, 0 not */
  uint32_t reason;
} report_t;

static uint32_t venue_of(const fe_event_t *ev, void *u) {
  (void)u;
  int i = sym_index(ev->order.symbol);
  return i < 0 ? 0 : (uint32_t)i % N_VENUES;
}

static void on_breaker(const char *name, fe_breaker_state_t from,
                       fe_breaker_state_t to, void *u) {
  uint32_t v = (uint32_t)(uintptr_t)u;
  audit_note(FE_AUDIT_BREAKER, 0, "breaker %s %s -> %s", name,
             fe_breaker_state_name((int)from), fe_breaker_state_name((int)to));
  __atomic_fetch_add(&transitions[v], 1, __ATOMIC_RELAXED);
  if (to == FE_BREAKER_OPEN)
    __atomic_fetch_add(&opened[v], 1, __ATOMIC_RELAXED);
  if (to == FE_BREAKER_CLOSED)
    __atomic_fetch_add(&closed[v], 1, __ATOMIC_RELAXED);
}

static void spin_ns(uint64_t ns) {
  uint64_t end = fe_clock_now_ns() + ns;
  while (fe_clock_now_ns() < end)
    ;
}

/* The venue call: runs on the execution stage's worker. */
static fe_verdict_t venue_send(fe_stage_ctx_t *ctx, fe_event_t *ev,
                               uint32_t venue, void *u) {
  (void)u;
  uint64_t no = ev->trace_id - 1;
  if (no > exec_high)
    exec_high = no; /* this worker only */
  int down = venue == XNYS && exec_high >= down_from && exec_high < down_to;
  __atomic_store_n(&xnys_down, down, __ATOMIC_RELAXED);
  if (down) {
    ctx->text = "XNYS session down";
    return fe_fail(ctx, R_VENUE_DOWN);
  }
  uint64_t h = hash2(no, 7);
  if (h % 1000 < 2) { /* 0.2 %: a slow answer */
    __atomic_fetch_add(&slow_calls, 1, __ATOMIC_RELAXED);
    spin_ns(600 * 1000);
  }
  if (h / 1000 % 100 < 2) /* 2 %: the venue refuses it */
    return fe_reject(ctx, R_VENUE_REJECT);
  int si = sym_index(ev->order.symbol);
  int64_t ref = __atomic_load_n(&ref_px[si], __ATOMIC_RELAXED);
  plan_t *p = fe_event_user(ev);
  p->venue = venue;
  uint64_t f = h / 100000 % 100;
  int market = ev->order.type == FE_ORD_MARKET;
  p->kind = market || f < 80 ? PLAN_FILL : f < 92 ? PLAN_PARTIAL : PLAN_EXPIRE;
  p->fill_qty = p->kind == PLAN_FILL ? ev->order.quantity
                : p->kind == PLAN_PARTIAL
                    ? 1 + (ev->order.quantity - 1) * (int64_t)(30 + f % 60) / 100
                    : 0;
  int buy = ev->order.side == FE_SIDE_BUY;
  p->fill_px = market ? ref
               : buy  ? (ev->order.price < ref ? ev->order.price : ref)
                      : (ev->order.price > ref ? ev->order.price : ref);
  return FE_CONTINUE;
}

/* --------------------------------------------------- per-order outcomes */

/* How each order ended.  Exactly one of these per order that was
 * accepted by fe_bus_submit: the conservation check. */
enum {
  K_NONE, K_REJ_VALIDATION, K_REJ_COMPLIANCE, K_REJ_VENUE, K_REJ_BOOKING,
  K_FILLED, K_PARTIAL, K_CANCELLED, K_EXPIRED, K_SAGA_FAILED, K_DEAD_LETTER,
  K_N
};
static const char *kind_names[K_N] = {
    "none", "rejected_validation", "rejected_compliance", "rejected_venue",
    "rejected_booking", "filled", "partially_filled", "cancelled",
    "expired_compensated", "saga_failed", "dead_lettered"};

/* Written by the journal worker (bus outcomes), the booking stage and the
 * saga coordinator (saga ends); read by main at the end and by the
 * progress line: every field through __atomic, relaxed (each is one
 * writer's value; main reads them after it has seen every order end). */
typedef struct ord {
  uint8_t submitted;   /* fe_bus_submit returned 0 for it */
  uint8_t malformed;   /* the validation reason injected, 0 none */
  uint8_t bus_status;  /* last FE_IDEM_* outcome the bus gave */
  uint8_t bus_stage, bus_reason;
  uint8_t ends;        /* terminal outcomes recorded: must end as 1 */
  uint8_t kind;        /* K_* of the last terminal outcome */
  uint8_t dead_letters;/* times dead-lettered (redrives follow) */
  uint64_t saga_id;
} ord_t;
static ord_t *ords;
static uint64_t kind_count[K_N];
static uint64_t reject_count[256];

static void end_order(uint64_t no, uint8_t kind) {
  __atomic_fetch_add(&ords[no].ends, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&ords[no].kind, kind, __ATOMIC_RELAXED);
  __atomic_fetch_add(&kind_count[kind], 1, __ATOMIC_RELEASE);
}

/* --------------------------------------------------------- latencies */

enum { H_VALIDATION, H_COMPLIANCE, H_EXECUTION, H_BOOKING, H_E2E, H_N };
static const char *hist_names[H_N] = {"validation", "compliance", "execution",
                                      "booking", "end_to_end"};
static fe_hist_t *hists[H_N]; /* each recorded by one stage's one worker */

static void stamp(int h, const fe_event_t *ev) {
  uint64_t now = fe_clock_now_ns();
  if (now > ev->order.recv_ts_ns && ev->order.recv_ts_ns != 0)
    fe_hist_record(hists[h], now - ev->order.recv_ts_ns);
}

/* ------------------------------------------------------ bus stages */

/* The order an event is about (its trace id is order number + 1), or NULL
 * for one the stream did not number. */
static ord_t *ord_of(const fe_event_t *ev) {
  return ev->trace_id >= 1 && ev->trace_id <= opt.orders ? &ords[ev->trace_id - 1]
                                                         : NULL;
}

/* Redriven orders keep their first timestamps: left out of the latencies. */
static int is_redriven(const fe_event_t *ev) {
  const ord_t *o = ord_of(ev);
  return o == NULL || __atomic_load_n(&o->dead_letters, __ATOMIC_RELAXED) != 0;
}

static fe_verdict_t validation(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  const fe_order_t *o = &ev->order;
  if (ev->type == FE_EV_CANCEL)
    return ev->trace_id == 0 ? fe_reject(ctx, R_BAD_QTY) : FE_CONTINUE;
  if (!is_redriven(ev))
    stamp(H_VALIDATION, ev);
  if (o->quantity <= 0 || o->quantity > 1000000)
    return fe_reject(ctx, R_BAD_QTY);
  if (o->side != FE_SIDE_BUY && o->side != FE_SIDE_SELL)
    return fe_reject(ctx, R_BAD_SIDE);
  if (o->type != FE_ORD_MARKET && o->type != FE_ORD_LIMIT)
    return fe_reject(ctx, R_BAD_TYPE);
  if ((o->type == FE_ORD_LIMIT) != (o->price > 0) || o->price < 0)
    return fe_reject(ctx, R_BAD_PRICE);
  if (sym_index(o->symbol) < 0)
    return fe_reject(ctx, R_BAD_SYMBOL);
  return FE_CONTINUE;
}

static fe_verdict_t compliance(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  int si = sym_index(ev->order.symbol);
  if (ev->type == FE_EV_MARKET_DATA) {
    if (si >= 0 && ev->order.price > 0)
      __atomic_store_n(&ref_px[si], ev->order.price, __ATOMIC_RELAXED);
    return FE_CONTINUE;
  }
  if (!is_redriven(ev))
    stamp(H_COMPLIANCE, ev);
  int64_t ref = __atomic_load_n(&ref_px[si], __ATOMIC_RELAXED);
  int64_t px = ev->order.type == FE_ORD_MARKET ? ref : ev->order.price;
  /* quantity <= 10^6 and price < 2^44: the product fits */
  ev->order.notional = ev->order.quantity * px;
  if (ev->order.notional > MAX_NOTIONAL)
    return fe_reject(ctx, R_NOTIONAL);
  if (ev->order.type == FE_ORD_LIMIT &&
      (px > ref + ref * COLLAR_PCT / 100 || px < ref - ref * COLLAR_PCT / 100))
    return fe_reject(ctx, R_COLLAR);
  if (si % 97 == 13)
    return fe_reject(ctx, R_RESTRICTED);
  return FE_CONTINUE;
}

/* The order saga's context (ctx_size 64). */
typedef struct sctx {
  uint64_t account;
  uint32_t order_no, symbol;
  uint8_t side, plan, venue, dk; /* dk: the custodian refuses the first
                                    settlement instruction */
  uint32_t settle_date;
  int64_t fill_qty, fill_px;
  uint32_t trade_date, cancelled;
  uint64_t reserved_cash;
} sctx_t;
_Static_assert(sizeof(sctx_t) <= 64, "saga context fits ctx_size");

static fe_saga_coord_t *coord;
static uint32_t order_def;
static uint64_t cancels_applied, cancels_late, cancels_unknown;

static fe_verdict_t booking(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  uint64_t no = ev->trace_id - 1;
  if (ord_of(ev) == NULL)
    return FE_CONTINUE;
  if (ev->type == FE_EV_CANCEL) {
    uint64_t id = __atomic_load_n(&ords[no].saga_id, __ATOMIC_RELAXED);
    int rc = id ? fe_saga_abort(coord, id, R_CLIENT_CANCEL) : FE_ENOTFOUND;
    __atomic_fetch_add(rc == 0 ? &cancels_applied
                       : rc == FE_ESTATE ? &cancels_late : &cancels_unknown,
                       1, __ATOMIC_RELAXED);
    return FE_CONTINUE;
  }
  if (!is_redriven(ev))
    stamp(H_BOOKING, ev);
  const plan_t *p = fe_event_user(ev);
  sctx_t c;
  memset(&c, 0, sizeof c);
  c.account = ev->order.account;
  c.order_no = (uint32_t)no;
  c.symbol = (uint32_t)sym_index(ev->order.symbol);
  c.side = ev->order.side;
  c.plan = (uint8_t)p->kind;
  c.venue = (uint8_t)p->venue;
  c.dk = hash2(no, 11) % 100 < 3; /* 3 %: the custodian says "don't know" */
  c.fill_qty = p->fill_qty;
  c.fill_px = p->fill_px;
  c.trade_date = opt.trade_date;
  uint64_t id;
  if (fe_saga_start(coord, order_def, &c, sizeof c, &id) != 0)
    return fe_reject(ctx, R_SAGA_FULL);
  __atomic_store_n(&ords[no].saga_id, id, __ATOMIC_RELAXED);
  return FE_CONTINUE;
}

/* Execution's own latency stamp, then the library's gateway stage. */
static fe_gateway_t *gateway;
static fe_verdict_t execution(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (!is_redriven(ev))
    stamp(H_EXECUTION, ev);
  return fe_gateway_stage(ctx, ev, gateway);
}

/* The bus's outcome of every event (journal worker). */
static void on_outcome(const fe_event_t *ev, fe_idem_outcome_t *out, void *u) {
  (void)u;
  if (ev->type != FE_EV_NEW_ORDER || ev->trace_id == 0 ||
      ev->trace_id > opt.orders)
    return;
  uint64_t no = ev->trace_id - 1;
  ord_t *o = &ords[no];
  uint32_t stage = 0, reason = 0;
  if (out->status == FE_IDEM_REJECTED)
    fe_event_rejected(ev, &stage, &reason);
  else if (out->status == FE_IDEM_DEAD_LETTERED)
    fe_event_dead_lettered(ev, &stage, &reason);
  uint32_t decision = out->status == FE_IDEM_COMPLETED ? FE_AUDIT_ACCEPTED
                      : out->status == FE_IDEM_REJECTED ? FE_AUDIT_REJECTED
                                                        : FE_AUDIT_DEAD_LETTERED;
  if (fe_audit_event(audit, ev, out->ref, stage, decision, reason,
                     decision == FE_AUDIT_ACCEPTED ? "booked" : reason_name(reason)) != 0)
    __atomic_fetch_add(&audit_refused, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&o->bus_status, (uint8_t)out->status, __ATOMIC_RELAXED);
  __atomic_store_n(&o->bus_stage, (uint8_t)stage, __ATOMIC_RELAXED);
  __atomic_store_n(&o->bus_reason, (uint8_t)reason, __ATOMIC_RELAXED);
  if (out->status == FE_IDEM_DEAD_LETTERED) {
    __atomic_fetch_add(&o->dead_letters, 1, __ATOMIC_RELAXED);
    return;
  }
  if (!__atomic_load_n(&o->dead_letters, __ATOMIC_RELAXED))
    stamp(H_E2E, ev);
  if (out->status == FE_IDEM_REJECTED) {
    __atomic_fetch_add(&reject_count[reason & 255], 1, __ATOMIC_RELAXED);
    end_order(no, stage == 0 ? K_REJ_VALIDATION : stage == 1 ? K_REJ_COMPLIANCE
                  : stage == 2 ? K_REJ_VENUE : K_REJ_BOOKING);
  }
}

/* ------------------------------------------- the outside world: venue
 * reports and custodian confirmations, later, from their own thread */

typedef struct msg {
  uint64_t due_ns, token;
  uint32_t type, ok, reason, pad;
  uint64_t account;
  uint32_t symbol, order_no;
  int64_t qty, amount;
} msg_t;

typedef struct fifo {
  msg_t *m;
  size_t cap, head, tail; /* tail - head entries */
} fifo_t;

static pthread_mutex_t world_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t world_cv = PTHREAD_COND_INITIALIZER;
static fifo_t fills, settles;
static int world_stop;
static uint64_t world_pending; /* pushed, not yet published */
static fe_bus_t *bus;

/* The custodian's own books (what it confirmed), dense by account and
 * symbol; and the broker's ledger, written by the saga coordinator. */
typedef struct pos { int64_t qty, amount; } pos_t;
static pos_t *custodian_book, *ledger;
static uint64_t settle_refusals;

static void push(fifo_t *f, const msg_t *m) {
  pthread_mutex_lock(&world_mu);
  if (f->tail - f->head == f->cap) { /* grow: the example's outside world */
    size_t nc = f->cap ? f->cap * 2 : 4096;
    msg_t *nm = malloc(nc * sizeof *nm);
    if (nm == NULL) {
      perror("order_flow: out of memory");
      exit(2);
    }
    for (size_t i = f->head; i < f->tail; i++)
      nm[i - f->head] = f->m[i % f->cap];
    free(f->m);
    f->m = nm, f->tail -= f->head, f->head = 0, f->cap = nc;
  }
  f->m[f->tail++ % f->cap] = *m;
  world_pending++;
  pthread_cond_signal(&world_cv);
  pthread_mutex_unlock(&world_mu);
}

static void publish_report(const msg_t *m) {
  fe_order_t o;
  memset(&o, 0, sizeof o);
  o.account = m->account;
  report_t r = {m->ok, m->reason};
  fe_submit_t in = {.type = m->type, .order = &o, .trace_id = m->token,
                    .user_area = &r, .user_len = sizeof r,
                    .timeout_ns = FE_WAIT_FOREVER};
  int rc = fe_bus_submit(bus, &in, NULL);
  if (rc != 0 && rc != FE_ESTOPPED)
    fprintf(stderr, "order_flow: report: %s\n", fe_strerror(rc));
}

static void *world_main(void *u) {
  (void)u;
  pthread_mutex_lock(&world_mu);
  for (;;) {
    uint64_t now = fe_clock_now_ns(), next = UINT64_MAX;
    msg_t m;
    int have = 0;
    fifo_t *qs[2] = {&fills, &settles};
    for (int k = 0; k < 2 && !have; k++) {
      fifo_t *f = qs[k];
      if (f->tail == f->head)
        continue;
      msg_t *h = &f->m[f->head % f->cap];
      if (h->due_ns <= now) {
        m = *h, f->head++, have = 1;
      } else if (h->due_ns < next) {
        next = h->due_ns;
      }
    }
    if (have) {
      pthread_mutex_unlock(&world_mu);
      if (m.type == FE_EV_SETTLE_CONFIRM && m.ok) { /* the custodian books it */
        pos_t *p = &custodian_book[m.account * opt.symbols + m.symbol];
        p->qty += m.qty, p->amount += m.amount;
      }
      publish_report(&m);
      pthread_mutex_lock(&world_mu);
      world_pending--;
      continue;
    }
    if (world_stop)
      break;
    if (next == UINT64_MAX) {
      pthread_cond_wait(&world_cv, &world_mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t wait = next - now, t = (uint64_t)ts.tv_nsec + wait;
      ts.tv_sec += (time_t)(t / SEC), ts.tv_nsec = (long)(t % SEC);
      pthread_cond_timedwait(&world_cv, &world_mu, &ts);
    }
  }
  pthread_mutex_unlock(&world_mu);
  return NULL;
}

/* ------------------------------------------------ the order saga's steps
 * (coordinator thread) */

static int64_t *buying_power; /* per account, fixed point */

static fe_saga_result_t reserve(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  if (x->side == FE_SIDE_BUY && x->reserved_cash == 0) {
    x->reserved_cash = (uint64_t)(x->fill_qty * x->fill_px);
    buying_power[x->account] -= (int64_t)x->reserved_cash;
  }
  return FE_SAGA_DONE;
}
static fe_saga_result_t release(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  buying_power[x->account] += (int64_t)x->reserved_cash;
  x->reserved_cash = 0;
  return FE_SAGA_DONE;
}
/* The order already went out through the bus's gateway stage, whose
 * breaker and intent journal guard the send; the venue accepted it there.
 * This step records that acknowledgement. */
static fe_saga_result_t submit(fe_saga_call_t *c, void *u) {
  (void)c, (void)u;
  return FE_SAGA_DONE;
}
static fe_saga_result_t cancel(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  x->cancelled = 1; /* the venue drops the resting order */
  return FE_SAGA_DONE;
}
static fe_saga_result_t await_fill(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  msg_t m = {.due_ns = fe_clock_now_ns() + 2 * MS, .token = c->token,
             .type = FE_EV_EXEC_REPORT, .ok = x->plan != PLAN_EXPIRE,
             .reason = x->plan == PLAN_EXPIRE ? R_NO_FILL : 0,
             .account = x->account};
  push(&fills, &m);
  return FE_SAGA_PENDING;
}
static fe_saga_result_t settle(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  if (fe_recon_settle_date(x->trade_date, 1, &x->settle_date) != 0)
    return c->reason = R_CUSTODIAN_DK, FE_SAGA_FAIL;
  int64_t sq = x->side == FE_SIDE_BUY ? x->fill_qty : -x->fill_qty;
  int refuse = x->dk && c->attempt == 1;
  msg_t m = {.due_ns = fe_clock_now_ns() + 3 * MS, .token = c->token,
             .type = FE_EV_SETTLE_CONFIRM, .ok = !refuse,
             .reason = refuse ? R_CUSTODIAN_DK : 0, .account = x->account,
             .symbol = x->symbol, .order_no = x->order_no, .qty = sq,
             .amount = -sq * x->fill_px};
  push(&settles, &m);
  return FE_SAGA_PENDING;
}

/* A completion on the bus: the report's ok/reason decide the result. */
static int extract(const fe_event_t *ev, uint64_t *token, fe_saga_result_t *res,
                   uint32_t *reason, void *u) {
  (void)u;
  const report_t *r = fe_event_user((fe_event_t *)ev);
  *token = ev->trace_id;
  if (!r->ok) {
    *res = ev->type == FE_EV_SETTLE_CONFIRM ? FE_SAGA_RETRY : FE_SAGA_FAIL;
    *reason = r->reason;
    if (ev->type == FE_EV_SETTLE_CONFIRM)
      __atomic_fetch_add(&settle_refusals, 1, __ATOMIC_RELAXED);
  }
  return 1;
}

static uint64_t saga_states[FE_SAGA_STATES];
static void on_saga_end(const fe_saga_end_t *e, void *u) {
  (void)u;
  const sctx_t *x = e->ctx;
  __atomic_fetch_add(&saga_states[e->state], 1, __ATOMIC_RELAXED);
  uint8_t k = K_SAGA_FAILED;
  if (e->state == FE_SAGA_COMPLETED) {
    k = x->plan == PLAN_PARTIAL ? K_PARTIAL : K_FILLED;
    int64_t sq = x->side == FE_SIDE_BUY ? x->fill_qty : -x->fill_qty;
    pos_t *p = &ledger[x->account * opt.symbols + x->symbol];
    p->qty += sq, p->amount += -sq * x->fill_px;
    buying_power[x->account] += (int64_t)x->reserved_cash; /* now cash */
  } else if (e->reason == R_CLIENT_CANCEL) {
    /* COMPENSATED, or FAILED when the cancel landed before any step ran */
    k = K_CANCELLED;
  } else if (e->state == FE_SAGA_COMPENSATED) {
    k = K_EXPIRED;
  }
  audit_note(k == K_FILLED || k == K_PARTIAL ? FE_AUDIT_SETTLED : FE_AUDIT_COMPENSATED,
             x->account, "order %u %s: %lld @ %.2f, settles %u", x->order_no,
             kind_names[k], (long long)x->fill_qty, (double)x->fill_px / S,
             x->settle_date);
  end_order(x->order_no, k);
}

static uint64_t saga_alerts;
static void on_saga_alert(const fe_saga_alert_t *a, void *u) {
  (void)a, (void)u;
  __atomic_fetch_add(&saga_alerts, 1, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------- the stream */

enum { W_NEW, W_RETRY, W_REUSE, W_CANCEL, W_MD };
#define BURST 64
#define RECENT 256

typedef struct stream {
  uint64_t rng;
  int64_t *feed;                  /* the market's reference prices */
  fe_order_t recent[RECENT];      /* first submissions, for retries */
  uint64_t n_recent;
  uint64_t cancel_at[64], cancel_no[64]; /* cancels due later */
  fe_order_t cancel_o[64];
  uint32_t n_cancel;
  /* the submissions being gathered: one, or a burst */
  fe_submit_t in[BURST + 16];
  fe_order_t o[BURST + 16];
  int what[BURST + 16];
  uint64_t no[BURST + 16];
  int rc[BURST + 16];
  uint32_t n;
} stream_t;

/* What the client side counted. */
static struct {
  uint64_t new_sent, new_accepted, new_answered; /* answered: duplicate of a
                                                    journaled order (resume) */
  uint64_t admission_other;
  uint64_t retries, retries_caught, reuses, reuses_caught;
  uint64_t cancels, market_data, bursts, malformed;
  uint64_t malformed_by[8];
} cli;

static void gather(stream_t *s, int what, uint64_t no, const fe_order_t *o,
                   uint32_t type) {
  uint32_t i = s->n++;
  s->o[i] = *o;
  s->what[i] = what;
  s->no[i] = no;
  s->in[i] = (fe_submit_t){.type = type, .order = &s->o[i],
                           .trace_id = what == W_NEW || what == W_CANCEL ? no + 1 : 0,
                           .timeout_ns = FE_WAIT_FOREVER};
}

static void flush(stream_t *s) {
  if (s->n == 0)
    return;
  uint64_t now = fe_clock_now_ns();
  for (uint32_t i = 0; i < s->n; i++)
    if (s->what[i] == W_NEW)
      s->o[i].recv_ts_ns = now;
  if (s->n == 1)
    s->rc[0] = fe_bus_submit(bus, &s->in[0], NULL);
  else
    fe_bus_submit_n(bus, s->in, s->n, NULL, s->rc), cli.bursts++;
  for (uint32_t i = 0; i < s->n; i++) {
    int rc = s->rc[i];
    switch (s->what[i]) {
    case W_NEW:
      cli.new_sent++;
      if (rc == 0) {
        cli.new_accepted++;
        __atomic_store_n(&ords[s->no[i]].submitted, 1, __ATOMIC_RELAXED);
      } else if (rc == FE_EDUPLICATE) {
        cli.new_answered++; /* journaled by an earlier run */
      } else {
        cli.admission_other++;
      }
      break;
    case W_RETRY:
      cli.retries++;
      cli.retries_caught += rc == FE_EDUPLICATE || rc == FE_EINPROGRESS;
      break;
    case W_REUSE:
      cli.reuses++;
      cli.reuses_caught += rc == FE_EMISMATCH;
      break;
    case W_CANCEL:
      cli.cancels++;
      break;
    default:
      cli.market_data++;
    }
    if (rc != 0 && s->what[i] >= W_CANCEL)
      fprintf(stderr, "order_flow: submit: %s\n", fe_strerror(rc));
  }
  s->n = 0;
}

static void make_order(stream_t *s, uint64_t no, fe_order_t *o) {
  memset(o, 0, sizeof *o);
  uint64_t r = rnd(&s->rng);
  o->account = 1 + r % opt.accounts;
  uint64_t a = rnd(&s->rng) % opt.symbols, b = rnd(&s->rng) % opt.symbols;
  uint32_t si = (uint32_t)(a < b ? a : b); /* popular symbols trade more */
  sym_name(si, o->symbol);
  o->side = r >> 20 & 1 ? FE_SIDE_BUY : FE_SIDE_SELL;
  o->type = (r >> 21) % 10 < 7 ? FE_ORD_LIMIT : FE_ORD_MARKET;
  o->tif = FE_TIF_DAY;
  o->quantity = (r >> 24) % 4 == 0 ? (int64_t)(1 + (r >> 26) % 10) * 100
                                   : (int64_t)(1 + (r >> 26) % 500);
  if ((r >> 40) % 1000 < 5)
    o->quantity = 50000; /* a fat finger: compliance's notional limit */
  if (o->type == FE_ORD_LIMIT) {
    int64_t ref = s->feed[si];
    int64_t bp = (int64_t)((r >> 50) % 401) - 200; /* +-2 % */
    if ((r >> 30) % 1000 < 7)
      bp = bp < 0 ? -800 : 800; /* outside the collar */
    o->price = (ref + ref / 10000 * bp) / (S / 100) * (S / 100);
  }
  snprintf(o->client_order_id, sizeof o->client_order_id, "O%llx-%llu",
           (unsigned long long)(opt.seed & 0xffffff), (unsigned long long)no);
  o->client_ts_ns = fe_clock_realtime_ns();
  /* ~0.5 % malformed, one defect each, with the reason validation owes */
  uint64_t m = hash2(no, 3);
  if (m % 1000 < 5) {
    uint8_t why;
    switch (m / 1000 % 5) {
    case 0: o->quantity = (m >> 20) & 1 ? 0 : -o->quantity; why = R_BAD_QTY; break;
    case 1: o->side = 7; why = R_BAD_SIDE; break;
    case 2: o->type = 9; why = R_BAD_TYPE; break;
    case 3: o->type = FE_ORD_LIMIT, o->price = 0; why = R_BAD_PRICE; break;
    default: memcpy(o->symbol, "ZZ9", 4); why = R_BAD_SYMBOL;
    }
    ords[no].malformed = why;
    cli.malformed++;
    cli.malformed_by[why]++;
  }
}

/* ------------------------------------------------------------ operator */

static fe_dlq_t *dlq;
static uint64_t dlq_peak, dlq_peak_down, dlq_peak_open, redriven, redrive_rounds;
static uint64_t manual_resets;
static uint64_t last_redrive_try;

static void operator_tick(int final) {
  int n = fe_dlq_count(dlq);
  if ((uint64_t)n > dlq_peak) {
    dlq_peak = (uint64_t)n;
    dlq_peak_down = (uint64_t)fe_dlq_count_reason(dlq, R_VENUE_DOWN);
    dlq_peak_open = (uint64_t)fe_dlq_count_reason(dlq, FE_REASON_CIRCUIT_OPEN);
  }
  if (n <= 0 || __atomic_load_n(&xnys_down, __ATOMIC_RELAXED))
    return;
  int st = fe_breaker_state(breakers[XNYS]);
  uint64_t now = fe_clock_now_ns();
  if (st != FE_BREAKER_CLOSED) {
    /* The venue is back but no order has tried it since: at the end of
     * the day the operator closes the breaker by hand. */
    if (!final || now - last_redrive_try < 500 * MS)
      return;
    fe_breaker_reset(breakers[XNYS]);
    manual_resets++;
  }
  last_redrive_try = now;
  uint64_t done = 0;
  fe_dlq_redrive_all(dlq, NULL, fe_bus_redrive, bus, &done);
  redriven += done;
  redrive_rounds += done > 0;
  if (done > 0)
    audit_note(FE_AUDIT_REDRIVEN, 0, "operator redrove %llu dead letters (XNYS back)",
               (unsigned long long)done);
}

/* --------------------------------------------------------- progress */

static uint64_t t_start;
static uint64_t ends_total(void) {
  uint64_t t = 0;
  for (int k = 1; k < K_N; k++)
    t += __atomic_load_n(&kind_count[k], __ATOMIC_ACQUIRE);
  return t;
}

static void progress(int last) {
  static uint64_t t_last, pub_last, t_print;
  if (opt.quiet)
    return;
  uint64_t now = fe_clock_now_ns();
  if (!last && now - t_print < (opt.progress ? 200 : 1000) * MS)
    return;
  t_print = now;
  fe_bus_stats_t bs;
  fe_bus_stats(bus, &bs);
  fe_saga_stats_t ss;
  fe_saga_stats(coord, &ss);
  double dt = (double)(now - t_last) / 1e9;
  double rate = t_last && dt > 0 ? (double)(bs.published - pub_last) / dt : 0;
  t_last = now, pub_last = bs.published;
  uint64_t inflight = bs.published - bs.completed - bs.rejected - bs.dead_lettered;
  fprintf(stderr, "%s[%5.1fs] orders %" PRIu64 "/%" PRIu64 "  %7.0f ev/s  in flight %" PRIu64
          " bus + %" PRIu64 " sagas  filled %" PRIu64 " part %" PRIu64 " rejected %" PRIu64
          " DLQ %d  XNYS %s%s",
          opt.progress ? "\r" : "", (double)(now - t_start) / 1e9, cli.new_sent,
          opt.orders, rate, inflight, ss.live,
          __atomic_load_n(&kind_count[K_FILLED], __ATOMIC_RELAXED),
          __atomic_load_n(&kind_count[K_PARTIAL], __ATOMIC_RELAXED),
          bs.rejected, fe_dlq_count(dlq),
          fe_breaker_state_name(fe_breaker_state(breakers[XNYS])),
          opt.progress ? (last ? "\n" : "   ") : "\n");
}

/* ------------------------------------------------------------ metrics */

typedef struct buf { char *p; size_t len, cap; } buf_t;
static void bprintf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t nc = (b->cap + (size_t)n + 1) * 2;
    char *np = realloc(b->p, nc);
    if (np == NULL)
      return;
    b->p = np, b->cap = nc;
  }
}

static void metric(buf_t *b, const char *name, const char *type, const char *help) {
  bprintf(b, "# HELP order_flow_%s %s\n# TYPE order_flow_%s %s\n", name, help, name, type);
}

/* The Prometheus text format 0.0.4, from thread-safe reads only. */
static void metrics_text(buf_t *b) {
  fe_bus_stats_t bs;
  fe_bus_stats(bus, &bs);
  metric(b, "bus_events_total", "counter", "Events by how they ended on the bus.");
  bprintf(b, "order_flow_bus_events_total{outcome=\"published\"} %" PRIu64 "\n", bs.published);
  bprintf(b, "order_flow_bus_events_total{outcome=\"completed\"} %" PRIu64 "\n", bs.completed);
  bprintf(b, "order_flow_bus_events_total{outcome=\"rejected\"} %" PRIu64 "\n", bs.rejected);
  bprintf(b, "order_flow_bus_events_total{outcome=\"dead_lettered\"} %" PRIu64 "\n", bs.dead_lettered);
  metric(b, "bus_duplicates_total", "counter", "Submissions answered from the idempotency table.");
  bprintf(b, "order_flow_bus_duplicates_total %" PRIu64 "\n", bs.duplicates);
  metric(b, "stage_handled_total", "counter", "Handler calls per stage.");
  for (uint32_t i = 0; i < 5; i++) {
    fe_stage_stats_t st;
    if (fe_bus_stage_stats(bus, i, &st) == 0)
      bprintf(b, "order_flow_stage_handled_total{stage=\"%s\"} %" PRIu64 "\n",
              fe_bus_stage_name(bus, i), st.handled);
  }
  metric(b, "stage_rejected_total", "counter", "Events rejected per stage.");
  for (uint32_t i = 0; i < 5; i++) {
    fe_stage_stats_t st;
    if (fe_bus_stage_stats(bus, i, &st) == 0)
      bprintf(b, "order_flow_stage_rejected_total{stage=\"%s\"} %" PRIu64 "\n",
              fe_bus_stage_name(bus, i), st.rejected);
  }
  metric(b, "breaker_state", "gauge", "Venue breaker state (0 closed, 1 open, 2 half open).");
  for (int v = 0; v < N_VENUES; v++)
    bprintf(b, "order_flow_breaker_state{venue=\"%s\"} %d\n", venue_names[v],
            fe_breaker_state(breakers[v]));
  metric(b, "breaker_transitions_total", "counter", "Venue breaker state changes.");
  for (int v = 0; v < N_VENUES; v++)
    bprintf(b, "order_flow_breaker_transitions_total{venue=\"%s\"} %" PRIu64 "\n",
            venue_names[v], __atomic_load_n(&transitions[v], __ATOMIC_RELAXED));
  metric(b, "dlq_entries", "gauge", "Entries in the dead-letter queue.");
  bprintf(b, "order_flow_dlq_entries %d\n", fe_dlq_count(dlq));
  fe_saga_stats_t ss;
  fe_saga_stats(coord, &ss);
  metric(b, "sagas_live", "gauge", "Order sagas in flight.");
  bprintf(b, "order_flow_sagas_live %" PRIu64 "\n", ss.live);
  metric(b, "sagas_ended_total", "counter", "Order sagas by final state.");
  bprintf(b, "order_flow_sagas_ended_total{state=\"completed\"} %" PRIu64 "\n", ss.completed);
  bprintf(b, "order_flow_sagas_ended_total{state=\"compensated\"} %" PRIu64 "\n", ss.compensated);
  bprintf(b, "order_flow_sagas_ended_total{state=\"failed\"} %" PRIu64 "\n", ss.failed);
  metric(b, "orders_total", "counter", "Orders by final outcome.");
  for (int k = 1; k < K_N; k++)
    bprintf(b, "order_flow_orders_total{outcome=\"%s\"} %" PRIu64 "\n", kind_names[k],
            __atomic_load_n(&kind_count[k], __ATOMIC_RELAXED));
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version,
                             const char *upload, size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
  if (strcmp(method, "GET") != 0)
    return MHD_NO;
  buf_t b = {0};
  int found = strcmp(url, "/metrics") == 0;
  if (found)
    metrics_text(&b);
  else
    bprintf(&b, "see /metrics\n");
  struct MHD_Response *r =
      MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(b.p);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  enum MHD_Result ok = MHD_queue_response(c, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
  MHD_destroy_response(r);
  return ok;
}

static struct MHD_Daemon *metrics_start(int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL,
                          NULL, serve, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                          MHD_OPTION_END);
}

/* ------------------------------------------------------ reconciliation */

typedef struct injected {
  uint32_t kind, found;
  uint64_t account;
  char ref[FE_RECON_REF_MAX];
} injected_t;

static injected_t inj[64];
static uint32_t n_inj;
static uint64_t recon_unexpected, recon_noise;
static uint64_t recon_shown;

static int on_break(const fe_recon_break_t *b, void *u) {
  (void)u;
  int ok = 0;
  for (uint32_t i = 0; i < n_inj; i++)
    if (inj[i].account == b->account && strcmp(inj[i].ref, b->ref) == 0 &&
        inj[i].kind == b->kind)
      inj[i].found++, ok = 1;
  recon_unexpected += !ok;
  audit_note(FE_AUDIT_NOTE, b->account, "recon %s %s ledger %lld/%lld statement %lld/%lld",
             fe_recon_kind_name(b->kind), b->ref, (long long)b->ledger_quantity,
             (long long)b->ledger_amount, (long long)b->statement_quantity,
             (long long)b->statement_amount);
  if (recon_shown++ < 8)
    printf("    break %-8s account %-6" PRIu64 " %-5s ledger qty %6" PRId64
           " amount %14.2f | statement qty %6" PRId64 " amount %14.2f%s\n",
           fe_recon_kind_name(b->kind), b->account, b->ref, b->ledger_quantity,
           (double)b->ledger_amount / S, b->statement_quantity,
           (double)b->statement_amount / S, ok ? "" : "  (NOT INJECTED)");
  return 0;
}

/* Items of every non-zero position of a dense book. */
static fe_recon_item_t *book_items(const pos_t *book, size_t *n) {
  size_t cap = 1024, k = 0;
  fe_recon_item_t *it = malloc(cap * sizeof *it);
  for (uint64_t a = 0; it && a <= opt.accounts; a++)
    for (uint64_t s = 0; s < opt.symbols; s++) {
      const pos_t *p = &book[a * opt.symbols + s];
      if (p->qty == 0 && p->amount == 0)
        continue;
      if (k == cap) {
        fe_recon_item_t *ni = realloc(it, (cap *= 2) * sizeof *it);
        if (ni == NULL) {
          free(it);
          return NULL;
        }
        it = ni;
      }
      memset(&it[k], 0, sizeof it[k]);
      it[k].account = a;
      sym_name((uint32_t)s, it[k].ref);
      it[k].quantity = p->qty, it[k].amount = p->amount;
      k++;
    }
  *n = k;
  return it;
}

static void inject(uint32_t kind, const fe_recon_item_t *it) {
  if (n_inj == sizeof inj / sizeof inj[0])
    return;
  inj[n_inj].kind = kind;
  inj[n_inj].account = it->account;
  memcpy(inj[n_inj].ref, it->ref, FE_RECON_REF_MAX);
  n_inj++;
}

static fe_recon_report_t recon_rep;
static char statement_path[4200];

/* The custodian writes its statement with deliberate breaks; the broker
 * reads the file and reconciles its ledger against it. */
static int reconcile(const char *dir) {
  size_t nl, ns;
  fe_recon_item_t *led = book_items(ledger, &nl);
  fe_recon_item_t *st = book_items(custodian_book, &ns);
  if (led == NULL || st == NULL)
    return FE_ENOMEM;
  st = realloc(st, (ns + 8) * sizeof *st);
  uint64_t h = hash2(0xEC0, opt.trade_date);
  uint32_t per = ns >= 4000 ? 3 : ns >= 8 ? 1 : 0; /* per kind */
  uint8_t *used = calloc(ns + 1, 1);
  for (uint32_t k = 0; k < 4 * per; k++) {
    size_t i = (size_t)((h = mix(h)) % ns);
    while (used[i])
      i = (i + 1) % ns;
    used[i] = 1;
    switch (k % 4) {
    case 0: inject(FE_RECON_MISSING, &st[i]); used[i] = 2; break;
    case 1: st[i].quantity += 1 + (int64_t)(h >> 40) % 5; inject(FE_RECON_QUANTITY, &st[i]); break;
    case 2: st[i].amount += (2 + (int64_t)(h >> 40) % 100) * (S / 100); inject(FE_RECON_AMOUNT, &st[i]); break;
    default: st[i].amount += S / 1000; recon_noise++; /* within tolerance */
    }
  }
  size_t w = 0; /* drop the MISSING ones */
  for (size_t i = 0; i < ns; i++)
    if (used[i] != 2)
      st[w++] = st[i];
  ns = w;
  free(used);
  for (uint32_t k = 0; k < (per ? per : 1); k++) { /* accounts nobody has */
    memset(&st[ns], 0, sizeof st[ns]);
    st[ns].account = opt.accounts + 1 + k;
    sym_name(k, st[ns].ref);
    st[ns].quantity = 100, st[ns].amount = -100 * 25 * S;
    inject(FE_RECON_EXTRA, &st[ns]);
    ns++;
  }
  snprintf(statement_path, sizeof statement_path, "%s/statement-%u.csv", dir,
           opt.trade_date);
  fe_diag_t d = {0};
  int rc = fe_recon_write(statement_path, "CUSTODIAN-1", opt.trade_date, st, ns, &d);
  free(st);
  if (rc != 0) {
    fprintf(stderr, "order_flow: statement: %s\n", d.msg);
    free(led);
    return rc;
  }
  fe_recon_statement_t *file;
  fe_recon_error_t err;
  if ((rc = fe_recon_load(statement_path, &file, &err)) != 0) {
    fprintf(stderr, "order_flow: %s\n", err.msg);
    free(led);
    return rc;
  }
  fe_recon_config_t rc_cfg;
  fe_recon_config_init(&rc_cfg);
  rc_cfg.amount_tolerance = S / 100; /* one cent */
  rc_cfg.on_break = on_break;
  printf("  reconciliation: ledger %zu positions vs %s (%" PRIu64 " items)\n", nl,
         statement_path, file->n_items);
  rc = fe_recon_run(&rc_cfg, led, nl, file->items, file->n_items, &recon_rep, &d);
  if (rc != 0)
    fprintf(stderr, "order_flow: recon: %s\n", d.msg);
  fe_recon_statement_free(file);
  free(led);
  return rc;
}

/* ------------------------------------------------------------- summary */

static FILE *jf;
static int jfirst = 1;
static void jnum(const char *key, double v) {
  if (jf == NULL)
    return;
  fprintf(jf, "%s\n  \"%s\": %.17g", jfirst ? "{" : ",", key, v);
  jfirst = 0;
}
static void ju(const char *key, uint64_t v) {
  if (jf == NULL)
    return;
  fprintf(jf, "%s\n  \"%s\": %" PRIu64, jfirst ? "{" : ",", key, v);
  jfirst = 0;
}

static int failures;
static void check(int ok, const char *what, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *what, ...) {
  va_list ap;
  va_start(ap, what);
  printf("  [%s] ", ok ? " ok " : "FAIL");
  vprintf(what, ap);
  printf("\n");
  va_end(ap);
  failures += !ok;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: order_flow [options]\n"
          "  --orders N        client orders in the stream (default 100000)\n"
          "  --accounts N      accounts (default 5000)\n"
          "  --symbols N       symbols (default 300)\n"
          "  --rate N          orders per second, 0 = as fast as it goes (default 0)\n"
          "  --seed N          the stream's seed (default 42)\n"
          "  --date YYYYMMDD   trade date (default 20261204, a Friday: settles Monday)\n"
          "  --dir DIR         journal and statement here (default: a new temporary\n"
          "                    directory, removed at the end); a second run with the\n"
          "                    same DIR recovers from its journal\n"
          "  --wait spin|yield|park   the bus's wait strategy (default park)\n"
          "  --metrics-port N  serve Prometheus metrics on 127.0.0.1:N/metrics\n"
          "  --linger-ms N     keep serving metrics N ms after the summary\n"
          "  --json FILE       write the summary as flat JSON (\"-\": stdout)\n"
          "  --quiet           no progress output\n");
}

static int parse_u64(const char *s, uint64_t *v) {
  char *e;
  errno = 0;
  unsigned long long x = strtoull(s, &e, 10);
  if (errno || *e || e == s || *s == '-')
    return -1;
  *v = x;
  return 0;
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t x = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--quiet")) {
      opt.quiet = 1;
      continue;
    }
    if (v == NULL) {
      fprintf(stderr, "order_flow: %s needs a value\n", a);
      return -1;
    }
    i++;
    if (!strcmp(a, "--dir"))
      opt.dir = v;
    else if (!strcmp(a, "--json"))
      opt.json = v;
    else if (!strcmp(a, "--wait")) {
      opt.wait = !strcmp(v, "spin") ? FE_WAIT_SPIN : !strcmp(v, "yield") ? FE_WAIT_YIELD
               : !strcmp(v, "park") ? FE_WAIT_PARK : 0;
      if (opt.wait == 0) {
        fprintf(stderr, "order_flow: --wait spin, yield or park\n");
        return -1;
      }
    } else if (parse_u64(v, &x) != 0) {
      fprintf(stderr, "order_flow: %s: \"%s\" is not a number\n", a, v);
      return -1;
    } else if (!strcmp(a, "--orders") && x >= 1 && x <= 50000000)
      opt.orders = x;
    else if (!strcmp(a, "--accounts") && x >= 1 && x <= 1000000)
      opt.accounts = x;
    else if (!strcmp(a, "--symbols") && x >= 3 && x <= 17576)
      opt.symbols = x;
    else if (!strcmp(a, "--rate"))
      opt.rate = x;
    else if (!strcmp(a, "--seed"))
      opt.seed = x;
    else if (!strcmp(a, "--date") && fe_recon_weekday((uint32_t)x) > 0)
      opt.trade_date = (uint32_t)x;
    else if (!strcmp(a, "--metrics-port") && x <= 65535)
      opt.metrics_port = (int)x;
    else if (!strcmp(a, "--linger-ms"))
      opt.linger_ms = x;
    else {
      fprintf(stderr, "order_flow: unknown option or value out of range: %s %s\n", a, v);
      usage(stderr);
      return -1;
    }
  }
  if (opt.accounts * opt.symbols > 200000000) {
    fprintf(stderr, "order_flow: accounts x symbols above 2e8\n");
    return -1;
  }
  return 0;
}

static uint64_t next_pow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n, sz);
  if (p == NULL) {
    fprintf(stderr, "order_flow: out of memory\n");
    exit(2);
  }
  return p;
}

#define SETUP(call)                                                           \
  do {                                                                        \
    int rc_ = (call);                                                         \
    if (rc_ != 0) {                                                           \
      fprintf(stderr, "order_flow: %s: %s (%s)\n", #call, fe_strerror(rc_),   \
              d.msg);                                                         \
      return 2;                                                               \
    }                                                                         \
  } while (0)

/* The trail's signing key: DIR/audit.key (secret, 0600) and DIR/audit.pub,
 * hex as `fe-audit keygen` writes them; made on the first run, reused on
 * the next so the chain of checkpoints stays under one key. */
static int audit_key(const char *dir, uint8_t sk[FE_AUDIT_SECKEY],
                     uint8_t pk[FE_AUDIT_PUBKEY]) {
  char path[4200], hex[2 * FE_AUDIT_SECKEY + 2];
  snprintf(path, sizeof path, "%s/audit.key", dir);
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    size_t len = 0;
    int ok = fgets(hex, sizeof hex, f) != NULL &&
             sodium_hex2bin(sk, FE_AUDIT_SECKEY, hex, strcspn(hex, "\r\n"), NULL,
                            &len, NULL) == 0 && len == FE_AUDIT_SECKEY;
    fclose(f);
    return ok ? crypto_sign_ed25519_sk_to_pk(pk, sk) : -1;
  }
  crypto_sign_keypair(pk, sk);
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof path, "%s/audit.%s", dir, k ? "pub" : "key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, k ? 0644 : 0600);
    if (fd < 0)
      return -1;
    sodium_bin2hex(hex, sizeof hex, k ? pk : sk, k ? FE_AUDIT_PUBKEY : FE_AUDIT_SECKEY);
    size_t n = strlen(hex);
    hex[n] = '\n';
    int bad = write(fd, hex, n + 1) != (ssize_t)(n + 1);
    close(fd);
    if (bad)
      return -1;
  }
  return 0;
}

/* Counts the records of this run (the trail goes on across runs). */
typedef struct audit_count {
  uint64_t since_wall_ns, earlier;
  uint64_t records, by_decision[FE_AUDIT_DECISION_MAX + 1], recon;
} audit_count_t;
static int audit_visit(const fe_audit_rec_t *r, void *u) {
  audit_count_t *c = u;
  if (r->type != 1)
    return 0;
  if (r->wall_ns < c->since_wall_ns) {
    c->earlier++;
    return 0;
  }
  c->records++;
  if (r->decision <= FE_AUDIT_DECISION_MAX)
    c->by_decision[r->decision]++;
  c->recon += strncmp(r->detail, "recon ", 6) == 0;
  return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static void run_stream(void) {
  stream_t *s = xcalloc(1, sizeof *s);
  s->rng = opt.seed;
  s->feed = xcalloc(opt.symbols, sizeof *s->feed);
  for (uint64_t i = 0; i < opt.symbols; i++)
    s->feed[i] = __atomic_load_n(&ref_px[i], __ATOMIC_RELAXED);
  uint32_t burst_left = 0;
  for (uint64_t no = 0; no < opt.orders; no++) {
    if (opt.rate) { /* pace: order no is due at start + no / rate */
      uint64_t due = t_start + no * SEC / opt.rate, now = fe_clock_now_ns();
      if (due > now) {
        flush(s);
        struct timespec ts = {(time_t)((due - now) / SEC), (long)((due - now) % SEC)};
        nanosleep(&ts, NULL);
      }
    }
    if (no % 10 == 0) { /* the market moves: +-0.2 % on one symbol */
      uint64_t r = rnd(&s->rng);
      uint32_t si = (uint32_t)(r % opt.symbols);
      int64_t px = s->feed[si] + s->feed[si] / 1000 * ((int64_t)((r >> 32) % 5) - 2);
      s->feed[si] = px > S ? px : S;
      fe_order_t md;
      memset(&md, 0, sizeof md);
      sym_name(si, md.symbol);
      md.price = s->feed[si];
      gather(s, W_MD, 0, &md, FE_EV_MARKET_DATA);
    }
    fe_order_t o;
    make_order(s, no, &o);
    gather(s, W_NEW, no, &o, FE_EV_NEW_ORDER);
    uint64_t r = rnd(&s->rng);
    uint64_t nr = s->n_recent < RECENT ? s->n_recent : RECENT;
    if (nr && r % 1000 < 10) { /* ~1 %: the client retries an order */
      gather(s, W_RETRY, 0, &s->recent[(r >> 12) % nr], FE_EV_NEW_ORDER);
    } else if (nr && r % 1000 < 12) { /* ~0.2 %: the same id, another order */
      fe_order_t q = s->recent[(r >> 12) % nr];
      q.quantity = q.quantity > 0 ? q.quantity + 1 : 7;
      gather(s, W_REUSE, 0, &q, FE_EV_NEW_ORDER);
    }
    if ((r >> 24) % 100 < 3 && s->n_cancel < 64) { /* ~3 % cancelled soon */
      s->cancel_at[s->n_cancel] = no + 2 + (r >> 32) % 8;
      s->cancel_no[s->n_cancel] = no;
      s->cancel_o[s->n_cancel] = o;
      s->n_cancel++;
    }
    for (uint32_t k = 0, due = 0; k < s->n_cancel && due < 8;)
      if (s->cancel_at[k] <= no) {
        gather(s, W_CANCEL, s->cancel_no[k], &s->cancel_o[k], FE_EV_CANCEL);
        due++;
        s->n_cancel--;
        s->cancel_at[k] = s->cancel_at[s->n_cancel];
        s->cancel_no[k] = s->cancel_no[s->n_cancel];
        s->cancel_o[k] = s->cancel_o[s->n_cancel];
      } else {
        k++;
      }
    s->recent[s->n_recent++ % RECENT] = o;
    if (burst_left == 0 && no % 1500 == 750)
      burst_left = BURST; /* a client sends 64 orders in one read */
    if (burst_left > 0)
      burst_left--;
    if (burst_left == 0 || s->n >= BURST)
      flush(s);
    if (no % 256 == 0) {
      operator_tick(0);
      progress(0);
    }
  }
  for (uint32_t k = 0; k < s->n_cancel; k++) {
    gather(s, W_CANCEL, s->cancel_no[k], &s->cancel_o[k], FE_EV_CANCEL);
    if (s->n >= BURST)
      flush(s);
  }
  flush(s);
  free(s->feed);
  free(s);
}

/* Every order submitted has ended, or sits in the DLQ; nothing in flight. */
static int quiescent(void) {
  fe_saga_stats_t ss;
  fe_saga_stats(coord, &ss);
  pthread_mutex_lock(&world_mu);
  uint64_t pending = world_pending;
  pthread_mutex_unlock(&world_mu);
  int dl = fe_dlq_count(dlq);
  return ss.live == 0 && pending == 0 && dl >= 0 &&
         ends_total() + (uint64_t)dl >= cli.new_accepted &&
         fe_bus_drain(bus, 0) == 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0)
    return 2;
  opt.progress = isatty(2);
  fe_diag_t d = {0};
  SETUP(fe_clock_init(&d));
  char tmpl[] = "/tmp/order_flow_XXXXXX";
  int own_dir = opt.dir == NULL;
  if (own_dir && (opt.dir = mkdtemp(tmpl)) == NULL) {
    perror("order_flow: mkdtemp");
    return 2;
  }
  if (!own_dir && mkdir(opt.dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "order_flow: %s: %s\n", opt.dir, strerror(errno));
    return 2;
  }
  char jdir[4200];
  snprintf(jdir, sizeof jdir, "%s/journal", opt.dir);

  if (sodium_init() < 0) {
    fprintf(stderr, "order_flow: libsodium does not initialise\n");
    return 2;
  }
  uint8_t sk[FE_AUDIT_SECKEY], pk[FE_AUDIT_PUBKEY];
  char adir[4200];
  snprintf(adir, sizeof adir, "%s/audit", opt.dir);
  if (audit_key(opt.dir, sk, pk) != 0) {
    fprintf(stderr, "order_flow: %s/audit.key: cannot read or make it\n", opt.dir);
    return 2;
  }
  fe_audit_config_t ac;
  fe_audit_config_init(&ac);
  ac.dir = adir;
  ac.sign_key = sk;
  ac.capacity = 1 << 16;
  ac.block_ns = SEC; /* a full queue waits; nothing is dropped */
  ac.checkpoint_every = 4096;
  uint64_t t_start_wall = fe_clock_realtime_ns();
  SETUP(fe_audit_create(&ac, &audit, &d));
  sodium_memzero(sk, sizeof sk);

  ords = xcalloc(opt.orders, sizeof *ords);
  ref_px = xcalloc(opt.symbols, sizeof *ref_px);
  uint64_t seedr = opt.seed ^ 0x5EED;
  for (uint64_t i = 0; i < opt.symbols; i++)
    ref_px[i] = (int64_t)(500 + rnd(&seedr) % 49500) * (S / 100); /* 5..500 */
  size_t cells = (size_t)(opt.accounts + 1) * opt.symbols;
  ledger = xcalloc(cells, sizeof *ledger);
  custodian_book = xcalloc(cells, sizeof *custodian_book);
  buying_power = xcalloc(opt.accounts + 1, sizeof *buying_power);
  for (int h = 0; h < H_N; h++) {
    fe_hist_config_t hc;
    fe_hist_config_init(&hc);
    SETUP(fe_hist_create(&hc, &hists[h], &d));
  }

  /* Venues and their breakers; the gateway stage around them. */
  for (uint32_t v = 0; v < N_VENUES; v++) {
    fe_breaker_config_t bc;
    fe_breaker_config_init(&bc);
    bc.name = venue_names[v];
    bc.window_size = 40;
    bc.minimum_calls = 20;
    bc.wait_open_ns = 50 * MS;
    bc.permitted_calls_half_open = 5;
    bc.slow_call_duration_ns = 500 * 1000;
    bc.on_state = on_breaker;
    bc.user = (void *)(uintptr_t)v;
    SETUP(fe_breaker_create(&bc, &breakers[v], &d));
  }
  down_from = opt.orders * 35 / 100, down_to = opt.orders * 55 / 100;
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = venue_send;
  gc.venue = venue_of;
  gc.n_venues = N_VENUES;
  for (int v = 0; v < N_VENUES; v++)
    gc.breakers[v] = breakers[v];
  gc.on_open = FE_GATEWAY_OPEN_DEAD_LETTER; /* parked for the operator */
  SETUP(fe_gateway_create(&gc, &gateway, &d));

  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  qc.capacity = (uint32_t)(opt.orders / 2 > 1024 ? opt.orders / 2 : 1024);
  qc.user_size = sizeof(plan_t);
  SETUP(fe_dlq_create(&qc, &dlq, &d));
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = next_pow2(opt.orders * 2 + 4096);
  ic.now_ns = fe_clock_wall_fn; /* survives restarts with the journal */
  fe_idem_t *idem;
  SETUP(fe_idem_create(&ic, &idem, &d));

  /* The order saga. */
  fe_saga_config_t sc;
  fe_saga_config_init(&sc);
  uint64_t ms = next_pow2(opt.orders + 1024);
  sc.max_sagas = (uint32_t)(ms < FE_SAGA_MAX_SAGAS ? ms : FE_SAGA_MAX_SAGAS);
  sc.ctx_size = 64;
  sc.on_end = on_saga_end;
  sc.on_alert = on_saga_alert;
  SETUP(fe_saga_create(&sc, &coord, &d));
  fe_saga_order_hooks_t hk = {.reserve = reserve, .release = release,
                              .submit = submit, .cancel = cancel,
                              .await_fill = await_fill, .settle = settle};
  fe_saga_def_t def;
  SETUP(fe_saga_order_template(&def, &hk));
  /* Here the send itself happens in the bus's gateway stage, guarded by the
   * bus's intent journal (fe_bus_intent); the saga's submit step only
   * records the venue's acknowledgement, so it needs no commit of its own
   * before it runs. */
  def.steps[1].flags &= ~FE_SAGA_STEP_DURABLE;
  SETUP(fe_saga_define(coord, &def, &order_def, &d));

  /* The stages. */
  fe_stage_def_t st[5];
  for (int i = 0; i < 5; i++)
    fe_stage_def_init(&st[i]);
  st[0].name = "validation", st[0].handler = validation;
  st[0].n_types = 2, st[0].types[0] = FE_EV_NEW_ORDER, st[0].types[1] = FE_EV_CANCEL;
  st[0].parallel_to_journal = 1; /* a pure check, as LMAX runs it */
  st[1].name = "compliance", st[1].handler = compliance;
  st[1].n_types = 2, st[1].types[0] = FE_EV_NEW_ORDER, st[1].types[1] = FE_EV_MARKET_DATA;
  st[1].n_deps = 1, st[1].deps[0] = 0;
  st[2].name = "execution", st[2].handler = execution;
  st[2].n_types = 1, st[2].types[0] = FE_EV_NEW_ORDER;
  st[2].n_deps = 1, st[2].deps[0] = 1, st[2].worker = 1;
  st[2].retry.max_attempts = 1; /* a venue failure dead-letters at once */
  st[3].name = "booking", st[3].handler = booking;
  st[3].n_types = 2, st[3].types[0] = FE_EV_NEW_ORDER, st[3].types[1] = FE_EV_CANCEL;
  st[3].n_deps = 1, st[3].deps[0] = 2, st[3].worker = 1;
  fe_saga_bus_map_t map;
  fe_saga_bus_map_init(&map);
  map.extract = extract;
  SETUP(fe_saga_bus_stage(coord, &map, &st[4], &d));
  st[4].worker = 1;

  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = jdir;
  jc.fsync = FE_FSYNC_NONE; /* survives a process crash, not a power cut */
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 16384;
  cfg.producer = FE_PRODUCER_MULTI; /* the client stream, the venues and the
                                       custodian publish */
  cfg.wait = opt.wait;
  cfg.stages = st, cfg.n_stages = 5;
  cfg.idem = idem, cfg.dlq = dlq, cfg.journal = &jc;
  cfg.on_outcome = on_outcome;
  cfg.on_replay = fe_saga_journal_replay, cfg.replay_user = coord;
  SETUP(fe_bus_create(&cfg, &bus, &d));
  fe_bus_recovery_t rec;
  fe_bus_recovery(bus, &rec);
  int resumed = rec.events > 0;
  SETUP(fe_saga_use_journal(coord, fe_bus_journal(bus), &d));
  SETUP(fe_saga_thread_start(coord));
  pthread_t world;
  if (pthread_create(&world, NULL, world_main, NULL) != 0) {
    fprintf(stderr, "order_flow: cannot start the venue thread\n");
    return 2;
  }
  SETUP(fe_bus_start(bus, &d));
  struct MHD_Daemon *mhd = NULL;
  if (opt.metrics_port >= 0) {
    if ((mhd = metrics_start(opt.metrics_port)) == NULL) {
      fprintf(stderr, "order_flow: cannot serve metrics on port %d\n", opt.metrics_port);
      return 2;
    }
    fprintf(stderr, "order_flow: metrics on http://127.0.0.1:%d/metrics\n", opt.metrics_port);
  }

  printf("order_flow: %" PRIu64 " orders, %" PRIu64 " accounts, %" PRIu64
         " symbols, seed %" PRIu64 ", trade date %u, journal %s\n",
         opt.orders, opt.accounts, opt.symbols, opt.seed, opt.trade_date, jdir);
  if (resumed)
    printf("  recovered from the journal: %" PRIu64 " records, %" PRIu64
           " events (%" PRIu64 " finished, %" PRIu64 " re-driven, in doubt %" PRIu64
           " sent / %" PRIu64 " not), %" PRIu64 " idempotency entries, %" PRIu64
           " dead letters, torn tail %" PRIu64 " bytes\n",
           rec.records, rec.events, rec.finished, rec.redriven, rec.in_doubt_sent,
           rec.in_doubt_unsent, rec.idem_restored, rec.dlq_restored, rec.truncated_bytes);

  t_start = fe_clock_now_ns();
  run_stream();
  uint64_t t_stream = fe_clock_now_ns();
  int settled = 0;
  for (uint64_t deadline = t_stream + 120 * SEC; fe_clock_now_ns() < deadline;) {
    fe_bus_drain(bus, 20 * MS);
    operator_tick(1);
    progress(0);
    /* The day ends once nothing moves and the operator has emptied the
     * DLQ: a redrive can trip the breaker again (its burst meets a venue
     * that is slow to warm up), and the operator then tries again after
     * the reset pause rather than going home with the queue full.  While
     * the venue is still down there is nothing to redrive into. */
    if (quiescent() && (fe_dlq_count(dlq) == 0 ||
                        __atomic_load_n(&xnys_down, __ATOMIC_RELAXED))) {
      settled = 1;
      break;
    }
  }
  uint64_t t_end = fe_clock_now_ns();
  progress(1);
  fe_bus_drain(bus, FE_WAIT_FOREVER);
  fe_bus_stats_t bs;
  fe_bus_stats(bus, &bs);
  fe_saga_stats_t ss;
  fe_saga_stats(coord, &ss);
  fe_saga_bus_stats_t sbs;
  fe_saga_bus_stats(coord, &sbs);
  fe_dlq_stats_t qs;
  fe_dlq_stats(dlq, &qs);
  fe_bus_stop(bus);
  pthread_mutex_lock(&world_mu);
  world_stop = 1;
  pthread_cond_signal(&world_cv);
  pthread_mutex_unlock(&world_mu);
  pthread_join(world, NULL);
  fe_saga_thread_stop(coord);

  /* ------------------------------------------------------- summary */
  if (opt.json)
    jf = strcmp(opt.json, "-") == 0 ? stdout : fopen(opt.json, "w");
  double secs = (double)(t_end - t_start) / 1e9;
  double stream_secs = (double)(t_stream - t_start) / 1e9;
  printf("\nsummary (%s run, %.2f s: stream %.2f s, settling %.2f s)\n",
         resumed ? "resumed" : "first", secs, stream_secs, secs - stream_secs);
  printf("  orders/s %.0f (orders accepted / whole run), bus events %" PRIu64 "\n",
         (double)cli.new_accepted / secs, bs.published);
  ju("resumed", (uint64_t)resumed);
  jnum("seconds", secs);
  jnum("orders_per_second", (double)cli.new_accepted / secs);
  ju("orders", opt.orders);
  ju("orders_submitted", cli.new_sent);
  ju("orders_accepted", cli.new_accepted);
  ju("orders_answered_from_journal", cli.new_answered);
  ju("admission_other", cli.admission_other);
  ju("bus_published", bs.published);

  printf("  latency, submit to stage (us):        p50      p90      p99    p99.9      max\n");
  for (int h = 0; h < H_N; h++) {
    double p[4] = {50, 90, 99, 99.9};
    uint64_t v[4];
    for (int k = 0; k < 4; k++)
      v[k] = fe_hist_percentile(hists[h], p[k]);
    printf("    %-30s %8.1f %8.1f %8.1f %8.1f %8.1f\n", hist_names[h], v[0] / 1e3,
           v[1] / 1e3, v[2] / 1e3, v[3] / 1e3, fe_hist_max(hists[h]) / 1e3);
    char key[64];
    snprintf(key, sizeof key, "latency_%s_p50_ns", hist_names[h]);
    ju(key, v[0]);
    snprintf(key, sizeof key, "latency_%s_p99_ns", hist_names[h]);
    ju(key, v[2]);
  }

  /* Conservation: every accepted order ended exactly once. */
  uint64_t final[K_N] = {0}, twice = 0, never = 0, unsubmitted_ended = 0;
  uint64_t mal_ok = 0, mal_wrong = 0, in_dlq = (uint64_t)fe_dlq_count(dlq);
  for (uint64_t no = 0; no < opt.orders; no++) {
    ord_t *o = &ords[no];
    uint8_t ends = __atomic_load_n(&o->ends, __ATOMIC_RELAXED);
    uint8_t kind = __atomic_load_n(&o->kind, __ATOMIC_RELAXED);
    if (!o->submitted) {
      unsubmitted_ended += ends != 0;
      continue;
    }
    if (ends == 0 && o->bus_status == FE_IDEM_DEAD_LETTERED)
      ends = 1, kind = K_DEAD_LETTER;
    if (ends == 0)
      never++;
    else if (ends > 1)
      twice++;
    else
      final[kind]++;
    if (o->malformed) {
      int ok = kind == K_REJ_VALIDATION && o->bus_reason == o->malformed;
      mal_ok += ok, mal_wrong += !ok;
    }
  }
  uint64_t sum = 0;
  printf("  outcomes of the %" PRIu64 " orders accepted:\n", cli.new_accepted);
  for (int k = 1; k < K_N; k++) {
    sum += final[k];
    printf("    %-26s %8" PRIu64 "\n", kind_names[k], final[k]);
    char key[64];
    snprintf(key, sizeof key, "outcome_%s", kind_names[k]);
    ju(key, final[k]);
  }
  printf("    rejected by reason:");
  for (int r = 1; r < 256; r++)
    if (reject_count[r]) {
      printf(" %s %" PRIu64, reason_name((uint32_t)r), reject_count[r]);
      char key[64];
      snprintf(key, sizeof key, "rejected_%s", reason_name((uint32_t)r));
      ju(key, reject_count[r]);
    }
  printf("\n");
  ju("ended_twice", twice);
  ju("never_ended", never);
  int conserved = settled && twice == 0 && never == 0 && unsubmitted_ended == 0 &&
                  sum == cli.new_accepted &&
                  bs.published == bs.completed + bs.rejected + bs.dead_lettered;
  ju("conservation_ok", (uint64_t)conserved);

  printf("  client side: retries %" PRIu64 " (caught %" PRIu64 "), reused ids %" PRIu64
         " (caught %" PRIu64 "), malformed %" PRIu64 " (rejected with their reason %"
         PRIu64 "), cancels %" PRIu64 " (applied %" PRIu64 ", too late %" PRIu64
         ", order not live %" PRIu64 "), bursts %" PRIu64 ", market data %" PRIu64 "\n",
         cli.retries, cli.retries_caught, cli.reuses, cli.reuses_caught, cli.malformed,
         mal_ok, cli.cancels, cancels_applied, cancels_late, cancels_unknown, cli.bursts,
         cli.market_data);
  ju("retries_injected", cli.retries);
  ju("retries_caught", cli.retries_caught);
  ju("reuses_injected", cli.reuses);
  ju("reuses_caught", cli.reuses_caught);
  ju("duplicates_bus", bs.duplicates);
  ju("malformed_injected", cli.malformed);
  ju("malformed_rejected_with_reason", mal_ok);
  ju("malformed_wrong", mal_wrong);
  ju("cancels", cli.cancels);
  ju("cancels_applied", cancels_applied);

  printf("  venues:");
  for (int v = 0; v < N_VENUES; v++) {
    fe_gateway_stats_t g;
    fe_gateway_stats(gateway, (uint32_t)v, &g);
    fe_breaker_metrics_t m;
    fe_breaker_metrics(breakers[v], &m);
    printf(" %s sent %" PRIu64 " (accepted %" PRIu64 ", rejected %" PRIu64
           ", errors %" PRIu64 ", refused by breaker %" PRIu64 ", slow %" PRIu64
           "; breaker opened %" PRIu64 " closed %" PRIu64 ", now %s)%s",
           venue_names[v], g.sent, g.accepted, g.rejected, g.errors, g.not_permitted,
           m.slow_calls, opened[v], closed[v],
           fe_breaker_state_name(fe_breaker_state(breakers[v])), v + 1 < N_VENUES ? ";" : "\n");
    char key[64];
    snprintf(key, sizeof key, "venue_%s_sent", venue_names[v]);
    ju(key, g.sent);
    snprintf(key, sizeof key, "breaker_%s_opened", venue_names[v]);
    ju(key, opened[v]);
    snprintf(key, sizeof key, "breaker_%s_closed", venue_names[v]);
    ju(key, closed[v]);
  }
  ju("breaker_manual_resets", manual_resets);
  printf("  dead letters: peak %" PRIu64 " in the queue (venue_down %" PRIu64
         ", circuit_open %" PRIu64 "), %" PRIu64 " redriven in %" PRIu64
         " operator rounds, %" PRIu64 " left\n",
         dlq_peak, dlq_peak_down, dlq_peak_open, redriven, redrive_rounds, in_dlq);
  ju("dlq_peak", dlq_peak);
  ju("dlq_peak_venue_down", dlq_peak_down);
  ju("dlq_peak_circuit_open", dlq_peak_open);
  ju("dlq_redriven", redriven);
  ju("dlq_left", in_dlq);
  ju("dlq_refused", qs.refused);
  uint32_t t_plus_1 = 0;
  fe_recon_settle_date(opt.trade_date, 1, &t_plus_1);
  printf("  sagas: completed %" PRIu64 ", compensated %" PRIu64 ", failed %" PRIu64
         ", stuck %" PRIu64 ", live %" PRIu64 "; settlement refusals retried %" PRIu64
         ", late reports %" PRIu64 "; settle date T+1 of %u is %u\n",
         ss.completed, ss.compensated, ss.failed, ss.stuck, ss.live,
         settle_refusals, sbs.late, opt.trade_date, t_plus_1);
  ju("sagas_completed", ss.completed);
  ju("sagas_compensated", ss.compensated);
  ju("sagas_failed", ss.failed);
  ju("sagas_stuck", ss.stuck);
  ju("sagas_live", ss.live);
  ju("settle_refusals", settle_refusals);

  int rrc = reconcile(opt.dir);
  fe_audit_stats_t as;
  fe_audit_stats(audit, &as);
  fe_audit_destroy(audit); /* writes the rest and a final checkpoint */
  audit = NULL;
  audit_count_t ac_count = {.since_wall_ns = t_start_wall};
  fe_audit_verify_result_t avr;
  int avrc = fe_audit_verify_dir(adir, pk, audit_visit, &ac_count, &avr);
  uint64_t inj_by[FE_RECON_KINDS] = {0}, found_ok = 0;
  for (uint32_t i = 0; i < n_inj; i++)
    inj_by[inj[i].kind]++, found_ok += inj[i].found == 1;
  printf("  reconciliation: matched %" PRIu64 ", breaks %" PRIu64
         " (missing %" PRIu64 "/%" PRIu64 ", extra %" PRIu64 "/%" PRIu64
         ", quantity %" PRIu64 "/%" PRIu64 ", amount %" PRIu64 "/%" PRIu64
         " found/injected), %" PRIu64 " within tolerance, %" PRIu64 " not injected\n",
         recon_rep.matched, recon_rep.n_breaks, recon_rep.by_kind[1], inj_by[1],
         recon_rep.by_kind[2], inj_by[2], recon_rep.by_kind[3], inj_by[3],
         recon_rep.by_kind[4], inj_by[4], recon_noise, recon_unexpected);
  ju("recon_matched", recon_rep.matched);
  ju("recon_breaks", recon_rep.n_breaks);
  ju("recon_injected", n_inj);
  ju("recon_found_injected", found_ok);
  ju("recon_unexpected", recon_unexpected);

  printf("  audit trail %s: %" PRIu64 " records from earlier runs; this run's %" PRIu64 " (accepted %" PRIu64 ", rejected %" PRIu64
         ", dead-lettered %" PRIu64 ", settled %" PRIu64 ", compensated %" PRIu64
         ", breaker %" PRIu64 ", redrives %" PRIu64 ", recon breaks %" PRIu64 "), %" PRIu64
         " checkpoints; verify: %s%s%s\n",
         adir, ac_count.earlier, ac_count.records, ac_count.by_decision[FE_AUDIT_ACCEPTED],
         ac_count.by_decision[FE_AUDIT_REJECTED], ac_count.by_decision[FE_AUDIT_DEAD_LETTERED],
         ac_count.by_decision[FE_AUDIT_SETTLED], ac_count.by_decision[FE_AUDIT_COMPENSATED],
         ac_count.by_decision[FE_AUDIT_BREAKER], ac_count.by_decision[FE_AUDIT_REDRIVEN],
         ac_count.recon, avr.checkpoints, avrc == 0 ? "ok" : fe_audit_bad_name(avr.bad),
         avrc == 0 ? "" : ": ", avrc == 0 ? "" : avr.why);
  ju("audit_verified", (uint64_t)(avrc == 0));
  ju("audit_records", ac_count.records);
  ju("audit_checkpoints", avr.checkpoints);
  ju("audit_recon_records", ac_count.recon);
  ju("audit_refused", audit_refused + as.lost);

  printf("  checks:\n");
  check(conserved, "conservation: %" PRIu64 " accepted = %" PRIu64 " ended once (%"
        PRIu64 " twice, %" PRIu64 " never); bus published %" PRIu64 " = completed + "
        "rejected + dead-lettered", cli.new_accepted, sum, twice, never, bs.published);
  check(cli.retries_caught == cli.retries && cli.reuses_caught == cli.reuses,
        "duplicates caught = injected (retries %" PRIu64 "/%" PRIu64 ", reused ids %"
        PRIu64 "/%" PRIu64 ")", cli.retries_caught, cli.retries, cli.reuses_caught,
        cli.reuses);
  check(mal_wrong == 0 && mal_ok == (resumed ? mal_ok : cli.malformed),
        "every malformed order rejected by validation with its reason (%" PRIu64 "/%"
        PRIu64 ")", mal_ok, resumed ? mal_ok : cli.malformed);
  if (cli.new_accepted >= 2000) /* enough XNYS orders in the outage to judge */
    check(opened[XNYS] > 0 && closed[XNYS] > 0 && redriven > 0 && in_dlq == 0,
          "XNYS outage: breaker opened (%" PRIu64 ") and closed (%" PRIu64
          "), the redrive emptied the DLQ (%" PRIu64 " redriven, %" PRIu64 " left)",
          opened[XNYS], closed[XNYS], redriven, in_dlq);
  else
    check(in_dlq == 0, "the DLQ is empty (%" PRIu64 " redriven; too few new orders "
          "to judge the outage)", redriven);
  if (resumed)
    check(cli.new_answered + cli.new_accepted == cli.new_sent && cli.admission_other == 0,
          "resumed: %" PRIu64 " orders answered from the journal, none executed "
          "again; %" PRIu64 " new", cli.new_answered, cli.new_accepted);
  check(ss.stuck == 0 && ss.live == 0, "no saga stuck or left in flight");
  check(rrc == 0 && found_ok == n_inj && recon_unexpected == 0,
        "reconciliation found every injected break (%" PRIu64 "/%u) and nothing else",
        found_ok, n_inj);
  check(avrc == 0 && audit_refused + as.lost == 0 && ac_count.recon == recon_rep.n_breaks,
        "the audit trail verifies under the run's key (%" PRIu64 " frames), nothing "
        "refused, every break audited (%" PRIu64 "/%" PRIu64 ")", avr.frames,
        ac_count.recon, recon_rep.n_breaks);
  ju("failures", (uint64_t)failures);
  if (jf) {
    fprintf(jf, "\n}\n");
    if (jf != stdout)
      fclose(jf);
  }
  printf("%s\n", failures ? "order_flow: CHECKS FAILED" : "order_flow: all checks passed");
  fflush(stdout);

  if (mhd && opt.linger_ms) {
    struct timespec ts = {(time_t)(opt.linger_ms / 1000), (long)(opt.linger_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  if (mhd)
    MHD_stop_daemon(mhd);
  fe_saga_destroy(coord); /* before the bus: it writes to the bus's journal */
  fe_bus_destroy(bus);
  fe_gateway_destroy(gateway);
  for (int v = 0; v < N_VENUES; v++)
    fe_breaker_destroy(breakers[v]);
  fe_dlq_destroy(dlq);
  fe_idem_destroy(idem);
  for (int h = 0; h < H_N; h++)
    fe_hist_destroy(hists[h]);
  fe_recon_report_free(&recon_rep);
  free(fills.m), free(settles.m);
  free(ords), free(ref_px), free(ledger), free(custodian_book), free(buying_power);
  if (own_dir)
    nftw(opt.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return failures ? 1 : 0;
}
