/*
 * order_flow: a broker's day of order flow on libfinevent, end to end.
 *
 *   client stream (seeded: thousands of accounts, hundreds of symbols,
 *   limit and market orders, cancels, bursts, ~1 % client retries,
 *   ~0.5 % malformed orders, ~0.2 % reused client order ids)
 *     -> fe_bus_submit: idempotency table + journal (exactly once)
 *     -> validation (field checks, parallel to the journal)
 *     -> compliance: the library's pre-trade rule kit (compliance.h),
 *        its rules loaded from examples/order_flow_compliance.ini
 *        (--compliance FILE) by libfinevent-compliance-conf; its
 *        reference prices come from the FE_EV_MARKET_DATA events of the
 *        stream through the kit's market-data stage
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
 * directory unless --dir DIR.  Run it again with the same --dir, after a
 * clean end or after a kill -9 in the middle: the bus recovers from the
 * journal (asking the venue about orders in doubt), the saga coordinator
 * replays its records, the venue and the custodian re-deliver the answers
 * the dead process was waiting for, and the same client stream is sent
 * again - what was journaled is answered from the idempotency table,
 * what was lost is accepted anew.  The venue's and the custodian's books
 * and the broker's ledger live in DIR/state.map (a file mapped into
 * memory, so every store survives the kill), and the checks hold over
 * both runs: every order acknowledged ends exactly once, the venue took
 * none twice, the ledger and the custodian booked none twice.
 *
 * Exit status: 0 when every check held (conservation, compliance,
 * duplicates, the breaker and the redrive, malformed orders, sagas,
 * reconciliation, the audit trail), 1 when one failed, 2 on a usage or
 * setup error (a rule file that does not load included).  `order_flow --help` lists the
 * options; --json FILE writes the summary as flat JSON for scripts.
 */
#define _GNU_SOURCE
#include <finevent/compliance_conf.h>
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S FE_PRICE_SCALE
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* ------------------------------------------------------------- options */

/* The rule file shipped with the example; the in-tree build gives its
 * absolute path, a build elsewhere finds it from the source tree's root. */
#ifndef ORDER_FLOW_COMPLIANCE
#define ORDER_FLOW_COMPLIANCE "examples/order_flow_compliance.ini"
#endif

typedef struct opts {
  uint64_t orders, accounts, symbols, rate, seed;
  uint32_t trade_date; /* YYYYMMDD */
  const char *dir, *json, *compliance;
  fe_wait_t wait;
  int metrics_port;    /* -1: none */
  uint64_t linger_ms;  /* keep serving metrics after the run */
  uint64_t progress_ms; /* 0: 200 on a terminal, 1000 otherwise */
  int quiet, progress; /* progress: 1 line on a tty, 0 plain lines */
} opts_t;

static opts_t opt = {.orders = 100000, .accounts = 5000, .symbols = 300,
                     .rate = 0, .seed = 42, .trade_date = 20261204,
                     .compliance = ORDER_FLOW_COMPLIANCE,
                     .wait = FE_WAIT_PARK, .metrics_port = -1};

/* ------------------------------------------------------------ reasons */

enum { /* validation */
  R_BAD_QTY = 1, R_BAD_SIDE = 2, R_BAD_TYPE = 3, R_BAD_PRICE = 4,
  R_BAD_SYMBOL = 5,
  /* compliance: the kit's own codes, FE_REASON_CR_* (reason.h) */
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
  case R_VENUE_REJECT: return "venue_reject";
  case R_VENUE_DOWN: return "venue_down";
  case FE_REASON_CIRCUIT_OPEN: return "circuit_open";
  case R_SAGA_FULL: return "saga_table_full";
  default: /* the compliance kit's and the library's own */
    return r >= FE_REASON_RESERVED_MIN && fe_reason_name(r) ? fe_reason_name(r)
                                                            : "other";
  }
}

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

/* The compliance kit (compliance.h): its order stage checks every new
 * order, its market-data stage keeps the reference prices current, and
 * the venue prices its fills from the same references. */
static fe_compliance_t *kit;

/* What the kit reports (compliance.h): its rule set at start, and every
 * breach a DETECTIVE rule let through or a CORRECTIVE one amended; each
 * goes to the audit trail.  Compliance worker (START: main). */
static uint64_t kit_flags, kit_amends;
static void on_compliance(const fe_compliance_event_t *e, void *u) {
  (void)u;
  char fp[FE_FINGERPRINT_HEX];
  switch (e->kind) {
  case FE_COMPLIANCE_START:
    fe_fingerprint_format(e->fingerprint, fp);
    audit_note(FE_AUDIT_NOTE, 0, "compliance rules %s from %s", fp, opt.compliance);
    break;
  case FE_COMPLIANCE_FLAG:
  case FE_COMPLIANCE_AMEND:
    __atomic_fetch_add(e->kind == FE_COMPLIANCE_FLAG ? &kit_flags : &kit_amends, 1,
                       __ATOMIC_RELAXED);
    audit_note(FE_AUDIT_NOTE, e->account, "compliance %s %s %s %s: %lld, limit %lld",
               e->kind == FE_COMPLIANCE_FLAG ? "flag" : "amend",
               fe_compliance_rule_name((int)e->rule), e->symbol, e->client_order_id,
               (long long)e->value, (long long)e->limit);
    break;
  default:
    break;
  }
}

/* ------------------------------------------------- what survives a kill
 *
 * DIR/state.map, mapped MAP_SHARED: every store lands in the page cache
 * at once, so a kill -9 loses none of it (a power cut may, as with the
 * journal under FE_FSYNC_NONE).  It holds what is not the broker's
 * process: the venue's and the custodian's books and the answers they
 * still owe, the market's last prices, and - for the checks across runs -
 * what the client was told and how each order ended, and the broker's
 * settled ledger. */

/* An answer of the outside world: a venue's execution report or a
 * custodian's confirmation, due at due_ns, for the saga step waiting on
 * token. */
typedef struct msg {
  uint64_t due_ns, token;
  uint32_t type, ok, reason, pad;
  uint64_t account;
  uint32_t symbol, order_no;
  int64_t qty, amount;
} msg_t;

/* One order.  Each field is written by one thread at a time (whoever owns
 * the order at that point: the client, the execution worker, the journal
 * worker, the saga coordinator, the world thread); a field another thread
 * reads while the day runs goes through __atomic, relaxed (one writer's
 * value; the venue's verdict is released after the book it guards).  Main
 * reads the rest at start, before the threads run, or once every order
 * has ended. */
typedef struct ord {
  /* the client */
  uint8_t submitted;   /* acknowledged by fe_bus_submit (0), in any run,
                          or answered from the journal of an earlier one */
  uint8_t malformed;   /* the validation reason injected, 0 none */
  uint8_t fat_finger;  /* a well-formed order 5x above any sane size */
  uint8_t side;
  uint32_t symbol;
  uint64_t account;
  /* the bus's outcome (journal worker) */
  uint8_t bus_status;  /* last FE_IDEM_* outcome the bus gave */
  uint8_t bus_stage, bus_reason;
  uint8_t dead_letters;/* times dead-lettered (redrives follow) */
  /* how it ended */
  uint8_t ends;        /* terminal outcomes recorded in one run: must be 1 */
  uint8_t kind;        /* K_* of the last one */
  uint8_t end_run;     /* the run that recorded it */
  /* the venue's book */
  uint8_t venue_accepted; /* times a venue accepted it: more than 1 is a
                             double execution */
  uint8_t plan, venue; /* PLAN_*, the venue's decision */
  /* the broker's books and the custodian's */
  uint8_t kit_closed;  /* 0: open in this run's compliance kit; else the
                          run that told its kit how it ended */
  uint8_t ledger_booked, custodian_booked; /* each books a trade once: a
                          re-sent confirmation or a saga finishing again
                          after a kill is not a second trade */
  int64_t fill_qty, fill_px;
  uint64_t saga_id;    /* its order saga (booking) */
  msg_t fill, settle;  /* the latest answer owed for each step */
} ord_t;

typedef struct pos { int64_t qty, amount; } pos_t;

#define STATE_MAGIC UINT64_C(0x464C4F574F524431) /* "FLOWORD1" */
typedef struct state_hdr {
  uint64_t magic, orders, accounts, symbols, seed, trade_date;
  uint64_t runs;       /* runs that mapped it, this one included */
  uint64_t ord_size;   /* sizeof(ord_t): the layout's version */
} state_hdr_t;

static state_hdr_t *hdr;
static int64_t *market;          /* [symbols]: the market's last prices */
static ord_t *ords;              /* [orders] */
static pos_t *ledger, *custodian_book; /* [(accounts + 1) * symbols] */
static void *state_map;
static size_t state_len;
static uint8_t this_run;         /* hdr->runs, for end_run */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The day's opening prices, 5.00 .. 500.00, from the seed. */
static void opening_prices(int64_t *px) {
  uint64_t r = opt.seed ^ 0x5EED;
  for (uint64_t i = 0; i < opt.symbols; i++)
    px[i] = (int64_t)(500 + rnd(&r) % 49500) * (S / 100);
}

/* Maps DIR/state.map, creating it for a new directory.  Returns 0, 1 when
 * it already held a day (a resumed run), -1 with a message. */
static int state_open(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/state.map", dir);
  size_t cells = (size_t)(opt.accounts + 1) * opt.symbols;
  size_t off_market = align64(sizeof(state_hdr_t));
  size_t off_ords = off_market + align64(opt.symbols * sizeof(int64_t));
  size_t off_ledger = off_ords + align64(opt.orders * sizeof(ord_t));
  size_t off_cust = off_ledger + align64(cells * sizeof(pos_t));
  state_len = off_cust + align64(cells * sizeof(pos_t));
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fprintf(stderr, "order_flow: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int existing = st.st_size > 0;
  if (existing && (size_t)st.st_size != state_len) {
    fprintf(stderr, "order_flow: %s was made by a run with other --orders, "
            "--accounts or --symbols (%lld bytes, these need %zu)\n", path,
            (long long)st.st_size, state_len);
    close(fd);
    return -1;
  }
  if (!existing && ftruncate(fd, (off_t)state_len) != 0) { /* sparse zeros */
    fprintf(stderr, "order_flow: %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
  }
  state_map = mmap(NULL, state_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (state_map == MAP_FAILED) {
    fprintf(stderr, "order_flow: mmap %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *b = state_map;
  hdr = (state_hdr_t *)b;
  market = (int64_t *)(b + off_market);
  ords = (ord_t *)(b + off_ords);
  ledger = (pos_t *)(b + off_ledger);
  custodian_book = (pos_t *)(b + off_cust);
  if (hdr->magic == 0) { /* new, or killed before the header was written */
    hdr->orders = opt.orders, hdr->accounts = opt.accounts;
    hdr->symbols = opt.symbols, hdr->seed = opt.seed;
    hdr->trade_date = opt.trade_date, hdr->ord_size = sizeof(ord_t);
    opening_prices(market);
    __atomic_store_n(&hdr->magic, STATE_MAGIC, __ATOMIC_RELEASE);
  } else if (hdr->magic != STATE_MAGIC || hdr->orders != opt.orders ||
             hdr->accounts != opt.accounts || hdr->symbols != opt.symbols ||
             hdr->seed != opt.seed || hdr->trade_date != opt.trade_date ||
             hdr->ord_size != sizeof(ord_t)) {
    fprintf(stderr, "order_flow: %s holds another day (its --orders %llu "
            "--accounts %llu --symbols %llu --seed %llu --date %llu): resume it "
            "with those options, or use another --dir\n", path,
            (unsigned long long)hdr->orders, (unsigned long long)hdr->accounts,
            (unsigned long long)hdr->symbols, (unsigned long long)hdr->seed,
            (unsigned long long)hdr->trade_date);
    return -1;
  }
  hdr->runs++;
  this_run = (uint8_t)(hdr->runs > 255 ? 255 : hdr->runs);
  return hdr->runs > 1;
}

/* -------------------------------------------------------------- venues */

enum { XNAS, XNYS, ARCX, N_VENUES };
static const char *venue_names[N_VENUES] = {"XNAS", "XNYS", "ARCX"};
static fe_breaker_t *breakers[N_VENUES];
static uint64_t opened[N_VENUES], closed[N_VENUES], transitions[N_VENUES];
static int xnys_down;            /* set by the execution stage's progress */
static uint64_t down_from, down_to; /* order numbers of the outage */
static uint64_t exec_high;       /* highest order number execution saw */
static uint64_t slow_calls;

/* What the venue decided for an order it accepted (its book, ord_t).  The
 * fill is decided at acceptance from the order's hash. */
enum { PLAN_FILL = 1, PLAN_PARTIAL = 2, PLAN_EXPIRE = 3 };

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
  /* The venue trades at the market's price, as the kit last saw it. */
  int64_t ref = fe_compliance_reference(kit, ev->order.symbol);
  ord_t *o = &ords[no];
  uint64_t f = h / 100000 % 100;
  int market_order = ev->order.type == FE_ORD_MARKET;
  int plan = market_order || f < 80 ? PLAN_FILL : f < 92 ? PLAN_PARTIAL : PLAN_EXPIRE;
  int64_t q = ev->order.quantity;
  int buy = ev->order.side == FE_SIDE_BUY;
  o->fill_qty = plan == PLAN_FILL      ? q
                : plan == PLAN_PARTIAL ? 1 + (q - 1) * (int64_t)(30 + f % 60) / 100
                                       : 0;
  o->fill_px = market_order ? ref
               : buy        ? (ev->order.price < ref ? ev->order.price : ref)
                            : (ev->order.price > ref ? ev->order.price : ref);
  o->venue = (uint8_t)venue;
  o->plan = (uint8_t)plan;
  /* Last: the venue holds it (the in-doubt question after a kill). */
  __atomic_fetch_add(&o->venue_accepted, 1, __ATOMIC_RELEASE);
  return FE_CONTINUE;
}

/* After a kill, for an order journaled with an intent to send and no
 * outcome: did the venue take it?  (Its book says; a real host asks the
 * venue, by client order id, over its session.) */
static int venue_has(const fe_event_t *ev, void *u) {
  (void)u;
  return ev->trace_id >= 1 && ev->trace_id <= opt.orders &&
         __atomic_load_n(&ords[ev->trace_id - 1].venue_accepted, __ATOMIC_ACQUIRE) > 0;
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

static uint64_t kind_count[K_N]; /* ends recorded by this run */
static uint64_t rereported, redecided;

/* Records how order no ended.  After a kill, an end recorded by the dead
 * run may come again (the bus re-drives an event whose outcome was not
 * journaled yet; a saga whose last records were lost finishes again):
 * that is a re-report, not a second end - what the client was told
 * depends on the journaled outcome, and every external effect is
 * guarded separately (the venue's, the ledger's and the custodian's
 * counts).  Within one run a second end is a conservation failure. */
static void end_order(uint64_t no, uint8_t kind) {
  ord_t *o = &ords[no];
  uint8_t ends = __atomic_load_n(&o->ends, __ATOMIC_RELAXED);
  if (ends != 0 && __atomic_load_n(&o->end_run, __ATOMIC_RELAXED) != this_run) {
    __atomic_fetch_add(&rereported, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&o->kind, __ATOMIC_RELAXED) != kind)
      __atomic_fetch_add(&redecided, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&o->ends, 0, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&o->end_run, this_run, __ATOMIC_RELAXED);
  __atomic_store_n(&o->kind, kind, __ATOMIC_RELAXED);
  __atomic_fetch_add(&o->ends, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&kind_count[kind], 1, __ATOMIC_RELEASE);
}

/* --------------------------------------------------------- latencies */

enum { H_VALIDATION, H_COMPLIANCE, H_EXECUTION, H_BOOKING, H_E2E, H_N };
static const char *hist_names[H_N] = {"validation", "compliance", "execution",
                                      "booking", "end_to_end"};
static fe_hist_t *hists[H_N]; /* each recorded by one stage's one worker */

/* The bus's stages, by id (the order of cfg.stages; the journaller and the
 * outcome stage follow). */
enum { ST_VALIDATION, ST_MD, ST_COMPLIANCE, ST_EXECUTION, ST_BOOKING, ST_SAGA,
       N_STAGES, ST_JOURNAL = N_STAGES, ST_OUTCOME };
static const uint32_t hist_stage[H_N] = {ST_VALIDATION, ST_COMPLIANCE, ST_EXECUTION,
                                         ST_BOOKING, ST_OUTCOME};

/* The metrics the endpoint serves (metrics.h): each recording names the
 * worker it runs on as its slot, so no two threads share one. */
static fe_metrics_t *metrics;

/* Submission to this point, into the summary's histogram and the
 * registry's per-stage latency (end to end: the outcome stage's). */
static uint64_t t_boot; /* this process's start: older stamps came from a
                           run before a kill (re-driven by recovery) */
static void stamp(int h, uint32_t worker, const fe_event_t *ev) {
  uint64_t now = fe_clock_now_ns();
  if (now > ev->order.recv_ts_ns && ev->order.recv_ts_ns > t_boot) {
    fe_hist_record(hists[h], now - ev->order.recv_ts_ns);
    fe_metrics_latency(metrics, worker, hist_stage[h], now - ev->order.recv_ts_ns);
  }
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
    stamp(H_VALIDATION, ctx->worker, ev);
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

/* The kit's order stage, as fe_compliance_stage() made it. */
static fe_stage_batch_fn kit_batch;
/* The kit keeps each account's state with one writer at a time
 * (compliance.h, "Threads"): its stage checks orders on a bus worker while
 * this example closes them where their fate is known (the saga thread,
 * other stages).  So every call that touches accounts holds this lock: one
 * acquisition per batch of up to 64 orders on the stage's side.  A host
 * after the stage's full speed would instead send the closes through the
 * bus to the stage's worker. */
static pthread_mutex_t kit_lock = PTHREAD_MUTEX_INITIALIZER;
static void *kit_user;

/* Compliance: the kit checks the batch.  Left out: orders a venue already
 * holds (after a kill the bus re-drives them, marked sent; they were
 * checked by the run that sent them, and the kit's state of that run is
 * gone) and redriven orders' latency. */
static void compliance(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                       void *u) {
  (void)u;
  fe_metrics_batch(metrics, ctx->worker, ST_COMPLIANCE, n);
  fe_event_t *todo[64];
  for (uint32_t i = 0; i < n;) {
    uint32_t k = 0;
    for (; i < n && k < 64; i++) {
      ord_t *o = ord_of(evs[i]);
      if (o != NULL && __atomic_load_n(&o->venue_accepted, __ATOMIC_ACQUIRE) != 0) {
        __atomic_store_n(&o->kit_closed, this_run, __ATOMIC_RELAXED);
        continue;
      }
      if (o != NULL) /* open once the kit accepts it */
        __atomic_store_n(&o->kit_closed, 0, __ATOMIC_RELAXED);
      if (!is_redriven(evs[i]))
        stamp(H_COMPLIANCE, ctx->worker, evs[i]);
      todo[k++] = evs[i];
    }
    if (k > 0) {
      pthread_mutex_lock(&kit_lock);
      kit_batch(ctx, todo, k, kit_user);
      pthread_mutex_unlock(&kit_lock);
    }
  }
}

/* The kit's open order no is over: filled (qty > 0, the rest released)
 * or released whole (qty 0).  Once per opening, by whoever owns the order
 * then (ord_t.kit_closed: 0 open in this run's kit, else the run that
 * closed it). */
static uint64_t kit_unknown; /* closes of orders this run's kit never saw */
static void kit_close(uint64_t no, uint64_t account, uint32_t symbol, int64_t qty) {
  ord_t *o = &ords[no];
  if (__atomic_exchange_n(&o->kit_closed, this_run, __ATOMIC_RELAXED) != 0)
    return;
  char sym[FE_SYMBOL_MAX + 1] = {0}, id[FE_CLORDID_MAX + 1];
  sym_name(symbol, sym);
  snprintf(id, sizeof id, "O%llx-%llu", (unsigned long long)(opt.seed & 0xffffff),
           (unsigned long long)no);
  pthread_mutex_lock(&kit_lock);
  int rc = qty > 0 ? fe_compliance_fill(kit, account, sym, id, qty) : 0;
  if (rc == 0 && fe_compliance_release(kit, account, sym, id) == FE_ENOTFOUND &&
      qty == 0)
    rc = FE_ENOTFOUND; /* (after a fill of the whole order: already closed) */
  pthread_mutex_unlock(&kit_lock);
  if (rc != 0) /* opened by a run before a kill: that kit is gone */
    __atomic_fetch_add(&kit_unknown, 1, __ATOMIC_RELAXED);
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

/* The saga context of order no, from the order and the venue's book. */
static void order_ctx(uint64_t no, uint64_t account, uint32_t symbol, uint8_t side,
                      sctx_t *c) {
  const ord_t *v = &ords[no];
  memset(c, 0, sizeof *c);
  c->account = account;
  c->order_no = (uint32_t)no;
  c->symbol = symbol;
  c->side = side;
  c->plan = __atomic_load_n(&v->plan, __ATOMIC_RELAXED);
  c->venue = v->venue;
  c->dk = hash2(no, 11) % 100 < 3; /* 3 %: the custodian says "don't know" */
  c->fill_qty = v->fill_qty;
  c->fill_px = v->fill_px;
  c->trade_date = opt.trade_date;
}

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
    stamp(H_BOOKING, ctx->worker, ev);
  /* Once per order, whatever a kill re-drives: an order whose saga a
   * run started keeps it (a saga lost with its unwritten START record,
   * whose id state.map kept, is started again at resume, see
   * restart_lost_sagas()). */
  if (__atomic_load_n(&ords[no].saga_id, __ATOMIC_RELAXED) != 0)
    return FE_CONTINUE;
  sctx_t c;
  order_ctx(no, ev->order.account, (uint32_t)sym_index(ev->order.symbol),
            ev->order.side, &c);
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
    stamp(H_EXECUTION, ctx->worker, ev);
  return fe_gateway_stage(ctx, ev, gateway);
}

/* The bus's outcome of every event (journal worker). */
#define JOURNAL_WORKER 0 /* cfg.journal_worker */
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
  uint32_t sym = (uint32_t)(sym_index(ev->order.symbol) < 0 ? 0 : sym_index(ev->order.symbol));
  /* Rejects and dead letters by stage and reason the registry reads from
   * the bus itself (counting them here too would count them twice);
   * what the bus finished, it does not count per stage. */
  if (out->status == FE_IDEM_DEAD_LETTERED) {
    __atomic_fetch_add(&o->dead_letters, 1, __ATOMIC_RELAXED);
    kit_close(no, ev->order.account, sym, 0); /* checked again if redriven */
    return;
  }
  if (!__atomic_load_n(&o->dead_letters, __ATOMIC_RELAXED))
    stamp(H_E2E, JOURNAL_WORKER, ev);
  if (out->status == FE_IDEM_REJECTED) {
    if (stage == ST_COMPLIANCE) /* refused: the kit holds nothing */
      __atomic_store_n(&o->kit_closed, this_run, __ATOMIC_RELAXED);
    else if (stage > ST_COMPLIANCE)
      kit_close(no, ev->order.account, sym, 0);
    end_order(no, stage == ST_VALIDATION   ? K_REJ_VALIDATION
                  : stage == ST_COMPLIANCE ? K_REJ_COMPLIANCE
                  : stage == ST_EXECUTION  ? K_REJ_VENUE
                                           : K_REJ_BOOKING);
  } else {
    fe_metrics_count(metrics, JOURNAL_WORKER, ST_OUTCOME, FE_METRIC_ACCEPTED, 0);
  }
}

/* ------------------------------------------- the outside world: venue
 * reports and custodian confirmations, later, from their own thread */

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
      ord_t *o = &ords[m.order_no];
      if (m.type == FE_EV_SETTLE_CONFIRM && m.ok && o->custodian_booked == 0) {
        /* The custodian books a settlement once, whatever is re-sent. */
        pos_t *p = &custodian_book[m.account * opt.symbols + m.symbol];
        p->qty += m.qty, p->amount += m.amount;
        __atomic_store_n(&o->custodian_booked, 1, __ATOMIC_RELAXED);
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
             .account = x->account, .symbol = x->symbol, .order_no = x->order_no};
  ords[x->order_no].fill = m; /* owed, until the saga has it */
  push(&fills, &m);
  return FE_SAGA_PENDING;
}
static fe_saga_result_t settle(fe_saga_call_t *c, void *u) {
  (void)u;
  sctx_t *x = c->ctx;
  if (fe_recon_settle_date(x->trade_date, 1, &x->settle_date) != 0)
    return c->reason = R_CUSTODIAN_DK, FE_SAGA_FAIL;
  /* Filled: the order rests no more; the kit books the fill and frees
   * what it still reserved (a partial fill's rest expired at the venue). */
  kit_close(x->order_no, x->account, x->symbol, x->fill_qty);
  int64_t sq = x->side == FE_SIDE_BUY ? x->fill_qty : -x->fill_qty;
  int refuse = x->dk && c->attempt == 1;
  msg_t m = {.due_ns = fe_clock_now_ns() + 3 * MS, .token = c->token,
             .type = FE_EV_SETTLE_CONFIRM, .ok = !refuse,
             .reason = refuse ? R_CUSTODIAN_DK : 0, .account = x->account,
             .symbol = x->symbol, .order_no = x->order_no, .qty = sq,
             .amount = -sq * x->fill_px};
  ords[x->order_no].settle = m;
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
static uint64_t orphan_sagas, ledger_rebooked;
static void on_saga_end(const fe_saga_end_t *e, void *u) {
  (void)u;
  const sctx_t *x = e->ctx;
  ord_t *o = &ords[x->order_no];
  __atomic_fetch_add(&saga_states[e->state], 1, __ATOMIC_RELAXED);
  if (__atomic_load_n(&o->saga_id, __ATOMIC_RELAXED) != e->saga_id) {
    /* A second saga for one order: booking started one twice. */
    __atomic_fetch_add(&orphan_sagas, 1, __ATOMIC_RELAXED);
    return;
  }
  uint8_t k = K_SAGA_FAILED;
  if (e->state == FE_SAGA_COMPLETED) {
    k = x->plan == PLAN_PARTIAL ? K_PARTIAL : K_FILLED;
    if (__atomic_load_n(&o->ledger_booked, __ATOMIC_RELAXED) == 0) {
      /* The ledger books a trade once (a saga that finishes again after
       * a kill lost its last records is not a second trade). */
      int64_t sq = x->side == FE_SIDE_BUY ? x->fill_qty : -x->fill_qty;
      pos_t *p = &ledger[x->account * opt.symbols + x->symbol];
      p->qty += sq, p->amount += -sq * x->fill_px;
      __atomic_store_n(&o->ledger_booked, 1, __ATOMIC_RELAXED);
    } else {
      __atomic_fetch_add(&ledger_rebooked, 1, __ATOMIC_RELAXED);
    }
    buying_power[x->account] += (int64_t)x->reserved_cash; /* now cash */
  } else if (e->reason == R_CLIENT_CANCEL) {
    /* COMPENSATED, or FAILED when the cancel landed before any step ran */
    k = K_CANCELLED;
  } else if (e->state == FE_SAGA_COMPENSATED) {
    k = K_EXPIRED;
  }
  kit_close(x->order_no, x->account, x->symbol, 0); /* unless settle did */
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
  uint64_t cancels, market_data, bursts, malformed, fat_fingers;
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
    case W_NEW: {
      cli.new_sent++;
      ord_t *o = &ords[s->no[i]];
      int si = sym_index(s->o[i].symbol);
      o->account = s->o[i].account; /* the client's copy */
      o->symbol = (uint32_t)(si < 0 ? 0 : si);
      o->side = s->o[i].side;
      if (rc == 0) {
        cli.new_accepted++;
        __atomic_store_n(&o->submitted, 1, __ATOMIC_RELAXED);
      } else if (rc == FE_EDUPLICATE || rc == FE_EINPROGRESS) {
        /* Journaled by an earlier run (and re-driven by this one, while
         * in progress): acknowledged then, even if that run died before
         * it could note so. */
        cli.new_answered++;
        __atomic_store_n(&o->submitted, 1, __ATOMIC_RELAXED);
      } else {
        cli.admission_other++;
      }
      break;
    }
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
  int fat = (r >> 40) % 1000 < 5;
  if (fat)
    o->quantity = 50000; /* a fat finger: compliance's max_qty */
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
  } else if (fat) {
    ords[no].fat_finger = 1;
    cli.fat_fingers++;
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

static void progress(int last) {
  static uint64_t t_last, pub_last, t_print;
  if (opt.quiet)
    return;
  uint64_t now = fe_clock_now_ns();
  uint64_t every = opt.progress_ms ? opt.progress_ms : opt.progress ? 200 : 1000;
  if (!last && now - t_print < every * MS)
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

/* The Prometheus text format 0.0.4: the library's exposition of the
 * registry (per-stage latency and batch histograms, outcomes by stage and
 * reason, the bus's counters and queue depths: finevent_*), then what
 * only this application knows (order_flow_*), from thread-safe reads. */
static void metrics_text(buf_t *b) {
  for (size_t need = 64 << 10;;) { /* grows while the text does */
    if (b->cap < need) {
      char *np = realloc(b->p, need);
      if (np == NULL)
        return;
      b->p = np, b->cap = need;
    }
    int rc = fe_metrics_write_prometheus(metrics, b->p, b->cap, &b->len);
    if (rc == 0)
      break;
    if (rc != FE_ERANGE) {
      b->len = 0;
      break;
    }
    need = b->len + 4096;
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
  fe_compliance_stats_t cs;
  fe_compliance_stats(kit, &cs);
  metric(b, "compliance_checks_total", "counter", "Orders the compliance kit checked, by verdict.");
  uint64_t refused = 0;
  for (int r = 0; r <= FE_RULE_COUNT; r++)
    refused += cs.rejected[r];
  bprintf(b, "order_flow_compliance_checks_total{verdict=\"accepted\"} %" PRIu64 "\n", cs.accepted);
  bprintf(b, "order_flow_compliance_checks_total{verdict=\"rejected\"} %" PRIu64 "\n", refused);
  metric(b, "compliance_reserved", "gauge", "Notional the kit holds reserved for open orders (firm).");
  bprintf(b, "order_flow_compliance_reserved %.2f\n", (double)fe_compliance_reserved(kit, NULL) / S);
  metric(b, "orders_total", "counter", "Orders by final outcome (this run).");
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
          "  --compliance FILE the compliance kit's rules (default\n"
          "                    " ORDER_FLOW_COMPLIANCE ")\n"
          "  --wait spin|yield|park   the bus's wait strategy (default park)\n"
          "  --metrics-port N  serve Prometheus metrics on 127.0.0.1:N/metrics\n"
          "  --linger-ms N     keep serving metrics N ms after the summary\n"
          "  --json FILE       write the summary as flat JSON (\"-\": stdout)\n"
          "  --progress-ms N   a progress line every N ms (default 200 on a\n"
          "                    terminal, 1000 otherwise)\n"
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
    else if (!strcmp(a, "--compliance"))
      opt.compliance = v;
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
    else if (!strcmp(a, "--progress-ms") && x >= 1 && x <= 3600000)
      opt.progress_ms = x;
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
  opening_prices(s->feed); /* the day replays from its opening */
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
      market[si] = md.price; /* the market's last print, for a restart */
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
  if (ss.live != 0 || pending != 0 || fe_bus_drain(bus, 0) != 0)
    return 0;
  /* Every order acknowledged, in this run or one before, has ended or
   * waits in the dead-letter queue. */
  for (uint64_t no = 0; no < opt.orders; no++) {
    const ord_t *o = &ords[no];
    if (__atomic_load_n(&o->submitted, __ATOMIC_RELAXED) &&
        __atomic_load_n(&o->ends, __ATOMIC_RELAXED) == 0 &&
        __atomic_load_n(&o->bus_status, __ATOMIC_RELAXED) != FE_IDEM_DEAD_LETTERED)
      return 0;
  }
  return 1;
}

/* After a kill: an order saga whose START record the run did not get to
 * write is gone from the journal, and so is its order's outcome (booking
 * started the saga, and fe_saga_start() appended the START, before the
 * bus journaled the outcome, saga.h).  The bus re-drives the order, but
 * booking finds the saga id that this order's state in DIR/state.map
 * kept across the kill, and starts none.  Start a new one for each, from
 * the venue's book.  Returns how many. */
static uint64_t restart_lost_sagas(void) {
  uint64_t n = 0;
  for (uint64_t no = 0; no < opt.orders; no++) {
    ord_t *o = &ords[no];
    fe_saga_info_t info;
    /* In this order: a saga that ends meanwhile has recorded its end
     * before fe_saga_get() stops finding it. */
    /* (Booking may be noting new sagas meanwhile.) */
    uint64_t was = __atomic_load_n(&o->saga_id, __ATOMIC_RELAXED);
    if (was == 0 || fe_saga_get(coord, was, &info) != FE_ENOTFOUND ||
        __atomic_load_n(&o->ends, __ATOMIC_ACQUIRE) != 0)
      continue;
    sctx_t c;
    order_ctx(no, o->account, o->symbol, o->side, &c);
    uint64_t id;
    if (fe_saga_start(coord, order_def, &c, sizeof c, &id) == 0) {
      __atomic_store_n(&o->saga_id, id, __ATOMIC_RELAXED);
      n++;
    }
  }
  return n;
}

/* Recovery's replay of the saga records (cfg.on_replay): the coordinator
 * takes them, and each START says, in its context, which order the saga
 * is for - the journal's word, which holds even when the killed run
 * started the saga and died before it noted the id (booking then leaves
 * the re-driven order to that saga instead of starting a second one). */
static int replay_record(const fe_journal_record_t *rec, void *u) {
  int rc = fe_saga_journal_replay(rec, u);
  fe_saga_rec_t h;
  if (rc != 0 || rec->type != FE_JREC_SAGA || rec->len < sizeof h + sizeof(sctx_t))
    return rc;
  memcpy(&h, rec->data, sizeof h);
  sctx_t x;
  memcpy(&x, (const char *)rec->data + sizeof h, sizeof x);
  if (h.type == FE_SAGA_REC_START && h.ctx_len >= sizeof x && x.order_no < opt.orders)
    ords[x.order_no].saga_id = h.saga_id;
  return 0;
}

static int count_saga(const fe_saga_info_t *info, void *u) {
  (void)info;
  ++*(uint64_t *)u;
  return 0;
}

/* After a kill: the venue and the custodian send again what the sagas
 * the journal brought back may wait for (a confirmation source re-delivers
 * until the saga shows the step done, saga.h); an answer to a step already
 * done is late and dropped by the coordinator.  That includes sagas whose
 * end the killed run saw but whose last records it did not write: they
 * finish again (a re-report).  Returns how many. */
static uint64_t redeliver(void) {
  uint64_t n = 0, now = fe_clock_now_ns();
  for (uint64_t no = 0; no < opt.orders; no++) {
    ord_t *o = &ords[no];
    fe_saga_info_t info;
    if (o->saga_id == 0 || fe_saga_get(coord, o->saga_id, &info) != 0)
      continue;
    if (o->fill.token != 0) {
      msg_t m = o->fill;
      m.due_ns = now;
      push(&fills, &m), n++;
    }
    if (o->settle.token != 0) {
      msg_t m = o->settle;
      m.due_ns = now;
      push(&settles, &m), n++;
    }
  }
  return n;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0)
    return 2;
  opt.progress = isatty(2);
  fe_diag_t d = {0};
  SETUP(fe_clock_init(&d));
  t_boot = fe_clock_now_ns();
  /* The compliance kit's rules, from the file (before anything is made:
   * a file that does not load leaves nothing behind). */
  fe_compliance_config_t kc;
  fe_compliance_config_init(&kc);
  uint64_t cap26 = UINT64_C(1) << 26, cells = (opt.accounts + 1) * opt.symbols;
  kc.max_accounts = opt.accounts + 1 < cap26 ? opt.accounts + 1 : cap26;
  kc.max_symbols = opt.symbols;
  kc.max_cells = cells < opt.orders + 1024 ? cells : opt.orders + 1024;
  kc.max_cells = kc.max_cells < cap26 ? kc.max_cells : cap26;
  kc.max_orders = opt.orders + 1024 < cap26 ? opt.orders + 1024 : cap26;
  kc.on_event = on_compliance; /* a [tables] section in the file overrides */
  fe_compliance_rules_t *rules;
  fe_compliance_conf_error_t cerr;
  if (fe_compliance_conf_load(opt.compliance, &rules, &kc, &cerr) != 0) {
    fprintf(stderr, "order_flow: %s:%d: %s%s\n", cerr.file, cerr.line, cerr.reason,
            cerr.line == 0 ? " (name the rules with --compliance FILE)" : "");
    return 2;
  }
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
  int resumed = state_open(opt.dir);
  if (resumed < 0)
    return 2;

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

  /* The kit (its START report goes to the audit trail). */
  int krc = fe_compliance_create(&kc, rules, &kit, &d);
  fe_compliance_rules_destroy(rules);
  SETUP(krc);
  /* The session opens on the market's last prices (the opening ones, or
   * where a killed run left them); FE_EV_MARKET_DATA moves them on. */
  for (uint64_t i = 0; i < opt.symbols; i++) {
    char sym[FE_SYMBOL_MAX + 1] = {0};
    sym_name((uint32_t)i, sym);
    SETUP(fe_compliance_set_reference(kit, sym, market[i]));
  }
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
  fe_stage_def_t st[N_STAGES];
  for (int i = 0; i < N_STAGES; i++)
    fe_stage_def_init(&st[i]);
  st[ST_VALIDATION].name = "validation", st[ST_VALIDATION].handler = validation;
  st[ST_VALIDATION].n_types = 2;
  st[ST_VALIDATION].types[0] = FE_EV_NEW_ORDER, st[ST_VALIDATION].types[1] = FE_EV_CANCEL;
  st[ST_VALIDATION].parallel_to_journal = 1; /* a pure check, as LMAX runs it */
  /* The kit's reference prices; the order check waits for it, so an order
   * published after a price is always checked against it. */
  SETUP(fe_compliance_md_stage(kit, &st[ST_MD], &d));
  st[ST_MD].parallel_to_journal = 1;
  SETUP(fe_compliance_stage(kit, &st[ST_COMPLIANCE], &d));
  kit_batch = st[ST_COMPLIANCE].batch_handler, kit_user = st[ST_COMPLIANCE].user;
  st[ST_COMPLIANCE].batch_handler = compliance, st[ST_COMPLIANCE].user = NULL;
  /* New orders only: the saga decides how an order ends (a client's
   * cancel may lose to the fill) and closes it in the kit then. */
  st[ST_COMPLIANCE].n_types = 1, st[ST_COMPLIANCE].types[0] = FE_EV_NEW_ORDER;
  st[ST_COMPLIANCE].n_deps = 2;
  st[ST_COMPLIANCE].deps[0] = ST_VALIDATION, st[ST_COMPLIANCE].deps[1] = ST_MD;
  st[ST_EXECUTION].name = "execution", st[ST_EXECUTION].handler = execution;
  st[ST_EXECUTION].n_types = 1, st[ST_EXECUTION].types[0] = FE_EV_NEW_ORDER;
  st[ST_EXECUTION].n_deps = 1, st[ST_EXECUTION].deps[0] = ST_COMPLIANCE;
  st[ST_EXECUTION].worker = 1;
  st[ST_EXECUTION].retry.max_attempts = 1; /* a venue failure dead-letters at once */
  st[ST_BOOKING].name = "booking", st[ST_BOOKING].handler = booking;
  st[ST_BOOKING].n_types = 2;
  st[ST_BOOKING].types[0] = FE_EV_NEW_ORDER, st[ST_BOOKING].types[1] = FE_EV_CANCEL;
  st[ST_BOOKING].n_deps = 1, st[ST_BOOKING].deps[0] = ST_EXECUTION;
  st[ST_BOOKING].worker = 1;
  fe_saga_bus_map_t map;
  fe_saga_bus_map_init(&map);
  map.extract = extract;
  SETUP(fe_saga_bus_stage(coord, &map, &st[ST_SAGA], &d));
  st[ST_SAGA].worker = 1;

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
  cfg.stages = st, cfg.n_stages = N_STAGES;
  cfg.idem = idem, cfg.dlq = dlq, cfg.journal = &jc;
  cfg.journal_worker = JOURNAL_WORKER;
  /* The venue's and the custodian's answers carry their verdict in the
   * user area: journaled with them, so that recovery re-drives them whole.
   * (Set here: fe_bus_config_init() leaves it 0, not the "all of it" its
   * comment promises.) */
  cfg.journal_user_bytes = sizeof(report_t);
  cfg.on_outcome = on_outcome;
  cfg.in_doubt = venue_has; /* after a kill: ask the venue */
  cfg.on_replay = replay_record, cfg.replay_user = coord;
  SETUP(fe_bus_create(&cfg, &bus, &d));
  fe_bus_recovery_t rec;
  fe_bus_recovery(bus, &rec);
  uint64_t replayed = 0; /* sagas the journal brought back */
  fe_saga_foreach(coord, 0, count_saga, &replayed);

  /* The registry the metrics endpoint serves: the bus's counters read at
   * export, and what the stages record into it. */
  fe_metrics_config_t mc;
  fe_metrics_config_init(&mc);
  mc.workers = 2;
  mc.stages = 0; /* the bus's, the journaller and the outcome stage too */
  mc.bus = bus;
  SETUP(fe_metrics_create(&mc, &metrics, &d));

  SETUP(fe_saga_use_journal(coord, fe_bus_journal(bus), &d));
  /* Queued before the coordinator runs the replayed sagas' steps (which
   * note new answers owed in the same records). */
  uint64_t redelivered = resumed ? redeliver() : 0;
  SETUP(fe_saga_thread_start(coord));
  SETUP(fe_bus_start(bus, &d)); /* re-drives the journal's unfinished events */
  fe_bus_recovery(bus, &rec); /* the dead letters are back in the queue now */
  /* The outside world answers once the bus runs, after what recovery
   * re-drives (replayed sagas may already have asked it something). */
  pthread_t world;
  if (pthread_create(&world, NULL, world_main, NULL) != 0) {
    fprintf(stderr, "order_flow: cannot start the venue thread\n");
    return 2;
  }
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
  char fp[FE_FINGERPRINT_HEX];
  fe_fingerprint_t kfp;
  fe_compliance_fingerprint(kit, &kfp);
  fe_fingerprint_format(kfp, fp);
  printf("  compliance rules %s (fingerprint %s)\n", opt.compliance, fp);
  if (resumed) {
    printf("  recovered from the journal: %" PRIu64 " records, %" PRIu64
           " events (%" PRIu64 " finished, %" PRIu64 " re-driven, in doubt %" PRIu64
           " sent / %" PRIu64 " not), %" PRIu64 " idempotency entries, %" PRIu64
           " dead letters, torn tail %" PRIu64 " bytes\n",
           rec.records, rec.events, rec.finished, rec.redriven, rec.in_doubt_sent,
           rec.in_doubt_unsent, rec.idem_restored, rec.dlq_restored, rec.truncated_bytes);
    printf("  recovered sagas: %" PRIu64 " live from the journal; %" PRIu64
           " answers re-delivered by the venue and the custodian\n",
           replayed, redelivered);
  }

  t_start = fe_clock_now_ns();
  run_stream();
  uint64_t lost_sagas = resumed ? restart_lost_sagas() : 0;
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
  ju("run", this_run);
  const struct { const char *key; uint64_t v; } found[] = {
      {"events", rec.events},           {"finished", rec.finished},
      {"redriven", rec.redriven},       {"in_doubt_sent", rec.in_doubt_sent},
      {"in_doubt_unsent", rec.in_doubt_unsent},
      {"idem_restored", rec.idem_restored}, {"dlq_restored", rec.dlq_restored},
      {"truncated_bytes", rec.truncated_bytes}, {"sagas_live", replayed},
      {"redelivered", redelivered}};
  for (size_t i = 0; i < sizeof found / sizeof found[0]; i++) {
    char key[64];
    snprintf(key, sizeof key, "recovery_%s", found[i].key);
    ju(key, found[i].v);
  }
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

  /* Conservation, over every run on this directory: every order
   * acknowledged ended exactly once, and nothing outside the broker
   * happened twice (the venue took it once, the ledger and the custodian
   * booked it once, one saga per order). */
  uint64_t final[K_N] = {0}, twice = 0, never = 0, unsubmitted_ended = 0;
  uint64_t mal_ok = 0, mal_wrong = 0, in_dlq = (uint64_t)fe_dlq_count(dlq);
  uint64_t acked = 0, fat = 0, fat_rejected = 0, venue_twice = 0;
  uint64_t by_reason[256] = {0};
  for (uint64_t no = 0; no < opt.orders; no++) {
    ord_t *o = &ords[no];
    uint8_t ends = __atomic_load_n(&o->ends, __ATOMIC_RELAXED);
    uint8_t kind = __atomic_load_n(&o->kind, __ATOMIC_RELAXED);
    venue_twice += o->venue_accepted > 1;
    if (!o->submitted) {
      unsubmitted_ended += ends != 0;
      continue;
    }
    acked++;
    if (ends == 0 && o->bus_status == FE_IDEM_DEAD_LETTERED)
      ends = 1, kind = K_DEAD_LETTER;
    if (ends == 0)
      never++;
    else if (ends > 1)
      twice++;
    else
      final[kind]++;
    if (ends == 1 && kind >= K_REJ_VALIDATION && kind <= K_REJ_BOOKING)
      by_reason[o->bus_reason]++;
    if (o->malformed) {
      int ok = kind == K_REJ_VALIDATION && o->bus_reason == o->malformed;
      mal_ok += ok, mal_wrong += !ok;
    }
    if (o->fat_finger)
      fat++, fat_rejected += kind == K_REJ_COMPLIANCE;
  }
  uint64_t sum = 0;
  printf("  outcomes of the %" PRIu64 " orders acknowledged%s:\n", acked,
         resumed ? " (every run on this directory)" : "");
  ju("orders_acknowledged", acked);
  for (int k = 1; k < K_N; k++) {
    sum += final[k];
    printf("    %-26s %8" PRIu64 "\n", kind_names[k], final[k]);
    char key[64];
    snprintf(key, sizeof key, "outcome_%s", kind_names[k]);
    ju(key, final[k]);
  }
  printf("    rejected by reason:");
  for (int r = 1; r < 256; r++)
    if (by_reason[r]) {
      printf(" %s %" PRIu64, reason_name((uint32_t)r), by_reason[r]);
      char key[64];
      snprintf(key, sizeof key, "rejected_%s", reason_name((uint32_t)r));
      ju(key, by_reason[r]);
    }
  printf("\n");
  ju("ended_twice", twice);
  ju("never_ended", never);
  ju("venue_took_twice", venue_twice);
  ju("orphan_sagas", orphan_sagas);
  ju("rereported_after_kill", rereported);
  ju("redecided_after_kill", redecided);
  ju("ledger_rebooked", ledger_rebooked);
  int conserved = settled && twice == 0 && never == 0 && unsubmitted_ended == 0 &&
                  sum == acked && venue_twice == 0 && orphan_sagas == 0 &&
                  bs.published == bs.completed + bs.rejected + bs.dead_lettered;
  ju("conservation_ok", (uint64_t)conserved);
  if (resumed)
    printf("  across the restart: %" PRIu64 " ends re-reported (%" PRIu64
           " decided otherwise), %" PRIu64 " sagas restarted (lost before their "
           "start was journaled), %" PRIu64 " trades not booked again\n",
           rereported, redecided, lost_sagas, ledger_rebooked);
  ju("sagas_restarted", lost_sagas);

  fe_compliance_stats_t cs;
  fe_compliance_stats(kit, &cs);
  int64_t kit_reserved = fe_compliance_reserved(kit, NULL);
  printf("  compliance kit: checked %" PRIu64 ", accepted %" PRIu64 ", flagged %" PRIu64
         ", amended %" PRIu64 "; fat fingers %" PRIu64 " (rejected %" PRIu64
         "); open orders closed %" PRIu64 " (fills %" PRIu64 "), %" PRIu64
         " unknown to this run's kit; reserved at the end %.2f\n",
         cs.checked, cs.accepted, kit_flags, kit_amends, fat, fat_rejected,
         cs.released, cs.fills, kit_unknown, (double)kit_reserved / S);
  ju("compliance_checked", cs.checked);
  ju("compliance_accepted", cs.accepted);
  ju("compliance_flagged", kit_flags);
  ju("compliance_amended", kit_amends);
  ju("compliance_reserved_at_end", (uint64_t)kit_reserved);
  ju("compliance_unknown_closes", kit_unknown);
  ju("fat_fingers", fat);
  ju("fat_fingers_rejected", fat_rejected);

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
  check(conserved, "conservation: %" PRIu64 " acknowledged = %" PRIu64 " ended once (%"
        PRIu64 " twice, %" PRIu64 " never); none taken twice by a venue (%" PRIu64
        ") or given two sagas (%" PRIu64 "); bus published %" PRIu64 " = completed + "
        "rejected + dead-lettered", acked, sum, twice, never, venue_twice, orphan_sagas,
        bs.published);
  check(fat_rejected == fat && kit_reserved == 0,
        "compliance: every fat-finger order refused by the kit (%" PRIu64 "/%" PRIu64
        "), every order it accepted closed (%.2f left reserved)", fat_rejected, fat,
        (double)kit_reserved / S);
  check(cli.retries_caught == cli.retries && cli.reuses_caught == cli.reuses,
        "duplicates caught = injected (retries %" PRIu64 "/%" PRIu64 ", reused ids %"
        PRIu64 "/%" PRIu64 ")", cli.retries_caught, cli.retries, cli.reuses_caught,
        cli.reuses);
  check(mal_wrong == 0 && mal_ok == cli.malformed,
        "every malformed order rejected by validation with its reason (%" PRIu64 "/%"
        PRIu64 ")", mal_ok, cli.malformed);
  if (!resumed && cli.new_accepted >= 2000) /* enough XNYS orders in the outage */
    check(opened[XNYS] > 0 && closed[XNYS] > 0 && redriven > 0 && in_dlq == 0,
          "XNYS outage: breaker opened (%" PRIu64 ") and closed (%" PRIu64
          "), the redrive emptied the DLQ (%" PRIu64 " redriven, %" PRIu64 " left)",
          opened[XNYS], closed[XNYS], redriven, in_dlq);
  else
    check(in_dlq == 0, "the DLQ is empty (%" PRIu64 " redriven%s)", redriven,
          resumed ? "; the outage is judged on a first run" : "; too few orders to "
          "judge the outage");
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
  fe_metrics_destroy(metrics); /* it reads the bus */
  fe_saga_destroy(coord); /* before the bus: it writes to the bus's journal */
  fe_bus_destroy(bus);
  fe_gateway_destroy(gateway);
  for (int v = 0; v < N_VENUES; v++)
    fe_breaker_destroy(breakers[v]);
  fe_compliance_destroy(kit); /* after the bus that ran its stages */
  fe_dlq_destroy(dlq);
  fe_idem_destroy(idem);
  for (int h = 0; h < H_N; h++)
    fe_hist_destroy(hists[h]);
  fe_recon_report_free(&recon_rep);
  free(fills.m), free(settles.m);
  munmap(state_map, state_len);
  free(buying_power);
  if (own_dir)
    nftw(opt.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return failures ? 1 : 0;
}
