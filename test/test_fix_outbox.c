/*
 * test_fix_outbox: the FIX gateway's hand-off to its sender thread
 * (examples/fix_gateway/fix_outbox.c): order within a lane, round-robin
 * over lanes, the bounded wait of a full lane, close.  One thread: ck_ring's
 * fences are inline assembly that ThreadSanitizer cannot see, so the
 * threaded use is exercised by test_fix_gateway instead.
 */
#include "helpers.h"

#include "fix_outbox.h"

static fgw_report_t rep(uint32_t n) {
  fgw_report_t r;
  memset(&r, 0, sizeof r);
  r.kind = FGW_REP_NEW;
  r.exec_n = n;
  return r;
}

static void order_and_round_robin(void **state) {
  (void)state;
  fgw_outbox_t *ob;
  assert_int_equal(fgw_outbox_create(2, 8, &ob), 0);
  for (uint32_t i = 0; i < 3; i++) {
    fgw_report_t a = rep(i), b = rep(100 + i);
    assert_int_equal(fgw_outbox_put(ob, 0, &a, 0), 0);
    assert_int_equal(fgw_outbox_put(ob, 1, &b, 0), 0);
  }
  assert_int_equal(fgw_outbox_count(ob, 0), 3);
  assert_int_equal(fgw_outbox_count(ob, 1), 3);
  fgw_report_t out[16];
  int n = fgw_outbox_take(ob, out, 16, FE_T_MS);
  assert_int_equal(n, 6);
  /* Each lane's reports stay in their order. */
  uint32_t next0 = 0, next1 = 100;
  for (int i = 0; i < n; i++) {
    if (out[i].exec_n < 100)
      assert_int_equal(out[i].exec_n, next0++);
    else
      assert_int_equal(out[i].exec_n, next1++);
  }
  /* max bounds a take. */
  fgw_report_t a = rep(7);
  for (int i = 0; i < 4; i++)
    assert_int_equal(fgw_outbox_put(ob, 1, &a, 0), 0);
  assert_int_equal(fgw_outbox_take(ob, out, 3, FE_T_MS), 3);
  assert_int_equal(fgw_outbox_take(ob, out, 3, FE_T_MS), 1);
  /* Empty: take waits its timeout and returns 0. */
  uint64_t t0 = fe_t_now_ns();
  assert_int_equal(fgw_outbox_take(ob, out, 3, 20 * FE_T_MS), 0);
  assert_true(fe_t_now_ns() - t0 >= 10 * FE_T_MS);
  fgw_outbox_destroy(ob);
}

static void full_lane_waits_then_drops(void **state) {
  (void)state;
  fgw_outbox_t *ob;
  assert_int_equal(fgw_outbox_create(1, 4, &ob), 0);
  fgw_report_t r = rep(1);
  for (int i = 0; i < 3; i++) /* a ring of 4 holds 3 */
    assert_int_equal(fgw_outbox_put(ob, 0, &r, 0), 0);
  uint64_t t0 = fe_t_now_ns();
  assert_int_equal(fgw_outbox_put(ob, 0, &r, 30 * FE_T_MS), -1);
  uint64_t waited = fe_t_now_ns() - t0;
  assert_true(waited >= 30 * FE_T_MS && waited < FE_T_LONG_NS);
  assert_int_equal(fgw_outbox_count(ob, 0), 3);
  fgw_report_t out[4];
  assert_int_equal(fgw_outbox_take(ob, out, 4, FE_T_MS), 3);
  assert_int_equal(fgw_outbox_put(ob, 0, &r, 0), 0); /* room again */
  fgw_outbox_destroy(ob);
}

static void close_ends_the_consumer(void **state) {
  (void)state;
  fgw_outbox_t *ob;
  assert_int_equal(fgw_outbox_create(1, 4, &ob), 0);
  fgw_report_t r = rep(1), out[4];
  assert_int_equal(fgw_outbox_put(ob, 0, &r, 0), 0);
  fgw_outbox_close(ob);
  /* What was handed over before close still comes out, then -1. */
  assert_int_equal(fgw_outbox_take(ob, out, 4, FE_T_MS), 1);
  assert_int_equal(fgw_outbox_take(ob, out, 4, FE_T_LONG_NS), -1);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fgw_outbox_put(ob, 0, &r, 0), 0);
  assert_int_equal(fgw_outbox_put(ob, 0, &r, FE_T_LONG_NS), -1); /* closed: no wait */
  fgw_outbox_destroy(ob);
}

static void bad_arguments(void **state) {
  (void)state;
  fgw_outbox_t *ob = NULL;
  assert_int_equal(fgw_outbox_create(0, 8, &ob), -1);
  assert_int_equal(fgw_outbox_create(1, 6, &ob), -1);
  assert_int_equal(fgw_outbox_create(1, 2, &ob), -1);
  assert_int_equal(fgw_outbox_create(1, 8, NULL), -1);
  assert_null(ob);
  assert_int_equal(fgw_outbox_create(2, 8, &ob), 0);
  fgw_report_t r = rep(1), out[2];
  assert_int_equal(fgw_outbox_put(ob, 2, &r, 0), -1);
  assert_int_equal(fgw_outbox_put(ob, 0, NULL, 0), -1);
  assert_int_equal(fgw_outbox_put(NULL, 0, &r, 0), -1);
  assert_int_equal(fgw_outbox_take(ob, NULL, 2, 0), -1);
  assert_int_equal(fgw_outbox_take(ob, out, 0, 0), -1);
  assert_int_equal(fgw_outbox_take(NULL, out, 2, 0), -1);
  assert_int_equal(fgw_outbox_count(ob, 5), 0);
  assert_int_equal(fgw_outbox_count(NULL, 0), 0);
  fgw_outbox_close(NULL);
  fgw_outbox_destroy(NULL);
  fgw_outbox_destroy(ob);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(order_and_round_robin),
      cmocka_unit_test(full_lane_waits_then_drops),
      cmocka_unit_test(close_ends_the_consumer),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
