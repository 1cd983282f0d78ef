/* Hierarchical timer wheel: see timerwheel.h.
 *
 * Where a node is (`where`): level * 256 + slot for a wheel slot, W_DUE for
 * the due list, W_FIRING for the batch an advance is firing, FE__TW_IDLE
 * for none.  Only wheel slots have a bitmap bit; a slot's bit is set
 * exactly when its list is non-empty.
 */
#include "timerwheel.h"

#include <string.h>

#define W_DUE (FE__TW_LEVELS * FE__TW_SLOTS)
#define W_FIRING (W_DUE + 1)
#define MASK (FE__TW_SLOTS - 1u)

/* ------------------------------------------------------------- lists */

static void list_init(fe__tw_node_t *h) {
  h->next = h->prev = h;
  h->where = FE__TW_IDLE;
}

static int list_empty(const fe__tw_node_t *h) { return h->next == h; }

static void list_add_tail(fe__tw_node_t *h, fe__tw_node_t *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}

static void list_del(fe__tw_node_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

/* Moves every node of `from` to the tail of `to`, marking them `where`. */
static void list_splice(fe__tw_node_t *from, fe__tw_node_t *to,
                        uint32_t where) {
  while (!list_empty(from)) {
    fe__tw_node_t *n = from->next;
    list_del(n);
    n->where = where;
    list_add_tail(to, n);
  }
}

/* ----------------------------------------------------------- bitmaps */

static void bit_set(fe__tw_t *tw, uint32_t lvl, uint32_t s) {
  tw->bits[lvl][s / 64] |= UINT64_C(1) << (s % 64);
}

static void bit_clear(fe__tw_t *tw, uint32_t lvl, uint32_t s) {
  tw->bits[lvl][s / 64] &= ~(UINT64_C(1) << (s % 64));
}

/* Smallest k in [0, 256) such that slot (start + k) & 255 of level lvl is
 * occupied, or -1. */
static int first_occupied(const fe__tw_t *tw, uint32_t lvl, uint32_t start) {
  const uint64_t *b = tw->bits[lvl];
  for (uint32_t k = 0; k < FE__TW_SLOTS;) {
    uint32_t s = (start + k) & MASK;
    /* bits of the word holding s, from s up to the word's end */
    uint64_t w = b[s / 64] >> (s % 64);
    if (w != 0)
      return (int)(k + (uint32_t)__builtin_ctzll(w));
    k += 64 - s % 64;
  }
  return -1;
}

/* ------------------------------------------------------------ filing */

/* Puts n (unlinked, expires set) in the list its expiry says. */
static void file(fe__tw_t *tw, fe__tw_node_t *n) {
  uint64_t e = n->expires;
  if (e <= tw->now) {
    n->where = W_DUE;
    list_add_tail(&tw->due, n);
    return;
  }
  uint64_t delta = e - tw->now;
  uint32_t lvl = 0;
  while (lvl < FE__TW_LEVELS - 1 &&
         delta >= (UINT64_C(1) << (FE__TW_BITS * (lvl + 1))))
    lvl++;
  if (delta >= (UINT64_C(1) << (FE__TW_BITS * FE__TW_LEVELS)))
    /* Beyond the wheel: wait in the farthest level-3 slot, cascaded (and
     * re-filed by the real expiry) before e. */
    e = tw->now + (UINT64_C(1) << (FE__TW_BITS * FE__TW_LEVELS)) - 1;
  uint32_t s = (uint32_t)(e >> (FE__TW_BITS * lvl)) & MASK;
  n->where = lvl * FE__TW_SLOTS + s;
  list_add_tail(&tw->slot[lvl][s], n);
  bit_set(tw, lvl, s);
}

static void unlink_node(fe__tw_t *tw, fe__tw_node_t *n) {
  uint32_t w = n->where;
  list_del(n);
  n->where = FE__TW_IDLE;
  if (w < W_DUE) {
    uint32_t lvl = w / FE__TW_SLOTS, s = w % FE__TW_SLOTS;
    if (list_empty(&tw->slot[lvl][s]))
      bit_clear(tw, lvl, s);
  }
}

/* ------------------------------------------------------------ public */

void fe__tw_init(fe__tw_t *tw, uint64_t tick_ns, uint64_t now_ns) {
  memset(tw, 0, sizeof *tw);
  tw->origin_ns = now_ns;
  tw->tick_ns = tick_ns ? tick_ns : 1;
  for (uint32_t l = 0; l < FE__TW_LEVELS; l++)
    for (uint32_t s = 0; s < FE__TW_SLOTS; s++)
      list_init(&tw->slot[l][s]);
  list_init(&tw->due);
  list_init(&tw->firing);
}

void fe__tw_node_init(fe__tw_node_t *n) {
  n->next = n->prev = n;
  n->expires = 0;
  n->where = FE__TW_IDLE;
  n->reserved = 0;
}

/* ceil((due - origin) / tick), 0 for the past. */
static uint64_t tick_of(const fe__tw_t *tw, uint64_t due_ns) {
  if (due_ns <= tw->origin_ns)
    return 0;
  uint64_t d = due_ns - tw->origin_ns;
  return d / tw->tick_ns + (d % tw->tick_ns != 0);
}

void fe__tw_arm(fe__tw_t *tw, fe__tw_node_t *n, uint64_t due_ns) {
  if (fe__tw_armed(n))
    unlink_node(tw, n);
  else
    tw->count++;
  n->expires = tick_of(tw, due_ns);
  file(tw, n);
}

void fe__tw_cancel(fe__tw_t *tw, fe__tw_node_t *n) {
  if (!fe__tw_armed(n))
    return;
  unlink_node(tw, n);
  tw->count--;
}

/* The next tick after `now` at which a level-0 slot fires or a higher
 * slot cascades; UINT64_MAX if every level is empty. */
static uint64_t next_tick(const fe__tw_t *tw) {
  uint64_t best = UINT64_MAX;
  for (uint32_t lvl = 0; lvl < FE__TW_LEVELS; lvl++) {
    uint32_t sh = FE__TW_BITS * lvl;
    uint64_t block = tw->now >> sh; /* the block `now` is in */
    int k = first_occupied(tw, lvl, (uint32_t)(block + 1) & MASK);
    if (k < 0)
      continue;
    /* Level 0: the tick itself.  Level L: the start of the block whose
     * slot it is, the first such start after now. */
    uint64_t t = (block + 1 + (uint64_t)k) << sh;
    if (t < best)
      best = t;
  }
  return best;
}

uint64_t fe__tw_next_ns(const fe__tw_t *tw) {
  if (!list_empty(&tw->due))
    return tw->origin_ns + tw->now * tw->tick_ns;
  uint64_t t = next_tick(tw);
  if (t == UINT64_MAX)
    return UINT64_MAX;
  if (t > (UINT64_MAX - tw->origin_ns) / tw->tick_ns)
    return UINT64_MAX - 1;
  return tw->origin_ns + t * tw->tick_ns;
}

/* Re-files every timer of level lvl's slot s against the current tick. */
static void cascade(fe__tw_t *tw, uint32_t lvl, uint32_t s) {
  fe__tw_node_t tmp;
  list_init(&tmp);
  list_splice(&tw->slot[lvl][s], &tmp, FE__TW_IDLE);
  bit_clear(tw, lvl, s);
  while (!list_empty(&tmp)) {
    fe__tw_node_t *n = tmp.next;
    list_del(n);
    file(tw, n);
  }
}

/* Fires the `firing` batch, one node at a time: the callback may cancel
 * batch members (they leave the list) or arm anything. */
static uint64_t fire_batch(fe__tw_t *tw, fe__tw_fire_fn fn, void *user) {
  uint64_t fired = 0;
  while (!list_empty(&tw->firing)) {
    fe__tw_node_t *n = tw->firing.next;
    list_del(n);
    n->where = FE__TW_IDLE;
    tw->count--;
    fired++;
    fn(n, user);
  }
  return fired;
}

uint64_t fe__tw_advance(fe__tw_t *tw, uint64_t now_ns, fe__tw_fire_fn fn,
                        void *user) {
  uint64_t target = now_ns <= tw->origin_ns
                        ? 0
                        : (now_ns - tw->origin_ns) / tw->tick_ns;
  if (target < tw->now)
    target = tw->now;
  list_splice(&tw->due, &tw->firing, W_FIRING);
  uint64_t fired = fire_batch(tw, fn, user);
  for (;;) {
    uint64_t t = next_tick(tw);
    if (t > target)
      break;
    tw->now = t;
    for (uint32_t lvl = FE__TW_LEVELS - 1; lvl >= 1; lvl--) {
      uint32_t sh = FE__TW_BITS * lvl;
      if ((t & ((UINT64_C(1) << sh) - 1)) == 0)
        cascade(tw, lvl, (uint32_t)(t >> sh) & MASK);
    }
    uint32_t s = (uint32_t)t & MASK;
    list_splice(&tw->slot[0][s], &tw->firing, W_FIRING);
    bit_clear(tw, 0, s);
    list_splice(&tw->due, &tw->firing, W_FIRING);
    fired += fire_batch(tw, fn, user);
  }
  tw->now = target;
  return fired;
}

int fe__tw_valid(const fe__tw_t *tw) {
  uint64_t n = 0;
  for (uint32_t lvl = 0; lvl < FE__TW_LEVELS; lvl++) {
    uint32_t sh = FE__TW_BITS * lvl;
    for (uint32_t s = 0; s < FE__TW_SLOTS; s++) {
      const fe__tw_node_t *h = &tw->slot[lvl][s];
      int bit = (int)((tw->bits[lvl][s / 64] >> (s % 64)) & 1);
      if (bit != !list_empty(h))
        return 0;
      for (const fe__tw_node_t *x = h->next; x != h; x = x->next, n++) {
        if (x->where != lvl * FE__TW_SLOTS + s || x->next->prev != x)
          return 0;
        if (x->expires <= tw->now)
          return 0;
        uint64_t delta = x->expires - tw->now;
        /* In the level its remaining delay calls for (the farthest level
         * holds anything beyond), in the slot of its expiry. */
        if (lvl < FE__TW_LEVELS - 1 &&
            delta >= (UINT64_C(1) << (FE__TW_BITS * (lvl + 1))))
          return 0;
        /* (level 3 may hold a timer filed beyond the wheel, in the slot
         * of its clamped expiry) */
        if (lvl < FE__TW_LEVELS - 1 &&
            ((uint32_t)(x->expires >> sh) & MASK) != s)
          return 0;
      }
    }
  }
  for (const fe__tw_node_t *x = tw->due.next; x != &tw->due; x = x->next, n++)
    if (x->where != W_DUE)
      return 0;
  return n == tw->count && list_empty(&tw->firing);
}
