/*
 * fuzz_fix_map: libFuzzer over examples/fix_gateway/fix_map.c.
 *
 * The input is raw FIX body bytes (tag=value<SOH>...).  The first byte
 * picks the message (even: NewOrderSingle, odd: OrderCancelRequest), the
 * rest goes through fgw_split() and the mapping, exactly as the gateway
 * would hand them over.  Beyond "no crash, no UB, no out-of-bounds read"
 * (ASan, UBSan), it checks what the mapping promises:
 *   - the verdict is one of the four kinds, with a reason and, for the
 *     two reject messages, the tag they name present in (or missing from)
 *     the input as the reason says;
 *   - an accepted order has a ClOrdID, quantity > 0, a known side, type
 *     and time in force, and its price prints and parses back to itself
 *     (fgw_format_price / fgw_parse_price are exact inverses);
 *   - every value parser round-trips on the field bytes it accepted.
 * Build and run: make fuzz-fix-map (FUZZ_SECONDS=600).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fix_map.h"

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c))                                                                  \
      abort();                                                                 \
  } while (0)

static void price_round_trip(int64_t p) {
  char b[32];
  int n = fgw_format_price(p, b, sizeof b);
  CHECK(n > 0);
  int64_t back;
  CHECK(fgw_parse_price(b, (size_t)n, &back) == 0 && back == p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const char *buf = (const char *)data + 1;
  size_t len = size - 1;
  fgw_field_t f[64];
  int n = fgw_split(buf, len, f, 64);
  CHECK(n >= FGW_ERANGE && n <= 64);
  if (n < 0)
    return 0;
  for (int i = 0; i < n; i++) {
    CHECK(f[i].tag > 0 && f[i].val >= buf && f[i].val + f[i].len <= buf + len);
    int64_t v;
    if (fgw_parse_price(f[i].val, f[i].len, &v) == 0)
      price_round_trip(v);
    uint64_t ns;
    (void)fgw_parse_utc(f[i].val, f[i].len, &ns);
  }
  fe_order_t o;
  fgw_verdict_t vd;
  char orig[FE_CLORDID_MAX];
  int kind = data[0] & 1 ? fgw_map_cancel(f, (size_t)n, &o, orig, &vd)
                         : fgw_map_new_order(f, (size_t)n, &o, &vd);
  CHECK(kind == vd.kind && kind >= FGW_OK && kind <= FGW_ORDER_REJECT);
  CHECK(vd.text != NULL);
  if (kind == FGW_SESSION_REJECT) {
    int count;
    int at = fgw_find(f, (size_t)n, vd.tag, &count);
    if (vd.reason == 1)
      CHECK(at < 0); /* required tag missing: really missing */
    else
      CHECK(at >= 0 && (vd.reason != 13 || count > 1));
  }
  if (kind == FGW_BUSINESS_REJECT)
    CHECK(vd.reason == 5 && fgw_find(f, (size_t)n, vd.tag, NULL) < 0);
  if (kind == FGW_OK) {
    CHECK(o.client_order_id[0] != '\0'); /* an idempotency key */
    CHECK(o.side >= FE_SIDE_BUY && o.side <= FE_SIDE_SELL_SHORT);
    price_round_trip(o.price);
    if (!(data[0] & 1)) {
      CHECK(o.quantity > 0);
      CHECK(o.type >= FE_ORD_MARKET && o.type <= FE_ORD_STOP_LIMIT);
      CHECK(o.tif >= FE_TIF_DAY && o.tif <= FE_TIF_GTD);
      CHECK((o.type == FE_ORD_LIMIT || o.type == FE_ORD_STOP_LIMIT) || o.price == 0);
    }
  }
  return 0;
}
