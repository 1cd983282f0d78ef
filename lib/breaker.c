/* Circuit breakers: see include/finevent/breaker.h.
 *
 * One lock per breaker guards everything but two fields: `se` (state and
 * epoch, packed so that one load reads both) and `not_permitted`.  `se` is
 * written only under the lock and read without it by the fast paths, which
 * need nothing else from the breaker: a permit issued from a stale `se`
 * merely carries an old epoch, and its outcome is then ignored under the
 * lock.  So every lock-free access is relaxed; the lock's acquire/release
 * pair orders everything else.
 */
#define _POSIX_C_SOURCE 200809L /* sched_yield */

#include "finevent/breaker.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NS_PER_SEC UINT64_C(1000000000)

/* Permit: epoch (mod 2^16) in bits 63..48, start time (mod 2^48 ns) below. */
#define PERMIT_TIME_BITS 48
#define PERMIT_TIME_MASK ((UINT64_C(1) << PERMIT_TIME_BITS) - 1)
#define PERMIT_EPOCH_MASK UINT32_C(0xffff)

/* se = epoch << 8 | state. */
#define SE_STATE(se) ((fe_breaker_state_t)((se) & 0xffu))
#define SE_EPOCH(se) ((se) >> 8)

/* Spin this many times on a held lock before yielding the CPU: on two
 * cores a preempted holder is not coming back while we spin. */
#define SPINS_BEFORE_YIELD 64

/* One outcome in a COUNT window. */
#define OUT_FAILED 1u
#define OUT_SLOW 2u

/* One second of a TIME window.  Valid iff gen == the window's gen; a valid
 * bucket always holds a second inside the window. */
typedef struct bucket {
  uint64_t sec;
  uint32_t gen;
  uint32_t calls, failed, slow;
} bucket_t;

/* Totals over whatever is being counted. */
typedef struct tally {
  uint64_t calls, failed, slow;
} tally_t;

/* A pending on_state call, made after the lock is dropped. */
typedef struct change {
  fe_breaker_state_t from, to;
} change_t;

/* At most two transitions per locked section: a timed one, then one caused
 * by the call itself. */
typedef struct changes {
  int n;
  change_t c[2];
} changes_t;

struct fe_breaker {
  /* 0 free, 1 held.  Acquired by exchange (acquire, L1) in lock(), freed by
   * a release store (U1) in unlock(); U1 pairs with L1. */
  uint32_t lock;
  /* Written (relaxed) only under the lock; read relaxed by the fast paths
   * and fe_breaker_state(), which need no other field to be ordered with
   * it (see the top of the file). */
  uint32_t se;
  /* Incremented (relaxed fetch-add) by any thread, read relaxed: a counter
   * that orders nothing. */
  uint64_t not_permitted;

  /* Everything below: read and written under the lock only. */
  uint32_t epoch;         /* full epoch; se holds it too */
  int trial_view;         /* metrics come from the trial counts */
  uint64_t since_ns;      /* clock time of the last transition */
  uint64_t transitions;
  uint32_t half_issued;   /* trial permits out (or finished) this epoch */
  tally_t trial;          /* trial outcomes this epoch */
  tally_t win;            /* totals of the sliding window */
  uint32_t min_calls;     /* effective minimum for the sliding window */
  /* COUNT window: ring of outcomes, `count` of them from `head`. */
  uint8_t *ring;
  uint32_t head, count;
  /* TIME window: ring of buckets, indexed by second % window_size. */
  bucket_t *buckets;
  uint32_t gen;
  uint64_t last_sec;

  fe_breaker_config_t cfg;  /* cfg.name points at name[] */
  char name[FE_BREAKER_NAME_MAX];
};

/* -------------------------------------------------------------- the lock */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void lock(fe_breaker_t *b) {
  for (;;) {
    if (__atomic_exchange_n(&b->lock, 1, __ATOMIC_ACQUIRE) == 0) /* L1 */
      return;
    /* Test before the next exchange so waiters share the line read-only;
     * relaxed: the exchange above provides the ordering once we win. */
    for (int spins = 0; __atomic_load_n(&b->lock, __ATOMIC_RELAXED);) {
      if (++spins < SPINS_BEFORE_YIELD) {
        cpu_relax();
      } else {
        sched_yield();
        spins = 0;
      }
    }
  }
}

static void unlock(fe_breaker_t *b) {
  __atomic_store_n(&b->lock, 0, __ATOMIC_RELEASE); /* U1, pairs with L1 */
}

/* ---------------------------------------------------------------- helpers */

static uint64_t now(const fe_breaker_t *b) {
  return b->cfg.now_ns != NULL ? b->cfg.now_ns(b->cfg.clock_user)
                               : fe_clock_now_ns();
}

static uint32_t load_se(const fe_breaker_t *b) {
  return __atomic_load_n(&b->se, __ATOMIC_RELAXED); /* why relaxed: top */
}

static int is_slow(const fe_breaker_t *b, uint64_t permit, uint64_t t) {
  uint64_t dur = (t - permit) & PERMIT_TIME_MASK;
  return dur >= b->cfg.slow_call_duration_ns;
}

/* failed/total >= threshold %, exactly, in integers. */
static int over(uint64_t part, uint64_t total, uint32_t pct) {
  return part * 100 >= (uint64_t)pct * total;
}

static int32_t permille(uint64_t part, uint64_t total, uint64_t min) {
  if (total == 0 || total < min)
    return -1;
  return (int32_t)(part * 1000 / total);
}

/* -------------------------------------------------------------- windows */

static void window_clear(fe_breaker_t *b) {
  b->win = (tally_t){0, 0, 0};
  b->head = b->count = 0;   /* the ring's old bytes are never read again */
  b->gen++;                 /* every bucket becomes invalid */
}

/* Drops the buckets that the window no longer covers at second sec.
 * O(min(sec - last_sec, window_size)). */
static void time_advance(fe_breaker_t *b, uint64_t sec) {
  uint32_t n = b->cfg.window_size;
  if (sec <= b->last_sec)
    return;
  if (sec - b->last_sec >= n) {
    b->win = (tally_t){0, 0, 0};
    b->gen++;
  } else {
    for (uint64_t s = b->last_sec + 1; s <= sec; s++) {
      bucket_t *k = &b->buckets[s % n];
      if (k->gen == b->gen) {
        b->win.calls -= k->calls;
        b->win.failed -= k->failed;
        b->win.slow -= k->slow;
        k->gen = b->gen - 1;
      }
    }
  }
  b->last_sec = sec;
}

static void window_touch(fe_breaker_t *b, uint64_t t) {
  if (b->cfg.window_type == FE_BREAKER_WINDOW_TIME)
    time_advance(b, t / NS_PER_SEC);
}

static void window_add(fe_breaker_t *b, uint64_t t, int failed, int slow) {
  if (b->cfg.window_type == FE_BREAKER_WINDOW_TIME) {
    time_advance(b, t / NS_PER_SEC);
    /* A clock read that lost the race to the lock may be a little behind
     * last_sec: count it in the newest second rather than lose it. */
    bucket_t *k = &b->buckets[b->last_sec % b->cfg.window_size];
    if (k->gen != b->gen)
      *k = (bucket_t){b->last_sec, b->gen, 0, 0, 0};
    k->calls++;
    k->failed += (uint32_t)failed;
    k->slow += (uint32_t)slow;
  } else {
    uint32_t n = b->cfg.window_size;
    uint8_t out = (uint8_t)((failed ? OUT_FAILED : 0) | (slow ? OUT_SLOW : 0));
    if (b->count == n) { /* evict the oldest, reuse its place */
      uint8_t old = b->ring[b->head];
      b->win.calls--;
      b->win.failed -= (old & OUT_FAILED) != 0;
      b->win.slow -= (old & OUT_SLOW) != 0;
      b->ring[b->head] = out;
      b->head = (b->head + 1) % n;
    } else {
      b->ring[(b->head + b->count) % n] = out;
      b->count++;
    }
  }
  b->win.calls++;
  b->win.failed += (uint64_t)failed;
  b->win.slow += (uint64_t)slow;
}

/* ---------------------------------------------------------- transitions */

/* Under the lock.  Moves to `to` with a new epoch; notes the change for
 * on_state if the state differs. */
static void transition(fe_breaker_t *b, fe_breaker_state_t to, uint64_t t,
                       changes_t *ch) {
  fe_breaker_state_t from = SE_STATE(b->se);
  b->epoch++;
  __atomic_store_n(&b->se, (b->epoch << 8) | (uint32_t)to, __ATOMIC_RELAXED);
  b->since_ns = t;
  b->half_issued = 0;
  if (to == FE_BREAKER_HALF_OPEN) {
    b->trial = (tally_t){0, 0, 0};
    b->trial_view = 1;
  } else if (to != FE_BREAKER_OPEN) {
    /* OPEN keeps whatever opened it for fe_breaker_metrics(). */
    window_clear(b);
    b->trial_view = 0;
  }
  if (from != to) {
    b->transitions++;
    ch->c[ch->n++] = (change_t){from, to};
  }
}

static void notify(const fe_breaker_t *b, const changes_t *ch) {
  if (b->cfg.on_state == NULL)
    return;
  for (int i = 0; i < ch->n; i++)
    b->cfg.on_state(b->name, ch->c[i].from, ch->c[i].to, b->cfg.user);
}

static uint64_t elapsed(uint64_t t, uint64_t since) {
  return t > since ? t - since : 0;  /* another thread's clock read may lead */
}

/* Under the lock: a half-open breaker past its limit goes back to OPEN. */
static void half_open_expiry(fe_breaker_t *b, uint64_t t, changes_t *ch) {
  if (SE_STATE(b->se) == FE_BREAKER_HALF_OPEN &&
      b->cfg.max_wait_half_open_ns != 0 &&
      elapsed(t, b->since_ns) >= b->cfg.max_wait_half_open_ns)
    transition(b, FE_BREAKER_OPEN, t, ch);
}

/* ------------------------------------------------------------ public API */

void fe_breaker_config_init(fe_breaker_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->name = "default";
  cfg->failure_rate_threshold = 50;
  cfg->slow_call_rate_threshold = 100;
  cfg->slow_call_duration_ns = 60 * NS_PER_SEC;
  cfg->window_type = FE_BREAKER_WINDOW_COUNT;
  cfg->window_size = 100;
  cfg->minimum_calls = 100;
  cfg->permitted_calls_half_open = 10;
  cfg->wait_open_ns = 60 * NS_PER_SEC;
  cfg->max_wait_half_open_ns = 0;
}

static int check_name(const char *name, fe_diag_t *d) {
  if (name == NULL)
    return fe__diag(d, FE_ENAME, "breaker: name is NULL");
  size_t len = strnlen(name, FE_BREAKER_NAME_MAX);
  if (len == 0)
    return fe__diag(d, FE_ENAME, "breaker: name is empty");
  if (len >= FE_BREAKER_NAME_MAX)
    return fe__diag(d, FE_ENAME, "breaker: name \"%.31s...\" is %d bytes or "
                    "longer; at most %d allowed", name, FE_BREAKER_NAME_MAX,
                    FE_BREAKER_NAME_MAX - 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
             c == '-';
    if (!ok)
      return fe__diag(d, FE_ENAME, "breaker: name has byte 0x%02x at offset "
                      "%zu; allowed are [A-Za-z0-9_.:-]", c, i);
  }
  return 0;
}

int fe_breaker_config_check(const fe_breaker_config_t *cfg, fe_diag_t *d) {
  if (cfg == NULL)
    return fe__diag(d, FE_EINVAL, "breaker: config is NULL");
  int rc = check_name(cfg->name, d);
  if (rc != 0)
    return rc;
  if (cfg->failure_rate_threshold < 1 || cfg->failure_rate_threshold > 100)
    return fe__diag(d, FE_ERANGE, "breaker %s: failure_rate_threshold %u is "
                    "outside 1..100 (percent)", cfg->name,
                    cfg->failure_rate_threshold);
  if (cfg->slow_call_rate_threshold < 1 || cfg->slow_call_rate_threshold > 100)
    return fe__diag(d, FE_ERANGE, "breaker %s: slow_call_rate_threshold %u is "
                    "outside 1..100 (percent)", cfg->name,
                    cfg->slow_call_rate_threshold);
  if (cfg->slow_call_duration_ns == 0 ||
      cfg->slow_call_duration_ns >= FE_BREAKER_DURATION_LIMIT)
    return fe__diag(d, FE_ERANGE, "breaker %s: slow_call_duration_ns %llu is "
                    "outside 1..2^48-1", cfg->name,
                    (unsigned long long)cfg->slow_call_duration_ns);
  if (cfg->window_type != FE_BREAKER_WINDOW_COUNT &&
      cfg->window_type != FE_BREAKER_WINDOW_TIME)
    return fe__diag(d, FE_EINVAL, "breaker %s: window_type %d is neither "
                    "FE_BREAKER_WINDOW_COUNT nor FE_BREAKER_WINDOW_TIME",
                    cfg->name, (int)cfg->window_type);
  if (cfg->window_size < 1 || cfg->window_size > FE_BREAKER_SIZE_MAX)
    return fe__diag(d, FE_ERANGE, "breaker %s: window_size %u is outside "
                    "1..%u", cfg->name, cfg->window_size,
                    (unsigned)FE_BREAKER_SIZE_MAX);
  if (cfg->minimum_calls < 1)
    return fe__diag(d, FE_ERANGE, "breaker %s: minimum_calls is 0; must be "
                    ">= 1", cfg->name);
  if (cfg->permitted_calls_half_open < 1 ||
      cfg->permitted_calls_half_open > FE_BREAKER_SIZE_MAX)
    return fe__diag(d, FE_ERANGE, "breaker %s: permitted_calls_half_open %u "
                    "is outside 1..%u", cfg->name,
                    cfg->permitted_calls_half_open,
                    (unsigned)FE_BREAKER_SIZE_MAX);
  if (cfg->wait_open_ns == 0)
    return fe__diag(d, FE_ERANGE, "breaker %s: wait_open_ns is 0; must be "
                    ">= 1", cfg->name);
  return 0;
}

int fe_breaker_create(const fe_breaker_config_t *cfg, fe_breaker_t **out,
                      fe_diag_t *d) {
  if (out == NULL)
    return fe__diag(d, FE_EINVAL, "breaker: out is NULL");
  int rc = fe_breaker_config_check(cfg, d);
  if (rc != 0)
    return rc;
  fe_breaker_t *b = calloc(1, sizeof *b);
  if (b == NULL)
    return fe__diag(d, FE_ENOMEM, "breaker %s: cannot allocate %zu bytes",
                    cfg->name, sizeof *b);
  b->cfg = *cfg;
  strcpy(b->name, cfg->name); /* length checked above */
  b->cfg.name = b->name;
  if (cfg->window_type == FE_BREAKER_WINDOW_TIME) {
    b->buckets = calloc(cfg->window_size, sizeof *b->buckets);
    b->min_calls = cfg->minimum_calls;
  } else {
    b->ring = calloc(cfg->window_size, sizeof *b->ring);
    b->min_calls = cfg->minimum_calls < cfg->window_size ? cfg->minimum_calls
                                                         : cfg->window_size;
  }
  if (b->buckets == NULL && b->ring == NULL) {
    free(b);
    return fe__diag(d, FE_ENOMEM, "breaker %s: cannot allocate a window of "
                    "%u entries", cfg->name, cfg->window_size);
  }
  /* Buckets are calloc'd with gen 0: gen 1 makes them all invalid. */
  b->gen = 1;
  b->since_ns = now(b);
  b->last_sec = b->since_ns / NS_PER_SEC;
  b->se = (uint32_t)FE_BREAKER_CLOSED; /* epoch 0; published by *out's
                                          hand-off, which the caller syncs */
  *out = b;
  return 0;
}

void fe_breaker_destroy(fe_breaker_t *b) {
  if (b == NULL)
    return;
  free(b->ring);
  free(b->buckets);
  free(b);
}

static uint64_t make_permit(uint32_t epoch, uint64_t t) {
  return ((uint64_t)(epoch & PERMIT_EPOCH_MASK) << PERMIT_TIME_BITS) |
         (t & PERMIT_TIME_MASK);
}

static int permit_current(const fe_breaker_t *b, uint64_t permit) {
  return (uint32_t)(permit >> PERMIT_TIME_BITS) ==
         (b->epoch & PERMIT_EPOCH_MASK);
}

static int reject(fe_breaker_t *b) {
  __atomic_fetch_add(&b->not_permitted, 1, __ATOMIC_RELAXED);
  return FE_EBREAKER;
}

int fe_breaker_acquire(fe_breaker_t *b, uint64_t *permit) {
  if (b == NULL || permit == NULL)
    return FE_EINVAL;
  uint64_t t = now(b);
  uint32_t se = load_se(b);
  switch (SE_STATE(se)) {
  case FE_BREAKER_CLOSED:
  case FE_BREAKER_DISABLED:
  case FE_BREAKER_METRICS_ONLY:
    /* Permitting from a stale se is the same as having been permitted just
     * before the transition: the permit's old epoch makes it stale. */
    *permit = make_permit(SE_EPOCH(se), t);
    return 0;
  case FE_BREAKER_FORCED_OPEN:
    return reject(b);
  default:
    break;
  }

  changes_t ch = {0};
  int rc;
  lock(b);
  fe_breaker_state_t st = SE_STATE(b->se);
  if (st == FE_BREAKER_OPEN && elapsed(t, b->since_ns) >= b->cfg.wait_open_ns) {
    transition(b, FE_BREAKER_HALF_OPEN, t, &ch);
    st = FE_BREAKER_HALF_OPEN;
  } else {
    half_open_expiry(b, t, &ch);
    st = SE_STATE(b->se);
  }
  if (st == FE_BREAKER_HALF_OPEN &&
      b->half_issued < b->cfg.permitted_calls_half_open) {
    b->half_issued++;
    *permit = make_permit(b->epoch, t);
    rc = 0;
  } else if (st == FE_BREAKER_CLOSED || st == FE_BREAKER_DISABLED ||
             st == FE_BREAKER_METRICS_ONLY) {
    /* Changed since the lock-free look. */
    *permit = make_permit(b->epoch, t);
    rc = 0;
  } else {
    rc = reject(b);
  }
  unlock(b);
  notify(b, &ch);
  return rc;
}

/* Under the lock: the last trial outcome decides. */
static void half_open_decide(fe_breaker_t *b, uint64_t t, changes_t *ch) {
  uint32_t n = b->cfg.permitted_calls_half_open;
  if (b->trial.calls < n)
    return;
  int bad = over(b->trial.failed, b->trial.calls, b->cfg.failure_rate_threshold) ||
            over(b->trial.slow, b->trial.calls, b->cfg.slow_call_rate_threshold);
  transition(b, bad ? FE_BREAKER_OPEN : FE_BREAKER_CLOSED, t, ch);
}

static int outcome(fe_breaker_t *b, uint64_t permit, int failed) {
  if (b == NULL)
    return FE_EINVAL;
  switch (SE_STATE(load_se(b))) {
  case FE_BREAKER_OPEN:
  case FE_BREAKER_FORCED_OPEN:
    /* No permit is ever issued in these states, so the permit is stale;
     * by read-read coherence this thread cannot see an se older than the
     * one its acquire saw. */
  case FE_BREAKER_DISABLED:
    return 0;
  default:
    break;
  }
  uint64_t t = now(b);
  int slow = is_slow(b, permit, t);
  changes_t ch = {0};
  lock(b);
  half_open_expiry(b, t, &ch);
  if (permit_current(b, permit)) {
    switch (SE_STATE(b->se)) {
    case FE_BREAKER_CLOSED:
      window_add(b, t, failed, slow);
      if (b->win.calls >= b->min_calls &&
          (over(b->win.failed, b->win.calls, b->cfg.failure_rate_threshold) ||
           over(b->win.slow, b->win.calls, b->cfg.slow_call_rate_threshold)))
        transition(b, FE_BREAKER_OPEN, t, &ch);
      break;
    case FE_BREAKER_METRICS_ONLY:
      window_add(b, t, failed, slow);
      break;
    case FE_BREAKER_HALF_OPEN:
      b->trial.calls++;
      b->trial.failed += (uint64_t)failed;
      b->trial.slow += (uint64_t)slow;
      half_open_decide(b, t, &ch);
      break;
    default:
      break;
    }
  }
  unlock(b);
  notify(b, &ch);
  return 0;
}

int fe_breaker_on_success(fe_breaker_t *b, uint64_t permit) {
  return outcome(b, permit, 0);
}

int fe_breaker_on_error(fe_breaker_t *b, uint64_t permit) {
  return outcome(b, permit, 1);
}

int fe_breaker_release(fe_breaker_t *b, uint64_t permit) {
  if (b == NULL)
    return FE_EINVAL;
  /* Only half-open permits hold anything; a permit from another state is
   * either of that state (nothing to free) or stale. */
  if (SE_STATE(load_se(b)) != FE_BREAKER_HALF_OPEN)
    return 0;
  uint64_t t = now(b);
  changes_t ch = {0};
  lock(b);
  half_open_expiry(b, t, &ch);
  if (SE_STATE(b->se) == FE_BREAKER_HALF_OPEN && permit_current(b, permit) &&
      b->half_issued > b->trial.calls)
    b->half_issued--;
  unlock(b);
  notify(b, &ch);
  return 0;
}

static int manual(fe_breaker_t *b, fe_breaker_state_t to) {
  if (b == NULL)
    return FE_EINVAL;
  uint64_t t = now(b);
  changes_t ch = {0};
  lock(b);
  transition(b, to, t, &ch);
  unlock(b);
  notify(b, &ch);
  return 0;
}

int fe_breaker_force_open(fe_breaker_t *b) {
  return manual(b, FE_BREAKER_FORCED_OPEN);
}

int fe_breaker_disable(fe_breaker_t *b) {
  return manual(b, FE_BREAKER_DISABLED);
}

int fe_breaker_metrics_only(fe_breaker_t *b) {
  return manual(b, FE_BREAKER_METRICS_ONLY);
}

int fe_breaker_reset(fe_breaker_t *b) {
  return manual(b, FE_BREAKER_CLOSED);
}

int fe_breaker_state(const fe_breaker_t *b) {
  if (b == NULL)
    return FE_EINVAL;
  return (int)SE_STATE(load_se(b));
}

const char *fe_breaker_state_name(int state) {
  switch (state) {
  case FE_BREAKER_CLOSED: return "CLOSED";
  case FE_BREAKER_OPEN: return "OPEN";
  case FE_BREAKER_HALF_OPEN: return "HALF_OPEN";
  case FE_BREAKER_DISABLED: return "DISABLED";
  case FE_BREAKER_FORCED_OPEN: return "FORCED_OPEN";
  case FE_BREAKER_METRICS_ONLY: return "METRICS_ONLY";
  default: return "UNKNOWN";
  }
}

int fe_breaker_metrics(fe_breaker_t *b, fe_breaker_metrics_t *m) {
  if (b == NULL || m == NULL)
    return FE_EINVAL;
  uint64_t t = now(b);
  fe_breaker_metrics_t r;
  memset(&r, 0, sizeof r);
  lock(b);
  r.state = SE_STATE(b->se);
  tally_t w;
  uint64_t min;
  if (b->trial_view) {
    w = b->trial;
    min = b->cfg.permitted_calls_half_open;
  } else {
    window_touch(b, t);
    w = b->win;
    min = b->min_calls;
  }
  r.transitions = b->transitions;
  unlock(b);
  r.failure_rate_permille = permille(w.failed, w.calls, min);
  r.slow_rate_permille = permille(w.slow, w.calls, min);
  r.buffered_calls = w.calls;
  r.failed_calls = w.failed;
  r.slow_calls = w.slow;
  r.not_permitted_calls = __atomic_load_n(&b->not_permitted, __ATOMIC_RELAXED);
  *m = r;
  return 0;
}

const char *fe_breaker_name(const fe_breaker_t *b) {
  return b == NULL ? NULL : b->name;
}
