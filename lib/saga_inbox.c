/* The free list of saga slots and the request inbox.
 *
 * Requests never take a lock.  A starter pops a free slot (Treiber stack,
 * tagged head against ABA), fills it and queues it; a completer, aborter
 * or redriver decides its race with one CAS on the slot's ctl word and
 * queues the slot with a request bit.  The inbox is an intrusive stack of
 * slots: a slot is on it at most once (REQ_QUEUED), so it can never
 * overflow, and the coordinator takes it whole with one exchange.
 */
#include "saga_impl.h"

void fe__saga_free_push(fe_saga_coord_t *c, uint32_t i) {
  uint64_t h = fe__load_relaxed(&c->free_head);
  for (;;) {
    fe__store_relaxed(&c->slots[i].fnext, (uint32_t)h);
    uint64_t nh = ((h >> 32) + 1) << 32 | i;
    /* F1, pairs with F2: the slot, as left by its last owner, and fnext */
    if (__atomic_compare_exchange_n(&c->free_head, &h, nh, 1,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
      return;
  }
}

/* Pops a free slot, or returns SG_NIL.  The tag (bumped by every push and
 * pop) makes a stale head fail the CAS even if its slot came back on top:
 * ABA would need 2^32 operations while one popper is preempted. */
uint32_t fe__saga_free_pop(fe_saga_coord_t *c) {
  uint64_t h = fe__load_acquire(&c->free_head); /* F2, pairs with F1 */
  for (;;) {
    uint32_t i = (uint32_t)h;
    if (i == SG_NIL)
      return SG_NIL;
    /* May be stale if another thread popped i meanwhile: the CAS then
     * fails, the tag having moved. */
    uint32_t next = fe__load_relaxed(&c->slots[i].fnext);
    uint64_t nh = ((h >> 32) + 1) << 32 | next;
    if (__atomic_compare_exchange_n(&c->free_head, &h, nh, 1,
                                    __ATOMIC_ACQUIRE, /* F2 */
                                    __ATOMIC_ACQUIRE))
      return i;
  }
}

#ifdef FE_TSAN
uint32_t fe__saga_fence_word;
#endif

static void wake(fe_saga_coord_t *c) {
  /* W4: after the push (W3); sees W1 unless the coordinator's W2 sees the
   * push.  The exchange makes one waker call the kernel. */
  if (__atomic_load_n(&c->sleeping, __ATOMIC_SEQ_CST) &&
      __atomic_exchange_n(&c->sleeping, 0, __ATOMIC_SEQ_CST))
    fe__futex_wake(&c->sleeping, 1);
}

/* Sets request bit `req` on slot i and queues the slot if it is not
 * queued yet.  Lock-free. */
void fe__saga_request(fe_saga_coord_t *c, uint32_t i, uint32_t req) {
  sg_slot_t *s = &c->slots[i];
  /* P1, pairs with P2: what the caller wrote before is visible when the
   * coordinator takes the bit */
  uint32_t old = __atomic_fetch_or(&s->pend, req | REQ_QUEUED,
                                   __ATOMIC_RELEASE);
  if (old & REQ_QUEUED)
    return; /* queued and not yet taken: it will see this bit */
  uint32_t h = fe__load_relaxed(&c->inbox);
  do
    fe__store_relaxed(&s->qnext, h);
  while (!__atomic_compare_exchange_n(&c->inbox, &h, i, 1,
                                      __ATOMIC_SEQ_CST, /* Q1, W3 */
                                      __ATOMIC_RELAXED));
  wake(c);
}

void fe_saga_wake(fe_saga_coord_t *c) {
  if (c != NULL && __atomic_exchange_n(&c->sleeping, 0, __ATOMIC_SEQ_CST))
    fe__futex_wake(&c->sleeping, 1);
}

