/*
 * test_bus_catchup: the catch-up pause of the worker threads
 * (fe_bus_config_t.catchup_pauses).  The rule itself, poll by poll; then
 * through the API: a worker whose second poll in a row finds a short batch
 * pauses once and counts it in fe_bus_stats().catchups, and never when
 * the pauses are off or the batch was full.
 */
#include "helpers.h"

#include "../lib/bus_impl.h"

/* One poll sequence: what each poll found, and whether the rule pauses. */
static void expect_rule(const uint32_t *got, const int *due, size_t n,
                        uint32_t full) {
  uint32_t trail = 0;
  for (size_t i = 0; i < n; i++)
    if (fe__catchup_due(&trail, got[i], full) != due[i])
      fail_msg("poll %zu (found %u, full %u): expected %s", i, got[i], full,
               due[i] ? "a pause" : "no pause");
}

static void test_rule(void **state) {
  (void)state;
  /* A stream: the second short batch in a row pauses, the one after the
   * pause does not, the next short one pauses again. */
  static const uint32_t s_got[] = {1, 3, 2, 5, 4, 1};
  static const int s_due[] = {0, 1, 0, 1, 0, 1};
  expect_rule(s_got, s_due, 6, 256);
  /* An empty poll in between: the worker is idle, not chasing. */
  static const uint32_t i_got[] = {1, 0, 1, 0, 1, 0, 2, 2};
  static const int i_due[] = {0, 0, 0, 0, 0, 0, 0, 1};
  expect_rule(i_got, i_due, 8, 256);
  /* Full batches: the worker is behind, never pauses. */
  static const uint32_t f_got[] = {256, 256, 256, 255, 256, 300};
  static const int f_due[] = {0, 0, 0, 1, 0, 0};
  expect_rule(f_got, f_due, 6, 256);
}

/* The stage holds its first event until the test has published two more,
 * so the worker's next poll, right after, finds a short batch of two. */
static atomic_int held, release_first;

static fe_verdict_t hold_first(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)u;
  if (ev->seq == 0) {
    atomic_store(&held, 1);
    while (!atomic_load(&release_first))
      sched_yield();
  }
  return FE_CONTINUE;
}

static uint64_t catchups_after_three(uint32_t pauses, uint32_t max_batch) {
  atomic_store(&held, 0);
  atomic_store(&release_first, 0);
  fe_stage_def_t st;
  fe_stage_def_init(&st);
  st.name = "hold", st.handler = hold_first;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 64, cfg.wait = FE_WAIT_YIELD, cfg.max_batch = max_batch;
  cfg.catchup_pauses = pauses;
  cfg.stages = &st, cfg.n_stages = 1;
  fe_bus_t *bus = NULL;
  assert_int_equal(fe_bus_create(&cfg, &bus, NULL), 0);
  assert_int_equal(fe_bus_start(bus, NULL), 0);
  fe_event_t *ev;
  assert_int_equal(fe_bus_claim(bus, &ev, FE_WAIT_FOREVER), 0);
  fe_bus_publish(bus, ev);
  while (!atomic_load(&held)) /* the worker took event 0 alone */
    sched_yield();
  for (int i = 0; i < 2; i++) {
    assert_int_equal(fe_bus_claim(bus, &ev, FE_WAIT_FOREVER), 0);
    fe_bus_publish(bus, ev);
  }
  atomic_store(&release_first, 1);
  assert_int_equal(fe_bus_drain(bus, FE_WAIT_FOREVER), 0);
  /* after stop: the worker counts a pause after publishing its progress */
  assert_int_equal(fe_bus_stop(bus), 0);
  fe_bus_stats_t s;
  assert_int_equal(fe_bus_stats(bus, &s), 0);
  assert_int_equal(s.completed, 3);
  fe_bus_destroy(bus);
  return s.catchups;
}

static void test_worker_pauses_once_when_it_catches_up(void **state) {
  (void)state;
  assert_int_equal(catchups_after_three(64, 32), 1);
}

static void test_no_pause_when_off_or_batch_full(void **state) {
  (void)state;
  assert_int_equal(catchups_after_three(0, 32), 0);
  /* max_batch 2: the second poll's batch of two is a full one */
  assert_int_equal(catchups_after_three(64, 2), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule),
      cmocka_unit_test(test_worker_pauses_once_when_it_catches_up),
      cmocka_unit_test(test_no_pause_when_off_or_batch_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
