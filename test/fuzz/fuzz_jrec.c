/*
 * fuzz_jrec: the decoders of the records the bus and the saga coordinator
 * journal: bus events and outcomes (lib/jrec.h: jrec_ev_decode,
 * jrec_out_read and the parts that follow an outcome), and saga records
 * (fe_saga_replay(), then the coordinator's open, which re-arms what the
 * records left: tokens, timers, in-doubt steps).
 *
 * Input: a selector byte, then the payload.
 *   0  an FE_JREC_EVENT payload: its header and every entry
 *   1  an FE_JREC_OUTCOME payload: its header and every entry
 *   2  one saga record: u32 len, then the record
 *   3  saga records in sequence: (u32 len, record)...
 * Selector bit 0x80 (saga records): recompute each record's checksum
 * first, so that the fuzzer gets past it.
 *
 * Checked beyond "no crash": an event entry decoded, encoded again and
 * decoded again gives the same words and user bytes; an outcome entry's
 * size covers the parts its flags name.
 */
#include "fuzz_util.h"
#include "fuzz_rig.h"

#include "jrec.h"

#define USER_MAX 4096

static void events(const uint8_t *p, size_t n) {
  jrec_events_t h;
  if (n < sizeof h)
    return;
  memcpy(&h, p, sizeof h);
  if (h.version != FE_JREC_BUS_VERSION || h.user_len > USER_MAX)
    return;
  static uint8_t user[USER_MAX], user2[USER_MAX];
  static uint8_t again[JREC_EV_MAX(USER_MAX) + JREC_EV_SLACK];
  size_t off = sizeof h;
  for (uint32_t i = 0; i < h.count; i++) {
    jrec_event_t r, r2;
    uint32_t used = jrec_ev_decode(p + off, n - off, h.user_len, &r, user);
    if (used == 0)
      return;
    if (used > n - off)
      abort();
    off += used;
    fe_event_t ev;
    memcpy(&ev, r.ev, sizeof ev);
    uint64_t tail[JREC_EV_TAIL];
    memcpy(tail, (const uint8_t *)&r + sizeof(fe_event_t), sizeof tail);
    uint32_t len = jrec_ev_encode(again, &ev, tail, user, h.user_len);
    if (len > JREC_EV_MAX(h.user_len) ||
        jrec_ev_decode(again, len, h.user_len, &r2, user2) != len ||
        memcmp(&r, &r2, sizeof r) != 0 ||
        memcmp(user, user2, h.user_len) != 0)
      abort();
  }
}

static void outcomes(const uint8_t *p, size_t n) {
  jrec_outcomes_t h;
  if (n < sizeof h)
    return;
  memcpy(&h, p, sizeof h);
  if (h.version != FE_JREC_OUTCOME_VERSION || h.user_len > USER_MAX)
    return;
  size_t off = sizeof h;
  for (uint32_t i = 0; i < h.count && off < n; i++) {
    jrec_outcome_t o;
    uint32_t events = 0;
    uint32_t size = jrec_out_read(p + off, n - off, &o, &events);
    if (size == 0)
      return;
    if (size > n - off || events == 0)
      abort();
    if (o.flags != JREC_OUT_RUN) { /* read the parts as recovery does */
      const uint8_t *q = p + off + sizeof o;
      jrec_out_key_t k;
      fe_idem_outcome_t det;
      jrec_out_dl_t dl;
      jrec_event_t ev;
      if (o.flags & JREC_OUT_KEY) {
        memcpy(&k, q, sizeof k);
        q += sizeof k;
      }
      if (o.flags & JREC_OUT_DETAIL) {
        memcpy(&det, q, sizeof det);
        q += sizeof det;
      }
      if (o.flags & JREC_OUT_DL) {
        memcpy(&dl, q, sizeof dl);
        q += sizeof dl;
        memcpy(&ev, q, sizeof ev);
        q += sizeof ev;
      }
      if (q > p + off + size)
        abort();
    }
    off += size;
  }
}

static uint64_t now = 1;
static uint64_t now_fn(void *u) { (void)u; return now; }
static uint64_t wall_fn(void *u) { (void)u; return UINT64_C(1) << 60; }

static void fix_sum(uint8_t *rec, uint32_t len) {
  fe_saga_rec_t h;
  if (len < sizeof h)
    return;
  memcpy(&h, rec, sizeof h);
  if (h.len > len)
    return;
  h.checksum = 0;
  memcpy(rec, &h, sizeof h);
  h.checksum = XXH3_64bits(rec, h.len);
  memcpy(rec, &h, sizeof h);
}

static void sagas(const uint8_t *p, size_t n, int many, int fix) {
  fe_saga_coord_t *c = NULL;
  if (fz_saga_create(&c, now_fn, wall_fn) != 0)
    abort();
  size_t off = 0;
  int applied = 0;
  while (n - off >= 4) {
    uint32_t len;
    memcpy(&len, p + off, 4);
    off += 4;
    if (len > n - off)
      len = (uint32_t)(n - off);
    uint8_t *rec = malloc(len ? len : 1);
    memcpy(rec, p + off, len);
    if (fix)
      fix_sum(rec, len);
    int rc = fe_saga_replay(c, rec, len);
    free(rec);
    if (rc == 0)
      applied++;
    else if (rc > 0 || rc <= FE_ERRNO_END)
      abort(); /* not a code of the list */
    off += len;
    if (!many)
      break;
  }
  if (applied != 0)
    for (int i = 0; i < 4; i++) { /* open, then run what was re-armed */
      now += 1000000;
      if (fe_saga_poll(c, 16) < 0)
        break;
    }
  fe_saga_stats_t st;
  fe_saga_stats(c, &st);
  fe_saga_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  switch (data[0] & 0x7f) {
  case 0: events(p, n); break;
  case 1: outcomes(p, n); break;
  case 2: sagas(p, n, 0, data[0] & 0x80); break;
  case 3: sagas(p, n, 1, data[0] & 0x80); break;
  default: break;
  }
  return 0;
}
