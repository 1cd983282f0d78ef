/* libfinevent-kafka: private declarations shared by the files of lib/kafka.  Not
 * installed; not in the core library. */
#ifndef FE_KAFKA_IMPL_H
#define FE_KAFKA_IMPL_H

#include <stdint.h>

#include "finevent/kafka.h"

/* codec.c: the outcome and intent records (layouts in kafka.h).  p holds
 * FE_KAFKA_OUTCOME_BYTES / FE_KAFKA_INTENT_BYTES; order_wire is a value
 * fe_kafka_order_encode() produced or fe_kafka_order_decode() accepted. */
void fe__kafka_outcome_encode(const fe_kafka_outcome_t *o, uint8_t *p);
void fe__kafka_intent_encode(int32_t partition, int64_t offset,
                             const uint8_t *order_wire, uint8_t *p);
/* Returns 0 or the order decoder's codes (FE_ECORRUPT, FE_EVERSION for a
 * wrong length or magic of the intent itself). */
int fe__kafka_intent_decode(const void *val, size_t len, int32_t *partition,
                            int64_t *offset, uint32_t *type, fe_order_t *o,
                            uint64_t *trace_id);

#endif
