/*
 * fe-audit: verify, read and search a libfinevent audit trail; make keys.
 *
 *   fe-audit verify [--pubkey FILE] DIR   check the hash chain and every
 *                                         checkpoint's signature; name the
 *                                         first bad frame and why
 *   fe-audit dump [--json] DIR            every frame that verifies, oldest
 *                                         first (one JSON object per line
 *                                         with --json)
 *   fe-audit search [--account N] [--clordid ID] [--from NS] [--to NS]
 *                   [--decision NAME] [--json] DIR
 *                                         the records that match all the
 *                                         given filters (times: wall-clock
 *                                         ns since the epoch, inclusive)
 *   fe-audit keygen SECRET PUBLIC         a new Ed25519 key pair, as hex
 *                                         text (SECRET mode 0600)
 *
 * dump and search read only frames that verify: they stop, with the
 * verdict on stderr, at the first bad one.  Nothing here writes to DIR.
 *
 * Exit status: 0 clean; 1 the trail does not verify (or is not a trail:
 * an empty or unrelated directory is never "ok"); 2 a file could not be
 * read or written; 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <finevent/finevent.h>

static int usage(void) {
  fprintf(stderr,
          "usage: fe-audit verify [--pubkey FILE] DIR\n"
          "       fe-audit dump [--json] DIR\n"
          "       fe-audit search [--account N] [--clordid ID] [--from NS] "
          "[--to NS] [--decision NAME] [--json] DIR\n"
          "       fe-audit keygen SECRET PUBLIC\n");
  return 64;
}

/* Reads a hex key of n bytes from path. */
static int read_hex_key(const char *path, uint8_t *out, size_t n) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "fe-audit: %s: %s\n", path, strerror(errno));
    return -1;
  }
  char line[512];
  int ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  size_t len = 0;
  if (!ok || sodium_hex2bin(out, n, line, strcspn(line, "\r\n"), NULL, &len, NULL) != 0 ||
      len != n) {
    fprintf(stderr, "fe-audit: %s: not a %zu-byte hex key\n", path, n);
    return -1;
  }
  return 0;
}

static int write_hex(const char *path, const uint8_t *k, size_t n, mode_t mode) {
  char hex[2 * FE_AUDIT_SECKEY + 2];
  sodium_bin2hex(hex, sizeof hex, k, n);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    fprintf(stderr, "fe-audit: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t len = strlen(hex);
  hex[len] = '\n';
  int bad = write(fd, hex, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0;
  close(fd);
  sodium_memzero(hex, sizeof hex);
  if (bad)
    fprintf(stderr, "fe-audit: writing %s failed\n", path);
  return bad ? -1 : 0;
}

static void put_str(const char *s, size_t cap) {
  putchar('"');
  for (size_t i = 0; i < cap && s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void put_hex(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    printf("%02x", b[i]);
}

typedef struct filter {
  int json, any;
  int has_account, has_clordid, has_decision;
  uint64_t account, from, to;
  uint32_t decision;
  const char *clordid;
  uint64_t shown;
} filter_t;

static int show(const fe_audit_rec_t *r, void *user) {
  filter_t *f = user;
  if (f->any) {
    if (r->type != 1)
      return 0;
    if ((f->has_account && r->account != f->account) ||
        (f->has_decision && r->decision != f->decision) ||
        r->wall_ns < f->from || r->wall_ns > f->to ||
        (f->has_clordid &&
         strncmp(r->client_order_id, f->clordid, FE_CLORDID_MAX) != 0))
      return 0;
  }
  f->shown++;
  if (f->json) {
    printf("{\"seq\":%" PRIu64 ",\"time_ns\":%" PRIu64 ",\"decision\":\"%s\"", r->seq,
           r->wall_ns, fe_audit_decision_name(r->decision));
    if (r->type == 1) {
      printf(",\"event_id\":%" PRIu64 ",\"account\":%" PRIu64 ",\"client_order_id\":",
             r->event_id, r->account);
      put_str(r->client_order_id, FE_CLORDID_MAX);
      printf(",\"stage\":%u,\"reason\":%u,\"trace_id\":\"", r->stage, r->reason);
      put_hex(r->trace_id, 16);
      printf("\",\"span_id\":\"");
      put_hex(r->span_id, 8);
      printf("\",\"detail\":");
      put_str(r->detail, FE_AUDIT_DETAIL_MAX);
    }
    printf("}\n");
  } else {
    printf("%" PRIu64 " %" PRIu64 " %-13s", r->seq, r->wall_ns,
           fe_audit_decision_name(r->decision));
    if (r->type == 1)
      printf(" eid=%" PRIu64 " account=%" PRIu64 " clordid=%.*s stage=%u reason=%u "
             "detail=%.*s",
             r->event_id, r->account, FE_CLORDID_MAX, r->client_order_id, r->stage,
             r->reason, FE_AUDIT_DETAIL_MAX, r->detail);
    putchar('\n');
  }
  return 0;
}

static int report(int rc, const fe_audit_verify_result_t *res, int quiet_ok) {
  if (rc == FE_EIO) {
    fprintf(stderr, "fe-audit: %s\n", res->why);
    return 2;
  }
  if (rc != 0) {
    fprintf(stderr, "fe-audit: BAD (%s) at seq %" PRIu64 " in %s offset %" PRIu64 ": %s\n",
            fe_audit_bad_name(res->bad), res->seq, res->file[0] ? res->file : "-",
            res->offset, res->why);
    return 1;
  }
  if (!quiet_ok) {
    printf("ok: %" PRIu64 " frames, %" PRIu64 " checkpoints, last signed seq %" PRIu64,
           res->frames, res->checkpoints, res->last_signed_seq);
    if (res->last_signed_seq + 1 < res->frames + 1)
      printf(", %" PRIu64 " frames after it not yet signed",
             res->frames - res->last_signed_seq);
    printf("\nhead ");
    put_hex(res->head, FE_AUDIT_HASH);
    putchar('\n');
  }
  return 0;
}

static uint64_t num(const char *s, int *bad) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0' || *s == '-')
    *bad = 1;
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2 || sodium_init() < 0)
    return usage();
  const char *cmd = argv[1];
  if (strcmp(cmd, "keygen") == 0) {
    if (argc != 4)
      return usage();
    uint8_t pk[FE_AUDIT_PUBKEY], sk[FE_AUDIT_SECKEY];
    crypto_sign_keypair(pk, sk);
    int bad = write_hex(argv[2], sk, sizeof sk, 0600) != 0 ||
              write_hex(argv[3], pk, sizeof pk, 0644) != 0;
    sodium_memzero(sk, sizeof sk);
    return bad ? 2 : 0;
  }
  filter_t f = {.to = UINT64_MAX};
  uint8_t pk[FE_AUDIT_PUBKEY];
  const uint8_t *pin = NULL;
  int bad = 0, i = 2;
  for (; i < argc - 1; i++) {
    const char *o = argv[i];
    const char *v = argv[i + 1];
    if (strcmp(o, "--json") == 0) {
      f.json = 1;
      continue;
    }
    if (strcmp(cmd, "verify") == 0 && strcmp(o, "--pubkey") == 0) {
      if (read_hex_key(v, pk, sizeof pk) != 0)
        return 2;
      pin = pk;
    } else if (strcmp(cmd, "search") == 0 && strcmp(o, "--account") == 0) {
      f.account = num(v, &bad), f.has_account = 1;
    } else if (strcmp(cmd, "search") == 0 && strcmp(o, "--clordid") == 0) {
      f.clordid = v, f.has_clordid = 1;
    } else if (strcmp(cmd, "search") == 0 && strcmp(o, "--from") == 0) {
      f.from = num(v, &bad);
    } else if (strcmp(cmd, "search") == 0 && strcmp(o, "--to") == 0) {
      f.to = num(v, &bad);
    } else if (strcmp(cmd, "search") == 0 && strcmp(o, "--decision") == 0) {
      f.decision = fe_audit_decision_parse(v), f.has_decision = 1;
      bad |= f.decision == 0;
    } else {
      return usage();
    }
    i++;
  }
  if (bad || i != argc - 1 || argv[i][0] == '-')
    return usage();
  const char *dir = argv[i];
  fe_audit_verify_result_t res;
  if (strcmp(cmd, "verify") == 0) {
    if (f.json)
      return usage();
    return report(fe_audit_verify_dir(dir, pin, NULL, NULL, &res), &res, 0);
  }
  if (strcmp(cmd, "dump") == 0 || strcmp(cmd, "search") == 0) {
    f.any = strcmp(cmd, "search") == 0;
    int rc = fe_audit_verify_dir(dir, NULL, show, &f, &res);
    fflush(stdout);
    return report(rc, &res, 1);
  }
  return usage();
}
