/*
 * libfinevent: structured JSON logs through a host callback.
 *
 * One JSON object per line: level, time (RFC 3339 UTC with nanoseconds)
 * and time_ns, then, for an event, event_id, client_order_id, account,
 * stage, trace_id and span_id (lower-case hex, as in traceparent), then
 * msg.  Strings are JSON-escaped (control bytes as \u00XX; bytes >= 0x80
 * are passed through, so the host's text should be UTF-8).
 *
 * Nothing is formatted unless a callback is set and the level passes: a
 * call with no logger, no callback or a lower level returns at once.
 * Formatting uses a stack buffer (FE_LOG_LINE_MAX bytes; a longer msg is
 * cut and the line stays valid JSON): no allocation, no lock.
 */
#ifndef FINEVENT_LOG_H
#define FINEVENT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_LOG_LINE_MAX 1024

typedef enum fe_log_level {
  FE_LOG_DEBUG = 10,
  FE_LOG_INFO = 20,
  FE_LOG_WARN = 30,
  FE_LOG_ERROR = 40
} fe_log_level_t;

/* The host's sink: line is len bytes ending in '\n' (and NUL after it),
 * valid only during the call.  Called on the logging thread. */
typedef void (*fe_log_fn)(fe_log_level_t level, const char *line, size_t len,
                          void *user);

/* A logger: plain data the host fills and keeps (it is only read). */
typedef struct fe_logger {
  fe_log_fn fn;              /* NULL: logging off */
  void *user;
  fe_log_level_t min_level;  /* lines below it are dropped unformatted */
  uint64_t (*wall_ns)(void *clock_user); /* NULL: fe_clock_realtime_ns */
  void *clock_user;
} fe_logger_t;

/* "debug", "info", "warn", "error", or "?". */
FE_API const char *fe_log_level_name(int level);

/* Logs msg about ev (eid: its event id, e.g. ev->seq or the journal's id;
 * stage: the stage's name, NULL: none).  ev NULL logs msg alone.  Returns
 * 1 when a line went to the callback, 0 when filtered (lg NULL, no fn,
 * level below min_level), FE_EINVAL (msg NULL with a callback set).
 * Thread-safe if the callback is. */
FE_API int fe_log_event(const fe_logger_t *lg, fe_log_level_t level,
                        const fe_event_t *ev, uint64_t eid, const char *stage,
                        const char *msg);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_LOG_H */
