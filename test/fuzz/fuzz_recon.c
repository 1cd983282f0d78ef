/* libFuzzer harness for the statement parser (recon.h): any bytes either
 * parse or are refused with FE_ECORRUPT and a message naming a line; a
 * parsed statement reconciles against itself with no break, and writing it
 * back and reading that file gives the same items.
 *   make fuzz-recon FUZZ_SECONDS=600     (clang, libFuzzer) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "finevent/recon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fe_recon_statement_t *st = NULL;
  fe_recon_error_t err;
  int rc = fe_recon_parse((const char *)data, size, "fuzz.csv", &st, &err);
  if (rc != 0) {
    if (rc != FE_ECORRUPT || err.code != FE_ECORRUPT ||
        strncmp(err.msg, "fuzz.csv:", 9) != 0 || err.line == 0)
      abort();
    return 0;
  }
  fe_recon_config_t cfg;
  fe_recon_config_init(&cfg);
  fe_recon_report_t rep;
  if (fe_recon_run(&cfg, st->items, st->n_items, st->items, st->n_items, &rep,
                   NULL) != 0 ||
      rep.n_breaks != 0 || rep.matched != st->n_items)
    abort();
  fe_recon_report_free(&rep);
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz_recon_%d.csv", (int)getpid());
  if (fe_recon_write(path, st->custodian, st->as_of, st->items, st->n_items,
                     NULL) != 0)
    abort();
  fe_recon_statement_t *back = NULL;
  if (fe_recon_load(path, &back, NULL) != 0 || back->n_items != st->n_items ||
      back->as_of != st->as_of || strcmp(back->custodian, st->custodian) != 0)
    abort();
  for (uint64_t i = 0; i < st->n_items; i++) {
    const fe_recon_item_t *a = &st->items[i], *b = &back->items[i];
    if (a->account != b->account || strcmp(a->ref, b->ref) != 0 ||
        a->quantity != b->quantity || a->amount != b->amount)
      abort();
  }
  unlink(path);
  fe_recon_statement_free(back);
  fe_recon_statement_free(st);
  return 0;
}
