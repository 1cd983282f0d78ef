/*
 * test_reason: the library's reason codes (reason.h): fixed values,
 * names, meanings, the reserved range, and the old saga/gateway names.
 */
#include "helpers.h"

#include <finevent/finevent.h>

static const struct {
  uint32_t code;
  const char *name;
} k_reasons[] = {
    {252, "JOURNAL"},
    {253, "NO_VENUE"},
    {254, "CIRCUIT_OPEN"},
    {255, "SAGA_TIMEOUT"},
};

static void test_values_and_names(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_reasons / sizeof k_reasons[0]; i++) {
    const char *n = fe_reason_name(k_reasons[i].code);
    assert_non_null(n);
    assert_string_equal(n, k_reasons[i].name);
    const char *m = fe_reason_meaning(k_reasons[i].code);
    assert_non_null(m);
    assert_true(strlen(m) > 10);
  }
  assert_int_equal(FE_REASON_JOURNAL, 252);
  assert_int_equal(FE_REASON_NO_VENUE, 253);
  assert_int_equal(FE_REASON_CIRCUIT_OPEN, 254);
  assert_int_equal(FE_REASON_SAGA_TIMEOUT, 255);
}

/* Every listed reason lies in the reserved range, names are unique, and
 * nothing outside the list has a name. */
static void test_list_is_the_only_source(void **state) {
  (void)state;
  uint32_t named = 0, listed = 0;
#define COUNT(name, value, meaning) listed++;
  FE_REASON_MAP(COUNT)
#undef COUNT
  for (uint32_t r = 0; r <= 1000; r++) {
    const char *n = fe_reason_name(r);
    assert_true((n == NULL) == (fe_reason_meaning(r) == NULL));
    if (n == NULL)
      continue;
    named++;
    assert_true(r >= FE_REASON_RESERVED_MIN && r <= FE_REASON_MAX);
    for (uint32_t q = 0; q < r; q++) {
      const char *o = fe_reason_name(q);
      if (o != NULL)
        assert_string_not_equal(o, n);
    }
  }
  assert_int_equal(named, listed);
  assert_null(fe_reason_name(0));
  assert_null(fe_reason_name(1));
  assert_null(fe_reason_name(FE_REASON_RESERVED_MIN - 1));
  assert_null(fe_reason_name(UINT32_MAX));
  assert_null(fe_reason_meaning(UINT32_MAX));
}

/* The module headers' names stay the registry's values. */
static void test_old_names_alias_the_registry(void **state) {
  (void)state;
  assert_int_equal(FE_SAGA_REASON_TIMEOUT, FE_REASON_SAGA_TIMEOUT);
  assert_int_equal(FE_SAGA_REASON_JOURNAL, FE_REASON_JOURNAL);
  fe_gateway_config_t g;
  fe_gateway_config_init(&g);
  assert_int_equal(g.open_reason, FE_REASON_CIRCUIT_OPEN);
  assert_int_equal(g.no_venue_reason, FE_REASON_NO_VENUE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_and_names),
      cmocka_unit_test(test_list_is_the_only_source),
      cmocka_unit_test(test_old_names_alias_the_registry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
