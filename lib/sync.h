/*
 * Atomics, fences and futexes used by the bus.
 *
 * Why GCC __atomic builtins rather than ck_pr: ThreadSanitizer understands
 * __atomic operations and their memory orders, while ck_pr 0.7.1 on x86-64
 * is inline assembly and volatile accesses that TSan cannot see, so every
 * slot hand-off would be reported as a race (or, worse, real races would be
 * hidden behind suppressions).  On x86-64 the builtins compile to the same
 * plain loads and stores as ck_pr_load/ck_pr_store under CK_MD_TSO; an
 * acquire load or release store costs nothing more.  ck still supplies the
 * spin hint (ck_pr_stall) and the auxiliary rings.
 */
#ifndef FE_SYNC_H
#define FE_SYNC_H

#include <stdint.h>
#include <time.h>

#define fe__load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define fe__load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define fe__store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define fe__store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* Single-writer counter update: only the owning thread writes, readers use
 * fe__load_relaxed; no read-modify-write needed. */
#define fe__add_owned(p, n) fe__store_relaxed((p), fe__load_relaxed(p) + (n))

/* Compiler-only barrier: keeps program order for the asymmetric fence
 * (see fe__asym_heavy). */
#define fe__compiler_barrier() __atomic_signal_fence(__ATOMIC_SEQ_CST)

/* Asymmetric store-load fencing.  A hot path that must order its store
 * before a later load against a rare slow path (a publisher checking for
 * parked workers, a claimer checking for stop) uses fe__asym_light(), a
 * compiler barrier; the slow side calls fe__asym_heavy(), which runs
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every running thread of the
 * process executes a full fence, so any light-side load issued before that
 * point has its preceding store already visible, and any issued after sees
 * the slow side's store.  Where membarrier is unavailable (old kernel,
 * seccomp), fe__asym_init() reports 0 and callers keep asym=0: the light
 * side then issues a real seq_cst fence.
 *
 * *asym is the caller's flag, read by the light sides (relaxed).  If
 * membarrier fails at run time (it succeeded at init: this should not
 * happen), fe__asym_heavy() fences itself, clears *asym so that every
 * light side from then on fences for real, and returns -1: a light side
 * already past its compiler barrier was not ordered by this call, so the
 * caller must not rely on it this once (a parker does not sleep, a stop
 * waits out a grace period). */
int fe__asym_init(void);
int fe__asym_heavy(int *asym);

#if defined(__SANITIZE_THREAD__)
#define FE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FE_TSAN 1
#endif
#endif

/* Full fence.  ThreadSanitizer does not model stand-alone fences (gcc
 * refuses them under -fsanitize=thread), so TSan builds use a seq_cst
 * read-modify-write, which on x86-64 is the same full barrier (LOCK). */
static inline void fe__fence(void) {
#ifdef FE_TSAN
  static uint32_t dummy;
  __atomic_fetch_add(&dummy, 0, __ATOMIC_SEQ_CST);
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static inline void fe__asym_light(const int *asym) {
  if (__atomic_load_n(asym, __ATOMIC_RELAXED))
    fe__compiler_barrier();
  else
    fe__fence();
}

/* futex wait on *addr while it equals val, for at most timeout_ns.
 * Returns 0 when woken (or the value differed), -1 on timeout. */
int fe__futex_wait(uint32_t *addr, uint32_t val, uint64_t timeout_ns);
/* Wakes up to n waiters on addr. */
void fe__futex_wake(uint32_t *addr, int n);

/* CLOCK_MONOTONIC in ns (slow paths only: timeouts). */
static inline uint64_t fe__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* now + timeout, saturating (FE_WAIT_FOREVER stays forever). */
static inline uint64_t fe__deadline(uint64_t timeout_ns) {
  uint64_t now = fe__mono_ns();
  return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

#endif /* FE_SYNC_H */
