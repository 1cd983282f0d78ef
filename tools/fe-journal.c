/*
 * fe-journal: inspect a libfinevent journal directory; cut a hole out of
 * it on the operator's explicit word.
 *
 *   fe-journal dump [--json] DIR   one line per record, with what the
 *                                  bus's and the saga coordinator's
 *                                  payloads say (see decode())
 *   fe-journal verify DIR          check every segment and record
 *   fe-journal stats DIR           segments, records, bytes, types, tail
 *   fe-journal truncate --dry-run DIR
 *   fe-journal truncate --yes DIR  fe_journal_truncate_corrupt(): cut the
 *                                  journal at its first invalid record
 *                                  (a power-loss hole that makes open
 *                                  refuse it), removing every record
 *                                  after it; --dry-run says what would
 *                                  go and changes nothing
 *   fe-journal help | --help | -h  this usage, on stdout, exit 0
 *   fe-journal --version           the library and journal format versions
 *
 * A DIR that holds no segment file (an empty directory, one of unrelated
 * files, the parent of a journal) is not a journal: every command says so
 * (naming a subdirectory that holds one, if any) and exits 1, rather than
 * report "0 records ... ok" about the wrong place.
 *
 * dump, verify and stats never write to DIR (they take no lock, so they
 * may run beside the process that owns the journal).  truncate is the one
 * subcommand that writes: it takes the writer's lock (refused while the
 * owning process has the journal open), and without --yes it only prints
 * what it would cut and exits 64.
 *
 * Exit status:
 *   0   dump/verify/stats: clean.  truncate: nothing to cut (clean, or a
 *       torn tail / short last segment left for open), or the cut was made
 *       (--yes)
 *   1   corrupt (for truncate: corrupt in a way that is not a hole, which
 *       it refuses), unreadable, not a journal (no segment file in DIR),
 *       locked by a writer, or a failed system call (the precise error on
 *       stderr)
 *   2   dump/verify/stats: only a torn tail or a short last segment, which
 *       the next fe_journal_open() would repair (reported, never repaired
 *       here)
 *   3   truncate --dry-run: there is a hole; nothing was changed
 *   64  usage error, including truncate without --dry-run or --yes
 *   0   help, --help, -h, --version
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include <finevent/finevent.h>
#include <finevent/journal.h>

#include "jrec.h" /* the bus's payload layouts */

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_CORRUPT 1
#define EXIT_TORN 2
#define EXIT_HOLE 3  /* truncate --dry-run: there is something to cut */
#define EXIT_USAGE 64 /* EX_USAGE */
#define HEX_PREFIX 16 /* payload bytes shown */

static void usage(FILE *f) {
  fprintf(f, "usage: fe-journal dump [--json] DIR\n"
             "       fe-journal verify DIR\n"
             "       fe-journal stats DIR\n"
             "       fe-journal truncate --dry-run DIR\n"
             "       fe-journal truncate --yes DIR   (writes: cuts DIR at "
             "its first invalid record)\n"
             "       fe-journal help | --help | --version\n"
             "exit: 0 clean (truncate: nothing to cut, or cut), 1 corrupt, "
             "unreadable or locked, 2 torn tail only (not repaired), "
             "3 truncate --dry-run found a hole, 64 usage\n");
}

/* "2024-05-01T12:34:56.123456789Z" into buf[40]. */
static void format_wall(char *buf, size_t cap, uint64_t ns) {
  time_t sec = (time_t)(ns / 1000000000u);
  struct tm tm;
  if (gmtime_r(&sec, &tm) == NULL) {
    snprintf(buf, cap, "%" PRIu64 "ns", ns);
    return;
  }
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, cap - n, ".%09" PRIu64 "Z", ns % 1000000000u);
}

/* Named library types by name, any other by number. */
static void format_type(char *buf, size_t cap, uint16_t type, int json) {
  const char *name = fe_journal_type_name(type);
  int named = strcmp(name, "HOST") != 0 && strcmp(name, "RESERVED") != 0 &&
              strcmp(name, "INVALID") != 0;
  if (named)
    snprintf(buf, cap, json ? "\"%s\"" : "%s", name);
  else
    snprintf(buf, cap, "%u", (unsigned)type);
}

static void format_hex(char *buf, const fe_journal_record_t *r) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *p = r->data;
  uint32_t n = r->len < HEX_PREFIX ? r->len : HEX_PREFIX;
  for (uint32_t i = 0; i < n; i++) {
    buf[2 * i] = digits[p[i] >> 4];
    buf[2 * i + 1] = digits[p[i] & 15u];
  }
  buf[2 * n] = '\0';
}

/* What the payload of a record of the library's own types says, as
 * "key=value ..." or as JSON members (",\"key\":value..."), into buf.
 * Counts and ranges only: a record holds up to thousands of events.  A
 * payload that does not parse says so ("bad=...") instead of guessing;
 * the process that owns the journal refuses such records at recovery. */
static void decode(char *buf, size_t cap, const fe_journal_record_t *r,
                   int json) {
  const char *q = json ? "\"" : "";
  const char *sep = json ? "," : " ";
  const char *eq = json ? "\":" : "=";
  buf[0] = '\0';
#define KV(fmt, ...)                                                          \
  do {                                                                        \
    size_t used_ = strlen(buf);                                               \
    snprintf(buf + used_, cap - used_, "%s%s" fmt, sep, q, __VA_ARGS__);      \
  } while (0)
  switch (r->type) {
  case FE_JREC_EVENT: {
    jrec_events_t h;
    if (r->len < sizeof h) {
      KV("bad%s\"short\"", eq);
      break;
    }
    memcpy(&h, r->data, sizeof h);
    KV("version%s%u", eq, h.version);
    KV("events%s%u", eq, h.count);
    KV("first_eid%s%" PRIu64, eq, h.first_eid);
    KV("user_len%s%u", eq, h.user_len);
    break;
  }
  case FE_JREC_OUTCOME: {
    jrec_outcomes_t h;
    if (r->len < sizeof h) {
      KV("bad%s\"short\"", eq);
      break;
    }
    memcpy(&h, r->data, sizeof h);
    KV("version%s%u", eq, h.version);
    KV("outcomes%s%u", eq, h.count);
    if (h.version != FE_JREC_OUTCOME_VERSION)
      break;
    uint64_t st[4] = {0, 0, 0, 0}, first = 0, last = 0, keys = 0, runs = 0;
    const uint8_t *p = (const uint8_t *)r->data + sizeof h;
    const uint8_t *end = (const uint8_t *)r->data + r->len;
    for (uint32_t i = 0; i < h.count; i++) {
      jrec_outcome_t o;
      uint32_t events = 0;
      uint32_t size = jrec_out_read(p, (size_t)(end - p), &o, &events);
      if (size == 0) {
        KV("bad%s\"entry %u malformed or overruns\"", eq, i);
        return;
      }
      if (i == 0)
        first = o.eid;
      last = o.eid + events - 1;
      st[o.status >= 1 && o.status <= 3 ? o.status : 0] += events;
      keys += (o.flags & JREC_OUT_KEY) != 0;
      runs += o.flags == JREC_OUT_RUN;
      p += size;
    }
    KV("eids%s%s%" PRIu64 "..%" PRIu64 "%s", eq, q, first, last, q);
    KV("completed%s%" PRIu64, eq, st[FE_IDEM_COMPLETED]);
    KV("rejected%s%" PRIu64, eq, st[FE_IDEM_REJECTED]);
    KV("dead_lettered%s%" PRIu64, eq, st[FE_IDEM_DEAD_LETTERED]);
    KV("host_status%s%" PRIu64, eq, st[0]);
    KV("keys%s%" PRIu64, eq, keys);
    KV("runs%s%" PRIu64, eq, runs);
    break;
  }
  case FE_JREC_INTENT: {
    jrec_intent_t t;
    if (r->len != sizeof t) {
      KV("bad%s\"length %u\"", eq, r->len);
      break;
    }
    memcpy(&t, r->data, sizeof t);
    KV("intent_eid%s%" PRIu64, eq, t.eid);
    break;
  }
  case FE_JREC_DEAD_LETTER: {
    jrec_dlq_t t;
    if (r->len != sizeof t) {
      KV("bad%s\"length %u\"", eq, r->len);
      break;
    }
    memcpy(&t, r->data, sizeof t);
    KV("dlq%s%s%s%s", eq, q, t.op == JREC_DLQ_PURGED ? "purged" : "unknown",
       q);
    KV("eid%s%" PRIu64, eq, t.eid);
    break;
  }
  case FE_JREC_SAGA: {
    fe_saga_rec_t s;
    if (r->len < sizeof s) {
      KV("bad%s\"short\"", eq);
      break;
    }
    memcpy(&s, r->data, sizeof s);
    KV("saga%s%" PRIu64, eq, s.saga_id);
    KV("saga_rec%s%s%s%s", eq, q, fe_saga_rec_type_name(s.type), q);
    KV("state%s%s%s%s", eq, q, fe_saga_state_name(s.state), q);
    KV("step%s%u", eq, s.step);
    KV("attempt%s%u", eq, s.attempt);
    if (s.flags & FE_SAGA_RECF_DURABLE)
      KV("durable%s%u", eq, 1u);
    break;
  }
  default:
    break;
  }
#undef KV
}

static int dump_one(const fe_journal_record_t *r, void *user) {
  int json = *(const int *)user;
  char wall[48], type[16], hex[2 * HEX_PREFIX + 1], dec[512];
  decode(dec, sizeof dec, r, json);
  format_wall(wall, sizeof wall, r->wall_ns);
  format_type(type, sizeof type, r->type, json);
  format_hex(hex, r);
  const char *more = r->len > HEX_PREFIX ? "..." : "";
  if (json)
    printf("{\"lsn\":%" PRIu64 ",\"type\":%s,\"type_id\":%u,\"len\":%" PRIu32
           ",\"segment\":%" PRIu64 ",\"offset\":%" PRIu64
           ",\"wall_ns\":%" PRIu64 ",\"time\":\"%s\",\"hex\":\"%s\"%s}\n",
           r->lsn, type, (unsigned)r->type, r->len, r->segment, r->offset,
           r->wall_ns, wall, hex, dec);
  else
    printf("lsn=%" PRIu64 " type=%s len=%" PRIu32 " at=%" PRIu64 ":%" PRIu64
           " time=%s data=%s%s%s\n",
           r->lsn, type, r->len, r->segment, r->offset, wall, hex, more, dec);
  return 0;
}

typedef struct counts {
  uint64_t by_type[65536];
} counts_t;

static int count_one(const fe_journal_record_t *r, void *user) {
  counts_t *c = user;
  c->by_type[r->type]++;
  return 0;
}

/* 1 when name is a segment file's or a leftover's ("*.fej", "*.fej.tmp"). */
static int is_segment_name(const char *name) {
  size_t n = strlen(name);
  return (n > 4 && strcmp(name + n - 4, ".fej") == 0) ||
         (n > 8 && strcmp(name + n - 8, ".fej.tmp") == 0);
}

/* The first subdirectory of dir that holds a segment file, into buf
 * (empty when none): the operator may have named a journal's parent. */
static void find_journal_below(const char *dir, char *buf, size_t cap) {
  buf[0] = '\0';
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while (buf[0] == '\0' && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    DIR *s = opendir(sub);
    if (s == NULL)
      continue;
    struct dirent *f;
    while ((f = readdir(s)) != NULL)
      if (is_segment_name(f->d_name)) {
        snprintf(buf, cap, "%s", sub);
        break;
      }
    closedir(s);
  }
  closedir(d);
}

/* A walk that succeeded but met no segment file at all: dir is not a
 * journal.  Says so and returns 1; else 0. */
static int no_journal(const char *dir, const fe_journal_report_t *rep) {
  if (rep->segments != 0 || rep->short_segment != 0 || rep->tmp_files != 0)
    return 0;
  char below[4096];
  find_journal_below(dir, below, sizeof below);
  fprintf(stderr, "fe-journal: %s: no journal here (no segment file "
          "*.fej)%s%s%s\n", dir, below[0] ? "; " : "", below,
          below[0] ? " holds one" : "");
  return 1;
}

/* Reports the tail and the error; returns the exit status. */
static int finish(const char *dir, int rc, const fe_diag_t *d,
                  const fe_journal_report_t *rep) {
  if (rc != 0) {
    fprintf(stderr, "fe-journal: %s: %s: %s\n", dir, fe_err_name(rc),
            d->msg[0] ? d->msg : fe_strerror(rc));
    return EXIT_CORRUPT;
  }
  if (no_journal(dir, rep))
    return EXIT_CORRUPT;
  int tail = 0;
  if (rep->tail_corrupt)
    fprintf(stderr, "fe-journal: WARNING: %s; reconcile lsn %" PRIu64
            " from outside\n", rep->tail_corrupt_msg, rep->tail_corrupt_lsn);
  if (rep->torn) {
    fprintf(stderr, "fe-journal: %s: torn tail in segment %" PRIu64
            " at offset %" PRIu64 ": %" PRIu64 " bytes (%s); not repaired: "
            "the next open truncates it\n", dir, rep->torn_segment,
            rep->torn_offset, rep->torn_bytes, rep->torn_why);
    tail = 1;
  }
  if (rep->short_segment != 0) {
    fprintf(stderr, "fe-journal: %s: last segment %" PRIu64 " is %" PRIu64
            " bytes, shorter than its header; not repaired: the next open "
            "removes it\n", dir, rep->short_segment, rep->short_bytes);
    tail = 1;
  }
  return tail ? EXIT_TORN : 0;
}

static int cmd_dump(const char *dir, int json) {
  fe_journal_report_t rep;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_scan(dir, 0, dump_one, &json, &rep, &d);
  fflush(stdout);
  return finish(dir, rc, &d, &rep);
}

static int cmd_verify(const char *dir) {
  fe_journal_report_t rep;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_scan(dir, 0, NULL, NULL, &rep, &d);
  if (rc == 0 && !(rep.segments == 0 && rep.short_segment == 0 &&
                   rep.tmp_files == 0))
    printf("%s: %" PRIu64 " records in %" PRIu64 " segments, lsn %" PRIu64
           "..%" PRIu64 ", %" PRIu64 " bytes: %s\n", dir, rep.records,
           rep.segments, rep.first_lsn, rep.last_lsn, rep.bytes,
           rep.torn || rep.short_segment ? "torn tail" : "ok");
  fflush(stdout);
  return finish(dir, rc, &d, &rep);
}

static int cmd_stats(const char *dir) {
  counts_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "fe-journal: out of memory\n");
    return EXIT_CORRUPT;
  }
  fe_journal_report_t rep;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  int rc = fe_journal_scan(dir, 0, count_one, c, &rep, &d);
  if (rc == 0 && no_journal(dir, &rep)) {
    free(c);
    return EXIT_CORRUPT;
  }
  printf("dir: %s\n", dir);
  printf("segments: %" PRIu64 " (%016" PRIx64 " .. %016" PRIx64 ")\n",
         rep.segments, rep.first_segment, rep.last_segment);
  printf("records: %" PRIu64 "\n", rep.records);
  printf("bytes: %" PRIu64 "\n", rep.bytes);
  printf("first_lsn: %" PRIu64 "\nlast_lsn: %" PRIu64 "\nnext_lsn: %" PRIu64
         "\n", rep.first_lsn, rep.last_lsn, rep.next_lsn);
  printf("types:");
  for (unsigned t = 0; t < 65536; t++) {
    if (c->by_type[t] == 0)
      continue;
    char type[16];
    format_type(type, sizeof type, (uint16_t)t, 0);
    printf(" %s=%" PRIu64, type, c->by_type[t]);
  }
  printf("\n");
  if (rep.torn)
    printf("torn_tail: segment %" PRIu64 " offset %" PRIu64 ", %" PRIu64
           " bytes (%s)\n", rep.torn_segment, rep.torn_offset, rep.torn_bytes,
           rep.torn_why);
  else
    printf("torn_tail: none\n");
  if (rep.tail_corrupt)
    printf("damaged_last_record: lsn %" PRIu64 " (possible loss of an "
           "acknowledged record)\n", rep.tail_corrupt_lsn);
  if (rep.short_segment)
    printf("short_segment: %" PRIu64 " (%" PRIu64 " bytes)\n",
           rep.short_segment, rep.short_bytes);
  printf("tmp_files: %u\n", rep.tmp_files);
  fflush(stdout);
  free(c);
  return finish(dir, rc, &d, &rep);
}

/* What fe_journal_truncate_corrupt() found, for a person. */
static void print_truncate(const char *dir,
                           const fe_journal_truncate_report_t *t) {
  const fe_journal_report_t *w = &t->walk;
  if (!t->hole) {
    printf("%s: no hole: %" PRIu64 " records in %" PRIu64 " segments, lsn %"
           PRIu64 "..%" PRIu64 "; nothing to cut\n", dir, w->records,
           w->segments, w->first_lsn, w->last_lsn);
    if (w->torn)
      printf("%s: torn tail in segment %" PRIu64 " at offset %" PRIu64
             ": %" PRIu64 " bytes (%s); left for the next open, which "
             "truncates it\n", dir, w->torn_segment, w->torn_offset,
             w->torn_bytes, w->torn_why);
    if (w->short_segment != 0)
      printf("%s: last segment %" PRIu64 " is %" PRIu64 " bytes, shorter "
             "than its header; left for the next open, which removes it\n",
             dir, w->short_segment, w->short_bytes);
    return;
  }
  const char *verb = t->truncated ? "cut" : "would cut";
  printf("%s: hole in segment %" PRIu64 " (%016" PRIx64 ".fej) at offset %"
         PRIu64 ": %s\n", dir, t->cut_segment, t->cut_segment,
         t->cut_offset, t->cut_why);
  printf("%s: %s there: %" PRIu64 " bytes discarded, %" PRIu64 " segment%s "
         "removed", dir, verb, t->discarded_bytes, t->removed_segments,
         t->removed_segments == 1 ? "" : "s");
  if (t->removed_segments != 0)
    printf(" (%" PRIu64 "..%" PRIu64 ")", t->first_removed, t->last_removed);
  printf("\n");
  if (t->lost_records != 0)
    printf("%s: %" PRIu64 " valid records after the hole %s lost: lsn %"
           PRIu64 "..%" PRIu64 "\n", dir, t->lost_records,
           t->truncated ? "are" : "would be", t->lost_first_lsn,
           t->lost_last_lsn);
  else
    printf("%s: no valid record after the hole\n", dir);
  printf("%s: kept: %" PRIu64 " records, lsn %" PRIu64 "..%" PRIu64
         "; the next record gets lsn %" PRIu64 "\n", dir, w->records,
         w->first_lsn, w->last_lsn, w->next_lsn);
}

/* mode: 0 no flag (show, then refuse), 1 --dry-run, 2 --yes. */
static int cmd_truncate(const char *dir, int mode) {
  fe_journal_truncate_report_t t;
  fe_diag_t d;
  memset(&d, 0, sizeof d);
  unsigned flags = mode == 2 ? 0 : FE_JOURNAL_TRUNCATE_DRY_RUN;
  int rc = fe_journal_truncate_corrupt(dir, flags, &t, &d);
  if (rc != 0) {
    fprintf(stderr, "fe-journal: %s: %s: %s\n", dir, fe_err_name(rc),
            d.msg[0] ? d.msg : fe_strerror(rc));
    return EXIT_CORRUPT;
  }
  if (no_journal(dir, &t.walk))
    return EXIT_CORRUPT;
  print_truncate(dir, &t);
  fflush(stdout);
  if (mode == 0) {
    fprintf(stderr, "fe-journal: truncate changes %s only with --yes "
            "(nothing was changed); --dry-run to only look\n", dir);
    usage(stderr);
    return EXIT_USAGE;
  }
  return mode == 1 && t.hole ? EXIT_HOLE : 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
                    strcmp(argv[1], "-h") == 0 ||
                    strcmp(argv[1], "help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    printf("fe-journal (libfinevent) %d.%d.%d, journal format version %d\n",
           FE_VERSION_MAJOR, FE_VERSION_MINOR, FE_VERSION_PATCH,
           FE_JOURNAL_FORMAT_VERSION);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "verify") == 0)
    return cmd_verify(argv[2]);
  if (argc == 3 && strcmp(argv[1], "stats") == 0)
    return cmd_stats(argv[2]);
  if (argc == 3 && strcmp(argv[1], "dump") == 0 && argv[2][0] != '-')
    return cmd_dump(argv[2], 0);
  if (argc == 4 && strcmp(argv[1], "dump") == 0 &&
      strcmp(argv[2], "--json") == 0)
    return cmd_dump(argv[3], 1);
  if (argc == 3 && strcmp(argv[1], "truncate") == 0 && argv[2][0] != '-')
    return cmd_truncate(argv[2], 0);
  if (argc == 4 && strcmp(argv[1], "truncate") == 0 &&
      strcmp(argv[2], "--dry-run") == 0)
    return cmd_truncate(argv[3], 1);
  if (argc == 4 && strcmp(argv[1], "truncate") == 0 &&
      strcmp(argv[2], "--yes") == 0)
    return cmd_truncate(argv[3], 2);
  usage(stderr);
  return EXIT_USAGE;
}
