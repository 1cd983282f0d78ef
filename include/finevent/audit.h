/*
 * libfinevent: the immutable audit trail.
 *
 * Every decision the order flow takes (a stage accepting, rejecting or
 * amending an order, a dead letter, a redrive or purge, a saga transition,
 * a trading-state, kill-switch, breaker or configuration change) becomes
 * one audit record.  Stages and hosts hand records to fe_audit_append();
 * a writer thread owned by the trail hashes, formats and writes them to
 * append-only segment files and signs checkpoints.  The hand-off copies
 * the record into a bounded lock-free queue: no allocation, lock or system
 * call, so compliance never blocks the order path.
 *
 * What the chain proves, and what it does not.
 *   - Every frame (record or checkpoint) carries h_n = BLAKE2b-256(h_{n-1}
 *     || frame bytes), so a frame cannot be edited, removed, inserted or
 *     moved without breaking every later h.  The chain continues across
 *     restarts and segment rotations (h_0 is 32 zero bytes).
 *   - A hash chain alone proves nothing against someone who can write the
 *     files: they can rewrite the whole tail and recompute every h.  What
 *     pins the past is the signed checkpoint: the writer signs (sequence,
 *     chain hash, time) with an Ed25519 key every N records or T ms and
 *     hands it to the host (on_checkpoint), which should keep it
 *     elsewhere (another machine, a WORM store, the regulator).  A trail
 *     that verifies against a checkpoint kept elsewhere has not changed up
 *     to that checkpoint's sequence.
 *   - Anyone who holds the signing key can rewrite history and sign it
 *     again.  Verification with the trail's own embedded public key only
 *     proves self-consistency; pin the key (fe-audit verify --pubkey).
 *   - Records after the last checkpoint are chained but not yet signed:
 *     cutting them off at a frame boundary is indistinguishable from a
 *     crash before they were written, unless a later exported checkpoint
 *     says otherwise.
 *   - The chain proves what was written, not that it is true: a record is
 *     only as honest as the code that produced it, and a record lost
 *     under FE_AUDIT_FULL_COUNT is not in the chain (its loss is: the
 *     writer appends a FE_AUDIT_LOST record with the count).
 *
 * On-disk format, version 1 (little endian).  Directory: files named
 * "audit-<16 hex digits: first sequence>.fea"; other names are ignored.
 * Each file is a 256-byte header frame then 256-byte frames:
 *
 *   header:  0 "FEAUDIT\0"  8 u32 version (1)  12 u32 frame size (256)
 *           16 u64 first seq  24 u64 created wall ns  32 u8[32] h before
 *           the first frame (the previous segment's last h)  rest zero.
 *   frame:   0 u32 type (1 record, 2 checkpoint)  4 u32 reserved
 *            8 u64 seq (1, 2, ... over records and checkpoints alike)
 *           16 u64 wall ns  24 u64 event id  32 u64 account
 *           40 u32 stage  44 u32 decision  48 u32 reason  52 u32 reserved
 *           56 u8[16] trace id  72 u8[8] span id  80 char[32] client
 *           order id  112 char[FE_AUDIT_DETAIL_MAX] detail (NUL padded)
 *          192 u8[32] h of this frame = BLAKE2b-256(h_prev || bytes 0..191)
 *          224 u8[32] checkpoints: the signer's Ed25519 public key.
 *   checkpoint: event id, account, stage, decision, reason, trace are 0;
 *           bytes 112..175 hold the Ed25519 signature of the 56 bytes
 *           "FEAUDCK1" || u64 seq || h_prev (32) || u64 wall ns,
 *           where seq is the checkpoint's own and h_prev the chain hash of
 *           the frame before it.
 */
#ifndef FINEVENT_AUDIT_H
#define FINEVENT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"
#include "journal.h" /* fe_fsync_t */

#ifdef __cplusplus
extern "C" {
#endif

#define FE_AUDIT_FRAME 256
#define FE_AUDIT_HASH 32         /* BLAKE2b-256 */
#define FE_AUDIT_DETAIL_MAX 80   /* detail text, NUL padded */
#define FE_AUDIT_PUBKEY 32       /* Ed25519 public key */
#define FE_AUDIT_SECKEY 64       /* Ed25519 secret key (libsodium layout) */
#define FE_AUDIT_SIG 64
#define FE_AUDIT_SEGMENT_MIN (16u * FE_AUDIT_FRAME)

/* What a record says happened. */
typedef enum fe_audit_decision {
  FE_AUDIT_ACCEPTED = 1,      /* the event passed every stage */
  FE_AUDIT_REJECTED = 2,      /* stage, reason */
  FE_AUDIT_AMENDED = 3,       /* detail: what changed */
  FE_AUDIT_SENT = 4,
  FE_AUDIT_EXECUTED = 5,
  FE_AUDIT_SETTLED = 6,
  FE_AUDIT_DEAD_LETTERED = 7, /* stage, reason */
  FE_AUDIT_REDRIVEN = 8,
  FE_AUDIT_PURGED = 9,
  FE_AUDIT_SAGA = 10,         /* detail: the transition */
  FE_AUDIT_COMPENSATED = 11,
  FE_AUDIT_TRADING_STATE = 12,
  FE_AUDIT_KILL_SWITCH = 13,
  FE_AUDIT_BREAKER = 14,
  FE_AUDIT_CONFIG = 15,
  FE_AUDIT_NOTE = 16,         /* anything else a host notes */
  FE_AUDIT_OPENED = 17,       /* written by the writer: the trail opened */
  FE_AUDIT_LOST = 18,         /* written by the writer: reason = records
                                 refused under FE_AUDIT_FULL_COUNT since
                                 the previous LOST record */
  FE_AUDIT_CHECKPOINT = 19,   /* a checkpoint frame, as the reader shows it */
  FE_AUDIT_DECISION_MAX = 19
} fe_audit_decision_t;

/* Lower-case name of a decision ("rejected"), "?" if unknown.  Cannot
 * fail, thread-safe. */
FE_API const char *fe_audit_decision_name(uint32_t decision);
/* The decision named s (as fe_audit_decision_name() spells it), or 0. */
FE_API uint32_t fe_audit_decision_parse(const char *s);

/* One record as a producer hands it over (and as a reader returns it). */
typedef struct fe_audit_rec {
  uint64_t wall_ns;  /* CLOCK_REALTIME ns; 0: fe_audit_append stamps it */
  uint64_t seq;      /* set by the writer; ignored on append */
  uint64_t event_id;
  uint64_t account;
  uint32_t stage;    /* the deciding stage's id, or 0 */
  uint32_t decision; /* fe_audit_decision_t */
  uint32_t reason;   /* reason code (FE_REASON_*, or a count for LOST) */
  uint32_t type;     /* reader only: 1 record, 2 checkpoint */
  uint8_t trace_id[16];
  uint8_t span_id[8];
  char client_order_id[FE_CLORDID_MAX]; /* NUL padded, not terminated */
  char detail[FE_AUDIT_DETAIL_MAX];     /* NUL padded, not terminated */
} fe_audit_rec_t;

/* A signed checkpoint, as the writer hands it to on_checkpoint and the
 * verifier reads it. */
typedef struct fe_audit_checkpoint {
  uint64_t seq;                     /* the checkpoint frame's sequence */
  uint64_t wall_ns;
  uint8_t hash[FE_AUDIT_HASH];      /* chain hash of the frame before it */
  uint8_t sig[FE_AUDIT_SIG];
  uint8_t pubkey[FE_AUDIT_PUBKEY];
} fe_audit_checkpoint_t;

/* A full queue is a policy, never a silent drop. */
typedef enum fe_audit_full {
  /* fe_audit_append waits (spin, then yield) until there is room, at most
   * block_ns; then it refuses as FE_AUDIT_FULL_COUNT does. */
  FE_AUDIT_FULL_BLOCK = 0,
  /* fe_audit_append returns FE_EFULL at once and counts the loss; the
   * writer alerts (on_alert) and appends a FE_AUDIT_LOST record carrying
   * the count, so the gap is itself in the signed trail. */
  FE_AUDIT_FULL_COUNT = 1
} fe_audit_full_t;

typedef enum fe_audit_alert {
  FE_AUDIT_ALERT_LOST = 1,   /* n records refused since the last alert */
  FE_AUDIT_ALERT_IO = 2      /* a write or fsync failed (n: -errno); the
                                writer retries on the next batch */
} fe_audit_alert_t;

typedef struct fe_audit fe_audit_t;

typedef struct fe_audit_config {
  const char *dir;          /* segment directory (required); created if
                               missing, one level.  Copied. */
  uint64_t segment_bytes;   /* rotation size, >= FE_AUDIT_SEGMENT_MIN,
                               rounded down to whole frames (default
                               64 MiB) */
  fe_fsync_t fsync;         /* default FE_FSYNC_INTERVAL */
  uint64_t fsync_interval_ns; /* FE_FSYNC_INTERVAL (default 10 ms) */
  uint32_t capacity;        /* queue entries, power of two >= 2 (default
                               16384; 256 bytes each) */
  fe_audit_full_t full;     /* default FE_AUDIT_FULL_BLOCK */
  uint64_t block_ns;        /* FE_AUDIT_FULL_BLOCK's limit (default 10 ms) */
  /* Ed25519 secret key (libsodium's 64-byte layout), copied at create and
   * wiped at destroy.  NULL: no checkpoints (the chain is still written;
   * fe-audit verify --pubkey then fails). */
  const uint8_t *sign_key;
  uint32_t checkpoint_every; /* records between checkpoints (default 1024;
                                0: only by time and at close) */
  uint64_t checkpoint_ns;   /* at most this long between a record and the
                               checkpoint covering it (default 1 s; 0: only
                               by count and at close) */
  uint64_t idle_poll_ns;    /* the writer's sleep when the queue is empty
                               (default 1 ms): appends make no system call,
                               so they cannot wake it */
  /* Writer thread; may call fe_audit_stats() only. */
  void (*on_checkpoint)(const fe_audit_checkpoint_t *ck, void *user);
  void (*on_alert)(fe_audit_alert_t what, int64_t n, void *user);
  void *user;
  uint64_t (*wall_ns)(void *clock_user); /* NULL: fe_clock_realtime_ns */
  void *clock_user;
} fe_audit_config_t;

/* Fills the defaults above (dir NULL).  cfg NULL: no-op. */
FE_API void fe_audit_config_init(fe_audit_config_t *cfg);

/* Opens (continuing its chain) or creates the trail in cfg->dir and starts
 * the writer thread, which first appends a FE_AUDIT_OPENED record.  A torn
 * last frame (a crash mid-write) is cut off; a last whole frame whose hash
 * does not chain is refused.  Returns 0 and *out, or FE_EINVAL (NULL
 * argument, no dir), FE_ERANGE (capacity, segment_bytes), FE_EIO (a
 * system call failed; diag names it), FE_ECORRUPT (the last segment does
 * not continue the chain: run fe-audit verify), FE_EVERSION, FE_ENOMEM,
 * FE_ETHREAD.  On failure nothing is left running or allocated.  One
 * trail per directory: a second open is not detected (do not).  Any
 * thread. */
FE_API int fe_audit_create(const fe_audit_config_t *cfg, fe_audit_t **out,
                           fe_diag_t *diag);

/* Stops the writer after it has written everything appended before the
 * call, writes a final checkpoint (with a key), fsyncs (unless
 * FE_FSYNC_NONE) and frees a.  NULL: no-op.  No append may run
 * concurrently or later. */
FE_API void fe_audit_destroy(fe_audit_t *a);

/* Hands rec to the writer (rec->seq is ignored; wall_ns 0 is stamped
 * now).  Returns 0, FE_EINVAL (a or rec NULL, decision 0 or above
 * FE_AUDIT_DECISION_MAX), FE_EFULL (FE_AUDIT_FULL_COUNT and the queue was
 * full, counted) or FE_ETIMEDOUT (FE_AUDIT_FULL_BLOCK waited block_ns,
 * counted as FE_EFULL is).  Any thread, concurrently.  Lock-free (one
 * compare-and-swap; a copy of 256 bytes); no allocation, lock or system
 * call unless the queue is full under FE_AUDIT_FULL_BLOCK. */
FE_API int fe_audit_append(fe_audit_t *a, const fe_audit_rec_t *rec);

/* fe_audit_append() of a record for ev: its event id (eid: ev->seq or the
 * journal's id), account, client order id and trace context, with stage,
 * decision, reason and detail (NULL: none; cut to FE_AUDIT_DETAIL_MAX).
 * Errors and guarantees as fe_audit_append; ev NULL is FE_EINVAL. */
FE_API int fe_audit_event(fe_audit_t *a, const fe_event_t *ev, uint64_t eid,
                          uint32_t stage, uint32_t decision, uint32_t reason,
                          const char *detail);

/* A host's note: a trading-state, kill-switch, breaker or configuration
 * change, or anything else (decision), about account (0: none), with a
 * text (NULL: none).  As fe_audit_append. */
FE_API int fe_audit_note(fe_audit_t *a, uint32_t decision, uint64_t account,
                         const char *text);

/* Waits until every record appended before the call is written, a
 * checkpoint covers it (with a key) and (unless FE_FSYNC_NONE) it is
 * fsynced.  Returns 0, FE_EINVAL, FE_ETIMEDOUT (timeout_ns passed; the
 * work still happens) or FE_EIO (the writer's last write or fsync
 * failed).  Any thread; blocking (sleeps in steps of 100 us). */
FE_API int fe_audit_flush(fe_audit_t *a, uint64_t timeout_ns);

typedef struct fe_audit_stats {
  uint64_t appended;   /* accepted by fe_audit_append */
  uint64_t lost;       /* refused (FE_EFULL / FE_ETIMEDOUT) */
  uint64_t blocked;    /* appends that found the queue full and waited */
  uint64_t written;    /* records the writer has written (write(2)) */
  uint64_t checkpoints;
  uint64_t last_seq;   /* last frame's sequence */
  uint64_t depth;      /* appended - written: the writer's lag */
  uint64_t io_errors;
} fe_audit_stats_t;

/* Snapshot of the counters (each read on its own, relaxed: the set is not
 * one instant).  Returns 0 or FE_EINVAL.  Any thread, wait-free. */
FE_API int fe_audit_stats(const fe_audit_t *a, fe_audit_stats_t *out);

/* ------------------------------------------------------------ reading */

/* Why verification stopped. */
typedef enum fe_audit_bad {
  FE_AUDIT_OK = 0,
  FE_AUDIT_BAD_EDITED = 1,    /* a frame's bytes do not hash to its h */
  FE_AUDIT_BAD_DELETED = 2,   /* frames (or a segment) are missing */
  FE_AUDIT_BAD_INSERTED = 3,  /* a frame that does not belong */
  FE_AUDIT_BAD_REORDERED = 4, /* frames out of order */
  FE_AUDIT_BAD_TRUNCATED = 5, /* a torn frame or header at the end */
  FE_AUDIT_BAD_SIGNATURE = 6, /* a checkpoint fails its signature, or is
                                 signed by another key */
  FE_AUDIT_BAD_FORMAT = 7,    /* not an audit segment, unknown version,
                                 or no segment at all */
  FE_AUDIT_BAD_UNSIGNED = 8   /* a key was pinned but the trail holds no
                                 checkpoint */
} fe_audit_bad_t;

FE_API const char *fe_audit_bad_name(int bad);

typedef struct fe_audit_verify_result {
  int bad;            /* fe_audit_bad_t */
  uint64_t seq;       /* the first bad frame's expected sequence */
  char file[64];      /* its segment's name ("" when none) */
  uint64_t offset;    /* its byte offset in that file */
  char why[160];      /* human text */
  uint64_t frames;    /* frames that verified */
  uint64_t checkpoints;
  uint64_t last_signed_seq; /* last checkpoint that verified (0: none) */
  uint8_t head[FE_AUDIT_HASH]; /* chain hash after the last good frame */
} fe_audit_verify_result_t;

/* Incremental verifier over segments in memory (the file reader and the
 * fuzzer share it).  pubkey NULL: checkpoints are checked against the key
 * the first checkpoint carries, and a later one signed by another key is
 * FE_AUDIT_BAD_SIGNATURE. */
typedef struct fe_audit_verifier {
  uint64_t next_seq;
  uint8_t h[FE_AUDIT_HASH];
  uint8_t key[FE_AUDIT_PUBKEY];
  int have_key, pinned, started;
  fe_audit_verify_result_t res;
} fe_audit_verifier_t;

/* Starts v (pubkey may be NULL).  Cannot fail. */
FE_API void fe_audit_verifier_init(fe_audit_verifier_t *v,
                                   const uint8_t *pubkey);
/* Feeds the next segment (name: its file name, for reports; may be NULL)
 * of len bytes at buf.  Each frame passed to fn (NULL: none) after it
 * verified; fn returning non-zero stops the walk and is returned.  Returns
 * 0 while everything verified, 1 once v->res.bad is set (every later call
 * returns 1 again).  Cannot fail otherwise; any bytes are safe. */
FE_API int fe_audit_verifier_feed(fe_audit_verifier_t *v, const char *name,
                                  const uint8_t *buf, size_t len,
                                  int (*fn)(const fe_audit_rec_t *r,
                                            void *user),
                                  void *user);
/* Ends the walk: no segment at all is FE_AUDIT_BAD_FORMAT; a pinned key
 * and no checkpoint is FE_AUDIT_BAD_UNSIGNED.  Returns v->res.bad. */
FE_API int fe_audit_verifier_end(fe_audit_verifier_t *v);

/* Verifies the trail in dir (read-only) and calls fn on each frame that
 * verified, oldest first (see fe_audit_verifier_feed).  Returns 0 when
 * the whole trail verified, 1 when it did not (*res says where and why),
 * fn's non-zero value, FE_EINVAL (dir or res NULL) or FE_EIO (the
 * directory or a segment could not be read; res->why says which).  Any
 * thread; may run beside the writer (a frame being written shows as
 * truncated). */
FE_API int fe_audit_verify_dir(const char *dir, const uint8_t *pubkey,
                               int (*fn)(const fe_audit_rec_t *r, void *user),
                               void *user, fe_audit_verify_result_t *res);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_AUDIT_H */
