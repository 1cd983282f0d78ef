/*
 * libfinevent: error codes.
 *
 * Every libfinevent call that can fail returns 0 on success or one negative
 * code from the list below.  The list is the only source of truth: it
 * generates the enum, fe_strerror() and fe_err_name().  Calls that validate
 * configuration also fill an optional fe_diag_t with a message that names
 * the offending field and value.
 *
 * Bad arguments.  No call crashes or aborts on NULL where it needs an
 * object, an input or an output (test/test_api_null.c holds every public
 * function to this):
 *   - a call that returns an int error code returns FE_EINVAL;
 *   - a predicate (fe_event_rejected(), ...) answers 0;
 *   - a count, size, lsn, position or statistic comes back 0 (a position
 *     is signed, so no error code could be told from one;
 *     fe_saga_idle_ns(): UINT64_MAX, "nothing scheduled");
 *   - a call that returns a pointer returns NULL; a name lookup for an
 *     unknown value returns "UNKNOWN" (or NULL where its header says so);
 *   - *_config_init(NULL), *_def_init(NULL), destroy(NULL), close(NULL)
 *     and the batch verdict calls do nothing.
 * Out-of-range values (a stage, worker or reason that does not exist, an
 * unknown enum) get the specific code their function names (FE_ERANGE,
 * FE_EWORKER, FE_ENAME, ...).  What the rule cannot catch: a pointer to
 * freed memory or to an object of another type, which is undefined
 * behaviour as everywhere in C.
 */
#ifndef FINEVENT_ERROR_H
#define FINEVENT_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FE_API __attribute__((visibility("default")))
#else
#define FE_API
#endif

/* X(name, value, message).  Values are stable: never renumber, only append. */
#define FE_ERRNO_MAP(X)                                                        \
  X(EINVAL,     -1,  "invalid argument")                                      \
  X(ENOMEM,     -2,  "out of memory")                                         \
  X(ECAPACITY,  -3,  "ring capacity must be a power of two >= 2")             \
  X(ESLOTSIZE,  -4,  "slot size too small for the event header")              \
  X(ENOSTAGES,  -5,  "no stage configured")                                   \
  X(ENOHANDLER, -6,  "stage has no handler")                                  \
  X(EDEPEND,    -7,  "stage depends on a stage that does not exist")          \
  X(ECYCLE,     -8,  "cycle in the stage graph")                              \
  X(ESHARDS,    -9,  "invalid number of workers for a stage")                 \
  X(EWORKER,    -10, "invalid worker index")                                  \
  X(EBATCH,     -11, "invalid batch size")                                    \
  X(EWAIT,      -12, "invalid wait strategy")                                 \
  X(EAFFINITY,  -13, "cannot set CPU affinity")                               \
  X(ETHREAD,    -14, "cannot start a worker thread")                          \
  X(EFULL,      -15, "ring full (backpressure)")                              \
  X(ETIMEDOUT,  -16, "timed out")                                             \
  X(ESTOPPED,   -17, "bus is stopped")                                        \
  X(ESTATE,     -18, "call not allowed in the current lifecycle state")       \
  X(EPRODUCER,  -19, "invalid producer mode")                                 \
  X(ERANGE,     -20, "value out of range")                                    \
  X(ENOTSUP,    -21, "not supported on this platform")                        \
  X(ENAME,      -22, "invalid or duplicate name")                             \
  X(EINCOMPAT,  -23, "incompatible configurations")                           \
  X(EBREAKER,   -24, "circuit breaker open: call not permitted")              \
  X(ETHROTTLED, -25, "throttled: rate limit exceeded")                        \
  X(ETABLEFULL, -26, "table full")                                            \
  X(ENORETRY,   -27, "failure is not retryable")                              \
  X(EEXHAUSTED, -28, "retry attempts exhausted")                              \
  X(EHALTED,    -29, "trading halted")                                        \
  X(EREDUCEONLY,-30, "trading state allows only position-reducing orders")    \
  X(EREDRIVE,   -31, "redrive limit reached")                                 \
  X(ENOTFOUND,  -32, "no such entry")                                        \
  X(EMISMATCH,  -33, "idempotency key reused with a different payload")      \
  X(EINPROGRESS,-34, "duplicate: the first request is still in progress")    \
  X(EDUPLICATE, -35, "duplicate: the stored outcome of the first request")   \
  X(ELEASE,     -36, "lease lost: the claim expired and was retaken")        \
  X(EIO,        -37, "input/output error")                                   \
  X(ECORRUPT,   -38, "corrupt data (checksum or framing)")                   \
  X(EVERSION,   -39, "unknown format version")                               \
  X(ETOKEN,     -40, "unknown token")                                        \
  X(ELATE,      -41, "late or duplicate completion: already applied")        \
  X(EDEFINE,    -42, "invalid workflow definition")

/* Error codes.  FE_OK is 0; every failure is negative; FE_ERRNO_END closes
 * the range (every code c satisfies FE_ERRNO_END < c < 0). */
typedef enum fe_errno {
  FE_OK = 0,
#define FE__ERR_ENUM(name, value, msg) FE_##name = (value),
  FE_ERRNO_MAP(FE__ERR_ENUM)
#undef FE__ERR_ENUM
  FE_ERRNO_END = -43
} fe_errno_t;

/* Returns a static, human-readable message for code; "unknown error" for a
 * value outside the list.  Thread-safe, cannot fail. */
FE_API const char *fe_strerror(int code);

/* Returns the code's symbolic name without the FE_ prefix ("EFULL"), "OK"
 * for 0, or "UNKNOWN".  Thread-safe, cannot fail. */
FE_API const char *fe_err_name(int code);

/* Diagnostics for configuration errors: the failing call stores the code it
 * returned and a message naming the field and the offending value.  Every
 * call that takes an fe_diag_t * accepts NULL.  Untouched on success. */
#define FE_DIAG_MAX 256
typedef struct fe_diag {
  int code;
  char msg[FE_DIAG_MAX];
} fe_diag_t;

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_ERROR_H */
