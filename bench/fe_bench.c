/*
 * fe_bench: libfinevent's microbenchmarks.
 *
 *   fe_bench [options] [scenario ...]      (no scenario: all of them)
 *
 * Every scenario runs the same four stage functions: validation rejects
 * (status 1) a non-positive quantity or price, compliance rejects (status 2)
 * quantity*price above 10^9, execution sets acc = quantity*price, settlement
 * XORs acc with the account and adds it to a sink the program prints.  The
 * baselines carry the 64-byte order of ../shared/anchors; the bus carries
 * fe_event_t, whose first cache line holds the same fields (status is the
 * bus's reject verdict, acc is order.notional), so both move one line per
 * event.  Each result is one line (or a JSON object with --json):
 *
 *   bench=NAME threads=N events=N mev_s=X [p50_ns=.. p99_ns=.. p999_ns=..
 *   p9999_ns=.. max_ns=..] [mb_s=X] rss_mb=N [allocs=N] sink=N runs=N
 *
 * mev_s and the percentiles are medians over --runs runs.  allocs counts
 * the library's heap allocations between fe_bus_start and fe_bus_stop (the
 * bench links with -Wl,--wrap for malloc and friends): it must be 0.
 *
 * The bus scenarios and the Disruptor anchors' shapes (../shared/anchors,
 * `Pipeline tput SHAPE N yield`):
 *   bus_1p1c          one producer (fe_bus_claim_n/publish_n of --claim
 *                     events, 1 by default), the four functions as four
 *                     stages on one worker;
 *   bus_1p1c_single   the Disruptor's `1c`: one stage whose handler calls
 *                     the four functions, the producer calling fe_bus_claim,
 *                     filling the slot and fe_bus_publish for every event,
 *                     exactly as the README's first program does;
 *   bus_3p1c          `3p1c`: three FE_PRODUCER_MULTI producers, each
 *                     publishing one event at a time, the four stages on
 *                     one worker;
 *   bus_1p1c_fused    `1c` with bus_1p1c's four stages, fused
 *                     (fe_stage_def_t.fuse: one event-by-event pass), the
 *                     producer as in bus_1p1c_single;
 *   bus_diamond       `diamond`: validation -> {compliance, market-data
 *                     check (status 3 when price > 1,000,000)} ->
 *                     execution -> settlement, all on one worker (the
 *                     Disruptor runs a thread per handler; on two cores the
 *                     bus groups them); bus_diamond_fused: the same, fused.
 *
 * saga_3step is the saga coordinator's: `events` sagas of three steps
 * (compensatable, pivot, retriable) whose actions return DONE at once,
 * started and run to completion by one host thread in batches of 4096
 * (fe_saga_start, then fe_saga_poll until idle), no log hook.  mev_s is
 * millions of COMPLETED sagas per second; allocs counts allocations
 * between the first start and the last poll.
 *
 * The journal scenarios append 200-byte records to a journal in a fresh
 * directory under $TMPDIR (default /tmp), committing every 256 records:
 * journal_append with FE_FSYNC_NONE (the cost of framing, checksums and
 * write()), journal_append_fsync_group with FE_FSYNC_GROUP (one fdatasync
 * per group).  mev_s is then millions of records per second and mb_s the
 * megabytes (10^6) of frames written per second; allocs counts the
 * allocations between open and the last commit.
 *
 * bus_1p1c_submit and bus_1p1c_submit_journaled: the producer admits
 * every order through fe_bus_submit() with an idempotency table (sized to
 * hold them all at load 1/2), each with a new client order id, so each
 * claim wins and the outcome stage completes its key; the journaled one
 * also writes the keyed event and outcome entries.  The same four stages.
 * One fe_bus_submit() per order, or with --claim N > 1 fe_bus_submit_n()
 * of bursts of N (at most 256).
 *
 * journal_encode and journal_encode_full time the journaller's event
 * encoder alone (jrec_ev_encode, one thread, 256 events in cache encoded
 * per pass): the sparse bench event of bus_1p1c_journaled, and a typical
 * order (ids, symbol, timestamps, trace id, idempotency key).  mev_s is
 * millions of events per second; the bytes per event go to stderr.
 *
 * bus_1p1c_audited is bus_1p1c with cfg.audit: every verdict (one per
 * event: accepted at the sink, or rejected by a stage) is handed to an
 * audit trail (FE_AUDIT_FULL_BLOCK, a checkpoint every 1024 records, no
 * fsync; -F for FE_FSYNC_GROUP), whose writer is a third thread; the time
 * runs until the trail has written every record.  lat_1p1c_1m_audited is
 * lat_1p1c_1m with the same trail: what auditing every verdict does to an
 * order's latency at a given rate (-r).  audit_append and
 * audit_append_fsync: see run_audit().
 *
 * calls_4stage is no bus: the floor of any bus that runs bus_1p1c's four
 * functions as four C stages.  One thread hands each event of a batch of
 * 256 slots (in cache, the bus's slot stride) to the four fe_stage_fn
 * through pointers the compiler cannot see through, event by event, with
 * the verdict test between calls; no ring, no second thread, and the
 * events filled once before the clock starts (filling is the producer's
 * work, on the other core).  Set beside
 * `inline` (the same work compiled into one loop, as the Disruptor's JIT
 * does with its one handler) it shows what the calls themselves cost.
 *
 * mem_chase is no library code: the machine's floor for the idempotency
 * scenarios.  One thread follows a random cycle through a 128 MiB buffer
 * on transparent huge pages (the size of idem_lookup's table), one
 * dependent 8-byte read per step; mev_s is millions of reads per second,
 * so 1000 / mev_s is the latency in ns of one random read from memory.
 */
#define _GNU_SOURCE
#include <finevent/finevent.h>
#include <finevent/journal.h>
#include <finevent/saga.h>

#include "../lib/jrec.h" /* the journaller's encoder, for journal_encode */
#include "hgrm.h"         /* --hgrm: percentile distributions */
#include "machine.h"      /* the reproducibility record */
#include "sweep.h"        /* --sweep: grids of knobs */

#include <sodium.h>
#include <ck_pr.h>
#include <ck_ring.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------ allocations */

static uint64_t allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n) {
  __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED);
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
  __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED);
  return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
  __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED);
  return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
  __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED);
  return __real_aligned_alloc(a, n);
}

/* ---------------------------------------------------------------- options */

typedef struct opts {
  uint64_t events;    /* 0: the scenario's default */
  uint64_t rate;      /* latency scenarios: events/s (0: scenario's) */
  uint32_t ring;      /* capacity */
  uint32_t batch;     /* max_batch of each stage shard */
  uint32_t claim;     /* events per producer claim (1: single publish) */
  int wait;           /* 0: scenario's default */
  int batch_handlers; /* stages as fe_stage_batch_fn */
  int fuse;           /* the stages set fuse (the _fused scenarios: always) */
  int64_t spin, yields, catchup; /* -1: the library's defaults */
  int pin;            /* pin threads to CPUs 0, 1, ... */
  int json;
  int runs;
  int fsync_group;    /* journaled scenarios: fsync every group */
  const char *sweep;  /* --sweep GRID, or NULL */
  const char *hgrm;   /* --hgrm FILE, or NULL */
  int csv;            /* --csv: sweep rows as CSV */
  int objective;      /* --objective: -1 (per scenario) or SWEEP_OBJ_* */
  int ring_set;       /* -R given (compliance_all_rules: else its own) */
} opts_t;

typedef struct result {
  double mev_s;
  uint64_t p50, p99, p999, p9999, max;
  int has_lat;
  uint64_t allocs;
  int has_allocs;
  double mb_s;
  int has_mb;
  uint64_t sink;
} result_t;

typedef struct scenario {
  const char *name;
  int threads;
  uint64_t events; /* default */
  int wait;        /* default wait strategy, 0 if none */
  uint64_t rate;   /* default pacing */
  int (*run)(const struct scenario *, const opts_t *, uint64_t, result_t *);
} scenario_t;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double mb = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      mb = strtod(line + 6, NULL) / 1024.0;
  if (f)
    fclose(f);
  return mb;
}

static void pin_self(const opts_t *o, int cpu) {
  if (!o->pin)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % CPU_SETSIZE, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* -------------------------------------------- the baselines' 64-byte order */

typedef struct order {
  uint64_t seq, account, qty, price;
  int status;
  uint64_t acc;
} __attribute__((aligned(64))) order_t;

static inline void fill(order_t *o, uint64_t i) {
  o->seq = i;
  o->account = i & 1023;
  o->qty = 1 + (i & 127);
  o->price = 100 + (i & 63);
  o->status = 0;
  o->acc = 0;
}

static inline void validate(order_t *o) { if (o->qty == 0 || o->price == 0) o->status = 1; }
static inline void comply(order_t *o) { if (o->qty * o->price > 1000000000u) o->status = 2; }
static inline void execute(order_t *o) { if (o->status == 0) o->acc = o->qty * o->price; }
static inline void settle(order_t *o) { if (o->status == 0) o->acc ^= o->account; }
static inline uint64_t four_stages(order_t *o) {
  validate(o);
  comply(o);
  execute(o);
  settle(o);
  return o->acc;
}

#define BASE_RING 65536
static order_t *base_slots;

static int run_inline(const scenario_t *sc, const opts_t *o, uint64_t n,
                      result_t *r) {
  (void)sc;
  pin_self(o, 0);
  uint64_t sink = 0;
  double t0 = now_s();
  for (uint64_t i = 0; i < n; i++) {
    order_t *e = &base_slots[i & (BASE_RING - 1)];
    fill(e, i);
    __asm__ volatile("" ::: "memory"); /* the fill is not folded away */
    sink += four_stages(e);
  }
  r->mev_s = (double)n / (now_s() - t0) / 1e6;
  r->sink = sink;
  return 0;
}

/* ---- one producer, one consumer, through ck_ring or a mutex queue ---- */

typedef struct handoff {
  int kind; /* 0 ck_ring, 1 mutex */
  uint64_t n, sink;
  const opts_t *o;
  ck_ring_t ring;
  ck_ring_buffer_t *buf;
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  order_t **q;
  uint64_t head, tail;
} handoff_t;

static inline void backoff(unsigned *k) {
  if (++*k < 100)
    ck_pr_stall();
  else
    sched_yield();
}

static void *handoff_consumer(void *arg) {
  handoff_t *h = arg;
  pin_self(h->o, 1);
  uint64_t sink = 0;
  for (uint64_t i = 0; i < h->n; i++) {
    order_t *e = NULL;
    unsigned k = 0;
    if (h->kind == 0) {
      while (!ck_ring_dequeue_spsc(&h->ring, h->buf, &e))
        backoff(&k);
    } else {
      pthread_mutex_lock(&h->mu);
      while (h->tail == h->head)
        pthread_cond_wait(&h->not_empty, &h->mu);
      e = h->q[h->head++ % BASE_RING];
      pthread_cond_signal(&h->not_full);
      pthread_mutex_unlock(&h->mu);
    }
    sink += four_stages(e);
  }
  h->sink = sink;
  return NULL;
}

static int run_handoff(const scenario_t *sc, const opts_t *o, uint64_t n,
                       result_t *r) {
  static handoff_t h;
  memset(&h, 0, sizeof h);
  h.kind = strcmp(sc->name, "mutex_queue") == 0;
  h.n = n;
  h.o = o;
  h.buf = calloc(BASE_RING, sizeof *h.buf);
  h.q = calloc(BASE_RING, sizeof *h.q);
  ck_ring_init(&h.ring, BASE_RING);
  pthread_mutex_init(&h.mu, NULL);
  pthread_cond_init(&h.not_empty, NULL);
  pthread_cond_init(&h.not_full, NULL);
  pthread_t th;
  pin_self(o, 0);
  double t0 = now_s();
  pthread_create(&th, NULL, handoff_consumer, &h);
  for (uint64_t i = 0; i < n; i++) {
    /* A ring of N holds N-1 (ck 0.7.1), so slot reuse is safe. */
    order_t *e = &base_slots[i & (BASE_RING - 1)];
    fill(e, i);
    unsigned k = 0;
    if (h.kind == 0) {
      while (!ck_ring_enqueue_spsc(&h.ring, h.buf, e))
        backoff(&k);
    } else {
      pthread_mutex_lock(&h.mu);
      while (h.tail - h.head == BASE_RING - 1)
        pthread_cond_wait(&h.not_full, &h.mu);
      h.q[h.tail++ % BASE_RING] = e;
      pthread_cond_signal(&h.not_empty);
      pthread_mutex_unlock(&h.mu);
    }
  }
  pthread_join(th, NULL);
  r->mev_s = (double)n / (now_s() - t0) / 1e6;
  r->sink = h.sink;
  free(h.buf);
  free(h.q);
  return 0;
}

/* The platform's own floor for the latency scenarios: two threads, one per
 * core as in lat_1p1c, each follow the paced schedule and record how late
 * they reach each intended send time, with no work and no hand-off.  A
 * stall of a thread (hypervisor or kernel preemption: with both cores busy,
 * kernel housekeeping must take one of them) shows up here exactly as it
 * would in the bus scenarios. */
static int run_floor(const struct scenario *sc, const opts_t *o, uint64_t n,
                     result_t *r);

/* ------------------------------------------------------------- the bus */

typedef struct sink {
  uint64_t v;
  fe_hist_t *lat; /* latency scenarios: end-to-end from intended send time */
  char pad[48];
} sink_t;

enum { R_INVALID = 1, R_LIMIT = 2 };

static fe_verdict_t st_validate(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (ev->order.quantity <= 0 || ev->order.price <= 0)
    return fe_reject(ctx, R_INVALID);
  return FE_CONTINUE;
}
static fe_verdict_t st_comply(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (ev->order.quantity * ev->order.price > 1000000000)
    return fe_reject(ctx, R_LIMIT);
  return FE_CONTINUE;
}
static fe_verdict_t st_execute(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)u;
  ev->order.notional = ev->order.quantity * ev->order.price;
  return FE_CONTINUE;
}
static fe_verdict_t st_settle(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx;
  sink_t *s = u;
  ev->order.notional ^= (int64_t)ev->order.account;
  s->v += (uint64_t)ev->order.notional;
  if (s->lat != NULL)
    fe_hist_record(s->lat, fe_clock_now_ns() - ev->order.recv_ts_ns);
  return FE_CONTINUE;
}

/* The market-data check of bus_diamond, beside compliance: status 3 when
 * the price is above 1,000,000 (never, for the bench's prices). */
enum { R_MARKET = 3 };
static fe_verdict_t st_mdcheck(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)u;
  if (ev->order.price > 1000000)
    return fe_reject(ctx, R_MARKET);
  return FE_CONTINUE;
}

/* bus_1p1c_single: one stage that calls the four functions in turn, the
 * Disruptor's `1c` shape and the README's first program. */
static fe_verdict_t st_all4(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  fe_verdict_t v = st_validate(ctx, ev, u);
  if (v == FE_CONTINUE)
    v = st_comply(ctx, ev, u);
  if (v == FE_CONTINUE) {
    st_execute(ctx, ev, u);
    st_settle(ctx, ev, u);
  }
  return v;
}

/* The same four functions as batch handlers (--handler batch). */
static void bt_validate(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                        uint32_t n, void *u) {
  (void)u;
  for (uint32_t i = 0; i < n; i++)
    if (evs[i]->order.quantity <= 0 || evs[i]->order.price <= 0)
      fe_batch_reject(ctx, evs[i], R_INVALID);
}
static void bt_comply(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                      void *u) {
  (void)u;
  for (uint32_t i = 0; i < n; i++)
    if (evs[i]->order.quantity * evs[i]->order.price > 1000000000)
      fe_batch_reject(ctx, evs[i], R_LIMIT);
}
static void bt_execute(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                       uint32_t n, void *u) {
  (void)ctx, (void)u;
  for (uint32_t i = 0; i < n; i++)
    evs[i]->order.notional = evs[i]->order.quantity * evs[i]->order.price;
}
static void bt_settle(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                      void *u) {
  (void)ctx;
  sink_t *s = u;
  uint64_t v = 0;
  for (uint32_t i = 0; i < n; i++) {
    evs[i]->order.notional ^= (int64_t)evs[i]->order.account;
    v += (uint64_t)evs[i]->order.notional;
    if (s->lat != NULL)
      fe_hist_record(s->lat, fe_clock_now_ns() - evs[i]->order.recv_ts_ns);
  }
  s->v += v;
}

static inline void fill_event(fe_event_t *ev, uint64_t i) {
  ev->order.account = i & 1023;
  ev->order.quantity = (int64_t)(1 + (i & 127));
  ev->order.price = (int64_t)(100 + (i & 63));
  ev->order.notional = 0;
}

/* calls_4stage: see the header. */
static int run_calls(const scenario_t *sc, const opts_t *o, uint64_t n,
                     result_t *r) {
  (void)sc;
  enum { BATCH = 256 };
  pin_self(o, 0);
  const size_t size = (sizeof(fe_event_t) + 63) / 64 * 64;
  uint8_t *slots = aligned_alloc(64, BATCH * size);
  if (slots == NULL)
    return -1;
  memset(slots, 0, BATCH * size);
  static sink_t sink;
  memset(&sink, 0, sizeof sink);
  /* volatile: the calls stay indirect, as a bus's are */
  static fe_stage_fn volatile fns[4] = {st_validate, st_comply, st_execute,
                                        st_settle};
  fe_stage_fn f[4] = {fns[0], fns[1], fns[2], fns[3]};
  fe_stage_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  /* Filled once: filling is the producer's work, on the other core. */
  for (uint32_t i = 0; i < BATCH; i++)
    fill_event((fe_event_t *)(slots + i * size), i);
  double t0 = now_s();
  for (uint64_t done = 0; done < n; done += BATCH) {
    for (uint32_t i = 0; i < BATCH; i++) {
      fe_event_t *ev = (fe_event_t *)(slots + i * size);
      for (int k = 0; k < 4; k++)
        if (f[k](&ctx, ev, &sink) != FE_CONTINUE)
          break;
    }
  }
  r->mev_s = (double)n / (now_s() - t0) / 1e6;
  r->sink = sink.v;
  free(slots);
  return 0;
}

/* A fresh scratch directory for a journal scenario under $TMPDIR (default
 * /tmp), named after it, into dir.  0, or -1 with a message. */
static int scratch_dir(const scenario_t *sc, char dir[512]) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, 512, "%s/fe_bench_%s_XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", sc->name);
  if (mkdtemp(dir) != NULL)
    return 0;
  fprintf(stderr, "fe_bench: %s: mkdtemp %s: %s\n", sc->name, dir,
          strerror(errno));
  return -1;
}

/* Removes a scratch directory: the journal's files, then itself. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      unlinkat(dirfd(d), e->d_name, 0);
  if (d != NULL)
    closedir(d);
  rmdir(dir);
}

/* An audit trail in a fresh scratch directory: the trail's defaults with
 * a new signing key, FE_FSYNC_NONE (-F: FE_FSYNC_GROUP, and
 * audit_append_fsync always). */
static int audit_open(const scenario_t *sc, const opts_t *o, char dir[512],
                      fe_audit_t **out) {
  static uint8_t pk[32], sk[64];
  if (scratch_dir(sc, dir) != 0)
    return -1;
  crypto_sign_keypair(pk, sk);
  fe_audit_config_t ac;
  fe_audit_config_init(&ac);
  ac.dir = dir;
  ac.sign_key = sk;
  ac.block_ns = 10000000000ull; /* measure the writer's pace, lose nothing */
  ac.fsync = o->fsync_group || strstr(sc->name, "fsync") ? FE_FSYNC_GROUP
                                                          : FE_FSYNC_NONE;
  fe_diag_t d;
  if (fe_audit_create(&ac, out, &d) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, d.msg);
    remove_dir(dir);
    return -1;
  }
  return 0;
}

static void audit_close(fe_audit_t *a, const char *dir) {
  if (a == NULL)
    return;
  fe_audit_destroy(a);
  remove_dir(dir);
}

typedef struct bus_run {
  fe_bus_t *bus;
  const opts_t *o;
  uint64_t first, n, step; /* this producer publishes first, first+step.. */
  uint64_t gap_ns, t0_ns;  /* paced: intended time of event i */
  int cpu;
} bus_run_t;

/* The README's way to publish, one event at a time: fe_bus_claim, fill the
 * slot in place, fe_bus_publish (bus_1p1c_single, bus_3p1c, bus_diamond;
 * with --claim N > 1 these use bus_producer's batches instead). */
static void *bus_producer_each(void *arg) {
  bus_run_t *p = arg;
  pin_self(p->o, p->cpu);
  for (uint64_t i = p->first; i < p->n; i += p->step) {
    fe_event_t *ev;
    if (fe_bus_claim(p->bus, &ev, FE_WAIT_FOREVER) != 0)
      return NULL;
    fill_event(ev, i); /* the fields the Disruptor's producer sets; the
                          latency stamp is for the paced producer only */
    fe_bus_publish(p->bus, ev);
  }
  return NULL;
}

static void *bus_producer(void *arg) {
  bus_run_t *p = arg;
  pin_self(p->o, p->cpu);
  uint32_t claim = p->o->claim;
  /* events this producer still has to publish: counted down, so that the
   * loop itself costs no division per claim */
  uint64_t left = p->first < p->n ? (p->n - p->first + p->step - 1) / p->step : 0;
  for (uint64_t i = p->first; left != 0;) {
    uint64_t f, intended = 0;
    uint32_t m = claim;
    if (p->gap_ns) { /* open loop: wait for the intended send time */
      intended = p->t0_ns + (i / p->step) * p->gap_ns;
      while (fe_clock_now_ns() < intended)
        ck_pr_stall();
      m = 1;
    }
    if (left < m)
      m = (uint32_t)left;
    left -= m;
    if (fe_bus_claim_n(p->bus, m, &f, FE_WAIT_FOREVER) != 0)
      return NULL;
    for (uint32_t j = 0; j < m; j++, i += p->step) {
      fe_event_t *ev = fe_bus_event_at(p->bus, f + j);
      fill_event(ev, i);
      if (p->gap_ns) /* the latency stamp, on the slot's second line: only
                        the paced (latency) runs read it */
        ev->order.recv_ts_ns = intended;
    }
    fe_bus_publish_n(p->bus, f, m);
  }
  return NULL;
}

/* "ORD-<i>" into a client order id, without snprintf (the producer's
 * loop is measured). */
static void order_id(char id[FE_CLORDID_MAX], uint64_t i) {
  char digits[24];
  int n = 0;
  do
    digits[n++] = (char)('0' + i % 10);
  while ((i /= 10) != 0);
  memset(id, 0, FE_CLORDID_MAX);
  memcpy(id, "ORD-", 4);
  for (int k = 0; k < n; k++)
    id[4 + k] = digits[n - 1 - k];
}

/* The submit scenarios' producer: every order through fe_bus_submit(),
 * each with a new client order id, so each idempotency claim wins. */
#define SUBMIT_BURST_MAX 256

static void *bus_submitter(void *arg) {
  bus_run_t *p = arg;
  pin_self(p->o, p->cpu);
  static fe_order_t o[SUBMIT_BURST_MAX];
  fe_submit_t in[SUBMIT_BURST_MAX];
  int rc[SUBMIT_BURST_MAX];
  uint32_t burst = p->o->claim < SUBMIT_BURST_MAX ? p->o->claim
                                                  : SUBMIT_BURST_MAX;
  memset(o, 0, sizeof o);
  for (uint64_t i = p->first; i < p->n;) {
    uint32_t m = 0;
    for (; m < burst && i < p->n; m++, i += p->step) {
      o[m].account = i & 1023;
      o[m].quantity = (int64_t)(1 + (i & 127));
      o[m].price = (int64_t)(100 + (i & 63));
      order_id(o[m].client_order_id, i);
      in[m] = (fe_submit_t){.type = FE_EV_NEW_ORDER, .order = &o[m],
                            .timeout_ns = FE_WAIT_FOREVER};
    }
    if (m == 1)
      rc[0] = fe_bus_submit(p->bus, &in[0], NULL);
    else
      fe_bus_submit_n(p->bus, in, m, NULL, rc);
    for (uint32_t k = 0; k < m; k++)
      if (rc[k] != 0) {
        fprintf(stderr, "fe_bench: submit: %s\n", fe_strerror(rc[k]));
        return NULL;
      }
  }
  return NULL;
}

static fe_idem_t *idem_table(uint64_t capacity);

/* Graph shapes: the four stages on one worker, on a worker each, with
 * compliance sharded over two workers; one stage running all four
 * functions; the diamond validation -> {compliance, market-data check} ->
 * execution -> settlement, all on one worker. */
enum { SHAPE_GROUPED, SHAPE_4WORKERS, SHAPE_SHARDED, SHAPE_SINGLE,
       SHAPE_DIAMOND };

static uint32_t make_stages(int shape, int batch, fe_stage_def_t st[5],
                            sink_t *sink) {
  if (shape == SHAPE_SINGLE) {
    fe_stage_def_init(&st[0]);
    st[0].name = "order";
    st[0].handler = st_all4;
    st[0].user = sink;
    return 1;
  }
  static const char *names[4] = {"validation", "compliance", "execution",
                                 "settlement"};
  static const fe_stage_fn fns[4] = {st_validate, st_comply, st_execute,
                                     st_settle};
  static const fe_stage_batch_fn bfns[4] = {bt_validate, bt_comply, bt_execute,
                                            bt_settle};
  /* worker of each stage: grouped, one each, or sharded compliance */
  static const uint32_t workers[3][4] = {{0, 0, 0, 0}, {0, 1, 2, 3}, {0, 0, 1, 0}};
  for (int i = 0; i < 4; i++) {
    fe_stage_def_init(&st[i]);
    st[i].name = names[i];
    if (batch)
      st[i].batch_handler = bfns[i];
    else
      st[i].handler = fns[i];
    st[i].worker = shape < 3 ? workers[shape][i] : 0;
    if (i > 0)
      st[i].n_deps = 1, st[i].deps[0] = (uint32_t)i - 1;
  }
  st[3].user = sink;
  if (shape == SHAPE_SHARDED)
    st[1].shards = 2;
  if (shape != SHAPE_DIAMOND)
    return 4;
  /* The market-data check is stage 4, beside compliance (both after
   * validation); execution waits for both. */
  fe_stage_def_init(&st[4]);
  st[4].name = "md_check";
  st[4].handler = st_mdcheck;
  st[4].n_deps = 1, st[4].deps[0] = 0;
  st[2].n_deps = 2, st[2].deps[1] = 4;
  return 5;
}

static int run_bus(const scenario_t *sc, const opts_t *o, uint64_t n,
                   result_t *r) {
  int shape = strstr(sc->name, "4stage") ? SHAPE_4WORKERS
              : strstr(sc->name, "sharded") ? SHAPE_SHARDED
              : strstr(sc->name, "single")  ? SHAPE_SINGLE
              : strstr(sc->name, "diamond") ? SHAPE_DIAMOND
                                            : SHAPE_GROUPED;
  int producers = shape == SHAPE_SHARDED ? 2 : strstr(sc->name, "3p1c") ? 3 : 1;
  /* The shapes of the Disruptor's anchors publish one event at a time
   * through the README's calls. */
  int each = (shape == SHAPE_SINGLE || shape == SHAPE_DIAMOND || producers == 3 ||
              strstr(sc->name, "fused") != NULL) && o->claim == 1;
  int lat = strncmp(sc->name, "lat_", 4) == 0;
  int journaled = strstr(sc->name, "journaled") != NULL;
  int submit = strstr(sc->name, "submit") != NULL;
  int audited = strstr(sc->name, "audited") != NULL;
  static sink_t sink;
  memset(&sink, 0, sizeof sink);
  fe_stage_def_t st[5];
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = o->ring;
  cfg.slot_size = sizeof(fe_event_t);
  cfg.max_batch = o->batch;
  cfg.wait = o->wait ? o->wait : sc->wait;
  if (o->spin >= 0)
    cfg.spin_tries = (uint32_t)o->spin;
  if (o->yields >= 0)
    cfg.yield_tries = (uint32_t)o->yields;
  if (o->catchup >= 0)
    cfg.catchup_pauses = (uint32_t)o->catchup;
  cfg.producer = producers > 1 ? FE_PRODUCER_MULTI : FE_PRODUCER_SINGLE;
  cfg.stages = st;
  cfg.n_stages = make_stages(shape, o->batch_handlers, st, &sink);
  /* -u and the _fused scenarios: the stages set fuse, so a worker whose
   * stages all do runs them as one pass */
  if ((o->fuse || strstr(sc->name, "fused") != NULL) && !o->batch_handlers)
    for (uint32_t i = 0; i < cfg.n_stages; i++)
      st[i].fuse = 1;
  if (o->pin)
    for (int w = 0; w < FE_BUS_MAX_WORKERS; w++)
      cfg.cpu[w] = (producers + w) % 2; /* 2 cores: producers first */
  /* Journaled: the journaller and the outcome stage join the stages on the
   * one worker; validation runs in parallel with the journaller; no fsync
   * (the page cache; -F group for an fsync per group). */
  char jdir[512] = "";
  fe_journal_config_t jc;
  if (journaled) {
    if (scratch_dir(sc, jdir) != 0)
      return -1;
    fe_journal_config_init(&jc);
    jc.dir = jdir;
    jc.fsync = o->fsync_group ? FE_FSYNC_GROUP : FE_FSYNC_NONE;
    cfg.journal = &jc;
    cfg.journal_worker = 0;
    cfg.journal_user_bytes = 0;
    st[0].parallel_to_journal = 1;
  }
  /* Audited: every verdict a record (bus_1p1c's four stages: one per
   * event, accepted or rejected), the trail's defaults (a full queue
   * blocks the stage) but no fsync (-F: FE_FSYNC_GROUP). */
  char adir[512] = "";
  fe_audit_t *audit = NULL;
  if (audited && audit_open(sc, o, adir, &audit) != 0)
    return -1;
  cfg.audit = audit;
  fe_hist_t *h = NULL;
  if (lat) {
    fe_hist_config_t hc;
    fe_hist_config_init(&hc);
    if (fe_hist_create(&hc, &h, NULL) != 0)
      return -1;
    sink.lat = h;
  }
  fe_idem_t *idem = NULL;
  if (submit) { /* room for every order at load 1/2 */
    uint64_t cap = 1024;
    while (cap < 2 * n)
      cap *= 2;
    if ((idem = idem_table(cap)) == NULL)
      return -1;
    cfg.idem = idem;
  }
  fe_bus_t *bus;
  fe_diag_t d;
  if (fe_bus_create(&cfg, &bus, &d) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, d.msg);
    fe_idem_destroy(idem);
    return -1;
  }
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  fe_bus_start(bus, NULL);
  bus_run_t p[3];
  pthread_t th[3];
  uint64_t rate = o->rate ? o->rate : sc->rate;
  double t0 = now_s();
  for (int i = 0; i < producers; i++) {
    p[i] = (bus_run_t){bus, o, (uint64_t)i, n, (uint64_t)producers,
                       lat ? 1000000000u / rate : 0, fe_clock_now_ns(), i};
    pthread_create(&th[i], NULL,
                   submit ? bus_submitter : each ? bus_producer_each
                                                 : bus_producer,
                   &p[i]);
  }
  for (int i = 0; i < producers; i++)
    pthread_join(th[i], NULL);
  fe_bus_drain(bus, FE_WAIT_FOREVER);
  if (audit != NULL) /* every record written, not only handed over */
    fe_audit_flush(audit, FE_WAIT_FOREVER);
  double t1 = now_s();
  fe_bus_stop(bus);
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_bus_stats_t s;
  fe_bus_stats(bus, &s);
  if (s.published != n || s.completed + s.rejected != s.published)
    fprintf(stderr, "fe_bench: %s: accounting mismatch\n", sc->name);
  r->mev_s = (double)n / (t1 - t0) / 1e6;
  r->sink = sink.v;
  if (h != NULL) {
    r->has_lat = 1;
    r->p50 = fe_hist_percentile(h, 50);
    r->p99 = fe_hist_percentile(h, 99);
    r->p999 = fe_hist_percentile(h, 99.9);
    r->p9999 = fe_hist_percentile(h, 99.99);
    r->max = fe_hist_max(h);
    hgrm_collect(h);
    fe_hist_destroy(h);
  }
  fe_bus_destroy(bus);
  fe_idem_destroy(idem);
  if (journaled)
    remove_dir(jdir);
  audit_close(audit, adir);
  return 0;
}

typedef struct floor_arg {
  const opts_t *o;
  fe_hist_t *h;
  uint64_t n, gap, t0;
  int cpu;
} floor_arg_t;

static void *floor_thread(void *arg) {
  floor_arg_t *f = arg;
  pin_self(f->o, f->cpu);
  for (uint64_t i = 0, now; i < f->n; i++) {
    uint64_t intended = f->t0 + i * f->gap;
    while ((now = fe_clock_now_ns()) < intended)
      ck_pr_stall();
    fe_hist_record(f->h, now - intended);
  }
  return NULL;
}

static int run_floor(const scenario_t *sc, const opts_t *o, uint64_t n,
                     result_t *r) {
  fe_hist_config_t hc;
  fe_hist_t *h[2];
  fe_hist_config_init(&hc);
  if (fe_hist_create(&hc, &h[0], NULL) != 0 ||
      fe_hist_create(&hc, &h[1], NULL) != 0)
    return -1;
  uint64_t gap = 1000000000u / (o->rate ? o->rate : sc->rate);
  floor_arg_t f[2];
  pthread_t th[2];
  double s0 = now_s();
  uint64_t t0 = fe_clock_now_ns();
  for (int i = 0; i < 2; i++) {
    f[i] = (floor_arg_t){o, h[i], n, gap, t0, i};
    pthread_create(&th[i], NULL, floor_thread, &f[i]);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  r->mev_s = (double)n / (now_s() - s0) / 1e6;
  fe_hist_merge(h[0], h[1]);
  r->has_lat = 1;
  r->p50 = fe_hist_percentile(h[0], 50);
  r->p99 = fe_hist_percentile(h[0], 99);
  r->p999 = fe_hist_percentile(h[0], 99.9);
  r->p9999 = fe_hist_percentile(h[0], 99.99);
  r->max = fe_hist_max(h[0]);
  hgrm_collect(h[0]);
  fe_hist_destroy(h[0]);
  fe_hist_destroy(h[1]);
  return 0;
}

/* ---------------------------------------------- memory latency floor */

#define CHASE_BYTES (UINT64_C(128) << 20)

static int run_chase(const scenario_t *sc, const opts_t *o, uint64_t n,
                     result_t *r) {
  pin_self(o, 0);
  uint64_t lines = CHASE_BYTES / 64;
  uint64_t *a = mmap(NULL, CHASE_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint64_t *order = malloc(lines * sizeof *order);
  if (a == MAP_FAILED || order == NULL) {
    fprintf(stderr, "fe_bench: %s: out of memory\n", sc->name);
    free(order);
    if (a != MAP_FAILED)
      munmap(a, CHASE_BYTES);
    return -1;
  }
  madvise(a, CHASE_BYTES, MADV_HUGEPAGE); /* a hint, as the table's */
  /* One random cycle through every line (Sattolo's shuffle), a read per
   * line, so no two reads share a line and the prefetchers see no
   * pattern. */
  for (uint64_t i = 0; i < lines; i++)
    order[i] = i;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (uint64_t i = lines - 1; i > 0; i--) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t j = x % i, t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (uint64_t i = 0; i < lines; i++)
    a[order[i] * 8] = order[(i + 1) % lines] * 8;
  free(order);
  uint64_t p = 0;
  double t0 = now_s();
  for (uint64_t i = 0; i < n; i++)
    p = a[p];
  r->mev_s = (double)n / (now_s() - t0) / 1e6;
  r->sink = p;
  munmap(a, CHASE_BYTES);
  return 0;
}

/* ------------------------------------------------- idempotency table */

/* idem_lookup: one thread, hit lookups of DONE entries on a table of 2^20
 * slots holding 2^19 (load 1/2), in a shuffled order of the keys (walked
 * sequentially, so the key array streams and only the table is random),
 * one fe_idem_lookup() each; idem_lookup_batch: the same through
 * fe_idem_lookup_n(), 64 keys a call.  idem_claim_2threads: two threads claim and at once
 * complete keys of their own, and every 4th step also claim a key the
 * other thread just claimed (a duplicate: a replay or in progress); table
 * of 2^22 slots, keys hashed beforehand.  Both count allocations during
 * the measured loop (must be 0) and use the default (TSC) clock. */
#define IDEM_FILL (1u << 19)
#define IDEM_BATCH 64 /* keys per fe_idem_lookup_n() */

static fe_idem_key_t *idem_keys(uint64_t n, uint64_t salt) {
  fe_idem_key_t *k = malloc(n * sizeof *k);
  for (uint64_t i = 0; i < n; i++) {
    char id[32];
    int len = snprintf(id, sizeof id, "ORD-%" PRIu64 "-%" PRIu64, salt, i);
    fe_idem_key(i & 1023, id, (size_t)len, &k[i]);
  }
  return k;
}

static fe_idem_t *idem_table(uint64_t capacity) {
  fe_idem_config_t cfg;
  fe_idem_config_init(&cfg);
  cfg.capacity = capacity;
  fe_idem_t *t = NULL;
  fe_diag_t d;
  if (fe_idem_create(&cfg, &t, &d) != 0)
    fprintf(stderr, "fe_bench: idem: %s\n", d.msg);
  return t;
}

static int run_idem_lookup(const scenario_t *sc, const opts_t *o, uint64_t n,
                           result_t *r) {
  pin_self(o, 0);
  int batch = strstr(sc->name, "batch") != NULL;
  fe_idem_t *t = idem_table(UINT64_C(1) << 20);
  if (t == NULL)
    return -1;
  fe_idem_key_t *keys = idem_keys(IDEM_FILL, 1);
  for (uint64_t i = 0; i < IDEM_FILL; i++) {
    fe_idem_claim_t c;
    fe_idem_outcome_t out = {.status = FE_IDEM_COMPLETED, .ref = i};
    if (fe_idem_claim(t, &keys[i], i, &c) != 0 ||
        fe_idem_complete(t, c.token, &out) != 0) {
      fprintf(stderr, "fe_bench: %s: fill failed at %" PRIu64 "\n", sc->name, i);
      return -1;
    }
  }
  for (uint64_t i = IDEM_FILL - 1; i > 0; i--) { /* shuffle */
    uint64_t j = (i * UINT64_C(0x9E3779B97F4A7C15) >> 17) % (i + 1);
    fe_idem_key_t x = keys[i];
    keys[i] = keys[j];
    keys[j] = x;
  }
  uint64_t sink = 0, misses = 0;
  static fe_idem_entry_t es[IDEM_BATCH];
  static int rcs[IDEM_BATCH];
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  if (batch) {
    for (uint64_t i = 0; i < n; i += IDEM_BATCH) {
      int f = fe_idem_lookup_n(t, &keys[i & (IDEM_FILL - 1)], IDEM_BATCH, es,
                               rcs);
      misses += IDEM_BATCH - (uint64_t)f;
      for (int j = 0; j < IDEM_BATCH; j++)
        sink += es[j].outcome.ref;
    }
  } else {
    for (uint64_t i = 0; i < n; i++) {
      fe_idem_entry_t e;
      if (fe_idem_lookup(t, &keys[i & (IDEM_FILL - 1)], &e) == 0)
        sink += e.outcome.ref;
      else
        misses++;
    }
  }
  r->mev_s = (double)n / (now_s() - t0) / 1e6;
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  r->sink = sink;
  if (misses)
    fprintf(stderr, "fe_bench: %s: %" PRIu64 " lookups missed\n", sc->name,
            misses);
  free(keys);
  fe_idem_destroy(t);
  return 0;
}

typedef struct idem_run {
  fe_idem_t *t;
  const opts_t *o;
  const fe_idem_key_t *keys; /* thread i owns keys i, i+2, i+4 ... */
  uint64_t steps, sink, claims;
  int id, *go;
} idem_run_t;

static void *idem_claimer(void *arg) {
  idem_run_t *p = arg;
  pin_self(p->o, p->id);
  while (!__atomic_load_n(p->go, __ATOMIC_ACQUIRE))
    ck_pr_stall();
  uint64_t sink = 0, claims = 0;
  for (uint64_t j = 0; j < p->steps; j++) {
    uint64_t k = 2 * j + (uint64_t)p->id;
    fe_idem_claim_t c;
    claims++;
    if (fe_idem_claim(p->t, &p->keys[k], k, &c) == 0) {
      fe_idem_outcome_t out = {.status = FE_IDEM_COMPLETED, .ref = k};
      fe_idem_complete(p->t, c.token, &out);
    }
    if (j % 4 == 3) { /* a duplicate of the other thread's recent key */
      uint64_t d = 2 * (j - 2) + (uint64_t)(1 - p->id);
      claims++;
      int rc = fe_idem_claim(p->t, &p->keys[d], d, &c);
      if (rc == FE_EDUPLICATE)
        sink += c.outcome.ref;
      else if (rc == 0) { /* the other thread has not got there yet */
        fe_idem_outcome_t out = {.status = FE_IDEM_COMPLETED, .ref = d};
        fe_idem_complete(p->t, c.token, &out);
      }
    }
  }
  p->sink = sink;
  p->claims = claims;
  return NULL;
}

static int run_idem_claim(const scenario_t *sc, const opts_t *o, uint64_t n,
                          result_t *r) {
  (void)sc;
  uint64_t steps = n * 4 / 10; /* per thread: 2 * 1.25 claims per step */
  fe_idem_t *t = idem_table(UINT64_C(1) << 22);
  if (t == NULL)
    return -1;
  fe_idem_key_t *keys = idem_keys(2 * steps, 2);
  static int go;
  go = 0;
  idem_run_t p[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    p[i] = (idem_run_t){t, o, keys, steps, 0, 0, i, &go};
    pthread_create(&th[i], NULL, idem_claimer, &p[i]);
  }
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  double t1 = now_s();
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_idem_stats_t s;
  fe_idem_stats(t, &s);
  if (s.claimed != 2 * steps || s.full != 0 || s.live != 2 * steps)
    fprintf(stderr, "fe_bench: %s: %" PRIu64 " claimed of %" PRIu64
            " keys, %" PRIu64 " full\n", sc->name, s.claimed, 2 * steps,
            s.full);
  r->mev_s = (double)(p[0].claims + p[1].claims) / (t1 - t0) / 1e6;
  r->sink = p[0].sink + p[1].sink;
  free(keys);
  fe_idem_destroy(t);
  return 0;
}

/* -------------------------------------------------------------- sagas */

static fe_saga_result_t saga_step(fe_saga_call_t *call, void *user) {
  sink_t *s = user;
  s->v += call->saga_id ^ call->step;
  return FE_SAGA_DONE;
}

/* The 3-step definition of the saga scenarios: reserve (compensatable),
 * execute (pivot), settle (retriable), every step saga_step on sink. */
static void saga_def3(fe_saga_def_t *d, sink_t *sink) {
  static const char *names[3] = {"reserve", "execute", "settle"};
  static const fe_saga_kind_t kinds[3] = {FE_SAGA_COMPENSATABLE, FE_SAGA_PIVOT,
                                          FE_SAGA_RETRIABLE};
  fe_saga_def_init(d);
  d->name = "bench3";
  d->n_steps = 3;
  for (int i = 0; i < 3; i++) {
    d->steps[i].name = names[i];
    d->steps[i].action = saga_step;
    d->steps[i].compensate = i == 0 ? saga_step : NULL;
    d->steps[i].kind = kinds[i];
    d->steps[i].user = sink;
  }
}

/* Starts sagas *i .. min(*i + batch, n) - 1 (the number as context) and
 * polls the coordinator until they all ended.  Returns 0 or -1 (a start
 * was refused: said on stderr). */
static int saga_round(fe_saga_coord_t *c, uint64_t *i, uint64_t n,
                      uint64_t batch, const char *name) {
  uint64_t m = n - *i < batch ? n - *i : batch;
  for (uint64_t k = 0; k < m; k++, (*i)++) {
    uint64_t id;
    if (fe_saga_start(c, 0, i, sizeof *i, &id) != 0) {
      fprintf(stderr, "fe_bench: %s: start refused\n", name);
      return -1;
    }
  }
  while (fe_saga_poll(c, (uint32_t)batch) > 0) {
  }
  return 0;
}

static int run_saga(const scenario_t *sc, const opts_t *o, uint64_t n,
                    result_t *r) {
  enum { BATCH = 4096 };
  static sink_t sink;
  memset(&sink, 0, sizeof sink);
  pin_self(o, 0);
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 2 * BATCH;
  fe_saga_def_t d;
  saga_def3(&d, &sink);
  fe_saga_coord_t *c;
  fe_diag_t diag;
  if (fe_saga_create(&cfg, &c, &diag) != 0 ||
      fe_saga_define(c, &d, NULL, &diag) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, diag.msg);
    return -1;
  }
  fe_saga_poll(c, 1); /* opens it */
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  for (uint64_t i = 0; i < n;) {
    if (saga_round(c, &i, n, BATCH, sc->name) != 0)
      return -1;
  }
  double t1 = now_s();
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_saga_stats_t s;
  fe_saga_stats(c, &s);
  if (s.completed != n || s.invocations != 3 * n)
    fprintf(stderr, "fe_bench: %s: accounting mismatch\n", sc->name);
  r->mev_s = (double)n / (t1 - t0) / 1e6;
  r->sink = sink.v;
  fe_saga_destroy(c);
  return 0;
}

/* ------------------------------------------------------------- journal */

#define JOURNAL_RECORD 200
#define JOURNAL_GROUP 256

static int run_encode(const scenario_t *sc, const opts_t *o, uint64_t n,
                      result_t *r) {
  pin_self(o, 0);
  int full = strstr(sc->name, "full") != NULL;
  enum { EVS = 256 };
  static fe_event_t evs[EVS];
  static uint64_t tails[EVS][JREC_EV_TAIL];
  static uint8_t buf[EVS * (JREC_EV_MAX(0) + JREC_EV_SLACK)];
  memset(evs, 0, sizeof evs);
  memset(tails, 0, sizeof tails);
  for (uint64_t i = 0; i < EVS; i++) {
    fe_event_t *ev = &evs[i];
    ev->seq = i;
    ev->type = FE_EV_NEW_ORDER;
    fill_event(ev, i);
    if (full) {
      ev->order.account = 100000 + i;
      ev->order.price = 15025000000 + (int64_t)i; /* 150.25 */
      ev->order.side = FE_SIDE_BUY;
      ev->order.type = FE_ORD_LIMIT;
      ev->order.tif = FE_TIF_DAY;
      ev->order.client_ts_ns = 1764370000000000000ull + i * 1000;
      ev->order.recv_ts_ns = ev->order.client_ts_ns + 25000;
      snprintf(ev->order.client_order_id, FE_CLORDID_MAX,
               "CL-20261128-%06" PRIu64, i);
      memcpy(ev->order.symbol, "AAPL", 4);
      ev->trace_id = 0x5eed000000000000ull + i;
      fe_idem_key_t k;
      fe_idem_key_order(&ev->order, &k);
      tails[i][0] = k.lo;
      tails[i][1] = k.hi;
      tails[i][2] = fe_idem_fingerprint(&ev->order);
      tails[i][4] = JREC_EV_KEY;
    }
  }
  uint64_t bytes = 0, done = 0;
  double t0 = now_s();
  while (done < n) {
    uint8_t *p = buf;
    for (uint64_t i = 0; i < EVS; i++)
      p += jrec_ev_encode(p, &evs[i], tails[i], NULL, 0);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* keep the stores */
    bytes += (uint64_t)(p - buf);
    done += EVS;
  }
  r->mev_s = (double)done / (now_s() - t0) / 1e6;
  r->sink = bytes;
  fprintf(stderr, "fe_bench: %s: %.1f bytes per event\n", sc->name,
          (double)bytes / (double)done);
  return 0;
}

static int run_journal(const scenario_t *sc, const opts_t *o, uint64_t n,
                       result_t *r) {
  pin_self(o, 0);
  char dir[512];
  if (scratch_dir(sc, dir) != 0)
    return -1;
  fe_journal_config_t cfg;
  fe_journal_config_init(&cfg);
  cfg.dir = dir;
  cfg.fsync = strstr(sc->name, "fsync_group") ? FE_FSYNC_GROUP : FE_FSYNC_NONE;
  fe_journal_t *j;
  fe_diag_t d;
  if (fe_journal_open(&cfg, NULL, NULL, &j, NULL, &d) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, d.msg);
    remove_dir(dir);
    return -1;
  }
  uint8_t rec[JOURNAL_RECORD];
  for (size_t i = 0; i < sizeof rec; i++)
    rec[i] = (uint8_t)(i * 7);
  uint64_t sink = 0, lsn = 0;
  int rc = 0;
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  for (uint64_t i = 0; i < n && rc == 0; i++) {
    memcpy(rec, &i, sizeof i);
    rc = fe_journal_append(j, FE_JREC_EVENT, rec, sizeof rec, &lsn);
    sink ^= lsn;
    if (rc == 0 && (i + 1) % JOURNAL_GROUP == 0)
      rc = fe_journal_commit(j);
  }
  if (rc == 0)
    rc = fe_journal_commit(j);
  double t1 = now_s();
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_journal_stats_t st;
  fe_journal_stats(j, &st);
  if (rc == 0)
    rc = fe_journal_close(j);
  else
    fe_journal_close(j);
  remove_dir(dir);
  if (rc != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, fe_strerror(rc));
    return -1;
  }
  r->mev_s = (double)n / (t1 - t0) / 1e6;
  r->mb_s = (double)st.write_bytes / (t1 - t0) / 1e6;
  r->has_mb = 1;
  r->sink = sink;
  return 0;
}

/* audit_append(_fsync): one host thread hands `events` records (an
 * order's typical record: ids, account, trace, a short detail) to an
 * audit trail and waits until the writer has written (and, for _fsync,
 * fdatasync'ed) them all: mev_s is millions of records per second through
 * the writer (chain hash, a signed checkpoint every 1024, write), mb_s
 * the trail's megabytes per second.  A full queue blocks the appender, so
 * the rate is the writer's. */
static int run_audit(const scenario_t *sc, const opts_t *o, uint64_t n,
                     result_t *r) {
  pin_self(o, 0);
  char dir[512];
  fe_audit_t *a;
  if (audit_open(sc, o, dir, &a) != 0)
    return -1;
  fe_audit_rec_t rec;
  memset(&rec, 0, sizeof rec);
  rec.decision = FE_AUDIT_ACCEPTED;
  rec.stage = 3;
  fe_trace_t tc;
  fe_trace_new(&tc);
  memcpy(rec.trace_id, tc.trace_id, sizeof rec.trace_id);
  memcpy(rec.span_id, tc.span_id, sizeof rec.span_id);
  snprintf(rec.detail, sizeof rec.detail, "qty 100 px 12.5");
  uint64_t sink = 0;
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  for (uint64_t i = 0; i < n; i++) {
    rec.event_id = i;
    rec.account = i & 1023;
    snprintf(rec.client_order_id, sizeof rec.client_order_id, "C%016" PRIx64, i);
    rec.wall_ns = 0;
    while (fe_audit_append(a, &rec) != 0) {
    }
  }
  int rc = fe_audit_flush(a, FE_WAIT_FOREVER);
  double t1 = now_s();
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_audit_stats_t st;
  fe_audit_stats(a, &st);
  sink = st.last_seq;
  audit_close(a, dir);
  if (rc != 0 || st.written != n || st.lost != 0) {
    fprintf(stderr, "fe_bench: %s: %s, %" PRIu64 " written, %" PRIu64 " lost\n",
            sc->name, fe_strerror(rc), st.written, st.lost);
    return -1;
  }
  r->mev_s = (double)n / (t1 - t0) / 1e6;
  r->mb_s = (double)(st.last_seq * FE_AUDIT_FRAME) / (t1 - t0) / 1e6;
  r->has_mb = 1;
  r->sink = sink;
  return 0;
}

/* saga_3step with the coordinator writing its records to a journal
 * (fe_saga_use_journal, FE_FSYNC_NONE, a fresh directory under $TMPDIR):
 * the journal is committed at the end of every pass and retired after
 * every batch (the pin keeps what live sagas need).  mev_s is millions of
 * COMPLETED sagas per second, mb_s the journal's megabytes written per
 * second; the journal bytes per saga go to stderr.
 * saga_3step_journaled_durable: the same with the pivot step
 * FE_SAGA_STEP_DURABLE, so one commit (a write, no fsync under
 * FE_FSYNC_NONE) before every saga's pivot. */
static int run_saga_journaled(const scenario_t *sc, const opts_t *o,
                              uint64_t n, result_t *r) {
  enum { BATCH = 4096 };
  static sink_t sink;
  memset(&sink, 0, sizeof sink);
  pin_self(o, 0);
  char dir[512];
  if (scratch_dir(sc, dir) != 0)
    return -1;
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = dir;
  jc.fsync = FE_FSYNC_NONE;
  jc.retention_ns = 0;
  fe_saga_config_t cfg;
  fe_saga_config_init(&cfg);
  cfg.max_sagas = 2 * BATCH;
  fe_saga_def_t d;
  saga_def3(&d, &sink);
  if (strstr(sc->name, "durable") != NULL) /* one commit per saga */
    d.steps[1].flags = FE_SAGA_STEP_DURABLE;
  fe_saga_coord_t *c = NULL;
  fe_journal_t *j = NULL;
  fe_diag_t diag;
  if (fe_saga_create(&cfg, &c, &diag) != 0 ||
      fe_saga_define(c, &d, NULL, &diag) != 0 ||
      fe_journal_open(&jc, fe_saga_journal_replay, c, &j, NULL, &diag) != 0 ||
      fe_saga_use_journal(c, j, &diag) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, diag.msg);
    fe_saga_destroy(c);
    fe_journal_close(j);
    remove_dir(dir);
    return -1;
  }
  fe_saga_poll(c, 1); /* opens it */
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  double t0 = now_s();
  for (uint64_t i = 0; i < n;) {
    if (saga_round(c, &i, n, BATCH, sc->name) != 0)
      return -1;
    fe_journal_retire(j, UINT64_MAX, NULL);
  }
  double t1 = now_s();
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_saga_stats_t s;
  fe_saga_stats(c, &s);
  fe_journal_stats_t js;
  fe_journal_stats(j, &js);
  if (s.completed != n || s.invocations != 3 * n || s.journal_errors != 0)
    fprintf(stderr, "fe_bench: %s: accounting mismatch\n", sc->name);
  fprintf(stderr, "fe_bench: %s: %.0f journal bytes/saga, %.1f records/saga\n",
          sc->name, (double)js.write_bytes / (double)n,
          (double)js.appends / (double)n);
  r->mev_s = (double)n / (t1 - t0) / 1e6;
  r->mb_s = (double)js.write_bytes / (t1 - t0) / 1e6;
  r->has_mb = 1;
  r->sink = sink.v;
  fe_saga_destroy(c);
  fe_journal_close(j);
  remove_dir(dir);
  return 0;
}

/* -------------------------------------------------------------- driver */


/* ---------------------------------------------------------- compliance */

/* compliance_all_rules: the built-in pre-trade stage with every rule on
 * (production profile: all preventive) over 10k authorized accounts, each
 * trading 8 of 500 symbols (5 restricted), a trading-state object with 10
 * halted accounts, collars by tier around reference prices that a
 * market-data event moves every 16 orders (a random walk of a few basis
 * points), a per-account throttle, a duplicate window, open-order,
 * position and buying-power limits, self-match prevention.  Each new order
 * is closed (filled, an FE_EV_EXEC_REPORT) 4096 orders later, so the
 * tables stay warm and the limits hold.  n counts new orders; the stage
 * also handles the n fills and n/16 price updates in the same time.
 *
 * One thread does everything: the bus is host-driven, and the calling
 * thread publishes claims of 64 events into a ring of 4096 (CMP_RING)
 * and then polls worker 0 (both stages, compliance.md and compliance)
 * until it is idle.  The rate is
 * orders per second of that thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
 * producer work included: on a shared machine that is what stays
 * comparable between sittings; the wall-clock rate goes to stderr. */
#define CMP_ACCOUNTS 10000
#define CMP_SYMBOLS 500
#define CMP_LAG 4096
#define CMP_TEMPLATES (1u << 18)
/* The ring, unless -R says otherwise: the producer never has more than one
 * claim (64 events) in flight, and a ring sized for the bus scenarios
 * (65536 slots, 11.5 MB) would be cycled through at two to three lines an
 * event, evicting the compliance tables it is here to measure. */
#define CMP_RING 4096

typedef struct cmp_tpl {
  uint64_t account;
  uint32_t sym, side;
  int64_t qty, ticks;
} cmp_tpl_t;

static void cmp_symbol(char out[FE_SYMBOL_MAX], uint32_t i) {
  static char names[CMP_SYMBOLS][FE_SYMBOL_MAX];
  if (names[i][0] == '\0')
    snprintf(names[i], FE_SYMBOL_MAX, "S%03u", i);
  memcpy(out, names[i], FE_SYMBOL_MAX);
}

static fe_compliance_rules_t *cmp_rules(void) {
  fe_compliance_rules_t *r;
  if (fe_compliance_rules_create(&r) != 0)
    return NULL;
  fe_compliance_rules_profile(r, FE_PROFILE_PRODUCTION);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_QTY, 100000);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_NOTIONAL, 10000000 * FE_PRICE_SCALE);
  fe_compliance_rules_limit(r, FE_LIMIT_CREDIT, 50000000 * FE_PRICE_SCALE);
  fe_compliance_rules_limit(r, FE_LIMIT_FIRM_CREDIT, INT64_MAX / 4);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_OPEN, 32);
  fe_compliance_rules_limit(r, FE_LIMIT_MAX_POSITION, 100000000);
  fe_compliance_rules_limit(r, FE_LIMIT_DUP_WINDOW_NS, 1000000);
  fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_RATE, 100000);
  fe_compliance_rules_limit(r, FE_LIMIT_THROTTLE_BURST, 10000);
  fe_compliance_rules_collar(r, NULL, 0, FE_COLLAR_BPS, 1000);
  fe_compliance_rules_collar(r, NULL, 10 * FE_PRICE_SCALE, FE_COLLAR_BPS, 500);
  for (uint64_t a = 1; a <= CMP_ACCOUNTS; a++)
    fe_compliance_rules_authorize(r, a);
  for (uint64_t a = 1; a <= CMP_ACCOUNTS; a += 97)
    fe_compliance_rules_account_limit(r, a, FE_LIMIT_MAX_QTY, 50000);
  char sym[FE_SYMBOL_MAX + 1];
  for (uint32_t i = 0; i < 5; i++) {
    cmp_symbol(sym, CMP_SYMBOLS - 1 - i);
    sym[FE_SYMBOL_MAX] = '\0';
    fe_compliance_rules_restrict(r, sym);
  }
  return r;
}

static int run_compliance(const scenario_t *sc, const opts_t *o, uint64_t n,
                          result_t *r) {
  static cmp_tpl_t *tpl;
  static int64_t ref[CMP_SYMBOLS];
  if (tpl == NULL && (tpl = malloc(CMP_TEMPLATES * sizeof *tpl)) == NULL)
    return -1;
  uint64_t rng = 0x9e3779b97f4a7c15u;
#define CMP_RAND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
  for (uint32_t i = 0; i < CMP_TEMPLATES; i++) {
    uint64_t a = 1 + CMP_RAND() % CMP_ACCOUNTS;
    tpl[i].account = a;
    tpl[i].sym = (uint32_t)((a * 7 + CMP_RAND() % 8 * 61) % CMP_SYMBOLS);
    tpl[i].side = CMP_RAND() & 1 ? FE_SIDE_BUY : FE_SIDE_SELL;
    tpl[i].qty = 1 + (int64_t)(CMP_RAND() % 1000);
    tpl[i].ticks = 1 + (int64_t)(CMP_RAND() % 20);
  }
  for (uint32_t i = 0; i < CMP_SYMBOLS; i++)
    ref[i] = (int64_t)(5 + i % 300) * FE_PRICE_SCALE;

  fe_trading_config_t tc;
  fe_trading_config_init(&tc);
  fe_trading_t *trading;
  if (fe_trading_create(&tc, &trading, NULL) != 0)
    return -1;
  for (uint64_t a = 1; a <= 10; a++)
    fe_trading_set_account(trading, a * 991, FE_TRADING_HALTED, "bench");
  fe_compliance_rules_t *rules = cmp_rules();
  fe_compliance_config_t cc;
  fe_compliance_config_init(&cc);
  cc.max_accounts = 16384;
  cc.max_symbols = 1024;
  cc.max_cells = 131072;
  cc.max_orders = 2 * CMP_LAG + 4096;
  cc.trading = trading;
  fe_compliance_t *c;
  fe_diag_t d;
  if (rules == NULL || fe_compliance_create(&cc, rules, &c, &d) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, d.msg);
    return -1;
  }
  char sym[FE_SYMBOL_MAX + 1];
  for (uint32_t i = 0; i < CMP_SYMBOLS; i++) {
    cmp_symbol(sym, i);
    sym[FE_SYMBOL_MAX] = '\0';
    fe_compliance_set_reference(c, sym, ref[i]);
  }
  fe_stage_def_t st[2];
  fe_compliance_md_stage(c, &st[0], NULL);
  fe_compliance_stage(c, &st[1], NULL);
  st[1].n_deps = 1;
  st[1].deps[0] = 0;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = o->ring_set ? o->ring : CMP_RING;
  cfg.slot_size = sizeof(fe_event_t);
  cfg.max_batch = o->batch;
  cfg.host_driven = 1;
  cfg.stages = st;
  cfg.n_stages = 2;
  fe_bus_t *bus;
  if (fe_bus_create(&cfg, &bus, &d) != 0) {
    fprintf(stderr, "fe_bench: %s: %s\n", sc->name, d.msg);
    return -1;
  }
  pin_self(o, 0);
  uint64_t a0 = __atomic_load_n(&allocs, __ATOMIC_RELAXED);
  fe_bus_start(bus, NULL);
  enum { CLAIM = 64 };
  uint64_t orders = 0, events = 0, closes = 0;
  struct timespec c0, c1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  double t0 = now_s();
  while (orders < n) {
    uint64_t first;
    if (fe_bus_try_claim_n(bus, CLAIM, &first) != 0)
      return -1;
    for (uint32_t k = 0; k < CLAIM; k++) {
      fe_event_t *ev = fe_bus_event_at(bus, first + k);
      uint64_t e = events++;
      fe_order_t *od = &ev->order;
      memset(od, 0, sizeof *od);
      if (e % 33 == 32) { /* a price update: a random walk of 0..4 bp */
        uint32_t s = (uint32_t)(CMP_RAND() % CMP_SYMBOLS);
        int64_t step = ref[s] / 10000 * (int64_t)(CMP_RAND() % 9 - 4);
        ref[s] += step;
        ev->type = FE_EV_MARKET_DATA;
        cmp_symbol(od->symbol, s);
        od->price = ref[s];
        continue;
      }
      int close = (e & 1) && closes + CMP_LAG <= orders;
      uint64_t i = close ? closes++ : orders++;
      const cmp_tpl_t *t = &tpl[i % CMP_TEMPLATES];
      od->account = t->account;
      cmp_symbol(od->symbol, t->sym);
      memcpy(od->client_order_id, &i, sizeof i);
      if (close) { /* fill it whole: closes it */
        ev->type = FE_EV_EXEC_REPORT;
        od->quantity = t->qty;
        od->price = ref[t->sym];
        continue;
      }
      ev->type = FE_EV_NEW_ORDER;
      od->side = (uint8_t)t->side;
      od->type = FE_ORD_LIMIT;
      od->tif = FE_TIF_DAY;
      od->quantity = t->qty;
      /* buys under the reference, sells over it: inside the collar, and
       * an account's own orders never cross */
      int64_t tick = ref[t->sym] / 1000;
      od->price = ref[t->sym] + (t->side == FE_SIDE_BUY ? -1 : 1) * t->ticks * tick;
    }
    fe_bus_publish_n(bus, first, CLAIM);
    while (fe_bus_poll(bus, 0) > 0) {
    }
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  double t1 = now_s();
  double cpu = (double)(c1.tv_sec - c0.tv_sec) +
               (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
  fe_bus_stop(bus);
  while (fe_bus_poll(bus, 0) != FE_ESTOPPED) {
  }
  r->allocs = __atomic_load_n(&allocs, __ATOMIC_RELAXED) - a0;
  r->has_allocs = 1;
  fe_compliance_stats_t cs;
  fe_compliance_stats(c, &cs);
  if (cs.checked != orders)
    fprintf(stderr, "fe_bench: %s: accounting mismatch\n", sc->name);
  if (o->runs <= 1 || getenv("FE_BENCH_VERBOSE")) {
    fprintf(stderr, "fe_bench: %s: %" PRIu64 " events, %" PRIu64
            " orders: %" PRIu64 " accepted, rejected:", sc->name, events,
            cs.checked, cs.accepted);
    for (int k = 0; k <= FE_RULE_COUNT; k++)
      if (cs.rejected[k])
        fprintf(stderr, " %s=%" PRIu64,
                k < FE_RULE_COUNT ? fe_compliance_rule_name(k) : "other",
                cs.rejected[k]);
    fprintf(stderr, "; fills %" PRIu64 ", md %" PRIu64 "; %.2f M orders/s "
            "wall clock, %.0f ns CPU per order\n", cs.fills, cs.md_updates,
            (double)orders / (t1 - t0) / 1e6, cpu * 1e9 / (double)orders);
  }
  r->mev_s = (double)orders / cpu / 1e6;
  r->sink = cs.accepted;
  fe_bus_destroy(bus);
  fe_compliance_destroy(c);
  fe_compliance_rules_destroy(rules);
  fe_trading_destroy(trading);
  return 0;
#undef CMP_RAND
}

static const scenario_t scenarios[] = {
    {"inline", 1, 200000000, 0, 0, run_inline},
    {"ckring_spsc", 2, 20000000, 0, 0, run_handoff},
    {"mutex_queue", 2, 5000000, 0, 0, run_handoff},
    {"bus_1p1c", 2, 50000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_single", 2, 50000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_fused", 2, 50000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_3p1c", 4, 30000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_diamond", 2, 30000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_diamond_fused", 2, 30000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_journaled", 2, 10000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_audited", 3, 2000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_submit", 2, 2000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_1p1c_submit_journaled", 2, 2000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_4stage_spin", 5, 20000000, FE_WAIT_SPIN, 0, run_bus},
    {"bus_4stage_yield", 5, 20000000, FE_WAIT_YIELD, 0, run_bus},
    {"bus_4stage_park", 5, 10000000, FE_WAIT_PARK, 0, run_bus},
    {"bus_2p_sharded", 4, 20000000, FE_WAIT_YIELD, 0, run_bus},
    {"lat_floor_100k", 2, 500000, 0, 100000, run_floor},
    {"lat_1p1c_100k", 2, 500000, FE_WAIT_YIELD, 100000, run_bus},
    {"lat_1p1c_1m", 2, 3000000, FE_WAIT_YIELD, 1000000, run_bus},
    {"lat_1p1c_1m_audited", 3, 3000000, FE_WAIT_YIELD, 1000000, run_bus},
    {"calls_4stage", 1, 200000000, 0, 0, run_calls},
    {"mem_chase", 1, 5000000, 0, 0, run_chase},
    {"idem_lookup", 1, 20000000, 0, 0, run_idem_lookup},
    {"idem_lookup_batch", 1, 20000000, 0, 0, run_idem_lookup},
    {"idem_claim_2threads", 2, 2000000, 0, 0, run_idem_claim},
    {"saga_3step", 1, 5000000, 0, 0, run_saga},
    {"saga_3step_journaled", 1, 1000000, 0, 0, run_saga_journaled},
    {"saga_3step_journaled_durable", 1, 200000, 0, 0, run_saga_journaled},
    {"journal_encode", 1, 50000000, 0, 0, run_encode},
    {"journal_encode_full", 1, 50000000, 0, 0, run_encode},
    {"journal_append", 1, 2000000, 0, 0, run_journal},
    {"journal_append_fsync_group", 1, 200000, 0, 0, run_journal},
    {"audit_append", 2, 2000000, 0, 0, run_audit},
    {"audit_append_fsync", 2, 200000, 0, 0, run_audit},
    {"compliance_all_rules", 1, 5000000, 0, 0, run_compliance},
};
#define N_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

#define MAX_RUNS 64
static uint64_t median_u64(uint64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  return v[n / 2];
}

static void report(const scenario_t *sc, const opts_t *o, uint64_t n,
                   result_t *rs, int runs) {
  double m[MAX_RUNS], mb[MAX_RUNS];
  uint64_t q[5][MAX_RUNS], al = 0;
  for (int i = 0; i < runs; i++) {
    m[i] = rs[i].mev_s;
    mb[i] = rs[i].mb_s;
    q[0][i] = rs[i].p50, q[1][i] = rs[i].p99, q[2][i] = rs[i].p999;
    q[3][i] = rs[i].p9999, q[4][i] = rs[i].max;
    al += rs[i].allocs;
  }
  qsort(m, (size_t)runs, sizeof *m, cmp_double);
  qsort(mb, (size_t)runs, sizeof *mb, cmp_double);
  const char *f = o->json ? "{\"bench\":\"%s\",\"threads\":%d,\"events\":%" PRIu64
                            ",\"mev_s\":%.1f"
                          : "bench=%s threads=%d events=%" PRIu64 " mev_s=%.1f";
  printf(f, sc->name, sc->threads, n, m[runs / 2]);
  if (rs[0].has_lat) {
    const char *names[5] = {"p50_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns"};
    for (int k = 0; k < 5; k++)
      printf(o->json ? ",\"%s\":%" PRIu64 : " %s=%" PRIu64, names[k],
             median_u64(q[k], runs));
  }
  if (rs[0].has_mb)
    printf(o->json ? ",\"mb_s\":%.1f" : " mb_s=%.1f", mb[runs / 2]);
  printf(o->json ? ",\"rss_mb\":%.0f" : " rss_mb=%.0f", rss_mb());
  if (rs[0].has_allocs)
    printf(o->json ? ",\"allocs\":%" PRIu64 : " allocs=%" PRIu64, al);
  printf(o->json ? ",\"sink\":%" PRIu64 ",\"runs\":%d}\n"
                 : " sink=%" PRIu64 " runs=%d\n",
         rs[0].sink, runs);
  fflush(stdout);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: fe_bench [options] [scenario ...]\n"
          "  -n, --events N    events per run (default: per scenario)\n"
          "  -r, --rate N      latency scenarios: events per second\n"
          "  -R, --ring N      ring capacity, power of two (default 65536;\n"
          "                    compliance_all_rules: 4096)\n"
          "  -b, --batch N     max batch per stage shard (default 256)\n"
          "  -c, --claim N     events per producer claim (default 1)\n"
          "  -w, --wait W      spin | yield | park (default: per scenario)\n"
          "  -H, --handler H   event (fe_stage_fn, default) | batch (fe_stage_batch_fn)\n"
          "  -S, --spin N      idle checks spun before yielding (library default 1000)\n"
          "  -Y, --yields N    park: yields before sleeping (library default 50)\n"
          "  -C, --catchup N   pauses of a worker that caught up with its producer\n"
          "                    (library default 64; 0: none)\n"
          "  -u, --fuse        the stages set fuse (fe_stage_def_t): a worker whose\n"
          "                    stages all set it runs them as one pass\n"
          "  -p, --pin         pin threads to CPUs\n"
          "  -F, --fsync-group journaled scenarios: fsync every group (default: none)\n"
          "  -j, --json        JSON lines\n"
          "  -k, --runs K      runs per scenario; the median is reported (default 5)\n"
          "  -l, --list        list scenarios\n"
          "      --sweep GRID  run the grid 'knob=v1,v2;knob=...' over one scenario\n"
          "                    (knobs: ring batch wait spin yields catchup pin claim handler\n"
          "                    fuse rate events); prints one row per point, best first\n"
          "      --objective O p99 | mev_s: sweep order (default: p99 for lat_*)\n"
          "      --csv         sweep rows as CSV (--json: as one JSON document)\n"
          "      --hgrm FILE   latency scenarios: write HdrHistogram .hgrm percentile\n"
          "                    distributions (several: FILE.<scenario>[.<point>].hgrm)\n"
          "scenarios:");
  for (size_t i = 0; i < N_SCENARIOS; i++)
    fprintf(f, " %s", scenarios[i].name);
  fprintf(f, "\n");
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end != '\0' || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

/* ------------------------------------------- sweeps and .hgrm files */

enum { OPT_SWEEP = 1000, OPT_OBJECTIVE, OPT_CSV, OPT_HGRM };

static int is_lat(const scenario_t *sc) { return strncmp(sc->name, "lat_", 4) == 0; }

static const scenario_t *find_scenario(const char *name) {
  for (size_t k = 0; k < N_SCENARIOS; k++)
    if (strcmp(name, scenarios[k].name) == 0)
      return &scenarios[k];
  return NULL;
}

/* Every knob's value for scenario sc under options o (defaults resolved). */
static void knobs_of(const opts_t *o, const scenario_t *sc, uint64_t n,
                     uint64_t k[SWEEP_N_KNOBS]) {
  fe_bus_config_t d;
  fe_bus_config_init(&d);
  k[SWEEP_RING] = o->ring;
  k[SWEEP_BATCH] = o->batch;
  k[SWEEP_WAIT] = (uint64_t)(o->wait ? o->wait : sc->wait);
  k[SWEEP_SPIN] = o->spin >= 0 ? (uint64_t)o->spin : d.spin_tries;
  k[SWEEP_YIELDS] = o->yields >= 0 ? (uint64_t)o->yields : d.yield_tries;
  k[SWEEP_CATCHUP] = o->catchup >= 0 ? (uint64_t)o->catchup : d.catchup_pauses;
  k[SWEEP_PIN] = (uint64_t)o->pin;
  k[SWEEP_CLAIM] = o->claim;
  k[SWEEP_HANDLER] = (uint64_t)o->batch_handlers;
  k[SWEEP_FUSE] = (uint64_t)o->fuse;
  k[SWEEP_RATE] = o->rate ? o->rate : sc->rate;
  k[SWEEP_EVENTS] = n;
}

/* The options that run a point: each knob is its fe_bench option. */
static void apply_knobs(opts_t *o, const uint64_t k[SWEEP_N_KNOBS]) {
  o->ring = (uint32_t)k[SWEEP_RING];
  o->batch = (uint32_t)k[SWEEP_BATCH];
  o->wait = (int)k[SWEEP_WAIT];
  o->spin = (int64_t)k[SWEEP_SPIN];
  o->yields = (int64_t)k[SWEEP_YIELDS];
  o->catchup = (int64_t)k[SWEEP_CATCHUP];
  o->pin = (int)k[SWEEP_PIN];
  o->claim = (uint32_t)k[SWEEP_CLAIM];
  o->batch_handlers = (int)k[SWEEP_HANDLER];
  o->fuse = (int)k[SWEEP_FUSE];
  o->rate = k[SWEEP_RATE];
  o->events = k[SWEEP_EVENTS];
}

static int hgrm_single; /* --hgrm FILE names the one file to write */

/* After a latency scenario's runs: writes their merged histogram with the
 * record (machine, scenario, every knob).  label: the sweep point's
 * file-name label or NULL.  Writes the path into path_out (256 bytes) when
 * not NULL.  Returns 0 or -1 (message printed). */
static int hgrm_scenario_done(const opts_t *o, const scenario_t *sc, uint64_t n,
                              const char *label, char *path_out) {
  if (!is_lat(sc))
    return 0;
  char path[256];
  if (hgrm_single)
    snprintf(path, sizeof path, "%s", o->hgrm);
  else {
    size_t len = strlen(o->hgrm);
    int strip = len > 5 && strcmp(o->hgrm + len - 5, ".hgrm") == 0;
    snprintf(path, sizeof path, "%.*s.%s%s%s.hgrm", (int)(strip ? len - 5 : len), o->hgrm,
             sc->name, label ? "." : "", label ? label : "");
  }
  machine_t m;
  machine_probe(&m, NULL);
  uint64_t k[SWEEP_N_KNOBS];
  knobs_of(o, sc, n, k);
  char text[2048], knobs[512];
  size_t off = (size_t)machine_text(&m, text, sizeof text);
  off = off < sizeof text ? off : sizeof text - 1;
  knobs[0] = '\0';
  for (size_t i = 0, ko = 0; i < SWEEP_N_KNOBS && ko < sizeof knobs; i++) {
    char v[32];
    sweep_value_str((sweep_knob_t)i, k[i], v, sizeof v);
    ko += (size_t)snprintf(knobs + ko, sizeof knobs - ko, "%s%s=%s", i ? " " : "",
                           sweep_knob_name((sweep_knob_t)i), v);
  }
  snprintf(text + off, sizeof text - off,
           "scenario: %s\nknobs: %s\nruns: %d (their samples merged)\n"
           "values: ns, end to end from the intended send time",
           sc->name, knobs, o->runs);
  int rc = hgrm_collect_write(path, text);
  if (rc < 0) {
    fprintf(stderr, "fe_bench: --hgrm %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (rc == 0 && path_out != NULL)
    snprintf(path_out, 256, "%s", path);
  return 0;
}

typedef struct sweep_ctx {
  const opts_t *base;
  const scenario_t *sc;
  const sweep_grid_t *grid;
} sweep_ctx_t;

static int sweep_point_run(const uint64_t k[SWEEP_N_KNOBS], int run, int runs,
                           sweep_sample_t *out, void *user) {
  sweep_ctx_t *c = user;
  opts_t o = *c->base;
  apply_knobs(&o, k);
  result_t r;
  memset(&r, 0, sizeof r);
  if (c->sc->run(c->sc, &o, o.events, &r) != 0)
    return 1;
  out->mev_s = r.mev_s;
  out->has_lat = r.has_lat;
  out->p50 = r.p50, out->p99 = r.p99, out->p999 = r.p999;
  out->p9999 = r.p9999, out->max = r.max;
  if (o.hgrm && run == runs - 1) {
    char label[200];
    sweep_label(c->grid, k, "_", 0, label, sizeof label);
    if (hgrm_scenario_done(&o, c->sc, o.events, label, out->hgrm) != 0)
      return 1;
  }
  return 0;
}

/* --sweep, --csv, --objective, --hgrm.  Returns the exit status after a
 * sweep or a refusal, or -1 to go on with the plain run (--hgrm armed). */
static int bench_extras(opts_t *o, int nsc, char **names) {
  if (o->hgrm)
    hgrm_collect_enable(1);
  if (o->sweep == NULL) {
    if (o->csv || o->objective >= 0) {
      fprintf(stderr, "fe_bench: --csv and --objective need --sweep\n");
      return 2;
    }
    int lat = 0;
    for (size_t k = 0; k < N_SCENARIOS; k++) {
      int chosen = nsc == 0;
      for (int i = 0; i < nsc; i++)
        chosen |= strcmp(names[i], scenarios[k].name) == 0;
      lat += chosen && is_lat(&scenarios[k]);
    }
    hgrm_single = lat == 1;
    return -1;
  }
  if (nsc != 1) {
    fprintf(stderr, "fe_bench: --sweep takes exactly one scenario\n");
    return 2;
  }
  if (o->csv && o->json) {
    fprintf(stderr, "fe_bench: --csv and --json exclude each other\n");
    return 2;
  }
  const scenario_t *sc = find_scenario(names[0]);
  char err[256];
  static sweep_grid_t g;
  if (sweep_parse(o->sweep, &g, err, sizeof err) != 0) {
    fprintf(stderr, "fe_bench: %s\n", err);
    return 2;
  }
  if (o->objective == SWEEP_OBJ_P99 && !is_lat(sc)) {
    fprintf(stderr, "fe_bench: --objective p99: %s measures no latency (use mev_s)\n", sc->name);
    return 2;
  }
  sweep_opts_t so = {.scenario = sc->name, .runs = o->runs,
                     .objective = o->objective >= 0 ? (sweep_objective_t)o->objective
                                  : is_lat(sc) ? SWEEP_OBJ_P99 : SWEEP_OBJ_MEV_S,
                     .progress = isatty(STDERR_FILENO)};
  knobs_of(o, sc, o->events ? o->events : sc->events, so.base);
  for (uint64_t i = 0; i < g.points; i++) { /* refuse a bad point before running any */
    uint64_t k[SWEEP_N_KNOBS];
    memcpy(k, so.base, sizeof k);
    sweep_point(&g, i, k);
    if (k[SWEEP_CLAIM] > k[SWEEP_RING]) {
      char label[256];
      sweep_label(&g, k, " ", 1, label, sizeof label);
      fprintf(stderr, "fe_bench: sweep point [%s]: claim %" PRIu64 " exceeds ring %" PRIu64 "\n",
              label, k[SWEEP_CLAIM], k[SWEEP_RING]);
      return 2;
    }
  }
  sweep_row_t *rows = calloc((size_t)g.points, sizeof *rows);
  if (rows == NULL)
    return 1;
  sweep_ctx_t ctx = {o, sc, &g};
  hgrm_single = 0;
  if (sweep_run(&g, &so, sweep_point_run, &ctx, rows) != 0) {
    free(rows);
    return 1;
  }
  sweep_sort(rows, g.points, so.objective);
  machine_t m;
  machine_probe(&m, NULL);
  int rc = sweep_print(stdout, o->csv ? SWEEP_CSV : o->json ? SWEEP_JSON : SWEEP_TABLE,
                       &m, &g, &so, rows, g.points);
  free(rows);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  opts_t o = {.ring = 65536, .batch = 256, .claim = 1, .runs = 5, .spin = -1,
              .yields = -1, .catchup = -1, .objective = -1};
  static const struct option lo[] = {
      {"events", 1, 0, 'n'}, {"rate", 1, 0, 'r'}, {"ring", 1, 0, 'R'},
      {"batch", 1, 0, 'b'},  {"claim", 1, 0, 'c'}, {"wait", 1, 0, 'w'},
      {"pin", 0, 0, 'p'},    {"json", 0, 0, 'j'},  {"runs", 1, 0, 'k'},
      {"list", 0, 0, 'l'},   {"help", 0, 0, 'h'},  {"handler", 1, 0, 'H'},
      {"spin", 1, 0, 'S'},   {"yields", 1, 0, 'Y'}, {"fsync-group", 0, 0, 'F'},
      {"catchup", 1, 0, 'C'}, {"fuse", 0, 0, 'u'},
      {"sweep", 1, 0, OPT_SWEEP}, {"objective", 1, 0, OPT_OBJECTIVE},
      {"csv", 0, 0, OPT_CSV}, {"hgrm", 1, 0, OPT_HGRM},
      {0, 0, 0, 0}};
  int ch;
  uint64_t v;
  while ((ch = getopt_long(argc, argv, "n:r:R:b:c:w:pujk:lhH:S:Y:C:F", lo, NULL)) != -1) {
    int bad = 0;
    switch (ch) {
    case 'n': bad = parse_u64(optarg, &o.events) || o.events == 0; break;
    case 'r': bad = parse_u64(optarg, &o.rate) || o.rate == 0 || o.rate > 1000000000; break;
    case 'R': bad = parse_u64(optarg, &v) || v < 2 || v > (1u << 30) || (v & (v - 1)); o.ring = (uint32_t)v; o.ring_set = 1; break;
    case 'b': bad = parse_u64(optarg, &v) || v == 0 || v > (1u << 30); o.batch = (uint32_t)v; break;
    case 'c': bad = parse_u64(optarg, &v) || v == 0 || v > 65536; o.claim = (uint32_t)v; break;
    case 'w':
      o.wait = !strcmp(optarg, "spin") ? FE_WAIT_SPIN : !strcmp(optarg, "yield") ? FE_WAIT_YIELD
               : !strcmp(optarg, "park") ? FE_WAIT_PARK : -1;
      bad = o.wait < 0;
      break;
    case 'H':
      o.batch_handlers = !strcmp(optarg, "batch");
      bad = !o.batch_handlers && strcmp(optarg, "event") != 0;
      break;
    case 'S': bad = parse_u64(optarg, &v) || v > UINT32_MAX; o.spin = (int64_t)v; break;
    case 'Y': bad = parse_u64(optarg, &v) || v > UINT32_MAX; o.yields = (int64_t)v; break;
    case 'C': bad = parse_u64(optarg, &v) || v > UINT32_MAX; o.catchup = (int64_t)v; break;
    case 'p': o.pin = 1; break;
    case 'u': o.fuse = 1; break;
    case OPT_SWEEP: o.sweep = optarg; break;
    case OPT_OBJECTIVE:
      o.objective = !strcmp(optarg, "p99") ? SWEEP_OBJ_P99 : !strcmp(optarg, "mev_s") ? SWEEP_OBJ_MEV_S : -2;
      bad = o.objective == -2;
      break;
    case OPT_CSV: o.csv = 1; break;
    case OPT_HGRM: o.hgrm = optarg; break;
    case 'F': o.fsync_group = 1; break;
    case 'j': o.json = 1; break;
    case 'k': bad = parse_u64(optarg, &v) || v == 0 || v > MAX_RUNS; o.runs = (int)v; break;
    case 'l':
      for (size_t i = 0; i < N_SCENARIOS; i++)
        printf("%s\n", scenarios[i].name);
      return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
    if (bad) {
      if (ch >= OPT_SWEEP)
        fprintf(stderr, "fe_bench: invalid value for --%s: %s\n", ch == OPT_OBJECTIVE ? "objective" : "?", optarg);
      else
        fprintf(stderr, "fe_bench: invalid value for -%c: %s\n", ch, optarg);
      return 2;
    }
  }
  if (o.claim > o.ring) {
    fprintf(stderr, "fe_bench: --claim %u exceeds --ring %u\n", o.claim, o.ring);
    return 2;
  }
  for (int i = optind; i < argc; i++) {
    size_t k = 0;
    while (k < N_SCENARIOS && strcmp(argv[i], scenarios[k].name) != 0)
      k++;
    if (k == N_SCENARIOS) {
      fprintf(stderr, "fe_bench: unknown scenario '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  fe_diag_t d;
  if (fe_clock_init(&d) != 0) {
    fprintf(stderr, "fe_bench: clock: %s\n", d.msg);
    return 1;
  }
  base_slots = aligned_alloc(64, sizeof(order_t) * BASE_RING);
  memset(base_slots, 0, sizeof(order_t) * BASE_RING);
  if (o.sweep || o.csv || o.hgrm || o.objective >= 0) {
    int rc = bench_extras(&o, argc - optind, argv + optind);
    if (rc >= 0) {
      free(base_slots);
      return rc;
    }
  }
  for (size_t k = 0; k < N_SCENARIOS; k++) {
    const scenario_t *sc = &scenarios[k];
    int chosen = optind == argc;
    for (int i = optind; i < argc; i++)
      chosen |= strcmp(argv[i], sc->name) == 0;
    if (!chosen)
      continue;
    uint64_t n = o.events ? o.events : sc->events;
    result_t rs[MAX_RUNS];
    memset(rs, 0, sizeof rs);
    for (int i = 0; i < o.runs; i++)
      if (sc->run(sc, &o, n, &rs[i]) != 0)
        return 1;
    report(sc, &o, n, rs, o.runs);
    if (o.hgrm && hgrm_scenario_done(&o, sc, n, NULL, NULL) != 0)
      return 1;
  }
  free(base_slots);
  return 0;
}
