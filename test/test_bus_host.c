/*
 * test_bus_host: host-driven mode.  The library starts no thread; events
 * move only when the host calls fe_bus_poll() for a worker; poll's return
 * values and errors; several host threads each polling its own worker; and
 * the stop protocol (poll finishes what was published before stop, then
 * returns FE_ESTOPPED).
 */
#include "helpers.h"

static fe_bus_t *host_pipeline(fe_t_track_t *t, uint32_t stages,
                               uint32_t workers, uint32_t cap,
                               uint32_t max_batch) {
  static const char *names[] = {"s0", "s1", "s2", "s3"};
  fe_t_def_t d;
  fe_t_def_init(&d, cap);
  d.cfg.host_driven = 1;
  d.cfg.max_batch = max_batch;
  for (uint32_t i = 0; i < stages; i++) {
    uint32_t id = fe_t_track_stage(t, &d, names[i], i % workers);
    if (i > 0)
      fe_t_track_dep(t, &d, id, i - 1);
  }
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  return bus;
}

static void publish_n(fe_bus_t *bus, uint64_t n) {
  fe_t_rng_t rng;
  fe_t_rng_seed(&rng, 3);
  assert_fe_ok(fe_t_publish_filled(bus, n, 8, &rng));
}

static void test_no_library_threads(void **state) {
  (void)state;
  int before = fe_t_thread_count();
  assert_true(before >= 1);
  fe_t_track_t *t = fe_t_track_new(100);
  fe_bus_t *bus = host_pipeline(t, 4, 2, 128, 16);
  assert_int_equal(fe_t_thread_count(), before);
  fe_t_start(bus);
  assert_int_equal(fe_t_thread_count(), before);
  publish_n(bus, 100);
  uint64_t n = 0;
  while (fe_t_handled(t, 3) < 100) {
    n += fe_t_poll_idle(bus, 0);
    n += fe_t_poll_idle(bus, 1);
    assert_int_equal(fe_t_thread_count(), before);
  }
  assert_true(n >= 400);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS)); /* already complete */
  fe_t_host_finish(bus);
  assert_int_equal(fe_t_thread_count(), before);
  fe_t_assert_clean(&t->errs);
  for (uint32_t i = 0; i < 4; i++)
    fe_t_assert_seen_all(t, i, 0);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_poll_drives_progress(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(40);
  fe_bus_t *bus = host_pipeline(t, 1, 1, 64, 16);
  fe_t_start(bus);
  assert_int_equal(fe_bus_poll(bus, 0), 0); /* idle */
  publish_n(bus, 40);
  fe_t_sleep_ms(50); /* nobody polls: nothing moves */
  assert_int_equal(fe_t_handled(t, 0), 0);
  assert_int_equal(fe_t_stats(bus).completed, 0);
  assert_int_equal(fe_bus_poll(bus, 0), 16);
  assert_int_equal(fe_t_handled(t, 0), 16);
  assert_int_equal(fe_t_stats(bus).completed, 16);
  assert_int_equal(fe_bus_poll(bus, 0), 16);
  assert_int_equal(fe_bus_poll(bus, 0), 8);
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  assert_int_equal(fe_t_handled(t, 0), 40);
  assert_int_equal(fe_t_stats(bus).completed, 40);
  fe_t_host_finish(bus);
  fe_t_assert_clean(&t->errs);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_poll_errors(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(4);
  fe_bus_t *bus = host_pipeline(t, 2, 2, 8, 8);
  /* not started */
  assert_fe(fe_bus_poll(bus, 0), FE_ESTATE);
  fe_t_start(bus);
  assert_fe(fe_bus_poll(bus, 2), FE_EWORKER);
  assert_fe(fe_bus_poll(bus, 64), FE_EWORKER);
  assert_fe(fe_bus_poll(bus, UINT32_MAX), FE_EWORKER);
  assert_int_equal(fe_bus_poll(bus, 1), 0);
  fe_t_host_finish(bus);
  fe_bus_destroy(bus);
  fe_t_track_free(t);

  /* a threaded bus cannot be polled, before or after start */
  t = fe_t_track_new(4);
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  fe_t_track_stage(t, &d, "s0", 0);
  bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  assert_fe(fe_bus_poll(bus, 0), FE_ESTATE);
  fe_t_start(bus);
  assert_fe(fe_bus_poll(bus, 0), FE_ESTATE);
  assert_fe_ok(fe_bus_stop(bus));
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_two_host_threads(void **state) {
  (void)state;
  /* s0 (worker 0) -> s1 (worker 1) -> s2 (worker 0) -> s3 (worker 1), one
   * host thread per worker, the main thread publishing and draining. */
  const uint64_t n = 50000;
  fe_t_track_t *t = fe_t_track_new(n);
  fe_bus_t *bus = host_pipeline(t, 4, 2, 256, 32);
  fe_t_start(bus);
  fe_t_poller_t p[2];
  fe_t_poller_start(&p[0], bus, 0, &t->errs);
  fe_t_poller_start(&p[1], bus, 1, &t->errs);
  publish_n(bus, n);
  assert_fe_ok(fe_bus_drain(bus, FE_T_LONG_NS));
  assert_fe_ok(fe_bus_stop(bus));
  fe_t_poller_join(&p[0]);
  fe_t_poller_join(&p[1]);
  fe_t_assert_clean(&t->errs);
  for (uint32_t i = 0; i < 4; i++)
    fe_t_assert_seen_all(t, i, 0);
  /* each stage ran on its poller's thread */
  assert_true(pthread_equal(t->st[0].thread, p[0].th));
  assert_true(pthread_equal(t->st[2].thread, p[0].th));
  assert_true(pthread_equal(t->st[1].thread, p[1].th));
  assert_true(pthread_equal(t->st[3].thread, p[1].th));
  assert_true(p[0].advanced >= 2 * n);
  assert_true(p[1].advanced >= 2 * n);
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, n);
  assert_int_equal(s.completed, n);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_stop_then_poll_to_estopped(void **state) {
  (void)state;
  fe_t_track_t *t = fe_t_track_new(100);
  fe_bus_t *bus = host_pipeline(t, 1, 1, 128, 8);
  fe_t_start(bus);
  publish_n(bus, 100);
  uint64_t t0 = fe_t_now_ns();
  assert_fe_ok(fe_bus_stop(bus)); /* returns at once in host-driven mode */
  assert_true(fe_t_now_ns() - t0 < 5 * FE_T_SEC);
  assert_fe(fe_bus_stop(bus), FE_ESTATE);
  fe_event_t *ev = NULL;
  assert_fe(fe_bus_try_claim(bus, &ev), FE_ESTOPPED);
  uint64_t sum = 0;
  int polls = 0, rc;
  while ((rc = fe_bus_poll(bus, 0)) > 0) {
    sum += (uint64_t)rc;
    assert_true(++polls <= 100);
  }
  assert_fe(rc, FE_ESTOPPED);
  assert_int_equal(sum, 100);
  assert_int_equal(polls, 13); /* 12 batches of 8, one of 4 */
  assert_int_equal(fe_t_handled(t, 0), 100);
  assert_fe(fe_bus_poll(bus, 0), FE_ESTOPPED); /* and stays so */
  fe_t_assert_clean(&t->errs);
  fe_t_assert_seen_all(t, 0, 0);
  fe_bus_stats_t s = fe_t_stats(bus);
  assert_int_equal(s.published, 100);
  assert_int_equal(s.completed, 100);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_stop_downstream_worker_waits_for_upstream(void **state) {
  (void)state;
  /* s0 on worker 0, s1 on worker 1: after stop, worker 1 may not report
   * FE_ESTOPPED while events published before stop still have to reach
   * it through worker 0. */
  fe_t_track_t *t = fe_t_track_new(100);
  fe_bus_t *bus = host_pipeline(t, 2, 2, 128, 16);
  fe_t_start(bus);
  publish_n(bus, 100);
  assert_fe_ok(fe_bus_stop(bus));
  for (int i = 0; i < 5; i++)
    assert_int_equal(fe_bus_poll(bus, 1), 0); /* waiting, not stopped */
  int rc;
  while ((rc = fe_bus_poll(bus, 0)) > 0)
    ;
  assert_fe(rc, FE_ESTOPPED);
  assert_int_equal(fe_t_handled(t, 0), 100);
  assert_int_equal(fe_t_handled(t, 1), 0);
  uint64_t sum = 0;
  while ((rc = fe_bus_poll(bus, 1)) > 0)
    sum += (uint64_t)rc;
  assert_fe(rc, FE_ESTOPPED);
  assert_int_equal(sum, 100);
  assert_int_equal(fe_t_handled(t, 1), 100);
  fe_t_assert_clean(&t->errs);
  assert_int_equal(fe_t_stats(bus).completed, 100);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_cpu_ignored_in_host_mode(void **state) {
  (void)state;
  /* "cpu ... Ignored in host-driven mode": an unusable CPU number does not
   * stop a host-driven bus from starting. */
  fe_t_track_t *t = fe_t_track_new(4);
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  d.cfg.host_driven = 1;
  d.cfg.cpu[0] = 1000;
  fe_t_track_stage(t, &d, "s0", 0);
  fe_bus_t *bus = fe_t_create(&d);
  fe_t_track_bind(t, bus);
  fe_t_start(bus);
  publish_n(bus, 4);
  assert_int_equal(fe_t_poll_idle(bus, 0), 4);
  fe_t_host_finish(bus);
  fe_t_assert_clean(&t->errs);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

static void test_destroy_host_bus_without_stop(void **state) {
  (void)state;
  /* Destroy of a started host-driven bus: must not hang or leak. */
  fe_t_track_t *t = fe_t_track_new(4);
  fe_bus_t *bus = host_pipeline(t, 2, 2, 8, 8);
  fe_t_start(bus);
  assert_int_equal(fe_bus_poll(bus, 0), 0);
  fe_bus_destroy(bus);
  fe_t_track_free(t);
}

int main(void) {
  const struct CMUnitTest test_bus_host[] = {
      FE_T_TEST(test_no_library_threads),
      FE_T_TEST(test_poll_drives_progress),
      FE_T_TEST(test_poll_errors),
      FE_T_TEST(test_two_host_threads),
      FE_T_TEST(test_stop_then_poll_to_estopped),
      FE_T_TEST(test_stop_downstream_worker_waits_for_upstream),
      FE_T_TEST(test_cpu_ignored_in_host_mode),
      FE_T_TEST(test_destroy_host_bus_without_stop),
  };
  return cmocka_run_group_tests(test_bus_host, NULL, NULL);
}
