/*
 * libFuzzer harness for the orders-topic decoder (fe_kafka_order_decode)
 * and the outcome decoder: the code a hostile producer feeds.
 *
 * Input: one byte k, then k key bytes (clamped to what is left), then the
 * value.  Checks beyond "no crash, no sanitizer report":
 *   - an accepted order re-encodes to exactly the same value bytes;
 *   - an accepted outcome decodes the same from its own bytes twice.
 * Build and run: make fuzz-kafka FUZZ_SECONDS=600.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finevent/kafka.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t klen = data[0];
  if (klen > size - 1)
    klen = size - 1;
  const uint8_t *key = data + 1, *val = data + 1 + klen;
  size_t vlen = size - 1 - klen;
  uint32_t type;
  fe_order_t o;
  uint64_t trace;
  if (fe_kafka_order_decode(val, vlen, klen ? key : NULL, klen, &type, &o,
                            &trace) == 0) {
    uint8_t back[FE_KAFKA_ORDER_BYTES];
    if (fe_kafka_order_encode(type, &o, trace, back, sizeof back) !=
            FE_KAFKA_ORDER_BYTES ||
        memcmp(back, val, FE_KAFKA_ORDER_BYTES) != 0)
      abort();
  }
  fe_kafka_outcome_t a, b;
  if (fe_kafka_outcome_decode(val, vlen, &a) == 0) {
    if (fe_kafka_outcome_decode(val, vlen, &b) != 0 ||
        memcmp(&a, &b, sizeof a) != 0)
      abort();
  }
  return 0;
}
