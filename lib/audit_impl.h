/* Private to lib/audit*.c and the fe-audit tool: the on-disk frame layout
 * that include/finevent/audit.h documents. */
#ifndef FE_AUDIT_IMPL_H
#define FE_AUDIT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "finevent/audit.h"

#define FEA_MAGIC "FEAUDIT\0"
#define FEA_VERSION 1u
#define FEA_REC 1u
#define FEA_CKPT 2u
#define FEA_HASHED 192 /* bytes of a frame its h covers */
#define FEA_OFF_HASH 192
#define FEA_OFF_KEY 224
#define FEA_OFF_SIG 112
#define FEA_CK_MSG 56
#define FEA_NAME_FMT "audit-%016llx.fea"
#define FEA_NAME_LEN 26 /* "audit-" + 16 + ".fea" */

static inline void fea_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void fea_put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t fea_get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint64_t fea_get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Record r as frame bytes 0..191 (seq given; h and key left to the
 * caller). */
static inline void fea_encode(uint8_t f[FE_AUDIT_FRAME], const fe_audit_rec_t *r,
                              uint32_t type, uint64_t seq) {
  memset(f, 0, FE_AUDIT_FRAME);
  fea_put32(f, type);
  fea_put64(f + 8, seq);
  fea_put64(f + 16, r->wall_ns);
  fea_put64(f + 24, r->event_id);
  fea_put64(f + 32, r->account);
  fea_put32(f + 40, r->stage);
  fea_put32(f + 44, r->decision);
  fea_put32(f + 48, r->reason);
  memcpy(f + 56, r->trace_id, 16);
  memcpy(f + 72, r->span_id, 8);
  memcpy(f + 80, r->client_order_id, FE_CLORDID_MAX);
  memcpy(f + 112, r->detail, FE_AUDIT_DETAIL_MAX);
}

static inline void fea_decode(const uint8_t f[FE_AUDIT_FRAME], fe_audit_rec_t *r) {
  memset(r, 0, sizeof *r);
  r->type = fea_get32(f);
  r->seq = fea_get64(f + 8);
  r->wall_ns = fea_get64(f + 16);
  r->event_id = fea_get64(f + 24);
  r->account = fea_get64(f + 32);
  r->stage = fea_get32(f + 40);
  r->decision = r->type == FEA_CKPT ? FE_AUDIT_CHECKPOINT : fea_get32(f + 44);
  r->reason = fea_get32(f + 48);
  memcpy(r->trace_id, f + 56, 16);
  memcpy(r->span_id, f + 72, 8);
  memcpy(r->client_order_id, f + 80, FE_CLORDID_MAX);
  if (r->type != FEA_CKPT)
    memcpy(r->detail, f + 112, FE_AUDIT_DETAIL_MAX);
}

/* The message a checkpoint signs. */
static inline void fea_ck_msg(uint8_t m[FEA_CK_MSG], uint64_t seq,
                              const uint8_t h_prev[FE_AUDIT_HASH],
                              uint64_t wall_ns) {
  memcpy(m, "FEAUDCK1", 8);
  fea_put64(m + 8, seq);
  memcpy(m + 16, h_prev, FE_AUDIT_HASH);
  fea_put64(m + 48, wall_ns);
}

/* h_out = BLAKE2b-256(h_prev || f[0..191]).  In lib/audit_verify.c. */
void fe__audit_chain(uint8_t h_out[FE_AUDIT_HASH],
                     const uint8_t h_prev[FE_AUDIT_HASH], const uint8_t *f);

/* Whether name is a segment name; *first gets its sequence. */
int fe__audit_segname(const char *name, uint64_t *first);

/* The segment names in dir, sorted by first sequence, in a malloc'd array
 * of FEA_NAME_LEN + 1 strings (*n of them; free the array).  Returns 0,
 * FE_EIO or FE_ENOMEM. */
int fe__audit_list(const char *dir, char (**names)[FEA_NAME_LEN + 1],
                   size_t *n);

#endif /* FE_AUDIT_IMPL_H */
