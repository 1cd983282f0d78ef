/*
 * The audit trail's reader: chain hashing, segment names and the verifier
 * that fe-audit, the tests and the fuzzer share.  Any bytes are safe input.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_impl.h"
#include "internal.h"

static const char *const decision_names[] = {
    [FE_AUDIT_ACCEPTED] = "accepted",
    [FE_AUDIT_REJECTED] = "rejected",
    [FE_AUDIT_AMENDED] = "amended",
    [FE_AUDIT_SENT] = "sent",
    [FE_AUDIT_EXECUTED] = "executed",
    [FE_AUDIT_SETTLED] = "settled",
    [FE_AUDIT_DEAD_LETTERED] = "dead_lettered",
    [FE_AUDIT_REDRIVEN] = "redriven",
    [FE_AUDIT_PURGED] = "purged",
    [FE_AUDIT_SAGA] = "saga",
    [FE_AUDIT_COMPENSATED] = "compensated",
    [FE_AUDIT_TRADING_STATE] = "trading_state",
    [FE_AUDIT_KILL_SWITCH] = "kill_switch",
    [FE_AUDIT_BREAKER] = "breaker",
    [FE_AUDIT_CONFIG] = "config",
    [FE_AUDIT_NOTE] = "note",
    [FE_AUDIT_OPENED] = "opened",
    [FE_AUDIT_LOST] = "lost",
    [FE_AUDIT_CHECKPOINT] = "checkpoint",
};

const char *fe_audit_decision_name(uint32_t d) {
  return d >= 1 && d <= FE_AUDIT_DECISION_MAX ? decision_names[d] : "?";
}

uint32_t fe_audit_decision_parse(const char *s) {
  if (s == NULL)
    return 0;
  for (uint32_t d = 1; d <= FE_AUDIT_DECISION_MAX; d++)
    if (strcmp(s, decision_names[d]) == 0)
      return d;
  return 0;
}

const char *fe_audit_bad_name(int bad) {
  static const char *const n[] = {"ok",        "edited",    "deleted",
                                  "inserted",  "reordered", "truncated",
                                  "bad signature", "not an audit trail",
                                  "unsigned"};
  return bad >= 0 && bad <= FE_AUDIT_BAD_UNSIGNED ? n[bad] : "?";
}

void fe__audit_chain(uint8_t out[FE_AUDIT_HASH], const uint8_t prev[FE_AUDIT_HASH],
                     const uint8_t *f) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, FE_AUDIT_HASH);
  crypto_generichash_update(&st, prev, FE_AUDIT_HASH);
  crypto_generichash_update(&st, f, FEA_HASHED);
  crypto_generichash_final(&st, out, FE_AUDIT_HASH);
}

int fe__audit_segname(const char *name, uint64_t *first) {
  if (strlen(name) != FEA_NAME_LEN || strncmp(name, "audit-", 6) != 0 ||
      strcmp(name + 22, ".fea") != 0)
    return 0;
  uint64_t v = 0;
  for (int i = 6; i < 22; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (uint64_t)d;
  }
  *first = v;
  return 1;
}

static int by_name(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b); /* fixed-width hex */
}

int fe__audit_list(const char *dir, char (**names)[FEA_NAME_LEN + 1], size_t *n) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return FE_EIO;
  size_t cap = 16, k = 0;
  char(*v)[FEA_NAME_LEN + 1] = malloc(cap * sizeof *v);
  struct dirent *e;
  uint64_t first;
  while (v != NULL && (e = readdir(d)) != NULL) {
    if (!fe__audit_segname(e->d_name, &first))
      continue;
    if (k == cap) {
      void *nv = realloc(v, 2 * cap * sizeof *v);
      if (nv == NULL) {
        free(v);
        v = NULL;
        break;
      }
      v = nv;
      cap *= 2;
    }
    memcpy(v[k++], e->d_name, FEA_NAME_LEN + 1);
  }
  closedir(d);
  if (v == NULL)
    return FE_ENOMEM;
  qsort(v, k, sizeof *v, by_name);
  *names = v;
  *n = k;
  return 0;
}

void fe_audit_verifier_init(fe_audit_verifier_t *v, const uint8_t *pubkey) {
  memset(v, 0, sizeof *v);
  v->next_seq = 1;
  if (pubkey != NULL) {
    memcpy(v->key, pubkey, FE_AUDIT_PUBKEY);
    v->have_key = v->pinned = 1;
  }
}

__attribute__((format(printf, 6, 7))) static int
fail(fe_audit_verifier_t *v, int bad, const char *name, uint64_t off,
     uint64_t seq, const char *fmt, ...) {
  v->res.bad = bad;
  v->res.seq = seq;
  v->res.offset = off;
  snprintf(v->res.file, sizeof v->res.file, "%s", name ? name : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->res.why, sizeof v->res.why, fmt, ap);
  va_end(ap);
  return 1;
}

/* The frame at f does not continue the chain (expected seq e, hash h):
 * names why from its sequence and the frame after it (nx, or NULL). */
static int classify(fe_audit_verifier_t *v, const char *name, uint64_t off,
                    const uint8_t *f, const uint8_t *nx) {
  uint64_t e = v->next_seq, s = fea_get64(f + 8);
  uint8_t h[FE_AUDIT_HASH];
  if (nx != NULL) {
    fe__audit_chain(h, v->h, nx);
    if (fea_get64(nx + 8) == e && memcmp(h, nx + FEA_OFF_HASH, FE_AUDIT_HASH) == 0 &&
        s > e)
      return fail(v, FE_AUDIT_BAD_REORDERED, name, off, e,
                  "seq %" PRIu64 " comes after seq %" PRIu64, e, s);
    if (fea_get64(nx + 8) == e && memcmp(h, nx + FEA_OFF_HASH, FE_AUDIT_HASH) == 0)
      return fail(v, FE_AUDIT_BAD_INSERTED, name, off, e,
                  "a frame claiming seq %" PRIu64 " was inserted before seq %" PRIu64,
                  s, e);
  }
  if (s == e)
    return fail(v, FE_AUDIT_BAD_EDITED, name, off, e,
                "seq %" PRIu64 " was edited: its bytes do not hash to the chain", e);
  if (nx != NULL && fea_get64(nx + 8) == e)
    return fail(v, FE_AUDIT_BAD_REORDERED, name, off, e,
                "seq %" PRIu64 " comes after seq %" PRIu64, e, s);
  if (nx != NULL && fea_get64(nx + 8) == e + 1)
    return fail(v, FE_AUDIT_BAD_EDITED, name, off, e,
                "seq %" PRIu64 " was edited (its sequence reads %" PRIu64 ")", e, s);
  if (s > e)
    return fail(v, FE_AUDIT_BAD_DELETED, name, off, e,
                "seq %" PRIu64 "..%" PRIu64 " deleted (next frame is seq %" PRIu64 ")",
                e, s - 1, s);
  return fail(v, FE_AUDIT_BAD_INSERTED, name, off, e,
              "a frame claiming seq %" PRIu64 " stands where seq %" PRIu64 " should", s, e);
}

static int check_ckpt(fe_audit_verifier_t *v, const char *name, uint64_t off,
                      const uint8_t *f) {
  uint64_t s = fea_get64(f + 8);
  const uint8_t *key = f + FEA_OFF_KEY;
  if (v->have_key && memcmp(key, v->key, FE_AUDIT_PUBKEY) != 0)
    return fail(v, FE_AUDIT_BAD_SIGNATURE, name, off, s,
                "checkpoint seq %" PRIu64 " is signed by another key%s", s,
                v->pinned ? " than the pinned one" : " than the trail's first");
  uint8_t m[FEA_CK_MSG];
  fea_ck_msg(m, s, v->h, fea_get64(f + 16));
  if (crypto_sign_verify_detached(f + FEA_OFF_SIG, m, sizeof m, key) != 0)
    return fail(v, FE_AUDIT_BAD_SIGNATURE, name, off, s,
                "checkpoint seq %" PRIu64 ": bad signature", s);
  if (!v->have_key) {
    memcpy(v->key, key, FE_AUDIT_PUBKEY);
    v->have_key = 1;
  }
  v->res.checkpoints++;
  v->res.last_signed_seq = s;
  return 0;
}

int fe_audit_verifier_feed(fe_audit_verifier_t *v, const char *name,
                           const uint8_t *buf, size_t len,
                           int (*fn)(const fe_audit_rec_t *, void *), void *user) {
  if (v->res.bad)
    return 1;
  v->started = 1;
  if (len < FE_AUDIT_FRAME)
    return fail(v, FE_AUDIT_BAD_TRUNCATED, name, 0, v->next_seq,
                "segment header torn (%zu bytes)", len);
  if (memcmp(buf, FEA_MAGIC, 8) != 0)
    return fail(v, FE_AUDIT_BAD_FORMAT, name, 0, v->next_seq,
                "not an audit segment (bad magic)");
  if (fea_get32(buf + 8) != FEA_VERSION || fea_get32(buf + 12) != FE_AUDIT_FRAME)
    return fail(v, FE_AUDIT_BAD_FORMAT, name, 0, v->next_seq,
                "unknown format version %u / frame size %u", fea_get32(buf + 8),
                fea_get32(buf + 12));
  uint64_t first = fea_get64(buf + 16);
  if (first > v->next_seq)
    return fail(v, FE_AUDIT_BAD_DELETED, name, 0, v->next_seq,
                "seq %" PRIu64 "..%" PRIu64 " deleted (segment starts at %" PRIu64 ")",
                v->next_seq, first - 1, first);
  if (first < v->next_seq)
    return fail(v, FE_AUDIT_BAD_INSERTED, name, 0, v->next_seq,
                "segment starting at seq %" PRIu64 " overlaps the chain (expected %" PRIu64 ")",
                first, v->next_seq);
  if (memcmp(buf + 32, v->h, FE_AUDIT_HASH) != 0)
    return fail(v, FE_AUDIT_BAD_EDITED, name, 0, v->next_seq,
                "segment header's previous hash does not match the chain");
  size_t off = FE_AUDIT_FRAME;
  for (; off + FE_AUDIT_FRAME <= len; off += FE_AUDIT_FRAME) {
    const uint8_t *f = buf + off;
    const uint8_t *nx = off + 2 * FE_AUDIT_FRAME <= len ? f + FE_AUDIT_FRAME : NULL;
    uint8_t h[FE_AUDIT_HASH];
    fe__audit_chain(h, v->h, f);
    uint32_t type = fea_get32(f);
    if (fea_get64(f + 8) != v->next_seq ||
        memcmp(h, f + FEA_OFF_HASH, FE_AUDIT_HASH) != 0)
      return classify(v, name, off, f, nx);
    if (type != FEA_REC && type != FEA_CKPT)
      return fail(v, FE_AUDIT_BAD_FORMAT, name, off, v->next_seq,
                  "seq %" PRIu64 ": unknown frame type %u", v->next_seq, type);
    if (type == FEA_CKPT && check_ckpt(v, name, off, f))
      return 1;
    memcpy(v->h, h, FE_AUDIT_HASH);
    memcpy(v->res.head, h, FE_AUDIT_HASH);
    v->next_seq++;
    v->res.frames++;
    if (fn != NULL) {
      fe_audit_rec_t r;
      fea_decode(f, &r);
      int rc = fn(&r, user);
      if (rc != 0)
        return rc;
    }
  }
  if (off != len)
    return fail(v, FE_AUDIT_BAD_TRUNCATED, name, off, v->next_seq,
                "seq %" PRIu64 " torn: %zu of %d bytes", v->next_seq, len - off,
                FE_AUDIT_FRAME);
  return 0;
}

int fe_audit_verifier_end(fe_audit_verifier_t *v) {
  if (v->res.bad)
    return v->res.bad;
  if (!v->started)
    fail(v, FE_AUDIT_BAD_FORMAT, NULL, 0, 1, "no audit segment");
  else if (v->pinned && v->res.checkpoints == 0)
    fail(v, FE_AUDIT_BAD_UNSIGNED, NULL, 0, v->next_seq,
         "a key is pinned but the trail holds no checkpoint");
  return v->res.bad;
}

/* Reads a whole file; *buf malloc'd. */
static int slurp(const char *path, uint8_t **buf, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return FE_EIO;
  struct stat st;
  uint8_t *b = NULL;
  size_t n = 0;
  if (fstat(fd, &st) == 0 && (b = malloc((size_t)st.st_size + 1)) != NULL) {
    while (n < (size_t)st.st_size) {
      ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
      if (r <= 0)
        break;
      n += (size_t)r;
    }
  }
  close(fd);
  if (b == NULL)
    return FE_EIO;
  *buf = b;
  *len = n;
  return 0;
}

int fe_audit_verify_dir(const char *dir, const uint8_t *pubkey,
                        int (*fn)(const fe_audit_rec_t *, void *), void *user,
                        fe_audit_verify_result_t *res) {
  if (dir == NULL || res == NULL)
    return FE_EINVAL;
  if (sodium_init() < 0)
    return FE_EIO;
  fe_audit_verifier_t v;
  fe_audit_verifier_init(&v, pubkey);
  char(*names)[FEA_NAME_LEN + 1] = NULL;
  size_t n = 0;
  int rc = fe__audit_list(dir, &names, &n);
  if (rc != 0) {
    memset(res, 0, sizeof *res);
    snprintf(res->why, sizeof res->why, "cannot read directory %s: %s", dir,
             strerror(errno));
    res->bad = FE_AUDIT_BAD_FORMAT;
    return rc;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    uint8_t *buf;
    size_t len;
    if (slurp(path, &buf, &len) != 0) {
      fail(&v, FE_AUDIT_BAD_FORMAT, names[i], 0, v.next_seq, "cannot read %s: %s",
           names[i], strerror(errno));
      *res = v.res;
      free(names);
      return FE_EIO;
    }
    rc = fe_audit_verifier_feed(&v, names[i], buf, len, fn, user);
    free(buf);
  }
  free(names);
  if (rc != 0 && !v.res.bad) { /* fn stopped the walk */
    *res = v.res;
    return rc;
  }
  int bad = fe_audit_verifier_end(&v);
  *res = v.res;
  return bad ? 1 : 0;
}
