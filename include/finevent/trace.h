/*
 * libfinevent: W3C trace context (https://www.w3.org/TR/trace-context/).
 *
 * Every event carries an fe_trace_t (event.h: ev->trace): a 16-byte trace
 * id and the 8-byte id of the span it belongs to.  A host sets it from an
 * incoming `traceparent` header with fe_traceparent_parse(), or makes one
 * with fe_trace_new(); audit records and JSON logs copy it, so one order
 * can be followed from the client's request through every stage.
 *
 * The header, version 00:  "00-<32 hex trace id>-<16 hex parent id>-<2 hex
 * flags>", 55 characters, lower-case hex only; an all-zero trace id or
 * parent id is invalid, and so is version "ff".  A later version is
 * parsed for its first four fields, as the specification asks.
 */
#ifndef FINEVENT_TRACE_H
#define FINEVENT_TRACE_H

#include <stddef.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_TRACEPARENT_LEN 55 /* characters, without the NUL */
#define FE_TRACE_SAMPLED 0x01 /* trace-flags bit */

/* Writes t as a version-00 traceparent header and a NUL into out (at
 * least FE_TRACEPARENT_LEN + 1 bytes).  Returns 0, or FE_EINVAL when t or
 * out is NULL or t's trace id or span id is all zero (not a valid
 * context: nothing is written).  Thread-safe, cannot fail otherwise. */
FE_API int fe_traceparent_format(const fe_trace_t *t, char *out);

/* Parses the header s (len bytes, need not be NUL-terminated) into *out.
 * Returns 0, or (with *out untouched and diag naming the fault):
 *   FE_EINVAL    s or out NULL
 *   FE_ERANGE    wrong length (version 00 must be exactly 55; a later
 *                version at least 55, and a '-' after the 55th)
 *   FE_EVERSION  version "ff" (forbidden) or not two lower-case hex digits
 *   FE_ECORRUPT  a field is not lower-case hex of its length, or a '-' is
 *                missing
 *   FE_ENOTFOUND the trace id or the parent id is all zero
 * Thread-safe. */
FE_API int fe_traceparent_parse(const char *s, size_t len, fe_trace_t *out,
                                fe_diag_t *diag);

/* A new random trace context (flags: FE_TRACE_SAMPLED): a 16-byte trace
 * id and an 8-byte span id, never all zero.  Per-thread generator seeded
 * once from the OS (libsodium randombytes); no system call afterwards.
 * out NULL: FE_EINVAL.  Thread-safe. */
FE_API int fe_trace_new(fe_trace_t *out);

/* A child span of parent: the same trace id and flags, a new span id.
 * Returns 0 or FE_EINVAL (NULL).  Thread-safe. */
FE_API int fe_trace_child(const fe_trace_t *parent, fe_trace_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_TRACE_H */
