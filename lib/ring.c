/*
 * The ring's slow paths: allocation, waiting for space, wake-ups, voided
 * claims and the heavy side of stop.  The fast paths are inline in ring.h.
 */
#define _GNU_SOURCE
#include "ring.h"
#include "verdict.h"

#include <ck_pr.h>
#include <sched.h>
#include <sys/mman.h>

static void *map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  memset(p, 0, size); /* touch: MAP_POPULATE is best effort */
  return p;
}

static void unmap(void *p, size_t size) {
  if (p != NULL)
    munmap(p, size);
}

int fe__ring_alloc(fe_ring_t *r, uint32_t capacity, uint32_t slot_size,
                   fe_producer_t producer, int meta) {
  r->pub.capacity = capacity;
  r->pub.mask = capacity - 1;
  r->pub.slot_size =
      (slot_size + FE_CACHELINE - 1) / FE_CACHELINE * FE_CACHELINE;
  r->pub.prefetch_off = capacity >= 4 * FE_RING_PREFETCH
                            ? FE_RING_PREFETCH * r->pub.slot_size : 0;
  r->pub.producer = producer;
  r->pub.state = ST_CREATED;
  r->stop_target = UINT64_MAX;
  r->pub.asym = fe__asym_init();
  if ((r->pub.slots = map((size_t)capacity * r->pub.slot_size)) == NULL ||
      (producer == FE_PRODUCER_MULTI &&
       (r->avail = map((size_t)capacity * sizeof *r->avail)) == NULL) ||
      (meta && fe__ring_alloc_meta(r) != 0))
    return FE_ENOMEM;
  return 0;
}

int fe__ring_alloc_meta(fe_ring_t *r) {
  if (r->meta == NULL &&
      (r->meta = map((size_t)r->pub.capacity * sizeof *r->meta)) == NULL)
    return FE_ENOMEM;
  return 0;
}

void fe__ring_free(fe_ring_t *r) {
  unmap(r->meta, (size_t)r->pub.capacity * sizeof *r->meta);
  unmap(r->avail, (size_t)r->pub.capacity * sizeof *r->avail);
  unmap(r->pub.slots, (size_t)r->pub.capacity * r->pub.slot_size);
  r->meta = NULL, r->avail = NULL, r->pub.slots = NULL;
}

void fe__ring_wake_workers(fe_ring_t *r, uint64_t mask) {
  fe__asym_light(&r->pub.asym); /* see ring.h */
  uint64_t parked = fe__load_relaxed(&r->pub.parked_mask) & mask;
  while (FE_UNLIKELY(parked != 0)) {
    uint32_t *futex = r->futex[__builtin_ctzll(parked)];
    parked &= parked - 1;
    __atomic_fetch_add(futex, 1, __ATOMIC_RELEASE);
    fe__futex_wake(futex, 1);
    __atomic_fetch_add(&r->wakeups, 1, __ATOMIC_RELAXED);
  }
}

void fe__ring_wake_space(fe_ring_t *r) {
  fe__asym_light(&r->pub.asym); /* pairs with the heavy side in wait_space */
  if (FE_UNLIKELY(fe__load_relaxed(&r->space_waiters) != 0)) {
    __atomic_fetch_add(&r->space_futex, 1, __ATOMIC_RELEASE);
    fe__futex_wake(&r->space_futex, -1);
    __atomic_fetch_add(&r->wakeups, 1, __ATOMIC_RELAXED);
  }
}

void fe__ring_wake_all(fe_ring_t *r) {
  for (uint32_t i = 0; i < r->n_workers; i++) {
    __atomic_fetch_add(r->futex[i], 1, __ATOMIC_SEQ_CST);
    fe__futex_wake(r->futex[i], 1);
  }
  __atomic_fetch_add(&r->space_futex, 1, __ATOMIC_SEQ_CST);
  fe__futex_wake(&r->space_futex, -1);
}

#define SPACE_PAUSES 32

int fe__ring_wait_space(fe_ring_t *r, uint32_t *iter, uint64_t deadline,
                        int (*ready)(fe_ring_t *, uint64_t), uint64_t arg) {
  uint32_t i = *iter;
  if (i < r->spin_tries) {
    /* Re-check only every SPACE_PAUSES pauses: the check reads the end
     * consumers' sequences, and each read takes that line from a worker
     * that is about to store its next progress there; a full ring means
     * the workers are the bottleneck, so they should not wait on us.  A
     * pause is 15-40 ns on current x86: a check every 0.5-1.3 us, while
     * a 256-event batch takes 1-3 us. */
    for (uint32_t k = 0; k < SPACE_PAUSES; k++)
      ck_pr_stall();
    *iter = i + SPACE_PAUSES;
    return deadline == UINT64_MAX || fe__mono_ns() < deadline ? 0
                                                               : FE_ETIMEDOUT;
  }
  *iter = i + 1;
  if (r->pub.wait != FE_WAIT_PARK || i < r->spin_tries + r->yield_tries) {
    sched_yield();
  } else {
    /* Dekker with fe__ring_wake_space(): we count ourselves, fence, then
     * re-read the condition; a waker moves its sequence, fences (light),
     * then reads the count.  The futex word is read first, so a wake in
     * between makes the wait return at once. */
    uint32_t v = __atomic_load_n(&r->space_futex, __ATOMIC_ACQUIRE);
    __atomic_fetch_add(&r->space_waiters, 1, __ATOMIC_SEQ_CST);
    int fenced = fe__asym_heavy(&r->pub.asym) == 0; /* else: do not sleep */
    uint64_t now = fe__mono_ns();
    if (fenced && !ready(r, arg) && now < deadline) {
      uint64_t left = deadline - now;
      fe__futex_wait(&r->space_futex, v,
                     left < PARK_SAFETY_NS ? left : PARK_SAFETY_NS);
    }
    __atomic_fetch_sub(&r->space_waiters, 1, __ATOMIC_RELAXED);
  }
  return deadline != UINT64_MAX && fe__mono_ns() >= deadline ? FE_ETIMEDOUT
                                                              : 0;
}

int fe__ring_void_claim(fe_ring_t *r, uint64_t first, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    fe__store_relaxed(&fe__ring_slot(r, first + i)->verdict, FE_VERDICT_VOID);
  __atomic_fetch_add(&r->voided, n, __ATOMIC_RELAXED);
  fe__ring_publish(r, first, n);
  return FE_ESTOPPED;
}

static int space_ready(fe_ring_t *r, uint64_t n) {
  return fe__ring_claimed(r) + n - fe__ring_end(r) <= r->pub.capacity;
}

int fe__ring_claim_wait(fe_ring_t *r, uint32_t n, uint64_t *first,
                        uint64_t timeout_ns) {
  uint64_t deadline = 0;
  uint32_t iter = 0;
  for (;;) {
    int rc = fe__ring_claim_n(r, n, first);
    if (rc != FE_EFULL)
      return rc;
    if (timeout_ns == 0)
      return FE_ETIMEDOUT;
    if (deadline == 0)
      deadline = fe__deadline(timeout_ns);
    if (fe__ring_wait_space(r, &iter, deadline, space_ready, n) != 0 &&
        !space_ready(r, n))
      return FE_ETIMEDOUT;
  }
}

uint64_t fe__ring_stop(fe_ring_t *r) {
  __atomic_store_n(&r->pub.state, ST_STOPPING, __ATOMIC_SEQ_CST);
  /* Heavy side of the claim/stop Dekker (fe__ring_claim_n): after this,
   * every claim not counted below will see ST_STOPPING and void itself.
   * Should membarrier fail, a claim racing with this call had only a
   * compiler barrier: its store leaves the store buffer within
   * nanoseconds, so a millisecond's grace before reading the count covers
   * it (later claims fence for real). */
  if (fe__asym_heavy(&r->pub.asym) != 0) {
    struct timespec grace = {0, 1000000};
    nanosleep(&grace, NULL);
    fe__fence();
  }
  return fe__ring_claimed(r);
}
