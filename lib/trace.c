/* W3C trace context: traceparent header, random ids. */
#include <sodium.h>
#include <stdio.h>

#include "finevent/trace.h"
#include "internal.h"

static int all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

static void hex(char *out, const uint8_t *p, size_t n) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
}

int fe_traceparent_format(const fe_trace_t *t, char *out) {
  if (t == NULL || out == NULL || all_zero(t->trace_id, 16) ||
      all_zero(t->span_id, 8))
    return FE_EINVAL;
  memcpy(out, "00-", 3);
  hex(out + 3, t->trace_id, 16);
  out[35] = '-';
  hex(out + 36, t->span_id, 8);
  out[52] = '-';
  hex(out + 53, &t->flags, 1);
  out[55] = '\0';
  return 0;
}

static int nibble(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n bytes from 2n lower-case hex digits at s; 0 or -1. */
static int unhex(uint8_t *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int fe_traceparent_parse(const char *s, size_t len, fe_trace_t *out,
                         fe_diag_t *d) {
  if (s == NULL || out == NULL)
    return fe__diag(d, FE_EINVAL, "traceparent: NULL argument");
  if (len < 2)
    return fe__diag(d, FE_ERANGE, "traceparent: %zu characters", len);
  uint8_t ver;
  if (unhex(&ver, s, 1) != 0)
    return fe__diag(d, FE_EVERSION, "traceparent: version is not 2 lower-case hex digits");
  if (ver == 0xff)
    return fe__diag(d, FE_EVERSION, "traceparent: version ff is forbidden");
  if (ver == 0 ? len != FE_TRACEPARENT_LEN
               : len < FE_TRACEPARENT_LEN ||
                     (len > FE_TRACEPARENT_LEN && s[FE_TRACEPARENT_LEN] != '-'))
    return fe__diag(d, FE_ERANGE, "traceparent: %zu characters for version %02x", len, ver);
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return fe__diag(d, FE_ECORRUPT, "traceparent: a '-' separator is missing");
  fe_trace_t t;
  memset(&t, 0, sizeof t);
  if (unhex(t.trace_id, s + 3, 16) != 0)
    return fe__diag(d, FE_ECORRUPT, "traceparent: trace-id is not 32 lower-case hex digits");
  if (unhex(t.span_id, s + 36, 8) != 0)
    return fe__diag(d, FE_ECORRUPT, "traceparent: parent-id is not 16 lower-case hex digits");
  if (unhex(&t.flags, s + 53, 1) != 0)
    return fe__diag(d, FE_ECORRUPT, "traceparent: trace-flags are not 2 lower-case hex digits");
  if (all_zero(t.trace_id, 16))
    return fe__diag(d, FE_ENOTFOUND, "traceparent: trace-id is all zero");
  if (all_zero(t.span_id, 8))
    return fe__diag(d, FE_ENOTFOUND, "traceparent: parent-id is all zero");
  *out = t;
  return 0;
}

/* Per-thread splitmix64 over a randomly seeded counter: ids need to be
 * unique and unpredictable enough for tracing, not secret. */
static _Thread_local uint64_t rng_state;
static _Thread_local int rng_seeded;

static uint64_t next64(void) {
  if (!rng_seeded) {
    if (sodium_init() < 0 || (randombytes_buf(&rng_state, sizeof rng_state), 0))
      rng_state = (uint64_t)(uintptr_t)&rng_state ^ fe_clock_realtime_ns();
    rng_seeded = 1;
  }
  return fe__splitmix64(&rng_state);
}

static void new_span(fe_trace_t *t) {
  uint64_t s;
  do
    s = next64();
  while (s == 0);
  memcpy(t->span_id, &s, 8);
}

int fe_trace_new(fe_trace_t *out) {
  if (out == NULL)
    return FE_EINVAL;
  memset(out, 0, sizeof *out);
  uint64_t a, b;
  do {
    a = next64();
    b = next64();
  } while ((a | b) == 0);
  memcpy(out->trace_id, &a, 8);
  memcpy(out->trace_id + 8, &b, 8);
  new_span(out);
  out->flags = FE_TRACE_SAMPLED;
  return 0;
}

int fe_trace_child(const fe_trace_t *parent, fe_trace_t *out) {
  if (parent == NULL || out == NULL)
    return FE_EINVAL;
  fe_trace_t t = *parent;
  new_span(&t);
  *out = t;
  return 0;
}
