/*
 * test_fix_map: the FIX gateway's mapping (examples/fix_gateway/fix_map.c):
 * exact decimal prices, quantities, timestamps, field splitting, the
 * verdict for every malformed or unrepresentable NewOrderSingle and
 * OrderCancelRequest, and the reason-code mappings.  Plain C; the
 * QuickFIX side is in test_fix_gateway.cc.
 */
#include "helpers.h"

#include "fix_map.h"

/* Splits a body written with '|' for SOH. */
static int split(const char *text, char *buf, fgw_field_t *f, size_t max) {
  size_t len = strlen(text);
  for (size_t i = 0; i <= len; i++)
    buf[i] = text[i] == '|' ? FGW_SOH : text[i];
  return fgw_split(buf, len, f, max);
}

static int64_t price(const char *s, int *rc) {
  int64_t v = -777;
  *rc = fgw_parse_price(s, strlen(s), &v);
  return v;
}

static void prices_are_exact(void **state) {
  (void)state;
  int rc;
  assert_int_equal(price("190.25", &rc), INT64_C(19025000000));
  assert_int_equal(rc, 0);
  /* 0.1 + 0.2 is no problem without a double. */
  assert_int_equal(price("0.1", &rc) + price("0.2", &rc), price("0.3", &rc));
  assert_int_equal(price("123.45678901", &rc), INT64_C(12345678901));
  assert_int_equal(price("123.456789012", &rc), -777);
  assert_int_equal(rc, FGW_EPRECISION);
  assert_int_equal(price("123.45678900000", &rc), INT64_C(12345678900));
  assert_int_equal(rc, 0);
  assert_int_equal(price("-0.00000001", &rc), -1);
  assert_int_equal(price("7", &rc), 7 * FE_PRICE_SCALE);
  assert_int_equal(price("7.", &rc), 7 * FE_PRICE_SCALE);
  assert_int_equal(price(".5", &rc), FE_PRICE_SCALE / 2);
  assert_int_equal(price("92233720368.54775807", &rc), INT64_MAX);
  assert_int_equal(rc, 0);
  assert_int_equal(price("-92233720368.54775808", &rc), INT64_MIN);
  assert_int_equal(rc, 0);
  price("92233720368.54775808", &rc);
  assert_int_equal(rc, FGW_ERANGE);
  price("99999999999999999999999999", &rc);
  assert_int_equal(rc, FGW_ERANGE);
  const char *bad[] = {"", "-", ".", "1e5", "+1", "1.2.3", " 1", "1 ", "--1", "0x10", "NaN"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    price(bad[i], &rc);
    if (rc != FGW_EFORMAT)
      fail_msg("\"%s\": %d", bad[i], rc);
  }
  assert_int_equal(fgw_parse_price(NULL, 1, &(int64_t){0}), FGW_EINVAL);
  assert_int_equal(fgw_parse_price("1", 1, NULL), FGW_EINVAL);
  /* Only len bytes count: no NUL needed. */
  int64_t v;
  assert_int_equal(fgw_parse_price("12345", 2, &v), 0);
  assert_int_equal(v, 12 * FE_PRICE_SCALE);
}

static void prices_print_back_exactly(void **state) {
  (void)state;
  const int64_t ps[] = {0, 1, -1, 19025000000, 19000800000, FE_PRICE_SCALE,
                        -FE_PRICE_SCALE / 2, INT64_MAX, INT64_MIN, 12345678901};
  const char *want[] = {"0", "0.00000001", "-0.00000001", "190.25", "190.008", "1",
                        "-0.5", "92233720368.54775807", "-92233720368.54775808",
                        "123.45678901"};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    char b[32];
    int n = fgw_format_price(ps[i], b, sizeof b);
    assert_int_equal(n, (int)strlen(want[i]));
    assert_string_equal(b, want[i]);
    int64_t back;
    assert_int_equal(fgw_parse_price(b, (size_t)n, &back), 0);
    assert_int_equal(back, ps[i]);
  }
  char small[4];
  assert_int_equal(fgw_format_price(19025000000, small, sizeof small), FGW_ERANGE);
  assert_int_equal(fgw_format_price(1, NULL, 8), FGW_EINVAL);
}

static void quantities_are_whole(void **state) {
  (void)state;
  int64_t q;
  assert_int_equal(fgw_parse_qty("250", 3, &q), 0);
  assert_int_equal(q, 250);
  assert_int_equal(fgw_parse_qty("250.000", 7, &q), 0);
  assert_int_equal(q, 250);
  assert_int_equal(fgw_parse_qty("10.5", 4, &q), FGW_EPRECISION);
  assert_int_equal(fgw_parse_qty("ten", 3, &q), FGW_EFORMAT);
  assert_int_equal(fgw_parse_qty("9223372036854775808", 19, &q), FGW_ERANGE);
  assert_int_equal(fgw_parse_qty("9223372036854775807", 19, &q), 0);
  assert_int_equal(q, INT64_MAX);
}

static void timestamps(void **state) {
  (void)state;
  uint64_t ns;
  const char *t = "20261203-21:00:00.123";
  assert_int_equal(fgw_parse_utc(t, strlen(t), &ns), 0);
  assert_int_equal(ns, UINT64_C(1796331600123000000));
  t = "19700101-00:00:00";
  assert_int_equal(fgw_parse_utc(t, strlen(t), &ns), 0);
  assert_int_equal(ns, 0);
  t = "20240229-23:59:60.000000001";
  assert_int_equal(fgw_parse_utc(t, strlen(t), &ns), 0);
  assert_int_equal(ns % 1000000000u, 1);
  const char *range[] = {"20230229-00:00:00", "20261301-00:00:00", "20261232-00:00:00",
                         "20261203-24:00:00", "20261203-23:60:00", "19691231-23:59:59",
                         "22620101-00:00:00"};
  for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
    if (fgw_parse_utc(range[i], strlen(range[i]), &ns) != FGW_ERANGE)
      fail_msg("%s accepted", range[i]);
  const char *format[] = {"2026120321:00:00", "20261203-21:00:00.12", "20261203-21:00:0x",
                          "20261203 21:00:00", "20261203-21:00:00,123", ""};
  for (size_t i = 0; i < sizeof format / sizeof format[0]; i++)
    if (fgw_parse_utc(format[i], strlen(format[i]), &ns) != FGW_EFORMAT)
      fail_msg("%s accepted", format[i]);
  assert_int_equal(fgw_parse_utc(NULL, 17, &ns), FGW_EINVAL);
}

static void splitting(void **state) {
  (void)state;
  char buf[128];
  fgw_field_t f[8];
  assert_int_equal(split("11=A|38=10|", buf, f, 8), 2);
  assert_int_equal(f[1].tag, 38);
  assert_int_equal(f[1].len, 2);
  assert_memory_equal(f[1].val, "10", 2);
  assert_int_equal(split("11=A|38=", buf, f, 8), 2); /* no SOH at the end */
  assert_int_equal(f[1].len, 0);
  assert_int_equal(split("", buf, f, 8), 0);
  const char *bad[] = {"=A", "011=A", "1a=A", "11A", "11=A||", "0=A", "1234567890=A", "|"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (split(bad[i], buf, f, 8) != FGW_EFORMAT)
      fail_msg("\"%s\" split", bad[i]);
  assert_int_equal(split("1=a|2=b|3=c", buf, f, 2), FGW_ERANGE);
  assert_int_equal(fgw_split(NULL, 3, f, 8), FGW_EINVAL);
  assert_int_equal(fgw_split("1=a", 3, NULL, 8), FGW_EINVAL);
  int count;
  assert_int_equal(split("1=a|2=b|1=c", buf, f, 8), 3);
  assert_int_equal(fgw_find(f, 3, 1, &count), 0);
  assert_int_equal(count, 2);
  assert_int_equal(fgw_find(f, 3, 9, &count), -1);
  assert_int_equal(count, 0);
}

#define GOOD "11=A-1|1=1001|55=AAPL|54=1|38=250|40=2|44=190.25|59=0|60=20261203-21:00:00.000"

static int map(const char *body, fe_order_t *o, fgw_verdict_t *v) {
  char buf[512];
  fgw_field_t f[64];
  int n = split(body, buf, f, 64);
  assert_true(n >= 0);
  return fgw_map_new_order(f, (size_t)n, o, v);
}

static void new_order_maps(void **state) {
  (void)state;
  fe_order_t o;
  fgw_verdict_t v;
  assert_int_equal(map(GOOD, &o, &v), FGW_OK);
  assert_int_equal(o.account, 1001);
  assert_int_equal(o.quantity, 250);
  assert_int_equal(o.price, INT64_C(19025000000));
  assert_int_equal(o.side, FE_SIDE_BUY);
  assert_int_equal(o.type, FE_ORD_LIMIT);
  assert_int_equal(o.tif, FE_TIF_DAY);
  assert_string_equal(o.client_order_id, "A-1");
  assert_string_equal(o.symbol, "AAPL");
  assert_int_equal(o.client_ts_ns, UINT64_C(1796331600000000000));
  /* A market order ignores a price; GTD carries its expiry; 5 is short. */
  assert_int_equal(map("11=B|1=7|55=IBM|54=5|38=3|40=1|44=12|59=6|126=20261204-00:00:00|60=20261203-21:00:00",
                       &o, &v), FGW_OK);
  assert_int_equal(o.price, 0);
  assert_int_equal(o.side, FE_SIDE_SELL_SHORT);
  assert_int_equal(o.tif, FE_TIF_GTD);
  assert_int_equal(o.expire_ns, UINT64_C(1796342400000000000));
  /* A 16-byte symbol fills the field, unterminated. */
  assert_int_equal(map("11=B|1=7|55=ABCDEFGHIJKLMNOP|54=2|38=3|40=1|60=20261203-21:00:00", &o, &v), FGW_OK);
  assert_memory_equal(o.symbol, "ABCDEFGHIJKLMNOP", 16);
}

static void malformed_new_orders(void **state) {
  (void)state;
  struct {
    const char *body;
    int kind, reason, tag;
  } cases[] = {
      {"1=1001|55=AAPL|54=1|38=250|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 11},
      {"11=A|55=AAPL|54=1|38=250|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 1},
      {"11=A|1=1|54=1|38=250|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 55},
      {"11=A|1=1|55=X|38=250|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 54},
      {"11=A|1=1|55=X|54=1|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 38},
      {"11=A|1=1|55=X|54=1|38=5|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 1, 40},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1", FGW_SESSION_REJECT, 1, 60},
      {"11=|1=1|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 4, 11},
      {"11=A|11=B|1=1|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 13, 11},
      {"11=A|1=1|55=X|54=4|38=5|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 5, 54},
      {"11=A|1=1|55=X|54=1|38=5|40=P|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 5, 40},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1|59=2|60=20261203-21:00:00", FGW_SESSION_REJECT, 5, 59},
      {"11=A|1=1|55=X|54=1|38=x|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 6, 38},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1,5|60=20261203-21:00:00", FGW_SESSION_REJECT, 6, 44},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1|60=2026-12-03", FGW_SESSION_REJECT, 6, 60},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1|60=20261303-21:00:00", FGW_SESSION_REJECT, 5, 60},
      {"11=123456789012345678901234567890123|1=1|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00",
       FGW_SESSION_REJECT, 5, 11},
      {"11=A\tB|1=1|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_SESSION_REJECT, 5, 11},
      {"11=A|1=1|55=X|54=1|38=5|40=2|60=20261203-21:00:00", FGW_BUSINESS_REJECT, 5, 44},
      {"11=A|1=1|55=X|54=1|38=5|40=4|60=20261203-21:00:00", FGW_BUSINESS_REJECT, 5, 44},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1|59=6|60=20261203-21:00:00", FGW_BUSINESS_REJECT, 5, 126},
      {"11=A|1=ACC|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 15, 0},
      {"11=A|1=99999999999999999999|55=X|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 15, 0},
      {"11=A|1=1|55=ABCDEFGHIJKLMNOPQ|54=1|38=5|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 1, 0},
      {"11=A|1=1|55=X|54=1|38=5.5|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 13, 0},
      {"11=A|1=1|55=X|54=1|38=0|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 13, 0},
      {"11=A|1=1|55=X|54=1|38=-5|40=2|44=1|60=20261203-21:00:00", FGW_ORDER_REJECT, 13, 0},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=1.000000001|60=20261203-21:00:00", FGW_ORDER_REJECT, 99, 0},
      {"11=A|1=1|55=X|54=1|38=5|40=2|44=999999999999|60=20261203-21:00:00", FGW_ORDER_REJECT, 99, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fe_order_t o;
    fgw_verdict_t v;
    int k = map(cases[i].body, &o, &v);
    if (k != cases[i].kind || v.kind != k || v.reason != cases[i].reason || v.tag != cases[i].tag)
      fail_msg("case %zu (%s): kind %d reason %d tag %d (%s)", i, cases[i].body, v.kind,
               v.reason, v.tag, v.text);
    assert_true(v.text[0] != '\0');
  }
  /* An order reject still echoes what it could read. */
  fe_order_t o;
  fgw_verdict_t v;
  map("11=Z-9|1=ACC|55=IBM|54=2|38=5|40=2|44=1|60=20261203-21:00:00", &o, &v);
  assert_string_equal(o.client_order_id, "Z-9");
  assert_string_equal(o.symbol, "IBM");
  assert_int_equal(o.side, FE_SIDE_SELL);
  assert_int_equal(fgw_map_new_order(NULL, 1, &o, &v), FGW_EINVAL);
  assert_int_equal(fgw_map_new_order(NULL, 0, NULL, &v), FGW_EINVAL);
  assert_int_equal(fgw_map_new_order(NULL, 0, &o, NULL), FGW_EINVAL);
  assert_int_equal(fgw_map_new_order(NULL, 0, &o, &v), FGW_SESSION_REJECT);
}

static void cancels_map(void **state) {
  (void)state;
  char buf[256], orig[FE_CLORDID_MAX];
  fgw_field_t f[16];
  fe_order_t o;
  fgw_verdict_t v;
  int n = split("11=X-1|41=C-1|1=1003|55=MSFT|54=1|60=20261203-21:00:00", buf, f, 16);
  assert_int_equal(fgw_map_cancel(f, (size_t)n, &o, orig, &v), FGW_OK);
  assert_string_equal(o.client_order_id, "X-1");
  assert_string_equal(orig, "C-1");
  assert_int_equal(o.account, 1003);
  n = split("11=X-1|1=1003|55=MSFT|54=1|60=20261203-21:00:00", buf, f, 16);
  assert_int_equal(fgw_map_cancel(f, (size_t)n, &o, orig, &v), FGW_SESSION_REJECT);
  assert_int_equal(v.reason, 1);
  assert_int_equal(v.tag, 41);
  n = split("11=X-1|41=C-1|1=x|55=MSFT|54=1|60=20261203-21:00:00", buf, f, 16);
  assert_int_equal(fgw_map_cancel(f, (size_t)n, &o, orig, &v), FGW_ORDER_REJECT);
  assert_int_equal(v.reason, 1); /* CxlRejReason: unknown order */
  n = split("11=X-1|41=C-1|1=1|55=MSFT|54=1|38=q|60=20261203-21:00:00", buf, f, 16);
  assert_int_equal(fgw_map_cancel(f, (size_t)n, &o, orig, &v), FGW_SESSION_REJECT);
  assert_int_equal(v.tag, 38);
  assert_int_equal(fgw_map_cancel(f, (size_t)n, &o, NULL, &v), FGW_EINVAL);
}

static void reason_codes(void **state) {
  (void)state;
  const char *t = NULL;
  struct {
    uint32_t reason;
    int want;
  } stage[] = {{FGW_R_UNKNOWN_SYMBOL, 1}, {FGW_R_BAD_QUANTITY, 13}, {FGW_R_NOTIONAL, 3},
               {FGW_R_BAD_PRICE, 99},     {FGW_R_UNSUPPORTED, 11},  {FGW_R_UNKNOWN_ACCOUNT, 15},
               {FGW_R_VENUE_CLOSED, 2},   {FE_REASON_CIRCUIT_OPEN, 2}, {FE_REASON_NO_VENUE, 0},
               {200, 99}};
  for (size_t i = 0; i < sizeof stage / sizeof stage[0]; i++) {
    t = NULL;
    assert_int_equal(fgw_ord_rej_reason(stage[i].reason, 0, &t), stage[i].want);
    assert_non_null(t);
  }
  assert_int_equal(fgw_ord_rej_reason(FGW_R_UNKNOWN_SYMBOL, 1, &t), 99);
  assert_non_null(strstr(t, "dead-lettered"));
  assert_int_equal(fgw_ord_rej_error(FE_EMISMATCH, &t), 6);
  assert_int_equal(fgw_ord_rej_error(FE_EHALTED, &t), 0);
  assert_int_equal(fgw_ord_rej_error(FE_ETHROTTLED, &t), 3);
  assert_int_equal(fgw_ord_rej_error(FE_ETIMEDOUT, NULL), 99);
  assert_int_equal(fgw_ord_rej_error(12345, &t), 99);
  assert_int_equal(fgw_cxl_rej_reason(FGW_R_CXL_UNKNOWN), 1);
  assert_int_equal(fgw_cxl_rej_reason(FGW_R_CXL_TOO_LATE), 0);
  assert_int_equal(fgw_cxl_rej_reason(FE_REASON_CIRCUIT_OPEN), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prices_are_exact),   cmocka_unit_test(prices_print_back_exactly),
      cmocka_unit_test(quantities_are_whole), cmocka_unit_test(timestamps),
      cmocka_unit_test(splitting),          cmocka_unit_test(new_order_maps),
      cmocka_unit_test(malformed_new_orders), cmocka_unit_test(cancels_map),
      cmocka_unit_test(reason_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
