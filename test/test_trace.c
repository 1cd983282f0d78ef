/* W3C trace context: traceparent round trip, every malformation refused
 * with its own error, generated ids. */
#include "helpers.h"

static void test_roundtrip(void **state) {
  (void)state;
  const char *h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  fe_trace_t t;
  assert_fe_ok(fe_traceparent_parse(h, strlen(h), &t, NULL));
  assert_int_equal(t.trace_id[0], 0x4b);
  assert_int_equal(t.trace_id[15], 0x36);
  assert_int_equal(t.span_id[0], 0x00);
  assert_int_equal(t.span_id[7], 0xb7);
  assert_int_equal(t.flags, 1);
  char out[FE_TRACEPARENT_LEN + 1];
  assert_fe_ok(fe_traceparent_format(&t, out));
  assert_string_equal(out, h);
  /* Generated ones round-trip too, and differ. */
  fe_trace_t a, b, c;
  assert_fe_ok(fe_trace_new(&a));
  assert_fe_ok(fe_trace_new(&b));
  assert_memory_not_equal(a.trace_id, b.trace_id, 16);
  assert_int_equal(a.flags, FE_TRACE_SAMPLED);
  assert_fe_ok(fe_traceparent_format(&a, out));
  assert_fe_ok(fe_traceparent_parse(out, strlen(out), &c, NULL));
  assert_memory_equal(&a, &c, sizeof a);
  assert_fe_ok(fe_trace_child(&a, &c));
  assert_memory_equal(c.trace_id, a.trace_id, 16);
  assert_memory_not_equal(c.span_id, a.span_id, 8);
  /* A later version: its first four fields, extra fields allowed. */
  const char *v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-ever";
  assert_fe_ok(fe_traceparent_parse(v, strlen(v), &t, NULL));
  assert_int_equal(t.flags, 9);
  /* Not NUL-terminated: only len bytes are read. */
  char buf[80];
  memcpy(buf, h, 55);
  memset(buf + 55, 'Z', sizeof buf - 55);
  assert_fe_ok(fe_traceparent_parse(buf, 55, &t, NULL));
}

static void test_bad_headers(void **state) {
  (void)state;
  static const struct {
    const char *h;
    int rc;
    const char *why;
  } cases[] = {
      {"", FE_ERANGE, "characters"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", FE_ERANGE, "54"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", FE_ERANGE, "56"},
      {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", FE_ERANGE, "version cc"},
      {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", FE_EVERSION, "ff"},
      {"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", FE_EVERSION, "version"},
      {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", FE_ECORRUPT, "separator"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", FE_ECORRUPT, "separator"},
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", FE_ECORRUPT, "trace-id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9z2b7-01", FE_ECORRUPT, "parent-id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", FE_ECORRUPT, "trace-flags"},
      {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", FE_ENOTFOUND, "trace-id is all zero"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", FE_ENOTFOUND, "parent-id is all zero"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fe_trace_t t;
    memset(&t, 0x5a, sizeof t);
    fe_diag_t d = {0};
    int rc = fe_traceparent_parse(cases[i].h, strlen(cases[i].h), &t, &d);
    if (rc != cases[i].rc || strstr(d.msg, cases[i].why) == NULL)
      fail_msg("case %zu \"%s\": got %s \"%s\"", i, cases[i].h, fe_err_name(rc), d.msg);
    assert_int_equal(t.flags, 0x5a); /* untouched */
  }
  fe_trace_t t;
  assert_fe(fe_traceparent_parse(NULL, 55, &t, NULL), FE_EINVAL);
  assert_fe(fe_traceparent_parse("00", 2, NULL, NULL), FE_EINVAL);
  char out[FE_TRACEPARENT_LEN + 1];
  memset(&t, 0, sizeof t);
  assert_fe(fe_traceparent_format(&t, out), FE_EINVAL); /* all zero */
  t.trace_id[3] = 1;
  assert_fe(fe_traceparent_format(&t, out), FE_EINVAL); /* span zero */
  assert_fe(fe_traceparent_format(NULL, out), FE_EINVAL);
  t.span_id[0] = 1;
  assert_fe(fe_traceparent_format(&t, NULL), FE_EINVAL);
  assert_fe(fe_trace_new(NULL), FE_EINVAL);
  assert_fe(fe_trace_child(NULL, &t), FE_EINVAL);
  assert_fe(fe_trace_child(&t, NULL), FE_EINVAL);
}

/* The bus carries the context untouched from publisher to stage. */
static fe_trace_t seen_trace;
static fe_verdict_t grab(fe_stage_ctx_t *ctx, fe_event_t *ev, void *user) {
  (void)ctx, (void)user;
  seen_trace = ev->trace;
  return FE_CONTINUE;
}

static void test_bus_carries_it(void **state) {
  (void)state;
  fe_t_def_t d;
  fe_t_def_init(&d, 8);
  fe_t_add_stage(&d, "grab", grab, NULL, 0);
  d.cfg.host_driven = 1;
  fe_bus_t *bus = fe_t_create(&d);
  assert_fe_ok(fe_bus_start(bus, NULL));
  fe_event_t *ev;
  assert_fe_ok(fe_bus_claim(bus, &ev, FE_T_LONG_NS));
  fe_trace_new(&ev->trace);
  fe_trace_t want = ev->trace;
  assert_fe_ok(fe_bus_publish(bus, ev));
  while (fe_bus_poll(bus, 0) > 0) {
  }
  assert_memory_equal(&seen_trace, &want, sizeof want);
  fe_bus_stop(bus);
  fe_bus_destroy(bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_roundtrip),
      FE_T_TEST(test_bad_headers),
      FE_T_TEST(test_bus_carries_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
