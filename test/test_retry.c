/* Retry policies: delays, caps, jitter bounds, attempt limits,
 * non-retryable reasons, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "finevent/finevent.h"
#include "finevent/retry.h"

static fe_retry_policy_t no_jitter(uint64_t initial, uint32_t coeff,
                                   uint64_t max, uint32_t attempts) {
  fe_retry_policy_t p;
  fe_retry_policy_init(&p);
  p.initial_ns = initial;
  p.coefficient_milli = coeff;
  p.max_interval_ns = max;
  p.max_attempts = attempts;
  p.jitter_milli = 0;
  assert_int_equal(fe_retry_policy_check(&p, NULL), 0);
  return p;
}

static uint64_t delay(const fe_retry_policy_t *p, uint32_t attempt) {
  uint64_t d = 0;
  assert_int_equal(fe_retry_next(p, attempt, 1, 12345, &d), 0);
  return d;
}

static void test_defaults(void **state) {
  (void)state;
  fe_retry_policy_t p;
  fe_retry_policy_init(&p);
  assert_int_equal(p.initial_ns, 1000000);
  assert_int_equal(p.coefficient_milli, 2000);
  assert_int_equal(p.max_interval_ns, 100000000);
  assert_int_equal(p.max_attempts, 5);
  assert_int_equal(p.jitter_milli, 100);
  assert_int_equal(fe_retry_policy_check(&p, NULL), 0);
}

static void test_exponential_then_capped(void **state) {
  (void)state;
  fe_retry_policy_t p = no_jitter(1000, 2000, 50000, 0);
  const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 50000, 50000};
  for (uint32_t a = 1; a <= 8; a++)
    assert_int_equal(delay(&p, a), want[a - 1]);
  /* far attempts stay at the cap, without overflow */
  assert_int_equal(delay(&p, 1000000), 50000);
  assert_int_equal(delay(&p, UINT32_MAX), 50000);
}

static void test_fractional_coefficient(void **state) {
  (void)state;
  fe_retry_policy_t p = no_jitter(1000000, 1500, UINT64_MAX, 0);
  assert_int_equal(delay(&p, 1), 1000000);
  assert_int_equal(delay(&p, 2), 1500000);
  assert_int_equal(delay(&p, 3), 2250000);
  assert_int_equal(delay(&p, 4), 3375000);
  /* coefficient 1.0: constant delay */
  fe_retry_policy_t c = no_jitter(7777, 1000, 100000, 0);
  for (uint32_t a = 1; a < 100; a++)
    assert_int_equal(delay(&c, a), 7777);
}

static void test_extreme_values_saturate(void **state) {
  (void)state;
  fe_retry_policy_t p = no_jitter(1, 1000000000, UINT64_MAX, 0);
  assert_int_equal(delay(&p, 1), 1);
  assert_int_equal(delay(&p, 2), 1000000);
  assert_int_equal(delay(&p, 3), 1000000000000ull);
  /* saturated (factor capped at 2^60/1000), monotone, no overflow */
  assert_true(delay(&p, 64) > delay(&p, 3));
  assert_int_equal(delay(&p, 64), delay(&p, 100));
}

static void test_jitter_stays_in_range_and_spreads(void **state) {
  (void)state;
  fe_retry_policy_t p;
  fe_retry_policy_init(&p);
  p.initial_ns = 1000000;
  p.jitter_milli = 200;
  p.max_attempts = 0;
  uint64_t lo = UINT64_MAX, hi = 0, x = 88172645463325252ull;
  for (int i = 0; i < 10000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t d;
    assert_int_equal(fe_retry_next(&p, 3, 1, x, &d), 0);
    assert_true(d >= 3200000 && d <= 4800000); /* 4 ms +/- 20 % */
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  assert_true(lo < 3300000 && hi > 4700000); /* the range is used */
}

static void test_max_attempts(void **state) {
  (void)state;
  fe_retry_policy_t p = no_jitter(10, 2000, 1000, 3);
  uint64_t d = 99;
  assert_int_equal(fe_retry_next(&p, 1, 1, 0, &d), 0);
  assert_int_equal(fe_retry_next(&p, 2, 1, 0, &d), 0);
  d = 99;
  assert_int_equal(fe_retry_next(&p, 3, 1, 0, &d), FE_EEXHAUSTED);
  assert_int_equal(d, 99); /* untouched */
  fe_retry_policy_t once = no_jitter(10, 2000, 1000, 1);
  assert_int_equal(fe_retry_next(&once, 1, 1, 0, &d), FE_EEXHAUSTED);
}

static void test_non_retryable(void **state) {
  (void)state;
  fe_retry_policy_t p = no_jitter(10, 2000, 1000, 0);
  assert_int_equal(fe_retry_policy_non_retryable(&p, 42), 0);
  assert_int_equal(fe_retry_policy_non_retryable(&p, 255), 0);
  assert_int_equal(fe_retry_policy_non_retryable(&p, 256), FE_ERANGE);
  assert_int_equal(fe_retry_policy_non_retryable(NULL, 1), FE_EINVAL);
  uint64_t d = 5;
  assert_int_equal(fe_retry_next(&p, 1, 42, 0, &d), FE_ENORETRY);
  assert_int_equal(fe_retry_next(&p, 1, 255, 0, &d), FE_ENORETRY);
  assert_int_equal(d, 5);
  assert_int_equal(fe_retry_next(&p, 1, 41, 0, &d), 0);
  assert_int_equal(fe_retry_next(&p, 1, 43, 0, &d), 0);
  assert_int_equal(fe_retry_next(&p, 1, 1000, 0, &d), 0); /* unknown: retry */
}

static void test_invalid(void **state) {
  (void)state;
  fe_retry_policy_t p;
  fe_diag_t d;
  fe_retry_policy_init(&p);
  p.initial_ns = 0;
  memset(&d, 0, sizeof d);
  assert_int_equal(fe_retry_policy_check(&p, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "initial_ns"));
  fe_retry_policy_init(&p);
  p.coefficient_milli = 999;
  assert_int_equal(fe_retry_policy_check(&p, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "coefficient_milli 999"));
  fe_retry_policy_init(&p);
  p.jitter_milli = 1001;
  assert_int_equal(fe_retry_policy_check(&p, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "jitter_milli 1001"));
  fe_retry_policy_init(&p);
  p.max_interval_ns = p.initial_ns - 1;
  assert_int_equal(fe_retry_policy_check(&p, &d), FE_ERANGE);
  assert_non_null(strstr(d.msg, "max_interval_ns"));
  assert_int_equal(fe_retry_policy_check(NULL, &d), FE_EINVAL);
  uint64_t x;
  fe_retry_policy_init(&p);
  assert_int_equal(fe_retry_next(&p, 0, 1, 0, &x), FE_EINVAL);
  assert_int_equal(fe_retry_next(NULL, 1, 1, 0, &x), FE_EINVAL);
  assert_int_equal(fe_retry_next(&p, 1, 1, 0, NULL), FE_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_exponential_then_capped),
      cmocka_unit_test(test_fractional_coefficient),
      cmocka_unit_test(test_extreme_values_saturate),
      cmocka_unit_test(test_jitter_stays_in_range_and_spreads),
      cmocka_unit_test(test_max_attempts),
      cmocka_unit_test(test_non_retryable),
      cmocka_unit_test(test_invalid),
  };
  return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
