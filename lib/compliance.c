/* Pre-trade compliance: the checks, the state they keep, live rule changes
 * and the bus stages.  See include/finevent/compliance.h.
 *
 * Read side.  The running rule set is one pointer (c->snap) to an
 * immutable snapshot.  A reader (a check, or a batch of the stage)
 * announces itself by storing the global epoch into its own slot, then
 * loads the pointer, and clears the slot when done.  fe_compliance_apply()
 * swaps the pointer, advances the epoch, and waits until every slot is
 * either clear or holds the new epoch before it frees the old snapshot:
 *   R1 (reader: seq_cst store of the epoch into its slot) is ordered before
 *   R2 (reader: seq_cst load of c->snap), and
 *   W1 (writer: seq_cst exchange of c->snap) before W2 (seq_cst increment
 *   of the epoch) before W3 (seq_cst loads of the slots).
 * In the single total order of those seq_cst operations, either R1 comes
 * after W3 read the slot clear (then R2 comes after W1: the reader sees
 * the new snapshot), or W3 reads R1's value: an epoch read before W2 is
 * old and the writer waits for the slot to change, an epoch read after W2
 * means R2 follows W1.  So no reader can hold the old snapshot when it is
 * freed.  It is ck_epoch's scheme cut to one writer; written with the
 * __atomic builtins so that ThreadSanitizer sees it (lib/sync.h says why
 * ck_pr is not used for that).  A batch pays one seq_cst store (an xchg)
 * and one release store, however many orders it holds.
 *
 * State and its writers.  Everything an account owns -- its cells (the
 * account in one symbol: resting orders, open quantities, position, recent
 * orders, the limits in force), its open orders, its reserved notional and
 * its throttle bucket -- has a single writer: the one thread at a time that
 * checks, fills and releases that account (compliance.h "Threads": the stage
 * sharded by account gives each account one worker).  Those words are
 * changed by a load and a store, never a read-modify-write, and need no
 * fence: the owner reads its own writes in program order, and whoever hands
 * an account to another thread (the bus's sequences, the caller's lock)
 * already orders the two threads.  The words other threads may read for
 * monitoring (a cell's position, an account's reservation, the counters) are
 * relaxed atomics so that such a reader sees a whole word; it asks for no
 * ordering with anything else.
 *
 * Shared between writers, and so atomic read-modify-writes: the firm's
 * reserved total (a CAS that re-checks the limit against the value it
 * replaces, so the total never passes the limit however many shards reserve
 * at once; moved a few times per batch, see firm_reserve), the order pool's
 * free list (behind each reader's own cache, see ord_alloc), and the
 * insertions into the symbol, cell and account tables.  A table entry's
 * fields are written before the release store that publishes its index (B)
 * and read after the acquire load that finds it (A).  Reference prices are
 * one word each, stored and loaded relaxed: an order needs a recent price,
 * not an ordering with any other data. */
#define _POSIX_C_SOURCE 200809L
#include <sched.h>
#include <stddef.h>
#include <stdio.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "compliance_impl.h"
#include "gcra.h"
#include "sync.h"

#define MAX_TABLE (UINT64_C(1) << 26)

/* One open order, or a free entry of the pool of max_orders.  An open
 * order is found through its cell's resting slots (it is named by account,
 * symbol and client order id, and the cell is the account in the symbol),
 * so only the account's owner reads or writes its fields; the reservation
 * it holds is remaining * price (quantity times valuation price, exact:
 * the check refuses notionals above INT64_MAX / 2).  next is the free
 * list's link, read by other threads' pops: see pool_pop. */
typedef struct ord {
  uint32_t next;      /* free list: index + 1 of the next free entry */
  uint32_t side;
  uint64_t seq;       /* arrival in its cell: cancel-oldest picks the lowest */
  int64_t price;      /* valuation price, FE_PRICE_SCALE */
  int64_t remaining;  /* open quantity */
  uint64_t id[FE_CLORDID_MAX / 8]; /* client order id bytes */
} __attribute__((aligned(64))) ord_t;

typedef struct dup_ent {
  uint64_t h;  /* dup_hash; 0: empty */
  uint64_t ts;
} dup_ent_t;

/* The limits in force for one account in one symbol under one snapshot
 * (the account's override or the default, tightened by the symbol's), the
 * list verdicts and the collar tiers: computed on the cell's first order
 * under a snapshot, so that later orders read one line instead of two
 * hash lookups and a minimum per limit.  tiers points into the snapshot
 * of generation gen, which is alive while a reader holds it. */
typedef struct eff {
  uint64_t gen; /* the snapshot's generation; 0: not computed */
  const fe__tier_t *tiers;
  int64_t max_qty, max_notional, max_position, credit;
  uint8_t ntiers;
  uint8_t max_open; /* at most FE_COMPLIANCE_MAX_OPEN + 1: no limit */
  uint8_t unauthorized, restricted;
} eff_t;

/* One account in one symbol, six lines.  The identity is written before
 * the cell's index is published (B) and never changes; the rest is the
 * account owner's (see the top).  Line 0 holds what every event reads,
 * line 1 the limits in force and the arrival count, lines 2-3 the recent
 * orders (a new order reads them), lines 4-5 the resting slots (taken
 * lowest first, so with fewer than 16 open orders only line 4). */
typedef struct cell {
  uint64_t account;
  char sym[FE_SYMBOL_MAX];
  uint32_t si;          /* the symbol's state index */
  uint32_t mask;        /* bit j: resting[j] holds an open order */
  struct acct *acct;    /* the account's state; NULL: not looked up yet */
  int64_t position;     /* intraday, filled (monitoring reads: relaxed) */
  int64_t open_buy;     /* open quantity of buys */
  int64_t open_sell;    /* ... of sells */
  eff_t eff;
  uint64_t seq;         /* orders recorded (also the recent-order ring's
                           next entry, modulo its depth) */
  dup_ent_t dup[FE_COMPLIANCE_DUP_DEPTH];
  uint32_t resting[FE_COMPLIANCE_MAX_OPEN]; /* order index + 1 */
} __attribute__((aligned(64))) cell_t;

_Static_assert(sizeof(cell_t) == 6 * 64, "cell_t: six lines");
_Static_assert(offsetof(cell_t, eff) == 64 && offsetof(cell_t, dup) == 128 &&
                   offsetof(cell_t, resting) == 256,
               "cell_t: lines as the prefetch expects");

/* One account: its reserved notional and its throttle bucket, on a line of
 * its own (accounts on different workers never share one).  Every field is
 * the account owner's (see the top); reserved is also read by monitors,
 * hence relaxed atomics on it. */
typedef struct acct {
  int64_t reserved; /* notional of its open orders */
  uint64_t tat;     /* throttle: theoretical arrival time, ns (GCRA) */
  uint64_t tgen;    /* the throttle generation tat was taken under */
} __attribute__((aligned(64))) acct_t;

typedef struct sym_state {
  char sym[FE_SYMBOL_MAX];
  int64_t ref; /* reference price, 0: none */
  uint64_t pad;
} sym_state_t;

/* Order lifecycle counters (fe_compliance_stats_t): released, fills,
 * unknown_orders. */
enum { LIFE_RELEASED, LIFE_FILLS, LIFE_UNKNOWN, LIFE_COUNT };

/* Free order entries a reader keeps for itself (see ord_alloc). */
#define ORD_CACHE 16

/* One reader: its epoch, its own counters (single writer: the reader;
 * fe_compliance_stats sums them with relaxed loads), and what only it
 * touches: its share of the firm's total (see firm_reserve) and its cache
 * of free order entries. */
typedef struct reader {
  uint64_t epoch; /* 0: outside; else the epoch it entered at */
  int64_t lease;   /* firm total added (< 0: owed) beyond this section's
                      reservations: settled when the section ends */
  int64_t grabbed; /* taken from the firm total in this section */
  uint32_t nfree;  /* entries in freec */
  uint32_t freec[ORD_CACHE]; /* order indices */
  uint64_t checked, accepted, smp;
  uint64_t life[LIFE_COUNT]; /* the stage's fills and closes */
  uint64_t rejected[FE_RULE_COUNT + 1];
  uint64_t flagged[FE_RULE_COUNT];
  uint64_t amended[FE_RULE_COUNT];
} __attribute__((aligned(FE_PAD))) reader_t;

struct fe_compliance {
  fe_compliance_config_t cfg;
  fe__snap_t *snap;  /* the running set: see the top */
  uint64_t epoch;    /* starts at 1 */
  pthread_mutex_t wlock; /* one apply, pin or copy at a time */
  uint64_t changes, refused, drifts; /* under wlock; read relaxed */
  _Alignas(FE_PAD) int64_t firm_reserved;
  _Alignas(FE_PAD) uint64_t free_head; /* tagged: tag << 32 | (index + 1) */
  uint64_t cells_used, syms_used, accts_used;
  uint64_t thr_gens; /* throttle generations handed out (under wlock) */
  /* fills and closes through the API (no reader index: shared, RMW) */
  _Alignas(FE_PAD) uint64_t life[LIFE_COUNT];
  uint64_t md_updates;
  fe__keytab_t accounts; /* account -> acct index + 1 */
  fe__keytab_t symtab;   /* symbol hash -> sym_state index + 1 */
  fe__keytab_t celltab;  /* (account, symbol) hash -> cell index + 1 */
  sym_state_t *syms;
  cell_t *cells;
  acct_t *accts;
  ord_t *ords;
  reader_t readers[FE_COMPLIANCE_READERS];
};

static inline void bump(uint64_t *p) {
  __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* Counts a lifecycle event: into the stage reader's own counter (a plain
 * add), or, from the API (rd NULL), into the shared one (a relaxed RMW:
 * a count needs no ordering). */
static inline void tally(fe_compliance_t *c, reader_t *rd, int which) {
  if (rd != NULL)
    fe__add_owned(&rd->life[which], 1);
  else
    bump(&c->life[which]);
}

static uint64_t now_ns(const fe_compliance_t *c) {
  return c->cfg.now_ns ? c->cfg.now_ns(c->cfg.clock_user) : fe_clock_now_ns();
}

/* ---------------------------------------------------------- read side */

static inline const fe__snap_t *enter(fe_compliance_t *c, reader_t *r) {
  uint64_t e = __atomic_load_n(&c->epoch, __ATOMIC_SEQ_CST);
  __atomic_store_n(&r->epoch, e, __ATOMIC_SEQ_CST);        /* R1 */
  return __atomic_load_n(&c->snap, __ATOMIC_SEQ_CST);      /* R2 */
}

/* Release: the reader's loads of the snapshot happen before the writer
 * that sees the slot clear frees it. */
static inline void leave(reader_t *r) {
  __atomic_store_n(&r->epoch, 0, __ATOMIC_RELEASE);
}

/* Writer: publishes s and waits out the readers of the old snapshot,
 * which it returns. */
static fe__snap_t *swap_snap(fe_compliance_t *c, fe__snap_t *s) {
  fe__snap_t *old = __atomic_exchange_n(&c->snap, s, __ATOMIC_SEQ_CST); /* W1 */
  uint64_t e = __atomic_add_fetch(&c->epoch, 1, __ATOMIC_SEQ_CST);     /* W2 */
  for (int i = 0; i < FE_COMPLIANCE_READERS; i++) {
    for (;;) {
      uint64_t v = __atomic_load_n(&c->readers[i].epoch, __ATOMIC_SEQ_CST);
      if (v == 0 || v >= e)                                          /* W3 */
        break;
      sched_yield();
    }
  }
  /* W3 reading a reader's 0 is an acquire that pairs with leave()'s
   * release store: that reader's accesses to old happen before the free. */
  return old;
}

/* ------------------------------------------------------------- tables */

static uint64_t sym_key(const char sym[FE_SYMBOL_MAX]) {
  return XXH3_64bits(sym, FE_SYMBOL_MAX);
}

/* Gets the index (value word idx + 1, allocated from pool counter *used of
 * max) for key in kt, making it with init(idx) when new (init NULL: the
 * zeroed entry is the new one).  Returns the
 * index, or -1 when a table is full.  Lock-free: concurrent makers of the
 * same key each take a pool entry, one wins the CAS, the others' entries
 * are wasted (rare: two first orders of one cell at once). */
static int64_t pool_get(fe__keytab_t *kt, uint64_t key, uint64_t *used,
                        uint64_t max, void (*init)(void *, uint64_t,
                                                   const void *),
                        void *base, const void *arg) {
  uint64_t *w = fe__keytab_get(kt, key);
  if (w == NULL)
    return -1;
  uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE); /* A: pairs with B */
  if (FE_LIKELY(v != 0))
    return (int64_t)(v - 1);
  uint64_t idx = __atomic_fetch_add(used, 1, __ATOMIC_RELAXED);
  if (idx >= max)
    return -1;
  if (init != NULL)
    init(base, idx, arg);
  uint64_t expect = 0;
  /* B: the entry's fields are written before its index is published. */
  if (__atomic_compare_exchange_n(w, &expect, idx + 1, 0, __ATOMIC_RELEASE,
                                  __ATOMIC_ACQUIRE))
    return (int64_t)idx;
  return (int64_t)(expect - 1);
}

static void sym_init(void *base, uint64_t idx, const void *arg) {
  sym_state_t *s = &((sym_state_t *)base)[idx];
  memcpy(s->sym, arg, FE_SYMBOL_MAX);
}

typedef struct cell_arg {
  uint64_t account;
  const char *sym;
  uint32_t si;
} cell_arg_t;

static void cell_init(void *base, uint64_t idx, const void *arg) {
  cell_t *e = &((cell_t *)base)[idx];
  const cell_arg_t *a = arg;
  e->account = a->account;
  memcpy(e->sym, a->sym, FE_SYMBOL_MAX);
  e->si = a->si;
}

/* The symbol's state index, made if new; -1 when full (or, fail-closed,
 * on a 64-bit hash collision between two symbols). */
static int64_t sym_get(fe_compliance_t *c, const char sym[FE_SYMBOL_MAX]) {
  int64_t i = pool_get(&c->symtab, sym_key(sym), &c->syms_used,
                       c->cfg.max_symbols, sym_init, c->syms, sym);
  if (i >= 0 && memcmp(c->syms[i].sym, sym, FE_SYMBOL_MAX) != 0)
    return -1;
  return i;
}

static int64_t sym_find(const fe_compliance_t *c,
                        const char sym[FE_SYMBOL_MAX]) {
  uint64_t *w = fe__keytab_find(&c->symtab, sym_key(sym));
  if (w == NULL)
    return -1;
  uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE); /* A: pairs with B */
  if (v == 0 || memcmp(c->syms[v - 1].sym, sym, FE_SYMBOL_MAX) != 0)
    return -1;
  return (int64_t)(v - 1);
}

/* A cell is keyed by its account and symbol bytes together, so that
 * finding it is one table probe (the symbol's index is in the cell).  The
 * table hashes the key again, so the key need only keep distinct pairs
 * apart: odd multipliers make each word's contribution a bijection, and
 * one mixing round spreads the sum.  A collision fails closed (the cell
 * does not match: TABLE_FULL), as any 64-bit key would. */
static uint64_t cell_key(uint64_t account, const char sym[FE_SYMBOL_MAX]) {
  uint64_t w[2];
  memcpy(w, sym, sizeof w);
  return fe__mix64(account + w[0] * UINT64_C(0x9E3779B97F4A7C15) +
                   w[1] * UINT64_C(0xC2B2AE3D27D4EB4F));
}

static int cell_is(const cell_t *e, uint64_t account,
                   const char sym[FE_SYMBOL_MAX]) {
  return e->account == account && memcmp(e->sym, sym, FE_SYMBOL_MAX) == 0;
}

/* The cell of account in sym (symbol index si), made if new; NULL when a
 * table is full (or, fail-closed, on a 64-bit key collision). */
static cell_t *cell_get(fe_compliance_t *c, uint64_t account,
                        const char sym[FE_SYMBOL_MAX], uint32_t si) {
  cell_arg_t a = {account, sym, si};
  int64_t i = pool_get(&c->celltab, cell_key(account, sym), &c->cells_used,
                       c->cfg.max_cells, cell_init, c->cells, &a);
  if (i < 0 || !cell_is(&c->cells[i], account, sym))
    return NULL;
  return &c->cells[i];
}

static cell_t *cell_find(const fe_compliance_t *c, uint64_t account,
                         const char sym[FE_SYMBOL_MAX]) {
  uint64_t *w = fe__keytab_find(&c->celltab, cell_key(account, sym));
  if (w == NULL)
    return NULL;
  uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE); /* A: pairs with B */
  if (v == 0)
    return NULL;
  cell_t *e = &c->cells[v - 1];
  return cell_is(e, account, sym) ? e : NULL;
}

static void id_words(const char id[FE_CLORDID_MAX], uint64_t out[4]) {
  memcpy(out, id, FE_CLORDID_MAX);
}

/* The order pool's free list: a Treiber stack whose head carries a tag
 * bumped by every change, so a pop that read an entry's next before the
 * entry was popped and pushed again fails its CAS (no ABA).  The push's
 * release CAS pairs with the pop's acquire (load or CAS) of the head: the
 * pushing thread's last accesses to the entry (its fields, written by the
 * order's owner, and next) happen before the popping thread writes them
 * for a new order.  A pop may read next while another thread rewrites it
 * (both relaxed atomics); such a pop then fails its CAS and discards it. */
static ord_t *pool_pop(fe_compliance_t *c) {
  uint64_t h = __atomic_load_n(&c->free_head, __ATOMIC_ACQUIRE);
  for (;;) {
    uint32_t i1 = (uint32_t)h;
    if (i1 == 0)
      return NULL;
    ord_t *o = &c->ords[i1 - 1];
    uint32_t next = __atomic_load_n(&o->next, __ATOMIC_RELAXED);
    uint64_t nh = ((h >> 32) + 1) << 32 | next;
    if (__atomic_compare_exchange_n(&c->free_head, &h, nh, 1, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE))
      return o;
  }
}

static void pool_push(fe_compliance_t *c, ord_t *o) {
  uint32_t i1 = (uint32_t)(o - c->ords) + 1;
  uint64_t h = __atomic_load_n(&c->free_head, __ATOMIC_RELAXED);
  do {
    __atomic_store_n(&o->next, (uint32_t)h, __ATOMIC_RELAXED);
  } while (!__atomic_compare_exchange_n(&c->free_head, &h,
                                        ((h >> 32) + 1) << 32 | i1, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* An order entry for a new order of rd (NULL: none; then the shared list
 * alone), or NULL when none is free.  A reader keeps up to ORD_CACHE
 * entries it freed and takes them back first: with orders opening and
 * closing at the same pace, as a stage's do, the shared list's CASes
 * (a locked instruction each, which also stalls the loads in flight
 * behind it) drop out of the per-order path.  The cache is the reader's
 * own (one thread at a time, like its epoch slot), so plain accesses; an
 * entry in it was last written by this thread, as the account's owner, so
 * reusing it needs no ordering either.  The price: free entries in one
 * reader's cache are not available to another, so with W readers up to
 * ORD_CACHE * (W - 1) entries fewer may be open at once (compliance.h,
 * max_orders). */
static ord_t *ord_alloc(fe_compliance_t *c, reader_t *rd) {
  if (rd != NULL && rd->nfree != 0)
    return &c->ords[rd->freec[--rd->nfree]];
  return pool_pop(c);
}

/* Gives o back: into rd's cache while it has room, else to the list. */
static void ord_free(fe_compliance_t *c, reader_t *rd, ord_t *o) {
  if (rd != NULL && rd->nfree < ORD_CACHE) {
    rd->freec[rd->nfree++] = (uint32_t)(o - c->ords);
    return;
  }
  pool_push(c, o);
}

/* The resting slot of cl holding the order with client order id w, or
 * -1.  Visits only the slots in use. */
static int ord_slot(const fe_compliance_t *c, const cell_t *cl,
                    const uint64_t w[4]) {
  for (uint32_t m = cl->mask; m != 0; m &= m - 1) {
    int j = __builtin_ctz(m);
    const ord_t *o = &c->ords[cl->resting[j] - 1];
    if (o->id[0] == w[0] && o->id[1] == w[1] && o->id[2] == w[2] &&
        o->id[3] == w[3])
      return j;
  }
  return -1;
}

/* ---------------------------------------------------------- the money */

/* q * p: whole units times a FE_PRICE_SCALE price is a FE_PRICE_SCALE
 * amount.  INT64_MAX when it does not fit (the check refuses such orders
 * before it values them). */
static int64_t notional(int64_t q, int64_t p) {
  __int128 v = (__int128)q * p;
  return v > INT64_MAX ? INT64_MAX : v < -INT64_MAX ? -INT64_MAX : (int64_t)v;
}

/* Largest quantity whose notional at p fits in room (p > 0). */
static int64_t qty_for(int64_t room, int64_t p) {
  return room <= 0 ? 0 : room / p;
}

/* The firm's total, firm_reserved, is shared by every reader, and a
 * locked read-modify-write per order costs more than the rest of a check's
 * arithmetic.  So inside a read-side section (a batch of the stage, or one
 * fe_compliance_check) a reader moves it only now and then, keeping the
 * difference in its lease:
 *   lease = what the reader added to the word - what its orders took.
 * Under a limit the lease is never negative: a reservation of n is taken
 * from the lease while that covers it; otherwise the shortfall, plus an
 * extra, is added to the word by a CAS that re-checks the limit against
 * the value it replaces, so the word never passes the limit, and the true
 * total (the word less every reader's lease) never does either.  The extra
 * is what the section has taken so far, capped by the room left: a batch
 * pays a handful of CASes however long it is, and holds back from the
 * other readers at most about what it has itself reserved (the first grab
 * of a section takes the shortfall alone, so a single check is exact).  A
 * release adds to the lease.  Without a limit nothing is checked, and the
 * lease nets reservations against releases (negative: what the reader
 * owes the word).  firm_settle() pays the lease back when the section
 * ends: one atomic add.  Relaxed throughout: the word is its own
 * invariant and orders no other data.  Returns 1 if reserved (force:
 * always; only the shortfall is added then, with no extra). */
static int firm_reserve(fe_compliance_t *c, reader_t *rd, int64_t n,
                        int64_t lim, int force) {
  if (lim == FE_COMPLIANCE_UNLIMITED || n <= rd->lease) {
    rd->lease -= n;
    return 1;
  }
  int64_t d = n - rd->lease, g;
  int64_t cur = __atomic_load_n(&c->firm_reserved, __ATOMIC_RELAXED);
  do {
    if (force) {
      g = d;
    } else {
      if (cur > lim - d)
        return 0;
      int64_t room = lim - d - cur;
      g = d + (rd->grabbed < room ? rd->grabbed : room);
    }
  } while (!__atomic_compare_exchange_n(&c->firm_reserved, &cur, cur + g, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  rd->grabbed = rd->grabbed < lim - g ? rd->grabbed + g : lim;
  rd->lease += g - n;
  return 1;
}

/* Gives n back to the firm: into rd's lease, or (the API's fills and
 * releases, outside any section: rd NULL) straight to the word. */
static void firm_release(fe_compliance_t *c, reader_t *rd, int64_t n) {
  if (rd != NULL)
    rd->lease += n;
  else /* relaxed: see firm_reserve */
    __atomic_fetch_sub(&c->firm_reserved, n, __ATOMIC_RELAXED);
}

/* The firm's total less what rd holds back: exact for rd's own view. */
static int64_t firm_total(const fe_compliance_t *c, const reader_t *rd) {
  /* relaxed: an estimate (amendment, report), re-checked by the CAS */
  return __atomic_load_n(&c->firm_reserved, __ATOMIC_RELAXED) - rd->lease;
}

/* Ends rd's section's share of the firm's total (see firm_reserve). */
static void firm_settle(fe_compliance_t *c, reader_t *rd) {
  if (rd->lease != 0) /* relaxed: see firm_reserve */
    __atomic_fetch_sub(&c->firm_reserved, rd->lease, __ATOMIC_RELAXED);
  rd->lease = 0;
  rd->grabbed = 0;
}

/* The account's total, which only its owner writes (see the top): a load
 * and a store; relaxed so that fe_compliance_reserved() on another thread
 * reads a whole word. */
static int reserve_owned(int64_t *w, int64_t n, int64_t lim, int force) {
  int64_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
  if (!force && lim != FE_COMPLIANCE_UNLIMITED && cur > lim - n)
    return 0;
  __atomic_store_n(w, cur + n, __ATOMIC_RELAXED);
  return 1;
}

/* Releases n of the account's and the firm's reservations. */
static void unreserve(fe_compliance_t *c, reader_t *rd, acct_t *a,
                      int64_t n) {
  fe__add_owned(&a->reserved, -n);
  firm_release(c, rd, n);
}

/* ----------------------------------------------------------- the check */

/* The account's state, made if new (zeroed: nothing reserved, a full
 * bucket); NULL when the table is full. */
static acct_t *acct_get(fe_compliance_t *c, uint64_t account) {
  int64_t i = pool_get(&c->accounts, account, &c->accts_used,
                       c->cfg.max_accounts, NULL, c->accts, NULL);
  return i < 0 ? NULL : &c->accts[i];
}

/* The THROTTLE rule on the account's own bucket: the GCRA of gcra.h, as
 * throttle.c uses it, for one token, on a word that only the account's owner
 * touches, so a load and a store where a shared fe_throttle_t would take a
 * CAS and a probe of its own key table.  A bucket last taken under
 * another generation (another rate or burst, or no rate for a while)
 * starts full, as a new fe_throttle_t's buckets do.  Returns 1 (the token
 * taken) or 0 (throttled: nothing taken). */
static int throttle_take(const fe__snap_t *s, acct_t *a, uint64_t now) {
  uint64_t tat = a->tgen == s->thr_gen ? a->tat : 0;
  uint64_t next = fe__gcra_take(tat, now, s->thr_t, s->thr_limit);
  if (next == 0)
    return 0;
  a->tat = next;
  a->tgen = s->thr_gen;
  return 1;
}

typedef struct chk {
  fe_compliance_t *c;
  const fe__snap_t *s;
  reader_t *rd;
  fe_event_t *ev;
  fe_compliance_result_t *res;
  const eff_t *e; /* the limits in force */
} chk_t;

static void copy_str(char *dst, const char *src, size_t n) {
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void emit(chk_t *k, fe_compliance_kind_t kind, int rule,
                 uint32_t reason, int64_t limit, int64_t value,
                 const fe_order_t *before, const ord_t *resting) {
  if (k->c->cfg.on_event == NULL)
    return;
  const fe_order_t *o = &k->ev->order;
  fe_compliance_event_t e;
  memset(&e, 0, sizeof e);
  e.kind = kind;
  e.rule = (fe_compliance_rule_t)rule;
  e.mode = (fe_compliance_mode_t)k->s->mode[rule];
  e.reason = reason;
  e.account = o->account;
  copy_str(e.symbol, o->symbol, FE_SYMBOL_MAX);
  copy_str(e.client_order_id, o->client_order_id, FE_CLORDID_MAX);
  if (resting != NULL)
    copy_str(e.resting_client_order_id, (const char *)resting->id,
             FE_CLORDID_MAX);
  e.limit = limit;
  e.value = value;
  if (before == NULL)
    before = o;
  e.qty_before = before->quantity;
  e.price_before = before->price;
  e.type_before = before->type;
  e.qty_after = o->quantity;
  e.price_after = o->price;
  e.type_after = o->type;
  e.trace_id = k->ev->trace_id;
  e.fingerprint = k->s->fp;
  e.change = __atomic_load_n(&k->c->changes, __ATOMIC_RELAXED);
  e.wall_ns = fe_clock_realtime_ns();
  k->c->cfg.on_event(&e, k->c->cfg.event_user);
}

/* A breach of rule: DETECTIVE flags it and returns 0 (go on); otherwise
 * the order is rejected with reason: returns 1. */
static int breach(chk_t *k, int rule, uint32_t reason, int64_t limit,
                  int64_t value) {
  if (k->s->mode[rule] == FE_MODE_DETECTIVE) {
    fe__add_owned(&k->rd->flagged[rule], 1);
    k->res->flags |= 1u << rule;
    emit(k, FE_COMPLIANCE_FLAG, rule, reason, limit, value, NULL, NULL);
    return 0;
  }
  k->res->verdict = FE_REJECT;
  k->res->reason = reason;
  k->res->rule = rule;
  return 1;
}

static void amended(chk_t *k, int rule, uint32_t reason, int64_t limit,
                    int64_t value, const fe_order_t *before) {
  fe__add_owned(&k->rd->amended[rule], 1);
  k->res->amended |= 1u << rule;
  emit(k, FE_COMPLIANCE_AMEND, rule, reason, limit, value, before, NULL);
}

/* The limit in force: the account's override or the default, tightened by
 * the symbol's. */
static int64_t limit_of(const fe__snap_t *s, const fe__arule_t *ar,
                        const fe__srule_t *sr, int which) {
  int64_t v = s->lim[which];
  if (ar != NULL && ar->lim[which] != FE__LIM_UNSET)
    v = ar->lim[which];
  if (sr != NULL && sr->lim[which] != FE__LIM_UNSET && sr->lim[which] < v)
    v = sr->lim[which];
  return v;
}

/* Computes the limits in force for account in sym under s. */
static void eff_fill(eff_t *e, const fe__snap_t *s, uint64_t account,
                     const char sym[FE_SYMBOL_MAX]) {
  const fe__arule_t *ar = fe__snap_account(s, account);
  const fe__srule_t *sr = fe__snap_symbol(s, sym);
  e->gen = s->gen;
  e->max_qty = limit_of(s, ar, sr, FE_LIMIT_MAX_QTY);
  e->max_notional = limit_of(s, ar, sr, FE_LIMIT_MAX_NOTIONAL);
  int64_t mo = limit_of(s, ar, sr, FE_LIMIT_MAX_OPEN);
  e->max_open = (uint8_t)(mo > FE_COMPLIANCE_MAX_OPEN ? FE_COMPLIANCE_MAX_OPEN + 1
                                                      : mo);
  e->max_position = limit_of(s, ar, sr, FE_LIMIT_MAX_POSITION);
  e->credit = limit_of(s, ar, sr, FE_LIMIT_CREDIT);
  e->unauthorized = s->auth_required && (ar == NULL || !ar->authorized);
  e->restricted = sr != NULL && sr->restricted;
  if (sr != NULL && sr->ntiers > 0) {
    e->tiers = sr->tiers;
    e->ntiers = sr->ntiers;
  } else {
    e->tiers = s->tiers;
    e->ntiers = s->ntiers;
  }
}

static int reject_plain(chk_t *k, uint32_t reason) {
  k->res->verdict = FE_REJECT;
  k->res->reason = reason;
  k->res->rule = FE_RULE_COUNT;
  return 1;
}

static int is_buy(uint32_t side) { return side == FE_SIDE_BUY; }

/* Does order (side, price or market) cross resting order r? */
static int crosses(uint32_t side, int market, int64_t price, const ord_t *r) {
  if (is_buy(side) == is_buy(r->side))
    return 0;
  if (market)
    return 1;
  return is_buy(side) ? price >= r->price : price <= r->price;
}

/* The oldest of cell's resting orders that the order crosses, or NULL. */
static const ord_t *self_match(const fe_compliance_t *c, const cell_t *cl,
                               uint32_t side, int market, int64_t price) {
  const ord_t *best = NULL;
  uint64_t best_seq = UINT64_MAX;
  for (uint32_t m = cl->mask; m != 0; m &= m - 1) {
    const ord_t *r = &c->ords[cl->resting[__builtin_ctz(m)] - 1];
    if (crosses(side, market, price, r) && r->seq < best_seq) {
      best = r;
      best_seq = r->seq;
    }
  }
  return best;
}

/* Never 0: 0 marks an empty entry. */
static uint64_t dup_hash(const fe_order_t *o) {
  uint64_t h = fe__mix64((uint64_t)o->side << 8 | o->type);
  h = fe__mix64(h ^ (uint64_t)o->quantity);
  return fe__mix64(h ^ (uint64_t)o->price) | 1;
}

/* 1 when one of cl's recent orders hashed to h less than window ns before
 * now.  The entries are the owner's. */
static int dup_seen(const cell_t *cl, uint64_t h, uint64_t now,
                    uint64_t window) {
  int hit = 0;
  for (int j = 0; j < FE_COMPLIANCE_DUP_DEPTH; j++) {
    const dup_ent_t *d = &cl->dup[j];
    hit |= d->h == h && now >= d->ts && now - d->ts < window;
  }
  return hit;
}

static void dup_record(cell_t *cl, uint64_t h, uint64_t now) {
  dup_ent_t *d = &cl->dup[cl->seq % FE_COMPLIANCE_DUP_DEPTH];
  d->h = h;
  d->ts = now;
}

/* The collar band half-width for reference ref (> 0), or -1 without
 * tiers.  Basis points: ref * value / 10000 in 64 bits whenever it fits
 * (value <= 10000), which the compiler turns into a multiplication; the
 * 128-bit division only for references above 922 trillion. */
static int64_t band(const eff_t *e, int64_t ref) {
  for (uint32_t i = 0; i < e->ntiers; i++) {
    const fe__tier_t *t = &e->tiers[i];
    if (ref < t->from)
      continue;
    if (t->basis == FE_COLLAR_ABSOLUTE)
      return t->value;
    if (ref <= INT64_MAX / 10000)
      return ref * t->value / 10000;
    return (int64_t)((__int128)ref * t->value / 10000);
  }
  return -1;
}

/* Are at least lim orders open in mask (lim above FE_COMPLIANCE_MAX_OPEN:
 * never)?  The usual limits need no count (the build has no popcount
 * instruction to count with). */
static int open_at_least(uint32_t mask, int lim) {
  if (lim > FE_COMPLIANCE_MAX_OPEN)
    return 0;
  if (lim == FE_COMPLIANCE_MAX_OPEN)
    return mask == UINT32_MAX;
  return __builtin_popcount(mask) >= lim;
}

/* Records the accepted order o (valuation vprice, reserving n) as open in
 * cl.  Returns 0, or the reason it cannot be tracked: BAD_ORDER (its client
 * order id is already open there), TABLE_FULL (no free entry or slot). */
static uint32_t ord_record(fe_compliance_t *c, reader_t *rd, cell_t *cl,
                           const fe_order_t *o, int64_t vprice) {
  uint64_t idw[4];
  id_words(o->client_order_id, idw);
  if (ord_slot(c, cl, idw) >= 0)
    return FE_CR_BAD_ORDER;
  if (cl->mask == UINT32_MAX)
    return FE_CR_TABLE_FULL;
  ord_t *od = ord_alloc(c, rd);
  if (od == NULL)
    return FE_CR_TABLE_FULL;
  od->side = o->side;
  od->seq = cl->seq++;
  od->price = vprice;
  od->remaining = o->quantity;
  memcpy(od->id, idw, sizeof od->id);
  int j = __builtin_ctz(~cl->mask);
  cl->resting[j] = (uint32_t)(od - c->ords) + 1;
  cl->mask |= 1u << j;
  if (is_buy(o->side))
    cl->open_buy += o->quantity;
  else
    cl->open_sell += o->quantity;
  return 0;
}

/* Runs every rule on k->ev; on acceptance records it.  cl: the order's
 * cell when the caller found it, else NULL.  Returns 0 (accept) or 1
 * (reject, k->res filled). */
static int check_order(chk_t *k, cell_t *cl) {
  fe_compliance_t *c = k->c;
  const fe__snap_t *s = k->s;
  fe_order_t *o = &k->ev->order;
  const uint8_t *m = s->mode;

  /* SANITY: always preventive. */
  if (o->quantity <= 0 || o->side < FE_SIDE_BUY ||
      o->side > FE_SIDE_SELL_SHORT || o->type < FE_ORD_MARKET ||
      o->type > FE_ORD_STOP_LIMIT ||
      (o->type != FE_ORD_MARKET && o->price <= 0))
    return reject_plain(k, FE_CR_BAD_ORDER);

  /* The limits in force: the cell's, recomputed once per snapshot; a cell
   * not made yet is made only once the list and state rules pass. */
  if (cl == NULL)
    cl = cell_find(c, o->account, o->symbol);
  eff_t fresh;
  if (cl == NULL) {
    eff_fill(&fresh, s, o->account, o->symbol);
    k->e = &fresh;
  } else {
    if (FE_UNLIKELY(cl->eff.gen != s->gen))
      eff_fill(&cl->eff, s, o->account, o->symbol);
    k->e = &cl->eff;
  }
  const eff_t *e = k->e;

  if (m[FE_RULE_AUTHORIZED] && e->unauthorized &&
      breach(k, FE_RULE_AUTHORIZED, FE_CR_UNAUTHORIZED, 0, 0))
    return 1;
  if (m[FE_RULE_RESTRICTED] && e->restricted &&
      breach(k, FE_RULE_RESTRICTED, FE_CR_RESTRICTED, 0, 0))
    return 1;
  if (m[FE_RULE_TRADING_STATE] && c->cfg.trading != NULL) {
    int r = fe_trading_check(c->cfg.trading, k->ev);
    if (r != 0 && breach(k, FE_RULE_TRADING_STATE,
                         r == FE_EREDUCEONLY ? FE_CR_REDUCE_ONLY
                                             : FE_CR_HALTED, 0, 0))
      return 1;
  }
  /* One clock reading serves the throttle and the duplicate window. */
  acct_t *acct = cl != NULL ? cl->acct : NULL;
  uint64_t now = 0;
  int timed = 0;
  if (m[FE_RULE_THROTTLE] && s->thr_t != 0) {
    if (acct == NULL && (acct = acct_get(c, o->account)) == NULL)
      return reject_plain(k, FE_CR_TABLE_FULL);
    now = now_ns(c);
    timed = 1;
    if (!throttle_take(s, acct, now) &&
        breach(k, FE_RULE_THROTTLE, FE_CR_THROTTLED,
               s->lim[FE_LIMIT_THROTTLE_RATE], 0))
      return 1;
  }

  if (cl == NULL) {
    int64_t si = sym_get(c, o->symbol);
    if (si < 0)
      return reject_plain(k, FE_CR_TABLE_FULL);
    cl = cell_get(c, o->account, o->symbol, (uint32_t)si);
    if (cl == NULL)
      return reject_plain(k, FE_CR_TABLE_FULL);
    eff_fill(&cl->eff, s, o->account, o->symbol); /* once per cell */
    k->e = e = &cl->eff;
  }

  /* MAX_QTY */
  int64_t lim = e->max_qty;
  if (m[FE_RULE_MAX_QTY] && o->quantity > lim) {
    if (m[FE_RULE_MAX_QTY] == FE_MODE_CORRECTIVE && lim > 0) {
      fe_order_t before = *o;
      o->quantity = lim;
      amended(k, FE_RULE_MAX_QTY, FE_CR_MAX_QTY, lim, before.quantity,
              &before);
    } else if (breach(k, FE_RULE_MAX_QTY, FE_CR_MAX_QTY, lim, o->quantity)) {
      return 1;
    }
  }

  /* COLLAR: also fixes the valuation price. */
  int market = o->type == FE_ORD_MARKET;
  /* relaxed: a price is one word, needing no order with other data */
  int64_t ref = __atomic_load_n(&c->syms[cl->si].ref, __ATOMIC_RELAXED);
  int64_t w = ref > 0 ? band(e, ref) : -1;
  int buy = is_buy(o->side);
  int64_t edge = w < 0 ? ref : buy ? ref + w : ref - w;
  int64_t vprice = market ? edge : o->price;
  if (m[FE_RULE_COLLAR]) {
    if (market && ref <= 0) {
      if (breach(k, FE_RULE_COLLAR, FE_CR_NO_REFERENCE, 0, 0))
        return 1;
    } else if (market && m[FE_RULE_COLLAR] == FE_MODE_CORRECTIVE && w >= 0 &&
               edge > 0) {
      fe_order_t before = *o;
      o->type = FE_ORD_LIMIT;
      o->price = edge;
      market = 0;
      amended(k, FE_RULE_COLLAR, FE_CR_COLLAR, edge, 0, &before);
    } else if (!market && w >= 0 &&
               (o->price > ref + w || o->price < ref - w)) {
      int64_t to = o->price > ref + w ? ref + w : ref - w;
      if (m[FE_RULE_COLLAR] == FE_MODE_CORRECTIVE && to > 0) {
        fe_order_t before = *o;
        o->price = to;
        vprice = to;
        amended(k, FE_RULE_COLLAR, FE_CR_COLLAR, to, before.price, &before);
      } else if (breach(k, FE_RULE_COLLAR, FE_CR_COLLAR, to, o->price)) {
        return 1;
      }
    }
  }
  if (vprice < 0)
    vprice = 0;
  if ((__int128)o->quantity * vprice > INT64_MAX / 2)
    return reject_plain(k, FE_CR_BAD_ORDER);

  /* MAX_NOTIONAL */
  lim = e->max_notional;
  int64_t n = notional(o->quantity, vprice);
  if (m[FE_RULE_MAX_NOTIONAL] && n > lim) {
    int64_t q = vprice > 0 ? qty_for(lim, vprice) : 0;
    if (m[FE_RULE_MAX_NOTIONAL] == FE_MODE_CORRECTIVE && q > 0) {
      fe_order_t before = *o;
      o->quantity = q;
      amended(k, FE_RULE_MAX_NOTIONAL, FE_CR_MAX_NOTIONAL, lim, n, &before);
      n = notional(q, vprice);
    } else if (breach(k, FE_RULE_MAX_NOTIONAL, FE_CR_MAX_NOTIONAL, lim, n)) {
      return 1;
    }
  }

  /* DUPLICATE */
  uint64_t dh = 0;
  int64_t window = s->lim[FE_LIMIT_DUP_WINDOW_NS];
  int dup_on = m[FE_RULE_DUPLICATE] && window != FE_COMPLIANCE_UNLIMITED &&
               window > 0;
  if (dup_on) {
    if (!timed)
      now = now_ns(c);
    dh = dup_hash(o);
    if (dup_seen(cl, dh, now, (uint64_t)window) &&
        breach(k, FE_RULE_DUPLICATE, FE_CR_DUPLICATE, window, 0))
      return 1;
  }

  /* MAX_OPEN */
  lim = e->max_open;
  if (m[FE_RULE_MAX_OPEN] && open_at_least(cl->mask, (int)lim) &&
      breach(k, FE_RULE_MAX_OPEN, FE_CR_MAX_OPEN, lim,
             __builtin_popcount(cl->mask)))
    return 1;

  /* MAX_POSITION: the worst case if every open order on this side and
   * this one fill. */
  lim = e->max_position;
  if (m[FE_RULE_MAX_POSITION] && lim != FE_COMPLIANCE_UNLIMITED) {
    int64_t pos = fe__load_relaxed(&cl->position); /* ours: see the top */
    int64_t base = buy ? pos + cl->open_buy : -(pos - cl->open_sell);
    if (base + o->quantity > lim) {
      int64_t room = lim - base;
      if (m[FE_RULE_MAX_POSITION] == FE_MODE_CORRECTIVE && room > 0) {
        fe_order_t before = *o;
        o->quantity = room;
        n = notional(room, vprice);
        amended(k, FE_RULE_MAX_POSITION, FE_CR_MAX_POSITION, lim,
                base + before.quantity, &before);
      } else if (breach(k, FE_RULE_MAX_POSITION, FE_CR_MAX_POSITION, lim,
                        base + o->quantity)) {
        return 1;
      }
    }
  }

  /* SELF_MATCH */
  const ord_t *smp = NULL;
  if (m[FE_RULE_SELF_MATCH] && cl->mask != 0) {
    smp = self_match(c, cl, o->side, market, o->price);
    if (smp != NULL) {
      if (m[FE_RULE_SELF_MATCH] == FE_MODE_DETECTIVE) {
        breach(k, FE_RULE_SELF_MATCH, FE_CR_SELF_MATCH, 0, o->price);
        smp = NULL;
      } else if (s->smp != FE_SMP_CANCEL_OLDEST) {
        if (s->smp == FE_SMP_CANCEL_BOTH) {
          fe__add_owned(&k->rd->smp, 1);
          emit(k, FE_COMPLIANCE_SMP_CANCEL, FE_RULE_SELF_MATCH,
               FE_CR_SELF_MATCH, 0, o->price, NULL, smp);
        }
        return breach(k, FE_RULE_SELF_MATCH, FE_CR_SELF_MATCH, 0, o->price);
      }
    }
  }

  /* CREDIT: reserve on the account, then on the firm. */
  if (cl->acct == NULL)
    cl->acct = acct ? acct : acct_get(c, o->account);
  acct = cl->acct;
  if (acct == NULL)
    return reject_plain(k, FE_CR_TABLE_FULL);
  int64_t *held = &acct->reserved;
  int cm = m[FE_RULE_CREDIT];
  int64_t alim = cm ? e->credit : FE_COMPLIANCE_UNLIMITED;
  int64_t flim = cm ? s->lim[FE_LIMIT_FIRM_CREDIT] : FE_COMPLIANCE_UNLIMITED;
  /* The account's word is ours (exact); the firm's is an estimate for the
   * amendment only: firm_reserve re-checks it. */
  if (cm == FE_MODE_CORRECTIVE && vprice > 0) {
    int64_t room = INT64_MAX;
    if (alim != FE_COMPLIANCE_UNLIMITED)
      room = alim - __atomic_load_n(held, __ATOMIC_RELAXED);
    if (flim != FE_COMPLIANCE_UNLIMITED) {
      int64_t fr = flim - firm_total(c, k->rd);
      room = fr < room ? fr : room;
    }
    if (n > room) {
      int64_t q = qty_for(room, vprice);
      if (q > 0) {
        fe_order_t before = *o;
        o->quantity = q;
        n = notional(q, vprice);
        amended(k, FE_RULE_CREDIT, FE_CR_CREDIT, room, notional(before.quantity, vprice),
                &before);
      }
    }
  }
  int force = cm == FE_MODE_DETECTIVE;
  if (!reserve_owned(held, n, alim, force))
    return breach(k, FE_RULE_CREDIT, FE_CR_CREDIT, alim,
                  __atomic_load_n(held, __ATOMIC_RELAXED) + n);
  if (!firm_reserve(c, k->rd, n, flim, force)) {
    fe__add_owned(held, -n);
    return breach(k, FE_RULE_CREDIT, FE_CR_FIRM_CREDIT, flim,
                  firm_total(c, k->rd) + n);
  }
  if (force) {
    if (alim != FE_COMPLIANCE_UNLIMITED &&
        __atomic_load_n(held, __ATOMIC_RELAXED) > alim)
      breach(k, FE_RULE_CREDIT, FE_CR_CREDIT, alim,
             __atomic_load_n(held, __ATOMIC_RELAXED));
    int64_t firm = firm_total(c, k->rd);
    if (flim != FE_COMPLIANCE_UNLIMITED && firm > flim)
      breach(k, FE_RULE_CREDIT, FE_CR_FIRM_CREDIT, flim, firm);
  }

  uint32_t why = ord_record(c, k->rd, cl, o, vprice);
  if (why != 0) {
    unreserve(c, k->rd, acct, n);
    return reject_plain(k, why);
  }
  if (dup_on)
    dup_record(cl, dh, now);
  if (smp != NULL) {
    fe__add_owned(&k->rd->smp, 1);
    emit(k, FE_COMPLIANCE_SMP_CANCEL, FE_RULE_SELF_MATCH, FE_CR_SELF_MATCH, 0,
         o->price, NULL, smp);
  }
  return 0;
}

/* Closes the order in cl's resting slot j: releases what it still
 * reserves and frees its entry. */
static void ord_close(fe_compliance_t *c, reader_t *rd, cell_t *cl, int j) {
  ord_t *od = &c->ords[cl->resting[j] - 1];
  cl->mask &= ~(1u << j);
  cl->resting[j] = 0;
  int64_t rem = od->remaining;
  if (is_buy(od->side))
    cl->open_buy -= rem;
  else
    cl->open_sell -= rem;
  /* an open order has reserved: cl->acct is set */
  unreserve(c, rd, cl->acct, notional(rem, od->price));
  ord_free(c, rd, od);
  tally(c, rd, LIFE_RELEASED);
}

/* The resting slot of the open order (account, sym, id) in *clp (found
 * here when NULL), or -1 (counted as unknown). */
static int ord_find(fe_compliance_t *c, reader_t *rd, cell_t **clp,
                    uint64_t account, const char sym[FE_SYMBOL_MAX],
                    const char id[FE_CLORDID_MAX]) {
  if (*clp == NULL)
    *clp = cell_find(c, account, sym);
  int j = -1;
  if (*clp != NULL) {
    uint64_t w[4];
    id_words(id, w);
    j = ord_slot(c, *clp, w);
  }
  if (j < 0)
    tally(c, rd, LIFE_UNKNOWN);
  return j;
}

static int release_id(fe_compliance_t *c, reader_t *rd, cell_t *cl,
                      uint64_t account, const char sym[FE_SYMBOL_MAX],
                      const char id[FE_CLORDID_MAX]) {
  int j = ord_find(c, rd, &cl, account, sym, id);
  if (j < 0)
    return FE_ENOTFOUND;
  ord_close(c, rd, cl, j);
  return 0;
}

static int fill_id(fe_compliance_t *c, reader_t *rd, cell_t *cl,
                   uint64_t account, const char sym[FE_SYMBOL_MAX],
                   const char id[FE_CLORDID_MAX], int64_t qty) {
  int j = ord_find(c, rd, &cl, account, sym, id);
  if (j < 0)
    return FE_ENOTFOUND;
  ord_t *od = &c->ords[cl->resting[j] - 1];
  int64_t rem = od->remaining;
  int64_t q = qty < rem ? qty : rem;
  int buy = is_buy(od->side);
  fe__add_owned(&cl->position, buy ? q : -q); /* relaxed: monitors read it */
  tally(c, rd, LIFE_FILLS);
  if (q == rem) {
    ord_close(c, rd, cl, j);
    return 0;
  }
  od->remaining = rem - q;
  if (buy)
    cl->open_buy -= q;
  else
    cl->open_sell -= q;
  unreserve(c, rd, cl->acct, notional(q, od->price));
  return 0;
}

static int id_from_str(const char *s, char out[FE_CLORDID_MAX]) {
  if (s == NULL)
    return FE_EINVAL;
  size_t n = strnlen(s, FE_CLORDID_MAX + 1);
  if (n > FE_CLORDID_MAX)
    return FE_EINVAL;
  memset(out, 0, FE_CLORDID_MAX);
  memcpy(out, s, n);
  return 0;
}

int fe_compliance_fill(fe_compliance_t *c, uint64_t account,
                       const char *symbol, const char *client_order_id,
                       int64_t qty) {
  char id[FE_CLORDID_MAX], sym[FE_SYMBOL_MAX];
  if (c == NULL || qty <= 0 || id_from_str(client_order_id, id) != 0 ||
      fe__sym_from_str(symbol, sym) != 0)
    return FE_EINVAL;
  return fill_id(c, NULL, NULL, account, sym, id, qty);
}

int fe_compliance_release(fe_compliance_t *c, uint64_t account,
                          const char *symbol, const char *client_order_id) {
  char id[FE_CLORDID_MAX], sym[FE_SYMBOL_MAX];
  if (c == NULL || id_from_str(client_order_id, id) != 0 ||
      fe__sym_from_str(symbol, sym) != 0)
    return FE_EINVAL;
  return release_id(c, NULL, NULL, account, sym, id);
}

static void count_result(reader_t *rd, const fe_compliance_result_t *r) {
  fe__add_owned(&rd->checked, 1);
  if (r->verdict == FE_CONTINUE)
    fe__add_owned(&rd->accepted, 1);
  else
    fe__add_owned(&rd->rejected[r->rule], 1);
}

static void check_in(fe_compliance_t *c, const fe__snap_t *s, reader_t *rd,
                     fe_event_t *ev, cell_t *cl, fe_compliance_result_t *res) {
  memset(res, 0, sizeof *res);
  res->verdict = FE_CONTINUE;
  chk_t k = {.c = c, .s = s, .rd = rd, .ev = ev, .res = res};
  check_order(&k, cl);
  count_result(rd, res);
}

int fe_compliance_check(fe_compliance_t *c, uint32_t reader, fe_event_t *ev,
                        fe_compliance_result_t *out) {
  if (c == NULL || ev == NULL || reader >= FE_COMPLIANCE_READERS)
    return FE_EINVAL;
  fe_compliance_result_t tmp;
  if (out == NULL)
    out = &tmp;
  if (ev->type != FE_EV_NEW_ORDER) {
    memset(out, 0, sizeof *out);
    return FE_CONTINUE;
  }
  reader_t *rd = &c->readers[reader];
  const fe__snap_t *s = enter(c, rd);
  check_in(c, s, rd, ev, NULL, out);
  firm_settle(c, rd);
  leave(rd);
  return out->verdict;
}

/* ------------------------------------------------------ reference prices */

int fe_compliance_set_reference(fe_compliance_t *c, const char *symbol,
                                int64_t price) {
  char sym[FE_SYMBOL_MAX];
  if (c == NULL || price <= 0 || fe__sym_from_str(symbol, sym) != 0)
    return FE_EINVAL;
  int64_t i = sym_get(c, sym);
  if (i < 0)
    return FE_ETABLEFULL;
  __atomic_store_n(&c->syms[i].ref, price, __ATOMIC_RELAXED); /* see the top */
  bump(&c->md_updates);
  return 0;
}

int64_t fe_compliance_reference(const fe_compliance_t *c, const char *symbol) {
  char sym[FE_SYMBOL_MAX];
  if (c == NULL || fe__sym_from_str(symbol, sym) != 0)
    return FE_EINVAL;
  int64_t i = sym_find(c, sym);
  return i < 0 ? 0 : __atomic_load_n(&c->syms[i].ref, __ATOMIC_RELAXED);
}

int64_t fe_compliance_reserved(const fe_compliance_t *c,
                               const uint64_t *account) {
  if (c == NULL)
    return FE_EINVAL;
  if (account == NULL)
    return __atomic_load_n(&c->firm_reserved, __ATOMIC_RELAXED);
  const uint64_t *w = fe__keytab_find(&c->accounts, *account);
  /* A: pairs with B (pool_get: the entry is zeroed before it is named) */
  uint64_t v = w == NULL ? 0 : __atomic_load_n(w, __ATOMIC_ACQUIRE);
  return v == 0 ? 0 : __atomic_load_n(&c->accts[v - 1].reserved,
                                      __ATOMIC_RELAXED);
}

int64_t fe_compliance_position(const fe_compliance_t *c, uint64_t account,
                               const char *symbol) {
  char sym[FE_SYMBOL_MAX];
  /* A position may be negative (short): any error code is a position too,
   * so a NULL or invalid argument reads as "no position". */
  if (c == NULL || fe__sym_from_str(symbol, sym) != 0)
    return 0;
  const cell_t *cl = cell_find(c, account, sym);
  return cl == NULL ? 0 : __atomic_load_n(&cl->position, __ATOMIC_RELAXED);
}

int fe_compliance_stats(const fe_compliance_t *c, fe_compliance_stats_t *out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  memset(out, 0, sizeof *out);
  uint64_t life[LIFE_COUNT];
  for (int k = 0; k < LIFE_COUNT; k++)
    life[k] = fe__load_relaxed(&c->life[k]);
  for (int i = 0; i < FE_COMPLIANCE_READERS; i++) {
    const reader_t *r = &c->readers[i];
    out->checked += fe__load_relaxed(&r->checked);
    out->accepted += fe__load_relaxed(&r->accepted);
    out->smp_cancels += fe__load_relaxed(&r->smp);
    for (int k = 0; k < LIFE_COUNT; k++)
      life[k] += fe__load_relaxed(&r->life[k]);
    for (int k = 0; k <= FE_RULE_COUNT; k++)
      out->rejected[k] += fe__load_relaxed(&r->rejected[k]);
    for (int k = 0; k < FE_RULE_COUNT; k++) {
      out->flagged[k] += fe__load_relaxed(&r->flagged[k]);
      out->amended[k] += fe__load_relaxed(&r->amended[k]);
    }
  }
  out->released = life[LIFE_RELEASED];
  out->fills = life[LIFE_FILLS];
  out->unknown_orders = life[LIFE_UNKNOWN];
  out->md_updates = fe__load_relaxed(&c->md_updates);
  out->changes = fe__load_relaxed(&c->changes);
  out->refused_changes = fe__load_relaxed(&c->refused);
  out->drifts = fe__load_relaxed(&c->drifts);
  return 0;
}

/* ------------------------------------------------------------ the stages */

/* A batch overlaps its memory misses.  An order's cell (its account in
 * its symbol: limits in force, recent orders, resting slots) is a random
 * line in a table larger than the cache, and so is the index slot that
 * leads to it; a lookup that waits for both stalls twice.  So, as the
 * idempotency burst does, the handler works ahead in three steps with
 * nothing but prefetches between a load's start and its use:
 *   PF_SLOT events ahead: compute the event's cell key, start loading its
 *     index slot;
 *   PF_CELL events ahead: probe the index (the slot has arrived), start
 *     loading the lines of the cell it names that the event will read (a
 *     new order: all but the last; a fill or cancel: the first and the
 *     resting slots) -- a candidate, not yet checked;
 *   PF_ORD events ahead: check the candidate's identity (its first line
 *     has arrived) and start loading the orders resting in it and the
 *     account's reserved word.
 * The event then uses the checked cell, so it costs one probe.  Hints
 * only: a cell not made yet (or a candidate that is not the event's) is
 * looked up again when its event comes, and nothing is written. */
#define PF_SLOT 16
#define PF_CELL 8
#define PF_ORD 4

static int has_cell(const fe_event_t *ev) {
  return ev->type == FE_EV_NEW_ORDER || ev->type == FE_EV_CANCEL ||
         ev->type == FE_EV_EXEC_REPORT;
}

/* Step 1.  The slot address mirrors keytab.c's home(): XXH3 of the key,
 * masked.  Were that to change, this would load a useless line, no more. */
static uint64_t prefetch_slot(const fe_compliance_t *c, const fe_event_t *ev) {
  if (!has_cell(ev))
    return 0;
  uint64_t key = cell_key(ev->order.account, ev->order.symbol);
  __builtin_prefetch(
      &c->celltab.slots[XXH3_64bits(&key, sizeof key) & c->celltab.mask]);
  return key;
}

/* Step 2. */
static cell_t *prefetch_cell(const fe_compliance_t *c, const fe_event_t *ev,
                             uint64_t key) {
  if (!has_cell(ev))
    return NULL;
  uint64_t *w = fe__keytab_find(&c->celltab, key);
  if (w == NULL)
    return NULL;
  uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE); /* A: pairs with B */
  if (v == 0)
    return NULL;
  const char *cl = (const char *)&c->cells[v - 1];
  __builtin_prefetch(cl, 1);
  if (ev->type == FE_EV_NEW_ORDER) { /* limits, recent orders */
    __builtin_prefetch(cl + 1 * FE_CACHELINE, 1);
    __builtin_prefetch(cl + 2 * FE_CACHELINE, 1);
    __builtin_prefetch(cl + 3 * FE_CACHELINE, 1);
  }
  __builtin_prefetch(cl + 4 * FE_CACHELINE, 1); /* the first 16 slots */
  return &c->cells[v - 1];
}

/* Step 3: the candidate if it is ev's cell, else NULL. */
static cell_t *prefetch_orders(const fe_compliance_t *c, const fe_event_t *ev,
                               cell_t *cl) {
  if (cl == NULL || !cell_is(cl, ev->order.account, ev->order.symbol))
    return NULL;
  for (uint32_t m = cl->mask; m != 0; m &= m - 1)
    __builtin_prefetch(&c->ords[cl->resting[__builtin_ctz(m)] - 1], 1);
  if (cl->acct != NULL) /* the account's reservation: a line of its own */
    __builtin_prefetch(cl->acct, 1);
  return cl;
}

static void order_one(fe_compliance_t *c, const fe__snap_t *s, reader_t *rd,
                      fe_stage_ctx_t *ctx, fe_event_t *ev, cell_t *cl) {
  fe_order_t *o = &ev->order;
  switch (ev->type) {
  case FE_EV_NEW_ORDER: {
    fe_compliance_result_t res;
    check_in(c, s, rd, ev, cl, &res);
    if (res.verdict != FE_CONTINUE)
      fe_batch_reject(ctx, ev, res.reason);
    break;
  }
  case FE_EV_CANCEL:
    release_id(c, rd, cl, o->account, o->symbol, o->client_order_id);
    break;
  case FE_EV_EXEC_REPORT:
    if (o->quantity > 0)
      fill_id(c, rd, cl, o->account, o->symbol, o->client_order_id,
              o->quantity);
    else
      release_id(c, rd, cl, o->account, o->symbol, o->client_order_id);
    break;
  default:
    break;
  }
}

static void order_batch(fe_stage_ctx_t *ctx, fe_event_t *const *evs,
                        uint32_t n, void *user) {
  fe_compliance_t *c = user;
  reader_t *rd = &c->readers[ctx->worker % FE_COMPLIANCE_READERS];
  const fe__snap_t *s = enter(c, rd);
  /* key[j % PF_SLOT]: event j's key from step 1 until step 2;
   * cand[j % PF_CELL]: its cell from step 2 (checked at step 3) until
   * its turn. */
  uint64_t key[PF_SLOT];
  cell_t *cand[PF_CELL];
  for (uint32_t j = 0; j < n && j < PF_SLOT; j++)
    key[j] = prefetch_slot(c, evs[j]);
  for (uint32_t j = 0; j < n && j < PF_CELL; j++)
    cand[j] = prefetch_cell(c, evs[j], key[j]);
  for (uint32_t j = 0; j < n && j < PF_ORD; j++)
    cand[j] = prefetch_orders(c, evs[j], cand[j]);
  for (uint32_t i = 0; i < n; i++) {
    cell_t *cl = cand[i % PF_CELL];
    uint32_t j = i + PF_CELL;
    cand[i % PF_CELL] =
        j < n ? prefetch_cell(c, evs[j], key[j % PF_SLOT]) : NULL;
    if ((j = i + PF_SLOT) < n)
      key[j % PF_SLOT] = prefetch_slot(c, evs[j]);
    if ((j = i + PF_ORD) < n)
      cand[j % PF_CELL] = prefetch_orders(c, evs[j], cand[j % PF_CELL]);
    order_one(c, s, rd, ctx, evs[i], cl);
  }
  firm_settle(c, rd);
  leave(rd);
}

static void md_batch(fe_stage_ctx_t *ctx, fe_event_t *const *evs, uint32_t n,
                     void *user) {
  (void)ctx;
  fe_compliance_t *c = user;
  uint64_t stored = 0;
  for (uint32_t i = 0; i < n; i++) {
    const fe_order_t *o = &evs[i]->order;
    if (o->price <= 0)
      continue;
    int64_t si = sym_get(c, o->symbol);
    if (si < 0)
      continue;
    __atomic_store_n(&c->syms[si].ref, o->price, __ATOMIC_RELAXED); /* top */
    stored++;
  }
  if (stored != 0) /* one count per batch: the word is shared */
    __atomic_fetch_add(&c->md_updates, stored, __ATOMIC_RELAXED);
}

int fe_compliance_stage(fe_compliance_t *c, fe_stage_def_t *out,
                        fe_diag_t *diag) {
  if (c == NULL || out == NULL)
    return fe__diag(diag, FE_EINVAL, "compliance stage: %s is NULL",
                    c == NULL ? "compliance" : "out");
  fe_stage_def_init(out);
  out->name = "compliance";
  out->batch_handler = order_batch;
  out->user = c;
  out->n_types = 3;
  out->types[0] = FE_EV_NEW_ORDER;
  out->types[1] = FE_EV_CANCEL;
  out->types[2] = FE_EV_EXEC_REPORT;
  return 0;
}

int fe_compliance_md_stage(fe_compliance_t *c, fe_stage_def_t *out,
                           fe_diag_t *diag) {
  if (c == NULL || out == NULL)
    return fe__diag(diag, FE_EINVAL, "compliance md stage: %s is NULL",
                    c == NULL ? "compliance" : "out");
  fe_stage_def_init(out);
  out->name = "compliance.md";
  out->batch_handler = md_batch;
  out->user = c;
  out->n_types = 1;
  out->types[0] = FE_EV_MARKET_DATA;
  return 0;
}

/* -------------------------------------------------------- the lifecycle */

void fe_compliance_config_init(fe_compliance_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->max_accounts = 65536;
  cfg->max_symbols = 4096;
  cfg->max_cells = 262144;
  cfg->max_orders = 262144;
  cfg->pin_mode = FE_MODE_OFF;
}

static int check_cfg(const fe_compliance_config_t *g, fe_diag_t *d) {
  const struct { const char *name; uint64_t v; } sizes[] = {
      {"max_accounts", g->max_accounts}, {"max_symbols", g->max_symbols},
      {"max_cells", g->max_cells}, {"max_orders", g->max_orders}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].v == 0 || sizes[i].v > MAX_TABLE)
      return fe__diag(d, FE_ERANGE, "compliance: %s %llu is not in 1..%llu",
                      sizes[i].name, (unsigned long long)sizes[i].v,
                      (unsigned long long)MAX_TABLE);
  if (g->event_user != NULL && g->on_event == NULL)
    return fe__diag(d, FE_EINVAL, "compliance: event_user without on_event");
  if (g->clock_user != NULL && g->now_ns == NULL)
    return fe__diag(d, FE_EINVAL, "compliance: clock_user without now_ns");
  if (g->pin_mode != FE_MODE_OFF && g->pin_mode != FE_MODE_DETECTIVE &&
      g->pin_mode != FE_MODE_PREVENTIVE)
    return fe__diag(d, FE_EINVAL,
                    "compliance: pin_mode %d is not OFF, DETECTIVE or "
                    "PREVENTIVE", (int)g->pin_mode);
  return 0;
}

static int fp_equal(fe_fingerprint_t a, fe_fingerprint_t b) {
  return a.lo == b.lo && a.hi == b.hi;
}

/* Sets s's throttle (throttle_take) from its rate and burst: interval
 * T = ceil(1e9 / rate) ns (never faster than the rate), capacity T * burst
 * (at most 1e18: both are bounded by throttle.h's maxima).  The buckets
 * carry over from old when rate and burst are unchanged, as a shared
 * throttle object would be kept; otherwise a new generation starts every
 * bucket full.  Under wlock (or at create). */
static void snap_throttle(fe_compliance_t *c, fe__snap_t *s,
                          const fe__snap_t *old) {
  int64_t rate = s->lim[FE_LIMIT_THROTTLE_RATE];
  int64_t burst = s->lim[FE_LIMIT_THROTTLE_BURST];
  if (rate == FE_COMPLIANCE_UNLIMITED)
    return;
  if (burst == FE_COMPLIANCE_UNLIMITED)
    burst = (uint64_t)rate < FE_THROTTLE_BURST_MAX ? rate
                                                   : (int64_t)FE_THROTTLE_BURST_MAX;
  s->thr_t = fe__gcra_interval((uint64_t)rate);
  s->thr_limit = s->thr_t * (uint64_t)burst;
  if (old != NULL && old->thr_t != 0 &&
      old->lim[FE_LIMIT_THROTTLE_RATE] == s->lim[FE_LIMIT_THROTTLE_RATE] &&
      old->lim[FE_LIMIT_THROTTLE_BURST] == s->lim[FE_LIMIT_THROTTLE_BURST])
    s->thr_gen = old->thr_gen;
  else
    s->thr_gen = ++c->thr_gens;
}

static void report(fe_compliance_t *c, fe_compliance_kind_t kind,
                   fe_fingerprint_t fp, fe_fingerprint_t prev) {
  if (c->cfg.on_event == NULL)
    return;
  fe_compliance_event_t e;
  memset(&e, 0, sizeof e);
  e.kind = kind;
  e.fingerprint = fp;
  e.prev_fingerprint = prev;
  e.change = fe__load_relaxed(&c->changes);
  e.wall_ns = fe_clock_realtime_ns();
  c->cfg.on_event(&e, c->cfg.event_user);
}

static void check_drift(fe_compliance_t *c, fe_fingerprint_t fp) {
  if (c->cfg.pin_mode != FE_MODE_OFF && !fp_equal(fp, c->cfg.approved)) {
    fe__store_relaxed(&c->drifts, c->drifts + 1);
    report(c, FE_COMPLIANCE_DRIFT, fp, c->cfg.approved);
  }
}

static void free_tables(fe_compliance_t *c) {
  fe__keytab_free(&c->accounts);
  fe__keytab_free(&c->symtab);
  fe__keytab_free(&c->celltab);
  free(c->syms);
  free(c->cells);
  free(c->accts);
  free(c->ords);
}

int fe_compliance_create(const fe_compliance_config_t *cfg,
                         const fe_compliance_rules_t *rules,
                         fe_compliance_t **out, fe_diag_t *diag) {
  if (cfg == NULL || rules == NULL || out == NULL)
    return fe__diag(diag, FE_EINVAL, "compliance: %s is NULL",
                    cfg == NULL ? "cfg" : rules == NULL ? "rules" : "out");
  int rc = check_cfg(cfg, diag);
  if (rc != 0)
    return rc;
  fe__snap_t *s;
  rc = fe__snap_build(rules, &s, diag);
  if (rc != 0)
    return rc;
  if (cfg->pin_mode == FE_MODE_PREVENTIVE && !fp_equal(s->fp, cfg->approved)) {
    char a[FE_FINGERPRINT_HEX], b[FE_FINGERPRINT_HEX];
    fe_fingerprint_format(s->fp, a);
    fe_fingerprint_format(cfg->approved, b);
    fe__snap_free(s);
    return fe__diag(diag, FE_EMISMATCH,
                    "compliance: rule set %s is not the approved %s", a, b);
  }
  fe_compliance_t *c = fe__zalloc_aligned(sizeof *c);
  if (c == NULL) {
    fe__snap_free(s);
    return fe__diag(diag, FE_ENOMEM, "compliance: out of memory");
  }
  c->cfg = *cfg;
  c->epoch = 1;
  if (fe__keytab_init(&c->accounts, cfg->max_accounts) != 0 ||
      fe__keytab_init(&c->symtab, cfg->max_symbols) != 0 ||
      fe__keytab_init(&c->celltab, cfg->max_cells) != 0 ||
      (c->syms = fe__zalloc_aligned(cfg->max_symbols * sizeof *c->syms)) ==
          NULL ||
      (c->cells = fe__zalloc_aligned(cfg->max_cells * sizeof *c->cells)) ==
          NULL ||
      (c->accts = fe__zalloc_aligned(cfg->max_accounts * sizeof *c->accts)) ==
          NULL ||
      (c->ords = fe__zalloc_aligned(cfg->max_orders * sizeof *c->ords)) ==
          NULL ||
      pthread_mutex_init(&c->wlock, NULL) != 0) {
    free_tables(c);
    free(c);
    fe__snap_free(s);
    return rc != 0 ? rc : fe__diag(diag, FE_ENOMEM, "compliance: out of memory");
  }
  for (uint64_t i = 0; i < cfg->max_orders; i++) /* every entry free */
    c->ords[i].next = i + 1 < cfg->max_orders ? (uint32_t)(i + 2) : 0;
  c->free_head = 1;
  snap_throttle(c, s, NULL);
  s->gen = 1;
  c->snap = s;
  report(c, FE_COMPLIANCE_START, s->fp, (fe_fingerprint_t){0, 0});
  check_drift(c, s->fp);
  *out = c;
  return 0;
}

void fe_compliance_destroy(fe_compliance_t *c) {
  if (c == NULL)
    return;
  fe__snap_free(c->snap);
  free_tables(c);
  pthread_mutex_destroy(&c->wlock);
  free(c);
}

int fe_compliance_apply(fe_compliance_t *c, const fe_compliance_rules_t *rules,
                        fe_diag_t *diag) {
  if (c == NULL || rules == NULL)
    return fe__diag(diag, FE_EINVAL, "compliance apply: %s is NULL",
                    c == NULL ? "compliance" : "rules");
  pthread_mutex_lock(&c->wlock);
  fe__snap_t *s;
  int rc = fe__snap_build(rules, &s, diag);
  if (rc == 0 && c->cfg.pin_mode == FE_MODE_PREVENTIVE &&
      !fp_equal(s->fp, c->cfg.approved)) {
    char a[FE_FINGERPRINT_HEX];
    fe_fingerprint_format(s->fp, a);
    fe__snap_free(s);
    rc = fe__diag(diag, FE_EMISMATCH,
                  "compliance apply: rule set %s is not the approved one", a);
  }
  if (rc != 0) {
    fe__store_relaxed(&c->refused, c->refused + 1);
    pthread_mutex_unlock(&c->wlock);
    return rc;
  }
  snap_throttle(c, s, c->snap);
  s->gen = c->snap->gen + 1; /* a cell's cached limits name their set */
  fe__snap_t *old = swap_snap(c, s);
  fe_fingerprint_t prev = old->fp;
  fe__snap_free(old);
  fe__store_relaxed(&c->changes, c->changes + 1);
  report(c, FE_COMPLIANCE_CHANGE, s->fp, prev);
  check_drift(c, s->fp);
  pthread_mutex_unlock(&c->wlock);
  return 0;
}

int fe_compliance_pin(fe_compliance_t *c, fe_fingerprint_t approved,
                      fe_compliance_mode_t mode) {
  if (c == NULL || (mode != FE_MODE_OFF && mode != FE_MODE_DETECTIVE &&
                    mode != FE_MODE_PREVENTIVE))
    return FE_EINVAL;
  pthread_mutex_lock(&c->wlock);
  c->cfg.approved = approved;
  c->cfg.pin_mode = mode;
  check_drift(c, c->snap->fp);
  pthread_mutex_unlock(&c->wlock);
  return 0;
}

int fe_compliance_fingerprint(const fe_compliance_t *c, fe_fingerprint_t *out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  fe_compliance_t *m = (fe_compliance_t *)c;
  pthread_mutex_lock(&m->wlock);
  *out = m->snap->fp;
  pthread_mutex_unlock(&m->wlock);
  return 0;
}

int fe_compliance_rules_copy(fe_compliance_t *c, fe_compliance_rules_t **out) {
  if (c == NULL || out == NULL)
    return FE_EINVAL;
  fe_compliance_rules_t *r;
  int rc = fe_compliance_rules_create(&r);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&c->wlock);
  const fe__snap_t *s = c->snap;
  memcpy(r->mode, s->mode, sizeof r->mode);
  memcpy(r->lim, s->lim, sizeof r->lim);
  r->smp = s->smp;
  if (s->n > 0) {
    r->set = malloc(s->n * sizeof *r->set);
    if (r->set == NULL)
      rc = FE_ENOMEM;
    else {
      memcpy(r->set, s->set, s->n * sizeof *r->set);
      r->n = r->cap = s->n;
      for (size_t i = 0; i < r->n; i++)
        r->set[i].order = i;
      r->next_order = r->n;
    }
  }
  pthread_mutex_unlock(&c->wlock);
  if (rc != 0) {
    fe_compliance_rules_destroy(r);
    return rc;
  }
  *out = r;
  return 0;
}
