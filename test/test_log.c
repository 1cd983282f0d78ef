/* Structured JSON logs: every line is one valid JSON object with the
 * fields the header promises; nothing is formatted when filtered. */
#include "helpers.h"
#include "json_check.h"

typedef struct sink {
  int lines;
  char last[FE_LOG_LINE_MAX + 8];
  size_t len;
  int bad;
} sink_t;

static void keep(fe_log_level_t level, const char *line, size_t len, void *user) {
  sink_t *s = user;
  (void)level;
  s->lines++;
  memcpy(s->last, line, len + 1);
  s->len = len;
  if (len == 0 || line[len - 1] != '\n' || line[len] != '\0' ||
      memchr(line, '\n', len - 1) != NULL || !fe_t_json_object(line, len))
    s->bad++;
}

static uint64_t fixed_wall(void *u) {
  (void)u;
  return UINT64_C(1764806400123456789); /* 2025-12-04T00:00:00.123456789Z */
}

static void test_fields(void **state) {
  (void)state;
  sink_t s = {0};
  fe_logger_t lg = {keep, &s, FE_LOG_INFO, fixed_wall, NULL};
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.order.account = 77;
  strcpy(ev.order.client_order_id, "C\"1\\x\n");
  const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  assert_fe_ok(fe_traceparent_parse(tp, strlen(tp), &ev.trace, NULL));
  assert_int_equal(fe_log_event(&lg, FE_LOG_WARN, &ev, 42, "risk", "rejected: limit"), 1);
  assert_int_equal(s.bad, 0);
  const char *want[] = {"\"level\":\"warn\"",
                        "\"time\":\"2025-12-04T00:00:00.123456789Z\"",
                        "\"time_ns\":1764806400123456789",
                        "\"event_id\":42",
                        "\"client_order_id\":\"C\\\"1\\\\x\\u000a\"",
                        "\"account\":77",
                        "\"stage\":\"risk\"",
                        "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"",
                        "\"span_id\":\"00f067aa0ba902b7\"",
                        "\"msg\":\"rejected: limit\""};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (strstr(s.last, want[i]) == NULL)
      fail_msg("%s not in %s", want[i], s.last);
  /* No event: level, time, msg. */
  assert_int_equal(fe_log_event(&lg, FE_LOG_ERROR, NULL, 0, NULL, "disk full"), 1);
  assert_int_equal(s.bad, 0);
  assert_null(strstr(s.last, "event_id"));
  assert_non_null(strstr(s.last, "\"level\":\"error\""));
  /* Control bytes and a msg far longer than a line: still one object. */
  char big[4000];
  for (size_t i = 0; i < sizeof big - 1; i++)
    big[i] = (char)(i % 7 == 0 ? '"' : i % 11 == 0 ? 1 : 'a' + i % 26);
  big[sizeof big - 1] = '\0';
  assert_int_equal(fe_log_event(&lg, FE_LOG_INFO, &ev, 1, "x", big), 1);
  assert_int_equal(s.bad, 0);
  assert_true(s.len < FE_LOG_LINE_MAX);
  assert_int_equal(s.lines, 3);
}

static int formatted;
static uint64_t counting_wall(void *u) {
  (void)u;
  formatted++;
  return 1;
}

static void test_filtered_not_formatted(void **state) {
  (void)state;
  sink_t s = {0};
  fe_logger_t lg = {keep, &s, FE_LOG_WARN, counting_wall, NULL};
  assert_int_equal(fe_log_event(&lg, FE_LOG_INFO, NULL, 0, NULL, "x"), 0);
  assert_int_equal(fe_log_event(NULL, FE_LOG_ERROR, NULL, 0, NULL, "x"), 0);
  fe_logger_t off = {NULL, NULL, FE_LOG_DEBUG, counting_wall, NULL};
  assert_int_equal(fe_log_event(&off, FE_LOG_ERROR, NULL, 0, NULL, NULL), 0);
  assert_int_equal(formatted, 0); /* the clock was not even read */
  assert_int_equal(s.lines, 0);
  assert_fe(fe_log_event(&lg, FE_LOG_ERROR, NULL, 0, NULL, NULL), FE_EINVAL);
  assert_string_equal(fe_log_level_name(FE_LOG_DEBUG), "debug");
  assert_string_equal(fe_log_level_name(3), "?");
}

/* The checker itself refuses broken JSON (so the tests above can fail). */
static void test_checker(void **state) {
  (void)state;
  const char *good = "{\"a\":[1,2.5e3,\"x\\u00e9\",true,null],\"b\":{}}\n";
  assert_true(fe_t_json_object(good, strlen(good)));
  const char *bad[] = {"{\"a\":1,}", "{\"a\" 1}", "{\"a\":\"x\ny\"}", "{\"a\":01}",
                       "[1]", "{\"a\":1}{}", "{\"a\":\"\\q\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (fe_t_json_object(bad[i], strlen(bad[i])))
      fail_msg("accepted %s", bad[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FE_T_TEST(test_fields),
      FE_T_TEST(test_filtered_not_formatted),
      FE_T_TEST(test_checker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
