/*
 * libfinevent: latency histograms (log-linear, HdrHistogram-like).
 *
 * A histogram counts 64-bit values (nanoseconds, usually) in a fixed array
 * of buckets chosen at create time: recording is O(1), never allocates,
 * locks or makes a system call, and memory does not grow with the number of
 * samples.
 *
 * Precision.  With d significant digits (fe_hist_config_t.digits) and
 * lowest discernible value L, every value v is reported (by the percentile,
 * equivalence and iteration calls) as a value r with
 *
 *     v <= r  and  r - v < max(L, v * 10^-d)
 *
 * so with the defaults (L = 1, d = 3) a recorded value is reported within
 * v * (1 + 0.001), never below it.  Buckets are exact (width 1 unit) below
 * 2^ceil(log2(2 * 10^d)) units; above that each power-of-two range is split
 * into equal buckets whose width is at most 10^-d of their lowest value.
 * The unit is the largest power of two <= L.  fe_hist_min(), fe_hist_max(),
 * fe_hist_count() and fe_hist_mean() are exact (no bucketing).
 *
 * Out-of-range values.  A value above the highest trackable value is
 * recorded as if it were the highest trackable value (into the top bucket;
 * min, max and mean see the clamped value) and is also counted by
 * fe_hist_overflow(), so a clamped histogram is never silent about it.
 * Values below L (0 included) land in the first bucket.
 *
 * Threads.  A histogram has one of two writer disciplines, chosen by which
 * record call the host uses; never mix them on one histogram at once:
 *   - single writer: fe_hist_record()/fe_hist_record_n() from one thread at
 *     a time (the fast path: plain loads and stores, no atomic
 *     read-modify-write);
 *   - several writers: fe_hist_record_atomic()/fe_hist_record_n_atomic()
 *     from any number of threads (relaxed atomic adds and CAS loops).
 * Under either, any number of reader threads may call the query calls, the
 * iterator and fe_hist_merge() with this histogram as src while the writers
 * run: every counter access is atomic (relaxed), so there is no data race,
 * but the readers see no consistent snapshot (count, buckets, min and max
 * may disagree by the samples in flight).  A reader that needs an exact
 * view must synchronise with the writers itself (join them, or stop them
 * behind a lock or a sequence); that synchronisation is what orders the
 * counters for it.  fe_hist_reset() and fe_hist_merge() into dst need the
 * writers of that histogram stopped; fe_hist_init() and fe_hist_destroy()
 * need every other user stopped.
 *
 * Lifecycle:
 *     fe_hist_config_init(&cfg);   adjust lowest, highest, digits
 *     fe_hist_create(&cfg, &h, &diag);      or memsize + init on your memory
 *     fe_hist_record(h, ns) ...             from the writer thread(s)
 *     fe_hist_percentile(h, 99.9) ...       from any thread
 *     fe_hist_destroy(h);
 */
#ifndef FINEVENT_HIST_H
#define FINEVENT_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_HIST_DIGITS_MIN 1
#define FE_HIST_DIGITS_MAX 5
/* Largest accepted highest trackable value: every bucket bound then fits a
 * uint64_t. */
#define FE_HIST_HIGHEST_MAX ((uint64_t)INT64_MAX)
/* Default highest trackable value: one hour in nanoseconds. */
#define FE_HIST_DEFAULT_HIGHEST UINT64_C(3600000000000)
/* Alignment fe_hist_init() requires of caller memory, and the one it would
 * like (a cache line: the counters then share no line with other data). */
#define FE_HIST_ALIGN 8
#define FE_HIST_ALIGN_BEST 64

typedef struct fe_hist fe_hist_t;

/* Histogram configuration.  Initialise with fe_hist_config_init(). */
typedef struct fe_hist_config {
  uint64_t lowest;  /* lowest discernible value, >= 1 (default 1): values
                       closer than this may share a bucket */
  uint64_t highest; /* highest trackable value, >= 2 * lowest and <=
                       FE_HIST_HIGHEST_MAX (default FE_HIST_DEFAULT_HIGHEST,
                       1 h in ns) */
  uint32_t digits;  /* significant decimal digits of precision,
                       FE_HIST_DIGITS_MIN..FE_HIST_DIGITS_MAX (default 3) */
} fe_hist_config_t;

/* One non-empty bucket, as fe_hist_iter_next() reports it.  Initialise with
 * fe_hist_iter_init(); the caller owns it (it holds no resources). */
typedef struct fe_hist_iter {
  const fe_hist_t *hist; /* private */
  uint32_t next;         /* private: next bucket index to look at */
  uint32_t reserved;
  uint64_t lowest;       /* out: lowest value the bucket holds */
  uint64_t highest;      /* out: highest value it holds (the value its
                            samples are reported as; for the top bucket it
                            may exceed the configured highest) */
  uint64_t count;        /* out: samples in the bucket, > 0 */
  uint64_t cumulative;   /* out: samples in this and every lower bucket */
} fe_hist_iter_t;

/* Fills cfg with the defaults: lowest 1, highest 1 h in ns, 3 digits.
 * cfg NULL: does nothing.  Cannot fail; thread-safe (touches only cfg). */
FE_API void fe_hist_config_init(fe_hist_config_t *cfg);

/* Checks cfg without allocating anything.
 *   cfg   in: read during the call only.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg NULL), FE_ERANGE (lowest is 0; highest below
 * 2 * lowest or above FE_HIST_HIGHEST_MAX; digits outside 1..5).
 * Thread-safe, wait-free. */
FE_API int fe_hist_config_check(const fe_hist_config_t *cfg, fe_diag_t *diag);

/* Bytes of memory a histogram with configuration cfg needs, for
 * fe_hist_init(): a multiple of FE_HIST_ALIGN_BEST.  The default
 * configuration needs about 261 KiB (33421 eight-byte counters plus a
 * 128-byte header).  Returns 0 when cfg is NULL or invalid (then
 * fe_hist_config_check() says why).  Thread-safe, wait-free. */
FE_API size_t fe_hist_memsize(const fe_hist_config_t *cfg);

/* Builds an empty histogram in caller-provided memory; the histogram handle
 * is then mem itself: `fe_hist_t *h = mem;`.
 *   mem   in: at least fe_hist_memsize(cfg) bytes, aligned to FE_HIST_ALIGN
 *         (FE_HIST_ALIGN_BEST recommended).  Every byte is written (the
 *         pages are pre-faulted).  The caller keeps ownership: it frees mem
 *         after the last use; fe_hist_destroy() on it does nothing.
 *   size  in: bytes available at mem.
 *   cfg   in: read during the call only.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (mem or cfg NULL, mem misaligned), FE_ERANGE (an
 * invalid cfg field, as fe_hist_config_check(), or size below
 * fe_hist_memsize(cfg)).  On failure mem is untouched.  Not thread-safe for
 * mem: nobody else may use it during the call.  Wait-free, O(size). */
FE_API int fe_hist_init(void *mem, size_t size, const fe_hist_config_t *cfg,
                        fe_diag_t *diag);

/* Validates cfg, then allocates (cache-line aligned) and pre-faults an
 * empty histogram.
 *   cfg   in: read during the call only.
 *   out   out: the new histogram, owned by the caller, freed with
 *         fe_hist_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (cfg or out NULL), FE_ERANGE (as
 * fe_hist_config_check()), FE_ENOMEM.  On failure nothing is allocated.
 * Thread-safe; blocking (allocates and touches memory). */
FE_API int fe_hist_create(const fe_hist_config_t *cfg, fe_hist_t **out,
                          fe_diag_t *diag);

/* Frees a histogram made by fe_hist_create().  Accepts NULL; does nothing
 * for one built by fe_hist_init() (the caller owns that memory).  No other
 * call on h may be in progress or follow.  Cannot fail. */
FE_API void fe_hist_destroy(fe_hist_t *h);

/* Records one sample of value (clamped to the highest trackable value and
 * counted in fe_hist_overflow() if above it).
 * Returns 0, or FE_EINVAL when h is NULL (nothing recorded).
 * Single writer: one thread at a time per histogram, never concurrently
 * with the _atomic variants, fe_hist_reset() or a merge into h; readers may
 * run concurrently.  Wait-free, O(1); no allocation, lock or system call. */
FE_API int fe_hist_record(fe_hist_t *h, uint64_t value);

/* Records count samples of value at once (count 0 records nothing), as
 * count calls to fe_hist_record() would.  Returns 0 or FE_EINVAL (h NULL).
 * Threads and progress as fe_hist_record(). */
FE_API int fe_hist_record_n(fe_hist_t *h, uint64_t value, uint64_t count);

/* As fe_hist_record(), for several writer threads: any number of threads
 * may call the _atomic variants on one histogram concurrently (with each
 * other and with readers), but not with fe_hist_record(), fe_hist_record_n(),
 * fe_hist_reset() or a merge into h.  Costs a few atomic read-modify-writes
 * (contended when writers share a histogram: prefer one single-writer
 * histogram per thread merged by a reader where that fits).  Returns 0 or
 * FE_EINVAL (h NULL).  Lock-free (min and max use compare-and-swap loops
 * that retry only when another writer moved them); O(1), no allocation,
 * lock or system call. */
FE_API int fe_hist_record_atomic(fe_hist_t *h, uint64_t value);

/* As fe_hist_record_n(), for several writer threads; threads and progress
 * as fe_hist_record_atomic(). */
FE_API int fe_hist_record_n_atomic(fe_hist_t *h, uint64_t value,
                                   uint64_t count);

/* Empties h (counts, min, max, mean, overflow); the configuration stays.
 * Returns 0 or FE_EINVAL (h NULL).  No writer of h may run concurrently
 * (its samples could be half-counted); readers may (they see a mixture).
 * Wait-free, O(buckets). */
FE_API int fe_hist_reset(fe_hist_t *h);

/* Adds every sample of src to dst, as if they had been recorded into dst
 * (overflow counts add up too).  src is unchanged; src == dst doubles
 * every count.
 * Returns 0, FE_EINVAL (a NULL argument), FE_EINCOMPAT (incompatible
 * configurations: the two must have the same digits, the same unit - the
 * largest power of two <= lowest - and dst->highest >= src->highest).  On
 * failure dst is unchanged.  dst: no concurrent writer, as fe_hist_reset();
 * src: a reader (its writers may run; then dst gets no snapshot of them).
 * Wait-free, O(buckets). */
FE_API int fe_hist_merge(fe_hist_t *dst, const fe_hist_t *src);

/* Copies h's configuration (as given at create/init) into *cfg, e.g. to
 * build a compatible histogram for fe_hist_merge().  Returns 0 or
 * FE_EINVAL (a NULL argument).  Any thread; wait-free. */
FE_API int fe_hist_get_config(const fe_hist_t *h, fe_hist_config_t *cfg);

/* Queries.  Any thread, concurrently with the writers (see the top of this
 * file); h NULL or empty gives 0.  Wait-free; cannot fail. */

/* Samples recorded (clamped ones included). */
FE_API uint64_t fe_hist_count(const fe_hist_t *h);
/* Samples that were above the highest trackable value and were clamped. */
FE_API uint64_t fe_hist_overflow(const fe_hist_t *h);
/* Smallest and largest recorded value, exact (after clamping). */
FE_API uint64_t fe_hist_min(const fe_hist_t *h);
FE_API uint64_t fe_hist_max(const fe_hist_t *h);
/* Arithmetic mean of the recorded values (after clamping), from an exact
 * 128-bit sum; 0.0 when empty.  Not money: a double is fine here. */
FE_API double fe_hist_mean(const fe_hist_t *h);

/* The value at percentile p (0..100; below 0 and NaN count as 0, above 100
 * as 100): the sample of rank ceil(p / 100 * count) (at least 1) in sorted
 * order, reported as its bucket's highest value and clamped to
 * fe_hist_max(), so within the precision stated at the top of this file of
 * the exact percentile and never below it.  p = 100 gives the max.  O(buckets). */
FE_API uint64_t fe_hist_percentile(const fe_hist_t *h, double p);

/* Samples in the bucket that holds value (clamped as record would). */
FE_API uint64_t fe_hist_count_at(const fe_hist_t *h, uint64_t value);
/* Lowest and highest value of the bucket that holds value (clamped as
 * record would): the range of values indistinguishable from value. */
FE_API uint64_t fe_hist_lowest_equiv(const fe_hist_t *h, uint64_t value);
FE_API uint64_t fe_hist_highest_equiv(const fe_hist_t *h, uint64_t value);

/* Prepares *it to walk h's non-empty buckets in increasing order.  h may
 * be NULL (the walk is empty).  Cannot fail; touches only *it. */
FE_API void fe_hist_iter_init(fe_hist_iter_t *it, const fe_hist_t *h);

/* Advances to the next non-empty bucket and fills it->lowest, highest,
 * count and cumulative.  Returns 1 when it did, 0 at the end (it then stays
 * at the end) or when it is NULL.  Threads as the queries (a walk during recording is not a
 * snapshot).  Wait-free; O(buckets) over a whole walk. */
FE_API int fe_hist_iter_next(fe_hist_iter_t *it);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_HIST_H */
