/* Cheap clocks: init, monotonicity, agreement with CLOCK_MONOTONIC and
 * CLOCK_REALTIME, conversions, forced fallback, concurrent use.  Timing
 * bounds are loose on purpose: CI machines are noisy. */
#define _POSIX_C_SOURCE 200809L /* setenv, nanosleep, clock_gettime */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "finevent/clock.h"

#define MS UINT64_C(1000000)

static uint64_t mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* The source fe_clock_init() picked on this machine; tests that switch
 * sources switch back to it. */
static fe_clock_src_t native;

static void restore_native(void) {
  unsetenv("FE_CLOCK");
  assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_AUTO, NULL), 0);
  assert_int_equal(fe_clock_source(), native);
}

/* ----------------------------------------------------------------- tests */

static void *init_thread(void *p) {
  *(int *)p = fe_clock_init(NULL);
  return NULL;
}

/* Runs first: two threads race to be the first caller. */
static void test_init_concurrent(void **state) {
  (void)state;
  unsetenv("FE_CLOCK");
  pthread_t t[2];
  int rc[2] = {-99, -99};
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, init_thread, &rc[i]), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_int_equal(rc[0], 0);
  assert_int_equal(rc[1], 0);
  native = fe_clock_source();
  assert_true(native == FE_CLOCK_SRC_TSC || native == FE_CLOCK_SRC_MONOTONIC);
  print_message("clock source: %s, %llu ticks/s\n",
                fe_clock_source_name(native),
                (unsigned long long)fe_clock_ticks_per_sec());
  /* Idempotent: quick, same source. */
  uint64_t t0 = mono();
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_clock_init(&d), 0);
  assert_int_equal(d.code, 0); /* untouched on success */
  assert_true(mono() - t0 < 5 * MS);
  assert_int_equal(fe_clock_source(), native);
}

static void test_source_names(void **state) {
  (void)state;
  assert_string_equal(fe_clock_source_name(FE_CLOCK_SRC_AUTO), "auto");
  assert_string_equal(fe_clock_source_name(FE_CLOCK_SRC_TSC), "tsc");
  assert_string_equal(fe_clock_source_name(FE_CLOCK_SRC_MONOTONIC),
                      "monotonic");
  assert_string_equal(fe_clock_source_name((fe_clock_src_t)42), "unknown");
}

static void check_monotonic(void) {
  uint64_t prev_ns = fe_clock_now_ns(), prev_t = fe_clock_ticks();
  for (int i = 0; i < 200000; i++) {
    uint64_t ns = fe_clock_now_ns(), t = fe_clock_ticks();
    if (ns < prev_ns) fail_msg("now_ns went back at %d", i);
    if (t < prev_t) fail_msg("ticks went back at %d", i);
    prev_ns = ns;
    prev_t = t;
  }
}

/* now_ns stays between two CLOCK_MONOTONIC readings taken around it, and
 * advances as CLOCK_MONOTONIC does over a sleep (2 % + 1 ms). */
static void check_tracks_monotonic(void) {
  uint64_t m0 = mono(), n0 = fe_clock_now_ns(), m1 = mono();
  assert_true(n0 + MS >= m0 && n0 <= m1 + MS);
  uint64_t t0 = fe_clock_ticks();
  sleep_ns(50 * MS);
  uint64_t m2 = mono(), n1 = fe_clock_now_ns(), m3 = mono();
  uint64_t t1 = fe_clock_ticks();
  assert_true(n1 + MS >= m2 && n1 <= m3 + MS);
  uint64_t dn = n1 - n0, dm = m2 - m1, slack = dm / 50 + MS;
  if (dn + slack < dm || dn > (m3 - m0) + slack)
    fail_msg("now_ns advanced %llu ns while CLOCK_MONOTONIC advanced "
             "%llu..%llu", (unsigned long long)dn, (unsigned long long)dm,
             (unsigned long long)(m3 - m0));
  /* Ticks converted agree with now_ns over the same interval. */
  uint64_t dt = fe_clock_ticks_to_ns(t1 - t0);
  assert_true(dt + slack >= dm && dt <= (m3 - m0) + 2 * slack);
}

static void test_monotonic(void **state) {
  (void)state;
  check_monotonic();
}

static void test_tracks_clock_monotonic(void **state) {
  (void)state;
  check_tracks_monotonic();
}

static void test_conversions(void **state) {
  (void)state;
  uint64_t hz = fe_clock_ticks_per_sec();
  assert_true(hz >= 1000000);
  uint64_t sec = fe_clock_ticks_to_ns(hz);
  assert_true(sec >= 1000000000u - 1000 && sec <= 1000000000u + 1000);
  assert_int_equal(fe_clock_ticks_to_ns(0), 0);
  uint64_t seed = 1;
  for (int i = 0; i < 10000; i++) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    uint64_t a = seed >> 24, b = (seed & 0xffffff) << 8; /* < 2^40, 2^32 */
    uint64_t sum = fe_clock_ticks_to_ns(a) + fe_clock_ticks_to_ns(b);
    uint64_t whole = fe_clock_ticks_to_ns(a + b);
    assert_true(whole >= sum && whole <= sum + 1); /* linear, truncating */
    assert_true(fe_clock_ticks_to_ns(a + 1) >= fe_clock_ticks_to_ns(a));
    /* Round trip within a couple of ticks' worth of nanoseconds (the
     * scale factors have ~1e-18 resolution, so this holds at 2^40 ns). */
    uint64_t back = fe_clock_ticks_to_ns(fe_clock_ns_to_ticks(a));
    uint64_t tick_ns = fe_clock_ticks_to_ns(2) + 1;
    assert_true(back + tick_ns >= a && back <= a + tick_ns);
  }
  /* Large values (a raw reading, a year of ticks) convert without
   * overflow: the product is 128 bits wide. */
  uint64_t big[] = {fe_clock_ticks(), hz * 86400 * 365, UINT64_C(1) << 62};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    double want = (double)big[i] * 1e9 / (double)hz;
    double got = (double)fe_clock_ticks_to_ns(big[i]);
    assert_true(got >= want * (1 - 1e-6) && got <= want * (1 + 1e-6));
    if (want < 1e18) {
      /* Nanoseconds are coarser than ticks: a tick per ns may go. */
      uint64_t slack = hz / 1000000000u + 2;
      uint64_t back = fe_clock_ns_to_ticks(fe_clock_ticks_to_ns(big[i]));
      assert_true(back + slack >= big[i] && back <= big[i] + slack);
    }
  }
}

static void test_forced_monotonic(void **state) {
  (void)state;
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_MONOTONIC, &d), 0);
  assert_int_equal(d.code, 0);
  assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_MONOTONIC);
  assert_int_equal(fe_clock_ticks_per_sec(), 1000000000u);
  assert_int_equal(fe_clock_ticks_to_ns(123456789), 123456789);
  assert_int_equal(fe_clock_ns_to_ticks(987654321), 987654321);
  uint64_t m0 = mono(), t = fe_clock_ticks(), m1 = mono();
  assert_true(t >= m0 && t <= m1); /* ticks are CLOCK_MONOTONIC ns */
  /* fe_clock_init() does not undo an explicit choice. */
  assert_int_equal(fe_clock_init(NULL), 0);
  assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_MONOTONIC);
  check_monotonic();
  check_tracks_monotonic();
  restore_native();
}

static void test_env_override(void **state) {
  (void)state;
  fe_diag_t d = {0, ""};
  setenv("FE_CLOCK", "monotonic", 1);
  assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_AUTO, &d), 0);
  assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_MONOTONIC);

  setenv("FE_CLOCK", "sundial", 1);
  assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_AUTO, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_non_null(strstr(d.msg, "FE_CLOCK"));
  assert_non_null(strstr(d.msg, "sundial"));
  assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_MONOTONIC); /* unchanged */

  setenv("FE_CLOCK", "tsc", 1);
  memset(&d, 0, sizeof d);
  int rc = fe_clock_init_source(FE_CLOCK_SRC_AUTO, &d);
  if (native == FE_CLOCK_SRC_TSC) {
    assert_int_equal(rc, 0);
    assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_TSC);
  } else {
    assert_int_equal(rc, FE_ENOTSUP);
    assert_int_equal(d.code, FE_ENOTSUP);
    assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_MONOTONIC);
  }

  setenv("FE_CLOCK", "auto", 1);
  assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_AUTO, NULL), 0);
  assert_int_equal(fe_clock_source(), native);
  restore_native();
}

static void test_explicit_sources(void **state) {
  (void)state;
  fe_diag_t d = {0, ""};
  assert_int_equal(fe_clock_init_source((fe_clock_src_t)7, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_non_null(strstr(d.msg, "source"));
  assert_int_equal(fe_clock_source(), native);

  memset(&d, 0, sizeof d);
  int rc = fe_clock_init_source(FE_CLOCK_SRC_TSC, &d);
  if (native == FE_CLOCK_SRC_TSC) {
    assert_int_equal(rc, 0);
    assert_int_equal(fe_clock_source(), FE_CLOCK_SRC_TSC);
    /* Back and forth: now_ns stays in CLOCK_MONOTONIC's epoch. */
    uint64_t a = fe_clock_now_ns();
    assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_MONOTONIC, NULL), 0);
    uint64_t b = fe_clock_now_ns();
    assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_TSC, NULL), 0);
    uint64_t c = fe_clock_now_ns();
    assert_true(b + MS >= a && c + MS >= b);
  } else {
    assert_int_equal(rc, FE_ENOTSUP);
    assert_int_equal(d.code, FE_ENOTSUP);
    assert_true(strlen(d.msg) > 0);
  }
  restore_native();
}

static void test_realtime(void **state) {
  (void)state;
  time_t before = time(NULL);
  uint64_t rt = fe_clock_realtime_ns();
  time_t after = time(NULL);
  assert_true(rt / 1000000000u + 1 >= (uint64_t)before);
  assert_true(rt / 1000000000u <= (uint64_t)after + 1);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ref = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  assert_true(ref >= rt && ref - rt < 1000 * MS);
}

/* Readers keep reading while the main thread switches sources: no data
 * race (TSan), no crash, and each reader's now_ns stays sane. */
struct reader {
  int stop; /* written by main (release), read here (acquire) */
  int bad;
};

static void *reader(void *p) {
  struct reader *r = p;
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    uint64_t m0 = mono(), n = fe_clock_now_ns(), m1 = mono();
    if (n + 100 * MS < m0 || n > m1 + 100 * MS) r->bad = 1;
    (void)fe_clock_ticks_to_ns(fe_clock_ticks());
    (void)fe_clock_ns_to_ticks(1000);
    (void)fe_clock_ticks_per_sec();
    (void)fe_clock_source();
  }
  return NULL;
}

static void test_switch_while_reading(void **state) {
  (void)state;
  struct reader r = {0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, reader, &r), 0);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_MONOTONIC, NULL), 0);
    sleep_ns(MS / 10);
    assert_int_equal(fe_clock_init_source(FE_CLOCK_SRC_AUTO, NULL), 0);
    assert_int_equal(fe_clock_init(NULL), 0);
    sleep_ns(MS / 10);
  }
  __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE); /* pairs with reader */
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(r.bad, 0);
  restore_native();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_concurrent), /* must stay first */
      cmocka_unit_test(test_source_names),
      cmocka_unit_test(test_monotonic),
      cmocka_unit_test(test_tracks_clock_monotonic),
      cmocka_unit_test(test_conversions),
      cmocka_unit_test(test_forced_monotonic),
      cmocka_unit_test(test_env_override),
      cmocka_unit_test(test_explicit_sources),
      cmocka_unit_test(test_realtime),
      cmocka_unit_test(test_switch_while_reading),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
