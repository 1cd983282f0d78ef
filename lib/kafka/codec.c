/*
 * libfinevent-kafka: the wire formats of the orders, outcomes and intents
 * topics (kafka.h documents the layouts).  Fixed sizes, little-endian,
 * every byte checked on decode: this is the code a hostile producer feeds,
 * and test/fuzz/fuzz_kafka_record.c runs it under libFuzzer.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "finevent/kafka.h"
#include "kafka_impl.h"

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* 1..max bytes, then only NULs: 0, else FE_ECORRUPT (garbage after the
 * NUL) or FE_ERANGE (empty). */
static int check_str(const uint8_t *s, size_t max) {
  size_t n = 0;
  while (n < max && s[n] != 0)
    n++;
  for (size_t i = n; i < max; i++)
    if (s[i] != 0)
      return FE_ECORRUPT;
  return n == 0 ? FE_ERANGE : 0;
}

/* The field checks shared by encode and decode. */
static int check_order(uint32_t type, const fe_order_t *o) {
  if (type != FE_EV_NEW_ORDER && type != FE_EV_CANCEL)
    return FE_ERANGE;
  if (o->side < FE_SIDE_BUY || o->side > FE_SIDE_SELL_SHORT)
    return FE_ERANGE;
  if (o->type < FE_ORD_MARKET || o->type > FE_ORD_STOP_LIMIT)
    return FE_ERANGE;
  if (o->tif < FE_TIF_DAY || o->tif > FE_TIF_GTD)
    return FE_ERANGE;
  if (o->quantity <= 0 || o->price < 0)
    return FE_ERANGE;
  if ((o->type == FE_ORD_LIMIT || o->type == FE_ORD_STOP_LIMIT) &&
      o->price == 0)
    return FE_ERANGE;
  if ((o->tif == FE_TIF_GTD) != (o->expire_ns != 0))
    return FE_ERANGE;
  return 0;
}

int fe_kafka_order_encode(uint32_t type, const fe_order_t *o,
                          uint64_t trace_id, void *buf, size_t len) {
  if (o == NULL || buf == NULL)
    return FE_EINVAL;
  if (len < FE_KAFKA_ORDER_BYTES || check_order(type, o) != 0)
    return FE_ERANGE;
  uint8_t id[FE_CLORDID_MAX], sym[FE_SYMBOL_MAX];
  /* Strings are cut at their first NUL and padded, so what goes on the
   * wire is always what the decoder accepts. */
  memset(id, 0, sizeof id);
  memset(sym, 0, sizeof sym);
  size_t n = strnlen(o->client_order_id, FE_CLORDID_MAX);
  memcpy(id, o->client_order_id, n);
  size_t m = strnlen(o->symbol, FE_SYMBOL_MAX);
  memcpy(sym, o->symbol, m);
  if (n == 0 || m == 0)
    return FE_ERANGE;
  uint8_t *p = buf;
  memset(p, 0, FE_KAFKA_ORDER_BYTES);
  memcpy(p, "FEO1", 4);
  p[4] = (uint8_t)type;
  p[5] = (uint8_t)(type >> 8);
  p[6] = o->side;
  p[7] = o->type;
  p[8] = o->tif;
  put64(p + 16, o->account);
  put64(p + 24, (uint64_t)o->quantity);
  put64(p + 32, (uint64_t)o->price);
  put64(p + 40, o->expire_ns);
  put64(p + 48, o->client_ts_ns);
  put64(p + 56, trace_id);
  memcpy(p + 64, id, sizeof id);
  memcpy(p + 96, sym, sizeof sym);
  return FE_KAFKA_ORDER_BYTES;
}

/* The key must be the account in decimal: digits only, no leading zero
 * (except "0" itself), no overflow. */
static int check_key(const uint8_t *k, size_t klen, uint64_t account) {
  if (klen > 20 || (klen > 1 && k[0] == '0'))
    return FE_EMISMATCH;
  uint64_t v = 0;
  for (size_t i = 0; i < klen; i++) {
    if (k[i] < '0' || k[i] > '9')
      return FE_EMISMATCH;
    uint64_t d = (uint64_t)(k[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return FE_EMISMATCH;
    v = v * 10 + d;
  }
  return v == account ? 0 : FE_EMISMATCH;
}

int fe_kafka_order_decode(const void *val, size_t len, const void *key,
                          size_t klen, uint32_t *type, fe_order_t *order,
                          uint64_t *trace_id) {
  if (val == NULL || type == NULL || order == NULL)
    return FE_EINVAL;
  const uint8_t *p = val;
  if (len != FE_KAFKA_ORDER_BYTES)
    return FE_ECORRUPT;
  if (memcmp(p, "FEO1", 4) != 0)
    return FE_EVERSION;
  for (int i = 9; i < 16; i++)
    if (p[i] != 0)
      return FE_ECORRUPT;
  int rc;
  if ((rc = check_str(p + 64, FE_CLORDID_MAX)) != 0 ||
      (rc = check_str(p + 96, FE_SYMBOL_MAX)) != 0)
    return rc;
  fe_order_t o;
  memset(&o, 0, sizeof o);
  uint32_t t = (uint32_t)p[4] | (uint32_t)p[5] << 8;
  o.side = p[6];
  o.type = p[7];
  o.tif = p[8];
  o.account = get64(p + 16);
  o.quantity = (int64_t)get64(p + 24);
  o.price = (int64_t)get64(p + 32);
  o.expire_ns = get64(p + 40);
  o.client_ts_ns = get64(p + 48);
  memcpy(o.client_order_id, p + 64, FE_CLORDID_MAX);
  memcpy(o.symbol, p + 96, FE_SYMBOL_MAX);
  if ((rc = check_order(t, &o)) != 0)
    return rc;
  if (key != NULL && klen != 0 && (rc = check_key(key, klen, o.account)) != 0)
    return rc;
  *order = o;
  *type = t;
  if (trace_id != NULL)
    *trace_id = get64(p + 56);
  return 0;
}

void fe__kafka_outcome_encode(const fe_kafka_outcome_t *o, uint8_t *p) {
  memset(p, 0, FE_KAFKA_OUTCOME_BYTES);
  memcpy(p, "FEU1", 4);
  p[4] = (uint8_t)o->kind;
  p[5] = (uint8_t)o->flags;
  put32(p + 8, (uint32_t)o->partition);
  put32(p + 12, (uint32_t)o->error);
  put64(p + 16, (uint64_t)o->offset);
  put64(p + 24, o->account);
  put64(p + 32, o->fingerprint);
  put64(p + 40, o->completed_ns);
  put64(p + 48, o->trace_id);
  put32(p + 56, (uint32_t)o->outcome.status);
  put32(p + 60, o->outcome.reason);
  put64(p + 64, o->outcome.ref);
  put64(p + 72, (uint64_t)o->outcome.filled_quantity);
  put64(p + 80, (uint64_t)o->outcome.avg_price);
  memcpy(p + 88, o->outcome.venue_order_id, 32);
  memcpy(p + 120, o->client_order_id, FE_CLORDID_MAX);
  memcpy(p + 152, o->outcome.user, 32);
}

int fe_kafka_outcome_decode(const void *val, size_t len,
                            fe_kafka_outcome_t *out) {
  if (val == NULL || out == NULL)
    return FE_EINVAL;
  const uint8_t *p = val;
  if (len != FE_KAFKA_OUTCOME_BYTES)
    return FE_ECORRUPT;
  if (memcmp(p, "FEU1", 4) != 0)
    return FE_EVERSION;
  if ((p[4] != FE_KAFKA_OUT_FINAL && p[4] != FE_KAFKA_OUT_REFUSED) ||
      (p[5] & ~FE_KAFKA_OUT_IN_DOUBT_SENT) != 0 || p[6] != 0 || p[7] != 0)
    return FE_ECORRUPT;
  fe_kafka_outcome_t o;
  memset(&o, 0, sizeof o);
  o.kind = p[4];
  o.flags = p[5];
  o.partition = (int32_t)get32(p + 8);
  o.error = (int32_t)get32(p + 12);
  o.offset = (int64_t)get64(p + 16);
  o.account = get64(p + 24);
  o.fingerprint = get64(p + 32);
  o.completed_ns = get64(p + 40);
  o.trace_id = get64(p + 48);
  o.outcome.status = (int32_t)get32(p + 56);
  o.outcome.reason = get32(p + 60);
  o.outcome.ref = get64(p + 64);
  o.outcome.filled_quantity = (int64_t)get64(p + 72);
  o.outcome.avg_price = (int64_t)get64(p + 80);
  memcpy(o.outcome.venue_order_id, p + 88, 32);
  memcpy(o.client_order_id, p + 120, FE_CLORDID_MAX);
  memcpy(o.outcome.user, p + 152, 32);
  *out = o;
  return 0;
}

void fe__kafka_intent_encode(int32_t partition, int64_t offset,
                             const uint8_t *order_wire, uint8_t *p) {
  memcpy(p, "FEI1", 4);
  put32(p + 4, (uint32_t)partition);
  put64(p + 8, (uint64_t)offset);
  memcpy(p + 16, order_wire, FE_KAFKA_ORDER_BYTES);
}

int fe__kafka_intent_decode(const void *val, size_t len, int32_t *partition,
                            int64_t *offset, uint32_t *type, fe_order_t *o,
                            uint64_t *trace_id) {
  const uint8_t *p = val;
  if (p == NULL || len != FE_KAFKA_INTENT_BYTES)
    return FE_ECORRUPT;
  if (memcmp(p, "FEI1", 4) != 0)
    return FE_EVERSION;
  *partition = (int32_t)get32(p + 4);
  *offset = (int64_t)get64(p + 8);
  return fe_kafka_order_decode(p + 16, FE_KAFKA_ORDER_BYTES, NULL, 0, type, o,
                               trace_id);
}
