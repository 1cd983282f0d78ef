/*
 * A hierarchical timer wheel (Varghese and Lauck's scheme 7), private: the
 * saga coordinator's timeouts and retry backoffs.  Single-threaded: every
 * call on one wheel comes from one thread at a time (the coordinator);
 * nothing here is atomic.
 *
 * Time is counted in ticks of tick_ns from the wheel's origin (the time
 * given to init).  A timer due at due_ns expires at tick
 * e = ceil((due_ns - origin) / tick_ns) and fires in the first advance to a
 * time whose tick is >= e, i.e. whose time is >= e * tick_ns + origin, which
 * is >= due_ns: never early.  An advance made as soon as the time reaches
 * e * tick_ns + origin < due_ns + tick_ns fires it, so it fires within one
 * tick after it was due.  A timer due at or before the current tick (the
 * past) fires at the next advance.
 *
 * Layout: FE__TW_LEVELS levels of FE__TW_SLOTS slots.  Level L holds the
 * timers whose expiry is less than 256^(L+1) ticks ahead, in slot
 * (e >> 8L) & 255; reaching a multiple of 256^L ticks moves ("cascades")
 * that level's slot for the new block down, re-filing each timer by what
 * is left of its delay, so a timer cascades at most once per level and
 * fires from level 0.  Timers further out than 2^32 ticks (49.7 days at
 * 1 ms) wait in level 3 and are re-filed each time their slot comes round.
 *
 * Each slot is an intrusive circular doubly linked list through nodes that
 * the caller embeds in its own objects (the saga slots): insert and cancel
 * are O(1) and allocate nothing.  A bitmap per level says which slots hold
 * timers, so an advance jumps straight to the next tick at which a slot
 * fires or cascades: an idle wheel advanced by an hour costs a handful of
 * bitmap scans, not 3.6 million ticks.
 */
#ifndef FE_TIMERWHEEL_H
#define FE_TIMERWHEEL_H

#include <stdint.h>

#define FE__TW_LEVELS 4
#define FE__TW_BITS 8
#define FE__TW_SLOTS (1u << FE__TW_BITS)
/* A node's `where` when it is in no list. */
#define FE__TW_IDLE UINT32_MAX

/* Embedded in the caller's object.  Zeroed memory is not a valid idle
 * node: fe__tw_node_init() it first. */
typedef struct fe__tw_node {
  struct fe__tw_node *next, *prev;
  uint64_t expires; /* tick */
  uint32_t where;   /* list it is in (see timerwheel.c), FE__TW_IDLE */
  uint32_t reserved;
} fe__tw_node_t;

typedef struct fe__tw {
  uint64_t origin_ns;
  uint64_t tick_ns;
  uint64_t now;   /* last tick processed */
  uint64_t count; /* armed timers */
  fe__tw_node_t slot[FE__TW_LEVELS][FE__TW_SLOTS]; /* list heads */
  fe__tw_node_t due;    /* timers due at or before `now` */
  fe__tw_node_t firing; /* the batch being fired */
  uint64_t bits[FE__TW_LEVELS][FE__TW_SLOTS / 64];
} fe__tw_t;

/* Called for each expired timer, already unlinked (idle): it may re-arm
 * this node or any other, and cancel any node, including ones of the same
 * batch not yet fired (they then do not fire). */
typedef void (*fe__tw_fire_fn)(fe__tw_node_t *n, void *user);

/* Empties tw, ticks of tick_ns (>= 1) from origin now_ns.  Cannot fail. */
void fe__tw_init(fe__tw_t *tw, uint64_t tick_ns, uint64_t now_ns);

/* Makes n idle.  Cannot fail. */
void fe__tw_node_init(fe__tw_node_t *n);

/* 1 if n is armed. */
static inline int fe__tw_armed(const fe__tw_node_t *n) {
  return n->where != FE__TW_IDLE;
}

/* Arms n (idle, or armed: then re-armed) to fire at due_ns on the wheel's
 * clock.  O(1), cannot fail. */
void fe__tw_arm(fe__tw_t *tw, fe__tw_node_t *n, uint64_t due_ns);

/* Disarms n; an idle n is left alone.  O(1), cannot fail. */
void fe__tw_cancel(fe__tw_t *tw, fe__tw_node_t *n);

/* Moves the wheel to now_ns (a time before the last one given is taken as
 * the last one: the wheel never goes back) and fires every timer now due,
 * in expiry-tick order (ties in no particular order).  Returns how many
 * fired.  O(timers fired + cascaded + 4 bitmap scans per occupied tick
 * passed). */
uint64_t fe__tw_advance(fe__tw_t *tw, uint64_t now_ns, fe__tw_fire_fn fn,
                        void *user);

/* Earliest time (ns on the wheel's clock) at which an advance may fire or
 * cascade something: exact for timers in level 0 and the due list, the
 * start of the slot's block for the others (so a caller that sleeps until
 * then may wake early, cascade, and sleep again, but never late).
 * UINT64_MAX when nothing is armed. */
uint64_t fe__tw_next_ns(const fe__tw_t *tw);

/* Checks the wheel's invariants (every armed node in the list its expiry
 * says, bitmaps matching the lists, count).  1 if they hold.  O(count). */
int fe__tw_valid(const fe__tw_t *tw);

#endif /* FE_TIMERWHEEL_H */
