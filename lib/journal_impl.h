/* The journal's private parts: the on-disk format (encoding, checksums,
 * frame validation) and the recovery walk shared by fe_journal_open() and
 * fe_journal_scan().  See include/finevent/journal.h for the format. */
#ifndef FE_JOURNAL_IMPL_H
#define FE_JOURNAL_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "finevent/bus.h"
#include "finevent/journal.h"

#define JHDR FE_JOURNAL_SEGMENT_HEADER
#define JFRAME FE_JOURNAL_RECORD_HEADER

/* The largest payload a journal with this (checked) config accepts: its
 * frame must fit the group buffer and a segment after its header. */
static inline uint32_t fe__jmax_len(const fe_journal_config_t *cfg) {
  uint64_t room = cfg->segment_bytes - FE_JOURNAL_SEGMENT_HEADER;
  uint64_t frame = room < cfg->buffer_bytes ? room : cfg->buffer_bytes;
  return (uint32_t)((frame - JFRAME) & ~(uint64_t)7u);
}
/* "<16 hex>.fej.tmp" and a NUL. */
#define JNAME_MAX 32

/* ------------------------------------------------------ little endian */

static inline uint16_t fe__le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static inline uint32_t fe__le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t fe__le64(const uint8_t *p) {
  return (uint64_t)fe__le32(p) | (uint64_t)fe__le32(p + 4) << 32;
}
static inline void fe__put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void fe__put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void fe__put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------ framing */

/* Bytes a record of payload length len takes on disk. */
static inline uint64_t fe__jframe_size(uint64_t len) {
  return JFRAME + ((len + 7u) & ~(uint64_t)7u);
}

/* The frame checksum: see the format in journal.h. */
static inline uint64_t fe__jframe_sum(const uint8_t *hdr, const void *payload,
                                      size_t len) {
  return XXH3_64bits_withSeed(payload, len, XXH3_64bits(hdr, 24));
}

/* Encodes a whole frame at out (fe__jframe_size(len) bytes): header,
 * payload, zero padding. */
static inline void fe__jframe_encode(uint8_t *out, uint16_t type, uint64_t lsn,
                                     uint64_t wall_ns, const void *data,
                                     uint32_t len) {
  fe__put32(out, len);
  fe__put16(out + 4, type);
  fe__put16(out + 6, 0);
  fe__put64(out + 8, lsn);
  fe__put64(out + 16, wall_ns);
  if (len != 0)
    memcpy(out + JFRAME, data, len);
  size_t pad = (size_t)(fe__jframe_size(len) - JFRAME - len);
  memset(out + JFRAME + len, 0, pad);
  fe__put64(out + 24, fe__jframe_sum(out, out + JFRAME, len));
}

/* Encodes a segment header into out[JHDR]. */
static inline void fe__jseg_encode(uint8_t *out, uint64_t index,
                                   uint64_t first_lsn, uint64_t created_ns) {
  memset(out, 0, JHDR);
  memcpy(out, FE_JOURNAL_MAGIC, 8); /* the string and its NUL */
  fe__put32(out + 8, FE_JOURNAL_FORMAT_VERSION);
  fe__put32(out + 12, JHDR);
  fe__put64(out + 16, index);
  fe__put64(out + 24, first_lsn);
  fe__put64(out + 32, created_ns);
  fe__put64(out + 56, XXH3_64bits(out, 56));
}

/* "<16 hex>.fej" (tmp 0) or "<16 hex>.fej.tmp" (tmp 1) into buf[JNAME_MAX]. */
void fe__jseg_name(char *buf, uint64_t index, int tmp);

/* Checks the frame at off of a segment's bytes m[0..size) (off < size, 8
 * aligned): 0 and *fsz its size when it is valid, else a positive reason
 * (journal_scan.c's FR_*).  Does not check its lsn.  Cannot fail. */
int fe__jframe_check(const uint8_t *m, uint64_t size, uint64_t off,
                     uint64_t *fsz);

/* Checks the header m[0..JHDR) of segment `index`, file `name` in dir (for
 * messages): 0 and its first lsn and creation time, or FE_ECORRUPT (magic,
 * header size, checksum, index, first lsn 0) or FE_EVERSION, with a
 * message. */
int fe__jseg_check_header(const char *dir, const char *name, uint64_t index,
                          const uint8_t *m, uint64_t *first, uint64_t *created,
                          fe_diag_t *d);

/* ----------------------------------------------------- recovery walk */

/* What the walk learns about each segment (the writer keeps the table). */
typedef struct fe__jseg {
  uint64_t index;
  uint64_t first_lsn;   /* from the header */
  uint64_t last_lsn;    /* first_lsn - 1 while it holds no record */
  uint64_t newest_ns;   /* newest record's wall time; created_ns if none */
  uint64_t end;         /* valid bytes (the file's length after repair) */
} fe__jseg_t;

typedef struct fe__jwalk {
  /* in */
  int dfd;                      /* the directory, open */
  const char *dir;              /* for messages */
  int strict;                   /* torn tail / short segment are errors */
  fe_journal_replay_fn fn;      /* may be NULL */
  void *user;
  uint64_t stop_after;          /* walk no record past this lsn (UINT64_MAX:
                                   all): a replay after a verify pass stops
                                   where the verify pass did */
  int find_hole;                /* fe_journal_truncate_corrupt(): an invalid
                                   record that open would call corruption
                                   (in a segment other than the last, or
                                   followed by a valid one) stops the walk
                                   there and is reported as the hole, not
                                   an error; a torn tail stays a torn tail */
  /* out */
  int stopped;                  /* stop_after or the hole was reached */
  int hole;                     /* find_hole: 1 when one was found */
  uint64_t hole_segment;        /* its segment (then the last in segs) */
  uint64_t hole_offset;         /* its first invalid record's offset */
  const char *hole_why;         /* what was wrong there (static) */
  uint64_t last_listed;         /* highest segment index in the directory
                                   (0: none); the indices are consecutive
                                   when the walk did not fail */
  fe_journal_report_t rep;
  fe__jseg_t *segs;             /* malloc'd, n_segs entries (the short last
                                   segment excluded), owned by the caller */
  size_t n_segs;
  uint64_t *tmp;                /* indices of leftover "*.fej.tmp" files,
                                   malloc'd, n_tmp entries */
  size_t n_tmp;
} fe__jwalk_t;

/* Lists, checks and walks every segment of w->dfd in order, calling w->fn
 * for each valid record, and fills w->rep and w->segs.  Changes nothing on
 * disk.  Returns 0 or the error (message in diag); w's arrays are
 * allocated even on failure: free them with fe__jwalk_free(). */
int fe__jwalk_run(fe__jwalk_t *w, fe_diag_t *diag);
void fe__jwalk_free(fe__jwalk_t *w);

/* Copies what open found about a damaged last record (see "Recovery" in
 * journal.h) into the bus's recovery report, when open cut it off. */
static inline void fe__jrecovery_tail(fe_bus_recovery_t *r,
                                      const fe_journal_report_t *jr) {
  if (!jr->truncated || !jr->tail_corrupt)
    return;
  r->tail_corrupt_lsn = jr->tail_corrupt_lsn;
  _Static_assert(sizeof r->tail_corrupt_msg == FE_JOURNAL_MSG_MAX,
                 "the bus's report holds the journal's message");
  memcpy(r->tail_corrupt_msg, jr->tail_corrupt_msg,
         sizeof r->tail_corrupt_msg);
}

#endif /* FE_JOURNAL_IMPL_H */
