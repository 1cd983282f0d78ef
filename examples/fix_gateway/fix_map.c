/*
 * fix_map.c: FIX 4.4 fields -> fe_order_t (see fix_map.h).
 */
#include "fix_map.h"

#include <string.h>

#include <finevent/error.h>
#include <finevent/gateway.h>

/* FIX values used below. */
enum {
  SRR_REQUIRED_MISSING = 1, /* SessionRejectReason */
  SRR_NO_VALUE = 4,
  SRR_BAD_VALUE = 5,
  SRR_BAD_FORMAT = 6,
  SRR_REPEATED = 13,
  BRR_COND_MISSING = 5,     /* BusinessRejectReason */
  ORR_BROKER = 0,           /* OrdRejReason */
  ORR_UNKNOWN_SYMBOL = 1,
  ORR_EXCHANGE_CLOSED = 2,
  ORR_EXCEEDS_LIMIT = 3,
  ORR_DUPLICATE = 6,
  ORR_UNSUPPORTED = 11,
  ORR_QUANTITY = 13,
  ORR_UNKNOWN_ACCOUNT = 15,
  ORR_OTHER = 99
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int fgw_split(const char *buf, size_t len, fgw_field_t *out, size_t max) {
  if ((buf == NULL && len > 0) || (out == NULL && max > 0))
    return FGW_EINVAL;
  size_t n = 0, i = 0;
  while (i < len) {
    size_t start = i;
    int tag = 0;
    while (i < len && is_digit(buf[i])) {
      if (i - start == 9 || (i > start && tag == 0))
        return FGW_EFORMAT; /* over 9 digits, or a leading zero */
      tag = tag * 10 + (buf[i] - '0');
      i++;
    }
    if (i == start || tag == 0 || i == len || buf[i] != '=')
      return FGW_EFORMAT;
    i++;
    size_t vstart = i;
    while (i < len && buf[i] != FGW_SOH)
      i++;
    if (n == max)
      return FGW_ERANGE;
    out[n].tag = tag;
    out[n].val = buf + vstart;
    out[n].len = i - vstart;
    n++;
    if (i < len)
      i++; /* the SOH */
  }
  return (int)n;
}

int fgw_find(const fgw_field_t *f, size_t n, int tag, int *count) {
  int first = -1, c = 0;
  for (size_t i = 0; f != NULL && i < n; i++)
    if (f[i].tag == tag) {
      if (first < 0)
        first = (int)i;
      c++;
    }
  if (count != NULL)
    *count = c;
  return first;
}

/* Decimal text with at most `decimals` significant fraction digits into a
 * scaled integer: the one parser behind prices (8) and quantities (0). */
static int parse_fixed(const char *s, size_t len, int decimals, int64_t *out) {
  if (s == NULL || out == NULL)
    return FGW_EINVAL;
  size_t i = 0;
  int neg = 0;
  if (i < len && s[i] == '-')
    neg = 1, i++;
  uint64_t scale = 1;
  for (int k = 0; k < decimals; k++)
    scale *= 10;
  /* The magnitude may reach 2^63 for a negative value. */
  const uint64_t limit = (uint64_t)INT64_MAX + (uint64_t)neg;
  uint64_t ip = 0, frac = 0, fscale = scale;
  int digits = 0, range = 0, precision = 0;
  for (; i < len && is_digit(s[i]); i++, digits++) {
    if (ip > (UINT64_MAX - 9) / 10)
      range = 1; /* keep scanning: a format error still wins */
    else
      ip = ip * 10 + (uint64_t)(s[i] - '0');
  }
  if (i < len && s[i] == '.') {
    for (i++; i < len && is_digit(s[i]); i++, digits++) {
      fscale /= 10;
      if (fscale > 0)
        frac += (uint64_t)(s[i] - '0') * fscale;
      else if (s[i] != '0')
        precision = 1;
    }
  }
  if (i != len || digits == 0)
    return FGW_EFORMAT;
  if (precision)
    return FGW_EPRECISION;
  if (range || ip > (limit - frac) / scale)
    return FGW_ERANGE;
  uint64_t mag = ip * scale + frac;
  *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  return 0;
}

int fgw_parse_price(const char *s, size_t len, int64_t *out) {
  return parse_fixed(s, len, 8, out);
}

int fgw_parse_qty(const char *s, size_t len, int64_t *out) {
  return parse_fixed(s, len, 0, out);
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* n digits at s as a number, or -1. */
static int64_t digits_at(const char *s, size_t n) {
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int fgw_parse_utc(const char *s, size_t len, uint64_t *out) {
  if (s == NULL || out == NULL)
    return FGW_EINVAL;
  if (len != 17 && len != 21 && len != 24 && len != 27)
    return FGW_EFORMAT;
  if (s[8] != '-' || s[11] != ':' || s[14] != ':' || (len > 17 && s[17] != '.'))
    return FGW_EFORMAT;
  int64_t y = digits_at(s, 4), mo = digits_at(s + 4, 2), d = digits_at(s + 6, 2);
  int64_t h = digits_at(s + 9, 2), mi = digits_at(s + 12, 2);
  int64_t se = digits_at(s + 15, 2);
  int64_t sub = len > 17 ? digits_at(s + 18, len - 18) : 0;
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0 || sub < 0)
    return FGW_EFORMAT;
  static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 ||
      d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
    return FGW_ERANGE;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap)
    return FGW_ERANGE;
  for (size_t k = len; k < 27; k++)
    sub *= 10; /* milli or micro -> nano */
  int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
  *out = (uint64_t)((days * 86400 + h * 3600 + mi * 60 + se) * 1000000000 + sub);
  return 0;
}

int fgw_format_price(int64_t p, char *buf, size_t cap) {
  if (buf == NULL)
    return FGW_EINVAL;
  uint64_t mag = p < 0 ? 0 - (uint64_t)p : (uint64_t)p;
  uint64_t ip = mag / (uint64_t)FE_PRICE_SCALE;
  uint64_t fr = mag % (uint64_t)FE_PRICE_SCALE;
  char tmp[32];
  size_t n = 0;
  char rev[24];
  size_t r = 0;
  do {
    rev[r++] = (char)('0' + ip % 10);
    ip /= 10;
  } while (ip != 0);
  if (p < 0)
    tmp[n++] = '-';
  while (r > 0)
    tmp[n++] = rev[--r];
  if (fr != 0) {
    tmp[n++] = '.';
    uint64_t div = (uint64_t)FE_PRICE_SCALE / 10;
    while (fr != 0) {
      tmp[n++] = (char)('0' + fr / div);
      fr %= div;
      div /= 10;
    }
  }
  if (n + 1 > cap)
    return FGW_ERANGE;
  memcpy(buf, tmp, n);
  buf[n] = '\0';
  return (int)n;
}

/* ---------------------------------------------------------------- mapping */

static int verdict(fgw_verdict_t *v, int kind, int reason, int tag,
                   const char *text) {
  v->kind = kind;
  v->reason = reason;
  v->tag = tag;
  v->text = text;
  return kind;
}

/* The field tag, once, with a value: 0 and *out set; 1 when absent;
 * otherwise the session reject is in *v and -1 returned. */
static int field(const fgw_field_t *f, size_t n, int tag,
                 const fgw_field_t **out, fgw_verdict_t *v) {
  int count;
  int i = fgw_find(f, n, tag, &count);
  if (i < 0)
    return 1;
  if (count > 1) {
    verdict(v, FGW_SESSION_REJECT, SRR_REPEATED, tag, "tag appears more than once");
    return -1;
  }
  if (f[i].len == 0) {
    verdict(v, FGW_SESSION_REJECT, SRR_NO_VALUE, tag, "tag specified without a value");
    return -1;
  }
  *out = &f[i];
  return 0;
}

/* As field(), but absence is a session reject too. */
static int required(const fgw_field_t *f, size_t n, int tag,
                    const fgw_field_t **out, fgw_verdict_t *v) {
  int r = field(f, n, tag, out, v);
  if (r == 1) {
    verdict(v, FGW_SESSION_REJECT, SRR_REQUIRED_MISSING, tag, "required tag missing");
    return -1;
  }
  return r;
}

static int one_of(const fgw_field_t *x, const char *allowed) {
  return x->len == 1 && x->val[0] != '\0' && strchr(allowed, x->val[0]) != NULL;
}

static void copy_padded(char *dst, size_t cap, const fgw_field_t *x) {
  memset(dst, 0, cap);
  memcpy(dst, x->val, x->len < cap ? x->len : cap);
}

/* ClOrdID-like ids: up to FE_CLORDID_MAX bytes. */
static int id_field(const fgw_field_t *f, size_t n, int tag,
                    const fgw_field_t **out, fgw_verdict_t *v) {
  if (required(f, n, tag, out, v) != 0)
    return -1;
  if ((*out)->len > FE_CLORDID_MAX) {
    verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, tag, "id longer than 32 bytes");
    return -1;
  }
  /* The key is the id up to its first NUL: control bytes would alias. */
  for (size_t i = 0; i < (*out)->len; i++)
    if ((unsigned char)(*out)->val[i] < 0x20 || (*out)->val[i] == 0x7f) {
      verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, tag, "id holds a control character");
      return -1;
    }
  return 0;
}

static int account_of(const fgw_field_t *x, uint64_t *acct) {
  if (x->len > 20)
    return -1;
  uint64_t a = 0;
  for (size_t i = 0; i < x->len; i++) {
    if (!is_digit(x->val[i]))
      return -1;
    uint64_t d = (uint64_t)(x->val[i] - '0');
    if (a > (UINT64_MAX - d) / 10)
      return -1;
    a = a * 10 + d;
  }
  *acct = a;
  return 0;
}

static uint8_t side_of(char c) {
  return c == '1' ? FE_SIDE_BUY : c == '2' ? FE_SIDE_SELL : FE_SIDE_SELL_SHORT;
}

/* The fields D and F share: ClOrdID, Account, Symbol, Side, TransactTime
 * (and OrderQty's text).  Session-level checks only. */
static int common(const fgw_field_t *f, size_t n, fe_order_t *o,
                  const fgw_field_t **acct, const fgw_field_t **sym,
                  fgw_verdict_t *v) {
  const fgw_field_t *id, *side, *tt;
  if (id_field(f, n, 11, &id, v) != 0 || required(f, n, 1, acct, v) != 0 ||
      required(f, n, 55, sym, v) != 0 || required(f, n, 54, &side, v) != 0)
    return -1;
  copy_padded(o->client_order_id, FE_CLORDID_MAX, id);
  copy_padded(o->symbol, FE_SYMBOL_MAX, *sym);
  if (!one_of(side, "125"))
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, 54, "Side must be 1, 2 or 5"), -1;
  o->side = side_of(side->val[0]);
  if (required(f, n, 60, &tt, v) != 0)
    return -1;
  int r = fgw_parse_utc(tt->val, tt->len, &o->client_ts_ns);
  if (r == FGW_EFORMAT)
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_FORMAT, 60, "TransactTime is not a UTCTimestamp"), -1;
  if (r != 0)
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, 60, "TransactTime out of range"), -1;
  return 0;
}

int fgw_map_new_order(const fgw_field_t *f, size_t n, fe_order_t *o,
                      fgw_verdict_t *v) {
  if ((f == NULL && n > 0) || o == NULL || v == NULL)
    return FGW_EINVAL;
  memset(o, 0, sizeof *o);
  verdict(v, FGW_OK, 0, 0, "");
  const fgw_field_t *acct, *sym, *qty, *type, *px = NULL, *tif = NULL, *exp = NULL;
  if (common(f, n, o, &acct, &sym, v) != 0)
    return v->kind;
  if (required(f, n, 38, &qty, v) != 0 || required(f, n, 40, &type, v) != 0)
    return v->kind;
  int rq = fgw_parse_qty(qty->val, qty->len, &o->quantity);
  if (rq == FGW_EFORMAT)
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_FORMAT, 38, "OrderQty is not a number");
  if (!one_of(type, "1234"))
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, 40, "OrdType must be 1..4");
  o->type = (uint8_t)(type->val[0] - '0'); /* FIX 1..4 = fe_ord_type_t */
  int rp = 0;
  if (field(f, n, 44, &px, v) < 0)
    return v->kind;
  if (px != NULL) {
    rp = fgw_parse_price(px->val, px->len, &o->price);
    if (rp == FGW_EFORMAT)
      return verdict(v, FGW_SESSION_REJECT, SRR_BAD_FORMAT, 44, "Price is not a number");
  } else if (o->type == FE_ORD_LIMIT || o->type == FE_ORD_STOP_LIMIT) {
    return verdict(v, FGW_BUSINESS_REJECT, BRR_COND_MISSING, 44,
                   "Price is required for a limit order");
  }
  if (o->type == FE_ORD_MARKET || o->type == FE_ORD_STOP)
    o->price = 0, rp = 0; /* a price on a market order is ignored */
  if (field(f, n, 59, &tif, v) < 0)
    return v->kind;
  o->tif = FE_TIF_DAY;
  if (tif != NULL) {
    static const char fix_tif[] = "01346";
    static const uint8_t fe_tif[] = {FE_TIF_DAY, FE_TIF_GTC, FE_TIF_IOC,
                                     FE_TIF_FOK, FE_TIF_GTD};
    if (!one_of(tif, fix_tif))
      return verdict(v, FGW_SESSION_REJECT, SRR_BAD_VALUE, 59, "TimeInForce must be 0, 1, 3, 4 or 6");
    o->tif = fe_tif[strchr(fix_tif, tif->val[0]) - fix_tif];
  }
  if (o->tif == FE_TIF_GTD) {
    if (field(f, n, 126, &exp, v) < 0)
      return v->kind;
    if (exp == NULL)
      return verdict(v, FGW_BUSINESS_REJECT, BRR_COND_MISSING, 126,
                     "ExpireTime is required for TimeInForce 6");
    int re = fgw_parse_utc(exp->val, exp->len, &o->expire_ns);
    if (re != 0)
      return verdict(v, FGW_SESSION_REJECT, re == FGW_EFORMAT ? SRR_BAD_FORMAT : SRR_BAD_VALUE,
                     126, "ExpireTime is not a valid UTCTimestamp");
  }
  /* Well formed: can the order hold it? */
  if (account_of(acct, &o->account) != 0)
    return verdict(v, FGW_ORDER_REJECT, ORR_UNKNOWN_ACCOUNT, 0, "unknown account: not a number");
  if (sym->len > FE_SYMBOL_MAX)
    return verdict(v, FGW_ORDER_REJECT, ORR_UNKNOWN_SYMBOL, 0, "unknown symbol: over 16 bytes");
  if (rq == FGW_EPRECISION)
    return verdict(v, FGW_ORDER_REJECT, ORR_QUANTITY, 0, "incorrect quantity: not whole units");
  if (rq != 0 || o->quantity <= 0)
    return verdict(v, FGW_ORDER_REJECT, ORR_QUANTITY, 0, "incorrect quantity");
  if (rp == FGW_EPRECISION)
    return verdict(v, FGW_ORDER_REJECT, ORR_OTHER, 0, "price finer than 0.00000001");
  if (rp != 0)
    return verdict(v, FGW_ORDER_REJECT, ORR_OTHER, 0, "price out of range");
  return FGW_OK;
}

int fgw_map_cancel(const fgw_field_t *f, size_t n, fe_order_t *o,
                   char orig[FE_CLORDID_MAX], fgw_verdict_t *v) {
  if ((f == NULL && n > 0) || o == NULL || orig == NULL || v == NULL)
    return FGW_EINVAL;
  memset(o, 0, sizeof *o);
  memset(orig, 0, FE_CLORDID_MAX);
  verdict(v, FGW_OK, 0, 0, "");
  const fgw_field_t *acct, *sym, *oid, *qty = NULL;
  if (common(f, n, o, &acct, &sym, v) != 0 || id_field(f, n, 41, &oid, v) != 0)
    return v->kind;
  copy_padded(orig, FE_CLORDID_MAX, oid);
  if (field(f, n, 38, &qty, v) < 0)
    return v->kind;
  int rq = 0;
  if (qty != NULL && (rq = fgw_parse_qty(qty->val, qty->len, &o->quantity)) == FGW_EFORMAT)
    return verdict(v, FGW_SESSION_REJECT, SRR_BAD_FORMAT, 38, "OrderQty is not a number");
  /* A cancel that names what no order can be is for an unknown order. */
  if (account_of(acct, &o->account) != 0 || sym->len > FE_SYMBOL_MAX || rq != 0)
    return verdict(v, FGW_ORDER_REJECT, 1, 0, "unknown order");
  return FGW_OK;
}

int fgw_ord_rej_reason(uint32_t reason, int dead, const char **text) {
  const char *t = "rejected";
  int r = ORR_OTHER;
  if (dead) {
    t = "dead-lettered: held for operator review";
  } else {
    switch (reason) {
    case FGW_R_UNKNOWN_SYMBOL: r = ORR_UNKNOWN_SYMBOL; t = "unknown symbol"; break;
    case FGW_R_BAD_QUANTITY: r = ORR_QUANTITY; t = "incorrect quantity"; break;
    case FGW_R_NOTIONAL: r = ORR_EXCEEDS_LIMIT; t = "order exceeds the notional limit"; break;
    case FGW_R_BAD_PRICE: t = "limit price must be positive"; break;
    case FGW_R_UNSUPPORTED: r = ORR_UNSUPPORTED; t = "unsupported order type: stop"; break;
    case FGW_R_UNKNOWN_ACCOUNT: r = ORR_UNKNOWN_ACCOUNT; t = "unknown account"; break;
    case FGW_R_VENUE_CLOSED: r = ORR_EXCHANGE_CLOSED; t = "exchange closed: instrument halted"; break;
    case FE_REASON_CIRCUIT_OPEN: r = ORR_EXCHANGE_CLOSED; t = "venue unavailable: circuit open"; break;
    case FE_REASON_NO_VENUE: r = ORR_BROKER; t = "no venue for this order"; break;
    default: break;
    }
  }
  if (text != NULL)
    *text = t;
  return r;
}

int fgw_ord_rej_error(int fe_err, const char **text) {
  const char *t;
  int r;
  switch (fe_err) {
  case FE_EMISMATCH: r = ORR_DUPLICATE; t = "duplicate order: ClOrdID reused with another order"; break;
  case FE_EHALTED: r = ORR_BROKER; t = "trading halted"; break;
  case FE_EREDUCEONLY: r = ORR_BROKER; t = "account may only reduce its position"; break;
  case FE_ETHROTTLED: r = ORR_EXCEEDS_LIMIT; t = "order rate limit exceeded"; break;
  case FE_ETABLEFULL: r = ORR_OTHER; t = "gateway full: retry later"; break;
  case FE_ETIMEDOUT: r = ORR_OTHER; t = "gateway busy: retry later"; break;
  case FE_ESTOPPED: r = ORR_OTHER; t = "gateway stopping"; break;
  default: r = ORR_OTHER; t = "rejected by the gateway"; break;
  }
  if (text != NULL)
    *text = t;
  return r;
}

int fgw_cxl_rej_reason(uint32_t reason) {
  return reason == FGW_R_CXL_UNKNOWN ? 1 : reason == FGW_R_CXL_TOO_LATE ? 0 : 2;
}
