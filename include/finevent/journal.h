/*
 * libfinevent: the durable journal.
 *
 * An append-only, record-agnostic log in a directory of segment files.  The
 * bus's journaller appends ingress events in groups, the execution stage
 * appends "intent to send" records, the outcome path appends outcomes; on
 * restart, opening the journal verifies every byte and replays every valid
 * record, oldest first, to a callback that rebuilds the idempotency table,
 * the dead-letter queue and saga state.  The journal does not interpret
 * payloads: a record is a type, a length and bytes.
 *
 * Sequence numbers.  Every record gets an lsn (log sequence number): the
 * first record ever appended to a directory is lsn 1 and each append takes
 * the next one, with no gaps, across closes, reopens and segment rotations.
 * An append that fails takes no lsn.
 *
 * Group commit.  fe_journal_append() copies a record into an in-memory
 * group buffer; fe_journal_commit() hands the whole group to the kernel in
 * one write and then fsyncs per the policy.  Two marks say how far records
 * are safe; both only grow and both are read lock-free:
 *
 *   written_lsn  every record with lsn <= it was handed to the kernel: it
 *                survives a crash of the process, not of the machine.
 *   durable_lsn  every record with lsn <= it survives a power loss, as far
 *                as the policy promises:
 *                  FE_FSYNC_GROUP     fsync after every write: durable_lsn
 *                                     = written_lsn after each commit.
 *                  FE_FSYNC_INTERVAL  fsync at the first commit (or tick)
 *                                     at least fsync_interval_ns after the
 *                                     previous fsync: durable_lsn lags
 *                                     written_lsn by at most that long
 *                                     while someone commits or ticks.
 *                  FE_FSYNC_NONE      never fsyncs on its own: durable_lsn
 *                                     is written_lsn, which is only
 *                                     PROCESS-CRASH-SAFE.  A power loss may
 *                                     lose or tear any recent record, and
 *                                     may leave the journal refusing to
 *                                     open (see Recovery).
 *   An acknowledgement that means "journaled" should wait for durable_lsn
 *   (fe_journal_wait_durable()).
 *
 * On-disk format, version 1 (a contract: readers of other versions refuse
 * it with FE_EVERSION).  All integers little endian.
 *
 *   Directory: segment files named by 16 lower-case hex digits of their
 *   index and ".fej" (0000000000000001.fej, ...).  Indices are consecutive;
 *   the first present may be above 1 once old segments were retired.
 *   Files with other names are ignored, except "<16 hex>.fej.tmp", a
 *   segment that was being created when the process died: removed at open.
 *
 *   Segment header, FE_JOURNAL_SEGMENT_HEADER (64) bytes at offset 0:
 *      0  u8[8]  magic "FEJOURN\0"
 *      8  u32    format version (1)
 *     12  u32    header size (64)
 *     16  u64    segment index (equals the file name's)
 *     24  u64    first lsn: the lsn the segment's first record has (or
 *                would have, while it holds none)
 *     32  u64    created: wall-clock ns since the epoch
 *     40  u8[16] reserved, zero
 *     56  u64    XXH3-64 (seed 0) of bytes 0..55
 *
 *   Records follow the header back to back, each at an 8-byte aligned
 *   offset; the file ends right after the last record:
 *      0  u32    payload length
 *      4  u16    type (never 0; see FE_JREC_*)
 *      6  u16    flags (0 in version 1; anything else is invalid)
 *      8  u64    lsn
 *     16  u64    wall-clock ns since the epoch, taken at append
 *     24  u64    checksum = XXH3_64bits_withSeed(payload, length,
 *                XXH3_64bits(bytes 0..23 of this frame, 24))
 *     32  payload, then zero bytes up to the next multiple of 8 (checked)
 *   So every byte of a segment is either covered by a checksum or required
 *   to be zero: any flipped bit is detected.
 *
 *   A segment is created as "<index>.fej.tmp" holding its header only,
 *   fsynced, then renamed into place (and the directory fsynced), so a
 *   segment file under its final name always starts with a whole header.
 *   A segment is rotated when the next record would make it longer than
 *   segment_bytes; the old segment is fsynced first (except under
 *   FE_FSYNC_NONE).  XXH3 is a checksum against accidents, not against
 *   forgery.
 *
 * Recovery (fe_journal_open() = recover).  Every segment is checked in
 * index order, every record in file order, before any record is replayed:
 *   - bad magic, bad header size, header checksum mismatch, an index that
 *     differs from the file name's: FE_ECORRUPT naming the file;
 *   - a version other than 1: FE_EVERSION naming the file and the version;
 *   - a gap in segment indices, a segment whose first lsn does not follow
 *     the previous segment's last record, a record whose lsn is not the
 *     next one: FE_ECORRUPT naming the file and the offset;
 *   - an invalid record (short header, length beyond the end of the file,
 *     type 0, flags set, zero-filled, checksum mismatch, non-zero padding):
 *       in a segment other than the last: FE_ECORRUPT;
 *       in the last segment: if a valid record with a greater lsn follows
 *       (searched at every 8-byte offset to the end of the file) the data
 *       is corrupt in the middle: FE_ECORRUPT, and nothing is changed;
 *       otherwise it is a torn tail: a write cut short by a crash.  The
 *       file is truncated there and fsynced, and the report says where and
 *       how many bytes went.  A torn write leaves a short or partial
 *       record; a record that is whole (its header and length fit the
 *       file) but fails its checksum or has non-zero padding reached the
 *       disk and was damaged there, or its pages persisted out of order.
 *       It is cut off the same way, but reported apart and loudly
 *       (report.tail_corrupt, tail_corrupt_lsn, tail_corrupt_msg): under
 *       FE_FSYNC_GROUP that record may have been fsynced and acknowledged,
 *       so an acknowledged order may be lost;
 *   - a last segment shorter than its header (a crash while creating it,
 *     on a file system that does not order the rename): removed and
 *     reported.  If it is the only segment and its index is above 1, the
 *     next lsn cannot be known: FE_ECORRUPT.
 *   Corruption is never repaired by guessing: the journal refuses to open
 *   and the operator decides (fe-journal verify/dump show what is there).
 *   Note that a power loss under FE_FSYNC_NONE or FE_FSYNC_INTERVAL, or in
 *   the middle of a group under FE_FSYNC_GROUP, can persist later pages of
 *   a write without earlier ones; the hole then reads as corruption in the
 *   middle and the journal refuses to open rather than drop the records
 *   after it.  The operator's way forward is fe_journal_truncate_corrupt()
 *   (the tool: `fe-journal truncate --dry-run DIR`, then `--yes`): it cuts
 *   the journal at the first invalid record, removing every record after
 *   it, and reports exactly what went; open then succeeds with the records
 *   before the hole.  It refuses anything that is not a hole (a bad or
 *   foreign segment header, an unknown version, a gap in the segments, an
 *   lsn discontinuity).  Records after the hole that the host had
 *   acknowledged are lost: reconcile them from outside (the venue, the
 *   clients) before going on.
 *
 * Threads.  fe_journal_append(), _commit(), _tick(), _sync(),
 * _wait_durable(), _retire(), _pin(), _stats(), _written_lsn(),
 * _durable_lsn() and _max_record() (and _pin_set(), _pin_release() by
 * the pin's owner) may be called from any thread, concurrently, on one
 * journal.  Open and close may not overlap any other call on the journal.
 * Locking (this is I/O, not the bus's claim path):
 *   - `mu` guards the group buffer: an append holds it to take an lsn and
 *     copy and checksum its record (O(len), no system call, no
 *     allocation);
 *   - `io_mu` serialises writers to the files: a commit holds it for its
 *     write and fsync, holding `mu` only to swap the full group buffer for
 *     the empty second one, so appends continue during the write and the
 *     fsync.  An append that finds the buffer full commits it itself and
 *     so waits for the I/O in progress;
 *   - written_lsn and durable_lsn are atomics read without any lock.
 * Processes: a writer holds an exclusive flock() on the directory; a second
 * writer gets FE_ESTATE.  Read-only opens and fe_journal_scan() take no
 * lock and may run beside a writer (they see a prefix; the record being
 * written may show as a torn tail).
 *
 * Failures.  A failed write or fsync makes the journal failed for good:
 * every later append, commit, tick, sync and retire returns FE_EIO, and
 * fe_journal_wait_durable() returns it to waiters.  An fsync is never
 * retried (after a failed fsync the kernel may have dropped the dirty
 * pages).  Close the journal and reopen it: recovery keeps what reached
 * the disk.  Records that never became durable are lost and their lsns are
 * given again to new records.
 *
 * Lifecycle:
 *     fe_journal_config_init(&cfg);   set dir, policy, sizes
 *     fe_journal_open(&cfg, replay, user, &j, &report, &diag);
 *     fe_journal_append ... fe_journal_commit ... from any threads
 *     fe_journal_pin(j, lsn, &pin); fe_journal_pin_set(...)  other users
 *     fe_journal_retire(j, finished_below, &n);  now and then
 *     fe_journal_close(j);
 */
#ifndef FINEVENT_JOURNAL_H
#define FINEVENT_JOURNAL_H

#include <stdint.h>

#include "bus.h" /* FE_WAIT_FOREVER */
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ format */

#define FE_JOURNAL_FORMAT_VERSION 1
#define FE_JOURNAL_MAGIC "FEJOURN" /* 7 characters and the NUL: 8 bytes */
#define FE_JOURNAL_SEGMENT_HEADER 64u /* bytes */
#define FE_JOURNAL_RECORD_HEADER 32u  /* bytes before each payload */
#define FE_JOURNAL_MSG_MAX 512u       /* report messages, with the NUL */

/* segment_bytes accepted: 4 KiB .. 1 TiB. */
#define FE_JOURNAL_SEGMENT_MIN (UINT64_C(4) << 10)
#define FE_JOURNAL_SEGMENT_MAX (UINT64_C(1) << 40)
/* buffer_bytes accepted: 4 KiB .. 1 GiB. */
#define FE_JOURNAL_BUFFER_MIN (UINT32_C(4) << 10)
#define FE_JOURNAL_BUFFER_MAX (UINT32_C(1) << 30)

/* Record types.  0 is invalid; 1..0x7fff belong to the library (the named
 * ones below, the rest reserved); 0x8000..0xffff are the host's. */
#define FE_JREC_EVENT 1       /* an ingress event, as published */
#define FE_JREC_OUTCOME 2     /* how an event ended */
#define FE_JREC_INTENT 3      /* execution: about to send to the venue */
#define FE_JREC_DEAD_LETTER 4 /* an event entered (or left) the DLQ */
#define FE_JREC_SAGA 5        /* a saga state transition */
#define FE_JREC_CHECKPOINT 6  /* a consistent point: state up to an lsn */
#define FE_JREC_HOST 0x8000   /* first type free for the host */

/* ------------------------------------------------------------- types */

typedef struct fe_journal fe_journal_t;

/* When commits fsync; see "Group commit" above. */
typedef enum fe_fsync {
  FE_FSYNC_NONE = 0,
  FE_FSYNC_INTERVAL = 1,
  FE_FSYNC_GROUP = 2
} fe_fsync_t;

/* Journal configuration.  Initialise with fe_journal_config_init(). */
typedef struct fe_journal_config {
  /* Directory of the segments (required).  Created if missing, one level:
   * its parent must exist.  Copied at open. */
  const char *dir;
  /* A segment is rotated when the next record would take it past this
   * many bytes (header included).  FE_JOURNAL_SEGMENT_MIN..MAX; default
   * 64 MiB. */
  uint64_t segment_bytes;
  fe_fsync_t fsync;            /* default FE_FSYNC_GROUP */
  /* FE_FSYNC_INTERVAL: the least time between fsyncs, measured with the
   * clock below (a clock that steps back counts as "elapsed").  0: every
   * commit that wrote fsyncs.  Default 10 ms. */
  uint64_t fsync_interval_ns;
  /* Group buffer, FE_JOURNAL_BUFFER_MIN..MAX bytes; two are allocated.  A
   * record whose frame (FE_JOURNAL_RECORD_HEADER + length rounded up to 8)
   * exceeds it, or exceeds segment_bytes - FE_JOURNAL_SEGMENT_HEADER, is
   * refused with FE_ERANGE.  Default 1 MiB. */
  uint32_t buffer_bytes;
  /* fe_journal_retire() removes a segment only once its newest record is
   * at least this old (clock below).  Default 24 h. */
  uint64_t retention_ns;
  /* Non-zero: never create, lock, truncate, remove or write a file: open
   * verifies and replays only (appends and retire give FE_ESTATE). */
  int read_only;
  /* Wall clock in ns since the epoch: record times, segment creation
   * times, the fsync interval and retention.  NULL: fe_clock_realtime_ns().
   * Called by appending threads without the journal's locks held and by
   * committers under io_mu: thread-safe, fast, must not call the journal. */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
} fe_journal_config_t;

/* One record, as replayed or scanned. */
typedef struct fe_journal_record {
  uint64_t lsn;
  uint64_t wall_ns;    /* the journal's clock at append */
  uint64_t segment;    /* index of the segment holding it */
  uint64_t offset;     /* of its frame in that file */
  const void *data;    /* the payload: 8-byte aligned, never NULL (even for
                          len 0), read-only, valid during the call only */
  uint32_t len;
  uint16_t type;       /* never 0 */
  uint16_t flags;      /* 0 in format version 1 */
} fe_journal_record_t;

/* Receives each record.  rec is valid during the call only.  Returns 0 to
 * go on; anything else stops the walk, and the open or scan returns that
 * value.  Called on the thread that called open or scan; it must not call
 * into this journal (open has not returned it yet). */
typedef int (*fe_journal_replay_fn)(const fe_journal_record_t *rec,
                                    void *user);

/* What open and scan found (and, for open, repaired).  Filled on success;
 * on failure it holds what was counted up to the error. */
typedef struct fe_journal_report {
  uint64_t segments;       /* segment files with a whole header */
  uint64_t first_segment;  /* lowest index, 0 when none */
  uint64_t last_segment;   /* highest index, 0 when none */
  uint64_t records;        /* valid records (those replayed) */
  uint64_t bytes;          /* valid bytes: headers + valid records */
  uint64_t first_lsn;      /* of the first valid record, 0 when none */
  uint64_t last_lsn;       /* of the last valid record, 0 when none */
  uint64_t next_lsn;       /* the lsn the next append gets */
  /* Torn tail in the last segment (see Recovery). */
  int torn;                /* 1 when there was one */
  int truncated;           /* 1 when open truncated it (never read-only) */
  uint64_t torn_segment;   /* its segment index */
  uint64_t torn_offset;    /* where the first invalid record starts */
  uint64_t torn_bytes;     /* bytes from there to the end of the file */
  const char *torn_why;    /* what was wrong there (static string) */
  /* The torn tail's first invalid record was whole but failed its
   * checksum (or padding): not a write cut short, a damaged record (see
   * Recovery).  torn is 1 as well. */
  int tail_corrupt;          /* 1 when so */
  uint64_t tail_corrupt_lsn; /* the lsn that record had to have */
  char tail_corrupt_msg[FE_JOURNAL_MSG_MAX]; /* "journal: DIR/SEG offset
                                N: the last record (lsn L, B bytes) is
                                whole but has a ...: possible loss of an
                                acknowledged record", or "" */
  /* A last segment shorter than its header. */
  uint64_t short_segment;  /* its index, 0 when none */
  uint64_t short_bytes;    /* its length */
  int short_removed;       /* 1 when open removed it */
  uint32_t tmp_files;      /* "*.fej.tmp" leftovers found (removed by a
                              writer's open) */
} fe_journal_report_t;

/* Counters since open.  Each field is read atomically; the set is not one
 * snapshot. */
typedef struct fe_journal_stats {
  uint64_t appends;        /* records appended */
  uint64_t append_bytes;   /* their frames' bytes */
  uint64_t full_flushes;   /* appends that found the buffer full and
                              committed it first */
  uint64_t writes;         /* group writes (one per non-empty commit) */
  uint64_t write_bytes;
  uint64_t fsyncs;         /* data fsyncs (fdatasync of a segment after a
                              write), by commit, tick, sync, rotation and
                              close; not recovery's, not directory fsyncs */
  uint64_t rotations;      /* segments created after open */
  uint64_t retired;        /* segments removed by fe_journal_retire() */
  uint64_t retire_failures;/* fe_journal_retire() calls that failed with
                              FE_EIO (an unlink or the directory fsync;
                              errno in sys_errno): the segments stay */
  uint64_t segments;       /* segment files now */
  uint64_t first_segment;  /* oldest index now */
  uint64_t active_segment; /* the one being written */
  uint64_t next_lsn;       /* the lsn the next append gets */
  uint64_t written_lsn;
  uint64_t durable_lsn;
  int error;               /* 0, or the sticky code (FE_EIO) */
  int sys_errno;           /* errno of the failed system call, 0 if none */
} fe_journal_stats_t;

/* fe_journal_scan() flags. */
#define FE_JOURNAL_SCAN_STRICT 1u /* a torn tail or a short last segment is
                                     an error (FE_ECORRUPT), not a report */

/* ------------------------------------------------------------- calls */

/* Fills cfg with the defaults: dir NULL, 64 MiB segments, FE_FSYNC_GROUP,
 * 10 ms interval, 1 MiB buffer, 24 h retention, read-write,
 * fe_clock_realtime_ns.  cfg NULL: does nothing.  Cannot fail; thread-safe
 * (touches only cfg). */
FE_API void fe_journal_config_init(fe_journal_config_t *cfg);

/* Checks cfg without touching the file system.
 *   cfg   in: read during the call only.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         field and the value.
 * Returns 0, FE_EINVAL (cfg NULL, dir NULL or empty, unknown fsync
 * policy), FE_ERANGE (dir longer than 3900 bytes, segment_bytes or
 * buffer_bytes outside their limits).  Thread-safe, wait-free. */
FE_API int fe_journal_config_check(const fe_journal_config_t *cfg,
                                   fe_diag_t *diag);

/* Opens (and so recovers) the journal in cfg->dir: checks cfg, creates the
 * directory if missing (not read-only), locks it, removes leftover
 * "*.fej.tmp" files, verifies every segment and record (see Recovery),
 * repairs a torn tail or a short last segment, fsyncs every segment and
 * the directory (unless FE_FSYNC_NONE or read-only), then calls
 * replay(rec, user) for every valid record in lsn order, and returns a
 * journal ready to append after the last one (creating segment 1 in an
 * empty directory).  Allocates both group buffers.
 *   cfg     in: read during the call only (dir is copied; the clock and
 *           clock_user are kept until close).
 *   replay  may be NULL (verify only).  Called only after everything
 *           verified: when open fails for a verification reason it was
 *           never called.  A non-zero return stops the replay and open
 *           returns that value (repairs already made stay made).
 *   user    passed to replay.
 *   out     out: the journal, owned by the caller, freed with
 *           fe_journal_close(); untouched on failure.
 *   report  out, may be NULL: what was found and repaired.
 *   diag    out, may be NULL: on failure, the code and a message naming
 *           the file, the offset, the lsn and what was wrong.
 * Returns 0; FE_EINVAL, FE_ERANGE (as fe_journal_config_check(); out NULL);
 * FE_ENOTFOUND (the directory is missing and read_only, or its parent is
 * missing); FE_ESTATE (another writer holds the directory's lock);
 * FE_ECORRUPT, FE_EVERSION (see Recovery); FE_EIO (a system call failed:
 * the message names it and errno); FE_ENOMEM; or replay's value.  On
 * failure nothing is allocated or locked.  Thread-safe (different
 * journals); blocking (reads every segment; fsyncs). */
FE_API int fe_journal_open(const fe_journal_config_t *cfg,
                           fe_journal_replay_fn replay, void *user,
                           fe_journal_t **out, fe_journal_report_t *report,
                           fe_diag_t *diag);

/* Commits the group (as fe_journal_commit()), fsyncs the active segment
 * whatever the policy, closes the files, drops the lock and frees j.
 * Accepts NULL (returns 0).  No other call on j may be in progress or
 * follow.  Returns 0, or FE_EIO when the last commit or fsync failed (or
 * the journal had failed before): j is freed all the same, and what was
 * not written is lost. */
FE_API int fe_journal_close(fe_journal_t *j);

/* Appends one record to the group buffer: takes the next lsn, stamps the
 * clock, copies and checksums the payload.  The record reaches the kernel
 * at the next commit; when the buffer has no room for it, this call first
 * commits the buffer (write + the policy's fsync) itself.
 *   type  1..0xffff (FE_JREC_* or a host type >= FE_JREC_HOST).
 *   data  len bytes, read during the call only; may be NULL if len is 0.
 *   lsn   out, may be NULL: the record's lsn; untouched on failure.
 * Returns 0; FE_EINVAL (j NULL, type 0, data NULL with len > 0); FE_ERANGE
 * (the frame does not fit the buffer or a segment: see buffer_bytes;
 * lsns exhausted); FE_ESTATE (read-only journal); FE_EIO (the journal
 * failed, now or before); FE_ENOMEM (it had to commit and the commit
 * could not grow the segment table).  On failure nothing is appended and no lsn is
 * taken.  Any thread, concurrently.  Blocking: holds `mu` for O(len); only
 * when the buffer is full does it wait for I/O. */
FE_API int fe_journal_append(fe_journal_t *j, uint16_t type, const void *data,
                             uint32_t len, uint64_t *lsn);

/* Writes the group buffer out with one write (rotating first if the group
 * opens a new segment), publishes written_lsn, then fsyncs per the policy
 * and publishes durable_lsn: GROUP fsyncs when anything is written and not
 * yet fsynced; INTERVAL when that is so and fsync_interval_ns passed since
 * the last fsync; NONE never (durable_lsn follows written_lsn).  With
 * nothing buffered and nothing to fsync it makes no system call.
 * Returns 0; FE_EINVAL (j NULL); FE_EIO (write, fsync or rotation failed,
 * now or before: the journal is failed, see Failures); FE_ENOMEM (the
 * segment table could not grow for a rotation: nothing was written, the
 * group stays buffered, a later commit tries again).  A read-only journal
 * returns 0 and does nothing.  Any thread, concurrently (commits
 * serialise on io_mu); blocking (write, fsync). */
FE_API int fe_journal_commit(fe_journal_t *j);

/* For a host timer: exactly fe_journal_commit().  Under FE_FSYNC_INTERVAL
 * it is what makes written records durable when no one else commits (the
 * interval is checked even when nothing new is buffered).  Returns as
 * fe_journal_commit(). */
FE_API int fe_journal_tick(fe_journal_t *j);

/* fe_journal_commit(), then an fsync if anything written is not durable
 * yet, whatever the policy (also under FE_FSYNC_NONE).  On return 0 every
 * record appended before the call is durable.  Returns as
 * fe_journal_commit().  Any thread; blocking. */
FE_API int fe_journal_sync(fe_journal_t *j);

/* The highest lsn handed to the kernel (0: none since the directory was
 * created; after open, the last recovered lsn).  Never decreases.  0 for
 * NULL.  Any thread; wait-free (one atomic load). */
FE_API uint64_t fe_journal_written_lsn(const fe_journal_t *j);

/* The highest lsn durable under the policy (see Group commit); always
 * <= fe_journal_written_lsn() read after it.  0 for NULL.  Any thread;
 * wait-free. */
FE_API uint64_t fe_journal_durable_lsn(const fe_journal_t *j);

/* Waits until durable_lsn >= lsn.  It does not commit: the journaller (or
 * a timer calling fe_journal_tick()) must.
 *   lsn         an lsn an append returned (0 returns at once).
 *   timeout_ns  how long to wait (0: just check; FE_WAIT_FOREVER: no
 *               limit), CLOCK_MONOTONIC.
 * Returns 0; FE_ETIMEDOUT; FE_ERANGE (lsn was never handed out: it would
 * never come); FE_EINVAL (j NULL); FE_EIO (the journal failed before lsn
 * became durable).  Any thread, any number; blocking (condition variable;
 * woken by every commit that advances durable_lsn). */
FE_API int fe_journal_wait_durable(fe_journal_t *j, uint64_t lsn,
                                   uint64_t timeout_ns);

/* Removes old segments, oldest first, while the oldest one is not the
 * active segment, holds only records with lsn < finished_below_lsn (the
 * host has finished with them: outcomes settled, state checkpointed) and
 * below every pin's lsn (see "pins" below), and
 * its newest record is at least retention_ns old by the clock (a segment
 * without records: its creation time).  Stops at the first segment that
 * does not qualify, so the segments left stay consecutive.  fsyncs the
 * directory after removing (unless FE_FSYNC_NONE).
 *   removed  out, may be NULL: segments removed (also on failure).
 * Returns 0; FE_EINVAL (j NULL); FE_ESTATE (read-only); FE_EIO (the
 * journal has failed; or an unlink or the directory fsync failed: the
 * segments before it are gone, it and the later ones stay, the stats count
 * it in retire_failures with its errno in sys_errno, and the journal does
 * not become failed).  Any thread; blocking (holds io_mu, so it waits for
 * a commit in progress and delays the next). */
FE_API int fe_journal_retire(fe_journal_t *j, uint64_t finished_below_lsn,
                             uint32_t *removed);

/* ------------------------------------------------------------- pins
 *
 * A journal may have several users that each need old records kept: the
 * bus retires with its own low-water mark, the saga coordinator needs the
 * records its replay depends on.  A pin is one user's "keep every record
 * with lsn >= this": fe_journal_retire() removes a segment only if its
 * records are below finished_below_lsn AND below every live pin.  At most
 * FE_JOURNAL_MAX_PINS pins exist at once; they live in the journal (no
 * allocation).  A pin holds records back only from the moment its lsn is
 * stored: a retire running concurrently with fe_journal_pin() or with a
 * fe_journal_pin_set() that lowers a pin may already have removed records
 * below it.  Pins are not persistent: after a reopen, register again.
 */
#define FE_JOURNAL_MAX_PINS 8

/* Registers a pin holding back every record with lsn >= lsn (0 or 1: all
 * of them; UINT64_MAX: nothing, until fe_journal_pin_set()).
 *   pin  out: the pin's id, 0..FE_JOURNAL_MAX_PINS-1; untouched on
 *        failure.
 * Returns 0; FE_EINVAL (j or pin NULL); FE_ESTATE (read-only journal);
 * FE_EFULL (FE_JOURNAL_MAX_PINS pins are registered).  On failure nothing
 * changed.  Any thread; lock-free (one CAS on a word shared by the pins'
 * registrations and releases, retried only when another one changed it),
 * no allocation, no system call. */
FE_API int fe_journal_pin(fe_journal_t *j, uint64_t lsn, uint32_t *pin);

/* Moves pin to lsn (records with lsn >= lsn are kept from now on).
 * Returns 0; FE_EINVAL (j NULL); FE_ERANGE (pin >= FE_JOURNAL_MAX_PINS);
 * FE_ENOTFOUND (pin is not registered).  The pin's owner only (one thread
 * at a time per pin); wait-free (one load, one release store). */
FE_API int fe_journal_pin_set(fe_journal_t *j, uint32_t pin, uint64_t lsn);

/* Releases pin: it holds nothing back any more and its id may be handed
 * out again.  Returns 0, FE_EINVAL, FE_ERANGE, FE_ENOTFOUND (as
 * fe_journal_pin_set()).  The pin's owner; wait-free. */
FE_API int fe_journal_pin_release(fe_journal_t *j, uint32_t pin);

/* Largest payload length fe_journal_append() accepts on j (0 for NULL).
 * Any thread; wait-free. */
FE_API uint32_t fe_journal_max_record(const fe_journal_t *j);

/* Fills *s.  Returns 0 or FE_EINVAL (j or s NULL).  Any thread; wait-free
 * (relaxed atomic loads). */
FE_API int fe_journal_stats(const fe_journal_t *j, fe_journal_stats_t *s);

/* Read-only walk for tools: the same checks as open, streaming: fn is
 * called for each valid record as soon as it verified, so on a corrupt
 * journal it has seen the records before the corruption when the error
 * comes.  A torn tail or a short last segment is reported, never
 * repaired, and is not an error unless FE_JOURNAL_SCAN_STRICT.  Nothing is
 * created, locked or written; runs beside a writer.
 *   dir     the journal's directory.
 *   flags   0 or FE_JOURNAL_SCAN_STRICT.
 *   fn      may be NULL; as for open (a non-zero return stops the scan and
 *           is returned).
 *   report  out, may be NULL.  diag  out, may be NULL.
 * Returns 0; FE_EINVAL (dir NULL or empty, unknown flags); FE_ENOTFOUND
 * (no such directory); FE_ECORRUPT, FE_EVERSION (see Recovery; with
 * FE_JOURNAL_SCAN_STRICT also for a torn tail or a short last segment);
 * FE_EIO; FE_ENOMEM; or fn's value.  Thread-safe; blocking. */
FE_API int fe_journal_scan(const char *dir, unsigned flags,
                           fe_journal_replay_fn fn, void *user,
                           fe_journal_report_t *report, fe_diag_t *diag);

/* ----------------------------------------------------- operator repair */

/* fe_journal_truncate_corrupt() flags. */
#define FE_JOURNAL_TRUNCATE_DRY_RUN 1u /* walk and report; change nothing */

/* What fe_journal_truncate_corrupt() found and (without the dry run) did.
 * Filled on success; on failure it holds what was found up to the error
 * (walk always, the rest once the hole was surveyed). */
typedef struct fe_journal_truncate_report {
  int dry_run;              /* FE_JOURNAL_TRUNCATE_DRY_RUN was given */
  int hole;                 /* 1: open would refuse the journal as corrupt
                               and the cut below applies; 0: nothing to
                               cut (clean, or only what open repairs
                               itself: see walk.torn, walk.short_segment) */
  int truncated;            /* 1: the cut was made (never on a dry run) */
  uint64_t cut_segment;     /* index of the segment with the hole */
  uint64_t cut_offset;      /* offset of its first invalid record: the
                               segment's length after the cut; 0 when the
                               segment is shorter than its header (its
                               header never reached the disk): it is
                               removed whole */
  const char *cut_why;      /* what was wrong there (static string) */
  uint64_t discarded_bytes; /* cut_segment's bytes from cut_offset on, plus
                               the whole length of every removed segment */
  uint64_t lost_records;    /* records after the cut whose checksums verify
                               (counted before cutting): gone after it */
  uint64_t lost_first_lsn;  /* the lowest and highest lsn among them, 0 */
  uint64_t lost_last_lsn;   /* when there are none */
  uint64_t removed_segments;/* segment files removed: those after
                               cut_segment, and cut_segment itself when
                               cut_offset is 0 */
  uint64_t first_removed;   /* their indices, 0 when none */
  uint64_t last_removed;
  /* The walk up to the cut (or the whole journal when there is no hole),
   * as fe_journal_scan() reports it: walk.records and walk.last_lsn are
   * what open replays after the cut, walk.next_lsn the lsn the next
   * append gets.  A torn tail or a short last segment found when there is
   * no hole is reported here and left for open to repair. */
  fe_journal_report_t walk;
} fe_journal_truncate_report_t;

/* Operator repair for a journal that fe_journal_open() refuses because of
 * a hole (see Recovery): walks the journal as open does and, at the FIRST
 * invalid record in any segment, cuts it there: truncates that segment at
 * that record, removes every later segment file (newest first), fsyncs
 * the directory and the truncated segment.  Before cutting it counts what
 * goes (report).  A clean journal, or one whose only fault is a torn tail
 * or a short last segment, is left untouched (report->hole 0): open
 * repairs those itself.  Takes the writer's flock for the whole call, dry
 * run included, so the answer is not racing a writer.
 *   dir     the journal's directory.
 *   flags   0 or FE_JOURNAL_TRUNCATE_DRY_RUN (fill the report, change
 *           nothing).
 *   report  out, may be NULL.  diag  out, may be NULL: on failure, the
 *           code and a message naming the file and what was wrong.
 * Returns 0 (also when there was nothing to cut); FE_EINVAL (dir NULL or
 * empty, unknown flags); FE_ENOTFOUND (no such directory); FE_ESTATE (a
 * writer holds the journal: close it first); FE_ECORRUPT, FE_EVERSION
 * (something that is not a hole, before the hole or in a segment it would
 * remove: a bad magic, header size, header checksum or index, an unknown
 * version, a gap in the segment indices, an lsn discontinuity, the first
 * segment shorter than its header with others after it: nothing before
 * it to keep): nothing is changed;
 * FE_EIO (a system call failed: the message names it; when a removal or
 * the truncation failed part way, the segments after the one named are
 * gone and running it again finishes the cut); FE_ENOMEM.  "*.fej.tmp"
 * leftovers are left for open.  Thread-safe; blocking (reads every
 * segment; fsyncs). */
FE_API int fe_journal_truncate_corrupt(const char *dir, unsigned flags,
                                       fe_journal_truncate_report_t *report,
                                       fe_diag_t *diag);

/* "EVENT", "OUTCOME", "INTENT", "DEAD_LETTER", "SAGA", "CHECKPOINT" for
 * the named types, "HOST" for 0x8000 and up, "INVALID" for 0, "RESERVED"
 * for the library's unnamed ones.  Static string; cannot fail. */
FE_API const char *fe_journal_type_name(uint16_t type);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_JOURNAL_H */
