/* Structured JSON log lines. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include <stdio.h>
#include <stdarg.h>
#include <time.h>

#include "finevent/log.h"
#include "internal.h"

const char *fe_log_level_name(int level) {
  switch (level) {
  case FE_LOG_DEBUG: return "debug";
  case FE_LOG_INFO: return "info";
  case FE_LOG_WARN: return "warn";
  case FE_LOG_ERROR: return "error";
  default: return "?";
  }
}

typedef struct line {
  char b[FE_LOG_LINE_MAX];
  size_t n;
} line_t;

/* Appends raw bytes, keeping room for the closing "\"}\n" and a NUL. */
static void raw(line_t *l, const char *s, size_t k) {
  size_t room = sizeof l->b - 8 - l->n;
  if (k > room)
    k = room;
  memcpy(l->b + l->n, s, k);
  l->n += k;
}

__attribute__((format(printf, 2, 3))) static void add(line_t *l, const char *fmt, ...) {
  char tmp[160];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k > 0)
    raw(l, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string of at most cap bytes of s (stops at NUL).  An escape that
 * would not fit whole is dropped, so the line stays valid. */
static void str(line_t *l, const char *s, size_t cap) {
  raw(l, "\"", 1);
  for (size_t i = 0; i < cap && s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    char e[8];
    size_t k;
    if (c == '"' || c == '\\')
      e[0] = '\\', e[1] = (char)c, k = 2;
    else if (c < 0x20)
      k = (size_t)snprintf(e, sizeof e, "\\u%04x", c);
    else
      e[0] = (char)c, k = 1;
    if (sizeof l->b - 8 - l->n < k)
      break;
    raw(l, e, k);
  }
  raw(l, "\"", 1);
}

static void hexf(line_t *l, const char *key, const uint8_t *p, size_t n) {
  char h[40];
  for (size_t i = 0; i < n; i++)
    snprintf(h + 2 * i, 3, "%02x", p[i]);
  add(l, ",\"%s\":\"%s\"", key, h);
}

int fe_log_event(const fe_logger_t *lg, fe_log_level_t level, const fe_event_t *ev,
                 uint64_t eid, const char *stage, const char *msg) {
  if (lg == NULL || lg->fn == NULL || level < lg->min_level)
    return 0;
  if (msg == NULL)
    return FE_EINVAL;
  uint64_t ns = lg->wall_ns ? lg->wall_ns(lg->clock_user) : fe_clock_realtime_ns();
  time_t sec = (time_t)(ns / 1000000000u);
  struct tm tm;
  gmtime_r(&sec, &tm);
  line_t l;
  l.n = 0;
  add(&l, "{\"level\":\"%s\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09uZ\",\"time_ns\":%llu",
      fe_log_level_name(level), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
      tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000u), (unsigned long long)ns);
  if (ev != NULL) {
    add(&l, ",\"event_id\":%llu,\"client_order_id\":", (unsigned long long)eid);
    str(&l, ev->order.client_order_id, FE_CLORDID_MAX);
    add(&l, ",\"account\":%llu", (unsigned long long)ev->order.account);
    if (stage != NULL) {
      raw(&l, ",\"stage\":", 9);
      str(&l, stage, 64);
    }
    hexf(&l, "trace_id", ev->trace.trace_id, 16);
    hexf(&l, "span_id", ev->trace.span_id, 8);
  } else if (stage != NULL) {
    raw(&l, ",\"stage\":", 9);
    str(&l, stage, 64);
  }
  raw(&l, ",\"msg\":", 7);
  str(&l, msg, SIZE_MAX);
  memcpy(l.b + l.n, "}\n", 3);
  l.n += 2;
  lg->fn(level, l.b, l.n, lg->user);
  return 1;
}
