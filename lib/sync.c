/* Futex and membarrier wrappers (Linux). */
#define _GNU_SOURCE
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

int fe__asym_init(void) {
  long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
    return 0;
  /* Registration is per process and idempotent. */
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                 0) == 0;
}

int fe__asym_heavy(int *asym) {
  if (__atomic_load_n(asym, __ATOMIC_RELAXED) &&
      syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
    return 0;
  /* Not registered or failed: the light side fences for real from now on
   * (asym 0); a full fence here keeps this side's order. */
  int failed = __atomic_exchange_n(asym, 0, __ATOMIC_RELAXED) != 0;
  fe__fence();
  return failed ? -1 : 0;
}

int fe__futex_wait(uint32_t *addr, uint32_t val, uint64_t timeout_ns) {
  struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                        .tv_nsec = (long)(timeout_ns % 1000000000u)};
  long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
  return (r == -1 && errno == ETIMEDOUT) ? -1 : 0;
}

void fe__futex_wake(uint32_t *addr, int n) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n < 0 ? INT_MAX : n, NULL, NULL, 0);
}
