/*
 * test_error: fe_strerror() and fe_err_name() against the error list in
 * include/finevent/error.h, which is the specification: every listed code
 * maps to its own message and name, every other value is "unknown", and
 * FE_ERRNO_END closes the (contiguous, negative) range.
 */
#include "helpers.h"

typedef struct expected_code {
  int code;
  const char *name;
  const char *msg;
} expected_code_t;

#define AS_ROW(name, value, msg) {FE_##name, #name, msg},
static const expected_code_t k_codes[] = {FE_ERRNO_MAP(AS_ROW)};
#undef AS_ROW
#define N_CODES (sizeof k_codes / sizeof k_codes[0])

static void test_every_code_has_its_message(void **state) {
  (void)state;
  for (size_t i = 0; i < N_CODES; i++) {
    const char *m = fe_strerror(k_codes[i].code);
    assert_non_null(m);
    if (strcmp(m, k_codes[i].msg) != 0)
      fail_msg("fe_strerror(%d) = \"%s\", expected \"%s\"", k_codes[i].code, m,
               k_codes[i].msg);
  }
}

static void test_every_code_has_its_name(void **state) {
  (void)state;
  for (size_t i = 0; i < N_CODES; i++) {
    const char *n = fe_err_name(k_codes[i].code);
    assert_non_null(n);
    if (strcmp(n, k_codes[i].name) != 0)
      fail_msg("fe_err_name(%d) = \"%s\", expected \"%s\"", k_codes[i].code, n,
               k_codes[i].name);
  }
  /* spot checks that do not go through the X-macro */
  assert_string_equal(fe_err_name(FE_EFULL), "EFULL");
  assert_string_equal(fe_err_name(-15), "EFULL");
  assert_string_equal(fe_err_name(FE_ENAME), "ENAME");
  assert_string_equal(fe_strerror(-1), "invalid argument");
  assert_string_equal(fe_strerror(FE_ESTOPPED), "bus is stopped");
}

static void test_ok(void **state) {
  (void)state;
  assert_int_equal(FE_OK, 0);
  assert_string_equal(fe_err_name(0), "OK");
  /* error.h does not say what fe_strerror(0) returns (0 is not in the
   * list): only that it is a static string. */
  const char *m = fe_strerror(0);
  assert_non_null(m);
  assert_true(m[0] != '\0');
}

static void test_unknown_codes(void **state) {
  (void)state;
  const int unknown[] = {FE_ERRNO_END, FE_ERRNO_END - 1, -1000, 1, 2, 42,
                         INT_MIN, INT_MAX, -INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *m = fe_strerror(unknown[i]);
    const char *n = fe_err_name(unknown[i]);
    assert_non_null(m);
    assert_non_null(n);
    if (strcmp(m, "unknown error") != 0 || strcmp(n, "UNKNOWN") != 0)
      fail_msg("code %d: got \"%s\" / \"%s\", expected \"unknown error\" / "
               "\"UNKNOWN\"", unknown[i], m, n);
  }
}

static void test_range_is_closed_and_contiguous(void **state) {
  (void)state;
  int min = 0;
  /* every code strictly inside (FE_ERRNO_END, 0) */
  for (size_t i = 0; i < N_CODES; i++) {
    assert_true(k_codes[i].code < 0);
    assert_true(k_codes[i].code > FE_ERRNO_END);
    if (k_codes[i].code < min)
      min = k_codes[i].code;
  }
  /* END is just past the last code, and every value in between is used
   * exactly once: the list is -1 .. END+1 without gaps. */
  assert_int_equal(FE_ERRNO_END, min - 1);
  assert_int_equal((size_t)(-(FE_ERRNO_END + 1)), N_CODES);
  for (int c = -1; c > FE_ERRNO_END; c--) {
    int seen = 0;
    for (size_t i = 0; i < N_CODES; i++)
      seen += k_codes[i].code == c;
    if (seen != 1)
      fail_msg("code %d appears %d times in FE_ERRNO_MAP", c, seen);
    assert_string_not_equal(fe_err_name(c), "UNKNOWN");
    assert_string_not_equal(fe_strerror(c), "unknown error");
  }
}

static void test_messages_and_names_distinct(void **state) {
  (void)state;
  for (int a = -1; a > FE_ERRNO_END; a--)
    for (int b = a - 1; b > FE_ERRNO_END; b--) {
      if (strcmp(fe_strerror(a), fe_strerror(b)) == 0)
        fail_msg("codes %d and %d share the message \"%s\"", a, b,
                 fe_strerror(a));
      if (strcmp(fe_err_name(a), fe_err_name(b)) == 0)
        fail_msg("codes %d and %d share the name \"%s\"", a, b,
                 fe_err_name(a));
    }
}

/* "Thread-safe": hammer both functions from several threads (TSan checks
 * for a shared buffer) and check the results stay right. */
typedef struct hammer {
  fe_t_errs_t *errs;
  int offset;
} hammer_t;

static void *hammer_main(void *arg) {
  hammer_t *h = arg;
  for (int round = 0; round < 20000; round++) {
    size_t i = (size_t)(round + h->offset) % N_CODES;
    if (strcmp(fe_strerror(k_codes[i].code), k_codes[i].msg) != 0 ||
        strcmp(fe_err_name(k_codes[i].code), k_codes[i].name) != 0)
      fe_t_errf(h->errs, "wrong text for %d under concurrency",
                k_codes[i].code);
    if (strcmp(fe_err_name(FE_ERRNO_END - round), "UNKNOWN") != 0)
      fe_t_errf(h->errs, "wrong name for unknown code %d",
                FE_ERRNO_END - round);
  }
  return NULL;
}

static void test_thread_safe(void **state) {
  (void)state;
  fe_t_errs_t errs;
  memset(&errs, 0, sizeof errs);
  pthread_t th[4];
  hammer_t h[4];
  for (int i = 0; i < 4; i++) {
    h[i].errs = &errs;
    h[i].offset = i * 5;
    assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  fe_t_assert_clean(&errs);
}

static void test_diag_layout(void **state) {
  (void)state;
  fe_diag_t d;
  assert_int_equal(sizeof d.msg, FE_DIAG_MAX);
  assert_true(FE_DIAG_MAX >= 64);
}

int main(void) {
  const struct CMUnitTest test_error[] = {
      FE_T_TEST(test_every_code_has_its_message),
      FE_T_TEST(test_every_code_has_its_name),
      FE_T_TEST(test_ok),
      FE_T_TEST(test_unknown_codes),
      FE_T_TEST(test_range_is_closed_and_contiguous),
      FE_T_TEST(test_messages_and_names_distinct),
      FE_T_TEST(test_thread_safe),
      FE_T_TEST(test_diag_layout),
  };
  return cmocka_run_group_tests(test_error, NULL, NULL);
}
