/*
 * libFuzzer harness for the compliance file loader
 * (fe_compliance_conf_parse, include/finevent/compliance_conf.h).
 *
 * Every input must either load, or be refused with a negative code, a line
 * within the input and a reason; a loaded rule set must fingerprint, go
 * into a running compliance object and check an order without a crash,
 * and parsing must be deterministic (the same input, the same
 * fingerprint).  Build and run: make fuzz-compliance-conf (clang
 * -fsanitize=fuzzer,address,undefined).  Seeds:
 * test/fuzz/corpus/compliance_conf/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/compliance_conf.h"

static void check_loaded(fe_compliance_rules_t *r,
                         const fe_compliance_config_t *cfg) {
  fe_fingerprint_t f;
  if (fe_compliance_rules_fingerprint(r, &f) != 0)
    abort();
  fe_compliance_config_t small = *cfg;
  /* bound the tables: the input may ask for 2^26 of each */
  small.max_accounts = small.max_accounts > 64 ? 64 : small.max_accounts;
  small.max_symbols = small.max_symbols > 64 ? 64 : small.max_symbols;
  small.max_cells = small.max_cells > 64 ? 64 : small.max_cells;
  small.max_orders = small.max_orders > 64 ? 64 : small.max_orders;
  small.pin_mode = FE_MODE_OFF;
  fe_compliance_t *c = NULL;
  if (fe_compliance_create(&small, r, &c, NULL) != 0)
    abort();
  fe_fingerprint_t g;
  if (fe_compliance_fingerprint(c, &g) != 0 || g.lo != f.lo || g.hi != f.hi)
    abort();
  fe_compliance_set_reference(c, "GME", 1000000000);
  fe_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = FE_EV_NEW_ORDER;
  ev.order.account = 1001;
  ev.order.side = FE_SIDE_BUY;
  ev.order.type = FE_ORD_MARKET;
  ev.order.quantity = 10;
  memcpy(ev.order.symbol, "GME", 3);
  memcpy(ev.order.client_order_id, "f", 1);
  fe_compliance_check(c, 0, &ev, NULL);
  fe_compliance_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fe_compliance_config_t cfg;
  fe_compliance_config_init(&cfg);
  fe_compliance_rules_t *r = NULL;
  fe_compliance_conf_error_t e;
  int rc = fe_compliance_conf_parse((const char *)data, size, "fuzz", &r,
                                    &cfg, &e);
  if (rc != 0) {
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
      lines += data[i] == '\n';
    if (rc >= 0 || r != NULL || e.code != rc || e.line < 0 ||
        (size_t)e.line > lines || e.reason[0] == '\0')
      abort();
    return 0;
  }
  fe_compliance_rules_t *again = NULL;
  fe_compliance_config_t cfg2;
  fe_compliance_config_init(&cfg2);
  if (fe_compliance_conf_parse((const char *)data, size, "fuzz", &again,
                               &cfg2, &e) != 0)
    abort();
  fe_fingerprint_t a, b;
  fe_compliance_rules_fingerprint(r, &a);
  fe_compliance_rules_fingerprint(again, &b);
  if (a.lo != b.lo || a.hi != b.hi)
    abort();
  check_loaded(r, &cfg);
  fe_compliance_rules_destroy(again);
  fe_compliance_rules_destroy(r);
  return 0;
}
