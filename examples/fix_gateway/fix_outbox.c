/*
 * fix_outbox.c: SPSC ck_rings of reports, one per producer (fix_outbox.h).
 */
#define _GNU_SOURCE 1
#include "fix_outbox.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <ck_ring.h>

CK_RING_PROTOTYPE(report, fgw_report)

/* One producer's ring: producer-written fields apart from the consumer's
 * by ck_ring's own layout (c_head and p_tail sit on separate lines).
 * Line-aligned, so its size is a multiple of 64 as aligned_alloc needs. */
typedef struct lane {
  _Alignas(64) struct ck_ring ring;
  fgw_report_t *buf;
  _Atomic uint64_t count; /* written by the producer, read by anyone */
  char pad[64];
} lane_t;

struct fgw_outbox {
  uint32_t n;
  uint32_t next; /* consumer only: where the round-robin resumes */
  lane_t *lanes;
  /* P1 pairs with C1: a producer publishes its entry (ck_ring's release
   * store of p_tail), then a seq_cst fence, then reads `parked`; the
   * consumer stores `parked` = 1, a seq_cst fence, then re-reads the
   * rings.  Either the consumer sees the entry or the producer sees
   * parked and posts: no lost wake-up (Dekker). */
  _Atomic int parked;
  _Atomic int closed;
  sem_t wake;
};

int fgw_outbox_create(uint32_t producers, uint32_t capacity,
                      fgw_outbox_t **out) {
  if (out == NULL || producers == 0 || capacity < 4 ||
      (capacity & (capacity - 1)) != 0)
    return -1;
  fgw_outbox_t *ob = calloc(1, sizeof *ob);
  if (ob == NULL)
    return -1;
  ob->n = producers;
  /* aligned_alloc wants a size that is a multiple of the alignment (the
   * sanitizers refuse anything else). */
  size_t bytes = (sizeof(lane_t) * producers + 63) / 64 * 64;
  ob->lanes = aligned_alloc(64, bytes);
  if (ob->lanes == NULL) {
    free(ob);
    return -1;
  }
  for (uint32_t i = 0; i < producers; i++) {
    lane_t *l = &ob->lanes[i];
    ck_ring_init(&l->ring, capacity);
    atomic_init(&l->count, 0);
    l->buf = calloc(capacity, sizeof *l->buf);
    if (l->buf == NULL) {
      ob->n = i;
      fgw_outbox_destroy(ob);
      return -1;
    }
  }
  atomic_init(&ob->parked, 0);
  atomic_init(&ob->closed, 0);
  sem_init(&ob->wake, 0, 0);
  *out = ob;
  return 0;
}

void fgw_outbox_destroy(fgw_outbox_t *ob) {
  if (ob == NULL)
    return;
  for (uint32_t i = 0; i < ob->n; i++)
    free(ob->lanes[i].buf);
  free(ob->lanes);
  sem_destroy(&ob->wake);
  free(ob);
}

static void wake(fgw_outbox_t *ob) {
  atomic_thread_fence(memory_order_seq_cst); /* P1 */
  if (atomic_load_explicit(&ob->parked, memory_order_relaxed) &&
      atomic_exchange_explicit(&ob->parked, 0, memory_order_relaxed))
    sem_post(&ob->wake);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fgw_outbox_put(fgw_outbox_t *ob, uint32_t p, const fgw_report_t *r,
                   uint64_t timeout_ns) {
  if (ob == NULL || r == NULL || p >= ob->n)
    return -1;
  lane_t *l = &ob->lanes[p];
  fgw_report_t copy = *r; /* ck_ring takes a non-const pointer */
  uint64_t deadline = 0;
  while (!ck_ring_enqueue_spsc_report(&l->ring, l->buf, &copy)) {
    /* Full: the sender is behind.  Make sure it is awake, then wait. */
    if (atomic_load_explicit(&ob->closed, memory_order_acquire))
      return -1;
    uint64_t now = mono_ns(); /* only on this slow path */
    if (deadline == 0)
      deadline = now + timeout_ns;
    else if (now >= deadline)
      return -1;
    wake(ob);
    sched_yield();
  }
  /* Only this lane's producer writes count: relaxed suffices. */
  atomic_store_explicit(&l->count,
                        atomic_load_explicit(&l->count, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  wake(ob);
  return 0;
}

static int drain(fgw_outbox_t *ob, fgw_report_t *out, int max) {
  int got = 0;
  for (uint32_t k = 0; k < ob->n && got < max; k++) {
    lane_t *l = &ob->lanes[(ob->next + k) % ob->n];
    while (got < max && ck_ring_dequeue_spsc_report(&l->ring, l->buf, &out[got]))
      got++;
  }
  ob->next = (ob->next + 1) % ob->n;
  return got;
}

int fgw_outbox_take(fgw_outbox_t *ob, fgw_report_t *out, int max,
                    uint64_t timeout_ns) {
  if (ob == NULL || out == NULL || max <= 0)
    return -1;
  int got = drain(ob, out, max);
  if (got > 0)
    return got;
  for (int spin = 0; spin < 64; spin++) { /* a short spin before parking */
    sched_yield();
    if ((got = drain(ob, out, max)) > 0)
      return got;
  }
  atomic_store_explicit(&ob->parked, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst); /* C1 */
  if ((got = drain(ob, out, max)) > 0) {
    atomic_store_explicit(&ob->parked, 0, memory_order_relaxed);
    return got;
  }
  if (atomic_load_explicit(&ob->closed, memory_order_acquire))
    return -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns;
  ts.tv_sec += (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  while (sem_timedwait(&ob->wake, &ts) != 0 && errno == EINTR) {
  }
  atomic_store_explicit(&ob->parked, 0, memory_order_relaxed);
  return drain(ob, out, max);
}

void fgw_outbox_close(fgw_outbox_t *ob) {
  if (ob == NULL)
    return;
  atomic_store_explicit(&ob->closed, 1, memory_order_release);
  sem_post(&ob->wake);
}

uint64_t fgw_outbox_count(const fgw_outbox_t *ob, uint32_t p) {
  if (ob == NULL || p >= ob->n)
    return 0;
  return atomic_load_explicit(&ob->lanes[p].count, memory_order_relaxed);
}
