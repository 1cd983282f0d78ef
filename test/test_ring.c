/*
 * test_ring: the ring's fences when membarrier fails at run time.
 *
 * The claim/stop and publish/park protocols put a compiler barrier on the
 * hot side and membarrier on the rare side (sync.h).  If membarrier, which
 * worked at create, starts failing (here: a seccomp filter in a child
 * process makes it return EPERM), the heavy side must say so, every light
 * side must fence for real from then on, and a parked pipeline and a stop
 * must still lose nothing.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include "../lib/ring.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* From now on membarrier(2) fails with EPERM in this process. */
static int break_membarrier(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1 /* EPERM */),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_heavy_side_reports_failure(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int asym = fe__asym_init();
    if (asym != 1)
      _exit(10); /* membarrier is usable on this kernel */
    if (fe__asym_heavy(&asym) != 0 || asym != 1)
      _exit(11);
    if (break_membarrier() != 0)
      _exit(12);
    if (fe__asym_heavy(&asym) != -1)
      _exit(13); /* the failure is reported */
    if (asym != 0)
      _exit(14); /* and the light sides fence from now on */
    if (fe__asym_heavy(&asym) != 0)
      _exit(15); /* already fencing: nothing more to report */
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 10)
    skip(); /* no membarrier here: the fallback is the only path */
  assert_int_equal(WEXITSTATUS(status), 0);
}

static fe_verdict_t count_stage(fe_stage_ctx_t *ctx, fe_event_t *ev,
                                void *user) {
  (void)ctx, (void)ev;
  __atomic_fetch_add((uint64_t *)user, 1, __ATOMIC_RELAXED);
  return FE_CONTINUE;
}

/* A parked two-worker pipeline, membarrier broken while it runs: every
 * event is processed, wake-ups keep working, and a stop racing with a
 * producer loses nothing. */
static void test_bus_survives_membarrier_failure(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    static uint64_t seen[2];
    fe_t_def_t d;
    fe_t_def_init(&d, 64);
    d.cfg.wait = FE_WAIT_PARK;
    d.cfg.spin_tries = 1;
    d.cfg.yield_tries = 1;
    fe_t_add_stage(&d, "a", count_stage, &seen[0], 0);
    uint32_t b = fe_t_add_stage(&d, "b", count_stage, &seen[1], 1);
    fe_t_add_dep(&d, b, 0);
    fe_bus_t *bus;
    if (fe_bus_create(&d.cfg, &bus, NULL) != 0 || fe_bus_start(bus, NULL) != 0)
      _exit(20);
    if (break_membarrier() != 0)
      _exit(21);
    uint64_t n = 0;
    for (int round = 0; round < 200; round++) {
      for (int i = 0; i < 5; i++, n++) {
        fe_event_t *ev;
        if (fe_bus_claim(bus, &ev, FE_WAIT_FOREVER) != 0)
          _exit(22);
        fe_bus_publish(bus, ev);
      }
      if (round % 20 == 0) /* let the workers park between bursts */
        fe_bus_drain(bus, FE_WAIT_FOREVER);
    }
    if (fe_bus_drain(bus, 10 * FE_T_SEC) != 0)
      _exit(23);
    if (fe_bus_stop(bus) != 0)
      _exit(24);
    fe_bus_stats_t s;
    fe_bus_stats(bus, &s);
    if (s.published != n || s.completed != n || seen[1] != n)
      _exit(25);
    fe_bus_destroy(bus);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_heavy_side_reports_failure),
      FE_T_TEST(test_bus_survives_membarrier_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
