/*
 * libFuzzer harness for the audit trail's reader and verifier
 * (fe_audit_verifier_*, the code fe-audit verify/dump/search run on files
 * an attacker may have written).
 *
 * Input: byte 0's low bit says whether a public key is pinned (the next
 * 32 bytes); the rest is split into segments at every "\nSEG\n" marker,
 * each fed as one segment file.  The seed corpus (corpus/audit/) holds
 * real trails written by fe_audit, one and two segments, signed.
 *
 * Checks beyond "no crash, no sanitizer report": the verifier's verdict
 * is one of fe_audit_bad_t, every frame it hands over is a record or a
 * checkpoint with the next sequence, and feeding after a failure stays
 * failed.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/audit.h"

typedef struct walk {
  uint64_t next, frames;
} walk_t;

static int on_frame(const fe_audit_rec_t *r, void *user) {
  walk_t *w = user;
  if ((r->type != 1 && r->type != 2) || (w->next != 0 && r->seq != w->next))
    abort();
  (void)fe_audit_decision_name(r->decision);
  w->next = r->seq + 1;
  w->frames++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t *pin = NULL;
  size_t off = 1;
  if ((data[0] & 1) && size >= 33) {
    pin = data + 1;
    off = 33;
  }
  fe_audit_verifier_t v;
  fe_audit_verifier_init(&v, pin);
  walk_t w = {0, 0};
  static const char mark[] = "\nSEG\n";
  int stopped = 0;
  while (off <= size) {
    const uint8_t *p = data + off;
    size_t left = size - off, len = left;
    const uint8_t *m = left >= 5 ? memmem(p, left, mark, 5) : NULL;
    if (m != NULL)
      len = (size_t)(m - p);
    /* A private copy: the verifier must not read past len. */
    uint8_t *seg = malloc(len ? len : 1);
    memcpy(seg, p, len);
    int rc = fe_audit_verifier_feed(&v, "seg", seg, len, on_frame, &w);
    free(seg);
    if (stopped && rc != 1)
      abort(); /* a failed walk stays failed */
    stopped |= rc == 1;
    if (m == NULL)
      break;
    off += len + 5;
  }
  int bad = fe_audit_verifier_end(&v);
  if (bad < 0 || bad > FE_AUDIT_BAD_UNSIGNED || (bad == 0) != (v.res.bad == 0))
    abort();
  if (w.frames != v.res.frames)
    abort();
  (void)fe_audit_bad_name(bad);
  return 0;
}
